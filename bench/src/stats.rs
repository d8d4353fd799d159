//! Latency percentiles (nearest rank over every sample kept, sorted) and
//! the number formats of the reports.

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of `samples` (microseconds); `None` when empty.
    pub fn of(samples: &mut [u64]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let ms = |us: u64| us as f64 / 1_000.0;
        Some(Latency {
            count: samples.len(),
            p50_ms: ms(rank(samples, 50.0)),
            p99_ms: ms(rank(samples, 99.0)),
            max_ms: ms(*samples.last().expect("not empty")),
        })
    }

    /// `p50 1.23 ms  p99 4.56 ms  max 7.89 ms`.
    pub fn text(&self) -> String {
        format!(
            "p50 {}  p99 {}  max {}",
            ms(self.p50_ms),
            ms(self.p99_ms),
            ms(self.max_ms)
        )
    }
}

/// The nearest-rank percentile of sorted samples.
fn rank(sorted: &[u64], p: f64) -> u64 {
    let n = sorted.len();
    let idx = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[idx.clamp(1, n) - 1]
}

/// Microseconds of a duration, for samples.
pub fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// A millisecond figure with sensible precision.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// An integer with thousands separators.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate, rounded, with separators.
pub fn rate(n: f64) -> String {
    count(n.max(0.0).round() as u64)
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=100).map(|i| i * 1_000).collect();
        v.reverse();
        let l = Latency::of(&mut v).unwrap();
        assert_eq!(
            (l.count, l.p50_ms, l.p99_ms, l.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
        let l = Latency::of(&mut [7_000]).unwrap();
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (7.0, 7.0, 7.0));
        assert!(Latency::of(&mut []).is_none());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(ms(0.123), "0.12 ms");
        assert_eq!(ms(12.34), "12.3 ms");
        assert_eq!(ms(1234.0), "1234 ms");
        assert_eq!(mib(3 << 20), "3.0 MiB");
    }
}
