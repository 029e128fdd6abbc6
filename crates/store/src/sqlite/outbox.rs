//! OUTBOX and dead letters: what is waiting to be delivered, what was, what gave up.

use super::{payload, stored_event, SqliteStore};
use crate::codec::{from_us, now_ms, to_us};
use crate::view::Payloads;
use crate::{
    DeadLetter, DeadLetterQuery, DeliveryUpdate, OutboxItem, OutboxItemState, ReplaySelector,
    StoreError,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Arc;
use time::OffsetDateTime;
use waybill_model::ShipmentKey;

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
            for u in &updates {
                match u {
                    DeliveryUpdate::Delivered { id, attempts } => {
                        c.prepare_cached(
                            "UPDATE outbox SET state = 'delivered', attempts = ?2, last_error = NULL, updated_at = ?3
                             WHERE id = ?1 AND state = 'pending'",
                        )?
                        .execute(params![id, attempts, now])?;
                    }
                    DeliveryUpdate::Retry { id, attempts, next_attempt_at_ms, error } => {
                        c.prepare_cached(
                            "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4, updated_at = ?5
                             WHERE id = ?1 AND state = 'pending'",
                        )?
                        .execute(params![id, attempts, next_attempt_at_ms, error, now])?;
                    }
                    DeliveryUpdate::Dead { id, attempts, error, code, kind } => {
                        let n = c
                            .prepare_cached(
                                "UPDATE outbox SET state = 'dead', attempts = ?2, last_error = ?3, updated_at = ?4
                                 WHERE id = ?1 AND state = 'pending'",
                            )?
                            .execute(params![id, attempts, error, now])?;
                        if n == 1 {
                            c.prepare_cached(
                                "INSERT INTO dead_letters (outbox_id, subscription, sink, event_seq, shipment, attempts, error, failed_at, code, kind)
                                 SELECT id, subscription, sink, event_seq, shipment, attempts, last_error, ?2, ?3, ?4 FROM outbox WHERE id = ?1",
                            )?
                            .execute(params![id, now, code, kind])?;
                        }
                    }
                }
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn dead_letters(
        &self,
        q: DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT d.id, d.outbox_id, d.subscription, d.sink, d.shipment, e.event_id, e.type, d.attempts, d.error,
                        d.failed_at, d.replayed_at, d.code, d.kind
                 FROM dead_letters d JOIN events e ON e.seq_id = d.event_seq
                 WHERE (?1 IS NULL OR d.sink = ?1) AND (?2 OR d.replayed_at IS NULL)
                 ORDER BY d.id DESC LIMIT ?3",
            )?;
            let rows = st.query_map(params![q.sink, q.include_replayed, q.limit as i64], |r| {
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
                    replayed_at: r.get::<_, Option<i64>>(10)?.map(from_us),
                    code: r.get(11)?,
                    kind: r.get(12)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
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
                ReplaySelector::All { sink } => {
                    let mut st = c.prepare_cached(
                        "SELECT id FROM dead_letters WHERE replayed_at IS NULL AND (?1 IS NULL OR sink = ?1) ORDER BY id",
                    )?;
                    let rows = st.query_map(params![sink], |r| r.get(0))?;
                    rows.collect::<Result<Vec<_>, _>>()?
                }
            };
            let now = to_us(OffsetDateTime::now_utc());
            let mut out = Vec::new();
            for id in ids {
                if let Some(new_id) = replay_one(c, id, now)? {
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
                "SELECT o.id, o.subscription, o.state, o.attempts FROM outbox o
                 JOIN events e ON e.seq_id = o.event_seq WHERE e.shipment = ?1 AND e.event_id = ?2 ORDER BY o.id",
            )?;
            let rows = st.query_map([shipment, event_id], |r| {
                Ok(OutboxItemState {
                    id: r.get(0)?,
                    subscription: r.get(1)?,
                    state: r.get(2)?,
                    attempts: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

/// Re-enqueues one dead letter as a fresh outbox row (a new id, so it is picked up after
/// the rows already waiting); the event keeps its id, so receivers can still dedupe.
fn replay_one(c: &Connection, id: i64, now: i64) -> Result<Option<i64>, StoreError> {
    let row: Option<(String, String, i64, String)> = c
        .prepare_cached(
            "SELECT subscription, sink, event_seq, shipment FROM dead_letters WHERE id = ?1 AND replayed_at IS NULL",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((subscription, sink, event_seq, shipment)) = row else {
        return Ok(None);
    };
    c.prepare_cached(
        "INSERT INTO outbox (subscription, sink, event_seq, shipment, next_attempt_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![subscription, sink, event_seq, shipment, now_ms(), now])?;
    let new_id = c.last_insert_rowid();
    c.prepare_cached(
        "UPDATE dead_letters SET replayed_at = ?2, replay_outbox_id = ?3 WHERE id = ?1",
    )?
    .execute(params![id, now, new_id])?;
    Ok(Some(new_id))
}
