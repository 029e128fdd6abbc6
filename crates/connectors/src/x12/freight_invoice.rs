//! Transaction set 210, Motor Carrier Freight Details and Invoice: typed extraction.
//!
//! Read: B3 (02 invoice number, 03 shipment id, 04 method of payment, 05 weight unit,
//! 06 invoice date, 07 net amount due, 09 delivery date, 11 SCAC), C3 (01 currency), N9
//! references (01 qualifier, 02 value), G62 dates (01 date qualifier, 02 date, 04 time,
//! 05 time code), N1/N4 parties (`parties.rs`), every L1 charge line (01 line number,
//! 04 charge, 08 special charge or allowance code, 12 description), the LX loops' L5
//! (02 lading description, 03 commodity code, 04 its qualifier: `N` NMFC), L0 (weight,
//! pieces, packaging: `measure.rs`; 02 billed-as quantity, 03 its qualifier) and L7
//! (07 freight class, element 59), and the L3 totals (`measure.rs`). Amounts are type N2
//! (implied two decimals, digits and an optional leading minus only): `48250` is 482.50.
//! Layout source: X12 004010 210 (<https://www.stedi.com/edi/x12-004010/210>) and
//! kputnam/stupidedi
//! `lib/stupidedi/versions/004010/segment_defs/{B3,C3,G62,L0,L1,L3,L5,L7,N1,N4,N9}.rb`.

use super::error::{ElementProblem, ErrorKind, Position, X12Error};
use super::measure::{owned, Lading, Quantity};
use super::parties::Party;
use super::refs::Reference;
use super::timecode::{self, Stamp};
use super::wire::{Segment, TransactionSet};
use std::fmt;

/// An amount in hundredths (cents) as carried by an X12 N2 element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(pub i64);

impl Amount {
    /// Parses an N2 element: optional `-`, 1–15 digits, two implied decimals.
    pub fn parse_n2(raw: &str) -> Option<Amount> {
        let (negative, digits) = match raw.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, raw),
        };
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v: i64 = digits.parse().ok()?;
        Some(Amount(if negative { -v } else { v }))
    }

    /// Reads element `pos` of `seg` as N2 (error names the element).
    pub fn read(seg: &Segment, pos: usize) -> Result<Option<Amount>, X12Error> {
        match seg.get(pos) {
            None => Ok(None),
            Some(raw) => Amount::parse_n2(raw).map(Some).ok_or_else(|| {
                seg.element_error(
                    pos,
                    ElementProblem::InvalidCharacter,
                    format!("`{raw}` is not an N2 amount (digits, implied 2 decimals)"),
                )
            }),
        }
    }
}

impl fmt::Display for Amount {
    /// Decimal string with two places, e.g. `-12.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// One 210 transaction set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreightInvoice {
    /// ST02.
    pub set_control: String,
    /// B3-02 invoice number.
    pub invoice_number: String,
    /// B3-03 shipment identification number.
    pub shipment_id: String,
    /// B3-04 shipment method of payment (`PP` prepaid, `CC` collect, `TP` third party, …).
    pub payment_method: Option<String>,
    /// B3-05 weight unit code (element 188), for weights that give none.
    pub weight_unit: Option<String>,
    /// B3-06 invoice date (a local date).
    pub invoice_date: Option<Stamp>,
    /// B3-09 delivery date (a local date).
    pub delivery_date: Option<Stamp>,
    /// B3-07 net amount due.
    pub total: Amount,
    /// B3-11 SCAC.
    pub scac: String,
    /// C3-01 currency code.
    pub currency: Option<String>,
    /// N9 references.
    pub references: Vec<Reference>,
    /// L1 lines in document order.
    pub charges: Vec<Charge>,
    /// G62 dates: (date qualifier, date) in document order.
    pub dates: Vec<(String, Stamp)>,
    /// N1 loops.
    pub parties: Vec<Party>,
    /// LX loops: what was carried, line by line.
    pub items: Vec<InvoiceItem>,
    /// L3: totals of weight, volume and pieces.
    pub totals: Option<Lading>,
    /// Where the B3 is.
    pub at: Position,
}

/// One L1 line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// L1-01 lading line item number.
    pub line: Option<String>,
    /// L1-08 special charge or allowance code (e.g. `400` freight, `FUE` fuel).
    pub code: Option<String>,
    /// L1-04 charge.
    pub amount: Option<Amount>,
    /// L1-12 special charge description.
    pub description: Option<String>,
}

/// One LX loop: L5, L0 and L7 of one lading line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvoiceItem {
    /// LX-01 assigned number.
    pub line: Option<String>,
    /// L5-02 lading description.
    pub description: Option<String>,
    /// L5-03 commodity code (the NMFC item when L5-04 is `N`).
    pub commodity: Option<String>,
    /// L5-04 commodity code qualifier.
    pub commodity_qualifier: Option<String>,
    /// L0-02 billed or rated-as quantity.
    pub billed_quantity: Option<Quantity>,
    /// L0-03 its qualifier (element 221, e.g. `FR` flat rate, `CW` chargeable weight).
    pub billed_qualifier: Option<String>,
    /// L0 weight, volume, pieces and packaging.
    pub lading: Option<Lading>,
    /// L7-07 freight class (element 59, e.g. `70`, `92.5`), as published.
    pub freight_class: Option<String>,
}

/// A B3 date element as a local date (error names the element).
fn b3_date(b3: &Segment, pos: usize) -> Result<Option<Stamp>, X12Error> {
    timecode::read(b3, pos, usize::MAX, usize::MAX)
}

/// G62: date qualifier and date (with its time and time code when given). A G62 that
/// gives only a time has no date for Waybill to keep.
fn g62(seg: &Segment) -> Result<Option<(String, Stamp)>, X12Error> {
    let Some(qualifier) = seg.get(1) else {
        return Ok(None);
    };
    if seg.get(2).is_none() {
        return Ok(None);
    }
    Ok(timecode::read(seg, 2, 4, 5)?.map(|stamp| (qualifier.to_owned(), stamp)))
}

/// Reads a 210 set.
pub fn read(set: &TransactionSet) -> Result<FreightInvoice, X12Error> {
    let body = set.body();
    let b3 = match body.first() {
        Some(s) if s.id == "B3" => s,
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
                ErrorKind::MissingSegment("B3"),
                at,
                "a 210 starts with B3",
            ));
        }
    };
    let invoice_number = b3.require(2)?.to_owned();
    let shipment_id = b3.require(3)?.to_owned();
    let total = Amount::read(b3, 7)?.ok_or_else(|| {
        b3.element_error(
            7,
            ElementProblem::Missing,
            "B307 net amount due is required",
        )
    })?;
    let scac = b3.require(11)?.to_owned();
    let invoice_date = b3_date(b3, 6)?;
    let delivery_date = b3_date(b3, 9)?;
    let mut invoice = FreightInvoice {
        set_control: set.control_number.clone(),
        invoice_number,
        shipment_id,
        payment_method: b3.get(4).map(str::to_owned),
        weight_unit: owned(b3, 5),
        invoice_date,
        delivery_date,
        total,
        scac,
        currency: None,
        references: Vec::new(),
        charges: Vec::new(),
        dates: Vec::new(),
        parties: Vec::new(),
        items: Vec::new(),
        totals: None,
        at: b3.position(None),
    };
    for seg in body.iter().skip(1) {
        match seg.id.as_str() {
            "C3" => invoice.currency = Some(seg.require(1)?.to_owned()),
            "N9" => invoice.references.extend(Reference::read(seg, 2, 1)),
            "L1" => invoice.charges.push(Charge {
                line: seg.get(1).map(str::to_owned),
                code: seg.get(8).map(str::to_owned),
                amount: Amount::read(seg, 4)?,
                description: seg.get(12).map(str::to_owned),
            }),
            "G62" => invoice.dates.extend(g62(seg)?),
            "N1" => invoice.parties.push(Party::from_n1(seg)?),
            "N4" => {
                if let Some(p) = invoice.parties.last_mut() {
                    p.add_n4(seg);
                }
            }
            "LX" => invoice.items.push(InvoiceItem {
                line: owned(seg, 1),
                ..InvoiceItem::default()
            }),
            "L5" | "L0" | "L7" => {
                if invoice.items.is_empty() {
                    invoice.items.push(InvoiceItem::default());
                }
                if let Some(item) = invoice.items.last_mut() {
                    item.read(seg)?;
                }
            }
            "L3" if invoice.totals.is_none() => invoice.totals = Some(Lading::from_l3(seg)?),
            "B3" => {
                return Err(X12Error::new(
                    ErrorKind::UnexpectedSegment,
                    seg.position(None),
                    "B3 may appear once",
                ))
            }
            _ => {}
        }
    }
    Ok(invoice)
}

impl InvoiceItem {
    /// Takes in the first L5, L0 and L7 of the loop.
    fn read(&mut self, seg: &Segment) -> Result<(), X12Error> {
        match seg.id.as_str() {
            "L5" if self.description.is_none() && self.commodity.is_none() => {
                self.description = owned(seg, 2);
                self.commodity = owned(seg, 3);
                self.commodity_qualifier = owned(seg, 4);
            }
            "L0" if self.lading.is_none() => {
                self.billed_quantity = Quantity::read(seg, 2)?;
                self.billed_qualifier = owned(seg, 3);
                self.lading = Some(Lading::from_l0(seg)?);
            }
            "L7" if self.freight_class.is_none() => self.freight_class = owned(seg, 7),
            _ => {}
        }
        Ok(())
    }
}
