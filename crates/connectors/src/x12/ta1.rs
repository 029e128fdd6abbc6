//! TA1 Interchange Acknowledgment: the answer about an interchange's envelope (ISA and
//! IEA), sent when the sender asks for one with ISA14 = `1`.
//!
//! - Envelope fine: `TA1*<ISA13>*<ISA09>*<ISA10>*A*000`, placed after the ISA of the 997
//!   interchange that answers the content ([`ack_997`](super::ack_997),
//!   [`reject_997`](super::reject_997) add it).
//! - Envelope wrong (IEA count or control number, no IEA, anything between the groups
//!   that is not a group): Waybill processes interchanges all or nothing, so nothing of it
//!   was taken and the TA1 says `R` — alone in its interchange (`IEA01` = 0), as there is
//!   no 997 to send: [`reject_ta1`].
//! - ISA14 = `0`: no TA1, whatever happened; an ISA that cannot be read (layout,
//!   delimiters, ISA12, ISA13) gets none either: there is nothing to address it to.
//!
//! TA104 codes (element I17) `A` accepted, `R` rejected; TA105 interchange note codes
//! (element I18) used here — the X12 control segment code list as published by Stedi
//! (<https://www.stedi.com/edi/x12-006040/segment/TA1>) and Microsoft's BizTalk X12
//! reference ("X12 TA1 Acknowledgment Error Codes"):
//!
//! | TA105 | meaning | when |
//! |---|---|---|
//! | `000` | no error | the envelope checked out |
//! | `001` | the interchange control numbers in the header and trailer do not match | `x12.control_number_mismatch` at IEA, or IEA02 unreadable |
//! | `021` | invalid number of included groups value | `x12.group_count_mismatch`, or IEA01 not a count |
//! | `023` | improper (premature) end of file | no IEA (`x12.missing_segment`), or the input ends inside a segment outside any group |
//! | `024` | invalid interchange content | any other segment between the groups, or anything after the IEA |

use super::ack_write::{self, Ta1};
use super::error::{ErrorKind, X12Error};
use super::parse::{self, Tokens};
use super::wire::Segment;
use time::OffsetDateTime;

/// TA1 `A`/`000`.
pub(crate) const ACCEPTED: Ta1 = Ta1 {
    code: "A",
    note: "000",
};

/// Whether the sender asked for a TA1 (ISA14 = `1`).
pub(crate) fn requested(isa: &Segment) -> bool {
    isa.trimmed(14) == Some("1")
}

/// TA105 for an error found in the envelope, outside any functional group.
fn note(e: &X12Error) -> &'static str {
    let iea_element = |n: usize| e.at.segment_id == "IEA" && e.at.element == Some(n);
    match &e.kind {
        ErrorKind::ControlNumberMismatch => "001",
        ErrorKind::GroupCountMismatch => "021",
        ErrorKind::BadElement(_) if iea_element(1) => "021",
        ErrorKind::BadElement(_) if iea_element(2) => "001",
        ErrorKind::MissingSegment("IEA") | ErrorKind::Truncated => "023",
        _ => "024",
    }
}

/// The TA1 for an interchange whose content is answered by a 997: `A` when the tokens end
/// with an IEA that matches the ISA (control number, number of groups); `R` with the note
/// when they do not; `None` when the tokenizer stopped before the end (a segment id it
/// could not read), so that the trailer was never seen.
pub(crate) fn for_tokens(tokens: &Tokens) -> Option<Ta1> {
    if tokens.error.is_some() {
        return None;
    }
    let isa = tokens.segments.first()?;
    let rejected = |note| Some(Ta1 { code: "R", note });
    let Some(at) = tokens.segments.iter().position(|s| s.id == "IEA") else {
        return rejected("023");
    };
    if at + 1 != tokens.segments.len() {
        return rejected("024");
    }
    let iea = tokens.segments.get(at)?;
    let groups = tokens.segments.iter().filter(|s| s.id == "GS").count();
    let control =
        super::envelope::same_control(isa.trimmed(13).unwrap_or(""), iea.trimmed(2).unwrap_or(""));
    if !control {
        return rejected("001");
    }
    match super::envelope::count(iea, 1) {
        Ok(n) if n == groups => Some(ACCEPTED),
        _ => rejected("021"),
    }
}

/// The TA1 interchange rejecting an interchange whose envelope failed (`error` from
/// [`parse`](super::parse)), when its ISA asked for one. `None` when ISA14 is not `1`,
/// when the ISA cannot be read, and for errors inside a functional group, which
/// [`reject_997`](super::reject_997) answers instead. `control_number` is used for the
/// answer's ISA13 (modulo 10⁹); `now` dates it.
pub fn reject_ta1(
    input: &[u8],
    error: &X12Error,
    control_number: u32,
    now: OffsetDateTime,
) -> Option<String> {
    let tokens = parse::tokenize(input).ok()?;
    let isa = tokens.segments.first()?;
    if !requested(isa) || super::ack::reject_997(input, error, control_number, now).is_some() {
        return None;
    }
    let ta1 = Ta1 {
        code: "R",
        note: note(error),
    };
    Some(ack_write::write(
        isa,
        &tokens.delimiters,
        Some(ta1),
        &[],
        control_number,
        now,
        &|_: usize| None::<&Segment>,
    ))
}
