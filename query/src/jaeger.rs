//! The Jaeger query API, mounted under `/jaeger`, in Jaeger's JSON shape
//! (the `model/json` the Jaeger UI reads), so that Grafana's Jaeger data
//! source and Jaeger tooling work unchanged.
//!
//! Every answer is `{"data", "total", "limit", "offset", "errors"}`;
//! timestamps and durations are microseconds.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use phosphor_store::SearchQuery;
use phosphor_store::model::{KeyValue, SpanKind, StatusCode as SpanStatus, Value};
use serde_json::{Value as J, json};

use crate::assemble::{Node, Trace};
use crate::{Error, QueryService, params};

/// Routes, relative to the `/jaeger` prefix.
pub fn router(query: QueryService) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{id}", get(trace))
        .route("/api/dependencies", get(dependencies))
        .with_state(query)
}

fn envelope(data: J) -> Json<J> {
    let total = data.as_array().map_or(0, Vec::len);
    Json(json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null}))
}

/// Jaeger's error shape.
fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let body = json!({"data": null, "total": 0, "limit": 0, "offset": 0,
                      "errors": [{"code": status.as_u16(), "msg": msg.into()}]});
    (status, Json(body)).into_response()
}

fn failed(e: Error) -> Response {
    match e {
        Error::BadTraceId(_) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Error::TraceNotFound(_) => error(StatusCode::NOT_FOUND, "trace not found"),
        Error::Store(_) | Error::Task(_) => {
            tracing::error!(error = %e, "jaeger query failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log",
            )
        }
    }
}

/// A typed Jaeger tag.
fn tag(key: &str, v: &Value) -> J {
    let (ty, value) = match v {
        Value::Str(s) => ("string", json!(s)),
        Value::Bool(b) => ("bool", json!(b)),
        Value::Int(i) => ("int64", json!(i)),
        Value::Double(d) => ("float64", json!(d)),
        Value::Bytes(b) => ("binary", json!(hex::encode(b))),
        other => ("string", json!(other.to_string())),
    };
    json!({"key": key, "type": ty, "value": value})
}

fn tags(kvs: &[KeyValue]) -> Vec<J> {
    kvs.iter().map(|kv| tag(&kv.key, &kv.value)).collect()
}

/// A trace in Jaeger's JSON: spans with references to their parents, and
/// one process per service (with its resource attributes).
pub fn trace_json(t: &Trace) -> J {
    let mut processes: Vec<(String, Vec<KeyValue>)> = Vec::new();
    let trace_id = t.trace_id.to_hex();
    let spans: Vec<J> = t
        .spans
        .iter()
        .filter(|n| !n.placeholder)
        .map(|n| {
            let pid = match processes
                .iter()
                .position(|(s, r)| *s == n.service && *r == n.resource)
            {
                Some(i) => i,
                None => {
                    processes.push((n.service.to_string(), n.resource.clone()));
                    processes.len() - 1
                }
            };
            span_json(&trace_id, n, format!("p{}", pid + 1))
        })
        .collect();
    let processes: serde_json::Map<String, J> = processes
        .into_iter()
        .enumerate()
        .map(|(i, (service, resource))| {
            (
                format!("p{}", i + 1),
                json!({"serviceName": service, "tags": tags(&resource)}),
            )
        })
        .collect();
    json!({
        "traceID": trace_id,
        "spans": spans,
        "processes": processes,
        "warnings": if t.warnings.is_empty() { J::Null } else { json!(t.warnings) },
    })
}

fn span_json(trace_id: &str, n: &Node, process: String) -> J {
    let mut span_tags = tags(&n.attributes);
    if n.kind != SpanKind::Unspecified {
        span_tags.push(json!({"key": "span.kind", "type": "string", "value": n.kind.as_str()}));
    }
    if n.status == SpanStatus::Error {
        span_tags.push(json!({"key": "error", "type": "bool", "value": true}));
    }
    if !n.status_message.is_empty() {
        span_tags.push(json!({"key": "otel.status_description", "type": "string",
                              "value": n.status_message}));
    }
    let references: Vec<J> = n
        .parent_span_id
        .iter()
        .map(|p| json!({"refType": "CHILD_OF", "traceID": trace_id, "spanID": p.to_hex()}))
        .chain(n.links.iter().map(|l| {
            json!({"refType": "FOLLOWS_FROM", "traceID": l.trace_id.to_hex(),
                   "spanID": l.span_id.to_hex()})
        }))
        .collect();
    let logs: Vec<J> = n
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![json!({"key": "event", "type": "string", "value": e.name})];
            fields.extend(tags(&e.attributes));
            json!({"timestamp": e.time_ns / 1_000, "fields": fields})
        })
        .collect();
    json!({
        "traceID": trace_id,
        "spanID": n.span_id.to_hex(),
        "operationName": n.name,
        "references": references,
        "startTime": n.start_ns / 1_000,
        "duration": n.duration_ns() / 1_000,
        "tags": span_tags,
        "logs": logs,
        "processID": process,
        "warnings": if n.warnings.is_empty() { J::Null } else { json!(n.warnings) },
        "flags": 1,
    })
}

async fn services(State(q): State<QueryService>) -> Response {
    match q.services().await {
        Ok(s) => envelope(json!(s)).into_response(),
        Err(e) => failed(e),
    }
}

async fn service_operations(
    State(q): State<QueryService>,
    Path(service): Path<String>,
) -> Response {
    match q.operations(&service).await {
        Ok(ops) => {
            let mut names: Vec<String> = ops.into_iter().map(|o| o.name).collect();
            names.dedup();
            envelope(json!(names)).into_response()
        }
        Err(e) => failed(e),
    }
}

async fn operations(
    State(q): State<QueryService>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let Some(service) = p.get("service").filter(|s| !s.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "parameter 'service' is required");
    };
    let kind = p.get("spanKind").filter(|k| !k.is_empty());
    match q.operations(service).await {
        Ok(ops) => {
            let data: Vec<J> = ops
                .iter()
                .filter(|o| kind.is_none_or(|k| k == o.kind.as_str()))
                .map(|o| json!({"name": o.name, "spanKind": o.kind.as_str()}))
                .collect();
            envelope(json!(data)).into_response()
        }
        Err(e) => failed(e),
    }
}

/// Jaeger's `tags` parameter: a JSON object, or logfmt (`k=v k2="v 2"`).
fn parse_tags(s: &str) -> Result<Vec<(String, String)>, String> {
    let s = s.trim();
    if s.starts_with('{') {
        let map: serde_json::Map<String, J> =
            serde_json::from_str(s).map_err(|e| format!("tags is not a JSON object: {e}"))?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    J::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect());
    }
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (k, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("tags {s:?}: expected key=value"))?;
        let (v, after) = match after.strip_prefix('"') {
            Some(q) => q
                .split_once('"')
                .ok_or_else(|| format!("tags {s:?}: unclosed quote"))?,
            None => after.split_once(' ').unwrap_or((after, "")),
        };
        out.push((k.trim().to_string(), v.to_string()));
        rest = after.trim_start();
    }
    Ok(out)
}

/// Builds a search from Jaeger's `/api/traces` parameters.
fn jaeger_search(p: &HashMap<String, String>, now_us: u64) -> Result<SearchQuery, String> {
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(s) = get("service") {
        pairs.push(("service".into(), s.into()));
    }
    if let Some(o) = get("operation") {
        pairs.push(("operation".into(), o.into()));
    }
    for k in ["start", "end", "minDuration", "maxDuration", "limit"] {
        if let Some(v) = get(k) {
            pairs.push((k.into(), v.into()));
        }
    }
    if let Some(l) = get("lookback").filter(|l| *l != "custom") {
        pairs.push(("lookback".into(), l.into()));
    }
    let mut q = params::search(&pairs, now_us)?;
    if let Some(t) = get("tags") {
        for (k, v) in parse_tags(t)? {
            if k == "error" && v == "true" {
                q.errors_only = true;
            } else {
                q.attributes.push((k, v));
            }
        }
    }
    if get("start").is_none() && get("lookback").is_none() {
        // Jaeger's default look-back is longer than our own API's.
        q.start_us = q
            .end_us
            .saturating_sub(Duration::from_secs(2 * 86_400).as_micros() as u64);
    }
    Ok(q)
}

async fn search(
    State(q): State<QueryService>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let query = match jaeger_search(&p, q.now_us()) {
        Ok(query) => query,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let hits = match q.search(query).await {
        Ok(h) => h,
        Err(e) => return failed(e),
    };
    let mut data = Vec::with_capacity(hits.len());
    for h in hits {
        match q.trace(&h.trace_id.to_hex()).await {
            Ok(t) => data.push(trace_json(&t)),
            // Expired between search and read.
            Err(Error::TraceNotFound(_)) => {}
            Err(e) => return failed(e),
        }
    }
    envelope(json!(data)).into_response()
}

async fn trace(State(q): State<QueryService>, Path(id): Path<String>) -> Response {
    match q.trace(&id).await {
        Ok(t) => envelope(json!([trace_json(&t)])).into_response(),
        Err(e) => failed(e),
    }
}

async fn dependencies(
    State(q): State<QueryService>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let (end_ms, lookback_ms) = match (params::millis(&p, "endTs"), params::millis(&p, "lookback"))
    {
        (Ok(e), Ok(l)) => (e, l),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let end = end_ms.map_or_else(|| q.now_us(), |e| e * 1_000);
    let start = end.saturating_sub(lookback_ms.map_or(86_400_000_000, |l| l * 1_000));
    match q.dependencies(start, end + 1).await {
        Ok(deps) => {
            let data: Vec<J> = deps
                .iter()
                .map(|d| json!({"parent": d.caller, "child": d.callee, "callCount": d.calls}))
                .collect();
            envelope(json!(data)).into_response()
        }
        Err(e) => failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_as_json_or_logfmt() {
        assert_eq!(
            parse_tags(r#"{"http.status_code":"500","retry":true}"#).unwrap(),
            vec![
                ("http.status_code".into(), "500".into()),
                ("retry".into(), "true".into())
            ]
        );
        assert_eq!(
            parse_tags(r#"error=true region="eu west""#).unwrap(),
            vec![
                ("error".into(), "true".into()),
                ("region".into(), "eu west".into())
            ]
        );
        assert!(parse_tags("novalue").is_err());
        assert!(parse_tags("{bad json").is_err());
    }

    #[test]
    fn jaeger_parameters_become_a_search() {
        let p: HashMap<String, String> = [
            ("service", "api"),
            ("operation", "GET /pay"),
            ("tags", r#"{"error":"true","region":"eu"}"#),
            ("minDuration", "10ms"),
            ("limit", "7"),
            ("lookback", "1h"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let q = jaeger_search(&p, 10_000_000_000).unwrap();
        assert_eq!(q.service.as_deref(), Some("api"));
        assert_eq!(q.operation.as_deref(), Some("GET /pay"));
        assert!(q.errors_only);
        assert_eq!(q.attributes, vec![("region".to_string(), "eu".to_string())]);
        assert_eq!((q.min_duration_us, q.limit), (Some(10_000), 7));
    }
}
