//! Trace summaries and dependency counters: values merged by RocksDB's merge
//! operator, so that keeping them current as fragments arrive never reads
//! before it writes.

use serde::{Deserialize, Serialize};

use crate::keys;

/// The span a summary calls the trace's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootCandidate {
    pub start_us: u64,
    pub service: String,
    pub name: String,
    /// The span names a parent (so it is a root only for want of one).
    pub has_parent: bool,
}

impl RootCandidate {
    /// What candidates are ordered by: spans without a parent beat spans
    /// with one; then the earliest.
    fn rank(&self) -> (bool, u64, &str, &str) {
        (self.has_parent, self.start_us, &self.service, &self.name)
    }
}

/// What a result list shows of a trace, kept current as fragments arrive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Earliest start, Unix microseconds.
    pub start_us: u64,
    /// Latest end, Unix microseconds.
    pub end_us: u64,
    pub spans: u64,
    pub errors: u64,
    /// Services with their span counts, sorted by name.
    pub services: Vec<(String, u64)>,
    pub root: Option<RootCandidate>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            start_us: u64::MAX,
            end_us: 0,
            spans: 0,
            errors: 0,
            services: Vec::new(),
            root: None,
        }
    }
}

impl Summary {
    /// Duration in microseconds.
    pub fn duration_us(&self) -> u64 {
        self.end_us.saturating_sub(self.start_us)
    }

    /// Widens the time range to cover `[start, end]`.
    pub fn cover(&mut self, start_us: u64, end_us: u64) {
        self.start_us = self.start_us.min(start_us);
        self.end_us = self.end_us.max(end_us.max(start_us));
    }

    /// Counts `n` spans of `service`.
    pub fn add_service(&mut self, service: &str, n: u64) {
        match self
            .services
            .binary_search_by(|(s, _)| s.as_str().cmp(service))
        {
            Ok(i) => self.services[i].1 += n,
            Err(i) => self.services.insert(i, (service.to_string(), n)),
        }
    }

    /// Offers a root candidate.
    pub fn offer_root(&mut self, c: RootCandidate) {
        if self.root.as_ref().is_none_or(|r| c.rank() < r.rank()) {
            self.root = Some(c);
        }
    }

    /// Offers a root candidate by its parts, copying them only when it
    /// wins (on the write path, nearly every span loses).
    pub fn offer_root_parts(&mut self, start_us: u64, service: &str, name: &str, has_parent: bool) {
        if self
            .root
            .as_ref()
            .is_none_or(|r| (has_parent, start_us, service, name) < r.rank())
        {
            self.root = Some(RootCandidate {
                start_us,
                service: service.to_string(),
                name: name.to_string(),
                has_parent,
            });
        }
    }

    /// Folds another partial summary of the same trace into this one.
    pub fn merge(&mut self, other: &Summary) {
        self.start_us = self.start_us.min(other.start_us);
        self.end_us = self.end_us.max(other.end_us);
        self.spans += other.spans;
        self.errors += other.errors;
        for (s, n) in &other.services {
            self.add_service(s, *n);
        }
        if let Some(r) = &other.root {
            self.offer_root(r.clone());
        }
    }

    /// Encoded for storage.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Inverse of [`Summary::encode`].
    pub fn decode(v: &[u8]) -> Option<Summary> {
        postcard::from_bytes(v).ok()
    }
}

/// Calls and errors on a dependency edge.
pub fn encode_counts(calls: u64, errors: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&calls.to_be_bytes());
    v[8..].copy_from_slice(&errors.to_be_bytes());
    v
}

/// Inverse of [`encode_counts`].
pub fn decode_counts(v: &[u8]) -> Option<(u64, u64)> {
    let v: &[u8; 16] = v.try_into().ok()?;
    Some((
        u64::from_be_bytes(v[..8].try_into().ok()?),
        u64::from_be_bytes(v[8..].try_into().ok()?),
    ))
}

/// The index column family's merge operator: summaries merge, dependency
/// counters add; any other key keeps its last value.
pub fn merge_operator(
    key: &[u8],
    existing: Option<&[u8]>,
    operands: &rocksdb::MergeOperands,
) -> Option<Vec<u8>> {
    match key.first() {
        Some(&keys::SUMMARY) => {
            let mut acc = existing.and_then(Summary::decode).unwrap_or_default();
            for op in operands {
                if let Some(s) = Summary::decode(op) {
                    acc.merge(&s);
                }
            }
            Some(acc.encode())
        }
        Some(&keys::DEPENDENCY) => {
            let (mut calls, mut errors) = existing.and_then(decode_counts).unwrap_or((0, 0));
            for op in operands {
                if let Some((c, e)) = decode_counts(op) {
                    calls += c;
                    errors += e;
                }
            }
            Some(encode_counts(calls, errors).to_vec())
        }
        _ => operands
            .into_iter()
            .last()
            .map(<[u8]>::to_vec)
            .or_else(|| existing.map(<[u8]>::to_vec)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(start: u64, has_parent: bool) -> RootCandidate {
        RootCandidate {
            start_us: start,
            service: "s".into(),
            name: format!("n{start}"),
            has_parent,
        }
    }

    #[test]
    fn a_root_offered_by_parts_wins_as_the_whole_candidate_would() {
        let offers = [
            (300, "b", "x", true),
            (200, "b", "y", true),
            (400, "a", "z", false),
            (400, "a", "a", false),
            (100, "c", "w", true),
        ];
        let (mut by_parts, mut whole) = (Summary::default(), Summary::default());
        for (start_us, service, name, has_parent) in offers {
            by_parts.offer_root_parts(start_us, service, name, has_parent);
            whole.offer_root(RootCandidate {
                start_us,
                service: service.into(),
                name: name.into(),
                has_parent,
            });
            assert_eq!(by_parts.root, whole.root);
        }
        let root = by_parts.root.unwrap();
        assert_eq!((root.start_us, root.name.as_str()), (400, "a"));
    }

    #[test]
    fn merging_is_order_independent() {
        let mut a = Summary::default();
        a.cover(100, 200);
        a.spans = 2;
        a.add_service("api", 2);
        a.offer_root(root(150, true));
        let mut b = Summary::default();
        b.cover(50, 120);
        b.spans = 1;
        b.errors = 1;
        b.add_service("cards", 1);
        b.add_service("api", 1);
        b.offer_root(root(160, false));

        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!((ab.start_us, ab.end_us, ab.duration_us()), (50, 200, 150));
        assert_eq!(
            ab.services,
            vec![("api".to_string(), 3), ("cards".to_string(), 1)]
        );
        // A span without a parent is the root, even if it starts later.
        assert_eq!(ab.root.unwrap().start_us, 160);
        assert_eq!(Summary::decode(&a.encode()), Some(a));
    }

    #[test]
    fn counts_round_trip() {
        assert_eq!(decode_counts(&encode_counts(3, 1)), Some((3, 1)));
        assert_eq!(decode_counts(&[1, 2]), None);
    }
}
