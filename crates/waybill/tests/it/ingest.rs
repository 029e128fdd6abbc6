//! Ingest over HTTP: acknowledgements, duplicates and every kind of rejection.

use crate::*;
use serde_json::json;
use waybill_testkit::FakePartner;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_answers_202_then_200_for_a_duplicate_with_the_same_ids() {
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("hook"), "").await;
    let ev = carrier_event("e1", "S-1", "shipment.in_transit", 1);
    let r = hub.send(&ev, "msg-1").await;
    assert_eq!(r.status(), 202);
    let first: serde_json::Value = r.json().await.unwrap();
    let r = hub.send(&ev, "msg-1").await;
    assert_eq!(r.status(), 200);
    let again: serde_json::Value = r.json().await.unwrap();
    assert_eq!(first["event_ids"], again["event_ids"]);
    assert_eq!(again["status"], "duplicate");
    let s = hub.get("/v1/shipments/S-1").await;
    assert_eq!(s["state"]["milestone"], "in_transit");
    assert_eq!(s["timeline"].as_array().unwrap().len(), 1);
    // Identifiers are stored as they are matched: upper case, no spaces or dashes.
    assert_eq!(s["xrefs"][0]["value"], "1ZS1");
    let entry = &s["timeline"][0];
    assert_eq!(entry["event"]["source"], "/sources/carrier");
    assert_eq!(entry["event"]["time"], "2026-11-23T10:01:00Z");
    assert!(entry["received_at"].is_string());
    hub.stop().await;
}

async fn problem(r: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    assert_eq!(p["status"], status);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_is_a_problem_and_is_kept_in_the_inbox() {
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("hook"), "").await;
    let url = format!("{}/v1/ingest/carrier", hub.base);
    let c = &hub.client;

    // bad signature
    let r = c
        .post(&url)
        .header("webhook-id", "m1")
        .header(
            "webhook-timestamp",
            time::OffsetDateTime::now_utc().unix_timestamp().to_string(),
        )
        .header("webhook-signature", "v1,AAAA")
        .body(r#"{"a":1}"#)
        .send()
        .await
        .unwrap();
    problem(r, 401, "ingest.bad_signature").await;
    // unparsable JSON, correctly signed
    let bytes = b"{\"id\": \"x\",".to_vec();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let sig = SigningKey::parse(SECRET).unwrap().sign("m2", ts, &bytes);
    let r = c
        .post(&url)
        .header("webhook-id", "m2")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let p = problem(r, 400, "ingest.bad_json").await;
    assert!(p["detail"].as_str().unwrap().contains("line 1"), "{p}");
    // mapping failure: unknown event type
    let r = hub
        .send(&carrier_event("e9", "S-9", "shipment.teleported", 1), "m3")
        .await;
    let p = problem(r, 422, "mapping.bad_output").await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("shipment.teleported"),
        "{p}"
    );
    assert!(p["inbox_id"].is_number());
    // too large (limit 4096 for this source)
    let big = json!({"id": "big", "pad": "x".repeat(5000)});
    let r = hub.send(&big, "m4").await;
    problem(r, 413, "ingest.too_large").await;
    // unknown source
    let r = c
        .post(format!("{}/v1/ingest/nope", hub.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(r, 404, "ingest.unknown_source").await;
    // API-key source without a key
    let r = c
        .post(format!("{}/v1/ingest/wms", hub.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(r, 401, "ingest.unauthorized").await;

    let inbox = hub.get("/v1/inbox?status=rejected").await;
    let codes: Vec<&str> = inbox["inbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason_code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        vec![
            "ingest.unauthorized",
            "ingest.unknown_source",
            "ingest.too_large",
            "mapping.bad_output",
            "ingest.bad_json",
            "ingest.bad_signature"
        ]
    );
    let bad_json = &inbox["inbox"][4];
    assert_eq!(bad_json["body"], "{\"id\": \"x\",");
    // nothing reached the event log
    let r = c
        .get(format!("{}/v1/shipments/S-9", hub.base))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    problem(r, 404, "api.shipment_not_found").await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_sources_and_canonical_events_are_accepted() {
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("hook"), "").await;
    let c = &hub.client;
    let r = c
        .post(format!("{}/v1/ingest/wms", hub.base))
        .bearer_auth("wms-key")
        .json(&carrier_event("w1", "S-2", "warehouse.packed", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // idempotency key from the payload's `id`: a re-sent payload is a duplicate
    let r = c
        .post(format!("{}/v1/ingest/wms", hub.base))
        .bearer_auth("wms-key")
        .json(&carrier_event("w1", "S-2", "warehouse.packed", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // canonical events: without the API key 401, with it 202
    let ev = json!({"specversion": "1.0", "id": "ce-1", "source": "x", "type": "shipment.delivered", "subject": "S-2", "time": "2026-11-23T12:00:00Z", "data": {"signed_by": "J DOE"}});
    let r = c
        .post(format!("{}/v1/events", hub.base))
        .json(&ev)
        .send()
        .await
        .unwrap();
    problem(r, 401, "api.unauthorized").await;
    let r = c
        .post(format!("{}/v1/events", hub.base))
        .bearer_auth(API_KEY)
        .header("idempotency-key", "k1")
        .json(&ev)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let s = hub.get("/v1/shipments/S-2").await;
    assert_eq!(s["state"]["milestone"], "delivered");
    assert_eq!(s["timeline"][1]["event"]["data"]["signed_by"], "J DOE");
    let list = hub.get("/v1/shipments?state=delivered").await;
    assert_eq!(list["shipments"][0]["key"], "S-2");
    let metrics = c
        .get(format!("{}/metrics", hub.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"waybill_ingest_total{source="wms",outcome="duplicate"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("waybill_ingest_ack_seconds_count 3"),
        "{metrics}"
    );
    // One instance on SQLite: it holds everything, no lease is written.
    assert!(metrics.contains("waybill_leases_held 0\n"), "{metrics}");
    assert!(metrics.contains("waybill_instances_alive 1\n"), "{metrics}");
    assert!(metrics.contains(",store=\"sqlite\"} 1\n"), "{metrics}");
    #[cfg(target_os = "linux")]
    assert!(
        waybill_engine::metrics::metric_value(&metrics, "process_cpu_seconds_total")
            .is_some_and(|v| v > 0.0),
        "{metrics}"
    );
    assert_eq!(
        c.get(format!("{}/readyz", hub.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    hub.stop().await;
}

/// `waybill bench ingest` reads the hub's CPU from `process_cpu_seconds_total` on its
/// `/metrics` around the timed phase, with this process's and the machine's. The hub here
/// runs in the test process, so both grow with the run.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_reads_the_hubs_cpu_from_its_metrics() {
    use waybill::bench::{run, CpuWatch, Plan};
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("hook"), "").await;
    let plan = Plan {
        // The test source `carrier` has the bench's mapping.
        url: format!("{}/v1/ingest/carrier", hub.base),
        secret: SECRET.into(),
        events: 2_000,
        shipments: 20,
        concurrency: 8,
        rate: None,
        run_id: "cpu".into(),
        cpu: CpuWatch::Hub(format!("{}/metrics", hub.base)),
        profile: waybill::bench::Profile::Minimal,
    };
    let r = run(&plan).await.unwrap();
    assert_eq!((r.ok, r.failed), (2_000, 0));
    let cpu = r.cpu.unwrap();
    assert!(cpu.hub_us.unwrap() > 0.0, "{cpu:?}");
    assert!(cpu.own_us.unwrap() > 0.0, "{cpu:?}");
    assert!(cpu.machine_us.unwrap().0 > 0.0, "{cpu:?}");
    let line = cpu.line(false).unwrap();
    assert!(line.starts_with("cpu        per event: hub "), "{line}");
    // `Off` reads nothing (the ceiling run).
    let off = run(&Plan {
        cpu: CpuWatch::Off,
        events: 10,
        run_id: "cpu-off".into(),
        ..plan.clone()
    })
    .await
    .unwrap();
    assert_eq!(off.cpu, None);
    hub.stop().await;
}

/// Credential headers — the common ones and every partner format's secret header, with no
/// source of that format configured — are neither stored nor shown; other headers are
/// kept with the payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_headers_are_never_stored_whatever_the_source() {
    let sink = waybill_testkit::FakePartner::start().await;
    let hub = TestHub::start(&sink.url("hook"), "").await;
    let r = hub
        .client
        .post(format!("{}/v1/ingest/removed-karrio-source", hub.base))
        .header("x-event-id", "whsec_the_partners_secret")
        .header("authorization", "Bearer leaked")
        .header("x-partner-trace", "abc")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let inbox = hub.get("/v1/inbox?status=rejected").await;
    let headers: Vec<String> = inbox["inbox"][0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap().to_ascii_lowercase())
        .collect();
    assert!(
        headers.contains(&"x-partner-trace".to_owned()),
        "{headers:?}"
    );
    for secret in ["x-event-id", "authorization"] {
        assert!(!headers.contains(&secret.to_owned()), "{headers:?}");
    }
    assert!(!inbox.to_string().contains("whsec_the_partners_secret"));
    hub.stop().await;
}

/// A partner's own event ids are its own: two sources that both send `evt-1` for one
/// shipment are two events (a source cannot suppress another's by guessing its ids).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_may_use_the_same_event_ids() {
    let sink = waybill_testkit::FakePartner::start().await;
    let hub = TestHub::start(&sink.url("hook"), "").await;
    let ev = carrier_event("evt-1", "S-SHARED", "shipment.in_transit", 5);
    let a: serde_json::Value = hub.send(&ev, "msg-a").await.json().await.unwrap();
    let r = hub
        .client
        .post(format!("{}/v1/ingest/wms", hub.base))
        .bearer_auth("wms-key")
        .json(&ev)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_ne!(a["event_ids"], b["event_ids"], "{a} {b}");
    hub.stop().await;
}

/// Two different drafts of one payload that name the same fact are both kept (`~2`);
/// an exact repeat inside the payload is dropped; the payload re-sent changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cartons_with_the_same_status_in_one_payload_are_both_kept() {
    let sink = waybill_testkit::FakePartner::start().await;
    let hub = TestHub::start(&sink.url("hook"), "").await;
    let carton = |tracking: &str| {
        serde_json::json!({"type": "shipment.dispatched", "subject": "S-CARTONS",
            "time": "2026-11-23T10:00:00Z", "code": "SHIPPED", "refs": {"tracking": tracking}})
    };
    let body = serde_json::json!([carton("1Z-A"), carton("1Z-B"), carton("1Z-A")]);
    let post = || {
        hub.client
            .post(format!("{}/v1/events", hub.base))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
    };
    let r = post().await.unwrap();
    assert_eq!(r.status(), 202);
    let first: serde_json::Value = r.json().await.unwrap();
    let ids = first["event_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 2, "{first}");
    assert_ne!(ids[0], ids[1]);
    let again: serde_json::Value = post().await.unwrap().json().await.unwrap();
    assert_eq!(again["event_ids"].as_array().unwrap(), &ids, "{again}");
    let s = hub.get("/v1/shipments/S-CARTONS").await;
    assert_eq!(s["timeline"].as_array().unwrap().len(), 2, "{s}");
    hub.stop().await;
}
