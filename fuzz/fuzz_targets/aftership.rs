//! AfterShip tracking webhooks: `map` on the raw body, and `verify` with the body as the `aftership-hmac-sha256` value and as the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use waybill_connectors::aftership;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = aftership::map(data, OffsetDateTime::UNIX_EPOCH) {
        common::to_events(m.drafts, &m.payload_key);
    }
    let text: String = String::from_utf8_lossy(data).into();
    // The input as the header value, the configured secret fixed.
    let headers = vec![(aftership::SIGNATURE_HEADER.to_string(), text.clone())];
    let _ = aftership::verify(&headers, data, "secret");
    // A well-formed header value, the input as the configured secret.
    let headers = vec![(
        aftership::SIGNATURE_HEADER.to_ascii_uppercase(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_string(),
    )];
    let _ = aftership::verify(&headers, data, &text);
});
