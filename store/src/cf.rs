//! Column-family names, in one place.
//!
//! Data is time-partitioned by write time: each partition is a pair of
//! column families, dropped whole when the partition passes retention.

/// Store metadata: format version, pin markers holding the pinned trace's
/// summary.
pub const META: &str = "meta";
/// Fragments of pinned traces, kept past retention: same layout as a
/// partition's spans column family (their summaries are in [`META`]).
pub const PINNED: &str = "pinned";

/// Column families that always exist.
pub const FIXED: [&str; 2] = [META, PINNED];

const SPANS_PREFIX: &str = "spans-";
const INDEX_PREFIX: &str = "index-";

/// Fragments of partition `p`: key [`crate::keys::fragment_key`], value an
/// encoded `Vec<Fragment>`.
pub fn spans(p: u64) -> String {
    format!("{SPANS_PREFIX}{p:012}")
}

/// Search indexes, catalog, dependency counters and trace summaries of
/// partition `p` (told apart by the key's first byte, see [`crate::keys`]).
pub fn index(p: u64) -> String {
    format!("{INDEX_PREFIX}{p:012}")
}

/// The partition a column family belongs to, if it is a partition's.
pub fn partition_of(name: &str) -> Option<u64> {
    name.strip_prefix(SPANS_PREFIX)
        .or_else(|| name.strip_prefix(INDEX_PREFIX))?
        .parse()
        .ok()
}

/// Whether `name` is a partition's spans column family.
pub fn is_spans(name: &str) -> bool {
    name.starts_with(SPANS_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_and_sort_by_time() {
        assert_eq!(partition_of(&spans(42)), Some(42));
        assert_eq!(partition_of(&index(7)), Some(7));
        assert_eq!(partition_of(META), None);
        assert!(spans(9) < spans(10));
        assert!(is_spans(&spans(1)) && !is_spans(&index(1)));
    }
}
