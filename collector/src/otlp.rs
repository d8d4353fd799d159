//! OTLP receivers: gRPC (`TraceService/Export`) and HTTP (`POST /v1/traces`,
//! protobuf or JSON, optionally gzip).
//!
//! Both call one function, [`OtlpReceiver::export`], which decodes off the
//! async runtime (protobuf read in place by [`otlp_proto`], JSON through
//! prost's messages) into the model: a body that is not a request is refused
//! whole (gRPC INVALID_ARGUMENT, HTTP 400), invalid spans are rejected one by
//! one (`partial_success`), a full queue is a retryable refusal (gRPC
//! UNAVAILABLE, HTTP 503 with Retry-After), and success is answered only once
//! the spans are in the write-ahead log.

use std::convert::Infallible;
use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Buf;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::SERVICE_NAME;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use phosphor_proto::phosphor::RpcStatus;
use phosphor_store::model::Protocol;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{NamedService, UnaryService};

use crate::decode::{self, Limits};
use crate::metrics::Metrics;
use crate::otlp_proto;
use crate::pipeline::{Ingest, Refusal};

/// Seconds a refused client is asked to wait before retrying.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Why an export was not (wholly) taken.
#[derive(Debug)]
pub enum ExportError {
    /// Retry later: queue full, shutting down, or the store failed.
    Unavailable(String),
    /// The body is not an export request; nothing of it was taken.
    Invalid(String),
}

/// An export request as it arrived.
#[derive(Debug)]
pub enum ExportRequest {
    /// Protobuf bytes (OTLP/gRPC, OTLP/HTTP protobuf), read in place.
    Protobuf(Bytes),
    /// An OTLP/JSON body, already parsed.
    Json(ExportTraceServiceRequest),
}

/// The OTLP receiver shared by the gRPC and HTTP transports.
#[derive(Debug, Clone)]
pub struct OtlpReceiver {
    ingest: Ingest,
    limits: Limits,
    /// Largest request accepted, in bytes (after decompression for HTTP).
    max_request_bytes: usize,
}

impl OtlpReceiver {
    /// A receiver handing spans to `ingest`.
    pub fn new(ingest: Ingest, limits: Limits, max_request_bytes: usize) -> OtlpReceiver {
        OtlpReceiver {
            ingest,
            limits,
            max_request_bytes,
        }
    }

    /// Decodes (off the async runtime) and stores one export request.
    pub async fn export(
        &self,
        req: ExportRequest,
        protocol: Protocol,
    ) -> Result<ExportTraceServiceResponse, ExportError> {
        let limits = self.limits.clone();
        let decoded = tokio::task::spawn_blocking(move || match req {
            ExportRequest::Protobuf(body) => otlp_proto::otlp(&body, protocol, &limits)
                .map_err(|e| format!("invalid OTLP protobuf body: {e}")),
            ExportRequest::Json(req) => Ok(decode::otlp(req, protocol, &limits)),
        })
        .await
        .map_err(|e| ExportError::Unavailable(format!("decode task failed: {e}")))?
        .map_err(ExportError::Invalid)?;
        let metrics = self.ingest.metrics();
        let label = Metrics::label(protocol);
        metrics
            .received
            .get_or_create(&label)
            .inc_by(decoded.fragments.len() as u64 + decoded.rejected);
        metrics
            .rejected
            .get_or_create(&label)
            .inc_by(decoded.rejected);
        match self.ingest.submit_acked(protocol, decoded.fragments).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ExportError::Unavailable(e.to_string())),
            Err(Refusal::QueueFull) => {
                return Err(ExportError::Unavailable(
                    "ingest queue is full; retry later".into(),
                ));
            }
            Err(Refusal::ShuttingDown) => {
                return Err(ExportError::Unavailable(
                    "collector is shutting down; retry later".into(),
                ));
            }
        }
        let partial_success = (decoded.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: decoded.rejected as i64,
            error_message: decoded.first_error.unwrap_or_default(),
        });
        Ok(ExportTraceServiceResponse { partial_success })
    }

    /// The gRPC service, accepting gzip.
    pub fn grpc_service(self) -> GrpcTraceService {
        GrpcTraceService { receiver: self }
    }

    /// The OTLP/HTTP routes (`POST /v1/traces`).
    pub fn http_router(self) -> Router {
        // The body limit applies to the bytes on the wire; the limit after
        // gzip is checked while inflating.
        let limit = self.max_request_bytes;
        Router::new()
            .route("/v1/traces", post(http_export))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(self)
    }
}

/// OTLP/gRPC's `TraceService`: tonic's unary handling (framing,
/// compression, the size limit, status codes) around a codec that hands
/// the request over as bytes, so that it is read in place
/// ([`otlp_proto`]) off the async runtime rather than built into prost's
/// messages on it.
#[derive(Debug, Clone)]
pub struct GrpcTraceService {
    receiver: OtlpReceiver,
}

impl NamedService for GrpcTraceService {
    const NAME: &'static str = SERVICE_NAME;
}

/// Whether a gRPC path is `/<service>/Export`, the one method served.
fn is_export(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(SERVICE_NAME))
        == Some("/Export")
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

impl<B> tower::Service<axum::http::Request<B>> for GrpcTraceService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync + 'static>> + Send + 'static,
{
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        if !is_export(req.uri().path()) {
            return Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) });
        }
        let export = Export(self.receiver.clone());
        let max = self.receiver.max_request_bytes;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max);
            Ok(grpc.unary(export, req).await)
        })
    }
}

/// The export method, for tonic's unary handling.
struct Export(OtlpReceiver);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<ExportTraceServiceResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let receiver = self.0.clone();
        Box::pin(async move {
            let body = ExportRequest::Protobuf(request.into_inner());
            match receiver.export(body, Protocol::OtlpGrpc).await {
                Ok(resp) => Ok(tonic::Response::new(resp)),
                Err(ExportError::Unavailable(msg)) => Err(tonic::Status::unavailable(msg)),
                Err(ExportError::Invalid(msg)) => Err(tonic::Status::invalid_argument(msg)),
            }
        })
    }
}

/// Takes a request message as its bytes, and writes the answer with prost.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn encode(&mut self, item: Self::Item, buf: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(buf)
            .map_err(|e| tonic::Status::internal(format!("answer not encoded: {e}")))
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Self::Error> {
        let n = buf.remaining();
        Ok(Some(buf.copy_to_bytes(n)))
    }
}

/// The body format of an OTLP/HTTP request, and of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        })
    }
}

/// An answer in the request's format.
fn reply(format: Format, status: StatusCode, body: impl Message + serde::Serialize) -> Response {
    let bytes = match format {
        Format::Protobuf => body.encode_to_vec(),
        // proto3 JSON leaves unset fields out (`{}` for full success).
        Format::Json => {
            let mut v = serde_json::to_value(&body).unwrap_or_default();
            if let Some(map) = v.as_object_mut() {
                map.retain(|_, x| !x.is_null());
            }
            serde_json::to_vec(&v).unwrap_or_default()
        }
    };
    let mut resp = (status, bytes).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, format.content_type());
    resp
}

/// google.rpc codes used in error bodies.
const RPC_INVALID_ARGUMENT: i32 = 3;
const RPC_UNAVAILABLE: i32 = 14;

#[derive(serde::Serialize)]
struct JsonStatus<'a> {
    code: i32,
    message: &'a str,
}

fn error_reply(format: Format, status: StatusCode, code: i32, message: &str) -> Response {
    let mut resp = match format {
        Format::Protobuf => {
            let body = RpcStatus {
                code,
                message: message.to_string(),
            };
            (status, body.encode_to_vec()).into_response()
        }
        Format::Json => {
            let body = serde_json::to_vec(&JsonStatus { code, message }).unwrap_or_default();
            (status, body).into_response()
        }
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, format.content_type());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    resp
}

/// The media type of a request, lower case, without parameters.
pub(crate) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Inflates a gzip body, refusing more than `limit` bytes of output.
pub(crate) fn inflate(body: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("invalid gzip body: {e}"))?;
    if out.len() > limit {
        return Err(format!(
            "request body is larger than {limit} bytes once inflated"
        ));
    }
    Ok(out)
}

async fn http_export(
    State(receiver): State<OtlpReceiver>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = match content_type(&headers).as_str() {
        "application/x-protobuf" | "application/protobuf" => Format::Protobuf,
        "application/json" => Format::Json,
        other => {
            receiver.count_malformed();
            return error_reply(
                Format::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                RPC_INVALID_ARGUMENT,
                &format!(
                    "unsupported content type {other:?}: send application/x-protobuf or application/json"
                ),
            );
        }
    };
    let bad = |msg: String| {
        receiver.count_malformed();
        error_reply(format, StatusCode::BAD_REQUEST, RPC_INVALID_ARGUMENT, &msg)
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let raw: Bytes = match encoding.as_str() {
        "" | "identity" => body,
        "gzip" => match inflate(&body, receiver.max_request_bytes) {
            Ok(v) => v.into(),
            Err(e) => return bad(e),
        },
        other => {
            receiver.count_malformed();
            return error_reply(
                format,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                RPC_INVALID_ARGUMENT,
                &format!("unsupported content encoding {other:?}: send gzip or none"),
            );
        }
    };
    let req = match format {
        Format::Protobuf => ExportRequest::Protobuf(raw),
        Format::Json => match serde_json::from_slice::<ExportTraceServiceRequest>(&raw) {
            Ok(r) => ExportRequest::Json(r),
            Err(e) => return bad(format!("invalid OTLP JSON body: {e}")),
        },
    };
    match receiver.export(req, Protocol::OtlpHttp).await {
        Ok(resp) => reply(format, StatusCode::OK, resp),
        Err(ExportError::Invalid(msg)) => bad(msg),
        Err(ExportError::Unavailable(msg)) => error_reply(
            format,
            StatusCode::SERVICE_UNAVAILABLE,
            RPC_UNAVAILABLE,
            &msg,
        ),
    }
}

impl OtlpReceiver {
    /// The ingest handle this receiver feeds.
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    fn count_malformed(&self) {
        self.ingest
            .metrics()
            .malformed
            .get_or_create(&Metrics::label(Protocol::OtlpHttp))
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{self, PipelineConfig};
    use axum::body::Body;
    use axum::http::Request;
    use phosphor_store::{Store, StoreConfig};
    use std::sync::Arc;
    use tower::ServiceExt;

    fn json_body() -> String {
        serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708",
            "name": "x", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]})
        .to_string()
    }

    async fn post(rx: &OtlpReceiver) -> (StatusCode, HeaderMap, serde_json::Value) {
        let resp = rx
            .clone()
            .http_router()
            .oneshot(
                Request::post("/v1/traces")
                    .header("content-type", "application/json")
                    .body(Body::from(json_body()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_grpc_service_answers_only_its_export_method() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), &StoreConfig::default()).unwrap());
        let (ingest, writer) =
            pipeline::start(store, PipelineConfig::default(), Metrics::default());
        let svc = OtlpReceiver::new(ingest.clone(), Limits::default(), 1 << 20).grpc_service();
        assert_eq!(
            <GrpcTraceService as NamedService>::NAME,
            "opentelemetry.proto.collector.trace.v1.TraceService"
        );
        let call = |path: &str| {
            svc.clone().oneshot(
                Request::post(path)
                    .header("content-type", "application/grpc")
                    .body(Body::empty())
                    .unwrap(),
            )
        };
        let other = call("/opentelemetry.proto.collector.trace.v1.TraceService/Other")
            .await
            .unwrap();
        assert_eq!(other.headers()["grpc-status"], "12", "UNIMPLEMENTED");
        // The export method with no message at all: tonic's own answer.
        let empty = call("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            .await
            .unwrap();
        let code = empty
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_ne!(code.as_deref(), Some("12"), "{empty:?}");
        ingest.close();
        writer.join();
    }

    #[tokio::test]
    async fn a_full_queue_is_a_retryable_refusal_on_both_transports() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), &StoreConfig::default()).unwrap());
        let config = PipelineConfig {
            queue_spans: 1,
            ..PipelineConfig::default()
        };
        let (ingest, writer) = pipeline::start(store.clone(), config, Metrics::default());
        let rx = OtlpReceiver::new(ingest.clone(), Limits::default(), 1 << 20);
        ingest.hold(1);

        let (status, headers, body) = post(&rx).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(body["code"], RPC_UNAVAILABLE);
        assert!(body["message"].as_str().unwrap().contains("queue is full"));

        let req: ExportTraceServiceRequest = serde_json::from_str(&json_body()).unwrap();
        let grpc_body = Bytes::from(req.encode_to_vec());
        let err = Export(rx.clone())
            .call(tonic::Request::new(grpc_body.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);

        let m = ingest.metrics();
        assert_eq!(
            m.refused
                .get_or_create(&Metrics::label(Protocol::OtlpHttp))
                .get(),
            1
        );
        assert_eq!(
            m.refused
                .get_or_create(&Metrics::label(Protocol::OtlpGrpc))
                .get(),
            1
        );
        assert_eq!(
            m.accepted
                .get_or_create(&Metrics::label(Protocol::OtlpGrpc))
                .get(),
            0
        );

        // Once there is room, the same request is taken and stored.
        ingest.release(1);
        let (status, _, body) = post(&rx).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, serde_json::json!({}));
        let resp = Export(rx.clone())
            .call(tonic::Request::new(grpc_body))
            .await
            .unwrap();
        assert_eq!(resp.into_inner().partial_success, None);
        let id = phosphor_store::model::TraceId::from_slice(&[
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ])
        .unwrap();
        assert_eq!(store.trace(id).unwrap().len(), 2);
        ingest.close();
        writer.join();
    }
}
