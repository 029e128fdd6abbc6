//! Reading the order to ship: the picking, its customer's and its warehouse's addresses,
//! its weight in kilograms and its sale order's total.

use super::{m2o, text, OdooErp};
use serde_json::{json, Value};
use std::collections::HashMap;
use waybill_engine::workflow::ports::{Address, OrderContext, PortError};

/// The fields of an address.
const PARTNER_FIELDS: &[&str] = &[
    "name",
    "is_company",
    "commercial_company_name",
    "street",
    "street2",
    "city",
    "zip",
    "state_id",
    "country_code",
    "phone",
    "email",
];

/// Kilograms in a pound (Odoo's `uom.product_uom_lb`).
const KG_PER_LB: f64 = 0.453_592_37;

impl OdooErp {
    /// The shipper's partner: the address of the picking type's warehouse, else the
    /// company's.
    async fn shipper_id(&self, p: &Value) -> Result<Option<i64>, PortError> {
        let warehouse = match m2o(&p["picking_type_id"]) {
            Some(t) => self
                .one("stock.picking.type", t, &["warehouse_id"])
                .await?
                .and_then(|t| m2o(&t["warehouse_id"])),
            None => None,
        };
        if let Some(w) = warehouse {
            let wh = self.one("stock.warehouse", w, &["partner_id"]).await?;
            if let Some(partner) = wh.and_then(|w| m2o(&w["partner_id"])) {
                return Ok(Some(partner));
            }
        }
        Ok(match m2o(&p["company_id"]) {
            Some(c) => self
                .one("res.company", c, &["partner_id"])
                .await?
                .and_then(|c| m2o(&c["partner_id"])),
            None => None,
        })
    }

    /// The addresses of these partners (archived ones too), by id.
    async fn addresses(&self, ids: &[i64]) -> Result<HashMap<i64, Address>, PortError> {
        let everyone = json!({"active_test": false});
        let partners = self
            .read(
                "res.partner",
                json!([["id", "in", ids]]),
                PARTNER_FIELDS,
                Some(&everyone),
            )
            .await?;
        let state_ids: Vec<i64> = partners
            .iter()
            .filter_map(|r| m2o(&r["state_id"]))
            .collect();
        let states: HashMap<i64, String> = if state_ids.is_empty() {
            HashMap::new()
        } else {
            self.read(
                "res.country.state",
                json!([["id", "in", state_ids]]),
                &["code"],
                None,
            )
            .await?
            .iter()
            .filter_map(|s| Some((s["id"].as_i64()?, text(&s["code"])?)))
            .collect()
        };
        Ok(partners
            .iter()
            .filter_map(|r| Some((r["id"].as_i64()?, address(r, &states))))
            .collect())
    }

    pub(super) async fn read_order(&self, picking_id: i64) -> Result<OrderContext, PortError> {
        let p = self.picking(picking_id).await?;
        let customer = m2o(&p["partner_id"]);
        let shipper = self.shipper_id(&p).await?;
        let ids: Vec<i64> = customer.into_iter().chain(shipper).collect();
        let found = if ids.is_empty() {
            HashMap::new()
        } else {
            self.addresses(&ids).await?
        };
        let take = |id: Option<i64>| id.and_then(|i| found.get(&i).cloned()).unwrap_or_default();
        let (recipient, shipper) = (take(customer), take(shipper));
        let kg_per_unit = match p["weight_uom_name"].as_str() {
            Some("lb") | Some("lbs") => KG_PER_LB,
            _ => 1.0,
        };
        let weight = [&p["shipping_weight"], &p["weight"]]
            .iter()
            .filter_map(|w| w.as_f64())
            .find(|w| *w > 0.0)
            .unwrap_or(0.0);
        let order = match m2o(&p["sale_id"]) {
            Some(so) => {
                self.one("sale.order", so, &["amount_total", "currency_id"])
                    .await?
            }
            None => None,
        };
        let order_amount = match order {
            Some(o) => self.amount(&o, "amount_total").await?,
            None => None,
        };
        Ok(OrderContext {
            picking_id,
            picking_name: text(&p["name"]).unwrap_or_default(),
            state: text(&p["state"]).unwrap_or_default(),
            order_name: text(&p["sale_id"][1]),
            company_id: m2o(&p["company_id"]),
            customer_id: customer,
            carrier_hint: text(&p["carrier_id"][1]),
            shipper,
            recipient,
            weight_kg: weight * kg_per_unit,
            order_amount,
        })
    }
}

/// A partner as a postal address: a company's name is the company; a person's is the
/// person, with their company (`commercial_company_name`) when it is another name.
fn address(r: &Value, states: &HashMap<i64, String>) -> Address {
    let name = text(&r["name"]);
    let company = text(&r["commercial_company_name"]);
    let (person_name, company_name) = if r["is_company"] == json!(true) {
        (None, name.or(company))
    } else {
        let company = company.filter(|c| Some(c) != name.as_ref());
        (name, company)
    };
    Address {
        person_name,
        company_name,
        address_line1: text(&r["street"]),
        address_line2: text(&r["street2"]),
        city: text(&r["city"]),
        postal_code: text(&r["zip"]),
        state_code: m2o(&r["state_id"]).and_then(|s| states.get(&s).cloned()),
        country_code: text(&r["country_code"]).unwrap_or_default(),
        phone_number: text(&r["phone"]),
        email: text(&r["email"]),
    }
}
