//! Karrio — an open-source multi-carrier shipping platform (self-hosted or cloud) with a
//! REST API and webhooks. Docs: <https://docs.karrio.io> (webhooks guide:
//! `reference/guides/webhooks`); behaviour read from the source, github.com/karrioapi/karrio
//! (EVENTS.md \[K1\]–\[K8\]).
//!
//! Direction: inbound tracking webhooks. Karrio POSTs `{"event": "tracker_created" |
//! "tracker_updated", "data": <tracker>}`; `tracker_updated` fires when a tracker's
//! `status` or `events` change. The dotted spellings (`tracker.updated`) are accepted too.
//! Other event types (`shipment_purchased`, `order_*`, `batch_*`, …) reach the same URL
//! and map to no drafts here.
//!
//! Signature: none. Karrio sends the endpoint's secret itself in the `X-Event-Id` header
//! (\[K4\]; its docs: "the `secret` field is added to the request header `X-Event-Id:
//! <secret>` to serve as a signature"). [`verify`] compares it with the configured secret
//! in constant time (both hashed first, so the secret's length does not leak). Nothing
//! binds the header to the body: anyone who sees one request (a logging proxy) can forge
//! others, so the endpoint must be HTTPS-only and the header never logged.
//!
//! Idempotency key: Karrio's payload has no event id (the Event it stores has one, but it
//! is not sent), so the key is the SHA-256 of the canonical JSON (`sha256:…`). Karrio's
//! retries (5 task retries, 60 s apart) re-send the same serialized payload, hence the same
//! key; a real change to the tracker changes the body and so the key.
//!
//! Mapping (EVENTS.md §2.2, column Karrio; every status and reason in STATUS_TABLE.md):
//! - Every event with a normalized `status` (or an incident `reason`) becomes a draft keyed
//!   `trk_…:<UTC time>:<status>:<carrier code>`, plus one for the tracker's current status
//!   (`trk_…:current:…`), plus `pod.captured` when it ends delivered with a signer, a
//!   delivery photo or a signature image. Events without a status or reason (many carrier
//!   integrations send none per event) carry nothing to classify and make no draft; their
//!   text stays in the stored payload.
//! - `code` = the carrier's raw code, `text` = its description, `reason` = Karrio's incident
//!   reason as is (it is the family EVENTS.md adopts; unknown values become `unknown`);
//!   `location` = `{text, latitude, longitude}`. The current draft adds `estimated_delivery`,
//!   `service`, `tracking_url`, `test_mode` (true for test-mode trackers: consumers should
//!   not drive real shipments from them), and on delivery `signed_by`, `photo_url`,
//!   `signature_url` (Karrio serves the images at those URLs).
//! - Subject `trk:<carrier_name>:<tracking_number>`; refs `tracking`, `carrier`, `tracker`
//!   (`trk_…`), `karrio_carrier_id` (the configured connection).
//!
//! Known quirks:
//! - The secret travels in a header named like an id (`X-Event-Id`); it is not an event id.
//! - `timestamp` is the carrier's wall-clock time formatted with a literal `Z` (Karrio's
//!   `fiso_timestamp` drops any offset), so it is only as UTC as the carrier's local zone;
//!   we cannot recover the zone and take it as sent. Events dated after receipt are flagged
//!   `data.time_after_receipt`. `time` may be `14:30 PM` (`%H:%M %p`).
//! - `return_to_sender` covers returning and returned (as EasyPost's): it maps to
//!   `shipment.return_initiated`, and a later `delivered` event is the return delivery
//!   (`shipment.returned`).
//! - Karrio has no exception status: an incident `reason` on `pending`/`picked_up`/
//!   `in_transit`/`unknown` (or no status) makes a `shipment.exception` with that reason.
//! - `unknown` (also set when Karrio retires a tracker after 90 days, \[K6\]) is EVENTS.md's
//!   `tracking.stale`: no draft. An unknown future status maps to `shipment.exception` with
//!   reason `unknown`.

mod mapping;
#[cfg(test)]
mod tests;
mod wire;

pub use crate::carrier_signature::SignatureError;
pub use crate::map_error::MapError;
pub use crate::mapped::Mapped;

use crate::carrier_signature::{secrets_match, single_header};
use crate::checkpoint::{into_drafts, non_blank};
use crate::map_error::{content_key, parse_json, Partner};
use crate::tracking_key::{normalize_carrier, tracking_key};
use std::collections::BTreeMap;
use time::OffsetDateTime;

const P: Partner = Partner::Karrio;

/// The header that carries the shared secret (matched case-insensitively).
pub const SECRET_HEADER: &str = "x-event-id";

/// Event types that carry a tracker.
const TRACKER_EVENTS: [&str; 4] = [
    "tracker_created",
    "tracker_updated",
    "tracker.created",
    "tracker.updated",
];

/// Checks that `X-Event-Id` carries the configured webhook `secret` (the body is not
/// signed by Karrio, so it is not used).
pub fn verify(
    headers: &[(String, String)],
    _body: &[u8],
    secret: &str,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    let value = single_header(headers, SECRET_HEADER)?;
    if value.is_empty() {
        return Err(SignatureError::Malformed {
            header: SECRET_HEADER,
            reason: "empty",
        });
    }
    if secrets_match(value, secret) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Maps one Karrio webhook body to drafts. `received_at` is when the hub received it;
/// events dated more than five minutes after it are flagged `data.time_after_receipt`.
pub fn map(body: &[u8], received_at: OffsetDateTime) -> Result<Mapped, MapError> {
    let head: wire::WebhookHead = parse_json(P, body)?;
    let payload_key = content_key(body);
    let event = non_blank(head.event.as_deref()).ok_or_else(|| MapError::missing(P, "event"))?;
    if !TRACKER_EVENTS.contains(&event) {
        return Ok(Mapped {
            payload_key,
            drafts: Vec::new(),
        });
    }
    let hook: wire::TrackerWebhook = parse_json(P, body)?;
    let t = hook.data.ok_or_else(|| MapError::missing(P, "data"))?;
    let carrier = non_blank(t.carrier_name.as_deref())
        .ok_or_else(|| MapError::missing(P, "data.carrier_name"))?;
    let tracking = non_blank(t.tracking_number.as_deref())
        .ok_or_else(|| MapError::missing(P, "data.tracking_number"))?;
    let subject = tracking_key(carrier, tracking).map_err(|e| {
        MapError::bad_tracking_key(P, &e, "data.carrier_name", "data.tracking_number")
    })?;
    let mut refs = BTreeMap::new();
    refs.insert("tracking".to_owned(), tracking.trim().to_owned());
    refs.insert("carrier".to_owned(), normalize_carrier(carrier));
    for (name, value) in [("tracker", &t.id), ("karrio_carrier_id", &t.carrier_id)] {
        if let Some(v) = non_blank(value.as_deref()) {
            refs.insert(name.to_owned(), v.to_owned());
        }
    }
    let base = non_blank(t.id.as_deref()).unwrap_or(&subject).to_owned();
    let mut updates = mapping::updates(&t, &base)?;
    crate::checkpoint::flag_after_receipt(&mut updates, received_at);
    Ok(Mapped {
        payload_key,
        drafts: into_drafts(&subject, &refs, updates),
    })
}

#[cfg(test)]
pub(crate) use mapping::classify;
#[cfg(test)]
pub(crate) use wire::{Reason, Status};
