//! Bytes on disk per stored span of the default shape (8-span traces, 10
//! attributes a span), after a full compaction.
//!
//! `cargo run --release -p phosphor-store --example store_size [SPANS]`

use std::time::{SystemTime, UNIX_EPOCH};

use phosphor_store::model::Fragment;
use phosphor_store::synth::{self, Shape};
use phosphor_store::{Store, StoreConfig};

fn main() {
    let spans: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), &StoreConfig::default()).expect("open");
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let shape = Shape::default();
    let traces = spans / shape.spans as u64;
    let t = std::time::Instant::now();
    for chunk in (0..traces).collect::<Vec<_>>().chunks(64) {
        let batch: Vec<Fragment> = chunk
            .iter()
            .flat_map(|&n| synth::trace(n, start + n * 10, &shape))
            .collect();
        store.write(&batch).expect("write");
    }
    let secs = t.elapsed().as_secs_f64();
    store.flush().expect("flush");
    store.compact().expect("compact");
    let bytes = store.disk_bytes();
    let stored = traces * shape.spans as u64;
    println!("spans: {stored}");
    println!(
        "write: {:.0} spans/s (batches of 512, one writer)",
        stored as f64 / secs
    );
    println!(
        "disk: {bytes} bytes, {:.1} bytes/span",
        bytes as f64 / stored as f64
    );
    for (name, b) in store.column_family_sizes().expect("sizes") {
        println!(
            "  {name}: {b} bytes, {:.1} bytes/span",
            b as f64 / stored as f64
        );
    }
}
