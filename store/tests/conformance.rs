//! The store conformance suite, modelled on Jaeger's storage integration
//! tests and Zipkin's ITSpanStore: what any phosphor store must do. Each
//! search fixture states the trace IDs it expects, newest first.

use std::sync::Arc;
use std::time::Duration;

use phosphor_store::model::{
    Event, Fragment, KeyValue, Protocol, Span, SpanId, SpanKind, StatusCode, TraceId,
};
use phosphor_store::{ManualClock, SearchQuery, Store, StoreConfig};

const DAY_US: u64 = 86_400_000_000;
const T0: u64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

/// A store on a manual clock at T0, with one-day partitions.
fn open(dir: &std::path::Path) -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let config = StoreConfig {
        partition: Duration::from_secs(86_400),
        ..StoreConfig::default()
    };
    (
        Store::open_with_clock(dir, &config, clock.clone()).unwrap(),
        clock,
    )
}

fn tid(n: u8) -> TraceId {
    let mut b = [0u8; 16];
    b[15] = n;
    b[0] = 0xab;
    TraceId(b)
}

#[derive(Clone)]
struct S {
    trace: u8,
    id: u8,
    parent: Option<u8>,
    service: &'static str,
    name: &'static str,
    kind: SpanKind,
    start_us: u64,
    dur_us: u64,
    error: bool,
    attrs: Vec<(&'static str, &'static str)>,
    resource: Vec<(&'static str, &'static str)>,
    event_attrs: Vec<(&'static str, &'static str)>,
}

fn s(trace: u8, id: u8, parent: Option<u8>, service: &'static str, name: &'static str) -> S {
    S {
        trace,
        id,
        parent,
        service,
        name,
        kind: SpanKind::Server,
        start_us: 0,
        dur_us: 0,
        error: false,
        attrs: vec![],
        resource: vec![],
        event_attrs: vec![],
    }
}

impl S {
    fn at(mut self, start_us: u64, dur_us: u64) -> S {
        self.start_us = start_us;
        self.dur_us = dur_us;
        self
    }
    fn kind(mut self, k: SpanKind) -> S {
        self.kind = k;
        self
    }
    fn error(mut self) -> S {
        self.error = true;
        self
    }
    fn attr(mut self, k: &'static str, v: &'static str) -> S {
        self.attrs.push((k, v));
        self
    }
    fn res(mut self, k: &'static str, v: &'static str) -> S {
        self.resource.push((k, v));
        self
    }
    fn event(mut self, k: &'static str, v: &'static str) -> S {
        self.event_attrs.push((k, v));
        self
    }
    fn build(&self) -> Fragment {
        let kvs = |v: &[(&str, &str)]| v.iter().map(|(k, v)| KeyValue::string(*k, *v)).collect();
        Fragment::Span(Span {
            trace_id: tid(self.trace),
            span_id: SpanId([self.id; 8]),
            parent_span_id: self.parent.map(|p| SpanId([p; 8])),
            name: self.name.into(),
            kind: self.kind,
            service: self.service.into(),
            start_ns: self.start_us * 1_000,
            end_ns: (self.start_us + self.dur_us) * 1_000,
            status: if self.error {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            status_message: Default::default(),
            attributes: kvs(&self.attrs),
            resource: kvs(&self.resource),
            scope: None,
            events: if self.event_attrs.is_empty() {
                vec![]
            } else {
                vec![Event {
                    time_ns: self.start_us * 1_000,
                    name: "e".into(),
                    attributes: kvs(&self.event_attrs),
                }]
            },
            links: vec![],
            protocol: Protocol::OtlpGrpc,
        })
    }
}

/// Nine traces over three days (one partition a day); trace 4's child
/// arrives a day late, in the next partition.
fn load(store: &Store, clock: &ManualClock) {
    use SpanKind::*;
    let day = |d: u64, off: u64| T0 + d * DAY_US + off;
    let api = |t, name, d, off, dur, region, method| {
        s(t, 1, None, "api", name)
            .at(day(d, off), dur)
            .res("region", region)
            .attr("http.method", method)
    };
    let days: Vec<Vec<S>> = vec![
        vec![
            api(1, "GET /pay", 0, 100, 5_000, "eu", "GET"),
            s(1, 2, Some(1), "card-api", "authorise")
                .at(day(0, 110), 3_000)
                .attr("card.type", "visa"),
            s(1, 3, Some(2), "ledger", "write")
                .at(day(0, 120), 1_000)
                .kind(Internal)
                .error(),
            api(2, "GET /pay", 0, 200, 200_000, "us", "GET"),
            s(2, 2, Some(1), "card-api", "authorise")
                .at(day(0, 210), 150_000)
                .attr("card.type", "amex"),
            api(3, "POST /refund", 0, 300, 20_000, "eu", "POST").event("retry.reason", "timeout"),
            s(3, 2, Some(1), "refunds", "refund")
                .at(day(0, 310), 15_000)
                .error(),
        ],
        vec![
            api(4, "GET /pay", 1, 100, 8_000, "eu", "GET"),
            s(5, 1, None, "feed", "insert")
                .at(day(1, 200), 50_000)
                .kind(Consumer)
                .attr("msg.system", "kafka"),
            api(6, "GET /balance", 1, 300, 1_000, "us", "GET"),
        ],
        vec![
            s(4, 2, Some(1), "card-api", "authorise")
                .at(day(1, 110), 2_000)
                .attr("card.type", "visa")
                .error(),
            api(7, "GET /pay", 2, 100, 1_200_000, "eu", "GET"),
            s(7, 2, Some(1), "card-api", "authorise")
                .at(day(2, 110), 1_100_000)
                .attr("card.type", "visa"),
            s(7, 3, Some(2), "ledger", "write")
                .at(day(2, 120), 1_000_000)
                .kind(Internal),
            s(8, 1, None, "card-api", "authorise")
                .at(day(2, 200), 4_000)
                .attr("card.type", "mastercard")
                .error(),
            api(9, "POST /refund", 2, 300, 30_000, "us", "POST"),
            s(9, 2, Some(1), "refunds", "refund").at(day(2, 310), 10_000),
        ],
    ];
    for spans in days {
        let frags: Vec<Fragment> = spans.iter().map(S::build).collect();
        store.write(&frags).unwrap();
        clock.advance(Duration::from_secs(86_400));
    }
}

struct Case {
    name: &'static str,
    query: SearchQuery,
    expect: Vec<u8>,
}

fn all_days() -> SearchQuery {
    SearchQuery {
        start_us: T0,
        end_us: T0 + 3 * DAY_US,
        limit: 20,
        ..SearchQuery::default()
    }
}

fn svc(name: &str) -> SearchQuery {
    SearchQuery {
        service: Some(name.into()),
        ..all_days()
    }
}

fn attrs(kvs: &[(&str, &str)], base: SearchQuery) -> SearchQuery {
    SearchQuery {
        attributes: kvs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..base
    }
}

fn cases() -> Vec<Case> {
    let ms = 1_000;
    let errors = |base: SearchQuery| SearchQuery {
        errors_only: true,
        ..base
    };
    let op = |service: Option<&str>, op: &str| SearchQuery {
        service: service.map(str::to_string),
        operation: Some(op.into()),
        ..all_days()
    };
    let dur = |base: SearchQuery, min: Option<u64>, max: Option<u64>| SearchQuery {
        min_duration_us: min,
        max_duration_us: max,
        ..base
    };
    let kind = |k: SpanKind, base: SearchQuery| SearchQuery {
        kind: Some(k),
        ..base
    };
    let range = |start: u64, end: u64, base: SearchQuery| SearchQuery {
        start_us: start,
        end_us: end,
        ..base
    };
    vec![
        Case {
            name: "service",
            query: svc("api"),
            expect: vec![9, 7, 6, 4, 3, 2, 1],
        },
        Case {
            name: "service, late child across partitions",
            query: svc("card-api"),
            expect: vec![8, 7, 4, 2, 1],
        },
        Case {
            name: "service and operation",
            query: op(Some("api"), "GET /pay"),
            expect: vec![7, 4, 2, 1],
        },
        Case {
            name: "operation without service",
            query: op(None, "authorise"),
            expect: vec![8, 7, 4, 2, 1],
        },
        Case {
            name: "kind consumer",
            query: kind(SpanKind::Consumer, all_days()),
            expect: vec![5],
        },
        Case {
            name: "kind internal",
            query: kind(SpanKind::Internal, all_days()),
            expect: vec![7, 1],
        },
        Case {
            name: "error only, no service",
            query: errors(all_days()),
            expect: vec![8, 4, 3, 1],
        },
        Case {
            name: "error on a service that never fails",
            query: errors(svc("api")),
            expect: vec![],
        },
        Case {
            name: "error and service",
            query: errors(svc("card-api")),
            expect: vec![8, 4],
        },
        Case {
            name: "resource attribute",
            query: attrs(&[("region", "eu")], all_days()),
            expect: vec![7, 4, 3, 1],
        },
        Case {
            name: "resource attribute, other value",
            query: attrs(&[("region", "us")], all_days()),
            expect: vec![9, 6, 2],
        },
        Case {
            name: "span attribute",
            query: attrs(&[("card.type", "visa")], all_days()),
            expect: vec![7, 4, 1],
        },
        Case {
            name: "event attribute",
            query: attrs(&[("retry.reason", "timeout")], all_days()),
            expect: vec![3],
        },
        Case {
            name: "two attributes on one span",
            query: attrs(&[("region", "eu"), ("http.method", "GET")], all_days()),
            expect: vec![7, 4, 1],
        },
        Case {
            name: "attribute and service on different spans",
            query: attrs(&[("region", "eu")], svc("card-api")),
            expect: vec![],
        },
        Case {
            name: "attribute and error",
            query: errors(attrs(&[("card.type", "visa")], all_days())),
            expect: vec![4],
        },
        Case {
            name: "min duration",
            query: dur(all_days(), Some(100 * ms), None),
            expect: vec![7, 2],
        },
        Case {
            name: "min duration, inclusive",
            query: dur(all_days(), Some(1_000 * ms), None),
            expect: vec![7],
        },
        Case {
            name: "max duration, inclusive",
            query: dur(all_days(), None, Some(ms)),
            expect: vec![6, 1],
        },
        Case {
            name: "operation and min duration",
            query: dur(op(Some("api"), "GET /pay"), Some(100 * ms), None),
            expect: vec![7, 2],
        },
        Case {
            name: "operation and duration range",
            query: dur(op(Some("api"), "GET /pay"), Some(5 * ms), Some(10 * ms)),
            expect: vec![4, 1],
        },
        Case {
            name: "service and duration range",
            query: dur(svc("card-api"), Some(100 * ms), Some(1_000 * ms)),
            expect: vec![2],
        },
        Case {
            name: "one day's partition",
            query: range(T0 + DAY_US, T0 + 2 * DAY_US - 1, svc("api")),
            expect: vec![6, 4],
        },
        Case {
            name: "errors over two partitions",
            query: range(T0, T0 + 2 * DAY_US - 1, errors(all_days())),
            expect: vec![4, 3, 1],
        },
        Case {
            name: "no filters, last day",
            query: range(T0 + 2 * DAY_US, T0 + 3 * DAY_US, all_days()),
            expect: vec![9, 8, 7],
        },
        Case {
            name: "attribute without service",
            query: attrs(&[("msg.system", "kafka")], all_days()),
            expect: vec![5],
        },
        Case {
            name: "limit",
            query: SearchQuery {
                limit: 2,
                ..svc("api")
            },
            expect: vec![9, 7],
        },
        Case {
            name: "unknown service",
            query: svc("nope"),
            expect: vec![],
        },
        Case {
            name: "unknown attribute value",
            query: attrs(&[("region", "mars")], all_days()),
            expect: vec![],
        },
        Case {
            name: "kind that the service never has",
            query: kind(SpanKind::Client, svc("api")),
            expect: vec![],
        },
    ]
}

#[test]
fn search_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open(dir.path());
    load(&store, &clock);
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for c in &cases {
        let got: Vec<u8> = store
            .search(&c.query)
            .unwrap()
            .iter()
            .map(|h| h.trace_id.0[15])
            .collect();
        if got != c.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                c.name, c.expect, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The result names the span that matched, and summarises the trace.
    let hits = store
        .search(&SearchQuery {
            errors_only: true,
            ..svc("card-api")
        })
        .unwrap();
    assert_eq!(hits[1].span_id, SpanId([2; 8]));
    assert_eq!(hits[1].span_start_us, T0 + DAY_US + 110);
    let sum = &hits[1].summary;
    assert_eq!((sum.spans, sum.errors), (2, 1));
    assert_eq!(sum.root.as_ref().unwrap().name, "GET /pay");
    assert_eq!(
        sum.services,
        vec![("api".into(), 1), ("card-api".into(), 1)]
    );
}

#[test]
fn get_trace_found_and_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open(dir.path());
    load(&store, &clock);
    assert_eq!(store.trace(tid(7)).unwrap().len(), 3);
    assert_eq!(store.trace(tid(4)).unwrap().len(), 2, "both partitions");
    assert!(store.trace(tid(99)).unwrap().is_empty());
}

#[test]
fn services_and_operations() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open(dir.path());
    load(&store, &clock);
    assert_eq!(
        store.services().unwrap(),
        vec!["api", "card-api", "feed", "ledger", "refunds"]
    );
    let ops: Vec<_> = store
        .operations("api")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(ops, vec!["GET /balance", "GET /pay", "POST /refund"]);
    let feed = store.operations("feed").unwrap();
    assert_eq!(
        (feed[0].name.as_str(), feed[0].kind),
        ("insert", SpanKind::Consumer)
    );
    assert_eq!(
        store.attribute_values("region", 10).unwrap(),
        vec!["eu", "us"]
    );
}

#[test]
fn a_trace_of_ten_thousand_spans() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock) = open(dir.path());
    let spans: Vec<Fragment> = (0..10_000u32)
        .map(|i| {
            let mut f = s(42, 0, None, "big", "work")
                .at(T0 + u64::from(i), 5)
                .build();
            if let Fragment::Span(sp) = &mut f {
                sp.span_id = SpanId((u64::from(i) + 1).to_be_bytes());
                sp.parent_span_id = (i > 0).then(|| SpanId(u64::from(i).div_ceil(2).to_be_bytes()));
            }
            f
        })
        .collect();
    for chunk in spans.chunks(1_000) {
        store.write(chunk).unwrap();
    }
    let got = store.trace(tid(42)).unwrap();
    assert_eq!(got.len(), 10_000);
    let ids: std::collections::HashSet<_> = got
        .iter()
        .map(|f| match f {
            Fragment::Span(s) => s.span_id,
            Fragment::Annotation(_) => unreachable!(),
        })
        .collect();
    assert_eq!(ids.len(), 10_000);
    let sum = store.summaries(&[tid(42)]).unwrap()[0].clone().unwrap();
    assert_eq!(sum.spans, 10_000);
    assert_eq!(sum.root.unwrap().start_us, T0);
}

#[test]
fn duplicate_span_ids_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock) = open(dir.path());
    // A client and a server side sharing one span ID (Zipkin's shared
    // spans), and an exact resend.
    let client = s(5, 1, None, "api", "call")
        .at(T0, 100)
        .kind(SpanKind::Client)
        .build();
    let server = s(5, 1, None, "cards", "get").at(T0 + 10, 80).build();
    store.write(&[client.clone(), server.clone()]).unwrap();
    store.write(std::slice::from_ref(&client)).unwrap();
    let got = store.trace(tid(5)).unwrap();
    assert_eq!(got, vec![client.clone(), server, client]);
    let hits = store.search(&svc("cards")).unwrap();
    assert_eq!(hits.len(), 1);
}

#[test]
fn spans_of_one_trace_written_minutes_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open(dir.path());
    let root = s(6, 1, None, "api", "slow-job").at(T0, 600_000_000);
    store
        .write(&[s(6, 2, Some(1), "worker", "step")
            .at(T0 + 1_000, 500)
            .build()])
        .unwrap();
    clock.advance(Duration::from_secs(300));
    store
        .write(&[s(6, 3, Some(1), "worker", "step")
            .at(T0 + 300_000_000, 500)
            .build()])
        .unwrap();
    clock.advance(Duration::from_secs(300));
    store.write(&[root.build()]).unwrap();
    assert_eq!(store.trace(tid(6)).unwrap().len(), 3);
    let sum = store.summaries(&[tid(6)]).unwrap()[0].clone().unwrap();
    assert_eq!((sum.spans, sum.duration_us()), (3, 600_000_000));
    assert_eq!(sum.root.unwrap().name, "slow-job");
    assert_eq!(sum.services, vec![("api".into(), 1), ("worker".into(), 2)]);
}
