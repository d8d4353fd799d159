//! Decodes the load tool's OTLP export requests in a loop: prost's decode,
//! then phosphor's model, as the OTLP receivers do; prints the time a span.
//!
//! `cargo run --release --workspace --example decode_otlp [SPANS] [LOOPS]`
//! (default 20,480 spans in requests of 512, 20 loops). Instruction counts:
//! `valgrind --tool=callgrind target/release/examples/decode_otlp 5120 5`.

use phosphor_bench::encode::{otlp_request, otlp_span};
use phosphor_bench::shape::{Generator, Shape};
use phosphor_collector::decode::{self, Limits};
use phosphor_proto::otlp::tonic::collector::trace::v1::ExportTraceServiceRequest;
use phosphor_store::model::Protocol;
use prost::Message;

// The server's allocator, so that allocation costs what it costs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let spans = args.next().and_then(Result::ok).unwrap_or(20_480);
    let loops = args.next().and_then(Result::ok).unwrap_or(20);
    let mut g = Generator::new(Shape::default(), 1);
    let mut pending = Vec::new();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut made = 0;
    while made < spans {
        let t = g.trace();
        for s in t.spans {
            pending.push(otlp_span(&t.id, s));
            made += 1;
            if pending.len() == 512 || made == spans {
                let req = otlp_request(g.services(), std::mem::take(&mut pending));
                bodies.push(req.encode_to_vec());
            }
            if made == spans {
                break;
            }
        }
    }
    let limits = Limits::default();
    let t = std::time::Instant::now();
    let mut kept = 0usize;
    for _ in 0..loops {
        for b in &bodies {
            let req = ExportTraceServiceRequest::decode(b.as_slice()).expect("decodes");
            kept += decode::otlp(req, Protocol::OtlpGrpc, &limits)
                .fragments
                .len();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(kept, spans * loops);
    println!(
        "{spans} spans in {} requests, {loops} loops: {:.2} µs a span",
        bodies.len(),
        secs * 1e6 / (spans * loops) as f64
    );
}
