//! 214 → one status draft per AT7 that has a status code (AT7-01).

use super::{draft, subject, Ctx};
use crate::x12::error::{Position, X12Error};
use crate::x12::local_time::Placed;
use crate::x12::measure::put;
use crate::x12::refs::Refs;
use crate::x12::status::{ShipmentStatus, StatusDetail};
use crate::x12::vocabulary;
use serde_json::{json, Map, Value};
use waybill_model::{fact_key, EventDraft};

/// The time part of the fact key of a status without a date (AT7-05 absent).
const UNDATED: &str = "-";

impl Ctx {
    pub(super) fn status(&self, doc: &ShipmentStatus) -> Result<Vec<EventDraft>, X12Error> {
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
        let location = st.location.as_ref().and_then(|l| {
            let mut m = Map::new();
            put(&mut m, "city", l.city.as_deref());
            put(&mut m, "state", l.state.as_deref());
            put(&mut m, "country", l.country.as_deref());
            (!m.is_empty()).then_some(Value::Object(m))
        });
        let placed = match &st.time {
            Some(stamp) => Some(self.place(
                stamp,
                Position {
                    element: Some(5),
                    ..st.at.clone()
                },
            )?),
            None => None,
        };
        // The fact: type, time as the document gives it, raw code, place — never the
        // interchange, group or set that carried it.
        let fact_time = placed
            .as_ref()
            .map_or_else(|| UNDATED.to_owned(), Placed::fact_time);
        let key = fact_key(ty, &fact_time, Some(code), location.as_ref());
        let time = placed
            .as_ref()
            .map_or_else(|| self.received_text(), Placed::time_text);
        let mut d = draft(ty, subject, key, Some(time));
        d.reason = vocabulary::reason(code, known, st.reason.as_deref()).map(str::to_owned);
        d.code = Some(code.to_owned());
        d.text = vocabulary::status_name(code).map(str::to_owned);
        d.location = location;
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
        if let Some(p) = &placed {
            p.describe(&mut data);
        }
        if let Some(e) = &st.equipment {
            data.insert(
                "equipment".into(),
                json!({"scac": e.scac, "number": e.number, "type": e.kind}),
            );
        }
        // The loop's AT8, else the shipment's: weight, pieces, volume.
        if let Some(lading) = st.lading.as_ref().or(doc.lading.as_ref()) {
            lading.describe(&mut data);
        }
        if code == "PA" {
            data.insert("partial".into(), true.into());
        }
        data.insert("x12".into(), self.x12.clone());
        d.data = Some(Value::Object(data));
        Ok(d)
    }
}
