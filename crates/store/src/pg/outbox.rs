//! OUTBOX and dead letters on PostgreSQL.

use super::{PgConn, PgStore};
use crate::codec::{from_us, now_ms, to_us};
use crate::view::{Payloads, StoredEvent, StoredPayload};
use crate::{
    DeadLetter, DeadLetterQuery, DeliveryUpdate, OutboxItem, OutboxItemState, ReplaySelector,
    StoreError,
};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;
use waybill_model::ShipmentKey;

fn attempts(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl PgStore {
    pub(crate) async fn pending_outbox(
        &self,
        sink: &str,
        after: i64,
        limit: usize,
        buckets: i64,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let sink = sink.to_owned();
        self.read(move |c| {
            let rows = c.query(
                "SELECT o.id, o.subscription, o.sink, o.shipment, e.event_id, o.attempts, o.next_attempt_at,
                        e.body, e.encoding, e.shipment_seq, e.inbox_id, e.type
                 FROM outbox o JOIN events e ON e.seq_id = o.event_seq
                 WHERE o.sink = $1 AND o.state = 'pending' AND o.id > $2
                   AND (($4::bigint >> o.bucket::int) & 1) = 1
                 ORDER BY o.id LIMIT $3",
                &[&sink, &after, &(limit as i64), &buckets],
            )?;
            // The payloads events were packed against, in one query for the page (not
            // one round trip per payload).
            let mut wanted: Vec<i64> = rows
                .iter()
                .filter(|r| r.get::<_, Option<&str>>(8) == Some(crate::body::LZ4_PAYLOAD))
                .filter_map(|r| r.get::<_, Option<i64>>(10))
                .collect();
            wanted.sort_unstable();
            wanted.dedup();
            let mut fetched: HashMap<i64, StoredPayload> = HashMap::new();
            if !wanted.is_empty() {
                for r in c.query(
                    "SELECT id, body, encoding FROM inbox WHERE id = ANY($1)",
                    &[&wanted],
                )? {
                    fetched.insert(r.get(0), (r.get(1), r.get(2)));
                }
            }
            let mut payloads = Payloads::default();
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let stored = StoredEvent {
                    body: r.get(7),
                    encoding: r.get(8),
                    seq: r.get(9),
                    inbox_id: r.get(10),
                };
                let body = stored.json(&mut payloads, &mut |id| match fetched.get(&id).cloned() {
                    Some(p) => Ok(Some(p)),
                    None => super::read::payload(c, id),
                })?;
                out.push(OutboxItem {
                    id: r.get(0),
                    subscription: r.get(1),
                    sink: r.get(2),
                    shipment: r.get(3),
                    event_id: r.get(4),
                    event_type: r.get(11),
                    attempts: attempts(r.get(5)),
                    next_attempt_at_ms: r.get(6),
                    body: Arc::from(body),
                });
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
            // The common answer, delivered, for all rows in one statement.
            let (ids, tries): (Vec<i64>, Vec<i64>) = updates
                .iter()
                .filter_map(|u| match u {
                    DeliveryUpdate::Delivered { id, attempts } => Some((*id, i64::from(*attempts))),
                    _ => None,
                })
                .unzip();
            if !ids.is_empty() {
                c.exec(
                    "UPDATE outbox o SET state = 'delivered', attempts = d.attempts, last_error = NULL, updated_at = $3
                     FROM unnest($1::bigint[], $2::bigint[]) AS d(id, attempts)
                     WHERE o.id = d.id AND o.state = 'pending'",
                    &[&ids, &tries, &now],
                )?;
            }
            for u in &updates {
                match u {
                    DeliveryUpdate::Delivered { .. } => {}
                    DeliveryUpdate::Retry { id, attempts, next_attempt_at_ms, error } => {
                        c.exec(
                            "UPDATE outbox SET attempts = $2, next_attempt_at = $3, last_error = $4, updated_at = $5
                             WHERE id = $1 AND state = 'pending'",
                            &[id, &i64::from(*attempts), next_attempt_at_ms, error, &now],
                        )?;
                    }
                    DeliveryUpdate::Dead { id, attempts, error, code, kind } => {
                        let n = c.exec(
                            "UPDATE outbox SET state = 'dead', attempts = $2, last_error = $3, updated_at = $4
                             WHERE id = $1 AND state = 'pending'",
                            &[id, &i64::from(*attempts), error, &now],
                        )?;
                        if n == 1 {
                            c.exec(
                                "INSERT INTO dead_letters (outbox_id, subscription, sink, event_seq, shipment, attempts, error, failed_at, code, kind)
                                 SELECT id, subscription, sink, event_seq, shipment, attempts, last_error, $2, $3, $4 FROM outbox WHERE id = $1",
                                &[id, &now, code, kind],
                            )?;
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
            let rows = c.query(
                "SELECT d.id, d.outbox_id, d.subscription, d.sink, d.shipment, e.event_id, e.type, d.attempts, d.error,
                        d.failed_at, d.replayed_at, d.code, d.kind
                 FROM dead_letters d JOIN events e ON e.seq_id = d.event_seq
                 WHERE ($1::text IS NULL OR d.sink = $1) AND ($2 OR d.replayed_at IS NULL)
                 ORDER BY d.id DESC LIMIT $3",
                &[&q.sink, &q.include_replayed, &(q.limit as i64)],
            )?;
            Ok(rows
                .iter()
                .map(|r| DeadLetter {
                    id: r.get(0),
                    outbox_id: r.get(1),
                    subscription: r.get(2),
                    sink: r.get(3),
                    shipment: r.get(4),
                    event_id: r.get(5),
                    event_type: r.get(6),
                    attempts: attempts(r.get(7)),
                    error: r.get(8),
                    failed_at: from_us(r.get(9)),
                    replayed_at: r.get::<_, Option<i64>>(10).map(from_us),
                    code: r.get(11),
                    kind: r.get(12),
                })
                .collect())
        })
        .await
    }

    pub(crate) async fn replay_dead_letters(
        &self,
        sel: ReplaySelector,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        self.write(move |c, ctx| {
            let ids: Vec<i64> = match &sel {
                ReplaySelector::Ids(ids) => ids.clone(),
                ReplaySelector::All { sink } => c
                    .query(
                        "SELECT id FROM dead_letters WHERE replayed_at IS NULL AND ($1::text IS NULL OR sink = $1) ORDER BY id",
                        &[sink],
                    )?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
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
            Ok(c.query(
                "SELECT o.id, o.subscription, o.state, o.attempts FROM outbox o
                 JOIN events e ON e.seq_id = o.event_seq WHERE e.shipment = $1 AND e.event_id = $2 ORDER BY o.id",
                &[&shipment, &event_id],
            )?
            .iter()
            .map(|r| OutboxItemState {
                id: r.get(0),
                subscription: r.get(1),
                state: r.get(2),
                attempts: attempts(r.get(3)),
            })
            .collect())
        })
        .await
    }
}

/// Re-enqueues one dead letter as a fresh outbox row (see the SQLite backend).
fn replay_one(c: &mut PgConn, id: i64, now: i64) -> Result<Option<i64>, StoreError> {
    let Some(r) = c.query_opt(
        "SELECT subscription, sink, event_seq, shipment FROM dead_letters WHERE id = $1 AND replayed_at IS NULL",
        &[&id],
    )?
    else {
        return Ok(None);
    };
    let (subscription, sink, event_seq, shipment): (String, String, i64, String) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    let rows = c.query(
        "INSERT INTO outbox (subscription, sink, event_seq, shipment, next_attempt_at, updated_at, bucket)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        &[&subscription, &sink, &event_seq, &shipment, &now_ms(), &now, &crate::lease::bucket_of(&shipment)],
    )?;
    let new_id: i64 = rows
        .first()
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
    c.exec(
        "UPDATE dead_letters SET replayed_at = $2, replay_outbox_id = $3 WHERE id = $1",
        &[&id, &now, &new_id],
    )?;
    Ok(Some(new_id))
}
