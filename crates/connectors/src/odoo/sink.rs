//! Waybill → Odoo: canonical events become actions on the outgoing picking — tracking
//! reference and carrier, validation (completing the wizards `button_validate` returns),
//! chatter notes, and exception activities.
//!
//! Every action reads before it writes, so replaying an event changes nothing: a tracking
//! ref already set is not written again; a picking already done is not validated again;
//! chatter notes and activities carry the event id as a marker (`[waybill <id>]`) and are
//! not posted when a note or activity with that marker exists. Calls for one picking are
//! serialised (concurrent writes to one record make Odoo retry serialization failures).
//!
//! The picking is found by the event's `odoo.picking_id` reference, else by its tracking
//! number (`carrier_tracking_ref`), else by its sale order name (`odoo.order`, matched on
//! the picking's `origin`). Not found yet (Odoo may not have it): retryable.
//! Not yet done here: invoicing on proof of delivery, freight charges, coalescing bursts.

use super::{OdooClient, OdooConfig, OdooError};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use waybill_engine::partner::{DeliverFuture, DeliveryError, Outbound};
use waybill_model::{CloudEvent, EventType, FailureKind};
use waybill_store::OutboxItem;

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
}

/// `[sinks.<name>]` with `type = "odoo"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdooSinkConfig {
    /// How to reach Odoo.
    pub connection: OdooConfig,
    /// Event type → actions; replaces the default table for the types it lists.
    #[serde(default)]
    pub actions: BTreeMap<String, Vec<Action>>,
    /// Carrier name or code in events → `delivery.carrier` id in Odoo.
    #[serde(default)]
    pub carriers: BTreeMap<String, i64>,
    /// User who gets exception activities (default: Odoo's default, the API user).
    #[serde(default)]
    pub activity_user_id: Option<i64>,
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
        OrderReleased
        | OrderCancelled
        | WarehousePicked
        | WarehousePacked
        | ShipmentCancelled
        | ShipmentCorrected
        | FreightChargeConfirmed
        | InvoicePosted
        | PaymentReceived => vec![],
    }
}

/// The Odoo sink.
pub struct OdooSink {
    client: OdooClient,
    actions: HashMap<EventType, Vec<Action>>,
    carriers: BTreeMap<String, i64>,
    activity_user_id: Option<i64>,
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

fn err(e: OdooError) -> DeliveryError {
    DeliveryError::new(e.kind(), format!("{}: {e}", e.code()))
}

fn kw(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

impl OdooSink {
    /// Validates the configuration (no network).
    pub fn build(name: &str, cfg: &OdooSinkConfig) -> Result<OdooSink, Vec<String>> {
        let mut errs = Vec::new();
        let client = OdooClient::build(&cfg.connection)
            .map_err(|es| {
                errs.extend(
                    es.into_iter()
                        .map(|e| format!("sinks.{name}.connection.{e}")),
                )
            })
            .ok();
        let mut actions: HashMap<EventType, Vec<Action>> = EventType::ALL
            .iter()
            .map(|t| (*t, default_actions(*t)))
            .collect();
        for (t, a) in &cfg.actions {
            match t.parse::<EventType>() {
                Ok(ty) => {
                    actions.insert(ty, a.clone());
                }
                Err(e) => errs.push(format!("sinks.{name}.actions: {e}")),
            }
        }
        match client {
            Some(client) if errs.is_empty() => Ok(OdooSink {
                client,
                actions,
                carriers: cfg.carriers.clone(),
                activity_user_id: cfg.activity_user_id,
                locks: Mutex::new(HashMap::new()),
            }),
            _ => Err(errs),
        }
    }

    fn lock_for(&self, picking: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = match self.locks.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.entry(picking).or_default().clone()
    }

    async fn find_picking(&self, ev: &CloudEvent) -> Result<i64, DeliveryError> {
        let refs: BTreeMap<&str, &str> = ev.refs().collect();
        if let Some(id) = refs
            .get("odoo.picking_id")
            .and_then(|s| s.parse::<i64>().ok())
        {
            return Ok(id);
        }
        let fields = ["state"];
        let mut domains = Vec::new();
        if let Some(t) = refs.get("tracking") {
            domains.push(json!([
                ["carrier_tracking_ref", "=", t],
                ["picking_type_code", "=", "outgoing"]
            ]));
        }
        if let Some(o) = refs.get("odoo.order") {
            domains.push(json!([
                ["origin", "ilike", o],
                ["picking_type_code", "=", "outgoing"],
                ["state", "not in", ["cancel"]]
            ]));
        }
        for d in domains {
            let rows = self
                .client
                .search_read("stock.picking", d, &fields, "id asc", 1, 0)
                .await
                .map_err(err)?;
            if let Some(id) = rows.first().and_then(|r| r["id"].as_i64()) {
                return Ok(id);
            }
        }
        Err(DeliveryError::new(
            FailureKind::Retryable,
            format!(
                "odoo.picking_not_found: no outgoing picking for shipment {}",
                ev.subject
            ),
        ))
    }

    async fn read_picking(&self, id: i64) -> Result<Value, DeliveryError> {
        let rows = self
            .client
            .search_read(
                "stock.picking",
                json!([["id", "=", id]]),
                &[
                    "name",
                    "state",
                    "carrier_tracking_ref",
                    "carrier_id",
                    "sale_id",
                ],
                "id asc",
                1,
                0,
            )
            .await
            .map_err(err)?;
        rows.into_iter().next().ok_or_else(|| {
            DeliveryError::new(
                FailureKind::Permanent,
                format!("odoo.missing_record: stock.picking {id} does not exist"),
            )
        })
    }

    async fn apply(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let ev: CloudEvent = serde_json::from_str(&item.body).map_err(|e| {
            DeliveryError::new(
                FailureKind::InvalidInput,
                format!("not a canonical event: {e}"),
            )
        })?;
        let actions = self.actions.get(&ev.ty).cloned().unwrap_or_default();
        if actions.is_empty() {
            return Ok(());
        }
        let pid = self.find_picking(&ev).await?;
        let lock = self.lock_for(pid);
        let _guard = lock.lock().await;
        let marker = format!("[waybill {}]", ev.id);
        for a in actions {
            match a {
                Action::SetTracking => self.set_tracking(pid, &ev).await?,
                Action::Validate => self.validate(pid).await?,
                Action::Chatter => self.chatter(pid, &ev, &marker).await?,
                Action::Activity => self.activity(pid, &ev, &marker).await?,
                Action::Invoice => self.invoice(pid).await?,
            }
        }
        Ok(())
    }

    async fn set_tracking(&self, pid: i64, ev: &CloudEvent) -> Result<(), DeliveryError> {
        let refs: BTreeMap<&str, &str> = ev.refs().collect();
        let Some(tracking) = refs.get("tracking") else {
            return Ok(());
        };
        let p = self.read_picking(pid).await?;
        let mut vals = Map::new();
        if p["carrier_tracking_ref"].as_str() != Some(tracking) {
            vals.insert("carrier_tracking_ref".into(), json!(tracking));
        }
        if let Some(cid) = refs.get("carrier").and_then(|c| self.carriers.get(*c)) {
            if p["carrier_id"].get(0).and_then(Value::as_i64) != Some(*cid) {
                vals.insert("carrier_id".into(), json!(cid));
            }
        }
        if !vals.is_empty() {
            self.client
                .write("stock.picking", &[pid], Value::Object(vals))
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn validate(&self, pid: i64) -> Result<(), DeliveryError> {
        let p = self.read_picking(pid).await?;
        if matches!(p["state"].as_str(), Some("done") | Some("cancel")) {
            return Ok(());
        }
        let mut r = self
            .client
            .call("stock.picking", "button_validate", Some(&[pid]), Map::new())
            .await
            .map_err(err)?;
        // Each wizard step must be called with the returned action's context, or it
        // silently validates nothing (ODOO.md §3.1).
        for _ in 0..4 {
            let (model, method) = match r["res_model"].as_str() {
                Some("stock.backorder.confirmation") => ("stock.backorder.confirmation", "process"),
                Some("confirm.stock.sms") => ("confirm.stock.sms", "send_sms"),
                _ => break,
            };
            let ctx = r["context"].clone();
            let wiz = match r["res_id"].as_i64() {
                Some(id) => id,
                None => self
                    .client
                    .create(model, json!([{}]), Some(ctx.clone()))
                    .await
                    .map_err(err)?
                    .first()
                    .copied()
                    .ok_or_else(|| {
                        DeliveryError::new(
                            FailureKind::Permanent,
                            format!("{model}.create returned no id"),
                        )
                    })?,
            };
            r = self
                .client
                .call(model, method, Some(&[wiz]), kw(&[("context", ctx)]))
                .await
                .map_err(err)?;
        }
        let after = self.read_picking(pid).await?;
        if after["state"] != "done" {
            return Err(DeliveryError::new(
                FailureKind::Permanent,
                format!(
                    "odoo.not_validated: picking {pid} is `{}` after button_validate",
                    after["state"]
                ),
            ));
        }
        Ok(())
    }

    async fn exists(&self, model: &str, domain: Value) -> Result<bool, DeliveryError> {
        let n = self
            .client
            .call(model, "search_count", None, kw(&[("domain", domain)]))
            .await
            .map_err(err)?;
        Ok(n.as_i64().unwrap_or(0) > 0)
    }

    async fn chatter(&self, pid: i64, ev: &CloudEvent, marker: &str) -> Result<(), DeliveryError> {
        if self
            .exists(
                "mail.message",
                json!([
                    ["model", "=", "stock.picking"],
                    ["res_id", "=", pid],
                    ["body", "ilike", marker]
                ]),
            )
            .await?
        {
            return Ok(());
        }
        let body = format!("{} {marker}", describe(ev));
        self.client
            .call(
                "stock.picking",
                "message_post",
                Some(&[pid]),
                kw(&[
                    ("body", json!(body)),
                    ("message_type", json!("comment")),
                    ("subtype_xmlid", json!("mail.mt_note")),
                ]),
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn activity(&self, pid: i64, ev: &CloudEvent, marker: &str) -> Result<(), DeliveryError> {
        if self
            .exists(
                "mail.activity",
                json!([
                    ["res_model", "=", "stock.picking"],
                    ["res_id", "=", pid],
                    ["summary", "ilike", marker]
                ]),
            )
            .await?
        {
            return Ok(());
        }
        let mut args = kw(&[
            ("act_type_xmlid", json!("mail.mail_activity_data_warning")),
            ("summary", json!(format!("{} {marker}", ev.ty))),
            (
                "note",
                json!(format!(
                    "{}\nShipment {} (source {}).",
                    describe(ev),
                    ev.subject,
                    ev.source_name()
                )),
            ),
        ]);
        if let Some(u) = self.activity_user_id {
            args.insert("user_id".into(), json!(u));
        }
        self.client
            .call("stock.picking", "activity_schedule", Some(&[pid]), args)
            .await
            .map_err(err)?;
        Ok(())
    }
}

impl OdooSink {
    async fn draft_invoices(&self, so: i64) -> Result<(Value, Vec<i64>), DeliveryError> {
        let rows = self
            .client
            .search_read(
                "sale.order",
                json!([["id", "=", so]]),
                &["invoice_status", "invoice_ids"],
                "id asc",
                1,
                0,
            )
            .await
            .map_err(err)?;
        let order = rows.into_iter().next().unwrap_or(Value::Null);
        let ids: Vec<i64> = order["invoice_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        let drafts = if ids.is_empty() {
            Vec::new()
        } else {
            self.client
                .search_read(
                    "account.move",
                    json!([["id", "in", ids], ["state", "=", "draft"]]),
                    &["state"],
                    "id asc",
                    ids.len(),
                    0,
                )
                .await
                .map_err(err)?
                .iter()
                .filter_map(|r| r["id"].as_i64())
                .collect()
        };
        Ok((order, drafts))
    }

    /// Invoices the sale order of the picking, once: nothing when it is already fully
    /// invoiced; posts draft invoices left by an earlier attempt; otherwise creates the
    /// invoice with the "delivered quantities" wizard and posts it.
    async fn invoice(&self, pid: i64) -> Result<(), DeliveryError> {
        let p = self.read_picking(pid).await?;
        let Some(so) = p["sale_id"].get(0).and_then(Value::as_i64) else {
            return Err(DeliveryError::new(
                FailureKind::Permanent,
                format!("odoo.no_sale_order: picking {pid} has no sale order"),
            ));
        };
        let (order, mut drafts) = self.draft_invoices(so).await?;
        if order["invoice_status"] == "invoiced" && drafts.is_empty() {
            return Ok(());
        }
        if drafts.is_empty() {
            let wiz = self
                .client
                .create(
                    "sale.advance.payment.inv",
                    json!([{"advance_payment_method": "delivered", "sale_order_ids": [[6, 0, [so]]]}]),
                    None,
                )
                .await
                .map_err(err)?
                .first()
                .copied()
                .ok_or_else(|| {
                    DeliveryError::new(FailureKind::Permanent, "sale.advance.payment.inv.create returned no id")
                })?;
            self.client
                .call(
                    "sale.advance.payment.inv",
                    "create_invoices",
                    Some(&[wiz]),
                    Map::new(),
                )
                .await
                .map_err(err)?;
            drafts = self.draft_invoices(so).await?.1;
        }
        if !drafts.is_empty() {
            // `action_post` returns false normally: only errors matter.
            self.client
                .call("account.move", "action_post", Some(&drafts), Map::new())
                .await
                .map_err(err)?;
        }
        Ok(())
    }
}

/// A one-line human description of an event for chatter and activities.
fn describe(ev: &CloudEvent) -> String {
    let d = &ev.data;
    let mut s = format!("{} at {}", ev.ty, ev.time.date());
    if let Some(t) = d["raw"]["text"]
        .as_str()
        .or_else(|| d["raw"]["code"].as_str())
    {
        s.push_str(&format!(": {t}"));
    }
    if let Some(r) = d["reason"].as_str() {
        s.push_str(&format!(" (reason: {r})"));
    }
    if let Some(c) = d["location"]["city"].as_str() {
        s.push_str(&format!(", {c}"));
    }
    s
}

impl Outbound for OdooSink {
    fn deliver<'a>(&'a self, item: &'a OutboxItem) -> DeliverFuture<'a> {
        Box::pin(self.apply(item))
    }
}
