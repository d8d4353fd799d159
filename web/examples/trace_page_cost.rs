//! Where the server's time goes for one large trace page: reading the
//! fragments from RocksDB, assembling the tree, planning and rendering the
//! page.
//!
//! `cargo build --workspace --examples`, then
//! `target/debug/examples/trace_page_cost [SPANS] [RUNS]`: a temporary
//! store holding one synthetic trace (`phosphor_store::synth`, 10 attributes
//! a span, fan-out 3) of SPANS spans (default 100,000), timed RUNS times
//! (default 3). Prints one JSON line per run.

use std::time::Instant;

use phosphor_store::model::{Fragment, SpanId};
use phosphor_store::{Store, StoreConfig, synth};

fn main() {
    let mut args = std::env::args().skip(1);
    let spans: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), &StoreConfig::default()).expect("open store");
    let shape = synth::Shape {
        spans,
        ..Default::default()
    };
    let mut fragments = synth::trace(1, store.now_us() - 60_000_000, &shape);
    // synth numbers spans within 16 bits; give larger traces IDs of their own.
    let id_of = |i: usize| SpanId(((1u64 << 40) | (i as u64 + 1)).to_be_bytes());
    for (i, f) in fragments.iter_mut().enumerate() {
        if let Fragment::Span(s) = f {
            s.span_id = id_of(i);
            s.parent_span_id = (i > 0).then(|| id_of((i - 1) / shape.fanout));
        }
    }
    let Some(Fragment::Span(first)) = fragments.first() else {
        unreachable!("synth makes spans")
    };
    let id = first.trace_id;
    for chunk in fragments.chunks(10_000) {
        store.write(chunk).expect("write");
    }
    for run in 0..runs {
        let t = Instant::now();
        let read = store.trace(id).expect("read");
        let read_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let trace = phosphor_query::assemble::assemble(id, read);
        let assemble_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let html = phosphor_web::trace_page_html(&trace);
        let render_ms = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "{{\"spans\":{},\"run\":{run},\"read_ms\":{read_ms:.0},\"assemble_ms\":{assemble_ms:.0},\
             \"plan_and_render_ms\":{render_ms:.0},\"bytes\":{}}}",
            trace.spans.len(),
            html.len()
        );
    }
}
