//! Decodes the load tool's OTLP export requests in a loop, both ways the
//! receivers can: read in place into phosphor's model (protobuf bodies), and
//! prost's decode then the model (as OTLP/JSON bodies are, once parsed);
//! prints the time a span of each.
//!
//! `cargo run --release --workspace --example decode_otlp [SPANS] [LOOPS] [WAY]`
//! (default 20,480 spans in requests of 512, 20 loops, both ways; `WAY` is
//! `in-place` or `prost` for one). Instruction counts:
//! `valgrind --tool=callgrind target/release/examples/decode_otlp 5120 5 in-place`.

use phosphor_bench::encode::{otlp_request, otlp_span};
use phosphor_bench::shape::{Generator, Shape};
use phosphor_collector::decode::{self, Limits};
use phosphor_collector::otlp_proto;
use phosphor_proto::otlp::tonic::collector::trace::v1::ExportTraceServiceRequest;
use phosphor_store::model::Protocol;
use prost::Message;

// The server's allocator, so that allocation costs what it costs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let spans = number(0, 20_480);
    let loops = number(1, 20);
    let way = args.get(2).map_or("both", String::as_str);
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
    let timed = |name: &str, decode: &dyn Fn(&[u8]) -> usize| {
        let t = std::time::Instant::now();
        let mut kept = 0usize;
        for _ in 0..loops {
            for b in &bodies {
                kept += decode(b);
            }
        }
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(kept, spans * loops);
        println!(
            "{name}: {spans} spans in {} requests, {loops} loops: {:.2} µs a span",
            bodies.len(),
            secs * 1e6 / (spans * loops) as f64
        );
    };
    if way != "prost" {
        timed("in place", &|b| {
            otlp_proto::otlp(b, Protocol::OtlpGrpc, &limits)
                .expect("reads")
                .fragments
                .len()
        });
    }
    if way != "in-place" {
        timed("prost, then the model", &|b| {
            let req = ExportTraceServiceRequest::decode(b).expect("decodes");
            decode::otlp(req, Protocol::OtlpGrpc, &limits)
                .fragments
                .len()
        });
    }
}
