//! When to try a failed delivery again: one pure function of the attempt number, the
//! failure kind and any `Retry-After`.

use serde::Deserialize;
use std::time::Duration;
use waybill_model::FailureKind;

/// How a scheduled delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// Uniform in (0, delay]: "full jitter"; spreads retries of many events best.
    Full,
    /// Uniform in delay × [1 − f, 1 + f] (Svix uses 0.2).
    Proportional(f64),
    /// Exactly the delay (tests, debugging).
    None,
}

/// The retry schedule of a sink.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay before retry n (1-based) is `schedule[n - 1]`; its length is the retry budget.
    pub schedule: Vec<Duration>,
    /// Randomisation.
    pub jitter: Jitter,
    /// Upper bound for a partner's `Retry-After`.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Svix's schedule (ARCHITECTURE.md): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    fn default() -> Self {
        RetryPolicy {
            schedule: [5, 300, 1800, 7200, 18000, 36000, 36000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: Jitter::Full,
            max_retry_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this delay.
    RetryAfter(Duration),
    /// Stop: dead-letter it.
    GiveUp,
}

impl RetryPolicy {
    /// Decides after attempt number `attempts` (1-based) failed. `unit` is a uniform random
    /// number in [0, 1) supplied by the caller so that this stays a pure function.
    pub fn decide(
        &self,
        attempts: u32,
        kind: FailureKind,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Decision {
        if !kind.should_retry() {
            return Decision::GiveUp;
        }
        let Some(base) = self.schedule.get(attempts.saturating_sub(1) as usize) else {
            return Decision::GiveUp;
        };
        let unit = unit.clamp(0.0, 1.0);
        let delay = match self.jitter {
            // (0, base]: never zero, so a hot failure loop is impossible.
            Jitter::Full => base.mul_f64(1.0 - unit).max(Duration::from_millis(1)),
            Jitter::Proportional(f) => base.mul_f64((1.0 - f + 2.0 * f * unit).max(0.0)),
            Jitter::None => *base,
        };
        let delay = match retry_after {
            Some(ra) => delay.max(ra.min(self.max_retry_after)),
            None => delay,
        };
        Decision::RetryAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(j: Jitter) -> RetryPolicy {
        RetryPolicy {
            schedule: vec![Duration::from_secs(5), Duration::from_secs(300)],
            jitter: j,
            max_retry_after: Duration::from_secs(3600),
        }
    }

    #[test]
    fn budget_is_the_schedule_length() {
        let p = policy(Jitter::None);
        assert_eq!(
            p.decide(1, FailureKind::Retryable, None, 0.5),
            Decision::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(
            p.decide(2, FailureKind::Retryable, None, 0.5),
            Decision::RetryAfter(Duration::from_secs(300))
        );
        assert_eq!(
            p.decide(3, FailureKind::Retryable, None, 0.5),
            Decision::GiveUp
        );
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        let p = policy(Jitter::None);
        assert_eq!(
            p.decide(1, FailureKind::Permanent, None, 0.0),
            Decision::GiveUp
        );
        assert_eq!(
            p.decide(1, FailureKind::InvalidInput, None, 0.0),
            Decision::GiveUp
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = policy(Jitter::None);
        let d = p.decide(
            1,
            FailureKind::Retryable,
            Some(Duration::from_secs(60)),
            0.0,
        );
        assert_eq!(d, Decision::RetryAfter(Duration::from_secs(60)));
        let d = p.decide(
            1,
            FailureKind::Retryable,
            Some(Duration::from_secs(99_999)),
            0.0,
        );
        assert_eq!(d, Decision::RetryAfter(Duration::from_secs(3600)));
    }

    proptest! {
        #[test]
        fn full_jitter_stays_within_the_step(unit in 0.0f64..1.0, n in 1u32..3) {
            let p = policy(Jitter::Full);
            let Decision::RetryAfter(d) = p.decide(n, FailureKind::Retryable, None, unit) else {
                return Err(TestCaseError::fail("gave up inside the budget"));
            };
            prop_assert!(d > Duration::ZERO && d <= p.schedule[n as usize - 1]);
        }

        #[test]
        fn proportional_jitter_stays_within_bounds(unit in 0.0f64..1.0) {
            let p = policy(Jitter::Proportional(0.2));
            let Decision::RetryAfter(d) = p.decide(1, FailureKind::Retryable, None, unit) else {
                return Err(TestCaseError::fail("gave up"));
            };
            prop_assert!(d >= Duration::from_secs(4) && d <= Duration::from_secs(6));
        }
    }
}
