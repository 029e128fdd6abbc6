//! The Odoo client: one connection pool, a concurrency limit, two protocols.

use super::{OdooConfig, OdooError};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};
use tokio::time::Instant;
use waybill_engine::config::ConfigError;
use waybill_engine::secret::Secret;
use waybill_engine::telemetry::{current_span, SpanKind};

/// Wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `/jsonrpc` + `execute_kw` (Odoo 17, 18, 19).
    JsonRpc,
    /// `/json/2/<model>/<method>` (Odoo 19+).
    Json2,
}

/// A client for one Odoo database.
pub struct OdooClient {
    http: reqwest::Client,
    base: String,
    database: String,
    login: String,
    key: Secret,
    configured: Option<Protocol>,
    protocol: OnceCell<Protocol>,
    uid: OnceCell<i64>,
    limit: Semaphore,
    /// Time between request starts (rate limit), and when the next one may start.
    spacing: Option<Duration>,
    next_start: Mutex<Option<Instant>>,
    next_id: AtomicU64,
    requests: AtomicU64,
}

/// Order and page of a `search_read`.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// `order`, e.g. `id asc`.
    pub order: &'a str,
    /// Most rows (0: all).
    pub limit: usize,
    /// Rows skipped.
    pub offset: usize,
}

/// A request slot: a place under the concurrency limit, taken after the rate limit's
/// wait. Held by a batched reader while it gathers the keys it will ask for.
pub struct Ticket<'a>(#[allow(dead_code)] SemaphorePermit<'a>);

impl OdooClient {
    /// Validates the configuration (no network) and builds the client.
    pub fn build(cfg: &OdooConfig) -> Result<OdooClient, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let configured = match cfg.protocol.as_str() {
            "auto" => None,
            "jsonrpc" => Some(Protocol::JsonRpc),
            "json2" => Some(Protocol::Json2),
            other => {
                errs.push(ConfigError::new(
                    "protocol",
                    format!("`{other}` (use auto, jsonrpc or json2)"),
                ));
                None
            }
        };
        if !(cfg.max_requests_per_second >= 0.0 && cfg.max_requests_per_second.is_finite()) {
            errs.push(ConfigError::new(
                "max_requests_per_second",
                "must be a number ≥ 0",
            ));
        }
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            errs.push(ConfigError::new(
                "url",
                "must start with http:// or https://",
            ));
        }
        let key = cfg
            .api_key
            .resolve()
            .map_err(|e| errs.push(ConfigError::new("api_key", e)))
            .ok();
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .pool_max_idle_per_host(cfg.max_concurrency.max(1))
            .build()
            .map_err(|e| errs.push(ConfigError::new("", format!("http client: {e}"))))
            .ok();
        match (key, http) {
            (Some(key), Some(http)) if errs.is_empty() => Ok(OdooClient {
                http,
                base: cfg.url.trim_end_matches('/').to_owned(),
                database: cfg.database.clone(),
                login: cfg.login.clone(),
                key,
                configured,
                protocol: OnceCell::new(),
                uid: OnceCell::new(),
                limit: Semaphore::new(cfg.max_concurrency.max(1)),
                spacing: (cfg.max_requests_per_second > 0.0)
                    .then(|| Duration::from_secs_f64(1.0 / cfg.max_requests_per_second)),
                next_start: Mutex::new(None),
                next_id: AtomicU64::new(1),
                requests: AtomicU64::new(0),
            }),
            _ => Err(errs),
        }
    }

    /// Requests sent so far (for RPCs-per-event figures).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Waits for a request slot: a place under the concurrency limit, then the rate
    /// limit's turn. Authentication and protocol detection happen first, so a request
    /// made with the ticket needs no other slot.
    pub async fn ticket(&self) -> Result<Ticket<'_>, OdooError> {
        if self.protocol().await? == Protocol::JsonRpc {
            self.uid().await?;
        }
        self.slot().await
    }

    async fn slot(&self) -> Result<Ticket<'_>, OdooError> {
        let permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| OdooError::Transport("client closed".into()))?;
        if let Some(gap) = self.spacing {
            let now = Instant::now();
            let start = {
                let mut next = match self.next_start.lock() {
                    Ok(n) => n,
                    Err(p) => p.into_inner(),
                };
                let start = next.map_or(now, |t| t.max(now));
                *next = Some(start + gap);
                start
            };
            tokio::time::sleep_until(start).await;
        }
        Ok(Ticket(permit))
    }

    /// Every request to Odoo goes through here: one `odoo.rpc` span (model, method,
    /// protocol) under the task's trace context when there is one, whose context the
    /// request carries as `traceparent`.
    async fn post(
        &self,
        url: &str,
        body: &Value,
        (model, method): (&str, &str),
        json2: bool,
        ticket: Option<Ticket<'_>>,
    ) -> Result<(u16, Value), OdooError> {
        let _ticket = match ticket {
            Some(t) => t,
            None => self.slot().await?,
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut span = current_span("odoo.rpc", SpanKind::Client);
        let mut req = self.http.post(url).json(body);
        if let Some(t) = span.context() {
            span.attr("odoo.model", model);
            span.attr("odoo.method", method);
            span.attr("odoo.protocol", if json2 { "json2" } else { "jsonrpc" });
            req = req.header("traceparent", t.to_string());
        }
        if json2 {
            req = req
                .header("authorization", format!("bearer {}", self.key.expose()))
                .header("x-odoo-database", &self.database);
        }
        let answer = async {
            let resp = req.send().await.map_err(|e| {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "request failed"
                };
                OdooError::Transport(format!("{what}: {}", e.without_url()))
            })?;
            let status = resp.status().as_u16();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| OdooError::Transport(e.without_url().to_string()))?;
            let v = if bytes.is_empty() {
                Value::Null
            } else {
                match serde_json::from_slice(&bytes) {
                    Ok(v) => v,
                    Err(_) if !(200..300).contains(&status) => {
                        return Err(OdooError::Http { status })
                    }
                    Err(e) => return Err(OdooError::Protocol(format!("not JSON: {e}"))),
                }
            };
            Ok((status, v))
        }
        .await;
        if span.is_recording() {
            match &answer {
                Ok((status, v)) => {
                    span.attr("http.response.status_code", *status);
                    if !(200..300).contains(status) || v.get("error").is_some() {
                        span.fail("Odoo answered an error");
                    }
                }
                Err(e) => span.fail(e.to_string()),
            }
        }
        answer
    }

    /// One JSON-RPC call; `result` absent means `null` (a method returning None).
    /// `rpc` names the call for its trace span: (model, method), or (service, method)
    /// for the `common` service.
    async fn jsonrpc(
        &self,
        service: &str,
        method: &str,
        args: Value,
        rpc: (&str, &str),
        ticket: Option<Ticket<'_>>,
    ) -> Result<Value, OdooError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "method": "call", "id": id,
                          "params": {"service": service, "method": method, "args": args}});
        let (status, v) = self
            .post(&format!("{}/jsonrpc", self.base), &body, rpc, false, ticket)
            .await?;
        if let Some(err) = v.get("error") {
            return Err(server_error(err));
        }
        if !(200..300).contains(&status) {
            return Err(OdooError::Http { status });
        }
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    }

    /// `common.version`: server version info.
    pub async fn version(&self) -> Result<Value, OdooError> {
        self.jsonrpc("common", "version", json!([]), ("common", "version"), None)
            .await
    }

    /// The protocol in use (detected once from `common.version` when `auto`).
    pub async fn protocol(&self) -> Result<Protocol, OdooError> {
        if let Some(p) = self.configured {
            return Ok(p);
        }
        self.protocol
            .get_or_try_init(|| async {
                let v = self.version().await?;
                let major = v["server_version_info"][0].as_i64().unwrap_or(0);
                let p = if major >= 19 {
                    Protocol::Json2
                } else {
                    Protocol::JsonRpc
                };
                tracing::info!(url = %self.base, database = %self.database, server_version = %v["server_version"], protocol = ?p, "odoo: protocol chosen from common.version");
                Ok(p)
            })
            .await
            .copied()
    }

    /// The API user's id (`common.authenticate`, once).
    pub async fn uid(&self) -> Result<i64, OdooError> {
        self.uid
            .get_or_try_init(|| async {
                let v = self
                    .jsonrpc(
                        "common",
                        "authenticate",
                        json!([self.database, self.login, self.key.expose(), {}]),
                        ("common", "authenticate"),
                        None,
                    )
                    .await?;
                v.as_i64()
                    .ok_or_else(|| OdooError::LoginRefused(self.login.clone()))
            })
            .await
            .copied()
    }

    /// The API user's id: `common.authenticate` over JSON-RPC; over JSON-2 (which has no
    /// login step) the `res.users` record with the configured login. Read once.
    pub async fn api_user_id(&self) -> Result<i64, OdooError> {
        if self.protocol().await? == Protocol::JsonRpc {
            return self.uid().await;
        }
        self.uid
            .get_or_try_init(|| async {
                let rows = self
                    .search_read(
                        "res.users",
                        json!([["login", "=", self.login]]),
                        &["id"],
                        "id asc",
                        1,
                        0,
                    )
                    .await?;
                rows.first()
                    .and_then(|r| r["id"].as_i64())
                    .ok_or_else(|| OdooError::LoginRefused(self.login.clone()))
            })
            .await
            .copied()
    }

    /// Calls `model.method` on `ids` (None for model methods) with named arguments.
    pub async fn call(
        &self,
        model: &str,
        method: &str,
        ids: Option<&[i64]>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, OdooError> {
        self.call_with(None, model, method, ids, kwargs).await
    }

    /// [`call`](Self::call) in a slot already taken with [`ticket`](Self::ticket).
    pub async fn call_with(
        &self,
        ticket: Option<Ticket<'_>>,
        model: &str,
        method: &str,
        ids: Option<&[i64]>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, OdooError> {
        tracing::debug!(model, method, ids = ?ids, "odoo call");
        match self.protocol().await? {
            Protocol::JsonRpc => {
                let args = match ids {
                    Some(ids) => json!([ids]),
                    None => json!([]),
                };
                self.execute_kw(ticket, model, method, args, kwargs).await
            }
            Protocol::Json2 => {
                let mut body = kwargs;
                if let Some(ids) = ids {
                    body.insert("ids".into(), json!(ids));
                }
                let url = format!("{}/json/2/{model}/{method}", self.base);
                let (status, v) = self
                    .post(&url, &Value::Object(body), (model, method), true, ticket)
                    .await?;
                if (200..300).contains(&status) {
                    Ok(v)
                } else if v.get("name").is_some() {
                    Err(server_error(&json!({"data": v})))
                } else {
                    Err(OdooError::Http { status })
                }
            }
        }
    }

    /// `object.execute_kw` over JSON-RPC with positional `args` and keyword `kwargs`.
    async fn execute_kw(
        &self,
        ticket: Option<Ticket<'_>>,
        model: &str,
        method: &str,
        args: Value,
        kwargs: Map<String, Value>,
    ) -> Result<Value, OdooError> {
        let uid = self.uid().await?;
        let params = json!([
            self.database,
            uid,
            self.key.expose(),
            model,
            method,
            args,
            kwargs
        ]);
        self.jsonrpc("object", "execute_kw", params, (model, method), ticket)
            .await
    }

    /// `search_read` with an explicit field list, ordered and paged.
    pub async fn search_read(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
        order: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Value>, OdooError> {
        let page = Page {
            order,
            limit,
            offset,
        };
        self.search_read_with(None, model, domain, fields, page, None)
            .await
    }

    /// [`search_read`](Self::search_read) in a slot already taken, with a context
    /// (`allowed_company_ids`, …). A limit of 0 reads every match.
    pub async fn search_read_with(
        &self,
        ticket: Option<Ticket<'_>>,
        model: &str,
        domain: Value,
        fields: &[&str],
        page: Page<'_>,
        context: Option<&Value>,
    ) -> Result<Vec<Value>, OdooError> {
        let mut kw = Map::new();
        kw.insert("domain".into(), domain);
        kw.insert("fields".into(), json!(fields));
        kw.insert("order".into(), json!(page.order));
        kw.insert("limit".into(), json!(page.limit));
        kw.insert("offset".into(), json!(page.offset));
        if let Some(c) = context {
            kw.insert("context".into(), c.clone());
        }
        match self
            .call_with(ticket, model, "search_read", None, kw)
            .await?
        {
            Value::Array(rows) => Ok(rows),
            other => Err(OdooError::Protocol(format!("search_read returned {other}"))),
        }
    }

    /// `create` of records; returns their ids. Over JSON-RPC the values must be the first
    /// positional argument: Odoo's `call_kw` for `create` reads `args[0]` and fails with
    /// `IndexError: tuple index out of range` when they come as keyword arguments (seen on
    /// a real Odoo 18).
    pub async fn create(
        &self,
        model: &str,
        vals_list: Value,
        context: Option<Value>,
    ) -> Result<Vec<i64>, OdooError> {
        self.create_with(None, model, vals_list, context).await
    }

    /// [`create`](Self::create) in a slot already taken with [`ticket`](Self::ticket).
    pub async fn create_with(
        &self,
        ticket: Option<Ticket<'_>>,
        model: &str,
        vals_list: Value,
        context: Option<Value>,
    ) -> Result<Vec<i64>, OdooError> {
        let v = match self.protocol().await? {
            Protocol::JsonRpc => {
                let mut kw = Map::new();
                if let Some(c) = context {
                    kw.insert("context".into(), c);
                }
                self.execute_kw(ticket, model, "create", json!([vals_list]), kw)
                    .await?
            }
            Protocol::Json2 => {
                let mut kw = Map::new();
                kw.insert("vals_list".into(), vals_list);
                if let Some(c) = context {
                    kw.insert("context".into(), c);
                }
                self.call_with(ticket, model, "create", None, kw).await?
            }
        };
        match v {
            Value::Array(a) => Ok(a.iter().filter_map(Value::as_i64).collect()),
            Value::Number(n) => Ok(n.as_i64().into_iter().collect()),
            other => Err(OdooError::Protocol(format!("create returned {other}"))),
        }
    }

    /// `write` of values on records.
    pub async fn write(&self, model: &str, ids: &[i64], vals: Value) -> Result<Value, OdooError> {
        let mut kw = Map::new();
        kw.insert("vals".into(), vals);
        self.call(model, "write", Some(ids), kw).await
    }
}

fn server_error(err: &Value) -> OdooError {
    let data = &err["data"];
    OdooError::Server {
        name: data["name"].as_str().unwrap_or("unknown").to_owned(),
        message: data["message"]
            .as_str()
            .or_else(|| err["message"].as_str())
            .unwrap_or("")
            .to_owned(),
    }
}
