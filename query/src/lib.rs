//! phosphor-query: trace assembly, the query service and the JSON API.
//!
//! Layout:
//! - [`assemble`]: fragments to a tree (annotation merge, placeholders for
//!   missing parents, ordering).
//! - [`QueryService`]: the one query path that the JSON API and the web pages
//!   share; store calls run on blocking threads.
//! - [`api`]: `/api/v1` routes and their JSON shapes.
//! - [`jaeger`], [`zipkin`]: the Jaeger query API under `/jaeger` and the
//!   Zipkin v2 read API under `/zipkin`, in those systems' JSON shapes.
//! - [`routes`]: all of them together.

pub mod api;
pub mod assemble;
pub mod buffers;
pub mod fastjson;
pub mod jaeger;
pub mod otlp_json;
pub mod params;
pub mod zipkin;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use phosphor_store::model::{SpanId, TraceId};
use phosphor_store::{Dependency, Operation, SearchHit, SearchQuery, Store};

pub use assemble::{Node, Trace};

/// Every query route: `/api/v1`, `/jaeger/api/...`, `/zipkin/api/v2/...`.
pub fn routes(query: QueryService) -> axum::Router {
    api::router(query.clone())
        .nest("/jaeger", jaeger::router(query.clone()))
        .nest("/zipkin", zipkin::router(query))
}

/// Most spans per operation that service statistics read.
pub const STATS_SAMPLE: usize = 20_000;

/// How far in the future (by this server's clock) a span may start and
/// still be found by a search that ends "now".
pub const FUTURE_SLACK_US: u64 = 5 * 60 * 1_000_000;

/// What a query can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed trace id: {0}")]
    BadTraceId(#[from] phosphor_store::model::IdError),
    #[error("trace {0} not found")]
    TraceNotFound(String),
    #[error("store: {0}")]
    Store(#[from] phosphor_store::Error),
    #[error("query task failed: {0}")]
    Task(String),
}

/// The query crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A short description of a trace, for lists: a search hit with its
/// stored summary (never the whole trace).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    pub root_service: String,
    pub root_name: String,
    pub start_us: u64,
    pub duration_us: u64,
    pub span_count: u64,
    pub error_count: u64,
    /// Services with their span counts.
    pub services: Vec<(String, u64)>,
    /// The span that matched the search.
    pub matched_span: SpanId,
    pub matched_span_start_us: u64,
}

impl From<SearchHit> for TraceSummary {
    fn from(h: SearchHit) -> TraceSummary {
        let root = h.summary.root.clone();
        TraceSummary {
            trace_id: h.trace_id,
            root_service: root.as_ref().map(|r| r.service.clone()).unwrap_or_default(),
            root_name: root.map(|r| r.name).unwrap_or_default(),
            start_us: h.summary.start_us.min(h.span_start_us),
            duration_us: h.summary.duration_us(),
            span_count: h.summary.spans,
            error_count: h.summary.errors,
            services: h.summary.services,
            matched_span: h.span_id,
            matched_span_start_us: h.span_start_us,
        }
    }
}

/// The store's size at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSizes {
    /// Every file of the data directory.
    pub disk_bytes: u64,
    /// SST bytes per column family.
    pub column_families: Vec<(String, u64)>,
}

impl StoreSizes {
    fn of(store: &Store) -> Result<StoreSizes> {
        Ok(StoreSizes {
            disk_bytes: store.disk_bytes(),
            column_families: store.column_family_sizes()?,
        })
    }

    /// SST bytes of every column family.
    pub fn sst_bytes(&self) -> u64 {
        self.column_families.iter().map(|(_, b)| b).sum()
    }
}

/// What an on-demand compaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct Compaction {
    pub before: StoreSizes,
    pub after: StoreSizes,
    pub took: Duration,
}

/// A trace read for the API: see [`QueryService::fetch_trace`].
#[derive(Debug)]
pub struct Fetched {
    pub trace: Trace,
    pub pinned: bool,
    /// Reading its records from the store (and its pinned mark).
    pub read: Duration,
    /// Assembling the spans into a tree.
    pub assemble: Duration,
}

/// The query path shared by the JSON API and the web UI.
#[derive(Debug, Clone)]
pub struct QueryService {
    store: Arc<Store>,
    /// Set while an on-demand compaction runs (one at a time).
    compacting: Arc<AtomicBool>,
}

impl QueryService {
    /// A query service over `store`.
    pub fn new(store: Arc<Store>) -> QueryService {
        QueryService {
            store,
            compacting: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Flushes and fully compacts the store, for size measurements; the
    /// sizes before and after. `None` when a compaction is already running.
    pub async fn compact(&self) -> Result<Option<Compaction>> {
        if self.compacting.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        let flag = self.compacting.clone();
        let result = self
            .blocking(|store| {
                let started = Instant::now();
                let before = StoreSizes::of(store)?;
                store.flush()?;
                store.compact()?;
                let after = StoreSizes::of(store)?;
                Ok(Compaction {
                    before,
                    after,
                    took: started.elapsed(),
                })
            })
            .await;
        flag.store(false, Ordering::Release);
        result.map(Some)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Reads and assembles a trace. `id` is 32 (or 16) hex digits, a UUID, or
    /// a legacy phosphor string ID.
    pub async fn trace(&self, id: &str) -> Result<Trace> {
        self.trace_with(id, assemble::Options::default()).await
    }

    /// Reads and assembles a trace with the given options (`raw`: no clock
    /// skew adjustment).
    pub async fn trace_with(&self, id: &str, options: assemble::Options) -> Result<Trace> {
        Ok(self.fetch(id, options, false).await?.trace)
    }

    /// Reads and assembles a trace for the API, with whether it is pinned
    /// and how long reading and assembling took (one trip to the store's
    /// threads).
    pub async fn fetch_trace(&self, id: &str, options: assemble::Options) -> Result<Fetched> {
        self.fetch(id, options, true).await
    }

    /// Reads and assembles a trace, and reads its pinned mark where
    /// `with_pinned` (else `pinned` is false).
    async fn fetch(
        &self,
        id: &str,
        options: assemble::Options,
        with_pinned: bool,
    ) -> Result<Fetched> {
        let (trace_id, _) = TraceId::parse(id)?;
        let id = id.to_string();
        self.blocking(move |store| {
            let started = Instant::now();
            let fragments = store.trace(trace_id)?;
            if fragments.is_empty() {
                return Err(Error::TraceNotFound(id));
            }
            let pinned = with_pinned && store.is_pinned(trace_id)?;
            let read = started.elapsed();
            let trace = assemble::assemble_with(trace_id, fragments, options);
            Ok(Fetched {
                trace,
                pinned,
                read,
                assemble: started.elapsed() - read,
            })
        })
        .await
    }

    /// Traces with a span matching `q`, newest first.
    pub async fn search(&self, q: SearchQuery) -> Result<Vec<TraceSummary>> {
        self.blocking(move |store| {
            Ok(store
                .search(&q)?
                .into_iter()
                .map(TraceSummary::from)
                .collect())
        })
        .await
    }

    /// Now, by the store's clock (Unix microseconds).
    pub fn now_us(&self) -> u64 {
        self.store.now_us()
    }

    /// How long the store keeps data.
    pub fn retention(&self) -> Duration {
        self.store.config().retention
    }

    /// Known attribute keys.
    pub async fn attribute_keys(&self) -> Result<Vec<String>> {
        self.blocking(|store| Ok(store.attribute_keys()?)).await
    }

    /// Recent values of an attribute key.
    pub async fn attribute_values(&self, key: &str, limit: usize) -> Result<Vec<String>> {
        let key = key.to_string();
        self.blocking(move |store| Ok(store.attribute_values(&key, limit)?))
            .await
    }

    /// Service dependency edges over `[start_us, end_us)`.
    pub async fn dependencies(&self, start_us: u64, end_us: u64) -> Result<Vec<Dependency>> {
        self.blocking(move |store| Ok(store.dependencies(start_us, end_us)?))
            .await
    }

    /// Recent request counts, errors and latency percentiles of a service's
    /// operations, over the last `lookback`.
    pub async fn operation_stats(
        &self,
        service: &str,
        lookback: Duration,
    ) -> Result<Vec<phosphor_store::OperationStats>> {
        self.operation_stats_sampled(service, lookback, STATS_SAMPLE)
            .await
    }

    /// As [`QueryService::operation_stats`], reading at most `sample` spans
    /// per operation (the newest).
    pub async fn operation_stats_sampled(
        &self,
        service: &str,
        lookback: Duration,
        sample: usize,
    ) -> Result<Vec<phosphor_store::OperationStats>> {
        let service = service.to_string();
        let end = self.now_us();
        let start = end.saturating_sub(lookback.as_micros() as u64);
        self.blocking(move |store| Ok(store.operation_stats(&service, start, end, sample)?))
            .await
    }

    /// Pins (`true`) or unpins a trace; `TraceNotFound` when there is
    /// nothing to pin or unpin.
    pub async fn set_pinned(&self, id: &str, pinned: bool) -> Result<()> {
        let (trace_id, _) = TraceId::parse(id)?;
        let id = id.to_string();
        self.blocking(move |store| {
            let done = if pinned {
                store.pin(trace_id)?
            } else {
                store.unpin(trace_id)?
            };
            if done {
                Ok(())
            } else {
                Err(Error::TraceNotFound(id))
            }
        })
        .await
    }

    /// Known services.
    pub async fn services(&self) -> Result<Vec<String>> {
        self.blocking(|store| Ok(store.services()?)).await
    }

    /// A service's operations.
    pub async fn operations(&self, service: &str) -> Result<Vec<Operation>> {
        let service = service.to_string();
        self.blocking(move |store| Ok(store.operations(&service)?))
            .await
    }
}
