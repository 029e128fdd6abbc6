//! What a caller without `read:pii` sees: every view that can carry personal data
//! (timelines, facts, conflicts, dead letters' events, workflow state, tasks, inbox
//! payloads) goes through here, and its personal values are replaced by `***`
//! ([`waybill_model::privacy`]). A payload that is not JSON (X12, CSV) cannot be masked
//! field by field: its body is withheld.

use crate::auth::{Caller, Scope};
use crate::AppState;
use serde::Serialize;
use serde_json::Value;

/// Whether the caller may see personal data: `read:pii` (or `admin`).
pub(crate) struct Pii(pub bool);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Pii {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Pii(parts
            .extensions
            .get::<Caller>()
            .is_some_and(|c| c.may(&Scope::ReadPii))))
    }
}

/// `v` as JSON, its personal values masked unless `pii`.
pub(crate) fn shown<T: Serialize>(st: &AppState, pii: Pii, v: &T) -> Value {
    let mut j = serde_json::to_value(v).unwrap_or(Value::Null);
    if !pii.0 {
        st.hub.privacy().mask(&mut j);
    }
    j
}

/// An inbox record (or a list of them under `key`) as JSON: without `pii`, a JSON body
/// has its personal values masked and any other body is withheld.
pub(crate) fn shown_inbox(st: &AppState, pii: &Pii, mut records: Vec<Value>) -> Vec<Value> {
    if pii.0 {
        return records;
    }
    let p = st.hub.privacy();
    for r in records.iter_mut() {
        let Some(body) = r.get("body").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let replaced = match serde_json::from_str::<Value>(&body) {
            Ok(mut j) => {
                p.mask(&mut j);
                j.to_string()
            }
            Err(_) if body.is_empty() => body,
            Err(_) => format!(
                "[{} bytes withheld: a payload that is not JSON may hold personal data; a key with read:pii shows it]",
                body.len()
            ),
        };
        r["body"] = Value::String(replaced);
        r["masked"] = Value::Bool(true);
    }
    records
}
