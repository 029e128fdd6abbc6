//! SQLite backend: one writer thread doing group commit (see [`crate::writer`]; each
//! commit fsyncs with `synchronous=FULL`), a small pool of readers, and a helper thread
//! that checkpoints the WAL.

mod audit;
mod calibrate;
mod control;
mod flow;
mod keys;
mod outbox;
mod read;
mod retention;
pub(crate) mod schema;
mod sequencer;
mod tx;

pub use calibrate::{calibrate_sqlite, CalibrationError, SqliteCalibration, BATCH_ROWS};

use crate::codec::to_us;
use crate::view::{StoredEvent, StoredPayload};
use crate::writer::{JobCtx, Rules, Writer, WriterConn};
use crate::{IngestOutcome, IngestRecord, StoreError};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use time::OffsetDateTime;
use tokio::sync::watch;
use waybill_model::ownership::Ownership;

/// SQLite `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync on every commit (default; an acknowledged event survives power loss).
    Full,
    /// fsync at checkpoints only (survives a process crash, not a power loss).
    Normal,
}

/// SQLite's own upper limit of `mmap_size` (SQLITE_MAX_MMAP_SIZE), the default.
pub(crate) const DEFAULT_MMAP_SIZE: u64 = 0x7fff_0000;

/// How to open the SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Database file.
    pub path: PathBuf,
    /// Durability level.
    pub synchronous: Synchronous,
    /// Most jobs committed in one transaction.
    pub max_batch: usize,
    /// Reader connections.
    pub readers: usize,
    /// WAL frames (pages) after which the writer checkpoints the WAL itself (SQLite's
    /// `wal_autocheckpoint`); 0 is treated as 1.
    pub checkpoint_pages: u32,
    /// Bytes of the database file each connection reads through a memory map (SQLite's
    /// `mmap_size`, at most ~2 GiB); 0 reads with `pread` only.
    pub mmap_size: u64,
    /// Page cache of each connection, KiB.
    pub cache_kib: u32,
}

impl SqliteOptions {
    /// WAL pages between the writer's own checkpoints, by default.
    pub const DEFAULT_CHECKPOINT_PAGES: u32 = 4000;

    /// Defaults for a file: synchronous=FULL, batches of up to 1024 jobs, 4 readers, a
    /// checkpoint by the writer every 4,000 WAL pages (16 MiB with 4 KiB pages: hot pages
    /// written by many commits are copied into the database once per checkpoint, not once
    /// per 1,000 frames), the file memory-mapped and a 2 MiB page cache per connection.
    ///
    /// Why a small cache with a memory map: at every commit SQLite walks the writer's
    /// whole page cache (b-tree balancing renumbers a page through the lock-byte page for
    /// a moment, so the cache's highest page number stays above the end of the file and
    /// its truncation at commit scans every entry), and with SQLite's shared page-cache
    /// group the writer's cache grows to the sum of all connections' limits. On a database
    /// of a few hundred thousand events that walk was a third of the writer thread. A
    /// small cache keeps it short, and the memory map makes the extra misses a copy from
    /// the OS page cache instead of a `pread` each (BENCHMARKS.md, "Session 5").
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteOptions {
            path: path.into(),
            synchronous: Synchronous::Full,
            max_batch: 1024,
            readers: 4,
            checkpoint_pages: Self::DEFAULT_CHECKPOINT_PAGES,
            mmap_size: DEFAULT_MMAP_SIZE,
            cache_kib: 2048,
        }
    }
}

struct Inner {
    writer: Writer<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
    checkpoint_stop: Mutex<Option<mpsc::Sender<()>>>,
}

impl WriterConn for Connection {
    fn begin(&mut self) -> Result<(), StoreError> {
        Ok(self.execute_batch("BEGIN IMMEDIATE")?)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        Ok(self.execute_batch("COMMIT")?)
    }

    fn rollback(&mut self) {
        let _ = self.execute_batch("ROLLBACK");
    }
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

fn open_conn(opts: &SqliteOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        &opts.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match opts.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    // Small on purpose: see `SqliteOptions::new`.
    conn.pragma_update(None, "cache_size", -i64::from(opts.cache_kib.max(64)))?;
    conn.pragma_update(
        None,
        "mmap_size",
        i64::try_from(opts.mmap_size).unwrap_or(i64::MAX),
    )?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Runs pending migrations on the database file; returns (from, to) versions.
pub fn migrate_file(opts: &SqliteOptions) -> Result<(u32, u32), StoreError> {
    let mut conn = open_conn(opts)?;
    schema::migrate(&mut conn)
}

impl SqliteStore {
    /// Opens the file, runs migrations, starts the writer thread.
    pub async fn open(opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let o = opts.clone();
        let (writer_conn, readers) = tokio::task::spawn_blocking(move || {
            let mut w = open_conn(&o)?;
            schema::migrate(&mut w)?;
            let readers = (0..o.readers.max(1))
                .map(|_| open_conn(&o).map(Mutex::new))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, StoreError>((w, readers))
        })
        .await
        .map_err(|_| StoreError::Closed)??;
        // The writer checkpoints the WAL itself every `checkpoint_pages` frames: only a
        // writer can restart the WAL, so without that, under sustained writes, the WAL
        // grows without bound (a helper connection alone never catches up).
        writer_conn.pragma_update(None, "wal_autocheckpoint", opts.checkpoint_pages.max(1))?;
        // A helper connection copies WAL frames into the database in between (PASSIVE: it
        // never blocks the writer), so the writer's own checkpoints find little left to do.
        let helper = open_conn(&opts)?;
        let (cp_tx, cp_rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("waybill-sqlite-checkpoint".into())
            .spawn(move || {
                // Until the store closes (the sender is dropped).
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    cp_rx.recv_timeout(std::time::Duration::from_millis(50))
                {
                    let _ = helper.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start checkpoint thread: {e}")))?;
        let writer = Writer::start(writer_conn, "waybill-sqlite-writer", opts.max_batch)?;
        let store = SqliteStore {
            inner: Arc::new(Inner {
                writer,
                readers,
                next_reader: Default::default(),
                checkpoint_stop: Mutex::new(Some(cp_tx)),
            }),
        };
        store.load_config().await?;
        Ok(store)
    }

    /// Runs `f` inside the next group-committed transaction; answers after the commit
    /// (see [`crate::writer`]).
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut Connection, &mut JobCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }

    /// Runs `f` on a reader connection in the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let n = inner.readers.len();
            let start = inner
                .next_reader
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for i in 0..n {
                if let Ok(conn) = inner.readers[(start + i) % n].try_lock() {
                    return f(&conn);
                }
            }
            let conn = inner.readers[start % n]
                .lock()
                .map_err(|_| StoreError::Corrupt("reader lock poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Sets the ownership rules the writer settles facts with (at start-up).
    pub(crate) fn set_ownership(&self, ownership: Ownership) -> Result<(), StoreError> {
        self.inner.writer.set_rules(|r| Rules {
            subs: r.subs.clone(),
            ownership,
            subs_version: r.subs_version,
        })
    }

    /// The ownership rules in force.
    pub(crate) fn ownership(&self) -> Ownership {
        self.inner.writer.rules().ownership.clone()
    }

    pub(crate) async fn ingest(&self, rec: IngestRecord) -> Result<IngestOutcome, StoreError> {
        let prepared = Arc::new(crate::prepare::prepare(rec)?);
        let job = prepared.clone();
        let stored = self
            .write(move |conn, ctx| sequencer::ingest(conn, &job, ctx))
            .await?;
        Ok(stored.outcome(&prepared))
    }

    pub(crate) async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT value FROM cursors WHERE name = ?1")?
                    .query_row([name], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }

    pub(crate) async fn set_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.write(move |c, _| {
            c.prepare_cached(
                "INSERT INTO cursors (name, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )?
            .execute(rusqlite::params![name, value, to_us(OffsetDateTime::now_utc())])?;
            Ok(())
        })
        .await
    }

    pub(crate) fn storage_full(&self) -> bool {
        self.inner.writer.storage_full()
    }

    pub(crate) async fn probe_write(&self) -> Result<(), StoreError> {
        if !self.inner.writer.probe_due() {
            return match self.storage_full() {
                true => Err(StoreError::StorageFull(
                    "probed less than a second ago".into(),
                )),
                false => Ok(()),
            };
        }
        self.set_cursor(crate::PROBE_CURSOR, &crate::probe_value())
            .await?;
        self.write(|c, _| {
            c.prepare_cached("DELETE FROM cursors WHERE name = ?1")?
                .execute([crate::PROBE_CURSOR])?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    pub(crate) fn outbox_signal(&self) -> watch::Receiver<u64> {
        self.inner.writer.signal()
    }

    pub(crate) fn config_signal(&self) -> watch::Receiver<i64> {
        self.inner.writer.config_signal()
    }

    pub(crate) fn subscriptions_in_force(&self) -> Vec<crate::Subscription> {
        self.inner.writer.rules().subs.clone()
    }

    pub(crate) async fn close(&self) {
        if let Ok(mut g) = self.inner.checkpoint_stop.lock() {
            g.take();
        }
        self.inner.writer.close().await;
    }
}

/// A stored event from the columns `body, encoding, shipment_seq, inbox_id` of
/// `events`, read from column `at` on.
pub(crate) fn stored_event(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredEvent> {
    use rusqlite::types::ValueRef;
    Ok(StoredEvent {
        body: match r.get_ref(at)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
            _ => Vec::new(),
        },
        encoding: r.get(at + 1)?,
        seq: r.get(at + 2)?,
        inbox_id: r.get(at + 3)?,
    })
}

/// An inbox row's stored body and encoding; None when the row is gone.
pub(crate) fn payload(c: &Connection, id: i64) -> Result<Option<StoredPayload>, StoreError> {
    Ok(
        c.prepare_cached("SELECT body, encoding FROM inbox WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// (mmap_size, cache_size) as one connection sees them.
    fn settings(c: &Connection) -> Result<(i64, i64), StoreError> {
        let m = c.query_row("PRAGMA mmap_size", [], |r| r.get(0))?;
        let k = c.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
        Ok((m, k))
    }

    /// A body worth compressing is stored LZ4-compressed and read back byte for byte;
    /// a short or incompressible one is stored as received.
    #[tokio::test]
    async fn large_bodies_are_stored_compressed_and_read_back_exactly() {
        use crate::{InboxQuery, IngestRecord, Verdict};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(SqliteOptions::new(dir.path().join("a.db")))
            .await
            .unwrap();
        let lines: Vec<String> = (0..40)
            .map(|i| {
                format!(
                    r#"{{"line":{i},"sku":"SKU-{i:05}","description":"Shelf bracket","qty":4}}"#
                )
            })
            .collect();
        let big = format!(r#"{{"lines":[{}]}}"#, lines.join(",")).into_bytes();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        for (key, body) in [
            ("big", big.clone()),
            ("small", b"{}".to_vec()),
            ("noise", noise.clone()),
        ] {
            store
                .ingest(IngestRecord {
                    source: "s".into(),
                    idempotency_key: key.into(),
                    received_at: OffsetDateTime::now_utc(),
                    headers: vec![],
                    body,
                    verdict: Verdict::Rejected {
                        code: "mapping.runtime".into(),
                        reason: "kept".into(),
                    },
                })
                .await
                .unwrap();
        }
        let stored: Vec<(String, i64, Option<String>)> = store
            .read(|c| {
                let mut st = c.prepare(
                    "SELECT idempotency_key, length(body), encoding FROM inbox ORDER BY id",
                )?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(stored[0].2.as_deref(), Some("lz4"));
        assert!(
            stored[0].1 * 3 < big.len() as i64,
            "{stored:?} for {} bytes",
            big.len()
        );
        assert_eq!((stored[1].2.as_deref(), stored[1].1), (None, 2));
        assert_eq!(stored[2].2, None, "incompressible: as received");
        let back = store
            .inbox(InboxQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let by_key = |k: &str| {
            back.iter()
                .find(|r| r.idempotency_key == k)
                .unwrap()
                .body
                .clone()
        };
        assert_eq!(by_key("big").into_bytes(), big);
        assert_eq!(by_key("small"), "{}");
        store.close().await;
    }

    /// The writer and the readers run with the configured memory map and page cache
    /// (the defaults: SQLite's largest map, 2 MiB), and a map of 0 turns it off.
    #[tokio::test]
    async fn connections_use_the_configured_map_and_cache() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(SqliteOptions::new(dir.path().join("a.db")))
            .await
            .unwrap();
        let w = store.write(|c, _| settings(c)).await.unwrap();
        let r = store.read(settings).await.unwrap();
        assert_eq!(w, (DEFAULT_MMAP_SIZE as i64, -2048));
        assert_eq!(r, w);
        store.close().await;

        let mut opts = SqliteOptions::new(dir.path().join("b.db"));
        opts.mmap_size = 0;
        opts.cache_kib = 8192;
        let store = SqliteStore::open(opts).await.unwrap();
        assert_eq!(store.write(|c, _| settings(c)).await.unwrap(), (0, -8192));
        assert_eq!(store.read(settings).await.unwrap(), (0, -8192));
        store.close().await;
    }

    /// The writer checkpoints after the configured number of WAL pages.
    #[tokio::test]
    async fn the_writer_checkpoints_after_the_configured_pages() {
        let dir = tempfile::tempdir().unwrap();
        let pages = |c: &mut Connection, _: &mut JobCtx<'_>| -> Result<i64, StoreError> {
            Ok(c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?)
        };
        let store = SqliteStore::open(SqliteOptions::new(dir.path().join("a.db")))
            .await
            .unwrap();
        let default = i64::from(SqliteOptions::DEFAULT_CHECKPOINT_PAGES);
        assert_eq!(store.write(pages).await.unwrap(), default);
        store.close().await;
        let mut opts = SqliteOptions::new(dir.path().join("b.db"));
        opts.checkpoint_pages = 16_000;
        let store = SqliteStore::open(opts).await.unwrap();
        assert_eq!(store.write(pages).await.unwrap(), 16_000);
        store.close().await;
    }
}
