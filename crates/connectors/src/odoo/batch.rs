//! Batched reads: concurrent callers that each want the records of one model matching
//! one key (a picking id, a tracking number, the notes of a picking) share one
//! `search_read … [field, "in", keys]`.
//!
//! The first caller to find nothing pending leads: it waits for a request slot of the
//! client (its concurrency and rate limits), and only then takes every key gathered
//! meanwhile. So the busier Odoo is, the more one request carries; an idle Odoo sees no
//! added delay.

use super::client::Page;
use super::{OdooClient, OdooError};
use serde_json::{json, Value};
use std::sync::Mutex;
use tokio::sync::oneshot;
use waybill_model::FailureKind;

/// One kind of batched read.
pub struct BatchedRead {
    model: &'static str,
    field: &'static str,
    extra: Vec<Value>,
    fields: &'static [&'static str],
    context: Option<Value>,
    queue: Queue<Value, Vec<Value>>,
}

/// The key a row answers to: the field's value, or a many2one's id.
fn row_key(v: &Value) -> &Value {
    match v {
        Value::Array(a) if !a.is_empty() => &a[0],
        other => other,
    }
}

impl BatchedRead {
    /// Reads `fields` of `model` where `field` is one of the asked keys and every `extra`
    /// domain term holds; at most `max_keys` keys per request.
    pub fn new(
        model: &'static str,
        field: &'static str,
        extra: Vec<Value>,
        fields: &'static [&'static str],
        max_keys: usize,
    ) -> Self {
        BatchedRead {
            model,
            field,
            extra,
            fields,
            context: None,
            queue: Queue::new(max_keys),
        }
    }

    /// Reads with this context, e.g. `{"active_test": false}` to see archived records too.
    pub fn with_context(mut self, context: Value) -> Self {
        self.context = Some(context);
        self
    }

    /// The rows whose `field` equals `key`, in id order.
    pub async fn get(&self, client: &OdooClient, key: Value) -> Result<Vec<Value>, OdooError> {
        self.get_many(client, vec![key]).await
    }

    /// The rows whose `field` equals one of `keys`, key by key, each key's in id order.
    pub async fn get_many(
        &self,
        client: &OdooClient,
        keys: Vec<Value>,
    ) -> Result<Vec<Value>, OdooError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (rxs, leader) = self.queue.push(keys);
        if leader {
            self.lead(client).await;
        }
        let mut rows = Vec::new();
        for rx in rxs {
            rows.extend(Queue::<Value, Vec<Value>>::answer(rx).await?);
        }
        Ok(rows)
    }

    async fn lead(&self, client: &OdooClient) {
        let mut guard = LeadGuard(&self.queue, true);
        loop {
            let ticket = client.ticket().await;
            let (batch, more) = self.queue.take();
            if batch.is_empty() {
                guard.1 = false;
                return;
            }
            let result = match ticket {
                Ok(t) => {
                    let mut keys: Vec<&Value> = Vec::with_capacity(batch.len());
                    for (k, _) in &batch {
                        if !keys.contains(&k) {
                            keys.push(k);
                        }
                    }
                    let mut domain = vec![json!([self.field, "in", keys])];
                    domain.extend(self.extra.iter().cloned());
                    // The rows are told apart by the key field: it is always read.
                    let mut fields = self.fields.to_vec();
                    if !fields.contains(&self.field) {
                        fields.push(self.field);
                    }
                    let page = Page {
                        order: "id asc",
                        limit: 0,
                        offset: 0,
                    };
                    client
                        .search_read_with(
                            Some(t),
                            self.model,
                            Value::Array(domain),
                            &fields,
                            page,
                            self.context.as_ref(),
                        )
                        .await
                }
                Err(e) => Err(e),
            };
            for (key, tx) in batch {
                let mine = match &result {
                    Ok(rows) => Ok(rows
                        .iter()
                        .filter(|r| row_key(&r[self.field]) == &key)
                        .cloned()
                        .collect()),
                    Err(e) => Err(e.clone()),
                };
                let _ = tx.send(mine);
            }
            if !more {
                guard.1 = false;
                return;
            }
        }
    }
}

/// Batched creates: records of one model that concurrent callers want created go into
/// one `create` with a list of values (Odoo answers the ids in order). Should that fail,
/// each is created on its own, so one refused record does not fail the others.
pub struct BatchedCreate {
    model: &'static str,
    queue: Queue<Value, i64>,
}

impl BatchedCreate {
    /// At most `max` records per request.
    pub fn new(model: &'static str, max: usize) -> Self {
        BatchedCreate {
            model,
            queue: Queue::new(max),
        }
    }

    /// Creates the records (in one request with others' when they are waiting too);
    /// returns their ids in order.
    pub async fn create(
        &self,
        client: &OdooClient,
        vals: Vec<Value>,
    ) -> Result<Vec<i64>, OdooError> {
        let (rxs, leader) = self.queue.push(vals);
        if leader {
            self.lead(client).await;
        }
        let mut ids = Vec::with_capacity(rxs.len());
        for rx in rxs {
            ids.push(Queue::<Value, i64>::answer(rx).await?);
        }
        Ok(ids)
    }

    async fn lead(&self, client: &OdooClient) {
        let mut guard = LeadGuard(&self.queue, true);
        loop {
            // Wait for a request slot first: what piles up meanwhile goes along.
            let ticket = client.ticket().await;
            let (batch, more) = self.queue.take();
            if batch.is_empty() {
                guard.1 = false;
                return;
            }
            let vals: Vec<Value> = batch.iter().map(|(v, _)| v.clone()).collect();
            let created = match ticket {
                Ok(t) => {
                    client
                        .create_with(Some(t), self.model, Value::Array(vals), None)
                        .await
                }
                Err(e) => Err(e),
            };
            match created {
                Ok(ids) if ids.len() == batch.len() => {
                    for ((_, tx), id) in batch.into_iter().zip(ids) {
                        let _ = tx.send(Ok(id));
                    }
                }
                Ok(ids) => {
                    let e = OdooError::Protocol(format!(
                        "{}.create of {} records answered {} ids",
                        self.model,
                        batch.len(),
                        ids.len()
                    ));
                    for (_, tx) in batch {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
                // Only a refusal is retried record by record: after a timeout or a 5xx
                // the batch may have been created, and the callers' retries re-read
                // their markers before creating again.
                Err(e) if batch.len() == 1 || e.kind() != FailureKind::Permanent => {
                    for (_, tx) in batch {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
                Err(_) => {
                    for (v, tx) in batch {
                        let one = client
                            .create(self.model, Value::Array(vec![v]), None)
                            .await
                            .and_then(|ids| {
                                ids.first().copied().ok_or_else(|| {
                                    OdooError::Protocol(format!(
                                        "{}.create answered no id",
                                        self.model
                                    ))
                                })
                            });
                        let _ = tx.send(one);
                    }
                }
            }
            if !more {
                guard.1 = false;
                return;
            }
        }
    }
}

/// A caller's entry: what it asks for, and where its answer goes.
type Pending<V, T> = (V, oneshot::Sender<Result<T, OdooError>>);

/// What callers wait on, shared by [`BatchedRead`] and [`BatchedCreate`]: the caller
/// that finds it empty leads, and each leader takes up to `max` entries at a time.
struct Queue<V, T> {
    max: usize,
    pending: Mutex<Vec<Pending<V, T>>>,
}

impl<V, T> Queue<V, T> {
    fn new(max: usize) -> Self {
        Queue {
            max: max.max(1),
            pending: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending<V, T>>> {
        match self.pending.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Queues the entries; returns where their answers come and whether the caller leads.
    fn push(&self, vals: Vec<V>) -> (Vec<oneshot::Receiver<Result<T, OdooError>>>, bool) {
        let mut p = self.lock();
        let was_empty = p.is_empty();
        let rxs = vals
            .into_iter()
            .map(|v| {
                let (tx, rx) = oneshot::channel();
                p.push((v, tx));
                rx
            })
            .collect();
        (rxs, was_empty && !p.is_empty())
    }

    /// The next batch, and whether entries remain after it.
    fn take(&self) -> (Vec<Pending<V, T>>, bool) {
        let mut p = self.lock();
        let n = p.len().min(self.max);
        let batch = p.drain(..n).collect();
        (batch, !p.is_empty())
    }

    async fn answer(rx: oneshot::Receiver<Result<T, OdooError>>) -> Result<T, OdooError> {
        rx.await
            .unwrap_or_else(|_| Err(OdooError::Transport("batched request abandoned".into())))
    }
}

/// Should a leader be dropped mid-way (its task cancelled), the callers it left waiting
/// get an error instead of waiting for a leader that will never come. Disarmed (`.1 =
/// false`) when the leader ends normally.
struct LeadGuard<'a, V, T>(&'a Queue<V, T>, bool);

impl<V, T> Drop for LeadGuard<'_, V, T> {
    fn drop(&mut self) {
        if !self.1 {
            return;
        }
        for (_, tx) in self.0.lock().drain(..) {
            let _ = tx.send(Err(OdooError::Transport(
                "batched request abandoned".into(),
            )));
        }
    }
}
