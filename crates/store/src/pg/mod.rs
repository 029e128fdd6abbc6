//! PostgreSQL backend: the same single writer with group commit as the SQLite backend
//! (one thread, one connection, many jobs per transaction), readers on a small pool of
//! connections, and what several hub processes sharing one database need:
//!
//! - every write transaction takes one transaction-level advisory lock first, so the
//!   writers of all instances commit one after the other: a lane's sequence numbers stay
//!   dense and ordered, and outbox ids grow in commit order (a dispatcher reading `id >
//!   cursor` never skips a row committed late), whichever instance ingested;
//! - a transaction that created outbox rows sends a `NOTIFY`; each instance listens on
//!   its own connection and wakes its dispatchers, so rows ingested elsewhere are
//!   delivered without polling.
//!
//! Each store lives in one schema (`public` by default): tests and several hubs on one
//! database use their own.

mod ahead;
mod audit;
mod control;
mod flow;
mod keys;
mod lease;
mod outbox;
mod read;
mod retention;
mod schema;
mod tx;

pub use schema::LATEST as PG_SCHEMA_VERSION;

use crate::writer::{JobCtx, Rules, Writer, WriterConn};
use crate::{IngestOutcome, IngestRecord, StoreError};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use waybill_model::ownership::Ownership;

/// How to open the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// libpq-style connection string or URL (`postgres://user@host:5432/db`).
    pub url: String,
    /// Schema holding the tables (created when missing).
    pub schema: String,
    /// Reader connections.
    pub readers: usize,
    /// Most jobs committed in one transaction.
    pub max_batch: usize,
}

impl PgOptions {
    /// Defaults: schema `public`, 4 readers, batches of up to 1024 jobs.
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            schema: "public".into(),
            readers: 4,
            max_batch: 1024,
        }
    }
}

/// Whether a schema name can be used as is (it is put into SQL as an identifier).
fn valid_schema(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// A parameter of a deferred statement (owned: it is sent later).
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// A connection with its prepared statements, in the store's schema.
///
/// Statements whose result nobody reads (the writes an ingest batch kept: see [`ahead`])
/// are deferred: they are sent together with the next statement that is read, or before
/// the commit, in one pipeline (tokio-postgres sends every request of futures polled together
/// before reading the answers), so they cost no round trip of their own. A deferred
/// statement that fails makes the statement it went with, or the commit, fail: the job or
/// the batch is not acknowledged.
pub(crate) struct PgConn {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    stmts: HashMap<&'static str, Statement>,
    opts: Arc<PgOptions>,
    deferred: Vec<(Statement, Vec<Param>)>,
    /// The writer's transaction opening (`BEGIN` and its advisory lock), sent with the
    /// first statement of the batch rather than in a round trip of its own.
    begin: Option<String>,
    /// The writer's batch: rows read ahead and writes kept (see [`ahead`]).
    ahead: ahead::Ahead,
    /// Whether the last `commit` failed in the writes sent with it (not in `COMMIT`).
    writes_failed: bool,
    /// Set while the statements sent are the ingest transaction's own, or a job's that
    /// leaves the rows read ahead alone: they are kept. Any other statement makes the
    /// batch forget them (it may have changed them).
    keep: bool,
}

/// What the store's connections are called in `pg_stat_activity`.
pub fn application_name(schema: &str) -> String {
    format!("waybill {schema}")
}

/// A blocking client in the store's schema (migrations, maintenance).
fn connect_blocking(opts: &PgOptions) -> Result<Client, StoreError> {
    if !valid_schema(&opts.schema) {
        return Err(StoreError::Corrupt(format!(
            "schema `{}`: use lower-case letters, digits and `_` (at most 63)",
            opts.schema
        )));
    }
    let mut cfg: postgres::Config = opts.url.parse()?;
    cfg.application_name(&application_name(&opts.schema));
    let mut client = cfg.connect(NoTls)?;
    let create = format!("CREATE SCHEMA IF NOT EXISTS {}", opts.schema);
    if let Err(e) = client.batch_execute(&create) {
        // Instances starting together race to create it: one wins, the others see a
        // unique violation, and the schema exists either way.
        if e.code() != Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
            return Err(e.into());
        }
    }
    client.batch_execute(&format!("SET search_path TO {}", opts.schema))?;
    Ok(client)
}

impl PgConn {
    fn connect(opts: &Arc<PgOptions>) -> Result<PgConn, StoreError> {
        if !valid_schema(&opts.schema) {
            return Err(StoreError::Corrupt(format!(
                "schema `{}`: use lower-case letters, digits and `_` (at most 63)",
                opts.schema
            )));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Corrupt(format!("cannot start a runtime: {e}")))?;
        let mut cfg: tokio_postgres::Config = opts.url.parse()?;
        cfg.application_name(application_name(&opts.schema));
        let (client, connection) = rt.block_on(cfg.connect(NoTls))?;
        // Driven whenever the runtime runs (inside each `block_on`).
        rt.spawn(async move {
            let _ = connection.await;
        });
        rt.block_on(client.batch_execute(&format!("SET search_path TO {}", opts.schema)))?;
        Ok(PgConn {
            rt,
            client,
            stmts: HashMap::new(),
            opts: opts.clone(),
            deferred: Vec::new(),
            begin: None,
            ahead: ahead::Ahead::default(),
            writes_failed: false,
            keep: false,
        })
    }

    /// Connects again when the connection was lost (a database restart or failover).
    fn revive(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            *self = PgConn::connect(&self.opts)?;
        }
        Ok(())
    }

    fn st(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.rt.block_on(self.client.prepare(sql))?;
        self.stmts.insert(sql, s.clone());
        Ok(s)
    }

    /// The statements to send before the next one: the deferred ones, after the batch's
    /// kept writes (see [`ahead`]); forgets the rows read ahead unless they are kept.
    fn take_deferred(&mut self) -> Result<Outgoing, StoreError> {
        if self.ahead.has_writes() {
            let mut writes = Vec::new();
            for (sql, params) in self.ahead.writes() {
                writes.push((self.st(sql)?, params));
            }
            writes.append(&mut self.deferred);
            self.deferred = writes;
        }
        if !self.keep {
            self.ahead.forget();
        }
        Ok(Outgoing {
            begin: self.begin.take(),
            deferred: std::mem::take(&mut self.deferred),
        })
    }

    /// Runs `f`, whose statements leave the tables the batch reads ahead (shipments,
    /// events, aliases, observations) alone, keeping what was read ahead.
    pub(crate) fn keeping<T>(&mut self, f: impl FnOnce(&mut PgConn) -> T) -> T {
        let before = std::mem::replace(&mut self.keep, true);
        let out = f(self);
        self.keep = before;
        out
    }

    /// Runs a cached statement; returns the rows it changed.
    pub(crate) fn exec(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let st = self.st(sql)?;
        let deferred = self.take_deferred()?;
        pipelined(
            &self.rt,
            &self.client,
            deferred,
            self.client.execute(&st, params),
        )
    }

    /// Runs a cached query.
    pub(crate) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let st = self.st(sql)?;
        let deferred = self.take_deferred()?;
        pipelined(
            &self.rt,
            &self.client,
            deferred,
            self.client.query(&st, params),
        )
    }

    /// Runs two cached queries in one pipeline (the second must not depend on the first).
    pub(crate) fn query_both(
        &mut self,
        first: (&'static str, &[&(dyn ToSql + Sync)]),
        second: (&'static str, &[&(dyn ToSql + Sync)]),
    ) -> Result<(Vec<Row>, Vec<Row>), StoreError> {
        let (a, b) = (self.st(first.0)?, self.st(second.0)?);
        let deferred = self.take_deferred()?;
        let both = futures::future::try_join(
            self.client.query(&a, first.1),
            self.client.query(&b, second.1),
        );
        pipelined(&self.rt, &self.client, deferred, both)
    }

    /// Runs a cached query expecting at most one row.
    pub(crate) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs SQL text (no parameters, several statements allowed).
    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let deferred = self.take_deferred()?;
        pipelined(
            &self.rt,
            &self.client,
            deferred,
            self.client.batch_execute(sql),
        )
    }

    /// Key of the advisory lock every write transaction of this schema takes.
    fn write_lock(&self) -> i64 {
        // One lock per store, whatever the instance.
        crate::lease::fnv1a(
            b"waybill.writer:"
                .iter()
                .chain(self.opts.schema.as_bytes())
                .copied(),
        ) as i64
    }
}

/// What goes before the next statement: the transaction's opening if not sent yet, then
/// the deferred statements.
struct Outgoing {
    begin: Option<String>,
    deferred: Vec<(Statement, Vec<Param>)>,
}

/// A future that sends what is `out`going, in order, when first polled, and waits for
/// the answers.
fn send<'a>(
    client: &'a tokio_postgres::Client,
    out: &'a Outgoing,
) -> impl std::future::Future<Output = Result<(), tokio_postgres::Error>> + 'a {
    let opened = async move {
        match &out.begin {
            Some(sql) => client.batch_execute(sql).await,
            None => Ok(()),
        }
    };
    let sent = futures::future::try_join_all(out.deferred.iter().map(|(st, params)| {
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        async move { client.execute(st, &refs).await }
    }));
    let both = futures::future::try_join(opened, sent);
    async move { both.await.map(|_| ()) }
}

/// Runs `fut` with what is `out`going sent before it in the same pipeline.
fn pipelined<T>(
    rt: &tokio::runtime::Runtime,
    client: &tokio_postgres::Client,
    out: Outgoing,
    fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    if out.begin.is_none() && out.deferred.is_empty() {
        return Ok(rt.block_on(fut)?);
    }
    // Polled in this order, so sent in this order.
    let (_, r) = rt.block_on(futures::future::try_join(send(client, &out), fut))?;
    Ok(r)
}

/// The channel outbox notifications of a schema go to.
fn channel(schema: &str) -> String {
    format!("waybill_outbox_{schema}")
}

/// The channel changes of a schema's subscriptions and sink controls are announced on.
fn control_channel(schema: &str) -> String {
    format!("waybill_control_{schema}")
}

impl WriterConn for PgConn {
    fn begin(&mut self) -> Result<(), StoreError> {
        self.revive()?;
        self.deferred.clear();
        self.ahead = ahead::Ahead::default();
        self.keep = false;
        // Sent with the batch's first statement.
        self.begin = Some(format!(
            "BEGIN; SELECT pg_advisory_xact_lock({})",
            self.write_lock()
        ));
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        let out = self.take_deferred()?;
        if out.begin.is_some() && out.deferred.is_empty() {
            // Nothing was written: there is no transaction to end.
            return Ok(());
        }
        // The kept writes, the notification and COMMIT in one pipeline. A write that
        // fails makes this fail (PostgreSQL turns the COMMIT after it into a rollback):
        // the batch is not acknowledged as it is, and the writer runs its jobs again one
        // by one (see `commit_failed_in_writes`).
        let client = &self.client;
        // Both polled at once (so sent in one pipeline, in this order), both awaited.
        let (written, committed) = self.rt.block_on(futures::future::join(
            send(client, &out),
            client.batch_execute("COMMIT"),
        ));
        // Only an error the server reported is sure to have rolled the transaction back
        // (a lost connection leaves unknown whether the COMMIT went through): then alone
        // may the jobs run again.
        self.writes_failed = matches!(&written, Err(e) if e.as_db_error().is_some());
        written?;
        Ok(committed?)
    }

    fn commit_failed_in_writes(&self) -> bool {
        self.writes_failed
    }

    fn read_ahead(&mut self, batch: &[&crate::prepare::Prepared]) -> Result<(), StoreError> {
        ahead::read_ahead(self, batch)
    }

    fn rollback(&mut self) {
        self.deferred.clear();
        self.ahead = ahead::Ahead::default();
        self.keep = false;
        if self.begin.take().is_none() {
            let _ = self.batch("ROLLBACK");
        }
    }

    fn announce(&mut self) -> Result<(), StoreError> {
        // Sent with the COMMIT.
        let st = self.st("SELECT pg_notify($1, '')")?;
        self.deferred
            .push((st, vec![Box::new(channel(&self.opts.schema))]));
        Ok(())
    }
}

struct Inner {
    writer: Writer<PgConn>,
    readers: Vec<Mutex<PgConn>>,
    next_reader: std::sync::atomic::AtomicUsize,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A blocking client closes its connection on drop by blocking on its own runtime,
        // which it may not do on a thread driving async tasks (where the last handle to
        // the store usually goes): the readers are dropped on a thread of their own.
        let readers = std::mem::take(&mut self.readers);
        let _ = std::thread::Builder::new()
            .name("waybill-pg-close".into())
            .spawn(move || drop(readers));
    }
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

/// Runs pending migrations; returns (from, to) versions. Blocks the calling thread
/// (the work runs on a thread of its own, so any thread may call it).
pub fn migrate_pg(opts: &PgOptions) -> Result<(u32, u32), StoreError> {
    let opts = Arc::new(opts.clone());
    std::thread::spawn(move || schema::migrate(&mut connect_blocking(&opts)?))
        .join()
        .map_err(|_| StoreError::Closed)?
}

/// Drops the store's schema with every table in it (the bench's and tests' throw-away
/// stores). Blocks the calling thread, like [`migrate_pg`].
pub fn drop_pg_schema(opts: &PgOptions) -> Result<(), StoreError> {
    let opts = Arc::new(opts.clone());
    std::thread::spawn(move || {
        if !valid_schema(&opts.schema) || opts.schema == "public" {
            return Err(StoreError::Corrupt(format!(
                "schema `{}` is not one to drop",
                opts.schema
            )));
        }
        let mut client = Client::connect(&opts.url, NoTls)?;
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", opts.schema))?;
        Ok(())
    })
    .join()
    .map_err(|_| StoreError::Closed)?
}

impl PgStore {
    /// Connects, runs migrations, starts the writer thread and the listener.
    pub async fn open(opts: PgOptions) -> Result<PgStore, StoreError> {
        let opts = Arc::new(opts);
        let o = opts.clone();
        let (writer_conn, readers) = tokio::task::spawn_blocking(move || {
            schema::migrate(&mut connect_blocking(&o)?)?;
            let w = PgConn::connect(&o)?;
            let readers = (0..o.readers.max(1))
                .map(|_| PgConn::connect(&o).map(Mutex::new))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, StoreError>((w, readers))
        })
        .await
        .map_err(|_| StoreError::Closed)??;
        let writer = Writer::start(writer_conn, "waybill-pg-writer", opts.max_batch)?;
        let stop = Arc::new(AtomicBool::new(false));
        let store = PgStore {
            inner: Arc::new(Inner {
                writer,
                readers,
                next_reader: Default::default(),
                stop: stop.clone(),
            }),
        };
        let weak = Arc::downgrade(&store.inner);
        std::thread::Builder::new()
            .name("waybill-pg-listen".into())
            .spawn(move || listen(opts, stop, weak))
            .map_err(|e| StoreError::Corrupt(format!("cannot start listener thread: {e}")))?;
        store.load_config().await?;
        Ok(store)
    }

    /// Runs `f` inside the next group-committed transaction; answers after the commit.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut PgConn, &mut JobCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }

    /// Runs `f` on a reader connection in the blocking pool.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConn) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let n = inner.readers.len();
            let start = inner.next_reader.fetch_add(1, Ordering::Relaxed);
            let mut guard = None;
            for i in 0..n {
                if let Ok(g) = inner.readers[(start + i) % n].try_lock() {
                    guard = Some(g);
                    break;
                }
            }
            let mut conn = match guard {
                Some(g) => g,
                None => inner.readers[start % n]
                    .lock()
                    .map_err(|_| StoreError::Corrupt("reader lock poisoned".into()))?,
            };
            conn.revive()?;
            f(&mut conn)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    pub(crate) fn set_ownership(&self, ownership: Ownership) -> Result<(), StoreError> {
        self.inner.writer.set_rules(|r| Rules {
            subs: r.subs.clone(),
            ownership,
            subs_version: r.subs_version,
        })
    }

    pub(crate) fn ownership(&self) -> Ownership {
        self.inner.writer.rules().ownership.clone()
    }

    pub(crate) async fn ingest(&self, rec: IngestRecord) -> Result<IngestOutcome, StoreError> {
        let prepared = Arc::new(crate::prepare::prepare(rec)?);
        let job = prepared.clone();
        let stored = self
            .inner
            .writer
            .write_ahead(prepared.clone(), move |c, ctx| tx::ingest(c, &job, ctx))
            .await?;
        Ok(stored.outcome(&prepared))
    }

    pub(crate) async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            Ok(
                c.query_opt("SELECT value FROM cursors WHERE name = $1", &[&name])?
                    .map(|r| r.get(0)),
            )
        })
        .await
    }

    pub(crate) async fn set_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.write(move |c, _| {
            c.exec(
                "INSERT INTO cursors (name, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                &[&name, &value, &crate::codec::to_us(time::OffsetDateTime::now_utc())],
            )?;
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
            c.exec(
                "DELETE FROM cursors WHERE name = $1",
                &[&crate::PROBE_CURSOR],
            )?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        // Through the writer: ready means writes commit, not only that reads answer.
        self.write(|c, _| {
            c.batch("SELECT 1")?;
            Ok(())
        })
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
        self.inner.stop.store(true, Ordering::Relaxed);
        self.inner.writer.close().await;
    }
}

/// Listens for outbox notifications of other instances and wakes this one's dispatchers;
/// reconnects after a lost connection (and wakes them then, for what it may have missed).
/// It also listens for changes of the subscriptions and sink controls, and compares the
/// store's `config_version` with the one in force every second (for a notification sent
/// while it was not connected): a newer configuration is read and put in force.
fn listen(opts: Arc<PgOptions>, stop: Arc<AtomicBool>, store: std::sync::Weak<Inner>) {
    const CHECK_EVERY: Duration = Duration::from_secs(1);
    let control = control_channel(&opts.schema);
    while !stop.load(Ordering::Relaxed) {
        let mut client = match connect_blocking(&opts) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "outbox listener cannot connect; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let listen = format!("LISTEN {}; LISTEN {control}", channel(&opts.schema));
        if let Err(e) = client.batch_execute(&listen) {
            tracing::warn!(error = %e, "outbox listener cannot LISTEN; retrying");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        match store.upgrade() {
            Some(inner) => {
                inner.writer.poke();
                refresh_config(&mut client, &inner, false);
            }
            None => return,
        }
        let mut checked = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) && !client.is_closed() {
            let mut changed = false;
            {
                let mut n = client.notifications();
                let mut it = n.timeout_iter(Duration::from_millis(500));
                while let Ok(Some(note)) =
                    postgres::fallible_iterator::FallibleIterator::next(&mut it)
                {
                    if note.channel() == control {
                        changed = true;
                        break;
                    }
                    match store.upgrade() {
                        Some(inner) => inner.writer.poke(),
                        None => return,
                    }
                    if checked.elapsed() >= CHECK_EVERY {
                        break;
                    }
                }
            }
            if changed || checked.elapsed() >= CHECK_EVERY {
                checked = std::time::Instant::now();
                match store.upgrade() {
                    Some(inner) => refresh_config(&mut client, &inner, changed),
                    None => return,
                }
            }
        }
    }
}

/// Puts the store's configuration in force when it is newer than the one in force
/// (`known`: it is, a notification said so).
fn refresh_config(client: &mut Client, inner: &Inner, known: bool) {
    let result = (|| -> Result<(), StoreError> {
        if !known {
            let v: i64 = client
                .query_opt("SELECT version FROM config_version WHERE id = 1", &[])?
                .map(|r| r.get(0))
                .unwrap_or(0);
            if v <= inner.writer.rules().subs_version {
                return Ok(());
            }
        }
        let config = control::config_from(&client.query(control::READ_CONFIG, &[])?)?;
        inner.writer.apply_config(config);
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot read the subscriptions changed by another instance; will retry");
    }
}
