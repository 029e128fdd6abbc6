//! Why a partner payload could not be mapped, with where in the input it went wrong.
//!
//! Syntax errors carry serde's line and column; every other error carries a JSON path in
//! the partner's own field names (`result.tracking_details[3].datetime`). Codes are stable
//! (`easypost.bad_json`, `aftership.missing_field`, …) and documented per variant.

use crate::carrier::json_path::path_at;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::fmt;
use waybill_model::Code;

/// The carrier format whose payload failed: its name (the code prefix) and its five codes
/// (`<name>.bad_json`, `.bad_shape`, `.missing_field`, `.bad_time`, `.bad_value`), made by
/// [`crate::carrier::partner!`] in the format's own folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partner {
    name: &'static str,
    codes: &'static [Code; 5],
}

impl Partner {
    /// A partner with its codes, in the order bad_json, bad_shape, missing_field, bad_time,
    /// bad_value (use the macro, which spells them).
    pub const fn new(name: &'static str, codes: &'static [Code; 5]) -> Self {
        Partner { name, codes }
    }

    /// The format's name: its config `type`, folder and code prefix.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Its five codes.
    pub const fn codes(&self) -> &'static [Code; 5] {
        self.codes
    }
}

impl fmt::Display for Partner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A payload that cannot be mapped. All of them are `FailureKind::InvalidInput`: the same
/// bytes will fail the same way, so they are stored as rejected, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// `<partner>.bad_json`: the body is not JSON at all (or is truncated).
    #[error("{partner}: body is not valid JSON at line {line}, column {column}: {message}")]
    BadJson {
        /// Partner.
        partner: Partner,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde's message.
        message: String,
    },
    /// `<partner>.bad_shape`: valid JSON, but a field has the wrong type.
    #[error("{partner}: {path}: {message} (line {line}, column {column})")]
    BadShape {
        /// Partner.
        partner: Partner,
        /// JSON path of the offending value.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde's message.
        message: String,
    },
    /// `<partner>.missing_field`: a field the mapping needs is absent, null or blank.
    #[error("{partner}: {path}: required field is missing")]
    MissingField {
        /// Partner.
        partner: Partner,
        /// JSON path of the missing field.
        path: String,
    },
    /// `<partner>.bad_time`: a date-time that is not one (see `carrier::timestamps`).
    #[error("{partner}: {path}: `{value}` is not a date-time")]
    BadTime {
        /// Partner.
        partner: Partner,
        /// JSON path.
        path: String,
        /// The value as sent.
        value: String,
    },
    /// `<partner>.bad_value`: a value that cannot be used (e.g. no shipment key from it).
    #[error("{partner}: {path}: {message}")]
    BadValue {
        /// Partner.
        partner: Partner,
        /// JSON path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl MapError {
    /// A required field is absent at `path`.
    pub fn missing(partner: Partner, path: &str) -> Self {
        MapError::MissingField {
            partner,
            path: path.to_owned(),
        }
    }

    /// The tracking key could not be built; names the carrier or the tracking field.
    pub fn bad_tracking_key(
        partner: Partner,
        e: &crate::carrier::tracking_key::TrackingKeyError,
        carrier_path: &str,
        tracking_path: &str,
    ) -> Self {
        use crate::carrier::tracking_key::TrackingKeyError as K;
        let path = match e {
            K::EmptyCarrier => carrier_path,
            K::EmptyTracking | K::TooLong => tracking_path,
        };
        MapError::BadValue {
            partner,
            path: path.to_owned(),
            message: e.to_string(),
        }
    }

    /// The failure code, `<partner>.<kind>`: `bad_json` is a bad request (400), the others
    /// unprocessable (422).
    pub fn failure(&self) -> Code {
        let (partner, kind) = match self {
            MapError::BadJson { partner, .. } => (partner, 0),
            MapError::BadShape { partner, .. } => (partner, 1),
            MapError::MissingField { partner, .. } => (partner, 2),
            MapError::BadTime { partner, .. } => (partner, 3),
            MapError::BadValue { partner, .. } => (partner, 4),
        };
        partner.codes[kind]
    }

    /// The failure code as written in answers and logs.
    pub fn code(&self) -> &'static str {
        self.failure().as_str()
    }

    /// The JSON path of the failure, when it is known (all but `bad_json`).
    pub fn path(&self) -> Option<&str> {
        match self {
            MapError::BadJson { .. } => None,
            MapError::BadShape { path, .. }
            | MapError::MissingField { path, .. }
            | MapError::BadTime { path, .. }
            | MapError::BadValue { path, .. } => Some(path),
        }
    }
}

/// Parses `body` as `T`: syntax errors become `bad_json`, type errors `bad_shape` with the
/// JSON path of the offending value.
pub fn parse_json<T: DeserializeOwned>(partner: Partner, body: &[u8]) -> Result<T, MapError> {
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(body) {
        return Err(MapError::BadJson {
            partner,
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        });
    }
    serde_json::from_slice::<T>(body).map_err(|e| MapError::BadShape {
        partner,
        path: path_at(body, e.line(), e.column()),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })
}

/// serde's message without its trailing ` at line L column C` (kept in fields instead).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The fallback idempotency key: SHA-256 of the canonical JSON (keys sorted, no
/// whitespace), so the same payload re-sent with other formatting keeps its key.
pub fn content_key(body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_vec(&sorted(v)).ok())
        .unwrap_or_else(|| body.to_vec());
    format!("sha256:{}", waybill_model::ids::content_hash(&canonical))
}

/// Sorts object keys recursively (explicitly: serde_json keeps insertion order when some
/// crate in the build enables its `preserve_order` feature).
fn sorted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut pairs: Vec<(String, Value)> = m.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(pairs.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_key_ignores_formatting_and_key_order() {
        let a = content_key(br#"{"b": [1, {"y": 2, "x": 1}], "a": null}"#);
        let b = content_key(b"{\"a\":null,\n \"b\":[1,{\"x\":1,\"y\":2}]}");
        assert_eq!(a, b);
        assert_ne!(a, content_key(br#"{"a": 1}"#));
    }

    #[test]
    fn codes_are_prefixed_by_the_partner() {
        let e = MapError::MissingField {
            partner: crate::karrio::P,
            path: "data.tracking_number".into(),
        };
        assert_eq!(e.code(), "karrio.missing_field");
        assert_eq!(e.path(), Some("data.tracking_number"));
        let e = parse_json::<serde_json::Value>(crate::aftership::P, b"{").expect_err("eof");
        assert_eq!(e.code(), "aftership.bad_json");
    }
}
