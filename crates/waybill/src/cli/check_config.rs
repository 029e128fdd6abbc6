//! `waybill check-config`: the same validation `serve` runs, every error at once.

use std::path::Path;
use std::process::ExitCode;
use waybill::Config;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(path)?;
    match cfg.validate() {
        Ok(rt) => {
            println!(
                "{}: ok ({} sources, {} sinks, {} subscriptions)",
                path.display(),
                rt.sources.len(),
                rt.sinks.len(),
                rt.subscriptions.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errs) => {
            for e in &errs {
                eprintln!("{}: {e}", path.display());
            }
            eprintln!("{} error(s)", errs.len());
            Ok(ExitCode::FAILURE)
        }
    }
}
