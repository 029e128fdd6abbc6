//! `waybill purge`: runs the retention plan of a configuration once, to the end, straight
//! on its store (the hub may be running: the batches interleave with its writes), and
//! prints per kind what went; with `--dry-run`, what would go, changing nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use waybill::Config;
use waybill_store::retention::{PurgeKind, PurgeReport};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration file.
    #[arg(long, short, default_value = "waybill.toml", env = "WAYBILL_CONFIG")]
    config: PathBuf,
    /// Count what would go; change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    if let Some((key, problem)) = cfg.retention.problems().into_iter().next() {
        anyhow::bail!("{key}: {problem}");
    }
    let store = waybill::open_store(&cfg).await?;
    let started = std::time::Instant::now();
    let result = if a.dry_run {
        store
            .purge(cfg.retention.plan(time::OffsetDateTime::now_utc(), true))
            .await
    } else {
        let (_tx, mut stop) = tokio::sync::watch::channel(false);
        waybill::retention::purge_to_end(
            &store,
            &cfg.retention,
            std::time::Duration::ZERO,
            1.0,
            &mut stop,
            |_| {},
        )
        .await
    };
    store.close().await;
    let report = result?;
    print_report(&report, a.dry_run, started.elapsed());
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &PurgeReport, dry: bool, took: std::time::Duration) {
    let verb = if dry { "would purge" } else { "purged" };
    for k in PurgeKind::ALL {
        let c = r.get(k);
        match k {
            PurgeKind::RawPayloads | PurgeKind::RejectedPayloads => {
                println!(
                    "{:<18} {verb} {:>10} rows {:>14} bytes",
                    k.as_str(),
                    c.rows,
                    c.bytes
                )
            }
            _ => println!("{:<18} {verb} {:>10} rows", k.as_str(), c.rows),
        }
    }
    if !dry {
        println!("in {:.1} s", took.as_secs_f64());
    }
}
