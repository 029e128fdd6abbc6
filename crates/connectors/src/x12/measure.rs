//! Quantities, weights and volumes as X12 carries them: decimal (`R`) and integer (`N0`)
//! elements, each with the code of its unit beside it; and the lading segments that
//! group them (214 AT8, 856 TD1, 210 L0 and L3, layouts from kputnam/stupidedi 004010
//! `segment_defs` and Stedi's `/segment/AT8`, `/segment/TD1` pages).
//!
//! Values are kept exactly (digits and a scale, never a float) so that `ordered − shipped`
//! is exact; they become JSON numbers only when a draft is written. Unit and qualifier
//! codes are kept as sent: weight qualifier (element 187: `G` gross, `N` net, …), weight
//! unit (element 188: `L` pounds, `K` kilograms, …), unit of measurement (element 355:
//! `EA` each, `LB` pound, `KG`, `CT` carton, …) and volume unit (element 184: `E` cubic
//! feet, `X` cubic metres, …).

use super::error::{ElementProblem, X12Error};
use super::wire::Segment;
use serde_json::{json, Map, Number, Value};
use std::fmt;

/// An exact decimal number read from an `R` or `N0` element: `units × 10^-scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    units: i64,
    scale: u32,
}

/// Largest number of digits kept (so every sum of a few values still fits an `i64`).
const MAX_DIGITS: usize = 15;

impl Quantity {
    /// Parses `-?digits[.digits]` (at least one digit, at most 15).
    pub fn parse(raw: &str) -> Option<Quantity> {
        let (negative, body) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
        let digits = whole.len() + fraction.len();
        if digits == 0
            || digits > MAX_DIGITS
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let units: i64 = format!("{whole}{fraction}").parse().ok()?;
        let scale = u32::try_from(fraction.len()).ok()?;
        Some(Quantity {
            units: if negative { -units } else { units },
            scale,
        })
    }

    /// Reads element `pos` of `seg` as a number (error names the element).
    pub fn read(seg: &Segment, pos: usize) -> Result<Option<Quantity>, X12Error> {
        match seg.get(pos) {
            None => Ok(None),
            Some(raw) => Quantity::parse(raw).map(Some).ok_or_else(|| {
                seg.element_error(
                    pos,
                    ElementProblem::InvalidCharacter,
                    format!("`{raw}` is not a number"),
                )
            }),
        }
    }

    /// Zero.
    pub fn zero() -> Quantity {
        Quantity { units: 0, scale: 0 }
    }

    fn aligned(self, other: Quantity) -> Option<(i64, i64, u32)> {
        let scale = self.scale.max(other.scale);
        let up = |q: Quantity| q.units.checked_mul(10i64.checked_pow(scale - q.scale)?);
        Some((up(self)?, up(other)?, scale))
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Quantity {
            units: a.checked_add(b)?,
            scale,
        })
    }

    /// `self − other`, `None` on overflow.
    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Quantity {
            units: a.checked_sub(b)?,
            scale,
        })
    }

    /// Whether the value is above zero.
    pub fn is_positive(self) -> bool {
        self.units > 0
    }

    /// The value as a JSON number: an integer when it has no fraction, else the nearest
    /// double (its shortest text is the decimal as sent, e.g. `31.5`).
    pub fn to_json(self) -> Value {
        let text = self.to_string();
        if let Ok(i) = text.parse::<i64>() {
            return Value::from(i);
        }
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::String(text), Value::Number)
    }
}

impl fmt::Display for Quantity {
    /// Decimal text without trailing fractional zeros, e.g. `31.5`, `-2`, `0.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let abs = self.units.unsigned_abs();
        let div = 10u64.pow(self.scale);
        let (whole, fraction) = (abs / div, abs % div);
        let width = self.scale as usize;
        let fraction = format!("{fraction:0width$}");
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            write!(f, "{sign}{whole}")
        } else {
            write!(f, "{sign}{whole}.{fraction}")
        }
    }
}

/// A weight with its unit and qualifier codes as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weight {
    /// The weight.
    pub value: Quantity,
    /// Unit code (element 188 `L`/`K`… or element 355 `LB`/`KG`…).
    pub unit: Option<String>,
    /// Weight qualifier (element 187: `G` gross, `N` net, …).
    pub qualifier: Option<String>,
}

impl Weight {
    /// `{"value", "unit", "qualifier"}` (absent codes omitted).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("value".into(), self.value.to_json());
        put(&mut m, "unit", self.unit.as_deref());
        put(&mut m, "qualifier", self.qualifier.as_deref());
        Value::Object(m)
    }
}

/// A volume with its unit code as sent (element 184 or 355).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The volume.
    pub value: Quantity,
    /// Unit code.
    pub unit: Option<String>,
}

impl Volume {
    /// `{"value", "unit"}`.
    pub fn to_json(&self) -> Value {
        json!({"value": self.value.to_json(), "unit": self.unit})
    }
}

/// What a shipment, package or invoice line carries: packaging, piece counts, weight and
/// volume, each as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lading {
    /// Packaging code (TD1-01, element 103, e.g. `CTN25`; L0-09, element 211, e.g. `CTN`).
    pub packaging: Option<String>,
    /// Lading quantity: the number of pieces (handling units not unitized, for AT8-04).
    pub pieces: Option<Quantity>,
    /// AT8-05: handling units that are unitized (on a pallet or slip sheet).
    pub unitized_pieces: Option<Quantity>,
    /// Weight.
    pub weight: Option<Weight>,
    /// Volume.
    pub volume: Option<Volume>,
}

impl Lading {
    /// 214 AT8: 01 weight qualifier, 02 weight unit, 03 weight, 04 pieces not unitized,
    /// 05 unitized pieces, 06 volume unit, 07 volume.
    pub fn from_at8(seg: &Segment) -> Result<Lading, X12Error> {
        Ok(Lading {
            packaging: None,
            pieces: Quantity::read(seg, 4)?,
            unitized_pieces: Quantity::read(seg, 5)?,
            weight: weight(seg, 3, 2, 1)?,
            volume: volume(seg, 7, 6)?,
        })
    }

    /// 856 TD1: 01 packaging code, 02 lading quantity, 06 weight qualifier, 07 weight,
    /// 08 weight unit (element 355), 09 volume, 10 volume unit.
    pub fn from_td1(seg: &Segment) -> Result<Lading, X12Error> {
        Ok(Lading {
            packaging: owned(seg, 1),
            pieces: Quantity::read(seg, 2)?,
            unitized_pieces: None,
            weight: weight(seg, 7, 8, 6)?,
            volume: volume(seg, 9, 10)?,
        })
    }

    /// 210 L0: 04 weight, 05 weight qualifier, 06 volume, 07 volume unit, 08 lading
    /// quantity, 09 packaging form, 11 weight unit.
    pub fn from_l0(seg: &Segment) -> Result<Lading, X12Error> {
        Ok(Lading {
            packaging: owned(seg, 9),
            pieces: Quantity::read(seg, 8)?,
            unitized_pieces: None,
            weight: weight(seg, 4, 11, 5)?,
            volume: volume(seg, 6, 7)?,
        })
    }

    /// 210 L3 (totals): 01 weight, 02 weight qualifier, 09 volume, 10 volume unit,
    /// 11 lading quantity, 12 weight unit.
    pub fn from_l3(seg: &Segment) -> Result<Lading, X12Error> {
        Ok(Lading {
            packaging: None,
            pieces: Quantity::read(seg, 11)?,
            unitized_pieces: None,
            weight: weight(seg, 1, 12, 2)?,
            volume: volume(seg, 9, 10)?,
        })
    }

    /// Adds `packaging`, `pieces`, `unitized_pieces`, `weight` and `volume` to `m`, each
    /// only when known.
    pub fn describe(&self, m: &mut Map<String, Value>) {
        put(m, "packaging", self.packaging.as_deref());
        if let Some(p) = self.pieces {
            m.insert("pieces".into(), p.to_json());
        }
        if let Some(p) = self.unitized_pieces {
            m.insert("unitized_pieces".into(), p.to_json());
        }
        if let Some(w) = &self.weight {
            m.insert("weight".into(), w.to_json());
        }
        if let Some(v) = &self.volume {
            m.insert("volume".into(), v.to_json());
        }
    }

    /// The fields of [`Lading::describe`] as one object.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        self.describe(&mut m);
        Value::Object(m)
    }
}

/// Reads a weight from three element positions of `seg` (`None` without a value).
pub fn weight(
    seg: &Segment,
    value: usize,
    unit: usize,
    qualifier: usize,
) -> Result<Option<Weight>, X12Error> {
    Ok(Quantity::read(seg, value)?.map(|v| Weight {
        value: v,
        unit: owned(seg, unit),
        qualifier: owned(seg, qualifier),
    }))
}

/// Reads a volume from two element positions of `seg` (`None` without a value).
pub fn volume(seg: &Segment, value: usize, unit: usize) -> Result<Option<Volume>, X12Error> {
    Ok(Quantity::read(seg, value)?.map(|v| Volume {
        value: v,
        unit: owned(seg, unit),
    }))
}

/// Element `pos` as an owned string.
pub fn owned(seg: &Segment, pos: usize) -> Option<String> {
    seg.get(pos).map(str::to_owned)
}

/// Inserts a string when present.
pub fn put(m: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        m.insert(key.to_owned(), Value::String(v.to_owned()));
    }
}
