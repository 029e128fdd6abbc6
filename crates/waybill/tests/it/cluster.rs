//! Three real `waybill serve` processes on one PostgreSQL schema, load on all three, one
//! killed with SIGKILL mid-run: every acknowledged event is stored once, with dense
//! per-shipment sequence numbers; every one reaches the sink, each shipment's in sequence
//! order; the dead instance's leases are taken over within their expiry.

use crate::crash::{assert_kept_and_delivered, free_port, spawn_hub, wait_ready, Hubs};
use crate::*;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use waybill_testkit::FakePartner;

/// The delivery leases of the tests' one sink, and the retention job's.
fn all_leases() -> BTreeSet<String> {
    (0..waybill_store::lease::BUCKETS)
        .map(|b| waybill_store::lease::delivery_lease("ops", b))
        .chain([
            waybill_store::lease::singleton_lease("retention"),
            waybill_store::lease::singleton_lease("seal-events"),
        ])
        .collect()
}

async fn leases_of(client: &reqwest::Client, base: &str) -> Option<BTreeSet<String>> {
    let v: serde_json::Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        v["leases"]
            .as_array()?
            .iter()
            .filter_map(|l| l.as_str().map(str::to_owned))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_killed_lose_nothing_and_keep_order() {
    let sink = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (opts, _guard) = waybill_testkit::pg::fresh("cluster");
    let cfg_path = dir.path().join("waybill.toml");
    std::fs::write(
        &cfg_path,
        config_toml_with_store(
            &pg_store_toml(&opts.schema),
            &sink.url("hook"),
            FAST_RETRIES,
        ),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut hubs = Hubs(ports.iter().map(|p| spawn_hub(&cfg_path, *p)).collect());
    for b in &bases {
        wait_ready(&client, b).await;
    }
    // Leases settle: each holds a share, together all, none twice.
    let start = Instant::now();
    loop {
        let mut held = Vec::new();
        for b in &bases {
            held.push(leases_of(&client, b).await.unwrap_or_default());
        }
        let union: BTreeSet<String> = held.iter().flatten().cloned().collect();
        let total: usize = held.iter().map(BTreeSet::len).sum();
        if union == all_leases() && total == union.len() && held.iter().all(|h| h.len() >= 4) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "leases did not settle: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Two senders per instance; all of them write to the same 12 shipments, so events of
    // one shipment arrive on several instances at the same moment.
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let mut senders = Vec::new();
    for w in 0..6usize {
        let (client, url, acked) = (
            client.clone(),
            format!("{}/v1/ingest/carrier", bases[w % 3]),
            acked.clone(),
        );
        senders.push(tokio::spawn(async move {
            for i in 0..400usize {
                let shipment = format!("C-{}", (i + w) % 12);
                let id = format!("c-{w}-{i}");
                match send_acked(&client, &url, &id, &shipment, (i % 60) as u32).await {
                    Some(eid) => acked.lock().unwrap().push((shipment, eid)),
                    // The killed instance's senders stop at the first failure.
                    None => return,
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 600 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let victim_leases = leases_of(&client, &bases[0]).await.unwrap_or_default();
    hubs.0[0].kill().unwrap();
    hubs.0[0].wait().unwrap();
    let killed_at = Instant::now();

    // The survivors take the dead one's leases over: within the lease time (2 s) after
    // they expire — at most 2 s after the kill — plus one claim period (0.5 s).
    let took_over = loop {
        let mut union = BTreeSet::new();
        for b in &bases[1..] {
            union.extend(leases_of(&client, b).await.unwrap_or_default());
        }
        if union == all_leases() {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "leases {victim_leases:?} of the killed instance not taken over: {union:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        took_over <= Duration::from_millis(2_000 + 500 + 300),
        "taken over after {took_over:?}"
    );
    // Each survivor's metrics say who it is and how much it holds.
    for b in &bases[1..] {
        let held = leases_of(&client, b).await.unwrap_or_default().len();
        let m = client
            .get(format!("{b}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(m.contains(",store=\"postgres\"} 1\n"), "{m}");
        assert!(m.contains(&format!("waybill_leases_held {held}\n")), "{m}");
    }
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 600, "{}", acked.len());

    // Stored once each, sequence numbers dense per shipment.
    let shipments: BTreeSet<&String> = acked.iter().map(|(s, _)| s).collect();
    let mut stored = HashSet::new();
    let mut seq_of: HashMap<String, i64> = HashMap::new();
    for s in &shipments {
        let v = client
            .get(format!("{}/v1/shipments/{s}", bases[1]))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        let mut seqs = Vec::new();
        for t in v["timeline"].as_array().unwrap() {
            let id = t["event"]["id"].as_str().unwrap().to_owned();
            assert!(stored.insert(id.clone()), "{id} stored twice");
            let seq = t["sequence"].as_i64().unwrap();
            seqs.push(seq);
            seq_of.insert(id, seq);
        }
        seqs.sort_unstable();
        let dense: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(seqs, dense, "{s}: sequence numbers not dense");
    }
    // Every one delivered; each shipment's first deliveries in sequence order.
    assert_kept_and_delivered(&acked, &stored, &sink).await;
    let mut seen = HashSet::new();
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut repeats = 0;
    for r in sink.accepted() {
        let Some(id) = r.header("webhook-id").map(str::to_owned) else {
            continue;
        };
        if !seen.insert(id.clone()) {
            repeats += 1;
            continue;
        }
        let body = r.json();
        let shipment = body["subject"].as_str().unwrap().to_owned();
        // The `sequence` extension: the number, zero-padded to 20 digits.
        let seq: i64 = body["sequence"].as_str().unwrap().parse().unwrap();
        assert_eq!(seq_of.get(&id), Some(&seq));
        let prev = last.insert(shipment.clone(), seq).unwrap_or(0);
        assert!(seq > prev, "{shipment}: #{seq} delivered after #{prev}");
    }
    eprintln!(
        "cluster: {} acknowledged, {} delivered ({} repeats), leases taken over after {:?}",
        acked.len(),
        seen.len(),
        repeats,
        took_over
    );
}

/// Whether the hub at `base` holds lease `name` (per its `/readyz`).
async fn holds(client: &reqwest::Client, base: &str, name: &str) -> bool {
    leases_of(client, base)
        .await
        .is_some_and(|l| l.contains(name))
}

/// An Odoo poller is a singleton: with two instances on one store exactly one holds its
/// lease (and polls); when that one stops, the other takes the lease over and its poller
/// carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_odoo_poller_runs_on_one_instance_and_moves_when_it_stops() {
    use waybill_testkit::fake_odoo::{picking, start, KEY};
    const POLLER: &str = "single:poller:odoo";
    let (odoo_url, fake) = start(18).await;
    *fake.records.lock().unwrap() = Some(vec![picking(20, "assigned", "2026-11-23 07:00:00")]);
    let sink = FakePartner::start().await;
    let (opts, _guard) = waybill_testkit::pg::fresh("poller");
    let config = || {
        let mut toml = config_toml_with_store(
            &pg_store_toml(&opts.schema),
            &sink.url("hook"),
            FAST_RETRIES,
        );
        toml.push_str(&format!(
            "[sources.odoo]\ntype = \"odoo\"\npoll = \"200ms\"\n[sources.odoo.connection]\nurl = \"{odoo_url}\"\ndatabase = \"logistics\"\nlogin = \"middleware\"\napi_key = \"plain:{KEY}\"\n"
        ));
        waybill::Config::parse(&toml, std::iter::empty()).unwrap()
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ca, cb) = (config(), config());
    let a = TestHub::from_parts(
        ca,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        da,
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !holds(&client, &a.base, POLLER).await {
        assert!(
            Instant::now() < deadline,
            "the first instance never took the poller"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.wait_until(WAIT, "order.released delivered", |got| {
        got.iter().any(|r| r.json()["type"] == "order.released")
    })
    .await;
    let b = TestHub::from_parts(
        cb,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        db,
    );
    // For a few lease periods: never both, and (once settled) always one.
    let start_at = Instant::now();
    while start_at.elapsed() < Duration::from_secs(5) {
        let (ha, hb) = (
            holds(&client, &a.base, POLLER).await,
            holds(&client, &b.base, POLLER).await,
        );
        assert!(!(ha && hb), "both instances hold the poller");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (holder, other) = if holds(&client, &a.base, POLLER).await {
        (a, b)
    } else {
        (b, a)
    };
    assert!(!holds(&client, &other.base, POLLER).await);
    // The holder stops (gracefully: it releases its leases); the other takes the poller.
    holder.stop().await;
    let stopped = Instant::now();
    while !holds(&client, &other.base, POLLER).await {
        assert!(
            stopped.elapsed() < Duration::from_secs(3),
            "the poller did not move"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And it polls: Odoo's change becomes an event.
    fake.records.lock().unwrap().as_mut().unwrap()[0] = picking(20, "done", "2026-11-23 07:09:02");
    sink.wait_until(
        WAIT,
        "shipment.dispatched delivered by the other instance",
        |got| {
            got.iter()
                .any(|r| r.json()["type"] == "shipment.dispatched")
        },
    )
    .await;
    other.stop().await;
}
