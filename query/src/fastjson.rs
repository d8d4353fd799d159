//! The span JSON of `GET /api/v1/traces/{id}`, written by hand: the same
//! bytes `serde_json` writes for [`SpanJson`](crate::api::SpanJson) (a test
//! holds them equal), in about half the time. Most of a trace's JSON is short
//! strings that need no escaping; they are checked a whole string at a time
//! and copied, and the field names are written as they are.

use phosphor_store::model::{KeyValue, Value};

use crate::assemble::{Node, ValueJson, shown_attributes};

/// Whether JSON must escape some byte of `b` (a control character, `"`
/// or `\`). Eight bytes at a time: most strings here are short, too short
/// for the compiler's vector loop to pay.
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte's high bit is set where it is zero (exact only up to the
    // first such byte, which is all an "is there any" needs).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let any = |x: u64| {
        // Bytes below 0x20; bytes with the high bit set are not.
        let low = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        (low | zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\')))) != 0
    };
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        if any(u64::from_le_bytes(c.try_into().expect("eight bytes"))) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&c| c < 0x20 || c == b'"' || c == b'\\')
}

/// Writes `s` as a JSON string.
pub fn string(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("strings serialize");
    }
}

fn uint(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Lowercase hex of an ID into `buf` (twice the ID's length).
pub fn hex_digits(id: &[u8], buf: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in id.iter().enumerate() {
        buf[2 * i] = DIGITS[(b >> 4) as usize];
        buf[2 * i + 1] = DIGITS[(b & 0xf) as usize];
    }
}

fn hex(out: &mut Vec<u8>, id: &[u8]) {
    let start = out.len() + 1;
    out.push(b'"');
    out.resize(start + 2 * id.len(), 0);
    hex_digits(id, &mut out[start..]);
    out.push(b'"');
}

/// Writes `items` as a JSON array, each by `each`.
fn list<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, x);
    }
    out.push(b']');
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// Attributes as one object, keys in order, a later duplicate winning (as
/// [`AttributesJson`](crate::assemble::AttributesJson)).
pub fn attributes(out: &mut Vec<u8>, kvs: &[KeyValue]) {
    out.push(b'{');
    for (i, kv) in shown_attributes(kvs).iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, &kv.key);
        out.push(b':');
        value(out, &kv.value);
    }
    out.push(b'}');
}

fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => string(out, s),
        Value::Bool(b) => boolean(out, *b),
        Value::Int(i) => int(out, *i),
        // Numbers' exact form, arrays and maps: as serde_json writes them.
        other => serde_json::to_writer(&mut *out, &ValueJson(other)).expect("values serialize"),
    }
}

/// Writes span `index` of a trace.
pub fn span(out: &mut Vec<u8>, index: usize, n: &Node) {
    use phosphor_store::model::Side;
    out.extend_from_slice(b"{\"index\":");
    uint(out, index as u64);
    out.extend_from_slice(b",\"spanId\":");
    hex(out, &n.span_id.0);
    if let Some(p) = n.parent_span_id {
        out.extend_from_slice(b",\"parentSpanId\":");
        hex(out, &p.0);
    }
    if let Some(p) = n.parent {
        out.extend_from_slice(b",\"parentIndex\":");
        uint(out, p as u64);
    }
    out.extend_from_slice(b",\"children\":");
    list(out, &n.children, |out, c| uint(out, *c as u64));
    out.extend_from_slice(b",\"depth\":");
    uint(out, n.depth as u64);
    out.extend_from_slice(b",\"name\":");
    string(out, &n.name);
    out.extend_from_slice(b",\"service\":");
    string(out, &n.service);
    out.extend_from_slice(b",\"kind\":");
    string(out, n.kind.as_str());
    out.extend_from_slice(b",\"startTime\":");
    uint(out, n.start_ns / 1_000);
    out.extend_from_slice(b",\"duration\":");
    uint(out, n.duration_ns() / 1_000);
    out.extend_from_slice(b",\"status\":{\"code\":");
    string(out, n.status.as_str());
    out.extend_from_slice(b",\"message\":");
    string(out, &n.status_message);
    out.extend_from_slice(b"},\"error\":");
    boolean(out, n.is_error());
    out.extend_from_slice(b",\"incomplete\":");
    boolean(out, n.incomplete);
    out.extend_from_slice(b",\"placeholder\":");
    boolean(out, n.placeholder);
    if let Some(side) = n.side {
        out.extend_from_slice(b",\"side\":");
        string(
            out,
            match side {
                Side::Client => "client",
                Side::Server => "server",
                Side::Event => "event",
            },
        );
    }
    if !n.annotations.is_empty() {
        out.extend_from_slice(b",\"annotations\":");
        list(out, &n.annotations, |out, a| string(out, a.as_str()));
    }
    out.extend_from_slice(b",\"attributes\":");
    attributes(out, &n.attributes);
    out.extend_from_slice(b",\"resource\":");
    attributes(out, &n.resource);
    out.extend_from_slice(b",\"events\":");
    list(out, &n.events, |out, e| {
        out.extend_from_slice(b"{\"time\":");
        uint(out, e.time_ns / 1_000);
        out.extend_from_slice(b",\"name\":");
        string(out, &e.name);
        out.extend_from_slice(b",\"attributes\":");
        attributes(out, &e.attributes);
        out.push(b'}');
    });
    out.extend_from_slice(b",\"links\":");
    list(out, &n.links, |out, l| {
        out.extend_from_slice(b"{\"traceId\":");
        hex(out, &l.trace_id.0);
        out.extend_from_slice(b",\"spanId\":");
        hex(out, &l.span_id.0);
        out.extend_from_slice(b",\"attributes\":");
        attributes(out, &l.attributes);
        out.push(b'}');
    });
    out.extend_from_slice(b",\"protocols\":");
    list(out, &n.protocols, |out, p| string(out, p.as_str()));
    if let Some(id) = &n.legacy_span_id {
        out.extend_from_slice(b",\"legacySpanId\":");
        string(out, id);
    }
    if let Some(host) = &n.host {
        out.extend_from_slice(b",\"host\":");
        string(out, host);
    }
    out.extend_from_slice(b",\"clockSkewShift\":");
    int(out, n.skew_shift_ns / 1_000);
    out.extend_from_slice(b",\"criticalTime\":");
    uint(out, n.critical_ns / 1_000);
    out.extend_from_slice(b",\"warnings\":");
    list(out, &n.warnings, |out, w| string(out, w));
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_escape_check_agrees_with_the_plain_one_for_every_byte_anywhere() {
        let plain = |b: &[u8]| b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
        for len in 0..20 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    // Bytes around it that need no escape, high and low.
                    let mut b: Vec<u8> =
                        (0..len).map(|i| [b'a', 0xc3, b' ', 0x7f][i % 4]).collect();
                    b[at] = byte;
                    assert_eq!(needs_escape(&b), plain(&b), "{b:?}");
                }
            }
        }
        assert!(!needs_escape(b""));
        let mut out = Vec::new();
        string(&mut out, "tab\there \"quoted\" back\\slash é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string("tab\there \"quoted\" back\\slash é").unwrap()
        );
    }
}
