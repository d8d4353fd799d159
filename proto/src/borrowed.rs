//! Phosphor datagrams read in place: each annotation's strings are borrowed
//! from the datagram instead of copied into a `String` each (about twenty
//! allocations an annotation with prost's types). The result is what
//! [`decode_datagram`](crate::phosphor::decode_datagram) gives, field for
//! field, and a datagram prost refuses is refused here too (a test holds the
//! two equal over encoded, truncated and corrupted datagrams).

use crate::phosphor::{Annotation, DatagramError, Framing, framing};

/// One annotation of a datagram, borrowed from it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AnnotationRef<'a> {
    pub trace_id: &'a str,
    pub span_id: &'a str,
    pub parent_id: &'a str,
    pub r#type: i32,
    pub r#async: bool,
    pub timestamp: i64,
    pub duration: i64,
    pub hostname: &'a str,
    pub origin: &'a str,
    pub destination: &'a str,
    pub payload: &'a [u8],
    pub key_value: Vec<(&'a str, &'a str)>,
}

impl<'a> From<&'a Annotation> for AnnotationRef<'a> {
    fn from(a: &'a Annotation) -> AnnotationRef<'a> {
        AnnotationRef {
            trace_id: &a.trace_id,
            span_id: &a.span_id,
            parent_id: &a.parent_id,
            r#type: a.r#type,
            r#async: a.r#async,
            timestamp: a.timestamp,
            duration: a.duration,
            hostname: &a.hostname,
            origin: &a.origin,
            destination: &a.destination,
            payload: &a.payload,
            key_value: a
                .key_value
                .iter()
                .map(|kv| (kv.key.as_str(), kv.value.as_str()))
                .collect(),
        }
    }
}

/// Why bytes are not a phosphor message (prost's reasons, in short).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated")]
    Truncated,
    #[error("invalid varint")]
    Varint,
    #[error("invalid key")]
    Key,
    #[error("a field with the wrong wire type")]
    WireType,
    #[error("a string field that is not UTF-8")]
    Utf8,
    #[error("an unmatched group end")]
    Group,
    #[error("nested too deep")]
    Depth,
}

/// How deep unknown groups may nest (prost's recursion limit).
const MAX_DEPTH: u32 = 100;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const GROUP_START: u8 = 3;
const GROUP_END: u8 = 4;
const FIXED32: u8 = 5;

fn varint(buf: &mut &[u8]) -> Result<u64, WireError> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or(WireError::Truncated)?;
        *buf = rest;
        if i == 9 && b > 1 {
            return Err(WireError::Varint);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(WireError::Varint)
}

/// A field's number and wire type.
fn key(buf: &mut &[u8]) -> Result<(u32, u8), WireError> {
    let k = varint(buf)?;
    let k = u32::try_from(k).map_err(|_| WireError::Key)?;
    let wire = (k & 7) as u8;
    if wire > FIXED32 || k >> 3 == 0 {
        return Err(WireError::Key);
    }
    Ok((k >> 3, wire))
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], WireError> {
    if buf.len() < n {
        return Err(WireError::Truncated);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn bytes<'a>(buf: &mut &'a [u8], wire: u8) -> Result<&'a [u8], WireError> {
    if wire != LEN {
        return Err(WireError::WireType);
    }
    let n = usize::try_from(varint(buf)?).map_err(|_| WireError::Truncated)?;
    take(buf, n)
}

fn string<'a>(buf: &mut &'a [u8], wire: u8) -> Result<&'a str, WireError> {
    std::str::from_utf8(bytes(buf, wire)?).map_err(|_| WireError::Utf8)
}

fn number(buf: &mut &[u8], wire: u8) -> Result<u64, WireError> {
    if wire != VARINT {
        return Err(WireError::WireType);
    }
    varint(buf)
}

/// Skips a field this reader does not know, as prost does.
fn skip(buf: &mut &[u8], field: u32, wire: u8, depth: u32) -> Result<(), WireError> {
    match wire {
        VARINT => varint(buf).map(drop),
        FIXED64 => take(buf, 8).map(drop),
        FIXED32 => take(buf, 4).map(drop),
        LEN => bytes(buf, wire).map(drop),
        GROUP_START => {
            if depth >= MAX_DEPTH {
                return Err(WireError::Depth);
            }
            loop {
                let (f, w) = key(buf)?;
                if w == GROUP_END {
                    return if f == field {
                        Ok(())
                    } else {
                        Err(WireError::Group)
                    };
                }
                skip(buf, f, w, depth + 1)?;
            }
        }
        _ => Err(WireError::Group),
    }
}

/// Reads one `Annotation` message into `a` (cleared first).
fn annotation<'a>(mut buf: &'a [u8], a: &mut AnnotationRef<'a>) -> Result<(), WireError> {
    let mut kvs = std::mem::take(&mut a.key_value);
    kvs.clear();
    *a = AnnotationRef::default();
    while !buf.is_empty() {
        let (field, wire) = key(&mut buf)?;
        match field {
            1 => a.trace_id = string(&mut buf, wire)?,
            2 => a.span_id = string(&mut buf, wire)?,
            3 => a.parent_id = string(&mut buf, wire)?,
            4 => a.r#type = number(&mut buf, wire)? as i32,
            5 => a.r#async = number(&mut buf, wire)? != 0,
            6 => a.timestamp = number(&mut buf, wire)? as i64,
            7 => a.duration = number(&mut buf, wire)? as i64,
            8 => a.hostname = string(&mut buf, wire)?,
            9 => a.origin = string(&mut buf, wire)?,
            10 => a.destination = string(&mut buf, wire)?,
            11 => a.payload = bytes(&mut buf, wire)?,
            12 => kvs.push(key_value(bytes(&mut buf, wire)?)?),
            _ => skip(&mut buf, field, wire, 0)?,
        }
    }
    a.key_value = kvs;
    Ok(())
}

fn key_value(mut buf: &[u8]) -> Result<(&str, &str), WireError> {
    let (mut k, mut v) = ("", "");
    while !buf.is_empty() {
        let (field, wire) = key(&mut buf)?;
        match field {
            1 => k = string(&mut buf, wire)?,
            2 => v = string(&mut buf, wire)?,
            _ => skip(&mut buf, field, wire, 0)?,
        }
    }
    Ok((k, v))
}

/// Calls `each` with every annotation of a datagram, in order (one for a
/// legacy datagram), as it is read. A datagram that is not valid is an
/// error even if `each` has been called for annotations before the fault:
/// a caller keeps nothing of such a datagram, as with prost's decoding,
/// which refuses it whole.
pub fn each_annotation<'a>(
    buf: &'a [u8],
    mut each: impl FnMut(&AnnotationRef<'a>),
) -> Result<(), DatagramError> {
    let mut a = AnnotationRef::default();
    match framing(buf)? {
        Framing::Batch(mut rest) => {
            while !rest.is_empty() {
                let (field, wire) = key(&mut rest)?;
                if field == 1 {
                    annotation(bytes(&mut rest, wire)?, &mut a)?;
                    each(&a);
                } else {
                    skip(&mut rest, field, wire, 0)?;
                }
            }
        }
        Framing::Legacy(m) => {
            annotation(m, &mut a)?;
            each(&a);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phosphor::{
        AnnotationBatch, BATCH_MAGIC, BATCH_VERSION, Datagram, KeyValue, decode_datagram,
        encode_batch,
    };
    use prost::Message;

    /// A small deterministic generator (xorshift), enough to vary fields.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn text(&mut self) -> String {
            let pieces = [
                "",
                "a",
                "span-1",
                "é",
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "x y",
            ];
            (0..self.below(3))
                .map(|_| pieces[self.below(pieces.len() as u64) as usize])
                .collect()
        }
    }

    fn random_annotation(r: &mut Rng) -> Annotation {
        let int = |r: &mut Rng| match r.below(4) {
            0 => 0,
            1 => -1,
            2 => r.next() as i64,
            _ => r.below(1 << 40) as i64,
        };
        Annotation {
            trace_id: r.text(),
            span_id: r.text(),
            parent_id: r.text(),
            r#type: r.below(8) as i32 - 1,
            r#async: r.below(2) == 1,
            timestamp: int(r),
            duration: int(r),
            hostname: r.text(),
            origin: r.text(),
            destination: r.text(),
            payload: r.text().into_bytes(),
            key_value: (0..r.below(4))
                .map(|_| KeyValue {
                    key: r.text(),
                    value: r.text(),
                })
                .collect(),
        }
    }

    /// What prost makes of a datagram, borrowed, or its refusal.
    fn by_prost(buf: &[u8]) -> Option<Vec<Annotation>> {
        match decode_datagram(buf).ok()? {
            Datagram::Legacy(a) => Some(vec![a]),
            Datagram::Batch(v) => Some(v),
        }
    }

    fn by_reader(buf: &[u8]) -> Option<Vec<AnnotationRef<'_>>> {
        let mut out = Vec::new();
        each_annotation(buf, |a| out.push(a.clone())).ok()?;
        Some(out)
    }

    fn agree(buf: &[u8]) {
        let prost = by_prost(buf);
        let prost: Option<Vec<AnnotationRef<'_>>> = prost
            .as_ref()
            .map(|v| v.iter().map(AnnotationRef::from).collect());
        assert_eq!(by_reader(buf), prost, "{buf:?}");
    }

    #[test]
    fn the_reader_agrees_with_prost_on_good_cut_and_corrupted_datagrams() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..2_000 {
            let anns: Vec<Annotation> = (0..1 + r.below(3))
                .map(|_| random_annotation(&mut r))
                .collect();
            let mut datagrams = vec![encode_batch(&anns), anns[0].encode_to_vec()];
            // Fields repeated (the last wins) and fields this reader does
            // not know (skipped): appended to a legacy message.
            let mut extra = anns[0].encode_to_vec();
            extra.extend_from_slice(&random_annotation(&mut r).encode_to_vec());
            extra.extend_from_slice(&[0x98, 0x06, 0x05]); // field 99, varint
            extra.extend_from_slice(&[0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]); // field 100, 64-bit
            extra.extend_from_slice(&[0xab, 0x06, 0x08, 0x01, 0xac, 0x06]); // group 101
            datagrams.push(extra);
            for d in datagrams {
                if d.is_empty() {
                    continue;
                }
                agree(&d);
                // Cut short, and one byte changed.
                agree(&d[..r.below(d.len() as u64) as usize]);
                let mut bad = d.clone();
                let at = r.below(bad.len() as u64) as usize;
                bad[at] = r.next() as u8;
                if round % 2 == 0 {
                    bad[at] |= 0x80;
                }
                agree(&bad);
            }
        }
    }

    #[test]
    fn refusals_match_prost_for_the_edge_cases() {
        for d in [
            &[0x0a, 0x02, 0xff, 0xfe][..], // a string field that is not UTF-8
            &[
                0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02,
            ], // varint past 64 bits
            &[0x0d, 1, 2, 3, 4],           // field 1 as 32-bit: the wrong wire type
            &[0x07],                       // wire type 7
            &[0x02, 0x00],                 // field number 0
            &[0xac, 0x06],                 // a group end with no start
            &[0xab, 0x06, 0xb4, 0x06],     // a group ended by another's end
            &[0x62, 0x04, 0x0a, 0x05, b'k', b'v'], // a key longer than its message
            &[0x00, 0x01, 0x0a, 0x03, 0x30, 0x05], // a batch whose annotation is cut
            &[0x00, 0x01, 0x12, 0x00],     // a batch with an unknown empty field
        ] {
            agree(d);
        }
        let batch = AnnotationBatch::default().encode_to_vec();
        agree(&[&[BATCH_MAGIC, BATCH_VERSION][..], &batch].concat());
    }
}
