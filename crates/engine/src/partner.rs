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

/// Why an inbound request is refused; it is stored as a rejected inbox record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status to answer (4xx).
    pub status: u16,
    /// Stable code, e.g. `ingest.bad_signature`, `x12.segment_count_mismatch`.
    pub code: String,
    /// What is wrong and where, for the partner and the operator.
    pub detail: String,
}

impl Rejection {
    /// A rejection.
    pub fn new(status: u16, code: impl Into<String>, detail: impl Into<String>) -> Self {
        Rejection {
            status,
            code: code.into(),
            detail: detail.into(),
        }
    }
}

/// What a source made of a payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The payload's idempotency key (the same payload always gives the same key).
    pub payload_key: String,
    /// Event drafts.
    pub drafts: Vec<waybill_model::EventDraft>,
}

/// A document to answer the partner with instead of the default JSON (an X12 997).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Content type of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// A source: something partner payloads arrive from (the jq source in the engine, partner
/// formats in the connectors). Pure: no I/O, no clock except the received time.
pub trait Inbound: Send + Sync + 'static {
    /// Largest accepted body in bytes.
    fn max_body_bytes(&self) -> usize;
    /// Checks the request's authentication (signature, API key).
    fn authenticate(&self, r: &crate::Received) -> Result<(), Rejection>;
    /// Parses and maps the payload.
    fn map(&self, r: &crate::Received) -> Result<Mapped, Rejection>;
    /// The document to answer with, given the outcome (default: none, JSON is used).
    fn acknowledgement(
        &self,
        _r: &crate::Received,
        _outcome: Result<(), &Rejection>,
    ) -> Option<Ack> {
        None
    }
}
