//! The raw X12 structure exactly as received: delimiters, segments and elements, and the
//! ISA/GS/ST envelope around them. No business meaning here (see `status.rs`,
//! `ship_notice.rs`, `freight_invoice.rs`).

use super::error::{ElementProblem, ErrorKind, Position, X12Error};

/// The delimiters an interchange declares in its ISA segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// Separates elements (the byte right after `ISA`).
    pub element: u8,
    /// Separates the components of a composite element (ISA16).
    pub component: u8,
    /// Separates repeated elements (ISA11 from version 00402 on); `None` before.
    pub repetition: Option<u8>,
    /// Ends a segment (the byte after ISA16).
    pub segment: u8,
    /// Line break the sender put after each terminator (`""`, `"\n"`, `"\r\n"` or `"\r"`).
    pub line_break: &'static str,
}

/// One segment: its id and its elements, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Segment id, e.g. `AT7`.
    pub id: String,
    /// Elements in order: `elements[0]` is element 01. Kept verbatim (ISA fields keep
    /// their padding); bytes that are not UTF-8 are replaced by U+FFFD.
    pub elements: Vec<String>,
    /// 1-based index in the interchange (ISA = 1).
    pub index: usize,
    /// Byte offset of the segment's first byte in the input.
    pub offset: usize,
}

impl Segment {
    /// Element at 1-based position `pos`; `None` when absent or empty.
    pub fn get(&self, pos: usize) -> Option<&str> {
        let i = pos.checked_sub(1)?;
        self.elements
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Element at `pos` without surrounding spaces (ISA fields are space-padded);
    /// `None` when absent or blank.
    pub fn trimmed(&self, pos: usize) -> Option<&str> {
        self.get(pos).map(str::trim).filter(|s| !s.is_empty())
    }

    /// Where this segment is, optionally pointing at one element.
    pub fn position(&self, element: Option<usize>) -> Position {
        Position {
            segment_index: self.index,
            segment_id: self.id.clone(),
            byte_offset: self.offset,
            element,
        }
    }

    /// An error about element `pos` of this segment.
    pub fn element_error(
        &self,
        pos: usize,
        problem: ElementProblem,
        message: impl Into<String>,
    ) -> X12Error {
        X12Error::new(
            ErrorKind::BadElement(problem),
            self.position(Some(pos)),
            message,
        )
    }

    /// Element at `pos`, or a `x12.bad_element` error naming it when absent or empty.
    pub fn require(&self, pos: usize) -> Result<&str, X12Error> {
        self.get(pos).ok_or_else(|| {
            self.element_error(
                pos,
                ElementProblem::Missing,
                format!("{}{pos:02} is required", self.id),
            )
        })
    }
}

/// One transaction set, ST to SE inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSet {
    /// ST01, e.g. `214`.
    pub id: String,
    /// ST02, the set control number.
    pub control_number: String,
    /// Every segment from ST to SE inclusive.
    pub segments: Vec<Segment>,
}

impl TransactionSet {
    /// The segments between ST and SE.
    pub fn body(&self) -> &[Segment] {
        let n = self.segments.len();
        self.segments.get(1..n.saturating_sub(1)).unwrap_or(&[])
    }

    /// The SE segment (or ST if the set somehow has one segment).
    pub fn trailer(&self) -> Option<&Segment> {
        self.segments.last()
    }

    /// Position of a segment inside this set, ST = 1 (the 997's AK3-02).
    pub fn position_of(&self, segment_index: usize) -> usize {
        let first = self.segments.first().map_or(segment_index, |s| s.index);
        segment_index.saturating_sub(first) + 1
    }
}

/// One functional group, GS to GE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionalGroup {
    /// The GS segment.
    pub header: Segment,
    /// The transaction sets, in order.
    pub sets: Vec<TransactionSet>,
    /// The GE segment.
    pub trailer: Segment,
}

impl FunctionalGroup {
    /// GS01 functional identifier code, e.g. `QM` for 214, `SH` for 856, `IM` for 210.
    pub fn functional_id(&self) -> &str {
        self.header.get(1).unwrap_or("")
    }

    /// GS06 group control number.
    pub fn control_number(&self) -> &str {
        self.header.get(6).unwrap_or("")
    }

    /// GS08 version/release code, e.g. `004010`.
    pub fn version(&self) -> &str {
        self.header.get(8).unwrap_or("")
    }
}

/// A parsed interchange: ISA, its groups, IEA — all counts and control numbers checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Interchange {
    /// Delimiters declared by the ISA.
    pub delimiters: Delimiters,
    /// The ISA segment (elements keep their fixed-width padding).
    pub header: Segment,
    /// TA1 interchange acknowledgments received between the ISA and the first GS (they
    /// acknowledge other interchanges and map to nothing).
    pub interchange_acks: Vec<Segment>,
    /// The functional groups, in order.
    pub groups: Vec<FunctionalGroup>,
    /// The IEA segment.
    pub trailer: Segment,
}

impl Interchange {
    /// ISA13 interchange control number (9 digits).
    pub fn control_number(&self) -> &str {
        self.header.trimmed(13).unwrap_or("")
    }

    /// ISA06 sender id, without padding.
    pub fn sender_id(&self) -> &str {
        self.header.trimmed(6).unwrap_or("")
    }

    /// ISA08 receiver id, without padding.
    pub fn receiver_id(&self) -> &str {
        self.header.trimmed(8).unwrap_or("")
    }

    /// The payload's idempotency key: `x12:<ISA06>:<ISA08>:<ISA09>:<ISA13>`.
    ///
    /// ISA13 is only unique per sender and receiver, and senders recycle it (it is 9
    /// digits, some restart at 1), so the key carries both parties and the interchange
    /// date (ISA09) as the time window. A byte-identical retransmission keeps all four and
    /// is recognised as a duplicate; each event inside is then told apart by GS06 and ST02
    /// (see the `key` of every draft).
    pub fn payload_key(&self) -> String {
        format!(
            "x12:{}:{}:{}:{}",
            self.sender_id(),
            self.receiver_id(),
            self.header.trimmed(9).unwrap_or(""),
            self.control_number()
        )
    }
}
