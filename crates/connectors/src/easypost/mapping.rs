//! EasyPost tracker → canonical drafts (EVENTS.md §2.2, column EasyPost; decisions where
//! the table is silent are in STATUS_TABLE.md and the module docs of `easypost`).

use super::wire::{Status, StatusDetail, Tracker, TrackingDetail};
use crate::carrier::map_error::{MapError, Partner};
use crate::carrier::timestamps::{self, CarrierTime};
use crate::carrier::updates::{self, location, non_blank, time_part, Update};
use serde_json::Value;
use waybill_model::EventType;

const P: Partner = super::P;

/// Canonical type (none: nothing to record) and normalized reason of one status pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    /// Canonical type; `None` for `unknown`/`error` (EVENTS.md: `tracking.stale`, a
    /// monitor rather than an event).
    pub ty: Option<EventType>,
    /// Normalized reason.
    pub reason: Option<&'static str>,
}

const fn class(ty: EventType, reason: Option<&'static str>) -> Class {
    Class {
        ty: Some(ty),
        reason,
    }
}

/// Maps `status` + `status_detail`. Never fails: unknown values map to their parent (or to
/// `shipment.exception`) with reason `unknown`.
pub(crate) fn classify(status: &Status, detail: Option<&StatusDetail>) -> Class {
    use EventType as T;
    let detail = detail.filter(|d| !d.is_blank());
    let unknown_detail = matches!(detail, Some(StatusDetail::Other(_)));
    let milestone = |ty| class(ty, unknown_detail.then_some("unknown"));
    match status {
        Status::Unknown | Status::Error => Class {
            ty: None,
            reason: None,
        },
        Status::PreTransit => milestone(T::ShipmentLabelCreated),
        Status::InTransit => milestone(T::ShipmentInTransit),
        Status::OutForDelivery => milestone(T::ShipmentOutForDelivery),
        Status::Delivered => milestone(T::ShipmentDelivered),
        Status::AvailableForPickup => milestone(T::ShipmentAvailableForPickup),
        Status::Cancelled => milestone(T::ShipmentCancelled),
        Status::ReturnToSender => class(T::ShipmentReturnInitiated, return_reason(detail)),
        Status::Failure => failure(detail),
        Status::Other(_) => class(T::ShipmentException, Some("unknown")),
    }
}

/// `failure` is a flag, never terminal (EVENTS.md §2.1, EasyPost FAQ on weather).
fn failure(detail: Option<&StatusDetail>) -> Class {
    use EventType as T;
    use StatusDetail as D;
    let Some(d) = detail else {
        return class(T::ShipmentException, None);
    };
    match d {
        D::WeatherDelay => class(T::ShipmentDelayed, Some("weather_delay")),
        D::Missorted => class(T::ShipmentDelayed, Some("carrier_sorting_error")),
        D::Delayed => class(T::ShipmentDelayed, None),
        D::Held | D::AwaitingInformation => class(T::ShipmentOnHold, None),
        D::DeliveryException | D::OutForDelivery => class(T::ShipmentDeliveryAttempted, None),
        D::Refused => class(T::ShipmentException, Some("consignee_refused")),
        D::AddressCorrection => class(T::ShipmentException, Some("consignee_incorrect_address")),
        D::Damaged => class(T::ShipmentException, Some("carrier_damaged_parcel")),
        D::Lost => class(T::ShipmentException, Some("carrier_parcel_lost")),
        D::Return => class(T::ShipmentReturnInitiated, None),
        D::ArrivedAtDestination
        | D::ArrivedAtFacility
        | D::ArrivedAtPickupLocation
        | D::Cancelled
        | D::DepartedFacility
        | D::DepartedOriginFacility
        | D::Expired
        | D::Failure
        | D::InTransit
        | D::LabelCreated
        | D::ReceivedAtDestinationFacility
        | D::ReceivedAtOriginFacility
        | D::StatusUpdate
        | D::TransferredToDestinationCarrier
        | D::TransitException
        | D::Unknown => class(T::ShipmentException, None),
        D::Other(_) => class(T::ShipmentException, Some("unknown")),
    }
}

/// Why a parcel goes back, when the detail says.
fn return_reason(detail: Option<&StatusDetail>) -> Option<&'static str> {
    use StatusDetail as D;
    match detail? {
        D::Refused => Some("consignee_refused"),
        D::AddressCorrection => Some("consignee_incorrect_address"),
        D::Damaged => Some("carrier_damaged_parcel"),
        D::Lost => Some("carrier_parcel_lost"),
        D::WeatherDelay => Some("weather_delay"),
        D::Missorted => Some("carrier_sorting_error"),
        D::ArrivedAtDestination
        | D::ArrivedAtFacility
        | D::ArrivedAtPickupLocation
        | D::AwaitingInformation
        | D::Cancelled
        | D::Delayed
        | D::DeliveryException
        | D::DepartedFacility
        | D::DepartedOriginFacility
        | D::Expired
        | D::Failure
        | D::Held
        | D::InTransit
        | D::LabelCreated
        | D::OutForDelivery
        | D::ReceivedAtDestinationFacility
        | D::ReceivedAtOriginFacility
        | D::Return
        | D::StatusUpdate
        | D::TransferredToDestinationCarrier
        | D::TransitException
        | D::Unknown => None,
        D::Other(_) => Some("unknown"),
    }
}

/// Builds every update of one tracker: the scans (oldest first), the current status, and
/// the proof of delivery.
pub(crate) fn updates(t: &Tracker, base: &str) -> Result<Vec<Update>, MapError> {
    let mut scans = Vec::new();
    for (i, d) in t.tracking_details.iter().flatten().enumerate() {
        let path = format!("result.tracking_details[{i}]");
        let status =
            d.status
                .as_ref()
                .filter(|s| !s.is_blank())
                .ok_or_else(|| MapError::MissingField {
                    partner: P,
                    path: format!("{path}.status"),
                })?;
        let Some(ty) = classify(status, d.status_detail.as_ref()).ty else {
            continue;
        };
        let time = scan_time(d, &path)?;
        scans.push(scan(d, status, ty, time, base));
    }
    updates::sort_chronologically(&mut scans);
    // EVENTS.md §2.2: the first `in_transit` scan is the hand-over to the carrier.
    let in_transit = Value::from(Status::InTransit.as_str());
    if let Some(first) = scans
        .iter_mut()
        .find(|u| u.data.get("status") == Some(&in_transit))
    {
        if first.ty == EventType::ShipmentInTransit {
            first.ty = EventType::ShipmentDispatched;
        }
    }
    if let Some(current) = current(t, &scans, base)? {
        updates::settle_current(&mut scans, current);
    }
    updates::apply_return_leg(&mut scans);
    if let Some(pod) = scans.last().and_then(|last| pod(t, last, base)) {
        scans.push(pod);
    }
    Ok(scans)
}

fn scan_time(d: &TrackingDetail, path: &str) -> Result<CarrierTime, MapError> {
    timestamps::required(P, d.datetime.as_deref(), &format!("{path}.datetime"))
}

fn scan(
    d: &TrackingDetail,
    status: &Status,
    ty: EventType,
    time: CarrierTime,
    base: &str,
) -> Update {
    let c = classify(status, d.status_detail.as_ref());
    let detail = d.status_detail.as_ref().filter(|x| !x.is_blank());
    let code = detail
        .map_or(status.as_str(), StatusDetail::as_str)
        .to_owned();
    let key = format!(
        "{base}:{}:{}:{code}",
        time_part(Some(&time)),
        status.as_str()
    );
    let loc = d.tracking_location.as_ref().and_then(|l| {
        location(
            &[
                ("city", l.city.as_deref()),
                ("state", l.state.as_deref()),
                ("country", l.country.as_deref()),
                ("postal_code", l.zip.as_deref()),
            ],
            None,
        )
    });
    let raw_time = d.datetime.clone();
    let mut u = Update::new(ty, key)
        .at(Some(time), raw_time.as_deref())
        .with("status", Some(status.as_str()))
        .with("carrier_code", d.carrier_code.as_deref());
    u.reason = c.reason.map(str::to_owned);
    u.code = Some(code);
    u.text = non_blank(d.message.as_deref()).map(str::to_owned);
    u.location = loc;
    u
}

/// The tracker's own status: at the time of the latest scan with that status, else
/// `updated_at`.
fn current(t: &Tracker, scans: &[Update], base: &str) -> Result<Option<Update>, MapError> {
    let Some(status) = t.status.as_ref().filter(|s| !s.is_blank()) else {
        return Ok(None);
    };
    let c = classify(status, t.status_detail.as_ref());
    let Some(ty) = c.ty else {
        return Ok(None);
    };
    let same_status = |u: &&Update| u.data.get("status") == Some(&Value::from(status.as_str()));
    let (time, raw) = match scans.iter().rev().find(same_status) {
        Some(u) => (u.time.clone(), u.raw_time.clone()),
        None => match non_blank(t.updated_at.as_deref()) {
            Some(raw) => {
                let parsed = timestamps::parse(raw).ok_or_else(|| MapError::BadTime {
                    partner: P,
                    path: "result.updated_at".into(),
                    value: raw.to_owned(),
                })?;
                (Some(parsed), Some(raw.to_owned()))
            }
            None => (None, None),
        },
    };
    let detail = t.status_detail.as_ref().filter(|x| !x.is_blank());
    let code = detail
        .map_or(status.as_str(), StatusDetail::as_str)
        .to_owned();
    let key = format!("{base}:current:{}:{code}", status.as_str());
    let cd = t.carrier_detail.as_ref();
    let local_edd = cd
        .and_then(|c| non_blank(c.est_delivery_date_local.as_deref()))
        .map(
            |d| match cd.and_then(|c| non_blank(c.est_delivery_time_local.as_deref())) {
                Some(tm) => format!("{d}T{tm}"),
                None => d.to_owned(),
            },
        );
    let mut u = Update::new(ty, key)
        .at(time, raw.as_deref())
        .with("status", Some(status.as_str()))
        .with("estimated_delivery", t.est_delivery_date.as_deref())
        .with("estimated_delivery_local", local_edd.as_deref())
        .with(
            "guaranteed_delivery",
            cd.and_then(|c| c.guaranteed_delivery_date.as_deref()),
        )
        .with("service", cd.and_then(|c| c.service.as_deref()))
        .with("tracking_url", t.public_url.as_deref());
    if ty == EventType::ShipmentDelivered {
        u = u.with("signed_by", t.signed_by.as_deref());
    }
    if t.is_return == Some(true) {
        u.data.insert("is_return".into(), Value::Bool(true));
    }
    u.reason = c.reason.map(str::to_owned);
    u.code = Some(code);
    Ok(Some(u))
}

/// `pod.captured` when the tracker ends delivered and says who signed.
fn pod(t: &Tracker, last: &Update, base: &str) -> Option<Update> {
    if last.ty != EventType::ShipmentDelivered || !last.current {
        return None;
    }
    let signed_by = non_blank(t.signed_by.as_deref())?;
    let mut u = Update::new(EventType::PodCaptured, format!("{base}:pod"))
        .with("signed_by", Some(signed_by));
    u.time = last.time.clone();
    u.raw_time = last.raw_time.clone();
    Some(u)
}
