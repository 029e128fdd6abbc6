//! The engine's [`Erp`] port for Odoo: what an order-to-ship workflow reads from and writes
//! to Odoo — the outgoing picking with its addresses and weight (`order.rs`), the booking
//! recorded on it and undone when its label is voided (`booking.rs`: tracking reference,
//! carrier, shipping cost, the label as an attachment, a message that Odoo e-mails to the
//! customer), internal notes and to-dos (`chatter.rs`), and the customer invoice
//! (`invoicing.rs`).
//!
//! Every write reads first, so a step retried after a timeout or a crash changes nothing
//! the first attempt did: the tracking reference, carrier and cost are written only where
//! they differ (and undone only while they are still the booking's); the label is
//! attached unless an attachment of that name is already on the picking; messages, notes
//! and activities carry the caller's marker and are posted only when no message (or
//! activity, open or done) of the record carries it; a to-do is marked done only while
//! it is open.
//!
//! Markers are searched with `ilike` on the HTML Odoo stores, and read back from it:
//! Odoo escapes a text body (`&`, `<`, `>`; Odoo 18 and 19 store quotes as they are,
//! markupsafe alone would write `&#34;` and `&#39;`), so both forms are recognised.
//!
//! Fields read (Odoo 18 with `stock_delivery`, `sale_stock`): `stock.picking` `name`,
//! `state`, `origin`, `sale_id`, `company_id`, `partner_id`, `picking_type_id`,
//! `carrier_id`, `carrier_tracking_ref`, `carrier_tracking_url`, `carrier_price`,
//! `weight` (stored), `shipping_weight` (packages included), `weight_uom_name`; the
//! shipper is the picking type's warehouse address (`stock.warehouse.partner_id`), else
//! the company's (`res.company.partner_id`); addresses are `res.partner` records, their
//! country by its related `country_code`, their state by `res.country.state.code`;
//! `sale.order` `amount_total`, `currency_id`, `invoice_ids`; `account.move` `name`,
//! `state`, `amount_total`, `currency_id`; `res.currency.decimal_places` (amounts are
//! decimal strings with the currency's decimals); `mail.message` `body`, `res_id`;
//! `mail.activity` `note`, `summary`.
//! Writes run with `allowed_company_ids` set to the picking's company, as the sink's do.

mod booking;
mod chatter;
mod currency;
mod invoicing;
mod order;

use super::client::Page;
use super::sink::m2o;
use super::sink::notes::plain;
use super::{OdooClient, OdooConfig, OdooError};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use waybill_engine::config::ConfigError;
use waybill_engine::workflow::ports::{Booked, Erp, Invoice, OrderContext, PortError, PortFuture};
use waybill_model::FailureKind;

/// The fields of a picking read by every call.
const PICKING_FIELDS: &[&str] = &[
    "name",
    "state",
    "origin",
    "sale_id",
    "company_id",
    "partner_id",
    "picking_type_id",
    "carrier_id",
    "carrier_tracking_ref",
    "carrier_price",
    "weight",
    "shipping_weight",
    "weight_uom_name",
];

/// What the Odoo ERP port needs besides its connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdooErpConfig {
    /// A booking's carrier (its connection id, else its carrier name) → `delivery.carrier`
    /// id in Odoo, written to the picking's `carrier_id`. A carrier not listed leaves the
    /// picking's carrier as it is.
    #[serde(default)]
    pub carriers: BTreeMap<String, i64>,
    /// User who gets the to-dos (default: the API user).
    #[serde(default)]
    pub activity_user_id: Option<i64>,
    /// Post the booking to the customer (a message on the sale order that Odoo e-mails to
    /// the picking's partner); default true.
    #[serde(default = "yes")]
    pub notify_customer: bool,
}

fn yes() -> bool {
    true
}

impl Default for OdooErpConfig {
    fn default() -> Self {
        OdooErpConfig {
            carriers: BTreeMap::new(),
            activity_user_id: None,
            notify_customer: true,
        }
    }
}

/// Odoo as the workflows' ERP.
pub struct OdooErp {
    client: OdooClient,
    carriers: BTreeMap<String, i64>,
    activity_user_id: Option<i64>,
    notify_customer: bool,
    /// Currency code of each company, read once.
    currencies: Mutex<HashMap<i64, Option<String>>>,
    /// Decimal places of each currency, read once.
    decimals: Mutex<HashMap<i64, u32>>,
}

/// A failed Odoo call as a port error: its kind and code decided by [`OdooError`].
fn port(e: OdooError) -> PortError {
    let status = match &e {
        OdooError::Http { status } => Some(*status),
        _ => None,
    };
    PortError {
        kind: e.kind(),
        code: e.code().to_owned(),
        message: e.to_string(),
        status,
    }
}

/// A char field's text (`false` when empty).
fn text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The part of a marker that reads the same escaped or not, to search for with `ilike`:
/// its longest run without a character HTML escapes.
fn search_term(marker: &str) -> &str {
    marker
        .split(['&', '<', '>', '"', '\''])
        .max_by_key(|s| s.len())
        .unwrap_or("")
}

/// Whether the HTML of `field` of one of `rows` says `marker`. Odoo 18 and 19 store the
/// quotes of a text body as they are; markupsafe (and other versions) write `&#34;` and
/// `&#39;`, Python's `html.escape` `&#x22;` and `&#x27;`: every form reads back as the
/// character.
fn carries_marker(rows: &[Value], field: &str, marker: &str) -> bool {
    rows.iter().any(|r| {
        r[field].as_str().is_some_and(|b| {
            let b = b
                .replace("&#34;", "&quot;")
                .replace("&#x22;", "&quot;")
                .replace("&#x27;", "&#39;")
                .replace("&apos;", "&#39;");
            plain(&b).contains(marker)
        })
    })
}

/// The picking's company as the context of a write.
fn company_context(p: &Value) -> Option<Value> {
    m2o(&p["company_id"]).map(|c| json!({"allowed_company_ids": [c]}))
}

fn with_context(mut k: Map<String, Value>, ctx: &Option<Value>) -> Map<String, Value> {
    if let Some(c) = ctx {
        k.insert("context".into(), c.clone());
    }
    k
}

impl OdooErp {
    /// Validates the configuration (no network): `connection` as for the sink.
    pub fn build(
        connection: &OdooConfig,
        cfg: &OdooErpConfig,
    ) -> Result<OdooErp, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let client = OdooClient::build(connection)
            .map_err(|es| errs.extend(ConfigError::all_under(es, "connection")))
            .ok();
        for (name, id) in &cfg.carriers {
            if *id <= 0 {
                errs.push(ConfigError::new(
                    format!("carriers.{name}"),
                    "must be the id of a delivery.carrier (> 0)",
                ));
            }
        }
        match client {
            Some(client) if errs.is_empty() => Ok(OdooErp {
                client,
                carriers: cfg.carriers.clone(),
                activity_user_id: cfg.activity_user_id,
                notify_customer: cfg.notify_customer,
                currencies: Mutex::new(HashMap::new()),
                decimals: Mutex::new(HashMap::new()),
            }),
            _ => Err(errs),
        }
    }

    /// Requests sent to Odoo so far.
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    /// Every record of `model` matching `domain` (`fields` of them).
    async fn read(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
        context: Option<&Value>,
    ) -> Result<Vec<Value>, PortError> {
        let page = Page {
            order: "id asc",
            limit: 0,
            offset: 0,
        };
        self.client
            .search_read_with(None, model, domain, fields, page, context)
            .await
            .map_err(port)
    }

    /// One record by id, if it exists.
    async fn one(&self, model: &str, id: i64, fields: &[&str]) -> Result<Option<Value>, PortError> {
        let rows = self
            .read(model, json!([["id", "=", id]]), fields, None)
            .await?;
        Ok(rows.into_iter().next())
    }

    /// The picking `id` ([`PICKING_FIELDS`]); `odoo.not_found` when it does not exist.
    async fn picking(&self, id: i64) -> Result<Value, PortError> {
        self.one("stock.picking", id, PICKING_FIELDS)
            .await?
            .ok_or_else(|| {
                PortError::new(
                    FailureKind::Permanent,
                    "odoo.not_found",
                    format!("stock.picking {id} does not exist (or the API user may not read it)"),
                )
            })
    }

    /// The records of `model` matching `domain` that carry `marker` in one of `fields`
    /// (searched with `ilike`, then read back from the HTML).
    async fn carrying(
        &self,
        model: &str,
        mut domain: Vec<Value>,
        fields: &[&str],
        marker: &str,
        context: Option<&Value>,
    ) -> Result<Vec<Value>, PortError> {
        let term = search_term(marker);
        // Odoo's prefix notation: `|` A `|` B C is A or B or C.
        for _ in 1..fields.len() {
            domain.push(json!("|"));
        }
        for f in fields {
            domain.push(json!([f, "ilike", term]));
        }
        let rows = self
            .read(model, Value::Array(domain), fields, context)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|r| {
                fields
                    .iter()
                    .any(|f| carries_marker(std::slice::from_ref(r), f, marker))
            })
            .collect())
    }

    /// Whether a record of `model` matching `domain` carries `marker` in `field`.
    async fn marked(
        &self,
        model: &str,
        domain: Vec<Value>,
        field: &str,
        marker: &str,
        context: Option<&Value>,
    ) -> Result<bool, PortError> {
        let rows = self
            .carrying(model, domain, &[field], marker, context)
            .await?;
        Ok(!rows.is_empty())
    }

    /// Whether a message of the record carries `marker`.
    async fn posted(&self, model: &str, id: i64, marker: &str) -> Result<bool, PortError> {
        let on = vec![json!(["model", "=", model]), json!(["res_id", "=", id])];
        self.marked("mail.message", on, "body", marker, None).await
    }

    /// Calls `method` of the record `model` `id` with keyword arguments, in `ctx`.
    async fn call_on(
        &self,
        model: &str,
        id: i64,
        method: &str,
        args: Map<String, Value>,
        ctx: &Option<Value>,
    ) -> Result<Value, PortError> {
        self.client
            .call(model, method, Some(&[id]), with_context(args, ctx))
            .await
            .map_err(port)
    }
}

impl Erp for OdooErp {
    fn order_context(&self, picking_id: i64) -> PortFuture<'_, OrderContext> {
        Box::pin(self.read_order(picking_id))
    }

    fn record_booking<'a>(
        &'a self,
        picking_id: i64,
        booked: &'a Booked,
        marker: &'a str,
    ) -> PortFuture<'a, ()> {
        Box::pin(self.record(picking_id, booked, marker))
    }

    fn record_void<'a>(
        &'a self,
        picking_id: i64,
        booked: &'a Booked,
        marker: &'a str,
        body: &'a str,
    ) -> PortFuture<'a, ()> {
        Box::pin(self.unbook(picking_id, booked, marker, body))
    }

    fn close_activity<'a>(&'a self, picking_id: i64, marker: &'a str) -> PortFuture<'a, ()> {
        Box::pin(self.close(picking_id, marker))
    }

    fn note<'a>(&'a self, picking_id: i64, marker: &'a str, body: &'a str) -> PortFuture<'a, ()> {
        Box::pin(self.post_note(picking_id, marker, body))
    }

    fn invoice<'a>(&'a self, picking_id: i64, marker: &'a str) -> PortFuture<'a, Invoice> {
        Box::pin(self.make_invoice(picking_id, marker))
    }

    fn activity<'a>(
        &'a self,
        picking_id: i64,
        marker: &'a str,
        summary: &'a str,
        note: &'a str,
    ) -> PortFuture<'a, ()> {
        Box::pin(self.schedule(picking_id, marker, summary, note))
    }
}

#[cfg(test)]
mod fake_tests;
#[cfg(test)]
mod tests;
