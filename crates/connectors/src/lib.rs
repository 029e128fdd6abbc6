//! Connectors: one folder per partner or format. This file is the one registration list:
//! a module per connector, one variant per connector in [`SourceConfig`] / [`SinkConfig`],
//! one arm in each `build` match.
//!
//! Place in the flow: the edges (partner payload types, partner protocols, partner
//! signatures). Never does: sequencing, retry decisions or storage — the engine does those.

pub mod aftership;
pub mod easypost;
pub mod http_webhook;
pub mod karrio;
pub mod x12;

pub mod carrier_signature;
pub mod carrier_time;
pub mod checkpoint;
pub mod json_path;
pub mod map_error;
pub mod mapped;
mod string_enum;
pub mod tracking_key;

mod inbound;

#[cfg(test)]
mod status_table_tests;
#[cfg(test)]
mod test_support;

pub use inbound::{CarrierConfig, X12Config};

use serde::Deserialize;
use std::sync::Arc;
use waybill_engine::partner::{Inbound, Outbound};

/// A source as configured under `[sources.<name>]`, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Any JSON partner, mapped by a jq program.
    Jq(waybill_engine::SourceConfig),
    /// EasyPost tracker webhooks (`X-Hmac-Signature`).
    Easypost(CarrierConfig),
    /// AfterShip tracking webhooks (`aftership-hmac-sha256`).
    Aftership(CarrierConfig),
    /// Karrio tracker webhooks (secret in `X-Event-Id`).
    Karrio(CarrierConfig),
    /// X12 EDI interchanges (214, 856, 210), answered with a 997.
    X12(X12Config),
}

impl SourceConfig {
    /// Validates the configuration (no network) and builds the source.
    pub fn build(&self, name: &str) -> Result<Arc<dyn Inbound>, Vec<String>> {
        match self {
            SourceConfig::Jq(c) => Ok(Arc::new(waybill_engine::Source::build(name, c)?)),
            SourceConfig::Easypost(c) => inbound::carrier(c, easypost::verify, easypost::map),
            SourceConfig::Aftership(c) => inbound::carrier(c, aftership::verify, aftership::map),
            SourceConfig::Karrio(c) => inbound::carrier(c, karrio::verify, karrio::map),
            SourceConfig::X12(c) => inbound::x12(c),
        }
    }
}

/// A sink as configured under `[sinks.<name>]`, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Signed HTTP webhook (Standard Webhooks + CloudEvents JSON).
    HttpWebhook(http_webhook::HttpWebhookConfig),
}

impl SinkConfig {
    /// Validates the configuration (no network) and builds the connector.
    pub fn build(&self, name: &str) -> Result<Arc<dyn Outbound>, Vec<String>> {
        match self {
            SinkConfig::HttpWebhook(c) => Ok(Arc::new(http_webhook::HttpWebhook::build(name, c)?)),
        }
    }

    /// Per-sink concurrency override.
    pub fn concurrency(&self) -> Option<usize> {
        match self {
            SinkConfig::HttpWebhook(c) => c.concurrency,
        }
    }
}
