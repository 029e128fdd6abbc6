//! Shared by the targets: drafts become events the way the engine does it
//! (`waybill_engine::ingest` calls `EventDraft::into_event` for every mapped draft),
//! the events are serialized as the store would, and their aliases and facts are read
//! as the append does (`identity::aliases_of`, `ownership::facts_of`), then grouped.

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
    let mut lanes = Vec::new();
    for (i, d) in drafts.into_iter().enumerate() {
        if let Ok(e) = d.into_event(i, &origin) {
            let _ = serde_json::to_vec(&e);
            let _ = waybill_model::ownership::facts_of(&e);
            lanes.push(waybill_model::identity::LaneAliases {
                lane: e.subject.0.clone(),
                aliases: waybill_model::identity::aliases_of(&e),
            });
        }
    }
    let _ = waybill_model::identity::group(&lanes);
}
