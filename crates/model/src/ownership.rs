//! Field ownership (system of record): which sources own each shipment fact, and the
//! shipment's current facts computed from every observation under those rules.
//!
//! Every event that states a fact ([`facts_of`]) is an *observation* (fact, source,
//! value, time, event id). [`settle`] is a pure function of the set of observations: for
//! each fact, the latest value from an owning source wins (latest by event time, then
//! event id); when no owner has spoken, the latest value from any source stands,
//! provisionally. A non-owner's value that differs from the owner's is never applied: it
//! is a [`FactConflict`] (both values, both sources). Same observations, same result, in
//! any order.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::CloudEvent;

macro_rules! facts {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// A shipment fact with an owner.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Fact { $(#[doc = $name] $variant,)* }

        impl Fact {
            /// Every fact.
            pub const ALL: &'static [Fact] = &[$(Fact::$variant,)*];
            /// Its name in config and the API.
            pub fn as_str(self) -> &'static str {
                match self { $(Fact::$variant => $name,)* }
            }
        }

        impl std::str::FromStr for Fact {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok(Fact::$variant),)*
                    _ => Err(format!(
                        "unknown fact `{s}` (known: {})",
                        [$($name),*].join(", ")
                    )),
                }
            }
        }
    };
}

facts! {
    Tracking => "tracking",
    Carrier => "carrier",
    Service => "service",
    Weight => "weight",
    Dimensions => "dimensions",
    Packages => "packages",
    ShippedQuantity => "shipped_quantity",
    Eta => "eta",
    Pod => "pod",
    FreightCharge => "freight_charge",
}

/// The facts one event states, each as a JSON value (compared as written, keys sorted).
/// Where they are read from:
/// `tracking` ← `refs.tracking` (normalised); `carrier` ← `refs.carrier`, else
/// `data.carrier.scac`, else `refs.scac`; `service` ← `data.service`; `weight` ←
/// `data.weight`; `dimensions` ← `data.dimensions`, else `data.volume`; `packages` ← the
/// sorted SSCCs or tracking numbers of `data.packages`; `shipped_quantity` ←
/// `data.totals.shipped_units`; `eta` ← `data.estimated_delivery`; `pod` ←
/// `data.signed_by` or `data.pod`; `freight_charge` ← `data.total` (an invoice) or
/// `data.rate` (a label's rate).
pub fn facts_of(ev: &CloudEvent) -> Vec<(Fact, Value)> {
    let d = &ev.data;
    let refs: BTreeMap<&str, &str> = ev.refs().collect();
    let present = |v: Option<&Value>| -> Option<Value> {
        v.filter(|v| match v {
            Value::Null => false,
            Value::String(s) => !s.trim().is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        })
        .cloned()
    };
    let mut out = Vec::new();
    let mut put = |f: Fact, v: Option<Value>| {
        if let Some(v) = v {
            out.push((f, v));
        }
    };
    put(
        Fact::Tracking,
        refs.get("tracking")
            .and_then(|t| crate::identity::normalise("tracking", t, None, ""))
            .map(Value::String),
    );
    put(
        Fact::Carrier,
        refs.get("carrier")
            .map(|c| Value::String(c.trim().to_owned()))
            .or_else(|| present(d.pointer("/carrier/scac")))
            .or_else(|| refs.get("scac").map(|c| Value::String(c.trim().to_owned()))),
    );
    put(Fact::Service, present(d.get("service")));
    put(Fact::Weight, present(d.get("weight")));
    put(
        Fact::Dimensions,
        present(d.get("dimensions")).or_else(|| present(d.get("volume"))),
    );
    let packages: BTreeSet<String> = d
        .get("packages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            p.get("sscc")
                .or_else(|| p.get("tracking"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    if !packages.is_empty() {
        put(
            Fact::Packages,
            Some(Value::Array(
                packages.into_iter().map(Value::String).collect(),
            )),
        );
    }
    put(
        Fact::ShippedQuantity,
        present(d.pointer("/totals/shipped_units")),
    );
    put(Fact::Eta, present(d.get("estimated_delivery")));
    put(
        Fact::Pod,
        present(d.get("signed_by")).or_else(|| present(d.get("pod"))),
    );
    put(
        Fact::FreightCharge,
        present(d.get("total")).or_else(|| present(d.get("rate"))),
    );
    out
}

/// Which sources own each fact (by configured source name). A fact with no owner listed
/// has none: its latest value stands and nothing conflicts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ownership {
    /// Owners per fact.
    pub owners: BTreeMap<Fact, BTreeSet<String>>,
}

impl Ownership {
    /// Whether `source` owns `fact`.
    pub fn owns(&self, source: &str, fact: Fact) -> bool {
        self.owners.get(&fact).is_some_and(|s| s.contains(source))
    }

    /// The facts `source` owns.
    pub fn owned_by(&self, source: &str) -> BTreeSet<Fact> {
        self.owners
            .iter()
            .filter(|(_, s)| s.contains(source))
            .map(|(f, _)| *f)
            .collect()
    }
}

/// One observation of a fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The fact.
    pub fact: Fact,
    /// Source name that stated it.
    pub source: String,
    /// The value.
    pub value: Value,
    /// When (the event's time).
    pub at: OffsetDateTime,
    /// The event that stated it (the latest one, for a value stated several times).
    pub event_id: String,
}

/// A fact's current value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settled {
    /// The value.
    pub value: Value,
    /// The source it came from.
    pub source: String,
    /// Whether that source owns the fact (false: no owner has stated it yet).
    pub owner: bool,
    /// The event that stated it.
    pub event_id: String,
}

/// A non-owner's value that differs from the owner's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactConflict {
    /// The fact.
    pub fact: Fact,
    /// The applied value, from an owner.
    pub owner_value: Value,
    /// Its source.
    pub owner_source: String,
    /// The value not applied.
    pub other_value: Value,
    /// Its source.
    pub other_source: String,
    /// The event that stated the value not applied.
    pub other_event_id: String,
}

/// The current facts and the ownership conflicts of a set of observations.
pub fn settle(
    obs: &[Observation],
    rules: &Ownership,
) -> (BTreeMap<Fact, Settled>, Vec<FactConflict>) {
    let mut facts = BTreeMap::new();
    let mut conflicts = Vec::new();
    let latest = |it: &mut dyn Iterator<Item = &Observation>| -> Option<Observation> {
        it.max_by(|a, b| {
            (a.at, &a.event_id, a.value.to_string(), &a.source).cmp(&(
                b.at,
                &b.event_id,
                b.value.to_string(),
                &b.source,
            ))
        })
        .cloned()
    };
    for fact in Fact::ALL {
        let of_fact: Vec<&Observation> = obs.iter().filter(|o| o.fact == *fact).collect();
        if of_fact.is_empty() {
            continue;
        }
        let owned = latest(
            &mut of_fact
                .iter()
                .copied()
                .filter(|o| rules.owns(&o.source, *fact)),
        );
        let (win, owner) = match owned {
            Some(o) => (o, true),
            None => match latest(&mut of_fact.iter().copied()) {
                Some(o) => (o, false),
                None => continue,
            },
        };
        if owner {
            let mut seen = BTreeSet::new();
            let mut others: Vec<&Observation> = of_fact
                .iter()
                .copied()
                .filter(|o| !rules.owns(&o.source, *fact) && o.value != win.value)
                .collect();
            others.sort_by(|a, b| {
                (&a.source, a.value.to_string()).cmp(&(&b.source, b.value.to_string()))
            });
            for o in others {
                if seen.insert((o.source.clone(), o.value.to_string())) {
                    conflicts.push(FactConflict {
                        fact: *fact,
                        owner_value: win.value.clone(),
                        owner_source: win.source.clone(),
                        other_value: o.value.clone(),
                        other_source: o.source.clone(),
                        other_event_id: o.event_id.clone(),
                    });
                }
            }
        }
        facts.insert(
            *fact,
            Settled {
                value: win.value,
                source: win.source,
                owner,
                event_id: win.event_id,
            },
        );
    }
    (facts, conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ob(fact: Fact, source: &str, value: Value, minute: i64) -> Observation {
        Observation {
            fact,
            source: source.into(),
            value,
            at: OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(minute),
            event_id: format!("e{minute}"),
        }
    }

    fn rules() -> Ownership {
        let mut o = Ownership::default();
        o.owners
            .insert(Fact::Weight, ["wms".to_owned()].into_iter().collect());
        o
    }

    #[test]
    fn a_non_owner_never_overwrites_the_owner_and_is_kept_as_a_conflict() {
        let obs = [
            ob(Fact::Weight, "wms", json!({"value": 10}), 1),
            ob(Fact::Weight, "carrier", json!({"value": 12}), 5),
        ];
        let (facts, conflicts) = settle(&obs, &rules());
        assert_eq!(facts[&Fact::Weight].value, json!({"value": 10}));
        assert!(facts[&Fact::Weight].owner);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].other_source, "carrier");
        assert_eq!(conflicts[0].other_value, json!({"value": 12}));
    }

    #[test]
    fn without_an_owners_value_the_latest_stands_provisionally() {
        let obs = [
            ob(Fact::Weight, "carrier", json!(3), 5),
            ob(Fact::Eta, "a", json!("x"), 1),
        ];
        let (facts, conflicts) = settle(&obs, &rules());
        assert_eq!(facts[&Fact::Weight].value, json!(3));
        assert!(!facts[&Fact::Weight].owner);
        assert!(conflicts.is_empty());
    }

    #[test]
    fn facts_are_read_from_the_documented_places() {
        let ev: CloudEvent = serde_json::from_value(json!({
            "id": "00000000-0000-8000-8000-000000000000", "source": "/sources/x",
            "specversion": "1.0", "type": "shipment.delivered", "subject": "s", "partitionkey": "s",
            "time": "2026-01-01T00:00:00Z", "recordedtime": "2026-01-01T00:00:00Z",
            "datacontenttype": "application/json",
            "data": {"refs": {"tracking": "1z 9", "carrier": "UPS"}, "signed_by": "J",
                     "packages": [{"sscc": "B"}, {"sscc": "A"}], "weight": {"value": 2}}
        }))
        .expect("event");
        let f: BTreeMap<Fact, Value> = facts_of(&ev).into_iter().collect();
        assert_eq!(f[&Fact::Tracking], json!("1Z9"));
        assert_eq!(f[&Fact::Carrier], json!("UPS"));
        assert_eq!(f[&Fact::Pod], json!("J"));
        assert_eq!(f[&Fact::Packages], json!(["A", "B"]));
        assert_eq!(f[&Fact::Weight], json!({"value": 2}));
    }

    proptest! {
        #[test]
        fn settling_does_not_depend_on_order(
            raw in prop::collection::vec((0u8..3, 0u8..3, 0u8..3, 0i64..5), 0..12),
            seed in any::<u64>(),
        ) {
            let sources = ["wms", "carrier", "odoo"];
            let obs: Vec<Observation> = raw
                .iter()
                .map(|(f, s, v, m)| ob(Fact::ALL[*f as usize], sources[*s as usize], json!(v), *m))
                .collect();
            let mut shuffled = obs.clone();
            let n = shuffled.len();
            for i in 0..n {
                shuffled.swap(i, (seed.wrapping_mul(i as u64 + 7) as usize) % n);
            }
            let a = settle(&obs, &rules());
            let b = settle(&shuffled, &rules());
            prop_assert_eq!(a.0, b.0);
            let key = |c: &FactConflict| (c.fact, c.other_source.clone(), c.other_value.to_string());
            let mut ca: Vec<_> = a.1.iter().map(key).collect();
            let mut cb: Vec<_> = b.1.iter().map(key).collect();
            ca.sort();
            cb.sort();
            prop_assert_eq!(ca, cb);
        }
    }
}
