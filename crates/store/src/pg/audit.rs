//! The audit trail on PostgreSQL (see `crate::audit`). Appends run in the writer's
//! transaction, after its advisory lock: the head read there is the head of every
//! instance's chain.

use super::{PgConn, PgStore};
use crate::audit::{
    AuditAnchor, AuditEntry, AuditQuery, AuditRecord, AuditRow, AuditVerdict, SealedEvent,
    Verifier, AUDIT_PAGE, GENESIS_HASH,
};
use crate::codec::to_us;
use crate::StoreError;
use time::OffsetDateTime;

fn row(r: &postgres::Row) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: r.try_get(0)?,
        at_us: r.try_get(1)?,
        actor: r.try_get(2)?,
        action: r.try_get(3)?,
        target: r.try_get(4)?,
        detail: r.try_get(5)?,
        origin: r.try_get(6)?,
        prev_hash: r.try_get(7)?,
        hash: r.try_get(8)?,
    })
}

/// Appends `e` after the head read in the open transaction (for any write job: the
/// record commits or rolls back with it).
pub(crate) fn append(c: &mut PgConn, e: &AuditEntry, at_us: i64) -> Result<AuditRow, StoreError> {
    let head = c
        .query_opt(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            &[],
        )?
        .map(|r| Ok::<_, StoreError>((r.try_get::<_, i64>(0)?, r.try_get::<_, String>(1)?)))
        .transpose()?;
    let (seq, hash) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
    let r = AuditRow::next(seq, &hash, at_us, e);
    c.exec(
        "INSERT INTO audit_log (seq, at, actor, action, target, detail, origin, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &r.seq,
            &r.at_us,
            &r.actor,
            &r.action,
            &r.target,
            &r.detail,
            &r.origin,
            &r.prev_hash,
            &r.hash,
        ],
    )?;
    Ok(r)
}

impl PgStore {
    pub(crate) async fn audit_append(&self, e: AuditEntry) -> Result<AuditRecord, StoreError> {
        let at = to_us(OffsetDateTime::now_utc());
        let r = self.write(move |c, _| append(c, &e, at)).await?;
        Ok(r.into_record())
    }

    pub(crate) async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        self.read(|c| {
            let head = c.query_opt(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                &[],
            )?;
            match head {
                Some(r) => Ok((r.try_get(0)?, r.try_get(1)?)),
                None => Ok((0, GENESIS_HASH.to_owned())),
            }
        })
        .await
    }

    pub(crate) async fn audit(&self, q: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(move |c| {
            let rows = c.query(
                "SELECT seq, at, actor, action, target, detail, origin, prev_hash, hash
                 FROM audit_log WHERE seq > $1
                   AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR target = $3)
                 ORDER BY seq LIMIT $4",
                &[&q.after_seq, &q.action, &q.target, &q.capped_limit()],
            )?;
            rows.iter()
                .map(|r| row(r).map(AuditRow::into_record))
                .collect()
        })
        .await
    }

    pub(crate) async fn audit_verify(
        &self,
        anchors: Vec<AuditAnchor>,
    ) -> Result<AuditVerdict, StoreError> {
        let base = self.read(super::retention::audit_base).await?;
        let mut after = base.as_ref().map_or(0i64, |b| b.0);
        let mut v = Verifier::new(anchors).with_base(base);
        loop {
            let rows = self
                .read(move |c| {
                    let rows = c.query(
                        "SELECT seq, at, actor, action, target, detail, origin, prev_hash, hash
                         FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                        &[&after, &i64::from(AUDIT_PAGE)],
                    )?;
                    rows.iter().map(row).collect::<Result<Vec<_>, _>>()
                })
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            let full = rows.len() == AUDIT_PAGE as usize;
            if !rows.into_iter().all(|r| v.feed(r)) || !full {
                break;
            }
        }
        Ok(v.finish())
    }

    pub(crate) async fn sealed_events(
        &self,
        after: i64,
        through: i64,
        limit: i64,
    ) -> Result<Vec<SealedEvent>, StoreError> {
        self.read(move |c| {
            c.query(
                "SELECT seq_id, event_id, shipment, shipment_seq, type, source, occurred_at, effect
                 FROM events WHERE seq_id > $1 AND seq_id <= $2 ORDER BY seq_id LIMIT $3",
                &[&after, &through, &limit],
            )?
            .iter()
            .map(|r| {
                Ok(SealedEvent {
                    seq_id: r.try_get(0)?,
                    event_id: r.try_get(1)?,
                    shipment: r.try_get(2)?,
                    shipment_seq: r.try_get(3)?,
                    ty: r.try_get(4)?,
                    source: r.try_get(5)?,
                    occurred_at_us: r.try_get(6)?,
                    effect: r.try_get(7)?,
                })
            })
            .collect()
        })
        .await
    }

    pub(crate) async fn last_event_row(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(
                c.query_opt("SELECT coalesce(max(seq_id), 0)::bigint FROM events", &[])?
                    .map(|r| r.try_get::<_, i64>(0))
                    .transpose()?
                    .unwrap_or(0),
            )
        })
        .await
    }
}
