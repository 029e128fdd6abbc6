//! `nats`: publishes canonical events to NATS JetStream.
//!
//! Each event is one message on the subject `<prefix>.<type>.<partition>` (the type's
//! dots make their own tokens: `waybill.shipment.delivered.SO-42`), with the
//! CloudEvents JSON exactly as stored as the payload (structured mode), the header
//! `Nats-Msg-Id` = the event id (JetStream drops a repeat inside the stream's duplicate
//! window, so a retry after a lost acknowledgement stores nothing twice) and
//! `Content-Type: application/cloudevents+json`, plus `traceparent` (W3C) when the
//! attempt has a trace context (its `deliver` span, or the event's own). A delivery succeeds when the stream
//! acknowledges the message (a `PubAck`, a duplicate included); everything else fails
//! the attempt with a `nats.*` code and goes through the same retries, circuit breaker
//! and dead letters as the HTTP sink. The stream is the operator's: Waybill does not
//! create or change it.
//!
//! The connection is made at the first delivery (the hub starts while NATS is down) and
//! kept; the client reconnects by itself.

mod config;
mod connection;
mod source;

pub use config::{NatsSinkConfig, NatsSourceConfig};
pub use source::{binary_mode, NatsSource};

use connection::Connection;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::HeaderMap;
use tokio::sync::OnceCell;
use waybill_engine::config::ConfigError;
use waybill_engine::partner::{DeliverFuture, Delivery, DeliveryError, Outbound};
use waybill_model::{Code, CodeClass, FailureKind};

/// `nats.connect`: the server could not be reached or refused the connection.
pub const CONNECT: Code = Code::new("nats.connect", CodeClass::Delivery);
/// `nats.no_stream`: no JetStream stream takes the subject.
pub const NO_STREAM: Code = Code::new("nats.no_stream", CodeClass::Delivery);
/// `nats.timeout`: the stream did not acknowledge within the sink's `timeout`.
pub const TIMEOUT: Code = Code::new("nats.timeout", CodeClass::Delivery);
/// `nats.publish`: any other publish failure (connection lost, stream refused).
pub const PUBLISH: Code = Code::new("nats.publish", CodeClass::Delivery);
/// Every code of the NATS sink.
pub const CODES: &[Code] = &[CONNECT, NO_STREAM, TIMEOUT, PUBLISH];

/// The JetStream sink.
pub struct NatsSink {
    conn: Connection,
    prefix: String,
    js: OnceCell<async_nats::jetstream::Context>,
}

impl NatsSink {
    /// Validates the configuration (no network).
    pub fn build(cfg: &NatsSinkConfig) -> Result<NatsSink, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let conn = Connection::build(&cfg.access(), &mut errs);
        if cfg.subject_prefix.is_empty()
            || cfg
                .subject_prefix
                .split('.')
                .any(|t| t.is_empty() || t.chars().any(|c| !token_char(c)))
        {
            errs.push(ConfigError::new(
                "subject_prefix",
                "must be dot-separated tokens of letters, digits, `_` and `-`",
            ));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(NatsSink {
            conn,
            prefix: cfg.subject_prefix.clone(),
            js: OnceCell::new(),
        })
    }

    /// The subject of an event: `<prefix>.<type>.<partition>`, the partition key with
    /// every character that cannot be in a subject token replaced by `_`.
    pub fn subject(&self, event_type: &str, partition: &str) -> String {
        let part: String = partition
            .chars()
            .map(|c| if token_char(c) { c } else { '_' })
            .collect();
        let part = if part.is_empty() {
            "_".to_owned()
        } else {
            part
        };
        format!("{}.{event_type}.{part}", self.prefix)
    }

    async fn context(&self) -> Result<&async_nats::jetstream::Context, DeliveryError> {
        self.js
            .get_or_try_init(|| async {
                let client = self.conn.connect().await.map_err(|e| {
                    DeliveryError::new(
                        CONNECT,
                        FailureKind::Retryable,
                        format!("cannot connect: {e}"),
                    )
                })?;
                let mut js = async_nats::jetstream::new(client);
                js.set_timeout(self.conn.timeout());
                Ok(js)
            })
            .await
    }

    async fn send(&self, item: &Delivery) -> Result<(), DeliveryError> {
        let ty = item.ty().map_err(|e| {
            DeliveryError::new(
                PUBLISH,
                FailureKind::InvalidInput,
                format!("not a canonical event: {e}"),
            )
        })?;
        let subject = self.subject(ty, &item.shipment);
        let js = self.context().await?;
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, item.event_id.as_str());
        headers.insert("Content-Type", "application/cloudevents+json");
        if let Some(t) = item.trace {
            headers.insert("traceparent", t.to_string().as_str());
        }
        let body = bytes::Bytes::copy_from_slice(item.body().as_bytes());
        let ack = js
            .publish_with_headers(subject, headers, body)
            .await
            .map_err(publish_error)?;
        ack.await.map_err(publish_error)?;
        Ok(())
    }
}

pub(crate) fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn publish_error(e: async_nats::jetstream::context::PublishError) -> DeliveryError {
    let code = match e.kind() {
        PublishErrorKind::StreamNotFound => NO_STREAM,
        PublishErrorKind::TimedOut => TIMEOUT,
        _ => PUBLISH,
    };
    DeliveryError::new(code, FailureKind::Retryable, format!("publish failed: {e}"))
}

impl Outbound for NatsSink {
    fn deliver<'a>(&'a self, item: &'a Delivery) -> DeliverFuture<'a> {
        Box::pin(self.send(item))
    }
}

#[cfg(test)]
mod tests;
