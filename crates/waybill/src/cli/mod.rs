//! The verbs, one file each.

mod audit;
mod bench;
mod bench_console;
mod bench_limits;
mod bench_purge;
mod check_config;
mod echo_sink;
mod erase;
mod keys;
mod migrate;
mod purge;
mod replay;
mod send;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Waybill: an integration hub that keeps Odoo and logistics partners in step through events.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub.
    Serve(serve::Args),
    /// Validate a configuration file and report every error at once.
    CheckConfig(ConfigArg),
    /// Apply pending database migrations and exit.
    Migrate(ConfigArg),
    /// Replay dead letters through a running hub's API.
    Replay(replay::Args),
    /// Load generators.
    Bench(bench::Args),
    /// Post a payload file to a source, signed as the configuration says.
    Send(send::Args),
    /// A local webhook receiver that prints what it gets (for trying Waybill out).
    EchoSink(echo_sink::Args),
    /// Create, list and revoke the hub's API keys.
    Keys(keys::Args),
    /// Verify (and list, anchor) the hash-chained audit trail.
    Audit(audit::Args),
    /// Run the retention plan of `[retention]` once, to the end (or count with --dry-run).
    Purge(purge::Args),
    /// Erase a shipment's personal data (by key, or every shipment a reference names).
    Erase(erase::Args),
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Configuration file.
    #[arg(long, short, default_value = "waybill.toml", env = "WAYBILL_CONFIG")]
    config: PathBuf,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve::run(a).await,
        Command::CheckConfig(a) => check_config::run(&a.config),
        Command::Migrate(a) => migrate::run(&a.config),
        Command::Replay(a) => replay::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Send(a) => send::run(a).await,
        Command::EchoSink(a) => echo_sink::run(a).await,
        Command::Keys(a) => keys::run(a).await,
        Command::Audit(a) => audit::run(a).await,
        Command::Purge(a) => purge::run(a).await,
        Command::Erase(a) => erase::run(a).await,
    }
}
