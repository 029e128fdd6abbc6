//! The `waybill` binary's library: configuration assembly and [`serve`], which wires the
//! store, the engine, the connectors and the HTTP interface together.
//!
//! Place in the flow: none of its own — it only assembles. Never does: business logic.

pub mod audit;
pub mod bench;
pub mod config;
pub mod error_codes;
pub mod odoo_burst;
pub mod retention;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod workflows;

use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use waybill_api::{router, AppState};
use waybill_engine::clock::SystemClock;
use waybill_engine::dispatcher::{spawn_traced_dispatchers, DispatchLimits, SinkRuntime};
use waybill_engine::lease::{run_singleton, spawn_keeper, LeaseSettings, Leases};
use waybill_engine::telemetry::in_scope;
use waybill_engine::{Hub, Metrics};
use waybill_store::lease::{delivery_lease, singleton_lease, BUCKETS};
use waybill_store::{PgOptions, SqliteOptions, Store};

pub use config::Config;
use config::StoreKind;

/// Opens the configured store (running migrations).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if config.store.kind == StoreKind::Postgres {
        let opts = pg_options(config)?;
        return Store::open_postgres(opts).await.with_context(|| {
            format!(
                "cannot open the PostgreSQL store (schema {})",
                config.store.schema
            )
        });
    }
    if let Some(parent) = config.store.path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
    }
    Store::open_sqlite(sqlite_options(config))
        .await
        .with_context(|| format!("cannot open store {}", config.store.path.display()))
}

/// The PostgreSQL store's options from `[store]`.
pub fn pg_options(config: &Config) -> anyhow::Result<PgOptions> {
    let url = config
        .store
        .url
        .as_ref()
        .context("store.url is required with type = \"postgres\"")?
        .resolve()
        .map_err(|e| anyhow::anyhow!("store.url: {e}"))?;
    let mut opts = PgOptions::new(url.expose());
    opts.schema.clone_from(&config.store.schema);
    opts.readers = config.store.readers.max(1);
    opts.max_batch = config.store.max_batch;
    Ok(opts)
}

/// This instance's id: `[cluster].instance`, or host name, process id and a random
/// suffix.
fn instance_id(config: &Config) -> String {
    config.cluster.instance.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "waybill".into());
        format!(
            "{host}-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        )
    })
}

/// The sinks paused in the store.
async fn paused_sinks(store: &Store) -> anyhow::Result<std::collections::BTreeSet<String>> {
    Ok(store
        .sink_controls()
        .await?
        .into_iter()
        .filter(|c| c.paused)
        .map(|c| c.sink)
        .collect())
}

/// Follows the paused sinks in a shared store, where another instance may pause or
/// resume one: read every second until `stop`.
async fn follow_paused(store: Store, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
        match paused_sinks(&store).await {
            Ok(p) => metrics.controls.set_all_paused(p),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the paused sinks; keeping the last known")
            }
        }
    }
}

/// Writes the configured subscriptions once the store takes writes again (they could not
/// be written at start, the disk being full): tries every 2 seconds until it succeeds or
/// `stop`.
async fn sync_later(
    store: Store,
    subs: Vec<waybill_store::Subscription>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
        match store.sync_subscriptions(subs.clone()).await {
            Ok(()) => {
                tracing::info!("configured subscriptions stored");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "subscriptions still not stored"),
        }
    }
}

/// The SQLite store's options from `[store]`.
pub fn sqlite_options(config: &Config) -> SqliteOptions {
    let mut opts = SqliteOptions::new(&config.store.path);
    opts.synchronous = config.store.synchronous;
    opts.max_batch = config.store.max_batch;
    // SQLite caps the map at its own limit (just under 2 GiB).
    opts.mmap_size = config.store.mmap_size_mib.saturating_mul(1 << 20);
    opts.checkpoint_pages = config.store.checkpoint_pages;
    opts
}

/// Runs the hub on `listener` until `shutdown` resolves; then stops taking requests,
/// finishes in-flight requests and deliveries, records their results and closes the store.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let rt = config.validate().map_err(|errs| {
        let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid configuration:\n  {}", all.join("\n  "))
    })?;
    let telemetry = telemetry::start(rt.telemetry)?;
    let tracer = telemetry.tracer();
    let store = open_store(&config).await?;
    store.set_ownership(rt.ownership)?;
    // On a full disk the hub still starts and serves reads: it routes with the
    // subscriptions stored at the last start until the configured ones can be written.
    let pending_subscriptions = match store.sync_subscriptions(rt.subscriptions.clone()).await {
        Ok(()) => None,
        Err(e) if e.is_storage_full() => {
            tracing::error!(error = %e, "cannot store the configured subscriptions (disk full): routing with those stored before until they can be written");
            Some(rt.subscriptions)
        }
        Err(e) => return Err(e.into()),
    };
    let metrics = Arc::new(Metrics::default());
    let http_stats = metrics.clone();
    let hub = Arc::new(
        Hub::new(store.clone(), rt.sources, metrics.clone())
            .with_privacy(waybill_model::privacy::Personal::with(
                &config.privacy.personal_keys,
            ))
            .hiding(waybill_connectors::carrier::secret_headers())
            .traced(tracer.clone())
            .limited(rt.limits)
            .with_tenants(rt.tenants),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sinks = rt.sinks;
    let workflows = match rt.workflows {
        Some(w) => Some((w.machines(&store).await?, w)),
        None => None,
    };
    let workflows = workflows.map(|(machines, w)| {
        let runtime = Arc::new(waybill_engine::workflow::runtime::Runtime::new(
            hub.clone(),
            machines,
            w.carriers,
            w.erp,
            Arc::new(SystemClock),
            w.policy,
        ));
        sinks.push(SinkRuntime {
            name: waybill_engine::workflow::sink::SINK.into(),
            outbound: Arc::new(waybill_engine::workflow::sink::WorkflowSink::new(
                runtime.clone(),
            )),
            retry: config.delivery.retry_policy(),
            circuit: config.delivery.circuit(),
            concurrency: config.delivery.concurrency.max(1),
            pause_on_gone: config.delivery.pause_on_gone,
            // The workflows are the hub itself: they see events whole.
            minimise: None,
            personal_data: true,
        });
        runtime
    });
    // Work one instance at a time must do: each sink's buckets of lanes, each poller and
    // file drop. A single-process store holds it all; a shared one divides it by leases.
    let instance = instance_id(&config);
    let (leases, keeper) = if store.shared() {
        let mut names: Vec<String> = sinks
            .iter()
            .flat_map(|s| (0..BUCKETS).map(|b| delivery_lease(&s.name, b)))
            .collect();
        names.extend(
            rt.pollers
                .iter()
                .map(|p| singleton_lease(&format!("poller:{}", p.name()))),
        );
        names.extend(
            rt.drops
                .iter()
                .map(|d| singleton_lease(&format!("drop:{}", d.name()))),
        );
        if workflows.is_some() {
            names.push(singleton_lease("workflows"));
        }
        names.push(singleton_lease("retention"));
        if !config.audit.seal_events_every.is_zero() {
            names.push(singleton_lease("seal-events"));
        }
        let settings = LeaseSettings {
            instance: instance.clone(),
            ttl: config.cluster.lease_ttl,
            names,
        };
        let (l, k) = spawn_keeper(store.clone(), settings, stop_rx.clone());
        (l, Some(k))
    } else {
        (Leases::all(), None)
    };
    // Operator controls: each sink's type and connector (test deliveries), the paused
    // sinks as the store keeps them (a restart keeps a paused sink paused; instances
    // sharing the store follow each other's changes), the activity series.
    for s in &sinks {
        let kind = config.sinks.get(&s.name).map_or("internal", |c| c.kind());
        metrics
            .controls
            .register_sink(&s.name, kind, s.outbound.clone());
    }
    for (name, c) in &config.sources {
        metrics.controls.register_source(name, c.kind());
    }
    let paused = paused_sinks(&store).await?;
    metrics.controls.set_all_paused(paused);
    let mut control_tasks = Vec::new();
    // The audit trail: this start, and the chain's head anchored to a file when asked.
    audit::record_start(&store, &instance, &config).await;
    if let Some(path) = config.audit.anchor_file.clone() {
        audit::anchor_logged(&store, &path).await;
        let every = config.audit.anchor_every;
        control_tasks.push(tokio::spawn(audit::run_anchor(
            store.clone(),
            path,
            every,
            stop_rx.clone(),
        )));
    }
    if let Some(subs) = pending_subscriptions {
        control_tasks.push(tokio::spawn(sync_later(
            store.clone(),
            subs,
            stop_rx.clone(),
        )));
    }
    // TLS: the reloader swaps in a rotated certificate while the listener serves.
    let tls = rt.tls.map(|tls| {
        let acceptor = tls.acceptor();
        control_tasks.push(tokio::spawn(
            tls.run_reload(metrics.clone(), stop_rx.clone()),
        ));
        acceptor
    });
    control_tasks.push(tokio::spawn(waybill_engine::control::run_sampler(
        metrics.clone(),
        stop_rx.clone(),
    )));
    if store.shared() {
        control_tasks.push(tokio::spawn(follow_paused(
            store.clone(),
            metrics.clone(),
            stop_rx.clone(),
        )));
    }
    // The event log sealed into the audit chain, by one instance at a time.
    if !config.audit.seal_events_every.is_zero() {
        let (store, every, origin) = (
            store.clone(),
            config.audit.seal_events_every,
            format!("instance={instance}"),
        );
        control_tasks.push(tokio::spawn(run_singleton(
            leases.clone(),
            singleton_lease("seal-events"),
            stop_rx.clone(),
            move |stop| audit::run_seal_events(store.clone(), every, origin.clone(), stop),
        )));
    }
    // Retention: one instance at a time purges (a lease on a shared store).
    {
        let (store, cfg, metrics) = (store.clone(), config.retention.clone(), metrics.clone());
        control_tasks.push(tokio::spawn(run_singleton(
            leases.clone(),
            singleton_lease("retention"),
            stop_rx.clone(),
            move |stop| retention::run(store.clone(), cfg.clone(), metrics.clone(), stop),
        )));
    }
    let dispatchers = spawn_traced_dispatchers(
        store.clone(),
        sinks,
        metrics,
        DispatchLimits::default(),
        Arc::new(SystemClock),
        leases.clone(),
        tracer.clone(),
        stop_rx.clone(),
    );
    let mut watchers: Vec<_> = rt
        .drops
        .into_iter()
        .map(|d| {
            let (hub, lease) = (hub.clone(), singleton_lease(&format!("drop:{}", d.name())));
            tokio::spawn(run_singleton(
                leases.clone(),
                lease,
                stop_rx.clone(),
                move |stop| d.clone().watch(hub.clone(), stop),
            ))
        })
        .collect();
    watchers.extend(rt.pollers.into_iter().map(|p| {
        let (hub, lease) = (
            hub.clone(),
            singleton_lease(&format!("poller:{}", p.name())),
        );
        tokio::spawn(run_singleton(
            leases.clone(),
            lease,
            stop_rx.clone(),
            // Its Odoo RPCs are spans of their own traces.
            move |stop| in_scope(hub.tracer().clone(), None, p.clone().run(hub.clone(), stop)),
        ))
    }));
    watchers.extend(
        rt.nats
            .into_iter()
            .map(|n| tokio::spawn(n.run(hub.clone(), stop_rx.clone()))),
    );
    if let Some(w) = &workflows {
        let w = w.clone();
        watchers.push(tokio::spawn(run_singleton(
            leases.clone(),
            singleton_lease("workflows"),
            stop_rx.clone(),
            move |stop| in_scope(tracer.clone(), None, w.clone().run(stop)),
        )));
    }
    let app = router(Arc::new(AppState {
        hub,
        api_keys: rt.api_keys,
        max_body_bytes: config.server.max_body_bytes,
        instance: instance.clone(),
        leases: leases.clone(),
        workflows,
        keys: Default::default(),
    }));
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), store = store.backend(), instance = %instance, "waybill listening");
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let mut limits = config.server.limits();
    limits.max_connections = server::connection_cap(limits.max_connections, nofile);
    tracing::info!(
        open_file_limit = nofile,
        max_connections = limits.max_connections,
        "connection cap"
    );
    let served = server::run(listener, app, limits, tls, http_stats, shutdown).await;
    tracing::info!("shutting down: finishing deliveries in flight");
    let _ = stop_tx.send(true);
    for w in watchers {
        let _ = w.await;
    }
    for d in dispatchers {
        let _ = d.await;
    }
    for t in control_tasks {
        let _ = t.await;
    }
    // The head as this instance leaves it: after every action it answered.
    if let Some(path) = &config.audit.anchor_file {
        audit::anchor_logged(&store, path).await;
    }
    if let Some(k) = keeper {
        let _ = k.await;
        // The work under the leases is done: the others may take them at once.
        if let Err(e) = store.release_leases(&instance).await {
            tracing::warn!(error = %e, "cannot release leases; they expire by themselves");
        }
    }
    store.close().await;
    // Last: the spans of the deliveries just finished are exported too.
    telemetry.shutdown(config.telemetry.timeout).await;
    tracing::info!("stopped");
    served.context("HTTP server failed")
}
