//! The CloudEvents 1.0 envelope of a canonical event (structured JSON mode), with the
//! extensions named in ARCHITECTURE.md and EVENTS.md §3.2.

use crate::ids::{EventId, ShipmentKey};
use crate::lifecycle::EventFacts;
use crate::taxonomy::EventType;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A canonical shipment event as stored, delivered and replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Deterministic id (see [`EventId::derive`]).
    pub id: EventId,
    /// URI-reference of the producing source, `/sources/<name>`.
    pub source: String,
    /// Always `1.0`.
    pub specversion: String,
    /// Taxonomy type.
    #[serde(rename = "type")]
    pub ty: EventType,
    /// When it happened at the source (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The shipment key.
    pub subject: ShipmentKey,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// Ties together every event of one business flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    /// The event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
    /// Per-shipment position in the event log, zero-padded so it sorts as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// Partition key: the shipment key.
    pub partitionkey: String,
    /// W3C trace context of the request that brought the event in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// When Waybill recorded it.
    #[serde(with = "time::serde::rfc3339")]
    pub recordedtime: OffsetDateTime,
    /// Data classification (`public`, `internal`, `confidential`, `restricted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataclassification: Option<String>,
    /// Tenant the event belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Event payload: reason, raw partner code/text, location, refs and mapped fields.
    pub data: serde_json::Value,
}

impl CloudEvent {
    /// Formats a per-shipment sequence number for the `sequence` extension.
    pub fn format_sequence(seq: i64) -> String {
        format!("{seq:020}")
    }

    /// The facts the lifecycle fold needs.
    pub fn facts(&self) -> EventFacts {
        EventFacts {
            id: self.id.clone(),
            ty: self.ty,
            occurred_at: self.time,
        }
    }

    /// Cross-references carried in `data.refs` (system/kind → identifier).
    pub fn refs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.data
            .get("refs")
            .and_then(|r| r.as_object())
            .into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s)))
    }

    /// The source name from the `/sources/<name>` URI-reference.
    pub fn source_name(&self) -> &str {
        self.source
            .strip_prefix("/sources/")
            .unwrap_or(&self.source)
    }
}

/// The `source` attribute for a configured source name.
pub fn source_uri(name: &str) -> String {
    format!("/sources/{name}")
}
