//! `phosphor bench query`: read latency over a running server.
//!
//! Optionally fills the store first (OTLP/gRPC, as fast as acknowledged).
//! Then it sends one trace of each size with a known ID over OTLP/gRPC,
//! waits until the API returns every span of it, and times, one request at
//! a time: `GET /api/v1/traces/{id}` for each size, `GET /api/v1/search`
//! for each kind of filter (`limit=20`), and `GET /traces/{id}` (the trace
//! page's HTML, to the last byte). Times are from sending the request to
//! having the whole body.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::encode::otlp_trace_bodies;
use crate::ingest::{self, IngestReport};
use crate::shape::{Generator, Value};
use crate::stats::{self, Latency, count};
use crate::transport::{Client, Outcome};
use crate::{Error, Protocol, QueryArgs, Rate, Result};

/// Longest wait for a sent trace to be readable whole.
const READABLE: Duration = Duration::from_secs(60);

/// The store fill before the queries.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fill {
    pub acked: u64,
    pub seconds: f64,
    pub acked_per_second: f64,
    pub refused: u64,
    pub errors: u64,
}

/// Trace-by-ID latency for one trace size.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ById {
    pub spans: usize,
    pub trace_id: String,
    /// Spans the API returned for the trace (equal to `spans` when whole).
    pub spans_returned: usize,
    pub latency: Option<Latency>,
    /// The server's own time (reading, assembling and writing the JSON),
    /// from its `Server-Timing` header: the rest of `latency` is HTTP,
    /// the transfer, and this tool reading the body.
    pub server: Option<Latency>,
    /// Bytes of one response body.
    pub bytes: usize,
}

/// Search latency for one kind of filter.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Search {
    pub filter: &'static str,
    /// The query string sent.
    pub query: String,
    pub latency: Option<Latency>,
    /// Traces the search returned.
    pub hits: usize,
}

/// Trace page render time for one trace size.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub spans: usize,
    pub trace_id: String,
    pub latency: Option<Latency>,
    pub bytes: usize,
}

/// The report of `phosphor bench query`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryReport {
    pub server: String,
    pub fill: Option<Fill>,
    pub iterations: usize,
    pub page_iterations: usize,
    pub lookback: String,
    pub trace_by_id: Vec<ById>,
    pub search: Vec<Search>,
    pub trace_page: Vec<Page>,
}

impl QueryReport {
    /// The report as text.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(o, "phosphor bench query: {}", self.server);
        if let Some(f) = &self.fill {
            let _ = writeln!(
                o,
                "  fill: {} spans acknowledged in {:.1}s ({} spans/s), {} refused, {} errors",
                count(f.acked),
                f.seconds,
                stats::rate(f.acked_per_second),
                count(f.refused),
                count(f.errors)
            );
        }
        let lat = |l: &Option<Latency>| {
            l.map(|l| {
                format!(
                    "{:>10} {:>10} {:>10}",
                    stats::ms(l.p50_ms),
                    stats::ms(l.p99_ms),
                    stats::ms(l.max_ms)
                )
            })
            .unwrap_or_else(|| format!("{:>32}", "no samples"))
        };
        let _ = writeln!(
            o,
            "trace by ID: GET /api/v1/traces/{{id}}, {} requests each",
            self.iterations
        );
        let _ = writeln!(
            o,
            "  {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}  trace",
            "spans", "p50", "p99", "max", "server p50", "server p99", "bytes"
        );
        for r in &self.trace_by_id {
            let server = r
                .server
                .map(|l| format!("{:>10} {:>10}", stats::ms(l.p50_ms), stats::ms(l.p99_ms)))
                .unwrap_or_else(|| format!("{:>21}", "-"));
            let _ = writeln!(
                o,
                "  {:>8} {} {} {:>12}  {}{}",
                count(r.spans as u64),
                lat(&r.latency),
                server,
                count(r.bytes as u64),
                r.trace_id,
                if r.spans_returned != r.spans {
                    format!(" (only {} spans returned)", r.spans_returned)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(
            o,
            "search: GET /api/v1/search, limit=20, lookback={}, {} requests each",
            self.lookback, self.iterations
        );
        let _ = writeln!(
            o,
            "  {:<18} {:>10} {:>10} {:>10} {:>5}  query",
            "filter", "p50", "p99", "max", "hits"
        );
        for r in &self.search {
            let _ = writeln!(
                o,
                "  {:<18} {} {:>5}  {}",
                r.filter,
                lat(&r.latency),
                r.hits,
                r.query
            );
        }
        let _ = writeln!(
            o,
            "trace page: GET /traces/{{id}}, HTML to the last byte, {} requests each",
            self.page_iterations
        );
        let _ = writeln!(
            o,
            "  {:>8} {:>10} {:>10} {:>10} {:>12}",
            "spans", "p50", "p99", "max", "bytes"
        );
        for r in &self.trace_page {
            let _ = writeln!(
                o,
                "  {:>8} {} {:>12}",
                count(r.spans as u64),
                lat(&r.latency),
                count(r.bytes as u64)
            );
        }
        o
    }
}

/// What `n` timed GETs found.
struct Timed {
    latency: Option<Latency>,
    /// The server's own time, where it sent a `Server-Timing` header.
    server: Option<Latency>,
    /// The last body.
    body: bytes::Bytes,
}

/// The sum of a `Server-Timing` header's durations, in microseconds.
fn server_micros(header: &str) -> Option<u64> {
    let mut total = 0.0;
    let mut any = false;
    for metric in header.split(',') {
        for param in metric.split(';').skip(1) {
            if let Some(v) = param.trim().strip_prefix("dur=") {
                total += v.parse::<f64>().ok()?;
                any = true;
            }
        }
    }
    any.then(|| (total * 1e3).round() as u64)
}

/// Times `n` GETs of `url` (with `query` pairs).
async fn time_gets(
    http: &reqwest::Client,
    url: &str,
    query: &[(&str, String)],
    n: usize,
) -> Result<Timed> {
    let mut target = reqwest::Url::parse(url).map_err(|e| Error::Args(format!("{url}: {e}")))?;
    if !query.is_empty() {
        target
            .query_pairs_mut()
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
    }
    let mut samples = Vec::with_capacity(n);
    let mut server = Vec::with_capacity(n);
    let mut last = bytes::Bytes::new();
    for _ in 0..n {
        let t = Instant::now();
        let resp = http
            .get(target.clone())
            .send()
            .await
            .map_err(|e| Error::Connect(format!("{url}: {e}")))?;
        let status = resp.status();
        if let Some(us) = resp
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .and_then(server_micros)
        {
            server.push(us);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Server(format!("{url}: {e}")))?;
        samples.push(stats::micros(t.elapsed()));
        if !status.is_success() {
            return Err(Error::Server(format!(
                "GET {url} {query:?}: HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )));
        }
        last = body;
    }
    Ok(Timed {
        latency: Latency::of(&mut samples),
        server: Latency::of(&mut server),
        body: last,
    })
}

/// Sends a payload until it is acknowledged (a refusal is retried).
async fn send_acked(client: &Client, body: bytes::Bytes) -> Result<()> {
    for _ in 0..300 {
        match client.send(body.clone()).await {
            Outcome::Acked { rejected: 0 } => return Ok(()),
            Outcome::Acked { rejected } => {
                return Err(Error::Server(format!("{rejected} spans rejected")));
            }
            Outcome::Refused => tokio::time::sleep(Duration::from_millis(200)).await,
            Outcome::Failed(e) => return Err(Error::Server(e)),
        }
    }
    Err(Error::Server("still refused after 60s of retries".into()))
}

/// Runs the query measurements.
pub async fn run(a: &QueryArgs) -> Result<QueryReport> {
    let shape = a.shape.shape()?;
    if a.iterations == 0 || a.sizes.is_empty() || a.batch == 0 || a.concurrency == 0 {
        return Err(Error::Args(
            "--iterations, --sizes, --batch and --concurrency need at least 1".into(),
        ));
    }
    if let Some(big) = a.sizes.iter().find(|&&n| n == 0 || n > 1_000_000) {
        return Err(Error::Args(format!(
            "--sizes: {big} is not from 1 to 1,000,000 spans"
        )));
    }
    let base = format!("http://{}", a.server.http_addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| Error::Connect(e.to_string()))?;

    let fill = if a.fill > 0 {
        let r: IngestReport = ingest::run(ingest::Config {
            protocol: Protocol::OtlpGrpc,
            target: a.server.otlp_grpc_addr,
            http: a.server.http_addr,
            rate: Rate::Max,
            duration: None,
            limit: Some(a.fill),
            batch: a.batch,
            concurrency: a.concurrency,
            max_datagram: 8_192,
            shape: shape.clone(),
            // Every span anew: searches need values and times that do not
            // repeat.
            pool: 0,
            progress: !a.quiet,
            label: "fill",
        })
        .await?;
        Some(Fill {
            acked: r.acked.unwrap_or(0),
            seconds: r.seconds + r.drain_seconds,
            acked_per_second: r.acked_per_second.unwrap_or(0.0),
            refused: r.refused,
            errors: r.errors,
        })
    } else {
        None
    };

    // The traces fetched by ID, sent with known IDs.
    let client = Client::connect(Protocol::OtlpGrpc, a.server.otlp_grpc_addr).await?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 ^ 0x5151)
        .unwrap_or(0);
    // Content of its own (a different seed), so that these traces do not
    // repeat the fill's first ones.
    let mut generator = Generator::new(
        crate::shape::Shape {
            seed: shape.seed ^ 0x5eed,
            ..shape.clone()
        },
        nonce,
    );
    let mut sent = Vec::new();
    let mut user = None;
    for &n in &a.sizes {
        let trace = generator.trace_with_spans(n);
        let id = trace.hex_id();
        if user.is_none() {
            user = trace.spans[0]
                .attrs
                .iter()
                .find(|a| a.key == "user.id")
                .map(|a| match &a.value {
                    Value::Str(s) => s.clone(),
                    v => v.text(),
                });
        }
        for p in otlp_trace_bodies(generator.services(), trace, a.batch) {
            send_acked(&client, p.body).await?;
        }
        sent.push((n, id));
    }
    let mut trace_by_id = Vec::new();
    for (n, id) in &sent {
        let url = format!("{base}/api/v1/traces/{id}");
        let deadline = Instant::now() + READABLE;
        let returned = loop {
            let resp = http
                .get(&url)
                .send()
                .await
                .map_err(|e| Error::Connect(format!("{url}: {e}")))?;
            let ok = resp.status().is_success();
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            let spans = v["spans"].as_array().map_or(0, Vec::len);
            if ok && spans >= *n || Instant::now() >= deadline {
                break spans;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let timed = time_gets(&http, &url, &[], a.iterations).await?;
        trace_by_id.push(ById {
            spans: *n,
            trace_id: id.clone(),
            spans_returned: returned,
            latency: timed.latency,
            server: timed.server,
            bytes: timed.body.len(),
        });
    }

    // Searches, one per kind of filter, on names and values the generator
    // uses.
    let services = generator.services();
    let entry = &services[0];
    let (method, route) = &entry.routes[0];
    let common = |extra: Vec<(&'static str, String)>| {
        let mut q = extra;
        q.push(("limit", "20".into()));
        q.push(("lookback", a.lookback.clone()));
        q
    };
    let mut filters: Vec<(&'static str, Vec<(&'static str, String)>)> = vec![
        ("service", common(vec![("service", entry.name.clone())])),
        (
            "service+operation",
            common(vec![
                ("service", entry.name.clone()),
                ("operation", format!("{method} {route}")),
            ]),
        ),
    ];
    if shape.attrs > 0 {
        filters.push((
            "attribute",
            common(vec![("attr", "http.method=POST".into())]),
        ));
    }
    if let Some(u) = &user {
        filters.push((
            "attribute (rare)",
            common(vec![("attr", format!("user.id={u}"))]),
        ));
    }
    filters.push((
        "duration",
        common(vec![
            ("minDuration", "20ms".into()),
            ("maxDuration", "1s".into()),
        ]),
    ));
    filters.push(("error-only", common(vec![("status", "error".into())])));
    let mut search = Vec::new();
    let url = format!("{base}/api/v1/search");
    for (filter, q) in filters {
        let timed = time_gets(&http, &url, &q, a.iterations).await?;
        let latency = timed.latency;
        let hits = serde_json::from_slice::<serde_json::Value>(&timed.body)
            .ok()
            .and_then(|v| v["data"].as_array().map(Vec::len))
            .unwrap_or(0);
        let query = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        search.push(Search {
            filter,
            query,
            latency,
            hits,
        });
    }

    let mut trace_page = Vec::new();
    if a.page_iterations > 0 {
        for (n, id) in &sent {
            let url = format!("{base}/traces/{id}");
            let timed = time_gets(&http, &url, &[], a.page_iterations).await?;
            trace_page.push(Page {
                spans: *n,
                trace_id: id.clone(),
                latency: timed.latency,
                bytes: timed.body.len(),
            });
        }
    }

    Ok(QueryReport {
        server: base,
        fill,
        iterations: a.iterations,
        page_iterations: a.page_iterations,
        lookback: a.lookback.clone(),
        trace_by_id,
        search,
        trace_page,
    })
}

#[cfg(test)]
mod tests {
    use super::server_micros;

    #[test]
    fn server_timing_durations_are_summed() {
        assert_eq!(
            server_micros("read;dur=1.250, assemble;dur=0.5, json;dur=2"),
            Some(3_750)
        );
        assert_eq!(server_micros("cache;desc=\"hit\";dur=0.1"), Some(100));
        assert_eq!(server_micros("miss, db"), None);
        assert_eq!(server_micros("db;dur=fast"), None);
    }
}
