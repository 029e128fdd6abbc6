//! The partner contract: what a connector implements so the engine can deliver to it.
//! The engine knows no particular partner; connectors implement these traits.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use waybill_model::FailureKind;
use waybill_store::OutboxItem;

/// Why a delivery attempt failed, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// How to treat it.
    pub kind: FailureKind,
    /// The partner asked us to wait this long (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// The partner said the endpoint is gone (HTTP 410): pause the sink.
    pub gone: bool,
    /// What happened, for the operator (no payload, no secrets).
    pub message: String,
}

impl DeliveryError {
    /// A failure of the given kind.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        DeliveryError {
            kind,
            retry_after: None,
            gone: false,
            message: message.into(),
        }
    }
}

/// A boxed future returned by [`Outbound::deliver`].
pub type DeliverFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// A sink: something events are delivered to.
pub trait Outbound: Send + Sync + 'static {
    /// Delivers one event (the outbox item's body). Must be idempotent on the receiver's
    /// side given the event id; must not retry by itself (the dispatcher does).
    fn deliver<'a>(&'a self, item: &'a OutboxItem) -> DeliverFuture<'a>;
}
