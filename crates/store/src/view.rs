//! The read side over any backend: shipments with their timelines, orders, what a key or
//! an alias names. It decides what to read and how to assemble it; a backend only
//! implements the primitive reads of [`Reader`].

use crate::sequence::Lane;
use crate::{
    ConflictRecord, OrderShipment, OrderView, Resolved, ShipmentQuery, ShipmentSummary,
    ShipmentView, StoreError, TimelineEntry, XRef,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use waybill_model::identity::{self, Alias};
use waybill_model::ownership::{self, Fact, Observation, Ownership};
use waybill_model::{CloudEvent, ShipmentState};

/// The primitive reads the read side is built from; each backend implements it over one of its connections.
pub(crate) trait Reader {
    /// A lane's row (the same as `sequence::Lane` used by the writer).
    fn lane(&mut self, key: &str) -> Result<Option<Lane>, StoreError>;
    /// `coalesce(entity, key)` of the lane's row; None when no such lane.
    fn canonical_of(&mut self, lane: &str) -> Result<Option<String>, StoreError>;
    /// Keys of lanes whose entity is `canonical`, ordered by key.
    fn lanes_of(&mut self, canonical: &str) -> Result<Vec<String>, StoreError>;
    /// Lanes (xrefs.shipment) having alias (kind, value).
    fn lanes_naming(&mut self, kind: &str, value: &str) -> Result<Vec<String>, StoreError>;
    /// A lane's xrefs ordered by kind, value.
    fn xrefs_of(&mut self, lane: &str) -> Result<Vec<XRef>, StoreError>;
    /// Observations of these facts in a lane, ordered by fact.
    fn observations(&mut self, lane: &str, facts: &[Fact]) -> Result<Vec<Observation>, StoreError>;
    /// Conflicts recorded for this lane (conflicts.shipment = lane), in id order.
    fn conflicts_of(&mut self, lane: &str) -> Result<Vec<ConflictRecord>, StoreError>;
    /// coalesce(sum(last_seq), 0) of the lanes with key = canonical or entity = canonical.
    fn events_count(&mut self, canonical: &str) -> Result<i64, StoreError>;
    /// One lane's events for the timeline, ordered by occurred_at, shipment_seq.
    fn timeline_rows(&mut self, lane: &str) -> Result<Vec<TimelineRow>, StoreError>;
    /// An inbox row's stored body and encoding (what `Payloads` reads); None when gone.
    #[allow(clippy::type_complexity)]
    fn payload(&mut self, inbox_id: i64) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError>;
}

/// One event row as the timeline reads it.
pub(crate) struct TimelineRow {
    /// The event's sequence number in its lane.
    pub sequence: i64,
    /// What the event did to its shipment (`advanced`, `flagged`, `recorded`).
    pub effect: String,
    /// When it was recorded, unix microseconds.
    pub recorded_us: i64,
    /// When it occurred, unix microseconds.
    pub occurred_us: i64,
    /// Its stored body.
    pub stored: StoredEvent,
}

/// An event body as stored: the columns `body, encoding, shipment_seq, inbox_id` of
/// `events`.
pub(crate) struct StoredEvent {
    /// The body as stored (see [`crate::body`]).
    pub(crate) body: Vec<u8>,
    /// Its encoding; None for plain JSON.
    pub(crate) encoding: Option<String>,
    /// The event's sequence number in its lane.
    pub(crate) seq: i64,
    /// The inbox row of the payload it came with.
    pub(crate) inbox_id: Option<i64>,
}

/// An inbox row's payload as stored: its body and encoding.
pub(crate) type StoredPayload = (Vec<u8>, Option<String>);

/// Reads an inbox row's stored body and encoding; None when the row is gone.
pub(crate) type FetchPayload<'a> = dyn FnMut(i64) -> Result<Option<StoredPayload>, StoreError> + 'a;

impl StoredEvent {
    /// The event's JSON, with `sequence`; a payload it was packed against is read through
    /// `payloads`, which calls `fetch` when it does not have it.
    pub(crate) fn json(
        self,
        payloads: &mut Payloads,
        fetch: &mut FetchPayload<'_>,
    ) -> Result<String, StoreError> {
        let StoredEvent {
            body,
            encoding,
            seq,
            inbox_id,
        } = self;
        crate::body::unpack_event(body, encoding.as_deref(), seq, || match inbox_id {
            Some(id) => payloads.get(id, fetch),
            None => Err(StoreError::Corrupt(
                "event body packed against a payload, without an inbox row".into(),
            )),
        })
    }
}

/// The raw payload last read for an event packed against it: the events of one payload
/// are read one after the other (one outbox page, one timeline), so one entry saves
/// reading and unpacking the payload again for each.
#[derive(Default)]
pub(crate) struct Payloads {
    last: Option<(i64, Rc<[u8]>)>,
}

impl Payloads {
    /// The raw payload of inbox row `id`, read through `fetch` unless it is the last one.
    fn get(&mut self, id: i64, fetch: &mut FetchPayload<'_>) -> Result<Rc<[u8]>, StoreError> {
        if let Some((have, raw)) = &self.last {
            if *have == id {
                return Ok(raw.clone());
            }
        }
        let Some((stored, encoding)) = fetch(id)? else {
            return Err(StoreError::Corrupt(format!(
                "event body packed against inbox row {id}, which is gone"
            )));
        };
        let raw: Rc<[u8]> = crate::body::unpack_payload(stored, encoding.as_deref())?.into();
        self.last = Some((id, raw.clone()));
        Ok(raw)
    }
}

/// The shipment a key (any of its lanes) names, with its timeline; None when no such lane.
pub(crate) fn shipment(
    r: &mut dyn Reader,
    key: &str,
    rules: &Ownership,
) -> Result<Option<ShipmentView>, StoreError> {
    let Some(canonical) = r.canonical_of(key)? else {
        return Ok(None);
    };
    shipment_view(r, &canonical, rules)
}

/// What a shipment key or an alias (`kind:value`, or a bare identifier) names.
pub(crate) fn resolve_key(r: &mut dyn Reader, text: &str) -> Result<Resolved, StoreError> {
    if let Some(k) = r.canonical_of(text)? {
        return Ok(Resolved::One(k));
    }
    let mut found = BTreeSet::new();
    for (kind, value) in candidates(text) {
        for lane in r.lanes_naming(&kind, &value)? {
            if let Some(k) = r.canonical_of(&lane)? {
                found.insert(k);
            }
        }
    }
    Ok(match found.len() {
        0 => Resolved::NotFound,
        1 => Resolved::One(found.into_iter().next().unwrap_or_default()),
        _ => Resolved::Several(found.into_iter().collect()),
    })
}

/// The shipments named by the reference (`kind`, `value`), filtered and paged by `q`
/// (its `reference` is not read).
pub(crate) fn shipments_by_reference(
    r: &mut dyn Reader,
    kind: &str,
    value: &str,
    q: &ShipmentQuery,
) -> Result<Vec<ShipmentSummary>, StoreError> {
    let mut keys = BTreeSet::new();
    for lane in r.lanes_naming(kind, &identity::lookup_value(kind, value))? {
        if let Some(k) = r.canonical_of(&lane)? {
            keys.insert(k);
        }
    }
    let mut out = Vec::new();
    for k in keys
        .into_iter()
        .filter(|k| q.after.as_ref().is_none_or(|a| k > a))
        .take(q.limit)
    {
        if let Some(state) = state_of(r, &k)? {
            if q.state.is_none_or(|m| m == state.milestone) {
                let events = r.events_count(&k)?;
                out.push(ShipmentSummary { state, events });
            }
        }
    }
    Ok(out)
}

/// The references of every lane of the shipment `lane` belongs to (`kind`, `value`),
/// as they are matched.
pub(crate) fn resolved_refs(
    r: &mut dyn Reader,
    lane: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = BTreeSet::new();
    for l in members(r, lane)? {
        for x in r.xrefs_of(&l)? {
            out.insert((x.kind, x.value));
        }
    }
    Ok(out.into_iter().collect())
}

/// The events of these lanes by occurrence time (ties by lane and sequence).
pub(crate) fn timeline(
    r: &mut dyn Reader,
    lanes: &[String],
) -> Result<Vec<TimelineEntry>, StoreError> {
    let mut out = Vec::new();
    let mut payloads = Payloads::default();
    for key in lanes {
        for row in r.timeline_rows(key)? {
            let TimelineRow {
                sequence,
                effect,
                recorded_us,
                occurred_us,
                stored,
            } = row;
            let body = stored.json(&mut payloads, &mut |id| r.payload(id))?;
            let event: CloudEvent = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("event body of {key}#{sequence}: {e}")))?;
            out.push((
                occurred_us,
                key.clone(),
                TimelineEntry {
                    sequence,
                    effect,
                    received_at: crate::codec::from_us(recorded_us),
                    event,
                },
            ));
        }
    }
    out.sort_by(|a, b| (a.0, &a.1, a.2.sequence).cmp(&(b.0, &b.1, b.2.sequence)));
    Ok(out.into_iter().map(|(_, _, e)| e).collect())
}

/// The (kind, value) pairs a caller's text may mean: `kind:value` with a known kind, or
/// the bare text as every identifying kind.
pub(crate) fn candidates(text: &str) -> Vec<(String, String)> {
    if let Some((kind, value)) = text.split_once(':') {
        if identity::ref_kind(kind).is_some() {
            return vec![(kind.to_owned(), identity::lookup_value(kind, value))];
        }
    }
    identity::REF_KINDS
        .iter()
        .filter(|k| k.identifying)
        .map(|k| (k.name.to_owned(), identity::lookup_value(k.name, text)))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// The shipment whose canonical lane is `canonical`; None when there is no such lane.
pub(crate) fn shipment_view(
    r: &mut dyn Reader,
    canonical: &str,
    rules: &Ownership,
) -> Result<Option<ShipmentView>, StoreError> {
    let Some(state) = state_of(r, canonical)? else {
        return Ok(None);
    };
    let mut lanes = members(r, canonical)?;
    lanes.sort();
    let mut xrefs = BTreeSet::new();
    for l in &lanes {
        for x in r.xrefs_of(l)? {
            xrefs.insert((x.kind, x.value));
        }
    }
    let aliases: Vec<Alias> = xrefs
        .iter()
        .map(|(kind, value)| Alias {
            kind: kind.clone(),
            value: value.clone(),
        })
        .collect();
    let packages: Vec<String> = aliases
        .iter()
        .filter(|a| a.kind == "sscc")
        .map(|a| a.value.clone())
        .collect();
    let mut obs = Vec::new();
    for l in &lanes {
        obs.extend(r.observations(l, Fact::ALL)?);
    }
    let (facts, _) = ownership::settle(&obs, rules);
    let mut conflicts = Vec::new();
    for l in &lanes {
        conflicts.extend(r.conflicts_of(l)?);
    }
    Ok(Some(ShipmentView {
        state,
        order: identity::order_key(aliases.iter()),
        identity_conflict: conflicts.iter().any(|c| c.kind == "identity"),
        xrefs: xrefs
            .into_iter()
            .map(|(kind, value)| XRef { kind, value })
            .collect(),
        packages,
        facts,
        conflicts,
        timeline: timeline(r, &lanes)?,
        lanes,
    }))
}

/// Most lanes an order view gathers.
pub(crate) const MAX_ORDER_LANES: usize = 2_000;

/// The order named by `text` (an order alias, or any key or alias of one of its
/// shipments), with its shipments.
pub(crate) fn order_view(r: &mut dyn Reader, text: &str) -> Result<Option<OrderView>, StoreError> {
    // Seed: the order aliases the text names, or those of the shipment it names.
    let mut seeds: BTreeSet<Alias> = BTreeSet::new();
    for (kind, value) in candidates(text) {
        let a = Alias { kind, value };
        if a.names_order() && !r.lanes_naming(&a.kind, &a.value)?.is_empty() {
            seeds.insert(a);
        }
    }
    if seeds.is_empty() {
        let lane = match r.canonical_of(text)? {
            Some(k) => Some(k),
            None => candidates(text).into_iter().find_map(|(k, v)| {
                r.lanes_naming(&k, &v)
                    .ok()
                    .and_then(|l| l.into_iter().next())
            }),
        };
        if let Some(lane) = lane {
            for l in members(r, &lane)? {
                for x in r.xrefs_of(&l)? {
                    let a = Alias {
                        kind: x.kind,
                        value: x.value,
                    };
                    if a.names_order() {
                        seeds.insert(a);
                    }
                }
            }
        }
    }
    if seeds.is_empty() {
        return Ok(None);
    }
    // The order entity: its aliases joined through lanes that name several.
    let mut aliases: BTreeSet<Alias> = BTreeSet::new();
    let mut lanes: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<Alias> = seeds.into_iter().collect();
    while let Some(a) = queue.pop_front() {
        if !aliases.insert(a.clone()) {
            continue;
        }
        let mut naming = Vec::new();
        for kind in identity::order_kinds(&a.kind) {
            naming.extend(r.lanes_naming(kind, &a.value)?);
        }
        for l in naming {
            if lanes.len() >= MAX_ORDER_LANES || !lanes.insert(l.clone()) {
                continue;
            }
            for x in r.xrefs_of(&l)? {
                let b = Alias {
                    kind: x.kind,
                    value: x.value,
                };
                if b.names_order() && !aliases.contains(&b) {
                    queue.push_back(b);
                }
            }
        }
    }
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &lanes {
        if let Some(k) = r.canonical_of(l)? {
            if let std::collections::btree_map::Entry::Vacant(e) = groups.entry(k) {
                let members = members(r, e.key())?;
                e.insert(members);
            }
        }
    }
    let mut shipments = Vec::new();
    let mut all_lanes = Vec::new();
    for (k, members) in groups {
        if let Some(state) = state_of(r, &k)? {
            all_lanes.extend(members.iter().cloned());
            shipments.push(OrderShipment {
                state,
                lanes: members,
            });
        }
    }
    let milestones: Vec<_> = shipments.iter().map(|s| s.state.milestone).collect();
    Ok(Some(OrderView {
        key: identity::order_key(aliases.iter()).unwrap_or_default(),
        aliases: aliases.iter().map(Alias::text).collect(),
        status: identity::order_status(&milestones).to_owned(),
        timeline: timeline(r, &all_lanes)?,
        shipments,
    }))
}

/// The lanes of the shipment `lane` belongs to (the canonical one first).
pub(crate) fn members(r: &mut dyn Reader, lane: &str) -> Result<Vec<String>, StoreError> {
    let canonical = r.canonical_of(lane)?.unwrap_or_else(|| lane.to_owned());
    let mut out = vec![canonical.clone()];
    out.extend(r.lanes_of(&canonical)?);
    Ok(out)
}

/// A canonical lane's state; None when there is no such lane.
pub(crate) fn state_of(r: &mut dyn Reader, key: &str) -> Result<Option<ShipmentState>, StoreError> {
    Ok(r.lane(key)?.map(|l| l.state))
}
