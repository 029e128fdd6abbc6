//! SEQUENCE inside the write transaction: record the payload, apply each new event to its
//! shipment, append it with the next per-shipment sequence number, route it to the outbox.

use super::{from_us, to_us, JobCtx};
use crate::{IngestOutcome, IngestRecord, StoreError, Verdict};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeSet;
use waybill_model::lifecycle::Applied;
use waybill_model::{CloudEvent, EventId, Flag, Milestone, ShipmentKey, ShipmentState};

/// An ingest record with its events already serialized, so that the single writer thread
/// does as little as possible.
pub(crate) struct Prepared {
    rec: IngestRecord,
    headers: String,
    events: Vec<(CloudEvent, String)>,
    /// The events' ids as stored in the inbox row (JSON array).
    event_ids_json: String,
}

/// What the writer decided; the caller turns it into an [`IngestOutcome`] with the ids
/// it already has, so the writer allocates nothing for the answer in the common case.
pub(crate) enum Stored {
    Accepted {
        inbox_id: i64,
    },
    Duplicate {
        inbox_id: i64,
        event_ids: Vec<EventId>,
    },
    Rejected {
        inbox_id: i64,
    },
}

impl Stored {
    pub(crate) fn outcome(self, p: &Prepared) -> IngestOutcome {
        match self {
            Stored::Accepted { inbox_id } => IngestOutcome::Accepted {
                inbox_id,
                event_ids: p.events.iter().map(|(e, _)| e.id.clone()).collect(),
            },
            Stored::Duplicate {
                inbox_id,
                event_ids,
            } => IngestOutcome::Duplicate {
                inbox_id,
                event_ids,
            },
            Stored::Rejected { inbox_id } => IngestOutcome::Rejected { inbox_id },
        }
    }
}

/// Serializes on the caller's thread what the writer will store.
pub(crate) fn prepare(mut rec: IngestRecord) -> Result<Prepared, StoreError> {
    let headers = serde_json::to_string(&rec.headers).unwrap_or_else(|_| "[]".into());
    let events = match &mut rec.verdict {
        Verdict::Accepted(evs) => std::mem::take(evs)
            .into_iter()
            .map(|mut e| {
                e.sequence = None;
                let json = serde_json::to_string(&e).map_err(|err| {
                    StoreError::Corrupt(format!("event {} not serializable: {err}", e.id))
                })?;
                Ok((e, json))
            })
            .collect::<Result<Vec<_>, StoreError>>()?,
        Verdict::Rejected { .. } => Vec::new(),
    };
    let ids: Vec<&EventId> = events.iter().map(|(e, _)| &e.id).collect();
    let event_ids_json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    Ok(Prepared {
        rec,
        headers,
        events,
        event_ids_json,
    })
}

/// The stored body: the prepared JSON with the `sequence` attribute added. The prepared
/// JSON is a serialized object, so it ends with `}`.
fn with_sequence(json: &str, seq: i64) -> String {
    let body = json.strip_suffix('}').unwrap_or(json);
    format!(
        "{body},\"sequence\":\"{}\"}}",
        CloudEvent::format_sequence(seq)
    )
}

pub(crate) fn ingest(
    conn: &Connection,
    prepared: &Prepared,
    ctx: &mut JobCtx<'_>,
) -> Result<Stored, StoreError> {
    let Prepared {
        rec,
        headers,
        events,
        event_ids_json,
    } = prepared;
    match &rec.verdict {
        Verdict::Rejected { code, reason } => {
            conn.prepare_cached(
                "INSERT INTO inbox (source, idempotency_key, status, reason_code, reason, received_at, headers, body)
                 VALUES (?1, ?2, 'rejected', ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                rec.source,
                rec.idempotency_key,
                code,
                reason,
                to_us(rec.received_at),
                headers,
                rec.body
            ])?;
            Ok(Stored::Rejected {
                inbox_id: conn.last_insert_rowid(),
            })
        }
        Verdict::Accepted(_) => {
            // The unique index on accepted (source, key) is the duplicate test: one
            // statement in the common case, a lookup only for a duplicate.
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO inbox (source, idempotency_key, status, received_at, headers, body, event_ids)
                     VALUES (?1, ?2, 'accepted', ?3, ?4, ?5, ?6)
                     ON CONFLICT (source, idempotency_key) WHERE status = 'accepted' DO NOTHING",
                )?
                .execute(params![
                rec.source,
                rec.idempotency_key,
                to_us(rec.received_at),
                headers,
                rec.body,
                event_ids_json
            ])?;
            if inserted == 0 {
                let (inbox_id, ids): (i64, String) = conn
                    .prepare_cached(
                        "SELECT id, event_ids FROM inbox WHERE source = ?1 AND idempotency_key = ?2 AND status = 'accepted'",
                    )?
                    .query_row(params![rec.source, rec.idempotency_key], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                let event_ids: Vec<EventId> = serde_json::from_str(&ids)
                    .map_err(|e| StoreError::Corrupt(format!("inbox {inbox_id} event_ids: {e}")))?;
                return Ok(Stored::Duplicate {
                    inbox_id,
                    event_ids,
                });
            }
            let inbox_id = conn.last_insert_rowid();
            for (ev, json) in events {
                append(conn, Some(inbox_id), ev, json, ctx)?;
            }
            Ok(Stored::Accepted { inbox_id })
        }
    }
}

/// The shipment row after an event: ?1 key, ?2 state, ?3 milestone_at, ?4
/// milestone_event, ?5 flags, ?6 last_event_at, ?7 last_seq, ?8 created_at, ?9 updated_at.
const UPSERT_SHIPMENT: &str = "INSERT INTO shipments (key, state, milestone_at, milestone_event, flags, last_event_at, last_seq, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT (key) DO UPDATE SET state = excluded.state, milestone_at = excluded.milestone_at,
       milestone_event = excluded.milestone_event, flags = excluded.flags,
       last_event_at = excluded.last_event_at, last_seq = excluded.last_seq, updated_at = excluded.updated_at";

/// The same for an existing row whose milestone stays: `state` (?2) and `created_at`
/// (?8) are left as they are.
const UPDATE_SHIPMENT_KEEPING_STATE: &str =
    "UPDATE shipments SET milestone_at = ?3, milestone_event = ?4, flags = ?5,
       last_event_at = ?6, last_seq = ?7, updated_at = ?9 WHERE key = ?1";

/// Writes the canonical lane's state only (a lane resolved into another shipment folds
/// into that shipment's row): ?1 key, ?2 state, ?3 milestone_at, ?4 milestone_event, ?5
/// flags, ?6 last_event_at, ?7 updated_at.
pub(crate) const WRITE_STATE: &str =
    "UPDATE shipments SET state = ?2, milestone_at = ?3, milestone_event = ?4,
       flags = ?5, last_event_at = ?6, updated_at = ?7 WHERE key = ?1";

/// Appends one event unless its id is already in the log; returns whether it was new.
///
/// The event goes into its lane's log (its subject: dense per-lane sequence) and folds
/// into the state of the shipment the lane resolves to. Its aliases are recorded even
/// when the event itself is a repeat (a re-read record may name a new tracking number);
/// a new alias shared with another lane resolves the lanes again ([`super::resolve`]).
pub(crate) fn append(
    conn: &Connection,
    inbox_id: Option<i64>,
    ev: &CloudEvent,
    json: &str,
    ctx: &mut JobCtx<'_>,
) -> Result<bool, StoreError> {
    let key = ev.subject.clone();
    let (lane_state, last_seq, created_at, entity) = load_shipment(conn, &key)?;
    let canonical = entity.map(ShipmentKey);
    let mut state = match &canonical {
        Some(c) => load_shipment(conn, c)?.0,
        None => lane_state,
    };
    let milestone_before = created_at.map(|_| state.milestone);
    let effect = state.apply(&ev.facts());
    let seq = last_seq + 1;
    let body = with_sequence(json, seq);
    let now = to_us(ev.recordedtime);
    // An event id already in the shipment's log (carried by another payload) is ignored:
    // the unique index on (shipment, event_id) is the duplicate test — ids include their
    // shipment, so this is the global test too — and nothing else is written for it.
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events (event_id, shipment, shipment_seq, type, source, occurred_at, recorded_at, inbox_id, effect, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (shipment, event_id) DO NOTHING",
        )?
        .execute(params![
        ev.id.as_str(),
        key.as_str(),
        seq,
        ev.ty.as_str(),
        ev.source_name(),
        to_us(ev.time),
        now,
        inbox_id,
        effect_name(effect),
        body
    ])?;
    if inserted == 0 {
        if super::resolve::record_aliases(conn, ev)? {
            super::resolve::resolve(conn, &key, ev.recordedtime, ctx)?;
        }
        return Ok(false);
    }
    let event_seq = conn.last_insert_rowid();
    match &canonical {
        None => {
            // Same milestone (a repeated scan, a late or flagging event): the row is
            // updated without naming `state`, so SQLite leaves the shipments_state index —
            // and its page — alone. Both statements take the same nine parameters.
            let write_shipment = if milestone_before == Some(state.milestone) {
                UPDATE_SHIPMENT_KEEPING_STATE
            } else {
                UPSERT_SHIPMENT
            };
            conn.prepare_cached(write_shipment)?.execute(params![
                key.as_str(),
                state.milestone.as_str(),
                state.milestone_at.map(to_us),
                state.milestone_event.as_ref().map(|e| e.0.as_str()),
                flags_to_str(&state.flags),
                state.last_event_at.map(to_us),
                seq,
                created_at.unwrap_or(now),
                now
            ])?;
        }
        Some(c) => {
            conn.prepare_cached(
                "UPDATE shipments SET last_seq = ?2, last_event_at = max(coalesce(last_event_at, ?3), ?3), updated_at = ?4 WHERE key = ?1",
            )?
            .execute(params![key.as_str(), seq, to_us(ev.time), now])?;
            write_state(conn, c, &state, now)?;
        }
    }
    let new_alias = super::resolve::record_aliases(conn, ev)?;
    let source = ev.source_name();
    for sub in ctx.subs.iter().filter(|s| s.matches(ev.ty, source)) {
        conn.prepare_cached(
            "INSERT INTO outbox (subscription, sink, event_seq, shipment, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![sub.name, sub.sink, event_seq, key.as_str(), now])?;
        ctx.created_outbox = true;
    }
    let shipment = if new_alias {
        super::resolve::resolve(conn, &key, ev.recordedtime, ctx)?;
        super::resolve::canonical_of(conn, key.as_str())?.map(ShipmentKey)
    } else {
        canonical
    };
    super::resolve::observe(conn, ev, shipment.as_ref().unwrap_or(&key), ctx)?;
    Ok(true)
}

/// Writes a shipment's state into its (canonical) row.
pub(crate) fn write_state(
    conn: &Connection,
    key: &ShipmentKey,
    state: &ShipmentState,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(WRITE_STATE)?.execute(params![
        key.as_str(),
        state.milestone.as_str(),
        state.milestone_at.map(to_us),
        state.milestone_event.as_ref().map(|e| e.0.as_str()),
        flags_to_str(&state.flags),
        state.last_event_at.map(to_us),
        now
    ])?;
    Ok(())
}

fn effect_name(a: Applied) -> &'static str {
    match a {
        Applied::Advanced => "advanced",
        Applied::Flagged => "flagged",
        Applied::Recorded => "recorded",
    }
}

pub(crate) fn flags_to_str(flags: &BTreeSet<Flag>) -> String {
    flags
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn flags_from_str(s: &str) -> Result<BTreeSet<Flag>, StoreError> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            serde_json::from_value::<Flag>(serde_json::Value::String(p.to_owned()))
                .map_err(|e| StoreError::Corrupt(format!("flag `{p}`: {e}")))
        })
        .collect()
}

/// A lane's row: its state, last sequence, creation time, and the canonical lane of the
/// shipment it resolves to (None: itself).
pub(crate) type LaneRow = (ShipmentState, i64, Option<i64>, Option<String>);

/// Row of `shipments` decoded into the model, plus its last sequence, creation time and
/// the canonical lane it points at.
pub(crate) fn load_shipment(conn: &Connection, key: &ShipmentKey) -> Result<LaneRow, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT state, milestone_at, milestone_event, flags, last_event_at, last_seq, created_at, entity
             FROM shipments WHERE key = ?1",
        )?
        .query_row([key.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })
        .optional()?;
    match row {
        None => Ok((ShipmentState::new(key.clone()), 0, None, None)),
        Some((state, m_at, m_ev, flags, last, last_seq, created, entity)) => Ok((
            decode_state(key.clone(), &state, m_at, m_ev, &flags, last)?,
            last_seq,
            Some(created),
            entity,
        )),
    }
}

pub(crate) fn decode_state(
    key: ShipmentKey,
    state: &str,
    milestone_at: Option<i64>,
    milestone_event: Option<String>,
    flags: &str,
    last_event_at: Option<i64>,
) -> Result<ShipmentState, StoreError> {
    Ok(ShipmentState {
        key,
        milestone: state.parse::<Milestone>().map_err(StoreError::Corrupt)?,
        milestone_at: milestone_at.map(from_us),
        milestone_event: milestone_event.map(EventId),
        flags: flags_from_str(flags)?,
        last_event_at: last_event_at.map(from_us),
    })
}
