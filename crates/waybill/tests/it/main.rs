//! End-to-end tests: the real `serve()` on port 0 with a temporary SQLite file, a
//! FakePartner as the sink, real HTTP in between.
#![allow(clippy::unwrap_used, missing_docs)]

mod api;
mod audit;
mod cluster;
mod config;
mod console;
mod crash;
mod delivery;
mod edi;
mod hostile;
mod identity;
mod ingest;
mod keys;
mod limits;
mod nats;
mod odoo;
mod partners;
mod privacy;
mod scans;
mod telemetry;
mod tenants;
mod tls;
mod workflows;

use std::time::Duration;
use waybill_engine::signature::SigningKey;

pub const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtdGVzdC1zZWNyZXQtMTIzNA==";
pub const API_KEY: &str = "test-api-key";

/// The carrier mapping the tests use: one event per payload.
pub const MAPPING: &str =
    r#"{type: .status, subject: .shipment, time: .at, key: .id, refs: {tracking: .tracking}}"#;

pub fn config_toml(db: &std::path::Path, sink_url: &str, delivery: &str) -> String {
    let store = format!("path = \"{}\"", db.display().to_string().replace('\\', "/"));
    config_toml_with_store(&store, sink_url, delivery)
}

/// The `[store]` section of a hub on PostgreSQL, in `schema`, and a `[cluster]` with
/// 2-second leases (a restarted or surviving instance takes over quickly).
pub fn pg_store_toml(schema: &str) -> String {
    format!(
        "type = \"postgres\"\nurl = \"plain:{}\"\nschema = \"{schema}\"\n[cluster]\nlease_ttl = \"2s\"",
        waybill_testkit::pg::url()
    )
}

/// The tests' configuration with `store` as the body of `[store]`.
pub fn config_toml_with_store(store: &str, sink_url: &str, delivery: &str) -> String {
    format!(
        r#"
[server]
api_keys = ["plain:{API_KEY}"]
[store]
{store}
[log]
level = "warn"
[delivery]
{delivery}
[sources.carrier]
type = "jq"
auth = {{ type = "standard_webhooks", secrets = ["plain:{SECRET}"] }}
mapping = '{MAPPING}'
max_body_bytes = 4096
[sources.wms]
type = "jq"
auth = {{ type = "api_key", keys = ["plain:wms-key"] }}
mapping = '{MAPPING}'
idempotency_key = ".id"
[sinks.ops]
type = "http_webhook"
url = "{sink_url}"
secret = "plain:{SECRET}"
timeout = "2s"
[[subscriptions]]
name = "ops-all"
sink = "ops"
"#
    )
}

pub struct TestHub {
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: tempfile::TempDir,
}

impl TestHub {
    pub async fn start(sink_url: &str, delivery: &str) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, sink_url, delivery).await
    }

    pub async fn start_in(dir: tempfile::TempDir, sink_url: &str, delivery: &str) -> TestHub {
        let cfg = waybill::Config::parse(
            &config_toml(&dir.path().join("hub.db"), sink_url, delivery),
            std::iter::empty(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::from_parts(cfg, listener, dir)
    }

    pub fn from_parts(
        cfg: waybill::Config,
        listener: tokio::net::TcpListener,
        dir: tempfile::TempDir,
    ) -> TestHub {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(waybill::serve(cfg, listener, async move {
            let _ = rx.await;
        }));
        TestHub {
            base,
            client: reqwest::Client::new(),
            stop: Some(tx),
            task: Some(task),
            dir,
        }
    }

    /// Graceful stop (like SIGTERM); returns the temp dir for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
        self.dir
    }

    pub async fn send(&self, body: &serde_json::Value, webhook_id: &str) -> reqwest::Response {
        send_signed(
            &self.client,
            &format!("{}/v1/ingest/carrier", self.base),
            body,
            webhook_id,
        )
        .await
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub async fn send_signed(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    webhook_id: &str,
) -> reqwest::Response {
    try_send_signed(client, url, body, webhook_id)
        .await
        .unwrap()
}

/// The same, with the transport's error (a hub killed under the sender).
pub async fn try_send_signed(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    webhook_id: &str,
) -> reqwest::Result<reqwest::Response> {
    let bytes = serde_json::to_vec(body).unwrap();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let sig = SigningKey::parse(SECRET)
        .unwrap()
        .sign(webhook_id, ts, &bytes);
    client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(bytes)
        .send()
        .await
}

/// Sends a signed carrier event; the id of the event the hub acknowledged (202), or None
/// when it did not (a killed hub, an error).
pub async fn send_acked(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    shipment: &str,
    minute: u32,
) -> Option<String> {
    let ev = carrier_event(id, shipment, "shipment.in_transit", minute);
    let r = try_send_signed(client, url, &ev, id).await.ok()?;
    if r.status() != 202 {
        return None;
    }
    let j: serde_json::Value = r.json().await.ok()?;
    Some(j["event_ids"][0].as_str()?.to_owned())
}

/// A carrier event for the test mapping.
pub fn carrier_event(id: &str, shipment: &str, status: &str, minute: u32) -> serde_json::Value {
    serde_json::json!({"id": id, "shipment": shipment, "status": status,
        "at": format!("2026-11-23T10:{minute:02}:00Z"), "tracking": format!("1Z-{shipment}")})
}

/// Fast retries for tests: no jitter, short steps, a small circuit.
pub const FAST_RETRIES: &str = r#"retry_schedule = ["50ms", "100ms", "100ms", "200ms", "200ms", "200ms", "200ms", "200ms", "200ms", "200ms"]
jitter = "none"
circuit_failure_threshold = 3
circuit_open_for = "200ms"
"#;

pub const WAIT: Duration = Duration::from_secs(20);
