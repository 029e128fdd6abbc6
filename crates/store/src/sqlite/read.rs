//! The read side: shipments with their timelines, inbox inspection, queue depths.

use super::{payload, stored_event, SqliteStore};
use crate::codec::{decode_state, from_us};
use crate::sequence::Lane;
use crate::view::{self, Reader, TimelineRow};
use crate::{
    ConflictQuery, ConflictRecord, Depths, InboxQuery, InboxRecord, OrderView, Resolved,
    ShipmentQuery, ShipmentSummary, ShipmentView, SinkStats, StoreError, XRef,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use waybill_model::ownership::{Fact, Observation};
use waybill_model::ShipmentKey;

/// The columns [`inbox_row`] reads.
macro_rules! inbox_columns {
    () => {
        "id, source, idempotency_key, status, reason_code, reason, received_at, event_ids, body, headers, encoding,
         reprocessed_at, reprocessed_into"
    };
}

impl SqliteStore {
    pub(crate) async fn shipment(
        &self,
        key: &ShipmentKey,
    ) -> Result<Option<ShipmentView>, StoreError> {
        let key = key.clone();
        let rules = self.ownership();
        self.read(move |c| view::shipment(&mut SqliteReader::new(c), key.as_str(), &rules))
            .await
    }

    /// What a shipment key or an alias (`kind:value`, or a bare identifier) names.
    pub(crate) async fn resolve_key(&self, text: &str) -> Result<Resolved, StoreError> {
        let text = text.to_owned();
        self.read(move |c| view::resolve_key(&mut SqliteReader::new(c), &text))
            .await
    }

    pub(crate) async fn shipments(
        &self,
        q: ShipmentQuery,
    ) -> Result<Vec<ShipmentSummary>, StoreError> {
        self.read(move |c| {
            if let Some((kind, value)) = &q.reference {
                return view::shipments_by_reference(&mut SqliteReader::new(c), kind, value, &q);
            }
            // One statement per filter, each a range of one index (the primary key, or
            // (state, key)): SQLite's plan for `(?1 IS NULL OR state = ?1)` would walk the
            // whole key order up to the cursor, tens of ms deep into a million shipments.
            // A tenant's list reads its own index (tenant, key).
            let mut st = c.prepare_cached(match (&q.tenant, q.state.is_some()) {
                (Some(_), _) => "SELECT key, state, milestone_at, milestone_event, flags, last_event_at, last_seq FROM shipments
                 WHERE tenant = ?4 AND (?1 IS NULL OR state = ?1) AND key > ?2 AND entity IS NULL ORDER BY key LIMIT ?3",
                (None, true) => "SELECT key, state, milestone_at, milestone_event, flags, last_event_at, last_seq FROM shipments
                 WHERE state = ?1 AND key > ?2 AND entity IS NULL AND ?4 IS NULL ORDER BY key LIMIT ?3",
                (None, false) => "SELECT key, state, milestone_at, milestone_event, flags, last_event_at, last_seq FROM shipments
                 WHERE ?1 IS NULL AND key > ?2 AND entity IS NULL AND ?4 IS NULL ORDER BY key LIMIT ?3",
            })?;
            let rows = st.query_map(
                params![
                    q.state.map(|m| m.as_str()),
                    q.after.as_deref().unwrap_or(""),
                    q.limit as i64,
                    q.tenant
                ],
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

    /// The order named by `text` (an order alias, or any key or alias of one of its
    /// shipments), with its shipments.
    pub(crate) async fn order(&self, text: &str) -> Result<Option<OrderView>, StoreError> {
        let text = text.to_owned();
        self.read(move |c| view::order_view(&mut SqliteReader::new(c), &text))
            .await
    }

    pub(crate) async fn conflicts(
        &self,
        q: ConflictQuery,
    ) -> Result<Vec<ConflictRecord>, StoreError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, kind, shipment, fact, detail, recorded_at FROM conflicts
                 WHERE (?1 IS NULL OR kind = ?1) AND id > ?2 AND (?4 IS NULL OR (SELECT c.tenant FROM shipments s JOIN shipments c ON c.key = coalesce(s.entity, s.key) WHERE s.key = conflicts.shipment) = ?4)
                 ORDER BY id LIMIT ?3",
            )?;
            let rows = st.query_map(
                params![q.kind, q.after.unwrap_or(0), q.limit as i64, q.tenant],
                conflict_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The references of every lane of the shipment `lane` belongs to (`kind`, `value`),
    /// as they are matched: what a sink may use to find the record an event is about.
    pub(crate) async fn resolved_refs(
        &self,
        lane: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let lane = lane.to_owned();
        self.read(move |c| view::resolved_refs(&mut SqliteReader::new(c), &lane))
            .await
    }

    pub(crate) async fn tenant_of(&self, lane: &str) -> Result<Option<String>, StoreError> {
        let lane = lane.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT c.tenant FROM shipments s JOIN shipments c ON c.key = coalesce(s.entity, s.key) WHERE s.key = ?1",
            )?
            .query_row([&lane], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
        })
        .await
    }

    pub(crate) async fn inbox(&self, q: InboxQuery) -> Result<Vec<InboxRecord>, StoreError> {
        // Rejected records not reprocessed yet (the console's work list) read their own
        // partial index.
        let sql = if q.open_only && q.status.as_deref() == Some("rejected") {
            concat!(
                "SELECT ",
                inbox_columns!(),
                " FROM inbox
                 WHERE status = 'rejected' AND reprocessed_at IS NULL AND ?1 = 'rejected'
                   AND (?2 IS NULL OR source = ?2) AND ?3 AND id < ?4
                   AND (?6 IS NULL OR source IN (SELECT value FROM json_each(?6)))
                 ORDER BY id DESC LIMIT ?5"
            )
        } else {
            concat!(
                "SELECT ",
                inbox_columns!(),
                " FROM inbox
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR source = ?2)
                   AND (NOT ?3 OR reprocessed_at IS NULL) AND id < ?4
                   AND (?6 IS NULL OR source IN (SELECT value FROM json_each(?6)))
                 ORDER BY id DESC LIMIT ?5"
            )
        };
        let sources = q
            .sources
            .as_ref()
            .map(|s| serde_json::Value::from(s.clone()).to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(sql)?;
            let rows = st.query_map(
                params![
                    q.status,
                    q.source,
                    q.open_only,
                    q.before.unwrap_or(i64::MAX),
                    q.limit as i64,
                    sources
                ],
                inbox_row,
            )?;
            let mut out = Vec::new();
            for row in rows {
                out.push(inbox_record(row?)?);
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn inbox_record(&self, id: i64) -> Result<Option<InboxRecord>, StoreError> {
        self.read(move |c| {
            let row = c
                .prepare_cached(concat!(
                    "SELECT ",
                    inbox_columns!(),
                    " FROM inbox WHERE id = ?1"
                ))?
                .query_row([id], inbox_row)
                .optional()?;
            row.map(inbox_record).transpose()
        })
        .await
    }

    pub(crate) async fn depths(&self) -> Result<Depths, StoreError> {
        self.read(|c| {
            Ok(Depths {
                outbox: grouped(c, "SELECT sink, count(*) FROM outbox WHERE state = 'pending' GROUP BY sink")?,
                dead_letters: grouped(
                    c,
                    "SELECT sink, count(*) FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL GROUP BY sink",
                )?,
                shipments: grouped(
                    c,
                    "SELECT state, count(*) FROM shipments WHERE entity IS NULL GROUP BY state",
                )?,
            })
        })
        .await
    }

    /// Health figures per sink, from the partial indexes of pending rows and open dead
    /// letters and the one-row-per-sink `sink_activity`.
    pub(crate) async fn sink_stats(&self) -> Result<Vec<SinkStats>, StoreError> {
        self.read(|c| {
            let mut pending: Vec<(String, i64, i64)> = Vec::new();
            {
                let mut st = c.prepare_cached(
                    "SELECT sink, count(*), min(id) FROM outbox WHERE state = 'pending' GROUP BY sink",
                )?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                for r in rows {
                    pending.push(r?);
                }
            }
            let mut out: BTreeMap<String, SinkStats> = BTreeMap::new();
            let blank = |sink: &str| SinkStats {
                sink: sink.to_owned(),
                pending: 0,
                oldest_pending_at: None,
                last_delivered_at: None,
                dead_open: 0,
            };
            for (sink, n, first) in pending {
                let at: Option<i64> = c
                    .prepare_cached(
                        "SELECT e.recorded_at FROM outbox o JOIN events e ON e.seq_id = o.event_seq WHERE o.id = ?1",
                    )?
                    .query_row([first], |r| r.get(0))
                    .optional()?;
                let s = out.entry(sink.clone()).or_insert_with(|| blank(&sink));
                s.pending = n;
                s.oldest_pending_at = at.map(from_us);
            }
            for (sink, n) in grouped(
                c,
                "SELECT sink, count(*) FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL GROUP BY sink",
            )? {
                out.entry(sink.clone()).or_insert_with(|| blank(&sink)).dead_open = n;
            }
            for (sink, at) in grouped(c, "SELECT sink, last_delivered_at FROM sink_activity")? {
                out.entry(sink.clone())
                    .or_insert_with(|| blank(&sink))
                    .last_delivered_at = Some(from_us(at));
            }
            for (sink, _) in grouped(
                c,
                "SELECT sink, 0 FROM subscriptions WHERE deleted = 0 UNION SELECT sink, 0 FROM sink_controls",
            )? {
                out.entry(sink.clone()).or_insert_with(|| blank(&sink));
            }
            Ok(out.into_values().collect())
        })
        .await
    }
}

/// An inbox row with its body as stored and the body's encoding.
type InboxRow = (InboxRecord, Vec<u8>, Option<String>);

fn inbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InboxRow> {
    Ok((
        InboxRecord {
            id: r.get(0)?,
            source: r.get(1)?,
            idempotency_key: r.get(2)?,
            status: r.get(3)?,
            reason_code: r.get(4)?,
            reason: r.get(5)?,
            received_at: from_us(r.get(6)?),
            event_ids: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
            body: String::new(),
            headers: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
            reprocessed_at: r.get::<_, Option<i64>>(11)?.map(from_us),
            reprocessed_into: r.get(12)?,
        },
        r.get::<_, Vec<u8>>(8)?,
        r.get::<_, Option<String>>(10)?,
    ))
}

/// The record with its body unpacked.
fn inbox_record((mut rec, stored, encoding): InboxRow) -> Result<InboxRecord, StoreError> {
    let raw = crate::body::unpack_payload(stored, encoding.as_deref())?;
    rec.body = String::from_utf8_lossy(&raw).into_owned();
    Ok(rec)
}

fn grouped(c: &Connection, sql: &str) -> Result<Vec<(String, i64)>, StoreError> {
    let mut st = c.prepare_cached(sql)?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn conflict_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConflictRecord> {
    Ok(ConflictRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        shipment: r.get(2)?,
        fact: r.get(3)?,
        detail: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
        recorded_at: from_us(r.get(5)?),
    })
}

/// The read side's primitive reads over one SQLite connection.
pub(crate) struct SqliteReader<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteReader<'c> {
    /// Reads through `conn`.
    pub(crate) fn new(conn: &'c Connection) -> Self {
        SqliteReader { conn }
    }
}

impl Reader for SqliteReader<'_> {
    fn lane(&mut self, key: &str) -> Result<Option<Lane>, StoreError> {
        super::tx::lane_row(self.conn, key)
    }

    fn canonical_of(&mut self, lane: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT coalesce(entity, key) FROM shipments WHERE key = ?1")?
            .query_row([lane], |r| r.get::<_, String>(0))
            .optional()?)
    }

    fn lanes_of(&mut self, canonical: &str) -> Result<Vec<String>, StoreError> {
        super::tx::lanes_of(self.conn, canonical)
    }

    fn lanes_naming(&mut self, kind: &str, value: &str) -> Result<Vec<String>, StoreError> {
        super::tx::lanes_naming(self.conn, kind, value)
    }

    fn xrefs_of(&mut self, lane: &str) -> Result<Vec<XRef>, StoreError> {
        let mut xs = self.conn.prepare_cached(
            "SELECT kind, value FROM xrefs WHERE shipment = ?1 ORDER BY kind, value",
        )?;
        let rows = xs.query_map([lane], |r| {
            Ok(XRef {
                kind: r.get(0)?,
                value: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn observations(&mut self, lane: &str, facts: &[Fact]) -> Result<Vec<Observation>, StoreError> {
        super::tx::observations(self.conn, lane, facts)
    }

    fn conflicts_of(&mut self, lane: &str) -> Result<Vec<ConflictRecord>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, kind, shipment, fact, detail, recorded_at FROM conflicts WHERE shipment = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([lane], conflict_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn events_count(&mut self, canonical: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT coalesce(sum(last_seq), 0) FROM shipments WHERE key = ?1 OR entity = ?1",
            )?
            .query_row([canonical], |r| r.get(0))?)
    }

    fn timeline_rows(&mut self, lane: &str) -> Result<Vec<TimelineRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT shipment_seq, effect, recorded_at, occurred_at, body, encoding, shipment_seq, inbox_id
             FROM events WHERE shipment = ?1 ORDER BY occurred_at, shipment_seq",
        )?;
        let rows = st.query_map([lane], |r| {
            Ok(TimelineRow {
                sequence: r.get(0)?,
                effect: r.get(1)?,
                recorded_us: r.get(2)?,
                occurred_us: r.get(3)?,
                stored: stored_event(r, 4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn payload(&mut self, inbox_id: i64) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        payload(self.conn, inbox_id)
    }
}
