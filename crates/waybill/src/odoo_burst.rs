//! `waybill bench odoo`: a burst of carrier events for many pickings, drained into an Odoo
//! through the Odoo sink; reports the drain time and the requests (RPCs) per event.
//!
//! The burst is made durable first (a temporary SQLite store), then the sink's dispatcher
//! starts and the clock runs until no delivery is pending. Each picking gets the same
//! carrier story: `shipment.label_created` (tracking number, carrier, the picking's id as
//! the booking echoed it), `shipment.dispatched`, then `shipment.in_transit` scans,
//! `shipment.out_for_delivery` and `shipment.delivered` as far as `events_per_picking`
//! goes — so with the default actions Odoo gets the tracking ref, a validation, chatter.

use anyhow::Context;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use waybill_connectors::odoo::{OdooSink, OdooSinkConfig};
use waybill_engine::circuit::CircuitConfig;
use waybill_engine::clock::SystemClock;
use waybill_engine::dispatcher::{spawn_dispatchers, DispatchLimits, SinkRuntime};
use waybill_engine::retry::RetryPolicy;
use waybill_engine::Metrics;
use waybill_model::draft::Origin;
use waybill_model::EventDraft;
use waybill_store::{IngestRecord, SqliteOptions, Store, Subscription, Verdict};

/// A picking to send events for.
#[derive(Debug, Clone)]
pub struct Target {
    /// `stock.picking` id.
    pub id: i64,
}

/// What a burst did.
#[derive(Debug, Clone)]
pub struct BurstReport {
    /// Events in the burst.
    pub events: usize,
    /// Pickings they were for.
    pub pickings: usize,
    /// Requests the sink sent to Odoo.
    pub requests: u64,
    /// From the dispatcher's start until nothing was pending.
    pub drain: Duration,
    /// Events delivered / dead-lettered.
    pub delivered: u64,
    /// Events dead-lettered.
    pub dead: u64,
}

impl BurstReport {
    /// Requests per event.
    pub fn per_event(&self) -> f64 {
        self.requests as f64 / self.events.max(1) as f64
    }
}

const STORY: &[&str] = &[
    "shipment.label_created",
    "shipment.dispatched",
    "shipment.in_transit",
    "shipment.out_for_delivery",
    "shipment.delivered",
];

/// The events of one picking's story, `n` of them (in-transit scans repeat when n > 5).
fn story(t: &Target, n: usize, run: &str) -> Vec<serde_json::Value> {
    let tracking = format!("1ZB{run}{:08}", t.id);
    (0..n)
        .map(|i| {
            let ty = match i {
                0 | 1 => STORY[i],
                _ if i + 2 == n && n >= 4 => "shipment.out_for_delivery",
                _ if i + 1 == n && n >= 3 => "shipment.delivered",
                _ => "shipment.in_transit",
            };
            let mut refs = json!({"tracking": tracking});
            if i == 0 {
                refs["carrier"] = json!("UPS");
                refs["odoo.picking_id"] = json!(t.id.to_string());
            }
            json!({"type": ty, "subject": format!("trk:ups:{tracking}"), "key": format!("{tracking}-{i}"),
                   "time": format!("2026-11-23T{:02}:{:02}:00Z", 8 + i / 60, i % 60),
                   "refs": refs, "code": "X", "text": format!("scan {i}"),
                   "location": {"city": "Louisville"}})
        })
        .collect()
}

/// Makes the burst durable in a fresh store under `dir`, then drains it into Odoo through
/// the sink configured by `cfg`.
pub async fn run(
    cfg: &OdooSinkConfig,
    targets: &[Target],
    events_per_picking: usize,
    dir: &std::path::Path,
) -> anyhow::Result<BurstReport> {
    let sink = Arc::new(OdooSink::build(cfg).map_err(|es| {
        let all: Vec<String> = es.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid Odoo sink: {}", all.join("; "))
    })?);
    let store = Store::open_sqlite(SqliteOptions::new(dir.join("burst.db")))
        .await
        .context("cannot open the burst's store")?;
    store
        .sync_subscriptions(vec![Subscription {
            name: "odoo".into(),
            sink: "odoo".into(),
            types: vec![],
            sources: vec![],
            personal_data: None,
        }])
        .await?;
    let run = format!("{:04}", rand::random::<u16>() % 10_000);
    let now = time::OffsetDateTime::now_utc();
    let mut events = 0;
    for t in targets {
        let drafts = story(t, events_per_picking, &run);
        let payload_key = format!("burst-{run}-{}", t.id);
        let origin = Origin {
            source: "carrier",
            payload_key: &payload_key,
            received_at: now,
            traceparent: None,
        };
        let mut evs = Vec::with_capacity(drafts.len());
        for (i, d) in drafts.into_iter().enumerate() {
            let d: EventDraft = serde_json::from_value(d)?;
            evs.push(d.into_event(i, &origin)?);
        }
        events += evs.len();
        store
            .ingest(IngestRecord {
                source: "carrier".into(),
                idempotency_key: payload_key.clone(),
                received_at: now,
                headers: vec![],
                body: payload_key.clone().into_bytes(),
                verdict: Verdict::Accepted(evs),
            })
            .await?;
    }
    let metrics = Arc::new(Metrics::default());
    let before = sink.requests();
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let handles = spawn_dispatchers(
        store.clone(),
        vec![SinkRuntime {
            name: "odoo".into(),
            outbound: sink.clone(),
            retry: RetryPolicy::default(),
            circuit: CircuitConfig::default(),
            concurrency: cfg.pickings_in_flight.max(1),
            pause_on_gone: Duration::from_secs(60),
            minimise: None,
            personal_data: true,
        }],
        metrics.clone(),
        DispatchLimits::default(),
        Arc::new(SystemClock),
        stop_rx,
    );
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let delivered = metrics.deliveries.get(&["odoo", "delivered"]);
        let dead = metrics.deliveries.get(&["odoo", "dead"]);
        if (delivered + dead) as usize >= events {
            break;
        }
    }
    let drain = started.elapsed();
    let _ = stop_tx.send(true);
    for h in handles {
        let _ = h.await;
    }
    store.close().await;
    Ok(BurstReport {
        events,
        pickings: targets.len(),
        requests: sink.requests() - before,
        drain,
        delivered: metrics.deliveries.get(&["odoo", "delivered"]),
        dead: metrics.deliveries.get(&["odoo", "dead"]),
    })
}
