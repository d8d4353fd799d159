//! What this machine can do: phosphor's store writes against a plain
//! RocksDB write-batch loop writing the same bytes.
//!
//! The default-shape spans (8-span traces, 10 attributes) are encoded once
//! by a phosphor store; then, each into a fresh directory with the
//! write-ahead log on:
//! - phosphor: `Store::write` of the spans (encoding and indexing included);
//! - same bytes: a minimal loop putting the exact keys and values phosphor
//!   wrote (records, index and merge operands as puts) in write batches of
//!   the same grouping, two column families, LZ4, RocksDB's defaults
//!   otherwise;
//! - records only: the same loop with the span records alone (no index).
//!
//! `cargo run --release --workspace --example reference [SPANS]`

use std::time::Instant;

use phosphor_store::model::Fragment;
use phosphor_store::synth::{self, Shape};
use phosphor_store::{EncodedWrite, Store, StoreConfig};

fn plain_db(dir: &std::path::Path) -> rocksdb::DB {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    rocksdb::DB::open_cf(&opts, dir, ["spans", "index"]).expect("open plain RocksDB")
}

fn replay(batches: &[EncodedWrite], with_index: bool) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = plain_db(dir.path());
    let spans = db.cf_handle("spans").expect("cf");
    let index = db.cf_handle("index").expect("cf");
    let t = Instant::now();
    for b in batches {
        let mut wb = rocksdb::WriteBatch::default();
        for (k, v) in &b.records {
            wb.put_cf(&spans, k, v);
        }
        if with_index {
            for (k, v) in b.index_puts.iter().chain(&b.index_merges) {
                wb.put_cf(&index, k, v);
            }
            for k in &b.catalog {
                wb.put_cf(&index, k, []);
            }
        }
        db.write(wb).expect("write");
    }
    t.elapsed().as_secs_f64()
}

fn main() {
    let spans: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let shape = Shape::default();
    let start = 1_763_000_000_000_000u64;
    let traces = spans / shape.spans as u64;
    let batches: Vec<Vec<Fragment>> = (0..traces)
        .collect::<Vec<_>>()
        .chunks(64)
        .map(|c| {
            c.iter()
                .flat_map(|&n| synth::trace(n, start + n * 10, &shape))
                .collect()
        })
        .collect();
    let stored = traces * shape.spans as u64;

    let dir = tempfile::tempdir().expect("temp dir");
    let encoder = Store::open(dir.path(), &StoreConfig::default()).expect("open");
    let encoded: Vec<EncodedWrite> = batches
        .iter()
        .map(|b| encoder.encode(b).expect("encode"))
        .collect();
    drop(encoder);
    let bytes: usize = encoded
        .iter()
        .flat_map(|e| e.records.iter().chain(&e.index_puts).chain(&e.index_merges))
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let keys: usize = encoded
        .iter()
        .map(|e| e.records.len() + e.index_puts.len() + e.index_merges.len())
        .sum();

    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), &StoreConfig::default()).expect("open");
    let t = Instant::now();
    for b in &batches {
        store.write(b).expect("write");
    }
    let phosphor = t.elapsed().as_secs_f64();
    drop(store);
    let same = replay(&encoded, true);
    let records = replay(&encoded, false);

    let rate = |secs: f64| stored as f64 / secs;
    println!(
        "spans: {stored} in batches of 512; {:.1} keys and {:.0} bytes a span written",
        keys as f64 / stored as f64,
        bytes as f64 / stored as f64
    );
    println!(
        "phosphor Store::write:         {:>9.0} spans/s",
        rate(phosphor)
    );
    println!(
        "plain loop, same bytes:        {:>9.0} spans/s (phosphor at {:.0}%)",
        rate(same),
        100.0 * same / phosphor
    );
    println!(
        "plain loop, span records only: {:>9.0} spans/s (phosphor at {:.0}%)",
        rate(records),
        100.0 * records / phosphor
    );
}
