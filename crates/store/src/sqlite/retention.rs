//! Retention and erasure on SQLite (see `crate::retention`).
//!
//! Payloads: the rows to purge and the events to pack again are read on a reader
//! connection (the unpacking and packing run there, not on the writer thread); one write
//! job then rewrites those events and drops the bodies, skipping any row that gained a
//! packed event meanwhile. The other kinds are one write job each, found through indexes
//! (`outbox_delivered`, `dead_letters_closed`, the audit log's primary key), so a batch
//! costs what its rows cost.

use super::{payload, SqliteStore};
use crate::codec::to_us;
use crate::retention::{
    audit_purge_entry, mask_event, pack_alone, repack_alone, Erase, EraseReport, PayloadWork,
    PurgeKind, PurgePlan, PurgeReport, Rewrite,
};
use crate::view::{self, StoredEvent};
use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeSet;
use waybill_model::privacy::Personal;

/// The sources with payloads not purged yet, by skipping through the `inbox_retention`
/// index (one lookup per source).
fn sources(c: &Connection) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    let mut st = c.prepare_cached(
        "SELECT source FROM inbox INDEXED BY inbox_retention
         WHERE purged_at IS NULL AND source > ?1 ORDER BY source LIMIT 1",
    )?;
    loop {
        let after = out.last().cloned().unwrap_or_default();
        let next: Option<String> = st.query_row([&after], |r| r.get(0)).optional()?;
        match next {
            // The empty name sorts first: look it up on its own.
            Some(s) => out.push(s),
            None => break,
        }
    }
    let empty: bool = c
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM inbox INDEXED BY inbox_retention WHERE purged_at IS NULL AND source = '')",
        )?
        .query_row([], |r| r.get(0))?;
    if empty {
        out.insert(0, String::new());
    }
    Ok(out)
}

/// Inbox rows of one status received before `cutoff`, not purged: (id, stored bytes),
/// oldest first, at most `limit` (all with `None`).
fn old_rows(
    c: &Connection,
    source: &str,
    status: &str,
    cutoff: i64,
    limit: Option<i64>,
) -> Result<Vec<(i64, u64)>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT id, length(body) FROM inbox INDEXED BY inbox_retention
         WHERE source = ?1 AND status = ?2 AND received_at < ?3 AND purged_at IS NULL
         ORDER BY received_at LIMIT ?4",
    )?;
    let rows = st.query_map(params![source, status, cutoff, limit.unwrap_or(-1)], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The payload rows a purge takes (one batch of each status, or all when dry).
fn payload_rows(c: &Connection, plan: &PurgePlan) -> Result<PayloadWork, StoreError> {
    let limit = (!plan.dry_run).then(|| plan.limit());
    let mut work = PayloadWork::default();
    for source in sources(c)? {
        let cut = plan.cutoffs_of(&source);
        for (status, cutoff, into) in [
            ("accepted", cut.raw_payloads, &mut work.accepted),
            ("rejected", cut.rejected_payloads, &mut work.rejected),
        ] {
            let Some(cutoff) = cutoff else { continue };
            let left = match limit {
                Some(l) => l - into.len() as i64,
                None => -1,
            };
            if limit.is_some() && left <= 0 {
                continue;
            }
            into.extend(old_rows(c, &source, status, to_us(cutoff), Some(left))?);
        }
    }
    Ok(work)
}

/// The events packed against the payloads of `ids`, packed again alone.
fn repacked(c: &Connection, ids: &[i64]) -> Result<Vec<Rewrite>, StoreError> {
    let mut out = Vec::new();
    let mut st = c.prepare_cached(
        "SELECT seq_id, body, shipment_seq FROM events INDEXED BY events_packed_inbox
         WHERE inbox_id = ?1 AND encoding = 'lz4+payload'",
    )?;
    for id in ids {
        let rows = st.query_map([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let rows = rows.collect::<Result<Vec<_>, _>>()?;
        if rows.is_empty() {
            continue;
        }
        let Some((stored, encoding)) = payload(c, *id)? else {
            continue;
        };
        let raw = crate::body::unpack_payload(stored, encoding.as_deref())?;
        for (seq_id, body, seq) in rows {
            let (body, encoding) = repack_alone(&body, seq, &raw)?;
            out.push(Rewrite {
                seq_id,
                body,
                encoding,
                only_if_packed: true,
            });
        }
    }
    Ok(out)
}

/// Rewrites events and drops payload bodies (accepted) and rows (rejected), in the
/// writer's transaction; returns what went: (accepted rows, bytes), (rejected rows, bytes).
/// Rows and stored bytes that went.
type Done = (u64, u64);

fn apply_payloads(
    c: &Connection,
    work: &PayloadWork,
    now: i64,
) -> Result<(Done, Done), StoreError> {
    for w in &work.rewrites {
        let sql = if w.only_if_packed {
            "UPDATE events SET body = ?2, encoding = ?3 WHERE seq_id = ?1 AND encoding = 'lz4+payload'"
        } else {
            "UPDATE events SET body = ?2, encoding = ?3 WHERE seq_id = ?1"
        };
        c.prepare_cached(sql)?
            .execute(params![w.seq_id, w.body, w.encoding])?;
    }
    let mut accepted = (0, 0);
    for (id, bytes) in &work.accepted {
        let packed: bool = c
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM events INDEXED BY events_packed_inbox WHERE inbox_id = ?1 AND encoding = 'lz4+payload')",
            )?
            .query_row([id], |r| r.get(0))?;
        if packed {
            // An event packed against it came in meanwhile: the next batch takes it.
            continue;
        }
        let n = c
            .prepare_cached(
                "UPDATE inbox SET body = X'', encoding = NULL, purged_at = ?2 WHERE id = ?1 AND purged_at IS NULL",
            )?
            .execute(params![id, now])?;
        if n == 1 {
            accepted.0 += 1;
            accepted.1 += bytes;
        }
    }
    let mut rejected = (0, 0);
    for (id, bytes) in &work.rejected {
        let n = c
            .prepare_cached("DELETE FROM inbox WHERE id = ?1 AND status = 'rejected'")?
            .execute([id])?;
        if n == 1 {
            rejected.0 += 1;
            rejected.1 += bytes;
        }
    }
    Ok((accepted, rejected))
}

/// Delivered outbox rows delivered before `cutoff`, oldest first.
fn delivered_rows(c: &Connection, cutoff: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT id FROM outbox INDEXED BY outbox_delivered
         WHERE state = 'delivered' AND delivered_at < ?1 ORDER BY delivered_at LIMIT ?2",
    )?;
    let rows = st.query_map(params![cutoff, limit], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Closed (discarded or replayed) dead letters closed before `cutoff`: (id, outbox id).
fn closed_dead_letters(
    c: &Connection,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT id, outbox_id FROM dead_letters INDEXED BY dead_letters_closed
         WHERE (replayed_at IS NOT NULL OR discarded_at IS NOT NULL)
           AND coalesce(replayed_at, discarded_at) < ?1
         ORDER BY coalesce(replayed_at, discarded_at) LIMIT ?2",
    )?;
    let rows = st.query_map(params![cutoff, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The audit records a purge takes: the oldest ones appended before `cutoff`, never the
/// last record: (seq, hash) of each.
fn audit_prefix(c: &Connection, cutoff: i64, limit: i64) -> Result<Vec<(i64, String)>, StoreError> {
    let head: Option<i64> = c
        .prepare_cached("SELECT max(seq) FROM audit_log")?
        .query_row([], |r| r.get(0))?;
    let Some(head) = head else {
        return Ok(Vec::new());
    };
    let mut st = c.prepare_cached(
        "SELECT seq, at, hash FROM audit_log WHERE seq < ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = st.query_map(params![head, limit], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (seq, at, hash) = r?;
        if at >= cutoff {
            break;
        }
        out.push((seq, hash));
    }
    Ok(out)
}

/// Counts everything the plan would purge (a dry run).
fn count_all(c: &Connection, plan: &PurgePlan) -> Result<PurgeReport, StoreError> {
    let mut report = PurgeReport::default();
    let work = payload_rows(c, plan)?;
    report.add(
        PurgeKind::RawPayloads,
        work.accepted.len() as u64,
        work.accepted.iter().map(|(_, b)| b).sum(),
    );
    report.add(
        PurgeKind::RejectedPayloads,
        work.rejected.len() as u64,
        work.rejected.iter().map(|(_, b)| b).sum(),
    );
    if let Some(cut) = plan.delivered {
        report.add(
            PurgeKind::Delivered,
            delivered_rows(c, to_us(cut), -1)?.len() as u64,
            0,
        );
    }
    if let Some(cut) = plan.dead_letters {
        report.add(
            PurgeKind::DeadLetters,
            closed_dead_letters(c, to_us(cut), -1)?.len() as u64,
            0,
        );
    }
    if let Some(cut) = plan.audit {
        report.add(
            PurgeKind::Audit,
            audit_prefix(c, to_us(cut), -1)?.len() as u64,
            0,
        );
    }
    Ok(report)
}

/// The chain's base: the last record purged, `None` when none was.
pub(crate) fn audit_base(c: &Connection) -> Result<Option<(i64, String)>, StoreError> {
    Ok(
        c.prepare_cached("SELECT seq, hash FROM audit_base WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    )
}

/// What an erasure changes, read before the write: the payload work, the report so far.
fn erase_plan(
    c: &Connection,
    what: &Erase,
    personal: &Personal,
) -> Result<Option<(Vec<String>, PayloadWork, EraseReport)>, StoreError> {
    let lanes = crate::retention::erase_lanes(&mut super::read::SqliteReader::new(c), what)?;
    if lanes.is_empty() {
        return Ok(None);
    }
    let mut report = EraseReport {
        shipments: lanes.clone(),
        ..Default::default()
    };
    let mut work = PayloadWork::default();
    let mut inbox_ids = BTreeSet::new();
    let mut payloads = view::Payloads::default();
    let mut st = c.prepare_cached(
        "SELECT seq_id, body, encoding, shipment_seq, inbox_id FROM events WHERE shipment = ?1",
    )?;
    for lane in &lanes {
        let rows = st.query_map([lane], |r| {
            Ok((r.get::<_, i64>(0)?, super::stored_event(r, 1)?))
        })?;
        for row in rows {
            let (seq_id, stored): (i64, StoredEvent) = row?;
            if let Some(id) = stored.inbox_id {
                inbox_ids.insert(id);
            }
            let seq = stored.seq;
            let json = stored.json(&mut payloads, &mut |id| payload(c, id))?;
            if let Some((masked, n)) = mask_event(&json, personal)? {
                report.events += 1;
                report.values += n;
                let (body, encoding) = pack_alone(masked, seq);
                work.rewrites.push(Rewrite {
                    seq_id,
                    body,
                    encoding,
                    only_if_packed: false,
                });
            }
        }
    }
    let ids: Vec<i64> = inbox_ids.into_iter().collect();
    // Other shipments' events packed against these payloads (a file of many shipments).
    let mine: BTreeSet<i64> = work.rewrites.iter().map(|w| w.seq_id).collect();
    work.rewrites.extend(
        repacked(c, &ids)?
            .into_iter()
            .filter(|w| !mine.contains(&w.seq_id)),
    );
    let mut st = c.prepare_cached("SELECT length(body) FROM inbox WHERE id = ?1")?;
    for id in ids {
        if let Some(n) = st.query_row([id], |r| r.get::<_, i64>(0)).optional()? {
            work.accepted.push((id, n.max(0) as u64));
        }
    }
    Ok(Some((lanes, work, report)))
}

/// Masks the proof-of-delivery facts of `lanes` (one masked row per lane and source) and
/// drops their proof-of-delivery conflicts; returns the facts masked.
fn mask_facts(c: &Connection, lanes: &[String]) -> Result<u64, StoreError> {
    let mut n = 0;
    let masked = serde_json::Value::String(waybill_model::privacy::MASK.into()).to_string();
    for lane in lanes {
        let rows: Vec<(String, i64, String)> = c
            .prepare_cached(
                "SELECT source, max(at), max(event_id) FROM observations
                 WHERE lane = ?1 AND fact = 'pod' AND value <> ?2 GROUP BY source",
            )?
            .query_map(params![lane, masked], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        for (source, at, event_id) in rows {
            n += c
                .prepare_cached(
                    "DELETE FROM observations WHERE lane = ?1 AND fact = 'pod' AND source = ?2 AND value <> ?3",
                )?
                .execute(params![lane, source, masked])? as u64;
            c.prepare_cached(
                "INSERT INTO observations (lane, fact, source, value, at, event_id) VALUES (?1, 'pod', ?2, ?3, ?4, ?5)
                 ON CONFLICT (lane, fact, source, value) DO NOTHING",
            )?
            .execute(params![lane, source, masked, at, event_id])?;
        }
        c.prepare_cached("DELETE FROM conflicts WHERE shipment = ?1 AND fact = 'pod'")?
            .execute([lane])?;
    }
    Ok(n)
}

impl SqliteStore {
    pub(crate) async fn purge(&self, plan: PurgePlan) -> Result<PurgeReport, StoreError> {
        if plan.dry_run {
            return self.read(move |c| count_all(c, &plan)).await;
        }
        let mut report = PurgeReport::default();
        let now = to_us(plan.now);
        let p = plan.clone();
        let work = self
            .read(move |c| {
                let mut work = payload_rows(c, &p)?;
                let ids: Vec<i64> = work.accepted.iter().map(|(id, _)| *id).collect();
                work.rewrites = repacked(c, &ids)?;
                Ok(work)
            })
            .await?;
        if !work.accepted.is_empty() || !work.rejected.is_empty() {
            let work = std::sync::Arc::new(work);
            let ((a, ab), (r, rb)) = self
                .write(move |c, _| apply_payloads(c, &work, now))
                .await?;
            report.add(PurgeKind::RawPayloads, a, ab);
            report.add(PurgeKind::RejectedPayloads, r, rb);
        }
        let limit = plan.limit();
        if let Some(cut) = plan.delivered.map(to_us) {
            let n = self
                .write(move |c, _| {
                    let ids = delivered_rows(c, cut, limit)?;
                    for id in &ids {
                        c.prepare_cached("DELETE FROM delivery_attempts WHERE outbox_id = ?1")?
                            .execute([id])?;
                        c.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                            .execute([id])?;
                    }
                    Ok(ids.len() as u64)
                })
                .await?;
            report.add(PurgeKind::Delivered, n, 0);
        }
        if let Some(cut) = plan.dead_letters.map(to_us) {
            let n = self
                .write(move |c, _| {
                    let rows = closed_dead_letters(c, cut, limit)?;
                    for (id, outbox) in &rows {
                        c.prepare_cached("DELETE FROM delivery_attempts WHERE outbox_id = ?1")?
                            .execute([outbox])?;
                        c.prepare_cached("DELETE FROM outbox WHERE id = ?1 AND state = 'dead'")?
                            .execute([outbox])?;
                        c.prepare_cached("DELETE FROM dead_letters WHERE id = ?1")?
                            .execute([id])?;
                    }
                    Ok(rows.len() as u64)
                })
                .await?;
            report.add(PurgeKind::DeadLetters, n, 0);
        }
        if let Some(cut) = plan.audit.map(to_us) {
            let n = self
                .write(move |c, _| {
                    let rows = audit_prefix(c, cut, limit)?;
                    let Some((through, hash)) = rows.last() else {
                        return Ok(0);
                    };
                    c.prepare_cached(
                        "INSERT INTO audit_base (id, seq, hash) VALUES (1, ?1, ?2)
                         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                    )?
                    .execute(params![through, hash])?;
                    c.prepare_cached("DELETE FROM audit_log WHERE seq <= ?1")?
                        .execute([through])?;
                    let n = rows.len() as u64;
                    super::audit::append(c, &audit_purge_entry(*through, hash, n), now)?;
                    Ok(n)
                })
                .await?;
            report.add(PurgeKind::Audit, n, 0);
        }
        Ok(report)
    }

    pub(crate) async fn erase(
        &self,
        what: Erase,
        personal: Personal,
    ) -> Result<Option<EraseReport>, StoreError> {
        let Some((lanes, work, mut report)) =
            self.read(move |c| erase_plan(c, &what, &personal)).await?
        else {
            return Ok(None);
        };
        let now = to_us(time::OffsetDateTime::now_utc());
        let work = std::sync::Arc::new(work);
        let ((payloads, bytes), facts) = self
            .write(move |c, _| {
                let (done, _) = apply_payloads(c, &work, now)?;
                Ok((done, mask_facts(c, &lanes)?))
            })
            .await?;
        report.payloads = payloads;
        report.bytes = bytes;
        report.facts = facts;
        Ok(Some(report))
    }

    pub(crate) async fn audit_base(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.read(audit_base).await
    }
}
