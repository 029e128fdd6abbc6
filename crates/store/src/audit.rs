//! The audit trail: an append-only, hash-chained log of operator actions (who, what,
//! when, from where).
//!
//! Each record carries the SHA-256 of the record before it (`prev_hash`; the first one
//! carries [`GENESIS_HASH`]) and its own hash over a canonical, length-prefixed encoding
//! of all its fields ([`audit_hash`]). Records are appended by the store's single writer,
//! which reads the head inside the same transaction (on PostgreSQL under the writer's
//! advisory lock), so the chain is serial even with several instances.
//!
//! [`Verifier`] walks the chain in `seq` order, record by record (the backends feed it a
//! page at a time), and names the first record that was altered, removed, inserted or
//! moved. It cannot tell a chain rewritten from some record on, hashes and all, from the
//! real one: anchors (the head's `(seq, hash)` kept elsewhere, see [`AuditAnchor`]) catch
//! that.
//!
//! Backend-neutral: the types, the hash and the verifier. The backends store the rows
//! (`sqlite/audit.rs`, `pg/audit.rs`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use time::OffsetDateTime;

/// `prev_hash` of the first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Records read per page by the verifier and at most per listing.
pub const AUDIT_PAGE: u32 = 1000;

/// Something that happened, to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Who did it: the operator header, an API key's name, `system`.
    pub actor: String,
    /// What was done, dotted (`sink.pause`, `subscription.put`, `dead_letter.replay`).
    pub action: String,
    /// What it was done to (`sink:ops`, `dead_letter:42`); may be empty.
    pub target: String,
    /// Particulars (a JSON value; stored as its text).
    pub detail: serde_json::Value,
    /// Where from: the peer address, a forwarded-for address, or an instance id.
    pub origin: String,
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Position in the chain, dense from 1.
    pub seq: i64,
    /// When it was appended (to the microsecond).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To what.
    pub target: String,
    /// Particulars (the stored text as JSON; a string when the text is not JSON).
    pub detail: serde_json::Value,
    /// From where.
    pub origin: String,
    /// Hash of the record before (hex).
    pub prev_hash: String,
    /// This record's hash (hex).
    pub hash: String,
}

/// Which audit records to list: those after `after_seq`, in `seq` order.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only records with a larger `seq` (0: from the first).
    pub after_seq: i64,
    /// Most records returned (0 or above [`AUDIT_PAGE`]: [`AUDIT_PAGE`]).
    pub limit: u32,
    /// Only this action.
    pub action: Option<String>,
    /// Only this target.
    pub target: Option<String>,
}

impl AuditQuery {
    /// The limit to use.
    pub(crate) fn capped_limit(&self) -> i64 {
        i64::from(match self.limit {
            0 => AUDIT_PAGE,
            n => n.min(AUDIT_PAGE),
        })
    }
}

/// What was done to the chain, at the first record that is not as appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TamperKind {
    /// A record's content (or its hash) was changed.
    Altered,
    /// A record is missing.
    Removed,
    /// A record was added that was never appended.
    Inserted,
    /// Records changed places.
    Reordered,
}

impl TamperKind {
    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            TamperKind::Altered => "altered",
            TamperKind::Removed => "removed",
            TamperKind::Inserted => "inserted",
            TamperKind::Reordered => "reordered",
        }
    }
}

impl std::fmt::Display for TamperKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AuditVerdict {
    /// Every record is as appended (and matches every anchor given).
    Ok {
        /// Records walked.
        records: u64,
        /// `seq` of the last one (0 when there is none).
        head_seq: i64,
        /// Its hash ([`GENESIS_HASH`] when there is none).
        head_hash: String,
    },
    /// The chain is broken.
    Broken {
        /// The first record (by its original `seq`) that is not as appended.
        first_bad_seq: i64,
        /// What happened to it.
        kind: TamperKind,
        /// In words.
        detail: String,
    },
}

/// The head of the chain as it was at some time, kept outside the store (a line of the
/// anchor file): a later chain must still have this hash at this `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnchor {
    /// `seq` of the head then.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
    /// When it was anchored.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// SHA-256 (hex) of a record: over a domain tag, `seq` and `at` (unix µs) as 8 bytes
/// big-endian each, then actor, action, target, detail (the stored JSON text), origin and
/// prev_hash, each as its length (8 bytes big-endian) and its UTF-8 bytes. Length
/// prefixes make the encoding unambiguous: no two different records encode alike.
#[allow(clippy::too_many_arguments)]
pub fn audit_hash(
    seq: i64,
    at_us: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
    origin: &str,
    prev_hash: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(b"waybill.audit.v1\0");
    h.update(seq.to_be_bytes());
    h.update(at_us.to_be_bytes());
    for field in [actor, action, target, detail, origin, prev_hash] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The action of an event-log checkpoint: a record whose detail (`from`, `through`,
/// `events`, `digest`) seals the event log's rows `from < seq_id <= through`.
pub const EVENTS_CHECKPOINT: &str = "events.checkpoint";

/// The columns of an event row a checkpoint seals: what happened to which shipment, in
/// which order, from where. (Bodies are not: erasure masks personal values in them.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEvent {
    /// Global row id.
    pub seq_id: i64,
    /// Event id.
    pub event_id: String,
    /// Its lane.
    pub shipment: String,
    /// Its place in the lane's log.
    pub shipment_seq: i64,
    /// Event type.
    pub ty: String,
    /// Source name.
    pub source: String,
    /// When it happened (unix µs).
    pub occurred_at_us: i64,
    /// Its effect on the shipment.
    pub effect: String,
}

/// SHA-256 over a run of event rows in `seq_id` order, each field length-prefixed like
/// [`audit_hash`]'s; with the count of rows fed.
#[derive(Default)]
pub struct EventDigest {
    h: Sha256,
    count: u64,
}

impl EventDigest {
    /// A digest of no rows yet.
    pub fn new() -> EventDigest {
        let mut h = Sha256::new();
        h.update(b"waybill.events.v1\0");
        EventDigest { h, count: 0 }
    }

    /// Adds a row.
    pub fn feed(&mut self, e: &SealedEvent) {
        self.h.update(e.seq_id.to_be_bytes());
        self.h.update(e.shipment_seq.to_be_bytes());
        self.h.update(e.occurred_at_us.to_be_bytes());
        for field in [&e.event_id, &e.shipment, &e.ty, &e.source, &e.effect] {
            self.h.update((field.len() as u64).to_be_bytes());
            self.h.update(field.as_bytes());
        }
        self.count += 1;
    }

    /// Rows fed and the hex digest.
    pub fn finish(self) -> (u64, String) {
        (self.count, hex::encode(self.h.finalize()))
    }
}

/// The first checkpoint whose sealed rows are no longer as sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsChanged {
    /// The checkpoint's `seq` in the audit chain.
    pub checkpoint_seq: i64,
    /// The rows it seals: `from < seq_id <= through`.
    pub from: i64,
    /// See `from`.
    pub through: i64,
    /// Rows it sealed, and now.
    pub events: (u64, u64),
}

/// What checking the event log against its checkpoints found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsVerdict {
    /// Every checkpoint matches: how many, over how many rows.
    Ok {
        /// Checkpoints checked.
        checkpoints: u64,
        /// Rows they seal.
        events: u64,
    },
    /// The first that does not.
    Changed(EventsChanged),
}

/// A record as stored (times in µs, detail as text): what is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// `seq`.
    pub seq: i64,
    /// `at`, unix microseconds.
    pub at_us: i64,
    /// `actor`.
    pub actor: String,
    /// `action`.
    pub action: String,
    /// `target`.
    pub target: String,
    /// `detail`, the JSON text.
    pub detail: String,
    /// `origin`.
    pub origin: String,
    /// `prev_hash`.
    pub prev_hash: String,
    /// `hash`.
    pub hash: String,
}

impl AuditRow {
    /// A new row after the head `(head_seq, head_hash)`, with its hash.
    pub(crate) fn next(head_seq: i64, head_hash: &str, at_us: i64, e: &AuditEntry) -> AuditRow {
        let mut row = AuditRow {
            seq: head_seq + 1,
            at_us,
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            detail: e.detail.to_string(),
            origin: e.origin.clone(),
            prev_hash: head_hash.to_owned(),
            hash: String::new(),
        };
        row.hash = row.hash_at(row.seq);
        row
    }

    /// The hash of this row's content as if it had `seq` (its own, or a neighbour's:
    /// a record renumbered by one still hashes to its stored hash at its old `seq`).
    pub fn hash_at(&self, seq: i64) -> String {
        audit_hash(
            seq,
            self.at_us,
            &self.actor,
            &self.action,
            &self.target,
            &self.detail,
            &self.origin,
            &self.prev_hash,
        )
    }

    /// As a record for readers.
    pub(crate) fn into_record(self) -> AuditRecord {
        let detail = serde_json::from_str(&self.detail)
            .unwrap_or_else(|_| serde_json::Value::String(self.detail.clone()));
        AuditRecord {
            seq: self.seq,
            at: crate::codec::from_us(self.at_us),
            actor: self.actor,
            action: self.action,
            target: self.target,
            detail,
            origin: self.origin,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// Short form of a hash for messages.
fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// The last record found intact.
struct Link {
    seq: i64,
    hash: String,
    prev_hash: String,
}

/// Walks a chain fed in `seq` order, one record at a time, holding one record back (a
/// record is judged with its successor in view: that tells two swapped records from a
/// removed one).
pub struct Verifier {
    last: Option<Link>,
    pending: Option<AuditRow>,
    records: u64,
    anchors: VecDeque<AuditAnchor>,
    last_anchor_ok: i64,
    broken: Option<(i64, TamperKind, String)>,
}

impl Verifier {
    /// A verifier that also checks `anchors` (in any order).
    pub fn new(mut anchors: Vec<AuditAnchor>) -> Verifier {
        anchors.sort_by_key(|a| a.seq);
        Verifier {
            last: None,
            pending: None,
            records: 0,
            anchors: anchors.into(),
            last_anchor_ok: 0,
            broken: None,
        }
    }

    /// Starts the walk after the chain's base `(seq, hash)`: the last record purged by
    /// retention (`None`: from the first record). The first record must then be
    /// `seq + 1` and follow `hash`; an anchor at the base must match it, anchors below it
    /// name purged records and cannot be checked.
    pub fn with_base(mut self, base: Option<(i64, String)>) -> Verifier {
        let Some((seq, hash)) = base else { return self };
        while let Some(a) = self.anchors.front() {
            if a.seq > seq {
                break;
            }
            if a.seq == seq && a.hash != hash {
                let detail = format!(
                    "the chain's base (the last record purged by retention) is seq {seq} with hash {}, but seq {seq} was anchored at {} as {}: the chain was rewritten",
                    short(&hash),
                    rfc3339(a.at),
                    short(&a.hash)
                );
                self.broken = Some((seq, TamperKind::Altered, detail));
                break;
            }
            self.anchors.pop_front();
        }
        self.last = Some(Link {
            seq,
            hash,
            prev_hash: String::new(),
        });
        self
    }

    /// Feeds the next record; false once the chain is known to be broken (stop feeding).
    pub fn feed(&mut self, row: AuditRow) -> bool {
        if self.broken.is_some() {
            return false;
        }
        if let Some(p) = self.pending.take() {
            self.check(p, Some(&row));
        }
        self.pending = Some(row);
        self.broken.is_none()
    }

    /// Judges the last record and gives the verdict.
    pub fn finish(mut self) -> AuditVerdict {
        if self.broken.is_none() {
            if let Some(p) = self.pending.take() {
                self.check(p, None);
            }
        }
        if self.broken.is_none() {
            let head = self.last.as_ref().map_or(0, |l| l.seq);
            // An anchor of the empty chain (seq 0) names no record.
            self.anchors.retain(|a| a.seq > 0);
            if let Some(a) = self.anchors.front() {
                self.broken = Some((
                    head + 1,
                    TamperKind::Removed,
                    format!(
                        "the chain ends at seq {head}, but seq {} was anchored at {} (hash {}): records after {head} were removed",
                        a.seq,
                        rfc3339(a.at),
                        short(&a.hash)
                    ),
                ));
            }
        }
        match self.broken {
            Some((first_bad_seq, kind, detail)) => AuditVerdict::Broken {
                first_bad_seq,
                kind,
                detail,
            },
            None => {
                let (head_seq, head_hash) = self
                    .last
                    .map_or((0, GENESIS_HASH.to_owned()), |l| (l.seq, l.hash));
                AuditVerdict::Ok {
                    records: self.records,
                    head_seq,
                    head_hash,
                }
            }
        }
    }

    fn fail(&mut self, seq: i64, kind: TamperKind, detail: String) {
        self.broken = Some((seq, kind, detail));
    }

    fn check(&mut self, r: AuditRow, next: Option<&AuditRow>) {
        let (want_seq, want_prev) = match &self.last {
            Some(l) => (l.seq + 1, l.hash.as_str()),
            None => (1, GENESIS_HASH),
        };
        if let Some(l) = &self.last {
            if r.seq == l.seq {
                let s = r.seq;
                return self.fail(
                    s,
                    TamperKind::Inserted,
                    format!("two records carry seq {s}: one of them was inserted"),
                );
            }
            if r.seq < l.seq {
                let (s, ls) = (r.seq, l.seq);
                return self.fail(
                    s,
                    TamperKind::Reordered,
                    format!("record {s} comes after record {ls}"),
                );
            }
        }
        if r.hash_at(r.seq) != r.hash {
            let s = r.seq;
            // Renumbered up by one: a record was put in before it.
            if let Some(l) = &self.last {
                if l.seq == s - 1 && r.prev_hash == l.prev_hash && r.hash_at(s - 1) == r.hash {
                    let ls = l.seq;
                    return self.fail(
                        ls,
                        TamperKind::Inserted,
                        format!(
                            "record {ls} was never appended: record {s} was appended as {ls} after the same predecessor, and the records from {ls} on were renumbered"
                        ),
                    );
                }
            }
            // Renumbered down by one: the record it replaced was removed, or the two
            // changed places.
            if s == want_seq && r.hash_at(s + 1) == r.hash {
                if let Some(n) = next {
                    if n.seq == s + 1 && n.hash == r.prev_hash && n.hash_at(s) == n.hash {
                        return self.fail(
                            s,
                            TamperKind::Reordered,
                            format!("records {s} and {} changed places", s + 1),
                        );
                    }
                }
                return self.fail(
                    s,
                    TamperKind::Removed,
                    format!(
                        "record {s} was removed: the record now at {s} was appended as {} (the records after it were renumbered)",
                        s + 1
                    ),
                );
            }
            return self.fail(
                s,
                TamperKind::Altered,
                format!(
                    "record {s} was altered: its content no longer matches its hash {}",
                    short(&r.hash)
                ),
            );
        }
        if r.seq > want_seq {
            let s = r.seq;
            let missing = if s - 1 == want_seq {
                format!("record {want_seq} is missing")
            } else {
                format!("records {want_seq} to {} are missing", s - 1)
            };
            return self.fail(
                want_seq,
                TamperKind::Removed,
                format!("{missing} (the next record is {s})"),
            );
        }
        if r.prev_hash != want_prev {
            let s = r.seq;
            if let Some(l) = &self.last {
                let ls = l.seq;
                if r.prev_hash == l.prev_hash {
                    return self.fail(
                        ls,
                        TamperKind::Inserted,
                        format!("record {ls} was never appended: record {s} follows record {ls}'s own predecessor"),
                    );
                }
            }
            let detail = format!(
                "record {s} does not follow the record before it (its prev_hash is {}, that record hashes to {}): the record it followed was removed, or the one before it replaced",
                short(&r.prev_hash),
                short(want_prev)
            );
            return self.fail(s, TamperKind::Removed, detail);
        }
        while let Some(a) = self.anchors.front() {
            if a.seq > r.seq {
                break;
            }
            if a.seq == r.seq && a.hash != r.hash {
                let detail = format!(
                    "record {} hashes to {}, but was anchored at {} as {}: the chain was rewritten after record {}",
                    r.seq,
                    short(&r.hash),
                    rfc3339(a.at),
                    short(&a.hash),
                    self.last_anchor_ok
                );
                let first = self.last_anchor_ok + 1;
                return self.fail(first, TamperKind::Altered, detail);
            }
            if a.seq == r.seq {
                self.last_anchor_ok = r.seq;
            }
            // An anchor below 1 names no record; it cannot be checked.
            self.anchors.pop_front();
        }
        self.records += 1;
        self.last = Some(Link {
            seq: r.seq,
            hash: r.hash,
            prev_hash: r.prev_hash,
        });
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut out: Vec<AuditRow> = Vec::new();
        for i in 1..=n {
            let (s, h) = out
                .last()
                .map_or((0, GENESIS_HASH.to_owned()), |r| (r.seq, r.hash.clone()));
            let e = AuditEntry {
                actor: "ana".into(),
                action: "sink.pause".into(),
                target: format!("sink:s{i}"),
                detail: serde_json::json!({"i": i}),
                origin: "127.0.0.1".into(),
            };
            out.push(AuditRow::next(s, &h, 1_700_000_000_000_000 + i, &e));
        }
        out
    }

    fn verdict(rows: Vec<AuditRow>, anchors: Vec<AuditAnchor>) -> AuditVerdict {
        let mut v = Verifier::new(anchors);
        for r in rows {
            if !v.feed(r) {
                break;
            }
        }
        v.finish()
    }

    fn broken(v: AuditVerdict) -> (i64, TamperKind) {
        match v {
            AuditVerdict::Broken {
                first_bad_seq,
                kind,
                ..
            } => (first_bad_seq, kind),
            ok => panic!("not broken: {ok:?}"),
        }
    }

    /// The encoding is length-prefixed: moving a byte from one field to the next
    /// changes the hash.
    #[test]
    fn field_boundaries_are_part_of_the_hash() {
        let a = audit_hash(1, 2, "ab", "c", "", "{}", "", GENESIS_HASH);
        let b = audit_hash(1, 2, "a", "bc", "", "{}", "", GENESIS_HASH);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn an_intact_chain_verifies() {
        let rows = chain(5);
        let head = rows[4].hash.clone();
        assert_eq!(
            verdict(rows, vec![]),
            AuditVerdict::Ok {
                records: 5,
                head_seq: 5,
                head_hash: head
            }
        );
        assert!(matches!(
            verdict(vec![], vec![]),
            AuditVerdict::Ok { records: 0, .. }
        ));
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        // Edited.
        let mut rows = chain(6);
        rows[2].detail = r#"{"i":99}"#.into();
        assert_eq!(broken(verdict(rows, vec![])), (3, TamperKind::Altered));
        // Deleted (a gap).
        let mut rows = chain(6);
        rows.remove(3);
        assert_eq!(broken(verdict(rows, vec![])), (4, TamperKind::Removed));
        // Deleted and the rest renumbered.
        let mut rows = chain(6);
        rows.remove(3);
        for r in &mut rows[3..] {
            r.seq -= 1;
        }
        assert_eq!(broken(verdict(rows, vec![])), (4, TamperKind::Removed));
        // Inserted with a correct-looking hash, the rest renumbered.
        let rows = chain(6);
        let e = AuditEntry {
            actor: "mallory".into(),
            action: "sink.resume".into(),
            target: "sink:x".into(),
            detail: serde_json::json!({}),
            origin: "10.0.0.9".into(),
        };
        let forged = AuditRow::next(2, &rows[1].hash, rows[1].at_us + 1, &e);
        let mut tampered: Vec<AuditRow> = rows[..2].to_vec();
        tampered.push(forged);
        for r in &rows[2..] {
            let mut r = r.clone();
            r.seq += 1;
            tampered.push(r);
        }
        assert_eq!(broken(verdict(tampered, vec![])), (3, TamperKind::Inserted));
        // Two records changed places.
        let mut rows = chain(6);
        rows.swap(2, 3);
        rows[2].seq = 3;
        rows[3].seq = 4;
        assert_eq!(broken(verdict(rows, vec![])), (3, TamperKind::Reordered));
        // The last record replaced by one with a valid hash: undetectable by the chain
        // alone, caught by an anchor.
        let rows = chain(4);
        let anchor = AuditAnchor {
            seq: 4,
            hash: rows[3].hash.clone(),
            at: OffsetDateTime::UNIX_EPOCH,
        };
        let mut rewritten = rows[..3].to_vec();
        rewritten.push(AuditRow::next(3, &rows[2].hash, 5, &e));
        assert!(matches!(
            verdict(rewritten.clone(), vec![]),
            AuditVerdict::Ok { .. }
        ));
        assert_eq!(
            broken(verdict(rewritten, vec![anchor.clone()])),
            (1, TamperKind::Altered)
        );
        // An anchor of the empty chain holds for any chain.
        let empty = AuditAnchor {
            seq: 0,
            hash: GENESIS_HASH.into(),
            at: OffsetDateTime::UNIX_EPOCH,
        };
        assert!(matches!(
            verdict(vec![], vec![empty.clone()]),
            AuditVerdict::Ok { .. }
        ));
        assert!(matches!(
            verdict(rows.clone(), vec![empty]),
            AuditVerdict::Ok { .. }
        ));
        // Truncated below an anchor.
        assert_eq!(
            broken(verdict(rows[..2].to_vec(), vec![anchor])),
            (3, TamperKind::Removed)
        );
    }
}
