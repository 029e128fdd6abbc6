//! API keys issued by the hub: stored by their SHA-256 only (the key itself is shown once,
//! when it is created, and never stored or logged), with their scopes, an optional
//! tenant, an expiry, and when each was revoked and last used.

use serde::Serialize;
use time::OffsetDateTime;

/// A key to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key's public id (its prefix, shown in listings and logs).
    pub id: String,
    /// A name for people (`erp-integration`, `ana`).
    pub name: String,
    /// Lower-case hex SHA-256 of the whole key.
    pub hash: String,
    /// Scopes (`read`, `read:pii`, `operate`, `admin`, `events:write`, `ingest:<source>`).
    pub scopes: Vec<String>,
    /// The tenant (company) the key is bound to, if any.
    pub tenant: Option<String>,
    /// When it stops working.
    pub expires_at: Option<OffsetDateTime>,
    /// Who created it.
    pub created_by: String,
}

/// A stored key, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    /// Public id (the key's prefix).
    pub id: String,
    /// Name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Tenant, if bound to one.
    pub tenant: Option<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who created it.
    pub created_by: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// When it was last used (to within a minute).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl KeyRecord {
    /// Whether it is usable at `now` (not revoked, not expired).
    pub fn live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// SQL of the key tables (SQLite and PostgreSQL read the same columns).
pub(crate) const COLUMNS: &str =
    "id, name, scopes, tenant, created_at, created_by, expires_at, revoked_at, last_used_at";

/// Decodes a key row's columns, in [`COLUMNS`] order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    id: String,
    name: String,
    scopes: &str,
    tenant: Option<String>,
    created_at: i64,
    created_by: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
) -> Result<KeyRecord, crate::StoreError> {
    use crate::codec::from_us;
    let scopes: Vec<String> = serde_json::from_str(scopes)
        .map_err(|e| crate::StoreError::Corrupt(format!("key {id}: scopes: {e}")))?;
    Ok(KeyRecord {
        id,
        name,
        scopes,
        tenant,
        created_at: from_us(created_at),
        created_by,
        expires_at: expires_at.map(from_us),
        revoked_at: revoked_at.map(from_us),
        last_used_at: last_used_at.map(from_us),
    })
}
