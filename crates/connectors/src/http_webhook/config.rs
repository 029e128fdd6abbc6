//! Configuration of an `http_webhook` sink.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use waybill_engine::duration;
use waybill_engine::secret::SecretRef;

/// `[sinks.<name>]` with `type = "http_webhook"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpWebhookConfig {
    /// Endpoint URL (http or https).
    pub url: String,
    /// Standard Webhooks signing secret (`whsec_…`), by reference; unsigned when absent.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// Request timeout (default 15 s; the spec suggests 15–30 s).
    #[serde(default = "default_timeout", deserialize_with = "duration::de")]
    pub timeout: Duration,
    /// Deliveries in flight (default: `[delivery].concurrency`).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Most events of one shipment in one request, as a CloudEvents batch
    /// (`application/cloudevents-batch+json`: a JSON array). 1 (the default): one event
    /// per request, structured mode. Only for receivers that ask for batches.
    #[serde(default = "one")]
    pub batch: usize,
    /// Most requests started per second (a batch is one request; default: no limit).
    /// Per instance: with several instances on one store, each may send this many.
    #[serde(default)]
    pub max_requests_per_second: Option<f64>,
    /// Requests that may start at once after a quiet spell, within
    /// `max_requests_per_second` (default 1: evenly spaced).
    #[serde(default)]
    pub burst: Option<u32>,
}

fn one() -> usize {
    1
}

/// Largest `batch`.
pub const MAX_BATCH: usize = 1000;

fn default_timeout() -> Duration {
    Duration::from_secs(15)
}
