//! `POST /v1/erasure` (scope `admin`): right to erasure. Drops the raw payloads of a
//! shipment's events (or of every shipment a reference names) and masks the personal
//! values of their data and proof-of-delivery facts; event ids, types, times, sequence
//! numbers and the shipment's state stay. Recorded in the audit trail (`erasure`).

use crate::{codes, AppState, Problem};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waybill_store::retention::Erase;

type AppResult = Result<Response, Problem>;

/// The erasure route.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(erase))
}

/// Whose personal data to erase: exactly one of `shipment` and `ref`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErasureRequest {
    /// A shipment's key (or the key of any of its lanes).
    #[serde(default)]
    shipment: Option<String>,
    /// A reference `kind:value` (`tracking:1Z…`): every shipment it names.
    #[serde(default, rename = "ref")]
    reference: Option<String>,
}

/// Erases the personal data of a shipment, or of every shipment a reference names:
/// answers what changed (lanes, events masked, values masked, payloads dropped and their
/// bytes, facts masked).
#[utoipa::path(post, path = "/v1/erasure", tag = "shipments", request_body = ErasureRequest,
    responses((status = 200, description = "what was erased", body = Object), crate::openapi::BadBody, crate::openapi::Unauthorized, crate::openapi::Forbidden, crate::openapi::ShipmentNotFound, crate::openapi::Unavailable))]
async fn erase(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    body: axum::body::Bytes,
) -> AppResult {
    let r: ErasureRequest = serde_json::from_slice(&body)
        .map_err(|e| Problem::new(codes::BAD_JSON, format!("not an erasure request: {e}")))?;
    let (what, target) = match (r.shipment, r.reference) {
        (Some(s), None) if !s.trim().is_empty() => {
            let t = format!("shipment:{s}");
            (Erase::Shipment(s), t)
        }
        (None, Some(x)) => match x.split_once(':') {
            Some((kind, value)) if !kind.is_empty() && !value.is_empty() => (
                Erase::Reference {
                    kind: kind.to_owned(),
                    value: value.to_owned(),
                },
                format!("ref:{x}"),
            ),
            _ => {
                return Err(Problem::new(
                    codes::BAD_REQUEST,
                    "`ref` is kind:value, e.g. tracking:1Z999AA10123456784",
                ))
            }
        },
        _ => {
            return Err(Problem::new(
                codes::BAD_REQUEST,
                "give exactly one of `shipment` and `ref`",
            ))
        }
    };
    let report = st
        .hub
        .store
        .erase(what, st.hub.privacy().clone())
        .await
        .map_err(|e| Problem::internal(&e))?
        .ok_or_else(|| {
            Problem::new(
                codes::SHIPMENT_NOT_FOUND,
                format!("no shipment matches {target}"),
            )
        })?;
    tracing::info!(
        lanes = report.shipments.len(),
        events = report.events,
        payloads = report.payloads,
        "personal data erased"
    );
    let detail = serde_json::to_value(&report).unwrap_or_default();
    au.record(&st, "erasure", target, detail.clone()).await;
    Ok(Json(detail).into_response())
}
