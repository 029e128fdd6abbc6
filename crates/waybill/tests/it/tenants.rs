//! Tenant isolation, end to end on both stores: a key bound to a tenant, holding every
//! scope, is sent to every route of the hub's own OpenAPI document with another tenant's
//! identifiers (shipment keys and aliases, event, dead-letter and inbox ids): no answer
//! carries anything of the other tenant, and nothing of it changes; its own data is seen.

use crate::*;
use serde_json::{json, Value};
use waybill_testkit::FakePartner;

const TENANTS: &str = r#"
[tenants.acme]
sources = ["carrier"]
[tenants.beta]
sources = ["wms"]
"#;

async fn start(store_toml: &str, sink_url: &str) -> TestHub {
    let toml = format!(
        "{}{TENANTS}",
        config_toml_with_store(store_toml, sink_url, FAST_RETRIES)
    );
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    TestHub::from_parts(cfg, listener, tempfile::tempdir().unwrap())
}

async fn call(
    hub: &TestHub,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, String) {
    let url = format!("{}{path}", hub.base);
    let req = match method {
        "get" => hub.client.get(url),
        "post" => hub.client.post(url),
        "put" => hub.client.put(url),
        "delete" => hub.client.delete(url),
        m => panic!("method {m}"),
    }
    .bearer_auth(key);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    if path == "/v1/stream" && status == 200 {
        return (status, String::new());
    }
    (status, r.text().await.unwrap_or_default())
}

async fn key_for(hub: &TestHub, tenant: &str) -> String {
    let (s, b) = call(
        hub,
        "post",
        "/v1/keys",
        API_KEY,
        Some(json!({"name": format!("{tenant}-all"), "tenant": tenant,
            "scopes": ["read", "read:pii", "operate", "events:write", "admin"]})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    v["key"].as_str().unwrap().to_owned()
}

async fn wms_post(hub: &TestHub, body: &Value) -> u16 {
    let r = hub
        .client
        .post(format!("{}/v1/ingest/wms", hub.base))
        .bearer_auth("wms-key")
        .json(body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    if s >= 300 {
        eprintln!("wms: {s} {}", r.text().await.unwrap_or_default());
    }
    s
}

async fn admin_json(hub: &TestHub, path: &str) -> Value {
    let (s, b) = call(hub, "get", path, API_KEY, None).await;
    assert_eq!(s, 200, "{path}: {b}");
    serde_json::from_str(&b).unwrap()
}

#[tokio::test]
async fn a_tenant_key_sees_only_its_tenant_on_every_route() {
    let path = tempfile::tempdir().unwrap();
    let store = format!(
        "path = \"{}\"",
        path.path()
            .join("hub.db")
            .display()
            .to_string()
            .replace('\\', "/")
    );
    isolation(&store).await;
}

#[tokio::test]
async fn a_tenant_key_sees_only_its_tenant_on_every_route_on_postgres() {
    let (opts, _guard) = waybill_testkit::pg::fresh("tenants");
    isolation(&pg_store_toml(&opts.schema)).await;
}

async fn isolation(store_toml: &str) {
    let sink = FakePartner::start().await;
    sink.set_default(500); // every delivery fails: each event ends as a dead letter
    let hub = start(store_toml, &sink.url("/hook")).await;
    // acme's shipment through the carrier source, beta's through the WMS source; a lane
    // with no tenant joins beta's shipment by its tracking number; one shipment has no
    // tenant at all.
    for (i, status) in ["shipment.dispatched", "shipment.in_transit"]
        .iter()
        .enumerate()
    {
        let r = hub
            .send(
                &carrier_event(&format!("a{i}"), "ACME-1", status, i as u32),
                &format!("a{i}"),
            )
            .await;
        assert_eq!(r.status(), 202);
        let s = wms_post(
            &hub,
            &carrier_event(&format!("b{i}"), "BETA-1", status, i as u32),
        )
        .await;
        assert_eq!(s, 202);
    }
    let (s, b) = call(
        &hub,
        "post",
        "/v1/events",
        API_KEY,
        Some(json!([
            {"type": "shipment.exception", "subject": "LINK-B", "time": "2026-11-23T11:00:00Z",
             "key": "l1", "refs": {"tracking": "1Z-BETA-1"}},
            {"type": "shipment.in_transit", "subject": "NONE-1", "time": "2026-11-23T11:00:00Z",
             "key": "n1", "refs": {"tracking": "1Z-NONE-1"}}
        ])),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    // A rejected payload of each source (no `status`: the mapping's type is missing).
    let bad = json!({"id": "bad-a", "shipment": "ACME-9", "at": "2026-11-23T10:00:00Z"});
    assert_eq!(hub.send(&bad, "bad-a").await.status(), 422);
    let bad = json!({"id": "bad-b", "shipment": "BETA-9", "at": "2026-11-23T10:00:00Z"});
    assert_eq!(wms_post(&hub, &bad).await, 422);
    // Wait for every event to give up: 2 acme + 2 beta + LINK-B (beta) + NONE-1.
    let end = std::time::Instant::now() + WAIT;
    let dead = loop {
        let d = admin_json(&hub, "/v1/dead-letters?limit=100").await;
        let d = d["dead_letters"].as_array().unwrap().clone();
        if d.len() >= 6 || std::time::Instant::now() > end {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), 6, "{dead:?}");
    let dl_of = |shipment: &str| -> Vec<i64> {
        dead.iter()
            .filter(|d| d["shipment"] == shipment)
            .map(|d| d["id"].as_i64().unwrap())
            .collect()
    };
    let beta_dls: Vec<i64> = [dl_of("BETA-1"), dl_of("LINK-B")].concat();
    let mut acme_dls = dl_of("ACME-1");
    acme_dls.sort();
    assert_eq!((beta_dls.len(), acme_dls.len()), (3, 2));
    let inbox = admin_json(&hub, "/v1/inbox?status=rejected").await;
    let inbox_of = |source: &str| -> i64 {
        inbox["inbox"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["source"] == source)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (beta_inbox, acme_inbox) = (inbox_of("wms"), inbox_of("carrier"));
    let beta_timeline = admin_json(&hub, "/v1/shipments/BETA-1").await;
    let beta_event = beta_timeline["timeline"][0]["event"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let acme = key_for(&hub, "acme").await;
    let beta = key_for(&hub, "beta").await;
    // What must never reach acme's key: beta's keys, aliases, event ids, payloads.
    let markers = [
        "BETA-1",
        "LINK-B",
        "1Z-BETA-1",
        "BETA-9",
        "bad-b",
        beta_event.as_str(),
        "NONE-1",
    ];
    let doc = admin_json(&hub, "/v1/openapi.json").await;
    let mut checked = 0;
    let mut refused = 0;
    for (route, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"][0]["bearer"][0].as_str().is_none() || route == "/v1/events" {
                continue; // ingest (no hub key); /v1/events is checked below
            }
            let id = if route.starts_with("/v1/dead-letters/") {
                beta_dls[0].to_string()
            } else if route.starts_with("/v1/inbox/") {
                beta_inbox.to_string()
            } else if route.starts_with("/v1/workflows/") {
                "order_to_ship:BETA-1".to_owned()
            } else {
                "1".to_owned()
            };
            for key_value in ["BETA-1", "1Z-BETA-1", "LINK-B"] {
                let concrete = route
                    .replace("{key}", key_value)
                    .replace("{event_id}", &beta_event)
                    .replace("{id}", &id)
                    .replace("{name}", "ops");
                let body = match (method.as_str(), route.as_str()) {
                    ("post", "/v1/dead-letters/replay") => Some(json!({"ids": beta_dls})),
                    ("post", "/v1/tasks/{id}/resolve") => Some(json!({"by": "x", "decision": {}})),
                    ("post", _) | ("put", _) => Some(json!({"by": "x"})),
                    _ => None,
                };
                let (status, text) = call(&hub, method, &concrete, &acme, body).await;
                let tenant_route = !matches!(
                    route.as_str(),
                    "/v1/overview" | "/v1/stream" | "/v1/sources" | "/v1/audit" | "/v1/erasure"
                ) && !route.starts_with("/v1/sinks")
                    && !route.starts_with("/v1/subscriptions")
                    && !route.starts_with("/v1/keys");
                if tenant_route {
                    assert_ne!(status, 403, "{method} {concrete}: {text}");
                    // A "not found" names what was asked for: that is not a leak.
                    let text = text
                        .replace(&format!("`{key_value}`"), "``")
                        .replace(&format!("`{id}`"), "``");
                    for m in markers {
                        assert!(
                            !text.contains(m),
                            "{method} {concrete} answered acme's key with beta's `{m}`: {status} {text}"
                        );
                    }
                    if concrete.contains("BETA")
                        || concrete.contains("LINK-B")
                        || route.contains("{id}")
                    {
                        assert!(
                            [404, 503].contains(&status),
                            "{method} {concrete}: {status} {text}"
                        );
                    }
                } else {
                    assert_eq!(status, 403, "{method} {concrete}: {text}");
                    assert!(text.contains("api.forbidden"), "{text}");
                    refused += 1;
                }
                checked += 1;
                if !route.contains("{key}") {
                    break; // one call is enough where no shipment is named
                }
            }
        }
    }
    assert!(
        checked >= 40 && refused >= 12,
        "checked {checked}, refused {refused}"
    );
    // Nothing of beta changed: its dead letters are still open, its payload not re-processed.
    let open = admin_json(&hub, "/v1/dead-letters?limit=100").await;
    let open: Vec<i64> = open["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    for id in &beta_dls {
        assert!(
            open.contains(id),
            "beta's dead letter {id} was touched: {open:?}"
        );
    }
    let rec = admin_json(&hub, &format!("/v1/inbox/{beta_inbox}")).await;
    assert!(rec["reprocessed_at"].is_null(), "{rec}");

    // acme sees its own.
    let (s, t) = call(&hub, "get", "/v1/shipments", &acme, None).await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&t).unwrap();
    let keys: Vec<&str> = v["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["ACME-1"]);
    let (s, t) = call(&hub, "get", "/v1/shipments/1Z-ACME-1", &acme, None).await;
    assert_eq!(s, 200, "{t}");
    let (s, t) = call(&hub, "get", "/v1/dead-letters", &acme, None).await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&t).unwrap();
    let mut ids: Vec<i64> = v["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, acme_dls);
    let (s, t) = call(&hub, "get", &format!("/v1/inbox/{acme_inbox}"), &acme, None).await;
    assert_eq!(s, 200, "{t}");
    let (s, t) = call(&hub, "get", "/v1/inbox", &acme, None).await;
    assert_eq!(s, 200);
    assert!(t.contains("bad-a") && !t.contains("bad-b"), "{t}");
    // beta sees its shipment, joined lane included, through either alias.
    let (s, t) = call(&hub, "get", "/v1/shipments/LINK-B", &beta, None).await;
    assert_eq!(s, 200, "{t}");
    assert!(t.contains("1Z-BETA-1") && !t.contains("ACME-1"), "{t}");
    // The shipment of no tenant is seen by unbound keys only.
    let (s, _) = call(&hub, "get", "/v1/shipments/NONE-1", &beta, None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&hub, "get", "/v1/shipments/NONE-1", API_KEY, None).await;
    assert_eq!(s, 200);

    // A tenant's key writes into its tenant only, whatever the event says.
    let (s, b) = call(
        &hub,
        "post",
        "/v1/events",
        &acme,
        Some(
            json!({"type": "shipment.in_transit", "subject": "ACME-2", "tenant": "beta",
            "time": "2026-11-23T12:00:00Z", "key": "a2"}),
        ),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let (s, t) = call(&hub, "get", "/v1/shipments/ACME-2", &acme, None).await;
    assert_eq!(s, 200, "{t}");
    assert!(t.contains("\"tenant\":\"acme\""), "{t}");
    let (s, _) = call(&hub, "get", "/v1/shipments/ACME-2", &beta, None).await;
    assert_eq!(s, 404);

    // Replaying "all" with acme's key replays acme's dead letters only.
    let (s, t) = call(
        &hub,
        "post",
        "/v1/dead-letters/replay",
        &acme,
        Some(json!({"all": true})),
    )
    .await;
    assert_eq!(s, 202, "{t}");
    let v: Value = serde_json::from_str(&t).unwrap();
    let mut replayed: Vec<i64> = v["replayed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    replayed.sort();
    let mut acme_now: Vec<i64> = acme_dls.clone();
    // ACME-2's event may have died already too: it is acme's.
    let d = admin_json(&hub, "/v1/dead-letters?state=replayed&limit=100").await;
    for r in d["dead_letters"].as_array().unwrap() {
        let id = r["id"].as_i64().unwrap();
        assert!(r["shipment"].as_str().unwrap().starts_with("ACME-"), "{r}");
        if !acme_now.contains(&id) {
            acme_now.push(id);
        }
    }
    acme_now.sort();
    assert_eq!(replayed, acme_now);
    hub.stop().await;
}

#[test]
fn tenants_name_configured_sources_each_once() {
    let base = config_toml(std::path::Path::new("hub.db"), "http://127.0.0.1:9/x", "");
    for (tenants, field) in [
        (
            "[tenants.acme]\nsources = [\"nope\"]\n",
            "tenants.acme.sources[0]",
        ),
        (
            "[tenants.acme]\nsources = [\"wms\"]\n[tenants.beta]\nsources = [\"wms\"]\n",
            "tenants.beta.sources[0]",
        ),
        ("[tenants.\"a b\"]\nsources = []\n", "tenants.a b"),
    ] {
        let err = waybill::Config::parse(&format!("{base}{tenants}"), std::iter::empty())
            .unwrap()
            .validate()
            .err()
            .unwrap();
        let all: Vec<String> = err.iter().map(ToString::to_string).collect();
        assert!(all.iter().any(|e| e.contains(field)), "{field}: {all:?}");
    }
    let ok = format!("{base}{TENANTS}");
    assert!(waybill::Config::parse(&ok, std::iter::empty())
        .unwrap()
        .validate()
        .is_ok());
}
