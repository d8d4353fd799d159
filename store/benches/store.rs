//! Store benchmarks: key encoding, write batches, trace reads and search.
//! `cargo bench -p phosphor-store` (figures in BENCHMARKS.md).

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use phosphor_store::model::{Fragment, TraceId};
use phosphor_store::synth::{self, Shape};
use phosphor_store::{SearchQuery, Store, StoreConfig, keys};

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn key_encoding(c: &mut Criterion) {
    let t = TraceId([7; 16]);
    c.bench_function("keys/fragment_key", |b| {
        b.iter(|| keys::fragment_key(black_box(t), black_box(42)))
    });
    c.bench_function("keys/attribute_index_key", |b| {
        b.iter(|| {
            let sfx = keys::suffix(black_box(1_700_000_000_000_000), black_box(42));
            keys::index_key(
                keys::IDX_ATTRIBUTE,
                &["http.route", "GET /cards/{id}"],
                &sfx,
            )
        })
    });
    let k = keys::index_key(keys::IDX_SERVICE, &["card-api"], &keys::suffix(5, 42));
    c.bench_function("keys/decode_suffix", |b| {
        b.iter(|| keys::decode_suffix(black_box(&k)))
    });
}

fn writes(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let shape = Shape::default();
    let start = now_us();
    let mut n = 0u64;
    let mut g = c.benchmark_group("write");
    g.throughput(Throughput::Elements(512));
    g.bench_function("batch_512_spans_10_attrs", |b| {
        b.iter_batched(
            || {
                // 64 traces of 8 spans: 512 spans.
                let batch: Vec<Fragment> = (0..64)
                    .flat_map(|_| {
                        n += 1;
                        synth::trace(n, start + n, &shape)
                    })
                    .collect();
                batch
            },
            |batch| store.write(&batch).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let start = now_us();
    // Background: 20,000 traces of 8 spans; then one trace of each size.
    for chunk in (0..20_000u64).collect::<Vec<_>>().chunks(64) {
        let batch: Vec<Fragment> = chunk
            .iter()
            .flat_map(|&n| synth::trace(n, start + n, &Shape::default()))
            .collect();
        store.write(&batch).unwrap();
    }
    let mut g = c.benchmark_group("trace_by_id");
    for spans in [100usize, 1_000, 10_000] {
        let n = 1_000_000 + spans as u64;
        let frags = synth::trace(
            n,
            start,
            &Shape {
                spans,
                ..Shape::default()
            },
        );
        let id = frags[0].trace_id();
        for chunk in frags.chunks(512) {
            store.write(chunk).unwrap();
        }
        store.flush().unwrap();
        g.throughput(Throughput::Elements(spans as u64));
        g.bench_function(format!("{spans}_spans"), |b| {
            b.iter(|| store.trace(black_box(id)).unwrap())
        });
    }
    g.finish();
    let q = SearchQuery {
        service: Some("card-api".into()),
        start_us: start - 1_000_000,
        end_us: start + 60_000_000,
        limit: 20,
        ..SearchQuery::default()
    };
    c.bench_function("search/service_limit_20", |b| {
        b.iter(|| store.search(black_box(&q)).unwrap())
    });
    let q = SearchQuery {
        service: None,
        attributes: vec![("user.id".into(), "user-42".into())],
        ..q
    };
    c.bench_function("search/attribute_limit_20", |b| {
        b.iter(|| store.search(black_box(&q)).unwrap())
    });
}

criterion_group!(benches, key_encoding, writes, reads);
criterion_main!(benches);
