//! Server-wide figures read at scrape time: the process's memory and CPU
//! (from `/proc/self`) and the store's size on disk.
//!
//! - `phosphor_process_resident_memory_bytes`: resident set now (VmRSS).
//! - `phosphor_process_peak_resident_memory_bytes`: the most it has been
//!   since the process started (VmHWM).
//! - `phosphor_process_cpu_seconds_total`: user + system CPU time.
//! - `phosphor_store_disk_bytes`: every file of the data directory.
//! - `phosphor_store_sst_bytes`: SST files of every column family.
//! - `phosphor_store_memtable_bytes`, `phosphor_store_table_reader_bytes`,
//!   `phosphor_store_block_cache_bytes`: RocksDB's own memory by use.
//!
//! Where `/proc` is missing (not Linux) the process figures are left out.

use std::sync::Arc;

use phosphor_store::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Encodes the figures above on every scrape.
#[derive(Debug)]
pub struct ServerCollector {
    store: Arc<Store>,
}

impl ServerCollector {
    pub fn new(store: Arc<Store>) -> ServerCollector {
        ServerCollector { store }
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if let Some(m) = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| memory_of_status(&s))
        {
            gauge(
                &mut encoder,
                "phosphor_process_resident_memory_bytes",
                "Resident memory of the process (VmRSS)",
                m.resident,
            )?;
            gauge(
                &mut encoder,
                "phosphor_process_peak_resident_memory_bytes",
                "Peak resident memory of the process since it started (VmHWM)",
                m.peak,
            )?;
        }
        if let Some(cpu) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| cpu_seconds_of_stat(&s))
        {
            let c = ConstCounter::new(cpu);
            c.encode(encoder.encode_descriptor(
                "phosphor_process_cpu_seconds",
                "User and system CPU time of the process",
                None,
                c.metric_type(),
            )?)?;
        }
        gauge(
            &mut encoder,
            "phosphor_store_disk_bytes",
            "Bytes of every file in the store's data directory",
            self.store.disk_bytes(),
        )?;
        if let Ok(m) = self.store.memory() {
            for (name, help, v) in [
                (
                    "phosphor_store_memtable_bytes",
                    "Bytes of RocksDB memtables, active and being flushed",
                    m.memtables,
                ),
                (
                    "phosphor_store_table_reader_bytes",
                    "Bytes of RocksDB table readers held outside the block cache",
                    m.table_readers,
                ),
                (
                    "phosphor_store_block_cache_bytes",
                    "Bytes in the RocksDB block cache (index and filter blocks included)",
                    m.block_cache,
                ),
            ] {
                gauge(&mut encoder, name, help, v)?;
            }
        }
        if let Ok(cfs) = self.store.column_family_sizes() {
            gauge(
                &mut encoder,
                "phosphor_store_sst_bytes",
                "Bytes of the store's SST files, every column family",
                cfs.iter().map(|(_, b)| b).sum(),
            )?;
        }
        Ok(())
    }
}

/// Resident and peak resident memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub resident: u64,
    pub peak: u64,
}

/// VmRSS and VmHWM of a `/proc/<pid>/status` text.
pub fn memory_of_status(status: &str) -> Option<Memory> {
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let n = line[key.len()..].trim().trim_end_matches("kB").trim();
        n.parse::<u64>().ok().map(|k| k * 1024)
    };
    Some(Memory {
        resident: kib("VmRSS:")?,
        peak: kib("VmHWM:")?,
    })
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds: the same parser
/// the load tool uses for its own CPU time.
pub use phosphor_bench::scrape::cpu_seconds_of_stat;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_cpu_are_read_from_proc_text() {
        let status =
            "Name:\tphosphor\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(
            memory_of_status(status),
            Some(Memory {
                resident: 10 << 20,
                peak: 20 << 20
            })
        );
        assert_eq!(memory_of_status("Name:\tx\n"), None);
        let stat = "42 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 4 0 99";
        assert_eq!(cpu_seconds_of_stat(stat), Some(2.0));
        assert_eq!(cpu_seconds_of_stat("garbage"), None);
    }

    #[test]
    fn this_process_reports_memory() {
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        let m = memory_of_status(&text).unwrap();
        assert!(m.resident > 0 && m.peak >= m.resident, "{m:?}");
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_seconds_of_stat(&stat).is_some());
    }
}
