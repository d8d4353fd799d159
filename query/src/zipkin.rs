//! The Zipkin v2 read API, mounted under `/zipkin`, in the shape of
//! `zipkin2-api.yaml`: services, span names, remote services, traces,
//! dependencies and autocomplete. Timestamps are microseconds; `endTs` and
//! `lookback` are milliseconds, as Zipkin has them.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use phosphor_store::SearchQuery;
use phosphor_store::model::{SpanKind, StatusCode as SpanStatus};
use serde_json::{Value as J, json};

use crate::assemble::{Node, Trace};
use crate::{Error, QueryService, params};

/// Routes, relative to the `/zipkin` prefix.
pub fn router(query: QueryService) -> Router {
    Router::new()
        .route("/api/v2/services", get(services))
        .route("/api/v2/spans", get(span_names))
        .route("/api/v2/remoteServices", get(remote_services))
        .route("/api/v2/traces", get(traces))
        .route("/api/v2/trace/{id}", get(trace))
        .route("/api/v2/traceMany", get(trace_many))
        .route("/api/v2/dependencies", get(dependencies))
        .route("/api/v2/autocompleteKeys", get(autocomplete_keys))
        .route("/api/v2/autocompleteValues", get(autocomplete_values))
        .with_state(query)
}

type Params = Query<HashMap<String, String>>;

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, msg.into() + "\n").into_response()
}

fn failed(e: Error) -> Response {
    match e {
        Error::BadTraceId(_) => bad(e.to_string()),
        Error::TraceNotFound(id) => {
            (StatusCode::NOT_FOUND, format!("trace {id} not found\n")).into_response()
        }
        Error::Store(_) | Error::Task(_) => {
            tracing::error!(error = %e, "zipkin query failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log\n",
            )
                .into_response()
        }
    }
}

fn required<'a>(p: &'a HashMap<String, String>, k: &str) -> Result<&'a str, String> {
    p.get(k)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("parameter '{k}' is required"))
}

/// A span in Zipkin v2 JSON.
fn span_json(trace_id: &str, n: &Node) -> J {
    let mut o = serde_json::Map::new();
    o.insert("traceId".into(), json!(trace_id));
    o.insert("id".into(), json!(n.span_id.to_hex()));
    if let Some(p) = n.parent_span_id {
        o.insert("parentId".into(), json!(p.to_hex()));
    }
    o.insert("name".into(), json!(n.name));
    let kind = match n.kind {
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Server => Some("SERVER"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        _ => None,
    };
    if let Some(k) = kind {
        o.insert("kind".into(), json!(k));
    }
    o.insert("timestamp".into(), json!(n.start_ns / 1_000));
    o.insert("duration".into(), json!((n.duration_ns() / 1_000).max(1)));
    let mut local = serde_json::Map::new();
    local.insert("serviceName".into(), json!(n.service));
    if let Some(h) = &n.host
        && h.parse::<std::net::Ipv4Addr>().is_ok()
    {
        local.insert("ipv4".into(), json!(h));
    }
    o.insert("localEndpoint".into(), J::Object(local));
    if let Some(peer) = n.attributes.iter().find(|kv| kv.key == "peer.service") {
        o.insert(
            "remoteEndpoint".into(),
            json!({"serviceName": peer.value.to_string()}),
        );
    }
    if !n.events.is_empty() {
        let anns: Vec<J> = n
            .events
            .iter()
            .map(|e| json!({"timestamp": e.time_ns / 1_000, "value": e.name}))
            .collect();
        o.insert("annotations".into(), json!(anns));
    }
    let mut tags: serde_json::Map<String, J> = n
        .attributes
        .iter()
        .filter(|kv| kv.key != "peer.service" && kv.key != "zipkin.shared")
        .map(|kv| (kv.key.to_string(), json!(kv.value.to_string())))
        .collect();
    if n.status == SpanStatus::Error {
        let msg = if n.status_message.is_empty() {
            "true"
        } else {
            n.status_message.as_str()
        };
        tags.insert("error".into(), json!(msg));
    }
    if !tags.is_empty() {
        o.insert("tags".into(), J::Object(tags));
    }
    // A server side sharing its client's span ID.
    if n.side == Some(phosphor_store::model::Side::Server)
        || n.attributes.iter().any(|kv| kv.key == "zipkin.shared")
    {
        o.insert("shared".into(), json!(true));
    }
    J::Object(o)
}

/// A trace as Zipkin returns it: a list of spans.
pub fn trace_json(t: &Trace) -> J {
    let id = t.trace_id.to_hex();
    J::Array(
        t.spans
            .iter()
            .filter(|n| !n.placeholder)
            .map(|n| span_json(&id, n))
            .collect(),
    )
}

async fn services(State(q): State<QueryService>) -> Response {
    match q.services().await {
        Ok(s) => Json(s).into_response(),
        Err(e) => failed(e),
    }
}

async fn span_names(State(q): State<QueryService>, Query(p): Params) -> Response {
    let service = match required(&p, "serviceName") {
        Ok(s) => s,
        Err(m) => return bad(m),
    };
    match q.operations(service).await {
        Ok(ops) => {
            let names: BTreeSet<String> = ops.into_iter().map(|o| o.name).collect();
            Json(names).into_response()
        }
        Err(e) => failed(e),
    }
}

async fn remote_services(State(q): State<QueryService>, Query(p): Params) -> Response {
    let service = match required(&p, "serviceName") {
        Ok(s) => s.to_string(),
        Err(m) => return bad(m),
    };
    let now = q.now_us();
    let from = now.saturating_sub(q.retention().as_micros() as u64);
    match q.dependencies(from, now + 1).await {
        Ok(deps) => {
            let remote: BTreeSet<String> = deps
                .into_iter()
                .filter(|d| d.caller == service)
                .map(|d| d.callee)
                .collect();
            Json(remote).into_response()
        }
        Err(e) => failed(e),
    }
}

/// Builds a search from Zipkin's `/api/v2/traces` parameters.
fn zipkin_search(p: &HashMap<String, String>, now_us: u64) -> Result<SearchQuery, String> {
    let end_us = params::millis(p, "endTs")?.map_or(now_us + crate::FUTURE_SLACK_US, |e| e * 1_000);
    let lookback_us = params::millis(p, "lookback")?.map_or(86_400_000_000, |l| l * 1_000);
    let mut pairs = vec![
        ("end".to_string(), end_us.to_string()),
        (
            "start".to_string(),
            end_us.saturating_sub(lookback_us).to_string(),
        ),
    ];
    for (zk, k) in [
        ("serviceName", "service"),
        ("spanName", "operation"),
        ("limit", "limit"),
    ] {
        if let Some(v) = p.get(zk).filter(|v| !v.is_empty() && *v != "all") {
            pairs.push((k.into(), v.clone()));
        }
    }
    // Durations are microseconds in Zipkin.
    for k in ["minDuration", "maxDuration"] {
        if let Some(v) = p.get(k).filter(|v| !v.is_empty()) {
            pairs.push((k.into(), format!("{v}us")));
        }
    }
    let mut q = params::search(&pairs, now_us)?;
    if q.limit == params::DEFAULT_LIMIT && !p.contains_key("limit") {
        q.limit = 10;
    }
    // annotationQuery: "error and http.method=GET and cache-miss".
    if let Some(aq) = p.get("annotationQuery").filter(|v| !v.is_empty()) {
        for term in aq.split(" and ") {
            match term.trim().split_once('=') {
                Some((k, v)) => q.attributes.push((k.trim().into(), v.trim().into())),
                None if term.trim() == "error" => q.errors_only = true,
                None => {
                    return Err(format!(
                        "annotationQuery term {term:?}: only key=value and error are supported"
                    ));
                }
            }
        }
    }
    Ok(q)
}

async fn traces(State(q): State<QueryService>, Query(p): Params) -> Response {
    let query = match zipkin_search(&p, q.now_us()) {
        Ok(query) => query,
        Err(m) => return bad(m),
    };
    let hits = match q.search(query).await {
        Ok(h) => h,
        Err(e) => return failed(e),
    };
    let mut out = Vec::new();
    for h in hits {
        match q.trace(&h.trace_id.to_hex()).await {
            Ok(t) => out.push(trace_json(&t)),
            Err(Error::TraceNotFound(_)) => {}
            Err(e) => return failed(e),
        }
    }
    Json(out).into_response()
}

async fn trace(State(q): State<QueryService>, Path(id): Path<String>) -> Response {
    match q.trace(&id).await {
        Ok(t) => Json(trace_json(&t)).into_response(),
        Err(e) => failed(e),
    }
}

async fn trace_many(State(q): State<QueryService>, Query(p): Params) -> Response {
    let ids = match required(&p, "traceIds") {
        Ok(s) => s,
        Err(m) => return bad(m),
    };
    let mut out = Vec::new();
    for id in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match q.trace(id).await {
            Ok(t) => out.push(trace_json(&t)),
            Err(Error::TraceNotFound(_)) => {}
            Err(e) => return failed(e),
        }
    }
    Json(out).into_response()
}

async fn dependencies(State(q): State<QueryService>, Query(p): Params) -> Response {
    let end_ms = match required(&p, "endTs").map(|v| v.parse::<u64>()) {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => return bad("endTs must be milliseconds"),
        Err(m) => return bad(m),
    };
    let lookback_ms = match params::millis(&p, "lookback") {
        Ok(l) => l.unwrap_or(86_400_000),
        Err(m) => return bad(m),
    };
    let end = end_ms * 1_000;
    match q
        .dependencies(end.saturating_sub(lookback_ms * 1_000), end + 1)
        .await
    {
        Ok(deps) => {
            let data: Vec<J> = deps
                .iter()
                .map(|d| {
                    json!({"parent": d.caller, "child": d.callee,
                           "callCount": d.calls, "errorCount": d.errors})
                })
                .collect();
            Json(data).into_response()
        }
        Err(e) => failed(e),
    }
}

async fn autocomplete_keys(State(q): State<QueryService>) -> Response {
    match q.attribute_keys().await {
        Ok(k) => Json(k).into_response(),
        Err(e) => failed(e),
    }
}

async fn autocomplete_values(State(q): State<QueryService>, Query(p): Params) -> Response {
    let key = match required(&p, "key") {
        Ok(k) => k,
        Err(m) => return bad(m),
    };
    match q.attribute_values(key, params::MAX_LIMIT).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn zipkin_parameters_become_a_search() {
        let q = zipkin_search(
            &p(&[
                ("serviceName", "api"),
                ("spanName", "all"),
                ("annotationQuery", "error and http.method=GET"),
                ("minDuration", "1500"),
                ("endTs", "1700000000000"),
                ("lookback", "60000"),
            ]),
            0,
        )
        .unwrap();
        assert_eq!(q.service.as_deref(), Some("api"));
        assert_eq!(q.operation, None, "spanName=all means any");
        assert!(q.errors_only);
        assert_eq!(
            q.attributes,
            vec![("http.method".to_string(), "GET".to_string())]
        );
        assert_eq!(q.min_duration_us, Some(1_500));
        assert_eq!(
            (q.start_us, q.end_us),
            (1_699_999_940_000_000, 1_700_000_000_000_000)
        );
        assert_eq!(q.limit, 10, "Zipkin's default limit");
        assert!(zipkin_search(&p(&[("annotationQuery", "cache-miss")]), 0).is_err());
        assert!(zipkin_search(&p(&[("endTs", "soon")]), 0).is_err());
    }
}
