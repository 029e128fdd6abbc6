//! What the PostgreSQL writer reads ahead for a batch of ingest jobs, and the rows they
//! write, kept until one set-based statement per table writes them all.
//!
//! Appending an event reads its lane's row, whether the event is already in the lane's
//! log, the lane's aliases and the stored observations of the facts it states; it writes
//! the event, the lane's new state, new aliases, outbox rows and observations. Sent one
//! event at a time that is three round trips and seven statements per event, and the
//! single writer waits on each round trip. Instead, when a batch starts, one pipeline
//! inserts every accepted payload's inbox row and reads all of that for every event of
//! the batch (and allocates the events' row ids); the jobs then run against these rows in
//! memory, and what they write is kept here and sent as one `unnest` statement per
//! table with the next statement that must be read, or before the commit.
//!
//! Whatever the jobs need and was not read ahead is read from the database after the
//! kept writes are sent (so it sees them). A statement sent by anything but the ingest
//! transaction (another job of the batch) may change these tables, so the rows read
//! ahead are forgotten then (see `PgConn`), except for jobs that say they leave these
//! tables alone.

use super::{Param, PgConn};
use crate::codec::{decode_state, flags_to_str, to_us};
use crate::prepare::Prepared;
use crate::sequence::Lane;
use crate::{StoreError, Verdict};
use postgres::types::ToSql;
use std::collections::{HashMap, HashSet, VecDeque};
use waybill_model::identity::Alias;
use waybill_model::{ownership, EventId, ShipmentKey};

/// The columns of a lane's row that [`lane_from`] reads, after its key.
macro_rules! lane_columns {
    () => {
        "state, milestone_at, milestone_event, flags, last_event_at, last_seq, entity, tenant"
    };
}
pub(crate) use lane_columns;

/// The stored observations of keys ($1 lanes, $2 facts, $3 sources, $4 values), each
/// looked up on its own (see [`read_ahead`]): lane, fact, source, value, at, event id.
pub(crate) const OBSERVATIONS_OF: &str = "SELECT o.lane, o.fact, o.source, o.value, o.at, o.event_id
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(l, f, s, v) CROSS JOIN LATERAL (
       SELECT * FROM observations o
       WHERE o.lane = x.l AND o.fact = x.f AND o.source = x.s AND o.value = x.v LIMIT 1) o";

/// $1 new event row ids, from the column's own sequence.
pub(crate) const NEXT_IDS: &str =
    "SELECT nextval(pg_get_serial_sequence('events', 'seq_id')) FROM generate_series(1, $1::bigint)";

/// An observation's key: (lane, fact, source, value as stored).
pub(crate) type ObsKey = (String, String, String, String);

/// An accepted payload's inbox row, written ahead.
#[derive(Debug, Clone)]
pub(crate) enum InboxAhead {
    /// Inserted for this job: its id.
    New(i64),
    /// Already there under the same key (or inserted by an earlier job of the batch):
    /// its id and its events.
    Existing(i64, Vec<EventId>),
}

/// A lane's row as the batch knows it.
#[derive(Debug, Clone)]
pub(crate) struct LaneAhead {
    /// The row (None: no such lane yet).
    pub row: Option<Lane>,
    /// Changed since read: written at the next spill.
    pub dirty: bool,
    /// `updated_at` to write (None: left as it is).
    pub updated_at: Option<i64>,
}

/// A new event row, kept until the spill.
pub(crate) struct EventRow {
    pub seq_id: i64,
    pub event_id: String,
    pub shipment: String,
    pub shipment_seq: i64,
    pub ty: &'static str,
    pub source: String,
    pub occurred_at: i64,
    pub recorded_at: i64,
    pub inbox_id: Option<i64>,
    pub effect: &'static str,
    pub body: Vec<u8>,
    pub encoding: Option<&'static str>,
}

/// A new outbox row, kept until the spill.
pub(crate) struct OutboxRow {
    pub subscription: String,
    pub sink: String,
    pub event_seq: i64,
    pub shipment: String,
    pub updated_at: i64,
    pub bucket: i64,
}

/// The batch's rows read ahead and writes kept (empty outside a batch).
#[derive(Default)]
pub(crate) struct Ahead {
    /// Inbox rows by (source, idempotency key).
    inbox: HashMap<(String, String), InboxAhead>,
    /// Lane rows by key (a key read and absent is `row: None`).
    pub lanes: HashMap<String, LaneAhead>,
    /// (lane, event id) → whether the lane's log has it.
    pub events: HashMap<(String, String), bool>,
    /// Every alias of a lane, by lane.
    pub aliases: HashMap<String, HashSet<(String, String)>>,
    /// Stored observations by key: (at, event id), None when there is none.
    pub obs: HashMap<ObsKey, Option<(i64, String)>>,
    /// Event row ids allocated for the batch, in order.
    pub ids: VecDeque<i64>,
    /// Writes kept until the spill.
    pub new_events: Vec<EventRow>,
    pub new_aliases: Vec<(String, String, String)>,
    pub new_outbox: Vec<OutboxRow>,
    pub dirty_obs: HashSet<ObsKey>,
}

/// The columns of `rows` (taken out of them), one `unnest` parameter each, in the
/// order of the fields named.
macro_rules! columns {
    ($rows:expr; $($f:tt),+ $(,)?) => {{
        let rows = &mut $rows;
        vec![$(
            Box::new(rows.iter_mut().map(|r| std::mem::take(&mut r.$f)).collect::<Vec<_>>()) as Param
        ),+]
    }};
}

impl Ahead {
    /// Forgets the rows read ahead (the kept writes must have been spilled).
    pub(crate) fn forget(&mut self) {
        self.lanes.clear();
        self.events.clear();
        self.aliases.clear();
        self.obs.clear();
    }

    /// Whether writes are kept.
    pub(crate) fn has_writes(&self) -> bool {
        !self.new_events.is_empty()
            || !self.new_aliases.is_empty()
            || !self.new_outbox.is_empty()
            || !self.dirty_obs.is_empty()
            || self.lanes.values().any(|l| l.dirty)
    }

    /// The inbox row written ahead for a payload, if any: the first job with a key gets
    /// the row inserted, any later one the duplicate answer.
    pub(crate) fn take_inbox(&mut self, p: &Prepared) -> Option<InboxAhead> {
        let k = (p.rec.source.clone(), p.rec.idempotency_key.clone());
        let slot = self.inbox.get_mut(&k)?;
        let out = slot.clone();
        if let InboxAhead::New(id) = out {
            let events = p.events.iter().map(|(e, _)| e.id.clone()).collect();
            *slot = InboxAhead::Existing(id, events);
        }
        Some(out)
    }

    /// The statements that write what is kept, in an order that keeps references valid
    /// (events before the outbox rows naming them); empties the kept writes and marks the
    /// lanes clean.
    pub(crate) fn writes(&mut self) -> Vec<(&'static str, Vec<Param>)> {
        let mut out: Vec<(&'static str, Vec<Param>)> = Vec::new();
        if !self.new_events.is_empty() {
            let mut rows = std::mem::take(&mut self.new_events);
            out.push((
                "INSERT INTO events (seq_id, event_id, shipment, shipment_seq, type, source, occurred_at, recorded_at, inbox_id, effect, body, encoding)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                   $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::bytea[], $12::text[])",
                columns!(rows; seq_id, event_id, shipment, shipment_seq, ty, source, occurred_at,
                    recorded_at, inbox_id, effect, body, encoding),
            ));
        }
        // Lanes (one row per key: a lane changed by several jobs holds its last state).
        let mut key = Vec::new();
        let mut state = Vec::new();
        let mut m_at = Vec::new();
        let mut m_ev = Vec::new();
        let mut flags = Vec::new();
        let mut last_at = Vec::new();
        let mut last_seq = Vec::new();
        let mut updated = Vec::new();
        let mut tenant = Vec::new();
        for (k, l) in self.lanes.iter_mut().filter(|(_, l)| l.dirty) {
            l.dirty = false;
            let Some(row) = &l.row else { continue };
            key.push(k.clone());
            state.push(row.state.milestone.as_str());
            m_at.push(row.state.milestone_at.map(to_us));
            m_ev.push(row.state.milestone_event.as_ref().map(|e| e.0.clone()));
            flags.push(flags_to_str(&row.state.flags));
            last_at.push(row.state.last_event_at.map(to_us));
            last_seq.push(row.last_seq);
            updated.push(l.updated_at);
            tenant.push(row.tenant.clone());
        }
        if !key.is_empty() {
            out.push((
                "INSERT INTO shipments AS s (key, state, milestone_at, milestone_event, flags, last_event_at, last_seq, created_at, updated_at, tenant)
                 SELECT k, st, ma, me, f, la, ls, coalesce(u, 0), coalesce(u, -1), t FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                   $6::bigint[], $7::bigint[], $8::bigint[], $9::text[]) AS x(k, st, ma, me, f, la, ls, u, t)
                 ON CONFLICT (key) DO UPDATE SET state = excluded.state, milestone_at = excluded.milestone_at,
                   milestone_event = excluded.milestone_event, flags = excluded.flags,
                   last_event_at = excluded.last_event_at, last_seq = excluded.last_seq,
                   updated_at = CASE WHEN excluded.updated_at < 0 THEN s.updated_at ELSE excluded.updated_at END, tenant = coalesce(s.tenant, excluded.tenant)",
                vec![
                    Box::new(key),
                    Box::new(state),
                    Box::new(m_at),
                    Box::new(m_ev),
                    Box::new(flags),
                    Box::new(last_at),
                    Box::new(last_seq),
                    Box::new(updated),
                    Box::new(tenant),
                ],
            ));
        }
        if !self.new_aliases.is_empty() {
            let mut rows = std::mem::take(&mut self.new_aliases);
            out.push((
                "INSERT INTO xrefs (kind, value, shipment)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
                columns!(rows; 0, 1, 2),
            ));
        }
        if !self.new_outbox.is_empty() {
            let mut rows = std::mem::take(&mut self.new_outbox);
            out.push((
                "INSERT INTO outbox (subscription, sink, event_seq, shipment, updated_at, bucket)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[])",
                columns!(rows; subscription, sink, event_seq, shipment, updated_at, bucket),
            ));
        }
        let mut obs: Vec<(String, String, String, String, i64, String)> = Vec::new();
        for k in std::mem::take(&mut self.dirty_obs) {
            if let Some(Some((at, id))) = self.obs.get(&k).cloned() {
                obs.push((k.0, k.1, k.2, k.3, at, id));
            }
        }
        if !obs.is_empty() {
            out.push((
                "INSERT INTO observations AS o (lane, fact, source, value, at, event_id)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
                 ON CONFLICT (lane, fact, source, value) DO UPDATE SET at = excluded.at, event_id = excluded.event_id
                 WHERE excluded.at > o.at OR (excluded.at = o.at AND excluded.event_id > o.event_id)",
                columns!(obs; 0, 1, 2, 3, 4, 5),
            ));
        }
        out
    }
}

/// A lane from its row's [`lane_columns`], starting at column `at`.
pub(crate) fn lane_from(key: &str, r: &postgres::Row, at: usize) -> Result<Lane, StoreError> {
    let (st, m_at, m_ev, flags, last): (String, Option<i64>, Option<String>, String, Option<i64>) = (
        r.get(at),
        r.get(at + 1),
        r.get(at + 2),
        r.get(at + 3),
        r.get(at + 4),
    );
    Ok(Lane {
        state: decode_state(ShipmentKey(key.to_owned()), &st, m_at, m_ev, &flags, last)?,
        last_seq: r.get(at + 5),
        entity: r.get(at + 6),
        tenant: r.get(at + 7),
    })
}

/// An observation value as stored.
pub(crate) fn obs_key(lane: &str, o: &ownership::Observation) -> ObsKey {
    (
        lane.to_owned(),
        o.fact.as_str().to_owned(),
        o.source.clone(),
        o.value.to_string(),
    )
}

/// Inserts the inbox rows of a batch's accepted payloads and reads ahead what their
/// events will need, in one pipeline (a second round trip only when some payload was
/// already recorded). Runs inside the batch's transaction.
pub(crate) fn read_ahead(c: &mut PgConn, batch: &[&Prepared]) -> Result<(), StoreError> {
    let accepted: Vec<&Prepared> = batch
        .iter()
        .copied()
        .filter(|p| matches!(p.rec.verdict, Verdict::Accepted(_)))
        .collect();
    if accepted.is_empty() {
        return Ok(());
    }
    // The inbox rows.
    let mut i_src = Vec::new();
    let mut i_key = Vec::new();
    let mut i_recv = Vec::new();
    let mut i_head = Vec::new();
    let mut i_body = Vec::new();
    let mut i_ids = Vec::new();
    let mut i_enc = Vec::new();
    // What the events read.
    let mut lanes: Vec<&str> = Vec::new();
    let (mut e_lane, mut e_id) = (Vec::new(), Vec::new());
    let (mut o_lane, mut o_fact, mut o_src, mut o_val) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut n_events: i64 = 0;
    let mut seen_lane = HashSet::new();
    for p in &accepted {
        i_src.push(p.rec.source.as_str());
        i_key.push(p.rec.idempotency_key.as_str());
        i_recv.push(to_us(p.rec.received_at));
        i_head.push(p.headers.as_str());
        i_body.push(p.body.as_slice());
        i_ids.push(p.event_ids_json.as_str());
        i_enc.push(p.encoding);
        for (ev, _) in &p.events {
            n_events += 1;
            let lane = ev.subject.as_str();
            if seen_lane.insert(lane) {
                lanes.push(lane);
            }
            e_lane.push(lane);
            e_id.push(ev.id.as_str());
            for (fact, value) in ownership::facts_of(ev) {
                o_lane.push(lane.to_owned());
                o_fact.push(fact.as_str());
                o_src.push(ev.source_name().to_owned());
                o_val.push(value.to_string());
            }
        }
    }
    let st_inbox = c.st(
        "INSERT INTO inbox (source, idempotency_key, status, received_at, headers, body, event_ids, encoding)
         SELECT s, k, 'accepted', r, h, b, e, n FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[],
           $5::bytea[], $6::text[], $7::text[]) WITH ORDINALITY AS x(s, k, r, h, b, e, n, o)
         ORDER BY o
         ON CONFLICT (source, idempotency_key) WHERE status = 'accepted' DO NOTHING RETURNING id, source, idempotency_key",
    )?;
    // Each key looked up on its own: a LATERAL subquery with LIMIT or OFFSET is not
    // pulled up, so it stays a nested loop over the index whatever the statistics say (a
    // generic plan made while a table was small would otherwise scan it whole for ever
    // after).
    let st_lanes = c.st(concat!(
        "WITH l AS (
           SELECT s.* FROM unnest($1::text[]) AS x(k) CROSS JOIN LATERAL (
             SELECT key, ",
        lane_columns!(),
        " FROM shipments WHERE key = x.k LIMIT 1) s)
         SELECT * FROM l
         UNION ALL
         SELECT s.* FROM (SELECT DISTINCT entity FROM l WHERE entity IS NOT NULL) e CROSS JOIN LATERAL (
             SELECT key, ",
        lane_columns!(),
        " FROM shipments WHERE key = e.entity LIMIT 1) s
         WHERE NOT (s.key = ANY($1::text[]))"
    ))?;
    let st_events = c.st(
        "SELECT x.l, x.i FROM unnest($1::text[], $2::text[]) AS x(l, i) CROSS JOIN LATERAL (
           SELECT 1 FROM events e WHERE e.shipment = x.l AND e.event_id = x.i LIMIT 1) e",
    )?;
    let st_aliases = c.st(
        "SELECT a.shipment, a.kind, a.value FROM unnest($1::text[]) AS x(l) CROSS JOIN LATERAL (
           SELECT shipment, kind, value FROM xrefs WHERE shipment = x.l OFFSET 0) a",
    )?;
    let st_obs = c.st(OBSERVATIONS_OF)?;
    let st_ids = c.st(NEXT_IDS)?;
    let deferred = c.take_deferred()?;
    let client = &c.client;
    let p_inbox: [&(dyn ToSql + Sync); 7] =
        [&i_src, &i_key, &i_recv, &i_head, &i_body, &i_ids, &i_enc];
    let p_lanes: [&(dyn ToSql + Sync); 1] = [&lanes];
    let p_events: [&(dyn ToSql + Sync); 2] = [&e_lane, &e_id];
    let p_obs: [&(dyn ToSql + Sync); 4] = [&o_lane, &o_fact, &o_src, &o_val];
    let p_ids: [&(dyn ToSql + Sync); 1] = [&n_events];
    let reads = futures::future::try_join3(
        futures::future::try_join3(
            client.query(&st_inbox, &p_inbox),
            client.query(&st_lanes, &p_lanes),
            client.query(&st_events, &p_events),
        ),
        client.query(&st_aliases, &p_lanes),
        futures::future::try_join(client.query(&st_obs, &p_obs), client.query(&st_ids, &p_ids)),
    );
    let ((inbox, lane_rows, event_rows), alias_rows, (obs_rows, id_rows)) =
        super::pipelined(&c.rt, &c.client, deferred, reads)?;

    let a = &mut c.ahead;
    // Inbox: inserted now, or there before (read below).
    let mut inserted: HashMap<(String, String), i64> = HashMap::new();
    for r in &inbox {
        inserted.insert((r.get(1), r.get(2)), r.get(0));
    }
    let mut missing: Vec<(&str, &str)> = Vec::new();
    for p in &accepted {
        let k = (p.rec.source.clone(), p.rec.idempotency_key.clone());
        if a.inbox.contains_key(&k) {
            continue;
        }
        match inserted.get(&k) {
            Some(id) => {
                a.inbox.insert(k, InboxAhead::New(*id));
            }
            None => missing.push((p.rec.source.as_str(), p.rec.idempotency_key.as_str())),
        }
    }
    // Lanes: every key asked for is known, present or not.
    for l in &lanes {
        a.lanes.insert(
            (*l).to_owned(),
            LaneAhead {
                row: None,
                dirty: false,
                updated_at: None,
            },
        );
    }
    for r in &lane_rows {
        let key: String = r.get(0);
        let row = lane_from(&key, r, 1)?;
        a.lanes.insert(
            key,
            LaneAhead {
                row: Some(row),
                dirty: false,
                updated_at: None,
            },
        );
    }
    for (l, i) in e_lane.iter().zip(&e_id) {
        a.events.insert(((*l).to_owned(), (*i).to_owned()), false);
    }
    for r in &event_rows {
        a.events.insert((r.get(0), r.get(1)), true);
    }
    for l in &lanes {
        a.aliases.insert((*l).to_owned(), HashSet::new());
    }
    for r in &alias_rows {
        let lane: String = r.get(0);
        a.aliases
            .entry(lane)
            .or_default()
            .insert((r.get(1), r.get(2)));
    }
    for (((l, f), s), v) in o_lane.into_iter().zip(o_fact).zip(o_src).zip(o_val) {
        a.obs.insert((l, f.to_owned(), s, v), None);
    }
    for r in &obs_rows {
        a.obs.insert(
            (r.get(0), r.get(1), r.get(2), r.get(3)),
            Some((r.get(4), r.get(5))),
        );
    }
    let mut ids: Vec<i64> = id_rows.iter().map(|r| r.get(0)).collect();
    ids.sort_unstable();
    a.ids.extend(ids);

    if !missing.is_empty() {
        let (src, key): (Vec<&str>, Vec<&str>) = missing.into_iter().unzip();
        let rows = c.keeping(|c| {
            c.query(
                "SELECT id, event_ids, source, idempotency_key FROM inbox
                 WHERE status = 'accepted' AND (source, idempotency_key) IN
                   (SELECT * FROM unnest($1::text[], $2::text[]))",
                &[&src, &key],
            )
        })?;
        for r in rows {
            let id: i64 = r.get(0);
            let event_ids = recorded_events(id, r.get(1))?;
            c.ahead
                .inbox
                .insert((r.get(2), r.get(3)), InboxAhead::Existing(id, event_ids));
        }
    }
    Ok(())
}

/// The events an accepted inbox row recorded (its `event_ids` column).
pub(crate) fn recorded_events(id: i64, json: &str) -> Result<Vec<EventId>, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("inbox {id} event_ids: {e}")))
}

/// Alias pairs (kind, value) of a lane, sorted.
pub(crate) fn alias_list(set: &HashSet<(String, String)>) -> Vec<Alias> {
    let mut pairs: Vec<&(String, String)> = set.iter().collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(kind, value)| Alias {
            kind: kind.clone(),
            value: value.clone(),
        })
        .collect()
}
