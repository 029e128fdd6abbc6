//! [`Tx`] for PostgreSQL, and the ingest write: the same statements as the SQLite
//! backend's, in PostgreSQL's dialect. It decides nothing (`crate::sequence` does).

use super::{Param, PgConn};
use crate::codec::{decode_state, flags_to_str, from_us, to_us};
use crate::prepare::{Prepared, Stored};
use crate::sequence::{Lane, NewEvent, StoredBody, Tx};
use crate::writer::JobCtx;
use crate::{StoreError, Subscription, Verdict};
use time::OffsetDateTime;
use waybill_model::identity::{Alias, IdentityConflict};
use waybill_model::lifecycle::{Applied, EventFacts};
use waybill_model::ownership::{Fact, FactConflict, Observation, Ownership};
use waybill_model::{EventId, EventType, ShipmentKey, ShipmentState};

/// Records a payload and, for an accepted one, appends its events (see
/// `crate::sequence::append`).
pub(crate) fn ingest(
    c: &mut PgConn,
    p: &Prepared,
    ctx: &mut JobCtx<'_>,
) -> Result<Stored, StoreError> {
    let rec = &p.rec;
    let received = to_us(rec.received_at);
    match &rec.verdict {
        Verdict::Rejected { code, reason } | Verdict::Sample { code, reason, .. } => {
            let row = c.query(
                "INSERT INTO inbox (source, idempotency_key, status, reason_code, reason, received_at, headers, body, encoding)
                 VALUES ($1, $2, 'rejected', $3, $4, $5, $6, $7, $8) RETURNING id",
                &[&rec.source, &rec.idempotency_key, code, reason, &received, &p.headers, &p.body, &p.encoding],
            )?;
            let inbox_id = first_id(&row)?;
            if let Verdict::Sample { any_source, .. } = &rec.verdict {
                // Keep the newest samples only: delete the one past the cap (and any older).
                if *any_source {
                    c.exec(
                        "DELETE FROM inbox WHERE status = 'rejected' AND reason_code = $1 AND id <= (
                           SELECT id FROM inbox WHERE status = 'rejected' AND reason_code = $1
                           ORDER BY id DESC LIMIT 1 OFFSET $2)",
                        &[code, &crate::SAMPLES_KEPT],
                    )?;
                } else {
                    c.exec(
                        "DELETE FROM inbox WHERE status = 'rejected' AND reason_code = $1 AND source = $2 AND id <= (
                           SELECT id FROM inbox WHERE status = 'rejected' AND reason_code = $1 AND source = $2
                           ORDER BY id DESC LIMIT 1 OFFSET $3)",
                        &[code, &rec.source, &crate::SAMPLES_KEPT],
                    )?;
                }
            }
            Ok(Stored::Rejected { inbox_id })
        }
        Verdict::Accepted(_) => {
            // The first event's lane is read in the same round trip as the inbox row is
            // written (it does not depend on it).
            let first = p.events.first().map(|(e, _)| e.subject.as_str().to_owned());
            let (row, lane) = c.query_both(
                (
                    "INSERT INTO inbox (source, idempotency_key, status, received_at, headers, body, event_ids, encoding)
                     VALUES ($1, $2, 'accepted', $3, $4, $5, $6, $7)
                     ON CONFLICT (source, idempotency_key) WHERE status = 'accepted' DO NOTHING RETURNING id",
                    &[&rec.source, &rec.idempotency_key, &received, &p.headers, &p.body, &p.event_ids_json, &p.encoding],
                ),
                (LANE_ROW, &[&first.as_deref().unwrap_or("")]),
            )?;
            let Some(inbox_id) = row.first().map(|r| r.get::<_, i64>(0)) else {
                let row = c
                    .query_opt(
                        "SELECT id, event_ids FROM inbox WHERE source = $1 AND idempotency_key = $2 AND status = 'accepted'",
                        &[&rec.source, &rec.idempotency_key],
                    )?
                    .ok_or_else(|| StoreError::Corrupt("duplicate inbox row vanished".into()))?;
                let (inbox_id, ids): (i64, String) = (row.get(0), row.get(1));
                let event_ids: Vec<EventId> = serde_json::from_str(&ids)
                    .map_err(|e| StoreError::Corrupt(format!("inbox {inbox_id} event_ids: {e}")))?;
                return Ok(Stored::Duplicate {
                    inbox_id,
                    event_ids,
                });
            };
            let read = match (first, lane.first()) {
                (Some(key), Some(r)) => Some((key.clone(), Some(lane_from_row(&key, r)?))),
                (Some(key), None) => Some((key, None)),
                (None, _) => None,
            };
            let mut tx = PgTx {
                c,
                ctx,
                lane_read: read,
                aliases_added: None,
            };
            for (ev, body) in &p.events {
                crate::sequence::append(&mut tx, Some(inbox_id), ev, body)?;
            }
            Ok(Stored::Accepted { inbox_id })
        }
    }
}

fn first_id(rows: &[postgres::Row]) -> Result<i64, StoreError> {
    rows.first()
        .map(|r| r.get::<_, i64>(0))
        .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))
}

/// One write transaction of the writer thread.
pub(crate) struct PgTx<'c, 'j, 'r> {
    pub c: &'c mut PgConn,
    pub ctx: &'j mut JobCtx<'r>,
    /// A lane's row read ahead (with the inbox row), for the next `lane` call of that key.
    lane_read: Option<(String, Option<Lane>)>,
    /// An event's aliases added in the same round trip as the event (`sequence::append`
    /// adds them right after inserting it): (lane, aliases, which were new).
    aliases_added: Option<(String, Vec<Alias>, Vec<bool>)>,
}

fn effect_name(a: Applied) -> &'static str {
    match a {
        Applied::Advanced => "advanced",
        Applied::Flagged => "flagged",
        Applied::Recorded => "recorded",
    }
}

impl Tx for PgTx<'_, '_, '_> {
    fn rules(&self) -> (&[Subscription], &Ownership) {
        (self.ctx.subs, self.ctx.ownership)
    }

    fn lane(&mut self, key: &str) -> Result<Option<Lane>, StoreError> {
        match self.lane_read.take() {
            Some((k, lane)) if k == key => Ok(lane),
            _ => lane_row(self.c, key),
        }
    }

    fn insert_event(&mut self, e: &NewEvent<'_>) -> Result<Option<i64>, StoreError> {
        let ev = e.event;
        let (body, encoding): (&[u8], Option<&str>) = match e.body {
            StoredBody::Json(j) => (j.as_bytes(), None),
            StoredBody::Packed(b, enc) => (b, Some(enc)),
        };
        const INSERT: &str = "INSERT INTO events (event_id, shipment, shipment_seq, type, source, occurred_at, recorded_at, inbox_id, effect, body, encoding)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (shipment, event_id) DO NOTHING RETURNING seq_id";
        let params: [&(dyn postgres::types::ToSql + Sync); 11] = [
            &ev.id.as_str(),
            &ev.subject.as_str(),
            &e.seq,
            &ev.ty.as_str(),
            &ev.source_name(),
            &to_us(ev.time),
            &to_us(ev.recordedtime),
            &e.inbox_id,
            &effect_name(e.effect),
            &body,
            &encoding,
        ];
        // The event's aliases are added next whether it is new or a repeat: they go in
        // the same round trip (adding an alias twice changes nothing).
        let aliases: Vec<Alias> = waybill_model::identity::aliases_of(ev)
            .into_iter()
            .collect();
        let lane = ev.subject.as_str();
        let rows = if aliases.is_empty() {
            self.c.query(INSERT, &params)?
        } else {
            let (kinds, values) = alias_columns(&aliases);
            let (rows, added) = self
                .c
                .query_both((INSERT, &params), (ADD_ALIASES, &[&kinds, &values, &lane]))?;
            let added = was_added(&aliases, &added);
            self.aliases_added = Some((lane.to_owned(), aliases, added));
            rows
        };
        Ok(rows.first().map(|r| r.get::<_, i64>(0)))
    }

    fn put_lane(
        &mut self,
        key: &str,
        state: &ShipmentState,
        last_seq: i64,
        now: OffsetDateTime,
        state_changed: bool,
    ) -> Result<(), StoreError> {
        // Nobody reads the result: sent with the next statement that is read.
        let now = to_us(now);
        let mut p: Vec<Param> = vec![
            Box::new(key.to_owned()),
            Box::new(state.milestone_at.map(to_us)),
            Box::new(state.milestone_event.as_ref().map(|e| e.0.clone())),
            Box::new(flags_to_str(&state.flags)),
            Box::new(state.last_event_at.map(to_us)),
            Box::new(last_seq),
            Box::new(now),
        ];
        if state_changed {
            p.push(Box::new(state.milestone.as_str().to_owned()));
            self.c.defer(
                "INSERT INTO shipments (key, milestone_at, milestone_event, flags, last_event_at, last_seq, created_at, updated_at, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)
                 ON CONFLICT (key) DO UPDATE SET state = excluded.state, milestone_at = excluded.milestone_at,
                   milestone_event = excluded.milestone_event, flags = excluded.flags,
                   last_event_at = excluded.last_event_at, last_seq = excluded.last_seq, updated_at = excluded.updated_at",
                p,
            )
        } else {
            self.c.defer(
                "UPDATE shipments SET milestone_at = $2, milestone_event = $3, flags = $4,
                   last_event_at = $5, last_seq = $6, updated_at = $7 WHERE key = $1",
                p,
            )
        }
    }

    fn put_lane_seq(
        &mut self,
        key: &str,
        last_seq: i64,
        event_time: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE shipments SET last_seq = $2, last_event_at = greatest(coalesce(last_event_at, $3), $3), updated_at = $4 WHERE key = $1",
            &[&key, &last_seq, &to_us(event_time), &to_us(now)],
        )?;
        Ok(())
    }

    fn put_state(
        &mut self,
        key: &str,
        state: &ShipmentState,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE shipments SET state = $2, milestone_at = $3, milestone_event = $4,
               flags = $5, last_event_at = $6, updated_at = $7 WHERE key = $1",
            &[
                &key,
                &state.milestone.as_str(),
                &state.milestone_at.map(to_us),
                &state.milestone_event.as_ref().map(|e| e.0.as_str()),
                &flags_to_str(&state.flags),
                &state.last_event_at.map(to_us),
                &to_us(now),
            ],
        )?;
        Ok(())
    }

    fn set_tenant(&mut self, lane: &str, tenant: &str) -> Result<(), StoreError> {
        // Nobody reads the result: sent with the next statement that is read (in order,
        // so a later read of the lane sees it).
        self.c.defer(
            "UPDATE shipments SET tenant = $2 WHERE key = $1 AND tenant IS NULL",
            vec![Box::new(lane.to_owned()), Box::new(tenant.to_owned())],
        )
    }

    fn set_entity(
        &mut self,
        lane: &str,
        canonical: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE shipments SET entity = CASE WHEN key = $2 THEN NULL ELSE $2 END, updated_at = $3 WHERE key = $1",
            &[&lane, &canonical, &to_us(now)],
        )?;
        Ok(())
    }

    fn lanes_of(&mut self, canonical: &str) -> Result<Vec<String>, StoreError> {
        lanes_of(self.c, canonical)
    }

    fn event_facts(&mut self, lane: &str) -> Result<Vec<EventFacts>, StoreError> {
        let rows = self.c.query(
            "SELECT event_id, type, occurred_at FROM events WHERE shipment = $1",
            &[&lane],
        )?;
        rows.iter()
            .map(|r| {
                let (id, ty, at): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
                Ok(EventFacts {
                    ty: ty
                        .parse::<EventType>()
                        .map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?,
                    id: EventId(id),
                    occurred_at: from_us(at),
                })
            })
            .collect()
    }

    fn add_alias(&mut self, lane: &str, a: &Alias) -> Result<bool, StoreError> {
        Ok(self.c.exec(
            "INSERT INTO xrefs (kind, value, shipment) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&a.kind, &a.value, &lane],
        )? > 0)
    }

    fn add_aliases(&mut self, lane: &str, aliases: &[Alias]) -> Result<Vec<bool>, StoreError> {
        if let Some((l, a, added)) = self.aliases_added.take() {
            if l == lane && a == aliases {
                return Ok(added);
            }
        }
        if aliases.is_empty() {
            return Ok(Vec::new());
        }
        let (kinds, values) = alias_columns(aliases);
        let rows = self.c.query(ADD_ALIASES, &[&kinds, &values, &lane])?;
        Ok(was_added(aliases, &rows))
    }

    fn alias_elsewhere(&mut self, kind: &str, value: &str, lane: &str) -> Result<bool, StoreError> {
        Ok(self
            .c
            .query_opt(
                "SELECT 1 FROM xrefs WHERE kind = $1 AND value = $2 AND shipment <> $3 LIMIT 1",
                &[&kind, &value, &lane],
            )?
            .is_some())
    }

    fn lanes_naming(&mut self, kind: &str, value: &str) -> Result<Vec<String>, StoreError> {
        lanes_naming(self.c, kind, value)
    }

    fn aliases(&mut self, lane: &str) -> Result<Vec<Alias>, StoreError> {
        Ok(self
            .c
            .query(
                "SELECT kind, value FROM xrefs WHERE shipment = $1",
                &[&lane],
            )?
            .iter()
            .map(|r| Alias {
                kind: r.get(0),
                value: r.get(1),
            })
            .collect())
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
        self.c.defer(
            "INSERT INTO outbox (subscription, sink, event_seq, shipment, updated_at, bucket) VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                Box::new(sub.name.clone()),
                Box::new(sub.sink.clone()),
                Box::new(event_row),
                Box::new(lane.to_owned()),
                Box::new(to_us(now)),
                Box::new(crate::lease::bucket_of(lane)),
            ],
        )?;
        self.ctx.created_outbox = true;
        Ok(())
    }

    fn observe(&mut self, lane: &str, o: &Observation) -> Result<bool, StoreError> {
        Ok(self.c.exec(
            "INSERT INTO observations AS o (lane, fact, source, value, at, event_id) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (lane, fact, source, value) DO UPDATE SET at = excluded.at, event_id = excluded.event_id
             WHERE excluded.at > o.at OR (excluded.at = o.at AND excluded.event_id > o.event_id)",
            &[
                &lane,
                &o.fact.as_str(),
                &o.source,
                &o.value.to_string(),
                &to_us(o.at),
                &o.event_id,
            ],
        )? > 0)
    }

    fn observe_all(&mut self, lane: &str, obs: &[Observation]) -> Result<Vec<bool>, StoreError> {
        if obs.len() < 2 {
            return obs.iter().map(|o| self.observe(lane, o)).collect();
        }
        let facts: Vec<&str> = obs.iter().map(|o| o.fact.as_str()).collect();
        let sources: Vec<&str> = obs.iter().map(|o| o.source.as_str()).collect();
        let values: Vec<String> = obs.iter().map(|o| o.value.to_string()).collect();
        let ats: Vec<i64> = obs.iter().map(|o| to_us(o.at)).collect();
        let ids: Vec<&str> = obs.iter().map(|o| o.event_id.as_str()).collect();
        let changed: Vec<(String, String, String)> = self
            .c
            .query(
                "INSERT INTO observations AS o (lane, fact, source, value, at, event_id)
                 SELECT $1, f, s, v, t, e FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[]) AS x(f, s, v, t, e)
                 ON CONFLICT (lane, fact, source, value) DO UPDATE SET at = excluded.at, event_id = excluded.event_id
                 WHERE excluded.at > o.at OR (excluded.at = o.at AND excluded.event_id > o.event_id)
                 RETURNING fact, source, value",
                &[&lane, &facts, &sources, &values, &ats, &ids],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        Ok(obs
            .iter()
            .zip(&values)
            .map(|(o, v)| {
                changed
                    .iter()
                    .any(|(f, s, w)| f == o.fact.as_str() && *s == o.source && w == v)
            })
            .collect())
    }

    fn observations(&mut self, lane: &str, facts: &[Fact]) -> Result<Vec<Observation>, StoreError> {
        observations(self.c, lane, facts)
    }

    fn set_identity_conflicts(
        &mut self,
        lane: &str,
        conflicts: &[&IdentityConflict],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.c.exec(
            "DELETE FROM conflicts WHERE kind = 'identity' AND shipment = $1",
            &[&lane],
        )?;
        for c in conflicts {
            let detail = serde_json::to_string(c)
                .map_err(|e| StoreError::Corrupt(format!("identity conflict: {e}")))?;
            self.c.exec(
                "INSERT INTO conflicts (kind, shipment, fact, detail, recorded_at) VALUES ('identity', $1, $2, $3, $4)",
                &[&lane, &c.via, &detail, &to_us(now)],
            )?;
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
                self.c.exec(
                    "DELETE FROM conflicts WHERE kind = 'ownership' AND shipment = $1",
                    &[&shipment],
                )?;
            }
            Some(fs) => {
                for f in fs {
                    self.c.exec(
                        "DELETE FROM conflicts WHERE kind = 'ownership' AND shipment = $1 AND fact = $2",
                        &[&shipment, &f.as_str()],
                    )?;
                }
            }
        }
        for c in conflicts {
            let detail = serde_json::to_string(c)
                .map_err(|e| StoreError::Corrupt(format!("ownership conflict: {e}")))?;
            self.c.exec(
                "INSERT INTO conflicts (kind, shipment, fact, detail, recorded_at) VALUES ('ownership', $1, $2, $3, $4)",
                &[&shipment, &c.fact.as_str(), &detail, &to_us(now)],
            )?;
        }
        Ok(())
    }
}

/// Adds aliases ($1 kinds, $2 values) to lane $3; returns the new ones.
const ADD_ALIASES: &str = "INSERT INTO xrefs (kind, value, shipment)
     SELECT k, v, $3 FROM unnest($1::text[], $2::text[]) AS a(k, v)
     ON CONFLICT DO NOTHING RETURNING kind, value";

fn alias_columns(aliases: &[Alias]) -> (Vec<&str>, Vec<&str>) {
    aliases
        .iter()
        .map(|a| (a.kind.as_str(), a.value.as_str()))
        .unzip()
}

/// For each alias, whether `ADD_ALIASES` returned it (it was new).
fn was_added(aliases: &[Alias], rows: &[postgres::Row]) -> Vec<bool> {
    let added: Vec<(&str, &str)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    aliases
        .iter()
        .map(|a| added.contains(&(a.kind.as_str(), a.value.as_str())))
        .collect()
}

/// A lane's row by key ($1).
const LANE_ROW: &str =
    "SELECT state, milestone_at, milestone_event, flags, last_event_at, last_seq, entity, tenant
     FROM shipments WHERE key = $1";

/// The observations of these facts in a lane (also read by the read side).
pub(crate) fn observations(
    c: &mut PgConn,
    lane: &str,
    facts: &[Fact],
) -> Result<Vec<Observation>, StoreError> {
    let rows = c.query(
        "SELECT fact, source, value, at, event_id FROM observations WHERE lane = $1 ORDER BY fact",
        &[&lane],
    )?;
    let mut out = Vec::new();
    for r in rows {
        let fact: String = r.get(0);
        let Ok(fact) = fact.parse::<Fact>() else {
            continue;
        };
        if !facts.contains(&fact) {
            continue;
        }
        let value: String = r.get(2);
        out.push(Observation {
            fact,
            source: r.get(1),
            value: serde_json::from_str(&value)
                .map_err(|e| StoreError::Corrupt(format!("observation of {lane}: {e}")))?,
            at: from_us(r.get(3)),
            event_id: r.get(4),
        });
    }
    Ok(out)
}

/// A lane's row (also read by the read side).
pub(crate) fn lane_row(c: &mut PgConn, key: &str) -> Result<Option<Lane>, StoreError> {
    c.query_opt(LANE_ROW, &[&key])?
        .map(|r| lane_from_row(key, &r))
        .transpose()
}

/// A lane from a `LANE_ROW` row.
fn lane_from_row(key: &str, r: &postgres::Row) -> Result<Lane, StoreError> {
    let (st, m_at, m_ev, flags, last): (String, Option<i64>, Option<String>, String, Option<i64>) =
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
    Ok(Lane {
        state: decode_state(ShipmentKey(key.to_owned()), &st, m_at, m_ev, &flags, last)?,
        last_seq: r.get(5),
        entity: r.get(6),
        tenant: r.get(7),
    })
}

/// The lanes pointing at canonical lane `canonical` (also read by the read side).
pub(crate) fn lanes_of(c: &mut PgConn, canonical: &str) -> Result<Vec<String>, StoreError> {
    Ok(c.query(
        "SELECT key FROM shipments WHERE entity = $1 ORDER BY key",
        &[&canonical],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// The lanes that have an alias (also read by the read side).
pub(crate) fn lanes_naming(
    c: &mut PgConn,
    kind: &str,
    value: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(c.query(
        "SELECT shipment FROM xrefs WHERE kind = $1 AND value = $2",
        &[&kind, &value],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect())
}
