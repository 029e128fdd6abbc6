//! Karrio's webhook payload in its two shapes: as its server sends it,
//! `{"event": "<type>", "data": <object>}` (`notify_webhook_subscribers` in
//! `karrio.server.events.task_definitions.base.webhook`), and as its documentation shows
//! it, the stored Event `{"id": "evt_…", "type": "<type>", "data": <object>, "test_mode",
//! "pending_webhooks", "created_at"}` (docs.karrio.io, guide `reference/guides/trackers`).
//! For `tracker_*` the object is the `TrackingStatus` serializer, for `shipment_*` the
//! `Shipment` serializer, both in `karrio.server.core.serializers` (source
//! github.com/karrioapi/karrio). Only the fields the mapping reads are declared: a
//! shipment's label bytes (`shipping_documents[].base64`) are never read.

use crate::carrier::string_enum::string_enum;
use serde::Deserialize;

string_enum! {
    /// `TrackerStatus` / SDK `TrackingStatus` (closed set).
    Status {
        /// Label created, not yet with the carrier.
        Pending = "pending",
        /// Collected by the carrier.
        PickedUp = "picked_up",
        /// Held.
        OnHold = "on_hold",
        /// Cancelled.
        Cancelled = "cancelled",
        /// Delivered.
        Delivered = "delivered",
        /// Moving.
        InTransit = "in_transit",
        /// A delivery attempt failed.
        DeliveryFailed = "delivery_failed",
        /// Late.
        DeliveryDelayed = "delivery_delayed",
        /// On the final delivery route.
        OutForDelivery = "out_for_delivery",
        /// Waiting at a pickup point.
        ReadyForPickup = "ready_for_pickup",
        /// Returning to, or returned to, the sender.
        ReturnToSender = "return_to_sender",
        /// No information (also set when a tracker is retired after 90 days).
        Unknown = "unknown",
    }
}

string_enum! {
    /// SDK `TrackingIncidentReason` (closed set; the normalized reason Waybill adopts).
    Reason {
        /// Damaged by the carrier.
        CarrierDamagedParcel = "carrier_damaged_parcel",
        /// Sorting error.
        CarrierSortingError = "carrier_sorting_error",
        /// The carrier could not find the address.
        CarrierAddressNotFound = "carrier_address_not_found",
        /// Lost.
        CarrierParcelLost = "carrier_parcel_lost",
        /// The carrier ran out of time.
        CarrierNotEnoughTime = "carrier_not_enough_time",
        /// Vehicle issue.
        CarrierVehicleIssue = "carrier_vehicle_issue",
        /// Capacity exceeded.
        CarrierCapacityExceeded = "carrier_capacity_exceeded",
        /// Mechanical delay.
        CarrierMechanicalDelay = "carrier_mechanical_delay",
        /// Cancelled by the shipper.
        RetailerCancelled = "retailer_cancelled",
        /// Wrong data from the shipper.
        RetailerIncorrectData = "retailer_incorrect_data",
        /// Shipper not ready.
        RetailerNotReady = "retailer_not_ready",
        /// Wrong parcel.
        RetailerIncorrectParcel = "retailer_incorrect_parcel",
        /// Wrong dimensions.
        RetailerIncorrectDimensions = "retailer_incorrect_dimensions",
        /// Packaging issue.
        RetailerPackagingIssue = "retailer_packaging_issue",
        /// Refused.
        ConsigneeRefused = "consignee_refused",
        /// Business closed.
        ConsigneeBusinessClosed = "consignee_business_closed",
        /// Not available.
        ConsigneeNotAvailable = "consignee_not_available",
        /// Not home.
        ConsigneeNotHome = "consignee_not_home",
        /// Cancelled by the consignee.
        ConsigneeCancelled = "consignee_cancelled",
        /// Identity check failed.
        ConsigneeVerificationFailed = "consignee_verification_failed",
        /// Incorrect address.
        ConsigneeIncorrectAddress = "consignee_incorrect_address",
        /// Access restricted.
        ConsigneeAccessRestricted = "consignee_access_restricted",
        /// No safe place.
        ConsigneeSafePlaceUnavailable = "consignee_safe_place_unavailable",
        /// Customs delay.
        CustomsDelay = "customs_delay",
        /// Customs documentation.
        CustomsDocumentation = "customs_documentation",
        /// Duties unpaid.
        CustomsDutiesUnpaid = "customs_duties_unpaid",
        /// Prohibited goods.
        CustomsProhibited = "customs_prohibited",
        /// Customs inspection.
        CustomsInspection = "customs_inspection",
        /// Weather.
        WeatherDelay = "weather_delay",
        /// Natural disaster.
        NaturalDisaster = "natural_disaster",
        /// Force majeure.
        ForceMajeure = "force_majeure",
        /// Being researched.
        ParcelBeingResearched = "parcel_being_researched",
        /// Security issue.
        SecurityIssue = "security_issue",
        /// Regulatory hold.
        RegulatoryHold = "regulatory_hold",
        /// Unknown.
        Unknown = "unknown",
    }
}

/// First pass: the envelope without its object.
#[derive(Debug, Deserialize)]
pub(crate) struct WebhookHead {
    /// The event type as the server sends it: `tracker_updated`, `shipment_purchased`, …
    pub event: Option<String>,
    /// The event type as the documentation shows it (same values).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The stored event's id (`evt_…`), documented shape only.
    pub id: Option<String>,
    /// Whether the event belongs to a test-mode account (documented shape only).
    pub test_mode: Option<bool>,
}

/// A tracker webhook.
#[derive(Debug, Deserialize)]
pub(crate) struct TrackerWebhook {
    /// The tracker.
    pub data: Option<Tracker>,
}

/// A shipment webhook.
#[derive(Debug, Deserialize)]
pub(crate) struct ShipmentWebhook {
    /// The shipment.
    pub data: Option<Shipment>,
}

/// `Shipment` serializer output.
#[derive(Debug, Deserialize)]
pub(crate) struct Shipment {
    /// `shp_…`.
    pub id: Option<String>,
    /// `draft`, `created` (label bought), `cancelled`, `shipped`, `in_transit`, …
    pub status: Option<String>,
    /// Carrier (`ups`, `canadapost`, or a custom carrier's name).
    pub carrier_name: Option<String>,
    /// The configured carrier connection.
    pub carrier_id: Option<String>,
    /// Tracking number (absent on a draft).
    pub tracking_number: Option<String>,
    /// The carrier's service.
    pub service: Option<String>,
    /// The attached tracker (`trk_…`).
    pub tracker_id: Option<String>,
    /// Label file type (`PDF`, `ZPL`, `PNG`).
    pub label_type: Option<String>,
    /// Where Karrio serves the label (often a path on the Karrio server).
    pub label_url: Option<String>,
    /// Carrier tracking page.
    pub tracking_url: Option<String>,
    /// The rate bought.
    pub selected_rate: Option<Rate>,
    /// When the shipment was created (`YYYY-MM-DD HH:MM:SS.ffffff+00:00`).
    pub created_at: Option<String>,
    /// When it last changed (not in 2026.1's serializer; read when present).
    pub updated_at: Option<String>,
    /// Test mode.
    pub test_mode: Option<bool>,
}

/// `Rate` serializer output (the selected rate).
#[derive(Debug, Deserialize)]
pub(crate) struct Rate {
    /// Total charge.
    pub total_charge: Option<f64>,
    /// Currency of the charge.
    pub currency: Option<String>,
    /// The carrier's service.
    pub service: Option<String>,
}

/// `TrackingStatus` serializer output.
#[derive(Debug, Deserialize)]
pub(crate) struct Tracker {
    /// `trk_…`.
    pub id: Option<String>,
    /// Carrier (`ups`, `fedex`, `dhl_express`, `canadapost`, …).
    pub carrier_name: Option<String>,
    /// The configured carrier connection.
    pub carrier_id: Option<String>,
    /// Tracking number.
    pub tracking_number: Option<String>,
    /// Current status.
    pub status: Option<Status>,
    /// Scans, as the carrier integration listed them (most carriers: newest first).
    pub events: Option<Vec<Event>>,
    /// Carrier estimate (`YYYY-MM-DD`).
    pub estimated_delivery: Option<String>,
    /// Extra tracking details.
    pub info: Option<Info>,
    /// URL of the delivery photo.
    pub delivery_image_url: Option<String>,
    /// URL of the signature image.
    pub signature_image_url: Option<String>,
    /// Test mode.
    pub test_mode: Option<bool>,
}

/// `TrackingInfo` (all strings).
#[derive(Debug, Deserialize)]
pub(crate) struct Info {
    /// Who signed.
    pub signed_by: Option<String>,
    /// Carrier tracking page.
    pub carrier_tracking_link: Option<String>,
    /// Service.
    pub shipment_service: Option<String>,
}

/// `TrackingEvent`.
#[derive(Debug, Deserialize)]
pub(crate) struct Event {
    /// `YYYY-MM-DD`.
    pub date: Option<String>,
    /// `HH:MM AM/PM` (often `%H:%M %p`, e.g. `14:30 PM`).
    pub time: Option<String>,
    /// `YYYY-MM-DDTHH:MM:SS.sssZ` — the carrier's wall-clock time with a literal `Z`.
    pub timestamp: Option<String>,
    /// Normalized status of this event (often absent).
    pub status: Option<Status>,
    /// The carrier's raw code.
    pub code: Option<String>,
    /// Normalized incident reason (exception events only).
    pub reason: Option<Reason>,
    /// The carrier's text.
    pub description: Option<String>,
    /// Location as one string.
    pub location: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
}
