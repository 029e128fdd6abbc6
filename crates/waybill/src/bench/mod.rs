//! `waybill bench ingest`: a load generator for a hub on loopback.
//!
//! It sends Standard-Webhooks-signed events for many shipments at a given concurrency
//! (optionally paced to a target rate), reports events/s and ack latency percentiles,
//! and, in the same run, measures the ceiling: the same client against a trivial endpoint
//! that answers 202 at once. Latency is measured from each request's scheduled start when
//! paced (so queueing delay counts), otherwise from its send.

mod conn;
pub mod cpu;
pub mod machine;

use conn::{Conn, Target};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use waybill_engine::signature::SigningKey;

/// What to send.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Ingest URL, e.g. `http://127.0.0.1:8080/v1/ingest/bench`; several separated by
    /// commas spread the connections over them.
    pub url: String,
    /// Signing secret (`whsec_…`).
    pub secret: String,
    /// Number of events.
    pub events: usize,
    /// Number of distinct shipments.
    pub shipments: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Target events per second (None = as fast as possible).
    pub rate: Option<f64>,
    /// Prefix for shipment keys and event ids (keeps runs apart).
    pub run_id: String,
    /// Whose CPU to read around the timed phase.
    pub cpu: CpuWatch,
    /// What each event looks like.
    pub profile: Profile,
}

/// What the events of a run look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// A status with a tracking number (about 120 bytes).
    Minimal,
    /// A shipment event as an order system sends it: 8 order lines, a note, the ship-to
    /// address and the weight (about 1.7 KB), kept in the event by the mapping.
    Shipment,
    /// The same with 200 order lines (about 31 KB), like a large ship notice.
    Large,
    /// A carrier's tracking webhook with 40 scans (about 7 KB), each scan an event: 40
    /// events a request.
    Scans,
}

impl Profile {
    /// The jq mapping a source must have for this profile.
    pub fn mapping(self) -> &'static str {
        match self {
            Profile::Minimal => MAPPING,
            Profile::Shipment | Profile::Large => RICH_MAPPING,
            Profile::Scans => SCANS_MAPPING,
        }
    }

    /// Events each request carries.
    pub fn events_per_request(self) -> usize {
        match self {
            Profile::Scans => SCANS,
            _ => 1,
        }
    }

    /// The source of waybill.example.toml with that mapping.
    pub fn source(self) -> &'static str {
        match self {
            Profile::Minimal => "bench",
            Profile::Shipment | Profile::Large => "bench-rich",
            Profile::Scans => "bench-scans",
        }
    }

    fn lines(self) -> usize {
        match self {
            Profile::Minimal | Profile::Scans => 0,
            Profile::Shipment => 8,
            Profile::Large => 200,
        }
    }
}

/// Whose CPU a run reads at its start and end ([`cpu`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuWatch {
    /// Nobody's.
    Off,
    /// This process's and the machine's: the hub runs in this process.
    InProcess,
    /// Also the hub's, from `process_cpu_seconds_total` at this `/metrics` URL.
    Hub(String),
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests answered 2xx.
    pub ok: usize,
    /// Requests answered otherwise or failed.
    pub failed: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latencies (µs) of successful requests, sorted.
    pub latencies_us: Vec<u64>,
    /// Accepted event ids per shipment index (for verification).
    pub accepted_per_shipment: Vec<usize>,
    /// CPU per event over the timed phase, when the plan asked for it.
    pub cpu: Option<cpu::PerEvent>,
}

impl Report {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency percentile in milliseconds.
    pub fn pct_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i.min(self.latencies_us.len() - 1)] as f64 / 1000.0
    }
}

const STATUSES: [&str; 6] = [
    "warehouse.picked",
    "warehouse.packed",
    "shipment.dispatched",
    "shipment.in_transit",
    "shipment.out_for_delivery",
    "shipment.delivered",
];

/// The body of event `i` (shipment `i % shipments`) in a profile.
pub fn body(profile: Profile, run_id: &str, i: usize, shipments: usize) -> Vec<u8> {
    let s = i % shipments.max(1);
    let n = i / shipments.max(1);
    let status = STATUSES[n % STATUSES.len()];
    let head = format!(
        r#"{{"id":"{run_id}-{i}","shipment":"{run_id}-S{s}","status":"{status}","at":"2026-11-23T{:02}:{:02}:{:02}Z","tracking":"1Z{run_id}{s}""#,
        (n / 3600) % 24,
        (n / 60) % 60,
        n % 60
    );
    if profile == Profile::Minimal {
        return format!("{head}}}").into_bytes();
    }
    if profile == Profile::Scans {
        // Request n of a shipment reports scans n*40 … n*40+39, a minute apart.
        let scans: Vec<String> = (0..SCANS)
            .map(|k| {
                let m = n * SCANS + k;
                format!(
                    r#"{{"id":"{run_id}-{i}-{k}","at":"2026-11-{:02}T{:02}:{:02}:00Z","status":"in_transit","message":"Arrived at the sort facility","city":"Louisville","state":"KY","country":"US","zip":"40209"}}"#,
                    1 + (m / 1440) % 28,
                    (m / 60) % 24,
                    m % 60
                )
            })
            .collect();
        return format!(r#"{head},"carrier":"UPS","scans":[{}]}}"#, scans.join(",")).into_bytes();
    }
    let lines: Vec<String> = (0..profile.lines())
        .map(|l| {
            format!(
                r#"{{"line":{l},"sku":"SKU-{:05}","description":"Stainless steel shelf bracket, 300 mm, pack of 4","ordered":{},"shipped":{},"unit":"EA","unit_price":"12.40"}}"#,
                (s * 7 + l) % 100_000,
                4 + l % 5,
                4 + l % 5
            )
        })
        .collect();
    format!(
        r#"{head},"po":"PO-{run_id}-{s}","note":"Deliver to the loading dock at the back of the building between 07:00 and 15:00; call the warehouse office on arrival. Pallets must not exceed 1.8 m; fragile items are marked in red on the packing list.","ship_to":{{"name":"Northwind Garden Supplies","street":"Industriestrasse 14","city":"Kreuzlingen","postal_code":"8280","country":"CH"}},"weight":{{"value":{}.5,"unit":"KG"}},"lines":[{}]}}"#,
        12 + s % 30,
        lines.join(",")
    )
    .into_bytes()
}

/// Standard Webhooks secret of the bench source in waybill.example.toml.
pub const SECRET: &str = "whsec_YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA==";

/// The jq mapping the bench source uses (also in waybill.example.toml).
pub const MAPPING: &str =
    r#"{type: .status, subject: .shipment, time: .at, key: .id, refs: {tracking: .tracking}}"#;

/// The mapping of the `shipment` and `large` profiles (the `bench-rich` source of
/// waybill.example.toml): the order lines, note, address and weight are kept in `data`.
pub const RICH_MAPPING: &str = r#"{type: .status, subject: .shipment, time: .at, key: .id, refs: {tracking: .tracking, po: .po}, data: {lines: .lines, note: .note, ship_to: .ship_to, weight: .weight}}"#;

/// Scans in each request of the `scans` profile.
pub const SCANS: usize = 40;

/// The mapping of the `scans` profile (the `bench-scans` source of waybill.example.toml):
/// one event per scan, timed and keyed by the scan, its place and message in `data`.
pub const SCANS_MAPPING: &str = r#"[.shipment as $sh | .tracking as $t | .scans[] | {type: "shipment.in_transit", subject: $sh, time: .at, key: .id, refs: {tracking: $t}, data: {message: .message, city: .city, state: .state, country: .country, zip: .zip}}]"#;

/// Runs the plan and returns what it measured. Each of `concurrency` connections keeps
/// one request in flight (HTTP/1.1 keep-alive, no pipelining); a connection that fails is
/// counted and opened again. The connections are opened before the clock starts, as a
/// partner's client keeps its connections open: what is measured is requests, not TCP
/// handshakes (a burst of hundreds of connects also fills the listen queue and costs
/// SYN retransmissions of a second each).
pub async fn run(plan: &Plan) -> anyhow::Result<Report> {
    let key = SigningKey::parse(&plan.secret).map_err(|e| anyhow::anyhow!(e))?;
    // Several URLs (instances sharing one store): connection k goes to URL k mod n.
    let targets = plan
        .url
        .split(',')
        .map(Target::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!(e))?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut opening = Vec::new();
    for k in 0..plan.concurrency.max(1) {
        let t = targets[k % targets.len()].clone();
        opening.push(tokio::spawn(async move { Conn::connect(&t).await.ok() }));
    }
    let mut conns = Vec::with_capacity(opening.len());
    for o in opening {
        conns.push(o.await?);
    }
    let stopwatch = cpu::Stopwatch::start(&plan.cpu).await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (k, opened) in conns.into_iter().enumerate() {
        let target = targets[k % targets.len()].clone();
        let (next, key, plan) = (next.clone(), key.clone(), plan.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut accepted = Vec::new();
            let mut failed = 0usize;
            let mut conn: Option<Conn> = opened;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.events {
                    break;
                }
                let scheduled = match plan.rate {
                    Some(r) => {
                        let at = start + Duration::from_secs_f64(i as f64 / r);
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => Instant::now(),
                };
                let b = body(plan.profile, &plan.run_id, i, plan.shipments);
                let id = format!("{}-{i}", plan.run_id);
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let ts = now.to_string();
                let sig = key.sign(&id, now, &b);
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match Conn::connect(&target).await {
                        Ok(c) => conn.insert(c),
                        Err(_) => {
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let headers = [
                    ("content-type", "application/json"),
                    ("webhook-id", id.as_str()),
                    ("webhook-timestamp", ts.as_str()),
                    ("webhook-signature", sig.as_str()),
                ];
                let sent =
                    tokio::time::timeout(Duration::from_secs(30), c.post(&target, &headers, &b))
                        .await;
                match sent {
                    Ok(Ok(status)) => {
                        if (200..300).contains(&status) {
                            lat.push(scheduled.elapsed().as_micros() as u64);
                            accepted.push(i % plan.shipments.max(1));
                        } else {
                            failed += 1;
                        }
                        if !c.reusable() {
                            conn = None;
                        }
                    }
                    // A broken or stuck connection is dropped and opened again.
                    _ => {
                        failed += 1;
                        conn = None;
                    }
                }
            }
            (lat, accepted, failed)
        }));
    }
    let mut report = Report {
        accepted_per_shipment: vec![0; plan.shipments.max(1)],
        ..Default::default()
    };
    for t in tasks {
        let (lat, acc, failed) = t.await?;
        report.ok += lat.len();
        report.latencies_us.extend(lat);
        report.failed += failed;
        for s in acc {
            report.accepted_per_shipment[s] += 1;
        }
    }
    report.elapsed = start.elapsed();
    if let Some(w) = stopwatch {
        report.cpu = Some(w.stop(report.ok).await);
    }
    report.latencies_us.sort_unstable();
    Ok(report)
}

/// Starts a trivial endpoint answering 202 at once (the ceiling); returns its base URL.
pub async fn start_ceiling() -> anyhow::Result<String> {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/{*path}",
        post(|_b: axum::body::Bytes| async { (axum::http::StatusCode::ACCEPTED, "{}") }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// Starts a counting sink receiver; returns its URL and the counter.
pub async fn start_sink(listen: &str) -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    use axum::routing::post;
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        post(move |_b: axum::body::Bytes| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind(listen).await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok((format!("http://{addr}/sink"), n))
}

/// Seeds `n` exception-to-case workflows, each with an open case waiting on its SLA timer
/// due in 30 days (for the pending-timers bench): two writes each, 256 in flight.
pub async fn seed_timers(store: &waybill_store::Store, n: u64) -> anyhow::Result<()> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    use waybill_store::flow::{NewInput, WfSave};
    let due = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 30 * 86_400_000;
    stream::iter(0..n)
        .map(|i| async move {
            let id = format!("exception_to_case:bench-timer-{i}");
            store
                .wf_offer(vec![NewInput {
                    workflow: id.clone(),
                    wf_kind: "exception_to_case".into(),
                    entity: format!("bench-timer-{i}"),
                    kind: "command".into(),
                    key: "seed".into(),
                    body: "{}".into(),
                }])
                .await?;
            let input = store.wf_load(&id).await?.and_then(|(_, i)| i).map(|i| i.id);
            store
                .wf_save(WfSave {
                    id,
                    expect_version: 0,
                    status: "waiting".into(),
                    stage: "open".into(),
                    state: r#"{"stage":"open","opening":1}"#.into(),
                    pending: "[]".into(),
                    input_done: input,
                    set_timers: vec![("sla".into(), due + (i % 86_400) as i64 * 1000)],
                    ..WfSave::default()
                })
                .await?;
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(256)
        .try_collect::<()>()
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use waybill_mapping::{Payload, Program};

    #[test]
    fn each_profile_maps_to_its_events_and_keeps_its_lines() {
        let example = include_str!("../../../../waybill.example.toml");
        for (profile, size, lines) in [
            (Profile::Minimal, 100..250, 0),
            (Profile::Shipment, 1400..1900, 8),
            (Profile::Large, 25_000..40_000, 200),
            (Profile::Scans, 6_000..10_000, 0),
        ] {
            let b = body(profile, "b1", 3, 10);
            assert!(size.contains(&b.len()), "{profile:?}: {} bytes", b.len());
            assert!(
                example.contains(&format!("mapping = '{}'", profile.mapping())),
                "waybill.example.toml has the {profile:?} mapping"
            );
            let prog = Program::compile(profile.mapping()).unwrap();
            let drafts = prog
                .run(&Payload::parse(&b).unwrap(), &[], "bench")
                .unwrap();
            assert_eq!(drafts.len(), profile.events_per_request(), "{profile:?}");
            let kept = drafts[0]
                .data
                .as_ref()
                .and_then(|d| d.get("lines"))
                .and_then(|l| l.as_array())
                .map_or(0, Vec::len);
            assert_eq!(kept, lines, "{profile:?}");
        }
    }
}
