//! Why an interchange was rejected, and exactly where: every error names the segment
//! (1-based index in the interchange, ISA = 1), its id, its byte offset and, where it
//! applies, the element position — and carries a stable code (`x12.*`).

use std::fmt;
use waybill_model::{Code, CodeClass};

/// Where in the interchange an error was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// 1-based index of the segment in the interchange (ISA = 1); one past the last
    /// segment when the input ended too early.
    pub segment_index: usize,
    /// Id of the segment (`""` when the input ended too early).
    pub segment_id: String,
    /// Byte offset of the segment's first byte in the input (the input length at its end).
    pub byte_offset: usize,
    /// 1-based element position inside the segment, when one element is at fault.
    pub element: Option<usize>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segment_id.is_empty() {
            write!(f, "end of input (segment {}", self.segment_index)?;
        } else {
            write!(f, "segment {} ({}", self.segment_index, self.segment_id)?;
        }
        write!(f, ", byte {})", self.byte_offset)?;
        if let Some(e) = self.element {
            write!(f, " element {e:02}")?;
        }
        Ok(())
    }
}

/// What is wrong with one element (maps to the 997 AK4-03 code, see `ack.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementProblem {
    /// A required element is absent or empty.
    Missing,
    /// Characters the element's type does not allow (e.g. letters in a count or amount).
    InvalidCharacter,
    /// Longer than its type allows.
    TooLong,
    /// A code value outside the code list.
    InvalidCode,
    /// Not a valid CCYYMMDD date.
    InvalidDate,
    /// Not a valid `HHMM[SS[D[D]]]` time.
    InvalidTime,
}

/// The kind of failure; its [`ErrorKind::code`] is stable and documented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The ISA header is shorter than 106 bytes, misaligned, or declares unusable delimiters.
    BadIsa,
    /// The input stops inside a segment (no segment terminator).
    Truncated,
    /// A segment that is not allowed here, or whose id is not an X12 segment id.
    UnexpectedSegment,
    /// A required segment is absent; holds the id that was expected.
    MissingSegment(&'static str),
    /// One element is missing or malformed.
    BadElement(ElementProblem),
    /// SE01 differs from the number of segments from ST to SE inclusive.
    SegmentCountMismatch,
    /// GE01 differs from the number of transaction sets in the group.
    SetCountMismatch,
    /// IEA01 differs from the number of functional groups in the interchange.
    GroupCountMismatch,
    /// A trailer's control number differs from its header's (IEA02/ISA13, GE02/GS06, SE02/ST02).
    ControlNumberMismatch,
    /// A transaction set Waybill does not map (anything but 214, 856, 210 and 997).
    UnsupportedSet,
}

/// `x12.bad_isa`.
pub const BAD_ISA: Code = Code::new("x12.bad_isa", CodeClass::Unprocessable);
/// `x12.truncated`.
pub const TRUNCATED: Code = Code::new("x12.truncated", CodeClass::Unprocessable);
/// `x12.unexpected_segment`.
pub const UNEXPECTED_SEGMENT: Code = Code::new("x12.unexpected_segment", CodeClass::Unprocessable);
/// `x12.missing_segment`.
pub const MISSING_SEGMENT: Code = Code::new("x12.missing_segment", CodeClass::Unprocessable);
/// `x12.bad_element`.
pub const BAD_ELEMENT: Code = Code::new("x12.bad_element", CodeClass::Unprocessable);
/// `x12.segment_count_mismatch`.
pub const SEGMENT_COUNT_MISMATCH: Code =
    Code::new("x12.segment_count_mismatch", CodeClass::Unprocessable);
/// `x12.set_count_mismatch`.
pub const SET_COUNT_MISMATCH: Code = Code::new("x12.set_count_mismatch", CodeClass::Unprocessable);
/// `x12.group_count_mismatch`.
pub const GROUP_COUNT_MISMATCH: Code =
    Code::new("x12.group_count_mismatch", CodeClass::Unprocessable);
/// `x12.control_number_mismatch`.
pub const CONTROL_NUMBER_MISMATCH: Code =
    Code::new("x12.control_number_mismatch", CodeClass::Unprocessable);
/// `x12.unsupported_set`.
pub const UNSUPPORTED_SET: Code = Code::new("x12.unsupported_set", CodeClass::Unprocessable);
/// Every X12 code.
pub const CODES: &[Code] = &[
    BAD_ISA,
    TRUNCATED,
    UNEXPECTED_SEGMENT,
    MISSING_SEGMENT,
    BAD_ELEMENT,
    SEGMENT_COUNT_MISMATCH,
    SET_COUNT_MISMATCH,
    GROUP_COUNT_MISMATCH,
    CONTROL_NUMBER_MISMATCH,
    UNSUPPORTED_SET,
];

impl ErrorKind {
    /// The failure code, e.g. `x12.segment_count_mismatch` (answered 422, or kept with a
    /// dropped file).
    pub fn failure(&self) -> Code {
        match self {
            ErrorKind::BadIsa => BAD_ISA,
            ErrorKind::Truncated => TRUNCATED,
            ErrorKind::UnexpectedSegment => UNEXPECTED_SEGMENT,
            ErrorKind::MissingSegment(_) => MISSING_SEGMENT,
            ErrorKind::BadElement(_) => BAD_ELEMENT,
            ErrorKind::SegmentCountMismatch => SEGMENT_COUNT_MISMATCH,
            ErrorKind::SetCountMismatch => SET_COUNT_MISMATCH,
            ErrorKind::GroupCountMismatch => GROUP_COUNT_MISMATCH,
            ErrorKind::ControlNumberMismatch => CONTROL_NUMBER_MISMATCH,
            ErrorKind::UnsupportedSet => UNSUPPORTED_SET,
        }
    }

    /// The stable operator-facing code, e.g. `x12.segment_count_mismatch`.
    pub fn code(&self) -> &'static str {
        self.failure().as_str()
    }
}

/// Why an interchange could not be parsed or mapped, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} at {at}: {message}", kind.code())]
pub struct X12Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where.
    pub at: Position,
    /// Human-readable detail (never contains more than one element's value).
    pub message: String,
}

impl X12Error {
    /// Builds an error.
    pub fn new(kind: ErrorKind, at: Position, message: impl Into<String>) -> Self {
        X12Error {
            kind,
            at,
            message: message.into(),
        }
    }

    /// The stable code of this error, e.g. `x12.control_number_mismatch`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The failure code.
    pub fn failure(&self) -> Code {
        self.kind.failure()
    }
}
