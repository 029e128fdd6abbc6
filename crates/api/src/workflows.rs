//! The workbench: workflows and the tasks they open for people.
//!
//! - `GET /v1/workflows?entity=&status=&kind=&limit=`: `entity` may be any alias of the
//!   shipment (a tracking number, an Odoo picking name).
//! - `GET /v1/workflows/{id}`: state, step history (input, answer, attempts, times),
//!   pending timers, tasks.
//! - `POST /v1/workflows/{id}/cancel` and `/retry` `{"by": "…"}`.
//! - `GET /v1/workflows/{id}/documents/{name}`: a kept document (a label).
//! - `GET /v1/tasks?status=&workflow=&after=&limit=`.
//! - `POST /v1/tasks/{id}/claim` `{"by": "…"}`.
//! - `POST /v1/tasks/{id}/resolve` `{"by": "…", "decision": {…}, "reason": "…"}`: the
//!   decision is handed to the workflow, which resumes.

use crate::privacy::{shown, Pii};
use crate::routes::{P, Q};
use crate::tenant::Tenant;
use crate::{codes, AppState, Problem};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waybill_engine::workflow::runtime::Runtime;
use waybill_store::flow::{TaskAction, TaskQuery, TaskRefusal, WfQuery, WfRecord, WfTask};
use waybill_store::Resolved;

type AppResult = Result<Response, Problem>;

/// The workbench routes.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_workflows))
        .routes(routes!(get_workflow))
        .routes(routes!(cancel))
        .routes(routes!(retry))
        .routes(routes!(document))
        .routes(routes!(list_tasks))
        .routes(routes!(claim))
        .routes(routes!(resolve))
}

fn runtime(st: &AppState) -> Result<&Arc<Runtime>, Problem> {
    st.workflows
        .as_ref()
        .ok_or_else(|| Problem::new(codes::WORKFLOWS_OFF, "no workflows are configured"))
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn workflow_json(r: &WfRecord) -> Value {
    json!({
        "id": r.id, "kind": r.kind, "entity": r.entity, "status": r.status, "stage": r.stage,
        "state": parsed(&r.state), "pending": parsed(&r.pending), "retry_at_ms": r.retry_at,
        "version": r.version, "created_at_ms": r.created_at, "updated_at_ms": r.updated_at,
    })
}

fn task_json(t: &WfTask) -> Value {
    json!({
        "id": t.id, "workflow": t.workflow, "entity": t.entity, "kind": t.kind,
        "status": t.status, "title": t.title, "detail": parsed(&t.detail),
        "claimed_by": t.claimed_by,
        "decision": t.decision.as_deref().map(parsed), "resolved_by": t.resolved_by,
        "reason": t.reason, "created_at_ms": t.created_at, "updated_at_ms": t.updated_at,
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListWorkflows {
    /// The shipment, by key or any alias.
    entity: Option<String>,
    status: Option<String>,
    kind: Option<String>,
    limit: Option<u32>,
}

/// Workflows, newest first, by shipment (any alias), status or kind.
#[utoipa::path(get, path = "/v1/workflows", tag = "workflows", params(ListWorkflows),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::WorkflowsOff, crate::openapi::BadQuery))]
async fn list_workflows(
    State(st): State<Arc<AppState>>,
    pii: Pii,
    tenant: Tenant,
    Q(q): Q<ListWorkflows>,
) -> AppResult {
    let rt = runtime(&st)?;
    let entity = match q.entity {
        Some(e) => match rt
            .store()
            .resolve_key(&e)
            .await
            .map_err(|e| Problem::internal(&e))?
        {
            Resolved::One(k) => Some(k.as_str().to_owned()),
            _ => Some(e),
        },
        None => None,
    };
    let rows = rt
        .store()
        .workflows(WfQuery {
            entity,
            status: q.status,
            kind: q.kind,
            limit: q.limit.unwrap_or(100),
            tenant: tenant.0,
        })
        .await
        .map_err(|e| Problem::internal(&e))?;
    let rows: Vec<Value> = rows.iter().map(workflow_json).collect();
    Ok(Json(json!({"workflows": shown(&st, pii, &rows)})).into_response())
}

/// A workflow: state, step history, pending timers, tasks.
#[utoipa::path(get, path = "/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::WorkflowsOff))]
async fn get_workflow(
    State(st): State<Arc<AppState>>,
    pii: Pii,
    tenant: Tenant,
    P(id): P<String>,
) -> AppResult {
    let rt = runtime(&st)?;
    let found = rt
        .store()
        .workflow(&id)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let (rec, steps, timers) = match found {
        Some(f) if tenant.sees(&st, &f.0.entity).await? => f,
        _ => {
            return Err(Problem::new(
                codes::WORKFLOW_NOT_FOUND,
                format!("no workflow `{id}`"),
            ))
        }
    };
    let tasks = rt
        .store()
        .tasks(TaskQuery {
            workflow: Some(id.clone()),
            limit: 1000,
            ..TaskQuery::default()
        })
        .await
        .map_err(|e| Problem::internal(&e))?;
    let mut body = workflow_json(&rec);
    body["steps"] = steps
        .iter()
        .map(|s| {
            json!({"n": s.n, "step": s.step, "input": parsed(&s.input), "answer": parsed(&s.answer),
                   "outcome": s.outcome, "attempts": s.attempts,
                   "started_at_ms": s.started_at, "ended_at_ms": s.ended_at})
        })
        .collect();
    body["timers"] = timers
        .iter()
        .map(|(name, due)| json!({"name": name, "due_at_ms": due}))
        .collect();
    body["tasks"] = tasks.iter().map(task_json).collect();
    Ok(Json(shown(&st, pii, &body)).into_response())
}

/// Who asks (shown in the workflow's history).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct By {
    by: Option<String>,
}

fn body_of<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| Problem::new(codes::BAD_JSON, e.to_string()))
}

/// Refuses (as not found) a workflow the caller's tenant does not see.
async fn workflow_of_tenant(st: &AppState, tenant: &Tenant, id: &str) -> Result<(), Problem> {
    if tenant.0.is_none() {
        return Ok(());
    }
    let rt = runtime(st)?;
    let found = rt
        .store()
        .workflow(id)
        .await
        .map_err(|e| Problem::internal(&e))?;
    match found {
        Some(f) if tenant.sees(st, &f.0.entity).await? => Ok(()),
        _ => Err(Problem::new(
            codes::WORKFLOW_NOT_FOUND,
            format!("no workflow `{id}`"),
        )),
    }
}

async fn command(
    st: &AppState,
    au: &crate::audit::Audit,
    tenant: &Tenant,
    id: &str,
    body: &[u8],
    what: &str,
) -> AppResult {
    let rt = runtime(st)?;
    workflow_of_tenant(st, tenant, id).await?;
    let b: By = body_of(body)?;
    let by = b.by.unwrap_or_else(|| "api".into());
    let queued = rt
        .command(id, what, &by)
        .await
        .map_err(|e| Problem::internal(&e))?;
    if rt
        .store()
        .workflow(id)
        .await
        .map_err(|e| Problem::internal(&e))?
        .is_none()
    {
        return Err(Problem::new(
            codes::WORKFLOW_NOT_FOUND,
            format!("no workflow `{id}`"),
        ));
    }
    au.record(
        st,
        &format!("workflow.{what}"),
        format!("workflow:{id}"),
        json!({"by": by, "queued": queued}),
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"workflow": id, "command": what, "queued": queued})),
    )
        .into_response())
}

/// Cancels a workflow (its compensations run).
#[utoipa::path(post, path = "/v1/workflows/{id}/cancel", tag = "workflows", params(("id" = String, Path)), request_body(content = Option<By>, content_type = "application/json"),
    responses((status = 202, body = Object), crate::openapi::Unauthorized, crate::openapi::WorkflowsOff, crate::openapi::BadBody))]
async fn cancel(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    tenant: Tenant,
    P(id): P<String>,
    body: axum::body::Bytes,
) -> AppResult {
    command(&st, &au, &tenant, &id, &body, "cancel").await
}

/// Retries a workflow's failed or waiting step now.
#[utoipa::path(post, path = "/v1/workflows/{id}/retry", tag = "workflows", params(("id" = String, Path)), request_body(content = Option<By>, content_type = "application/json"),
    responses((status = 202, body = Object), crate::openapi::Unauthorized, crate::openapi::WorkflowsOff, crate::openapi::BadBody))]
async fn retry(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    tenant: Tenant,
    P(id): P<String>,
    body: axum::body::Bytes,
) -> AppResult {
    command(&st, &au, &tenant, &id, &body, "retry").await
}

/// A document a workflow kept (a label).
#[utoipa::path(get, path = "/v1/workflows/{id}/documents/{name}", tag = "workflows", params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "the document's bytes, with its content type", content_type = "application/octet-stream", body = Vec<u8>), crate::openapi::Unauthorized, crate::openapi::WorkflowsOff))]
async fn document(
    State(st): State<Arc<AppState>>,
    tenant: Tenant,
    P((id, name)): P<(String, String)>,
) -> AppResult {
    let rt = runtime(&st)?;
    workflow_of_tenant(&st, &tenant, &id).await?;
    match rt
        .store()
        .document(&id, &name)
        .await
        .map_err(|e| Problem::internal(&e))?
    {
        Some((mime, bytes)) => Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response()),
        None => Err(Problem::new(
            codes::NOT_FOUND,
            format!("no document `{name}` in workflow `{id}`"),
        )),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListTasks {
    /// `open`, `claimed`, `resolved` or `cancelled`.
    status: Option<String>,
    workflow: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

/// Tasks opened for people, oldest first, paged by `after`.
#[utoipa::path(get, path = "/v1/tasks", tag = "workflows", params(ListTasks),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::WorkflowsOff, crate::openapi::BadQuery))]
async fn list_tasks(
    State(st): State<Arc<AppState>>,
    pii: Pii,
    tenant: Tenant,
    Q(q): Q<ListTasks>,
) -> AppResult {
    let rt = runtime(&st)?;
    let rows = rt
        .store()
        .tasks(TaskQuery {
            status: q.status,
            workflow: q.workflow,
            after: q.after.unwrap_or(0),
            limit: q.limit.unwrap_or(100),
            tenant: tenant.0,
        })
        .await
        .map_err(|e| Problem::internal(&e))?;
    let rows: Vec<Value> = rows.iter().map(task_json).collect();
    Ok(Json(json!({"tasks": shown(&st, pii, &rows)})).into_response())
}

/// A person's decision on a task.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Resolve {
    by: Option<String>,
    decision: Option<Value>,
    reason: Option<String>,
}

/// Claims or resolves task `id`; on success, `what` with `detail` goes to the audit trail.
async fn act(
    st: &AppState,
    au: &crate::audit::Audit,
    tenant: &Tenant,
    id: i64,
    action: TaskAction,
    what: &str,
    detail: Value,
) -> AppResult {
    let rt = runtime(st)?;
    if tenant.0.is_some() {
        // The task with this id, read as the first above id - 1.
        let task = rt
            .store()
            .tasks(TaskQuery {
                after: id.saturating_sub(1),
                limit: 1,
                tenant: tenant.0.clone(),
                ..TaskQuery::default()
            })
            .await
            .map_err(|e| Problem::internal(&e))?;
        if task.first().is_none_or(|t| t.id != id) {
            return Err(Problem::new(codes::TASK_NOT_FOUND, format!("no task {id}")));
        }
    }
    match rt
        .store()
        .task_act(id, action)
        .await
        .map_err(|e| Problem::internal(&e))?
    {
        Ok(task) => {
            rt.poke();
            au.record(st, what, format!("task:{id}"), detail).await;
            Ok(Json(task_json(&task)).into_response())
        }
        Err(TaskRefusal::NotFound) => {
            Err(Problem::new(codes::TASK_NOT_FOUND, format!("no task {id}")))
        }
        Err(TaskRefusal::NotOpen(t)) => {
            let mut p = Problem::new(
                codes::TASK_NOT_OPEN,
                format!(
                    "task {id} is {}{}",
                    t.status,
                    t.claimed_by
                        .as_deref()
                        .map(|b| format!(" (claimed by {b})"))
                        .unwrap_or_default()
                ),
            );
            p.task = Some(Box::new(task_json(&t)));
            Err(p)
        }
    }
}

/// Claims an open task.
#[utoipa::path(post, path = "/v1/tasks/{id}/claim", tag = "workflows", params(("id" = i64, Path)), request_body(content = Option<By>, content_type = "application/json"),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::WorkflowsOff, crate::openapi::TaskNotOpen, crate::openapi::BadBody))]
async fn claim(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    tenant: Tenant,
    P(id): P<i64>,
    body: axum::body::Bytes,
) -> AppResult {
    let b: By = body_of(&body)?;
    let Some(by) = b.by.filter(|s| !s.trim().is_empty()) else {
        return Err(Problem::new(
            codes::BAD_REQUEST,
            "`by` (who claims it) is required",
        ));
    };
    let detail = json!({"by": by});
    act(
        &st,
        &au,
        &tenant,
        id,
        TaskAction::Claim { by },
        "task.claim",
        detail,
    )
    .await
}

/// Resolves a task with a decision; the workflow resumes.
#[utoipa::path(post, path = "/v1/tasks/{id}/resolve", tag = "workflows", params(("id" = i64, Path)), request_body(content = Option<Resolve>, content_type = "application/json"),
    responses((status = 200, body = Object), crate::openapi::Unauthorized, crate::openapi::WorkflowsOff, crate::openapi::TaskNotOpen, crate::openapi::BadBody))]
async fn resolve(
    State(st): State<Arc<AppState>>,
    au: crate::audit::Audit,
    tenant: Tenant,
    P(id): P<i64>,
    body: axum::body::Bytes,
) -> AppResult {
    let b: Resolve = body_of(&body)?;
    let Some(by) = b.by.filter(|s| !s.trim().is_empty()) else {
        return Err(Problem::new(
            codes::BAD_REQUEST,
            "`by` (who decides) is required",
        ));
    };
    let decision = match b.decision {
        Some(d @ Value::Object(_)) => d,
        _ => {
            return Err(Problem::new(
                codes::BAD_REQUEST,
                "`decision` must be an object (see docs/workflows.md for each task)",
            ))
        }
    };
    let detail = json!({"by": by, "decision": decision, "reason": b.reason});
    act(
        &st,
        &au,
        &tenant,
        id,
        TaskAction::Resolve {
            by,
            decision: decision.to_string(),
            reason: b.reason,
        },
        "task.resolve",
        detail,
    )
    .await
}

/// The workflow lines of `/metrics`.
pub(crate) fn metrics_text(c: &waybill_store::flow::WfCounts) -> String {
    let mut t = String::from(
        "# HELP waybill_workflows Workflows by kind and status (running, waiting, done, failed, cancelled).\n\
         # TYPE waybill_workflows gauge\n",
    );
    for (kind, status, n) in &c.by_status {
        let clean = |s: &str| s.replace(['\\', '"', '\n'], "_");
        t.push_str(&format!(
            "waybill_workflows{{kind=\"{}\",status=\"{}\"}} {n}\n",
            clean(kind),
            clean(status)
        ));
    }
    t.push_str(&format!(
        "# HELP waybill_tasks_open Workbench tasks open or claimed.\n\
         # TYPE waybill_tasks_open gauge\n\
         waybill_tasks_open {}\n\
         # HELP waybill_workflow_timers Workflow timers pending.\n\
         # TYPE waybill_workflow_timers gauge\n\
         waybill_workflow_timers {}\n",
        c.tasks_open, c.timers
    ));
    t
}
