//! exception-to-case: a delivery problem becomes a case the team works on.
//!
//! ```text
//!  delivery_attempted / exception / on_hold ──▶ OPEN (case.opened, Odoo activity, SLA timer)
//!  delayed ──▶ timer delay; not delivered when it fires ──▶ OPEN
//!  OPEN ── another problem or scan ──▶ case.updated
//!  OPEN ── SLA timer ──▶ case.escalated + a second activity (once)
//!  OPEN ── delivered ──▶ CLOSED (case.closed)
//!  CLOSED ── a new problem ──▶ OPEN again (case.opened, reopened = true, next opening)
//! ```
//!
//! The case carries the shipment's context for a helpdesk: its references (order,
//! tracking, picking), the problems seen and, when delivery-to-invoice posted one, the
//! invoice.

use super::{Answer, Call, Ctx, Effects, Input, Machine, Status};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// `[workflows.exception_to_case]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRules {
    /// Run it (default true).
    #[serde(default = "super::yes")]
    pub enabled: bool,
    /// How long a case may stay open before it is escalated (default 24h).
    #[serde(default = "default_sla", with = "crate::duration::both")]
    pub sla: Duration,
    /// How long a `delayed` shipment may stay undelivered before a case opens (default
    /// 12h).
    #[serde(default = "default_delay", with = "crate::duration::both")]
    pub delay_threshold: Duration,
}

fn default_sla() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_delay() -> Duration {
    Duration::from_secs(12 * 3600)
}

/// Where a case stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// No case (yet).
    #[default]
    None,
    /// A `delayed` shipment, waiting for the threshold.
    Watching,
    /// Open.
    Open,
    /// Closed by the delivery.
    Closed,
}

/// The state of a shipment's case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Stage.
    pub stage: Stage,
    /// How many times the case was opened (1 = first opening).
    pub opening: u32,
    /// Escalated in this opening.
    pub escalated: bool,
    /// Delivered (a later `delayed` opens nothing).
    pub delivered: bool,
    /// The ERP picking, when known.
    pub picking_id: Option<i64>,
    /// The problems of this opening: type, reason, time, event id.
    pub problems: Vec<Value>,
    /// Context for the helpdesk (references, the invoice when one was posted).
    pub context: Value,
}

/// The machine.
pub struct ExceptionToCase {
    rules: CaseRules,
}

impl ExceptionToCase {
    /// With these rules.
    pub fn new(rules: CaseRules) -> Self {
        ExceptionToCase { rules }
    }
}

const PROBLEMS: &[&str] = &[
    "shipment.delivery_attempted",
    "shipment.exception",
    "shipment.on_hold",
];

fn case_id(cx: &Ctx) -> String {
    format!("case:{}", cx.entity)
}

fn problem(ev: &Value) -> Value {
    json!({"type": ev["type"], "reason": ev["data"]["reason"], "text": ev["data"]["raw"]["text"],
           "time": ev["time"], "event": ev["id"], "source": ev["source"]})
}

impl ExceptionToCase {
    fn emit(&self, cx: &Ctx, st: &State, ty: &str, key: &str, fx: &mut Effects, extra: Value) {
        let mut data = json!({
            "case": case_id(cx), "opening": st.opening, "shipment": cx.entity,
            "problems": st.problems, "context": st.context, "workflow": "exception_to_case",
        });
        if let (Some(d), Some(x)) = (data.as_object_mut(), extra.as_object()) {
            for (k, v) in x {
                d.insert(k.clone(), v.clone());
            }
        }
        fx.call(Call::Emit {
            key: format!("{}:{key}", case_id(cx)),
            drafts: vec![json!({"type": ty, "subject": cx.entity,
                                "key": format!("{}:{key}", case_id(cx)), "data": data})],
        });
    }

    /// `case.updated` for an event of an open case (keyed by the event: once each).
    fn update(&self, cx: &Ctx, st: &State, ev: &Value, fx: &mut Effects) {
        let key = format!("{}:update:{}", st.opening, ev["id"].as_str().unwrap_or(""));
        self.emit(
            cx,
            st,
            "case.updated",
            &key,
            fx,
            json!({"update": problem(ev)}),
        );
    }

    fn learn(&self, cx: &Ctx, st: &mut State, ev: &Value) {
        if st.picking_id.is_none() {
            st.picking_id = cx
                .reference("odoo.picking_id")
                .or_else(|| ev["data"]["refs"]["odoo.picking_id"].as_str())
                .and_then(|s| s.parse().ok());
        }
        let mut refs = serde_json::Map::new();
        for (k, v) in &cx.refs {
            refs.entry(k.clone()).or_insert_with(|| json!(v));
        }
        if !refs.is_empty() {
            st.context["refs"] = Value::Object(refs);
        }
        if ev["type"] == "invoice.posted" {
            st.context["invoice"] = ev["data"].clone();
        }
    }

    fn open(&self, cx: &Ctx, st: &mut State, why: Value, fx: &mut Effects) {
        let reopened = st.opening > 0;
        st.opening += 1;
        st.stage = Stage::Open;
        st.escalated = false;
        st.problems = vec![why.clone()];
        fx.set_timers.push(("sla".into(), self.rules.sla));
        fx.cancel_timers.push("delay".into());
        if let Some(pid) = st.picking_id {
            fx.call(Call::Activity {
                picking_id: pid,
                marker: format!("[waybill {}#{}]", case_id(cx), st.opening),
                summary: format!(
                    "Delivery problem: {}",
                    why["type"].as_str().unwrap_or("shipment")
                ),
                note: format!(
                    "{} {} {}",
                    why["type"].as_str().unwrap_or(""),
                    why["reason"].as_str().unwrap_or(""),
                    why["text"].as_str().unwrap_or("")
                ),
            });
        }
        let key = format!("{}:opened", st.opening);
        self.emit(
            cx,
            st,
            "case.opened",
            &key,
            fx,
            json!({"reopened": reopened}),
        );
    }
}

impl Machine for ExceptionToCase {
    type State = State;

    fn kind(&self) -> &'static str {
        "exception_to_case"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "shipment.delivery_attempted",
            "shipment.exception",
            "shipment.on_hold",
            "shipment.delayed",
            "shipment.delivered",
            "shipment.out_for_delivery",
            "shipment.in_transit",
            "invoice.posted",
        ]
    }

    fn on_input(&self, cx: &Ctx, st: &mut State, input: &Input, fx: &mut Effects) {
        match input {
            Input::Event(ev) => {
                self.learn(cx, st, ev);
                let ty = ev["type"].as_str().unwrap_or_default();
                match ty {
                    t if PROBLEMS.contains(&t) => {
                        if st.stage == Stage::Open {
                            st.problems.push(problem(ev));
                            self.update(cx, st, ev, fx);
                        } else {
                            self.open(cx, st, problem(ev), fx);
                        }
                    }
                    "shipment.delayed" => {
                        if st.stage == Stage::Open {
                            st.problems.push(problem(ev));
                            self.update(cx, st, ev, fx);
                        } else if !st.delivered && st.stage != Stage::Watching {
                            st.stage = Stage::Watching;
                            st.problems = vec![problem(ev)];
                            fx.set_timers
                                .push(("delay".into(), self.rules.delay_threshold));
                        }
                    }
                    "shipment.delivered" => {
                        st.delivered = true;
                        fx.cancel_timers.push("delay".into());
                        match st.stage {
                            Stage::Open => {
                                st.stage = Stage::Closed;
                                fx.cancel_timers.push("sla".into());
                                let key = format!("{}:closed", st.opening);
                                self.emit(
                                    cx,
                                    st,
                                    "case.closed",
                                    &key,
                                    fx,
                                    json!({"closed_by": ev["id"]}),
                                );
                            }
                            Stage::Watching => st.stage = Stage::None,
                            _ => {}
                        }
                    }
                    "shipment.out_for_delivery" | "shipment.in_transit"
                        if st.stage == Stage::Open =>
                    {
                        self.update(cx, st, ev, fx);
                    }
                    _ => {}
                }
            }
            Input::Timer(t) if t == "delay" && st.stage == Stage::Watching => {
                let why = st.problems.first().cloned().unwrap_or(Value::Null);
                self.open(cx, st, why, fx);
            }
            Input::Timer(t) if t == "sla" && st.stage == Stage::Open && !st.escalated => {
                st.escalated = true;
                if let Some(pid) = st.picking_id {
                    fx.call(Call::Activity {
                        picking_id: pid,
                        marker: format!("[waybill {}#{} escalated]", case_id(cx), st.opening),
                        summary: "Escalated: delivery problem still open".into(),
                        note: format!(
                            "Open for more than {} h without delivery.",
                            self.rules.sla.as_secs() / 3600
                        ),
                    });
                }
                let key = format!("{}:escalated", st.opening);
                self.emit(
                    cx,
                    st,
                    "case.escalated",
                    &key,
                    fx,
                    json!({"sla_s": self.rules.sla.as_secs()}),
                );
            }
            Input::Cancel { .. } => {
                fx.cancel_timers.push("sla".into());
                fx.cancel_timers.push("delay".into());
                if st.stage == Stage::Open {
                    st.stage = Stage::Closed;
                    let key = format!("{}:closed", st.opening);
                    self.emit(
                        cx,
                        st,
                        "case.closed",
                        &key,
                        fx,
                        json!({"closed_by": "operator"}),
                    );
                }
            }
            _ => {}
        }
    }

    fn on_answer(&self, _: &Ctx, _: &mut State, _: &Call, _: &Answer, _: &mut Effects) {}

    fn status(&self, st: &State) -> (Status, String) {
        let (status, stage) = match st.stage {
            Stage::None => (Status::Done, "none"),
            Stage::Watching => (Status::Waiting, "watching"),
            Stage::Open => (Status::Waiting, "open"),
            Stage::Closed => (Status::Done, "closed"),
        };
        (status, stage.to_owned())
    }
}
