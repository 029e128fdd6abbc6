//! `http_webhook`: delivers canonical events to any HTTPS endpoint.
//!
//! Body: the CloudEvents JSON (structured mode, `application/cloudevents+json`); with
//! `batch` above 1, consecutive pending events of one shipment as one CloudEvents batch
//! (`application/cloudevents-batch+json`, a JSON array of the same bodies, in log order).
//! Headers: Standard Webhooks 1.0 — `webhook-id` (= the CloudEvents `id`, stable across
//! retries, so receivers dedupe on it; a batch of n > 1 events: `<first id>+<n>`, the
//! same for the same batch), `webhook-timestamp` (this attempt), and
//! `webhook-signature` (`v1,<base64 HMAC-SHA256>`) when a secret is configured, and
//! `traceparent` (W3C) when the attempt has a trace context: its `deliver` span, or the
//! event's own `traceparent` with tracing off; a batch request carries its first event's
//! (the dispatcher records one `deliver` span per event of the batch, all ending with the
//! request's answer, and each event's body keeps its own `traceparent`).
//! Redirects are not followed (a 3xx is a failure, per the spec).
//! Classification: 2xx delivered; 410 pauses the sink; 408/429/5xx, timeouts and
//! connection errors retry (honouring `Retry-After` in seconds); 401/403 are auth
//! failures (retried: an operator fixes credentials); other 4xx are permanent (DLQ).

mod config;

pub use config::{HttpWebhookConfig, MAX_BATCH};

use std::time::Duration;
use waybill_engine::config::ConfigError;
use waybill_engine::limit::RateLimit;
use waybill_engine::partner::{
    BatchFuture, BatchOutcome, Batching, DeliverFuture, Delivery, DeliveryError, Outbound,
};
use waybill_engine::signature::SigningKey;
use waybill_model::{Code, CodeClass, FailureKind};

/// The webhook sink.
pub struct HttpWebhook {
    url: reqwest::Url,
    key: Option<SigningKey>,
    client: reqwest::Client,
    headers: Vec<(String, String)>,
    batch: usize,
    rate: Option<RateLimit>,
}

impl HttpWebhook {
    /// Validates the configuration and builds the HTTP client.
    pub fn build(cfg: &HttpWebhookConfig) -> Result<HttpWebhook, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let url = reqwest::Url::parse(&cfg.url)
            .map_err(|e| errs.push(ConfigError::new("url", e)))
            .ok()
            .filter(|u| {
                let ok = matches!(u.scheme(), "http" | "https");
                if !ok {
                    errs.push(ConfigError::new("url", "scheme must be http or https"));
                }
                ok
            });
        if !(1..=MAX_BATCH).contains(&cfg.batch) {
            errs.push(ConfigError::new(
                "batch",
                format!("must be from 1 to {MAX_BATCH}"),
            ));
        }
        let rate = match (cfg.max_requests_per_second, cfg.burst) {
            (None, None) => None,
            (None, Some(_)) => {
                errs.push(ConfigError::new("burst", "needs max_requests_per_second"));
                None
            }
            (Some(per_second), burst) => {
                let r = RateLimit::new(per_second, burst.unwrap_or(1));
                match r.check() {
                    Ok(()) => Some(r),
                    Err(e) if e.path == "per_second" => {
                        errs.push(ConfigError::new("max_requests_per_second", e.message));
                        None
                    }
                    Err(e) => {
                        errs.push(e);
                        None
                    }
                }
            }
        };
        let key = match &cfg.secret {
            None => None,
            Some(s) => s
                .resolve()
                .and_then(|v| SigningKey::parse(v.expose()))
                .map_err(|e| errs.push(ConfigError::new("secret", e)))
                .ok(),
        };
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(5).min(cfg.timeout))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .user_agent(concat!("waybill/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| errs.push(ConfigError::new("", format!("http client: {e}"))))
            .ok();
        match (url, client) {
            (Some(url), Some(client)) if errs.is_empty() => Ok(HttpWebhook {
                url,
                key,
                client,
                headers: cfg
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                batch: cfg.batch,
                rate,
            }),
            _ => Err(errs),
        }
    }

    /// One request: the event in structured mode, or (a batching sink) the events as a
    /// CloudEvents batch.
    async fn send(&self, items: &[Delivery]) -> Result<(), DeliveryError> {
        let Some(first) = items.first() else {
            return Ok(());
        };
        let (id, content_type, body) = if self.batch == 1 {
            (
                first.event_id.clone(),
                "application/cloudevents+json",
                first.body().as_bytes().to_vec(),
            )
        } else {
            let len = items.iter().map(|i| i.body().len() + 1).sum::<usize>() + 1;
            let mut body = Vec::with_capacity(len);
            body.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(item.body().as_bytes());
            }
            body.push(b']');
            let id = match items.len() {
                1 => first.event_id.clone(),
                n => format!("{}+{n}", first.event_id),
            };
            (id, "application/cloudevents-batch+json", body)
        };
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut req = self
            .client
            .post(self.url.clone())
            .header("content-type", content_type)
            .header("webhook-timestamp", ts.to_string());
        if let Some(k) = &self.key {
            req = req.header("webhook-signature", k.sign(&id, ts, &body));
        }
        req = req.header("webhook-id", id);
        // A batch request carries the trace of its first event (each event's own is in
        // its body's `traceparent`).
        if let Some(t) = first.trace {
            req = req.header("traceparent", t.to_string());
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.body(body).send().await.map_err(|e| {
            let (code, what) = if e.is_timeout() {
                (TIMEOUT, "timed out")
            } else if e.is_connect() {
                (CONNECT, "connection failed")
            } else {
                (REQUEST, "request failed")
            };
            DeliveryError::new(
                code,
                FailureKind::Retryable,
                format!("{what}: {}", without_url(&e)),
            )
        })?;
        let status = resp.status().as_u16();
        items.iter().for_each(|i| i.record_status(status));
        classify(
            status,
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        )
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    s
}

/// `http.status`: the receiver answered something other than 2xx.
pub const STATUS: Code = Code::new("http.status", CodeClass::Delivery);
/// `http.timeout`: no complete answer within the sink's `timeout`.
pub const TIMEOUT: Code = Code::new("http.timeout", CodeClass::Delivery);
/// `http.connect`: connection refused, DNS or TLS failure.
pub const CONNECT: Code = Code::new("http.connect", CodeClass::Delivery);
/// `http.request`: any other transport error.
pub const REQUEST: Code = Code::new("http.request", CodeClass::Delivery);
/// Every code of the webhook sink.
pub const CODES: &[Code] = &[STATUS, TIMEOUT, CONNECT, REQUEST];

/// Classifies an HTTP answer of a webhook receiver.
pub fn classify(status: u16, retry_after: Option<&str>) -> Result<(), DeliveryError> {
    let retry_after = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let (kind, gone) = match status {
        200..=299 => return Ok(()),
        410 => (FailureKind::Permanent, true),
        408 | 425 | 429 | 500..=599 => (FailureKind::Retryable, false),
        401 | 403 => (FailureKind::Auth, false),
        300..=399 => (FailureKind::Retryable, false),
        400..=499 => (FailureKind::Permanent, false),
        _ => (FailureKind::Retryable, false),
    };
    Err(DeliveryError {
        code: STATUS,
        kind,
        retry_after,
        gone,
        sink_up: false,
        message: format!("HTTP {status}"),
    })
}

impl Outbound for HttpWebhook {
    fn deliver<'a>(&'a self, item: &'a Delivery) -> DeliverFuture<'a> {
        Box::pin(self.send(std::slice::from_ref(item)))
    }

    fn batching(&self) -> Batching {
        Batching {
            max: self.batch,
            window: Duration::ZERO,
        }
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        self.rate
    }

    /// All or nothing: one request for the whole batch.
    fn deliver_batch<'a>(&'a self, items: &'a [Delivery]) -> BatchFuture<'a> {
        Box::pin(async move {
            match self.send(items).await {
                Ok(()) => BatchOutcome {
                    delivered: items.len(),
                    error: None,
                },
                Err(e) => BatchOutcome {
                    delivered: 0,
                    error: Some(e),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests;
