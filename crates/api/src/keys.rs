//! `GET /v1/keys`, `POST /v1/keys`, `DELETE /v1/keys/{id}` (scope `admin`): the hub's
//! API keys. A created key is answered once, in clear; the store keeps its SHA-256.

use crate::auth::{new_key, Caller, Scope};
use crate::routes::P;
use crate::{codes, AppState, Problem};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waybill_store::keys::NewKey;

type AppResult = Result<Response, Problem>;

/// The key routes.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// Every key the hub issued (never the keys themselves nor their hashes).
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::Forbidden, crate::openapi::Unavailable))]
async fn list_keys(State(st): State<Arc<AppState>>) -> AppResult {
    let keys = st
        .hub
        .store
        .keys()
        .await
        .map_err(|e| Problem::internal(&e))?;
    Ok(Json(json!({ "keys": keys })).into_response())
}

/// What a new key is for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyRequest {
    /// A name for people (1 to 100 characters).
    name: String,
    /// `read`, `read:pii`, `operate`, `events:write`, `ingest:<source>`, `admin`.
    scopes: Vec<String>,
    /// Bind the key to this tenant.
    #[serde(default)]
    tenant: Option<String>,
    /// RFC 3339 time it stops working.
    #[serde(default)]
    expires_at: Option<String>,
}

/// Checks a key request: the scopes (at least one, each known), name, expiry.
pub fn check_request(
    name: &str,
    scopes: &[String],
    expires_at: Option<&str>,
) -> Result<(Vec<String>, Option<OffsetDateTime>), String> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err("a key's name is 1 to 100 characters, without control characters".into());
    }
    if scopes.is_empty() {
        return Err("a key needs at least one scope".into());
    }
    let mut parsed: Vec<Scope> = scopes
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<Result<_, _>>()?;
    parsed.sort();
    parsed.dedup();
    let expires = match expires_at {
        None => None,
        Some(t) => {
            let t = OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("expires_at `{t}` is not an RFC 3339 time: {e}"))?;
            if t <= OffsetDateTime::now_utc() {
                return Err(format!("expires_at `{t}` is in the past"));
            }
            Some(t)
        }
    };
    Ok((parsed.iter().map(ToString::to_string).collect(), expires))
}

/// Creates a key; the answer holds the key in clear, once.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = KeyRequest,
    responses((status = 201, description = "the key record and `key`, the key itself (shown once)", body = Object),
        crate::openapi::Unauthorized, crate::openapi::Forbidden, crate::openapi::BadKeyRequest))]
async fn create_key(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    au: crate::audit::Audit,
    body: axum::body::Bytes,
) -> AppResult {
    let r: KeyRequest = serde_json::from_slice(&body)
        .map_err(|e| Problem::new(codes::BAD_KEY_REQUEST, format!("not a key request: {e}")))?;
    let (scopes, expires_at) = check_request(&r.name, &r.scopes, r.expires_at.as_deref())
        .map_err(|e| Problem::new(codes::BAD_KEY_REQUEST, e))?;
    let (id, key, hash) = new_key();
    let rec = st
        .hub
        .store
        .key_create(NewKey {
            id,
            name: r.name.trim().to_owned(),
            hash,
            scopes,
            tenant: r.tenant,
            expires_at,
            created_by: caller.name.clone(),
        })
        .await
        .map_err(|e| Problem::internal(&e))?
        .ok_or_else(|| Problem::internal(&"a new key's random id is taken"))?;
    tracing::info!(key = %rec.id, name = %rec.name, by = %caller.name, "API key created");
    // Never the key nor its hash.
    au.record(
        &st,
        "key.create",
        format!("key:{}", rec.id),
        json!({"name": rec.name, "scopes": rec.scopes, "tenant": rec.tenant,
            "expires_at": rec.expires_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())}),
    )
    .await;
    let mut v = serde_json::to_value(&rec).unwrap_or_default();
    v["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// Revokes a key at once on this instance, within seconds on the others; it is kept.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, description = "the key, revoked", body = Object), crate::openapi::Unauthorized, crate::openapi::Forbidden, crate::openapi::KeyNotFound))]
async fn revoke_key(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    au: crate::audit::Audit,
    P(id): P<String>,
) -> AppResult {
    let rec = st
        .hub
        .store
        .key_revoke(&id)
        .await
        .map_err(|e| Problem::internal(&e))?
        .ok_or_else(|| Problem::new(codes::KEY_NOT_FOUND, format!("no API key `{id}`")))?;
    st.keys.forget(&id);
    tracing::info!(key = %id, by = %caller.name, "API key revoked");
    au.record(
        &st,
        "key.revoke",
        format!("key:{id}"),
        json!({"name": rec.name}),
    )
    .await;
    Ok(Json(rec).into_response())
}
