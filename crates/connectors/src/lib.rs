//! Connectors: one folder per partner or format. This file is the one registration list:
//! a module per connector, one variant per connector in [`SinkConfig`], one arm in its
//! `build` match.
//!
//! Place in the flow: the edges (partner payload types, partner protocols).
//! Never does: sequencing, retry decisions or storage — the engine does those.

pub mod http_webhook;

use serde::Deserialize;
use std::sync::Arc;
use waybill_engine::partner::Outbound;

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
