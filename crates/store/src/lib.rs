//! Durable state of Waybill: the inbox of raw payloads, the append-only event log with a
//! per-lane sequence, the shipment projection, aliases, observed facts, conflicts,
//! subscriptions, the outbox and the dead-letter queue.
//!
//! Place in the flow: INBOX, SEQUENCE, EVENT LOG, RESOLVE, OUTBOX. The engine calls it; it
//! calls nothing but its database.
//! Never does: network calls, partner logic, or acknowledge anything before it is durable.
//! Invariants: recording a payload, applying its events to their shipments, appending them
//! to the log, resolving identities and creating their outbox rows happen in one
//! transaction; an event id is stored at most once; a lane's sequence numbers are dense
//! and increasing.
//!
//! What happens to each accepted event is decided once, in [`sequence`], over the
//! [`sequence::Tx`] trait; a backend only implements `Tx`. Likewise the read side is
//! assembled once, in `view`, over the primitive reads of `view::Reader`. [`Store`] is an
//! enum over the backends (SQLite, PostgreSQL). The
//! behaviour suite in `waybill-testkit` runs against every variant.

/// SQL condition: the tenant of the shipment the lane in column `$col` belongs to (its
/// canonical lane's) is the parameter `$param`, or `$param` is NULL (no tenant filter).
/// Written once for both backends; `$param` carries the backend's placeholder.
macro_rules! tenant_is {
    ($col:literal, $param:literal) => {
        concat!(
            "(",
            $param,
            " IS NULL OR (SELECT tn_c.tenant FROM shipments tn_s JOIN shipments tn_c
              ON tn_c.key = coalesce(tn_s.entity, tn_s.key) WHERE tn_s.key = ",
            $col,
            ") = ",
            $param,
            ")"
        )
    };
}

pub mod audit;
pub mod body;
mod codec;
pub mod flow;
pub mod keys;
pub mod lease;
mod pg;
mod prepare;
pub mod retention;
pub mod sequence;
mod sqlite;
mod types;
mod view;
mod writer;

pub use pg::{
    application_name as pg_application_name, drop_pg_schema, migrate_pg, PgOptions, PgStore,
    PG_SCHEMA_VERSION,
};
pub use sqlite::{
    calibrate_sqlite, migrate_file, CalibrationError, SqliteCalibration, SqliteOptions,
    SqliteStore, Synchronous, BATCH_ROWS,
};
pub use types::*;

use waybill_model::ownership::Ownership;
use waybill_model::ShipmentKey;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// PostgreSQL reported an error.
    #[error("postgres: {0}")]
    Pg(#[from] postgres::Error),
    /// Stored data could not be decoded (a bug or a hand-edited database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The write's transaction did not commit (it could not begin, or the commit failed);
    /// nothing of it is stored.
    #[error("write not committed: {0}")]
    NotCommitted(String),
    /// The write's transaction did not commit because the database's disk (or, on
    /// PostgreSQL, the server's) is full; nothing of it is stored.
    #[error("storage full, write not committed: {0}")]
    StorageFull(String),
    /// The store is shutting down or its writer stopped.
    #[error("store is closed")]
    Closed,
    /// A workflow changed since it was loaded (another runner saved it first); nothing of
    /// the save is stored.
    #[error("workflow {0} changed since it was loaded")]
    Stale(String),
    /// Migrations failed.
    #[error("migration {version}: {message}")]
    Migration {
        /// Schema version that failed.
        version: u32,
        /// What went wrong.
        message: String,
    },
}

impl StoreError {
    /// Whether the database refused the write for lack of space: SQLite's
    /// `SQLITE_FULL` (a write that met `ENOSPC`) or a shared-memory file it could not grow,
    /// PostgreSQL's `disk_full` (53100).
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::StorageFull(_) => true,
            StoreError::Db(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
                    || e.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE
            }
            StoreError::Pg(e) => e.code() == Some(&postgres::error::SqlState::DISK_FULL),
            _ => false,
        }
    }
}

/// The cursor row [`Store::probe_write`] writes and removes.
const PROBE_CURSOR: &str = "waybill.space_probe";

/// 64 KiB of text that does not compress (PostgreSQL would compress a repeated byte away).
fn probe_value() -> String {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    (0..64 * 1024 / 16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{x:016x}")
        })
        .collect()
}

/// The store: one enum over the backends, so that every call site is backend-agnostic.
#[derive(Clone)]
pub enum Store {
    /// Embedded SQLite (default).
    Sqlite(SqliteStore),
    /// PostgreSQL, shared by one or several instances.
    Postgres(PgStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Opens (and migrates) an SQLite store.
    pub async fn open_sqlite(opts: SqliteOptions) -> Result<Store, StoreError> {
        Ok(Store::Sqlite(SqliteStore::open(opts).await?))
    }

    /// Opens (and migrates) a PostgreSQL store.
    pub async fn open_postgres(opts: PgOptions) -> Result<Store, StoreError> {
        Ok(Store::Postgres(PgStore::open(opts).await?))
    }

    /// Name of the backend, for logs and `/readyz`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Whether several processes may share this store (and so divide work by leases).
    pub fn shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Claims leases for an instance (see [`lease`]); a single-process store grants every
    /// one.
    pub async fn claim_leases(
        &self,
        claim: lease::LeaseClaim,
    ) -> Result<lease::LeaseGrant, StoreError> {
        match self {
            Store::Sqlite(_) => {
                let mut held = claim.names;
                held.sort();
                Ok(lease::LeaseGrant { held, instances: 1 })
            }
            Store::Postgres(s) => s.claim_leases(claim).await,
        }
    }

    /// Gives up every lease `holder` holds (at a graceful stop), so that the other
    /// instances take them over at once.
    pub async fn release_leases(&self, holder: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(s) => s.release_leases(holder).await,
        }
    }

    /// Sets the subscriptions of the configuration file (at start). The file gives the
    /// initial set: each one is written unless a subscription of that name was changed
    /// or deleted through the API ([`Store::put_subscription`],
    /// [`Store::delete_subscription`]); configured ones no longer in the file are
    /// removed. New events are routed by the subscriptions in force afterwards.
    pub async fn sync_subscriptions(&self, subs: Vec<Subscription>) -> Result<(), StoreError> {
        dispatch!(self, s => s.sync_subscriptions(subs).await)
    }

    /// The subscriptions in force, by name.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        dispatch!(self, s => s.subscriptions().await)
    }

    /// Creates or replaces a subscription (origin `api`: a later start keeps it over the
    /// configuration file); returns whether it was created. An event ingested after this
    /// returns is routed by it; other instances sharing the store follow within a second.
    pub async fn put_subscription(&self, sub: Subscription) -> Result<bool, StoreError> {
        dispatch!(self, s => s.put_subscription(sub).await)
    }

    /// Deletes a subscription; returns whether there was one. It is kept as a tombstone,
    /// so that a later start does not bring a configured one back. Takes effect like
    /// [`Store::put_subscription`].
    pub async fn delete_subscription(&self, name: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_subscription(name).await)
    }

    /// Sinks paused or resumed through the API, by name.
    pub async fn sink_controls(&self) -> Result<Vec<SinkControl>, StoreError> {
        dispatch!(self, s => s.sink_controls().await)
    }

    /// Pauses or resumes a sink (kept: a restart and every instance see it).
    pub async fn set_sink_paused(
        &self,
        sink: &str,
        paused: bool,
        by: &str,
    ) -> Result<SinkControl, StoreError> {
        dispatch!(self, s => s.set_sink_paused(sink, paused, by).await)
    }

    /// A receiver of the configuration version in force: it changes whenever the
    /// subscriptions or sink controls changed, through this process or (on a shared
    /// store) another one; read [`Store::sink_controls`] again then.
    pub fn config_signal(&self) -> tokio::sync::watch::Receiver<i64> {
        dispatch!(self, s => s.config_signal())
    }

    /// The subscriptions events are routed by now: the set last put in force, by a change
    /// through this process or (on a shared store) another one. It is replaced before
    /// [`Store::config_signal`] changes.
    pub fn subscriptions_in_force(&self) -> Vec<Subscription> {
        dispatch!(self, s => s.subscriptions_in_force())
    }

    /// Health figures of every sink known to the store (with waiting rows, open dead
    /// letters, deliveries, a subscription or a control), by name.
    pub async fn sink_stats(&self) -> Result<Vec<SinkStats>, StoreError> {
        dispatch!(self, s => s.sink_stats().await)
    }

    /// Records a payload; for accepted ones, sequences its events, appends them and routes
    /// them to the outbox, all in one durable transaction.
    pub async fn ingest(&self, rec: IngestRecord) -> Result<IngestOutcome, StoreError> {
        dispatch!(self, s => s.ingest(rec).await)
    }

    /// One shipment with its cross-references and timeline.
    pub async fn shipment(&self, key: &ShipmentKey) -> Result<Option<ShipmentView>, StoreError> {
        dispatch!(self, s => s.shipment(key).await)
    }

    /// Shipments, optionally in one state, ordered by key, after a cursor.
    pub async fn shipments(&self, q: ShipmentQuery) -> Result<Vec<ShipmentSummary>, StoreError> {
        dispatch!(self, s => s.shipments(q).await)
    }

    /// Sets the ownership rules (which sources own which shipment facts) that facts and
    /// ownership conflicts are computed with; call before ingesting.
    pub fn set_ownership(&self, ownership: Ownership) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_ownership(ownership))
    }

    /// What a shipment key or alias (`kind:value`, or a bare identifier) resolves to.
    pub async fn resolve_key(&self, text: &str) -> Result<Resolved, StoreError> {
        dispatch!(self, s => s.resolve_key(text).await)
    }

    /// The order named by an order alias, or by any key or alias of one of its shipments.
    pub async fn order(&self, text: &str) -> Result<Option<OrderView>, StoreError> {
        dispatch!(self, s => s.order(text).await)
    }

    /// Identity and ownership conflicts, in id order.
    pub async fn conflicts(&self, q: ConflictQuery) -> Result<Vec<ConflictRecord>, StoreError> {
        dispatch!(self, s => s.conflicts(q).await)
    }

    /// The tenant of the shipment a lane belongs to (its canonical lane's); None for a
    /// lane that is not stored or a shipment without a tenant.
    pub async fn tenant_of(&self, lane: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.tenant_of(lane).await)
    }

    /// The references (`kind`, `value`) of every lane of the shipment `lane` resolves to.
    pub async fn resolved_refs(&self, lane: &str) -> Result<Vec<(String, String)>, StoreError> {
        dispatch!(self, s => s.resolved_refs(lane).await)
    }

    /// Inbox records (for inspection of rejected payloads).
    pub async fn inbox(&self, q: InboxQuery) -> Result<Vec<InboxRecord>, StoreError> {
        dispatch!(self, s => s.inbox(q).await)
    }

    /// One inbox record with its whole body (unpacked) and headers.
    pub async fn inbox_record(&self, id: i64) -> Result<Option<InboxRecord>, StoreError> {
        dispatch!(self, s => s.inbox_record(id).await)
    }

    /// Notes that a rejected inbox record was reprocessed into the inbox row `into`;
    /// false when it is not a rejected record or was marked already.
    pub async fn mark_reprocessed(&self, id: i64, into: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.mark_reprocessed(id, into).await)
    }

    /// Pending outbox rows of one sink with an id above `after`, in id order.
    pub async fn pending_outbox(
        &self,
        sink: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        self.pending_outbox_in(sink, after, limit, lease::ALL_BUCKETS)
            .await
    }

    /// The same, only of lanes in the buckets of `buckets` (a mask, see [`lease`]).
    pub async fn pending_outbox_in(
        &self,
        sink: &str,
        after: i64,
        limit: usize,
        buckets: i64,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        match self {
            // One process holds every bucket.
            Store::Sqlite(s) => s.pending_outbox(sink, after, limit).await,
            Store::Postgres(s) => s.pending_outbox(sink, after, limit, buckets).await,
        }
    }

    /// Records what happened to delivery attempts.
    pub async fn record_deliveries(&self, updates: Vec<DeliveryUpdate>) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_deliveries(updates).await)
    }

    /// Dead letters, newest first.
    pub async fn dead_letters(&self, q: DeadLetterQuery) -> Result<Vec<DeadLetter>, StoreError> {
        dispatch!(self, s => s.dead_letters(q).await)
    }

    /// One dead letter with its state, event and failed attempts.
    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetterDetail>, StoreError> {
        dispatch!(self, s => s.dead_letter(id).await)
    }

    /// Discards an open dead letter: kept for audit, never replayed, no longer counted
    /// as open. Refused when it does not exist, was replayed or was discarded already.
    pub async fn discard_dead_letter(
        &self,
        id: i64,
        by: &str,
    ) -> Result<Result<DeadLetterDetail, DeadLetterRefusal>, StoreError> {
        dispatch!(self, s => s.discard_dead_letter(id, by).await)
    }

    /// Puts one open dead letter back into the outbox as a new row; returns the new
    /// outbox id, or why it was refused (not found, replayed already, discarded).
    pub async fn replay_dead_letter(
        &self,
        id: i64,
    ) -> Result<Result<i64, DeadLetterRefusal>, StoreError> {
        dispatch!(self, s => s.replay_dead_letter(id).await)
    }

    /// Puts dead letters back into the outbox as new rows; returns (dead letter id, new
    /// outbox id) for each one replayed. Already replayed and discarded ones are skipped.
    pub async fn replay_dead_letters(
        &self,
        sel: ReplaySelector,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        dispatch!(self, s => s.replay_dead_letters(sel).await)
    }

    /// Gauges for `/metrics` and the dashboard.
    pub async fn depths(&self) -> Result<Depths, StoreError> {
        dispatch!(self, s => s.depths().await)
    }

    /// Delivery state of one event of a shipment, per outbox row, with each row's failed
    /// attempts (for tests and the read API).
    pub async fn deliveries_of(
        &self,
        shipment: &ShipmentKey,
        event_id: &str,
    ) -> Result<Vec<OutboxItemState>, StoreError> {
        dispatch!(self, s => s.deliveries_of(shipment, event_id).await)
    }

    /// Stores a new API key (by its hash); `None` when a key with that id exists.
    pub async fn key_create(&self, k: keys::NewKey) -> Result<Option<keys::KeyRecord>, StoreError> {
        dispatch!(self, s => s.key_create(k).await)
    }

    /// Every API key issued by the hub (never their hashes).
    pub async fn keys(&self) -> Result<Vec<keys::KeyRecord>, StoreError> {
        dispatch!(self, s => s.keys().await)
    }

    /// A key and its stored hash, by id.
    pub async fn key_lookup(
        &self,
        id: &str,
    ) -> Result<Option<(keys::KeyRecord, String)>, StoreError> {
        dispatch!(self, s => s.key_lookup(id).await)
    }

    /// Revokes a key (kept, never usable again); the key as it stands, `None` when unknown.
    pub async fn key_revoke(&self, id: &str) -> Result<Option<keys::KeyRecord>, StoreError> {
        dispatch!(self, s => s.key_revoke(id).await)
    }

    /// Records that a key was used at `at`.
    pub async fn key_touch(&self, id: &str, at: time::OffsetDateTime) -> Result<(), StoreError> {
        dispatch!(self, s => s.key_touch(id, at).await)
    }

    /// A poller's saved position (e.g. the last `write_date` read from Odoo).
    pub async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.cursor(name).await)
    }

    /// Saves a poller's position (durably, before the call returns).
    pub async fn set_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_cursor(name, value).await)
    }

    /// Ready for traffic: the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    /// Whether the last write failed for lack of space and none has committed since:
    /// writes are refused (`StoreError::StorageFull`) until one commits again.
    pub fn storage_full(&self) -> bool {
        dispatch!(self, s => s.storage_full())
    }

    /// Commits a write of about 64 KiB (a row of its own, written and then removed): whether
    /// a payload of that size would be stored now. A success clears
    /// [`Store::storage_full`]. `/readyz` runs it while the store is full. At most one
    /// probe a second is written; in between the answer is the state as last seen.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.probe_write().await)
    }

    /// A receiver that changes whenever a write that created outbox rows commits.
    pub fn outbox_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        dispatch!(self, s => s.outbox_signal())
    }

    /// Offers inputs to workflows (creating those that do not exist); returns how many
    /// were new (an input's key is unique per workflow).
    pub async fn wf_offer(&self, inputs: Vec<flow::NewInput>) -> Result<usize, StoreError> {
        dispatch!(self, s => s.wf_offer(inputs).await)
    }

    /// Moves up to `limit` timers due at `now` (unix ms) into their workflows' inputs, in
    /// one transaction: each fires once.
    pub async fn wf_fire_timers(&self, now: i64, limit: u32) -> Result<usize, StoreError> {
        dispatch!(self, s => s.wf_fire_timers(now, limit).await)
    }

    /// Workflows with work: an input not consumed, or a retry due at `now`.
    pub async fn wf_runnable(&self, now: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.wf_runnable(now, limit).await)
    }

    /// A workflow and its next unconsumed input.
    pub async fn wf_load(
        &self,
        id: &str,
    ) -> Result<Option<(flow::WfRecord, Option<flow::WfInput>)>, StoreError> {
        dispatch!(self, s => s.wf_load(id).await)
    }

    /// Saves one change of a workflow in one transaction (see [`flow::WfSave`]); returns
    /// the ids of the tasks it opened. `StoreError::Stale` when another save came first.
    pub async fn wf_save(&self, save: flow::WfSave) -> Result<Vec<i64>, StoreError> {
        dispatch!(self, s => s.wf_save(save).await)
    }

    /// Workflows matching a query.
    pub async fn workflows(&self, q: flow::WfQuery) -> Result<Vec<flow::WfRecord>, StoreError> {
        dispatch!(self, s => s.workflows(q).await)
    }

    /// One workflow with its step history and pending timers (name, due unix ms).
    #[allow(clippy::type_complexity)]
    pub async fn workflow(
        &self,
        id: &str,
    ) -> Result<Option<(flow::WfRecord, Vec<flow::WfStep>, Vec<(String, i64)>)>, StoreError> {
        dispatch!(self, s => s.workflow(id).await)
    }

    /// Tasks matching a query.
    pub async fn tasks(&self, q: flow::TaskQuery) -> Result<Vec<flow::WfTask>, StoreError> {
        dispatch!(self, s => s.tasks(q).await)
    }

    /// Claims or resolves a task; a resolution is handed to its workflow as an input in
    /// the same transaction.
    pub async fn task_act(
        &self,
        id: i64,
        action: flow::TaskAction,
    ) -> Result<Result<flow::WfTask, flow::TaskRefusal>, StoreError> {
        dispatch!(self, s => s.task_act(id, action).await)
    }

    /// A document kept for a workflow: (MIME type, bytes).
    pub async fn document(
        &self,
        workflow: &str,
        name: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        dispatch!(self, s => s.document(workflow, name).await)
    }

    /// The earliest due time of any timer (unix ms), read without writing: the runner fires
    /// timers only when one is due.
    pub async fn wf_next_due(&self) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.wf_next_due().await)
    }

    /// Workflows by kind and status, open tasks and pending timers.
    pub async fn wf_counts(&self) -> Result<flow::WfCounts, StoreError> {
        dispatch!(self, s => s.wf_counts().await)
    }

    /// Timers pending, all workflows.
    pub async fn timer_count(&self) -> Result<u64, StoreError> {
        dispatch!(self, s => s.timer_count().await)
    }

    /// Appends an operator action to the hash-chained audit trail (see [`audit`]); the
    /// record as stored, after its commit.
    pub async fn audit_append(
        &self,
        entry: audit::AuditEntry,
    ) -> Result<audit::AuditRecord, StoreError> {
        dispatch!(self, s => s.audit_append(entry).await)
    }

    /// The head of the audit chain: the last record's `(seq, hash)`, `(0, GENESIS_HASH)`
    /// when there is none (what an anchor keeps).
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        dispatch!(self, s => s.audit_head().await)
    }

    /// Audit records after a `seq`, in order, optionally of one action or target.
    pub async fn audit(&self, q: audit::AuditQuery) -> Result<Vec<audit::AuditRecord>, StoreError> {
        dispatch!(self, s => s.audit(q).await)
    }

    /// Walks the whole audit chain, a page at a time, and names the first record that
    /// was altered, removed, inserted or moved.
    pub async fn audit_verify(&self) -> Result<audit::AuditVerdict, StoreError> {
        self.audit_verify_anchored(Vec::new()).await
    }

    /// The same, and checks that every anchored head is still in the chain with the
    /// same hash (catching a chain rewritten consistently from some record on).
    pub async fn audit_verify_anchored(
        &self,
        anchors: Vec<audit::AuditAnchor>,
    ) -> Result<audit::AuditVerdict, StoreError> {
        dispatch!(self, s => s.audit_verify(anchors).await)
    }

    /// The event rows `after < seq_id <= through`, at most `limit`, in `seq_id` order, as
    /// a checkpoint seals them.
    pub async fn sealed_events(
        &self,
        after: i64,
        through: i64,
        limit: i64,
    ) -> Result<Vec<audit::SealedEvent>, StoreError> {
        dispatch!(self, s => s.sealed_events(after, through, limit).await)
    }

    /// The largest event row id (0 for none).
    pub async fn last_event_row(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.last_event_row().await)
    }

    /// Count and digest of the event rows `after < seq_id <= through`.
    pub async fn events_digest(
        &self,
        after: i64,
        through: i64,
    ) -> Result<(u64, String), StoreError> {
        let mut d = audit::EventDigest::new();
        let mut from = after;
        loop {
            let page = self.sealed_events(from, through, 10_000).await?;
            let Some(last) = page.last() else { break };
            from = last.seq_id;
            page.iter().for_each(|e| d.feed(e));
        }
        Ok(d.finish())
    }

    /// Seals the event rows written since the last checkpoint (`after`) into the audit
    /// chain: appends an [`audit::EVENTS_CHECKPOINT`] record (actor `system`) and returns
    /// the new `through`; nothing when no event was written.
    pub async fn checkpoint_events(
        &self,
        after: i64,
        origin: &str,
    ) -> Result<Option<i64>, StoreError> {
        let through = self.last_event_row().await?;
        if through <= after {
            return Ok(None);
        }
        let (events, digest) = self.events_digest(after, through).await?;
        self.audit_append(audit::AuditEntry {
            actor: "system".into(),
            action: audit::EVENTS_CHECKPOINT.into(),
            target: "events".into(),
            detail: serde_json::json!({"from": after, "through": through, "events": events, "digest": digest}),
            origin: origin.into(),
        })
        .await?;
        Ok(Some(through))
    }

    /// A page of event-log checkpoints after audit record `after`.
    async fn checkpoints_after(&self, after: i64) -> Result<Vec<audit::AuditRecord>, StoreError> {
        self.audit(audit::AuditQuery {
            after_seq: after,
            limit: audit::AUDIT_PAGE,
            action: Some(audit::EVENTS_CHECKPOINT.into()),
            target: None,
        })
        .await
    }

    /// The `through` of the newest checkpoint (0 when there is none).
    pub async fn last_checkpoint(&self) -> Result<i64, StoreError> {
        let mut after = 0;
        let mut through = 0;
        loop {
            let page = self.checkpoints_after(after).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            through = page
                .iter()
                .filter_map(|r| r.detail["through"].as_i64())
                .fold(through, i64::max);
        }
        Ok(through)
    }

    /// Checks every event-log checkpoint of the audit chain against the rows it seals.
    pub async fn verify_events(&self) -> Result<audit::EventsVerdict, StoreError> {
        let (mut after, mut checkpoints, mut sealed) = (0, 0, 0);
        loop {
            let page = self.checkpoints_after(after).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for r in &page {
                let d = &r.detail;
                let (from, through) = (
                    d["from"].as_i64().unwrap_or(0),
                    d["through"].as_i64().unwrap_or(0),
                );
                let was = d["events"].as_u64().unwrap_or(0);
                let (now, digest) = self.events_digest(from, through).await?;
                if d["digest"].as_str() != Some(digest.as_str()) || now != was {
                    return Ok(audit::EventsVerdict::Changed(audit::EventsChanged {
                        checkpoint_seq: r.seq,
                        from,
                        through,
                        events: (was, now),
                    }));
                }
                checkpoints += 1;
                sealed += now;
            }
        }
        Ok(audit::EventsVerdict::Ok {
            checkpoints,
            events: sealed,
        })
    }

    /// Purges one batch of each kind the plan names (see [`retention`]): what went, by
    /// kind. Call again until it reports fewer rows of every kind than the batch. With
    /// `dry_run`, counts everything that would go (not one batch) and changes nothing.
    pub async fn purge(
        &self,
        plan: retention::PurgePlan,
    ) -> Result<retention::PurgeReport, StoreError> {
        dispatch!(self, s => s.purge(plan).await)
    }

    /// Erases the personal data of a shipment, or of every shipment a reference names:
    /// drops the raw payloads of its events and masks the values `personal` names in its
    /// events' data and its proof-of-delivery facts (event ids, types, times, sequence
    /// numbers and the shipment's state stay). `None` when nothing matches.
    pub async fn erase(
        &self,
        what: retention::Erase,
        personal: waybill_model::privacy::Personal,
    ) -> Result<Option<retention::EraseReport>, StoreError> {
        dispatch!(self, s => s.erase(what, personal).await)
    }

    /// The audit chain's base: `(seq, hash)` of the last record purged by retention,
    /// `None` when none was (the chain starts at seq 1).
    pub async fn audit_base(&self) -> Result<Option<(i64, String)>, StoreError> {
        dispatch!(self, s => s.audit_base().await)
    }

    /// Stops the writer after the writes already queued; later writes fail with `Closed`.
    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }
}
