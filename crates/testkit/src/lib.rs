//! Test support, a dev-dependency only: [`FakePartner`] (an HTTP server that records what
//! it receives and answers as scripted: outage, then recovery) and the store behaviour
//! suite ([`store_suite`]) that every store backend must pass, and a small WebDriver
//! client for browser tests ([`webdriver`]).
#![allow(clippy::unwrap_used)]

pub mod audit_suite;
pub mod fake_odoo;
pub mod fake_partner;
pub mod identity_suite;
pub mod karrio;
pub mod pg;
pub mod retention_suite;
pub mod store_suite;
pub mod webdriver;

pub use fake_partner::{FakePartner, Recorded};
