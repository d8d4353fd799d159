//! Index blocks: the unit the search indexes point at.
//!
//! A write's indexed spans (and phosphor span sides) are cut into blocks of
//! spans whose starts lie within [`SPREAD_US`] of each other. A block has one
//! facts entry (trace IDs, span IDs, start, duration, kind and status of
//! every member) and one entry per distinct search term (service, service
//! and operation, operation, attribute `key=value`, error) whose value lists
//! the members that carry it. So a term shared by many spans of a write
//! costs one key, not one key per span, and a search reads a block's facts
//! once for all its members.

use crate::keys::SpanFacts;
use crate::model::{SpanId, SpanKind, TraceId};

/// Widest spread of span starts within one block. A search for spans that
/// started in `[start, end]` reads blocks whose first span started in
/// `[start - SPREAD_US, end]`.
pub const SPREAD_US: u64 = 1_000_000;
/// How late after its key's second a block's last span can start: the key
/// holds the first start to the second.
pub const KEY_SLACK_US: u64 = 1_000_000 + SPREAD_US;
/// Most members in one block.
pub const MAX_MEMBERS: usize = 4_096;

const FACTS_V2: u8 = 2;

/// One indexed span (or span side) of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub trace: TraceId,
    pub span: SpanId,
    pub start_us: u64,
    pub facts: SpanFacts,
}

/// Appends `v` as a LEB128 varint (shared with the record format).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Takes a LEB128 varint from the front of `buf`; `None` when truncated
/// or longer than a `u64`.
pub(crate) fn take_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// The facts value of a block whose members are sorted by start.
pub fn encode_facts(members: &[Member]) -> Vec<u8> {
    let min_start_us = members.first().map_or(0, |m| m.start_us);
    let mut traces: Vec<TraceId> = Vec::new();
    let mut trace_index = std::collections::HashMap::new();
    let refs: Vec<u64> = members
        .iter()
        .map(|m| {
            *trace_index.entry(m.trace).or_insert_with(|| {
                traces.push(m.trace);
                traces.len() as u64 - 1
            })
        })
        .collect();
    let mut out = Vec::with_capacity(8 + traces.len() * 16 + members.len() * 14);
    out.push(FACTS_V2);
    put_varint(&mut out, min_start_us);
    put_varint(&mut out, traces.len() as u64);
    for t in &traces {
        out.extend_from_slice(&t.0);
    }
    put_varint(&mut out, members.len() as u64);
    for (m, r) in members.iter().zip(refs) {
        put_varint(&mut out, r);
        out.extend_from_slice(&m.span.0);
        put_varint(&mut out, m.start_us.saturating_sub(min_start_us));
        put_varint(
            &mut out,
            m.facts.duration_us.map_or(0, |d| d.saturating_add(1)),
        );
        out.push(m.facts.kind.as_u8() | (u8::from(m.facts.error) << 7));
    }
    out
}

/// The first start of a block's members, from the header of its facts
/// (every member started within [`SPREAD_US`] after it).
pub fn facts_first_start(v: &[u8]) -> Option<u64> {
    facts_header(v).map(|(start, _)| start)
}

/// The first start of a block's facts, and the bytes after it.
fn facts_header(v: &[u8]) -> Option<(u64, &[u8])> {
    let (&FACTS_V2, mut rest) = v.split_first()? else {
        return None;
    };
    Some((take_varint(&mut rest)?, rest))
}

/// Inverse of [`encode_facts`].
pub fn decode_facts(v: &[u8]) -> Option<Vec<Member>> {
    let (min_start_us, mut v) = facts_header(v)?;
    let n_traces = usize::try_from(take_varint(&mut v)?).ok()?;
    let ids = v.get(..n_traces.checked_mul(16)?)?;
    let traces: Vec<TraceId> = ids
        .chunks_exact(16)
        .map(|c| TraceId(c.try_into().expect("16 bytes")))
        .collect();
    v = &v[ids.len()..];
    let n = usize::try_from(take_varint(&mut v)?).ok()?;
    let mut out = Vec::with_capacity(n.min(MAX_MEMBERS));
    for _ in 0..n {
        let trace = *traces.get(usize::try_from(take_varint(&mut v)?).ok()?)?;
        let span = SpanId(v.get(..8)?.try_into().ok()?);
        v = &v[8..];
        let start_us = min_start_us.checked_add(take_varint(&mut v)?)?;
        let d = take_varint(&mut v)?;
        let (&flags, rest) = v.split_first()?;
        v = rest;
        out.push(Member {
            trace,
            span,
            start_us,
            facts: SpanFacts {
                duration_us: d.checked_sub(1),
                kind: SpanKind::from_u8(flags & 0x7f),
                error: flags & 0x80 != 0,
            },
        });
    }
    v.is_empty().then_some(out)
}

/// A term's members: ascending member numbers, delta-encoded.
pub fn encode_members(members: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(members.len() + 2);
    let mut last = 0u32;
    for (i, &m) in members.iter().enumerate() {
        put_varint(&mut out, u64::from(if i == 0 { m } else { m - last }));
        last = m;
    }
    out
}

/// Inverse of [`encode_members`].
pub fn decode_members(mut v: &[u8]) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    let mut last = 0u32;
    while !v.is_empty() {
        let d = u32::try_from(take_varint(&mut v)?).ok()?;
        last = if out.is_empty() {
            d
        } else {
            last.checked_add(d)?
        };
        out.push(last);
    }
    Some(out)
}

const SPARSE_V1: u8 = 1;
/// Bits of a member number in a sparse bucket's entry.
const MEMBER_BITS: u32 = 12;
/// Bytes of one entry of a sparse bucket: fingerprint and member, packed.
const SPARSE_ENTRY: usize = 7;
const _: () = assert!(MAX_MEMBERS <= 1 << MEMBER_BITS, "a member number fits");
const _: () = assert!(
    crate::keys::FINGERPRINT_BITS + MEMBER_BITS == 8 * SPARSE_ENTRY as u32,
    "an entry is a fingerprint and a member"
);

/// A bucket of a block's sparse terms: a version byte, then an entry for
/// each member of each term, its fingerprint (the high 44 bits) and member
/// (the low 12) in 7 bytes, big-endian, sorted, so that a fingerprint is
/// found by a binary search of the bytes as they are read. Sorts `entries`
/// (fingerprint, member).
pub fn encode_sparse(entries: &mut [(u64, u32)]) -> Vec<u8> {
    entries.sort_unstable();
    let mut out = Vec::with_capacity(1 + entries.len() * SPARSE_ENTRY);
    out.push(SPARSE_V1);
    for &(fp, m) in entries.iter() {
        let packed = (fp << MEMBER_BITS) | u64::from(m);
        out.extend_from_slice(&packed.to_be_bytes()[8 - SPARSE_ENTRY..]);
    }
    out
}

/// How many entries (a term's member each) a bucket of [`encode_sparse`]
/// holds.
pub fn sparse_len(v: &[u8]) -> usize {
    v.len().saturating_sub(1) / SPARSE_ENTRY
}

/// The members listed under fingerprint `fp` in a bucket of
/// [`encode_sparse`], ascending (none when the term is not in the block);
/// `None` when the value is not such a bucket.
pub fn sparse_members(v: &[u8], fp: u64) -> Option<Vec<u32>> {
    let (&SPARSE_V1, entries) = v.split_first()? else {
        return None;
    };
    if entries.len() % SPARSE_ENTRY != 0 {
        return None;
    }
    let entry = |i: usize| {
        let mut b = [0u8; 8];
        b[8 - SPARSE_ENTRY..].copy_from_slice(&entries[i * SPARSE_ENTRY..(i + 1) * SPARSE_ENTRY]);
        u64::from_be_bytes(b)
    };
    let n = entries.len() / SPARSE_ENTRY;
    // The first entry whose fingerprint is not below `fp`.
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if entry(mid) >> MEMBER_BITS < fp {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Some(
        (lo..n)
            .map(entry)
            .take_while(|e| e >> MEMBER_BITS == fp)
            .map(|e| (e & ((1 << MEMBER_BITS) - 1)) as u32)
            .collect(),
    )
}

/// Members in both ascending lists.
pub fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_round_trip() {
        let members = vec![
            Member {
                trace: TraceId([1; 16]),
                span: SpanId([2; 8]),
                start_us: 1_000,
                facts: SpanFacts {
                    duration_us: Some(0),
                    kind: SpanKind::Client,
                    error: true,
                },
            },
            Member {
                trace: TraceId([3; 16]),
                span: SpanId([4; 8]),
                start_us: 1_500,
                facts: SpanFacts {
                    duration_us: None,
                    kind: SpanKind::Server,
                    error: false,
                },
            },
            Member {
                trace: TraceId([1; 16]),
                span: SpanId([5; 8]),
                start_us: 1_000 + SPREAD_US,
                facts: SpanFacts {
                    duration_us: Some(u64::MAX - 1),
                    kind: SpanKind::Internal,
                    error: false,
                },
            },
        ];
        let v = encode_facts(&members);
        assert_eq!(facts_first_start(&v), Some(1_000));
        assert_eq!(decode_facts(&v), Some(members));
        // Truncated or trailing bytes are corrupt, never a panic.
        for cut in 0..v.len() {
            assert_eq!(decode_facts(&v[..cut]), None, "cut at {cut}");
        }
        let mut long = v.clone();
        long.push(0);
        assert_eq!(decode_facts(&long), None);
    }

    #[test]
    fn member_lists_round_trip_and_intersect() {
        for list in [vec![], vec![0], vec![3, 4, 200, 4_095], vec![7, 1_000_000]] {
            assert_eq!(decode_members(&encode_members(&list)), Some(list));
        }
        assert_eq!(decode_members(&[0x80]), None);
        assert_eq!(intersect(&[1, 3, 5, 9], &[0, 3, 4, 9, 10]), vec![3, 9]);
        assert_eq!(intersect(&[1], &[]), Vec::<u32>::new());
    }

    #[test]
    fn a_sparse_bucket_finds_each_fingerprint_and_nothing_else() {
        // Fingerprints of every width up to 44 bits, one shared by two
        // members, the largest member number.
        let mut entries: Vec<(u64, u32)> = vec![
            (0, 7),
            ((1 << 44) - 1, 4_095),
            (0x234_5678_9abc, 3),
            (0x234_5678_9abc, 1),
            (255, 0),
            (1 << 40, 12),
        ];
        let mut expected = entries.clone();
        let v = encode_sparse(&mut entries);
        assert_eq!(v.len(), 1 + 7 * expected.len());
        assert_eq!(sparse_len(&v), expected.len());
        expected.sort_unstable();
        for &(fp, _) in &expected {
            let want: Vec<u32> = expected.iter().filter(|e| e.0 == fp).map(|e| e.1).collect();
            assert_eq!(sparse_members(&v, fp), Some(want), "{fp:#x}");
        }
        for absent in [1, 254, 256, 0x234_5678_9abb, 0x234_5678_9abd, (1 << 44) - 2] {
            assert_eq!(sparse_members(&v, absent), Some(vec![]), "{absent:#x}");
        }
        assert_eq!(sparse_members(&encode_sparse(&mut []), 0), Some(vec![]));
        // Not a bucket: another version, or a cut entry.
        assert_eq!(sparse_members(&[], 0), None);
        assert_eq!(sparse_members(&[2], 0), None);
        assert_eq!(sparse_members(&v[..v.len() - 1], 0), None);
    }
}
