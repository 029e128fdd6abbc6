#![allow(clippy::unwrap_used)]
//! The Odoo ERP port against the protocol-faithful fake Odoo over real HTTP, with both
//! protocols: JSON-RPC (as Odoo 18 serves it) and JSON-2 (Odoo 19).

use super::chatter::RESOLVED;
use super::currency::money;
use super::invoicing::{nothing_to_invoice, INVOICE_NOTE};
use super::*;
use crate::odoo::sink::kw;
use crate::odoo::sink::money::create_invoices;
use base64::Engine as _;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use waybill_engine::secret::SecretRef;
use waybill_engine::workflow::ports::{Address, Label};
use waybill_testkit::fake_odoo::{self, start, Fake, KEY};

fn connection(url: &str, protocol: &str) -> OdooConfig {
    OdooConfig {
        url: url.into(),
        database: "logistics".into(),
        login: "middleware".into(),
        api_key: SecretRef(format!("plain:{KEY}")),
        protocol: protocol.into(),
        timeout: Duration::from_secs(2),
        max_concurrency: 2,
        max_requests_per_second: 0.0,
    }
}

/// Odoo 18 over JSON-RPC and Odoo 19 over JSON-2.
pub(super) const SERVERS: [(i64, &str); 2] = [(18, "jsonrpc"), (19, "json2")];

/// A fake Odoo holding [`fake_odoo::order_to_ship`] for picking 20 and a UPS carrier
/// (delivery.carrier 7) with a tracking link, and the port on it (UPS mapped to 7).
pub(super) async fn odoo(major: i64, protocol: &str) -> (OdooErp, Arc<Fake>) {
    let (url, fake) = start(major).await;
    fake_odoo::seed(&fake, fake_odoo::order_to_ship(20));
    fake_odoo::seed(
        &fake,
        [
            json!({"_model": "delivery.carrier", "id": 7, "name": "UPS", "delivery_type": "fixed",
                "tracking_url": "https://www.ups.com/track?tracknum=<shipmenttrackingnumber>"}),
        ],
    );
    let cfg = OdooErpConfig {
        carriers: [("ups".to_string(), 7)].into(),
        ..Default::default()
    };
    (
        OdooErp::build(&connection(&url, protocol), &cfg).unwrap(),
        fake,
    )
}

fn booked(tracking: &str, label: &[u8]) -> Booked {
    Booked {
        booking_id: "shp_1".into(),
        carrier: "ups_account".into(),
        carrier_name: "ups".into(),
        service: "ups_ground".into(),
        tracking_number: tracking.into(),
        amount: "12.50".into(),
        currency: "USD".into(),
        tracker_id: None,
        label: Some(Label {
            format: "PDF".into(),
            bytes: label.to_vec(),
        }),
    }
}

/// How many times `model.method` was called.
fn called(fake: &Fake, model: &str, method: &str) -> usize {
    fake.calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, name, _)| m == model && name == method)
        .count()
}

/// Validates picking 20 as a person would (the fake's picking is reserved in full).
async fn validate(erp: &OdooErp) {
    erp.client
        .call("stock.picking", "button_validate", Some(&[20]), Map::new())
        .await
        .unwrap();
}

fn writes(fake: &Fake) -> usize {
    fake.calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, method, _)| m == "stock.picking" && method == "write")
        .count()
}

#[tokio::test]
async fn order_context_reads_the_picking_its_customer_and_the_warehouse_address() {
    for (major, protocol) in SERVERS {
        let (erp, _fake) = odoo(major, protocol).await;
        let ctx = erp.order_context(20).await.unwrap();
        assert_eq!(
            ctx,
            OrderContext {
                picking_id: 20,
                picking_name: "WH/OUT/00020".into(),
                state: "assigned".into(),
                order_name: Some("S00025".into()),
                company_id: Some(1),
                customer_id: Some(46),
                carrier_hint: Some("Standard delivery".into()),
                shipper: Address {
                    person_name: None,
                    company_name: Some("YourCompany".into()),
                    address_line1: Some("250 Executive Park Blvd".into()),
                    address_line2: Some("Suite 3400".into()),
                    city: Some("San Francisco".into()),
                    postal_code: Some("94134".into()),
                    state_code: Some("CA".into()),
                    country_code: "US".into(),
                    phone_number: Some("+1 555-555-5556".into()),
                    email: Some("info@yourcompany.com".into()),
                },
                recipient: Address {
                    person_name: None,
                    company_name: Some("ACME Logistics Test".into()),
                    address_line1: Some("1 Main St".into()),
                    address_line2: None,
                    city: Some("Springfield".into()),
                    postal_code: Some("62701".into()),
                    state_code: Some("IL".into()),
                    country_code: "US".into(),
                    phone_number: Some("+1 555 0100".into()),
                    email: Some("ops@acme.example".into()),
                },
                weight_kg: 25.0,
                order_amount: Some("287.50".into()),
            },
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn a_person_of_a_company_ships_from_the_company_in_kilograms() {
    let (erp, fake) = odoo(18, "jsonrpc").await;
    // A contact person of a company, no operation type (so no warehouse), weights in lb.
    let mut person = fake_odoo::customer(47, "Jane Doe");
    person["is_company"] = json!(false);
    person["commercial_company_name"] = json!("ACME Logistics Test");
    person["parent_id"] = json!([46, "ACME Logistics Test"]);
    let mut p = fake_odoo::ready_picking(21, &person);
    p["picking_type_id"] = json!(false);
    p["shipping_weight"] = json!(0.0);
    p["weight"] = json!(10.0);
    p["weight_uom_name"] = json!("lb");
    fake_odoo::seed(&fake, [person, p]);
    let ctx = erp.order_context(21).await.unwrap();
    assert_eq!(ctx.recipient.person_name.as_deref(), Some("Jane Doe"));
    assert_eq!(
        ctx.recipient.company_name.as_deref(),
        Some("ACME Logistics Test")
    );
    assert_eq!(
        ctx.shipper.address_line1.as_deref(),
        Some("250 Executive Park Blvd")
    );
    assert!(
        (ctx.weight_kg - 4.5359237).abs() < 1e-9,
        "{}",
        ctx.weight_kg
    );
}

#[tokio::test]
async fn a_booking_is_recorded_on_the_picking_and_told_to_the_customer_once_per_marker() {
    let label = b"%PDF-1.4 label \x00\xff bytes".to_vec();
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        let b = booked("1Z999AA10123456784", &label);
        let marker = "[waybill wf-7 book-1]";
        erp.record_booking(20, &b, marker).await.unwrap();

        let p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
        assert_eq!(
            p["carrier_tracking_ref"], "1Z999AA10123456784",
            "{protocol}"
        );
        assert_eq!(p["carrier_id"], json!(7));
        assert_eq!(p["carrier_price"], json!(12.5));
        let atts = fake_odoo::attachments_on(&fake, "stock.picking", 20);
        assert_eq!(atts.len(), 1, "{protocol}: {atts:#?}");
        assert_eq!(atts[0]["name"], "Label-1Z999AA10123456784.pdf");
        assert_eq!(atts[0]["mimetype"], "application/pdf");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(atts[0]["datas"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, label);
        let told = fake_odoo::messages_on(&fake, "sale.order", 25);
        assert_eq!(told.len(), 1, "{protocol}: {told:#?}");
        let m = &told[0];
        assert_eq!(
            (&m["message_type"], &m["subtype_id"], &m["partner_ids"]),
            (&json!("comment"), &json!([1, "Discussions"]), &json!([46]))
        );
        let body = m["body"].as_str().unwrap();
        for part in [
            "1Z999AA10123456784",
            "UPS (ups_ground)",
            marker,
            "https://www.ups.com/track?tracknum=1Z999AA10123456784",
        ] {
            assert!(body.contains(part), "{protocol}: {part} not in {body}");
        }
        assert_eq!(
            fake_odoo::emailed_partners(&fake, m["id"].as_i64().unwrap()),
            vec![46],
            "Odoo e-mails the customer"
        );
        // Writes run in the picking's company.
        let calls = fake.calls.lock().unwrap().clone();
        assert!(calls
            .iter()
            .filter(|(_, m, _)| ["write", "create", "message_post"].contains(&m.as_str()))
            .all(|(_, _, ctx)| ctx["allowed_company_ids"] == json!([1])));

        // The same booking again (a retry after a crash): nothing changes.
        let before = writes(&fake);
        erp.record_booking(20, &b, marker).await.unwrap();
        assert_eq!(writes(&fake), before, "{protocol}: no second write");
        assert_eq!(
            fake_odoo::attachments_on(&fake, "stock.picking", 20).len(),
            1
        );
        assert_eq!(fake_odoo::messages_on(&fake, "sale.order", 25).len(), 1);
        assert!(fake_odoo::messages_on(&fake, "stock.picking", 20).is_empty());
    }
}

#[tokio::test]
async fn without_a_sale_order_the_customer_is_told_on_the_picking() {
    let (erp, fake) = odoo(18, "jsonrpc").await;
    let mut p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
    p["sale_id"] = json!(false);
    fake_odoo::seed(&fake, [p]);
    let mut b = booked("1Z1", b"%PDF");
    b.carrier_name = "dhl".into();
    b.currency = "EUR".into();
    erp.record_booking(20, &b, "[waybill m1]").await.unwrap();
    let p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
    assert_eq!(p["carrier_tracking_ref"], "1Z1");
    assert_eq!(
        p["carrier_id"],
        json!([1, "Standard delivery"]),
        "a carrier not in `carriers` leaves the picking's"
    );
    assert_eq!(
        p["carrier_price"],
        json!(0.0),
        "a price in another currency than the company's is not written"
    );
    let told = fake_odoo::messages_on(&fake, "stock.picking", 20);
    assert_eq!(told.len(), 1);
    assert!(told[0]["body"].as_str().unwrap().contains("WH/OUT/00020"));
}

#[tokio::test]
async fn notes_and_activities_are_posted_once_per_marker() {
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        // Odoo escapes a text body (`&`, `<`, `>`; quotes stay): the marker is found.
        let marker = "[waybill wf-7 \"exception\" & co]";
        for _ in 0..2 {
            erp.note(20, marker, "Label voided <by carrier>")
                .await
                .unwrap();
        }
        let notes = fake_odoo::messages_on(&fake, "stock.picking", 20);
        assert_eq!(notes.len(), 1, "{protocol}: {notes:#?}");
        assert_eq!(notes[0]["subtype_id"], json!([2, "Note"]));
        assert!(fake_odoo::emailed_partners(&fake, notes[0]["id"].as_i64().unwrap()).is_empty());
        assert!(notes[0]["body"]
            .as_str()
            .unwrap()
            .contains("Label voided &lt;by carrier&gt; [waybill wf-7 \"exception\" &amp; co]"));

        let todo = "[waybill wf-7 task-1]";
        for _ in 0..2 {
            erp.activity(20, todo, "Book by hand", "No carrier accepted <this>")
                .await
                .unwrap();
        }
        let acts = fake_odoo::activities_on(&fake, "stock.picking", 20);
        assert_eq!(acts.len(), 1, "{protocol}: {acts:#?}");
        assert_eq!(acts[0]["activity_type_id"], json!([4, "To-Do"]));
        assert_eq!(acts[0]["summary"], "Book by hand");
        assert_eq!(acts[0]["user_id"], json!(2), "the API user");
        assert!(acts[0]["note"].as_str().unwrap().contains("&lt;this&gt;"));

        // Someone marks the to-do done (Odoo deletes it and posts a message): a retry
        // of the step does not open it again.
        erp.client
            .call(
                "mail.activity",
                "action_feedback",
                Some(&[acts[0]["id"].as_i64().unwrap()]),
                kw(&[("feedback", json!("booked on the UPS site"))]),
            )
            .await
            .unwrap();
        assert!(fake_odoo::activities_on(&fake, "stock.picking", 20).is_empty());
        erp.activity(20, todo, "Book by hand", "No carrier accepted <this>")
            .await
            .unwrap();
        assert!(fake_odoo::activities_on(&fake, "stock.picking", 20).is_empty());
        // Another marker is another to-do.
        erp.activity(20, "[waybill wf-7 task-2]", "Check", "x")
            .await
            .unwrap();
        assert_eq!(
            fake_odoo::activities_on(&fake, "stock.picking", 20).len(),
            1
        );
    }
}

#[tokio::test]
async fn a_missing_picking_is_permanent_not_found() {
    for (major, protocol) in SERVERS {
        let (erp, _fake) = odoo(major, protocol).await;
        let b = booked("1Z", b"x");
        let errors = [
            erp.order_context(999).await.unwrap_err(),
            erp.record_booking(999, &b, "m").await.unwrap_err(),
            erp.record_void(999, &b, "m", "x").await.unwrap_err(),
            erp.note(999, "m", "x").await.unwrap_err(),
            erp.activity(999, "m", "s", "n").await.unwrap_err(),
            erp.invoice(999, "m").await.unwrap_err(),
        ];
        for e in errors {
            assert_eq!(
                (e.kind, e.code.as_str()),
                (FailureKind::Permanent, "odoo.not_found"),
                "{protocol}: {e}"
            );
        }
    }
}

#[tokio::test]
async fn odoo_down_is_retryable_and_the_call_works_once_it_is_back() {
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        fake.down.store(true, Ordering::SeqCst);
        let e = erp.order_context(20).await.unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str(), e.status),
            (FailureKind::Retryable, "odoo.http_error", Some(503)),
            "{protocol}: {e}"
        );
        fake.down.store(false, Ordering::SeqCst);
        assert_eq!(erp.order_context(20).await.unwrap().picking_id, 20);

        // Down while invoicing, then back: the call makes the one invoice.
        validate(&erp).await;
        fake.down.store(true, Ordering::SeqCst);
        let e = erp.invoice(20, "[waybill invoice S1]").await.unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str(), e.status),
            (FailureKind::Retryable, "odoo.http_error", Some(503)),
            "{protocol}: {e}"
        );
        fake.down.store(false, Ordering::SeqCst);
        let inv = erp.invoice(20, "[waybill invoice S1]").await.unwrap();
        assert_eq!(
            (inv.state.as_str(), inv.amount.as_str()),
            ("posted", "287.50")
        );
        assert_eq!(fake_odoo::invoices_of(&fake, 25).len(), 1, "{protocol}");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = OdooErp::build(
        &connection(&format!("http://127.0.0.1:{port}"), "jsonrpc"),
        &OdooErpConfig::default(),
    )
    .unwrap();
    let e = gone.note(20, "m", "x").await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (FailureKind::Retryable, "odoo.unreachable"),
        "{e}"
    );
}

/// The note of a void, as a workflow words it.
const VOIDED: &str = "Order cancelled: label voided with the carrier.";

#[tokio::test]
async fn a_voided_booking_is_undone_on_the_picking_and_noted_once_per_marker() {
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        let b = booked("1Z999AA10123456784", b"%PDF label");
        erp.record_booking(20, &b, "[waybill booking shp_1]")
            .await
            .unwrap();
        let before = writes(&fake);
        let marker = "[waybill void \"shp_1\" & co]";
        for _ in 0..2 {
            erp.record_void(20, &b, marker, VOIDED).await.unwrap();
        }
        let p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
        assert_eq!(
            (&p["carrier_tracking_ref"], &p["carrier_price"]),
            (&json!(false), &json!(0.0)),
            "{protocol}"
        );
        assert_eq!(p["carrier_id"], json!(7), "the carrier stays");
        assert_eq!(writes(&fake), before + 1, "{protocol}: none on the retry");
        let notes = fake_odoo::messages_on(&fake, "stock.picking", 20);
        assert_eq!(notes.len(), 1, "{protocol}: {notes:#?}");
        assert_eq!(notes[0]["subtype_id"], json!([2, "Note"]));
        assert!(notes[0]["body"].as_str().unwrap().contains(VOIDED));
        assert_eq!(
            fake_odoo::attachments_on(&fake, "stock.picking", 20).len(),
            1,
            "the label stays, for the record"
        );
        let calls = fake.calls.lock().unwrap().clone();
        assert!(calls
            .iter()
            .filter(|(m, name, _)| m == "stock.picking"
                && ["write", "message_post"].contains(&name.as_str()))
            .all(|(_, _, ctx)| ctx["allowed_company_ids"] == json!([1])));
        // A later scan of the voided number no longer lands on this picking.
        let scanned = erp
            .read(
                "stock.picking",
                json!([["carrier_tracking_ref", "=", "1Z999AA10123456784"]]),
                &["name"],
                None,
            )
            .await
            .unwrap();
        assert!(scanned.is_empty(), "{protocol}: {scanned:?}");
    }
}

#[tokio::test]
async fn a_void_leaves_what_is_no_longer_the_bookings() {
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        let b = booked("1Z-OLD", b"%PDF");
        erp.record_booking(20, &b, "[waybill booking old]")
            .await
            .unwrap();
        // Someone booked again by hand: another tracking number, another price.
        let mut p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
        p["carrier_tracking_ref"] = json!("1Z-BY-HAND");
        p["carrier_price"] = json!(20.0);
        fake_odoo::seed(&fake, [p]);
        let before = writes(&fake);
        erp.record_void(20, &b, "[waybill void 1]", VOIDED)
            .await
            .unwrap();
        let p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
        assert_eq!(
            (&p["carrier_tracking_ref"], &p["carrier_price"]),
            (&json!("1Z-BY-HAND"), &json!(20.0)),
            "{protocol}"
        );
        assert_eq!(writes(&fake), before, "{protocol}: nothing written");
        assert_eq!(
            fake_odoo::messages_on(&fake, "stock.picking", 20).len(),
            1,
            "the void is noted all the same"
        );

        // The reference is still the booking's, the price a person's: only the
        // reference goes.
        let mut p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
        p["carrier_tracking_ref"] = json!("1Z-OLD");
        p["carrier_price"] = json!(15.0);
        fake_odoo::seed(&fake, [p]);
        erp.record_void(20, &b, "[waybill void 2]", VOIDED)
            .await
            .unwrap();
        let p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
        assert_eq!(
            (&p["carrier_tracking_ref"], &p["carrier_price"]),
            (&json!(false), &json!(15.0)),
            "{protocol}"
        );
    }
}

/// The messages Odoo posted on picking 20 when one of its activities was marked done.
fn done_messages(fake: &Fake) -> Vec<Value> {
    fake_odoo::messages_on(fake, "stock.picking", 20)
        .into_iter()
        .filter(|m| m["mail_activity_type_id"] != json!(false))
        .collect()
}

#[tokio::test]
async fn a_resolved_activity_is_marked_done_once() {
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        // Odoo stores the note's quotes as they are: the marker is found all the same.
        let marker = "[waybill wf-7 task \"carrier\" & co]";
        erp.activity(20, marker, "Choose a carrier", "Every carrier refused")
            .await
            .unwrap();
        erp.activity(20, "[waybill wf-7 other]", "Check the address", "x")
            .await
            .unwrap();
        assert_eq!(
            fake_odoo::activities_on(&fake, "stock.picking", 20).len(),
            2
        );

        erp.close_activity(20, marker).await.unwrap();
        let open = fake_odoo::activities_on(&fake, "stock.picking", 20);
        assert_eq!(open.len(), 1, "{protocol}: {open:#?}");
        assert_eq!(open[0]["summary"], "Check the address");
        let done = done_messages(&fake);
        assert_eq!(done.len(), 1, "{protocol}: {done:#?}");
        let body = done[0]["body"].as_str().unwrap();
        assert!(
            body.contains("Choose a carrier") && body.contains(RESOLVED),
            "{body}"
        );
        let feedback: Vec<Value> = fake
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, name, _)| m == "mail.activity" && name == "action_feedback")
            .map(|(_, _, ctx)| ctx.clone())
            .collect();
        assert_eq!(feedback.len(), 1);
        assert_eq!(feedback[0]["allowed_company_ids"], json!([1]));

        // Again (a retry of the step): nothing open carries the marker, nothing is done.
        erp.close_activity(20, marker).await.unwrap();
        assert_eq!(called(&fake, "mail.activity", "action_feedback"), 1);
        assert_eq!(done_messages(&fake).len(), 1, "{protocol}");
        // Nor does a retry of the step that scheduled it open it again.
        erp.activity(20, marker, "Choose a carrier", "Every carrier refused")
            .await
            .unwrap();
        assert_eq!(
            fake_odoo::activities_on(&fake, "stock.picking", 20).len(),
            1
        );
        // None open with that marker (or no activity at all): nothing to do.
        erp.close_activity(20, "[waybill wf-7 never]")
            .await
            .unwrap();
        erp.close_activity(999, marker).await.unwrap();
        assert_eq!(called(&fake, "mail.activity", "action_feedback"), 1);
    }
}

#[tokio::test]
async fn an_activity_carrying_the_marker_in_its_summary_is_closed_too() {
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        fake_odoo::seed(
            &fake,
            [
                json!({"_model": "mail.activity", "id": 900, "res_model": "stock.picking",
                "res_id": 20, "res_name": "WH/OUT/00020", "activity_type_id": [4, "To-Do"],
                "summary": "Call the carrier [waybill s-1]", "note": "<p>by phone</p>",
                "user_id": 2, "active": true, "state": "today"}),
            ],
        );
        erp.close_activity(20, "[waybill s-1]").await.unwrap();
        assert!(
            fake_odoo::activities_on(&fake, "stock.picking", 20).is_empty(),
            "{protocol}"
        );
        assert_eq!(done_messages(&fake).len(), 1);
    }
}

#[test]
fn the_config_refuses_unknown_keys_and_carrier_ids_that_are_not_ids() {
    let e = serde_json::from_value::<OdooErpConfig>(json!({"carier": {}})).unwrap_err();
    assert!(e.to_string().contains("unknown field `carier`"), "{e}");
    let cfg: OdooErpConfig = serde_json::from_value(json!({"carriers": {"ups": 0}})).unwrap();
    assert!(cfg.notify_customer, "customers are told by default");
    let errs = OdooErp::build(&connection("ftp://x", "jsonrpc"), &cfg)
        .err()
        .unwrap();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["connection.url", "carriers.ups"]);
}

#[tokio::test]
async fn a_done_picking_is_invoiced_and_posted_once_per_marker() {
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        validate(&erp).await;
        let marker = "[waybill invoice \"S-1\" & co]";
        let inv = erp.invoice(20, marker).await.unwrap();
        let invoices = fake_odoo::invoices_of(&fake, 25);
        assert_eq!(invoices.len(), 1, "{protocol}: {invoices:#?}");
        let made = &invoices[0];
        assert_eq!(
            inv,
            Invoice {
                id: made["id"].as_i64().unwrap(),
                name: "INV/2026/00001".into(),
                amount: "287.50".into(),
                currency: "USD".into(),
                state: "posted".into(),
            },
            "{protocol}"
        );
        assert_eq!(
            (
                &made["state"],
                &made["amount_total"],
                &made["ref"],
                &made["invoice_origin"]
            ),
            (
                &json!("posted"),
                &json!(287.5),
                &json!("EXT-1"),
                &json!("S00025")
            ),
            "Odoo's own fields are left as Odoo filled them"
        );
        // The marker is an internal note on the invoice (Odoo escapes it).
        let notes = fake_odoo::messages_on(&fake, "account.move", inv.id);
        let ours: Vec<&Value> = notes
            .iter()
            .filter(|m| m["body"].as_str().unwrap().contains(INVOICE_NOTE))
            .collect();
        assert_eq!(ours.len(), 1, "{protocol}: {notes:#?}");
        assert_eq!(ours[0]["subtype_id"], json!([2, "Note"]));
        assert!(ours[0]["body"].as_str().unwrap().contains("WH/OUT/00020"));
        // Everything ran in the picking's company.
        let calls = fake.calls.lock().unwrap().clone();
        for (model, method) in [
            ("sale.advance.payment.inv", "create"),
            ("sale.advance.payment.inv", "create_invoices"),
            ("account.move", "message_post"),
            ("account.move", "action_post"),
        ] {
            let ctx: Vec<&Value> = calls
                .iter()
                .filter(|(m, name, _)| m == model && name == method)
                .map(|(_, _, c)| c)
                .collect();
            assert_eq!(ctx.len(), 1, "{protocol}: {model}.{method}");
            assert_eq!(
                ctx[0]["allowed_company_ids"],
                json!([1]),
                "{model}.{method}"
            );
        }

        // The same step again (a retry after a timeout): the same invoice, nothing new.
        let again = erp.invoice(20, marker).await.unwrap();
        assert_eq!(again, inv, "{protocol}");
        assert_eq!(fake_odoo::invoices_of(&fake, 25).len(), 1);
        assert_eq!(
            called(&fake, "sale.advance.payment.inv", "create_invoices"),
            1
        );
        assert_eq!(called(&fake, "account.move", "action_post"), 1);
        assert_eq!(called(&fake, "account.move", "message_post"), 1);

        // Another marker asks Odoo, which has nothing left to invoice.
        let e = erp
            .invoice(20, "[waybill invoice other]")
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str()),
            (FailureKind::Permanent, "odoo.nothing_to_invoice"),
            "{protocol}: {e}"
        );
    }
}

#[tokio::test]
async fn nothing_is_invoiced_before_the_picking_is_done() {
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        let marker = "[waybill invoice S2]";
        let e = erp.invoice(20, marker).await.unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str()),
            (FailureKind::Permanent, "odoo.nothing_to_invoice"),
            "{protocol}: {e}"
        );
        assert!(
            e.message.contains("S00025")
                && e.message.contains("assigned")
                && e.message.contains("No items are available to invoice"),
            "{e}"
        );
        assert!(fake_odoo::invoices_of(&fake, 25).is_empty());
        assert_eq!(called(&fake, "account.move", "message_post"), 0);

        validate(&erp).await;
        let inv = erp.invoice(20, marker).await.unwrap();
        assert_eq!(
            (inv.state.as_str(), inv.amount.as_str()),
            ("posted", "287.50")
        );
        assert_eq!(fake_odoo::invoices_of(&fake, 25).len(), 1, "{protocol}");
    }
}

#[tokio::test]
async fn a_draft_left_by_a_crash_is_posted_by_the_next_call() {
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        validate(&erp).await;
        let p = erp.picking(20).await.unwrap();
        let ctx = company_context(&p);

        // A crash right after Odoo made the draft, before the port marked it.
        create_invoices(&erp.client, 25, &ctx).await.unwrap();
        let draft = fake_odoo::invoices_of(&fake, 25)[0]["id"].as_i64().unwrap();
        let inv = erp.invoice(20, "[waybill invoice A]").await.unwrap();
        assert_eq!(
            (inv.id, inv.state.as_str()),
            (draft, "posted"),
            "{protocol}"
        );
        assert_eq!(fake_odoo::invoices_of(&fake, 25).len(), 1);
        assert_eq!(
            called(&fake, "sale.advance.payment.inv", "create_invoices"),
            1
        );
        let again = erp.invoice(20, "[waybill invoice A]").await.unwrap();
        assert_eq!(again, inv, "{protocol}: taken over under its marker");
    }
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        validate(&erp).await;
        let p = erp.picking(20).await.unwrap();
        let ctx = company_context(&p);

        // A crash after the draft was marked, before it was posted.
        let action = create_invoices(&erp.client, 25, &ctx).await.unwrap();
        let draft = action["res_id"].as_i64().unwrap();
        erp.claim(draft, &p, "[waybill invoice B]", &ctx)
            .await
            .unwrap();
        // Another marker does not take a draft the port made for someone else.
        let e = erp.invoice(20, "[waybill invoice C]").await.unwrap_err();
        assert_eq!(e.code, "odoo.nothing_to_invoice", "{protocol}: {e}");
        assert_eq!(fake_odoo::invoices_of(&fake, 25)[0]["state"], "draft");

        let inv = erp.invoice(20, "[waybill invoice B]").await.unwrap();
        assert_eq!(
            (inv.id, inv.name.as_str(), inv.state.as_str()),
            (draft, "INV/2026/00001", "posted"),
            "{protocol}"
        );
        assert_eq!(fake_odoo::invoices_of(&fake, 25).len(), 1);
        assert_eq!(called(&fake, "account.move", "action_post"), 1);
    }
}

#[tokio::test]
async fn a_picking_without_a_sale_order_is_not_invoiced() {
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        let mut p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
        p["sale_id"] = json!(false);
        p["state"] = json!("done");
        fake_odoo::seed(&fake, [p]);
        let e = erp.invoice(20, "m").await.unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str()),
            (FailureKind::Permanent, "odoo.no_sale_order"),
            "{protocol}: {e}"
        );
        assert_eq!(called(&fake, "sale.advance.payment.inv", "create"), 0);
    }
}

#[test]
fn amounts_are_printed_with_the_currencys_decimals() {
    assert_eq!(money(287.5, 2), "287.50");
    assert_eq!(money(0.1 + 0.2, 2), "0.30");
    assert_eq!(money(287.499_999_999_999_97, 2), "287.50");
    assert_eq!(money(-0.001, 2), "0.00");
    assert_eq!(money(-12.5, 2), "-12.50");
    assert_eq!(money(1500.0, 0), "1500");
    assert_eq!(money(12.3456, 3), "12.346");
}

#[test]
fn odoos_nothing_to_invoice_is_told_from_other_user_errors() {
    let server = |name: &str, message: &str| OdooError::Server {
        name: name.into(),
        message: message.into(),
    };
    assert!(nothing_to_invoice(&server(
        "odoo.exceptions.UserError",
        fake_odoo::NOTHING_TO_INVOICE
    )));
    assert!(nothing_to_invoice(&server(
        "odoo.exceptions.UserError",
        "There is no invoiceable line. If a product has a Delivered quantities invoicing policy, please make sure that a quantity has been delivered."
    )));
    assert!(!nothing_to_invoice(&server(
        "odoo.exceptions.UserError",
        "The entry INV/2026/00001 (id 27) must be in draft."
    )));
    assert!(!nothing_to_invoice(&server(
        "odoo.exceptions.AccessError",
        "No items are available to invoice"
    )));
}
