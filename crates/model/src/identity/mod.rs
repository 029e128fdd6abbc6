//! Identity resolution: which partner identifiers name the same order, shipment or
//! package, and how the *lanes* (the subjects mappings emit: `odoo:<db>:picking:<id>`,
//! `trk:<carrier>:<number>`, `x12:<scac>:<id>` …) group into shipments.
//!
//! Every event asserts aliases for its lane (its `refs`, and the SSCC and tracking
//! numbers of the packages it lists). A lane's aliases are the union of what its events
//! asserted, so they never depend on arrival order. [`group`] is a pure function of those
//! sets: the same lanes with the same aliases always give the same shipments, the same
//! canonical keys and the same conflicts, whatever order the events came in.
//!
//! The rules, in order:
//! 1. An alias of an *identifying* kind (tracking number, Odoo picking, PRO, BOL, SSCC,
//!    aggregator shipment and tracker ids, a 3PL shipment id) links the lanes that name it.
//! 2. Unless it is *contested*: the lanes naming it disagree on a singular fact (two Odoo
//!    pickings, two Odoo sale orders). A contested alias links nothing and is reported as
//!    an identity conflict with every claim.
//! 3. Lanes linked through uncontested aliases form one shipment — unless the group would
//!    still hold two pickings or two orders through a chain of links: then nothing in it
//!    is merged (each lane stays its own shipment) and the conflict is reported.
//! 4. A shipment with no Odoo picking that names exactly one order (a sale order name, a
//!    PO, an order number — all aliases of one order entity; a PO equal to a sale order's
//!    name is that order) joins that order's picking when the order has exactly one: an
//!    ASN naming the PO is about the order's only delivery. With two pickings (a
//!    backorder) it stays apart, attached to the order.
//! 5. The canonical key of a shipment is the key of its Odoo lane when it has one, else
//!    the smallest lane key.

use std::collections::{BTreeMap, BTreeSet};

use crate::CloudEvent;

/// What an identifier names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityKind {
    /// A sale order or an external order (PO, shop order).
    Order,
    /// One consignment: an Odoo picking = a carrier shipment = a 3PL/EDI shipment.
    Shipment,
    /// One package of a shipment (SSCC, per-package tracking number).
    Package,
}

/// One kind of reference and what it means for identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefKind {
    /// The `refs` key (`tracking`, `odoo.picking_id`, …).
    pub name: &'static str,
    /// What it names.
    pub entity: EntityKind,
    /// Identifying: two lanes naming the same value are the same entity. Descriptive
    /// references (a carrier name, a customer's PO for a shipment) are kept and shown but
    /// link nothing by themselves.
    pub identifying: bool,
    /// A shipment has at most one value of it (an Odoo picking, its sale order): two
    /// different values in one group are a contradiction.
    pub singular: bool,
}

const fn kind(name: &'static str, entity: EntityKind, identifying: bool) -> RefKind {
    RefKind {
        name,
        entity,
        identifying,
        singular: false,
    }
}

/// Every reference kind Waybill knows. Any other `refs` key is descriptive.
pub const REF_KINDS: &[RefKind] = &[
    kind("tracking", EntityKind::Shipment, true),
    RefKind {
        singular: true,
        ..kind("odoo.picking_id", EntityKind::Shipment, true)
    },
    kind("odoo.picking", EntityKind::Shipment, true),
    kind("pro", EntityKind::Shipment, true),
    kind("bol", EntityKind::Shipment, true),
    kind("shipment_id", EntityKind::Shipment, true),
    kind("booking", EntityKind::Shipment, true),
    kind("easypost_shipment", EntityKind::Shipment, true),
    kind("karrio_shipment", EntityKind::Shipment, true),
    kind("tracker", EntityKind::Shipment, true),
    kind("sscc", EntityKind::Package, true),
    RefKind {
        singular: true,
        ..kind("odoo.order", EntityKind::Order, true)
    },
    kind("po", EntityKind::Order, true),
    kind("order", EntityKind::Order, true),
    kind("order_id", EntityKind::Order, true),
];

/// The kind named `name`, if Waybill knows it.
pub fn ref_kind(name: &str) -> Option<&'static RefKind> {
    REF_KINDS.iter().find(|k| k.name == name)
}

/// One asserted identifier, normalised: `kind` is a [`REF_KINDS`] name (or any other
/// `refs` key, descriptive), `value` the identifier as it is matched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Alias {
    /// Reference kind.
    pub kind: String,
    /// Normalised value.
    pub value: String,
}

impl Alias {
    /// `kind:value`, the form the API accepts.
    pub fn text(&self) -> String {
        format!("{}:{}", self.kind, self.value)
    }

    /// Its kind's definition, when it is a known kind.
    pub fn ref_kind(&self) -> Option<&'static RefKind> {
        ref_kind(&self.kind)
    }

    /// Whether it links lanes into one shipment (an identifying shipment or package
    /// identifier).
    pub fn links_shipments(&self) -> bool {
        self.ref_kind()
            .is_some_and(|k| k.identifying && k.entity != EntityKind::Order)
    }

    /// Whether it names an order.
    pub fn names_order(&self) -> bool {
        self.ref_kind()
            .is_some_and(|k| k.identifying && k.entity == EntityKind::Order)
    }

    /// Whether a shipment holds at most one value of this kind.
    pub fn singular(&self) -> bool {
        self.ref_kind().is_some_and(|k| k.singular)
    }
}

/// The normalised value of an identifier of `kind`: tracking numbers, PROs, BOLs, SSCCs
/// are compared without spaces or dashes and in upper case (carriers print them grouped);
/// the others trimmed. `scac` qualifies a PRO (PRO numbers are per carrier) and `source`
/// an aggregator's tracker id.
pub fn normalise(kind: &str, value: &str, scac: Option<&str>, source: &str) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    let compact = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .flat_map(char::to_uppercase)
            .collect()
    };
    Some(match kind {
        "tracking" | "bol" | "sscc" => {
            let c = compact(v);
            // An SSCC may come with its application identifier `(00)` or `00` prefix.
            if kind == "sscc" {
                let c = c.trim_start_matches("(00)").to_owned();
                if c.len() == 20 && c.starts_with("00") {
                    c[2..].to_owned()
                } else {
                    c
                }
            } else {
                c
            }
        }
        "pro" => match scac.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => format!("{}:{}", s.to_uppercase(), compact(v)),
            None => compact(v),
        },
        "tracker" => format!("{source}:{v}"),
        _ => v.to_owned(),
    })
}

/// The aliases one event asserts for its lane: its `refs` (normalised) and the `sscc` and
/// `tracking` (a string or a list of strings) of each entry of `data.packages`.
pub fn aliases_of(ev: &CloudEvent) -> BTreeSet<Alias> {
    let mut out = BTreeSet::new();
    let refs: BTreeMap<&str, &str> = ev.refs().collect();
    let scac = refs.get("scac").copied();
    let source = ev.source_name();
    for (k, v) in &refs {
        if let Some(value) = normalise(k, v, scac, source) {
            out.insert(Alias {
                kind: (*k).to_owned(),
                value,
            });
        }
    }
    if let Some(packages) = ev.data.get("packages").and_then(|p| p.as_array()) {
        for p in packages {
            for k in ["sscc", "tracking"] {
                // One identifier, or a list of them (an 856 package's REF*2I).
                let values: Vec<&str> = match p.get(k) {
                    Some(serde_json::Value::String(v)) => vec![v.as_str()],
                    Some(serde_json::Value::Array(vs)) => {
                        vs.iter().filter_map(|v| v.as_str()).collect()
                    }
                    _ => Vec::new(),
                };
                for v in values {
                    if let Some(value) = normalise(k, v, scac, source) {
                        out.insert(Alias {
                            kind: k.to_owned(),
                            value,
                        });
                    }
                }
            }
        }
    }
    out
}

/// A lane and every alias its events asserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneAliases {
    /// The lane's key (an event subject).
    pub lane: String,
    /// Its aliases.
    pub aliases: BTreeSet<Alias>,
}

/// One shipment: its canonical key and its lanes (sorted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    /// The canonical key.
    pub key: String,
    /// Every lane in it, the canonical one included, sorted.
    pub lanes: Vec<String>,
}

/// One lane's claim in an identity conflict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Claim {
    /// The lane that claims it.
    pub lane: String,
    /// `kind:value` of the singular fact it holds (`odoo.picking_id:7`).
    pub holds: String,
}

/// Aliases that would join lanes holding different singular facts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct IdentityConflict {
    /// `kind:value` of the alias that would have joined them (for a chain, the aliases
    /// of the chain, comma-separated).
    pub via: String,
    /// Each lane's singular facts, the contradicting ones.
    pub claims: Vec<Claim>,
}

impl IdentityConflict {
    /// The lanes involved.
    pub fn lanes(&self) -> BTreeSet<&str> {
        self.claims.iter().map(|c| c.lane.as_str()).collect()
    }
}

/// How a set of lanes resolves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grouping {
    /// The shipments, sorted by key; every lane is in exactly one.
    pub groups: Vec<Group>,
    /// Identity conflicts, sorted.
    pub conflicts: Vec<IdentityConflict>,
}

struct Dsu(Vec<usize>);

impl Dsu {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            // The smaller index is the root: deterministic.
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            self.0[hi] = lo;
        }
    }
}

/// Singular facts (kind:value) of a set of lanes.
fn singulars<'a>(
    lanes: impl Iterator<Item = &'a LaneAliases>,
) -> BTreeMap<&'a str, BTreeSet<&'a str>> {
    let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for l in lanes {
        for a in l.aliases.iter().filter(|a| a.singular()) {
            out.entry(a.kind.as_str())
                .or_default()
                .insert(a.value.as_str());
        }
    }
    out
}

fn contradicts(s: &BTreeMap<&str, BTreeSet<&str>>) -> bool {
    s.values().any(|v| v.len() > 1)
}

fn claims<'a>(lanes: impl Iterator<Item = &'a LaneAliases>) -> Vec<Claim> {
    let mut out: Vec<Claim> = lanes
        .flat_map(|l| {
            l.aliases.iter().filter(|a| a.singular()).map(|a| Claim {
                lane: l.lane.clone(),
                holds: a.text(),
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether lane `l` is an Odoo lane (preferred as the canonical key).
fn canonical_rank(l: &str) -> (u8, &str) {
    (u8::from(!l.starts_with("odoo:")), l)
}

/// Resolves lanes into shipments (see the module documentation for the rules). A pure
/// function: the input's order does not matter.
pub fn group(input: &[LaneAliases]) -> Grouping {
    // Sorted, one entry per lane (aliases of repeated entries united).
    let mut by_lane: BTreeMap<&str, BTreeSet<&Alias>> = BTreeMap::new();
    for l in input {
        by_lane
            .entry(l.lane.as_str())
            .or_default()
            .extend(l.aliases.iter());
    }
    let lanes: Vec<LaneAliases> = by_lane
        .into_iter()
        .map(|(lane, aliases)| LaneAliases {
            lane: lane.to_owned(),
            aliases: aliases.into_iter().cloned().collect(),
        })
        .collect();
    let mut conflicts = BTreeSet::new();
    // Rule 1 and 2: linking aliases and their namers; contested ones link nothing.
    let mut namers: BTreeMap<&Alias, Vec<usize>> = BTreeMap::new();
    for (i, l) in lanes.iter().enumerate() {
        for a in l.aliases.iter().filter(|a| a.links_shipments()) {
            namers.entry(a).or_default().push(i);
        }
    }
    let mut dsu = Dsu((0..lanes.len()).collect());
    for (alias, ls) in &namers {
        if ls.len() < 2 {
            continue;
        }
        let s = singulars(ls.iter().map(|i| &lanes[*i]));
        if contradicts(&s) {
            conflicts.insert(IdentityConflict {
                via: alias.text(),
                claims: claims(ls.iter().map(|i| &lanes[*i])),
            });
            continue;
        }
        for w in ls.windows(2) {
            dsu.union(w[0], w[1]);
        }
    }
    // Rule 3: a chain of links that still joins two pickings or orders merges nothing.
    let mut comps: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..lanes.len() {
        let r = dsu.find(i);
        comps.entry(r).or_default().push(i);
    }
    let mut parts: Vec<Vec<usize>> = Vec::new();
    for members in comps.into_values() {
        let s = singulars(members.iter().map(|i| &lanes[*i]));
        if members.len() > 1 && contradicts(&s) {
            let via: BTreeSet<String> = namers
                .iter()
                .filter(|(_, ls)| ls.len() > 1 && ls.iter().all(|i| members.contains(i)))
                .map(|(a, _)| a.text())
                .collect();
            conflicts.insert(IdentityConflict {
                via: via.into_iter().collect::<Vec<_>>().join(","),
                claims: claims(members.iter().map(|i| &lanes[*i])),
            });
            parts.extend(members.into_iter().map(|i| vec![i]));
        } else {
            parts.push(members);
        }
    }
    // Rule 4: a part without a picking joins its order's only picking.
    let parts = attach_to_order(&lanes, parts);
    // Rule 5: canonical keys.
    let mut groups: Vec<Group> = parts
        .into_iter()
        .map(|members| {
            let mut ls: Vec<String> = members.iter().map(|i| lanes[*i].lane.clone()).collect();
            ls.sort();
            let key = ls
                .iter()
                .min_by(|a, b| canonical_rank(a).cmp(&canonical_rank(b)))
                .cloned()
                .unwrap_or_default();
            Group { key, lanes: ls }
        })
        .collect();
    groups.sort();
    Grouping {
        groups,
        conflicts: conflicts.into_iter().collect(),
    }
}

/// What identifies an order alias: a PO and a sale order name with the same value are
/// the same order (a partner echoes the Odoo order name as its PO, as the Odoo sink's
/// `po` lookup assumes); other kinds only match their own kind.
pub fn order_identity(a: &Alias) -> (&str, &str) {
    match a.kind.as_str() {
        "po" | "odoo.order" => ("order", a.value.as_str()),
        k => (k, a.value.as_str()),
    }
}

/// The kinds an order alias of `kind` is looked up under.
pub fn order_kinds(kind: &str) -> &'static [&'static str] {
    match kind {
        "po" | "odoo.order" => &["po", "odoo.order"],
        "order" => &["order"],
        "order_id" => &["order_id"],
        _ => &[],
    }
}

/// Rule 4 of [`group`].
fn attach_to_order(lanes: &[LaneAliases], parts: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
    // Order entities: order aliases joined by lanes that name several.
    let mut order_ix: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for l in lanes {
        for a in l.aliases.iter().filter(|a| a.names_order()) {
            let n = order_ix.len();
            order_ix.entry(order_identity(a)).or_insert(n);
        }
    }
    let mut orders = Dsu((0..order_ix.len()).collect());
    for l in lanes {
        let ids: Vec<usize> = l
            .aliases
            .iter()
            .filter(|a| a.names_order())
            .filter_map(|a| order_ix.get(&order_identity(a)).copied())
            .collect();
        for w in ids.windows(2) {
            orders.union(w[0], w[1]);
        }
    }
    let order_of_part = |part: &[usize], orders: &mut Dsu| -> BTreeSet<usize> {
        part.iter()
            .flat_map(|i| lanes[*i].aliases.iter())
            .filter(|a| a.names_order())
            .filter_map(|a| order_ix.get(&order_identity(a)).copied())
            .map(|o| orders.find(o))
            .collect()
    };
    let picking_of = |part: &[usize]| -> BTreeSet<&str> {
        part.iter()
            .flat_map(|i| lanes[*i].aliases.iter())
            .filter(|a| a.kind == "odoo.picking_id")
            .map(|a| a.value.as_str())
            .collect()
    };
    // The parts holding a picking, by order entity.
    let mut picked: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (p, part) in parts.iter().enumerate() {
        if picking_of(part).len() == 1 {
            for o in order_of_part(part, &mut orders) {
                picked.entry(o).or_default().push(p);
            }
        }
    }
    let mut target: Vec<Option<usize>> = vec![None; parts.len()];
    for (p, part) in parts.iter().enumerate() {
        if !picking_of(part).is_empty() {
            continue;
        }
        let os = order_of_part(part, &mut orders);
        let [o] = os.into_iter().collect::<Vec<_>>()[..] else {
            continue;
        };
        if let Some([only]) = picked.get(&o).map(Vec::as_slice) {
            // Joining must not bring two sale orders together.
            let s = singulars(part.iter().chain(parts[*only].iter()).map(|i| &lanes[*i]));
            if !contradicts(&s) {
                target[p] = Some(*only);
            }
        }
    }
    // Several parts joining one picking must not bring two orders together either: if
    // they would, none of them joins (which one would be a guess).
    let mut joining: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (p, t) in target.iter().enumerate() {
        if let Some(t) = t {
            joining.entry(*t).or_default().push(p);
        }
    }
    let mut out: Vec<Vec<usize>> = parts.clone();
    for (t, ps) in joining {
        let s = singulars(
            parts[t]
                .iter()
                .chain(ps.iter().flat_map(|p| parts[*p].iter()))
                .map(|i| &lanes[*i]),
        );
        if contradicts(&s) {
            continue;
        }
        for p in ps {
            let moved = std::mem::take(&mut out[p]);
            out[t].extend(moved);
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

#[cfg(test)]
mod tests;

/// An order's status from its shipments' milestones: `unshipped`, `partially_shipped`,
/// `shipped`, `partially_delivered`, `delivered`, `returned`, or `cancelled` when every
/// shipment is. Cancelled shipments are left out of the others; a returned shipment
/// counts as delivered unless every shipment came back.
pub fn order_status(milestones: &[crate::Milestone]) -> &'static str {
    use crate::Milestone as M;
    let live: Vec<M> = milestones
        .iter()
        .copied()
        .filter(|m| *m != M::Cancelled)
        .collect();
    if live.is_empty() {
        return if milestones.is_empty() {
            "unshipped"
        } else {
            "cancelled"
        };
    }
    if live.iter().all(|m| *m == M::Returned) {
        return "returned";
    }
    let delivered = |m: &M| matches!(m, M::Delivered | M::Returned);
    if live.iter().all(delivered) {
        return "delivered";
    }
    if live.iter().any(delivered) {
        return "partially_delivered";
    }
    let shipped = |m: &M| m.rank() >= M::Dispatched.rank();
    if live.iter().all(shipped) {
        "shipped"
    } else if live.iter().any(shipped) {
        "partially_shipped"
    } else {
        "unshipped"
    }
}

/// The order alias chosen as an order's key: a sale order name first, then a PO, then
/// a shop's order number, each the smallest value.
pub fn order_key<'a>(aliases: impl Iterator<Item = &'a Alias>) -> Option<String> {
    let rank = |k: &str| match k {
        "odoo.order" => 0,
        "po" => 1,
        "order" => 2,
        _ => 3,
    };
    aliases
        .filter(|a| a.names_order())
        .min_by(|a, b| (rank(&a.kind), &a.value).cmp(&(rank(&b.kind), &b.value)))
        .map(Alias::text)
}

/// The value an API caller's `kind:value` is looked up by (aggregator tracker ids and
/// PROs are already given in their stored form, `source:id` and `SCAC:PRO`).
pub fn lookup_value(kind: &str, value: &str) -> String {
    match kind {
        "tracking" | "bol" | "sscc" => normalise(kind, value, None, "").unwrap_or_default(),
        "pro" => match value.split_once(':') {
            Some((scac, pro)) => normalise(kind, pro, Some(scac), "").unwrap_or_default(),
            None => normalise(kind, value, None, "").unwrap_or_default(),
        },
        _ => value.trim().to_owned(),
    }
}
