//! What the workflows need from partners, as traits the connectors implement: a carrier
//! booking service ([`Carriers`], Karrio's in `connectors::karrio::booking`) and the ERP
//! that owns the order ([`Erp`], Odoo's in `connectors::odoo::workflow`).
//!
//! Every call is one step of a workflow: it may be retried after a timeout or a crash, so
//! each must be safe to repeat — a booking is looked up by its reference before it is
//! made again ([`Carriers::find`]); an ERP write reads before it writes and carries a
//! marker so that a second call changes nothing.

use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use waybill_model::FailureKind;

/// A port call in flight.
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PortError>> + Send + 'a>>;

/// Why a port call failed, classified once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortError {
    /// `Retryable`: the partner is down or slow, try again; `Permanent`: the partner
    /// refused (a carrier rejects the shipment, a void is refused), trying again will
    /// not help; `Auth`: credentials; `InvalidInput`: the request cannot be made.
    pub kind: FailureKind,
    /// The partner's own code when it gave one (`MOCK_PURCHASE_REJECTED`), else a short
    /// stable code of ours (`karrio.unreachable`, `odoo.not_found`).
    pub code: String,
    /// What happened, for people.
    pub message: String,
    /// HTTP status of the partner's answer, when there was one.
    pub status: Option<u16>,
}

impl PortError {
    /// A failure of this kind.
    pub fn new(kind: FailureKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        PortError {
            kind,
            code: code.into(),
            message: message.into(),
            status: None,
        }
    }
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.kind.as_str(),
            self.message
        )
    }
}

/// A postal address, as carriers want it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Address {
    /// Person.
    pub person_name: Option<String>,
    /// Company.
    pub company_name: Option<String>,
    /// Street and number.
    pub address_line1: Option<String>,
    /// Second line.
    pub address_line2: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// State or province code.
    pub state_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country_code: String,
    /// Phone.
    pub phone_number: Option<String>,
    /// E-mail.
    pub email: Option<String>,
}

/// One parcel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    /// Weight in kilograms.
    pub weight_kg: f64,
    /// Length, width, height in centimetres, when known.
    pub length_cm: Option<f64>,
    /// Width, cm.
    pub width_cm: Option<f64>,
    /// Height, cm.
    pub height_cm: Option<f64>,
    /// The parcel's own reference (an SSCC, a package name), when known.
    pub reference: Option<String>,
}

/// What to quote and book.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BookingRequest {
    /// Unique per workflow and booking attempt: the booking service keeps it on the
    /// booking so that [`Carriers::find`] finds it again after a crash.
    pub reference: String,
    /// From.
    pub shipper: Address,
    /// To.
    pub recipient: Address,
    /// At least one.
    pub parcels: Vec<Parcel>,
    /// The carriers (the booking service's connection ids) to quote; empty = every one.
    pub carriers: Vec<String>,
}

/// One price for one carrier and service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// The booking service's id of this quote (Karrio: `rat_…`).
    pub quote_id: String,
    /// The carrier connection's id (Karrio: `carrier_id`).
    pub carrier: String,
    /// The carrier's name (Karrio: `carrier_name`).
    pub carrier_name: String,
    /// Service code.
    pub service: String,
    /// Total charge, a decimal string as the service gave it.
    pub amount: String,
    /// ISO 4217.
    pub currency: String,
    /// Transit days, when given.
    pub transit_days: Option<u32>,
}

/// A booking not bought yet, with its quotes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    /// The booking service's id (Karrio: `shp_…`).
    pub booking_id: String,
    /// Every quote, as the service returned them.
    pub quotes: Vec<Quote>,
}

/// A label document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// `PDF`, `ZPL`, `PNG`.
    pub format: String,
    /// The document's bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// A bought label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Booked {
    /// The booking service's id (Karrio: `shp_…`).
    pub booking_id: String,
    /// The carrier connection's id.
    pub carrier: String,
    /// The carrier's name.
    pub carrier_name: String,
    /// Service code.
    pub service: String,
    /// Tracking number.
    pub tracking_number: String,
    /// Price paid, decimal string.
    pub amount: String,
    /// ISO 4217.
    pub currency: String,
    /// The tracker the service registered, when it did (Karrio: `trk_…`).
    pub tracker_id: Option<String>,
    /// The label, when the service returned it.
    pub label: Option<Label>,
}

/// What the booking service holds for a reference.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// Nothing: book.
    Nothing,
    /// A draft (quoted, not bought): buy from it.
    Draft(Draft),
    /// Bought: record it, do not book again.
    Booked(Booked),
    /// Voided (its booking id).
    Cancelled(String),
}

/// A carrier booking service (rates, labels, voids).
pub trait Carriers: Send + Sync + 'static {
    /// The booking made under `reference`, if any (a bought one before a draft).
    fn find<'a>(&'a self, reference: &'a str) -> PortFuture<'a, Found>;
    /// Creates a draft booking and returns its quotes.
    fn quote<'a>(&'a self, req: &'a BookingRequest) -> PortFuture<'a, Draft>;
    /// Buys the label of one quote of a draft. A carrier that refuses answers a
    /// `Permanent` error; the draft stays and another quote can be bought.
    fn buy<'a>(&'a self, booking_id: &'a str, quote_id: &'a str) -> PortFuture<'a, Booked>;
    /// Voids a bought label. A refusal (the label was already scanned) is `Permanent`.
    fn void<'a>(&'a self, booking_id: &'a str) -> PortFuture<'a, ()>;
}

/// The ERP's view of an order ready to ship: one outgoing picking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderContext {
    /// The picking's id.
    pub picking_id: i64,
    /// The picking's name (`WH/OUT/00012`).
    pub picking_name: String,
    /// Its state (Odoo: `assigned` = stock reserved, ready).
    pub state: String,
    /// The sale order's name, when there is one.
    pub order_name: Option<String>,
    /// The company's id.
    pub company_id: Option<i64>,
    /// The customer (the picking's partner).
    pub customer_id: Option<i64>,
    /// The delivery method's name, when set (a hint for the service level).
    pub carrier_hint: Option<String>,
    /// From (the warehouse's or company's address).
    pub shipper: Address,
    /// To.
    pub recipient: Address,
    /// Total weight in kilograms (the picking's), 0 when unknown.
    pub weight_kg: f64,
    /// The sale order's total with taxes (a decimal string), when there is one.
    #[serde(default)]
    pub order_amount: Option<String>,
}

/// A customer invoice in the ERP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    /// The ERP's id.
    pub id: i64,
    /// Its number (`INV/2026/00012`), once posted.
    pub name: String,
    /// Total with taxes, a decimal string.
    pub amount: String,
    /// ISO 4217.
    pub currency: String,
    /// `posted` (or the ERP's state when it could not be posted).
    pub state: String,
}

/// The ERP that owns orders and pickings (Odoo).
pub trait Erp: Send + Sync + 'static {
    /// Reads the picking `picking_id` with what a booking needs.
    fn order_context(&self, picking_id: i64) -> PortFuture<'_, OrderContext>;
    /// Records a booking on the picking: tracking reference, carrier, shipping cost and
    /// the label as an attachment; then tells the customer (a message with the tracking
    /// number that the ERP sends). `marker` is unique per booking: a second call with
    /// the same marker changes nothing.
    fn record_booking<'a>(
        &'a self,
        picking_id: i64,
        booked: &'a Booked,
        marker: &'a str,
    ) -> PortFuture<'a, ()>;
    /// Undoes a booking on the picking after its label was voided: clears the tracking
    /// reference and the shipping cost when they are still the voided booking's (a later
    /// scan of that number must not land on this picking), and posts `body` as an internal
    /// note (once per `marker`). The label attachment stays, for the record.
    fn record_void<'a>(
        &'a self,
        picking_id: i64,
        booked: &'a Booked,
        marker: &'a str,
        body: &'a str,
    ) -> PortFuture<'a, ()>;
    /// Marks the activity scheduled with `marker` on the picking as done (a person
    /// resolved what it asked for); nothing when there is none or it is done already.
    fn close_activity<'a>(&'a self, picking_id: i64, marker: &'a str) -> PortFuture<'a, ()>;
    /// Posts an internal note on the picking (once per `marker`).
    fn note<'a>(&'a self, picking_id: i64, marker: &'a str, body: &'a str) -> PortFuture<'a, ()>;
    /// Creates the customer invoice of the picking's sale order and posts it, once per
    /// `marker` (a second call returns the invoice the first made). The ERP refusing
    /// because nothing is invoiceable yet (the picking is not validated) is a
    /// `Permanent` error with code `odoo.nothing_to_invoice`.
    fn invoice<'a>(&'a self, picking_id: i64, marker: &'a str) -> PortFuture<'a, Invoice>;
    /// Schedules an activity (a to-do for the team) on the picking (once per `marker`).
    fn activity<'a>(
        &'a self,
        picking_id: i64,
        marker: &'a str,
        summary: &'a str,
        note: &'a str,
    ) -> PortFuture<'a, ()>;
}
