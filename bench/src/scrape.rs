//! Reading the server's `/metrics`, and this machine's own counters
//! (`/proc`): the tool's CPU time, and the kernel's count of datagrams a
//! UDP socket dropped because its receive buffer was full.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::{Error, Result};

/// One scrape of `/metrics`: sample (name with labels, as written) to value.
#[derive(Debug, Clone, Default)]
pub struct Samples(HashMap<String, f64>);

impl Samples {
    /// Parses Prometheus / OpenMetrics text.
    pub fn parse(text: &str) -> Samples {
        Samples(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .filter_map(|l| {
                    let (name, value) = l.rsplit_once(' ')?;
                    Some((name.trim().to_string(), value.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    /// A sample's value; 0 when absent.
    pub fn get(&self, sample: &str) -> f64 {
        self.0.get(sample).copied().unwrap_or(0.0)
    }

    /// Whether a sample is present.
    pub fn has(&self, sample: &str) -> bool {
        self.0.contains_key(sample)
    }

    /// A `phosphor_collector_<name>_total{protocol="..."}` counter.
    pub fn collector(&self, name: &str, protocol: &str) -> u64 {
        self.get(&format!(
            "phosphor_collector_{name}_total{{protocol=\"{protocol}\"}}"
        )) as u64
    }

    /// A counter without labels, `<name>_total`.
    pub fn total(&self, name: &str) -> u64 {
        self.get(&format!("{name}_total")) as u64
    }
}

/// Fetches `/metrics` from the server's HTTP address.
pub async fn metrics(client: &reqwest::Client, http: SocketAddr) -> Result<Samples> {
    let url = format!("http://{http}/metrics");
    let resp = client
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| Error::Connect(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(Error::Server(format!("{url}: HTTP {}", resp.status())));
    }
    let text = resp
        .text()
        .await
        .map_err(|e| Error::Server(format!("{url}: {e}")))?;
    Ok(Samples::parse(&text))
}

/// CPU seconds (user + system) this process has used.
pub fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_seconds_of_stat(&stat)
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds (Linux counts
/// them in USER_HZ, 100 a second).
pub fn cpu_seconds_of_stat(stat: &str) -> Option<f64> {
    // The command name may hold spaces; fields after it are plain.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // State is field 3 of the line, fields[0] here; utime is 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Datagrams the kernel dropped for the IPv4 UDP socket bound to `addr`
/// (`/proc/net/udp`, last column), when it is on this machine.
pub fn kernel_udp_drops(addr: SocketAddr) -> Option<u64> {
    let SocketAddr::V4(v4) = addr else {
        return None;
    };
    if !v4.ip().is_loopback() && !v4.ip().is_unspecified() {
        return None;
    }
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    udp_drops_in(&table, v4.port())
}

/// The drops of the socket bound to `port` on 127.0.0.1 or 0.0.0.0 in a
/// `/proc/net/udp` table.
pub fn udp_drops_in(table: &str, port: u16) -> Option<u64> {
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if wanted.iter().any(|w| f.get(1) == Some(&w.as_str())) {
            f.last()?.parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_openmetrics_text() {
        let text = "# HELP x y\n# TYPE phosphor_collector_received_spans counter\n\
            phosphor_collector_received_spans_total{protocol=\"udp\"} 42\n\
            phosphor_collector_udp_datagrams_total 7\n\
            phosphor_process_resident_memory_bytes 1.5e6\n# EOF\n";
        let s = Samples::parse(text);
        assert_eq!(s.collector("received_spans", "udp"), 42);
        assert_eq!(s.total("phosphor_collector_udp_datagrams"), 7);
        assert_eq!(s.get("phosphor_process_resident_memory_bytes"), 1_500_000.0);
        assert_eq!(s.collector("received_spans", "zipkin"), 0);
        assert!(!s.has("nothing"));
    }

    #[test]
    fn cpu_time_of_a_stat_line_with_spaces_in_the_name() {
        let line = "123 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100";
        assert_eq!(cpu_seconds_of_stat(line), Some(3.0));
        assert!(own_cpu_seconds().is_some());
    }

    #[test]
    fn udp_drops_are_read_for_the_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            1: 0100007F:1E50 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12345 2 0000000000000000 17\n\
            2: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 0000000000000000 0\n";
        assert_eq!(udp_drops_in(table, 7760), Some(17));
        assert_eq!(udp_drops_in(table, 53), Some(0));
        assert_eq!(udp_drops_in(table, 9), None);
    }
}
