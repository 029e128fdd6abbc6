//! OUTBOX and dead letters: what is waiting to be delivered, what was, what gave up.

use super::{payload, stored_event, SqliteStore};
use crate::codec::{
    dead_letter_state, duration_to, from_us, ms_from_us, now_ms, status_from, to_us,
};
use crate::view::Payloads;
use crate::{
    AttemptRecord, DeadLetter, DeadLetterDetail, DeadLetterQuery, DeadLetterRefusal,
    DeadLetterState, DeliveryUpdate, OutboxItem, OutboxItemState, ReplaySelector, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;
use waybill_model::ShipmentKey;

/// The columns [`dead_letter_row`] reads, of `dead_letters d JOIN events e`.
macro_rules! dead_letter_columns {
    () => {
        "d.id, d.outbox_id, d.subscription, d.sink, d.shipment, e.event_id, e.type, d.attempts, d.error,
         d.failed_at, d.replayed_at, d.code, d.kind, d.discarded_at, d.discarded_by"
    };
}

impl SqliteStore {
    pub(crate) async fn pending_outbox(
        &self,
        sink: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let sink = sink.to_owned();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT o.id, o.subscription, o.sink, o.shipment, e.event_id, o.attempts, o.next_attempt_at,
                        e.body, e.encoding, e.shipment_seq, e.inbox_id, e.type
                 FROM outbox o JOIN events e ON e.seq_id = o.event_seq
                 WHERE o.sink = ?1 AND o.state = 'pending' AND o.id > ?2 ORDER BY o.id LIMIT ?3",
            )?;
            let rows = st.query_map(params![sink, after, limit as i64], |r| {
                Ok((
                    OutboxItem {
                        id: r.get(0)?,
                        subscription: r.get(1)?,
                        sink: r.get(2)?,
                        shipment: r.get(3)?,
                        event_id: r.get(4)?,
                        event_type: r.get(11)?,
                        attempts: r.get(5)?,
                        next_attempt_at_ms: r.get(6)?,
                        body: Arc::from(""),
                    },
                    stored_event(r, 7)?,
                ))
            })?;
            let rows = rows.collect::<Result<Vec<_>, _>>()?;
            let mut payloads = Payloads::default();
            let mut out = Vec::with_capacity(rows.len());
            for (mut item, stored) in rows {
                item.body = Arc::from(stored.json(&mut payloads, &mut |id| payload(c, id))?);
                out.push(item);
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn record_deliveries(
        &self,
        updates: Vec<DeliveryUpdate>,
    ) -> Result<(), StoreError> {
        self.write(move |c, _| {
            let now = to_us(OffsetDateTime::now_utc());
            // The latest delivery per sink, written once per batch (not once per row).
            let mut last: HashMap<String, i64> = HashMap::new();
            for u in &updates {
                match u {
                    DeliveryUpdate::Delivered { id, attempts, at_ms, status, duration_us } => {
                        let done = at_ms.saturating_mul(1000).saturating_add(duration_to(*duration_us));
                        let sink: Option<String> = c
                            .prepare_cached(
                                "UPDATE outbox SET state = 'delivered', attempts = ?2, last_error = NULL, updated_at = ?3,
                                   delivered_at = ?4, last_status = ?5, last_duration_us = ?6
                                 WHERE id = ?1 AND state = 'pending' RETURNING sink",
                            )?
                            .query_row(
                                params![id, attempts, now, done, status, duration_to(*duration_us)],
                                |r| r.get(0),
                            )
                            .optional()?;
                        if let Some(sink) = sink {
                            let e = last.entry(sink).or_insert(done);
                            *e = (*e).max(done);
                        }
                    }
                    DeliveryUpdate::Retry { id, attempts, next_attempt_at_ms, error, at_ms, status, duration_us } => {
                        let n = c.prepare_cached(
                            "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4, updated_at = ?5,
                               last_status = ?6, last_duration_us = ?7
                             WHERE id = ?1 AND state = 'pending'",
                        )?
                        .execute(params![id, attempts, next_attempt_at_ms, error, now, status, duration_to(*duration_us)])?;
                        if n == 1 {
                            record_attempt(c, *id, *attempts, *at_ms, *status, *duration_us, error)?;
                        }
                    }
                    DeliveryUpdate::Dead { id, attempts, error, code, kind, at_ms, status, duration_us } => {
                        let n = c
                            .prepare_cached(
                                "UPDATE outbox SET state = 'dead', attempts = ?2, last_error = ?3, updated_at = ?4,
                                   last_status = ?5, last_duration_us = ?6
                                 WHERE id = ?1 AND state = 'pending'",
                            )?
                            .execute(params![id, attempts, error, now, status, duration_to(*duration_us)])?;
                        if n == 1 {
                            record_attempt(c, *id, *attempts, *at_ms, *status, *duration_us, error)?;
                            c.prepare_cached(
                                "INSERT INTO dead_letters (outbox_id, subscription, sink, event_seq, shipment, attempts, error, failed_at, code, kind)
                                 SELECT id, subscription, sink, event_seq, shipment, attempts, last_error, ?2, ?3, ?4 FROM outbox WHERE id = ?1",
                            )?
                            .execute(params![id, now, code, kind])?;
                        }
                    }
                }
            }
            for (sink, at) in &last {
                c.prepare_cached(
                    "INSERT INTO sink_activity (sink, last_delivered_at) VALUES (?1, ?2)
                     ON CONFLICT (sink) DO UPDATE SET last_delivered_at = max(last_delivered_at, excluded.last_delivered_at)",
                )?
                .execute(params![sink, at])?;
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn dead_letters(
        &self,
        q: DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        // One statement per state, so that each reads its own partial index.
        macro_rules! listing {
            ($cond:literal) => {
                concat!(
                    "SELECT ",
                    dead_letter_columns!(),
                    " FROM dead_letters d JOIN events e ON e.seq_id = d.event_seq
                     WHERE ",
                    $cond,
                    " AND (?1 IS NULL OR d.sink = ?1) AND d.id < ?2 AND ",
                    tenant_is!("d.shipment", "?4"),
                    " ORDER BY d.id DESC LIMIT ?3"
                )
            };
        }
        let sql = match (q.state, q.include_replayed) {
            (DeadLetterState::Open, false) => {
                listing!("d.replayed_at IS NULL AND d.discarded_at IS NULL")
            }
            (DeadLetterState::Open, true) => listing!("d.discarded_at IS NULL"),
            (DeadLetterState::Replayed, _) => listing!("d.replayed_at IS NOT NULL"),
            (DeadLetterState::Discarded, _) => listing!("d.discarded_at IS NOT NULL"),
            (DeadLetterState::All, _) => listing!("1"),
        };
        self.read(move |c| {
            let mut st = c.prepare_cached(sql)?;
            let rows = st.query_map(
                params![
                    q.sink,
                    q.before.unwrap_or(i64::MAX),
                    q.limit as i64,
                    q.tenant
                ],
                dead_letter_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(crate) async fn dead_letter(
        &self,
        id: i64,
    ) -> Result<Option<DeadLetterDetail>, StoreError> {
        self.read(move |c| {
            let row = c
                .prepare_cached(concat!(
                    "SELECT ",
                    dead_letter_columns!(),
                    ", d.replay_outbox_id, e.body, e.encoding, e.shipment_seq, e.inbox_id
                     FROM dead_letters d JOIN events e ON e.seq_id = d.event_seq WHERE d.id = ?1"
                ))?
                .query_row([id], |r| {
                    Ok((
                        dead_letter_row(r)?,
                        r.get::<_, Option<i64>>(15)?,
                        stored_event(r, 16)?,
                    ))
                })
                .optional()?;
            let Some((dead_letter, replay_outbox_id, stored)) = row else {
                return Ok(None);
            };
            let json = stored.json(&mut Payloads::default(), &mut |id| payload(c, id))?;
            let event = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("event of dead letter {id}: {e}")))?;
            let history = history(c, dead_letter.outbox_id)?;
            Ok(Some(DeadLetterDetail {
                dead_letter,
                replay_outbox_id,
                event,
                history,
            }))
        })
        .await
    }

    pub(crate) async fn discard_dead_letter(
        &self,
        id: i64,
        by: &str,
    ) -> Result<Result<DeadLetterDetail, DeadLetterRefusal>, StoreError> {
        let by = by.to_owned();
        let done = self
            .write(move |c, _| {
                if let Err(refused) = open_dead_letter(c, id)? {
                    return Ok(Err(refused));
                }
                c.prepare_cached(
                    "UPDATE dead_letters SET discarded_at = ?2, discarded_by = ?3 WHERE id = ?1",
                )?
                .execute(params![id, to_us(OffsetDateTime::now_utc()), by])?;
                Ok(Ok(()))
            })
            .await?;
        if let Err(refused) = done {
            return Ok(Err(refused));
        }
        Ok(self
            .dead_letter(id)
            .await?
            .ok_or(DeadLetterRefusal::NotFound))
    }

    pub(crate) async fn replay_dead_letter(
        &self,
        id: i64,
    ) -> Result<Result<i64, DeadLetterRefusal>, StoreError> {
        self.write(move |c, ctx| {
            let r = replay_one(c, id, to_us(OffsetDateTime::now_utc()))?;
            ctx.created_outbox = r.is_ok();
            Ok(r)
        })
        .await
    }

    pub(crate) async fn replay_dead_letters(
        &self,
        sel: ReplaySelector,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        self.write(move |c, ctx| {
            let ids: Vec<i64> = match sel.clone() {
                ReplaySelector::Ids(ids) => ids,
                ReplaySelector::All { sink, tenant } => {
                    let mut st = c.prepare_cached(concat!(
                        "SELECT id FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL
                           AND (?1 IS NULL OR sink = ?1) AND ",
                        tenant_is!("dead_letters.shipment", "?2"),
                        " ORDER BY id"
                    ))?;
                    let rows = st.query_map(params![sink, tenant], |r| r.get(0))?;
                    rows.collect::<Result<Vec<_>, _>>()?
                }
            };
            let now = to_us(OffsetDateTime::now_utc());
            let mut out = Vec::new();
            for id in ids {
                if let Ok(new_id) = replay_one(c, id, now)? {
                    out.push((id, new_id));
                }
            }
            ctx.created_outbox = !out.is_empty();
            Ok(out)
        })
        .await
    }

    pub(crate) async fn deliveries_of(
        &self,
        shipment: &ShipmentKey,
        event_id: &str,
    ) -> Result<Vec<OutboxItemState>, StoreError> {
        let (shipment, event_id) = (shipment.as_str().to_owned(), event_id.to_owned());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT o.id, o.subscription, o.sink, o.state, o.attempts, o.delivered_at, o.last_status,
                        o.last_duration_us, o.last_error
                 FROM outbox o JOIN events e ON e.seq_id = o.event_seq
                 WHERE e.shipment = ?1 AND e.event_id = ?2 ORDER BY o.id LIMIT 1000",
            )?;
            let rows = st.query_map([shipment, event_id], |r| {
                Ok(OutboxItemState {
                    id: r.get(0)?,
                    subscription: r.get(1)?,
                    sink: r.get(2)?,
                    state: r.get(3)?,
                    attempts: r.get(4)?,
                    delivered_at: r.get::<_, Option<i64>>(5)?.map(from_us),
                    last_status: status_from(r.get(6)?),
                    last_duration_ms: r.get::<_, Option<i64>>(7)?.map(ms_from_us),
                    last_error: r.get(8)?,
                    history: Vec::new(),
                })
            })?;
            let mut out = rows.collect::<Result<Vec<_>, _>>()?;
            for row in &mut out {
                row.history = history(c, row.id)?;
            }
            Ok(out)
        })
        .await
    }
}

fn dead_letter_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    let (replayed, discarded) = (r.get::<_, Option<i64>>(10)?, r.get::<_, Option<i64>>(13)?);
    Ok(DeadLetter {
        id: r.get(0)?,
        outbox_id: r.get(1)?,
        subscription: r.get(2)?,
        sink: r.get(3)?,
        shipment: r.get(4)?,
        event_id: r.get(5)?,
        event_type: r.get(6)?,
        attempts: r.get(7)?,
        error: r.get(8)?,
        failed_at: from_us(r.get(9)?),
        replayed_at: replayed.map(from_us),
        code: r.get(11)?,
        kind: r.get(12)?,
        state: dead_letter_state(replayed, discarded).to_owned(),
        discarded_at: discarded.map(from_us),
        discarded_by: r.get(14)?,
    })
}

/// Most failed attempts shown for one outbox row (the latest ones).
const HISTORY_LIMIT: i64 = 100;

/// The failed attempts of an outbox row, oldest first.
fn history(c: &Connection, outbox_id: i64) -> Result<Vec<AttemptRecord>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT attempt, at, status, duration_us, error FROM delivery_attempts
         WHERE outbox_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![outbox_id, HISTORY_LIMIT], |r| {
        Ok(AttemptRecord {
            attempt: r.get(0)?,
            at: from_us(r.get(1)?),
            status: status_from(r.get(2)?),
            duration_ms: ms_from_us(r.get(3)?),
            error: r.get(4)?,
        })
    })?;
    let mut out = rows.collect::<Result<Vec<_>, _>>()?;
    out.reverse();
    Ok(out)
}

/// Keeps one failed attempt.
fn record_attempt(
    c: &Connection,
    outbox_id: i64,
    attempt: u32,
    at_ms: i64,
    status: Option<u16>,
    duration_us: u64,
    error: &str,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO delivery_attempts (outbox_id, attempt, at, status, duration_us, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        outbox_id,
        attempt,
        at_ms.saturating_mul(1000),
        status,
        duration_to(duration_us),
        error
    ])?;
    Ok(())
}

/// Whether a dead letter is open (neither replayed nor discarded), or why not.
fn open_dead_letter(c: &Connection, id: i64) -> Result<Result<(), DeadLetterRefusal>, StoreError> {
    let row: Option<(Option<i64>, Option<i64>)> = c
        .prepare_cached("SELECT replayed_at, discarded_at FROM dead_letters WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        None => Err(DeadLetterRefusal::NotFound),
        Some((_, Some(_))) => Err(DeadLetterRefusal::Discarded),
        Some((Some(_), None)) => Err(DeadLetterRefusal::Replayed),
        Some((None, None)) => Ok(()),
    })
}

/// Re-enqueues one dead letter as a fresh outbox row (a new id, so it is picked up after
/// the rows already waiting); the event keeps its id, so receivers can still dedupe. A
/// dead letter already replayed, or discarded, is refused.
fn replay_one(
    c: &Connection,
    id: i64,
    now: i64,
) -> Result<Result<i64, DeadLetterRefusal>, StoreError> {
    if let Err(refused) = open_dead_letter(c, id)? {
        return Ok(Err(refused));
    }
    let (subscription, sink, event_seq, shipment): (String, String, i64, String) = c
        .prepare_cached(
            "SELECT subscription, sink, event_seq, shipment FROM dead_letters WHERE id = ?1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    c.prepare_cached(
        "INSERT INTO outbox (subscription, sink, event_seq, shipment, next_attempt_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![subscription, sink, event_seq, shipment, now_ms(), now])?;
    let new_id = c.last_insert_rowid();
    c.prepare_cached(
        "UPDATE dead_letters SET replayed_at = ?2, replay_outbox_id = ?3 WHERE id = ?1",
    )?
    .execute(params![id, now, new_id])?;
    Ok(Ok(new_id))
}
