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

use crate::circuit::{Circuit, CircuitConfig, CircuitState};
use crate::metrics::Metrics;
use crate::partner::{BatchOutcome, Batching, DeliveryError, Outbound};
use crate::retry::{Decision, RetryPolicy};
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

/// Starts one dispatcher per sink. Each stops when `shutdown` becomes true, after its
/// in-flight deliveries finish and their results are written.
pub fn spawn_dispatchers(
    store: Store,
    sinks: Vec<SinkRuntime>,
    metrics: Arc<Metrics>,
    limits: DispatchLimits,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    sinks
        .into_iter()
        .map(|sink| {
            let d = Dispatcher::new(store.clone(), sink, metrics.clone(), limits);
            tokio::spawn(d.run(shutdown.clone()))
        })
        .collect()
}

struct Lane {
    queue: VecDeque<OutboxItem>,
}

/// (id of the lane's head when sent, shipment, what the delivery achieved).
type Outcome = (i64, String, BatchOutcome);

struct Dispatcher {
    store: Store,
    sink: SinkRuntime,
    metrics: Arc<Metrics>,
    limits: DispatchLimits,
    batching: Batching,
    circuit: Circuit,
    lanes: HashMap<String, Lane>,
    ready: BinaryHeap<Reverse<(Instant, i64, String)>>,
    buffered: usize,
    cursor: i64,
    in_flight: usize,
    updates: Vec<DeliveryUpdate>,
}

fn due_at(item: &OutboxItem, now: Instant) -> Instant {
    let wall_now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let wait = item.next_attempt_at_ms.saturating_sub(wall_now);
    if wait > 0 {
        now + Duration::from_millis(wait as u64)
    } else {
        now
    }
}

impl Dispatcher {
    fn new(store: Store, sink: SinkRuntime, metrics: Arc<Metrics>, limits: DispatchLimits) -> Self {
        let circuit = Circuit::new(sink.circuit);
        let batching = sink.outbound.batching();
        Dispatcher {
            batching,
            store,
            sink,
            metrics,
            limits,
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
        loop {
            if stopping && self.in_flight == 0 {
                break;
            }
            if !stopping && more && self.buffered < self.limits.buffer {
                more = self.load().await;
            }
            if !stopping {
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
                _ = shutdown.changed(), if !stopping => {
                    stopping = *shutdown.borrow();
                }
            }
        }
        if !self.updates.is_empty() {
            let _ = upd_tx.send(std::mem::take(&mut self.updates));
        }
        drop(upd_tx);
        let _ = flusher.await;
    }

    /// Reads the next page of pending rows; returns whether there may be more.
    async fn load(&mut self) -> bool {
        let room = (self.limits.buffer - self.buffered).min(self.limits.page);
        let rows = match self
            .store
            .pending_outbox(&self.sink.name, self.cursor, room)
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
        let now = Instant::now();
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
                    due_at(&item, now).max(now + self.batching.window),
                    item.id,
                    item.shipment.clone(),
                )));
            }
            lane.queue.push_back(item);
        }
        full
    }

    fn dispatch(&mut self, res_tx: &mpsc::UnboundedSender<Outcome>) {
        let now = Instant::now();
        while self.in_flight < self.sink.concurrency.max(1) {
            let Some(Reverse((due, _, _))) = self.ready.peek() else {
                break;
            };
            if *due > now || !self.circuit.try_acquire(now) {
                break;
            }
            let Some(Reverse((_, id, shipment))) = self.ready.pop() else {
                break;
            };
            let Some(lane) = self.lanes.get(&shipment) else {
                continue;
            };
            // The head, and behind it (for a coalescing sink) the events already due.
            let batch: Vec<OutboxItem> = lane
                .queue
                .iter()
                .enumerate()
                .take_while(|(i, it)| *i == 0 || due_at(it, now) <= now)
                .take(self.batching.max.max(1))
                .map(|(_, it)| it.clone())
                .collect();
            if batch.is_empty() {
                continue;
            }
            self.in_flight += 1;
            let out = self.sink.outbound.clone();
            let tx = res_tx.clone();
            let sent = batch.len();
            let delivery = tokio::spawn(async move {
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
            });
            tokio::spawn(async move {
                // A connector that panics fails this attempt; the lane goes on.
                let mut r = delivery.await.unwrap_or_else(|e| BatchOutcome {
                    delivered: 0,
                    error: Some(DeliveryError::new(
                        crate::codes::DELIVERY_PANICKED,
                        waybill_model::FailureKind::Retryable,
                        format!("delivery task failed: {e}"),
                    )),
                });
                r.delivered = r.delivered.min(sent);
                let _ = tx.send((id, shipment, r));
            });
        }
    }

    fn complete(&mut self, (id, shipment, outcome): Outcome) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let now = Instant::now();
        let name = self.sink.name.clone();
        let Some(lane) = self.lanes.get_mut(&shipment) else {
            return;
        };
        if lane.queue.front().map(|h| h.id) != Some(id) {
            return;
        }
        // The delivered prefix.
        for _ in 0..outcome.delivered {
            let Some(done) = lane.queue.pop_front() else {
                break;
            };
            self.buffered = self.buffered.saturating_sub(1);
            self.circuit.on_success();
            self.metrics.deliveries.inc(&[&name, "delivered"]);
            self.updates.push(DeliveryUpdate::Delivered {
                id: done.id,
                attempts: done.attempts + 1,
            });
        }
        let mut finished = true;
        if let Some(e) = outcome.error {
            let Some(head) = lane.queue.front_mut() else {
                return;
            };
            let id = head.id;
            let attempts = head.attempts + 1;
            let name = name.as_str();
            if e.gone {
                tracing::error!(sink = name, error = %e.message, "sink answered 410 Gone: paused, events wait");
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
                        tracing::warn!(sink = name, outbox_id = id, attempts, kind = e.kind.as_str(), error = %e.message, delay_ms = delay.as_millis() as u64, "delivery failed; will retry");
                        let wall = (time::OffsetDateTime::now_utc().unix_timestamp_nanos()
                            / 1_000_000) as i64;
                        let next = wall + delay.as_millis() as i64;
                        head.attempts = attempts;
                        head.next_attempt_at_ms = next;
                        self.updates.push(DeliveryUpdate::Retry {
                            id,
                            attempts,
                            next_attempt_at_ms: next,
                            error: e.message,
                        });
                        self.ready
                            .push(Reverse((now + delay, id, shipment.clone())));
                        finished = false;
                    }
                    Decision::GiveUp => {
                        self.metrics.deliveries.inc(&[name, "dead"]);
                        tracing::error!(sink = name, outbox_id = id, attempts, code = %e.code, kind = e.kind.as_str(), error = %e.message, "delivery dead-lettered");
                        self.updates.push(DeliveryUpdate::Dead {
                            id,
                            attempts,
                            error: e.message,
                            code: e.code.as_str().to_owned(),
                            kind: e.kind.as_str().to_owned(),
                        });
                        lane.queue.pop_front();
                        self.buffered = self.buffered.saturating_sub(1);
                    }
                }
            }
        }
        if finished {
            match lane.queue.front() {
                Some(next) => self
                    .ready
                    .push(Reverse((due_at(next, now), next.id, shipment))),
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
    use super::*;
    use crate::circuit::CircuitConfig;
    use crate::partner::{DeliverFuture, DeliveryError};
    use crate::retry::{Jitter, RetryPolicy};
    use std::sync::Mutex;
    use waybill_model::draft::Origin;
    use waybill_model::EventDraft;
    use waybill_store::{IngestRecord, SqliteOptions, Subscription, Verdict};

    /// Refuses shipment `EARLY` with a "not yet" (the partner is up, the record is not
    /// there yet) or with an outage, and takes everything else.
    struct Picky {
        sink_up: bool,
        got: Mutex<Vec<String>>,
    }

    impl Outbound for Picky {
        fn deliver<'a>(&'a self, item: &'a OutboxItem) -> DeliverFuture<'a> {
            Box::pin(async move {
                if item.shipment == "EARLY" {
                    return Err(if self.sink_up {
                        DeliveryError::not_yet(crate::codes::DELIVERY_PANICKED, "not there yet")
                    } else {
                        DeliveryError::new(
                            crate::codes::DELIVERY_PANICKED,
                            waybill_model::FailureKind::Retryable,
                            "down",
                        )
                    });
                }
                self.got.lock().unwrap().push(item.shipment.clone());
                Ok(())
            })
        }
    }

    async fn ingest(store: &Store, shipment: &str, n: usize) {
        let draft: EventDraft = serde_json::from_value(serde_json::json!({
            "type": "shipment.in_transit", "subject": shipment,
            "time": "2026-11-23T10:00:00Z", "key": format!("{shipment}-{n}")
        }))
        .unwrap();
        let key = format!("{shipment}-{n}");
        let origin = Origin {
            source: "t",
            payload_key: &key,
            received_at: time::OffsetDateTime::now_utc(),
            traceparent: None,
        };
        store
            .ingest(IngestRecord {
                source: "t".into(),
                idempotency_key: key.clone(),
                received_at: time::OffsetDateTime::now_utc(),
                headers: vec![],
                body: key.clone().into_bytes(),
                verdict: Verdict::Accepted(vec![draft.into_event(0, &origin).unwrap()]),
            })
            .await
            .unwrap();
    }

    /// How many events of other shipments got through within 1.5 s while one shipment
    /// kept failing (threshold 2, circuit open for 30 s).
    async fn delivered_beside_a_failing_shipment(sink_up: bool) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(SqliteOptions::new(dir.path().join("t.db")))
            .await
            .unwrap();
        store
            .sync_subscriptions(vec![Subscription {
                name: "s".into(),
                sink: "k".into(),
                types: vec![],
                sources: vec![],
            }])
            .await
            .unwrap();
        for i in 0..3 {
            ingest(&store, "EARLY", i).await;
        }
        let sink = Arc::new(Picky {
            sink_up,
            got: Mutex::new(Vec::new()),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let handles = spawn_dispatchers(
            store.clone(),
            vec![SinkRuntime {
                name: "k".into(),
                outbound: sink.clone(),
                retry: RetryPolicy {
                    schedule: vec![Duration::from_millis(10); 50],
                    jitter: Jitter::None,
                    max_retry_after: Duration::from_secs(1),
                },
                circuit: CircuitConfig {
                    failure_threshold: 2,
                    open_for: Duration::from_secs(30),
                },
                concurrency: 4,
                pause_on_gone: Duration::from_secs(60),
            }],
            Arc::new(Metrics::default()),
            DispatchLimits::default(),
            stop_rx,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..5 {
            ingest(&store, &format!("OTHER{i}"), 0).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let _ = stop_tx.send(true);
        for h in handles {
            h.await.unwrap();
        }
        store.close().await;
        let n = sink.got.lock().unwrap().len();
        n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_that_is_early_does_not_open_the_circuit_for_everyone() {
        assert_eq!(delivered_beside_a_failing_shipment(true).await, 5);
        // The same failures from a sink that is down do open it: the others wait.
        assert_eq!(delivered_beside_a_failing_shipment(false).await, 0);
    }
}
