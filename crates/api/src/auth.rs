//! Who may call what: API keys with scopes.
//!
//! Keys come from two places. The `[server].api_keys` of the configuration are the
//! bootstrap keys and can do everything (`admin`). Keys issued by the hub
//! (`waybill keys create`, `POST /v1/keys`) look like `wbk_<id>_<secret>`; the store keeps
//! their SHA-256 only, with their scopes, expiry and revocation. Every `/v1` route but
//! ingest (each source authenticates its own way) and `/v1/openapi.json` needs a key
//! holding the route's scope ([`required`]): no or an unknown key → 401
//! `api.unauthorized`; a known key without the scope → 403 `api.forbidden`.
//!
//! Scopes: `read` (every GET), `read:pii` (read, with personal data unmasked), `operate`
//! (read, and replay, discard, pause, resume, test, re-process, workflow and task
//! actions), `events:write` (`POST /v1/events`), `ingest:<source>` (reserved for
//! sources that take hub keys), `admin` (everything: keys, subscriptions, audit).

use crate::{codes, AppState, Problem};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use waybill_store::keys::KeyRecord;

/// How long a looked-up key is trusted before the store is asked again: a revocation
/// reaches every instance within this.
const CACHE_FOR: Duration = Duration::from_secs(5);
/// How often a key's last-used time is written (at most).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// What a key may do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every GET route, personal data masked.
    Read,
    /// Read, with personal data in clear.
    ReadPii,
    /// Read, and the operator's actions.
    Operate,
    /// `POST /v1/events`.
    EventsWrite,
    /// Posting to one source with a hub key.
    Ingest(String),
    /// Everything.
    Admin,
}

impl Scope {
    /// Parses `read`, `read:pii`, `operate`, `events:write`, `ingest:<source>`, `admin`.
    pub fn parse(s: &str) -> Result<Scope, String> {
        Ok(match s {
            "read" => Scope::Read,
            "read:pii" => Scope::ReadPii,
            "operate" => Scope::Operate,
            "events:write" => Scope::EventsWrite,
            "admin" => Scope::Admin,
            _ => match s.strip_prefix("ingest:") {
                Some(src) if !src.is_empty() && src.len() <= 200 => Scope::Ingest(src.to_owned()),
                _ => {
                    return Err(format!(
                        "unknown scope `{s}` (read, read:pii, operate, events:write, ingest:<source>, admin)"
                    ))
                }
            },
        })
    }

    /// Whether holding `self` grants `need`.
    pub fn grants(&self, need: &Scope) -> bool {
        self == need
            || matches!(self, Scope::Admin)
            || (matches!(need, Scope::Read) && matches!(self, Scope::ReadPii | Scope::Operate))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Read => f.write_str("read"),
            Scope::ReadPii => f.write_str("read:pii"),
            Scope::Operate => f.write_str("operate"),
            Scope::EventsWrite => f.write_str("events:write"),
            Scope::Ingest(s) => write!(f, "ingest:{s}"),
            Scope::Admin => f.write_str("admin"),
        }
    }
}

/// Who is calling: put into the request's extensions by [`layer`].
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's id (`config` for a key of the configuration).
    pub key_id: String,
    /// The key's name, recorded as who acted.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// The tenant it is bound to, if any.
    pub tenant: Option<String>,
}

impl Caller {
    /// Whether it holds a scope granting `need`.
    pub fn may(&self, need: &Scope) -> bool {
        self.scopes.iter().any(|s| s.grants(need))
    }
}

/// The scope a route needs; `None` for the routes that take no hub key.
pub fn required(method: &Method, path: &str) -> Option<Scope> {
    if path.starts_with("/v1/ingest/") || path == "/v1/openapi.json" || !path.starts_with("/v1/") {
        return None;
    }
    let admin_paths = ["/v1/keys", "/v1/audit"];
    if admin_paths.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }) {
        return Some(Scope::Admin);
    }
    if *method == Method::GET {
        return Some(Scope::Read);
    }
    if path == "/v1/events" {
        return Some(Scope::EventsWrite);
    }
    if path.starts_with("/v1/subscriptions") {
        return Some(Scope::Admin);
    }
    let operate = [
        "/v1/dead-letters",
        "/v1/sinks/",
        "/v1/inbox/",
        "/v1/workflows/",
        "/v1/tasks/",
    ];
    if operate.iter().any(|p| path.starts_with(p)) {
        return Some(Scope::Operate);
    }
    // A route this table does not know needs everything.
    Some(Scope::Admin)
}

/// A key and its stored hash, or none, as the store answered at an instant.
type Looked = (Option<(KeyRecord, String)>, Instant);

/// Keys looked up recently, and when each was last recorded as used.
#[derive(Default)]
pub struct KeyCache {
    found: Mutex<HashMap<String, Looked>>,
    touched: Mutex<HashMap<String, Instant>>,
}

impl KeyCache {
    /// Forgets a key (after it was revoked here).
    pub fn forget(&self, id: &str) {
        if let Ok(mut m) = self.found.lock() {
            m.remove(id);
        }
    }
}

/// A new key: (id, the whole key to hand out once, its SHA-256 in hex).
pub fn new_key() -> (String, String, String) {
    let id = hex::encode(rand::random::<[u8; 6]>());
    let secret = hex::encode(rand::random::<[u8; 24]>());
    let key = format!("wbk_{id}_{secret}");
    let hash = hash_of(&key);
    (id, key, hash)
}

/// Lower-case hex SHA-256 of a key.
pub fn hash_of(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// The caller a request's bearer key names, or the 401 problem.
pub async fn authenticate(st: &AppState, h: &HeaderMap) -> Result<Caller, Problem> {
    let given =
        bearer(h).ok_or_else(|| Problem::new(codes::UNAUTHORIZED, "missing bearer API key"))?;
    if let Some(rest) = given.strip_prefix("wbk_") {
        let id = rest.split('_').next().unwrap_or_default();
        if id.is_empty() || id.len() > 64 {
            return Err(Problem::new(codes::UNAUTHORIZED, "unknown API key"));
        }
        let found = lookup(st, id).await?;
        let Some((rec, hash)) = found else {
            return Err(Problem::new(codes::UNAUTHORIZED, "unknown API key"));
        };
        if !bool::from(hash_of(given).as_bytes().ct_eq(hash.as_bytes())) {
            return Err(Problem::new(codes::UNAUTHORIZED, "unknown API key"));
        }
        let now = OffsetDateTime::now_utc();
        if !rec.live(now) {
            let why = if rec.revoked_at.is_some() {
                "revoked"
            } else {
                "expired"
            };
            return Err(Problem::new(
                codes::UNAUTHORIZED,
                format!("API key `{}` is {why}", rec.id),
            ));
        }
        touch(st, &rec.id, now);
        return Ok(Caller {
            scopes: rec
                .scopes
                .iter()
                .filter_map(|s| Scope::parse(s).ok())
                .collect(),
            key_id: rec.id,
            name: rec.name,
            tenant: rec.tenant,
        });
    }
    if st
        .api_keys
        .iter()
        .any(|k| bool::from(k.expose().as_bytes().ct_eq(given.as_bytes())))
    {
        return Ok(Caller {
            key_id: "config".into(),
            name: "config".into(),
            scopes: vec![Scope::Admin],
            tenant: None,
        });
    }
    Err(Problem::new(codes::UNAUTHORIZED, "unknown API key"))
}

async fn lookup(st: &AppState, id: &str) -> Result<Option<(KeyRecord, String)>, Problem> {
    if let Ok(m) = st.keys.found.lock() {
        if let Some((v, at)) = m.get(id) {
            if at.elapsed() < CACHE_FOR {
                return Ok(v.clone());
            }
        }
    }
    let v = st
        .hub
        .store
        .key_lookup(id)
        .await
        .map_err(|e| Problem::internal(&e))?;
    if let Ok(mut m) = st.keys.found.lock() {
        // Bounded: unknown ids are remembered too (a guessing client), so cap the map.
        if m.len() > 10_000 {
            m.clear();
        }
        m.insert(id.to_owned(), (v.clone(), Instant::now()));
    }
    Ok(v)
}

fn touch(st: &AppState, id: &str, now: OffsetDateTime) {
    let due = st.keys.touched.lock().is_ok_and(|mut m| {
        let due = m.get(id).is_none_or(|t| t.elapsed() >= TOUCH_EVERY);
        if due {
            m.insert(id.to_owned(), Instant::now());
        }
        due
    });
    if due {
        let store = st.hub.store.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = store.key_touch(&id, now).await {
                tracing::warn!(key = %id, error = %e, "cannot record when an API key was used");
            }
        });
    }
}

/// The middleware of every `/v1` route: authenticates the key, checks the route's scope,
/// and hands the [`Caller`] to the handler.
pub async fn layer(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    let Some(need) = required(req.method(), &path) else {
        return next.run(req).await;
    };
    let caller = match authenticate(&st, req.headers()).await {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    if !caller.may(&need) {
        return Problem::new(
            codes::FORBIDDEN,
            format!(
                "the API key `{}` does not hold scope `{need}`, which {} {path} needs",
                caller.key_id,
                req.method()
            ),
        )
        .into_response();
    }
    if let Some(t) = &caller.tenant {
        if !crate::tenant::allowed(req.method(), &path) {
            return Problem::new(
                codes::FORBIDDEN,
                format!(
                    "the API key `{}` is bound to tenant `{t}`; {} {path} spans every tenant",
                    caller.key_id,
                    req.method()
                ),
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn scopes_parse_and_grant() {
        for s in [
            "read",
            "read:pii",
            "operate",
            "events:write",
            "ingest:carrier",
            "admin",
        ] {
            assert_eq!(Scope::parse(s).unwrap().to_string(), s);
        }
        assert!(Scope::parse("ingest:").is_err());
        assert!(Scope::parse("root").is_err());
        assert!(Scope::Admin.grants(&Scope::Operate));
        assert!(Scope::Operate.grants(&Scope::Read));
        assert!(Scope::ReadPii.grants(&Scope::Read));
        assert!(!Scope::Read.grants(&Scope::ReadPii));
        assert!(!Scope::Read.grants(&Scope::Operate));
        assert!(!Scope::Operate.grants(&Scope::Admin));
        assert!(!Scope::EventsWrite.grants(&Scope::Read));
    }

    #[test]
    fn a_new_key_hashes_to_its_stored_hash_and_names_its_id() {
        let (id, key, hash) = new_key();
        assert!(key.starts_with(&format!("wbk_{id}_")));
        assert_eq!(hash_of(&key), hash);
        assert!(!hash.contains(&key[16..]));
    }
}
