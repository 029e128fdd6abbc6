//! What people read and do in Odoo: internal notes on the picking, and to-dos (activities)
//! scheduled on it and marked done once a person resolved them — each once per marker.

use super::{company_context, port, with_context, OdooErp};
use crate::odoo::sink::kw;
use crate::odoo::sink::notes::html;
use crate::odoo::OdooError;
use serde_json::{json, Value};
use waybill_engine::workflow::ports::PortError;

/// The feedback of a to-do the port marks done (Odoo shows it in the "done" message).
pub(super) const RESOLVED: &str = "Resolved in Waybill";

impl OdooErp {
    /// Posts an internal note on the picking unless a message of it carries `marker`.
    pub(super) async fn post_note(
        &self,
        picking_id: i64,
        marker: &str,
        body: &str,
    ) -> Result<(), PortError> {
        let p = self.picking(picking_id).await?;
        self.note_on(&p, picking_id, marker, body).await
    }

    /// [`post_note`](Self::post_note) on the picking `p`, already read.
    pub(super) async fn note_on(
        &self,
        p: &Value,
        picking_id: i64,
        marker: &str,
        body: &str,
    ) -> Result<(), PortError> {
        if self.posted("stock.picking", picking_id, marker).await? {
            return Ok(());
        }
        let args = kw(&[
            ("body", json!(format!("{body} {marker}"))),
            ("message_type", json!("comment")),
            ("subtype_xmlid", json!("mail.mt_note")),
        ]);
        self.call_on(
            "stock.picking",
            picking_id,
            "message_post",
            args,
            &company_context(p),
        )
        .await?;
        Ok(())
    }

    /// A to-do once per marker: none when an activity of the picking (open, or archived
    /// as done) or the message Odoo posts when one is marked done carries the marker.
    pub(super) async fn schedule(
        &self,
        picking_id: i64,
        marker: &str,
        summary: &str,
        note: &str,
    ) -> Result<(), PortError> {
        let p = self.picking(picking_id).await?;
        let on_picking = vec![
            json!(["res_model", "=", "stock.picking"]),
            json!(["res_id", "=", picking_id]),
        ];
        let everyone = json!({"active_test": false});
        if self
            .marked("mail.activity", on_picking, "note", marker, Some(&everyone))
            .await?
        {
            return Ok(());
        }
        let done = vec![
            json!(["model", "=", "stock.picking"]),
            json!(["res_id", "=", picking_id]),
            json!(["mail_activity_type_id", "!=", false]),
        ];
        if self
            .marked("mail.message", done, "body", marker, None)
            .await?
        {
            return Ok(());
        }
        // Odoo 19 no longer fills in the calling user: name one always.
        let user = match self.activity_user_id {
            Some(u) => u,
            None => self.client.api_user_id().await.map_err(port)?,
        };
        let args = kw(&[
            ("act_type_xmlid", json!("mail.mail_activity_data_todo")),
            ("summary", json!(summary)),
            (
                "note",
                json!(format!("<p>{}</p><p>{}</p>", html(note), html(marker))),
            ),
            ("user_id", json!(user)),
        ]);
        self.call_on(
            "stock.picking",
            picking_id,
            "activity_schedule",
            args,
            &company_context(&p),
        )
        .await?;
        Ok(())
    }

    /// Marks done the open activities of the picking whose note or summary carries
    /// `marker` (`action_feedback`: Odoo posts its "done" message and archives or deletes
    /// the activity, so a second call finds none open and does nothing; one a person
    /// marked done between the search and the call is done all the same).
    pub(super) async fn close(&self, picking_id: i64, marker: &str) -> Result<(), PortError> {
        let on_picking = vec![
            json!(["res_model", "=", "stock.picking"]),
            json!(["res_id", "=", picking_id]),
        ];
        let open = self
            .carrying(
                "mail.activity",
                on_picking,
                &["note", "summary"],
                marker,
                None,
            )
            .await?;
        let ids: Vec<i64> = open.iter().filter_map(|a| a["id"].as_i64()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        // Done in the picking's company, as the activity was scheduled.
        let p = self
            .one("stock.picking", picking_id, &["company_id"])
            .await?;
        let ctx = p.as_ref().and_then(company_context);
        for id in ids {
            let args = with_context(kw(&[("feedback", json!(RESOLVED))]), &ctx);
            match self
                .client
                .call("mail.activity", "action_feedback", Some(&[id]), args)
                .await
            {
                // A person marked it done meanwhile (Odoo deleted it): done all the same.
                Err(OdooError::Server { name, .. }) if name.ends_with("MissingError") => {}
                other => {
                    other.map_err(port)?;
                }
            }
        }
        Ok(())
    }
}
