//! Configuration of a `nats` sink.

use serde::Deserialize;
use std::time::Duration;
use waybill_engine::duration;
use waybill_engine::secret::SecretRef;

/// `[sinks.<name>]` with `type = "nats"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    /// Server URLs (`nats://host:4222`, `tls://…`), separated by commas.
    pub url: String,
    /// First tokens of every subject (default `waybill`).
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// Token authentication, by reference.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// User for user/password authentication.
    #[serde(default)]
    pub user: Option<String>,
    /// Password, by reference.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// How long to wait for the connection and for the stream's acknowledgement
    /// (default 5 s).
    #[serde(default = "default_timeout", deserialize_with = "duration::de")]
    pub timeout: Duration,
    /// Deliveries in flight (default: `[delivery].concurrency`).
    #[serde(default)]
    pub concurrency: Option<usize>,
}

fn default_prefix() -> String {
    "waybill".into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
