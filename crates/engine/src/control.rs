//! Operator controls and live health, shared by the API and the dispatchers: which sinks
//! are paused, each sink's and source's last success and failure, a five-minute error
//! rate, and a thirty-minute activity series for the console's charts.
//!
//! Place in the flow: beside the metrics. The store keeps what must survive a restart
//! (a paused sink stays paused, see `Store::set_sink_paused`); this keeps what the running
//! process saw, cheap to update on the hot path (one short lock per completed delivery).
//! Never does: decide anything itself. A paused sink is held by its dispatcher, which
//! watches [`Controls::paused`].

use crate::partner::Outbound;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio::sync::watch;

/// Width of one activity sample.
pub const SAMPLE_SECONDS: u64 = 10;
/// Samples kept: thirty minutes.
pub const SAMPLES: usize = 180;
/// Minutes the error rate looks back over.
const RATE_MINUTES: usize = 5;

/// One activity sample: what happened in [`SAMPLE_SECONDS`] ending at `at`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Sample {
    /// End of the sample.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Payloads accepted.
    pub ingested: u64,
    /// Events delivered.
    pub delivered: u64,
    /// Failed delivery attempts.
    pub failed: u64,
}

/// What this process saw of one sink.
#[derive(Debug, Clone, Default)]
pub struct SinkLive {
    /// Connector type (`http`, `nats`, `odoo`, …).
    pub kind: String,
    /// Last delivery that succeeded.
    pub last_success_at: Option<OffsetDateTime>,
    /// Last failed attempt.
    pub last_failure_at: Option<OffsetDateTime>,
    /// Its error.
    pub last_error: Option<String>,
    /// (minute since the epoch, delivered, failed) for the last minutes.
    minutes: VecDeque<(i64, u64, u64)>,
}

impl SinkLive {
    /// Delivered and failed attempts in the last five minutes.
    pub fn recent(&self, now: OffsetDateTime) -> (u64, u64) {
        let floor = minute(now) - RATE_MINUTES as i64 + 1;
        self.minutes
            .iter()
            .filter(|(m, _, _)| *m >= floor)
            .fold((0, 0), |(d, f), (_, d2, f2)| (d + d2, f + f2))
    }

    fn bump(&mut self, now: OffsetDateTime, delivered: u64, failed: u64) {
        let m = minute(now);
        match self.minutes.back_mut() {
            Some(last) if last.0 == m => {
                last.1 += delivered;
                last.2 += failed;
            }
            _ => self.minutes.push_back((m, delivered, failed)),
        }
        while self.minutes.len() > RATE_MINUTES {
            self.minutes.pop_front();
        }
    }
}

/// What this process saw of one source.
#[derive(Debug, Clone, Default)]
pub struct SourceLive {
    /// Connector type (`jq`, `x12`, `odoo`, …).
    pub kind: String,
    /// Last accepted (or duplicate) payload.
    pub last_accepted_at: Option<OffsetDateTime>,
    /// Last rejected payload.
    pub last_rejected_at: Option<OffsetDateTime>,
}

/// Applies `f` to `name`'s entry, made when missing: the hot path (every ingest, every
/// delivery) finds an existing one without allocating its key.
fn with_entry<T: Default>(m: &mut BTreeMap<String, T>, name: &str, f: impl FnOnce(&mut T)) {
    match m.get_mut(name) {
        Some(v) => f(v),
        None => f(m.entry(name.to_owned()).or_default()),
    }
}

fn minute(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(60)
}

/// Operator controls and live health.
pub struct Controls {
    paused: watch::Sender<Arc<BTreeSet<String>>>,
    sinks: Mutex<BTreeMap<String, SinkLive>>,
    sources: Mutex<BTreeMap<String, SourceLive>>,
    series: Mutex<VecDeque<Sample>>,
    outbounds: Mutex<BTreeMap<String, Arc<dyn Outbound>>>,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            paused: watch::Sender::new(Arc::new(BTreeSet::new())),
            sinks: Mutex::default(),
            sources: Mutex::default(),
            series: Mutex::default(),
            outbounds: Mutex::default(),
        }
    }
}

impl Controls {
    /// The paused sinks, as they change (dispatchers watch it).
    pub fn paused(&self) -> watch::Receiver<Arc<BTreeSet<String>>> {
        self.paused.subscribe()
    }

    /// Whether `sink` is paused now.
    pub fn is_paused(&self, sink: &str) -> bool {
        self.paused.borrow().contains(sink)
    }

    /// Pauses or resumes one sink in this process.
    pub fn set_paused(&self, sink: &str, paused: bool) {
        self.paused.send_if_modified(|set| {
            if set.contains(sink) == paused {
                return false;
            }
            let mut next = (**set).clone();
            if paused {
                next.insert(sink.to_owned());
            } else {
                next.remove(sink);
            }
            *set = Arc::new(next);
            true
        });
    }

    /// Replaces the paused set (from the store: another instance may have changed it).
    pub fn set_all_paused(&self, sinks: BTreeSet<String>) {
        self.paused.send_if_modified(|set| {
            if **set == sinks {
                return false;
            }
            *set = Arc::new(sinks);
            true
        });
    }

    /// Registers a running sink: its type and its connector (for test deliveries).
    pub fn register_sink(&self, name: &str, kind: &str, outbound: Arc<dyn Outbound>) {
        if let Ok(mut m) = self.sinks.lock() {
            m.entry(name.to_owned()).or_default().kind = kind.to_owned();
        }
        if let Ok(mut m) = self.outbounds.lock() {
            m.insert(name.to_owned(), outbound);
        }
    }

    /// Registers a configured source and its type.
    pub fn register_source(&self, name: &str, kind: &str) {
        if let Ok(mut m) = self.sources.lock() {
            m.entry(name.to_owned()).or_default().kind = kind.to_owned();
        }
    }

    /// A registered sink's connector.
    pub fn outbound(&self, sink: &str) -> Option<Arc<dyn Outbound>> {
        self.outbounds.lock().ok()?.get(sink).cloned()
    }

    /// Records delivered events of a sink.
    pub fn delivered(&self, sink: &str, n: u64) {
        if n == 0 {
            return;
        }
        let now = OffsetDateTime::now_utc();
        if let Ok(mut m) = self.sinks.lock() {
            with_entry(&mut m, sink, |s| {
                s.last_success_at = Some(now);
                s.bump(now, n, 0);
            });
        }
    }

    /// Records a failed attempt of a sink.
    pub fn failed(&self, sink: &str, error: &str) {
        let now = OffsetDateTime::now_utc();
        if let Ok(mut m) = self.sinks.lock() {
            with_entry(&mut m, sink, |s| {
                s.last_failure_at = Some(now);
                s.last_error = Some(error.chars().take(500).collect());
                s.bump(now, 0, 1);
            });
        }
    }

    /// Records an ingest outcome of a source.
    pub fn ingested(&self, source: &str, accepted: bool) {
        let now = OffsetDateTime::now_utc();
        if let Ok(mut m) = self.sources.lock() {
            with_entry(&mut m, source, |s| {
                if accepted {
                    s.last_accepted_at = Some(now);
                } else {
                    s.last_rejected_at = Some(now);
                }
            });
        }
    }

    /// Every sink seen, by name.
    pub fn sinks(&self) -> BTreeMap<String, SinkLive> {
        self.sinks.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Every source seen, by name.
    pub fn sources(&self) -> BTreeMap<String, SourceLive> {
        self.sources.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Adds one activity sample (the oldest beyond [`SAMPLES`] goes).
    pub fn push_sample(&self, s: Sample) {
        if let Ok(mut q) = self.series.lock() {
            q.push_back(s);
            while q.len() > SAMPLES {
                q.pop_front();
            }
        }
    }

    /// The activity series, oldest first.
    pub fn series(&self) -> Vec<Sample> {
        self.series
            .lock()
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Samples the metrics' counters every [`SAMPLE_SECONDS`] into the activity series until
/// `shutdown`.
pub async fn run_sampler(metrics: Arc<crate::Metrics>, mut shutdown: watch::Receiver<bool>) {
    let totals = |m: &crate::Metrics| {
        (
            m.ingests.sum(|l| l.get(1).is_some_and(|o| o == "accepted")),
            m.deliveries
                .sum(|l| l.get(1).is_some_and(|o| o == "delivered")),
            m.deliveries
                .sum(|l| l.get(1).is_some_and(|o| o != "delivered")),
        )
    };
    let mut last = totals(&metrics);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(SAMPLE_SECONDS));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = totals(&metrics);
        metrics.controls.push_sample(Sample {
            at: OffsetDateTime::now_utc(),
            ingested: now.0.saturating_sub(last.0),
            delivered: now.1.saturating_sub(last.1),
            failed: now.2.saturating_sub(last.2),
        });
        last = now;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pausing_twice_changes_once_and_resume_clears() {
        let c = Controls::default();
        let mut rx = c.paused();
        rx.borrow_and_update();
        c.set_paused("erp", true);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        c.set_paused("erp", true);
        assert!(!rx.has_changed().unwrap());
        assert!(c.is_paused("erp"));
        c.set_paused("erp", false);
        assert!(!c.is_paused("erp"));
    }

    #[test]
    fn the_error_rate_counts_the_last_five_minutes() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut s = SinkLive::default();
        s.bump(t0, 3, 1);
        s.bump(t0 + time::Duration::minutes(2), 1, 1);
        assert_eq!(s.recent(t0 + time::Duration::minutes(2)), (4, 2));
        // Six minutes later the first minute has left the window.
        s.bump(t0 + time::Duration::minutes(6), 0, 1);
        assert_eq!(s.recent(t0 + time::Duration::minutes(6)), (1, 2));
    }

    #[test]
    fn the_series_keeps_thirty_minutes() {
        let c = Controls::default();
        for i in 0..(SAMPLES + 5) {
            c.push_sample(Sample {
                at: OffsetDateTime::UNIX_EPOCH,
                ingested: i as u64,
                delivered: 0,
                failed: 0,
            });
        }
        let s = c.series();
        assert_eq!(s.len(), SAMPLES);
        assert_eq!(s[0].ingested, 5);
    }
}
