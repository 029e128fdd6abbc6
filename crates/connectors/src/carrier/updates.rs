//! The partner-neutral shape of one tracking update (a scan in the history, the tracker's
//! current status, or a proof of delivery), the rules that need the whole history, and how
//! updates become `EventDraft`s.
//!
//! Identity (the rule of [`waybill_model::fact_key`], the same for every connector): a
//! timed update is the fact of its shipment, canonical type, time, raw code and place, never
//! a position or the webhook that carried it, so the same scan is one event in every payload
//! that repeats the history. The tracker's own "current status" is not a fact of its own
//! when it repeats a scan ([`settle_current`]): it is that scan. Updates without a time keep
//! the key their mapping gave them. Two different updates with the same key in one payload
//! get `~2`, `~3` in payload order; exact repeats (carriers do send duplicate scans) are
//! dropped.

use crate::carrier::timestamps::{CarrierTime, Zone};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use waybill_model::{EventDraft, EventType};

/// Value of `data.time_zone` when the partner gave no zone.
pub const ASSUMED_UTC: &str = "assumed_utc";

/// One tracking update, already classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// Canonical type.
    pub ty: EventType,
    /// Key of the update within the payload (see the module docs).
    pub key: String,
    /// Normalized reason (Karrio family), if any.
    pub reason: Option<String>,
    /// When it happened, if the partner said.
    pub time: Option<CarrierTime>,
    /// The partner's time string, kept when its zone had to be assumed.
    pub raw_time: Option<String>,
    /// The partner's raw code (sub-status).
    pub code: Option<String>,
    /// The partner's raw text (carrier message).
    pub text: Option<String>,
    /// Where it happened.
    pub location: Option<Value>,
    /// Further fields.
    pub data: Map<String, Value>,
    /// This is (or repeats) the tracker's current status; only the rules read it.
    pub current: bool,
    /// Identified by its fact (type, time, code, place) rather than by `key`.
    pub fact: bool,
    /// The partner gave no status: the type was inferred from the rest of the history, so
    /// the identity leaves it out (`waybill_model::untyped_fact_key`).
    pub type_inferred: bool,
}

impl Update {
    /// An update with only a type and a key.
    pub fn new(ty: EventType, key: String) -> Self {
        Update {
            ty,
            key,
            reason: None,
            time: None,
            raw_time: None,
            code: None,
            text: None,
            location: None,
            data: Map::new(),
            current: false,
            fact: true,
            type_inferred: false,
        }
    }

    /// Sets the time from a parsed partner time and its raw string.
    pub fn at(mut self, time: Option<CarrierTime>, raw: Option<&str>) -> Self {
        if matches!(
            time,
            Some(CarrierTime {
                zone: Zone::AssumedUtc,
                ..
            })
        ) {
            self.raw_time = raw.map(str::to_owned);
        }
        self.time = time;
        self
    }

    /// Adds `data[name] = value` when the value is present and not blank.
    pub fn with(mut self, name: &str, value: Option<&str>) -> Self {
        if let Some(v) = non_blank(value) {
            self.data
                .insert(name.to_owned(), Value::String(v.to_owned()));
        }
        self
    }
}

/// The key part for a time: normalized RFC 3339, or `-` when unknown.
pub fn time_part(time: Option<&CarrierTime>) -> String {
    time.map_or_else(|| "-".to_owned(), CarrierTime::rfc3339)
}

/// `Some(s)` unless `s` is absent or only whitespace.
pub fn non_blank(s: Option<&str>) -> Option<&str> {
    s.filter(|v| !v.trim().is_empty())
}

/// Builds a location object from named parts, skipping blanks; `None` when all are blank.
pub fn location(parts: &[(&str, Option<&str>)], coords: Option<(f64, f64)>) -> Option<Value> {
    let mut m = Map::new();
    for (name, value) in parts {
        if let Some(v) = non_blank(*value) {
            m.insert((*name).to_owned(), Value::String(v.trim().to_owned()));
        }
    }
    if let Some((lat, lon)) = coords {
        if let (Some(a), Some(b)) = (
            serde_json::Number::from_f64(lat),
            serde_json::Number::from_f64(lon),
        ) {
            m.insert("latitude".into(), Value::Number(a));
            m.insert("longitude".into(), Value::Number(b));
        }
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

/// Orders scans by time (unknown times last; ties keep payload order).
pub fn sort_chronologically(updates: &mut [Update]) {
    updates.sort_by(|a, b| match (&a.time, &b.time) {
        (Some(x), Some(y)) => x.utc.cmp(&y.utc),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

/// The return leg: once a scan says the parcel is going back to the sender, a later
/// "delivered" is the delivery back to the sender (`shipment.returned`), not to the
/// consignee. Without this, the return leg of EasyPost's and Karrio's `return_to_sender`
/// (which covers both returning and returned) would mark the shipment delivered and could
/// release an invoice. `updates` must be in chronological order.
pub fn apply_return_leg(updates: &mut [Update]) {
    let mut returning = false;
    for u in updates.iter_mut() {
        match u.ty {
            EventType::ShipmentReturnInitiated => returning = true,
            EventType::ShipmentDelivered if returning => {
                u.ty = EventType::ShipmentReturned;
                u.data.insert("return_leg".into(), Value::Bool(true));
            }
            _ => {}
        }
    }
}

/// Adds the tracker's current status to its scans (`scans` chronological, `current` with
/// its `data.status` the partner's status and its time that of the latest scan with that
/// status, when there is one). A current status that repeats a scan — the same partner
/// status at the same time — is that scan: what only the current status carries
/// (estimated delivery, signer, tracking URL, …) is added to the scan, and no second
/// event is made. A current status with no matching scan is one event, whatever the
/// webhook: it is keyed by the key its mapping gave it, which must not contain the
/// webhook's own time (`updated_at`).
pub fn settle_current(scans: &mut Vec<Update>, mut current: Update) {
    current.current = true;
    let status = current.data.get("status").cloned();
    let same = scans.iter_mut().rev().find(|u| {
        u.data.get("status") == status.as_ref() && u.time.is_some() && u.time == current.time
    });
    match same {
        Some(scan) => {
            for (k, v) in current.data {
                scan.data.entry(k).or_insert(v);
            }
            scan.current = true;
        }
        None => {
            current.fact = false;
            scans.push(current);
        }
    }
}

/// Flags updates dated more than five minutes after the payload was received: the usual
/// sign of a carrier-local time labelled as UTC (a zone east of UTC), kept as sent but
/// marked `data.time_after_receipt` so that consumers can tell.
pub fn flag_after_receipt(updates: &mut [Update], received_at: time::OffsetDateTime) {
    let limit = received_at + time::Duration::minutes(5);
    for u in updates.iter_mut() {
        if u.time.as_ref().is_some_and(|t| t.utc > limit) {
            u.data
                .insert("time_after_receipt".into(), Value::Bool(true));
        }
    }
}

/// Makes the drafts: every update gets the subject and refs; duplicates are resolved as
/// described in the module docs.
pub fn into_drafts(
    subject: &str,
    refs: &BTreeMap<String, String>,
    updates: Vec<Update>,
) -> Vec<EventDraft> {
    let mut out: Vec<EventDraft> = Vec::with_capacity(updates.len());
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    for u in updates {
        let draft = to_draft(subject, refs, u);
        let base = draft.key.clone().unwrap_or_default();
        let earlier = seen.entry(base.clone()).or_default();
        let same = |d: &EventDraft| {
            EventDraft {
                key: draft.key.clone(),
                ..d.clone()
            } == draft
        };
        if earlier.iter().any(|&i| same(&out[i])) {
            continue;
        }
        let mut draft = draft;
        if !earlier.is_empty() {
            draft.key = Some(format!("{base}~{}", earlier.len() + 1));
        }
        earlier.push(out.len());
        out.push(draft);
    }
    out
}

fn to_draft(subject: &str, refs: &BTreeMap<String, String>, u: Update) -> EventDraft {
    // A scan is identified by the partner's own status when it sent one (its canonical
    // type can change with the history: dispatch, return leg), by time, code and place
    // alone when its type was inferred, else by its canonical type.
    let partner_status = u.data.get("status").and_then(Value::as_str);
    let key = match &u.time {
        Some(t) if u.fact && u.type_inferred => {
            waybill_model::untyped_fact_key(&t.rfc3339(), u.code.as_deref(), u.location.as_ref())
        }
        Some(t) if u.fact && u.ty.is_status() => match partner_status {
            Some(status) => waybill_model::partner_fact_key(
                status,
                &t.rfc3339(),
                u.code.as_deref(),
                u.location.as_ref(),
            ),
            None => {
                waybill_model::fact_key(u.ty, &t.rfc3339(), u.code.as_deref(), u.location.as_ref())
            }
        },
        _ => u.key,
    };
    let mut data = u.data;
    if u.raw_time.is_some() {
        data.insert("time_zone".into(), Value::String(ASSUMED_UTC.into()));
        data.insert("raw_time".into(), u.raw_time.into());
    }
    // A signer's name is personal data: tell consumers that must honour it.
    let classification = data
        .contains_key("signed_by")
        .then(|| "confidential".to_owned());
    EventDraft {
        ty: u.ty.as_str().to_owned(),
        subject: subject.to_owned(),
        time: u.time.as_ref().map(CarrierTime::rfc3339),
        key: Some(key),
        reason: u.reason,
        code: u.code,
        text: u.text,
        location: u.location,
        refs: refs.clone(),
        data: (!data.is_empty()).then_some(Value::Object(data)),
        correlationid: None,
        causationid: None,
        tenant: None,
        dataclassification: classification,
        key_scope: waybill_model::KeyScope::Shared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::timestamps::parse;

    fn up(ty: EventType, key: &str, t: &str) -> Update {
        Update::new(ty, key.into()).at(parse(t), Some(t))
    }

    #[test]
    fn delivered_after_return_to_sender_is_a_return() {
        let mut v = vec![
            up(EventType::ShipmentDelivered, "d", "2024-01-05T00:00:00Z"),
            up(
                EventType::ShipmentReturnInitiated,
                "r",
                "2024-01-03T00:00:00Z",
            ),
            up(EventType::ShipmentInTransit, "i", "2024-01-01T00:00:00Z"),
        ];
        sort_chronologically(&mut v);
        apply_return_leg(&mut v);
        let tys: Vec<_> = v.iter().map(|u| u.ty).collect();
        assert_eq!(
            tys,
            [
                EventType::ShipmentInTransit,
                EventType::ShipmentReturnInitiated,
                EventType::ShipmentReturned
            ]
        );
    }

    #[test]
    fn repeated_keys_are_suffixed_and_exact_repeats_dropped() {
        let refs = BTreeMap::new();
        let a = up(EventType::ShipmentInTransit, "k", "2024-01-01T00:00:00Z");
        let mut b = a.clone();
        b.text = Some("other".into());
        let drafts = into_drafts("S", &refs, vec![a.clone(), b, a]);
        let keys: Vec<_> = drafts.iter().filter_map(|d| d.key.clone()).collect();
        let fact = waybill_model::fact_key(
            EventType::ShipmentInTransit,
            "2024-01-01T00:00:00Z",
            None,
            None,
        );
        assert_eq!(keys, [fact.clone(), format!("{fact}~2")]);
    }

    #[test]
    fn a_current_status_that_repeats_a_scan_is_that_scan() {
        let scan = up(EventType::ShipmentDelivered, "s", "2024-01-02T10:00:00Z")
            .with("status", Some("delivered"));
        let current = up(EventType::ShipmentDelivered, "c", "2024-01-02T10:00:00Z")
            .with("status", Some("delivered"))
            .with("signed_by", Some("J DOE"));
        let mut scans = vec![scan];
        settle_current(&mut scans, current);
        assert_eq!(scans.len(), 1);
        assert!(scans[0].current);
        assert_eq!(scans[0].data["signed_by"], "J DOE");
    }

    #[test]
    fn a_current_status_without_its_scan_is_one_event_whatever_the_webhook_time() {
        let mut keys = Vec::new();
        for updated in ["2024-01-02T10:00:00Z", "2024-01-02T11:30:00Z"] {
            let current = up(
                EventType::ShipmentInTransit,
                "trk_1:current:in_transit",
                updated,
            )
            .with("status", Some("in_transit"));
            let mut scans = vec![
                up(EventType::ShipmentLabelCreated, "l", "2024-01-01T00:00:00Z")
                    .with("status", Some("pre_transit")),
            ];
            settle_current(&mut scans, current);
            assert_eq!(scans.len(), 2);
            let drafts = into_drafts("S", &BTreeMap::new(), scans);
            keys.push(drafts[1].key.clone());
            assert_eq!(drafts[1].time.as_deref(), Some(updated));
        }
        assert_eq!(keys[0], keys[1]);
        assert_eq!(keys[0].as_deref(), Some("trk_1:current:in_transit"));
    }

    #[test]
    fn times_after_receipt_are_flagged() {
        let received = parse("2026-03-04T12:00:00Z").map(|t| t.utc);
        let mut v = vec![
            up(EventType::ShipmentInTransit, "a", "2026-03-04T12:04:00Z"),
            up(EventType::ShipmentInTransit, "b", "2026-03-04T20:00:00Z"),
        ];
        flag_after_receipt(&mut v, received.expect("valid"));
        assert!(!v[0].data.contains_key("time_after_receipt"));
        assert_eq!(v[1].data["time_after_receipt"], true);
    }

    #[test]
    fn an_assumed_zone_is_recorded_with_the_raw_time() {
        let d = into_drafts(
            "S",
            &BTreeMap::new(),
            vec![up(EventType::ShipmentInTransit, "k", "2024-01-01T10:00:00")],
        );
        let data = d[0].data.clone().unwrap_or_default();
        assert_eq!(data["time_zone"], "assumed_utc");
        assert_eq!(data["raw_time"], "2024-01-01T10:00:00");
        assert_eq!(d[0].time.as_deref(), Some("2024-01-01T10:00:00Z"));
    }
}
