//! Karrio tracker webhooks: `map` on the raw body, and `verify` with the body as the `X-Event-Id` value and as the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use waybill_connectors::karrio;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = karrio::map(data, OffsetDateTime::UNIX_EPOCH) {
        common::to_events(m.drafts, &m.payload_key);
    }
    let text: String = String::from_utf8_lossy(data).into();
    // The input as the header value, the configured secret fixed.
    let headers = vec![(karrio::SECRET_HEADER.to_string(), text.clone())];
    let _ = karrio::verify(&headers, data, "secret");
    // A well-formed header value, the input as the configured secret.
    let headers = vec![(
        karrio::SECRET_HEADER.to_ascii_uppercase(),
        "not-the-secret".to_string(),
    )];
    let _ = karrio::verify(&headers, data, &text);
});
