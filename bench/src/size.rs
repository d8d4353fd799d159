//! `phosphor bench size`: bytes on disk per stored span, and the server's
//! memory.
//!
//! The stored count is the server's `phosphor_collector_written_spans_total`
//! (spans and annotations written since it started): run it against a
//! server started on an empty data directory, after an ingest. The sizes
//! come from `POST /api/v1/admin/compact`, which flushes and fully compacts
//! the store and answers with its sizes before and after (or, with
//! `--no-compact`, from the `phosphor_store_*_bytes` gauges as they are).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scrape::{self, Samples};
use crate::stats::{count, mib};
use crate::{Error, Result, ServerAddrs};

/// Sizes of the store at one moment, as the compaction endpoint reports
/// them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreSizes {
    /// Every file of the data directory.
    pub disk_bytes: u64,
    /// SST files of every column family.
    pub sst_bytes: u64,
    /// SST bytes per column family.
    #[serde(default)]
    pub column_families: Vec<ColumnFamily>,
}

/// One column family's SST bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnFamily {
    pub name: String,
    pub bytes: u64,
}

/// The compaction endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Compaction {
    before: StoreSizes,
    after: StoreSizes,
    seconds: f64,
}

/// The size report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SizeReport {
    pub server: String,
    /// Spans and annotations written since the server started.
    pub stored: u64,
    /// The same, by protocol (accepted counters).
    pub stored_by_protocol: BTreeMap<String, u64>,
    pub compacted: bool,
    pub compaction_seconds: Option<f64>,
    pub before: Option<StoreSizes>,
    /// Sizes as reported (after compaction when compacted).
    pub sizes: StoreSizes,
    /// SST bytes by kind of column family (the name up to its first `-`).
    pub by_kind: BTreeMap<String, u64>,
    pub disk_bytes_per_span: Option<f64>,
    pub sst_bytes_per_span: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub peak_resident_bytes: Option<u64>,
}

impl SizeReport {
    /// The report as text.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(o, "phosphor bench size: {}", self.server);
        let by: Vec<String> = self
            .stored_by_protocol
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(p, n)| format!("{p} {}", count(*n)))
            .collect();
        let _ = writeln!(
            o,
            "  stored         {} spans and annotations written since the server started{}",
            count(self.stored),
            if by.is_empty() {
                String::new()
            } else {
                format!(" ({})", by.join(", "))
            }
        );
        if let (Some(b), Some(s)) = (&self.before, self.compaction_seconds) {
            let _ = writeln!(
                o,
                "  compaction     {s:.1}s; data directory {} before, {} after",
                count(b.disk_bytes),
                count(self.sizes.disk_bytes)
            );
        } else if !self.compacted {
            let _ = writeln!(o, "  not compacted (--no-compact): sizes as they are");
        }
        let per = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.1}"));
        let _ = writeln!(
            o,
            "  data directory {} bytes = {} bytes per stored span",
            count(self.sizes.disk_bytes),
            per(self.disk_bytes_per_span)
        );
        let _ = writeln!(
            o,
            "  SST files      {} bytes = {} bytes per stored span",
            count(self.sizes.sst_bytes),
            per(self.sst_bytes_per_span)
        );
        for (kind, bytes) in &self.by_kind {
            let _ = writeln!(
                o,
                "    {kind:<12} {} bytes{}",
                count(*bytes),
                if self.stored > 0 {
                    format!(" = {:.1} per span", *bytes as f64 / self.stored as f64)
                } else {
                    String::new()
                }
            );
        }
        match (self.peak_resident_bytes, self.resident_bytes) {
            (Some(p), Some(r)) => {
                let _ = writeln!(
                    o,
                    "  server memory  peak resident {} since it started, {} now",
                    mib(p),
                    mib(r)
                );
            }
            _ => {
                let _ = writeln!(o, "  server memory  not reported by /metrics");
            }
        }
        if self.stored == 0 {
            let _ = writeln!(
                o,
                "  note: the server has written nothing since it started; per-span figures need an ingest into a server started on an empty data directory"
            );
        }
        o
    }
}

const PROTOCOLS: [&str; 5] = ["otlp_grpc", "otlp_http", "zipkin", "udp", "upload"];

fn gauge(s: &Samples, name: &str) -> Option<u64> {
    s.has(name).then(|| s.get(name) as u64)
}

/// Compacts (unless told not to) and reports sizes.
pub async fn run(server: &ServerAddrs, compact: bool) -> Result<SizeReport> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3_600))
        .build()
        .map_err(|e| Error::Connect(e.to_string()))?;
    let base = format!("http://{}", server.http_addr);
    let m = scrape::metrics(&http, server.http_addr).await?;
    let stored = m.total("phosphor_collector_written_spans");
    let stored_by_protocol = PROTOCOLS
        .iter()
        .map(|p| (p.to_string(), m.collector("accepted_spans", p)))
        .collect();
    let (before, sizes, seconds) = if compact {
        let url = format!("{base}/api/v1/admin/compact");
        let resp = http
            .post(&url)
            .send()
            .await
            .map_err(|e| Error::Connect(format!("{url}: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Server(format!("{url}: {e}")))?;
        if !status.is_success() {
            return Err(Error::Server(format!(
                "POST {url}: HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )));
        }
        let c: Compaction =
            serde_json::from_slice(&body).map_err(|e| Error::Server(format!("POST {url}: {e}")))?;
        (Some(c.before), c.after, Some(c.seconds))
    } else {
        let sizes = StoreSizes {
            disk_bytes: gauge(&m, "phosphor_store_disk_bytes").unwrap_or(0),
            sst_bytes: gauge(&m, "phosphor_store_sst_bytes").unwrap_or(0),
            column_families: vec![],
        };
        (None, sizes, None)
    };
    let after = scrape::metrics(&http, server.http_addr).await?;
    let mut by_kind = BTreeMap::new();
    for cf in &sizes.column_families {
        let kind = cf.name.split('-').next().unwrap_or(&cf.name).to_string();
        *by_kind.entry(kind).or_insert(0) += cf.bytes;
    }
    let per = |bytes: u64| (stored > 0).then(|| bytes as f64 / stored as f64);
    Ok(SizeReport {
        server: base,
        stored,
        stored_by_protocol,
        compacted: compact,
        compaction_seconds: seconds,
        before,
        disk_bytes_per_span: per(sizes.disk_bytes),
        sst_bytes_per_span: per(sizes.sst_bytes),
        sizes,
        by_kind,
        resident_bytes: gauge(&after, "phosphor_process_resident_memory_bytes"),
        peak_resident_bytes: gauge(&after, "phosphor_process_peak_resident_memory_bytes"),
    })
}
