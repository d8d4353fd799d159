//! phosphor-bench: phosphor's load tool, `phosphor bench`.
//!
//! It drives a running phosphor over the network only (loopback by
//! default) and reports what it saw and what the server counted:
//!
//! - `ingest` ([`ingest`]): spans over OTLP/gRPC, OTLP/HTTP (protobuf or
//!   JSON), Zipkin v2 JSON, or phosphor annotations over UDP (legacy or
//!   batched datagrams), at a fixed rate or as fast as acknowledgements
//!   allow; a progress line a second, then sent and acknowledged rates,
//!   acknowledgement latency, refusals, and the server's own counters.
//! - `query` ([`query`]): trace-by-ID latency for traces of chosen sizes,
//!   search latency for each kind of filter, and the trace page's render
//!   time, optionally after filling the store to a chosen size.
//! - `size` ([`size`]): bytes on disk per stored span after a compaction,
//!   and the server's peak resident memory.
//!
//! Layout: [`shape`] generates traces (deterministic for a seed),
//! [`encode`] turns them into payloads of each wire format, [`transport`]
//! sends them, [`scrape`] reads `/metrics` and `/proc`, [`stats`] computes
//! percentiles. Payloads are generated and encoded on a thread of their own,
//! ahead of sending, so that what is timed is the server.

pub mod encode;
pub mod ingest;
pub mod query;
pub mod scrape;
pub mod shape;
pub mod sink;
pub mod size;
pub mod stats;
pub mod transport;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

/// What the load tool can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the server: {0}")]
    Connect(String),
    #[error("unexpected answer from the server: {0}")]
    Server(String),
    #[error("{0}")]
    Args(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The load tool's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Options of `phosphor bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// What to measure.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send spans (or annotations) for a while and report rates, latency,
    /// refusals and the server's counters.
    Ingest(IngestArgs),
    /// Measure trace-by-ID, search and trace-page latency (after filling
    /// the store, with --fill).
    Query(QueryArgs),
    /// Compact the store and report bytes on disk per stored span, and the
    /// server's peak memory.
    Size(SizeArgs),
    /// The UDP reference: count what a minimal receive loop reads (send to
    /// it with `ingest --protocol udp-batch --udp-addr`).
    Sink(SinkArgs),
}

/// Options of `phosphor bench sink`.
#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:7761")]
    pub udp_addr: SocketAddr,
    /// Stop once no datagram came for this long (after the first).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub idle: std::time::Duration,
    /// Stop after this long in any case.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub limit: std::time::Duration,
    /// Print the report as JSON on stdout (the text report then goes to
    /// stderr).
    #[arg(long)]
    pub json: bool,
}

/// How spans reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// OTLP/gRPC `TraceService/Export`, protobuf.
    OtlpGrpc,
    /// OTLP/HTTP `POST /v1/traces`, protobuf.
    OtlpHttp,
    /// OTLP/HTTP `POST /v1/traces`, JSON.
    OtlpJson,
    /// Zipkin `POST /api/v2/spans`, JSON.
    ZipkinJson,
    /// phosphor annotations over UDP, one per datagram (legacy framing).
    Udp,
    /// phosphor annotations over UDP, many per datagram (batch framing).
    UdpBatch,
}

impl Protocol {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::OtlpGrpc => "otlp-grpc",
            Protocol::OtlpHttp => "otlp-http",
            Protocol::OtlpJson => "otlp-json",
            Protocol::ZipkinJson => "zipkin-json",
            Protocol::Udp => "udp",
            Protocol::UdpBatch => "udp-batch",
        }
    }

    /// The server's `protocol` label for this protocol's counters.
    pub fn metric_label(self) -> &'static str {
        match self {
            Protocol::OtlpGrpc => "otlp_grpc",
            Protocol::OtlpHttp | Protocol::OtlpJson => "otlp_http",
            Protocol::ZipkinJson => "zipkin",
            Protocol::Udp | Protocol::UdpBatch => "udp",
        }
    }

    /// Whether this protocol sends datagrams (no acknowledgements).
    pub fn is_udp(self) -> bool {
        matches!(self, Protocol::Udp | Protocol::UdpBatch)
    }

    /// What one item is: a span, or (UDP) an annotation.
    pub fn unit(self) -> &'static str {
        if self.is_udp() {
            "annotations"
        } else {
            "spans"
        }
    }
}

/// A sending rate: items a second, or as fast as acknowledgements allow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Max,
    PerSecond(f64),
}

impl FromStr for Rate {
    type Err = String;

    /// `max`, or a number with an optional `k` or `m` suffix (`100k`).
    fn from_str(s: &str) -> Result<Rate, String> {
        let t = s.trim().to_ascii_lowercase();
        if t == "max" {
            return Ok(Rate::Max);
        }
        let (num, mult) = match t.strip_suffix('k') {
            Some(n) => (n, 1e3),
            None => match t.strip_suffix('m') {
                Some(n) => (n, 1e6),
                None => (t.as_str(), 1.0),
            },
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("{s:?}: a rate is `max` or a number such as 20000 or 100k"))?;
        if !(v * mult).is_finite() || v * mult <= 0.0 {
            return Err(format!("{s:?}: the rate must be above 0"));
        }
        Ok(Rate::PerSecond(v * mult))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::PerSecond(r) => write!(f, "{}/s", stats::rate(*r)),
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be above zero"));
    }
    Ok(d)
}

/// Where the server listens.
#[derive(Debug, Clone, Args)]
pub struct ServerAddrs {
    /// phosphor's web UI and JSON API (/metrics, /api/v1, trace pages).
    #[arg(
        long,
        env = "PHOSPHOR_HTTP_ADDR",
        default_value = "127.0.0.1:7750",
        value_name = "HOST:PORT"
    )]
    pub http_addr: SocketAddr,
    /// OTLP/gRPC receiver.
    #[arg(
        long,
        env = "PHOSPHOR_OTLP_GRPC_ADDR",
        default_value = "127.0.0.1:4317",
        value_name = "HOST:PORT"
    )]
    pub otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP receiver.
    #[arg(
        long,
        env = "PHOSPHOR_OTLP_HTTP_ADDR",
        default_value = "127.0.0.1:4318",
        value_name = "HOST:PORT"
    )]
    pub otlp_http_addr: SocketAddr,
    /// Zipkin receiver.
    #[arg(
        long,
        env = "PHOSPHOR_ZIPKIN_ADDR",
        default_value = "127.0.0.1:9411",
        value_name = "HOST:PORT"
    )]
    pub zipkin_addr: SocketAddr,
    /// phosphor annotations over UDP.
    #[arg(
        long,
        env = "PHOSPHOR_UDP_ADDR",
        default_value = "127.0.0.1:7760",
        value_name = "HOST:PORT"
    )]
    pub udp_addr: SocketAddr,
}

impl ServerAddrs {
    /// The address `protocol` is sent to.
    pub fn of(&self, protocol: Protocol) -> SocketAddr {
        match protocol {
            Protocol::OtlpGrpc => self.otlp_grpc_addr,
            Protocol::OtlpHttp | Protocol::OtlpJson => self.otlp_http_addr,
            Protocol::ZipkinJson => self.zipkin_addr,
            Protocol::Udp | Protocol::UdpBatch => self.udp_addr,
        }
    }
}

/// What the generated traces look like.
#[derive(Debug, Clone, Args)]
pub struct ShapeArgs {
    /// Attributes per span, from realistic keys (http.method, http.route,
    /// http.status_code, net.peer.name, user.id, http.target, request.id,
    /// net.peer.port, http.user_agent, http.response_content_length, …),
    /// some of few values and some of many.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub attrs: usize,
    /// Mean events per span (0.5: every other span has one).
    #[arg(long, default_value_t = 1.0, value_name = "N")]
    pub events: f64,
    /// Share of calls that fail (error status and an exception event).
    #[arg(long, default_value_t = 0.01, value_name = "FRACTION")]
    pub error_rate: f64,
    /// Calls each service makes while handling one.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub width: usize,
    /// Levels of services in a trace; a trace has 2·(1 + W + … + W^(D-1)) − 1
    /// spans (25 for width 3, depth 3).
    #[arg(long, default_value_t = 3, value_name = "D")]
    pub depth: usize,
    /// Services the calls are spread over.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub services: usize,
    /// Seed of the trees, names and attribute values (IDs and timestamps
    /// differ between runs so that runs never collide in one store).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl ShapeArgs {
    /// The generator's shape, checked.
    pub fn shape(&self) -> Result<shape::Shape> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(Error::Args("--error-rate is a fraction from 0 to 1".into()));
        }
        if !(0.0..=1_000.0).contains(&self.events) {
            return Err(Error::Args("--events is from 0 to 1000".into()));
        }
        if self.depth == 0 || self.width == 0 || self.services == 0 {
            return Err(Error::Args(
                "--depth, --width and --services are at least 1".into(),
            ));
        }
        let shape = shape::Shape {
            attrs: self.attrs,
            events: self.events,
            error_rate: self.error_rate,
            width: self.width,
            depth: self.depth,
            services: self.services,
            seed: self.seed,
        };
        if shape.calls_per_trace() > 100_000 {
            return Err(Error::Args(format!(
                "--width {} --depth {} makes traces of over 200,000 spans",
                self.width, self.depth
            )));
        }
        Ok(shape)
    }
}

/// Options of `phosphor bench ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// How spans are sent.
    #[arg(long, value_enum, default_value = "otlp-grpc")]
    pub protocol: Protocol,
    /// Spans a second (annotations for UDP), paced evenly, e.g. 20000 or
    /// 100k; `max` sends as fast as acknowledgements allow (UDP: as fast as
    /// the socket takes them).
    #[arg(long, default_value = "max")]
    pub rate: Rate,
    /// How long to send [default: 10s, or until --spans are sent].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// Stop after this many spans (annotations for UDP).
    #[arg(long, value_name = "N")]
    pub spans: Option<u64>,
    /// Spans per request; for batched UDP, most annotations per datagram
    /// (fewer when --max-datagram is reached first).
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub batch: usize,
    /// Requests in flight at once (not UDP).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    /// Largest batched UDP datagram, in bytes.
    #[arg(long, default_value_t = 8_192, value_name = "BYTES")]
    pub max_datagram: usize,
    /// Spans (annotations for UDP) made and encoded before the clock
    /// starts, then sent over and over, each round with new trace IDs, so
    /// that this tool spends its CPU sending rather than making spans; 0
    /// makes every payload anew while sending.
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    pub pool: u64,
    /// Print the final report as JSON on stdout (the text report then goes
    /// to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub shape: ShapeArgs,
    #[command(flatten)]
    pub server: ServerAddrs,
}

/// Options of `phosphor bench query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// First send this many spans over OTLP/gRPC as fast as acknowledged
    /// (the default shape, or --width/--depth/--attrs …), so that queries run
    /// over a store of a chosen size.
    #[arg(long, default_value_t = 0, value_name = "SPANS")]
    pub fill: u64,
    /// Sizes, in spans, of the traces fetched by ID (sent by the tool).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,1000,10000",
        value_name = "N,N,…"
    )]
    pub sizes: Vec<usize>,
    /// Requests per trace-by-ID size and per search filter (with 100, the
    /// p99 is the second slowest, not simply the slowest).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub iterations: usize,
    /// Requests per trace page.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub page_iterations: usize,
    /// How far back searches look (as the search API's `lookback`).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub lookback: String,
    /// Spans per request while filling and sending the traces.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub batch: usize,
    /// Requests in flight while filling.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    /// Print the final report as JSON on stdout (the text report then goes
    /// to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress line while filling.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub shape: ShapeArgs,
    #[command(flatten)]
    pub server: ServerAddrs,
}

/// Options of `phosphor bench size`.
#[derive(Debug, Args)]
pub struct SizeArgs {
    /// Report the sizes as they are, without compacting first.
    #[arg(long)]
    pub no_compact: bool,
    /// Print the report as JSON on stdout (the text report then goes to
    /// stderr).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerAddrs,
}

/// Where reports go: text on stdout, or with `--json` text on stderr and
/// JSON on stdout.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints a text report.
    pub fn text(&self, text: &str) {
        if self.json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }

    /// Prints the JSON report when asked for.
    pub fn json(&self, value: &impl Serialize) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).expect("reports serialise")
            );
        }
    }
}

/// Runs `phosphor bench`.
pub async fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Ingest(a) => {
            let out = Output { json: a.json };
            let report = ingest::run(ingest::Config::from_args(&a)?).await?;
            out.text(&report.text());
            out.json(&report);
        }
        BenchCommand::Query(a) => {
            let out = Output { json: a.json };
            let report = query::run(&a).await?;
            out.text(&report.text());
            out.json(&report);
        }
        BenchCommand::Sink(a) => {
            let out = Output { json: a.json };
            let report =
                tokio::task::spawn_blocking(move || sink::run(a.udp_addr, a.idle, a.limit))
                    .await
                    .map_err(|e| Error::Args(e.to_string()))??;
            out.text(&report.text());
            out.json(&report);
        }
        BenchCommand::Size(a) => {
            let out = Output { json: a.json };
            let report = size::run(&a.server, !a.no_compact).await?;
            out.text(&report.text());
            out.json(&report);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("MAX".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("20000".parse::<Rate>(), Ok(Rate::PerSecond(20_000.0)));
        assert_eq!("100k".parse::<Rate>(), Ok(Rate::PerSecond(100_000.0)));
        assert_eq!("1.5M".parse::<Rate>(), Ok(Rate::PerSecond(1_500_000.0)));
        assert!("0".parse::<Rate>().is_err());
        assert!("-5".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().unwrap_err().contains("100k"));
    }

    #[test]
    fn bad_shapes_are_refused() {
        let ok = ShapeArgs {
            attrs: 10,
            events: 1.0,
            error_rate: 0.01,
            width: 3,
            depth: 3,
            services: 8,
            seed: 1,
        };
        assert!(ok.shape().is_ok());
        for bad in [
            ShapeArgs {
                error_rate: 1.5,
                ..ok.clone()
            },
            ShapeArgs {
                depth: 0,
                ..ok.clone()
            },
            ShapeArgs {
                width: 50,
                depth: 5,
                ..ok.clone()
            },
        ] {
            assert!(bad.shape().is_err(), "{bad:?}");
        }
    }
}
