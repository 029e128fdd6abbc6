//! RESOLVE and SETTLE inside the write transaction: record an event's aliases, regroup the
//! lanes they connect (the rules are `waybill_model::identity::group`, a pure function),
//! fold each changed shipment again from its lanes' events, append `shipment.linked`
//! where lanes joined, and keep the identity and ownership conflicts current (the
//! ownership rules are `waybill_model::ownership::settle`, also pure).

use super::sequencer::{append, write_state};
use super::{from_us, to_us, JobCtx};
use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use time::OffsetDateTime;
use waybill_model::identity::{self, Alias, Grouping, LaneAliases};
use waybill_model::lifecycle::EventFacts;
use waybill_model::ownership::{self, Fact, Observation, Ownership};
use waybill_model::{CloudEvent, EventId, EventType, ShipmentKey, ShipmentState};

/// Most lanes regrouped at once. A larger connected set (an identifier that thousands of
/// shipments share — usually a mapping that marks a descriptive field identifying) is left
/// as it was, with a warning in the log.
pub const MAX_COMPONENT: usize = 256;

/// Records an event's aliases for its lane; returns whether the lanes must be resolved
/// again: an identifying alias is new for this lane and another lane names it, or the
/// lane already shares a shipment with others (a new picking or order may contradict).
pub(crate) fn record_aliases(conn: &Connection, ev: &CloudEvent) -> Result<bool, StoreError> {
    let lane = ev.subject.as_str();
    let mut again = false;
    let mut new_identity = false;
    for a in identity::aliases_of(ev) {
        let n = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO xrefs (kind, value, shipment) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![a.kind, a.value, lane])?;
        if n == 0 || !(a.links_shipments() || a.names_order()) {
            continue;
        }
        new_identity = true;
        for kind in kinds_of(&a) {
            if again {
                break;
            }
            again = conn
                .prepare_cached(
                    "SELECT 1 FROM xrefs WHERE kind = ?1 AND value = ?2 AND shipment != ?3 LIMIT 1",
                )?
                .query_row(params![kind, a.value, lane], |_| Ok(()))
                .optional()?
                .is_some();
        }
    }
    if new_identity && !again {
        again = members(conn, lane)?.len() > 1;
    }
    Ok(again)
}

/// The lanes of the shipment `lane` belongs to (the canonical one first).
pub(crate) fn members(conn: &Connection, lane: &str) -> Result<Vec<String>, StoreError> {
    let canonical = canonical_of(conn, lane)?.unwrap_or_else(|| lane.to_owned());
    let mut out = vec![canonical.clone()];
    let mut st = conn.prepare_cached("SELECT key FROM shipments WHERE entity = ?1 ORDER BY key")?;
    for k in st.query_map([canonical.as_str()], |r| r.get::<_, String>(0))? {
        out.push(k?);
    }
    Ok(out)
}

/// The canonical lane of the shipment `lane` belongs to; None when no such lane exists.
pub(crate) fn canonical_of(conn: &Connection, lane: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT coalesce(entity, key) FROM shipments WHERE key = ?1")?
        .query_row([lane], |r| r.get::<_, String>(0))
        .optional()?)
}

/// A lane's identity aliases (those that link shipments or name an order).
fn lane_aliases(conn: &Connection, lane: &str) -> Result<BTreeSet<Alias>, StoreError> {
    let mut st = conn.prepare_cached("SELECT kind, value FROM xrefs WHERE shipment = ?1")?;
    let rows = st.query_map([lane], |r| {
        Ok(Alias {
            kind: r.get(0)?,
            value: r.get(1)?,
        })
    })?;
    let mut out = BTreeSet::new();
    for a in rows {
        let a = a?;
        if a.links_shipments() || a.names_order() {
            out.insert(a);
        }
    }
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

fn lanes_naming(conn: &Connection, a: &Alias) -> Result<Vec<String>, StoreError> {
    let mut st =
        conn.prepare_cached("SELECT shipment FROM xrefs WHERE kind = ?1 AND value = ?2")?;
    let mut out = Vec::new();
    for kind in kinds_of(a) {
        let rows = st.query_map(params![kind, a.value], |r| r.get::<_, String>(0))?;
        for r in rows {
            out.push(r?);
        }
    }
    Ok(out)
}

/// The lanes connected to `lane` through identity aliases and current groups, with their
/// aliases; None when there are more than [`MAX_COMPONENT`].
fn component(
    conn: &Connection,
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
        let aliases = lane_aliases(conn, &l)?;
        for a in &aliases {
            queue.extend(
                lanes_naming(conn, a)?
                    .into_iter()
                    .filter(|o| !comp.contains_key(o)),
            );
        }
        queue.extend(
            members(conn, &l)?
                .into_iter()
                .filter(|o| !comp.contains_key(o)),
        );
        comp.insert(l, aliases);
    }
    Ok(Some(comp))
}

/// Resolves the lanes connected to `lane` again and applies what changed.
pub(crate) fn resolve(
    conn: &Connection,
    lane: &ShipmentKey,
    now: OffsetDateTime,
    ctx: &mut JobCtx<'_>,
) -> Result<(), StoreError> {
    let Some(comp) = component(conn, lane.as_str())? else {
        tracing::warn!(
            lane = lane.as_str(),
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
    let mut current: BTreeMap<&str, String> = BTreeMap::new();
    for l in comp.keys() {
        let c = canonical_of(conn, l)?.unwrap_or_else(|| l.clone());
        current.insert(l.as_str(), c);
    }
    let now_us = to_us(now);
    let mut linked = Vec::new();
    let mut changed = Vec::new();
    for g in &grouping.groups {
        fn was_in<'a>(current: &'a BTreeMap<&str, String>, l: &'a str) -> &'a str {
            current.get(l).map(String::as_str).unwrap_or(l)
        }
        let was = |l: &'_ str| -> String { was_in(&current, l).to_owned() };
        let anchor_before = was(&g.key);
        let same = g.lanes.iter().all(|l| was(l) == g.key)
            && current
                .iter()
                .filter(|(_, c)| c.as_str() == g.key)
                .all(|(l, _)| g.lanes.iter().any(|m| m == l));
        if same {
            continue;
        }
        for l in &g.lanes {
            conn.prepare_cached(
                "UPDATE shipments SET entity = CASE WHEN key = ?2 THEN NULL ELSE ?2 END, updated_at = ?3 WHERE key = ?1",
            )?
            .execute(params![l, g.key, now_us])?;
        }
        refold(conn, &g.key, &g.lanes, now_us)?;
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
            let via: BTreeSet<String> = joined
                .iter()
                .flat_map(|l| comp.get(l.as_str()).into_iter().flatten())
                .filter(|a| stay.contains(a))
                .map(Alias::text)
                .collect();
            linked.push(json!({
                "shipment": g.key,
                "lanes": g.lanes,
                "joined": joined,
                "previous": previous,
                "via": via,
            }));
        }
    }
    write_identity_conflicts(conn, comp.keys(), &grouping, now_us)?;
    for g in &changed {
        // Ownership conflicts are kept under the canonical key: recompute them there and
        // drop those of lanes that are no longer canonical.
        for l in g.lanes.iter().filter(|l| **l != g.key) {
            conn.prepare_cached(
                "DELETE FROM conflicts WHERE kind = 'ownership' AND shipment = ?1",
            )?
            .execute([l])?;
        }
        settle_conflicts(conn, &g.key, &g.lanes, Fact::ALL, ctx.ownership, now_us)?;
    }
    for data in linked {
        let key = ShipmentKey(data["shipment"].as_str().unwrap_or_default().to_owned());
        let lanes = data["lanes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
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
        append(conn, None, &ev, &body, ctx)?;
    }
    Ok(())
}

/// Folds a shipment's state again from every event of its lanes.
fn refold(conn: &Connection, key: &str, lanes: &[String], now: i64) -> Result<(), StoreError> {
    let key = ShipmentKey(key.to_owned());
    let mut state = ShipmentState::new(key.clone());
    let mut st =
        conn.prepare_cached("SELECT event_id, type, occurred_at FROM events WHERE shipment = ?1")?;
    for l in lanes {
        let rows = st.query_map([l], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (id, ty, at) = row?;
            let ty = ty
                .parse::<EventType>()
                .map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?;
            state.apply(&EventFacts {
                id: EventId(id),
                ty,
                occurred_at: from_us(at),
            });
        }
    }
    write_state(conn, &key, &state, now)
}

fn write_identity_conflicts<'a>(
    conn: &Connection,
    lanes: impl Iterator<Item = &'a String>,
    grouping: &Grouping,
    now: i64,
) -> Result<(), StoreError> {
    for l in lanes {
        conn.prepare_cached("DELETE FROM conflicts WHERE kind = 'identity' AND shipment = ?1")?
            .execute([l])?;
    }
    for c in &grouping.conflicts {
        let detail = serde_json::to_string(c)
            .map_err(|e| StoreError::Corrupt(format!("identity conflict: {e}")))?;
        for l in c.lanes() {
            conn.prepare_cached(
                "INSERT INTO conflicts (kind, shipment, fact, detail, recorded_at) VALUES ('identity', ?1, ?2, ?3, ?4)",
            )?
            .execute(params![l, c.via, detail, now])?;
        }
    }
    Ok(())
}

/// Records the facts an event states; when one is new or newer and another source stated
/// the same fact for this shipment, its ownership conflicts are computed again.
pub(crate) fn observe(
    conn: &Connection,
    ev: &CloudEvent,
    shipment: &ShipmentKey,
    ctx: &mut JobCtx<'_>,
) -> Result<(), StoreError> {
    let facts = ownership::facts_of(ev);
    if facts.is_empty() {
        return Ok(());
    }
    let source = ev.source_name();
    let at = to_us(ev.time);
    let mut dirty = Vec::new();
    for (fact, value) in facts {
        let n = conn
            .prepare_cached(
                "INSERT INTO observations (lane, fact, source, value, at, event_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (lane, fact, source, value) DO UPDATE SET at = excluded.at, event_id = excluded.event_id
                 WHERE excluded.at > at OR (excluded.at = at AND excluded.event_id > event_id)",
            )?
            .execute(params![
                ev.subject.as_str(),
                fact.as_str(),
                source,
                value.to_string(),
                at,
                ev.id.as_str()
            ])?;
        if n > 0
            && ctx
                .ownership
                .owners
                .get(&fact)
                .is_some_and(|o| !o.is_empty())
        {
            dirty.push(fact);
        }
    }
    if dirty.is_empty() {
        return Ok(());
    }
    let lanes = members(conn, shipment.as_str())?;
    settle_conflicts(
        conn,
        shipment.as_str(),
        &lanes,
        &dirty,
        ctx.ownership,
        to_us(ev.recordedtime),
    )
}

/// Every observation of `facts` in these lanes.
pub(crate) fn observations(
    conn: &Connection,
    lanes: &[String],
    facts: &[Fact],
) -> Result<Vec<Observation>, StoreError> {
    let mut out = Vec::new();
    let mut st = conn.prepare_cached(
        "SELECT fact, source, value, at, event_id FROM observations WHERE lane = ?1 ORDER BY fact",
    )?;
    for l in lanes {
        let rows = st.query_map([l], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
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
                    .map_err(|e| StoreError::Corrupt(format!("observation of {l}: {e}")))?,
                at: from_us(at),
                event_id,
            });
        }
    }
    Ok(out)
}

/// Recomputes the ownership conflicts of `facts` for one shipment.
fn settle_conflicts(
    conn: &Connection,
    shipment: &str,
    lanes: &[String],
    facts: &[Fact],
    rules: &Ownership,
    now: i64,
) -> Result<(), StoreError> {
    let obs = observations(conn, lanes, facts)?;
    let sources: BTreeSet<(&Fact, &str)> =
        obs.iter().map(|o| (&o.fact, o.source.as_str())).collect();
    for f in facts {
        let several = sources.iter().filter(|(g, _)| *g == f).count() > 1;
        if several {
            conn.prepare_cached(
                "DELETE FROM conflicts WHERE kind = 'ownership' AND shipment = ?1 AND fact = ?2",
            )?
            .execute(params![shipment, f.as_str()])?;
        }
    }
    let (_, conflicts) = ownership::settle(&obs, rules);
    for c in conflicts {
        let detail = serde_json::to_string(&c)
            .map_err(|e| StoreError::Corrupt(format!("ownership conflict: {e}")))?;
        conn.prepare_cached(
            "INSERT INTO conflicts (kind, shipment, fact, detail, recorded_at) VALUES ('ownership', ?1, ?2, ?3, ?4)",
        )?
        .execute(params![shipment, c.fact.as_str(), detail, now])?;
    }
    Ok(())
}

/// A canonical lane's state (for the read side); None when there is no such lane.
pub(crate) fn state_of(conn: &Connection, key: &str) -> Result<Option<ShipmentState>, StoreError> {
    let (state, _, created, _) =
        super::sequencer::load_shipment(conn, &ShipmentKey(key.to_owned()))?;
    Ok(created.map(|_| state))
}
