//! Sending payloads: OTLP/gRPC with bodies encoded ahead of time (a
//! pass-through codec), OTLP/HTTP and Zipkin over HTTP/1.1 with keep-alive,
//! and what an answer means: acknowledged, refused (retry later), or an
//! error.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use phosphor_proto::otlp::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use crate::{Error, Protocol, Result};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// What the server answered to one payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken; `rejected` spans of it were refused as invalid
    /// (`partial_success`).
    Acked { rejected: u64 },
    /// A retryable refusal: gRPC UNAVAILABLE, HTTP 429 or 503.
    Refused,
    /// Anything else.
    Failed(String),
}

/// Writes bodies that are already protobuf; reads the export response.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

#[derive(Debug)]
struct RawEncoder;

#[derive(Debug)]
struct ResponseDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("bad export response: {e}")))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

/// A connection to one of phosphor's request receivers (not UDP).
#[derive(Debug, Clone)]
pub enum Client {
    Grpc(tonic::client::Grpc<Channel>),
    Http {
        client: reqwest::Client,
        url: String,
        content_type: &'static str,
    },
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Connect(format!("http client: {e}")))
}

impl Client {
    /// Connects to the receiver of `protocol` at `addr`.
    pub async fn connect(protocol: Protocol, addr: SocketAddr) -> Result<Client> {
        match protocol {
            Protocol::OtlpGrpc => {
                let channel = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| Error::Connect(e.to_string()))?
                    .tcp_nodelay(true)
                    .connect_timeout(Duration::from_secs(5))
                    .connect()
                    .await
                    .map_err(|e| Error::Connect(format!("OTLP/gRPC at {addr}: {e}")))?;
                Ok(Client::Grpc(
                    tonic::client::Grpc::new(channel).max_decoding_message_size(16 << 20),
                ))
            }
            Protocol::OtlpHttp | Protocol::OtlpJson => Ok(Client::Http {
                client: http_client()?,
                url: format!("http://{addr}/v1/traces"),
                content_type: if protocol == Protocol::OtlpJson {
                    "application/json"
                } else {
                    "application/x-protobuf"
                },
            }),
            Protocol::ZipkinJson => Ok(Client::Http {
                client: http_client()?,
                url: format!("http://{addr}/api/v2/spans"),
                content_type: "application/json",
            }),
            Protocol::Udp | Protocol::UdpBatch => Err(Error::Args(
                "UDP is sent from a socket, not a client".into(),
            )),
        }
    }

    /// Sends one payload and waits for the answer.
    pub async fn send(&self, body: Bytes) -> Outcome {
        match self {
            Client::Grpc(grpc) => {
                let mut grpc = grpc.clone();
                if let Err(e) = grpc.ready().await {
                    return Outcome::Failed(format!("gRPC channel not ready: {e}"));
                }
                let answer = grpc
                    .unary(
                        tonic::Request::new(body),
                        PathAndQuery::from_static(EXPORT_PATH),
                        RawCodec,
                    )
                    .await;
                match answer {
                    Ok(resp) => Outcome::Acked {
                        rejected: resp
                            .into_inner()
                            .partial_success
                            .map(|p| p.rejected_spans.max(0) as u64)
                            .unwrap_or(0),
                    },
                    Err(s) if s.code() == tonic::Code::Unavailable => Outcome::Refused,
                    Err(s) => Outcome::Failed(format!("gRPC {:?}: {}", s.code(), s.message())),
                }
            }
            Client::Http {
                client,
                url,
                content_type,
            } => {
                let resp = client
                    .post(url.as_str())
                    .header("content-type", *content_type)
                    .body(body)
                    .send()
                    .await;
                let resp = match resp {
                    Ok(r) => r,
                    Err(e) => return Outcome::Failed(format!("HTTP: {e}")),
                };
                let status = resp.status().as_u16();
                let text = resp.bytes().await.unwrap_or_default();
                match status {
                    200..=299 => Outcome::Acked {
                        rejected: rejected_in(&text),
                    },
                    429 | 503 => Outcome::Refused,
                    _ => Outcome::Failed(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&text[..text.len().min(200)]).trim()
                    )),
                }
            }
        }
    }
}

/// Spans an OTLP/HTTP answer says were rejected (`partialSuccess`, JSON or
/// protobuf); 0 for Zipkin's empty 202.
fn rejected_in(body: &[u8]) -> u64 {
    if body.is_empty() {
        return 0;
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let r = &v["partialSuccess"]["rejectedSpans"];
        return r
            .as_u64()
            .or_else(|| r.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0);
    }
    ExportTraceServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map(|p| p.rejected_spans.max(0) as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_success_is_read_in_both_encodings() {
        assert_eq!(rejected_in(b""), 0);
        assert_eq!(rejected_in(b"{}"), 0);
        assert_eq!(
            rejected_in(br#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"x"}}"#),
            3
        );
        let pb = ExportTraceServiceResponse {
            partial_success: Some(
                phosphor_proto::otlp::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans: 2,
                    error_message: "bad".into(),
                },
            ),
        };
        assert_eq!(rejected_in(&pb.encode_to_vec()), 2);
    }
}
