//! Backend-neutral encodings of stored values: times as unix microseconds, flags as a
//! comma-separated list, and a shipment state from its stored columns.

use crate::StoreError;
use std::collections::BTreeSet;
use time::OffsetDateTime;
use waybill_model::{EventId, Flag, Milestone, ShipmentKey, ShipmentState};

/// Unix microseconds of a time.
pub(crate) fn to_us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// A time from unix microseconds.
pub(crate) fn from_us(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Flags as stored: their names, comma-separated.
pub(crate) fn flags_to_str(flags: &BTreeSet<Flag>) -> String {
    flags
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Flags from their stored form (see [`flags_to_str`]).
pub(crate) fn flags_from_str(s: &str) -> Result<BTreeSet<Flag>, StoreError> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            serde_json::from_value::<Flag>(serde_json::Value::String(p.to_owned()))
                .map_err(|e| StoreError::Corrupt(format!("flag `{p}`: {e}")))
        })
        .collect()
}

/// A shipment state from the stored columns `state, milestone_at, milestone_event,
/// flags, last_event_at` of its lane.
pub(crate) fn decode_state(
    key: ShipmentKey,
    state: &str,
    milestone_at: Option<i64>,
    milestone_event: Option<String>,
    flags: &str,
    last_event_at: Option<i64>,
) -> Result<ShipmentState, StoreError> {
    Ok(ShipmentState {
        key,
        milestone: state.parse::<Milestone>().map_err(StoreError::Corrupt)?,
        milestone_at: milestone_at.map(from_us),
        milestone_event: milestone_event.map(EventId),
        flags: flags_from_str(flags)?,
        last_event_at: last_event_at.map(from_us),
    })
}

/// A subscription from its stored columns (`types` and `sources` as JSON arrays).
pub(crate) fn decode_sub(
    name: String,
    sink: String,
    types: &str,
    sources: &str,
    personal_data: Option<bool>,
) -> Result<crate::Subscription, StoreError> {
    let list = |what: &str, s: &str| {
        serde_json::from_str::<Vec<String>>(s)
            .map_err(|e| StoreError::Corrupt(format!("subscription {name}: {what}: {e}")))
    };
    Ok(crate::Subscription {
        types: list("types", types)?,
        sources: list("sources", sources)?,
        name,
        sink,
        personal_data,
    })
}

/// A list of strings as stored (a JSON array).
pub(crate) fn list_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// An HTTP status from its stored column.
pub(crate) fn status_from(v: Option<i64>) -> Option<u16> {
    v.and_then(|s| u16::try_from(s).ok())
}

/// A duration in microseconds as stored.
pub(crate) fn duration_to(us: u64) -> i64 {
    i64::try_from(us).unwrap_or(i64::MAX)
}

/// Milliseconds (with fractions) from stored microseconds.
pub(crate) fn ms_from_us(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// A dead letter's state from its `replayed_at` and `discarded_at`.
pub(crate) fn dead_letter_state(replayed: Option<i64>, discarded: Option<i64>) -> &'static str {
    match (replayed, discarded) {
        (_, Some(_)) => "discarded",
        (Some(_), None) => "replayed",
        (None, None) => "open",
    }
}
