//! What a write adds besides the fragments themselves: search index
//! entries, catalog entries, summary and dependency merge operands.
//!
//! OTLP spans are complete and indexed as they come. A phosphor span side
//! is indexed once its start annotation is known, under the start's time;
//! where a write holds only one end of a side, the trace's earlier
//! fragments are read to find the other, so the side's duration and status
//! are right whichever end arrives last.

use std::borrow::Cow;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::block;
use crate::keys::{self, SpanFacts};
use crate::model::{
    Annotation, AnnotationType, Fragment, KeyValue, Side, Span, SpanId, SpanKind, StatusCode,
    TraceId, Value,
};
use crate::summary::{Summary, encode_counts};

/// Longest attribute value that gets a search index entry.
pub const MAX_INDEXED_VALUE: usize = 256;
/// Longest attribute value the autocomplete catalog keeps.
pub const MAX_CATALOG_VALUE: usize = 64;
/// Width of a dependency-counter time bucket (one hour).
pub const DEPENDENCY_BUCKET_US: u64 = 3_600_000_000;

/// Everything a batch adds to a partition's index column family.
#[derive(Debug, Default)]
pub(crate) struct IndexWrites {
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    pub merges: Vec<(Vec<u8>, Vec<u8>)>,
    pub catalog: Vec<Vec<u8>>,
}

/// One span (or span side) as the indexes see it.
struct Indexed<'a> {
    trace: TraceId,
    span: SpanId,
    start_us: u64,
    facts: SpanFacts,
    service: Cow<'a, str>,
    operation: Option<Cow<'a, str>>,
    attributes: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// A call between services in an hour: bucket, caller, callee.
type Call<'a> = (u64, Cow<'a, str>, Cow<'a, str>);

fn bucket(us: u64) -> u64 {
    us - us % DEPENDENCY_BUCKET_US
}

/// Cuts the batch's indexed spans into blocks (starts within
/// [`block::SPREAD_US`] of the block's first) and writes each block's facts
/// and terms; `next_block` hands out block sequence numbers.
fn emit_blocks(
    w: &mut IndexWrites,
    entries: &[Indexed<'_>],
    next_block: &mut dyn FnMut() -> u64,
    full: &FxHashSet<String>,
) {
    // References are sorted, not the entries themselves (which are large).
    let mut sorted: Vec<&Indexed<'_>> = entries.iter().collect();
    sorted.sort_by_key(|e| e.start_us);
    let mut catalog: FxHashSet<Vec<u8>> = FxHashSet::default();
    let mut key = Vec::with_capacity(128);
    let mut rest = &sorted[..];
    while let Some(first) = rest.first() {
        let min = first.start_us;
        let n = rest
            .iter()
            .take(block::MAX_MEMBERS)
            .take_while(|e| e.start_us - min <= block::SPREAD_US)
            .count();
        let (members, tail) = rest.split_at(n);
        rest = tail;
        let sfx = keys::suffix(min, next_block());
        let facts: Vec<block::Member> = members
            .iter()
            .map(|e| block::Member {
                trace: e.trace,
                span: e.span,
                start_us: e.start_us,
                facts: e.facts,
            })
            .collect();
        w.puts.push((
            keys::index_key(keys::IDX_SPAN, &[], &sfx),
            block::encode_facts(&facts),
        ));
        // Terms and catalog entries are built in one reused buffer; a
        // term's bytes are copied once, into one arena for the block, the
        // first time it is seen, and the map finds it by the 64-bit hash
        // that also places it in a bucket if it stays sparse. (Two terms of
        // a block sharing a hash, odds of about 2^-33 for a block of 4,096
        // spans of a dozen terms each, would share a member list.)
        // Room for a few terms a member up front (most values are new in
        // their block): the map otherwise grows a dozen times a block.
        let mut terms: FxHashMap<u64, BlockTerm> =
            FxHashMap::with_capacity_and_hasher(members.len() * 4, Default::default());
        let mut arena: Vec<u8> = Vec::with_capacity(members.len() * 128);
        // Adds member `i` to a term's list (once, however often the member
        // carries it); true when the term is new to the block, so that the
        // catalog entries that go with it are noted once a block, not once
        // a span.
        let add =
            |terms: &mut FxHashMap<u64, BlockTerm>, arena: &mut Vec<u8>, term: &[u8], i: u32| {
                match terms.entry(xxhash_rust::xxh3::xxh3_64(term)) {
                    std::collections::hash_map::Entry::Occupied(mut e) => {
                        e.get_mut().members.add(i);
                        false
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(BlockTerm {
                            at: arena.len() as u32,
                            len: term.len() as u32,
                            members: Members::One(i),
                        });
                        arena.extend_from_slice(term);
                        true
                    }
                }
            };
        let note = |catalog: &mut FxHashSet<Vec<u8>>, entry: &[u8]| {
            if !catalog.contains(entry) {
                catalog.insert(entry.to_vec());
            }
        };
        for (i, e) in members.iter().enumerate() {
            let i = i as u32;
            let service: &str = &e.service;
            keys::term_into(&mut key, keys::IDX_SERVICE, &[service]);
            if add(&mut terms, &mut arena, &key, i) {
                keys::term_into(&mut key, keys::CATALOG_SERVICE, &[service]);
                note(&mut catalog, &key);
            }
            if let Some(op) = &e.operation {
                keys::term_into(&mut key, keys::IDX_SERVICE_OPERATION, &[service, op]);
                add(&mut terms, &mut arena, &key, i);
                keys::term_into(&mut key, keys::IDX_OPERATION, &[op]);
                add(&mut terms, &mut arena, &key, i);
                let entry = keys::operation_key(service, e.facts.kind, op);
                note(&mut catalog, &entry);
            }
            if e.facts.error {
                add(&mut terms, &mut arena, &[keys::IDX_ERROR], i);
            }
            for (k, v) in &e.attributes {
                if v.len() <= MAX_INDEXED_VALUE && k.len() <= MAX_INDEXED_VALUE {
                    keys::attribute_term_into(&mut key, k, v);
                    if !add(&mut terms, &mut arena, &key, i) {
                        // Its catalog entries were noted with the term
                        // (a 64-bit hash of a long value stands for it).
                        continue;
                    }
                }
                keys::term_into(&mut key, keys::CATALOG_ATTR_KEY, &[k]);
                note(&mut catalog, &key);
                // A key whose catalog values are full takes no more: not
                // offering them spares building, sorting and refusing
                // one entry for nearly every new value.
                if v.len() <= MAX_CATALOG_VALUE && !full.contains(k.as_ref()) {
                    keys::term_into(&mut key, keys::CATALOG_ATTR_VALUE, &[k, v]);
                    note(&mut catalog, &key);
                }
            }
        }
        // A sparse attribute term goes into its bucket, an entry a member;
        // every other term is a key of its own.
        let mut sparse: Vec<(u8, u64, u32)> = Vec::with_capacity(terms.len() * 2);
        for (hash, t) in terms {
            let term = &arena[t.at as usize..(t.at + t.len) as usize];
            let list: &[u32] = match &t.members {
                Members::One(m) => std::slice::from_ref(m),
                Members::Many(list) => list,
            };
            if list.len() <= keys::SPARSE_MAX_MEMBERS && term.first() == Some(&keys::IDX_ATTRIBUTE)
            {
                let (bucket, fp) = keys::sparse_from_hash(hash);
                sparse.extend(list.iter().map(|&m| (bucket, fp, m)));
                continue;
            }
            let value = block::encode_members(list);
            let mut k = Vec::with_capacity(term.len() + sfx.len());
            k.extend_from_slice(term);
            k.extend_from_slice(&sfx);
            w.puts.push((k, value));
        }
        sparse.sort_unstable_by_key(|s| s.0);
        let mut entries: Vec<(u64, u32)> = Vec::new();
        for bucket in sparse.chunk_by(|a, b| a.0 == b.0) {
            entries.clear();
            entries.extend(bucket.iter().map(|&(_, fp, m)| (fp, m)));
            let mut k = Vec::with_capacity(2 + sfx.len());
            k.extend_from_slice(&keys::sparse_prefix(bucket[0].0));
            k.extend_from_slice(&sfx);
            w.puts.push((k, block::encode_sparse(&mut entries)));
        }
    }
    w.catalog.extend(catalog);
}

/// A term of a block: where its bytes are in the block's arena, and its
/// members.
struct BlockTerm {
    at: u32,
    len: u32,
    members: Members,
}

/// The members of a block that carry one term, in order, each once. Most
/// terms of a block (values new for nearly every span) have one member,
/// kept without an allocation.
enum Members {
    One(u32),
    Many(Vec<u32>),
}

impl Members {
    /// Adds member `i`, which is never below the last one added.
    fn add(&mut self, i: u32) {
        match self {
            Members::One(m) if *m != i => *self = Members::Many(vec![*m, i]),
            Members::One(_) => {}
            Members::Many(list) => {
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
    }
}

/// A value as text, as `Value`'s `Display` writes it, without the
/// formatting machinery for the common kinds (and borrowed where it can be).
fn value_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Str(s) => Cow::Borrowed(s.as_str()),
        Value::Int(i) => Cow::Owned(itoa::Buffer::new().format(*i).to_string()),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        other => Cow::Owned(other.to_string()),
    }
}

fn kv_strings(kvs: &[KeyValue]) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    kvs.iter()
        .map(|kv| (Cow::Borrowed(kv.key.as_str()), value_text(&kv.value)))
}

fn span_attributes(s: &Span) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let mut out: Vec<_> = kv_strings(&s.attributes).collect();
    out.extend(kv_strings(&s.resource));
    for e in &s.events {
        out.extend(kv_strings(&e.attributes));
    }
    // Not sorted or deduplicated: a pair repeated within a span adds its
    // member to a term once, and its catalog entries once (`emit_blocks`).
    out
}

/// The start and end annotation of a client (or server) side.
fn side_ends(client: bool) -> (AnnotationType, AnnotationType) {
    if client {
        (AnnotationType::ClientSend, AnnotationType::ClientRecv)
    } else {
        (AnnotationType::ServerRecv, AnnotationType::ServerSend)
    }
}

/// Whether a side's annotations hold both its start and its end (or a
/// timeout).
fn side_complete(anns: &[&Annotation], client: bool) -> bool {
    let (start_kind, end_kind) = side_ends(client);
    anns.iter().any(|a| a.kind == start_kind)
        && anns
            .iter()
            .any(|a| a.kind == end_kind || a.kind == AnnotationType::Timeout)
}

/// Builds the index writes of a batch. `earlier` returns a trace's stored
/// fragments; it is called at most once per trace, and only for traces
/// with annotation sides of which this batch holds one end only. `full`
/// names the attribute keys whose catalog values are full: the batch
/// offers no more values of theirs. The catalog entries come out each once,
/// in no particular order.
pub(crate) fn index_batch(
    fragments: &[Fragment],
    earlier: &mut dyn FnMut(TraceId) -> Vec<Fragment>,
    next_block: &mut dyn FnMut() -> u64,
    full: &FxHashSet<String>,
) -> IndexWrites {
    let mut w = IndexWrites::default();
    // Declared before the entries, which borrow from it.
    let mut stored: FxHashMap<TraceId, Vec<Fragment>> = FxHashMap::default();
    let mut entries: Vec<Indexed<'_>> = Vec::new();
    let mut summaries: FxHashMap<TraceId, Summary> = FxHashMap::default();
    // Calls between services, by hour: caller and callee are borrowed from
    // the fragments where they can be (they are looked up once a span).
    let mut deps: FxHashMap<Call<'_>, (u64, u64)> = FxHashMap::default();

    // OTLP-shaped spans.
    let spans: Vec<&Span> = fragments
        .iter()
        .filter_map(|f| match f {
            Fragment::Span(s) => Some(s),
            Fragment::Annotation(_) => None,
        })
        .collect();
    let by_id: FxHashMap<(TraceId, SpanId), &Span> = spans
        .iter()
        .map(|s| ((s.trace_id, s.span_id), *s))
        .collect();
    // Client sides, for server sides that share their span ID (Zipkin).
    let callers: FxHashMap<(TraceId, SpanId), &Span> = spans
        .iter()
        .filter(|s| matches!(s.kind, SpanKind::Client | SpanKind::Producer))
        .map(|s| ((s.trace_id, s.span_id), *s))
        .collect();
    let mut has_remote_child: FxHashSet<(TraceId, SpanId)> = FxHashSet::default();
    for s in &spans {
        let start_us = s.start_ns / 1_000;
        let error = s.status == StatusCode::Error;
        entries.push(Indexed {
            trace: s.trace_id,
            span: s.span_id,
            start_us,
            facts: SpanFacts {
                duration_us: Some(s.end_ns.saturating_sub(s.start_ns) / 1_000),
                kind: s.kind,
                error,
            },
            service: Cow::Borrowed(&s.service),
            operation: Some(Cow::Borrowed(&s.name)),
            attributes: span_attributes(s),
        });
        let sum = summaries.entry(s.trace_id).or_default();
        sum.cover(start_us, s.end_ns / 1_000);
        sum.spans += 1;
        sum.errors += u64::from(error);
        sum.add_service(&s.service, 1);
        sum.offer_root_parts(start_us, &s.service, &s.name, s.parent_span_id.is_some());
        // A call between services: this span's caller (the client side it
        // shares an ID with, or its parent) is another service's.
        let shared_caller = matches!(s.kind, SpanKind::Server | SpanKind::Consumer)
            .then(|| callers.get(&(s.trace_id, s.span_id)))
            .flatten();
        if let Some(p) =
            shared_caller.or_else(|| s.parent_span_id.and_then(|p| by_id.get(&(s.trace_id, p))))
            && p.service != s.service
        {
            has_remote_child.insert((p.trace_id, p.span_id));
            let e = deps
                .entry((
                    bucket(start_us),
                    Cow::Borrowed(p.service.as_str()),
                    Cow::Borrowed(s.service.as_str()),
                ))
                .or_default();
            e.0 += 1;
            e.1 += u64::from(error);
        }
    }
    // Client spans whose callee did not report in this batch: the remote
    // service they name.
    for s in &spans {
        if matches!(s.kind, SpanKind::Client | SpanKind::Producer)
            && !has_remote_child.contains(&(s.trace_id, s.span_id))
            && let Some(peer) = s.attributes.iter().find(|kv| kv.key == "peer.service")
        {
            let e = deps
                .entry((
                    bucket(s.start_ns / 1_000),
                    Cow::Borrowed(s.service.as_str()),
                    value_text(&peer.value),
                ))
                .or_default();
            e.0 += 1;
            e.1 += u64::from(s.status == StatusCode::Error);
        }
    }

    // Phosphor annotations, by span side.
    let mut sides: FxHashMap<(TraceId, SpanId, bool), Vec<&Annotation>> = FxHashMap::default();
    let mut span_ops: FxHashMap<(TraceId, SpanId), &str> = FxHashMap::default();
    for f in fragments {
        let Fragment::Annotation(a) = f else { continue };
        let us = u64::try_from(a.timestamp_us).unwrap_or(0);
        let sum = summaries.entry(a.trace_id).or_default();
        sum.cover(us.saturating_sub(a.duration_us.max(0) as u64), us);
        if let Some(op) = a.operation_str() {
            span_ops.entry((a.trace_id, a.span_id)).or_insert(op);
        }
        match a.kind {
            AnnotationType::ClientSend | AnnotationType::ServerRecv => {
                sum.spans += 1;
                sum.add_service(a.service(), 1);
            }
            AnnotationType::Timeout => sum.errors += 1,
            _ => {}
        }
        if a.kind.side() != Side::Event {
            sides
                .entry((a.trace_id, a.span_id, a.kind.side() == Side::Client))
                .or_default()
                .push(a);
        }
        if matches!(a.kind, AnnotationType::ClientSend | AnnotationType::Timeout)
            && !a.destination.is_empty()
        {
            let e = deps
                .entry((
                    bucket(us),
                    Cow::Borrowed(a.origin.as_str()),
                    Cow::Borrowed(a.destination.as_str()),
                ))
                .or_default();
            if a.kind == AnnotationType::ClientSend {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    // The stored fragments of traces with a side of which this batch holds
    // one end only, read before any side is indexed so that the sides can
    // borrow from them.
    for (&(trace, _, client), batch) in &sides {
        if !side_complete(batch, client) && !stored.contains_key(&trace) {
            stored.insert(trace, earlier(trace));
        }
    }
    for ((trace, span, client), batch) in sides {
        let (start_kind, end_kind) = side_ends(client);
        let mut all: Vec<&Annotation> = batch;
        if !side_complete(&all, client)
            && let Some(earlier_frags) = stored.get(&trace)
        {
            for f in earlier_frags {
                if let Fragment::Annotation(a) = f
                    && a.span_id == span
                    && (a.kind.side() == Side::Client) == client
                    && a.kind.side() != Side::Event
                {
                    all.push(a);
                }
            }
        }
        let Some(start) = all
            .iter()
            .copied()
            .filter(|a| a.kind == start_kind)
            .min_by_key(|a| a.timestamp_us)
        else {
            // Indexed once the start arrives.
            continue;
        };
        let start_us = u64::try_from(start.timestamp_us).unwrap_or(0);
        let end = all
            .iter()
            .filter(|a| a.kind == end_kind)
            .map(|a| a.timestamp_us)
            .min();
        let timeout = all
            .iter()
            .filter(|a| a.kind == AnnotationType::Timeout)
            .map(|a| a.timestamp_us)
            .min();
        let one_way = all.iter().any(|a| a.one_way);
        let duration_us = end
            .or(timeout)
            .map(|e| u64::try_from(e - start.timestamp_us).unwrap_or(0))
            .or((one_way && client).then_some(0));
        let operation: Option<Cow<'_, str>> = all
            .iter()
            .find_map(|a| a.operation_str())
            .or_else(|| span_ops.get(&(trace, span)).copied())
            .map(Cow::Borrowed)
            .or_else(|| client.then(|| Cow::Owned(start.default_name())));
        // Borrowed from the annotations: a side's attributes are copied
        // nowhere on the way to its index terms (and, as a span's, need no
        // deduplication: see `span_attributes`).
        let mut attributes: Vec<(Cow<'_, str>, Cow<'_, str>)> = all
            .iter()
            .flat_map(|a| a.attributes.iter())
            .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())))
            .collect();
        attributes.extend(all.iter().filter(|a| !a.hostname.is_empty()).map(|a| {
            (
                Cow::Borrowed("host.name"),
                Cow::Borrowed(a.hostname.as_str()),
            )
        }));
        if client && !start.destination.is_empty() {
            attributes.push((
                Cow::Borrowed("peer.service"),
                Cow::Borrowed(start.destination.as_str()),
            ));
        }
        let root_name = operation
            .clone()
            .unwrap_or_else(|| Cow::Owned(start.default_name()));
        summaries.entry(trace).or_default().offer_root_parts(
            start_us,
            start.service(),
            &root_name,
            // A client side without a parent is the root; a server side is
            // one only where no such client side exists (an edge service
            // whose callers are not traced).
            !client || start.parent_id.is_some(),
        );
        entries.push(Indexed {
            trace,
            span,
            start_us,
            facts: SpanFacts {
                duration_us,
                kind: start.span_kind(),
                error: timeout.is_some(),
            },
            service: Cow::Borrowed(start.service()),
            operation,
            attributes,
        });
    }

    emit_blocks(&mut w, &entries, next_block, full);
    for (trace, s) in summaries {
        w.merges
            .push((keys::summary_key(trace).to_vec(), s.encode()));
    }
    for ((b, caller, callee), (calls, errors)) in deps {
        w.merges.push((
            keys::dependency_key(b, &caller, &callee),
            encode_counts(calls, errors).to_vec(),
        ));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The member list of the attribute term `k=v` in the only block: a
    /// key of its own, or its bucket's entries where it is sparse.
    fn members_of(w: &IndexWrites, k: &str, v: &str) -> Vec<u32> {
        let term = keys::index_key(keys::IDX_ATTRIBUTE, &[k, &keys::term_value(v)], &[]);
        let (bucket, fp) = keys::sparse_of(&term);
        let bucket = keys::sparse_prefix(bucket);
        fn of<'a>(
            w: &'a IndexWrites,
            prefix: &'a [u8],
        ) -> impl Iterator<Item = &'a (Vec<u8>, Vec<u8>)> {
            w.puts.iter().filter(move |(key, _)| {
                key.len() == prefix.len() + keys::SUFFIX_LEN && key.starts_with(prefix)
            })
        }
        let mut lists: Vec<Vec<u32>> = of(w, &term)
            .map(|(_, list)| block::decode_members(list).expect("a member list"))
            .collect();
        let sparse: Vec<Vec<u32>> = of(w, &bucket)
            .map(|(_, v)| block::sparse_members(v, fp).expect("a bucket"))
            .filter(|m| !m.is_empty())
            .collect();
        assert!(
            sparse.iter().all(|m| m.len() <= keys::SPARSE_MAX_MEMBERS),
            "a bucket lists a sparse term's members: {k}={v}"
        );
        lists.extend(sparse);
        assert_eq!(lists.len(), 1, "{k}={v}");
        lists.into_iter().next().unwrap()
    }

    /// A server span of service `api` in trace `[1; 16]`, starting `id`
    /// microseconds after the first millisecond.
    fn server_span(id: u8, attributes: Vec<KeyValue>) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: None,
            name: "op".into(),
            kind: SpanKind::Server,
            service: "api".into(),
            start_ns: 1_000_000 + u64::from(id) * 1_000,
            end_ns: 2_000_000,
            status: StatusCode::Unset,
            status_message: Default::default(),
            attributes,
            resource: vec![],
            scope: None,
            events: vec![],
            links: vec![],
            protocol: crate::model::Protocol::OtlpGrpc,
        }
    }

    #[test]
    fn a_pair_repeated_within_a_span_or_side_lists_its_member_once() {
        let pair = || KeyValue::string("k", "v");
        let span = |id: u8, repeated: bool| {
            let mut s = server_span(id, vec![pair(), pair()]);
            if repeated {
                s.resource = vec![pair()];
                s.events = vec![crate::model::Event {
                    time_ns: 1_500_000,
                    name: "e".into(),
                    attributes: vec![pair()],
                }];
            }
            s
        };
        // A phosphor client side whose two annotations both carry `a=b`.
        let ann = |kind: AnnotationType, ts: i64| Annotation {
            trace_id: TraceId([2; 16]),
            span_id: SpanId([9; 8]),
            parent_id: None,
            legacy: Default::default(),
            kind,
            one_way: false,
            timestamp_us: ts,
            duration_us: 0,
            hostname: "box".into(),
            origin: "web".into(),
            destination: "api".into(),
            payload: Default::default(),
            attributes: vec![("a".into(), "b".into()), ("a".into(), "b".into())],
        };
        let frags = vec![
            Fragment::Span(span(1, true)),
            Fragment::Span(span(2, false)),
            Fragment::Annotation(ann(AnnotationType::ClientSend, 1_003)),
            Fragment::Annotation(ann(AnnotationType::ClientRecv, 1_900)),
        ];
        let w = index_batch(
            &frags,
            &mut |_| Vec::new(),
            &mut || 7,
            &FxHashSet::default(),
        );
        // Members are in start order: the two spans, then the side.
        assert_eq!(members_of(&w, "k", "v"), [0, 1]);
        assert_eq!(members_of(&w, "a", "b"), [2]);
        assert_eq!(members_of(&w, "host.name", "box"), [2]);
        // Catalog entries, once each.
        let value = keys::index_key(keys::CATALOG_ATTR_VALUE, &["k", "v"], &[]);
        assert_eq!(w.catalog.iter().filter(|c| **c == value).count(), 1);
    }

    #[test]
    fn sparse_attribute_terms_share_bucket_keys() {
        // 200 spans in one block: `region` repeats, `request.id` is new in
        // every span, each `message.id` is in two spans, each `batch` in
        // one more span than a sparse term may list, and the service and
        // operation repeat.
        let over = keys::SPARSE_MAX_MEMBERS as u32 + 1;
        let frags: Vec<Fragment> = (0..200u32)
            .map(|i| {
                let mut s = server_span(
                    1,
                    vec![
                        KeyValue::string("region", "eu"),
                        KeyValue::string("request.id", format!("r{i}")),
                        KeyValue::string("message.id", format!("m{}", i / 2)),
                        KeyValue::string("batch", format!("b{}", i / over)),
                    ],
                );
                s.span_id = SpanId([i as u8, (i >> 8) as u8, 0, 0, 0, 0, 0, 1]);
                s.start_ns = 1_000_000 + u64::from(i) * 1_000;
                Fragment::Span(s)
            })
            .collect();
        let w = index_batch(
            &frags,
            &mut |_| Vec::new(),
            &mut || 7,
            &FxHashSet::default(),
        );
        let tags = |tag: u8| w.puts.iter().filter(|(k, _)| k[0] == tag).count();
        // Only `region` and the batches have keys of their own.
        let batches = 200usize.div_ceil(over as usize);
        assert_eq!(tags(keys::IDX_ATTRIBUTE), 1 + batches);
        assert_eq!(members_of(&w, "region", "eu"), (0..200).collect::<Vec<_>>());
        for b in 0..batches as u32 {
            let want: Vec<u32> = (b * over..((b + 1) * over).min(200)).collect();
            assert_eq!(members_of(&w, "batch", &format!("b{b}")), want);
        }
        // 300 sparse terms, 400 entries, over at most 64 keys, each term
        // found in its bucket with all its members.
        let buckets = tags(keys::IDX_SPARSE);
        assert!((40..=keys::SPARSE_BUCKETS).contains(&buckets), "{buckets}");
        for i in 0..200u32 {
            assert_eq!(members_of(&w, "request.id", &format!("r{i}")), [i]);
        }
        for m in 0..100u32 {
            assert_eq!(
                members_of(&w, "message.id", &format!("m{m}")),
                [2 * m, 2 * m + 1]
            );
        }
        let entries: usize = w
            .puts
            .iter()
            .filter(|(k, _)| k[0] == keys::IDX_SPARSE)
            .map(|(_, v)| block::sparse_len(v))
            .sum();
        assert_eq!(entries, 400);
        // Service, operation and error terms keep their keys.
        assert_eq!(tags(keys::IDX_SERVICE), 1);
        assert_eq!(tags(keys::IDX_SERVICE_OPERATION), 1);
    }

    #[test]
    fn a_key_whose_catalog_values_are_full_offers_no_more_but_is_indexed() {
        let span = |id: u8| {
            server_span(
                id,
                vec![
                    KeyValue::string("request.id", format!("r{id}")),
                    KeyValue::string("region", "eu"),
                ],
            )
        };
        let frags: Vec<Fragment> = (1..=3).map(|i| Fragment::Span(span(i))).collect();
        let value = |k: &str, v: &str| keys::index_key(keys::CATALOG_ATTR_VALUE, &[k, v], &[]);
        let attr_key = keys::index_key(keys::CATALOG_ATTR_KEY, &["request.id"], &[]);
        let open = index_batch(
            &frags,
            &mut |_| Vec::new(),
            &mut || 7,
            &FxHashSet::default(),
        );
        assert!(open.catalog.contains(&value("request.id", "r2")));
        let full: FxHashSet<String> = ["request.id".to_string()].into_iter().collect();
        let w = index_batch(&frags, &mut |_| Vec::new(), &mut || 7, &full);
        for id in 1u8..=3 {
            // Still searchable; only the autocomplete value is not offered.
            assert_eq!(
                members_of(&w, "request.id", &format!("r{id}")),
                [u32::from(id) - 1]
            );
            assert!(!w.catalog.contains(&value("request.id", &format!("r{id}"))));
        }
        assert!(w.catalog.contains(&attr_key));
        assert!(w.catalog.contains(&value("region", "eu")));
        // Each entry once.
        let mut sorted = w.catalog.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), w.catalog.len());
    }

    #[test]
    fn indexed_values_are_written_as_display_writes_them() {
        let values = [
            Value::Str("GET".into()),
            Value::Int(0),
            Value::Int(-42),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Bool(true),
            Value::Bool(false),
            Value::Double(1.5),
            Value::Array(vec![Value::Int(1), Value::Bool(false)]),
        ];
        let kvs: Vec<KeyValue> = values
            .iter()
            .map(|v| KeyValue {
                key: "k".into(),
                value: v.clone(),
            })
            .collect();
        for ((_, got), v) in kv_strings(&kvs).zip(&values) {
            assert_eq!(got, v.to_string());
        }
    }
}
