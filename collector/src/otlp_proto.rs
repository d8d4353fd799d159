//! OTLP protobuf read in place: an `ExportTraceServiceRequest`'s bytes go
//! straight into the model, with no intermediate message. A string of up to
//! 24 bytes (most names, keys and values) is copied into its `Text` inline
//! and never allocated; a longer one is allocated once, where prost would
//! allocate it and the model copy it again. A resource's attributes are read
//! once for all its spans.
//!
//! It keeps exactly what [`decode::otlp`] keeps from the same request decoded
//! by prost (tests hold the two together on every real client's capture and
//! on the load tool's requests). Where it reads, it rejects what prost
//! rejects: a truncated field, a wire type that is not the field's, a string
//! that is not UTF-8, a varint of more than ten bytes. Fields that phosphor
//! does not keep (trace state, schema URLs, dropped counts, flags) and
//! attributes past the limit are skipped unread.

use phosphor_store::model::{
    Event, Fragment, KeyValue, Link, Protocol, Span, SpanId, SpanKind, StatusCode, Text, TraceId,
    Value,
};

use crate::decode::{
    self, Decoded, Limits, MAX_KEY_BYTES, MAX_NAME_BYTES, MAX_NESTING, TOO_DEEP, cut_text,
};

/// Why a protobuf body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("message truncated")]
    Truncated,
    #[error("varint longer than ten bytes")]
    Varint,
    #[error("invalid field key {0}")]
    Key(u64),
    #[error("field {field}: wire type {got} where {want} was expected")]
    WireType { field: u32, got: u8, want: u8 },
    #[error("field {0}: string is not UTF-8")]
    Utf8(u32),
    #[error("groups nested too deep")]
    Groups,
}

/// Most groups nested in one another that are skipped (prost's recursion
/// limit).
const MAX_GROUP_DEPTH: usize = 100;

/// One field's value as it is on the wire.
#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Len(&'a [u8]),
    Fixed32,
    /// A (deprecated) group, skipped whole.
    Group,
}

impl<'a> Wire<'a> {
    fn kind(self) -> u8 {
        match self {
            Wire::Varint(_) => 0,
            Wire::Fixed64(_) => 1,
            Wire::Len(_) => 2,
            Wire::Group => 3,
            Wire::Fixed32 => 5,
        }
    }

    fn mismatch(self, field: u32, want: u8) -> ProtoError {
        ProtoError::WireType {
            field,
            got: self.kind(),
            want,
        }
    }

    fn bytes(self, field: u32) -> Result<&'a [u8], ProtoError> {
        match self {
            Wire::Len(b) => Ok(b),
            w => Err(w.mismatch(field, 2)),
        }
    }

    fn string(self, field: u32) -> Result<&'a str, ProtoError> {
        std::str::from_utf8(self.bytes(field)?).map_err(|_| ProtoError::Utf8(field))
    }

    fn varint(self, field: u32) -> Result<u64, ProtoError> {
        match self {
            Wire::Varint(v) => Ok(v),
            w => Err(w.mismatch(field, 0)),
        }
    }

    fn fixed64(self, field: u32) -> Result<u64, ProtoError> {
        match self {
            Wire::Fixed64(b) => Ok(u64::from_le_bytes(b)),
            w => Err(w.mismatch(field, 1)),
        }
    }
}

/// The fields of one message, in order.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Fields<'a> {
        Fields { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if n > self.buf.len() {
            return Err(ProtoError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, ProtoError> {
        // Most varints on the wire (keys, lengths, small numbers) are one
        // byte.
        if let Some((&b, rest)) = self.buf.split_first()
            && b < 0x80
        {
            self.buf = rest;
            return Ok(u64::from(b));
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Result<u64, ProtoError> {
        let mut v = 0u64;
        for (i, &b) in self.buf.iter().take(10).enumerate() {
            if i == 9 && b > 1 {
                return Err(ProtoError::Varint);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(v);
            }
        }
        Err(if self.buf.len() < 10 {
            ProtoError::Truncated
        } else {
            ProtoError::Varint
        })
    }

    /// A field's number and wire type.
    #[inline]
    fn key(&mut self) -> Result<(u32, u8), ProtoError> {
        let key = self.varint()?;
        match u32::try_from(key >> 3) {
            Ok(n) if n > 0 && key <= u64::from(u32::MAX) => Ok((n, (key & 7) as u8)),
            _ => Err(ProtoError::Key(key)),
        }
    }

    /// The value of a field of wire type `kind`.
    #[inline]
    fn value(&mut self, field: u32, kind: u8, depth: usize) -> Result<Wire<'a>, ProtoError> {
        Ok(match kind {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(self.take(8)?.try_into().expect("8 bytes")),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| ProtoError::Truncated)?;
                Wire::Len(self.take(n)?)
            }
            3 => {
                self.skip_group(field, depth + 1)?;
                Wire::Group
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            // An end of group where none was open, or no wire type at all.
            other => return Err(ProtoError::Key(u64::from(field) << 3 | u64::from(other))),
        })
    }

    /// Skips a group's fields up to its end.
    fn skip_group(&mut self, field: u32, depth: usize) -> Result<(), ProtoError> {
        if depth > MAX_GROUP_DEPTH {
            return Err(ProtoError::Groups);
        }
        loop {
            if self.buf.is_empty() {
                return Err(ProtoError::Truncated);
            }
            let (n, kind) = self.key()?;
            if kind == 4 {
                return if n == field {
                    Ok(())
                } else {
                    Err(ProtoError::Key(u64::from(n) << 3 | 4))
                };
            }
            self.value(n, kind, depth)?;
        }
    }

    /// The next field, or `None` at the end of the message.
    #[inline]
    fn next(&mut self) -> Result<Option<(u32, Wire<'a>)>, ProtoError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let (n, kind) = self.key()?;
        Ok(Some((n, self.value(n, kind, 0)?)))
    }
}

/// Decodes an OTLP `ExportTraceServiceRequest` from its protobuf bytes.
/// Spans with invalid IDs are rejected one by one; the rest are kept.
pub fn otlp(buf: &[u8], protocol: Protocol, limits: &Limits) -> Result<Decoded, ProtoError> {
    // Counted first (each span is one step over its bytes), so that the
    // spans, a few hundred bytes each, are not moved as their list grows.
    let mut out = Decoded {
        fragments: Vec::with_capacity(count_spans(buf)?),
        ..Decoded::default()
    };
    let mut fields = Fields::new(buf);
    while let Some((n, w)) = fields.next()? {
        if n == 1 {
            resource_spans(w.bytes(n)?, protocol, limits, &mut out)?;
        }
    }
    Ok(out)
}

/// Fewest bytes of a span that can be kept: its trace ID and span ID
/// fields (a key byte, a length byte, then 16 and 8 bytes).
const MIN_KEPT_SPAN: usize = 28;

/// How many spans of a request are long enough to be kept. (Counting
/// every span would let a body of empty spans reserve room for hundreds of
/// bytes a span for every two bytes it sends.)
fn count_spans(buf: &[u8]) -> Result<usize, ProtoError> {
    let mut n = 0;
    let mut request = Fields::new(buf);
    while let Some((f, w)) = request.next()? {
        if f != 1 {
            continue;
        }
        let mut resource_spans = Fields::new(w.bytes(f)?);
        while let Some((f, w)) = resource_spans.next()? {
            if f != 2 {
                continue;
            }
            let mut scope_spans = Fields::new(w.bytes(f)?);
            while let Some((f, w)) = scope_spans.next()? {
                n += usize::from(f == 2 && matches!(w, Wire::Len(b) if b.len() >= MIN_KEPT_SPAN));
            }
        }
    }
    Ok(n)
}

fn resource_spans(
    buf: &[u8],
    protocol: Protocol,
    limits: &Limits,
    out: &mut Decoded,
) -> Result<(), ProtoError> {
    // The resource first, wherever it is in the message (a message's
    // fields may come in any order, and a field given twice is merged).
    let mut attrs = Vec::new();
    let mut fields = Fields::new(buf);
    while let Some((n, w)) = fields.next()? {
        if n == 1 {
            let mut resource = Fields::new(w.bytes(n)?);
            while let Some((n, w)) = resource.next()? {
                if n == 1 {
                    key_value_into(&mut attrs, w.bytes(n)?, limits, 0)?;
                }
            }
        }
    }
    let (service, resource) = decode::split_service(attrs);
    let mut fields = Fields::new(buf);
    while let Some((n, w)) = fields.next()? {
        if n == 2 {
            scope_spans(w.bytes(n)?, protocol, limits, &service, &resource, out)?;
        }
    }
    Ok(())
}

fn scope_spans(
    buf: &[u8],
    protocol: Protocol,
    limits: &Limits,
    service: &Text,
    resource: &[KeyValue],
    out: &mut Decoded,
) -> Result<(), ProtoError> {
    let (mut name, mut version) = ("", "");
    let mut fields = Fields::new(buf);
    while let Some((n, w)) = fields.next()? {
        if n == 1 {
            let mut scope = Fields::new(w.bytes(n)?);
            while let Some((n, w)) = scope.next()? {
                match n {
                    1 => name = w.string(n)?,
                    2 => version = w.string(n)?,
                    _ => {}
                }
            }
        }
    }
    let scope = decode::scope_label(name, version);
    let mut fields = Fields::new(buf);
    while let Some((n, w)) = fields.next()? {
        if n == 2 {
            span(
                w.bytes(n)?,
                protocol,
                limits,
                service,
                resource,
                &scope,
                out,
            )?;
        }
    }
    Ok(())
}

fn span(
    buf: &[u8],
    protocol: Protocol,
    limits: &Limits,
    service: &Text,
    resource: &[KeyValue],
    scope: &Option<String>,
    out: &mut Decoded,
) -> Result<(), ProtoError> {
    let (mut trace_id, mut span_id, mut parent_span_id): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let mut name = "";
    let mut kind = 0i32;
    let (mut start_ns, mut end_ns) = (0u64, 0u64);
    let mut attributes = Vec::new();
    let mut events = Vec::new();
    let mut links = Vec::new();
    let mut status: Option<(i32, &str)> = None;
    let mut fields = Fields::new(buf);
    while let Some((n, w)) = fields.next()? {
        match n {
            1 => trace_id = w.bytes(n)?,
            2 => span_id = w.bytes(n)?,
            4 => parent_span_id = w.bytes(n)?,
            5 => name = w.string(n)?,
            // An enum is an int32: a larger varint keeps its low bits.
            6 => kind = w.varint(n)? as i32,
            7 => start_ns = w.fixed64(n)?,
            8 => end_ns = w.fixed64(n)?,
            9 => key_value_into(&mut attributes, w.bytes(n)?, limits, 0)?,
            11 => events.push(event(w.bytes(n)?, limits)?),
            13 => links.extend(link(w.bytes(n)?, limits)?),
            15 => {
                let (code, message) = status.get_or_insert((0, ""));
                let mut st = Fields::new(w.bytes(n)?);
                while let Some((n, w)) = st.next()? {
                    match n {
                        2 => *message = w.string(n)?,
                        3 => *code = w.varint(n)? as i32,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (trace_id, span_id, parent_span_id) =
        match decode::span_ids(name, trace_id, span_id, parent_span_id) {
            Ok(ids) => ids,
            Err(why) => {
                out.reject(why);
                return Ok(());
            }
        };
    let (status, status_message) = match status {
        Some((code, message)) => (
            decode::status_code(code),
            cut_text(message, limits.max_value_bytes),
        ),
        None => (StatusCode::Unset, Text::default()),
    };
    out.fragments.push(Fragment::Span(Span {
        trace_id,
        span_id,
        parent_span_id,
        name: cut_text(name, MAX_NAME_BYTES),
        kind: SpanKind::from_otlp(kind),
        service: service.clone(),
        start_ns,
        end_ns: end_ns.max(start_ns),
        status,
        status_message,
        attributes,
        resource: resource.to_vec(),
        scope: scope.clone(),
        events,
        links,
        protocol,
    }));
    Ok(())
}

fn event(buf: &[u8], limits: &Limits) -> Result<Event, ProtoError> {
    let mut e = Event {
        time_ns: 0,
        name: Text::default(),
        attributes: Vec::new(),
    };
    let mut fields = Fields::new(buf);
    while let Some((n, w)) = fields.next()? {
        match n {
            1 => e.time_ns = w.fixed64(n)?,
            2 => e.name = cut_text(w.string(n)?, MAX_NAME_BYTES),
            3 => key_value_into(&mut e.attributes, w.bytes(n)?, limits, 0)?,
            _ => {}
        }
    }
    Ok(e)
}

/// A link, or `None` when one of its IDs is invalid (dropped, as the
/// model has no place for it).
fn link(buf: &[u8], limits: &Limits) -> Result<Option<Link>, ProtoError> {
    let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
    let mut attributes = Vec::new();
    let mut fields = Fields::new(buf);
    while let Some((n, w)) = fields.next()? {
        match n {
            1 => trace_id = w.bytes(n)?,
            2 => span_id = w.bytes(n)?,
            4 => key_value_into(&mut attributes, w.bytes(n)?, limits, 0)?,
            _ => {}
        }
    }
    let (Some(trace_id), Some(span_id)) =
        (TraceId::from_slice(trace_id), SpanId::from_slice(span_id))
    else {
        return Ok(None);
    };
    Ok(Some(Link {
        trace_id,
        span_id,
        attributes,
    }))
}

/// Reads a `KeyValue` into `out`, unless `out` already holds the most
/// attributes kept.
fn key_value_into(
    out: &mut Vec<KeyValue>,
    buf: &[u8],
    limits: &Limits,
    depth: usize,
) -> Result<(), ProtoError> {
    if out.len() >= limits.max_attributes {
        return Ok(());
    }
    let mut key = "";
    let mut value: &[u8] = &[];
    let mut fields = Fields::new(buf);
    while let Some((n, w)) = fields.next()? {
        match n {
            1 => key = w.string(n)?,
            2 => value = w.bytes(n)?,
            _ => {}
        }
    }
    out.push(KeyValue {
        key: cut_text(key, MAX_KEY_BYTES),
        value: any_value(value, limits, depth)?,
    });
    Ok(())
}

/// An `AnyValue` at `depth` levels of arrays and maps; empty (or of a kind
/// the model does not keep) is an empty string.
fn any_value(buf: &[u8], limits: &Limits, depth: usize) -> Result<Value, ProtoError> {
    let mut value = Value::Str(Text::default());
    let mut fields = Fields::new(buf);
    // A oneof: the last of its fields is the one that counts.
    while let Some((n, w)) = fields.next()? {
        value = match n {
            1 => Value::Str(cut_text(w.string(n)?, limits.max_value_bytes)),
            2 => Value::Bool(w.varint(n)? != 0),
            3 => Value::Int(w.varint(n)? as i64),
            4 => Value::Double(f64::from_bits(w.fixed64(n)?)),
            7 => {
                let b = w.bytes(n)?;
                Value::Bytes(b[..b.len().min(limits.max_value_bytes)].to_vec())
            }
            5 | 6 | 8 if depth > MAX_NESTING => {
                // Checked for its wire type, not read.
                if n == 8 {
                    w.varint(n)?;
                } else {
                    w.bytes(n)?;
                }
                Value::Str(TOO_DEEP.into())
            }
            5 => {
                let mut values = Vec::new();
                let mut array = Fields::new(w.bytes(n)?);
                while let Some((n, w)) = array.next()? {
                    if n == 1 && values.len() < limits.max_attributes {
                        values.push(any_value(w.bytes(n)?, limits, depth + 1)?);
                    }
                }
                Value::Array(values)
            }
            6 => {
                let mut map = Vec::new();
                let mut list = Fields::new(w.bytes(n)?);
                while let Some((n, w)) = list.next()? {
                    if n == 1 {
                        key_value_into(&mut map, w.bytes(n)?, limits, depth + 1)?;
                    }
                }
                Value::Map(map)
            }
            // A reference into a string table the request does not carry.
            8 => {
                w.varint(n)?;
                Value::Str(Text::default())
            }
            _ => continue,
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue as OKv, KeyValueList, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span as OSpan, Status, span,
    };
    use phosphor_bench::encode::{otlp_request, otlp_span};
    use phosphor_bench::shape::{Generator, Shape};
    use prost::Message;

    use super::*;
    use crate::test_support::fixtures;

    /// Both readers over the same bytes: what prost and the model keep, and
    /// what is read in place, must be the same, rejections included.
    fn same_as_prost(body: &[u8], limits: &Limits) -> Decoded {
        let req = ExportTraceServiceRequest::decode(body).expect("prost reads it");
        let want = decode::otlp(req, Protocol::OtlpGrpc, limits);
        let got = otlp(body, Protocol::OtlpGrpc, limits).expect("read in place");
        assert_eq!(got.fragments, want.fragments);
        assert_eq!(got.rejected, want.rejected);
        assert_eq!(got.first_error, want.first_error);
        got
    }

    fn kv(key: &str, v: any_value::Value) -> OKv {
        OKv {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    /// An array nested `levels` deep around a string.
    fn nested(levels: usize) -> any_value::Value {
        (0..levels).fold(s("core"), |v, _| {
            any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue { value: Some(v) }],
            })
        })
    }

    fn good_span(name: &str) -> OSpan {
        OSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: name.into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_250_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn every_real_client_capture_reads_as_prost_and_the_model_read_it() {
        let mut seen = 0;
        for (name, body) in fixtures() {
            let body = match name.as_str() {
                n if n.starts_with("grpc4317-")
                    || (n.starts_with("4318-") && n.ends_with(".bin")) =>
                {
                    body
                }
                // One gRPC frame: a 5-byte header, then the message.
                "grpc-frame-python-3spans.bin" => body[5..].to_vec(),
                _ => continue,
            };
            let d = same_as_prost(&body, &Limits::default());
            assert!(!d.fragments.is_empty(), "{name}");
            seen += 1;
        }
        assert!(seen >= 10, "only {seen} protobuf captures found");
    }

    #[test]
    fn the_load_tools_requests_read_as_prost_and_the_model_read_them() {
        // Events, errors, many services and attribute kinds; a small limit
        // as well, so that attributes past it are skipped the same way.
        let mut g = Generator::new(Shape::default(), 7);
        let mut spans = Vec::new();
        while spans.len() < 2_000 {
            let t = g.trace();
            spans.extend(t.spans.into_iter().map(|s| otlp_span(&t.id, s)));
        }
        let body = otlp_request(g.services(), spans).encode_to_vec();
        let d = same_as_prost(&body, &Limits::default());
        assert!(d.fragments.len() >= 2_000);
        let small = Limits {
            max_value_bytes: 5,
            max_attributes: 3,
        };
        same_as_prost(&body, &small);
    }

    #[test]
    fn every_kind_of_value_limit_and_rejection_reads_as_prost() {
        let mut deep_map = kv("m", s("leaf"));
        for _ in 0..7 {
            deep_map = kv(
                "m",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![deep_map],
                }),
            );
        }
        let attributes = vec![
            kv(
                "array6",
                any_value::Value::ArrayValue(ArrayValue {
                    values: (0..6)
                        .map(|i| AnyValue {
                            value: Some(any_value::Value::IntValue(i)),
                        })
                        .collect(),
                }),
            ),
            kv("str", s("a value longer than the limit of twenty bytes")),
            kv("é", s("ééééééééééééééééééééééééé")),
            kv("bool", any_value::Value::BoolValue(true)),
            kv("int", any_value::Value::IntValue(-42)),
            kv("double", any_value::Value::DoubleValue(-0.5)),
            kv("bytes", any_value::Value::BytesValue(vec![7; 40])),
            kv("strindex", any_value::Value::StringValueStrindex(3)),
            kv("array4", nested(4)),
            kv("array5", nested(5)),
            kv("array9", nested(9)),
            deep_map,
            OKv {
                key: "no value".into(),
                ..Default::default()
            },
            OKv {
                key: "empty value".into(),
                value: Some(AnyValue { value: None }),
                ..Default::default()
            },
            kv(&"k".repeat(300), s("long key")),
        ];
        let mut full = good_span(&"n".repeat(1_100));
        full.attributes = attributes.clone();
        full.parent_span_id = vec![3; 8];
        full.status = Some(Status {
            code: 2,
            message: "boom: a status message that runs past the limit".into(),
        });
        full.events = vec![
            opentelemetry_proto::tonic::trace::v1::span::Event {
                time_unix_nano: 5,
                name: "exception".into(),
                attributes: attributes.clone(),
                ..Default::default()
            },
            Default::default(),
        ];
        full.links = vec![
            span::Link {
                trace_id: vec![4; 16],
                span_id: vec![5; 8],
                attributes: attributes.clone(),
                ..Default::default()
            },
            // Dropped: invalid IDs.
            span::Link {
                trace_id: vec![4; 3],
                span_id: vec![5; 8],
                ..Default::default()
            },
        ];
        let mut ok_status = good_span("ok status, end before start");
        ok_status.status = Some(Status {
            code: 1,
            message: String::new(),
        });
        ok_status.end_time_unix_nano = 1;
        ok_status.kind = 99;
        let rejected = [
            OSpan {
                trace_id: vec![0; 16],
                ..good_span("zero trace")
            },
            OSpan {
                span_id: vec![2; 3],
                ..good_span("short span id")
            },
            OSpan {
                parent_span_id: vec![2; 9],
                ..good_span("long parent")
            },
        ];
        let resource = |attrs: Vec<OKv>| {
            Some(Resource {
                attributes: attrs,
                ..Default::default()
            })
        };
        let scope = |name: &str, version: &str| {
            Some(InstrumentationScope {
                name: name.into(),
                version: version.into(),
                ..Default::default()
            })
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: resource(vec![
                        kv("service.name", any_value::Value::IntValue(5)),
                        kv("service.name", s("card-api")),
                        kv("service.name", s("second")),
                        kv("host.name", s("box-1")),
                    ]),
                    scope_spans: vec![
                        ScopeSpans {
                            scope: scope("lib", "1.2"),
                            spans: [vec![full, ok_status], rejected.to_vec()].concat(),
                            ..Default::default()
                        },
                        ScopeSpans {
                            scope: scope("", "9"),
                            spans: vec![good_span("no scope name")],
                            ..Default::default()
                        },
                        ScopeSpans {
                            scope: None,
                            spans: vec![good_span("no scope")],
                            ..Default::default()
                        },
                        ScopeSpans {
                            scope: scope("bare", ""),
                            spans: vec![good_span("no version")],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                ResourceSpans {
                    resource: resource(vec![kv("service.name", s(""))]),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![good_span("empty service")],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                ResourceSpans {
                    resource: None,
                    scope_spans: vec![ScopeSpans {
                        spans: vec![good_span("no resource")],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        let body = req.encode_to_vec();
        let d = same_as_prost(&body, &Limits::default());
        assert_eq!(d.fragments.len(), 7);
        assert_eq!(d.rejected, 3);
        same_as_prost(
            &body,
            &Limits {
                max_value_bytes: 20,
                max_attributes: 4,
            },
        );
    }

    /// Appends a field's key.
    fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, u64::from(field) << 3 | u64::from(wire));
    }

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn len_field(out: &mut Vec<u8>, field: u32, body: &[u8]) {
        key(out, field, 2);
        varint(out, body.len() as u64);
        out.extend_from_slice(body);
    }

    /// A request of one resource of one scope whose message body (its
    /// spans, field 2) is `scope_spans`.
    fn request_of(scope_spans: &[u8]) -> Vec<u8> {
        let mut rs = Vec::new();
        len_field(&mut rs, 2, scope_spans);
        let mut body = Vec::new();
        len_field(&mut body, 1, &rs);
        body
    }

    /// Unknown fields of every wire type, a group among them.
    fn unknown_fields(out: &mut Vec<u8>) {
        key(out, 90, 0);
        varint(out, 300);
        key(out, 91, 1);
        out.extend_from_slice(&[1; 8]);
        len_field(out, 92, b"skipped");
        key(out, 93, 5);
        out.extend_from_slice(&[1; 4]);
        key(out, 94, 3);
        key(out, 1, 0);
        varint(out, 1);
        key(out, 95, 3);
        key(out, 95, 4);
        key(out, 94, 4);
    }

    #[test]
    fn fields_in_any_order_and_unknown_fields_read_the_same() {
        let span = good_span("reordered");
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s("svc"))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        ..Default::default()
                    }),
                    spans: vec![span.clone()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let want = same_as_prost(&req.encode_to_vec(), &Limits::default());

        // The same request by hand: every message's fields in reverse
        // order, with unknown fields between them.
        let mut sp = Vec::new();
        unknown_fields(&mut sp);
        key(&mut sp, 8, 1);
        sp.extend_from_slice(&span.end_time_unix_nano.to_le_bytes());
        key(&mut sp, 7, 1);
        sp.extend_from_slice(&span.start_time_unix_nano.to_le_bytes());
        key(&mut sp, 6, 0);
        varint(&mut sp, 2);
        len_field(&mut sp, 5, b"reordered");
        len_field(&mut sp, 2, &[2; 8]);
        len_field(&mut sp, 1, &[1; 16]);
        let mut ss = Vec::new();
        len_field(&mut ss, 2, &sp);
        unknown_fields(&mut ss);
        len_field(
            &mut ss,
            1,
            &InstrumentationScope {
                name: "lib".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let mut rs = Vec::new();
        len_field(&mut rs, 2, &ss);
        unknown_fields(&mut rs);
        len_field(
            &mut rs,
            1,
            &Resource {
                attributes: vec![kv("service.name", s("svc"))],
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let mut body = Vec::new();
        unknown_fields(&mut body);
        len_field(&mut body, 1, &rs);
        let got = same_as_prost(&body, &Limits::default());
        assert_eq!(got.fragments, want.fragments);
        let Fragment::Span(s) = &got.fragments[0] else {
            panic!("a span")
        };
        assert_eq!((&*s.service, s.scope.as_deref()), ("svc", Some("lib")));
    }

    #[test]
    fn room_is_reserved_only_for_spans_that_could_be_kept() {
        // A thousand empty spans: two bytes each on the wire, each rejected.
        let mut ss = Vec::new();
        for _ in 0..1_000 {
            len_field(&mut ss, 2, &[]);
        }
        let body = request_of(&ss);
        let d = otlp(&body, Protocol::OtlpGrpc, &Limits::default()).unwrap();
        assert_eq!((d.fragments.len(), d.rejected), (0, 1_000));
        assert_eq!(d.fragments.capacity(), 0);
        // Spans that carry IDs are counted.
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![good_span("a"), good_span("b")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let d = same_as_prost(&req.encode_to_vec(), &Limits::default());
        assert_eq!(d.fragments.capacity(), 2);
    }

    #[test]
    fn malformed_bodies_are_errors_that_say_why() {
        let body = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![good_span("x")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let limits = Limits::default();
        // Cut anywhere inside: an error, never a panic, never a span.
        for n in 1..body.len() {
            assert!(
                otlp(&body[..n], Protocol::OtlpGrpc, &limits).is_err(),
                "{n}"
            );
        }
        let read = |b: &[u8]| otlp(b, Protocol::OtlpGrpc, &limits).map(|d| d.fragments.len());
        assert_eq!(read(&body), Ok(1));
        assert_eq!(read(&[0xff; 16]), Err(ProtoError::Varint));
        assert_eq!(read(&[0x0a, 0x05, 0x01]), Err(ProtoError::Truncated));
        // Field 1 as a varint, where a message is expected.
        assert_eq!(
            read(&[0x08, 0x01]),
            Err(ProtoError::WireType {
                field: 1,
                got: 0,
                want: 2
            })
        );
        // Field number 0, and an end of group that was never opened.
        assert_eq!(read(&[0x02, 0x00]), Err(ProtoError::Key(2)));
        assert_eq!(read(&[0x0c]), Err(ProtoError::Key(12)));
        // A span name that is not UTF-8.
        let mut sp = Vec::new();
        len_field(&mut sp, 5, &[0xc3, 0x28]);
        let mut ss = Vec::new();
        len_field(&mut ss, 2, &sp);
        let bad = request_of(&ss);
        assert_eq!(read(&bad), Err(ProtoError::Utf8(5)));
        assert!(ExportTraceServiceRequest::decode(&bad[..]).is_err());
        // Groups nested past the limit.
        let mut deep = Vec::new();
        for _ in 0..=MAX_GROUP_DEPTH {
            key(&mut deep, 9, 3);
        }
        assert_eq!(read(&deep), Err(ProtoError::Groups));
        // Bytes of no message at all: an error or nothing, never a panic.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2_000 {
            let junk: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = read(&junk);
        }
    }
}
