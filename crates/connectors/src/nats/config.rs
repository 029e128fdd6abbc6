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
    /// NKey authentication: the user's seed (`SU…`), by reference.
    #[serde(default)]
    pub nkey: Option<SecretRef>,
    /// JWT authentication: the contents of a `.creds` file, by reference (`file:/…`).
    #[serde(default)]
    pub credentials: Option<SecretRef>,
    /// TLS: PEM file of the CA that signed the servers' certificates (TLS then
    /// required).
    #[serde(default)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// TLS client certificate (PEM), with `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// TLS client key (PEM), with `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<std::path::PathBuf>,
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
    /// NKey authentication: the user's seed (`SU…`), by reference.
    #[serde(default)]
    pub nkey: Option<SecretRef>,
    /// JWT authentication: the contents of a `.creds` file, by reference (`file:/…`).
    #[serde(default)]
    pub credentials: Option<SecretRef>,
    /// TLS: PEM file of the CA that signed the servers' certificates (TLS then
    /// required).
    #[serde(default)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// TLS client certificate (PEM), with `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// TLS client key (PEM), with `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<std::path::PathBuf>,
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

/// The access settings of a `nats` sink or source, borrowed from its configuration.
pub(crate) struct Access<'a> {
    pub url: &'a str,
    pub token: &'a Option<SecretRef>,
    pub user: &'a Option<String>,
    pub password: &'a Option<SecretRef>,
    pub nkey: &'a Option<SecretRef>,
    pub credentials: &'a Option<SecretRef>,
    pub tls_ca: &'a Option<std::path::PathBuf>,
    pub tls_cert: &'a Option<std::path::PathBuf>,
    pub tls_key: &'a Option<std::path::PathBuf>,
    pub timeout: Duration,
}

macro_rules! access {
    ($cfg:expr) => {
        Access {
            url: &$cfg.url,
            token: &$cfg.token,
            user: &$cfg.user,
            password: &$cfg.password,
            nkey: &$cfg.nkey,
            credentials: &$cfg.credentials,
            tls_ca: &$cfg.tls_ca,
            tls_cert: &$cfg.tls_cert,
            tls_key: &$cfg.tls_key,
            timeout: $cfg.timeout,
        }
    };
}

impl NatsSinkConfig {
    /// Its access settings.
    pub(crate) fn access(&self) -> Access<'_> {
        access!(self)
    }
}

impl NatsSourceConfig {
    /// Its access settings.
    pub(crate) fn access(&self) -> Access<'_> {
        access!(self)
    }
}
