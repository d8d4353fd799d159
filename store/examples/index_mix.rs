//! What a store's index holds, by kind of key: keys, key bytes and value
//! bytes (before compression); for attribute terms with keys of their own,
//! how many list one member of their block only (format 4 gave every term
//! a key; format 5 keeps the sparse ones in buckets, whose entries are
//! counted); then what each kind of column family takes on disk, from
//! RocksDB's table properties: data blocks (and how many were stored
//! uncompressed, compression saving too little), index and filters.
//! Reads a data directory read-only (a running server may keep it open).
//!
//! `cargo build --release --workspace --example index_mix`, then
//! `target/release/examples/index_mix <data dir>`

use std::collections::BTreeMap;

use phosphor_store::block::decode_members;
use phosphor_store::keys;

fn main() {
    let dir = std::env::args().nth(1).expect("a data directory");
    let opts = rocksdb::Options::default();
    let names = rocksdb::DB::list_cf(&opts, &dir).expect("a RocksDB directory");
    let db = rocksdb::DB::open_cf_for_read_only(&opts, &dir, &names, false).expect("opens");
    // Kind of key: (keys, key bytes, value bytes).
    let mut kinds: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    // Attribute key: (terms, terms with one member).
    let mut attributes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    // Bucket of sparse terms (format 5): the entries it holds.
    let mut sparse: BTreeMap<u8, u64> = BTreeMap::new();
    for name in names.iter().filter(|n| n.starts_with("index-")) {
        let cf = db.cf_handle(name).expect("listed");
        let mut it = db.raw_iterator_cf(&cf);
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let mut kind = format!("{:#04x}", k[0]);
            let term = &k[..k.len().saturating_sub(keys::SUFFIX_LEN)];
            if let Some([key, _]) = keys::decode_fields::<2>(term, keys::IDX_ATTRIBUTE) {
                let key = key.to_string();
                let one = decode_members(v).is_some_and(|m| m.len() == 1);
                kind = format!("{kind} ({})", if one { "one member" } else { "more" });
                let e = attributes.entry(key).or_default();
                e.0 += 1;
                e.1 += u64::from(one);
            }
            if k[0] == keys::IDX_SPARSE {
                // An entry for each member of each sparse term.
                let entries = phosphor_store::block::sparse_len(v) as u64;
                *sparse.entry(k[1]).or_default() += entries;
            }
            let e = kinds.entry(kind).or_default();
            e.0 += 1;
            e.1 += k.len() as u64;
            e.2 += v.len() as u64;
            it.next();
        }
    }
    println!(
        "{:24} {:>12} {:>14} {:>14}",
        "kind", "keys", "key bytes", "value bytes"
    );
    for (k, (n, kb, vb)) in &kinds {
        println!("{k:24} {n:>12} {kb:>14} {vb:>14}");
    }
    if !sparse.is_empty() {
        let entries: u64 = sparse.values().sum();
        let (min, max) = (
            sparse.values().min().expect("some"),
            sparse.values().max().expect("some"),
        );
        println!(
            "\nsparse terms' entries in buckets ({:#04x}): {entries} in {} buckets, {min} to {max} a bucket",
            keys::IDX_SPARSE,
            sparse.len()
        );
    }
    println!(
        "\n{:32} {:>12} {:>12}",
        "attribute key", "terms", "one member"
    );
    for (k, (n, one)) in &attributes {
        println!("{k:32} {n:>12} {one:>12}");
    }

    // Table properties, summed over the partitions of each kind.
    const FIELDS: [(&str, &str); 7] = [
        ("entries", "# entries"),
        ("data blocks", "# data blocks"),
        ("stored raw", "# data blocks compression rejected"),
        ("raw bytes", ""),
        ("data bytes", "data block size"),
        ("index bytes", "index block size"),
        ("filter bytes", "filter block size"),
    ];
    let mut disk: BTreeMap<&str, [u64; 7]> = BTreeMap::new();
    for name in &names {
        let kind = name.split('-').next().unwrap_or(name);
        let cf = db.cf_handle(name).expect("listed");
        let Ok(Some(props)) = db.property_value_cf(&cf, "rocksdb.aggregated-table-properties")
        else {
            continue;
        };
        let value = |field: &str| -> u64 {
            props
                .split("; ")
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| *k == field || k.starts_with(&format!("{field} (")))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let row = disk.entry(kind).or_default();
        for (i, (_, field)) in FIELDS.iter().enumerate() {
            row[i] += if field.is_empty() {
                value("raw key size") + value("raw value size")
            } else {
                value(field)
            };
        }
    }
    print!("\n{:8}", "on disk");
    for (label, _) in FIELDS {
        print!(" {label:>14}");
    }
    println!();
    for (kind, row) in &disk {
        print!("{kind:8}");
        for v in row {
            print!(" {v:>14}");
        }
        println!();
    }
}
