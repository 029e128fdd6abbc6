//! kill -9 under load: every acknowledged event is there after a restart, and delivered.

use crate::*;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use waybill_testkit::FakePartner;

/// Hub processes, killed when dropped (also when a test fails half way: they must not
/// outlive it).
pub struct Hubs(pub Vec<Child>);

impl Drop for Hubs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn spawn_hub(config: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("hub did not become ready");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!(
        "path = \"{}\"",
        dir.path()
            .join("hub.db")
            .display()
            .to_string()
            .replace('\\', "/")
    );
    sigkill_under_load(&dir, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_event_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let (opts, _guard) = waybill_testkit::pg::fresh("crash");
    sigkill_under_load(&dir, &pg_store_toml(&opts.schema)).await;
}

async fn sigkill_under_load(dir: &tempfile::TempDir, store: &str) {
    let sink = FakePartner::start().await;
    let cfg_path = dir.path().join("waybill.toml");
    std::fs::write(
        &cfg_path,
        config_toml_with_store(store, &sink.url("hook"), FAST_RETRIES),
    )
    .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut hub = Hubs(vec![spawn_hub(&cfg_path, port)]);
    wait_ready(&client, &base).await;

    // 8 concurrent senders, each keeps sending until the hub dies under it
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let mut senders = Vec::new();
    for w in 0..8 {
        let (client, url, acked) = (
            client.clone(),
            format!("{base}/v1/ingest/carrier"),
            acked.clone(),
        );
        senders.push(tokio::spawn(async move {
            for i in 0..100_000 {
                let shipment = format!("K-{w}-{}", i % 5);
                let id = format!("k-{w}-{i}");
                match send_acked(&client, &url, &id, &shipment, (i % 60) as u32).await {
                    Some(eid) => acked.lock().unwrap().push((shipment, eid)),
                    None => return,
                }
            }
        }));
    }
    // let load build up, with deliveries flowing, then kill -9
    while acked.lock().unwrap().len() < 1500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hub.0[0].kill().unwrap();
    hub.0[0].wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 1500);

    hub.0[0] = spawn_hub(&cfg_path, port);
    wait_ready(&client, &base).await;
    // every acknowledged event is in the store
    let shipments: HashSet<&String> = acked.iter().map(|(s, _)| s).collect();
    let mut stored = HashSet::new();
    for s in shipments {
        let v: serde_json::Value = client
            .get(format!("{base}/v1/shipments/{s}"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for t in v["timeline"].as_array().unwrap() {
            stored.insert(t["event"]["id"].as_str().unwrap().to_owned());
        }
    }
    assert_kept_and_delivered(&acked, &stored, &sink).await;
}

/// Every acknowledged event (shipment, event id) is among `stored`, and reaches `sink`
/// (at least once; webhook-id dedupes) within a minute.
pub async fn assert_kept_and_delivered(
    acked: &[(String, String)],
    stored: &HashSet<String>,
    sink: &FakePartner,
) {
    let missing: Vec<_> = acked.iter().filter(|(_, e)| !stored.contains(e)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let want: HashSet<String> = acked.iter().map(|(_, e)| e.clone()).collect();
    sink.wait_until(
        Duration::from_secs(60),
        "all acknowledged events delivered",
        |got| {
            let have: HashSet<&str> = got.iter().filter_map(|r| r.header("webhook-id")).collect();
            want.iter().all(|e| have.contains(e.as_str()))
        },
    )
    .await;
}
