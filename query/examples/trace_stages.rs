//! Times the trace-by-ID stages (read, assemble, JSON) in a loop, with the
//! server's allocator, for profiling: `trace_stages <trace> <stage> <loops>`
//! where stage is `read`, `assemble`, `json` or `all`, and trace is a
//! number of spans (a synthetic trace in a fresh store) or
//! `<data dir>:<trace ID>`, a trace in a stopped server's store.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use phosphor_query::api::trace_json_parts;
use phosphor_query::assemble::{Options, assemble_with};
use phosphor_query::buffers::ANSWERS;
use phosphor_store::model::TraceId;
use phosphor_store::synth::{self, Shape};
use phosphor_store::{Store, StoreConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let trace = args.get(1).cloned().unwrap_or_else(|| "1000".into());
    let stage = args.get(2).cloned().unwrap_or_else(|| "all".into());
    let loops: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    assert!(
        ["read", "assemble", "json", "all"].contains(&stage.as_str()),
        "stage {stage:?}: read, assemble, json or all"
    );
    let dir = tempfile::tempdir().unwrap();
    let (store, id) = match trace.split_once(':') {
        Some((data, id)) => {
            let store = Store::open(std::path::Path::new(data), &StoreConfig::default()).unwrap();
            (store, TraceId::parse(id).unwrap().0)
        }
        None => {
            let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
            let start = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_micros() as u64;
            let shape = Shape {
                spans: trace.parse().expect("a number of spans or dir:id"),
                ..Shape::default()
            };
            let fragments = synth::trace(1, start, &shape);
            let id = fragments[0].trace_id();
            for chunk in fragments.chunks(512) {
                store.write(chunk).unwrap();
            }
            (store, id)
        }
    };
    let spans = store.trace(id).unwrap().len();
    if stage == "json" {
        // The JSON alone, over one assembled trace.
        let t = assemble_with(id, store.trace(id).unwrap(), Options::default());
        let started = Instant::now();
        let mut bytes = 0;
        for _ in 0..loops {
            bytes = json(&t);
        }
        let ms = started.elapsed().as_secs_f64() * 1e3 / loops as f64;
        println!("{spans} spans: json {ms:.3} ms ({bytes} bytes)");
        return;
    }
    let mut times = [0u128; 3];
    let mut bytes = 0;
    for _ in 0..loops {
        let t0 = Instant::now();
        let read = store.trace(id).unwrap();
        let t1 = Instant::now();
        if stage == "read" {
            times[0] += (t1 - t0).as_micros();
            continue;
        }
        let t = assemble_with(id, read, Options::default());
        let t2 = Instant::now();
        if stage == "assemble" {
            times[1] += (t2 - t1).as_micros();
            continue;
        }
        bytes = json(&t);
        let t3 = Instant::now();
        times[0] += (t1 - t0).as_micros();
        times[1] += (t2 - t1).as_micros();
        times[2] += (t3 - t2).as_micros();
    }
    let l = loops as f64;
    println!(
        "{spans} spans: read {:.3} ms, assemble {:.3} ms, json {:.3} ms ({bytes} bytes)",
        times[0] as f64 / l / 1e3,
        times[1] as f64 / l / 1e3,
        times[2] as f64 / l / 1e3
    );
}

/// Writes the trace's JSON as the server does and gives its buffers back
/// to the pool, as the server does once they are sent; returns its length.
fn json(t: &phosphor_query::assemble::Trace) -> usize {
    let parts = trace_json_parts(t, false);
    let len = parts.iter().map(Vec::len).sum();
    for p in parts {
        drop(ANSWERS.into_bytes(p));
    }
    len
}
