//! [`Tx`] for SQLite: the reads and writes of the writer's transaction, as cached
//! statements. It decides nothing (`crate::sequence` does).

use crate::codec::{decode_state, flags_to_str, from_us, to_us};
use crate::sequence::{Lane, NewEvent, StoredBody, Tx};
use crate::writer::JobCtx;
use crate::{StoreError, Subscription};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;
use waybill_model::identity::{Alias, IdentityConflict};
use waybill_model::lifecycle::{Applied, EventFacts};
use waybill_model::ownership::{Fact, FactConflict, Observation, Ownership};
use waybill_model::{EventId, EventType, ShipmentKey, ShipmentState};

/// One write transaction of the writer thread.
pub(crate) struct SqliteTx<'c, 'j, 'r> {
    pub conn: &'c Connection,
    pub ctx: &'j mut JobCtx<'r>,
}

/// The shipment row after an event: ?1 key, ?2 state, ?3 milestone_at, ?4
/// milestone_event, ?5 flags, ?6 last_event_at, ?7 last_seq, ?8 created_at, ?9 updated_at.
const UPSERT_SHIPMENT: &str = "INSERT INTO shipments (key, state, milestone_at, milestone_event, flags, last_event_at, last_seq, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT (key) DO UPDATE SET state = excluded.state, milestone_at = excluded.milestone_at,
       milestone_event = excluded.milestone_event, flags = excluded.flags,
       last_event_at = excluded.last_event_at, last_seq = excluded.last_seq, updated_at = excluded.updated_at";

/// The same for an existing row whose milestone stays: `state` (?2) and `created_at`
/// (?8) are left as they are, so SQLite leaves the shipments_state index — and its page —
/// alone.
const UPDATE_SHIPMENT_KEEPING_STATE: &str =
    "UPDATE shipments SET milestone_at = ?3, milestone_event = ?4, flags = ?5,
       last_event_at = ?6, last_seq = ?7, updated_at = ?9 WHERE key = ?1";

fn effect_name(a: Applied) -> &'static str {
    match a {
        Applied::Advanced => "advanced",
        Applied::Flagged => "flagged",
        Applied::Recorded => "recorded",
    }
}

impl Tx for SqliteTx<'_, '_, '_> {
    fn rules(&self) -> (&[Subscription], &Ownership) {
        (self.ctx.subs, self.ctx.ownership)
    }

    fn lane(&mut self, key: &str) -> Result<Option<Lane>, StoreError> {
        lane_row(self.conn, key)
    }

    fn insert_event(&mut self, e: &NewEvent<'_>) -> Result<Option<i64>, StoreError> {
        let ev = e.event;
        let (body, encoding) = match e.body {
            StoredBody::Json(j) => (ToSqlOutput::Borrowed(ValueRef::Text(j.as_bytes())), None),
            StoredBody::Packed(b, enc) => (ToSqlOutput::Borrowed(ValueRef::Blob(b)), Some(enc)),
        };
        // The unique index on (shipment, event_id) is the duplicate test — ids include
        // their lane, so this is the global test too.
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO events (event_id, shipment, shipment_seq, type, source, occurred_at, recorded_at, inbox_id, effect, body, encoding)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (shipment, event_id) DO NOTHING",
            )?
            .execute(params![
                ev.id.as_str(),
                ev.subject.as_str(),
                e.seq,
                ev.ty.as_str(),
                ev.source_name(),
                to_us(ev.time),
                to_us(ev.recordedtime),
                e.inbox_id,
                effect_name(e.effect),
                body,
                encoding
            ])?;
        Ok((n > 0).then(|| self.conn.last_insert_rowid()))
    }

    fn put_lane(
        &mut self,
        key: &str,
        state: &ShipmentState,
        last_seq: i64,
        now: OffsetDateTime,
        state_changed: bool,
    ) -> Result<(), StoreError> {
        let sql = if state_changed {
            UPSERT_SHIPMENT
        } else {
            UPDATE_SHIPMENT_KEEPING_STATE
        };
        let now = to_us(now);
        self.conn.prepare_cached(sql)?.execute(params![
            key,
            state.milestone.as_str(),
            state.milestone_at.map(to_us),
            state.milestone_event.as_ref().map(|e| e.0.as_str()),
            flags_to_str(&state.flags),
            state.last_event_at.map(to_us),
            last_seq,
            now,
            now
        ])?;
        Ok(())
    }

    fn put_lane_seq(
        &mut self,
        key: &str,
        last_seq: i64,
        event_time: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE shipments SET last_seq = ?2, last_event_at = max(coalesce(last_event_at, ?3), ?3), updated_at = ?4 WHERE key = ?1",
            )?
            .execute(params![key, last_seq, to_us(event_time), to_us(now)])?;
        Ok(())
    }

    fn put_state(
        &mut self,
        key: &str,
        state: &ShipmentState,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE shipments SET state = ?2, milestone_at = ?3, milestone_event = ?4,
                   flags = ?5, last_event_at = ?6, updated_at = ?7 WHERE key = ?1",
            )?
            .execute(params![
                key,
                state.milestone.as_str(),
                state.milestone_at.map(to_us),
                state.milestone_event.as_ref().map(|e| e.0.as_str()),
                flags_to_str(&state.flags),
                state.last_event_at.map(to_us),
                to_us(now)
            ])?;
        Ok(())
    }

    fn set_tenant(&mut self, lane: &str, tenant: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE shipments SET tenant = ?2 WHERE key = ?1 AND tenant IS NULL")?
            .execute(params![lane, tenant])?;
        Ok(())
    }

    fn set_entity(
        &mut self,
        lane: &str,
        canonical: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE shipments SET entity = CASE WHEN key = ?2 THEN NULL ELSE ?2 END, updated_at = ?3 WHERE key = ?1",
            )?
            .execute(params![lane, canonical, to_us(now)])?;
        Ok(())
    }

    fn lanes_of(&mut self, canonical: &str) -> Result<Vec<String>, StoreError> {
        lanes_of(self.conn, canonical)
    }

    fn event_facts(&mut self, lane: &str) -> Result<Vec<EventFacts>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT event_id, type, occurred_at FROM events WHERE shipment = ?1")?;
        let rows = st.query_map([lane], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, ty, at) = row?;
            out.push(EventFacts {
                ty: ty
                    .parse::<EventType>()
                    .map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?,
                id: EventId(id),
                occurred_at: from_us(at),
            });
        }
        Ok(out)
    }

    fn add_alias(&mut self, lane: &str, a: &Alias) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO xrefs (kind, value, shipment) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![a.kind, a.value, lane])?
            > 0)
    }

    fn alias_elsewhere(&mut self, kind: &str, value: &str, lane: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM xrefs WHERE kind = ?1 AND value = ?2 AND shipment != ?3 LIMIT 1",
            )?
            .query_row(params![kind, value, lane], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn lanes_naming(&mut self, kind: &str, value: &str) -> Result<Vec<String>, StoreError> {
        lanes_naming(self.conn, kind, value)
    }

    fn aliases(&mut self, lane: &str) -> Result<Vec<Alias>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT kind, value FROM xrefs WHERE shipment = ?1")?;
        let rows = st.query_map([lane], |r| {
            Ok(Alias {
                kind: r.get(0)?,
                value: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn add_outbox(
        &mut self,
        sub: usize,
        event_row: i64,
        lane: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(sub) = self.ctx.subs.get(sub) else {
            return Ok(());
        };
        self.conn
            .prepare_cached(
                "INSERT INTO outbox (subscription, sink, event_seq, shipment, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![sub.name, sub.sink, event_row, lane, to_us(now)])?;
        self.ctx.created_outbox = true;
        Ok(())
    }

    fn observe(&mut self, lane: &str, o: &Observation) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO observations (lane, fact, source, value, at, event_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (lane, fact, source, value) DO UPDATE SET at = excluded.at, event_id = excluded.event_id
                 WHERE excluded.at > at OR (excluded.at = at AND excluded.event_id > event_id)",
            )?
            .execute(params![
                lane,
                o.fact.as_str(),
                o.source,
                o.value.to_string(),
                to_us(o.at),
                o.event_id
            ])?
            > 0)
    }

    fn observations(&mut self, lane: &str, facts: &[Fact]) -> Result<Vec<Observation>, StoreError> {
        observations(self.conn, lane, facts)
    }

    fn set_identity_conflicts(
        &mut self,
        lane: &str,
        conflicts: &[&IdentityConflict],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM conflicts WHERE kind = 'identity' AND shipment = ?1")?
            .execute([lane])?;
        for c in conflicts {
            let detail = serde_json::to_string(c)
                .map_err(|e| StoreError::Corrupt(format!("identity conflict: {e}")))?;
            self.conn
                .prepare_cached(
                    "INSERT INTO conflicts (kind, shipment, fact, detail, recorded_at) VALUES ('identity', ?1, ?2, ?3, ?4)",
                )?
                .execute(params![lane, c.via, detail, to_us(now)])?;
        }
        Ok(())
    }

    fn set_ownership_conflicts(
        &mut self,
        shipment: &str,
        facts: Option<&[Fact]>,
        conflicts: &[FactConflict],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match facts {
            None => {
                self.conn
                    .prepare_cached(
                        "DELETE FROM conflicts WHERE kind = 'ownership' AND shipment = ?1",
                    )?
                    .execute([shipment])?;
            }
            Some(fs) => {
                for f in fs {
                    self.conn
                        .prepare_cached(
                            "DELETE FROM conflicts WHERE kind = 'ownership' AND shipment = ?1 AND fact = ?2",
                        )?
                        .execute(params![shipment, f.as_str()])?;
                }
            }
        }
        for c in conflicts {
            let detail = serde_json::to_string(c)
                .map_err(|e| StoreError::Corrupt(format!("ownership conflict: {e}")))?;
            self.conn
                .prepare_cached(
                    "INSERT INTO conflicts (kind, shipment, fact, detail, recorded_at) VALUES ('ownership', ?1, ?2, ?3, ?4)",
                )?
                .execute(params![shipment, c.fact.as_str(), detail, to_us(now)])?;
        }
        Ok(())
    }
}

/// The observations of these facts in a lane (also read by the read side).
pub(crate) fn observations(
    conn: &Connection,
    lane: &str,
    facts: &[Fact],
) -> Result<Vec<Observation>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT fact, source, value, at, event_id FROM observations WHERE lane = ?1 ORDER BY fact",
    )?;
    let rows = st.query_map([lane], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (fact, source, value, at, event_id) = row?;
        let Ok(fact) = fact.parse::<Fact>() else {
            continue;
        };
        if !facts.contains(&fact) {
            continue;
        }
        out.push(Observation {
            fact,
            source,
            value: serde_json::from_str(&value)
                .map_err(|e| StoreError::Corrupt(format!("observation of {lane}: {e}")))?,
            at: from_us(at),
            event_id,
        });
    }
    Ok(out)
}

/// A lane's row (also read by the read side).
pub(crate) fn lane_row(conn: &Connection, key: &str) -> Result<Option<Lane>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT state, milestone_at, milestone_event, flags, last_event_at, last_seq, entity, tenant
             FROM shipments WHERE key = ?1",
        )?
        .query_row([key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })
        .optional()?;
    row.map(|(st, m_at, m_ev, flags, last, last_seq, entity, tenant)| {
        Ok(Lane {
            state: decode_state(ShipmentKey(key.to_owned()), &st, m_at, m_ev, &flags, last)?,
            last_seq,
            entity,
            tenant,
        })
    })
    .transpose()
}

/// The lanes pointing at canonical lane `canonical` (also read by the read side).
pub(crate) fn lanes_of(conn: &Connection, canonical: &str) -> Result<Vec<String>, StoreError> {
    let mut st = conn.prepare_cached("SELECT key FROM shipments WHERE entity = ?1 ORDER BY key")?;
    let rows = st.query_map([canonical], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The lanes that have an alias (also read by the read side).
pub(crate) fn lanes_naming(
    conn: &Connection,
    kind: &str,
    value: &str,
) -> Result<Vec<String>, StoreError> {
    let mut st =
        conn.prepare_cached("SELECT shipment FROM xrefs WHERE kind = ?1 AND value = ?2")?;
    let rows = st.query_map(params![kind, value], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
