//! Retention: `[retention]` in the configuration, the purge plan it makes, and the
//! background job `serve` runs (on PostgreSQL under a lease, one instance at a time).
//!
//! Each pass runs batches of the plan until every kind has less than a batch left,
//! pausing `pause` between batches so that the store's single writer interleaves ingest
//! with them; then it sleeps `interval`. What goes and what never does:
//! `waybill_store::retention`.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use waybill_engine::Metrics;
use waybill_store::retention::{PayloadCutoffs, PurgeKind, PurgePlan, PurgeReport};
use waybill_store::Store;

/// `[retention]`: how long each kind of data is kept (`"forever"`: never purged).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Bodies of accepted payloads (the inbox record itself stays).
    #[serde(default = "days90", deserialize_with = "keep")]
    pub raw_payloads: Option<Duration>,
    /// Rejected payloads (whole records).
    #[serde(default = "days30", deserialize_with = "keep")]
    pub rejected_payloads: Option<Duration>,
    /// Delivered outbox rows and their delivery attempts, from their delivery.
    #[serde(default = "days14", deserialize_with = "keep")]
    pub delivered: Option<Duration>,
    /// Discarded or replayed dead letters, from their discard or replay (open ones are
    /// never purged).
    #[serde(default = "days90", deserialize_with = "keep")]
    pub dead_letters: Option<Duration>,
    /// Audit records (default: kept forever); a prefix of the chain only, which stays
    /// verifiable from its new base.
    #[serde(default, deserialize_with = "keep")]
    pub audit: Option<Duration>,
    /// Rows of each kind per transaction.
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// Time between passes.
    #[serde(
        default = "default_interval",
        deserialize_with = "waybill_engine::duration::de"
    )]
    pub interval: Duration,
    /// Pause between two batches of a pass (ingest runs in between).
    #[serde(
        default = "default_pause",
        deserialize_with = "waybill_engine::duration::de"
    )]
    pub pause: Duration,
    /// Most of the time a pass may spend purging (above 0, at most 1): after a batch that
    /// took `t`, the pause is at least `t × (1 − max_duty) / max_duty`, so that a slower
    /// store (PostgreSQL) or a busier machine slows the purge, not ingest.
    #[serde(default = "default_max_duty")]
    pub max_duty: f64,
    /// Per source: `[retention.sources.<name>]` with `raw_payloads`, `rejected_payloads`.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceRetention>,
}

/// `[retention.sources.<name>]`: a source's payloads kept longer or shorter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRetention {
    /// Replaces `[retention].raw_payloads` for this source.
    #[serde(default, deserialize_with = "keep_some")]
    pub raw_payloads: Option<Option<Duration>>,
    /// Replaces `[retention].rejected_payloads` for this source.
    #[serde(default, deserialize_with = "keep_some")]
    pub rejected_payloads: Option<Option<Duration>>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            raw_payloads: days90(),
            rejected_payloads: days30(),
            delivered: days14(),
            dead_letters: days90(),
            audit: None,
            batch: default_batch(),
            interval: default_interval(),
            pause: default_pause(),
            max_duty: default_max_duty(),
            sources: BTreeMap::new(),
        }
    }
}

fn days(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n * 86_400))
}
fn days90() -> Option<Duration> {
    days(90)
}
fn days30() -> Option<Duration> {
    days(30)
}
fn days14() -> Option<Duration> {
    days(14)
}
fn default_batch() -> u32 {
    1000
}
fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_pause() -> Duration {
    Duration::from_millis(100)
}
fn default_max_duty() -> f64 {
    0.1
}

/// The pause after a batch that took `took`: at least `pause`, and long enough that the
/// job works at most `max_duty` of the time (1: no such bound).
pub fn pause_after(took: Duration, pause: Duration, max_duty: f64) -> Duration {
    if !(max_duty > 0.0 && max_duty < 1.0) {
        return pause;
    }
    pause.max(took.mul_f64((1.0 - max_duty) / max_duty))
}

/// A duration, or `"forever"` (`None`).
fn parse_keep(s: &str) -> Result<Option<Duration>, String> {
    match s.trim() {
        "forever" => Ok(None),
        other => waybill_engine::duration::parse(other).map(Some),
    }
}

fn keep<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_keep(&s).map_err(serde::de::Error::custom)
}

fn keep_some<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Duration>>, D::Error> {
    keep(d).map(Some)
}

/// `now - keep`, `None` when kept forever (or beyond the calendar).
fn cutoff(now: OffsetDateTime, keep: Option<Duration>) -> Option<OffsetDateTime> {
    let keep = time::Duration::try_from(keep?).ok()?;
    now.checked_sub(keep)
}

impl RetentionConfig {
    /// The plan at `now`.
    pub fn plan(&self, now: OffsetDateTime, dry_run: bool) -> PurgePlan {
        let payloads = PayloadCutoffs {
            raw_payloads: cutoff(now, self.raw_payloads),
            rejected_payloads: cutoff(now, self.rejected_payloads),
        };
        let sources = self
            .sources
            .iter()
            .map(|(name, s)| {
                let raw = s.raw_payloads.unwrap_or(self.raw_payloads);
                let rejected = s.rejected_payloads.unwrap_or(self.rejected_payloads);
                (
                    name.clone(),
                    PayloadCutoffs {
                        raw_payloads: cutoff(now, raw),
                        rejected_payloads: cutoff(now, rejected),
                    },
                )
            })
            .collect();
        PurgePlan {
            now,
            payloads,
            sources,
            delivered: cutoff(now, self.delivered),
            dead_letters: cutoff(now, self.dead_letters),
            audit: cutoff(now, self.audit),
            batch: self.batch.max(1),
            dry_run,
        }
    }

    /// Errors of `[retention]`, by key.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.batch == 0 {
            out.push(("retention.batch".into(), "must be at least 1".into()));
        }
        if self.interval.is_zero() {
            out.push(("retention.interval".into(), "must be longer than 0".into()));
        }
        if !(self.max_duty > 0.0 && self.max_duty <= 1.0) {
            out.push((
                "retention.max_duty".into(),
                "must be above 0 and at most 1 (a share of the time)".into(),
            ));
        }
        out
    }
}

/// Whether a batch's report says this kind may have more: a full batch.
fn more(r: &PurgeReport, batch: u32) -> bool {
    r.counts.values().any(|c| c.rows >= u64::from(batch))
}

/// Runs the plan until nothing of it is left, pausing between batches (`pause`, longer
/// when a batch took long: [`pause_after`] with `max_duty`), calling `each` with every
/// batch's report; stops early when `stop` turns true. The whole of it.
pub async fn purge_to_end(
    store: &Store,
    cfg: &RetentionConfig,
    pause: Duration,
    max_duty: f64,
    stop: &mut watch::Receiver<bool>,
    mut each: impl FnMut(&PurgeReport),
) -> Result<PurgeReport, waybill_store::StoreError> {
    let mut total = PurgeReport::default();
    loop {
        if *stop.borrow() {
            return Ok(total);
        }
        let began = std::time::Instant::now();
        let r = store
            .purge(cfg.plan(OffsetDateTime::now_utc(), false))
            .await?;
        let pause = pause_after(began.elapsed(), pause, max_duty);
        each(&r);
        total.merge(&r);
        if !more(&r, cfg.batch.max(1)) {
            return Ok(total);
        }
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Fields of a report for a log line: rows of each kind.
fn rows(r: &PurgeReport, k: PurgeKind) -> u64 {
    r.get(k).rows
}

/// The background job: a pass every `interval` until `stop`.
pub async fn run(
    store: Store,
    cfg: RetentionConfig,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let started = std::time::Instant::now();
        let m = metrics.clone();
        let pass = purge_to_end(&store, &cfg, cfg.pause, cfg.max_duty, &mut stop, |r| {
            for (k, c) in &r.counts {
                m.retention.add(&[k.as_str()], c.rows);
            }
        })
        .await;
        match pass {
            Ok(r) if r.rows() > 0 => tracing::info!(
                raw_payloads = rows(&r, PurgeKind::RawPayloads),
                raw_payload_bytes = r.get(PurgeKind::RawPayloads).bytes,
                rejected_payloads = rows(&r, PurgeKind::RejectedPayloads),
                delivered = rows(&r, PurgeKind::Delivered),
                dead_letters = rows(&r, PurgeKind::DeadLetters),
                audit = rows(&r, PurgeKind::Audit),
                ms = started.elapsed().as_millis() as u64,
                "retention purged"
            ),
            Ok(_) => tracing::debug!("retention: nothing to purge"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; trying again at the next"),
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_long_batch_lengthens_the_pause_to_keep_the_duty() {
        use super::pause_after;
        use std::time::Duration as D;
        let ms = D::from_millis;
        // Short batches: the configured pause.
        assert_eq!(pause_after(ms(5), ms(100), 0.1), ms(100));
        // A 70 ms batch at 10 %: 630 ms idle, so 70 of every 700 ms are spent purging.
        assert_eq!(pause_after(ms(70), ms(100), 0.1), ms(630));
        assert_eq!(pause_after(ms(70), ms(100), 0.5), ms(100));
        assert_eq!(pause_after(ms(300), ms(100), 0.5), ms(300));
        // 1: no bound (the CLI's maintenance purge), the pause alone.
        assert_eq!(pause_after(ms(300), D::ZERO, 1.0), D::ZERO);
    }

    #[test]
    fn defaults_overrides_and_forever() {
        let c: RetentionConfig = toml::from_str(
            "raw_payloads = \"7d\"\naudit = \"365d\"\ndelivered = \"forever\"\n[sources.edi]\nraw_payloads = \"forever\"\n[sources.carrier]\nrejected_payloads = \"1d\"\n",
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let p = c.plan(now, false);
        assert_eq!(p.payloads.raw_payloads, Some(now - time::Duration::days(7)));
        assert_eq!(
            p.payloads.rejected_payloads,
            Some(now - time::Duration::days(30))
        );
        assert_eq!(p.delivered, None);
        assert_eq!(p.dead_letters, Some(now - time::Duration::days(90)));
        assert_eq!(p.audit, Some(now - time::Duration::days(365)));
        assert_eq!(p.cutoffs_of("edi").raw_payloads, None);
        assert_eq!(
            p.cutoffs_of("carrier").rejected_payloads,
            Some(now - time::Duration::days(1))
        );
        assert_eq!(
            p.cutoffs_of("carrier").raw_payloads,
            p.payloads.raw_payloads
        );
        assert_eq!(p.batch, 1000);
        let d = RetentionConfig::default().plan(now, true);
        assert_eq!(d.audit, None, "the audit log is kept by default");
        assert!(toml::from_str::<RetentionConfig>("raw_payloads = \"soon\"").is_err());
    }
}
