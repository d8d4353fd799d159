//! Span-level search: one span must satisfy every span filter together (as
//! a TraceQL spanset does), and the result names the span that matched.
//!
//! The most selective index drives: its keys are read newest first, keys
//! only, merged across partitions; every other condition is checked for the
//! candidate span by a point lookup of the same suffix in its own index, or
//! in the span index's facts (duration, kind, status). Reading stops at the
//! limit.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};

use crate::block;
use crate::keys::{self, SpanFacts};
use crate::model::{SpanId, SpanKind, TraceId};
use crate::summary::Summary;
use crate::{Result, Store, cf};

/// A search request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub kind: Option<SpanKind>,
    /// `key = value` on span, resource or event attributes, all required.
    pub attributes: Vec<(String, String)>,
    pub errors_only: bool,
    pub min_duration_us: Option<u64>,
    pub max_duration_us: Option<u64>,
    /// Spans that started in `[start_us, end_us]`.
    pub start_us: u64,
    pub end_us: u64,
    pub limit: usize,
}

/// One trace found, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub trace_id: TraceId,
    /// The (newest) span of the trace that matched every span filter.
    pub span_id: SpanId,
    pub span_start_us: u64,
    pub summary: Summary,
}

/// Most index entries one search reads before it gives up: the members of
/// blocks it examines, and the sparse buckets it reads (one each, a key
/// read and a binary search, whatever they hold: five million of them,
/// two to three seconds' work, cover some three billion spans of the load
/// tool's shape).
pub const MAX_SCANNED: usize = 5_000_000;

/// A condition a matching span carries, as the index keeps it.
struct Term {
    /// The prefix of the term's own keys (one a block that holds it).
    prefix: Vec<u8>,
    /// For an attribute term, its bucket and fingerprint: in a block where
    /// it is sparse (a few members at most), it has no key but entries in
    /// its bucket.
    sparse: Option<(u8, u64)>,
}

impl Term {
    fn keys_only(prefix: Vec<u8>) -> Term {
        Term {
            prefix,
            sparse: None,
        }
    }
}

impl SearchQuery {
    /// The terms a matching span has entries under, most selective first
    /// (the first drives the scan).
    fn terms(&self) -> Vec<Term> {
        let mut out = Vec::new();
        for (k, v) in &self.attributes {
            let prefix = keys::index_key(keys::IDX_ATTRIBUTE, &[k, &keys::term_value(v)], &[]);
            let sparse = Some(keys::sparse_of(&prefix));
            out.push(Term { prefix, sparse });
        }
        match (&self.service, &self.operation) {
            (Some(s), Some(op)) => out.push(Term::keys_only(keys::index_key(
                keys::IDX_SERVICE_OPERATION,
                &[s, op],
                &[],
            ))),
            (None, Some(op)) => out.push(Term::keys_only(keys::index_key(
                keys::IDX_OPERATION,
                &[op],
                &[],
            ))),
            (Some(s), None) => out.push(Term::keys_only(keys::index_key(
                keys::IDX_SERVICE,
                &[s],
                &[],
            ))),
            (None, None) => {}
        }
        if self.errors_only {
            // Checked from the span facts when another index drives.
            if out.is_empty() {
                out.push(Term::keys_only(vec![keys::IDX_ERROR]));
            }
        }
        if out.is_empty() {
            out.push(Term::keys_only(vec![keys::IDX_SPAN]));
        }
        out
    }

    fn facts_match(&self, f: &SpanFacts) -> bool {
        if self.kind.is_some_and(|k| k != f.kind) || (self.errors_only && !f.error) {
            return false;
        }
        match (self.min_duration_us, self.max_duration_us, f.duration_us) {
            (None, None, _) => true,
            (_, _, None) => false,
            (min, max, Some(d)) => min.is_none_or(|m| d >= m) && max.is_none_or(|m| d <= m),
        }
    }
}

impl Store {
    /// Traces with a span matching `q`, newest first, at most `q.limit`.
    pub fn search(&self, q: &SearchQuery) -> Result<Vec<SearchHit>> {
        if q.limit == 0 || q.start_us > q.end_us {
            return Ok(Vec::new());
        }
        let width = self.partition_width_us();
        // A span is written at or after it starts, give or take clock skew:
        // a partition that closed well before the range began cannot hold it.
        let parts: Vec<u64> = self
            .partitions()
            .into_iter()
            .filter(|p| (p + 2).saturating_mul(width) >= q.start_us)
            .collect();
        let cfs: Vec<_> = parts
            .iter()
            .rev()
            .filter_map(|&p| self.cf(&cf::index(p)).ok())
            .collect();
        let terms = q.terms();
        let (driver, checks) = terms.split_first().expect("at least one term");
        let driver_is_facts = driver.prefix.as_slice() == [keys::IDX_SPAN];
        let db = self.db();
        // Blocks whose first span started this early may still hold a span
        // that started in the range (keys hold the second of the first
        // start).
        let first_start = q.start_us.saturating_sub(block::SPREAD_US);
        let first_start = first_start - first_start % 1_000_000;

        // The driver's streams: its own keys, and for an attribute its
        // bucket's entries, in every partition, from the end of the range.
        // A block holds the term one way or the other, never both; a heap
        // merges the streams newest block first.
        let mut streams: Vec<(&[u8], Option<u64>)> = vec![(&driver.prefix, None)];
        let bucket_prefix;
        if let Some((bucket, fp)) = driver.sparse {
            bucket_prefix = keys::sparse_prefix(bucket);
            streams.push((&bucket_prefix, Some(fp)));
        }
        let current = |it: &rocksdb::DBRawIteratorWithThreadMode<'_, crate::Db>,
                       prefix: &[u8]|
         -> Option<Sfx> {
            let k = it.key()?;
            if !k.starts_with(prefix) || k.len() != prefix.len() + keys::SUFFIX_LEN {
                return None;
            }
            let (start, _) = keys::decode_suffix(k)?;
            (start >= first_start).then(|| k[prefix.len()..].try_into().ok())?
        };
        // Each iterator with its partition and stream.
        let mut iters = Vec::with_capacity(cfs.len() * streams.len());
        let mut heap = BinaryHeap::new();
        for (ci, cf) in cfs.iter().enumerate() {
            for (si, (prefix, _)) in streams.iter().enumerate() {
                let mut seek = prefix.to_vec();
                seek.extend_from_slice(&keys::suffix_from(q.end_us));
                let mut it = db.raw_iterator_cf(cf);
                it.seek(&seek);
                if let Some(s) = current(&it, prefix) {
                    heap.push(Reverse((s, iters.len())));
                }
                iters.push((it, ci, si));
            }
        }

        // The newest matching span of each trace found, and once there are
        // `limit` of them, the start of the limit-th newest: a span that
        // started before it changes neither which traces are the newest
        // `limit` nor the span named for them, so it is not added (and
        // `found` stays about `limit` long).
        let mut found: HashMap<TraceId, (SpanId, u64)> = HashMap::new();
        let mut kth: Option<u64> = None;
        let mut scanned = 0usize;
        let mut key = Vec::with_capacity(64);
        while let Some(Reverse((sfx, i))) = heap.pop() {
            let (block_start, _) = keys::decode_suffix(&sfx).expect("suffix");
            // Every later block starts at or before this one: once the
            // limit is reached, none can hold a newer span than the
            // limit-th found.
            if kth.is_some_and(|k| block_start.saturating_add(block::KEY_SLACK_US) < k) {
                break;
            }
            let (it, ci, si) = &mut iters[i];
            let (prefix, fp) = streams[*si];
            let driver_members = if driver_is_facts {
                None
            } else {
                let v = it.value().unwrap_or_default();
                Some(
                    match fp {
                        None => block::decode_members(v),
                        Some(fp) => {
                            // A value sparse in its blocks is looked for in
                            // every block of the range: each bucket read
                            // counts, so that such a search over a long,
                            // busy range still stops.
                            scanned += 1;
                            block::sparse_members(v, fp)
                        }
                    }
                    .ok_or_else(|| corrupt(&sfx, "member list"))?,
                )
            };
            it.next();
            if let Some(s) = current(it, prefix) {
                heap.push(Reverse((s, i)));
            }
            it.status()?;
            let cf = &cfs[*ci];
            if driver_members.as_ref().is_some_and(|m| m.is_empty()) {
                // A bucket without the term.
                if scanned > MAX_SCANNED {
                    tracing::warn!(scanned, "search stopped at its scan limit");
                    break;
                }
                continue;
            }
            let mut members = driver_members;
            for term in checks {
                key.clear();
                key.extend_from_slice(&term.prefix);
                key.extend_from_slice(&sfx);
                let list = match (db.get_pinned_cf(cf, &key)?, term.sparse) {
                    (Some(v), _) => block::decode_members(&v),
                    (None, Some((bucket, fp))) => {
                        key.clear();
                        key.extend_from_slice(&keys::sparse_prefix(bucket));
                        key.extend_from_slice(&sfx);
                        match db.get_pinned_cf(cf, &key)? {
                            Some(v) => block::sparse_members(&v, fp),
                            None => Some(Vec::new()),
                        }
                    }
                    (None, None) => Some(Vec::new()),
                }
                .ok_or_else(|| corrupt(&sfx, "member list"))?;
                members = Some(match members {
                    Some(m) => block::intersect(&m, &list),
                    None => list,
                });
                if members.as_ref().is_some_and(|m| m.is_empty()) {
                    break;
                }
            }
            if members.as_ref().is_some_and(|m| m.is_empty()) {
                continue;
            }
            key.clear();
            key.push(keys::IDX_SPAN);
            key.extend_from_slice(&sfx);
            let Some(v) = db.get_pinned_cf(cf, &key)? else {
                continue;
            };
            // Once the limit is reached, a block whose spans all started
            // before the limit-th newest found changes nothing: its exact
            // first start, in the facts' header, says so without decoding
            // its members (the key's second alone leaves two seconds of
            // blocks to read after the last one that counts).
            if let Some(k) = kth {
                let first = block::facts_first_start(&v).ok_or_else(|| corrupt(&sfx, "facts"))?;
                if first.saturating_add(block::SPREAD_US) < k {
                    continue;
                }
            }
            let facts = block::decode_facts(&v).ok_or_else(|| corrupt(&sfx, "facts"))?;
            let mut changed = false;
            let mut consider = |m: &block::Member| {
                if m.start_us < q.start_us
                    || m.start_us > q.end_us
                    || kth.is_some_and(|k| m.start_us < k)
                    || !q.facts_match(&m.facts)
                {
                    return;
                }
                match found.entry(m.trace) {
                    Entry::Vacant(e) => {
                        e.insert((m.span, m.start_us));
                    }
                    Entry::Occupied(mut e) if m.start_us > e.get().1 => {
                        e.insert((m.span, m.start_us));
                    }
                    Entry::Occupied(_) => return,
                }
                changed = true;
            };
            match &members {
                None => facts.iter().for_each(&mut consider),
                Some(list) => list
                    .iter()
                    .filter_map(|&n| facts.get(n as usize))
                    .for_each(&mut consider),
            }
            if changed && found.len() >= q.limit {
                kth = Some(kth_newest(&found, q.limit));
            }
            scanned += members.as_ref().map_or(facts.len(), Vec::len).max(1);
            if scanned > MAX_SCANNED {
                tracing::warn!(scanned, "search stopped at its scan limit");
                break;
            }
        }
        drop(iters);

        let mut found: Vec<(TraceId, SpanId, u64)> =
            found.into_iter().map(|(t, (s, at))| (t, s, at)).collect();
        found.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        found.truncate(q.limit);
        let ids: Vec<TraceId> = found.iter().map(|(t, _, _)| *t).collect();
        let summaries = self.summaries(&ids)?;
        Ok(found
            .into_iter()
            .zip(summaries)
            .map(|((trace_id, span_id, span_start_us), s)| SearchHit {
                trace_id,
                span_id,
                span_start_us,
                summary: s.unwrap_or_default(),
            })
            .collect())
    }
}

type Sfx = [u8; keys::SUFFIX_LEN];

fn corrupt(sfx: &Sfx, what: &str) -> crate::Error {
    crate::Error::Corrupt {
        key: hex::encode(sfx),
        reason: format!("index block {what} does not decode"),
    }
}

/// The start of the `k`-th newest span found.
fn kth_newest(found: &HashMap<TraceId, (SpanId, u64)>, k: usize) -> u64 {
    let mut starts: Vec<u64> = found.values().map(|v| v.1).collect();
    let k = k.clamp(1, starts.len());
    let (_, kth, _) = starts.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
    *kth
}

/// What recent spans of one operation looked like.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationStats {
    pub operation: String,
    pub kind: SpanKind,
    /// Spans seen (at most the sample cap).
    pub count: u64,
    pub errors: u64,
    /// Duration percentiles in microseconds: p50, p95, p99.
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    /// The sample hit its cap: counts are lower bounds.
    pub capped: bool,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl Store {
    /// Request count, errors and latency percentiles of each of a service's
    /// operations over `[start_us, end_us]`, from the index (keys and span
    /// facts, never whole spans), reading at most `cap` spans per
    /// operation, newest first.
    pub fn operation_stats(
        &self,
        service: &str,
        start_us: u64,
        end_us: u64,
        cap: usize,
    ) -> Result<Vec<OperationStats>> {
        let width = self.partition_width_us();
        let cfs: Vec<_> = self
            .partitions()
            .into_iter()
            .filter(|p| (p + 2).saturating_mul(width) >= start_us)
            .filter_map(|p| self.cf(&cf::index(p)).ok())
            .collect();
        let mut names: Vec<String> = self
            .operations(service)?
            .into_iter()
            .map(|o| o.name)
            .collect();
        names.dedup();
        let db = self.db();
        // Per operation, per span kind: durations, errors, capped.
        type Tally = std::collections::BTreeMap<u8, (Vec<u64>, u64, bool)>;
        let mut tallies: Vec<Tally> = Vec::with_capacity(names.len());
        // Blocks hold many operations: each block's facts are decoded once
        // and kept for the next operation (up to a bound on memory).
        let mut cache: HashMap<(usize, Sfx), std::rc::Rc<Vec<block::Member>>> = HashMap::new();
        let mut cached_members = 0usize;
        const CACHE_MEMBERS: usize = 1 << 20;
        let mut key = Vec::with_capacity(64);
        for op in &names {
            let prefix = keys::index_key(keys::IDX_SERVICE_OPERATION, &[service, op], &[]);
            let mut seek = prefix.clone();
            seek.extend_from_slice(&keys::suffix_from(end_us));
            let mut by_kind = Tally::default();
            let mut seen = 0usize;
            // Newest partition first.
            'parts: for (ci, cf) in cfs.iter().enumerate().rev() {
                let mut it = db.raw_iterator_cf(cf);
                it.seek(&seek);
                while let (Some(k), Some(v)) = (it.key(), it.value()) {
                    if !k.starts_with(&prefix) || k.len() != prefix.len() + keys::SUFFIX_LEN {
                        break;
                    }
                    let Some((block_start, _)) = keys::decode_suffix(k) else {
                        break;
                    };
                    if block_start.saturating_add(block::KEY_SLACK_US) < start_us {
                        break;
                    }
                    let sfx: Sfx = k[prefix.len()..].try_into().expect("suffix length");
                    let list =
                        block::decode_members(v).ok_or_else(|| corrupt(&sfx, "member list"))?;
                    let facts = match cache.get(&(ci, sfx)) {
                        Some(f) => f.clone(),
                        None => {
                            key.clear();
                            key.push(keys::IDX_SPAN);
                            key.extend_from_slice(&sfx);
                            let f = match db.get_pinned_cf(cf, &key)? {
                                Some(fv) => block::decode_facts(&fv)
                                    .ok_or_else(|| corrupt(&sfx, "facts"))?,
                                None => Vec::new(),
                            };
                            if cached_members + f.len() > CACHE_MEMBERS {
                                cache.clear();
                                cached_members = 0;
                            }
                            cached_members += f.len();
                            let f = std::rc::Rc::new(f);
                            cache.insert((ci, sfx), f.clone());
                            f
                        }
                    };
                    for m in list.iter().filter_map(|&n| facts.get(n as usize)) {
                        if m.start_us < start_us || m.start_us > end_us {
                            continue;
                        }
                        if seen >= cap {
                            for v in by_kind.values_mut() {
                                v.2 = true;
                            }
                            break 'parts;
                        }
                        seen += 1;
                        let e = by_kind.entry(m.facts.kind.as_u8()).or_default();
                        if let Some(d) = m.facts.duration_us {
                            e.0.push(d);
                        }
                        e.1 += u64::from(m.facts.error);
                    }
                    it.next();
                }
                it.status()?;
            }
            tallies.push(by_kind);
        }
        let mut out: Vec<OperationStats> = Vec::new();
        for (op, by_kind) in names.into_iter().zip(tallies) {
            for (kind, (mut durations, errors, capped)) in by_kind {
                durations.sort_unstable();
                out.push(OperationStats {
                    operation: op.clone(),
                    kind: SpanKind::from_u8(kind),
                    count: durations.len() as u64,
                    errors,
                    p50_us: percentile(&durations, 0.50),
                    p95_us: percentile(&durations, 0.95),
                    p99_us: percentile(&durations, 0.99),
                    capped,
                });
            }
        }
        Ok(out)
    }
}
