//! delivery-to-invoice: a delivered shipment is invoiced in the ERP once its gates pass;
//! a gate that fails holds the invoice and asks a person.
//!
//! ```text
//!  shipment.delivered ─▶ read order ─▶ picking validated? ──no──▶ waiting_picking
//!                                          │                      (shipment.dispatched / retry)
//!                                          ▼ yes
//!     documents: proof of delivery (and the freight invoice when required) ──missing──▶
//!         waiting_documents ──timer documents──▶ task documents_missing
//!                                          ▼ present
//!     gates: no exception after delivery · billed weight within weight_tolerance_pct of the
//!            booked weight · freight charge within charge_tolerance_pct of the quote ·
//!            order total at most approval_above
//!         ──a gate fails──▶ holding: task approve_invoice (reasons, figures)
//!                               approve ─▶ invoice · reject ─▶ rejected
//!                                          ▼ all pass
//!     invoice (created and posted in the ERP, once) ─▶ invoice.posted ─▶ invoiced
//! ```
//!
//! An ERP that answers "nothing to invoice" (the picking was not validated yet: a proof of
//! delivery can arrive before the pickup scan) sends the workflow back to
//! `waiting_picking` instead of failing.

use super::order_to_ship::minor;
use super::ports::{Invoice, OrderContext};
use super::{Answer, Call, Ctx, Effects, Input, Machine, Status};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;
use waybill_store::flow::NewTask;

/// `[workflows.delivery_to_invoice]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// Run it (default true).
    #[serde(default = "super::yes")]
    pub enabled: bool,
    /// Wait for a proof of delivery (`pod.captured`, or a delivery event with a signer
    /// or a photo) before invoicing (default true).
    #[serde(default = "super::yes")]
    pub require_pod: bool,
    /// Wait for the carrier's freight invoice (`freight.charge_confirmed`) (default false).
    #[serde(default)]
    pub require_freight_invoice: bool,
    /// Largest difference between billed and booked weight, percent (default 10).
    #[serde(default = "ten")]
    pub weight_tolerance_pct: f64,
    /// Largest difference between the freight charge and the quote, percent (default 10).
    #[serde(default = "ten")]
    pub charge_tolerance_pct: f64,
    /// Order totals above this need a person's approval (a decimal string; none: never).
    #[serde(default)]
    pub approval_above: Option<String>,
    /// How long to wait for missing documents before asking a person (default 48h).
    #[serde(default = "default_wait", with = "crate::duration::both")]
    pub documents_wait: Duration,
}

fn ten() -> f64 {
    10.0
}
fn default_wait() -> Duration {
    Duration::from_secs(48 * 3600)
}

/// Where it stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Not delivered yet.
    #[default]
    WaitingDelivery,
    /// Reading the order.
    ReadingOrder,
    /// The picking is not validated in the ERP.
    WaitingPicking,
    /// A document is missing.
    WaitingDocuments,
    /// A gate failed: a person decides (task `approve_invoice` or `documents_missing`).
    Holding,
    /// Invoicing.
    Invoicing,
    /// Invoiced.
    Invoiced,
    /// A person rejected the invoice.
    Rejected,
    /// A step failed for good.
    Failed,
    /// The order was cancelled before it was invoiced.
    Cancelled,
}

/// The freight invoice's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Freight {
    /// Total charge, decimal string.
    pub amount: Option<String>,
    /// Billed weight, kg.
    pub weight_kg: Option<f64>,
    /// The carrier's invoice number.
    pub invoice_number: Option<String>,
}

/// The state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Stage.
    pub stage: Stage,
    /// The ERP picking.
    pub picking_id: Option<i64>,
    /// The booking's price and weight (from `shipment.booked`).
    pub booked_amount: Option<String>,
    /// Booked weight, kg.
    pub booked_weight_kg: Option<f64>,
    /// Delivered.
    pub delivered: bool,
    /// A proof of delivery was seen.
    pub pod: bool,
    /// The picking is validated in the ERP.
    pub picking_done: bool,
    /// The order's total.
    pub order_amount: Option<String>,
    /// The freight invoice.
    pub freight: Option<Freight>,
    /// Problems reported after delivery (type, reason, event).
    pub exceptions: Vec<Value>,
    /// A person approved invoicing despite the gates.
    pub approved: bool,
    /// Why it is held, with the figures.
    pub held: Vec<Value>,
    /// The invoice.
    pub invoice: Option<Invoice>,
}

/// The machine.
pub struct DeliveryToInvoice {
    gates: Gates,
}

fn kg(weight: &Value) -> Option<f64> {
    let v = weight["value"]
        .as_f64()
        .or_else(|| weight["value"].as_str().and_then(|s| s.parse().ok()))?;
    Some(match weight["unit"].as_str().unwrap_or("K") {
        "L" | "lb" | "LB" => v * 0.453_592_37,
        _ => v,
    })
}

fn off_by_pct(actual: f64, expected: f64) -> f64 {
    if expected == 0.0 {
        return if actual == 0.0 { 0.0 } else { f64::INFINITY };
    }
    ((actual - expected) / expected).abs() * 100.0
}

impl DeliveryToInvoice {
    /// With these gates.
    pub fn new(gates: Gates) -> Self {
        DeliveryToInvoice { gates }
    }

    /// The gates that fail, with their figures.
    pub fn failing(&self, st: &State) -> Vec<Value> {
        let mut out = Vec::new();
        if !st.exceptions.is_empty() {
            out.push(json!({"gate": "no_exception", "exceptions": st.exceptions}));
        }
        if let (Some(f), Some(booked)) = (&st.freight, st.booked_weight_kg) {
            if let Some(w) = f.weight_kg {
                let pct = off_by_pct(w, booked);
                if pct > self.gates.weight_tolerance_pct {
                    out.push(
                        json!({"gate": "weight", "billed_kg": w, "booked_kg": booked,
                                    "off_pct": (pct * 10.0).round() / 10.0,
                                    "tolerance_pct": self.gates.weight_tolerance_pct}),
                    );
                }
            }
        }
        if let (Some(f), Some(quoted)) = (&st.freight, st.booked_amount.as_deref()) {
            if let (Some(charged), Some(q)) = (f.amount.as_deref().and_then(minor), minor(quoted)) {
                let pct = off_by_pct(charged as f64, q as f64);
                if pct > self.gates.charge_tolerance_pct {
                    out.push(
                        json!({"gate": "charge", "charged": f.amount, "quoted": quoted,
                                    "off_pct": (pct * 10.0).round() / 10.0,
                                    "tolerance_pct": self.gates.charge_tolerance_pct}),
                    );
                }
            }
        }
        if let (Some(limit), Some(total)) = (
            self.gates.approval_above.as_deref(),
            st.order_amount.as_deref(),
        ) {
            if let (Some(l), Some(t)) = (minor(limit), minor(total)) {
                if t > l {
                    out.push(
                        json!({"gate": "approval", "order_total": total, "approval_above": limit}),
                    );
                }
            }
        }
        out
    }

    fn missing(&self, st: &State) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.gates.require_pod && !st.pod {
            m.push("proof_of_delivery");
        }
        if self.gates.require_freight_invoice && st.freight.is_none() {
            m.push("freight_invoice");
        }
        m
    }

    fn evaluate(&self, cx: &Ctx, st: &mut State, fx: &mut Effects) {
        if !st.delivered
            || matches!(
                st.stage,
                Stage::ReadingOrder
                    | Stage::Holding
                    | Stage::Invoicing
                    | Stage::Invoiced
                    | Stage::Rejected
                    | Stage::Cancelled
            )
        {
            return;
        }
        let Some(pid) = st.picking_id else {
            return self.hold(cx, st, vec![json!({"gate": "erp_picking", "detail": "no ERP picking is linked to this shipment"})], fx);
        };
        // The order is read once (its total is the approval gate's figure, its picking's
        // state tells whether Odoo can invoice), whatever came first.
        if st.order_amount.is_none() {
            st.stage = Stage::ReadingOrder;
            return fx.call(Call::ReadOrder { picking_id: pid });
        }
        if !st.picking_done {
            st.stage = Stage::WaitingPicking;
            return;
        }
        if !st.approved {
            if !self.missing(st).is_empty() {
                if st.stage != Stage::WaitingDocuments {
                    st.stage = Stage::WaitingDocuments;
                    fx.set_timers
                        .push(("documents".into(), self.gates.documents_wait));
                }
                return;
            }
            let failing = self.failing(st);
            if !failing.is_empty() {
                return self.hold(cx, st, failing, fx);
            }
        }
        fx.cancel_timers.push("documents".into());
        st.stage = Stage::Invoicing;
        fx.call(Call::Invoice {
            picking_id: pid,
            marker: format!("[waybill invoice {}]", cx.entity),
        });
    }

    /// A document came: evaluate again when waiting for documents, or when a person was
    /// asked about missing documents (the question is withdrawn).
    fn documents_arrived(&self, cx: &Ctx, st: &mut State, fx: &mut Effects) {
        let asked = st.stage == Stage::Holding && st.held.iter().any(|r| r["gate"] == "documents");
        if asked {
            fx.cancel_tasks.push("documents_missing".into());
            st.held.clear();
            st.stage = Stage::WaitingDelivery;
        }
        if asked || st.stage == Stage::WaitingDocuments {
            st.stage = Stage::WaitingDelivery;
            self.evaluate(cx, st, fx);
        }
    }

    fn hold(&self, cx: &Ctx, st: &mut State, reasons: Vec<Value>, fx: &mut Effects) {
        st.stage = Stage::Holding;
        st.held = reasons.clone();
        let kind = if reasons.iter().any(|r| r["gate"] == "documents") {
            "documents_missing"
        } else {
            "approve_invoice"
        };
        fx.open_tasks.push(NewTask {
            kind: kind.into(),
            title: format!("Invoice held: {}", cx.entity),
            detail: json!({"reasons": reasons, "order_total": st.order_amount,
                           "booked": {"amount": st.booked_amount, "weight_kg": st.booked_weight_kg},
                           "freight": st.freight})
            .to_string(),
        });
    }
}

impl Machine for DeliveryToInvoice {
    type State = State;

    fn kind(&self) -> &'static str {
        "delivery_to_invoice"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "order.cancelled",
            "shipment.booked",
            "shipment.dispatched",
            "shipment.delivered",
            "pod.captured",
            "freight.charge_confirmed",
            "shipment.exception",
            "shipment.delivery_attempted",
        ]
    }

    fn on_input(&self, cx: &Ctx, st: &mut State, input: &Input, fx: &mut Effects) {
        match input {
            Input::Event(ev) => {
                if st.picking_id.is_none() {
                    st.picking_id = cx
                        .reference("odoo.picking_id")
                        .or_else(|| ev["data"]["refs"]["odoo.picking_id"].as_str())
                        .and_then(|s| s.parse().ok());
                }
                let d = &ev["data"];
                match ev["type"].as_str().unwrap_or_default() {
                    "shipment.booked" => {
                        st.booked_amount = d["price"]["amount"].as_str().map(str::to_owned);
                        st.booked_weight_kg = d["weight_kg"].as_f64();
                    }
                    // The ERP's own `dispatched` (the Odoo poller's, naming the picking:
                    // the picking is done), not a carrier's or a ship notice's.
                    "shipment.dispatched" if d["refs"]["odoo.picking_id"].is_string() => {
                        st.picking_done = true;
                        if st.stage == Stage::WaitingPicking {
                            self.evaluate(cx, st, fx);
                        }
                    }
                    "shipment.delivered" => {
                        st.delivered = true;
                        if d["signed_by"].is_string()
                            || d["photo_url"].is_string()
                            || d["signature_url"].is_string()
                        {
                            st.pod = true;
                        }
                        self.evaluate(cx, st, fx);
                    }
                    "pod.captured" => {
                        st.pod = true;
                        self.documents_arrived(cx, st, fx);
                    }
                    "freight.charge_confirmed" => {
                        st.freight = Some(Freight {
                            amount: d["total"].as_str().map(str::to_owned),
                            weight_kg: kg(&d["weight"]),
                            invoice_number: d["invoice_number"].as_str().map(str::to_owned),
                        });
                        self.documents_arrived(cx, st, fx);
                    }
                    "order.cancelled" if st.invoice.is_none() => {
                        fx.cancel_timers.push("documents".into());
                        fx.cancel_tasks.push("*".into());
                        st.stage = Stage::Cancelled;
                    }
                    "shipment.exception" | "shipment.delivery_attempted" if st.delivered => {
                        st.exceptions.push(
                            json!({"type": ev["type"], "reason": d["reason"], "event": ev["id"]}),
                        );
                    }
                    _ => {}
                }
            }
            Input::Timer(t) if t == "documents" && st.stage == Stage::WaitingDocuments => {
                let missing = self.missing(st);
                let reasons = vec![json!({"gate": "documents", "missing": missing,
                                          "waited_s": self.gates.documents_wait.as_secs()})];
                self.hold(cx, st, reasons, fx);
            }
            Input::Task { .. } if st.stage == Stage::Failed => {
                self.on_input(cx, st, &Input::Retry { by: String::new() }, fx)
            }
            Input::Task { decision, .. } if st.stage == Stage::Holding => {
                match decision["action"].as_str().unwrap_or_default() {
                    "approve" => {
                        st.approved = true;
                        st.stage = Stage::WaitingDocuments;
                        self.evaluate(cx, st, fx);
                    }
                    "reject" => st.stage = Stage::Rejected,
                    "wait" => {
                        // Look again first: what was missing may have come meanwhile.
                        st.stage = Stage::WaitingDelivery;
                        self.evaluate(cx, st, fx);
                    }
                    _ => {}
                }
            }
            Input::Retry { .. } if matches!(st.stage, Stage::Failed | Stage::WaitingPicking) => {
                st.stage = Stage::WaitingDelivery;
                st.picking_done = false;
                st.order_amount = None;
                self.evaluate(cx, st, fx);
            }
            Input::Cancel { .. } => {
                fx.cancel_timers.push("documents".into());
                fx.cancel_tasks.push("*".into());
                st.stage = Stage::Rejected;
            }
            _ => {}
        }
    }

    fn on_answer(&self, cx: &Ctx, st: &mut State, call: &Call, answer: &Answer, fx: &mut Effects) {
        match (call, answer) {
            (Call::ReadOrder { .. }, Ok(v)) => {
                if let Ok(o) = serde_json::from_value::<OrderContext>(v.clone()) {
                    st.picking_done = st.picking_done || o.state == "done";
                    st.order_amount = o.order_amount.or(Some(String::new()));
                }
                st.stage = Stage::WaitingDelivery;
                self.evaluate(cx, st, fx);
            }
            (Call::Invoice { .. }, Ok(v)) => {
                let inv: Invoice = serde_json::from_value(v.clone()).unwrap_or_default();
                st.stage = Stage::Invoiced;
                fx.call(Call::Emit {
                    key: format!("invoice:{}", cx.entity),
                    drafts: vec![json!({
                        "type": "invoice.posted", "subject": cx.entity,
                        "key": format!("invoice:{}", inv.id),
                        "refs": {"invoice": inv.name},
                        "data": {"invoice": inv, "approved_by_person": st.approved,
                                 "workflow": "delivery_to_invoice"},
                    })],
                });
                st.invoice = Some(inv);
            }
            (Call::Invoice { .. }, Err(e)) if e.code == "odoo.nothing_to_invoice" => {
                st.picking_done = false;
                st.stage = Stage::WaitingPicking;
            }
            (Call::ReadOrder { .. } | Call::Invoice { .. }, Err(e)) => {
                st.stage = Stage::Failed;
                fx.open_tasks.push(NewTask {
                    kind: "step_failed".into(),
                    title: format!("Invoicing step `{}` failed: {}", call.name(), e.code),
                    detail: json!({"step": call.name(), "error": e}).to_string(),
                });
            }
            _ => {}
        }
    }

    fn status(&self, st: &State) -> (Status, String) {
        let status = match st.stage {
            Stage::ReadingOrder | Stage::Invoicing => Status::Running,
            Stage::WaitingDelivery
            | Stage::WaitingPicking
            | Stage::WaitingDocuments
            | Stage::Holding => Status::Waiting,
            Stage::Invoiced | Stage::Rejected => Status::Done,
            Stage::Cancelled => Status::Cancelled,
            Stage::Failed => Status::Failed,
        };
        let stage = serde_json::to_value(st.stage)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        (status, stage)
    }
}

#[cfg(test)]
mod tests;
