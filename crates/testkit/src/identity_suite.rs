//! The identity and ownership part of the store behaviour suite: one shipment seen by
//! five systems resolves to one entity whatever the arrival order; contradictions are
//! flagged, not merged; a non-owner's value is a conflict, not applied; `shipment.linked`
//! is routed like any event.

use crate::store_suite::accepted;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use time::OffsetDateTime;
use waybill_model::draft::Origin;
use waybill_model::ownership::{Fact, Ownership};
use waybill_model::{CloudEvent, EventDraft, Milestone, ShipmentKey};
use waybill_store::*;

/// An event as a connector builds it, with `data`.
pub fn event_with(
    source: &str,
    ty: &str,
    subject: &str,
    minute: i64,
    refs: &[(&str, &str)],
    data: Value,
) -> CloudEvent {
    let mut draft: EventDraft = serde_json::from_value(json!({
        "type": ty, "subject": subject, "data": data,
        "refs": refs.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
    .unwrap();
    draft.time = Some(
        (OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(minute))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    );
    draft
        .into_event(
            0,
            &Origin {
                source,
                payload_key: &format!("{subject}:{minute}"),
                received_at: OffsetDateTime::now_utc(),
                traceparent: None,
            },
        )
        .unwrap()
}

/// The five systems' events about one shipment, every identifier suffixed with `n` so that
/// several scenarios share a store without touching each other: an Odoo picking released
/// (poller refs), a 3PL 856 ASN naming the order as its PO, the BOL and a package (SSCC and
/// tracking number), an X12 214 with the PRO and BOL, a carrier webhook with only the
/// tracking number, and a CSV row with the SSCC.
pub fn scenario(n: &str) -> Vec<CloudEvent> {
    let picking = format!("odoo:test:picking:20{n}");
    let sscc = format!("00614141{n:0>10}");
    vec![
        event_with(
            "odoo",
            "order.released",
            &picking,
            1,
            &[
                ("odoo.picking_id", &format!("20{n}")),
                ("odoo.picking", &format!("WH/OUT/{n}")),
                ("odoo.order", &format!("S{n}")),
            ],
            json!({}),
        ),
        event_with(
            "wms",
            "warehouse.packed",
            &format!("x12:ABCD:SH{n}"),
            10,
            &[
                ("po", &format!("S{n}")),
                ("bol", &format!("BOL-{n}")),
                ("scac", "ABCD"),
                ("shipment_id", &format!("SH{n}")),
            ],
            json!({"packages": [{"sscc": sscc, "tracking": format!("1Z{n}")}],
                   "weight": {"value": 10, "unit": "KG"}}),
        ),
        event_with(
            "edi",
            "shipment.in_transit",
            &format!("x12:ABCD:PRO{n}"),
            20,
            &[
                ("pro", &format!("PRO{n}")),
                ("bol", &format!("BOL-{n}")),
                ("scac", "ABCD"),
            ],
            json!({}),
        ),
        event_with(
            "carrier",
            "shipment.out_for_delivery",
            &format!("trk:ups:1Z{n}"),
            30,
            &[("tracking", &format!("1z{n}")), ("carrier", "UPS")],
            json!({"weight": {"value": 12, "unit": "KG"}}),
        ),
        event_with(
            "csv",
            "shipment.delivered",
            &format!("file:3pl:{n}"),
            40,
            &[("sscc", &sscc)],
            json!({}),
        ),
    ]
}

fn lanes_of(n: &str) -> Vec<String> {
    let mut l: Vec<String> = scenario(n).iter().map(|e| e.subject.0.clone()).collect();
    l.sort();
    l
}

async fn ingest_each(store: &Store, evs: &[CloudEvent], tag: &str) {
    for (i, e) in evs.iter().enumerate() {
        store
            .ingest(accepted(
                e.source_name(),
                &format!("{tag}:{i}"),
                vec![e.clone()],
            ))
            .await
            .unwrap();
    }
}

/// What must not depend on arrival order: the canonical key, lanes, state, the
/// partners' events in the timeline, and the shipment each alias finds.
async fn outcome(store: &Store, n: &str) -> (String, Vec<String>, Milestone, BTreeSet<String>) {
    let key = match store.resolve_key(&format!("trk:ups:1Z{n}")).await.unwrap() {
        Resolved::One(k) => k,
        other => panic!("scenario {n}: {other:?}"),
    };
    let v = store
        .shipment(&ShipmentKey(key.clone()))
        .await
        .unwrap()
        .unwrap();
    let partner_events: BTreeSet<String> =
        partner_entries(&v).map(|t| t.event.id.0.clone()).collect();
    (key, v.lanes.clone(), v.state.milestone, partner_events)
}

/// A shipment's timeline without the hub's own `shipment.linked` events.
fn partner_entries(v: &ShipmentView) -> impl Iterator<Item = &TimelineEntry> {
    v.timeline
        .iter()
        .filter(|t| t.event.ty.as_str() != "shipment.linked")
}

/// One shipment seen by five systems, arriving in any order and with duplicates, is one
/// shipment with one timeline, found by each of its identifiers.
pub async fn one_shipment_across_systems_in_any_order(store: Store) {
    // Reference: in order.
    ingest_each(&store, &scenario("a"), "a").await;
    let expected = outcome(&store, "a").await;
    assert_eq!(expected.0, "odoo:test:picking:20a");
    assert_eq!(expected.1, lanes_of("a"));
    assert_eq!(expected.2, Milestone::Delivered);
    assert_eq!(expected.3.len(), 5);
    for alias in [
        "tracking:1ZA",
        "tracking:1za",
        "bol:BOL-a",
        "pro:ABCD:PROa",
        "sscc:00614141000000000a",
        "odoo.picking_id:20a",
        "odoo:test:picking:20a",
        "x12:ABCD:PROa",
        "po:Sa",
        "1ZA",
    ] {
        assert_eq!(
            store.resolve_key(alias).await.unwrap(),
            Resolved::One(expected.0.clone()),
            "{alias}"
        );
    }
    let listed = store
        .shipments(ShipmentQuery {
            reference: Some(("bol".into(), "BOL-a".into())),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state.key.0, expected.0);
    let order = store.order("odoo.order:Sa").await.unwrap().unwrap();
    assert_eq!(order.key, "odoo.order:Sa");
    assert_eq!(order.status, "delivered");
    assert_eq!(order.shipments.len(), 1);
    assert_eq!(
        store.order("tracking:1ZA").await.unwrap().unwrap().key,
        "odoo.order:Sa"
    );

    // Permutations with duplicates, each in its own namespace of the same store.
    let base = scenario("x");
    let strategy = proptest::sample::subsequence((0..base.len()).collect::<Vec<_>>(), 0..=3)
        .prop_flat_map(|dups| {
            let mut order: Vec<usize> = (0..5).collect();
            order.extend(dups);
            proptest::strategy::Just(order).prop_shuffle()
        });
    let mut runner = TestRunner::deterministic();
    for case in 0..24 {
        let order = strategy.new_tree(&mut runner).unwrap().current();
        let n = format!("p{case}");
        let evs = scenario(&n);
        let shuffled: Vec<CloudEvent> = order.iter().map(|i| evs[*i].clone()).collect();
        ingest_each(&store, &shuffled, &n).await;
        let got = outcome(&store, &n).await;
        assert_eq!(got.0, format!("odoo:test:picking:20{n}"), "order {order:?}");
        assert_eq!(got.1, lanes_of(&n), "order {order:?}");
        assert_eq!(got.2, Milestone::Delivered, "order {order:?}");
        let ids: BTreeSet<String> = evs.iter().map(|e| e.id.0.clone()).collect();
        assert_eq!(got.3, ids, "order {order:?}");
    }
    // Nothing was flagged.
    assert!(store
        .conflicts(ConflictQuery {
            kind: Some("identity".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
}

/// Many shipments' payloads sent at once — so that they share the writer's batches —
/// each payload twice under its key and its event once more under another key, end as
/// each shipment does alone: one answer per key, every event once, the same entity.
pub async fn shipments_ingested_together_settle_as_each_alone(store: Store) {
    let names: Vec<String> = (0..12).map(|i| format!("b{i}")).collect();
    let mut tasks = Vec::new();
    for n in &names {
        for (i, e) in scenario(n).into_iter().enumerate() {
            for key in [
                format!("{n}:{i}"),
                format!("{n}:{i}"),
                format!("{n}:{i}:again"),
            ] {
                let (s, e) = (store.clone(), e.clone());
                tasks.push(tokio::spawn(async move {
                    let r = s
                        .ingest(accepted(e.source_name(), &key, vec![e.clone()]))
                        .await;
                    (key, e.id, r)
                }));
            }
        }
    }
    let mut answers: std::collections::BTreeMap<String, Vec<IngestOutcome>> = Default::default();
    for t in tasks {
        let (key, id, r) = t.await.unwrap();
        let r = r.unwrap();
        match &r {
            IngestOutcome::Accepted { event_ids, .. }
            | IngestOutcome::Duplicate { event_ids, .. } => {
                assert_eq!(event_ids, &vec![id], "{key}")
            }
            IngestOutcome::Rejected { .. } => panic!("{key} rejected"),
        }
        answers.entry(key).or_default().push(r);
    }
    for (key, rs) in &answers {
        let accepted: Vec<i64> = rs
            .iter()
            .filter_map(|r| match r {
                IngestOutcome::Accepted { inbox_id, .. } => Some(*inbox_id),
                _ => None,
            })
            .collect();
        assert_eq!(accepted.len(), 1, "{key}: {rs:?}");
        for r in rs {
            if let IngestOutcome::Duplicate { inbox_id, .. } = r {
                assert_eq!(*inbox_id, accepted[0], "{key}");
            }
        }
    }
    for n in &names {
        let got = outcome(&store, n).await;
        assert_eq!(got.0, format!("odoo:test:picking:20{n}"));
        assert_eq!(got.1, lanes_of(n));
        assert_eq!(got.2, Milestone::Delivered);
        let ids: BTreeSet<String> = scenario(n).iter().map(|e| e.id.0.clone()).collect();
        assert_eq!(got.3, ids);
        // Each event once, each lane's sequence dense.
        let v = store
            .shipment(&ShipmentKey(got.0.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(partner_entries(&v).count(), ids.len(), "{n}");
        let mut per_lane: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
        for t in &v.timeline {
            per_lane
                .entry(t.event.subject.as_str())
                .or_default()
                .push(t.sequence);
        }
        for (lane, mut seqs) in per_lane {
            seqs.sort_unstable();
            assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "{lane}");
        }
    }
}

/// A tracking number claimed by pickings of two orders merges nothing and is flagged on
/// both; a backorder keeps an ASN that names only the order apart.
pub async fn contradicting_identifiers_are_flagged_not_merged(store: Store) {
    let p7 = event_with(
        "odoo",
        "order.released",
        "odoo:test:picking:7",
        1,
        &[
            ("odoo.picking_id", "7"),
            ("odoo.order", "S1"),
            ("tracking", "T1"),
        ],
        json!({}),
    );
    let p9 = event_with(
        "odoo",
        "order.released",
        "odoo:test:picking:9",
        1,
        &[
            ("odoo.picking_id", "9"),
            ("odoo.order", "S2"),
            ("tracking", "T1"),
        ],
        json!({}),
    );
    let scan = event_with(
        "carrier",
        "shipment.in_transit",
        "trk:ups:T1",
        5,
        &[("tracking", "T1")],
        json!({}),
    );
    ingest_each(&store, &[p7, scan, p9], "c").await;
    for k in ["odoo:test:picking:7", "odoo:test:picking:9", "trk:ups:T1"] {
        let v = store
            .shipment(&ShipmentKey(k.into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.lanes, vec![k.to_owned()], "{k} stays apart");
    }
    let v7 = store
        .shipment(&ShipmentKey("odoo:test:picking:7".into()))
        .await
        .unwrap()
        .unwrap();
    assert!(v7.identity_conflict);
    assert_eq!(
        v7.state.milestone,
        Milestone::Released,
        "the scan was not merged in"
    );
    let conflicts = store
        .conflicts(ConflictQuery {
            kind: Some("identity".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let on: BTreeSet<&str> = conflicts.iter().map(|c| c.shipment.as_str()).collect();
    assert!(on.contains("odoo:test:picking:7") && on.contains("odoo:test:picking:9"));
    assert!(conflicts.iter().all(|c| c.fact == "tracking:T1"));
    let claims = conflicts[0].detail["claims"].to_string();
    assert!(
        claims.contains("odoo.order:S1") && claims.contains("odoo.order:S2"),
        "{claims}"
    );
    // The tracking number names two shipments: the API says so instead of picking one.
    assert!(matches!(
        store.resolve_key("tracking:T1").await.unwrap(),
        Resolved::Several(_)
    ));
}

/// A value from a source that does not own the fact is kept as a conflict, not applied;
/// the owner's value stands in whichever order they came.
pub async fn a_non_owners_value_is_a_conflict_not_applied(store: Store) {
    let mut rules = Ownership::default();
    rules
        .owners
        .insert(Fact::Weight, ["wms".to_owned()].into_iter().collect());
    store.set_ownership(rules).unwrap();
    // The carrier's weight comes later than the warehouse's, and first in the second run.
    for (tag, first_carrier) in [("o1", false), ("o2", true)] {
        let mut evs = scenario(tag);
        if first_carrier {
            evs.reverse();
        }
        ingest_each(&store, &evs, tag).await;
        let v = store
            .shipment(&ShipmentKey(format!("odoo:test:picking:20{tag}")))
            .await
            .unwrap()
            .unwrap();
        let w = &v.facts[&Fact::Weight];
        assert_eq!(w.value, json!({"value": 10, "unit": "KG"}), "{tag}");
        assert_eq!(w.source, "wms");
        assert!(w.owner);
        let own: Vec<&ConflictRecord> = v
            .conflicts
            .iter()
            .filter(|c| c.kind == "ownership")
            .collect();
        assert_eq!(own.len(), 1, "{tag}: {:?}", v.conflicts);
        assert_eq!(own[0].fact, "weight");
        assert_eq!(own[0].detail["other_source"], "carrier");
        assert_eq!(
            own[0].detail["other_value"],
            json!({"value": 12, "unit": "KG"})
        );
        // Tracking has no owner here: the latest value stands.
        assert_eq!(
            v.facts[&Fact::Tracking].value,
            json!(format!("1Z{}", tag.to_uppercase()))
        );
    }
    let all = store
        .conflicts(ConflictQuery {
            kind: Some("ownership".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
}

/// Linking appends `shipment.linked` (both keys, the alias that joined them) to the
/// shipment's log and routes it like any event.
pub async fn linking_appends_and_routes_shipment_linked(store: Store) {
    store
        .sync_subscriptions(vec![Subscription {
            name: "links".into(),
            sink: "hook".into(),
            types: vec!["shipment.linked".into()],
            sources: vec![],
            personal_data: None,
        }])
        .await
        .unwrap();
    let evs = scenario("l");
    // The carrier scan first, then the ASN that names its tracking number.
    ingest_each(&store, &[evs[3].clone(), evs[1].clone()], "l").await;
    let pending = store.pending_outbox("hook", 0, 10).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let linked: CloudEvent = serde_json::from_str(&pending[0].body).unwrap();
    assert_eq!(linked.ty.as_str(), "shipment.linked");
    assert_eq!(linked.subject.0, "trk:ups:1Zl");
    assert_eq!(linked.data["lanes"], json!(["trk:ups:1Zl", "x12:ABCD:SHl"]));
    assert_eq!(linked.data["joined"], json!(["x12:ABCD:SHl"]));
    assert_eq!(linked.data["via"], json!(["tracking:1ZL"]));
    // The picking joins later (the ASN names its order): the canonical key moves to it.
    ingest_each(&store, &[evs[0].clone()], "l2").await;
    let pending = store.pending_outbox("hook", 0, 10).await.unwrap();
    assert_eq!(pending.len(), 2);
    let second: CloudEvent = serde_json::from_str(&pending[1].body).unwrap();
    assert_eq!(second.subject.0, "odoo:test:picking:20l");
    assert_eq!(
        second.data["previous"],
        json!(["odoo:test:picking:20l", "trk:ups:1Zl"])
    );
    // Joined through the order: the ASN's PO is the picking's sale order.
    assert_eq!(second.data["via"], json!(["odoo.order:Sl", "po:Sl"]));
    let refs = store.resolved_refs("trk:ups:1Zl").await.unwrap();
    assert!(
        refs.contains(&("odoo.picking_id".to_owned(), "20l".to_owned())),
        "{refs:?}"
    );
}
