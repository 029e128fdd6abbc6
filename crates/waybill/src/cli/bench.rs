//! `waybill bench ingest`: load a hub on loopback and compare it with the ceiling;
//! `waybill bench machine`: the yardsticks that make figures of two machines comparable.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use waybill::bench::{self, Plan, Report};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Send signed events to a hub's ingest endpoint.
    Ingest(IngestArgs),
    /// Drain a burst of carrier events for many pickings into an Odoo through the Odoo
    /// sink of a config file; report drain time and requests per event. It writes to that
    /// Odoo (tracking refs, validations, chatter): use a test database.
    Odoo(OdooArgs),
    /// Measure this machine: SQLite commits (WAL, synchronous=full) one row at a time and
    /// 100 rows at a time, the HTTP ceiling of the bench client, and one core's time for
    /// the bench mapping. Ingest figures from two machines compare through these.
    Machine(MachineArgs),
    /// The console's pages over a big store: seed a hub with N shipments (default one
    /// million), rejected payloads and dead letters, then time the API requests each page
    /// of the console makes.
    Console(super::bench_console::ConsoleArgs),
    /// One source's burst against another's steady traffic: an in-process hub with source
    /// `a` rate-limited, `b` and `u` unlimited; `b`'s accepted rate and latency alone,
    /// while `a` sends 10× its limit, and while `u` (no limit) sends as much.
    Limits(super::bench_limits::LimitsArgs),
    /// Retention against ingest: seed a store with N old accepted payloads (default one
    /// million), measure the ingest rate without a purge, then while the retention job
    /// purges them; report both rates, their ratio and how long the purge took.
    Purge(super::bench_purge::PurgeArgs),
    /// A local webhook receiver that answers 204 at once and counts: the sink of an
    /// end-to-end run against a hub in its own process (`bench ingest --hub` then reports
    /// delivery from the hub's metrics).
    Sink(SinkArgs),
}

#[derive(clap::Args)]
struct SinkArgs {
    /// Address to listen on; sinks post to `http://ADDR/sink`.
    #[arg(long, default_value = "127.0.0.1:9099")]
    listen: String,
}

#[derive(clap::Args)]
struct MachineArgs {
    /// Directory for the SQLite test file (use the hub's data directory to measure its
    /// disk); the file is removed afterwards.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Seconds for each SQLite half and for the mapping.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Requests for the ceiling.
    #[arg(long, default_value_t = 100_000)]
    requests: usize,
    /// Connections for the ceiling.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[derive(clap::Args)]
struct OdooArgs {
    /// Config file holding the Odoo sink.
    #[arg(long)]
    config: std::path::PathBuf,
    /// Name of the Odoo sink in it.
    #[arg(long, default_value = "odoo")]
    sink: String,
    /// Ready (`assigned`) outgoing pickings to use, lowest ids first.
    #[arg(long, default_value_t = 2_000)]
    pickings: usize,
    /// Events per picking (label created, dispatched, in transit…, out for delivery,
    /// delivered).
    #[arg(long, default_value_t = 5)]
    events_per_picking: usize,
}

#[derive(clap::Args)]
struct IngestArgs {
    /// Hub base URL (ignored with --self-host); several, separated by commas, for
    /// instances sharing one PostgreSQL store: connections are spread over them and
    /// deliveries summed from each one's metrics.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    hub: String,
    /// Source name to post to; it must use the profile's mapping (default: `bench` for
    /// the minimal profile, `bench-rich` for the others, as in waybill.example.toml).
    #[arg(long)]
    source: Option<String>,
    /// What each event looks like: `minimal` (a status, ~120 bytes), `shipment` (~1.7 KB
    /// with 8 order lines, a note, an address, kept by the mapping), `large` (200 lines)
    /// or `scans` (a carrier webhook with 40 scans, an event each).
    #[arg(long, value_enum, default_value = "minimal")]
    profile: bench::Profile,
    /// Standard Webhooks secret of that source.
    #[arg(
        long,
        env = "WAYBILL_BENCH_SECRET",
        default_value = bench::SECRET
    )]
    secret: String,
    /// API key, to verify afterwards that every acknowledged event is stored.
    #[arg(long, env = "WAYBILL_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Requests to send (one event each, but 40 in the `scans` profile).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Distinct shipments.
    #[arg(long, default_value_t = 1_000)]
    shipments: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Pace to this many events/s (for latency at a given load).
    #[arg(long)]
    rate: Option<f64>,
    /// Start an in-process hub (temporary SQLite, synchronous=FULL) with a local HTTP sink
    /// subscribed to everything, and also report end-to-end delivery.
    #[arg(long)]
    self_host: bool,
    /// With --self-host: the in-process hub's store is PostgreSQL at this URL, in a
    /// schema of its own dropped after the run, instead of SQLite.
    #[arg(long)]
    pg: Option<String>,
    /// With --self-host: run the exception-to-case workflow (its runner and the internal
    /// subscription) over a store seeded with this many workflows each waiting on a timer
    /// due in 30 days: the ingest rate with N pending timers against 0.
    #[arg(long)]
    pending_timers: Option<u64>,
    /// Skip the ceiling measurement.
    #[arg(long)]
    no_ceiling: bool,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    match a.what {
        What::Ingest(i) => ingest(i).await,
        What::Odoo(o) => odoo(o).await,
        What::Machine(m) => machine(m).await,
        What::Console(c) => super::bench_console::run(c).await,
        What::Limits(l) => super::bench_limits::run(l).await,
        What::Purge(p) => super::bench_purge::run(p).await,
        What::Sink(s) => {
            let (url, count) = bench::start_sink(&s.listen).await?;
            eprintln!("bench sink: answering 204 at {url}; Ctrl-C stops it");
            tokio::signal::ctrl_c().await?;
            eprintln!("bench sink: {} deliveries", count.load(Ordering::Relaxed));
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn machine(a: MachineArgs) -> anyhow::Result<ExitCode> {
    if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 600.0) {
        anyhow::bail!("--seconds must be more than 0 and at most 600");
    }
    if a.requests == 0 || a.concurrency == 0 {
        anyhow::bail!("--requests and --concurrency must be at least 1");
    }
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempdir::Dir(
                std::env::temp_dir().join(format!("waybill-bench-machine-{}", std::process::id())),
            );
            std::fs::create_dir_all(&tmp.0)?;
            tmp.0.clone()
        }
    };
    let m = bench::machine::measure(
        &dir,
        Duration::from_secs_f64(a.seconds),
        a.requests,
        a.concurrency,
    )
    .await?;
    println!(
        "sqlite     {:>9.0} single-row commits/s  {:>9.0} rows/s in transactions of {}  (WAL, synchronous=full, in {})",
        m.sqlite.single_row_commits_per_s,
        m.sqlite.batched_rows_per_s,
        waybill_store::BATCH_ROWS,
        dir.display()
    );
    print("ceiling", &m.ceiling);
    println!(
        "mapping    {:>9.2} µs of one core per payload (bench mapping, parse + run)",
        m.mapping_us
    );
    Ok(if m.ceiling.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn odoo(a: OdooArgs) -> anyhow::Result<ExitCode> {
    use waybill_connectors::odoo::OdooClient;
    use waybill_connectors::SinkConfig;
    let config = waybill::Config::load(&a.config)?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("WAYBILL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let Some(SinkConfig::Odoo(cfg)) = config.sinks.get(&a.sink) else {
        anyhow::bail!(
            "{}: no sink `{}` of type \"odoo\"",
            a.config.display(),
            a.sink
        );
    };
    let client = OdooClient::build(&cfg.connection).map_err(|es| {
        let prefix = format!("sinks.{}.connection", a.sink);
        let all: Vec<String> = es
            .into_iter()
            .map(|e| e.under(&prefix).to_string())
            .collect();
        anyhow::anyhow!("{}", all.join("; "))
    })?;
    let rows = client
        .search_read(
            "stock.picking",
            serde_json::json!([
                ["picking_type_code", "=", "outgoing"],
                ["state", "=", "assigned"]
            ]),
            &["name"],
            "id asc",
            a.pickings,
            0,
        )
        .await?;
    let targets: Vec<waybill::odoo_burst::Target> = rows
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .map(|id| waybill::odoo_burst::Target { id })
        .collect();
    if targets.len() < a.pickings {
        eprintln!(
            "bench: only {} ready outgoing pickings in Odoo (asked for {})",
            targets.len(),
            a.pickings
        );
    }
    let events = targets.len() * a.events_per_picking;
    eprintln!(
        "bench: {events} events for {} pickings into {} (max_concurrency {}, max_requests_per_second {}, coalesce_window {:?}, pickings_in_flight {})",
        targets.len(),
        cfg.connection.url,
        cfg.connection.max_concurrency,
        cfg.connection.max_requests_per_second,
        cfg.coalesce_window,
        cfg.pickings_in_flight
    );
    let dir = tempdir::Dir(
        std::env::temp_dir().join(format!("waybill-bench-odoo-{}", std::process::id())),
    );
    std::fs::create_dir_all(&dir.0)?;
    let r = waybill::odoo_burst::run(cfg, &targets, a.events_per_picking, &dir.0).await?;
    println!(
        "odoo       {} events for {} pickings drained in {:.1} s ({:.0} events/s): {} requests, {:.3} per event; delivered {}, dead-lettered {}",
        r.events,
        r.pickings,
        r.drain.as_secs_f64(),
        r.events as f64 / r.drain.as_secs_f64().max(1e-9),
        r.requests,
        r.per_event(),
        r.delivered,
        r.dead
    );
    Ok(if r.dead == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print(label: &str, r: &Report) {
    println!(
        "{label:<10} {:>8} ok {:>5} failed  {:>9.0} events/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({:.2} s)",
        r.ok,
        r.failed,
        r.rate(),
        r.pct_ms(0.50),
        r.pct_ms(0.99),
        r.pct_ms(1.0),
        r.elapsed.as_secs_f64()
    );
}

async fn ingest(a: IngestArgs) -> anyhow::Result<ExitCode> {
    let run_id = format!(
        "b{}",
        time::OffsetDateTime::now_utc().unix_timestamp() % 1_000_000
    );
    let mut hosted = None;
    let (bases, api_key) = if a.self_host {
        let h = SelfHosted::start(&a.secret, a.profile, a.pg.as_deref(), a.pending_timers).await?;
        let base = h.base.clone();
        hosted = Some(h);
        (vec![base], Some("bench-api-key".to_string()))
    } else {
        let bases: Vec<String> = a
            .hub
            .split(',')
            .map(|h| h.trim().trim_end_matches('/').to_string())
            .filter(|h| !h.is_empty())
            .collect();
        anyhow::ensure!(!bases.is_empty(), "--hub: no URL");
        (bases, a.api_key.clone())
    };
    let base = bases[0].clone();
    let source = match (&a.source, a.self_host) {
        (_, true) => "bench".to_owned(),
        (Some(s), false) => s.clone(),
        (None, false) => a.profile.source().to_owned(),
    };
    let mut plan = Plan {
        profile: a.profile,
        url: bases
            .iter()
            .map(|b| format!("{b}/v1/ingest/{source}"))
            .collect::<Vec<_>>()
            .join(","),
        secret: a.secret.clone(),
        events: a.events,
        shipments: a.shipments,
        concurrency: a.concurrency,
        rate: a.rate,
        run_id: run_id.clone(),
        // The hub's CPU from its /metrics, or only this process's when it is the hub.
        cpu: if a.self_host {
            bench::CpuWatch::InProcess
        } else if bases.len() == 1 {
            bench::CpuWatch::Hub(format!("{base}/metrics"))
        } else {
            // Several processes: read their CPU from outside (pidstat, /proc).
            bench::CpuWatch::Off
        },
    };
    let payload = bench::body(a.profile, &run_id, 0, a.shipments).len();
    let per_request = a.profile.events_per_request();
    eprintln!(
        "bench: {} events, {} shipments, concurrency {}, rate {}, profile {:?} ({payload} bytes a payload)",
        a.events,
        a.shipments,
        a.concurrency,
        a.rate.map_or("max".into(), |r| format!("{r}/s")),
        a.profile
    );
    let ceiling = if a.no_ceiling {
        None
    } else {
        let c = bench::start_ceiling().await?;
        let mut p = plan.clone();
        p.url = format!("{c}/ceiling");
        p.cpu = bench::CpuWatch::Off;
        Some(bench::run(&p).await?)
    };
    let sampler = hosted.as_ref().map(|h| h.sample_outbox());
    // Hubs in their own processes: deliveries from their metrics.
    let metrics_urls: Vec<String> = bases.iter().map(|b| format!("{b}/metrics")).collect();
    let delivered_before = match &hosted {
        None => delivered_total(&metrics_urls).await,
        Some(_) => None,
    };
    // Bytes this process sent to storage (the in-process hub's store: WAL, checkpoints).
    let written_before = hosted.as_ref().and_then(|_| storage_write_bytes());
    let started = Instant::now();
    let hub = bench::run(&plan).await?;
    if let Some(c) = &ceiling {
        print("ceiling", c);
    }
    print("waybill", &hub);
    if let Some(c) = &ceiling {
        println!(
            "ratio      {:.3} of the ceiling",
            hub.rate() / c.rate().max(1e-9)
        );
    }
    if per_request > 1 {
        println!(
            "events     {:.0} events/s acknowledged ({per_request} a request)",
            hub.rate() * per_request as f64
        );
    }
    if let Some(line) = hub.cpu.and_then(|c| c.line(a.self_host)) {
        println!("{line}");
    }
    if let Some(h) = &hosted {
        let deadline = Instant::now() + Duration::from_secs(120);
        while h.delivered.load(Ordering::Relaxed) < hub.ok * per_request
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let delivered = h.delivered.load(Ordering::Relaxed);
        let took = started.elapsed();
        println!(
            "delivered  {delivered} of {} to the local sink in {:.2} s from the first send: {:.0} events/s end to end",
            hub.ok * per_request,
            took.as_secs_f64(),
            delivered as f64 / took.as_secs_f64()
        );
    }
    if let Some(before) = delivered_before {
        // Until every acknowledged event is delivered, or deliveries stop for 10 s.
        let (mut last, mut moved) = (before, Instant::now());
        let mut done_at = started.elapsed();
        while let Some(now) = delivered_total(&metrics_urls).await {
            if now != last {
                (last, moved) = (now, Instant::now());
                done_at = started.elapsed();
            }
            if now.saturating_sub(before) >= (hub.ok * per_request) as u64
                || moved.elapsed() > Duration::from_secs(10)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let delivered = last.saturating_sub(before);
        println!(
            "delivered  {delivered} of {} by the hub's sinks in {:.2} s from the first send: {:.0} events/s end to end (waybill_delivery_attempts_total, outcome delivered)",
            hub.ok * per_request,
            done_at.as_secs_f64(),
            delivered as f64 / done_at.as_secs_f64().max(1e-9)
        );
    }
    if let (Some(h), Some(before)) = (&hosted, written_before) {
        if let Some(after) = storage_write_bytes() {
            let written = after.saturating_sub(before) as f64 / hub.ok.max(1) as f64;
            println!(
                "disk       {:.0} bytes written to storage per event, {written:.0} per request ({:.1} × the {payload}-byte payload; /proc/self/io write_bytes, ingest and delivery)",
                written / per_request as f64,
                written / payload.max(1) as f64
            );
        }
        let (db, wal) = h.store_sizes();
        println!(
            "store      database {db} bytes + WAL {wal} bytes after the run: {:.0} bytes per event, {:.0} per request ({:.1} × the payload)",
            (db + wal) as f64 / (hub.ok * per_request).max(1) as f64,
            (db + wal) as f64 / hub.ok.max(1) as f64,
            (db + wal) as f64 / hub.ok.max(1) as f64 / payload.max(1) as f64
        );
    }
    if let Some(s) = sampler {
        let samples = s.stop().await;
        println!(
            "outbox     depth sampled every 250 ms: max {}, last {}",
            samples.iter().max().copied().unwrap_or(0),
            samples.last().copied().unwrap_or(0)
        );
    }
    let mut ok = hub.failed == 0;
    if let Some(key) = api_key {
        plan.url = base.clone();
        let missing = verify(&base, &key, &run_id, &hub, per_request).await?;
        println!("verify     {missing} acknowledged events missing from the store");
        ok &= missing == 0;
    }
    if let Some(h) = hosted {
        h.stop().await;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Deliveries the hubs have made so far (sum of `waybill_delivery_attempts_total` with
/// outcome `delivered`); None when the metrics of one cannot be read.
async fn delivered_total(urls: &[String]) -> Option<u64> {
    let mut sum = 0;
    for url in urls {
        let text = reqwest::get(url).await.ok()?.text().await.ok()?;
        sum += metric_sum(
            &text,
            "waybill_delivery_attempts_total",
            "outcome=\"delivered\"",
        );
    }
    Some(sum)
}

/// The sum of a metric's series (Prometheus text) whose labels contain `label` (all
/// series when it is empty).
fn metric_sum(text: &str, metric: &str, label: &str) -> u64 {
    let prefix = format!("{metric}{{");
    text.lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Bytes this process has caused to be sent to storage (`write_bytes` of
/// `/proc/self/io`); None where the kernel does not say.
fn storage_write_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Counts acknowledged events that the hub's read API does not show.
async fn verify(
    base: &str,
    key: &str,
    run_id: &str,
    r: &Report,
    per_request: usize,
) -> anyhow::Result<usize> {
    let client = reqwest::Client::new();
    let mut missing = 0usize;
    for (s, &n) in r.accepted_per_shipment.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let v: serde_json::Value = client
            .get(format!("{base}/v1/shipments/{run_id}-S{s}"))
            .bearer_auth(key)
            .send()
            .await?
            .json()
            .await?;
        let have = v["timeline"].as_array().map_or(0, |t| t.len());
        missing += (n * per_request).saturating_sub(have);
    }
    Ok(missing)
}

struct SelfHosted {
    base: String,
    delivered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempdir::Dir,
    /// The PostgreSQL store's options, to drop its schema after the run.
    pg: Option<waybill_store::PgOptions>,
}

struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<u64>>,
}

impl Sampler {
    async fn stop(self) -> Vec<u64> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl SelfHosted {
    async fn start(
        secret: &str,
        profile: bench::Profile,
        pg: Option<&str>,
        pending_timers: Option<u64>,
    ) -> anyhow::Result<SelfHosted> {
        let dir = std::env::temp_dir().join(format!("waybill-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (sink, delivered) = bench::start_sink("127.0.0.1:0").await?;
        let db = dir
            .join("bench.db")
            .display()
            .to_string()
            .replace('\\', "/");
        let schema = format!("waybill_bench_{}", std::process::id());
        let store = match pg {
            None => format!("path = \"{db}\"\nsynchronous = \"full\""),
            Some(url) => {
                format!("type = \"postgres\"\nurl = \"plain:{url}\"\nschema = \"{schema}\"")
            }
        };
        let toml = format!(
            r#"
[server]
api_keys = ["plain:bench-api-key"]
[store]
{store}
[log]
level = "warn"
[sources.bench]
type = "jq"
auth = {{ type = "standard_webhooks", secrets = ["plain:{secret}"] }}
mapping = '{mapping}'
[sinks.local]
type = "http_webhook"
url = "{sink}"
concurrency = 64
[[subscriptions]]
name = "everything"
sink = "local"
{workflows}
"#,
            mapping = profile.mapping(),
            workflows = if pending_timers.is_some() {
                "[workflows.exception_to_case]\nsla = \"24h\""
            } else {
                ""
            },
        );
        let cfg = waybill::Config::parse(&toml, std::iter::empty())?;
        if let Some(n) = pending_timers.filter(|n| *n > 0) {
            let store = waybill::open_store(&cfg).await?;
            let started = std::time::Instant::now();
            bench::seed_timers(&store, n).await?;
            store.close().await;
            eprintln!(
                "bench: {n} workflows waiting on a timer seeded in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(waybill::serve(cfg, listener, async move {
            let _ = rx.await;
        }));
        Ok(SelfHosted {
            base,
            delivered,
            stop: tx,
            task,
            _dir: tempdir::Dir(dir),
            pg: pg.map(|url| {
                let mut o = waybill_store::PgOptions::new(url);
                o.schema = schema;
                o
            }),
        })
    }

    /// Sizes of the store's database file and WAL.
    fn store_sizes(&self) -> (u64, u64) {
        let size = |name: &str| {
            std::fs::metadata(self._dir.0.join(name))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        (size("bench.db"), size("bench.db-wal"))
    }

    fn sample_outbox(&self) -> Sampler {
        let url = format!("{}/metrics", self.base);
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut out = Vec::new();
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                if let Ok(r) = client.get(&url).send().await {
                    if let Ok(t) = r.text().await {
                        out.push(metric_sum(&t, "waybill_outbox_depth", ""));
                    }
                }
            }
            out
        });
        Sampler { stop: tx, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        if let Some(o) = &self.pg {
            if let Err(e) = waybill_store::drop_pg_schema(o) {
                eprintln!("bench: cannot drop schema {}: {e}", o.schema);
            }
        }
    }
}
