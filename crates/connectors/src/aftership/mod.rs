//! AfterShip Tracking — a post-purchase tracking aggregator (1,000+ carriers) that
//! normalizes every carrier's scans into nine tags and ~60 subtags. Docs:
//! <https://www.aftership.com/docs/tracking/2025-01/webhook/webhook-specifications>,
//! <https://www.aftership.com/docs/tracking/webhook/webhook-signature>,
//! <https://www.aftership.com/docs/tracking/2026-07/enum/delivery-sub-statuses>.
//!
//! Direction: inbound tracking webhooks (`tracking_update`, `edd_revise`,
//! `tracking_pending_time`); every one carries the full Tracking object in `msg`, so all
//! three are mapped the same way.
//!
//! Signature: header `aftership-hmac-sha256` = base64(HMAC-SHA256(raw body, webhook
//! secret)); older integrations see it capitalized (`Aftership-Hmac-Sha256`), which the
//! case-insensitive lookup covers. AfterShip's Returns/Shipping products use other headers
//! (`as-signature-hmac-sha256`, `am-webhook-signature`) and are not this connector. No
//! timestamp is signed. See [`verify`].
//!
//! Idempotency key: `event_id` (UUID v4, "to uniquely identify the webhook event"); if it is
//! missing, the SHA-256 of the canonical JSON (`sha256:…`).
//!
//! Mapping (EVENTS.md §2.2, column AfterShip, and its reason paragraph; every tag and
//! subtag in STATUS_TABLE.md):
//! - Every checkpoint becomes a draft keyed `<tracking id>:<UTC time>:<tag>:<subtag>`, plus
//!   one for the tracking's current tag/subtag (`…:current:…`), plus `pod.captured` when
//!   it ends delivered with `signed_by` or `delivery_location_type`.
//! - `code` = the subtag (e.g. `Exception_013`), `text` = the carrier message; `data.status`
//!   = the tag, `subtag_message`, `raw_tag` (the carrier's own status), `courier` when a
//!   checkpoint comes from another carrier (hand-over to last mile). The current draft
//!   adds `estimated_delivery` (`latest_estimated_delivery.datetime`, else the carrier's
//!   `courier_estimated_delivery_date`), `_min`/`_max`/`_source`, `tracking_url`, and on
//!   delivery `signed_by`, `delivery_location_type`, `signature_requirement`. AfterShip's
//!   Tracking model has no POD photo.
//! - Subject `trk:<slug>:<tracking_number>`; refs `tracking`, `carrier` (slug), `tracker`
//!   (AfterShip tracking id), `order` (`order_number`) and `order_id` when present.
//!
//! Known quirks:
//! - The `Exception` tag folds customs holds, refusals, damage, loss and returns together;
//!   only the subtag tells them apart, so the subtag decides the canonical type
//!   (`Exception_004` → `shipment.delayed`, `_006` → `.on_hold`, `_010` →
//!   `.return_initiated`, `_011` → `.returned`, …).
//! - `Exception_016`–`_021` were added on 2026-03-27 (EVENTS.md knew `_016/_017/_018`; the
//!   help center also lists `_019` late flight, `_020` cancelled, `_021` disposed). `_020`
//!   maps to `shipment.exception`, not the terminal `shipment.cancelled`: cancellation is
//!   owned by the booking side. Any later subtag maps to its tag with reason `unknown`.
//! - `OutForDelivery` is "about to deliver, or ready to pickup" per AfterShip: mapped to
//!   `shipment.out_for_delivery` (same rank as `available_for_pickup`, so no harm).
//! - `Pending_002`…`_006` appear in AfterShip's SDK enums without published meanings; they
//!   map like `Pending` (`shipment.label_created`, as EVENTS.md's table says for Pending).
//! - `Expired` (no information for 30 days) is EVENTS.md's `tracking.stale`, a monitor, not
//!   an event: no draft.
//! - `checkpoint_time` is in the checkpoint's zone and may come without one; such times are
//!   read as UTC and flagged (`data.time_zone = "assumed_utc"`, `data.raw_time`).

mod mapping;
#[cfg(test)]
mod tests;
mod wire;

pub use crate::carrier::map_error::MapError;
pub use crate::carrier::signature::CarrierSignatureError;
pub use waybill_engine::partner::Mapped;

use crate::carrier::map_error::{content_key, parse_json, Partner};
use crate::carrier::signature::{digest_matches, hmac_sha256, single_header};
use crate::carrier::tracking_key::{normalize_carrier, tracking_key};
use crate::carrier::updates::{into_drafts, non_blank};
use base64::Engine;
use std::collections::BTreeMap;
use time::OffsetDateTime;

pub(crate) const P: Partner = crate::carrier::partner!("aftership");

/// The signature header (matched case-insensitively).
pub const SIGNATURE_HEADER: &str = "aftership-hmac-sha256";

/// Checks `aftership-hmac-sha256` against the raw `body` and the webhook `secret`.
pub fn verify(
    headers: &[(String, String)],
    body: &[u8],
    secret: &str,
) -> Result<(), CarrierSignatureError> {
    if secret.is_empty() {
        return Err(CarrierSignatureError::EmptySecret);
    }
    let value = single_header(headers, SIGNATURE_HEADER)?;
    let received = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| CarrierSignatureError::Malformed {
            header: SIGNATURE_HEADER,
            reason: "not base64",
        })?;
    if received.len() != 32 {
        return Err(CarrierSignatureError::Malformed {
            header: SIGNATURE_HEADER,
            reason: "digest is not 32 bytes",
        });
    }
    if digest_matches(&received, &hmac_sha256(secret.as_bytes(), body)) {
        Ok(())
    } else {
        Err(CarrierSignatureError::Mismatch)
    }
}

/// Maps one AfterShip webhook body to drafts. `received_at` is when the hub received it;
/// checkpoints dated more than five minutes after it are flagged `data.time_after_receipt`.
pub fn map(body: &[u8], received_at: OffsetDateTime) -> Result<Mapped, MapError> {
    let head: wire::WebhookHead = parse_json(P, body)?;
    let payload_key = match non_blank(head.event_id.as_deref()) {
        Some(id) => id.to_owned(),
        None => content_key(body),
    };
    let hook: wire::Webhook = parse_json(P, body)?;
    let Some(t) = hook.msg else {
        // No tracking in it: nothing to record (unknown future event types included).
        return match non_blank(hook.event.as_deref()) {
            Some(e) if e.starts_with("tracking_") || e == "edd_revise" => {
                Err(MapError::missing(P, "msg"))
            }
            _ => Ok(Mapped {
                payload_key,
                drafts: Vec::new(),
            }),
        };
    };
    let slug = non_blank(t.slug.as_deref()).ok_or_else(|| MapError::missing(P, "msg.slug"))?;
    let tracking = non_blank(t.tracking_number.as_deref())
        .ok_or_else(|| MapError::missing(P, "msg.tracking_number"))?;
    let subject = tracking_key(slug, tracking)
        .map_err(|e| MapError::bad_tracking_key(P, &e, "msg.slug", "msg.tracking_number"))?;
    let mut refs = BTreeMap::new();
    refs.insert("tracking".to_owned(), tracking.trim().to_owned());
    refs.insert("carrier".to_owned(), normalize_carrier(slug));
    for (name, value) in [
        ("tracker", &t.id),
        ("order", &t.order_number),
        ("order_id", &t.order_id),
    ] {
        if let Some(v) = non_blank(value.as_deref()) {
            refs.insert(name.to_owned(), v.to_owned());
        }
    }
    let base = non_blank(t.id.as_deref()).unwrap_or(&subject).to_owned();
    let mut updates = mapping::updates(&t, &base)?;
    crate::carrier::updates::flag_after_receipt(&mut updates, received_at);
    Ok(Mapped {
        payload_key,
        drafts: into_drafts(&subject, &refs, updates),
    })
}

#[cfg(test)]
pub(crate) use mapping::classify;
#[cfg(test)]
pub(crate) use wire::{Subtag, Tag};

/// AfterShip as a [`crate::carrier::CarrierFormat`].
pub struct AfterShip;

impl crate::carrier::CarrierFormat for AfterShip {
    fn partner(&self) -> Partner {
        P
    }

    fn display_name(&self) -> &'static str {
        "AfterShip"
    }

    fn signature_header(&self) -> &'static str {
        SIGNATURE_HEADER
    }

    fn verify(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        secret: &str,
    ) -> Result<(), CarrierSignatureError> {
        verify(headers, body, secret)
    }

    fn map(&self, body: &[u8], received_at: OffsetDateTime) -> Result<Mapped, MapError> {
        map(body, received_at)
    }

    /// The base64 of HMAC-SHA256(body) keyed with the secret.
    fn sign(&self, body: &[u8], secret: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), body))
    }
}
