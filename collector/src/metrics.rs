//! The collector's metrics: `phosphor_collector_*`, labelled by protocol
//! (a bounded set), counted per batch rather than per span.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use phosphor_store::model::Protocol;

/// The `protocol` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    pub protocol: &'static str,
}

/// Counters of everything that reaches the collector.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// Spans (or annotations) decoded from requests and datagrams.
    pub received: Family<ProtocolLabel, Counter>,
    /// Spans handed to the store.
    pub accepted: Family<ProtocolLabel, Counter>,
    /// Spans refused with a retryable error because the queue was full.
    pub refused: Family<ProtocolLabel, Counter>,
    /// Spans dropped without a channel to say so (UDP, queue full).
    pub dropped: Family<ProtocolLabel, Counter>,
    /// Spans rejected as invalid inside an otherwise good request.
    pub rejected: Family<ProtocolLabel, Counter>,
    /// Requests or datagrams that could not be decoded at all.
    pub malformed: Family<ProtocolLabel, Counter>,
    /// UDP datagrams received.
    pub udp_datagrams: Counter,
    /// Spans waiting in the ingest queue.
    pub queue_spans: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Fragments written to the store.
    pub written: Counter<u64, AtomicU64>,
    /// Store write batches.
    pub write_batches: Counter,
    /// Store writes that failed.
    pub write_errors: Counter,
}

impl Metrics {
    /// Registers every metric under `phosphor_collector_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("phosphor_collector");
        r.register(
            "received_spans",
            "Spans and annotations decoded",
            self.received.clone(),
        );
        r.register(
            "accepted_spans",
            "Spans and annotations queued for the store",
            self.accepted.clone(),
        );
        r.register(
            "refused_spans",
            "Spans refused with a retryable error (queue full)",
            self.refused.clone(),
        );
        r.register(
            "dropped_spans",
            "Spans dropped without a reply channel (UDP, queue full)",
            self.dropped.clone(),
        );
        r.register(
            "rejected_spans",
            "Invalid spans rejected inside a good request",
            self.rejected.clone(),
        );
        r.register(
            "malformed_requests",
            "Requests and datagrams that could not be decoded",
            self.malformed.clone(),
        );
        r.register(
            "udp_datagrams",
            "UDP datagrams received",
            self.udp_datagrams.clone(),
        );
        r.register(
            "queue_spans",
            "Spans waiting in the ingest queue",
            self.queue_spans.clone(),
        );
        r.register(
            "written_spans",
            "Spans and annotations written to the store",
            self.written.clone(),
        );
        r.register(
            "write_batches",
            "Store write batches",
            self.write_batches.clone(),
        );
        r.register(
            "write_errors",
            "Store writes that failed",
            self.write_errors.clone(),
        );
    }

    /// The counter family's entry for `protocol`.
    pub fn label(protocol: Protocol) -> ProtocolLabel {
        ProtocolLabel {
            protocol: protocol.as_str(),
        }
    }
}
