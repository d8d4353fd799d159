//! Synthetic traces of a realistic shape.
//!
//! A trace is a tree of calls between services. The entry call is handled
//! by a front service; every service handling a call makes `width` calls
//! to other services, down to `depth` levels of services. Each call between
//! two services is a client span in the caller and a server span in the
//! callee (OTLP, Zipkin), or four phosphor annotations sharing one span ID
//! (CLIENT_SEND, SERVER_RECV, SERVER_SEND, CLIENT_RECV). Spans carry
//! `attrs` attributes drawn from realistic keys, some of few values
//! (`http.method`, `http.route`) and some of many (`user.id`,
//! `request.id`), events, and errors at `error_rate`.
//!
//! Everything but the IDs and the clock is a function of the seed: the same
//! seed gives the same trees, names and attribute values. IDs also mix in
//! a per-run nonce so that runs against one store never share a trace.

use std::time::{SystemTime, UNIX_EPOCH};

/// What the generated traces look like.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Attributes per span.
    pub attrs: usize,
    /// Mean events per span.
    pub events: f64,
    /// Share of calls that fail (0..=1).
    pub error_rate: f64,
    /// Calls each service makes while handling one.
    pub width: usize,
    /// Levels of services in a trace (1: the entry service alone).
    pub depth: usize,
    /// Services the calls are spread over.
    pub services: usize,
    /// Seed of everything but IDs and timestamps.
    pub seed: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            attrs: 10,
            events: 1.0,
            error_rate: 0.01,
            width: 3,
            depth: 3,
            services: 8,
            seed: 1,
        }
    }
}

impl Shape {
    /// Calls in one default tree: 1 + width + width² + … (depth terms).
    pub fn calls_per_trace(&self) -> usize {
        let mut calls = 0usize;
        let mut level = 1usize;
        for _ in 0..self.depth.max(1) {
            calls = calls.saturating_add(level);
            level = level.saturating_mul(self.width);
        }
        calls
    }

    /// Spans in one default tree (OTLP, Zipkin): the entry server span,
    /// then a client and a server span per call.
    pub fn spans_per_trace(&self) -> usize {
        2 * self.calls_per_trace() - 1
    }

    /// phosphor annotations in one default tree: two for the entry call,
    /// four for every other.
    pub fn annotations_per_trace(&self) -> usize {
        4 * self.calls_per_trace() - 2
    }
}

/// A typed attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Value {
    /// The value as text (phosphor annotations and Zipkin tags are strings).
    pub fn text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
        }
    }
}

/// An attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub key: String,
    pub value: Value,
}

fn attr(key: impl Into<String>, value: Value) -> Attr {
    Attr {
        key: key.into(),
        value,
    }
}

fn s(v: impl Into<String>) -> Value {
    Value::Str(v.into())
}

/// A timestamped event on a span.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time_us: i64,
    pub name: &'static str,
    pub attrs: Vec<Attr>,
}

/// How a span relates to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server,
    Client,
    Internal,
}

/// One span of a generated trace.
#[derive(Debug, Clone)]
pub struct Span {
    pub id: u64,
    pub parent: Option<u64>,
    /// Index into [`Generator::services`].
    pub service: usize,
    /// The service at the other end of a client or server span.
    pub peer: Option<usize>,
    pub name: String,
    pub kind: Kind,
    pub start_us: i64,
    pub end_us: i64,
    pub error: bool,
    pub attrs: Vec<Attr>,
    pub events: Vec<Event>,
    /// The host (pod) the span ran on.
    pub host: String,
}

/// A generated trace.
#[derive(Debug, Clone)]
pub struct Trace {
    pub id: [u8; 16],
    pub spans: Vec<Span>,
    /// The phosphor annotation view of the same tree.
    pub calls: Vec<Call>,
}

/// One call in the phosphor annotation view: its span ID (shared by the
/// client and server sides), its parent call, and its client and server
/// spans by index into [`Trace::spans`] (the entry call has no client side;
/// an internal span has no server side).
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub id: u64,
    pub parent: Option<u64>,
    pub client: Option<usize>,
    pub server: Option<usize>,
}

impl Trace {
    /// The trace ID as 32 lower-case hex digits.
    pub fn hex_id(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A service of the simulated system.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub version: String,
    pub pods: Vec<String>,
    /// (method, route) pairs it serves.
    pub routes: Vec<(&'static str, String)>,
}

const SERVICE_NAMES: [&str; 16] = [
    "api-gateway",
    "auth",
    "accounts",
    "cards",
    "payments",
    "ledger",
    "balance",
    "transactions",
    "merchant",
    "feed",
    "notifications",
    "fraud",
    "pricing",
    "search",
    "profile",
    "ratelimit",
];

const RESOURCES: [&str; 8] = [
    "accounts",
    "cards",
    "payments",
    "transactions",
    "merchants",
    "users",
    "sessions",
    "limits",
];

const USER_AGENTS: [&str; 5] = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15",
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/124.0 Mobile",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
];

const WORDS: [&str; 16] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa",
];

/// Makes traces, one after another.
#[derive(Debug)]
pub struct Generator {
    shape: Shape,
    rng: fastrand::Rng,
    ids: fastrand::Rng,
    services: Vec<Service>,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Generator {
    /// A generator of `shape`; `nonce` goes into the IDs only.
    pub fn new(shape: Shape, nonce: u64) -> Generator {
        let mut rng = fastrand::Rng::with_seed(shape.seed);
        let n = shape.services.max(1);
        let services = (0..n)
            .map(|i| {
                let base = SERVICE_NAMES[i % SERVICE_NAMES.len()];
                let name = if i < SERVICE_NAMES.len() {
                    base.to_string()
                } else {
                    format!("{base}-{}", i / SERVICE_NAMES.len() + 1)
                };
                let resource = RESOURCES[i % RESOURCES.len()];
                let routes = vec![
                    ("GET", format!("/v1/{resource}/{{id}}")),
                    ("GET", format!("/v1/{resource}")),
                    ("POST", format!("/v1/{resource}")),
                    ("PUT", format!("/v1/{resource}/{{id}}")),
                    ("DELETE", format!("/v1/{resource}/{{id}}")),
                ];
                let hash = rng.u32(..);
                Service {
                    pods: (0..4)
                        .map(|p| format!("{name}-{:05x}-{p}", hash & 0xfffff))
                        .collect(),
                    version: format!("1.{}.{}", rng.u8(0..20), rng.u8(0..50)),
                    name,
                    routes,
                }
            })
            .collect();
        Generator {
            ids: fastrand::Rng::with_seed(
                shape.seed ^ nonce.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15,
            ),
            rng,
            shape,
            services,
        }
    }

    /// The services traces are spread over.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The shape being generated.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    fn span_id(&mut self) -> u64 {
        self.ids.u64(1..)
    }

    /// The next trace of the default tree shape, ending about now.
    pub fn trace(&mut self) -> Trace {
        self.build(None)
    }

    /// A trace of exactly `spans` spans (calls down the tree breadth
    /// first, topped up with an internal span where one is left over).
    pub fn trace_with_spans(&mut self, spans: usize) -> Trace {
        self.build(Some(spans.max(1)))
    }

    fn build(&mut self, exact: Option<usize>) -> Trace {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.ids.u64(1..).to_be_bytes());
        id[8..].copy_from_slice(&self.ids.u64(..).to_be_bytes());
        let user = format!("u_{}", self.rng.u32(1..2_000_000));
        let n_services = self.services.len();
        let entry_service = self.rng.usize(..n_services.min(2));

        // The tree of calls: (callee service, parent call, level).
        let mut tree: Vec<(usize, Option<usize>, usize)> = vec![(entry_service, None, 0)];
        let mut internal_leaf = false;
        match exact {
            None => {
                let mut i = 0;
                while i < tree.len() {
                    let (svc, _, level) = tree[i];
                    if level + 1 < self.shape.depth {
                        for _ in 0..self.shape.width {
                            let callee = self.pick_other(svc);
                            tree.push((callee, Some(i), level + 1));
                        }
                    }
                    i += 1;
                }
            }
            Some(n) => {
                // Fan out by `width` (at least 2) breadth first until the
                // span budget is spent: 1 span for the entry, 2 per call.
                let width = self.shape.width.max(2);
                let mut spans = 1;
                let mut i = 0;
                'fill: while spans < n {
                    let (svc, _, level) = tree[i];
                    for _ in 0..width {
                        if spans + 2 > n {
                            internal_leaf = spans < n;
                            break 'fill;
                        }
                        let callee = self.pick_other(svc);
                        tree.push((callee, Some(i), level + 1));
                        spans += 2;
                    }
                    i += 1;
                }
            }
        }

        // Timings: handle each call depth first, children one after another.
        let mut times = vec![(0i64, 0i64, 0i64, 0i64); tree.len()];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); tree.len()];
        for (i, &(_, parent, _)) in tree.iter().enumerate() {
            if let Some(p) = parent {
                children[p].push(i);
            }
        }
        self.time_call(0, 0, &children, &mut times);
        let shift = now_us() - times[0].3;

        let mut trace = Trace {
            id,
            spans: Vec::with_capacity(exact.unwrap_or(2 * tree.len())),
            calls: Vec::with_capacity(tree.len()),
        };
        let mut server_span_of_call = vec![0usize; tree.len()];
        let mut call_ids = vec![0u64; tree.len()];
        for (i, &(svc, parent, _)) in tree.iter().enumerate() {
            let (cs, sr, ss, cr) = times[i];
            let (cs, sr, ss, cr) = (cs + shift, sr + shift, ss + shift, cr + shift);
            let error = self.rng.f64() < self.shape.error_rate;
            let route = self.rng.usize(..self.services[svc].routes.len());
            let request_id = format!("{:016x}", self.rng.u64(..));
            let call_id = self.span_id();
            call_ids[i] = call_id;
            let server_pod = self.rng.usize(..self.services[svc].pods.len());
            let (client_idx, server_parent) = match parent {
                None => (None, None),
                Some(p) => {
                    let caller = tree[p].0;
                    let parent_server = &trace.spans[server_span_of_call[p]];
                    let caller_host = parent_server.host.clone();
                    let parent_id = parent_server.id;
                    let attrs = self.attrs(AttrCtx {
                        side: Kind::Client,
                        service: caller,
                        peer: Some(svc),
                        route,
                        error,
                        user: &user,
                        request_id: &request_id,
                        peer_pod: server_pod,
                    });
                    let events = self.events(cs, cr, false);
                    let (method, path) = &self.services[svc].routes[route];
                    trace.spans.push(Span {
                        id: call_id,
                        parent: Some(parent_id),
                        service: caller,
                        peer: Some(svc),
                        name: format!("{method} {path}"),
                        kind: Kind::Client,
                        start_us: cs,
                        end_us: cr,
                        error,
                        attrs,
                        events,
                        host: caller_host,
                    });
                    (Some(trace.spans.len() - 1), Some(call_id))
                }
            };
            let caller = parent.map(|p| tree[p].0);
            let attrs = self.attrs(AttrCtx {
                side: Kind::Server,
                service: svc,
                peer: caller,
                route,
                error,
                user: &user,
                request_id: &request_id,
                peer_pod: 0,
            });
            let events = self.events(sr, ss, error);
            // The entry call has no client side: its server span takes the
            // call's ID.
            let server_id = if parent.is_none() {
                call_id
            } else {
                self.span_id()
            };
            let (method, path) = &self.services[svc].routes[route];
            trace.spans.push(Span {
                id: server_id,
                parent: server_parent,
                service: svc,
                peer: caller,
                name: format!("{method} {path}"),
                kind: Kind::Server,
                start_us: sr,
                end_us: ss,
                error,
                attrs,
                events,
                host: self.services[svc].pods[server_pod].clone(),
            });
            server_span_of_call[i] = trace.spans.len() - 1;
            trace.calls.push(Call {
                id: call_id,
                parent: parent.map(|p| call_ids[p]),
                client: client_idx,
                server: Some(trace.spans.len() - 1),
            });
        }
        if internal_leaf {
            let last = server_span_of_call[tree.len() - 1];
            let parent = trace.spans[last].clone();
            let start = parent.start_us + (parent.end_us - parent.start_us) / 4;
            let end = start + (parent.end_us - parent.start_us) / 4;
            let id = self.span_id();
            let mut attrs = vec![
                attr("db.system", s("postgresql")),
                attr("db.operation", s("SELECT")),
            ];
            attrs.truncate(self.shape.attrs);
            trace.spans.push(Span {
                id,
                parent: Some(parent.id),
                service: parent.service,
                peer: None,
                name: "SELECT ledger.entries".into(),
                kind: Kind::Internal,
                start_us: start,
                end_us: end,
                error: false,
                attrs,
                events: vec![],
                host: parent.host,
            });
            trace.calls.push(Call {
                id,
                parent: Some(call_ids[tree.len() - 1]),
                client: Some(trace.spans.len() - 1),
                server: None,
            });
        }
        trace
    }

    fn pick_other(&mut self, svc: usize) -> usize {
        let n = self.services.len();
        if n < 2 {
            return 0;
        }
        let other = self.rng.usize(..n - 1);
        if other >= svc { other + 1 } else { other }
    }

    /// Latency around `mean_us` with a long tail.
    fn latency(&mut self, mean_us: i64) -> i64 {
        let jitter = 0.5 + self.rng.f64();
        let tail = if self.rng.u8(..100) < 2 { 8.0 } else { 1.0 };
        ((mean_us as f64) * jitter * tail).max(1.0) as i64
    }

    /// Sets `(client send, server recv, server send, client recv)` of call
    /// `i`, sent at `at`, and of its children; returns its client receive.
    fn time_call(
        &mut self,
        i: usize,
        at: i64,
        children: &[Vec<usize>],
        times: &mut [(i64, i64, i64, i64)],
    ) -> i64 {
        let net = if i == 0 { 0 } else { self.latency(400) };
        let sr = at + net;
        let own = self.latency(2_000);
        let mut t = sr + own / 2;
        for &c in &children[i] {
            t = self.time_call(c, t, children, times) + self.latency(50);
        }
        let ss = t + own / 2;
        let cr = ss + if i == 0 { 0 } else { self.latency(400) };
        times[i] = (at, sr, ss, cr);
        cr
    }

    fn events(&mut self, start: i64, end: i64, error: bool) -> Vec<Event> {
        let whole = self.shape.events.max(0.0);
        let mut n = whole.floor() as usize;
        if self.rng.f64() < whole.fract() {
            n += 1;
        }
        let span = (end - start).max(1);
        let mut out = Vec::with_capacity(n + usize::from(error));
        for _ in 0..n {
            let time_us = start + self.rng.i64(0..span);
            out.push(match self.rng.u8(..4) {
                0 => Event {
                    time_us,
                    name: "cache.miss",
                    attrs: vec![attr(
                        "cache.key",
                        s(format!("acct:{}", self.rng.u32(..100_000))),
                    )],
                },
                1 => Event {
                    time_us,
                    name: "retry",
                    attrs: vec![attr("retry.attempt", Value::Int(self.rng.i64(1..4)))],
                },
                2 => Event {
                    time_us,
                    name: "message",
                    attrs: vec![
                        attr("message.type", s("SENT")),
                        attr("message.id", Value::Int(self.rng.i64(1..1_000))),
                    ],
                },
                _ => Event {
                    time_us,
                    name: "log",
                    attrs: vec![attr("log.message", s("loaded account state"))],
                },
            });
        }
        if error {
            out.push(Event {
                time_us: end,
                name: "exception",
                attrs: vec![
                    attr(
                        "exception.type",
                        s(["TimeoutError", "ConnectionReset", "InsufficientFunds"]
                            [self.rng.usize(..3)]),
                    ),
                    attr("exception.message", s("upstream call failed")),
                ],
            });
        }
        out
    }

    fn attrs(&mut self, c: AttrCtx<'_>) -> Vec<Attr> {
        let n = self.shape.attrs;
        let mut out = Vec::with_capacity(n);
        let (method, route) = {
            let target = c
                .peer
                .filter(|_| c.side == Kind::Client)
                .unwrap_or(c.service);
            let (m, r) = &self.services[target].routes[c.route];
            (*m, r.clone())
        };
        for i in 0..n {
            let a = match i {
                0 => attr("http.method", s(method)),
                1 => attr("http.route", s(route.clone())),
                2 => attr(
                    "http.status_code",
                    Value::Int(if c.error {
                        500
                    } else if self.rng.u8(..100) < 2 {
                        404
                    } else if method == "POST" {
                        201
                    } else {
                        200
                    }),
                ),
                3 => attr(
                    "net.peer.name",
                    s(match (c.side, c.peer) {
                        (Kind::Client, Some(p)) => {
                            let pods = &self.services[p].pods;
                            pods[c.peer_pod % pods.len()].clone()
                        }
                        (_, Some(p)) => {
                            let pods = &self.services[p].pods;
                            pods[self.rng.usize(..pods.len())].clone()
                        }
                        _ => format!("203.0.113.{}", self.rng.u8(1..255)),
                    }),
                ),
                4 => attr("user.id", s(c.user)),
                5 => attr(
                    "http.target",
                    s(route.replace("{id}", &format!("{:08x}", self.rng.u32(..)))),
                ),
                6 => attr("request.id", s(c.request_id)),
                7 => attr(
                    "net.peer.port",
                    Value::Int(if c.side == Kind::Client {
                        8080
                    } else {
                        self.rng.i64(32_768..61_000)
                    }),
                ),
                8 => attr(
                    "http.user_agent",
                    s(match c.peer {
                        None => USER_AGENTS[self.rng.usize(..USER_AGENTS.len())].to_string(),
                        Some(p) if c.side == Kind::Server => {
                            format!(
                                "{}/{} go-http-client/1.1",
                                self.services[p].name, self.services[p].version
                            )
                        }
                        Some(_) => format!(
                            "{}/{} go-http-client/1.1",
                            self.services[c.service].name, self.services[c.service].version
                        ),
                    }),
                ),
                9 => attr(
                    "http.response_content_length",
                    Value::Int(self.rng.i64(64..65_536)),
                ),
                10 => attr("cache.hit", Value::Bool(self.rng.bool())),
                11 => attr(
                    "region",
                    s(["eu-west-1", "eu-west-2", "us-east-1"][self.rng.usize(..3)]),
                ),
                _ => attr(
                    format!("app.attr.{i}"),
                    s(WORDS[self.rng.usize(..WORDS.len())]),
                ),
            };
            out.push(a);
        }
        out
    }
}

struct AttrCtx<'a> {
    side: Kind,
    service: usize,
    peer: Option<usize>,
    route: usize,
    error: bool,
    user: &'a str,
    request_id: &'a str,
    peer_pod: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_trees_have_the_counted_spans_and_consistent_timings() {
        let shape = Shape::default();
        assert_eq!(shape.calls_per_trace(), 13);
        assert_eq!(shape.spans_per_trace(), 25);
        assert_eq!(shape.annotations_per_trace(), 50);
        let mut g = Generator::new(shape.clone(), 7);
        for _ in 0..50 {
            let t = g.trace();
            assert_eq!(t.spans.len(), shape.spans_per_trace());
            assert_eq!(t.calls.len(), shape.calls_per_trace());
            let ids: std::collections::HashSet<u64> = t.spans.iter().map(|s| s.id).collect();
            assert_eq!(ids.len(), t.spans.len(), "span IDs are unique");
            for sp in &t.spans {
                assert!(sp.start_us <= sp.end_us, "{sp:?}");
                assert_eq!(sp.attrs.len(), 10);
                if let Some(p) = sp.parent {
                    let parent = t.spans.iter().find(|x| x.id == p).expect("parent");
                    assert!(parent.start_us <= sp.start_us, "{parent:?} {sp:?}");
                    assert!(sp.end_us <= parent.end_us, "{parent:?} {sp:?}");
                }
            }
            assert_eq!(t.spans.iter().filter(|s| s.parent.is_none()).count(), 1);
        }
    }

    #[test]
    fn exact_sizes_are_exact() {
        let mut g = Generator::new(Shape::default(), 1);
        for n in [1, 2, 3, 100, 1_000, 10_000] {
            let t = g.trace_with_spans(n);
            assert_eq!(t.spans.len(), n, "{n}");
            assert_eq!(t.spans.iter().filter(|s| s.parent.is_none()).count(), 1);
        }
    }

    #[test]
    fn the_seed_decides_content_and_the_nonce_only_ids() {
        let a = Generator::new(Shape::default(), 1).trace();
        let b = Generator::new(Shape::default(), 2).trace();
        let c = Generator::new(
            Shape {
                seed: 2,
                ..Shape::default()
            },
            1,
        )
        .trace();
        assert_ne!(a.id, b.id);
        let names = |t: &Trace| t.spans.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        let attrs = |t: &Trace| t.spans.iter().map(|s| s.attrs.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b));
        assert_eq!(attrs(&a), attrs(&b));
        assert_ne!(attrs(&a), attrs(&c));
    }

    #[test]
    fn attributes_mix_few_and_many_values() {
        let mut g = Generator::new(
            Shape {
                attrs: 14,
                ..Shape::default()
            },
            3,
        );
        let mut methods = std::collections::HashSet::new();
        let mut requests = std::collections::HashSet::new();
        for _ in 0..200 {
            for sp in g.trace().spans {
                assert_eq!(sp.attrs.len(), 14);
                methods.insert(sp.attrs[0].value.text());
                requests.insert(sp.attrs[6].value.text());
                assert_eq!(sp.attrs[13].key, "app.attr.13");
            }
        }
        assert!(methods.len() <= 4, "{methods:?}");
        assert!(requests.len() > 2_000, "{}", requests.len());
    }
}
