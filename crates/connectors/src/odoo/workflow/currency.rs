//! Amounts as Odoo keeps them: a company's currency, a currency's decimal places, and a
//! monetary field as a decimal string with those decimals.

use super::{m2o, text, OdooErp};
use serde_json::Value;
use waybill_engine::workflow::ports::PortError;

/// An amount as a decimal string with `places` decimals (`287.5` → `287.50`): Odoo keeps
/// monetary fields rounded to their currency, the float read back is printed at that
/// precision, so no binary noise (`287.49999999999997`) reaches the caller.
pub(super) fn money(amount: f64, places: u32) -> String {
    let s = format!("{amount:.*}", places as usize);
    match s.strip_prefix('-') {
        Some(zero) if zero.bytes().all(|b| b == b'0' || b == b'.') => zero.to_owned(),
        _ => s,
    }
}

impl OdooErp {
    /// The currency code of a company (read once).
    pub(super) async fn currency_of(&self, company: i64) -> Result<Option<String>, PortError> {
        if let Some(c) = self
            .currencies
            .lock()
            .ok()
            .and_then(|m| m.get(&company).cloned())
        {
            return Ok(c);
        }
        let code = self
            .one("res.company", company, &["currency_id"])
            .await?
            .and_then(|r| text(&r["currency_id"][1]));
        if let Ok(mut m) = self.currencies.lock() {
            m.insert(company, code.clone());
        }
        Ok(code)
    }

    /// The decimal places of a currency (`res.currency.decimal_places`, read once; 2 when
    /// Odoo does not say).
    async fn decimals(&self, currency: Option<i64>) -> Result<u32, PortError> {
        let Some(c) = currency else {
            return Ok(2);
        };
        if let Some(d) = self.decimals.lock().ok().and_then(|m| m.get(&c).copied()) {
            return Ok(d);
        }
        let d = self
            .one("res.currency", c, &["decimal_places"])
            .await?
            .and_then(|r| r["decimal_places"].as_u64())
            .map_or(2, |d| d.min(6) as u32);
        if let Ok(mut m) = self.decimals.lock() {
            m.insert(c, d);
        }
        Ok(d)
    }

    /// A monetary field of a record as a decimal string in the record's currency.
    pub(super) async fn amount(&self, r: &Value, field: &str) -> Result<Option<String>, PortError> {
        let Some(v) = r[field].as_f64() else {
            return Ok(None);
        };
        let places = self.decimals(m2o(&r["currency_id"])).await?;
        Ok(Some(money(v, places)))
    }
}
