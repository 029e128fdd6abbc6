//! Karrio — an open-source multi-carrier shipping platform (self-hosted or cloud) with a
//! REST API and webhooks. Docs: <https://docs.karrio.io> (guides `reference/guides/webhooks`,
//! `reference/guides/trackers`); behaviour read from the source, github.com/karrioapi/karrio
//! (EVENTS.md \[K1\]–\[K8\]; 2026.1: `karrio.server.events.signals`,
//! `…events.task_definitions.base.webhook`).
//!
//! Direction: inbound webhooks, in two shapes:
//! - as Karrio's server posts them: `{"event": "<type>", "data": <object>}`;
//! - as Karrio's documentation shows them (its stored Event): `{"id": "evt_…", "type":
//!   "<type>", "data": <object>, "test_mode", "pending_webhooks", "created_at"}`.
//!
//! The type is read from `event`, else `type`; `_` or `.` spellings (`tracker.updated`).
//! Mapped: `tracker_created`, `tracker_updated` (fired when a tracker's `status` or
//! `events` change), `shipment_purchased`, `shipment_cancelled`, `shipment_fulfilled`.
//! Everything else (`order_*`, `batch_*`, `pickup_*`, `shipment_out_for_delivery`,
//! `shipment_needs_attention`, `shipment_delivery_failed`, which repeat a tracker change
//! that `tracker_updated` carries with the scan's own time) maps to no drafts.
//!
//! Signature: none. Karrio sends the endpoint's secret itself in the `X-Event-Id` header
//! (\[K4\]; its docs: "the `secret` field is added to the request header `X-Event-Id:
//! <secret>` to serve as a signature"). [`verify`] compares it with the configured secret
//! in constant time (both hashed first, so the secret's length does not leak). Nothing
//! binds the header to the body: anyone who sees one request (a logging proxy) can forge
//! others, so the endpoint must be HTTPS-only and the header never logged.
//!
//! Idempotency key: the documented shape's `id` (`evt_…`); the server's shape has none, so
//! the SHA-256 of the canonical JSON (`sha256:…`). Karrio's retries (5 task retries, 60 s
//! apart) re-send the same serialized payload, hence the same key; a real change to the
//! tracker changes the body and so the key. The `id` is kept as `data.karrio_event_id` on
//! every draft, never in a draft's key: a scan is identified by its fact (type, time,
//! code, place: `waybill_model::fact_key`), whichever webhook repeats it.
//!
//! Trackers (EVENTS.md §2.2, column Karrio; every status and reason in
//! carrier-status-table.md):
//! - Every scan in `events` is one draft, in chronological order, timed by the scan
//!   (`timestamp`, else `date` + `time`), never by the webhook's arrival: `code` = the
//!   carrier's raw code, `text` = its description, `location` = `{text, latitude,
//!   longitude}`, `reason` = Karrio's incident reason as is (the family EVENTS.md adopts;
//!   unknown values become `unknown`), `data.status` = the scan's status.
//! - A scan with a status (or an incident reason) is typed by it (`classify`). A scan
//!   without either (many carrier integrations set no per-event status; `unknown` counts as
//!   none) gets `data.status_inferred = true` and a type by this rule: the newest timed scan
//!   takes the tracker's status (it is the current status) unless another scan states that
//!   status or the tracker's is `unknown`; the tracker's oldest scan is
//!   `shipment.label_created` (carriers first record the shipment information), as is any
//!   other while nothing says the parcel has moved (neither the tracker nor a scan is past
//!   `pending`); any other is `shipment.in_transit`. The rule sees one webhook: a scan that
//!   took a status other than `in_transit` while it was the newest (`picked_up`,
//!   `out_for_delivery`, …) is, in later webhooks, `shipment.in_transit`. An inferred
//!   scan is therefore identified by its time, code and place only
//!   (`waybill_model::untyped_fact_key`): one event, of the type it first arrived with.
//! - The tracker's current status is the scan it repeats (same status, that scan's time;
//!   `updates::settle_current`), which then also carries `estimated_delivery`,
//!   `service`, `tracking_url`, `test_mode` (true for test-mode trackers: consumers should
//!   not drive real shipments from them), and on delivery `signed_by`, `photo_url`,
//!   `signature_url` (Karrio serves the images at those URLs). With no such scan it is one
//!   event keyed `trk_…:current:<status>`, without time (the hub's receive time).
//! - `pod.captured` when it ends delivered with a signer, a delivery photo or a signature
//!   image.
//! - Subject `trk:<carrier_name>:<tracking_number>`; refs `tracking`, `carrier`, `tracker`
//!   (`trk_…`), `karrio_carrier_id` (the configured connection).
//!
//! Shipments (the `Shipment` object; same subject, so they land on the tracker's shipment;
//! refs add `karrio_shipment` = `shp_…` and `tracker` = its `tracker_id`):
//! - `shipment_purchased` (the label was bought) → `shipment.label_created` with `service`,
//!   `label_type`, `label_url`, `tracking_url`, `rate` `{amount, currency}` (the selected
//!   rate's total, a decimal string) and `status`; never the label's bytes.
//! - `shipment_cancelled` (label voided, or shipment deleted) → `shipment.cancelled`; a
//!   deleted draft without a tracking number maps to nothing.
//! - `shipment_fulfilled` → `shipment.in_transit`: Karrio fires it when the shipment's
//!   status becomes `in_transit` (moved there from its tracker), not on delivery; a
//!   delivered tracker sends `tracker_updated` only.
//! - Time: `updated_at` if present (Karrio 2026.1 sends none), else `created_at` for a
//!   purchase (bought when or soon after it was created), else none (the receive time: a
//!   cancellation is not dated by the day the shipment was drafted). Untimed shipment
//!   events are keyed `<shp_…>:<event type>`, one per shipment.
//!
//! Known quirks:
//! - The secret travels in a header named like an id (`X-Event-Id`); it is not an event id.
//! - `timestamp` is the carrier's wall-clock time formatted with a literal `Z` (Karrio's
//!   `fiso_timestamp` drops any offset), so it is only as UTC as the carrier's local zone;
//!   we cannot recover the zone and take it as sent. Events dated after receipt are flagged
//!   `data.time_after_receipt`. `time` may be `14:30 PM` (`%H:%M %p`). A shipment's
//!   `created_at` is Python's `str(datetime)`, `2026-03-02 09:12:31.402215+00:00`.
//! - `return_to_sender` covers returning and returned (as EasyPost's): it maps to
//!   `shipment.return_initiated`, and a later `delivered` event is the return delivery
//!   (`shipment.returned`).
//! - Karrio has no exception status: an incident `reason` on `pending`/`picked_up`/
//!   `in_transit`/`unknown` (or no status) makes a `shipment.exception` with that reason.
//! - A tracker whose status is `unknown` (also set when Karrio retires a tracker after 90
//!   days, \[K6\]) is EVENTS.md's `tracking.stale`: no current-status draft. An unknown
//!   future status maps to `shipment.exception` with reason `unknown`.

pub mod booking;
mod mapping;
mod shipment;
#[cfg(test)]
mod tests;
mod wire;

pub use crate::carrier::map_error::MapError;
pub use crate::carrier::signature::CarrierSignatureError;
pub use waybill_engine::partner::Mapped;

use crate::carrier::map_error::{content_key, parse_json, Partner};
use crate::carrier::signature::{secrets_match, single_header};
use crate::carrier::tracking_key::{normalize_carrier, tracking_key};
use crate::carrier::updates::{flag_after_receipt, into_drafts, non_blank, Update};
use serde_json::Value;
use shipment::ShipmentEvent;
use std::collections::BTreeMap;
use time::OffsetDateTime;

pub(crate) const P: Partner = crate::carrier::partner!("karrio");

/// The header that carries the shared secret (matched case-insensitively).
pub const SECRET_HEADER: &str = "x-event-id";

/// What an event type carries, as far as the hub is concerned.
enum Kind {
    /// `tracker_created`, `tracker_updated`: a tracker.
    Tracker,
    /// A shipment event the hub records.
    Shipment(ShipmentEvent),
    /// Anything else (`order_*`, `batch_*`, `pickup_*`, other `shipment_*`): no drafts.
    Other,
}

impl Kind {
    /// Karrio's event type, spelled with `_` (its server) or `.`.
    fn of(event: &str) -> Kind {
        match event.trim().to_ascii_lowercase().replace('.', "_").as_str() {
            "tracker_created" | "tracker_updated" => Kind::Tracker,
            "shipment_purchased" => Kind::Shipment(ShipmentEvent::Purchased),
            "shipment_cancelled" => Kind::Shipment(ShipmentEvent::Cancelled),
            "shipment_fulfilled" => Kind::Shipment(ShipmentEvent::Fulfilled),
            _ => Kind::Other,
        }
    }
}

/// One shipment's updates, with the subject and refs every draft gets.
struct Parts {
    subject: String,
    refs: BTreeMap<String, String>,
    updates: Vec<Update>,
}

/// Checks that `X-Event-Id` carries the configured webhook `secret` (the body is not
/// signed by Karrio, so it is not used).
pub fn verify(
    headers: &[(String, String)],
    _body: &[u8],
    secret: &str,
) -> Result<(), CarrierSignatureError> {
    if secret.is_empty() {
        return Err(CarrierSignatureError::EmptySecret);
    }
    let value = single_header(headers, SECRET_HEADER)?;
    if value.is_empty() {
        return Err(CarrierSignatureError::Malformed {
            header: SECRET_HEADER,
            reason: "empty",
        });
    }
    if secrets_match(value, secret) {
        Ok(())
    } else {
        Err(CarrierSignatureError::Mismatch)
    }
}

/// Maps one Karrio webhook body, in either shape, to drafts. `received_at` is when the
/// hub received it; events dated more than five minutes after it are flagged
/// `data.time_after_receipt`.
pub fn map(body: &[u8], received_at: OffsetDateTime) -> Result<Mapped, MapError> {
    let head: wire::WebhookHead = parse_json(P, body)?;
    let event_id = non_blank(head.id.as_deref()).map(str::trim);
    let payload_key = event_id.map_or_else(|| content_key(body), str::to_owned);
    let event = non_blank(head.event.as_deref())
        .or_else(|| non_blank(head.kind.as_deref()))
        .ok_or_else(|| MapError::missing(P, "event"))?;
    let parts = match Kind::of(event) {
        Kind::Tracker => Some(tracker(body, head.test_mode)?),
        Kind::Shipment(e) => shipment(body, e)?,
        Kind::Other => None,
    };
    let Some(Parts {
        subject,
        refs,
        mut updates,
    }) = parts
    else {
        return Ok(Mapped {
            payload_key,
            drafts: Vec::new(),
        });
    };
    flag_after_receipt(&mut updates, received_at);
    if let Some(id) = event_id {
        for u in &mut updates {
            u.data.insert("karrio_event_id".into(), Value::from(id));
        }
    }
    Ok(Mapped {
        payload_key,
        drafts: into_drafts(&subject, &refs, updates),
    })
}

/// A `tracker_*` event: every scan, the current status, proof of delivery.
fn tracker(body: &[u8], envelope_test_mode: Option<bool>) -> Result<Parts, MapError> {
    let hook: wire::TrackerWebhook = parse_json(P, body)?;
    let mut t = hook.data.ok_or_else(|| MapError::missing(P, "data"))?;
    t.test_mode = t.test_mode.or(envelope_test_mode);
    let (subject, mut refs) = subject(t.carrier_name.as_deref(), t.tracking_number.as_deref())?;
    for (name, value) in [("tracker", &t.id), ("karrio_carrier_id", &t.carrier_id)] {
        if let Some(v) = non_blank(value.as_deref()) {
            refs.insert(name.to_owned(), v.trim().to_owned());
        }
    }
    let base = non_blank(t.id.as_deref()).unwrap_or(&subject).to_owned();
    let updates = mapping::updates(&t, &base)?;
    Ok(Parts {
        subject,
        refs,
        updates,
    })
}

/// A shipment event; `None` for a shipment without a tracking number that is cancelled
/// (a draft deleted before it had a label: nothing the hub tracks).
fn shipment(body: &[u8], event: ShipmentEvent) -> Result<Option<Parts>, MapError> {
    let hook: wire::ShipmentWebhook = parse_json(P, body)?;
    let s = hook.data.ok_or_else(|| MapError::missing(P, "data"))?;
    if event == ShipmentEvent::Cancelled && non_blank(s.tracking_number.as_deref()).is_none() {
        return Ok(None);
    }
    let (subject, mut refs) = subject(s.carrier_name.as_deref(), s.tracking_number.as_deref())?;
    for (name, value) in [
        ("karrio_shipment", &s.id),
        ("tracker", &s.tracker_id),
        ("karrio_carrier_id", &s.carrier_id),
    ] {
        if let Some(v) = non_blank(value.as_deref()) {
            refs.insert(name.to_owned(), v.trim().to_owned());
        }
    }
    let base = non_blank(s.id.as_deref()).unwrap_or(&subject).to_owned();
    let update = shipment::update(&s, event, &base)?;
    Ok(Some(Parts {
        subject,
        refs,
        updates: vec![update],
    }))
}

/// `trk:<carrier_name>:<tracking_number>` and the refs `tracking` and `carrier`.
fn subject(
    carrier: Option<&str>,
    tracking: Option<&str>,
) -> Result<(String, BTreeMap<String, String>), MapError> {
    let carrier = non_blank(carrier).ok_or_else(|| MapError::missing(P, "data.carrier_name"))?;
    let tracking =
        non_blank(tracking).ok_or_else(|| MapError::missing(P, "data.tracking_number"))?;
    let subject = tracking_key(carrier, tracking).map_err(|e| {
        MapError::bad_tracking_key(P, &e, "data.carrier_name", "data.tracking_number")
    })?;
    let mut refs = BTreeMap::new();
    refs.insert("tracking".to_owned(), tracking.trim().to_owned());
    refs.insert("carrier".to_owned(), normalize_carrier(carrier));
    Ok((subject, refs))
}

#[cfg(test)]
pub(crate) use mapping::classify;
#[cfg(test)]
pub(crate) use wire::{Reason, Status};

/// Karrio as a [`crate::carrier::CarrierFormat`].
pub struct Karrio;

impl crate::carrier::CarrierFormat for Karrio {
    fn partner(&self) -> Partner {
        P
    }

    fn display_name(&self) -> &'static str {
        "Karrio"
    }

    fn signature_header(&self) -> &'static str {
        SECRET_HEADER
    }

    fn header_is_secret(&self) -> bool {
        true
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

    /// The secret itself: Karrio signs nothing.
    fn sign(&self, _body: &[u8], secret: &str) -> String {
        secret.to_owned()
    }
}
