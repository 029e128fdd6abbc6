//! Transaction set 210, Motor Carrier Freight Details and Invoice: typed extraction.
//!
//! Read: B3 (02 invoice number, 03 shipment id, 04 method of payment, 06 invoice date,
//! 07 net amount due, 11 SCAC), C3 (01 currency), N9 references (01 qualifier, 02 value)
//! and every L1 charge line (01 line number, 04 charge, 08 special charge or allowance
//! code, 12 description). Amounts are type N2 (implied two decimals, digits and an
//! optional leading minus only): `48250` is 482.50. Layout source: X12 004010 210
//! (<https://www.stedi.com/edi/x12-004010/210>) and kputnam/stupidedi
//! `lib/stupidedi/versions/004010/segment_defs/{B3,C3,L1,N9}.rb`.

use super::error::{ElementProblem, ErrorKind, Position, X12Error};
use super::refs::Reference;
use super::timecode;
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
    /// B3-06 invoice date, `YYYY-MM-DD`.
    pub invoice_date: Option<String>,
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
    let invoice_date = match b3.get(6) {
        None => None,
        Some(raw) => {
            let d = timecode::date(raw).ok_or_else(|| {
                b3.element_error(
                    6,
                    ElementProblem::InvalidDate,
                    format!("`{raw}` is not CCYYMMDD"),
                )
            })?;
            Some(format!(
                "{:04}-{:02}-{:02}",
                d.year(),
                u8::from(d.month()),
                d.day()
            ))
        }
    };
    let mut invoice = FreightInvoice {
        set_control: set.control_number.clone(),
        invoice_number,
        shipment_id,
        payment_method: b3.get(4).map(str::to_owned),
        invoice_date,
        total,
        scac,
        currency: None,
        references: Vec::new(),
        charges: Vec::new(),
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
