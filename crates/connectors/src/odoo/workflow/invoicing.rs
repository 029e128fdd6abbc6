//! Invoicing through Odoo's public flow, shared with the sink (`sink::money`):
//! `sale.advance.payment.inv` ("delivered quantities") → `create_invoices`, then
//! `account.move.action_post`. The invoice made under a marker is the one whose chatter
//! has the port's internal note with that marker (posted on the draft right after Odoo
//! made it; the invoice's own fields stay as Odoo fills them — `ref` is the customer's
//! reference, printed on the invoice). A retry finds it and posts it if it is still a
//! draft; a draft of the order without the port's note (left by a crash between Odoo
//! making it and the note) is taken over rather than asking Odoo for another invoice,
//! which it would refuse (the draft already holds the delivered quantities).

use super::{carries_marker, company_context, m2o, port, text, OdooErp};
use crate::odoo::sink::kw;
use crate::odoo::sink::money::{create_invoices, post_invoices};
use crate::odoo::OdooError;
use serde_json::{json, Value};
use waybill_engine::workflow::ports::{Invoice, PortError};
use waybill_model::FailureKind;

/// The fields of an invoice.
const INVOICE_FIELDS: &[&str] = &["name", "state", "amount_total", "currency_id"];

/// The start of the internal note the port posts on an invoice it made; the caller's
/// marker ends it.
pub(super) const INVOICE_NOTE: &str = "Invoice made by Waybill";

/// Whether Odoo refused to invoice because no line has a quantity to invoice (products
/// invoiced on delivery, not delivered yet): `UserError` "Cannot create an invoice. No
/// items are available to invoice." (Odoo 17 to 19), "There is no invoiceable line."
/// (Odoo 16 and before). Odoo words it in English unless the call names a `lang`.
pub(super) fn nothing_to_invoice(e: &OdooError) -> bool {
    match e {
        OdooError::Server { name, message } => {
            name.ends_with("UserError")
                && (message.contains("No items are available to invoice")
                    || message.contains("There is no invoiceable line"))
        }
        _ => false,
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
impl OdooErp {
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
    pub(super) async fn claim(
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
    pub(super) async fn make_invoice(
        &self,
        picking_id: i64,
        marker: &str,
    ) -> Result<Invoice, PortError> {
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
}
