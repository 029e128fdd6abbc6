//! The management API: overview and live stream, sinks (health, pause/resume, test
//! delivery), sources, subscriptions at run time, a dead letter's detail and discard, a
//! rejected payload's detail and re-process, an event's deliveries.
//!
//! Place in the flow: the operator's door (the console at `/ui` uses nothing else). Every
//! route takes the same bearer keys as the rest of `/v1`.
//! Never does: change anything without saying so in the store (a paused sink, a
//! subscription and a discard survive a restart and are seen by every instance).

use crate::privacy::{shown, shown_inbox, Pii};
use crate::routes::refused;
use crate::routes::P;
use crate::tenant::Tenant;
use crate::{codes, AppState, Problem};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waybill_engine::operate::ReprocessError;
use waybill_model::{EventType, ShipmentKey};
use waybill_store::Subscription;

type AppResult = Result<Response, Problem>;

/// The management routes, documented.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(overview))
        .routes(routes!(stream))
        .routes(routes!(list_sinks))
        .routes(routes!(get_sink))
        .routes(routes!(pause_sink))
        .routes(routes!(resume_sink))
        .routes(routes!(test_sink))
        .routes(routes!(list_sources))
        .routes(routes!(list_subscriptions))
        .routes(routes!(
            get_subscription,
            put_subscription,
            delete_subscription
        ))
        .routes(routes!(get_dead_letter))
        .routes(routes!(discard_dead_letter))
        .routes(routes!(get_inbox_record))
        .routes(routes!(reprocess))
        .routes(routes!(event_deliveries))
}

/// A name in a path: 1 to 200 bytes, no control characters.
fn check_name(what: &str, name: &str) -> Result<(), Problem> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(Problem::new(
            codes::BAD_NAME,
            format!("a {what} name is 1 to 200 characters, without control characters"),
        ));
    }
    Ok(())
}

fn rfc3339(t: Option<OffsetDateTime>) -> Value {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map_or(Value::Null, Value::String)
}

/// The system at a glance (the console's overview).
#[derive(Serialize, ToSchema)]
pub(crate) struct Overview {
    /// When this was read.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    /// Payloads accepted per second over the last minute.
    ingest_rate: f64,
    /// Events delivered per second over the last minute.
    delivery_rate: f64,
    /// Pending deliveries, all sinks.
    outbox_depth: i64,
    /// Open dead letters, all sinks.
    dead_letters: i64,
    /// Age in seconds of the oldest pending delivery (0 when none waits).
    lag_seconds: f64,
    /// Each sink's circuit and pause.
    sinks: Vec<SinkBrief>,
    /// Ten-second samples of the last thirty minutes, oldest first.
    #[schema(value_type = Vec<Object>)]
    series: Vec<waybill_engine::control::Sample>,
}

/// A sink's circuit and pause.
#[derive(Serialize, ToSchema)]
pub(crate) struct SinkBrief {
    name: String,
    circuit: &'static str,
    paused: bool,
}

fn circuit_word(v: Option<u8>) -> &'static str {
    match v {
        Some(1) => "open",
        Some(2) => "half_open",
        _ => "closed",
    }
}

async fn read_overview(st: &AppState) -> Result<Overview, Problem> {
    let store = &st.hub.store;
    // Per-sink figures only: `depths()` also counts shipments per state, a scan of the
    // whole table (hundreds of ms at a million shipments), which /metrics pays, not this.
    let stats = store
        .sink_stats()
        .await
        .map_err(|e| Problem::internal(&e))?;
    let now = OffsetDateTime::now_utc();
    let lag_seconds = stats
        .iter()
        .filter_map(|s| s.oldest_pending_at)
        .map(|t| (now - t).as_seconds_f64().max(0.0))
        .fold(0.0, f64::max);
    let series = st.hub.metrics.controls.series();
    // The last minute: six samples of ten seconds.
    let last: Vec<_> = series.iter().rev().take(6).collect();
    let secs = (last.len() as f64 * waybill_engine::control::SAMPLE_SECONDS as f64).max(1.0);
    let ingest_rate = last.iter().map(|s| s.ingested).sum::<u64>() as f64 / secs;
    let delivery_rate = last.iter().map(|s| s.delivered).sum::<u64>() as f64 / secs;
    let circuits = st
        .hub
        .metrics
        .circuit
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let controls = &st.hub.metrics.controls;
    let sinks = controls
        .sinks()
        .into_keys()
        .map(|name| SinkBrief {
            circuit: circuit_word(circuits.get(&name).copied()),
            paused: controls.is_paused(&name),
            name,
        })
        .collect();
    Ok(Overview {
        at: now,
        ingest_rate,
        delivery_rate,
        outbox_depth: stats.iter().map(|s| s.pending).sum(),
        dead_letters: stats.iter().map(|s| s.dead_open).sum(),
        lag_seconds,
        sinks,
        series,
    })
}

/// Rates, depths, lag and circuits, with the last thirty minutes of activity.
#[utoipa::path(get, path = "/v1/overview", tag = "operate",
    responses((status = 200, body = Overview), crate::openapi::Unauthorized, crate::openapi::Unavailable))]
async fn overview(State(st): State<Arc<AppState>>) -> AppResult {
    Ok(Json(read_overview(&st).await?).into_response())
}

/// Server-sent events: `overview` every two seconds (the console's live updates).
#[utoipa::path(get, path = "/v1/stream", tag = "operate",
    responses((status = 200, description = "`text/event-stream`: `event: overview` with the overview as data, every 2 s", content_type = "text/event-stream", body = String),
        crate::openapi::Unauthorized))]
async fn stream(State(st): State<Arc<AppState>>) -> AppResult {
    let events = futures_stream(st);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn futures_stream(
    st: Arc<AppState>,
) -> impl futures::Stream<Item = Result<Event, Infallible>> + Send {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(2);
    tokio::spawn(async move {
        loop {
            let ev = match read_overview(&st).await {
                Ok(o) => Event::default()
                    .event("overview")
                    .json_data(&o)
                    .unwrap_or_else(|_| Event::default().comment("unserialisable")),
                Err(p) => Event::default()
                    .event("problem")
                    .json_data(&p)
                    .unwrap_or_else(|_| Event::default().comment("unavailable")),
            };
            if tx.send(Ok(ev)).await.is_err() {
                return; // the client went away
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A sink's health and controls.
#[derive(Serialize, ToSchema)]
pub(crate) struct SinkHealth {
    name: String,
    /// Connector type (`http_webhook`, `nats`, `odoo`; `internal` for the workflows).
    kind: String,
    paused: bool,
    /// Who paused or resumed it last.
    changed_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    changed_at: Value,
    /// `closed`, `open` or `half_open`.
    circuit: &'static str,
    /// Deliveries waiting.
    pending: i64,
    #[schema(value_type = Option<String>, format = DateTime)]
    oldest_pending_at: Value,
    /// Age of the oldest waiting delivery, seconds.
    lag_seconds: f64,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_delivered_at: Value,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_failure_at: Value,
    last_error: Option<String>,
    /// Open dead letters.
    dead_open: i64,
    /// Events delivered in the last five minutes (this instance).
    delivered_5m: u64,
    /// Failed attempts in the last five minutes (this instance).
    failed_5m: u64,
    /// failed / (delivered + failed) over five minutes; 0 when idle.
    error_rate_5m: f64,
}

async fn sink_health(st: &AppState, only: Option<&str>) -> Result<Vec<SinkHealth>, Problem> {
    let store = &st.hub.store;
    let stats = store
        .sink_stats()
        .await
        .map_err(|e| Problem::internal(&e))?;
    let controls = store
        .sink_controls()
        .await
        .map_err(|e| Problem::internal(&e))?;
    let circuits = st
        .hub
        .metrics
        .circuit
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let now = OffsetDateTime::now_utc();
    let live = st.hub.metrics.controls.sinks();
    Ok(live
        .into_iter()
        .filter(|(name, _)| only.is_none_or(|o| o == name))
        .map(|(name, l)| {
            let stat = stats.iter().find(|s| s.sink == name);
            let ctl = controls.iter().find(|c| c.sink == name);
            let (delivered_5m, failed_5m) = l.recent(now);
            let oldest = stat.and_then(|s| s.oldest_pending_at);
            let last_delivered = match (stat.and_then(|s| s.last_delivered_at), l.last_success_at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            SinkHealth {
                kind: l.kind.clone(),
                paused: st.hub.metrics.controls.is_paused(&name),
                changed_by: ctl.map(|c| c.changed_by.clone()),
                changed_at: rfc3339(ctl.map(|c| c.changed_at)),
                circuit: circuit_word(circuits.get(&name).copied()),
                pending: stat.map_or(0, |s| s.pending),
                oldest_pending_at: rfc3339(oldest),
                lag_seconds: oldest.map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0)),
                last_delivered_at: rfc3339(last_delivered),
                last_failure_at: rfc3339(l.last_failure_at),
                last_error: l.last_error.clone(),
                dead_open: stat.map_or(0, |s| s.dead_open),
                delivered_5m,
                failed_5m,
                error_rate_5m: if delivered_5m + failed_5m == 0 {
                    0.0
                } else {
                    failed_5m as f64 / (delivered_5m + failed_5m) as f64
                },
                name,
            }
        })
        .collect())
}

/// Every sink this instance runs, with its health.
#[utoipa::path(get, path = "/v1/sinks", tag = "sinks",
    responses((status = 200, body = inline(SinksPage)), crate::openapi::Unauthorized, crate::openapi::Unavailable))]
async fn list_sinks(State(st): State<Arc<AppState>>) -> AppResult {
    Ok(Json(json!({"sinks": sink_health(&st, None).await?})).into_response())
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct SinksPage {
    sinks: Vec<SinkHealth>,
}

async fn one_sink(st: &AppState, name: &str) -> Result<SinkHealth, Problem> {
    check_name("sink", name)?;
    sink_health(st, Some(name))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Problem::new(codes::SINK_NOT_FOUND, format!("no sink `{name}`")))
}

/// One sink's health.
#[utoipa::path(get, path = "/v1/sinks/{name}", tag = "sinks", params(("name" = String, Path)),
    responses((status = 200, body = SinkHealth), crate::openapi::Unauthorized, crate::openapi::SinkNotFound))]
async fn get_sink(State(st): State<Arc<AppState>>, P(name): P<String>) -> AppResult {
    Ok(Json(one_sink(&st, &name).await?).into_response())
}

async fn set_paused(
    st: &AppState,
    au: &crate::audit::Audit,
    name: &str,
    paused: bool,
) -> AppResult {
    one_sink(st, name).await?;
    st.hub
        .store
        .set_sink_paused(name, paused, &au.actor)
        .await
        .map_err(|e| Problem::internal(&e))?;
    st.hub.metrics.controls.set_paused(name, paused);
    tracing::info!(sink = name, paused, by = %au.actor, "sink paused or resumed by an operator");
    let action = if paused { "sink.pause" } else { "sink.resume" };
    au.record(st, action, format!("sink:{name}"), json!({}))
        .await;
    Ok(Json(one_sink(st, name).await?).into_response())
}

/// Pauses a sink: nothing new is sent to it (deliveries in flight finish); events keep
/// arriving in its outbox and go out in order after resume. Kept across restarts.
#[utoipa::path(post, path = "/v1/sinks/{name}/pause", tag = "sinks", params(("name" = String, Path)),
    responses((status = 200, body = SinkHealth), crate::openapi::Unauthorized, crate::openapi::SinkNotFound))]
async fn pause_sink(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    P(name): P<String>,
) -> AppResult {
    set_paused(&st, &au, &name, true).await
}

/// Resumes a paused sink.
#[utoipa::path(post, path = "/v1/sinks/{name}/resume", tag = "sinks", params(("name" = String, Path)),
    responses((status = 200, body = SinkHealth), crate::openapi::Unauthorized, crate::openapi::SinkNotFound))]
async fn resume_sink(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    P(name): P<String>,
) -> AppResult {
    set_paused(&st, &au, &name, false).await
}

/// Sends one test event (`type` `io.waybill.test`) to the sink now, outside the outbox:
/// nothing is stored, retried or dead-lettered. Answers what the sink said.
#[utoipa::path(post, path = "/v1/sinks/{name}/test", tag = "sinks", params(("name" = String, Path)),
    responses((status = 200, body = inline(TestDeliveryDoc)), crate::openapi::Unauthorized, crate::openapi::SinkNotFound))]
async fn test_sink(State(st): State<Arc<AppState>>, P(name): P<String>) -> AppResult {
    check_name("sink", &name)?;
    match st.hub.test_delivery(&name).await {
        Some(r) => Ok(Json(r).into_response()),
        None => Err(Problem::new(
            codes::SINK_NOT_FOUND,
            format!("no sink `{name}`"),
        )),
    }
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct TestDeliveryDoc {
    ok: bool,
    duration_ms: f64,
    detail: String,
    code: Option<String>,
    event_id: String,
}

/// A source's health.
#[derive(Serialize, ToSchema)]
pub(crate) struct SourceHealth {
    name: String,
    kind: String,
    accepted_total: u64,
    duplicate_total: u64,
    rejected_total: u64,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_accepted_at: Value,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_rejected_at: Value,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct SourcesPage {
    sources: Vec<SourceHealth>,
}

/// Every configured source, with what this instance received from it since it started.
#[utoipa::path(get, path = "/v1/sources", tag = "sources",
    responses((status = 200, body = inline(SourcesPage)), crate::openapi::Unauthorized))]
async fn list_sources(State(st): State<Arc<AppState>>) -> AppResult {
    let m = &st.hub.metrics;
    let rows: Vec<SourceHealth> = m
        .controls
        .sources()
        .into_iter()
        .map(|(name, l)| {
            let of = |f: &dyn Fn(&str) -> bool| {
                m.ingests.sum(|k| {
                    k.first().is_some_and(|s| *s == name) && k.get(1).is_some_and(|o| f(o))
                })
            };
            SourceHealth {
                kind: if l.kind.is_empty() {
                    "api".into()
                } else {
                    l.kind.clone()
                },
                accepted_total: of(&|o| o == "accepted"),
                duplicate_total: of(&|o| o == "duplicate"),
                rejected_total: of(&|o| o != "accepted" && o != "duplicate"),
                last_accepted_at: rfc3339(l.last_accepted_at),
                last_rejected_at: rfc3339(l.last_rejected_at),
                name,
            }
        })
        .collect();
    Ok(Json(json!({"sources": rows})).into_response())
}

/// A subscription as the API takes it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriptionBody {
    /// The sink that receives the events.
    sink: String,
    /// Event types: exact (`shipment.delivered`), a prefix (`shipment.*`) or `*`; empty: all.
    #[serde(default)]
    types: Vec<String>,
    /// Source names; empty: all.
    #[serde(default)]
    sources: Vec<String>,
    /// Whether its consumer gets the personal values of `confidential` events in clear
    /// (`true`) or masked (`false`); absent or null: as its sink (`[privacy]
    /// personal_data_sinks`).
    #[serde(default)]
    personal_data: Option<bool>,
}

/// A subscription as stored.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct SubscriptionDoc {
    name: String,
    sink: String,
    types: Vec<String>,
    sources: Vec<String>,
    /// Personal data in clear (`true`) or masked (`false`) for its consumer; null: as its
    /// sink (`[privacy] personal_data_sinks`).
    personal_data: Option<bool>,
    /// `config` (from the TOML) or `api` (created or changed at run time).
    origin: String,
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct SubscriptionsPage {
    subscriptions: Vec<SubscriptionDoc>,
}

/// Every subscription, the TOML ones and those made at run time.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "subscriptions",
    responses((status = 200, body = inline(SubscriptionsPage)), crate::openapi::Unauthorized))]
async fn list_subscriptions(State(st): State<Arc<AppState>>) -> AppResult {
    let subs = st
        .hub
        .store
        .subscriptions()
        .await
        .map_err(|e| Problem::internal(&e))?;
    Ok(Json(json!({"subscriptions": subs})).into_response())
}

/// One subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{name}", tag = "subscriptions", params(("name" = String, Path)),
    responses((status = 200, body = SubscriptionDoc), crate::openapi::Unauthorized, crate::openapi::SubscriptionNotFound))]
async fn get_subscription(State(st): State<Arc<AppState>>, P(name): P<String>) -> AppResult {
    check_name("subscription", &name)?;
    let subs = st
        .hub
        .store
        .subscriptions()
        .await
        .map_err(|e| Problem::internal(&e))?;
    subs.into_iter()
        .find(|s| s.name == name)
        .map(|s| Json(s).into_response())
        .ok_or_else(|| {
            Problem::new(
                codes::SUBSCRIPTION_NOT_FOUND,
                format!("no subscription `{name}`"),
            )
        })
}

fn valid_type(t: &str) -> bool {
    if t == "*" {
        return true;
    }
    match t.strip_suffix(".*") {
        Some(prefix) => EventType::ALL.iter().any(|e| {
            e.as_str()
                .strip_prefix(prefix)
                .is_some_and(|r| r.starts_with('.'))
        }),
        None => t.parse::<EventType>().is_ok(),
    }
}

/// Creates or replaces a subscription. Events stored from now on are routed by it, and
/// its `personal_data` holds for every delivery made from now on (those already queued
/// too); the change is kept in the store (a TOML subscription changed here stays changed).
#[utoipa::path(put, path = "/v1/subscriptions/{name}", tag = "subscriptions", params(("name" = String, Path)),
    request_body = SubscriptionBody,
    responses((status = 201, description = "created", body = SubscriptionDoc), (status = 200, description = "replaced", body = SubscriptionDoc),
        crate::openapi::Unauthorized, crate::openapi::BadSubscription))]
async fn put_subscription(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    P(name): P<String>,
    body: axum::body::Bytes,
) -> AppResult {
    check_name("subscription", &name)?;
    let b: SubscriptionBody = serde_json::from_slice(&body)
        .map_err(|e| Problem::new(codes::BAD_SUBSCRIPTION, format!("not a subscription: {e}")))?;
    if !st.hub.metrics.controls.sinks().contains_key(&b.sink)
        || b.sink == waybill_engine::workflow::sink::SINK
    {
        return Err(Problem::new(
            codes::BAD_SUBSCRIPTION,
            format!("no sink `{}` runs here", b.sink),
        ));
    }
    if let Some(t) = b.types.iter().find(|t| !valid_type(t)) {
        return Err(Problem::new(
            codes::BAD_SUBSCRIPTION,
            format!("`{t}` is not an event type, a prefix such as `shipment.*`, nor `*`"),
        ));
    }
    if let Some(s) = b
        .sources
        .iter()
        .find(|s| s.is_empty() || s.len() > 200 || s.chars().any(char::is_control))
    {
        return Err(Problem::new(
            codes::BAD_SUBSCRIPTION,
            format!("`{s}` is not a source name"),
        ));
    }
    let written = Subscription {
        name: name.clone(),
        sink: b.sink,
        types: b.types,
        sources: b.sources,
        personal_data: b.personal_data,
    };
    let created = st
        .hub
        .store
        .put_subscription(written.clone())
        .await
        .map_err(|e| Problem::internal(&e))?;
    tracing::info!(subscription = %name, by = %au.actor, created, "subscription changed by an operator");
    au.record(
        &st,
        "subscription.put",
        format!("subscription:{name}"),
        json!({"sink": written.sink, "types": written.types, "sources": written.sources,
            "personal_data": written.personal_data, "created": created}),
    )
    .await;
    let subs = st
        .hub
        .store
        .subscriptions()
        .await
        .map_err(|e| Problem::internal(&e))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    match subs.into_iter().find(|s| s.name == name) {
        Some(s) => Ok((status, Json(s)).into_response()),
        // Deleted by someone else between the write and this read: what was written.
        None => Ok((
            status,
            Json(
                json!({"name": name, "sink": written.sink, "types": written.types,
                "sources": written.sources, "personal_data": written.personal_data, "origin": "api",
                "updated_at": rfc3339(Some(OffsetDateTime::now_utc()))}),
            ),
        )
            .into_response()),
    }
}

/// Deletes a subscription: events stored from now on are not routed by it (deliveries
/// already in its outbox go on).
#[utoipa::path(delete, path = "/v1/subscriptions/{name}", tag = "subscriptions", params(("name" = String, Path)),
    responses((status = 204, description = "deleted"), crate::openapi::Unauthorized, crate::openapi::SubscriptionNotFound))]
async fn delete_subscription(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    P(name): P<String>,
) -> AppResult {
    check_name("subscription", &name)?;
    let gone = st
        .hub
        .store
        .delete_subscription(&name)
        .await
        .map_err(|e| Problem::internal(&e))?;
    if !gone {
        return Err(Problem::new(
            codes::SUBSCRIPTION_NOT_FOUND,
            format!("no subscription `{name}`"),
        ));
    }
    tracing::info!(subscription = %name, by = %au.actor, "subscription deleted by an operator");
    au.record(
        &st,
        "subscription.delete",
        format!("subscription:{name}"),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A dead letter with its failed attempts, their answers and the event.
#[utoipa::path(get, path = "/v1/dead-letters/{id}", tag = "dead letters", params(("id" = i64, Path)),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::DeadLetterNotFound))]
async fn get_dead_letter(
    State(st): State<Arc<AppState>>,
    pii: Pii,
    tenant: Tenant,
    P(id): P<i64>,
) -> AppResult {
    let missing = || Problem::new(codes::DEAD_LETTER_NOT_FOUND, format!("no dead letter {id}"));
    let d = found(st.hub.store.dead_letter(id).await, missing)?;
    if !tenant.sees(&st, &d.dead_letter.shipment).await? {
        return Err(missing());
    }
    Ok(Json(shown(&st, pii, &d)).into_response())
}

/// A stored record, or `missing` when there is none.
fn found<T>(
    r: Result<Option<T>, waybill_store::StoreError>,
    missing: impl FnOnce() -> Problem,
) -> Result<T, Problem> {
    r.map_err(|e| Problem::internal(&e))?.ok_or_else(missing)
}

/// Discards a dead letter: it is kept (for audit) but not replayed and not counted.
#[utoipa::path(post, path = "/v1/dead-letters/{id}/discard", tag = "dead letters", params(("id" = i64, Path)),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::DeadLetterNotFound, crate::openapi::DeadLetterClosed))]
async fn discard_dead_letter(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    pii: Pii,
    tenant: Tenant,
    P(id): P<i64>,
) -> AppResult {
    crate::routes::dead_letter_of_tenant(&st, &tenant, id).await?;
    match st
        .hub
        .store
        .discard_dead_letter(id, &au.actor)
        .await
        .map_err(|e| Problem::internal(&e))?
    {
        Ok(d) => {
            tracing::info!(dead_letter = id, by = %au.actor, "dead letter discarded by an operator");
            au.record(
                &st,
                "dead_letter.discard",
                format!("dead_letter:{id}"),
                json!({}),
            )
            .await;
            Ok(Json(shown(&st, pii, &d)).into_response())
        }
        Err(why) => Err(refused(id, why)),
    }
}

/// A payload kept in the inbox: headers (credentials never stored) and body.
#[utoipa::path(get, path = "/v1/inbox/{id}", tag = "inbox", params(("id" = i64, Path)),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::InboxNotFound))]
async fn get_inbox_record(
    State(st): State<Arc<AppState>>,
    pii: Pii,
    tenant: Tenant,
    P(id): P<i64>,
) -> AppResult {
    let missing = || Problem::new(codes::INBOX_NOT_FOUND, format!("no inbox record {id}"));
    let r = found(st.hub.store.inbox_record(id).await, missing)?;
    if !tenant.sees_source(&st, &r.source) {
        return Err(missing());
    }
    let r = serde_json::to_value(&r).unwrap_or_default();
    let shown = shown_inbox(&st, &pii, vec![r]).pop().unwrap_or_default();
    Ok(Json(shown).into_response())
}

/// Runs a rejected payload again through its source's current mapping (after the
/// mapping was fixed). Accepted: its events are stored and routed like new ones, and the
/// rejected record points at the record it became.
#[utoipa::path(post, path = "/v1/inbox/{id}/reprocess", tag = "inbox", params(("id" = i64, Path)),
    responses((status = 200, description = "accepted (or its events were stored before)", body = inline(ReprocessDoc)),
        (status = 422, description = "`api.reprocess_rejected`: rejected again (kept as a new inbox record)", body = crate::Problem, content_type = "application/problem+json"),
        crate::openapi::Unauthorized, crate::openapi::InboxNotFound, crate::openapi::NotReprocessable))]
async fn reprocess(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    tenant: Tenant,
    P(id): P<i64>,
) -> AppResult {
    if tenant.0.is_some() {
        let rec = st
            .hub
            .store
            .inbox_record(id)
            .await
            .map_err(|e| Problem::internal(&e))?;
        if !rec.is_some_and(|r| tenant.sees_source(&st, &r.source)) {
            return Err(Problem::new(
                codes::INBOX_NOT_FOUND,
                format!("no inbox record {id}"),
            ));
        }
    }
    let r = match st.hub.reprocess(id).await {
        Ok(r) => r,
        Err(ReprocessError::NotFound) => {
            return Err(Problem::new(
                codes::INBOX_NOT_FOUND,
                format!("no inbox record {id}"),
            ))
        }
        Err(ReprocessError::NotRejected) => {
            return Err(Problem::new(
                codes::NOT_REPROCESSABLE,
                format!("inbox record {id} was accepted; only rejected payloads are re-processed"),
            ))
        }
        Err(ReprocessError::AlreadyReprocessed(into)) => {
            let mut p = Problem::new(
                codes::NOT_REPROCESSABLE,
                format!("inbox record {id} was re-processed before, into record {into}"),
            );
            p.inbox_id = Some(into);
            return Err(p);
        }
        Err(ReprocessError::Refused(why)) => {
            return Err(Problem::new(codes::NOT_REPROCESSABLE, why))
        }
        Err(ReprocessError::Store(e)) => return Err(Problem::internal(&e)),
    };
    tracing::info!(inbox_id = id, into = r.inbox_id, by = %au.actor, "rejected payload re-processed by an operator");
    let outcome = match &r.reply {
        waybill_engine::IngestReply::Accepted(_) => "accepted",
        waybill_engine::IngestReply::Duplicate(_) => "duplicate",
        waybill_engine::IngestReply::Rejected { .. } => "rejected",
    };
    au.record(
        &st,
        "inbox.reprocess",
        format!("inbox:{id}"),
        json!({"into": r.inbox_id, "outcome": outcome}),
    )
    .await;
    match r.reply {
        waybill_engine::IngestReply::Accepted(ids)
        | waybill_engine::IngestReply::Duplicate(ids) => Ok(Json(
            json!({"status": "accepted", "event_ids": ids, "inbox_id": r.inbox_id}),
        )
        .into_response()),
        waybill_engine::IngestReply::Rejected { code, detail, .. } => {
            let mut p = Problem::new(
                codes::REPROCESS_REJECTED,
                format!("rejected again ({code}): {detail}"),
            );
            p.inbox_id = Some(r.inbox_id);
            Err(p)
        }
    }
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ReprocessDoc {
    status: String,
    event_ids: Vec<String>,
    inbox_id: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct EventPath {
    /// Shipment key or any alias of it.
    key: String,
    /// Event id.
    event_id: String,
}

/// Every delivery of one event: per subscription, its state, attempts, last status code
/// and timing, and the failed attempts with their answers.
#[utoipa::path(get, path = "/v1/shipments/{key}/events/{event_id}/deliveries", tag = "shipments", params(EventPath),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::ShipmentNotFound))]
async fn event_deliveries(
    State(st): State<Arc<AppState>>,
    tenant: Tenant,
    P((key, event_id)): P<(String, String)>,
) -> AppResult {
    check_name("shipment", &key)?;
    check_name("event", &event_id)?;
    let shipment = crate::routes::resolve_one(&st, &key, &tenant).await?;
    let rows = st
        .hub
        .store
        .deliveries_of(&ShipmentKey(shipment.clone()), &event_id)
        .await
        .map_err(|e| Problem::internal(&e))?;
    Ok(
        Json(json!({"shipment": shipment, "event_id": event_id, "deliveries": rows}))
            .into_response(),
    )
}
