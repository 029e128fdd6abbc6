//! Occurrence times as carriers and aggregators write them, normalized to RFC 3339 UTC.
//!
//! What arrives, and what we do with it:
//! - RFC 3339 with `Z` or an offset (`2024-07-31T11:00:00-04:00`): converted to UTC.
//! - An ISO offset without a colon (`+0800`, seen from some carriers via AfterShip):
//!   converted to UTC.
//! - A local wall-clock time without any zone (`2024-07-31T11:00:00`, `2024-07-31 11:00`):
//!   the zone is unknowable from the payload, so it is taken as UTC and marked
//!   [`Zone::AssumedUtc`]; mappings then record `data.time_zone = "assumed_utc"` and the
//!   raw string, so ordering across sources can be audited. Being off by the local offset
//!   is preferred to falling back to the receive time, which loses the order entirely.
//! - A date alone (`2024-07-31`): midnight, [`Zone::AssumedUtc`].
//! - Anything else: not a time (`None`); the mapping reports it with its JSON path.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Whether the zone came from the payload or was assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The payload gave `Z` or an offset.
    Explicit,
    /// No zone in the payload: read as UTC.
    AssumedUtc,
}

/// A normalized occurrence time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierTime {
    /// The instant, in UTC.
    pub utc: OffsetDateTime,
    /// Where the zone came from.
    pub zone: Zone,
}

impl CarrierTime {
    /// RFC 3339 in UTC (`…Z`), the form `EventDraft::time` takes.
    pub fn rfc3339(&self) -> String {
        // `parse` only builds values whose year is 0..=9999, which always format.
        self.utc.format(&Rfc3339).unwrap_or_default()
    }
}

/// A required time field at `path`: missing and unparsable are both errors naming it.
pub fn required(
    partner: crate::carrier::map_error::Partner,
    raw: Option<&str>,
    path: &str,
) -> Result<CarrierTime, crate::carrier::map_error::MapError> {
    use crate::carrier::map_error::MapError;
    let raw =
        crate::carrier::updates::non_blank(raw).ok_or_else(|| MapError::missing(partner, path))?;
    parse(raw).ok_or_else(|| MapError::BadTime {
        partner,
        path: path.to_owned(),
        value: raw.to_owned(),
    })
}

/// Parses one partner time string (see the module docs). Blank input is `None`.
pub fn parse(raw: &str) -> Option<CarrierTime> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    let explicit = |t: OffsetDateTime| finish(t, Zone::Explicit);
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return explicit(t);
    }
    let compact_offset = [
        format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
        ),
        format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]"
        ),
    ];
    for f in compact_offset {
        if let Ok(t) = OffsetDateTime::parse(s, &f) {
            return explicit(t);
        }
    }
    let naive = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        format_description!("[year]-[month]-[day] [hour]:[minute]"),
    ];
    for f in naive {
        if let Ok(t) = PrimitiveDateTime::parse(s, &f) {
            return finish(t.assume_utc(), Zone::AssumedUtc);
        }
    }
    let date = Date::parse(s, &format_description!("[year]-[month]-[day]")).ok()?;
    finish(date.midnight().assume_utc(), Zone::AssumedUtc)
}

/// Parses a date (`YYYY-MM-DD`) with an optional separate wall-clock time (`14:05`,
/// `14:05:09`, `2:05 PM`, `14:05 PM`), as Karrio events carry them; zone assumed UTC. A
/// clock that cannot be read is ignored (the date alone still orders the event).
pub fn parse_date_and_clock(date: &str, clock: Option<&str>) -> Option<CarrierTime> {
    let day = Date::parse(date.trim(), &format_description!("[year]-[month]-[day]")).ok()?;
    let at = clock.and_then(parse_clock).unwrap_or(Time::MIDNIGHT);
    finish(
        PrimitiveDateTime::new(day, at).assume_utc(),
        Zone::AssumedUtc,
    )
}

/// `H:MM[:SS][ AM|PM]`. Karrio formats with `%H:%M %p`, so `14:05 PM` occurs: an hour
/// above 12 ignores the suffix; `12:xx AM` is just after midnight.
fn parse_clock(raw: &str) -> Option<Time> {
    let s = raw.trim().to_ascii_uppercase();
    let (hms, meridiem) = match s.strip_suffix("AM").or_else(|| s.strip_suffix("PM")) {
        Some(rest) => (rest.trim_end(), Some(s.ends_with("PM"))),
        None => (s.as_str(), None),
    };
    let mut parts = hms.split(':');
    let mut next = || -> Option<u8> {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let mut hour = next()?;
    let minute = next()?;
    let second = next().unwrap_or(0);
    match meridiem {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    Time::from_hms(hour, minute, second).ok()
}

fn finish(t: OffsetDateTime, zone: Zone) -> Option<CarrierTime> {
    // `to_offset` panics when the result leaves the supported range (year 9999 with a
    // negative offset, found by fuzzing); the checked form says so instead.
    let utc = t.checked_to_offset(UtcOffset::UTC)?;
    (0..=9999)
        .contains(&utc.year())
        .then_some(CarrierTime { utc, zone })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Option<(String, Zone)> {
        parse(s).map(|t| (t.rfc3339(), t.zone))
    }

    #[test]
    fn explicit_zones_are_converted_to_utc() {
        let z = Zone::Explicit;
        assert_eq!(
            norm("2024-07-31T15:00:00Z"),
            Some(("2024-07-31T15:00:00Z".into(), z))
        );
        assert_eq!(
            norm("2024-07-31T11:00:00-04:00"),
            Some(("2024-07-31T15:00:00Z".into(), z))
        );
        assert_eq!(
            norm("2025-01-09T18:30:00+0800"),
            Some(("2025-01-09T10:30:00Z".into(), z))
        );
        assert_eq!(
            norm("2025-12-04T07:16:00.000Z"),
            Some(("2025-12-04T07:16:00Z".into(), z))
        );
    }

    #[test]
    fn times_without_a_zone_are_assumed_utc() {
        let a = Zone::AssumedUtc;
        assert_eq!(
            norm("2024-07-31T11:00:00"),
            Some(("2024-07-31T11:00:00Z".into(), a))
        );
        assert_eq!(
            norm("2024-07-31 11:00"),
            Some(("2024-07-31T11:00:00Z".into(), a))
        );
        assert_eq!(norm("2024-07-31"), Some(("2024-07-31T00:00:00Z".into(), a)));
    }

    #[test]
    fn garbage_and_blank_are_not_times() {
        for s in [
            "",
            "  ",
            "yesterday",
            "2024-13-01",
            "2024-07-31T25:00:00Z",
            "0",
        ] {
            assert_eq!(norm(s), None, "{s:?}");
        }
    }

    #[test]
    fn karrio_dates_and_clocks_combine() {
        let t = |d, c| parse_date_and_clock(d, c).map(|t| t.rfc3339());
        assert_eq!(
            t("2026-03-10", Some("2:05 PM")),
            Some("2026-03-10T14:05:00Z".into())
        );
        assert_eq!(
            t("2026-03-10", Some("14:05 PM")),
            Some("2026-03-10T14:05:00Z".into())
        );
        assert_eq!(
            t("2026-03-10", Some("12:30 AM")),
            Some("2026-03-10T00:30:00Z".into())
        );
        assert_eq!(
            t("2026-03-10", Some("09:15:30")),
            Some("2026-03-10T09:15:30Z".into())
        );
        assert_eq!(
            t("2026-03-10", Some("10h30")),
            Some("2026-03-10T00:00:00Z".into())
        );
        assert_eq!(t("2026-03-10", None), Some("2026-03-10T00:00:00Z".into()));
        assert_eq!(t("10/03/2026", None), None);
    }
}
