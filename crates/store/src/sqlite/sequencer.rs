//! SEQUENCE inside the write transaction: record the payload, apply each new event to its
//! shipment, append it with the next per-shipment sequence number, route it to the outbox.

use super::{from_us, to_us, JobCtx};
use crate::body::{self, EventBody};
use crate::{IngestOutcome, IngestRecord, StoreError, Verdict};
use rusqlite::{params, Connection};
use std::collections::BTreeSet;
use waybill_model::{CloudEvent, EventId, Flag, Milestone, ShipmentKey, ShipmentState};

/// An ingest record with its events already serialized, so that the single writer thread
/// does as little as possible.
pub(crate) struct Prepared {
    rec: IngestRecord,
    headers: String,
    /// The events with their bodies packed (see [`crate::body`]).
    events: Vec<(CloudEvent, EventBody)>,
    /// The events' ids as stored in the inbox row (JSON array).
    event_ids_json: String,
    /// The raw payload as stored and its encoding (see [`crate::body`]).
    body: Vec<u8>,
    encoding: Option<&'static str>,
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
                // The event's body is packed with the raw payload as the dictionary.
                Ok((e, body::pack_event(json, &rec.body)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?,
        Verdict::Rejected { .. } => Vec::new(),
    };
    let ids: Vec<&EventId> = events.iter().map(|(e, _)| &e.id).collect();
    let event_ids_json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    let (packed, encoding) = body::pack_payload(&rec.body);
    let body = match packed {
        Some(p) => p,
        None => std::mem::take(&mut rec.body),
    };
    Ok(Prepared {
        rec,
        headers,
        events,
        event_ids_json,
        body,
        encoding,
    })
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
        body,
        encoding,
    } = prepared;
    match &rec.verdict {
        Verdict::Rejected { code, reason } => {
            conn.prepare_cached(
                "INSERT INTO inbox (source, idempotency_key, status, reason_code, reason, received_at, headers, body, encoding)
                 VALUES (?1, ?2, 'rejected', ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                rec.source,
                rec.idempotency_key,
                code,
                reason,
                to_us(rec.received_at),
                headers,
                body,
                encoding
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
                    "INSERT INTO inbox (source, idempotency_key, status, received_at, headers, body, event_ids, encoding)
                     VALUES (?1, ?2, 'accepted', ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (source, idempotency_key) WHERE status = 'accepted' DO NOTHING",
                )?
                .execute(params![
                rec.source,
                rec.idempotency_key,
                to_us(rec.received_at),
                headers,
                body,
                event_ids_json,
                encoding
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
            let mut tx = super::tx::SqliteTx { conn, ctx };
            for (ev, body) in events {
                crate::sequence::append(&mut tx, Some(inbox_id), ev, body)?;
            }
            Ok(Stored::Accepted { inbox_id })
        }
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
