//! The failure codes the engine raises on ingest (docs/errors.md documents each; a test
//! in the binary compares the two).

use waybill_model::{Code, CodeClass};

/// `POST /v1/ingest/{source}` names no configured source.
pub const UNKNOWN_SOURCE: Code = Code::new("ingest.unknown_source", CodeClass::NotFound);
/// The body is larger than the source's limit.
pub const TOO_LARGE: Code = Code::new("ingest.too_large", CodeClass::TooLarge);
/// The Standard Webhooks signature check failed.
pub const BAD_SIGNATURE: Code = Code::new("ingest.bad_signature", CodeClass::Unauthenticated);
/// No or an unknown API key or URL token.
pub const UNAUTHORIZED: Code = Code::new("ingest.unauthorized", CodeClass::Unauthenticated);
/// The body is not JSON.
pub const BAD_JSON: Code = Code::new("ingest.bad_json", CodeClass::BadRequest);
/// The source's `idempotency_key` expression gave no usable key.
pub const NO_IDEMPOTENCY_KEY: Code =
    Code::new("ingest.no_idempotency_key", CodeClass::Unprocessable);
/// A rejection that lost its reason (not expected).
pub const REJECTED: Code = Code::new("ingest.rejected", CodeClass::Unprocessable);
/// The source (or the unknown sources together) is over its rate limit; nothing stored.
pub const RATE_LIMITED: Code = Code::new("ingest.rate_limited", CodeClass::TooManyRequests);
/// The hub is handling `[limits].max_in_flight` ingest requests already; nothing stored.
pub const OVERLOADED: Code = Code::new("ingest.overloaded", CodeClass::TooManyRequests);

/// A sink's delivery task panicked (a bug in the connector); the attempt is retried.
pub const DELIVERY_PANICKED: Code = Code::new("delivery.panicked", CodeClass::Delivery);
/// The workflows' internal sink was handed an event that is not JSON (a corrupt store).
pub const WORKFLOW_BAD_EVENT: Code = Code::new("workflow.bad_event", CodeClass::Delivery);
/// The workflows' internal sink could not store the event for its workflows; retried.
pub const WORKFLOW_STORE: Code = Code::new("workflow.store", CodeClass::Delivery);

/// Every code of the engine.
pub const CODES: &[Code] = &[
    UNKNOWN_SOURCE,
    TOO_LARGE,
    BAD_SIGNATURE,
    UNAUTHORIZED,
    BAD_JSON,
    NO_IDEMPOTENCY_KEY,
    REJECTED,
    RATE_LIMITED,
    OVERLOADED,
    DELIVERY_PANICKED,
    WORKFLOW_BAD_EVENT,
    WORKFLOW_STORE,
];
