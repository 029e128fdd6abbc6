//! Schema migrations, applied in order and recorded in `PRAGMA user_version`.

use crate::StoreError;
use rusqlite::Connection;

/// Each entry moves the schema from version `index` to `index + 1`. Never edit a shipped
/// entry; add a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE inbox (
    id              INTEGER PRIMARY KEY,
    source          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reason_code     TEXT,
    reason          TEXT,
    received_at     INTEGER NOT NULL,
    headers         TEXT NOT NULL,
    body            BLOB NOT NULL,
    event_ids       TEXT NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX inbox_accepted_key ON inbox (source, idempotency_key) WHERE status = 'accepted';
CREATE INDEX inbox_rejected ON inbox (id) WHERE status = 'rejected';

CREATE TABLE events (
    seq_id       INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    shipment     TEXT NOT NULL,
    shipment_seq INTEGER NOT NULL,
    type         TEXT NOT NULL,
    source       TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL,
    recorded_at  INTEGER NOT NULL,
    inbox_id     INTEGER,
    effect       TEXT NOT NULL,
    body         TEXT NOT NULL
);
CREATE UNIQUE INDEX events_shipment_seq ON events (shipment, shipment_seq);

CREATE TABLE shipments (
    key             TEXT PRIMARY KEY,
    state           TEXT NOT NULL,
    milestone_at    INTEGER,
    milestone_event TEXT,
    flags           TEXT NOT NULL,
    last_event_at   INTEGER,
    last_seq        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX shipments_state ON shipments (state, key);

CREATE TABLE xrefs (
    kind     TEXT NOT NULL,
    value    TEXT NOT NULL,
    shipment TEXT NOT NULL,
    PRIMARY KEY (kind, value, shipment)
) WITHOUT ROWID;
CREATE INDEX xrefs_shipment ON xrefs (shipment);

CREATE TABLE subscriptions (
    name    TEXT PRIMARY KEY,
    sink    TEXT NOT NULL,
    types   TEXT NOT NULL,
    sources TEXT NOT NULL
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    subscription    TEXT NOT NULL,
    sink            TEXT NOT NULL,
    event_seq       INTEGER NOT NULL REFERENCES events (seq_id),
    shipment        TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX outbox_pending ON outbox (sink, id) WHERE state = 'pending';
CREATE INDEX outbox_event ON outbox (event_seq);

CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY,
    outbox_id    INTEGER NOT NULL REFERENCES outbox (id),
    subscription TEXT NOT NULL,
    sink         TEXT NOT NULL,
    event_seq    INTEGER NOT NULL,
    shipment     TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    error        TEXT NOT NULL,
    failed_at    INTEGER NOT NULL,
    replayed_at  INTEGER,
    replay_outbox_id INTEGER
);
CREATE INDEX dead_letters_open ON dead_letters (sink, id) WHERE replayed_at IS NULL;
"#,
    r#"
CREATE TABLE cursors (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // Duplicate events are found beside their shipment: one index on (shipment, event_id)
    // replaces the global unique index of random event ids and the (shipment,
    // shipment_seq) index (event ids include their shipment, so unique per shipment means
    // unique; the single writer keeps sequence numbers dense). Two random B-tree inserts
    // fewer per event. The timeline reads by shipment through the new index.
    r#"
CREATE TABLE events_v3 (
    seq_id       INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL,
    shipment     TEXT NOT NULL,
    shipment_seq INTEGER NOT NULL,
    type         TEXT NOT NULL,
    source       TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL,
    recorded_at  INTEGER NOT NULL,
    inbox_id     INTEGER,
    effect       TEXT NOT NULL,
    body         TEXT NOT NULL
);
INSERT INTO events_v3 (seq_id, event_id, shipment, shipment_seq, type, source, occurred_at, recorded_at, inbox_id, effect, body)
    SELECT seq_id, event_id, shipment, shipment_seq, type, source, occurred_at, recorded_at, inbox_id, effect, body FROM events;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE UNIQUE INDEX events_shipment_event ON events (shipment, event_id);
"#,
    // A dead letter keeps its failure's stable code and kind (older rows have none).
    r#"
ALTER TABLE dead_letters ADD COLUMN code TEXT;
ALTER TABLE dead_letters ADD COLUMN kind TEXT;
"#,
    // Identity resolution and field ownership. A `shipments` row is a lane (one subject);
    // lanes resolved into one shipment point at its canonical lane (`entity`, NULL for a
    // canonical lane), whose row holds the shipment's state. Aliases are the `xrefs`;
    // `observations` are the facts each source stated, one row per distinct value;
    // `conflicts` the identity and ownership conflicts as last computed.
    r#"
ALTER TABLE shipments ADD COLUMN entity TEXT;
CREATE INDEX shipments_entity ON shipments (entity) WHERE entity IS NOT NULL;
CREATE TABLE observations (
    lane     TEXT NOT NULL,
    fact     TEXT NOT NULL,
    source   TEXT NOT NULL,
    value    TEXT NOT NULL,
    at       INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (lane, fact, source, value)
) WITHOUT ROWID;
CREATE TABLE conflicts (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('identity', 'ownership')),
    shipment    TEXT NOT NULL,
    fact        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX conflicts_shipment ON conflicts (shipment);
"#,
    // An inbox body may be stored compressed: `encoding` says how (NULL: as received,
    // `lz4`: LZ4 block, size-prefixed). Older rows are as received.
    r#"
ALTER TABLE inbox ADD COLUMN encoding TEXT;
"#,
    // An event body may be stored packed (see `crate::body`): `encoding` NULL is the JSON
    // with `sequence` (every older row); `lz4` and `lz4+payload` are LZ4 blocks of the
    // JSON without `sequence`, the latter with its inbox row's raw payload as the
    // dictionary.
    r#"
ALTER TABLE events ADD COLUMN encoding TEXT;
"#,
    // Workflows (see `crate::flow`): instances, the inputs that drive them, their step
    // history, durable timers, tasks for people and kept documents (labels).
    r#"
CREATE TABLE workflows (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    entity     TEXT NOT NULL,
    status     TEXT NOT NULL,
    stage      TEXT NOT NULL,
    state      TEXT NOT NULL,
    pending    TEXT NOT NULL,
    retry_at   INTEGER,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX workflows_entity ON workflows (entity);
CREATE INDEX workflows_status ON workflows (status, id);
CREATE INDEX workflows_retry ON workflows (retry_at) WHERE retry_at IS NOT NULL;
CREATE TABLE workflow_inputs (
    id         INTEGER PRIMARY KEY,
    workflow   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    done_at    INTEGER
);
CREATE UNIQUE INDEX workflow_inputs_key ON workflow_inputs (workflow, key);
CREATE INDEX workflow_inputs_pending ON workflow_inputs (workflow, id) WHERE done_at IS NULL;
CREATE TABLE workflow_steps (
    workflow   TEXT NOT NULL,
    n          INTEGER NOT NULL,
    step       TEXT NOT NULL,
    input      TEXT NOT NULL,
    answer     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER NOT NULL,
    PRIMARY KEY (workflow, n)
) WITHOUT ROWID;
CREATE TABLE timers (
    workflow TEXT NOT NULL,
    name     TEXT NOT NULL,
    due_at   INTEGER NOT NULL,
    PRIMARY KEY (workflow, name)
) WITHOUT ROWID;
CREATE INDEX timers_due ON timers (due_at);
CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY,
    workflow    TEXT NOT NULL,
    entity      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    title       TEXT NOT NULL,
    detail      TEXT NOT NULL,
    claimed_by  TEXT,
    decision    TEXT,
    resolved_by TEXT,
    reason      TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX tasks_status ON tasks (status, id);
CREATE INDEX tasks_workflow ON tasks (workflow);
CREATE TABLE documents (
    workflow TEXT NOT NULL,
    name     TEXT NOT NULL,
    mime     TEXT NOT NULL,
    bytes    BLOB NOT NULL,
    PRIMARY KEY (workflow, name)
) WITHOUT ROWID;
"#,
    // The control tower (issue 18). Delivery figures on the outbox row (the last attempt;
    // a delivery adds no row) and one `delivery_attempts` row per failed attempt. Dead
    // letters can be discarded (kept, never replayed): "open" now means neither replayed
    // nor discarded, with a partial index per state. Rejected inbox rows remember what
    // they were reprocessed into. Sinks can be paused (`sink_controls`) and keep their
    // last delivery time (`sink_activity`, one row per sink, written once per batch of
    // results). Subscriptions say where they come from (`origin`), a configured one
    // deleted through the API stays as a tombstone (`deleted`), and every change of the
    // subscriptions or sink controls counts up `config_version`.
    r#"
ALTER TABLE outbox ADD COLUMN delivered_at INTEGER;
ALTER TABLE outbox ADD COLUMN last_status INTEGER;
ALTER TABLE outbox ADD COLUMN last_duration_us INTEGER;
CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY,
    outbox_id   INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status      INTEGER,
    duration_us INTEGER NOT NULL,
    error       TEXT NOT NULL
);
CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id, id);
ALTER TABLE dead_letters ADD COLUMN discarded_at INTEGER;
ALTER TABLE dead_letters ADD COLUMN discarded_by TEXT;
DROP INDEX dead_letters_open;
CREATE INDEX dead_letters_open ON dead_letters (sink, id) WHERE replayed_at IS NULL AND discarded_at IS NULL;
CREATE INDEX dead_letters_replayed ON dead_letters (id) WHERE replayed_at IS NOT NULL;
CREATE INDEX dead_letters_discarded ON dead_letters (id) WHERE discarded_at IS NOT NULL;
ALTER TABLE inbox ADD COLUMN reprocessed_at INTEGER;
ALTER TABLE inbox ADD COLUMN reprocessed_into INTEGER;
CREATE INDEX inbox_rejected_open ON inbox (id) WHERE status = 'rejected' AND reprocessed_at IS NULL;
CREATE TABLE sink_controls (
    sink       TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    changed_by TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE sink_activity (
    sink              TEXT PRIMARY KEY,
    last_delivered_at INTEGER NOT NULL
) WITHOUT ROWID;
ALTER TABLE subscriptions ADD COLUMN origin TEXT NOT NULL DEFAULT 'config';
ALTER TABLE subscriptions ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
"#,
    // API keys issued by the hub (issue 19): the key's SHA-256 only, never the key.
    r#"
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    tenant       TEXT,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
) WITHOUT ROWID;
"#,
    // The audit trail (issue 19): hash-chained operator actions (crate::audit). Rows are
    // never changed or removed by the hub; the triggers refuse it (someone with the file
    // can drop them: the chain is what catches that).
    r#"
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    detail    TEXT NOT NULL,
    origin    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"#,
    // Bounded samples (issue 19): rejected payloads of unauthenticated senders are capped
    // per reason code and source; this index finds the newest of a code (and source).
    r#"
CREATE INDEX inbox_samples ON inbox (reason_code, source, id) WHERE status = 'rejected';
"#,
    // Retention and erasure (issue 19, crate::retention). An accepted payload's body is
    // purged in place (`purged_at`: the row stays for duplicate detection and the events
    // naming it). Each kind is found through an index, so a batch costs what its rows
    // cost: payloads by source, status and time among those not purged; the events packed
    // against a payload (packed again alone before it goes); delivered outbox rows by
    // delivery time (older rows get theirs from `updated_at`); closed dead letters by
    // closing time. The audit chain may lose a prefix: `audit_base` keeps the `(seq,
    // hash)` of the last record purged, and the delete trigger lets through only records
    // at or below it.
    r#"
ALTER TABLE inbox ADD COLUMN purged_at INTEGER;
CREATE INDEX inbox_retention ON inbox (source, status, received_at) WHERE purged_at IS NULL;
CREATE INDEX events_packed_inbox ON events (inbox_id) WHERE encoding = 'lz4+payload';
UPDATE outbox SET delivered_at = updated_at WHERE state = 'delivered' AND delivered_at IS NULL;
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE state = 'delivered';
CREATE INDEX dead_letters_closed ON dead_letters (coalesce(replayed_at, discarded_at))
    WHERE replayed_at IS NOT NULL OR discarded_at IS NOT NULL;
CREATE TABLE audit_base (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
DROP TRIGGER audit_log_no_delete;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > coalesce((SELECT seq FROM audit_base WHERE id = 1), 0)
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_base_forward BEFORE UPDATE ON audit_base WHEN NEW.seq < OLD.seq
BEGIN SELECT RAISE(ABORT, 'audit_base only moves forward'); END;
CREATE TRIGGER audit_base_no_delete BEFORE DELETE ON audit_base
BEGIN SELECT RAISE(ABORT, 'audit_base is kept'); END;
"#,
    // Tenants and data minimisation (issue 19). A lane row carries the tenant (company)
    // its first tenant-bearing event named; the canonical lane's is the shipment's, and a
    // tenant-bound API key sees only shipments of its tenant. A subscription may allow or
    // forbid personal data for its consumer (NULL: its sink's default).
    r#"
ALTER TABLE shipments ADD COLUMN tenant TEXT;
CREATE INDEX shipments_tenant ON shipments (tenant, key) WHERE tenant IS NOT NULL;
ALTER TABLE subscriptions ADD COLUMN personal_data INTEGER;
"#,
];

/// The schema version this build expects.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Applies every migration above the database's current version, each in its own
/// transaction. Returns (from, to).
pub fn migrate(conn: &mut Connection) -> Result<(u32, u32), StoreError> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::Migration {
            version: current,
            message: format!("database schema {current} is newer than this build ({LATEST})"),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as u32 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql).map_err(|e| StoreError::Migration {
            version,
            message: e.to_string(),
        })?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok((current, LATEST))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A database made by schema 2 keeps its events through migration 3, and the new
    /// index refuses a second copy of an event in its shipment only.
    #[test]
    fn events_survive_the_move_to_per_shipment_duplicate_checks() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute(
            "INSERT INTO events (seq_id, event_id, shipment, shipment_seq, type, source, occurred_at, recorded_at, effect, body)
             VALUES (7, 'e-1', 'S1', 1, 'shipment.in_transit', 'carrier', 1, 2, 'advanced', '{}')",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), (2, LATEST));
        let (seq, id): (i64, String) = conn
            .query_row(
                "SELECT seq_id, event_id FROM events WHERE shipment = 'S1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((seq, id.as_str()), (7, "e-1"));
        let again = "INSERT INTO events (event_id, shipment, shipment_seq, type, source, occurred_at, recorded_at, effect, body)
             VALUES ('e-1', ?1, 2, 'shipment.in_transit', 'carrier', 1, 2, 'advanced', '{}')";
        assert!(
            conn.execute(again, ["S1"]).is_err(),
            "same shipment, same id"
        );
        conn.execute(again, ["S2"]).unwrap();
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            indexes,
            vec![
                "events_shipment_event".to_string(),
                "events_packed_inbox".to_string()
            ]
        );
    }
}
