//! The management API and its OpenAPI document, end to end: a real hub, a FakePartner sink.

use crate::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use waybill_testkit::FakePartner;

/// Every `/v1` route the hub serves, as (method, path template). A route added to the code
/// must be added here and will then be checked against the document; a route in the code
/// but missing from the document fails `the_openapi_document_describes_every_route`.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/ingest/{source}"),
    ("post", "/v1/ingest/{source}/{token}"),
    ("post", "/v1/events"),
    ("get", "/v1/shipments"),
    ("get", "/v1/shipments/{key}"),
    ("get", "/v1/shipments/{key}/events/{event_id}/deliveries"),
    ("get", "/v1/orders/{key}"),
    ("get", "/v1/conflicts"),
    ("get", "/v1/dead-letters"),
    ("get", "/v1/dead-letters/{id}"),
    ("post", "/v1/dead-letters/replay"),
    ("post", "/v1/dead-letters/{id}/replay"),
    ("post", "/v1/dead-letters/{id}/discard"),
    ("get", "/v1/inbox"),
    ("get", "/v1/inbox/{id}"),
    ("post", "/v1/inbox/{id}/reprocess"),
    ("get", "/v1/overview"),
    ("get", "/v1/stream"),
    ("get", "/v1/sinks"),
    ("get", "/v1/sinks/{name}"),
    ("post", "/v1/sinks/{name}/pause"),
    ("post", "/v1/sinks/{name}/resume"),
    ("post", "/v1/sinks/{name}/test"),
    ("get", "/v1/sources"),
    ("get", "/v1/subscriptions"),
    ("get", "/v1/subscriptions/{name}"),
    ("put", "/v1/subscriptions/{name}"),
    ("delete", "/v1/subscriptions/{name}"),
    ("get", "/v1/workflows"),
    ("get", "/v1/workflows/{id}"),
    ("post", "/v1/workflows/{id}/cancel"),
    ("post", "/v1/workflows/{id}/retry"),
    ("get", "/v1/workflows/{id}/documents/{name}"),
    ("get", "/v1/tasks"),
    ("post", "/v1/tasks/{id}/claim"),
    ("post", "/v1/tasks/{id}/resolve"),
    ("get", "/v1/keys"),
    ("post", "/v1/keys"),
    ("delete", "/v1/keys/{id}"),
    ("post", "/v1/erasure"),
    ("get", "/v1/audit"),
];

async fn call(hub: &TestHub, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", hub.base);
    let req = match method {
        "get" => hub.client.get(url),
        "post" => hub.client.post(url),
        "put" => hub.client.put(url),
        "delete" => hub.client.delete(url),
        m => panic!("method {m}"),
    }
    .bearer_auth(API_KEY);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("/hook"), "").await;
    let doc: Value = hub
        .client
        .get(format!("{}/v1/openapi.json", hub.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            documented.insert((method.clone(), path.clone()));
            // Every error answer is a problem document.
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &resp["content"]["application/problem+json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/Problem",
                        "{method} {path} {status} is not a problem"
                    );
                    let desc = resp["description"].as_str().unwrap_or_default();
                    assert!(desc.contains('`'), "{method} {path} {status} names no code");
                }
            }
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    let unknown: Vec<_> = documented.difference(&expected).collect();
    assert!(
        unknown.is_empty(),
        "documented but not in ROUTES: {unknown:?}"
    );
    // Each documented route is served (the fallback answers `api.not_found` otherwise).
    for (method, path) in &documented {
        let concrete = path
            .replace("{source}", "nope")
            .replace("{token}", "t")
            .replace("{key}", "S-none")
            .replace("{event_id}", "e")
            .replace("{id}", "1")
            .replace("{name}", "none");
        if path == "/v1/stream" {
            continue; // an endless stream; checked below
        }
        let (_, body) = call(&hub, method, &concrete, None).await;
        assert_ne!(
            body["code"], "api.not_found",
            "{method} {path} is documented but not served"
        );
    }
    // No /v1 route is registered outside the documented lists.
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/src");
    for entry in std::fs::read_dir(src).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for line in text.lines().filter(|l| l.contains(".route(\"/v1")) {
                assert!(
                    line.contains("/v1/openapi.json"),
                    "{}: a /v1 route registered without its description: {line}",
                    p.display()
                );
            }
        }
    }
    // Errors are problems with their code; a bad path parameter too.
    let (status, body) = call(&hub, "get", "/v1/dead-letters/abc", None).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "api.bad_request");
    let r = hub
        .client
        .get(format!("{}/v1/sinks", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    hub.stop().await;
}

/// Where a test's hub keeps its state: a SQLite file in the test's directory, or a
/// PostgreSQL schema of its own (dropped with the guard).
enum Backend {
    Sqlite,
    Postgres(
        waybill_store::PgOptions,
        #[allow(dead_code)] // held: drops the schema at the end of the test
        waybill_testkit::pg::SchemaGuard,
    ),
}

impl Backend {
    fn postgres(tag: &str) -> Backend {
        let (opts, guard) = waybill_testkit::pg::fresh(tag);
        Backend::Postgres(opts, guard)
    }

    /// A hub on this store (again, after a restart, with `dir`).
    async fn start(&self, dir: tempfile::TempDir, sink_url: &str) -> TestHub {
        let toml = match self {
            Backend::Sqlite => config_toml(&dir.path().join("hub.db"), sink_url, FAST_RETRIES),
            Backend::Postgres(o, _) => {
                config_toml_with_store(&pg_store_toml(&o.schema), sink_url, FAST_RETRIES)
            }
        };
        let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestHub::from_parts(cfg, listener, dir)
    }
}

#[tokio::test]
async fn a_paused_sink_keeps_its_events_across_a_restart_and_delivers_them_in_order() {
    paused_sink(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_paused_sink_keeps_its_events_across_a_restart_on_postgres() {
    paused_sink(Backend::postgres("paused")).await;
}

async fn paused_sink(store: Backend) {
    let sink = FakePartner::start().await;
    let hub = store
        .start(tempfile::tempdir().unwrap(), &sink.url("/hook"))
        .await;
    let (status, body) = call(&hub, "post", "/v1/sinks/ops/pause", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], true);
    for i in 0..5u32 {
        let r = hub
            .send(
                &carrier_event(&format!("p-{i}"), "S-PAUSE", "shipment.in_transit", i),
                &format!("p-{i}"),
            )
            .await;
        assert_eq!(r.status(), 202);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(sink.requests().is_empty(), "a paused sink received events");
    let (_, s) = call(&hub, "get", "/v1/sinks/ops", None).await;
    assert_eq!(s["pending"], 5, "{s}");
    assert_eq!(s["paused"], true);
    assert!(s["oldest_pending_at"].is_string(), "{s}");
    // Paused is kept in the store: a restarted hub does not deliver either.
    let dir = hub.stop().await;
    let hub = store.start(dir, &sink.url("/hook")).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        sink.requests().is_empty(),
        "a restarted hub forgot the pause"
    );
    let (status, body) = call(&hub, "post", "/v1/sinks/ops/resume", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["paused"], false);
    sink.wait_until(WAIT, "5 deliveries after resume", |r| r.len() >= 5)
        .await;
    let seqs: Vec<i64> = sink
        .accepted()
        .iter()
        .map(|r| r.json()["sequence"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5], "in log order after resume");
    let (status, body) = call(&hub, "post", "/v1/sinks/nope/pause", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "api.sink_not_found");
    hub.stop().await;
}

#[tokio::test]
async fn subscriptions_change_at_run_time_and_survive_a_restart() {
    subscriptions(Backend::Sqlite).await;
}

#[tokio::test]
async fn subscriptions_change_at_run_time_and_survive_a_restart_on_postgres() {
    subscriptions(Backend::postgres("subs")).await;
}

async fn subscriptions(store: Backend) {
    let sink = FakePartner::start().await;
    let hub = store
        .start(tempfile::tempdir().unwrap(), &sink.url("/hook"))
        .await;
    let (status, _) = call(&hub, "delete", "/v1/subscriptions/ops-all", None).await;
    assert_eq!(status, 204);
    let (status, body) = call(
        &hub,
        "put",
        "/v1/subscriptions/only-delivered",
        Some(json!({"sink": "ops", "types": ["shipment.delivered"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["origin"], "api");
    hub.send(
        &carrier_event("s-1", "S-SUB", "shipment.in_transit", 1),
        "s-1",
    )
    .await;
    hub.send(
        &carrier_event("s-2", "S-SUB", "shipment.delivered", 2),
        "s-2",
    )
    .await;
    sink.wait_until(WAIT, "the delivered event", |r| !r.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got: Vec<String> = sink
        .accepted()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        got,
        vec!["shipment.delivered"],
        "routed by the new set only"
    );
    // Refused: an unknown sink, an unknown type, an unknown field.
    for (body, what) in [
        (json!({"sink": "nope"}), "unknown sink"),
        (
            json!({"sink": "ops", "types": ["shipment.teleported"]}),
            "unknown type",
        ),
        (json!({"sink": "ops", "colour": "red"}), "unknown field"),
    ] {
        let (status, b) = call(&hub, "put", "/v1/subscriptions/x", Some(body)).await;
        assert_eq!(status, 422, "{what}: {b}");
        assert_eq!(b["code"], "api.bad_subscription");
    }
    // The TOML set is only the initial one: a restart keeps the API's changes.
    let dir = hub.stop().await;
    let hub = store.start(dir, &sink.url("/hook")).await;
    let (_, list) = call(&hub, "get", "/v1/subscriptions", None).await;
    let names: Vec<&str> = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["only-delivered"], "{list}");
    let (status, b) = call(&hub, "delete", "/v1/subscriptions/nope", None).await;
    assert_eq!(status, 404);
    assert_eq!(b["code"], "api.subscription_not_found");
    hub.stop().await;
}

#[tokio::test]
async fn dead_letters_show_their_attempts_and_a_discarded_one_is_never_replayed() {
    let sink = FakePartner::start().await;
    sink.set_default(400); // refused for good: dead at the first attempt
    let hub = TestHub::start(&sink.url("/hook"), FAST_RETRIES).await;
    hub.send(
        &carrier_event("d-1", "S-DL1", "shipment.in_transit", 1),
        "d-1",
    )
    .await;
    hub.send(
        &carrier_event("d-2", "S-DL2", "shipment.in_transit", 2),
        "d-2",
    )
    .await;
    let end = std::time::Instant::now() + WAIT;
    let letters = loop {
        let l = hub.get("/v1/dead-letters").await;
        if l["dead_letters"].as_array().unwrap().len() == 2 || std::time::Instant::now() > end {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let letters = letters["dead_letters"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 2);
    let by_shipment = |s: &str| letters.iter().find(|d| d["shipment"] == s).unwrap().clone();
    let (d1, d2) = (by_shipment("S-DL1"), by_shipment("S-DL2"));
    let detail = hub.get(&format!("/v1/dead-letters/{}", d1["id"])).await;
    assert_eq!(detail["state"], "open", "{detail}");
    assert_eq!(detail["event"]["subject"], "S-DL1");
    assert_eq!(detail["history"][0]["status"], 400, "{detail}");
    // Discarded: kept, not open, never replayed.
    let (status, body) = call(
        &hub,
        "post",
        &format!("/v1/dead-letters/{}/discard", d1["id"]),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "discarded");
    let (status, body) = call(
        &hub,
        "post",
        &format!("/v1/dead-letters/{}/replay", d1["id"]),
        None,
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "api.dead_letter_closed");
    let open = hub.get("/v1/dead-letters").await;
    assert_eq!(open["dead_letters"].as_array().unwrap().len(), 1);
    let discarded = hub.get("/v1/dead-letters?state=discarded").await;
    assert_eq!(discarded["dead_letters"][0]["id"], d1["id"]);
    // The other is replayed once the partner is fixed; its deliveries show both tries.
    sink.set_default(200);
    let (status, _) = call(
        &hub,
        "post",
        &format!("/v1/dead-letters/{}/replay", d2["id"]),
        None,
    )
    .await;
    assert_eq!(status, 202);
    sink.wait_until(WAIT, "the replayed event", |r| r.len() == 1)
        .await;
    let path = format!(
        "/v1/shipments/S-DL2/events/{}/deliveries",
        d2["event_id"].as_str().unwrap()
    );
    let end = std::time::Instant::now() + WAIT;
    let deliveries = loop {
        let d = hub.get(&path).await;
        let done = d["deliveries"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["state"] == "delivered"));
        if done || std::time::Instant::now() > end {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rows = deliveries["deliveries"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["state"] == "dead"), "{deliveries}");
    let ok = rows.iter().find(|r| r["state"] == "delivered").unwrap();
    assert_eq!(ok["last_status"], 200, "{deliveries}");
    hub.stop().await;
}

#[tokio::test]
async fn a_rejected_payload_is_reprocessed_once_the_mapping_is_fixed() {
    let sink = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    // The partner says `in-transit`; the first mapping passes it through and is refused.
    let broken = config_toml(&db, &sink.url("/hook"), FAST_RETRIES);
    let fixed = broken.replace(
        "{type: .status,",
        r#"{type: (if .status == "in-transit" then "shipment.in_transit" else .status end),"#,
    );
    assert_ne!(broken, fixed);
    let start = |toml: String, dir: tempfile::TempDir| async move {
        let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestHub::from_parts(cfg, listener, dir)
    };
    let hub = start(broken.clone(), dir).await;
    let r = hub
        .send(&carrier_event("r-1", "S-RE", "in-transit", 1), "r-1")
        .await;
    assert_eq!(r.status().as_u16() / 100, 4);
    let problem: Value = r.json().await.unwrap();
    let id = problem["inbox_id"].as_i64().unwrap();
    // Never authenticated: never re-processed.
    let r = send_signed(
        &hub.client,
        &format!("{}/v1/ingest/carrier", hub.base),
        &carrier_event("r-2", "S-RE", "shipment.in_transit", 2),
        "r-2",
    )
    .await;
    assert_eq!(r.status(), 202);
    let forged = hub
        .client
        .post(format!("{}/v1/ingest/carrier", hub.base))
        .header("webhook-id", "r-3")
        .header("webhook-timestamp", "1")
        .header("webhook-signature", "v1,AAAA")
        .body("{}")
        .send()
        .await
        .unwrap();
    let forged: Value = forged.json().await.unwrap();
    let forged_id = forged["inbox_id"].as_i64().unwrap();
    let (status, b) = call(
        &hub,
        "post",
        &format!("/v1/inbox/{forged_id}/reprocess"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{b}");
    assert_eq!(b["code"], "api.not_reprocessable");
    // Still broken: rejected again, kept as a new record.
    let (status, b) = call(&hub, "post", &format!("/v1/inbox/{id}/reprocess"), None).await;
    assert_eq!(status, 422, "{b}");
    assert_eq!(b["code"], "api.reprocess_rejected");
    let dir = hub.stop().await;
    let hub = start(fixed, dir).await;
    let (status, b) = call(&hub, "post", &format!("/v1/inbox/{id}/reprocess"), None).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["status"], "accepted");
    let into = b["inbox_id"].as_i64().unwrap();
    let rec = hub.get(&format!("/v1/inbox/{id}")).await;
    assert_eq!(rec["reprocessed_into"], into, "{rec}");
    let (status, b) = call(&hub, "post", &format!("/v1/inbox/{id}/reprocess"), None).await;
    assert_eq!(status, 409, "a second re-process: {b}");
    // Its event is on the shipment's timeline and delivered.
    sink.wait_until(WAIT, "the re-processed event", |r| {
        r.iter()
            .any(|x| x.json()["type"] == "shipment.in_transit" && x.json()["subject"] == "S-RE")
            && r.len() >= 2
    })
    .await;
    let s = hub.get("/v1/shipments/S-RE").await;
    assert_eq!(s["timeline"].as_array().unwrap().len(), 2, "{s}");
    hub.stop().await;
}

#[tokio::test]
async fn health_test_delivery_overview_and_stream() {
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("/hook"), FAST_RETRIES).await;
    hub.send(
        &carrier_event("h-1", "S-H", "shipment.in_transit", 1),
        "h-1",
    )
    .await;
    sink.wait_until(WAIT, "one delivery", |r| r.len() == 1)
        .await;
    let (status, t) = call(&hub, "post", "/v1/sinks/ops/test", None).await;
    assert_eq!(status, 200);
    assert_eq!(t["ok"], true, "{t}");
    let last = sink.requests().pop().unwrap();
    assert_eq!(last.json()["type"], "io.waybill.test");
    sink.set_default(503);
    let (_, t) = call(&hub, "post", "/v1/sinks/ops/test", None).await;
    assert_eq!(t["ok"], false, "{t}");
    assert!(t["detail"].as_str().unwrap().contains("503"), "{t}");
    let sinks = hub.get("/v1/sinks").await;
    let ops = &sinks["sinks"][0];
    assert_eq!(ops["name"], "ops");
    assert_eq!(ops["kind"], "http_webhook");
    assert_eq!(ops["circuit"], "closed");
    assert!(ops["last_delivered_at"].is_string(), "{ops}");
    assert_eq!(ops["delivered_5m"], 1);
    let sources = hub.get("/v1/sources").await;
    let carrier = sources["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "carrier")
        .unwrap()
        .clone();
    assert_eq!(carrier["accepted_total"], 1, "{sources}");
    assert_eq!(carrier["kind"], "jq");
    assert!(carrier["last_accepted_at"].is_string());
    let o = hub.get("/v1/overview").await;
    assert!(
        o["series"].is_array() && o["sinks"][0]["name"] == "ops",
        "{o}"
    );
    // The stream's first frame is an overview.
    let mut r = hub
        .client
        .get(format!("{}/v1/stream", hub.base))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let chunk = tokio::time::timeout(WAIT, r.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(text.starts_with("event: overview\ndata: {"), "{text}");
    drop(r);
    hub.stop().await;
}
