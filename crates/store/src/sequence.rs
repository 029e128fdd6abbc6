//! SEQUENCE, ROUTE, RESOLVE and SETTLE, written once for every backend: what happens to
//! each accepted event inside the write transaction. A backend implements [`Tx`] — the
//! reads and writes of one transaction, nothing else — and calls [`append`]; every
//! decision (duplicate or new, sequence number, fold, which subscriptions, which lanes
//! form a shipment, what conflicts) is made here or in `waybill_model`'s pure functions
//! (`lifecycle`, `identity::group`, `ownership::settle`).

use crate::body::{with_sequence, EventBody};
use crate::{StoreError, Subscription};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use time::OffsetDateTime;
use waybill_model::identity::{self, Alias, Grouping, IdentityConflict, LaneAliases};
use waybill_model::lifecycle::{Applied, EventFacts};
use waybill_model::ownership::{self, Fact, FactConflict, Observation, Ownership};
use waybill_model::{CloudEvent, EventId, EventType, ShipmentKey, ShipmentState};

/// Most lanes regrouped at once. A larger connected set (an identifier that thousands of
/// shipments share — usually a mapping that marks a descriptive field identifying) is left
/// as it was, with a warning in the log.
pub const MAX_COMPONENT: usize = 256;

/// A lane's row as the sequencer needs it.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The state folded into this row (meaningful for a canonical lane).
    pub state: ShipmentState,
    /// Last sequence number of the lane's log.
    pub last_seq: i64,
    /// The canonical lane of its shipment, when that is another lane.
    pub entity: Option<String>,
    /// The tenant its first tenant-bearing event named (the canonical lane's is the
    /// shipment's).
    pub tenant: Option<String>,
}

/// A new event row.
pub struct NewEvent<'a> {
    /// The event.
    pub event: &'a CloudEvent,
    /// Its stored body.
    pub body: StoredBody<'a>,
    /// Its lane's sequence number.
    pub seq: i64,
    /// The inbox row it came with (None: made by the hub).
    pub inbox_id: Option<i64>,
    /// Its effect on the shipment.
    pub effect: Applied,
}

/// An event body as a row stores it (see [`crate::body`]).
#[derive(Debug, Clone, Copy)]
pub enum StoredBody<'a> {
    /// The JSON with `sequence` (no encoding).
    Json(&'a str),
    /// Packed bytes and their encoding.
    Packed(&'a [u8], &'static str),
}

/// The reads and writes of one write transaction. Implemented by each backend; nothing
/// here decides anything.
pub trait Tx {
    /// The routing and ownership rules in force.
    fn rules(&self) -> (&[Subscription], &Ownership);
    /// A lane's row, if it exists.
    fn lane(&mut self, key: &str) -> Result<Option<Lane>, StoreError>;
    /// Inserts an event unless its id is already in its lane's log; returns the new row's
    /// global id, or None for a repeat.
    fn insert_event(&mut self, e: &NewEvent<'_>) -> Result<Option<i64>, StoreError>;
    /// Creates or updates a canonical lane's row: its last sequence and the shipment's
    /// state (`state_changed`: the milestone moved, so indexes on it change).
    fn put_lane(
        &mut self,
        key: &str,
        state: &ShipmentState,
        last_seq: i64,
        now: OffsetDateTime,
        state_changed: bool,
    ) -> Result<(), StoreError>;
    /// Updates a non-canonical lane's last sequence and last event time.
    fn put_lane_seq(
        &mut self,
        key: &str,
        last_seq: i64,
        event_time: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Writes a shipment's state into its canonical lane's row.
    fn put_state(
        &mut self,
        key: &str,
        state: &ShipmentState,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Gives a lane a tenant unless it has one.
    fn set_tenant(&mut self, lane: &str, tenant: &str) -> Result<(), StoreError>;
    /// Points `lane` at the canonical lane `canonical` (itself: none).
    fn set_entity(
        &mut self,
        lane: &str,
        canonical: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// The lanes pointing at canonical lane `canonical` (not itself).
    fn lanes_of(&mut self, canonical: &str) -> Result<Vec<String>, StoreError>;
    /// The facts of every event of a lane.
    fn event_facts(&mut self, lane: &str) -> Result<Vec<EventFacts>, StoreError>;
    /// Records an alias of a lane; returns whether it is new for that lane.
    fn add_alias(&mut self, lane: &str, a: &Alias) -> Result<bool, StoreError>;
    /// Adds aliases to a lane; for each, whether it was new. (A backend may do it in one
    /// statement.)
    fn add_aliases(&mut self, lane: &str, aliases: &[Alias]) -> Result<Vec<bool>, StoreError> {
        aliases.iter().map(|a| self.add_alias(lane, a)).collect()
    }
    /// Whether a lane other than `lane` has this alias (`kind`, `value`).
    fn alias_elsewhere(&mut self, kind: &str, value: &str, lane: &str) -> Result<bool, StoreError>;
    /// The lanes that have this alias.
    fn lanes_naming(&mut self, kind: &str, value: &str) -> Result<Vec<String>, StoreError>;
    /// Every alias of a lane.
    fn aliases(&mut self, lane: &str) -> Result<Vec<Alias>, StoreError>;
    /// Routes an event to the sink of subscription number `sub` of [`Tx::rules`].
    fn add_outbox(
        &mut self,
        sub: usize,
        event_row: i64,
        lane: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Records an observation of a fact, keeping the latest time (and its event) for a
    /// value already stated by that source; returns whether anything changed.
    fn observe(&mut self, lane: &str, o: &Observation) -> Result<bool, StoreError>;
    /// Records observations of a lane; for each, whether it changed what is stored. (A
    /// backend may do it in one statement.)
    fn observe_all(&mut self, lane: &str, obs: &[Observation]) -> Result<Vec<bool>, StoreError> {
        obs.iter().map(|o| self.observe(lane, o)).collect()
    }
    /// The observations of these facts in a lane.
    fn observations(&mut self, lane: &str, facts: &[Fact]) -> Result<Vec<Observation>, StoreError>;
    /// Replaces a lane's identity conflicts.
    fn set_identity_conflicts(
        &mut self,
        lane: &str,
        conflicts: &[&IdentityConflict],
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Replaces a shipment's ownership conflicts of these facts (all facts when `facts` is
    /// None).
    fn set_ownership_conflicts(
        &mut self,
        shipment: &str,
        facts: Option<&[Fact]>,
        conflicts: &[FactConflict],
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

/// Appends one event unless its id is already in its lane's log; returns whether it was
/// new.
///
/// The event goes into its lane's log (its subject: dense per-lane sequence) and folds
/// into the state of the shipment the lane resolves to; it is routed to the matching
/// subscriptions. Its aliases are recorded even when the event itself is a repeat (a
/// re-read record may name a new tracking number); a new alias shared with another lane
/// resolves the lanes again. The facts it states are observed, and ownership conflicts
/// recomputed when they may have changed.
pub fn append(
    tx: &mut dyn Tx,
    inbox_id: Option<i64>,
    ev: &CloudEvent,
    body: &EventBody,
) -> Result<bool, StoreError> {
    let key = ev.subject.as_str();
    let now = ev.recordedtime;
    let lane = tx.lane(key)?;
    let exists = lane.is_some();
    let (lane_state, last_seq, entity, lane_tenant) = match lane {
        Some(l) => (l.state, l.last_seq, l.entity, l.tenant),
        None => (ShipmentState::new(ev.subject.clone()), 0, None, None),
    };
    let (mut state, canonical_tenant) = match &entity {
        Some(c) => match tx.lane(c)? {
            Some(l) => (l.state, l.tenant),
            None => (ShipmentState::new(ShipmentKey(c.clone())), None),
        },
        None => (lane_state, lane_tenant.clone()),
    };
    let milestone_before = state.milestone;
    let effect = state.apply(&ev.facts());
    let seq = last_seq + 1;
    let json;
    let body = match body {
        EventBody::Json(j) => {
            json = with_sequence(j, seq);
            StoredBody::Json(&json)
        }
        EventBody::Packed { bytes, encoding } => StoredBody::Packed(bytes, encoding),
    };
    let inserted = tx.insert_event(&NewEvent {
        event: ev,
        body,
        seq,
        inbox_id,
        effect,
    })?;
    let Some(event_row) = inserted else {
        if record_aliases(tx, ev)? {
            resolve(tx, key, now)?;
        }
        return Ok(false);
    };
    match &entity {
        None => tx.put_lane(
            key,
            &state,
            seq,
            now,
            !exists || milestone_before != state.milestone,
        )?,
        Some(c) => {
            tx.put_lane_seq(key, seq, ev.time, now)?;
            tx.put_state(c, &state, now)?;
        }
    }
    // The first tenant named sticks to the lane and to its shipment's canonical lane.
    if let Some(t) = ev.tenant.as_deref() {
        if lane_tenant.is_none() {
            tx.set_tenant(key, t)?;
        }
        if let (Some(c), None) = (&entity, &canonical_tenant) {
            tx.set_tenant(c, t)?;
        }
    }
    let new_alias = record_aliases(tx, ev)?;
    let source = ev.source_name();
    let routes: Vec<usize> = tx
        .rules()
        .0
        .iter()
        .enumerate()
        .filter(|(_, s)| s.matches(ev.ty, source))
        .map(|(i, _)| i)
        .collect();
    for sub in routes {
        tx.add_outbox(sub, event_row, key, now)?;
    }
    let shipment = if new_alias {
        resolve(tx, key, now)?;
        canonical_of(tx, key)?
    } else {
        entity.unwrap_or_else(|| key.to_owned())
    };
    observe(tx, ev, &shipment)?;
    Ok(true)
}

/// The canonical lane of the shipment `lane` belongs to (itself when it has no row).
fn canonical_of(tx: &mut dyn Tx, lane: &str) -> Result<String, StoreError> {
    Ok(tx
        .lane(lane)?
        .and_then(|l| l.entity)
        .unwrap_or_else(|| lane.to_owned()))
}

/// The lanes of the shipment `lane` belongs to (the canonical one first).
pub fn members(tx: &mut dyn Tx, lane: &str) -> Result<Vec<String>, StoreError> {
    let canonical = canonical_of(tx, lane)?;
    let mut out = vec![canonical.clone()];
    out.extend(tx.lanes_of(&canonical)?);
    Ok(out)
}

/// The kinds an alias matches under: its own, and for a PO or sale order name both (see
/// `identity::order_identity`).
fn kinds_of(a: &Alias) -> Vec<&str> {
    match identity::order_kinds(&a.kind) {
        [] => vec![a.kind.as_str()],
        ks => ks.to_vec(),
    }
}

/// Records an event's aliases for its lane; returns whether the lanes must be resolved
/// again: an identifying alias is new for this lane and another lane names it, or the
/// lane already shares a shipment with others (a new picking or order may contradict).
fn record_aliases(tx: &mut dyn Tx, ev: &CloudEvent) -> Result<bool, StoreError> {
    let lane = ev.subject.as_str();
    let mut again = false;
    let mut new_identity = false;
    let aliases: Vec<Alias> = identity::aliases_of(ev).into_iter().collect();
    let added = tx.add_aliases(lane, &aliases)?;
    for (a, added) in aliases.iter().zip(added) {
        if !added || !(a.links_shipments() || a.names_order()) {
            continue;
        }
        new_identity = true;
        for kind in kinds_of(a) {
            if again {
                break;
            }
            again = tx.alias_elsewhere(kind, &a.value, lane)?;
        }
    }
    if new_identity && !again {
        again = members(tx, lane)?.len() > 1;
    }
    Ok(again)
}

/// A lane's identity aliases (those that link shipments or name an order).
fn lane_aliases(tx: &mut dyn Tx, lane: &str) -> Result<BTreeSet<Alias>, StoreError> {
    Ok(tx
        .aliases(lane)?
        .into_iter()
        .filter(|a| a.links_shipments() || a.names_order())
        .collect())
}

fn lanes_naming(tx: &mut dyn Tx, a: &Alias) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for kind in kinds_of(a) {
        out.extend(tx.lanes_naming(kind, &a.value)?);
    }
    Ok(out)
}

/// The lanes connected to `lane` through identity aliases and current groups, with their
/// aliases; None when there are more than [`MAX_COMPONENT`].
fn component(
    tx: &mut dyn Tx,
    lane: &str,
) -> Result<Option<BTreeMap<String, BTreeSet<Alias>>>, StoreError> {
    let mut comp: BTreeMap<String, BTreeSet<Alias>> = BTreeMap::new();
    let mut queue = VecDeque::from([lane.to_owned()]);
    while let Some(l) = queue.pop_front() {
        if comp.contains_key(&l) {
            continue;
        }
        if comp.len() >= MAX_COMPONENT {
            return Ok(None);
        }
        let aliases = lane_aliases(tx, &l)?;
        for a in &aliases {
            queue.extend(
                lanes_naming(tx, a)?
                    .into_iter()
                    .filter(|o| !comp.contains_key(o)),
            );
        }
        queue.extend(
            members(tx, &l)?
                .into_iter()
                .filter(|o| !comp.contains_key(o)),
        );
        comp.insert(l, aliases);
    }
    Ok(Some(comp))
}

/// Resolves the lanes connected to `lane` again and applies what changed: canonical
/// pointers, refolded states, `shipment.linked`, identity and ownership conflicts.
pub fn resolve(tx: &mut dyn Tx, lane: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    let Some(comp) = component(tx, lane)? else {
        tracing::warn!(
            lane,
            limit = MAX_COMPONENT,
            "identity: more lanes share identifiers than one resolution takes; left as they were"
        );
        return Ok(());
    };
    let input: Vec<LaneAliases> = comp
        .iter()
        .map(|(l, a)| LaneAliases {
            lane: l.clone(),
            aliases: a.clone(),
        })
        .collect();
    let grouping = identity::group(&input);
    let mut current: BTreeMap<String, String> = BTreeMap::new();
    for l in comp.keys() {
        let c = canonical_of(tx, l)?;
        current.insert(l.clone(), c);
    }
    let was = |l: &str| -> String { current.get(l).cloned().unwrap_or_else(|| l.to_owned()) };
    let mut linked = Vec::new();
    let mut changed = Vec::new();
    for g in &grouping.groups {
        let anchor_before = was(&g.key);
        let same = g.lanes.iter().all(|l| was(l) == g.key)
            && current
                .iter()
                .filter(|(_, c)| **c == g.key)
                .all(|(l, _)| g.lanes.contains(l));
        if same {
            continue;
        }
        for l in &g.lanes {
            tx.set_entity(l, &g.key, now)?;
        }
        adopt_tenant(tx, &g.key, &g.lanes)?;
        refold(tx, &g.key, &g.lanes, now)?;
        changed.push(g.clone());
        let joined: Vec<&String> = g.lanes.iter().filter(|l| was(l) != anchor_before).collect();
        if g.lanes.len() > 1 && !joined.is_empty() {
            let previous: BTreeSet<String> = g.lanes.iter().map(|l| was(l)).collect();
            let stay: BTreeSet<&Alias> = g
                .lanes
                .iter()
                .filter(|l| !joined.contains(l))
                .flat_map(|l| comp.get(l).into_iter().flatten())
                .collect();
            let came: Vec<&Alias> = joined
                .iter()
                .flat_map(|l| comp.get(l.as_str()).into_iter().flatten())
                .collect();
            let mut via: BTreeSet<String> = came
                .iter()
                .filter(|a| stay.contains(*a))
                .map(|a| a.text())
                .collect();
            if via.is_empty() {
                // Joined through the order (rule 4): name the order aliases on both sides
                // that are one order (`po:S1` and `odoo.order:S1`).
                for a in came.iter().filter(|a| a.names_order()) {
                    for b in stay.iter().filter(|b| b.names_order()) {
                        if identity::order_identity(a) == identity::order_identity(b) {
                            via.insert(a.text());
                            via.insert(b.text());
                        }
                    }
                }
            }
            linked.push((
                g.key.clone(),
                g.lanes.join("\n"),
                json!({
                    "shipment": g.key,
                    "lanes": g.lanes,
                    "joined": joined,
                    "previous": previous,
                    "via": via,
                }),
            ));
        }
    }
    write_identity_conflicts(tx, comp.keys(), &grouping, now)?;
    for g in &changed {
        // Ownership conflicts are kept under the canonical key: recompute them there and
        // drop those of lanes that are no longer canonical.
        for l in g.lanes.iter().filter(|l| **l != g.key) {
            tx.set_ownership_conflicts(l, None, &[], now)?;
        }
        settle(tx, &g.key, &g.lanes, Fact::ALL, now)?;
    }
    for (key, lanes, data) in linked {
        let key = ShipmentKey(key);
        let ev = CloudEvent {
            id: EventId::derive("waybill", &key, "shipment.linked", &lanes),
            source: "/sources/waybill".into(),
            specversion: "1.0".into(),
            ty: EventType::ShipmentLinked,
            time: now,
            subject: key.clone(),
            datacontenttype: "application/json".into(),
            correlationid: None,
            causationid: None,
            sequence: None,
            partitionkey: key.0.clone(),
            traceparent: None,
            recordedtime: now,
            dataclassification: None,
            tenant: None,
            data,
        };
        let body = serde_json::to_string(&ev)
            .map_err(|e| StoreError::Corrupt(format!("shipment.linked not serializable: {e}")))?;
        append(tx, None, &ev, &EventBody::Json(body))?;
    }
    Ok(())
}

/// Gives a shipment's canonical lane the tenant of the first of its lanes that has one,
/// unless it has one already.
fn adopt_tenant(tx: &mut dyn Tx, canonical: &str, lanes: &[String]) -> Result<(), StoreError> {
    if tx.lane(canonical)?.is_some_and(|l| l.tenant.is_some()) {
        return Ok(());
    }
    for l in lanes.iter().filter(|l| *l != canonical) {
        if let Some(t) = tx.lane(l)?.and_then(|l| l.tenant) {
            return tx.set_tenant(canonical, &t);
        }
    }
    Ok(())
}

/// Folds a shipment's state again from every event of its lanes.
fn refold(
    tx: &mut dyn Tx,
    key: &str,
    lanes: &[String],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut state = ShipmentState::new(ShipmentKey(key.to_owned()));
    for l in lanes {
        for f in tx.event_facts(l)? {
            state.apply(&f);
        }
    }
    tx.put_state(key, &state, now)
}

fn write_identity_conflicts<'a>(
    tx: &mut dyn Tx,
    lanes: impl Iterator<Item = &'a String>,
    grouping: &Grouping,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for l in lanes {
        let on: Vec<&IdentityConflict> = grouping
            .conflicts
            .iter()
            .filter(|c| c.lanes().contains(l.as_str()))
            .collect();
        tx.set_identity_conflicts(l, &on, now)?;
    }
    Ok(())
}

/// Records the facts an event states; when one is new or newer and the fact has owners,
/// the shipment's ownership conflicts of that fact are computed again.
fn observe(tx: &mut dyn Tx, ev: &CloudEvent, shipment: &str) -> Result<(), StoreError> {
    let facts = ownership::facts_of(ev);
    if facts.is_empty() {
        return Ok(());
    }
    let obs: Vec<Observation> = facts
        .into_iter()
        .map(|(fact, value)| Observation {
            fact,
            source: ev.source_name().to_owned(),
            value,
            at: ev.time,
            event_id: ev.id.0.clone(),
        })
        .collect();
    let changed = tx.observe_all(ev.subject.as_str(), &obs)?;
    let owners = &tx.rules().1.owners;
    let dirty: Vec<Fact> = obs
        .iter()
        .zip(changed)
        .filter(|(o, changed)| *changed && owners.get(&o.fact).is_some_and(|w| !w.is_empty()))
        .map(|(o, _)| o.fact)
        .collect();
    if dirty.is_empty() {
        return Ok(());
    }
    let lanes = members(tx, shipment)?;
    settle(tx, shipment, &lanes, &dirty, ev.recordedtime)
}

/// Recomputes the ownership conflicts of `facts` for one shipment.
fn settle(
    tx: &mut dyn Tx,
    shipment: &str,
    lanes: &[String],
    facts: &[Fact],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut obs = Vec::new();
    for l in lanes {
        obs.extend(tx.observations(l, facts)?);
    }
    let sources: BTreeSet<(Fact, &str)> = obs.iter().map(|o| (o.fact, o.source.as_str())).collect();
    // With one source per fact there can be no conflict (and none was recorded before:
    // observations only grow), so nothing is rewritten.
    let several: Vec<Fact> = facts
        .iter()
        .copied()
        .filter(|f| sources.iter().filter(|(g, _)| g == f).count() > 1)
        .collect();
    if several.is_empty() && facts.len() < Fact::ALL.len() {
        return Ok(());
    }
    let (_, conflicts) = ownership::settle(&obs, tx.rules().1);
    let rewrite: &[Fact] = if facts.len() == Fact::ALL.len() {
        facts
    } else {
        &several
    };
    let mine: Vec<FactConflict> = conflicts
        .into_iter()
        .filter(|c| rewrite.contains(&c.fact))
        .collect();
    tx.set_ownership_conflicts(shipment, Some(rewrite), &mine, now)
}
