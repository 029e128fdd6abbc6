//! Odoo records → canonical event drafts.
//!
//! Shipment key: `odoo:<database>:picking:<id>` (picking names such as `WH/OUT/00015`
//! contain `/`, which keys may not). One event per state reached: the draft key is
//! `<database>:<model>:<id>:<state>`, so every later read of the same state — by the poller again,
//! or after a webhook hint — is the same event and is stored once.
//!
//! | record | state | canonical event |
//! |---|---|---|
//! | `stock.picking` (outgoing) | `assigned` (Ready) | `order.released` |
//! | `stock.picking` (outgoing) | `done` | `shipment.dispatched` |
//! | `stock.picking` (outgoing) | `cancel` | `order.cancelled` |
//! | `stock.picking` | `draft`, `waiting`, `confirmed` | none |
//! | `sale.order` | `cancel` | `order.cancelled` on each of its pickings |
//! | `sale.order` | other | none |

use serde_json::Value;
use std::collections::BTreeMap;
use waybill_model::EventDraft;

/// Fields read from `stock.picking`.
pub const PICKING_FIELDS: &[&str] = &[
    "name",
    "state",
    "origin",
    "sale_id",
    "partner_id",
    "carrier_id",
    "carrier_tracking_ref",
    "company_id",
    "picking_type_code",
    "scheduled_date",
    "date_done",
    "write_date",
];

/// Fields read from `sale.order`.
pub const ORDER_FIELDS: &[&str] = &[
    "name",
    "state",
    "picking_ids",
    "company_id",
    "client_order_ref",
    "write_date",
];

/// Odoo's `"YYYY-MM-DD HH:MM:SS"` (UTC) as RFC 3339.
pub fn odoo_time(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    let (d, t) = s.split_once(' ')?;
    let t = t.split('.').next()?;
    Some(format!("{d}T{t}Z"))
}

/// The shipment key of a picking.
pub fn picking_key(database: &str, id: i64) -> String {
    format!("odoo:{database}:picking:{id}")
}

fn m2o_name(v: &Value) -> Option<String> {
    v.get(1).and_then(Value::as_str).map(str::to_owned)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Drafts for one `stock.picking` record.
pub fn picking(database: &str, rec: &Value) -> Vec<EventDraft> {
    let Some(id) = rec["id"].as_i64() else {
        return Vec::new();
    };
    let state = rec["state"].as_str().unwrap_or("");
    let ty = match state {
        "assigned" => "order.released",
        "done" => "shipment.dispatched",
        "cancel" => "order.cancelled",
        _ => return Vec::new(),
    };
    let time = match state {
        "done" => odoo_time(&rec["date_done"]).or_else(|| odoo_time(&rec["write_date"])),
        _ => odoo_time(&rec["write_date"]),
    };
    let mut refs = BTreeMap::new();
    refs.insert("odoo.picking_id".to_string(), id.to_string());
    let opt = [
        ("odoo.picking", text(&rec["name"])),
        ("odoo.order", m2o_name(&rec["sale_id"])),
        // The sale order's customer reference, added by the poller.
        ("po", text(&rec["sale_client_order_ref"])),
        ("odoo.partner", m2o_name(&rec["partner_id"])),
        ("odoo.company", m2o_name(&rec["company_id"])),
        (
            "odoo.company_id",
            rec["company_id"]
                .get(0)
                .and_then(Value::as_i64)
                .map(|c| c.to_string()),
        ),
        ("carrier", m2o_name(&rec["carrier_id"])),
        ("tracking", text(&rec["carrier_tracking_ref"])),
    ];
    for (k, v) in opt {
        if let Some(v) = v {
            refs.insert(k.to_string(), v);
        }
    }
    vec![EventDraft {
        ty: ty.into(),
        subject: picking_key(database, id),
        time,
        key: Some(format!("{database}:stock.picking:{id}:{state}")),
        reason: None,
        code: Some(state.to_owned()),
        text: None,
        location: None,
        refs,
        data: Some(serde_json::json!({
            "origin": rec["origin"],
            "scheduled_date": odoo_time(&rec["scheduled_date"]),
            "company_id": rec["company_id"].get(0),
        })),
        correlationid: m2o_name(&rec["sale_id"]),
        causationid: None,
        tenant: None,
        dataclassification: None,
        key_scope: waybill_model::KeyScope::Source,
    }]
}

/// Drafts for one `sale.order` record.
pub fn order(database: &str, rec: &Value) -> Vec<EventDraft> {
    let (Some(id), Some("cancel")) = (rec["id"].as_i64(), rec["state"].as_str()) else {
        return Vec::new();
    };
    let name = text(&rec["name"]);
    rec["picking_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .map(|pid| {
            let mut refs = BTreeMap::new();
            refs.insert("odoo.picking_id".to_string(), pid.to_string());
            if let Some(n) = &name {
                refs.insert("odoo.order".to_string(), n.clone());
            }
            if let Some(c) = rec["company_id"].get(0).and_then(Value::as_i64) {
                refs.insert("odoo.company_id".to_string(), c.to_string());
            }
            EventDraft {
                ty: "order.cancelled".into(),
                subject: picking_key(database, pid),
                time: odoo_time(&rec["write_date"]),
                key: Some(format!("{database}:sale.order:{id}:cancel:{pid}")),
                reason: Some("retailer_cancelled".into()),
                code: Some("cancel".into()),
                text: None,
                location: None,
                refs,
                data: None,
                correlationid: name.clone(),
                causationid: None,
                tenant: None,
                dataclassification: None,
                key_scope: waybill_model::KeyScope::Source,
            }
        })
        .collect()
}
