//! Placing X12 times on the time line, and what an event says about how it was placed.
//!
//! A time with a zone (AT7-07, DTM-04 or G62-05 naming one) is an instant. A time without
//! one (no time code, `LT`, the BSN's date and time, the 210's dates) is a wall-clock
//! reading at the place of the event, whose offset the document does not give. It is never
//! written as if it were UTC:
//!
//! - with the source's `local_time_offset` (e.g. `-06:00`) it is converted with that
//!   offset; `data` says `time_zone: "configured"`, `local_time` (the wall clock as given)
//!   and `utc_offset`;
//! - without it, the event's `time` is when Waybill received the document (a true
//!   instant), and `data` says `time_zone: "local_unknown"` and `local_time`.
//!
//! Identity never depends on either: a status fact's key uses `local:<wall clock>` for a
//! local time (see [`Placed::fact_time`]), so the same document gives the same events
//! whatever the offset setting and whenever it arrives.

use super::timecode::Stamp;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// How a stamp was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The document named the zone: `at` is the instant, in the document's offset.
    Zoned,
    /// A local time converted with the source's `local_time_offset`.
    Configured,
    /// A local time of unknown offset: `at` is the receipt time.
    Unplaced,
}

/// A stamp on the time line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The event's time: a true instant.
    pub at: OffsetDateTime,
    /// The wall clock as the document gives it (for local times: what `local_time` says).
    pub wall: PrimitiveDateTime,
    /// Whether the document gave a time of day (else only a date: `wall` is midnight).
    pub has_time: bool,
    /// How `at` was found.
    pub how: Placement,
}

/// Parses a fixed UTC offset `±HH:MM` (at most ±14:00), as `local_time_offset` takes it.
pub fn parse_offset(raw: &str) -> Result<UtcOffset, String> {
    let bad = || format!("`{raw}` is not a UTC offset like \"-06:00\" or \"+01:00\"");
    let b = raw.as_bytes();
    if b.len() != 6 || !matches!(b[0], b'+' | b'-') || b[3] != b':' {
        return Err(bad());
    }
    let num = |s: Option<&str>| {
        s.filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse::<i8>().ok())
    };
    let (Some(h), Some(m)) = (num(raw.get(1..3)), num(raw.get(4..6))) else {
        return Err(bad());
    };
    if m > 59 || h > 14 || (h == 14 && m > 0) {
        return Err(bad());
    }
    let sign = if b[0] == b'-' { -1 } else { 1 };
    UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| bad())
}

impl Placed {
    /// Places `stamp`: its own zone when it has one, else `local_offset`, else the receipt
    /// time. `None` when a zoned time cannot be written as RFC 3339.
    pub fn new(
        stamp: &Stamp,
        local_offset: Option<UtcOffset>,
        received: OffsetDateTime,
    ) -> Option<Placed> {
        let wall = stamp.wall();
        let has_time = stamp.time.is_some();
        let (at, how) = match (stamp.offset(), local_offset) {
            (Some(zone), _) => (wall.assume_offset(zone), Placement::Zoned),
            (None, Some(offset)) => (wall.assume_offset(offset), Placement::Configured),
            (None, None) => (received, Placement::Unplaced),
        };
        at.format(&Rfc3339).ok()?;
        Some(Placed {
            at,
            wall,
            has_time,
            how,
        })
    }

    /// The event's `time`: RFC 3339 in the document's (or the configured) offset.
    pub fn time_text(&self) -> String {
        self.at
            .format(&Rfc3339)
            .unwrap_or_else(|_| waybill_model::utc_text(self.at))
    }

    /// The wall clock as given: `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS[.f]` with a time.
    pub fn wall_text(&self) -> String {
        wall_text(self.wall, self.has_time)
    }

    /// The time part of a fact key: the UTC instant for a zoned time, `local:<wall
    /// clock>` for a local one (configured or not, so identity never depends on the
    /// setting nor on the receipt time).
    pub fn fact_time(&self) -> String {
        match self.how {
            Placement::Zoned => waybill_model::utc_text(self.at),
            Placement::Configured | Placement::Unplaced => format!("local:{}", self.wall_text()),
        }
    }

    /// The time as the document gives it: RFC 3339 with its offset when zoned, else the
    /// wall clock.
    pub fn as_given(&self) -> String {
        match self.how {
            Placement::Zoned => self.time_text(),
            Placement::Configured | Placement::Unplaced => self.wall_text(),
        }
    }

    /// Whether `self` is later than `other`: by wall clock when either could not be placed
    /// (its `at` is the receipt time then), else by instant.
    pub fn is_after(&self, other: &Placed) -> bool {
        match (self.how, other.how) {
            // An unplaced time's `at` is the receipt time, not when it happened: only the
            // wall clocks (the sender's, on both sides) can be compared.
            (Placement::Unplaced, _) | (_, Placement::Unplaced) => self.wall > other.wall,
            _ => self.at > other.at,
        }
    }

    /// Dates `self` at `other`'s time (keeping `self`'s own local wall clock unless both
    /// are unplaced, where the wall clock is the only date there is).
    pub fn move_to(&mut self, other: &Placed) {
        if self.how == Placement::Unplaced && other.how == Placement::Unplaced {
            self.wall = other.wall;
            self.has_time = other.has_time;
        }
        self.at = other.at;
    }

    /// Adds `time_zone`, `local_time` and `utc_offset` to an event's `data` (nothing for a
    /// zoned time).
    pub fn describe(&self, data: &mut Map<String, Value>) {
        match self.how {
            Placement::Zoned => {}
            Placement::Configured => {
                data.insert("time_zone".into(), "configured".into());
                data.insert("local_time".into(), self.wall_text().into());
                data.insert("utc_offset".into(), offset_text(self.at.offset()).into());
            }
            Placement::Unplaced => {
                data.insert("time_zone".into(), "local_unknown".into());
                data.insert("local_time".into(), self.wall_text().into());
            }
        }
    }
}

/// `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS[.f]` when `has_time`.
pub fn wall_text(wall: PrimitiveDateTime, has_time: bool) -> String {
    let d = wall.date();
    let date = format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    if !has_time {
        return date;
    }
    let t = wall.time();
    let mut text = format!("{date}T{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    if t.nanosecond() > 0 {
        let frac = format!("{:09}", t.nanosecond());
        text.push('.');
        text.push_str(frac.trim_end_matches('0'));
    }
    text
}

/// `±HH:MM`.
fn offset_text(o: UtcOffset) -> String {
    let (h, m, _) = o.as_hms();
    let sign = if o.is_negative() { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

/// A stamp as the document gives it, without placing it: RFC 3339 with its offset when
/// it has a time and a zone, else the wall clock (`YYYY-MM-DD[THH:MM:SS]`).
pub fn as_given(stamp: &Stamp) -> String {
    let wall = wall_text(stamp.wall(), stamp.time.is_some());
    match (stamp.offset(), stamp.time) {
        (Some(offset), Some(_)) => stamp
            .wall()
            .assume_offset(offset)
            .format(&Rfc3339)
            .unwrap_or(wall),
        _ => wall,
    }
}
