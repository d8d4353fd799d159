//! Zipkin receiver: `POST /api/v2/spans` (JSON or proto3) and
//! `POST /api/v1/spans` (JSON), optionally gzip, answered 202.
//!
//! Every format is first read into one Zipkin v2 span shape ([`ZSpan`]) and
//! then into the model. Version 1 spans, with their `cs`/`sr`/`ss`/`cr`
//! annotations and binary annotations, are split into v2 spans the way
//! Zipkin's own converter does: a v1 span that holds both a client and a
//! server side becomes two spans sharing the ID, the server side `shared`.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use phosphor_proto::zipkin as pb;
use phosphor_store::model::{
    Event, Fragment, KeyValue, Protocol, Span, SpanId, SpanKind, StatusCode as SpanStatus, TraceId,
    Value,
};
use prost::Message;
use serde::Deserialize;

use crate::decode::{Decoded, Limits};
use crate::metrics::Metrics;
use crate::otlp::{RETRY_AFTER_SECS, content_type, inflate};
use crate::pipeline::{Ingest, Refusal};

/// A network endpoint.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ZEndpoint {
    pub service_name: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub port: Option<u16>,
}

/// A timestamped annotation.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ZAnnotation {
    pub timestamp: u64,
    pub value: String,
}

/// A Zipkin v2 span, as the JSON API writes it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ZSpan {
    pub trace_id: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub timestamp: Option<u64>,
    pub duration: Option<u64>,
    pub local_endpoint: Option<ZEndpoint>,
    pub remote_endpoint: Option<ZEndpoint>,
    pub annotations: Vec<ZAnnotation>,
    pub tags: BTreeMap<String, String>,
    pub debug: Option<bool>,
    pub shared: Option<bool>,
}

fn ip4(b: &[u8]) -> Option<String> {
    let a: [u8; 4] = b.try_into().ok()?;
    Some(std::net::Ipv4Addr::from(a).to_string())
}

fn ip6(b: &[u8]) -> Option<String> {
    let a: [u8; 16] = b.try_into().ok()?;
    Some(std::net::Ipv6Addr::from(a).to_string())
}

fn endpoint(e: pb::Endpoint) -> ZEndpoint {
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    ZEndpoint {
        service_name: nonempty(e.service_name),
        ipv4: ip4(&e.ipv4),
        ipv6: ip6(&e.ipv6),
        port: u16::try_from(e.port).ok().filter(|p| *p != 0),
    }
}

/// Reads a proto3 `ListOfSpans` into the JSON shape.
pub fn from_proto(body: &[u8]) -> Result<Vec<ZSpan>, prost::DecodeError> {
    let list = pb::ListOfSpans::decode(body)?;
    Ok(list
        .spans
        .into_iter()
        .map(|s| {
            let kind = match pb::span::Kind::try_from(s.kind) {
                Ok(pb::span::Kind::Client) => Some("CLIENT"),
                Ok(pb::span::Kind::Server) => Some("SERVER"),
                Ok(pb::span::Kind::Producer) => Some("PRODUCER"),
                Ok(pb::span::Kind::Consumer) => Some("CONSUMER"),
                _ => None,
            };
            ZSpan {
                trace_id: hex::encode(&s.trace_id),
                id: hex::encode(&s.id),
                parent_id: (!s.parent_id.is_empty()).then(|| hex::encode(&s.parent_id)),
                name: (!s.name.is_empty()).then_some(s.name),
                kind: kind.map(str::to_string),
                timestamp: (s.timestamp != 0).then_some(s.timestamp),
                duration: (s.duration != 0).then_some(s.duration),
                local_endpoint: s.local_endpoint.map(endpoint),
                remote_endpoint: s.remote_endpoint.map(endpoint),
                annotations: s
                    .annotations
                    .into_iter()
                    .map(|a| ZAnnotation {
                        timestamp: a.timestamp,
                        value: a.value,
                    })
                    .collect(),
                tags: s.tags,
                debug: s.debug.then_some(true),
                shared: s.shared.then_some(true),
            }
        })
        .collect())
}

/// Converts v2 spans into the model; invalid spans are rejected one by one.
pub fn to_model(spans: Vec<ZSpan>, limits: &Limits) -> Decoded {
    let mut out = Decoded::default();
    for z in spans {
        match convert(z, limits) {
            Ok(s) => out.fragments.push(Fragment::Span(s)),
            Err(e) => {
                out.rejected += 1;
                if out.first_error.is_none() {
                    out.first_error = Some(e);
                }
            }
        }
    }
    out
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn convert(z: ZSpan, limits: &Limits) -> Result<Span, String> {
    let (trace_id, _) = match z.trace_id.len() {
        16 | 32 if z.trace_id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            TraceId::parse(&z.trace_id.to_ascii_lowercase()).map_err(|e| e.to_string())?
        }
        _ => {
            return Err(format!(
                "traceId {:?} must be 16 or 32 hex digits",
                z.trace_id
            ));
        }
    };
    let span_id = |s: &str, what: &str| {
        let b = (s.len() == 16).then(|| hex::decode(s).ok()).flatten();
        b.and_then(|b| SpanId::from_slice(&b))
            .ok_or_else(|| format!("{what} {s:?} must be 16 hex digits, not all zero"))
    };
    let id = span_id(&z.id, "id")?;
    let parent = match z.parent_id.as_deref() {
        None | Some("") => None,
        Some(p) => Some(span_id(p, "parentId")?),
    };
    let start_us = z
        .timestamp
        .or_else(|| z.annotations.iter().map(|a| a.timestamp).min())
        .ok_or_else(|| format!("span {} has no timestamp", z.id))?;
    let kind = match z.kind.as_deref() {
        Some("CLIENT") => SpanKind::Client,
        Some("SERVER") => SpanKind::Server,
        Some("PRODUCER") => SpanKind::Producer,
        Some("CONSUMER") => SpanKind::Consumer,
        None => SpanKind::Internal,
        Some(other) => return Err(format!("unknown span kind {other:?}")),
    };
    let local = z.local_endpoint.unwrap_or_default();
    let mut attributes: Vec<KeyValue> = z
        .tags
        .iter()
        .take(limits.max_attributes)
        .map(|(k, v)| KeyValue::string(cut(k, 256), cut(v, limits.max_value_bytes)))
        .collect();
    if let Some(r) = &z.remote_endpoint {
        if let Some(s) = &r.service_name {
            attributes.push(KeyValue::string("peer.service", s.clone()));
        }
        if let Some(ip) = r.ipv4.as_ref().or(r.ipv6.as_ref()) {
            attributes.push(KeyValue::string("net.peer.ip", ip.clone()));
        }
        if let Some(p) = r.port {
            attributes.push(KeyValue {
                key: "net.peer.port".into(),
                value: Value::Int(i64::from(p)),
            });
        }
    }
    if z.shared == Some(true) {
        attributes.push(KeyValue {
            key: "zipkin.shared".into(),
            value: Value::Bool(true),
        });
    }
    let mut resource = Vec::new();
    if let Some(ip) = local.ipv4.as_ref().or(local.ipv6.as_ref()) {
        resource.push(KeyValue::string("host.ip", ip.clone()));
    }
    let error = z.tags.get("error");
    Ok(Span {
        trace_id,
        span_id: id,
        parent_span_id: parent,
        name: z
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "unknown".into()),
        kind,
        service: local
            .service_name
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into()),
        start_ns: start_us.saturating_mul(1_000),
        end_ns: start_us
            .saturating_add(z.duration.unwrap_or(0))
            .saturating_mul(1_000),
        status: if error.is_some() {
            SpanStatus::Error
        } else {
            SpanStatus::Unset
        },
        status_message: error.cloned().unwrap_or_default(),
        attributes,
        resource,
        scope: None,
        events: z
            .annotations
            .into_iter()
            .map(|a| {
                let (name, attributes) = event_of(&a.value, limits);
                Event {
                    time_ns: a.timestamp.saturating_mul(1_000),
                    name,
                    attributes,
                }
            })
            .collect(),
        links: vec![],
        protocol: Protocol::Zipkin,
    })
}

/// An annotation's name and attributes. OpenTelemetry's Zipkin exporters
/// write an event as the JSON object `{"name": {attributes}}`; any other
/// value is the name itself.
fn event_of(value: &str, limits: &Limits) -> (String, Vec<KeyValue>) {
    if value.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(value)
        && map.len() == 1
        && let Some((name, serde_json::Value::Object(attrs))) = map.into_iter().next()
    {
        let attributes = attrs
            .into_iter()
            .take(limits.max_attributes)
            .map(|(k, v)| KeyValue::string(k, cut(&value_text(&v), limits.max_value_bytes)))
            .collect();
        return (cut(&name, 1024), attributes);
    }
    (cut(value, 1024), vec![])
}

/// A Zipkin v1 annotation.
#[derive(Debug, Clone, Deserialize)]
pub struct V1Annotation {
    pub timestamp: u64,
    pub value: String,
    #[serde(default)]
    pub endpoint: Option<ZEndpoint>,
}

/// A Zipkin v1 binary annotation (a tag, or an address: `ca`, `sa`, `ma`).
#[derive(Debug, Clone, Deserialize)]
pub struct V1BinaryAnnotation {
    pub key: String,
    pub value: serde_json::Value,
    #[serde(default)]
    pub endpoint: Option<ZEndpoint>,
}

/// A Zipkin v1 span.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct V1Span {
    pub trace_id: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub name: Option<String>,
    pub timestamp: Option<u64>,
    pub duration: Option<u64>,
    pub annotations: Vec<V1Annotation>,
    pub binary_annotations: Vec<V1BinaryAnnotation>,
    pub debug: Option<bool>,
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Splits a v1 span into v2 spans, as Zipkin's `V1SpanConverter` does.
pub fn from_v1(v1: V1Span) -> Vec<ZSpan> {
    let find = |v: &str| v1.annotations.iter().find(|a| a.value == v);
    let (cs, cr, sr, ss) = (find("cs"), find("cr"), find("sr"), find("ss"));
    let (ms, mr) = (find("ms"), find("mr"));
    let base = ZSpan {
        trace_id: v1.trace_id.clone(),
        id: v1.id.clone(),
        parent_id: v1.parent_id.clone(),
        name: v1.name.clone(),
        debug: v1.debug,
        ..ZSpan::default()
    };
    let mut out: Vec<ZSpan> = Vec::new();
    let side = |kind: &str, start: Option<&V1Annotation>, end: Option<&V1Annotation>| {
        let begin = start.or(end)?;
        let mut s = base.clone();
        s.kind = Some(kind.to_string());
        s.local_endpoint = begin.endpoint.clone();
        s.timestamp = start.map(|a| a.timestamp);
        s.duration = match (start, end) {
            (Some(a), Some(b)) if b.timestamp >= a.timestamp => Some(b.timestamp - a.timestamp),
            _ => None,
        };
        Some(s)
    };
    let client = side("CLIENT", cs, cr);
    let server = side("SERVER", sr, ss);
    let has_client = client.is_some();
    if let Some(mut c) = client {
        // The span's own timestamp and duration are the client's view.
        c.timestamp = v1.timestamp.or(c.timestamp);
        c.duration = v1.duration.or(c.duration);
        out.push(c);
    }
    if let Some(mut s) = server {
        if has_client {
            s.shared = Some(true);
        } else {
            s.timestamp = v1.timestamp.or(s.timestamp);
            s.duration = v1.duration.or(s.duration);
        }
        out.push(s);
    }
    if out.is_empty() {
        if let Some(p) = side("PRODUCER", ms, None) {
            out.push(p);
        }
        if let Some(c) = side("CONSUMER", mr, None) {
            out.push(c);
        }
    }
    if out.is_empty() {
        // A local span: its endpoint from any annotation that has one.
        let mut s = base.clone();
        s.timestamp = v1.timestamp;
        s.duration = v1.duration;
        s.local_endpoint = v1
            .annotations
            .iter()
            .filter_map(|a| a.endpoint.clone())
            .chain(
                v1.binary_annotations
                    .iter()
                    .filter_map(|b| b.endpoint.clone()),
            )
            .next();
        out.push(s);
    }

    // The span a v1 annotation belongs to: the one whose local endpoint
    // has its service, else the first.
    let owner = |out: &[ZSpan], e: &Option<ZEndpoint>| -> usize {
        let svc = e.as_ref().and_then(|e| e.service_name.as_deref());
        out.iter()
            .position(|s| {
                svc.is_some()
                    && s.local_endpoint
                        .as_ref()
                        .and_then(|l| l.service_name.as_deref())
                        == svc
            })
            .unwrap_or(0)
    };
    const CORE: [&str; 6] = ["cs", "cr", "sr", "ss", "ms", "mr"];
    for a in &v1.annotations {
        if CORE.contains(&a.value.as_str()) {
            continue;
        }
        let i = owner(&out, &a.endpoint);
        out[i].annotations.push(ZAnnotation {
            timestamp: a.timestamp,
            value: a.value.clone(),
        });
    }
    for b in &v1.binary_annotations {
        let kind_index = |k: &str| out.iter().position(|s| s.kind.as_deref() == Some(k));
        match b.key.as_str() {
            // Addresses: the other side of the connection.
            "sa" => {
                if let Some(i) = kind_index("CLIENT").or(kind_index("PRODUCER")) {
                    out[i].remote_endpoint = b.endpoint.clone();
                }
            }
            "ca" => {
                if let Some(i) = kind_index("SERVER") {
                    out[i].remote_endpoint = b.endpoint.clone();
                }
            }
            "ma" => {
                if let Some(i) = kind_index("CONSUMER").or(kind_index("PRODUCER")) {
                    out[i].remote_endpoint = b.endpoint.clone();
                }
            }
            "lc" if out[0].local_endpoint.is_none() => {
                out[0].local_endpoint = b.endpoint.clone();
                out[0].tags.insert("lc".into(), value_text(&b.value));
            }
            _ => {
                let i = owner(&out, &b.endpoint);
                out[i].tags.insert(b.key.clone(), value_text(&b.value));
            }
        }
    }
    out
}

/// The Zipkin receiver.
#[derive(Debug, Clone)]
pub struct ZipkinReceiver {
    ingest: Ingest,
    limits: Limits,
    max_request_bytes: usize,
}

impl ZipkinReceiver {
    /// A receiver handing spans to `ingest`.
    pub fn new(ingest: Ingest, limits: Limits, max_request_bytes: usize) -> ZipkinReceiver {
        ZipkinReceiver {
            ingest,
            limits,
            max_request_bytes,
        }
    }

    /// `POST /api/v2/spans` and `POST /api/v1/spans`.
    pub fn router(self) -> Router {
        let limit = self.max_request_bytes;
        Router::new()
            .route("/api/v2/spans", post(v2))
            .route("/api/v1/spans", post(v1))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(self)
    }

    fn metric(&self) -> crate::metrics::ProtocolLabel {
        Metrics::label(Protocol::Zipkin)
    }

    fn bad(&self, status: StatusCode, message: String) -> Response {
        self.ingest
            .metrics()
            .malformed
            .get_or_create(&self.metric())
            .inc();
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message + "\n",
        )
            .into_response()
    }

    /// Inflates a gzip body where the headers say so.
    fn body(&self, headers: &HeaderMap, body: &Bytes) -> Result<Vec<u8>, (StatusCode, String)> {
        match headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("identity") => Ok(body.to_vec()),
            Some("gzip") => {
                inflate(body, self.max_request_bytes).map_err(|e| (StatusCode::BAD_REQUEST, e))
            }
            Some(other) => Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content encoding {other:?}: send gzip or none"),
            )),
        }
    }

    async fn store(&self, spans: Result<Vec<ZSpan>, String>) -> Response {
        let spans = match spans {
            Ok(s) => s,
            Err(e) => return self.bad(StatusCode::BAD_REQUEST, e),
        };
        let limits = self.limits.clone();
        let decoded = match tokio::task::spawn_blocking(move || to_model(spans, &limits)).await {
            Ok(d) => d,
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
        let m = self.ingest.metrics();
        m.received
            .get_or_create(&self.metric())
            .inc_by(decoded.fragments.len() as u64 + decoded.rejected);
        m.rejected
            .get_or_create(&self.metric())
            .inc_by(decoded.rejected);
        if decoded.fragments.is_empty()
            && let Some(e) = decoded.first_error
        {
            return self.bad(StatusCode::BAD_REQUEST, format!("no valid span: {e}"));
        }
        match self
            .ingest
            .submit_acked(Protocol::Zipkin, decoded.fragments)
            .await
        {
            Ok(Ok(())) => StatusCode::ACCEPTED.into_response(),
            Ok(Err(e)) => unavailable(&e.to_string()),
            Err(Refusal::QueueFull) => unavailable("ingest queue is full; retry later"),
            Err(Refusal::ShuttingDown) => unavailable("collector is shutting down; retry later"),
        }
    }
}

fn unavailable(msg: &str) -> Response {
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, format!("{msg}\n")).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}

async fn v2(State(r): State<ZipkinReceiver>, headers: HeaderMap, body: Bytes) -> Response {
    let raw = match r.body(&headers, &body) {
        Ok(b) => b,
        Err((status, msg)) => return r.bad(status, msg),
    };
    let spans = match content_type(&headers).as_str() {
        "" | "application/json" => serde_json::from_slice::<Vec<ZSpan>>(&raw)
            .map_err(|e| format!("invalid Zipkin v2 JSON (a list of spans): {e}")),
        "application/x-protobuf" | "application/protobuf" => {
            from_proto(&raw).map_err(|e| format!("invalid Zipkin proto3 ListOfSpans: {e}"))
        }
        other => {
            return r.bad(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content type {other:?}: send application/json or application/x-protobuf"),
            );
        }
    };
    r.store(spans).await
}

async fn v1(State(r): State<ZipkinReceiver>, headers: HeaderMap, body: Bytes) -> Response {
    let raw = match r.body(&headers, &body) {
        Ok(b) => b,
        Err((status, msg)) => return r.bad(status, msg),
    };
    let spans = match content_type(&headers).as_str() {
        "" | "application/json" => serde_json::from_slice::<Vec<V1Span>>(&raw)
            .map(|v| v.into_iter().flat_map(from_v1).collect())
            .map_err(|e| format!("invalid Zipkin v1 JSON (a list of spans): {e}")),
        other => {
            return r.bad(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content type {other:?}: /api/v1/spans takes application/json"),
            );
        }
    };
    r.store(spans).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fixture, spans};

    #[test]
    fn real_python_zipkin_json_with_64_bit_trace_ids() {
        let z: Vec<ZSpan> =
            serde_json::from_slice(&fixture("9411-0004-Python-urllib.json")).unwrap();
        let d = to_model(z, &Limits::default());
        assert_eq!(d.rejected, 0);
        let s = spans(&d);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].trace_id.to_hex(), "00000000000000000f0fb7a5190c5460");
        assert_eq!(s[0].service, "py-zipkin-demo");
        assert_eq!(s[0].parent_span_id.unwrap().to_hex(), "78886b21eeba8c78");
        assert_eq!(s[0].start_ns, 1_795_240_703_412_140_000);
        assert_eq!(s[0].end_ns - s[0].start_ns, 14_232_000);
        assert_eq!(s[1].events[0].name, "cache-miss");
        assert_eq!(s[2].kind, SpanKind::Server);
        assert_eq!(s[2].attributes[0], KeyValue::string("http.method", "GET"));
        assert_eq!(s[2].resource[0], KeyValue::string("host.ip", "127.0.0.1"));
    }

    #[test]
    fn every_real_zipkin_fixture_decodes() {
        for name in [
            "9411-0001-ua.json",
            "9411-0002-ua.json",
            "9411-0003-ua.json",
        ] {
            let z: Vec<ZSpan> = serde_json::from_slice(&fixture(name)).unwrap();
            let d = to_model(z, &Limits::default());
            assert_eq!(d.rejected, 0, "{name}: {:?}", d.first_error);
            for s in spans(&d) {
                // Internal spans carry no kind.
                assert!(s.start_ns > 0 && s.service != "unknown", "{name}");
            }
        }
    }

    #[test]
    fn proto3_and_json_read_the_same() {
        let p = pb::ListOfSpans {
            spans: vec![pb::Span {
                trace_id: vec![1; 16],
                id: vec![2; 8],
                parent_id: vec![3; 8],
                kind: pb::span::Kind::Client as i32,
                name: "get".into(),
                timestamp: 1_700_000_000_000_000,
                duration: 1_500,
                local_endpoint: Some(pb::Endpoint {
                    service_name: "frontend".into(),
                    ipv4: vec![10, 0, 0, 1],
                    ..Default::default()
                }),
                remote_endpoint: Some(pb::Endpoint {
                    service_name: "backend".into(),
                    port: 8080,
                    ..Default::default()
                }),
                annotations: vec![pb::Annotation {
                    timestamp: 1_700_000_000_000_100,
                    value: "ws".into(),
                }],
                tags: [("error".to_string(), "boom".to_string())].into(),
                ..Default::default()
            }],
        };
        let from_pb = from_proto(&p.encode_to_vec()).unwrap();
        let json = r#"[{"traceId":"01010101010101010101010101010101","id":"0202020202020202",
            "parentId":"0303030303030303","kind":"CLIENT","name":"get","timestamp":1700000000000000,
            "duration":1500,"localEndpoint":{"serviceName":"frontend","ipv4":"10.0.0.1"},
            "remoteEndpoint":{"serviceName":"backend","port":8080},
            "annotations":[{"timestamp":1700000000000100,"value":"ws"}],"tags":{"error":"boom"}}]"#;
        let from_json: Vec<ZSpan> = serde_json::from_str(json).unwrap();
        assert_eq!(from_pb, from_json);
        let d = to_model(from_pb, &Limits::default());
        let s = spans(&d)[0];
        assert_eq!(
            (s.kind, s.status, s.status_message.as_str()),
            (SpanKind::Client, SpanStatus::Error, "boom")
        );
        assert!(
            s.attributes
                .contains(&KeyValue::string("peer.service", "backend"))
        );
        assert_eq!(s.end_ns - s.start_ns, 1_500_000);
    }

    #[test]
    fn opentelemetry_events_in_annotations_keep_their_attributes() {
        let l = Limits::default();
        assert_eq!(
            event_of("{\"retry\": {}}", &l),
            ("retry".to_string(), vec![])
        );
        assert_eq!(
            event_of("{\"cache-miss\": {\"key\": \"abc\", \"n\": 2}}", &l),
            (
                "cache-miss".to_string(),
                vec![KeyValue::string("key", "abc"), KeyValue::string("n", "2")]
            )
        );
        assert_eq!(event_of("ws", &l), ("ws".to_string(), vec![]));
        assert_eq!(event_of("{not json", &l), ("{not json".to_string(), vec![]));
    }

    #[test]
    fn bad_spans_are_rejected_one_by_one() {
        let json = r#"[{"traceId":"xyz","id":"0202020202020202","timestamp":1},
                       {"traceId":"0101010101010101","id":"0202020202020202","timestamp":5},
                       {"traceId":"0101010101010101","id":"02","timestamp":5},
                       {"traceId":"0101010101010101","id":"0303030303030303"}]"#;
        let d = to_model(serde_json::from_str(json).unwrap(), &Limits::default());
        assert_eq!((d.fragments.len(), d.rejected), (1, 3));
        assert!(d.first_error.unwrap().contains("traceId"));
    }

    #[test]
    fn v1_rpc_span_splits_into_a_client_and_a_shared_server_side() {
        let json = r#"{"traceId":"0000000000000001","id":"0000000000000002","name":"get /cards",
          "timestamp":1000,"duration":900,
          "annotations":[
            {"timestamp":1000,"value":"cs","endpoint":{"serviceName":"api","ipv4":"10.0.0.1"}},
            {"timestamp":1100,"value":"sr","endpoint":{"serviceName":"cards","ipv4":"10.0.0.2"}},
            {"timestamp":1500,"value":"cache.miss","endpoint":{"serviceName":"cards"}},
            {"timestamp":1800,"value":"ss","endpoint":{"serviceName":"cards","ipv4":"10.0.0.2"}},
            {"timestamp":1900,"value":"cr","endpoint":{"serviceName":"api","ipv4":"10.0.0.1"}}],
          "binaryAnnotations":[
            {"key":"http.path","value":"/cards/1","endpoint":{"serviceName":"cards"}},
            {"key":"sa","value":true,"endpoint":{"serviceName":"cards","ipv4":"10.0.0.2","port":80}},
            {"key":"error","value":"timeout","endpoint":{"serviceName":"api"}}]}"#;
        let v2 = from_v1(serde_json::from_str(json).unwrap());
        assert_eq!(v2.len(), 2);
        let (c, s) = (&v2[0], &v2[1]);
        assert_eq!(
            (c.kind.as_deref(), c.timestamp, c.duration),
            (Some("CLIENT"), Some(1000), Some(900))
        );
        assert_eq!(
            c.local_endpoint.as_ref().unwrap().service_name.as_deref(),
            Some("api")
        );
        assert_eq!(c.remote_endpoint.as_ref().unwrap().port, Some(80));
        assert_eq!(c.tags.get("error").map(String::as_str), Some("timeout"));
        assert_eq!(
            (s.kind.as_deref(), s.timestamp, s.duration),
            (Some("SERVER"), Some(1100), Some(700))
        );
        assert_eq!(s.shared, Some(true));
        assert_eq!(s.annotations[0].value, "cache.miss");
        assert_eq!(
            s.tags.get("http.path").map(String::as_str),
            Some("/cards/1")
        );
        assert_eq!(c.id, s.id);
    }

    #[test]
    fn v1_local_span_takes_its_endpoint_from_lc() {
        let json = r#"{"traceId":"0000000000000001","id":"0000000000000003","name":"compute",
          "timestamp":1000,"duration":50,
          "binaryAnnotations":[{"key":"lc","value":"worker","endpoint":{"serviceName":"batch"}}]}"#;
        let v2 = from_v1(serde_json::from_str(json).unwrap());
        assert_eq!(v2.len(), 1);
        assert_eq!(v2[0].kind, None);
        assert_eq!(
            v2[0]
                .local_endpoint
                .as_ref()
                .unwrap()
                .service_name
                .as_deref(),
            Some("batch")
        );
        assert_eq!((v2[0].timestamp, v2[0].duration), (Some(1000), Some(50)));
    }
}
