//! Routes and handlers.

use crate::privacy::{shown, shown_inbox, Pii};
use crate::tenant::Tenant;
use crate::{codes, AppState, Problem};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waybill_engine::{IngestReply, Received};
use waybill_model::{Milestone, ShipmentKey};
use waybill_store::{
    ConflictQuery, DeadLetterQuery, DeadLetterRefusal, DeadLetterState, InboxQuery, ReplaySelector,
    Resolved, ShipmentQuery,
};

type AppResult = Result<Response, Problem>;

/// Every `/v1` route with its OpenAPI description: the router and the document come
/// from these lists (a route is served only through them, so none goes undocumented).
pub(crate) fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(ingest))
        .routes(routes!(ingest_token))
        .routes(routes!(post_events))
        .routes(routes!(list_shipments))
        .routes(routes!(get_shipment))
        .routes(routes!(get_order))
        .routes(routes!(list_conflicts))
        .routes(routes!(list_dead_letters))
        .routes(routes!(replay_bulk))
        .routes(routes!(replay_one))
        .routes(routes!(list_inbox))
        .merge(crate::manage::routes())
        .merge(crate::audit::routes())
        .merge(crate::keys::routes())
        .merge(crate::erasure::routes())
        .merge(crate::workflows::routes())
}

/// The whole HTTP interface: `/v1` (with `/v1/openapi.json`, its description), health,
/// metrics and the console at `/ui`.
pub fn router(state: Arc<AppState>) -> Router {
    let (api, doc) = api().split_for_parts();
    // Every route above needs a key with its scope (ingest excepted: sources
    // authenticate their own way); what is added below does not.
    let api = api.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::auth::layer,
    ));
    let doc = Arc::new(crate::openapi::document(doc));
    api.route(
        "/v1/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc.as_ref().clone()) }
        }),
    )
    .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
    .route("/readyz", get(readyz))
    .route("/metrics", get(metrics))
    .merge(crate::ui::routes())
    .fallback(|| async { Problem::new(codes::NOT_FOUND, "no such route") })
    .with_state(state)
}

/// A query string, or a `400 api.bad_request` problem saying what is wrong with it.
pub(crate) struct Q<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| Q(t))
            .map_err(|e| Problem::new(codes::BAD_REQUEST, e.body_text()))
    }
}

/// Path parameters, or a `400 api.bad_request` problem (an id that is not a number).
pub(crate) struct P<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| P(t))
            .map_err(|e| Problem::new(codes::BAD_REQUEST, e.body_text()))
    }
}

fn headers_of(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn read_body(req: Request, limit: usize) -> (Vec<(String, String)>, Vec<u8>, bool) {
    let headers = headers_of(req.headers());
    match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => (headers, b.to_vec(), false),
        // Over the limit (or the client vanished): nothing usable was read.
        Err(_) => (headers, Vec::new(), true),
    }
}

/// `{"status": …, "event_ids": […]}`, written straight to text (the hot path of ingest).
fn ids_reply(status: StatusCode, word: &str, ids: &[waybill_model::EventId]) -> Response {
    let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"status":"{word}","event_ids":{ids}}}"#),
    )
        .into_response()
}

fn reply(r: IngestReply) -> Response {
    match r {
        IngestReply::Accepted(ids) => ids_reply(StatusCode::ACCEPTED, "accepted", &ids),
        IngestReply::Duplicate(ids) => ids_reply(StatusCode::OK, "duplicate", &ids),
        IngestReply::Rejected {
            code,
            detail,
            inbox_id,
        } => {
            let mut p = Problem::new(code, detail);
            p.inbox_id = Some(inbox_id);
            p.into_response()
        }
    }
}

/// A partner's payload for source `source`, authenticated the source's way (signature,
/// token, basic auth) and mapped to canonical events. 202 only once the payload is durable.
#[utoipa::path(post, path = "/v1/ingest/{source}", tag = "ingest", security(()),
    params(("source" = String, Path, description = "A configured source")),
    request_body(content = String, description = "The partner's payload, as the partner sends it", content_type = "*/*"),
    responses(
        (status = 202, description = "accepted: durable; the events created", body = inline(IngestAccepted)),
        (status = 200, description = "a duplicate of a payload accepted before; its events", body = inline(IngestAccepted)),
        (status = 400, description = "`ingest.bad_json` and the mapping's codes (docs/errors.md): kept in the inbox", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`ingest.bad_signature`, `ingest.unauthorized`: kept in the inbox", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`ingest.unknown_source`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`ingest.too_large`", body = Problem, content_type = "application/problem+json"),
        crate::openapi::TooManyRequests,
        (status = 422, description = "`ingest.rejected`, `mapping.*`: kept in the inbox", body = Problem, content_type = "application/problem+json"),
        crate::openapi::Unavailable))]
async fn ingest(State(st): State<Arc<AppState>>, P(source): P<String>, req: Request) -> Response {
    ingest_with(st, source, None, req).await
}

/// `/v1/ingest/{source}/{token}`: for partners that can only put a secret in the URL.
#[utoipa::path(post, path = "/v1/ingest/{source}/{token}", tag = "ingest", security(()),
    params(("source" = String, Path, description = "A configured source"), ("token" = String, Path, description = "The source's URL token")),
    request_body(content = String, description = "The partner's payload", content_type = "*/*"),
    responses(
        (status = 202, description = "accepted", body = inline(IngestAccepted)),
        (status = 200, description = "duplicate", body = inline(IngestAccepted)),
        (status = 400, description = "`ingest.bad_json` and the mapping's codes", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`ingest.unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`ingest.unknown_source`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`ingest.too_large`", body = Problem, content_type = "application/problem+json"),
        crate::openapi::TooManyRequests,
        (status = 422, description = "`ingest.rejected`, `mapping.*`", body = Problem, content_type = "application/problem+json"),
        crate::openapi::Unavailable))]
async fn ingest_token(
    State(st): State<Arc<AppState>>,
    P((source, token)): P<(String, String)>,
    req: Request,
) -> Response {
    ingest_with(st, source, Some(token), req).await
}

/// Whether the request's bearer key is a live hub key holding `ingest:<source>` (or
/// `admin`): the sources configured with `auth = { type = "hub_keys" }` accept it.
async fn hub_key_scope(st: &AppState, source: &str, h: &HeaderMap) -> bool {
    let hub_key = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("wbk_"));
    if !hub_key {
        return false;
    }
    match crate::auth::authenticate(st, h).await {
        Ok(c) => c.may(&crate::auth::Scope::Ingest(source.to_owned())),
        Err(_) => false,
    }
}

async fn ingest_with(
    st: Arc<AppState>,
    source: String,
    url_token: Option<String>,
    req: Request,
) -> Response {
    let started = Instant::now();
    // Limits first: a throttled request is neither read nor stored, only counted.
    let _admitted = match st.hub.admit(&source) {
        Ok(permit) => permit,
        Err(t) => return crate::problem::throttled(&t),
    };
    let limit = st.hub.max_body(&source).unwrap_or(st.max_body_bytes);
    let scoped = hub_key_scope(&st, &source, req.headers()).await;
    let (mut headers, body, too_large) = read_body(req, limit).await;
    // Only the API says which source a hub key may post to: never the client.
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(waybill_engine::auth::HUB_KEY_HEADER));
    if scoped {
        headers.push((waybill_engine::auth::HUB_KEY_HEADER.into(), source.clone()));
    }
    let received = Received {
        source,
        headers,
        body,
        too_large,
        url_token,
        received_at: OffsetDateTime::now_utc(),
    };
    let resp = match st.hub.ingest(received).await {
        Ok((r, None)) => reply(r),
        // The source answers with its own document (an X12 997); the outcome is in the
        // status code and the `x-waybill-outcome` header.
        Ok((r, Some(ack))) => {
            let (status, outcome) = match &r {
                IngestReply::Accepted(_) => (202, "accepted".to_string()),
                IngestReply::Duplicate(_) => (200, "duplicate".to_string()),
                IngestReply::Rejected { code, .. } => (
                    codes::http_status(code.class()).unwrap_or(422),
                    code.as_str().to_owned(),
                ),
            };
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                [
                    (header::CONTENT_TYPE, ack.content_type.to_string()),
                    (
                        header::HeaderName::from_static("x-waybill-outcome"),
                        outcome,
                    ),
                ],
                ack.body,
            )
                .into_response()
        }
        Err(e) => Problem::internal(&e).into_response(),
    };
    st.hub.metrics.ack_latency.observe(started.elapsed());
    resp
}

/// Canonical events (event drafts or CloudEvents in structured mode, one or an array),
/// for systems that speak Waybill's own format.
#[utoipa::path(post, path = "/v1/events", tag = "ingest",
    request_body(content = Object, description = "An event draft or CloudEvent, or an array of them", content_type = "application/json"),
    responses(
        (status = 202, description = "accepted", body = inline(IngestAccepted)),
        (status = 200, description = "duplicate", body = inline(IngestAccepted)),
        (status = 400, description = "`ingest.bad_json`, `mapping.bad_output`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`ingest.too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`ingest.rejected`", body = Problem, content_type = "application/problem+json"),
        crate::openapi::Unauthorized, crate::openapi::Unavailable))]
async fn post_events(State(st): State<Arc<AppState>>, tenant: Tenant, req: Request) -> AppResult {
    let started = Instant::now();
    let (headers, body, too_large) = read_body(req, st.max_body_bytes).await;
    let r = st
        .hub
        .ingest_canonical_in(
            Received {
                source: "api".into(),
                headers,
                body,
                too_large,
                url_token: None,
                received_at: OffsetDateTime::now_utc(),
            },
            tenant.0.as_deref(),
        )
        .await
        .map_err(|e| Problem::internal(&e))?;
    st.hub.metrics.ack_latency.observe(started.elapsed());
    Ok(reply(r))
}

/// A key or alias in a path: 1 to 400 bytes.
fn check_key(key: &str) -> Result<(), Problem> {
    if key.trim().is_empty() || key.len() > 400 {
        return Err(Problem::new(
            codes::BAD_KEY,
            "a key or alias is 1 to 400 bytes",
        ));
    }
    Ok(())
}

/// A shipment by its key or any alias (tracking number, picking, PRO, BOL, SSCC, …):
/// state, identifiers, packages, settled facts, conflicts and the cross-system timeline.
#[utoipa::path(get, path = "/v1/shipments/{key}", tag = "shipments",
    params(("key" = String, Path, description = "Shipment key or any alias")),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::ShipmentNotFound, crate::openapi::Unavailable))]
async fn get_shipment(
    State(st): State<Arc<AppState>>,
    pii: Pii,
    tenant: Tenant,
    P(key): P<String>,
) -> AppResult {
    let canonical = resolve_one(&st, &key, &tenant).await?;
    match st
        .hub
        .store
        .shipment(&ShipmentKey(canonical))
        .await
        .map_err(|e| Problem::internal(&e))?
    {
        Some(v) => Ok(Json(shown(&st, pii, &v)).into_response()),
        None => Err(Problem::new(
            codes::SHIPMENT_NOT_FOUND,
            format!("no shipment `{key}`"),
        )),
    }
}

/// The one shipment of the caller's tenant a key or alias names, or the problem saying
/// why not (another tenant's shipment is not found).
pub(crate) async fn resolve_one(
    st: &AppState,
    key: &str,
    tenant: &Tenant,
) -> Result<String, Problem> {
    check_key(key)?;
    let not_found = || Problem::new(codes::SHIPMENT_NOT_FOUND, format!("no shipment `{key}`"));
    let resolved = st
        .hub
        .store
        .resolve_key(key)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let resolved = match resolved {
        Resolved::One(k) if !tenant.sees(st, &k).await? => Resolved::NotFound,
        Resolved::Several(keys) if tenant.0.is_some() => {
            let mut mine = Vec::new();
            for k in keys {
                if tenant.sees(st, &k).await? {
                    mine.push(k);
                }
            }
            match mine.len() {
                0 => Resolved::NotFound,
                1 => Resolved::One(mine.remove(0)),
                _ => Resolved::Several(mine),
            }
        }
        r => r,
    };
    let canonical = match resolved {
        Resolved::One(k) => k,
        Resolved::NotFound => return Err(not_found()),
        Resolved::Several(keys) => {
            let mut p = Problem::new(
                codes::AMBIGUOUS,
                format!(
                    "`{key}` names {} shipments; ask for one of them by key",
                    keys.len()
                ),
            );
            p.shipments = Some(Box::new(keys));
            return Err(p);
        }
    };
    Ok(canonical)
}

/// An order by its key or alias: its shipments and the merged timeline.
#[utoipa::path(get, path = "/v1/orders/{key}", tag = "shipments",
    params(("key" = String, Path, description = "Order key or alias")),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::OrderNotFound, crate::openapi::Unavailable))]
async fn get_order(
    State(st): State<Arc<AppState>>,
    pii: Pii,
    tenant: Tenant,
    P(key): P<String>,
) -> AppResult {
    check_key(&key)?;
    let not_found = || Problem::new(codes::ORDER_NOT_FOUND, format!("no order `{key}`"));
    let Some(mut v) = st
        .hub
        .store
        .order(&key)
        .await
        .map_err(|e| Problem::internal(&e))?
    else {
        return Err(not_found());
    };
    if tenant.0.is_some() {
        // Only the tenant's shipments of the order, and their events; none: no order.
        let mut mine = Vec::new();
        for s in std::mem::take(&mut v.shipments) {
            if tenant.sees(&st, s.state.key.as_str()).await? {
                mine.push(s);
            }
        }
        if mine.is_empty() {
            return Err(not_found());
        }
        let lanes: std::collections::HashSet<&str> = mine
            .iter()
            .flat_map(|s| s.lanes.iter().map(String::as_str))
            .collect();
        v.timeline
            .retain(|e| lanes.contains(e.event.subject.as_str()));
        v.shipments = mine;
    }
    Ok(Json(shown(&st, pii, &v)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListConflicts {
    /// `identity` or `ownership`.
    kind: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

/// Identity and ownership conflicts, oldest first, paged by `after` (`next_after`).
#[utoipa::path(get, path = "/v1/conflicts", tag = "shipments", params(ListConflicts),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::BadQuery, crate::openapi::Unavailable))]
async fn list_conflicts(
    State(st): State<Arc<AppState>>,
    pii: Pii,
    tenant: Tenant,
    Q(q): Q<ListConflicts>,
) -> AppResult {
    if let Some(k) = q.kind.as_deref() {
        if k != "identity" && k != "ownership" {
            return Err(Problem::new(
                codes::BAD_REF,
                format!("unknown conflict kind `{k}` (identity or ownership)"),
            ));
        }
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = st
        .hub
        .store
        .conflicts(ConflictQuery {
            kind: q.kind,
            after: q.after,
            limit,
            tenant: tenant.0,
        })
        .await
        .map_err(|e| Problem::internal(&e))?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let rows = shown(&st, pii, &rows);
    Ok(Json(json!({"conflicts": rows, "next_after": next})).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListShipments {
    /// A milestone (`in_transit`, `delivered`, …).
    state: Option<String>,
    /// The last key of the previous page (`next_after`).
    after: Option<String>,
    /// `kind:value`, e.g. `tracking:1Z999AA10123456784`.
    #[serde(rename = "ref")]
    #[param(rename = "ref")]
    reference: Option<String>,
    /// 1 to 1000 (default 100).
    limit: Option<usize>,
}

/// Shipments by key, paged by `after` (`next_after`), filtered by milestone or reference.
#[utoipa::path(get, path = "/v1/shipments", tag = "shipments", params(ListShipments),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::BadQuery, crate::openapi::Unavailable))]
async fn list_shipments(
    State(st): State<Arc<AppState>>,
    tenant: Tenant,
    Q(q): Q<ListShipments>,
) -> AppResult {
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<Milestone>()
                .map_err(|m| Problem::new(codes::BAD_STATE, m))?,
        ),
    };
    let reference = match q.reference.as_deref() {
        None => None,
        Some(r) => match r.split_once(':') {
            Some((k, v)) if !k.is_empty() && !v.trim().is_empty() => {
                Some((k.to_owned(), v.to_owned()))
            }
            _ => {
                return Err(Problem::new(
                    codes::BAD_REF,
                    format!(
                        "`ref` must be kind:value (e.g. tracking:1Z999AA10123456784), got `{r}`"
                    ),
                ))
            }
        },
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let by_reference = reference.is_some();
    let mut rows = st
        .hub
        .store
        .shipments(ShipmentQuery {
            state,
            after: q.after,
            reference,
            limit,
            tenant: tenant.0.clone(),
        })
        .await
        .map_err(|e| Problem::internal(&e))?;
    if by_reference && tenant.0.is_some() {
        // A reference names few shipments: those of other tenants are left out here.
        let mut mine = Vec::with_capacity(rows.len());
        for r in rows {
            if tenant.sees(&st, r.state.key.as_str()).await? {
                mine.push(r);
            }
        }
        rows = mine;
    }
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.state.key.0.clone()))
        .flatten();
    Ok(Json(json!({"shipments": rows, "next_after": next})).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListDeadLetters {
    /// Only this sink's.
    sink: Option<String>,
    /// Also those replayed (older form of `state=all`).
    include_replayed: Option<bool>,
    /// `open` (default), `replayed`, `discarded` or `all`.
    #[param(value_type = Option<String>)]
    state: Option<DeadLetterState>,
    /// Only ids below this one (the previous page's `next_before`).
    before: Option<i64>,
    /// 1 to 1000 (default 100).
    limit: Option<usize>,
}

/// Dead letters, newest first.
#[utoipa::path(get, path = "/v1/dead-letters", tag = "dead letters", params(ListDeadLetters),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::BadQuery, crate::openapi::Unavailable))]
async fn list_dead_letters(
    State(st): State<Arc<AppState>>,
    tenant: Tenant,
    Q(q): Q<ListDeadLetters>,
) -> AppResult {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = st
        .hub
        .store
        .dead_letters(DeadLetterQuery {
            sink: q.sink,
            include_replayed: q.include_replayed.unwrap_or(false),
            state: q.state.unwrap_or_default(),
            before: q.before,
            limit,
            tenant: tenant.0,
        })
        .await
        .map_err(|e| Problem::internal(&e))?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({"dead_letters": rows, "next_before": next})).into_response())
}

/// Replays one dead letter: a new delivery at the end of its lane.
#[utoipa::path(post, path = "/v1/dead-letters/{id}/replay", tag = "dead letters", params(("id" = i64, Path)),
    responses((status = 202, body = Object), crate::openapi::Unauthorized, crate::openapi::DeadLetterNotFound, crate::openapi::DeadLetterClosed, crate::openapi::BadQuery, crate::openapi::Unavailable))]
async fn replay_one(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    tenant: Tenant,
    P(id): P<i64>,
) -> AppResult {
    dead_letter_of_tenant(&st, &tenant, id).await?;
    match st
        .hub
        .store
        .replay_dead_letter(id)
        .await
        .map_err(|e| Problem::internal(&e))?
    {
        Ok(outbox_id) => {
            au.record(
                &st,
                "dead_letter.replay",
                format!("dead_letter:{id}"),
                json!({"outbox_id": outbox_id}),
            )
            .await;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({"replayed": [{"id": id, "outbox_id": outbox_id}]})),
            )
                .into_response())
        }
        Err(why) => Err(refused(id, why)),
    }
}

/// Refuses (as not found) a dead letter of a shipment the caller's tenant does not see.
pub(crate) async fn dead_letter_of_tenant(
    st: &AppState,
    tenant: &Tenant,
    id: i64,
) -> Result<(), Problem> {
    if tenant.0.is_none() {
        return Ok(());
    }
    let d = st
        .hub
        .store
        .dead_letter(id)
        .await
        .map_err(|e| Problem::internal(&e))?;
    match d {
        Some(d) if tenant.sees(st, d.dead_letter.shipment.as_str()).await? => Ok(()),
        _ => Err(refused(id, DeadLetterRefusal::NotFound)),
    }
}

/// Why dead letter `id` cannot be replayed or discarded, as a problem.
pub(crate) fn refused(id: i64, why: DeadLetterRefusal) -> Problem {
    match why {
        DeadLetterRefusal::NotFound => {
            Problem::new(codes::DEAD_LETTER_NOT_FOUND, format!("no dead letter {id}"))
        }
        DeadLetterRefusal::Replayed => Problem::new(
            codes::DEAD_LETTER_CLOSED,
            format!("dead letter {id} was replayed already"),
        ),
        DeadLetterRefusal::Discarded => Problem::new(
            codes::DEAD_LETTER_CLOSED,
            format!("dead letter {id} was discarded; it is kept, never replayed"),
        ),
    }
}

/// Which dead letters to replay: `ids`, or `all` (of one `sink`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BulkReplay {
    ids: Option<Vec<i64>>,
    sink: Option<String>,
    all: Option<bool>,
}

/// Replays the chosen dead letters; the selection must be explicit.
#[utoipa::path(post, path = "/v1/dead-letters/replay", tag = "dead letters", request_body = BulkReplay,
    responses((status = 202, body = Object), crate::openapi::Unauthorized, crate::openapi::BadBody, crate::openapi::Unavailable))]
async fn replay_bulk(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    tenant: Tenant,
    req: Request,
) -> AppResult {
    let (_, body, too_large) = read_body(req, 1 << 20).await;
    if too_large {
        return Err(Problem::new(codes::TOO_LARGE, "body exceeds 1 MiB"));
    }
    // The selection must be explicit: an empty or cut-off body never means "everything".
    let q: BulkReplay =
        serde_json::from_slice(&body).map_err(|e| Problem::new(codes::BAD_JSON, e.to_string()))?;
    let sel = match (q.ids, q.sink, q.all) {
        (Some(ids), None, None | Some(false)) => {
            // A tenant's key replays only its own: the others' are left out, as unknown.
            let mut mine = Vec::with_capacity(ids.len());
            for id in ids {
                if dead_letter_of_tenant(&st, &tenant, id).await.is_ok() {
                    mine.push(id);
                }
            }
            ReplaySelector::Ids(mine)
        }
        (None, sink, Some(true)) => ReplaySelector::All {
            sink,
            tenant: tenant.0.clone(),
        },
        _ => {
            return Err(Problem::new(
                codes::BAD_REQUEST,
                r#"give {"ids": [..]} or {"all": true} (optionally with "sink")"#,
            ))
        }
    };
    let asked = match &sel {
        ReplaySelector::Ids(ids) => json!({"ids": ids}),
        ReplaySelector::All { sink, tenant } => {
            json!({"all": true, "sink": sink, "tenant": tenant})
        }
    };
    let done = st
        .hub
        .store
        .replay_dead_letters(sel)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let list: Vec<_> = done
        .iter()
        .map(|(id, o)| json!({"id": id, "outbox_id": o}))
        .collect();
    au.record(
        &st,
        "dead_letter.replay_bulk",
        "dead_letters",
        json!({"selection": asked, "replayed": list}),
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(json!({"replayed": list}))).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListInbox {
    /// `accepted` or `rejected`.
    status: Option<String>,
    /// Only this source's.
    source: Option<String>,
    /// Leave out rejected payloads re-processed since.
    open_only: Option<bool>,
    /// Only ids below this one (the previous page's `next_before`).
    before: Option<i64>,
    /// 1 to 500 (default 50).
    limit: Option<usize>,
}

/// Payloads as received, newest first.
#[utoipa::path(get, path = "/v1/inbox", tag = "inbox", params(ListInbox),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::BadQuery, crate::openapi::Unavailable))]
async fn list_inbox(
    State(st): State<Arc<AppState>>,
    pii: Pii,
    tenant: Tenant,
    Q(q): Q<ListInbox>,
) -> AppResult {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = st
        .hub
        .store
        .inbox(InboxQuery {
            status: q.status,
            source: q.source,
            open_only: q.open_only.unwrap_or(false),
            before: q.before,
            limit,
            sources: tenant.sources(&st),
        })
        .await
        .map_err(|e| Problem::internal(&e))?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let rows = rows
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or_default())
        .collect();
    let rows = shown_inbox(&st, &pii, rows);
    Ok(Json(json!({"inbox": rows, "next_before": next})).into_response())
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    // While writes fail for lack of space, try one (at most once a second): space may
    // have returned with no write to notice it.
    if st.hub.store.storage_full() {
        if let Err(e) = st.hub.store.probe_write().await {
            tracing::debug!(error = %e, "probe write failed");
        }
    }
    if st.hub.store.storage_full() {
        return Problem::new(
            codes::NOT_READY,
            "not ready for writes: the store's disk is full; reads are served, writes answer 507 until space returns",
        )
        .into_response();
    }
    match st.hub.store.ping().await {
        Ok(()) => {
            let held = st.leases.now();
            let leases: serde_json::Value = if held.all {
                json!("all")
            } else {
                json!(held.names)
            };
            Json(json!({
                "status": "ready",
                "store": st.hub.store.backend(),
                "instance": st.instance,
                "instances": held.instances,
                "leases": leases,
            }))
            .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            Problem::new(codes::NOT_READY, "store is not answering").into_response()
        }
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let depths = st.hub.store.depths().await.unwrap_or_default();
    let mut text = st.hub.metrics.render(&depths);
    // Which instance this is and what it holds (several instances on one store).
    let held = st.leases.now();
    let leases = if held.all { 0 } else { held.names.len() };
    let instance = st.instance.replace(['\\', '"', '\n'], "_");
    text.push_str(&format!(
        "# HELP waybill_instance_info This instance (label `instance`) and the store backend.\n\
         # TYPE waybill_instance_info gauge\n\
         waybill_instance_info{{instance=\"{instance}\",store=\"{}\"}} 1\n\
         # HELP waybill_leases_held Leases this instance holds (0 when the store is single-process and it holds everything).\n\
         # TYPE waybill_leases_held gauge\n\
         waybill_leases_held {leases}\n\
         # HELP waybill_instances_alive Instances alive on the store at the last lease claim.\n\
         # TYPE waybill_instances_alive gauge\n\
         waybill_instances_alive {}\n\
         # HELP waybill_store_full 1 while the store's writes fail for lack of disk space (they answer 507).\n\
         # TYPE waybill_store_full gauge\n\
         waybill_store_full {}\n",
        st.hub.store.backend(),
        held.instances,
        u8::from(st.hub.store.storage_full()),
    ));
    if st.workflows.is_some() {
        if let Ok(c) = st.hub.store.wf_counts().await {
            text.push_str(&crate::workflows::metrics_text(&c));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// What ingest answers when it stored (or had stored) the payload.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct IngestAccepted {
    /// `accepted` or `duplicate`.
    status: String,
    /// The payload's events.
    event_ids: Vec<String>,
}
