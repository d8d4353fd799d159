//! phosphor-query: trace assembly, the query service and the JSON API.
//!
//! Layout:
//! - [`assemble`]: fragments to a tree (annotation merge, placeholders for
//!   missing parents, ordering).
//! - [`QueryService`]: the one query path that the JSON API and the web pages
//!   share; store calls run on blocking threads.
//! - [`api`]: `/api/v1` routes and their JSON shapes.

pub mod api;
pub mod assemble;

use std::sync::Arc;

use phosphor_store::model::TraceId;
use phosphor_store::{Operation, Store};

pub use assemble::{Node, Trace};

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

/// A short description of a trace, for lists.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    pub legacy_id: Option<String>,
    pub root_service: String,
    pub root_name: String,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub span_count: usize,
    pub error_count: usize,
    pub services: Vec<String>,
}

impl TraceSummary {
    fn of(t: &Trace) -> TraceSummary {
        let root = t.spans.iter().find(|n| !n.placeholder).or(t.root());
        TraceSummary {
            trace_id: t.trace_id,
            legacy_id: t.legacy_id.clone(),
            root_service: root.map(|r| r.service.clone()).unwrap_or_default(),
            root_name: root.map(|r| r.name.clone()).unwrap_or_default(),
            start_ns: t.start_ns,
            duration_ns: t.duration_ns(),
            span_count: t.spans.iter().filter(|n| !n.placeholder).count(),
            error_count: t.error_count(),
            services: t.services().into_iter().map(str::to_string).collect(),
        }
    }
}

/// The query path shared by the JSON API and the web UI.
#[derive(Debug, Clone)]
pub struct QueryService {
    store: Arc<Store>,
}

impl QueryService {
    /// A query service over `store`.
    pub fn new(store: Arc<Store>) -> QueryService {
        QueryService { store }
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
        let (trace_id, _) = TraceId::parse(id)?;
        let id = id.to_string();
        self.blocking(move |store| {
            let fragments = store.trace(trace_id)?;
            if fragments.is_empty() {
                return Err(Error::TraceNotFound(id));
            }
            Ok(assemble::assemble(trace_id, fragments))
        })
        .await
    }

    /// The most recently written traces, newest first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<TraceSummary>> {
        self.blocking(move |store| {
            let mut out = Vec::new();
            for id in store.recent_traces(limit)? {
                let t = assemble::assemble(id, store.trace(id)?);
                out.push(TraceSummary::of(&t));
            }
            Ok(out)
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
