//! A message of a `nats` source without mapping: header lines (`name: value`, up to a
//! blank line) and a body. Binary mode (`ce-*` headers → structured JSON,
//! `nats::binary_mode`) when there is a `ce-specversion` header, then what the hub reads
//! of a canonical body (`waybill_engine::ingest::canonical_drafts`: drafts or CloudEvents,
//! one or an array) and the events they become.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (&data[..0], data),
    };
    let headers: Vec<(String, String)> = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let json = if headers.iter().any(|(k, _)| k == "ce-specversion") {
        waybill_connectors::nats::binary_mode(&headers, body)
    } else {
        body.to_vec()
    };
    if let Ok(drafts) = waybill_engine::ingest::canonical_drafts(&json) {
        common::to_events(drafts, "fuzz");
    }
});
