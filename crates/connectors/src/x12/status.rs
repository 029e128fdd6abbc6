//! Transaction set 214, Transportation Carrier Shipment Status Message: typed extraction.
//!
//! Read: B10 (01 carrier reference/PRO, 02 shipper's shipment id, 03 SCAC), header L11
//! references, and each LX loop: its AT7 status details (01 status, 02 status reason,
//! 03 appointment status, 04 appointment reason, 05 date, 06 time, 07 time code), each
//! followed by MS1 (city, state, country) and MS2 (equipment owner SCAC, number, type),
//! and the loop's own L11 references and AT8 (01 weight qualifier, 02 weight unit,
//! 03 weight, 04 lading quantity of handling units not unitized — the piece count —,
//! 05 lading quantity of unitized handling units, 06 volume unit, 07 volume); an AT8
//! before the first LX is the shipment's. Other segments (N1 loops, MS3, K1, Q7, …) are
//! skipped. Source of the layout: X12 004010 214 as published by Stedi
//! (<https://www.stedi.com/edi/x12-004010/214>, `/segment/AT8`) and the segment
//! definitions in kputnam/stupidedi
//! (`lib/stupidedi/versions/004010/segment_defs/{B10,AT7,AT8,MS1,MS2,L11}.rb`).

use super::error::{ElementProblem, ErrorKind, Position, X12Error};
use super::measure::Lading;
use super::refs::Reference;
use super::timecode::{self, Stamp};
use super::wire::{Segment, TransactionSet};

/// One 214 transaction set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentStatus {
    /// ST02.
    pub set_control: String,
    /// B10-01, the carrier's reference number (its PRO/invoice number).
    pub carrier_reference: Option<String>,
    /// B10-02, the shipper's shipment identification number.
    pub shipment_id: String,
    /// B10-03, the carrier's SCAC.
    pub scac: String,
    /// L11 references before the first LX.
    pub references: Vec<Reference>,
    /// The first AT8 before the first LX: the shipment's weight and pieces.
    pub lading: Option<Lading>,
    /// Every AT7 in document order.
    pub statuses: Vec<StatusDetail>,
    /// Where the B10 is.
    pub at: Position,
}

/// One AT7 status detail with what qualifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusDetail {
    /// 1-based position of its LX loop in the set.
    pub lx: usize,
    /// LX-01 as sent.
    pub lx_number: Option<String>,
    /// 1-based position of this AT7 within its LX loop.
    pub seq: usize,
    /// AT7-01 shipment status code.
    pub status: Option<String>,
    /// AT7-02 shipment status or appointment reason code.
    pub reason: Option<String>,
    /// AT7-03 shipment appointment status code.
    pub appointment: Option<String>,
    /// AT7-04 appointment reason code.
    pub appointment_reason: Option<String>,
    /// AT7-07 time code as sent.
    pub time_code: Option<String>,
    /// AT7-05/06/07: date, time and zone as given.
    pub time: Option<Stamp>,
    /// MS1 location.
    pub location: Option<StatusLocation>,
    /// MS2 equipment.
    pub equipment: Option<Equipment>,
    /// L11 references of the LX loop.
    pub references: Vec<Reference>,
    /// The first AT8 of the LX loop (weight, pieces, volume of what this status is about).
    pub lading: Option<Lading>,
    /// Where the AT7 is.
    pub at: Position,
}

/// MS1: where the status happened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusLocation {
    /// MS1-01 city.
    pub city: Option<String>,
    /// MS1-02 state or province code.
    pub state: Option<String>,
    /// MS1-03 country code.
    pub country: Option<String>,
}

/// MS2: the equipment (trailer, container) carrying the shipment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Equipment {
    /// MS2-01 SCAC of the equipment owner.
    pub scac: Option<String>,
    /// MS2-02 equipment number.
    pub number: Option<String>,
    /// MS2-03 equipment description code (e.g. `TL` trailer).
    pub kind: Option<String>,
}

fn owned(seg: &Segment, pos: usize) -> Option<String> {
    seg.get(pos).map(str::to_owned)
}

fn code(seg: &Segment, pos: usize) -> Result<Option<String>, X12Error> {
    match seg.get(pos) {
        Some(c) if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphanumeric()) => Err(seg
            .element_error(
                pos,
                ElementProblem::InvalidCode,
                format!("`{c}` is not a 2-character code"),
            )),
        other => Ok(other.map(str::to_owned)),
    }
}

fn at7(
    seg: &Segment,
    lx: usize,
    lx_number: Option<String>,
    seq: usize,
) -> Result<StatusDetail, X12Error> {
    let status = code(seg, 1)?;
    let appointment = code(seg, 3)?;
    if status.is_none() && appointment.is_none() {
        return Err(seg.element_error(1, ElementProblem::Missing, "AT7 needs AT701 or AT703"));
    }
    let time = timecode::read(seg, 5, 6, 7)?;
    Ok(StatusDetail {
        lx,
        lx_number,
        seq,
        status,
        reason: code(seg, 2)?,
        appointment,
        appointment_reason: code(seg, 4)?,
        time_code: owned(seg, 7),
        time,
        location: None,
        equipment: None,
        references: Vec::new(),
        lading: None,
        at: seg.position(None),
    })
}

/// An LX loop being read.
struct Loop {
    index: usize,
    number: Option<String>,
    statuses: Vec<StatusDetail>,
    references: Vec<Reference>,
    lading: Option<Lading>,
}

impl Loop {
    fn finish(self, out: &mut Vec<StatusDetail>) {
        for mut s in self.statuses {
            s.references = self.references.clone();
            s.lading = self.lading.clone();
            out.push(s);
        }
    }
}

/// Reads a 214 set.
pub fn read(set: &TransactionSet) -> Result<ShipmentStatus, X12Error> {
    let body = set.body();
    let b10 = match body.first() {
        Some(s) if s.id == "B10" => s,
        other => {
            let at = other.or(set.trailer()).map(|s| s.position(None));
            return Err(X12Error::new(
                ErrorKind::MissingSegment("B10"),
                at.unwrap_or_else(|| set_start(set)),
                "a 214 starts with B10",
            ));
        }
    };
    let scac = b10.require(3)?.to_owned();
    let shipment_id = b10.require(2)?.to_owned();
    let mut references = Vec::new();
    let mut lading = None;
    let mut statuses = Vec::new();
    let mut current: Option<Loop> = None;
    let mut lx_count = 0;
    for seg in body.iter().skip(1) {
        match seg.id.as_str() {
            "LX" => {
                if let Some(done) = current.take() {
                    done.finish(&mut statuses);
                }
                lx_count += 1;
                current = Some(Loop {
                    index: lx_count,
                    number: owned(seg, 1),
                    statuses: Vec::new(),
                    references: Vec::new(),
                    lading: None,
                });
            }
            "AT7" => {
                let Some(lx) = current.as_mut() else {
                    return Err(X12Error::new(
                        ErrorKind::UnexpectedSegment,
                        seg.position(None),
                        "AT7 belongs in an LX loop",
                    ));
                };
                let seq = lx.statuses.len() + 1;
                lx.statuses
                    .push(at7(seg, lx.index, lx.number.clone(), seq)?);
            }
            "MS1" | "MS2" => {
                let Some(last) = current.as_mut().and_then(|lx| lx.statuses.last_mut()) else {
                    return Err(X12Error::new(
                        ErrorKind::UnexpectedSegment,
                        seg.position(None),
                        format!("{} must follow an AT7", seg.id),
                    ));
                };
                if seg.id == "MS1" {
                    last.location = Some(StatusLocation {
                        city: owned(seg, 1),
                        state: owned(seg, 2),
                        country: owned(seg, 3),
                    });
                } else {
                    last.equipment = Some(Equipment {
                        scac: owned(seg, 1),
                        number: owned(seg, 2),
                        kind: owned(seg, 3),
                    });
                }
            }
            "L11" => {
                let r = Reference::read(seg, 1, 2);
                match current.as_mut() {
                    Some(lx) => lx.references.extend(r),
                    None => references.extend(r),
                }
            }
            "AT8" => {
                let read = Lading::from_at8(seg)?;
                let slot = match current.as_mut() {
                    Some(lx) => &mut lx.lading,
                    None => &mut lading,
                };
                if slot.is_none() {
                    *slot = Some(read);
                }
            }
            "B10" => {
                return Err(X12Error::new(
                    ErrorKind::UnexpectedSegment,
                    seg.position(None),
                    "B10 may appear once",
                ))
            }
            _ => {}
        }
    }
    if let Some(done) = current.take() {
        done.finish(&mut statuses);
    }
    Ok(ShipmentStatus {
        set_control: set.control_number.clone(),
        carrier_reference: owned(b10, 1),
        shipment_id,
        scac,
        references,
        lading,
        statuses,
        at: b10.position(None),
    })
}

fn set_start(set: &TransactionSet) -> Position {
    set.segments
        .first()
        .map(|s| s.position(None))
        .unwrap_or(Position {
            segment_index: 0,
            segment_id: String::new(),
            byte_offset: 0,
            element: None,
        })
}
