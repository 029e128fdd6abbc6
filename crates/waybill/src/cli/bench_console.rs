//! `waybill bench console`: the console's list pages over a big store. Seeds a hub (its
//! own, SQLite, synchronous=FULL) with N shipments through `POST /v1/events`, some
//! rejected payloads and some dead letters, then times the API requests each console page
//! makes, repeated, and prints min / median / p99 / max per page.

use std::time::{Duration, Instant};

/// Arguments.
#[derive(clap::Args)]
pub struct ConsoleArgs {
    /// Shipments to store (one event each, in batches of 500 per request).
    #[arg(long, default_value_t = 1_000_000)]
    shipments: usize,
    /// Requests timed per page.
    #[arg(long, default_value_t = 30)]
    repeat: usize,
    /// Keep the store in this directory (reused when it already holds the shipments).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

const KEY: &str = "bench-api-key";
const BATCH: usize = 500;

fn config(dir: &std::path::Path, sink: &str) -> String {
    let db = dir
        .join("console.db")
        .display()
        .to_string()
        .replace('\\', "/");
    format!(
        r#"
[server]
api_keys = ["plain:{KEY}"]
[store]
path = "{db}"
synchronous = "full"
[log]
level = "warn"
[sources.carrier]
type = "jq"
auth = {{ type = "api_key", keys = ["plain:carrier-key"] }}
mapping = '{{type: .status, subject: .shipment, time: .at, key: .id}}'
[sinks.local]
type = "http_webhook"
url = "{sink}"
concurrency = 64
[sinks.refusing]
type = "http_webhook"
url = "{sink}/refuse"
[[subscriptions]]
name = "everything"
sink = "local"
[[subscriptions]]
name = "delivered-to-refusing"
sink = "refusing"
types = ["shipment.delivered"]
"#
    )
}

/// A sink answering 204, and 400 under `/refuse` (dead letters at the first attempt).
async fn start_sink() -> anyhow::Result<String> {
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/sink",
            post(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .route(
            "/sink/refuse",
            post(|| async { axum::http::StatusCode::BAD_REQUEST }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/sink", l.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok(url)
}

fn key(i: usize) -> String {
    format!("S-{i:08}")
}

async fn seed(client: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let statuses = ["shipment.in_transit", "shipment.out_for_delivery"];
    let batches: Vec<usize> = (0..n).step_by(BATCH).collect();
    let mut inflight = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    let mut done = 0usize;
    for start in batches {
        let events: Vec<serde_json::Value> = (start..(start + BATCH).min(n))
            .map(|i| {
                // One in a hundred is delivered: it also goes to the refusing sink.
                let ty = if i % 100 == 7 {
                    "shipment.delivered"
                } else {
                    statuses[i % 2]
                };
                serde_json::json!({"type": ty, "subject": key(i), "time": "2026-12-01T10:00:00Z",
                    "key": format!("e{i}"), "refs": {"tracking": format!("1ZBENCH{i:010}")}})
            })
            .collect();
        let req = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(KEY)
            .header("idempotency-key", format!("seed-{start}"))
            .json(&events)
            .send();
        inflight.push(req);
        if inflight.len() >= 8 {
            if let Some(r) = inflight.next().await {
                let r = r?;
                anyhow::ensure!(r.status().is_success(), "seeding: {}", r.status());
                done += BATCH;
                if done.is_multiple_of(100_000) {
                    eprintln!(
                        "bench: {done} shipments stored ({:.0}/s)",
                        done as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }
    while let Some(r) = inflight.next().await {
        let r = r?;
        anyhow::ensure!(r.status().is_success(), "seeding: {}", r.status());
    }
    // Rejected payloads for the inbox page.
    for i in 0..2_000 {
        let _ = client
            .post(format!("{base}/v1/ingest/carrier"))
            .header("authorization", "Bearer carrier-key")
            .header("content-type", "application/json")
            .body(format!(r#"{{"id":"bad-{i}","shipment":"S-BAD","status":"teleported","at":"2026-12-01T10:00:00Z"}}"#))
            .send()
            .await?;
    }
    eprintln!(
        "bench: {n} shipments and 2,000 rejected payloads stored in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

struct Timing {
    page: &'static str,
    ms: Vec<f64>,
}

async fn time_page(
    client: &reqwest::Client,
    base: &str,
    page: &'static str,
    paths: &[String],
    repeat: usize,
) -> anyhow::Result<Timing> {
    let mut ms = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        // A page's requests go out together, as the console sends them.
        let reqs = paths
            .iter()
            .map(|p| client.get(format!("{base}{p}")).bearer_auth(KEY).send());
        for r in futures::future::join_all(reqs).await {
            let r = r?;
            let status = r.status();
            let _ = r.bytes().await?;
            anyhow::ensure!(status.is_success(), "{page}: {status}");
        }
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok(Timing { page, ms })
}

fn pct(v: &[f64], p: f64) -> f64 {
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

/// Runs the bench.
pub async fn run(a: ConsoleArgs) -> anyhow::Result<std::process::ExitCode> {
    let owned = a.dir.is_none();
    let dir = a.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("waybill-bench-console-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    let fresh = !dir.join("console.db").exists();
    let sink = start_sink().await?;
    let cfg = waybill::Config::parse(&config(&dir, &sink), std::iter::empty())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(waybill::serve(cfg, listener, async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{base}/readyz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if fresh {
        seed(&client, &base, a.shipments).await?;
    }
    // Let the deliveries settle: the pages are timed on a quiet hub.
    let settle = Instant::now();
    loop {
        let m = client
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let depth: f64 = m
            .lines()
            .filter(|l| l.starts_with("waybill_outbox_depth{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if depth == 0.0 || settle.elapsed() > Duration::from_secs(1800) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "bench: deliveries settled after {:.0} s",
        settle.elapsed().as_secs_f64()
    );
    let n = a.shipments;
    let deep = key(n.saturating_sub(60));
    let mid = key(n / 2);
    let dl: serde_json::Value = client
        .get(format!("{base}/v1/dead-letters?limit=1"))
        .bearer_auth(KEY)
        .send()
        .await?
        .json()
        .await?;
    let dl_id = dl["dead_letters"][0]["id"].as_i64().unwrap_or(1);
    let inbox: serde_json::Value = client
        .get(format!("{base}/v1/inbox?status=rejected&limit=1"))
        .bearer_auth(KEY)
        .send()
        .await?
        .json()
        .await?;
    let inbox_id = inbox["inbox"][0]["id"].as_i64().unwrap_or(1);
    let pages: Vec<(&'static str, Vec<String>)> = vec![
        ("overview", vec!["/v1/overview".into()]),
        (
            "shipments, first page",
            vec!["/v1/shipments?limit=50".into()],
        ),
        (
            "shipments, a page deep in the list",
            vec![format!("/v1/shipments?limit=50&after={deep}")],
        ),
        (
            "shipments in a state",
            vec!["/v1/shipments?limit=50&state=out_for_delivery".into()],
        ),
        (
            "search by tracking number",
            vec![format!(
                "/v1/shipments?limit=50&ref=tracking:1ZBENCH{:010}",
                n / 2
            )],
        ),
        ("shipment page", vec![format!("/v1/shipments/{mid}")]),
        (
            "dead letters",
            vec!["/v1/dead-letters?limit=50".into(), "/v1/sinks".into()],
        ),
        (
            "dead letter detail",
            vec![format!("/v1/dead-letters/{dl_id}")],
        ),
        (
            "inbox (rejected)",
            vec!["/v1/inbox?status=rejected&open_only=true&limit=50".into()],
        ),
        ("inbox record", vec![format!("/v1/inbox/{inbox_id}")]),
        ("sinks", vec!["/v1/sinks".into()]),
        (
            "sources and subscriptions",
            vec!["/v1/sources".into(), "/v1/subscriptions".into()],
        ),
    ];
    println!(
        "console pages over {n} shipments ({} requests each; ms from first request sent to last answer read)",
        a.repeat
    );
    println!(
        "{:<38} {:>8} {:>8} {:>8} {:>8}",
        "page", "min", "median", "p99", "max"
    );
    let mut worst: f64 = 0.0;
    for (page, paths) in &pages {
        let t = time_page(&client, &base, page, paths, a.repeat).await?;
        let max = t.ms.last().copied().unwrap_or(0.0);
        worst = worst.max(max);
        println!(
            "{:<38} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            t.page,
            t.ms.first().copied().unwrap_or(0.0),
            pct(&t.ms, 0.5),
            pct(&t.ms, 0.99),
            max
        );
    }
    println!("slowest single page load: {worst:.1} ms");
    let _ = tx.send(());
    let _ = task.await;
    if owned {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(std::process::ExitCode::SUCCESS)
}
