//! Command line, environment and config file.
//!
//! Every `serve` option can be set three ways, in this order of precedence:
//! a flag, an environment variable (`PHOSPHOR_<NAME>`), a key in the TOML
//! file given by `--config` (same name, with underscores). What none of them
//! sets takes the default shown by `--help`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// Distributed tracing in one binary: collector, trace store, query API and
/// web UI.
#[derive(Debug, Parser)]
#[command(name = "phosphor", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `phosphor` with no subcommand is `phosphor serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything: receivers, store, JSON API and web UI (the default).
    Serve(Box<ServeArgs>),
    /// Play the card-payment demo system against a running phosphor.
    Demo(DemoArgs),
    /// Load tool: drive a running phosphor over the network and measure
    /// ingest, query latency and store size.
    Bench(Box<phosphor_bench::BenchArgs>),
}

/// Options of `phosphor serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML file with any of the options below (keys with underscores,
    /// e.g. `data_dir = "/var/lib/phosphor"`).
    #[arg(long, env = "PHOSPHOR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded trace store [default: ./phosphor-data].
    #[arg(long, env = "PHOSPHOR_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Web UI, JSON API, /metrics, /healthz, /readyz [default: 127.0.0.1:7750].
    #[arg(long, env = "PHOSPHOR_HTTP_ADDR", value_name = "HOST:PORT")]
    pub http_addr: Option<SocketAddr>,
    /// phosphor annotations over UDP [default: 127.0.0.1:7760].
    #[arg(long, env = "PHOSPHOR_UDP_ADDR", value_name = "HOST:PORT")]
    pub udp_addr: Option<SocketAddr>,
    /// OTLP/gRPC TraceService [default: 127.0.0.1:4317].
    #[arg(long, env = "PHOSPHOR_OTLP_GRPC_ADDR", value_name = "HOST:PORT")]
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP POST /v1/traces [default: 127.0.0.1:4318].
    #[arg(long, env = "PHOSPHOR_OTLP_HTTP_ADDR", value_name = "HOST:PORT")]
    pub otlp_http_addr: Option<SocketAddr>,
    /// How long traces are kept, e.g. 7d, 36h; older data is dropped a whole
    /// time partition at a time, giving its disk space back [default: 7d].
    #[arg(long, env = "PHOSPHOR_RETENTION", value_name = "DURATION", value_parser = parse_duration)]
    pub retention: Option<Duration>,
    /// RocksDB block cache size in bytes [default: 67108864].
    #[arg(long, env = "PHOSPHOR_BLOCK_CACHE_BYTES", value_name = "BYTES")]
    pub block_cache_bytes: Option<usize>,
    /// Also run the demo traffic generator against this server.
    #[arg(long, env = "PHOSPHOR_DEMO")]
    pub demo: bool,
    /// Most spans waiting to be written; beyond it OTLP is refused with a
    /// retryable error and UDP is dropped (both counted) [default: 20000].
    #[arg(long, env = "PHOSPHOR_QUEUE_SPANS", value_name = "N")]
    pub queue_spans: Option<usize>,
    /// Zipkin POST /api/v2/spans (JSON, proto3) and /api/v1/spans (JSON)
    /// [default: 127.0.0.1:9411].
    #[arg(long, env = "PHOSPHOR_ZIPKIN_ADDR", value_name = "HOST:PORT")]
    pub zipkin_addr: Option<SocketAddr>,
    /// Largest OTLP or Zipkin request body, in bytes, after gzip [default: 16777216].
    #[arg(long, env = "PHOSPHOR_MAX_REQUEST_BYTES", value_name = "BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Sync the write-ahead log on every write: acknowledged spans survive
    /// power loss, not only a crash of the process [default: false].
    #[arg(long, env = "PHOSPHOR_SYNC_WRITES")]
    pub sync_writes: bool,
    /// Log filter, as RUST_LOG [default: info].
    #[arg(long, env = "PHOSPHOR_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

/// Options of `phosphor demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where phosphor listens for UDP annotations.
    #[arg(long, env = "PHOSPHOR_UDP_ADDR", default_value = "127.0.0.1:7760")]
    pub udp_addr: SocketAddr,
    /// Where phosphor listens for OTLP/gRPC.
    #[arg(
        long,
        env = "PHOSPHOR_OTLP_GRPC_ADDR",
        default_value = "127.0.0.1:4317"
    )]
    pub otlp_grpc_addr: SocketAddr,
    /// Traces per second.
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Stop after this many traces (0: run until interrupted).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
}

/// The config file: the same options as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// See `--http-addr`.
    pub http_addr: Option<SocketAddr>,
    /// See `--udp-addr`.
    pub udp_addr: Option<SocketAddr>,
    /// See `--otlp-grpc-addr`.
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// See `--otlp-http-addr`.
    pub otlp_http_addr: Option<SocketAddr>,
    /// See `--zipkin-addr`.
    pub zipkin_addr: Option<SocketAddr>,
    /// See `--retention` (a string such as "7d").
    #[serde(default, deserialize_with = "de_duration")]
    pub retention: Option<Duration>,
    /// See `--block-cache-bytes`.
    pub block_cache_bytes: Option<usize>,
    /// See `--demo`.
    pub demo: Option<bool>,
    /// See `--queue-spans`.
    pub queue_spans: Option<usize>,
    /// See `--max-request-bytes`.
    pub max_request_bytes: Option<usize>,
    /// See `--sync-writes`.
    pub sync_writes: Option<bool>,
    /// See `--log`.
    pub log: Option<String>,
}

/// The settled configuration of `serve`.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub udp_addr: SocketAddr,
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    pub zipkin_addr: SocketAddr,
    pub retention: Duration,
    pub block_cache_bytes: usize,
    pub demo: bool,
    pub queue_spans: usize,
    pub max_request_bytes: usize,
    pub sync_writes: bool,
    pub log: String,
}

/// Parses `7d`, `36h`, `90m`, `1h 30m` (humantime's syntax).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d < Duration::from_secs(60) {
        return Err(format!("{s:?}: retention must be at least a minute"));
    }
    Ok(d)
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("valid default address")
}

impl Config {
    /// Merges flags and environment (already in `args`) over the file over
    /// the defaults.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        Ok(Config {
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("phosphor-data")),
            http_addr: args
                .http_addr
                .or(file.http_addr)
                .unwrap_or_else(|| addr("127.0.0.1:7750")),
            udp_addr: args
                .udp_addr
                .or(file.udp_addr)
                .unwrap_or_else(|| addr("127.0.0.1:7760")),
            otlp_grpc_addr: args
                .otlp_grpc_addr
                .or(file.otlp_grpc_addr)
                .unwrap_or_else(|| addr("127.0.0.1:4317")),
            otlp_http_addr: args
                .otlp_http_addr
                .or(file.otlp_http_addr)
                .unwrap_or_else(|| addr("127.0.0.1:4318")),
            zipkin_addr: args
                .zipkin_addr
                .or(file.zipkin_addr)
                .unwrap_or_else(|| addr("127.0.0.1:9411")),
            retention: args
                .retention
                .or(file.retention)
                .unwrap_or(Duration::from_secs(7 * 86_400)),
            block_cache_bytes: args
                .block_cache_bytes
                .or(file.block_cache_bytes)
                .unwrap_or(64 << 20),
            demo: args.demo || file.demo.unwrap_or(false),
            queue_spans: args
                .queue_spans
                .or(file.queue_spans)
                .unwrap_or(phosphor_collector::pipeline::DEFAULT_QUEUE_SPANS),
            max_request_bytes: args
                .max_request_bytes
                .or(file.max_request_bytes)
                .unwrap_or(16 << 20),
            sync_writes: args.sync_writes || file.sync_writes.unwrap_or(false),
            log: args.log.or(file.log).unwrap_or_else(|| "info".into()),
        })
    }
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phosphor.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from/file\"\nudp_addr = \"127.0.0.1:9999\"\nsync_writes = true\nretention = \"36h\"\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "phosphor",
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            "/from/flag",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve expected")
        };
        let c = Config::resolve(*args).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(c.udp_addr, addr("127.0.0.1:9999"));
        assert!(c.sync_writes);
        assert_eq!(c.retention, Duration::from_secs(36 * 3_600));
        assert_eq!(c.http_addr, addr("127.0.0.1:7750"));
        assert_eq!(c.block_cache_bytes, 64 << 20);
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phosphor.toml");
        std::fs::write(&path, "data_dri = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        let err = format!("{:#}", Config::resolve(args).unwrap_err());
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn bare_phosphor_is_serve() {
        let cli = Cli::try_parse_from(["phosphor", "--demo"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.serve.demo);
    }

    #[test]
    fn the_example_config_names_real_options() {
        // Every commented `key = value` line of deploy/phosphor.toml, taken
        // in, must parse.
        let text = include_str!("../deploy/phosphor.toml");
        let active: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(active.lines().count() >= 12, "{active}");
        let file: FileConfig = toml::from_str(&active).unwrap();
        assert_eq!(file.retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(file.zipkin_addr, Some(addr("0.0.0.0:9411")));
    }
}
