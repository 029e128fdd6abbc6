//! Typed X12 → canonical event drafts (`waybill_model::EventDraft`): `status.rs` (214),
//! `ship_notice.rs` (856), `freight_invoice.rs` (210).
//!
//! Keys identify the fact, never the envelope that carried it (no ISA13, GS06 or ST02):
//! a 214 status is keyed by [`waybill_model::fact_key`], an 856's events by the notice
//! (`856:<BSN-02>:HL<id>:packed|dispatched`), a 210 by its invoice
//! (`210:<SCAC>:<B3-02>`). So a document re-sent in a new interchange, or received once
//! over HTTP and once as a dropped file, adds no event.

mod freight_invoice;
mod ship_notice;
mod status;

use super::error::{ElementProblem, ErrorKind, Position, X12Error};
use super::freight_invoice as invoice_reader;
use super::local_time::Placed;
use super::ship_notice as notice_reader;
use super::status as status_reader;
use super::timecode::Stamp;
use super::wire::{FunctionalGroup, Interchange, TransactionSet};
use serde_json::{json, Value};
use time::{OffsetDateTime, UtcOffset};
use waybill_model::{EventDraft, EventType, ShipmentKey};

/// The shipment key (CloudEvents `subject`) of an X12 shipment: `x12:<SCAC>:<shipment id>`.
///
/// The shipment id is the shipper's shipment identification number, the one number the
/// three sets share: 214 B10-02, 856 BSN-02, 210 B3-03; the SCAC (upper-cased) scopes it
/// to one carrier (214 B10-03, 856 TD5-03, 210 B3-11). Both are trimmed; `%`, `/`, `:` and
/// control characters are percent-encoded so a key never contains a path separator and
/// always splits back into its three parts.
pub fn shipment_key(scac: &str, shipment_id: &str) -> String {
    fn escape(s: &str, out: &mut String) {
        for c in s.chars() {
            if c == '%' || c == '/' || c == ':' || c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            } else {
                out.push(c);
            }
        }
    }
    let mut key = String::from("x12:");
    escape(&scac.trim().to_ascii_uppercase(), &mut key);
    key.push(':');
    escape(shipment_id.trim(), &mut key);
    key
}

/// [`shipment_key`], checked against [`ShipmentKey::parse`] (error names `at`).
fn subject(scac: &str, shipment_id: &str, at: Position) -> Result<String, X12Error> {
    let key = shipment_key(scac, shipment_id);
    ShipmentKey::parse(&key)
        .map_err(|m| X12Error::new(ErrorKind::BadElement(ElementProblem::TooLong), at, m))?;
    Ok(key)
}

/// Maps every supported transaction set of an interchange to drafts, in document order.
/// All or nothing: the first set that cannot be mapped fails the whole interchange.
/// `local_offset` is the source's `local_time_offset` (see `local_time.rs`).
pub fn map(
    ic: &Interchange,
    received_at: OffsetDateTime,
    local_offset: Option<UtcOffset>,
) -> Result<Vec<EventDraft>, X12Error> {
    let mut out = Vec::new();
    for group in &ic.groups {
        for set in &group.sets {
            out.extend(map_set(ic, group, set, received_at, local_offset)?);
        }
    }
    Ok(out)
}

/// Maps one transaction set (also used to validate sets one by one for the 997).
pub(crate) fn map_set(
    ic: &Interchange,
    group: &FunctionalGroup,
    set: &TransactionSet,
    received_at: OffsetDateTime,
    local_offset: Option<UtcOffset>,
) -> Result<Vec<EventDraft>, X12Error> {
    let ctx = Ctx {
        received: received_at,
        local_offset,
        x12: json!({
            "interchange": ic.control_number(),
            "group": group.control_number(),
            "set": set.control_number,
        }),
    };
    match set.id.as_str() {
        "214" => ctx.status(&status_reader::read(set)?),
        "856" => ctx.ship_notice(&notice_reader::read(set)?),
        "210" => ctx
            .freight_invoice(&invoice_reader::read(set)?)
            .map(|d| vec![d]),
        // Acknowledgments carry no shipment facts.
        "997" | "999" => Ok(Vec::new()),
        other => {
            let at = set.segments.first().map(|s| s.position(Some(1)));
            Err(X12Error::new(
                ErrorKind::UnsupportedSet,
                at.unwrap_or_else(|| ic.header.position(None)),
                format!("transaction set {other} is not mapped (214, 856, 210, 997 are)"),
            ))
        }
    }
}

/// What every set's mapping needs besides the document.
struct Ctx {
    received: OffsetDateTime,
    local_offset: Option<UtcOffset>,
    /// `data.x12`: the control numbers of the envelope (kept as data, never in a key).
    x12: Value,
}

impl Ctx {
    /// Places a stamp (see `local_time.rs`); an error names `at` when the result cannot
    /// be written as RFC 3339.
    fn place(&self, stamp: &Stamp, at: Position) -> Result<Placed, X12Error> {
        Placed::new(stamp, self.local_offset, self.received).ok_or_else(|| {
            X12Error::new(
                ErrorKind::BadElement(ElementProblem::InvalidDate),
                at,
                "date out of range",
            )
        })
    }

    /// The receipt time as RFC 3339 (UTC).
    fn received_text(&self) -> String {
        waybill_model::utc_text(self.received)
    }
}

fn draft(ty: EventType, subject: String, key: String, time: Option<String>) -> EventDraft {
    EventDraft {
        ty: ty.as_str().to_owned(),
        subject,
        time,
        key: Some(key),
        reason: None,
        code: None,
        text: None,
        location: None,
        refs: Default::default(),
        data: None,
        correlationid: None,
        causationid: None,
        tenant: None,
        dataclassification: None,
        key_scope: waybill_model::KeyScope::Shared,
    }
}
