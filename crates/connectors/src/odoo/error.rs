//! Odoo errors, classified from Odoo's own error object.

use waybill_model::{Code, FailureKind};

/// A failed Odoo call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OdooError {
    /// Odoo answered with an error object (`data.name` is the Python exception class).
    #[error("odoo {name}: {message}")]
    Server {
        /// Exception class, e.g. `odoo.exceptions.UserError`.
        name: String,
        /// Odoo's message, kept for the operator.
        message: String,
    },
    /// HTTP status outside 2xx without an Odoo error object.
    #[error("odoo answered HTTP {status}")]
    Http {
        /// Status code.
        status: u16,
    },
    /// Timeout, refused or broken connection.
    #[error("odoo unreachable: {0}")]
    Transport(String),
    /// The answer is not what the protocol promises.
    #[error("odoo answer not understood: {0}")]
    Protocol(String),
    /// Login refused (`common.authenticate` returned false).
    #[error("odoo refused the login for `{0}` (check login and API key)")]
    LoginRefused(String),
}

impl OdooError {
    /// How to treat it. Decided by exception name, exhaustively for the kinds we know.
    pub fn kind(&self) -> FailureKind {
        match self {
            OdooError::Server { name, message } => classify(name, message),
            OdooError::Http { status } => match status {
                401 | 403 => FailureKind::Auth,
                408 | 429 | 500..=599 => FailureKind::Retryable,
                _ => FailureKind::Permanent,
            },
            OdooError::Transport(_) => FailureKind::Retryable,
            OdooError::Protocol(_) => FailureKind::Permanent,
            OdooError::LoginRefused(_) => FailureKind::Auth,
        }
    }

    /// The failure code (`odoo.access_denied`, …).
    pub fn failure(&self) -> Code {
        use super::codes as c;
        match self {
            OdooError::Server { name, .. } => match short(name) {
                "AccessDenied" => c::ACCESS_DENIED,
                "AccessError" => c::ACCESS_ERROR,
                "ValidationError" => c::VALIDATION_ERROR,
                "UserError" => c::USER_ERROR,
                "MissingError" => c::MISSING_RECORD,
                _ if is_concurrency(name) => c::SERIALIZATION_FAILURE,
                _ => c::SERVER_ERROR,
            },
            OdooError::Http { .. } => c::HTTP_ERROR,
            OdooError::Transport(_) => c::UNREACHABLE,
            OdooError::Protocol(_) => c::PROTOCOL_ERROR,
            OdooError::LoginRefused(_) => c::LOGIN_REFUSED,
        }
    }

    /// Stable code for operators (`odoo.access_denied`, …).
    pub fn code(&self) -> &'static str {
        self.failure().as_str()
    }
}

fn short(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn is_concurrency(name: &str) -> bool {
    let n = short(name);
    matches!(
        n,
        "SerializationFailure"
            | "TransactionRollbackError"
            | "LockNotAvailable"
            | "DeadlockDetected"
            | "ConcurrentUpdate"
            // Odoo 19's name for a row lock it could not take (JSON-2 answers 409).
            | "LockError"
            // What a real Odoo 18 answered when two validations raced on one company
            // record: the first statement failed, the rest of its transaction was refused.
            | "InFailedSqlTransaction"
    )
}

fn classify(name: &str, message: &str) -> FailureKind {
    match short(name) {
        "AccessDenied" | "AccessError" | "Unauthorized" | "Forbidden" => FailureKind::Auth,
        "ValidationError" | "UserError" | "MissingError" | "RedirectWarning" => {
            FailureKind::Permanent
        }
        // Login throttling ("Too many login failures"): wait and retry.
        _ if message.contains("Too many login failures") => FailureKind::Retryable,
        _ if is_concurrency(name) => FailureKind::Retryable,
        // Anything else is a server-side bug or a bad call: retrying the same call repeats it.
        _ => FailureKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, message: &str) -> OdooError {
        OdooError::Server {
            name: name.into(),
            message: message.into(),
        }
    }

    #[test]
    fn transaction_conflicts_are_retried_and_business_refusals_are_not() {
        for n in [
            "psycopg2.errors.SerializationFailure",
            "psycopg2.errors.InFailedSqlTransaction",
            "odoo.exceptions.LockError",
        ] {
            let e = server(n, "x");
            assert_eq!(e.kind(), FailureKind::Retryable, "{n}");
            assert_eq!(e.code(), "odoo.serialization_failure", "{n}");
        }
        assert_eq!(
            server("odoo.exceptions.UserError", "x").kind(),
            FailureKind::Permanent
        );
        assert_eq!(
            server("odoo.exceptions.AccessError", "x").kind(),
            FailureKind::Auth
        );
        assert_eq!(
            server("builtins.ValueError", "Wrong value for stock.picking.state").kind(),
            FailureKind::Permanent
        );
    }
}
