//! The single writer of a store, whatever the backend: one thread owning one connection,
//! doing group commit.
//!
//! Every write is a job sent to the writer thread, which takes all jobs queued at that
//! moment, runs them in one transaction, commits, and only then answers each job. Many
//! concurrent requests therefore share one commit (one fsync), and none is answered
//! before its data is durable. If one job fails, the batch is rolled back and each job
//! runs again in a transaction of its own, so one bad write never fails the others.

use crate::prepare::Prepared;
use crate::{StoreError, Subscription};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use tokio::sync::{oneshot, watch};
use waybill_model::ownership::Ownership;

/// What a backend's writer connection does around the jobs of a batch.
pub(crate) trait WriterConn: Send + 'static {
    /// Opens the batch's transaction.
    fn begin(&mut self) -> Result<(), StoreError>;
    /// Commits it (durably: the answer to each job follows).
    fn commit(&mut self) -> Result<(), StoreError>;
    /// Rolls it back.
    fn rollback(&mut self);
    /// Inside the transaction, before the commit, when its jobs created outbox rows: tell
    /// other processes sharing the database (the SQLite store has none).
    fn announce(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// After a failed [`WriterConn::commit`]: whether one of the batch's writes was
    /// refused (a backend that sends some writes only with the commit) and the
    /// transaction is surely rolled back — the batch's jobs then run again one by one, so
    /// that the bad write fails only its own job.
    fn commit_failed_in_writes(&self) -> bool {
        false
    }
    /// Inside the transaction, before the batch's jobs run: the ingest records among
    /// them, for a backend that writes their inbox rows and reads what they need ahead
    /// (the SQLite store does not).
    fn read_ahead(&mut self, _batch: &[&Prepared]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Whether the database's storage is full, as the writer last saw it: set when a write
/// fails for lack of space (see [`StoreError::is_storage_full`]), cleared by the next
/// commit that succeeds.
#[derive(Debug, Default)]
pub(crate) struct Fullness {
    full: AtomicBool,
    /// When the last probe write was let through (see [`Writer::probe_due`]).
    last_probe: Mutex<Option<std::time::Instant>>,
}

impl Fullness {
    /// Whether the last outcome was a failure for lack of space.
    pub(crate) fn get(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    fn set(&self, full: bool) {
        if self.full.swap(full, Ordering::Relaxed) != full {
            if full {
                tracing::error!(
                    "the store's disk is full: writes are refused (507) until space returns"
                );
            } else {
                tracing::warn!("the store commits again: writes are accepted");
            }
        }
    }
}

/// The answer to a job whose transaction did not commit because of `e`.
fn not_committed(e: &StoreError) -> StoreError {
    if e.is_storage_full() {
        StoreError::StorageFull(e.to_string())
    } else {
        StoreError::NotCommitted(e.to_string())
    }
}

/// What the writer routes and settles with: the subscriptions and the ownership rules.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    pub subs: Vec<Subscription>,
    pub ownership: Ownership,
    /// The store's `config_version` the subscriptions were read at (a newer set replaces
    /// them, an older one never does).
    pub subs_version: i64,
}

/// Subscriptions as read in a transaction, at the store's `config_version`.
pub(crate) type Config = (i64, Vec<Subscription>);

/// What a write job may tell the writer besides its result.
pub(crate) struct JobCtx<'a> {
    /// Subscriptions to route with.
    pub subs: &'a [Subscription],
    /// Who owns which shipment fact.
    pub ownership: &'a Ownership,
    /// Set when the job created outbox rows: dispatchers are woken after the commit.
    pub created_outbox: bool,
    /// Set when the job changed the subscriptions or sink controls: the subscriptions it
    /// read back, in force from the next batch on (applied after the commit, before the
    /// job is answered).
    pub config: Option<Config>,
}

/// A write queued for the writer thread. It may run twice: once in the shared
/// transaction of its batch and, if some job of the batch failed and the batch was rolled
/// back, once more in a transaction of its own.
trait WriteJob<C>: Send {
    /// Runs inside the open transaction; returns whether it succeeded.
    fn run(&mut self, conn: &mut C, rules: &Rules) -> bool;
    /// Whether its last run created outbox rows.
    fn created_outbox(&self) -> bool;
    /// Whether its last run failed for lack of space.
    fn failed_full(&self) -> bool;
    /// The configuration its last run read back after changing it, if it did.
    fn take_config(&mut self) -> Option<Config>;
    /// The ingest record it writes, if it is an ingest (see [`WriterConn::read_ahead`]).
    fn ingest(&self) -> Option<&Prepared>;
    /// Answers the caller: its own result, or `err` when its transaction did not commit.
    fn finish(self: Box<Self>, err: Option<&StoreError>);
}

type Job<C> = Box<dyn WriteJob<C>>;

struct Pending<T, F> {
    f: F,
    result: Option<Result<T, StoreError>>,
    created_outbox: bool,
    config: Option<Config>,
    ingest: Option<Arc<Prepared>>,
    tx: oneshot::Sender<Result<T, StoreError>>,
}

impl<C, T, F> WriteJob<C> for Pending<T, F>
where
    T: Send,
    F: FnMut(&mut C, &mut JobCtx<'_>) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &mut C, rules: &Rules) -> bool {
        let mut ctx = JobCtx {
            subs: &rules.subs,
            ownership: &rules.ownership,
            created_outbox: false,
            config: None,
        };
        let r = (self.f)(conn, &mut ctx);
        self.created_outbox = ctx.created_outbox;
        self.config = ctx.config;
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn created_outbox(&self) -> bool {
        self.created_outbox
    }

    fn failed_full(&self) -> bool {
        matches!(&self.result, Some(Err(e)) if e.is_storage_full())
    }

    fn take_config(&mut self) -> Option<Config> {
        self.config.take()
    }

    fn ingest(&self) -> Option<&Prepared> {
        self.ingest.as_deref()
    }

    fn finish(self: Box<Self>, err: Option<&StoreError>) {
        let Pending {
            f,
            result,
            tx,
            ingest,
            ..
        } = *self;
        drop(ingest);
        // The job's captures go before the answer: what they share with the caller (an
        // ingest's prepared record) is then freed by the caller, on its own thread, not
        // by the writer (glibc serialises frees into another thread's arena).
        drop(f);
        let out = match (err, result) {
            (Some(e), _) => Err(not_committed(e)),
            (None, Some(r)) => r,
            (None, None) => Err(StoreError::NotCommitted("the write was not run".into())),
        };
        let _ = tx.send(out);
    }
}

/// The writer thread of a store and the rules it writes with.
pub(crate) struct Writer<C> {
    sender: Mutex<Option<mpsc::Sender<Job<C>>>>,
    done: Mutex<Option<oneshot::Receiver<()>>>,
    rules: Arc<RwLock<Arc<Rules>>>,
    signal: Arc<watch::Sender<u64>>,
    config: Arc<watch::Sender<i64>>,
    full: Arc<Fullness>,
}

/// Puts `config` in force unless the rules already hold a set read at that version or a
/// later one; announces it on `signal`. Returns whether it replaced the subscriptions.
fn apply_config(rules: &RwLock<Arc<Rules>>, signal: &watch::Sender<i64>, config: Config) -> bool {
    let (version, subs) = config;
    let Ok(mut w) = rules.write() else {
        return false;
    };
    if version < w.subs_version || (version == w.subs_version && w.subs == subs) {
        return false;
    }
    *w = Arc::new(Rules {
        subs,
        ownership: w.ownership.clone(),
        subs_version: version,
    });
    drop(w);
    signal.send_modify(|v| *v = (*v).max(version));
    true
}

impl<C: WriterConn> Writer<C> {
    /// Starts the writer thread `name` on `conn`, committing up to `max_batch` jobs at once.
    pub(crate) fn start(conn: C, name: &str, max_batch: usize) -> Result<Self, StoreError> {
        let rules = Arc::new(RwLock::new(Arc::new(Rules::default())));
        let (tx, rx) = mpsc::channel::<Job<C>>();
        let (sig_tx, _) = watch::channel(0u64);
        let (done_tx, done_rx) = oneshot::channel();
        let sig_tx = Arc::new(sig_tx);
        let config = Arc::new(watch::channel(0i64).0);
        let full = Arc::new(Fullness::default());
        let (r, s, cf, fl) = (rules.clone(), sig_tx.clone(), config.clone(), full.clone());
        let max_batch = max_batch.max(1);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                writer_loop(conn, rx, r, s, cf, &fl, max_batch);
                let _ = done_tx.send(());
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start writer thread: {e}")))?;
        Ok(Writer {
            sender: Mutex::new(Some(tx)),
            done: Mutex::new(Some(done_rx)),
            rules,
            signal: sig_tx,
            config,
            full,
        })
    }

    /// Whether the last write failed for lack of space (and none committed since).
    pub(crate) fn storage_full(&self) -> bool {
        self.full.get()
    }

    /// Whether a probe write may run now: at most one a second, so that an
    /// unauthenticated caller (`/readyz`) cannot turn probes into a write load.
    pub(crate) fn probe_due(&self) -> bool {
        let Ok(mut last) = self.full.last_probe.lock() else {
            return false;
        };
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1)) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Runs `f` inside the next group-committed transaction; answers after the commit.
    /// Dispatchers are woken after the commit when the job created outbox rows. `f` may
    /// run twice (see [`WriteJob`]), so it must not consume what it writes.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut C, &mut JobCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.send(None, f).await
    }

    /// [`Writer::write`] for the ingest of `p`, which the backend may read ahead for
    /// together with the batch's other ingests (see [`WriterConn::read_ahead`]).
    pub(crate) async fn write_ahead<T, F>(&self, p: Arc<Prepared>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut C, &mut JobCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.send(Some(p), f).await
    }

    async fn send<T, F>(&self, ingest: Option<Arc<Prepared>>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut C, &mut JobCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job<C> = Box::new(Pending {
            f,
            result: None,
            created_outbox: false,
            config: None,
            ingest,
            tx,
        });
        {
            let guard = self.sender.lock().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The rules in force.
    pub(crate) fn rules(&self) -> Arc<Rules> {
        self.rules.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// Replaces the rules the next batches run with.
    pub(crate) fn set_rules(&self, f: impl FnOnce(&Rules) -> Rules) -> Result<(), StoreError> {
        let mut w = self
            .rules
            .write()
            .map_err(|_| StoreError::Corrupt("rules lock poisoned".into()))?;
        *w = Arc::new(f(&w));
        Ok(())
    }

    /// A receiver that changes whenever a write that created outbox rows commits.
    pub(crate) fn signal(&self) -> watch::Receiver<u64> {
        self.signal.subscribe()
    }

    /// Puts subscriptions read at a `config_version` in force (by another instance's
    /// change: see the PostgreSQL listener), unless newer ones already are.
    pub(crate) fn apply_config(&self, config: Config) -> bool {
        apply_config(&self.rules, &self.config, config)
    }

    /// A receiver of the `config_version` in force; it changes whenever subscriptions or
    /// sink controls changed (here or, on a shared store, in another instance).
    pub(crate) fn config_signal(&self) -> watch::Receiver<i64> {
        self.config.subscribe()
    }

    /// Wakes the dispatchers as a local commit with outbox rows would (for rows another
    /// process committed).
    pub(crate) fn poke(&self) {
        self.signal.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Stops the writer after the writes already queued; later writes fail with `Closed`.
    pub(crate) async fn close(&self) {
        if let Ok(mut g) = self.sender.lock() {
            g.take();
        }
        let done = self.done.lock().ok().and_then(|mut g| g.take());
        if let Some(done) = done {
            let _ = done.await;
        }
    }
}

fn writer_loop<C: WriterConn>(
    mut conn: C,
    rx: mpsc::Receiver<Job<C>>,
    rules: Arc<RwLock<Arc<Rules>>>,
    signal: Arc<watch::Sender<u64>>,
    config: Arc<watch::Sender<i64>>,
    full: &Fullness,
    max_batch: usize,
) {
    let mut batch: Vec<Job<C>> = Vec::with_capacity(max_batch);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let current = rules.read().map(|s| s.clone()).unwrap_or_default();
        let changed = |c: Config| {
            apply_config(&rules, &config, c);
        };
        if commit_batch(&mut conn, &mut batch, &current, &changed, full) {
            signal.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// Commits the open transaction (announcing outbox rows first when `announce`).
fn commit<C: WriterConn>(conn: &mut C, announce: bool) -> Result<(), StoreError> {
    if announce {
        conn.announce()?;
    }
    conn.commit()
}

/// Runs a batch in one transaction and answers every job; returns whether outbox rows
/// were committed. When a job fails, the batch is rolled back and each job is run again
/// in a transaction of its own, so that one bad write never fails the others. The
/// configuration a committed job read back goes to `changed` before the job is answered.
fn commit_batch<C: WriterConn>(
    conn: &mut C,
    batch: &mut Vec<Job<C>>,
    rules: &Rules,
    changed: &dyn Fn(Config),
    full: &Fullness,
) -> bool {
    if let Err(e) = conn.begin() {
        if e.is_storage_full() {
            full.set(true);
        }
        for job in batch.drain(..) {
            job.finish(Some(&e));
        }
        return false;
    }
    let ingests: Vec<&Prepared> = batch.iter().filter_map(|j| j.ingest()).collect();
    let ahead = match ingests.is_empty() {
        true => Ok(()),
        false => conn.read_ahead(&ingests),
    };
    drop(ingests);
    if let Err(e) = &ahead {
        // Each job runs again on its own below, writing its inbox row itself.
        tracing::warn!(error = %e, "reading ahead for a batch failed; its jobs run one by one");
    }
    let all_ok = ahead.is_ok() && batch.iter_mut().all(|job| job.run(conn, rules));
    if all_ok {
        let notify = batch.iter().any(|j| j.created_outbox());
        match commit(conn, notify) {
            Ok(()) => {
                full.set(false);
                // In commit order: the last job's read is the newest.
                for job in batch.iter_mut() {
                    if let Some(c) = job.take_config() {
                        changed(c);
                    }
                }
                for job in batch.drain(..) {
                    job.finish(None);
                }
                return notify;
            }
            Err(e) if batch.len() > 1 && conn.commit_failed_in_writes() => {
                tracing::warn!(error = %e, "a write of the batch failed at commit; its jobs run one by one");
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the batch is not acknowledged");
                if e.is_storage_full() {
                    full.set(true);
                }
                conn.rollback();
                for job in batch.drain(..) {
                    job.finish(Some(&e));
                }
                return false;
            }
        }
    }
    conn.rollback();
    let mut notify = false;
    for mut job in batch.drain(..) {
        if let Err(e) = conn.begin() {
            if e.is_storage_full() {
                full.set(true);
            }
            job.finish(Some(&e));
            continue;
        }
        if job.run(conn, rules) {
            let created = job.created_outbox();
            match commit(conn, created) {
                Ok(()) => {
                    full.set(false);
                    notify |= created;
                    if let Some(c) = job.take_config() {
                        changed(c);
                    }
                    job.finish(None);
                }
                Err(e) => {
                    if e.is_storage_full() {
                        full.set(true);
                    }
                    conn.rollback();
                    job.finish(Some(&e));
                }
            }
        } else {
            if job.failed_full() {
                full.set(true);
            }
            conn.rollback();
            // The job's own error is its answer.
            job.finish(None);
        }
    }
    notify
}
