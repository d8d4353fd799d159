//! phosphor-store: the span model and the RocksDB trace store.
//!
//! Layout:
//! - [`model`]: trace and span IDs, spans, phosphor annotations, fragments.
//! - [`keys`]: every key layout (big-endian, length-prefixed; byte order is
//!   sort order, tested).
//! - [`cf`]: column-family names.
//! - [`Store`]: open, write a batch of fragments, read a trace, the catalog.
//!
//! Invariants:
//! - A trace's fragments live under one 16-byte prefix (its trace ID) in the
//!   `spans` column family, so reading a trace is one prefix seek, helped by
//!   a prefix bloom filter.
//! - Fragments are kept as they arrive (one record per trace per write
//!   batch) and merged on read, so arrival order does not matter.
//! - The catalog (services, operations) is its own small keyspace, loaded
//!   at open without touching the spans.
//! - A write returns once the batch is in the write-ahead log.

pub mod cf;
mod error;
pub mod keys;
pub mod model;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, Direction, IteratorMode,
    Options, SliceTransform, WriteBatch, WriteOptions,
};

pub use error::{Error, Result};
use model::{Fragment, SpanId, SpanKind, TraceId};

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// First byte of every value in the `spans` column family.
const RECORD_V1: u8 = 1;

/// Store settings. Never exposes RocksDB types.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Sync the write-ahead log to disk on every write (survives power loss,
    /// not only a process crash), at a cost in write latency.
    pub sync_writes: bool,
    /// Block cache size in bytes.
    pub block_cache_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            sync_writes: false,
            block_cache_bytes: 64 << 20,
        }
    }
}

/// An operation of a service, as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub name: String,
    pub kind: SpanKind,
}

/// The RocksDB trace store.
pub struct Store {
    db: DB,
    path: PathBuf,
    write_opts: WriteOptions,
    /// Next write sequence: unique and increasing across restarts (seeded
    /// from the clock, see [`Store::open`]).
    seq: AtomicU64,
    /// Catalog keys known to be on disk, so that each is written once.
    catalog: Mutex<HashSet<Vec<u8>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn cf_options(name: &str, cache: &rocksdb::Cache) -> Options {
    let mut opts = Options::default();
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    if name == cf::SPANS {
        // Trace by ID is a prefix seek: filter on the trace ID prefix.
        opts.set_prefix_extractor(SliceTransform::create_fixed_prefix(keys::TRACE_PREFIX_LEN));
        opts.set_memtable_prefix_bloom_ratio(0.1);
        table.set_whole_key_filtering(false);
        // Fast where data is hot, dense where it is cold.
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_bottommost_compression_type(DBCompressionType::Zstd);
    } else {
        opts.set_compression_type(DBCompressionType::Lz4);
    }
    opts.set_block_based_table_factory(&table);
    opts
}

impl Store {
    /// Opens (or creates) the store in `path`.
    ///
    /// An existing directory that is not a phosphor store, or one written in
    /// another format, is an error, never a panic.
    pub fn open(path: impl AsRef<Path>, config: &StoreConfig) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let exists_nonempty = std::fs::read_dir(&path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if exists_nonempty && !path.join("CURRENT").exists() {
            return Err(Error::NotADataDir {
                path: path.display().to_string(),
                reason: "the directory has files but no database".into(),
            });
        }

        std::fs::create_dir_all(&path).map_err(|e| Error::NotADataDir {
            path: path.display().to_string(),
            reason: format!("cannot create it: {e}"),
        })?;
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(4);
        let cache = rocksdb::Cache::new_lru_cache(config.block_cache_bytes);
        let cfs = cf::ALL
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_options(name, &cache)));
        let db = DB::open_cf_descriptors(&db_opts, &path, cfs).map_err(|e| {
            if exists_nonempty {
                Error::NotADataDir {
                    path: path.display().to_string(),
                    reason: e.into_string(),
                }
            } else {
                Error::from(e)
            }
        })?;

        let meta = db.cf_handle(cf::META).expect("meta column family");
        match db.get_cf(meta, keys::META_FORMAT)? {
            None if exists_nonempty => {
                return Err(Error::NotADataDir {
                    path: path.display().to_string(),
                    reason: "no phosphor format marker".into(),
                });
            }
            None => db.put_cf(meta, keys::META_FORMAT, FORMAT_VERSION.to_be_bytes())?,
            Some(v) => {
                let found = v
                    .as_slice()
                    .try_into()
                    .map(u32::from_be_bytes)
                    .unwrap_or(u32::MAX);
                if found != FORMAT_VERSION {
                    return Err(Error::Format {
                        found,
                        expected: FORMAT_VERSION,
                    });
                }
            }
        }

        let mut known = HashSet::new();
        let catalog_cf = db.cf_handle(cf::CATALOG).expect("catalog column family");
        for item in db.iterator_cf(catalog_cf, IteratorMode::Start) {
            let (k, _) = item?;
            known.insert(k.to_vec());
        }

        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(config.sync_writes);
        write_opts.disable_wal(false);

        Ok(Store {
            db,
            path,
            write_opts,
            // 4096 sequence numbers per microsecond of wall time: a restart
            // always starts above what the previous run can have reached.
            seq: AtomicU64::new(now_micros() << 12),
            catalog: Mutex::new(known),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family opened at start")
    }

    /// Writes fragments in one atomic write batch: one record per trace,
    /// the recent-traces index, and any catalog entries not yet known.
    /// Returns once the batch is in the write-ahead log.
    pub fn write(&self, fragments: &[Fragment]) -> Result<()> {
        if fragments.is_empty() {
            return Ok(());
        }
        let mut by_trace: HashMap<TraceId, Vec<&Fragment>> = HashMap::new();
        for f in fragments {
            by_trace.entry(f.trace_id()).or_default().push(f);
        }
        let seq0 = self.seq.fetch_add(by_trace.len() as u64, Ordering::Relaxed);
        let spans = self.cf(cf::SPANS);
        let recent = self.cf(cf::RECENT);
        let mut batch = WriteBatch::default();
        let mut buf = Vec::new();
        for (i, (trace, frags)) in by_trace.iter().enumerate() {
            let seq = seq0 + i as u64;
            buf.clear();
            buf.push(RECORD_V1);
            buf = postcard::to_extend(frags, buf).map_err(|e| Error::Corrupt {
                key: trace.to_hex(),
                reason: e.to_string(),
            })?;
            batch.put_cf(spans, keys::fragment_key(*trace, seq), &buf);
            batch.put_cf(recent, keys::recent_key(seq, *trace), []);
        }

        // Annotations often name their operation on one side only: within
        // this write, the other side takes it from there.
        let mut span_ops: HashMap<(TraceId, SpanId), String> = HashMap::new();
        for f in fragments {
            if let Fragment::Annotation(a) = f
                && let Some(op) = a.operation()
            {
                span_ops.entry((a.trace_id, a.span_id)).or_insert(op);
            }
        }
        let mut new_catalog = Vec::new();
        {
            let known = self.catalog.lock().expect("catalog lock");
            let mut seen = HashSet::new();
            for f in fragments {
                let entry = match f {
                    Fragment::Span(s) => Some((s.service.as_str(), s.kind, s.name.clone())),
                    Fragment::Annotation(a) => {
                        a.catalog_entry(span_ops.get(&(a.trace_id, a.span_id)).map(String::as_str))
                    }
                };
                if let Some((service, kind, op)) = entry {
                    for k in [
                        keys::service_key(service),
                        keys::operation_key(service, kind, &op),
                    ] {
                        if !known.contains(&k) && seen.insert(k.clone()) {
                            new_catalog.push(k);
                        }
                    }
                }
            }
        }
        let catalog = self.cf(cf::CATALOG);
        for k in &new_catalog {
            batch.put_cf(catalog, k, []);
        }

        self.db.write_opt(batch, &self.write_opts)?;
        if !new_catalog.is_empty() {
            self.catalog
                .lock()
                .expect("catalog lock")
                .extend(new_catalog);
        }
        Ok(())
    }

    /// All fragments of a trace, in write order: one prefix seek.
    pub fn trace(&self, id: TraceId) -> Result<Vec<Fragment>> {
        let mut out = Vec::new();
        let iter = self.db.prefix_iterator_cf(self.cf(cf::SPANS), id.0);
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(&id.0) {
                break;
            }
            out.extend(decode_record(&k, &v)?);
        }
        Ok(out)
    }

    /// The most recently written traces, newest first, at most `limit`.
    pub fn recent_traces(&self, limit: usize) -> Result<Vec<TraceId>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(cf::RECENT), IteratorMode::End) {
            let (k, _) = item?;
            if let Some((_, trace)) = keys::decode_recent_key(&k)
                && seen.insert(trace)
            {
                out.push(trace);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Known services, sorted.
    pub fn services(&self) -> Result<Vec<String>> {
        let known = self.catalog.lock().expect("catalog lock");
        let set: BTreeSet<String> = known
            .iter()
            .filter_map(|k| keys::decode_service_key(k).map(str::to_string))
            .collect();
        Ok(set.into_iter().collect())
    }

    /// A service's known operations, sorted by name then kind, read from the
    /// catalog keyspace.
    pub fn operations(&self, service: &str) -> Result<Vec<Operation>> {
        let prefix = keys::operation_prefix(service);
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(cf::CATALOG),
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            if let Some((_, kind, name)) = keys::decode_operation_key(&k) {
                out.push(Operation {
                    name: name.to_string(),
                    kind,
                });
            }
        }
        out.sort();
        Ok(out)
    }

    /// Flushes memtables to disk (for tests and shutdown).
    pub fn flush(&self) -> Result<()> {
        for name in cf::ALL {
            self.db.flush_cf(self.cf(name))?;
        }
        Ok(())
    }
}

fn decode_record(key: &[u8], value: &[u8]) -> Result<Vec<Fragment>> {
    let corrupt = |reason: String| Error::Corrupt {
        key: hex::encode(key),
        reason,
    };
    match value.split_first() {
        Some((&RECORD_V1, body)) => postcard::from_bytes(body).map_err(|e| corrupt(e.to_string())),
        Some((v, _)) => Err(corrupt(format!("unknown record version {v}"))),
        None => Err(corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::*;

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
            status_message: String::new(),
            attributes: vec![KeyValue::string("k", "v")],
            resource: vec![],
            scope: None,
            events: vec![],
            links: vec![],
            protocol: Protocol::OtlpGrpc,
        })
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
        assert_eq!(
            store.recent_traces(10).unwrap(),
            vec![TraceId([1; 16]), TraceId([2; 16])]
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
        // The sequence keeps rising across the restart.
        store.write(&[span(3, 1, "x", "y")]).unwrap();
        assert_eq!(store.recent_traces(1).unwrap(), vec![TraceId([3; 16])]);
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
}
