#![allow(clippy::unwrap_used)]
use super::*;
use crate::workflow::ports::Address;
use proptest::prelude::*;

fn rules() -> Rules {
    serde_json::from_value(json!({
        "carriers": ["cheap", "fast", "spare"],
        "max_price": "30.00",
        "services": {"Express": "express"},
        "exclude": [{"carrier": "spare", "countries": ["CA"]}],
    }))
    .unwrap()
}

fn quote(id: &str, carrier: &str, service: &str, amount: &str) -> Quote {
    Quote {
        quote_id: id.into(),
        carrier: carrier.into(),
        carrier_name: carrier.into(),
        service: service.into(),
        amount: amount.into(),
        currency: "USD".into(),
        transit_days: None,
    }
}

fn quotes() -> Vec<Quote> {
    vec![
        quote("q1", "fast", "ground", "12.50"),
        quote("q2", "cheap", "ground", "9.5"),
        quote("q3", "spare", "ground", "11"),
        quote("q4", "fast", "express", "29.99"),
        quote("q5", "cheap", "express", "31"),
        quote("q6", "other", "ground", "1"),
    ]
}

#[test]
fn amounts_compare_exactly() {
    assert_eq!(minor("9.5"), Some(95_000));
    assert_eq!(minor("12.50"), Some(125_000));
    assert_eq!(minor("0.0001"), Some(1));
    assert_eq!(minor("-3"), Some(-30_000));
    assert_eq!(minor("1.00001"), None);
    assert_eq!(minor("abc"), None);
    assert_eq!(minor(""), None);
}

#[test]
fn rules_filter_and_order_quotes() {
    let r = rules();
    let q = quotes();
    let ids = |v: Vec<&Quote>| v.iter().map(|q| q.quote_id.clone()).collect::<Vec<_>>();
    // Cheapest first; an unlisted carrier and a price above the ceiling are left out.
    assert_eq!(
        ids(candidates(&q, &r, "US", None)),
        ["q2", "q3", "q1", "q4"]
    );
    // Excluded for Canada.
    assert_eq!(ids(candidates(&q, &r, "ca", None)), ["q2", "q1", "q4"]);
    // A service asked for.
    assert_eq!(ids(candidates(&q, &r, "US", Some("express"))), ["q4"]);
    // By preference.
    let mut p = r.clone();
    p.choose = Choose::Preference;
    assert_eq!(
        ids(candidates(&q, &p, "US", None)),
        ["q2", "q1", "q4", "q3"]
    );
}

proptest! {
    /// Whatever the quotes, a candidate passes every rule and they come cheapest first.
    #[test]
    fn candidates_obey_the_rules(prices in proptest::collection::vec((0usize..4, 0u32..5000), 0..12)) {
        let carriers = ["cheap", "fast", "spare", "other"];
        let q: Vec<Quote> = prices.iter().enumerate()
            .map(|(i, (c, p))| quote(&format!("q{i}"), carriers[*c], "ground", &format!("{}.{:02}", p / 100, p % 100)))
            .collect();
        let r = rules();
        let got = candidates(&q, &r, "CA", None);
        let max = minor("30.00").unwrap();
        for w in got.windows(2) {
            prop_assert!(minor(&w[0].amount) <= minor(&w[1].amount));
        }
        for c in &got {
            prop_assert!(r.carriers.contains(&c.carrier));
            prop_assert!(c.carrier != "spare");
            prop_assert!(minor(&c.amount).unwrap() <= max);
        }
        let passing = q.iter().filter(|x| x.carrier != "other" && x.carrier != "spare"
            && minor(&x.amount).unwrap() <= max).count();
        prop_assert_eq!(got.len(), passing);
    }
}

fn released() -> Input {
    Input::Event(json!({
        "id": "e1", "type": "order.released", "source": "/sources/odoo",
        "subject": "odoo:db:picking:7", "data": {"refs": {"odoo.picking_id": "7"}},
    }))
}

fn order() -> Value {
    serde_json::to_value(OrderContext {
        picking_id: 7,
        picking_name: "WH/OUT/00007".into(),
        state: "assigned".into(),
        recipient: Address {
            country_code: "US".into(),
            ..Address::default()
        },
        weight_kg: 2.0,
        ..OrderContext::default()
    })
    .unwrap()
}

fn draft() -> Value {
    serde_json::to_value(Draft {
        booking_id: "shp_1".into(),
        quotes: quotes(),
    })
    .unwrap()
}

fn booked(carrier: &str) -> Value {
    json!({"booked": {"booking_id": "shp_1", "carrier": carrier, "carrier_name": carrier, "service": "ground",
        "tracking_number": "TN1", "amount": "12.50", "currency": "USD", "tracker_id": null}, "label": "label:shp_1"})
}

fn refused() -> PortError {
    PortError::new(
        waybill_model::FailureKind::Permanent,
        "MOCK_PURCHASE_REJECTED",
        "no",
    )
}

/// Drives the machine: returns the calls it asked for.
fn drive(m: &OrderToShip, st: &mut State, input: &Input) -> Effects {
    let mut fx = Effects::default();
    m.on_input(&Ctx::default(), st, input, &mut fx);
    fx
}

fn answer(m: &OrderToShip, st: &mut State, call: &Call, a: Answer) -> Effects {
    let mut fx = Effects::default();
    m.on_answer(&Ctx::default(), st, call, &a, &mut fx);
    fx
}

#[test]
fn a_refused_carrier_falls_back_to_the_next_then_to_a_person() {
    let m = OrderToShip::new(rules());
    let mut st = State::default();
    let fx = drive(&m, &mut st, &released());
    assert_eq!(fx.calls, vec![Call::ReadOrder { picking_id: 7 }]);
    let fx = answer(&m, &mut st, &fx.calls[0], Ok(order()));
    let Call::FindBooking { reference } = &fx.calls[0] else {
        panic!("{:?}", fx.calls)
    };
    assert_eq!(reference, "wb:odoo:db:picking:7");
    let fx = answer(&m, &mut st, &fx.calls[0], Ok(json!({"found": "nothing"})));
    assert!(matches!(fx.calls[0], Call::Quote { .. }));
    let fx = answer(&m, &mut st, &fx.calls[0], Ok(draft()));
    let buy = fx.calls[0].clone();
    assert!(
        matches!(&buy, Call::Buy { quote_id, .. } if quote_id == "q2"),
        "cheapest"
    );
    // cheap refuses: its other quotes are skipped; spare next.
    let fx = answer(&m, &mut st, &buy, Err(refused()));
    assert!(matches!(&fx.calls[0], Call::Buy { quote_id, .. } if quote_id == "q3"));
    let fx = answer(&m, &mut st, &fx.calls[0], Err(refused()));
    assert!(matches!(&fx.calls[0], Call::Buy { quote_id, .. } if quote_id == "q1"));
    let fx = answer(&m, &mut st, &fx.calls[0], Err(refused()));
    // fast refused too (q4 is fast's): a person is asked, an activity and an event.
    assert_eq!(st.stage, Stage::NeedsDecision);
    assert_eq!(fx.open_tasks.len(), 1);
    assert_eq!(fx.open_tasks[0].kind, "choose_carrier");
    assert!(fx.calls.iter().any(|c| matches!(c, Call::Activity { .. })));
    assert!(fx.calls.iter().any(|c| matches!(c, Call::Emit { drafts, .. } if drafts[0]["type"] == "shipment.booking_rejected")));
    assert_eq!(st.tried.len(), 3);
    // The person chooses fast's express.
    let fx = drive(
        &m,
        &mut st,
        &Input::Task {
            kind: "choose_carrier".into(),
            decision: json!({"carrier": "fast", "service": "express"}),
            by: "ana".into(),
        },
    );
    // The decision closes the activity that asked for it, then buys.
    assert!(
        matches!(&fx.calls[0], Call::CloseActivity { marker, .. } if marker.contains("choose_carrier"))
    );
    assert!(matches!(&fx.calls[1], Call::Buy { quote_id, .. } if quote_id == "q4"));
    let fx = answer(&m, &mut st, &fx.calls[1], Ok(booked("fast")));
    assert_eq!(st.stage, Stage::Recording);
    assert!(
        matches!(&fx.calls[0], Call::RecordBooking { picking_id: 7, label: Some(l), .. } if l == "label:shp_1")
    );
    let Call::Emit { drafts, .. } = &fx.calls[1] else {
        panic!()
    };
    assert_eq!(drafts[0]["type"], "shipment.booked");
    assert_eq!(drafts[1]["type"], "shipment.label_created");
    assert_eq!(drafts[1]["refs"]["tracking"], "TN1");
    answer(&m, &mut st, &fx.calls[0], Ok(json!({})));
    assert_eq!(m.status(&st).0, Status::Waiting);
    assert_eq!(st.stage, Stage::Booked);
    // Cancelled after booking: the label is voided, then a note.
    let cancel = Input::Event(
        json!({"id": "e9", "type": "order.cancelled", "source": "/sources/odoo", "subject": "odoo:db:picking:7"}),
    );
    let fx = drive(&m, &mut st, &cancel);
    assert!(fx.drop_queued);
    assert_eq!(
        fx.calls,
        vec![Call::Void {
            booking_id: "shp_1".into()
        }]
    );
    let fx = answer(&m, &mut st, &fx.calls[0], Ok(json!({})));
    assert!(
        matches!(&fx.calls[0], Call::RecordVoid { booked, .. } if booked.tracking_number == "TN1")
    );
    assert_eq!(m.status(&st).0, Status::Cancelled);
}

#[test]
fn a_booking_found_after_a_crash_is_recorded_not_bought_again() {
    let m = OrderToShip::new(rules());
    let mut st = State::default();
    let fx = drive(&m, &mut st, &released());
    let fx = answer(&m, &mut st, &fx.calls[0], Ok(order()));
    let mut found = booked("cheap");
    found["found"] = json!("booked");
    let fx = answer(&m, &mut st, &fx.calls[0], Ok(found));
    assert!(!fx
        .calls
        .iter()
        .any(|c| matches!(c, Call::Buy { .. } | Call::Quote { .. })));
    assert!(matches!(fx.calls[0], Call::RecordBooking { .. }));
}

#[test]
fn packing_is_awaited_with_a_timer_and_escalated() {
    let mut r = rules();
    r.wait_for_packing = true;
    let m = OrderToShip::new(r);
    let mut st = State::default();
    let fx = drive(&m, &mut st, &released());
    let fx = answer(&m, &mut st, &fx.calls[0], Ok(order()));
    assert_eq!(st.stage, Stage::AwaitingPack);
    assert_eq!(fx.set_timers[0].0, "packing");
    let fx = drive(&m, &mut st, &Input::Timer("packing".into()));
    assert_eq!(fx.open_tasks[0].kind, "packing_overdue");
    let packed = Input::Event(
        json!({"id": "e2", "type": "warehouse.packed", "source": "/sources/wms",
        "subject": "odoo:db:picking:7", "data": {"packages": [{"weight": 4.4, "weight_unit": "lb", "sscc": "00123"}]}}),
    );
    let fx = drive(&m, &mut st, &packed);
    assert_eq!(fx.cancel_timers, vec!["packing".to_owned()]);
    assert!(matches!(fx.calls[0], Call::FindBooking { .. }));
    assert!((st.parcels[0].weight_kg - 1.995_806).abs() < 1e-3);
}

#[test]
fn a_refused_void_asks_a_person() {
    let m = OrderToShip::new(rules());
    let mut st = State {
        stage: Stage::Booked,
        picking_id: Some(7),
        booked: serde_json::from_value(booked("cheap")["booked"].clone()).ok(),
        ..State::default()
    };
    let fx = drive(&m, &mut st, &Input::Cancel { by: "ops".into() });
    let fx = answer(&m, &mut st, &fx.calls[0], Err(refused()));
    assert_eq!(st.stage, Stage::VoidRefused);
    assert_eq!(fx.open_tasks[0].kind, "void_refused");
}

#[test]
fn releases_before_released_after_are_skipped() {
    let mut r = rules();
    r.released_after = Some("2026-12-01T00:00:00Z".into());
    let m = OrderToShip::new(r);
    let old = Input::Event(json!({
        "id": "e1", "type": "order.released", "source": "/sources/odoo", "time": "2026-11-23T07:00:00Z",
        "subject": "odoo:db:picking:7", "data": {"refs": {"odoo.picking_id": "7"}},
    }));
    let mut st = State::default();
    let fx = drive(&m, &mut st, &old);
    assert!(fx.calls.is_empty());
    assert_eq!(m.status(&st), (Status::Done, "skipped".to_owned()));
    let mut st = State::default();
    let new = Input::Event(json!({
        "id": "e2", "type": "order.released", "source": "/sources/odoo", "time": "2026-12-02T07:00:00Z",
        "subject": "odoo:db:picking:8", "data": {"refs": {"odoo.picking_id": "8"}},
    }));
    assert_eq!(
        drive(&m, &mut st, &new).calls,
        vec![Call::ReadOrder { picking_id: 8 }]
    );
}
