//! Payloads of `jq` sources: `Payload::parse` (strict JSON into jaq values), then fixed
//! mappings run on it with `Program::run` (jaq evaluation, or the direct evaluation for
//! the plain ones; jaq value → JSON, drafts), and the drafts made events. For every
//! mapping, the outputs (or error) must equal those of the jq interpreter alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use waybill_mapping::{Payload, Program};

mod common;

/// Mappings from waybill.example.toml (`wms`, `bench`, `carrier-demo`) and the identity.
const MAPPINGS: [&str; 4] = [
    "{type: .status, subject: .shipment, time: .at, key: .id}",
    "{type: .status, subject: .shipment, time: .at, key: .id, refs: {tracking: .tracking}}",
    r#"
def canonical: {
  "info_received": "shipment.label_created", "picked_up": "shipment.dispatched",
  "in_transit": "shipment.in_transit", "out_for_delivery": "shipment.out_for_delivery",
  "available_for_pickup": "shipment.available_for_pickup", "delivered": "shipment.delivered",
  "failed_attempt": "shipment.delivery_attempted", "delayed": "shipment.delayed",
  "exception": "shipment.exception", "returned": "shipment.returned"
}[.];
{
  type: ((.status | canonical) // "shipment.exception"),
  reason: (if (.status | canonical) == null then "unknown" else .reason end),
  subject: ("trk:" + (.carrier | ascii_downcase) + ":" + .tracking_number),
  time: .occurred_at,
  key: .event_id,
  code: .status,
  text: .description,
  location: .location,
  refs: ({tracking: .tracking_number, carrier: .carrier, "odoo.order": .order} | with_entries(select(.value != null))),
  data: ({signed_by: .signed_by, estimated_delivery: .estimated_delivery} | with_entries(select(.value != null)))
}
"#,
    ".",
];

fn programs() -> &'static [Program] {
    // The plain ones are evaluated directly; the fuzz target checks that against jaq.
    static PROGRAMS: OnceLock<Vec<Program>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        MAPPINGS
            .iter()
            .map(|m| Program::compile(m).expect("fuzz mapping compiles"))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = Payload::parse(data) else {
        return;
    };
    let headers = [("X-Fuzz".to_string(), "1".to_string())];
    for p in programs() {
        let values = p.run_values(&payload, &headers, "fuzz");
        let by_jaq = p.run_values_interpreted(&payload, &headers, "fuzz");
        assert_eq!(values, by_jaq, "direct evaluation differs from jaq");
        if let Ok(drafts) = p.run(&payload, &headers, "fuzz") {
            common::to_events(drafts, "fuzz");
        }
    }
});
