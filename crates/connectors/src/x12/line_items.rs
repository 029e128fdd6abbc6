//! 856 item detail: what one HL level (usually an item level, `I`) says was shipped.
//!
//! Read: LIN (01 line number, then up to fifteen pairs of product id qualifier, element
//! 235, and product id, element 234), SN1 (01 line number, 02 units shipped, 03 their
//! unit, 04 quantity shipped to date, 05 quantity ordered, 06 its unit, 08 line item
//! status code), PO4 (01 pack: inner units per outer pack, 02 size, 03 its unit,
//! 04 packaging code) and PID (05 description). Layout: kputnam/stupidedi 004010
//! `segment_defs/{LIN,SN1,PO4,PID}.rb` (element order; its PO4 stops at 03, 04 is the
//! packaging code of the published 004010 PO4) and Stedi's 856 pages.

use super::error::X12Error;
use super::measure::{owned, put, Quantity};
use super::refs::{Reference, Refs};
use super::wire::Segment;
use serde_json::{Map, Value};

/// What one level says about an item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineItem {
    /// LIN-01 (or SN1-01) line number.
    pub line: Option<String>,
    /// LIN product ids (qualifier, id) in order.
    pub ids: Vec<Reference>,
    /// SN1-02 number of units shipped.
    pub shipped: Option<Quantity>,
    /// SN1-03 their unit (element 355, e.g. `EA`).
    pub unit: Option<String>,
    /// SN1-04 quantity shipped to date.
    pub shipped_to_date: Option<Quantity>,
    /// SN1-05 quantity ordered.
    pub ordered: Option<Quantity>,
    /// SN1-06 its unit.
    pub ordered_unit: Option<String>,
    /// SN1-08 line item status code (element 668) as sent.
    pub status: Option<String>,
    /// PO4 pack.
    pub pack: Option<Pack>,
    /// PID-05 descriptions in order.
    pub descriptions: Vec<String>,
}

/// PO4: how the item is packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pack {
    /// PO4-01 inner units per outer pack.
    pub pack: Option<Quantity>,
    /// PO4-02 size of each unit.
    pub size: Option<Quantity>,
    /// PO4-03 unit of the size.
    pub unit: Option<String>,
    /// PO4-04 packaging code.
    pub packaging: Option<String>,
}

/// The `ids` name of a LIN product id qualifier: `UP` → `upc`, `UK` → `gtin`, `EN` →
/// `ean`, `VN` (vendor's item number) → `sku`, `VP` → `vendor_part`, `BP` →
/// `buyer_part`, `IN` → `buyer_item`, `MG` → `manufacturer_part`, `SN` → `serial`, `LT` →
/// `lot`, `PL` → `po_line`; any other `id_<qualifier>`. `PO` is the line's `po`, not an id.
pub fn id_name(qualifier: &str) -> String {
    match qualifier {
        "UP" => "upc".into(),
        "UK" => "gtin".into(),
        "EN" => "ean".into(),
        "VN" => "sku".into(),
        "VP" => "vendor_part".into(),
        "BP" => "buyer_part".into(),
        "IN" => "buyer_item".into(),
        "MG" => "manufacturer_part".into(),
        "SN" => "serial".into(),
        "LT" => "lot".into(),
        "PL" => "po_line".into(),
        q => format!("id_{}", q.to_ascii_lowercase()),
    }
}

impl LineItem {
    /// Takes in an item segment (LIN, SN1, PO4, PID); `false` for any other segment.
    pub fn read(&mut self, seg: &Segment) -> Result<bool, X12Error> {
        match seg.id.as_str() {
            "LIN" => {
                self.line = owned(seg, 1).or(self.line.take());
                let mut pos = 2;
                while pos < seg.elements.len() + 1 {
                    if let Some(r) = Reference::read(seg, pos + 1, pos) {
                        self.ids.push(r);
                    }
                    pos += 2;
                }
            }
            "SN1" => {
                self.line = self.line.take().or(owned(seg, 1));
                self.shipped = Quantity::read(seg, 2)?;
                self.unit = owned(seg, 3);
                self.shipped_to_date = Quantity::read(seg, 4)?;
                self.ordered = Quantity::read(seg, 5)?;
                self.ordered_unit = owned(seg, 6);
                self.status = owned(seg, 8);
            }
            "PO4" => {
                self.pack = Some(Pack {
                    pack: Quantity::read(seg, 1)?,
                    size: Quantity::read(seg, 2)?,
                    unit: owned(seg, 3),
                    packaging: owned(seg, 4),
                })
            }
            "PID" => self.descriptions.extend(owned(seg, 5)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The purchase order a LIN `PO` id names.
    pub fn po(&self) -> Option<&str> {
        self.ids
            .iter()
            .find(|r| r.qualifier == "PO")
            .map(|r| r.value.as_str())
    }

    /// Whether the ordered quantity is counted in the shipped unit (SN1-06 absent or the
    /// same as SN1-03).
    fn same_unit(&self) -> bool {
        self.ordered_unit.is_none() || self.ordered_unit == self.unit
    }

    /// Ordered − shipped when both are known in the same unit, never below zero.
    pub fn backordered(&self) -> Option<Quantity> {
        let (ordered, shipped) = (self.ordered?, self.shipped?);
        if !self.same_unit() {
            return None;
        }
        let rest = ordered.checked_sub(shipped)?;
        Some(if rest.is_positive() {
            rest
        } else {
            Quantity::zero()
        })
    }

    /// The line as `data.lines` lists it (absent fields omitted).
    pub fn to_json(&self, hl: &str, parent: Option<&str>, po: Option<&str>) -> Value {
        let mut m = Map::new();
        m.insert("hl".into(), hl.into());
        put(&mut m, "parent", parent);
        put(&mut m, "line", self.line.as_deref());
        let mut ids = Refs::default();
        for r in self.ids.iter().filter(|r| r.qualifier != "PO") {
            ids.add(&id_name(&r.qualifier), &r.value);
        }
        if !ids.0.is_empty() {
            m.insert(
                "ids".into(),
                serde_json::to_value(&ids.0).unwrap_or_default(),
            );
        }
        put(&mut m, "po", self.po().or(po));
        let mut number = |key: &str, q: Option<Quantity>| {
            if let Some(q) = q {
                m.insert(key.to_owned(), q.to_json());
            }
        };
        number("shipped", self.shipped);
        number("ordered", self.ordered);
        number("backordered", self.backordered());
        number("shipped_to_date", self.shipped_to_date);
        put(&mut m, "unit", self.unit.as_deref());
        if !self.same_unit() {
            put(&mut m, "ordered_unit", self.ordered_unit.as_deref());
        }
        put(&mut m, "status", self.status.as_deref());
        if let Some(p) = &self.pack {
            let mut pack = Map::new();
            if let Some(q) = p.pack {
                pack.insert("pack".into(), q.to_json());
            }
            if let Some(q) = p.size {
                pack.insert("size".into(), q.to_json());
            }
            put(&mut pack, "unit", p.unit.as_deref());
            put(&mut pack, "packaging", p.packaging.as_deref());
            m.insert("pack".into(), Value::Object(pack));
        }
        if !self.descriptions.is_empty() {
            m.insert("description".into(), self.descriptions.join("; ").into());
        }
        Value::Object(m)
    }
}

/// Sums of the lines' quantities for one shipment (`data.totals`), and whether anything
/// is backordered (`data.partial`). Quantities are added whatever their unit; `unit` is
/// given only when every line counts in the same one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Totals {
    shipped: Option<Quantity>,
    ordered: Option<Quantity>,
    backordered: Option<Quantity>,
    units: Vec<String>,
}

fn add(sum: &mut Option<Quantity>, q: Option<Quantity>) {
    if let Some(q) = q {
        *sum = Some(match *sum {
            Some(s) => s.checked_add(q).unwrap_or(s),
            None => q,
        });
    }
}

impl Totals {
    /// Sums `items`.
    pub fn of<'a>(items: impl IntoIterator<Item = &'a LineItem>) -> Totals {
        let mut t = Totals::default();
        for i in items {
            add(&mut t.shipped, i.shipped);
            add(&mut t.ordered, i.ordered);
            add(&mut t.backordered, i.backordered());
            for u in [&i.unit, &i.ordered_unit].into_iter().flatten() {
                if !t.units.contains(u) {
                    t.units.push(u.clone());
                }
            }
        }
        t
    }

    /// Whether some line is short of its order.
    pub fn partial(&self) -> bool {
        self.backordered.is_some_and(Quantity::is_positive)
    }

    /// `{shipped_units, ordered_units, backordered_units}` (each when some line has it);
    /// `None` when no line has a quantity.
    pub fn to_json(&self) -> Option<Value> {
        let mut m = Map::new();
        for (key, q) in [
            ("shipped_units", self.shipped),
            ("ordered_units", self.ordered),
            ("backordered_units", self.backordered),
        ] {
            if let Some(q) = q {
                m.insert(key.into(), q.to_json());
            }
        }
        if m.is_empty() {
            return None;
        }
        if let [unit] = self.units.as_slice() {
            m.insert("unit".into(), unit.clone().into());
        }
        Some(Value::Object(m))
    }
}
