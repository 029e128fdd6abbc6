//! The partner contract: what a connector implements so the engine can deliver to it.
//! The engine knows no particular partner; connectors implement these traits.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use waybill_model::{CloudEvent, Code, FailureKind};

/// One event to deliver to one sink: what the dispatcher hands a connector. It carries
/// no storage detail (the dispatcher keeps its own bookkeeping of outbox rows).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The CloudEvents `id`: stable across attempts and replays, so the receiver can
    /// drop a repeat (the `webhook-id`).
    pub event_id: String,
    /// The shipment key: the ordering unit (one shipment's events arrive in log order).
    pub shipment: String,
    /// The CloudEvents `type` (empty when the caller did not say: see
    /// [`Delivery::event_type`]).
    pub event_type: String,
    /// The subscription that routed the event to the sink.
    pub subscription: String,
    /// The sink's name (its configuration key).
    pub sink: String,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// The identifiers (`kind`, `value`, normalised) of every lane of the shipment the
    /// event's subject resolves to, read just before the attempt — filled only for a sink
    /// whose [`Outbound::wants_shipment_refs`] says so (the Odoo sink finds its picking by
    /// them when the event names only a tracking number).
    pub shipment_refs: Vec<(String, String)>,
    /// The W3C trace context this attempt's outgoing request carries as `traceparent`:
    /// the attempt's `deliver` span when tracing is on, else the event's own
    /// `traceparent` (set by the dispatcher; `None`: send none).
    pub trace: Option<crate::telemetry::TraceContext>,
    body: Arc<str>,
    event: OnceLock<Result<CloudEvent, String>>,
    status: OnceLock<u16>,
}

impl Delivery {
    /// The first attempt at delivering event `event_id` of `shipment`, whose CloudEvents
    /// JSON is `body`; `subscription` and `sink` are empty until set.
    pub fn new(event_id: impl Into<String>, shipment: impl Into<String>, body: Arc<str>) -> Self {
        Delivery {
            event_id: event_id.into(),
            shipment: shipment.into(),
            event_type: String::new(),
            subscription: String::new(),
            sink: String::new(),
            attempt: 1,
            shipment_refs: Vec::new(),
            trace: None,
            body,
            event: OnceLock::new(),
            status: OnceLock::new(),
        }
    }

    /// Records the HTTP status the sink answered this attempt with (for its trace span);
    /// the first one recorded is kept.
    pub fn record_status(&self, status: u16) {
        let _ = self.status.set(status);
    }

    /// The HTTP status recorded by [`Delivery::record_status`].
    pub fn status(&self) -> Option<u16> {
        self.status.get().copied()
    }

    /// The CloudEvents JSON body exactly as stored: what a sink that forwards the event
    /// sends (and signs) byte for byte.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The event's type: [`Delivery::event_type`] when set, else read from the body.
    pub fn ty(&self) -> Result<&str, &str> {
        if self.event_type.is_empty() {
            self.event().map(|e| e.ty.as_str())
        } else {
            Ok(&self.event_type)
        }
    }

    /// The body parsed as a canonical event, for a sink that acts on its fields. Parsed
    /// on first use, once per delivery; the error says why the body is not one.
    pub fn event(&self) -> Result<&CloudEvent, &str> {
        self.event
            .get_or_init(|| serde_json::from_str(&self.body).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }
}

/// Why a delivery attempt failed, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// What failed: a stable code of the sink (`http.status`, `odoo.access_denied`),
    /// documented in docs/errors.md and kept on the dead letter.
    pub code: Code,
    /// How to treat it.
    pub kind: FailureKind,
    /// The partner asked us to wait this long (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// The partner said the endpoint is gone (HTTP 410): pause the sink.
    pub gone: bool,
    /// The partner answered and is healthy; only this event cannot go yet (say, the
    /// record it is about does not exist there yet). Retried, but not counted against
    /// the sink's circuit breaker.
    pub sink_up: bool,
    /// What happened, for the operator (no payload, no secrets).
    pub message: String,
}

impl DeliveryError {
    /// A failure with its code and kind.
    pub fn new(code: Code, kind: FailureKind, message: impl Into<String>) -> Self {
        DeliveryError {
            code,
            kind,
            retry_after: None,
            gone: false,
            sink_up: false,
            message: message.into(),
        }
    }

    /// A retryable failure of this event alone, while the partner itself is up.
    pub fn not_yet(code: Code, message: impl Into<String>) -> Self {
        DeliveryError {
            sink_up: true,
            ..DeliveryError::new(code, FailureKind::Retryable, message)
        }
    }
}

/// A boxed future returned by [`Outbound::deliver`].
pub type DeliverFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// What a batch delivery achieved: the first `delivered` items are done; when some are
/// not, `error` says why the item at index `delivered` failed (the rest were not tried or
/// will be tried again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// How many items, from the front, were delivered.
    pub delivered: usize,
    /// Why the next one was not (None when all were delivered).
    pub error: Option<DeliveryError>,
}

/// A boxed future returned by [`Outbound::deliver_batch`].
pub type BatchFuture<'a> = Pin<Box<dyn Future<Output = BatchOutcome> + Send + 'a>>;

/// How a sink wants consecutive events of one shipment grouped (coalescing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most events of one shipment handed over in one delivery (1: no batching).
    pub max: usize,
    /// How long a shipment's first pending event waits for the next ones before it is
    /// sent (zero: send at once; events that pile up meanwhile still go together).
    pub window: Duration,
}

impl Batching {
    /// One event at a time, sent at once.
    pub const NONE: Batching = Batching {
        max: 1,
        window: Duration::ZERO,
    };
}

/// A sink: something events are delivered to.
pub trait Outbound: Send + Sync + 'static {
    /// Delivers one event. Must be idempotent on the receiver's side given the event id;
    /// must not retry by itself (the dispatcher does).
    fn deliver<'a>(&'a self, item: &'a Delivery) -> DeliverFuture<'a>;

    /// Whether the dispatcher should read the resolved shipment's identifiers into each
    /// delivery's [`Delivery::shipment_refs`] (one store read per attempt); default no.
    fn wants_shipment_refs(&self) -> bool {
        false
    }

    /// How this sink wants events grouped; default: one at a time.
    fn batching(&self) -> Batching {
        Batching::NONE
    }

    /// Most requests a second the dispatcher may start to this sink (one attempt, single
    /// or batch, is one request); default: no limit beyond its concurrency.
    fn rate_limit(&self) -> Option<crate::limit::RateLimit> {
        None
    }

    /// Delivers consecutive events of one shipment, in log order, as one unit (a sink that
    /// coalesces them into fewer partner calls overrides this). Default: one by one,
    /// stopping at the first failure.
    fn deliver_batch<'a>(&'a self, items: &'a [Delivery]) -> BatchFuture<'a> {
        Box::pin(async move {
            for (i, item) in items.iter().enumerate() {
                if let Err(e) = self.deliver(item).await {
                    return BatchOutcome {
                        delivered: i,
                        error: Some(e),
                    };
                }
            }
            BatchOutcome {
                delivered: items.len(),
                error: None,
            }
        })
    }
}

/// Why an inbound request is refused; it is stored as a rejected inbox record. How it is
/// answered (the HTTP status) follows from its code's class, decided by the API alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable code, e.g. `ingest.bad_signature`, `x12.segment_count_mismatch`.
    pub code: Code,
    /// What is wrong and where, for the partner and the operator.
    pub detail: String,
}

impl Rejection {
    /// A rejection.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Rejection {
            code,
            detail: detail.into(),
        }
    }
}

/// What a source made of a payload.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
    /// Headers of this format that carry a secret (lower case); the hub never stores them
    /// nor shows them to any mapping. Default: none beyond the common credential headers.
    fn secret_headers(&self) -> Vec<&'static str> {
        Vec::new()
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_parses_its_body_once_and_says_why_it_cannot() {
        let bad = Delivery::new("e", "S1", Arc::from("{\"id\": 1"));
        assert!(
            bad.event().unwrap_err().contains("expected a string"),
            "{:?}",
            bad.event()
        );
        let ev: CloudEvent = serde_json::from_value(serde_json::json!({
            "id": "evt-1", "source": "/sources/t", "specversion": "1.0",
            "type": "shipment.delivered", "time": "2026-11-23T10:00:00Z", "subject": "S1",
            "datacontenttype": "application/json", "partitionkey": "S1",
            "recordedtime": "2026-11-23T10:00:01Z", "data": {}
        }))
        .unwrap();
        let body = serde_json::to_string(&ev).unwrap();
        let d = Delivery::new("evt-1", "S1", Arc::from(body.as_str()));
        assert_eq!(d.body(), body);
        assert_eq!(d.attempt, 1);
        assert_eq!(d.event().unwrap(), &ev);
        assert!(std::ptr::eq(d.event().unwrap(), d.event().unwrap()));
    }
}
