//! AfterShip tracking → canonical drafts (EVENTS.md §2.2, column AfterShip, and its reason
//! paragraph; decisions where the table is silent are in STATUS_TABLE.md).

use super::wire::{Checkpoint, Subtag, Tag, Tracking};
use crate::carrier::map_error::{MapError, Partner};
use crate::carrier::timestamps::{self, CarrierTime};
use crate::carrier::updates::{self, location, non_blank, time_part, Update};
use serde_json::Value;
use waybill_model::EventType;

const P: Partner = super::P;

/// Canonical type (none: nothing to record) and normalized reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    /// Canonical type; `None` for `Expired` (EVENTS.md: `tracking.stale`, a monitor).
    pub ty: Option<EventType>,
    /// Normalized reason.
    pub reason: Option<&'static str>,
}

fn class(ty: EventType, reason: Option<&'static str>) -> Class {
    Class {
        ty: Some(ty),
        reason,
    }
}

/// What a tag means without (or with an unknown) subtag.
fn by_tag(tag: &Tag) -> Option<EventType> {
    use EventType as T;
    match tag {
        Tag::Pending | Tag::InfoReceived => Some(T::ShipmentLabelCreated),
        Tag::InTransit => Some(T::ShipmentInTransit),
        Tag::OutForDelivery => Some(T::ShipmentOutForDelivery),
        Tag::AttemptFail => Some(T::ShipmentDeliveryAttempted),
        Tag::Delivered => Some(T::ShipmentDelivered),
        Tag::AvailableForPickup => Some(T::ShipmentAvailableForPickup),
        Tag::Exception => Some(T::ShipmentException),
        Tag::Expired => None,
        Tag::Other(_) => Some(T::ShipmentException),
    }
}

/// The tag a known subtag belongs to, and what it maps to.
fn by_subtag(s: &Subtag) -> Option<(Tag, Option<EventType>, Option<&'static str>)> {
    use EventType as T;
    use Subtag as S;
    let r = |tag, ty, reason| Some((tag, Some(ty), reason));
    match s {
        S::Delivered001 | S::Delivered002 | S::Delivered003 | S::Delivered004 | S::Delivered005 => {
            r(Tag::Delivered, T::ShipmentDelivered, None)
        }
        S::AvailableForPickup001 => r(Tag::AvailableForPickup, T::ShipmentAvailableForPickup, None),
        S::Exception001 => r(Tag::Exception, T::ShipmentException, None),
        S::Exception002 => r(
            Tag::Exception,
            T::ShipmentException,
            Some("consignee_incorrect_address"),
        ),
        S::Exception003 => r(
            Tag::Exception,
            T::ShipmentException,
            Some("consignee_refused"),
        ),
        S::Exception004 => r(Tag::Exception, T::ShipmentDelayed, Some("customs_delay")),
        S::Exception005 => r(Tag::Exception, T::ShipmentDelayed, None),
        S::Exception006 => r(
            Tag::Exception,
            T::ShipmentOnHold,
            Some("customs_duties_unpaid"),
        ),
        S::Exception007 => r(
            Tag::Exception,
            T::ShipmentException,
            Some("consignee_incorrect_address"),
        ),
        S::Exception008 => r(
            Tag::Exception,
            T::ShipmentException,
            Some("consignee_not_available"),
        ),
        S::Exception009 => r(Tag::Exception, T::ShipmentException, None),
        S::Exception010 => r(Tag::Exception, T::ShipmentReturnInitiated, None),
        S::Exception011 => r(Tag::Exception, T::ShipmentReturned, None),
        S::Exception012 => r(
            Tag::Exception,
            T::ShipmentException,
            Some("carrier_damaged_parcel"),
        ),
        S::Exception013 => r(
            Tag::Exception,
            T::ShipmentException,
            Some("carrier_parcel_lost"),
        ),
        S::Exception016 => r(Tag::Exception, T::ShipmentDelayed, None),
        S::Exception017 => r(Tag::Exception, T::ShipmentDelayed, Some("weather_delay")),
        S::Exception018 => r(
            Tag::Exception,
            T::ShipmentOnHold,
            Some("customs_documentation"),
        ),
        S::Exception019 => r(Tag::Exception, T::ShipmentDelayed, None),
        S::Exception020 | S::Exception021 => r(Tag::Exception, T::ShipmentException, None),
        S::AttemptFail001 => r(Tag::AttemptFail, T::ShipmentDeliveryAttempted, None),
        S::AttemptFail002 => r(
            Tag::AttemptFail,
            T::ShipmentDeliveryAttempted,
            Some("consignee_not_available"),
        ),
        S::AttemptFail003 => r(
            Tag::AttemptFail,
            T::ShipmentDeliveryAttempted,
            Some("consignee_business_closed"),
        ),
        S::InTransit002 => r(Tag::InTransit, T::ShipmentDispatched, None),
        S::InTransit001
        | S::InTransit003
        | S::InTransit004
        | S::InTransit005
        | S::InTransit006
        | S::InTransit007
        | S::InTransit008
        | S::InTransit009 => r(Tag::InTransit, T::ShipmentInTransit, None),
        S::InfoReceived001 => r(Tag::InfoReceived, T::ShipmentLabelCreated, None),
        S::OutForDelivery001 | S::OutForDelivery003 | S::OutForDelivery004 => {
            r(Tag::OutForDelivery, T::ShipmentOutForDelivery, None)
        }
        S::Pending001
        | S::Pending002
        | S::Pending003
        | S::Pending004
        | S::Pending005
        | S::Pending006 => r(Tag::Pending, T::ShipmentLabelCreated, None),
        S::Expired001 => Some((Tag::Expired, None, None)),
        S::Other(_) => None,
    }
}

/// Maps `tag` + `subtag`. Never fails: an unknown subtag (or one of another tag) keeps the
/// tag's mapping with reason `unknown`; an unknown tag is `shipment.exception` + `unknown`.
pub(crate) fn classify(tag: &Tag, subtag: Option<&Subtag>) -> Class {
    let subtag = subtag.filter(|s| !s.is_blank());
    if let Tag::Other(_) = tag {
        return class(EventType::ShipmentException, Some("unknown"));
    }
    let fallback = |reason| Class {
        ty: by_tag(tag),
        reason: by_tag(tag).and(reason),
    };
    let Some(sub) = subtag else {
        return fallback(None);
    };
    match by_subtag(sub) {
        Some((parent, ty, reason)) if parent == *tag => Class { ty, reason },
        _ => fallback(Some("unknown")),
    }
}

/// Every update of one tracking: checkpoints (chronological), current status, POD.
pub(crate) fn updates(t: &Tracking, base: &str) -> Result<Vec<Update>, MapError> {
    let mut scans = Vec::new();
    for (i, c) in t.checkpoints.iter().flatten().enumerate() {
        let path = format!("msg.checkpoints[{i}]");
        let tag =
            c.tag
                .as_ref()
                .filter(|s| !s.is_blank())
                .ok_or_else(|| MapError::MissingField {
                    partner: P,
                    path: format!("{path}.tag"),
                })?;
        let class = classify(tag, c.subtag.as_ref());
        let Some(ty) = class.ty else { continue };
        let time = checkpoint_time(c, &path)?;
        scans.push(scan(
            c,
            tag,
            ty,
            class.reason,
            time,
            base,
            t.slug.as_deref(),
        ));
    }
    updates::sort_chronologically(&mut scans);
    if let Some(current) = current(t, &scans, base)? {
        updates::settle_current(&mut scans, current);
    }
    updates::apply_return_leg(&mut scans);
    if let Some(pod) = scans.last().and_then(|last| pod(t, last, base)) {
        scans.push(pod);
    }
    Ok(scans)
}

fn checkpoint_time(c: &Checkpoint, path: &str) -> Result<CarrierTime, MapError> {
    timestamps::required(
        P,
        c.checkpoint_time.as_deref(),
        &format!("{path}.checkpoint_time"),
    )
}

fn code_of(tag: &Tag, subtag: Option<&Subtag>) -> String {
    subtag
        .filter(|s| !s.is_blank())
        .map_or(tag.as_str(), Subtag::as_str)
        .to_owned()
}

fn scan(
    c: &Checkpoint,
    tag: &Tag,
    ty: EventType,
    reason: Option<&'static str>,
    time: CarrierTime,
    base: &str,
    tracking_slug: Option<&str>,
) -> Update {
    let code = code_of(tag, c.subtag.as_ref());
    let key = format!("{base}:{}:{}:{code}", time_part(Some(&time)), tag.as_str());
    let coords = c
        .coordinate
        .as_ref()
        .and_then(|x| Some((x.latitude?, x.longitude?)));
    let handed_over = c.slug.as_deref().filter(|s| Some(*s) != tracking_slug);
    let mut u = Update::new(ty, key)
        .at(Some(time), c.checkpoint_time.as_deref())
        .with("status", Some(tag.as_str()))
        .with("subtag_message", c.subtag_message.as_deref())
        .with("raw_tag", c.raw_tag.as_deref())
        .with("courier", handed_over);
    u.reason = reason.map(str::to_owned);
    u.code = Some(code);
    u.text = non_blank(c.message.as_deref()).map(str::to_owned);
    u.location = location(
        &[
            ("city", c.city.as_deref()),
            ("state", c.state.as_deref()),
            ("country", c.country_region.as_deref()),
            ("postal_code", c.zip.as_deref()),
            ("text", c.location.as_deref()),
        ],
        coords,
    );
    u
}

/// The tracking's own status, at the latest checkpoint with that tag, else `updated_at`.
fn current(t: &Tracking, scans: &[Update], base: &str) -> Result<Option<Update>, MapError> {
    let Some(tag) = t.tag.as_ref().filter(|s| !s.is_blank()) else {
        return Ok(None);
    };
    let class = classify(tag, t.subtag.as_ref());
    let Some(ty) = class.ty else { return Ok(None) };
    let same_tag = |u: &&Update| u.data.get("status") == Some(&Value::from(tag.as_str()));
    let (time, raw) = match scans.iter().rev().find(same_tag) {
        Some(u) => (u.time.clone(), u.raw_time.clone()),
        None => match non_blank(t.updated_at.as_deref()) {
            Some(raw) => {
                let parsed = timestamps::parse(raw).ok_or_else(|| MapError::BadTime {
                    partner: P,
                    path: "msg.updated_at".into(),
                    value: raw.to_owned(),
                })?;
                (Some(parsed), Some(raw.to_owned()))
            }
            None => (None, None),
        },
    };
    let code = code_of(tag, t.subtag.as_ref());
    let key = format!("{base}:current:{}:{code}", tag.as_str());
    let latest = t.latest_estimated_delivery.as_ref();
    let courier = t.courier_estimated_delivery_date.as_ref();
    let edd = latest
        .and_then(|l| non_blank(l.datetime.as_deref()))
        .or_else(|| courier.and_then(|c| non_blank(c.estimated_delivery_date.as_deref())));
    let edd_min = latest
        .and_then(|l| non_blank(l.datetime_min.as_deref()))
        .or_else(|| courier.and_then(|c| non_blank(c.estimated_delivery_date_min.as_deref())));
    let edd_max = latest
        .and_then(|l| non_blank(l.datetime_max.as_deref()))
        .or_else(|| courier.and_then(|c| non_blank(c.estimated_delivery_date_max.as_deref())));
    let mut u = Update::new(ty, key)
        .at(time, raw.as_deref())
        .with("status", Some(tag.as_str()))
        .with("subtag_message", t.subtag_message.as_deref())
        .with("estimated_delivery", edd)
        .with("estimated_delivery_min", edd_min)
        .with("estimated_delivery_max", edd_max)
        .with(
            "estimated_delivery_source",
            latest.and_then(|l| l.source.as_deref()),
        )
        .with("tracking_url", t.courier_tracking_link.as_deref());
    if ty == EventType::ShipmentDelivered {
        u = pod_details(u, t);
    }
    u.reason = class.reason.map(str::to_owned);
    u.code = Some(code);
    Ok(Some(u))
}

fn pod_details(u: Update, t: &Tracking) -> Update {
    u.with("signed_by", t.signed_by.as_deref())
        .with(
            "delivery_location_type",
            t.delivery_location_type.as_deref(),
        )
        .with("signature_requirement", t.signature_requirement.as_deref())
}

/// `pod.captured` when the tracking ends delivered with a signer or a drop-off place.
/// AfterShip publishes no POD photo in the Tracking model.
fn pod(t: &Tracking, last: &Update, base: &str) -> Option<Update> {
    if last.ty != EventType::ShipmentDelivered || !last.current {
        return None;
    }
    non_blank(t.signed_by.as_deref()).or(non_blank(t.delivery_location_type.as_deref()))?;
    let mut u = pod_details(
        Update::new(EventType::PodCaptured, format!("{base}:pod")),
        t,
    );
    u.time = last.time.clone();
    u.raw_time = last.raw_time.clone();
    Some(u)
}
