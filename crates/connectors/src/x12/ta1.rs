//! TA1 Interchange Acknowledgment: the answer about an interchange's envelope (ISA and
//! IEA), sent when the sender asks for one with ISA14 = `1`.
//!
//! - A 997 answers the content (accepted, or rejected inside a group or set): the TA1 is
//!   placed after the ISA of that 997 interchange ([`ack_997`](super::ack_997),
//!   [`reject_997`](super::reject_997) add it) — `TA1*<ISA13>*<ISA09>*<ISA10>*A*000`
//!   when the envelope is sound, `R` with the note of what is wrong with it otherwise.
//! - No 997 to send, because the envelope itself failed (IEA count or control number, no
//!   IEA, a segment between the groups that is not a group): Waybill processes
//!   interchanges all or nothing, so nothing of it was taken and a TA1 `R` goes alone in
//!   its interchange (`IEA01` = 0): [`reject_ta1`]. An interchange without functional
//!   groups (only TA1s, say) has nothing for a 997: [`ack_997`](super::ack_997) writes the
//!   TA1 `A` alone.
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
//! | `023` | improper (premature) end of file | no IEA (`x12.missing_segment`), or the input ends inside a segment (`x12.truncated`) |
//! | `024` | invalid interchange content | any other segment between the groups, a TA1 after a group, anything after the IEA, a segment id that cannot be read |

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

/// The TA1 for an interchange whose content is answered by a 997. The parser stops at the
/// first error, so when that was inside a group the rest of the envelope is checked here,
/// leniently, on the tokens: only TA1s before the first GS, only groups between ISA and
/// IEA (what is inside a group is the 997's business), nothing after the IEA, and the IEA
/// against the ISA (control number, number of groups). `A` when all of that holds, else
/// `R` with the note of the first thing that does not.
pub(crate) fn for_tokens(tokens: &Tokens) -> Option<Ta1> {
    let isa = tokens.segments.first()?;
    let rejected = |note| Some(Ta1 { code: "R", note });
    let (mut in_group, mut groups, mut iea) = (false, 0usize, None);
    for s in tokens.segments.iter().skip(1) {
        if iea.is_some() {
            return rejected("024");
        }
        match (s.id.as_str(), in_group) {
            ("TA1", false) if groups == 0 => {}
            ("GS", _) => {
                in_group = true;
                groups += 1;
            }
            ("GE", true) => in_group = false,
            // A group without its GE is the 997's finding; its IEA still closes the
            // interchange.
            ("IEA", _) => iea = Some(s),
            (_, true) => {}
            _ => return rejected("024"),
        }
    }
    // The tokenizer stopped early: at the end of the input inside a segment, or at a
    // segment id it could not read.
    match &tokens.error {
        Some(e) if e.kind == ErrorKind::Truncated => return rejected("023"),
        Some(e) if !in_group => return rejected(note(e)),
        Some(_) => return rejected("024"),
        None => {}
    }
    let Some(iea) = iea else {
        return rejected("023");
    };
    let trailer = super::envelope::check_trailer(
        isa,
        13,
        iea,
        groups,
        ErrorKind::GroupCountMismatch,
        "groups",
    );
    match trailer {
        Ok(()) => Some(ACCEPTED),
        Err(e) => rejected(note(&e)),
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
    if !requested(isa) || super::ack::names_a_group(&tokens, error) {
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
