//! 997 Functional Acknowledgment: what Waybill accepted or rejected, and why.
//!
//! One interchange in, one 997 interchange out: ISA with sender and receiver swapped,
//! one `GS*FA` group, and one 997 transaction set per received group (AK1 group
//! response header, AK2/AK5 per received set, AK9 group response trailer). Codes used
//! (X12 004010 code lists, as published by Stedi: elements 715, 716, 717, 718, 720, 723
//! at <https://www.stedi.com/edi/x12-004010/element/NNN>):
//!
//! | where | code | meaning | when |
//! |---|---|---|---|
//! | AK5-01 (717) | `A` / `R` | accepted / rejected | |
//! | AK5-02 (718) | `1` | transaction set not supported | `x12.unsupported_set` |
//! | | `2` | trailer missing | `x12.missing_segment` (SE), `x12.truncated` in a set |
//! | | `3` | control number in header and trailer differ | `x12.control_number_mismatch` at SE |
//! | | `4` | number of included segments differs from count | `x12.segment_count_mismatch` |
//! | | `5` | one or more segments in error (with AK3) | other errors inside a set |
//! | | `6` / `7` | missing or invalid set identifier / control number | `x12.bad_element` at ST01 / ST02 |
//! | AK3-04 (720) | `1` | unrecognized segment id | `x12.unexpected_segment`, id not X12-shaped |
//! | | `2` | unexpected segment | `x12.unexpected_segment` |
//! | | `3` | mandatory segment missing | `x12.missing_segment` (B10, BSN, B3, HL, TD5) |
//! | | `8` | segment has data element errors (with AK4) | `x12.bad_element` |
//! | AK4-03 (723) | `1` `5` `6` `7` `8` `9` | missing, too long, invalid character, invalid code, invalid date, invalid time | `x12.bad_element`, by its `ElementProblem` |
//! | AK9-01 (715) | `A` / `P` / `R` | all / some / no sets accepted | |
//! | AK9-05 (716) | `3` | group trailer missing | `x12.missing_segment` (GE), `x12.truncated` outside a set |
//! | | `4` | group control numbers differ | `x12.control_number_mismatch` at GE |
//! | | `5` | number of included sets differs from count | `x12.set_count_mismatch` |
//! | | `6` | group control number violates syntax | `x12.bad_element` at GS06 |
//!
//! Interchange-level failures (bad ISA, IEA count or control number) are not a 997's
//! business: [`reject_997`] returns `None` for them. When the sender asked for a TA1
//! (ISA14 = `1`) and the ISA can be read, a TA1 alone answers them (`ta1.rs`); an
//! unreadable ISA gets nothing. With ISA14 = `1` the 997 interchange also carries a TA1
//! about the envelope, after its ISA.

use super::ack_write::{self, GroupPlan, Outcome, SetPlan};
use super::envelope;
use super::error::{ErrorKind, X12Error};
use super::mapping;
use super::parse;
use super::ta1;
use super::wire::{Interchange, Segment};
use time::OffsetDateTime;

/// What to acknowledge: the sets and groups rejected, and why. Everything else is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckResult {
    /// Rejected sets or groups.
    pub rejections: Vec<Rejection>,
}

/// One rejected set (or whole group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 0-based index of the functional group in the interchange.
    pub group: usize,
    /// 0-based index of the set in its group; `None` rejects the whole group.
    pub set: Option<usize>,
    /// Why; `None` when it is rejected only because the interchange is handled all or
    /// nothing and another set failed (AK5 `R` without a code).
    pub error: Option<X12Error>,
}

impl AckResult {
    /// Accepts every set.
    pub fn accept_all() -> Self {
        AckResult::default()
    }

    /// Validates every set as [`mapping::map`] would. Mapping is all or nothing, so when
    /// one set fails every other set is reported rejected too (without a code of its own).
    pub fn check(ic: &Interchange) -> Self {
        let mut failed = Vec::new();
        let mut all = Vec::new();
        for (gi, group) in ic.groups.iter().enumerate() {
            for (si, set) in group.sets.iter().enumerate() {
                all.push((gi, si));
                if let Err(e) = mapping::map_set(ic, group, set, OffsetDateTime::UNIX_EPOCH, None) {
                    failed.push(Rejection {
                        group: gi,
                        set: Some(si),
                        error: Some(e),
                    });
                }
            }
        }
        if failed.is_empty() {
            return AckResult::default();
        }
        for (gi, si) in all {
            if !failed.iter().any(|r| r.group == gi && r.set == Some(si)) {
                failed.push(Rejection {
                    group: gi,
                    set: Some(si),
                    error: None,
                });
            }
        }
        AckResult { rejections: failed }
    }

    /// Whether nothing is rejected.
    pub fn is_accepted(&self) -> bool {
        self.rejections.is_empty()
    }
}

/// Builds the 997 interchange acknowledging `ic` as `result` says. `control_number` is
/// used for ISA13 and GS06 (reduced modulo 10⁹); `now` dates the envelope (in UTC).
pub fn ack_997(
    ic: &Interchange,
    result: &AckResult,
    control_number: u32,
    now: OffsetDateTime,
) -> String {
    let mut plans: Vec<GroupPlan> = ic
        .groups
        .iter()
        .map(|g| GroupPlan {
            header: g.header.clone(),
            declared: envelope::count(&g.trailer, 1).unwrap_or(g.sets.len()),
            error_code: None,
            rejected: false,
            sets: g
                .sets
                .iter()
                .map(|s| SetPlan {
                    id: s.id.clone(),
                    control: s.control_number.clone(),
                    first_index: s.segments.first().map_or(0, |x| x.index),
                    outcome: Outcome::Accepted,
                })
                .collect(),
        })
        .collect();
    for r in &result.rejections {
        let Some(plan) = plans.get_mut(r.group) else {
            continue;
        };
        match r.set {
            Some(si) => {
                if let Some(set) = plan.sets.get_mut(si) {
                    set.outcome = Outcome::Rejected(r.error.clone());
                }
            }
            None => {
                plan.error_code = r.error.as_ref().and_then(group_code);
                for set in &mut plan.sets {
                    set.outcome = Outcome::Rejected(None);
                }
                plan.rejected = true;
            }
        }
    }
    let lookup = |index: usize| -> Option<&Segment> {
        ic.groups
            .iter()
            .flat_map(|g| g.sets.iter())
            .flat_map(|s| s.segments.iter())
            .find(|s| s.index == index)
    };
    // The envelope parsed, so it checked out: a TA1 `A` when the sender asked for one.
    let ta1 = ta1::requested(&ic.header).then_some(ta1::ACCEPTED);
    ack_write::write(
        &ic.header,
        &ic.delimiters,
        ta1,
        &plans,
        control_number,
        now,
        &lookup,
    )
}

/// The AK9-05 code for a group-level error.
fn group_code(e: &X12Error) -> Option<&'static str> {
    match &e.kind {
        ErrorKind::MissingSegment("GE") | ErrorKind::Truncated => Some("3"),
        ErrorKind::ControlNumberMismatch => Some("4"),
        ErrorKind::SetCountMismatch => Some("5"),
        ErrorKind::BadElement(_) if e.at.segment_id == "GS" && e.at.element == Some(6) => Some("6"),
        _ => None,
    }
}

/// A group or set found by a lenient scan of the segments (no counts trusted).
struct Loose {
    gs: Segment,
    ge: Option<Segment>,
    sets: Vec<(Segment, Option<usize>)>,
}

fn scan(segments: &[Segment]) -> Vec<Loose> {
    let mut groups: Vec<Loose> = Vec::new();
    for seg in segments.iter().skip(1) {
        match seg.id.as_str() {
            "GS" => groups.push(Loose {
                gs: seg.clone(),
                ge: None,
                sets: Vec::new(),
            }),
            "GE" => {
                if let Some(g) = groups.last_mut().filter(|g| g.ge.is_none()) {
                    g.ge = Some(seg.clone());
                }
            }
            "ST" => {
                if let Some(g) = groups.last_mut().filter(|g| g.ge.is_none()) {
                    g.sets.push((seg.clone(), None));
                }
            }
            "SE" => {
                let open = groups
                    .last_mut()
                    .and_then(|g| g.sets.last_mut())
                    .filter(|s| s.1.is_none());
                if let Some(s) = open {
                    s.1 = Some(seg.index);
                }
            }
            _ => {}
        }
    }
    groups
}

/// Where a failure sits for a 997.
struct Located {
    /// Index of the group in the scan.
    group: usize,
    /// Index of the set in that group, when the failure is inside one.
    set: Option<usize>,
    /// Whether the set (not the whole group) is at fault.
    set_level: bool,
}

/// Finds the group and set `error` is in; `None` for a failure at the interchange level
/// (ISA, IEA, between the groups), which a 997 cannot name.
fn locate(groups: &[Loose], error: &X12Error) -> Option<Located> {
    let idx = error.at.segment_index;
    let missing_ge = error.kind == ErrorKind::MissingSegment("GE");
    let gi = groups.iter().rposition(|g| {
        let starts = if missing_ge {
            g.gs.index < idx
        } else {
            g.gs.index <= idx
        };
        starts && g.ge.as_ref().is_none_or(|ge| idx <= ge.index)
    })?;
    let group = groups.get(gi)?;
    let missing_se = error.kind == ErrorKind::MissingSegment("SE");
    let si = group.sets.iter().rposition(|(st, se)| {
        let starts = if missing_se {
            st.index < idx
        } else {
            st.index <= idx
        };
        starts && se.is_none_or(|se| idx <= se)
    });
    let set_level = match &error.kind {
        ErrorKind::BadIsa | ErrorKind::GroupCountMismatch | ErrorKind::MissingSegment("IEA") => {
            return None
        }
        ErrorKind::SetCountMismatch | ErrorKind::MissingSegment("GE") => false,
        ErrorKind::ControlNumberMismatch => match error.at.segment_id.as_str() {
            "IEA" => return None,
            "GE" => false,
            _ => true,
        },
        _ => si.is_some(),
    };
    Some(Located {
        group: gi,
        set: si,
        set_level,
    })
}

/// Whether [`reject_997`] can name where `error` is; otherwise it is the envelope's, a
/// TA1's business.
pub(crate) fn names_a_group(tokens: &parse::Tokens, error: &X12Error) -> bool {
    locate(&scan(&tokens.segments), error).is_some()
}

/// Builds a 997 rejecting an interchange whose ISA could be read but which failed later —
/// in the envelope (`parse`) or in a set (`map`). The set or group named by `error` gets
/// its codes; every other set is rejected without one (the interchange was not processed).
/// `None` when the error is at the interchange level (see the module docs).
pub fn reject_997(
    input: &[u8],
    error: &X12Error,
    control_number: u32,
    now: OffsetDateTime,
) -> Option<String> {
    let tokens = parse::tokenize(input).ok()?;
    let groups = scan(&tokens.segments);
    let Located {
        group: gi,
        set: si,
        set_level,
    } = locate(&groups, error)?;
    let plans = groups
        .iter()
        .enumerate()
        .map(|(g, loose)| {
            let target_group = g == gi;
            GroupPlan {
                header: loose.gs.clone(),
                declared: loose
                    .ge
                    .as_ref()
                    .and_then(|ge| envelope::count(ge, 1).ok())
                    .unwrap_or(loose.sets.len()),
                error_code: (target_group && !set_level)
                    .then(|| group_code(error))
                    .flatten(),
                rejected: true,
                sets: loose
                    .sets
                    .iter()
                    .enumerate()
                    .map(|(s, (st, _))| SetPlan {
                        id: st.get(1).unwrap_or("").to_owned(),
                        control: st.get(2).unwrap_or("").to_owned(),
                        first_index: st.index,
                        outcome: Outcome::Rejected(
                            (target_group && set_level && Some(s) == si).then(|| error.clone()),
                        ),
                    })
                    .collect(),
            }
        })
        .collect::<Vec<_>>();
    let isa = tokens.segments.first()?;
    let lookup = |index: usize| tokens.segments.get(index.checked_sub(1)?);
    let ta1 = if ta1::requested(isa) {
        ta1::for_tokens(&tokens)
    } else {
        None
    };
    Some(ack_write::write(
        isa,
        &tokens.delimiters,
        ta1,
        &plans,
        control_number,
        now,
        &lookup,
    ))
}
