//! Trace-by-ID stages: reading a trace's records from the store, assembling
//! it, and writing its JSON (`GET /api/v1/traces/{id}` is these three plus
//! HTTP). `cargo bench --workspace --bench trace` (figures in BENCHMARKS.md).

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use phosphor_query::api::trace_json_bytes;
use phosphor_query::assemble::{Options, assemble_with};
use phosphor_store::synth::{self, Shape};
use phosphor_store::{Store, StoreConfig};

fn stages(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let mut g = c.benchmark_group("trace");
    for (n, spans) in [(1u64, 1_000usize), (2, 10_000)] {
        let shape = Shape {
            spans,
            ..Shape::default()
        };
        let fragments = synth::trace(n, start, &shape);
        let id = fragments[0].trace_id();
        // Written as a client would send it: in batches of 512 spans.
        for chunk in fragments.chunks(512) {
            store.write(chunk).unwrap();
        }
        g.bench_function(format!("read/{spans}_spans"), |b| {
            b.iter(|| store.trace(black_box(id)).unwrap())
        });
        let read = store.trace(id).unwrap();
        g.bench_function(format!("assemble/{spans}_spans"), |b| {
            b.iter_batched(
                || read.clone(),
                |f| assemble_with(id, f, Options::default()),
                criterion::BatchSize::LargeInput,
            )
        });
        let t = assemble_with(id, read, Options::default());
        g.bench_function(format!("json/{spans}_spans"), |b| {
            b.iter(|| trace_json_bytes(black_box(&t), false))
        });
    }
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
