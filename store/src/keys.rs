//! Key encoding, in one place.
//!
//! Fixed-width fields are big-endian so that byte order is numeric order;
//! strings are length-prefixed (u16, big-endian) so that a shorter string
//! never sorts into the middle of a longer one's range. Every `decode_*`
//! checks length and prefix.

use crate::model::{SpanKind, TraceId};

/// Prefix byte of a service entry in the catalog.
pub const CATALOG_SERVICE: u8 = 0x01;
/// Prefix byte of an operation entry in the catalog.
pub const CATALOG_OPERATION: u8 = 0x02;

/// Key of the store's format version in the meta column family.
pub const META_FORMAT: &[u8] = b"format";

/// Length of the trace ID prefix shared by all of a trace's fragment keys.
pub const TRACE_PREFIX_LEN: usize = 16;

/// `trace_id (16) | seq (8)`: all fragments of a trace under one prefix, in
/// write order.
pub fn fragment_key(trace: TraceId, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&trace.0);
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Inverse of [`fragment_key`].
pub fn decode_fragment_key(k: &[u8]) -> Option<(TraceId, u64)> {
    if k.len() != 24 {
        return None;
    }
    let trace = TraceId(k[..16].try_into().ok()?);
    let seq = u64::from_be_bytes(k[16..].try_into().ok()?);
    Some((trace, seq))
}

/// `seq (8) | trace_id (16)`: read backwards for the most recently written
/// traces.
pub fn recent_key(seq: u64, trace: TraceId) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&seq.to_be_bytes());
    k[8..].copy_from_slice(&trace.0);
    k
}

/// Inverse of [`recent_key`].
pub fn decode_recent_key(k: &[u8]) -> Option<(u64, TraceId)> {
    if k.len() != 24 {
        return None;
    }
    let seq = u64::from_be_bytes(k[..8].try_into().ok()?);
    Some((seq, TraceId(k[8..].try_into().ok()?)))
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // Names longer than u16::MAX are cut at a character boundary.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn take_str(k: &[u8]) -> Option<(&str, &[u8])> {
    let len = u16::from_be_bytes(k.get(..2)?.try_into().ok()?) as usize;
    let s = std::str::from_utf8(k.get(2..2 + len)?).ok()?;
    Some((s, &k[2 + len..]))
}

/// `0x01 | service`.
pub fn service_key(service: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + service.len());
    k.push(CATALOG_SERVICE);
    push_str(&mut k, service);
    k
}

/// Inverse of [`service_key`].
pub fn decode_service_key(k: &[u8]) -> Option<&str> {
    match k.split_first()? {
        (&CATALOG_SERVICE, rest) => match take_str(rest)? {
            (s, []) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// `0x02 | service | kind (1) | operation`: a service's operations sort
/// together, by kind then name.
pub fn operation_key(service: &str, kind: SpanKind, operation: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(6 + service.len() + operation.len());
    k.push(CATALOG_OPERATION);
    push_str(&mut k, service);
    k.push(kind.as_u8());
    push_str(&mut k, operation);
    k
}

/// The prefix of all of one service's operation keys.
pub fn operation_prefix(service: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + service.len());
    k.push(CATALOG_OPERATION);
    push_str(&mut k, service);
    k
}

/// Inverse of [`operation_key`].
pub fn decode_operation_key(k: &[u8]) -> Option<(&str, SpanKind, &str)> {
    match k.split_first()? {
        (&CATALOG_OPERATION, rest) => {
            let (service, rest) = take_str(rest)?;
            let (&kind, rest) = rest.split_first()?;
            match take_str(rest)? {
                (op, []) => Some((service, SpanKind::from_u8(kind), op)),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_keys_sort_by_trace_then_seq() {
        let a = TraceId([1; 16]);
        let b = TraceId([2; 16]);
        let keys = [
            fragment_key(a, 1),
            fragment_key(a, 2),
            fragment_key(a, 256),
            fragment_key(a, u64::MAX),
            fragment_key(b, 0),
        ];
        let mut sorted = keys;
        sorted.sort();
        assert_eq!(sorted, keys);
        assert_eq!(decode_fragment_key(&keys[2]), Some((a, 256)));
        assert_eq!(decode_fragment_key(&keys[2][..23]), None);
    }

    #[test]
    fn recent_keys_sort_by_seq() {
        let keys = [
            recent_key(1, TraceId([9; 16])),
            recent_key(2, TraceId([1; 16])),
            recent_key(1 << 40, TraceId([0; 16])),
        ];
        let mut sorted = keys;
        sorted.sort();
        assert_eq!(sorted, keys);
        assert_eq!(decode_recent_key(&keys[1]), Some((2, TraceId([1; 16]))));
    }

    #[test]
    fn catalog_keys_group_by_service_and_never_interleave() {
        // Length-prefixed names sort shorter first, so "card" never sorts
        // inside "card-api"'s range, nor one service's operations between
        // another's.
        let keys = [
            service_key("card"),
            service_key("cards"),
            service_key("card-api"),
            operation_key("card", SpanKind::Server, "z"),
            operation_key("card-api", SpanKind::Internal, "b"),
            operation_key("card-api", SpanKind::Server, "a"),
            operation_key("card-api", SpanKind::Client, "a"),
        ];
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(sorted, keys.to_vec());
        let prefix = operation_prefix("card");
        assert!(keys[3].starts_with(&prefix));
        assert!(!keys[4].starts_with(&prefix));
        assert_eq!(decode_service_key(&keys[2]), Some("card-api"));
        assert_eq!(
            decode_operation_key(&keys[6]),
            Some(("card-api", SpanKind::Client, "a"))
        );
        assert_eq!(decode_service_key(&keys[4]), None);
        assert_eq!(decode_operation_key(&keys[4][..5]), None);
    }

    #[test]
    fn overlong_names_are_cut_at_a_char_boundary() {
        let long = "é".repeat(40_000);
        let k = service_key(&long);
        let s = decode_service_key(&k).unwrap();
        assert!(s.len() <= u16::MAX as usize && long.starts_with(s));
    }
}
