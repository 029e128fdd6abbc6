//! Limits (issue 19, part 6): a source over its rate limit gets 429s with `Retry-After`
//! while another source is served as usual; throttled requests are counted, never stored;
//! the global cap on requests in flight; a sink's request rate.

use crate::*;
use std::time::Instant;
use waybill_testkit::FakePartner;

/// A hub on the tests' configuration as `edit` changes it (a source, `[limits]`, a sink key).
async fn hub_with(sink_url: &str, edit: impl Fn(String) -> String) -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let text = edit(config_toml(&dir.path().join("hub.db"), sink_url, ""));
    let cfg = waybill::Config::parse(&text, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    TestHub::from_parts(cfg, listener, dir)
}

/// Source `a`: the carrier source's signature and mapping, limited to 20/s, burst 20.
fn with_source_a(text: String) -> String {
    format!(
        r#"{text}
[sources.a]
type = "jq"
auth = {{ type = "standard_webhooks", secrets = ["plain:{SECRET}"] }}
mapping = '{MAPPING}'
rate_limit = {{ per_second = 20, burst = 20 }}
"#
    )
}

/// One sample of `/metrics` with these labels, 0 when absent.
fn sample(metrics: &str, name_and_labels: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0)
}

/// What one request got: status, `Retry-After` seconds, latency.
type Answer = (u16, Option<u64>, Duration);

async fn post(client: &reqwest::Client, url: &str, id: &str, shipment: &str) -> Answer {
    let ev = carrier_event(id, shipment, "shipment.in_transit", 1);
    let t = Instant::now();
    let r = send_signed(client, url, &ev, id).await;
    let took = t.elapsed();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if status == 429 {
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: serde_json::Value = r.json().await.unwrap();
        assert_eq!(p["code"], "ingest.rate_limited", "{p}");
        assert!(p.get("inbox_id").is_none(), "nothing stored: {p}");
    }
    (status, retry_after, took)
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// Source `a` (20/s, burst 20) is sent 200 requests in about a second — 10× its rate —
/// while source `carrier` (no limit) sends 20 spaced ones. `a` gets at least 150 429s,
/// each with `Retry-After`, and no more accepted than its bucket allows; every one of
/// `carrier`'s is accepted at its usual latency. Nothing throttled is in the inbox; every
/// throttled request is counted in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_source_is_throttled_while_another_is_served() {
    let sink = FakePartner::start().await;
    let hub = hub_with(&sink.url("hook"), with_source_a).await;
    let url_a = format!("{}/v1/ingest/a", hub.base);
    let url_b = format!("{}/v1/ingest/carrier", hub.base);
    // Warm-up: one request each, so connection set-up is not in the figures.
    let client_b = reqwest::Client::new();
    assert_eq!(post(&client_b, &url_b, "b-warm", "B-0").await.0, 202);

    let client_a = reqwest::Client::new();
    let started = Instant::now();
    let burst = tokio::spawn({
        let (client, url) = (client_a.clone(), url_a.clone());
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            let mut sent = Vec::new();
            for i in 0..200 {
                tick.tick().await;
                let (client, url) = (client.clone(), url.clone());
                sent.push(tokio::spawn(async move {
                    post(&client, &url, &format!("a-{i}"), &format!("A-{i}")).await
                }));
            }
            let mut out = Vec::new();
            for s in sent {
                out.push(s.await.unwrap());
            }
            out
        }
    });
    let steady = tokio::spawn({
        let (client, url) = (client_b.clone(), url_b.clone());
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut out = Vec::new();
            for i in 0..20 {
                tick.tick().await;
                out.push(post(&client, &url, &format!("b-{i}"), &format!("B-{i}")).await);
            }
            out
        }
    });
    let a: Vec<Answer> = burst.await.unwrap();
    let elapsed = started.elapsed();
    let b: Vec<Answer> = steady.await.unwrap();

    let accepted_a = a.iter().filter(|r| r.0 == 202).count();
    let throttled_a: Vec<&Answer> = a.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(
        accepted_a + throttled_a.len(),
        200,
        "only 202 or 429: {a:?}"
    );
    assert!(throttled_a.len() >= 150, "{} throttled", throttled_a.len());
    assert!(
        throttled_a.iter().all(|r| r.1.is_some_and(|s| s >= 1)),
        "every 429 says when to retry"
    );
    // The bucket: 20 at once, then 20 a second (plus one for rounding).
    let allowed = 20.0 + 20.0 * elapsed.as_secs_f64() + 1.0;
    assert!(
        accepted_a as f64 <= allowed,
        "{accepted_a} accepted in {elapsed:?}, at most {allowed}"
    );
    assert!(accepted_a >= 20, "the burst is admitted: {accepted_a}");
    assert!(b.iter().all(|r| r.0 == 202), "{b:?}");
    let latencies: Vec<Duration> = b.iter().map(|r| r.2).collect();
    let (p50, p99) = (
        percentile(latencies.clone(), 0.5),
        percentile(latencies, 0.99),
    );
    // A sanity bound only; the figures are in BENCHMARKS.md.
    assert!(p99 < Duration::from_millis(500), "carrier p99 {p99:?}");
    eprintln!(
        "a: {accepted_a} accepted, {} throttled in {elapsed:?}; carrier: p50 {p50:?}, p99 {p99:?}",
        throttled_a.len()
    );

    // Nothing of the throttled requests is stored: `a`'s inbox holds its accepted ones.
    let inbox = hub.get("/v1/inbox?source=a&limit=500").await;
    let rows = inbox["inbox"].as_array().unwrap();
    assert_eq!(rows.len(), accepted_a, "{inbox}");
    assert!(rows.iter().all(|r| r["status"] == "accepted"), "{inbox}");
    // … and every one is counted.
    let metrics = hub
        .client
        .get(format!("{}/metrics", hub.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(
            &metrics,
            r#"waybill_ingest_throttled_total{source="a",limit="rate"}"#
        ),
        throttled_a.len() as u64,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"waybill_ingest_total{source="a",outcome="accepted"}"#
        ),
        accepted_a as u64
    );
    assert_eq!(
        sample(
            &metrics,
            r#"waybill_ingest_throttled_total{source="carrier",limit="rate"}"#
        ),
        0
    );
    hub.stop().await;
}

/// Unknown source names share one bucket (10/s, burst 50 by default): past it they are
/// answered 429 and leave no inbox record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sources_share_one_bucket() {
    let sink = FakePartner::start().await;
    let hub = hub_with(&sink.url("hook"), |t| {
        format!("{t}\n[limits]\nunknown_sources = {{ per_second = 1, burst = 3 }}\n")
    })
    .await;
    let mut statuses = Vec::new();
    for name in ["x1", "x2", "x3", "x4", "x5"] {
        let r = hub
            .client
            .post(format!("{}/v1/ingest/{name}", hub.base))
            .body("{}")
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [404, 404, 404, 429, 429]);
    let inbox = hub.get("/v1/inbox?status=rejected").await;
    assert_eq!(inbox["inbox"].as_array().unwrap().len(), 3, "{inbox}");
    hub.stop().await;
}

/// `[limits] max_in_flight = 1`: while one request is being read (its body is still
/// coming), another is answered 429 `ingest.overloaded` with `Retry-After: 1`; once it
/// is done, requests are admitted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_cap_answers_429_while_full() {
    use tokio::io::AsyncWriteExt;
    let sink = FakePartner::start().await;
    let hub = hub_with(&sink.url("hook"), |t| {
        format!("{t}\n[limits]\nmax_in_flight = 1\n")
    })
    .await;
    let url = format!("{}/v1/ingest/carrier", hub.base);
    // The hub is up and idle: nothing else competes for the one place.
    let deadline = Instant::now() + WAIT;
    while hub
        .client
        .get(format!("{}/healthz", hub.base))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the hub never came up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A request whose body never finishes holds the only place.
    let addr = hub.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        format!(
            "POST /v1/ingest/carrier HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 100\r\n\r\n{{\"id\":"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Its head is in the router before anything else is sent (the hub is idle).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    let r = loop {
        n += 1;
        let ev = carrier_event(&format!("c-{n}"), "C-1", "shipment.in_transit", 1);
        let r = send_signed(&hub.client, &url, &ev, &format!("c-{n}")).await;
        if r.status() == 429 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["code"], "ingest.overloaded", "{p}");
    drop(slow);
    let deadline = Instant::now() + WAIT;
    loop {
        n += 1;
        let ev = carrier_event(&format!("c-{n}"), "C-1", "shipment.in_transit", 1);
        let r = send_signed(&hub.client, &url, &ev, &format!("c-{n}")).await;
        if r.status() == 202 {
            break;
        }
        assert!(Instant::now() < deadline, "the place is never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
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
        sample(
            &metrics,
            r#"waybill_ingest_throttled_total{source="carrier",limit="in_flight"}"#
        ) >= 1,
        "{metrics}"
    );
    hub.stop().await;
}

/// A sink limited to 10 requests a second (burst 1): 30 events of three shipments take
/// about 2.9 s to deliver, and each shipment's arrive in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_rate_limit_spaces_deliveries_in_order() {
    let sink = FakePartner::start().await;
    let hub = hub_with(&sink.url("hook"), |t| {
        t.replace(
            "[sinks.ops]\n",
            "[sinks.ops]\nmax_requests_per_second = 10\n",
        )
    })
    .await;
    let started = Instant::now();
    for i in 0..30u32 {
        let shipment = format!("R-{}", i % 3);
        let ev = carrier_event(&format!("r-{i}"), &shipment, "shipment.in_transit", i);
        assert_eq!(hub.send(&ev, &format!("r-{i}")).await.status(), 202);
    }
    // After about a second, no more than the rate allows has gone out.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let early = sink.accepted().len();
    let allowed = 1.0 + 10.0 * started.elapsed().as_secs_f64() + 1.0;
    assert!(
        early as f64 <= allowed,
        "{early} delivered, at most {allowed}"
    );
    sink.wait_until(WAIT, "30 deliveries", |r| r.len() >= 30)
        .await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2700), "took {took:?}");
    let got = sink.accepted();
    assert_eq!(got.len(), 30);
    for s in 0..3 {
        let minutes: Vec<String> = got
            .iter()
            .map(|r| r.json())
            .filter(|e| e["subject"] == format!("R-{s}"))
            .map(|e| e["time"].as_str().unwrap().to_owned())
            .collect();
        let mut sorted = minutes.clone();
        sorted.sort();
        assert_eq!(minutes.len(), 10);
        assert_eq!(minutes, sorted, "R-{s} in log order");
    }
    eprintln!("30 deliveries at 10/s took {took:?}");
    hub.stop().await;
}
