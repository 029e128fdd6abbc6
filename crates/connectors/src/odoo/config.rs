//! Configuration of an Odoo connection.

use serde::Deserialize;
use std::time::Duration;
use waybill_engine::duration;
use waybill_engine::secret::SecretRef;

/// How to reach one Odoo database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdooConfig {
    /// Base URL, e.g. `https://erp.example.com`.
    pub url: String,
    /// Database name.
    pub database: String,
    /// Login of the API user (JSON-RPC authenticates with login + API key).
    pub login: String,
    /// The user's API key (Preferences → Account Security → New API Key), by reference.
    pub api_key: SecretRef,
    /// `jsonrpc`, `json2`, or `auto` (default: `json2` when `common.version` says 19+).
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Per-request timeout (default 30 s).
    #[serde(default = "default_timeout", deserialize_with = "duration::de")]
    pub timeout: Duration,
    /// Requests in flight at once (default 4; one Odoo worker answered ~40 writes/s).
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Most requests started per second (default 20; 0 = no limit). Odoo is the slow
    /// party: one Odoo 18 worker answered ~40 writes/s.
    #[serde(default = "default_rate")]
    pub max_requests_per_second: f64,
}

fn default_protocol() -> String {
    "auto".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_concurrency() -> usize {
    4
}
fn default_rate() -> f64 {
    20.0
}
