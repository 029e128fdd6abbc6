//! OUTBOX and dead letters on PostgreSQL.

use super::{PgConn, PgStore};
use crate::codec::{
    dead_letter_state, duration_to, from_us, ms_from_us, now_ms, status_from, to_us,
};
use crate::view::{Payloads, StoredEvent, StoredPayload};
use crate::{
    AttemptRecord, DeadLetter, DeadLetterDetail, DeadLetterQuery, DeadLetterRefusal,
    DeadLetterState, DeliveryUpdate, OutboxItem, OutboxItemState, ReplaySelector, StoreError,
};
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
        // Outbox rows only: what the batch's ingests read ahead stays valid.
        self.write(move |c, _| c.keeping(|c| {
            let now = to_us(OffsetDateTime::now_utc());
            // The common answer, delivered, for all rows in one statement, which also
            // keeps each sink's latest delivery (one row per sink, not per delivery).
            let mut ids = Vec::new();
            let mut tries = Vec::new();
            let mut done = Vec::new();
            let mut statuses: Vec<Option<i32>> = Vec::new();
            let mut durations = Vec::new();
            for u in &updates {
                if let DeliveryUpdate::Delivered { id, attempts, at_ms, status, duration_us } = u {
                    ids.push(*id);
                    tries.push(i64::from(*attempts));
                    done.push(at_ms.saturating_mul(1000).saturating_add(duration_to(*duration_us)));
                    statuses.push(status.map(i32::from));
                    durations.push(duration_to(*duration_us));
                }
            }
            if !ids.is_empty() {
                c.exec(
                    "WITH d AS (
                       UPDATE outbox o SET state = 'delivered', attempts = d.attempts, last_error = NULL, updated_at = $3,
                         delivered_at = d.done, last_status = d.status, last_duration_us = d.duration
                       FROM unnest($1::bigint[], $2::bigint[], $4::bigint[], $5::int[], $6::bigint[])
                         AS d(id, attempts, done, status, duration)
                       WHERE o.id = d.id AND o.state = 'pending'
                       RETURNING o.sink, d.done)
                     INSERT INTO sink_activity (sink, last_delivered_at)
                     SELECT sink, max(done) FROM d GROUP BY sink
                     ON CONFLICT (sink) DO UPDATE
                       SET last_delivered_at = greatest(sink_activity.last_delivered_at, excluded.last_delivered_at)",
                    &[&ids, &tries, &now, &done, &statuses, &durations],
                )?;
            }
            for u in &updates {
                match u {
                    DeliveryUpdate::Delivered { .. } => {}
                    DeliveryUpdate::Retry { id, attempts, next_attempt_at_ms, error, at_ms, status, duration_us } => {
                        let n = c.exec(
                            "UPDATE outbox SET attempts = $2, next_attempt_at = $3, last_error = $4, updated_at = $5,
                               last_status = $6, last_duration_us = $7
                             WHERE id = $1 AND state = 'pending'",
                            &[id, &i64::from(*attempts), next_attempt_at_ms, error, &now,
                              &status.map(i32::from), &duration_to(*duration_us)],
                        )?;
                        if n == 1 {
                            record_attempt(c, *id, *attempts, *at_ms, *status, *duration_us, error)?;
                        }
                    }
                    DeliveryUpdate::Dead { id, attempts, error, code, kind, at_ms, status, duration_us } => {
                        let n = c.exec(
                            "UPDATE outbox SET state = 'dead', attempts = $2, last_error = $3, updated_at = $4,
                               last_status = $5, last_duration_us = $6
                             WHERE id = $1 AND state = 'pending'",
                            &[id, &i64::from(*attempts), error, &now, &status.map(i32::from),
                              &duration_to(*duration_us)],
                        )?;
                        if n == 1 {
                            record_attempt(c, *id, *attempts, *at_ms, *status, *duration_us, error)?;
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
        }))
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
                    " AND ($1::text IS NULL OR d.sink = $1) AND d.id < $2 AND ",
                    tenant_is!("d.shipment", "$4::text"),
                    " ORDER BY d.id DESC LIMIT $3"
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
            (DeadLetterState::All, _) => listing!("true"),
        };
        self.read(move |c| {
            let rows = c.query(
                sql,
                &[
                    &q.sink,
                    &q.before.unwrap_or(i64::MAX),
                    &(q.limit as i64),
                    &q.tenant,
                ],
            )?;
            Ok(rows.iter().map(dead_letter_row).collect())
        })
        .await
    }

    pub(crate) async fn dead_letter(
        &self,
        id: i64,
    ) -> Result<Option<DeadLetterDetail>, StoreError> {
        self.read(move |c| {
            let Some(r) = c.query_opt(
                concat!(
                    "SELECT ",
                    dead_letter_columns!(),
                    ", d.replay_outbox_id, e.body, e.encoding, e.shipment_seq, e.inbox_id
                     FROM dead_letters d JOIN events e ON e.seq_id = d.event_seq WHERE d.id = $1"
                ),
                &[&id],
            )?
            else {
                return Ok(None);
            };
            let dead_letter = dead_letter_row(&r);
            let stored = StoredEvent {
                body: r.get(16),
                encoding: r.get(17),
                seq: r.get(18),
                inbox_id: r.get(19),
            };
            let json = stored.json(&mut Payloads::default(), &mut |id| {
                super::read::payload(c, id)
            })?;
            let event = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("event of dead letter {id}: {e}")))?;
            let history = history(c, &[dead_letter.outbox_id])?
                .remove(&dead_letter.outbox_id)
                .unwrap_or_default();
            Ok(Some(DeadLetterDetail {
                replay_outbox_id: r.get(15),
                dead_letter,
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
                c.exec(
                    "UPDATE dead_letters SET discarded_at = $2, discarded_by = $3 WHERE id = $1",
                    &[&id, &to_us(OffsetDateTime::now_utc()), &by],
                )?;
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
            let ids: Vec<i64> = match &sel {
                ReplaySelector::Ids(ids) => ids.clone(),
                ReplaySelector::All { sink, tenant } => c
                    .query(
                        concat!(
                            "SELECT id FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL
                               AND ($1::text IS NULL OR sink = $1) AND ",
                            tenant_is!("dead_letters.shipment", "$2::text"),
                            " ORDER BY id"
                        ),
                        &[sink, tenant],
                    )?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
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
            let mut out: Vec<OutboxItemState> = c
                .query(
                    "SELECT o.id, o.subscription, o.sink, o.state, o.attempts, o.delivered_at, o.last_status,
                            o.last_duration_us, o.last_error
                     FROM outbox o JOIN events e ON e.seq_id = o.event_seq
                     WHERE e.shipment = $1 AND e.event_id = $2 ORDER BY o.id LIMIT 1000",
                    &[&shipment, &event_id],
                )?
                .iter()
                .map(|r| OutboxItemState {
                    id: r.get(0),
                    subscription: r.get(1),
                    sink: r.get(2),
                    state: r.get(3),
                    attempts: attempts(r.get(4)),
                    delivered_at: r.get::<_, Option<i64>>(5).map(from_us),
                    last_status: status_from(r.get::<_, Option<i32>>(6).map(i64::from)),
                    last_duration_ms: r.get::<_, Option<i64>>(7).map(ms_from_us),
                    last_error: r.get(8),
                    history: Vec::new(),
                })
                .collect();
            let ids: Vec<i64> = out.iter().map(|o| o.id).collect();
            let mut by = history(c, &ids)?;
            for o in &mut out {
                o.history = by.remove(&o.id).unwrap_or_default();
            }
            Ok(out)
        })
        .await
    }
}

fn dead_letter_row(r: &postgres::Row) -> DeadLetter {
    let (replayed, discarded) = (r.get::<_, Option<i64>>(10), r.get::<_, Option<i64>>(13));
    DeadLetter {
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
        replayed_at: replayed.map(from_us),
        code: r.get(11),
        kind: r.get(12),
        state: dead_letter_state(replayed, discarded).to_owned(),
        discarded_at: discarded.map(from_us),
        discarded_by: r.get(14),
    }
}

/// Most failed attempts shown for one outbox row (the latest ones).
const HISTORY_LIMIT: i64 = 100;

/// The failed attempts of these outbox rows, oldest first, by row.
fn history(
    c: &mut PgConn,
    outbox_ids: &[i64],
) -> Result<HashMap<i64, Vec<AttemptRecord>>, StoreError> {
    let mut out: HashMap<i64, Vec<AttemptRecord>> = HashMap::new();
    if outbox_ids.is_empty() {
        return Ok(out);
    }
    let ids = outbox_ids.to_vec();
    let rows = c.query(
        "SELECT a.outbox_id, a.attempt, a.at, a.status, a.duration_us, a.error
         FROM unnest($1::bigint[]) AS o(id)
         CROSS JOIN LATERAL (
           SELECT outbox_id, attempt, at, status, duration_us, error, id FROM delivery_attempts
           WHERE outbox_id = o.id ORDER BY id DESC LIMIT $2) a
         ORDER BY a.outbox_id, a.id",
        &[&ids, &HISTORY_LIMIT],
    )?;
    for r in rows {
        out.entry(r.get(0)).or_default().push(AttemptRecord {
            attempt: attempts(r.get(1)),
            at: from_us(r.get(2)),
            status: status_from(r.get::<_, Option<i32>>(3).map(i64::from)),
            duration_ms: ms_from_us(r.get(4)),
            error: r.get(5),
        });
    }
    Ok(out)
}

/// Keeps one failed attempt.
fn record_attempt(
    c: &mut PgConn,
    outbox_id: i64,
    attempt: u32,
    at_ms: i64,
    status: Option<u16>,
    duration_us: u64,
    error: &str,
) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO delivery_attempts (outbox_id, attempt, at, status, duration_us, error)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &outbox_id,
            &i64::from(attempt),
            &at_ms.saturating_mul(1000),
            &status.map(i32::from),
            &duration_to(duration_us),
            &error,
        ],
    )?;
    Ok(())
}

/// Whether a dead letter is open (neither replayed nor discarded), or why not.
fn open_dead_letter(c: &mut PgConn, id: i64) -> Result<Result<(), DeadLetterRefusal>, StoreError> {
    let row = c.query_opt(
        "SELECT replayed_at, discarded_at FROM dead_letters WHERE id = $1",
        &[&id],
    )?;
    Ok(
        match row.map(|r| (r.get::<_, Option<i64>>(0), r.get::<_, Option<i64>>(1))) {
            None => Err(DeadLetterRefusal::NotFound),
            Some((_, Some(_))) => Err(DeadLetterRefusal::Discarded),
            Some((Some(_), None)) => Err(DeadLetterRefusal::Replayed),
            Some((None, None)) => Ok(()),
        },
    )
}

/// Re-enqueues one dead letter as a fresh outbox row (see the SQLite backend); one
/// already replayed, or discarded, is refused.
fn replay_one(
    c: &mut PgConn,
    id: i64,
    now: i64,
) -> Result<Result<i64, DeadLetterRefusal>, StoreError> {
    if let Err(refused) = open_dead_letter(c, id)? {
        return Ok(Err(refused));
    }
    let Some(r) = c.query_opt(
        "SELECT subscription, sink, event_seq, shipment FROM dead_letters WHERE id = $1",
        &[&id],
    )?
    else {
        return Ok(Err(DeadLetterRefusal::NotFound));
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
    Ok(Ok(new_id))
}
