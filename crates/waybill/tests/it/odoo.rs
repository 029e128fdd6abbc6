//! Odoo through the real server: the poller emits `order.released`, a webhook (a hint)
//! makes the hub re-read the record at once, and neither duplicates the other; an
//! advance ship notice posted to the hub ships its quantities in Odoo.

use crate::*;
use waybill_testkit::fake_odoo::{picking, start, KEY};
use waybill_testkit::FakePartner;

const TOKEN: &str = "odoo-webhook-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_and_webhook_together_emit_each_state_once() {
    let (odoo_url, fake) = start(18).await;
    *fake.records.lock().unwrap() = Some(vec![picking(20, "assigned", "2026-11-23 07:00:00")]);
    let sink = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut toml = config_toml(&dir.path().join("hub.db"), &sink.url("hook"), "");
    toml.push_str(&format!(
        r#"
[sources.odoo]
type = "odoo"
poll = "1h"
hint_delay = "50ms"
webhook_tokens = ["plain:{TOKEN}"]
[sources.odoo.connection]
url = "{odoo_url}"
database = "logistics"
login = "middleware"
api_key = "plain:{KEY}"
"#
    ));
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    let key = "/v1/shipments/odoo:logistics:picking:20";
    // the first poll (at start) emits order.released
    sink.wait_until(WAIT, "order.released delivered", |got| {
        got.iter().any(|r| r.json()["type"] == "order.released")
    })
    .await;
    assert_eq!(hub.get(key).await["state"]["milestone"], "released");

    // Odoo validates the picking; its automation rule posts (twice, as Odoo may), before
    // committing: the payload says done, the hub re-reads and only then emits.
    fake.records.lock().unwrap().as_mut().unwrap()[0] = picking(20, "done", "2026-11-23 07:09:02");
    let hook = serde_json::json!({"_action": "Send Webhook Notification(#452)", "_id": 20, "_model": "stock.picking",
        "id": 20, "state": "done", "write_date": "2026-11-23 07:09:02.806215"});
    let url = format!("{}/v1/ingest/odoo/{TOKEN}", hub.base);
    let r = hub.client.post(&url).json(&hook).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let r = hub.client.post(&url).json(&hook).send().await.unwrap();
    assert_eq!(r.status(), 200, "the same webhook again is a duplicate");
    // Odoo sends the record's previous write_date: a later change with the same stale
    // write_date is a new hint, not a duplicate.
    let mut later = hook.clone();
    later["carrier_tracking_ref"] = serde_json::json!("1Z999");
    let r = hub.client.post(&url).json(&later).send().await.unwrap();
    assert_eq!(r.status(), 202, "another change is kept in the inbox");
    let r = hub
        .client
        .post(format!(
            "{}/v1/ingest/odoo/wrong-token-0000000000",
            hub.base
        ))
        .json(&hook)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    sink.wait_until(WAIT, "shipment.dispatched delivered", |got| {
        got.iter()
            .any(|r| r.json()["type"] == "shipment.dispatched")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = hub.get(key).await;
    assert_eq!(v["state"]["milestone"], "dispatched");
    let types: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["order.released", "shipment.dispatched"]);
    assert_eq!(
        v["xrefs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["kind"] == "odoo.picking")
            .count(),
        1
    );
    assert_eq!(sink.accepted().len(), 2, "each state delivered once");
    hub.stop().await;
}

fn burst_sink(url: &str, protocol: &str) -> waybill_connectors::odoo::OdooSinkConfig {
    let conn = waybill_testkit::fake_odoo::connection_toml(url, protocol);
    toml::from_str(&format!("pickings_in_flight = 16\n{conn}")).unwrap()
}

/// A burst of carrier events drains into Odoo with far fewer requests than events: the
/// events of each picking are coalesced into one set of writes (one note listing them
/// all), and the reads of concurrent pickings share requests. Without coalescing this
/// story costs ~1.8 requests per event (`cargo bench -p waybill --bench odoo_burst`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_carrier_events_is_coalesced_into_few_odoo_requests() {
    use waybill::odoo_burst::{run, Target};
    use waybill_testkit::fake_odoo::records_of;
    for (major, protocol) in [(18, "jsonrpc"), (19, "json2")] {
        let (url, fake) = start(major).await;
        let n = 60;
        *fake.records.lock().unwrap() = Some(
            (1..=n)
                .map(|i| {
                    // One sale order per picking, as in practice.
                    let mut p = picking(i, "assigned", "2026-11-23 07:00:00");
                    p["sale_id"] = serde_json::json!([100_000 + i, format!("S{i:05}")]);
                    p
                })
                .collect(),
        );
        let dir = tempfile::tempdir().unwrap();
        let targets: Vec<Target> = (1..=n).map(|id| Target { id }).collect();
        let r = run(&burst_sink(&url, protocol), &targets, 5, dir.path())
            .await
            .unwrap();
        assert_eq!((r.events, r.delivered, r.dead), (300, 300, 0), "{r:?}");
        assert!(
            r.per_event() < 1.0,
            "{protocol}: {} requests for {} events",
            r.requests,
            r.events
        );
        let pickings = records_of(&fake, "stock.picking");
        assert!(pickings.iter().all(|p| p["state"] == "done"
            && p["carrier_tracking_ref"]
                .as_str()
                .unwrap()
                .starts_with("1ZB")));
        let notes: Vec<_> = records_of(&fake, "mail.message")
            .into_iter()
            .filter(|m| m["model"] == "stock.picking")
            .collect();
        assert_eq!(notes.len(), n as usize, "one note per picking");
        assert!(notes
            .iter()
            .all(|m| m["body"].as_str().unwrap().matches("[waybill ").count() == 5));
        println!("{protocol}: {r:?} → {:.2} requests/event", r.per_event());
    }
}

/// An advance ship notice (the drafts an X12 856 becomes, posted to `/v1/events`) reaches
/// Odoo through the sink: the picking is found by the customer's PO number, validated
/// for the 6 units shipped of 10, and Odoo keeps the other 4 in a backorder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asn_posted_to_the_hub_ships_6_of_10_in_odoo_with_a_backorder_of_4() {
    use serde_json::json;
    use waybill_testkit::fake_odoo::{product, records_of, sale_order, stock_move};
    let (odoo_url, fake) = start(18).await;
    *fake.records.lock().unwrap() = Some(vec![
        picking(20, "assigned", "2026-11-23 07:00:00"),
        sale_order(25, "S00025", Some("PO-4500012345")),
        product(51, "ASN-W1", Some("012345678905")),
        stock_move(44, 20, 51, 10.0),
    ]);
    let ops = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut toml = config_toml(&dir.path().join("hub.db"), &ops.url("hook"), "");
    toml.push_str(&format!(
        r#"
[sinks.odoo]
type = "odoo"
coalesce_window = "50ms"
[sinks.odoo.connection]
url = "{odoo_url}"
database = "logistics"
login = "middleware"
api_key = "plain:{KEY}"
[[subscriptions]]
name = "edi-to-odoo"
sink = "odoo"
types = ["warehouse.*", "shipment.*"]
"#
    ));
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    let refs = json!({"po": "PO-4500012345", "scac": "ABCD", "shipment_id": "SHIP-1001"});
    let data = json!({"lines": [{"ids": {"upc": "012345678905", "sku": "ASN-W1"}, "shipped": 6,
        "ordered": 10, "backordered": 4, "unit": "EA", "po": "PO-4500012345"}],
        "totals": {"shipped_units": 6, "ordered_units": 10, "backordered_units": 4}, "partial": true});
    let drafts = json!([
        {"type": "warehouse.packed", "subject": "x12:ABCD:SHIP-1001", "time": "2026-03-09T06:45:00Z",
         "refs": refs, "data": data},
        {"type": "shipment.dispatched", "subject": "x12:ABCD:SHIP-1001", "time": "2026-03-09T07:30:00Z",
         "refs": refs, "data": data}
    ]);
    let r = hub
        .client
        .post(format!("{}/v1/events", hub.base))
        .bearer_auth(API_KEY)
        .json(&drafts)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = tokio::time::Instant::now() + WAIT;
    while records_of(&fake, "stock.picking").len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no backorder in Odoo"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pickings = records_of(&fake, "stock.picking");
    assert_eq!(pickings[0]["state"], "done");
    assert_eq!(pickings[1]["backorder_id"][0], 20);
    let moves = records_of(&fake, "stock.move");
    let qty = |p: i64| {
        moves
            .iter()
            .filter(|m| m["picking_id"][0] == p)
            .map(|m| m["product_uom_qty"].as_f64().unwrap())
            .sum::<f64>()
    };
    assert_eq!(
        (qty(20), qty(pickings[1]["id"].as_i64().unwrap())),
        (6.0, 4.0)
    );
    hub.stop().await;
}

/// A carrier scan that names only a tracking number updates the right picking once an ASN
/// naming the order (as its PO) with that tracking number on a package has linked it to
/// the picking the poller reported: the sink finds the picking through the resolved
/// shipment, not through the scan (which Odoo cannot match: no picking has that number).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_naming_only_a_tracking_number_updates_the_linked_picking() {
    use serde_json::json;
    use waybill_testkit::fake_odoo::{records_of, sale_order};
    let (odoo_url, fake) = start(18).await;
    let mut other = picking(21, "assigned", "2026-11-23 07:00:00");
    other["sale_id"] = json!([26, "S00026"]);
    *fake.records.lock().unwrap() = Some(vec![
        picking(20, "assigned", "2026-11-23 07:00:00"),
        other,
        sale_order(25, "S00025", None),
        sale_order(26, "S00026", None),
    ]);
    let ops = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut toml = config_toml(&dir.path().join("hub.db"), &ops.url("hook"), "");
    toml.push_str(&format!(
        r#"
[sinks.odoo]
type = "odoo"
coalesce_window = "50ms"
[sinks.odoo.connection]
url = "{odoo_url}"
database = "logistics"
login = "middleware"
api_key = "plain:{KEY}"
[[subscriptions]]
name = "scans-to-odoo"
sink = "odoo"
types = ["shipment.in_transit"]
"#
    ));
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    let post = |drafts: serde_json::Value| {
        hub.client
            .post(format!("{}/v1/events", hub.base))
            .bearer_auth(API_KEY)
            .json(&drafts)
            .send()
    };
    // What the poller reports, the 3PL's ASN, then the carrier's scan.
    for drafts in [
        json!({"type": "order.released", "subject": "odoo:logistics:picking:20",
               "time": "2026-11-23T07:00:00Z",
               "refs": {"odoo.picking_id": "20", "odoo.order": "S00025"}}),
        json!({"type": "warehouse.packed", "subject": "x12:ABCD:SH-9", "time": "2026-11-23T08:00:00Z",
               "refs": {"po": "S00025", "bol": "BOL-9"},
               "data": {"packages": [{"sscc": "006141410000000123", "tracking": "1ZLINK0001"}]}}),
        json!({"type": "shipment.in_transit", "subject": "trk:ups:1ZLINK0001",
               "time": "2026-11-23T09:00:00Z", "refs": {"tracking": "1ZLINK0001", "carrier": "UPS"}}),
    ] {
        assert_eq!(post(drafts).await.unwrap().status(), 202);
    }
    let found = hub.get("/v1/shipments/tracking:1ZLINK0001").await;
    assert_eq!(found["state"]["key"], "odoo:logistics:picking:20");
    assert_eq!(
        found["lanes"],
        json!([
            "odoo:logistics:picking:20",
            "trk:ups:1ZLINK0001",
            "x12:ABCD:SH-9"
        ])
    );
    // In transit: a chatter note on picking 20 (the default action), none on 21.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let notes = records_of(&fake, "mail.message");
        let on = |id: i64| {
            notes
                .iter()
                .filter(|n| n["model"] == "stock.picking" && n["res_id"] == id)
                .count()
        };
        if on(20) > 0 {
            assert_eq!(on(21), 0, "the other order's picking is untouched");
            let body = notes.iter().find(|n| n["res_id"] == 20).unwrap()["body"].to_string();
            assert!(body.contains("trk:ups:1ZLINK0001"), "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no note on picking 20: {notes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let order = hub.get("/v1/orders/odoo.order:S00025").await;
    assert_eq!(order["shipments"].as_array().unwrap().len(), 1);
    assert_eq!(order["status"], "shipped");
    hub.stop().await;
}
