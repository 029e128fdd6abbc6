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

type Waiter = (Value, oneshot::Sender<Result<Vec<Value>, OdooError>>);

/// One kind of batched read.
pub struct BatchedRead {
    model: &'static str,
    field: &'static str,
    extra: Vec<Value>,
    fields: &'static [&'static str],
    max_keys: usize,
    pending: Mutex<Vec<Waiter>>,
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
            max_keys: max_keys.max(1),
            pending: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiter>> {
        match self.pending.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The rows whose `field` equals `key`, in id order.
    pub async fn get(&self, client: &OdooClient, key: Value) -> Result<Vec<Value>, OdooError> {
        let (tx, rx) = oneshot::channel();
        let leader = {
            let mut p = self.lock();
            p.push((key, tx));
            p.len() == 1
        };
        if leader {
            self.lead(client).await;
        }
        rx.await
            .unwrap_or_else(|_| Err(OdooError::Transport("batched read abandoned".into())))
    }

    async fn lead(&self, client: &OdooClient) {
        let mut guard = LeadGuard(self, true);
        loop {
            let ticket = client.ticket().await;
            let (batch, more) = {
                let mut p = self.lock();
                let n = p.len().min(self.max_keys);
                let batch: Vec<Waiter> = p.drain(..n).collect();
                (batch, !p.is_empty())
            };
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
                            self.fields,
                            page,
                            None,
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

/// Should a leader be dropped mid-way (its task cancelled), the callers it left waiting
/// get an error instead of waiting for a leader that will never come.
struct LeadGuard<'a>(&'a BatchedRead, bool);

impl Drop for LeadGuard<'_> {
    fn drop(&mut self) {
        if !self.1 {
            return;
        }
        for (_, tx) in self.0.lock().drain(..) {
            let _ = tx.send(Err(OdooError::Transport("batched read abandoned".into())));
        }
    }
}
