//! ASC X12 EDI: shipment status (214), ship notices (856) and freight invoices (210) in,
//! 997 functional acknowledgments and, when asked for (ISA14 = `1`), TA1 interchange
//! acknowledgments out.
//!
//! # What X12 is
//! ASC X12 is the North American EDI standard. A file is an *interchange*: a fixed-width
//! `ISA` header (106 bytes: it declares the delimiters), one or more *functional groups*
//! (`GS` … `GE`), each holding one or more *transaction sets* (`ST` … `SE`), and an `IEA`
//! trailer. Segments are made of elements separated by the element separator (the byte
//! after `ISA`), composite elements of components separated by ISA16, and segments end
//! with the byte after ISA16. From version 00402 on, ISA11 is the repetition separator
//! (before, it is the standards identifier `U`). Every trailer counts what it closes and
//! repeats its header's control number; this parser checks all of them.
//!
//! # Transaction sets
//! - **214** Transportation Carrier Shipment Status: every AT7 status → one draft, typed
//!   per the AT7-01 column of EVENTS.md §2.2 (see `vocabulary.rs`); `status.rs`.
//! - **856** Ship Notice/Manifest: one `warehouse.packed` per shipment level (HL `S`)
//!   listing its packages (SSCC, tracking numbers, weights), orders and line items
//!   (shipped, ordered, backordered), plus `shipment.dispatched`
//!   when the notice is an original (BSN-01 `00`) and states a shipped date (DTM `011`):
//!   the shipper itself says when the goods left, which is what `dispatched` means
//!   (ownership rules still decide whether the carrier's own pick-up scan wins);
//!   a cancellation (BSN-01 `01`) maps to nothing; `ship_notice.rs`.
//! - **210** Motor Carrier Freight Details and Invoice: one `freight.charge_confirmed`
//!   with `{invoice_number, currency, total, charges: [{code, amount, description}]}`,
//!   amounts as decimal strings from N2 elements (implied two decimals, never floats),
//!   plus weight, freight class, items, dates and parties, dated at the invoice date
//!   (B3-06); `freight_invoice.rs`.
//! - **997**/**999** received: parsed, map to nothing. Any other set: `x12.unsupported_set`.
//!   TA1 segments received between the ISA and the first GS: kept in
//!   [`Interchange::interchange_acks`], map to nothing.
//!
//! Public sources used (no network here; read through a stored copy of public pages):
//! Stedi's X12 reference (<https://www.stedi.com/edi/x12-004010/214>, `/856`, `/210`,
//! `/997`, `/segment/AT7`, `/element/1650`, `/element/1651`, `/element/623`,
//! `/element/715`–`/element/723`), kputnam/stupidedi's 004010 segment and element
//! definitions (`lib/stupidedi/versions/004010/`), Karrio's `TrackingIncidentReason`
//! families, and Waybill's EVENTS.md §2.2.
//!
//! # Keys
//! - Payload idempotency key: [`Interchange::payload_key`] =
//!   `x12:<ISA06>:<ISA08>:<ISA09>:<ISA13>` (sender, receiver, interchange date,
//!   interchange control number): the same interchange re-sent is a duplicate.
//! - Event keys identify the fact, never the envelope (ISA13, GS06, ST02 are only in
//!   `data.x12`): a 214 status is `waybill_model::fact_key(type, time, AT7-01, MS1 place)`
//!   with the time as UTC when AT7-07 names a zone, else `local:<wall clock>`; an 856's
//!   events are `856:<BSN-02>:HL<id>:packed|dispatched`; a 210 is `210:<SCAC>:<B3-02>`.
//!   So a document re-sent in a new interchange (carriers re-send history) adds nothing,
//!   and the same interchange over HTTP and as a dropped file gives the same event ids.
//! - Subject: [`shipment_key`] = `x12:<SCAC>:<shipment id>`.
//!
//! # Errors
//! Every [`X12Error`] names the segment index (1-based, ISA = 1), segment id, byte offset
//! and element position, with a stable code: `x12.bad_isa`, `x12.truncated`,
//! `x12.unexpected_segment`, `x12.missing_segment`, `x12.bad_element`,
//! `x12.segment_count_mismatch` (SE01), `x12.set_count_mismatch` (GE01),
//! `x12.group_count_mismatch` (IEA01), `x12.control_number_mismatch` (SE02/GE02/IEA02),
//! `x12.unsupported_set`. [`ack_997`] and [`reject_997`] turn them into 997 codes (table
//! in `ack.rs`), [`reject_ta1`] the envelope's into TA1 note codes (table in `ta1.rs`).
//!
//! # Files
//! `wire.rs` raw segments and envelope types · `parse.rs` ISA and tokenizer ·
//! `envelope.rs` GS/ST nesting, counts, control numbers · `status.rs` (214),
//! `ship_notice.rs` and `line_items.rs` (856), `freight_invoice.rs` (210) typed
//! extraction, with `measure.rs` (quantities, weights, volumes: AT8, TD1, L0, L3) and
//! `parties.rs` (N1/N4) · `timecode.rs` dates, times, zones · `local_time.rs` placing
//! times without a zone · `refs.rs` reference qualifiers → `refs` names · `vocabulary.rs`
//! AT7 codes → taxonomy · `mapping/` drafts, one file per set · `ack.rs`, `ack_write.rs`
//! 997 · `ta1.rs` TA1 · `error.rs` · `tests.rs`, `fact_tests.rs`, `proptests.rs`,
//! `testdata/` (sources in its README).
//!
//! # Drafts
//! - 214: `code` = AT7-01, `text` = its X12 name, `reason` per `vocabulary.rs`, `time` from
//!   AT7-05/06/07 (the received time when AT7-05 is absent), `location` from MS1,
//!   `refs` = `scac` (B10-03), `shipment_id` (B10-02), `pro` (B10-01, the carrier's PRO
//!   per the standard's note on B10-01), then L11s by qualifier (`BM` → `bol`, `PO` → `po`,
//!   … see `refs.rs`; a second different value under a name becomes `name_2`), `data` =
//!   `lx`, `reason_code` (raw AT7-02), `appointment`, `time_code`, `time_zone`,
//!   `local_time`, `utc_offset`, `equipment` (MS2), `weight`, `pieces`,
//!   `unitized_pieces`, `volume` (the loop's AT8, else the shipment's), `partial` (code
//!   `PA`), `x12` (control numbers). B10-02 is optional
//!   in the standard but required here: it is the only identifier the 214 shares with
//!   the 856 (BSN-02) and the 210 (B3-03), so it keys the shipment.
//! - 856: `warehouse.packed` timed at BSN-03/04 (when the notice was made, local time),
//!   but never after the shipped time (`data.time_adjusted`, see `mapping/ship_notice.rs`);
//!   `data.packages` = `[{hl, level, parent, sscc, tracking, packaging, pieces, weight,
//!   volume, dimensions}]` for every `T`/`P` level under the shipment, `data.orders` =
//!   `[{hl, po}]`, `data.lines` (LIN/SN1/PO4/PID: ids, shipped, ordered, backordered,
//!   unit, po, pack, description), `data.totals` and `data.partial`, the shipment's TD1
//!   (`packaging`, `pieces`, `weight`, `volume`), TD5 (`carrier`), MEA (`dimensions`)
//!   and N1 (`parties`); the SCAC comes from TD5 (`x12.missing_segment` when no TD5 names
//!   one).
//! - 210: `data` = `{invoice_number, invoice_date, payment_method, currency, total,
//!   charges: [{line, code, amount, description}], weight, pieces, volume, freight_class,
//!   items, dates, parties, x12}`.
//! - Every field, set by set, with what stays only in the raw payload: docs/connectors.md
//!   ("X12 fields and events").
//!
//! # Quirks handled
//! - CR/LF after segment terminators (and leading whitespace, a UTF-8 BOM, trailing
//!   whitespace) are tolerated; the 997 reuses the sender's line breaks and delimiters.
//! - Non-UTF-8 bytes in elements (Latin-1 names) become U+FFFD instead of failing.
//! - AT7-06 without AT7-07, or with `LT` (and the BSN, DTMs and G62s without a time
//!   code, the 210's B3 dates) is local time of an unknown zone: never written as UTC. It
//!   is converted with the source's `local_time_offset` when set, else the event is dated
//!   when received and `data.local_time` keeps the wall clock (`local_time.rs`).
//! - Unknown AT7-01 codes map to `shipment.in_transit` with reason `unknown`, never
//!   rejected; an AT7 with only an appointment (AT7-03/04) is a plan, not a status, and
//!   maps to nothing.
//! - Control numbers compare by value when numeric (`0001` = `1`).
//! - Mapping is all or nothing per interchange: the first set that fails rejects it, and
//!   the 997 then reports every set rejected (only the failing one with codes).

mod ack;
mod ack_write;
mod envelope;
mod error;
mod freight_invoice;
mod line_items;
mod local_time;
mod mapping;
mod measure;
mod parse;
mod parties;
mod refs;
mod ship_notice;
mod status;
mod ta1;
mod timecode;
mod vocabulary;
mod wire;

#[cfg(test)]
mod fact_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use ack::{ack_997, reject_997, AckResult, Rejection};
pub use error::{ElementProblem, ErrorKind, Position, X12Error, CODES};
pub use freight_invoice::{Amount, Charge, FreightInvoice, InvoiceItem};
pub use line_items::{LineItem, Pack};
pub use local_time::parse_offset;
pub use mapping::{map, shipment_key};
pub use measure::{Lading, Quantity, Volume, Weight};
pub use parse::parse;
pub use parties::Party;
pub use refs::Reference;
pub use ship_notice::{Carrier, Level, Measurement, ShipNotice};
pub use status::{Equipment, ShipmentStatus, StatusDetail, StatusLocation};
pub use ta1::reject_ta1;
pub(crate) use ta1::requested as ta1_requested;
pub use timecode::{Stamp, Zone};
pub use wire::{Delimiters, FunctionalGroup, Interchange, Segment, TransactionSet};

/// Reads a 214 transaction set into its typed form.
pub fn read_214(set: &TransactionSet) -> Result<ShipmentStatus, X12Error> {
    status::read(set)
}

/// Reads an 856 transaction set into its typed form.
pub fn read_856(set: &TransactionSet) -> Result<ShipNotice, X12Error> {
    ship_notice::read(set)
}

/// Reads a 210 transaction set into its typed form.
pub fn read_210(set: &TransactionSet) -> Result<FreightInvoice, X12Error> {
    freight_invoice::read(set)
}
