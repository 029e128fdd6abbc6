//! Writing the 997 interchange from a plan of accepted and rejected sets (see `ack.rs`
//! for the codes and their sources).

use super::error::{ElementProblem, ErrorKind, X12Error};
use super::wire::{Delimiters, Segment};
use time::OffsetDateTime;

/// What happened to one received set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// AK5 `A`.
    Accepted,
    /// AK5 `R`, with the error that names why when there is one.
    Rejected(Option<X12Error>),
}

/// One received set to acknowledge.
#[derive(Debug, Clone)]
pub(crate) struct SetPlan {
    /// ST01.
    pub id: String,
    /// ST02.
    pub control: String,
    /// Interchange index of its ST (to turn segment indexes into AK3-02 positions).
    pub first_index: usize,
    /// Accepted or rejected.
    pub outcome: Outcome,
}

/// One received group to acknowledge.
#[derive(Debug, Clone)]
pub(crate) struct GroupPlan {
    /// The received GS.
    pub header: Segment,
    /// GE01 as declared (the count received when unreadable).
    pub declared: usize,
    /// AK9-05 code for a group-level error.
    pub error_code: Option<&'static str>,
    /// Whether the whole group is rejected (AK9 `R` whatever its sets say).
    pub rejected: bool,
    /// Its sets.
    pub sets: Vec<SetPlan>,
}

/// The 997's delimiters: the received ones when they are ASCII (a `String` cannot hold
/// other single bytes), else `*`, `>`, `~`.
struct Out {
    element: char,
    component: char,
    segment: char,
    line_break: &'static str,
    repetition: Option<char>,
    text: String,
    count: usize,
}

impl Out {
    fn is_delimiter(&self, c: char) -> bool {
        c == self.element || c == self.component || c == self.segment || Some(c) == self.repetition
    }

    /// Keeps printable ASCII that is not a delimiter; anything else becomes `?` — or a
    /// space when `?` is itself a delimiter (spaces never are).
    fn clean(&self, s: &str) -> String {
        let replacement = if self.is_delimiter('?') { ' ' } else { '?' };
        s.chars()
            .map(|c| {
                if (c.is_ascii_graphic() || c == ' ') && !self.is_delimiter(c) {
                    c
                } else {
                    replacement
                }
            })
            .collect()
    }

    /// A fixed-width ISA field.
    fn fixed(&self, s: &str, width: usize) -> String {
        let mut v: String = self.clean(s).chars().take(width).collect();
        while v.len() < width {
            v.push(' ');
        }
        v
    }

    /// Appends a segment, dropping trailing empty elements.
    fn seg(&mut self, parts: &[&str]) {
        let keep = parts
            .iter()
            .rposition(|p| !p.is_empty())
            .map_or(0, |i| i + 1);
        let mut first = true;
        for p in parts.iter().take(keep) {
            if !first {
                self.text.push(self.element);
            }
            first = false;
            self.text.push_str(p);
        }
        self.text.push(self.segment);
        self.text.push_str(self.line_break);
        self.count += 1;
    }
}

fn ak4_code(p: ElementProblem) -> &'static str {
    match p {
        ElementProblem::Missing => "1",
        ElementProblem::TooLong => "5",
        ElementProblem::InvalidCharacter => "6",
        ElementProblem::InvalidCode => "7",
        ElementProblem::InvalidDate => "8",
        ElementProblem::InvalidTime => "9",
    }
}

fn valid_segment_id(id: &str) -> bool {
    (2..=3).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// AK3/AK4 lines and the AK5-02 code for a rejected set's error.
fn set_lines<'s>(
    out: &mut Out,
    e: &X12Error,
    first_index: usize,
    lookup: &dyn Fn(usize) -> Option<&'s Segment>,
) -> Option<&'static str> {
    let position = (e.at.segment_index.saturating_sub(first_index) + 1).to_string();
    let id = out.clean(&e.at.segment_id);
    match &e.kind {
        ErrorKind::UnsupportedSet => Some("1"),
        ErrorKind::MissingSegment("SE") | ErrorKind::Truncated => Some("2"),
        ErrorKind::ControlNumberMismatch => Some("3"),
        ErrorKind::SegmentCountMismatch => Some("4"),
        ErrorKind::BadElement(_) if e.at.segment_id == "ST" => {
            Some(if e.at.element == Some(1) { "6" } else { "7" })
        }
        ErrorKind::UnexpectedSegment => {
            let code = if valid_segment_id(&id) { "2" } else { "1" };
            if !id.is_empty() {
                out.seg(&["AK3", &id, &position, "", code]);
            }
            Some("5")
        }
        ErrorKind::MissingSegment(expected) => {
            out.seg(&["AK3", expected, &position, "", "3"]);
            Some("5")
        }
        ErrorKind::BadElement(problem) => {
            out.seg(&["AK3", &id, &position, "", "8"]);
            let element = e.at.element.unwrap_or(1);
            let copy = lookup(e.at.segment_index)
                .and_then(|s| s.get(element))
                .map(|v| out.clean(v).chars().take(99).collect::<String>())
                .unwrap_or_default();
            let copy = if *problem == ElementProblem::Missing {
                String::new()
            } else {
                copy
            };
            out.seg(&["AK4", &element.to_string(), "", ak4_code(*problem), &copy]);
            Some("5")
        }
        _ => Some("5"),
    }
}

fn ymd(now: OffsetDateTime) -> (i32, u8, u8) {
    (
        now.year().rem_euclid(10_000),
        u8::from(now.month()),
        now.day(),
    )
}

/// A TA1 answering the received interchange's envelope (see `ta1.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ta1 {
    /// TA104: `A` accepted, `R` rejected.
    pub code: &'static str,
    /// TA105, the interchange note code (`000` when accepted).
    pub note: &'static str,
}

/// Writes the acknowledging interchange: ISA, the TA1 when there is one, then a 997 group
/// when there are groups to acknowledge, then IEA.
pub(crate) fn write<'s>(
    isa: &Segment,
    d: &Delimiters,
    ta1: Option<Ta1>,
    groups: &[GroupPlan],
    control_number: u32,
    now: OffsetDateTime,
    lookup: &dyn Fn(usize) -> Option<&'s Segment>,
) -> String {
    let now = now.checked_to_offset(time::UtcOffset::UTC).unwrap_or(now);
    let ascii = |b: u8| b.is_ascii().then_some(char::from(b));
    let version = isa.trimmed(12).unwrap_or("00401");
    let received = (ascii(d.element), ascii(d.component), ascii(d.segment));
    let (element, component, segment) = match received {
        (Some(e), Some(c), Some(s)) if d.repetition.is_none_or(|r| r.is_ascii()) => (e, c, s),
        _ => ('*', '>', '~'),
    };
    let taken = [element, component, segment];
    let repetition = if version > "00401" {
        d.repetition
            .and_then(ascii)
            .filter(|r| !taken.contains(r))
            .or_else(|| ['^', '{', '!'].into_iter().find(|c| !taken.contains(c)))
    } else {
        None
    };
    let isa11 = repetition.unwrap_or('U');
    let mut out = Out {
        element,
        component,
        segment,
        line_break: d.line_break,
        repetition,
        text: String::new(),
        count: 0,
    };
    let control = control_number % 1_000_000_000;
    let (y, m, day) = ymd(now);
    let hhmm = format!("{:02}{:02}", now.hour(), now.minute());
    let f = |pos: usize, width: usize, out: &Out| out.fixed(isa.get(pos).unwrap_or(""), width);
    let header = [
        "ISA".to_owned(),
        "00".into(),
        " ".repeat(10),
        "00".into(),
        " ".repeat(10),
        f(7, 2, &out),
        f(8, 15, &out),
        f(5, 2, &out),
        f(6, 15, &out),
        format!("{:02}{m:02}{day:02}", y % 100),
        hhmm.clone(),
        isa11.to_string(),
        out.fixed(version, 5),
        format!("{control:09}"),
        "0".into(),
        f(15, 1, &out),
        component.to_string(),
    ];
    // ISA is fixed-width: every element is written, even the blank ones.
    out.text.push_str(&header.join(&element.to_string()));
    out.text.push(segment);
    out.text.push_str(d.line_break);
    if let Some(t) = ta1 {
        // TA101–TA103 repeat the received ISA13, ISA09 and ISA10.
        let received = |pos: usize, out: &Out| out.clean(isa.trimmed(pos).unwrap_or(""));
        let (ctl, date, time) = (received(13, &out), received(9, &out), received(10, &out));
        out.seg(&["TA1", &ctl, &date, &time, t.code, t.note]);
    }
    if let Some(first) = groups.first() {
        let sender = out.clean(first.header.get(3).unwrap_or("WAYBILL"));
        let receiver = out.clean(first.header.get(2).unwrap_or("PARTNER"));
        let gs_version = out.clean(first.header.get(8).unwrap_or("004010"));
        let date = format!("{y:04}{m:02}{day:02}");
        let control = control.to_string();
        out.seg(&[
            "GS",
            "FA",
            &sender,
            &receiver,
            &date,
            &hhmm,
            &control,
            "X",
            &gs_version,
        ]);
        for (n, g) in groups.iter().enumerate() {
            write_set(&mut out, g, n + 1, lookup);
        }
        out.seg(&["GE", &groups.len().to_string(), &control]);
    }
    out.seg(&[
        "IEA",
        &usize::from(!groups.is_empty()).to_string(),
        &format!("{control:09}"),
    ]);
    out.text
}

fn write_set<'s>(
    out: &mut Out,
    g: &GroupPlan,
    n: usize,
    lookup: &dyn Fn(usize) -> Option<&'s Segment>,
) {
    let st02 = format!("{n:04}");
    let start = out.count;
    out.seg(&["ST", "997", &st02]);
    let fid = out.clean(g.header.get(1).unwrap_or(""));
    let gctl = out.clean(g.header.get(6).unwrap_or(""));
    out.seg(&["AK1", &fid, &gctl]);
    let mut accepted = 0;
    for s in &g.sets {
        let (id, ctl) = (out.clean(&s.id), out.clean(&s.control));
        out.seg(&["AK2", &id, &ctl]);
        match &s.outcome {
            Outcome::Accepted => {
                accepted += 1;
                out.seg(&["AK5", "A"]);
            }
            Outcome::Rejected(None) => out.seg(&["AK5", "R"]),
            Outcome::Rejected(Some(e)) => {
                let code = set_lines(out, e, s.first_index, lookup).unwrap_or("5");
                out.seg(&["AK5", "R", code]);
            }
        }
    }
    let received = g.sets.len();
    let ak9 = if g.rejected || (accepted == 0 && received > 0) {
        "R"
    } else if accepted == received {
        "A"
    } else {
        "P"
    };
    let accepted = if g.rejected { 0 } else { accepted };
    out.seg(&[
        "AK9",
        ak9,
        &g.declared.to_string(),
        &received.to_string(),
        &accepted.to_string(),
        g.error_code.unwrap_or(""),
    ]);
    let count = out.count - start + 1;
    out.seg(&["SE", &count.to_string(), &st02]);
}
