//! A burst of 10,000 carrier events for 2,000 pickings drained into the protocol-faithful
//! fake Odoo (testkit) through the Odoo sink, with and without coalescing: requests per
//! event and drain time. The same harness drains into a real Odoo with
//! `waybill bench odoo --config <file>`.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;
use waybill::odoo_burst::{run, Target};
use waybill_connectors::odoo::OdooSinkConfig;
use waybill_testkit::fake_odoo::{connection_toml, picking, start};

fn config(url: &str, protocol: &str, coalesce: bool) -> OdooSinkConfig {
    let (batch, window, in_flight) = if coalesce {
        (50, "1s", 32)
    } else {
        (1, "0ms", 32)
    };
    let conn = connection_toml(url, protocol);
    toml::from_str(&format!(
        "max_batch = {batch}\ncoalesce_window = \"{window}\"\npickings_in_flight = {in_flight}\n{conn}"
    ))
    .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pickings: i64 = std::env::var("BURST_PICKINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    println!("odoo burst: {} events for {pickings} pickings, fake Odoo answering each request in 5 ms, 4 requests in flight, no rate limit", pickings * 5);
    for (major, protocol) in [(18, "jsonrpc"), (19, "json2")] {
        for coalesce in [true, false] {
            let (url, fake) = start(major).await;
            fake.latency_ms.store(5, Ordering::Relaxed);
            *fake.records.lock().unwrap() = Some(
                (1..=pickings)
                    .map(|i| {
                        // One sale order per picking, as in practice.
                        let mut p = picking(i, "assigned", "2026-11-23 07:00:00");
                        p["sale_id"] = serde_json::json!([100_000 + i, format!("S{i:05}")]);
                        p
                    })
                    .collect(),
            );
            let targets: Vec<Target> = (1..=pickings).map(|id| Target { id }).collect();
            let dir = tempfile::tempdir().unwrap();
            let r = run(&config(&url, protocol, coalesce), &targets, 5, dir.path())
                .await
                .unwrap();
            println!(
                "{protocol:<8} coalescing {:<3}  drained in {:>6.1} s  {:>6} requests  {:.3} per event  delivered {}  dead {}",
                if coalesce { "on" } else { "off" },
                r.drain.as_secs_f64(),
                r.requests,
                r.per_event(),
                r.delivered,
                r.dead
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
