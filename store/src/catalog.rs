//! The in-memory copy of a partition's catalog keys, with a cap on how many
//! values of one attribute key it keeps (so that an attribute holding
//! request IDs cannot grow the catalog without bound).

use std::collections::{HashMap, HashSet};

use crate::keys;

/// Most values of one attribute key a partition's catalog keeps.
pub const MAX_VALUES_PER_KEY: usize = 200;

/// One partition's catalog keys.
#[derive(Debug, Default)]
pub(crate) struct PartitionCatalog {
    pub keys: HashSet<Vec<u8>>,
    values_per_key: HashMap<String, usize>,
}

impl PartitionCatalog {
    /// Takes a key; `false` when it was known already, or is a value of an
    /// attribute key that has reached its cap.
    /// Allocates only for a key it takes: on the write path nearly every
    /// key offered is known or over its cap.
    pub fn insert(&mut self, k: &[u8]) -> bool {
        if self.keys.contains(k) {
            return false;
        }
        if let Some(f) = keys::decode_fields::<2>(k, keys::CATALOG_ATTR_VALUE) {
            let n = match self.values_per_key.get_mut(f[0]) {
                Some(n) => n,
                None => self.values_per_key.entry(f[0].to_string()).or_default(),
            };
            if *n >= MAX_VALUES_PER_KEY {
                return false;
            }
            *n += 1;
        }
        self.keys.insert(k.to_vec())
    }

    /// The attribute keys that have as many values as the catalog keeps.
    pub fn full_keys(&self) -> rustc_hash::FxHashSet<String> {
        self.values_per_key
            .iter()
            .filter(|(_, n)| **n >= MAX_VALUES_PER_KEY)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Forgets a key taken by [`PartitionCatalog::insert`].
    pub fn remove(&mut self, k: &[u8]) {
        if self.keys.remove(k)
            && let Some(f) = keys::decode_fields::<2>(k, keys::CATALOG_ATTR_VALUE)
            && let Some(n) = self.values_per_key.get_mut(f[0])
        {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_one_key_are_capped() {
        let mut c = PartitionCatalog::default();
        for i in 0..MAX_VALUES_PER_KEY + 50 {
            let k = keys::index_key(
                keys::CATALOG_ATTR_VALUE,
                &["request.id", &i.to_string()],
                &[],
            );
            assert_eq!(c.insert(&k), i < MAX_VALUES_PER_KEY, "{i}");
        }
        // Other keys, and other kinds of entry, are not affected.
        assert!(c.insert(&keys::index_key(
            keys::CATALOG_ATTR_VALUE,
            &["region", "eu"],
            &[]
        )));
        assert!(c.insert(&keys::service_key("api")));
        assert!(!c.insert(&keys::service_key("api")));
        let first = keys::index_key(keys::CATALOG_ATTR_VALUE, &["request.id", "0"], &[]);
        c.remove(&first);
        assert!(c.insert(&keys::index_key(
            keys::CATALOG_ATTR_VALUE,
            &["request.id", "new"],
            &[]
        )));
    }
}
