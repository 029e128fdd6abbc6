//! The audit trail around the store's hash chain (`waybill_store::audit`): `[audit]` of
//! the configuration, the anchor file (the chain's head, appended every `anchor_every` by
//! a task of `serve`), and reading it back for `waybill audit verify --anchor`.
//!
//! An anchor is one JSON line, `{"seq":N,"hash":"<hex>","at":"<RFC 3339>"}`. Kept where
//! the database's writers cannot rewrite it (another host, a write-once bucket, a log
//! shipper), it catches a chain rewritten consistently from some record on, which the
//! chain alone cannot tell from the real one (docs/security.md).

use anyhow::Context;
use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use waybill_store::audit::{AuditAnchor, AuditEntry};
use waybill_store::Store;

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// File the chain's head is appended to, one JSON line per anchor (off when unset).
    #[serde(default)]
    pub anchor_file: Option<PathBuf>,
    /// How often the head is anchored (also once at start and once at a graceful stop).
    #[serde(
        default = "default_anchor_every",
        deserialize_with = "waybill_engine::duration::de"
    )]
    pub anchor_every: Duration,
    /// How often the event rows written since the last checkpoint are sealed into the
    /// chain (an `events.checkpoint` record with their digest); `0s`: never.
    #[serde(
        default = "default_seal_events_every",
        deserialize_with = "waybill_engine::duration::de"
    )]
    pub seal_events_every: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            anchor_file: None,
            anchor_every: default_anchor_every(),
            seal_events_every: default_seal_events_every(),
        }
    }
}

fn default_seal_events_every() -> Duration {
    Duration::from_secs(60)
}

fn default_anchor_every() -> Duration {
    Duration::from_secs(3600)
}

/// Reads an anchor file: one anchor a line (blank lines skipped).
pub fn read_anchors(path: &Path) -> anyhow::Result<Vec<AuditAnchor>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the anchor file {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let a: AuditAnchor = serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not an anchor", path.display(), i + 1))?;
            if a.seq < 0 || a.hash.len() != 64 || !a.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!("{} line {}: not an anchor", path.display(), i + 1);
            }
            Ok(a)
        })
        .collect()
}

/// Appends the store's current head to `path` (creating it), synced to disk; returns it.
pub async fn anchor_now(store: &Store, path: &Path) -> anyhow::Result<AuditAnchor> {
    let (seq, hash) = store.audit_head().await?;
    let anchor = AuditAnchor {
        seq,
        hash,
        at: OffsetDateTime::now_utc(),
    };
    let line = format!("{}\n", serde_json::to_string(&anchor)?);
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open the anchor file {}", path.display()))?;
        f.write_all(line.as_bytes())?;
        f.sync_data()?;
        Ok(())
    })
    .await??;
    Ok(anchor)
}

/// Anchors the head every `every` when it moved, until `stop` turns true. The anchors at
/// start and at a graceful stop are written by `serve` itself, in order with the rest of
/// the start and the stop (not raced against them here). Errors are logged; the task
/// goes on.
pub async fn run_anchor(
    store: Store,
    path: PathBuf,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut last: Option<i64> = store.audit_head().await.ok().map(|(seq, _)| seq);
    let period = every.max(Duration::from_secs(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let moved = match store.audit_head().await {
            Ok((seq, _)) => last != Some(seq),
            Err(_) => true,
        };
        if moved {
            if let Some(a) = anchor_logged(&store, &path).await {
                last = Some(a.seq);
            }
        }
    }
}

/// Seals the event log into the audit chain every `every`: one `events.checkpoint`
/// record for the rows written since the last one (none when nothing was written), and
/// once more when stopped. Errors are logged; the next tick tries again from the same
/// row.
pub async fn run_seal_events(
    store: Store,
    every: Duration,
    origin: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut after = match store.last_checkpoint().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(target: "waybill::audit", error = %e, "cannot read the last event-log checkpoint; sealing from the first event");
            0
        }
    };
    let period = every.max(Duration::from_millis(100));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        } || *stop.borrow();
        match store.checkpoint_events(after, &origin).await {
            Ok(Some(through)) => {
                tracing::debug!(
                    from = after,
                    through,
                    "event log sealed into the audit chain"
                );
                after = through;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(target: "waybill::audit", error = %e, "cannot seal the event log into the audit chain")
            }
        }
        if stopping {
            return;
        }
    }
}

/// [`anchor_now`], its error logged.
pub async fn anchor_logged(store: &Store, path: &Path) -> Option<AuditAnchor> {
    match anchor_now(store, path).await {
        Ok(a) => {
            tracing::debug!(seq = a.seq, hash = %a.hash, "audit head anchored");
            Some(a)
        }
        Err(e) => {
            tracing::error!(target: "waybill::audit", error = %e,
                file = %path.display(), "cannot anchor the audit head");
            None
        }
    }
}

/// Records that this instance started (with the configuration's subscriptions in force).
pub async fn record_start(store: &Store, instance: &str, config: &crate::Config) {
    let entry = AuditEntry {
        actor: "system".into(),
        action: "hub.start".into(),
        target: format!("instance:{instance}"),
        detail: serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "store": store.backend(),
            "sources": config.sources.keys().collect::<Vec<_>>(),
            "sinks": config.sinks.keys().collect::<Vec<_>>(),
            "subscriptions": config.subscriptions.len(),
        }),
        origin: format!("instance={instance}"),
    };
    if let Err(e) = store.audit_append(entry).await {
        tracing::error!(target: "waybill::audit", error = %e, "cannot append the start to the audit trail");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn anchor_lines_are_read_and_bad_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        let h = "ab".repeat(32);
        std::fs::write(
            &p,
            format!("{{\"seq\":3,\"hash\":\"{h}\",\"at\":\"2026-01-02T03:04:05Z\"}}\n\n"),
        )
        .unwrap();
        let a = read_anchors(&p).unwrap();
        assert_eq!((a.len(), a[0].seq, a[0].hash.as_str()), (1, 3, h.as_str()));
        std::fs::write(
            &p,
            "{\"seq\":3,\"hash\":\"xyz\",\"at\":\"2026-01-02T03:04:05Z\"}\n",
        )
        .unwrap();
        let e = read_anchors(&p).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
