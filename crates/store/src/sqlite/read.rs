//! The read side: shipments with their timelines, inbox inspection, queue depths.

use super::sequencer::decode_state;
use super::{from_us, SqliteStore};
use crate::{
    Depths, InboxQuery, InboxRecord, ShipmentQuery, ShipmentSummary, ShipmentView, StoreError,
    TimelineEntry, XRef,
};
use rusqlite::{params, Connection, OptionalExtension};
use waybill_model::{CloudEvent, ShipmentKey};

impl SqliteStore {
    pub(crate) async fn shipment(
        &self,
        key: &ShipmentKey,
    ) -> Result<Option<ShipmentView>, StoreError> {
        let key = key.clone();
        self.read(move |c| {
            let row = c
                .prepare_cached(
                    "SELECT state, milestone_at, milestone_event, flags, last_event_at FROM shipments WHERE key = ?1",
                )?
                .query_row([key.as_str()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                })
                .optional()?;
            let Some((st, m_at, m_ev, flags, last)) = row else {
                return Ok(None);
            };
            let state = decode_state(key.clone(), &st, m_at, m_ev, &flags, last)?;
            let mut xs = c.prepare_cached("SELECT kind, value FROM xrefs WHERE shipment = ?1 ORDER BY kind, value")?;
            let xrefs = xs
                .query_map([key.as_str()], |r| Ok(XRef { kind: r.get(0)?, value: r.get(1)? }))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(ShipmentView {
                state,
                xrefs,
                timeline: timeline(c, &key)?,
            }))
        })
        .await
    }

    pub(crate) async fn shipments(
        &self,
        q: ShipmentQuery,
    ) -> Result<Vec<ShipmentSummary>, StoreError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT key, state, milestone_at, milestone_event, flags, last_event_at, last_seq FROM shipments
                 WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR key > ?2) ORDER BY key LIMIT ?3",
            )?;
            let rows = st.query_map(
                params![q.state.map(|m| m.as_str()), q.after, q.limit as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (key, st, m_at, m_ev, flags, last, n) = row?;
                out.push(ShipmentSummary {
                    state: decode_state(ShipmentKey(key), &st, m_at, m_ev, &flags, last)?,
                    events: n,
                });
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn inbox(&self, q: InboxQuery) -> Result<Vec<InboxRecord>, StoreError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, source, idempotency_key, status, reason_code, reason, received_at, event_ids, body, headers FROM inbox
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR source = ?2) ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = st.query_map(params![q.status, q.source, q.limit as i64], |r| {
                Ok(InboxRecord {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    idempotency_key: r.get(2)?,
                    status: r.get(3)?,
                    reason_code: r.get(4)?,
                    reason: r.get(5)?,
                    received_at: from_us(r.get(6)?),
                    event_ids: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
                    body: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(8)?).into_owned(),
                    headers: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(crate) async fn depths(&self) -> Result<Depths, StoreError> {
        self.read(|c| {
            Ok(Depths {
                outbox: grouped(c, "SELECT sink, count(*) FROM outbox WHERE state = 'pending' GROUP BY sink")?,
                dead_letters: grouped(
                    c,
                    "SELECT sink, count(*) FROM dead_letters WHERE replayed_at IS NULL GROUP BY sink",
                )?,
                shipments: grouped(c, "SELECT state, count(*) FROM shipments GROUP BY state")?,
            })
        })
        .await
    }
}

fn grouped(c: &Connection, sql: &str) -> Result<Vec<(String, i64)>, StoreError> {
    let mut st = c.prepare_cached(sql)?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn timeline(c: &Connection, key: &ShipmentKey) -> Result<Vec<TimelineEntry>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT shipment_seq, effect, recorded_at, body FROM events WHERE shipment = ?1
         ORDER BY occurred_at, shipment_seq",
    )?;
    let rows = st.query_map([key.as_str()], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (sequence, effect, rec, body) = row?;
        let event: CloudEvent = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("event body of {key}#{sequence}: {e}")))?;
        out.push(TimelineEntry {
            sequence,
            effect,
            received_at: from_us(rec),
            event,
        });
    }
    Ok(out)
}
