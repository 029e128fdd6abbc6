//! The HTTP interface (axum): `/v1/ingest/{source}`, the REST API under `/v1`, health
//! (`/healthz`, `/readyz`) and Prometheus metrics (`/metrics`).
//!
//! Place in the flow: the door. It turns HTTP into engine calls and engine answers into
//! HTTP; it holds no state of its own.
//! Never does: answer 2xx to an ingest before the engine says the payload is durable;
//! show server internals in an error (those are logged; clients get RFC 9457 problems).

mod audit;
pub mod auth;
pub mod codes;
mod erasure;
mod keys;
pub use keys::check_request as check_key_request;
mod manage;
mod openapi;
mod privacy;
mod problem;
mod routes;
mod tenant;
mod ui;
mod workflows;

pub use problem::Problem;
pub use routes::router;

use std::sync::Arc;
use waybill_engine::secret::Secret;
use waybill_engine::Hub;

/// What the handlers share.
pub struct AppState {
    /// The engine.
    pub hub: Arc<Hub>,
    /// Bearer keys accepted on `/v1` (except ingest, which each source authenticates).
    pub api_keys: Vec<Secret>,
    /// Largest body accepted on `/v1/events` and for unknown sources.
    pub max_body_bytes: usize,
    /// This instance's id among those sharing the store.
    pub instance: String,
    /// What this instance holds (shown by `/readyz`).
    pub leases: waybill_engine::lease::Leases,
    /// The workflow runtime, when workflows are configured (the workbench routes).
    pub workflows: Option<Arc<waybill_engine::workflow::runtime::Runtime>>,
    /// Hub-issued API keys looked up recently.
    pub keys: auth::KeyCache,
}
