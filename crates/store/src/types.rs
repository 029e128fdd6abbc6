//! The values that cross the store boundary.

use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use waybill_model::ownership::{Fact, Settled};
use waybill_model::{CloudEvent, EventId, EventType, ShipmentState};

/// A payload as received, with what ingest decided about it.
#[derive(Debug, Clone)]
pub struct IngestRecord {
    /// Configured source name.
    pub source: String,
    /// The payload's idempotency key (partner event id, webhook-id, content hash).
    pub idempotency_key: String,
    /// When it arrived.
    pub received_at: OffsetDateTime,
    /// Request headers kept for inspection (secrets already removed).
    pub headers: Vec<(String, String)>,
    /// The raw body, byte for byte.
    pub body: Vec<u8>,
    /// Accepted with its events, or rejected with the reason.
    pub verdict: Verdict,
}

/// What ingest decided about a payload before storing it.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Mapped to these canonical events (sequence not yet set).
    Accepted(Vec<CloudEvent>),
    /// Rejected; kept for inspection.
    Rejected {
        /// Stable reason code (`ingest.bad_signature`, `mapping.runtime`, …).
        code: String,
        /// Human-readable reason.
        reason: String,
    },
    /// Rejected before its sender was authenticated (an unknown source, a body over the
    /// limit, a failed signature or key). Anyone can send these, so only a bounded sample
    /// is kept: the first [`SAMPLE_BYTES`] of the body and of the headers, and only the
    /// newest [`SAMPLES_KEPT`] rejected rows per reason code and source — per reason code
    /// alone with `any_source` (for unknown sources, whose names the sender chooses).
    /// Older ones are deleted in the same transaction.
    Sample {
        /// Stable reason code (`ingest.unknown_source`, `ingest.bad_signature`, …).
        code: String,
        /// Human-readable reason (the store notes a cut body in it).
        reason: String,
        /// Count the sample against every source of its code, not its own source's.
        any_source: bool,
    },
}

/// Bytes of a sample's body (and of its headers) that are kept (see [`Verdict::Sample`]).
pub const SAMPLE_BYTES: usize = 4096;

/// Samples kept per reason code and source (see [`Verdict::Sample`]).
pub const SAMPLES_KEPT: i64 = 100;

/// What the store did with a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// New payload: durable, events appended (those not seen before).
    Accepted {
        /// Inbox row id.
        inbox_id: i64,
        /// Ids of the payload's events.
        event_ids: Vec<EventId>,
    },
    /// The same (source, idempotency key) was accepted before: nothing changed.
    Duplicate {
        /// Inbox row of the original.
        inbox_id: i64,
        /// The original's event ids.
        event_ids: Vec<EventId>,
    },
    /// Stored as a rejected inbox record.
    Rejected {
        /// Inbox row id.
        inbox_id: i64,
    },
}

/// A subscription: which events go to which sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// Unique name.
    pub name: String,
    /// Sink that receives the events.
    pub sink: String,
    /// Event types (exact, or a prefix ending in `.*`); empty means all.
    pub types: Vec<String>,
    /// Source names; empty means all.
    pub sources: Vec<String>,
    /// Whether its consumer gets the personal values of a `confidential` event in clear
    /// (`true`) or masked (`false`); `None`: its sink's default.
    pub personal_data: Option<bool>,
}

impl Subscription {
    /// Whether an event of this type from this source matches.
    pub fn matches(&self, ty: EventType, source: &str) -> bool {
        let ty = ty.as_str();
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|t| match t.strip_suffix(".*") {
                Some(prefix) => ty.strip_prefix(prefix).is_some_and(|r| r.starts_with('.')),
                None => t == ty || t == "*",
            });
        let source_ok = self.sources.is_empty() || self.sources.iter().any(|s| s == source);
        type_ok && source_ok
    }
}

/// One entry of a shipment's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// Per-shipment sequence number (log order).
    pub sequence: i64,
    /// Effect on the shipment: `advanced`, `flagged` or `recorded`.
    pub effect: String,
    /// When Waybill received it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The event itself (source, type, occurred-at in `time`).
    pub event: CloudEvent,
}

/// A cross-reference: this shipment's identifier in another system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XRef {
    /// System and kind, e.g. `tracking`, `odoo.picking`.
    pub kind: String,
    /// The identifier.
    pub value: String,
}

/// A shipment with everything the read API shows.
#[derive(Debug, Clone, Serialize)]
pub struct ShipmentView {
    /// Projection (its `key` is the shipment's canonical key).
    pub state: ShipmentState,
    /// The lanes (event subjects) resolved into this shipment, canonical one included.
    pub lanes: Vec<String>,
    /// The order it belongs to (`kind:value` of the order's key), when one is named.
    pub order: Option<String>,
    /// Cross-references of every lane (identifiers normalised as they are matched).
    pub xrefs: Vec<XRef>,
    /// Its packages (SSCC or per-package tracking numbers).
    pub packages: Vec<String>,
    /// Current facts under the ownership rules.
    pub facts: BTreeMap<Fact, Settled>,
    /// Whether identifiers of this shipment contradict another's (see `conflicts`).
    pub identity_conflict: bool,
    /// Identity and ownership conflicts of this shipment.
    pub conflicts: Vec<ConflictRecord>,
    /// Events of every lane ordered by occurrence time (ties by lane and sequence).
    pub timeline: Vec<TimelineEntry>,
}

/// An identity or ownership conflict.
#[derive(Debug, Clone, Serialize)]
pub struct ConflictRecord {
    /// Row id (pagination cursor).
    pub id: i64,
    /// `identity` or `ownership`.
    pub kind: String,
    /// The lane (identity) or shipment (ownership) it is recorded on.
    pub shipment: String,
    /// The fact (ownership) or the alias that would have joined (identity).
    pub fact: String,
    /// Both claims: for identity, each lane's contradicting facts; for ownership, the
    /// owner's value and source and the value not applied with its source.
    pub detail: serde_json::Value,
    /// When it was last computed.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

/// Filter for [`crate::Store::conflicts`].
#[derive(Debug, Clone, Default)]
pub struct ConflictQuery {
    /// Only `identity` or `ownership`.
    pub kind: Option<String>,
    /// Rows after this id.
    pub after: Option<i64>,
    /// At most this many.
    pub limit: usize,
    /// Only of shipments of this tenant.
    pub tenant: Option<String>,
}

/// One shipment of an order.
#[derive(Debug, Clone, Serialize)]
pub struct OrderShipment {
    /// Projection.
    #[serde(flatten)]
    pub state: ShipmentState,
    /// Its lanes.
    pub lanes: Vec<String>,
}

/// An order with its shipments.
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    /// The order's key (`kind:value`: a sale order name first, then a PO).
    pub key: String,
    /// Every identifier of the order (`kind:value`).
    pub aliases: Vec<String>,
    /// `unshipped`, `partially_shipped`, `shipped`, `partially_delivered`, `delivered`,
    /// `returned` or `cancelled`.
    pub status: String,
    /// Its shipments.
    pub shipments: Vec<OrderShipment>,
    /// Events of every shipment, by occurrence time.
    pub timeline: Vec<TimelineEntry>,
}

/// What a key or alias resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// No shipment has it.
    NotFound,
    /// One shipment (its canonical key).
    One(String),
    /// Several shipments name it (a descriptive identifier, or a conflict).
    Several(Vec<String>),
}

/// A shipment in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct ShipmentSummary {
    /// Projection.
    #[serde(flatten)]
    pub state: ShipmentState,
    /// Number of events in its log.
    pub events: i64,
}

/// Filter for [`crate::Store::shipments`].
#[derive(Debug, Clone, Default)]
pub struct ShipmentQuery {
    /// Only shipments in this milestone.
    pub state: Option<waybill_model::Milestone>,
    /// Keys strictly after this one (pagination cursor).
    pub after: Option<String>,
    /// Only the shipments named by this reference (`kind`, `value`).
    pub reference: Option<(String, String)>,
    /// At most this many.
    pub limit: usize,
    /// Only shipments of this tenant.
    pub tenant: Option<String>,
}

/// Filter for [`crate::Store::inbox`].
#[derive(Debug, Clone, Default)]
pub struct InboxQuery {
    /// Only `accepted` or `rejected` records.
    pub status: Option<String>,
    /// Only this source.
    pub source: Option<String>,
    /// Leave out rejected records already reprocessed (see
    /// [`crate::Store::mark_reprocessed`]).
    pub open_only: bool,
    /// Only records with an id below this one (pagination cursor, newest first).
    pub before: Option<i64>,
    /// At most this many, newest first.
    pub limit: usize,
    /// Only records of these sources (a tenant's); `None`: every source.
    pub sources: Option<Vec<String>>,
}

/// A stored inbox record.
#[derive(Debug, Clone, Serialize)]
pub struct InboxRecord {
    /// Row id.
    pub id: i64,
    /// Source name.
    pub source: String,
    /// Idempotency key.
    pub idempotency_key: String,
    /// `accepted` or `rejected`.
    pub status: String,
    /// Reason code when rejected.
    pub reason_code: Option<String>,
    /// Reason text when rejected.
    pub reason: Option<String>,
    /// When it arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Event ids when accepted.
    pub event_ids: Vec<String>,
    /// The request headers kept with it (credential headers were never stored).
    pub headers: Vec<(String, String)>,
    /// The raw body (lossy UTF-8 for display).
    pub body: String,
    /// When a rejected record was reprocessed (submitted again as a new payload).
    #[serde(with = "time::serde::rfc3339::option")]
    pub reprocessed_at: Option<OffsetDateTime>,
    /// The inbox row it was reprocessed into.
    pub reprocessed_into: Option<i64>,
}

/// A pending delivery: one event for one subscription.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Outbox row id (delivery order within a sink is by this id).
    pub id: i64,
    /// Subscription.
    pub subscription: String,
    /// Sink.
    pub sink: String,
    /// Shipment key (ordering unit).
    pub shipment: String,
    /// CloudEvents id (the `webhook-id`).
    pub event_id: String,
    /// CloudEvents type.
    pub event_type: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Earliest next attempt (unix ms); 0 = now.
    pub next_attempt_at_ms: i64,
    /// The CloudEvents JSON body, exactly as delivered.
    pub body: std::sync::Arc<str>,
}

/// Result of one delivery attempt, to record. Every variant carries when the attempt was
/// made, the HTTP status it got (none for a transport error or a sink that does not speak
/// HTTP) and how long the sink took to answer.
#[derive(Debug, Clone)]
pub enum DeliveryUpdate {
    /// Delivered.
    Delivered {
        /// Outbox row.
        id: i64,
        /// Attempts including this one.
        attempts: u32,
        /// When the attempt was sent (unix ms).
        at_ms: i64,
        /// HTTP status of the answer, if any.
        status: Option<u16>,
        /// Time from sending to the answer, microseconds.
        duration_us: u64,
    },
    /// Failed; try again at the given time.
    Retry {
        /// Outbox row.
        id: i64,
        /// Attempts including this one.
        attempts: u32,
        /// Next attempt (unix ms).
        next_attempt_at_ms: i64,
        /// Why it failed.
        error: String,
        /// When the attempt was sent (unix ms).
        at_ms: i64,
        /// HTTP status of the answer, if any.
        status: Option<u16>,
        /// Time from sending to the answer (or the failure), microseconds.
        duration_us: u64,
    },
    /// Failed for good: move to the dead-letter queue.
    Dead {
        /// Outbox row.
        id: i64,
        /// Attempts including this one.
        attempts: u32,
        /// Why it failed.
        error: String,
        /// The failure's stable code (docs/errors.md).
        code: String,
        /// How it was classified (`permanent`, `invalid_input`, …).
        kind: String,
        /// When the attempt was sent (unix ms).
        at_ms: i64,
        /// HTTP status of the answer, if any.
        status: Option<u16>,
        /// Time from sending to the answer (or the failure), microseconds.
        duration_us: u64,
    },
}

/// One failed delivery attempt of an outbox row (successful ones are kept on the row
/// itself: `delivered_at`, `last_status`, `last_duration_ms`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// Attempt number, from 1.
    pub attempt: u32,
    /// When it was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// HTTP status of the answer, if any.
    pub status: Option<u16>,
    /// Time from sending to the answer, milliseconds.
    pub duration_ms: f64,
    /// Why it failed.
    pub error: String,
}

/// A dead letter.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Dead-letter id.
    pub id: i64,
    /// The outbox row that failed.
    pub outbox_id: i64,
    /// Subscription.
    pub subscription: String,
    /// Sink.
    pub sink: String,
    /// Shipment key.
    pub shipment: String,
    /// Event id.
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// Attempts made.
    pub attempts: u32,
    /// Last error.
    pub error: String,
    /// The last failure's stable code (none for dead letters stored before codes were).
    pub code: Option<String>,
    /// How the last failure was classified (`permanent`, `invalid_input`, `retryable`,
    /// `auth`).
    pub kind: Option<String>,
    /// When it was dead-lettered.
    #[serde(with = "time::serde::rfc3339")]
    pub failed_at: OffsetDateTime,
    /// When it was replayed, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub replayed_at: Option<OffsetDateTime>,
    /// `open`, `replayed` or `discarded`.
    pub state: String,
    /// When it was discarded, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub discarded_at: Option<OffsetDateTime>,
    /// Who discarded it.
    pub discarded_by: Option<String>,
}

/// A dead letter with what an operator needs to decide about it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterDetail {
    /// The dead letter.
    #[serde(flatten)]
    pub dead_letter: DeadLetter,
    /// The outbox row its replay created, if it was replayed.
    pub replay_outbox_id: Option<i64>,
    /// The canonical event (CloudEvents JSON, as delivered).
    pub event: serde_json::Value,
    /// The failed attempts of its outbox row, oldest first.
    pub history: Vec<AttemptRecord>,
}

/// Why a dead letter could not be replayed or discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterRefusal {
    /// No such dead letter.
    NotFound,
    /// It was replayed already.
    Replayed,
    /// It was discarded.
    Discarded,
}

/// Which dead letters a listing shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterState {
    /// Neither replayed nor discarded (the default).
    #[default]
    Open,
    /// Replayed.
    Replayed,
    /// Discarded.
    Discarded,
    /// All of them.
    All,
}

/// Filter for [`crate::Store::dead_letters`].
#[derive(Debug, Clone, Default)]
pub struct DeadLetterQuery {
    /// Only this sink.
    pub sink: Option<String>,
    /// With state `Open`: the replayed ones too (every dead letter not discarded).
    pub include_replayed: bool,
    /// Which ones.
    pub state: DeadLetterState,
    /// Only ids below this one (pagination cursor, newest first).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: usize,
    /// Only of shipments of this tenant.
    pub tenant: Option<String>,
}

/// Which dead letters to replay.
#[derive(Debug, Clone)]
pub enum ReplaySelector {
    /// These ids.
    Ids(Vec<i64>),
    /// Every open dead letter, neither replayed nor discarded (optionally of one sink).
    All {
        /// Only this sink.
        sink: Option<String>,
        /// Only of shipments of this tenant.
        tenant: Option<String>,
    },
}

/// Queue depths.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Depths {
    /// Pending outbox rows per sink.
    pub outbox: Vec<(String, i64)>,
    /// Open dead letters (neither replayed nor discarded) per sink.
    pub dead_letters: Vec<(String, i64)>,
    /// Shipments per state.
    pub shipments: Vec<(String, i64)>,
}

/// Delivery state of one outbox row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxItemState {
    /// Outbox row id.
    pub id: i64,
    /// Subscription.
    pub subscription: String,
    /// Sink.
    pub sink: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was delivered.
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// HTTP status of the last attempt, if it had one.
    pub last_status: Option<u16>,
    /// How long the last attempt took, milliseconds.
    pub last_duration_ms: Option<f64>,
    /// Error of the last attempt, if it failed.
    pub last_error: Option<String>,
    /// The failed attempts, oldest first.
    pub history: Vec<AttemptRecord>,
}

/// A pause of a sink, kept in the store so that a restart and every instance agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkControl {
    /// Sink name.
    pub sink: String,
    /// Whether deliveries to it are paused.
    pub paused: bool,
    /// When this was last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
    /// Who changed it.
    pub changed_by: String,
}

/// Where a subscription comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionOrigin {
    /// The configuration file (set again at every start).
    Config,
    /// Created or changed through the API (kept over the configuration file).
    Api,
}

impl SubscriptionOrigin {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionOrigin::Config => "config",
            SubscriptionOrigin::Api => "api",
        }
    }

    /// From its stored form.
    pub(crate) fn parse(s: &str) -> Result<Self, crate::StoreError> {
        match s {
            "config" => Ok(SubscriptionOrigin::Config),
            "api" => Ok(SubscriptionOrigin::Api),
            other => Err(crate::StoreError::Corrupt(format!(
                "subscription origin `{other}`"
            ))),
        }
    }
}

/// A subscription in force, with where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionRecord {
    /// Unique name.
    pub name: String,
    /// Sink that receives the events.
    pub sink: String,
    /// Event types (exact, or a prefix ending in `.*`); empty means all.
    pub types: Vec<String>,
    /// Source names; empty means all.
    pub sources: Vec<String>,
    /// Personal data in clear (`true`) or masked (`false`) for its consumer; `None`: its
    /// sink's default.
    pub personal_data: Option<bool>,
    /// Configuration file or API.
    pub origin: SubscriptionOrigin,
    /// When it was last written.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl SubscriptionRecord {
    /// The subscription itself.
    pub fn subscription(&self) -> Subscription {
        Subscription {
            name: self.name.clone(),
            sink: self.sink.clone(),
            types: self.types.clone(),
            sources: self.sources.clone(),
            personal_data: self.personal_data,
        }
    }
}

/// Health figures of one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// Sink name.
    pub sink: String,
    /// Outbox rows waiting.
    pub pending: i64,
    /// When the event of its oldest waiting row was recorded.
    #[serde(with = "time::serde::rfc3339::option")]
    pub oldest_pending_at: Option<OffsetDateTime>,
    /// When it last took a delivery.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_delivered_at: Option<OffsetDateTime>,
    /// Open dead letters (neither replayed nor discarded).
    pub dead_open: i64,
}
