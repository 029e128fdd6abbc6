//! What people read in Odoo: chatter notes (on the picking and its sale order) and
//! exception activities, each line carrying its event's marker.

use super::*;

impl OdooSink {
    /// The events whose marker is in none of the records `reader` finds for the picking
    /// (its notes, or its activities), looking in `fields`.
    async fn unmarked<'e>(
        &self,
        reader: &BatchedRead,
        fields: &[&str],
        pid: i64,
        evs: &[&'e CloudEvent],
    ) -> Result<Vec<&'e CloudEvent>, DeliveryError> {
        let existing = reader.get(&self.client, json!(pid)).await.map_err(err)?;
        let seen = |m: &str| {
            existing.iter().any(|r| {
                fields
                    .iter()
                    .any(|f| r[*f].as_str().is_some_and(|b| b.contains(m)))
            })
        };
        Ok(evs
            .iter()
            .copied()
            .filter(|ev| !seen(&marker(ev)))
            .collect())
    }

    /// Calls a method of a record in the picking's company.
    async fn record_call(
        &self,
        model: &str,
        id: i64,
        method: &str,
        k: Map<String, Value>,
        ctx: &Option<Value>,
    ) -> Result<(), DeliveryError> {
        self.client
            .call(model, method, Some(&[id]), Self::ctx_kw(ctx, k))
            .await
            .map_err(err)?;
        Ok(())
    }

    /// The id of the *Note* subtype (`mail.mt_note`), read once.
    async fn note_subtype(&self) -> Result<i64, DeliveryError> {
        self.note_subtype
            .get_or_try_init(|| async {
                let rows = self
                    .client
                    .search_read(
                        "ir.model.data",
                        json!([["module", "=", "mail"], ["name", "=", "mt_note"]]),
                        &["res_id"],
                        "id asc",
                        1,
                        0,
                    )
                    .await
                    .map_err(err)?;
                rows.first()
                    .and_then(|r| r["res_id"].as_i64())
                    .ok_or_else(|| permanent("odoo.no_note_subtype: mail.mt_note not found".into()))
            })
            .await
            .copied()
    }

    /// The values of one chatter note on the record (the picking, or its sale order) for
    /// every event whose marker is not on it yet; none when every marker is there. Notes
    /// are created as `mail.message` records (an internal note: type `comment`, subtype
    /// *Note*, author the API user, what `message_post` of a note stores), so that the
    /// notes of many pickings go to Odoo in one `create`.
    pub(super) async fn note(
        &self,
        model: &str,
        id: i64,
        notes: &BatchedRead,
        prefix: &str,
        evs: &[&CloudEvent],
    ) -> Result<Option<Value>, DeliveryError> {
        let new = self.unmarked(notes, &["body"], id, evs).await?;
        if new.is_empty() {
            return Ok(None);
        }
        let body: String = new
            .iter()
            .map(|ev| {
                format!(
                    "<p>{}{} {}</p>",
                    html(prefix),
                    html(&describe(ev)),
                    html(&marker(ev))
                )
            })
            .collect();
        Ok(Some(json!({
            "model": model,
            "res_id": id,
            "body": body,
            "message_type": "comment",
            "subtype_id": self.note_subtype().await?,
        })))
    }

    /// One exception activity for the events whose marker no activity carries yet.
    pub(super) async fn activity(
        &self,
        pid: i64,
        evs: &[&CloudEvent],
        ctx: &Option<Value>,
    ) -> Result<(), DeliveryError> {
        let new = self
            .unmarked(&self.activities, &["note", "summary"], pid, evs)
            .await?;
        let Some(last) = new.last() else {
            return Ok(());
        };
        let note: String = new
            .iter()
            .map(|ev| {
                format!(
                    "<p>{} — shipment {} (source {}) {}</p>",
                    html(&describe(ev)),
                    html(&ev.subject.0),
                    html(ev.source_name()),
                    html(&marker(ev))
                )
            })
            .collect();
        let summary = if new.len() == 1 {
            last.ty.to_string()
        } else {
            format!("{} (+{} more)", last.ty, new.len() - 1)
        };
        let mut args = kw(&[
            ("act_type_xmlid", json!("mail.mail_activity_data_warning")),
            ("summary", json!(summary)),
            ("note", json!(note)),
        ]);
        // Odoo 19 no longer fills in the calling user: name one always.
        let user = match self.activity_user_id {
            Some(u) => u,
            None => self.client.api_user_id().await.map_err(err)?,
        };
        args.insert("user_id".into(), json!(user));
        self.record_call("stock.picking", pid, "activity_schedule", args, ctx)
            .await
    }
}

/// The marker that makes a note or activity idempotent.
fn marker(ev: &CloudEvent) -> String {
    format!("[waybill {}]", ev.id)
}

/// Escapes text for an HTML body.
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A one-line human description of an event for chatter and activities.
fn describe(ev: &CloudEvent) -> String {
    let d = &ev.data;
    let mut s = format!("{} at {}", ev.ty, ev.time.date());
    if let Some(t) = d["raw"]["text"]
        .as_str()
        .or_else(|| d["raw"]["code"].as_str())
    {
        s.push_str(&format!(": {t}"));
    }
    if let Some(r) = d["reason"].as_str() {
        s.push_str(&format!(" (reason: {r})"));
    }
    if let Some(c) = d["location"]["city"].as_str() {
        s.push_str(&format!(", {c}"));
    }
    if ev.ty == EventType::FreightChargeConfirmed {
        if let Some(t) = d["total"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| d["total"].as_f64().map(|f| f.to_string()))
        {
            s.push_str(&format!(
                ": freight {t} {}",
                d["currency"].as_str().unwrap_or("")
            ));
        }
        if let Some(i) = d["invoice_number"].as_str() {
            s.push_str(&format!(", carrier invoice {i}"));
        }
    }
    s
}
