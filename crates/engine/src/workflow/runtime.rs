//! Runs workflows: offers them their events, fires their timers, makes their calls with a
//! retry policy and a timeout, and saves each step in one transaction.
//!
//! One runner works per store (on several instances it runs under the singleton lease
//! `single:workflows`); within it, different workflows advance concurrently and one
//! workflow one step at a time. Every save is guarded by the workflow's version, so a
//! second runner (a lease handed over mid-step) can never apply a step twice.

use super::ports::{Booked, Carriers, Erp, Found, PortError};
use super::{Answer, Call, Ctx, Effects, Erased, Input, Status, Stepped};
use crate::clock::Clock;
use crate::ingest::{IngestReply, Received};
use crate::retry::{Decision, Jitter, RetryPolicy};
use crate::Hub;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use waybill_model::FailureKind;
use waybill_store::flow::{NewDocument, NewInput, TaskQuery, WfSave, WfStep};
use waybill_store::{Resolved, Store, StoreError};

/// The source name of the events workflows emit.
pub const SOURCE: &str = "workflows";

/// How calls are retried and timed out.
#[derive(Debug, Clone)]
pub struct StepPolicy {
    /// Delays between attempts of a call that failed in a retryable way; its length is the
    /// number of retries before the machine is told of the failure.
    pub retry: RetryPolicy,
    /// Retries of a `buy` before the machine moves to the next carrier (a carrier that is
    /// down should not hold the shipment for hours).
    pub buy_retries: u32,
    /// Longest a call may take before it counts as a retryable failure.
    pub timeout: Duration,
    /// Workflows advanced at once.
    pub concurrency: usize,
    /// How often the runner looks for due timers and retries.
    pub tick: Duration,
}

impl Default for StepPolicy {
    fn default() -> Self {
        StepPolicy {
            retry: RetryPolicy {
                schedule: [1, 5, 30, 120, 600, 1800, 3600, 3600]
                    .into_iter()
                    .map(Duration::from_secs)
                    .collect(),
                jitter: Jitter::Proportional(0.2),
                max_retry_after: Duration::from_secs(3600),
            },
            buy_retries: 2,
            timeout: Duration::from_secs(60),
            concurrency: 16,
            tick: Duration::from_millis(250),
        }
    }
}

/// A queued call with its attempts so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    #[serde(flatten)]
    call: Call,
    #[serde(default)]
    attempts: u32,
}

/// The workflow runtime.
pub struct Runtime {
    store: Store,
    hub: Arc<Hub>,
    machines: HashMap<&'static str, Arc<dyn Erased>>,
    carriers: Option<Arc<dyn Carriers>>,
    erp: Option<Arc<dyn Erp>>,
    clock: Arc<dyn Clock>,
    policy: StepPolicy,
    wake: Notify,
    busy: Mutex<HashSet<String>>,
}

/// Errors of the runtime (the store's, or a stored state no machine can read).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored workflow cannot be read by this build.
    #[error("workflow {0}: {1}")]
    Broken(String, String),
}

impl Runtime {
    /// A runtime over these machines and ports.
    pub fn new(
        hub: Arc<Hub>,
        machines: Vec<Arc<dyn Erased>>,
        carriers: Option<Arc<dyn Carriers>>,
        erp: Option<Arc<dyn Erp>>,
        clock: Arc<dyn Clock>,
        policy: StepPolicy,
    ) -> Self {
        Runtime {
            store: hub.store.clone(),
            hub,
            machines: machines.into_iter().map(|m| (m.kind(), m)).collect(),
            carriers,
            erp,
            clock,
            policy,
            wake: Notify::new(),
            busy: Mutex::new(HashSet::new()),
        }
    }

    /// Every event type some machine wants (the internal subscription's filter).
    pub fn event_types(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .machines
            .values()
            .flat_map(|m| m.event_types().iter().map(|s| (*s).to_owned()))
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Offers a canonical event (JSON) to the workflows that want its type, keyed by the
    /// canonical shipment its subject resolves to. Durable when this returns.
    pub async fn offer_event(&self, event: &Value) -> Result<usize, StoreError> {
        let ty = event["type"].as_str().unwrap_or_default();
        let wanting: Vec<&Arc<dyn Erased>> = self
            .machines
            .values()
            .filter(|m| m.event_types().contains(&ty))
            .collect();
        let (Some(subject), Some(id)) = (event["subject"].as_str(), event["id"].as_str()) else {
            return Ok(0);
        };
        if wanting.is_empty() {
            return Ok(0);
        }
        let entity = match self.store.resolve_key(subject).await? {
            Resolved::One(k) => k.as_str().to_owned(),
            _ => subject.to_owned(),
        };
        let inputs = wanting
            .iter()
            .map(|m| NewInput {
                workflow: format!("{}:{entity}", m.kind()),
                wf_kind: m.kind().to_owned(),
                entity: entity.clone(),
                kind: "event".into(),
                key: format!("event:{id}"),
                body: event.to_string(),
            })
            .collect();
        let n = self.store.wf_offer(inputs).await?;
        self.wake.notify_one();
        Ok(n)
    }

    /// Asks a workflow to cancel (compensations run) or to try again; `false` when there
    /// is no such workflow or the same command is already queued.
    pub async fn command(&self, id: &str, command: &str, by: &str) -> Result<bool, StoreError> {
        let Some((rec, _)) = self.store.wf_load(id).await? else {
            return Ok(false);
        };
        let n = self
            .store
            .wf_offer(vec![NewInput {
                workflow: rec.id.clone(),
                wf_kind: rec.kind.clone(),
                entity: rec.entity.clone(),
                kind: "command".into(),
                key: format!("command:{command}:{}", rec.version),
                body: json!({"command": command, "by": by}).to_string(),
            }])
            .await?;
        self.wake.notify_one();
        Ok(n > 0)
    }

    /// Wakes the runner (a task was resolved).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Runs until `shutdown`: fires due timers, advances runnable workflows.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.policy.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = self.clock.now_ms();
            let mut busy_round = false;
            // A read first: the write transaction only when a timer is due, so an idle
            // runner never takes the writer from ingest.
            match self.store.wf_next_due().await {
                Ok(Some(due)) if due <= now => match self.store.wf_fire_timers(now, 1000).await {
                    Ok(n) => busy_round |= n == 1000,
                    Err(e) => tracing::warn!(error = %e, "workflows: firing timers failed"),
                },
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "workflows: reading timers failed"),
            }
            match self.store.wf_runnable(now, 256).await {
                Ok(ids) => {
                    for id in ids {
                        if !self.claim(&id) {
                            continue;
                        }
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        let rt = self.clone();
                        tasks.spawn(async move {
                            if let Err(e) = rt.advance(&id).await {
                                tracing::warn!(workflow = %id, error = %e, "workflow step failed");
                            }
                            rt.release(&id);
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "workflows: reading work failed"),
            }
            while tasks.try_join_next().is_some() {}
            if busy_round {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.policy.tick) => {}
                _ = shutdown.changed() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    fn claim(&self, id: &str) -> bool {
        self.busy
            .lock()
            .map(|mut b| b.insert(id.to_owned()))
            .unwrap_or(false)
    }

    fn release(&self, id: &str) {
        if let Ok(mut b) = self.busy.lock() {
            b.remove(id);
        }
    }

    /// Advances one workflow until it waits (or a retry is due later).
    pub async fn advance(&self, id: &str) -> Result<(), RunError> {
        loop {
            match self.step(id).await {
                Ok(true) => continue,
                Ok(false) => return Ok(()),
                // Another runner saved first: read it again.
                Err(RunError::Store(StoreError::Stale(_))) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One step: the first queued call, else the next input. `false` when there was
    /// nothing to do now.
    async fn step(&self, id: &str) -> Result<bool, RunError> {
        let Some((rec, input)) = self.store.wf_load(id).await? else {
            return Ok(false);
        };
        let broken = |e: String| RunError::Broken(id.to_owned(), e);
        let machine = self
            .machines
            .get(rec.kind.as_str())
            .cloned()
            .ok_or_else(|| {
                broken(format!(
                    "no workflow `{}` in this build or config",
                    rec.kind
                ))
            })?;
        let mut pending: Vec<Pending> =
            serde_json::from_str(&rec.pending).map_err(|e| broken(format!("stored queue: {e}")))?;
        let now = self.clock.now_ms();
        let mut save = WfSave {
            id: rec.id.clone(),
            expect_version: rec.version,
            ..WfSave::default()
        };
        let mut fx = Effects::default();
        let stepped: Stepped;
        // A call waiting for its retry holds the workflow, except for an operator's
        // command: `retry` makes the call now, `cancel` goes to the machine at once.
        let waiting = !pending.is_empty() && rec.retry_at.is_some_and(|t| t > now);
        let command = input
            .as_ref()
            .filter(|i| i.kind == "command")
            .map(|i| (i.id, i.body.contains("\"retry\"")));
        let run_call = match (pending.is_empty(), waiting, command) {
            (true, _, _) => false,
            (false, false, _) => true,
            (false, true, Some((id, true))) => {
                save.input_done = Some(id);
                true
            }
            (false, true, Some((_, false))) => false,
            (false, true, None) => return Ok(false),
        };
        if let (true, Some(first)) = (run_call, pending.first().cloned()) {
            let started = self.clock.now_ms();
            let (answer, docs) = self.execute(&rec.id, &rec.entity, &first.call).await;
            let attempts = first.attempts + 1;
            let record = |outcome: &str, answer: &Answer| WfStep {
                n: 0,
                step: first.call.name().to_owned(),
                input: serde_json::to_string(&first.call).unwrap_or_default(),
                answer: match answer {
                    Ok(v) => v.to_string(),
                    Err(e) => json!({"error": e}).to_string(),
                },
                outcome: outcome.to_owned(),
                attempts: i64::from(attempts),
                started_at: started,
                ended_at: self.clock.now_ms(),
            };
            if let Err(e) = &answer {
                if let Some(delay) = self.retry_after(&first.call, attempts, e.kind) {
                    tracing::warn!(workflow = %rec.id, step = first.call.name(), code = %e.code,
                        kind = e.kind.as_str(), attempts, retry_in_ms = delay.as_millis() as u64,
                        "workflow step failed; retrying");
                    save.steps.push(record("retrying", &answer));
                    pending[0].attempts = attempts;
                    save.status = Status::Running.as_str().into();
                    save.stage = rec.stage.clone();
                    save.state = rec.state.clone();
                    save.pending = serde_json::to_string(&pending).unwrap_or_else(|_| "[]".into());
                    save.retry_at =
                        Some(now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                    self.store.wf_save(save).await?;
                    return Ok(false);
                }
            }
            if let Err(e) = &answer {
                tracing::warn!(workflow = %rec.id, step = first.call.name(), code = %e.code,
                    kind = e.kind.as_str(), attempts, "workflow step failed; the workflow decides");
            }
            save.steps.push(record(
                if answer.is_ok() { "ok" } else { "failed" },
                &answer,
            ));
            save.documents = docs;
            pending.remove(0);
            let cx = Ctx {
                entity: rec.entity.clone(),
                refs: Vec::new(),
            };
            stepped = machine
                .answer(&cx, &rec.state, &first.call, &answer, &mut fx)
                .map_err(broken)?;
        } else if let Some(input) = input {
            let body: Value = serde_json::from_str(&input.body).unwrap_or(Value::Null);
            let parsed = match input.kind.as_str() {
                "event" => Input::Event(body.clone()),
                "timer" => Input::Timer(body["timer"].as_str().unwrap_or_default().to_owned()),
                "task" => Input::Task {
                    kind: body["kind"].as_str().unwrap_or_default().to_owned(),
                    decision: body["decision"].clone(),
                    by: body["by"].as_str().unwrap_or_default().to_owned(),
                },
                _ => match body["command"].as_str() {
                    Some("retry") => Input::Retry {
                        by: body["by"].as_str().unwrap_or_default().to_owned(),
                    },
                    _ => Input::Cancel {
                        by: body["by"].as_str().unwrap_or_default().to_owned(),
                    },
                },
            };
            save.input_done = Some(input.id);
            save.steps.push(WfStep {
                n: 0,
                step: format!("input:{}", input.kind),
                input: input_summary(&input.kind, &body),
                answer: String::new(),
                outcome: "applied".into(),
                attempts: 1,
                started_at: now,
                ended_at: now,
            });
            if input.kind == "task" {
                fx.calls.push(Call::AnnounceTasks);
            }
            let refs = if input.kind == "event" {
                self.store.resolved_refs(&rec.entity).await?
            } else {
                Vec::new()
            };
            let cx = Ctx {
                entity: rec.entity.clone(),
                refs,
            };
            stepped = machine
                .input(&cx, &rec.state, &parsed, &mut fx)
                .map_err(broken)?;
        } else {
            if rec.retry_at.is_some() {
                // Nothing queued: clear a stale retry mark.
                save.status = rec.status.clone();
                save.stage = rec.stage.clone();
                save.state = rec.state.clone();
                save.pending = "[]".into();
                self.store.wf_save(save).await?;
            }
            return Ok(false);
        }
        if fx.drop_queued {
            pending.clear();
        }
        if !fx.open_tasks.is_empty() || !fx.cancel_tasks.is_empty() {
            fx.calls.push(Call::AnnounceTasks);
        }
        let mut queue: Vec<Pending> = fx
            .calls
            .drain(..)
            .map(|call| Pending { call, attempts: 0 })
            .collect();
        queue.extend(pending);
        save.status = if queue.is_empty() {
            stepped.status.as_str().to_owned()
        } else {
            Status::Running.as_str().to_owned()
        };
        save.stage = stepped.stage;
        save.state = stepped.state;
        save.pending = serde_json::to_string(&queue).unwrap_or_else(|_| "[]".into());
        // A queued call is due now: the runner finds it by `retry_at` after a restart.
        save.retry_at = (!queue.is_empty()).then_some(now);
        save.set_timers = fx
            .set_timers
            .into_iter()
            .map(|(n, d)| (n, now + i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
            .collect();
        save.cancel_timers = fx.cancel_timers;
        save.open_tasks = fx.open_tasks;
        save.cancel_tasks = fx.cancel_tasks;
        save.documents.extend(fx.documents);
        if save.stage != rec.stage || save.status != rec.status {
            tracing::info!(workflow = %rec.id, stage = %save.stage, status = %save.status,
                from = %rec.stage, "workflow moved");
        }
        self.store.wf_save(save).await?;
        Ok(true)
    }

    /// The delay before retrying a call that failed, or `None` to tell the machine.
    fn retry_after(&self, call: &Call, attempts: u32, kind: FailureKind) -> Option<Duration> {
        if !kind.should_retry() {
            return None;
        }
        if matches!(call, Call::Buy { .. }) && attempts > self.policy.buy_retries {
            return None;
        }
        match self
            .policy
            .retry
            .decide(attempts, kind, None, rand::random::<f64>())
        {
            Decision::RetryAfter(d) => Some(d),
            Decision::GiveUp => None,
        }
    }

    /// Makes one call; returns its answer and the documents to keep.
    async fn execute(&self, wf: &str, entity: &str, call: &Call) -> (Answer, Vec<NewDocument>) {
        match tokio::time::timeout(self.policy.timeout, self.execute_inner(wf, entity, call)).await
        {
            Ok(r) => r,
            Err(_) => (
                Err(PortError::new(
                    FailureKind::Retryable,
                    "workflow.step_timeout",
                    format!("{} took longer than {:?}", call.name(), self.policy.timeout),
                )),
                Vec::new(),
            ),
        }
    }

    async fn execute_inner(
        &self,
        wf: &str,
        entity: &str,
        call: &Call,
    ) -> (Answer, Vec<NewDocument>) {
        let mut docs = Vec::new();
        let answer = match call {
            Call::ReadOrder { picking_id } => match self.erp() {
                Ok(erp) => erp.order_context(*picking_id).await.and_then(to_value),
                Err(e) => Err(e),
            },
            Call::FindBooking { reference } => match self.carriers() {
                Ok(c) => match c.find(reference).await {
                    Ok(Found::Nothing) => Ok(json!({"found": "nothing"})),
                    Ok(Found::Draft(d)) => {
                        to_value(d).map(|d| json!({"found": "draft", "draft": d}))
                    }
                    Ok(Found::Booked(b)) => {
                        let label = keep_label(&b, &mut docs);
                        to_value(b).map(|b| json!({"found": "booked", "booked": b, "label": label}))
                    }
                    Ok(Found::Cancelled(id)) => Ok(json!({"found": "cancelled", "booking_id": id})),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            Call::Quote { request } => match self.carriers() {
                Ok(c) => c.quote(request).await.and_then(to_value),
                Err(e) => Err(e),
            },
            Call::Buy {
                booking_id,
                quote_id,
                ..
            } => match self.carriers() {
                Ok(c) => match c.buy(booking_id, quote_id).await {
                    Ok(b) => {
                        let label = keep_label(&b, &mut docs);
                        to_value(b).map(|b| json!({"booked": b, "label": label}))
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            Call::Void { booking_id } => match self.carriers() {
                Ok(c) => c
                    .void(booking_id)
                    .await
                    .map(|()| json!({"voided": booking_id})),
                Err(e) => Err(e),
            },
            Call::RecordBooking {
                picking_id,
                booked,
                label,
                marker,
            } => match self.erp() {
                Ok(erp) => {
                    let mut booked: Booked = (**booked).clone();
                    if let Some(name) = label {
                        match self.store.document(wf, name).await {
                            Ok(Some((mime, bytes))) => {
                                booked.label = Some(super::ports::Label {
                                    format: label_format(&mime),
                                    bytes,
                                })
                            }
                            Ok(None) => {}
                            Err(e) => return (Err(store_failure(&e)), docs),
                        }
                    }
                    erp.record_booking(*picking_id, &booked, marker)
                        .await
                        .map(|()| json!({"recorded": marker}))
                }
                Err(e) => Err(e),
            },
            Call::RecordVoid {
                picking_id,
                booked,
                marker,
                body,
            } => match self.erp() {
                Ok(erp) => erp
                    .record_void(*picking_id, booked, marker, body)
                    .await
                    .map(|()| json!({"unrecorded": marker})),
                Err(e) => Err(e),
            },
            Call::CloseActivity { picking_id, marker } => match self.erp() {
                Ok(erp) => erp
                    .close_activity(*picking_id, marker)
                    .await
                    .map(|()| json!({"closed": marker})),
                Err(e) => Err(e),
            },
            Call::Invoice { picking_id, marker } => match self.erp() {
                Ok(erp) => erp.invoice(*picking_id, marker).await.and_then(to_value),
                Err(e) => Err(e),
            },
            Call::Note {
                picking_id,
                marker,
                body,
            } => match self.erp() {
                Ok(erp) => erp
                    .note(*picking_id, marker, body)
                    .await
                    .map(|()| json!({"noted": marker})),
                Err(e) => Err(e),
            },
            Call::Activity {
                picking_id,
                marker,
                summary,
                note,
            } => match self.erp() {
                Ok(erp) => erp
                    .activity(*picking_id, marker, summary, note)
                    .await
                    .map(|()| json!({"scheduled": marker})),
                Err(e) => Err(e),
            },
            Call::AnnounceTasks => self.announce_tasks(wf, entity).await,
            Call::Emit { key, drafts } => self.emit(key, drafts).await,
        };
        (answer, docs)
    }

    async fn announce_tasks(&self, wf: &str, entity: &str) -> Answer {
        let tasks = self
            .store
            .tasks(TaskQuery {
                workflow: Some(wf.to_owned()),
                limit: 1000,
                ..TaskQuery::default()
            })
            .await
            .map_err(|e| store_failure(&e))?;
        let mut drafts = Vec::new();
        for t in &tasks {
            let detail: Value = serde_json::from_str(&t.detail).unwrap_or(Value::Null);
            drafts.push(json!({
                "type": "task.opened", "subject": entity, "key": format!("task:{}:opened", t.id),
                "data": {"task": t.id, "kind": t.kind, "title": t.title, "detail": detail, "workflow": wf},
            }));
            // A task a person resolved, or one the workflow withdrew (the question went
            // away: a document came, the order was cancelled): subscribers hear both.
            if t.status == "resolved" || t.status == "cancelled" {
                let decision: Value = t
                    .decision
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or(Value::Null);
                drafts.push(json!({
                    "type": "task.resolved", "subject": entity, "key": format!("task:{}:resolved", t.id),
                    "data": {"task": t.id, "kind": t.kind, "outcome": t.status, "decision": decision,
                             "resolved_by": t.resolved_by, "reason": t.reason, "workflow": wf},
                }));
            }
        }
        if drafts.is_empty() {
            return Ok(json!({"announced": 0}));
        }
        // One payload per state of the task set: a repeat is a duplicate payload.
        let key = format!(
            "{wf}:tasks:{}",
            waybill_model::ids::content_hash(Value::Array(drafts.clone()).to_string().as_bytes())
        );
        self.emit(&key, &drafts).await
    }

    /// Appends events as source `workflows`, under an idempotency key.
    async fn emit(&self, key: &str, drafts: &[Value]) -> Answer {
        let r = self
            .hub
            .ingest_canonical_for_source(Received {
                source: SOURCE.into(),
                headers: vec![("idempotency-key".into(), key.to_owned())],
                body: Value::Array(drafts.to_vec()).to_string().into_bytes(),
                too_large: false,
                received_at: self.clock.now_utc(),
                url_token: None,
            })
            .await;
        match r {
            Ok(IngestReply::Accepted(ids)) | Ok(IngestReply::Duplicate(ids)) => Ok(json!({
                "event_ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()
            })),
            Ok(IngestReply::Rejected { code, detail, .. }) => Err(PortError::new(
                FailureKind::InvalidInput,
                code.as_str(),
                detail,
            )),
            Err(e) => Err(store_failure(&e)),
        }
    }

    fn carriers(&self) -> Result<&Arc<dyn Carriers>, PortError> {
        self.carriers.as_ref().ok_or_else(|| {
            PortError::new(
                FailureKind::Permanent,
                "workflow.no_carriers",
                "no carrier booking service is configured",
            )
        })
    }

    fn erp(&self) -> Result<&Arc<dyn Erp>, PortError> {
        self.erp.as_ref().ok_or_else(|| {
            PortError::new(
                FailureKind::Permanent,
                "workflow.no_erp",
                "no ERP connection is configured",
            )
        })
    }
}

fn to_value<T: Serialize>(v: T) -> Result<Value, PortError> {
    serde_json::to_value(v)
        .map_err(|e| PortError::new(FailureKind::InvalidInput, "workflow.encode", e.to_string()))
}

fn store_failure(e: &StoreError) -> PortError {
    PortError::new(FailureKind::Retryable, "workflow.store", e.to_string())
}

/// Keeps a booking's label as a document; returns its name.
fn keep_label(b: &Booked, docs: &mut Vec<NewDocument>) -> Option<String> {
    let label = b.label.as_ref()?;
    let name = format!("label:{}", b.booking_id);
    docs.push(NewDocument {
        name: name.clone(),
        mime: match label.format.to_ascii_uppercase().as_str() {
            "PDF" => "application/pdf".into(),
            "PNG" => "image/png".into(),
            "ZPL" => "application/zpl".into(),
            other => format!("application/x-{}", other.to_ascii_lowercase()),
        },
        bytes: label.bytes.clone(),
    });
    Some(name)
}

fn label_format(mime: &str) -> String {
    match mime {
        "application/pdf" => "PDF".into(),
        "image/png" => "PNG".into(),
        "application/zpl" => "ZPL".into(),
        other => other
            .rsplit('-')
            .next()
            .unwrap_or(other)
            .to_ascii_uppercase(),
    }
}

/// What the history keeps of an input: an event's id and type, else the input.
fn input_summary(kind: &str, body: &Value) -> String {
    match kind {
        "event" => {
            json!({"id": body["id"], "type": body["type"], "source": body["source"]}).to_string()
        }
        _ => body.to_string(),
    }
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
