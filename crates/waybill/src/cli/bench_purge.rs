//! `waybill bench purge`: does retention cost ingest anything? A store (temporary SQLite,
//! `synchronous = full`, or with `--pg URL` a PostgreSQL schema of its own) is seeded through the store itself with N accepted payloads
//! received 60 days ago (about 1 KB each, one event each that repeats the payload's order
//! lines, so it is stored packed against it — the purge must pack it again alone), then
//! an in-process hub is started on it twice:
//!
//! 1. with `[retention] raw_payloads = "90d"`: nothing is old enough; the ingest rate of
//!    the bench load generator (its `minimal` profile, unpaced) is measured;
//! 2. with `raw_payloads = "30d"` and the default batch and pause: the retention job
//!    starts purging the seeded bodies at once; the same load is measured while it runs,
//!    then the bench waits for the purge to finish.
//!
//! It reports both rates, their ratio, the rows the job purged during the measured
//! phase, and how long the whole purge took.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use waybill::bench::{self, CpuWatch, Plan, Profile, Report};
use waybill_model::draft::Origin;
use waybill_model::EventDraft;
use waybill_store::{IngestRecord, SqliteOptions, Store, Verdict};

#[derive(clap::Args)]
pub struct PurgeArgs {
    /// Old payloads to seed (and purge).
    #[arg(long, default_value_t = 1_000_000)]
    payloads: usize,
    /// Seconds each measured phase should last (its request count is set from a
    /// warm-up's rate, the same count in both phases).
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Directory for the database (default: the system's temporary directory); removed
    /// afterwards.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Run on PostgreSQL at this URL instead of SQLite, in a schema of its own dropped
    /// after the run.
    #[arg(long)]
    pg: Option<String>,
}

pub async fn run(a: PurgeArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 600.0,
        "--seconds must be more than 0 and at most 600"
    );
    anyhow::ensure!(
        a.payloads > 0 && a.concurrency > 0,
        "--payloads and --concurrency must be at least 1"
    );
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("waybill-bench-purge-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = match &a.pg {
        None => BenchStore::Sqlite(dir.join("bench.db")),
        Some(url) => {
            let mut o = waybill_store::PgOptions::new(url.clone());
            o.schema = format!("waybill_bench_purge_{}", std::process::id());
            BenchStore::Postgres(o)
        }
    };
    let result = phases(&a, &store).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let BenchStore::Postgres(o) = &store {
        if let Err(e) = waybill_store::drop_pg_schema(o) {
            eprintln!("bench: could not drop schema {}: {e}", o.schema);
        }
    }
    let r = result?;
    println!(
        "seeded     {} accepted payloads received 60 days ago ({} stored a payload on average) in {:.1} s on {}",
        a.payloads,
        r.avg_bytes
            .map_or_else(|| "size not measured".to_owned(), |b| format!("{b} bytes")),
        r.seed_s,
        if a.pg.is_some() { "PostgreSQL" } else { "SQLite" }
    );
    line("no purge", &r.without);
    line("purging", &r.with);
    println!(
        "ratio      {:.3} (ingest rate while purging / without)",
        r.with.rate() / r.without.rate().max(1e-9)
    );
    println!(
        "purge      {} payload bodies purged during the measured phase; all {} in {:.1} s ({:.0} rows/s, batch 1000, pause 100 ms, max_duty 0.1)",
        r.purged_during,
        r.purged,
        r.purge_s,
        r.purged as f64 / r.purge_s.max(1e-9)
    );
    Ok(
        if r.without.failed == 0 && r.with.failed == 0 && r.purged >= a.payloads as u64 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

fn line(name: &str, r: &Report) {
    println!(
        "{name:<10} {:>7} ok {:>5} failed  {:>8.1} events/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        r.ok,
        r.failed,
        r.rate(),
        r.pct_ms(0.50),
        r.pct_ms(0.99),
    );
}

struct Outcome {
    seed_s: f64,
    avg_bytes: Option<u64>,
    without: Report,
    with: Report,
    purged_during: u64,
    purged: u64,
    purge_s: f64,
}

/// One seeded payload: an order's lines, and one event repeating them.
fn seed_record(i: usize, at: OffsetDateTime) -> anyhow::Result<IngestRecord> {
    let key = format!("seed-{i}");
    let lines: Vec<serde_json::Value> = (0..6)
        .map(|l| {
            serde_json::json!({"line": l, "sku": format!("SKU-{:05}", (i + l) % 50_000),
                "description": "Stainless steel shelf bracket, 300 mm, pack of 4", "qty": 1 + l})
        })
        .collect();
    let subject = format!("SEED-{}", i % 10_000);
    let body = serde_json::to_vec(&serde_json::json!({
        "id": key, "shipment": subject, "status": "shipment.in_transit", "lines": lines,
    }))?;
    let draft: EventDraft = serde_json::from_value(serde_json::json!({
        "type": "shipment.in_transit",
        "subject": subject,
        "key": key,
        "time": at.format(&time::format_description::well_known::Rfc3339)?,
        "data": {"lines": lines},
    }))?;
    let event = draft
        .into_event(
            0,
            &Origin {
                source: "seed",
                payload_key: &key,
                received_at: at,
                traceparent: None,
            },
        )
        .map_err(|e| anyhow::anyhow!("seed event: {e:?}"))?;
    Ok(IngestRecord {
        source: "seed".into(),
        idempotency_key: key,
        received_at: at,
        headers: vec![("content-type".into(), "application/json".into())],
        body,
        verdict: Verdict::Accepted(vec![event]),
    })
}

/// Where the bench keeps its data.
enum BenchStore {
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL schema.
    Postgres(waybill_store::PgOptions),
}

impl BenchStore {
    async fn open(&self) -> anyhow::Result<Store> {
        Ok(match self {
            BenchStore::Sqlite(db) => Store::open_sqlite(SqliteOptions::new(db)).await?,
            BenchStore::Postgres(o) => Store::open_postgres(o.clone()).await?,
        })
    }

    /// The `[store]` table's body for a hub on it.
    fn toml(&self) -> String {
        match self {
            BenchStore::Sqlite(db) => format!(
                "path = \"{}\"\nsynchronous = \"full\"",
                db.display().to_string().replace('\\', "/")
            ),
            BenchStore::Postgres(o) => format!(
                "type = \"postgres\"\nurl = \"plain:{}\"\nschema = \"{}\"",
                o.url, o.schema
            ),
        }
    }

    /// Bytes stored (the SQLite file; not measured on PostgreSQL).
    fn size(&self) -> anyhow::Result<Option<u64>> {
        match self {
            BenchStore::Sqlite(db) => Ok(Some(std::fs::metadata(db)?.len())),
            BenchStore::Postgres(_) => Ok(None),
        }
    }
}

/// Seeds `n` old payloads through the store, 512 in flight (group commits).
async fn seed(db: &BenchStore, n: usize) -> anyhow::Result<(f64, Option<u64>)> {
    let store = db.open().await?;
    let at = OffsetDateTime::now_utc() - time::Duration::days(60);
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..512)
        .map(|_| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, anyhow::Error>(());
                    }
                    store.ingest(seed_record(i, at)?).await?;
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    let took = started.elapsed().as_secs_f64();
    store.close().await;
    let bytes = db.size()?.map(|b| b / n.max(1) as u64);
    Ok((took, bytes))
}

/// A running in-process hub and how to stop it.
struct Hub {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(db: &BenchStore, keep: &str) -> anyhow::Result<Hub> {
    let toml = format!(
        "[store]\n{}\n[log]\nlevel = \"warn\"\n[sources.bench]\ntype = \"jq\"\nauth = {{ type = \"standard_webhooks\", secrets = [\"plain:{}\"] }}\nmapping = '{}'\n[retention]\nraw_payloads = \"{keep}\"\n",
        db.toml(),
        bench::SECRET,
        bench::MAPPING
    );
    let cfg = waybill::Config::parse(&toml, std::iter::empty())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(waybill::serve(cfg, listener, async move {
        let _ = rx.await;
    }));
    Ok(Hub { base, stop, task })
}

impl Hub {
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }

    /// Payload bodies purged so far (`waybill_retention_purged_total{kind="raw_payloads"}`).
    async fn purged(&self) -> anyhow::Result<u64> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("waybill_retention_purged_total{kind=\"raw_payloads\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum())
    }
}

async fn phases(a: &PurgeArgs, db: &BenchStore) -> anyhow::Result<Outcome> {
    eprintln!("bench: seeding {} old payloads…", a.payloads);
    let (seed_s, avg_bytes) = seed(db, a.payloads).await?;
    let run_id = format!(
        "p{}",
        OffsetDateTime::now_utc().unix_timestamp() % 1_000_000
    );
    let plan = |base: &str, events: usize, tag: &str| Plan {
        url: format!("{base}/v1/ingest/bench"),
        secret: bench::SECRET.into(),
        events,
        shipments: 1_000,
        concurrency: a.concurrency,
        rate: None,
        run_id: format!("{run_id}{tag}"),
        cpu: CpuWatch::Off,
        profile: Profile::Minimal,
    };

    eprintln!("bench: phase 1, no purge");
    let hub = start(db, "90d").await?;
    let warm = bench::run(&plan(&hub.base, 5_000, "w1")).await?;
    let events = ((warm.rate() * a.seconds).round() as usize).max(1_000);
    let without = bench::run(&plan(&hub.base, events, "a")).await?;
    anyhow::ensure!(hub.purged().await? == 0, "phase 1 purged payloads");
    hub.stop().await?;

    eprintln!("bench: phase 2, purging while ingesting {events} events");
    let started = Instant::now();
    let hub = start(db, "30d").await?;
    bench::run(&plan(&hub.base, 5_000, "w2")).await?;
    let before = hub.purged().await?;
    let with = bench::run(&plan(&hub.base, events, "b")).await?;
    let after = hub.purged().await?;
    let target = a.payloads as u64;
    let mut purged = after;
    while purged < target {
        tokio::time::sleep(Duration::from_millis(500)).await;
        purged = hub.purged().await?;
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "the purge did not finish within an hour ({purged} of {target})"
        );
    }
    let purge_s = started.elapsed().as_secs_f64();
    hub.stop().await?;
    Ok(Outcome {
        seed_s,
        avg_bytes,
        without,
        with,
        purged_during: after - before,
        purged,
        purge_s,
    })
}
