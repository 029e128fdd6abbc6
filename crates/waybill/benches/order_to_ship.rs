//! 1,000 orders through order-to-ship: the real hub in this process, a real Karrio server
//! (testkit, `mockship` carriers) and the protocol-faithful fake Odoo. Reports workflows
//! completed per second, where each workflow's time goes (its steps, from their history)
//! and, measured separately, Karrio's own answer time for a quote and a purchase.
//!
//! `cargo bench -p waybill --bench order_to_ship` (`ORDERS`, default 1000; `WF_CONCURRENCY`,
//! default 16; `ODOO_LATENCY_MS`, the fake Odoo's answer time, default 20).
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use waybill_connectors::karrio::booking::{KarrioBooking, KarrioBookingConfig};
use waybill_engine::workflow::ports::{Address, BookingRequest, Carriers, Parcel};
use waybill_testkit::fake_odoo::{self, connection_toml};
use waybill_testkit::karrio::{self, MockCarrier};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let orders = env("ORDERS", 1000) as i64;
    let concurrency = env("WF_CONCURRENCY", 16);
    let odoo_latency = env("ODOO_LATENCY_MS", 20);
    let k = karrio::server().await;
    let carrier = k
        .create_carrier(
            MockCarrier::new("bench")
                .currency("USD")
                .rate("ground", 7.5),
        )
        .await;

    // Karrio alone: quote + buy, one at a time, then `concurrency` at once.
    let client = KarrioBooking::build(&KarrioBookingConfig {
        url: k.url().into(),
        api_key: k.api_key().into(),
        timeout: Duration::from_secs(60),
        label_type: "PDF".into(),
    })
    .unwrap();
    let request = |r: String| BookingRequest {
        reference: r,
        shipper: Address {
            country_code: "US".into(),
            city: Some("San Francisco".into()),
            postal_code: Some("94134".into()),
            address_line1: Some("250 Executive Park Blvd".into()),
            person_name: Some("Shipping".into()),
            ..Address::default()
        },
        recipient: Address {
            country_code: "US".into(),
            city: Some("Springfield".into()),
            postal_code: Some("62701".into()),
            address_line1: Some("1 Main St".into()),
            person_name: Some("ACME".into()),
            ..Address::default()
        },
        parcels: vec![Parcel {
            weight_kg: 2.0,
            ..Parcel::default()
        }],
        carriers: vec![carrier.carrier_id.clone()],
    };
    let (mut quote_ms, mut buy_ms) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let t = Instant::now();
        let d = client
            .quote(&request(format!("bench-alone-{i}")))
            .await
            .unwrap();
        quote_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        client
            .buy(&d.booking_id, &d.quotes[0].quote_id)
            .await
            .unwrap();
        buy_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    quote_ms.sort_by(f64::total_cmp);
    buy_ms.sort_by(f64::total_cmp);
    let n_par = 64;
    let t = Instant::now();
    let jobs: Vec<_> = (0..n_par)
        .map(|i| {
            let (c, req) = (&client, request(format!("bench-par-{i}")));
            async move {
                let d = c.quote(&req).await.unwrap();
                c.buy(&d.booking_id, &d.quotes[0].quote_id).await.unwrap();
            }
        })
        .collect();
    let sem = tokio::sync::Semaphore::new(concurrency as usize);
    futures::future::join_all(jobs.into_iter().map(|j| async {
        let _p = sem.acquire().await.unwrap();
        j.await
    }))
    .await;
    let karrio_rate = n_par as f64 / t.elapsed().as_secs_f64();
    println!(
        "karrio alone: quote p50 {:.0} ms p95 {:.0} ms; buy p50 {:.0} ms p95 {:.0} ms (one at a time); {karrio_rate:.1} quote+buy/s with {concurrency} in flight",
        pct(&quote_ms, 0.5), pct(&quote_ms, 0.95), pct(&buy_ms, 0.5), pct(&buy_ms, 0.95)
    );

    // The hub: the Odoo poller sees `orders` ready pickings, order-to-ship books each.
    let (odoo_url, fake) = fake_odoo::start(18).await;
    fake.latency_ms.store(odoo_latency, Ordering::Relaxed);
    let acme = fake_odoo::customer(46, "ACME Logistics Test");
    fake_odoo::seed(&fake, fake_odoo::order_to_ship(1));
    fake_odoo::seed(
        &fake,
        (2..=orders).map(|i| fake_odoo::ready_picking(i, &acme)),
    );
    let dir = tempfile::tempdir().unwrap();
    let conn = |t: &str| {
        connection_toml(&odoo_url, "jsonrpc").replace("[connection]", &format!("[{t}.connection]"))
    };
    let toml = format!(
        r#"
[server]
api_keys = ["plain:bench"]
[store]
path = "{db}"
[log]
level = "warn"
[sources.odoo]
type = "odoo"
poll = "500ms"
{src}
[sinks.odoo]
type = "odoo"
{sink}
[workflows]
concurrency = {concurrency}
[workflows.karrio]
url = "{kurl}"
api_key = "plain:{kkey}"
[workflows.odoo]
sink = "odoo"
[workflows.order_to_ship]
carriers = ["{carrier}"]
released_after = "2026-01-01T00:00:00Z"
"#,
        db = dir
            .path()
            .join("hub.db")
            .display()
            .to_string()
            .replace('\\', "/"),
        src = conn("sources.odoo"),
        sink = conn("sinks.odoo"),
        kurl = k.url(),
        kkey = k.api_key(),
        carrier = carrier.carrier_id,
    );
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let hub = tokio::spawn(waybill::serve(cfg, listener, async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    assert!(
        orders <= 1000,
        "the progress check reads one page of 1000 workflows"
    );
    let booked = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let page: Value = match http
            .get(format!(
                "{base}/v1/workflows?kind=order_to_ship&status=waiting&limit=1000"
            ))
            .bearer_auth("bench")
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let rows: Vec<Value> = page["workflows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|w| w["stage"] == "booked")
            .cloned()
            .collect();
        if rows.len() as i64 >= orders {
            break rows;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "not done after an hour: {} booked",
            rows.len()
        );
    };
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "order-to-ship: {orders} orders booked in {elapsed:.1} s = {:.1} workflows/s ({concurrency} workflows at once, fake Odoo answering in {odoo_latency} ms)",
        orders as f64 / elapsed
    );
    // Where the time goes: each step's duration from the workflows' history.
    let mut by_step: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for w in booked.iter().take(200) {
        let wf: Value = http
            .get(format!("{base}/v1/workflows/{}", w["id"].as_str().unwrap()))
            .bearer_auth("bench")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for s in wf["steps"].as_array().into_iter().flatten() {
            let ms = (s["ended_at_ms"].as_i64().unwrap_or(0)
                - s["started_at_ms"].as_i64().unwrap_or(0)) as f64;
            by_step
                .entry(s["step"].as_str().unwrap_or("?").to_owned())
                .or_default()
                .push(ms);
        }
    }
    println!("step durations over 200 workflows (ms, p50 / p95 / mean):");
    for (step, mut v) in by_step {
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "  {step:<16} {:>6.0} {:>6.0} {:>7.1}  ({} steps)",
            pct(&v, 0.5),
            pct(&v, 0.95),
            mean,
            v.len()
        );
    }
    let _ = tx.send(());
    let _ = hub.await;
}
