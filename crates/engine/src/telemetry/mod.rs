//! Traces: W3C trace context ([`context`]), spans recorded by a [`Tracer`], and their
//! export over OTLP/HTTP with the JSON encoding ([`otlp`]).
//!
//! Place in the flow: beside it. Ingest, mapping, append, each delivery attempt and each
//! Odoo RPC is a span; one event's spans share the trace named by the event's
//! `traceparent` extension. A [`Tracer`] that is off (the default, no `[telemetry]`)
//! costs a branch: no id is drawn, nothing is allocated.
//! Never does: block the caller. Finished spans go to a bounded queue; when it is full
//! they are dropped and counted ([`Tracer::dropped`]).

pub mod context;
pub mod otlp;

pub use context::{TraceContext, TraceParentError};

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// What a span is to the trace (OTLP `SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside Waybill (mapping, the store commit).
    Internal = 1,
    /// A request Waybill answers (ingest).
    Server = 2,
    /// A request Waybill makes (a delivery, an Odoo RPC).
    Client = 3,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
}

impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        AttrValue::Str(v.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        AttrValue::Str(v)
    }
}
impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}
impl From<u32> for AttrValue {
    fn from(v: u32) -> Self {
        AttrValue::Int(i64::from(v))
    }
}
impl From<u16> for AttrValue {
    fn from(v: u16) -> Self {
        AttrValue::Int(i64::from(v))
    }
}
impl From<usize> for AttrValue {
    fn from(v: usize) -> Self {
        AttrValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

/// A finished span, as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    /// Its trace id, span id and flags.
    pub context: TraceContext,
    /// The parent span in the same trace (`None`: a root span).
    pub parent: Option<u64>,
    /// The W3C `tracestate` received with the trace, if any.
    pub trace_state: Option<String>,
    /// `ingest`, `mapping`, `append`, `deliver`, `odoo.rpc`.
    pub name: &'static str,
    /// Server, client or internal.
    pub kind: SpanKind,
    /// Start, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// End, nanoseconds since the Unix epoch.
    pub end_ns: u64,
    /// Attributes (no payload contents).
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// `Some(message)` when the work failed (OTLP status `ERROR`).
    pub error: Option<String>,
}

struct Shared {
    tx: mpsc::Sender<SpanRecord>,
    dropped: Arc<AtomicU64>,
}

/// Records spans; cheap to clone. [`Tracer::off`] (the default) records nothing.
#[derive(Clone, Default)]
pub struct Tracer(Option<Arc<Shared>>);

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Tracer(on)"
        } else {
            "Tracer(off)"
        })
    }
}

/// The receiving end of a [`Tracer`]'s queue: what [`otlp::run_exporter`] reads.
pub struct SpanQueue {
    rx: mpsc::Receiver<SpanRecord>,
    dropped: Arc<AtomicU64>,
}

impl SpanQueue {
    /// Waits for the next finished span (`None` once every tracer is gone).
    pub async fn recv(&mut self) -> Option<SpanRecord> {
        self.rx.recv().await
    }

    /// A finished span if one is waiting.
    pub fn try_recv(&mut self) -> Option<SpanRecord> {
        self.rx.try_recv().ok()
    }

    /// Spans dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Tracer {
    /// A tracer that records nothing.
    pub fn off() -> Tracer {
        Tracer(None)
    }

    /// A tracer whose finished spans wait in a queue of `capacity` spans.
    pub fn new(capacity: usize) -> (Tracer, SpanQueue) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let shared = Shared {
            tx,
            dropped: dropped.clone(),
        };
        (Tracer(Some(Arc::new(shared))), SpanQueue { rx, dropped })
    }

    /// Whether spans are recorded.
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Spans dropped so far because the export queue was full.
    pub fn dropped(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }

    /// Starts a span: a child of `parent` (same trace), or the root of a new trace.
    pub fn start(&self, name: &'static str, kind: SpanKind, parent: Option<&TraceContext>) -> Span {
        let Some(shared) = &self.0 else {
            return Span(None);
        };
        let (context, parent) = match parent {
            Some(p) => (p.new_child(), Some(p.span_id)),
            None => (TraceContext::new_root(), None),
        };
        Span(Some(Box::new(Open {
            shared: shared.clone(),
            rec: SpanRecord {
                context,
                parent,
                trace_state: None,
                name,
                kind,
                start_ns: now_ns(),
                end_ns: 0,
                attributes: Vec::new(),
                error: None,
            },
        })))
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

struct Open {
    shared: Arc<Shared>,
    rec: SpanRecord,
}

/// A span being recorded; it ends when dropped (or at [`Span::end`]) and goes to the
/// export queue. A span of a tracer that is off is empty and every method does nothing.
#[must_use = "a span ends when dropped"]
pub struct Span(Option<Box<Open>>);

impl Span {
    /// A span that records nothing.
    pub fn off() -> Span {
        Span(None)
    }

    /// Whether this span is recorded.
    pub fn is_recording(&self) -> bool {
        self.0.is_some()
    }

    /// Its trace context (what an outgoing request carries as `traceparent`), `None`
    /// when not recording.
    pub fn context(&self) -> Option<TraceContext> {
        self.0.as_ref().map(|o| o.rec.context)
    }

    /// A child span in the same trace, inheriting the `tracestate`.
    pub fn child(&self, name: &'static str, kind: SpanKind) -> Span {
        let Some(o) = &self.0 else {
            return Span(None);
        };
        let mut s = Tracer(Some(o.shared.clone())).start(name, kind, Some(&o.rec.context));
        if let Some(c) = s.0.as_mut() {
            c.rec.trace_state.clone_from(&o.rec.trace_state);
        }
        s
    }

    /// Sets the W3C `tracestate` this span's trace arrived with.
    pub fn set_trace_state(&mut self, state: &str) {
        if let Some(o) = self.0.as_mut() {
            o.rec.trace_state = Some(state.to_owned());
        }
    }

    /// Adds an attribute (nothing when not recording; the value is only built then:
    /// pass a cheap one or check [`Span::is_recording`] first).
    pub fn attr(&mut self, key: &'static str, value: impl Into<AttrValue>) {
        if let Some(o) = self.0.as_mut() {
            o.rec.attributes.push((key, value.into()));
        }
    }

    /// Marks the work as failed, with what happened (no payload, no secret).
    pub fn fail(&mut self, message: impl Into<String>) {
        if let Some(o) = self.0.as_mut() {
            o.rec.error = Some(message.into());
        }
    }

    /// Ends the span now.
    pub fn end(self) {}
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(mut o) = self.0.take() {
            o.rec.end_ns = now_ns().max(o.rec.start_ns);
            if o.shared.tx.try_send(o.rec).is_err() {
                o.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

tokio::task_local! {
    static CURRENT: (Tracer, Option<TraceContext>);
}

/// Runs `f` with `tracer` and `parent` as the current trace context of the task, so that
/// code deep inside (an Odoo RPC) can start a child span with [`current_span`]. With a
/// tracer that is off, runs `f` as it is.
pub async fn in_scope<F: Future>(tracer: Tracer, parent: Option<TraceContext>, f: F) -> F::Output {
    if tracer.enabled() {
        CURRENT.scope((tracer, parent), f).await
    } else {
        f.await
    }
}

/// A span under the task's current trace context ([`in_scope`]): a child of its span, or
/// the root of a new trace when the scope has none. Outside any scope (or with tracing
/// off): a span that records nothing.
pub fn current_span(name: &'static str, kind: SpanKind) -> Span {
    CURRENT
        .try_with(|(tracer, parent)| tracer.start(name, kind, parent.as_ref()))
        .unwrap_or(Span(None))
}

/// The `traceparent` extension of a stored CloudEvents body, when it has a valid one.
/// Reads the JSON without building the event (only this one string is kept).
pub fn event_traceparent(body: &str) -> Option<TraceContext> {
    event_tags(body).traceparent
}

/// What logs and spans say about a stored event, read from its CloudEvents body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTags {
    /// Its valid `traceparent`, if any.
    pub traceparent: Option<TraceContext>,
    /// Its `correlationid`, if any.
    pub correlationid: Option<String>,
    /// Its source name (`/sources/<name>` without the prefix).
    pub source: Option<String>,
}

/// Reads [`EventTags`] from a CloudEvents body (fields absent or of the wrong type are
/// left out; never fails).
pub fn event_tags(body: &str) -> EventTags {
    #[derive(serde::Deserialize)]
    struct Tags<'a> {
        #[serde(borrow, default)]
        traceparent: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        correlationid: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        source: Option<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_str::<Tags<'_>>(body) {
        Ok(t) => EventTags {
            traceparent: t.traceparent.and_then(|s| TraceContext::parse(&s).ok()),
            correlationid: t.correlationid.map(|c| c.into_owned()),
            source: t.source.map(|s| {
                s.strip_prefix("/sources/")
                    .map_or_else(|| s.to_string(), str::to_owned)
            }),
        },
        Err(_) => EventTags::default(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_tracer_that_is_off_records_nothing() {
        let t = Tracer::off();
        let mut s = t.start("ingest", SpanKind::Server, None);
        assert!(!s.is_recording());
        assert!(s.context().is_none());
        s.attr("k", "v");
        assert!(!s.child("mapping", SpanKind::Internal).is_recording());
    }

    #[test]
    fn spans_are_parented_and_queued_when_they_end() {
        let (t, mut q) = Tracer::new(16);
        let incoming =
            TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        let mut ingest = t.start("ingest", SpanKind::Server, Some(&incoming));
        ingest.set_trace_state("congo=t61rcWkgMzE");
        let mapping = ingest.child("mapping", SpanKind::Internal);
        let (ic, mc) = (ingest.context().unwrap(), mapping.context().unwrap());
        mapping.end();
        ingest.attr("waybill.source", "carrier");
        ingest.end();
        let m = q.try_recv().unwrap();
        let i = q.try_recv().unwrap();
        assert_eq!(i.context, ic);
        assert_eq!(i.context.trace_id, incoming.trace_id);
        assert_eq!(i.parent, Some(incoming.span_id));
        assert_eq!(m.parent, Some(ic.span_id));
        assert_eq!(m.context, mc);
        assert_eq!(m.trace_state.as_deref(), Some("congo=t61rcWkgMzE"));
        assert!(i.end_ns >= i.start_ns);
        assert_eq!(
            i.attributes,
            vec![("waybill.source", AttrValue::from("carrier"))]
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (t, q) = Tracer::new(1);
        for _ in 0..3 {
            t.start("append", SpanKind::Internal, None).end();
        }
        assert_eq!(t.dropped(), 2);
        assert_eq!(q.dropped(), 2);
    }

    #[tokio::test]
    async fn the_current_scope_parents_spans_started_deep_inside() {
        let (t, mut q) = Tracer::new(16);
        assert!(!current_span("odoo.rpc", SpanKind::Client).is_recording());
        let parent = TraceContext::new_root();
        in_scope(t.clone(), Some(parent), async {
            current_span("odoo.rpc", SpanKind::Client).end();
        })
        .await;
        let s = q.try_recv().unwrap();
        assert_eq!(
            (s.context.trace_id, s.parent),
            (parent.trace_id, Some(parent.span_id))
        );
        in_scope(t, None, async {
            current_span("odoo.rpc", SpanKind::Client).end();
        })
        .await;
        assert_eq!(q.try_recv().unwrap().parent, None, "a root span");
    }

    #[test]
    fn tags_are_read_from_an_event_body() {
        let body = r#"{"id":"e1","source":"/sources/carrier","correlationid":"order-7",
            "traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":{"x":[1,2]}}"#;
        let t = event_tags(body);
        assert_eq!(t.source.as_deref(), Some("carrier"));
        assert_eq!(t.correlationid.as_deref(), Some("order-7"));
        assert_eq!(
            t.traceparent.unwrap().to_string(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(event_tags("not json"), EventTags::default());
        assert_eq!(event_traceparent(r#"{"traceparent":"00-zz"}"#), None);
    }
}
