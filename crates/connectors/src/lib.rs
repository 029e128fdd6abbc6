//! Connectors: one folder per partner or format. This file is the one registration list:
//! a module per connector, one variant per connector in [`SourceConfig`] / [`SinkConfig`],
//! one arm in each `build` match.
//!
//! Place in the flow: the edges (partner payload types, partner protocols, partner
//! signatures). Never does: sequencing, retry decisions or storage — the engine does those.

pub mod aftership;
pub mod easypost;
pub mod file_drop;
pub mod http_webhook;
pub mod jq;
pub mod karrio;
pub mod nats;
pub mod odoo;
pub mod x12;

pub mod carrier;

mod inbound;

pub use inbound::{CarrierConfig, X12Config};

use serde::Deserialize;
use std::sync::Arc;
use waybill_engine::config::ConfigError;
use waybill_engine::limit::RateLimit;
use waybill_engine::partner::{Inbound, Outbound};

/// Every failure code the connectors raise (each documented in docs/errors.md).
pub fn codes() -> Vec<waybill_model::Code> {
    let mut v = Vec::new();
    v.extend_from_slice(carrier::signature::CODES);
    v.extend(carrier::CARRIERS.iter().flat_map(|c| *c.partner().codes()));
    v.extend_from_slice(x12::CODES);
    v.extend_from_slice(file_drop::CODES);
    v.extend_from_slice(odoo::codes::CODES);
    v.extend_from_slice(http_webhook::CODES);
    v.extend_from_slice(nats::CODES);
    v
}

/// A source as configured under `[sources.<name>]`, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Any JSON partner, mapped by a jq program.
    Jq(jq::JqConfig),
    /// EasyPost tracker webhooks (`X-Hmac-Signature`).
    Easypost(CarrierConfig),
    /// AfterShip tracking webhooks (`aftership-hmac-sha256`).
    Aftership(CarrierConfig),
    /// Karrio tracker webhooks (secret in `X-Event-Id`).
    Karrio(CarrierConfig),
    /// X12 EDI interchanges (214, 856, 210), answered with a 997.
    X12(X12Config),
    /// CSV files dropped into a directory (3PL shipment confirmations).
    FileDrop(file_drop::FileDropConfig),
    /// Odoo pickings and sale orders, polled on `write_date`.
    Odoo(odoo::OdooSourceConfig),
    /// A NATS JetStream stream, read by a durable pull consumer.
    Nats(nats::NatsSourceConfig),
}

/// A built source: reached over HTTP, or read from a directory.
pub enum BuiltSource {
    /// Receives `POST /v1/ingest/<name>`.
    Http(Arc<dyn Inbound>),
    /// Watches a directory (started by `serve`).
    FileDrop(Arc<file_drop::FileDrop>),
    /// Reads a NATS JetStream stream (started by `serve`).
    Nats(Arc<nats::NatsSource>),
    /// Polls Odoo (started by `serve`), and receives its webhooks when tokens are set.
    Odoo {
        /// The poller.
        poller: Arc<odoo::OdooPoller>,
        /// The webhook receiver.
        webhook: Option<Arc<dyn Inbound>>,
    },
}

impl SourceConfig {
    /// Its `type` as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Jq(_) => "jq",
            SourceConfig::Easypost(_) => "easypost",
            SourceConfig::Aftership(_) => "aftership",
            SourceConfig::Karrio(_) => "karrio",
            SourceConfig::X12(_) => "x12",
            SourceConfig::FileDrop(_) => "file_drop",
            SourceConfig::Odoo(_) => "odoo",
            SourceConfig::Nats(_) => "nats",
        }
    }

    /// The carrier-aggregator format of this source and its settings, if it is one.
    pub fn carrier(&self) -> Option<(&'static dyn carrier::CarrierFormat, &CarrierConfig)> {
        match self {
            SourceConfig::Easypost(c) => Some((&easypost::EasyPost, c)),
            SourceConfig::Aftership(c) => Some((&aftership::AfterShip, c)),
            SourceConfig::Karrio(c) => Some((&karrio::Karrio, c)),
            SourceConfig::Jq(_)
            | SourceConfig::X12(_)
            | SourceConfig::FileDrop(_)
            | SourceConfig::Odoo(_)
            | SourceConfig::Nats(_) => None,
        }
    }

    /// Its own inbound rate limit (`rate_limit = { per_second, burst }`); `None` for one
    /// without (the `[limits]` default applies) and for sources not reached over HTTP.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        match self {
            SourceConfig::Jq(c) => c.rate_limit,
            SourceConfig::X12(c) => c.rate_limit,
            SourceConfig::Odoo(c) => c.rate_limit,
            SourceConfig::FileDrop(_) | SourceConfig::Nats(_) => None,
            // The carrier-aggregator formats, whose one arm is in `carrier()`.
            _ => self.carrier().and_then(|(_, c)| c.rate_limit),
        }
    }

    /// Validates the configuration (no network) and builds the source.
    pub fn build(&self, name: &str) -> Result<BuiltSource, Vec<ConfigError>> {
        use BuiltSource::Http;
        match self {
            SourceConfig::Jq(c) => Ok(Http(Arc::new(jq::JqSource::build(name, c)?))),
            SourceConfig::X12(c) => inbound::x12(c).map(Http),
            SourceConfig::Odoo(c) => odoo_source(name, c),
            SourceConfig::Nats(c) => Ok(BuiltSource::Nats(Arc::new(nats::NatsSource::build(
                name, c,
            )?))),
            SourceConfig::FileDrop(c) => Ok(BuiltSource::FileDrop(Arc::new(
                file_drop::FileDrop::build(name, c)?,
            ))),
            // Every other type is a carrier-aggregator format, whose one arm is in
            // `carrier()` (so a new format is not listed here too).
            _ => match self.carrier() {
                Some((format, c)) => inbound::carrier(c, format).map(Http),
                None => Err(vec![ConfigError::new(
                    "type",
                    "not a source type of this build",
                )]),
            },
        }
    }
}

fn odoo_source(name: &str, c: &odoo::OdooSourceConfig) -> Result<BuiltSource, Vec<ConfigError>> {
    let poller = Arc::new(odoo::OdooPoller::build(name, c)?);
    let webhook: Option<Arc<dyn Inbound>> = if c.webhook_tokens.is_empty() {
        None
    } else {
        let cfg = waybill_engine::ingest::AuthConfig::UrlToken {
            tokens: c.webhook_tokens.clone(),
        };
        let auth = waybill_engine::ingest::Auth::build(&cfg).map_err(|es| {
            es.into_iter()
                .map(|e| ConfigError {
                    path: e.path.replace("auth.tokens", "webhook_tokens"),
                    ..e
                })
                .collect::<Vec<_>>()
        })?;
        Some(Arc::new(odoo::OdooWebhook {
            auth,
            poller: poller.clone(),
        }))
    };
    Ok(BuiltSource::Odoo { poller, webhook })
}

/// A sink as configured under `[sinks.<name>]`, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Signed HTTP webhook (Standard Webhooks + CloudEvents JSON).
    HttpWebhook(http_webhook::HttpWebhookConfig),
    /// Odoo: tracking refs, validation, chatter and activities on pickings.
    Odoo(Box<odoo::OdooSinkConfig>),
    /// NATS JetStream: one message per event, deduplicated by event id.
    Nats(nats::NatsSinkConfig),
}

impl SinkConfig {
    /// Its `type` as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::HttpWebhook(_) => "http_webhook",
            SinkConfig::Odoo(_) => "odoo",
            SinkConfig::Nats(_) => "nats",
        }
    }

    /// Validates the configuration (no network) and builds the connector.
    pub fn build(&self) -> Result<Arc<dyn Outbound>, Vec<ConfigError>> {
        match self {
            SinkConfig::HttpWebhook(c) => Ok(Arc::new(http_webhook::HttpWebhook::build(c)?)),
            SinkConfig::Odoo(c) => Ok(Arc::new(odoo::OdooSink::build(c)?)),
            SinkConfig::Nats(c) => Ok(Arc::new(nats::NatsSink::build(c)?)),
        }
    }

    /// Per-sink concurrency override.
    pub fn concurrency(&self) -> Option<usize> {
        match self {
            SinkConfig::HttpWebhook(c) => c.concurrency,
            SinkConfig::Odoo(c) => Some(c.pickings_in_flight),
            SinkConfig::Nats(c) => c.concurrency,
        }
    }
}
