//! EasyPost's webhook payload as it is sent: an `Event` whose `result` is a `Tracker`
//! (<https://docs.easypost.com/docs/events>, <https://docs.easypost.com/docs/trackers>).
//!
//! Only the fields the mapping reads are declared; serde ignores the rest (`mode`,
//! `pending_urls`, `fees`, `weight`, …), so fields EasyPost adds never break parsing. Every
//! field is optional here; the mapping decides which ones it needs and names the missing
//! one by its JSON path.

use crate::carrier::string_enum::string_enum;
use serde::Deserialize;

string_enum! {
    /// `Tracker.status` and `TrackingDetail.status`: a closed set per the API reference.
    Status {
        /// No information from the carrier yet.
        Unknown = "unknown",
        /// Label created; the carrier does not have the parcel.
        PreTransit = "pre_transit",
        /// Moving.
        InTransit = "in_transit",
        /// On the final delivery route.
        OutForDelivery = "out_for_delivery",
        /// Delivered.
        Delivered = "delivered",
        /// Waiting at a carrier location.
        AvailableForPickup = "available_for_pickup",
        /// Returning to, or returned to, the sender.
        ReturnToSender = "return_to_sender",
        /// A problem (weather, refusal, damage, …); not terminal.
        Failure = "failure",
        /// Cancelled.
        Cancelled = "cancelled",
        /// The tracker itself failed (carrier error).
        Error = "error",
    }
}

string_enum! {
    /// `status_detail`: EasyPost's finer code (list from the official client libraries'
    /// `TrackerStatusDetail` type; EasyPost adds values over time).
    StatusDetail {
        /// Address corrected.
        AddressCorrection = "address_correction",
        /// Arrived at the destination.
        ArrivedAtDestination = "arrived_at_destination",
        /// Arrived at a facility.
        ArrivedAtFacility = "arrived_at_facility",
        /// Arrived at a pickup location.
        ArrivedAtPickupLocation = "arrived_at_pickup_location",
        /// Carrier awaits information.
        AwaitingInformation = "awaiting_information",
        /// Cancelled.
        Cancelled = "cancelled",
        /// Damaged.
        Damaged = "damaged",
        /// Delayed.
        Delayed = "delayed",
        /// Delivery exception.
        DeliveryException = "delivery_exception",
        /// Departed a facility.
        DepartedFacility = "departed_facility",
        /// Departed the origin facility.
        DepartedOriginFacility = "departed_origin_facility",
        /// Tracking expired.
        Expired = "expired",
        /// Failure.
        Failure = "failure",
        /// Held.
        Held = "held",
        /// In transit.
        InTransit = "in_transit",
        /// Label created.
        LabelCreated = "label_created",
        /// Lost.
        Lost = "lost",
        /// Missorted.
        Missorted = "missorted",
        /// Out for delivery.
        OutForDelivery = "out_for_delivery",
        /// Received at the destination facility.
        ReceivedAtDestinationFacility = "received_at_destination_facility",
        /// Received at the origin facility.
        ReceivedAtOriginFacility = "received_at_origin_facility",
        /// Refused.
        Refused = "refused",
        /// Return.
        Return = "return",
        /// Generic update.
        StatusUpdate = "status_update",
        /// Handed to the destination carrier.
        TransferredToDestinationCarrier = "transferred_to_destination_carrier",
        /// Transit exception.
        TransitException = "transit_exception",
        /// No detail.
        Unknown = "unknown",
        /// Weather delay.
        WeatherDelay = "weather_delay",
    }
}

/// First pass: enough of the `Event` to decide whether it is a tracker event.
#[derive(Debug, Deserialize)]
pub(crate) struct EventHead {
    /// `evt_…`, the idempotency key.
    pub id: Option<String>,
    /// `tracker.created`, `tracker.updated`, `batch.updated`, …
    pub description: Option<String>,
    /// The object the event is about.
    pub result: Option<ResultHead>,
}

/// The `object` discriminator of `Event.result`.
#[derive(Debug, Deserialize)]
pub(crate) struct ResultHead {
    /// `Tracker`, `Batch`, `Refund`, …
    pub object: Option<String>,
}

/// Second pass: a tracker event in full.
#[derive(Debug, Deserialize)]
pub(crate) struct TrackerEvent {
    /// The tracker.
    pub result: Option<Tracker>,
}

/// `Tracker` object.
#[derive(Debug, Deserialize)]
pub(crate) struct Tracker {
    /// `trk_…`.
    pub id: Option<String>,
    /// The carrier's tracking code.
    pub tracking_code: Option<String>,
    /// Carrier name as EasyPost spells it (`USPS`, `FedEx`, `UPS`, `DHLExpress`, …).
    pub carrier: Option<String>,
    /// Current status.
    pub status: Option<Status>,
    /// Current status detail.
    pub status_detail: Option<StatusDetail>,
    /// Last change, RFC 3339.
    pub updated_at: Option<String>,
    /// Who signed for the parcel.
    pub signed_by: Option<String>,
    /// Carrier's estimated delivery, RFC 3339.
    pub est_delivery_date: Option<String>,
    /// `shp_…` when the label was bought through EasyPost.
    pub shipment_id: Option<String>,
    /// Public tracking page.
    pub public_url: Option<String>,
    /// Whether this tracker follows a return label.
    pub is_return: Option<bool>,
    /// The scan history, oldest first.
    pub tracking_details: Option<Vec<TrackingDetail>>,
    /// Extra carrier data.
    pub carrier_detail: Option<CarrierDetail>,
}

/// One scan (`TrackingDetail`).
#[derive(Debug, Deserialize)]
pub(crate) struct TrackingDetail {
    /// Carrier message.
    pub message: Option<String>,
    /// Status at this scan.
    pub status: Option<Status>,
    /// Detail at this scan.
    pub status_detail: Option<StatusDetail>,
    /// When; local zone when EasyPost could geocode the location, else UTC.
    pub datetime: Option<String>,
    /// The carrier's own event code (e.g. FedEx `AR`).
    pub carrier_code: Option<String>,
    /// Where.
    pub tracking_location: Option<TrackingLocation>,
}

/// `TrackingLocation`.
#[derive(Debug, Deserialize)]
pub(crate) struct TrackingLocation {
    /// City.
    pub city: Option<String>,
    /// State or province.
    pub state: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Postal code.
    pub zip: Option<String>,
}

/// `CarrierDetail`.
#[derive(Debug, Deserialize)]
pub(crate) struct CarrierDetail {
    /// Service level.
    pub service: Option<String>,
    /// Estimated delivery date in the destination's zone.
    pub est_delivery_date_local: Option<String>,
    /// Estimated delivery time in the destination's zone.
    pub est_delivery_time_local: Option<String>,
    /// Guaranteed delivery date, if the service has one.
    pub guaranteed_delivery_date: Option<String>,
}
