//! The codes the API raises itself, and the one place where a code's class becomes an
//! HTTP status (docs/errors.md documents each code; a test compares the two).

use waybill_model::{Code, CodeClass};

/// A `/v1` call without a known bearer key.
pub const UNAUTHORIZED: Code = Code::new("api.unauthorized", CodeClass::Unauthenticated);
/// A known key without the scope the route needs.
pub const FORBIDDEN: Code = Code::new("api.forbidden", CodeClass::Forbidden);
/// No API key with that id (keys API).
pub const KEY_NOT_FOUND: Code = Code::new("api.key_not_found", CodeClass::NotFound);
/// A key request that is not one (unknown scope, bad expiry, bad name).
pub const BAD_KEY_REQUEST: Code = Code::new("api.bad_key_request", CodeClass::Unprocessable);
/// No such route.
pub const NOT_FOUND: Code = Code::new("api.not_found", CodeClass::NotFound);
/// A shipment key that is not one.
pub const BAD_KEY: Code = Code::new("api.bad_key", CodeClass::BadRequest);
/// No events for that shipment key.
pub const SHIPMENT_NOT_FOUND: Code = Code::new("api.shipment_not_found", CodeClass::NotFound);
/// An identifier that names several shipments (the answer lists them).
pub const AMBIGUOUS: Code = Code::new("api.ambiguous_alias", CodeClass::Conflict);
/// No order has that identifier.
pub const ORDER_NOT_FOUND: Code = Code::new("api.order_not_found", CodeClass::NotFound);
/// A `ref` query that is not `kind:value`, or an unknown conflict kind.
pub const BAD_REF: Code = Code::new("api.bad_ref", CodeClass::BadRequest);
/// An unknown state name in a query.
pub const BAD_STATE: Code = Code::new("api.bad_state", CodeClass::BadRequest);
/// No such dead letter (or already replayed).
pub const DEAD_LETTER_NOT_FOUND: Code = Code::new("api.dead_letter_not_found", CodeClass::NotFound);
/// A request body that is not the expected JSON.
pub const BAD_JSON: Code = Code::new("api.bad_json", CodeClass::BadRequest);
/// A request that is well-formed but not explicit enough.
pub const BAD_REQUEST: Code = Code::new("api.bad_request", CodeClass::BadRequest);
/// A request body over the limit.
pub const TOO_LARGE: Code = Code::new("api.too_large", CodeClass::TooLarge);
/// The store failed while answering.
pub const UNAVAILABLE: Code = Code::new("server.unavailable", CodeClass::Unavailable);
/// `/readyz`: the store does not answer.
pub const NOT_READY: Code = Code::new("server.not_ready", CodeClass::Unavailable);
/// A write the store refused for lack of disk space (nothing stored); `/readyz` while
/// commits fail so.
pub const STORAGE_FULL: Code = Code::new("server.storage_full", CodeClass::StorageFull);
/// No workflow with that id.
pub const WORKFLOW_NOT_FOUND: Code = Code::new("api.workflow_not_found", CodeClass::NotFound);
/// No task with that id.
pub const TASK_NOT_FOUND: Code = Code::new("api.task_not_found", CodeClass::NotFound);
/// The task is resolved, cancelled, or claimed by someone else.
pub const TASK_NOT_OPEN: Code = Code::new("api.task_not_open", CodeClass::Conflict);
/// No workflows are configured on this hub (`[workflows]`).
pub const WORKFLOWS_OFF: Code = Code::new("api.workflows_off", CodeClass::NotFound);
/// A name in a path that cannot be one (empty, too long, control characters).
pub const BAD_NAME: Code = Code::new("api.bad_name", CodeClass::BadRequest);
/// No sink of that name runs on this instance.
pub const SINK_NOT_FOUND: Code = Code::new("api.sink_not_found", CodeClass::NotFound);
/// No subscription of that name.
pub const SUBSCRIPTION_NOT_FOUND: Code =
    Code::new("api.subscription_not_found", CodeClass::NotFound);
/// A subscription body naming an unknown sink or event type, or with unknown fields.
pub const BAD_SUBSCRIPTION: Code = Code::new("api.bad_subscription", CodeClass::Unprocessable);
/// A dead letter replayed or discarded already.
pub const DEAD_LETTER_CLOSED: Code = Code::new("api.dead_letter_closed", CodeClass::Conflict);
/// No inbox record with that id.
pub const INBOX_NOT_FOUND: Code = Code::new("api.inbox_not_found", CodeClass::NotFound);
/// An inbox record that cannot be re-processed (accepted, done before, never
/// authenticated, or its source is gone).
pub const NOT_REPROCESSABLE: Code = Code::new("api.not_reprocessable", CodeClass::Conflict);
/// A re-processed payload was rejected again (kept as a new inbox record).
pub const REPROCESS_REJECTED: Code = Code::new("api.reprocess_rejected", CodeClass::Unprocessable);

/// Every code of the API.
pub const CODES: &[Code] = &[
    UNAUTHORIZED,
    FORBIDDEN,
    KEY_NOT_FOUND,
    BAD_KEY_REQUEST,
    NOT_FOUND,
    BAD_KEY,
    SHIPMENT_NOT_FOUND,
    AMBIGUOUS,
    ORDER_NOT_FOUND,
    BAD_REF,
    BAD_STATE,
    DEAD_LETTER_NOT_FOUND,
    BAD_JSON,
    BAD_REQUEST,
    TOO_LARGE,
    UNAVAILABLE,
    NOT_READY,
    STORAGE_FULL,
    WORKFLOW_NOT_FOUND,
    TASK_NOT_FOUND,
    TASK_NOT_OPEN,
    WORKFLOWS_OFF,
    BAD_NAME,
    SINK_NOT_FOUND,
    SUBSCRIPTION_NOT_FOUND,
    BAD_SUBSCRIPTION,
    DEAD_LETTER_CLOSED,
    INBOX_NOT_FOUND,
    NOT_REPROCESSABLE,
    REPROCESS_REJECTED,
];

/// The HTTP status a code of this class is answered with; `None` for classes that are
/// never answered over HTTP (file, delivery and configuration failures).
pub fn http_status(class: CodeClass) -> Option<u16> {
    match class {
        CodeClass::BadRequest => Some(400),
        CodeClass::Unauthenticated => Some(401),
        CodeClass::Forbidden => Some(403),
        CodeClass::NotFound => Some(404),
        CodeClass::Conflict => Some(409),
        CodeClass::TooLarge => Some(413),
        CodeClass::TooManyRequests => Some(429),
        CodeClass::Unprocessable => Some(422),
        CodeClass::Unavailable => Some(503),
        CodeClass::StorageFull => Some(507),
        CodeClass::File | CodeClass::Delivery | CodeClass::Config => None,
    }
}
