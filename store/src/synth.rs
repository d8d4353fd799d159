//! Synthetic traces of a realistic shape, for benchmarks and size
//! measurements: services calling each other in a tree, each span with a
//! chosen number of attributes (default 10) drawn from realistic keys and
//! bounded value sets.

use crate::model::{
    Fragment, KeyValue, Protocol, Span, SpanId, SpanKind, StatusCode, TraceId, Value,
};

const SERVICES: [&str; 8] = [
    "api",
    "card-api",
    "card-processing",
    "cards",
    "balance",
    "transactions",
    "merchant",
    "feed",
];
const OPERATIONS: [&str; 8] = [
    "GET /cards/{id}",
    "POST /payments",
    "authorise",
    "reserve",
    "create",
    "lookup",
    "insert",
    "notify",
];

/// The shape of a synthetic trace.
#[derive(Debug, Clone)]
pub struct Shape {
    pub spans: usize,
    pub attributes: usize,
    /// Children per span.
    pub fanout: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            spans: 8,
            attributes: 10,
            fanout: 3,
        }
    }
}

fn attr(i: usize, n: u64) -> KeyValue {
    let (key, value) = match i % 10 {
        0 => (
            "http.method",
            Value::Str(["GET", "POST", "PUT"][(n % 3) as usize].into()),
        ),
        1 => (
            "http.route",
            Value::Str(OPERATIONS[(n % 8) as usize].into()),
        ),
        2 => (
            "http.status_code",
            Value::Int([200, 201, 404, 500][(n % 4) as usize]),
        ),
        3 => (
            "net.peer.name",
            Value::Str(format!("10.0.{}.{}", n % 4, n % 200).into()),
        ),
        4 => ("user.id", Value::Str(format!("user-{}", n % 5_000).into())),
        5 => (
            "region",
            Value::Str(["eu-west-1", "us-east-1"][(n % 2) as usize].into()),
        ),
        6 => ("db.system", Value::Str("postgresql".into())),
        7 => ("retry", Value::Bool(n.is_multiple_of(10))),
        8 => ("payment.amount", Value::Double((n % 10_000) as f64 / 100.0)),
        _ => (
            "thread.name",
            Value::Str(format!("worker-{}", n % 16).into()),
        ),
    };
    let key = if i < 10 {
        key.to_string()
    } else {
        format!("{key}.{i}")
    };
    KeyValue {
        key: key.into(),
        value,
    }
}

/// Span `i` of trace `n`: random-looking, as real clients' span IDs are
/// (sequential IDs would compress unrealistically well).
fn span_id(n: u64, i: usize) -> SpanId {
    let h = xxhash_rust::xxh3::xxh3_64(&[n.to_le_bytes(), (i as u64).to_le_bytes()].concat());
    SpanId((h | 1).to_be_bytes())
}

/// Trace number `n` (its ID derives from it), starting at `start_us`.
pub fn trace(n: u64, start_us: u64, shape: &Shape) -> Vec<Fragment> {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    id[8..].copy_from_slice(&n.to_be_bytes());
    let trace_id = TraceId(id);
    (0..shape.spans)
        .map(|i| {
            let parent = (i > 0).then(|| (i - 1) / shape.fanout.max(1));
            let depth = {
                let (mut d, mut j) = (0u64, i);
                while j > 0 {
                    j = (j - 1) / shape.fanout.max(1);
                    d += 1;
                }
                d
            };
            let h = n.wrapping_mul(31).wrapping_add(i as u64);
            let start = start_us + depth * 150 + i as u64 * 20;
            let dur = 5_000 / (depth + 1) + h % 700;
            Fragment::Span(Span {
                trace_id,
                span_id: span_id(n, i),
                parent_span_id: parent.map(|p| span_id(n, p)),
                name: OPERATIONS[(h % 8) as usize].into(),
                kind: if i == 0 {
                    SpanKind::Server
                } else {
                    SpanKind::Client
                },
                service: SERVICES[(depth as usize + i) % SERVICES.len()].into(),
                start_ns: start * 1_000,
                end_ns: (start + dur) * 1_000,
                status: if h.is_multiple_of(50) {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                status_message: Default::default(),
                attributes: (0..shape.attributes)
                    .map(|a| attr(a, h + a as u64))
                    .collect(),
                resource: vec![],
                scope: None,
                events: vec![],
                links: vec![],
                protocol: Protocol::OtlpGrpc,
            })
        })
        .collect()
}
