//! A circuit breaker per sink: after enough consecutive failures stop sending for a while,
//! then let one probe through; its outcome closes or re-opens the circuit.

use tokio::time::{Duration, Instant};

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

/// Breaker state, also exported as a metric (0 closed, 1 open, 2 half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Sending normally; counts consecutive failures.
    Closed(u32),
    /// Not sending until the instant.
    Open(Instant),
    /// One probe is allowed; `true` while it is in flight.
    HalfOpen(bool),
}

/// The breaker.
#[derive(Debug)]
pub struct Circuit {
    cfg: CircuitConfig,
    state: CircuitState,
}

impl Circuit {
    /// A closed breaker.
    pub fn new(cfg: CircuitConfig) -> Self {
        Circuit {
            cfg,
            state: CircuitState::Closed(0),
        }
    }

    /// Current state.
    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// Whether a request may be sent now; a half-open breaker admits one probe.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match self.state {
            CircuitState::Closed(_) => true,
            CircuitState::Open(until) if now >= until => {
                self.state = CircuitState::HalfOpen(true);
                true
            }
            CircuitState::Open(_) => false,
            CircuitState::HalfOpen(false) => {
                self.state = CircuitState::HalfOpen(true);
                true
            }
            CircuitState::HalfOpen(true) => false,
        }
    }

    /// When an open breaker will admit a probe.
    pub fn reopens_at(&self) -> Option<Instant> {
        match self.state {
            CircuitState::Open(until) => Some(until),
            _ => None,
        }
    }

    /// Opens the circuit for a given time regardless of the failure count (410 Gone).
    pub fn trip(&mut self, now: Instant, for_: Duration) {
        self.state = CircuitState::Open(now + for_);
    }

    /// Records a success.
    pub fn on_success(&mut self) {
        self.state = CircuitState::Closed(0);
    }

    /// Records a failure that counts against the sink's health.
    pub fn on_failure(&mut self, now: Instant) {
        self.state = match self.state {
            CircuitState::Closed(n) if n + 1 >= self.cfg.failure_threshold => {
                CircuitState::Open(now + self.cfg.open_for)
            }
            CircuitState::Closed(n) => CircuitState::Closed(n + 1),
            CircuitState::HalfOpen(_) => CircuitState::Open(now + self.cfg.open_for),
            // Results of requests sent before the circuit opened: keep the current window.
            CircuitState::Open(until) => CircuitState::Open(until),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_probes_once() {
        let mut c = Circuit::new(CircuitConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(30),
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(c.try_acquire(t0));
            c.on_failure(t0);
        }
        assert!(!c.try_acquire(t0 + Duration::from_secs(29)));
        let t1 = t0 + Duration::from_secs(30);
        assert!(c.try_acquire(t1), "probe admitted");
        assert!(!c.try_acquire(t1), "only one probe");
        c.on_failure(t1);
        assert_eq!(c.state(), CircuitState::Open(t1 + Duration::from_secs(30)));
        let t2 = t1 + Duration::from_secs(30);
        assert!(c.try_acquire(t2));
        c.on_success();
        assert!(c.try_acquire(t2) && c.try_acquire(t2), "closed again");
    }
}
