//! The trace page, and the pieces of it the page's script fetches: a span's
//! details, and the rows of a subtree that did not fit.
//!
//! Every row is server-rendered. Traces up to [`FULL_RENDER_MAX`] spans
//! render a row for every span. Larger ones get a row budget
//! ([`ROW_BUDGET`]): the rows that must be seen first (the span a link
//! points at, spans matching a find, the critical path, some errors, each
//! with its ancestors), then the tree breadth-first a level at a time:
//! whole levels while they fit; a level that does not fit is shared out
//! evenly among its sibling lists (each showing its first calls), or left
//! hidden when the shares would be tiny. A span whose children did not fit
//! is one collapsed row that
//! says how many spans (errors, critical-path spans, find matches) are
//! hidden under it; a run of siblings that did not fit is one "more" row
//! saying the same. Both link to a page of that subtree (reading without
//! JavaScript) and, with JavaScript, load its rows in place from
//! `/traces/{id}/rows` — planned the same way, so any depth opens one
//! budget at a time. The header, minimap and critical path always describe
//! the whole trace, and find (`?find=`) searches every span on the server.
//!
//! Everything here is linear in the number of spans: a [`TreeIndex`] (subtree
//! sizes and running counts in depth-first order, where a subtree is a
//! contiguous range) answers "how many under this node" in constant time.
//! Assembled large traces are kept for a few minutes in a small cache, so the
//! fragments a page asks for do not reassemble the trace.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use phosphor_query::{Error, Node, Trace};
use phosphor_store::model::{Side, SpanId, TraceId, Value};
use serde::Deserialize;

use crate::{AppState, error_page, human_duration, render, service_color, timestamp};

/// Traces up to this many spans carry every span's details in the page
/// (`<details>` rows); larger ones fetch a span's details when its row opens.
pub const INLINE_DETAILS_MAX: usize = 1_000;

/// Traces up to this many spans render a row for every span.
pub const FULL_RENDER_MAX: usize = 10_000;

/// Larger traces render about this many span rows per page or fragment
/// (plus the rows that must be seen, and one row per hidden run).
pub const ROW_BUDGET: usize = 2_000;

/// Fewest rows each sibling list of a level gets when the level does not
/// fit whole; with less, the level stays collapsed.
const MIN_SHARE: usize = 20;

/// Rows per block: the browser skips laying out blocks off screen
/// (`content-visibility`), which is much cheaper per block than per row.
const ROWS_PER_BLOCK: usize = 100;

/// Most spans of assembled traces kept for the fragments their pages ask
/// for, and for how long.
const CACHE_MAX_SPANS: usize = 250_000;
const CACHE_TTL: Duration = Duration::from_secs(600);

/// Spans seen before a span is judged against its operation's percentiles.
const MIN_TYPICAL_SAMPLE: u64 = 20;

/// What the row plan needs to know about a trace's tree, computed once in
/// linear time. Nodes are in depth-first order, so node `i`'s subtree is
/// `i..i + size[i]`, and counts over a subtree are differences of running
/// counts.
pub struct TreeIndex {
    /// Nodes in each subtree, itself included.
    size: Vec<usize>,
    /// Each node's place among its parent's children (or among the roots).
    pos: Vec<usize>,
    roots: Vec<usize>,
    /// Running counts in depth-first order: `errors[i]` failed spans before
    /// node `i`.
    errors: Vec<usize>,
    critical: Vec<usize>,
    /// Running time on the critical path.
    critical_ns: Vec<u64>,
    /// Each node's colour class, and the classes' colours.
    class: Vec<usize>,
    colors: Vec<String>,
    /// A fingerprint of the tree (span IDs and parents in order): rows
    /// fetched for a page name it, so they are never taken from a trace
    /// that has changed since.
    version: String,
}

impl TreeIndex {
    pub fn new(t: &Trace) -> TreeIndex {
        let n = t.spans.len();
        let mut size = vec![1usize; n];
        for i in (0..n).rev() {
            if let Some(p) = t.spans[i].parent {
                size[p] += size[i];
            }
        }
        let mut pos = vec![0usize; n];
        let mut roots = Vec::new();
        for (i, node) in t.spans.iter().enumerate() {
            for (k, &c) in node.children.iter().enumerate() {
                pos[c] = k;
            }
            if node.parent.is_none() {
                pos[i] = roots.len();
                roots.push(i);
            }
        }
        let running = |f: &dyn Fn(&Node) -> bool| {
            let mut v = Vec::with_capacity(n + 1);
            v.push(0);
            for node in &t.spans {
                v.push(v[v.len() - 1] + usize::from(f(node)));
            }
            v
        };
        let errors = running(&|node: &Node| node.is_error());
        let critical = running(&|node: &Node| node.critical_ns > 0);
        let mut critical_ns = Vec::with_capacity(n + 1);
        critical_ns.push(0);
        for node in &t.spans {
            critical_ns.push(critical_ns[critical_ns.len() - 1] + node.critical_ns);
        }
        let mut class_of: HashMap<&str, usize> = HashMap::new();
        let mut colors = Vec::new();
        let class = t
            .spans
            .iter()
            .map(|node| {
                *class_of.entry(node.service.as_str()).or_insert_with(|| {
                    colors.push(service_color(&node.service));
                    colors.len() - 1
                })
            })
            .collect();
        // FNV-1a over each node's span ID and parent.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for node in &t.spans {
            let parent = node.parent.map_or(0, |p| p as u64 + 1);
            for b in node.span_id.0.iter().chain(&parent.to_le_bytes()) {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        TreeIndex {
            size,
            pos,
            roots,
            errors,
            critical,
            critical_ns,
            class,
            colors,
            version: format!("{h:016x}"),
        }
    }

    /// Spans on the critical path among nodes `a..b`, and their time there.
    fn critical_in(&self, a: usize, b: usize) -> (usize, u64) {
        (
            self.critical[b] - self.critical[a],
            self.critical_ns[b] - self.critical_ns[a],
        )
    }

    fn siblings<'a>(&'a self, t: &'a Trace, parent: Option<usize>) -> &'a [usize] {
        match parent {
            Some(p) => &t.spans[p].children,
            None => &self.roots,
        }
    }
}

/// Which part of the tree to plan: the subtrees of the siblings
/// `from..to` under `parent` (the roots when `None`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scope {
    parent: Option<usize>,
    from: usize,
    to: usize,
}

impl Scope {
    fn whole(ix: &TreeIndex) -> Scope {
        Scope {
            parent: None,
            from: 0,
            to: ix.roots.len(),
        }
    }

    fn top<'a>(&self, t: &'a Trace, ix: &'a TreeIndex) -> &'a [usize] {
        &ix.siblings(t, self.parent)[self.from..self.to]
    }

    /// The nodes in scope, a contiguous depth-first range.
    fn range(&self, t: &Trace, ix: &TreeIndex) -> std::ops::Range<usize> {
        match self.top(t, ix) {
            [] => 0..0,
            top => top[0]..top[top.len() - 1] + ix.size[top[top.len() - 1]],
        }
    }
}

/// One row of a planned waterfall.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Item {
    /// A span; `collapsed` when it has children and none of them is shown.
    Span { index: usize, collapsed: bool },
    /// Siblings `from..to` under `parent` (depth-first nodes `start..end`)
    /// not shown.
    Gap {
        parent: Option<usize>,
        from: usize,
        to: usize,
        start: usize,
        end: usize,
    },
}

/// Nodes that must be shown, in priority order, each group while fewer than
/// its limit of nodes are shown.
type Forced<'a> = [(&'a [usize], usize)];

/// Chooses the rows for `scope` within `budget` shown spans (see the module
/// comment), and lists them in depth-first order. Linear in the scope's
/// size plus the forced nodes' depths.
fn plan(t: &Trace, ix: &TreeIndex, scope: Scope, budget: usize, forced: &Forced<'_>) -> Vec<Item> {
    let range = scope.range(t, ix);
    let mut shown = vec![false; t.spans.len()];
    let mut count = 0usize;
    let is_top =
        |i: usize| t.spans[i].parent == scope.parent && (scope.from..scope.to).contains(&ix.pos[i]);
    for &(nodes, limit) in forced {
        for &f in nodes {
            if count >= limit.min(budget) {
                break;
            }
            if !range.contains(&f) {
                continue;
            }
            let mut x = f;
            while !shown[x] {
                shown[x] = true;
                count += 1;
                if is_top(x) {
                    break;
                }
                match t.spans[x].parent {
                    Some(p) => x = p,
                    None => break,
                }
            }
        }
    }
    // Breadth-first, a level at a time: a level is shown whole when it
    // fits. When it does not, and each of its sibling lists can still have
    // MIN_SHARE rows, each list gets an equal share (the rest of it one
    // "more" row); otherwise the level stays hidden, its parents collapsed
    // rows. Either way the planning stops there: the top of the tree is
    // shown to an even depth, every hidden part one row at its edge.
    let mut level: Vec<&[usize]> = vec![scope.top(t, ix)];
    let mut first = true;
    while !level.is_empty() {
        let hidden: Vec<usize> = level
            .iter()
            .map(|l| l.iter().filter(|&&c| !shown[c]).count())
            .collect();
        let total: usize = hidden.iter().sum();
        let fits = count + total <= budget;
        if !fits {
            let room = budget.saturating_sub(count);
            let lists = hidden.iter().filter(|&&h| h > 0).count().max(1);
            let share = room / lists;
            if share >= MIN_SHARE || (first && room > 0) {
                for (l, &h) in level.iter().zip(&hidden) {
                    let mut take = if h <= share { h } else { share.max(2) - 1 };
                    for &c in l.iter() {
                        if take == 0 {
                            break;
                        }
                        if !shown[c] {
                            shown[c] = true;
                            take -= 1;
                        }
                    }
                }
            }
            break;
        }
        let mut next: Vec<&[usize]> = Vec::new();
        for l in &level {
            for &c in l.iter() {
                if !shown[c] {
                    shown[c] = true;
                    count += 1;
                }
                if !t.spans[c].children.is_empty() {
                    next.push(&t.spans[c].children);
                }
            }
        }
        level = next;
        first = false;
    }
    let mut items = Vec::new();
    let mut i = range.start;
    while i < range.end {
        if shown[i] {
            let kids = &t.spans[i].children;
            let collapsed = !kids.is_empty() && kids.iter().all(|&c| !shown[c]);
            items.push(Item::Span {
                index: i,
                collapsed,
            });
            i += if collapsed { ix.size[i] } else { 1 };
        } else {
            let parent = t.spans[i].parent;
            let (start, from) = (i, ix.pos[i]);
            let mut to = from;
            while i < range.end && t.spans[i].parent == parent && !shown[i] {
                to += 1;
                i += ix.size[i];
            }
            items.push(Item::Gap {
                parent,
                from,
                to,
                start,
                end: i,
            });
        }
    }
    items
}

/// A lower-cased needle, matched against what a span says about itself.
struct Finder(String);

impl Finder {
    fn new(q: &str) -> Option<Finder> {
        let q = q.trim();
        (!q.is_empty()).then(|| Finder(q.to_lowercase()))
    }

    fn hit(&self, h: &str) -> bool {
        let q = self.0.as_bytes();
        if h.is_ascii() && self.0.is_ascii() {
            h.len() >= q.len()
                && h.as_bytes()
                    .windows(q.len())
                    .any(|w| w.eq_ignore_ascii_case(q))
        } else {
            h.to_lowercase().contains(&self.0)
        }
    }

    fn value(&self, v: &Value) -> bool {
        match v {
            Value::Str(s) => self.hit(s),
            v => self.hit(&v.to_string()),
        }
    }

    /// Name, service, span ID, status message, attribute keys and values
    /// (span and resource), and events.
    fn matches(&self, n: &Node) -> bool {
        self.hit(&n.name)
            || self.hit(&n.service)
            || self.hit(&n.span_id.to_hex())
            || self.hit(&n.status_message)
            || n.attributes
                .iter()
                .chain(&n.resource)
                .any(|kv| self.hit(&kv.key) || self.value(&kv.value))
            || n.events.iter().any(|e| {
                self.hit(&e.name)
                    || e.attributes
                        .iter()
                        .any(|kv| self.hit(&kv.key) || self.value(&kv.value))
            })
    }
}

/// Recent latency of an operation: (p50, p99, spans seen), in µs.
type Typical = HashMap<(String, String, &'static str), (u64, u64, u64)>;

/// How long a service's recent latencies are reused: they describe the
/// last hour, so a minute-old reading is as good, and every page and
/// fragment of the same services within it costs no store reads.
const TYPICAL_TTL: Duration = Duration::from_secs(60);

/// Recent latency of each operation of a service: (operation, kind, p50,
/// p99, spans seen).
type ServiceTypical = Vec<(String, &'static str, u64, u64, u64)>;

/// Services' recent latencies, read at most once a [`TYPICAL_TTL`].
#[derive(Default)]
pub struct TypicalCache {
    entries: Mutex<HashMap<String, (Instant, Arc<ServiceTypical>)>>,
}

impl TypicalCache {
    fn get(&self, service: &str) -> Option<Arc<ServiceTypical>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(service)
            .filter(|(at, _)| at.elapsed() < TYPICAL_TTL)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, service: &str, v: Arc<ServiceTypical>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (at, _)| at.elapsed() < TYPICAL_TTL);
        entries.insert(service.to_string(), (Instant::now(), v));
    }
}

/// What recent spans of each operation of these services looked like, over
/// the last hour, from the index (a sample of the newest spans of each).
async fn typical_of<'a>(s: &AppState, spans: impl IntoIterator<Item = &'a Node>) -> Typical {
    let mut services: Vec<&str> = spans
        .into_iter()
        .filter(|n| !n.placeholder)
        .map(|n| n.service.as_str())
        .collect();
    services.sort_unstable();
    services.dedup();
    let mut out = Typical::new();
    for svc in services {
        let stats = match s.typical.get(svc) {
            Some(v) => v,
            None => match s
                .query
                .operation_stats_sampled(svc, Duration::from_secs(3_600), 500)
                .await
            {
                Ok(stats) => {
                    let v: Arc<ServiceTypical> = Arc::new(
                        stats
                            .into_iter()
                            .map(|o| (o.operation, o.kind.as_str(), o.p50_us, o.p99_us, o.count))
                            .collect(),
                    );
                    s.typical.put(svc, v.clone());
                    v
                }
                Err(_) => continue,
            },
        };
        for (op, kind, p50, p99, count) in stats.iter() {
            out.insert((svc.to_string(), op.clone(), kind), (*p50, *p99, *count));
        }
    }
    out
}

/// Spans and what their subtrees hold, said in words: "1,234 spans (3
/// errors, 2 on the critical path for 1.20ms, 5 match)".
fn spans_said(
    spans: usize,
    errors: usize,
    (critical, critical_ns): (usize, u64),
    matched: usize,
) -> String {
    let mut s = format!(
        "{} span{}",
        thousands(spans),
        if spans == 1 { "" } else { "s" }
    );
    let mut extra = Vec::new();
    if errors > 0 {
        extra.push(format!(
            "{} error{}",
            thousands(errors),
            if errors == 1 { "" } else { "s" }
        ));
    }
    if critical > 0 {
        extra.push(format!(
            "{} on the critical path for {}",
            thousands(critical),
            human_duration(critical_ns)
        ));
    }
    if matched > 0 {
        extra.push(format!("{} match", thousands(matched)));
    }
    if !extra.is_empty() {
        let _ = write!(s, " ({})", extra.join(", "));
    }
    s
}

/// `12345` as `12,345`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.3}", x.clamp(0.0, 100.0))
}

/// The link to a hidden part of the tree: a page of it, and the fragment
/// of its rows that the page's script inserts in place.
struct Hidden {
    label: String,
    href: String,
    rows: String,
}

pub struct SpanRow {
    index: usize,
    /// The row's state classes (` error`, ` critical`, ...).
    classes: String,
    /// Index of the service's colour class in the page's style block.
    color_class: usize,
    depth: usize,
    name: String,
    service: String,
    left: String,
    width: String,
    /// The duration goes before the bar (near the right edge), not after.
    label_end: bool,
    duration: String,
    error: bool,
    incomplete: bool,
    placeholder: bool,
    has_children: bool,
    critical: bool,
    skew: Option<String>,
    /// "Is this normal?": far slower than its operation usually is.
    unusual: Option<String>,
    /// The subtree under a collapsed row.
    hidden: Option<Hidden>,
    /// The span's details, when the page carries them.
    detail: Option<SpanDetail>,
}

/// What opens beside a row: the span's fields.
pub struct SpanDetail {
    kind: &'static str,
    side: Option<&'static str>,
    span_id: String,
    legacy_span_id: Option<String>,
    offset: String,
    duration: String,
    status_message: String,
    attributes: Vec<(String, String)>,
    events: Vec<(String, String)>,
    links: Vec<String>,
    warnings: Vec<String>,
    /// How recent spans of its operation went.
    typical: Option<String>,
}

/// A run of siblings not shown.
pub struct GapRow {
    depth: usize,
    left: String,
    width: String,
    hidden: Hidden,
}

pub enum RowItem {
    Span(Box<SpanRow>),
    Gap(GapRow),
}

/// What rows are rendered with.
struct RowContext<'a> {
    t: &'a Trace,
    ix: &'a TreeIndex,
    trace_id: String,
    highlight: Option<&'a str>,
    typical: &'a Typical,
    finder: Option<&'a Finder>,
    /// Running count of find matches in depth-first order.
    matched: Option<Vec<usize>>,
    details: bool,
}

impl RowContext<'_> {
    fn total(&self) -> f64 {
        self.t.duration_ns().max(1) as f64
    }

    fn matched_in(&self, a: usize, b: usize) -> usize {
        self.matched.as_ref().map_or(0, |m| m[b] - m[a])
    }

    /// The query string the links to hidden parts carry along.
    fn carry(&self) -> String {
        let mut s = String::new();
        if let Some(f) = self.finder {
            let _ = write!(s, "&find={}", crate::encode(&f.0));
        }
        if let Some(h) = self.highlight {
            let _ = write!(s, "&span={}", crate::encode(h));
        }
        s
    }

    fn hidden(&self, under: Option<usize>, range: Option<(usize, usize)>, said: String) -> Hidden {
        let mut q = String::new();
        if let Some(u) = under {
            let _ = write!(q, "under={u}");
        }
        if let Some((a, b)) = range {
            let _ = write!(q, "{}from={a}&to={b}", if q.is_empty() { "" } else { "&" });
        }
        let carry = self.carry();
        Hidden {
            label: said,
            href: format!("/traces/{}?{q}{carry}", self.trace_id),
            rows: format!(
                "/traces/{}/rows?{q}&v={}{carry}",
                self.trace_id, self.ix.version
            ),
        }
    }

    fn span_row(&self, i: usize, collapsed: bool) -> SpanRow {
        let (t, ix) = (self.t, self.ix);
        let n = &t.spans[i];
        let total = self.total();
        let left = n.start_ns.saturating_sub(t.start_ns) as f64 / total * 100.0;
        let width = (n.duration_ns() as f64 / total * 100.0).min(100.0 - left);
        let highlighted = self.highlight.is_some_and(|h| h == n.span_id.to_hex());
        let found = self.finder.map(|f| f.matches(n));
        let flags = [
            (n.is_error(), " error"),
            (n.incomplete, " incomplete"),
            (n.placeholder, " placeholder"),
            (n.critical_ns > 0, " critical"),
            (n.children.is_empty(), " leaf"),
            (collapsed, " collapsed"),
            (highlighted, " highlight"),
            (found == Some(true), " match"),
            (found == Some(false), " dim"),
        ];
        let typical = self
            .typical
            .get(&(n.service.to_string(), n.name.to_string(), n.kind.as_str()))
            .filter(|(_, _, count)| *count >= MIN_TYPICAL_SAMPLE);
        let hidden = collapsed.then(|| {
            let (a, b) = (i + 1, i + ix.size[i]);
            self.hidden(
                Some(i),
                None,
                format!(
                    "show {} below",
                    spans_said(
                        b - a,
                        ix.errors[b] - ix.errors[a],
                        ix.critical_in(a, b),
                        self.matched_in(a, b)
                    )
                ),
            )
        });
        SpanRow {
            index: i,
            classes: flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, c)| *c)
                .collect(),
            color_class: ix.class[i],
            depth: n.depth,
            name: n.name.to_string(),
            service: n.service.to_string(),
            left: pct(left),
            width: pct(width),
            label_end: left + width >= 80.0,
            duration: human_duration(n.duration_ns()),
            error: n.is_error(),
            incomplete: n.incomplete,
            placeholder: n.placeholder,
            has_children: !n.children.is_empty(),
            critical: n.critical_ns > 0,
            skew: (n.skew_shift_ns != 0).then(|| {
                let sign = if n.skew_shift_ns < 0 { "-" } else { "+" };
                format!("{sign}{}", human_duration(n.skew_shift_ns.unsigned_abs()))
            }),
            unusual: typical
                .filter(|(p50, p99, _)| {
                    let d = n.duration_ns() / 1_000;
                    !n.incomplete && d > *p99 && d > p50 * 2
                })
                .map(|(p50, _, _)| {
                    format!(
                        "{:.1}× p50",
                        (n.duration_ns() / 1_000) as f64 / (*p50).max(1) as f64
                    )
                }),
            hidden,
            detail: self.details.then(|| self.detail(i)),
        }
    }

    fn detail(&self, i: usize) -> SpanDetail {
        let (t, n) = (self.t, &self.t.spans[i]);
        let mut attributes: Vec<(String, String)> = n
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        attributes.extend(
            n.resource
                .iter()
                .map(|kv| (format!("resource: {}", kv.key), kv.value.to_string())),
        );
        SpanDetail {
            kind: n.kind.as_str(),
            side: n.side.map(|s| match s {
                Side::Client => "client",
                Side::Server => "server",
                Side::Event => "annotation",
            }),
            span_id: n.span_id.to_hex(),
            legacy_span_id: n.legacy_span_id.clone(),
            offset: human_duration(n.start_ns.saturating_sub(t.start_ns)),
            duration: human_duration(n.duration_ns()),
            status_message: n.status_message.to_string(),
            attributes,
            events: n
                .events
                .iter()
                .map(|e| {
                    let name = if e.attributes.is_empty() {
                        e.name.to_string()
                    } else {
                        let attrs: Vec<String> = e
                            .attributes
                            .iter()
                            .map(|kv| format!("{}={}", kv.key, kv.value))
                            .collect();
                        format!("{} ({})", e.name, attrs.join(", "))
                    };
                    (human_duration(e.time_ns.saturating_sub(t.start_ns)), name)
                })
                .collect(),
            links: n
                .links
                .iter()
                .map(|l| format!("trace {} span {}", l.trace_id.to_hex(), l.span_id.to_hex()))
                .collect(),
            warnings: n.warnings.clone(),
            typical: self
                .typical
                .get(&(n.service.to_string(), n.name.to_string(), n.kind.as_str()))
                .filter(|(_, _, count)| *count >= MIN_TYPICAL_SAMPLE)
                .map(|(p50, p99, count)| {
                    format!(
                        "p50 {}, p99 {} over the last hour ({count} spans)",
                        human_duration(p50 * 1_000),
                        human_duration(p99 * 1_000)
                    )
                }),
        }
    }

    fn gap_row(
        &self,
        parent: Option<usize>,
        from: usize,
        to: usize,
        start: usize,
        end: usize,
    ) -> GapRow {
        let (t, ix) = (self.t, self.ix);
        let total = self.total();
        let lo = t.spans[start..end]
            .iter()
            .map(|n| n.start_ns)
            .min()
            .unwrap_or(t.start_ns);
        let hi = t.spans[start..end]
            .iter()
            .map(|n| n.end_ns)
            .max()
            .unwrap_or(lo);
        let left = lo.saturating_sub(t.start_ns) as f64 / total * 100.0;
        let width = (hi.saturating_sub(lo) as f64 / total * 100.0).min(100.0 - left);
        let calls = to - from;
        let said = format!(
            "show {} more {} with {}",
            thousands(calls),
            if calls == 1 { "call" } else { "calls" },
            spans_said(
                end - start,
                ix.errors[end] - ix.errors[start],
                ix.critical_in(start, end),
                self.matched_in(start, end)
            )
        );
        GapRow {
            depth: t.spans[start].depth,
            left: pct(left),
            width: pct(width),
            hidden: self.hidden(parent, Some((from, to)), said),
        }
    }

    fn rows(&self, items: &[Item]) -> Vec<RowItem> {
        items
            .iter()
            .map(|item| match *item {
                Item::Span { index, collapsed } => {
                    RowItem::Span(Box::new(self.span_row(index, collapsed)))
                }
                Item::Gap {
                    parent,
                    from,
                    to,
                    start,
                    end,
                } => RowItem::Gap(self.gap_row(parent, from, to, start, end)),
            })
            .collect()
    }
}

fn blocks(rows: Vec<RowItem>) -> Vec<Vec<RowItem>> {
    let mut out: Vec<Vec<RowItem>> = Vec::with_capacity(rows.len() / ROWS_PER_BLOCK + 1);
    for r in rows {
        match out.last_mut() {
            Some(b) if b.len() < ROWS_PER_BLOCK => b.push(r),
            _ => {
                let mut b = Vec::with_capacity(ROWS_PER_BLOCK);
                b.push(r);
                out.push(b);
            }
        }
    }
    out
}

/// The whole trace in small: a band per stretch of spans (depth-first),
/// each showing when they ran, with the critical path and errors over it.
/// SVG path data, drawn by the server; bounded in size whatever the trace.
pub struct Minimap {
    bands: usize,
    all: String,
    critical: String,
    errors: String,
}

fn minimap(t: &Trace) -> Minimap {
    const COLS: usize = 600;
    let n = t.spans.len();
    let bands = n.clamp(1, 80);
    let total = t.duration_ns().max(1) as f64;
    let col = |ns: u64| ns.saturating_sub(t.start_ns) as f64 / total * COLS as f64;
    // Per band and layer, +1 where a span starts and -1 where it ends.
    let mut diff = vec![0i32; 3 * bands * (COLS + 1)];
    let mut mark = |layer: usize, i: usize, start: u64, end: u64| {
        let band = i * bands / n.max(1);
        let a = (col(start).floor() as usize).min(COLS - 1);
        let b = (col(end).ceil() as usize).clamp(a + 1, COLS);
        let row = (layer * bands + band) * (COLS + 1);
        diff[row + a] += 1;
        diff[row + b] -= 1;
    };
    for (i, s) in t.spans.iter().enumerate() {
        mark(0, i, s.start_ns, s.end_ns);
        if s.is_error() {
            mark(2, i, s.start_ns, s.end_ns);
        }
    }
    for seg in &t.critical_path {
        mark(1, seg.index, seg.start_ns, seg.end_ns);
    }
    let mut paths = [String::new(), String::new(), String::new()];
    for (layer, path) in paths.iter_mut().enumerate() {
        for band in 0..bands {
            let row = &diff[(layer * bands + band) * (COLS + 1)..][..COLS + 1];
            let (mut level, mut run) = (0i32, None);
            for (x, d) in row.iter().enumerate() {
                level += d;
                match (level > 0, run) {
                    (true, None) => run = Some(x),
                    (false, Some(a)) => {
                        let _ = write!(path, "M{a} {band}h{w}v1h-{w}z", w = x - a);
                        run = None;
                    }
                    _ => {}
                }
            }
        }
    }
    let [all, critical, errors] = paths;
    Minimap {
        bands,
        all,
        critical,
        errors,
    }
}

/// The spans that take most of the critical path.
struct CriticalSpan {
    label: String,
    href: String,
    time: String,
    share: String,
}

#[derive(Template)]
#[template(path = "trace.html")]
struct TracePage {
    trace_id: String,
    legacy_id: Option<String>,
    root: String,
    start: String,
    duration: String,
    span_count: String,
    /// Levels in the tree.
    depth: usize,
    /// Trace duration in microseconds (the minimap's zoom relabels the axis).
    total_us: u64,
    error_count: usize,
    services: Vec<(String, String)>,
    warnings: Vec<String>,
    ticks: Vec<(String, String)>,
    /// Rows in blocks.
    blocks: Vec<Vec<RowItem>>,
    /// `.sN { --c: colour }` for each service (one rule instead of a style
    /// attribute on every row).
    color_classes: Vec<(usize, String)>,
    /// Span details inside the page (small traces), or fetched when a row
    /// opens (large ones: the page stays light).
    inline_details: bool,
    /// The tree's fingerprint (fragments check they still agree).
    version: String,
    minimap: Minimap,
    critical_count: usize,
    critical_top: Vec<CriticalSpan>,
    /// Some spans are not rendered: how many are.
    partial: Option<String>,
    /// A subtree page: what it shows, and the way back up.
    subtree: Option<Subtree>,
    find: String,
    find_status: String,
}

struct Subtree {
    said: String,
    path: Vec<(String, String)>,
    /// Hidden inputs that keep find within the subtree.
    params: Vec<(&'static str, usize)>,
}

#[derive(Template)]
#[template(path = "rows.html")]
struct RowsFragment {
    inline_details: bool,
    blocks: Vec<Vec<RowItem>>,
}

#[derive(Template)]
#[template(path = "span.html")]
struct SpanPage {
    trace_id: String,
    service: String,
    name: String,
    color: String,
    d: SpanDetail,
}

#[derive(Template)]
#[template(path = "span_fragment.html")]
struct SpanFragment {
    d: SpanDetail,
}

/// Assembled large traces, newest first, so the fragments a page asks for
/// answer without reassembling. A page always assembles afresh (a trace
/// may still be arriving); fragments name the node count of the page they
/// belong to, and are served from the same assembly.
#[derive(Default)]
pub struct TraceCache {
    entries: Mutex<VecDeque<Cached>>,
}

struct Cached {
    id: TraceId,
    at: Instant,
    trace: Arc<Trace>,
    index: Arc<TreeIndex>,
}

impl TraceCache {
    fn get(&self, id: TraceId, version: &str) -> Option<(Arc<Trace>, Arc<TreeIndex>)> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|e| e.at.elapsed() < CACHE_TTL);
        entries
            .iter()
            .find(|e| e.id == id && e.index.version == version)
            .map(|e| (e.trace.clone(), e.index.clone()))
    }

    fn put(&self, trace: Arc<Trace>, index: Arc<TreeIndex>) {
        if trace.spans.len() <= INLINE_DETAILS_MAX || trace.spans.len() > CACHE_MAX_SPANS {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|e| e.id != trace.trace_id);
        entries.push_front(Cached {
            id: trace.trace_id,
            at: Instant::now(),
            trace,
            index,
        });
        let mut total = 0;
        entries.retain(|e| {
            total += e.trace.spans.len();
            total <= CACHE_MAX_SPANS
        });
    }
}

/// The trace a page or fragment is about: assembled afresh, or (for a
/// fragment naming its page's tree version) the cached assembly. A
/// fragment for a tree that has changed since its page was loaded is a
/// 409: its row numbers would point at other spans.
async fn load(
    s: &AppState,
    id: &str,
    version: Option<&str>,
) -> Result<(Arc<Trace>, Arc<TreeIndex>), Response> {
    if let (Some(v), Ok((trace_id, _))) = (version, TraceId::parse(id))
        && let Some(hit) = s.cache.get(trace_id, v)
    {
        return Ok(hit);
    }
    let t = s.query.trace(id).await.map_err(error_page)?;
    let (t, ix) = tokio::task::spawn_blocking(move || {
        let ix = TreeIndex::new(&t);
        (Arc::new(t), Arc::new(ix))
    })
    .await
    .map_err(|e| error_page(Error::Task(e.to_string())))?;
    s.cache.put(t.clone(), ix.clone());
    if let Some(v) = version
        && v != ix.version
    {
        return Err((
            StatusCode::CONFLICT,
            "the trace has changed since this page was loaded: reload the page",
        )
            .into_response());
    }
    Ok((t, ix))
}

#[derive(Deserialize, Default)]
pub struct TraceParams {
    /// A span to open and show (the one a search matched).
    span: Option<String>,
    /// Only this node's subtree.
    under: Option<usize>,
    /// Only these of its children (or of the roots).
    from: Option<usize>,
    to: Option<usize>,
    /// Find: mark the spans that match, and show them.
    find: Option<String>,
    /// The tree version of the page a fragment belongs to.
    v: Option<String>,
    /// A span's own page (rows link here: a short link, for large pages).
    detail: Option<usize>,
}

/// The scope the parameters ask for, or why not.
fn scope_of(t: &Trace, ix: &TreeIndex, p: &TraceParams) -> Result<Scope, String> {
    if p.under.is_none() && p.from.is_none() && p.to.is_none() {
        return Ok(Scope::whole(ix));
    }
    if let Some(u) = p.under
        && u >= t.spans.len()
    {
        return Err(format!("the trace has no span {u}"));
    }
    let len = ix.siblings(t, p.under).len();
    let (from, to) = (p.from.unwrap_or(0), p.to.unwrap_or(len));
    if from >= to || to > len {
        return Err(format!(
            "from={from}&to={to} is not a range of the {len} spans there"
        ));
    }
    Ok(Scope {
        parent: p.under,
        from,
        to,
    })
}

/// Spans that must be seen on a page: the one a link points at, those
/// matching a find, the critical path, and some errors.
fn forced(t: &Trace, highlight: Option<&str>, found: &[usize]) -> Vec<Vec<usize>> {
    let pointed: Vec<usize> = highlight
        .and_then(|h| SpanId::parse(h).ok())
        .map(|(id, _)| {
            (0..t.spans.len())
                .filter(|&i| t.spans[i].span_id == id)
                .collect()
        })
        .unwrap_or_default();
    let mut critical: Vec<usize> = (0..t.spans.len())
        .filter(|&i| t.spans[i].critical_ns > 0)
        .collect();
    critical.sort_by_key(|&i| std::cmp::Reverse(t.spans[i].critical_ns));
    let errors: Vec<usize> = (0..t.spans.len())
        .filter(|&i| t.spans[i].is_error())
        .take(ROW_BUDGET)
        .collect();
    vec![pointed, found.to_vec(), critical, errors]
}

fn plan_for(
    t: &Trace,
    ix: &TreeIndex,
    scope: Scope,
    highlight: Option<&str>,
    found: &[usize],
) -> Vec<Item> {
    if t.spans.len() <= FULL_RENDER_MAX {
        return plan(t, ix, scope, usize::MAX, &[]);
    }
    let f = forced(t, highlight, found);
    let limits = [ROW_BUDGET, ROW_BUDGET, ROW_BUDGET / 2, ROW_BUDGET * 3 / 4];
    let groups: Vec<(&[usize], usize)> = f
        .iter()
        .zip(limits)
        .map(|(v, l)| (v.as_slice(), l))
        .collect();
    plan(t, ix, scope, ROW_BUDGET, &groups)
}

fn found_of(t: &Trace, finder: Option<&Finder>) -> (Vec<usize>, Option<Vec<usize>>) {
    let Some(f) = finder else {
        return (Vec::new(), None);
    };
    let mut found = Vec::new();
    let mut running = Vec::with_capacity(t.spans.len() + 1);
    running.push(0);
    for (i, n) in t.spans.iter().enumerate() {
        let hit = f.matches(n);
        if hit {
            found.push(i);
        }
        running.push(running[i] + usize::from(hit));
    }
    (found, Some(running))
}

pub async fn trace_page(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<TraceParams>,
) -> Response {
    if let Some(i) = p.detail {
        return Redirect::to(&format!("/traces/{}/spans/{i}", crate::encode(&id))).into_response();
    }
    let (t, ix) = match load(&s, &id, None).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let scope = match scope_of(&t, &ix, &p) {
        Ok(scope) => scope,
        Err(message) => return bad_request(message),
    };
    let finder = p.find.as_deref().and_then(Finder::new);
    let (found, matched) = found_of(&t, finder.as_ref());
    let highlight = p.span.as_deref();
    let items = plan_for(&t, &ix, scope, highlight, &found);
    let rendered: Vec<&Node> = items
        .iter()
        .filter_map(|item| match item {
            Item::Span { index, .. } => Some(&t.spans[*index]),
            Item::Gap { .. } => None,
        })
        .chain(p.under.map(|u| &t.spans[u]))
        .collect();
    let typical = typical_of(&s, rendered).await;
    let cx = RowContext {
        t: &t,
        ix: &ix,
        trace_id: t.trace_id.to_hex(),
        highlight,
        typical: &typical,
        finder: finder.as_ref(),
        matched,
        details: t.spans.len() <= INLINE_DETAILS_MAX,
    };
    render(&trace_view(
        &cx,
        scope,
        &items,
        p.find.as_deref().unwrap_or(""),
        &found,
    ))
}

fn bad_request(message: String) -> Response {
    let mut resp = render(&crate::ErrorPage {
        title: "Bad request".into(),
        message,
    });
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp
}

fn label(n: &Node) -> String {
    format!("{}: {}", n.service, n.name)
}

fn trace_view(
    cx: &RowContext<'_>,
    scope: Scope,
    items: &[Item],
    find: &str,
    found: &[usize],
) -> TracePage {
    let (t, ix) = (cx.t, cx.ix);
    let mut rows = Vec::with_capacity(items.len() + 1);
    // A subtree page starts with the span it is under.
    if let Some(u) = scope.parent {
        rows.push(RowItem::Span(Box::new(cx.span_row(u, false))));
    }
    rows.extend(cx.rows(items));
    let shown = rows
        .iter()
        .filter(|r| matches!(r, RowItem::Span(_)))
        .count();
    let hidden_rows = items.iter().any(|i| {
        matches!(
            i,
            Item::Gap { .. }
                | Item::Span {
                    collapsed: true,
                    ..
                }
        )
    });
    let root = t
        .spans
        .iter()
        .find(|n| !n.placeholder)
        .or(t.root())
        .map(label)
        .unwrap_or_default();
    let total = cx.total();
    let ticks = (0..=4)
        .map(|i| {
            let f = i as f64 / 4.0;
            (pct(f * 100.0), human_duration((total * f) as u64))
        })
        .collect();
    let span_count = t.spans.iter().filter(|n| !n.placeholder).count();
    let subtree = (scope != Scope::whole(ix)).then(|| {
        let mut path = Vec::new();
        let mut up = scope.parent;
        while let Some(a) = up {
            path.push((
                format!("/traces/{}?under={a}", cx.trace_id),
                label(&t.spans[a]),
            ));
            up = t.spans[a].parent;
        }
        if path.len() > 12 {
            path.drain(6..path.len() - 6);
            path.insert(6, (String::new(), "…".into()));
        }
        path.reverse();
        let range = scope.range(t, ix);
        let siblings = ix.siblings(t, scope.parent).len();
        let whole_list = scope.from == 0 && scope.to == siblings;
        let said = match (scope.parent, whole_list) {
            (Some(u), true) => format!(
                "the {} under {}",
                spans_said(range.len(), 0, (0, 0), 0),
                label(&t.spans[u])
            ),
            (parent, _) => format!(
                "{}–{} of the {} {} ({})",
                scope.from + 1,
                scope.to,
                thousands(siblings),
                match parent {
                    Some(u) => format!("calls under {}", label(&t.spans[u])),
                    None => "roots".into(),
                },
                spans_said(range.len(), 0, (0, 0), 0)
            ),
        };
        let mut params = Vec::new();
        if let Some(u) = scope.parent {
            params.push(("under", u));
        }
        if !whole_list {
            params.push(("from", scope.from));
            params.push(("to", scope.to));
        }
        Subtree { said, path, params }
    });
    let mut critical: Vec<usize> = (0..t.spans.len())
        .filter(|&i| t.spans[i].critical_ns > 0)
        .collect();
    let critical_count = critical.len();
    critical.sort_by_key(|&i| std::cmp::Reverse(t.spans[i].critical_ns));
    let on_page: std::collections::HashSet<usize> = items
        .iter()
        .filter_map(|i| match i {
            Item::Span { index, .. } => Some(*index),
            Item::Gap { .. } => None,
        })
        .collect();
    let critical_top = critical
        .iter()
        .take(3)
        .map(|&i| {
            let n = &t.spans[i];
            CriticalSpan {
                label: label(n),
                href: if on_page.contains(&i) {
                    format!("#span-{i}")
                } else {
                    format!("/traces/{}?span={}", cx.trace_id, n.span_id.to_hex())
                },
                time: human_duration(n.critical_ns),
                share: format!("{:.0}%", n.critical_ns as f64 / total * 100.0),
            }
        })
        .collect();
    let find_status = match (cx.finder, found.len()) {
        (None, _) => String::new(),
        (Some(_), 0) => format!("No span matches “{}”", find.trim()),
        (Some(_), m) => {
            let shown_matches = on_page
                .iter()
                .filter(|&&i| cx.matched_in(i, i + 1) > 0)
                .count();
            let mut s = format!(
                "{} span{} of the whole trace match{}",
                thousands(m),
                if m == 1 { "" } else { "s" },
                if m == 1 { "es" } else { "" }
            );
            if shown_matches < m {
                let _ = write!(
                    s,
                    "; {} shown here, the rest are in the hidden rows that say so",
                    thousands(shown_matches)
                );
            }
            s
        }
    };
    TracePage {
        color_classes: ix.colors.iter().cloned().enumerate().collect(),
        inline_details: cx.details,
        trace_id: cx.trace_id.clone(),
        legacy_id: t.legacy_id.clone(),
        root,
        start: timestamp(t.start_ns),
        duration: human_duration(t.duration_ns()),
        depth: t.spans.iter().map(|n| n.depth + 1).max().unwrap_or(0),
        total_us: t.duration_ns() / 1_000,
        error_count: t.error_count(),
        services: t
            .services()
            .into_iter()
            .map(|s| (s.to_string(), service_color(s)))
            .collect(),
        warnings: t.warnings.clone(),
        ticks,
        blocks: blocks(rows),
        version: ix.version.clone(),
        minimap: minimap(t),
        critical_count,
        critical_top,
        partial: (hidden_rows || subtree.is_some()).then(|| {
            format!(
                "{} of its {} spans are shown",
                thousands(shown),
                thousands(span_count)
            )
        }),
        span_count: thousands(span_count),
        subtree,
        find: find.to_string(),
        find_status,
    }
}

/// The page `/traces/{id}` renders for `t`, without the comparison with
/// recent latencies (which needs the store): for measuring the cost of
/// planning and rendering a large trace.
pub fn trace_page_html(t: &Trace) -> String {
    let ix = TreeIndex::new(t);
    let scope = Scope::whole(&ix);
    let items = plan_for(t, &ix, scope, None, &[]);
    let typical = Typical::new();
    let cx = RowContext {
        t,
        ix: &ix,
        trace_id: t.trace_id.to_hex(),
        highlight: None,
        typical: &typical,
        finder: None,
        matched: None,
        details: t.spans.len() <= INLINE_DETAILS_MAX,
    };
    trace_view(&cx, scope, &items, "", &[])
        .render()
        .unwrap_or_default()
}

/// The rows of a hidden part of the tree, for the page's script to insert
/// where the row that stood for them was.
pub async fn rows_fragment(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<TraceParams>,
) -> Response {
    let (t, ix) = match load(&s, &id, p.v.as_deref()).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let scope = match scope_of(&t, &ix, &p) {
        Ok(scope) => scope,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let finder = p.find.as_deref().and_then(Finder::new);
    let (found, matched) = found_of(&t, finder.as_ref());
    let items = plan_for(&t, &ix, scope, p.span.as_deref(), &found);
    let rendered: Vec<&Node> = items
        .iter()
        .filter_map(|item| match item {
            Item::Span { index, .. } => Some(&t.spans[*index]),
            Item::Gap { .. } => None,
        })
        .collect();
    let typical = typical_of(&s, rendered).await;
    let cx = RowContext {
        t: &t,
        ix: &ix,
        trace_id: t.trace_id.to_hex(),
        highlight: p.span.as_deref(),
        typical: &typical,
        finder: finder.as_ref(),
        matched,
        details: t.spans.len() <= INLINE_DETAILS_MAX,
    };
    render(&RowsFragment {
        inline_details: cx.details,
        blocks: blocks(cx.rows(&items)),
    })
}

#[derive(Deserialize)]
pub struct SpanParams {
    /// Only the detail block, for the waterfall to insert.
    fragment: Option<String>,
    /// The tree version of the page asking.
    v: Option<String>,
}

/// One span's details: a page of its own (for reading without JavaScript),
/// or the fragment the waterfall inserts when a row of a large trace opens.
pub async fn span_page(
    State(s): State<AppState>,
    Path((id, index)): Path<(String, usize)>,
    Query(p): Query<SpanParams>,
) -> Response {
    let (t, ix) = match load(&s, &id, p.v.as_deref()).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if index >= t.spans.len() {
        return error_page(Error::TraceNotFound(format!("{id} span {index}")));
    }
    // Only the opened span's service: one row's details, not the whole
    // trace's statistics.
    let typical = typical_of(&s, &t.spans[index..=index]).await;
    let cx = RowContext {
        t: &t,
        ix: &ix,
        trace_id: t.trace_id.to_hex(),
        highlight: None,
        typical: &typical,
        finder: None,
        matched: None,
        details: true,
    };
    let d = cx.detail(index);
    if p.fragment.is_some() {
        render(&SpanFragment { d })
    } else {
        let n = &t.spans[index];
        render(&SpanPage {
            trace_id: cx.trace_id.clone(),
            service: n.service.to_string(),
            name: n.name.to_string(),
            color: service_color(&n.service),
            d,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phosphor_store::model::{Fragment, Span, SpanKind, StatusCode as SpanStatus};

    /// A trace from (parent, start, end) triples; span i's ID is i + 1.
    fn trace_of(spans: &[(Option<usize>, u64, u64)]) -> Trace {
        let fragments = spans
            .iter()
            .enumerate()
            .map(|(i, &(parent, start, end))| {
                Fragment::Span(Span {
                    trace_id: TraceId([9; 16]),
                    span_id: SpanId((i as u64 + 1).to_be_bytes()),
                    parent_span_id: parent.map(|p| SpanId((p as u64 + 1).to_be_bytes())),
                    name: format!("op-{i}").into(),
                    kind: SpanKind::Internal,
                    service: "svc".into(),
                    start_ns: start,
                    end_ns: end,
                    status: if i % 7 == 3 {
                        SpanStatus::Error
                    } else {
                        SpanStatus::Unset
                    },
                    status_message: Default::default(),
                    attributes: vec![],
                    resource: vec![],
                    scope: None,
                    events: vec![],
                    links: vec![],
                    protocol: phosphor_store::model::Protocol::OtlpGrpc,
                })
            })
            .collect();
        phosphor_query::assemble::assemble(TraceId([9; 16]), fragments)
    }

    /// A binary tree of n spans (span i under span (i-1)/2), one µs apart.
    fn binary(n: usize) -> Trace {
        let spans: Vec<_> = (0..n)
            .map(|i| {
                let start = i as u64 * 1_000;
                ((i > 0).then(|| (i - 1) / 2), start, start + 100_000)
            })
            .collect();
        trace_of(&spans)
    }

    /// Every span is either shown or counted in exactly one hidden row, and
    /// the hidden rows' counts add up.
    fn check_accounts(t: &Trace, ix: &TreeIndex, scope: Scope, items: &[Item]) {
        let range = scope.range(t, ix);
        let mut covered = vec![0u8; t.spans.len()];
        for item in items {
            match *item {
                Item::Span { index, collapsed } => {
                    covered[index] += 1;
                    if collapsed {
                        for c in &mut covered[index + 1..index + ix.size[index]] {
                            *c += 1;
                        }
                    }
                }
                Item::Gap { start, end, .. } => {
                    for c in &mut covered[start..end] {
                        *c += 1;
                    }
                }
            }
        }
        for (i, c) in covered.iter().enumerate() {
            let want = u8::from(range.contains(&i));
            assert_eq!(*c, want, "span {i} covered {c} times");
        }
    }

    #[test]
    fn a_trace_over_the_budget_is_planned_breadth_first_within_it() {
        let t = binary(10_000);
        let ix = TreeIndex::new(&t);
        let scope = Scope::whole(&ix);
        let items = plan(&t, &ix, scope, 2_000, &[]);
        check_accounts(&t, &ix, scope, &items);
        let shown: Vec<usize> = items
            .iter()
            .filter_map(|i| match i {
                Item::Span { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        // Whole levels: 0..=9 hold 1,023 spans; level 10 (1,024) does not
        // fit in what is left, and its 512 pairs would get one row each,
        // so it stays hidden: level 9's spans are collapsed rows.
        assert_eq!(shown.len(), 1_023);
        let depth_max = shown.iter().map(|&i| t.spans[i].depth).max().unwrap();
        assert_eq!(depth_max, 9);
        assert_eq!(
            items
                .iter()
                .filter(|i| matches!(
                    i,
                    Item::Span {
                        collapsed: true,
                        ..
                    }
                ))
                .count(),
            512
        );
        for d in 0..=depth_max {
            assert_eq!(
                shown.iter().filter(|&&i| t.spans[i].depth == d).count(),
                1 << d,
                "level {d}"
            );
        }
        // Depth-first order, as the page shows it.
        let mut sorted = shown.clone();
        sorted.sort();
        assert_eq!(sorted, shown);
        // Nothing over the budget plans every span.
        let all = plan(&t, &ix, scope, usize::MAX, &[]);
        assert_eq!(all.len(), 10_000);
        assert!(all.iter().all(|i| matches!(
            i,
            Item::Span {
                collapsed: false,
                ..
            }
        )));
    }

    #[test]
    fn a_huge_fan_out_shows_its_first_calls_and_one_row_for_the_rest() {
        let mut spans = vec![(None, 0, 10_000_000)];
        spans.extend((1..5_000).map(|i| (Some(0), i as u64 * 1_000, i as u64 * 1_000 + 500)));
        let t = trace_of(&spans);
        let ix = TreeIndex::new(&t);
        let scope = Scope::whole(&ix);
        let items = plan(&t, &ix, scope, 1_000, &[]);
        check_accounts(&t, &ix, scope, &items);
        // The root, 998 of its calls, and one row for the other 4,001.
        assert_eq!(items.len(), 1_000);
        assert!(matches!(
            items[0],
            Item::Span {
                index: 0,
                collapsed: false
            }
        ));
        assert_eq!(
            items[999],
            Item::Gap {
                parent: Some(0),
                from: 998,
                to: 4_999,
                start: 999,
                end: 5_000
            }
        );
        // The rest, planned again from where the gap starts.
        let rest = Scope {
            parent: Some(0),
            from: 998,
            to: 4_999,
        };
        let items = plan(&t, &ix, rest, 1_000, &[]);
        check_accounts(&t, &ix, rest, &items);
        assert!(matches!(items[0], Item::Span { index: 999, .. }));
    }

    #[test]
    fn a_level_that_does_not_fit_is_shared_out_among_its_lists() {
        // A root, 10 groups, 1,000 leaves under each.
        let mut spans = vec![(None, 0, 100_000_000)];
        spans.extend((0..10).map(|g| (Some(0), g as u64, 90_000_000)));
        for g in 0..10usize {
            spans.extend((0..1_000).map(|j| (Some(1 + g), 100 + j as u64, 1_000_000)));
        }
        let t = trace_of(&spans);
        let ix = TreeIndex::new(&t);
        let scope = Scope::whole(&ix);
        let items = plan(&t, &ix, scope, 2_000, &[]);
        check_accounts(&t, &ix, scope, &items);
        // 11 rows for the root and groups; the other 1,989 shared out: 198
        // a group, of which one is the row for the rest.
        let gaps: Vec<(usize, usize)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Gap { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect();
        assert_eq!(gaps, vec![(197, 1_000); 10]);
        assert_eq!(items.len(), 11 + 10 * 198);
    }

    #[test]
    fn forced_spans_are_shown_with_their_ancestors_and_siblings_become_gaps() {
        let t = binary(10_000);
        let ix = TreeIndex::new(&t);
        let scope = Scope::whole(&ix);
        let deep = t.spans.iter().position(|n| n.name == "op-9999").unwrap();
        let items = plan(&t, &ix, scope, 100, &[(&[deep][..], 100)]);
        check_accounts(&t, &ix, scope, &items);
        let shown = |i: usize| {
            items
                .iter()
                .any(|it| matches!(it, Item::Span { index, .. } if *index == i))
        };
        let mut x = Some(deep);
        while let Some(i) = x {
            assert!(shown(i), "ancestor {} of the forced span", t.spans[i].name);
            x = t.spans[i].parent;
        }
        // A subtree scope plans only inside it.
        let under = t.spans[deep].parent.unwrap();
        let sub = Scope {
            parent: Some(under),
            from: 0,
            to: t.spans[under].children.len(),
        };
        let items = plan(&t, &ix, sub, 100, &[(&[deep][..], 100), (&[0][..], 100)]);
        check_accounts(&t, &ix, sub, &items);
        assert!(items.iter().all(|i| match i {
            Item::Span { index, .. } => sub.range(&t, &ix).contains(index),
            Item::Gap { start, end, .. } =>
                *start >= sub.range(&t, &ix).start && *end <= sub.range(&t, &ix).end,
        }));
    }

    #[test]
    fn the_tree_index_counts_subtrees() {
        let t = binary(15);
        let ix = TreeIndex::new(&t);
        assert_eq!(ix.size[0], 15);
        // op-1's subtree: 1, 3, 4, 7, 8, 9, 10.
        let one = t.spans.iter().position(|n| n.name == "op-1").unwrap();
        assert_eq!(ix.size[one], 7);
        // Errors are spans 3 and 10 in it.
        assert_eq!(ix.errors[one + 7] - ix.errors[one], 2);
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(
            spans_said(1_234, 3, (1, 1_200_000), 0),
            "1,234 spans (3 errors, 1 on the critical path for 1.20ms)"
        );
    }

    #[test]
    fn the_minimap_stays_small_whatever_the_trace() {
        let t = binary(20_000);
        let m = minimap(&t);
        assert_eq!(m.bands, 80);
        assert!(m.all.len() < 80 * 600 * 4, "{}", m.all.len());
        assert!(m.all.starts_with("M0 0h"));
        assert!(!m.critical.is_empty() && !m.errors.is_empty());
    }

    #[test]
    fn find_matches_names_attributes_and_ids_without_regard_to_case() {
        let t = binary(3);
        let f = Finder::new(" OP-2 ").unwrap();
        assert!(f.matches(&t.spans[2]) || f.matches(&t.spans[1]));
        let hits = t.spans.iter().filter(|n| f.matches(n)).count();
        assert_eq!(hits, 1);
        assert!(Finder::new("   ").is_none());
        let id = Finder::new(&t.spans[0].span_id.to_hex()).unwrap();
        assert!(id.matches(&t.spans[0]));
        assert!(Finder::new("é").unwrap().hit("CAFÉ"));
    }
}
