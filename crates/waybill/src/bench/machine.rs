//! `waybill bench machine`: what this machine gives, so that ingest figures measured on
//! different machines can be compared. Three yardsticks, each of one resource the hub
//! spends: the disk (SQLite commits, as the store makes them), the loopback HTTP path
//! (the bench client against a trivial endpoint: the ceiling), and one core (the bench
//! source's jq mapping).

use super::{Plan, Report, MAPPING, SECRET};
use std::path::Path;
use std::time::{Duration, Instant};
use waybill_mapping::{Payload, Program};
use waybill_store::{calibrate_sqlite, SqliteCalibration, Synchronous};

/// What `machine` measured.
#[derive(Debug, Clone)]
pub struct Machine {
    /// SQLite commits with `synchronous=full`.
    pub sqlite: SqliteCalibration,
    /// The bench client against the trivial endpoint.
    pub ceiling: Report,
    /// Microseconds of one core per payload for the bench mapping (parse + run).
    pub mapping_us: f64,
}

/// A payload like the ones `bench ingest` sends.
const PAYLOAD: &[u8] = br#"{"id":"m-1","shipment":"M-1","status":"shipment.in_transit","at":"2026-11-23T10:00:00Z","tracking":"1Z999"}"#;

/// Measures the three yardsticks: SQLite in `dir` for about `each` per half, the ceiling
/// with `requests` requests over `concurrency` connections, the mapping for about `each`.
pub async fn measure(
    dir: &Path,
    each: Duration,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<Machine> {
    let d = dir.to_path_buf();
    let sqlite = tokio::task::spawn_blocking(move || calibrate_sqlite(&d, Synchronous::Full, each))
        .await??;
    let base = super::start_ceiling().await?;
    let ceiling = super::run(&Plan {
        profile: super::Profile::Minimal,
        url: format!("{base}/ceiling"),
        secret: SECRET.to_owned(),
        events: requests,
        shipments: 1_000,
        concurrency,
        rate: None,
        run_id: "machine".into(),
        cpu: super::CpuWatch::Off,
    })
    .await?;
    let mapping_us = tokio::task::spawn_blocking(move || mapping_cost(each)).await??;
    Ok(Machine {
        sqlite,
        ceiling,
        mapping_us,
    })
}

/// Microseconds per payload of parsing and mapping with the bench mapping, on one core.
fn mapping_cost(each: Duration) -> anyhow::Result<f64> {
    let prog = Program::compile(MAPPING).map_err(|e| anyhow::anyhow!("{e}"))?;
    let start = Instant::now();
    let mut n = 0u64;
    while n == 0 || start.elapsed() < each {
        for _ in 0..100 {
            let p = Payload::parse(PAYLOAD)?;
            let drafts = prog.run(&p, &[], "bench")?;
            anyhow::ensure!(
                drafts.len() == 1,
                "the bench mapping gave {} drafts",
                drafts.len()
            );
            std::hint::black_box(drafts);
        }
        n += 100;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn each_yardstick_measures_something() {
        let dir = tempfile::tempdir().unwrap();
        let m = measure(dir.path(), Duration::from_millis(20), 200, 4)
            .await
            .unwrap();
        assert!(m.sqlite.single_row_commits >= 1 && m.sqlite.batches >= 1);
        assert_eq!((m.ceiling.ok, m.ceiling.failed), (200, 0));
        assert!(m.ceiling.rate() > 0.0);
        assert!(m.mapping_us > 0.0 && m.mapping_us.is_finite());
    }
}
