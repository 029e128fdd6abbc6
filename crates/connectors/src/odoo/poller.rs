//! The Odoo poller: change data capture on `write_date`.
//!
//! Facts it must respect (ODOO.md): `write_date` is the start time of the writing
//! transaction, cut to whole seconds over RPC, so a long transaction can commit rows older
//! than rows already seen. So each poll reads `write_date >= cursor − overlap`, ordered by
//! (`write_date`, `id`) and paged; the cursor (the newest `write_date` seen) is saved in
//! the store after each model's pass. Re-reading is harmless: a record version is the
//! payload key `<model>:<id>:<write_date>` (a duplicate is recognised), and each state
//! reached is one event (see `mapping`), so nothing is emitted twice.

use super::mapping::{self, ORDER_FIELDS, PICKING_FIELDS};
use super::{OdooClient, OdooConfig, OdooError};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use tokio::sync::{mpsc, watch};
use waybill_engine::config::ConfigError;
use waybill_engine::duration;
use waybill_engine::partner::Mapped;
use waybill_engine::{Hub, Received};

/// `[sources.<name>]` with `type = "odoo"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdooSourceConfig {
    /// How to reach Odoo.
    pub connection: OdooConfig,
    /// Time between polls (default 30 s).
    #[serde(default = "default_poll", deserialize_with = "duration::de")]
    pub poll: Duration,
    /// How far before the cursor each poll reads again; longer than Odoo's longest
    /// transaction (default 10 min).
    #[serde(default = "default_overlap", deserialize_with = "duration::de")]
    pub overlap: Duration,
    /// Records per `search_read` page (default 200).
    #[serde(default = "default_page")]
    pub page_size: usize,
    /// Tokens for Odoo automation-rule webhooks posted to `/v1/ingest/<name>/<token>`
    /// (Odoo cannot sign them); empty: no webhook receiver.
    #[serde(default)]
    pub webhook_tokens: Vec<waybill_engine::secret::SecretRef>,
    /// How long after a webhook the record is re-read over RPC (default 2 s): Odoo posts
    /// the webhook before its transaction commits.
    #[serde(default = "default_hint_delay", deserialize_with = "duration::de")]
    pub hint_delay: Duration,
    /// Rate limit of its webhooks, `{ per_second = 100, burst = 200 }` (default:
    /// `[limits].rate_limit`).
    #[serde(default)]
    pub rate_limit: Option<waybill_engine::limit::RateLimit>,
}

fn default_hint_delay() -> Duration {
    Duration::from_secs(2)
}

fn default_poll() -> Duration {
    Duration::from_secs(30)
}
fn default_overlap() -> Duration {
    Duration::from_secs(600)
}
fn default_page() -> usize {
    200
}

/// Why a poll failed (it is retried at the next interval).
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Odoo failed.
    #[error(transparent)]
    Odoo(#[from] OdooError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] waybill_store::StoreError),
}

/// A validated Odoo poller.
pub struct OdooPoller {
    name: String,
    database: String,
    client: OdooClient,
    poll: Duration,
    overlap: Duration,
    page: usize,
    hint_delay: Duration,
    hints: mpsc::UnboundedSender<(String, i64)>,
    hints_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<(String, i64)>>>,
}

const ODOO_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

fn minus(ts: &str, d: Duration) -> String {
    let head = ts.split('.').next().unwrap_or(ts);
    PrimitiveDateTime::parse(head, ODOO_TIME)
        .ok()
        .and_then(|t| (t - d).format(ODOO_TIME).ok())
        .unwrap_or_else(|| "1970-01-01 00:00:00".into())
}

impl OdooPoller {
    /// Validates the configuration (no network).
    pub fn build(name: &str, cfg: &OdooSourceConfig) -> Result<OdooPoller, Vec<ConfigError>> {
        let client = OdooClient::build(&cfg.connection)
            .map_err(|es| ConfigError::all_under(es, "connection"))?;
        if cfg.page_size == 0 {
            return Err(vec![ConfigError::new("page_size", "must be at least 1")]);
        }
        let (hints, hints_rx) = mpsc::unbounded_channel();
        Ok(OdooPoller {
            name: name.to_owned(),
            database: cfg.connection.database.clone(),
            client,
            poll: cfg.poll,
            overlap: cfg.overlap,
            page: cfg.page_size,
            hint_delay: cfg.hint_delay,
            hints,
            hints_rx: std::sync::Mutex::new(Some(hints_rx)),
        })
    }

    /// Asks for one record to be re-read soon (a webhook said it changed).
    pub fn hint(&self, model: &str, id: i64) {
        // Only while polling here: another instance may hold the poller's lease, and
        // hints kept for a poller that does not run would pile up.
        if self.hints_rx.lock().map(|g| g.is_none()).unwrap_or(false) {
            let _ = self.hints.send((model.to_owned(), id));
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Polls every `poll` until `shutdown`; re-reads hinted records `hint_delay` after
    /// their webhook.
    pub async fn run(self: Arc<Self>, hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
        let mut hints = self.hints_rx.lock().ok().and_then(|mut g| g.take());
        let mut next_poll = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                // Back for the next run (the poller's lease may come back).
                if let (Ok(mut g), Some(mut h)) = (self.hints_rx.lock(), hints) {
                    while h.try_recv().is_ok() {}
                    *g = Some(h);
                }
                return;
            }
            if tokio::time::Instant::now() >= next_poll {
                for model in ["stock.picking", "sale.order"] {
                    if let Err(e) = self.poll_model(&hub, model).await {
                        tracing::warn!(source = %self.name, model, error = %e, "odoo poll failed; will retry");
                    }
                }
                next_poll = tokio::time::Instant::now() + self.poll;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_poll) => {}
                _ = shutdown.changed() => {}
                Some(first) = async { match hints.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    // Let Odoo commit, and gather the hints that arrive meanwhile.
                    tokio::time::sleep(self.hint_delay).await;
                    let mut batch = vec![first];
                    if let Some(h) = hints.as_mut() {
                        while let Ok(more) = h.try_recv() {
                            batch.push(more);
                        }
                    }
                    if let Err(e) = self.reread(&hub, batch).await {
                        tracing::warn!(source = %self.name, error = %e, "odoo re-read after webhook failed; the poller will catch up");
                    }
                }
            }
        }
    }

    /// Reads hinted records by id and ingests them like a poll would.
    pub async fn reread(&self, hub: &Hub, hints: Vec<(String, i64)>) -> Result<(), PollError> {
        for model in ["stock.picking", "sale.order"] {
            let mut ids: Vec<i64> = hints
                .iter()
                .filter(|(m, _)| m == model)
                .map(|(_, id)| *id)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                continue;
            }
            let fields = if model == "stock.picking" {
                PICKING_FIELDS
            } else {
                ORDER_FIELDS
            };
            let mut rows = self
                .client
                .search_read(
                    model,
                    json!([["id", "in", ids]]),
                    fields,
                    "id asc",
                    ids.len(),
                    0,
                )
                .await?;
            if model == "stock.picking" {
                self.with_customer_refs(&mut rows).await?;
            }
            for rec in &rows {
                self.ingest_record(hub, model, rec).await?;
            }
        }
        Ok(())
    }

    /// Adds to each picking its sale order's customer reference (`client_order_ref`, the
    /// buyer's PO number), read for the whole page in one request, as
    /// `sale_client_order_ref`: the picking's events then carry it as `po`, which is how a
    /// 3PL's ship notice naming that PO resolves to this picking.
    async fn with_customer_refs(&self, rows: &mut [serde_json::Value]) -> Result<(), PollError> {
        let mut ids: Vec<i64> = rows
            .iter()
            .filter_map(|r| r["sale_id"].get(0).and_then(|v| v.as_i64()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        let orders = self
            .client
            .search_read(
                "sale.order",
                json!([["id", "in", ids]]),
                &["client_order_ref"],
                "id asc",
                ids.len(),
                0,
            )
            .await?;
        let refs: std::collections::HashMap<i64, &str> = orders
            .iter()
            .filter_map(|o| Some((o["id"].as_i64()?, o["client_order_ref"].as_str()?)))
            .collect();
        for r in rows.iter_mut() {
            let sale = r["sale_id"].get(0).and_then(|v| v.as_i64());
            if let Some(po) = sale.and_then(|id| refs.get(&id)) {
                r["sale_client_order_ref"] = json!(po);
            }
        }
        Ok(())
    }

    async fn ingest_record(
        &self,
        hub: &Hub,
        model: &str,
        rec: &serde_json::Value,
    ) -> Result<(), PollError> {
        if model == "stock.picking"
            && rec.get("picking_type_code").and_then(|v| v.as_str()) != Some("outgoing")
        {
            return Ok(());
        }
        let write_date = rec["write_date"].as_str().unwrap_or("");
        let drafts = match model {
            "stock.picking" => mapping::picking(&self.database, rec),
            _ => mapping::order(&self.database, rec),
        };
        let received = Received {
            source: self.name.clone(),
            headers: vec![("x-odoo-model".into(), model.to_owned())],
            body: serde_json::to_vec(rec).unwrap_or_default(),
            too_large: false,
            url_token: None,
            received_at: OffsetDateTime::now_utc(),
        };
        let payload_key = format!("{model}:{}:{write_date}", rec["id"]);
        hub.ingest_mapped(
            received,
            Mapped {
                payload_key,
                drafts,
            },
        )
        .await?;
        Ok(())
    }

    /// One pass over one model; returns the number of records read.
    pub async fn poll_model(&self, hub: &Hub, model: &str) -> Result<usize, PollError> {
        let cursor_name = format!("{}:{model}", self.name);
        let cursor = hub.store.cursor(&cursor_name).await?;
        let since = minus(
            cursor.as_deref().unwrap_or("1970-01-01 00:00:00"),
            self.overlap,
        );
        let (domain, fields) = match model {
            "stock.picking" => (
                json!([
                    ["write_date", ">=", since],
                    ["picking_type_code", "=", "outgoing"]
                ]),
                PICKING_FIELDS,
            ),
            _ => (json!([["write_date", ">=", since]]), ORDER_FIELDS),
        };
        let mut newest = cursor.clone().unwrap_or_default();
        let mut offset = 0;
        let mut read = 0;
        loop {
            let mut rows = self
                .client
                .search_read(
                    model,
                    domain.clone(),
                    fields,
                    "write_date asc, id asc",
                    self.page,
                    offset,
                )
                .await?;
            if model == "stock.picking" {
                self.with_customer_refs(&mut rows).await?;
            }
            for rec in &rows {
                self.ingest_record(hub, model, rec).await?;
                let write_date = rec["write_date"].as_str().unwrap_or("");
                if write_date > newest.as_str() {
                    newest = write_date.to_owned();
                }
            }
            read += rows.len();
            if rows.len() < self.page {
                break;
            }
            offset += self.page;
        }
        if Some(&newest) != cursor.as_ref() && !newest.is_empty() {
            hub.store.set_cursor(&cursor_name, &newest).await?;
        }
        Ok(read)
    }
}
