//! One physical shipment seen by five systems in their own formats, through the real
//! server: the Odoo poller (against the Odoo test double), a 3PL's X12 856, a carrier's
//! X12 214, an EasyPost webhook and a CSV row dropped by the 3PL. Whatever order they
//! arrive in, they are one shipment with one timeline, found by each identifier.

use crate::partners::{post_signed, CONNECTORS};
use crate::*;
use serde_json::Value;
use std::collections::BTreeSet;
use waybill_connectors::easypost::EasyPost;
use waybill_testkit::fake_odoo::{picking, sale_order, start, KEY};
use waybill_testkit::FakePartner;

/// The 856 as the fixture has it: shipment SHIP-1001, PO-4500012345, BOL-55512, two
/// cartons (SSCC 00000614141000000014 with tracking ABCD7781234001, and …021/…002).
fn ship_notice() -> String {
    std::fs::read_to_string(format!("{CONNECTORS}/x12/testdata/856_ship_notice.edi")).unwrap()
}

/// The carrier's 214 for the same freight under its own shipment id (CARRIER-77),
/// naming the PRO and the BOL; its second transaction is another shipment (BOL-55513).
fn status_214() -> String {
    std::fs::read_to_string(format!("{CONNECTORS}/x12/testdata/214_shipment_status.edi"))
        .unwrap()
        .replace(
            "B10*PRO7781234*SHIP-1001*ABCD",
            "B10*PRO7781234*CARRIER-77*ABCD",
        )
}

/// EasyPost's out-for-delivery webhook for the first carton's tracking number.
fn webhook() -> Vec<u8> {
    std::fs::read_to_string(format!(
        "{CONNECTORS}/easypost/testdata/out_for_delivery.json"
    ))
    .unwrap()
    .replace("1Z999AA10123456784", "ABCD7781234001")
    .into_bytes()
}

const CSV: &str = "sscc,status,at\n(00)000614141000000014,DELIVERED,2026-03-11T18:42:00Z\n";

async fn hub(drop_dir: &std::path::Path, dir: tempfile::TempDir, odoo_url: &str) -> TestHub {
    let sink = FakePartner::start().await;
    let mut toml = config_toml(&dir.path().join("hub.db"), &sink.url("hook"), "");
    toml.push_str(&format!(
        r#"
[sources.odoo]
type = "odoo"
poll = "200ms"
[sources.odoo.connection]
url = "{odoo_url}"
database = "logistics"
login = "middleware"
api_key = "plain:{KEY}"
[sources.edi]
type = "x12"
auth = {{ type = "api_key", keys = ["plain:edi-key"] }}
local_time_offset = "-05:00"
[sources.easypost]
type = "easypost"
secret = "plain:{EASYPOST_SECRET}"
[sources.threepl]
type = "file_drop"
dir = "{dir}"
formats = ["csv"]
poll = "50ms"
mapping = '''
{{type: "shipment.delivered", subject: ("3pl:" + .sscc), time: .at, code: .status, refs: {{sscc: .sscc}}}}
'''
"#,
        dir = drop_dir.display().to_string().replace('\\', "/"),
        EASYPOST_SECRET = crate::partners::EASYPOST_SECRET,
    ));
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    TestHub::from_parts(cfg, listener, dir)
}

async fn post_edi(hub: &TestHub, body: String) {
    let r = hub
        .client
        .post(format!("{}/v1/ingest/edi", hub.base))
        .bearer_auth("edi-key")
        .body(body)
        .send()
        .await
        .unwrap();
    // 202, or 200 for an interchange sent again.
    assert!(r.status() == 202 || r.status() == 200, "{}", r.status());
}

async fn wait_for(hub: &TestHub, path: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = Value::Null;
    loop {
        let r = hub
            .client
            .get(format!("{}{path}", hub.base))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            let v: Value = r.json().await.unwrap();
            if ok(&v) {
                return v;
            }
            last = v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {last:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The parts of a shipment that must not depend on arrival order.
fn outcome(v: &Value) -> (String, Vec<String>, String, BTreeSet<String>) {
    let partner_events = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["event"]["type"] != "shipment.linked")
        .map(|t| t["event"]["id"].as_str().unwrap().to_owned())
        .collect();
    let lanes = v["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    (
        v["state"]["key"].as_str().unwrap().to_owned(),
        lanes,
        v["state"]["milestone"].as_str().unwrap().to_owned(),
        partner_events,
    )
}

async fn run(order: &[usize]) -> (String, Vec<String>, String, BTreeSet<String>) {
    let (odoo_url, fake) = start(18).await;
    // Odoo has the picking only from step 0 on (the poller reads every 200 ms).
    *fake.records.lock().unwrap() = Some(vec![]);
    let dir = tempfile::tempdir().unwrap();
    let drop_dir = dir.path().join("drop");
    std::fs::create_dir_all(&drop_dir).unwrap();
    let hub = hub(&drop_dir, dir, &odoo_url).await;
    let mut csv_files = 0;
    for step in order {
        match step {
            0 => {
                *fake.records.lock().unwrap() = Some(vec![
                    picking(20, "assigned", "2026-03-08 07:00:00"),
                    sale_order(25, "S00025", Some("PO-4500012345")),
                ]);
                wait_for(&hub, "/v1/shipments/odoo.picking_id:20", "the poll", |_| {
                    true
                })
                .await;
            }
            1 => post_edi(&hub, ship_notice()).await,
            2 => post_edi(&hub, status_214()).await,
            3 => {
                let status = post_signed(&hub, &EasyPost, webhook()).await.status();
                assert!(status == 202 || status == 200, "{status}");
            }
            _ => {
                csv_files += 1;
                let name = format!("pod{csv_files}");
                std::fs::write(drop_dir.join(format!("{name}.tmp")), CSV).unwrap();
                std::fs::rename(
                    drop_dir.join(format!("{name}.tmp")),
                    drop_dir.join(format!("{name}.csv")),
                )
                .unwrap();
                let done = drop_dir.join(format!("done/{name}.csv"));
                let deadline = tokio::time::Instant::now() + WAIT;
                while !done.exists() {
                    assert!(tokio::time::Instant::now() < deadline, "the CSV file");
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }
    }
    let v = wait_for(
        &hub,
        "/v1/shipments/odoo:logistics:picking:20",
        "one shipment of five lanes",
        |v| v["lanes"].as_array().is_some_and(|l| l.len() == 5),
    )
    .await;
    // Found by each system's identifier.
    for alias in [
        "tracking:ABCD7781234001",
        "ABCD7781234001",
        "bol:BOL-55512",
        "pro:ABCD:PRO7781234",
        "sscc:000614141000000014",
        "po:PO-4500012345",
        "odoo.picking_id:20",
        "x12:ABCD:CARRIER-77",
        "3pl:(00)000614141000000014",
    ] {
        let found = hub.get(&format!("/v1/shipments/{alias}")).await;
        assert_eq!(
            found["state"]["key"], "odoo:logistics:picking:20",
            "{alias}"
        );
    }
    // The 214's other shipment stays its own.
    let other = hub.get("/v1/shipments/bol:BOL-55513").await;
    assert_eq!(other["lanes"].as_array().unwrap().len(), 1);
    let order_view = hub.get("/v1/orders/po:PO-4500012345").await;
    assert_eq!(order_view["key"], "odoo.order:S00025");
    assert_eq!(order_view["status"], "delivered");
    hub.stop().await;
    outcome(&v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_systems_one_shipment_in_any_arrival_order() {
    let forward = run(&[0, 1, 2, 3, 4]).await;
    assert_eq!(forward.0, "odoo:logistics:picking:20");
    assert_eq!(forward.2, "delivered");
    assert!(
        forward.1.iter().any(|l| l.starts_with("trk:")),
        "{:?}",
        forward.1
    );
    // 1 release + the 856's events + 5 statuses of the 214 + 1 scan + 1 CSV row
    assert!(forward.3.len() >= 9, "{:?}", forward.3);
    // The carrier first, Odoo last, the CSV in the middle; and some of them twice.
    let backward = run(&[3, 4, 2, 1, 3, 1, 4, 0]).await;
    assert_eq!(backward, forward);
}
