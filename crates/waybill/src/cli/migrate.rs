//! `waybill migrate`: bring the database schema up to date.

use std::path::Path;
use std::process::ExitCode;
use waybill::Config;
use waybill_store::SqliteOptions;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(path)?;
    if cfg.store.kind == waybill::config::StoreKind::Postgres {
        let opts = waybill::pg_options(&cfg)?;
        let (from, to) = waybill_store::migrate_pg(&opts)?;
        println!("postgres schema {}: version {from} -> {to}", opts.schema);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(parent) = cfg.store.path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let (from, to) = waybill_store::migrate_file(&SqliteOptions::new(&cfg.store.path))?;
    println!(
        "{}: schema version {from} -> {to}",
        cfg.store.path.display()
    );
    Ok(ExitCode::SUCCESS)
}
