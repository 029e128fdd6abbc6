//! LIMITS: token buckets for inbound rate limits per source and outbound rate limits per
//! sink, and the global cap on ingest requests in flight.
//!
//! Place in the flow: the first thing ingest does, before a byte of the body is read or
//! anything is stored ([`crate::Hub::admit`]); and, for a sink with a request rate, the
//! last thing the dispatcher checks before it sends (it waits for a token on its timer,
//! never spinning, and a lane's order is kept because only its head is ever sent).
//! Never does: store or count a throttled request as a payload (it is counted in
//! `waybill_ingest_throttled_total` only), sleep on the ingest path.
//!
//! A bucket holds up to `burst` tokens and gains `per_second` of them a second; a request
//! takes one. Time is passed in (tokio's monotonic [`Instant`]), so the arithmetic is
//! tested without waiting. Each source's bucket sits behind its own short-held mutex; the
//! in-flight cap is one atomic counter.

use crate::codes;
use crate::config::ConfigError;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use waybill_model::Code;

/// A rate limit as configured: `{ per_second = 100, burst = 200 }`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second (> 0; fractions allowed: `0.5` is one every 2 s).
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell (≥ 1); default: one second's worth,
    /// `per_second` rounded up.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// A limit of `per_second` with a burst of `burst`.
    pub fn new(per_second: f64, burst: u32) -> Self {
        RateLimit {
            per_second,
            burst: Some(burst),
        }
    }

    /// The burst in effect: the configured one, else `per_second` rounded up (at least 1).
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or_else(|| {
            let b = self.per_second.ceil();
            if b >= f64::from(u32::MAX) {
                u32::MAX
            } else if b >= 1.0 {
                b as u32
            } else {
                1
            }
        })
    }

    /// Checks the values; errors name the key (`per_second`, `burst`).
    pub fn check(&self) -> Result<(), ConfigError> {
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(ConfigError::new("per_second", "must be a number > 0"));
        }
        if self.burst == Some(0) {
            return Err(ConfigError::new("burst", "must be at least 1"));
        }
        Ok(())
    }
}

/// A token bucket. Not synchronised: the dispatcher owns its sink's; ingest keeps each
/// source's behind a mutex.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        let burst = f64::from(limit.burst().max(1));
        TokenBucket {
            per_second: limit.per_second.max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Adds the tokens earned since the last look (never above the burst; a `now` earlier
    /// than the last look adds none).
    fn refill(&mut self, now: Instant) {
        if now > self.at {
            let earned = now.duration_since(self.at).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + earned).min(self.burst);
            self.at = now;
        }
    }

    /// Takes a token, or says how long until one is there (nothing is taken then).
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.shortfall())
        }
    }

    /// How long from `now` until a token is there (zero when one is); takes nothing.
    pub fn wait(&self, now: Instant) -> Duration {
        let mut b = self.clone();
        b.refill(now);
        if b.tokens >= 1.0 {
            Duration::ZERO
        } else {
            b.shortfall()
        }
    }

    /// Returns a token taken for a request that was not made after all.
    pub fn give_back(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.burst);
    }

    /// Time to earn the missing part of one token.
    fn shortfall(&self) -> Duration {
        let secs = (1.0 - self.tokens).max(0.0) / self.per_second;
        // At least a millisecond, so a caller sleeping on it makes progress.
        Duration::try_from_secs_f64(secs)
            .unwrap_or(Duration::from_secs(3600))
            .max(Duration::from_millis(1))
    }
}

/// The whole seconds a client should wait, for a `Retry-After` header: the wait rounded
/// up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    s.max(1)
}

/// `[limits]`: what ingest admits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Ingest requests (`/v1/ingest/…`) handled at once, body reading and commit
    /// included; one more is answered 429 at once (default 1024; 0: no cap).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// The rate limit of every HTTP source without its own `rate_limit` (default: none).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// One bucket shared by every source name that is not configured (each such request
    /// would store a rejected inbox record); default 10/s, burst 50.
    #[serde(default = "default_unknown")]
    pub unknown_sources: RateLimit,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_in_flight: default_in_flight(),
            rate_limit: None,
            unknown_sources: default_unknown(),
        }
    }
}

fn default_in_flight() -> usize {
    1024
}
fn default_unknown() -> RateLimit {
    RateLimit::new(10.0, 50)
}

impl LimitsConfig {
    /// Checks the values; errors name the key (`rate_limit.per_second`).
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        if let Some(Err(e)) = self.rate_limit.map(|r| r.check()) {
            errs.push(e.under("rate_limit"));
        }
        if let Err(e) = self.unknown_sources.check() {
            errs.push(e.under("unknown_sources"));
        }
        errs
    }
}

/// Why a request was not admitted: answered 429 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    /// [`codes::RATE_LIMITED`] or [`codes::OVERLOADED`].
    pub code: Code,
    /// Seconds to wait before retrying (the `Retry-After` value, at least 1).
    pub retry_after: u64,
    /// What to tell the client.
    pub detail: String,
}

/// A place among the ingest requests in flight, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    in_flight: Option<Arc<AtomicUsize>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(n) = &self.in_flight {
            n.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The ingest limits in force: a bucket per limited source, one shared by unknown source
/// names, and the in-flight counter.
#[derive(Debug)]
pub struct IngestLimits {
    sources: HashMap<String, Mutex<TokenBucket>>,
    /// Buckets for the unknown source names: one, shared.
    unknown: Option<Mutex<TokenBucket>>,
    max_in_flight: usize,
    in_flight: Arc<AtomicUsize>,
}

impl Default for IngestLimits {
    /// No limits at all.
    fn default() -> Self {
        IngestLimits::unlimited()
    }
}

/// How a source name is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// A configured source.
    Yes,
    /// Not a configured source: the shared bucket applies.
    No,
}

impl IngestLimits {
    /// Admits everything.
    pub fn unlimited() -> Self {
        IngestLimits {
            sources: HashMap::new(),
            unknown: None,
            max_in_flight: 0,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Limits from `[limits]` and each source's own `rate_limit` (`None`: the
    /// `[limits].rate_limit` default, if any). Buckets start full.
    pub fn new<'a>(
        cfg: &LimitsConfig,
        sources: impl IntoIterator<Item = (&'a str, Option<RateLimit>)>,
    ) -> Self {
        let now = Instant::now();
        let sources = sources
            .into_iter()
            .filter_map(|(name, own)| {
                own.or(cfg.rate_limit)
                    .map(|l| (name.to_owned(), Mutex::new(TokenBucket::new(l, now))))
            })
            .collect();
        IngestLimits {
            sources,
            unknown: Some(Mutex::new(TokenBucket::new(cfg.unknown_sources, now))),
            max_in_flight: cfg.max_in_flight,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Admits one request for `source` at `now`, or says why not. The in-flight place is
    /// taken first, so a request refused for it spends no token.
    pub fn admit_at(&self, source: &str, known: Known, now: Instant) -> Result<Permit, Throttled> {
        let permit = self.enter()?;
        let bucket = match known {
            Known::Yes => self.sources.get(source),
            Known::No => self.unknown.as_ref(),
        };
        if let Some(bucket) = bucket {
            let taken = match bucket.lock() {
                Ok(mut b) => b.try_take(now),
                Err(p) => p.into_inner().try_take(now),
            };
            if let Err(wait) = taken {
                let retry_after = retry_after_secs(wait);
                let whose = match known {
                    Known::Yes => format!("source `{source}`"),
                    Known::No => "unknown sources".to_owned(),
                };
                return Err(Throttled {
                    code: codes::RATE_LIMITED,
                    retry_after,
                    detail: format!("{whose} is over its rate limit; retry in {retry_after} s"),
                });
            }
        }
        Ok(permit)
    }

    /// Takes a place among the requests in flight.
    fn enter(&self) -> Result<Permit, Throttled> {
        if self.max_in_flight == 0 {
            return Ok(Permit { in_flight: None });
        }
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        // The permit gives the place back even when it is refused.
        let permit = Permit {
            in_flight: Some(self.in_flight.clone()),
        };
        if before >= self.max_in_flight {
            return Err(Throttled {
                code: codes::OVERLOADED,
                retry_after: 1,
                detail: format!(
                    "the hub is handling {} ingest requests already; retry in 1 s",
                    self.max_in_flight
                ),
            });
        }
        Ok(permit)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_full_bucket_gives_its_burst_then_refuses_with_the_wait_for_one_token() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RateLimit::new(10.0, 5), t0);
        for _ in 0..5 {
            b.try_take(t0).unwrap();
        }
        // Empty: one token takes 1/10 s.
        assert_eq!(b.try_take(t0), Err(ms(100)));
        assert_eq!(b.wait(t0), ms(100));
        // 40 ms later, 0.4 of a token is there: 60 ms to go.
        let wait = b.try_take(t0 + ms(40)).unwrap_err();
        assert!((59..=61).contains(&wait.as_millis()), "{wait:?}");
        b.try_take(t0 + ms(100)).unwrap();
        assert!(b.try_take(t0 + ms(100)).is_err());
    }

    #[test]
    fn refill_stops_at_the_burst_and_time_going_back_adds_nothing() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RateLimit::new(100.0, 3), t0);
        for _ in 0..3 {
            b.try_take(t0).unwrap();
        }
        // An hour idle earns no more than the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            b.try_take(later).unwrap();
        }
        assert!(b.try_take(later).is_err());
        // A stale `now` (another thread read the clock earlier) earns nothing.
        assert!(b.try_take(t0).is_err());
        b.give_back();
        b.try_take(later).unwrap();
    }

    #[test]
    fn admitted_over_an_interval_is_at_most_burst_plus_rate_times_time() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RateLimit::new(20.0, 20), t0);
        // 10 tries a millisecond for 2 s: 20 + 20/s × 2 s.
        let mut ok = 0;
        for step in 0..2000u64 {
            for _ in 0..10 {
                ok += u32::from(b.try_take(t0 + ms(step)).is_ok());
            }
        }
        assert!((59..=60).contains(&ok), "{ok}");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(ms(1)), 1);
        assert_eq!(retry_after_secs(ms(1000)), 1);
        assert_eq!(retry_after_secs(ms(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
        // A slow bucket: 1 every 4 s.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RateLimit::new(0.25, 1), t0);
        b.try_take(t0).unwrap();
        assert_eq!(retry_after_secs(b.try_take(t0 + ms(500)).unwrap_err()), 4);
    }

    #[test]
    fn the_default_burst_is_one_seconds_worth_and_bad_values_are_refused() {
        let l = |per_second| RateLimit {
            per_second,
            burst: None,
        };
        assert_eq!(l(100.0).burst(), 100);
        assert_eq!(l(2.5).burst(), 3);
        assert_eq!(l(0.2).burst(), 1);
        assert_eq!(RateLimit::new(5.0, 7).burst(), 7);
        assert!(l(0.0).check().is_err());
        assert!(l(f64::NAN).check().is_err());
        assert!(l(-1.0).check().is_err());
        assert_eq!(RateLimit::new(5.0, 0).check().unwrap_err().path, "burst");
        let cfg: LimitsConfig =
            serde_json::from_str(r#"{"rate_limit": {"per_second": 0}}"#).unwrap();
        assert_eq!(cfg.check()[0].path, "rate_limit.per_second");
    }

    #[test]
    fn each_source_has_its_own_bucket_and_unknown_names_share_one() {
        let cfg = LimitsConfig {
            max_in_flight: 0,
            rate_limit: Some(RateLimit::new(1.0, 1)),
            unknown_sources: RateLimit::new(1.0, 2),
        };
        let limits = IngestLimits::new(&cfg, [("a", Some(RateLimit::new(1.0, 3))), ("b", None)]);
        let now = Instant::now();
        for _ in 0..3 {
            limits.admit_at("a", Known::Yes, now).unwrap();
        }
        let t = limits.admit_at("a", Known::Yes, now).unwrap_err();
        assert_eq!((t.code, t.retry_after), (codes::RATE_LIMITED, 1));
        // `b` has the default; `a` being empty does not touch it.
        limits.admit_at("b", Known::Yes, now).unwrap();
        assert!(limits.admit_at("b", Known::Yes, now).is_err());
        // Two unknown names, one bucket of 2.
        limits.admit_at("x", Known::No, now).unwrap();
        limits.admit_at("y", Known::No, now).unwrap();
        let t = limits.admit_at("z", Known::No, now).unwrap_err();
        assert!(t.detail.contains("unknown sources"), "{}", t.detail);
        // No default, no own limit: unlimited.
        let open = IngestLimits::new(&LimitsConfig::default(), [("c", None)]);
        for _ in 0..10_000 {
            drop(open.admit_at("c", Known::Yes, now).unwrap());
        }
    }

    #[test]
    fn the_in_flight_cap_refuses_past_the_maximum_and_frees_on_drop() {
        let cfg = LimitsConfig {
            max_in_flight: 2,
            ..LimitsConfig::default()
        };
        let limits = IngestLimits::new(&cfg, [("a", None)]);
        let now = Instant::now();
        let p1 = limits.admit_at("a", Known::Yes, now).unwrap();
        let _p2 = limits.admit_at("a", Known::Yes, now).unwrap();
        let t = limits.admit_at("a", Known::Yes, now).unwrap_err();
        assert_eq!((t.code, t.retry_after), (codes::OVERLOADED, 1));
        assert_eq!(limits.in_flight(), 2, "a refused request holds no place");
        drop(p1);
        assert_eq!(limits.in_flight(), 1);
        limits.admit_at("a", Known::Yes, now).unwrap();
        // A request refused by the cap spends no token of its source's bucket.
        let cfg = LimitsConfig {
            max_in_flight: 1,
            rate_limit: Some(RateLimit::new(1.0, 2)),
            ..LimitsConfig::default()
        };
        let limits = IngestLimits::new(&cfg, [("a", None)]);
        let p = limits.admit_at("a", Known::Yes, now).unwrap();
        assert_eq!(
            limits.admit_at("a", Known::Yes, now).unwrap_err().code,
            codes::OVERLOADED
        );
        drop(p);
        limits.admit_at("a", Known::Yes, now).unwrap();
    }
}
