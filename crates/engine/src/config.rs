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
    /// Whether its consumer gets the personal values of `confidential` events in clear
    /// (`true`) or masked (`false`); absent: as its sink (`[privacy] personal_data_sinks`).
    #[serde(default)]
    pub personal_data: Option<bool>,
}

/// A configuration error as data: where (the dotted path of the offending key, relative to
/// what was being validated) and what is wrong. Each layer that validates a part adds its
/// own prefix ([`ConfigError::under`]), so `waybill check-config` prints the full path
/// (`sources.edi.local_time_offset: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the key (`auth.secrets[0]`), empty for the part as a whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl std::fmt::Display) -> Self {
        ConfigError {
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// The same error seen from one level up: `prefix.path`.
    pub fn under(self, prefix: &str) -> Self {
        let path = if self.path.is_empty() {
            prefix.to_owned()
        } else if self.path.starts_with('[') {
            format!("{prefix}{}", self.path)
        } else {
            format!("{prefix}.{}", self.path)
        };
        ConfigError { path, ..self }
    }

    /// Every error of `errs` seen from one level up.
    pub fn all_under(errs: Vec<ConfigError>, prefix: &str) -> Vec<ConfigError> {
        errs.into_iter().map(|e| e.under(prefix)).collect()
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[cfg(test)]
mod config_error_tests {
    use super::ConfigError;

    #[test]
    fn a_path_grows_one_level_at_a_time() {
        let e = ConfigError::new("auth.secrets[0]", "not a whsec_ key")
            .under("edi")
            .under("sources");
        assert_eq!(e.path, "sources.edi.auth.secrets[0]");
        assert_eq!(
            e.to_string(),
            "sources.edi.auth.secrets[0]: not a whsec_ key"
        );
        assert_eq!(ConfigError::new("[2]", "x").under("keys").path, "keys[2]");
        assert_eq!(ConfigError::new("", "x").under("sinks").path, "sinks");
    }
}
