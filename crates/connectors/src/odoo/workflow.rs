//! The engine's [`Erp`] port for Odoo: what an order-to-ship workflow reads from and writes
//! to Odoo — the outgoing picking with its addresses and weight, the booking recorded on it
//! (tracking reference, carrier, shipping cost, the label as an attachment, a message that
//! Odoo e-mails to the customer), internal notes and to-dos, and the customer invoice.
//!
//! Every write reads first, so a step retried after a timeout or a crash changes nothing
//! the first attempt did: the tracking reference, carrier and cost are written only where
//! they differ; the label is attached unless an attachment of that name is already on the
//! picking; messages, notes and activities carry the caller's marker and are posted only
//! when no message (or activity, open or done) of the record carries it.
//!
//! Invoicing goes through Odoo's public flow, shared with the sink (`sink::money`):
//! `sale.advance.payment.inv` ("delivered quantities") → `create_invoices`, then
//! `account.move.action_post`. The invoice made under a marker is the one whose chatter
//! has the port's internal note with that marker (posted on the draft right after Odoo
//! made it; the invoice's own fields stay as Odoo fills them — `ref` is the customer's
//! reference, printed on the invoice). A retry finds it and posts it if it is still a
//! draft; a draft of the order without the port's note (left by a crash between Odoo
//! making it and the note) is taken over rather than asking Odoo for another invoice,
//! which it would refuse (the draft already holds the delivered quantities).
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
//! decimal strings with the currency's decimals).
//! Writes run with `allowed_company_ids` set to the picking's company, as the sink's do.

use super::client::Page;
use super::sink::money::{create_invoices, post_invoices};
use super::sink::notes::{html, plain};
use super::sink::{kw, m2o};
use super::{OdooClient, OdooConfig, OdooError};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use waybill_engine::config::ConfigError;
use waybill_engine::workflow::ports::{
    Address, Booked, Erp, Invoice, Label, OrderContext, PortError, PortFuture,
};
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

/// The fields of an address.
const PARTNER_FIELDS: &[&str] = &[
    "name",
    "is_company",
    "commercial_company_name",
    "street",
    "street2",
    "city",
    "zip",
    "state_id",
    "country_code",
    "phone",
    "email",
];

/// The fields of an invoice.
const INVOICE_FIELDS: &[&str] = &["name", "state", "amount_total", "currency_id"];

/// The start of the internal note the port posts on an invoice it made; the caller's
/// marker ends it.
const INVOICE_NOTE: &str = "Invoice made by Waybill";

/// Kilograms in a pound (Odoo's `uom.product_uom_lb`).
const KG_PER_LB: f64 = 0.453_592_37;

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

/// Whether the HTML of `field` of one of `rows` says `marker` (Odoo escapes a text body
/// as markupsafe does: `"` as `&#34;`).
fn carries_marker(rows: &[Value], field: &str, marker: &str) -> bool {
    rows.iter().any(|r| {
        r[field]
            .as_str()
            .is_some_and(|b| plain(&b.replace("&#34;", "&quot;")).contains(marker))
    })
}

/// Whether Odoo refused to invoice because no line has a quantity to invoice (products
/// invoiced on delivery, not delivered yet): `UserError` "Cannot create an invoice. No
/// items are available to invoice." (Odoo 17 to 19), "There is no invoiceable line."
/// (Odoo 16 and before). Odoo words it in English unless the call names a `lang`.
fn nothing_to_invoice(e: &OdooError) -> bool {
    match e {
        OdooError::Server { name, message } => {
            name.ends_with("UserError")
                && (message.contains("No items are available to invoice")
                    || message.contains("There is no invoiceable line"))
        }
        _ => false,
    }
}

/// An amount as a decimal string with `places` decimals (`287.5` → `287.50`): Odoo keeps
/// monetary fields rounded to their currency, the float read back is printed at that
/// precision, so no binary noise (`287.49999999999997`) reaches the caller.
fn money(amount: f64, places: u32) -> String {
    let s = format!("{amount:.*}", places as usize);
    match s.strip_prefix('-') {
        Some(zero) if zero.bytes().all(|b| b == b'0' || b == b'.') => zero.to_owned(),
        _ => s,
    }
}

/// The invoices of a sale order, as the port tells its own from others.
struct OrderInvoices {
    /// Every invoice of the order ([`INVOICE_FIELDS`]), oldest first.
    all: Vec<Value>,
    /// The port's notes on them (`res_id`, `body`).
    notes: Vec<Value>,
}

impl OrderInvoices {
    fn notes_on(&self, inv: &Value) -> Vec<Value> {
        self.notes
            .iter()
            .filter(|n| n["res_id"] == inv["id"])
            .cloned()
            .collect()
    }

    /// The invoice made under `marker`.
    fn made_under(&self, marker: &str) -> Option<&Value> {
        self.all
            .iter()
            .find(|inv| carries_marker(&self.notes_on(inv), "body", marker))
    }

    /// The newest draft without a note of the port: one a crash left between Odoo
    /// making it and the port marking it (or a person's draft, which holds the delivered
    /// quantities all the same).
    fn unclaimed_draft(&self) -> Option<&Value> {
        self.all
            .iter()
            .rev()
            .find(|inv| inv["state"] == "draft" && self.notes_on(inv).is_empty())
    }
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

/// A file name (`Label-<tracking number>.pdf`, the booking id without one) and MIME type
/// for a label.
fn label_file(b: &Booked, label: &Label) -> (String, &'static str) {
    let stem = match b.tracking_number.trim() {
        "" => b.booking_id.trim(),
        t => t,
    };
    let (ext, mime) = match label.format.to_ascii_uppercase().as_str() {
        "PNG" => ("png", "image/png"),
        "ZPL" => ("zpl", "text/plain"),
        "GIF" => ("gif", "image/gif"),
        _ => ("pdf", "application/pdf"),
    };
    (format!("Label-{stem}.{ext}"), mime)
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

    /// The shipper's partner: the address of the picking type's warehouse, else the
    /// company's.
    async fn shipper_id(&self, p: &Value) -> Result<Option<i64>, PortError> {
        let warehouse = match m2o(&p["picking_type_id"]) {
            Some(t) => self
                .one("stock.picking.type", t, &["warehouse_id"])
                .await?
                .and_then(|t| m2o(&t["warehouse_id"])),
            None => None,
        };
        if let Some(w) = warehouse {
            let wh = self.one("stock.warehouse", w, &["partner_id"]).await?;
            if let Some(partner) = wh.and_then(|w| m2o(&w["partner_id"])) {
                return Ok(Some(partner));
            }
        }
        Ok(match m2o(&p["company_id"]) {
            Some(c) => self
                .one("res.company", c, &["partner_id"])
                .await?
                .and_then(|c| m2o(&c["partner_id"])),
            None => None,
        })
    }

    /// The addresses of these partners (archived ones too), by id.
    async fn addresses(&self, ids: &[i64]) -> Result<HashMap<i64, Address>, PortError> {
        let everyone = json!({"active_test": false});
        let partners = self
            .read(
                "res.partner",
                json!([["id", "in", ids]]),
                PARTNER_FIELDS,
                Some(&everyone),
            )
            .await?;
        let state_ids: Vec<i64> = partners
            .iter()
            .filter_map(|r| m2o(&r["state_id"]))
            .collect();
        let states: HashMap<i64, String> = if state_ids.is_empty() {
            HashMap::new()
        } else {
            self.read(
                "res.country.state",
                json!([["id", "in", state_ids]]),
                &["code"],
                None,
            )
            .await?
            .iter()
            .filter_map(|s| Some((s["id"].as_i64()?, text(&s["code"])?)))
            .collect()
        };
        Ok(partners
            .iter()
            .filter_map(|r| Some((r["id"].as_i64()?, address(r, &states))))
            .collect())
    }

    /// The currency code of a company (read once).
    async fn currency_of(&self, company: i64) -> Result<Option<String>, PortError> {
        if let Some(c) = self
            .currencies
            .lock()
            .ok()
            .and_then(|m| m.get(&company).cloned())
        {
            return Ok(c);
        }
        let code = self
            .one("res.company", company, &["currency_id"])
            .await?
            .and_then(|r| text(&r["currency_id"][1]));
        if let Ok(mut m) = self.currencies.lock() {
            m.insert(company, code.clone());
        }
        Ok(code)
    }

    /// The `delivery.carrier` of a booking, through `carriers`.
    fn carrier_of(&self, b: &Booked) -> Option<i64> {
        self.carriers
            .get(&b.carrier)
            .or_else(|| self.carriers.get(&b.carrier_name))
            .or_else(|| {
                self.carriers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&b.carrier_name))
                    .map(|(_, v)| v)
            })
            .copied()
    }

    /// The values of the picking that differ from the booking: tracking reference,
    /// carrier, and the price when it is in the company's currency (or names none).
    async fn booking_values(&self, p: &Value, b: &Booked) -> Result<Map<String, Value>, PortError> {
        let mut vals = Map::new();
        let tracking = b.tracking_number.trim();
        if !tracking.is_empty() && p["carrier_tracking_ref"].as_str() != Some(tracking) {
            vals.insert("carrier_tracking_ref".into(), json!(tracking));
        }
        if let Some(cid) = self
            .carrier_of(b)
            .filter(|c| m2o(&p["carrier_id"]) != Some(*c))
        {
            vals.insert("carrier_id".into(), json!(cid));
        }
        if let Ok(price) = b.amount.trim().parse::<f64>() {
            let same_currency = match (b.currency.trim(), m2o(&p["company_id"])) {
                ("", _) | (_, None) => true,
                (cur, Some(c)) => self.currency_of(c).await?.as_deref() == Some(cur),
            };
            let current = p["carrier_price"].as_f64().unwrap_or(0.0);
            if same_currency && (current - price).abs() >= 0.005 {
                vals.insert("carrier_price".into(), json!(price));
            }
        }
        Ok(vals)
    }

    /// Whether a record of `model` matching `domain` carries `marker` in `field`.
    async fn marked(
        &self,
        model: &str,
        mut domain: Vec<Value>,
        field: &str,
        marker: &str,
        context: Option<&Value>,
    ) -> Result<bool, PortError> {
        domain.push(json!([field, "ilike", search_term(marker)]));
        let rows = self
            .read(model, Value::Array(domain), &[field], context)
            .await?;
        Ok(carries_marker(&rows, field, marker))
    }

    /// Whether a message of the record carries `marker`.
    async fn posted(&self, model: &str, id: i64, marker: &str) -> Result<bool, PortError> {
        let on = vec![json!(["model", "=", model]), json!(["res_id", "=", id])];
        self.marked("mail.message", on, "body", marker, None).await
    }

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

    /// Attaches the label to the picking unless an attachment of its name is there.
    async fn attach(
        &self,
        pid: i64,
        name: &str,
        mime: &str,
        bytes: &[u8],
        ctx: &Option<Value>,
    ) -> Result<(), PortError> {
        let there = self
            .read(
                "ir.attachment",
                json!([
                    ["res_model", "=", "stock.picking"],
                    ["res_id", "=", pid],
                    ["name", "=", name]
                ]),
                &["name"],
                None,
            )
            .await?;
        if !there.is_empty() {
            return Ok(());
        }
        let vals = json!([{
            "name": name,
            "type": "binary",
            "res_model": "stock.picking",
            "res_id": pid,
            "datas": base64::engine::general_purpose::STANDARD.encode(bytes),
            "mimetype": mime,
        }]);
        self.client
            .create("ir.attachment", vals, ctx.clone())
            .await
            .map_err(port)?;
        Ok(())
    }

    /// Posts the booking to the customer on the sale order (else the picking): a
    /// discussion message, which Odoo e-mails to the partners it names.
    async fn tell_customer(
        &self,
        p: &Value,
        b: &Booked,
        marker: &str,
        ctx: &Option<Value>,
    ) -> Result<(), PortError> {
        let Some(pid) = p["id"].as_i64() else {
            return Ok(());
        };
        let (model, id, order) = match (m2o(&p["sale_id"]), text(&p["sale_id"][1])) {
            (Some(so), name) => ("sale.order", so, name),
            (None, _) => ("stock.picking", pid, text(&p["name"])),
        };
        if self.posted(model, id, marker).await? {
            return Ok(());
        }
        // Odoo computes the link from the carrier's tracking URL and the reference just
        // written; a mapped carrier is named as Odoo names it.
        let now = self
            .one(
                "stock.picking",
                pid,
                &["carrier_id", "carrier_tracking_url"],
            )
            .await?
            .unwrap_or(Value::Null);
        let name = match self.carrier_of(b) {
            Some(_) => text(&now["carrier_id"][1]).unwrap_or_else(|| b.carrier_name.clone()),
            None => b.carrier_name.clone(),
        };
        let carrier = match b.service.trim() {
            "" => name,
            s => format!("{name} ({s})"),
        };
        let mut body = format!(
            "Your order {} will ship with {carrier}.",
            order.unwrap_or_default()
        );
        if !b.tracking_number.trim().is_empty() {
            body.push_str(&format!(" Tracking number: {}.", b.tracking_number));
        }
        if let Some(u) = text(&now["carrier_tracking_url"]) {
            body.push_str(&format!(" Track it at {u}"));
        }
        body.push_str(&format!(" {marker}"));
        let mut args = kw(&[
            ("body", json!(body)),
            ("message_type", json!("comment")),
            ("subtype_xmlid", json!("mail.mt_comment")),
        ]);
        if let Some(customer) = m2o(&p["partner_id"]) {
            args.insert("partner_ids".into(), json!([customer]));
        }
        self.call_on(model, id, "message_post", args, ctx).await?;
        Ok(())
    }

    async fn read_order(&self, picking_id: i64) -> Result<OrderContext, PortError> {
        let p = self.picking(picking_id).await?;
        let customer = m2o(&p["partner_id"]);
        let shipper = self.shipper_id(&p).await?;
        let ids: Vec<i64> = customer.into_iter().chain(shipper).collect();
        let found = if ids.is_empty() {
            HashMap::new()
        } else {
            self.addresses(&ids).await?
        };
        let take = |id: Option<i64>| id.and_then(|i| found.get(&i).cloned()).unwrap_or_default();
        let (recipient, shipper) = (take(customer), take(shipper));
        let kg_per_unit = match p["weight_uom_name"].as_str() {
            Some("lb") | Some("lbs") => KG_PER_LB,
            _ => 1.0,
        };
        let weight = [&p["shipping_weight"], &p["weight"]]
            .iter()
            .filter_map(|w| w.as_f64())
            .find(|w| *w > 0.0)
            .unwrap_or(0.0);
        let order = match m2o(&p["sale_id"]) {
            Some(so) => {
                self.one("sale.order", so, &["amount_total", "currency_id"])
                    .await?
            }
            None => None,
        };
        let order_amount = match order {
            Some(o) => self.amount(&o, "amount_total").await?,
            None => None,
        };
        Ok(OrderContext {
            picking_id,
            picking_name: text(&p["name"]).unwrap_or_default(),
            state: text(&p["state"]).unwrap_or_default(),
            order_name: text(&p["sale_id"][1]),
            company_id: m2o(&p["company_id"]),
            customer_id: customer,
            carrier_hint: text(&p["carrier_id"][1]),
            shipper,
            recipient,
            weight_kg: weight * kg_per_unit,
            order_amount,
        })
    }

    /// The decimal places of a currency (`res.currency.decimal_places`, read once; 2 when
    /// Odoo does not say).
    async fn decimals(&self, currency: Option<i64>) -> Result<u32, PortError> {
        let Some(c) = currency else {
            return Ok(2);
        };
        if let Some(d) = self.decimals.lock().ok().and_then(|m| m.get(&c).copied()) {
            return Ok(d);
        }
        let d = self
            .one("res.currency", c, &["decimal_places"])
            .await?
            .and_then(|r| r["decimal_places"].as_u64())
            .map_or(2, |d| d.min(6) as u32);
        if let Ok(mut m) = self.decimals.lock() {
            m.insert(c, d);
        }
        Ok(d)
    }

    /// A monetary field of a record as a decimal string in the record's currency.
    async fn amount(&self, r: &Value, field: &str) -> Result<Option<String>, PortError> {
        let Some(v) = r[field].as_f64() else {
            return Ok(None);
        };
        let places = self.decimals(m2o(&r["currency_id"])).await?;
        Ok(Some(money(v, places)))
    }

    /// The invoices of sale order `so` and the port's notes on them.
    async fn order_invoices(
        &self,
        so: i64,
        ctx: &Option<Value>,
    ) -> Result<OrderInvoices, PortError> {
        let order = self
            .read(
                "sale.order",
                json!([["id", "=", so]]),
                &["invoice_ids"],
                ctx.as_ref(),
            )
            .await?;
        let ids: Vec<i64> = order
            .first()
            .and_then(|o| o["invoice_ids"].as_array())
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        if ids.is_empty() {
            return Ok(OrderInvoices {
                all: Vec::new(),
                notes: Vec::new(),
            });
        }
        let all = self
            .read(
                "account.move",
                json!([["id", "in", ids]]),
                INVOICE_FIELDS,
                ctx.as_ref(),
            )
            .await?;
        let notes = self
            .read(
                "mail.message",
                json!([
                    ["model", "=", "account.move"],
                    ["res_id", "in", ids],
                    ["body", "ilike", INVOICE_NOTE]
                ]),
                &["res_id", "body"],
                None,
            )
            .await?;
        Ok(OrderInvoices { all, notes })
    }

    /// Asks Odoo for the invoice of the delivered quantities of sale order `so`; answers
    /// the new invoice's id.
    async fn create_invoice(
        &self,
        so: i64,
        p: &Value,
        before: &OrderInvoices,
        ctx: &Option<Value>,
    ) -> Result<i64, PortError> {
        let action = create_invoices(&self.client, so, ctx)
            .await
            .map_err(|e| match &e {
                OdooError::Server { message, .. } if nothing_to_invoice(&e) => PortError::new(
                    FailureKind::Permanent,
                    "odoo.nothing_to_invoice",
                    format!(
                        "Odoo has nothing to invoice on {} for picking {} (state {}): {}",
                        text(&p["sale_id"][1]).unwrap_or_else(|| format!("sale.order {so}")),
                        text(&p["name"]).unwrap_or_default(),
                        text(&p["state"]).unwrap_or_default(),
                        message.lines().next().unwrap_or_default()
                    ),
                ),
                _ => port(e),
            })?;
        if let Some(id) = action["res_id"].as_i64().filter(|id| *id > 0) {
            return Ok(id);
        }
        // Several invoices (the action has a `domain` instead): the newest new one.
        let after = self.order_invoices(so, ctx).await?;
        after
            .all
            .iter()
            .rev()
            .filter(|inv| !before.all.iter().any(|b| b["id"] == inv["id"]))
            .find_map(|inv| inv["id"].as_i64())
            .ok_or_else(|| {
                PortError::new(
                    FailureKind::Permanent,
                    "odoo.protocol_error",
                    format!("create_invoices made no invoice for sale.order {so}: {action}"),
                )
            })
    }

    /// Marks an invoice as made under `marker`: an internal note in its chatter.
    async fn claim(
        &self,
        id: i64,
        p: &Value,
        marker: &str,
        ctx: &Option<Value>,
    ) -> Result<(), PortError> {
        let body = format!(
            "{INVOICE_NOTE} for picking {}. {marker}",
            text(&p["name"]).unwrap_or_default()
        );
        let args = kw(&[
            ("body", json!(body)),
            ("message_type", json!("comment")),
            ("subtype_xmlid", json!("mail.mt_note")),
        ]);
        self.call_on("account.move", id, "message_post", args, ctx)
            .await?;
        Ok(())
    }

    /// The invoice of the picking's sale order made under `marker`: found, or taken over
    /// (a draft without the port's note), or made; then posted if it is a draft.
    async fn make_invoice(&self, picking_id: i64, marker: &str) -> Result<Invoice, PortError> {
        let p = self.picking(picking_id).await?;
        let Some(so) = m2o(&p["sale_id"]) else {
            return Err(PortError::new(
                FailureKind::Permanent,
                "odoo.no_sale_order",
                format!(
                    "picking {} ({picking_id}) has no sale order to invoice",
                    text(&p["name"]).unwrap_or_default()
                ),
            ));
        };
        let ctx = company_context(&p);
        let found = self.order_invoices(so, &ctx).await?;
        let id_of = |inv: &Value| {
            inv["id"].as_i64().ok_or_else(|| {
                PortError::new(
                    FailureKind::Permanent,
                    "odoo.protocol_error",
                    format!("an invoice without an id: {inv}"),
                )
            })
        };
        let (id, draft) = match (found.made_under(marker), found.unclaimed_draft()) {
            (Some(inv), _) => (id_of(inv)?, inv["state"] == "draft"),
            (None, Some(inv)) => {
                let id = id_of(inv)?;
                self.claim(id, &p, marker, &ctx).await?;
                (id, true)
            }
            (None, None) => {
                let id = self.create_invoice(so, &p, &found, &ctx).await?;
                self.claim(id, &p, marker, &ctx).await?;
                (id, true)
            }
        };
        if draft {
            post_invoices(&self.client, &[id], &ctx)
                .await
                .map_err(port)?;
        }
        let inv = self
            .read(
                "account.move",
                json!([["id", "=", id]]),
                INVOICE_FIELDS,
                ctx.as_ref(),
            )
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                PortError::new(
                    FailureKind::Permanent,
                    "odoo.not_found",
                    format!("account.move {id} does not exist (any more)"),
                )
            })?;
        Ok(Invoice {
            id,
            name: text(&inv["name"]).filter(|n| n != "/").unwrap_or_default(),
            amount: self.amount(&inv, "amount_total").await?.unwrap_or_default(),
            currency: text(&inv["currency_id"][1]).unwrap_or_default(),
            state: text(&inv["state"]).unwrap_or_default(),
        })
    }

    async fn record(&self, picking_id: i64, b: &Booked, marker: &str) -> Result<(), PortError> {
        let p = self.picking(picking_id).await?;
        let ctx = company_context(&p);
        let vals = self.booking_values(&p, b).await?;
        if !vals.is_empty() {
            let args = kw(&[("vals", Value::Object(vals))]);
            self.call_on("stock.picking", picking_id, "write", args, &ctx)
                .await?;
        }
        if let Some(label) = b.label.as_ref().filter(|l| !l.bytes.is_empty()) {
            let (name, mime) = label_file(b, label);
            self.attach(picking_id, &name, mime, &label.bytes, &ctx)
                .await?;
        }
        if self.notify_customer {
            self.tell_customer(&p, b, marker, &ctx).await?;
        }
        Ok(())
    }

    async fn post_note(&self, picking_id: i64, marker: &str, body: &str) -> Result<(), PortError> {
        let p = self.picking(picking_id).await?;
        if self.posted("stock.picking", picking_id, marker).await? {
            return Ok(());
        }
        let args = kw(&[
            ("body", json!(format!("{body} {marker}"))),
            ("message_type", json!("comment")),
            ("subtype_xmlid", json!("mail.mt_note")),
        ]);
        self.call_on(
            "stock.picking",
            picking_id,
            "message_post",
            args,
            &company_context(&p),
        )
        .await?;
        Ok(())
    }

    /// A to-do once per marker: none when an activity of the picking (open, or archived
    /// as done) or the message Odoo posts when one is marked done carries the marker.
    async fn schedule(
        &self,
        picking_id: i64,
        marker: &str,
        summary: &str,
        note: &str,
    ) -> Result<(), PortError> {
        let p = self.picking(picking_id).await?;
        let on_picking = vec![
            json!(["res_model", "=", "stock.picking"]),
            json!(["res_id", "=", picking_id]),
        ];
        let everyone = json!({"active_test": false});
        if self
            .marked("mail.activity", on_picking, "note", marker, Some(&everyone))
            .await?
        {
            return Ok(());
        }
        let done = vec![
            json!(["model", "=", "stock.picking"]),
            json!(["res_id", "=", picking_id]),
            json!(["mail_activity_type_id", "!=", false]),
        ];
        if self
            .marked("mail.message", done, "body", marker, None)
            .await?
        {
            return Ok(());
        }
        // Odoo 19 no longer fills in the calling user: name one always.
        let user = match self.activity_user_id {
            Some(u) => u,
            None => self.client.api_user_id().await.map_err(port)?,
        };
        let args = kw(&[
            ("act_type_xmlid", json!("mail.mail_activity_data_todo")),
            ("summary", json!(summary)),
            (
                "note",
                json!(format!("<p>{}</p><p>{}</p>", html(note), html(marker))),
            ),
            ("user_id", json!(user)),
        ]);
        self.call_on(
            "stock.picking",
            picking_id,
            "activity_schedule",
            args,
            &company_context(&p),
        )
        .await?;
        Ok(())
    }
}

/// A partner as a postal address: a company's name is the company; a person's is the
/// person, with their company (`commercial_company_name`) when it is another name.
fn address(r: &Value, states: &HashMap<i64, String>) -> Address {
    let name = text(&r["name"]);
    let company = text(&r["commercial_company_name"]);
    let (person_name, company_name) = if r["is_company"] == json!(true) {
        (None, name.or(company))
    } else {
        let company = company.filter(|c| Some(c) != name.as_ref());
        (name, company)
    };
    Address {
        person_name,
        company_name,
        address_line1: text(&r["street"]),
        address_line2: text(&r["street2"]),
        city: text(&r["city"]),
        postal_code: text(&r["zip"]),
        state_code: m2o(&r["state_id"]).and_then(|s| states.get(&s).cloned()),
        country_code: text(&r["country_code"]).unwrap_or_default(),
        phone_number: text(&r["phone"]),
        email: text(&r["email"]),
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
#[path = "workflow_tests.rs"]
mod tests;
