#![allow(clippy::unwrap_used)]
use super::*;
use crate::workflow::ports::PortError;

fn gates() -> Gates {
    serde_json::from_value(json!({"approval_above": "1000.00"})).unwrap()
}

fn cx() -> Ctx {
    Ctx {
        entity: "odoo:db:picking:7".into(),
        refs: vec![("odoo.picking_id".into(), "7".into())],
    }
}

fn ev(ty: &str, data: Value) -> Input {
    Input::Event(
        json!({"id": format!("e-{ty}"), "type": ty, "source": "/sources/carrier",
                        "subject": "odoo:db:picking:7", "data": data}),
    )
}

fn input(m: &DeliveryToInvoice, st: &mut State, i: Input) -> Effects {
    let mut fx = Effects::default();
    m.on_input(&cx(), st, &i, &mut fx);
    fx
}

fn answer(m: &DeliveryToInvoice, st: &mut State, call: &Call, a: Answer) -> Effects {
    let mut fx = Effects::default();
    m.on_answer(&cx(), st, call, &a, &mut fx);
    fx
}

fn order(state: &str, total: &str) -> Answer {
    Ok(serde_json::to_value(OrderContext {
        picking_id: 7,
        state: state.into(),
        order_amount: Some(total.into()),
        ..OrderContext::default()
    })
    .unwrap())
}

fn invoice() -> Answer {
    Ok(
        json!({"id": 31, "name": "INV/2026/00031", "amount": "450.00", "currency": "USD", "state": "posted"}),
    )
}

/// Booked at 40.00 for 25 kg; delivered; returns the state after the order was read.
fn delivered(m: &DeliveryToInvoice, picking: &str, total: &str) -> (State, Effects) {
    let mut st = State::default();
    input(
        m,
        &mut st,
        ev(
            "shipment.booked",
            json!({"price": {"amount": "40.00", "currency": "USD"}, "weight_kg": 25.0}),
        ),
    );
    let fx = input(m, &mut st, ev("shipment.delivered", json!({})));
    assert_eq!(fx.calls, vec![Call::ReadOrder { picking_id: 7 }]);
    let fx = answer(m, &mut st, &fx.calls[0], order(picking, total));
    (st, fx)
}

#[test]
fn all_gates_pass_then_the_invoice_is_posted_and_announced() {
    let m = DeliveryToInvoice::new(gates());
    let (mut st, fx) = delivered(&m, "done", "450.00");
    assert_eq!(
        st.stage,
        Stage::WaitingDocuments,
        "no proof of delivery yet"
    );
    assert_eq!(fx.set_timers[0].0, "documents");
    let fx = input(
        &m,
        &mut st,
        ev("pod.captured", json!({"signed_by": "J. DOE"})),
    );
    let Call::Invoice {
        picking_id: 7,
        marker,
    } = &fx.calls[0]
    else {
        panic!("{:?}", fx.calls)
    };
    assert!(marker.contains("odoo:db:picking:7"));
    let fx = answer(&m, &mut st, &fx.calls[0], invoice());
    assert_eq!(st.stage, Stage::Invoiced);
    let Call::Emit { drafts, .. } = &fx.calls[0] else {
        panic!()
    };
    assert_eq!(drafts[0]["type"], "invoice.posted");
    assert_eq!(drafts[0]["data"]["invoice"]["name"], "INV/2026/00031");
    assert_eq!(m.status(&st).0, Status::Done);
}

#[test]
fn a_picking_not_validated_holds_until_dispatched_and_nothing_to_invoice_waits_again() {
    let m = DeliveryToInvoice::new(gates());
    let (mut st, fx) = delivered(&m, "assigned", "450.00");
    assert!(fx.calls.is_empty());
    assert_eq!(st.stage, Stage::WaitingPicking);
    input(&m, &mut st, ev("pod.captured", json!({})));
    assert_eq!(
        st.stage,
        Stage::WaitingPicking,
        "the proof alone does not release it"
    );
    let mut dispatched = ev(
        "shipment.dispatched",
        json!({"refs": {"odoo.picking_id": "7"}}),
    );
    if let Input::Event(e) = &mut dispatched {
        e["source"] = json!("/sources/odoo");
    }
    let fx = input(&m, &mut st, dispatched.clone());
    assert!(matches!(fx.calls[0], Call::Invoice { .. }));
    // Odoo says nothing is invoiceable (validated a moment later): wait for the picking.
    let refused = PortError::new(
        waybill_model::FailureKind::Permanent,
        "odoo.nothing_to_invoice",
        "No items are available to invoice",
    );
    answer(&m, &mut st, &fx.calls[0], Err(refused));
    assert_eq!(st.stage, Stage::WaitingPicking);
    let fx = input(&m, &mut st, dispatched);
    assert!(matches!(fx.calls[0], Call::Invoice { .. }));
}

#[test]
fn each_gate_holds_and_a_decision_releases_or_rejects() {
    let m = DeliveryToInvoice::new(Gates {
        require_freight_invoice: true,
        ..gates()
    });
    // weight: billed 31.5 lb ≈ 14.3 kg against 25 kg booked; charge: 482.50 against 40.00.
    let (mut st, _) = delivered(&m, "done", "450.00");
    input(&m, &mut st, ev("pod.captured", json!({})));
    assert_eq!(
        st.stage,
        Stage::WaitingDocuments,
        "the freight invoice is required"
    );
    let fx = input(
        &m,
        &mut st,
        ev(
            "freight.charge_confirmed",
            json!({"total": "482.50", "weight": {"unit": "L", "value": 31.5}, "invoice_number": "INV-88123"}),
        ),
    );
    assert_eq!(st.stage, Stage::Holding);
    let held: Vec<&str> = st.held.iter().filter_map(|g| g["gate"].as_str()).collect();
    assert_eq!(held, ["weight", "charge"]);
    assert_eq!(fx.open_tasks[0].kind, "approve_invoice");
    let detail: Value = serde_json::from_str(&fx.open_tasks[0].detail).unwrap();
    assert_eq!(detail["reasons"][1]["charged"], "482.50");
    // Approved: invoiced despite the gates.
    let fx = input(
        &m,
        &mut st,
        Input::Task {
            kind: "approve_invoice".into(),
            decision: json!({"action": "approve"}),
            by: "ana".into(),
        },
    );
    assert!(matches!(fx.calls[0], Call::Invoice { .. }));

    // An exception after delivery, and an order above the approval amount, hold too.
    let m = DeliveryToInvoice::new(gates());
    let (mut st, _) = delivered(&m, "done", "1500.00");
    input(
        &m,
        &mut st,
        ev("shipment.exception", json!({"reason": "damaged"})),
    );
    input(&m, &mut st, ev("pod.captured", json!({})));
    let held: Vec<&str> = st.held.iter().filter_map(|g| g["gate"].as_str()).collect();
    assert_eq!(held, ["no_exception", "approval"]);
    input(
        &m,
        &mut st,
        Input::Task {
            kind: "approve_invoice".into(),
            decision: json!({"action": "reject"}),
            by: "bob".into(),
        },
    );
    assert_eq!(st.stage, Stage::Rejected);
    assert_eq!(m.status(&st).0, Status::Done);
}

#[test]
fn weights_and_charges_within_tolerance_pass() {
    let m = DeliveryToInvoice::new(Gates {
        require_freight_invoice: true,
        ..gates()
    });
    let (mut st, _) = delivered(&m, "done", "450.00");
    input(&m, &mut st, ev("pod.captured", json!({})));
    let fx = input(
        &m,
        &mut st,
        ev(
            "freight.charge_confirmed",
            json!({"total": "43.50", "weight": {"unit": "K", "value": 26.0}}),
        ),
    );
    assert!(st.held.is_empty(), "{:?}", st.held);
    assert!(matches!(fx.calls[0], Call::Invoice { .. }));
}

#[test]
fn missing_documents_ask_a_person_when_the_wait_is_over() {
    let m = DeliveryToInvoice::new(gates());
    let (mut st, _) = delivered(&m, "done", "450.00");
    let fx = input(&m, &mut st, Input::Timer("documents".into()));
    assert_eq!(st.stage, Stage::Holding);
    assert_eq!(fx.open_tasks[0].kind, "documents_missing");
    let fx = input(
        &m,
        &mut st,
        Input::Task {
            kind: "documents_missing".into(),
            decision: json!({"action": "approve"}),
            by: "ana".into(),
        },
    );
    assert!(matches!(fx.calls[0], Call::Invoice { .. }));
}

#[test]
fn a_cancelled_order_ends_its_invoicing() {
    let m = DeliveryToInvoice::new(gates());
    let mut st = State::default();
    input(
        &m,
        &mut st,
        ev("shipment.booked", json!({"price": {"amount": "40.00"}})),
    );
    let fx = input(&m, &mut st, ev("order.cancelled", json!({})));
    assert_eq!(fx.cancel_tasks, vec!["*".to_owned()]);
    assert_eq!(m.status(&st), (Status::Cancelled, "cancelled".to_owned()));
    // A delivery reported afterwards invoices nothing.
    assert!(input(&m, &mut st, ev("shipment.delivered", json!({})))
        .calls
        .is_empty());
}

/// Seen on a real Odoo: validated before the delivery arrives, the order total must
/// still be read and the approval gate hold.
#[test]
fn the_approval_gate_holds_when_the_picking_was_validated_first() {
    let m = DeliveryToInvoice::new(gates());
    let mut st = State::default();
    let mut dispatched = ev(
        "shipment.dispatched",
        json!({"refs": {"odoo.picking_id": "7"}}),
    );
    if let Input::Event(e) = &mut dispatched {
        e["source"] = json!("/sources/odoo");
    }
    input(&m, &mut st, dispatched);
    input(&m, &mut st, ev("pod.captured", json!({})));
    let fx = input(&m, &mut st, ev("shipment.delivered", json!({})));
    assert_eq!(fx.calls, vec![Call::ReadOrder { picking_id: 7 }]);
    let fx = answer(&m, &mut st, &fx.calls[0], order("done", "1500.00"));
    assert_eq!(st.stage, Stage::Holding);
    assert_eq!(st.held[0]["gate"], "approval");
    assert_eq!(fx.open_tasks[0].kind, "approve_invoice");
}

/// Seen on a real Odoo: a proof arriving while people are asked about it withdraws the
/// question and invoices; a "wait" looks again before re-arming the timer.
#[test]
fn a_late_proof_withdraws_the_documents_question() {
    let m = DeliveryToInvoice::new(gates());
    let (mut st, _) = delivered(&m, "done", "450.00");
    input(&m, &mut st, Input::Timer("documents".into()));
    assert_eq!(st.stage, Stage::Holding);
    let fx = input(&m, &mut st, ev("pod.captured", json!({})));
    assert_eq!(fx.cancel_tasks, vec!["documents_missing".to_owned()]);
    assert!(matches!(fx.calls[0], Call::Invoice { .. }));

    let (mut st, _) = delivered(&m, "done", "450.00");
    input(&m, &mut st, Input::Timer("documents".into()));
    st.pod = true; // came without an event this workflow handles
    let fx = input(
        &m,
        &mut st,
        Input::Task {
            kind: "documents_missing".into(),
            decision: json!({"action": "wait"}),
            by: "ana".into(),
        },
    );
    assert!(
        matches!(fx.calls[0], Call::Invoice { .. }),
        "{:?}",
        fx.calls
    );
}
