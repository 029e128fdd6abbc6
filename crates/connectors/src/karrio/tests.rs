//! Karrio: fixtures → expected drafts, the shared-secret header, and robustness.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::test_support::{self, check_fixtures, mutations, received_at};
use proptest::prelude::*;

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
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(&headers(&SECRET[..SECRET.len() - 1]), &body, SECRET),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(&headers(&SECRET.to_uppercase()), &body, SECRET),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(&[], &body, SECRET),
        Err(SignatureError::MissingHeader {
            header: SECRET_HEADER
        })
    );
    assert!(matches!(
        verify(&headers(""), &body, SECRET),
        Err(SignatureError::Malformed { .. })
    ));
    // An unset secret must never accept an empty header.
    assert_eq!(
        verify(&headers(""), &body, ""),
        Err(SignatureError::EmptySecret)
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

proptest! {
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
