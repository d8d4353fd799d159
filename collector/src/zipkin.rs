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

/// Zipkin accepts hex IDs shorter than 16 digits, as numbers: pad them.
fn pad_hex(s: &str) -> String {
    if s.len() < 16 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("{s:0>16}")
    } else {
        s.to_string()
    }
}

fn convert(mut z: ZSpan, limits: &Limits) -> Result<Span, String> {
    z.trace_id = pad_hex(&z.trace_id);
    z.id = pad_hex(&z.id);
    z.parent_id = z.parent_id.as_deref().map(pad_hex);
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
            .unwrap_or_else(|| "unknown".into())
            .into(),
        kind,
        service: local
            .service_name
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into())
            .into(),
        start_ns: start_us.saturating_mul(1_000),
        end_ns: start_us
            .saturating_add(z.duration.unwrap_or(0))
            .saturating_mul(1_000),
        status: if error.is_some() {
            SpanStatus::Error
        } else {
            SpanStatus::Unset
        },
        status_message: error.cloned().unwrap_or_default().into(),
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
                    name: name.into(),
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

/// One v2 span being built from a v1 span.
#[derive(Debug, Clone, Default)]
struct Builder {
    local: Option<ZEndpoint>,
    remote: Option<ZEndpoint>,
    kind: Option<&'static str>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    shared: bool,
    annotations: Vec<ZAnnotation>,
    tags: BTreeMap<String, String>,
}

fn same_service(a: &ZEndpoint, b: &ZEndpoint) -> bool {
    a.service_name == b.service_name
}

/// Splits a v1 span into v2 spans the way Zipkin's `V1SpanConverter` does:
/// one v2 span per local endpoint (service), core annotations (`cs`, `sr`,
/// `ss`, `cr`, `ms`, `mr`, `ws`, `wr`) setting kind, timestamp and
/// duration, a client+server span split into a client span and a `shared`
/// server span, other annotations and string binary annotations going to
/// the span of their endpoint, and `ca`/`sa`/`ma` addresses becoming remote
/// endpoints.
pub fn from_v1(v1: V1Span) -> Vec<ZSpan> {
    let mut c = V1Convert {
        spans: vec![Builder::default()],
    };
    let ts = v1.timestamp.unwrap_or(0);
    let dur = v1.duration.unwrap_or(0);
    let mut core: BTreeMap<&str, V1Annotation> = BTreeMap::new();
    for a in &v1.annotations {
        let i = c.for_endpoint(a.endpoint.as_ref());
        let value = a.value.as_str();
        let kind = match value {
            "cs" | "cr" => Some("CLIENT"),
            "sr" | "ss" => Some("SERVER"),
            "ms" => Some("PRODUCER"),
            "mr" => Some("CONSUMER"),
            _ => None,
        };
        // Core annotations need an endpoint; without one they are ordinary.
        if a.endpoint.is_some()
            && matches!(value, "cs" | "sr" | "ss" | "cr" | "ms" | "mr" | "ws" | "wr")
        {
            if let Some(k) = kind {
                c.spans[i].kind = Some(k);
            }
            core.insert(value, a.clone());
        } else {
            c.spans[i].annotations.push(ZAnnotation {
                timestamp: a.timestamp,
                value: a.value.clone(),
            });
        }
    }
    let end_reflects_span = |end: Option<&V1Annotation>| {
        end.is_some_and(|e| ts != 0 && dur != 0 && ts + dur == e.timestamp)
    };
    // Bridging from an event model can lose a start annotation.
    if !core.contains_key("cs") && end_reflects_span(core.get("cr")) {
        let e = core["cr"].endpoint.clone();
        core.insert(
            "cs",
            V1Annotation {
                timestamp: ts,
                value: "cs".into(),
                endpoint: e,
            },
        );
    }
    if !core.contains_key("sr") && end_reflects_span(core.get("ss")) {
        let e = core["ss"].endpoint.clone();
        core.insert(
            "sr",
            V1Annotation {
                timestamp: ts,
                value: "sr".into(),
                endpoint: e,
            },
        );
    }
    let get = |k: &str| core.get(k).cloned();
    let (cs, sr, ss, cr) = (get("cs"), get("sr"), get("ss"), get("cr"));
    let (ms, mr, ws, wr) = (get("ms"), get("mr"), get("ws"), get("wr"));

    if let (Some(cs), Some(sr)) = (&cs, &sr) {
        // In a shared span the client side owns the span's duration.
        c.timestamp_duration(ts, dur, cs, cr.as_ref());
        let (client, server) = c.two_sides(cs, sr, "CLIENT", "SERVER");
        c.spans[server].shared = true;
        c.spans[server].timestamp = Some(sr.timestamp);
        if let Some(ss) = &ss {
            c.spans[server].duration = Some(ss.timestamp.saturating_sub(sr.timestamp));
        }
        if cr.is_none() && dur == 0 {
            // One way: no duration.
            c.spans[client].duration = None;
        }
    } else if let (Some(cs), Some(cr)) = (&cs, &cr) {
        c.timestamp_duration(ts, dur, cs, Some(cr));
    } else if let (Some(sr), Some(ss)) = (&sr, &ss) {
        c.timestamp_duration(ts, dur, sr, Some(ss));
    } else {
        // Incomplete: the start annotation gives the timestamp, the end one
        // stays an annotation.
        for b in &mut c.spans {
            match b.kind {
                Some("CLIENT") => {
                    if let Some(cs) = &cs {
                        b.timestamp = Some(cs.timestamp);
                    }
                    if let Some(cr) = &cr {
                        b.annotations.push(ZAnnotation {
                            timestamp: cr.timestamp,
                            value: cr.value.clone(),
                        });
                    }
                }
                Some("SERVER") => {
                    if let Some(sr) = &sr {
                        b.timestamp = Some(sr.timestamp);
                    }
                    if let Some(ss) = &ss {
                        b.annotations.push(ZAnnotation {
                            timestamp: ss.timestamp,
                            value: ss.value.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        if ts != 0 {
            c.spans[0].timestamp = Some(ts);
            c.spans[0].duration = (dur != 0).then_some(dur);
        }
    }
    // v1 had no shared flag: a server side seen alone, without the span's
    // own timestamp (or with it but without a duration), was shared.
    if cs.is_none()
        && let Some(sr) = &sr
        && (ts == 0 || (ss.is_some() && dur == 0))
    {
        let i = c.for_endpoint(sr.endpoint.as_ref());
        c.spans[i].shared = true;
    }

    if let (Some(ms), Some(mr)) = (&ms, &mr) {
        let (producer, consumer) = c.two_sides(ms, mr, "PRODUCER", "CONSUMER");
        c.spans[consumer].shared = true;
        match &wr {
            Some(wr) => {
                c.spans[consumer].timestamp = Some(wr.timestamp);
                c.spans[consumer].duration = Some(mr.timestamp.saturating_sub(wr.timestamp));
            }
            None => c.spans[consumer].timestamp = Some(mr.timestamp),
        }
        c.spans[producer].timestamp = Some(ms.timestamp);
        c.spans[producer].duration = ws
            .as_ref()
            .map(|w| w.timestamp.saturating_sub(ms.timestamp));
    } else if let Some(ms) = &ms {
        c.timestamp_duration(ts, dur, ms, ws.as_ref());
    } else if let Some(mr) = &mr {
        match &wr {
            Some(wr) => c.timestamp_duration(ts, dur, wr, Some(mr)),
            None => c.timestamp_duration(ts, dur, mr, None),
        }
    } else {
        for w in [&ws, &wr].into_iter().flatten() {
            let i = c.for_endpoint(w.endpoint.as_ref());
            c.spans[i].annotations.push(ZAnnotation {
                timestamp: w.timestamp,
                value: w.value.clone(),
            });
        }
    }

    // Binary annotations: string values are tags; `true` under ca, sa or
    // ma is an address.
    let (mut ca, mut sa, mut ma) = (None, None, None);
    for b in &v1.binary_annotations {
        let value = match &b.value {
            serde_json::Value::Bool(true) if matches!(b.key.as_str(), "ca" | "sa" | "ma") => {
                match b.key.as_str() {
                    "ca" => ca = b.endpoint.clone(),
                    "sa" => sa = b.endpoint.clone(),
                    _ => ma = b.endpoint.clone(),
                }
                continue;
            }
            v => value_text(v),
        };
        let i = c.for_endpoint(b.endpoint.as_ref());
        if b.key == "lc" && value.is_empty() {
            continue;
        }
        c.spans[i].tags.insert(b.key.clone(), value);
    }
    let no_core = cs.is_none() && cr.is_none() && ss.is_none() && sr.is_none();
    if no_core && (ca.is_some() || sa.is_some()) {
        match (ca, sa) {
            (Some(ca), Some(sa)) => {
                let i = c.for_endpoint(Some(&ca));
                c.spans[i].remote = Some(sa);
            }
            (None, Some(sa)) => c.spans[0].remote = Some(sa),
            (Some(ca), None) => {
                c.spans[0].kind = Some("SERVER");
                c.spans[0].remote = Some(ca);
            }
            (None, None) => {}
        }
    } else {
        let server = sr.as_ref().or(ss.as_ref());
        if let (Some(mut ca), Some(server)) = (ca, server)
            && Some(&ca) != server.endpoint.as_ref()
        {
            // Finagle's "ca" carries the server's own service name: drop it,
            // or the span would call itself.
            if server
                .endpoint
                .as_ref()
                .is_some_and(|e| same_service(&ca, e))
            {
                ca.service_name = None;
            }
            let i = c.for_endpoint(server.endpoint.as_ref());
            c.spans[i].remote = Some(ca);
        }
        if let Some(sa) = sa
            && let Some(e) = cs.as_ref().or(cr.as_ref())
        {
            let i = c.for_endpoint(e.endpoint.as_ref());
            c.spans[i].remote = Some(sa);
        }
        if let Some(ma) = ma {
            for m in [&ms, &mr].into_iter().flatten() {
                let i = c.for_endpoint(m.endpoint.as_ref());
                c.spans[i].remote = Some(ma.clone());
            }
        }
    }

    c.spans
        .into_iter()
        .map(|b| ZSpan {
            trace_id: v1.trace_id.clone(),
            id: v1.id.clone(),
            parent_id: v1.parent_id.clone(),
            name: v1.name.clone(),
            kind: b.kind.map(str::to_string),
            timestamp: b.timestamp,
            duration: b.duration,
            local_endpoint: b.local,
            remote_endpoint: b.remote,
            annotations: b.annotations,
            tags: b.tags,
            debug: v1.debug,
            shared: b.shared.then_some(true),
        })
        .collect()
}

struct V1Convert {
    /// The first span, then one per further endpoint.
    spans: Vec<Builder>,
}

impl V1Convert {
    /// The span for an endpoint: the first whose local endpoint has its
    /// service (a span without one takes it), else a new one. No endpoint
    /// means the first span.
    fn for_endpoint(&mut self, e: Option<&ZEndpoint>) -> usize {
        let Some(e) = e else { return 0 };
        for (i, b) in self.spans.iter_mut().enumerate() {
            match &b.local {
                None => {
                    b.local = Some(e.clone());
                    return i;
                }
                Some(l) if same_service(l, e) => return i,
                Some(_) => {}
            }
        }
        self.spans.push(Builder {
            local: Some(e.clone()),
            ..Builder::default()
        });
        self.spans.len() - 1
    }

    /// The spans of a call's two sides (client and server, producer and
    /// consumer). The second side gets a span of its own even when both
    /// are one service (loopback).
    fn two_sides(
        &mut self,
        first: &V1Annotation,
        second: &V1Annotation,
        first_kind: &'static str,
        second_kind: &'static str,
    ) -> (usize, usize) {
        let a = self.for_endpoint(first.endpoint.as_ref());
        let loopback = first
            .endpoint
            .as_ref()
            .zip(second.endpoint.as_ref())
            .is_some_and(|(x, y)| same_service(x, y));
        let b = if loopback {
            self.spans[a].kind = Some(first_kind);
            self.spans.push(Builder {
                local: second.endpoint.clone(),
                kind: Some(second_kind),
                ..Builder::default()
            });
            self.spans.len() - 1
        } else {
            self.for_endpoint(second.endpoint.as_ref())
        };
        (a, b)
    }

    /// The span's own timestamp and duration where the v1 span has both,
    /// else those of its begin and end annotations.
    fn timestamp_duration(
        &mut self,
        ts: u64,
        dur: u64,
        begin: &V1Annotation,
        end: Option<&V1Annotation>,
    ) {
        let i = self.for_endpoint(begin.endpoint.as_ref());
        if ts != 0 && dur != 0 {
            self.spans[i].timestamp = Some(ts);
            self.spans[i].duration = Some(dur);
        } else {
            self.spans[i].timestamp = Some(begin.timestamp);
            if let Some(e) = end {
                self.spans[i].duration = Some(e.timestamp.saturating_sub(begin.timestamp));
            }
        }
    }
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
        assert_eq!(
            (d.fragments.len(), d.rejected),
            (2, 2),
            "{:?}",
            d.first_error
        );
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

    fn v1(json: &str) -> Vec<ZSpan> {
        from_v1(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn v1_loopback_one_way_and_incomplete_spans() {
        // Loopback: client and server of one service still split in two.
        let spans = v1(r#"{"traceId":"1","id":"2","name":"self","annotations":[
            {"timestamp":10,"value":"cs","endpoint":{"serviceName":"svc"}},
            {"timestamp":20,"value":"sr","endpoint":{"serviceName":"svc"}},
            {"timestamp":30,"value":"ss","endpoint":{"serviceName":"svc"}},
            {"timestamp":40,"value":"cr","endpoint":{"serviceName":"svc"}}]}"#);
        let kinds: Vec<_> = spans
            .iter()
            .map(|s| (s.kind.as_deref(), s.timestamp, s.duration, s.shared))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (Some("CLIENT"), Some(10), Some(30), None),
                (Some("SERVER"), Some(20), Some(10), Some(true))
            ]
        );
        // One way: a client send and a server receive, no reply.
        let spans = v1(r#"{"traceId":"1","id":"3","annotations":[
            {"timestamp":10,"value":"cs","endpoint":{"serviceName":"a"}},
            {"timestamp":20,"value":"sr","endpoint":{"serviceName":"b"}}]}"#);
        assert_eq!((spans[0].timestamp, spans[0].duration), (Some(10), None));
        assert_eq!(
            (spans[1].timestamp, spans[1].shared),
            (Some(20), Some(true))
        );
        // Incomplete: only a client receive; it stays an annotation.
        let spans = v1(r#"{"traceId":"1","id":"4","annotations":[
            {"timestamp":50,"value":"cr","endpoint":{"serviceName":"a"}}]}"#);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].kind.as_deref(), Some("CLIENT"));
        assert_eq!(
            spans[0].annotations,
            vec![ZAnnotation {
                timestamp: 50,
                value: "cr".into()
            }]
        );
        // Messaging: producer and consumer.
        let spans = v1(r#"{"traceId":"1","id":"5","annotations":[
            {"timestamp":10,"value":"ms","endpoint":{"serviceName":"p"}},
            {"timestamp":90,"value":"mr","endpoint":{"serviceName":"c"}}],
            "binaryAnnotations":[{"key":"ma","value":true,"endpoint":{"serviceName":"kafka"}}]}"#);
        assert_eq!(spans[0].kind.as_deref(), Some("PRODUCER"));
        assert_eq!(spans[1].kind.as_deref(), Some("CONSUMER"));
        assert_eq!(spans[1].shared, Some(true));
        assert!(
            spans.iter().all(
                |s| s.remote_endpoint.as_ref().unwrap().service_name.as_deref() == Some("kafka")
            )
        );
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
