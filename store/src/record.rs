//! The stored form of a record: the fragments of one trace that one write
//! brought.
//!
//! Version 2 (written now) keeps each distinct string of the record once,
//! in a table at its head, and each distinct resource once; spans refer to
//! them by number. The trace ID is written once, a parent that is a span of
//! the same record is its number there, and times are differences (a
//! span's start from the previous span's, its end and its events from its
//! start), in microseconds where every time of the record is a whole one.
//! Span and link IDs are kept together, apart from the rest, so that the
//! compressor sees the spans' repeating structure unbroken.
//! Annotations use the same string table, their IDs kept with the spans'
//! and their timestamps as differences from the previous annotation's
//! (store format 6; before it each annotation was postcard, as version 1
//! keeps them, which is still read). Version 1 (postcard of the
//! fragments) is still read.
//!
//! Decoding untrusted bytes never panics: whatever does not parse is an
//! error naming what was wrong.

use rustc_hash::FxHashMap;

use crate::block::{put_varint, take_varint};

use crate::model::{
    Annotation, AnnotationType, Event, Fragment, KeyValue, LegacyIds, Link, Protocol, Span, SpanId,
    SpanKind, StatusCode, Text, TraceId, Value,
};

/// A record of postcard-encoded fragments.
pub const RECORD_V1: u8 = 1;
/// A record with a string table (this module).
pub const RECORD_V2: u8 = 2;

const FRAG_SPAN: u8 = 0;
/// An annotation as postcard (written before store format 6).
const FRAG_ANNOTATION: u8 = 1;
/// An annotation through the string table.
const FRAG_ANNOTATION_TABLED: u8 = 2;

// Flags of a tabled annotation.
const A_OTHER_TRACE: u8 = 1;
const A_HAS_PARENT: u8 = 2;
const A_ONE_WAY: u8 = 4;
const A_LEGACY_TRACE: u8 = 8;
const A_LEGACY_SPAN: u8 = 16;
const A_LEGACY_PARENT: u8 = 32;
const A_FLAGS: u8 = 63;

const HAS_PARENT: u8 = 1;
const PARENT_IN_RECORD: u8 = 2;
const OTHER_TRACE: u8 = 4;
const HAS_SCOPE: u8 = 8;

const V_STR: u8 = 0;
const V_FALSE: u8 = 1;
const V_TRUE: u8 = 2;
const V_INT: u8 = 3;
const V_DOUBLE: u8 = 4;
const V_BYTES: u8 = 5;
const V_ARRAY: u8 = 6;
const V_MAP: u8 = 7;

/// Deepest nesting of array and map values a record holds. The receivers
/// flatten values nested past a few levels; should a deeper one reach the
/// store, it is written as [`TOO_DEEP`], so that whatever is written can be
/// read back.
const MAX_DEPTH: usize = 64;
/// What stands for an array or map whose items would lie past
/// [`MAX_DEPTH`].
const TOO_DEEP: &str = "…[nested too deep]";

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn protocol_byte(p: Protocol) -> u8 {
    match p {
        Protocol::PhosphorUdp => 0,
        Protocol::OtlpGrpc => 1,
        Protocol::OtlpHttp => 2,
        Protocol::Zipkin => 3,
        Protocol::Upload => 4,
    }
}

fn status_byte(s: StatusCode) -> u8 {
    match s {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    }
}

/// Whether two attribute lists would be written as the same bytes: equal,
/// with doubles equal bit for bit (`-0.0` is not `0.0`, a NaN is itself).
fn identical(a: &[KeyValue], b: &[KeyValue]) -> bool {
    fn same(x: &Value, y: &Value) -> bool {
        match (x, y) {
            (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
            }
            (Value::Map(x), Value::Map(y)) => identical(x, y),
            (x, y) => x == y,
        }
    }
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.key == y.key && same(&x.value, &y.value))
}

/// Builds a record's body, and the string and resource tables it refers
/// to, then writes them out in order.
struct Encoder<'a> {
    strings: FxHashMap<&'a str, u32>,
    string_list: Vec<&'a str>,
    /// Each distinct resource, encoded, and its number.
    resources: FxHashMap<Vec<u8>, u32>,
    body: Vec<u8>,
    /// Span, parent and link IDs, kept apart from the body: random bytes
    /// between the body's repeating structure would hide it from the
    /// compressor.
    ids: Vec<u8>,
    scratch: Vec<u8>,
    /// The last span's resource and its number: a service's spans come
    /// together, and an equal resource needs no encoding to be found.
    last_resource: Option<(&'a [KeyValue], u32)>,
    /// Nanoseconds in a unit of the record's times: 1, or 1,000 where
    /// every time is a whole microsecond (Zipkin's and Jaeger's are).
    unit: i64,
}

impl<'a> Encoder<'a> {
    /// The number of `s` in the string table, added if new.
    fn string(&mut self, s: &'a str) -> u32 {
        let next = self.string_list.len() as u32;
        *self.strings.entry(s).or_insert_with(|| {
            self.string_list.push(s);
            next
        })
    }

    /// Writes the number of `s` in the string table to `out`.
    fn put_string(&mut self, out: &mut Vec<u8>, s: &'a str) {
        let n = self.string(s);
        put_varint(out, u64::from(n));
    }

    /// Writes a value nested `depth` levels into a top-level attribute.
    fn value(&mut self, out: &mut Vec<u8>, v: &'a Value, depth: usize) {
        if depth >= MAX_DEPTH && matches!(v, Value::Array(_) | Value::Map(_)) {
            // Its items would lie past the limit.
            out.push(V_STR);
            self.put_string(out, TOO_DEEP);
            return;
        }
        match v {
            Value::Str(s) => {
                out.push(V_STR);
                self.put_string(out, s);
            }
            Value::Bool(false) => out.push(V_FALSE),
            Value::Bool(true) => out.push(V_TRUE),
            Value::Int(i) => {
                out.push(V_INT);
                put_varint(out, zigzag(*i));
            }
            Value::Double(d) => {
                out.push(V_DOUBLE);
                out.extend_from_slice(&d.to_bits().to_le_bytes());
            }
            Value::Bytes(b) => {
                out.push(V_BYTES);
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Array(items) => {
                out.push(V_ARRAY);
                put_varint(out, items.len() as u64);
                for item in items {
                    self.value(out, item, depth + 1);
                }
            }
            Value::Map(kvs) => {
                out.push(V_MAP);
                self.key_values(out, kvs, depth + 1);
            }
        }
    }

    /// Writes attributes in key order, a repeated key's values in their
    /// arrival order (a stable sort): readers then show them without
    /// sorting each time (see `shown_attributes` in the query crate).
    fn key_values(&mut self, out: &mut Vec<u8>, kvs: &'a [KeyValue], depth: usize) {
        put_varint(out, kvs.len() as u64);
        if kvs.is_sorted_by(|a, b| a.key <= b.key) {
            for kv in kvs {
                self.put_string(out, &kv.key);
                self.value(out, &kv.value, depth);
            }
            return;
        }
        // Keys taken out once: comparing `&str`s is cheaper than comparing
        // the compact strings again at every step.
        let mut sorted: Vec<(&'a str, &'a KeyValue)> =
            kvs.iter().map(|kv| (kv.key.as_str(), kv)).collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (_, kv) in sorted {
            self.put_string(out, &kv.key);
            self.value(out, &kv.value, depth);
        }
    }

    /// Writes an annotation: flags, type, timestamp (from `prev_us`),
    /// duration, strings by number; its IDs go with the spans'.
    fn annotation(&mut self, a: &'a Annotation, trace: TraceId, prev_us: i64) {
        let mut body = std::mem::take(&mut self.body);
        body.push(FRAG_ANNOTATION_TABLED);
        let legacy = [
            (A_LEGACY_TRACE, a.legacy.trace.as_deref()),
            (A_LEGACY_SPAN, a.legacy.span.as_deref()),
            (A_LEGACY_PARENT, a.legacy.parent.as_deref()),
        ];
        let mut flags = 0;
        if a.trace_id != trace {
            flags |= A_OTHER_TRACE;
            self.ids.extend_from_slice(&a.trace_id.0);
        }
        self.ids.extend_from_slice(&a.span_id.0);
        if let Some(p) = a.parent_id {
            flags |= A_HAS_PARENT;
            self.ids.extend_from_slice(&p.0);
        }
        if a.one_way {
            flags |= A_ONE_WAY;
        }
        for (flag, s) in legacy {
            if s.is_some() {
                flags |= flag;
            }
        }
        body.push(flags);
        body.push(a.kind.wire());
        put_varint(&mut body, zigzag(a.timestamp_us.wrapping_sub(prev_us)));
        put_varint(&mut body, zigzag(a.duration_us));
        for s in legacy.into_iter().filter_map(|(_, s)| s) {
            self.put_string(&mut body, s);
        }
        for s in [&a.hostname, &a.origin, &a.destination, &a.payload] {
            self.put_string(&mut body, s);
        }
        put_varint(&mut body, a.attributes.len() as u64);
        for (k, v) in &a.attributes {
            self.put_string(&mut body, k);
            self.put_string(&mut body, v);
        }
        self.body = body;
    }

    /// Writes a span; `parent_index` is its parent's number where the
    /// parent is an earlier span of the record.
    fn span(&mut self, s: &'a Span, trace: TraceId, prev_start: u64, parent_index: Option<u32>) {
        let unit = self.unit;
        let mut body = std::mem::take(&mut self.body);
        let mut flags = 0;
        if s.parent_span_id.is_some() {
            flags |= HAS_PARENT;
        }
        if parent_index.is_some() {
            flags |= PARENT_IN_RECORD;
        }
        if s.trace_id != trace {
            flags |= OTHER_TRACE;
        }
        if s.scope.is_some() {
            flags |= HAS_SCOPE;
        }
        body.push(FRAG_SPAN);
        body.push(flags);
        body.push(s.kind.as_u8() | (status_byte(s.status) << 4));
        body.push(protocol_byte(s.protocol));
        if s.trace_id != trace {
            self.ids.extend_from_slice(&s.trace_id.0);
        }
        self.ids.extend_from_slice(&s.span_id.0);
        match (parent_index, s.parent_span_id) {
            (Some(i), _) => put_varint(&mut body, u64::from(i)),
            (None, Some(p)) => self.ids.extend_from_slice(&p.0),
            (None, None) => {}
        }
        put_varint(
            &mut body,
            zigzag(s.start_ns.wrapping_sub(prev_start) as i64 / unit),
        );
        put_varint(&mut body, s.end_ns.wrapping_sub(s.start_ns) / unit as u64);
        self.put_string(&mut body, &s.name);
        self.put_string(&mut body, &s.service);
        self.put_string(&mut body, &s.status_message);
        if let Some(scope) = &s.scope {
            self.put_string(&mut body, scope);
        }
        self.key_values(&mut body, &s.attributes, 0);
        // Resources are shared by every span of a service: each distinct
        // one is written once.
        let r = match self.last_resource {
            Some((last, r)) if identical(last, &s.resource) => r,
            _ => {
                let mut res = std::mem::take(&mut self.scratch);
                res.clear();
                self.key_values(&mut res, &s.resource, 0);
                let next = self.resources.len() as u32;
                let r = match self.resources.get(&res) {
                    Some(&r) => r,
                    None => {
                        self.resources.insert(res.clone(), next);
                        next
                    }
                };
                self.scratch = res;
                self.last_resource = Some((&s.resource, r));
                r
            }
        };
        put_varint(&mut body, u64::from(r));
        put_varint(&mut body, s.events.len() as u64);
        for e in &s.events {
            put_varint(
                &mut body,
                zigzag(e.time_ns.wrapping_sub(s.start_ns) as i64 / unit),
            );
            self.put_string(&mut body, &e.name);
            self.key_values(&mut body, &e.attributes, 0);
        }
        put_varint(&mut body, s.links.len() as u64);
        for l in &s.links {
            self.ids.extend_from_slice(&l.trace_id.0);
            self.ids.extend_from_slice(&l.span_id.0);
            self.key_values(&mut body, &l.attributes, 0);
        }
        self.body = body;
    }
}

/// 1,000 where every time of the record's spans is a whole microsecond,
/// below 2^62 (so every difference is exact), and no span ends before it
/// starts; else 1.
fn time_unit(fragments: &[&Fragment]) -> i64 {
    let whole = |t: u64| t.is_multiple_of(1_000) && t < 1 << 62;
    let all = fragments.iter().all(|f| match f {
        Fragment::Span(s) => {
            whole(s.start_ns)
                && whole(s.end_ns)
                && s.end_ns >= s.start_ns
                && s.events.iter().all(|e| whole(e.time_ns))
        }
        Fragment::Annotation(_) => true,
    });
    if all { 1_000 } else { 1 }
}

/// Appends the version 2 record of `fragments` (one trace's) to `out`.
pub fn encode(fragments: &[&Fragment], out: &mut Vec<u8>) {
    let trace = fragments.first().map_or(TraceId([0; 16]), |f| f.trace_id());
    // Room for a few distinct strings a fragment up front: the table
    // otherwise grows (and rehashes) five or six times a record.
    let room = (fragments.len() * 6).min(4_096);
    let mut enc = Encoder {
        strings: FxHashMap::with_capacity_and_hasher(room, Default::default()),
        string_list: Vec::with_capacity(room),
        resources: FxHashMap::default(),
        body: Vec::with_capacity(fragments.len() * 160),
        ids: Vec::with_capacity(fragments.len() * 8),
        scratch: Vec::new(),
        last_resource: None,
        unit: time_unit(fragments),
    };
    // Numbers of the spans written so far (of the record's trace): a parent
    // among them is written as its number.
    let mut earlier: FxHashMap<SpanId, u32> = FxHashMap::default();
    let mut spans = 0u32;
    let mut prev_start = 0u64;
    let mut prev_annotation_us = 0i64;
    for f in fragments {
        match f {
            Fragment::Span(s) => {
                let parent = s
                    .parent_span_id
                    .filter(|_| s.trace_id == trace)
                    .and_then(|p| earlier.get(&p).copied());
                enc.span(s, trace, prev_start, parent);
                prev_start = s.start_ns;
                if s.trace_id == trace {
                    earlier.entry(s.span_id).or_insert(spans);
                }
                spans += 1;
            }
            Fragment::Annotation(a) => {
                enc.annotation(a, trace, prev_annotation_us);
                prev_annotation_us = a.timestamp_us;
            }
        }
    }
    let strings_len: usize = enc.string_list.iter().map(|s| s.len() + 2).sum();
    let mut resources: Vec<(&Vec<u8>, u32)> = enc.resources.iter().map(|(r, &n)| (r, n)).collect();
    resources.sort_unstable_by_key(|&(_, n)| n);
    let resources_len: usize = resources.iter().map(|(r, _)| r.len() + 2).sum();
    out.reserve(40 + strings_len + resources_len + enc.ids.len() + enc.body.len());
    out.push(RECORD_V2);
    out.push(u8::from(enc.unit == 1_000));
    out.extend_from_slice(&trace.0);
    put_varint(out, enc.string_list.len() as u64);
    for s in &enc.string_list {
        put_varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    put_varint(out, resources.len() as u64);
    for (r, _) in &resources {
        put_varint(out, r.len() as u64);
        out.extend_from_slice(r);
    }
    put_varint(out, enc.ids.len() as u64);
    out.extend_from_slice(&enc.ids);
    put_varint(out, fragments.len() as u64);
    out.extend_from_slice(&enc.body);
}

/// Reads a version 2 record's body (after the version byte).
struct Decoder<'a> {
    buf: &'a [u8],
    strings: Vec<&'a str>,
}

type Parse<T> = Result<T, String>;

impl<'a> Decoder<'a> {
    fn varint(&mut self) -> Parse<u64> {
        take_varint(&mut self.buf).ok_or_else(|| "truncated or overlong varint".into())
    }

    fn count(&mut self, what: &str) -> Parse<usize> {
        let n = self.varint()?;
        // Every item takes at least a byte: a count past the bytes left is
        // corrupt, and never sizes an allocation.
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.buf.len())
            .ok_or_else(|| format!("{what} count {n} past the record's end"))
    }

    fn bytes(&mut self, n: usize) -> Parse<&'a [u8]> {
        if n > self.buf.len() {
            return Err("truncated".into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Parse<u8> {
        Ok(self.bytes(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Parse<[u8; N]> {
        Ok(self.bytes(N)?.try_into().expect("N bytes"))
    }

    fn string(&mut self) -> Parse<&'a str> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .and_then(|n| self.strings.get(n).copied())
            .ok_or_else(|| format!("string {n} not in the record's table"))
    }

    fn text(&mut self) -> Parse<Text> {
        self.string().map(Text::from)
    }

    fn value(&mut self, depth: usize) -> Parse<Value> {
        if depth > MAX_DEPTH {
            return Err("values nested too deep".into());
        }
        Ok(match self.byte()? {
            V_STR => Value::Str(self.text()?),
            V_FALSE => Value::Bool(false),
            V_TRUE => Value::Bool(true),
            V_INT => Value::Int(unzigzag(self.varint()?)),
            V_DOUBLE => Value::Double(f64::from_bits(u64::from_le_bytes(self.array()?))),
            V_BYTES => {
                let n = self.count("bytes")?;
                Value::Bytes(self.bytes(n)?.to_vec())
            }
            V_ARRAY => {
                let n = self.count("array")?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            V_MAP => Value::Map(self.key_values(depth + 1)?),
            t => return Err(format!("unknown value tag {t}")),
        })
    }

    fn key_values(&mut self, depth: usize) -> Parse<Vec<KeyValue>> {
        let n = self.count("attribute")?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.text()?;
            out.push(KeyValue {
                key,
                value: self.value(depth)?,
            });
        }
        Ok(out)
    }
}

fn protocol_from(b: u8) -> Parse<Protocol> {
    Ok(match b {
        0 => Protocol::PhosphorUdp,
        1 => Protocol::OtlpGrpc,
        2 => Protocol::OtlpHttp,
        3 => Protocol::Zipkin,
        4 => Protocol::Upload,
        _ => return Err(format!("unknown protocol {b}")),
    })
}

fn status_from(b: u8) -> Parse<StatusCode> {
    Ok(match b {
        0 => StatusCode::Unset,
        1 => StatusCode::Ok,
        2 => StatusCode::Error,
        _ => return Err(format!("unknown status {b}")),
    })
}

/// Decodes a version 2 record body (the bytes after the version byte).
#[cfg(test)]
pub fn decode_v2(body: &[u8]) -> Parse<Vec<Fragment>> {
    let mut out = Vec::new();
    decode_v2_into(body, &mut out)?;
    Ok(out)
}

/// `frags` as a record gives them back: every attribute list (and map
/// value) in key order, a repeated key's values in arrival order.
#[cfg(test)]
pub fn in_key_order(frags: &[Fragment]) -> Vec<Fragment> {
    fn value(v: &mut Value) {
        match v {
            Value::Array(items) => items.iter_mut().for_each(value),
            Value::Map(kvs) => list(kvs),
            _ => {}
        }
    }
    fn list(kvs: &mut [KeyValue]) {
        kvs.sort_by(|a, b| a.key.cmp(&b.key));
        kvs.iter_mut().for_each(|kv| value(&mut kv.value));
    }
    let mut out = frags.to_vec();
    for f in &mut out {
        if let Fragment::Span(s) = f {
            list(&mut s.attributes);
            list(&mut s.resource);
            s.events.iter_mut().for_each(|e| list(&mut e.attributes));
            s.links.iter_mut().for_each(|l| list(&mut l.attributes));
        }
    }
    out
}

/// How many fragments a version 2 record body holds, read from its header
/// (the string table and resources are stepped over, not decoded): to size
/// a trace's list once. `None` for a body too damaged to say. The layout
/// is the one [`decode_v2_into`] reads; a test holds the two to the same
/// count.
pub fn count_v2(body: &[u8]) -> Option<usize> {
    let mut d = Decoder {
        buf: body,
        strings: Vec::new(),
    };
    let header = |d: &mut Decoder<'_>| -> Parse<usize> {
        d.byte()?;
        d.array::<16>()?;
        for _ in 0..d.count("string")? {
            let n = d.count("string length")?;
            d.bytes(n)?;
        }
        for _ in 0..d.count("resource")? {
            let n = d.count("resource length")?;
            d.bytes(n)?;
        }
        let n = d.count("ID bytes")?;
        d.bytes(n)?;
        d.count("fragment")
    };
    header(&mut d).ok()
}

/// Decodes a version 2 record body (the bytes after the version byte)
/// onto the end of `out`: a trace's records are read into one list. On an
/// error, `out` may hold part of the record.
pub fn decode_v2_into(body: &[u8], out: &mut Vec<Fragment>) -> Parse<()> {
    let mut d = Decoder {
        buf: body,
        strings: Vec::new(),
    };
    let unit: u64 = match d.byte()? {
        0 => 1,
        1 => 1_000,
        u => return Err(format!("unknown time unit {u}")),
    };
    let trace = TraceId(d.array()?);
    let n_strings = d.count("string")?;
    d.strings.reserve(n_strings);
    for _ in 0..n_strings {
        let n = d.count("string length")?;
        let s = std::str::from_utf8(d.bytes(n)?).map_err(|e| e.to_string())?;
        d.strings.push(s);
    }
    let n_resources = d.count("resource")?;
    let mut resources = Vec::with_capacity(n_resources);
    for _ in 0..n_resources {
        let n = d.count("resource length")?;
        let bytes = d.bytes(n)?;
        let rest = std::mem::replace(&mut d.buf, bytes);
        let kvs = d.key_values(0)?;
        if !d.buf.is_empty() {
            return Err("trailing bytes in a resource".into());
        }
        d.buf = rest;
        resources.push(kvs);
    }
    let n_ids = d.count("ID bytes")?;
    let mut ids = Decoder {
        buf: d.bytes(n_ids)?,
        strings: Vec::new(),
    };
    let n = d.count("fragment")?;
    out.reserve(n);
    let mut span_ids: Vec<SpanId> = Vec::with_capacity(n);
    let mut prev_start = 0u64;
    let mut prev_annotation_us = 0i64;
    for _ in 0..n {
        match d.byte()? {
            FRAG_SPAN => {
                let flags = d.byte()?;
                let kind_status = d.byte()?;
                let protocol = protocol_from(d.byte()?)?;
                let trace_id = if flags & OTHER_TRACE != 0 {
                    TraceId(ids.array()?)
                } else {
                    trace
                };
                let span_id = SpanId(ids.array()?);
                let parent_span_id = match (flags & HAS_PARENT != 0, flags & PARENT_IN_RECORD != 0)
                {
                    (false, _) => None,
                    (true, true) => {
                        let i = d.varint()?;
                        Some(
                            usize::try_from(i)
                                .ok()
                                .and_then(|i| span_ids.get(i).copied())
                                .ok_or_else(|| format!("parent {i} not in the record"))?,
                        )
                    }
                    (true, false) => Some(SpanId(ids.array()?)),
                };
                let start_ns =
                    prev_start.wrapping_add((unzigzag(d.varint()?) as u64).wrapping_mul(unit));
                prev_start = start_ns;
                let end_ns = start_ns.wrapping_add(d.varint()?.wrapping_mul(unit));
                let name = d.text()?;
                let service = d.text()?;
                let status_message = d.text()?;
                let scope = if flags & HAS_SCOPE != 0 {
                    Some(d.string()?.to_string())
                } else {
                    None
                };
                let attributes = d.key_values(0)?;
                let r = d.varint()?;
                let resource = usize::try_from(r)
                    .ok()
                    .and_then(|r| resources.get(r).cloned())
                    .ok_or_else(|| format!("resource {r} not in the record"))?;
                let n_events = d.count("event")?;
                let mut events = Vec::with_capacity(n_events);
                for _ in 0..n_events {
                    let time_ns =
                        start_ns.wrapping_add((unzigzag(d.varint()?) as u64).wrapping_mul(unit));
                    let name = d.text()?;
                    events.push(Event {
                        time_ns,
                        name,
                        attributes: d.key_values(0)?,
                    });
                }
                let n_links = d.count("link")?;
                let mut links = Vec::with_capacity(n_links);
                for _ in 0..n_links {
                    let trace_id = TraceId(ids.array()?);
                    let span_id = SpanId(ids.array()?);
                    links.push(Link {
                        trace_id,
                        span_id,
                        attributes: d.key_values(0)?,
                    });
                }
                span_ids.push(span_id);
                out.push(Fragment::Span(Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    name,
                    kind: SpanKind::from_u8(kind_status & 0x0f),
                    service,
                    start_ns,
                    end_ns,
                    status: status_from(kind_status >> 4)?,
                    status_message,
                    attributes,
                    resource,
                    scope,
                    events,
                    links,
                    protocol,
                }));
            }
            FRAG_ANNOTATION => {
                let n = d.count("annotation length")?;
                let a = postcard::from_bytes(d.bytes(n)?).map_err(|e| e.to_string())?;
                out.push(Fragment::Annotation(a));
            }
            FRAG_ANNOTATION_TABLED => {
                let flags = d.byte()?;
                if flags & !A_FLAGS != 0 {
                    return Err(format!("unknown annotation flags {flags:#x}"));
                }
                let kind = d.byte()?;
                let kind = AnnotationType::from_wire(i32::from(kind))
                    .ok_or_else(|| format!("unknown annotation type {kind}"))?;
                let trace_id = if flags & A_OTHER_TRACE != 0 {
                    TraceId(ids.array()?)
                } else {
                    trace
                };
                let span_id = SpanId(ids.array()?);
                let parent_id = if flags & A_HAS_PARENT != 0 {
                    Some(SpanId(ids.array()?))
                } else {
                    None
                };
                let timestamp_us = prev_annotation_us.wrapping_add(unzigzag(d.varint()?));
                prev_annotation_us = timestamp_us;
                let duration_us = unzigzag(d.varint()?);
                let mut legacy = |flag: u8| -> Parse<Option<String>> {
                    Ok(if flags & flag != 0 {
                        Some(d.string()?.to_string())
                    } else {
                        None
                    })
                };
                let legacy = LegacyIds {
                    trace: legacy(A_LEGACY_TRACE)?,
                    span: legacy(A_LEGACY_SPAN)?,
                    parent: legacy(A_LEGACY_PARENT)?,
                };
                let hostname = d.text()?;
                let origin = d.text()?;
                let destination = d.text()?;
                let payload = d.text()?;
                let n = d.count("attribute")?;
                let mut attributes = Vec::with_capacity(n);
                for _ in 0..n {
                    attributes.push((d.text()?, d.text()?));
                }
                out.push(Fragment::Annotation(Annotation {
                    trace_id,
                    span_id,
                    parent_id,
                    legacy,
                    kind,
                    one_way: flags & A_ONE_WAY != 0,
                    timestamp_us,
                    duration_us,
                    hostname,
                    origin,
                    destination,
                    payload,
                    attributes,
                }));
            }
            t => return Err(format!("unknown fragment tag {t}")),
        }
    }
    if !d.buf.is_empty() {
        return Err("trailing bytes after the last fragment".into());
    }
    if !ids.buf.is_empty() {
        return Err("IDs left over after the last fragment".into());
    }
    Ok(())
}

/// A version 2 record of annotations as store format 5 wrote it: an empty
/// string table, no resources or IDs, each annotation as postcard.
#[cfg(test)]
pub(crate) fn postcard_annotations_v2(trace: TraceId, annotations: &[&Annotation]) -> Vec<u8> {
    let mut old = vec![RECORD_V2, 0];
    old.extend_from_slice(&trace.0);
    old.extend_from_slice(&[0, 0, 0]);
    put_varint(&mut old, annotations.len() as u64);
    for a in annotations {
        old.push(FRAG_ANNOTATION);
        let bytes = postcard::to_allocvec(a).expect("annotations serialize");
        put_varint(&mut old, bytes.len() as u64);
        old.extend_from_slice(&bytes);
    }
    old
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Annotation, AnnotationType, LegacyIds};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value,
        }
    }

    fn span(trace: u8, id: u8, parent: Option<u8>, start_ns: u64) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: "GET /cards/{id}".into(),
            kind: SpanKind::Server,
            service: "cards".into(),
            start_ns,
            end_ns: start_ns.wrapping_add(1_234_000),
            status: StatusCode::Unset,
            status_message: Default::default(),
            attributes: vec![
                kv("http.method", Value::Str("GET".into())),
                kv("http.status_code", Value::Int(200)),
            ],
            resource: vec![kv("host.name", Value::Str("cards-7f9c".into()))],
            scope: None,
            events: Vec::new(),
            links: Vec::new(),
            protocol: Protocol::OtlpGrpc,
        }
    }

    /// Spans and annotations with every kind of value and every field set
    /// one way or another: parents before and after their children, a
    /// parent outside the record, a span of another trace, times that run
    /// backwards, an end before the start.
    fn mixed() -> Vec<Fragment> {
        let mut child_first = span(1, 2, Some(3), 2_000_000_000);
        child_first.kind = SpanKind::Client;
        let mut parent = span(1, 3, None, 1_000_000_000);
        parent.status = StatusCode::Error;
        parent.end_ns += 7; // not a whole microsecond: the record keeps nanoseconds
        parent.status_message = "upstream \"failed\"\n".into();
        parent.scope = Some("io.opentelemetry.http 1.2".into());
        parent.protocol = Protocol::Zipkin;
        parent.attributes = vec![
            kv(
                "s",
                Value::Str("a string longer than twenty-four bytes, é".into()),
            ),
            kv("empty", Value::Str("".into())),
            kv("t", Value::Bool(true)),
            kv("f", Value::Bool(false)),
            kv("min", Value::Int(i64::MIN)),
            kv("max", Value::Int(i64::MAX)),
            kv("neg", Value::Int(-5)),
            kv("pi", Value::Double(std::f64::consts::PI)),
            kv("nan", Value::Double(f64::NAN)),
            kv("negzero", Value::Double(-0.0)),
            kv("bytes", Value::Bytes(vec![0, 1, 255])),
            kv(
                "array",
                Value::Array(vec![
                    Value::Int(1),
                    Value::Str("two".into()),
                    Value::Array(vec![]),
                ]),
            ),
            kv(
                "map",
                Value::Map(vec![
                    kv("inner", Value::Bool(true)),
                    kv("deeper", Value::Map(vec![kv("x", Value::Double(1.5))])),
                ]),
            ),
            kv("s", Value::Str("a duplicate key".into())),
        ];
        parent.resource = vec![
            kv("host.name", Value::Str("other-host".into())),
            kv("service.version", Value::Str("1.2.3".into())),
        ];
        parent.events = vec![
            Event {
                time_ns: parent.start_ns + 10,
                name: "exception".into(),
                attributes: vec![kv("exception.type", Value::Str("IOError".into()))],
            },
            Event {
                // Before the span's start.
                time_ns: parent.start_ns - 500,
                name: "early".into(),
                attributes: Vec::new(),
            },
        ];
        parent.links = vec![Link {
            trace_id: TraceId([9; 16]),
            span_id: SpanId([8; 8]),
            attributes: vec![kv("link.kind", Value::Str("follows".into()))],
        }];
        let after_parent = span(1, 4, Some(3), 900_000_000);
        let mut outside_parent = span(1, 5, Some(77), u64::MAX - 10);
        outside_parent.end_ns = 3; // before its start: kept as it came
        let mut other_trace = span(2, 6, Some(3), 0);
        other_trace.kind = SpanKind::Consumer;
        other_trace.protocol = Protocol::PhosphorUdp;
        let annotation = Annotation {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([7; 8]),
            parent_id: Some(SpanId([3; 8])),
            legacy: LegacyIds {
                trace: Some("legacy-trace".into()),
                span: None,
                parent: None,
            },
            kind: AnnotationType::ClientSend,
            one_way: false,
            timestamp_us: 1_000_001,
            duration_us: 0,
            hostname: "host".into(),
            origin: "api".into(),
            destination: "cards".into(),
            payload: "{}".into(),
            attributes: vec![("method".into(), "GET".into())],
        };
        // Another trace's, every legacy ID, one way, no parent, earlier than
        // the one before it, a negative duration, a repeated key.
        let other = Annotation {
            trace_id: TraceId([2; 16]),
            span_id: SpanId([6; 8]),
            parent_id: None,
            legacy: LegacyIds {
                trace: Some("t".into()),
                span: Some("legacy-span".into()),
                parent: Some("".into()),
            },
            kind: AnnotationType::Timeout,
            one_way: true,
            timestamp_us: -5,
            duration_us: -1,
            hostname: "".into(),
            origin: "api".into(),
            destination: "".into(),
            payload: "a payload longer than twenty-four bytes, é".into(),
            attributes: vec![
                ("method".into(), "GET".into()),
                ("method".into(), "POST".into()),
                ("host".into(), "host".into()),
            ],
        };
        let same_id = span(1, 3, Some(3), 1_000_000_001);
        vec![
            Fragment::Span(child_first),
            Fragment::Span(parent),
            Fragment::Annotation(annotation),
            Fragment::Annotation(other),
            Fragment::Span(after_parent),
            Fragment::Span(outside_parent),
            Fragment::Span(other_trace),
            Fragment::Span(same_id),
        ]
    }

    /// An annotation as the model had it before its strings became
    /// `Text`: records stored then must read back, and postcard of the
    /// model must stay byte for byte the same (annotations were postcard in
    /// records until store format 6, and those records are still read).
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct StringAnnotation {
        trace_id: TraceId,
        span_id: SpanId,
        parent_id: Option<SpanId>,
        legacy: LegacyIds,
        kind: AnnotationType,
        one_way: bool,
        timestamp_us: i64,
        duration_us: i64,
        hostname: String,
        origin: String,
        destination: String,
        payload: String,
        attributes: Vec<(String, String)>,
    }

    #[test]
    fn an_annotation_is_stored_as_it_was_when_its_strings_were_strings() {
        let long = "x".repeat(40); // past what Text keeps inline
        let old = StringAnnotation {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([7; 8]),
            parent_id: None,
            legacy: LegacyIds::default(),
            kind: AnnotationType::ServerSend,
            one_way: true,
            timestamp_us: 1_000_001,
            duration_us: 250,
            hostname: "host-é".into(),
            origin: String::new(),
            destination: long.clone(),
            payload: "{\"k\":1}".into(),
            attributes: vec![("method".into(), long.clone()), (long, String::new())],
        };
        let old_bytes = postcard::to_allocvec(&old).unwrap();
        let now: Annotation = postcard::from_bytes(&old_bytes).unwrap();
        assert_eq!(now.hostname, "host-é");
        assert_eq!(now.destination.len(), 40);
        assert_eq!(now.attributes[1].1, "");
        assert_eq!(postcard::to_allocvec(&now).unwrap(), old_bytes);
        let back: StringAnnotation = postcard::from_bytes(&old_bytes).unwrap();
        assert_eq!(back, old);
    }

    fn encoded(frags: &[Fragment]) -> Vec<u8> {
        let refs: Vec<&Fragment> = frags.iter().collect();
        let mut out = Vec::new();
        encode(&refs, &mut out);
        out
    }

    /// Equality that holds NaN equal to itself (the bits must match).
    fn same(a: &[Fragment], b: &[Fragment]) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn annotations_written_as_postcard_before_format_6_are_still_read() {
        let annotations: Vec<Fragment> = mixed()
            .into_iter()
            .filter(|f| matches!(f, Fragment::Annotation(_)))
            .collect();
        assert_eq!(annotations.len(), 2);
        let refs: Vec<&Annotation> = annotations
            .iter()
            .map(|f| match f {
                Fragment::Annotation(a) => a,
                Fragment::Span(_) => unreachable!("only annotations"),
            })
            .collect();
        let old = postcard_annotations_v2(TraceId([1; 16]), &refs);
        assert_eq!(decode_v2(&old[1..]).unwrap(), annotations);
        // Written now, through the table: smaller, and read back the same.
        let new = encoded(&annotations);
        assert!(new.len() < old.len(), "{} against {}", new.len(), old.len());
        assert_eq!(decode_v2(&new[1..]).unwrap(), annotations);
    }

    #[test]
    fn every_field_and_value_round_trips() {
        let frags = mixed();
        let bytes = encoded(&frags);
        assert_eq!(bytes[0], RECORD_V2);
        assert_eq!(bytes[1], 0, "times in nanoseconds");
        let back = decode_v2(&bytes[1..]).unwrap();
        assert!(same(&back, &in_key_order(&frags)), "{back:#?}");
        let nan = |f: &Fragment| match f {
            Fragment::Span(s) => s
                .attributes
                .iter()
                .find(|kv| kv.key == "nan")
                .map(|kv| matches!(kv.value, Value::Double(d) if d.is_nan())),
            _ => None,
        };
        assert_eq!(back.iter().find_map(nan), Some(true));
        assert_eq!(decode_v2(&encoded(&[])[1..]).unwrap(), Vec::new());
    }

    #[test]
    fn attributes_come_back_in_key_order_a_repeated_key_in_arrival_order() {
        let int = |k: &str, i: i64| kv(k, Value::Int(i));
        let mut s = span(1, 1, None, 0);
        s.attributes = vec![
            int("zeta", 1),
            int("alpha", 2),
            int("mid", 3),
            int("alpha", 4),
            kv(
                "map",
                Value::Map(vec![int("y", 5), int("x", 6), int("y", 7)]),
            ),
        ];
        s.resource = vec![int("r2", 1), int("r1", 2)];
        let back = decode_v2(&encoded(&[Fragment::Span(s)])[1..]).unwrap();
        let Fragment::Span(b) = &back[0] else {
            panic!("a span: {back:?}")
        };
        let keys = |kvs: &[KeyValue]| {
            kvs.iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(&b.attributes),
            [
                "alpha=2",
                "alpha=4",
                "map={x: 6, y: 5, y: 7}",
                "mid=3",
                "zeta=1"
            ]
        );
        assert_eq!(keys(&b.resource), ["r1=2", "r2=1"]);
    }

    #[test]
    fn a_resource_that_differs_from_the_last_only_in_a_zeros_sign_is_kept_apart() {
        let res = |d: f64| {
            vec![
                kv("service.name", Value::Str("api".into())),
                kv("load", Value::Double(d)),
            ]
        };
        let mut frags = Vec::new();
        for (i, d) in [0.0, 0.0, -0.0, f64::NAN, f64::NAN, 0.0]
            .into_iter()
            .enumerate()
        {
            let mut s = span(1, i as u8 + 1, None, 0);
            s.resource = res(d);
            frags.push(Fragment::Span(s));
        }
        let back = decode_v2(&encoded(&frags)[1..]).unwrap();
        assert!(same(&back, &in_key_order(&frags)), "{back:#?}");
        let signs: Vec<bool> = back
            .iter()
            .map(|f| match f {
                Fragment::Span(s) => match s.resource[0].value {
                    Value::Double(d) => d.is_sign_negative(),
                    _ => panic!("a double"),
                },
                _ => panic!("a span"),
            })
            .collect();
        assert_eq!(signs, [false, false, true, false, false, false]);
        assert!(!identical(&res(0.0), &res(-0.0)));
        assert!(identical(&res(f64::NAN), &res(f64::NAN)));
    }

    #[test]
    fn shared_strings_and_resources_are_written_once() {
        let frags: Vec<Fragment> = (0..50)
            .map(|i| {
                Fragment::Span(span(
                    0xab,
                    i + 1,
                    (i > 0).then_some(1),
                    1_000 * u64::from(i),
                ))
            })
            .collect();
        let bytes = encoded(&frags);
        let count = |needle: &[u8]| bytes.windows(needle.len()).filter(|w| *w == needle).count();
        assert_eq!(count(b"GET /cards/{id}"), 1);
        assert_eq!(count(b"cards-7f9c"), 1);
        assert_eq!(count(&[0xab; 16]), 1, "the trace ID once");
        assert_eq!(bytes[1], 1, "times in microseconds");
        let v1 = postcard::to_allocvec(&frags).unwrap().len();
        assert!(bytes.len() * 2 < v1, "{} bytes against {v1}", bytes.len());
        assert_eq!(decode_v2(&bytes[1..]).unwrap(), frags);
    }

    #[test]
    fn values_nested_past_the_limit_are_written_as_a_marker_and_read_back() {
        let mut deep = Value::Int(7);
        for _ in 0..MAX_DEPTH + 10 {
            deep = Value::Array(vec![deep]);
        }
        let mut s = span(1, 1, None, 0);
        s.attributes = vec![kv("deep", deep)];
        let back = decode_v2(&encoded(&[Fragment::Span(s)])[1..]).unwrap();
        let Fragment::Span(b) = &back[0] else {
            panic!("a span")
        };
        let mut v = &b.attributes[0].value;
        let mut levels = 0;
        while let Value::Array(items) = v {
            v = &items[0];
            levels += 1;
        }
        assert_eq!(levels, MAX_DEPTH);
        assert_eq!(v, &Value::Str(TOO_DEEP.into()));
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let bytes = encoded(&mixed());
        for cut in 1..bytes.len() {
            assert!(decode_v2(&bytes[1..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            decode_v2(&long[1..]).unwrap_err(),
            "trailing bytes after the last fragment"
        );
        // Every byte flipped in turn: an error or some record, never a panic
        // or an allocation sized by garbage.
        for i in 1..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0xff;
            let _ = decode_v2(&bad[1..]);
        }
        let mut huge = vec![0u8; 17];
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(
            decode_v2(&huge)
                .unwrap_err()
                .contains("past the record's end")
        );
    }

    #[test]
    fn the_header_counts_the_fragments_decoding_gives() {
        let many: Vec<Fragment> = (0..50)
            .map(|i| Fragment::Span(span(0xab, i + 1, (i > 0).then_some(1), 1_000)))
            .collect();
        for frags in [mixed(), many, vec![Fragment::Span(span(1, 1, None, 0))]] {
            let bytes = encoded(&frags);
            assert_eq!(count_v2(&bytes[1..]), Some(frags.len()));
            assert_eq!(decode_v2(&bytes[1..]).unwrap().len(), frags.len());
        }
        // A damaged header says nothing, and a count is never more than the
        // bytes behind it.
        let bytes = encoded(&mixed());
        for cut in 1..bytes.len() {
            if let Some(n) = count_v2(&bytes[1..cut]) {
                assert!(n <= cut, "cut at {cut}: {n}");
            }
        }
        assert_eq!(count_v2(&[]), None);
    }
}
