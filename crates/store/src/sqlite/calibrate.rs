//! What this machine's disk and SQLite give, measured the way the store commits: the
//! yardstick that makes ingest figures from different machines comparable
//! (`waybill bench machine`).

use super::{open_conn, SqliteOptions, Synchronous};
use crate::StoreError;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Commit rates of one SQLite file opened like the store's (WAL, the given `synchronous`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SqliteCalibration {
    /// Transactions of one row committed per second (one fsync each with `full`).
    pub single_row_commits_per_s: f64,
    /// Rows committed per second in transactions of [`BATCH_ROWS`] rows.
    pub batched_rows_per_s: f64,
    /// Transactions of one row committed during the measurement.
    pub single_row_commits: u64,
    /// Transactions of [`BATCH_ROWS`] rows committed during the measurement.
    pub batches: u64,
}

/// Why a calibration could not run.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The file it would create is there already; it is left alone.
    #[error("{0}: already exists; not overwriting it")]
    Exists(PathBuf),
    /// SQLite failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rows per transaction in the batched half of the measurement.
pub const BATCH_ROWS: u64 = 100;

/// A row as large as a small partner payload.
const ROW: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Measures single-row and batched commits for about `each` apiece in a new database file
/// `waybill-calibration-<pid>.db` in `dir`, removed afterwards with its WAL. A file of that
/// name already there is an error, never overwritten.
pub fn calibrate_sqlite(
    dir: &Path,
    synchronous: Synchronous,
    each: Duration,
) -> Result<SqliteCalibration, CalibrationError> {
    let path = dir.join(format!("waybill-calibration-{}.db", std::process::id()));
    if let Some(there) = db_files(&path).into_iter().find(|p| p.exists()) {
        return Err(CalibrationError::Exists(there));
    }
    let result = run(&path, synchronous, each);
    for p in db_files(&path) {
        let _ = std::fs::remove_file(p);
    }
    Ok(result?)
}

/// A database file with its WAL and shared-memory files.
fn db_files(path: &Path) -> [PathBuf; 3] {
    ["", "-wal", "-shm"].map(|suffix| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    })
}

fn run(
    path: &Path,
    synchronous: Synchronous,
    each: Duration,
) -> Result<SqliteCalibration, StoreError> {
    let mut opts = SqliteOptions::new(path);
    opts.synchronous = synchronous;
    let conn = open_conn(&opts)?;
    conn.execute_batch("CREATE TABLE rows (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")?;
    let mut insert = conn.prepare("INSERT INTO rows (v) VALUES (?1)")?;
    // Transactions of `n` rows, one after another, for at least `each` (and at least one).
    let mut measure = |n: u64| -> Result<(u64, Duration), StoreError> {
        let start = Instant::now();
        let mut done = 0u64;
        while done == 0 || start.elapsed() < each {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            for _ in 0..n {
                insert.execute([ROW])?;
            }
            conn.execute_batch("COMMIT")?;
            done += 1;
        }
        Ok((done, start.elapsed()))
    };
    let (single, t1) = measure(1)?;
    let (batches, t2) = measure(BATCH_ROWS)?;
    Ok(SqliteCalibration {
        single_row_commits_per_s: single as f64 / t1.as_secs_f64().max(1e-9),
        batched_rows_per_s: (batches * BATCH_ROWS) as f64 / t2.as_secs_f64().max(1e-9),
        single_row_commits: single,
        batches,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_measured_commit_is_in_the_file_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("measured.db");
        let c = run(&path, Synchronous::Full, Duration::from_millis(50)).unwrap();
        assert!(c.single_row_commits >= 1 && c.batches >= 1);
        assert!(c.single_row_commits_per_s > 0.0 && c.batched_rows_per_s > 0.0);
        // What was counted was committed: a fresh connection sees every row.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM rows", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows as u64, c.single_row_commits + c.batches * BATCH_ROWS);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let before = names(dir.path());
        calibrate_sqlite(dir.path(), Synchronous::Full, Duration::from_millis(10)).unwrap();
        assert_eq!(names(dir.path()), before, "calibration files left behind");
        // A file of the name it would use is never touched.
        let theirs = dir
            .path()
            .join(format!("waybill-calibration-{}.db-wal", std::process::id()));
        std::fs::write(&theirs, b"someone's data").unwrap();
        let e =
            calibrate_sqlite(dir.path(), Synchronous::Full, Duration::from_millis(10)).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(std::fs::read(&theirs).unwrap(), b"someone's data");
    }
}
