//! Generated traces in each wire format, cut into payloads: OTLP requests
//! (protobuf or JSON) and Zipkin v2 JSON lists of `batch` spans, phosphor
//! annotations one per datagram (legacy framing) or packed into datagrams
//! under a size limit (batch framing, [`phosphor_proto::phosphor`]'s
//! encoders).

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use phosphor_proto::otlp::tonic::collector::trace::v1::ExportTraceServiceRequest;
use phosphor_proto::otlp::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value,
};
use phosphor_proto::otlp::tonic::resource::v1::Resource;
use phosphor_proto::otlp::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span as OtlpSpan, Status, span,
};
use phosphor_proto::phosphor::{self as wire, AnnotationType};
use prost::Message;
use serde::Serialize;

use crate::Protocol;
use crate::shape::{Attr, Generator, Kind, Service, Span, Trace, Value};

/// One request body or datagram, and how many spans (or annotations) it
/// carries.
#[derive(Debug, Clone)]
pub struct Payload {
    pub body: Bytes,
    pub items: u64,
}

fn any(v: &Value) -> AnyValue {
    AnyValue {
        value: Some(match v {
            Value::Str(s) => any_value::Value::StringValue(s.clone()),
            Value::Int(i) => any_value::Value::IntValue(*i),
            Value::Bool(b) => any_value::Value::BoolValue(*b),
        }),
    }
}

fn kv(a: Attr) -> KeyValue {
    KeyValue {
        value: Some(any(&a.value)),
        key: a.key,
        ..Default::default()
    }
}

fn str_kv(key: &str, value: &str) -> KeyValue {
    kv(Attr {
        key: key.into(),
        value: Value::Str(value.into()),
    })
}

/// A span in OTLP form, with the index of its service.
pub fn otlp_span(trace_id: &[u8; 16], sp: Span) -> (usize, OtlpSpan) {
    let ns = |us: i64| (us.max(0) as u64) * 1_000;
    let attributes: Vec<KeyValue> = sp.attrs.into_iter().map(kv).collect();
    let span = OtlpSpan {
        trace_id: trace_id.to_vec(),
        span_id: sp.id.to_be_bytes().to_vec(),
        parent_span_id: sp
            .parent
            .map(|p| p.to_be_bytes().to_vec())
            .unwrap_or_default(),
        name: sp.name,
        kind: match sp.kind {
            Kind::Server => span::SpanKind::Server,
            Kind::Client => span::SpanKind::Client,
            Kind::Internal => span::SpanKind::Internal,
        } as i32,
        start_time_unix_nano: ns(sp.start_us),
        end_time_unix_nano: ns(sp.end_us),
        attributes,
        events: sp
            .events
            .into_iter()
            .map(|e| span::Event {
                time_unix_nano: ns(e.time_us),
                name: e.name.into(),
                attributes: e.attrs.into_iter().map(kv).collect(),
                ..Default::default()
            })
            .collect(),
        status: Some(if sp.error {
            Status {
                code: 2,
                message: "upstream call failed".into(),
            }
        } else {
            Status::default()
        }),
        ..Default::default()
    };
    (sp.service, span)
}

/// An OTLP export request of `spans`, grouped by service.
pub fn otlp_request(
    services: &[Service],
    spans: Vec<(usize, OtlpSpan)>,
) -> ExportTraceServiceRequest {
    let mut by_service: Vec<Vec<OtlpSpan>> = vec![Vec::new(); services.len()];
    for (svc, sp) in spans {
        by_service[svc].push(sp);
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(i, spans)| {
                let svc = &services[i];
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            str_kv("service.name", &svc.name),
                            str_kv("service.version", &svc.version),
                            str_kv("deployment.environment", "production"),
                            str_kv("telemetry.sdk.language", "go"),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "phosphor-bench".into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            ..Default::default()
                        }),
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            })
            .collect(),
    }
}

/// A whole trace as OTLP protobuf requests of at most `batch` spans.
pub fn otlp_trace_bodies(services: &[Service], trace: Trace, batch: usize) -> Vec<Payload> {
    let id = trace.id;
    let mut spans: Vec<(usize, OtlpSpan)> =
        trace.spans.into_iter().map(|s| otlp_span(&id, s)).collect();
    let mut out = Vec::new();
    while !spans.is_empty() {
        let rest = spans.split_off(batch.max(1).min(spans.len()));
        let items = spans.len() as u64;
        out.push(Payload {
            body: otlp_request(services, spans).encode_to_vec().into(),
            items,
        });
        spans = rest;
    }
    out
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinEndpoint {
    service_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv4: Option<String>,
}

#[derive(Debug, Serialize)]
struct ZipkinAnnotation {
    timestamp: i64,
    value: &'static str,
}

/// A Zipkin v2 span (JSON).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    trace_id: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    timestamp: i64,
    duration: i64,
    local_endpoint: ZipkinEndpoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_endpoint: Option<ZipkinEndpoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    annotations: Vec<ZipkinAnnotation>,
    tags: BTreeMap<String, String>,
}

/// A span in Zipkin v2 form.
pub fn zipkin_span(services: &[Service], trace_hex: &str, sp: Span) -> ZipkinSpan {
    let mut tags: BTreeMap<String, String> = sp
        .attrs
        .into_iter()
        .map(|a| (a.key, a.value.text()))
        .collect();
    if sp.error {
        tags.insert("error".into(), "upstream call failed".into());
    }
    ZipkinSpan {
        trace_id: trace_hex.to_string(),
        id: format!("{:016x}", sp.id),
        parent_id: sp.parent.map(|p| format!("{p:016x}")),
        name: sp.name,
        kind: match sp.kind {
            Kind::Server => Some("SERVER"),
            Kind::Client => Some("CLIENT"),
            Kind::Internal => None,
        },
        timestamp: sp.start_us,
        duration: (sp.end_us - sp.start_us).max(1),
        local_endpoint: ZipkinEndpoint {
            service_name: services[sp.service].name.clone(),
            ipv4: Some(format!("10.1.{}.{}", sp.service % 250, (sp.id % 250) + 1)),
        },
        remote_endpoint: match sp.kind {
            Kind::Client => sp.peer.map(|p| ZipkinEndpoint {
                service_name: services[p].name.clone(),
                ipv4: None,
            }),
            _ => None,
        },
        annotations: sp
            .events
            .iter()
            .map(|e| ZipkinAnnotation {
                timestamp: e.time_us,
                value: e.name,
            })
            .collect(),
        tags,
    }
}

fn hex16(id: u64) -> String {
    format!("{id:016x}")
}

fn text_kv(attrs: &[Attr], extra: &[(&str, String)]) -> Vec<wire::KeyValue> {
    extra
        .iter()
        .map(|(k, v)| wire::KeyValue {
            key: (*k).into(),
            value: v.clone(),
        })
        .chain(attrs.iter().map(|a| wire::KeyValue {
            key: a.key.clone(),
            value: a.value.text(),
        }))
        .collect()
}

/// A trace as phosphor annotations, in the SEND/RECV model: per call
/// CLIENT_SEND and CLIENT_RECV on the caller's host, SERVER_RECV and
/// SERVER_SEND on the callee's, all under the call's span ID; the entry call
/// has only its server side; events are ANNOTATIONs.
pub fn annotations(services: &[Service], trace: &Trace) -> Vec<wire::Annotation> {
    let trace_id = trace.hex_id();
    let mut out = Vec::new();
    for call in &trace.calls {
        let caller = call.client.map(|i| trace.spans[i].service);
        let callee = call.server.map(|i| trace.spans[i].service);
        let base = wire::Annotation {
            trace_id: trace_id.clone(),
            span_id: hex16(call.id),
            parent_id: call.parent.map(hex16).unwrap_or_default(),
            origin: caller
                .or(callee)
                .map(|s| services[s].name.clone())
                .unwrap_or_default(),
            destination: callee.map(|s| services[s].name.clone()).unwrap_or_default(),
            ..Default::default()
        };
        if let Some(c) = call.client.map(|i| &trace.spans[i]) {
            side(
                &mut out,
                &base,
                c,
                AnnotationType::ClientSend,
                AnnotationType::ClientRecv,
            );
        }
        if let Some(s) = call.server.map(|i| &trace.spans[i]) {
            side(
                &mut out,
                &base,
                s,
                AnnotationType::ServerRecv,
                AnnotationType::ServerSend,
            );
        }
    }
    out
}

/// One side of a call: its opening annotation (with the span's name,
/// attributes and error), its events, its closing annotation.
fn side(
    out: &mut Vec<wire::Annotation>,
    base: &wire::Annotation,
    sp: &Span,
    open: AnnotationType,
    close: AnnotationType,
) {
    let at = |kind: AnnotationType, ts: i64, key_value: Vec<wire::KeyValue>| wire::Annotation {
        r#type: kind as i32,
        timestamp: ts,
        hostname: sp.host.clone(),
        key_value,
        ..base.clone()
    };
    let mut extra = vec![("operation", sp.name.clone())];
    if sp.error {
        extra.push(("error", "upstream call failed".into()));
    }
    out.push(at(open, sp.start_us, text_kv(&sp.attrs, &extra)));
    for e in &sp.events {
        out.push(at(
            AnnotationType::Annotation,
            e.time_us,
            text_kv(&e.attrs, &[("operation", e.name.to_string())]),
        ));
    }
    out.push(at(close, sp.end_us, vec![]));
}

/// Bytes one annotation adds to a batch datagram (its field tag, length
/// and body).
fn batch_entry_len(a: &wire::Annotation) -> usize {
    let n = a.encoded_len();
    1 + prost::encoding::encoded_len_varint(n as u64) + n
}

/// Bytes of the batch framing's header.
const BATCH_HEADER: usize = 2;

/// Payloads of one protocol, one after another, from a generator.
#[derive(Debug)]
pub struct Source {
    generator: Generator,
    protocol: Protocol,
    batch: usize,
    max_datagram: usize,
    otlp: VecDeque<(usize, OtlpSpan)>,
    zipkin: VecDeque<ZipkinSpan>,
    annotations: VecDeque<wire::Annotation>,
}

impl Source {
    /// A source of `protocol` payloads: `batch` spans per request, or at
    /// most `batch` annotations and `max_datagram` bytes per batch datagram.
    pub fn new(
        generator: Generator,
        protocol: Protocol,
        batch: usize,
        max_datagram: usize,
    ) -> Source {
        Source {
            generator,
            protocol,
            batch: batch.max(1),
            max_datagram,
            otlp: VecDeque::new(),
            zipkin: VecDeque::new(),
            annotations: VecDeque::new(),
        }
    }

    /// The generator's services.
    pub fn services(&self) -> &[Service] {
        self.generator.services()
    }

    /// The next payload, of at most `limit` items.
    pub fn next(&mut self, limit: u64) -> Payload {
        self.next_with_ids(limit).0
    }

    /// The next payload, of at most `limit` items, and the IDs of the traces
    /// it holds spans of.
    pub fn next_with_ids(&mut self, limit: u64) -> (Payload, Vec<[u8; 16]>) {
        let want = self.batch.min(limit.max(1) as usize);
        let mut ids = TraceIds::default();
        let payload = match self.protocol {
            Protocol::OtlpGrpc | Protocol::OtlpHttp | Protocol::OtlpJson => {
                while self.otlp.len() < want {
                    let t = self.generator.trace();
                    let id = t.id;
                    self.otlp
                        .extend(t.spans.into_iter().map(|s| otlp_span(&id, s)));
                }
                let spans: Vec<_> = self.otlp.drain(..want).collect();
                for (_, s) in &spans {
                    ids.add_raw(&s.trace_id);
                }
                let req = otlp_request(self.generator.services(), spans);
                let body = if self.protocol == Protocol::OtlpJson {
                    serde_json::to_vec(&req).expect("OTLP request serialises")
                } else {
                    req.encode_to_vec()
                };
                Payload {
                    body: body.into(),
                    items: want as u64,
                }
            }
            Protocol::ZipkinJson => {
                while self.zipkin.len() < want {
                    let t = self.generator.trace();
                    let hex = t.hex_id();
                    let services = self.generator.services();
                    self.zipkin
                        .extend(t.spans.into_iter().map(|s| zipkin_span(services, &hex, s)));
                }
                let spans: Vec<_> = self.zipkin.drain(..want).collect();
                for s in &spans {
                    ids.add_hex(&s.trace_id);
                }
                Payload {
                    body: serde_json::to_vec(&spans).expect("spans serialise").into(),
                    items: want as u64,
                }
            }
            Protocol::Udp => {
                self.refill_annotations(1);
                let a = self.annotations.pop_front().expect("refilled");
                ids.add_hex(&a.trace_id);
                Payload {
                    body: wire::encode_legacy(&a).into(),
                    items: 1,
                }
            }
            Protocol::UdpBatch => {
                self.refill_annotations(want);
                let mut size = BATCH_HEADER;
                let mut take = 0;
                for a in self.annotations.iter().take(want) {
                    let n = batch_entry_len(a);
                    if take > 0 && size + n > self.max_datagram {
                        break;
                    }
                    size += n;
                    take += 1;
                }
                let chunk: Vec<wire::Annotation> = self.annotations.drain(..take).collect();
                for a in &chunk {
                    ids.add_hex(&a.trace_id);
                }
                Payload {
                    body: wire::encode_batch(&chunk).into(),
                    items: take as u64,
                }
            }
        };
        (payload, ids.0)
    }

    fn refill_annotations(&mut self, want: usize) {
        while self.annotations.len() < want {
            let t = self.generator.trace();
            let services = self.generator.services();
            self.annotations.extend(annotations(services, &t));
        }
    }
}

/// Distinct trace IDs, in the order first seen (a payload holds a few).
#[derive(Default)]
struct TraceIds(Vec<[u8; 16]>);

impl TraceIds {
    fn add_raw(&mut self, id: &[u8]) {
        if let Ok(id) = <[u8; 16]>::try_from(id)
            && !self.0.contains(&id)
        {
            self.0.push(id);
        }
    }

    fn add_hex(&mut self, hex: &str) {
        let mut id = [0u8; 16];
        if hex::decode_to_slice(hex, &mut id).is_ok() {
            self.add_raw(&id);
        }
    }
}

/// A payload kept for replay: its body, and where each of its trace IDs
/// is written in it.
struct Pooled {
    body: Bytes,
    items: u64,
    ids: Vec<[u8; 16]>,
    /// (offset, index into `ids`, written as 32 lower-case hex digits
    /// rather than 16 raw bytes).
    at: Vec<(usize, usize, bool)>,
}

impl Pooled {
    fn new(payload: Payload, ids: Vec<[u8; 16]>) -> Pooled {
        let mut at = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let mut hex = [0u8; 32];
            hex::encode_to_slice(id, &mut hex).expect("32 bytes for 16");
            for (needle, is_hex) in [(&id[..], false), (&hex[..], true)] {
                at.extend(memchr::memmem::find_iter(&payload.body, needle).map(|o| (o, i, is_hex)));
            }
        }
        Pooled {
            body: payload.body,
            items: payload.items,
            ids,
            at,
        }
    }

    /// The body with every trace ID XORed with `mask`.
    fn masked(&self, mask: &[u8; 16]) -> Bytes {
        let mut body = self.body.to_vec();
        let ids: Vec<[u8; 16]> = self
            .ids
            .iter()
            .map(|id| std::array::from_fn(|i| id[i] ^ mask[i]))
            .collect();
        for &(o, i, is_hex) in &self.at {
            if is_hex {
                hex::encode_to_slice(ids[i], &mut body[o..o + 32]).expect("32 bytes for 16");
            } else {
                body[o..o + 16].copy_from_slice(&ids[i]);
            }
        }
        body.into()
    }
}

/// Payloads made once, before the clock starts, and then sent over and
/// over, each round with every trace ID XORed with a new random mask: the
/// server sees new traces of the same shape, and this tool's CPU goes to
/// sending rather than to making spans (which costs it several times what
/// sending does, on the same cores as the server).
///
/// Only trace IDs change between rounds: attribute values repeat once a
/// round (65,536 spans apart by default, while an index block of the
/// store holds at most 4,096, so never within one block), and timestamps
/// are those of the first round.
pub struct Replay {
    source: Source,
    pool_items: u64,
    pool: Vec<Pooled>,
    next: usize,
    /// The mask of the current round (zero in the first).
    mask: [u8; 16],
    masks: fastrand::Rng,
}

impl Replay {
    /// Replays `pool_items` items of `source` (0: every payload made anew).
    pub fn new(source: Source, pool_items: u64, seed: u64) -> Replay {
        Replay {
            source,
            pool_items,
            pool: Vec::new(),
            next: 0,
            mask: [0; 16],
            masks: fastrand::Rng::with_seed(seed),
        }
    }

    /// The next payload, of at most `limit` items. The first call makes the
    /// pool.
    pub fn next(&mut self, limit: u64) -> Payload {
        if self.pool_items == 0 {
            return self.source.next(limit);
        }
        if self.pool.is_empty() {
            let target = self.pool_items.min(limit.max(1));
            let mut made = 0;
            while made < target {
                let (p, ids) = self.source.next_with_ids(target - made);
                made += p.items;
                self.pool.push(Pooled::new(p, ids));
            }
        }
        let p = &self.pool[self.next];
        if p.items > limit {
            // The run's last, shorter payload.
            return self.source.next(limit);
        }
        let body = if self.mask == [0; 16] {
            p.body.clone()
        } else {
            p.masked(&self.mask)
        };
        let items = p.items;
        self.next += 1;
        if self.next == self.pool.len() {
            self.next = 0;
            self.mask = std::array::from_fn(|_| self.masks.u8(..));
        }
        Payload { body, items }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Shape;

    fn source(p: Protocol, batch: usize) -> Source {
        Source::new(Generator::new(Shape::default(), 1), p, batch, 8_192)
    }

    /// A payload's trace IDs (hex), and its body with them blanked, decoded
    /// in its protocol.
    fn ids_and_rest(p: Protocol, body: &[u8]) -> (Vec<String>, String) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        match p {
            Protocol::OtlpGrpc => {
                let mut req = ExportTraceServiceRequest::decode(body).unwrap();
                let mut ids = Vec::new();
                for s in req
                    .resource_spans
                    .iter_mut()
                    .flat_map(|r| &mut r.scope_spans)
                    .flat_map(|s| &mut s.spans)
                {
                    ids.push(hex(&s.trace_id));
                    s.trace_id.clear();
                }
                (ids, format!("{req:?}"))
            }
            Protocol::ZipkinJson => {
                let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
                let mut ids = Vec::new();
                for s in v.as_array_mut().unwrap() {
                    ids.push(s["traceId"].as_str().unwrap().to_string());
                    s["traceId"] = serde_json::Value::Null;
                }
                (ids, v.to_string())
            }
            Protocol::Udp | Protocol::UdpBatch => {
                let mut anns = match wire::decode_datagram(body).unwrap() {
                    wire::Datagram::Legacy(a) => vec![a],
                    wire::Datagram::Batch(b) => b,
                };
                let ids = anns.iter().map(|a| a.trace_id.clone()).collect();
                for a in &mut anns {
                    a.trace_id.clear();
                }
                (ids, format!("{anns:?}"))
            }
            other => unreachable!("{other:?} is not replayed in this test"),
        }
    }

    #[test]
    fn replayed_rounds_change_the_trace_ids_and_nothing_else() {
        for p in [
            Protocol::OtlpGrpc,
            Protocol::ZipkinJson,
            Protocol::Udp,
            Protocol::UdpBatch,
        ] {
            let mut r = Replay::new(source(p, 64), 300, 9);
            let first = r.next(u64::MAX);
            let per_round = r.pool.len();
            assert!(per_round > 1, "{p:?}: a pool of several payloads");
            let mut rounds: Vec<Vec<Payload>> = vec![vec![first]];
            rounds[0].extend((1..per_round).map(|_| r.next(u64::MAX)));
            for _ in 0..2 {
                rounds.push((0..per_round).map(|_| r.next(u64::MAX)).collect());
            }
            let items: u64 = rounds[0].iter().map(|p| p.items).sum();
            assert!(items >= 300, "{p:?}: the pool holds {items} items");
            let mut seen = std::collections::HashSet::new();
            for (n, round) in rounds.iter().enumerate() {
                let mut ids = std::collections::HashSet::new();
                for (i, payload) in round.iter().enumerate() {
                    assert_eq!(payload.items, rounds[0][i].items);
                    let (these, rest) = ids_and_rest(p, &payload.body);
                    let (firsts, first_rest) = ids_and_rest(p, &rounds[0][i].body);
                    assert_eq!(rest, first_rest, "{p:?} round {n}: all but the IDs alike");
                    // One new ID for each first-round ID, the same throughout.
                    for (a, b) in these.iter().zip(&firsts) {
                        assert_eq!(a.len(), 32);
                        if n == 0 {
                            assert_eq!(a, b);
                        }
                        ids.insert((a.clone(), b.clone()));
                    }
                }
                let news: std::collections::HashSet<_> = ids.iter().map(|(a, _)| a).collect();
                let olds: std::collections::HashSet<_> = ids.iter().map(|(_, b)| b).collect();
                assert_eq!(news.len(), olds.len(), "{p:?} round {n}: one to one");
                assert_eq!(news.len(), ids.len(), "{p:?} round {n}: one to one");
                for id in news {
                    assert!(seen.insert(id.clone()), "{p:?} round {n}: {id} seen before");
                }
            }
        }
        // A limit below a pooled payload's items makes a shorter one anew,
        // and no pool at all makes every payload anew.
        let mut r = Replay::new(source(Protocol::OtlpGrpc, 64), 300, 9);
        assert_eq!(r.next(u64::MAX).items, 64);
        assert_eq!(r.next(5).items, 5);
        let mut fresh = Replay::new(source(Protocol::OtlpGrpc, 64), 0, 9);
        assert_eq!(fresh.next(u64::MAX).items, 64);
        assert!(fresh.pool.is_empty());
    }

    #[test]
    fn otlp_payloads_hold_the_batch_and_decode() {
        let mut s = source(Protocol::OtlpGrpc, 512);
        let p = s.next(u64::MAX);
        assert_eq!(p.items, 512);
        let req = ExportTraceServiceRequest::decode(p.body.as_ref()).unwrap();
        let n: usize = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(n, 512);
        assert!(req.resource_spans.len() > 1, "spans are grouped by service");
        // A limit cuts the payload short.
        assert_eq!(s.next(7).items, 7);
        // JSON is OTLP/JSON: hex IDs, the same spans.
        let mut j = source(Protocol::OtlpJson, 10);
        let body = j.next(u64::MAX).body;
        let req: ExportTraceServiceRequest = serde_json::from_slice(&body).unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let id: String = req.resource_spans[0].scope_spans[0].spans[0]
            .trace_id
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        assert!(text.contains(&id), "{id} in {text:.300}");
    }

    #[test]
    fn zipkin_payloads_are_v2_json_lists() {
        let mut s = source(Protocol::ZipkinJson, 30);
        let p = s.next(u64::MAX);
        let v: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        let spans = v.as_array().unwrap();
        assert_eq!(spans.len(), 30);
        assert_eq!(spans[0]["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(spans[0]["id"].as_str().unwrap().len(), 16);
        assert!(spans.iter().any(|s| s["kind"] == "CLIENT"));
        assert!(
            spans
                .iter()
                .all(|s| s["localEndpoint"]["serviceName"].is_string())
        );
    }

    #[test]
    fn annotations_follow_send_recv_per_call() {
        let mut g = Generator::new(
            Shape {
                events: 0.0,
                ..Shape::default()
            },
            1,
        );
        let t = g.trace();
        let anns = annotations(g.services(), &t);
        assert_eq!(anns.len(), Shape::default().annotations_per_trace());
        let kinds = |span: &str| {
            let mut k: Vec<i32> = anns
                .iter()
                .filter(|a| a.span_id == span)
                .map(|a| a.r#type)
                .collect();
            k.sort();
            k
        };
        let entry = format!("{:016x}", t.calls[0].id);
        assert_eq!(
            kinds(&entry),
            vec![
                AnnotationType::ServerRecv as i32,
                AnnotationType::ServerSend as i32
            ]
        );
        let call = &t.calls[1];
        assert_eq!(call.parent, Some(t.calls[0].id));
        assert_eq!(
            kinds(&format!("{:016x}", call.id)),
            vec![1, 2, 3, 4],
            "CLIENT_SEND, CLIENT_RECV, SERVER_RECV, SERVER_SEND"
        );
        let cs = anns
            .iter()
            .find(|a| a.r#type == AnnotationType::ClientSend as i32)
            .unwrap();
        assert_eq!(cs.parent_id, entry);
        assert!(cs.key_value.iter().any(|kv| kv.key == "operation"));
        assert!(cs.key_value.iter().any(|kv| kv.key == "user.id"));
    }

    #[test]
    fn batch_datagrams_stay_under_the_size_limit() {
        for limit in [600, 1_400, 8_192, 60_000] {
            let mut s = Source::new(
                Generator::new(Shape::default(), 1),
                Protocol::UdpBatch,
                512,
                limit,
            );
            let mut total = 0;
            for _ in 0..50 {
                let p = s.next(u64::MAX);
                assert!(p.items >= 1);
                assert!(
                    p.body.len() <= limit || p.items == 1,
                    "{} > {limit}",
                    p.body.len()
                );
                match wire::decode_datagram(&p.body).unwrap() {
                    wire::Datagram::Batch(v) => assert_eq!(v.len() as u64, p.items),
                    other => panic!("{other:?}"),
                }
                total += p.items;
            }
            assert!(total > 50 || limit < 1_000, "{limit}: {total}");
        }
        let mut legacy = source(Protocol::Udp, 512);
        let p = legacy.next(u64::MAX);
        assert_eq!(p.items, 1);
        assert!(matches!(
            wire::decode_datagram(&p.body).unwrap(),
            wire::Datagram::Legacy(_)
        ));
    }

    #[test]
    fn a_whole_trace_splits_into_requests() {
        let mut g = Generator::new(Shape::default(), 1);
        let t = g.trace_with_spans(1_000);
        let bodies = otlp_trace_bodies(g.services(), t, 512);
        assert_eq!(
            bodies.iter().map(|p| p.items).collect::<Vec<_>>(),
            vec![512, 488]
        );
    }
}
