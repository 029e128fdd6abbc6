//! Every carrier-aggregator format of `waybill_connectors::carrier::CARRIERS`, on each
//! input: `map` on the raw body (drafts turned into events as the engine does), and
//! `verify` twice — the input as the signature header's value with a fixed secret, then a
//! well-formed header (the format's own `sign`) with the input as the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use waybill_connectors::carrier::CARRIERS;

mod common;

fuzz_target!(|data: &[u8]| {
    let text: String = String::from_utf8_lossy(data).into();
    for format in CARRIERS {
        if let Ok(m) = format.map(data, OffsetDateTime::UNIX_EPOCH) {
            common::to_events(m.drafts, &m.payload_key);
        }
        let header = format.signature_header();
        let headers = vec![(header.to_string(), text.clone())];
        let _ = format.verify(&headers, data, "secret");
        let headers = vec![(header.to_ascii_uppercase(), format.sign(data, "secret"))];
        let _ = format.verify(&headers, data, &text);
    }
});
