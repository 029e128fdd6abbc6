//! Event drafts as any mapping (or `POST /v1/events`) outputs them: JSON →
//! `EventDraft::many_from_json` → `into_event` (type, subject, RFC 3339 time, ids).
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(drafts) = waybill_model::EventDraft::many_from_json(v) {
        common::to_events(drafts, "fuzz");
    }
});
