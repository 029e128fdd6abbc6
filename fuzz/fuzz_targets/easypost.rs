//! EasyPost tracker webhooks: `map` on the raw body, and `verify` with the body as the `X-Hmac-Signature` value and (NFKD-normalized) as the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use waybill_connectors::easypost;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = easypost::map(data, OffsetDateTime::UNIX_EPOCH) {
        common::to_events(m.drafts, &m.payload_key);
    }
    let text: String = String::from_utf8_lossy(data).into();
    // The input as the header value, the configured secret fixed.
    let headers = vec![(easypost::SIGNATURE_HEADER.to_string(), text.clone())];
    let _ = easypost::verify(&headers, data, "secret");
    // A well-formed header value, the input as the configured secret.
    let headers = vec![(
        easypost::SIGNATURE_HEADER.to_ascii_uppercase(),
        format!("hmac-sha256-hex={}", "00".repeat(32)),
    )];
    let _ = easypost::verify(&headers, data, &text);
});
