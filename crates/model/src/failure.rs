//! How a failure should be treated, decided once and carried as data.

use serde::{Deserialize, Serialize};

/// Classification of any failure talking to a partner or reading partner input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Try again later (timeouts, 5xx, 429, connection refused, serialization failures).
    Retryable,
    /// Trying again will not help (4xx validation errors, missing records).
    Permanent,
    /// Credentials or permissions are wrong: an operator must act.
    Auth,
    /// The input itself is malformed.
    InvalidInput,
}

impl FailureKind {
    /// Whether a delivery that failed this way should be attempted again.
    pub fn should_retry(self) -> bool {
        match self {
            FailureKind::Retryable => true,
            // Credentials get fixed by operators; keep trying on the schedule so that the
            // backlog drains by itself once they are.
            FailureKind::Auth => true,
            FailureKind::Permanent => false,
            FailureKind::InvalidInput => false,
        }
    }

    /// Stable lowercase name, used in metrics labels and API bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Retryable => "retryable",
            FailureKind::Permanent => "permanent",
            FailureKind::Auth => "auth",
            FailureKind::InvalidInput => "invalid_input",
        }
    }
}

/// What a failure code is about, which decides how it is answered. Only the HTTP API turns
/// a class into a status (`waybill_api`); everything else carries the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeClass {
    /// The request is malformed (a body that is not JSON, a bad query): 400.
    BadRequest,
    /// The sender is not who it claims (signature, key, token): 401.
    Unauthenticated,
    /// The sender is known but may not do this (a key without the scope): 403.
    Forbidden,
    /// What the request names does not exist: 404.
    NotFound,
    /// What the request names is ambiguous (an identifier of several shipments): 409.
    Conflict,
    /// The body is larger than allowed: 413.
    TooLarge,
    /// The sender is over a rate limit, or the hub over its cap of requests in flight;
    /// nothing was stored and the answer says when to retry: 429.
    TooManyRequests,
    /// Well-formed input that cannot be used (mapping, partner format, EDI): 422.
    Unprocessable,
    /// The hub cannot serve the request now (store failure): 503.
    Unavailable,
    /// The store's disk is full: nothing was stored, retry once space returns: 507.
    StorageFull,
    /// Found reading a dropped file; never answered over HTTP (kept in the inbox and the
    /// file's error report).
    File,
    /// A delivery to a sink failed; kept on the attempt and the dead letter.
    Delivery,
    /// Found when the configuration is validated; the hub does not start.
    Config,
}

/// A stable failure code (`ingest.bad_json`, `x12.segment_count_mismatch`,
/// `odoo.access_denied`) with its class. Every code is a constant of the crate that raises
/// it, listed in that crate's `CODES`, and documented in docs/errors.md (a test compares
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code {
    name: &'static str,
    class: CodeClass,
}

impl Code {
    /// A code; `name` is `<area>.<what>` in lower case.
    pub const fn new(name: &'static str, class: CodeClass) -> Self {
        Code { name, class }
    }

    /// The code as written in answers, the inbox and the docs.
    pub const fn as_str(self) -> &'static str {
        self.name
    }

    /// What the code is about.
    pub const fn class(self) -> CodeClass {
        self.class
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.name == *other
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}
