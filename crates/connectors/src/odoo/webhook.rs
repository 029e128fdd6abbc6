//! Receiver for Odoo automation-rule webhooks ("Send Webhook Notification", Odoo 17+).
//!
//! Odoo 18 posts them inside its transaction, before the commit (Odoo 19 after it), once,
//! with a 1 s timeout, no signature and no event id; the same payload can arrive twice
//! (ODOO.md §4.1), and its `write_date` is the record's *previous* one (seen on real Odoo
//! 18 and 19: a picking posted as `done` with the write_date of its last change before).
//! So a
//! webhook is a hint, never an event: it is authenticated by a token in the URL, kept in
//! the inbox (accepted, with no events), answered at once, and the record is re-read over
//! RPC `hint_delay` later by the poller — which is also the safety net for webhooks that
//! never arrive. Events come only from those reads, keyed per state reached, so the
//! webhook and the poller together never produce a duplicate.

use super::OdooPoller;
use std::sync::Arc;
use waybill_engine::ingest::{Auth, DEFAULT_MAX_BODY};
use waybill_engine::partner::{Inbound, Mapped, Rejection};
use waybill_engine::Received;

/// The webhook side of an `odoo` source.
pub struct OdooWebhook {
    pub(crate) auth: Auth,
    pub(crate) poller: Arc<OdooPoller>,
}

impl Inbound for OdooWebhook {
    fn max_body_bytes(&self) -> usize {
        DEFAULT_MAX_BODY
    }

    fn authenticate(&self, r: &Received) -> Result<(), Rejection> {
        self.auth.check(r)
    }

    fn map(&self, r: &Received) -> Result<Mapped, Rejection> {
        let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| {
            Rejection::new(
                waybill_engine::codes::BAD_JSON,
                format!("payload is not valid JSON: {e}"),
            )
        })?;
        let model = v["_model"].as_str().unwrap_or("");
        let id = v["_id"].as_i64().or_else(|| v["id"].as_i64());
        let Some(id) = id.filter(|_| matches!(model, "stock.picking" | "sale.order")) else {
            return Err(Rejection::new(
                super::codes::UNSUPPORTED_WEBHOOK,
                format!("expected `_model` stock.picking or sale.order and an integer `_id`, got `{model}`"),
            ));
        };
        self.poller.hint(model, id);
        // The payload's write_date is stale, so it cannot tell two changes apart: the
        // whole body does (a repeat of the same payload is a duplicate, a new state is not).
        let version = waybill_model::ids::content_hash(&r.body);
        Ok(Mapped {
            payload_key: format!("hint:{model}:{id}:{version}"),
            drafts: Vec::new(),
        })
    }
}
