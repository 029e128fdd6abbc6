//! X12 interchanges (214/856/210/997) as received by an `x12` source: parse, map, and the
//! 997 or TA1 acknowledgement the source answers with (accept or reject), as `inbound.rs`
//! does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use waybill_connectors::x12;

mod common;

fuzz_target!(|data: &[u8]| {
    let now = OffsetDateTime::UNIX_EPOCH;
    match x12::parse(data) {
        Ok(ic) => {
            let key = ic.payload_key();
            let result = x12::AckResult::check(&ic);
            let ack = x12::ack_997(&ic, &result, 1, now);
            // The 997 we would send back must go through our own parser too.
            assert!(x12::parse(ack.as_bytes()).is_ok(), "{ack}");
            match x12::map(&ic, now, None) {
                Ok(drafts) => common::to_events(drafts, &key),
                // A mapping failure is answered with a rejecting 997 (inbound.rs).
                Err(err) => {
                    if let Some(ack) = x12::reject_997(data, &err, 1, now) {
                        assert!(x12::parse(ack.as_bytes()).is_ok(), "{ack}");
                    }
                }
            }
        }
        // A parse failure: a rejecting 997, or a TA1 alone for the envelope; either must
        // go through our own parser.
        Err(err) => match x12::reject_997(data, &err, 1, now) {
            Some(ack) => assert!(x12::parse(ack.as_bytes()).is_ok(), "{ack}"),
            None => {
                if let Some(ta1) = x12::reject_ta1(data, &err, 1, now) {
                    // The TA1 we would send back goes through our own parser too.
                    assert!(x12::parse(ta1.as_bytes()).is_ok(), "{ta1}");
                }
            }
        },
    }
});
