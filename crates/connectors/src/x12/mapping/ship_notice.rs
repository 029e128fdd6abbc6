//! 856 → per shipment level (HL `S`): `warehouse.packed`, and `shipment.dispatched` when
//! an original notice states the shipped date.
//!
//! Packed is never dated after dispatched: the notice is made when the goods are packed,
//! but a notice is often made (or re-made) after the truck left, and BSN-03/04 then say
//! so. The packed event is dated at the earlier of the BSN date/time and the shipped time
//! (DTM `011`); when that moves it, `data.time_adjusted = {"from": <BSN time as given>,
//! "rule": "packed_not_after_shipped"}`.

use super::{draft, subject, Ctx};
use crate::x12::error::{ErrorKind, Position, X12Error};
use crate::x12::line_items::Totals;
use crate::x12::local_time::Placed;
use crate::x12::measure::put;
use crate::x12::parties::{self, Party};
use crate::x12::refs::Refs;
use crate::x12::ship_notice::{Carrier, Level, ShipNotice};
use crate::x12::timecode::Stamp;
use serde_json::{json, Map, Value};
use waybill_model::{EventDraft, EventType};

/// `data.time_adjusted.rule` when the packed time was moved to the shipped time.
const PACKED_NOT_AFTER_SHIPPED: &str = "packed_not_after_shipped";

impl Ctx {
    pub(super) fn ship_notice(&self, doc: &ShipNotice) -> Result<Vec<EventDraft>, X12Error> {
        let mut out = Vec::new();
        if doc.purpose == "01" {
            // A cancelled notice withdraws an earlier one; it packs nothing.
            return Ok(out);
        }
        let created = self.place_opt(doc.created.as_ref(), &doc.at, 3)?;
        for (index, level) in doc.levels.iter().enumerate().filter(|(_, l)| l.code == "S") {
            let scac = level
                .scac
                .as_deref()
                .or_else(|| doc.levels.iter().find_map(|l| l.scac.as_deref()))
                .ok_or_else(|| {
                    X12Error::new(
                        ErrorKind::MissingSegment("TD5"),
                        level.at.clone(),
                        "Waybill needs the carrier's SCAC (TD5*…*2*<SCAC>) to key the shipment",
                    )
                })?;
            let at = Position {
                element: Some(2),
                ..doc.at.clone()
            };
            let subject = subject(scac, &doc.shipment_id, at)?;
            let members: Vec<&Level> = doc
                .levels
                .iter()
                .filter(|l| l.code != "S" && l.shipment == Some(index))
                .collect();
            let mut refs = Refs::default();
            refs.add("scac", scac);
            refs.add("shipment_id", &doc.shipment_id);
            refs.add_all(&level.references);
            let mut orders = Vec::new();
            let mut packages = Vec::new();
            let mut lines = Vec::new();
            for l in &members {
                for po in &l.po_numbers {
                    refs.add("po", po);
                    orders.push(json!({"hl": l.id, "po": po}));
                }
                if l.code == "T" || l.code == "P" {
                    packages.push(package(l));
                }
                if let Some(item) = &l.item {
                    refs.add("po", item.po().unwrap_or(""));
                    lines.push(item.to_json(&l.id, l.parent.as_deref(), doc.po_of(l)));
                }
            }
            let totals = Totals::of(members.iter().filter_map(|l| l.item.as_ref()));
            let shipped_stamp = level.shipped.or(doc.shipped);
            let shipped = self.place_opt(shipped_stamp.as_ref(), &level.at, 0)?;

            // Packed: the BSN time, unless the goods had already shipped by then.
            let mut packed = created.clone().or_else(|| shipped.clone());
            let mut adjusted = None;
            if let (Some(p), Some(s)) = (packed.as_mut(), shipped.as_ref()) {
                if p.is_after(s) {
                    adjusted = Some(json!({
                        "from": p.as_given(),
                        "rule": PACKED_NOT_AFTER_SHIPPED,
                    }));
                    p.move_to(s);
                } else if p.at > s.at {
                    // Packed before it shipped by the document's own clocks, but with no
                    // zone to place it (its `at` is the receipt time): it happened no later
                    // than the goods left, so it is dated at that instant.
                    p.at = s.at;
                }
            }
            let time = packed
                .as_ref()
                .map_or_else(|| self.received_text(), Placed::time_text);
            let key = format!("856:{}:HL{}:packed", doc.shipment_id, level.id);
            let mut d = draft(EventType::WarehousePacked, subject.clone(), key, Some(time));
            d.refs = refs.0.clone();
            let mut data = Map::new();
            data.insert("purpose".into(), doc.purpose.clone().into());
            shipment_facts(level, &mut data);
            data.insert("packages".into(), Value::Array(packages));
            data.insert("orders".into(), Value::Array(orders));
            let lines = (!lines.is_empty()).then_some(Value::Array(lines));
            if let Some(l) = &lines {
                data.insert("lines".into(), l.clone());
            }
            totals_facts(&totals, &mut data);
            let shipment_parties: Vec<Party> = std::iter::once(level)
                .chain(members.iter().copied())
                .flat_map(|l| l.parties.iter().cloned())
                .collect();
            if let Some(p) = parties::to_json(&shipment_parties) {
                data.insert("parties".into(), p);
            }
            if let Some(p) = &packed {
                p.describe(&mut data);
            }
            if let Some(a) = adjusted {
                data.insert("time_adjusted".into(), a);
            }
            data.insert("x12".into(), self.x12.clone());
            d.data = Some(Value::Object(data));
            out.push(d);
            // An original notice (BSN-01 `00`) that states a shipped date (DTM `011`) says
            // the goods left: `shipment.dispatched` at that time.
            if let Some(s) = shipped.filter(|_| doc.purpose == "00") {
                let key = format!("856:{}:HL{}:dispatched", doc.shipment_id, level.id);
                let mut d = draft(
                    EventType::ShipmentDispatched,
                    subject,
                    key,
                    Some(s.time_text()),
                );
                d.code = Some("011".into());
                d.text = Some("Shipped".into());
                d.refs = refs.0;
                let mut data = Map::new();
                if let Some(c) = &level.carrier {
                    data.insert("carrier".into(), carrier(c));
                }
                // What left, line by line: a sink that ships quantities (Odoo) reads them
                // from the event that says the goods left.
                if let Some(l) = lines {
                    data.insert("lines".into(), l);
                }
                totals_facts(&totals, &mut data);
                s.describe(&mut data);
                data.insert("x12".into(), self.x12.clone());
                d.data = Some(Value::Object(data));
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Places an optional stamp; errors name element `element` at `at` (none when 0).
    fn place_opt(
        &self,
        stamp: Option<&Stamp>,
        at: &Position,
        element: usize,
    ) -> Result<Option<Placed>, X12Error> {
        stamp
            .map(|s| {
                let at = Position {
                    element: (element > 0).then_some(element),
                    ..at.clone()
                };
                self.place(s, at)
            })
            .transpose()
    }
}

/// The shipment level's own facts: carrier (TD5), lading (TD1), measurements (MEA).
fn shipment_facts(level: &Level, data: &mut Map<String, Value>) {
    if let Some(c) = &level.carrier {
        data.insert("carrier".into(), carrier(c));
    }
    lading_facts(level, data);
    measurement_facts(level, data);
}

/// TD5 as `{scac, method, routing, service_level}`.
fn carrier(c: &Carrier) -> Value {
    let mut m = Map::new();
    put(&mut m, "scac", c.scac.as_deref());
    put(&mut m, "method", c.method.as_deref());
    put(&mut m, "routing", c.routing.as_deref());
    put(&mut m, "service_level", c.service_level.as_deref());
    Value::Object(m)
}

/// The first TD1 as `packaging`, `pieces`, `weight`, `volume`; every TD1 in `lading`
/// when there are several.
fn lading_facts(level: &Level, data: &mut Map<String, Value>) {
    if let Some(first) = level.lading.first() {
        first.describe(data);
    }
    if level.lading.len() > 1 {
        let all = level.lading.iter().map(|l| l.to_json()).collect();
        data.insert("lading".into(), Value::Array(all));
    }
}

/// MEA `LN`/`WD`/`HT` as `dimensions.{length,width,height}`; any other MEA in
/// `measurements`.
fn measurement_facts(level: &Level, data: &mut Map<String, Value>) {
    let mut dimensions = Map::new();
    let mut others = Vec::new();
    for m in &level.measurements {
        let value = json!({"value": m.value.map(|v| v.to_json()), "unit": m.unit});
        let name = match m.qualifier.as_deref() {
            Some("LN") => "length",
            Some("WD") => "width",
            Some("HT") => "height",
            _ => {
                others.push(json!({
                    "reference": m.reference,
                    "qualifier": m.qualifier,
                    "value": m.value.map(|v| v.to_json()),
                    "unit": m.unit,
                }));
                continue;
            }
        };
        dimensions.entry(name).or_insert(value);
    }
    if !dimensions.is_empty() {
        data.insert("dimensions".into(), Value::Object(dimensions));
    }
    if !others.is_empty() {
        data.insert("measurements".into(), Value::Array(others));
    }
}

/// `totals` and, when some line is short of its order, `partial: true`.
fn totals_facts(totals: &Totals, data: &mut Map<String, Value>) {
    if let Some(t) = totals.to_json() {
        data.insert("totals".into(), t);
    }
    if totals.partial() {
        data.insert("partial".into(), true.into());
    }
}

/// One tare (`T`) or pack (`P`) level of `data.packages`.
fn package(l: &Level) -> Value {
    let mut m = Map::new();
    m.insert("hl".into(), l.id.clone().into());
    m.insert("level".into(), l.code.clone().into());
    m.insert("parent".into(), json!(l.parent));
    m.insert("sscc".into(), json!(l.sscc()));
    m.insert("tracking".into(), json!(l.tracking()));
    m.insert("packaging".into(), Value::Null);
    lading_facts(l, &mut m);
    measurement_facts(l, &mut m);
    Value::Object(m)
}
