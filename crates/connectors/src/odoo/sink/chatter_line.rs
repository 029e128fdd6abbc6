//! One line of chatter per event: what happened, when (UTC, or the place's wall clock)
//! and where, what the partner said; the lines of a note in the order the events
//! happened, and a status that happened before a milestone already in the chatter marked
//! late.

use super::notes::{marker, plain};
use super::*;

/// The format of a time in chatter: minutes, seconds only when there are some.
const MINUTES: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
const SECONDS: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// When the event happened, as people read it: UTC, or the wall clock of the place when
/// the partner gave no zone (`data.time_zone = "local"`, X12).
fn when(ev: &CloudEvent) -> String {
    let at = ev.time;
    let format = if at.second() == 0 { MINUTES } else { SECONDS };
    let text = at
        .format(format)
        .unwrap_or_else(|_| waybill_model::utc_text(at));
    match ev.data["time_zone"].as_str() {
        Some("local") => format!("{text} local time"),
        _ => format!("{text} UTC"),
    }
}

/// Where the event happened: city, state and country (or postal code), else the
/// location's text.
fn place(location: &Value) -> Option<String> {
    if let Some(t) = location.as_str().map(str::trim).filter(|t| !t.is_empty()) {
        return Some(t.to_owned());
    }
    let part = |k: &str| {
        location[k]
            .as_str()
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let mut parts: Vec<&str> = ["city", "state", "country"]
        .iter()
        .filter_map(|k| part(k))
        .collect();
    if parts.is_empty() {
        parts.extend(part("postal_code"));
    }
    match parts.is_empty() {
        true => part("text").map(str::to_owned),
        false => Some(parts.join(", ")),
    }
}

/// A quantity as people write it: `6`, `2.5`.
fn quantity(v: &Value) -> Option<String> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .map(|q: f64| q.to_string())
}

/// A one-line human description of an event for chatter and activities: type, time and
/// place, then what the partner said.
pub(super) fn describe(ev: &CloudEvent) -> String {
    let d = &ev.data;
    let mut s = format!("{} at {}", ev.ty, when(ev));
    if let Some(p) = place(&d["location"]) {
        s.push_str(&format!(" in {p}"));
    }
    if let Some(t) = d["raw"]["text"]
        .as_str()
        .or_else(|| d["raw"]["code"].as_str())
    {
        s.push_str(&format!(": {t}"));
    }
    if let Some(r) = d["reason"].as_str() {
        s.push_str(&format!(" (reason: {r})"));
    }
    let totals = &d["totals"];
    if let Some(shipped) = quantity(&totals["shipped_units"]) {
        s.push_str(&format!(": {shipped}"));
        if let Some(ordered) = quantity(&totals["ordered_units"]) {
            s.push_str(&format!(" of {ordered}"));
        }
        s.push_str(" units shipped");
        if let Some(b) = quantity(&totals["backordered_units"]).filter(|b| b != "0") {
            s.push_str(&format!(", {b} backordered"));
        }
    }
    if ev.ty == EventType::FreightChargeConfirmed {
        if let Some(t) = d["total"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| d["total"].as_f64().map(|f| f.to_string()))
        {
            s.push_str(&format!(
                ": freight {t} {}",
                d["currency"].as_str().unwrap_or("")
            ));
        }
        if let Some(i) = d["invoice_number"].as_str() {
            s.push_str(&format!(", carrier invoice {i}"));
        }
    }
    s
}

/// A milestone already in the picking's chatter: its type, when it happened, and that
/// time as the note shows it.
#[derive(Debug, Clone, PartialEq)]
struct Posted {
    ty: EventType,
    at: time::OffsetDateTime,
    when: String,
}

/// Reads back a line this sink wrote: `<type> at <YYYY-MM-DD HH:MM[:SS]> <zone>…`.
fn posted(line: &str) -> Option<Posted> {
    let (head, rest) = line.split_once(" at ")?;
    let ty: EventType = head.rsplit(' ').next()?.parse().ok()?;
    let (at, len) = [(SECONDS, 19), (MINUTES, 16)].iter().find_map(|(f, len)| {
        let t = rest.get(..*len)?;
        time::PrimitiveDateTime::parse(t, f)
            .ok()
            .map(|p| (p.assume_utc(), *len))
    })?;
    let zone = rest[len..]
        .split([',', ':', '['])
        .next()
        .unwrap_or("")
        .split(" in ")
        .next()
        .unwrap_or("")
        .trim_end();
    Some(Posted {
        ty,
        at,
        when: format!("{}{zone}", &rest[..len]),
    })
}

/// The milestone that happened last among those already in these notes, leaving out the
/// lines of `evs` themselves.
fn latest_milestone(notes: &[Value], evs: &[&CloudEvent]) -> Option<Posted> {
    let own: Vec<String> = evs.iter().map(|ev| marker(ev)).collect();
    notes
        .iter()
        .filter_map(|n| n["body"].as_str())
        .flat_map(|b| b.split("</p>"))
        .map(plain)
        .filter(|l| l.contains("[waybill ") && !own.iter().any(|m| l.contains(m.as_str())))
        .filter_map(|l| posted(&l))
        .filter(|p| matches!(p.ty.kind(), waybill_model::EventKind::Milestone(_)))
        .max_by_key(|p| p.at)
}

/// A chatter line per event, in the order the events happened (not the order they came
/// in). A status (a milestone or a flag) that happened before the latest milestone
/// already in the picking's chatter (`posted`, its notes) is marked late, naming that
/// milestone: its line is below it, so the reader is told.
pub(super) fn chatter_lines<'e>(
    posted: &[Value],
    evs: &[&'e CloudEvent],
) -> Vec<(&'e CloudEvent, String)> {
    let latest = latest_milestone(posted, evs);
    let mut sorted: Vec<&CloudEvent> = evs.to_vec();
    sorted.sort_by_key(|ev| ev.time);
    sorted
        .into_iter()
        .map(|ev| {
            let mut line = describe(ev);
            if let Some(l) = latest
                .as_ref()
                .filter(|l| ev.ty.is_status() && ev.time < l.at)
            {
                line.push_str(&format!(" (late: reported after {} at {})", l.ty, l.when));
            }
            (ev, line)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_line_reads_back_its_type_and_time() {
        let p = posted("WH/OUT/00020: shipment.delivered at 2026-11-23 14:00 UTC in Springfield, IL: Delivered [waybill x]").unwrap();
        assert_eq!(p.ty, EventType::ShipmentDelivered);
        assert_eq!(p.when, "2026-11-23 14:00 UTC");
        assert_eq!(waybill_model::utc_text(p.at), "2026-11-23T14:00:00Z");
        let p = posted("shipment.in_transit at 2026-03-09 06:45:10 local time: 011 [waybill y]")
            .unwrap();
        assert_eq!(
            (p.when.as_str(), waybill_model::utc_text(p.at).as_str()),
            ("2026-03-09 06:45:10 local time", "2026-03-09T06:45:10Z")
        );
        // Notes of earlier versions gave the date only: no time to compare with.
        assert_eq!(
            posted("shipment.delivered at 2026-11-23: x [waybill z]"),
            None
        );
    }

    #[test]
    fn a_place_is_its_city_state_and_country_or_its_text() {
        assert_eq!(
            place(
                &json!({"city": "Springfield", "state": "IL", "country": "US", "postal_code": "62701"})
            ),
            Some("Springfield, IL, US".into())
        );
        assert_eq!(
            place(&json!({"postal_code": "62701"})),
            Some("62701".into())
        );
        assert_eq!(
            place(&json!({"text": "Louisville hub"})),
            Some("Louisville hub".into())
        );
        assert_eq!(place(&json!("Gate 4")), Some("Gate 4".into()));
        assert_eq!(place(&Value::Null), None);
    }
}
