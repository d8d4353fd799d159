//! The `phosphor` binary: parses arguments, sets up logging, and runs a
//! subcommand. Everything else lives in the library crates.

mod config;
mod demo;
mod metrics;
mod serve;

use std::io::IsTerminal;

/// mimalloc: spans are built on the runtime's threads and freed on the
/// writer's, a pattern where glibc's allocator spent a fifth of the
/// writer's time (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use config::{Cli, Command, Config};

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Demo(args)) => {
            init_logging("info");
            demo::run(demo::Target {
                udp_addr: args.udp_addr,
                otlp_grpc_addr: args.otlp_grpc_addr,
                rate: args.rate,
                count: args.count,
            })
            .await
        }
        Some(Command::Bench(args)) => {
            init_logging("warn");
            Ok(phosphor_bench::run(*args).await?)
        }
        Some(Command::Serve(args)) => serve_with(*args).await,
        None => serve_with(cli.serve).await,
    }
}

async fn serve_with(args: config::ServeArgs) -> anyhow::Result<()> {
    let config = Config::resolve(args)?;
    init_logging(&config.log);
    serve::run(config).await
}
