//! Karrio tracker → canonical drafts (EVENTS.md §2.2, column Karrio; Karrio's incident
//! reasons are already the normalized reason family and pass through).

use super::wire::{Event, Reason, Status, Tracker};
use crate::carrier::map_error::{MapError, Partner};
use crate::carrier::timestamps::{self, CarrierTime};
use crate::carrier::updates::{self, location, non_blank, time_part, Update};
use serde_json::Value;
use waybill_model::EventType;

const P: Partner = super::P;

/// Canonical type (none: nothing to record) and normalized reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    /// Canonical type; `None` for `unknown` (or no status) without an incident reason.
    pub ty: Option<EventType>,
    /// Normalized reason.
    pub reason: Option<&'static str>,
}

/// The reason as Waybill records it: Karrio's own value, `unknown` for one we do not know.
fn reason_of(reason: Option<&Reason>) -> Option<&'static str> {
    match reason.filter(|r| !r.is_blank())? {
        Reason::Other(_) => Some("unknown"),
        known => Reason::KNOWN.iter().copied().find(|k| *k == known.as_str()),
    }
}

/// Maps `status` + incident `reason`. Karrio has no "exception" status (EVENTS.md: "—
/// (reason only)"): an incident reason on a status that says nothing is wrong (`pending`,
/// `picked_up`, `in_transit`, `unknown`, none) makes the event a `shipment.exception`.
/// Later milestones (`out_for_delivery`, `ready_for_pickup`, `delivered`, `cancelled`) keep
/// their type and carry the reason. Never fails.
pub(crate) fn classify(status: Option<&Status>, reason: Option<&Reason>) -> Class {
    use EventType as T;
    let reason = reason_of(reason);
    let status = status.filter(|s| !s.is_blank());
    let early = |ty| match reason {
        Some(_) => Class {
            ty: Some(T::ShipmentException),
            reason,
        },
        None => Class { ty, reason },
    };
    let keep = |ty| Class {
        ty: Some(ty),
        reason,
    };
    match status {
        None | Some(Status::Unknown) => early(None),
        Some(Status::Pending) => early(Some(T::ShipmentLabelCreated)),
        Some(Status::PickedUp) => early(Some(T::ShipmentDispatched)),
        Some(Status::InTransit) => early(Some(T::ShipmentInTransit)),
        Some(Status::OutForDelivery) => keep(T::ShipmentOutForDelivery),
        Some(Status::ReadyForPickup) => keep(T::ShipmentAvailableForPickup),
        Some(Status::Delivered) => keep(T::ShipmentDelivered),
        Some(Status::Cancelled) => keep(T::ShipmentCancelled),
        Some(Status::DeliveryFailed) => keep(T::ShipmentDeliveryAttempted),
        Some(Status::DeliveryDelayed) => keep(T::ShipmentDelayed),
        Some(Status::OnHold) => keep(T::ShipmentOnHold),
        Some(Status::ReturnToSender) => keep(T::ShipmentReturnInitiated),
        Some(Status::Other(_)) => Class {
            ty: Some(T::ShipmentException),
            reason: reason.or(Some("unknown")),
        },
    }
}

/// Every update of one tracker: scans (chronological), current status, POD.
pub(crate) fn updates(t: &Tracker, base: &str) -> Result<Vec<Update>, MapError> {
    let mut scans = Vec::new();
    let mut moved = false;
    for (i, e) in t.events.iter().flatten().enumerate() {
        let (time, raw) = event_time(e, &format!("data.events[{i}]"))?;
        let class = classify(e.status.as_ref(), e.reason.as_ref());
        moved |= e.status.as_ref().is_some_and(is_moving);
        let u = match class.ty {
            Some(ty) => scan(e, ty, class.reason, time, raw.as_deref(), base),
            // No status to classify: typed by `infer` once the history is in order.
            None => {
                let mut u = scan(
                    e,
                    EventType::ShipmentInTransit,
                    None,
                    time,
                    raw.as_deref(),
                    base,
                );
                u.data.insert(INFERRED.into(), Value::Bool(true));
                u.type_inferred = true;
                u
            }
        };
        scans.push(u);
    }
    updates::sort_chronologically(&mut scans);
    let tracker = t.status.as_ref().filter(|s| !s.is_blank());
    infer(&mut scans, tracker, moved || tracker.is_some_and(is_moving));
    if let Some(current) = current(t, &scans, base) {
        updates::settle_current(&mut scans, current);
    }
    updates::apply_return_leg(&mut scans);
    if let Some(pod) = scans.last().and_then(|last| pod(t, last, base)) {
        scans.push(pod);
    }
    Ok(scans)
}

/// `data` flag of a scan whose canonical type was inferred (the carrier gave no status).
const INFERRED: &str = "status_inferred";

/// A status that says the carrier has the parcel (`pending`, `unknown`, `cancelled` and
/// values this version does not know say nothing of the kind).
fn is_moving(s: &Status) -> bool {
    match s {
        Status::PickedUp
        | Status::InTransit
        | Status::OnHold
        | Status::DeliveryDelayed
        | Status::OutForDelivery
        | Status::ReadyForPickup
        | Status::DeliveryFailed
        | Status::Delivered
        | Status::ReturnToSender => true,
        Status::Pending | Status::Unknown | Status::Cancelled | Status::Other(_) => false,
    }
}

/// Types the scans that carry no status (nor incident reason), in chronological order:
/// - the newest timed scan takes the tracker's status (it is the current status), unless
///   another scan states that status itself or the tracker's status is `unknown`;
/// - the tracker's oldest scan is `shipment.label_created` (what carriers record first is
///   the shipment information), as is every other one while nothing says the parcel has
///   moved (`moved`: the tracker or a scan is past `pending`);
/// - any other is `shipment.in_transit`.
///
/// Each keeps `data.status_inferred = true`. The rule reads one webhook only: a scan that
/// took the tracker's status while it was the newest is typed by the later rules once
/// newer scans arrive; its identity leaves the inferred type out, so it stays one event,
/// recorded with the type of the webhook that first carried it.
fn infer(scans: &mut [Update], tracker: Option<&Status>, moved: bool) {
    let stated = |s: &Status| {
        scans
            .iter()
            .any(|u| !u.data.contains_key(INFERRED) && has_status(u, s.as_str()))
    };
    let current = tracker.filter(|s| !stated(s)).and_then(|s| {
        let class = classify(Some(s), None);
        class.ty.map(|ty| (s, ty, class.reason))
    });
    let newest = scans.iter().rposition(|u| u.time.is_some());
    for (i, u) in scans.iter_mut().enumerate() {
        if !u.data.contains_key(INFERRED) {
            continue;
        }
        match current {
            Some((status, ty, reason)) if Some(i) == newest => {
                u.ty = ty;
                u.reason = reason.map(str::to_owned);
                u.data.insert("status".into(), Value::from(status.as_str()));
            }
            _ if i == 0 || !moved => u.ty = EventType::ShipmentLabelCreated,
            _ => u.ty = EventType::ShipmentInTransit,
        }
    }
}

fn has_status(u: &Update, status: &str) -> bool {
    u.data.get("status").and_then(Value::as_str) == Some(status)
}

/// `timestamp` when present, else `date` + `time`; neither is fine (no time).
fn event_time(e: &Event, path: &str) -> Result<(Option<CarrierTime>, Option<String>), MapError> {
    let bad = |field: &str, value: &str| MapError::BadTime {
        partner: P,
        path: format!("{path}.{field}"),
        value: value.to_owned(),
    };
    if let Some(ts) = non_blank(e.timestamp.as_deref()) {
        return match timestamps::parse(ts) {
            Some(t) => Ok((Some(t), Some(ts.to_owned()))),
            None => Err(bad("timestamp", ts)),
        };
    }
    let Some(date) = non_blank(e.date.as_deref()) else {
        return Ok((None, None));
    };
    let clock = non_blank(e.time.as_deref());
    let raw = clock.map_or_else(|| date.to_owned(), |c| format!("{date} {c}"));
    match timestamps::parse_date_and_clock(date, clock) {
        Some(t) => Ok((Some(t), Some(raw))),
        None => Err(bad("date", date)),
    }
}

fn status_str(s: Option<&Status>) -> &str {
    s.filter(|x| !x.is_blank()).map_or("-", Status::as_str)
}

fn scan(
    e: &Event,
    ty: EventType,
    reason: Option<&'static str>,
    time: Option<CarrierTime>,
    raw: Option<&str>,
    base: &str,
) -> Update {
    let code = non_blank(e.code.as_deref());
    let key = format!(
        "{base}:{}:{}:{}",
        time_part(time.as_ref()),
        status_str(e.status.as_ref()),
        code.unwrap_or("-")
    );
    let coords = e.latitude.zip(e.longitude);
    let mut u = Update::new(ty, key).at(time, raw).with(
        "status",
        non_blank(Some(status_str(e.status.as_ref()))).filter(|s| *s != "-"),
    );
    u.reason = reason.map(str::to_owned);
    u.code = code.map(str::to_owned);
    u.text = non_blank(e.description.as_deref()).map(str::to_owned);
    u.location = location(&[("text", e.location.as_deref())], coords);
    u
}

/// The tracker's own status, at the latest event with that status (Karrio's serializer has
/// no update time: with no such event, the draft has no time and takes the receive time).
fn current(t: &Tracker, scans: &[Update], base: &str) -> Option<Update> {
    let status = t.status.as_ref().filter(|s| !s.is_blank())?;
    let class = classify(Some(status), None);
    let ty = class.ty?;
    let same = |u: &&Update| u.data.get("status") == Some(&Value::from(status.as_str()));
    let latest = scans.iter().rev().find(same);
    let time = latest.and_then(|u| u.time.clone());
    let key = format!("{base}:current:{}", status.as_str());
    let info = t.info.as_ref();
    let mut u = Update::new(ty, key)
        .with("status", Some(status.as_str()))
        .with("estimated_delivery", t.estimated_delivery.as_deref())
        .with("service", info.and_then(|i| i.shipment_service.as_deref()))
        .with(
            "tracking_url",
            info.and_then(|i| i.carrier_tracking_link.as_deref()),
        );
    u.time = time;
    u.raw_time = latest.and_then(|l| l.raw_time.clone());
    u.reason = latest
        .and_then(|l| l.reason.clone())
        .or_else(|| class.reason.map(str::to_owned));
    u.code = latest.and_then(|l| l.code.clone());
    if ty == EventType::ShipmentDelivered {
        u = pod_details(u, t);
    }
    if t.test_mode == Some(true) {
        u.data.insert("test_mode".into(), Value::Bool(true));
    }
    Some(u)
}

fn pod_details(u: Update, t: &Tracker) -> Update {
    u.with(
        "signed_by",
        t.info.as_ref().and_then(|i| i.signed_by.as_deref()),
    )
    .with("photo_url", t.delivery_image_url.as_deref())
    .with("signature_url", t.signature_image_url.as_deref())
}

/// `pod.captured` when the tracker ends delivered with a signer, photo or signature image.
fn pod(t: &Tracker, last: &Update, base: &str) -> Option<Update> {
    if last.ty != EventType::ShipmentDelivered || !last.current {
        return None;
    }
    let u = pod_details(
        Update::new(EventType::PodCaptured, format!("{base}:pod")),
        t,
    );
    if u.data.is_empty() {
        return None;
    }
    Some(Update {
        time: last.time.clone(),
        raw_time: last.raw_time.clone(),
        ..u
    })
}
