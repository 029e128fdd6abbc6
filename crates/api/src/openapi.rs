//! The OpenAPI 3.1 document of `/v1`, generated from the handlers' own annotations
//! (utoipa): the router and the document are built from the same `routes!` lists, so a
//! route cannot be served without being described. Served at `GET /v1/openapi.json`.
//!
//! Every error answer is an RFC 9457 problem (`application/problem+json`, the `Problem`
//! schema) whose `code` is one of the stable codes of docs/errors.md; each response names
//! the codes it can carry.

use std::collections::BTreeMap;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The document's fixed parts; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Waybill API",
        description = "Ingest, shipments, delivery operations, workflows and the workbench of a Waybill hub. Every `/v1` route except ingest takes `Authorization: Bearer <API key>`; ingest authenticates each source its own way (signatures, tokens). Errors are RFC 9457 problems with a stable `code` (docs/errors.md).",
        license(name = "Apache-2.0")
    ),
    components(schemas(crate::Problem)),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags(
        (name = "ingest", description = "Partner payloads and canonical events in"),
        (name = "shipments", description = "Shipments, orders, timelines, conflicts and deliveries"),
        (name = "dead letters", description = "Deliveries that failed for good: inspect, replay, discard"),
        (name = "inbox", description = "Payloads as received, rejected ones kept for inspection and re-processing"),
        (name = "sinks", description = "Where events go: health, pause/resume, test delivery"),
        (name = "sources", description = "Where payloads come from: health"),
        (name = "subscriptions", description = "Which events go to which sink, changeable at run time"),
        (name = "operate", description = "Overview and live stream for consoles"),
        (name = "workflows", description = "Orchestrated processes and the workbench of tasks"),
        (name = "keys", description = "API keys and their scopes (admin)"),
        (name = "audit", description = "The hash-chained trail of operator actions (admin)"),
    )
)]
pub(crate) struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `[server].api_keys`"))
                    .build(),
            ),
        );
    }
}

/// Every operation that takes parameters or a body may answer 400 (a path id out of
/// range, a name with control characters, a query value out of its domain, a body that is
/// not JSON): said once here for all of them, so none is left undocumented.
struct BadRequests;

impl Modify for BadRequests {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let takes_input = op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || op.request_body.is_some();
                if takes_input && !op.responses.responses.contains_key("400") {
                    let (k, v) = problem(
                        400,
                        "`api.bad_request`, `api.bad_name`, `api.bad_key`, `api.bad_json`: a parameter or body that cannot be one",
                    );
                    op.responses.responses.insert(k, v);
                }
            }
        }
    }
}

/// Each operation's security says the scope it needs (from [`crate::auth::required`], the
/// table the auth layer enforces), with its 401 and 403 answers; ingest and the document
/// itself need no hub key.
struct Scopes;

impl Modify for Scopes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                (axum::http::Method::GET, &mut item.get),
                (axum::http::Method::POST, &mut item.post),
                (axum::http::Method::PUT, &mut item.put),
                (axum::http::Method::DELETE, &mut item.delete),
                (axum::http::Method::PATCH, &mut item.patch),
            ];
            for (method, op) in ops {
                let Some(op) = op.as_mut() else { continue };
                match crate::auth::required(&method, path) {
                    None => op.security = Some(vec![SecurityRequirement::default()]),
                    Some(scope) => {
                        op.security = Some(vec![SecurityRequirement::new(
                            "bearer",
                            [scope.to_string()],
                        )]);
                        for (status, desc) in [
                            (401, "`api.unauthorized`: missing or unknown API key (or revoked, expired)"),
                            (403, "`api.forbidden`: the key does not hold the scope this route needs"),
                        ] {
                            if !op.responses.responses.contains_key(&status.to_string()) {
                                let (k, v) = problem(status, desc);
                                op.responses.responses.insert(k, v);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One problem answer: `status`, described by the codes it carries.
pub(crate) fn problem(status: u16, description: &str) -> (String, RefOr<Response>) {
    (
        status.to_string(),
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        ),
    )
}

macro_rules! problems {
    ($($(#[$doc:meta])* $name:ident => $status:literal, $desc:literal;)*) => {$(
        $(#[$doc])*
        pub(crate) struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([problem($status, $desc)])
            }
        }
    )*};
}

problems! {
    /// 401 on every keyed route.
    Unauthorized => 401, "`api.unauthorized`: missing or unknown API key";
    /// 403 when the key lacks the route's scope.
    Forbidden => 403, "`api.forbidden`: the key does not hold the scope this route needs";
    /// A key id not stored.
    KeyNotFound => 404, "`api.key_not_found`: no such key";
    /// A key request that cannot be one.
    BadKeyRequest => 422, "`api.bad_key_request`: unknown scope, no scope, bad name or expiry";
    /// 429 from ingest's limits (with `Retry-After`).
    TooManyRequests => 429, "`ingest.rate_limited`: the source is over its rate limit; `ingest.overloaded`: the hub is handling its most ingest requests at once. Nothing was stored; retry after the `Retry-After` seconds";
    /// A sink name that runs nowhere here.
    SinkNotFound => 404, "`api.sink_not_found`: no such sink; `api.bad_name`: a name that cannot be one (400)";
    /// A subscription name not stored.
    SubscriptionNotFound => 404, "`api.subscription_not_found`: no such subscription";
    /// A subscription body that cannot be stored.
    BadSubscription => 422, "`api.bad_subscription`: not a subscription (unknown sink, event type or field)";
    /// A dead-letter id not stored.
    DeadLetterNotFound => 404, "`api.dead_letter_not_found`: no such dead letter";
    /// A dead letter replayed or discarded already.
    DeadLetterClosed => 409, "`api.dead_letter_closed`: replayed or discarded already";
    /// An inbox id not stored.
    InboxNotFound => 404, "`api.inbox_not_found`: no such inbox record";
    /// A payload that cannot be re-processed.
    NotReprocessable => 409, "`api.not_reprocessable`: accepted, re-processed before, never authenticated or its source is gone";
    /// A key or alias naming no shipment, or several.
    ShipmentNotFound => 404, "`api.shipment_not_found`: no shipment by that key or alias; `api.ambiguous_alias` (409) lists the shipments it names; `api.bad_key` (400)";
    /// An order key naming none.
    OrderNotFound => 404, "`api.order_not_found`: no such order; `api.bad_key` (400)";
    /// A query parameter out of its domain.
    BadQuery => 400, "`api.bad_ref`, `api.bad_state`, `api.bad_request`: a query parameter out of its domain";
    /// A request body that is not what the route takes.
    BadBody => 400, "`api.bad_json`, `api.bad_request`: the body is not what the route takes";
    /// The workflows are not configured.
    WorkflowsOff => 404, "`api.workflow_not_found`, `api.task_not_found`, `api.workflows_off`: no such workflow or task, or workflows are not configured";
    /// A task that is not open (claimed by another, resolved).
    TaskNotOpen => 409, "`api.task_not_open`: the task is claimed by someone else or closed; `task` shows it";
}

/// 503 when the store cannot answer, 507 when it refused a write for lack of space.
pub(crate) struct Unavailable;

impl utoipa::IntoResponses for Unavailable {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            problem(
                503,
                "`server.unavailable`: the store cannot answer now; retry later",
            ),
            problem(
                507,
                "`server.storage_full`: the store's disk is full; nothing was stored; retry later",
            ),
        ])
    }
}

/// The document, with `/v1/openapi.json` itself described.
pub(crate) fn document(mut doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    // The paths arrive with the routers, after the derive's modifiers ran.
    BadRequests.modify(&mut doc);
    Scopes.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    serde_json::to_value(&doc).unwrap_or(serde_json::Value::Null)
}
