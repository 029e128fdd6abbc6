//! Identifiers: newtypes so that a shipment key is never passed where an event id belongs.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// CloudEvents `id` of a canonical event; deterministic from its source and partner identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub String);

impl EventId {
    /// Derives the id from the source name, the shipment the event is about, the
    /// payload's idempotency key and the event's own key within that payload. Same inputs,
    /// same id: a re-sent partner event is recognised as the same event. The shipment is
    /// part of it so that an id is unique within its shipment exactly when it is unique
    /// everywhere — the store checks duplicates per shipment, beside the shipment's own
    /// timeline, instead of in a global index of random ids.
    pub fn derive(source: &str, subject: &ShipmentKey, payload_key: &str, event_key: &str) -> Self {
        let mut h = Sha256::new();
        for part in [source, subject.as_str(), payload_key, event_key] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let d = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        // Shape it as an RFC 9562 UUIDv8 (custom, name-based) so tools that expect UUIDs accept it.
        b[6] = (b[6] & 0x0f) | 0x80;
        b[8] = (b[8] & 0x3f) | 0x80;
        let x = hex::encode(b);
        EventId(format!(
            "{}-{}-{}-{}-{}",
            &x[0..8],
            &x[8..12],
            &x[12..16],
            &x[16..20],
            &x[20..32]
        ))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key of one shipment (CloudEvents `subject`, `partitionkey`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShipmentKey(pub String);

impl ShipmentKey {
    /// Longest key accepted; keys end up in URLs, subjects and indexes.
    pub const MAX_LEN: usize = 200;

    /// Validates a key: non-empty, at most [`Self::MAX_LEN`] bytes, no control characters
    /// and no `/` (keys are path segments in the read API).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("shipment key is empty".into());
        }
        if s.len() > Self::MAX_LEN {
            return Err(format!(
                "shipment key is longer than {} bytes",
                Self::MAX_LEN
            ));
        }
        if s.chars().any(|c| c.is_control() || c == '/') {
            return Err("shipment key contains '/' or a control character".into());
        }
        Ok(ShipmentKey(s.to_owned()))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShipmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hex SHA-256 of a byte string: the content-hash idempotency key of last resort.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_id_is_stable_and_separates_parts() {
        let s = ShipmentKey("S1".into());
        let a = EventId::derive("carrier", &s, "abc", "0");
        assert_eq!(a, EventId::derive("carrier", &s, "abc", "0"));
        assert_ne!(a, EventId::derive("carrier", &s, "ab", "c0"));
        assert_ne!(a, EventId::derive("carrie", &s, "rabc", "0"));
        assert_ne!(
            a,
            EventId::derive("carrier", &ShipmentKey("S2".into()), "abc", "0")
        );
        assert_eq!(a.as_str().len(), 36);
        assert_eq!(&a.as_str()[14..15], "8");
    }

    #[test]
    fn shipment_key_rejects_slash_and_empty() {
        assert!(ShipmentKey::parse("").is_err());
        assert!(ShipmentKey::parse("a/b").is_err());
        assert!(ShipmentKey::parse("WH-OUT-00015").is_ok());
    }
}
