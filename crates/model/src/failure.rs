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
