//! An event draft: what a mapping (jq program or built-in partner mapping) produces from
//! a partner payload, before Waybill gives it an id, a sequence and a record time.
//!
//! JSON shape (what a jq mapping must output, one object or an array of them):
//! ```json
//! {"type": "shipment.delivered", "subject": "ups:1Z999:2026-11", "time": "2026-11-23T10:00:00Z",
//!  "key": "evt_123", "reason": "consignee_not_available", "code": "D1", "text": "Delivered",
//!  "location": {"city": "Springfield"}, "refs": {"tracking": "1Z999", "carrier": "ups"},
//!  "data": {"signed_by": "J DOE"}}
//! ```
//! Only `type` and `subject` are required.

use crate::event::{source_uri, CloudEvent};
use crate::ids::{EventId, ShipmentKey};
use crate::taxonomy::EventType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One canonical event as produced by a mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDraft {
    /// Taxonomy type name.
    #[serde(rename = "type")]
    pub ty: String,
    /// Shipment key.
    pub subject: String,
    /// Occurrence time, RFC 3339; defaults to the time the payload was received.
    #[serde(default)]
    pub time: Option<String>,
    /// What identifies this fact for its shipment, whichever source, payload or channel
    /// carried it (see [`fact_key`] for scans, or a partner's own event id). The event id
    /// is derived from the subject and this key only, so the same scan carried by two
    /// webhooks, two interchanges, or once over HTTP and once as a dropped file is one
    /// event. Without a key, a status event (milestone or flag) with a `time` is identified
    /// by [`fact_key`] of its type, time, raw code and location; any other draft by the
    /// payload's idempotency key, its source and its position in the payload.
    #[serde(default)]
    pub key: Option<String>,
    /// Normalized reason (Karrio-style family), e.g. `consignee_refused`.
    #[serde(default)]
    pub reason: Option<String>,
    /// The partner's raw status code.
    #[serde(default)]
    pub code: Option<String>,
    /// The partner's raw status text.
    #[serde(default)]
    pub text: Option<String>,
    /// Where it happened.
    #[serde(default)]
    pub location: Option<serde_json::Value>,
    /// Identifiers of this shipment in other systems.
    #[serde(default)]
    pub refs: BTreeMap<String, String>,
    /// Any further mapped fields.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    /// Correlation id of the business flow.
    #[serde(default)]
    pub correlationid: Option<String>,
    /// Id of the event that caused this one.
    #[serde(default)]
    pub causationid: Option<String>,
    /// Tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Data classification.
    #[serde(default)]
    pub dataclassification: Option<String>,
    /// Whose `key` this is. Never read from a mapping's output: a mapping's key is the
    /// partner's own identity, scoped to its source; only built-in connectors, which key
    /// facts and documents themselves, share keys across sources.
    #[serde(skip)]
    pub key_scope: KeyScope,
}

/// How far a draft's `key` reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyScope {
    /// The key is the partner's own identity of the event: unique within its source (two
    /// partners may both send `evt_1`).
    #[default]
    Source,
    /// The key names the fact or document itself (a scan's fact, an ASN's number and
    /// level, an invoice number), built by a connector: the same key from any source,
    /// payload or channel is the same event.
    Shared,
}

/// The scope of ids derived from a fact or a shared key: not a source name (source names
/// are never empty), so such a draft has one id whichever source carried it.
const FACT_SCOPE: &str = "";

/// The identity of a status fact — a scan — as Waybill defines it for every connector and
/// for jq mappings without a `key`: the shipment (the subject, added by the id), the
/// canonical type, the time it happened, the partner's raw status code and the place.
/// Equal facts are one event, whichever webhook, interchange or file carried them.
///
/// `time` is the UTC instant as RFC 3339 (`2026-03-04T10:00:00Z`) or, for a document that
/// gives a local time without a zone, that wall-clock text prefixed `local:`. The place is
/// compared without case or surrounding blanks, field by field.
pub fn fact_key(
    ty: EventType,
    time: &str,
    code: Option<&str>,
    location: Option<&serde_json::Value>,
) -> String {
    key_of_fact(ty.as_str(), time, code, location)
}

/// [`fact_key`] with the partner's own status in place of the canonical type, for
/// connectors that know it: the canonical type of a scan can depend on the rest of the
/// history (the first `in_transit` scan is the dispatch; a delivery after a return is the
/// return), the partner's status of that scan does not.
pub fn partner_fact_key(
    partner_status: &str,
    time: &str,
    code: Option<&str>,
    location: Option<&serde_json::Value>,
) -> String {
    key_of_fact(&format!("status:{partner_status}"), time, code, location)
}

/// The identity of a scan whose partner gave no status (its canonical type was inferred
/// by a documented rule that depends on the rest of the history): the time, raw code and
/// place alone, so the scan stays one event when a later webhook types it otherwise.
pub fn untyped_fact_key(
    time: &str,
    code: Option<&str>,
    location: Option<&serde_json::Value>,
) -> String {
    key_of_fact("", time, code, location)
}

/// The key text of a fact: a JSON array, so no part can run into the next.
fn key_of_fact(
    ty: &str,
    time: &str,
    code: Option<&str>,
    location: Option<&serde_json::Value>,
) -> String {
    let code = code.map(str::trim).unwrap_or("");
    let place = location.map(normalize_place).unwrap_or_default();
    serde_json::Value::from(vec!["fact", ty, time, code, place.as_str()]).to_string()
}

/// A UTC instant as the RFC 3339 text [`fact_key`] takes. An instant that has no UTC
/// date in range (year 9999 at a negative offset) keeps its own offset: the same instant
/// always gives the same text, and nothing panics on a partner's date.
pub fn utc_text(at: OffsetDateTime) -> String {
    at.checked_to_offset(time::UtcOffset::UTC)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// A location as compact JSON with keys sorted, strings trimmed and lowercased, and
/// without coordinates.
fn normalize_place(v: &serde_json::Value) -> String {
    fn norm(v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value as V;
        match v {
            V::String(s) => V::String(s.trim().to_lowercase()),
            V::Object(m) => {
                // Coordinates are left out: a partner re-geocoding a scan does not make it
                // another fact.
                let sorted: BTreeMap<&String, V> = m
                    .iter()
                    .filter(|(k, x)| {
                        !x.is_null() && !matches!(k.as_str(), "latitude" | "longitude")
                    })
                    .map(|(k, x)| (k, norm(x)))
                    .collect();
                serde_json::to_value(sorted).unwrap_or(V::Null)
            }
            V::Array(a) => V::Array(a.iter().map(norm).collect()),
            other => other.clone(),
        }
    }
    norm(v).to_string()
}

/// Why a draft cannot become an event; `index` is the draft's position in the mapping output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {index}: {field}: {message}")]
pub struct DraftError {
    /// Position of the draft in the mapping's output.
    pub index: usize,
    /// Offending field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Where a draft came from, needed to make it an event.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    /// Configured source name.
    pub source: &'a str,
    /// The payload's idempotency key.
    pub payload_key: &'a str,
    /// When the payload was received.
    pub received_at: OffsetDateTime,
    /// Trace context of the request, if any.
    pub traceparent: Option<&'a str>,
}

impl EventDraft {
    /// Parses a JSON value (an object, or an array of objects) into drafts.
    pub fn many_from_json(v: serde_json::Value) -> Result<Vec<EventDraft>, DraftError> {
        let items = match v {
            serde_json::Value::Array(a) => a,
            other => vec![other],
        };
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                serde_json::from_value(item).map_err(|e| DraftError {
                    index,
                    field: "event",
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// This draft has no `key` and is a timed status, so [`fact_key`] identifies it: the
    /// same fact in any payload, file or channel is one event. Other unkeyed drafts are
    /// identified by the payload that carried them.
    pub fn identified_by_fact(&self) -> bool {
        self.key.as_deref().is_none_or(str::is_empty)
            && self.time.is_some()
            && self.ty.parse::<EventType>().is_ok_and(EventType::is_status)
    }

    /// Validates the draft and makes it a canonical event (sequence unset).
    pub fn into_event(self, index: usize, origin: &Origin<'_>) -> Result<CloudEvent, DraftError> {
        self.into_event_and_identity(index, origin).map(|(e, _)| e)
    }

    /// [`Self::into_event`], and the identity its id was derived from when it has one (a
    /// key or a fact), so that a second, different draft of the same payload with the
    /// same identity can be given its own id ([`Identity::repeated`]).
    pub fn into_event_and_identity(
        self,
        index: usize,
        origin: &Origin<'_>,
    ) -> Result<(CloudEvent, Option<Identity>), DraftError> {
        let err = |field: &'static str, message: String| DraftError {
            index,
            field,
            message,
        };
        let ty: EventType = self.ty.parse().map_err(|e| err("type", format!("{e}")))?;
        let subject = ShipmentKey::parse(&self.subject).map_err(|m| err("subject", m))?;
        let occurred = match &self.time {
            None => None,
            Some(t) => OffsetDateTime::parse(t, &Rfc3339)
                .map_err(|e| err("time", format!("`{t}` is not RFC 3339: {e}")))?
                .checked_to_offset(time::UtcOffset::UTC)
                .map(Some)
                .ok_or_else(|| err("time", format!("`{t}` is out of range in UTC")))?,
        };
        let time = occurred.unwrap_or(origin.received_at);
        let scope = match self.key_scope {
            KeyScope::Source => origin.source,
            KeyScope::Shared => FACT_SCOPE,
        };
        let key = match (&self.key, occurred) {
            (Some(k), _) if !k.is_empty() => Some((scope, k.clone())),
            (_, Some(at)) if ty.is_status() => Some((
                FACT_SCOPE,
                fact_key(
                    ty,
                    &utc_text(at),
                    self.code.as_deref(),
                    self.location.as_ref(),
                ),
            )),
            _ => None,
        };
        let mut data = match self.data {
            None | Some(serde_json::Value::Null) => serde_json::Map::new(),
            Some(serde_json::Value::Object(m)) => m,
            Some(_) => return Err(err("data", "must be an object".into())),
        };
        if let Some(r) = self.reason {
            data.insert("reason".into(), r.into());
        }
        if self.code.is_some() || self.text.is_some() {
            data.insert(
                "raw".into(),
                serde_json::json!({"code": self.code, "text": self.text}),
            );
        }
        if let Some(l) = self.location {
            data.insert("location".into(), l);
        }
        if !self.refs.is_empty() {
            data.insert(
                "refs".into(),
                serde_json::to_value(&self.refs).unwrap_or_default(),
            );
        }
        let id = match &key {
            Some((scope, k)) => Identity::id(scope, &subject, k),
            None => EventId::derive(
                origin.source,
                &subject,
                origin.payload_key,
                &index.to_string(),
            ),
        };
        let identity = key.map(|(scope, key)| Identity {
            scope: scope.to_owned(),
            key,
        });
        let event = CloudEvent {
            id,
            source: source_uri(origin.source),
            specversion: "1.0".into(),
            ty,
            time,
            partitionkey: subject.0.clone(),
            subject,
            datacontenttype: "application/json".into(),
            correlationid: self.correlationid,
            causationid: self.causationid,
            sequence: None,
            traceparent: origin.traceparent.map(str::to_owned),
            recordedtime: origin.received_at,
            dataclassification: self.dataclassification,
            tenant: self.tenant,
            data: serde_json::Value::Object(data),
        };
        Ok((event, identity))
    }
}

/// What a keyed or fact-identified event's id was derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The source name, or empty for a fact or a shared key.
    scope: String,
    /// The key (a partner's, a connector's, or a [`fact_key`]).
    key: String,
}

impl Identity {
    fn id(scope: &str, subject: &ShipmentKey, key: &str) -> EventId {
        EventId::derive(scope, subject, "key", key)
    }

    /// The id of the `n`th (2, 3, …) different draft of one payload with this identity:
    /// its key gets `~n`, so both are kept and the same payload re-sent gives the same
    /// ids again.
    pub fn repeated(&self, subject: &ShipmentKey, n: usize) -> EventId {
        Self::id(&self.scope, subject, &format!("{}~{n}", self.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin() -> Origin<'static> {
        Origin {
            source: "carrier",
            payload_key: "p1",
            received_at: OffsetDateTime::UNIX_EPOCH,
            traceparent: None,
        }
    }

    #[test]
    fn a_draft_becomes_an_event_with_a_deterministic_id() {
        let d = EventDraft::many_from_json(json!({"type": "shipment.delivered", "subject": "S1",
            "time": "2026-11-23T10:00:00+01:00", "refs": {"tracking": "1Z"}, "code": "D1"}))
        .expect("valid draft");
        let e = d[0].clone().into_event(0, &origin()).expect("valid event");
        let again = d[0].clone().into_event(0, &origin()).expect("valid event");
        assert_eq!(e.id, again.id);
        // the same keyed event in another payload is the same event
        let other = Origin {
            payload_key: "p2",
            ..origin()
        };
        let d2 = EventDraft {
            key: Some("scan-1".into()),
            ..d[0].clone()
        };
        assert_eq!(
            d2.clone().into_event(0, &origin()).expect("valid").id,
            d2.clone().into_event(3, &other).expect("valid").id
        );
        assert_eq!(e.time.offset(), time::UtcOffset::UTC);
        assert_eq!(e.refs().collect::<Vec<_>>(), vec![("tracking", "1Z")]);
        assert_eq!(e.data["raw"]["code"], "D1");
    }

    #[test]
    fn a_scan_is_one_event_whichever_source_payload_or_zone_carried_it() {
        let d = EventDraft::many_from_json(json!({"type": "shipment.in_transit", "subject": "S1",
            "time": "2026-11-23T10:00:00+01:00", "code": "X6", "location": {"city": "Dayton "}}))
        .expect("valid draft");
        let e = d[0].clone().into_event(0, &origin()).expect("valid");
        let file_drop = Origin {
            source: "edi-drop",
            payload_key: "other-interchange",
            ..origin()
        };
        let same = EventDraft {
            time: Some("2026-11-23T09:00:00Z".into()),
            location: Some(json!({"city": "DAYTON"})),
            ..d[0].clone()
        };
        assert_eq!(e.id, same.into_event(5, &file_drop).expect("valid").id);
        // another place, another code or another time is another fact
        for other in [
            EventDraft {
                location: Some(json!({"city": "Toledo"})),
                ..d[0].clone()
            },
            EventDraft {
                code: Some("X1".into()),
                ..d[0].clone()
            },
            EventDraft {
                time: Some("2026-11-23T10:01:00+01:00".into()),
                ..d[0].clone()
            },
        ] {
            assert_ne!(e.id, other.into_event(0, &origin()).expect("valid").id);
        }
    }

    #[test]
    fn a_draft_without_time_or_key_is_identified_by_its_payload() {
        let d = EventDraft::many_from_json(json!({"type": "shipment.in_transit", "subject": "S1"}))
            .expect("valid draft");
        let other = Origin {
            payload_key: "p2",
            ..origin()
        };
        let a = d[0].clone().into_event(0, &origin()).expect("valid");
        assert_ne!(a.id, d[0].clone().into_event(0, &other).expect("valid").id);
        // documents in the timeline are never identified by their time alone
        let charge = EventDraft {
            ty: "freight.charge_confirmed".into(),
            time: Some("2026-11-23T10:00:00Z".into()),
            ..d[0].clone()
        };
        assert_ne!(
            charge.clone().into_event(0, &origin()).expect("valid").id,
            charge.into_event(0, &other).expect("valid").id
        );
    }

    #[test]
    fn utc_text_never_panics_out_of_range() {
        // found by the x12 fuzz target (its year-9999 regression seed)
        let late = OffsetDateTime::parse("9999-12-31T23:15:00-05:00", &Rfc3339).expect("valid");
        assert_eq!(utc_text(late), "9999-12-31T23:15:00-05:00");
        let t = OffsetDateTime::parse("2026-03-09T08:15:00-05:00", &Rfc3339).expect("valid");
        assert_eq!(utc_text(t), "2026-03-09T13:15:00Z");
    }

    #[test]
    fn a_time_out_of_range_in_utc_is_an_error_not_a_panic() {
        // found by the event_draft fuzz target
        let d = EventDraft::many_from_json(
            json!({"type": "shipment.delivered", "subject": "S1", "time": "9999-12-31T23:59:59-01:00"}),
        )
        .expect("shape ok");
        let e = d[0]
            .clone()
            .into_event(0, &origin())
            .expect_err("out of range");
        assert_eq!(e.field, "time");
    }

    #[test]
    fn errors_name_the_event_and_field() {
        let d = EventDraft::many_from_json(json!([{"type": "shipment.delivered", "subject": "S1"},
            {"type": "shipment.teleported", "subject": "S1"}]))
        .expect("shape ok");
        let e = d[1].clone().into_event(1, &origin()).expect_err("bad type");
        assert_eq!(
            e.to_string(),
            "event 1: type: unknown event type `shipment.teleported`"
        );
        let e = EventDraft::many_from_json(json!({"type": "x"})).expect_err("no subject");
        assert!(e.to_string().contains("subject"), "{e}");
    }
}
