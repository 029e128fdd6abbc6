//! EasyPost — a shipping API and carrier aggregator (labels, rates, and tracking for 100+
//! carriers). Docs: <https://docs.easypost.com/docs/trackers>,
//! <https://docs.easypost.com/docs/events>, <https://docs.easypost.com/guides/webhooks-guide>.
//!
//! Direction: inbound tracking webhooks. EasyPost POSTs an `Event` for every change of a
//! `Tracker` (`tracker.created`, `tracker.updated`); the same webhook URL also receives
//! every other event type (batches, refunds, insurance, …), which [`map`] accepts and maps
//! to no drafts. Delivery is at-least-once with retries over ~24 h, so duplicates happen.
//!
//! Signature: `X-Hmac-Signature: hmac-sha256-hex=<hex>` = HMAC-SHA256 over the raw body,
//! keyed with the webhook secret NFKD-normalized and UTF-8 encoded (as the official client
//! libraries do; a secret with `é` differs between NFC and NFKD). No timestamp is signed,
//! so there is no replay window to check. See [`verify`].
//!
//! Idempotency key: the Event `id` (`evt_…`), the same across EasyPost's retries; if it is
//! missing, the SHA-256 of the canonical JSON (`sha256:…`).
//!
//! Mapping (EVENTS.md §2.2, column EasyPost; every status and detail in STATUS_TABLE.md):
//! - Each payload carries the tracker's whole history (`tracking_details`, oldest first).
//!   Every scan becomes a draft keyed `trk_…:<UTC time>:<status>:<status_detail>`, plus one
//!   draft for the tracker's current status (`trk_…:current:…`), plus `pod.captured` when
//!   the tracker ends delivered with a `signed_by`. Repeating the history in every payload
//!   is deliberate: a missed webhook's milestone still arrives with the next one.
//! - `code` = `status_detail` (or `status` when there is none), `text` = the carrier message;
//!   `data.status` = the EasyPost status, `data.carrier_code` = the carrier's own code; the
//!   current-status draft adds `estimated_delivery` (`est_delivery_date`),
//!   `estimated_delivery_local`, `guaranteed_delivery`, `service`, `tracking_url`, and on
//!   delivery `signed_by`. EasyPost exposes no POD photo.
//! - Subject: `trk:<carrier lowercased>:<tracking_code>`; refs `tracking`, `carrier`,
//!   `tracker` (`trk_…`) and `easypost_shipment` (`shp_…`) when present.
//!
//! Known quirks:
//! - `failure` is not terminal: EasyPost's FAQ asks whether a weather `failure` goes back
//!   to `in_transit` (it does). It maps to flags (`shipment.delayed`, `.on_hold`,
//!   `.delivery_attempted`, `.exception`) chosen by `status_detail`, never to a milestone.
//! - `return_to_sender` covers both "returning" and "returned": it maps to
//!   `shipment.return_initiated`, and a `delivered` scan after it is the delivery back to
//!   the sender, so it maps to `shipment.returned` (never `shipment.delivered`, which could
//!   release an invoice). `is_return: true` trackers (return labels) map normally.
//! - The first `in_transit` scan maps to `shipment.dispatched` (hand-over), later ones to
//!   `shipment.in_transit`.
//! - `unknown` and `error` are "no tracking information" (EVENTS.md: `tracking.stale`, a
//!   monitor, not an event): no draft. An unknown future status maps to
//!   `shipment.exception` with reason `unknown` (a flag that asks a person to look, never a
//!   milestone that could be wrong); an unknown `status_detail` keeps its status's mapping
//!   with reason `unknown`.
//! - Time zones: EasyPost gives a scan its local offset only when it could geocode the
//!   location, else UTC; a datetime without any zone is read as UTC and flagged
//!   (`data.time_zone = "assumed_utc"`, `data.raw_time`), see `carrier::timestamps`.
//! - Carrier names are EasyPost's (`FedEx`, `DHLExpress`), lowercased in the subject.
//! - The Node client library rewrites `"weight": 136` to `136.0` before checking the HMAC
//!   because JavaScript re-serialization loses the `.0`; we always verify the raw bytes as
//!   received, which is what EasyPost signed.

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
use std::collections::BTreeMap;
use time::OffsetDateTime;
use unicode_normalization::UnicodeNormalization;

pub(crate) const P: Partner = crate::carrier::partner!("easypost");

/// The signature header (matched case-insensitively).
pub const SIGNATURE_HEADER: &str = "x-hmac-signature";

/// What precedes the hex digest in the header value.
pub const SIGNATURE_PREFIX: &str = "hmac-sha256-hex=";

/// Checks `X-Hmac-Signature` against the raw `body` and the webhook `secret`.
pub fn verify(
    headers: &[(String, String)],
    body: &[u8],
    secret: &str,
) -> Result<(), CarrierSignatureError> {
    if secret.is_empty() {
        return Err(CarrierSignatureError::EmptySecret);
    }
    let value = single_header(headers, SIGNATURE_HEADER)?;
    let malformed = |reason| CarrierSignatureError::Malformed {
        header: SIGNATURE_HEADER,
        reason,
    };
    let digest_hex = value
        .get(..SIGNATURE_PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(SIGNATURE_PREFIX))
        .and_then(|_| value.get(SIGNATURE_PREFIX.len()..))
        .ok_or_else(|| malformed("expected `hmac-sha256-hex=<hex>`"))?;
    let received = hex::decode(digest_hex).map_err(|_| malformed("digest is not hexadecimal"))?;
    if received.len() != 32 {
        return Err(malformed("digest is not 32 bytes"));
    }
    let key: String = secret.nfkd().collect();
    if digest_matches(&received, &hmac_sha256(key.as_bytes(), body)) {
        Ok(())
    } else {
        Err(CarrierSignatureError::Mismatch)
    }
}

/// Maps one EasyPost webhook body to drafts. `received_at` is when the hub received it;
/// scans dated more than five minutes after it are flagged `data.time_after_receipt`
/// (usually a local time labelled as UTC).
pub fn map(body: &[u8], received_at: OffsetDateTime) -> Result<Mapped, MapError> {
    let head: wire::EventHead = parse_json(P, body)?;
    let payload_key = match non_blank(head.id.as_deref()) {
        Some(id) => id.to_owned(),
        None => content_key(body),
    };
    let is_tracker = head
        .description
        .as_deref()
        .is_some_and(|d| d.starts_with("tracker."))
        || head
            .result
            .as_ref()
            .and_then(|r| r.object.as_deref())
            .is_some_and(|o| o == "Tracker");
    if !is_tracker {
        return Ok(Mapped {
            payload_key,
            drafts: Vec::new(),
        });
    }
    let event: wire::TrackerEvent = parse_json(P, body)?;
    let t = event.result.ok_or_else(|| MapError::missing(P, "result"))?;
    let carrier =
        non_blank(t.carrier.as_deref()).ok_or_else(|| MapError::missing(P, "result.carrier"))?;
    let tracking = non_blank(t.tracking_code.as_deref())
        .ok_or_else(|| MapError::missing(P, "result.tracking_code"))?;
    let subject = tracking_key(carrier, tracking)
        .map_err(|e| MapError::bad_tracking_key(P, &e, "result.carrier", "result.tracking_code"))?;
    let mut refs = BTreeMap::new();
    refs.insert("tracking".to_owned(), tracking.trim().to_owned());
    refs.insert("carrier".to_owned(), normalize_carrier(carrier));
    if let Some(id) = non_blank(t.id.as_deref()) {
        refs.insert("tracker".to_owned(), id.to_owned());
    }
    if let Some(shp) = non_blank(t.shipment_id.as_deref()) {
        refs.insert("easypost_shipment".to_owned(), shp.to_owned());
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
pub(crate) use wire::{Status, StatusDetail};

/// EasyPost as a [`crate::carrier::CarrierFormat`].
pub struct EasyPost;

impl crate::carrier::CarrierFormat for EasyPost {
    fn partner(&self) -> Partner {
        P
    }

    fn display_name(&self) -> &'static str {
        "EasyPost"
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

    /// `hmac-sha256-hex=<hex of HMAC-SHA256(body)>`, keyed with the NFKD-normalized secret.
    fn sign(&self, body: &[u8], secret: &str) -> String {
        let secret: String = secret.nfkd().collect();
        let mac = hmac_sha256(secret.as_bytes(), body);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        format!("hmac-sha256-hex={hex}")
    }
}
