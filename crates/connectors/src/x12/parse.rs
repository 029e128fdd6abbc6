//! Tokenizer and envelope: bytes → segments → ISA/GS/ST structure with every count and
//! control number checked. Never panics: every index is checked, nothing is unwrapped.

use super::envelope::envelope;
use super::error::{ErrorKind, Position, X12Error};
use super::wire::{Delimiters, Interchange, Segment};

/// Length of the fixed-width ISA segment, terminator included.
pub const ISA_LEN: usize = 106;

/// Byte offsets (from the `I` of `ISA`) of the 16 element separators in an ISA.
const ISA_SEPARATORS: [usize; 16] = [
    3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103,
];

/// What the tokenizer read: every segment up to the first lexical error, and that error.
#[derive(Debug)]
pub(crate) struct Tokens {
    /// Delimiters from the ISA.
    pub delimiters: Delimiters,
    /// Segments in order; `segments[0]` is the ISA.
    pub segments: Vec<Segment>,
    /// Offset just past the input (where "end of input" errors point).
    pub end: usize,
    /// The first lexical error after the ISA (bad segment id, unterminated segment).
    pub error: Option<X12Error>,
}

/// Parses one interchange (see the module docs for what is checked).
pub fn parse(input: &[u8]) -> Result<Interchange, X12Error> {
    let tokens = tokenize(input)?;
    if let Some(e) = tokens.error {
        return Err(e);
    }
    envelope(tokens.delimiters, tokens.segments, tokens.end)
}

pub(crate) fn bad_isa(
    offset: usize,
    element: Option<usize>,
    message: impl Into<String>,
) -> X12Error {
    let at = Position {
        segment_index: 1,
        segment_id: "ISA".into(),
        byte_offset: offset,
        element,
    };
    X12Error::new(ErrorKind::BadIsa, at, message)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn usable_delimiter(b: u8) -> bool {
    !b.is_ascii_alphanumeric() && b != b' '
}

/// Reads the ISA and splits the rest into segments. Fails only when the ISA itself is
/// unusable; later lexical errors are returned in [`Tokens::error`] with the segments
/// read before them (the 997 builder needs those to name the failing set).
pub(crate) fn tokenize(input: &[u8]) -> Result<Tokens, X12Error> {
    let mut start = 0;
    if input.starts_with(&[0xEF, 0xBB, 0xBF]) {
        start = 3;
    }
    while input.get(start).is_some_and(u8::is_ascii_whitespace) {
        start += 1;
    }
    let isa = input.get(start..start + ISA_LEN).ok_or_else(|| {
        bad_isa(
            start,
            None,
            format!(
                "an interchange starts with a {ISA_LEN}-byte ISA segment; only {} bytes",
                input.len().saturating_sub(start)
            ),
        )
    })?;
    if !isa.starts_with(b"ISA") {
        return Err(bad_isa(start, None, "the input does not start with ISA"));
    }
    let [.., isa16, terminator] = isa else {
        return Err(bad_isa(start, None, "ISA too short"));
    };
    let element = isa.get(3).copied().unwrap_or(b'*');
    let mut elements = Vec::with_capacity(16);
    for (i, &p) in ISA_SEPARATORS.iter().enumerate() {
        if isa.get(p) != Some(&element) {
            return Err(bad_isa(
                start,
                Some(i.max(1)),
                format!("ISA is fixed-width: expected the element separator at byte {p}"),
            ));
        }
        let end = ISA_SEPARATORS.get(i + 1).copied().unwrap_or(ISA_LEN - 1);
        let field = isa.get(p + 1..end).unwrap_or(&[]);
        if field.contains(&element) || field.contains(terminator) {
            return Err(bad_isa(
                start,
                Some(i + 1),
                "ISA field contains a delimiter",
            ));
        }
        elements.push(text(field));
    }
    let (component, segment) = (*isa16, *terminator);
    if !usable_delimiter(element) || !usable_delimiter(component) || !usable_delimiter(segment) {
        return Err(bad_isa(
            start,
            Some(16),
            "delimiters must not be letters, digits or spaces",
        ));
    }
    if element == component || element == segment || component == segment {
        return Err(bad_isa(
            start,
            Some(16),
            "element, component and segment delimiters must differ",
        ));
    }
    let version = elements.get(11).map(String::as_str).unwrap_or("");
    if version.len() != 5 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_isa(start, Some(12), "ISA12 version must be 5 digits"));
    }
    let control = elements.get(12).map(String::as_str).unwrap_or("");
    if control.len() != 9 || !control.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_isa(
            start,
            Some(13),
            "ISA13 control number must be 9 digits",
        ));
    }
    // ISA11 is the repetition separator from 00402 on; before, it is the standards id `U`.
    let isa11 = isa.get(82).copied().unwrap_or(b'U');
    let repetition = (version > "00401"
        && usable_delimiter(isa11)
        && ![element, component, segment].contains(&isa11))
    .then_some(isa11);
    let after = start + ISA_LEN;
    let line_break = match input.get(after..).unwrap_or(&[]) {
        _ if [b'\r', b'\n']
            .iter()
            .any(|b| [element, component].contains(b)) =>
        {
            ""
        }
        [b'\r', b'\n', ..] => "\r\n",
        [b'\n', ..] => "\n",
        [b'\r', ..] => "\r",
        _ => "",
    };
    let delimiters = Delimiters {
        element,
        component,
        repetition,
        segment,
        line_break,
    };
    let mut segments = vec![Segment {
        id: "ISA".into(),
        elements,
        index: 1,
        offset: start,
    }];
    let error = split_segments(input, after, &delimiters, &mut segments);
    Ok(Tokens {
        delimiters,
        segments,
        end: input.len(),
        error,
    })
}

fn is_segment_id(id: &str) -> bool {
    (2..=3).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && id.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
}

/// Splits `input[pos..]` into segments, appending to `out`; returns the first lexical error.
fn split_segments(
    input: &[u8],
    mut pos: usize,
    d: &Delimiters,
    out: &mut Vec<Segment>,
) -> Option<X12Error> {
    loop {
        // CR/LF after a terminator is tolerated (unless CR/LF is itself a delimiter).
        while input
            .get(pos)
            .is_some_and(|&b| (b == b'\r' || b == b'\n') && b != d.element && b != d.component)
        {
            pos += 1;
        }
        let rest = input.get(pos..).unwrap_or(&[]);
        if rest.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let index = out.len() + 1;
        let Some(len) = rest.iter().position(|&b| b == d.segment) else {
            let id = rest.split(|&b| b == d.element).next().unwrap_or(&[]);
            let at = Position {
                segment_index: index,
                segment_id: text(id.get(..3.min(id.len())).unwrap_or(&[])),
                byte_offset: pos,
                element: None,
            };
            return Some(X12Error::new(
                ErrorKind::Truncated,
                at,
                "the input ends inside a segment",
            ));
        };
        let raw = rest.get(..len).unwrap_or(&[]);
        let mut parts = raw.split(|&b| b == d.element).map(text);
        let id = parts.next().unwrap_or_default();
        let segment = Segment {
            elements: parts.collect(),
            id,
            index,
            offset: pos,
        };
        if !is_segment_id(&segment.id) {
            let mut at = segment.position(None);
            at.segment_id = at.segment_id.chars().take(3).collect();
            return Some(X12Error::new(
                ErrorKind::UnexpectedSegment,
                at,
                "not an X12 segment id (2-3 upper-case letters or digits)",
            ));
        }
        out.push(segment);
        pos += len + 1;
    }
}
