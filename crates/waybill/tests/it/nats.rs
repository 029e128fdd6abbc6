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

/// A server of the test's own on a free port, with one stream.
async fn server_with_stream(
    name: &str,
    subjects: &str,
) -> (
    u16,
    tempfile::TempDir,
    Child,
    async_nats::jetstream::Context,
) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = tempfile::tempdir().unwrap();
    let server = start_server(port, store.path());
    let js = connect(port).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    (port, store, server, js)
}

/// Every acknowledged event reaches the stream exactly once and in each shipment's log
/// order, although the server stops and starts again while events keep coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_stream_once_in_order_across_a_server_restart() {
    let (port, store, mut server, js) = server_with_stream("WAYBILL", "waybill.>").await;

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

/// A NATS source reads CloudEvents in structured and binary mode and any JSON through a
/// mapping, acknowledges each message once it is stored, and goes on after the server
/// stops and starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_source_stores_cloudevents_and_mapped_json_and_survives_a_restart() {
    let (port, store, mut server, js) = server_with_stream("PARTNER", "partner.>").await;
    let sink = waybill_testkit::FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}\n[sources.ce]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\nstream = \"PARTNER\"\nfilter_subject = \"partner.ce.>\"\ntimeout = \"1s\"\n[sources.wmsbus]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\nstream = \"PARTNER\"\nfilter_subject = \"partner.json.>\"\nmapping = '{MAPPING}'\ntimeout = \"1s\"\n",
        config_toml(&dir.path().join("hub.db"), &sink.url("hook"), FAST_RETRIES)
    );
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);

    let structured = serde_json::json!({"specversion": "1.0", "id": "ce-1", "source": "/partner",
        "type": "shipment.dispatched", "subject": "S-N1", "time": "2026-11-23T08:00:00Z"});
    js.publish(
        "partner.ce.1",
        serde_json::to_vec(&structured).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let mut h = async_nats::HeaderMap::new();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "ce-2"),
        ("ce-source", "/partner"),
        ("ce-type", "shipment.delivered"),
        ("ce-subject", "S-N1"),
        ("ce-time", "2026-11-23T15:00:00Z"),
    ] {
        h.insert(k, v);
    }
    js.publish_with_headers(
        "partner.ce.2",
        h,
        br#"{"signed_by":"dock 4"}"#.to_vec().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let json = carrier_event("W-1", "S-N2", "warehouse.packed", 5);
    js.publish("partner.json.1", serde_json::to_vec(&json).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    sink.wait_until(WAIT, "3 events from NATS", |got| got.len() >= 3)
        .await;
    let s1 = hub.get("/v1/shipments/S-N1").await;
    assert_eq!(s1["state"]["milestone"], "delivered", "{s1}");
    let timeline = s1["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2);
    assert_eq!(timeline[1]["event"]["data"]["signed_by"], "dock 4");
    let s2 = hub.get("/v1/shipments/S-N2").await;
    assert_eq!(s2["timeline"].as_array().unwrap().len(), 1, "{s2}");
    // Each message is acknowledged once its payload is stored.
    let stream = js.get_stream("PARTNER").await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    for name in ["waybill-ce", "waybill-wmsbus"] {
        let mut c: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(name).await.unwrap();
        loop {
            let info = c.info().await.unwrap();
            if (info.num_ack_pending, info.num_pending) == (0, 0) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{name}: {info:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The server stops and starts again; the sources go on where they were.
    server.kill().unwrap();
    server.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut server = start_server(port, store.path());
    let js = connect(port).await;
    let json = carrier_event("W-2", "S-N2", "shipment.dispatched", 6);
    js.publish("partner.json.2", serde_json::to_vec(&json).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    sink.wait_until(WAIT, "the 4th event after the restart", |got| {
        got.len() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.accepted().len(), 4, "nothing twice");
    // Nothing left unread (messages whose acknowledgement the killed server lost come
    // again after the ack wait and are duplicates).
    let stream = js.get_stream("PARTNER").await.unwrap();
    for name in ["waybill-ce", "waybill-wmsbus"] {
        let mut c: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(name).await.unwrap();
        assert_eq!(c.info().await.unwrap().num_pending, 0, "{name}");
    }
    hub.stop().await;
    server.kill().unwrap();
    let _ = server.wait();
}

/// A server that admits only one NKey user: the sink publishes with that user's seed;
/// a configuration with a malformed seed is refused before anything connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_authenticates_with_an_nkey() {
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = tempfile::tempdir().unwrap();
    let conf = store.path().join("server.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\nauthorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            store.path().join("js").display(),
            user.public_key()
        ),
    )
    .unwrap();
    let mut server = Command::new(server_bin())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} (install nats-server): {e}", server_bin()));
    // Without the key the server refuses; with it, it admits.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let client = loop {
        match async_nats::ConnectOptions::with_nkey(seed.clone())
            .connect(format!("nats://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(
        async_nats::connect(format!("nats://127.0.0.1:{port}"))
            .await
            .is_err(),
        "the server admits only the NKey user"
    );
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "WAYBILL".into(),
        subjects: vec!["waybill.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let sink = |nkey: &str| {
        config_toml(&dir.path().join("hub.db"), "http://127.0.0.1:1/unused", "")
            .replace(
                &format!("type = \"http_webhook\"\nurl = \"http://127.0.0.1:1/unused\"\nsecret = \"plain:{SECRET}\"\ntimeout = \"2s\""),
                &format!("type = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\nnkey = \"plain:{nkey}\"\ntimeout = \"2s\""),
            )
    };
    let bad = waybill::Config::parse(&sink("SUNOTASEED"), std::iter::empty()).unwrap();
    let errs = bad.validate().err().expect("a malformed seed is refused");
    assert!(
        errs.iter().any(|e| e.to_string().contains("nkey")),
        "{errs:?}"
    );
    let cfg = waybill::Config::parse(&sink(&seed), std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    let ev = carrier_event("nk-1", "NK-1", "shipment.in_transit", 1);
    assert_eq!(hub.send(&ev, "nk-1").await.status(), 202);
    wait_for(&js, 1, "the event published by the NKey user").await;
    hub.stop().await;
    server.kill().unwrap();
    server.wait().unwrap();
}
