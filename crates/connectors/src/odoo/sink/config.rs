//! Configuration of the Odoo sink and its default action table.

use super::*;

/// One thing the sink does in Odoo for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Write `carrier_tracking_ref` (and `carrier_id` through `carriers`).
    SetTracking,
    /// `button_validate` the picking, completing backorder / SMS wizards.
    Validate,
    /// Post a note in the picking's chatter.
    Chatter,
    /// Schedule an exception activity on the picking.
    Activity,
    /// Invoice the picking's sale order through Odoo's public flow
    /// (`sale.advance.payment.inv` → `create_invoices`, then `account.move.action_post`).
    Invoice,
    /// Write a confirmed freight charge's total into the picking's `carrier_price`
    /// ("Shipping Cost", from `stock_delivery`) when it is in the company's currency.
    RecordFreight,
}

/// `[sinks.<name>]` with `type = "odoo"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdooSinkConfig {
    /// How to reach Odoo.
    pub connection: OdooConfig,
    /// The shipment facts Odoo owns (set from `[ownership]` for the `odoo` sources that
    /// read the same database; not a TOML key): the sink never writes them.
    #[serde(skip)]
    pub odoo_owns: std::collections::BTreeSet<waybill_model::ownership::Fact>,
    /// Event type → actions; replaces the default table for the types it lists.
    #[serde(default)]
    pub actions: BTreeMap<String, Vec<Action>>,
    /// Carrier name or code in events → `delivery.carrier` id in Odoo.
    #[serde(default)]
    pub carriers: BTreeMap<String, i64>,
    /// User who gets exception activities (default: the API user).
    #[serde(default)]
    pub activity_user_id: Option<i64>,
    /// Customer SMS when Waybill validates a picking: `skip` (default: none, and Odoo's
    /// one-time "send SMS on validation?" question is left for a person to answer) or
    /// `company` (as the company's setting says; the one-time question is answered "send",
    /// which leaves that setting as it is).
    #[serde(default)]
    pub validate_sms: ValidateSms,
    /// Post the chatter notes on the picking's sale order too (default true).
    #[serde(default = "default_true")]
    pub chatter_on_order: bool,
    /// Odoo companies (ids) this sink acts for; empty: every company the API user has.
    #[serde(default)]
    pub companies: Vec<i64>,
    /// Sale order fields an event's `po` reference is looked up in, in order of preference
    /// (default `["client_order_ref", "name"]`: the customer reference, then the order name).
    #[serde(default = "default_order_ref_match")]
    pub order_ref_match: Vec<OrderRefField>,
    /// An advance ship notice line (`data.lines`) that matches no move of the picking:
    /// `refuse` the event (default, `odoo.asn_line_unmatched`) or `ignore` the line.
    #[serde(default)]
    pub unmatched_lines: UnmatchedLines,
    /// How long a shipment's first pending event waits for the next ones (default 1s).
    #[serde(default = "default_window", deserialize_with = "duration::de")]
    pub coalesce_window: Duration,
    /// Most events of one shipment coalesced into one set of writes (default 50).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Shipments handled at once; their reads share requests (default 32). Requests in
    /// flight stay under `connection.max_concurrency`.
    #[serde(default = "default_in_flight")]
    pub pickings_in_flight: usize,
}

/// See [`OdooSinkConfig::validate_sms`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidateSms {
    /// `skip_sms` in the validation's context.
    #[default]
    Skip,
    /// Follow the company's setting.
    Company,
}

/// A field of `sale.order` that an event's `po` reference may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderRefField {
    /// The customer reference (`client_order_ref`): the buyer's purchase order number.
    ClientOrderRef,
    /// The order's own name (`S00025`).
    Name,
}

impl OrderRefField {
    /// The field's name in Odoo.
    pub fn field(self) -> &'static str {
        match self {
            OrderRefField::ClientOrderRef => "client_order_ref",
            OrderRefField::Name => "name",
        }
    }
}

/// See [`OdooSinkConfig::unmatched_lines`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedLines {
    /// Refuse the event (permanent, `odoo.asn_line_unmatched`), naming the line.
    #[default]
    Refuse,
    /// Leave the line out and validate the others.
    Ignore,
}

fn default_order_ref_match() -> Vec<OrderRefField> {
    vec![OrderRefField::ClientOrderRef, OrderRefField::Name]
}

fn default_true() -> bool {
    true
}
fn default_window() -> Duration {
    Duration::from_secs(1)
}
fn default_max_batch() -> usize {
    50
}
fn default_in_flight() -> usize {
    32
}

/// The default action table.
pub fn default_actions(ty: EventType) -> Vec<Action> {
    use Action::*;
    use EventType::*;
    match ty {
        ShipmentBooked | ShipmentLabelCreated | ShipmentManifested => vec![SetTracking, Chatter],
        ShipmentDispatched => vec![SetTracking, Validate, Chatter],
        ShipmentInTransit
        | ShipmentOutForDelivery
        | ShipmentAvailableForPickup
        | ShipmentDelivered
        | ShipmentReturnInitiated
        | ShipmentReturned
        | PodCaptured => vec![Chatter],
        ShipmentDeliveryAttempted
        | ShipmentException
        | ShipmentDelayed
        | ShipmentOnHold
        | ShipmentBookingRejected => vec![Activity, Chatter],
        FreightChargeConfirmed => vec![RecordFreight, Chatter],
        OrderReleased | OrderCancelled | WarehousePicked | WarehousePacked | ShipmentCancelled
        | ShipmentCorrected | ShipmentLinked | InvoicePosted | PaymentReceived | TaskOpened
        | TaskResolved | CaseOpened | CaseUpdated | CaseEscalated | CaseClosed => vec![],
    }
}
