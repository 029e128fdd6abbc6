//! DELIVER: one dispatcher task per sink. It reads the sink's pending outbox rows in id
//! order, keeps them in per-shipment lanes, and sends only the head of each lane, so one
//! shipment's events reach a sink in log order while different shipments go in parallel
//! (up to the sink's concurrency). Failures are retried on the sink's schedule; after the
//! budget they go to the dead-letter queue and the lane moves on. A circuit breaker stops
//! sending to a sink that keeps failing; a 410 pauses the sink (its events wait).
//!
//! Every row is read from the store once (a cursor on the outbox id); results are written
//! back in batches by a separate task, so a slow commit never stalls sending. After a
//! crash, rows whose result was not yet written are sent again: delivery is at least once,
//! and the stable `webhook-id` lets receivers drop the repeat.
//!
//! A sink is handed a [`Delivery`] per event, never the store's row. All time is read
//! from an injected [`Clock`]: the wall clock for the due times kept in the store, tokio's
//! clock for timers, so schedules can be tested under paused time.

use crate::circuit::{Circuit, CircuitConfig, CircuitState};
use crate::clock::Clock;
use crate::lease::{Held, Leases};
use crate::limit::TokenBucket;
use crate::metrics::Metrics;
use crate::partner::{BatchOutcome, Batching, Delivery, DeliveryError, Outbound};
use crate::retry::{Decision, RetryPolicy};
use crate::telemetry::{self, Span, SpanKind, Tracer};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use waybill_store::{DeliveryUpdate, OutboxItem, Store};

/// A sink ready to receive deliveries.
pub struct SinkRuntime {
    /// Sink name (config key, metrics label).
    pub name: String,
    /// The connector that delivers.
    pub outbound: Arc<dyn Outbound>,
    /// Retry schedule.
    pub retry: RetryPolicy,
    /// Circuit breaker.
    pub circuit: CircuitConfig,
    /// Most deliveries in flight at once.
    pub concurrency: usize,
    /// How long a 410 Gone pauses the sink before probing again.
    pub pause_on_gone: Duration,
    /// Data minimisation: the personal keys whose values are masked in a `confidential`
    /// event before it leaves for a subscription whose consumer may not have them; `None`
    /// delivers every event whole (the hub's own workflows).
    pub minimise: Option<Arc<waybill_model::privacy::Personal>>,
    /// Whether a subscription that does not say (its `personal_data` unset) gets personal
    /// values in clear: `[privacy] personal_data_sinks` names this sink.
    pub personal_data: bool,
}

/// Which of a sink's subscriptions get personal values in clear: the sink's default, but
/// for the subscriptions whose own setting differs from it. Read again from the
/// subscriptions in force whenever they change (an API change, here or in another
/// instance), so that the next delivery follows the new setting.
#[derive(Debug)]
struct PersonalData {
    /// The sink's default (`[privacy] personal_data_sinks`).
    default: bool,
    /// The sink's subscriptions whose `personal_data` is not the default.
    exceptions: std::collections::HashSet<String>,
}

impl PersonalData {
    /// The setting of `sink`'s subscriptions among `subs` (a subscription no longer in
    /// force, or now routing to another sink, has the sink's default).
    fn of(sink: &SinkRuntime, subs: &[waybill_store::Subscription]) -> Self {
        let default = sink.personal_data;
        PersonalData {
            default,
            exceptions: subs
                .iter()
                .filter(|s| s.sink == sink.name && s.personal_data.is_some_and(|p| p != default))
                .map(|s| s.name.clone())
                .collect(),
        }
    }

    /// Whether the consumer of `subscription` may have personal values (no allocation;
    /// with no exception, no hashing either).
    fn allows(&self, subscription: &str) -> bool {
        if self.exceptions.is_empty() {
            return self.default;
        }
        self.default != self.exceptions.contains(subscription)
    }
}

/// Buffering limits of a dispatcher.
#[derive(Debug, Clone, Copy)]
pub struct DispatchLimits {
    /// Most outbox rows held in memory per sink.
    pub buffer: usize,
    /// Rows read per store query.
    pub page: usize,
}

impl Default for DispatchLimits {
    fn default() -> Self {
        DispatchLimits {
            buffer: 20_000,
            page: 2_000,
        }
    }
}

/// Starts one dispatcher per sink, scheduling by `clock` ([`crate::clock::SystemClock`]
/// in production), each delivering every lane (one instance). Each stops when `shutdown`
/// becomes true, after its in-flight deliveries finish and their results are written.
pub fn spawn_dispatchers(
    store: Store,
    sinks: Vec<SinkRuntime>,
    metrics: Arc<Metrics>,
    limits: DispatchLimits,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    spawn_leased_dispatchers(
        store,
        sinks,
        metrics,
        limits,
        clock,
        Leases::all(),
        shutdown,
    )
}

/// The same, each dispatcher delivering only the lanes of the buckets of its sink that
/// `leases` holds. When they change, it lets its deliveries in flight finish, forgets
/// what it had read and reads the buckets it now holds from the start.
pub fn spawn_leased_dispatchers(
    store: Store,
    sinks: Vec<SinkRuntime>,
    metrics: Arc<Metrics>,
    limits: DispatchLimits,
    clock: Arc<dyn Clock>,
    leases: Leases,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    spawn_traced_dispatchers(
        store,
        sinks,
        metrics,
        limits,
        clock,
        leases,
        Tracer::off(),
        shutdown,
    )
}

/// [`spawn_leased_dispatchers`], recording a `deliver` span per event and attempt with
/// `tracer` (a child of the event's `traceparent`; the attempt's request carries it).
#[allow(clippy::too_many_arguments)]
pub fn spawn_traced_dispatchers(
    store: Store,
    sinks: Vec<SinkRuntime>,
    metrics: Arc<Metrics>,
    limits: DispatchLimits,
    clock: Arc<dyn Clock>,
    leases: Leases,
    tracer: Tracer,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    sinks
        .into_iter()
        .map(|sink| {
            let mut d = Dispatcher::new(
                store.clone(),
                sink,
                metrics.clone(),
                limits,
                clock.clone(),
                leases.subscribe(),
            );
            d.tracer = tracer.clone();
            tokio::spawn(d.run(shutdown.clone()))
        })
        .collect()
}

struct Lane {
    queue: VecDeque<OutboxItem>,
}

/// (id of the lane's head when sent, shipment, what the delivery achieved).
type Outcome = (i64, String, BatchOutcome, Attempt);

/// What the store keeps of one attempt besides its outcome.
struct Attempt {
    /// When it was sent (wall clock, unix ms).
    at_ms: i64,
    /// From sending to the answer, microseconds.
    duration_us: u64,
    /// The HTTP status each delivery of the attempt got, if any (in batch order).
    statuses: Vec<Option<u16>>,
}

impl Attempt {
    /// The HTTP status of the batch's `i`-th delivery.
    fn status(&self, i: usize) -> Option<u16> {
        self.statuses.get(i).copied().flatten()
    }
}

struct Dispatcher {
    store: Store,
    sink: SinkRuntime,
    metrics: Arc<Metrics>,
    limits: DispatchLimits,
    clock: Arc<dyn Clock>,
    batching: Batching,
    circuit: Circuit,
    lanes: HashMap<String, Lane>,
    ready: BinaryHeap<Reverse<(Instant, i64, String)>>,
    buffered: usize,
    cursor: i64,
    in_flight: usize,
    updates: Vec<DeliveryUpdate>,
    /// What this instance holds, as it changes.
    leases: watch::Receiver<Arc<Held>>,
    /// The buckets of this sink delivered now.
    mask: i64,
    /// Buckets to deliver once the deliveries in flight have finished.
    next_mask: Option<i64>,
    /// Records the `deliver` spans (off unless `[telemetry]`).
    tracer: Tracer,
    /// The sinks an operator paused: while this one is, nothing new is sent.
    paused: watch::Receiver<Arc<std::collections::BTreeSet<String>>>,
    /// The sink's request rate ([`Outbound::rate_limit`]): a request takes a token.
    rate: Option<TokenBucket>,
    /// Which subscriptions get personal values in clear (with [`SinkRuntime::minimise`]).
    personal_data: PersonalData,
    /// Changes when the subscriptions in force do: [`Dispatcher::personal_data`] is read
    /// again before the next delivery.
    config: watch::Receiver<i64>,
}

/// The event `body` with its data's personal values masked in its text (`None`: not an
/// object, left as it is, which the sink then rejects or forwards as stored).
fn minimised(body: &str, p: &waybill_model::privacy::Personal) -> Option<Arc<str>> {
    p.mask_event_data(body).map(Arc::from)
}

/// When a row is due, on the monotonic clock: `now` plus what remains until its stored
/// due time (`wall_now_ms` is the wall clock read at `now`).
fn due_at(item: &OutboxItem, now: Instant, wall_now_ms: i64) -> Instant {
    match u64::try_from(item.next_attempt_at_ms.saturating_sub(wall_now_ms)) {
        Ok(wait) if wait > 0 => now + Duration::from_millis(wait),
        _ => now,
    }
}

/// One `deliver` span per event of an attempt, each a child of its event's
/// `traceparent`; each delivery's [`Delivery::trace`] is its span (tracing off: the
/// event's own `traceparent`, so the request still carries the trace on).
fn deliver_spans(tracer: &Tracer, batch: &mut [Delivery]) -> Vec<Span> {
    batch
        .iter_mut()
        .map(|d| {
            let parent = telemetry::event_traceparent(d.body());
            if !tracer.enabled() {
                d.trace = parent;
                return Span::off();
            }
            let mut span = tracer.start("deliver", SpanKind::Client, parent.as_ref());
            span.attr("waybill.sink", d.sink.as_str());
            span.attr("waybill.subscription", d.subscription.as_str());
            span.attr("waybill.event_id", d.event_id.as_str());
            span.attr("waybill.shipment", d.shipment.as_str());
            span.attr("waybill.attempt", d.attempt);
            d.trace = span.context();
            span
        })
        .collect()
}

/// Ends the spans of [`deliver_spans`] with what the attempt achieved: the delivered
/// prefix succeeded, the next event failed with the error, the rest were not delivered.
fn end_deliver_spans(spans: Vec<Span>, batch: &[Delivery], outcome: &BatchOutcome) {
    for (i, (mut span, d)) in spans.into_iter().zip(batch).enumerate() {
        if !span.is_recording() {
            continue;
        }
        if let Some(status) = d.status() {
            span.attr("http.response.status_code", status);
        }
        if i >= outcome.delivered {
            match (&outcome.error, i == outcome.delivered) {
                (Some(e), true) => {
                    span.attr("waybill.error_code", e.code.as_str());
                    span.fail(e.message.clone());
                }
                _ => span.fail("not delivered: an earlier event of the batch was not"),
            }
        }
    }
}

/// What the sink sees of a row: the event, not the storage — its personal values
/// masked (`minimise`: the keys) when the row's subscription may not have them and the
/// event is `confidential`.
fn delivery(item: &OutboxItem, minimise: Option<&waybill_model::privacy::Personal>) -> Delivery {
    let body = match minimise {
        Some(p)
            if item
                .body
                .contains("\"dataclassification\":\"confidential\"") =>
        {
            minimised(&item.body, p).unwrap_or_else(|| item.body.clone())
        }
        _ => item.body.clone(),
    };
    let mut d = Delivery::new(item.event_id.clone(), item.shipment.clone(), body);
    d.event_type.clone_from(&item.event_type);
    d.subscription.clone_from(&item.subscription);
    d.sink.clone_from(&item.sink);
    d.attempt = item.attempts.saturating_add(1);
    d
}

impl Dispatcher {
    fn new(
        store: Store,
        sink: SinkRuntime,
        metrics: Arc<Metrics>,
        limits: DispatchLimits,
        clock: Arc<dyn Clock>,
        mut leases: watch::Receiver<Arc<Held>>,
    ) -> Self {
        let circuit = Circuit::new(sink.circuit);
        let batching = sink.outbound.batching();
        let mask = leases.borrow_and_update().bucket_mask(&sink.name);
        let paused = metrics.controls.paused();
        let rate = sink
            .outbound
            .rate_limit()
            .map(|l| TokenBucket::new(l, clock.instant()));
        // Seen first, read after: a change in between is read again before delivering.
        let mut config = store.config_signal();
        config.borrow_and_update();
        let personal_data = PersonalData::of(&sink, &store.subscriptions_in_force());
        Dispatcher {
            rate,
            personal_data,
            config,
            tracer: Tracer::off(),
            paused,
            leases,
            mask,
            next_mask: None,
            batching,
            store,
            sink,
            metrics,
            limits,
            clock,
            circuit,
            lanes: HashMap::new(),
            ready: BinaryHeap::new(),
            buffered: 0,
            cursor: 0,
            in_flight: 0,
            updates: Vec::new(),
        }
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let (res_tx, mut res_rx) = mpsc::unbounded_channel::<Outcome>();
        let (upd_tx, upd_rx) = mpsc::unbounded_channel::<Vec<DeliveryUpdate>>();
        let flusher = tokio::spawn(flush(self.store.clone(), self.sink.name.clone(), upd_rx));
        let mut signal = self.store.outbox_signal();
        let mut more = true;
        let mut stopping = *shutdown.borrow();
        let mut leases_open = true;
        loop {
            if stopping && self.in_flight == 0 {
                break;
            }
            if let Some(mask) = self.next_mask {
                if self.in_flight == 0 {
                    self.take_buckets(mask);
                    more = true;
                }
            }
            if !stopping && more && self.buffered < self.limits.buffer {
                more = self.load().await;
            }
            let paused = self.paused.borrow_and_update().contains(&self.sink.name);
            if !stopping && self.next_mask.is_none() && !paused {
                self.dispatch(&res_tx);
            }
            self.publish_circuit();
            if !self.updates.is_empty() {
                let _ = upd_tx.send(std::mem::take(&mut self.updates));
            }
            let wake = self.next_wake();
            tokio::select! {
                Some(outcome) = res_rx.recv() => {
                    self.complete(outcome);
                    while let Ok(o) = res_rx.try_recv() {
                        self.complete(o);
                    }
                }
                changed = signal.changed(), if !stopping => {
                    if changed.is_ok() { more = true; }
                }
                _ = sleep_until(wake), if wake.is_some() && !stopping => {}
                changed = self.leases.changed(), if !stopping && leases_open => {
                    // A closed channel keeps its last value: nothing changes any more.
                    leases_open = changed.is_ok();
                    if leases_open {
                        let mask = self.leases.borrow_and_update().bucket_mask(&self.sink.name);
                        self.next_mask = (mask != self.mask).then_some(mask);
                    }
                }
                _ = shutdown.changed(), if !stopping => {
                    stopping = *shutdown.borrow();
                }
                // Paused or resumed: the loop looks again.
                _ = self.paused.changed(), if !stopping => {}
            }
        }
        if !self.updates.is_empty() {
            let _ = upd_tx.send(std::mem::take(&mut self.updates));
        }
        drop(upd_tx);
        let _ = flusher.await;
    }

    /// Delivers the buckets of `mask` from now on: what was read is forgotten (nothing
    /// is in flight) and the held buckets are read again from the start.
    fn take_buckets(&mut self, mask: i64) {
        tracing::info!(sink = %self.sink.name, buckets = mask.count_ones(), "delivery buckets changed");
        self.lanes.clear();
        self.ready.clear();
        self.buffered = 0;
        self.cursor = 0;
        self.mask = mask;
        self.next_mask = None;
    }

    /// Reads the next page of pending rows; returns whether there may be more.
    async fn load(&mut self) -> bool {
        if self.mask == 0 || self.next_mask.is_some() {
            return false;
        }
        let room = (self.limits.buffer - self.buffered).min(self.limits.page);
        let rows = match self
            .store
            .pending_outbox_in(&self.sink.name, self.cursor, room, self.mask)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(sink = %self.sink.name, error = %e, "cannot read outbox; will retry");
                tokio::time::sleep(Duration::from_millis(200)).await;
                return true;
            }
        };
        let full = rows.len() == room;
        let (now, wall) = (self.clock.instant(), self.clock.now_ms());
        for item in rows {
            self.cursor = self.cursor.max(item.id);
            self.buffered += 1;
            let lane = self
                .lanes
                .entry(item.shipment.clone())
                .or_insert_with(|| Lane {
                    queue: VecDeque::new(),
                });
            if lane.queue.is_empty() {
                // A new lane waits the sink's coalescing window for its followers.
                self.ready.push(Reverse((
                    due_at(&item, now, wall).max(now + self.batching.window),
                    item.id,
                    item.shipment.clone(),
                )));
            }
            lane.queue.push_back(item);
        }
        full
    }

    /// Reads which subscriptions get personal values again when the subscriptions in
    /// force changed since (a cheap check when they did not).
    fn follow_subscriptions(&mut self) {
        if !self.config.has_changed().unwrap_or(false) {
            return;
        }
        self.config.borrow_and_update();
        if self.sink.minimise.is_some() {
            self.personal_data = PersonalData::of(&self.sink, &self.store.subscriptions_in_force());
        }
    }

    fn dispatch(&mut self, res_tx: &mpsc::UnboundedSender<Outcome>) {
        self.follow_subscriptions();
        let (now, wall) = (self.clock.instant(), self.clock.now_ms());
        while self.in_flight < self.sink.concurrency.max(1) {
            let Some(Reverse((due, _, _))) = self.ready.peek() else {
                break;
            };
            // A sink with a request rate waits for a token (the loop sleeps until one is
            // due, see `next_wake`); a lane's head keeps its place meanwhile.
            let token_due = self
                .rate
                .as_ref()
                .is_some_and(|b| b.wait(now) > Duration::ZERO);
            if *due > now || token_due || !self.circuit.try_acquire(now) {
                break;
            }
            let Some(Reverse((_, id, shipment))) = self.ready.pop() else {
                break;
            };
            let Some(lane) = self.lanes.get(&shipment) else {
                continue;
            };
            // The head, and behind it (for a coalescing sink) the events already due, each
            // minimised for its own subscription.
            let (minimise, personal_data) = (self.sink.minimise.as_deref(), &self.personal_data);
            let mut batch: Vec<Delivery> = lane
                .queue
                .iter()
                .enumerate()
                .take_while(|(i, it)| *i == 0 || due_at(it, now, wall) <= now)
                .take(self.batching.max.max(1))
                .map(|(_, it)| {
                    let mask = minimise.filter(|_| !personal_data.allows(&it.subscription));
                    delivery(it, mask)
                })
                .collect();
            if batch.is_empty() {
                continue;
            }
            if let Some(b) = &mut self.rate {
                // One was there just above, at the same `now`.
                let _ = b.try_take(now);
            }
            self.in_flight += 1;
            let out = self.sink.outbound.clone();
            let tx = res_tx.clone();
            let sent = batch.len();
            let store = out.wants_shipment_refs().then(|| self.store.clone());
            let lane_key = shipment.clone();
            let tracer = self.tracer.clone();
            let at_ms = self.clock.now_ms();
            let delivery = tokio::spawn(async move {
                if let Some(store) = store {
                    // Resolved now, not at append time: a link made since (a tracking
                    // number bound to a picking) helps this attempt.
                    match store.resolved_refs(&lane_key).await {
                        Ok(refs) => batch
                            .iter_mut()
                            .for_each(|d| d.shipment_refs.clone_from(&refs)),
                        Err(e) => {
                            tracing::warn!(error = %e, shipment = %lane_key, "cannot read the shipment's identifiers; delivering with the event's own")
                        }
                    }
                }
                let spans = deliver_spans(&tracer, &mut batch);
                // An RPC deep in the connector (Odoo) is a child of the first event's span.
                let scope = spans.first().and_then(Span::context);
                let started = std::time::Instant::now();
                let outcome = telemetry::in_scope(tracer, scope, async {
                    if batch.len() == 1 {
                        match out.deliver(&batch[0]).await {
                            Ok(()) => BatchOutcome {
                                delivered: 1,
                                error: None,
                            },
                            Err(e) => BatchOutcome {
                                delivered: 0,
                                error: Some(e),
                            },
                        }
                    } else {
                        out.deliver_batch(&batch).await
                    }
                })
                .await;
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                end_deliver_spans(spans, &batch, &outcome);
                let statuses: Vec<Option<u16>> = batch.iter().map(Delivery::status).collect();
                (outcome, statuses, took)
            });
            tokio::spawn(async move {
                // A connector that panics fails this attempt; the lane goes on.
                let (mut r, statuses, duration_us) = delivery.await.unwrap_or_else(|e| {
                    let failed = BatchOutcome {
                        delivered: 0,
                        error: Some(DeliveryError::new(
                            crate::codes::DELIVERY_PANICKED,
                            waybill_model::FailureKind::Retryable,
                            format!("delivery task failed: {e}"),
                        )),
                    };
                    (failed, Vec::new(), 0)
                });
                r.delivered = r.delivered.min(sent);
                let attempt = Attempt {
                    at_ms,
                    duration_us,
                    statuses,
                };
                let _ = tx.send((id, shipment, r, attempt));
            });
        }
    }

    fn complete(&mut self, (id, shipment, outcome, attempt): Outcome) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let (now, wall) = (self.clock.instant(), self.clock.now_ms());
        let name = self.sink.name.clone();
        let Some(lane) = self.lanes.get_mut(&shipment) else {
            return;
        };
        if lane.queue.front().map(|h| h.id) != Some(id) {
            return;
        }
        // The delivered prefix.
        for i in 0..outcome.delivered {
            let Some(done) = lane.queue.pop_front() else {
                break;
            };
            tracing::debug!(sink = %name, event_id = %done.event_id, shipment = %shipment, attempts = done.attempts + 1, "event delivered");
            self.buffered = self.buffered.saturating_sub(1);
            self.circuit.on_success();
            self.metrics.deliveries.inc(&[&name, "delivered"]);
            self.updates.push(DeliveryUpdate::Delivered {
                id: done.id,
                attempts: done.attempts + 1,
                at_ms: attempt.at_ms,
                status: attempt.status(i),
                duration_us: attempt.duration_us,
            });
        }
        self.metrics
            .controls
            .delivered(&name, outcome.delivered as u64);
        let mut finished = true;
        if let Some(e) = outcome.error {
            self.metrics.controls.failed(&name, &e.message);
            let Some(head) = lane.queue.front_mut() else {
                return;
            };
            let id = head.id;
            let attempts = head.attempts + 1;
            let name = name.as_str();
            if e.gone {
                tracing::error!(sink = name, event_id = %head.event_id, shipment = %shipment, error = %e.message, "sink answered 410 Gone: paused, events wait");
                self.metrics.deliveries.inc(&[name, "gone"]);
                self.circuit.trip(now, self.sink.pause_on_gone);
                self.ready.push(Reverse((now, id, shipment.clone())));
                finished = false;
            } else {
                if e.kind.should_retry() && !e.sink_up {
                    self.circuit.on_failure(now);
                } else {
                    // The sink answered: it is up, only this event is refused or early.
                    self.circuit.on_success();
                }
                match self
                    .sink
                    .retry
                    .decide(attempts, e.kind, e.retry_after, rand::random::<f64>())
                {
                    Decision::RetryAfter(delay) => {
                        self.metrics.deliveries.inc(&[name, "retry"]);
                        let tags = telemetry::event_tags(&head.body);
                        tracing::warn!(sink = name, outbox_id = id, event_id = %head.event_id, shipment = %shipment, source = tags.source.as_deref(), correlationid = tags.correlationid.as_deref(), trace_id = tags.traceparent.map(|t| t.trace_id_hex()), attempts, kind = e.kind.as_str(), error = %e.message, delay_ms = delay.as_millis() as u64, "delivery failed; will retry");
                        let next = wall
                            .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                        head.attempts = attempts;
                        head.next_attempt_at_ms = next;
                        self.updates.push(DeliveryUpdate::Retry {
                            id,
                            attempts,
                            next_attempt_at_ms: next,
                            error: e.message,
                            at_ms: attempt.at_ms,
                            status: attempt.status(outcome.delivered),
                            duration_us: attempt.duration_us,
                        });
                        self.ready
                            .push(Reverse((now + delay, id, shipment.clone())));
                        finished = false;
                    }
                    Decision::GiveUp => {
                        self.metrics.deliveries.inc(&[name, "dead"]);
                        let tags = telemetry::event_tags(&head.body);
                        tracing::error!(sink = name, outbox_id = id, event_id = %head.event_id, shipment = %shipment, source = tags.source.as_deref(), correlationid = tags.correlationid.as_deref(), trace_id = tags.traceparent.map(|t| t.trace_id_hex()), attempts, code = %e.code, kind = e.kind.as_str(), error = %e.message, "delivery dead-lettered");
                        self.updates.push(DeliveryUpdate::Dead {
                            id,
                            attempts,
                            error: e.message,
                            code: e.code.as_str().to_owned(),
                            kind: e.kind.as_str().to_owned(),
                            at_ms: attempt.at_ms,
                            status: attempt.status(outcome.delivered),
                            duration_us: attempt.duration_us,
                        });
                        lane.queue.pop_front();
                        self.buffered = self.buffered.saturating_sub(1);
                    }
                }
            }
        }
        if finished {
            match lane.queue.front() {
                Some(next) => {
                    self.ready
                        .push(Reverse((due_at(next, now, wall), next.id, shipment)))
                }
                None => {
                    self.lanes.remove(&shipment);
                }
            }
        }
    }

    /// When the loop must wake up by itself; `None` when only a delivery result (or new
    /// rows) can make progress: all slots busy, or a circuit probe in flight.
    fn next_wake(&self) -> Option<Instant> {
        if self.in_flight >= self.sink.concurrency.max(1) {
            return None;
        }
        let due = self.ready.peek().map(|Reverse((t, _, _))| *t)?;
        // Not before the sink's next token.
        let due = match &self.rate {
            Some(b) => {
                let now = self.clock.instant();
                due.max(now + b.wait(now))
            }
            None => due,
        };
        match self.circuit.state() {
            CircuitState::Closed(_) => Some(due),
            CircuitState::Open(until) => Some(due.max(until)),
            CircuitState::HalfOpen(_) => None,
        }
    }

    fn publish_circuit(&self) {
        let v = match self.circuit.state() {
            CircuitState::Closed(_) => 0,
            CircuitState::Open(_) => 1,
            CircuitState::HalfOpen(_) => 2,
        };
        if let Ok(mut m) = self.metrics.circuit.lock() {
            m.insert(self.sink.name.clone(), v);
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Writes delivery results in batches; on failure, keeps them and tries again.
async fn flush(store: Store, sink: String, mut rx: mpsc::UnboundedReceiver<Vec<DeliveryUpdate>>) {
    let mut pending: Vec<DeliveryUpdate> = Vec::new();
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(b) => pending.extend(b),
                None => return,
            }
        }
        while let Ok(b) = rx.try_recv() {
            pending.extend(b);
        }
        match store.record_deliveries(pending.clone()).await {
            Ok(()) => pending.clear(),
            Err(e) => {
                tracing::warn!(sink = %sink, error = %e, "cannot record delivery results; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                if rx.is_closed() && matches!(e, waybill_store::StoreError::Closed) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Under tokio's paused time: timers fire at their exact virtual instants and the
    //! [`VirtualClock`] moves the wall clock with them, so every attempt is checked at
    //! the offset it is due, with no real waiting.
    use super::*;
    use crate::circuit::CircuitConfig;
    use crate::clock::VirtualClock;
    use crate::partner::{DeliverFuture, DeliveryError};
    use crate::retry::{Jitter, RetryPolicy};
    use std::sync::Mutex;
    use waybill_model::draft::Origin;
    use waybill_model::{EventDraft, FailureKind};
    use waybill_store::{DeadLetterQuery, IngestRecord, SqliteOptions, Subscription, Verdict};

    /// The virtual clock's wall time at the start of a test, in unix ms.
    const START_MS: i64 = 1_800_000_000_000;

    fn clock() -> Arc<VirtualClock> {
        Arc::new(VirtualClock::starting_at(
            time::OffsetDateTime::from_unix_timestamp(START_MS / 1000).unwrap(),
        ))
    }

    type Answer = Box<dyn Fn(&str, u32) -> Result<(), DeliveryError> + Send + Sync>;

    /// A sink that answers `answer(label, attempt)`, the label being the event's key
    /// (`<shipment>-<n>`), and records each call: (label, attempt, time since `t0`).
    struct Scripted {
        t0: Instant,
        answer: Answer,
        calls: Mutex<Vec<(String, u32, Duration)>>,
    }

    impl Scripted {
        fn new(
            t0: Instant,
            answer: impl Fn(&str, u32) -> Result<(), DeliveryError> + Send + Sync + 'static,
        ) -> Arc<Scripted> {
            Arc::new(Scripted {
                t0,
                answer: Box::new(answer),
                calls: Mutex::new(Vec::new()),
            })
        }

        fn calls(&self) -> Vec<(String, u32, Duration)> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Outbound for Scripted {
        fn deliver<'a>(&'a self, item: &'a Delivery) -> DeliverFuture<'a> {
            Box::pin(async move {
                let ev = item.event().unwrap();
                let label = ev.data["raw"]["text"].as_str().unwrap().to_owned();
                assert_eq!(item.shipment, ev.subject.0);
                assert_eq!((item.subscription.as_str(), item.sink.as_str()), ("s", "k"));
                let at = Instant::now() - self.t0;
                self.calls
                    .lock()
                    .unwrap()
                    .push((label.clone(), item.attempt, at));
                (self.answer)(&label, item.attempt)
            })
        }
    }

    fn down() -> DeliveryError {
        DeliveryError::new(
            crate::codes::DELIVERY_PANICKED,
            FailureKind::Retryable,
            "down",
        )
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// What a sink saw: (label, attempt, seconds since start).
    fn seen(calls: &[(String, u32, Duration)]) -> Vec<(&str, u32, f64)> {
        calls
            .iter()
            .map(|(l, a, t)| (l.as_str(), *a, t.as_secs_f64()))
            .collect()
    }

    /// Attempts `first`, `first + 1`, … of event `label`, made at these seconds.
    fn attempts(label: &'static str, first: u32, at: &[f64]) -> Vec<(&'static str, u32, f64)> {
        (first..).zip(at).map(|(n, t)| (label, n, *t)).collect()
    }

    async fn ingest(store: &Store, shipment: &str, n: usize) {
        let key = format!("{shipment}-{n}");
        let draft: EventDraft = serde_json::from_value(serde_json::json!({
            "type": "shipment.in_transit", "subject": shipment,
            "time": "2026-11-23T10:00:00Z", "key": key, "text": key
        }))
        .unwrap();
        let origin = Origin {
            source: "t",
            payload_key: &key,
            received_at: time::OffsetDateTime::UNIX_EPOCH,
            traceparent: None,
        };
        store
            .ingest(IngestRecord {
                source: "t".into(),
                idempotency_key: key.clone(),
                received_at: time::OffsetDateTime::UNIX_EPOCH,
                headers: vec![],
                body: key.clone().into_bytes(),
                verdict: Verdict::Accepted(vec![draft.into_event(0, &origin).unwrap()]),
            })
            .await
            .unwrap();
    }

    /// Routes every event to sink `k` (subscription `s`).
    async fn route_all_to_k(store: &Store) {
        store
            .sync_subscriptions(vec![Subscription {
                name: "s".into(),
                sink: "k".into(),
                types: vec![],
                sources: vec![],
                personal_data: None,
            }])
            .await
            .unwrap();
    }

    /// A store routing every event to sink `k`, holding events `<shipment>-<n>`.
    async fn store_with(events: &[(&str, usize)]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(SqliteOptions::new(dir.path().join("t.db")))
            .await
            .unwrap();
        route_all_to_k(&store).await;
        for (shipment, n) in events {
            ingest(&store, shipment, *n).await;
        }
        (dir, store)
    }

    fn sink_k(
        outbound: Arc<dyn Outbound>,
        schedule: &[Duration],
        circuit: CircuitConfig,
    ) -> SinkRuntime {
        SinkRuntime {
            name: "k".into(),
            outbound,
            retry: RetryPolicy {
                schedule: schedule.to_vec(),
                jitter: Jitter::None,
                max_retry_after: Duration::from_secs(3600),
            },
            circuit,
            concurrency: 4,
            pause_on_gone: Duration::from_secs(60),
            minimise: None,
            personal_data: true,
        }
    }

    /// A breaker that does not open within a test.
    const NO_BREAKER: CircuitConfig = CircuitConfig {
        failure_threshold: 1000,
        open_for: Duration::from_secs(1),
    };

    /// A running dispatcher of sink `k`.
    struct Running {
        stop: watch::Sender<bool>,
        handles: Vec<JoinHandle<()>>,
        metrics: Arc<Metrics>,
    }

    fn start(store: &Store, sink: SinkRuntime, clock: Arc<dyn Clock>) -> Running {
        let (stop, stop_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let handles = spawn_dispatchers(
            store.clone(),
            vec![sink],
            metrics.clone(),
            DispatchLimits::default(),
            clock,
            stop_rx,
        );
        Running {
            stop,
            handles,
            metrics,
        }
    }

    impl Running {
        /// Stops the dispatcher once its results are written.
        async fn stop(self) -> Arc<Metrics> {
            let _ = self.stop.send(true);
            for h in self.handles {
                h.await.unwrap();
            }
            self.metrics
        }
    }

    /// On a shared store, a dispatcher delivers only the lanes of the buckets it holds;
    /// given the others, it delivers them too, and none twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_lanes_of_held_buckets_are_delivered() {
        use crate::lease::{Held, Leases};
        use std::collections::BTreeSet;
        use waybill_store::lease::{bucket_of, delivery_lease, BUCKETS};
        let (opts, _guard) = waybill_testkit::pg::fresh("buckets");
        let store = Store::open_postgres(opts).await.unwrap();
        route_all_to_k(&store).await;
        let shipments: Vec<String> = (0..40).map(|i| format!("B{i}")).collect();
        for s in &shipments {
            ingest(&store, s, 1).await;
        }
        let low: BTreeSet<String> = shipments
            .iter()
            .filter(|s| bucket_of(s) < BUCKETS / 2)
            .map(|s| format!("{s}-1"))
            .collect();
        assert!(!low.is_empty() && low.len() < shipments.len());
        let held = |buckets: std::ops::Range<i64>| {
            Arc::new(Held {
                all: false,
                names: buckets.map(|b| delivery_lease("k", b)).collect(),
                instances: 2,
            })
        };
        let (tx, leases) = Leases::manual(Held::clone(&held(0..BUCKETS / 2)));
        let out = Scripted::new(Instant::now(), |_, _| Ok(()));
        let (stop, stop_rx) = watch::channel(false);
        let handles = spawn_leased_dispatchers(
            store.clone(),
            vec![sink_k(
                out.clone(),
                &[Duration::from_millis(10)],
                NO_BREAKER,
            )],
            Arc::new(Metrics::default()),
            DispatchLimits::default(),
            Arc::new(crate::clock::SystemClock),
            leases,
            stop_rx,
        );
        let labels = |o: &Scripted| -> Vec<String> { o.calls().into_iter().map(|c| c.0).collect() };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while labels(&out).len() < low.len() {
            assert!(std::time::Instant::now() < deadline, "{:?}", labels(&out));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let first: BTreeSet<String> = labels(&out).into_iter().collect();
        assert_eq!(first, low, "only the held buckets");
        tx.send_replace(held(0..BUCKETS));
        while labels(&out).len() < shipments.len() {
            assert!(std::time::Instant::now() < deadline, "{:?}", labels(&out));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let all = labels(&out);
        assert_eq!(all.len(), shipments.len(), "none twice: {all:?}");
        stop.send(true).unwrap();
        for h in handles {
            h.await.unwrap();
        }
        store.close().await;
    }

    /// What a sink that takes a shipment's events in batches saw: per request, each
    /// delivery's subscription and the event's `recipient`.
    #[derive(Default)]
    struct Batches(Mutex<Vec<Vec<(String, String)>>>);

    impl Batches {
        fn record(&self, items: &[Delivery]) {
            let seen = items
                .iter()
                .map(|d| {
                    let ev = d.event().unwrap();
                    let who = ev.data["recipient"].as_str().unwrap_or_default().to_owned();
                    (d.subscription.clone(), who)
                })
                .collect();
            self.0.lock().unwrap().push(seen);
        }

        fn requests(&self) -> Vec<Vec<(String, String)>> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Outbound for Batches {
        fn deliver<'a>(&'a self, item: &'a Delivery) -> DeliverFuture<'a> {
            self.record(std::slice::from_ref(item));
            Box::pin(async { Ok(()) })
        }

        fn batching(&self) -> Batching {
            Batching {
                max: 10,
                window: Duration::from_millis(100),
            }
        }

        fn deliver_batch<'a>(&'a self, items: &'a [Delivery]) -> crate::partner::BatchFuture<'a> {
            self.record(items);
            Box::pin(async move {
                BatchOutcome {
                    delivered: items.len(),
                    error: None,
                }
            })
        }
    }

    /// Ingests a `confidential` event of `shipment` whose recipient is a person.
    async fn ingest_personal(store: &Store, shipment: &str, n: usize) {
        let key = format!("{shipment}-{n}");
        let draft: EventDraft = serde_json::from_value(serde_json::json!({
            "type": "shipment.in_transit", "subject": shipment,
            "time": "2026-11-23T10:00:00Z", "key": key,
            "data": {"recipient": "Zeb Q", "parcels": 1},
            "dataclassification": "confidential"
        }))
        .unwrap();
        let origin = Origin {
            source: "t",
            payload_key: &key,
            received_at: time::OffsetDateTime::UNIX_EPOCH,
            traceparent: None,
        };
        store
            .ingest(IngestRecord {
                source: "t".into(),
                idempotency_key: key.clone(),
                received_at: time::OffsetDateTime::UNIX_EPOCH,
                headers: vec![],
                body: key.clone().into_bytes(),
                verdict: Verdict::Accepted(vec![draft.into_event(0, &origin).unwrap()]),
            })
            .await
            .unwrap();
    }

    /// Personal data per subscription: one `confidential` event reaches a batching sink
    /// through three subscriptions, in one request, each delivery minimised for its own
    /// (in clear, masked, the sink's default: masked); a setting changed while the
    /// dispatcher runs holds for the next event.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn personal_data_follows_each_deliverys_subscription() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(SqliteOptions::new(dir.path().join("t.db")))
            .await
            .unwrap();
        let with = |name: &str, personal_data| Subscription {
            name: name.into(),
            sink: "k".into(),
            types: vec![],
            sources: vec![],
            personal_data,
        };
        store
            .sync_subscriptions(vec![
                with("clear", Some(true)),
                with("default", None),
                with("masked", Some(false)),
            ])
            .await
            .unwrap();
        let out = Arc::new(Batches::default());
        let sink = SinkRuntime {
            minimise: Some(Arc::new(waybill_model::privacy::Personal::default())),
            personal_data: false,
            ..sink_k(out.clone(), &[secs(1)], NO_BREAKER)
        };
        let run = start(&store, sink, Arc::new(crate::clock::SystemClock));
        let requests_after = |n: usize| {
            let out = out.clone();
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while out.requests().len() < n {
                    assert!(std::time::Instant::now() < deadline, "{:?}", out.requests());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let mut last = out.requests().pop().unwrap();
                last.sort();
                last
            }
        };
        let pair = |s: &str, who: &str| (s.to_owned(), who.to_owned());
        ingest_personal(&store, "A", 0).await;
        assert_eq!(
            requests_after(1).await,
            vec![
                pair("clear", "Zeb Q"),
                pair("default", "***"),
                pair("masked", "***")
            ],
            "one request, minimised per delivery"
        );
        // Changed at run time: the next event follows, no restart.
        store
            .put_subscription(with("clear", Some(false)))
            .await
            .unwrap();
        store
            .put_subscription(with("masked", Some(true)))
            .await
            .unwrap();
        ingest_personal(&store, "A", 1).await;
        assert_eq!(
            requests_after(2).await,
            vec![
                pair("clear", "***"),
                pair("default", "***"),
                pair("masked", "Zeb Q")
            ]
        );
        assert_eq!(out.requests().len(), 2, "{:?}", out.requests());
        run.stop().await;
        store.close().await;
    }

    /// A sink with a request rate: [`Scripted`] behind [`Outbound::rate_limit`].
    struct RateLimited(Arc<Scripted>, crate::limit::RateLimit);

    impl Outbound for RateLimited {
        fn deliver<'a>(&'a self, item: &'a Delivery) -> DeliverFuture<'a> {
            self.0.deliver(item)
        }

        fn rate_limit(&self) -> Option<crate::limit::RateLimit> {
            Some(self.1)
        }
    }

    /// 10 requests a second, burst 3: the first three go at once, then one every 100 ms
    /// whatever the concurrency; each shipment's events still go in log order.
    #[tokio::test(start_paused = true)]
    async fn a_sink_rate_spaces_requests_and_keeps_each_lanes_order() {
        let events: Vec<(&str, usize)> = (0..10).flat_map(|n| [("A", n), ("B", n)]).collect();
        let (_dir, store) = store_with(&events).await;
        let t0 = Instant::now();
        let inner = Scripted::new(t0, |_, _| Ok(()));
        let out = Arc::new(RateLimited(
            inner.clone(),
            crate::limit::RateLimit::new(10.0, 3),
        ));
        let run = start(&store, sink_k(out, &[secs(1)], NO_BREAKER), clock());
        tokio::time::sleep(secs(10)).await;
        run.stop().await;
        let calls = inner.calls();
        assert_eq!(calls.len(), 20);
        for (i, (label, attempt, at)) in calls.iter().enumerate() {
            assert_eq!(*attempt, 1);
            // Tokens at 0, 0, 0, then 0.1 s, 0.2 s, …: call i at (i - 2) × 100 ms.
            let want = Duration::from_millis(100 * (i.saturating_sub(2) as u64));
            assert!(
                *at >= want && *at <= want + Duration::from_millis(5),
                "call {i} ({label}) at {at:?}, want {want:?}"
            );
        }
        for lane in ["A", "B"] {
            let order: Vec<&str> = calls
                .iter()
                .map(|c| c.0.as_str())
                .filter(|l| l.starts_with(lane))
                .collect();
            let want: Vec<String> = (0..10).map(|n| format!("{lane}-{n}")).collect();
            assert_eq!(order, want);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_follow_the_schedule_then_the_event_is_dead_lettered() {
        let (_dir, store) = store_with(&[("A", 0), ("A", 1)]).await;
        let t0 = Instant::now();
        let sink = Scripted::new(t0, |label, _| match label {
            "A-0" => Err(down()),
            _ => Ok(()),
        });
        let schedule = [secs(5), secs(300), secs(1800)];
        let run = start(&store, sink_k(sink.clone(), &schedule, NO_BREAKER), clock());
        tokio::time::sleep(secs(3 * 3600)).await;
        let metrics = run.stop().await;
        // 5 s, then 5 min, then 30 min after each failure; then the next event of the
        // shipment goes at once.
        assert_eq!(
            seen(&sink.calls()),
            [
                attempts("A-0", 1, &[0.0, 5.0, 305.0, 2105.0]),
                attempts("A-1", 1, &[2105.0]),
            ]
            .concat()
        );
        let dead = store
            .dead_letters(DeadLetterQuery {
                sink: None,
                include_replayed: false,
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!((dead[0].attempts, dead[0].shipment.as_str()), (4, "A"));
        assert_eq!(dead[0].code.as_deref(), Some("delivery.panicked"));
        for (outcome, n) in [("retry", 3), ("dead", 1), ("delivered", 1)] {
            assert_eq!(metrics.deliveries.get(&["k", outcome]), n, "{outcome}");
        }
        assert!(store.pending_outbox("k", 0, 10).await.unwrap().is_empty());
        store.close().await;
    }

    /// Each attempt is recorded with when it was sent (the wall clock) and the HTTP
    /// status it got: the failed one as history, the delivery on the row.
    #[tokio::test(start_paused = true)]
    async fn attempts_are_recorded_with_their_time_and_status() {
        struct Http;
        impl Outbound for Http {
            fn deliver<'a>(&'a self, item: &'a Delivery) -> DeliverFuture<'a> {
                Box::pin(async move {
                    if item.attempt == 1 {
                        item.record_status(503);
                        Err(DeliveryError::new(
                            crate::codes::DELIVERY_PANICKED,
                            FailureKind::Retryable,
                            "HTTP 503",
                        ))
                    } else {
                        item.record_status(204);
                        Ok(())
                    }
                })
            }
        }
        let (_dir, store) = store_with(&[("A", 0)]).await;
        let run = start(
            &store,
            sink_k(Arc::new(Http), &[secs(5)], NO_BREAKER),
            clock(),
        );
        tokio::time::sleep(secs(60)).await;
        run.stop().await;
        let shipment = waybill_model::ShipmentKey("A".into());
        let view = store.shipment(&shipment).await.unwrap().unwrap();
        let event_id = view.timeline[0].event.id.clone();
        let rows = store
            .deliveries_of(&shipment, event_id.as_str())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.state.as_str(), row.attempts), ("delivered", 2));
        assert_eq!(row.last_status, Some(204));
        let start_ms = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
        };
        assert!(row.delivered_at.unwrap() >= start_ms(START_MS + 5_000));
        assert_eq!(row.history.len(), 1);
        let failed = &row.history[0];
        assert_eq!(
            (failed.attempt, failed.status, failed.error.as_str()),
            (1, Some(503), "HTTP 503")
        );
        assert_eq!(failed.at, start_ms(START_MS));
        store.close().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_is_honoured_when_longer_than_the_schedule() {
        let (_dir, store) = store_with(&[("A", 0)]).await;
        let sink = Scripted::new(Instant::now(), |_, attempt| {
            let wait = match attempt {
                1 => secs(120),
                2 => secs(1),
                _ => return Ok(()),
            };
            Err(DeliveryError {
                retry_after: Some(wait),
                ..down()
            })
        });
        let run = start(
            &store,
            sink_k(sink.clone(), &[secs(5), secs(5)], NO_BREAKER),
            clock(),
        );
        tokio::time::sleep(secs(600)).await;
        run.stop().await;
        // The partner's 120 s rather than the schedule's 5 s; then the schedule's 5 s,
        // longer than the partner's 1 s.
        assert_eq!(
            seen(&sink.calls()),
            attempts("A-0", 1, &[0.0, 120.0, 125.0])
        );
        store.close().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_after_its_threshold_and_half_opens_after_its_time() {
        let (_dir, store) = store_with(&[("A", 0), ("A", 1)]).await;
        let calls = std::sync::atomic::AtomicU32::new(0);
        // The first four calls fail, whatever they carry.
        let sink = Scripted::new(Instant::now(), move |_, _| {
            match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0..=3 => Err(down()),
                _ => Ok(()),
            }
        });
        let breaker = CircuitConfig {
            failure_threshold: 3,
            open_for: secs(60),
        };
        let run = start(
            &store,
            sink_k(sink.clone(), &[secs(1); 20], breaker),
            clock(),
        );
        let circuit = |run: &Running| run.metrics.circuit.lock().unwrap().get("k").copied();
        tokio::time::sleep(secs(30)).await;
        assert_eq!(circuit(&run), Some(1), "open after three failures");
        tokio::time::sleep(secs(600)).await;
        assert_eq!(circuit(&run), Some(0), "closed by a probe that succeeded");
        run.stop().await;
        // Open at 2 s for 60 s: the retry due at 3 s waits; the probe at 62 s fails and
        // opens it for 60 s more; the probe at 122 s succeeds and the lane goes on.
        assert_eq!(
            seen(&sink.calls()),
            [
                attempts("A-0", 1, &[0.0, 1.0, 2.0, 62.0, 122.0]),
                attempts("A-1", 1, &[122.0]),
            ]
            .concat()
        );
        store.close().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_time_kept_in_the_store_is_waited_for_after_a_restart() {
        let (_dir, store) = store_with(&[("A", 0)]).await;
        let clock = clock();
        let t0 = Instant::now();
        let failing = Scripted::new(t0, |_, _| Err(down()));
        let run = start(
            &store,
            sink_k(failing.clone(), &[secs(300)], NO_BREAKER),
            clock.clone(),
        );
        tokio::time::sleep(secs(10)).await;
        run.stop().await;
        assert_eq!(seen(&failing.calls()), attempts("A-0", 1, &[0.0]));
        // The retry is due 5 min after the first attempt, by the (virtual) wall clock.
        let rows = store.pending_outbox("k", 0, 10).await.unwrap();
        assert_eq!(
            (rows[0].attempts, rows[0].next_attempt_at_ms),
            (1, START_MS + 300_000)
        );
        // A new dispatcher (a restart) waits for that time, and not a moment less.
        let taking = Scripted::new(t0, |_, _| Ok(()));
        let run = start(
            &store,
            sink_k(taking.clone(), &[secs(300)], NO_BREAKER),
            clock,
        );
        tokio::time::sleep(secs(3600)).await;
        run.stop().await;
        assert_eq!(seen(&taking.calls()), attempts("A-0", 2, &[300.0]));
        store.close().await;
    }

    /// When events of other shipments, due 200 ms in, reach a sink within 1.7 s while the
    /// events of one shipment keep failing from the start (circuit threshold 2, open for
    /// 30 s).
    async fn delivered_beside_a_failing_shipment(sink_up: bool) -> Vec<Duration> {
        let mut events = vec![("EARLY", 0), ("EARLY", 1), ("EARLY", 2)];
        let others = ["OTHER0", "OTHER1", "OTHER2", "OTHER3", "OTHER4"];
        events.extend(others.iter().map(|o| (*o, 0)));
        let (_dir, store) = store_with(&events).await;
        // The others become due 200 ms in, once the failing shipment has failed twice
        // (they are staged in the store: a write while time is paused lets tokio run
        // time ahead until the commit is seen).
        let later: Vec<DeliveryUpdate> = store
            .pending_outbox("k", 0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.shipment.starts_with("OTHER"))
            .map(|r| DeliveryUpdate::Retry {
                id: r.id,
                attempts: 0,
                next_attempt_at_ms: START_MS + 200,
                error: String::new(),
                at_ms: START_MS,
                status: None,
                duration_us: 0,
            })
            .collect();
        assert_eq!(later.len(), 5);
        store.record_deliveries(later).await.unwrap();
        let sink = Scripted::new(Instant::now(), move |label, _| {
            if !label.starts_with("EARLY") {
                Ok(())
            } else if sink_up {
                Err(DeliveryError::not_yet(
                    crate::codes::DELIVERY_PANICKED,
                    "not there yet",
                ))
            } else {
                Err(down())
            }
        });
        let breaker = CircuitConfig {
            failure_threshold: 2,
            open_for: secs(30),
        };
        let schedule = [Duration::from_millis(10); 50];
        let run = start(&store, sink_k(sink.clone(), &schedule, breaker), clock());
        tokio::time::sleep(Duration::from_millis(1700)).await;
        run.stop().await;
        store.close().await;
        let calls = sink.calls();
        calls
            .iter()
            .filter(|(l, _, _)| l.starts_with("OTHER"))
            .map(|(_, _, t)| *t)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_that_is_early_does_not_open_the_circuit_for_everyone() {
        let others = delivered_beside_a_failing_shipment(true).await;
        assert_eq!(others, vec![Duration::from_millis(200); 5]);
        // The same failures from a sink that is down do open it: the others wait.
        assert_eq!(
            delivered_beside_a_failing_shipment(false).await,
            Vec::<Duration>::new()
        );
    }
}
