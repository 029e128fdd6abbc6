//! What an advance ship notice says was shipped, onto the picking's moves before it is
//! validated: a picking of 10 units whose notice ships 6 is validated for 6, and Odoo's
//! backorder wizard (answered "create") keeps the other 4 in a backorder.
//!
//! The notice's lines are `data.lines` of the validating event: `[{"ids": {"upc": ..,
//! "sku": ..}, "shipped": 6, "po": ..}, ...]`. A line names a product of the picking by
//! its barcode (`upc`, `ean` or `gtin` against the product's `barcode`, compared as GTINs:
//! digits without leading zeros) or by its code (`sku`, the vendor's item number, or
//! `vendor_part` against the product's `default_code`, without case), the first
//! identifier that names exactly one product of the picking's open moves deciding. Odoo 17+ takes a move's
//! done quantity from `stock.move.quantity` with `picked = True`; a move the notice does
//! not ship is left unpicked, so validation moves it to the backorder whole.

use super::*;

/// Identifiers of a line compared with the product's `barcode` (as GTINs).
const BARCODE_IDS: &[&str] = &["upc", "ean", "gtin"];
/// Identifiers of a line compared with the product's `default_code` (without case).
const CODE_IDS: &[&str] = &["sku", "vendor_part"];

/// The fields of a move read to set its quantity.
pub(super) const MOVE_FIELDS: &[&str] = &[
    "product_id",
    "product_uom_qty",
    "quantity",
    "picked",
    "state",
];

/// The fields of a product a line is matched on.
pub(super) const PRODUCT_FIELDS: &[&str] = &["default_code", "barcode"];

/// One line of a ship notice.
#[derive(Debug, Clone, PartialEq)]
struct NoticeLine {
    /// Position in `data.lines`, from 1.
    number: usize,
    /// (identifier name, value), in the order they are tried.
    ids: Vec<(&'static str, String)>,
    shipped: f64,
    po: Option<String>,
}

impl NoticeLine {
    /// How an operator recognises the line: its number and identifiers.
    fn label(&self) -> String {
        let ids: Vec<String> = self.ids.iter().map(|(k, v)| format!("{k} {v}")).collect();
        match ids.is_empty() {
            true => format!("line {}", self.number),
            false => format!("line {} ({})", self.number, ids.join(", ")),
        }
    }
}

/// One open move of the picking.
#[derive(Debug, Clone, PartialEq)]
struct Move {
    id: i64,
    product: i64,
    demand: f64,
    quantity: f64,
    picked: bool,
}

/// Writes on `stock.move`: the moves and the values they get.
pub(super) type MoveWrites = Vec<(Vec<i64>, Value)>;

const EPSILON: f64 = 1e-6;

fn amount(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The lines of `data.lines`; None when the event carries none.
fn notice_lines(ev: &CloudEvent) -> Result<Option<Vec<NoticeLine>>, DeliveryError> {
    let Some(items) = ev.data["lines"].as_array().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let mut lines = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let number = i + 1;
        let ids = BARCODE_IDS
            .iter()
            .chain(CODE_IDS)
            .filter_map(|k| text(&item["ids"][*k]).map(|v| (*k, v)))
            .collect();
        let Some(shipped) = amount(&item["shipped"]) else {
            return Err(DeliveryError::new(
                codes::ASN_LINE_INVALID,
                FailureKind::InvalidInput,
                format!(
                    "odoo.asn_line_invalid: line {number} of event {} has no shipped quantity (a number ≥ 0)",
                    ev.id
                ),
            ));
        };
        lines.push(NoticeLine {
            number,
            ids,
            shipped,
            po: text(&item["po"]),
        });
    }
    Ok(Some(lines))
}

/// Digits of a GTIN without leading zeros (UPC-A, EAN-13 and GTIN-14 of one product
/// agree), or the text itself when it is not all digits.
fn gtin(s: &str) -> String {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.trim_start_matches('0').to_owned()
    } else {
        s.to_owned()
    }
}

/// Whether the product answers to the identifier.
fn names(product: &Value, key: &str, value: &str) -> bool {
    if BARCODE_IDS.contains(&key) {
        product["barcode"]
            .as_str()
            .is_some_and(|b| gtin(b) == gtin(value))
    } else {
        product["default_code"]
            .as_str()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case(value))
    }
}

/// The product of the picking a line names: the first of its identifiers that names
/// exactly one.
fn product_of(line: &NoticeLine, products: &BTreeMap<i64, Value>) -> Option<i64> {
    line.ids.iter().find_map(|(k, v)| {
        let mut hits = products.iter().filter(|(_, p)| names(p, k, v));
        match (hits.next(), hits.next()) {
            (Some((id, _)), None) => Some(*id),
            _ => None,
        }
    })
}

/// The writes that make the moves carry what the lines ship: each product's shipped
/// quantity spread over its moves in id order (each up to its demand, the last one taking
/// any excess), picked; moves of products the notice does not ship unpicked.
fn plan(
    lines: &[NoticeLine],
    moves: &[Move],
    products: &BTreeMap<i64, Value>,
    po: Option<&str>,
    unmatched_lines: UnmatchedLines,
    picking: &str,
    event: &CloudEvent,
) -> Result<MoveWrites, DeliveryError> {
    let mut shipped: BTreeMap<i64, f64> = BTreeMap::new();
    let mut unmatched = Vec::new();
    for line in lines {
        let other_order = match (&line.po, po) {
            (Some(theirs), Some(ours)) => theirs != ours,
            _ => false,
        };
        match product_of(line, products).filter(|_| !other_order) {
            Some(product) => *shipped.entry(product).or_default() += line.shipped,
            None if other_order => unmatched.push(format!(
                "{} of order {}",
                line.label(),
                line.po.as_deref().unwrap_or("")
            )),
            None => unmatched.push(line.label()),
        }
    }
    if !unmatched.is_empty() && unmatched_lines == UnmatchedLines::Refuse {
        return Err(permanent(
            codes::ASN_LINE_UNMATCHED,
            format!(
                "odoo.asn_line_unmatched: picking {picking} has no move for {} (event {})",
                unmatched.join("; "),
                event.id
            ),
        ));
    }
    if shipped.values().all(|q| *q <= EPSILON) {
        return Err(permanent(
            codes::ASN_NOTHING_SHIPPED,
            format!(
                "odoo.asn_nothing_shipped: event {} ships nothing of picking {picking}",
                event.id
            ),
        ));
    }
    let mut target: Vec<(i64, Option<f64>)> = Vec::with_capacity(moves.len());
    let mut by_id: Vec<&Move> = moves.iter().collect();
    by_id.sort_by_key(|m| m.id);
    for (product, total) in &shipped {
        let mine: Vec<&&Move> = by_id.iter().filter(|m| m.product == *product).collect();
        let mut left = *total;
        for (i, m) in mine.iter().enumerate() {
            let q = if i + 1 == mine.len() {
                left
            } else {
                left.min(m.demand)
            };
            left -= q;
            target.push((m.id, (q > EPSILON).then_some(q)));
        }
    }
    for m in &by_id {
        if !shipped.contains_key(&m.product) {
            target.push((m.id, None));
        }
    }
    let mut writes: MoveWrites = Vec::new();
    let mut add = |id: i64, vals: Value| match writes.iter_mut().find(|(_, v)| *v == vals) {
        Some((ids, _)) => ids.push(id),
        None => writes.push((vec![id], vals)),
    };
    for (id, q) in target {
        let Some(m) = moves.iter().find(|m| m.id == id) else {
            continue;
        };
        match q {
            Some(q) if !(m.picked && (m.quantity - q).abs() <= EPSILON) => {
                add(id, json!({"quantity": q, "picked": true}))
            }
            None if m.picked => add(id, json!({"picked": false})),
            _ => {}
        }
    }
    for (ids, _) in &mut writes {
        ids.sort_unstable();
    }
    Ok(writes)
}

impl OdooSink {
    /// The move writes that make the open picking `p` ship what `ev`'s lines say; None
    /// when the event carries no lines (validation then takes what is reserved).
    pub(super) async fn shipped_quantities(
        &self,
        p: &Value,
        ev: &CloudEvent,
    ) -> Result<Option<MoveWrites>, DeliveryError> {
        let Some(lines) = notice_lines(ev)? else {
            return Ok(None);
        };
        let Some(pid) = p["id"].as_i64() else {
            return Ok(None);
        };
        let rows = self
            .moves
            .get(&self.client, json!(pid))
            .await
            .map_err(err)?;
        let moves: Vec<Move> = rows
            .iter()
            .filter_map(|r| {
                Some(Move {
                    id: r["id"].as_i64()?,
                    product: m2o(&r["product_id"])?,
                    demand: r["product_uom_qty"].as_f64().unwrap_or(0.0),
                    quantity: r["quantity"].as_f64().unwrap_or(0.0),
                    picked: r["picked"].as_bool().unwrap_or(false),
                })
            })
            .collect();
        let mut ids: Vec<Value> = Vec::new();
        for m in &moves {
            if !ids.contains(&json!(m.product)) {
                ids.push(json!(m.product));
            }
        }
        let products: BTreeMap<i64, Value> = self
            .products
            .get_many(&self.client, ids)
            .await
            .map_err(err)?
            .into_iter()
            .filter_map(|r| Some((r["id"].as_i64()?, r)))
            .collect();
        let po = refs_of(ev).get("po").copied();
        let name = p["name"].as_str().unwrap_or("");
        plan(
            &lines,
            &moves,
            &products,
            po,
            self.unmatched_lines,
            name,
            ev,
        )
        .map(Some)
    }

    /// Writes the quantities on the moves, in the picking's company.
    pub(super) async fn write_quantities(
        &self,
        writes: &MoveWrites,
        ctx: &Option<Value>,
    ) -> Result<(), DeliveryError> {
        for (ids, vals) in writes {
            let k = Self::ctx_kw(ctx, kw(&[("vals", vals.clone())]));
            self.client
                .call("stock.move", "write", Some(ids), k)
                .await
                .map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn event(data: Value) -> CloudEvent {
        let draft: waybill_model::EventDraft = serde_json::from_value(json!({
            "type": "shipment.dispatched", "subject": "x12:ABCD:SHIP-1", "key": "k",
            "time": "2026-03-09T06:45:00Z", "refs": {"po": "PO-1"}, "data": data
        }))
        .unwrap();
        draft
            .into_event(
                0,
                &waybill_model::draft::Origin {
                    source: "edi",
                    payload_key: "p",
                    received_at: time::OffsetDateTime::UNIX_EPOCH,
                    traceparent: None,
                },
            )
            .unwrap()
    }

    fn products() -> BTreeMap<i64, Value> {
        [
            (
                51,
                json!({"id": 51, "default_code": "ASN-W1", "barcode": "012345678905"}),
            ),
            (
                52,
                json!({"id": 52, "default_code": "ASN-G2", "barcode": "4006381333931"}),
            ),
        ]
        .into()
    }

    fn mv(id: i64, product: i64, demand: f64) -> Move {
        Move {
            id,
            product,
            demand,
            quantity: demand,
            picked: false,
        }
    }

    fn run(lines: Value, moves: &[Move], policy: UnmatchedLines) -> Result<MoveWrites, String> {
        let ev = event(json!({ "lines": lines }));
        let lines = notice_lines(&ev).unwrap().unwrap();
        plan(
            &lines,
            moves,
            &products(),
            Some("PO-1"),
            policy,
            "WH/OUT/00015",
            &ev,
        )
        .map_err(|e| e.message)
    }

    #[test]
    fn a_upc_finds_the_product_whose_barcode_is_the_same_gtin() {
        let w = run(
            json!([{"ids": {"upc": "00012345678905"}, "shipped": 6}]),
            &[mv(44, 51, 10.0)],
            UnmatchedLines::Refuse,
        )
        .unwrap();
        assert_eq!(
            w,
            vec![(vec![44], json!({"quantity": 6.0, "picked": true}))]
        );
    }

    #[test]
    fn a_sku_finds_the_product_by_its_internal_reference_without_case() {
        let w = run(
            json!([{"ids": {"sku": "asn-g2", "buyer_part": "B-77"}, "shipped": "5"}]),
            &[mv(47, 51, 10.0), mv(48, 52, 5.0)],
            UnmatchedLines::Refuse,
        )
        .unwrap();
        assert_eq!(
            w,
            vec![(vec![48], json!({"quantity": 5.0, "picked": true}))]
        );
    }

    #[test]
    fn a_product_on_two_moves_fills_them_in_order_and_the_last_takes_the_excess() {
        let w = run(
            json!([{"ids": {"sku": "ASN-W1"}, "shipped": 4}, {"ids": {"upc": "012345678905"}, "shipped": 9}]),
            &[mv(61, 51, 10.0), mv(60, 51, 2.0)],
            UnmatchedLines::Refuse,
        )
        .unwrap();
        assert_eq!(
            w,
            vec![
                (vec![60], json!({"quantity": 2.0, "picked": true})),
                (vec![61], json!({"quantity": 11.0, "picked": true}))
            ]
        );
    }

    #[test]
    fn a_move_the_notice_does_not_ship_is_unpicked() {
        let mut picked = mv(48, 52, 5.0);
        picked.picked = true;
        let w = run(
            json!([{"ids": {"sku": "ASN-W1"}, "shipped": 10}]),
            &[mv(47, 51, 10.0), picked],
            UnmatchedLines::Refuse,
        )
        .unwrap();
        assert_eq!(
            w,
            vec![
                (vec![47], json!({"quantity": 10.0, "picked": true})),
                (vec![48], json!({"picked": false}))
            ]
        );
    }

    #[test]
    fn an_unmatched_line_is_refused_naming_it_or_left_out_when_told() {
        let lines = json!([
            {"ids": {"sku": "ASN-W1"}, "shipped": 6},
            {"ids": {"upc": "999999999993", "sku": "NOPE"}, "shipped": 1},
            {"ids": {"sku": "ASN-W1"}, "shipped": 1, "po": "PO-2"}
        ]);
        let e = run(lines.clone(), &[mv(44, 51, 10.0)], UnmatchedLines::Refuse).unwrap_err();
        assert!(
            e.starts_with("odoo.asn_line_unmatched:")
                && e.contains("line 2 (upc 999999999993, sku NOPE)")
                && e.contains("; line 3 (sku ASN-W1) of order PO-2")
                && e.contains("picking WH/OUT/00015 has no move for line 2"),
            "{e}"
        );
        let w = run(lines, &[mv(44, 51, 10.0)], UnmatchedLines::Ignore).unwrap();
        assert_eq!(
            w,
            vec![(vec![44], json!({"quantity": 6.0, "picked": true}))]
        );
    }

    #[test]
    fn a_notice_shipping_nothing_is_refused() {
        let e = run(
            json!([{"ids": {"sku": "ASN-W1"}, "shipped": 0}]),
            &[mv(44, 51, 10.0)],
            UnmatchedLines::Refuse,
        )
        .unwrap_err();
        assert!(e.starts_with("odoo.asn_nothing_shipped:"), "{e}");
    }

    #[test]
    fn a_line_without_a_shipped_quantity_is_invalid_input() {
        let ev = event(json!({"lines": [{"ids": {"sku": "ASN-W1"}, "ordered": 10}]}));
        let e = notice_lines(&ev).unwrap_err();
        assert_eq!(e.kind, FailureKind::InvalidInput);
        assert!(e.message.starts_with("odoo.asn_line_invalid: line 1"));
        assert_eq!(notice_lines(&event(json!({}))).unwrap(), None);
    }

    #[test]
    fn quantities_already_there_are_not_written_again() {
        let mut done = mv(44, 51, 10.0);
        done.quantity = 6.0;
        done.picked = true;
        let w = run(
            json!([{"ids": {"sku": "ASN-W1"}, "shipped": 6}]),
            &[done],
            UnmatchedLines::Refuse,
        )
        .unwrap();
        assert!(w.is_empty());
    }
}
