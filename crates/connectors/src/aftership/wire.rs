//! AfterShip Tracking's webhook payload as it is sent (API version 2025-01 and later):
//! `{"event", "event_id", "is_tracking_first_tag", "ts", "msg": <Tracking>}`
//! (<https://www.aftership.com/docs/tracking/2025-01/webhook/webhook-specifications>,
//! Tracking and Checkpoint models of the same version).
//!
//! Only the fields the mapping reads are declared; serde ignores the rest (`customers`,
//! `carbon_emissions`, `first_mile`, …).

use crate::carrier::string_enum::string_enum;
use serde::Deserialize;

string_enum! {
    /// `tag`: AfterShip's nine delivery statuses (closed set, `TagV1`).
    Tag {
        /// New tracking, no carrier information yet.
        Pending = "Pending",
        /// The carrier has the shipment data but not the parcel.
        InfoReceived = "InfoReceived",
        /// Moving.
        InTransit = "InTransit",
        /// About to be delivered (or ready for pickup, per AfterShip's own definition).
        OutForDelivery = "OutForDelivery",
        /// A delivery attempt failed.
        AttemptFail = "AttemptFail",
        /// Delivered.
        Delivered = "Delivered",
        /// Waiting at a pickup point.
        AvailableForPickup = "AvailableForPickup",
        /// Customs hold, undelivered, returned, damaged, lost, …: see the subtag.
        Exception = "Exception",
        /// No tracking information for 30 days.
        Expired = "Expired",
    }
}

string_enum! {
    /// `subtag`: the sub-statuses (delivery-sub-statuses page, 2026-07 version, and the
    /// help-center list of sub-statuses added on 2026-03-27).
    Subtag {
        /// Delivered.
        Delivered001 = "Delivered_001",
        /// Picked up by the customer.
        Delivered002 = "Delivered_002",
        /// Signed by the customer.
        Delivered003 = "Delivered_003",
        /// Delivered, cash on delivery collected.
        Delivered004 = "Delivered_004",
        /// Delivered to a neighbor.
        Delivered005 = "Delivered_005",
        /// Available for pickup.
        AvailableForPickup001 = "AvailableForPickup_001",
        /// Exception.
        Exception001 = "Exception_001",
        /// Customer moved.
        Exception002 = "Exception_002",
        /// Customer refused delivery.
        Exception003 = "Exception_003",
        /// Delayed (customs clearance).
        Exception004 = "Exception_004",
        /// Delayed (external factors).
        Exception005 = "Exception_005",
        /// Held for payment.
        Exception006 = "Exception_006",
        /// Incorrect address.
        Exception007 = "Exception_007",
        /// Pickup missed.
        Exception008 = "Exception_008",
        /// Rejected by carrier.
        Exception009 = "Exception_009",
        /// Returning to sender.
        Exception010 = "Exception_010",
        /// Returned to sender.
        Exception011 = "Exception_011",
        /// Shipment damaged.
        Exception012 = "Exception_012",
        /// Shipment lost.
        Exception013 = "Exception_013",
        /// Delayed (processing issue) — added 2026-03-27.
        Exception016 = "Exception_016",
        /// Delayed (extreme weather) — added 2026-03-27.
        Exception017 = "Exception_017",
        /// Incorrect / missing documents — added 2026-03-27.
        Exception018 = "Exception_018",
        /// Delayed (late flight) — added 2026-03-27.
        Exception019 = "Exception_019",
        /// Shipment cancelled — added 2026-03-27.
        Exception020 = "Exception_020",
        /// Shipment disposed — added 2026-03-27.
        Exception021 = "Exception_021",
        /// Failed attempt.
        AttemptFail001 = "AttemptFail_001",
        /// Addressee not available.
        AttemptFail002 = "AttemptFail_002",
        /// Business closed.
        AttemptFail003 = "AttemptFail_003",
        /// In transit.
        InTransit001 = "InTransit_001",
        /// Acceptance scan.
        InTransit002 = "InTransit_002",
        /// Arrival scan.
        InTransit003 = "InTransit_003",
        /// Arrived at the destination country.
        InTransit004 = "InTransit_004",
        /// Customs clearance completed.
        InTransit005 = "InTransit_005",
        /// Customs clearance started.
        InTransit006 = "InTransit_006",
        /// Departure scan.
        InTransit007 = "InTransit_007",
        /// Problem resolved.
        InTransit008 = "InTransit_008",
        /// Forwarded to a different delivery address.
        InTransit009 = "InTransit_009",
        /// Info received.
        InfoReceived001 = "InfoReceived_001",
        /// Out for delivery.
        OutForDelivery001 = "OutForDelivery_001",
        /// Customer contacted.
        OutForDelivery003 = "OutForDelivery_003",
        /// Delivery appointment scheduled.
        OutForDelivery004 = "OutForDelivery_004",
        /// Pending: no information yet.
        Pending001 = "Pending_001",
        /// Pending (meaning not published; listed in AfterShip SDK enums).
        Pending002 = "Pending_002",
        /// Pending (meaning not published; listed in AfterShip SDK enums).
        Pending003 = "Pending_003",
        /// Pending (meaning not published; listed in AfterShip SDK enums).
        Pending004 = "Pending_004",
        /// Pending (meaning not published; listed in AfterShip SDK enums).
        Pending005 = "Pending_005",
        /// Pending (meaning not published; listed in AfterShip SDK enums).
        Pending006 = "Pending_006",
        /// Expired.
        Expired001 = "Expired_001",
    }
}

/// First pass: enough to key the payload.
#[derive(Debug, Deserialize)]
pub(crate) struct WebhookHead {
    /// UUID v4 of this webhook event; the idempotency key.
    pub event_id: Option<String>,
}

/// The webhook body.
#[derive(Debug, Deserialize)]
pub(crate) struct Webhook {
    /// `tracking_update`, `edd_revise`, `tracking_pending_time`.
    pub event: Option<String>,
    /// The tracking.
    pub msg: Option<Tracking>,
}

/// `Tracking` model (the fields we read).
#[derive(Debug, Deserialize)]
pub(crate) struct Tracking {
    /// AfterShip tracking id (32 characters).
    pub id: Option<String>,
    /// Carrier tracking number.
    pub tracking_number: Option<String>,
    /// Courier slug (`ups`, `fedex`, `dhl`, `usps`, …).
    pub slug: Option<String>,
    /// Current status.
    pub tag: Option<Tag>,
    /// Current sub-status.
    pub subtag: Option<Subtag>,
    /// Normalized message of the sub-status.
    pub subtag_message: Option<String>,
    /// Last update, RFC 3339.
    pub updated_at: Option<String>,
    /// Who signed.
    pub signed_by: Option<String>,
    /// Where the parcel was left (`Front Door`, `Locker`, …).
    pub delivery_location_type: Option<String>,
    /// Signature service option (`signature_required`, …).
    pub signature_requirement: Option<String>,
    /// Order id in the merchant's system.
    pub order_id: Option<String>,
    /// Human-readable order number.
    pub order_number: Option<String>,
    /// The carrier's estimate.
    pub courier_estimated_delivery_date: Option<CourierEdd>,
    /// The most recent estimate from any source.
    pub latest_estimated_delivery: Option<LatestEdd>,
    /// The carrier's tracking page.
    pub courier_tracking_link: Option<String>,
    /// The history, oldest first.
    pub checkpoints: Option<Vec<Checkpoint>>,
}

/// `courier_estimated_delivery_date`.
#[derive(Debug, Deserialize)]
pub(crate) struct CourierEdd {
    /// Estimated date (recipient's zone; `YYYY-MM-DD` or date-time).
    pub estimated_delivery_date: Option<String>,
    /// Earliest estimate.
    pub estimated_delivery_date_min: Option<String>,
    /// Latest estimate.
    pub estimated_delivery_date_max: Option<String>,
}

/// `latest_estimated_delivery`.
#[derive(Debug, Deserialize)]
pub(crate) struct LatestEdd {
    /// Who estimated (carrier, AfterShip AI, custom).
    pub source: Option<String>,
    /// The estimate.
    pub datetime: Option<String>,
    /// Range start.
    pub datetime_min: Option<String>,
    /// Range end.
    pub datetime_max: Option<String>,
}

/// `Checkpoint` model.
#[derive(Debug, Deserialize)]
pub(crate) struct Checkpoint {
    /// Courier slug of this checkpoint (can differ from the tracking's on hand-over).
    pub slug: Option<String>,
    /// When, in the checkpoint's zone; may lack a zone.
    pub checkpoint_time: Option<String>,
    /// Carrier's location text.
    pub location: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Postal code.
    pub zip: Option<String>,
    /// ISO alpha-3 country/region.
    pub country_region: Option<String>,
    /// Coordinates.
    pub coordinate: Option<Coordinate>,
    /// Carrier message.
    pub message: Option<String>,
    /// Status of this checkpoint.
    pub tag: Option<Tag>,
    /// Sub-status of this checkpoint.
    pub subtag: Option<Subtag>,
    /// Normalized message.
    pub subtag_message: Option<String>,
    /// The carrier's raw status.
    pub raw_tag: Option<String>,
}

/// `coordinate`.
#[derive(Debug, Deserialize)]
pub(crate) struct Coordinate {
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
}
