//! Transaction set 856, Ship Notice/Manifest: typed extraction.
//!
//! Read: BSN (01 purpose, 02 shipment id, 03 date, 04 time), DTM (01 qualifier, 02 date,
//! 03 time, 04 time code), and the HL hierarchy (01 id, 02 parent id, 03 level:
//! `S` shipment, `O` order, `T` tare, `P` pack, `I` item) with, per level, TD1
//! (packaging, lading quantity, weight, volume: see `measure.rs`), TD5 (02 id qualifier,
//! 03 id: SCAC when 02 is `2`, 04 transportation method, 05 routing, 12 service level),
//! REF (01 qualifier, 02 value), MAN (01 qualifier, 02 marks: `GM` = SSCC-18 with its
//! application identifier, `CP` = carrier-assigned package id), MEA (01 reference, 02
//! qualifier: `LN`/`WD`/`HT` length/width/height…, 03 value, 04 unit), PRF (01 PO number),
//! N1/N4 parties (`parties.rs`) and the item segments LIN/SN1/PO4/PID (`line_items.rs`).
//! Parents must appear before their children; ids must be unique. Layout source: X12
//! 004010 856 (<https://www.stedi.com/edi/x12-004010/856>, `/segment/TD1`, `/segment/TD5`)
//! and kputnam/stupidedi
//! `lib/stupidedi/versions/004010/segment_defs/{BSN,HL,TD1,TD5,MAN,MEA,PRF,REF}.rb`.

use super::error::{ElementProblem, ErrorKind, Position, X12Error};
use super::line_items::LineItem;
use super::measure::{owned, Lading, Quantity};
use super::parties::Party;
use super::refs::Reference;
use super::timecode::{self, Stamp};
use super::wire::{Segment, TransactionSet};
use std::collections::HashMap;

/// One 856 transaction set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipNotice {
    /// ST02.
    pub set_control: String,
    /// BSN-01 transaction set purpose (`00` original, `01` cancellation, `04` change, `05` replace).
    pub purpose: String,
    /// BSN-02 shipment identification.
    pub shipment_id: String,
    /// BSN-03/04: when the notice was created (no zone: local).
    pub created: Option<Stamp>,
    /// A DTM before the first HL with qualifier `011` (shipped).
    pub shipped: Option<Stamp>,
    /// The HL levels in document order.
    pub levels: Vec<Level>,
    /// Where the BSN is.
    pub at: Position,
}

/// One HL level and what belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// HL-01 id.
    pub id: String,
    /// HL-02 parent id.
    pub parent: Option<String>,
    /// Index in [`ShipNotice::levels`] of the parent level.
    pub parent_index: Option<usize>,
    /// Index in [`ShipNotice::levels`] of the shipment level (`S`) this level is in:
    /// itself for a shipment level, its parent's for the others.
    pub shipment: Option<usize>,
    /// HL-03 level code.
    pub code: String,
    /// TD5-03 of the first TD5 whose TD5-02 is `2` (SCAC).
    pub scac: Option<String>,
    /// The first TD5: carrier and routing.
    pub carrier: Option<Carrier>,
    /// DTM `011` (shipped) inside this level.
    pub shipped: Option<Stamp>,
    /// REF references.
    pub references: Vec<Reference>,
    /// MAN marks (qualifier, value).
    pub marks: Vec<Reference>,
    /// PRF-01 purchase order numbers.
    pub po_numbers: Vec<String>,
    /// Every TD1: packaging, lading quantity, weight, volume.
    pub lading: Vec<Lading>,
    /// MEA measurements.
    pub measurements: Vec<Measurement>,
    /// N1 loops.
    pub parties: Vec<Party>,
    /// LIN/SN1/PO4/PID: the item this level describes.
    pub item: Option<LineItem>,
    /// Where the HL is.
    pub at: Position,
}

/// TD5: who carries the shipment, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carrier {
    /// TD5-03 when TD5-02 is `2`.
    pub scac: Option<String>,
    /// TD5-04 transportation method/type code (element 91: `M` motor, `A` air, …).
    pub method: Option<String>,
    /// TD5-05 routing (free text, often the carrier's name).
    pub routing: Option<String>,
    /// TD5-12 service level code (element 284).
    pub service_level: Option<String>,
}

/// MEA: one measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurement {
    /// MEA-01 measurement reference id code (element 737, e.g. `PD` physical dimensions).
    pub reference: Option<String>,
    /// MEA-02 measurement qualifier (element 738: `LN` length, `WD` width, `HT` height,
    /// `G` gross weight, `VOL` volume, …).
    pub qualifier: Option<String>,
    /// MEA-03 value.
    pub value: Option<Quantity>,
    /// MEA-04's first component: the unit (element 355).
    pub unit: Option<String>,
}

impl Level {
    /// The SSCC-18 from a `MAN*GM` mark, without the `00` application identifier.
    pub fn sscc(&self) -> Option<&str> {
        self.marks.iter().find(|m| m.qualifier == "GM").map(|m| {
            let v = m.value.as_str();
            match v.strip_prefix("00") {
                Some(rest) if v.len() == 20 => rest,
                _ => v,
            }
        })
    }

    /// Tracking numbers: REF `2I`/`CN` values and `MAN*CP` carrier package ids.
    pub fn tracking(&self) -> Vec<&str> {
        let refs = self
            .references
            .iter()
            .filter(|r| r.qualifier == "2I" || r.qualifier == "CN");
        let marks = self.marks.iter().filter(|m| m.qualifier == "CP");
        let mut out: Vec<&str> = refs.chain(marks).map(|r| r.value.as_str()).collect();
        out.dedup();
        out
    }
}

fn shipped(seg: &Segment) -> Result<Option<Stamp>, X12Error> {
    if seg.get(1) != Some("011") {
        return Ok(None);
    }
    timecode::read(seg, 2, 3, 4)
}

fn hl(seg: &Segment, levels: &[Level], ids: &HashMap<String, usize>) -> Result<Level, X12Error> {
    let id = seg.require(1)?.to_owned();
    if ids.contains_key(&id) {
        return Err(seg.element_error(
            1,
            ElementProblem::InvalidCode,
            format!("HL id `{id}` is used twice"),
        ));
    }
    let parent = seg.get(2).map(str::to_owned);
    let mut shipment = None;
    if let Some(p) = &parent {
        let Some(&index) = ids.get(p) else {
            return Err(seg.element_error(
                2,
                ElementProblem::InvalidCode,
                format!("parent HL `{p}` is not an earlier level"),
            ));
        };
        shipment = levels.get(index).and_then(|l| l.shipment);
    }
    let code = seg.require(3)?;
    if code == "S" {
        shipment = Some(levels.len());
    }
    if code.len() > 2 {
        return Err(seg.element_error(
            3,
            ElementProblem::InvalidCode,
            format!("`{code}` is not a level code"),
        ));
    }
    Ok(Level {
        id,
        parent_index: parent.as_ref().and_then(|p| ids.get(p).copied()),
        parent,
        shipment,
        code: code.to_owned(),
        scac: None,
        carrier: None,
        shipped: None,
        references: Vec::new(),
        marks: Vec::new(),
        po_numbers: Vec::new(),
        lading: Vec::new(),
        measurements: Vec::new(),
        parties: Vec::new(),
        item: None,
        at: seg.position(None),
    })
}

/// Reads an 856 set.
pub fn read(set: &TransactionSet) -> Result<ShipNotice, X12Error> {
    let body = set.body();
    let bsn = match body.first() {
        Some(s) if s.id == "BSN" => s,
        other => {
            let at = other
                .or(set.trailer())
                .map(|s| s.position(None))
                .unwrap_or(Position {
                    segment_index: 0,
                    segment_id: String::new(),
                    byte_offset: 0,
                    element: None,
                });
            return Err(X12Error::new(
                ErrorKind::MissingSegment("BSN"),
                at,
                "an 856 starts with BSN",
            ));
        }
    };
    let purpose = bsn.require(1)?.to_owned();
    let shipment_id = bsn.require(2)?.to_owned();
    // BSN has no time code element: position 99 is always absent, so the time is local.
    let created = timecode::read(bsn, 3, 4, 99)?;
    let mut notice = ShipNotice {
        set_control: set.control_number.clone(),
        purpose,
        shipment_id,
        created,
        shipped: None,
        levels: Vec::new(),
        at: bsn.position(None),
    };
    let mut ids = HashMap::new();
    for seg in body.iter().skip(1) {
        if seg.id == "HL" {
            let level = hl(seg, &notice.levels, &ids)?;
            ids.insert(level.id.clone(), notice.levels.len());
            notice.levels.push(level);
            continue;
        }
        let Some(level) = notice.levels.last_mut() else {
            if seg.id == "DTM" && notice.shipped.is_none() {
                notice.shipped = shipped(seg)?;
            }
            continue;
        };
        match seg.id.as_str() {
            "DTM" if level.shipped.is_none() => level.shipped = shipped(seg)?,
            "TD5" => {
                let scac = owned(seg, 3).filter(|_| seg.get(2) == Some("2"));
                if level.scac.is_none() {
                    level.scac.clone_from(&scac);
                }
                if level.carrier.is_none() {
                    level.carrier = Some(Carrier {
                        scac,
                        method: owned(seg, 4),
                        routing: owned(seg, 5),
                        service_level: owned(seg, 12),
                    });
                }
            }
            "TD1" => level.lading.push(Lading::from_td1(seg)?),
            "MEA" => level.measurements.push(Measurement {
                reference: owned(seg, 1),
                qualifier: owned(seg, 2),
                value: Quantity::read(seg, 3)?,
                unit: seg.get(4).and_then(first_component),
            }),
            "N1" => level.parties.push(Party::from_n1(seg)?),
            "N4" => {
                if let Some(p) = level.parties.last_mut() {
                    p.add_n4(seg);
                }
            }
            "LIN" | "SN1" | "PO4" | "PID" => {
                level.item.get_or_insert_with(LineItem::default).read(seg)?;
            }
            "REF" => level.references.extend(Reference::read(seg, 2, 1)),
            "MAN" => level.marks.extend(Reference::read(seg, 2, 1)),
            "PRF" => level.po_numbers.push(seg.require(1)?.to_owned()),
            "BSN" => {
                return Err(X12Error::new(
                    ErrorKind::UnexpectedSegment,
                    seg.position(None),
                    "BSN may appear once",
                ))
            }
            _ => {}
        }
    }
    if !notice.levels.iter().any(|l| l.code == "S") {
        let at = set
            .trailer()
            .map(|s| s.position(None))
            .unwrap_or(bsn.position(None));
        return Err(X12Error::new(
            ErrorKind::MissingSegment("HL"),
            at,
            "an 856 needs a shipment level (HL*…*S)",
        ));
    }
    Ok(notice)
}

impl ShipNotice {
    /// The shipment level (`S`) `level` belongs to.
    pub fn shipment_of(&self, level: &Level) -> Option<&Level> {
        self.levels.get(level.shipment?)
    }

    /// The first PRF purchase order of `level` or of its nearest ancestor that has one.
    pub fn po_of<'a>(&'a self, level: &'a Level) -> Option<&'a str> {
        let mut at = Some(level);
        // Parents come before their children, so the walk ends within `levels.len()` steps.
        for _ in 0..=self.levels.len() {
            let l = at?;
            if let Some(po) = l.po_numbers.first() {
                return Some(po);
            }
            at = l.parent_index.and_then(|i| self.levels.get(i));
        }
        None
    }
}

/// The first component of a composite element: its leading letters and digits (the
/// component separator is not kept with the segment; unit codes are alphanumeric).
fn first_component(raw: &str) -> Option<String> {
    let end = raw
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(raw.len());
    raw.get(..end).filter(|s| !s.is_empty()).map(str::to_owned)
}
