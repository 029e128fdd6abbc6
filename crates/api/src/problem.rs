//! RFC 9457 problem details (`application/problem+json`).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use waybill_model::Code;

/// A problem answer (RFC 9457): a stable `code` plus a human `detail`; never internals.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:waybill:problem:<code>`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Short summary (the HTTP reason phrase).
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for the client.
    pub detail: String,
    /// Stable code (documented in docs/errors.md).
    pub code: &'static str,
    /// Inbox record keeping the rejected payload, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox_id: Option<i64>,
    /// The shipments an ambiguous identifier names (`api.ambiguous_alias`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub shipments: Option<Box<Vec<String>>>,
    /// The task as it stands (`api.task_not_open`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub task: Option<Box<serde_json::Value>>,
}

impl Problem {
    /// The problem for a code: its class gives the status (a class that is never answered
    /// over HTTP, which would be a bug, is answered 422).
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        let status = crate::codes::http_status(code.class()).unwrap_or(422);
        let title = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        Problem {
            ty: format!("urn:waybill:problem:{code}"),
            title,
            status,
            detail: detail.into(),
            code: code.as_str(),
            inbox_id: None,
            shipments: None,
            task: None,
        }
    }

    /// The store failed: log the cause, answer 503 without it — or 507
    /// (`server.storage_full`) when the store refused a write for lack of disk space.
    pub fn internal<E: std::fmt::Display + 'static>(e: &E) -> Self {
        let any: &dyn std::any::Any = e;
        if any
            .downcast_ref::<waybill_store::StoreError>()
            .is_some_and(waybill_store::StoreError::is_storage_full)
        {
            tracing::warn!(error = %e, "write refused: the store's disk is full");
            return Problem::new(
                crate::codes::STORAGE_FULL,
                "the hub's storage is full: nothing was stored; retry later",
            );
        }
        tracing::error!(error = %e, "store error while answering a request");
        Problem::new(
            crate::codes::UNAVAILABLE,
            "the hub cannot process requests right now; retry later",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

/// The 429 answer to a request ingest's limits refused: its problem with the
/// `Retry-After` seconds (RFC 9110) to wait.
pub(crate) fn throttled(t: &waybill_engine::limit::Throttled) -> Response {
    let mut resp = Problem::new(t.code, t.detail.clone()).into_response();
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(t.retry_after),
    );
    resp
}
