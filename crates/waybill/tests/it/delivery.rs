//! Delivery end to end: order, exactly-once per subscription, outage and recovery, DLQ.

use crate::*;
use std::collections::{HashMap, HashSet};
use waybill_testkit::{FakePartner, Recorded};

pub const LIFECYCLE: [&str; 8] = [
    "order.released",
    "warehouse.picked",
    "warehouse.packed",
    "shipment.label_created",
    "shipment.dispatched",
    "shipment.in_transit",
    "shipment.out_for_delivery",
    "shipment.delivered",
];

/// Deterministic shuffle (xorshift) so a failure reproduces.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// Asserts every accepted request is signed, each event arrived once, and per shipment the
/// `sequence` values arrived in increasing order.
fn check_exactly_once_in_order(got: &[Recorded]) -> HashMap<String, Vec<i64>> {
    let mut ids = HashSet::new();
    let mut per_shipment: HashMap<String, Vec<i64>> = HashMap::new();
    let key = SigningKey::parse(SECRET).unwrap();
    for r in got {
        let id = r.header("webhook-id").unwrap().to_owned();
        let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        assert_eq!(
            r.header("webhook-signature").unwrap(),
            key.sign(&id, ts, &r.body),
            "signature"
        );
        assert!(ids.insert(id.clone()), "event {id} delivered twice");
        let j = r.json();
        assert_eq!(j["id"], id.as_str(), "webhook-id is the CloudEvents id");
        assert_eq!(j["specversion"], "1.0");
        let seq: i64 = j["sequence"].as_str().unwrap().parse().unwrap();
        per_shipment
            .entry(j["subject"].as_str().unwrap().to_owned())
            .or_default()
            .push(seq);
    }
    for (s, seqs) in &per_shipment {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{s} delivered out of log order: {seqs:?}"
        );
    }
    per_shipment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_duplicated_events_end_right_and_are_delivered_once_in_log_order() {
    let sink = FakePartner::start().await;
    // a slow sink keeps several events of a shipment waiting, so ordering is exercised
    sink.set_delay(Duration::from_millis(5));
    let hub = TestHub::start(&sink.url("hook"), "").await;
    let mut sends = Vec::new();
    for s in 0..5 {
        for (i, status) in LIFECYCLE.iter().enumerate() {
            let shipment = format!("E2E-{s}");
            let ev = carrier_event(&format!("{shipment}-{i}"), &shipment, status, i as u32);
            sends.push((ev.clone(), format!("{shipment}-{i}")));
            sends.push((ev, format!("{shipment}-{i}")));
        }
    }
    shuffle(&mut sends, 0x9e3779b97f4a7c15);
    let mut accepted = 0;
    let mut tasks = Vec::new();
    for chunk in sends.chunks(10) {
        let chunk = chunk.to_vec();
        let (client, url) = (
            hub.client.clone(),
            format!("{}/v1/ingest/carrier", hub.base),
        );
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for (ev, id) in chunk {
                statuses.push(send_signed(&client, &url, &ev, &id).await.status().as_u16());
            }
            statuses
        }));
    }
    for t in tasks {
        for st in t.await.unwrap() {
            assert!(st == 202 || st == 200, "status {st}");
            accepted += (st == 202) as usize;
        }
    }
    assert_eq!(
        accepted, 40,
        "each event accepted once, its repeat answered as duplicate"
    );
    sink.wait_until(WAIT, "40 deliveries", |got| got.len() >= 40)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = sink.accepted();
    assert_eq!(got.len(), 40);
    let per = check_exactly_once_in_order(&got);
    for s in 0..5 {
        let v = hub.get(&format!("/v1/shipments/E2E-{s}")).await;
        assert_eq!(v["state"]["milestone"], "delivered");
        assert_eq!(per[&format!("E2E-{s}")].len(), 8);
    }
    let metrics = hub
        .client
        .get(format!("{}/metrics", hub.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"waybill_delivery_attempts_total{sink="ops",outcome="delivered"} 40"#),
        "{metrics}"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_fails_for_a_while_then_recovers_gets_everything_in_order() {
    let sink = FakePartner::start().await;
    sink.set_default(503);
    let hub = TestHub::start(&sink.url("hook"), FAST_RETRIES).await;
    for s in 0..3 {
        for (i, status) in LIFECYCLE.iter().enumerate() {
            let shipment = format!("OUT-{s}");
            let r = hub
                .send(
                    &carrier_event(&format!("{shipment}-{i}"), &shipment, status, i as u32),
                    &format!("{shipment}-{i}"),
                )
                .await;
            assert_eq!(r.status(), 202);
        }
    }
    // outage: requests arrive and fail; the circuit opens
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!sink.requests().is_empty());
    assert!(sink.accepted().is_empty());
    let metrics = hub
        .client
        .get(format!("{}/metrics", hub.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"waybill_outbox_depth{sink="ops"} 24"#),
        "{metrics}"
    );
    // recovery
    sink.set_default(200);
    sink.wait_until(WAIT, "24 deliveries after recovery", |got| got.len() >= 24)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = sink.accepted();
    assert_eq!(got.len(), 24);
    check_exactly_once_in_order(&got);
    let metrics = hub
        .client
        .get(format!("{}/metrics", hub.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"waybill_outbox_depth{sink="ops"} 0"#),
        "drained: {metrics}"
    );
    let dl = hub.get("/v1/dead-letters").await;
    assert_eq!(dl["dead_letters"].as_array().unwrap().len(), 0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_deliveries_go_to_the_dlq_and_replay_delivers_them() {
    let sink = FakePartner::start().await;
    sink.fail_next(1, 400);
    sink.answer_next_with_retry_after(503, "0");
    let hub = TestHub::start(&sink.url("hook"), FAST_RETRIES).await;
    let r = hub
        .send(
            &carrier_event("d1", "DLQ-1", "shipment.in_transit", 1),
            "d1",
        )
        .await;
    assert_eq!(r.status(), 202);
    let r = hub
        .send(&carrier_event("d2", "DLQ-1", "shipment.delivered", 2), "d2")
        .await;
    assert_eq!(r.status(), 202);
    // d1 is rejected with 400 (permanent) → DLQ; d2 fails once with 503, then arrives
    sink.wait_until(WAIT, "d2 delivered", |got| got.len() == 1)
        .await;
    let dl = hub.get("/v1/dead-letters").await;
    let dl = dl["dead_letters"].as_array().unwrap().clone();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0]["error"], "HTTP 400");
    assert_eq!(dl[0]["event_type"], "shipment.in_transit");
    let id = dl[0]["id"].as_i64().unwrap();
    let r = hub
        .client
        .post(format!("{}/v1/dead-letters/{id}/replay", hub.base))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    sink.wait_until(WAIT, "replayed d1", |got| got.len() == 2)
        .await;
    let got = sink.accepted();
    assert_eq!(got[1].json()["type"], "shipment.in_transit");
    // replaying again is refused: it was replayed already
    let r = hub
        .client
        .post(format!("{}/v1/dead-letters/{id}/replay", hub.base))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let url = format!("{}/v1/dead-letters/replay", hub.base);
    let r = hub
        .client
        .post(&url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an empty body never replays everything");
    let r = hub
        .client
        .post(&url)
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({"all": true}))
        .send()
        .await
        .unwrap();
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["replayed"].as_array().unwrap().len(), 0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_resume_after_a_graceful_restart() {
    let sink = FakePartner::start().await;
    sink.set_default(503);
    let hub = TestHub::start(&sink.url("hook"), FAST_RETRIES).await;
    for (i, status) in LIFECYCLE.iter().enumerate().take(5) {
        let r = hub
            .send(
                &carrier_event(&format!("r{i}"), "RESTART-1", status, i as u32),
                &format!("r{i}"),
            )
            .await;
        assert_eq!(r.status(), 202);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dir = hub.stop().await;
    sink.set_default(200);
    let hub = TestHub::start_in(dir, &sink.url("hook"), FAST_RETRIES).await;
    sink.wait_until(WAIT, "5 deliveries after restart", |got| got.len() >= 5)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    check_exactly_once_in_order(&sink.accepted());
    assert_eq!(sink.accepted().len(), 5);
    hub.stop().await;
}

/// A sink that asks for batches gets a shipment's waiting events in one CloudEvents batch
/// request, each exactly once and in log order, signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batching_sink_gets_each_shipments_waiting_events_in_one_request() {
    let sink = FakePartner::start().await;
    sink.set_default(503);
    let dir = tempfile::tempdir().unwrap();
    let toml = config_toml(&dir.path().join("hub.db"), &sink.url("hook"), FAST_RETRIES)
        .replace("timeout = \"2s\"", "timeout = \"2s\"\nbatch = 50");
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    for s in 0..3 {
        for (i, status) in LIFECYCLE.iter().enumerate() {
            let shipment = format!("OUT-{s}");
            let id = format!("{shipment}-{i}");
            let r = hub
                .send(&carrier_event(&id, &shipment, status, i as u32), &id)
                .await;
            assert_eq!(r.status(), 202);
        }
    }
    // The receiver is down while the events come in; they wait, then go in batches.
    tokio::time::sleep(Duration::from_millis(600)).await;
    sink.set_default(200);
    let events = |got: &[Recorded]| -> Vec<serde_json::Value> {
        got.iter()
            .flat_map(|r| r.json().as_array().cloned().unwrap_or_default())
            .collect()
    };
    sink.wait_until(WAIT, "24 events in batches", |got| events(got).len() >= 24)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = sink.accepted();
    assert!(
        got.len() <= 6,
        "{} requests for 24 events of 3 shipments",
        got.len()
    );
    let key = waybill_engine::signature::SigningKey::parse(SECRET).unwrap();
    for r in &got {
        assert_eq!(
            r.header("content-type"),
            Some("application/cloudevents-batch+json")
        );
        let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        assert_eq!(
            waybill_engine::signature::verify(
                std::slice::from_ref(&key),
                r.header("webhook-id"),
                r.header("webhook-timestamp"),
                r.header("webhook-signature"),
                &r.body,
                ts
            ),
            Ok(())
        );
    }
    let all = events(&got);
    assert_eq!(all.len(), 24, "each event once");
    let mut per: HashMap<String, Vec<String>> = HashMap::new();
    for e in &all {
        per.entry(e["subject"].as_str().unwrap().to_string())
            .or_default()
            .push(e["sequence"].as_str().unwrap().to_string());
    }
    assert_eq!(per.len(), 3);
    for seqs in per.values() {
        let mut sorted = seqs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(&sorted, seqs, "in log order, no repeats");
        assert_eq!(seqs.len(), 8);
    }
    hub.stop().await;
}
