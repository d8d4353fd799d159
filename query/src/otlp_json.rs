//! A trace as OTLP JSON (`GET /api/v1/traces/{id}?format=otlp`): one
//! resource per service, IDs in hex, times in nanoseconds as strings, as
//! the OTLP/JSON encoding has them. Phosphor's span sides keep their shared
//! span ID; missing-parent placeholders are left out.

use phosphor_store::model::{KeyValue, SpanKind, StatusCode, Value};
use serde_json::{Value as J, json};

use crate::assemble::Trace;

fn any_value(v: &Value) -> J {
    match v {
        Value::Str(s) => json!({"stringValue": s}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Int(i) => json!({"intValue": i.to_string()}),
        Value::Double(d) => json!({"doubleValue": d}),
        Value::Bytes(b) => json!({"bytesValue": hex::encode(b)}),
        Value::Array(items) => {
            json!({"arrayValue": {"values": items.iter().map(any_value).collect::<Vec<_>>()}})
        }
        Value::Map(kvs) => json!({"kvlistValue": {"values": attributes(kvs)}}),
    }
}

fn attributes(kvs: &[KeyValue]) -> Vec<J> {
    kvs.iter()
        .map(|kv| json!({"key": kv.key, "value": any_value(&kv.value)}))
        .collect()
}

fn kind(k: SpanKind) -> u8 {
    match k {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// The trace as an OTLP `ExportTraceServiceRequest` in JSON.
pub fn trace(t: &Trace) -> J {
    let trace_id = t.trace_id.to_hex();
    // Spans by (service, resource attributes).
    type Resource<'a> = (&'a str, &'a [KeyValue]);
    let mut groups: Vec<(Resource<'_>, Vec<J>)> = Vec::new();
    for n in t.spans.iter().filter(|n| !n.placeholder) {
        let mut span = json!({
            "traceId": trace_id,
            "spanId": n.span_id.to_hex(),
            "name": n.name,
            "kind": kind(n.kind),
            "startTimeUnixNano": n.start_ns.to_string(),
            "endTimeUnixNano": n.end_ns.to_string(),
            "attributes": attributes(&n.attributes),
            "events": n.events.iter().map(|e| json!({
                "timeUnixNano": e.time_ns.to_string(),
                "name": e.name,
                "attributes": attributes(&e.attributes),
            })).collect::<Vec<_>>(),
            "links": n.links.iter().map(|l| json!({
                "traceId": l.trace_id.to_hex(),
                "spanId": l.span_id.to_hex(),
                "attributes": attributes(&l.attributes),
            })).collect::<Vec<_>>(),
            "status": {
                "code": match n.status { StatusCode::Unset => 0, StatusCode::Ok => 1, StatusCode::Error => 2 },
                "message": n.status_message,
            },
        });
        if let Some(p) = n.parent_span_id {
            span["parentSpanId"] = json!(p.to_hex());
        }
        let key = (n.service.as_str(), n.resource.as_slice());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(span),
            None => groups.push((key, vec![span])),
        }
    }
    let resource_spans: Vec<J> = groups
        .into_iter()
        .map(|((service, resource), spans)| {
            let mut attrs = vec![json!({"key": "service.name", "value": {"stringValue": service}})];
            attrs.extend(attributes(resource));
            json!({
                "resource": {"attributes": attrs},
                "scopeSpans": [{"scope": {"name": "phosphor"}, "spans": spans}],
            })
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}
