//! phosphor-collector: the receivers and the ingest pipeline.
//!
//! Layout:
//! - [`decode`]: pure functions from wire messages (OTLP, phosphor
//!   annotations) to the model.
//! - [`pipeline`]: the one ingest path, a bounded queue and a writer thread
//!   that coalesces batches into store write batches.
//! - [`udp`], [`otlp`], [`zipkin`]: the receivers. Each takes a bound socket (and, for
//!   servers, a shutdown future) and never binds by itself.
//! - [`metrics`]: everything received, accepted, refused, dropped, rejected
//!   and malformed, by protocol.

pub mod decode;
pub mod metrics;
pub mod otlp;
pub mod pipeline;
pub mod udp;
pub mod upload;
pub mod zipkin;

#[cfg(test)]
mod test_support;

use std::future::Future;

use phosphor_store::model::Protocol;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

pub use otlp::OtlpReceiver;
pub use pipeline::{Ingest, PipelineConfig, Writer};
pub use zipkin::ZipkinReceiver;

/// Serves OTLP/gRPC on a bound listener until `shutdown` resolves.
pub async fn serve_otlp_grpc(
    listener: TcpListener,
    receiver: OtlpReceiver,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let malformed = receiver_malformed(&receiver);
    // Decoding failures never reach the service: count every non-OK answer
    // other than the retryable UNAVAILABLE as malformed.
    let count =
        tower::util::MapResponseLayer::new(move |resp: axum::http::Response<tonic::body::Body>| {
            if let Some(code) = resp.headers().get("grpc-status")
                && code != "0"
                && code != "14"
            {
                malformed.inc();
            }
            resp
        });
    tonic::transport::Server::builder()
        .layer(count)
        .add_service(receiver.grpc_service())
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

fn receiver_malformed(receiver: &OtlpReceiver) -> prometheus_client::metrics::counter::Counter {
    receiver
        .ingest()
        .metrics()
        .malformed
        .get_or_create(&metrics::Metrics::label(Protocol::OtlpGrpc))
        .clone()
}

/// Serves an HTTP receiver's routes (OTLP/HTTP, Zipkin) on a bound
/// listener until `shutdown` resolves.
pub async fn serve_http(
    listener: TcpListener,
    routes: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await
}
