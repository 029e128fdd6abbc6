//! Durable workflows: orchestration where order matters (order-to-ship today), driven by
//! canonical events, the answers of the steps they call, durable timers and people's
//! decisions (workbench tasks).
//!
//! A workflow is a typed state machine ([`Machine`]) over one entity (a shipment). It
//! never does I/O itself: given an input or a step's answer it changes its state and asks
//! for [`Effects`] — calls to partners through the [`ports`], timers, tasks, documents.
//! The [`runtime`] makes the calls one at a time and saves the state, the queue of
//! calls still to make and the step's history after each one, in one store transaction.
//! A crash between a call and its save makes the call again on restart, so every call
//! must be safe to repeat: bookings are looked up by their reference first
//! ([`ports::Carriers::find`]), ERP writes carry markers, emitted events carry
//! idempotency keys.

pub mod delivery_to_invoice;
pub mod exception_to_case;
pub mod order_to_ship;
pub mod ports;
pub mod runtime;
pub mod sink;

use ports::{Booked, BookingRequest, PortError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use waybill_store::flow::{NewDocument, NewTask};

/// Serde default of the `enabled` switches.
pub(crate) fn yes() -> bool {
    true
}

/// What a machine knows of where it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ctx {
    /// The workflow's entity: the canonical shipment key.
    pub entity: String,
    /// The shipment's references (kind, value) from every lane, when the input is an
    /// event (empty otherwise).
    pub refs: Vec<(String, String)>,
}

impl Ctx {
    /// The first reference of a kind.
    pub fn reference(&self, kind: &str) -> Option<&str> {
        self.refs
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, v)| v.as_str())
    }
}

/// What drives a workflow.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A canonical event of its entity (the CloudEvent as JSON).
    Event(Value),
    /// A timer it set fired.
    Timer(String),
    /// A person resolved one of its tasks.
    Task {
        /// The task's kind.
        kind: String,
        /// The decision (JSON object).
        decision: Value,
        /// Who.
        by: String,
    },
    /// An operator cancelled it (`POST /v1/workflows/{id}/cancel`).
    Cancel {
        /// Who.
        by: String,
    },
    /// An operator asked it to try again from where it stopped.
    Retry {
        /// Who.
        by: String,
    },
}

/// A call to a partner that a machine asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// [`ports::Erp::order_context`].
    ReadOrder {
        /// Picking id.
        picking_id: i64,
    },
    /// [`ports::Carriers::find`].
    FindBooking {
        /// Reference.
        reference: String,
    },
    /// [`ports::Carriers::quote`].
    Quote {
        /// Request.
        request: Box<BookingRequest>,
    },
    /// [`ports::Carriers::buy`]. The label comes back as a kept document named
    /// `label:<booking id>`.
    Buy {
        /// Draft.
        booking_id: String,
        /// Quote.
        quote_id: String,
        /// Carrier (for the history).
        carrier: String,
    },
    /// [`ports::Carriers::void`].
    Void {
        /// Booking.
        booking_id: String,
    },
    /// [`ports::Erp::record_booking`] (the label read from the kept document).
    RecordBooking {
        /// Picking.
        picking_id: i64,
        /// Booking.
        booked: Box<Booked>,
        /// Kept document holding the label, if any.
        label: Option<String>,
        /// Once-marker.
        marker: String,
    },
    /// [`ports::Erp::invoice`].
    Invoice {
        /// Picking.
        picking_id: i64,
        /// Once-marker.
        marker: String,
    },
    /// [`ports::Erp::record_void`].
    RecordVoid {
        /// Picking.
        picking_id: i64,
        /// The voided booking.
        booked: Box<Booked>,
        /// Once-marker.
        marker: String,
        /// Note.
        body: String,
    },
    /// [`ports::Erp::close_activity`].
    CloseActivity {
        /// Picking.
        picking_id: i64,
        /// The activity's marker.
        marker: String,
    },
    /// [`ports::Erp::note`].
    Note {
        /// Picking.
        picking_id: i64,
        /// Once-marker.
        marker: String,
        /// Text.
        body: String,
    },
    /// [`ports::Erp::activity`].
    Activity {
        /// Picking.
        picking_id: i64,
        /// Once-marker.
        marker: String,
        /// Summary.
        summary: String,
        /// Note.
        note: String,
    },
    /// Emits `task.opened` / `task.resolved` for the workflow's tasks (queued by the
    /// runtime in the save that opens or resolves one; repeats are duplicates).
    AnnounceTasks,
    /// Appends canonical events (drafts) to the log, under an idempotency key.
    Emit {
        /// Idempotency key of the payload.
        key: String,
        /// Event drafts (JSON objects).
        drafts: Vec<Value>,
    },
}

impl Call {
    /// Step name, for the history and retry policies.
    pub fn name(&self) -> &'static str {
        match self {
            Call::ReadOrder { .. } => "read_order",
            Call::FindBooking { .. } => "find_booking",
            Call::Quote { .. } => "quote",
            Call::Buy { .. } => "buy",
            Call::Void { .. } => "void",
            Call::RecordBooking { .. } => "record_booking",
            Call::Invoice { .. } => "invoice",
            Call::RecordVoid { .. } => "record_void",
            Call::CloseActivity { .. } => "close_activity",
            Call::Note { .. } => "note",
            Call::Activity { .. } => "activity",
            Call::AnnounceTasks => "announce_tasks",
            Call::Emit { .. } => "emit",
        }
    }
}

/// A call's answer as the machine sees it: the port's result as JSON, or its error after
/// the step's retries ran out (or at once for a refusal).
pub type Answer = Result<Value, PortError>;

/// What a machine asks for after an input or an answer.
#[derive(Debug, Default)]
pub struct Effects {
    /// Calls to make, in order, before anything else.
    pub calls: Vec<Call>,
    /// Timers to set (name, delay from now); setting an existing one moves it.
    pub set_timers: Vec<(String, Duration)>,
    /// Timers to cancel.
    pub cancel_timers: Vec<String>,
    /// Tasks to open.
    pub open_tasks: Vec<NewTask>,
    /// Open tasks to cancel, by kind (`*`: all).
    pub cancel_tasks: Vec<String>,
    /// Documents to keep.
    pub documents: Vec<NewDocument>,
    /// Replaces the calls still queued (a cancellation drops what was planned).
    pub drop_queued: bool,
}

impl Effects {
    /// Queues a call.
    pub fn call(&mut self, c: Call) {
        self.calls.push(c);
    }
}

/// Where a workflow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Working: calls queued or being made.
    Running,
    /// Waiting for an event, a timer or a person.
    Waiting,
    /// Finished.
    Done,
    /// Stopped by a failure nobody resolved (a task says what).
    Failed,
    /// Cancelled (compensations done).
    Cancelled,
}

impl Status {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Waiting => "waiting",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// A typed workflow.
pub trait Machine: Send + Sync + 'static {
    /// Its typed state (`Default` is the state before the first input).
    type State: Serialize + DeserializeOwned + Default + Send;
    /// Stored kind (`order_to_ship`).
    fn kind(&self) -> &'static str;
    /// Event types that drive it.
    fn event_types(&self) -> &'static [&'static str];
    /// Applies an input.
    fn on_input(&self, cx: &Ctx, st: &mut Self::State, input: &Input, fx: &mut Effects);
    /// Applies the answer of a call it asked for.
    fn on_answer(
        &self,
        cx: &Ctx,
        st: &mut Self::State,
        call: &Call,
        answer: &Answer,
        fx: &mut Effects,
    );
    /// Its status and stage name.
    fn status(&self, st: &Self::State) -> (Status, String);
}

/// A machine with its state as JSON, for the runtime.
pub trait Erased: Send + Sync + 'static {
    /// See [`Machine::kind`].
    fn kind(&self) -> &'static str;
    /// See [`Machine::event_types`].
    fn event_types(&self) -> &'static [&'static str];
    /// [`Machine::on_input`] over JSON state; returns the new state, status and stage.
    fn input(
        &self,
        cx: &Ctx,
        state: &str,
        input: &Input,
        fx: &mut Effects,
    ) -> Result<Stepped, String>;
    /// [`Machine::on_answer`] over JSON state.
    fn answer(
        &self,
        cx: &Ctx,
        state: &str,
        call: &Call,
        answer: &Answer,
        fx: &mut Effects,
    ) -> Result<Stepped, String>;
}

/// A machine's state after a step.
#[derive(Debug, Clone)]
pub struct Stepped {
    /// JSON.
    pub state: String,
    /// Status.
    pub status: Status,
    /// Stage.
    pub stage: String,
}

fn load<S: DeserializeOwned + Default>(state: &str) -> Result<S, String> {
    if state == "null" || state.is_empty() {
        return Ok(S::default());
    }
    serde_json::from_str(state).map_err(|e| format!("stored workflow state: {e}"))
}

impl<M: Machine> Erased for M {
    fn kind(&self) -> &'static str {
        Machine::kind(self)
    }

    fn event_types(&self) -> &'static [&'static str] {
        Machine::event_types(self)
    }

    fn input(
        &self,
        cx: &Ctx,
        state: &str,
        input: &Input,
        fx: &mut Effects,
    ) -> Result<Stepped, String> {
        let mut st: M::State = load(state)?;
        self.on_input(cx, &mut st, input, fx);
        self.stepped(&st)
    }

    fn answer(
        &self,
        cx: &Ctx,
        state: &str,
        call: &Call,
        answer: &Answer,
        fx: &mut Effects,
    ) -> Result<Stepped, String> {
        let mut st: M::State = load(state)?;
        self.on_answer(cx, &mut st, call, answer, fx);
        self.stepped(&st)
    }
}

trait SteppedOf: Machine {
    fn stepped(&self, st: &Self::State) -> Result<Stepped, String> {
        let (status, stage) = self.status(st);
        Ok(Stepped {
            state: serde_json::to_string(st).map_err(|e| e.to_string())?,
            status,
            stage,
        })
    }
}
impl<M: Machine> SteppedOf for M {}
