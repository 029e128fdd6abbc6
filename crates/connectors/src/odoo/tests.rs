#![allow(clippy::unwrap_used)]
//! The client against a protocol-faithful fake Odoo: the request and answer shapes are
//! those recorded from a real Odoo 18 in ../shared/design/ODOO.md §3 (errors with HTTP
//! 200 and `error.data.name`, no `result` key for None, `false` for empty fields,
//! many2one as `[id, name]`).

use super::*;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use waybill_engine::secret::SecretRef;
use waybill_model::FailureKind;
use waybill_testkit::fake_odoo::{picking, start, KEY};

fn client(url: &str, key: &str, protocol: &str, concurrency: usize) -> OdooClient {
    OdooClient::build(&OdooConfig {
        url: url.into(),
        database: "logistics".into(),
        login: "middleware".into(),
        api_key: SecretRef(format!("plain:{key}")),
        protocol: protocol.into(),
        timeout: Duration::from_secs(2),
        max_concurrency: concurrency,
    })
    .unwrap()
}

#[tokio::test]
async fn detects_the_protocol_from_the_server_version() {
    let (u18, _) = start(18).await;
    assert_eq!(
        client(&u18, KEY, "auto", 2).protocol().await.unwrap(),
        Protocol::JsonRpc
    );
    let (u19, _) = start(19).await;
    assert_eq!(
        client(&u19, KEY, "auto", 2).protocol().await.unwrap(),
        Protocol::Json2
    );
    assert_eq!(
        client(&u19, KEY, "jsonrpc", 2).protocol().await.unwrap(),
        Protocol::JsonRpc
    );
}

#[tokio::test]
async fn reads_and_writes_over_jsonrpc_with_odoo_value_shapes() {
    let (url, _) = start(18).await;
    let c = client(&url, KEY, "auto", 2);
    assert_eq!(c.uid().await.unwrap(), 2);
    let rows = c
        .search_read(
            "stock.picking",
            json!([["write_date", ">=", "2026-11-23 07:00:00"]]),
            &["name", "state"],
            "write_date asc, id asc",
            200,
            0,
        )
        .await
        .unwrap();
    assert_eq!(rows[0]["carrier_id"], json!([1, "Standard delivery"]));
    assert_eq!(rows[0]["carrier_tracking_ref"], json!(false));
    assert_eq!(
        c.write(
            "stock.picking",
            &[20],
            json!({"carrier_tracking_ref": "1Z999"})
        )
        .await
        .unwrap(),
        json!(true)
    );
    // a method returning None: no `result` key
    assert_eq!(
        c.call(
            "stock.quant",
            "action_apply_inventory",
            Some(&[7]),
            Map::new()
        )
        .await
        .unwrap(),
        Value::Null
    );
}

#[tokio::test]
async fn odoo_errors_are_classified_and_keep_the_message() {
    let (url, _) = start(18).await;
    let c = client(&url, KEY, "auto", 2);
    let e = c
        .call("stock.picking", "button_validate", Some(&[20]), Map::new())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (FailureKind::Permanent, "odoo.user_error")
    );
    assert!(e.to_string().contains("no quantities are reserved"), "{e}");
    let e = c
        .write("res.partner", &[1], json!({"name": "x"}))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (FailureKind::Retryable, "odoo.serialization_failure")
    );
    let e = c
        .call("no.such.model", "read", Some(&[1]), Map::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), FailureKind::Permanent);
    // a wrong key: login refused (authenticate answers false), an auth failure
    let bad = client(&url, "wrong", "auto", 2);
    let e = bad
        .call("stock.picking", "write", Some(&[20]), Map::new())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (FailureKind::Auth, "odoo.login_refused")
    );
    // 502 from a proxy and a refused connection are retryable
    let proxy = client(&format!("{url}/bad"), KEY, "jsonrpc", 2);
    assert_eq!(
        proxy.version().await.unwrap_err().kind(),
        FailureKind::Retryable
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = client(&format!("http://127.0.0.1:{port}"), KEY, "jsonrpc", 2);
    let e = down.version().await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (FailureKind::Retryable, "odoo.unreachable")
    );
}

#[tokio::test]
async fn json2_calls_use_named_arguments_and_bearer_keys() {
    let (url, _) = start(19).await;
    let c = client(&url, KEY, "auto", 2);
    assert_eq!(
        c.write(
            "stock.picking",
            &[20],
            json!({"carrier_tracking_ref": "1Z"})
        )
        .await
        .unwrap(),
        json!(true)
    );
    let e = c
        .call("stock.picking", "button_validate", Some(&[20]), Map::new())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "odoo.user_error");
    let bad = client(&url, "wrong", "json2", 2);
    let e = bad
        .write("stock.picking", &[20], json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), FailureKind::Auth, "{e:?}");
}

#[tokio::test]
async fn requests_in_flight_stay_under_the_limit() {
    let (url, fake) = start(18).await;
    let c = Arc::new(client(&url, KEY, "jsonrpc", 2));
    c.uid().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.write("stock.picking", &[20], json!({})).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(fake.max_in_flight.load(Ordering::SeqCst) <= 2);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 2);
}

#[test]
fn bad_configuration_is_reported() {
    let errs = OdooClient::build(&OdooConfig {
        url: "erp.example.com".into(),
        database: "x".into(),
        login: "x".into(),
        api_key: SecretRef("nope".into()),
        protocol: "xmlrpc".into(),
        timeout: Duration::from_secs(1),
        max_concurrency: 1,
    })
    .err()
    .unwrap();
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_skips_nothing_and_emits_nothing_twice() {
    let (url, fake) = start(18).await;
    *fake.records.lock().unwrap() = Some(vec![
        picking(20, "assigned", "2026-11-23 07:00:00"),
        picking(21, "draft", "2026-11-23 07:00:00"),
        picking(22, "cancel", "2026-11-23 07:02:00"),
        json!({"_model": "sale.order", "id": 30, "name": "S00030", "state": "cancel", "picking_ids": [31, 32],
               "company_id": [1, "YourCompany"], "client_order_ref": false, "write_date": "2026-11-23 07:03:00"}),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = waybill_store::Store::open_sqlite(waybill_store::SqliteOptions::new(
        dir.path().join("t.db"),
    ))
    .await
    .unwrap();
    let hub = waybill_engine::Hub::new(store.clone(), Default::default(), Default::default());
    let poller = OdooPoller::build(
        "odoo",
        &OdooSourceConfig {
            connection: OdooConfig {
                url: url.clone(),
                database: "logistics".into(),
                login: "middleware".into(),
                api_key: SecretRef(format!("plain:{KEY}")),
                protocol: "jsonrpc".into(),
                timeout: Duration::from_secs(2),
                max_concurrency: 2,
            },
            poll: Duration::from_secs(1),
            overlap: Duration::from_secs(600),
            page_size: 2,
            webhook_tokens: Vec::new(),
            hint_delay: Duration::from_millis(10),
        },
    )
    .unwrap();
    let milestone = |id: i64| {
        let store = store.clone();
        async move {
            store
                .shipment(&waybill_model::ShipmentKey(mapping::picking_key(
                    "logistics",
                    id,
                )))
                .await
                .unwrap()
                .map(|v| (v.state.milestone.as_str().to_owned(), v.timeline.len()))
        }
    };
    assert_eq!(
        poller.poll_model(&hub, "stock.picking").await.unwrap(),
        3,
        "three pages of two"
    );
    poller.poll_model(&hub, "sale.order").await.unwrap();
    assert_eq!(milestone(20).await, Some(("released".into(), 1)));
    assert_eq!(milestone(21).await, None, "a draft picking emits nothing");
    assert_eq!(milestone(22).await, Some(("cancelled".into(), 1)));
    assert_eq!(milestone(31).await, Some(("cancelled".into(), 1)));
    assert_eq!(
        store.cursor("odoo:stock.picking").await.unwrap().as_deref(),
        Some("2026-11-23 07:02:00")
    );
    {
        let mut recs = fake.records.lock().unwrap();
        let all = recs.as_mut().unwrap();
        // picking 20 shipped later
        all[0] = picking(20, "done", "2026-11-23 07:05:00");
        // a long transaction commits a picking with a write_date older than the cursor
        all.push(picking(23, "assigned", "2026-11-23 07:01:30"));
    }
    for _ in 0..3 {
        poller.poll_model(&hub, "stock.picking").await.unwrap();
    }
    assert_eq!(milestone(20).await, Some(("dispatched".into(), 2)));
    assert_eq!(
        milestone(23).await,
        Some(("released".into(), 1)),
        "caught by the overlap"
    );
    assert_eq!(
        milestone(22).await,
        Some(("cancelled".into(), 1)),
        "re-read, not re-emitted"
    );
    assert_eq!(
        store.cursor("odoo:stock.picking").await.unwrap().as_deref(),
        Some("2026-11-23 07:05:00")
    );
    store.close().await;
}

fn outbox_item(ty: &str, key: &str, refs: Value, minute: u32) -> waybill_store::OutboxItem {
    let draft: waybill_model::EventDraft = serde_json::from_value(json!({
        "type": ty, "subject": "trk:ups:1Z999", "key": key, "refs": refs,
        "time": format!("2026-11-23T10:{minute:02}:00Z"), "code": "X", "text": "status text",
        "location": {"city": "Springfield"}
    }))
    .unwrap();
    let ev = draft
        .into_event(
            0,
            &waybill_model::draft::Origin {
                source: "carrier",
                payload_key: "p",
                received_at: time::OffsetDateTime::UNIX_EPOCH,
                traceparent: None,
            },
        )
        .unwrap();
    waybill_store::OutboxItem {
        id: 1,
        subscription: "odoo".into(),
        sink: "odoo".into(),
        shipment: ev.subject.0.clone(),
        event_id: ev.id.0.clone(),
        attempts: 0,
        next_attempt_at_ms: 0,
        body: Arc::from(serde_json::to_string(&ev).unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_actions_are_applied_once_even_when_replayed() {
    use waybill_engine::partner::Outbound;
    use waybill_testkit::fake_odoo::records_of;
    let (url, fake) = start(18).await;
    let mut partial = picking(40, "assigned", "2026-11-23 07:00:00");
    partial["origin"] = json!("S00040 - EXT-9");
    partial["_partial"] = json!(true);
    let mut p20 = picking(20, "assigned", "2026-11-23 07:00:00");
    p20["origin"] = json!("S00025 - EXT-1");
    *fake.records.lock().unwrap() = Some(vec![
        p20,
        partial,
        json!({"_model": "sale.order", "id": 25, "name": "S00025", "state": "sale", "invoice_status": "to invoice", "invoice_ids": []}),
    ]);
    let sink = OdooSink::build(
        "odoo",
        &OdooSinkConfig {
            connection: OdooConfig {
                url,
                database: "logistics".into(),
                login: "middleware".into(),
                api_key: SecretRef(format!("plain:{KEY}")),
                protocol: "jsonrpc".into(),
                timeout: Duration::from_secs(2),
                max_concurrency: 2,
            },
            actions: [(
                "pod.captured".to_string(),
                vec![Action::Invoice, Action::Chatter],
            )]
            .into(),
            carriers: [("UPS".to_string(), 7)].into(),
            activity_user_id: Some(2),
        },
    )
    .unwrap();
    let refs = json!({"tracking": "1Z999", "carrier": "UPS", "odoo.order": "S00025"});
    let items = vec![
        outbox_item("shipment.label_created", "e1", refs.clone(), 1),
        outbox_item("shipment.dispatched", "e2", refs.clone(), 2),
        outbox_item(
            "shipment.delivery_attempted",
            "e3",
            json!({"tracking": "1Z999"}),
            3,
        ),
        outbox_item("shipment.delivered", "e4", json!({"tracking": "1Z999"}), 4),
        outbox_item(
            "shipment.dispatched",
            "e5",
            json!({"odoo.order": "S00040"}),
            5,
        ),
    ];
    for round in 0..2 {
        for it in &items {
            sink.deliver(it)
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        }
    }
    let pickings = records_of(&fake, "stock.picking");
    let p = pickings.iter().find(|r| r["id"] == 20).unwrap();
    assert_eq!(p["carrier_tracking_ref"], "1Z999");
    assert_eq!(p["carrier_id"], json!(7));
    assert_eq!(p["state"], "done");
    let partial = pickings.iter().find(|r| r["id"] == 40).unwrap();
    assert_eq!(
        partial["state"], "done",
        "validated through the backorder wizard with its context"
    );
    assert!(
        pickings.iter().any(|r| r["backorder_id"][0] == 40),
        "a backorder was created"
    );
    let notes = records_of(&fake, "mail.message");
    assert_eq!(
        notes.len(),
        5,
        "one note per event, none on replay: {notes:#?}"
    );
    assert!(notes
        .iter()
        .all(|m| m["body"].as_str().unwrap().contains("[waybill ")));
    let acts = records_of(&fake, "mail.activity");
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0]["user_id"], json!(2));
    // an event for a shipment Odoo does not know (yet) is retried, not dropped
    let unknown = outbox_item("shipment.dispatched", "e6", json!({"tracking": "NOPE"}), 6);
    assert_eq!(
        sink.deliver(&unknown).await.unwrap_err().kind,
        FailureKind::Retryable
    );
}
