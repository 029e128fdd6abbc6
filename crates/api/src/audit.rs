//! The audit trail at the door: who acted and from where ([`Audit`], an extractor every
//! operator handler takes), the append after the action succeeded ([`Audit::record`]),
//! and `GET /v1/audit` (admin).
//!
//! Place in the flow: beside the management routes. The store keeps the hash chain
//! (`waybill_store::audit`); `waybill audit verify` checks it.
//! Never does: refuse or undo an action because its audit record could not be appended
//! (that is logged at error level, target `waybill::audit`, and counted by nobody else);
//! record requests that changed nothing (refused, not found, not authorized).

use crate::routes::Q;
use crate::{codes, AppState, Problem};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waybill_store::audit::{AuditEntry, AuditQuery, AUDIT_PAGE};

/// The audit routes, documented.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// Who is acting and from where, for the audit trail: the actor as the management
/// routes name it (the key's name, `/<operator>` when `X-Waybill-Operator` names a
/// person), and the peer's address (with a `forwarded_for` the client claims, kept
/// apart: it is not checked).
pub(crate) struct Audit {
    /// Who.
    pub actor: String,
    /// `peer=<ip>` (or `peer=unknown`), then ` forwarded_for=<…>` when given.
    pub origin: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Audit {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Ok(Audit {
            actor: actor_of(parts),
            origin: origin_of(parts),
        })
    }
}

/// The name of the caller's key, followed by `/<operator>` when the request names a
/// person in `X-Waybill-Operator` (up to 100 characters; a shared tool's key).
fn actor_of(parts: &Parts) -> String {
    let key = parts
        .extensions
        .get::<crate::auth::Caller>()
        .map_or_else(|| "anonymous".to_owned(), |c| c.name.clone());
    let person = parts
        .headers
        .get("x-waybill-operator")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>()
        });
    match person {
        Some(p) => format!("{key}/{p}"),
        None => key,
    }
}

/// A header value fit for the record: printable, no spaces, at most 100 characters.
fn clean(v: &str) -> String {
    v.chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .take(100)
        .collect()
}

fn origin_of(parts: &Parts) -> String {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(clean)
        .filter(|v| !v.is_empty());
    match forwarded {
        Some(f) => format!("peer={peer} forwarded_for={f}"),
        None => format!("peer={peer}"),
    }
}

impl Audit {
    /// Appends `action` on `target` with `detail` to the audit trail, after the action
    /// succeeded; the origin gets this instance's id. A failure to append is logged, not
    /// answered: the action is done.
    pub(crate) async fn record(
        &self,
        st: &AppState,
        action: &str,
        target: impl Into<String>,
        detail: Value,
    ) {
        let entry = AuditEntry {
            actor: self.actor.clone(),
            action: action.to_owned(),
            target: target.into(),
            detail,
            origin: format!("{} instance={}", self.origin, st.instance),
        };
        if let Err(e) = st.hub.store.audit_append(entry.clone()).await {
            tracing::error!(target: "waybill::audit", error = %e, action = %entry.action,
                target_name = %entry.target, actor = %entry.actor,
                "cannot append to the audit trail; the action itself was done");
        }
    }
}

/// Which audit records to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListAudit {
    /// Only records after this `seq` (the `next_after` of the previous page).
    after: Option<i64>,
    /// At most this many (1 to 1000, default 100).
    limit: Option<u32>,
    /// Only this action (`sink.pause`, `subscription.put`, …).
    action: Option<String>,
    /// Only this target (`sink:ops`, `dead_letter:42`, …).
    target: Option<String>,
}

/// An audit record.
#[derive(ToSchema)]
#[allow(dead_code)]
struct AuditRecordDoc {
    /// Position in the chain, dense from 1.
    seq: i64,
    #[schema(value_type = String, format = DateTime)]
    at: String,
    /// The key's name, `/<operator>` when the request named one.
    actor: String,
    action: String,
    target: String,
    #[schema(value_type = Object)]
    detail: Value,
    /// `peer=<ip> [forwarded_for=<…>] instance=<id>`.
    origin: String,
    /// Hash of the record before (64 zeros for the first).
    prev_hash: String,
    /// SHA-256 of this record (docs/security.md).
    hash: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct AuditPage {
    records: Vec<AuditRecordDoc>,
    /// Give as `after` for the next page; null on the last.
    next_after: Option<i64>,
}

/// The audit trail: operator actions in the order they were done, with who, what, when
/// and from where, and each record's place in the hash chain (`waybill audit verify`
/// checks the chain).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(ListAudit),
    responses((status = 200, body = inline(AuditPage)), crate::openapi::Unauthorized, crate::openapi::Forbidden, crate::openapi::BadQuery, crate::openapi::Unavailable))]
async fn list_audit(
    State(st): State<Arc<AppState>>,
    Q(q): Q<ListAudit>,
) -> Result<Response, Problem> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > AUDIT_PAGE {
        return Err(Problem::new(
            codes::BAD_REQUEST,
            format!("limit is 1 to {AUDIT_PAGE}"),
        ));
    }
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(Problem::new(
            codes::BAD_REQUEST,
            "after is a seq, 0 or more",
        ));
    }
    let rows = st
        .hub
        .store
        .audit(AuditQuery {
            after_seq: after,
            limit,
            action: q.action,
            target: q.target,
        })
        .await
        .map_err(|e| Problem::internal(&e))?;
    let next_after = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    Ok(Json(json!({"records": rows, "next_after": next_after})).into_response())
}
