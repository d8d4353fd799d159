//! Key encoding, in one place.
//!
//! Fixed-width fields are big-endian so that byte order is numeric order;
//! strings are length-prefixed (u16, big-endian) so that a shorter string
//! never sorts into the middle of a longer one's range. Every `decode_*`
//! checks length and prefix.

use crate::model::{SpanKind, TraceId};

// First bytes of the keys in a partition's index column family. Search
// index keys end with a block suffix (see [`crate::block`]); their values
// list the block's members that carry the term.

/// A block's facts: `0x00 | suffix`, value [`crate::block::encode_facts`].
pub const IDX_SPAN: u8 = 0x00;
/// `0x01 | service | suffix`.
pub const IDX_SERVICE: u8 = 0x01;
/// `0x02 | service | operation | suffix`.
pub const IDX_SERVICE_OPERATION: u8 = 0x02;
/// `0x03 | key | value | suffix`: span, resource and event attributes.
pub const IDX_ATTRIBUTE: u8 = 0x03;
/// `0x04 | suffix`: spans whose status is error.
pub const IDX_ERROR: u8 = 0x04;
/// `0x05 | operation | suffix`: operation without a service.
pub const IDX_OPERATION: u8 = 0x05;
/// `0x06 | bucket (1) | suffix`: a block's sparse attribute terms (those
/// that list at most [`SPARSE_MAX_MEMBERS`] members), by bucket of their
/// hash ([`sparse_of`]); value [`crate::block::encode_sparse`]. Most
/// attribute values are new in their block, or seen in a span or two of it
/// (lengths, ports, targets, message IDs, a request ID on both sides of a
/// call): a key each would be most of the index's keys and bytes, where a
/// bucket holds dozens of them.
pub const IDX_SPARSE: u8 = 0x06;
/// Prefix byte of a service entry in the catalog.
pub const CATALOG_SERVICE: u8 = 0x10;
/// Prefix byte of an operation entry in the catalog.
pub const CATALOG_OPERATION: u8 = 0x11;
/// `0x12 | key`: an attribute key seen.
pub const CATALOG_ATTR_KEY: u8 = 0x12;
/// `0x13 | key | value`: an attribute value seen.
pub const CATALOG_ATTR_VALUE: u8 = 0x13;
/// `0x20 | bucket start (8) | caller | callee`: merged call and error
/// counts.
pub const DEPENDENCY: u8 = 0x20;
/// `0x30 | trace_id`: the merged trace summary.
pub const SUMMARY: u8 = 0x30;

/// Length of the block suffix every search index key ends with.
pub const SUFFIX_LEN: usize = 8;

/// `u32::MAX - first start in seconds (4) | block sequence, low 32 bits
/// (4)`: index keys sort newest block first (to the second), and one block
/// has the same suffix in every index, so one index's candidate block is
/// checked in another by a point lookup. Blocks are unique within a second
/// (their sequence numbers are consecutive); the exact first start is in
/// the block's facts.
pub fn suffix(min_start_us: u64, block: u64) -> [u8; SUFFIX_LEN] {
    let mut k = [0u8; SUFFIX_LEN];
    k[..4].copy_from_slice(&suffix_from(min_start_us));
    k[4..].copy_from_slice(&(block as u32).to_be_bytes());
    k
}

fn secs(us: u64) -> u32 {
    u32::try_from(us / 1_000_000).unwrap_or(u32::MAX)
}

/// The suffix of `start_us` for seeking: every block whose first span
/// started at or before `start_us` sorts at or after it.
pub fn suffix_from(start_us: u64) -> [u8; 4] {
    (u32::MAX - secs(start_us)).to_be_bytes()
}

/// Inverse of [`suffix`], from the end of an index key: the second (in
/// microseconds) in which the block's first span started, and the low bits
/// of its sequence number.
pub fn decode_suffix(key: &[u8]) -> Option<(u64, u32)> {
    let s = key.get(key.len().checked_sub(SUFFIX_LEN)?..)?;
    let inv = u32::from_be_bytes(s[..4].try_into().ok()?);
    Some((
        u64::from(u32::MAX - inv) * 1_000_000,
        u32::from_be_bytes(s[4..].try_into().ok()?),
    ))
}

/// Attribute values longer than this are indexed by a hash.
pub const HASHED_VALUE_LEN: usize = 24;

/// How an attribute value appears in its index key: itself, or for long
/// values (request IDs, URLs, user agents) a 64-bit hash, so that an index
/// key costs at most a few dozen bytes whatever the value.
pub fn term_value(v: &str) -> std::borrow::Cow<'_, str> {
    if v.len() > HASHED_VALUE_LEN {
        hashed_value(v).as_str().to_string().into()
    } else {
        v.into()
    }
}

/// The hashed form of a long value: a 0x01 byte, then the 64-bit hash as
/// 16 lower-case hex digits.
struct Hashed([u8; 17]);

impl Hashed {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII")
    }
}

fn hashed_value(v: &str) -> Hashed {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = xxhash_rust::xxh3::xxh3_64(v.as_bytes());
    let mut out = [1u8; 17];
    for (i, d) in out[1..].iter_mut().enumerate() {
        *d = HEX[(h >> (60 - 4 * i)) as usize & 0xf];
    }
    Hashed(out)
}

/// `index_key(IDX_ATTRIBUTE, &[key, &term_value(value)], &[])` into a
/// reused buffer, without allocating for a hashed value.
pub fn attribute_term_into(buf: &mut Vec<u8>, key: &str, value: &str) {
    buf.clear();
    buf.push(IDX_ATTRIBUTE);
    push_str(buf, key);
    if value.len() > HASHED_VALUE_LEN {
        push_str(buf, hashed_value(value).as_str());
    } else {
        push_str(buf, value);
    }
}

/// Most members an attribute term lists in a block and still goes into a
/// bucket ([`IDX_SPARSE`]) rather than a key of its own.
pub const SPARSE_MAX_MEMBERS: usize = 4;
/// Buckets a block's sparse attribute terms are spread over: a search for
/// a value reads one bucket a block (1/64 of the block's sparse terms), and
/// a block writes at most this many keys for them.
pub const SPARSE_BUCKETS: usize = 64;
/// Bits of a term's hash kept beside its member in a bucket.
pub const FINGERPRINT_BITS: u32 = 44;

/// Where an attribute term (as [`attribute_term_into`] builds it) is kept
/// when it is sparse in its block: its bucket, from the top bits of a
/// 64-bit hash of the term, and its fingerprint, the hash's low
/// [`FINGERPRINT_BITS`]. Two terms of one bucket share a fingerprint with
/// odds of 2^-44 a comparison: a search over 10 million spans of the load
/// tool's shape compares about 580,000 (odds of a false match about
/// 3 in 100 million).
pub fn sparse_of(term: &[u8]) -> (u8, u64) {
    sparse_from_hash(xxhash_rust::xxh3::xxh3_64(term))
}

/// [`sparse_of`] from the term's hash (`xxh3_64`), where the writer has it.
pub fn sparse_from_hash(h: u64) -> (u8, u64) {
    (
        (h >> (64 - SPARSE_BUCKETS.trailing_zeros())) as u8,
        h & ((1 << FINGERPRINT_BITS) - 1),
    )
}

/// `0x06 | bucket`: the prefix of one bucket's sparse terms in every
/// block.
pub fn sparse_prefix(bucket: u8) -> [u8; 2] {
    [IDX_SPARSE, bucket]
}

/// What the index keeps of a span, to check duration, kind and status
/// without reading the span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanFacts {
    /// Microseconds; `None` while the span's end has not arrived.
    pub duration_us: Option<u64>,
    pub kind: SpanKind,
    pub error: bool,
}

/// An index key: tag, length-prefixed fields, then (if given) the suffix.
pub fn index_key(tag: u8, fields: &[&str], suffix: &[u8]) -> Vec<u8> {
    let mut k =
        Vec::with_capacity(1 + fields.iter().map(|f| f.len() + 2).sum::<usize>() + suffix.len());
    k.push(tag);
    for f in fields {
        push_str(&mut k, f);
    }
    k.extend_from_slice(suffix);
    k
}

/// [`index_key`] without a suffix, into a reused buffer.
pub fn term_into(buf: &mut Vec<u8>, tag: u8, fields: &[&str]) {
    buf.clear();
    buf.push(tag);
    for f in fields {
        push_str(buf, f);
    }
}

/// `0x30 | trace_id`.
pub fn summary_key(trace: TraceId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = SUMMARY;
    k[1..].copy_from_slice(&trace.0);
    k
}

/// `0x20 | bucket | caller | callee`.
pub fn dependency_key(bucket_us: u64, caller: &str, callee: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(13 + caller.len() + callee.len());
    k.push(DEPENDENCY);
    k.extend_from_slice(&bucket_us.to_be_bytes());
    push_str(&mut k, caller);
    push_str(&mut k, callee);
    k
}

/// Inverse of [`dependency_key`].
pub fn decode_dependency_key(k: &[u8]) -> Option<(u64, &str, &str)> {
    match k.split_first()? {
        (&DEPENDENCY, rest) => {
            let bucket = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
            let (caller, rest) = take_str(&rest[8..])?;
            match take_str(rest)? {
                (callee, []) => Some((bucket, caller, callee)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Inverse of [`index_key`] for a catalog key with `N` string fields.
pub fn decode_fields<const N: usize>(k: &[u8], tag: u8) -> Option<[&str; N]> {
    let (&t, mut rest) = k.split_first()?;
    if t != tag {
        return None;
    }
    let mut out = [""; N];
    for f in &mut out {
        let (s, r) = take_str(rest)?;
        *f = s;
        rest = r;
    }
    rest.is_empty().then_some(out)
}

/// Key of the store's format version in the meta column family.
pub const META_FORMAT: &[u8] = b"format";

/// Length of the trace ID prefix shared by all of a trace's fragment keys.
pub const TRACE_PREFIX_LEN: usize = 16;

/// Key of a pin marker in the meta column family: `pin | trace_id`.
pub fn pin_key(trace: TraceId) -> Vec<u8> {
    let mut k = b"pin".to_vec();
    k.extend_from_slice(&trace.0);
    k
}

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
    fn an_attribute_term_is_the_index_key_of_its_term_value() {
        let long = "x".repeat(HASHED_VALUE_LEN + 1);
        let at_limit = "y".repeat(HASHED_VALUE_LEN);
        let mut buf = vec![9, 9, 9];
        for (k, v) in [
            ("http.method", "GET"),
            ("k", ""),
            ("request.id", long.as_str()),
            ("request.id", at_limit.as_str()),
            ("ключ", "значение, длиннее двадцати четырёх байт"),
        ] {
            attribute_term_into(&mut buf, k, v);
            assert_eq!(
                buf,
                index_key(IDX_ATTRIBUTE, &[k, &term_value(v)], &[]),
                "{k}={v}"
            );
        }
    }

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
    fn index_suffixes_sort_newest_first_and_round_trip() {
        let newer = index_key(IDX_SERVICE, &["api"], &suffix(2_000_000, 9));
        let older = index_key(IDX_SERVICE, &["api"], &suffix(1_500_000, 1));
        let same_second = index_key(IDX_SERVICE, &["api"], &suffix(1_000_000, 2));
        let other = index_key(IDX_SERVICE, &["apis"], &suffix(3_000_000, 0));
        assert!(newer < older && older < same_second && same_second < other);
        assert_eq!(decode_suffix(&older), Some((1_000_000, 1)));
        // Seeking from a time lands before every block that started then or
        // earlier.
        let mut seek = index_key(IDX_SERVICE, &["api"], &[]);
        seek.extend_from_slice(&suffix_from(1_999_999));
        assert!(newer < seek && seek < older);
    }

    #[test]
    fn long_attribute_values_are_indexed_by_hash() {
        assert_eq!(term_value("GET"), "GET");
        let long = "Mozilla/5.0 (X11; Linux x86_64) phosphor";
        let h = term_value(long);
        assert_eq!(h.len(), 17);
        assert_eq!(h, term_value(long));
        assert_ne!(h, term_value(&long.replace("phosphor", "phosphorus")));
        // The form stored keys have: 0x01, then the hash in 16 hex digits.
        for v in [long, "x".repeat(25).as_str(), "значение длиннее двадцати"]
        {
            assert_eq!(
                term_value(v),
                format!("\u{1}{:016x}", xxhash_rust::xxh3::xxh3_64(v.as_bytes()))
            );
        }
    }

    #[test]
    fn dependency_keys_sort_by_bucket_and_round_trip() {
        let a = dependency_key(10, "api", "card-api");
        let b = dependency_key(11, "a", "b");
        assert!(a < b);
        assert_eq!(decode_dependency_key(&a), Some((10, "api", "card-api")));
        assert_eq!(decode_dependency_key(&a[..12]), None);
        let k = index_key(CATALOG_ATTR_VALUE, &["http.method", "GET"], &[]);
        assert_eq!(
            decode_fields::<2>(&k, CATALOG_ATTR_VALUE),
            Some(["http.method", "GET"])
        );
        assert_eq!(decode_fields::<2>(&k, CATALOG_ATTR_KEY), None);
        assert_eq!(decode_fields::<1>(&k, CATALOG_ATTR_VALUE), None);
        assert_eq!(decode_fields::<3>(&k, CATALOG_ATTR_VALUE), None);
    }

    #[test]
    fn overlong_names_are_cut_at_a_char_boundary() {
        let long = "é".repeat(40_000);
        let k = service_key(&long);
        let s = decode_service_key(&k).unwrap();
        assert!(s.len() <= u16::MAX as usize && long.starts_with(s));
    }
}
