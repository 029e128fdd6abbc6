//! order-to-ship: an order released in the ERP (its picking ready, stock reserved) is
//! booked with a carrier through the booking service, by rules, falling back to the next
//! carrier when one refuses, and to a person (a workbench task) when none can be chosen;
//! the booking is recorded on the picking (tracking ref, carrier, cost, label) and the
//! customer told; a cancellation after booking voids the label.
//!
//! ```text
//! order.released ─▶ read order ─┬─(wait_for_packing)─▶ awaiting_pack ──warehouse.packed──┐
//!                               │                        └─timer packing─▶ task packing_overdue
//!                               └──────────────────────────────────────────────────────────┤
//!   find booking by reference ◀─────────────────────────────────────────────────────────────┘
//!     ├─ booked already ──────────────────────────────────────────────▶ record
//!     └─ nothing / draft ─▶ quote ─▶ rules ─▶ buy 1st ─refused─▶ buy 2nd … ─all refused─┐
//!                                      └─ no quote passes ─────────────────────────────────┤
//!                          task choose_carrier (+ activity, shipment.booking_rejected) ◀─┘
//!                              └─ decision: carrier / booked by hand / retry / cancel
//!   record: picking ← tracking, carrier, cost, label; customer message;
//!           shipment.booked + shipment.label_created ─▶ booked ──shipment.delivered──▶ done
//!   order.cancelled / cancel command: booked ─▶ void label ─┬─ ok ─▶ note ─▶ cancelled
//!                                                           └─ refused ─▶ task void_refused
//! ```

use super::ports::{Booked, BookingRequest, Draft, OrderContext, Parcel, PortError, Quote};
use super::{Answer, Call, Ctx, Effects, Input, Machine, Status};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use waybill_store::flow::NewTask;

/// How quotes are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Choose {
    /// Lowest price first (then the preference order).
    #[default]
    Cheapest,
    /// The order of `carriers` first (then price).
    Preference,
}

/// A carrier not used for some destinations.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    /// Carrier (connection id).
    pub carrier: String,
    /// ISO country codes it must not be used for.
    pub countries: Vec<String>,
}

/// `[workflows.order_to_ship]` rules.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Run it (default true).
    #[serde(default = "super::yes")]
    pub enabled: bool,
    /// Carriers to quote (the booking service's connection ids), in order of preference.
    pub carriers: Vec<String>,
    /// How to order the quotes that pass the rules.
    #[serde(default)]
    pub choose: Choose,
    /// Highest price booked without a person (a decimal string); above it, a task.
    #[serde(default)]
    pub max_price: Option<String>,
    /// The ERP's delivery method name → the service code to book.
    #[serde(default)]
    pub services: BTreeMap<String, String>,
    /// The service when the order names none that `services` maps.
    #[serde(default)]
    pub default_service: Option<String>,
    /// Carriers not used for some destinations.
    #[serde(default)]
    pub exclude: Vec<Exclusion>,
    /// Wait for `warehouse.packed` (the WMS's weights) before booking.
    #[serde(default)]
    pub wait_for_packing: bool,
    /// How long to wait for packing before a person is asked.
    #[serde(default = "default_packing_timeout", with = "crate::duration::both")]
    pub packing_timeout: Duration,
    /// Weight of a parcel when neither the WMS nor the ERP gives one, kg.
    #[serde(default = "default_weight")]
    pub default_weight_kg: f64,
    /// Only orders released at or after this instant (RFC 3339) are booked; older ones
    /// (the backlog the Odoo poller reads on its first start) are skipped. Unset: the
    /// time the hub first ran order-to-ship (kept in the store).
    #[serde(default)]
    pub released_after: Option<String>,
}

fn default_packing_timeout() -> Duration {
    Duration::from_secs(4 * 3600)
}

fn default_weight() -> f64 {
    1.0
}

/// A decimal amount in ten-thousandths (prices are compared exactly, never as floats).
pub fn minor(amount: &str) -> Option<i64> {
    let s = amount.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 4
    {
        return None;
    }
    let i: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let f: i64 = format!("{frac:0<4}").parse().ok()?;
    let v = i.checked_mul(10_000)?.checked_add(f)?;
    Some(if neg { -v } else { v })
}

/// The quotes a booking may use without a person, best first.
pub fn candidates<'q>(
    quotes: &'q [Quote],
    rules: &Rules,
    country: &str,
    service: Option<&str>,
) -> Vec<&'q Quote> {
    let max = rules.max_price.as_deref().and_then(minor);
    let rank = |c: &str| {
        rules
            .carriers
            .iter()
            .position(|x| x == c)
            .unwrap_or(usize::MAX)
    };
    let mut ok: Vec<(&Quote, i64)> = quotes
        .iter()
        .filter(|q| rules.carriers.is_empty() || rules.carriers.contains(&q.carrier))
        .filter(|q| service.is_none_or(|s| q.service == s))
        .filter(|q| {
            !rules.exclude.iter().any(|x| {
                x.carrier == q.carrier
                    && x.countries.iter().any(|c| c.eq_ignore_ascii_case(country))
            })
        })
        .filter_map(|q| minor(&q.amount).map(|p| (q, p)))
        .filter(|(_, p)| max.is_none_or(|m| *p <= m))
        .collect();
    match rules.choose {
        Choose::Cheapest => ok.sort_by(|a, b| {
            (a.1, rank(&a.0.carrier), &a.0.carrier, &a.0.service).cmp(&(
                b.1,
                rank(&b.0.carrier),
                &b.0.carrier,
                &b.0.service,
            ))
        }),
        Choose::Preference => ok.sort_by(|a, b| {
            (rank(&a.0.carrier), a.1, &a.0.service).cmp(&(rank(&b.0.carrier), b.1, &b.0.service))
        }),
    }
    ok.into_iter().map(|(q, _)| q).collect()
}

/// Where an order-to-ship stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Before `order.released`.
    #[default]
    New,
    /// Reading the order from the ERP.
    ReadingOrder,
    /// The picking is not ready (stock not reserved): waiting for the next release.
    WaitingStock,
    /// Waiting for the WMS's `warehouse.packed`.
    AwaitingPack,
    /// Looking up an earlier booking, quoting.
    Quoting,
    /// Buying a label.
    Buying,
    /// A person must choose (task `choose_carrier`).
    NeedsDecision,
    /// Recording the booking in the ERP, emitting events.
    Recording,
    /// Booked; waiting for delivery or a cancellation.
    Booked,
    /// Delivered: done.
    Delivered,
    /// Voiding the label after a cancellation.
    Voiding,
    /// The carrier refused the void (task `void_refused`).
    VoidRefused,
    /// Cancelled.
    Cancelled,
    /// A step failed for good (task `step_failed`).
    Failed,
    /// Released before `released_after`: not booked.
    Skipped,
}

/// A quote that was tried and refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    /// Carrier.
    pub carrier: String,
    /// Service.
    pub service: String,
    /// Price.
    pub amount: String,
    /// The refusal's code.
    pub code: String,
    /// The refusal.
    pub message: String,
}

/// The state of one order-to-ship.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Stage.
    pub stage: Stage,
    /// The shipment's subject (events are emitted on it).
    pub subject: String,
    /// The ERP picking.
    pub picking_id: Option<i64>,
    /// What the ERP said of the order.
    pub order: Option<OrderContext>,
    /// Parcels from the WMS, when it packed.
    pub parcels: Vec<Parcel>,
    /// Booking attempt (a new reference after a voided booking).
    pub attempt: u32,
    /// The draft booking and its quotes.
    pub draft: Option<Draft>,
    /// Quote ids still to try, best first.
    pub candidates: Vec<String>,
    /// Quotes refused so far.
    pub tried: Vec<Tried>,
    /// The booking.
    pub booked: Option<Booked>,
    /// Kept label document.
    pub label: Option<String>,
    /// Why the workflow waits for a person, when it does.
    pub waiting_for: Option<String>,
    /// Markers of the ERP activities it scheduled that are still open (closed when a
    /// person resolves the task, or the workflow is cancelled).
    #[serde(default)]
    pub open_activities: Vec<String>,
}

impl State {
    fn reference(&self) -> String {
        if self.attempt == 0 {
            format!("wb:{}", self.subject)
        } else {
            format!("wb:{}:{}", self.subject, self.attempt)
        }
    }
}

/// The machine.
pub struct OrderToShip {
    rules: Rules,
}

impl OrderToShip {
    /// With these rules.
    pub fn new(rules: Rules) -> Self {
        OrderToShip { rules }
    }

    /// Whether a release happened before `released_after`.
    fn released_before_start(&self, ev: &Value) -> bool {
        use time::format_description::well_known::Rfc3339;
        let parse = |s: &str| time::OffsetDateTime::parse(s, &Rfc3339).ok();
        match (
            self.rules.released_after.as_deref().and_then(parse),
            ev["time"].as_str().and_then(parse),
        ) {
            (Some(after), Some(at)) => at < after,
            _ => false,
        }
    }

    fn service_for(&self, order: Option<&OrderContext>) -> Option<String> {
        order
            .and_then(|o| o.carrier_hint.as_ref())
            .and_then(|h| self.rules.services.get(h))
            .or(self.rules.default_service.as_ref())
            .cloned()
    }

    fn start_booking(&self, st: &mut State, fx: &mut Effects) {
        st.stage = Stage::Quoting;
        st.waiting_for = None;
        fx.call(Call::FindBooking {
            reference: st.reference(),
        });
    }

    fn request(&self, st: &State) -> BookingRequest {
        let order = st.order.clone().unwrap_or_default();
        let parcels = if st.parcels.is_empty() {
            vec![Parcel {
                weight_kg: if order.weight_kg > 0.0 {
                    order.weight_kg
                } else {
                    self.rules.default_weight_kg
                },
                // No parcel reference: some carriers (and Karrio's universal label)
                // use it as the tracking number, which a picking name cannot be.
                ..Parcel::default()
            }]
        } else {
            st.parcels.clone()
        };
        // Odoo's computed weights carry float noise (59.400000000000006): grams are enough.
        let parcels = parcels
            .into_iter()
            .map(|mut p| {
                p.weight_kg = (p.weight_kg * 1000.0).round() / 1000.0;
                p
            })
            .collect();
        BookingRequest {
            reference: st.reference(),
            shipper: order.shipper,
            recipient: order.recipient,
            parcels,
            carriers: self.rules.carriers.clone(),
        }
    }

    fn on_draft(&self, st: &mut State, draft: Draft, fx: &mut Effects) {
        let country = st
            .order
            .as_ref()
            .map(|o| o.recipient.country_code.clone())
            .unwrap_or_default();
        let service = self.service_for(st.order.as_ref());
        let refused: Vec<&str> = st.tried.iter().map(|t| t.carrier.as_str()).collect();
        st.candidates = candidates(&draft.quotes, &self.rules, &country, service.as_deref())
            .into_iter()
            .filter(|q| !refused.contains(&q.carrier.as_str()))
            .map(|q| q.quote_id.clone())
            .collect();
        st.draft = Some(draft);
        if st.candidates.is_empty() {
            let why = if st.tried.is_empty() {
                "no quote passes the rules (carriers, service, price ceiling, exclusions)"
            } else {
                "every carrier the rules allow refused the booking"
            };
            self.ask_for_carrier(st, why, fx);
        } else {
            self.buy_next(st, fx);
        }
    }

    fn buy_next(&self, st: &mut State, fx: &mut Effects) {
        let Some(draft) = &st.draft else {
            return self.start_booking(st, fx);
        };
        if st.candidates.is_empty() {
            return self.ask_for_carrier(
                st,
                "every carrier the rules allow refused the booking",
                fx,
            );
        }
        let qid = st.candidates.remove(0);
        let carrier = draft
            .quotes
            .iter()
            .find(|q| q.quote_id == qid)
            .map(|q| q.carrier.clone())
            .unwrap_or_default();
        st.stage = Stage::Buying;
        fx.call(Call::Buy {
            booking_id: draft.booking_id.clone(),
            quote_id: qid,
            carrier,
        });
    }

    fn ask_for_carrier(&self, st: &mut State, why: &str, fx: &mut Effects) {
        st.stage = Stage::NeedsDecision;
        st.waiting_for = Some("choose_carrier".into());
        let quotes = st
            .draft
            .as_ref()
            .map(|d| d.quotes.clone())
            .unwrap_or_default();
        let picking = st
            .order
            .as_ref()
            .map(|o| o.picking_name.clone())
            .unwrap_or_default();
        fx.open_tasks.push(NewTask {
            kind: "choose_carrier".into(),
            title: format!("Choose a carrier or book by hand: {picking}"),
            detail:
                json!({"reason": why, "quotes": quotes, "tried": st.tried, "rules": self.rules})
                    .to_string(),
        });
        let tried: Vec<String> = st
            .tried
            .iter()
            .map(|t| format!("{} {}: {} {}", t.carrier, t.service, t.code, t.message))
            .collect();
        if let Some(pid) = st.picking_id {
            let marker = format!(
                "[waybill {}:choose_carrier:{}]",
                st.reference(),
                st.tried.len()
            );
            st.open_activities.push(marker.clone());
            fx.call(Call::Activity {
                picking_id: pid,
                marker,
                summary: "Choose a carrier or book by hand".into(),
                note: format!("{why}. {}", tried.join("; ")),
            });
        }
        if !st.tried.is_empty() {
            fx.call(Call::Emit {
                key: format!("{}:booking_rejected:{}", st.reference(), st.tried.len()),
                drafts: vec![json!({
                    "type": "shipment.booking_rejected",
                    "subject": st.subject,
                    "key": format!("{}:booking_rejected:{}", st.reference(), st.tried.len()),
                    "reason": "carrier_refused",
                    "data": {"tried": st.tried, "workflow": "order_to_ship"},
                })],
            });
        }
    }

    fn on_booked(&self, st: &mut State, booked: Booked, label: Option<String>, fx: &mut Effects) {
        st.stage = Stage::Recording;
        st.waiting_for = None;
        if st.picking_id.is_none() {
            st.stage = Stage::Booked;
        }
        if let Some(pid) = st.picking_id {
            fx.call(Call::RecordBooking {
                picking_id: pid,
                booked: Box::new(booked.clone()),
                label: label.clone(),
                marker: format!("[waybill booking {}]", booked.booking_id),
            });
        }
        let mut refs = json!({"karrio_shipment": booked.booking_id});
        if !booked.tracking_number.is_empty() {
            refs["tracking"] = json!(booked.tracking_number);
        }
        if let Some(t) = &booked.tracker_id {
            refs["tracker"] = json!(t);
        }
        let weight_kg = self
            .request(st)
            .parcels
            .iter()
            .map(|p| p.weight_kg)
            .sum::<f64>();
        let data = json!({
            "weight_kg": weight_kg,
            "carrier": booked.carrier, "carrier_name": booked.carrier_name,
            "service": booked.service, "tracking_number": booked.tracking_number,
            "price": {"amount": booked.amount, "currency": booked.currency},
            "booking_id": booked.booking_id, "label": label, "workflow": "order_to_ship",
        });
        fx.call(Call::Emit {
            key: format!("{}:booked:{}", st.reference(), booked.booking_id),
            drafts: vec![
                json!({"type": "shipment.booked", "subject": st.subject,
                       "key": format!("booked:{}", booked.booking_id), "refs": refs, "data": data}),
                json!({"type": "shipment.label_created", "subject": st.subject,
                       "key": format!("label:{}", booked.booking_id), "refs": refs, "data": data}),
            ],
        });
        st.booked = Some(booked);
        st.label = label;
    }

    fn cancel(&self, st: &mut State, why: &str, fx: &mut Effects) {
        fx.drop_queued = true;
        self.close_activities(st, fx);
        fx.cancel_timers.push("packing".into());
        fx.cancel_tasks.push("*".into());
        st.waiting_for = None;
        match (&st.booked, st.stage) {
            (Some(b), Stage::Booked | Stage::Recording) => {
                st.stage = Stage::Voiding;
                fx.call(Call::Void {
                    booking_id: b.booking_id.clone(),
                });
            }
            (_, Stage::Cancelled | Stage::Delivered) => {}
            _ => {
                st.stage = Stage::Cancelled;
                if let Some(pid) = st.picking_id {
                    fx.call(Call::Note {
                        picking_id: pid,
                        marker: format!("[waybill {}:cancelled]", st.reference()),
                        body: format!("Shipping workflow cancelled ({why}); nothing was booked."),
                    });
                }
            }
        }
    }

    fn fail(&self, st: &mut State, call: &Call, e: &PortError, fx: &mut Effects) {
        st.stage = Stage::Failed;
        st.waiting_for = Some("step_failed".into());
        fx.open_tasks.push(NewTask {
            kind: "step_failed".into(),
            title: format!("Step `{}` failed: {}", call.name(), e.code),
            detail: json!({"step": call.name(), "error": e}).to_string(),
        });
    }
}

fn event_picking(ev: &Value) -> Option<i64> {
    ev["data"]["refs"]["odoo.picking_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| ev["data"]["refs"]["odoo.picking_id"].as_i64())
}

fn packed_parcels(ev: &Value) -> Vec<Parcel> {
    let num = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    ev["data"]["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let w = num(&p["weight"])?;
            let kg = match p["weight_unit"]
                .as_str()
                .unwrap_or("kg")
                .to_ascii_lowercase()
                .as_str()
            {
                "lb" | "lbs" => w * 0.453_592_37,
                "g" => w / 1000.0,
                _ => w,
            };
            let dims = &p["dimensions"];
            Some(Parcel {
                weight_kg: kg,
                length_cm: num(&dims["length"]),
                width_cm: num(&dims["width"]),
                height_cm: num(&dims["height"]),
                reference: p["sscc"]
                    .as_str()
                    .or_else(|| p["tracking"].as_str())
                    .map(str::to_owned),
            })
        })
        .collect()
}

impl Machine for OrderToShip {
    type State = State;

    fn kind(&self) -> &'static str {
        "order_to_ship"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "order.released",
            "warehouse.packed",
            "order.cancelled",
            "shipment.delivered",
        ]
    }

    fn on_input(&self, _cx: &Ctx, st: &mut State, input: &Input, fx: &mut Effects) {
        match input {
            Input::Event(ev) => {
                let ty = ev["type"].as_str().unwrap_or_default();
                if ev["source"].as_str() == Some("/sources/workflows") {
                    return;
                }
                match ty {
                    "order.released" if matches!(st.stage, Stage::New | Stage::WaitingStock) => {
                        let Some(pid) = event_picking(ev) else {
                            return;
                        };
                        if self.released_before_start(ev) {
                            st.stage = Stage::Skipped;
                            st.picking_id = Some(pid);
                            return;
                        }
                        st.picking_id = Some(pid);
                        st.subject = ev["subject"].as_str().unwrap_or_default().to_owned();
                        st.stage = Stage::ReadingOrder;
                        fx.call(Call::ReadOrder { picking_id: pid });
                    }
                    "warehouse.packed" => {
                        let parcels = packed_parcels(ev);
                        if !parcels.is_empty() {
                            st.parcels = parcels;
                        }
                        if st.stage == Stage::AwaitingPack {
                            fx.cancel_timers.push("packing".into());
                            fx.cancel_tasks.push("packing_overdue".into());
                            self.start_booking(st, fx);
                        }
                    }
                    "order.cancelled" => self.cancel(st, "the order was cancelled", fx),
                    "shipment.delivered" if st.stage == Stage::Booked => {
                        st.stage = Stage::Delivered;
                    }
                    _ => {}
                }
            }
            Input::Timer(name) if name == "packing" && st.stage == Stage::AwaitingPack => {
                st.waiting_for = Some("packing_overdue".into());
                let picking = st
                    .order
                    .as_ref()
                    .map(|o| o.picking_name.clone())
                    .unwrap_or_default();
                fx.open_tasks.push(NewTask {
                    kind: "packing_overdue".into(),
                    title: format!("Not packed in time: {picking}"),
                    detail: json!({"timeout_s": self.rules.packing_timeout.as_secs()}).to_string(),
                });
                if let Some(pid) = st.picking_id {
                    let marker = format!("[waybill {}:packing_overdue]", st.reference());
                    st.open_activities.push(marker.clone());
                    fx.call(Call::Activity {
                        picking_id: pid,
                        marker,
                        summary: "Not packed in time".into(),
                        note: format!(
                            "The warehouse has not reported packing within {} s.",
                            self.rules.packing_timeout.as_secs()
                        ),
                    });
                }
            }
            Input::Timer(_) => {}
            Input::Task { kind, decision, .. } => self.on_task(st, kind, decision, fx),
            Input::Cancel { by } => self.cancel(st, &format!("cancelled by {by}"), fx),
            Input::Retry { .. } => match st.stage {
                Stage::Failed | Stage::NeedsDecision => {
                    st.tried.clear();
                    fx.cancel_tasks.push("*".into());
                    if st.order.is_none() {
                        if let Some(pid) = st.picking_id {
                            st.stage = Stage::ReadingOrder;
                            fx.call(Call::ReadOrder { picking_id: pid });
                        }
                    } else {
                        self.start_booking(st, fx);
                    }
                }
                Stage::VoidRefused => {
                    if let Some(b) = &st.booked {
                        st.stage = Stage::Voiding;
                        fx.call(Call::Void {
                            booking_id: b.booking_id.clone(),
                        });
                    }
                }
                _ => {}
            },
        }
    }

    fn on_answer(&self, _cx: &Ctx, st: &mut State, call: &Call, answer: &Answer, fx: &mut Effects) {
        match (call, answer) {
            (Call::ReadOrder { .. }, Ok(v)) => {
                let Ok(order) = serde_json::from_value::<OrderContext>(v.clone()) else {
                    return;
                };
                let ready = order.state == "assigned";
                st.order = Some(order);
                if !ready {
                    st.stage = Stage::WaitingStock;
                } else if self.rules.wait_for_packing && st.parcels.is_empty() {
                    st.stage = Stage::AwaitingPack;
                    fx.set_timers
                        .push(("packing".into(), self.rules.packing_timeout));
                } else {
                    self.start_booking(st, fx);
                }
            }
            (Call::FindBooking { .. }, Ok(v)) => match v["found"].as_str() {
                Some("booked") => match serde_json::from_value::<Booked>(v["booked"].clone()) {
                    Ok(b) => {
                        let label = v["label"].as_str().map(str::to_owned);
                        self.on_booked(st, b, label, fx)
                    }
                    Err(_) => self.quote(st, fx),
                },
                Some("draft") => match serde_json::from_value::<Draft>(v["draft"].clone()) {
                    Ok(d) if !d.quotes.is_empty() => self.on_draft(st, d, fx),
                    _ => self.quote(st, fx),
                },
                Some("cancelled") => {
                    st.attempt += 1;
                    self.start_booking(st, fx);
                }
                _ => self.quote(st, fx),
            },
            (Call::Quote { .. }, Ok(v)) => match serde_json::from_value::<Draft>(v.clone()) {
                Ok(d) => self.on_draft(st, d, fx),
                Err(e) => self.ask_for_carrier(st, &format!("unreadable quotes: {e}"), fx),
            },
            (Call::Quote { .. }, Err(e)) => {
                self.ask_for_carrier(st, &format!("quoting failed: {e}"), fx)
            }
            (Call::Buy { .. }, Ok(v)) => {
                match serde_json::from_value::<Booked>(v["booked"].clone()) {
                    Ok(b) => {
                        let label = v["label"].as_str().map(str::to_owned);
                        self.on_booked(st, b, label, fx)
                    }
                    Err(_) => self.buy_next(st, fx),
                }
            }
            (
                Call::Buy {
                    quote_id, carrier, ..
                },
                Err(e),
            ) => {
                let q = st
                    .draft
                    .as_ref()
                    .and_then(|d| d.quotes.iter().find(|q| &q.quote_id == quote_id));
                st.tried.push(Tried {
                    carrier: carrier.clone(),
                    service: q.map(|q| q.service.clone()).unwrap_or_default(),
                    amount: q.map(|q| q.amount.clone()).unwrap_or_default(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                });
                // Other quotes of a carrier that refused are not tried.
                if let Some(d) = &st.draft {
                    let same: Vec<String> = d
                        .quotes
                        .iter()
                        .filter(|q| &q.carrier == carrier)
                        .map(|q| q.quote_id.clone())
                        .collect();
                    st.candidates.retain(|c| !same.contains(c));
                }
                self.buy_next(st, fx);
            }
            (Call::RecordBooking { .. }, Ok(_)) if st.stage == Stage::Recording => {
                st.stage = Stage::Booked;
            }
            (Call::Void { .. }, Ok(_)) => {
                st.stage = Stage::Cancelled;
                if let (Some(pid), Some(b)) = (st.picking_id, &st.booked) {
                    fx.call(Call::RecordVoid {
                        picking_id: pid,
                        booked: Box::new(b.clone()),
                        marker: format!("[waybill void {}]", b.booking_id),
                        body: format!(
                            "Order cancelled: label {} ({} {}) voided with the carrier.",
                            b.tracking_number, b.carrier_name, b.service
                        ),
                    });
                }
            }
            (Call::Void { .. }, Err(e)) => {
                st.stage = Stage::VoidRefused;
                st.waiting_for = Some("void_refused".into());
                let b = st.booked.clone().unwrap_or_else(|| Booked {
                    booking_id: String::new(),
                    carrier: String::new(),
                    carrier_name: String::new(),
                    service: String::new(),
                    tracking_number: String::new(),
                    amount: String::new(),
                    currency: String::new(),
                    tracker_id: None,
                    label: None,
                });
                fx.open_tasks.push(NewTask {
                    kind: "void_refused".into(),
                    title: format!("Void the label {} by hand", b.tracking_number),
                    detail: json!({"booking": b, "error": e}).to_string(),
                });
                if let Some(pid) = st.picking_id {
                    fx.call(Call::Note {
                        picking_id: pid,
                        marker: format!("[waybill void refused {}]", b.booking_id),
                        body: format!(
                            "Order cancelled, but the carrier refused to void label {}: {}",
                            b.tracking_number, e.message
                        ),
                    });
                }
            }
            (
                Call::ReadOrder { .. } | Call::FindBooking { .. } | Call::RecordBooking { .. },
                Err(e),
            ) => self.fail(st, call, e, fx),
            (Call::Emit { .. }, Err(e)) if e.kind == waybill_model::FailureKind::InvalidInput => {
                self.fail(st, call, e, fx)
            }
            _ => {}
        }
    }

    fn status(&self, st: &State) -> (Status, String) {
        let status = match st.stage {
            Stage::New
            | Stage::ReadingOrder
            | Stage::Quoting
            | Stage::Buying
            | Stage::Recording
            | Stage::Voiding => Status::Running,
            Stage::WaitingStock
            | Stage::AwaitingPack
            | Stage::NeedsDecision
            | Stage::Booked
            | Stage::VoidRefused => Status::Waiting,
            Stage::Delivered | Stage::Skipped => Status::Done,
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

impl OrderToShip {
    fn quote(&self, st: &mut State, fx: &mut Effects) {
        st.stage = Stage::Quoting;
        fx.call(Call::Quote {
            request: Box::new(self.request(st)),
        });
    }

    /// Marks the ERP activities it opened as done: a person took the decision.
    fn close_activities(&self, st: &mut State, fx: &mut Effects) {
        if let Some(pid) = st.picking_id {
            for marker in st.open_activities.drain(..) {
                fx.call(Call::CloseActivity {
                    picking_id: pid,
                    marker,
                });
            }
        }
    }

    fn on_task(&self, st: &mut State, kind: &str, decision: &Value, fx: &mut Effects) {
        self.close_activities(st, fx);
        let action = decision["action"].as_str().unwrap_or_default();
        if action == "cancel" {
            return self.cancel(st, "a person cancelled it", fx);
        }
        match kind {
            "choose_carrier" if st.stage == Stage::NeedsDecision => {
                if action == "retry" {
                    st.tried.clear();
                    return self.start_booking(st, fx);
                }
                if let Some(tn) = decision["tracking_number"].as_str() {
                    // Booked by hand.
                    let booked = Booked {
                        booking_id: format!("manual:{tn}"),
                        carrier: decision["carrier"].as_str().unwrap_or_default().to_owned(),
                        carrier_name: decision["carrier"].as_str().unwrap_or_default().to_owned(),
                        service: decision["service"].as_str().unwrap_or_default().to_owned(),
                        tracking_number: tn.to_owned(),
                        amount: decision["amount"].as_str().unwrap_or("0").to_owned(),
                        currency: decision["currency"].as_str().unwrap_or_default().to_owned(),
                        tracker_id: None,
                        label: None,
                    };
                    return self.on_booked(st, booked, None, fx);
                }
                let chosen = st.draft.as_ref().and_then(|d| {
                    d.quotes.iter().find(|q| {
                        decision["quote_id"].as_str() == Some(q.quote_id.as_str())
                            || (decision["carrier"].as_str() == Some(q.carrier.as_str())
                                && decision["service"].as_str().is_none_or(|s| s == q.service))
                    })
                });
                match chosen {
                    Some(q) => {
                        st.candidates = vec![q.quote_id.clone()];
                        self.buy_next(st, fx);
                    }
                    None => self.ask_for_carrier(
                        st,
                        "the decision names no quote of this booking (give `carrier`, `quote_id` or `tracking_number`)",
                        fx,
                    ),
                }
            }
            "packing_overdue" if st.stage == Stage::AwaitingPack => {
                if action == "wait" {
                    fx.set_timers
                        .push(("packing".into(), self.rules.packing_timeout));
                    st.waiting_for = None;
                } else {
                    fx.cancel_timers.push("packing".into());
                    self.start_booking(st, fx);
                }
            }
            "void_refused" if st.stage == Stage::VoidRefused => {
                if action == "retry" {
                    if let Some(b) = &st.booked {
                        st.stage = Stage::Voiding;
                        fx.call(Call::Void {
                            booking_id: b.booking_id.clone(),
                        });
                    }
                } else {
                    st.stage = Stage::Cancelled;
                    st.waiting_for = None;
                }
            }
            "step_failed" if st.stage == Stage::Failed => {
                self.on_input(&Ctx::default(), st, &Input::Retry { by: String::new() }, fx)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
