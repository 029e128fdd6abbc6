//! Recording a booking on the picking — tracking reference, carrier, shipping cost, the
//! label as an attachment, the message Odoo e-mails to the customer — and undoing it when
//! its label is voided.

use super::{company_context, m2o, port, text, OdooErp};
use crate::odoo::sink::kw;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use waybill_engine::workflow::ports::{Booked, Label, PortError};

/// A file name (`Label-<tracking number>.pdf`, the booking id without one) and MIME type
/// for a label.
fn label_file(b: &Booked, label: &Label) -> (String, &'static str) {
    let stem = match b.tracking_number.trim() {
        "" => b.booking_id.trim(),
        t => t,
    };
    let (ext, mime) = match label.format.to_ascii_uppercase().as_str() {
        "PNG" => ("png", "image/png"),
        "ZPL" => ("zpl", "text/plain"),
        "GIF" => ("gif", "image/gif"),
        _ => ("pdf", "application/pdf"),
    };
    (format!("Label-{stem}.{ext}"), mime)
}

impl OdooErp {
    /// The `delivery.carrier` of a booking, through `carriers`.
    fn carrier_of(&self, b: &Booked) -> Option<i64> {
        self.carriers
            .get(&b.carrier)
            .or_else(|| self.carriers.get(&b.carrier_name))
            .or_else(|| {
                self.carriers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&b.carrier_name))
                    .map(|(_, v)| v)
            })
            .copied()
    }

    /// The values of the picking that differ from the booking: tracking reference,
    /// carrier, and the price when it is in the company's currency (or names none).
    async fn booking_values(&self, p: &Value, b: &Booked) -> Result<Map<String, Value>, PortError> {
        let mut vals = Map::new();
        let tracking = b.tracking_number.trim();
        if !tracking.is_empty() && p["carrier_tracking_ref"].as_str() != Some(tracking) {
            vals.insert("carrier_tracking_ref".into(), json!(tracking));
        }
        if let Some(cid) = self
            .carrier_of(b)
            .filter(|c| m2o(&p["carrier_id"]) != Some(*c))
        {
            vals.insert("carrier_id".into(), json!(cid));
        }
        if let Ok(price) = b.amount.trim().parse::<f64>() {
            let same_currency = match (b.currency.trim(), m2o(&p["company_id"])) {
                ("", _) | (_, None) => true,
                (cur, Some(c)) => self.currency_of(c).await?.as_deref() == Some(cur),
            };
            let current = p["carrier_price"].as_f64().unwrap_or(0.0);
            if same_currency && (current - price).abs() >= 0.005 {
                vals.insert("carrier_price".into(), json!(price));
            }
        }
        Ok(vals)
    }

    /// Attaches the label to the picking unless an attachment of its name is there.
    async fn attach(
        &self,
        pid: i64,
        name: &str,
        mime: &str,
        bytes: &[u8],
        ctx: &Option<Value>,
    ) -> Result<(), PortError> {
        let there = self
            .read(
                "ir.attachment",
                json!([
                    ["res_model", "=", "stock.picking"],
                    ["res_id", "=", pid],
                    ["name", "=", name]
                ]),
                &["name"],
                None,
            )
            .await?;
        if !there.is_empty() {
            return Ok(());
        }
        let vals = json!([{
            "name": name,
            "type": "binary",
            "res_model": "stock.picking",
            "res_id": pid,
            "datas": base64::engine::general_purpose::STANDARD.encode(bytes),
            "mimetype": mime,
        }]);
        self.client
            .create("ir.attachment", vals, ctx.clone())
            .await
            .map_err(port)?;
        Ok(())
    }

    /// Posts the booking to the customer on the sale order (else the picking): a
    /// discussion message, which Odoo e-mails to the partners it names.
    async fn tell_customer(
        &self,
        p: &Value,
        b: &Booked,
        marker: &str,
        ctx: &Option<Value>,
    ) -> Result<(), PortError> {
        let Some(pid) = p["id"].as_i64() else {
            return Ok(());
        };
        let (model, id, order) = match (m2o(&p["sale_id"]), text(&p["sale_id"][1])) {
            (Some(so), name) => ("sale.order", so, name),
            (None, _) => ("stock.picking", pid, text(&p["name"])),
        };
        if self.posted(model, id, marker).await? {
            return Ok(());
        }
        // Odoo computes the link from the carrier's tracking URL and the reference just
        // written; a mapped carrier is named as Odoo names it.
        let now = self
            .one(
                "stock.picking",
                pid,
                &["carrier_id", "carrier_tracking_url"],
            )
            .await?
            .unwrap_or(Value::Null);
        let name = match self.carrier_of(b) {
            Some(_) => text(&now["carrier_id"][1]).unwrap_or_else(|| b.carrier_name.clone()),
            None => b.carrier_name.clone(),
        };
        let carrier = match b.service.trim() {
            "" => name,
            s => format!("{name} ({s})"),
        };
        let mut body = format!(
            "Your order {} will ship with {carrier}.",
            order.unwrap_or_default()
        );
        if !b.tracking_number.trim().is_empty() {
            body.push_str(&format!(" Tracking number: {}.", b.tracking_number));
        }
        if let Some(u) = text(&now["carrier_tracking_url"]) {
            body.push_str(&format!(" Track it at {u}"));
        }
        body.push_str(&format!(" {marker}"));
        let mut args = kw(&[
            ("body", json!(body)),
            ("message_type", json!("comment")),
            ("subtype_xmlid", json!("mail.mt_comment")),
        ]);
        if let Some(customer) = m2o(&p["partner_id"]) {
            args.insert("partner_ids".into(), json!([customer]));
        }
        self.call_on(model, id, "message_post", args, ctx).await?;
        Ok(())
    }

    /// Records booking `b` on the picking (see [`Erp::record_booking`]).
    ///
    /// [`Erp::record_booking`]: waybill_engine::workflow::ports::Erp::record_booking
    pub(super) async fn record(
        &self,
        picking_id: i64,
        b: &Booked,
        marker: &str,
    ) -> Result<(), PortError> {
        let p = self.picking(picking_id).await?;
        let ctx = company_context(&p);
        let vals = self.booking_values(&p, b).await?;
        if !vals.is_empty() {
            let args = kw(&[("vals", Value::Object(vals))]);
            self.call_on("stock.picking", picking_id, "write", args, &ctx)
                .await?;
        }
        if let Some(label) = b.label.as_ref().filter(|l| !l.bytes.is_empty()) {
            let (name, mime) = label_file(b, label);
            self.attach(picking_id, &name, mime, &label.bytes, &ctx)
                .await?;
        }
        if self.notify_customer {
            self.tell_customer(&p, b, marker, &ctx).await?;
        }
        Ok(())
    }

    /// Undoes booking `b` on the picking after its label was voided ([`void_values`]),
    /// then notes it once per marker. The label attachment stays, for the record.
    pub(super) async fn unbook(
        &self,
        picking_id: i64,
        b: &Booked,
        marker: &str,
        body: &str,
    ) -> Result<(), PortError> {
        let p = self.picking(picking_id).await?;
        let vals = void_values(&p, b);
        if !vals.is_empty() {
            let args = kw(&[("vals", Value::Object(vals))]);
            self.call_on(
                "stock.picking",
                picking_id,
                "write",
                args,
                &company_context(&p),
            )
            .await?;
        }
        self.note_on(&p, picking_id, marker, body).await
    }
}

/// What undoes booking `b` on picking `p`: nothing unless the picking's tracking reference
/// is still `b`'s (a person or a later booking changed it, so it is not ours to undo, and
/// a retry finds it cleared already); then the reference cleared, and the shipping cost
/// too while it is the amount `b` wrote.
fn void_values(p: &Value, b: &Booked) -> Map<String, Value> {
    let mut vals = Map::new();
    let tracking = b.tracking_number.trim();
    let ours =
        !tracking.is_empty() && p["carrier_tracking_ref"].as_str().map(str::trim) == Some(tracking);
    if !ours {
        return vals;
    }
    vals.insert("carrier_tracking_ref".into(), json!(false));
    let price = p["carrier_price"].as_f64().unwrap_or(0.0);
    let booked = b.amount.trim().parse::<f64>().ok();
    if price != 0.0 && booked.is_some_and(|a| (price - a).abs() < 0.005) {
        vals.insert("carrier_price".into(), json!(0.0));
    }
    vals
}
