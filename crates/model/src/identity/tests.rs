use super::*;
use proptest::prelude::*;

fn lane(key: &str, aliases: &[(&str, &str)]) -> LaneAliases {
    LaneAliases {
        lane: key.to_owned(),
        aliases: aliases
            .iter()
            .map(|(k, v)| Alias {
                kind: (*k).to_owned(),
                value: normalise(k, v, None, "src").unwrap_or_default(),
            })
            .collect(),
    }
}

fn keys(g: &Grouping) -> Vec<Vec<&str>> {
    g.groups
        .iter()
        .map(|g| g.lanes.iter().map(String::as_str).collect())
        .collect()
}

#[test]
fn a_shared_tracking_number_links_lanes_and_odoo_is_canonical() {
    let g = group(&[
        lane("trk:ups:1Z1", &[("tracking", "1z 1")]),
        lane(
            "odoo:db:picking:7",
            &[("odoo.picking_id", "7"), ("tracking", "1Z1")],
        ),
        lane("x12:ABCD:9", &[("bol", "B9")]),
    ]);
    assert_eq!(
        keys(&g),
        vec![vec!["odoo:db:picking:7", "trk:ups:1Z1"], vec!["x12:ABCD:9"]]
    );
    assert_eq!(g.groups[0].key, "odoo:db:picking:7");
    assert!(g.conflicts.is_empty());
}

#[test]
fn a_tracking_number_claimed_by_two_pickings_links_nothing() {
    let g = group(&[
        lane(
            "odoo:db:picking:7",
            &[
                ("odoo.picking_id", "7"),
                ("odoo.order", "S1"),
                ("tracking", "T"),
            ],
        ),
        lane("x12:ABCD:9", &[("odoo.order", "S2"), ("tracking", "T")]),
        lane("trk:ups:T", &[("tracking", "T")]),
    ]);
    assert_eq!(g.groups.len(), 3, "{g:?}");
    assert_eq!(g.conflicts.len(), 1);
    assert_eq!(g.conflicts[0].via, "tracking:T");
    let holds: Vec<&str> = g.conflicts[0]
        .claims
        .iter()
        .map(|c| c.holds.as_str())
        .collect();
    assert!(holds.contains(&"odoo.order:S1") && holds.contains(&"odoo.order:S2"));
}

#[test]
fn a_chain_that_joins_two_pickings_merges_nothing() {
    let g = group(&[
        lane(
            "odoo:db:picking:7",
            &[("odoo.picking_id", "7"), ("bol", "X")],
        ),
        lane("x12:A:1", &[("bol", "X"), ("pro", "Y")]),
        lane(
            "odoo:db:picking:9",
            &[("odoo.picking_id", "9"), ("pro", "Y")],
        ),
    ]);
    assert_eq!(g.groups.len(), 3);
    assert_eq!(g.conflicts.len(), 1);
    assert_eq!(g.conflicts[0].via, "bol:X,pro:Y");
}

#[test]
fn an_asn_naming_the_po_joins_the_orders_only_picking() {
    let picking = lane(
        "odoo:db:picking:7",
        &[
            ("odoo.picking_id", "7"),
            ("odoo.order", "S1"),
            ("po", "PO-1"),
        ],
    );
    let asn = lane("x12:A:SH1", &[("po", "PO-1"), ("bol", "B")]);
    let g = group(&[picking.clone(), asn.clone()]);
    assert_eq!(keys(&g), vec![vec!["odoo:db:picking:7", "x12:A:SH1"]]);
    // A backorder: the order has two pickings, so the ASN stays apart.
    let backorder = lane(
        "odoo:db:picking:8",
        &[("odoo.picking_id", "8"), ("odoo.order", "S1")],
    );
    let g = group(&[picking, asn, backorder]);
    assert_eq!(g.groups.len(), 3);
}

#[test]
fn identifiers_are_compared_normalised() {
    assert_eq!(
        normalise("tracking", " 1z 999-aa ", None, "s").as_deref(),
        Some("1Z999AA")
    );
    assert_eq!(
        normalise("sscc", "(00)000614141000000038", None, "s").as_deref(),
        Some("000614141000000038")
    );
    assert_eq!(
        normalise("pro", "123 456", Some("abcd"), "s").as_deref(),
        Some("ABCD:123456")
    );
    assert_eq!(
        normalise("tracker", "trk_1", None, "easypost").as_deref(),
        Some("easypost:trk_1")
    );
    assert_eq!(normalise("bol", "  ", None, "s"), None);
}

fn arb_lanes() -> impl Strategy<Value = Vec<LaneAliases>> {
    let alias = prop_oneof![
        (0u8..4).prop_map(|v| ("tracking", format!("T{v}"))),
        (0u8..3).prop_map(|v| ("bol", format!("B{v}"))),
        (0u8..3).prop_map(|v| ("odoo.picking_id", format!("{v}"))),
        (0u8..2).prop_map(|v| ("odoo.order", format!("S{v}"))),
        (0u8..2).prop_map(|v| ("po", format!("P{v}"))),
        (0u8..3).prop_map(|v| ("sscc", format!("{v}"))),
        Just(("carrier", "UPS".to_owned())),
    ];
    prop::collection::vec((0u8..6, prop::collection::vec(alias, 0..4)), 0..12).prop_map(|v| {
        v.into_iter()
            .map(|(l, al)| LaneAliases {
                lane: format!("lane:{l}"),
                aliases: al
                    .into_iter()
                    .map(|(k, v)| Alias {
                        kind: k.to_owned(),
                        value: v,
                    })
                    .collect(),
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn grouping_is_a_function_of_the_set(lanes in arb_lanes(), seed in any::<u64>()) {
        let g = group(&lanes);
        let mut shuffled = lanes.clone();
        // A permutation and a duplicate of each entry.
        shuffled.extend(lanes.iter().cloned());
        let n = shuffled.len();
        for i in 0..n {
            let j = (seed.wrapping_mul(i as u64 + 1) as usize) % n;
            shuffled.swap(i, j);
        }
        prop_assert_eq!(&group(&shuffled), &g);
        // Every lane in exactly one group; no group holds two pickings or orders.
        let mut seen = BTreeSet::new();
        for grp in &g.groups {
            let members: Vec<&LaneAliases> = lanes.iter().filter(|l| grp.lanes.contains(&l.lane)).collect();
            prop_assert!(grp.lanes.len() < 2 || !contradicts(&singulars(members.into_iter())));
            for l in &grp.lanes {
                prop_assert!(seen.insert(l.clone()));
            }
            prop_assert!(grp.lanes.contains(&grp.key));
        }
    }
}

#[test]
fn order_status_follows_its_shipments() {
    use crate::Milestone as M;
    assert_eq!(order_status(&[]), "unshipped");
    assert_eq!(order_status(&[M::Released, M::Packed]), "unshipped");
    assert_eq!(
        order_status(&[M::InTransit, M::Packed]),
        "partially_shipped"
    );
    assert_eq!(order_status(&[M::InTransit, M::Dispatched]), "shipped");
    assert_eq!(
        order_status(&[M::Delivered, M::InTransit]),
        "partially_delivered"
    );
    assert_eq!(
        order_status(&[M::Delivered, M::Returned, M::Cancelled]),
        "delivered"
    );
    assert_eq!(order_status(&[M::Returned]), "returned");
    assert_eq!(order_status(&[M::Cancelled]), "cancelled");
}

#[test]
fn a_po_equal_to_the_sale_order_name_is_that_order() {
    let g = group(&[
        lane(
            "odoo:db:picking:7",
            &[("odoo.picking_id", "7"), ("odoo.order", "S00025")],
        ),
        lane("x12:A:SH1", &[("po", "S00025"), ("bol", "B")]),
        lane("x12:A:PRO1", &[("pro", "P1"), ("bol", "B")]),
    ]);
    assert_eq!(
        keys(&g),
        vec![vec!["odoo:db:picking:7", "x12:A:PRO1", "x12:A:SH1"]]
    );
}
