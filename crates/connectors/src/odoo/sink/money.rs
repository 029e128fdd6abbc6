//! Money on the shipment: freight charges into the picking's shipping cost, and the
//! sale order's invoice on proof of delivery. The two invoicing steps Odoo offers over
//! RPC ([`create_invoices`], [`post_invoices`]) are shared with the ERP port
//! (`odoo::workflow`).

use super::*;

/// A context as the keyword arguments of a call.
fn context_kw(ctx: &Option<Value>) -> Map<String, Value> {
    let mut k = Map::new();
    if let Some(c) = ctx {
        k.insert("context".into(), c.clone());
    }
    k
}

/// Invoices the delivered quantities of sale order `so` through Odoo's public flow: the
/// `sale.advance.payment.inv` wizard (`advance_payment_method` `delivered`), then its
/// `create_invoices` (`sale.order._create_invoices` is private). Answers Odoo's action:
/// an `account.move` window whose `res_id` is the new draft invoice (a `domain` when it
/// made several). Nothing invoiceable (the delivery is not validated yet) is Odoo's
/// `UserError` "Cannot create an invoice. No items are available to invoice."
pub(crate) async fn create_invoices(
    client: &OdooClient,
    so: i64,
    ctx: &Option<Value>,
) -> Result<Value, OdooError> {
    let wiz = client
        .create(
            "sale.advance.payment.inv",
            json!([{"advance_payment_method": "delivered", "sale_order_ids": [[6, 0, [so]]]}]),
            ctx.clone(),
        )
        .await?
        .first()
        .copied()
        .ok_or_else(|| {
            OdooError::Protocol("sale.advance.payment.inv.create returned no id".into())
        })?;
    client
        .call(
            "sale.advance.payment.inv",
            "create_invoices",
            Some(&[wiz]),
            context_kw(ctx),
        )
        .await
}

/// Posts draft invoices (`account.move.action_post`, which answers `false` normally:
/// only errors matter).
pub(crate) async fn post_invoices(
    client: &OdooClient,
    ids: &[i64],
    ctx: &Option<Value>,
) -> Result<(), OdooError> {
    client
        .call("account.move", "action_post", Some(ids), context_kw(ctx))
        .await?;
    Ok(())
}

impl OdooSink {
    /// The currency code of a company (read once, then kept).
    async fn company_currency(&self, company: i64) -> Result<Option<String>, DeliveryError> {
        if let Some(c) = self
            .currencies
            .lock()
            .ok()
            .and_then(|m| m.get(&company).cloned())
        {
            return Ok(Some(c));
        }
        let rows = self
            .client
            .search_read(
                "res.company",
                json!([["id", "=", company]]),
                &["currency_id"],
                "id asc",
                1,
                0,
            )
            .await
            .map_err(err)?;
        let code = rows
            .first()
            .and_then(|r| r["currency_id"].get(1))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let (Some(c), Ok(mut m)) = (&code, self.currencies.lock()) {
            m.insert(company, c.clone());
        }
        Ok(code)
    }

    /// Writes the freight total into `carrier_price` when it is in the company's currency
    /// (or names none); otherwise only the chatter note carries it.
    pub(super) async fn record_freight(
        &self,
        p: &Value,
        ev: &CloudEvent,
        ctx: &Option<Value>,
    ) -> Result<(), DeliveryError> {
        let Some(total) = ev.data["total"]
            .as_str()
            .and_then(|t| t.parse::<f64>().ok())
            .or_else(|| ev.data["total"].as_f64())
        else {
            return Err(DeliveryError::new(
                codes::FREIGHT_NO_TOTAL,
                FailureKind::InvalidInput,
                format!(
                    "odoo.freight_no_total: event {} has no numeric data.total",
                    ev.id
                ),
            ));
        };
        if let Some(cur) = ev.data["currency"].as_str().filter(|c| !c.is_empty()) {
            let company = m2o(&p["company_id"]);
            let theirs = match company {
                Some(c) => self.company_currency(c).await?,
                None => None,
            };
            if theirs.as_deref() != Some(cur) {
                return Ok(());
            }
        }
        let current = p["carrier_price"].as_f64().unwrap_or(0.0);
        match p["id"].as_i64() {
            Some(pid) if (current - total).abs() >= 0.005 => {
                self.write_picking(pid, kw(&[("carrier_price", json!(total))]), ctx)
                    .await
            }
            _ => Ok(()),
        }
    }
}

impl OdooSink {
    async fn draft_invoices(
        &self,
        so: i64,
        ctx: &Option<Value>,
    ) -> Result<(Value, Vec<i64>), DeliveryError> {
        let page = crate::odoo::Page {
            order: "id asc",
            limit: 1,
            offset: 0,
        };
        let rows = self
            .client
            .search_read_with(
                None,
                "sale.order",
                json!([["id", "=", so]]),
                &["invoice_status", "invoice_ids"],
                page,
                ctx.as_ref(),
            )
            .await
            .map_err(err)?;
        let order = rows.into_iter().next().unwrap_or(Value::Null);
        let ids: Vec<i64> = order["invoice_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        let drafts = if ids.is_empty() {
            Vec::new()
        } else {
            let page = crate::odoo::Page {
                order: "id asc",
                limit: ids.len(),
                offset: 0,
            };
            self.client
                .search_read_with(
                    None,
                    "account.move",
                    json!([["id", "in", ids], ["state", "=", "draft"]]),
                    &["state"],
                    page,
                    ctx.as_ref(),
                )
                .await
                .map_err(err)?
                .iter()
                .filter_map(|r| r["id"].as_i64())
                .collect()
        };
        Ok((order, drafts))
    }

    /// Invoices the sale order of the picking, once: nothing when it is already fully
    /// invoiced; posts draft invoices left by an earlier attempt; otherwise creates the
    /// invoice with the "delivered quantities" wizard and posts it — in the picking's
    /// company.
    pub(super) async fn invoice(
        &self,
        p: &Value,
        ctx: &Option<Value>,
    ) -> Result<(), DeliveryError> {
        let pid = &p["id"];
        let Some(so) = m2o(&p["sale_id"]) else {
            return Err(permanent(
                codes::NO_SALE_ORDER,
                format!("odoo.no_sale_order: picking {pid} has no sale order"),
            ));
        };
        let (order, mut drafts) = self.draft_invoices(so, ctx).await?;
        if order["invoice_status"] == "invoiced" && drafts.is_empty() {
            return Ok(());
        }
        if drafts.is_empty() {
            create_invoices(&self.client, so, ctx).await.map_err(err)?;
            drafts = self.draft_invoices(so, ctx).await?.1;
        }
        if !drafts.is_empty() {
            post_invoices(&self.client, &drafts, ctx)
                .await
                .map_err(err)?;
        }
        Ok(())
    }
}
