//! One event per real-world scan: a carrier's webhooks repeat the whole history each time
//! and add a "current status" that repeats the newest scan. However many webhooks carry a
//! scan, in whatever order they arrive, with duplicates, each scan reaches a sink once.

use crate::partners::{post_signed, start, CONNECTORS};
use crate::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use waybill_connectors::carrier;
use waybill_testkit::FakePartner;

fn fixture(partner: &str) -> Value {
    let path = format!("{CONNECTORS}/{partner}/testdata/delivered.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn at(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

/// The history cut after its `k` oldest scans, as the partner would have sent it then: its
/// scans so far, the newest one's status as the current status, its own webhook id.
fn webhook(partner: &str, full: &Value, k: usize) -> Value {
    let mut w = full.clone();
    let last = k == scans(partner, full).len();
    match partner {
        "easypost" => {
            let r = &mut w["result"];
            let mut s = scans(partner, full);
            s.truncate(k);
            let newest = s[k - 1].clone();
            r["tracking_details"] = Value::Array(s);
            r["status"] = newest["status"].clone();
            r["status_detail"] = newest["status_detail"].clone();
            r["updated_at"] = newest["datetime"].clone();
            if !last {
                r["signed_by"] = Value::Null;
            }
            w["id"] = json!(format!("evt_series_{k}"));
        }
        "aftership" => {
            let m = &mut w["msg"];
            let mut s = scans(partner, full);
            s.truncate(k);
            let newest = s[k - 1].clone();
            m["checkpoints"] = Value::Array(s);
            m["tag"] = newest["tag"].clone();
            m["subtag"] = newest["subtag"].clone();
            m["updated_at"] = newest["checkpoint_time"].clone();
            if !last {
                m["signed_by"] = Value::Null;
                m["delivery_location_type"] = Value::Null;
            }
            w["event_id"] = json!(format!("series-{k}"));
        }
        _ => {
            let d = &mut w["data"];
            let mut s = scans(partner, full);
            s.truncate(k);
            let newest = s[k - 1].clone();
            // Karrio lists the newest event first.
            s.reverse();
            d["events"] = Value::Array(s);
            d["status"] = newest["status"].clone();
            d["delivered"] = json!(last);
            if !last {
                d["info"]["signed_by"] = Value::Null;
                d["delivery_image_url"] = Value::Null;
                d["signature_image_url"] = Value::Null;
            }
        }
    }
    w
}

/// The full history's scans, oldest first.
fn scans(partner: &str, full: &Value) -> Vec<Value> {
    let (list, time) = match partner {
        "easypost" => (&full["result"]["tracking_details"], "datetime"),
        "aftership" => (&full["msg"]["checkpoints"], "checkpoint_time"),
        _ => (&full["data"]["events"], "timestamp"),
    };
    let mut v = list.as_array().unwrap().clone();
    v.sort_by_key(|s| at(&s[time]));
    v
}

/// The ids the hub gives the drafts of one payload.
fn ids_of(partner: &str, body: &[u8]) -> Vec<String> {
    let now = OffsetDateTime::now_utc();
    let m = carrier::by_name(partner).unwrap().map(body, now).unwrap();
    let origin = waybill_model::draft::Origin {
        source: partner,
        payload_key: &m.payload_key,
        received_at: now,
        traceparent: None,
    };
    m.drafts
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.into_event(i, &origin).unwrap().id.0)
        .collect()
}

/// A fixed shuffle (so a failure can be replayed): the series, three webhooks twice, in an
/// order given by a small LCG.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (1..=n).chain([n, 1, n / 2 + 1]).collect();
    let mut x = seed;
    for i in (1..order.len()).rev() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        order.swap(i, (x >> 33) as usize % (i + 1));
    }
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shuffled_duplicated_webhook_series_delivers_each_milestone_once() {
    let sink = FakePartner::start().await;
    let (hub, _) = start(&sink).await;
    let mut expected = BTreeSet::new();
    for (p, format) in carrier::CARRIERS.iter().enumerate() {
        let partner = format.partner().name();
        let full = fixture(partner);
        let n = scans(partner, &full).len();
        assert!(n >= 4, "{partner}: a history of {n} scans is too short");
        let complete = serde_json::to_vec(&webhook(partner, &full, n)).unwrap();
        let ids = ids_of(partner, &complete);
        // a webhook of the series adds only what the complete history has
        for k in 1..n {
            let body = serde_json::to_vec(&webhook(partner, &full, k)).unwrap();
            for id in ids_of(partner, &body) {
                assert!(ids.contains(&id), "{partner} webhook {k}: new event {id}");
            }
        }
        expected.extend(ids);
        for k in shuffled(n, 7 + p as u64) {
            let body = serde_json::to_vec(&webhook(partner, &full, k)).unwrap();
            let r = post_signed(&hub, *format, body).await;
            assert!(
                r.status().is_success(),
                "{partner} webhook {k}: {}",
                r.status()
            );
        }
    }
    sink.wait_until(WAIT, "every scan delivered", |rs| {
        rs.len() >= expected.len()
    })
    .await;
    // let a second, wrong delivery show itself
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut milestones: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for r in sink.accepted() {
        let ev = r.json();
        *seen
            .entry(ev["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
        *milestones
            .entry((
                ev["subject"].as_str().unwrap().to_owned(),
                ev["type"].as_str().unwrap().to_owned(),
                ev["time"].as_str().unwrap().to_owned(),
            ))
            .or_default() += 1;
    }
    assert!(seen.values().all(|&c| c == 1), "delivered twice: {seen:?}");
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(
        milestones.values().all(|&c| c == 1),
        "one milestone as two events: {milestones:?}"
    );
    let delivered = milestones
        .keys()
        .filter(|(_, ty, _)| ty == "shipment.delivered")
        .count();
    assert_eq!(
        delivered,
        carrier::CARRIERS.len(),
        "one delivery per carrier: {milestones:?}"
    );
    hub.stop().await;
}
