//! The `waybill` binary's library: configuration assembly and [`serve`], which wires the
//! store, the engine, the connectors and the HTTP interface together.
//!
//! Place in the flow: none of its own — it only assembles. Never does: business logic.

pub mod bench;
pub mod config;
pub mod error_codes;
pub mod odoo_burst;

use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use waybill_api::{router, AppState};
use waybill_engine::clock::SystemClock;
use waybill_engine::dispatcher::{spawn_dispatchers, DispatchLimits};
use waybill_engine::{Hub, Metrics};
use waybill_store::{SqliteOptions, Store};

pub use config::Config;

/// Opens the configured store (running migrations).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
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
    let store = open_store(&config).await?;
    store.set_ownership(rt.ownership)?;
    store.sync_subscriptions(rt.subscriptions).await?;
    let metrics = Arc::new(Metrics::default());
    let hub = Arc::new(
        Hub::new(store.clone(), rt.sources, metrics.clone())
            .hiding(waybill_connectors::carrier::secret_headers()),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let dispatchers = spawn_dispatchers(
        store.clone(),
        rt.sinks,
        metrics,
        DispatchLimits::default(),
        Arc::new(SystemClock),
        stop_rx.clone(),
    );
    let mut watchers: Vec<_> = rt
        .drops
        .into_iter()
        .map(|d| tokio::spawn(d.watch(hub.clone(), stop_rx.clone())))
        .collect();
    watchers.extend(
        rt.pollers
            .into_iter()
            .map(|p| tokio::spawn(p.run(hub.clone(), stop_rx.clone()))),
    );
    watchers.extend(
        rt.nats
            .into_iter()
            .map(|n| tokio::spawn(n.run(hub.clone(), stop_rx.clone()))),
    );
    let app = router(Arc::new(AppState {
        hub,
        api_keys: rt.api_keys,
        max_body_bytes: config.server.max_body_bytes,
    }));
    tracing::info!(addr = %listener.local_addr()?, store = %config.store.path.display(), "waybill listening");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    tracing::info!("shutting down: finishing deliveries in flight");
    let _ = stop_tx.send(true);
    for w in watchers {
        let _ = w.await;
    }
    for d in dispatchers {
        let _ = d.await;
    }
    store.close().await;
    tracing::info!("stopped");
    served.context("HTTP server failed")
}
