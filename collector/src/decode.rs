//! Decoding: pure functions from wire messages to the model.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as OtlpKeyValue, any_value};
use phosphor_proto::phosphor as wire;
use phosphor_store::model::{
    Annotation, AnnotationType, Event, Fragment, KeyValue, LegacyIds, Link, Protocol, Span, SpanId,
    SpanKind, StatusCode, Text, TraceId, Value,
};

/// Longest span or event name kept.
pub(crate) const MAX_NAME_BYTES: usize = 1024;
/// Longest attribute key kept.
pub(crate) const MAX_KEY_BYTES: usize = 256;
/// What a value nested deeper than [`MAX_NESTING`] levels is kept as.
pub(crate) const TOO_DEEP: &str = "…[nested too deep]";
/// Deepest nesting of arrays and maps kept as they are.
pub(crate) const MAX_NESTING: usize = 4;

/// Limits applied while decoding.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest attribute string value kept; longer values are cut (and say
    /// so with a trailing marker).
    pub max_value_bytes: usize,
    /// Most attributes kept per span, event or link.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_bytes: 16 * 1024,
            max_attributes: 256,
        }
    }
}

/// The result of decoding an OTLP request: the good spans, and how many
/// were rejected and why (for `partial_success`).
#[derive(Debug, Default)]
pub struct Decoded {
    pub fragments: Vec<Fragment>,
    pub rejected: u64,
    pub first_error: Option<String>,
}

impl Decoded {
    pub(crate) fn reject(&mut self, why: String) {
        self.rejected += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why);
        }
    }
}

/// Where a string longer than `max` bytes is cut: the last character
/// boundary at or before `max`.
fn cut_point(s: &str, max: usize) -> Option<usize> {
    (s.len() > max).then(|| {
        (0..=max)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0)
    })
}

fn cut(mut s: String, max: usize) -> String {
    if let Some(end) = cut_point(&s, max) {
        s.truncate(end);
        s.push_str("…[truncated]");
    }
    s
}

/// [`cut`], from a borrowed string into a `Text` (inline when short).
pub(crate) fn cut_text(s: &str, max: usize) -> Text {
    match cut_point(s, max) {
        Some(end) => {
            let mut t = Text::from(&s[..end]);
            t.push_str("…[truncated]");
            t
        }
        None => Text::from(s),
    }
}

// Strings are moved out of the decoded request, not copied: a short one
// is kept inline, a long one keeps its buffer.
fn value(v: Option<AnyValue>, limits: &Limits, depth: usize) -> Value {
    use any_value::Value as V;
    let Some(v) = v.and_then(|v| v.value) else {
        return Value::Str(Default::default());
    };
    match v {
        V::StringValue(s) => Value::Str(cut(s, limits.max_value_bytes).into()),
        V::BoolValue(b) => Value::Bool(b),
        V::IntValue(i) => Value::Int(i),
        V::DoubleValue(d) => Value::Double(d),
        V::BytesValue(mut b) => {
            b.truncate(limits.max_value_bytes);
            Value::Bytes(b)
        }
        // Nested values deeper than a few levels are flattened to text.
        _ if depth > MAX_NESTING => Value::Str(TOO_DEEP.into()),
        V::ArrayValue(a) => Value::Array(
            a.values
                .into_iter()
                .take(limits.max_attributes)
                .map(|x| value(Some(x), limits, depth + 1))
                .collect(),
        ),
        V::KvlistValue(kv) => Value::Map(attributes(kv.values, limits, depth + 1)),
        // Any further kinds (string table references) are kept as empty.
        #[allow(unreachable_patterns)]
        _ => Value::Str(Default::default()),
    }
}

fn attributes(kvs: Vec<OtlpKeyValue>, limits: &Limits, depth: usize) -> Vec<KeyValue> {
    kvs.into_iter()
        .take(limits.max_attributes)
        .map(|kv| KeyValue {
            key: cut(kv.key, MAX_KEY_BYTES).into(),
            value: value(kv.value, limits, depth),
        })
        .collect()
}

/// Splits a resource's attributes into its service (the first string
/// `service.name`, `unknown_service` when there is none or it is empty) and
/// the rest, as every span of the resource keeps them.
pub(crate) fn split_service(attrs: Vec<KeyValue>) -> (Text, Vec<KeyValue>) {
    let mut service = None;
    let mut resource = Vec::with_capacity(attrs.len());
    for kv in attrs {
        match (&*kv.key, &kv.value) {
            ("service.name", Value::Str(s)) if service.is_none() => service = Some(s.clone()),
            _ => resource.push(kv),
        }
    }
    let service = service
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown_service".into());
    (service, resource)
}

/// An instrumentation scope as spans keep it: its name, and its version
/// after a space; `None` without a name.
pub(crate) fn scope_label(name: &str, version: &str) -> Option<String> {
    match (name, version) {
        ("", _) => None,
        (name, "") => Some(name.to_owned()),
        (name, version) => Some(format!("{name} {version}")),
    }
}

/// A span's IDs, checked: why the span is rejected when one is invalid.
pub(crate) fn span_ids(
    name: &str,
    trace_id: &[u8],
    span_id: &[u8],
    parent_span_id: &[u8],
) -> Result<(TraceId, SpanId, Option<SpanId>), String> {
    let trace = TraceId::from_slice(trace_id).ok_or_else(|| {
        format!(
            "span {name:?}: trace_id must be 16 bytes and not all zero (got {} bytes)",
            trace_id.len()
        )
    })?;
    let span = SpanId::from_slice(span_id).ok_or_else(|| {
        format!(
            "span {name:?}: span_id must be 8 bytes and not all zero (got {} bytes)",
            span_id.len()
        )
    })?;
    let parent = if parent_span_id.is_empty() {
        None
    } else {
        Some(
            SpanId::from_slice(parent_span_id)
                .ok_or_else(|| format!("span {name:?}: parent_span_id must be empty or 8 bytes"))?,
        )
    };
    Ok((trace, span, parent))
}

/// OTLP's status code as the model keeps it.
pub(crate) fn status_code(code: i32) -> StatusCode {
    match code {
        1 => StatusCode::Ok,
        2 => StatusCode::Error,
        _ => StatusCode::Unset,
    }
}

/// Decodes an OTLP export request already parsed into prost's messages
/// (OTLP/JSON bodies and uploads; protobuf bodies are read in place by
/// [`crate::otlp_proto`], which keeps exactly the same). Spans with
/// invalid IDs are rejected one by one; the rest are kept.
pub fn otlp(req: ExportTraceServiceRequest, protocol: Protocol, limits: &Limits) -> Decoded {
    let mut out = Decoded::default();
    for rs in req.resource_spans {
        let resource_attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
        let (service, resource) = split_service(attributes(resource_attrs, limits, 0));
        for ss in rs.scope_spans {
            let scope = ss
                .scope
                .as_ref()
                .and_then(|s| scope_label(&s.name, &s.version));
            for s in ss.spans {
                let (trace_id, span_id, parent_span_id) =
                    match span_ids(&s.name, &s.trace_id, &s.span_id, &s.parent_span_id) {
                        Ok(ids) => ids,
                        Err(why) => {
                            out.reject(why);
                            continue;
                        }
                    };
                let (status, status_message) = match s.status {
                    Some(st) => (
                        status_code(st.code),
                        cut(st.message, limits.max_value_bytes),
                    ),
                    None => (StatusCode::Unset, String::new()),
                };
                out.fragments.push(Fragment::Span(Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    name: cut(s.name, MAX_NAME_BYTES).into(),
                    kind: SpanKind::from_otlp(s.kind),
                    service: service.clone(),
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano.max(s.start_time_unix_nano),
                    status,
                    status_message: status_message.into(),
                    attributes: attributes(s.attributes, limits, 0),
                    resource: resource.clone(),
                    scope: scope.clone(),
                    events: s
                        .events
                        .into_iter()
                        .map(|e| Event {
                            time_ns: e.time_unix_nano,
                            name: cut(e.name, MAX_NAME_BYTES).into(),
                            attributes: attributes(e.attributes, limits, 0),
                        })
                        .collect(),
                    links: s
                        .links
                        .into_iter()
                        .filter_map(|l| {
                            Some(Link {
                                trace_id: TraceId::from_slice(&l.trace_id)?,
                                span_id: SpanId::from_slice(&l.span_id)?,
                                attributes: attributes(l.attributes, limits, 0),
                            })
                        })
                        .collect(),
                    protocol,
                }));
            }
        }
    }
    out
}

/// Why an annotation was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("trace_id: {0}")]
    TraceId(phosphor_store::model::IdError),
    #[error("span_id: {0}")]
    SpanId(phosphor_store::model::IdError),
    #[error("parent_id: {0}")]
    ParentId(phosphor_store::model::IdError),
    #[error("annotation type {0} is not one of CLIENT_SEND..ANNOTATION")]
    Type(i32),
    #[error("timestamp must be positive microseconds since the epoch")]
    Timestamp,
}

/// Converts one wire annotation into the model.
pub fn annotation(
    a: &wire::AnnotationRef<'_>,
    limits: &Limits,
) -> Result<Fragment, AnnotationError> {
    let kind = AnnotationType::from_wire(a.r#type).ok_or(AnnotationError::Type(a.r#type))?;
    let (trace_id, legacy_trace) = TraceId::parse(a.trace_id).map_err(AnnotationError::TraceId)?;
    let (span_id, legacy_span) = SpanId::parse(a.span_id).map_err(AnnotationError::SpanId)?;
    let (parent_id, legacy_parent) = if a.parent_id.is_empty() {
        (None, None)
    } else {
        let (p, l) = SpanId::parse(a.parent_id).map_err(AnnotationError::ParentId)?;
        (Some(p), l)
    };
    if a.timestamp <= 0 {
        return Err(AnnotationError::Timestamp);
    }
    let max = limits.max_value_bytes;
    Ok(Fragment::Annotation(Annotation {
        trace_id,
        span_id,
        parent_id,
        legacy: LegacyIds {
            trace: legacy_trace,
            span: legacy_span,
            parent: legacy_parent,
        },
        kind,
        one_way: a.r#async,
        timestamp_us: a.timestamp,
        duration_us: a.duration.max(0),
        hostname: cut_text(a.hostname, 256),
        origin: cut_text(a.origin, 256),
        destination: cut_text(a.destination, 256),
        payload: cut_text(&String::from_utf8_lossy(a.payload), max),
        attributes: a
            .key_value
            .iter()
            .take(limits.max_attributes)
            .map(|&(k, v)| (cut_text(k, 256), cut_text(v, max)))
            .collect(),
    }))
}

/// The outcome of one datagram: the good annotations, and how many bad
/// ones it held.
#[derive(Debug, Default)]
pub struct DatagramResult {
    pub fragments: Vec<Fragment>,
    pub bad_annotations: u64,
}

/// Decodes one UDP datagram in either framing. `Err` when the datagram as a
/// whole is unreadable.
pub fn datagram(buf: &[u8], limits: &Limits) -> Result<DatagramResult, wire::DatagramError> {
    // Read in place: the strings go from the datagram into the model's
    // inline strings with no allocation of their own. A datagram that is
    // not valid loses what was taken from it before the fault.
    let mut out = DatagramResult::default();
    wire::each_annotation(buf, |a| match annotation(a, limits) {
        Ok(f) => out.fragments.push(f),
        Err(_) => out.bad_annotations += 1,
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fixture, fixtures, spans};
    use prost::Message;

    #[test]
    fn real_js_otlp_json_decodes_with_hex_ids_and_events() {
        let body = fixture("4318-0002-OTel-OTLP-Exporter-JavaScript.json");
        let req: ExportTraceServiceRequest = serde_json::from_slice(&body).unwrap();
        let d = otlp(req, Protocol::OtlpHttp, &Limits::default());
        assert_eq!(d.rejected, 0);
        let s = spans(&d);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].trace_id.to_hex(), "6e82ce7f72c9cc4c124cb81c0b27b4d7");
        assert_eq!(s[0].span_id.to_hex(), "c5ad5fe52da252bd");
        assert_eq!(s[0].parent_span_id.unwrap().to_hex(), "6b0101ae3a5a3e17");
        assert_eq!(s[0].service, "node-otel-demo");
        assert_eq!(s[0].name, "child-2");
        assert_eq!(s[0].kind, SpanKind::Internal);
        assert_eq!(s[0].start_ns, 1_795_240_702_392_000_000);
        assert_eq!(s[0].end_ns, 1_795_240_702_409_132_766);
        assert_eq!(s[0].events[0].name, "cache-miss");
        assert_eq!(s[0].events[0].attributes[0], KeyValue::string("key", "abc"));
        assert_eq!(s[0].scope.as_deref(), Some("demo"));
    }

    #[test]
    fn every_real_client_otlp_fixture_decodes() {
        let mut seen = 0;
        for (name, body) in fixtures() {
            let req = if name.starts_with("4318-") && name.ends_with(".json") {
                serde_json::from_slice::<ExportTraceServiceRequest>(&body).unwrap()
            } else if name.starts_with("4318-") || name.starts_with("grpc4317-") {
                ExportTraceServiceRequest::decode(&body[..]).unwrap()
            } else {
                continue;
            };
            let d = otlp(req, Protocol::OtlpHttp, &Limits::default());
            assert_eq!(d.rejected, 0, "{name}");
            assert!(!d.fragments.is_empty(), "{name}");
            for s in spans(&d) {
                assert!(s.end_ns >= s.start_ns && s.start_ns > 0, "{name}");
                assert_ne!(s.service, "unknown_service", "{name}");
            }
            seen += 1;
        }
        assert!(seen >= 15, "only {seen} OTLP fixtures found");
    }

    #[test]
    fn python_grpc_fixture_keeps_errors_and_attributes() {
        let req = ExportTraceServiceRequest::decode(
            &fixture("grpc4317-0001-OTel-OTLP-Exporter-Python.bin")[..],
        )
        .unwrap();
        let d = otlp(req, Protocol::OtlpGrpc, &Limits::default());
        let s = spans(&d);
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|x| x.protocol == Protocol::OtlpGrpc));
        // One root; the others hang under spans of the same request.
        let ids: Vec<SpanId> = s.iter().map(|x| x.span_id).collect();
        assert_eq!(s.iter().filter(|x| x.parent_span_id.is_none()).count(), 1);
        for x in &s {
            if let Some(p) = x.parent_span_id {
                assert!(ids.contains(&p), "{} has an unknown parent", x.name);
            }
        }
    }

    #[test]
    fn invalid_ids_are_rejected_one_by_one() {
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OSpan};
        let good = OSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "good".into(),
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            ..Default::default()
        };
        let bad_trace = OSpan {
            trace_id: vec![0; 16],
            ..good.clone()
        };
        let bad_span = OSpan {
            span_id: vec![2; 3],
            ..good.clone()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![bad_trace, good, bad_span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let d = otlp(req, Protocol::OtlpGrpc, &Limits::default());
        assert_eq!(d.fragments.len(), 1);
        assert_eq!(d.rejected, 2);
        assert!(d.first_error.unwrap().contains("trace_id"));
    }

    #[test]
    fn long_values_are_cut_and_say_so() {
        assert_eq!(cut("abcdef".into(), 3), "abc…[truncated]");
        assert_eq!(cut("ééé".into(), 3), "é…[truncated]");
        assert_eq!(cut("ab".into(), 3), "ab");
        // The borrowed form cuts at the same place.
        for (s, max) in [("abcdef", 3), ("ééé", 3), ("ééé", 0), ("ab", 3), ("", 0)] {
            assert_eq!(cut_text(s, max), cut(s.into(), max), "{s:?} {max}");
        }
    }

    #[test]
    fn legacy_datagram_becomes_an_annotation_keeping_string_ids() {
        let a = wire::Annotation {
            trace_id: "trace-abc".into(),
            span_id: "span-1".into(),
            parent_id: "span-0".into(),
            r#type: wire::AnnotationType::ServerRecv as i32,
            timestamp: 1_700_000_000_000_000,
            duration: 0,
            hostname: "box-1".into(),
            origin: "api".into(),
            destination: "card-api".into(),
            payload: b"{\"amount\":100}".to_vec(),
            key_value: vec![wire::KeyValue {
                key: "endpoint".into(),
                value: "/authorise".into(),
            }],
            ..Default::default()
        };
        let r = datagram(&wire::encode_legacy(&a), &Limits::default()).unwrap();
        assert_eq!(r.bad_annotations, 0);
        let Fragment::Annotation(got) = &r.fragments[0] else {
            panic!("not an annotation")
        };
        assert_eq!(got.kind, AnnotationType::ServerRecv);
        assert_eq!(got.trace_id, TraceId::parse("trace-abc").unwrap().0);
        assert_eq!(got.legacy.trace.as_deref(), Some("trace-abc"));
        assert_eq!(got.legacy.span.as_deref(), Some("span-1"));
        assert_eq!(got.legacy.parent.as_deref(), Some("span-0"));
        assert_eq!(got.payload, "{\"amount\":100}");
        assert_eq!(got.operation().as_deref(), Some("/authorise"));
    }

    #[test]
    fn a_batch_keeps_its_good_annotations_and_counts_bad_ones() {
        let good = wire::Annotation {
            trace_id: "t".into(),
            span_id: "s".into(),
            r#type: 1,
            timestamp: 5,
            ..Default::default()
        };
        let no_type = wire::Annotation {
            r#type: 0,
            ..good.clone()
        };
        let no_span = wire::Annotation {
            span_id: String::new(),
            ..good.clone()
        };
        let buf = wire::encode_batch(&[good.clone(), no_type, no_span, good]);
        let r = datagram(&buf, &Limits::default()).unwrap();
        assert_eq!(r.fragments.len(), 2);
        assert_eq!(r.bad_annotations, 2);
        assert!(datagram(b"\x00\x01\xff\xff", &Limits::default()).is_err());
    }
}
