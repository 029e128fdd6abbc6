//! API keys with scopes, end to end: every route against every scope (the route list is
//! the hub's own OpenAPI document), keys hashed at rest, revocation, expiry, the CLI.

use crate::*;
use serde_json::{json, Value};
use waybill_testkit::FakePartner;

/// What each scope a test key holds may reach (the route scopes it grants).
const GRANTS: &[(&str, &[&str])] = &[
    ("read", &["read"]),
    ("read:pii", &["read"]),
    ("operate", &["read", "operate"]),
    ("events:write", &["events:write"]),
    ("ingest:carrier", &[]),
    ("admin", &["read", "operate", "events:write", "admin"]),
];

async fn create_key(hub: &TestHub, name: &str, scopes: &[&str], expires: Option<&str>) -> Value {
    let mut body = json!({"name": name, "scopes": scopes});
    if let Some(e) = expires {
        body["expires_at"] = json!(e);
    }
    let r = hub
        .client
        .post(format!("{}/v1/keys", hub.base))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn status_with(hub: &TestHub, method: &str, path: &str, key: Option<&str>) -> (u16, Value) {
    let url = format!("{}{path}", hub.base);
    let mut req = match method {
        "get" => hub.client.get(url),
        "post" => hub.client.post(url),
        "put" => hub.client.put(url),
        "delete" => hub.client.delete(url),
        m => panic!("method {m}"),
    };
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    if path == "/v1/stream" && status == 200 {
        return (status, Value::Null); // endless: the status is the answer
    }
    let body = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_route_needs_its_scope() {
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("/hook"), FAST_RETRIES).await;
    let mut keys = Vec::new();
    for (scope, _) in GRANTS {
        let k = create_key(&hub, &format!("k-{scope}"), &[scope], None).await;
        keys.push((*scope, k["key"].as_str().unwrap().to_owned()));
    }
    let doc: Value = hub
        .client
        .get(format!("{}/v1/openapi.json", hub.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(need) = op["security"][0]["bearer"][0].as_str() else {
                // Ingest and the document itself: no hub key, and the document says so.
                assert!(
                    path.starts_with("/v1/ingest/"),
                    "{method} {path} names no scope"
                );
                continue;
            };
            let concrete = path
                .replace("{key}", "S-none")
                .replace("{event_id}", "e")
                .replace("{id}", "999999")
                .replace("{name}", "none");
            // No key, a wrong key: 401.
            for key in [None, Some("wbk_0000_nope"), Some("not-a-key")] {
                let (status, body) = status_with(&hub, method, &concrete, key).await;
                assert_eq!(status, 401, "{method} {path} with {key:?}: {body}");
                assert_eq!(body["code"], "api.unauthorized");
            }
            for (scope, key) in &keys {
                let allowed = GRANTS
                    .iter()
                    .find(|(s, _)| s == scope)
                    .unwrap()
                    .1
                    .contains(&need);
                let (status, body) = status_with(&hub, method, &concrete, Some(key)).await;
                if allowed {
                    assert!(
                        status != 401 && status != 403,
                        "{method} {path} needs {need}: a `{scope}` key got {status} {body}"
                    );
                } else {
                    assert_eq!(
                        status, 403,
                        "{method} {path} needs {need}: a `{scope}` key got {status} {body}"
                    );
                    assert_eq!(body["code"], "api.forbidden");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "only {checked} route × scope pairs checked");
    hub.stop().await;
}

#[tokio::test]
async fn keys_are_stored_hashed_revoked_at_once_and_expire() {
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("/hook"), FAST_RETRIES).await;
    let k = create_key(&hub, "reader", &["read"], None).await;
    let key = k["key"].as_str().unwrap().to_owned();
    let id = k["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("wbk_{id}_")));
    assert_eq!(k["scopes"], json!(["read"]));
    let (s, _) = status_with(&hub, "get", "/v1/shipments", Some(&key)).await;
    assert_eq!(s, 200);
    let (s, b) = status_with(&hub, "post", "/v1/sinks/ops/pause", Some(&key)).await;
    assert_eq!(s, 403, "{b}");
    // The listing never shows a key or its hash, and records its use (written in the
    // background, at most once a minute).
    let end = std::time::Instant::now() + WAIT;
    let mine = loop {
        let (_, list) = status_with(&hub, "get", "/v1/keys", Some(API_KEY)).await;
        let text = list.to_string();
        assert!(!text.contains(&key[4..]), "{text}");
        assert!(!text.contains("hash"), "{text}");
        let mine = list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id.as_str())
            .unwrap()
            .clone();
        if mine["last_used_at"].is_string() || std::time::Instant::now() > end {
            break mine;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(mine["last_used_at"].is_string(), "{mine}");
    // The database never holds the key: not in the file nor its WAL.
    let secret = key.rsplit('_').next().unwrap().to_owned();
    for f in ["hub.db", "hub.db-wal"] {
        let bytes = std::fs::read(hub.dir.path().join(f)).unwrap_or_default();
        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "{f} holds the key in clear");
    }
    // Revoked: refused at once.
    let (s, _) = status_with(&hub, "delete", &format!("/v1/keys/{id}"), Some(API_KEY)).await;
    assert_eq!(s, 200);
    let (s, b) = status_with(&hub, "get", "/v1/shipments", Some(&key)).await;
    assert_eq!(s, 401, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("revoked"), "{b}");
    // Expired: refused once its time has passed.
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let k = create_key(&hub, "brief", &["read"], Some(&soon)).await;
    let brief = k["key"].as_str().unwrap().to_owned();
    let (s, _) = status_with(&hub, "get", "/v1/shipments", Some(&brief)).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, b) = status_with(&hub, "get", "/v1/shipments", Some(&brief)).await;
    assert_eq!(s, 401, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("expired"), "{b}");
    // Requests that are not keys.
    let r = hub
        .client
        .post(format!("{}/v1/keys", hub.base))
        .bearer_auth(API_KEY)
        .json(&json!({"name": "x", "scopes": ["root"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    hub.stop().await;
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_keys() {
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("/hook"), FAST_RETRIES).await;
    let cfg = hub.dir.path().join("hub.toml");
    std::fs::write(
        &cfg,
        config_toml(
            &hub.dir.path().join("hub.db"),
            &sink.url("/hook"),
            FAST_RETRIES,
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_waybill");
    let out = std::process::Command::new(bin)
        .args(["keys", "create", "--config"])
        .arg(&cfg)
        .args(["--name", "ops-tool", "--scope", "operate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let id = key.split('_').nth(1).unwrap().to_owned();
    let (s, b) = status_with(&hub, "post", "/v1/sinks/ops/pause", Some(&key)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["changed_by"], "ops-tool", "who paused is the key's name");
    let out = std::process::Command::new(bin)
        .args(["keys", "list", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        listed.contains(&id) && listed.contains("ops-tool") && listed.contains("live"),
        "{listed}"
    );
    assert!(!listed.contains(&key), "the list shows the key itself");
    let out = std::process::Command::new(bin)
        .args(["keys", "revoke", "--config"])
        .arg(&cfg)
        .arg(&id)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another process revoked it: the hub trusts what it looked up for at most 5 s.
    let end = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        let (s, _) = status_with(&hub, "get", "/v1/sinks", Some(&key)).await;
        if s == 401 {
            break;
        }
        assert!(std::time::Instant::now() < end, "a revoked key still works");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let bad = std::process::Command::new(bin)
        .args(["keys", "create", "--config"])
        .arg(&cfg)
        .args(["--name", "x", "--scope", "root"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope `root`"));
    hub.stop().await;
}

#[tokio::test]
async fn a_source_takes_hub_keys_holding_its_ingest_scope() {
    let sink = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}\n[sources.partner]\ntype = \"jq\"\nauth = {{ type = \"hub_keys\" }}\nmapping = '{MAPPING}'\nidempotency_key = \".id\"\n",
        config_toml(&dir.path().join("hub.db"), &sink.url("/hook"), FAST_RETRIES)
    );
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    let mut keys = std::collections::HashMap::new();
    for scope in ["ingest:partner", "ingest:carrier", "read", "admin"] {
        let k = create_key(&hub, scope, &[scope], None).await;
        keys.insert(
            scope,
            (
                k["key"].as_str().unwrap().to_owned(),
                k["id"].as_str().unwrap().to_owned(),
            ),
        );
    }
    let post = |key: Option<String>, id: &str, spoof: bool| {
        let mut req = hub
            .client
            .post(format!("{}/v1/ingest/partner", hub.base))
            .header("content-type", "application/json")
            .json(&carrier_event(id, "S-HUBKEY", "shipment.in_transit", 1));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if spoof {
            req = req.header("x-waybill-hub-key-scope", "partner");
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        post(Some(keys["ingest:partner"].0.clone()), "h1", false).await,
        202
    );
    assert_eq!(post(Some(keys["admin"].0.clone()), "h2", false).await, 202);
    for (who, key) in [
        (
            "another source's scope",
            Some(keys["ingest:carrier"].0.clone()),
        ),
        ("read", Some(keys["read"].0.clone())),
        ("a configuration key", Some(API_KEY.to_owned())),
        ("none", None),
    ] {
        assert_eq!(post(key.clone(), "h3", false).await, 401, "{who}");
        assert_eq!(
            post(key, "h3", true).await,
            401,
            "{who}, claiming the scope in a header"
        );
    }
    let (id, revoke) = (&keys["ingest:partner"].0, &keys["ingest:partner"].1);
    let (s, _) = status_with(&hub, "delete", &format!("/v1/keys/{revoke}"), Some(API_KEY)).await;
    assert_eq!(s, 200);
    assert_eq!(post(Some(id.clone()), "h4", false).await, 401, "revoked");
    // Accepted ones are stored without the key.
    let (_, inbox) = status_with(&hub, "get", "/v1/inbox?source=partner", Some(API_KEY)).await;
    let text = inbox.to_string();
    for (key, _) in keys.values() {
        assert!(!text.contains(key.as_str()), "a key is stored: {text}");
    }
    assert_eq!(
        inbox["inbox"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "accepted")
            .count(),
        2
    );
    hub.stop().await;
}
