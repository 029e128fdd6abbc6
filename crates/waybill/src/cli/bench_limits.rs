//! `waybill bench limits`: does one source's burst cost another source anything? An
//! in-process hub (temporary SQLite, `synchronous = full`) with source `a` rate-limited,
//! source `b` and source `u` unlimited, and a local sink subscribed to everything. Three
//! phases of the same length, `b` paced at its steady rate in each:
//!
//! 1. `b` alone;
//! 2. `b` while `a` sends `factor` × its limit (most of it answered 429);
//! 3. `b` while `u`, which has no limit, sends the same rate (what the limit prevents).
//!
//! It reports `b`'s accepted rate and ack latency (from each request's scheduled start)
//! in each phase, and what `a` and `u` got, with `a`'s throttled count read back from
//! `waybill_ingest_throttled_total`.

use std::process::ExitCode;
use waybill::bench::{self, CpuWatch, Plan, Profile, Report};

#[derive(clap::Args)]
pub struct LimitsArgs {
    /// Source `a`'s rate limit, requests/s; its burst is the same.
    #[arg(long, default_value_t = 100.0)]
    limit: f64,
    /// How many times its limit `a` sends (and `u` in the last phase).
    #[arg(long, default_value_t = 10.0)]
    factor: f64,
    /// Source `b`'s steady rate, requests/s.
    #[arg(long, default_value_t = 100.0)]
    b_rate: f64,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Connections of the bursting source.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// One phase: what `b` got, and what the other source got.
struct Phase {
    b: Report,
    other: Option<Report>,
}

pub async fn run(a: LimitsArgs) -> anyhow::Result<ExitCode> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    anyhow::ensure!(
        positive(a.limit) && positive(a.factor) && positive(a.b_rate),
        "--limit, --factor and --b-rate must be more than 0"
    );
    anyhow::ensure!(
        positive(a.seconds) && a.seconds <= 600.0,
        "--seconds must be more than 0 and at most 600"
    );
    let dir = std::env::temp_dir().join(format!("waybill-bench-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = phases(&a, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let (phases, throttled) = result?;
    let burst = a.limit * a.factor;
    println!(
        "limits     a: {}/s (burst {}), sent {burst:.0}/s; b: {:.0}/s steady; {} s a phase",
        a.limit,
        a.limit.ceil(),
        a.b_rate,
        a.seconds
    );
    let names = ["b alone", "b + a burst", "b + u burst"];
    for (name, p) in names.iter().zip(&phases) {
        line(name, &p.b);
    }
    if let Some(r) = &phases[1].other {
        println!(
            "a          {} accepted ({:.1}/s), {} refused; {throttled} counted in waybill_ingest_throttled_total{{source=\"a\"}}",
            r.ok,
            r.rate(),
            r.failed
        );
    }
    if let Some(r) = &phases[2].other {
        line("u (no limit)", r);
    }
    let b_ok = phases.iter().all(|p| p.b.failed == 0);
    Ok(if b_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn line(name: &str, r: &Report) {
    println!(
        "{name:<14} {:>6} ok {:>5} failed  {:>8.1}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
        r.ok,
        r.failed,
        r.rate(),
        r.pct_ms(0.50),
        r.pct_ms(0.99),
        r.pct_ms(1.0)
    );
}

async fn phases(a: &LimitsArgs, dir: &std::path::Path) -> anyhow::Result<(Vec<Phase>, u64)> {
    let (sink, _delivered) = bench::start_sink("127.0.0.1:0").await?;
    let db = dir
        .join("bench.db")
        .display()
        .to_string()
        .replace('\\', "/");
    let source = |name: &str, limit: &str| {
        format!(
            "[sources.{name}]\ntype = \"jq\"\nauth = {{ type = \"standard_webhooks\", secrets = [\"plain:{}\"] }}\nmapping = '{}'\n{limit}\n",
            bench::SECRET,
            bench::MAPPING
        )
    };
    let toml = format!(
        "[store]\npath = \"{db}\"\nsynchronous = \"full\"\n[log]\nlevel = \"warn\"\n{}{}{}[sinks.local]\ntype = \"http_webhook\"\nurl = \"{sink}\"\nconcurrency = 64\n[[subscriptions]]\nname = \"everything\"\nsink = \"local\"\n",
        source(
            "a",
            &format!(
                "rate_limit = {{ per_second = {}, burst = {} }}",
                a.limit,
                a.limit.ceil().max(1.0)
            )
        ),
        source("b", ""),
        source("u", ""),
    );
    let cfg = waybill::Config::parse(&toml, std::iter::empty())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let hub = tokio::spawn(waybill::serve(cfg, listener, async move {
        let _ = rx.await;
    }));
    let run_id = format!(
        "l{}",
        time::OffsetDateTime::now_utc().unix_timestamp() % 1_000_000
    );
    let plan = |src: &str, rate: f64, concurrency: usize, tag: &str| Plan {
        url: format!("{base}/v1/ingest/{src}"),
        secret: bench::SECRET.into(),
        events: (rate * a.seconds).round().max(1.0) as usize,
        shipments: 1_000,
        concurrency,
        rate: Some(rate),
        run_id: format!("{run_id}{tag}"),
        cpu: CpuWatch::Off,
        profile: Profile::Minimal,
    };
    // Warm-up: connections, the first commits, the page cache.
    bench::run(&Plan {
        rate: None,
        events: 200,
        ..plan("b", a.b_rate, 8, "w")
    })
    .await?;
    let burst = a.limit * a.factor;
    let steady = |tag: &str| plan("b", a.b_rate, 16, tag);
    let mut out = Vec::new();
    out.push(Phase {
        b: bench::run(&steady("b1")).await?,
        other: None,
    });
    for (src, tag) in [("a", "a"), ("u", "u")] {
        let other = plan(src, burst, a.concurrency, tag);
        let b = steady(&format!("b{tag}"));
        let (b, other) = tokio::join!(bench::run(&b), bench::run(&other));
        out.push(Phase {
            b: b?,
            other: Some(other?),
        });
    }
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    let throttled = metrics
        .lines()
        .filter(|l| l.starts_with("waybill_ingest_throttled_total{source=\"a\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let _ = tx.send(());
    hub.await??;
    Ok((out, throttled))
}
