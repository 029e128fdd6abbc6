//! AfterShip: fixtures → expected drafts, signatures, and robustness.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::carrier::test_support::{self, check_fixtures, mutations, received_at};
use proptest::prelude::*;

const PARTNER: &str = "aftership";

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(test_support::testdata(PARTNER).join(name)).unwrap()
}

fn headers(value: &str) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        ("Aftership-Hmac-Sha256".into(), value.into()),
    ]
}

/// Independent vector: Python `base64.b64encode(hmac.new(b"whsec-test-1", body,
/// hashlib.sha256).digest())` over the exact bytes of `delivered.json`.
const DELIVERED_SIG: &str = "cJ9Ia8WZOkGZx3zYwLqCnJPvuw3Bv+qIfbcAmmcRKMY=";
const SECRET: &str = "whsec-test-1";

#[test]
fn fixtures_map_to_their_expected_drafts() {
    check_fixtures(PARTNER, map);
}

#[test]
fn a_valid_signature_is_accepted() {
    let body = sample("delivered.json");
    assert_eq!(verify(&headers(DELIVERED_SIG), &body, SECRET), Ok(()));
    let lower = vec![(
        "aftership-hmac-sha256".to_string(),
        format!(" {DELIVERED_SIG} "),
    )];
    assert_eq!(verify(&lower, &body, SECRET), Ok(()));
}

#[test]
fn wrong_missing_truncated_or_malformed_signatures_are_rejected() {
    let body = sample("delivered.json");
    let good = DELIVERED_SIG;
    assert_eq!(
        verify(&headers(good), &body, "other"),
        Err(CarrierSignatureError::Mismatch)
    );
    let mut altered = body.clone();
    altered[10] ^= 1;
    assert_eq!(
        verify(&headers(good), &altered, SECRET),
        Err(CarrierSignatureError::Mismatch)
    );
    let other = crate::carrier::signature::hmac_sha256(SECRET.as_bytes(), b"{}");
    let other = base64::engine::general_purpose::STANDARD.encode(other);
    assert_eq!(
        verify(&headers(&other), &body, SECRET),
        Err(CarrierSignatureError::Mismatch)
    );
    assert_eq!(
        verify(&[], &body, SECRET),
        Err(CarrierSignatureError::MissingHeader {
            header: SIGNATURE_HEADER
        })
    );
    let truncated = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
    for bad in [&good[..good.len() - 4], truncated.as_str(), "%%%", ""] {
        assert!(
            matches!(
                verify(&headers(bad), &body, SECRET),
                Err(CarrierSignatureError::Malformed { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        verify(&headers(good), &body, ""),
        Err(CarrierSignatureError::EmptySecret)
    );
}

#[test]
fn malformed_payloads_name_where_they_fail() {
    let e = map(&sample("malformed_bad_time.json"), received_at()).unwrap_err();
    assert_eq!(
        (e.code(), e.path()),
        (
            "aftership.bad_time",
            Some("msg.checkpoints[2].checkpoint_time")
        )
    );
    let e = map(&sample("malformed_wrong_type.json"), received_at()).unwrap_err();
    assert_eq!(
        (e.code(), e.path()),
        ("aftership.bad_shape", Some("msg.checkpoints"))
    );
    let e = map(&sample("malformed_not_json.json"), received_at()).unwrap_err();
    assert_eq!(e.code(), "aftership.bad_json");
    let e = map(&sample("malformed_missing_slug.json"), received_at()).unwrap_err();
    assert_eq!(
        (e.code(), e.path()),
        ("aftership.missing_field", Some("msg.slug"))
    );
}

#[test]
fn the_event_id_is_the_payload_key_and_keys_are_stable() {
    let body = sample("delivered.json");
    let a = map(&body, received_at()).unwrap();
    assert_eq!(a.payload_key, "4a6f1c2e-8b3d-4e5f-9a7b-1c2d3e4f5a6b");
    let pretty: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let compact = serde_json::to_vec(&pretty).unwrap();
    let b = map(&compact, received_at()).unwrap();
    assert_eq!(a, b);
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
