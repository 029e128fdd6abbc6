//! Karrio: fixtures → expected drafts, the shared-secret header, and robustness.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::carrier::test_support::{self, check_fixtures, mutations, received_at};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use waybill_model::draft::Origin;
use waybill_model::{CloudEvent, EventType};

const PARTNER: &str = "karrio";
const SECRET: &str = "whsec_e2fed355115b4b9eb4b0ab8bf0d4d7ee";

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(test_support::testdata(PARTNER).join(name)).unwrap()
}

fn headers(value: &str) -> Vec<(String, String)> {
    vec![
        ("Content-type".into(), "application/json".into()),
        ("X-Event-Id".into(), value.into()),
    ]
}

#[test]
fn fixtures_map_to_their_expected_drafts() {
    check_fixtures(PARTNER, map);
}

#[test]
fn the_configured_secret_in_x_event_id_is_accepted() {
    let body = sample("delivered.json");
    assert_eq!(verify(&headers(SECRET), &body, SECRET), Ok(()));
    let lower = vec![("x-event-id".to_string(), format!("{SECRET} "))];
    assert_eq!(verify(&lower, &body, SECRET), Ok(()));
}

#[test]
fn a_wrong_missing_truncated_or_empty_secret_is_rejected() {
    let body = sample("delivered.json");
    assert_eq!(
        verify(&headers("whsec_other"), &body, SECRET),
        Err(CarrierSignatureError::Mismatch)
    );
    assert_eq!(
        verify(&headers(&SECRET[..SECRET.len() - 1]), &body, SECRET),
        Err(CarrierSignatureError::Mismatch)
    );
    assert_eq!(
        verify(&headers(&SECRET.to_uppercase()), &body, SECRET),
        Err(CarrierSignatureError::Mismatch)
    );
    assert_eq!(
        verify(&[], &body, SECRET),
        Err(CarrierSignatureError::MissingHeader {
            header: SECRET_HEADER
        })
    );
    assert!(matches!(
        verify(&headers(""), &body, SECRET),
        Err(CarrierSignatureError::Malformed { .. })
    ));
    // An unset secret must never accept an empty header.
    assert_eq!(
        verify(&headers(""), &body, ""),
        Err(CarrierSignatureError::EmptySecret)
    );
}

#[test]
fn malformed_payloads_name_where_they_fail() {
    let e = map(&sample("malformed_bad_timestamp.json"), received_at()).unwrap_err();
    assert_eq!(
        (e.code(), e.path()),
        ("karrio.bad_time", Some("data.events[1].timestamp"))
    );
    let e = map(&sample("malformed_wrong_type.json"), received_at()).unwrap_err();
    assert_eq!(
        (e.code(), e.path()),
        ("karrio.bad_shape", Some("data.events[0].latitude"))
    );
    let e = map(&sample("malformed_shipment_created_at.json"), received_at()).unwrap_err();
    assert_eq!(
        (e.code(), e.path()),
        ("karrio.bad_time", Some("data.created_at"))
    );
    let e = map(&sample("malformed_empty.json"), received_at()).unwrap_err();
    assert_eq!(e.code(), "karrio.bad_json");
    let e = map(
        &sample("malformed_missing_tracking_number.json"),
        received_at(),
    )
    .unwrap_err();
    assert_eq!(
        (e.code(), e.path()),
        ("karrio.missing_field", Some("data.tracking_number"))
    );
}

#[test]
fn the_content_hash_is_the_payload_key_and_survives_reformatting() {
    let body = sample("delivered.json");
    let a = map(&body, received_at()).unwrap();
    assert!(a.payload_key.starts_with("sha256:"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let b = map(&serde_json::to_vec(&v).unwrap(), received_at()).unwrap();
    assert_eq!(a, b);
    let mut changed = v.clone();
    changed["data"]["status"] = "in_transit".into();
    let c = map(&serde_json::to_vec(&changed).unwrap(), received_at()).unwrap();
    assert_ne!(a.payload_key, c.payload_key);
}

#[test]
fn events_are_ordered_by_time_whatever_the_payload_order() {
    let m = map(&sample("delivered.json"), received_at()).unwrap();
    let times: Vec<_> = m.drafts.iter().filter_map(|d| d.time.clone()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
    assert_eq!(m.drafts[0].ty, "shipment.label_created");
}

/// The canonical events of one delivery, made as the engine makes them.
fn events(m: &Mapped, received: OffsetDateTime) -> Vec<CloudEvent> {
    let origin = Origin {
        source: PARTNER,
        payload_key: &m.payload_key,
        received_at: received,
        traceparent: None,
    };
    m.drafts
        .iter()
        .enumerate()
        .map(|(i, d)| d.clone().into_event(i, &origin).unwrap())
        .collect()
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn minutes_after_receipt(n: i64) -> OffsetDateTime {
    received_at() + time::Duration::minutes(n)
}

/// Id → (type, time) of every event, the first delivery of an id kept (as the store does).
type Timeline = BTreeMap<String, (EventType, OffsetDateTime)>;

fn record(timeline: &mut Timeline, evs: &[CloudEvent]) {
    for e in evs {
        timeline.entry(e.id.0.clone()).or_insert((e.ty, e.time));
    }
}

/// The server's shape of a documented-shape body: `event` instead of `type`, no envelope.
fn as_server_sends_it(documented: &Value) -> Value {
    json!({"event": documented["type"], "data": documented["data"]})
}

#[test]
fn the_documented_shape_is_accepted_and_its_event_id_keys_the_payload_not_the_scans() {
    let documented: Value =
        serde_json::from_slice(&sample("documented_tracker_updated.json")).unwrap();
    let id = documented["id"].as_str().unwrap();
    let m = map(&body(&documented), received_at()).unwrap();
    assert_eq!(m.payload_key, id);
    assert_eq!(m.drafts.len(), 12);
    for d in &m.drafts {
        assert_eq!(d.data.as_ref().unwrap()["karrio_event_id"], id);
        assert!(!d.key.as_deref().unwrap().contains(id), "{:?}", d.key);
    }
    // The same tracker as Karrio's server posts it: the same events, by id.
    let server = map(&body(&as_server_sends_it(&documented)), received_at()).unwrap();
    assert!(server.payload_key.starts_with("sha256:"));
    let ids = |m: &Mapped| -> Vec<String> {
        events(m, received_at())
            .into_iter()
            .map(|e| e.id.0)
            .collect()
    };
    assert_eq!(ids(&m), ids(&server));
}

#[test]
fn a_body_without_event_or_type_is_rejected_naming_event() {
    let e = map(br#"{"data": {}}"#, received_at()).unwrap_err();
    assert_eq!(
        (e.code(), e.path()),
        ("karrio.missing_field", Some("event"))
    );
}

#[test]
fn scans_without_status_are_one_event_each_at_the_scan_time_in_order() {
    let raw = sample("documented_tracker_updated.json");
    let v: Value = serde_json::from_slice(&raw).unwrap();
    let mut scan_times: Vec<String> = v["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}T{}:00Z",
                e["date"].as_str().unwrap(),
                e["time"].as_str().unwrap()
            )
        })
        .collect();
    scan_times.sort();
    let received = minutes_after_receipt(90);
    let m = map(&raw, received).unwrap();
    let evs = events(&m, received);
    let times: Vec<String> = m.drafts.iter().map(|d| d.time.clone().unwrap()).collect();
    assert_eq!(
        times, scan_times,
        "one event per scan, at its time, oldest first"
    );
    assert!(evs.iter().all(|e| e.time != received));
    let types: Vec<EventType> = evs.iter().map(|e| e.ty).collect();
    assert_eq!(types[0], EventType::ShipmentLabelCreated);
    assert_eq!(types[11], EventType::ShipmentDelivered);
    assert!(types[1..11]
        .iter()
        .all(|t| *t == EventType::ShipmentInTransit));
    for d in &m.drafts {
        let data = d.data.as_ref().unwrap();
        assert_eq!(data["status_inferred"], true);
        assert!(!d.key.as_deref().unwrap().contains(":current:"));
        assert!(d.location.is_some() && d.code.is_some() && d.text.is_some());
    }
    // The current status is the newest scan: it carries what only the tracker says.
    let last = m.drafts[11].data.as_ref().unwrap();
    assert_eq!(last["status"], "delivered");
    assert_eq!(last["estimated_delivery"], "2026-03-03");
}

#[test]
fn a_current_status_without_any_scan_keeps_no_time_and_one_id_whatever_the_arrival() {
    let hook = json!({"event": "tracker_updated", "data": {
        "id": "trk_1", "carrier_name": "ups", "tracking_number": "1Z1", "status": "in_transit",
        "events": [], "test_mode": false}});
    let ids: Vec<Vec<String>> = [received_at(), minutes_after_receipt(600)]
        .into_iter()
        .map(|at| {
            let m = map(&body(&hook), at).unwrap();
            assert_eq!(m.drafts.len(), 1);
            assert_eq!(m.drafts[0].time, None);
            assert_eq!(m.drafts[0].key.as_deref(), Some("trk_1:current:in_transit"));
            events(&m, at).into_iter().map(|e| e.id.0).collect()
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
}

/// One scan of a made-up UPS tracker: code, time, description, place, status.
type Scan = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// Scans oldest first; `None`: the carrier integration set no status on it.
const UPS_SCANS: [Scan; 7] = [
    (
        "MP",
        "2026-03-02T09:14:00.000Z",
        "Shipper created a label",
        "US",
        Some("pending"),
    ),
    (
        "PU",
        "2026-03-02T17:41:00.000Z",
        "Pickup Scan",
        "SAN FRANCISCO, CA, US",
        Some("picked_up"),
    ),
    (
        "AR",
        "2026-03-03T02:19:00.000Z",
        "Arrived at Facility",
        "OAKLAND, CA, US",
        None,
    ),
    (
        "DP",
        "2026-03-03T04:50:00.000Z",
        "Departed from Facility",
        "OAKLAND, CA, US",
        Some("in_transit"),
    ),
    (
        "AR",
        "2026-03-04T04:50:00.000Z",
        "Arrived at Facility",
        "SACRAMENTO, CA, US",
        None,
    ),
    (
        "OT",
        "2026-03-04T07:02:00.000Z",
        "Out For Delivery Today",
        "DAVIS, CA, US",
        Some("out_for_delivery"),
    ),
    (
        "KB",
        "2026-03-04T10:02:00.000Z",
        "DELIVERED",
        "DAVIS, CA, US",
        Some("delivered"),
    ),
];

/// The `n`-th of a series of cumulative `tracker_updated` webhooks (`n` = 1: the first
/// scan only), scans newest first as UPS lists them, the tracker's status the newest
/// scan's (`in_transit` for a scan without one). Even webhooks come in the documented
/// shape with their own event id.
fn ups_webhook(n: usize) -> Value {
    let scans = &UPS_SCANS[..n];
    let events: Vec<Value> = scans
        .iter()
        .rev()
        .map(|(code, ts, text, place, status)| {
            json!({"code": code, "timestamp": ts, "date": &ts[..10], "time": &ts[11..16],
                   "description": text, "location": place, "status": status})
        })
        .collect();
    let status = scans[n - 1].4.unwrap_or("in_transit");
    let data = json!({"id": "trk_ups_series", "carrier_name": "ups", "carrier_id": "ups_production",
        "tracking_number": "1Z999AA10000000001", "status": status, "delivered": status == "delivered",
        "events": events, "test_mode": false});
    if n.is_multiple_of(2) {
        json!({"id": format!("evt_series_{n}"), "type": "tracker_updated", "data": data,
               "test_mode": false, "pending_webhooks": 0, "created_at": "2026-03-04T12:00:00Z"})
    } else {
        json!({"event": "tracker_updated", "data": data})
    }
}

/// The statuses a tracker without per-scan statuses had when each scan of
/// `documented_tracker_updated.json` (oldest first) was its newest.
const FEDEX_STATUSES: [&str; 12] = [
    "pending",
    "picked_up",
    "in_transit",
    "in_transit",
    "in_transit",
    "in_transit",
    "in_transit",
    "in_transit",
    "in_transit",
    "in_transit",
    "out_for_delivery",
    "delivered",
];

/// The `n`-th cumulative webhook of the documented FedEx tracker (no per-scan statuses).
fn fedex_webhook(n: usize) -> Value {
    let mut v: Value = serde_json::from_slice(&sample("documented_tracker_updated.json")).unwrap();
    let all = v["data"]["events"].as_array().unwrap().clone();
    v["data"]["events"] = Value::from(all[all.len() - n..].to_vec());
    v["data"]["status"] = FEDEX_STATUSES[n - 1].into();
    v["id"] = format!("evt_fedex_{n}").into();
    v
}

fn timeline_of(webhook: &Value, at: OffsetDateTime) -> Timeline {
    let mut t = Timeline::new();
    record(&mut t, &events(&map(&body(webhook), at).unwrap(), at));
    t
}

fn count(t: &Timeline, ty: EventType) -> usize {
    t.values().filter(|(x, _)| *x == ty).count()
}

#[test]
fn a_statusless_scan_is_one_event_whatever_type_each_webhook_inferred() {
    let last = timeline_of(&fedex_webhook(12), received_at());
    assert_eq!(last.len(), 12);
    for order in [(1..=12).collect::<Vec<_>>(), (1..=12).rev().collect()] {
        let mut union = Timeline::new();
        for &n in &order {
            let at = minutes_after_receipt(n as i64);
            record(
                &mut union,
                &events(&map(&body(&fedex_webhook(n)), at).unwrap(), at),
            );
        }
        // The pickup and the delivery round were the newest scans while the tracker said
        // `picked_up` and `out_for_delivery`, and are `in_transit` in the final webhook:
        // still one event each, of the type they first arrived with.
        assert_eq!(
            union.keys().collect::<Vec<_>>(),
            last.keys().collect::<Vec<_>>(),
            "{order:?}"
        );
        assert_eq!(count(&union, EventType::ShipmentLabelCreated), 1);
        assert_eq!(count(&union, EventType::ShipmentDelivered), 1);
    }
    // Arriving one by one, each scan keeps what its own webhook said.
    let mut forward = Timeline::new();
    for n in 1..=12 {
        let at = minutes_after_receipt(n as i64);
        record(
            &mut forward,
            &events(&map(&body(&fedex_webhook(n)), at).unwrap(), at),
        );
    }
    assert_eq!(count(&forward, EventType::ShipmentDispatched), 1);
    assert_eq!(count(&forward, EventType::ShipmentOutForDelivery), 1);
}

#[test]
fn shipment_webhooks_land_on_the_trackers_subject_with_the_label_facts() {
    let m = map(&sample("shipment_purchased.json"), received_at()).unwrap();
    assert!(
        !serde_json::to_string(&m).unwrap().contains("JVBERi"),
        "no label bytes"
    );
    let [d] = &m.drafts[..] else { panic!("{m:?}") };
    let tracker = map(&sample("delivered.json"), received_at()).unwrap();
    assert_eq!(d.subject, tracker.drafts[0].subject);
    assert_eq!(d.ty, "shipment.label_created");
    assert_eq!(d.time.as_deref(), Some("2026-03-02T09:12:31.402215Z"));
    assert_eq!(
        d.refs["karrio_shipment"],
        "shp_7b0a1c4e6d8f4a9bc1edf5d7f9b1cdef"
    );
    assert_eq!(d.refs["tracker"], tracker.drafts[0].refs["tracker"]);
    let data = d.data.as_ref().unwrap();
    assert_eq!(data["rate"], json!({"amount": "12.45", "currency": "USD"}));
    assert_eq!(data["label_type"], "PDF");
    assert_eq!(data["service"], "ups_ground");

    let dotted = String::from_utf8(sample("shipment_purchased.json"))
        .unwrap()
        .replace("\"shipment_purchased\"", "\"shipment.purchased\"");
    assert_eq!(
        map(dotted.as_bytes(), received_at()).unwrap().drafts,
        m.drafts
    );

    for (name, ty) in [
        ("shipment_cancelled.json", "shipment.cancelled"),
        ("shipment_fulfilled.json", "shipment.in_transit"),
    ] {
        let ids: Vec<Vec<String>> = [received_at(), minutes_after_receipt(60)]
            .into_iter()
            .map(|at| {
                let m = map(&sample(name), at).unwrap();
                assert_eq!(m.drafts.len(), 1, "{name}");
                assert_eq!(m.drafts[0].ty, ty);
                assert_eq!(
                    m.drafts[0].time, None,
                    "{name}: created_at is not when it changed"
                );
                assert_eq!(
                    m.drafts[0].refs["karrio_shipment"],
                    d.refs["karrio_shipment"]
                );
                events(&m, at).into_iter().map(|e| e.id.0).collect()
            })
            .collect();
        assert_eq!(ids[0], ids[1], "{name}: one event whatever the arrival");
    }
}

#[test]
fn a_shipment_update_time_dates_its_event() {
    let mut v: Value = serde_json::from_slice(&sample("shipment_cancelled.json")).unwrap();
    v["data"]["updated_at"] = "2026-03-02 18:00:05.000000+00:00".into();
    let m = map(&body(&v), received_at()).unwrap();
    assert_eq!(m.drafts[0].time.as_deref(), Some("2026-03-02T18:00:05Z"));
}

#[test]
fn a_cancelled_draft_and_other_event_types_make_no_drafts() {
    let m = map(&sample("shipment_cancelled_draft.json"), received_at()).unwrap();
    assert!(m.drafts.is_empty());
    for event in [
        "order_created",
        "batch_completed",
        "pickup_scheduled",
        "shipment_out_for_delivery",
    ] {
        let hook = json!({"event": event, "data": {"id": "x"}});
        assert!(
            map(&body(&hook), received_at()).unwrap().drafts.is_empty(),
            "{event}"
        );
    }
}

proptest! {
    #[test]
    fn cumulative_webhooks_shuffled_and_repeated_record_each_scan_once(
        order in Just((1..=UPS_SCANS.len()).collect::<Vec<_>>()).prop_shuffle(),
        repeats in prop::collection::vec(1..=UPS_SCANS.len(), 0..6),
    ) {
        let mut union = Timeline::new();
        for (i, n) in order.iter().chain(&repeats).enumerate() {
            let at = minutes_after_receipt(i as i64);
            record(&mut union, &events(&map(&body(&ups_webhook(*n)), at).unwrap(), at));
        }
        let last = timeline_of(&ups_webhook(UPS_SCANS.len()), received_at());
        prop_assert_eq!(&union, &last);
        for ty in [
            EventType::ShipmentLabelCreated,
            EventType::ShipmentDispatched,
            EventType::ShipmentOutForDelivery,
            EventType::ShipmentDelivered,
        ] {
            prop_assert_eq!(count(&union, ty), 1, "{:?}", ty);
        }
        prop_assert_eq!(count(&union, EventType::ShipmentInTransit), 3);
    }


    #[test]
    fn map_never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = map(&body, received_at());
    }

    #[test]
    fn map_never_panics_on_mutated_fixtures(seed in any::<u64>(), pick in any::<prop::sample::Index>()) {
        let all = test_support::samples(PARTNER);
        let body = std::fs::read(&all[pick.index(all.len())]).unwrap();
        for m in mutations(&body, seed) {
            if let Ok(out) = map(&m, received_at()) {
                test_support::assert_valid_events(&out);
                prop_assert_eq!(&out, &map(&m, received_at()).unwrap());
            }
        }
    }
}
