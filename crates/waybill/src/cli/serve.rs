//! `waybill serve`: run the hub until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use waybill::Config;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file.
    #[arg(long, short, default_value = "waybill.toml", env = "WAYBILL_CONFIG")]
    config: PathBuf,
    /// Override `server.listen`.
    #[arg(long)]
    listen: Option<String>,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = Config::load(&a.config)?;
    if let Some(l) = a.listen {
        cfg.server.listen = l;
    }
    init_logging(&cfg);
    // Each connection is a descriptor: take what the system allows (see docs/runbook.md).
    let nofile = waybill::server::raise_open_file_limit();
    tracing::info!(
        open_file_limit = nofile,
        "open-file limit (unlimited when absent)"
    );
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.server.listen))?;
    waybill::serve(cfg, listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WAYBILL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.log.format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
