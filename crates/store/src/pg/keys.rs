//! API keys on PostgreSQL (see `crate::keys`).

use super::PgStore;
use crate::codec::{list_json, to_us};
use crate::keys::{record, KeyRecord, NewKey};
use crate::StoreError;
use time::OffsetDateTime;

const SELECT_ONE: &str = "SELECT id, name, scopes, tenant, created_at, created_by, expires_at, revoked_at, last_used_at, hash
     FROM api_keys WHERE id = $1";

fn decode(r: &postgres::Row) -> Result<(KeyRecord, String), StoreError> {
    let k = record(
        r.get(0),
        r.get(1),
        r.get::<_, &str>(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
    )?;
    Ok((k, r.get(9)))
}

impl PgStore {
    pub(crate) async fn key_create(&self, k: NewKey) -> Result<Option<KeyRecord>, StoreError> {
        self.write(move |c, _| {
            let now = to_us(OffsetDateTime::now_utc());
            let n = c.exec(
                "INSERT INTO api_keys (id, name, hash, scopes, tenant, created_at, created_by, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                &[
                    &k.id,
                    &k.name,
                    &k.hash,
                    &list_json(&k.scopes),
                    &k.tenant,
                    &now,
                    &k.created_by,
                    &k.expires_at.map(to_us),
                ],
            )?;
            if n == 0 {
                return Ok(None);
            }
            match c.query(SELECT_ONE, &[&k.id])?.first() {
                Some(r) => decode(r).map(|(k, _)| Some(k)),
                None => Ok(None),
            }
        })
        .await
    }

    pub(crate) async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|c| {
            c.query(
                "SELECT id, name, scopes, tenant, created_at, created_by, expires_at, revoked_at, last_used_at, hash
                 FROM api_keys ORDER BY created_at, id LIMIT 10000",
                &[],
            )?
            .iter()
            .map(|r| decode(r).map(|(k, _)| k))
            .collect()
        })
        .await
    }

    pub(crate) async fn key_lookup(
        &self,
        id: &str,
    ) -> Result<Option<(KeyRecord, String)>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| match c.query(SELECT_ONE, &[&id])?.first() {
            Some(r) => decode(r).map(Some),
            None => Ok(None),
        })
        .await
    }

    pub(crate) async fn key_revoke(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let id = id.to_owned();
        self.write(move |c, _| {
            let now = to_us(OffsetDateTime::now_utc());
            c.exec(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &now],
            )?;
            match c.query(SELECT_ONE, &[&id])?.first() {
                Some(r) => decode(r).map(|(k, _)| Some(k)),
                None => Ok(None),
            }
        })
        .await
    }

    pub(crate) async fn key_touch(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |c, _| {
            c.exec(
                "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
                &[&id, &to_us(at)],
            )?;
            Ok(())
        })
        .await
    }
}
