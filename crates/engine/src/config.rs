//! The engine's configuration sections: delivery defaults and subscriptions.

use crate::circuit::CircuitConfig;
use crate::duration;
use crate::retry::{Jitter, RetryPolicy};
use serde::Deserialize;
use std::time::Duration;

/// `[delivery]`: defaults for every sink (a sink may override them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Delay before each retry; its length is the retry budget.
    #[serde(default = "default_schedule", deserialize_with = "duration::de_vec")]
    pub retry_schedule: Vec<Duration>,
    /// `full`, `none`, or `{ proportional = 0.2 }`.
    #[serde(default = "default_jitter")]
    pub jitter: Jitter,
    /// Longest `Retry-After` honoured.
    #[serde(default = "default_max_retry_after", deserialize_with = "duration::de")]
    pub max_retry_after: Duration,
    /// Consecutive failures that open a sink's circuit.
    #[serde(default = "default_threshold")]
    pub circuit_failure_threshold: u32,
    /// How long an open circuit waits before a probe.
    #[serde(default = "default_open_for", deserialize_with = "duration::de")]
    pub circuit_open_for: Duration,
    /// Deliveries in flight per sink.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long a 410 Gone pauses a sink.
    #[serde(default = "default_pause", deserialize_with = "duration::de")]
    pub pause_on_gone: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry_schedule: default_schedule(),
            jitter: default_jitter(),
            max_retry_after: default_max_retry_after(),
            circuit_failure_threshold: default_threshold(),
            circuit_open_for: default_open_for(),
            concurrency: default_concurrency(),
            pause_on_gone: default_pause(),
        }
    }
}

fn default_schedule() -> Vec<Duration> {
    RetryPolicy::default().schedule
}
fn default_jitter() -> Jitter {
    Jitter::Full
}
fn default_max_retry_after() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_threshold() -> u32 {
    5
}
fn default_open_for() -> Duration {
    Duration::from_secs(30)
}
fn default_concurrency() -> usize {
    32
}
fn default_pause() -> Duration {
    Duration::from_secs(3600)
}

impl DeliveryConfig {
    /// The retry policy it describes.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            schedule: self.retry_schedule.clone(),
            jitter: self.jitter,
            max_retry_after: self.max_retry_after,
        }
    }

    /// The circuit breaker it describes.
    pub fn circuit(&self) -> CircuitConfig {
        CircuitConfig {
            failure_threshold: self.circuit_failure_threshold.max(1),
            open_for: self.circuit_open_for,
        }
    }
}

/// `[[subscriptions]]`: which events go to which sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Unique name.
    pub name: String,
    /// Sink name (a key of `[sinks]`).
    pub sink: String,
    /// Event types, exact or `prefix.*`; empty = all.
    #[serde(default)]
    pub types: Vec<String>,
    /// Source names; empty = all.
    #[serde(default)]
    pub sources: Vec<String>,
}
