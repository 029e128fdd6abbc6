//! What a partner mapping returns for one webhook payload.

use serde::Serialize;
use waybill_model::EventDraft;

/// The result of mapping one partner payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mapped {
    /// The payload's idempotency key: the partner's own event id when it sends one, else a
    /// documented fallback (see each partner's module docs). Same payload, same key.
    pub payload_key: String,
    /// The canonical event drafts, in a deterministic order; may be empty when the payload
    /// carries nothing the hub records (e.g. a non-tracking event type).
    pub drafts: Vec<EventDraft>,
}
