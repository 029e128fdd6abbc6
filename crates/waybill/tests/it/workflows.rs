//! order-to-ship end to end: the real hub, a real Karrio server (its `mockship` test
//! carrier refuses purchases on demand), the Odoo test double as the ERP and the poller's
//! source of `order.released`.

use crate::*;
use serde_json::{json, Value};
use std::sync::Arc;
use waybill_testkit::fake_odoo::{self, Fake};
use waybill_testkit::karrio::{self, MockCarrier};
use waybill_testkit::FakePartner;

const LONG: Duration = Duration::from_secs(120);

/// The hub's configuration: the tests' sources and sink, an Odoo poller and sink on the
/// fake, and order-to-ship over Karrio with these carriers and extra rules.
fn workflow_toml(
    db: &std::path::Path,
    sink_url: &str,
    odoo_url: &str,
    k: &karrio::Karrio,
    carriers: &[&str],
    rules: &str,
) -> String {
    let mut toml = config_toml(db, sink_url, "");
    let list = carriers
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let conn = |table: &str| {
        fake_odoo::connection_toml(odoo_url, "auto")
            .replace("[connection]", &format!("[{table}.connection]"))
    };
    let (source_conn, sink_conn) = (conn("sources.odoo"), conn("sinks.odoo"));
    toml.push_str(&format!(
        r#"
[sources.odoo]
type = "odoo"
poll = "200ms"
{source_conn}
[sinks.odoo]
type = "odoo"
{sink_conn}
[workflows]
retry_schedule = ["100ms", "200ms"]
[workflows.karrio]
url = "{}"
api_key = "plain:{}"
[workflows.odoo]
sink = "odoo"
[workflows.order_to_ship]
carriers = [{list}]
{since}
{rules}
"#,
        k.url(),
        k.api_key(),
        // The fake's pickings were released on 2026-11-23: book them (unless the test
        // is about the default, which skips what was released before the first start).
        since = if rules.contains("released_after") {
            ""
        } else {
            "released_after = \"2026-01-01T00:00:00Z\""
        },
    ));
    toml
}

/// A hub running order-to-ship for picking `picking` of the fake Odoo (released, so the poller
/// emits `order.released`), with these Karrio test carriers (in USD, the company's
/// currency) in this order, and extra rules.
struct Setup {
    k: &'static karrio::Karrio,
    carriers: Vec<karrio::Carrier>,
    fake: Arc<Fake>,
    sink: FakePartner,
    hub: TestHub,
}

async fn setup(picking: i64, carriers: Vec<MockCarrier>, rules: &str) -> Setup {
    let k = karrio::server().await;
    let mut made = Vec::new();
    for c in carriers {
        made.push(k.create_carrier(c.currency("USD")).await);
    }
    let (odoo_url, fake) = fake_odoo::start(18).await;
    fake_odoo::seed(&fake, fake_odoo::order_to_ship(picking));
    let sink = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<&str> = made.iter().map(|c| c.carrier_id.as_str()).collect();
    let toml = workflow_toml(
        &dir.path().join("hub.db"),
        &sink.url("hook"),
        &odoo_url,
        k,
        &ids,
        rules,
    );
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    Setup {
        k,
        carriers: made,
        fake,
        sink,
        hub,
    }
}

/// Polls the workflow of `entity` until `pred` holds; returns it (with its history).
async fn wait_workflow(
    hub: &TestHub,
    entity: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + LONG;
    let mut last = Value::Null;
    while std::time::Instant::now() < deadline {
        let list = hub
            .get(&format!("/v1/workflows?entity={entity}&kind=order_to_ship"))
            .await;
        if let Some(id) = list["workflows"][0]["id"].as_str() {
            last = hub.get(&format!("/v1/workflows/{id}")).await;
            if pred(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("workflow of {entity}: {what} did not happen; last: {last:#}");
}

fn steps(wf: &Value) -> Vec<(String, String)> {
    wf["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Labels bought in Karrio under `reference`: its shipments past `draft` (bought, then
/// maybe moved on by a tracker or voided).
async fn bought(k: &karrio::Karrio, reference: &str) -> usize {
    k.shipments(reference)
        .await
        .iter()
        .filter(|s| s["status"] != "draft")
        .count()
}

/// Released in Odoo → quoted → the cheapest carrier refuses → the next books → the
/// picking has the tracking ref, the carrier's price, the label and the customer was told;
/// then the order is cancelled → the label is voided in Karrio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_released_is_booked_with_the_next_carrier_when_the_cheapest_refuses() {
    let Setup {
        k,
        carriers,
        fake,
        sink: _sink,
        hub,
    } = setup(
        20,
        vec![
            MockCarrier::new("cheap")
                .rate("ground", 5.0)
                .fail_purchase(),
            MockCarrier::new("next").rate("ground", 8.0),
            MockCarrier::new("dear").rate("ground", 12.0),
        ],
        "",
    )
    .await;
    let (cheap, next) = (&carriers[0], &carriers[1]);
    let picking = "odoo:logistics:picking:20";
    let wf = wait_workflow(&hub, picking, "booked", |w| {
        w["stage"] == "booked" && w["status"] == "waiting"
    })
    .await;
    let booked = &wf["state"]["booked"];
    assert_eq!(booked["carrier"], next.carrier_id.as_str(), "{wf:#}");
    assert_eq!(
        wf["state"]["tried"][0]["carrier"],
        cheap.carrier_id.as_str()
    );
    assert_eq!(wf["state"]["tried"][0]["code"], "MOCK_PURCHASE_REJECTED");
    let s = steps(&wf);
    assert!(s.contains(&("buy".into(), "failed".into())), "{s:?}");
    assert!(s.contains(&("buy".into(), "ok".into())), "{s:?}");
    assert!(s.contains(&("record_booking".into(), "ok".into())), "{s:?}");
    let tracking = booked["tracking_number"].as_str().unwrap().to_owned();
    let reference = format!("wb:{picking}");
    // Karrio has exactly one bought label for the order.
    assert_eq!(bought(k, &reference).await, 1);

    // Odoo: tracking ref, shipping cost, the label attached, the customer told.
    let p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
    assert_eq!(p["carrier_tracking_ref"], tracking.as_str());
    assert_eq!(p["carrier_price"], 8.0);
    let labels = fake_odoo::attachments_on(&fake, "stock.picking", 20);
    assert_eq!(labels.len(), 1, "{labels:?}");
    use base64::Engine as _;
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(labels[0]["datas"].as_str().unwrap())
        .unwrap();
    assert!(pdf.starts_with(b"%PDF"), "a PDF label");
    let told = fake_odoo::messages_on(&fake, "sale.order", 25);
    assert!(
        told.iter()
            .any(|m| m["body"].as_str().unwrap_or("").contains(&tracking)),
        "{told:?}"
    );
    // The same label is kept by the hub.
    let wf_id = wf["id"].as_str().unwrap();
    let label = hub
        .client
        .get(format!(
            "{}/v1/workflows/{wf_id}/documents/label:{}",
            hub.base,
            booked["booking_id"].as_str().unwrap()
        ))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(label.headers()["content-type"], "application/pdf");
    assert_eq!(label.bytes().await.unwrap().as_ref(), pdf.as_slice());
    // The shipment got shipment.booked and shipment.label_created, found by tracking number.
    let ship = hub.get(&format!("/v1/shipments/{tracking}")).await;
    let types: Vec<&str> = ship["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"]["type"].as_str())
        .collect();
    assert!(
        types.contains(&"shipment.booked") && types.contains(&"shipment.label_created"),
        "{types:?}"
    );
    assert_eq!(ship["state"]["milestone"], "labelled");

    // Cancelled in Odoo after booking: the label is voided in Karrio, a note in Odoo.
    let mut p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
    p["state"] = json!("cancel");
    p["write_date"] = json!("2026-11-23 08:00:00");
    fake_odoo::seed(&fake, [p]);
    let wf = wait_workflow(&hub, picking, "cancelled", |w| w["status"] == "cancelled").await;
    assert!(steps(&wf).contains(&("void".into(), "ok".into())));
    let shp = k.shipment(booked["booking_id"].as_str().unwrap()).await;
    assert_eq!(shp["status"], "cancelled", "voided in Karrio: {shp}");
    let notes = fake_odoo::messages_on(&fake, "stock.picking", 20);
    assert!(
        notes
            .iter()
            .any(|m| m["body"].as_str().unwrap_or("").contains("voided")),
        "{notes:?}"
    );
    hub.stop().await;
}

/// Every carrier the rules allow refuses → a `choose_carrier` task (and an Odoo
/// activity); a person chooses the carrier the price ceiling had left out → booked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_refusing_opens_a_task_and_the_chosen_carrier_books() {
    let Setup {
        k,
        carriers,
        fake,
        sink,
        hub,
    } = setup(
        21,
        vec![
            MockCarrier::new("refa").rate("ground", 5.0).fail_purchase(),
            MockCarrier::new("refb").rate("ground", 6.0).fail_purchase(),
            MockCarrier::new("pricey").rate("ground", 60.0),
        ],
        "max_price = \"50.00\"",
    )
    .await;
    let pricey = &carriers[2];
    let picking = "odoo:logistics:picking:21";
    let wf = wait_workflow(&hub, picking, "a person asked", |w| {
        w["stage"] == "needs_decision" && w["status"] == "waiting"
    })
    .await;
    assert_eq!(wf["state"]["tried"].as_array().unwrap().len(), 2, "{wf:#}");
    let tasks = hub.get("/v1/tasks?status=open").await;
    let task = &tasks["tasks"][0];
    assert_eq!(task["kind"], "choose_carrier");
    assert_eq!(task["workflow"], wf["id"]);
    assert_eq!(task["detail"]["quotes"].as_array().unwrap().len(), 3);
    let metrics = hub
        .client
        .get(format!("{}/metrics", hub.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("\nwaybill_tasks_open 1\n"), "{metrics}");
    assert!(
        metrics.contains("waybill_workflows{kind=\"order_to_ship\",status=\"waiting\"} 1"),
        "{metrics}"
    );
    assert!(
        !fake_odoo::activities_on(&fake, "stock.picking", 21).is_empty(),
        "an Odoo activity"
    );
    sink.wait_until(LONG, "task.opened and booking_rejected delivered", |got| {
        got.iter().any(|r| r.json()["type"] == "task.opened")
            && got
                .iter()
                .any(|r| r.json()["type"] == "shipment.booking_rejected")
    })
    .await;
    let id = task["id"].as_i64().unwrap();
    let url = |what: &str| format!("{}/v1/tasks/{id}/{what}", hub.base);
    let r = hub
        .client
        .post(url("claim"))
        .bearer_auth(API_KEY)
        .json(&json!({"by": "ana"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = hub
        .client
        .post(url("resolve"))
        .bearer_auth(API_KEY)
        .json(&json!({"by": "bob", "decision": {"carrier": pricey.carrier_id}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "claimed by ana");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "api.task_not_open");
    let r = hub.client.post(url("resolve")).bearer_auth(API_KEY)
        .json(&json!({"by": "ana", "decision": {"carrier": pricey.carrier_id}, "reason": "urgent, approved"}))
        .send().await.unwrap();
    assert_eq!(r.status(), 200);
    let wf = wait_workflow(&hub, picking, "booked", |w| {
        w["stage"] == "booked" && w["status"] == "waiting"
    })
    .await;
    assert_eq!(wf["state"]["booked"]["carrier"], pricey.carrier_id.as_str());
    assert_eq!(bought(k, &format!("wb:{picking}")).await, 1);
    let done = hub
        .get(&format!(
            "/v1/tasks?workflow={}",
            wf["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(done["tasks"][0]["status"], "resolved");
    assert_eq!(done["tasks"][0]["resolved_by"], "ana");
    assert_eq!(done["tasks"][0]["reason"], "urgent, approved");
    sink.wait_until(LONG, "task.resolved delivered", |got| {
        got.iter().any(|r| r.json()["type"] == "task.resolved")
    })
    .await;
    hub.stop().await;
}

/// Booked, then delivered: the invoice waits for Odoo's picking to be validated and for the
/// proof of delivery, then is created and posted in Odoo once and announced as
/// `invoice.posted`; the carrier's events, naming only the tracking number, reach the
/// order's workflows through identity resolution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_order_is_invoiced_once_its_picking_and_proof_are_in() {
    let Setup { fake, hub, .. } = setup(
        22,
        vec![MockCarrier::new("inv").rate("ground", 9.0)],
        "[workflows.delivery_to_invoice]\nrequire_pod = true\napproval_above = \"5000.00\"",
    )
    .await;
    let picking = "odoo:logistics:picking:22";
    let wf = wait_workflow(&hub, picking, "booked", |w| w["stage"] == "booked").await;
    let tracking = wf["state"]["booked"]["tracking_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = |ty: &str, key: &str, data: Value| {
        let body = json!({"type": ty, "subject": format!("trk:mockship:{tracking}"), "key": key,
                          "refs": {"tracking": tracking}, "data": data});
        hub.client
            .post(format!("{}/v1/events", hub.base))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
    };
    // Delivered before Odoo validated the picking: the invoice waits.
    assert_eq!(
        post("shipment.delivered", "dl", json!({}))
            .await
            .unwrap()
            .status(),
        202
    );
    let d2i = format!("delivery_to_invoice:{picking}");
    let w = wait_for_id(&hub, &d2i, "waiting for the picking", |w| {
        w["stage"] == "waiting_picking"
    })
    .await;
    assert_eq!(w["state"]["booked_amount"], "9.0");
    assert!(fake_odoo::invoices_of(&fake, 25).is_empty());
    // Odoo validates the picking (the poller emits shipment.dispatched): now the proof is missing.
    let mut p = fake_odoo::record(&fake, "stock.picking", 22).unwrap();
    p["state"] = json!("done");
    p["date_done"] = json!("2026-11-23 09:00:00");
    p["write_date"] = json!("2026-11-23 09:00:00");
    fake_odoo::seed(&fake, [p]);
    wait_for_id(&hub, &d2i, "waiting for documents", |w| {
        w["stage"] == "waiting_documents"
    })
    .await;
    assert!(fake_odoo::invoices_of(&fake, 25).is_empty());
    // The proof of delivery arrives: invoiced and posted once.
    assert_eq!(
        post("pod.captured", "pod", json!({"signed_by": "J. DOE"}))
            .await
            .unwrap()
            .status(),
        202
    );
    let w = wait_for_id(&hub, &d2i, "invoiced", |w| {
        w["stage"] == "invoiced" && w["status"] == "done"
    })
    .await;
    let invoices = fake_odoo::invoices_of(&fake, 25);
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    assert_eq!(invoices[0]["state"], "posted");
    assert_eq!(w["state"]["invoice"]["name"], invoices[0]["name"]);
    let ship = hub.get(&format!("/v1/shipments/{tracking}")).await;
    assert!(ship["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"]["type"] == "invoice.posted"));
    hub.stop().await;
}

async fn wait_for_id(hub: &TestHub, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + LONG;
    let mut last = Value::Null;
    while std::time::Instant::now() < deadline {
        let r = hub
            .client
            .get(format!("{}/v1/workflows/{id}", hub.base))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            last = r.json().await.unwrap();
            if pred(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id}: {what} did not happen; last: {last:#}");
}

/// On its first start the poller reads every ready picking, old ones too: by default
/// order-to-ship books none released before it first ran (they end `skipped`), and that
/// start time is kept, so a restart does not move it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_of_ready_pickings_is_not_booked_on_first_start() {
    let Setup { k, fake, hub, .. } = setup(
        23,
        vec![MockCarrier::new("backlog").rate("ground", 9.0)],
        "# released_after: the default",
    )
    .await;
    let id = "order_to_ship:odoo:logistics:picking:23";
    let w = wait_for_id(&hub, id, "skipped", |w| w["stage"] == "skipped").await;
    assert_eq!(w["status"], "done");
    assert_eq!(bought(k, "wb:odoo:logistics:picking:23").await, 0);
    assert!(fake_odoo::attachments_on(&fake, "stock.picking", 23).is_empty());
    hub.stop().await;
}

/// SIGKILL at random points of 50 order-to-ship workflows (the real binary, the real
/// Karrio): each order is booked exactly once in Karrio (counted by reference), every
/// workflow finishes, every packing timer fires exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_books_each_order_exactly_once() {
    use crate::crash::{free_port, spawn_hub, wait_ready, Hubs};
    use rand::Rng as _;
    const N: i64 = 50;
    let k = karrio::server().await;
    let refuses = k
        .create_carrier(
            MockCarrier::new("crashref")
                .currency("USD")
                .rate("ground", 4.0)
                .fail_purchase(),
        )
        .await;
    let books = k
        .create_carrier(
            MockCarrier::new("crashok")
                .currency("USD")
                .rate("ground", 7.0),
        )
        .await;
    let (odoo_url, fake) = fake_odoo::start(18).await;
    let acme = fake_odoo::customer(46, "ACME Logistics Test");
    fake_odoo::seed(&fake, fake_odoo::order_to_ship(100));
    fake_odoo::seed(
        &fake,
        (1..N).map(|i| fake_odoo::ready_picking(100 + i, &acme)),
    );
    let sink = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = workflow_toml(
        &dir.path().join("hub.db"),
        &sink.url("hook"),
        &odoo_url,
        k,
        &[&refuses.carrier_id, &books.carrier_id],
        "wait_for_packing = true\npacking_timeout = \"1s\"",
    );
    let cfg_path = dir.path().join("waybill.toml");
    std::fs::write(&cfg_path, toml).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut hub = Hubs(vec![spawn_hub(&cfg_path, port)]);
    let get = |path: String| {
        let client = client.clone();
        async move {
            let r = client.get(path).bearer_auth(API_KEY).send().await.ok()?;
            r.json::<Value>().await.ok()
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut kills = 0;
    let mut rng = rand::rng();
    let done = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "not finished after {kills} kills"
        );
        wait_ready(&client, &base).await;
        // Work for a random while: a person resolves every overdue packing by booking
        // with the order's weight; then SIGKILL (up to 12 times), wherever it is.
        let until = std::time::Instant::now()
            + Duration::from_millis(if kills < 12 {
                rng.random_range(300..2500)
            } else {
                30_000
            });
        let mut finished = None;
        while std::time::Instant::now() < until {
            if let Some(tasks) = get(format!("{base}/v1/tasks?status=open&limit=1000")).await {
                for t in tasks["tasks"].as_array().into_iter().flatten() {
                    if t["kind"] == "packing_overdue" {
                        let _ = client
                            .post(format!("{base}/v1/tasks/{}/resolve", t["id"]))
                            .bearer_auth(API_KEY)
                            .json(&json!({"by": "ops", "decision": {"action": "book"}}))
                            .send()
                            .await;
                    }
                }
            }
            if let Some(l) = get(format!(
                "{base}/v1/workflows?kind=order_to_ship&status=waiting&limit=1000"
            ))
            .await
            {
                let booked: Vec<Value> = l["workflows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|w| w["stage"] == "booked")
                    .cloned()
                    .collect();
                if booked.len() == N as usize {
                    finished = Some(booked);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(f) = finished {
            break f;
        }
        hub.0[0].kill().unwrap();
        hub.0[0].wait().unwrap();
        kills += 1;
        hub.0[0] = spawn_hub(&cfg_path, port);
    };
    assert!(kills >= 3, "killed {kills} times");
    for w in &done {
        let entity = w["entity"].as_str().unwrap();
        assert_eq!(
            bought(k, &format!("wb:{entity}")).await,
            1,
            "{entity}: booked exactly once in Karrio"
        );
        assert_eq!(w["state"]["booked"]["carrier"], books.carrier_id.as_str());
        let tasks = get(format!(
            "{base}/v1/tasks?workflow={}",
            w["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
        let overdue = tasks["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "packing_overdue")
            .count();
        assert_eq!(overdue, 1, "{entity}: the packing timer fired once");
    }
    // Every picking got its tracking reference and exactly one label.
    for i in 0..N {
        let p = fake_odoo::record(&fake, "stock.picking", 100 + i).unwrap();
        assert!(
            p["carrier_tracking_ref"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{p}"
        );
        assert_eq!(
            fake_odoo::attachments_on(&fake, "stock.picking", 100 + i).len(),
            1
        );
    }
    // The workbench decisions are in the audit trail, and its chain survived the kills.
    let resolved = get(format!("{base}/v1/audit?action=task.resolve&limit=1000"))
        .await
        .unwrap();
    assert!(
        !resolved["records"].as_array().unwrap().is_empty(),
        "{resolved}"
    );
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args(["audit", "verify", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    eprintln!("order-to-ship crash test: {N} workflows booked once each across {kills} kills");
}
