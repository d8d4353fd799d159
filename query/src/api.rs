//! The native JSON API, `/api/v1`.
//!
//! Durations are microseconds and timestamps Unix microseconds unless a
//! field's name says otherwise; IDs are lower-case hex. Errors are
//! `{"error": {"code": <http status>, "message": "..."}}`; a 5xx never
//! carries internals (they go to the log).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::assemble::{Node, Trace, attributes_json};
use crate::{Error, QueryService, TraceSummary};

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
        .route("/api/v1/traces/{id}", get(get_trace))
        .route("/api/v1/recent", get(get_recent))
        .route("/api/v1/services", get(get_services))
        .route("/api/v1/services/{service}/operations", get(get_operations))
        .route("/api/v1/{*rest}", get(unknown_route))
        .with_state(query)
}

async fn unknown_route(Path(rest): Path<String>) -> ApiError {
    ApiError::not_found(format!("no API route /api/v1/{rest}"))
}

fn us(ns: u64) -> u64 {
    ns / 1_000
}

/// One span of a trace, as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanJson {
    pub index: usize,
    pub span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_index: Option<usize>,
    pub children: Vec<usize>,
    pub depth: usize,
    pub name: String,
    pub service: String,
    pub kind: &'static str,
    /// Unix microseconds.
    pub start_time: u64,
    /// Microseconds.
    pub duration: u64,
    pub status: serde_json::Value,
    pub error: bool,
    pub incomplete: bool,
    pub placeholder: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<&'static str>,
    pub attributes: serde_json::Value,
    pub resource: serde_json::Value,
    pub events: Vec<serde_json::Value>,
    pub links: Vec<serde_json::Value>,
    pub protocols: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_span_id: Option<String>,
    pub warnings: Vec<String>,
}

impl SpanJson {
    fn of(index: usize, n: &Node) -> SpanJson {
        use phosphor_store::model::Side;
        SpanJson {
            index,
            span_id: n.span_id.to_hex(),
            parent_span_id: n.parent_span_id.map(|p| p.to_hex()),
            parent_index: n.parent,
            children: n.children.clone(),
            depth: n.depth,
            name: n.name.clone(),
            service: n.service.clone(),
            kind: n.kind.as_str(),
            start_time: us(n.start_ns),
            duration: us(n.duration_ns()),
            status: json!({"code": n.status.as_str(), "message": n.status_message}),
            error: n.is_error(),
            incomplete: n.incomplete,
            placeholder: n.placeholder,
            side: n.side.map(|s| match s {
                Side::Client => "client",
                Side::Server => "server",
                Side::Event => "event",
            }),
            annotations: n.annotations.iter().map(|a| a.as_str()).collect(),
            attributes: attributes_json(&n.attributes),
            resource: attributes_json(&n.resource),
            events: n
                .events
                .iter()
                .map(|e| {
                    json!({"time": us(e.time_ns), "name": e.name,
                           "attributes": attributes_json(&e.attributes)})
                })
                .collect(),
            links: n
                .links
                .iter()
                .map(|l| {
                    json!({"traceId": l.trace_id.to_hex(), "spanId": l.span_id.to_hex(),
                           "attributes": attributes_json(&l.attributes)})
                })
                .collect(),
            protocols: n.protocols.iter().map(|p| p.as_str()).collect(),
            legacy_span_id: n.legacy_span_id.clone(),
            warnings: n.warnings.clone(),
        }
    }
}

/// An assembled trace, as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceJson {
    pub trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_trace_id: Option<String>,
    /// Unix microseconds.
    pub start_time: u64,
    /// Microseconds.
    pub duration: u64,
    pub span_count: usize,
    pub error_count: usize,
    pub services: Vec<String>,
    pub warnings: Vec<String>,
    /// Depth-first order; `parentIndex` and `children` index this list.
    pub spans: Vec<SpanJson>,
}

impl TraceJson {
    /// The JSON form of an assembled trace.
    pub fn of(t: &Trace) -> TraceJson {
        TraceJson {
            trace_id: t.trace_id.to_hex(),
            legacy_trace_id: t.legacy_id.clone(),
            start_time: us(t.start_ns),
            duration: us(t.duration_ns()),
            span_count: t.spans.iter().filter(|n| !n.placeholder).count(),
            error_count: t.error_count(),
            services: t.services().into_iter().map(str::to_string).collect(),
            warnings: t.warnings.clone(),
            spans: t
                .spans
                .iter()
                .enumerate()
                .map(|(i, n)| SpanJson::of(i, n))
                .collect(),
        }
    }
}

/// A trace summary, as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryJson {
    pub trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_trace_id: Option<String>,
    pub root_service: String,
    pub root_name: String,
    pub start_time: u64,
    pub duration: u64,
    pub span_count: usize,
    pub error_count: usize,
    pub services: Vec<String>,
}

impl From<&TraceSummary> for SummaryJson {
    fn from(s: &TraceSummary) -> SummaryJson {
        SummaryJson {
            trace_id: s.trace_id.to_hex(),
            legacy_trace_id: s.legacy_id.clone(),
            root_service: s.root_service.clone(),
            root_name: s.root_name.clone(),
            start_time: us(s.start_ns),
            duration: us(s.duration_ns),
            span_count: s.span_count,
            error_count: s.error_count,
            services: s.services.clone(),
        }
    }
}

async fn get_trace(
    State(q): State<QueryService>,
    Path(id): Path<String>,
) -> Result<Json<TraceJson>, ApiError> {
    let t = q.trace(&id).await?;
    Ok(Json(TraceJson::of(&t)))
}

/// Query string of `/api/v1/recent`.
#[derive(Debug, Deserialize)]
struct RecentParams {
    limit: Option<usize>,
}

/// Largest `limit` a list request may ask for.
pub const MAX_LIMIT: usize = 1_000;

async fn get_recent(
    State(q): State<QueryService>,
    params: Result<Query<RecentParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = p.limit.unwrap_or(20);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let list = q.recent(limit).await?;
    let data: Vec<SummaryJson> = list.iter().map(SummaryJson::from).collect();
    Ok(Json(json!({ "data": data })))
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
                payload: String::new(),
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

    async fn get(q: &QueryService, uri: &str) -> (StatusCode, serde_json::Value) {
        let resp = router(q.clone())
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
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
    async fn services_operations_and_recent() {
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
        let (_, body) = get(&q, "/api/v1/recent?limit=5").await;
        assert_eq!(body["data"][0]["rootName"], "authorise");
        assert_eq!(body["data"][0]["legacyTraceId"], "legacy-trace-<1>");
        let (status, body) = get(&q, "/api/v1/recent?limit=abc").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
}
