//! `jq`: any JSON partner, mapped by a jq program from the configuration — a new partner
//! is onboarded without a recompile.
//!
//! Direction: inbound (`POST /v1/ingest/<name>`). Authentication: Standard Webhooks, API
//! key or URL token (`auth`). The program sees the parsed body as `.`, the request headers
//! as `$headers` (credentials removed by the hub before mapping) and the source name as
//! `$source`; it outputs event drafts (docs/configuration.md, "Writing a mapping").
//!
//! Idempotency key: the `idempotency_key` expression when configured, else the
//! `webhook-id` header, then `Idempotency-Key`, then the SHA-256 of the body.

use serde::Deserialize;
use waybill_engine::codes;
use waybill_engine::config::ConfigError;
use waybill_engine::ingest::{Auth, AuthConfig, DEFAULT_MAX_BODY};
use waybill_engine::partner::{Inbound, Mapped, Rejection};
use waybill_engine::Received;
use waybill_mapping::{MappingError, Payload, Program};
use waybill_model::ids::content_hash;

/// `[sources.<name>]` with `type = "jq"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JqConfig {
    /// Authentication of requests.
    pub auth: AuthConfig,
    /// jq program from the partner payload to event drafts (see `waybill_model::draft`).
    pub mapping: String,
    /// jq expression giving the payload's idempotency key; default: the `webhook-id`
    /// header, then `Idempotency-Key`, then a SHA-256 of the body.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Largest accepted body in bytes (default 1 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Inbound rate limit, `{ per_second = 100, burst = 200 }` (default: `[limits].rate_limit`).
    #[serde(default)]
    pub rate_limit: Option<waybill_engine::limit::RateLimit>,
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY
}

/// A jq source ready to receive: secrets resolved, programs compiled.
pub struct JqSource {
    name: String,
    auth: Auth,
    mapping: Program,
    idempotency_key: Option<Program>,
    max_body_bytes: usize,
}

impl JqSource {
    /// Validates a configured source (no network); errors are `field: message`.
    pub fn build(name: &str, cfg: &JqConfig) -> Result<JqSource, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let auth = Auth::build(&cfg.auth).map_err(|e| errs.extend(e)).ok();
        let mapping = Program::compile(&cfg.mapping)
            .map_err(|e| errs.push(ConfigError::new("mapping", e)))
            .ok();
        let idem = match &cfg.idempotency_key {
            None => None,
            Some(code) => Program::compile(code)
                .map_err(|e| errs.push(ConfigError::new("idempotency_key", e)))
                .ok(),
        };
        match (mapping, auth) {
            (Some(mapping), Some(auth)) if errs.is_empty() => Ok(JqSource {
                name: name.to_owned(),
                auth,
                mapping,
                idempotency_key: idem,
                max_body_bytes: cfg.max_body_bytes,
            }),
            _ => Err(errs),
        }
    }
}

/// A mapping failure as a rejection: a body that is not JSON is a bad request.
fn rejection(e: MappingError) -> Rejection {
    match e {
        MappingError::Json(_) => Rejection::new(codes::BAD_JSON, e.to_string()),
        other => Rejection::new(other.failure(), other.to_string()),
    }
}

impl Inbound for JqSource {
    fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    fn authenticate(&self, r: &Received) -> Result<(), Rejection> {
        self.auth.check(r)
    }

    fn map(&self, r: &Received) -> Result<Mapped, Rejection> {
        let payload = Payload::parse(&r.body).map_err(rejection)?;
        // Only a program that names `$headers` is shown them.
        let shown = self.mapping.uses_headers()
            || self
                .idempotency_key
                .as_ref()
                .is_some_and(Program::uses_headers);
        let no_headers = Vec::new();
        let headers = if shown { &r.headers } else { &no_headers };
        let payload_key = match &self.idempotency_key {
            Some(p) => {
                let v = p
                    .run_values(&payload, headers, &self.name)
                    .map_err(rejection)?;
                match v.first() {
                    Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => {
                        return Err(Rejection::new(
                            codes::NO_IDEMPOTENCY_KEY,
                            "idempotency_key expression gave no string",
                        ))
                    }
                }
            }
            None => r
                .header("webhook-id")
                .or_else(|| r.header("idempotency-key"))
                .map(str::to_owned)
                .unwrap_or_else(|| content_hash(&r.body)),
        };
        let drafts = self
            .mapping
            .run(&payload, headers, &self.name)
            .map_err(rejection)?;
        Ok(Mapped {
            payload_key,
            drafts,
        })
    }
}
