//! Upload: `POST /api/v1/upload` (on the HTTP API port) takes a trace file
//! in OTLP JSON, Jaeger JSON (what `/jaeger/api/traces/{id}` and the Jaeger
//! UI's download give) or Zipkin v2 JSON, tells which by its shape, and
//! stores it like any ingest.

use std::collections::{BTreeSet, HashMap};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use phosphor_store::model::{
    Event, Fragment, KeyValue, Link, Protocol, Span, SpanId, SpanKind, StatusCode as SpanStatus,
    TraceId, Value,
};
use serde_json::{Value as J, json};

use crate::decode::{self, Decoded, Limits};
use crate::pipeline::{Ingest, Refusal};
use crate::zipkin;

/// The upload route.
#[derive(Debug, Clone)]
pub struct Upload {
    ingest: Ingest,
    limits: Limits,
}

impl Upload {
    /// An upload endpoint handing spans to `ingest`.
    pub fn new(ingest: Ingest, limits: Limits) -> Upload {
        Upload { ingest, limits }
    }

    /// `POST /api/v1/upload`, taking bodies up to `max_bytes`.
    pub fn router(self, max_bytes: usize) -> Router {
        Router::new()
            .route("/api/v1/upload", post(upload))
            .layer(DefaultBodyLimit::max(max_bytes))
            .with_state(self)
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message}})),
    )
        .into_response()
}

/// Which format a JSON document is, by its shape.
fn detect(doc: &J) -> Option<&'static str> {
    if doc.get("resourceSpans").is_some() {
        return Some("otlp");
    }
    let jaeger_trace = |t: &J| t.get("spans").is_some() && t.get("processes").is_some();
    if doc
        .get("data")
        .and_then(J::as_array)
        .is_some_and(|d| d.iter().all(jaeger_trace))
        || jaeger_trace(doc)
    {
        return Some("jaeger");
    }
    match doc.as_array() {
        Some(a) if a.iter().all(jaeger_trace) && !a.is_empty() => Some("jaeger"),
        Some(a) if a.iter().all(|s| s.get("traceId").is_some()) => Some("zipkin"),
        _ => None,
    }
}

fn jaeger_value(tag: &J) -> Value {
    let v = &tag["value"];
    match (tag["type"].as_str().unwrap_or("string"), v) {
        ("bool", J::Bool(b)) => Value::Bool(*b),
        ("int64", J::Number(n)) => n
            .as_i64()
            .map_or(Value::Str(n.to_string().into()), Value::Int),
        ("float64", J::Number(n)) => Value::Double(n.as_f64().unwrap_or(0.0)),
        (_, J::String(s)) => Value::Str(s.clone().into()),
        (_, other) => Value::Str(other.to_string().into()),
    }
}

fn jaeger_tags(tags: &J) -> Vec<KeyValue> {
    tags.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some(KeyValue {
                        key: t["key"].as_str()?.to_string().into(),
                        value: jaeger_value(t),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads Jaeger JSON traces into the model.
pub fn jaeger(doc: &J) -> Decoded {
    let traces: Vec<&J> = match (doc.get("data").and_then(J::as_array), doc.as_array()) {
        (Some(d), _) => d.iter().collect(),
        (None, Some(a)) => a.iter().collect(),
        (None, None) => vec![doc],
    };
    let mut out = Decoded::default();
    for t in traces {
        let processes: HashMap<&str, (String, Vec<KeyValue>)> = t["processes"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(pid, p)| {
                        let service = p["serviceName"].as_str().unwrap_or("unknown").to_string();
                        (pid.as_str(), (service, jaeger_tags(&p["tags"])))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for s in t["spans"].as_array().into_iter().flatten() {
            match jaeger_span(s, &processes) {
                Ok(span) => out.fragments.push(Fragment::Span(span)),
                Err(e) => {
                    out.rejected += 1;
                    out.first_error.get_or_insert(e);
                }
            }
        }
    }
    out
}

fn jaeger_span(s: &J, processes: &HashMap<&str, (String, Vec<KeyValue>)>) -> Result<Span, String> {
    let trace_hex = s["traceID"].as_str().ok_or("span without traceID")?;
    let (trace_id, _) =
        TraceId::parse(&format!("{trace_hex:0>32}")).map_err(|e| format!("traceID: {e}"))?;
    let span_id = |v: &J| -> Option<SpanId> {
        let h = format!("{:0>16}", v.as_str()?);
        SpanId::from_slice(&hex::decode(h).ok()?)
    };
    let id = span_id(&s["spanID"]).ok_or("span without a valid spanID")?;
    let mut parent = None;
    let mut links = Vec::new();
    for r in s["references"].as_array().into_iter().flatten() {
        let (Some(sid), Some(tid)) = (span_id(&r["spanID"]), r["traceID"].as_str()) else {
            continue;
        };
        if r["refType"] == "CHILD_OF"
            && parent.is_none()
            && tid.trim_start_matches('0') == trace_hex.trim_start_matches('0')
        {
            parent = Some(sid);
        } else if let Ok((t, _)) = TraceId::parse(&format!("{tid:0>32}")) {
            links.push(Link {
                trace_id: t,
                span_id: sid,
                attributes: vec![],
            });
        }
    }
    let mut attributes = jaeger_tags(&s["tags"]);
    let mut kind = SpanKind::Internal;
    let mut status = SpanStatus::Unset;
    let mut status_message = String::new();
    attributes.retain(|kv| match (kv.key.as_str(), &kv.value) {
        ("span.kind", v) => {
            kind = match v.to_string().as_str() {
                "server" => SpanKind::Server,
                "client" => SpanKind::Client,
                "producer" => SpanKind::Producer,
                "consumer" => SpanKind::Consumer,
                _ => SpanKind::Internal,
            };
            false
        }
        ("error", Value::Bool(true)) => {
            status = SpanStatus::Error;
            false
        }
        ("otel.status_description", v) => {
            status_message = v.to_string();
            false
        }
        _ => true,
    });
    let start_us = s["startTime"].as_u64().ok_or("span without startTime")?;
    let duration_us = s["duration"].as_u64().unwrap_or(0);
    let (service, resource) = processes
        .get(s["processID"].as_str().unwrap_or(""))
        .cloned()
        .unwrap_or_else(|| ("unknown".into(), vec![]));
    let events = s["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let mut fields = jaeger_tags(&l["fields"]);
            let name = fields
                .iter()
                .position(|f| f.key == "event")
                .map(|i| fields.remove(i).value.to_string())
                .unwrap_or_else(|| "log".into());
            Event {
                time_ns: l["timestamp"]
                    .as_u64()
                    .unwrap_or(start_us)
                    .saturating_mul(1_000),
                name: name.into(),
                attributes: fields,
            }
        })
        .collect();
    Ok(Span {
        trace_id,
        span_id: id,
        parent_span_id: parent,
        name: s["operationName"]
            .as_str()
            .unwrap_or("unknown")
            .to_string()
            .into(),
        kind,
        service: service.into(),
        start_ns: start_us.saturating_mul(1_000),
        end_ns: (start_us + duration_us).saturating_mul(1_000),
        status,
        status_message: status_message.into(),
        attributes,
        resource,
        scope: None,
        events,
        links,
        protocol: Protocol::Upload,
    })
}

async fn upload(State(u): State<Upload>, body: Bytes) -> Response {
    let doc: J = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the file is not JSON: {e}"),
            );
        }
    };
    let Some(format) = detect(&doc) else {
        return error(
            StatusCode::BAD_REQUEST,
            "not a trace in a known format: expected OTLP JSON (resourceSpans), Jaeger JSON \
             (spans and processes) or Zipkin v2 JSON (a list of spans)"
                .into(),
        );
    };
    let limits = u.limits.clone();
    let decoded = tokio::task::spawn_blocking(move || -> Result<Decoded, String> {
        let mut d = match format {
            "otlp" => {
                let req: ExportTraceServiceRequest =
                    serde_json::from_value(doc).map_err(|e| format!("invalid OTLP JSON: {e}"))?;
                decode::otlp(req, Protocol::Upload, &limits)
            }
            "zipkin" => {
                let spans: Vec<zipkin::ZSpan> = serde_json::from_value(doc)
                    .map_err(|e| format!("invalid Zipkin v2 JSON: {e}"))?;
                zipkin::to_model(spans, &limits)
            }
            _ => jaeger(&doc),
        };
        for f in &mut d.fragments {
            if let Fragment::Span(s) = f {
                s.protocol = Protocol::Upload;
            }
        }
        Ok(d)
    })
    .await;
    let decoded = match decoded {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, e),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "upload failed".into()),
    };
    if decoded.fragments.is_empty() {
        let why = decoded
            .first_error
            .unwrap_or_else(|| "the file holds no spans".into());
        return error(StatusCode::BAD_REQUEST, why);
    }
    let traces: BTreeSet<String> = decoded
        .fragments
        .iter()
        .map(|f| f.trace_id().to_hex())
        .collect();
    let spans = decoded.fragments.len();
    match u
        .ingest
        .submit_acked(Protocol::Upload, decoded.fragments)
        .await
    {
        Ok(Ok(())) => Json(json!({
            "format": format,
            "traces": traces,
            "spans": spans,
            "rejected": decoded.rejected,
        }))
        .into_response(),
        Ok(Err(_)) | Err(Refusal::QueueFull) | Err(Refusal::ShuttingDown) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "phosphor is busy; try the upload again".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart_by_shape() {
        assert_eq!(detect(&json!({"resourceSpans": []})), Some("otlp"));
        assert_eq!(
            detect(&json!({"data": [{"traceID": "a", "spans": [], "processes": {}}]})),
            Some("jaeger")
        );
        assert_eq!(
            detect(&json!({"traceID": "a", "spans": [], "processes": {}})),
            Some("jaeger")
        );
        assert_eq!(
            detect(&json!([{"traceId": "a", "id": "b"}])),
            Some("zipkin")
        );
        assert_eq!(detect(&json!({"hello": 1})), None);
        assert_eq!(detect(&json!([1, 2])), None);
    }

    #[test]
    fn jaeger_json_reads_back_into_spans() {
        let doc = json!({"data": [{"traceID": "abc", "processes": {"p1": {"serviceName": "api",
            "tags": [{"key": "host.name", "type": "string", "value": "h1"}]}},
          "spans": [
            {"traceID": "abc", "spanID": "1", "operationName": "root", "references": [],
             "startTime": 1000, "duration": 500, "processID": "p1",
             "tags": [{"key": "span.kind", "type": "string", "value": "server"},
                      {"key": "error", "type": "bool", "value": true},
                      {"key": "http.status_code", "type": "int64", "value": 500}],
             "logs": [{"timestamp": 1100, "fields": [{"key": "event", "type": "string", "value": "retry"}]}]},
            {"traceID": "abc", "spanID": "2", "operationName": "child", "processID": "p1",
             "references": [{"refType": "CHILD_OF", "traceID": "abc", "spanID": "1"}],
             "startTime": 1100, "duration": 100}]}]});
        let d = jaeger(&doc);
        assert_eq!((d.fragments.len(), d.rejected), (2, 0));
        let Fragment::Span(root) = &d.fragments[0] else {
            unreachable!()
        };
        assert_eq!(root.trace_id.to_hex(), format!("{:0>32}", "abc"));
        assert_eq!(
            (root.kind, root.status),
            (SpanKind::Server, SpanStatus::Error)
        );
        assert_eq!(root.service, "api");
        assert_eq!(root.resource, vec![KeyValue::string("host.name", "h1")]);
        assert_eq!(
            root.attributes,
            vec![KeyValue {
                key: "http.status_code".into(),
                value: Value::Int(500)
            }]
        );
        assert_eq!(root.events[0].name, "retry");
        let Fragment::Span(child) = &d.fragments[1] else {
            unreachable!()
        };
        assert_eq!(child.parent_span_id, Some(root.span_id));
    }
}
