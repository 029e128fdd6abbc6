//! `cargo bench -p waybill-store`: durable ingests per second straight into the store
//! (no HTTP), by number of concurrent writers, with synchronous=FULL and NORMAL. Shows
//! what group commit buys: one writer pays one fsync per event; many share one.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Instant;
use time::OffsetDateTime;
use waybill_model::draft::Origin;
use waybill_model::EventDraft;
use waybill_store::{IngestRecord, SqliteOptions, Store, Synchronous, Verdict};

fn record(i: usize) -> IngestRecord {
    let draft: EventDraft = serde_json::from_value(serde_json::json!({
        "type": "shipment.in_transit", "subject": format!("S{}", i % 1000),
        "time": "2026-11-23T10:00:00Z", "key": format!("e{i}"), "refs": {"tracking": format!("1Z{}", i % 1000)}
    }))
    .unwrap();
    let origin = Origin {
        source: "bench",
        payload_key: "p",
        received_at: OffsetDateTime::now_utc(),
        traceparent: None,
    };
    IngestRecord {
        source: "bench".into(),
        idempotency_key: format!("k{i}"),
        received_at: OffsetDateTime::now_utc(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: format!(
            r#"{{"id":"e{i}","shipment":"S{}","status":"shipment.in_transit"}}"#,
            i % 1000
        )
        .into_bytes(),
        verdict: Verdict::Accepted(vec![draft.into_event(0, &origin).unwrap()]),
    }
}

/// CPU time (user + system) this process has used so far, from /proc (Linux); zero
/// elsewhere.
fn cpu_time() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; the
    // kernel counts them in USER_HZ (100 per second on Linux).
    std::time::Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

async fn run(sync: Synchronous, writers: usize, events: usize) -> f64 {
    run_with(sync, writers, events, false).await.0
}

/// Events/s and CPU µs per event; with `routed`, one subscription matches every event
/// (an outbox row each, as a hub with one sink does).
async fn run_with(sync: Synchronous, writers: usize, events: usize, routed: bool) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SqliteOptions::new(dir.path().join("bench.db"));
    opts.synchronous = sync;
    let store = Store::open_sqlite(opts).await.unwrap();
    if routed {
        store
            .sync_subscriptions(vec![waybill_store::Subscription {
                name: "all".into(),
                sink: "local".into(),
                types: vec![],
                sources: vec![],
                personal_data: None,
            }])
            .await
            .unwrap();
    }
    let cpu = cpu_time();
    let start = Instant::now();
    let per = events / writers;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                s.ingest(record(w * per + i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (per * writers) as f64 / start.elapsed().as_secs_f64();
    let cpu_us = (cpu_time() - cpu).as_secs_f64() * 1e6 / (per * writers) as f64;
    store.close().await;
    (rate, cpu_us)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // STORE_BENCH_EVENTS=N: only the routed run (64 writers, one subscription) with N
    // events, and the CPU it cost per event.
    if let Some(n) = std::env::var("STORE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let (rate, cpu) = rt.block_on(run_with(Synchronous::Full, 64, n, true));
        println!("full, 64 writers, routed: {rate:.0} events/s, {cpu:.1} µs CPU per event");
        return;
    }
    println!("{:<8} {:>8} {:>14}", "sync", "writers", "events/s");
    for (name, sync) in [("full", Synchronous::Full), ("normal", Synchronous::Normal)] {
        for writers in [1usize, 8, 64, 256] {
            let events = if writers == 1 { 3_000 } else { 30_000 };
            let rate = rt.block_on(run(sync, writers, events));
            println!("{name:<8} {writers:>8} {rate:>14.0}");
        }
    }
}
