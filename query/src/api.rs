//! The native JSON API, `/api/v1`.
//!
//! Durations are microseconds and timestamps Unix microseconds unless a
//! field's name says otherwise; IDs are lower-case hex. Errors are
//! `{"error": {"code": <http status>, "message": "..."}}`; a 5xx never
//! carries internals (they go to the log).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::assemble::{AttributesJson, Node, Trace};
use crate::{Error, QueryService, TraceSummary, params};

/// An API error: a status and a message safe to show.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// A 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::BadTraceId(_) => ApiError::bad_request(e.to_string()),
            Error::TraceNotFound(_) => ApiError::not_found(e.to_string()),
            Error::Store(_) | Error::Task(_) => {
                tracing::error!(error = %e, "query failed");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "internal error; see the server log".into(),
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.status.as_u16(), "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// `/api/v1` routes.
pub fn router(query: QueryService) -> Router {
    Router::new()
        .route("/api/v1/traces", get(get_traces))
        .route("/api/v1/traces/{id}", get(get_trace))
        .route("/api/v1/traces/{id}/pin", post(pin).delete(unpin))
        .route("/api/v1/search", get(get_search))
        .route("/api/v1/services", get(get_services))
        .route("/api/v1/services/{service}/operations", get(get_operations))
        .route("/api/v1/attributes", get(get_attributes))
        .route("/api/v1/attributes/{key}/values", get(get_attribute_values))
        .route("/api/v1/dependencies", get(get_dependencies))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/admin/compact", post(compact))
        .route("/api/v1/{*rest}", get(unknown_route))
        .with_state(query)
}

/// The OpenAPI document of this API (kept in the repository as
/// `query/openapi.json`).
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

async fn unknown_route(Path(rest): Path<String>) -> ApiError {
    ApiError::not_found(format!("no API route /api/v1/{rest}"))
}

fn us(ns: u64) -> u64 {
    ns / 1_000
}

/// A trace or span ID, serialized as lowercase hex without allocating.
#[derive(Debug, Clone, Copy)]
pub struct HexJson<const N: usize>(pub [u8; N]);

impl<const N: usize> Serialize for HexJson<N> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        // IDs are 8 or 16 bytes: room for up to 32.
        let mut buf = [0u8; 64];
        crate::fastjson::hex_digits(&self.0, &mut buf);
        ser.serialize_str(std::str::from_utf8(&buf[..2 * N]).unwrap_or_default())
    }
}

/// A list serialized element by element from a slice, with no vector of
/// JSON structs built first.
struct SeqJson<'a, T, J: Serialize>(&'a [T], fn(usize, &'a T) -> J);

impl<'a, T, J: Serialize> Serialize for SeqJson<'a, T, J> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.0.iter().enumerate().map(|(i, x)| (self.1)(i, x)))
    }
}

impl<T, J: Serialize> SeqJson<'_, T, J> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T, J: Serialize> std::fmt::Debug for SeqJson<'_, T, J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} items]", self.0.len())
    }
}

/// One span of a trace, as the API shows it. Everything is borrowed from
/// the assembled trace: a 10,000-span trace is written without a copy.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanJson<'a> {
    pub index: usize,
    pub span_id: HexJson<8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<HexJson<8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_index: Option<usize>,
    pub children: &'a [usize],
    pub depth: usize,
    pub name: &'a str,
    pub service: &'a str,
    pub kind: &'static str,
    /// Unix microseconds.
    pub start_time: u64,
    /// Microseconds.
    pub duration: u64,
    pub status: StatusJson<'a>,
    pub error: bool,
    pub incomplete: bool,
    pub placeholder: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<&'static str>,
    #[serde(skip_serializing_if = "SeqJson::is_empty")]
    annotations: SeqJson<'a, phosphor_store::model::AnnotationType, &'static str>,
    pub attributes: AttributesJson<'a>,
    pub resource: AttributesJson<'a>,
    events: SeqJson<'a, phosphor_store::model::Event, EventJson<'a>>,
    links: SeqJson<'a, phosphor_store::model::Link, LinkJson<'a>>,
    protocols: SeqJson<'a, phosphor_store::model::Protocol, &'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_span_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<&'a str>,
    /// Microseconds clock-skew adjustment moved this span (0: not moved).
    pub clock_skew_shift: i64,
    /// Microseconds this span spends on the critical path.
    pub critical_time: u64,
    pub warnings: &'a [String],
}

/// A span's status, as the API shows it.
#[derive(Debug, Serialize)]
pub struct StatusJson<'a> {
    pub code: &'static str,
    pub message: &'a str,
}

/// A span event, as the API shows it.
#[derive(Debug, Serialize)]
pub struct EventJson<'a> {
    /// Unix microseconds.
    pub time: u64,
    pub name: &'a str,
    pub attributes: AttributesJson<'a>,
}

/// A span link, as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkJson<'a> {
    pub trace_id: HexJson<16>,
    pub span_id: HexJson<8>,
    pub attributes: AttributesJson<'a>,
}

impl<'a> SpanJson<'a> {
    fn of(index: usize, n: &'a Node) -> SpanJson<'a> {
        use phosphor_store::model::Side;
        SpanJson {
            index,
            span_id: HexJson(n.span_id.0),
            parent_span_id: n.parent_span_id.map(|p| HexJson(p.0)),
            parent_index: n.parent,
            children: &n.children,
            depth: n.depth,
            name: &n.name,
            service: &n.service,
            kind: n.kind.as_str(),
            start_time: us(n.start_ns),
            duration: us(n.duration_ns()),
            status: StatusJson {
                code: n.status.as_str(),
                message: &n.status_message,
            },
            error: n.is_error(),
            incomplete: n.incomplete,
            placeholder: n.placeholder,
            side: n.side.map(|s| match s {
                Side::Client => "client",
                Side::Server => "server",
                Side::Event => "event",
            }),
            annotations: SeqJson(&n.annotations, |_, a| a.as_str()),
            attributes: AttributesJson(&n.attributes),
            resource: AttributesJson(&n.resource),
            events: SeqJson(&n.events, |_, e| EventJson {
                time: us(e.time_ns),
                name: &e.name,
                attributes: AttributesJson(&e.attributes),
            }),
            links: SeqJson(&n.links, |_, l| LinkJson {
                trace_id: HexJson(l.trace_id.0),
                span_id: HexJson(l.span_id.0),
                attributes: AttributesJson(&l.attributes),
            }),
            protocols: SeqJson(&n.protocols, |_, p| p.as_str()),
            legacy_span_id: n.legacy_span_id.as_deref(),
            host: n.host.as_deref(),
            clock_skew_shift: n.skew_shift_ns / 1_000,
            critical_time: us(n.critical_ns),
            warnings: &n.warnings,
        }
    }
}

/// An assembled trace, as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceJson<'a> {
    pub trace_id: HexJson<16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_trace_id: Option<&'a str>,
    /// Unix microseconds.
    pub start_time: u64,
    /// Microseconds.
    pub duration: u64,
    pub span_count: usize,
    pub error_count: usize,
    pub services: Vec<&'a str>,
    pub warnings: &'a [String],
    /// Kept past retention (see `POST /api/v1/traces/{id}/pin`).
    pub pinned: bool,
    /// Depth-first order; `parentIndex` and `children` index this list.
    spans: SeqJson<'a, Node, SpanJson<'a>>,
    /// The chain of span segments that bounds the trace's latency, in time
    /// order: `{index, startTime, duration}`.
    critical_path: SeqJson<'a, crate::assemble::Segment, SegmentJson>,
}

/// One segment of the critical path, as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentJson {
    pub index: usize,
    pub start_time: u64,
    pub duration: u64,
}

impl<'a> TraceJson<'a> {
    /// The JSON form of an assembled trace.
    pub fn of(t: &'a Trace, pinned: bool) -> TraceJson<'a> {
        TraceJson {
            pinned,
            trace_id: HexJson(t.trace_id.0),
            legacy_trace_id: t.legacy_id.as_deref(),
            start_time: us(t.start_ns),
            duration: us(t.duration_ns()),
            span_count: t.spans.iter().filter(|n| !n.placeholder).count(),
            error_count: t.error_count(),
            services: t.services(),
            warnings: &t.warnings,
            spans: SeqJson(&t.spans, SpanJson::of),
            critical_path: SeqJson(&t.critical_path, |_, s| SegmentJson {
                index: s.index,
                start_time: us(s.start_ns),
                duration: us(s.end_ns - s.start_ns),
            }),
        }
    }
}

/// A trace summary, as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryJson {
    pub trace_id: String,
    pub root_service: String,
    pub root_name: String,
    pub start_time: u64,
    pub duration: u64,
    pub span_count: u64,
    pub error_count: u64,
    pub services: Vec<serde_json::Value>,
    /// The span that matched every span filter of the search.
    pub matched_span_id: String,
    pub matched_span_start_time: u64,
}

impl From<&TraceSummary> for SummaryJson {
    fn from(s: &TraceSummary) -> SummaryJson {
        SummaryJson {
            trace_id: s.trace_id.to_hex(),
            root_service: s.root_service.clone(),
            root_name: s.root_name.clone(),
            start_time: s.start_us,
            duration: s.duration_us,
            span_count: s.span_count,
            error_count: s.error_count,
            services: s
                .services
                .iter()
                .map(|(name, n)| json!({"name": name, "spanCount": n}))
                .collect(),
            matched_span_id: s.matched_span.to_hex(),
            matched_span_start_time: s.matched_span_start_us,
        }
    }
}

/// How a trace is asked for: `raw` and `format`.
struct TraceParams {
    options: crate::assemble::Options,
    otlp: bool,
}

fn trace_params(p: Vec<(String, String)>, extra: &[&str]) -> Result<TraceParams, ApiError> {
    let mut out = TraceParams {
        options: crate::assemble::Options::default(),
        otlp: false,
    };
    for (k, v) in p {
        match (k.as_str(), v.as_str()) {
            ("raw", "true" | "1") => out.options.adjust_skew = false,
            ("raw", "false" | "0" | "") => {}
            ("raw", other) => {
                return Err(ApiError::bad_request(format!(
                    "raw must be true or false, not {other:?}"
                )));
            }
            ("format", "otlp") => {
                // OTLP is the data as stored.
                out.otlp = true;
                out.options.adjust_skew = false;
            }
            ("format", "" | "phosphor") => {}
            ("format", other) => {
                return Err(ApiError::bad_request(format!(
                    "format must be phosphor or otlp, not {other:?}"
                )));
            }
            (other, _) if extra.contains(&other) => {}
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?} (raw, format{})",
                    extra.iter().map(|e| format!(", {e}")).collect::<String>()
                )));
            }
        }
    }
    Ok(out)
}

async fn get_trace(
    State(q): State<QueryService>,
    Path(id): Path<String>,
    p: Pairs,
) -> Result<Response, ApiError> {
    let tp = trace_params(pairs(p)?, &[])?;
    let f = q.fetch_trace(&id, tp.options).await?;
    let started = std::time::Instant::now();
    let body = if tp.otlp {
        vec![serde_json::to_vec(&crate::otlp_json::trace(&f.trace)).expect("JSON values serialize")]
    } else {
        trace_json_parts(&f.trace, f.pinned)
    };
    let timing = server_timing(f.read, f.assemble, started.elapsed());
    if f.trace.spans.len() >= LARGE_TRACE_SPANS {
        // Freeing a large trace takes a while: not on the way to the answer.
        tokio::task::spawn_blocking(move || drop(f));
    }
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/json".to_string(),
            ),
            (
                axum::http::header::HeaderName::from_static("server-timing"),
                timing,
            ),
        ],
        axum::body::Body::new(Parts::pooled(body)),
    )
        .into_response())
}

/// A `Server-Timing` header value (milliseconds, as the header has them)
/// for the stages of answering with a trace: reading it from the store,
/// assembling it, and writing its JSON. Browsers' developer tools show it,
/// and `phosphor bench query` reports it beside the time it measures.
pub fn server_timing(
    read: std::time::Duration,
    assemble: std::time::Duration,
    json: std::time::Duration,
) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    format!(
        "read;dur={:.3}, assemble;dur={:.3}, json;dur={:.3}",
        ms(read),
        ms(assemble),
        ms(json)
    )
}

/// A trace's JSON (`GET /api/v1/traces/{id}`), written straight from the
/// trace into one buffer sized for it: no intermediate JSON value, and no
/// regrowing (a 10,000-span trace is 10 MB of JSON).
///
/// A large trace's spans are written in two halves on two threads.
pub fn trace_json_bytes(t: &Trace, pinned: bool) -> Vec<u8> {
    write_trace_json(t, pinned, t.spans.len() >= LARGE_TRACE_SPANS)
}

/// The same JSON as [`trace_json_bytes`] in the parts it was written in, to
/// be sent one after the other: a large trace's two halves are not copied
/// into one buffer, and their buffers come from (and go back to) the pool
/// of [`crate::buffers::ANSWERS`].
pub fn trace_json_parts(t: &Trace, pinned: bool) -> Vec<Vec<u8>> {
    write_trace_json_parts(t, pinned, t.spans.len() >= LARGE_TRACE_SPANS)
}

/// From this many spans on, a trace is large: its JSON is written on two
/// threads, and the single-trace route frees it after answering.
const LARGE_TRACE_SPANS: usize = 500;

/// Room for a span's JSON, as a guess to size buffers (the load tool's
/// spans of ten attributes and an event take about 1,070 bytes).
const SPAN_JSON_BYTES: usize = 1_200;

fn write_trace_json(t: &Trace, pinned: bool, parallel: bool) -> Vec<u8> {
    let parts = write_trace_json_parts(t, pinned, parallel);
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    append_parts(&mut out, parts);
    out
}

/// Appends the parts to `out`, and gives their buffers back to the pool.
fn append_parts(out: &mut Vec<u8>, parts: Vec<Vec<u8>>) {
    for p in parts {
        out.extend_from_slice(&p);
        crate::buffers::ANSWERS.give_back(p);
    }
}

fn write_trace_json_parts(t: &Trace, pinned: bool, parallel: bool) -> Vec<Vec<u8>> {
    const FAILS: &str = "a trace serializes: every map key is a string";
    // The trace with no spans, then its spans in the gap. The pinned flag
    // comes just before the spans, and neither can appear unescaped inside a
    // JSON string, so the first match is the place.
    let mut json = TraceJson::of(t, pinned);
    json.spans = SeqJson(&[], SpanJson::of);
    let frame = serde_json::to_vec(&json).expect(FAILS);
    let marker = format!("\"pinned\":{pinned},\"spans\":[");
    let gap = frame
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("the trace JSON has its spans list after pinned")
        + marker.len();
    let (head, tail) = frame.split_at(gap);
    let write = |buf: &mut Vec<u8>, from: usize, to: usize| {
        for (i, n) in t.spans[from..to].iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            crate::fastjson::span(buf, from + i, n);
        }
    };
    let pool = &crate::buffers::ANSWERS;
    let len = t.spans.len();
    if !parallel || len < 2 {
        let mut out = pool.take(frame.len() + len * SPAN_JSON_BYTES);
        out.extend_from_slice(head);
        write(&mut out, 0, len);
        out.extend_from_slice(tail);
        return vec![out];
    }
    let mid = len / 2;
    std::thread::scope(|s| {
        let second = s.spawn(|| {
            let mut buf = pool.take((len - mid) * SPAN_JSON_BYTES + tail.len());
            write(&mut buf, mid, len);
            buf.extend_from_slice(tail);
            buf
        });
        let mut first = pool.take(head.len() + mid * SPAN_JSON_BYTES + 1);
        first.extend_from_slice(head);
        write(&mut first, 0, mid);
        first.push(b',');
        vec![first, second.join().expect("span JSON does not panic")]
    })
}

/// A response body sent as the parts it was written in, with its exact
/// length (so `Content-Length` is set as for one buffer).
struct Parts {
    parts: std::collections::VecDeque<bytes::Bytes>,
}

impl Parts {
    /// Parts of pooled buffers: each goes back to the pool once sent.
    fn pooled(parts: Vec<Vec<u8>>) -> Parts {
        Parts {
            parts: parts
                .into_iter()
                .map(|p| crate::buffers::ANSWERS.into_bytes(p))
                .collect(),
        }
    }
}

impl http_body::Body for Parts {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let next = self.parts.pop_front();
        std::task::Poll::Ready(next.map(|p| Ok(http_body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // What is left to send: at most a few parts.
        http_body::SizeHint::with_exact(self.parts.iter().map(|p| p.len() as u64).sum())
    }
}

/// Most trace IDs one `GET /api/v1/traces?ids=` takes.
pub const MAX_IDS: usize = 100;

async fn get_traces(State(q): State<QueryService>, p: Pairs) -> Result<Response, ApiError> {
    let p = pairs(p)?;
    let ids: Vec<String> = p
        .iter()
        .filter(|(k, _)| k == "ids")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(ApiError::bad_request(format!(
            "ids must list 1 to {MAX_IDS} trace IDs, comma separated"
        )));
    }
    let tp = trace_params(p, &["ids"])?;
    // `{"data": [trace, …], "missing": [id, …]}`, each trace written as
    // `GET /api/v1/traces/{id}` writes it.
    let mut body = b"{\"data\":[".to_vec();
    let mut missing = Vec::new();
    let mut first = true;
    for id in ids {
        let parts = match q.fetch_trace(&id, tp.options).await {
            Ok(f) if tp.otlp => vec![
                serde_json::to_vec(&crate::otlp_json::trace(&f.trace))
                    .expect("a JSON value serializes"),
            ],
            Ok(f) => trace_json_parts(&f.trace, f.pinned),
            Err(Error::TraceNotFound(_)) => {
                missing.push(id);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if !first {
            body.push(b',');
        }
        first = false;
        append_parts(&mut body, parts);
    }
    body.extend_from_slice(b"],\"missing\":");
    serde_json::to_writer(&mut body, &missing).expect("strings serialize");
    body.push(b'}');
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

async fn pin(
    State(q): State<QueryService>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    q.set_pinned(&id, true).await?;
    Ok(Json(json!({"traceId": id, "pinned": true})))
}

async fn unpin(
    State(q): State<QueryService>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    q.set_pinned(&id, false).await.map_err(|e| match e {
        Error::TraceNotFound(_) => ApiError::not_found(format!("trace {id} is not pinned")),
        e => e.into(),
    })?;
    Ok(Json(json!({"traceId": id, "pinned": false})))
}

fn sizes_json(s: &crate::StoreSizes) -> serde_json::Value {
    json!({
        "diskBytes": s.disk_bytes,
        "sstBytes": s.sst_bytes(),
        "columnFamilies": s
            .column_families
            .iter()
            .map(|(name, bytes)| json!({"name": name, "bytes": bytes}))
            .collect::<Vec<_>>(),
    })
}

/// `POST /api/v1/admin/compact`: flush and compact the whole store, for
/// size measurements (`phosphor bench size`); one at a time.
async fn compact(State(q): State<QueryService>) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(c) = q.compact().await? else {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: "a compaction is already running".into(),
        });
    };
    tracing::info!(
        before = c.before.disk_bytes,
        after = c.after.disk_bytes,
        seconds = c.took.as_secs_f64(),
        "store compacted on request"
    );
    Ok(Json(json!({
        "before": sizes_json(&c.before),
        "after": sizes_json(&c.after),
        "seconds": c.took.as_secs_f64(),
    })))
}

type Pairs = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

fn pairs(p: Pairs) -> Result<Vec<(String, String)>, ApiError> {
    p.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

async fn get_search(
    State(q): State<QueryService>,
    p: Pairs,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = params::search(&pairs(p)?, q.now_us()).map_err(ApiError::bad_request)?;
    let limit = query.limit;
    let hits = q.search(query).await?;
    let data: Vec<SummaryJson> = hits.iter().map(SummaryJson::from).collect();
    Ok(Json(json!({ "data": data, "limit": limit })))
}

async fn get_attributes(
    State(q): State<QueryService>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "data": q.attribute_keys().await? })))
}

async fn get_attribute_values(
    State(q): State<QueryService>,
    Path(key): Path<String>,
    p: Pairs,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut limit = 100;
    for (k, v) in pairs(p)? {
        match k.as_str() {
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=params::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("limit must be 1 to {}", params::MAX_LIMIT))
                    })?
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?} (limit)"
                )));
            }
        }
    }
    Ok(Json(
        json!({ "data": q.attribute_values(&key, limit).await? }),
    ))
}

/// Default range of `/api/v1/dependencies`.
const DEPENDENCY_LOOKBACK: std::time::Duration = std::time::Duration::from_secs(86_400);

async fn get_dependencies(
    State(q): State<QueryService>,
    p: Pairs,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (mut start, mut end, mut lookback) = (None, None, None);
    for (k, v) in pairs(p)? {
        let bad = ApiError::bad_request;
        match k.as_str() {
            "start" => start = Some(params::time_us(&v).map_err(bad)?),
            "end" => end = Some(params::time_us(&v).map_err(bad)?),
            "lookback" => lookback = Some(params::duration(&v).map_err(bad)?),
            other => {
                return Err(bad(format!(
                    "unknown parameter {other:?} (start, end, lookback)"
                )));
            }
        }
    }
    let end = end.unwrap_or_else(|| q.now_us() + 1);
    let start = start.unwrap_or_else(|| {
        end.saturating_sub(lookback.unwrap_or(DEPENDENCY_LOOKBACK).as_micros() as u64)
    });
    if start > end {
        return Err(ApiError::bad_request("start is after end"));
    }
    let deps = q.dependencies(start, end).await?;
    let data: Vec<_> = deps
        .iter()
        .map(|d| {
            json!({"caller": d.caller, "callee": d.callee,
                   "callCount": d.calls, "errorCount": d.errors})
        })
        .collect();
    Ok(Json(json!({ "data": data, "start": start, "end": end })))
}

async fn get_services(State(q): State<QueryService>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "data": q.services().await? })))
}

async fn get_operations(
    State(q): State<QueryService>,
    Path(service): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ops = q.operations(&service).await?;
    if ops.is_empty() && !q.services().await?.contains(&service) {
        return Err(ApiError::not_found(format!("unknown service {service:?}")));
    }
    let data: Vec<_> = ops
        .iter()
        .map(|o| json!({"name": o.name, "spanKind": o.kind.as_str()}))
        .collect();
    Ok(Json(json!({ "data": data })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use phosphor_store::model::{Annotation, AnnotationType, Fragment, LegacyIds, SpanId, TraceId};
    use phosphor_store::{Store, StoreConfig};
    use std::sync::Arc;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_large_trace_is_sent_in_parts_with_its_whole_length() {
        use phosphor_store::synth::{self, Shape};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        let shape = Shape {
            spans: 1_201,
            ..Shape::default()
        };
        let fragments = synth::trace(5, now, &shape);
        let id = fragments[0].trace_id();
        store.write(&fragments).unwrap();
        let q = QueryService::new(Arc::new(store));
        let f = q
            .fetch_trace(&id.to_string(), crate::assemble::Options::default())
            .await
            .unwrap();
        let expected = trace_json_bytes(&f.trace, f.pinned);
        assert_eq!(trace_json_parts(&f.trace, f.pinned).len(), 2);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(q.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        // Twice: the second answer is written into the first one's buffers.
        for _ in 0..2 {
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req =
                format!("GET /api/v1/traces/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            conn.write_all(req.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            conn.read_to_end(&mut raw).await.unwrap();
            let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            let head = std::str::from_utf8(&raw[..split])
                .unwrap()
                .to_ascii_lowercase();
            let body = &raw[split + 4..];
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(
                head.contains(&format!("\r\ncontent-length: {}\r\n", expected.len())),
                "{head}"
            );
            assert!(!head.contains("transfer-encoding"), "{head}");
            assert!(body == expected.as_slice(), "the body is the trace's JSON");
        }
        // Several at once: each trace's parts, written into the answer.
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /api/v1/traces?ids={id},{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        conn.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await.unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let mut want = b"{\"data\":[".to_vec();
        want.extend_from_slice(&expected);
        want.push(b',');
        want.extend_from_slice(&expected);
        want.extend_from_slice(b"],\"missing\":[]}");
        assert!(
            raw[split + 4..] == want[..],
            "both traces, as the single route has them"
        );
    }

    #[test]
    fn large_trace_json_written_in_halves_is_the_same_json() {
        use phosphor_store::synth::{self, Shape};
        let shape = Shape {
            spans: 1_201,
            ..Shape::default()
        };
        let mut fragments = synth::trace(3, 1_700_000_000_000_000, &shape);
        // A name that looks like the place the spans go must not fool it.
        if let Fragment::Span(s) = &mut fragments[0] {
            s.name = r#""pinned":false,"spans":[ x"#.into();
        }
        let id = fragments[0].trace_id();
        let t = crate::assemble::assemble(id, fragments);
        for pinned in [false, true] {
            let serde = serde_json::to_vec(&TraceJson::of(&t, pinned)).unwrap();
            let one = write_trace_json(&t, pinned, false);
            assert_eq!(
                String::from_utf8(one.clone()).unwrap(),
                String::from_utf8(serde).unwrap()
            );
            let two = write_trace_json(&t, pinned, true);
            assert_eq!(
                String::from_utf8(two).unwrap(),
                String::from_utf8(one.clone()).unwrap()
            );
            // Sent as written: two halves, together the same JSON.
            let parts = trace_json_parts(&t, pinned);
            assert_eq!(parts.len(), 2);
            assert_eq!(parts.concat(), one);
            let v: serde_json::Value = serde_json::from_slice(&one).unwrap();
            assert_eq!(v["spans"].as_array().unwrap().len(), 1_201);
            assert_eq!(v["spans"][1_200]["index"], 1_200);
            assert_eq!(v["pinned"], pinned);
        }
        assert_eq!(
            trace_json_bytes(&t, false),
            write_trace_json(&t, false, false)
        );
    }

    #[test]
    fn hand_written_span_json_is_the_serde_json() {
        use phosphor_store::model::{
            Event, KeyValue, Link, Protocol, Span, SpanKind, StatusCode, Value,
        };
        let trace_id = TraceId([5; 16]);
        let odd = "quote \" back \\ nl \n tab \t bell \u{7} é ✓ </script>";
        let values = vec![
            KeyValue::string("z.last", odd),
            KeyValue::string("a.first", "plain"),
            KeyValue {
                key: "num".into(),
                value: Value::Double(1.5),
            },
            KeyValue {
                key: "nan".into(),
                value: Value::Double(f64::NAN),
            },
            KeyValue {
                key: "inf".into(),
                value: Value::Double(f64::NEG_INFINITY),
            },
            KeyValue {
                key: "zero".into(),
                value: Value::Double(-0.0),
            },
            KeyValue {
                key: "big".into(),
                value: Value::Int(i64::MIN),
            },
            KeyValue {
                key: "yes".into(),
                value: Value::Bool(true),
            },
            KeyValue {
                key: "bytes".into(),
                value: Value::Bytes(vec![0, 0xff]),
            },
            KeyValue {
                key: "list".into(),
                value: Value::Array(vec![Value::Int(1), Value::Str(odd.into())]),
            },
            KeyValue {
                key: "map".into(),
                value: Value::Map(vec![KeyValue::string("b", "1"), KeyValue::string("a", "2")]),
            },
            KeyValue::string("a.first", "a later duplicate wins"),
            KeyValue::string(odd, "odd key"),
        ];
        let span = |id: u8, parent: Option<u8>, name: &str| {
            Fragment::Span(Span {
                trace_id,
                span_id: SpanId([id; 8]),
                parent_span_id: parent.map(|p| SpanId([p; 8])),
                name: name.into(),
                kind: SpanKind::Server,
                service: "svc \"q\"".into(),
                start_ns: 1_700_000_000_000_000_000 + u64::from(id) * 1_000_000,
                end_ns: 1_700_000_000_500_000_000,
                status: StatusCode::Error,
                status_message: odd.into(),
                attributes: values.clone(),
                resource: vec![KeyValue::string("host.name", "h1")],
                scope: None,
                events: vec![Event {
                    time_ns: 1_700_000_000_100_000_000,
                    name: odd.into(),
                    attributes: values.clone(),
                }],
                links: vec![Link {
                    trace_id: TraceId([9; 16]),
                    span_id: SpanId([8; 8]),
                    attributes: values.clone(),
                }],
                protocol: Protocol::OtlpGrpc,
            })
        };
        let ann = |kind, ts| {
            Fragment::Annotation(Annotation {
                trace_id,
                span_id: SpanId([4; 8]),
                parent_id: Some(SpanId([1; 8])),
                legacy: LegacyIds {
                    trace: Some("legacy-trace".into()),
                    span: Some("legacy \"span\"".into()),
                    parent: None,
                },
                kind,
                one_way: false,
                timestamp_us: ts,
                duration_us: 0,
                hostname: "host-1".into(),
                origin: "api".into(),
                destination: "card-api".into(),
                payload: Default::default(),
                attributes: vec![("operation".into(), "authorise".into())],
            })
        };
        let fragments = vec![
            span(1, None, "root"),
            span(2, Some(1), odd),
            // Its parent never arrived: a placeholder stands in.
            span(3, Some(7), "orphan"),
            // The same span ID twice with different content.
            span(2, Some(1), "conflicting"),
            ann(AnnotationType::ClientSend, 1_700_000_000_010_000),
            ann(AnnotationType::ServerRecv, 1_700_000_000_020_000),
        ];
        let t = crate::assemble::assemble(trace_id, fragments);
        assert!(t.spans.iter().any(|n| n.placeholder));
        assert!(t.spans.iter().any(|n| !n.annotations.is_empty()));
        assert!(t.spans.iter().any(|n| !n.warnings.is_empty()));
        for (i, n) in t.spans.iter().enumerate() {
            let mut fast = Vec::new();
            crate::fastjson::span(&mut fast, i, n);
            let serde = serde_json::to_vec(&SpanJson::of(i, n)).unwrap();
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
        assert_eq!(
            String::from_utf8(write_trace_json(&t, true, true)).unwrap(),
            serde_json::to_string(&TraceJson::of(&t, true)).unwrap()
        );
    }

    fn store_with_trace() -> (tempfile::TempDir, QueryService) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let (trace_id, legacy) = TraceId::parse("legacy-trace-<1>").unwrap();
        let ann = |kind, ts| {
            Fragment::Annotation(Annotation {
                trace_id,
                span_id: SpanId([1; 8]),
                parent_id: None,
                legacy: LegacyIds {
                    trace: legacy.clone(),
                    ..Default::default()
                },
                kind,
                one_way: false,
                timestamp_us: ts,
                duration_us: 0,
                hostname: "h".into(),
                origin: "api".into(),
                destination: "card-api".into(),
                payload: Default::default(),
                attributes: vec![("operation".into(), "authorise".into())],
            })
        };
        store
            .write(&[
                ann(AnnotationType::ClientSend, 1_000),
                ann(AnnotationType::ClientRecv, 3_000),
            ])
            .unwrap();
        (dir, QueryService::new(Arc::new(store)))
    }

    async fn call(q: &QueryService, method: &str, uri: &str) -> (StatusCode, serde_json::Value) {
        let resp = router(q.clone())
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    async fn get(q: &QueryService, uri: &str) -> (StatusCode, serde_json::Value) {
        call(q, "GET", uri).await
    }

    #[tokio::test]
    async fn a_trace_says_how_long_its_stages_took() {
        let (_dir, q) = store_with_trace();
        for query in ["", "?format=otlp"] {
            let resp = router(q.clone())
                .oneshot(
                    Request::builder()
                        .uri(format!("/api/v1/traces/legacy-trace-%3C1%3E{query}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let timing = resp.headers()["server-timing"]
                .to_str()
                .unwrap()
                .to_string();
            let names: Vec<&str> = timing
                .split(", ")
                .map(|m| {
                    let (name, dur) = m.split_once(";dur=").expect(&timing);
                    assert!(dur.parse::<f64>().unwrap() >= 0.0, "{timing}");
                    name
                })
                .collect();
            assert_eq!(names, ["read", "assemble", "json"], "{timing}");
        }
    }

    #[tokio::test]
    async fn trace_by_legacy_string_id() {
        let (_dir, q) = store_with_trace();
        let (status, body) = get(&q, "/api/v1/traces/legacy-trace-%3C1%3E").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["legacyTraceId"], "legacy-trace-<1>");
        assert_eq!(body["spanCount"], 1);
        assert_eq!(body["duration"], 2_000);
        let span = &body["spans"][0];
        assert_eq!(span["name"], "authorise");
        assert_eq!(span["service"], "api");
        assert_eq!(span["kind"], "client");
        assert_eq!(span["startTime"], 1_000);
        assert_eq!(span["attributes"]["peer.service"], "card-api");
        // The same trace by its hex form.
        let hex = body["traceId"].as_str().unwrap().to_string();
        let (status, again) = get(&q, &format!("/api/v1/traces/{hex}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["spans"][0]["spanId"], span["spanId"]);
    }

    #[tokio::test]
    async fn unknown_and_malformed_ids_are_json_errors() {
        let (_dir, q) = store_with_trace();
        let (status, body) = get(&q, "/api/v1/traces/4bf92f3577b34da6a3ce929d0e0e4736").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], 404);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not found")
        );
        let (status, body) = get(&q, "/api/v1/traces/a%20b").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("malformed trace id")
        );
        let (status, body) = get(&q, "/api/v1/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/api/v1/nope")
        );
    }

    #[tokio::test]
    async fn services_operations_search_attributes_dependencies() {
        let (_dir, q) = store_with_trace();
        let (_, body) = get(&q, "/api/v1/services").await;
        assert_eq!(body["data"], json!(["api"]));
        let (_, body) = get(&q, "/api/v1/services/api/operations").await;
        assert_eq!(
            body["data"],
            json!([{"name": "authorise", "spanKind": "client"}])
        );
        let (status, _) = get(&q, "/api/v1/services/nope/operations").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, body) = get(&q, "/api/v1/search?start=0&service=api&limit=5").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let hit = &body["data"][0];
        assert_eq!(hit["rootName"], "authorise");
        assert_eq!(hit["rootService"], "api");
        assert_eq!(
            (hit["startTime"].as_u64(), hit["duration"].as_u64()),
            (Some(1_000), Some(2_000))
        );
        assert_eq!(hit["spanCount"], 1);
        assert_eq!(hit["services"], json!([{"name": "api", "spanCount": 1}]));
        assert_eq!(hit["matchedSpanId"], "0101010101010101");
        let (_, body) = get(&q, "/api/v1/search?start=0&service=cards").await;
        assert_eq!(body["data"], json!([]));
        let (_, body) = get(&q, "/api/v1/search?start=0&attr=peer.service%3Dcard-api").await;
        assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
        for bad in [
            "limit=abc",
            "colour=red",
            "minDuration=fast",
            "attr=novalue",
        ] {
            let (status, body) = get(&q, &format!("/api/v1/search?{bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert!(body["error"]["message"].as_str().unwrap().len() > 5);
        }

        let (_, body) = get(&q, "/api/v1/attributes").await;
        assert!(
            body["data"]
                .as_array()
                .unwrap()
                .contains(&json!("operation")),
            "{body}"
        );
        let (_, body) = get(&q, "/api/v1/attributes/operation/values").await;
        assert_eq!(body["data"], json!(["authorise"]));
        let (_, body) = get(&q, "/api/v1/dependencies?start=0").await;
        assert_eq!(
            body["data"],
            json!([{"caller": "api", "callee": "card-api", "callCount": 1, "errorCount": 0}])
        );
    }

    #[tokio::test]
    async fn pinning_through_the_api() {
        let (_dir, q) = store_with_trace();
        let id = "legacy-trace-%3C1%3E";
        let (status, body) = call(&q, "POST", &format!("/api/v1/traces/{id}/pin")).await;
        assert_eq!(
            (status, &body["pinned"]),
            (StatusCode::OK, &json!(true)),
            "{body}"
        );
        let (_, body) = get(&q, &format!("/api/v1/traces/{id}")).await;
        assert_eq!(body["pinned"], true);
        let (status, _) = call(&q, "DELETE", &format!("/api/v1/traces/{id}/pin")).await;
        assert_eq!(status, StatusCode::OK);
        let (_, body) = get(&q, &format!("/api/v1/traces/{id}")).await;
        assert_eq!(body["pinned"], false);
        let (status, body) = call(&q, "DELETE", &format!("/api/v1/traces/{id}/pin")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _) = call(
            &q,
            "POST",
            "/api/v1/traces/ffffffffffffffffffffffffffffffff/pin",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn skew_is_adjusted_unless_raw_and_the_critical_path_comes_along() {
        use phosphor_store::model::{KeyValue, Protocol, Span, SpanKind, StatusCode as St};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let span = |id: u8, parent: Option<u8>, kind, host: &str, start: u64, end: u64| {
            Fragment::Span(Span {
                trace_id: TraceId([3; 16]),
                span_id: SpanId([id; 8]),
                parent_span_id: parent.map(|p| SpanId([p; 8])),
                name: format!("s{id}").into(),
                kind,
                service: host.into(),
                start_ns: start * 1_000,
                end_ns: end * 1_000,
                status: St::Unset,
                status_message: Default::default(),
                attributes: vec![],
                resource: vec![KeyValue::string("host.name", host)],
                scope: None,
                events: vec![],
                links: vec![],
                protocol: Protocol::OtlpGrpc,
            })
        };
        store
            .write(&[
                span(1, None, SpanKind::Client, "a", 1_000, 2_000),
                span(2, Some(1), SpanKind::Server, "b", 500, 1_300),
            ])
            .unwrap();
        let q = QueryService::new(Arc::new(store));
        let id = "03".repeat(16);
        let (_, t) = get(&q, &format!("/api/v1/traces/{id}")).await;
        assert_eq!(t["spans"][1]["startTime"], 1_100);
        assert_eq!(t["spans"][1]["clockSkewShift"], 600);
        assert_eq!(t["spans"][1]["host"], "b");
        assert!(
            t["spans"][1]["warnings"][0]
                .as_str()
                .unwrap()
                .contains("clock skew")
        );
        assert_eq!(
            t["criticalPath"],
            json!([
                {"index": 0, "startTime": 1_000, "duration": 100},
                {"index": 1, "startTime": 1_100, "duration": 800},
                {"index": 0, "startTime": 1_900, "duration": 100}
            ])
        );
        assert_eq!(t["spans"][0]["criticalTime"], 200);
        let (_, raw) = get(&q, &format!("/api/v1/traces/{id}?raw=true")).await;
        assert_eq!(raw["spans"][1]["startTime"], 500);
        assert_eq!(raw["spans"][1]["clockSkewShift"], 0);
        let (status, _) = get(&q, &format!("/api/v1/traces/{id}?raw=maybe")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn compaction_on_request_reports_sizes_and_runs_one_at_a_time() {
        let (_dir, q) = store_with_trace();
        let (status, body) = call(&q, "POST", "/api/v1/admin/compact").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // The written trace was in the memtable: after the flush and the
        // compaction it is in SST files.
        assert!(body["after"]["sstBytes"].as_u64().unwrap() > 0, "{body}");
        assert!(body["after"]["diskBytes"].as_u64().unwrap() > 0, "{body}");
        let cfs = body["after"]["columnFamilies"].as_array().unwrap();
        let sum: u64 = cfs.iter().map(|c| c["bytes"].as_u64().unwrap()).sum();
        assert_eq!(sum, body["after"]["sstBytes"].as_u64().unwrap());
        assert!(cfs.iter().any(|c| c["name"] == "meta"), "{body}");
        // And the data is still there.
        let (status, _) = get(&q, "/api/v1/traces/legacy-trace-%3C1%3E").await;
        assert_eq!(status, StatusCode::OK);

        // While one runs, another is refused.
        q.compacting
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let (status, body) = call(&q, "POST", "/api/v1/admin/compact").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("already running")
        );
        q.compacting
            .store(false, std::sync::atomic::Ordering::SeqCst);
        // It is a POST: a GET is not a compaction.
        let resp = router(q.clone())
            .oneshot(
                Request::builder()
                    .uri("/api/v1/admin/compact")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
