//! Typed X12 → canonical event drafts (`waybill_model::EventDraft`).

use super::error::{ElementProblem, ErrorKind, Position, X12Error};
use super::freight_invoice::{self, FreightInvoice};
use super::refs::Refs;
use super::ship_notice::{self, Level, ShipNotice};
use super::status::{self, ShipmentStatus, StatusDetail};
use super::vocabulary;
use super::wire::{FunctionalGroup, Interchange, TransactionSet};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use waybill_model::{EventDraft, EventType, ShipmentKey};

/// The shipment key (CloudEvents `subject`) of an X12 shipment: `x12:<SCAC>:<shipment id>`.
///
/// The shipment id is the shipper's shipment identification number, the one number the
/// three sets share: 214 B10-02, 856 BSN-02, 210 B3-03; the SCAC (upper-cased) scopes it
/// to one carrier (214 B10-03, 856 TD5-03, 210 B3-11). Both are trimmed; `%`, `/`, `:` and
/// control characters are percent-encoded so a key never contains a path separator and
/// always splits back into its three parts.
pub fn shipment_key(scac: &str, shipment_id: &str) -> String {
    fn escape(s: &str, out: &mut String) {
        for c in s.chars() {
            if c == '%' || c == '/' || c == ':' || c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            } else {
                out.push(c);
            }
        }
    }
    let mut key = String::from("x12:");
    escape(&scac.trim().to_ascii_uppercase(), &mut key);
    key.push(':');
    escape(shipment_id.trim(), &mut key);
    key
}

/// [`shipment_key`], checked against [`ShipmentKey::parse`] (error names `at`).
fn subject(scac: &str, shipment_id: &str, at: Position) -> Result<String, X12Error> {
    let key = shipment_key(scac, shipment_id);
    ShipmentKey::parse(&key)
        .map_err(|m| X12Error::new(ErrorKind::BadElement(ElementProblem::TooLong), at, m))?;
    Ok(key)
}

/// Maps every supported transaction set of an interchange to drafts, in document order.
/// All or nothing: the first set that cannot be mapped fails the whole interchange.
pub fn map(ic: &Interchange, received_at: OffsetDateTime) -> Result<Vec<EventDraft>, X12Error> {
    let mut out = Vec::new();
    for group in &ic.groups {
        for set in &group.sets {
            out.extend(map_set(ic, group, set, received_at)?);
        }
    }
    Ok(out)
}

/// Maps one transaction set (also used to validate sets one by one for the 997).
pub(crate) fn map_set(
    ic: &Interchange,
    group: &FunctionalGroup,
    set: &TransactionSet,
    received_at: OffsetDateTime,
) -> Result<Vec<EventDraft>, X12Error> {
    let ctx = Ctx {
        group: group.control_number(),
        received: received_at.format(&Rfc3339).ok(),
        x12: json!({
            "interchange": ic.control_number(),
            "group": group.control_number(),
            "set": set.control_number,
        }),
    };
    match set.id.as_str() {
        "214" => ctx.status(&status::read(set)?),
        "856" => ctx.ship_notice(&ship_notice::read(set)?),
        "210" => ctx
            .freight_invoice(&freight_invoice::read(set)?)
            .map(|d| vec![d]),
        // Acknowledgments carry no shipment facts.
        "997" | "999" => Ok(Vec::new()),
        other => {
            let at = set.segments.first().map(|s| s.position(Some(1)));
            Err(X12Error::new(
                ErrorKind::UnsupportedSet,
                at.unwrap_or_else(|| ic.header.position(None)),
                format!("transaction set {other} is not mapped (214, 856, 210, 997 are)"),
            ))
        }
    }
}

struct Ctx<'a> {
    group: &'a str,
    received: Option<String>,
    x12: Value,
}

fn draft(ty: EventType, subject: String, key: String, time: Option<String>) -> EventDraft {
    EventDraft {
        ty: ty.as_str().to_owned(),
        subject,
        time,
        key: Some(key),
        reason: None,
        code: None,
        text: None,
        location: None,
        refs: Default::default(),
        data: None,
        correlationid: None,
        causationid: None,
        tenant: None,
        dataclassification: None,
    }
}

fn put(data: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        data.insert(key.to_owned(), Value::String(v.to_owned()));
    }
}

impl Ctx<'_> {
    fn key(&self, set: &str, rest: &str) -> String {
        format!("{}:{set}:{rest}", self.group)
    }

    fn status(&self, doc: &ShipmentStatus) -> Result<Vec<EventDraft>, X12Error> {
        let mut out = Vec::new();
        for st in &doc.statuses {
            // An AT7 with only an appointment (AT7-03/04) reports a plan, not a status.
            let Some(code) = st.status.as_deref() else {
                continue;
            };
            out.push(self.status_draft(doc, st, code)?);
        }
        Ok(out)
    }

    fn status_draft(
        &self,
        doc: &ShipmentStatus,
        st: &StatusDetail,
        code: &str,
    ) -> Result<EventDraft, X12Error> {
        let (ty, known) = vocabulary::event_type(code);
        let at = Position {
            element: Some(2),
            ..doc.at.clone()
        };
        let subject = subject(&doc.scac, &doc.shipment_id, at)?;
        let seq = if st.seq > 1 {
            format!(".{}", st.seq)
        } else {
            String::new()
        };
        let key = self.key(&doc.set_control, &format!("{}{seq}", st.lx));
        let mut d = draft(
            ty,
            subject,
            key,
            st.time
                .as_ref()
                .map(|t| t.0.clone())
                .or(self.received.clone()),
        );
        d.reason = vocabulary::reason(code, known, st.reason.as_deref()).map(str::to_owned);
        d.code = Some(code.to_owned());
        d.text = vocabulary::status_name(code).map(str::to_owned);
        d.location = st.location.as_ref().and_then(|l| {
            let mut m = Map::new();
            put(&mut m, "city", l.city.as_deref());
            put(&mut m, "state", l.state.as_deref());
            put(&mut m, "country", l.country.as_deref());
            (!m.is_empty()).then_some(Value::Object(m))
        });
        let mut refs = Refs::default();
        refs.add("scac", &doc.scac);
        refs.add("shipment_id", &doc.shipment_id);
        refs.add("pro", doc.carrier_reference.as_deref().unwrap_or(""));
        refs.add_all(&st.references);
        refs.add_all(&doc.references);
        d.refs = refs.0;
        let mut data = Map::new();
        put(&mut data, "lx", st.lx_number.as_deref());
        put(&mut data, "reason_code", st.reason.as_deref());
        if st.appointment.is_some() || st.appointment_reason.is_some() {
            data.insert(
                "appointment".into(),
                json!({"code": st.appointment, "reason_code": st.appointment_reason}),
            );
        }
        put(&mut data, "time_code", st.time_code.as_deref());
        if st.time.as_ref().is_some_and(|t| t.1) {
            data.insert("time_zone".into(), "local".into());
        }
        if let Some(e) = &st.equipment {
            data.insert(
                "equipment".into(),
                json!({"scac": e.scac, "number": e.number, "type": e.kind}),
            );
        }
        if code == "PA" {
            data.insert("partial".into(), true.into());
        }
        data.insert("x12".into(), self.x12.clone());
        d.data = Some(Value::Object(data));
        Ok(d)
    }

    fn ship_notice(&self, doc: &ShipNotice) -> Result<Vec<EventDraft>, X12Error> {
        let mut out = Vec::new();
        if doc.purpose == "01" {
            // A cancelled notice withdraws an earlier one; it packs nothing.
            return Ok(out);
        }
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
            let subject = subject(
                scac,
                &doc.shipment_id,
                Position {
                    element: Some(2),
                    ..doc.at.clone()
                },
            )?;
            let mut refs = Refs::default();
            refs.add("scac", scac);
            refs.add("shipment_id", &doc.shipment_id);
            refs.add_all(&level.references);
            let mut packages = Vec::new();
            let mut orders = Vec::new();
            for l in doc
                .levels
                .iter()
                .filter(|l| l.code != "S" && l.shipment == Some(index))
            {
                for po in &l.po_numbers {
                    refs.add("po", po);
                    orders.push(json!({"hl": l.id, "po": po}));
                }
                if l.code == "T" || l.code == "P" {
                    packages.push(package(l));
                }
            }
            let (time, local) = match &doc.created {
                Some(stamp) => {
                    let (t, local) = stamp.rfc3339().ok_or_else(|| {
                        X12Error::new(
                            ErrorKind::BadElement(ElementProblem::InvalidDate),
                            level.at.clone(),
                            "BSN date out of range",
                        )
                    })?;
                    (Some(t), local)
                }
                None => (self.received.clone(), false),
            };
            let mut d = draft(
                EventType::WarehousePacked,
                subject.clone(),
                self.key(&doc.set_control, &format!("HL{}:packed", level.id)),
                time,
            );
            d.refs = refs.0.clone();
            let mut data = Map::new();
            data.insert("purpose".into(), doc.purpose.clone().into());
            data.insert("packages".into(), Value::Array(packages));
            data.insert("orders".into(), Value::Array(orders));
            if local {
                data.insert("time_zone".into(), "local".into());
            }
            data.insert("x12".into(), self.x12.clone());
            d.data = Some(Value::Object(data));
            out.push(d);
            if let Some(dispatched) = self.dispatched(doc, level, subject, refs)? {
                out.push(dispatched);
            }
        }
        Ok(out)
    }

    /// An original notice (BSN-01 `00`) that states a shipped date (DTM `011`) says the
    /// goods left: `shipment.dispatched` at that time.
    fn dispatched(
        &self,
        doc: &ShipNotice,
        level: &Level,
        subject: String,
        refs: Refs,
    ) -> Result<Option<EventDraft>, X12Error> {
        let Some(stamp) = level
            .shipped
            .or(doc.shipped)
            .filter(|_| doc.purpose == "00")
        else {
            return Ok(None);
        };
        let (time, local) = stamp.rfc3339().ok_or_else(|| {
            X12Error::new(
                ErrorKind::BadElement(ElementProblem::InvalidDate),
                level.at.clone(),
                "DTM date out of range",
            )
        })?;
        let key = self.key(&doc.set_control, &format!("HL{}:dispatched", level.id));
        let mut d = draft(EventType::ShipmentDispatched, subject, key, Some(time));
        d.code = Some("011".into());
        d.text = Some("Shipped".into());
        d.refs = refs.0;
        let mut data = Map::new();
        if local {
            data.insert("time_zone".into(), "local".into());
        }
        data.insert("x12".into(), self.x12.clone());
        d.data = Some(Value::Object(data));
        Ok(Some(d))
    }

    fn freight_invoice(&self, doc: &FreightInvoice) -> Result<EventDraft, X12Error> {
        let at = Position {
            element: Some(3),
            ..doc.at.clone()
        };
        let subject = subject(&doc.scac, &doc.shipment_id, at)?;
        let key = self.key(&doc.set_control, "invoice");
        let mut d = draft(
            EventType::FreightChargeConfirmed,
            subject,
            key,
            self.received.clone(),
        );
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
        d.data = Some(json!({
            "invoice_number": doc.invoice_number,
            "invoice_date": doc.invoice_date,
            "payment_method": doc.payment_method,
            "currency": doc.currency,
            "total": doc.total.to_string(),
            "charges": charges,
            "x12": self.x12,
        }));
        Ok(d)
    }
}

fn package(l: &Level) -> Value {
    json!({
        "hl": l.id,
        "level": l.code,
        "parent": l.parent,
        "sscc": l.sscc(),
        "tracking": l.tracking(),
        "packaging": l.packaging.as_ref().and_then(|p| p.0.clone()),
    })
}
