//! SEQUENCE inside the write transaction: record the payload, apply each new event to its
//! shipment, append it with the next per-shipment sequence number, route it to the outbox.

use crate::codec::to_us;
use crate::prepare::{Prepared, Stored};
use crate::writer::JobCtx;
use crate::{StoreError, Verdict};
use rusqlite::{params, Connection};
use waybill_model::EventId;

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
        Verdict::Rejected { code, reason } | Verdict::Sample { code, reason, .. } => {
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
            let inbox_id = conn.last_insert_rowid();
            if let Verdict::Sample { any_source, .. } = &rec.verdict {
                // Keep the newest samples only: delete the one past the cap (and any older).
                if *any_source {
                    conn.prepare_cached(
                        "DELETE FROM inbox WHERE status = 'rejected' AND reason_code = ?1 AND id <= (
                           SELECT id FROM inbox WHERE status = 'rejected' AND reason_code = ?1
                           ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                    )?
                    .execute(params![code, crate::SAMPLES_KEPT])?;
                } else {
                    conn.prepare_cached(
                        "DELETE FROM inbox WHERE status = 'rejected' AND reason_code = ?1 AND source = ?2 AND id <= (
                           SELECT id FROM inbox WHERE status = 'rejected' AND reason_code = ?1 AND source = ?2
                           ORDER BY id DESC LIMIT 1 OFFSET ?3)",
                    )?
                    .execute(params![code, rec.source, crate::SAMPLES_KEPT])?;
                }
            }
            Ok(Stored::Rejected { inbox_id })
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
