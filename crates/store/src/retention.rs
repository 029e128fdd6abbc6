//! Retention and erasure: what goes, and what never does.
//!
//! A purge ([`PurgePlan`], `Store::purge`) takes away, one batch of each kind per call:
//!
//! - **raw payloads** of accepted inbox records older than their cutoff: the body bytes
//!   only. The row stays (source, idempotency key, status, time, event ids, headers) with
//!   an empty body and `purged_at`, so a payload sent again is still answered as a
//!   duplicate and every event still names the record it came from. An event stored
//!   packed against its payload (`lz4+payload`, see [`crate::body`]) is packed again
//!   alone first, in the same transaction.
//! - **rejected payloads** older than their cutoff: the whole row (nothing refers to it).
//! - **delivered** outbox rows whose delivery is older than the cutoff, with their
//!   `delivery_attempts`.
//! - **dead letters** discarded or replayed before the cutoff, with their dead outbox row
//!   and its attempts. Open dead letters are never purged.
//! - **audit** records older than the cutoff: a prefix of the chain only, never its last
//!   record. The `(seq, hash)` of the last record purged is kept in `audit_base`, the
//!   anchor the verifier starts from, and the purge appends an `audit.purge` record.
//!
//! Events, shipments, aliases, facts, conflicts and workflows are never touched by
//! retention. An erasure ([`Erase`]) drops the raw payloads of one shipment's events and
//! masks the personal values of their data and of its proof-of-delivery facts, keeping
//! event ids, types, times, sequence numbers and the shipment's state.

use crate::body::{self, EventBody};
use crate::view::{self, Reader};
use crate::StoreError;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;
use waybill_model::identity;
use waybill_model::privacy::Personal;

/// What a purge takes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeKind {
    /// The bodies of accepted payloads.
    RawPayloads,
    /// Rejected payloads (whole records).
    RejectedPayloads,
    /// Delivered outbox rows and their attempts.
    Delivered,
    /// Discarded or replayed dead letters.
    DeadLetters,
    /// A prefix of the audit chain.
    Audit,
}

impl PurgeKind {
    /// Every kind, in the order a purge takes them.
    pub const ALL: [PurgeKind; 5] = [
        PurgeKind::RawPayloads,
        PurgeKind::RejectedPayloads,
        PurgeKind::Delivered,
        PurgeKind::DeadLetters,
        PurgeKind::Audit,
    ];

    /// The name used in configuration, metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeKind::RawPayloads => "raw_payloads",
            PurgeKind::RejectedPayloads => "rejected_payloads",
            PurgeKind::Delivered => "delivered",
            PurgeKind::DeadLetters => "dead_letters",
            PurgeKind::Audit => "audit",
        }
    }
}

/// Rows of one kind purged (and, for payloads, the stored bytes they held).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCount {
    /// Rows purged (a payload's body, or a whole row).
    pub rows: u64,
    /// Stored bytes of payload bodies purged (0 for the other kinds).
    pub bytes: u64,
}

/// What a purge took away (or, dry, would take), by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Counts by kind (kinds with nothing are absent).
    pub counts: BTreeMap<PurgeKind, PurgeCount>,
}

impl PurgeReport {
    /// The count of one kind.
    pub fn get(&self, kind: PurgeKind) -> PurgeCount {
        self.counts.get(&kind).copied().unwrap_or_default()
    }

    /// Adds rows and bytes to a kind.
    pub fn add(&mut self, kind: PurgeKind, rows: u64, bytes: u64) {
        if rows == 0 && bytes == 0 {
            return;
        }
        let c = self.counts.entry(kind).or_default();
        c.rows += rows;
        c.bytes += bytes;
    }

    /// Adds another report to this one.
    pub fn merge(&mut self, other: &PurgeReport) {
        for (k, c) in &other.counts {
            self.add(*k, c.rows, c.bytes);
        }
    }

    /// Rows of every kind.
    pub fn rows(&self) -> u64 {
        self.counts.values().map(|c| c.rows).sum()
    }
}

/// The cutoffs of a source's payloads: records received before them go (`None`: kept).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayloadCutoffs {
    /// Bodies of accepted payloads received before this go.
    pub raw_payloads: Option<OffsetDateTime>,
    /// Rejected payloads received before this go.
    pub rejected_payloads: Option<OffsetDateTime>,
}

/// What to purge: a cutoff per kind (`None`: keep forever), per source for payloads.
#[derive(Debug, Clone)]
pub struct PurgePlan {
    /// The time recorded as `purged_at`.
    pub now: OffsetDateTime,
    /// Payload cutoffs of every source not in `sources`.
    pub payloads: PayloadCutoffs,
    /// Payload cutoffs of particular sources (replacing `payloads` for them).
    pub sources: BTreeMap<String, PayloadCutoffs>,
    /// Delivered outbox rows delivered before this go.
    pub delivered: Option<OffsetDateTime>,
    /// Dead letters discarded or replayed before this go.
    pub dead_letters: Option<OffsetDateTime>,
    /// Audit records appended before this go (a prefix, never the last record).
    pub audit: Option<OffsetDateTime>,
    /// Most rows of each kind per call (one transaction); at least 1.
    pub batch: u32,
    /// Count what would go, all of it (not one batch), and change nothing.
    pub dry_run: bool,
}

impl PurgePlan {
    /// The payload cutoffs of `source`.
    pub fn cutoffs_of(&self, source: &str) -> PayloadCutoffs {
        self.sources.get(source).copied().unwrap_or(self.payloads)
    }

    /// The batch as a row limit.
    pub(crate) fn limit(&self) -> i64 {
        i64::from(self.batch.max(1))
    }
}

/// Whose personal data to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erase {
    /// One shipment, by its key or the key of any of its lanes.
    Shipment(String),
    /// Every shipment a reference names (`tracking`, `1Z…`).
    Reference {
        /// Reference kind (`tracking`, `order`, `picking`…).
        kind: String,
        /// Its value, as a partner sends it.
        value: String,
    },
}

/// What an erasure changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EraseReport {
    /// The lanes (shipment keys) erased.
    pub shipments: Vec<String>,
    /// Events whose data held personal values (masked now).
    pub events: u64,
    /// Personal values masked in those events.
    pub values: u64,
    /// Raw payloads whose bodies were dropped.
    pub payloads: u64,
    /// Stored bytes of those bodies.
    pub bytes: u64,
    /// Proof-of-delivery facts masked.
    pub facts: u64,
}

/// The stored form of an event's JSON (`json`, without `sequence`) packed without a
/// payload: `(bytes, encoding)`.
pub(crate) fn pack_alone(json: String, seq: i64) -> (Vec<u8>, Option<&'static str>) {
    match body::pack_event(json, b"") {
        EventBody::Json(j) => (body::with_sequence(&j, seq).into_bytes(), None),
        EventBody::Packed { bytes, encoding } => (bytes, Some(encoding)),
    }
}

/// An event body packed against `payload` (the raw payload), packed again alone.
pub(crate) fn repack_alone(
    stored: &[u8],
    seq: i64,
    payload: &[u8],
) -> Result<(Vec<u8>, Option<&'static str>), StoreError> {
    let json = lz4_flex::block::decompress_size_prepended_with_dict(stored, payload)
        .map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?;
    let json =
        String::from_utf8(json).map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?;
    Ok(pack_alone(json, seq))
}

/// An event's JSON (with `sequence`) with the personal values of its `data` masked:
/// `(JSON without sequence, values masked)`; None when its data holds none.
pub(crate) fn mask_event(
    json: &str,
    personal: &Personal,
) -> Result<Option<(String, u64)>, StoreError> {
    let mut v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?;
    let Some(obj) = v.as_object_mut() else {
        return Ok(None);
    };
    let Some(data) = obj.get_mut("data") else {
        return Ok(None);
    };
    let before = data.clone();
    let n = personal.mask(data);
    // Masked already (an erasure repeated): nothing to change.
    if n == 0 || *data == before {
        return Ok(None);
    }
    obj.remove("sequence");
    let text =
        serde_json::to_string(&v).map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?;
    Ok(Some((text, n as u64)))
}

/// Every lane of every shipment the erasure names.
pub(crate) fn erase_lanes(r: &mut dyn Reader, what: &Erase) -> Result<Vec<String>, StoreError> {
    let mut canon = BTreeSet::new();
    match what {
        Erase::Shipment(key) => {
            if let Some(k) = r.canonical_of(key)? {
                canon.insert(k);
            }
        }
        Erase::Reference { kind, value } => {
            for lane in r.lanes_naming(kind, &identity::lookup_value(kind, value))? {
                if let Some(k) = r.canonical_of(&lane)? {
                    canon.insert(k);
                }
            }
        }
    }
    let mut lanes = BTreeSet::new();
    for k in canon {
        lanes.extend(view::members(r, &k)?);
    }
    Ok(lanes.into_iter().collect())
}

/// An event rewritten by a purge or an erasure: its row, new body and encoding.
#[derive(Debug, Clone)]
pub(crate) struct Rewrite {
    pub seq_id: i64,
    pub body: Vec<u8>,
    pub encoding: Option<&'static str>,
    /// Only while it is still packed against its payload (a purge); an erasure
    /// rewrites whatever is there.
    pub only_if_packed: bool,
}

/// Payload bodies to drop and the events to rewrite first, as read before the write.
#[derive(Debug, Clone, Default)]
pub(crate) struct PayloadWork {
    /// Accepted inbox rows whose body goes: (id, stored bytes).
    pub accepted: Vec<(i64, u64)>,
    /// Rejected inbox rows that go: (id, stored bytes).
    pub rejected: Vec<(i64, u64)>,
    /// Events to rewrite first.
    pub rewrites: Vec<Rewrite>,
}

/// The audit record a purge of the chain appends.
pub(crate) fn audit_purge_entry(through: i64, hash: &str, rows: u64) -> crate::audit::AuditEntry {
    crate::audit::AuditEntry {
        actor: "system".into(),
        action: "audit.purge".into(),
        target: "audit_log".into(),
        detail: serde_json::json!({"through_seq": through, "hash": hash, "records": rows}),
        origin: "retention".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_event_packed_against_its_payload_reads_back_after_repacking_alone() {
        let payload = br#"{"lines":[{"sku":"SKU-1","description":"Shelf bracket, steel, 300 mm"},{"sku":"SKU-2","description":"Shelf bracket, steel, 400 mm"}]}"#.repeat(4);
        let json = format!(
            r#"{{"id":"x","data":{}}}"#,
            String::from_utf8_lossy(&payload).replace("}{", "},{")
        );
        let EventBody::Packed { bytes, encoding } = body::pack_event(json.clone(), &payload) else {
            panic!("not packed")
        };
        assert_eq!(encoding, body::LZ4_PAYLOAD);
        let (again, enc) = repack_alone(&bytes, 9, &payload).unwrap();
        assert_ne!(enc, Some(body::LZ4_PAYLOAD));
        let back = body::unpack_event(again, enc, 9, || -> Result<Vec<u8>, StoreError> {
            panic!("no payload is read")
        })
        .unwrap();
        assert_eq!(back, body::with_sequence(&json, 9));
    }

    #[test]
    fn masking_keeps_everything_but_personal_values() {
        let json = r#"{"id":"e1","type":"shipment.delivered","data":{"signed_by":"Ana","weight":3},"sequence":"00000000000000000002"}"#;
        let (masked, n) = mask_event(json, &Personal::default()).unwrap().unwrap();
        assert_eq!(n, 1);
        let v: serde_json::Value = serde_json::from_str(&masked).unwrap();
        assert_eq!(v["data"]["signed_by"], "***");
        assert_eq!(v["data"]["weight"], 3);
        assert!(v.get("sequence").is_none());
        assert!(
            mask_event(r#"{"id":"e2","data":{"weight":3}}"#, &Personal::default())
                .unwrap()
                .is_none()
        );
    }
}
