//! Retention and erasure on PostgreSQL (see `crate::retention`): as on SQLite, the
//! payload rows and the events to pack again are read on a reader connection, one write
//! job applies them; the other kinds are one write job each, through the same indexes.

use super::read::{payload, PgReader};
use super::{PgConn, PgStore};
use crate::codec::to_us;
use crate::retention::{
    audit_purge_entry, erase_lanes, mask_event, pack_alone, repack_alone, Erase, EraseReport,
    PayloadWork, PurgeKind, PurgePlan, PurgeReport, Rewrite,
};
use crate::view::{self, StoredEvent};
use crate::StoreError;
use std::collections::BTreeSet;
use waybill_model::privacy::Personal;

/// The sources with payloads not purged yet, one index lookup each.
fn sources(c: &mut PgConn) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let row = match &after {
            None => c.query_opt(
                "SELECT source FROM inbox WHERE purged_at IS NULL ORDER BY source LIMIT 1",
                &[],
            )?,
            Some(a) => c.query_opt(
                "SELECT source FROM inbox WHERE purged_at IS NULL AND source > $1 ORDER BY source LIMIT 1",
                &[a],
            )?,
        };
        let Some(row) = row else { break };
        let s: String = row.try_get(0)?;
        out.push(s.clone());
        after = Some(s);
    }
    Ok(out)
}

fn old_rows(
    c: &mut PgConn,
    source: &str,
    status: &str,
    cutoff: i64,
    limit: Option<i64>,
) -> Result<Vec<(i64, u64)>, StoreError> {
    let rows = c.query(
        "SELECT id, length(body)::BIGINT FROM inbox
         WHERE source = $1 AND status = $2 AND received_at < $3 AND purged_at IS NULL
         ORDER BY received_at LIMIT $4",
        &[&source, &status, &cutoff, &limit],
    )?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64)))
        .collect()
}

fn payload_rows(c: &mut PgConn, plan: &PurgePlan) -> Result<PayloadWork, StoreError> {
    let limit = (!plan.dry_run).then(|| plan.limit());
    let mut work = PayloadWork::default();
    for source in sources(c)? {
        let cut = plan.cutoffs_of(&source);
        for (status, cutoff, accepted) in [
            ("accepted", cut.raw_payloads, true),
            ("rejected", cut.rejected_payloads, false),
        ] {
            let Some(cutoff) = cutoff else { continue };
            let into = if accepted {
                &mut work.accepted
            } else {
                &mut work.rejected
            };
            let left = limit.map(|l| l - into.len() as i64);
            if left.is_some_and(|l| l <= 0) {
                continue;
            }
            let rows = old_rows(c, &source, status, to_us(cutoff), left)?;
            let into = if accepted {
                &mut work.accepted
            } else {
                &mut work.rejected
            };
            into.extend(rows);
        }
    }
    Ok(work)
}

fn repacked(c: &mut PgConn, ids: &[i64]) -> Result<Vec<Rewrite>, StoreError> {
    // Two statements for the whole batch: the events packed against these payloads, and
    // the payloads themselves.
    let ids = ids.to_vec();
    let rows = c.query(
        "SELECT seq_id, body, shipment_seq, inbox_id FROM events
         WHERE inbox_id = ANY($1) AND encoding = 'lz4+payload' ORDER BY seq_id",
        &[&ids],
    )?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<i64> = {
        let mut v: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get::<_, i64>(3))
            .collect::<Result<_, _>>()?;
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut raw: std::collections::HashMap<i64, Vec<u8>> = std::collections::HashMap::new();
    for r in c.query(
        "SELECT id, body, encoding FROM inbox WHERE id = ANY($1)",
        &[&wanted],
    )? {
        let (id, stored, encoding): (i64, Vec<u8>, Option<String>) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        raw.insert(
            id,
            crate::body::unpack_payload(stored, encoding.as_deref())?,
        );
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (seq_id, body, seq, inbox_id): (i64, Vec<u8>, i64, i64) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        let Some(raw) = raw.get(&inbox_id) else {
            continue;
        };
        let (body, encoding) = repack_alone(&body, seq, raw)?;
        out.push(Rewrite {
            seq_id,
            body,
            encoding,
            only_if_packed: true,
        });
    }
    Ok(out)
}

/// Rows and stored bytes that went.
type Done = (u64, u64);

/// The rows and bytes of `rows` (id, bytes) whose ids `gone` lists.
fn done_of(rows: &[(i64, u64)], gone: &[postgres::Row]) -> Result<Done, StoreError> {
    let gone: std::collections::HashSet<i64> = gone
        .iter()
        .map(|r| r.try_get::<_, i64>(0))
        .collect::<Result<_, _>>()?;
    Ok(rows
        .iter()
        .filter(|(id, _)| gone.contains(id))
        .fold((0, 0), |(n, b), (_, bytes)| (n + 1, b + bytes)))
}

/// The purge's (or erasure's) writes, one statement each for the whole batch: rewrite
/// the events, empty the accepted payloads no event is still packed against, delete the
/// rejected ones.
fn apply_payloads(
    c: &mut PgConn,
    work: &PayloadWork,
    now: i64,
) -> Result<(Done, Done), StoreError> {
    if !work.rewrites.is_empty() {
        let seq_ids: Vec<i64> = work.rewrites.iter().map(|w| w.seq_id).collect();
        let bodies: Vec<&[u8]> = work.rewrites.iter().map(|w| w.body.as_slice()).collect();
        let encodings: Vec<Option<&str>> = work.rewrites.iter().map(|w| w.encoding).collect();
        let guarded: Vec<bool> = work.rewrites.iter().map(|w| w.only_if_packed).collect();
        c.exec(
            "UPDATE events e SET body = u.body, encoding = u.encoding
             FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::bool[]) AS u(seq_id, body, encoding, guarded)
             WHERE e.seq_id = u.seq_id AND (NOT u.guarded OR e.encoding = 'lz4+payload')",
            &[&seq_ids, &bodies, &encodings, &guarded],
        )?;
    }
    let mut accepted = (0, 0);
    if !work.accepted.is_empty() {
        let ids: Vec<i64> = work.accepted.iter().map(|(id, _)| *id).collect();
        let gone = c.query(
            "UPDATE inbox i SET body = '\\x'::bytea, encoding = NULL, purged_at = $2
             WHERE i.id = ANY($1) AND i.purged_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM events e WHERE e.inbox_id = i.id AND e.encoding = 'lz4+payload')
             RETURNING i.id",
            &[&ids, &now],
        )?;
        accepted = done_of(&work.accepted, &gone)?;
    }
    let mut rejected = (0, 0);
    if !work.rejected.is_empty() {
        let ids: Vec<i64> = work.rejected.iter().map(|(id, _)| *id).collect();
        let gone = c.query(
            "DELETE FROM inbox WHERE id = ANY($1) AND status = 'rejected' RETURNING id",
            &[&ids],
        )?;
        rejected = done_of(&work.rejected, &gone)?;
    }
    Ok((accepted, rejected))
}

fn delivered_rows(c: &mut PgConn, cutoff: i64, limit: Option<i64>) -> Result<Vec<i64>, StoreError> {
    let rows = c.query(
        "SELECT id FROM outbox WHERE state = 'delivered' AND delivered_at < $1
         ORDER BY delivered_at LIMIT $2",
        &[&cutoff, &limit],
    )?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

fn closed_dead_letters(
    c: &mut PgConn,
    cutoff: i64,
    limit: Option<i64>,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let rows = c.query(
        "SELECT id, outbox_id FROM dead_letters
         WHERE (replayed_at IS NOT NULL OR discarded_at IS NOT NULL)
           AND coalesce(replayed_at, discarded_at) < $1
         ORDER BY coalesce(replayed_at, discarded_at) LIMIT $2",
        &[&cutoff, &limit],
    )?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

fn audit_prefix(
    c: &mut PgConn,
    cutoff: i64,
    limit: Option<i64>,
) -> Result<Vec<(i64, String)>, StoreError> {
    let head: Option<i64> = c
        .query_opt("SELECT max(seq) FROM audit_log", &[])?
        .map(|r| r.try_get(0))
        .transpose()?
        .flatten();
    let Some(head) = head else {
        return Ok(Vec::new());
    };
    let rows = c.query(
        "SELECT seq, at, hash FROM audit_log WHERE seq < $1 ORDER BY seq LIMIT $2",
        &[&head, &limit],
    )?;
    let mut out = Vec::new();
    for r in rows {
        let (seq, at, hash): (i64, i64, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        if at >= cutoff {
            break;
        }
        out.push((seq, hash));
    }
    Ok(out)
}

fn count_all(c: &mut PgConn, plan: &PurgePlan) -> Result<PurgeReport, StoreError> {
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
        let n = delivered_rows(c, to_us(cut), None)?.len() as u64;
        report.add(PurgeKind::Delivered, n, 0);
    }
    if let Some(cut) = plan.dead_letters {
        let n = closed_dead_letters(c, to_us(cut), None)?.len() as u64;
        report.add(PurgeKind::DeadLetters, n, 0);
    }
    if let Some(cut) = plan.audit {
        let n = audit_prefix(c, to_us(cut), None)?.len() as u64;
        report.add(PurgeKind::Audit, n, 0);
    }
    Ok(report)
}

pub(crate) fn audit_base(c: &mut PgConn) -> Result<Option<(i64, String)>, StoreError> {
    c.query_opt("SELECT seq, hash FROM audit_base WHERE id = 1", &[])?
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .transpose()
}

fn erase_plan(
    c: &mut PgConn,
    what: &Erase,
    personal: &Personal,
) -> Result<Option<(Vec<String>, PayloadWork, EraseReport)>, StoreError> {
    let lanes = erase_lanes(&mut PgReader(c), what)?;
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
    for lane in &lanes {
        let rows = c.query(
            "SELECT seq_id, body, encoding, shipment_seq, inbox_id FROM events WHERE shipment = $1",
            &[lane],
        )?;
        for r in rows {
            let seq_id: i64 = r.try_get(0)?;
            let stored = StoredEvent {
                body: r.try_get(1)?,
                encoding: r.try_get(2)?,
                seq: r.try_get(3)?,
                inbox_id: r.try_get(4)?,
            };
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
    let mine: BTreeSet<i64> = work.rewrites.iter().map(|w| w.seq_id).collect();
    work.rewrites.extend(
        repacked(c, &ids)?
            .into_iter()
            .filter(|w| !mine.contains(&w.seq_id)),
    );
    for id in ids {
        if let Some(r) = c.query_opt(
            "SELECT length(body)::BIGINT FROM inbox WHERE id = $1",
            &[&id],
        )? {
            work.accepted
                .push((id, r.try_get::<_, i64>(0)?.max(0) as u64));
        }
    }
    Ok(Some((lanes, work, report)))
}

fn mask_facts(c: &mut PgConn, lanes: &[String]) -> Result<u64, StoreError> {
    let mut n = 0;
    let masked = serde_json::Value::String(waybill_model::privacy::MASK.into()).to_string();
    for lane in lanes {
        let rows = c.query(
            "SELECT source, max(at), max(event_id) FROM observations
             WHERE lane = $1 AND fact = 'pod' AND value <> $2 GROUP BY source",
            &[lane, &masked],
        )?;
        for r in rows {
            let (source, at, event_id): (String, i64, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            n += c.exec(
                "DELETE FROM observations WHERE lane = $1 AND fact = 'pod' AND source = $2 AND value <> $3",
                &[lane, &source, &masked],
            )?;
            c.exec(
                "INSERT INTO observations (lane, fact, source, value, at, event_id) VALUES ($1, 'pod', $2, $3, $4, $5)
                 ON CONFLICT (lane, fact, source, value) DO NOTHING",
                &[lane, &source, &masked, &at, &event_id],
            )?;
        }
        c.exec(
            "DELETE FROM conflicts WHERE shipment = $1 AND fact = 'pod'",
            &[lane],
        )?;
    }
    Ok(n)
}

impl PgStore {
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
        let limit = Some(plan.limit());
        if let Some(cut) = plan.delivered.map(to_us) {
            let n = self
                .write(move |c, _| {
                    let ids = delivered_rows(c, cut, limit)?;
                    c.exec(
                        "DELETE FROM delivery_attempts WHERE outbox_id = ANY($1)",
                        &[&ids],
                    )?;
                    c.exec("DELETE FROM outbox WHERE id = ANY($1)", &[&ids])?;
                    Ok(ids.len() as u64)
                })
                .await?;
            report.add(PurgeKind::Delivered, n, 0);
        }
        if let Some(cut) = plan.dead_letters.map(to_us) {
            let n = self
                .write(move |c, _| {
                    let rows = closed_dead_letters(c, cut, limit)?;
                    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
                    let outbox: Vec<i64> = rows.iter().map(|r| r.1).collect();
                    c.exec(
                        "DELETE FROM delivery_attempts WHERE outbox_id = ANY($1)",
                        &[&outbox],
                    )?;
                    c.exec(
                        "DELETE FROM outbox WHERE id = ANY($1) AND state = 'dead'",
                        &[&outbox],
                    )?;
                    c.exec("DELETE FROM dead_letters WHERE id = ANY($1)", &[&ids])?;
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
                    c.exec(
                        "INSERT INTO audit_base (id, seq, hash) VALUES (1, $1, $2)
                         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                        &[through, hash],
                    )?;
                    c.exec("DELETE FROM audit_log WHERE seq <= $1", &[through])?;
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
