//! `phosphor bench ingest`: send for a while, then report.
//!
//! A generator thread makes and encodes payloads ahead of time into a short
//! queue. For OTLP and Zipkin a dispatcher keeps at most `concurrency`
//! requests in flight; at a fixed rate it releases each payload when the
//! items sent so far are due (`sent / rate` after the start), with `max` as
//! soon as a request slot is free. A refused or failed request holds its
//! slot for a short back-off, as a real exporter would. For UDP a blocking
//! thread sends datagrams at the paced rate (or as fast as the socket
//! takes them). The server's `/metrics` are read before and after (once its
//! queue has drained) to say what it received, stored and dropped.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

use crate::encode::{Payload, Replay, Source};
use crate::scrape::{self, Samples};
use crate::shape::{Generator, Shape};
use crate::stats::{self, Latency, count, mib, rate};
use crate::transport::{Client, Outcome};
use crate::{Error, IngestArgs, Protocol, Rate, Result};

/// How long a request slot rests after a refusal or an error.
const BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait for requests still in flight when sending stops.
const DRAIN_REQUESTS: Duration = Duration::from_secs(60);
/// Longest wait for the server's queue to drain.
const DRAIN_SERVER: Duration = Duration::from_secs(120);

/// A run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub protocol: Protocol,
    /// Where payloads go.
    pub target: SocketAddr,
    /// The server's HTTP address (for `/metrics`).
    pub http: SocketAddr,
    pub rate: Rate,
    /// Stop sending after this long (None: when `limit` is reached).
    pub duration: Option<Duration>,
    /// Stop after this many items.
    pub limit: Option<u64>,
    pub batch: usize,
    pub concurrency: usize,
    pub max_datagram: usize,
    pub shape: Shape,
    /// Items made before the clock starts and sent over and over under new
    /// trace IDs (0: every payload made anew).
    pub pool: u64,
    /// Print a progress line a second (stderr).
    pub progress: bool,
    /// The progress line's prefix.
    pub label: &'static str,
}

impl Config {
    /// The settings of `phosphor bench ingest`.
    pub fn from_args(a: &IngestArgs) -> Result<Config> {
        if a.batch == 0 || a.concurrency == 0 {
            return Err(Error::Args(
                "--batch and --concurrency are at least 1".into(),
            ));
        }
        if a.max_datagram < 64 || a.max_datagram > 65_507 {
            return Err(Error::Args(
                "--max-datagram is from 64 to 65507 bytes".into(),
            ));
        }
        Ok(Config {
            protocol: a.protocol,
            target: a.server.of(a.protocol),
            http: a.server.http_addr,
            rate: a.rate,
            duration: match (a.duration, a.spans) {
                (Some(d), _) => Some(d),
                (None, Some(_)) => None,
                (None, None) => Some(Duration::from_secs(10)),
            },
            limit: a.spans,
            batch: a.batch,
            concurrency: a.concurrency,
            max_datagram: a.max_datagram,
            shape: a.shape.shape()?,
            pool: a.pool,
            progress: !a.quiet,
            label: "ingest",
        })
    }
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    requests: AtomicU64,
    acked: AtomicU64,
    rejected: AtomicU64,
    refused: AtomicU64,
    refused_requests: AtomicU64,
    errors: AtomicU64,
    error_requests: AtomicU64,
    in_flight: AtomicI64,
    /// Sending has stopped; what is left is waiting for the server.
    sending_done: std::sync::atomic::AtomicBool,
    latencies: Mutex<Vec<u64>>,
    first_error: Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, items: u64, why: String) {
        self.errors.fetch_add(items, Ordering::Relaxed);
        self.error_requests.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().expect("lock");
        if first.is_none() {
            *first = Some(why);
        }
    }
}

/// The generated traces' shape, as reported.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShapeReport {
    pub attrs: usize,
    pub events: f64,
    pub error_rate: f64,
    pub width: usize,
    pub depth: usize,
    pub services: usize,
    pub seed: u64,
    pub spans_per_trace: usize,
}

impl From<&Shape> for ShapeReport {
    fn from(s: &Shape) -> ShapeReport {
        ShapeReport {
            attrs: s.attrs,
            events: s.events,
            error_rate: s.error_rate,
            width: s.width,
            depth: s.depth,
            services: s.services,
            seed: s.seed,
            spans_per_trace: s.spans_per_trace(),
        }
    }
}

/// What the server counted over the run (changes in its `/metrics`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerCounts {
    /// Whether the server's queue drained and its counters settled before
    /// they were read.
    pub drained: bool,
    /// UDP datagrams the server read.
    pub datagrams: Option<u64>,
    /// Spans or annotations decoded, for this protocol.
    pub received: u64,
    /// Queued for the store, for this protocol.
    pub accepted: u64,
    /// Refused with a retryable error (queue full), for this protocol.
    pub refused: u64,
    /// Dropped (UDP with the queue full), for this protocol.
    pub dropped: u64,
    /// Invalid ones rejected, for this protocol.
    pub rejected: u64,
    /// Requests or datagrams that could not be decoded, for this protocol.
    pub malformed: u64,
    /// Written to the store, all protocols.
    pub written: u64,
    /// Datagrams the kernel dropped for the server's socket (receive buffer
    /// full), from /proc/net/udp, when the server runs on this machine.
    pub kernel_drops: Option<u64>,
    /// The server's CPU time over the run, in seconds.
    pub cpu_seconds: Option<f64>,
    /// The server's resident memory after the run.
    pub resident_bytes: Option<u64>,
    /// The server's peak resident memory since it started.
    pub peak_resident_bytes: Option<u64>,
}

/// The final report of an ingest run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestReport {
    pub protocol: Protocol,
    pub target: String,
    /// Items a second asked for; null for `max`.
    pub rate: Option<f64>,
    pub batch: usize,
    pub concurrency: Option<usize>,
    pub max_datagram: Option<usize>,
    pub shape: ShapeReport,
    /// Items made before the clock started and sent over and over under
    /// new trace IDs (0: every payload made anew).
    pub pool: u64,
    /// `spans`, or `annotations` for UDP.
    pub unit: &'static str,
    /// How long sending lasted.
    pub seconds: f64,
    /// How long the last answers took to arrive after sending stopped.
    pub drain_seconds: f64,
    /// How long the server then took to write what it had queued (and its
    /// counters to settle).
    pub server_drain_seconds: f64,
    pub sent: u64,
    /// Requests, or datagrams for UDP.
    pub requests: u64,
    /// Acknowledged (null for UDP).
    pub acked: Option<u64>,
    /// Rejected as invalid inside acknowledged requests.
    pub rejected: u64,
    pub refused: u64,
    pub refused_requests: u64,
    pub errors: u64,
    pub error_requests: u64,
    pub first_error: Option<String>,
    pub sent_per_second: f64,
    pub acked_per_second: Option<f64>,
    /// Request to answer, acknowledged requests only.
    pub ack_latency: Option<Latency>,
    /// Null when `/metrics` could not be read.
    pub server: Option<ServerCounts>,
    /// This tool's own CPU time over the run, in seconds.
    pub client_cpu_seconds: Option<f64>,
}

impl IngestReport {
    /// From the first payload sent to the server's counters settling.
    fn wall_seconds(&self) -> f64 {
        (self.seconds + self.drain_seconds + self.server_drain_seconds).max(0.001)
    }

    /// The report as text.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let unit = self.unit;
        let sh = &self.shape;
        let _ = writeln!(
            o,
            "phosphor bench ingest: {} to {}, rate {}, {:.1}s",
            self.protocol.name(),
            self.target,
            self.rate.map_or("max".into(), |r| format!("{}/s", rate(r))),
            self.seconds,
        );
        let how = match (self.protocol, self.concurrency, self.max_datagram) {
            (Protocol::Udp, _, _) => "one annotation a datagram".to_string(),
            (Protocol::UdpBatch, _, Some(m)) => {
                format!("up to {} annotations and {m} bytes a datagram", self.batch)
            }
            (_, Some(c), _) => format!("{} spans a request, {c} in flight", self.batch),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "  {how}; spans of {} attributes and {} events (mean), {}% errors; trees {} wide, {} deep ({} spans) over {} services; seed {}",
            sh.attrs,
            sh.events,
            sh.error_rate * 100.0,
            sh.width,
            sh.depth,
            sh.spans_per_trace,
            sh.services,
            sh.seed
        );
        let _ = writeln!(
            o,
            "  payloads      {}",
            if self.pool == 0 {
                "each made anew while sending".to_string()
            } else {
                format!(
                    "{} {unit} made before the clock started, sent over and over, each round under new trace IDs",
                    count(self.pool)
                )
            }
        );
        let what = if self.protocol.is_udp() {
            "datagrams"
        } else {
            "requests"
        };
        let _ = writeln!(
            o,
            "  sent          {} {unit} in {} {what}, {} {unit}/s",
            count(self.sent),
            count(self.requests),
            rate(self.sent_per_second)
        );
        if let Some(r) = self.rate
            && self.sent_per_second < 0.95 * r
        {
            let _ = writeln!(
                o,
                "  note          below the asked rate: the server (acknowledgements) or this tool (generating) could not keep up"
            );
        }
        if let (Some(acked), Some(per_s)) = (self.acked, self.acked_per_second) {
            let _ = writeln!(
                o,
                "  acknowledged  {} {unit}, {} {unit}/s{}",
                count(acked),
                rate(per_s),
                if self.rejected > 0 {
                    format!(" ({} rejected as invalid)", count(self.rejected))
                } else {
                    String::new()
                }
            );
            let _ = writeln!(
                o,
                "  refused       {} {unit} in {} requests (gRPC UNAVAILABLE, HTTP 429/503)",
                count(self.refused),
                count(self.refused_requests)
            );
        }
        let _ = writeln!(
            o,
            "  errors        {} {unit} in {} {what}{}",
            count(self.errors),
            count(self.error_requests),
            self.first_error
                .as_ref()
                .map(|e| format!("; first: {e}"))
                .unwrap_or_default()
        );
        if let Some(l) = &self.ack_latency {
            let _ = writeln!(
                o,
                "  ack latency   {} ({} requests)",
                l.text(),
                count(l.count as u64)
            );
        }
        match &self.server {
            None => {
                let _ = writeln!(o, "  server        /metrics not readable");
            }
            Some(s) => {
                let _ = writeln!(
                    o,
                    "  server        {}",
                    if s.drained {
                        format!(
                            "counted over the run, after its queue drained ({:.1}s after the last answer):",
                            self.server_drain_seconds
                        )
                    } else {
                        "counted over the run (its queue had NOT drained when read):".to_string()
                    }
                );
                if let Some(d) = s.datagrams {
                    let _ = writeln!(
                        o,
                        "    datagrams   {} received of {} sent{}",
                        count(d),
                        count(self.requests),
                        s.kernel_drops
                            .map(|k| format!(
                                "; {} dropped by the kernel (receive buffer full)",
                                count(k)
                            ))
                            .unwrap_or_default()
                    );
                }
                let _ = writeln!(
                    o,
                    "    {unit:<11} {} received, {} accepted, {} stored (all protocols), {} dropped, {} refused, {} rejected; {} malformed {what}",
                    count(s.received),
                    count(s.accepted),
                    count(s.written),
                    count(s.dropped),
                    count(s.refused),
                    count(s.rejected),
                    count(s.malformed)
                );
                let mut mem = Vec::new();
                if let Some(r) = s.resident_bytes {
                    mem.push(format!("resident {}", mib(r)));
                }
                if let Some(p) = s.peak_resident_bytes {
                    mem.push(format!("peak {} (since it started)", mib(p)));
                }
                if let Some(c) = s.cpu_seconds {
                    mem.push(format!(
                        "CPU {c:.1}s ({:.2} cores)",
                        c / self.wall_seconds()
                    ));
                }
                if !mem.is_empty() {
                    let _ = writeln!(o, "    process     {}", mem.join(", "));
                }
            }
        }
        if let Some(c) = self.client_cpu_seconds {
            let _ = writeln!(
                o,
                "  this tool     CPU {c:.1}s ({:.2} cores), generating and sending",
                c / self.wall_seconds()
            );
        }
        o
    }
}

/// Runs one ingest and returns its report.
pub async fn run(cfg: Config) -> Result<IngestReport> {
    let http = reqwest::Client::new();
    let before = scrape::metrics(&http, cfg.http).await.ok();
    let kernel_before = if cfg.protocol.is_udp() {
        scrape::kernel_udp_drops(cfg.target)
    } else {
        None
    };
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut source = Replay::new(
        Source::new(
            Generator::new(cfg.shape.clone(), nonce),
            cfg.protocol,
            cfg.batch,
            cfg.max_datagram,
        ),
        cfg.pool,
        nonce,
    );
    let limit = cfg.limit.unwrap_or(u64::MAX);
    let mut feed = if cfg.protocol.is_udp() && cfg.pool > 0 {
        // Replayed datagrams are cheap to make: the sending thread makes
        // them itself, with no hand-over from thread to thread for each.
        Feed::Direct {
            source: Box::new(source),
            left: limit,
        }
    } else {
        // A short queue: enough to keep the sender busy, not so much that
        // the generator runs far ahead of it.
        let depth = match cfg.protocol {
            Protocol::Udp => 4_096,
            Protocol::UdpBatch => 64,
            _ => 2 * cfg.concurrency + 4,
        };
        let (tx, rx) = mpsc::channel::<Payload>(depth);
        std::thread::Builder::new()
            .name("bench-generator".into())
            .spawn(move || {
                let mut made = 0u64;
                while made < limit {
                    let p = source.next(limit - made);
                    made += p.items;
                    if tx.blocking_send(p).is_err() {
                        return;
                    }
                }
            })?;
        Feed::Queue(rx)
    };

    let counters = Arc::new(Counters::default());
    let client = if cfg.protocol.is_udp() {
        None
    } else {
        Some(Client::connect(cfg.protocol, cfg.target).await?)
    };
    // The clock starts with the first payload ready (a pool is made by
    // then), and so does the count of this tool's CPU.
    let first = match &mut feed {
        Feed::Queue(rx) => rx.recv().await,
        Feed::Direct { .. } => feed.next_blocking(),
    };
    let Some(first) = first else {
        return Err(Error::Args("nothing to send".into()));
    };
    let cpu_before = scrape::own_cpu_seconds();
    let start = Instant::now();
    let progress = cfg.progress.then(|| {
        tokio::spawn(progress_loop(
            cfg.clone(),
            counters.clone(),
            http.clone(),
            start,
        ))
    });

    let (window, drain) = match client {
        Some(client) => {
            let Feed::Queue(rx) = feed else {
                unreachable!("requests are fed through the queue")
            };
            send_requests(&cfg, client, first, rx, &counters, start).await
        }
        None => {
            let c = counters.clone();
            let cfg2 = cfg.clone();
            tokio::task::spawn_blocking(move || send_datagrams(&cfg2, first, feed, &c, start))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??
        }
    };

    counters.sending_done.store(true, Ordering::Relaxed);
    let server_drain = Instant::now();
    let (after, drained) = match &before {
        Some(b) => match wait_drained(&http, cfg.http, cfg.protocol, b).await {
            Some((s, d)) => (Some(s), d),
            None => (None, false),
        },
        None => (None, false),
    };
    if let Some(p) = progress {
        p.abort();
    }
    let client_cpu = match (cpu_before, scrape::own_cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let kernel_drops = match (kernel_before, scrape::kernel_udp_drops(cfg.target)) {
        (Some(a), Some(b)) if cfg.protocol.is_udp() => Some(b.saturating_sub(a)),
        _ => None,
    };
    let server = match (before, after) {
        (Some(b), Some(a)) => Some(server_counts(&cfg, &b, &a, drained, kernel_drops)),
        _ => None,
    };

    let c = &counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut lat = std::mem::take(&mut *c.latencies.lock().expect("lock"));
    let secs = window.as_secs_f64().max(1e-6);
    let udp = cfg.protocol.is_udp();
    Ok(IngestReport {
        protocol: cfg.protocol,
        target: cfg.target.to_string(),
        rate: match cfg.rate {
            Rate::Max => None,
            Rate::PerSecond(r) => Some(r),
        },
        batch: cfg.batch,
        concurrency: (!udp).then_some(cfg.concurrency),
        max_datagram: (cfg.protocol == Protocol::UdpBatch).then_some(cfg.max_datagram),
        shape: ShapeReport::from(&cfg.shape),
        pool: cfg.pool,
        unit: cfg.protocol.unit(),
        seconds: window.as_secs_f64(),
        drain_seconds: drain.as_secs_f64(),
        server_drain_seconds: server_drain.elapsed().as_secs_f64(),
        sent: get(&c.sent),
        requests: get(&c.requests),
        acked: (!udp).then(|| get(&c.acked)),
        rejected: get(&c.rejected),
        refused: get(&c.refused),
        refused_requests: get(&c.refused_requests),
        errors: get(&c.errors),
        error_requests: get(&c.error_requests),
        first_error: c.first_error.lock().expect("lock").clone(),
        sent_per_second: get(&c.sent) as f64 / secs,
        acked_per_second: (!udp)
            .then(|| get(&c.acked) as f64 / (window + drain).as_secs_f64().max(1e-6)),
        ack_latency: Latency::of(&mut lat),
        server,
        client_cpu_seconds: client_cpu,
    })
}

fn server_counts(
    cfg: &Config,
    b: &Samples,
    a: &Samples,
    drained: bool,
    kernel_drops: Option<u64>,
) -> ServerCounts {
    let label = cfg.protocol.metric_label();
    let d = |name: &str| {
        a.collector(name, label)
            .saturating_sub(b.collector(name, label))
    };
    let gauge = |name: &str| a.has(name).then(|| a.get(name) as u64);
    let cpu = "phosphor_process_cpu_seconds_total";
    ServerCounts {
        drained,
        datagrams: cfg.protocol.is_udp().then(|| {
            a.total("phosphor_collector_udp_datagrams")
                .saturating_sub(b.total("phosphor_collector_udp_datagrams"))
        }),
        received: d("received_spans"),
        accepted: d("accepted_spans"),
        refused: d("refused_spans"),
        dropped: d("dropped_spans"),
        rejected: d("rejected_spans"),
        malformed: d("malformed_requests"),
        written: a
            .total("phosphor_collector_written_spans")
            .saturating_sub(b.total("phosphor_collector_written_spans")),
        kernel_drops,
        cpu_seconds: (a.has(cpu) && b.has(cpu)).then(|| a.get(cpu) - b.get(cpu)),
        resident_bytes: gauge("phosphor_process_resident_memory_bytes"),
        peak_resident_bytes: gauge("phosphor_process_peak_resident_memory_bytes"),
    }
}

/// Waits until the server has written what it accepted for `protocol`
/// since `before` (or its queue is empty) and its counters stop moving;
/// returns the last scrape and whether it settled.
async fn wait_drained(
    http: &reqwest::Client,
    addr: SocketAddr,
    protocol: Protocol,
    before: &Samples,
) -> Option<(Samples, bool)> {
    let deadline = Instant::now() + DRAIN_SERVER;
    let label = protocol.metric_label();
    let written = "phosphor_collector_written_spans";
    let mut last: Option<(u64, u64, u64)> = None;
    let mut steady = 0;
    loop {
        let s = scrape::metrics(http, addr).await.ok()?;
        let now = (
            s.collector("received_spans", label),
            s.total(written),
            s.total("phosphor_collector_udp_datagrams"),
        );
        let accepted = s
            .collector("accepted_spans", label)
            .saturating_sub(before.collector("accepted_spans", label));
        let empty = s.get("phosphor_collector_queue_spans") <= 0.0
            || s.total(written).saturating_sub(before.total(written)) >= accepted;
        if empty && last == Some(now) {
            steady += 1;
        } else {
            steady = 0;
        }
        if steady >= 2 {
            return Some((s, true));
        }
        if Instant::now() >= deadline {
            return Some((s, false));
        }
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Releases payloads to up to `concurrency` requests in flight; returns
/// how long sending lasted and how long the last answers took after.
async fn send_requests(
    cfg: &Config,
    client: Client,
    first: Payload,
    mut rx: mpsc::Receiver<Payload>,
    counters: &Arc<Counters>,
    start: Instant,
) -> (Duration, Duration) {
    let slots = Arc::new(Semaphore::new(cfg.concurrency));
    let deadline = cfg
        .duration
        .map(|d| tokio::time::Instant::from_std(start + d));
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let end = deadline.unwrap_or(far);
    let mut next = Some(first);
    let mut sent_items = 0u64;
    while let Some(p) = next.take() {
        if let Rate::PerSecond(r) = cfg.rate {
            let due = tokio::time::Instant::from_std(
                start + Duration::from_secs_f64(sent_items as f64 / r),
            );
            tokio::time::sleep_until(due.min(end)).await;
        }
        if tokio::time::Instant::now() >= end {
            break;
        }
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore open"),
            _ = tokio::time::sleep_until(end) => break,
        };
        sent_items += p.items;
        counters.sent.fetch_add(p.items, Ordering::Relaxed);
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let c = counters.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let outcome = client.send(p.body).await;
            let took = t.elapsed();
            match outcome {
                Outcome::Acked { rejected } => {
                    c.acked
                        .fetch_add(p.items.saturating_sub(rejected), Ordering::Relaxed);
                    c.rejected.fetch_add(rejected, Ordering::Relaxed);
                    c.latencies.lock().expect("lock").push(stats::micros(took));
                    c.in_flight.fetch_sub(1, Ordering::Relaxed);
                }
                Outcome::Refused => {
                    c.refused.fetch_add(p.items, Ordering::Relaxed);
                    c.refused_requests.fetch_add(1, Ordering::Relaxed);
                    c.in_flight.fetch_sub(1, Ordering::Relaxed);
                    tokio::time::sleep(BACKOFF).await;
                }
                Outcome::Failed(why) => {
                    c.error(p.items, why);
                    c.in_flight.fetch_sub(1, Ordering::Relaxed);
                    tokio::time::sleep(BACKOFF).await;
                }
            }
            drop(permit);
        });
        next = tokio::select! {
            p = rx.recv() => p,
            _ = tokio::time::sleep_until(end) => None,
        };
    }
    let window = start.elapsed();
    drop(rx);
    let stopped = Instant::now();
    let all = u32::try_from(cfg.concurrency).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN_REQUESTS, slots.acquire_many(all)).await;
    (window, stopped.elapsed())
}

/// Sends datagrams from a blocking thread; returns how long it took.
fn send_datagrams(
    cfg: &Config,
    first: Payload,
    mut feed: Feed,
    counters: &Counters,
    start: Instant,
) -> Result<(Duration, Duration)> {
    let local: SocketAddr = if cfg.target.is_ipv4() {
        "0.0.0.0:0".parse().expect("address")
    } else {
        "[::]:0".parse().expect("address")
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(cfg.target)?;
    let end = cfg.duration.map(|d| start + d);
    let mut next = Some(first);
    let mut sent_items = 0u64;
    while let Some(p) = next.take() {
        if let Rate::PerSecond(r) = cfg.rate {
            // Up to a millisecond early, so that the thread wakes about once
            // a millisecond rather than once a datagram.
            let due = start + Duration::from_secs_f64(sent_items as f64 / r);
            let now = Instant::now();
            if due > now + PACING_SLACK {
                std::thread::sleep(due - now);
            }
        }
        if end.is_some_and(|e| Instant::now() >= e) {
            break;
        }
        sent_items += p.items;
        counters.sent.fetch_add(p.items, Ordering::Relaxed);
        counters.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = socket.send(&p.body) {
            counters.error(p.items, format!("send: {e}"));
        }
        next = feed.next_blocking();
    }
    Ok((start.elapsed(), Duration::ZERO))
}

/// How far ahead of its schedule the UDP sender may be at a fixed rate.
const PACING_SLACK: Duration = Duration::from_millis(1);

/// Where the sender takes its payloads from.
enum Feed {
    /// Made on the generator thread.
    Queue(mpsc::Receiver<Payload>),
    /// Made by the sending thread itself, `left` items more at most.
    Direct { source: Box<Replay>, left: u64 },
}

impl Feed {
    /// The next payload (blocking); None when there are no more.
    fn next_blocking(&mut self) -> Option<Payload> {
        match self {
            Feed::Queue(rx) => rx.blocking_recv(),
            Feed::Direct { source, left } => {
                if *left == 0 {
                    return None;
                }
                let p = source.next(*left);
                *left -= p.items.min(*left);
                Some(p)
            }
        }
    }
}

/// Prints a line a second: rates over the last second, totals, in flight;
/// once sending has stopped, the server's queue and write rate while it
/// drains.
async fn progress_loop(cfg: Config, c: Arc<Counters>, http: reqwest::Client, start: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let label = cfg.protocol.metric_label();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut last = (get(&c.sent), get(&c.acked), get(&c.requests));
    let mut server_last: Option<(u64, u64)> = None;
    let mut last_t = Instant::now();
    loop {
        tick.tick().await;
        let dt = last_t.elapsed().as_secs_f64().max(1e-3);
        last_t = Instant::now();
        let now = (get(&c.sent), get(&c.acked), get(&c.requests));
        let unit = cfg.protocol.unit();
        let done = c.sending_done.load(Ordering::Relaxed);
        // The server's side: needed for UDP (no acknowledgements) and while
        // waiting for its queue.
        let server = if cfg.protocol.is_udp() || done {
            scrape::metrics(&http, cfg.http).await.ok().map(|s| {
                (
                    s.collector("received_spans", label),
                    s.total("phosphor_collector_written_spans"),
                    s.get("phosphor_collector_queue_spans").max(0.0) as u64,
                )
            })
        } else {
            None
        };
        let per_s = |n: u64, l: u64| rate(n.saturating_sub(l) as f64 / dt);
        let line = if done {
            match (server, server_last) {
                (Some((_, w, q)), Some((_, lw))) => format!(
                    "sending done; waiting for the server: {} queued, storing {}/s",
                    count(q),
                    per_s(w, lw)
                ),
                _ => "sending done; waiting for the server".to_string(),
            }
        } else if cfg.protocol.is_udp() {
            let received = match (server, server_last) {
                (Some((r, _, _)), Some((lr, _))) => {
                    format!("; server received {}/s", per_s(r, lr))
                }
                _ => String::new(),
            };
            format!(
                "sent {} {unit}/s in {} datagrams/s{received}; errors {}",
                per_s(now.0, last.0),
                per_s(now.2, last.2),
                count(get(&c.errors)),
            )
        } else {
            format!(
                "sent {} {unit}/s, acked {}/s; refused {}, errors {}, in flight {}",
                per_s(now.0, last.0),
                per_s(now.1, last.1),
                count(get(&c.refused)),
                count(get(&c.errors)),
                c.in_flight.load(Ordering::Relaxed),
            )
        };
        eprintln!(
            "[{} {:>4.0}s] {line}",
            cfg.label,
            start.elapsed().as_secs_f64()
        );
        if let Some((r, w, _)) = server {
            server_last = Some((r, w));
        }
        last = now;
    }
}
