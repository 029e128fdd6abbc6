//! The fixed event taxonomy (ARCHITECTURE.md, EVENTS.md §2.2) and what each type does to a
//! shipment: move its milestone, raise a flag, or only enter the timeline.

use crate::lifecycle::Milestone;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! event_types {
    ($($variant:ident => $name:literal, $kind:expr;)*) => {
        /// A canonical event type (dot-separated, past tense).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum EventType { $(#[doc = $name] $variant,)* }

        impl EventType {
            /// Every type, in taxonomy order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The wire name, e.g. `shipment.delivered`.
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            /// What this event does to a shipment.
            pub fn kind(self) -> EventKind {
                match self { $(EventType::$variant => $kind,)* }
            }
        }

        impl FromStr for EventType {
            type Err = UnknownEventType;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(EventType::$variant),)*
                    _ => Err(UnknownEventType(s.to_owned())),
                }
            }
        }
    };
}

use EventKind::{Flagged, Milestone as M, Timeline};

event_types! {
    OrderReleased => "order.released", M(Milestone::Released);
    OrderCancelled => "order.cancelled", M(Milestone::Cancelled);
    WarehousePicked => "warehouse.picked", M(Milestone::Picked);
    WarehousePacked => "warehouse.packed", M(Milestone::Packed);
    ShipmentBooked => "shipment.booked", M(Milestone::Booked);
    ShipmentBookingRejected => "shipment.booking_rejected", Flagged(Flag::BookingRejected);
    ShipmentLabelCreated => "shipment.label_created", M(Milestone::Labelled);
    ShipmentManifested => "shipment.manifested", M(Milestone::Labelled);
    ShipmentDispatched => "shipment.dispatched", M(Milestone::Dispatched);
    ShipmentInTransit => "shipment.in_transit", M(Milestone::InTransit);
    ShipmentDelayed => "shipment.delayed", Flagged(Flag::Delayed);
    ShipmentOnHold => "shipment.on_hold", Flagged(Flag::OnHold);
    ShipmentOutForDelivery => "shipment.out_for_delivery", M(Milestone::OutForDelivery);
    ShipmentAvailableForPickup => "shipment.available_for_pickup", M(Milestone::AvailableForPickup);
    ShipmentDeliveryAttempted => "shipment.delivery_attempted", Flagged(Flag::DeliveryAttempted);
    ShipmentDelivered => "shipment.delivered", M(Milestone::Delivered);
    ShipmentException => "shipment.exception", Flagged(Flag::Exception);
    ShipmentReturnInitiated => "shipment.return_initiated", Flagged(Flag::ReturnInitiated);
    ShipmentReturned => "shipment.returned", M(Milestone::Returned);
    ShipmentCancelled => "shipment.cancelled", M(Milestone::Cancelled);
    ShipmentCorrected => "shipment.corrected", Timeline;
    ShipmentLinked => "shipment.linked", Timeline;
    PodCaptured => "pod.captured", Timeline;
    FreightChargeConfirmed => "freight.charge_confirmed", Timeline;
    InvoicePosted => "invoice.posted", Timeline;
    PaymentReceived => "payment.received", Timeline;
    TaskOpened => "task.opened", Timeline;
    TaskResolved => "task.resolved", Timeline;
    CaseOpened => "case.opened", Timeline;
    CaseUpdated => "case.updated", Timeline;
    CaseEscalated => "case.escalated", Timeline;
    CaseClosed => "case.closed", Timeline;
}

impl EventType {
    /// A status of the shipment (a milestone or a flag), as opposed to a business
    /// document in the timeline (proof of delivery, charge, invoice, correction). Status
    /// facts without a key are identified by [`crate::draft::fact_key`].
    pub fn is_status(self) -> bool {
        !matches!(self.kind(), EventKind::Timeline)
    }
}

/// What an event type does to its shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Moves the lifecycle forward (never backward) to this milestone.
    Milestone(Milestone),
    /// Raises a flag; never a regression.
    Flagged(Flag),
    /// Only recorded in the timeline (business facts, corrections).
    Timeline,
}

/// A flag on a shipment: something happened that needs attention, without moving the
/// lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// The carrier reported a delay.
    Delayed,
    /// Held (customs, payment, carrier).
    OnHold,
    /// Damaged, lost, refused, … (see the event's reason).
    Exception,
    /// A delivery attempt failed.
    DeliveryAttempted,
    /// The carrier refused the booking.
    BookingRejected,
    /// Being returned to the sender.
    ReturnInitiated,
}

impl Flag {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Delayed => "delayed",
            Flag::OnHold => "on_hold",
            Flag::Exception => "exception",
            Flag::DeliveryAttempted => "delivery_attempted",
            Flag::BookingRejected => "booking_rejected",
            Flag::ReturnInitiated => "return_initiated",
        }
    }
}

/// A type name that is not in the taxonomy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownEventType(pub String);

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_name() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(*t));
        }
        assert!("shipment.teleported".parse::<EventType>().is_err());
    }
}
