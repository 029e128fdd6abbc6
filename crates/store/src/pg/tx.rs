//! [`Tx`] for PostgreSQL, and the ingest write: the rows of the SQLite backend, in
//! PostgreSQL's dialect, written set-based per batch (see `super::ahead`). It decides
//! nothing (`crate::sequence` does).

use super::ahead::{
    lane_columns, lane_from, obs_key, recorded_events, EventRow, InboxAhead, LaneAhead, ObsKey,
    OutboxRow, NEXT_IDS, OBSERVATIONS_OF,
};
use super::PgConn;
use crate::codec::{from_us, to_us};
use crate::prepare::{Prepared, Stored};
use crate::sequence::{Lane, NewEvent, StoredBody, Tx};
use crate::writer::JobCtx;
use crate::{StoreError, Subscription, Verdict};
use std::collections::HashSet;
use time::OffsetDateTime;
use waybill_model::identity::{Alias, IdentityConflict};
use waybill_model::lifecycle::{Applied, EventFacts};
use waybill_model::ownership::{Fact, FactConflict, Observation, Ownership};
use waybill_model::{EventId, EventType, ShipmentState};

/// Records a payload and, for an accepted one, appends its events (see
/// `crate::sequence::append`).
pub(crate) fn ingest(
    c: &mut PgConn,
    p: &Prepared,
    ctx: &mut JobCtx<'_>,
) -> Result<Stored, StoreError> {
    match &p.rec.verdict {
        // Inbox rows only: what the batch read ahead stays valid.
        Verdict::Rejected { code, reason } | Verdict::Sample { code, reason, .. } => {
            c.keeping(|c| reject(c, p, code, reason))
        }
        Verdict::Accepted(_) => {
            // Written ahead with the batch's other payloads (see `super::ahead`), or here
            // when the job runs alone.
            let inbox_id = match c.ahead.take_inbox(p) {
                Some(InboxAhead::New(id)) => id,
                Some(InboxAhead::Existing(inbox_id, event_ids)) => {
                    return Ok(Stored::Duplicate {
                        inbox_id,
                        event_ids,
                    })
                }
                None => match c.keeping(|c| insert_inbox(c, p))? {
                    Ok(id) => id,
                    Err(dup) => return Ok(dup),
                },
            };
            c.keep = true;
            let mut tx = PgTx { c, ctx };
            let appended = p.events.iter().try_for_each(|(ev, body)| {
                crate::sequence::append(&mut tx, Some(inbox_id), ev, body).map(|_| ())
            });
            tx.c.keep = false;
            appended?;
            Ok(Stored::Accepted { inbox_id })
        }
    }
}

/// Records a rejected payload (for a sample, keeping only the newest).
fn reject(
    c: &mut PgConn,
    p: &Prepared,
    code: &String,
    reason: &String,
) -> Result<Stored, StoreError> {
    let rec = &p.rec;
    let received = to_us(rec.received_at);
    let row = c.query(
        "INSERT INTO inbox (source, idempotency_key, status, reason_code, reason, received_at, headers, body, encoding)
         VALUES ($1, $2, 'rejected', $3, $4, $5, $6, $7, $8) RETURNING id",
        &[&rec.source, &rec.idempotency_key, &code, &reason, &received, &p.headers, &p.body, &p.encoding],
    )?;
    let inbox_id = first_id(&row)?;
    if let Verdict::Sample { any_source, .. } = &rec.verdict {
        // Keep the newest samples only: delete the one past the cap (and any older).
        if *any_source {
            c.exec(
                "DELETE FROM inbox WHERE status = 'rejected' AND reason_code = $1 AND id <= (
                   SELECT id FROM inbox WHERE status = 'rejected' AND reason_code = $1
                   ORDER BY id DESC LIMIT 1 OFFSET $2)",
                &[&code, &crate::SAMPLES_KEPT],
            )?;
        } else {
            c.exec(
                "DELETE FROM inbox WHERE status = 'rejected' AND reason_code = $1 AND source = $2 AND id <= (
                   SELECT id FROM inbox WHERE status = 'rejected' AND reason_code = $1 AND source = $2
                   ORDER BY id DESC LIMIT 1 OFFSET $3)",
                &[&code, &rec.source, &crate::SAMPLES_KEPT],
            )?;
        }
    }
    Ok(Stored::Rejected { inbox_id })
}

/// Inserts an accepted payload's inbox row; `Err` with the answer when one is already
/// recorded under its key.
fn insert_inbox(c: &mut PgConn, p: &Prepared) -> Result<Result<i64, Stored>, StoreError> {
    let rec = &p.rec;
    let row = c.query(
        "INSERT INTO inbox (source, idempotency_key, status, received_at, headers, body, event_ids, encoding)
         VALUES ($1, $2, 'accepted', $3, $4, $5, $6, $7)
         ON CONFLICT (source, idempotency_key) WHERE status = 'accepted' DO NOTHING RETURNING id",
        &[&rec.source, &rec.idempotency_key, &to_us(rec.received_at), &p.headers, &p.body, &p.event_ids_json, &p.encoding],
    )?;
    if let Some(r) = row.first() {
        return Ok(Ok(r.get::<_, i64>(0)));
    }
    let row = c
        .query_opt(
            "SELECT id, event_ids FROM inbox WHERE source = $1 AND idempotency_key = $2 AND status = 'accepted'",
            &[&rec.source, &rec.idempotency_key],
        )?
        .ok_or_else(|| StoreError::Corrupt("duplicate inbox row vanished".into()))?;
    let inbox_id: i64 = row.get(0);
    let event_ids = recorded_events(inbox_id, row.get(1))?;
    Ok(Err(Stored::Duplicate {
        inbox_id,
        event_ids,
    }))
}

fn first_id(rows: &[postgres::Row]) -> Result<i64, StoreError> {
    rows.first()
        .map(|r| r.get::<_, i64>(0))
        .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))
}

/// One write transaction of the writer thread: reads come from the rows the batch read
/// ahead when they are there, from the database otherwise; writes are kept in
/// `PgConn::ahead` and sent set-based (see `super::ahead`).
pub(crate) struct PgTx<'c, 'j, 'r> {
    pub c: &'c mut PgConn,
    pub ctx: &'j mut JobCtx<'r>,
}

fn effect_name(a: Applied) -> &'static str {
    match a {
        Applied::Advanced => "advanced",
        Applied::Flagged => "flagged",
        Applied::Recorded => "recorded",
    }
}

impl PgTx<'_, '_, '_> {
    /// A lane as the batch knows it, read first when it does not.
    fn lane_ahead(&mut self, key: &str) -> Result<&mut LaneAhead, StoreError> {
        if !self.c.ahead.lanes.contains_key(key) {
            let row = lane_row(self.c, key)?;
            self.c.ahead.lanes.insert(
                key.to_owned(),
                LaneAhead {
                    row,
                    dirty: false,
                    updated_at: None,
                },
            );
        }
        self.c
            .ahead
            .lanes
            .get_mut(key)
            .ok_or_else(|| StoreError::Corrupt(format!("lane {key} not kept")))
    }

    /// A lane's aliases as the batch knows them, read first when it does not.
    fn aliases_ahead(&mut self, lane: &str) -> Result<&mut HashSet<(String, String)>, StoreError> {
        if !self.c.ahead.aliases.contains_key(lane) {
            let set = self
                .c
                .query(
                    "SELECT kind, value FROM xrefs WHERE shipment = $1",
                    &[&lane],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            self.c.ahead.aliases.insert(lane.to_owned(), set);
        }
        self.c
            .ahead
            .aliases
            .get_mut(lane)
            .ok_or_else(|| StoreError::Corrupt(format!("aliases of {lane} not kept")))
    }

    /// The next event row id (allocated in order: ids grow with the log).
    fn next_id(&mut self) -> Result<i64, StoreError> {
        if self.c.ahead.ids.is_empty() {
            let mut ids: Vec<i64> = self
                .c
                .query(NEXT_IDS, &[&16i64])?
                .iter()
                .map(|r| r.get(0))
                .collect();
            ids.sort_unstable();
            self.c.ahead.ids.extend(ids);
        }
        self.c
            .ahead
            .ids
            .pop_front()
            .ok_or_else(|| StoreError::Corrupt("no event id allocated".into()))
    }
}

impl Tx for PgTx<'_, '_, '_> {
    fn rules(&self) -> (&[Subscription], &Ownership) {
        (self.ctx.subs, self.ctx.ownership)
    }

    fn lane(&mut self, key: &str) -> Result<Option<Lane>, StoreError> {
        Ok(self.lane_ahead(key)?.row.clone())
    }

    fn insert_event(&mut self, e: &NewEvent<'_>) -> Result<Option<i64>, StoreError> {
        let ev = e.event;
        let key = (ev.subject.as_str().to_owned(), ev.id.as_str().to_owned());
        let exists = match self.c.ahead.events.get(&key) {
            Some(known) => *known,
            None => self
                .c
                .query_opt(
                    "SELECT 1 FROM events WHERE shipment = $1 AND event_id = $2",
                    &[&key.0, &key.1],
                )?
                .is_some(),
        };
        if exists {
            self.c.ahead.events.insert(key, true);
            return Ok(None);
        }
        let seq_id = self.next_id()?;
        let (body, encoding) = match e.body {
            StoredBody::Json(j) => (j.as_bytes().to_vec(), None),
            StoredBody::Packed(b, enc) => (b.to_vec(), Some(enc)),
        };
        let (shipment, event_id) = key.clone();
        self.c.ahead.events.insert(key, true);
        self.c.ahead.new_events.push(EventRow {
            seq_id,
            event_id,
            shipment,
            shipment_seq: e.seq,
            ty: ev.ty.as_str(),
            source: ev.source_name().to_owned(),
            occurred_at: to_us(ev.time),
            recorded_at: to_us(ev.recordedtime),
            inbox_id: e.inbox_id,
            effect: effect_name(e.effect),
            body,
            encoding,
        });
        Ok(Some(seq_id))
    }

    fn put_lane(
        &mut self,
        key: &str,
        state: &ShipmentState,
        last_seq: i64,
        now: OffsetDateTime,
        _state_changed: bool,
    ) -> Result<(), StoreError> {
        let l = self.lane_ahead(key)?;
        match &mut l.row {
            Some(r) => {
                r.state = state.clone();
                r.last_seq = last_seq;
            }
            None => {
                l.row = Some(Lane {
                    state: state.clone(),
                    last_seq,
                    entity: None,
                    tenant: None,
                })
            }
        }
        l.dirty = true;
        l.updated_at = Some(to_us(now));
        Ok(())
    }

    fn put_lane_seq(
        &mut self,
        key: &str,
        last_seq: i64,
        event_time: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let l = self.lane_ahead(key)?;
        if let Some(r) = &mut l.row {
            r.last_seq = last_seq;
            r.state.last_event_at = Some(
                r.state
                    .last_event_at
                    .map_or(event_time, |t| t.max(event_time)),
            );
            l.dirty = true;
            l.updated_at = Some(to_us(now));
        }
        Ok(())
    }

    fn put_state(
        &mut self,
        key: &str,
        state: &ShipmentState,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let l = self.lane_ahead(key)?;
        if let Some(r) = &mut l.row {
            r.state = ShipmentState {
                key: r.state.key.clone(),
                ..state.clone()
            };
            l.dirty = true;
            l.updated_at = Some(to_us(now));
        }
        Ok(())
    }

    fn set_tenant(&mut self, lane: &str, tenant: &str) -> Result<(), StoreError> {
        let l = self.lane_ahead(lane)?;
        if let Some(r) = &mut l.row {
            if r.tenant.is_none() {
                r.tenant = Some(tenant.to_owned());
                l.dirty = true;
            }
        }
        Ok(())
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
        if let Some(LaneAhead { row: Some(r), .. }) = self.c.ahead.lanes.get_mut(lane) {
            r.entity = (lane != canonical).then(|| canonical.to_owned());
        }
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
        Ok(self
            .add_aliases(lane, std::slice::from_ref(a))?
            .first()
            .copied()
            .unwrap_or(false))
    }

    fn add_aliases(&mut self, lane: &str, aliases: &[Alias]) -> Result<Vec<bool>, StoreError> {
        let set = self.aliases_ahead(lane)?;
        let mut added = Vec::with_capacity(aliases.len());
        let mut new = Vec::new();
        for a in aliases {
            let fresh = set.insert((a.kind.clone(), a.value.clone()));
            if fresh {
                new.push((a.kind.clone(), a.value.clone(), lane.to_owned()));
            }
            added.push(fresh);
        }
        self.c.ahead.new_aliases.extend(new);
        Ok(added)
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
        Ok(super::ahead::alias_list(self.aliases_ahead(lane)?))
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
        self.c.ahead.new_outbox.push(OutboxRow {
            subscription: sub.name.clone(),
            sink: sub.sink.clone(),
            event_seq: event_row,
            shipment: lane.to_owned(),
            updated_at: to_us(now),
            bucket: crate::lease::bucket_of(lane),
        });
        self.ctx.created_outbox = true;
        Ok(())
    }

    fn observe(&mut self, lane: &str, o: &Observation) -> Result<bool, StoreError> {
        Ok(self
            .observe_all(lane, std::slice::from_ref(o))?
            .first()
            .copied()
            .unwrap_or(false))
    }

    fn observe_all(&mut self, lane: &str, obs: &[Observation]) -> Result<Vec<bool>, StoreError> {
        let keys: Vec<ObsKey> = obs.iter().map(|o| obs_key(lane, o)).collect();
        let unknown: Vec<&ObsKey> = keys
            .iter()
            .filter(|k| !self.c.ahead.obs.contains_key(*k))
            .collect();
        if !unknown.is_empty() {
            let lanes: Vec<&str> = unknown.iter().map(|k| k.0.as_str()).collect();
            let facts: Vec<&str> = unknown.iter().map(|k| k.1.as_str()).collect();
            let sources: Vec<&str> = unknown.iter().map(|k| k.2.as_str()).collect();
            let values: Vec<&str> = unknown.iter().map(|k| k.3.as_str()).collect();
            let rows = self
                .c
                .query(OBSERVATIONS_OF, &[&lanes, &facts, &sources, &values])?;
            let unknown: Vec<ObsKey> = unknown.into_iter().cloned().collect();
            for k in unknown {
                self.c.ahead.obs.insert(k, None);
            }
            for r in rows {
                self.c.ahead.obs.insert(
                    (r.get(0), r.get(1), r.get(2), r.get(3)),
                    Some((r.get(4), r.get(5))),
                );
            }
        }
        let mut changed = Vec::with_capacity(obs.len());
        for (o, k) in obs.iter().zip(keys) {
            let at = to_us(o.at);
            let newer = match self.c.ahead.obs.get(&k) {
                Some(Some((t, id))) => at > *t || (at == *t && o.event_id > *id),
                _ => true,
            };
            if newer {
                self.c
                    .ahead
                    .obs
                    .insert(k.clone(), Some((at, o.event_id.clone())));
                self.c.ahead.dirty_obs.insert(k);
            }
            changed.push(newer);
        }
        Ok(changed)
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

/// A lane's row by key ($1).
const LANE_ROW: &str = concat!("SELECT ", lane_columns!(), " FROM shipments WHERE key = $1");

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
        .map(|r| lane_from(key, &r, 0))
        .transpose()
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
