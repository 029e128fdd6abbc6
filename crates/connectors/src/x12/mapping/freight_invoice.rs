//! 210 → one `freight.charge_confirmed`, dated at the invoice date (B3-06, a local date:
//! see `local_time.rs`), keyed by the invoice (`210:<SCAC>:<B3-02>`).

use super::{draft, subject, Ctx};
use crate::x12::error::{Position, X12Error};
use crate::x12::freight_invoice::{FreightInvoice, InvoiceItem};
use crate::x12::local_time::{self, Placed};
use crate::x12::measure::{put, Lading};
use crate::x12::parties;
use crate::x12::refs::Refs;
use serde_json::{json, Map, Value};
use waybill_model::{EventDraft, EventType};

/// The `data.dates` name of a G62 date qualifier (element 432): `02`/`68` requested
/// delivery, `10` requested pickup, `11` shipped, `17` estimated delivery, `35`
/// delivered, `69` scheduled pickup, `70` scheduled delivery; any other `g62_<code>`.
fn date_name(qualifier: &str) -> String {
    match qualifier {
        "02" | "68" => "requested_delivery".into(),
        "10" => "requested_pickup".into(),
        "11" => "shipped".into(),
        "17" => "estimated_delivery".into(),
        "35" => "delivered".into(),
        "69" => "scheduled_pickup".into(),
        "70" => "scheduled_delivery".into(),
        q => format!("g62_{}", q.to_ascii_lowercase()),
    }
}

impl Ctx {
    pub(super) fn freight_invoice(&self, doc: &FreightInvoice) -> Result<EventDraft, X12Error> {
        let at = Position {
            element: Some(3),
            ..doc.at.clone()
        };
        let subject = subject(&doc.scac, &doc.shipment_id, at)?;
        // The invoice is the fact: the same invoice re-sent in another interchange is one.
        let key = format!(
            "210:{}:{}",
            doc.scac.trim().to_ascii_uppercase(),
            doc.invoice_number
        );
        let placed = match &doc.invoice_date {
            Some(stamp) => Some(self.place(
                stamp,
                Position {
                    element: Some(6),
                    ..doc.at.clone()
                },
            )?),
            None => None,
        };
        let time = placed
            .as_ref()
            .map_or_else(|| self.received_text(), Placed::time_text);
        let mut d = draft(EventType::FreightChargeConfirmed, subject, key, Some(time));
        let mut refs = Refs::default();
        refs.add("scac", &doc.scac);
        refs.add("shipment_id", &doc.shipment_id);
        refs.add("invoice", &doc.invoice_number);
        refs.add_all(&doc.references);
        d.refs = refs.0;
        let charges: Vec<Value> = doc
            .charges
            .iter()
            .map(|c| {
                json!({
                    "line": c.line,
                    "code": c.code,
                    "amount": c.amount.map(|a| a.to_string()),
                    "description": c.description,
                })
            })
            .collect();
        let mut data = Map::new();
        data.insert("invoice_number".into(), doc.invoice_number.clone().into());
        data.insert(
            "invoice_date".into(),
            json!(doc.invoice_date.as_ref().map(local_time::as_given)),
        );
        data.insert("payment_method".into(), json!(doc.payment_method));
        data.insert("currency".into(), json!(doc.currency));
        data.insert("total".into(), doc.total.to_string().into());
        data.insert("charges".into(), Value::Array(charges));
        if let Some(totals) = &doc.totals {
            with_unit(totals, doc.weight_unit.as_deref()).describe(&mut data);
        }
        let mut classes: Vec<&str> = doc
            .items
            .iter()
            .filter_map(|i| i.freight_class.as_deref())
            .collect();
        classes.sort_unstable();
        classes.dedup();
        if let [class] = classes.as_slice() {
            data.insert("freight_class".into(), (*class).into());
        }
        if !doc.items.is_empty() {
            let items = doc
                .items
                .iter()
                .map(|i| item(i, doc.weight_unit.as_deref()))
                .collect();
            data.insert("items".into(), Value::Array(items));
        }
        let mut dates = Map::new();
        if let Some(delivery) = &doc.delivery_date {
            dates.insert("delivery".into(), local_time::as_given(delivery).into());
        }
        for (qualifier, stamp) in &doc.dates {
            let base = date_name(qualifier);
            let mut name = base.clone();
            let mut n = 1;
            while dates.contains_key(&name) {
                n += 1;
                name = format!("{base}_{n}");
            }
            dates.insert(name, local_time::as_given(stamp).into());
        }
        if !dates.is_empty() {
            data.insert("dates".into(), Value::Object(dates));
        }
        if let Some(p) = parties::to_json(&doc.parties) {
            data.insert("parties".into(), p);
        }
        if let Some(p) = &placed {
            p.describe(&mut data);
        }
        data.insert("x12".into(), self.x12.clone());
        d.data = Some(Value::Object(data));
        Ok(d)
    }
}

/// `lading` with the invoice's weight unit (B3-05) where its weight gives none.
fn with_unit(lading: &Lading, unit: Option<&str>) -> Lading {
    let mut l = lading.clone();
    if let Some(w) = l.weight.as_mut() {
        if w.unit.is_none() {
            w.unit = unit.map(str::to_owned);
        }
    }
    l
}

/// One LX loop of `data.items`.
fn item(i: &InvoiceItem, weight_unit: Option<&str>) -> Value {
    let mut m = Map::new();
    put(&mut m, "line", i.line.as_deref());
    put(&mut m, "description", i.description.as_deref());
    if i.commodity.is_some() {
        m.insert(
            "commodity".into(),
            json!({"code": i.commodity, "qualifier": i.commodity_qualifier}),
        );
    }
    if let Some(q) = i.billed_quantity {
        m.insert(
            "billed".into(),
            json!({"quantity": q.to_json(), "qualifier": i.billed_qualifier}),
        );
    }
    if let Some(l) = &i.lading {
        with_unit(l, weight_unit).describe(&mut m);
    }
    put(&mut m, "freight_class", i.freight_class.as_deref());
    Value::Object(m)
}
