//! Personal data: classified on every event, masked in every view for keys without
//! `read:pii`, in clear with it, and never in the logs (the real binary at debug level,
//! its whole output searched for planted values).

use crate::crash::{free_port, wait_ready};
use crate::*;
use serde_json::{json, Value};
use waybill_testkit::FakePartner;

const NAME: &str = "Zebulon Quartermaine";
const PHONE: &str = "+47 555 01999";
const EMAIL: &str = "zq@plant.example";
const STREET: &str = "17 Plantation Row";

fn planted(text: &str) -> Vec<&'static str> {
    [NAME, PHONE, EMAIL, STREET]
        .into_iter()
        .filter(|p| text.contains(p))
        .collect()
}

async fn get(client: &reqwest::Client, base: &str, path: &str, key: &str) -> (u16, String) {
    let r = client
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn new_key(client: &reqwest::Client, base: &str, scopes: &[&str]) -> String {
    let r: Value = client
        .post(format!("{base}/v1/keys"))
        .bearer_auth(API_KEY)
        .json(&json!({"name": scopes.join("+"), "scopes": scopes}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn personal_data_is_masked_without_read_pii_and_never_logged() {
    let sink = FakePartner::start().await;
    sink.set_default(400); // every delivery dead-letters: its event is in the DLQ view
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hub.toml");
    let toml = config_toml(&dir.path().join("hub.db"), &sink.url("/hook"), FAST_RETRIES)
        .replace("level = \"warn\"", "level = \"debug\"");
    assert!(toml.contains("level = \"debug\""));
    std::fs::write(&cfg, toml).unwrap();
    let log_path = dir.path().join("hub.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "debug")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;

    // Events with personal data (and one without), through the API.
    let events = json!([
        {"type": "shipment.out_for_delivery", "subject": "S-PII", "time": "2026-12-01T09:00:00Z",
         "key": "p1", "refs": {"tracking": "1ZPII"},
         "data": {"recipient": {"name": NAME, "phone": PHONE}, "email": EMAIL,
                  "address": {"street": STREET, "city": "Oslo"}, "parcels": 2}},
        {"type": "shipment.delivered", "subject": "S-PII", "time": "2026-12-01T10:00:00Z",
         "key": "p2", "data": {"pod": {"signed_by": NAME}, "parcels": 2}},
        {"type": "shipment.in_transit", "subject": "S-PUBLIC", "time": "2026-12-01T08:00:00Z",
         "key": "p3", "data": {"parcels": 1}}
    ]);
    let r = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(API_KEY)
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // A payload the carrier mapping rejects, holding the same data: kept in the inbox.
    let bad = json!({"id": "x1", "shipment": "S-PII", "status": "teleported",
        "at": "2026-12-01T11:00:00Z", "recipient": NAME, "phone": PHONE, "email": EMAIL});
    let r = send_signed(&client, &format!("{base}/v1/ingest/carrier"), &bad, "x1").await;
    assert_eq!(r.status().as_u16() / 100, 4);
    let reader = new_key(&client, &base, &["read"]).await;
    let pii = new_key(&client, &base, &["read:pii"]).await;
    let operator = new_key(&client, &base, &["operate"]).await;

    // The events say what they carry.
    let (_, s) = get(&client, &base, "/v1/shipments/S-PII", &pii).await;
    let s: Value = serde_json::from_str(&s).unwrap();
    for t in s["timeline"].as_array().unwrap() {
        assert_eq!(t["event"]["dataclassification"], "confidential", "{t}");
    }
    let (_, p) = get(&client, &base, "/v1/shipments/S-PUBLIC", &pii).await;
    let p: Value = serde_json::from_str(&p).unwrap();
    assert_eq!(p["timeline"][0]["event"]["dataclassification"], "internal");

    // Wait for the dead letters (the sink refuses everything).
    let end = std::time::Instant::now() + WAIT;
    let dead = loop {
        let (_, d) = get(&client, &base, "/v1/dead-letters", &pii).await;
        let d: Value = serde_json::from_str(&d).unwrap();
        if d["dead_letters"].as_array().unwrap().len() >= 3 || std::time::Instant::now() > end {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dl = dead["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["shipment"] == "S-PII")
        .unwrap()["id"]
        .clone();

    // Every view that can carry personal data: masked for read and operate, clear with
    // read:pii (and admin).
    let views = [
        "/v1/shipments/S-PII".to_owned(),
        "/v1/shipments/1ZPII".to_owned(),
        "/v1/inbox?status=rejected".to_owned(),
        format!("/v1/dead-letters/{dl}"),
    ];
    for v in &views {
        for key in [&reader, &operator] {
            let (status, text) = get(&client, &base, v, key).await;
            assert_eq!(status, 200, "{v}: {text}");
            assert!(
                planted(&text).is_empty(),
                "{v} shows {:?} without read:pii: {text}",
                planted(&text)
            );
            assert!(text.contains("***"), "{v}: nothing masked: {text}");
        }
        let (_, text) = get(&client, &base, v, &pii).await;
        assert!(
            !planted(&text).is_empty(),
            "{v} hides personal data from read:pii: {text}"
        );
        let (_, text) = get(&client, &base, v, API_KEY).await;
        assert!(
            !planted(&text).is_empty(),
            "{v} hides personal data from admin"
        );
    }
    let (_, inbox) = get(&client, &base, "/v1/inbox?status=rejected", &reader).await;
    let inbox: Value = serde_json::from_str(&inbox).unwrap();
    let id = inbox["inbox"][0]["id"].clone();
    let (_, rec) = get(&client, &base, &format!("/v1/inbox/{id}"), &reader).await;
    assert!(planted(&rec).is_empty(), "{rec}");

    // A full stop, then the whole log, at debug level: none of it.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.lines().count() > 10,
        "the hub logged almost nothing: {text}"
    );
    assert!(
        text.contains("DEBUG") || text.contains("debug"),
        "not at debug level"
    );
    let leaked = planted(&text);
    assert!(leaked.is_empty(), "the logs carry {leaked:?}");
}

/// Posts canonical events with the admin key; they must be accepted.
async fn post_events(hub: &TestHub, events: &Value) {
    let r = hub
        .client
        .post(format!("{}/v1/events", hub.base))
        .bearer_auth(API_KEY)
        .json(events)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn a_sink_gets_personal_data_only_when_the_configuration_allows_it() {
    let ops = FakePartner::start().await;
    let crm = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}\n[sinks.crm]\ntype = \"http_webhook\"\nurl = \"{}\"\n[[subscriptions]]\nname = \"crm-all\"\nsink = \"crm\"\n[privacy]\npersonal_data_sinks = [\"crm\"]\n",
        config_toml(&dir.path().join("hub.db"), &ops.url("/hook"), FAST_RETRIES),
        crm.url("/hook")
    );
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    let events = json!([
        {"type": "shipment.delivered", "subject": "S-MIN", "time": "2026-12-01T10:00:00Z",
         "key": "m1", "data": {"pod": {"signed_by": NAME, "at": "10:00"}, "parcels": 2}},
        {"type": "shipment.in_transit", "subject": "S-MIN2", "time": "2026-12-01T09:00:00Z",
         "key": "m2", "data": {"parcels": 1}}
    ]);
    post_events(&hub, &events).await;
    ops.wait_until(WAIT, "both events at ops", |r| r.len() == 2)
        .await;
    crm.wait_until(WAIT, "both events at crm", |r| r.len() == 2)
        .await;
    let find = |p: &FakePartner, subject: &str| {
        p.accepted()
            .into_iter()
            .map(|r| r.json())
            .find(|j| j["subject"] == subject)
            .unwrap()
    };
    // Not named: the personal value is masked, the rest of the event kept and signed.
    let masked = find(&ops, "S-MIN");
    assert_eq!(masked["dataclassification"], "confidential");
    assert_eq!(masked["data"]["pod"]["signed_by"], "***", "{masked}");
    assert_eq!(masked["data"]["pod"]["at"], "10:00");
    assert_eq!(masked["data"]["parcels"], 2);
    // Named: the event whole.
    let clear = find(&crm, "S-MIN");
    assert_eq!(clear["data"]["pod"]["signed_by"], NAME, "{clear}");
    assert_eq!(masked["id"], clear["id"]);
    // An event without personal data is the same for both.
    assert_eq!(find(&ops, "S-MIN2"), find(&crm, "S-MIN2"));
    // A sink name that is none is refused at start.
    let bad = toml.replace(
        "personal_data_sinks = [\"crm\"]",
        "personal_data_sinks = [\"crn\"]",
    );
    let err = waybill::Config::parse(&bad, std::iter::empty())
        .unwrap()
        .validate()
        .err()
        .unwrap();
    let all: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert!(
        all.iter()
            .any(|e| e.contains("privacy.personal_data_sinks[0]")),
        "{all:?}"
    );
    hub.stop().await;
}

/// PUTs a subscription through the management API; answers its status and body.
async fn put_subscription(hub: &TestHub, name: &str, body: &Value) -> (u16, Value) {
    let r = hub
        .client
        .put(format!("{}/v1/subscriptions/{name}", hub.base))
        .bearer_auth(API_KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Data minimisation per subscription, with the real hub: the subscription's own
/// `personal_data` wins over its sink's default both ways, and a change through the API
/// holds for the next event, without a restart.
#[tokio::test]
async fn each_subscription_gets_personal_data_as_it_says_and_follows_a_change() {
    let ops = FakePartner::start().await;
    let crm = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    // `ops` is not among the sinks that may have personal data, but its subscription
    // may; `crm` is, but its subscription may not.
    let base = config_toml(&dir.path().join("hub.db"), &ops.url("/hook"), FAST_RETRIES).replace(
        "name = \"ops-all\"\nsink = \"ops\"\n",
        "name = \"ops-all\"\nsink = \"ops\"\npersonal_data = true\n",
    );
    assert!(base.contains("personal_data = true"));
    let toml = format!(
        "{base}\n[sinks.crm]\ntype = \"http_webhook\"\nurl = \"{}\"\n[[subscriptions]]\nname = \"crm-all\"\nsink = \"crm\"\npersonal_data = false\n[privacy]\npersonal_data_sinks = [\"crm\"]\n",
        crm.url("/hook")
    );
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    let event = |subject: &str, key: &str| {
        json!([{"type": "shipment.out_for_delivery", "subject": subject,
            "time": "2026-12-01T09:00:00Z", "key": key,
            "data": {"recipient": {"name": NAME, "phone": PHONE}, "email": EMAIL, "parcels": 2}}])
    };
    let at = |p: &FakePartner, subject: &str| {
        p.accepted()
            .into_iter()
            .map(|r| r.json())
            .find(|j| j["subject"] == subject)
            .unwrap()
    };
    let clear = |ev: &Value| {
        assert_eq!(ev["dataclassification"], "confidential", "{ev}");
        assert_eq!(ev["data"]["recipient"]["name"], NAME, "{ev}");
        assert_eq!(ev["data"]["email"], EMAIL, "{ev}");
    };
    let masked = |ev: &Value| {
        let text = ev.to_string();
        assert!(planted(&text).is_empty(), "{:?} in {text}", planted(&text));
        assert_eq!(ev["data"]["recipient"], "***", "{ev}");
        assert_eq!(ev["data"]["parcels"], 2, "{ev}");
    };
    let setting = |subs: &Value, name: &str| {
        subs["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["personal_data"]
            .clone()
    };
    let subs = hub.get("/v1/subscriptions").await;
    assert_eq!(setting(&subs, "ops-all"), json!(true), "{subs}");
    assert_eq!(setting(&subs, "crm-all"), json!(false), "{subs}");

    post_events(&hub, &event("S-SUB1", "s1")).await;
    ops.wait_until(WAIT, "the first event at ops", |r| r.len() == 1)
        .await;
    crm.wait_until(WAIT, "the first event at crm", |r| r.len() == 1)
        .await;
    clear(&at(&ops, "S-SUB1"));
    masked(&at(&crm, "S-SUB1"));
    assert_eq!(at(&ops, "S-SUB1")["id"], at(&crm, "S-SUB1")["id"]);

    // Flipped through the API: `ops-all` masked, `crm-all` back to its sink's default
    // (allowed). The next event follows, the hub still running.
    let (status, body) = put_subscription(
        &hub,
        "ops-all",
        &json!({"sink": "ops", "personal_data": false}),
    )
    .await;
    assert_eq!(
        (status, &body["personal_data"]),
        (200, &json!(false)),
        "{body}"
    );
    let (status, body) = put_subscription(
        &hub,
        "crm-all",
        &json!({"sink": "crm", "personal_data": null}),
    )
    .await;
    assert_eq!(
        (status, &body["personal_data"]),
        (200, &Value::Null),
        "{body}"
    );
    let one = hub.get("/v1/subscriptions/ops-all").await;
    assert_eq!(one["personal_data"], json!(false), "{one}");
    post_events(&hub, &event("S-SUB2", "s2")).await;
    ops.wait_until(WAIT, "the second event at ops", |r| r.len() == 2)
        .await;
    crm.wait_until(WAIT, "the second event at crm", |r| r.len() == 2)
        .await;
    masked(&at(&ops, "S-SUB2"));
    clear(&at(&crm, "S-SUB2"));
    // The first deliveries were not sent again.
    assert_eq!((ops.accepted().len(), crm.accepted().len()), (2, 2));

    // Not a boolean: refused, through the API and in the file.
    let (status, body) = put_subscription(
        &hub,
        "ops-all",
        &json!({"sink": "ops", "personal_data": "yes"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let bad = toml.replace("personal_data = false", "personal_data = \"no\"");
    let err = waybill::Config::parse(&bad, std::iter::empty())
        .err()
        .unwrap();
    let err = format!("{err:#}");
    assert!(
        err.contains("personal_data") && err.contains("line"),
        "{err}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn erasure_by_reference_masks_the_shipment_keeps_its_state_and_is_audited() {
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("/hook"), FAST_RETRIES).await;
    let events = json!([
        {"type": "shipment.out_for_delivery", "subject": "S-ERA", "time": "2026-12-01T09:00:00Z",
         "key": "e1", "refs": {"tracking": "1ZERA"},
         "data": {"recipient": {"name": NAME, "phone": PHONE}, "parcels": 2}},
        {"type": "shipment.delivered", "subject": "S-ERA", "time": "2026-12-01T10:00:00Z",
         "key": "e2", "data": {"pod": {"signed_by": NAME}}}
    ]);
    post_events(&hub, &events).await;
    let before = hub.get("/v1/shipments/S-ERA").await;
    assert!(
        !planted(&before.to_string()).is_empty(),
        "admin sees it before"
    );
    let r = hub
        .client
        .post(format!("{}/v1/erasure", hub.base))
        .bearer_auth(API_KEY)
        .header("x-waybill-operator", "dpo")
        .json(&json!({"ref": "tracking:1ZERA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["events"], 2, "{report}");
    // Gone for everyone, the admin too; the shipment's state and timeline stay.
    let after = hub.get("/v1/shipments/S-ERA").await;
    assert!(planted(&after.to_string()).is_empty(), "{after}");
    assert_eq!(after["state"]["milestone"], before["state"]["milestone"]);
    let ids = |v: &Value| -> Vec<Value> {
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["event"]["id"].clone())
            .collect()
    };
    assert_eq!(ids(&after), ids(&before));
    assert_eq!(
        after["timeline"][0]["event"]["data"]["parcels"]
            .as_i64()
            .or(after["timeline"][1]["event"]["data"]["parcels"].as_i64()),
        Some(2)
    );
    // Recorded: who, what, which reference.
    let audit = hub.get("/v1/audit?action=erasure").await;
    let rec = &audit["records"][0];
    assert_eq!(rec["action"], "erasure", "{audit}");
    assert_eq!(rec["target"], "ref:tracking:1ZERA");
    assert_eq!(rec["actor"], "config/dpo");
    // An unknown reference names nothing.
    let r = hub
        .client
        .post(format!("{}/v1/erasure", hub.base))
        .bearer_auth(API_KEY)
        .json(&json!({"ref": "tracking:NOPE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    hub.stop().await;
}
