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
pub mod otlp_proto;
pub mod pipeline;
pub mod udp;
pub mod upload;
pub mod zipkin;

#[cfg(test)]
mod test_support;

use std::future::Future;

use phosphor_store::model::Protocol;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

/// HTTP/2 flow-control window of one OTLP/gRPC request: a whole export of
/// a few thousand spans goes through without waiting for the server.
const GRPC_STREAM_WINDOW: u32 = 2 << 20;
/// HTTP/2 flow-control window of one OTLP/gRPC connection (several
/// requests in flight).
const GRPC_CONNECTION_WINDOW: u32 = 8 << 20;

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
    // Accepted connections are set up here, not by tonic (which does so
    // only for listeners it binds itself): without TCP_NODELAY, and with
    // HTTP/2's 64 KiB flow-control windows, an export of 512 spans (about
    // 180 KiB) waited on window updates held back by Nagle's algorithm,
    // about 16 ms a request on loopback.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        })
    });
    tonic::transport::Server::builder()
        .initial_stream_window_size(GRPC_STREAM_WINDOW)
        .initial_connection_window_size(GRPC_CONNECTION_WINDOW)
        .layer(count)
        .add_service(receiver.grpc_service())
        .serve_with_incoming_shutdown(incoming, shutdown)
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

/// Serves HTTP routes (the OTLP/HTTP and Zipkin receivers, the UI and
/// API) on a bound listener until `shutdown` resolves. Connections get
/// TCP_NODELAY: the last small segment of an answer is not held back
/// waiting for the client's (delayed) acknowledgement of the one before.
pub async fn serve_http(
    listener: TcpListener,
    routes: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await
}
