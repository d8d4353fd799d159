//! Query-string values as the API takes them: durations (`250ms`, `1.5s`,
//! `15m`), times (RFC 3339 or Unix microseconds), span kinds, and the
//! search request as a whole.

use std::time::Duration;

use phosphor_store::SearchQuery;
use phosphor_store::model::SpanKind;

use crate::FUTURE_SLACK_US;

/// Parses a duration: a number with a unit `us`/`µs`, `ms`, `s`, `m`, `h`,
/// `d` (fractions allowed, `1.5s`), or a bare number of microseconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 250ms, 1.5s, 15m)"))?;
    let us_per = match unit.trim() {
        "" | "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3_600e6,
        "d" => 86_400e6,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?} (us, ms, s, m, h, d)"
            ));
        }
    };
    let us = n * us_per;
    if !(0.0..=1e17).contains(&us) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_micros(us as u64))
}

/// Parses a time: RFC 3339, or Unix microseconds.
pub fn time_us(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(us) = s.parse::<u64>() {
        return Ok(us);
    }
    humantime::parse_rfc3339_weak(s)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_micros() as u64)
        .ok_or_else(|| format!("{s:?} is not a time (RFC 3339 or Unix microseconds)"))
}

/// A parameter in milliseconds (Jaeger's and Zipkin's `endTs`, `lookback`),
/// if given.
pub fn millis(
    p: &std::collections::HashMap<String, String>,
    k: &str,
) -> Result<Option<u64>, String> {
    p.get(k)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| format!("{k} must be milliseconds"))
        })
        .transpose()
}

/// Parses a span kind by its name.
pub fn kind(s: &str) -> Result<SpanKind, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        "unspecified" => SpanKind::Unspecified,
        other => {
            return Err(format!(
                "unknown span kind {other:?} (server, client, producer, consumer, internal)"
            ));
        }
    })
}

/// Default number of traces a search returns.
pub const DEFAULT_LIMIT: usize = 20;
/// Most traces a search returns.
pub const MAX_LIMIT: usize = 1_000;
/// Default lookback of a search without `start`.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(3_600);

/// Builds a search from query-string pairs (`attr` may repeat). `now_us` is
/// the end of the default range.
pub fn search(pairs: &[(String, String)], now_us: u64) -> Result<SearchQuery, String> {
    let mut q = SearchQuery {
        limit: DEFAULT_LIMIT,
        ..SearchQuery::default()
    };
    let (mut start, mut end, mut lookback) = (None, None, None);
    for (k, v) in pairs {
        let v = v.trim();
        let nonempty = || (!v.is_empty()).then(|| v.to_string());
        match k.as_str() {
            "service" => q.service = nonempty(),
            "operation" => q.operation = nonempty(),
            "kind" if !v.is_empty() => q.kind = Some(kind(v)?),
            "kind" => {}
            "attr" | "tag" => {
                let (key, value) = v
                    .split_once('=')
                    .ok_or_else(|| format!("attr {v:?} must be key=value"))?;
                if key.is_empty() {
                    return Err(format!("attr {v:?} has an empty key"));
                }
                q.attributes.push((key.to_string(), value.to_string()));
            }
            "status" => match v {
                "error" => q.errors_only = true,
                "" | "any" => {}
                other => return Err(format!("status must be error or any, not {other:?}")),
            },
            "minDuration" if !v.is_empty() => {
                q.min_duration_us = Some(duration(v)?.as_micros() as u64)
            }
            "maxDuration" if !v.is_empty() => {
                q.max_duration_us = Some(duration(v)?.as_micros() as u64)
            }
            "minDuration" | "maxDuration" => {}
            "start" if !v.is_empty() => start = Some(time_us(v)?),
            "end" if !v.is_empty() => end = Some(time_us(v)?),
            "lookback" if !v.is_empty() => lookback = Some(duration(v)?),
            "start" | "end" | "lookback" => {}
            "limit" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("limit {v:?} is not a number"))?;
                if n == 0 {
                    return Err("limit must be at least 1".into());
                }
                q.limit = n.min(MAX_LIMIT);
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?} (service, operation, kind, attr, status, \
                     minDuration, maxDuration, start, end, lookback, limit)"
                ));
            }
        }
    }
    // Without an end the range runs to now, plus a little room for spans
    // from clocks slightly ahead; the lookback counts back from the end
    // given, or from now (never from that room).
    q.end_us = end.unwrap_or(now_us + FUTURE_SLACK_US);
    q.start_us = match (start, lookback) {
        (Some(s), _) => s,
        (None, lookback) => end
            .unwrap_or(now_us)
            .saturating_sub(lookback.unwrap_or(DEFAULT_LOOKBACK).as_micros() as u64),
    };
    if q.start_us > q.end_us {
        return Err("start is after end".into());
    }
    if let (Some(min), Some(max)) = (q.min_duration_us, q.max_duration_us)
        && min > max
    {
        return Err("minDuration is above maxDuration".into());
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn durations_take_units_and_fractions() {
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("1.5s").unwrap(), Duration::from_millis(1_500));
        assert_eq!(duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(duration("42").unwrap(), Duration::from_micros(42));
        assert!(duration("fast").is_err());
        assert!(
            duration("5y")
                .unwrap_err()
                .contains("unknown duration unit")
        );
    }

    #[test]
    fn times_are_rfc3339_or_micros() {
        assert_eq!(time_us("1700000000000000").unwrap(), 1_700_000_000_000_000);
        assert_eq!(
            time_us("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000
        );
        assert!(time_us("yesterday").is_err());
    }

    #[test]
    fn a_search_takes_every_filter() {
        let now = 10_000_000_000;
        let q = search(
            &pairs(&[
                ("service", "card-api"),
                ("operation", "authorise"),
                ("kind", "server"),
                ("attr", "http.method=GET"),
                ("attr", "region=eu=west"),
                ("status", "error"),
                ("minDuration", "250ms"),
                ("maxDuration", "1.5s"),
                ("lookback", "15m"),
                ("limit", "5000"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(q.service.as_deref(), Some("card-api"));
        assert_eq!(q.kind, Some(SpanKind::Server));
        assert_eq!(
            q.attributes,
            vec![
                ("http.method".to_string(), "GET".to_string()),
                ("region".to_string(), "eu=west".to_string())
            ]
        );
        assert!(q.errors_only);
        assert_eq!(
            (q.min_duration_us, q.max_duration_us),
            (Some(250_000), Some(1_500_000))
        );
        // The last 15 minutes up to now (a regression: the lookback once
        // counted back from the future slack, missing recent spans).
        assert_eq!(q.start_us, now - 900_000_000);
        assert_eq!(q.end_us, now + FUTURE_SLACK_US);
        assert_eq!(q.limit, MAX_LIMIT);
        let d = search(&[], now).unwrap();
        assert_eq!((d.limit, d.start_us), (DEFAULT_LIMIT, now - 3_600_000_000));
        // With an end, the lookback counts back from it.
        let e = search(&pairs(&[("end", "5000000000"), ("lookback", "1s")]), now).unwrap();
        assert_eq!((e.start_us, e.end_us), (4_999_000_000, 5_000_000_000));
    }

    #[test]
    fn bad_searches_say_what_is_wrong() {
        let bad = |p: &[(&str, &str)]| search(&pairs(p), 1_000_000).unwrap_err();
        assert!(bad(&[("colour", "red")]).contains("unknown parameter"));
        assert!(bad(&[("attr", "novalue")]).contains("key=value"));
        assert!(bad(&[("kind", "sideways")]).contains("unknown span kind"));
        assert!(bad(&[("limit", "0")]).contains("at least 1"));
        assert!(bad(&[("start", "2"), ("end", "1")]).contains("start is after end"));
        assert!(bad(&[("minDuration", "2s"), ("maxDuration", "1s")]).contains("above"));
        assert!(bad(&[("status", "ok")]).contains("status"));
    }
}
