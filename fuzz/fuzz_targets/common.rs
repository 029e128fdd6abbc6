//! Shared by the targets: drafts become events the way the engine does it
//! (`waybill_engine::ingest` calls `EventDraft::into_event` for every mapped draft),
//! and the events are serialized as the store would.

use time::OffsetDateTime;
use waybill_model::draft::Origin;
use waybill_model::EventDraft;

/// Turns every draft into a CloudEvent (errors are expected and ignored; panics are bugs).
pub fn to_events(drafts: Vec<EventDraft>, payload_key: &str) {
    let origin = Origin {
        source: "fuzz",
        payload_key,
        received_at: OffsetDateTime::UNIX_EPOCH,
        traceparent: None,
    };
    for (i, d) in drafts.into_iter().enumerate() {
        if let Ok(e) = d.into_event(i, &origin) {
            let _ = serde_json::to_vec(&e);
        }
    }
}
