//! The one ingest path: a bounded queue and writer threads that coalesce
//! batches into RocksDB write batches.
//!
//! Batches of spans go to the writers in turn (RocksDB takes their write
//! batches concurrently). Phosphor annotations are split by trace, each
//! trace's always to the same writer: indexing a span side may read the
//! trace's earlier fragments, so annotation writes of one trace must not
//! race each other.
//!
//! Receivers call [`Ingest::submit`]; it never blocks. The queue is bounded
//! in spans: a batch that does not fit is refused at once, and the receiver
//! answers with a retryable refusal (OTLP) or drops and counts (UDP). A batch
//! submitted with an acknowledgement channel is acknowledged once it is in
//! the store's write-ahead log.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use phosphor_store::Store;
use phosphor_store::model::{Fragment, Protocol};
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// Why a batch was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("ingest queue is full")]
    QueueFull,
    #[error("collector is shutting down")]
    ShuttingDown,
}

/// Why an acknowledged write failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store write failed")]
pub struct WriteFailed;

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Most spans waiting in the queue at once.
    pub queue_spans: usize,
    /// Most spans a writer coalesces into one write batch.
    pub max_write_spans: usize,
    /// Writer threads.
    pub writers: usize,
}

/// Most spans waiting in the queue by default. Batched UDP at full speed
/// keeps the queue full: with 50,000 the server peaked at 258–267 MiB, with
/// 20,000 at 229–250 MiB, storing about 5% less (five runs each, two
/// cores; see BENCHMARKS.md). At 100,000 annotations a second 20,000 still
/// lost nothing: the UDP receiver waits for room, and the kernel's receive
/// buffer holds the datagrams meanwhile.
pub const DEFAULT_QUEUE_SPANS: usize = 20_000;

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            queue_spans: DEFAULT_QUEUE_SPANS,
            max_write_spans: 4_096,
            writers: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        }
    }
}

enum Job {
    Batch {
        fragments: Vec<Fragment>,
        ack: Option<Ack>,
    },
    Close,
}

/// A cheap handle to the ingest queue, cloned into every receiver.
#[derive(Clone)]
pub struct Ingest {
    /// One queue per writer.
    tx: Arc<[mpsc::Sender<Job>]>,
    /// The writer the next batch of spans goes to.
    turn: Arc<AtomicUsize>,
    gauge: QueueGauge,
    queued: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    capacity: usize,
    metrics: Metrics,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// The writer threads; [`Writer::join`] waits for them to drain the queue.
#[derive(Debug)]
pub struct Writer {
    handles: Vec<JoinHandle<()>>,
}

impl Writer {
    /// Waits until everything queued before [`Ingest::close`] is written.
    pub fn join(self) {
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// Publishes the queue depth. Every update reads the depth and sets the
/// gauge under one lock, so the last update (made after the last change)
/// wins, whichever thread makes it.
#[derive(Debug, Clone, Default)]
struct QueueGauge(Arc<std::sync::Mutex<()>>);

impl QueueGauge {
    fn publish(&self, queued: &AtomicUsize, metrics: &Metrics) {
        let _held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        metrics
            .queue_spans
            .set(queued.load(Ordering::Acquire) as i64);
    }
}

/// Starts the writer threads over `store`.
pub fn start(store: Arc<Store>, config: PipelineConfig, metrics: Metrics) -> (Ingest, Writer) {
    let queued = Arc::new(AtomicUsize::new(0));
    let gauge = QueueGauge::default();
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for i in 0..config.writers.max(1) {
        let (tx, rx) = mpsc::channel();
        senders.push(tx);
        let (store, queued, metrics) = (store.clone(), queued.clone(), metrics.clone());
        let gauge = gauge.clone();
        let max = config.max_write_spans;
        handles.push(
            std::thread::Builder::new()
                .name(format!("phosphor-writer-{i}"))
                .spawn(move || writer_loop(&store, &rx, &queued, &gauge, max, &metrics))
                .expect("spawn writer thread"),
        );
    }
    let ingest = Ingest {
        tx: senders.into(),
        gauge,
        turn: Arc::new(AtomicUsize::new(0)),
        queued,
        closed: Arc::new(AtomicBool::new(false)),
        capacity: config.queue_spans,
        metrics,
    };
    (ingest, Writer { handles })
}

fn writer_loop(
    store: &Store,
    rx: &mpsc::Receiver<Job>,
    queued: &AtomicUsize,
    gauge: &QueueGauge,
    max_spans: usize,
    metrics: &Metrics,
) {
    let mut closing = false;
    while !closing {
        let first = match rx.recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let mut fragments = Vec::new();
        let mut acks = Vec::new();
        closing |= absorb(first, &mut fragments, &mut acks);
        // Coalesce what is already waiting; after Close, drain everything.
        while closing || fragments.len() < max_spans {
            match rx.try_recv() {
                Ok(job) => closing |= absorb(job, &mut fragments, &mut acks),
                Err(_) => break,
            }
        }
        if fragments.is_empty() {
            continue;
        }
        let n = fragments.len();
        let result = store.write(&fragments);
        queued.fetch_sub(n, Ordering::AcqRel);
        gauge.publish(queued, metrics);
        metrics.write_batches.inc();
        let outcome = match result {
            Ok(()) => {
                metrics.written.inc_by(n as u64);
                Ok(())
            }
            Err(e) => {
                metrics.write_errors.inc();
                tracing::error!(error = %e, spans = n, "store write failed");
                Err(WriteFailed)
            }
        };
        for ack in acks {
            let _ = ack.send(outcome.clone());
        }
    }
}

type Ack = oneshot::Sender<Result<(), WriteFailed>>;

/// Adds a job to the write being gathered; true when it is the Close marker.
fn absorb(job: Job, fragments: &mut Vec<Fragment>, acks: &mut Vec<Ack>) -> bool {
    match job {
        Job::Batch { fragments: f, ack } => {
            fragments.extend(f);
            acks.extend(ack);
            false
        }
        Job::Close => true,
    }
}

impl Ingest {
    /// Queues fragments without waiting. With `ack`, the returned receiver
    /// resolves once the fragments are in the write-ahead log.
    fn enqueue(
        &self,
        protocol: Protocol,
        fragments: Vec<Fragment>,
        ack: Option<Ack>,
    ) -> Result<(), Refusal> {
        let n = fragments.len();
        let label = Metrics::label(protocol);
        if self.closed.load(Ordering::Acquire) {
            return Err(Refusal::ShuttingDown);
        }
        let prev = self.queued.fetch_add(n, Ordering::AcqRel);
        if prev + n > self.capacity && prev > 0 {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(Refusal::QueueFull);
        }
        // The gauge is set before the batch can reach a writer, so that the
        // writer's own update, made after it wrote the batch, comes later:
        // once the queue drains the gauge reads 0.
        self.gauge.publish(&self.queued, &self.metrics);
        let has_annotations = fragments
            .iter()
            .any(|f| matches!(f, Fragment::Annotation(_)));
        let sent = if has_annotations && ack.is_none() && self.tx.len() > 1 {
            // Each trace's annotations always go to the same writer.
            let mut shards: Vec<Vec<Fragment>> = vec![Vec::new(); self.tx.len()];
            for f in fragments {
                let shard = f.trace_id().0[15] as usize % shards.len();
                shards[shard].push(f);
            }
            shards
                .into_iter()
                .enumerate()
                .filter(|(_, f)| !f.is_empty())
                .all(|(i, fragments)| {
                    self.tx[i]
                        .send(Job::Batch {
                            fragments,
                            ack: None,
                        })
                        .is_ok()
                })
        } else {
            let writer = if has_annotations {
                0
            } else {
                self.turn.fetch_add(1, Ordering::Relaxed) % self.tx.len()
            };
            self.tx[writer].send(Job::Batch { fragments, ack }).is_ok()
        };
        if !sent {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.gauge.publish(&self.queued, &self.metrics);
            return Err(Refusal::ShuttingDown);
        }
        self.metrics.accepted.get_or_create(&label).inc_by(n as u64);
        Ok(())
    }

    /// Whether `n` more spans fit in the queue now (a lone batch always
    /// fits an empty queue).
    pub fn has_room(&self, n: usize) -> bool {
        let queued = self.queued.load(Ordering::Acquire);
        queued == 0 || queued + n <= self.capacity
    }

    /// Queues fragments, fire and forget (UDP). What does not fit is
    /// dropped and counted.
    pub fn submit(&self, protocol: Protocol, fragments: Vec<Fragment>) -> Result<(), Refusal> {
        let n = fragments.len() as u64;
        self.enqueue(protocol, fragments, None).inspect_err(|_| {
            self.metrics
                .dropped
                .get_or_create(&Metrics::label(protocol))
                .inc_by(n);
        })
    }

    /// Queues fragments and waits until they are in the write-ahead log. A
    /// refusal is counted; the caller answers with a retryable error.
    pub async fn submit_acked(
        &self,
        protocol: Protocol,
        fragments: Vec<Fragment>,
    ) -> Result<Result<(), WriteFailed>, Refusal> {
        if fragments.is_empty() {
            return Ok(Ok(()));
        }
        let n = fragments.len() as u64;
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.enqueue(protocol, fragments, Some(tx)) {
            self.metrics
                .refused
                .get_or_create(&Metrics::label(protocol))
                .inc_by(n);
            return Err(e);
        }
        Ok(rx.await.unwrap_or(Err(WriteFailed)))
    }

    /// Stops taking batches; the writers drain what is queued and exit.
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            for tx in self.tx.iter() {
                let _ = tx.send(Job::Close);
            }
        }
    }

    /// The collector's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Pretends `n` spans are waiting (tests of a full queue).
    #[cfg(test)]
    pub(crate) fn hold(&self, n: usize) {
        self.queued.fetch_add(n, Ordering::SeqCst);
    }

    /// Undoes [`Ingest::hold`].
    #[cfg(test)]
    pub(crate) fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phosphor_store::StoreConfig;
    use phosphor_store::model::*;

    fn frag(trace: u8) -> Fragment {
        Fragment::Annotation(Annotation {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([1; 8]),
            parent_id: None,
            legacy: LegacyIds::default(),
            kind: AnnotationType::ClientSend,
            one_way: false,
            timestamp_us: 1,
            duration_us: 0,
            hostname: Default::default(),
            origin: "a".into(),
            destination: Default::default(),
            payload: Default::default(),
            attributes: vec![],
        })
    }

    #[tokio::test]
    async fn acked_batches_are_readable_and_close_drains() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), &StoreConfig::default()).unwrap());
        let (ingest, writer) = start(store.clone(), PipelineConfig::default(), Metrics::default());
        ingest
            .submit_acked(Protocol::OtlpGrpc, vec![frag(1)])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.trace(TraceId([1; 16])).unwrap().len(), 1);
        ingest.submit(Protocol::PhosphorUdp, vec![frag(2)]).unwrap();
        ingest.close();
        writer.join();
        assert_eq!(store.trace(TraceId([2; 16])).unwrap().len(), 1);
        assert_eq!(
            ingest.submit(Protocol::PhosphorUdp, vec![frag(3)]),
            Err(Refusal::ShuttingDown)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_queue_gauge_reads_zero_once_everything_is_written() {
        // The gauge was once set after the batch was handed to the writer,
        // so a stale non-zero value could land after the writer had emptied
        // the queue and stay there until the next write (seen by the load
        // tool, which waits for the queue to drain). That race needs the
        // sender to be preempted at the wrong moment and is not reproduced
        // reliably here; this checks the invariant under concurrent senders.
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), &StoreConfig::default()).unwrap());
        let metrics = Metrics::default();
        let (ingest, writer) = start(store, PipelineConfig::default(), metrics.clone());
        let mut tasks = Vec::new();
        for t in 0..4u8 {
            let ingest = ingest.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..100 {
                    ingest
                        .submit_acked(Protocol::OtlpGrpc, vec![frag(t)])
                        .await
                        .unwrap()
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(metrics.queue_spans.get(), 0);
        assert_eq!(metrics.written.get(), 400);
        ingest.close();
        writer.join();
    }

    #[test]
    fn annotations_are_split_across_writers_by_trace_and_all_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), &StoreConfig::default()).unwrap());
        let metrics = Metrics::default();
        let config = PipelineConfig {
            writers: 3,
            ..PipelineConfig::default()
        };
        let (ingest, writer) = start(store.clone(), config, metrics.clone());
        // Both ends of every side, in separate batches, for 50 traces.
        for kind in [AnnotationType::ClientSend, AnnotationType::ClientRecv] {
            let batch: Vec<Fragment> = (1..=50u8)
                .map(|t| {
                    let Fragment::Annotation(mut a) = frag(t) else {
                        unreachable!()
                    };
                    a.kind = kind;
                    a.timestamp_us = if kind == AnnotationType::ClientSend {
                        1_000
                    } else {
                        1_500
                    };
                    Fragment::Annotation(a)
                })
                .collect();
            ingest.submit(Protocol::PhosphorUdp, batch).unwrap();
        }
        ingest.close();
        writer.join();
        assert_eq!(metrics.written.get(), 100);
        assert_eq!(metrics.queue_spans.get(), 0);
        for t in 1..=50u8 {
            assert_eq!(store.trace(TraceId([t; 16])).unwrap().len(), 2, "trace {t}");
        }
        // Each side was indexed with both ends: its duration is known.
        let hits = store
            .search(&phosphor_store::SearchQuery {
                min_duration_us: Some(500),
                max_duration_us: Some(500),
                start_us: 0,
                end_us: 10_000,
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(hits.len(), 50);
    }

    #[test]
    fn a_full_queue_refuses_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), &StoreConfig::default()).unwrap());
        let metrics = Metrics::default();
        let (ingest, writer) = start(
            store,
            PipelineConfig {
                queue_spans: 2,
                max_write_spans: 16,
                writers: 2,
            },
            metrics.clone(),
        );
        // Hold the queue full by faking queued spans.
        assert!(ingest.has_room(2));
        ingest.hold(2);
        assert!(!ingest.has_room(1));
        let r = ingest.submit(Protocol::PhosphorUdp, vec![frag(1), frag(2)]);
        assert_eq!(r, Err(Refusal::QueueFull));
        let label = Metrics::label(Protocol::PhosphorUdp);
        assert_eq!(metrics.dropped.get_or_create(&label).get(), 2);
        assert_eq!(metrics.accepted.get_or_create(&label).get(), 0);
        ingest.release(2);
        ingest.close();
        writer.join();
    }
}
