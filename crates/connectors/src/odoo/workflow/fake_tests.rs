#![allow(clippy::unwrap_used)]
//! The fake Odoo the port is tested against answers as a real Odoo 18 (JSON-RPC) and 19
//! (JSON-2) did on loopback (recorded 2026-12-05), seen through the connector's client: how a text body is stored, what a method returning records
//! answers, a field the model does not have, empty fields, a record that does not exist.

use super::tests::{odoo, SERVERS};
use super::*;
use crate::odoo::sink::kw;
use serde_json::json;
use waybill_testkit::fake_odoo;

/// The body of the recorded escaping probe.
const PROBE: &str = "Probe <b>bold?</b> & \"quoted\" 'single' é";

fn server_error(e: OdooError) -> (String, String) {
    match e {
        OdooError::Server { name, message } => (name, message),
        other => panic!("not an Odoo error: {other}"),
    }
}

#[tokio::test]
async fn a_text_body_is_stored_escaped_but_for_its_quotes_and_found_by_them() {
    for (major, protocol) in SERVERS {
        let (erp, _fake) = odoo(major, protocol).await;
        let args = kw(&[
            ("body", json!(PROBE)),
            ("message_type", json!("comment")),
            ("subtype_xmlid", json!("mail.mt_note")),
        ]);
        let answer = erp
            .client
            .call("sale.order", "message_post", Some(&[25]), args)
            .await
            .unwrap();
        // `@api.returns`: the id over JSON-RPC, the recordset's ids over JSON-2.
        let id = match protocol {
            "jsonrpc" => answer.as_i64(),
            _ => answer.as_array().and_then(|a| a[0].as_i64()),
        }
        .unwrap_or_else(|| panic!("{protocol}: {answer}"));
        let found = erp
            .read(
                "mail.message",
                json!([
                    ["model", "=", "sale.order"],
                    ["res_id", "=", 25],
                    ["body", "ilike", "\"quoted\""]
                ]),
                &["body"],
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            found,
            vec![json!({"id": id,
                "body": "<p>Probe &lt;b&gt;bold?&lt;/b&gt; &amp; \"quoted\" 'single' é</p>"})],
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn methods_answering_records_answer_as_each_protocol_does() {
    for (major, protocol) in SERVERS {
        let (erp, fake) = odoo(major, protocol).await;
        let args = kw(&[
            ("act_type_xmlid", json!("mail.mail_activity_data_todo")),
            ("summary", json!("probe")),
            ("note", json!("<p>probe</p>")),
            ("user_id", json!(2)),
        ]);
        let answer = erp
            .client
            .call("stock.picking", "activity_schedule", Some(&[20]), args)
            .await
            .unwrap();
        let id = match protocol {
            "jsonrpc" => answer
                .as_str()
                .and_then(|s| s.strip_prefix("mail.activity("))
                .and_then(|s| s.strip_suffix(",)"))
                .and_then(|s| s.parse::<i64>().ok()),
            _ => answer.as_array().and_then(|a| a[0].as_i64()),
        }
        .unwrap_or_else(|| panic!("{protocol}: {answer}"));
        // `action_feedback` answers the message's id, a number over both.
        let done = erp
            .client
            .call(
                "mail.activity",
                "action_feedback",
                Some(&[id]),
                kw(&[("feedback", json!("closed"))]),
            )
            .await
            .unwrap();
        assert!(done.as_i64().is_some(), "{protocol}: {done}");
        // An XML id that names no subtype: a Note, as Odoo falls back to.
        let args = kw(&[
            ("body", json!("x")),
            ("subtype_xmlid", json!("mail.mt_nope")),
        ]);
        erp.client
            .call("sale.order", "message_post", Some(&[25]), args)
            .await
            .unwrap();
        let posted = fake_odoo::messages_on(&fake, "sale.order", 25);
        assert_eq!(posted[0]["subtype_id"], json!([2, "Note"]), "{protocol}");
    }
}

#[tokio::test]
async fn a_field_the_model_does_not_have_is_odoos_value_error() {
    for (major, protocol) in SERVERS {
        let (erp, _fake) = odoo(major, protocol).await;
        let asked = erp
            .client
            .search_read(
                "stock.picking",
                json!([["id", "=", 20]]),
                &["name", "no_such_field"],
                "id asc",
                0,
                0,
            )
            .await
            .unwrap_err();
        let wording = match major {
            18 => "Invalid field 'no_such_field' on model 'stock.picking'",
            _ => "Invalid field 'no_such_field' on 'stock.picking'",
        };
        assert_eq!(
            server_error(asked),
            ("builtins.ValueError".into(), wording.into()),
            "{protocol}"
        );
        let searched = erp
            .client
            .search_read(
                "stock.picking",
                json!([["no_such_field", "=", 1]]),
                &["name"],
                "id asc",
                0,
                0,
            )
            .await
            .unwrap_err();
        assert_eq!(
            server_error(searched).1,
            "Invalid field stock.picking.no_such_field in leaf ('no_such_field', '=', 1)"
        );
        let written = erp
            .client
            .write("stock.picking", &[20], json!({"no_such_field": 1}))
            .await
            .unwrap_err();
        assert_eq!(
            server_error(written).1,
            "Invalid field 'no_such_field' on model 'stock.picking'"
        );
    }
}

#[tokio::test]
async fn every_field_asked_for_comes_back_empty_as_odoo_reads_it() {
    for (major, protocol) in SERVERS {
        let (erp, _fake) = odoo(major, protocol).await;
        let fields = [
            "note",
            "backorder_id",
            "move_ids",
            "carrier_price",
            "date_done",
        ];
        let rows = erp
            .read("stock.picking", json!([["id", "=", 20]]), &fields, None)
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![
                json!({"id": 20, "note": false, "backorder_id": false, "move_ids": [],
                "carrier_price": 0.0, "date_done": false})
            ],
            "{protocol}"
        );
        let order = erp.one("sale.order", 25, &["picking_ids"]).await.unwrap();
        assert_eq!(order, Some(json!({"id": 25, "picking_ids": [20]})));
    }
}

#[tokio::test]
async fn a_record_that_does_not_exist_is_odoos_missing_error() {
    for (major, protocol) in SERVERS {
        let (erp, _fake) = odoo(major, protocol).await;
        let args = kw(&[("body", json!("x")), ("message_type", json!("comment"))]);
        let e = erp
            .client
            .call("stock.picking", "message_post", Some(&[999999]), args)
            .await
            .unwrap_err();
        assert_eq!(
            server_error(e),
            (
                "odoo.exceptions.MissingError".into(),
                "Record does not exist or has been deleted.\n\
                 (Record: stock.picking(999999,), User: 2)"
                    .into()
            ),
            "{protocol}"
        );
        let e = erp
            .client
            .write("stock.picking", &[999999], json!({"carrier_price": 1.0}))
            .await
            .unwrap_err();
        assert_eq!(
            server_error(e).0,
            "odoo.exceptions.MissingError",
            "{protocol}"
        );
        let e = erp
            .client
            .call("mail.activity", "action_feedback", Some(&[999999]), kw(&[]))
            .await
            .unwrap_err();
        assert!(
            server_error(e)
                .1
                .contains("(Record: mail.activity(999999,), User: 2)"),
            "{protocol}"
        );
    }
}
