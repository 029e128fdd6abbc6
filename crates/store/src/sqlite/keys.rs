//! API keys on SQLite (see `crate::keys`).

use super::SqliteStore;
use crate::codec::{list_json, to_us};
use crate::keys::{record, KeyRecord, NewKey, COLUMNS};
use crate::StoreError;
use rusqlite::{params, OptionalExtension, Row};
use time::OffsetDateTime;

fn row(r: &Row<'_>) -> rusqlite::Result<(KeyRecordRow, String)> {
    Ok((
        (
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
        ),
        r.get(9)?,
    ))
}

type KeyRecordRow = (
    String,
    String,
    String,
    Option<String>,
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn decode(k: KeyRecordRow) -> Result<KeyRecord, StoreError> {
    record(k.0, k.1, &k.2, k.3, k.4, k.5, k.6, k.7, k.8)
}

impl SqliteStore {
    pub(crate) async fn key_create(&self, k: NewKey) -> Result<Option<KeyRecord>, StoreError> {
        self.write(move |c, _| {
            let now = to_us(OffsetDateTime::now_utc());
            let n = c
                .prepare_cached(
                    "INSERT INTO api_keys (id, name, hash, scopes, tenant, created_at, created_by, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    k.id,
                    k.name,
                    k.hash,
                    list_json(&k.scopes),
                    k.tenant,
                    now,
                    k.created_by,
                    k.expires_at.map(to_us)
                ])?;
            if n == 0 {
                return Ok(None);
            }
            let sql = format!("SELECT {COLUMNS}, hash FROM api_keys WHERE id = ?1");
            let r = c.prepare(&sql)?.query_row([&k.id], row)?;
            decode(r.0).map(Some)
        })
        .await
    }

    pub(crate) async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|c| {
            let sql =
                format!("SELECT {COLUMNS}, hash FROM api_keys ORDER BY created_at, id LIMIT 10000");
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map([], row)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(decode(r?.0)?);
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn key_lookup(
        &self,
        id: &str,
    ) -> Result<Option<(KeyRecord, String)>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            let sql = format!("SELECT {COLUMNS}, hash FROM api_keys WHERE id = ?1");
            match c.prepare(&sql)?.query_row([&id], row).optional()? {
                Some((k, hash)) => Ok(Some((decode(k)?, hash))),
                None => Ok(None),
            }
        })
        .await
    }

    pub(crate) async fn key_revoke(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let id = id.to_owned();
        self.write(move |c, _| {
            let now = to_us(OffsetDateTime::now_utc());
            c.prepare_cached(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![id, now])?;
            let sql = format!("SELECT {COLUMNS}, hash FROM api_keys WHERE id = ?1");
            match c.prepare(&sql)?.query_row([&id], row).optional()? {
                Some((k, _)) => decode(k).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    pub(crate) async fn key_touch(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |c, _| {
            c.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")?
                .execute(params![id, to_us(at)])?;
            Ok(())
        })
        .await
    }
}
