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

/// `[sources.<name>]` with `type = "nats"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceConfig {
    /// Server URLs (`nats://host:4222`, `tls://…`), separated by commas.
    pub url: String,
    /// The JetStream stream to read (it must exist).
    pub stream: String,
    /// Durable pull consumer, created when missing (default `waybill-<source name>`).
    #[serde(default)]
    pub consumer: Option<String>,
    /// Only messages on these subjects (a new consumer's filter; default: the whole
    /// stream).
    #[serde(default)]
    pub filter_subject: Option<String>,
    /// jq program for messages that are not CloudEvents (any JSON); without it every
    /// message must be a CloudEvent (structured or binary mode) or an event draft.
    #[serde(default)]
    pub mapping: Option<String>,
    /// Token authentication, by reference.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// User for user/password authentication.
    #[serde(default)]
    pub user: Option<String>,
    /// Password, by reference.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// Limit for connecting and for acknowledgements (default 5 s).
    #[serde(default = "default_timeout", deserialize_with = "duration::de")]
    pub timeout: Duration,
    /// Messages being stored at once (default 64): the store commits them together.
    #[serde(default = "default_in_flight")]
    pub in_flight: usize,
}

fn default_in_flight() -> usize {
    64
}
