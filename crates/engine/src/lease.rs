//! LEASES: which instance does what when several share one database.
//!
//! A keeper task claims the cluster's leases (each sink's delivery buckets, each
//! singleton task) every quarter of the lease time and publishes what this instance
//! holds. Dispatchers deliver only the lanes of the buckets held; singletons (pollers,
//! file drops) run only while their lease is held ([`run_singleton`]). When a claim
//! cannot be made (the database is away), what is held is dropped before the leases
//! could expire, so no two instances ever work one lease at once. On a graceful stop the
//! leases are released for the others at once. With a single-process store everything is
//! held from the start ([`Leases::all`]).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use waybill_store::lease::{bucket_mask, LeaseClaim, ALL_BUCKETS};
use waybill_store::Store;

/// What this instance holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Everything (a single-process store).
    pub all: bool,
    /// Leases held, when not `all`.
    pub names: BTreeSet<String>,
    /// Instances alive when last claimed.
    pub instances: usize,
}

impl Held {
    /// Whether lease `name` is held.
    pub fn holds(&self, name: &str) -> bool {
        self.all || self.names.contains(name)
    }

    /// The buckets of `sink` held, as a mask.
    pub fn bucket_mask(&self, sink: &str) -> i64 {
        if self.all {
            ALL_BUCKETS
        } else {
            bucket_mask(sink, &self.names)
        }
    }
}

/// A view of what this instance holds, as it changes.
#[derive(Clone)]
pub struct Leases {
    rx: watch::Receiver<Arc<Held>>,
    /// The sender of [`Leases::all`], kept so that the channel stays open.
    _fixed: Option<Arc<watch::Sender<Arc<Held>>>>,
}

impl Leases {
    /// Everything held, for good (a single-process store, tests).
    pub fn all() -> Leases {
        let (tx, rx) = watch::channel(Arc::new(Held {
            all: true,
            names: BTreeSet::new(),
            instances: 1,
        }));
        Leases {
            rx,
            _fixed: Some(Arc::new(tx)),
        }
    }

    /// Leases set by hand through the returned sender (tests, embedding).
    pub fn manual(held: Held) -> (watch::Sender<Arc<Held>>, Leases) {
        let (tx, rx) = watch::channel(Arc::new(held));
        (tx, Leases { rx, _fixed: None })
    }

    /// What is held now.
    pub fn now(&self) -> Arc<Held> {
        self.rx.borrow().clone()
    }

    /// A receiver that changes whenever what is held changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Held>> {
        self.rx.clone()
    }
}

/// How the keeper claims.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// This instance's id (unique among the running instances).
    pub instance: String,
    /// How long a lease lasts without renewal.
    pub ttl: Duration,
    /// Every lease the cluster needs held.
    pub names: Vec<String>,
}

/// Starts the keeper; it stops claiming when `shutdown` becomes true (the caller releases
/// the leases with [`Store::release_leases`] once the work under them has finished).
pub fn spawn_keeper(
    store: Store,
    settings: LeaseSettings,
    mut shutdown: watch::Receiver<bool>,
) -> (Leases, JoinHandle<()>) {
    let (tx, rx) = watch::channel(Arc::new(Held::default()));
    let task = tokio::spawn(async move {
        let claim = LeaseClaim {
            holder: settings.instance.clone(),
            names: settings.names.clone(),
            ttl_ms: i64::try_from(settings.ttl.as_millis()).unwrap_or(i64::MAX),
        };
        let period = settings.ttl / 4;
        // Held leases are trusted until this long after the claim that granted them was
        // sent: a quarter of the lease time short of their expiry in the database.
        let trust = settings.ttl - settings.ttl / 4;
        let mut valid_until: Option<Instant> = None;
        loop {
            let sent = Instant::now();
            match store.claim_leases(claim.clone()).await {
                Ok(grant) => {
                    valid_until = Some(sent + trust);
                    let held = Held {
                        all: false,
                        names: grant.held.into_iter().collect(),
                        instances: grant.instances,
                    };
                    tx.send_if_modified(|cur| {
                        if **cur == held {
                            return false;
                        }
                        tracing::info!(
                            held = held.names.len(),
                            instances = held.instances,
                            "leases changed"
                        );
                        *cur = Arc::new(held);
                        true
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim leases; keeping them until they would expire");
                }
            }
            if valid_until.is_some_and(|v| Instant::now() >= v) {
                valid_until = None;
                tracing::warn!("leases not renewed in time: stopping the work under them");
                tx.send_replace(Arc::new(Held::default()));
            }
            let next = match valid_until {
                Some(v) => (sent + period).min(v),
                None => sent + period,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                break;
            }
        }
        tx.send_replace(Arc::new(Held::default()));
    });
    (Leases { rx, _fixed: None }, task)
}

/// Runs `task` while lease `name` is held: started when it is taken, stopped (its stop
/// receiver set to true, then awaited) when it is lost or `shutdown` becomes true.
pub async fn run_singleton<F, Fut>(
    leases: Leases,
    name: String,
    mut shutdown: watch::Receiver<bool>,
    task: F,
) where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut held = leases.subscribe();
    // A closed channel keeps its last value: nothing changes any more.
    let mut open = true;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if !held.borrow_and_update().holds(&name) {
            if !open {
                return;
            }
            tokio::select! {
                r = held.changed() => open = r.is_ok(),
                _ = shutdown.changed() => {}
            }
            continue;
        }
        tracing::info!(lease = %name, "lease taken: starting");
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut run = tokio::spawn(task(stop_rx));
        let finished = loop {
            tokio::select! {
                _ = &mut run => break true,
                r = held.changed(), if open => {
                    open = r.is_ok();
                    if open && !held.borrow_and_update().holds(&name) {
                        break false;
                    }
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break false; }
                }
            }
        };
        if !finished {
            let _ = stop_tx.send(true);
            let _ = run.await;
            if !*shutdown.borrow() {
                tracing::info!(lease = %name, "lease lost: stopped");
            }
        } else {
            // The task ended by itself (it stops only on shutdown): do not spin.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn held(names: &[&str]) -> Arc<Held> {
        Arc::new(Held {
            all: false,
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            instances: 2,
        })
    }

    /// A singleton runs only while its lease is held: started when taken, stopped when
    /// lost, started again when taken back, stopped at shutdown.
    #[tokio::test(start_paused = true)]
    async fn a_singleton_runs_while_its_lease_is_held() {
        let (tx, leases) = Leases::manual(Held::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let (started, running) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (s, r) = (started.clone(), running.clone());
        let task = tokio::spawn(run_singleton(
            leases,
            "single:poller:odoo".into(),
            stop_rx,
            move |mut stop| {
                let (s, r) = (s.clone(), r.clone());
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    r.fetch_add(1, Ordering::SeqCst);
                    while !*stop.borrow() {
                        if stop.changed().await.is_err() {
                            break;
                        }
                    }
                    r.fetch_sub(1, Ordering::SeqCst);
                }
            },
        ));
        let settle = || tokio::time::sleep(Duration::from_millis(10));
        settle().await;
        assert_eq!(started.load(Ordering::SeqCst), 0, "not held: not started");
        tx.send_replace(held(&["deliver:ops:1", "single:poller:odoo"]));
        settle().await;
        assert_eq!(
            (
                started.load(Ordering::SeqCst),
                running.load(Ordering::SeqCst)
            ),
            (1, 1)
        );
        tx.send_replace(held(&["deliver:ops:1"]));
        settle().await;
        assert_eq!(running.load(Ordering::SeqCst), 0, "lost: stopped");
        tx.send_replace(held(&["single:poller:odoo"]));
        settle().await;
        assert_eq!(
            (
                started.load(Ordering::SeqCst),
                running.load(Ordering::SeqCst)
            ),
            (2, 1)
        );
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(running.load(Ordering::SeqCst), 0, "stopped at shutdown");
    }

    /// The keeper publishes what the store grants (a single-process store: all).
    #[tokio::test]
    async fn the_keeper_publishes_the_grant() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(waybill_store::SqliteOptions::new(dir.path().join("t.db")))
            .await
            .unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let names = vec!["deliver:ops:0".to_owned(), "single:poller:odoo".to_owned()];
        let (leases, task) = spawn_keeper(
            store.clone(),
            LeaseSettings {
                instance: "a".into(),
                ttl: Duration::from_secs(4),
                names: names.clone(),
            },
            stop_rx,
        );
        let mut rx = leases.subscribe();
        while rx.borrow_and_update().names.is_empty() {
            rx.changed().await.unwrap();
        }
        assert_eq!(
            leases.now().names.iter().cloned().collect::<Vec<_>>(),
            names
        );
        assert_eq!(leases.now().bucket_mask("ops"), 1);
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert!(leases.now().names.is_empty(), "nothing held after a stop");
        store.close().await;
    }
}
