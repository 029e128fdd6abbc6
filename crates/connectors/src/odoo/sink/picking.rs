//! Finding the picking events are about: by its id, by tracking number, by the sale
//! order's name (`odoo.order`), or by the purchase order the events name (`po`, an X12
//! 856's PRF) matched on the sale order's customer reference or name — each taken from
//! the events, else from the resolved shipment's identifiers (`Delivery::shipment_refs`).
//!
//! A sale order can have several deliveries (a backorder after a partial shipment). The
//! open one is preferred — unless one of them already carries a chatter note about this
//! shipment: the shipment was applied to that one (it shipped part of the order; the
//! backorder is for a later shipment). Its later events go there too, and a retry after
//! Odoo did the work but its answer was lost does not validate the backorder as well.

use super::*;

/// The fields of a sale order read to find its pickings.
pub(super) const ORDER_FIELDS: &[&str] = &["name", "client_order_ref", "company_id"];

impl OdooSink {
    /// The picking's id, from the first event that locates one: by id, else by tracking
    /// number, else by sale order name, else by purchase order (`po`).
    pub(super) async fn find_picking(
        &self,
        evs: &[&CloudEvent],
        resolved: &[(String, String)],
    ) -> Result<i64, DeliveryError> {
        // The events' own references first, then those of the shipment their subject
        // resolves to (a carrier scan naming only a tracking number, once that number is
        // linked to a picking); a resolved kind with several values is not used.
        let first = |key: &str| {
            evs.iter()
                .find_map(|ev| refs_of(ev).get(key).map(|v| (*v).to_owned()))
                .or_else(|| {
                    let mut vs = resolved.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
                    match (vs.next(), vs.next()) {
                        (Some(v), None) => Some(v.clone()),
                        _ => None,
                    }
                })
        };
        if let Some(id) = first("odoo.picking_id").and_then(|s| s.parse::<i64>().ok()) {
            return Ok(id);
        }
        let tracking = first("tracking");
        let mut candidates = Vec::new();
        if let Some(t) = &tracking {
            candidates = self
                .by_tracking
                .get(&self.client, json!(t))
                .await
                .map_err(err)?;
        }
        if !candidates.iter().any(|r| self.company_allows(r, evs)) {
            if let Some(o) = first("odoo.order") {
                let by_order = self.pickings_of_order_name(&o).await?;
                let ranked = self.prefer(by_order, tracking.as_deref(), evs).await?;
                if !ranked.is_empty() {
                    candidates = ranked;
                }
            }
        }
        if !candidates.iter().any(|r| self.company_allows(r, evs)) {
            if let Some(po) = first("po") {
                for (_, orders) in &self.orders_by {
                    let found = orders.get(&self.client, json!(po)).await.map_err(err)?;
                    let ids: Vec<Value> = found.iter().map(|o| o["id"].clone()).collect();
                    let pickings = self
                        .by_sale
                        .get_many(&self.client, ids)
                        .await
                        .map_err(err)?;
                    let ranked = self.prefer(pickings, tracking.as_deref(), evs).await?;
                    if ranked.is_empty() {
                        continue;
                    }
                    candidates = ranked;
                    if candidates.iter().any(|r| self.company_allows(r, evs)) {
                        break;
                    }
                }
            }
        }
        if let Some(id) = candidates
            .iter()
            .find(|r| self.company_allows(r, evs))
            .and_then(|r| r["id"].as_i64())
        {
            return Ok(id);
        }
        let shipment = evs.first().map(|e| e.subject.0.as_str()).unwrap_or("");
        match candidates.first() {
            // Only pickings of companies this sink does not act for (or the event does
            // not name) match: waiting will not change that.
            Some(other) => Err(permanent(codes::FOREIGN_COMPANY, format!(
                "odoo.foreign_company: shipment {shipment} matches picking {} of company {}, which this sink does not act for or the event does not name",
                other["id"], other["company_id"]
            ))),
            // Odoo is up but does not have the picking yet: retried, and not held
            // against Odoo's circuit breaker.
            None => Err(DeliveryError::not_yet(codes::PICKING_NOT_FOUND, format!(
                "odoo.picking_not_found: no outgoing picking for shipment {shipment}"
            ))),
        }
    }

    /// The outgoing, not cancelled pickings of the sale order named `name` (in the
    /// sink's companies when it is limited to some).
    async fn pickings_of_order_name(&self, name: &str) -> Result<Vec<Value>, DeliveryError> {
        let mut domain = vec![
            json!(["sale_id.name", "=", name]),
            json!(["picking_type_code", "=", "outgoing"]),
            json!(["state", "!=", "cancel"]),
        ];
        if !self.companies.is_empty() {
            domain.push(json!(["company_id", "in", self.companies]));
        }
        self.client
            .search_read(
                "stock.picking",
                Value::Array(domain),
                PICKING_FIELDS,
                "id asc",
                20,
                0,
            )
            .await
            .map_err(err)
    }

    /// The deliveries of one order, best first: one already carrying a note about this
    /// shipment; then one with this shipment's tracking number; then open ones. With a
    /// tracking number, a delivery carrying another one (or done without one) is left out.
    async fn prefer(
        &self,
        mut by_order: Vec<Value>,
        tracking: Option<&str>,
        evs: &[&CloudEvent],
    ) -> Result<Vec<Value>, DeliveryError> {
        let mut pinned = None;
        if by_order.len() > 1 {
            let ids: Vec<Value> = by_order.iter().map(|r| r["id"].clone()).collect();
            let notes = self.notes.get_many(&self.client, ids).await.map_err(err)?;
            pinned = notes
                .iter()
                .find(|n| {
                    n["body"]
                        .as_str()
                        .is_some_and(|b| evs.iter().any(|ev| notes::names_shipment(b, ev)))
                })
                .and_then(|n| n["res_id"].as_i64());
        }
        let is_pinned = |r: &Value| pinned.is_some() && r["id"].as_i64() == pinned;
        if tracking.is_some() {
            by_order.retain(|r| {
                let theirs = r["carrier_tracking_ref"].as_str();
                is_pinned(r) || theirs == tracking || (r["state"] != "done" && theirs.is_none())
            });
        }
        by_order.sort_by_key(|r| {
            (
                !is_pinned(r),
                r["carrier_tracking_ref"].as_str() != tracking,
                r["state"] == "done",
            )
        });
        Ok(by_order)
    }
}
