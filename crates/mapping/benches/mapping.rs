//! `cargo bench -p waybill-mapping`: cost of one jq mapping run (parse payload, run the
//! program, produce drafts) for the example carrier mapping.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Instant;
use waybill_mapping::{Payload, Program};

const MAPPING: &str =
    r#"{type: .status, subject: .shipment, time: .at, key: .id, refs: {tracking: .tracking}}"#;

fn main() {
    let prog = Program::compile(MAPPING).unwrap();
    let body = br#"{"id":"b-1","shipment":"S-1","status":"shipment.in_transit","at":"2026-11-23T10:00:00Z","tracking":"1Z999"}"#;
    let n = 200_000;
    let start = Instant::now();
    for _ in 0..n {
        let p = Payload::parse(body).unwrap();
        let d = prog.run(&p, &[], "bench").unwrap();
        std::hint::black_box(d);
    }
    let per = start.elapsed().as_secs_f64() / n as f64;
    println!(
        "jq mapping: {:.2} µs per payload ({:.0} payloads/s on one core)",
        per * 1e6,
        1.0 / per
    );
}
