//! The NATS JetStream sink end to end, against a nats-server of the test's own (the
//! `nats-server` binary: `NATS_SERVER`, or on PATH; `.ci/run` has it), stopped and started
//! again in the middle of a run.

use crate::delivery::LIFECYCLE;
use crate::*;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};

fn server_bin() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into())
}

fn start_server(port: u16, dir: &std::path::Path) -> Child {
    Command::new(server_bin())
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} (install nats-server): {e}", server_bin()))
}

async fn connect(port: u16) -> async_nats::jetstream::Context {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match async_nats::connect(format!("nats://127.0.0.1:{port}")).await {
            Ok(c) => return async_nats::jetstream::new(c),
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("nats-server did not come up: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn messages(js: &async_nats::jetstream::Context) -> u64 {
    match js.get_stream("WAYBILL").await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

async fn wait_for(js: &async_nats::jetstream::Context, n: u64, what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while messages(js).await < n {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {} messages",
            messages(js).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every acknowledged event reaches the stream exactly once and in each shipment's log
/// order, although the server stops and starts again while events keep coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_stream_once_in_order_across_a_server_restart() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = tempfile::tempdir().unwrap();
    let mut server = start_server(port, store.path());
    let js = connect(port).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "WAYBILL".into(),
        subjects: vec!["waybill.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let retries = r#"retry_schedule = ["100ms", "100ms", "200ms", "200ms", "200ms", "300ms", "300ms", "300ms", "300ms", "300ms", "300ms", "300ms", "300ms", "300ms", "300ms", "300ms", "300ms", "300ms", "300ms", "300ms"]
jitter = "none"
circuit_failure_threshold = 3
circuit_open_for = "200ms"
"#;
    let toml = config_toml(&dir.path().join("hub.db"), "http://127.0.0.1:1/unused", retries)
        .replace(
            &format!("type = \"http_webhook\"\nurl = \"http://127.0.0.1:1/unused\"\nsecret = \"plain:{SECRET}\"\ntimeout = \"2s\""),
            &format!("type = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\ntimeout = \"1s\""),
        );
    assert!(toml.contains("type = \"nats\""), "{toml}");
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);

    let send = |s: usize, i: usize| {
        let shipment = format!("OUT-{s}");
        let id = format!("{shipment}-{i}");
        (carrier_event(&id, &shipment, LIFECYCLE[i], i as u32), id)
    };
    for s in 0..3 {
        for i in 0..4 {
            let (body, id) = send(s, i);
            assert_eq!(hub.send(&body, &id).await.status(), 202);
        }
    }
    wait_for(&js, 12, "the first 12 events").await;

    // The server goes away; events keep coming and are acknowledged by the hub.
    server.kill().unwrap();
    server.wait().unwrap();
    for s in 0..3 {
        for i in 4..8 {
            let (body, id) = send(s, i);
            assert_eq!(hub.send(&body, &id).await.status(), 202);
        }
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut server = start_server(port, store.path());
    let js = connect(port).await;
    wait_for(&js, 24, "all 24 events after the restart").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(messages(&js).await, 24, "each event once");

    let stream = js.get_stream("WAYBILL").await.unwrap();
    let mut per: HashMap<String, Vec<i64>> = HashMap::new();
    for seq in 1..=24 {
        let m = stream.get_raw_message(seq).await.unwrap();
        let ev: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let subject = ev["subject"].as_str().unwrap().to_string();
        assert_eq!(
            m.subject.as_str(),
            format!("waybill.{}.{subject}", ev["type"].as_str().unwrap())
        );
        assert_eq!(
            m.headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.as_str()),
            ev["id"].as_str()
        );
        per.entry(subject)
            .or_default()
            .push(ev["sequence"].as_str().unwrap().parse().unwrap());
    }
    assert_eq!(per.len(), 3);
    for seqs in per.values() {
        assert_eq!(seqs, &(1..=8).collect::<Vec<i64>>(), "log order");
    }
    let dl = hub.get("/v1/dead-letters").await;
    assert_eq!(dl["dead_letters"].as_array().unwrap().len(), 0);
    hub.stop().await;
    server.kill().unwrap();
    let _ = server.wait();
}
