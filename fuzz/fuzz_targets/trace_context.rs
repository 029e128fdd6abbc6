//! W3C trace context from outside: a `traceparent` header value
//! (`waybill_engine::telemetry::TraceContext::parse`), a `tracestate` value, and the tags
//! read from a stored CloudEvents body (`telemetry::event_tags`: `traceparent`,
//! `correlationid`, `source`). A parsed `traceparent` must print as a 55-character version
//! `00` value that parses back to the same context.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waybill_engine::telemetry::{context, event_tags, TraceContext};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = TraceContext::parse(&text) {
        let printed = c.to_string();
        assert_eq!(printed.len(), 55);
        assert!(printed.starts_with("00-"));
        assert_eq!(TraceContext::parse(&printed), Ok(c));
        assert_ne!(c.trace_id, 0);
        assert_ne!(c.span_id, 0);
    }
    if let Some(s) = context::valid_tracestate(&text) {
        assert!(s.len() <= 512);
    }
    let tags = event_tags(&text);
    if let Some(t) = tags.traceparent {
        assert_eq!(TraceContext::parse(&t.to_string()), Ok(t));
    }
});
