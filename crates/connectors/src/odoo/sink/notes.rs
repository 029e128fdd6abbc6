//! What people read in Odoo: chatter notes (on the picking and its sale order) and
//! exception activities, each line carrying its event's marker. What a line says is in
//! `chatter_line.rs`.

use super::chatter_line::describe;
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
        Ok(evs
            .iter()
            .copied()
            .filter(|ev| !carries(&existing, fields, &marker(ev)))
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
                    .ok_or_else(|| {
                        permanent(
                            codes::NO_NOTE_SUBTYPE,
                            "odoo.no_note_subtype: mail.mt_note not found".into(),
                        )
                    })
            })
            .await
            .copied()
    }

    /// The values of one chatter note on the record (the picking, or its sale order) with
    /// the lines whose marker none of its notes (`posted`) carries yet; none when every
    /// marker is there. Notes are created as `mail.message` records (an internal note:
    /// type `comment`, subtype *Note*, author the API user, what `message_post` of a note
    /// stores), so that the notes of many pickings go to Odoo in one `create`.
    pub(super) async fn note(
        &self,
        model: &str,
        id: i64,
        posted: &[Value],
        prefix: &str,
        lines: &[(&CloudEvent, String)],
    ) -> Result<Option<Value>, DeliveryError> {
        let body: String = lines
            .iter()
            .filter(|(ev, _)| !carries(posted, &["body"], &marker(ev)))
            .map(|(ev, line)| {
                format!(
                    "<p>{}{} {}</p>",
                    html(prefix),
                    html(line),
                    html(&line_marker(ev))
                )
            })
            .collect();
        if body.is_empty() {
            return Ok(None);
        }
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
                    html(&format!("{}]", marker(ev)))
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

/// Whether one of the records carries the marker in one of the fields.
fn carries(records: &[Value], fields: &[&str], marker: &str) -> bool {
    records.iter().any(|r| {
        fields
            .iter()
            .any(|f| r[*f].as_str().is_some_and(|b| b.contains(marker)))
    })
}

/// What makes a note line or an activity idempotent: `[waybill <event id>`, which every
/// marker this sink writes starts with (event ids are all 36 characters long).
pub(super) fn marker(ev: &CloudEvent) -> String {
    format!("[waybill {}", ev.id)
}

/// The marker ending a chatter line: the event, and the shipment it is about, which tells
/// the picking this shipment was applied to from the order's other deliveries.
fn line_marker(ev: &CloudEvent) -> String {
    format!("{} shipment {}]", marker(ev), ev.subject.0)
}

/// Whether a note (its stored HTML body) has a line about the event's shipment.
pub(super) fn names_shipment(body: &str, ev: &CloudEvent) -> bool {
    body.contains(&html(&format!(" shipment {}]", ev.subject.0)))
}

/// Escapes text for an HTML body.
pub(crate) fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Text of an HTML paragraph: tags dropped, the entities [`html`] (and Odoo) write read back.
pub(crate) fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_text_reads_back_as_written() {
        assert_eq!(
            plain(&format!("<p>{}", html("a & <b> \"c\""))),
            "a & <b> \"c\""
        );
    }
}
