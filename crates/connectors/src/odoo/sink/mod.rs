//! Waybill → Odoo: canonical events become actions on the outgoing picking — tracking
//! reference and carrier, validation (completing the wizards `button_validate` returns),
//! freight cost, chatter notes, exception activities and the invoice on delivery.
//!
//! Every action reads before it writes, so replaying an event changes nothing: a tracking
//! ref already set is not written again; a picking already done is not validated again;
//! chatter notes and activities carry the event id as a marker (`[waybill <id>`, on
//! note lines followed by ` shipment <key>]`) and an event whose marker is already there
//! is not posted again.
//!
//! Odoo is the slow party, so the sink coalesces and batches:
//! - the dispatcher hands it the pending events of one shipment together (after a
//!   `coalesce_window` for the first one); they become one write of the tracking ref,
//!   at most one validation, one chatter note listing every event and one activity;
//! - the reads of concurrent deliveries (pickings by id or tracking number, existing
//!   notes and activities) share one `search_read` ([`BatchedRead`]);
//! - calls for one picking are serialised (concurrent writes to one record make Odoo
//!   retry serialization failures), and the client keeps Odoo under a request rate.
//!
//! Multi-company: every write runs with `allowed_company_ids` set to the picking's
//! company, so Odoo does it in that company (backorders, invoices, activities); a sink
//! limited to `companies` never touches a picking of another company, and an event that
//! names its Odoo company (`odoo.company_id`) only matches pickings of that company.
//!
//! The picking is found by the event's `odoo.picking_id` reference, else by its tracking
//! number (`carrier_tracking_ref`), else by its sale order's name (`odoo.order`), else by
//! the purchase order it names (`po`: the sale order's customer reference or name, see
//! `picking.rs`). Not found yet (Odoo may not have it): retryable. A validating event
//! with ship notice lines (`data.lines`) sets each move's done quantity first
//! (`shipped.rs`), so a partial shipment leaves a backorder.

use super::batch::{BatchedCreate, BatchedRead};
use super::codes;
use super::{OdooClient, OdooConfig, OdooError};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use waybill_engine::config::ConfigError;
use waybill_engine::duration;
use waybill_engine::partner::{
    BatchFuture, BatchOutcome, Batching, DeliverFuture, Delivery, DeliveryError, Outbound,
};
use waybill_model::ownership::Fact;
use waybill_model::{CloudEvent, Code, EventType, FailureKind};

mod chatter_line;
mod config;
pub(super) mod money;
pub(super) mod notes;
mod picking;
mod shipped;

pub use config::{
    default_actions, Action, OdooSinkConfig, OrderRefField, UnmatchedLines, ValidateSms,
};

/// The fields of a picking the sink reads.
const PICKING_FIELDS: &[&str] = &[
    "name",
    "state",
    "origin",
    "carrier_tracking_ref",
    "carrier_id",
    "carrier_price",
    "sale_id",
    "company_id",
];

/// A record: (model, id).
type RecordKey = (&'static str, i64);

/// The Odoo sink.
pub struct OdooSink {
    client: OdooClient,
    actions: HashMap<EventType, Vec<Action>>,
    carriers: BTreeMap<String, i64>,
    activity_user_id: Option<i64>,
    validate_sms: ValidateSms,
    chatter_on_order: bool,
    companies: Vec<i64>,
    unmatched_lines: UnmatchedLines,
    /// Facts Odoo owns: never written.
    odoo_owns: std::collections::BTreeSet<Fact>,
    batching: Batching,
    locks: Mutex<HashMap<RecordKey, Arc<tokio::sync::Mutex<()>>>>,
    by_id: BatchedRead,
    by_tracking: BatchedRead,
    /// Sale orders by each field a `po` reference is looked up in, in order.
    orders_by: Vec<(OrderRefField, BatchedRead)>,
    /// Outgoing, not cancelled pickings by sale order.
    by_sale: BatchedRead,
    /// Open moves by picking.
    moves: BatchedRead,
    /// Products by id, archived ones too.
    products: BatchedRead,
    notes: BatchedRead,
    order_notes: BatchedRead,
    activities: BatchedRead,
    new_notes: BatchedCreate,
    note_subtype: tokio::sync::OnceCell<i64>,
    currencies: Mutex<HashMap<i64, String>>,
}

fn err(e: OdooError) -> DeliveryError {
    DeliveryError::new(e.failure(), e.kind(), format!("{}: {e}", e.code()))
}

pub(super) fn kw(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn permanent(code: Code, msg: String) -> DeliveryError {
    DeliveryError::new(code, FailureKind::Permanent, msg)
}

/// The many2one id of a field (`[id, name]` or `false`).
pub(super) fn m2o(v: &Value) -> Option<i64> {
    v.get(0).and_then(Value::as_i64)
}

fn refs_of(ev: &CloudEvent) -> BTreeMap<&str, &str> {
    ev.refs().collect()
}

impl OdooSink {
    /// Validates the configuration (no network).
    pub fn build(cfg: &OdooSinkConfig) -> Result<OdooSink, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let client = OdooClient::build(&cfg.connection)
            .map_err(|es| errs.extend(ConfigError::all_under(es, "connection")))
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
                Err(e) => errs.push(ConfigError::new("actions", e)),
            }
        }
        if cfg.max_batch == 0 {
            errs.push(ConfigError::new("max_batch", "must be at least 1"));
        }
        if cfg.order_ref_match.is_empty() {
            errs.push(ConfigError::new(
                "order_ref_match",
                "name at least one of client_order_ref, name",
            ));
        }
        let keys = cfg.pickings_in_flight.clamp(1, 500);
        let outgoing = || {
            vec![
                json!(["picking_type_code", "=", "outgoing"]),
                json!(["state", "!=", "cancel"]),
            ]
        };
        let mut orders_by = Vec::new();
        for f in &cfg.order_ref_match {
            if !orders_by.iter().any(|(g, _)| g == f) {
                let read =
                    BatchedRead::new("sale.order", f.field(), vec![], picking::ORDER_FIELDS, keys);
                orders_by.push((*f, read));
            }
        }
        match client {
            Some(client) if errs.is_empty() => Ok(OdooSink {
                client,
                actions,
                carriers: cfg.carriers.clone(),
                activity_user_id: cfg.activity_user_id,
                validate_sms: cfg.validate_sms,
                chatter_on_order: cfg.chatter_on_order,
                companies: cfg.companies.clone(),
                unmatched_lines: cfg.unmatched_lines,
                odoo_owns: cfg.odoo_owns.clone(),
                batching: Batching {
                    max: cfg.max_batch,
                    window: cfg.coalesce_window,
                },
                locks: Mutex::new(HashMap::new()),
                by_id: BatchedRead::new("stock.picking", "id", vec![], PICKING_FIELDS, keys),
                by_tracking: BatchedRead::new(
                    "stock.picking",
                    "carrier_tracking_ref",
                    outgoing(),
                    PICKING_FIELDS,
                    keys,
                ),
                orders_by,
                by_sale: BatchedRead::new(
                    "stock.picking",
                    "sale_id",
                    outgoing(),
                    PICKING_FIELDS,
                    keys,
                ),
                moves: BatchedRead::new(
                    "stock.move",
                    "picking_id",
                    vec![json!(["state", "not in", ["done", "cancel"]])],
                    shipped::MOVE_FIELDS,
                    keys,
                ),
                products: BatchedRead::new(
                    "product.product",
                    "id",
                    vec![],
                    shipped::PRODUCT_FIELDS,
                    keys,
                )
                .with_context(json!({"active_test": false})),
                notes: BatchedRead::new(
                    "mail.message",
                    "res_id",
                    vec![
                        json!(["model", "=", "stock.picking"]),
                        json!(["body", "ilike", "[waybill "]),
                    ],
                    &["res_id", "body"],
                    keys,
                ),
                order_notes: BatchedRead::new(
                    "mail.message",
                    "res_id",
                    vec![
                        json!(["model", "=", "sale.order"]),
                        json!(["body", "ilike", "[waybill "]),
                    ],
                    &["res_id", "body"],
                    keys,
                ),
                activities: BatchedRead::new(
                    "mail.activity",
                    "res_id",
                    vec![
                        json!(["res_model", "=", "stock.picking"]),
                        json!(["note", "ilike", "[waybill "]),
                    ],
                    &["res_id", "summary", "note"],
                    keys,
                ),
                new_notes: BatchedCreate::new("mail.message", keys * 2),
                note_subtype: tokio::sync::OnceCell::new(),
                currencies: Mutex::new(HashMap::new()),
            }),
            _ => Err(errs),
        }
    }

    /// Requests sent to Odoo so far.
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    /// Serialises the calls for one record (a picking; a sale order while invoicing).
    /// Locks nobody holds or waits for are dropped from the map as new ones are taken.
    fn lock_for(&self, model: &'static str, id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = match self.locks.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if m.len() > 4096 {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        m.entry((model, id)).or_default().clone()
    }

    /// Whether a picking record may be acted on for these events: in the sink's
    /// companies, and in the company the events name (if they name one).
    fn company_allows(&self, rec: &Value, evs: &[&CloudEvent]) -> bool {
        let company = m2o(&rec["company_id"]);
        if !self.companies.is_empty() && !company.is_some_and(|c| self.companies.contains(&c)) {
            return false;
        }
        evs.iter().all(|ev| {
            refs_of(ev)
                .get("odoo.company_id")
                .and_then(|c| c.parse::<i64>().ok())
                .is_none_or(|want| company == Some(want))
        })
    }

    async fn read_picking(&self, id: i64) -> Result<Value, DeliveryError> {
        let rows = self.by_id.get(&self.client, json!(id)).await.map_err(err)?;
        rows.into_iter().next().ok_or_else(|| {
            permanent(
                codes::MISSING_RECORD,
                format!("odoo.missing_record: stock.picking {id} does not exist"),
            )
        })
    }

    fn parse(item: &Delivery) -> Result<&CloudEvent, DeliveryError> {
        item.event().map_err(|e| {
            DeliveryError::new(
                codes::BAD_EVENT,
                FailureKind::InvalidInput,
                format!("not a canonical event: {e}"),
            )
        })
    }

    /// Delivers consecutive events of one shipment as one set of Odoo calls. Should that
    /// fail for a reason retrying cannot fix, the events go one by one so that only the
    /// event at fault is refused.
    async fn apply_batch(&self, items: &[Delivery]) -> BatchOutcome {
        let mut refs: Vec<&CloudEvent> = Vec::with_capacity(items.len());
        let mut bad = None;
        for it in items {
            match Self::parse(it) {
                Ok(ev) => refs.push(ev),
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        let n = refs.len();
        let resolved = items
            .first()
            .map(|d| d.shipment_refs.as_slice())
            .unwrap_or(&[]);
        match self.apply(&refs, &refs, resolved).await {
            Ok(()) => BatchOutcome {
                delivered: n,
                error: bad,
            },
            Err(e) if n > 1 && !e.kind.should_retry() && !e.gone => {
                tracing::warn!(events = n, error = %e.message, "odoo: a coalesced batch was refused; delivering its events one by one");
                for (i, ev) in refs.iter().enumerate() {
                    if let Err(e) = self.apply(std::slice::from_ref(ev), &refs, resolved).await {
                        return BatchOutcome {
                            delivered: i,
                            error: Some(e),
                        };
                    }
                }
                BatchOutcome {
                    delivered: n,
                    error: bad,
                }
            }
            Err(e) => BatchOutcome {
                delivered: 0,
                error: Some(e),
            },
        }
    }

    /// Applies `evs` to their picking; `batch` is every event delivered with them (the
    /// ship notice lines of a validation may come from one of them); `resolved` are the
    /// identifiers of the shipment their subject resolves to.
    async fn apply(
        &self,
        evs: &[&CloudEvent],
        batch: &[&CloudEvent],
        resolved: &[(String, String)],
    ) -> Result<(), DeliveryError> {
        let plan: Vec<(&CloudEvent, &[Action])> = evs
            .iter()
            .filter_map(|ev| {
                self.actions
                    .get(&ev.ty)
                    .filter(|a| !a.is_empty())
                    .map(|a| (*ev, a.as_slice()))
            })
            .collect();
        if plan.is_empty() {
            return Ok(());
        }
        let acting: Vec<&CloudEvent> = plan.iter().map(|(e, _)| *e).collect();
        let pid = self.find_picking(&acting, resolved).await?;
        let lock = self.lock_for("stock.picking", pid);
        let _guard = lock.lock().await;
        let mut p = self.read_picking(pid).await?;
        if !self.company_allows(&p, &acting) {
            return Err(permanent(codes::FOREIGN_COMPANY, format!(
                "odoo.foreign_company: picking {pid} belongs to company {} which this sink does not act for or the event does not name",
                p["company_id"]
            )));
        }
        let ctx = m2o(&p["company_id"]).map(|c| json!({"allowed_company_ids": [c]}));
        let with = |a: Action| {
            plan.iter()
                .filter(move |(_, acts)| acts.contains(&a))
                .map(|(e, _)| *e)
        };
        // What a ship notice says was shipped is worked out before anything is written:
        // a notice that does not fit the picking changes nothing.
        // The lines are the validating event's; without any, those of the latest event
        // delivered with it that has some (an 856's `warehouse.packed`), also when the
        // events of a refused batch are tried one by one.
        let open = !matches!(p["state"].as_str(), Some("done") | Some("cancel"));
        let has_lines = |e: &&CloudEvent| e.data["lines"].is_array();
        let notice = match with(Action::Validate).next() {
            Some(_) if open => with(Action::Validate)
                .rfind(has_lines)
                .or_else(|| batch.iter().rev().copied().find(has_lines)),
            _ => None,
        };
        let quantities = match notice {
            Some(ev) => self.shipped_quantities(&p, ev).await?,
            None => None,
        };
        if let Some(ev) = with(Action::SetTracking).rfind(|e| refs_of(e).contains_key("tracking")) {
            self.set_tracking(&p, ev, &ctx).await?;
        }
        if let Some(ev) = with(Action::RecordFreight)
            .next_back()
            .filter(|_| !self.odoo_owns.contains(&Fact::FreightCharge))
        {
            self.record_freight(&p, ev, &ctx).await?;
        }
        // The note comes before validation: should these events come again (Odoo did the
        // work but its answer was lost), it tells their picking from its new backorder.
        let chatter: Vec<&CloudEvent> = with(Action::Chatter).collect();
        if !chatter.is_empty() {
            let posted = self
                .notes
                .get(&self.client, json!(pid))
                .await
                .map_err(err)?;
            let lines = chatter_line::chatter_lines(&posted, &chatter);
            let mut notes: Vec<Value> = self
                .note("stock.picking", pid, &posted, "", &lines)
                .await?
                .into_iter()
                .collect();
            if let Some(so) = m2o(&p["sale_id"]).filter(|_| self.chatter_on_order) {
                let on_order = self
                    .order_notes
                    .get(&self.client, json!(so))
                    .await
                    .map_err(err)?;
                let prefix = format!("{}: ", p["name"].as_str().unwrap_or(""));
                notes.extend(
                    self.note("sale.order", so, &on_order, &prefix, &lines)
                        .await?,
                );
            }
            if !notes.is_empty() {
                self.new_notes
                    .create(&self.client, notes)
                    .await
                    .map_err(err)?;
            }
        }
        if with(Action::Validate).next().is_some() {
            if let Some(writes) = &quantities {
                self.write_quantities(writes, &ctx).await?;
            }
            p = self.validate(&p, &ctx).await?;
        }
        let activity: Vec<&CloudEvent> = with(Action::Activity).collect();
        if !activity.is_empty() {
            self.activity(pid, &activity, &ctx).await?;
        }
        if with(Action::Invoice).next().is_some() {
            // Invoicing is per sale order: two pickings of one order must not both invoice.
            let so_lock = m2o(&p["sale_id"]).map(|so| self.lock_for("sale.order", so));
            let _so_guard = match &so_lock {
                Some(l) => Some(l.lock().await),
                None => None,
            };
            self.invoice(&p, &ctx).await?;
        }
        Ok(())
    }

    fn ctx_kw(ctx: &Option<Value>, mut k: Map<String, Value>) -> Map<String, Value> {
        if let Some(c) = ctx {
            k.insert("context".into(), c.clone());
        }
        k
    }

    async fn write_picking(
        &self,
        pid: i64,
        vals: Map<String, Value>,
        ctx: &Option<Value>,
    ) -> Result<(), DeliveryError> {
        let k = Self::ctx_kw(ctx, kw(&[("vals", Value::Object(vals))]));
        self.client
            .call("stock.picking", "write", Some(&[pid]), k)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn set_tracking(
        &self,
        p: &Value,
        ev: &CloudEvent,
        ctx: &Option<Value>,
    ) -> Result<(), DeliveryError> {
        let refs = refs_of(ev);
        let Some(tracking) = refs.get("tracking") else {
            return Ok(());
        };
        let mut vals = Map::new();
        // A fact Odoo owns is Odoo's to set (a differing value is recorded by the hub
        // as an ownership conflict, not written).
        if p["carrier_tracking_ref"].as_str() != Some(tracking)
            && !self.odoo_owns.contains(&Fact::Tracking)
        {
            vals.insert("carrier_tracking_ref".into(), json!(tracking));
        }
        if let Some(cid) = refs
            .get("carrier")
            .filter(|_| !self.odoo_owns.contains(&Fact::Carrier))
            .and_then(|c| self.carriers.get(*c))
        {
            if m2o(&p["carrier_id"]) != Some(*cid) {
                vals.insert("carrier_id".into(), json!(cid));
            }
        }
        match (vals.is_empty(), p["id"].as_i64()) {
            (false, Some(pid)) => self.write_picking(pid, vals, ctx).await,
            _ => Ok(()),
        }
    }

    /// Validates the picking unless it is done or cancelled; returns it re-read.
    async fn validate(&self, p: &Value, ctx: &Option<Value>) -> Result<Value, DeliveryError> {
        let Some(pid) = p["id"].as_i64() else {
            return Ok(p.clone());
        };
        if matches!(p["state"].as_str(), Some("done") | Some("cancel")) {
            return Ok(p.clone());
        }
        let mut vctx = ctx.clone().unwrap_or_else(|| json!({}));
        if self.validate_sms == ValidateSms::Skip {
            vctx["skip_sms"] = json!(true);
        }
        let mut r = self
            .client
            .call(
                "stock.picking",
                "button_validate",
                Some(&[pid]),
                kw(&[("context", vctx.clone())]),
            )
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
            let mut wctx = match &r["context"] {
                Value::Object(_) => r["context"].clone(),
                _ => vctx.clone(),
            };
            if let (Some(o), Value::Object(c)) = (wctx.as_object_mut(), &vctx) {
                for (k, v) in c {
                    o.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            let wiz = match r["res_id"].as_i64() {
                Some(id) => id,
                None => self
                    .client
                    .create(model, json!([{}]), Some(wctx.clone()))
                    .await
                    .map_err(err)?
                    .first()
                    .copied()
                    .ok_or_else(|| {
                        permanent(
                            codes::PROTOCOL_ERROR,
                            format!("{model}.create returned no id"),
                        )
                    })?,
            };
            r = self
                .client
                .call(model, method, Some(&[wiz]), kw(&[("context", wctx)]))
                .await
                .map_err(err)?;
        }
        let after = self.read_picking(pid).await?;
        if after["state"] != "done" {
            return Err(permanent(
                codes::NOT_VALIDATED,
                format!(
                    "odoo.not_validated: picking {pid} is `{}` after button_validate",
                    after["state"]
                ),
            ));
        }
        Ok(after)
    }
}

impl Outbound for OdooSink {
    fn deliver<'a>(&'a self, item: &'a Delivery) -> DeliverFuture<'a> {
        Box::pin(async move {
            let o = self.apply_batch(std::slice::from_ref(item)).await;
            match o.error {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    fn wants_shipment_refs(&self) -> bool {
        true
    }

    fn deliver_batch<'a>(&'a self, items: &'a [Delivery]) -> BatchFuture<'a> {
        Box::pin(self.apply_batch(items))
    }
}
