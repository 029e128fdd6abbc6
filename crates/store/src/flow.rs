//! Durable workflow state: instances, the inputs that drive them (events, fired timers,
//! people's decisions), their step history, timers, tasks for people and documents
//! (labels) kept by reference.
//!
//! The store only keeps and hands out this state; what a workflow does is decided in the
//! engine. Every change of one workflow is one transaction ([`WfSave`]), guarded by the
//! instance's version so that two runners can never both apply a step.

use serde::{Deserialize, Serialize};

/// A workflow instance as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WfRecord {
    /// `<kind>:<entity>`.
    pub id: String,
    /// Which workflow (`order_to_ship`).
    pub kind: String,
    /// The entity it is about (a shipment key).
    pub entity: String,
    /// `running`, `waiting`, `done`, `failed`, `cancelled`.
    pub status: String,
    /// The state machine's stage, for people and lists.
    pub stage: String,
    /// The typed state, as JSON.
    pub state: String,
    /// Calls decided but not yet done, as JSON (the runtime's queue).
    pub pending: String,
    /// When the first pending call may be tried again (unix ms), after a retryable failure.
    pub retry_at: Option<i64>,
    /// Bumped by every save.
    pub version: i64,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// Something that drives a workflow, not yet consumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WfInput {
    /// Position: inputs are consumed in this order.
    pub id: i64,
    /// The workflow.
    pub workflow: String,
    /// `event`, `timer`, `task`, `command`.
    pub kind: String,
    /// Unique per workflow (an event id, `timer:<name>:<due>`, `task:<id>`): offering it
    /// again adds nothing.
    pub key: String,
    /// JSON.
    pub body: String,
    /// Unix ms.
    pub created_at: i64,
}

/// An input to offer (creating the workflow when it does not exist yet).
#[derive(Debug, Clone, PartialEq)]
pub struct NewInput {
    /// The workflow's id.
    pub workflow: String,
    /// Its kind (used when it is created).
    pub wf_kind: String,
    /// Its entity (used when it is created).
    pub entity: String,
    /// `event`, `timer`, `task`, `command`.
    pub kind: String,
    /// Dedupe key (see [`WfInput::key`]).
    pub key: String,
    /// JSON.
    pub body: String,
}

/// One step of a workflow's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WfStep {
    /// Position in the workflow's history, from 1.
    pub n: i64,
    /// Step name (`quote`, `buy`, `record_booking`, `input`).
    pub step: String,
    /// What it was given, JSON.
    pub input: String,
    /// What the partner answered (or the error), JSON.
    pub answer: String,
    /// `ok`, `failed`, `retrying`, `applied`.
    pub outcome: String,
    /// Attempts made.
    pub attempts: i64,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms.
    pub ended_at: i64,
}

/// A task for a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WfTask {
    /// Id.
    pub id: i64,
    /// The workflow that waits for it.
    pub workflow: String,
    /// The workflow's entity.
    pub entity: String,
    /// `choose_carrier`, `approve_invoice`, `void_refused`, …
    pub kind: String,
    /// `open`, `claimed`, `resolved`, `cancelled`.
    pub status: String,
    /// One line for people.
    pub title: String,
    /// JSON: the figures, the options.
    pub detail: String,
    /// Who claimed it.
    pub claimed_by: Option<String>,
    /// The decision, JSON.
    pub decision: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// Why (free text).
    pub reason: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

impl WfTask {
    /// Whether `by` may claim or resolve it: it is open, or `by` claimed it.
    pub(crate) fn open_to(&self, by: &str) -> bool {
        self.status == "open"
            || (self.status == "claimed" && self.claimed_by.as_deref() == Some(by))
    }
}

/// A task to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// See [`WfTask::kind`].
    pub kind: String,
    /// See [`WfTask::title`].
    pub title: String,
    /// JSON.
    pub detail: String,
}

/// A document kept for a workflow (a label), by reference.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    /// Reference, unique per workflow (`label:<booking id>`).
    pub name: String,
    /// MIME type.
    pub mime: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// One transaction's worth of change to one workflow.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WfSave {
    /// The workflow.
    pub id: String,
    /// The version it was loaded at; a different stored version fails the save
    /// (`StoreError::Stale`) and changes nothing.
    pub expect_version: i64,
    /// New status.
    pub status: String,
    /// New stage.
    pub stage: String,
    /// New state JSON.
    pub state: String,
    /// New pending calls JSON.
    pub pending: String,
    /// See [`WfRecord::retry_at`].
    pub retry_at: Option<i64>,
    /// The input consumed by this save, if any.
    pub input_done: Option<i64>,
    /// History to append (their `n` is assigned by the store).
    pub steps: Vec<WfStep>,
    /// Timers to set or move: (name, due unix ms).
    pub set_timers: Vec<(String, i64)>,
    /// Timers to cancel, by name.
    pub cancel_timers: Vec<String>,
    /// Tasks to open.
    pub open_tasks: Vec<NewTask>,
    /// Open or claimed tasks of this workflow to cancel, by kind (`*` = every one).
    pub cancel_tasks: Vec<String>,
    /// Documents to keep.
    pub documents: Vec<NewDocument>,
}

/// A workflow list query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WfQuery {
    /// Only of this entity.
    pub entity: Option<String>,
    /// Only with this status.
    pub status: Option<String>,
    /// Only of this kind.
    pub kind: Option<String>,
    /// At most this many (1..=1000).
    pub limit: u32,
    /// Only of shipments of this tenant.
    pub tenant: Option<String>,
}

/// A task list query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskQuery {
    /// Only with this status.
    pub status: Option<String>,
    /// Only of this workflow.
    pub workflow: Option<String>,
    /// Ids above this (paging).
    pub after: i64,
    /// At most this many (1..=1000).
    pub limit: u32,
    /// Only of shipments of this tenant.
    pub tenant: Option<String>,
}

/// What a person did with a task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskAction {
    /// Takes it (only an open task, or one the same person claimed).
    Claim {
        /// Who.
        by: String,
    },
    /// Resolves it with a decision, which is handed to the workflow as an input.
    Resolve {
        /// Who.
        by: String,
        /// JSON.
        decision: String,
        /// Why.
        reason: Option<String>,
    },
}

/// Why a task action was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskRefusal {
    /// No such task.
    NotFound,
    /// The task is not open (resolved, cancelled) or claimed by someone else.
    NotOpen(Box<WfTask>),
}

/// How many workflows, open tasks and pending timers there are (for `/metrics`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WfCounts {
    /// (kind, status, count).
    pub by_status: Vec<(String, String, i64)>,
    /// Tasks open or claimed.
    pub tasks_open: i64,
    /// Timers pending.
    pub timers: i64,
}

/// The input a resolved task hands to its workflow (JSON).
pub(crate) fn task_input(task: &WfTask, by: &str, decision: &str, reason: Option<&str>) -> String {
    let decision: serde_json::Value =
        serde_json::from_str(decision).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "task": task.id,
        "kind": task.kind,
        "by": by,
        "decision": decision,
        "reason": reason,
    })
    .to_string()
}
