use super::*;
use model::*;

const DAY: Duration = Duration::from_secs(86_400);
const T0: u64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

fn span(trace: u8, id: u8, service: &str, name: &str) -> Fragment {
    Fragment::Span(Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: None,
        name: name.into(),
        kind: SpanKind::Server,
        service: service.into(),
        start_ns: 1_000,
        end_ns: 2_000,
        status: StatusCode::Unset,
        status_message: Default::default(),
        attributes: vec![KeyValue::string("k", "v")],
        resource: vec![],
        scope: None,
        events: vec![],
        links: vec![],
        protocol: Protocol::OtlpGrpc,
    })
}

/// A span starting at `start_us` and lasting `dur_us`.
fn timed(trace: u8, id: u8, parent: Option<u8>, service: &str, start_us: u64, dur_us: u64) -> Span {
    let Fragment::Span(mut s) = span(trace, id, service, "op") else {
        unreachable!()
    };
    s.parent_span_id = parent.map(|p| SpanId([p; 8]));
    s.start_ns = start_us * 1_000;
    s.end_ns = (start_us + dur_us) * 1_000;
    s.attributes.clear();
    s
}

fn open(dir: &Path, clock: Arc<ManualClock>) -> Store {
    let config = StoreConfig {
        partition: DAY,
        ..StoreConfig::default()
    };
    Store::open_with_clock(dir, &config, clock).unwrap()
}

fn query(start: u64, end: u64) -> SearchQuery {
    SearchQuery {
        start_us: start,
        end_us: end,
        limit: 20,
        ..SearchQuery::default()
    }
}

fn ids(hits: &[SearchHit]) -> Vec<u8> {
    hits.iter().map(|h| h.trace_id.0[0]).collect()
}

#[test]
fn fragments_of_a_trace_come_back_from_separate_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    store
        .write(&[span(1, 1, "a", "x"), span(2, 1, "b", "y")])
        .unwrap();
    store.write(&[span(1, 2, "a", "z")]).unwrap();
    let got = store.trace(TraceId([1; 16])).unwrap();
    assert_eq!(got, vec![span(1, 1, "a", "x"), span(1, 2, "a", "z")]);
    assert_eq!(store.trace(TraceId([3; 16])).unwrap(), vec![]);
}

#[test]
fn a_large_trace_decoded_on_two_threads_comes_back_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let shape = crate::synth::Shape {
        spans: 3_000,
        ..Default::default()
    };
    let trace = crate::synth::trace(9, 1_700_000_000_000_000, &shape);
    // Several records, more bytes than one thread decodes alone.
    for chunk in trace.chunks(512) {
        store.write(chunk).unwrap();
    }
    let raw_bytes: usize = trace
        .chunks(512)
        .map(|chunk| {
            let refs: Vec<&Fragment> = chunk.iter().collect();
            let mut buf = Vec::new();
            crate::record::encode(&refs, &mut buf);
            buf.len()
        })
        .sum();
    assert!(
        raw_bytes > super::PARALLEL_DECODE_BYTES,
        "{raw_bytes} bytes"
    );
    let id = trace[0].trace_id();
    assert_eq!(
        store.trace(id).unwrap(),
        crate::record::in_key_order(&trace)
    );
}

#[test]
fn prefix_seek_does_not_leak_into_neighbouring_traces() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let mut near = [1u8; 16];
    near[15] = 2;
    let mut f = span(1, 1, "a", "x");
    if let Fragment::Span(s) = &mut f {
        s.trace_id = TraceId(near);
    }
    store.write(&[span(1, 1, "a", "x"), f]).unwrap();
    store.flush().unwrap();
    assert_eq!(store.trace(TraceId([1; 16])).unwrap().len(), 1);
    assert_eq!(store.trace(TraceId(near)).unwrap().len(), 1);
}

#[test]
fn catalog_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        store
            .write(&[
                span(1, 1, "card-api", "authorise"),
                span(1, 2, "cards", "get"),
            ])
            .unwrap();
        store.write(&[span(2, 1, "card-api", "capture")]).unwrap();
    }
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    assert_eq!(store.services().unwrap(), vec!["card-api", "cards"]);
    let ops: Vec<_> = store
        .operations("card-api")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(ops, vec!["authorise", "capture"]);
    assert_eq!(store.operations("card").unwrap(), vec![]);
    assert_eq!(store.attribute_keys().unwrap(), vec!["k"]);
    assert_eq!(store.attribute_values("k", 10).unwrap(), vec!["v"]);
}

#[test]
fn a_full_key_takes_no_more_catalog_values_and_stays_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Arc::new(ManualClock::new(T0)));
    let max = catalog::MAX_VALUES_PER_KEY;
    // Writes of 50 spans, each with a new request.id: once the key's values
    // are full, later writes do not offer theirs at all.
    let n = max + 100;
    for w in 0..n / 50 {
        let batch: Vec<Fragment> = (0..50)
            .map(|i| {
                let v = w * 50 + i;
                let mut s = timed(
                    1 + (v % 200) as u8,
                    1 + (v / 200) as u8,
                    None,
                    "api",
                    T0 + v as u64,
                    10,
                );
                s.attributes = vec![KeyValue::string("request.id", format!("r{v}"))];
                if v >= max {
                    s.attributes
                        .push(KeyValue::string("region", format!("eu-{}", v % 3)));
                }
                Fragment::Span(s)
            })
            .collect();
        store.write(&batch).unwrap();
    }
    let values = store.attribute_values("request.id", 10 * max).unwrap();
    assert_eq!(values.len(), max);
    // The first values came in; none of the later ones.
    assert!(values.contains(&"r0".to_string()));
    assert!(!values.contains(&format!("r{}", n - 1)));
    // Another key still gets its values.
    assert_eq!(
        store.attribute_values("region", 10).unwrap(),
        ["eu-0", "eu-1", "eu-2"]
    );
    // And the late values are searchable all the same.
    let mut q = query(T0, T0 + n as u64);
    q.attributes = vec![("request.id".into(), format!("r{}", n - 1))];
    let hits = store.search(&q).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].span_start_us, T0 + (n - 1) as u64);
}

#[test]
fn foreign_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let err = Store::open(dir.path(), &StoreConfig::default()).unwrap_err();
    assert!(
        err.to_string().contains("not a phosphor data directory"),
        "{err}"
    );
}

#[test]
fn another_format_version_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let meta = store.cf(cf::META).unwrap();
        store
            .db
            .put_cf(&meta, keys::META_FORMAT, 1u32.to_be_bytes())
            .unwrap();
    }
    let err = Store::open(dir.path(), &StoreConfig::default()).unwrap_err();
    assert!(
        err.to_string().contains("format 1 is not supported"),
        "{err}"
    );
}

#[test]
fn a_format_3_store_is_opened_and_marked_6() {
    let dir = tempfile::tempdir().unwrap();
    let old = span(6, 1, "api", "old");
    let older = span(6, 2, "api", "older");
    {
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        store.write(std::slice::from_ref(&old)).unwrap();
        // A store as the previous format left it: marker 3, records in
        // version 1.
        let meta = store.cf(cf::META).unwrap();
        store
            .db
            .put_cf(&meta, keys::META_FORMAT, 3u32.to_be_bytes())
            .unwrap();
        put_record(
            &store,
            TraceId([6; 16]),
            &version_1(std::slice::from_ref(&older)),
        );
    }
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let meta = store.cf(cf::META).unwrap();
    let marker = store.db.get_cf(&meta, keys::META_FORMAT).unwrap().unwrap();
    assert_eq!(marker, FORMAT_VERSION.to_be_bytes());
    assert_eq!(FORMAT_VERSION, 6);
    // Records come back in key order: the version 1 record was given the
    // first sequence number.
    assert_eq!(store.trace(TraceId([6; 16])).unwrap(), vec![older, old]);
}

#[test]
fn summaries_merge_fragments_written_apart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let mut child = timed(1, 2, Some(1), "cards", T0 + 100, 50);
    child.status = StatusCode::Error;
    store.write(&[Fragment::Span(child)]).unwrap();
    let mut root = timed(1, 1, None, "api", T0, 400);
    root.name = "checkout".into();
    store.write(&[Fragment::Span(root)]).unwrap();
    let s = store.summaries(&[TraceId([1; 16])]).unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!((s.start_us, s.end_us, s.duration_us()), (T0, T0 + 400, 400));
    assert_eq!((s.spans, s.errors), (2, 1));
    assert_eq!(s.services, vec![("api".into(), 1), ("cards".into(), 1)]);
    let root = s.root.unwrap();
    assert_eq!(
        (root.service.as_str(), root.name.as_str()),
        ("api", "checkout")
    );
    assert_eq!(store.summaries(&[TraceId([9; 16])]).unwrap(), vec![None]);
}

#[test]
fn search_matches_one_span_against_all_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    // Trace 1: api (slow) → cards (error, region=eu).
    let a = timed(1, 1, None, "api", T0, 900);
    let mut b = timed(1, 2, Some(1), "cards", T0 + 10, 20);
    b.status = StatusCode::Error;
    b.resource.push(KeyValue::string("region", "eu"));
    // Trace 2: api (fast, region=eu), newer.
    let mut c = timed(2, 1, None, "api", T0 + 1_000, 30);
    c.attributes.push(KeyValue::string("region", "eu"));
    store
        .write(&[Fragment::Span(a), Fragment::Span(b), Fragment::Span(c)])
        .unwrap();

    let all = query(T0, T0 + 10_000);
    assert_eq!(
        ids(&store.search(&all).unwrap()),
        vec![2, 1],
        "newest first"
    );
    let eu = SearchQuery {
        attributes: vec![("region".into(), "eu".into())],
        ..all.clone()
    };
    assert_eq!(ids(&store.search(&eu).unwrap()), vec![2, 1]);
    let eu_err = SearchQuery {
        errors_only: true,
        ..eu.clone()
    };
    let hits = store.search(&eu_err).unwrap();
    assert_eq!(ids(&hits), vec![1]);
    assert_eq!(hits[0].span_id, SpanId([2; 8]), "the matching span");
    // api spans in region eu that failed: none (the failure is in cards).
    let api_err = SearchQuery {
        service: Some("api".into()),
        errors_only: true,
        ..all.clone()
    };
    assert!(store.search(&api_err).unwrap().is_empty());
    let slow = SearchQuery {
        min_duration_us: Some(500),
        ..all.clone()
    };
    assert_eq!(ids(&store.search(&slow).unwrap()), vec![1]);
    let errors = SearchQuery {
        errors_only: true,
        ..all.clone()
    };
    assert_eq!(ids(&store.search(&errors).unwrap()), vec![1]);
    let window = query(T0 + 500, T0 + 10_000);
    assert_eq!(ids(&store.search(&window).unwrap()), vec![2]);
    let limited = SearchQuery { limit: 1, ..all };
    assert_eq!(ids(&store.search(&limited).unwrap()), vec![2]);
    assert_eq!(store.search(&limited).unwrap()[0].summary.spans, 1);
}

fn ann(kind: AnnotationType, span: u8, ts: u64) -> Fragment {
    Fragment::Annotation(Annotation {
        trace_id: TraceId([7; 16]),
        span_id: SpanId([span; 8]),
        parent_id: None,
        legacy: LegacyIds::default(),
        kind,
        one_way: false,
        timestamp_us: ts as i64,
        duration_us: 0,
        hostname: "h".into(),
        origin: "api".into(),
        destination: "card-api".into(),
        payload: Default::default(),
        attributes: vec![("operation".into(), "authorise".into())],
    })
}

#[test]
fn annotation_sides_are_searchable_whichever_end_arrives_last() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    // The client's end arrives first, its start later; the server side the
    // other way round.
    store
        .write(&[ann(AnnotationType::ClientRecv, 1, T0 + 1_000)])
        .unwrap();
    store
        .write(&[ann(AnnotationType::ServerRecv, 1, T0 + 100)])
        .unwrap();
    store
        .write(&[ann(AnnotationType::ClientSend, 1, T0)])
        .unwrap();
    store
        .write(&[ann(AnnotationType::ServerSend, 1, T0 + 700)])
        .unwrap();
    let q = SearchQuery {
        service: Some("card-api".into()),
        min_duration_us: Some(600),
        ..query(T0, T0 + 10_000)
    };
    let hits = store.search(&q).unwrap();
    assert_eq!(ids(&hits), vec![7]);
    assert_eq!(hits[0].span_start_us, T0 + 100);
    let q = SearchQuery {
        service: Some("api".into()),
        operation: Some("authorise".into()),
        min_duration_us: Some(1_000),
        kind: Some(SpanKind::Client),
        ..query(T0, T0 + 10_000)
    };
    assert_eq!(ids(&store.search(&q).unwrap()), vec![7]);
    let s = &store.search(&q).unwrap()[0].summary;
    assert_eq!((s.spans, s.start_us, s.end_us), (2, T0, T0 + 1_000));
    assert_eq!(s.root.as_ref().unwrap().name, "authorise");
    assert_eq!(
        store.dependencies(T0, T0 + 3_600_000_000).unwrap(),
        vec![Dependency {
            caller: "api".into(),
            callee: "card-api".into(),
            calls: 1,
            errors: 0
        }]
    );
}

#[test]
fn dependencies_come_from_parent_links_and_peer_services() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let a = timed(1, 1, None, "api", T0, 900);
    let mut b = timed(1, 2, Some(1), "cards", T0 + 10, 20);
    b.status = StatusCode::Error;
    let mut c = timed(1, 3, Some(1), "api", T0 + 40, 20);
    c.kind = SpanKind::Client;
    c.attributes
        .push(KeyValue::string("peer.service", "ledger"));
    store
        .write(&[Fragment::Span(a), Fragment::Span(b), Fragment::Span(c)])
        .unwrap();
    let deps = store.dependencies(T0, T0 + 1).unwrap();
    let got: Vec<_> = deps
        .iter()
        .map(|d| (d.caller.as_str(), d.callee.as_str(), d.calls, d.errors))
        .collect();
    assert_eq!(got, vec![("api", "cards", 1, 1), ("api", "ledger", 1, 0)]);
    // An hour bucket later: nothing.
    assert!(
        store
            .dependencies(T0 + DEPENDENCY_BUCKET_US, T0 + 2 * DEPENDENCY_BUCKET_US)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn retention_drops_old_partitions_frees_disk_and_spares_pins() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let store = open(dir.path(), clock.clone());
    // Day 0: traces 1..=40 of service "old" (trace 1 pinned); day 1 and
    // day 5: one trace each.
    let big: Vec<Fragment> = (1..=40u8)
        .flat_map(|t| {
            (1..=50u8).map(move |s| {
                let mut x = timed(t, s, None, "old", T0 + u64::from(s), 10);
                x.attributes
                    .push(KeyValue::string("payload", "x".repeat(200)));
                Fragment::Span(x)
            })
        })
        .collect();
    store.write(&big).unwrap();
    clock.advance(DAY);
    store
        .write(&[Fragment::Span(timed(
            100,
            1,
            None,
            "mid",
            T0 + 86_400_000_000,
            10,
        ))])
        .unwrap();
    clock.advance(4 * DAY);
    store
        .write(&[Fragment::Span(timed(
            101,
            1,
            None,
            "new",
            T0 + 5 * 86_400_000_000,
            10,
        ))])
        .unwrap();
    assert!(store.pin(TraceId([1; 16])).unwrap());
    assert!(!store.pin(TraceId([222; 16])).unwrap());
    store.flush().unwrap();
    assert_eq!(store.partitions().len(), 3);
    let before = store.disk_bytes();

    // Day 7.5: nothing is older than retention yet.
    clock.advance(DAY * 5 / 2);
    assert_eq!(store.expire().unwrap(), 0);
    // Day 8.5: day 0 is past retention; day 1 is not (it ended on day 2).
    clock.advance(DAY);
    assert_eq!(store.expire().unwrap(), 1);
    assert_eq!(store.partitions().len(), 2);

    assert!(store.trace(TraceId([2; 16])).unwrap().is_empty());
    assert_eq!(store.trace(TraceId([100; 16])).unwrap().len(), 1);
    // The pinned trace outlives its partition, summary and all.
    assert_eq!(store.trace(TraceId([1; 16])).unwrap().len(), 50);
    assert!(store.is_pinned(TraceId([1; 16])).unwrap());
    assert_eq!(
        store.summaries(&[TraceId([1; 16])]).unwrap()[0]
            .as_ref()
            .unwrap()
            .spans,
        50
    );
    // Gone from search and from the catalog.
    let everything = query(0, u64::MAX - 1);
    assert_eq!(ids(&store.search(&everything).unwrap()), vec![101, 100]);
    assert_eq!(store.services().unwrap(), vec!["mid", "new"]);
    assert!(store.attribute_values("payload", 10).unwrap().is_empty());

    let after = store.disk_bytes();
    assert!(
        after < before,
        "disk use did not go down: {before} -> {after}"
    );

    // Unpinned, it is gone too; and reopening sees what is left.
    assert!(store.unpin(TraceId([1; 16])).unwrap());
    assert!(store.trace(TraceId([1; 16])).unwrap().is_empty());
    drop(store);
    let store = open(dir.path(), clock);
    assert_eq!(store.partitions().len(), 2);
    assert_eq!(store.services().unwrap(), vec!["mid", "new"]);
}

#[test]
fn search_across_partitions_is_newest_first_and_stops_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let store = open(dir.path(), clock.clone());
    // Six partitions, two traces each; within a partition the span written
    // second started first, and one late span lands a partition later than
    // its start.
    for day in 0..6u64 {
        let base = T0 + day * 86_400_000_000;
        let t = (day * 2 + 1) as u8;
        store
            .write(&[
                Fragment::Span(timed(t, 1, None, "svc", base + 2_000, 10)),
                Fragment::Span(timed(t + 1, 1, None, "svc", base + 1_000, 10)),
            ])
            .unwrap();
        clock.advance(DAY);
    }
    store
        .write(&[Fragment::Span(timed(50, 1, None, "svc", T0 + 5_000, 10))])
        .unwrap();
    assert_eq!(store.partitions().len(), 7);
    let q = SearchQuery {
        service: Some("svc".into()),
        limit: 5,
        ..query(T0, T0 + 10 * 86_400_000_000)
    };
    assert_eq!(ids(&store.search(&q).unwrap()), vec![11, 12, 9, 10, 7]);
    // The oldest, including the late one, in start order.
    let q = SearchQuery {
        limit: 4,
        ..query(T0, T0 + 86_400_000_000 - 1)
    };
    assert_eq!(ids(&store.search(&q).unwrap()), vec![50, 1, 2]);
}

#[test]
fn search_is_exact_at_block_boundaries() {
    // Spans within a second of each other share an index block whose key
    // carries the block's first start; the range and the limit still apply
    // to each span's own start.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Arc::new(ManualClock::new(T0)));
    let mut error = timed(4, 1, None, "svc", T0 + 900_000, 10);
    error.status = StatusCode::Error;
    store
        .write(&[
            Fragment::Span(timed(1, 1, None, "svc", T0, 10)),
            Fragment::Span(timed(2, 1, None, "svc", T0 + 400_000, 10)),
            Fragment::Span(timed(3, 1, None, "other", T0 + 600_000, 10)),
            Fragment::Span(error),
        ])
        .unwrap();
    // A later write whose block starts before the newest span above.
    store
        .write(&[Fragment::Span(timed(5, 1, None, "svc", T0 + 800_000, 10))])
        .unwrap();
    let svc = |start, end, limit| SearchQuery {
        service: Some("svc".into()),
        limit,
        ..query(start, end)
    };
    assert_eq!(
        ids(&store.search(&svc(T0, T0 + 1_000_000, 20)).unwrap()),
        vec![4, 5, 2, 1]
    );
    assert_eq!(
        ids(&store.search(&svc(T0, T0 + 1_000_000, 1)).unwrap()),
        vec![4]
    );
    assert_eq!(
        ids(&store.search(&svc(T0, T0 + 1_000_000, 2)).unwrap()),
        vec![4, 5]
    );
    // The range starts inside the first block and ends inside it too.
    assert_eq!(
        ids(&store.search(&svc(T0 + 1, T0 + 850_000, 20)).unwrap()),
        vec![5, 2]
    );
    assert_eq!(
        ids(&store.search(&svc(T0 + 400_000, T0 + 400_000, 20)).unwrap()),
        vec![2]
    );
    let errors = SearchQuery {
        errors_only: true,
        ..query(T0, T0 + 1_000_000)
    };
    assert_eq!(ids(&store.search(&errors).unwrap()), vec![4]);
    let all = query(T0 + 500_000, T0 + 1_000_000);
    assert_eq!(ids(&store.search(&all).unwrap()), vec![4, 5, 3]);
    // Operation statistics count each span of the range once.
    let stats = store
        .operation_stats("svc", T0 + 1, T0 + 1_000_000, 100)
        .unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].count, stats[0].errors), (3, 1));
}

#[test]
fn sparse_values_are_found_in_buckets_and_in_format_4_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Arc::new(ManualClock::new(T0)));
    // One block: `region` is in more spans than a sparse term may list,
    // each `request.id` is seen once.
    let n_spans = keys::SPARSE_MAX_MEMBERS as u8 + 1;
    let spans: Vec<Fragment> = (1..=n_spans)
        .map(|n| {
            let mut s = timed(n, 1, None, "svc", T0 + u64::from(n) * 10, 10);
            s.attributes = vec![
                KeyValue::string("region", "eu"),
                KeyValue::string("request.id", format!("r{n}")),
            ];
            Fragment::Span(s)
        })
        .collect();
    store.write(&spans).unwrap();
    // A newer block as format 4 wrote it: a key for every term, the sparse
    // ones too.
    let p = store.partitions()[0];
    let index = store.cf(&cf::index(p)).unwrap();
    let start = T0 + 500;
    let sfx = keys::suffix(start, 1 << 20);
    let facts = block::encode_facts(&[block::Member {
        trace: TraceId([n_spans + 1; 16]),
        span: SpanId([1; 8]),
        start_us: start,
        facts: keys::SpanFacts {
            duration_us: Some(10),
            kind: SpanKind::Server,
            error: false,
        },
    }]);
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(&index, keys::index_key(keys::IDX_SPAN, &[], &sfx), facts);
    let newest = format!("r{}", n_spans + 1);
    for (k, v) in [("region", "eu"), ("request.id", newest.as_str())] {
        batch.put_cf(
            &index,
            keys::index_key(keys::IDX_ATTRIBUTE, &[k, v], &sfx),
            block::encode_members(&[0]),
        );
    }
    store.db.write(batch).unwrap();

    let by = |attrs: &[(&str, &str)]| {
        let q = SearchQuery {
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..query(T0, T0 + 1_000_000)
        };
        ids(&store.search(&q).unwrap())
    };
    assert_eq!(
        by(&[("region", "eu")]),
        (1..=n_spans + 1).rev().collect::<Vec<_>>()
    );
    for n in 1..=n_spans + 1 {
        let r = format!("r{n}");
        // Driving the search, and checked for another term's candidates,
        // in either order.
        assert_eq!(by(&[("request.id", &r)]), vec![n], "{r}");
        assert_eq!(by(&[("region", "eu"), ("request.id", &r)]), vec![n], "{r}");
        assert_eq!(by(&[("request.id", &r), ("region", "eu")]), vec![n], "{r}");
        assert_eq!(
            by(&[("request.id", &r), ("region", "us")]),
            Vec::<u8>::new()
        );
    }
    assert_eq!(by(&[("request.id", "r99")]), Vec::<u8>::new());
    assert_eq!(
        by(&[("region", "eu"), ("request.id", "r99")]),
        Vec::<u8>::new()
    );
    // With a service and a kind as well.
    let q = SearchQuery {
        service: Some("svc".into()),
        kind: Some(SpanKind::Server),
        attributes: vec![("request.id".into(), "r2".into())],
        ..query(T0, T0 + 1_000_000)
    };
    assert_eq!(ids(&store.search(&q).unwrap()), vec![2]);
}

#[test]
fn search_skips_blocks_older_than_the_limit_th_hit_and_only_those() {
    // Writes seconds apart, each its own block; the second block's first
    // span started 1.5 s after the first's, and its last one 0.9 s later
    // still, after the third block's first span.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Arc::new(ManualClock::new(T0)));
    let write = |spans: &[(u8, u64)]| {
        let frags: Vec<Fragment> = spans
            .iter()
            .map(|&(trace, at)| Fragment::Span(timed(trace, 1, None, "svc", T0 + at, 10)))
            .collect();
        store.write(&frags).unwrap();
    };
    write(&[(1, 0), (2, 100_000)]);
    write(&[(3, 1_500_000), (4, 2_400_000)]);
    write(&[(5, 2_000_000)]);
    write(&[(6, 5_000_000)]);
    let svc = |limit| SearchQuery {
        service: Some("svc".into()),
        limit,
        ..query(T0, T0 + 10_000_000)
    };
    assert_eq!(ids(&store.search(&svc(1)).unwrap()), vec![6]);
    assert_eq!(ids(&store.search(&svc(2)).unwrap()), vec![6, 4]);
    assert_eq!(ids(&store.search(&svc(3)).unwrap()), vec![6, 4, 5]);
    assert_eq!(ids(&store.search(&svc(4)).unwrap()), vec![6, 4, 5, 3]);
    assert_eq!(ids(&store.search(&svc(5)).unwrap()), vec![6, 4, 5, 3, 2]);
    assert_eq!(ids(&store.search(&svc(6)).unwrap()), vec![6, 4, 5, 3, 2, 1]);
}

#[test]
fn long_attribute_values_are_found_by_their_exact_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Arc::new(ManualClock::new(T0)));
    let agent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let mut a = timed(1, 1, None, "svc", T0, 10);
    a.attributes = vec![KeyValue::string("http.user_agent", agent)];
    let mut b = timed(2, 1, None, "svc", T0 + 10, 10);
    b.attributes = vec![KeyValue::string(
        "http.user_agent",
        agent.replace("128", "129"),
    )];
    store
        .write(&[Fragment::Span(a), Fragment::Span(b)])
        .unwrap();
    let by = |v: &str| SearchQuery {
        attributes: vec![("http.user_agent".into(), v.into())],
        ..query(T0, T0 + 1_000_000)
    };
    assert_eq!(ids(&store.search(&by(agent)).unwrap()), vec![1]);
    assert_eq!(
        ids(&store.search(&by(&agent[..30])).unwrap()),
        Vec::<u8>::new()
    );
    // The catalog keeps values short enough to suggest, never a hash.
    assert!(
        store
            .attribute_values("http.user_agent", 10)
            .unwrap()
            .iter()
            .all(|v| !v.starts_with('\u{1}'))
    );
}

#[test]
fn a_corrupt_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        store.write(&[span(1, 1, "a", "x")]).unwrap();
    }
    // CURRENT names a manifest that is not there.
    std::fs::write(dir.path().join("CURRENT"), "MANIFEST-999999\n").unwrap();
    let err = Store::open(dir.path(), &StoreConfig::default()).unwrap_err();
    assert!(
        err.to_string().contains("not a phosphor data directory"),
        "{err}"
    );
}

#[test]
fn operation_stats_come_from_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let spans: Vec<Fragment> = (1..=100u8)
        .map(|i| {
            let mut s = timed(
                i,
                1,
                None,
                "api",
                T0 + u64::from(i) * 1_000,
                u64::from(i) * 10,
            );
            if i % 10 == 0 {
                s.status = StatusCode::Error;
            }
            Fragment::Span(s)
        })
        .collect();
    store.write(&spans).unwrap();
    let stats = store
        .operation_stats("api", T0, T0 + 1_000_000, 1_000)
        .unwrap();
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(
        (s.operation.as_str(), s.kind, s.count, s.errors),
        ("op", SpanKind::Server, 100, 10)
    );
    assert_eq!((s.p50_us, s.p95_us, s.p99_us), (510, 950, 990));
    assert!(!s.capped);
    let capped = store
        .operation_stats("api", T0, T0 + 1_000_000, 20)
        .unwrap();
    assert_eq!((capped[0].count, capped[0].capped), (20, true));
    // Only the range asked for.
    let late = store
        .operation_stats("api", T0 + 90_000, T0 + 1_000_000, 1_000)
        .unwrap();
    assert_eq!(late[0].count, 11);
}

#[test]
fn a_trace_of_server_sides_only_still_has_a_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let mut sr = ann(AnnotationType::ServerRecv, 1, T0);
    let mut ss = ann(AnnotationType::ServerSend, 1, T0 + 50);
    for f in [&mut sr, &mut ss] {
        if let Fragment::Annotation(a) = f {
            a.origin.clear();
            a.destination = "edge".into();
        }
    }
    store.write(&[sr, ss]).unwrap();
    let s = store.summaries(&[TraceId([7; 16])]).unwrap()[0]
        .clone()
        .unwrap();
    let root = s.root.unwrap();
    assert_eq!(
        (root.service.as_str(), root.name.as_str()),
        ("edge", "authorise")
    );
}

#[test]
fn memory_by_use_follows_writes_flushes_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let empty = store.memory().unwrap();
    let shape = crate::synth::Shape::default();
    let batch: Vec<Fragment> = (0..200)
        .flat_map(|n| crate::synth::trace(n, 1_700_000_000_000_000 + n, &shape))
        .collect();
    store.write(&batch).unwrap();
    let written = store.memory().unwrap();
    assert!(
        written.memtables > empty.memtables + 100_000,
        "{empty:?} → {written:?}"
    );
    store.flush().unwrap();
    let id = batch[0].trace_id();
    assert_eq!(store.trace(id).unwrap().len(), shape.spans);
    let read = store.memory().unwrap();
    assert!(read.memtables < written.memtables, "{written:?} → {read:?}");
    assert!(read.block_cache > 0, "{read:?}");
}

/// A record as phosphor before store format 4 wrote it: postcard of the
/// fragments after a version byte of 1.
fn version_1(fragments: &[Fragment]) -> Vec<u8> {
    let mut v = vec![record::RECORD_V1];
    v.extend(postcard::to_allocvec(fragments).unwrap());
    v
}

/// Puts a record's bytes as they are, first in the trace's key order, in
/// the current partition.
fn put_record(store: &Store, trace: TraceId, value: &[u8]) {
    let p = store.current_partition().unwrap();
    let cf = store.cf(&cf::spans(p)).unwrap();
    store
        .db()
        .put_cf(&cf, keys::fragment_key(trace, 0), value)
        .unwrap();
}

#[test]
fn annotations_of_a_format_5_record_are_read_beside_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let trace = TraceId([8; 16]);
    let annotation = |kind: AnnotationType, at: i64| Annotation {
        trace_id: trace,
        span_id: SpanId([3; 8]),
        parent_id: None,
        legacy: LegacyIds::default(),
        kind,
        one_way: false,
        timestamp_us: at,
        duration_us: 0,
        hostname: "host-1".into(),
        origin: "api".into(),
        destination: "cards".into(),
        payload: String::new().into(),
        attributes: vec![("operation".into(), "GET /cards".into())],
    };
    let old = annotation(AnnotationType::ClientSend, 1_000);
    let new = Fragment::Annotation(annotation(AnnotationType::ClientRecv, 3_000));
    store.write(std::slice::from_ref(&new)).unwrap();
    // Written before, as format 5 did: first in the trace's key order.
    put_record(
        &store,
        trace,
        &record::postcard_annotations_v2(trace, &[&old]),
    );
    assert_eq!(
        store.trace(trace).unwrap(),
        vec![Fragment::Annotation(old), new]
    );
}

#[test]
fn records_written_in_version_1_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    // A new write (version 2) and an older record of the same trace, as
    // an earlier phosphor wrote it: postcard after a version byte of 1.
    store.write(&[span(4, 1, "api", "new")]).unwrap();
    let old = vec![span(4, 2, "cards", "old"), span(4, 3, "cards", "older")];
    put_record(&store, TraceId([4; 16]), &version_1(&old));
    let mut got = store.trace(TraceId([4; 16])).unwrap();
    got.sort_by_key(|f| match f {
        Fragment::Span(s) => s.span_id,
        Fragment::Annotation(a) => a.span_id,
    });
    assert_eq!(
        got,
        vec![span(4, 1, "api", "new"), old[0].clone(), old[1].clone()]
    );
    // An unknown version is a clear error, not a panic or a silent gap.
    put_record(&store, TraceId([5; 16]), &[9, 1, 2]);
    let err = store.trace(TraceId([5; 16])).unwrap_err().to_string();
    assert!(err.contains("unknown record version 9"), "{err}");
}
