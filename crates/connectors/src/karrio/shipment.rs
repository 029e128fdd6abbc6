//! Karrio shipment webhooks → canonical drafts: the label bought, the label voided, the
//! shipment on its way. When each fires is read from Karrio's `shipment_updated` and
//! `shipment_cancelled` signal handlers (`karrio.server.events.signals`).

use super::wire::Shipment;
use crate::carrier::map_error::{MapError, Partner};
use crate::carrier::timestamps::{self, CarrierTime};
use crate::carrier::updates::{non_blank, Update};
use serde_json::{json, Value};
use waybill_model::EventType;

const P: Partner = super::P;

/// The shipment events the hub records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShipmentEvent {
    /// `shipment_purchased`: the label was bought (the shipment's status became `created`).
    Purchased,
    /// `shipment_cancelled`: the label was voided, or the shipment deleted.
    Cancelled,
    /// `shipment_fulfilled`: the shipment's status became `in_transit` (Karrio moves it
    /// there from its tracker; a delivered tracker sends no shipment event).
    Fulfilled,
}

impl ShipmentEvent {
    /// Karrio's name for the event.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ShipmentEvent::Purchased => "shipment_purchased",
            ShipmentEvent::Cancelled => "shipment_cancelled",
            ShipmentEvent::Fulfilled => "shipment_fulfilled",
        }
    }

    fn ty(self) -> EventType {
        match self {
            ShipmentEvent::Purchased => EventType::ShipmentLabelCreated,
            ShipmentEvent::Cancelled => EventType::ShipmentCancelled,
            ShipmentEvent::Fulfilled => EventType::ShipmentInTransit,
        }
    }
}

/// The one update a shipment event makes. Its time: `updated_at` when the payload has one;
/// else, for a purchase only, `created_at` (bought when or soon after it was created, and
/// before any scan); else none (a cancellation or a departure is not dated by the day the
/// shipment was drafted), so the hub's receive time. Without a time it is keyed
/// `<shp_…>:<event>`: one event per shipment, whatever Karrio re-sends.
pub(crate) fn update(s: &Shipment, event: ShipmentEvent, base: &str) -> Result<Update, MapError> {
    let updated = time_of(s.updated_at.as_deref(), "data.updated_at")?;
    let (time, raw) = match (event, updated) {
        (_, Some(t)) => Some(t),
        (ShipmentEvent::Purchased, None) => time_of(s.created_at.as_deref(), "data.created_at")?,
        (_, None) => None,
    }
    .unzip();
    let mut u = Update::new(event.ty(), format!("{base}:{}", event.name()))
        .at(time, raw)
        .with("status", s.status.as_deref());
    if event == ShipmentEvent::Purchased {
        let rate = s.selected_rate.as_ref();
        u = u
            .with(
                "service",
                non_blank(s.service.as_deref()).or(rate.and_then(|r| r.service.as_deref())),
            )
            .with("label_type", s.label_type.as_deref())
            .with("label_url", s.label_url.as_deref())
            .with("tracking_url", s.tracking_url.as_deref());
        if let Some(amount) = rate.and_then(|r| r.total_charge) {
            let currency = rate.and_then(|r| non_blank(r.currency.as_deref()));
            u.data.insert(
                "rate".into(),
                json!({"amount": amount.to_string(), "currency": currency}),
            );
        }
    }
    if s.test_mode == Some(true) {
        u.data.insert("test_mode".into(), Value::Bool(true));
    }
    Ok(u)
}

/// A shipment time field: `2026-03-02 09:14:00.123456+00:00` (Python's `str(datetime)`)
/// or RFC 3339; absent or blank is none, anything else an error naming the field.
fn time_of<'a>(
    raw: Option<&'a str>,
    path: &str,
) -> Result<Option<(CarrierTime, &'a str)>, MapError> {
    let Some(raw) = non_blank(raw).map(str::trim) else {
        return Ok(None);
    };
    let spaced = || Some(format!("{}T{}", raw.get(..10)?, raw.get(11..)?));
    let parsed = timestamps::parse(raw).or_else(|| {
        (raw.get(10..11) == Some(" "))
            .then(spaced)
            .flatten()
            .and_then(|t| timestamps::parse(&t))
    });
    match parsed {
        Some(t) => Ok(Some((t, raw))),
        None => Err(MapError::BadTime {
            partner: P,
            path: path.to_owned(),
            value: raw.to_owned(),
        }),
    }
}
