//! Lease claims on PostgreSQL (see [`crate::lease`]). A claim is a write job: it runs
//! under the writers' advisory lock, so claims of several instances never interleave.

use super::{PgConn, PgStore};
use crate::codec::now_ms;
use crate::lease::{LeaseClaim, LeaseGrant};
use crate::StoreError;
use std::collections::{BTreeMap, BTreeSet};

impl PgStore {
    pub(crate) async fn claim_leases(&self, claim: LeaseClaim) -> Result<LeaseGrant, StoreError> {
        self.write(move |c, _| claim_in(c, &claim, now_ms())).await
    }
}

/// Order in which `holder` tries free leases: a hash of both, so that instances starting
/// together do not all reach for the same ones.
fn preference(holder: &str, name: &str) -> u64 {
    crate::lease::fnv1a(holder.bytes().chain([0]).chain(name.bytes()))
}

fn claim_in(c: &mut PgConn, claim: &LeaseClaim, now: i64) -> Result<LeaseGrant, StoreError> {
    let me = claim.holder.as_str();
    let until = now + claim.ttl_ms;
    c.exec(
        "INSERT INTO instances (id, seen_at) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        &[&me, &now],
    )?;
    c.exec(
        "DELETE FROM instances WHERE seen_at < $1",
        &[&(now - claim.ttl_ms)],
    )?;
    let live = c
        .query_opt("SELECT count(*) FROM instances", &[])?
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or(1)
        .max(1) as usize;
    let rows = c.query("SELECT name, holder, expires_at FROM leases", &[])?;
    let current: BTreeMap<String, (String, i64)> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2))))
        .collect();
    let wanted: BTreeSet<&str> = claim.names.iter().map(String::as_str).collect();
    let share = wanted.len().div_ceil(live);
    // Mine and still valid: keep up to the share (the rest expire, for the others).
    let mut kept: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|n| matches!(current.get(*n), Some((h, exp)) if h == me && *exp >= now))
        .collect();
    kept.sort_by_key(|n| preference(me, n));
    kept.truncate(share);
    // Free or expired (mine included): take them up to the share.
    let mut free: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|n| match current.get(*n) {
            None => true,
            Some((h, exp)) => *exp < now && !(h == me && kept.contains(n)),
        })
        .collect();
    free.sort_by_key(|n| preference(me, n));
    for name in free {
        if kept.len() >= share {
            break;
        }
        let n = c.exec(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.expires_at < $4",
            &[&name, &me, &until, &now],
        )?;
        if n == 1 {
            kept.push(name);
        }
    }
    let held: Vec<String> = kept.iter().map(|s| (*s).to_owned()).collect();
    c.exec(
        "UPDATE leases SET expires_at = $2 WHERE holder = $1 AND name = ANY($3)",
        &[&me, &until, &held],
    )?;
    let mut held = held;
    held.sort();
    Ok(LeaseGrant {
        held,
        instances: live,
    })
}

impl PgStore {
    pub(crate) async fn release_leases(&self, holder: &str) -> Result<(), StoreError> {
        let holder = holder.to_owned();
        self.write(move |c, _| {
            c.exec("DELETE FROM leases WHERE holder = $1", &[&holder])?;
            c.exec("DELETE FROM instances WHERE id = $1", &[&holder])?;
            Ok(())
        })
        .await
    }
}
