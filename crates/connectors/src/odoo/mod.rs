//! `odoo`: the Odoo connector — the client, the `write_date` poller and the automation-rule
//! webhook receiver (Odoo → Waybill), and the sink (Waybill → Odoo: tracking, validation,
//! chatter, activities).
//!
//! Protocols, behind one client:
//! - JSON-RPC (Odoo 17, 18; still served by 19): `POST /jsonrpc`, `common.version`,
//!   `common.authenticate(db, login, key, {})`, `object.execute_kw(db, uid, key, model,
//!   method, args, kwargs)`. Errors come with HTTP 200 and an `error` object whose
//!   `data.name` is the Python exception; a method returning None answers with no `result`
//!   key (read as `null`). See ../shared/design/ODOO.md §3.
//! - JSON-2 (Odoo 19+): `POST /json/2/<model>/<method>`, `Authorization: bearer <key>`,
//!   `X-Odoo-Database`, named arguments in a JSON object (`ids` for record methods). Its
//!   error body shape is taken from the Odoo 19 source and is not yet verified against a
//!   running server.
//!
//! Calls are named-argument based (`call(model, method, ids, kwargs)`), which both
//! protocols express: JSON-RPC passes `[ids]` as the positional args and the rest as
//! kwargs. Authentication: a user's API key (`res.users.apikeys`) is the RPC password.
//! A semaphore bounds concurrent requests; one `reqwest` client reuses connections.
//! Errors are classified into [`FailureKind`](waybill_model::FailureKind) from Odoo's
//! error object, keeping Odoo's message for the operator.

mod batch;
mod client;
pub mod codes;
mod config;
mod error;
pub mod mapping;
mod poller;
mod sink;
mod webhook;
pub mod workflow;

pub use batch::BatchedRead;
pub use client::{OdooClient, Page, Protocol, Ticket};
pub use config::OdooConfig;
pub use error::OdooError;
pub use poller::{OdooPoller, OdooSourceConfig, PollError};
pub use sink::{
    default_actions, Action, OdooSink, OdooSinkConfig, OrderRefField, UnmatchedLines, ValidateSms,
};
pub use webhook::OdooWebhook;

#[cfg(test)]
mod tests;
