//! Trace assembly: from stored fragments to a tree of spans.
//!
//! Rules:
//! - Exact duplicate fragments are dropped.
//! - Phosphor annotations of one span ID merge into at most two nodes:
//!   CLIENT_SEND + CLIENT_RECV (or TIMEOUT, which ends it with an error)
//!   make the client side; SERVER_RECV + SERVER_SEND make the server side,
//!   which shares the span ID and is the client side's child. ANNOTATION is
//!   an event on its span. A side without its end (or start) is incomplete.
//! - OTLP-shaped spans hang under their parent span ID. Where a parent ID
//!   names both a client and a server side, children hang under the server
//!   side (the caller's own process).
//! - Spans whose parent never arrived hang under a placeholder for the
//!   missing span, marked as such, and the trace carries a warning.
//! - Children are ordered by start time. The result is a flat list in
//!   depth-first order, each node knowing its parent, depth and children.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use phosphor_store::model::{
    Annotation, AnnotationType, Event, Fragment, KeyValue, Link, Protocol, Side, Span, SpanId,
    SpanKind, StatusCode, Text, TraceId, Value,
};

/// One node of an assembled trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    /// Index of the parent node in [`Trace::spans`].
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    pub depth: usize,
    pub name: Text,
    pub service: Text,
    pub kind: SpanKind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub status: StatusCode,
    pub status_message: Text,
    pub attributes: Vec<KeyValue>,
    pub resource: Vec<KeyValue>,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    pub protocols: Vec<Protocol>,
    /// For nodes made of phosphor annotations: which side of the span.
    pub side: Option<Side>,
    /// The annotation types that made this node.
    pub annotations: Vec<AnnotationType>,
    /// Part of the span has not arrived (no end, or no start).
    pub incomplete: bool,
    /// A stand-in for a parent span that never arrived.
    pub placeholder: bool,
    /// The original free-string span ID of a phosphor annotation.
    pub legacy_span_id: Option<String>,
    /// The host the span ran on (`host.name`), where known.
    pub host: Option<String>,
    /// How far clock-skew adjustment moved this span, in nanoseconds.
    pub skew_shift_ns: i64,
    /// Time this span spends on the critical path, in nanoseconds.
    pub critical_ns: u64,
    pub warnings: Vec<String>,
}

impl Node {
    /// Duration in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// Whether the span failed.
    pub fn is_error(&self) -> bool {
        self.status == StatusCode::Error
    }
}

/// An assembled trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub trace_id: TraceId,
    /// The original free-string trace ID of phosphor annotations.
    pub legacy_id: Option<String>,
    /// Nodes in depth-first order; roots are the nodes without a parent.
    pub spans: Vec<Node>,
    pub warnings: Vec<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// The chain of span segments that bounds the trace's latency, in time
    /// order.
    pub critical_path: Vec<Segment>,
}

/// A stretch of time one span spends on the critical path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of the span in [`Trace::spans`].
    pub index: usize,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// How to assemble.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Correct clock skew between hosts (off: the data as stored).
    pub adjust_skew: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { adjust_skew: true }
    }
}

impl Trace {
    /// Duration in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// Services in order of first appearance.
    pub fn services(&self) -> Vec<&str> {
        let mut seen = HashSet::default();
        self.spans
            .iter()
            .filter(|n| !n.placeholder)
            .map(|n| n.service.as_str())
            .filter(|s| seen.insert(*s))
            .collect()
    }

    /// Spans that failed.
    pub fn error_count(&self) -> usize {
        self.spans.iter().filter(|n| n.is_error()).count()
    }

    /// The first root (the earliest-starting).
    pub fn root(&self) -> Option<&Node> {
        self.spans.first()
    }
}

fn us_to_ns(us: i64) -> u64 {
    u64::try_from(us).unwrap_or(0).saturating_mul(1_000)
}

fn blank_node(span_id: SpanId) -> Node {
    Node {
        span_id,
        parent_span_id: None,
        parent: None,
        children: vec![],
        depth: 0,
        name: Default::default(),
        service: Default::default(),
        kind: SpanKind::Unspecified,
        start_ns: 0,
        end_ns: 0,
        status: StatusCode::Unset,
        status_message: Default::default(),
        attributes: vec![],
        resource: vec![],
        events: vec![],
        links: vec![],
        protocols: vec![],
        side: None,
        annotations: vec![],
        incomplete: false,
        placeholder: false,
        legacy_span_id: None,
        host: None,
        skew_shift_ns: 0,
        critical_ns: 0,
        warnings: vec![],
    }
}

fn host_of(kvs: &[KeyValue]) -> Option<String> {
    ["host.name", "host.ip"].iter().find_map(|key| {
        kvs.iter()
            .find(|kv| kv.key == *key)
            .map(|kv| match &kv.value {
                Value::Str(s) => s.as_str().to_owned(),
                v => v.to_string(),
            })
    })
}

fn span_node(s: Span) -> Node {
    let host = host_of(&s.attributes).or_else(|| host_of(&s.resource));
    Node {
        host,
        parent_span_id: s.parent_span_id,
        name: s.name,
        service: s.service,
        kind: s.kind,
        start_ns: s.start_ns,
        end_ns: s.end_ns.max(s.start_ns),
        status: s.status,
        status_message: s.status_message,
        attributes: s.attributes,
        resource: s.resource,
        events: s.events,
        links: s.links,
        protocols: vec![s.protocol],
        ..blank_node(s.span_id)
    }
}

/// The annotations of one span ID, by side.
#[derive(Default)]
struct Group<'a> {
    client: Vec<&'a Annotation>,
    /// Server sides by host: several servers may answer one client.
    server: std::collections::BTreeMap<&'a str, Vec<&'a Annotation>>,
    events: Vec<&'a Annotation>,
}

fn first_of<'a>(anns: &[&'a Annotation], kind: AnnotationType) -> Option<&'a Annotation> {
    anns.iter()
        .filter(|a| a.kind == kind)
        .min_by_key(|a| a.timestamp_us)
        .copied()
}

/// Builds the node for one side (client or server) of an annotated span.
fn side_node(
    anns: &[&Annotation],
    side: Side,
    start_kind: AnnotationType,
    end_kind: AnnotationType,
    span_operation: Option<&str>,
) -> Node {
    let a0 = anns[0];
    let start = first_of(anns, start_kind);
    let end = first_of(anns, end_kind);
    let timeout = first_of(anns, AnnotationType::Timeout);
    let one_way = anns.iter().any(|a| a.one_way);

    let mut node = blank_node(a0.span_id);
    node.side = Some(side);
    node.parent_span_id = anns.iter().find_map(|a| a.parent_id);
    node.legacy_span_id = anns.iter().find_map(|a| a.legacy.span.clone());
    node.service = start.or(end).unwrap_or(a0).service().into();
    node.kind = a0.span_kind();
    // The side's own operation, else the one its other side names, else a
    // name made from the call.
    node.name = anns
        .iter()
        .find_map(|a| a.operation())
        .or_else(|| span_operation.map(str::to_string))
        .unwrap_or_else(|| start.or(end).unwrap_or(a0).default_name())
        .into();
    node.protocols = vec![Protocol::PhosphorUdp];
    node.host = start
        .or(end)
        .into_iter()
        .chain(anns.iter().copied())
        .map(|a| &a.hostname)
        .find(|h| !h.is_empty())
        .map(|h| h.to_string());

    let start_ns = start.map(|a| us_to_ns(a.timestamp_us)).or_else(|| {
        // An end that carries its duration gives the start too.
        end.or(timeout)
            .filter(|a| a.duration_us > 0)
            .map(|a| us_to_ns(a.timestamp_us - a.duration_us))
    });
    let end_ns = end
        .or(timeout)
        .map(|a| us_to_ns(a.timestamp_us))
        .or_else(|| {
            start
                .filter(|a| a.duration_us > 0)
                .map(|a| us_to_ns(a.timestamp_us + a.duration_us))
        });
    let earliest = anns
        .iter()
        .map(|a| us_to_ns(a.timestamp_us))
        .min()
        .unwrap_or(0);
    match (start_ns, end_ns) {
        (Some(s), Some(e)) => {
            node.start_ns = s;
            node.end_ns = e.max(s);
        }
        (Some(s), None) => {
            node.start_ns = s;
            node.end_ns = s;
            // A one-way message has no reply to wait for.
            node.incomplete = !one_way;
        }
        (None, Some(e)) => {
            node.start_ns = e;
            node.end_ns = e;
            node.incomplete = true;
        }
        (None, None) => {
            node.start_ns = earliest;
            node.end_ns = earliest;
            node.incomplete = true;
        }
    }
    if node.incomplete {
        let missing = if start_ns.is_none() {
            start_kind.as_str()
        } else {
            end_kind.as_str()
        };
        node.warnings
            .push(format!("incomplete span: no {missing} has arrived"));
    }
    if let Some(t) = timeout {
        node.status = StatusCode::Error;
        node.status_message = "timeout".into();
        if end.is_none() {
            node.end_ns = us_to_ns(t.timestamp_us).max(node.start_ns);
            node.incomplete = start_ns.is_none();
        }
    }

    let mut seen = HashSet::default();
    for a in anns {
        if !node.annotations.contains(&a.kind) {
            node.annotations.push(a.kind);
        }
        let mut add = |k: &str, v: &str| {
            if !v.is_empty() && seen.insert((k.to_string(), v.to_string())) {
                node.attributes.push(KeyValue::string(k, v));
            }
        };
        for (k, v) in &a.attributes {
            add(k, v);
        }
        add("host.name", &a.hostname);
        if side == Side::Client {
            add("peer.service", &a.destination);
        }
        add("phosphor.payload", &a.payload);
    }
    node
}

fn event_of(a: &Annotation) -> Event {
    let mut attributes: Vec<KeyValue> = a
        .attributes
        .iter()
        .map(|(k, v)| KeyValue::string(k.clone(), v.clone()))
        .collect();
    if !a.payload.is_empty() {
        attributes.push(KeyValue::string("phosphor.payload", a.payload.clone()));
    }
    if !a.hostname.is_empty() {
        attributes.push(KeyValue::string("host.name", a.hostname.clone()));
    }
    Event {
        time_ns: us_to_ns(a.timestamp_us),
        name: a.operation().unwrap_or_else(|| "annotation".into()).into(),
        attributes,
    }
}

/// Assembles a trace from its fragments, in any order, with clock skew
/// adjusted.
pub fn assemble(trace_id: TraceId, fragments: Vec<Fragment>) -> Trace {
    assemble_with(trace_id, fragments, Options::default())
}

/// Drops exact duplicates (a client that resent, a retried export),
/// keeping the first of each, and says whether any span ID is repeated.
/// Only fragments of one span ID can be equal, so only those are compared,
/// by their encoded bytes: a trace of distinct spans is returned as it is.
fn dedup(fragments: Vec<Fragment>) -> (Vec<Fragment>, bool) {
    let id = |f: &Fragment| match f {
        Fragment::Span(s) => s.span_id,
        Fragment::Annotation(a) => a.span_id,
    };
    let mut per_id: HashMap<SpanId, usize> =
        HashMap::with_capacity_and_hasher(fragments.len(), Default::default());
    for f in &fragments {
        *per_id.entry(id(f)).or_default() += 1;
    }
    if per_id.len() == fragments.len() {
        return (fragments, false);
    }
    let mut seen = HashSet::default();
    let kept: Vec<Fragment> = fragments
        .into_iter()
        .filter(|f| {
            per_id[&id(f)] == 1 || seen.insert(postcard::to_allocvec(f).unwrap_or_default())
        })
        .collect();
    (kept, true)
}

/// Assembles a trace from its fragments, in any order.
pub fn assemble_with(trace_id: TraceId, fragments: Vec<Fragment>, options: Options) -> Trace {
    // Spans move into nodes as they are; annotations are grouped by span
    // first (by reference).
    let (fragments, repeated) = dedup(fragments);
    let spans_in = fragments
        .iter()
        .filter(|f| matches!(f, Fragment::Span(_)))
        .count();
    // Spans straight into their nodes (a span is large: one move, not two).
    let mut nodes: Vec<Node> = Vec::with_capacity(spans_in);
    let mut annotations = Vec::with_capacity(fragments.len() - spans_in);
    for f in fragments {
        match f {
            Fragment::Span(s) => nodes.push(span_node(s)),
            Fragment::Annotation(a) => annotations.push(a),
        }
    }

    let mut legacy_id = None;
    let mut groups: HashMap<SpanId, Group<'_>> = HashMap::default();
    let mut group_order: Vec<SpanId> = Vec::new();
    for a in &annotations {
        if legacy_id.is_none() {
            legacy_id = a.legacy.trace.clone();
        }
        let g = groups.entry(a.span_id).or_insert_with(|| {
            group_order.push(a.span_id);
            Group::default()
        });
        match a.kind.side() {
            Side::Client => g.client.push(a),
            Side::Server => g.server.entry(&a.hostname).or_default().push(a),
            Side::Event => g.events.push(a),
        }
    }
    // Spans that share an ID and a role but differ: the trace still renders,
    // and says so.
    let mut roles: HashMap<(SpanId, bool), usize> = HashMap::default();
    let role = |n: &Node| {
        (
            n.span_id,
            matches!(n.kind, SpanKind::Server | SpanKind::Consumer),
        )
    };
    // Only a repeated span ID can conflict. (So far `nodes` holds the spans'
    // nodes only.)
    for n in nodes.iter().filter(|_| repeated) {
        *roles.entry(role(n)).or_default() += 1;
    }
    let conflicting: HashSet<(SpanId, bool)> = roles
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k)
        .collect();
    let mut conflict_warnings = Vec::new();
    for &(id, _) in &conflicting {
        conflict_warnings.push(format!(
            "span {id} arrived more than once with different content; every version is shown"
        ));
    }
    conflict_warnings.sort();
    if !conflicting.is_empty() {
        for n in &mut nodes {
            if conflicting.contains(&role(n)) {
                n.warnings.push(
                    "conflicting duplicate: this span ID arrived with different content".into(),
                );
            }
        }
    }

    // Arrival order must not matter: each side in time order.
    for g in groups.values_mut() {
        for v in [&mut g.client, &mut g.events]
            .into_iter()
            .chain(g.server.values_mut())
        {
            v.sort_by(|a, b| {
                (a.timestamp_us, a.kind.as_str(), &a.attributes).cmp(&(
                    b.timestamp_us,
                    b.kind.as_str(),
                    &b.attributes,
                ))
            });
        }
    }
    group_order.sort();
    for id in &group_order {
        let g = &groups[id];
        let span_operation = g
            .client
            .iter()
            .chain(g.server.values().flatten())
            .find_map(|a| a.operation());
        let span_operation = span_operation.as_deref();
        let client = (!g.client.is_empty()).then(|| {
            side_node(
                &g.client,
                Side::Client,
                AnnotationType::ClientSend,
                AnnotationType::ClientRecv,
                span_operation,
            )
        });
        let mut servers: Vec<Node> = g
            .server
            .values()
            .map(|anns| {
                side_node(
                    anns,
                    Side::Server,
                    AnnotationType::ServerRecv,
                    AnnotationType::ServerSend,
                    span_operation,
                )
            })
            .collect();
        servers.sort_by_key(|n| n.start_ns);
        let events: Vec<Event> = g.events.iter().map(|a| event_of(a)).collect();
        match (client, servers.is_empty()) {
            (None, true) => {
                // Only events: a span we know nothing else about.
                let mut n = side_node(
                    &g.events,
                    Side::Event,
                    AnnotationType::Annotation,
                    AnnotationType::Annotation,
                    None,
                );
                n.events = events;
                n.incomplete = true;
                n.warnings = vec!["only ANNOTATION fragments of this span have arrived".into()];
                n.name = format!("span {}", id).into();
                n.end_ns = n
                    .events
                    .iter()
                    .map(|e| e.time_ns)
                    .max()
                    .unwrap_or(n.start_ns);
                nodes.push(n);
            }
            (client, no_server) => {
                if let Some(mut c) = client {
                    if no_server {
                        c.events = events.clone();
                    }
                    nodes.push(c);
                }
                // Events go on the first server side, where the work was.
                let mut events = Some(events);
                for mut s in servers {
                    if let Some(e) = events.take() {
                        s.events = e;
                    }
                    nodes.push(s);
                }
            }
        }
    }

    let mut t = link_tree(trace_id, legacy_id, nodes);
    t.warnings.extend(conflict_warnings);
    if options.adjust_skew {
        adjust_skew(&mut t);
    }
    t.critical_path = critical_path(&mut t);
    t
}

/// Resolves parents, adds placeholders for missing ones, and orders the
/// nodes depth-first with children by start time.
fn link_tree(trace_id: TraceId, legacy_id: Option<String>, mut nodes: Vec<Node>) -> Trace {
    let mut warnings = Vec::new();
    // The nodes of each span ID, in index order: the first here, each
    // one's next in `next_same`.
    const NONE: usize = usize::MAX;
    let mut first_of_id: HashMap<SpanId, usize> =
        HashMap::with_capacity_and_hasher(nodes.len(), Default::default());
    let mut next_same = vec![NONE; nodes.len()];
    for (i, n) in nodes.iter().enumerate().rev() {
        if let Some(next) = first_of_id.insert(n.span_id, i) {
            next_same[i] = next;
        }
    }
    let same_id = |id: &SpanId| {
        std::iter::successors(first_of_id.get(id).copied(), |&j| {
            Some(next_same[j]).filter(|&k| k != NONE)
        })
    };

    // A server side hangs under its own client side; every other node under
    // the node its parent ID names, preferring that span's server side.
    let mut parent: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut missing: HashMap<SpanId, Vec<usize>> = HashMap::default();
    let mut missing_order = Vec::new();
    for i in 0..nodes.len() {
        let n = &nodes[i];
        // A server side sharing its client's span ID (phosphor annotations,
        // Zipkin's shared spans) hangs under that client side.
        let server_like = n.side == Some(Side::Server)
            || (n.side.is_none() && matches!(n.kind, SpanKind::Server | SpanKind::Consumer));
        if server_like
            && let Some(c) = same_id(&n.span_id).find(|&j| {
                nodes[j].side == Some(Side::Client)
                    || (nodes[j].side.is_none()
                        && matches!(nodes[j].kind, SpanKind::Client | SpanKind::Producer))
            })
        {
            parent[i] = Some(c);
            continue;
        }
        let Some(pid) = n.parent_span_id else {
            continue;
        };
        if first_of_id.contains_key(&pid) {
            // The caller's own process: a server side, and of several
            // servers the one on the host this call was made from.
            parent[i] = same_id(&pid).filter(|&j| j != i).min_by_key(|&j| {
                let c = &nodes[j];
                let server_like = c.side == Some(Side::Server)
                    || matches!(c.kind, SpanKind::Server | SpanKind::Consumer);
                let same_host = c.host.is_some() && c.host == n.host;
                (!server_like, !same_host, j)
            });
        } else {
            missing
                .entry(pid)
                .or_insert_with(|| {
                    missing_order.push(pid);
                    Vec::new()
                })
                .push(i);
        }
    }

    for pid in missing_order {
        let children = &missing[&pid];
        let mut p = blank_node(pid);
        p.placeholder = true;
        p.incomplete = true;
        p.name = "missing span".into();
        p.service = "unknown".into();
        p.start_ns = children
            .iter()
            .map(|&c| nodes[c].start_ns)
            .min()
            .unwrap_or(0);
        p.end_ns = children.iter().map(|&c| nodes[c].end_ns).max().unwrap_or(0);
        p.warnings.push(format!(
            "span {pid} is the parent of {} span(s) but has not arrived",
            children.len()
        ));
        warnings.push(format!(
            "missing parent span {pid}: {} span(s) hang under a placeholder",
            children.len()
        ));
        let idx = nodes.len();
        nodes.push(p);
        parent.push(None);
        for &c in children {
            parent[c] = Some(idx);
        }
    }

    // Break cycles (A's parent is B, B's parent is A): a node that cannot
    // reach a root becomes one.
    let n = nodes.len();
    let mut state = vec![0u8; n]; // 0 unknown, 1 on path, 2 reaches a root
    for start in 0..n {
        let mut path = Vec::new();
        let mut cur = start;
        loop {
            if state[cur] == 2 {
                break;
            }
            if state[cur] == 1 {
                // `cur` closes a cycle: cut it there.
                parent[cur] = None;
                nodes[cur]
                    .warnings
                    .push("parent references form a cycle; shown as a root".into());
                warnings.push(format!(
                    "span {} is part of a parent cycle",
                    nodes[cur].span_id
                ));
                break;
            }
            state[cur] = 1;
            path.push(cur);
            match parent[cur] {
                Some(p) => cur = p,
                None => break,
            }
        }
        for p in path {
            state[p] = 2;
        }
    }

    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, p) in parent.iter().enumerate() {
        match p {
            Some(p) => children[*p].push(i),
            None => roots.push(i),
        }
    }
    let by_start = |a: &usize, b: &usize| {
        let (x, y) = (&nodes[*a], &nodes[*b]);
        (x.start_ns, x.end_ns, &x.name).cmp(&(y.start_ns, y.end_ns, &y.name))
    };
    roots.sort_by(by_start);
    for c in children.iter_mut() {
        c.sort_by(by_start);
    }

    // Depth-first order, iteratively (traces can be deep).
    let mut order = Vec::with_capacity(n);
    let mut depth = vec![0usize; n];
    let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
    while let Some(i) = stack.pop() {
        order.push(i);
        for &c in children[i].iter().rev() {
            depth[c] = depth[i] + 1;
            stack.push(c);
        }
    }
    // Every node has at most one parent and, cycles cut, reaches a root:
    // the walk visits each once, so `new_index` is a permutation (the swaps
    // below would not end otherwise).
    assert_eq!(order.len(), n, "the depth-first walk visits every node");
    let mut new_index = vec![0usize; n];
    for (pos, &i) in order.iter().enumerate() {
        new_index[i] = pos;
    }
    // Each node learns its place, then the nodes move there in place, one
    // swap a node at most: a large node is not copied into a second list.
    for (i, node) in nodes.iter_mut().enumerate() {
        node.parent = parent[i].map(|p| new_index[p]);
        // The list of children, renumbered in place.
        let mut kids = std::mem::take(&mut children[i]);
        for c in &mut kids {
            *c = new_index[*c];
        }
        node.children = kids;
        node.depth = depth[i];
    }
    for i in 0..n {
        while new_index[i] != i {
            let j = new_index[i];
            nodes.swap(i, j);
            new_index.swap(i, j);
        }
    }
    let out = nodes;

    let start_ns = out.iter().map(|n| n.start_ns).min().unwrap_or(0);
    let end_ns = out.iter().map(|n| n.end_ns).max().unwrap_or(0);
    let incomplete = out
        .iter()
        .filter(|n| n.incomplete && !n.placeholder)
        .count();
    if incomplete > 0 {
        warnings.push(format!("{incomplete} span(s) are incomplete"));
    }
    Trace {
        trace_id,
        legacy_id,
        spans: out,
        warnings,
        start_ns,
        end_ns,
        critical_path: Vec::new(),
    }
}

fn is_caller(n: &Node) -> bool {
    matches!(n.kind, SpanKind::Client | SpanKind::Producer)
}

fn is_callee(n: &Node) -> bool {
    matches!(n.kind, SpanKind::Server | SpanKind::Consumer)
}

/// A signed shift for people: `+600ns`, `-47µs`, `+1.5ms`.
fn micros(ns: i64) -> String {
    match ns.unsigned_abs() {
        0..1_000 => format!("{ns:+}ns"),
        1_000..1_000_000 => format!("{:+}µs", ns / 1_000),
        _ => format!("{:+.1}ms", ns as f64 / 1e6),
    }
}

/// Corrects clock skew across client → server edges between hosts (the
/// Zipkin and Jaeger rule): a server side that falls outside its client
/// side moves, with its whole subtree, to the middle of the client side,
/// leaving half the unexplained latency on each side. A one-way message
/// received before it was sent moves to the send. Same-host edges never
/// move, and a server side longer than its client is left as it is (no
/// shift can explain it). Every moved span says by how much.
pub fn adjust_skew(t: &mut Trace) {
    let n = t.spans.len();
    let mut shift = vec![0i64; n];
    let mut own: Vec<Option<String>> = vec![None; n];
    let mut unexplained = Vec::new();
    // Depth-first order: a parent's shift is known before its children's.
    for i in 0..n {
        let Some(p) = t.spans[i].parent else { continue };
        shift[i] = shift[p];
        let (parent, child) = (&t.spans[p], &t.spans[i]);
        if !(is_caller(parent) && is_callee(child))
            || parent.placeholder
            || parent.incomplete
            || child.incomplete
            || (parent.host.is_some() && parent.host == child.host)
        {
            continue;
        }
        let ps = parent.start_ns as i64 + shift[p];
        let pe = parent.end_ns as i64 + shift[p];
        let cs = child.start_ns as i64 + shift[i];
        let ce = child.end_ns as i64 + shift[i];
        let one_way = parent.kind == SpanKind::Producer || child.kind == SpanKind::Consumer;
        let delta = if one_way {
            (ps - cs).max(0)
        } else if cs >= ps && ce <= pe {
            0
        } else if ce - cs > pe - ps {
            let w = format!(
                "clock skew: this server side lasts longer than its client side ({} vs {}); \
                 no shift explains that, so it is shown as stored",
                micros(ce - cs),
                micros(pe - ps)
            );
            unexplained.push((i, w));
            0
        } else {
            ps + ((pe - ps) - (ce - cs)) / 2 - cs
        };
        if delta != 0 {
            shift[i] += delta;
            own[i] = Some(format!(
                "clock skew: moved {} to sit inside its client span (host {} called host {})",
                micros(delta),
                parent.host.as_deref().unwrap_or("unknown"),
                child.host.as_deref().unwrap_or("unknown"),
            ));
        }
    }
    for (i, w) in unexplained {
        t.spans[i].warnings.push(w);
    }
    let mut moved = 0;
    for (i, node) in t.spans.iter_mut().enumerate() {
        let d = shift[i];
        if d == 0 {
            continue;
        }
        moved += 1;
        let mv = |x: u64| (x as i64 + d).max(0) as u64;
        node.start_ns = mv(node.start_ns);
        node.end_ns = mv(node.end_ns);
        for e in &mut node.events {
            e.time_ns = mv(e.time_ns);
        }
        node.skew_shift_ns = d;
        if let Some(w) = own[i].take() {
            node.warnings.push(w);
        }
        let with_parent = node.parent.map_or(0, |p| shift[p]);
        if with_parent != 0 {
            node.warnings.push(format!(
                "clock skew: moved {} with its parent",
                micros(with_parent)
            ));
        }
    }
    if moved > 0 {
        t.warnings.push(format!(
            "clock skew adjusted on {moved} span(s); raw=true shows the data as stored"
        ));
        t.start_ns = t.spans.iter().map(|n| n.start_ns).min().unwrap_or(0);
        t.end_ns = t.spans.iter().map(|n| n.end_ns).max().unwrap_or(0);
    }
}

/// The critical path: from the end of the trace backwards, the
/// last-finishing child of each span (clipped to its parent), then the
/// child that finished before that one started, and so on; the time no
/// child covers belongs to the span itself. Returns the segments in time
/// order and sets each span's `critical_ns`.
pub fn critical_path(t: &mut Trace) -> Vec<Segment> {
    struct Frame {
        owner: Option<usize>,
        kids: Vec<usize>,
        next: usize,
        lo: u64,
        hi: u64,
        cursor: u64,
    }
    let spans = &t.spans;
    let sorted = |kids: Vec<usize>| {
        let mut k = kids;
        k.sort_by_key(|&c| (std::cmp::Reverse(spans[c].end_ns), spans[c].start_ns, c));
        k
    };
    let roots: Vec<usize> = (0..spans.len())
        .filter(|&i| spans[i].parent.is_none())
        .collect();
    let mut out = Vec::new();
    let mut stack = vec![Frame {
        owner: None,
        kids: sorted(roots),
        next: 0,
        lo: t.start_ns,
        hi: t.end_ns,
        cursor: t.end_ns,
    }];
    while let Some(f) = stack.last_mut() {
        if f.next < f.kids.len() {
            let c = f.kids[f.next];
            f.next += 1;
            let cs = spans[c].start_ns.max(f.lo);
            let ce = spans[c].end_ns.min(f.hi);
            if ce > f.cursor || ce <= cs {
                continue;
            }
            if let Some(o) = f.owner
                && f.cursor > ce
            {
                out.push(Segment {
                    index: o,
                    start_ns: ce,
                    end_ns: f.cursor,
                });
            }
            f.cursor = cs;
            let kids = sorted(spans[c].children.clone());
            stack.push(Frame {
                owner: Some(c),
                kids,
                next: 0,
                lo: cs,
                hi: ce,
                cursor: ce,
            });
        } else {
            if let Some(o) = f.owner
                && f.cursor > f.lo
            {
                out.push(Segment {
                    index: o,
                    start_ns: f.lo,
                    end_ns: f.cursor,
                });
            }
            stack.pop();
        }
    }
    out.sort_by_key(|s| (s.start_ns, s.index));
    for seg in &out {
        t.spans[seg.index].critical_ns += seg.end_ns - seg.start_ns;
    }
    out
}

/// Renders an attribute value as JSON.
pub fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) => s.as_str().into(),
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Double(d) => serde_json::Number::from_f64(*d)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| d.to_string().into()),
        Value::Bytes(b) => hex::encode(b).into(),
        Value::Array(items) => items.iter().map(value_json).collect(),
        Value::Map(kvs) => attributes_json(kvs),
    }
}

/// Attributes serialized as one JSON object, exactly as
/// [`attributes_json`] renders them (keys in order, a later duplicate key
/// wins), without building a JSON value first.
#[derive(Debug, Clone, Copy)]
pub struct AttributesJson<'a>(pub &'a [KeyValue]);

impl serde::Serialize for AttributesJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let shown = shown_attributes(self.0);
        let mut m = ser.serialize_map(Some(shown.len()))?;
        for kv in shown.iter() {
            m.serialize_entry(&kv.key, &ValueJson(&kv.value))?;
        }
        m.end()
    }
}

/// Attributes in the order the API shows them: by key, a later duplicate
/// winning. The store writes attributes in key order, so most arrive
/// shown as they are, with nothing allocated.
pub fn shown_attributes(kvs: &[KeyValue]) -> Shown<'_> {
    if kvs.windows(2).all(|w| key_before(&w[0].key, &w[1].key)) {
        return Shown::AsTheyAre(kvs);
    }
    let mut sorted: Vec<&KeyValue> = kvs.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key)); // stable: arrival order kept among equals
    sorted.reverse();
    sorted.dedup_by(|later, earlier| later.key == earlier.key);
    sorted.reverse();
    Shown::Sorted(sorted)
}

/// Whether key `a` comes strictly before key `b` (the order of `str`).
/// Most neighbouring attribute keys differ within their first eight bytes,
/// so those are compared as one number first: a trace's JSON checks every
/// pair of neighbouring keys of every span, and the plain comparison (a
/// library `memcmp` a pair) was a tenth of that JSON's time.
fn key_before(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if let (Some(x), Some(y)) = (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        let (x, y) = (u64::from_be_bytes(*x), u64::from_be_bytes(*y));
        if x != y {
            return x < y;
        }
        return a[8..] < b[8..];
    }
    a < b
}

/// Attributes as shown: see [`shown_attributes`].
#[derive(Debug)]
pub enum Shown<'a> {
    /// Already in key order, no key repeated.
    AsTheyAre(&'a [KeyValue]),
    /// Sorted by key, a repeated key's last value kept.
    Sorted(Vec<&'a KeyValue>),
}

impl<'a> Shown<'a> {
    /// How many attributes are shown.
    pub fn len(&self) -> usize {
        match self {
            Shown::AsTheyAre(kvs) => kvs.len(),
            Shown::Sorted(kvs) => kvs.len(),
        }
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shown attributes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a KeyValue> + '_ {
        let (direct, sorted) = match self {
            Shown::AsTheyAre(kvs) => (Some(kvs.iter()), None),
            Shown::Sorted(kvs) => (None, Some(kvs.iter().copied())),
        };
        direct
            .into_iter()
            .flatten()
            .chain(sorted.into_iter().flatten())
    }
}

/// One attribute value serialized as [`value_json`] renders it.
#[derive(Debug, Clone, Copy)]
pub struct ValueJson<'a>(pub &'a Value);

impl serde::Serialize for ValueJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Str(s) => ser.serialize_str(s),
            Value::Bool(b) => ser.serialize_bool(*b),
            Value::Int(i) => ser.serialize_i64(*i),
            Value::Double(d) if d.is_finite() => ser.serialize_f64(*d),
            Value::Double(d) => ser.serialize_str(&d.to_string()),
            Value::Bytes(b) => ser.serialize_str(&hex::encode(b)),
            Value::Array(items) => ser.collect_seq(items.iter().map(ValueJson)),
            Value::Map(kvs) => AttributesJson(kvs).serialize(ser),
        }
    }
}

/// Renders attributes as one JSON object (a later duplicate key wins).
pub fn attributes_json(kvs: &[KeyValue]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for kv in kvs {
        m.insert(kv.key.to_string(), value_json(&kv.value));
    }
    serde_json::Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_order_check_agrees_with_str_order() {
        // Keys around the eight bytes compared at once: equal heads, one a
        // prefix of the other, zero bytes, bytes with the high bit set.
        let parts = [
            "",
            "a",
            "b",
            "\0",
            "é",
            "http.",
            "net.peer",
            "net.peer.",
            "~",
        ];
        let mut keys = vec![String::new()];
        for x in parts {
            for y in parts {
                for z in parts {
                    keys.push(format!("{x}{y}{z}"));
                }
            }
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(key_before(a, b), a < b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn attributes_serialize_as_their_json_value() {
        let kvs = vec![
            KeyValue::string("b", "x\"<y>"),
            KeyValue {
                key: "a".into(),
                value: Value::Double(f64::NAN),
            },
            KeyValue {
                key: "c".into(),
                value: Value::Array(vec![Value::Int(1), Value::Bool(true), Value::Double(1.5)]),
            },
            KeyValue {
                key: "d".into(),
                value: Value::Map(vec![KeyValue::string("z", "1"), KeyValue::string("y", "2")]),
            },
            KeyValue {
                key: "e".into(),
                value: Value::Bytes(vec![0xab, 0x01]),
            },
            KeyValue::string("b", "later wins"),
        ];
        assert_eq!(
            serde_json::to_value(AttributesJson(&kvs)).unwrap(),
            attributes_json(&kvs)
        );
        assert_eq!(
            serde_json::to_string(&AttributesJson(&kvs)).unwrap(),
            attributes_json(&kvs).to_string()
        );
    }
    use phosphor_store::model::LegacyIds;

    const T: TraceId = TraceId([7; 16]);

    fn sid(n: u8) -> SpanId {
        SpanId([n; 8])
    }

    fn ann(kind: AnnotationType, span: u8, parent: Option<u8>, ts: i64) -> Fragment {
        Fragment::Annotation(Annotation {
            trace_id: T,
            span_id: sid(span),
            parent_id: parent.map(sid),
            legacy: LegacyIds::default(),
            kind,
            one_way: false,
            timestamp_us: ts,
            duration_us: 0,
            hostname: "host".into(),
            origin: "api".into(),
            destination: "card-api".into(),
            payload: Default::default(),
            attributes: vec![],
        })
    }

    fn otlp(span: u8, parent: Option<u8>, start: u64, end: u64, name: &str) -> Fragment {
        Fragment::Span(Span {
            trace_id: T,
            span_id: sid(span),
            parent_span_id: parent.map(sid),
            name: name.into(),
            kind: SpanKind::Internal,
            service: "svc".into(),
            start_ns: start,
            end_ns: end,
            status: StatusCode::Unset,
            status_message: Default::default(),
            attributes: vec![],
            resource: vec![],
            scope: None,
            events: vec![],
            links: vec![],
            protocol: Protocol::OtlpGrpc,
        })
    }

    use AnnotationType::{ClientRecv, ClientSend, ServerRecv, ServerSend, Timeout};

    fn rpc() -> Vec<Fragment> {
        vec![
            ann(ClientSend, 1, None, 100),
            ann(ServerRecv, 1, None, 110),
            ann(ServerSend, 1, None, 190),
            ann(ClientRecv, 1, None, 200),
        ]
    }

    #[test]
    fn client_and_server_sides_become_parent_and_child() {
        let t = assemble(T, rpc());
        assert_eq!(t.spans.len(), 2);
        let (c, s) = (&t.spans[0], &t.spans[1]);
        assert_eq!(c.side, Some(Side::Client));
        assert_eq!((c.start_ns, c.end_ns), (100_000, 200_000));
        assert_eq!(c.service, "api");
        assert_eq!(c.kind, SpanKind::Client);
        assert_eq!(s.side, Some(Side::Server));
        assert_eq!((s.start_ns, s.end_ns), (110_000, 190_000));
        assert_eq!(s.service, "card-api");
        assert_eq!(s.parent, Some(0));
        assert_eq!(s.depth, 1);
        assert_eq!(c.children, vec![1]);
        assert!(!c.incomplete && !s.incomplete);
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    }

    #[test]
    fn a_side_without_an_operation_takes_its_other_sides() {
        let mut f = rpc();
        if let Fragment::Annotation(a) = &mut f[0] {
            a.attributes.push(("operation".into(), "authorise".into()));
        }
        let t = assemble(T, f);
        assert_eq!(t.spans[0].name, "authorise");
        assert_eq!(t.spans[1].name, "authorise");
    }

    #[test]
    fn fragment_order_does_not_matter() {
        let forward = assemble(T, rpc());
        let mut rev = rpc();
        rev.reverse();
        assert_eq!(assemble(T, rev), forward);
        let mut shuffled = rpc();
        shuffled.swap(0, 2);
        assert_eq!(assemble(T, shuffled), forward);
    }

    #[test]
    fn exact_duplicates_are_dropped() {
        let mut f = rpc();
        f.extend(rpc());
        assert_eq!(assemble(T, f), assemble(T, rpc()));
    }

    #[test]
    fn timeout_ends_the_client_side_with_an_error() {
        let t = assemble(
            T,
            vec![ann(ClientSend, 1, None, 100), ann(Timeout, 1, None, 5_100)],
        );
        let c = &t.spans[0];
        assert_eq!(c.status, StatusCode::Error);
        assert_eq!(c.status_message, "timeout");
        assert_eq!((c.start_ns, c.end_ns), (100_000, 5_100_000));
        assert!(!c.incomplete);
    }

    #[test]
    fn a_missing_end_marks_the_span_incomplete() {
        let t = assemble(T, vec![ann(ClientSend, 1, None, 100)]);
        assert!(t.spans[0].incomplete);
        assert!(t.spans[0].warnings[0].contains("CLIENT_RECV"));
        assert!(t.warnings.iter().any(|w| w.contains("incomplete")));
    }

    #[test]
    fn one_way_send_is_complete_without_a_reply() {
        let mut f = ann(ClientSend, 1, None, 100);
        if let Fragment::Annotation(a) = &mut f {
            a.one_way = true;
        }
        let t = assemble(T, vec![f]);
        assert!(!t.spans[0].incomplete);
        assert_eq!(t.spans[0].kind, SpanKind::Producer);
    }

    #[test]
    fn annotation_becomes_an_event_on_its_span() {
        let mut f = rpc();
        let mut e = ann(AnnotationType::Annotation, 1, None, 150);
        if let Fragment::Annotation(a) = &mut e {
            a.attributes.push(("name".into(), "cache miss".into()));
        }
        f.push(e);
        let t = assemble(T, f);
        assert_eq!(t.spans.len(), 2);
        // On the server side, where the work happened.
        assert_eq!(t.spans[1].events.len(), 1);
        assert_eq!(t.spans[1].events[0].name, "cache miss");
        assert_eq!(t.spans[1].events[0].time_ns, 150_000);
    }

    #[test]
    fn nested_calls_hang_under_the_callers_server_side() {
        let mut f = rpc();
        f.push(ann(ClientSend, 2, Some(1), 120));
        f.push(ann(ClientRecv, 2, Some(1), 150));
        let t = assemble(T, f);
        assert_eq!(t.spans.len(), 3);
        assert_eq!(t.spans[2].span_id, sid(2));
        assert_eq!(t.spans[2].parent, Some(1));
        assert_eq!(t.spans[1].side, Some(Side::Server));
        assert_eq!(t.spans[2].depth, 2);
    }

    #[test]
    fn otlp_spans_link_by_parent_and_order_children_by_start() {
        let t = assemble(
            T,
            vec![
                otlp(3, Some(1), 50, 60, "late"),
                otlp(2, Some(1), 20, 30, "early"),
                otlp(1, None, 0, 100, "root"),
            ],
        );
        let names: Vec<_> = t.spans.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["root", "early", "late"]);
        assert_eq!(t.spans[0].children, vec![1, 2]);
        assert_eq!((t.start_ns, t.end_ns), (0, 100));
    }

    #[test]
    fn missing_parents_hang_under_a_placeholder() {
        let t = assemble(
            T,
            vec![otlp(2, Some(9), 20, 30, "a"), otlp(3, Some(9), 25, 40, "b")],
        );
        assert_eq!(t.spans.len(), 3);
        let p = &t.spans[0];
        assert!(p.placeholder && p.incomplete);
        assert_eq!(p.span_id, sid(9));
        assert_eq!((p.start_ns, p.end_ns), (20, 40));
        assert_eq!(p.children, vec![1, 2]);
        assert!(t.warnings.iter().any(|w| w.contains("missing parent")));
    }

    #[test]
    fn parent_cycles_do_not_hang_or_lose_spans() {
        let t = assemble(
            T,
            vec![otlp(1, Some(2), 0, 10, "a"), otlp(2, Some(1), 0, 10, "b")],
        );
        assert_eq!(t.spans.len(), 2);
        assert!(t.warnings.iter().any(|w| w.contains("cycle")));
    }

    fn span_on(
        id: u8,
        parent: Option<u8>,
        kind: SpanKind,
        host: &str,
        start: u64,
        end: u64,
    ) -> Fragment {
        let Fragment::Span(mut s) = otlp(id, parent, start, end, &format!("s{id}")) else {
            unreachable!()
        };
        s.kind = kind;
        s.resource.push(KeyValue::string("host.name", host));
        Fragment::Span(s)
    }

    fn times(t: &Trace, id: u8) -> (u64, u64) {
        let n = t.spans.iter().find(|n| n.span_id == sid(id)).unwrap();
        (n.start_ns, n.end_ns)
    }

    fn node(t: &Trace, id: u8) -> &Node {
        t.spans.iter().find(|n| n.span_id == sid(id)).unwrap()
    }

    use SpanKind::{Client, Consumer, Internal, Producer, Server};

    #[test]
    fn a_server_that_starts_before_its_client_moves_inside_it_with_its_subtree() {
        let f = vec![
            span_on(1, None, Client, "a", 1_000, 2_000),
            span_on(2, Some(1), Server, "b", 500, 1_300),
            span_on(3, Some(2), Internal, "b", 600, 700),
        ];
        let t = assemble(T, f.clone());
        assert_eq!(times(&t, 2), (1_100, 1_900), "centred: 100 on each side");
        assert_eq!(times(&t, 3), (1_200, 1_300), "moved with its parent");
        assert_eq!(node(&t, 2).skew_shift_ns, 600);
        assert!(
            node(&t, 2).warnings[0].contains("moved +0µs")
                || node(&t, 2).warnings[0].contains("clock skew")
        );
        assert!(
            node(&t, 3)
                .warnings
                .iter()
                .any(|w| w.contains("with its parent"))
        );
        assert!(
            t.warnings
                .iter()
                .any(|w| w.contains("clock skew adjusted on 2"))
        );
        // raw: as stored.
        let raw = assemble_with(T, f, Options { adjust_skew: false });
        assert_eq!(times(&raw, 2), (500, 1_300));
        assert_eq!(node(&raw, 2).skew_shift_ns, 0);
    }

    #[test]
    fn a_server_longer_than_its_client_cannot_be_explained_and_stays() {
        let t = assemble(
            T,
            vec![
                span_on(1, None, Client, "a", 1_000, 2_000),
                span_on(2, Some(1), Server, "b", 900, 2_200),
            ],
        );
        assert_eq!(times(&t, 2), (900, 2_200));
        assert!(node(&t, 2).warnings[0].contains("lasts longer than its client"));
    }

    #[test]
    fn one_way_messages_move_only_when_received_before_sent() {
        let t = assemble(
            T,
            vec![
                span_on(1, None, Producer, "a", 1_000, 1_010),
                span_on(2, Some(1), Consumer, "b", 500, 5_000),
            ],
        );
        assert_eq!(times(&t, 2), (1_000, 5_500));
        // Received after the producer finished: normal for a queue.
        let t = assemble(
            T,
            vec![
                span_on(1, None, Producer, "a", 1_000, 1_010),
                span_on(2, Some(1), Consumer, "b", 3_000, 9_000),
            ],
        );
        assert_eq!(times(&t, 2), (3_000, 9_000));
        assert_eq!(node(&t, 2).skew_shift_ns, 0);
    }

    #[test]
    fn same_host_edges_are_never_shifted() {
        let t = assemble(
            T,
            vec![
                span_on(1, None, Client, "a", 1_000, 2_000),
                span_on(2, Some(1), Server, "a", 500, 1_300),
            ],
        );
        assert_eq!(times(&t, 2), (500, 1_300));
        assert!(t.warnings.iter().all(|w| !w.contains("clock skew")));
    }

    #[test]
    fn nested_skew_on_two_hops() {
        let t = assemble(
            T,
            vec![
                span_on(1, None, Client, "a", 0, 10_000),
                span_on(2, Some(1), Server, "b", 20_000, 28_000),
                span_on(3, Some(2), Client, "b", 21_000, 27_000),
                span_on(4, Some(3), Server, "c", 50_000, 55_000),
            ],
        );
        assert_eq!(times(&t, 2), (1_000, 9_000));
        assert_eq!(times(&t, 3), (2_000, 8_000));
        assert_eq!(times(&t, 4), (2_500, 7_500));
        assert_eq!(node(&t, 4).skew_shift_ns, -47_500);
        assert_eq!((t.start_ns, t.end_ns), (0, 10_000));
    }

    fn crit(t: &Trace) -> Vec<(String, u64, u64)> {
        t.critical_path
            .iter()
            .map(|s| (t.spans[s.index].name.to_string(), s.start_ns, s.end_ns))
            .collect()
    }

    #[test]
    fn critical_path_walks_the_last_finishing_child_first() {
        let t = assemble(
            T,
            vec![
                otlp(1, None, 0, 100, "root"),
                otlp(2, Some(1), 10, 25, "a"),
                otlp(3, Some(1), 30, 90, "b"),
                otlp(4, Some(1), 50, 60, "c"),
            ],
        );
        let s = |n: &str, a, b| (n.to_string(), a, b);
        assert_eq!(
            crit(&t),
            vec![
                s("root", 0, 10),
                s("a", 10, 25),
                s("root", 25, 30),
                s("b", 30, 90),
                s("root", 90, 100)
            ]
        );
        assert_eq!(node(&t, 1).critical_ns, 25);
        assert_eq!(
            node(&t, 4).critical_ns,
            0,
            "c overlaps b, which finished later"
        );
    }

    #[test]
    fn critical_path_clips_children_that_outlive_their_parent() {
        let t = assemble(
            T,
            vec![
                otlp(1, None, 0, 100, "root"),
                otlp(2, Some(1), 50, 150, "late"),
            ],
        );
        let s = |n: &str, a, b| (n.to_string(), a, b);
        assert_eq!(crit(&t), vec![s("root", 0, 50), s("late", 50, 100)]);
    }

    #[test]
    fn several_servers_answering_one_client_stay_distinct() {
        let mut f = vec![ann(ClientSend, 1, None, 100), ann(ClientRecv, 1, None, 200)];
        for (host, sr, ss) in [("s1", 110, 150), ("s2", 120, 190)] {
            for (kind, ts) in [(ServerRecv, sr), (ServerSend, ss)] {
                let mut a = ann(kind, 1, None, ts);
                if let Fragment::Annotation(x) = &mut a {
                    x.hostname = host.into();
                }
                f.push(a);
            }
        }
        // A call made from s2 hangs under s2's server side.
        let mut child = ann(ClientSend, 2, Some(1), 130);
        if let Fragment::Annotation(x) = &mut child {
            x.hostname = "s2".into();
        }
        f.push(child);
        let t = assemble(T, f);
        let servers: Vec<&Node> = t
            .spans
            .iter()
            .filter(|n| n.side == Some(Side::Server))
            .collect();
        assert_eq!(servers.len(), 2);
        assert!(servers.iter().all(|s| s.parent == Some(0)));
        let c = node(&t, 2);
        assert_eq!(t.spans[c.parent.unwrap()].host.as_deref(), Some("s2"));
    }

    #[test]
    fn conflicting_duplicates_render_and_say_so() {
        let t = assemble(
            T,
            vec![
                otlp(1, None, 0, 100, "root"),
                otlp(1, None, 0, 120, "root (again)"),
            ],
        );
        assert_eq!(t.spans.len(), 2);
        assert!(
            t.warnings
                .iter()
                .any(|w| w.contains("more than once with different content"))
        );
        assert!(
            t.spans
                .iter()
                .all(|n| n.warnings.iter().any(|w| w.contains("conflicting")))
        );
    }

    #[test]
    fn a_trace_without_a_root_still_renders() {
        let t = assemble(T, vec![otlp(2, Some(9), 0, 10, "orphan")]);
        assert_eq!(t.spans.len(), 2);
        assert!(t.spans[0].placeholder);
        // The orphan covers all of its placeholder's time.
        assert_eq!(crit(&t), vec![("orphan".to_string(), 0, 10)]);
    }
}
