//! The audit trail on SQLite (see `crate::audit`).

use super::SqliteStore;
use crate::audit::{
    AuditAnchor, AuditEntry, AuditQuery, AuditRecord, AuditRow, AuditVerdict, SealedEvent,
    Verifier, AUDIT_PAGE, GENESIS_HASH,
};
use crate::codec::to_us;
use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;

const COLUMNS: &str = "seq, at, actor, action, target, detail, origin, prev_hash, hash";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: r.get(0)?,
        at_us: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        detail: r.get(5)?,
        origin: r.get(6)?,
        prev_hash: r.get(7)?,
        hash: r.get(8)?,
    })
}

/// Appends `e` after the head read in the open transaction (for any write job: the
/// record commits or rolls back with it).
pub(crate) fn append(c: &Connection, e: &AuditEntry, at_us: i64) -> Result<AuditRow, StoreError> {
    let head: Option<(i64, String)> = c
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, hash) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
    let r = AuditRow::next(seq, &hash, at_us, e);
    c.prepare_cached(
        "INSERT INTO audit_log (seq, at, actor, action, target, detail, origin, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        r.seq,
        r.at_us,
        r.actor,
        r.action,
        r.target,
        r.detail,
        r.origin,
        r.prev_hash,
        r.hash
    ])?;
    Ok(r)
}

fn page(c: &Connection, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(params![after, limit], row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

impl SqliteStore {
    pub(crate) async fn audit_append(&self, e: AuditEntry) -> Result<AuditRecord, StoreError> {
        let at = to_us(OffsetDateTime::now_utc());
        let r = self.write(move |c, _| append(c, &e, at)).await?;
        Ok(r.into_record())
    }

    pub(crate) async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        self.read(|c| {
            let head: Option<(i64, String)> = c
                .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(head.unwrap_or((0, GENESIS_HASH.to_owned())))
        })
        .await
    }

    pub(crate) async fn audit(&self, q: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq > ?1
                   AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR target = ?3)
                 ORDER BY seq LIMIT ?4"
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(
                params![q.after_seq, q.action, q.target, q.capped_limit()],
                row,
            )?;
            let rows = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(rows.into_iter().map(AuditRow::into_record).collect())
        })
        .await
    }

    pub(crate) async fn audit_verify(
        &self,
        anchors: Vec<AuditAnchor>,
    ) -> Result<AuditVerdict, StoreError> {
        let base = self.read(super::retention::audit_base).await?;
        let mut after = base.as_ref().map_or(0, |b| b.0);
        let mut v = Verifier::new(anchors).with_base(base);
        loop {
            let rows = self
                .read(move |c| page(c, after, i64::from(AUDIT_PAGE)))
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
            let mut st = c.prepare_cached(
                "SELECT seq_id, event_id, shipment, shipment_seq, type, source, occurred_at, effect
                 FROM events WHERE seq_id > ?1 AND seq_id <= ?2 ORDER BY seq_id LIMIT ?3",
            )?;
            let rows = st.query_map(params![after, through, limit], |r| {
                Ok(SealedEvent {
                    seq_id: r.get(0)?,
                    event_id: r.get(1)?,
                    shipment: r.get(2)?,
                    shipment_seq: r.get(3)?,
                    ty: r.get(4)?,
                    source: r.get(5)?,
                    occurred_at_us: r.get(6)?,
                    effect: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(crate) async fn last_event_row(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT coalesce(max(seq_id), 0) FROM events", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
    }
}
