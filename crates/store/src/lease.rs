//! Leases: how several hub instances sharing one database split the work that must be
//! done by one of them at a time — each sink's delivery lanes, in [`BUCKETS`] buckets of
//! shipment keys, and singletons such as a source's poller.
//!
//! An instance claims leases with [`crate::Store::claim_leases`] every few seconds; a
//! claim renews what it holds, takes free or expired leases up to its fair share (the
//! wanted leases divided by the instances alive), and lets the ones above its share
//! expire, so that a new instance gets its part and a dead one's part is taken over once
//! its leases expire. A single-process store (SQLite) grants everything at once.

/// Buckets a sink's shipment lanes are spread over; a lane always falls in the same one.
pub const BUCKETS: i64 = 16;

/// FNV-1a of some bytes: a stable hash (the same in every build and process).
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The bucket of a lane (FNV-1a of its key).
pub fn bucket_of(lane: &str) -> i64 {
    (fnv1a(lane.bytes()) % BUCKETS as u64) as i64
}

/// The lease of one bucket of one sink.
pub fn delivery_lease(sink: &str, bucket: i64) -> String {
    format!("deliver:{sink}:{bucket}")
}

/// The lease of a singleton task (`poller:<source>`, `drop:<source>`).
pub fn singleton_lease(name: &str) -> String {
    format!("single:{name}")
}

/// Every bucket as a mask (what a single-process store delivers).
pub const ALL_BUCKETS: i64 = -1;

/// The bucket mask of a sink among held leases.
pub fn bucket_mask<'a>(sink: &str, held: impl IntoIterator<Item = &'a String>) -> i64 {
    let prefix = format!("deliver:{sink}:");
    held.into_iter()
        .filter_map(|n| n.strip_prefix(&prefix)?.parse::<i64>().ok())
        .filter(|b| (0..BUCKETS).contains(b))
        .fold(0, |m, b| m | (1 << b))
}

/// A claim: who asks, for which leases, for how long.
#[derive(Debug, Clone)]
pub struct LeaseClaim {
    /// The instance asking (unique per running process).
    pub holder: String,
    /// Every lease the cluster needs held (the same list on every instance).
    pub names: Vec<String>,
    /// How long a lease lasts without renewal, ms.
    pub ttl_ms: i64,
}

/// What a claim granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseGrant {
    /// Leases held now, sorted.
    pub held: Vec<String>,
    /// Instances alive (this one included).
    pub instances: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket_of("S1"), bucket_of("S1"));
        let mut seen = [0u32; BUCKETS as usize];
        for i in 0..1600 {
            seen[bucket_of(&format!("SO{i:05}")) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        let held = vec![
            delivery_lease("a", 0),
            delivery_lease("a", 3),
            delivery_lease("ab", 1),
            singleton_lease("poller:x"),
        ];
        assert_eq!(bucket_mask("a", &held), 0b1001);
        assert_eq!(bucket_mask("ab", &held), 0b10);
    }
}
