//! The envelope: ISA … GS … ST … SE … GE … IEA, with every trailer's count and control
//! number checked against what it closes.

use super::error::{ElementProblem, ErrorKind, Position, X12Error};
use super::parse::bad_isa;
use super::wire::{Delimiters, FunctionalGroup, Interchange, Segment, TransactionSet};

fn end_of_input(index: usize, end: usize) -> Position {
    Position {
        segment_index: index,
        segment_id: String::new(),
        byte_offset: end,
        element: None,
    }
}

/// Whether two control numbers agree: numeric ones by value (`0001` = `1`), others exactly.
pub(crate) fn same_control(a: &str, b: &str) -> bool {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if numeric(a) && numeric(b) {
        a.trim_start_matches('0') == b.trim_start_matches('0')
    } else {
        a == b
    }
}

/// Reads a count element (IEA01, GE01, SE01).
pub(crate) fn count(seg: &Segment, pos: usize) -> Result<usize, X12Error> {
    let raw = seg.require(pos)?;
    if raw.len() > 10 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(seg.element_error(
            pos,
            ElementProblem::InvalidCharacter,
            "a count must be digits",
        ));
    }
    raw.parse().map_err(|_| {
        seg.element_error(
            pos,
            ElementProblem::InvalidCharacter,
            "a count must be digits",
        )
    })
}

pub(crate) fn check_trailer(
    header: &Segment,
    header_pos: usize,
    trailer: &Segment,
    counted: usize,
    mismatch: ErrorKind,
    what: &str,
) -> Result<(), X12Error> {
    let expected = header.trimmed(header_pos).unwrap_or("");
    let got = trailer.require(2)?;
    if !same_control(expected, got) {
        return Err(X12Error::new(
            ErrorKind::ControlNumberMismatch,
            trailer.position(Some(2)),
            format!(
                "{}02 `{got}` differs from {}{header_pos:02} `{expected}`",
                trailer.id, header.id
            ),
        ));
    }
    let declared = count(trailer, 1)?;
    if declared != counted {
        return Err(X12Error::new(
            mismatch,
            trailer.position(Some(1)),
            format!("{}01 says {declared} {what}, counted {counted}", trailer.id),
        ));
    }
    Ok(())
}

/// Builds the envelope from tokens and checks every count and control number.
pub(crate) fn envelope(
    delimiters: Delimiters,
    segments: Vec<Segment>,
    end: usize,
) -> Result<Interchange, X12Error> {
    let total = segments.len();
    let mut it = segments.into_iter();
    let Some(header) = it.next() else {
        return Err(bad_isa(0, None, "no ISA"));
    };
    let mut groups = Vec::new();
    let mut interchange_acks = Vec::new();
    let trailer = loop {
        match it.next() {
            None => {
                return Err(X12Error::new(
                    ErrorKind::MissingSegment("IEA"),
                    end_of_input(total + 1, end),
                    "the interchange has no IEA trailer",
                ))
            }
            // TA1s come before the functional groups (and are not counted by IEA01).
            Some(s) if s.id == "TA1" && groups.is_empty() => interchange_acks.push(s),
            Some(s) if s.id == "GS" => groups.push(group(s, &mut it, total, end)?),
            Some(s) if s.id == "IEA" => break s,
            Some(s) => {
                return Err(X12Error::new(
                    ErrorKind::UnexpectedSegment,
                    s.position(None),
                    format!("expected GS or IEA, found {}", s.id),
                ))
            }
        }
    };
    if let Some(extra) = it.next() {
        return Err(X12Error::new(
            ErrorKind::UnexpectedSegment,
            extra.position(None),
            "nothing may follow the IEA trailer",
        ));
    }
    check_trailer(
        &header,
        13,
        &trailer,
        groups.len(),
        ErrorKind::GroupCountMismatch,
        "groups",
    )?;
    Ok(Interchange {
        delimiters,
        header,
        interchange_acks,
        groups,
        trailer,
    })
}

fn group(
    header: Segment,
    it: &mut impl Iterator<Item = Segment>,
    total: usize,
    end: usize,
) -> Result<FunctionalGroup, X12Error> {
    header.require(1)?;
    header.require(6)?;
    let mut sets = Vec::new();
    let trailer = loop {
        match it.next() {
            None => {
                return Err(X12Error::new(
                    ErrorKind::MissingSegment("GE"),
                    end_of_input(total + 1, end),
                    "the functional group has no GE trailer",
                ))
            }
            Some(s) if s.id == "ST" => sets.push(set(s, it, total, end)?),
            Some(s) if s.id == "GE" => break s,
            Some(s) if matches!(s.id.as_str(), "GS" | "IEA" | "ISA") => {
                return Err(X12Error::new(
                    ErrorKind::MissingSegment("GE"),
                    s.position(None),
                    format!("the functional group ends at {} without GE", s.id),
                ))
            }
            Some(s) => {
                return Err(X12Error::new(
                    ErrorKind::UnexpectedSegment,
                    s.position(None),
                    format!("expected ST or GE, found {}", s.id),
                ))
            }
        }
    };
    check_trailer(
        &header,
        6,
        &trailer,
        sets.len(),
        ErrorKind::SetCountMismatch,
        "transaction sets",
    )?;
    Ok(FunctionalGroup {
        header,
        sets,
        trailer,
    })
}

fn set(
    header: Segment,
    it: &mut impl Iterator<Item = Segment>,
    total: usize,
    end: usize,
) -> Result<TransactionSet, X12Error> {
    let id = header.require(1)?.to_owned();
    let control_number = header.require(2)?.to_owned();
    let mut segments = vec![header];
    loop {
        match it.next() {
            None => {
                return Err(X12Error::new(
                    ErrorKind::MissingSegment("SE"),
                    end_of_input(total + 1, end),
                    "the transaction set has no SE trailer",
                ))
            }
            Some(s) if s.id == "SE" => {
                segments.push(s);
                break;
            }
            Some(s) if matches!(s.id.as_str(), "ST" | "GE" | "GS" | "IEA" | "ISA") => {
                return Err(X12Error::new(
                    ErrorKind::MissingSegment("SE"),
                    s.position(None),
                    format!("the transaction set ends at {} without SE", s.id),
                ))
            }
            Some(s) => segments.push(s),
        }
    }
    let (Some(st), Some(se)) = (segments.first(), segments.last()) else {
        return Err(X12Error::new(
            ErrorKind::MissingSegment("SE"),
            end_of_input(total + 1, end),
            "empty set",
        ));
    };
    check_trailer(
        st,
        2,
        se,
        segments.len(),
        ErrorKind::SegmentCountMismatch,
        "segments",
    )?;
    Ok(TransactionSet {
        id,
        control_number,
        segments,
    })
}
