//! X12 dates (CCYYMMDD), times (`HHMM[SS[D[D]]]`) and time codes (element 623, used by
//! AT7-07, DTM-04 and G62-05) → a wall clock and, when the code names one, its offset.
//!
//! Time codes: `UT`/`GM` are UTC; `ES`/`ED`, `CS`/`CD`, `MS`/`MD`, `PS`/`PD`, `AS`/`AD`
//! (Alaska), `HS`/`HD`, `NS`/`ND` (Newfoundland), `TS`/`TD` (Atlantic) are fixed standard
//! or daylight offsets; the generic `ET`, `CT`, `MT`, `PT`, `AT`, `NT`, `TT` take the
//! daylight offset when the local wall time falls inside North American daylight saving
//! (second Sunday of March 02:00 to first Sunday of November 02:00, the rule in force
//! since 2007, applied to every year); `HT` is taken as Hawaii (no daylight saving);
//! `01`–`12` are ISO P01–P12 (+01:00…+12:00) and `13`–`24` are M12–M01 (−12:00…−01:00).
//! `LT` (local time) and an absent code — which the standard defines as local time of
//! the status — cannot be placed without knowing the location's zone: `local_time.rs`
//! places them (with the source's `local_time_offset`, or not at all).

use super::error::{ElementProblem, X12Error};
use super::wire::Segment;
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset, Weekday};

/// The zone a time code designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Local time of the event (`LT`, or no time code): unknown offset.
    Local,
    /// A fixed offset, in minutes east of UTC.
    Fixed(i16),
    /// A North American zone that observes daylight saving: standard offset in minutes.
    Seasonal(i16),
}

/// A date, optional time and zone as given by the partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Calendar date.
    pub date: Date,
    /// Time of day, when given (midnight is used otherwise).
    pub time: Option<Time>,
    /// The zone of the time.
    pub zone: Zone,
}

/// The zone for a time code (element 623); `None` for a code outside the list.
pub fn zone(code: &str) -> Option<Zone> {
    let h = |hours: i16| hours * 60;
    Some(match code {
        "LT" => Zone::Local,
        "UT" | "GM" => Zone::Fixed(0),
        "ES" => Zone::Fixed(h(-5)),
        "ED" => Zone::Fixed(h(-4)),
        "ET" => Zone::Seasonal(h(-5)),
        "CS" => Zone::Fixed(h(-6)),
        "CD" => Zone::Fixed(h(-5)),
        "CT" => Zone::Seasonal(h(-6)),
        "MS" => Zone::Fixed(h(-7)),
        "MD" => Zone::Fixed(h(-6)),
        "MT" => Zone::Seasonal(h(-7)),
        "PS" => Zone::Fixed(h(-8)),
        "PD" => Zone::Fixed(h(-7)),
        "PT" => Zone::Seasonal(h(-8)),
        "AS" => Zone::Fixed(h(-9)),
        "AD" => Zone::Fixed(h(-8)),
        "AT" => Zone::Seasonal(h(-9)),
        "HS" | "HT" => Zone::Fixed(h(-10)),
        "HD" => Zone::Fixed(h(-9)),
        "NS" => Zone::Fixed(-210),
        "ND" => Zone::Fixed(-150),
        "NT" => Zone::Seasonal(-210),
        "TS" => Zone::Fixed(h(-4)),
        "TD" => Zone::Fixed(h(-3)),
        "TT" => Zone::Seasonal(h(-4)),
        _ => {
            let n: i16 = code.parse().ok().filter(|_| code.len() == 2)?;
            match n {
                1..=12 => Zone::Fixed(h(n)),
                13..=24 => Zone::Fixed(h(n - 25)),
                _ => return None,
            }
        }
    })
}

fn digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn num(s: &str, range: std::ops::Range<usize>) -> Option<u32> {
    s.get(range)?.parse().ok()
}

/// Parses CCYYMMDD.
pub fn date(raw: &str) -> Option<Date> {
    if raw.len() != 8 || !digits(raw) {
        return None;
    }
    let year = i32::try_from(num(raw, 0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(raw, 4..6)?).ok()?).ok()?;
    Date::from_calendar_date(year, month, u8::try_from(num(raw, 6..8)?).ok()?).ok()
}

/// Parses HHMM, HHMMSS, HHMMSSD or HHMMSSDD (D = decimal seconds).
pub fn time_of_day(raw: &str) -> Option<Time> {
    if !matches!(raw.len(), 4 | 6 | 7 | 8) || !digits(raw) {
        return None;
    }
    let hour = u8::try_from(num(raw, 0..2)?).ok()?;
    let minute = u8::try_from(num(raw, 2..4)?).ok()?;
    let second = if raw.len() >= 6 {
        u8::try_from(num(raw, 4..6)?).ok()?
    } else {
        0
    };
    let nanos = match raw.get(6..) {
        Some(f) if f.len() == 1 => num(f, 0..1)? * 100_000_000,
        Some(f) if f.len() == 2 => num(f, 0..2)? * 10_000_000,
        _ => 0,
    };
    Time::from_hms_nano(hour, minute, second, nanos).ok()
}

/// Reads a date, time and time code from three elements of a segment (positions
/// 1-based); `Ok(None)` when the date is absent (a time without a date is an error).
pub fn read(
    seg: &Segment,
    date_pos: usize,
    time_pos: usize,
    code_pos: usize,
) -> Result<Option<Stamp>, X12Error> {
    let t = match seg.get(time_pos) {
        None => None,
        Some(raw) => Some(time_of_day(raw).ok_or_else(|| {
            seg.element_error(
                time_pos,
                ElementProblem::InvalidTime,
                format!("`{raw}` is not HHMM[SS[D[D]]]"),
            )
        })?),
    };
    let zone = match seg.get(code_pos) {
        None => Zone::Local,
        Some(raw) => zone(raw).ok_or_else(|| {
            seg.element_error(
                code_pos,
                ElementProblem::InvalidCode,
                format!("`{raw}` is not a time code"),
            )
        })?,
    };
    let Some(raw) = seg.get(date_pos) else {
        return match t {
            Some(_) => {
                Err(seg.element_error(date_pos, ElementProblem::Missing, "a time needs a date"))
            }
            None => Ok(None),
        };
    };
    let date = date(raw).ok_or_else(|| {
        seg.element_error(
            date_pos,
            ElementProblem::InvalidDate,
            format!("`{raw}` is not CCYYMMDD"),
        )
    })?;
    Ok(Some(Stamp {
        date,
        time: t,
        zone,
    }))
}

fn nth_sunday(year: i32, month: Month, n: u8) -> Option<Date> {
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
    first.replace_day(1 + to_sunday + 7 * (n - 1)).ok()
}

/// Whether a local wall time is inside North American daylight saving (2007 rule).
fn daylight(at: PrimitiveDateTime) -> bool {
    let two = Time::MIDNIGHT.replace_hour(2).unwrap_or(Time::MIDNIGHT);
    let year = at.year();
    match (
        nth_sunday(year, Month::March, 2),
        nth_sunday(year, Month::November, 1),
    ) {
        (Some(start), Some(end)) => {
            debug_assert_eq!(start.weekday(), Weekday::Sunday);
            at >= PrimitiveDateTime::new(start, two) && at < PrimitiveDateTime::new(end, two)
        }
        _ => false,
    }
}

impl Stamp {
    /// The date and time of day as given (midnight when no time was given).
    pub fn wall(&self) -> PrimitiveDateTime {
        PrimitiveDateTime::new(self.date, self.time.unwrap_or(Time::MIDNIGHT))
    }

    /// The UTC offset the time code names; `None` for a local time (zone unknown), which
    /// `local_time.rs` places.
    pub fn offset(&self) -> Option<UtcOffset> {
        let minutes = match self.zone {
            Zone::Local => return None,
            Zone::Fixed(m) => m,
            Zone::Seasonal(m) if daylight(self.wall()) => m + 60,
            Zone::Seasonal(m) => m,
        };
        UtcOffset::from_whole_seconds(i32::from(minutes) * 60).ok()
    }
}
