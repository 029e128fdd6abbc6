//! The read side on PostgreSQL: the primitive reads of [`Reader`] and the queries that
//! are SQL only; what a shipment or order view is, is decided in `crate::view`.

use super::tx::{lane_row, lanes_naming, lanes_of, observations};
use super::{PgConn, PgStore};
use crate::codec::{decode_state, from_us};
use crate::sequence::Lane;
use crate::view::{self, Reader, StoredEvent, StoredPayload, TimelineRow};
use crate::{
    ConflictQuery, ConflictRecord, Depths, InboxQuery, InboxRecord, OrderView, Resolved,
    ShipmentQuery, ShipmentSummary, ShipmentView, SinkStats, StoreError, XRef,
};
use std::collections::BTreeMap;
use waybill_model::ownership::{Fact, Observation};
use waybill_model::ShipmentKey;

/// The columns `inbox_row` reads.
macro_rules! inbox_columns {
    () => {
        "id, source, idempotency_key, status, reason_code, reason, received_at, event_ids, body, headers, encoding,
         reprocessed_at, reprocessed_into"
    };
}

/// An inbox row's stored body and encoding (what an event packed against it needs).
pub(crate) fn payload(c: &mut PgConn, id: i64) -> Result<Option<StoredPayload>, StoreError> {
    Ok(
        c.query_opt("SELECT body, encoding FROM inbox WHERE id = $1", &[&id])?
            .map(|r| (r.get(0), r.get(1))),
    )
}

fn conflict_row(r: &postgres::Row) -> ConflictRecord {
    ConflictRecord {
        id: r.get(0),
        kind: r.get(1),
        shipment: r.get(2),
        fact: r.get(3),
        detail: serde_json::from_str(r.get::<_, &str>(4)).unwrap_or_default(),
        recorded_at: from_us(r.get(5)),
    }
}

/// [`Reader`] over one reader connection.
pub(crate) struct PgReader<'c>(pub(crate) &'c mut PgConn);

impl Reader for PgReader<'_> {
    fn lane(&mut self, key: &str) -> Result<Option<Lane>, StoreError> {
        lane_row(self.0, key)
    }

    fn canonical_of(&mut self, lane: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .query_opt(
                "SELECT coalesce(entity, key) FROM shipments WHERE key = $1",
                &[&lane],
            )?
            .map(|r| r.get(0)))
    }

    fn lanes_of(&mut self, canonical: &str) -> Result<Vec<String>, StoreError> {
        lanes_of(self.0, canonical)
    }

    fn lanes_naming(&mut self, kind: &str, value: &str) -> Result<Vec<String>, StoreError> {
        lanes_naming(self.0, kind, value)
    }

    fn xrefs_of(&mut self, lane: &str) -> Result<Vec<XRef>, StoreError> {
        Ok(self
            .0
            .query(
                "SELECT kind, value FROM xrefs WHERE shipment = $1 ORDER BY kind, value",
                &[&lane],
            )?
            .iter()
            .map(|r| XRef {
                kind: r.get(0),
                value: r.get(1),
            })
            .collect())
    }

    fn observations(&mut self, lane: &str, facts: &[Fact]) -> Result<Vec<Observation>, StoreError> {
        observations(self.0, lane, facts)
    }

    fn conflicts_of(&mut self, lane: &str) -> Result<Vec<ConflictRecord>, StoreError> {
        Ok(self
            .0
            .query(
                "SELECT id, kind, shipment, fact, detail, recorded_at FROM conflicts WHERE shipment = $1 ORDER BY id",
                &[&lane],
            )?
            .iter()
            .map(conflict_row)
            .collect())
    }

    fn events_count(&mut self, canonical: &str) -> Result<i64, StoreError> {
        Ok(self
            .0
            .query_opt(
                "SELECT coalesce(sum(last_seq), 0)::bigint FROM shipments WHERE key = $1 OR entity = $1",
                &[&canonical],
            )?
            .map(|r| r.get(0))
            .unwrap_or(0))
    }

    fn timeline_rows(&mut self, lane: &str) -> Result<Vec<TimelineRow>, StoreError> {
        Ok(self
            .0
            .query(
                "SELECT shipment_seq, effect, recorded_at, occurred_at, body, encoding, inbox_id
                 FROM events WHERE shipment = $1 ORDER BY occurred_at, shipment_seq",
                &[&lane],
            )?
            .iter()
            .map(|r| TimelineRow {
                sequence: r.get(0),
                effect: r.get(1),
                recorded_us: r.get(2),
                occurred_us: r.get(3),
                stored: StoredEvent {
                    body: r.get(4),
                    encoding: r.get(5),
                    seq: r.get(0),
                    inbox_id: r.get(6),
                },
            })
            .collect())
    }

    fn payload(&mut self, inbox_id: i64) -> Result<Option<StoredPayload>, StoreError> {
        payload(self.0, inbox_id)
    }
}

impl PgStore {
    pub(crate) async fn shipment(
        &self,
        key: &ShipmentKey,
    ) -> Result<Option<ShipmentView>, StoreError> {
        let key = key.clone();
        let rules = self.ownership();
        self.read(move |c| view::shipment(&mut PgReader(c), key.as_str(), &rules))
            .await
    }

    pub(crate) async fn resolve_key(&self, text: &str) -> Result<Resolved, StoreError> {
        let text = text.to_owned();
        self.read(move |c| view::resolve_key(&mut PgReader(c), &text))
            .await
    }

    pub(crate) async fn shipments(
        &self,
        q: ShipmentQuery,
    ) -> Result<Vec<ShipmentSummary>, StoreError> {
        self.read(move |c| {
            if let Some((kind, value)) = &q.reference {
                return view::shipments_by_reference(&mut PgReader(c), kind, value, &q);
            }
            let rows = c.query(
                "SELECT key, state, milestone_at, milestone_event, flags, last_event_at, last_seq FROM shipments
                 WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR key > $2) AND entity IS NULL
                   AND ($4::text IS NULL OR tenant = $4)
                 ORDER BY key LIMIT $3",
                &[&q.state.map(|m| m.as_str()), &q.after, &(q.limit as i64), &q.tenant],
            )?;
            rows.iter()
                .map(|r| {
                    let (key, st, flags): (String, String, String) = (r.get(0), r.get(1), r.get(4));
                    Ok(ShipmentSummary {
                        state: decode_state(ShipmentKey(key), &st, r.get(2), r.get(3), &flags, r.get(5))?,
                        events: r.get(6),
                    })
                })
                .collect()
        })
        .await
    }

    pub(crate) async fn order(&self, text: &str) -> Result<Option<OrderView>, StoreError> {
        let text = text.to_owned();
        self.read(move |c| view::order_view(&mut PgReader(c), &text))
            .await
    }

    pub(crate) async fn conflicts(
        &self,
        q: ConflictQuery,
    ) -> Result<Vec<ConflictRecord>, StoreError> {
        self.read(move |c| {
            Ok(c.query(
                concat!(
                    "SELECT id, kind, shipment, fact, detail, recorded_at FROM conflicts
                     WHERE ($1::text IS NULL OR kind = $1) AND id > $2 AND ",
                    tenant_is!("conflicts.shipment", "$4::text"),
                    " ORDER BY id LIMIT $3"
                ),
                &[&q.kind, &q.after.unwrap_or(0), &(q.limit as i64), &q.tenant],
            )?
            .iter()
            .map(conflict_row)
            .collect())
        })
        .await
    }

    pub(crate) async fn resolved_refs(
        &self,
        lane: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let lane = lane.to_owned();
        self.read(move |c| view::resolved_refs(&mut PgReader(c), &lane))
            .await
    }

    pub(crate) async fn tenant_of(&self, lane: &str) -> Result<Option<String>, StoreError> {
        let lane = lane.to_owned();
        self.read(move |c| {
            Ok(c.query_opt(
                "SELECT c.tenant FROM shipments s JOIN shipments c ON c.key = coalesce(s.entity, s.key) WHERE s.key = $1",
                &[&lane],
            )?
            .and_then(|r| r.get::<_, Option<String>>(0)))
        })
        .await
    }

    pub(crate) async fn inbox(&self, q: InboxQuery) -> Result<Vec<InboxRecord>, StoreError> {
        // Rejected records not reprocessed yet read their own partial index.
        let sql = if q.open_only && q.status.as_deref() == Some("rejected") {
            concat!(
                "SELECT ",
                inbox_columns!(),
                " FROM inbox
                 WHERE status = 'rejected' AND reprocessed_at IS NULL AND $1::text = 'rejected'
                   AND ($2::text IS NULL OR source = $2) AND $3 AND id < $4
                   AND ($6::text[] IS NULL OR source = ANY($6))
                 ORDER BY id DESC LIMIT $5"
            )
        } else {
            concat!(
                "SELECT ",
                inbox_columns!(),
                " FROM inbox
                 WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR source = $2)
                   AND (NOT $3 OR reprocessed_at IS NULL) AND id < $4
                   AND ($6::text[] IS NULL OR source = ANY($6))
                 ORDER BY id DESC LIMIT $5"
            )
        };
        self.read(move |c| {
            let rows = c.query(
                sql,
                &[
                    &q.status,
                    &q.source,
                    &q.open_only,
                    &q.before.unwrap_or(i64::MAX),
                    &(q.limit as i64),
                    &q.sources,
                ],
            )?;
            rows.iter().map(inbox_row).collect()
        })
        .await
    }

    pub(crate) async fn inbox_record(&self, id: i64) -> Result<Option<InboxRecord>, StoreError> {
        self.read(move |c| {
            c.query_opt(
                concat!("SELECT ", inbox_columns!(), " FROM inbox WHERE id = $1"),
                &[&id],
            )?
            .as_ref()
            .map(inbox_row)
            .transpose()
        })
        .await
    }

    pub(crate) async fn depths(&self) -> Result<Depths, StoreError> {
        self.read(|c| {
            let mut grouped = |sql: &'static str| -> Result<Vec<(String, i64)>, StoreError> {
                Ok(c.query(sql, &[])?.iter().map(|r| (r.get(0), r.get(1))).collect())
            };
            Ok(Depths {
                outbox: grouped("SELECT sink, count(*) FROM outbox WHERE state = 'pending' GROUP BY sink")?,
                dead_letters: grouped(
                    "SELECT sink, count(*) FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL GROUP BY sink",
                )?,
                shipments: grouped(
                    "SELECT state, count(*) FROM shipments WHERE entity IS NULL GROUP BY state",
                )?,
            })
        })
        .await
    }

    /// Health figures per sink (see the SQLite backend).
    pub(crate) async fn sink_stats(&self) -> Result<Vec<SinkStats>, StoreError> {
        self.read(|c| {
            let blank = |sink: &str| SinkStats {
                sink: sink.to_owned(),
                pending: 0,
                oldest_pending_at: None,
                last_delivered_at: None,
                dead_open: 0,
            };
            let mut out: BTreeMap<String, SinkStats> = BTreeMap::new();
            let pending = c.query(
                "SELECT p.sink, p.n, e.recorded_at FROM (
                   SELECT sink, count(*) AS n, min(id) AS first FROM outbox WHERE state = 'pending' GROUP BY sink
                 ) p JOIN outbox o ON o.id = p.first JOIN events e ON e.seq_id = o.event_seq",
                &[],
            )?;
            for r in pending {
                let sink: String = r.get(0);
                let s = out.entry(sink.clone()).or_insert_with(|| blank(&sink));
                s.pending = r.get(1);
                s.oldest_pending_at = Some(from_us(r.get(2)));
            }
            for r in c.query(
                "SELECT sink, count(*) FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL GROUP BY sink",
                &[],
            )? {
                let sink: String = r.get(0);
                out.entry(sink.clone()).or_insert_with(|| blank(&sink)).dead_open = r.get(1);
            }
            for r in c.query("SELECT sink, last_delivered_at FROM sink_activity", &[])? {
                let sink: String = r.get(0);
                out.entry(sink.clone())
                    .or_insert_with(|| blank(&sink))
                    .last_delivered_at = Some(from_us(r.get(1)));
            }
            for r in c.query(
                "SELECT sink FROM subscriptions WHERE NOT deleted UNION SELECT sink FROM sink_controls",
                &[],
            )? {
                let sink: String = r.get(0);
                out.entry(sink.clone()).or_insert_with(|| blank(&sink));
            }
            Ok(out.into_values().collect())
        })
        .await
    }
}

fn inbox_row(r: &postgres::Row) -> Result<InboxRecord, StoreError> {
    let raw = crate::body::unpack_payload(r.get(8), r.get::<_, Option<&str>>(10))?;
    Ok(InboxRecord {
        id: r.get(0),
        source: r.get(1),
        idempotency_key: r.get(2),
        status: r.get(3),
        reason_code: r.get(4),
        reason: r.get(5),
        received_at: from_us(r.get(6)),
        event_ids: serde_json::from_str(r.get::<_, &str>(7)).unwrap_or_default(),
        body: String::from_utf8_lossy(&raw).into_owned(),
        headers: serde_json::from_str(r.get::<_, &str>(9)).unwrap_or_default(),
        reprocessed_at: r.get::<_, Option<i64>>(11).map(from_us),
        reprocessed_into: r.get(12),
    })
}
