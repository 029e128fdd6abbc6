//! The read side: shipments with their timelines, inbox inspection, queue depths.

use super::sequencer::decode_state;
use super::tx::{lanes_naming, lanes_of};
use super::{from_us, Payloads, SqliteStore, StoredEvent};
use crate::{
    ConflictQuery, ConflictRecord, Depths, InboxQuery, InboxRecord, OrderShipment, OrderView,
    Resolved, ShipmentQuery, ShipmentSummary, ShipmentView, StoreError, TimelineEntry, XRef,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use waybill_model::identity::{self, Alias};
use waybill_model::ownership::{self, Fact, Ownership};
use waybill_model::{CloudEvent, ShipmentKey};

impl SqliteStore {
    pub(crate) async fn shipment(
        &self,
        key: &ShipmentKey,
    ) -> Result<Option<ShipmentView>, StoreError> {
        let key = key.clone();
        let rules = self.ownership();
        self.read(move |c| {
            let Some(canonical) = canonical_of(c, key.as_str())? else {
                return Ok(None);
            };
            shipment_view(c, &canonical, &rules)
        })
        .await
    }

    /// What a shipment key or an alias (`kind:value`, or a bare identifier) names.
    pub(crate) async fn resolve_key(&self, text: &str) -> Result<Resolved, StoreError> {
        let text = text.to_owned();
        self.read(move |c| {
            if let Some(k) = canonical_of(c, &text)? {
                return Ok(Resolved::One(k));
            }
            let mut found = BTreeSet::new();
            for (kind, value) in candidates(&text) {
                for lane in lanes_naming(c, &kind, &value)? {
                    if let Some(k) = canonical_of(c, &lane)? {
                        found.insert(k);
                    }
                }
            }
            Ok(match found.len() {
                0 => Resolved::NotFound,
                1 => Resolved::One(found.into_iter().next().unwrap_or_default()),
                _ => Resolved::Several(found.into_iter().collect()),
            })
        })
        .await
    }

    pub(crate) async fn shipments(
        &self,
        q: ShipmentQuery,
    ) -> Result<Vec<ShipmentSummary>, StoreError> {
        self.read(move |c| {
            if let Some((kind, value)) = &q.reference {
                let mut keys = BTreeSet::new();
                for lane in lanes_naming(c, kind, &identity::lookup_value(kind, value))? {
                    if let Some(k) = canonical_of(c, &lane)? {
                        keys.insert(k);
                    }
                }
                let mut out = Vec::new();
                for k in keys
                    .into_iter()
                    .filter(|k| q.after.as_ref().is_none_or(|a| k > a))
                    .take(q.limit)
                {
                    if let Some(state) = state_of(c, &k)? {
                        if q.state.is_none_or(|m| m == state.milestone) {
                            let events = events_of(c, &k)?;
                            out.push(ShipmentSummary { state, events });
                        }
                    }
                }
                return Ok(out);
            }
            let mut st = c.prepare_cached(
                "SELECT key, state, milestone_at, milestone_event, flags, last_event_at, last_seq FROM shipments
                 WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR key > ?2) AND entity IS NULL ORDER BY key LIMIT ?3",
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

    /// The order named by `text` (an order alias, or any key or alias of one of its
    /// shipments), with its shipments.
    pub(crate) async fn order(&self, text: &str) -> Result<Option<OrderView>, StoreError> {
        let text = text.to_owned();
        self.read(move |c| order_view(c, &text)).await
    }

    pub(crate) async fn conflicts(
        &self,
        q: ConflictQuery,
    ) -> Result<Vec<ConflictRecord>, StoreError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, kind, shipment, fact, detail, recorded_at FROM conflicts
                 WHERE (?1 IS NULL OR kind = ?1) AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let rows = st.query_map(
                params![q.kind, q.after.unwrap_or(0), q.limit as i64],
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
        self.read(move |c| {
            let mut out = BTreeSet::new();
            for l in members(c, &lane)? {
                for x in xrefs_of(c, &l)? {
                    out.insert((x.kind, x.value));
                }
            }
            Ok(out.into_iter().collect())
        })
        .await
    }

    pub(crate) async fn inbox(&self, q: InboxQuery) -> Result<Vec<InboxRecord>, StoreError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, source, idempotency_key, status, reason_code, reason, received_at, event_ids, body, headers, encoding FROM inbox
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR source = ?2) ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = st.query_map(params![q.status, q.source, q.limit as i64], |r| {
                Ok((
                    InboxRecord {
                        id: r.get(0)?,
                        source: r.get(1)?,
                        idempotency_key: r.get(2)?,
                        status: r.get(3)?,
                        reason_code: r.get(4)?,
                        reason: r.get(5)?,
                        received_at: from_us(r.get(6)?),
                        event_ids: serde_json::from_str(&r.get::<_, String>(7)?)
                            .unwrap_or_default(),
                        body: String::new(),
                        headers: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
                    },
                    r.get::<_, Vec<u8>>(8)?,
                    r.get::<_, Option<String>>(10)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (mut rec, stored, encoding) = row?;
                let raw = crate::body::unpack_payload(stored, encoding.as_deref())?;
                rec.body = String::from_utf8_lossy(&raw).into_owned();
                out.push(rec);
            }
            Ok(out)
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
                shipments: grouped(
                    c,
                    "SELECT state, count(*) FROM shipments WHERE entity IS NULL GROUP BY state",
                )?,
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

/// The events of these lanes by occurrence time (ties by lane and sequence).
fn timeline(c: &Connection, lanes: &[String]) -> Result<Vec<TimelineEntry>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT shipment_seq, effect, recorded_at, occurred_at, body, encoding, shipment_seq, inbox_id
         FROM events WHERE shipment = ?1 ORDER BY occurred_at, shipment_seq",
    )?;
    let mut out = Vec::new();
    let mut payloads = Payloads::default();
    for key in lanes {
        let rows = st.query_map([key.as_str()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                StoredEvent::read(r, 4)?,
            ))
        })?;
        for row in rows.collect::<Result<Vec<_>, _>>()? {
            let (sequence, effect, rec, at, stored) = row;
            let body = stored.json(c, &mut payloads)?;
            let event: CloudEvent = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("event body of {key}#{sequence}: {e}")))?;
            out.push((
                at,
                key.clone(),
                TimelineEntry {
                    sequence,
                    effect,
                    received_at: from_us(rec),
                    event,
                },
            ));
        }
    }
    out.sort_by(|a, b| (a.0, &a.1, a.2.sequence).cmp(&(b.0, &b.1, b.2.sequence)));
    Ok(out.into_iter().map(|(_, _, e)| e).collect())
}

fn xrefs_of(c: &Connection, lane: &str) -> Result<Vec<XRef>, StoreError> {
    let mut xs =
        c.prepare_cached("SELECT kind, value FROM xrefs WHERE shipment = ?1 ORDER BY kind, value")?;
    let rows = xs.query_map([lane], |r| {
        Ok(XRef {
            kind: r.get(0)?,
            value: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The (kind, value) pairs a caller's text may mean: `kind:value` with a known kind, or
/// the bare text as every identifying kind.
fn candidates(text: &str) -> Vec<(String, String)> {
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

fn events_of(c: &Connection, canonical: &str) -> Result<i64, StoreError> {
    Ok(c.prepare_cached(
        "SELECT coalesce(sum(last_seq), 0) FROM shipments WHERE key = ?1 OR entity = ?1",
    )?
    .query_row([canonical], |r| r.get(0))?)
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

fn shipment_view(
    c: &Connection,
    canonical: &str,
    rules: &Ownership,
) -> Result<Option<ShipmentView>, StoreError> {
    let Some(state) = state_of(c, canonical)? else {
        return Ok(None);
    };
    let mut lanes = members(c, canonical)?;
    lanes.sort();
    let mut xrefs = BTreeSet::new();
    for l in &lanes {
        for x in xrefs_of(c, l)? {
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
        obs.extend(super::tx::observations(c, l, Fact::ALL)?);
    }
    let (facts, _) = ownership::settle(&obs, rules);
    let mut conflicts = Vec::new();
    let mut st = c.prepare_cached(
        "SELECT id, kind, shipment, fact, detail, recorded_at FROM conflicts WHERE shipment = ?1 ORDER BY id",
    )?;
    for l in &lanes {
        for row in st.query_map([l], conflict_row)? {
            conflicts.push(row?);
        }
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
        timeline: timeline(c, &lanes)?,
        lanes,
    }))
}

/// Most lanes an order view gathers.
const MAX_ORDER_LANES: usize = 2_000;

fn order_view(c: &Connection, text: &str) -> Result<Option<OrderView>, StoreError> {
    // Seed: the order aliases the text names, or those of the shipment it names.
    let mut seeds: BTreeSet<Alias> = BTreeSet::new();
    for (kind, value) in candidates(text) {
        let a = Alias { kind, value };
        if a.names_order() && !lanes_naming(c, &a.kind, &a.value)?.is_empty() {
            seeds.insert(a);
        }
    }
    if seeds.is_empty() {
        let lane = match canonical_of(c, text)? {
            Some(k) => Some(k),
            None => candidates(text).into_iter().find_map(|(k, v)| {
                lanes_naming(c, &k, &v)
                    .ok()
                    .and_then(|l| l.into_iter().next())
            }),
        };
        if let Some(lane) = lane {
            for l in members(c, &lane)? {
                for x in xrefs_of(c, &l)? {
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
            naming.extend(lanes_naming(c, kind, &a.value)?);
        }
        for l in naming {
            if lanes.len() >= MAX_ORDER_LANES || !lanes.insert(l.clone()) {
                continue;
            }
            for x in xrefs_of(c, &l)? {
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
        if let Some(k) = canonical_of(c, l)? {
            if let std::collections::btree_map::Entry::Vacant(e) = groups.entry(k) {
                let members = members(c, e.key())?;
                e.insert(members);
            }
        }
    }
    let mut shipments = Vec::new();
    let mut all_lanes = Vec::new();
    for (k, members) in groups {
        if let Some(state) = state_of(c, &k)? {
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
        timeline: timeline(c, &all_lanes)?,
        shipments,
    }))
}

/// The canonical lane of the shipment `lane` belongs to; None when no such lane exists.
fn canonical_of(c: &Connection, lane: &str) -> Result<Option<String>, StoreError> {
    Ok(
        c.prepare_cached("SELECT coalesce(entity, key) FROM shipments WHERE key = ?1")?
            .query_row([lane], |r| r.get::<_, String>(0))
            .optional()?,
    )
}

/// The lanes of the shipment `lane` belongs to (the canonical one first).
fn members(c: &Connection, lane: &str) -> Result<Vec<String>, StoreError> {
    let canonical = canonical_of(c, lane)?.unwrap_or_else(|| lane.to_owned());
    let mut out = vec![canonical.clone()];
    out.extend(lanes_of(c, &canonical)?);
    Ok(out)
}

/// A canonical lane's state; None when there is no such lane.
fn state_of(c: &Connection, key: &str) -> Result<Option<waybill_model::ShipmentState>, StoreError> {
    Ok(super::tx::lane_row(c, key)?.map(|l| l.state))
}
