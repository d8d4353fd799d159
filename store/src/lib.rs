//! phosphor-store: the span model and the RocksDB trace store.
//!
//! Layout:
//! - [`model`]: trace and span IDs, spans, phosphor annotations, fragments.
//! - [`keys`]: every key layout (big-endian, length-prefixed; byte order is
//!   sort order, tested).
//! - [`cf`]: column-family names.
//! - [`summary`]: trace summaries and dependency counters, kept by a merge
//!   operator.
//! - `index`: the index, catalog, summary and dependency writes of a batch.
//! - [`search`]: span-level search over the indexes.
//! - [`Store`]: open, write, read a trace, search, catalog, retention, pins.
//!
//! Invariants:
//! - Data is partitioned by write time: partition `p` is the column families
//!   `spans-p` and `index-p`. Retention drops whole partitions, which gives
//!   their disk space back without rewriting live data.
//! - A trace's fragments live under one 16-byte prefix (its trace ID) in each
//!   partition's `spans` column family, so reading a trace is one prefix
//!   seek per partition, helped by a prefix bloom filter.
//! - Fragments are kept as they arrive (one record per trace per write
//!   batch) and merged on read, so arrival order does not matter.
//! - Index keys end with the same 32-byte suffix (newest first, trace, span)
//!   in every index, so a candidate from one index is checked in another by
//!   a point lookup.
//! - The catalog (services, operations, attribute keys and values) lives in
//!   each partition's small catalog keyspace, read at open without touching
//!   spans, and expires with its partition.
//! - A write returns once its batch is in the write-ahead log.

pub mod block;
mod catalog;
pub mod cf;
mod error;
mod index;
pub mod keys;
pub mod model;
mod record;
pub mod search;
pub mod summary;
pub mod synth;

use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use catalog::PartitionCatalog;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, BoundColumnFamily, ColumnFamilyDescriptor,
    DBCompressionType, DBWithThreadMode, MultiThreaded, Options, SliceTransform, WriteBatch,
    WriteOptions,
};

pub use error::{Error, Result};
pub use index::{DEPENDENCY_BUCKET_US, MAX_CATALOG_VALUE, MAX_INDEXED_VALUE};
use model::{Fragment, SpanKind, TraceId};
pub use search::{OperationStats, SearchHit, SearchQuery};
pub use summary::Summary;

type Db = DBWithThreadMode<MultiThreaded>;

/// The on-disk format this build writes. Format 6 writes a record's
/// annotations through its string table (format 5 wrote each as postcard).
/// Format 5 keeps a block's attribute terms that list few members in
/// buckets ([`keys::IDX_SPARSE`]); format 4 gave each a key of its own, and
/// stored span records in version 2 (a string table a record), where
/// format 3's are all version 1. A format 3, 4 or 5 store is read as it is
/// and marked 6 once opened, as new records and index blocks go in beside
/// the old: search reads a term from its own keys and its buckets alike,
/// and a record's annotations are read in either form.
pub const FORMAT_VERSION: u32 = 6;
/// The earlier formats this build opens and upgrades in place.
const UPGRADED_FORMATS: [u32; 3] = [3, 4, 5];

/// Where the store reads the time (injectable for tests of retention).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in Unix microseconds.
    fn now_us(&self) -> u64;
}

/// The wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `now_us`.
    pub fn new(now_us: u64) -> ManualClock {
        ManualClock(AtomicU64::new(now_us))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Store settings. Never exposes RocksDB types.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Sync the write-ahead log to disk on every write (survives power loss,
    /// not only a process crash), at a cost in write latency.
    pub sync_writes: bool,
    /// Block cache size in bytes.
    pub block_cache_bytes: usize,
    /// How long data is kept; older partitions are dropped.
    pub retention: Duration,
    /// Width of a time partition.
    pub partition: Duration,
}

impl StoreConfig {
    /// The partition width that suits a retention: a seventh of it, between
    /// one minute and one day.
    pub fn partition_for(retention: Duration) -> Duration {
        (retention / 7).clamp(Duration::from_secs(60), Duration::from_secs(86_400))
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        let retention = Duration::from_secs(7 * 86_400);
        StoreConfig {
            sync_writes: false,
            block_cache_bytes: 64 << 20,
            retention,
            partition: StoreConfig::partition_for(retention),
        }
    }
}

/// An operation of a service, as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub name: String,
    pub kind: SpanKind,
}

/// A service dependency edge over a time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub caller: String,
    pub callee: String,
    pub calls: u64,
    pub errors: u64,
}

/// What one write puts in the store, see [`Store::encode`].
#[derive(Debug, Default)]
pub struct EncodedWrite {
    /// Span records (`trace | seq`), in key order.
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
    /// Index puts (block facts and terms), in key order.
    pub index_puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Merge operands (summaries, dependency counts), in key order.
    pub index_merges: Vec<(Vec<u8>, Vec<u8>)>,
    /// Catalog entries, written where not yet on disk.
    pub catalog: Vec<Vec<u8>>,
}

/// The RocksDB trace store.
pub struct Store {
    db: Db,
    path: PathBuf,
    write_opts: WriteOptions,
    config: StoreConfig,
    clock: Arc<dyn Clock>,
    cache: rocksdb::Cache,
    /// Next write sequence: unique and increasing across restarts (seeded
    /// from the clock, see [`Store::open`]).
    seq: AtomicU64,
    /// Open partitions, by id.
    partitions: RwLock<BTreeSet<u64>>,
    /// Catalog keys known to be on disk, per partition.
    catalog: Mutex<BTreeMap<u64, PartitionCatalog>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn table_options(cache: &rocksdb::Cache, whole_key: bool, block_size: usize) -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_block_size(block_size);
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_whole_key_filtering(whole_key);
    table.set_cache_index_and_filter_blocks(true);
    // A compacted file's filter and index are tens of megabytes: whole,
    // they do not stay in the block cache, and every lookup read and
    // checksummed one again (most of a search's time on a 10M-span store).
    // Partitioned, a lookup loads only the 4 KiB pieces it needs; the
    // small top level stays pinned.
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_metadata_block_size(4096);
    table.set_pin_top_level_index_and_filter(true);
    table.set_cache_index_and_filter_blocks_with_high_priority(true);
    table
}

/// All memtables' memory together.
const MEMTABLE_BUDGET: usize = 80 << 20;

/// Options of a column family, by its name.
fn cf_options(name: &str, cache: &rocksdb::Cache) -> Options {
    let mut opts = Options::default();
    // Memtables are most of the server's memory under sustained ingest, and
    // their size trades memory for ingest rate (smaller ones mean more
    // flushes and compactions; figures in BENCHMARKS.md). L0 goes into L1
    // in steps of six of them (120 MiB), about what four 32 MiB ones made.
    opts.set_write_buffer_size(20 << 20);
    opts.set_level_zero_file_num_compaction_trigger(6);
    // Fast where data is hot, dense where it is cold.
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(DBCompressionType::Zstd);
    // Zstd level 6 on cold data: about 10% smaller than the default level
    // for span records; it only runs in compactions into the last level.
    opts.set_bottommost_compression_options(-14, 6, 0, 0, true);
    if cf::is_spans(name) || name == cf::PINNED {
        // Trace by ID is a prefix seek: filter on the trace ID prefix.
        opts.set_prefix_extractor(SliceTransform::create_fixed_prefix(keys::TRACE_PREFIX_LEN));
        opts.set_memtable_prefix_bloom_ratio(0.1);
        // Large blocks: span records compress by a third better in 64 KiB
        // blocks than in 4 KiB ones, and a trace is read whole anyway.
        opts.set_block_based_table_factory(&table_options(cache, false, 64 << 10));
    } else {
        // Index candidates are checked by point lookups.
        opts.set_block_based_table_factory(&table_options(cache, true, 32 << 10));
    }
    if cf::partition_of(name).is_some() {
        opts.set_merge_operator_associative("phosphor-merge", summary::merge_operator);
    }
    opts
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

impl Store {
    /// Opens (or creates) the store in `path` on the wall clock.
    pub fn open(path: impl AsRef<Path>, config: &StoreConfig) -> Result<Store> {
        Store::open_with_clock(path, config, Arc::new(SystemClock))
    }

    /// Opens (or creates) the store in `path`, reading time from `clock`.
    ///
    /// An existing directory that is not a phosphor store, or one written in
    /// another format, is an error, never a panic.
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        config: &StoreConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let not_ours = |reason: String| Error::NotADataDir {
            path: path.display().to_string(),
            reason,
        };
        let exists_nonempty = std::fs::read_dir(&path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if exists_nonempty && !path.join("CURRENT").exists() {
            return Err(not_ours("the directory has files but no database".into()));
        }
        std::fs::create_dir_all(&path).map_err(|e| not_ours(format!("cannot create it: {e}")))?;

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(4);
        // Memory: all memtables together stay under 80 MiB (the largest is
        // flushed first), whatever the number of partitions.
        db_opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        let cache = rocksdb::Cache::new_lru_cache(config.block_cache_bytes);

        let mut names: Vec<String> = if exists_nonempty {
            Db::list_cf(&db_opts, &path).map_err(|e| not_ours(e.into_string()))?
        } else {
            Vec::new()
        };
        for fixed in cf::FIXED {
            if !names.iter().any(|n| n == fixed) {
                names.push(fixed.to_string());
            }
        }
        let partitions: BTreeSet<u64> = names.iter().filter_map(|n| cf::partition_of(n)).collect();
        let descriptors = names
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(n, cf_options(n, &cache)));
        let db = Db::open_cf_descriptors(&db_opts, &path, descriptors).map_err(|e| {
            if exists_nonempty {
                not_ours(e.into_string())
            } else {
                Error::from(e)
            }
        })?;

        {
            let meta = db.cf_handle(cf::META).expect("meta column family");
            match db.get_cf(&meta, keys::META_FORMAT)? {
                None if exists_nonempty => {
                    return Err(not_ours("no phosphor format marker".into()));
                }
                None => db.put_cf(&meta, keys::META_FORMAT, FORMAT_VERSION.to_be_bytes())?,
                Some(v) => {
                    let found = v
                        .as_slice()
                        .try_into()
                        .map(u32::from_be_bytes)
                        .unwrap_or(u32::MAX);
                    if UPGRADED_FORMATS.contains(&found) {
                        db.put_cf(&meta, keys::META_FORMAT, FORMAT_VERSION.to_be_bytes())?;
                        tracing::info!(
                            from = found,
                            to = FORMAT_VERSION,
                            "store format upgraded: new records are written in the new form"
                        );
                    } else if found != FORMAT_VERSION {
                        return Err(Error::Format {
                            found,
                            expected: FORMAT_VERSION,
                        });
                    }
                }
            }
        }

        // The catalog: each partition's small catalog keyspace.
        let mut catalog = BTreeMap::new();
        for &p in &partitions {
            let cf = db.cf_handle(&cf::index(p)).expect("index column family");
            let mut known = PartitionCatalog::default();
            let mut it = db.raw_iterator_cf(&cf);
            it.seek([keys::CATALOG_SERVICE]);
            while let Some(k) = it.key() {
                if k[0] > keys::CATALOG_ATTR_VALUE {
                    break;
                }
                known.insert(k);
                it.next();
            }
            it.status()?;
            catalog.insert(p, known);
        }

        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(config.sync_writes);
        write_opts.disable_wal(false);

        let store = Store {
            db,
            path,
            write_opts,
            config: config.clone(),
            // 4096 sequence numbers per microsecond of wall time: a restart
            // always starts above what the previous run can have reached.
            seq: AtomicU64::new(SystemClock.now_us() << 12),
            clock,
            cache,
            partitions: RwLock::new(partitions),
            catalog: Mutex::new(catalog),
        };
        store.expire()?;
        Ok(store)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Now, by the store's clock.
    pub fn now_us(&self) -> u64 {
        self.clock.now_us()
    }

    fn partition_width_us(&self) -> u64 {
        (self.config.partition.as_micros() as u64).max(1)
    }

    fn cf(&self, name: &str) -> Result<Arc<BoundColumnFamily<'_>>> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::Engine(format!("column family {name} is missing")))
    }

    /// Open partitions, oldest first.
    pub fn partitions(&self) -> Vec<u64> {
        self.partitions
            .read()
            .expect("partitions lock")
            .iter()
            .copied()
            .collect()
    }

    /// The partition that writes go to now.
    fn partition_now(&self) -> u64 {
        self.clock.now_us() / self.partition_width_us()
    }

    /// The partition that writes go to now, created if needed.
    fn current_partition(&self) -> Result<u64> {
        let p = self.partition_now();
        if self
            .partitions
            .read()
            .expect("partitions lock")
            .contains(&p)
        {
            return Ok(p);
        }
        let mut parts = self.partitions.write().expect("partitions lock");
        if !parts.contains(&p) {
            for name in [cf::spans(p), cf::index(p)] {
                if self.db.cf_handle(&name).is_none() {
                    self.db.create_cf(&name, &cf_options(&name, &self.cache))?;
                }
            }
            parts.insert(p);
            self.catalog
                .lock()
                .expect("catalog lock")
                .insert(p, PartitionCatalog::default());
            tracing::info!(partition = p, "new time partition");
        }
        Ok(p)
    }

    /// Writes fragments in one atomic write batch: one record per trace, and
    /// their index, catalog, summary and dependency entries. Returns once
    /// the batch is in the write-ahead log.
    pub fn write(&self, fragments: &[Fragment]) -> Result<()> {
        if fragments.is_empty() {
            return Ok(());
        }
        let p = self.current_partition()?;
        let encoded = self.encode_in(p, fragments)?;
        let spans = self.cf(&cf::spans(p))?;
        let index_cf = self.cf(&cf::index(p))?;
        let mut batch = WriteBatch::default();
        for (k, v) in &encoded.records {
            batch.put_cf(&spans, k, v);
        }
        for (k, v) in &encoded.index_puts {
            batch.put_cf(&index_cf, k, v);
        }
        for (k, v) in &encoded.index_merges {
            batch.merge_cf(&index_cf, k, v);
        }
        // Catalog entries not yet known are taken into the cache now (so a
        // key over its value cap stays over it within the batch) and put
        // back out if the write fails.
        let mut new_catalog: Vec<Vec<u8>> = {
            let mut cat = self.catalog.lock().expect("catalog lock");
            let known = cat.entry(p).or_default();
            encoded
                .catalog
                .into_iter()
                .filter(|k| known.insert(k))
                .collect()
        };
        // Few are new once a partition has been written for a while: sorted
        // (for the batch's key order) only now.
        new_catalog.sort_unstable();
        for k in &new_catalog {
            batch.put_cf(&index_cf, k, []);
        }

        let result = self.db.write_opt(batch, &self.write_opts);
        if result.is_err() {
            let mut cat = self.catalog.lock().expect("catalog lock");
            if let Some(known) = cat.get_mut(&p) {
                for k in &new_catalog {
                    known.remove(k);
                }
            }
        }
        Ok(result?)
    }

    /// The keys and values a write of `fragments` puts in the store: one
    /// record per trace, and the index, catalog, summary and dependency
    /// entries. Public for the reference benchmark, which writes the same
    /// bytes with a plain RocksDB loop.
    pub fn encode(&self, fragments: &[Fragment]) -> Result<EncodedWrite> {
        // The partition a write now would go to (not created here).
        self.encode_in(self.partition_now(), fragments)
    }

    /// [`Store::encode`] for a write into partition `p`.
    fn encode_in(&self, p: u64, fragments: &[Fragment]) -> Result<EncodedWrite> {
        // Attribute keys whose catalog values are full in `p`.
        let full = self
            .catalog
            .lock()
            .expect("catalog lock")
            .get(&p)
            .map(PartitionCatalog::full_keys)
            .unwrap_or_default();
        let mut by_trace: FxHashMap<TraceId, Vec<&Fragment>> = FxHashMap::default();
        for f in fragments {
            by_trace.entry(f.trace_id()).or_default().push(f);
        }
        let seq0 = self.seq.fetch_add(by_trace.len() as u64, Ordering::Relaxed);
        // Keys go into the batch in order: the memtable's skip list then
        // finds each insert's place from the previous one's.
        let mut traces: Vec<(TraceId, &Vec<&Fragment>)> =
            by_trace.iter().map(|(t, f)| (*t, f)).collect();
        traces.sort_unstable_by_key(|(t, _)| *t);
        let mut records = Vec::with_capacity(traces.len());
        for (i, (trace, frags)) in traces.into_iter().enumerate() {
            let mut buf = Vec::new();
            record::encode(frags, &mut buf);
            records.push((keys::fragment_key(trace, seq0 + i as u64).to_vec(), buf));
        }

        let mut read_error = None;
        let mut writes = index::index_batch(
            fragments,
            &mut |trace| {
                self.trace(trace).unwrap_or_else(|e| {
                    read_error = Some(e);
                    Vec::new()
                })
            },
            &mut || self.seq.fetch_add(1, Ordering::Relaxed),
            &full,
        );
        if let Some(e) = read_error {
            return Err(e);
        }
        writes.puts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        writes.merges.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(EncodedWrite {
            records,
            index_puts: writes.puts,
            index_merges: writes.merges,
            catalog: writes.catalog,
        })
    }

    /// Appends the records of one trace in one column family, raw, in key
    /// order.
    fn read_prefix(
        &self,
        cf_name: &str,
        trace: TraceId,
        out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<()> {
        let cf = self.cf(cf_name)?;
        let mut it = self.db.raw_iterator_cf(&cf);
        it.seek(trace.0);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&trace.0) || k.len() != 24 {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// All fragments of a trace: one prefix seek per partition, and the
    /// pinned copy if there is one.
    ///
    /// Records are read first and decoded after; a large trace's records are
    /// decoded on two threads (decoding, not reading, is most of the time).
    pub fn trace(&self, id: TraceId) -> Result<Vec<Fragment>> {
        let mut raw = Vec::new();
        for p in self.partitions() {
            match self.read_prefix(&cf::spans(p), id, &mut raw) {
                // A partition dropped by retention while we read.
                Err(Error::Engine(m)) if m.contains("is missing") => {}
                r => r?,
            }
        }
        self.read_prefix(cf::PINNED, id, &mut raw)?;
        decode_records(&raw)
    }

    /// The merged summaries of traces (`None` for traces not stored).
    pub fn summaries(&self, ids: &[TraceId]) -> Result<Vec<Option<Summary>>> {
        let mut cfs = Vec::new();
        for p in self.partitions() {
            if let Ok(cf) = self.cf(&cf::index(p)) {
                cfs.push(cf);
            }
        }
        let meta = self.cf(cf::META)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // A pinned trace's summary is the one taken when it was pinned.
            if let Some(v) = self.db.get_pinned_cf(&meta, keys::pin_key(*id))?
                && let Some(s) = Summary::decode(&v)
            {
                out.push(Some(s));
                continue;
            }
            let key = keys::summary_key(*id);
            let mut acc: Option<Summary> = None;
            for cf in &cfs {
                if let Some(v) = self.db.get_pinned_cf(cf, key)?
                    && let Some(s) = Summary::decode(&v)
                {
                    acc.get_or_insert_with(Summary::default).merge(&s);
                }
            }
            out.push(acc);
        }
        Ok(out)
    }

    fn catalog_keys(&self, tag: u8) -> Vec<Vec<u8>> {
        let cat = self.catalog.lock().expect("catalog lock");
        let mut out: BTreeSet<Vec<u8>> = BTreeSet::new();
        for c in cat.values() {
            out.extend(c.keys.iter().filter(|k| k.first() == Some(&tag)).cloned());
        }
        out.into_iter().collect()
    }

    /// Known services, sorted.
    pub fn services(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .catalog_keys(keys::CATALOG_SERVICE)
            .iter()
            .filter_map(|k| keys::decode_service_key(k).map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// A service's known operations, sorted by name then kind.
    pub fn operations(&self, service: &str) -> Result<Vec<Operation>> {
        let mut out: Vec<Operation> = self
            .catalog_keys(keys::CATALOG_OPERATION)
            .iter()
            .filter_map(|k| keys::decode_operation_key(k))
            .filter(|(s, _, _)| *s == service)
            .map(|(_, kind, name)| Operation {
                name: name.to_string(),
                kind,
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Known attribute keys, sorted.
    pub fn attribute_keys(&self) -> Result<Vec<String>> {
        Ok(self
            .catalog_keys(keys::CATALOG_ATTR_KEY)
            .iter()
            .filter_map(|k| keys::decode_fields::<1>(k, keys::CATALOG_ATTR_KEY))
            .map(|f| f[0].to_string())
            .collect())
    }

    /// Values seen for an attribute key, newest partitions first, at most
    /// `limit`.
    pub fn attribute_values(&self, key: &str, limit: usize) -> Result<Vec<String>> {
        let cat = self.catalog.lock().expect("catalog lock");
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for c in cat.values().rev() {
            let mut vals: Vec<&str> = c
                .keys
                .iter()
                .filter_map(|k| keys::decode_fields::<2>(k, keys::CATALOG_ATTR_VALUE))
                .filter(|f| f[0] == key)
                .map(|f| f[1])
                .collect();
            vals.sort_unstable();
            for v in vals {
                if seen.insert(v) {
                    out.push(v.to_string());
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Service dependency edges over `[start_us, end_us)`, by the hour
    /// buckets they were counted in.
    pub fn dependencies(&self, start_us: u64, end_us: u64) -> Result<Vec<Dependency>> {
        let from = keys::dependency_key(start_us - start_us % DEPENDENCY_BUCKET_US, "", "");
        let mut sums: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for p in self.partitions() {
            let Ok(cf) = self.cf(&cf::index(p)) else {
                continue;
            };
            let mut it = self.db.raw_iterator_cf(&cf);
            it.seek(&from[..9]);
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                let Some((bucket, caller, callee)) = keys::decode_dependency_key(k) else {
                    break;
                };
                if bucket >= end_us {
                    break;
                }
                if let Some((c, e)) = summary::decode_counts(v) {
                    let s = sums
                        .entry((caller.to_string(), callee.to_string()))
                        .or_default();
                    s.0 += c;
                    s.1 += e;
                }
                it.next();
            }
            it.status()?;
        }
        Ok(sums
            .into_iter()
            .map(|((caller, callee), (calls, errors))| Dependency {
                caller,
                callee,
                calls,
                errors,
            })
            .collect())
    }

    /// Pins a trace: copies it, and its summary, where retention does not
    /// reach. `false` if the trace is not stored.
    pub fn pin(&self, id: TraceId) -> Result<bool> {
        let fragments = self.trace(id)?;
        if fragments.is_empty() {
            return Ok(false);
        }
        let summary = self.summaries(&[id])?.pop().flatten().unwrap_or_default();
        let pinned = self.cf(cf::PINNED)?;
        let meta = self.cf(cf::META)?;
        let refs: Vec<&Fragment> = fragments.iter().collect();
        let mut buf = Vec::new();
        record::encode(&refs, &mut buf);
        // One record with the whole trace as it is now, replacing any
        // earlier pinned copy.
        let mut batch = WriteBatch::default();
        batch.put_cf(&pinned, keys::fragment_key(id, 0), &buf);
        batch.put_cf(&meta, keys::pin_key(id), summary.encode());
        self.db.write_opt(batch, &self.write_opts)?;
        Ok(true)
    }

    /// Unpins a trace; `false` if it was not pinned.
    pub fn unpin(&self, id: TraceId) -> Result<bool> {
        if !self.is_pinned(id)? {
            return Ok(false);
        }
        let pinned = self.cf(cf::PINNED)?;
        let meta = self.cf(cf::META)?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(&pinned, keys::fragment_key(id, 0));
        batch.delete_cf(&meta, keys::pin_key(id));
        self.db.write_opt(batch, &self.write_opts)?;
        Ok(true)
    }

    /// Whether a trace is pinned.
    pub fn is_pinned(&self, id: TraceId) -> Result<bool> {
        let meta = self.cf(cf::META)?;
        Ok(self.db.get_pinned_cf(&meta, keys::pin_key(id))?.is_some())
    }

    /// Drops every partition that ended before the retention horizon, giving
    /// its disk space back. Returns how many were dropped.
    pub fn expire(&self) -> Result<usize> {
        let width = self.partition_width_us();
        let horizon = self
            .clock
            .now_us()
            .saturating_sub(self.config.retention.as_micros() as u64);
        let old: Vec<u64> = self
            .partitions()
            .into_iter()
            .filter(|p| (p + 1) * width <= horizon)
            .collect();
        for &p in &old {
            // Readers see the partition gone before its files are.
            self.partitions.write().expect("partitions lock").remove(&p);
            self.catalog.lock().expect("catalog lock").remove(&p);
            for name in [cf::spans(p), cf::index(p)] {
                if self.db.cf_handle(&name).is_some() {
                    self.db.drop_cf(&name)?;
                }
            }
            tracing::info!(partition = p, "time partition expired");
        }
        Ok(old.len())
    }

    /// Flushes memtables to disk (for tests and shutdown).
    pub fn flush(&self) -> Result<()> {
        for name in self.column_family_names() {
            if let Ok(cf) = self.cf(&name) {
                self.db.flush_cf(&cf)?;
            }
        }
        Ok(())
    }

    /// Compacts every column family fully (for size measurements).
    pub fn compact(&self) -> Result<()> {
        for p in self.partitions() {
            for name in [cf::spans(p), cf::index(p)] {
                if let Ok(cf) = self.cf(&name) {
                    self.db.compact_range_cf(&cf, None::<&[u8]>, None::<&[u8]>);
                }
            }
        }
        Ok(())
    }

    /// Bytes of SST files per column family (after a flush, what each part
    /// of the data takes on disk).
    pub fn column_family_sizes(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for name in self.column_family_names() {
            if let Ok(cf) = self.cf(&name) {
                let bytes = self
                    .db
                    .property_int_value_cf(&cf, "rocksdb.total-sst-files-size")?
                    .unwrap_or(0);
                out.push((name, bytes));
            }
        }
        Ok(out)
    }

    /// Every column family: the fixed ones, then each partition's spans and
    /// index.
    fn column_family_names(&self) -> Vec<String> {
        let mut names: Vec<String> = cf::FIXED.iter().map(|s| s.to_string()).collect();
        for p in self.partitions() {
            names.push(cf::spans(p));
            names.push(cf::index(p));
        }
        names
    }

    /// RocksDB's own memory, in bytes: memtables (active and being
    /// flushed), table readers outside the block cache, and the block cache
    /// (index and filter blocks included).
    pub fn memory(&self) -> Result<StoreMemory> {
        let mut m = StoreMemory::default();
        let int = |cf: &Arc<BoundColumnFamily<'_>>, prop: &str| -> Result<u64> {
            Ok(self.db.property_int_value_cf(cf, prop)?.unwrap_or(0))
        };
        for name in self.column_family_names() {
            if let Ok(cf) = self.cf(&name) {
                m.memtables += int(&cf, "rocksdb.size-all-mem-tables")?;
                m.table_readers += int(&cf, "rocksdb.estimate-table-readers-mem")?;
                // One cache shared by every column family.
                m.block_cache = int(&cf, "rocksdb.block-cache-usage")?;
            }
        }
        Ok(m)
    }

    /// Bytes the data directory takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.path)
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }
}

/// RocksDB's memory by use (see [`Store::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreMemory {
    pub memtables: u64,
    pub table_readers: u64,
    pub block_cache: u64,
}

/// Below this many bytes of records, a trace is decoded on one thread
/// (starting a second costs more than it saves).
const PARALLEL_DECODE_BYTES: usize = 128 * 1024;

/// Decodes records in order: the second half (by bytes) on a second thread
/// when there is enough to share.
///
/// The list is sized once from the records' headers: a large trace's
/// fragments are big, and a list grown step by step (or the second half
/// appended to a full first) copies them again.
fn decode_records(raw: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<Fragment>> {
    let decode = |part: &[(Vec<u8>, Vec<u8>)], room: usize| -> Result<Vec<Fragment>> {
        let mut out = Vec::with_capacity(room);
        for (k, v) in part {
            decode_record(k, v, &mut out)?;
        }
        Ok(out)
    };
    // A guess only: a record too damaged to count fails when decoded.
    let count = |part: &[(Vec<u8>, Vec<u8>)]| -> usize {
        part.iter()
            .filter_map(|(_, v)| match v.split_first() {
                Some((&record::RECORD_V2, body)) => record::count_v2(body),
                _ => None,
            })
            .sum()
    };
    let total: usize = raw.iter().map(|(_, v)| v.len()).sum();
    if raw.len() < 2 || total < PARALLEL_DECODE_BYTES {
        return decode(raw, count(raw));
    }
    // The first record at which half the bytes have been passed.
    let mut seen = 0;
    let split = raw
        .iter()
        .position(|(_, v)| {
            seen += v.len();
            seen * 2 >= total
        })
        .map_or(raw.len() / 2, |i| (i + 1).clamp(1, raw.len() - 1));
    let (first, second) = raw.split_at(split);
    std::thread::scope(|s| {
        let later = s.spawn(|| decode(second, count(second)));
        let mut out = decode(first, count(raw))?;
        let later = later.join().expect("record decoding does not panic")?;
        out.reserve_exact(later.len());
        out.extend(later);
        Ok(out)
    })
}

/// Decodes one record onto the end of `out`.
fn decode_record(key: &[u8], value: &[u8], out: &mut Vec<Fragment>) -> Result<()> {
    let corrupt = |reason: String| Error::Corrupt {
        key: hex::encode(key),
        reason,
    };
    match value.split_first() {
        Some((&record::RECORD_V1, body)) => {
            let frags: Vec<Fragment> =
                postcard::from_bytes(body).map_err(|e| corrupt(e.to_string()))?;
            out.extend(frags);
            Ok(())
        }
        Some((&record::RECORD_V2, body)) => record::decode_v2_into(body, out).map_err(corrupt),
        Some((v, _)) => Err(corrupt(format!("unknown record version {v}"))),
        None => Err(corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests;
