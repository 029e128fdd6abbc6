//! EasyPost: fixtures → expected drafts, signatures, and robustness.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::carrier::test_support::{self, check_fixtures, mutations, received_at};
use proptest::prelude::*;

const PARTNER: &str = "easypost";

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(test_support::testdata(PARTNER).join(name)).unwrap()
}

fn headers(value: &str) -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-Hmac-Signature".into(), value.into()),
    ]
}

/// Independent vector: computed outside Rust with Python's `hmac` and
/// `unicodedata.normalize("NFKD", "sécret")` over the exact bytes of `delivered.json`.
const DELIVERED_SIG: &str =
    "hmac-sha256-hex=b730395da97e68b6a29677dbf2e61a5981ce4c8b47cba6fb1f695f77c9673211";

#[test]
fn fixtures_map_to_their_expected_drafts() {
    check_fixtures(PARTNER, map);
}

#[test]
fn a_valid_signature_is_accepted_with_the_secret_nfkd_normalized() {
    let body = sample("delivered.json");
    let composed = "s\u{e9}cret";
    let decomposed = "se\u{301}cret";
    let sig = format!(
        "{SIGNATURE_PREFIX}{}",
        hex::encode(crate::carrier::signature::hmac_sha256(
            decomposed.as_bytes(),
            &body
        ))
    );
    assert_eq!(verify(&headers(&sig), &body, composed), Ok(()));
    assert_eq!(verify(&headers(&sig), &body, decomposed), Ok(()));
    let upper = format!(
        "HMAC-SHA256-HEX={}",
        sig[SIGNATURE_PREFIX.len()..].to_uppercase()
    );
    let lower_name = vec![("x-hmac-signature".to_string(), upper)];
    assert_eq!(verify(&lower_name, &body, composed), Ok(()));
}

#[test]
fn the_signature_matches_an_independent_implementation() {
    let body = sample("delivered.json");
    assert_eq!(verify(&headers(DELIVERED_SIG), &body, "sécret"), Ok(()));
}

#[test]
fn wrong_missing_truncated_or_malformed_signatures_are_rejected() {
    let body = sample("delivered.json");
    let good = DELIVERED_SIG;
    let mut wrong = good.to_string();
    wrong.replace_range(good.len() - 4.., "aaaa");
    assert_eq!(
        verify(&headers(&wrong), &body, "sécret"),
        Err(CarrierSignatureError::Mismatch)
    );
    assert_eq!(
        verify(&headers(good), &body, "secret"),
        Err(CarrierSignatureError::Mismatch)
    );
    let mut altered = body.clone();
    altered.push(b' ');
    assert_eq!(
        verify(&headers(good), &altered, "sécret"),
        Err(CarrierSignatureError::Mismatch)
    );
    assert_eq!(
        verify(&[], &body, "sécret"),
        Err(CarrierSignatureError::MissingHeader {
            header: SIGNATURE_HEADER
        })
    );
    for bad in [
        &good[..good.len() - 2],
        &good[..SIGNATURE_PREFIX.len()],
        "b73039",
        "hmac-sha256-hex=zz",
    ] {
        assert!(
            matches!(
                verify(&headers(bad), &body, "sécret"),
                Err(CarrierSignatureError::Malformed { .. })
            ),
            "{bad}"
        );
    }
    let mut twice = headers(good);
    twice.push(("x-hmac-signature".into(), good.into()));
    assert!(matches!(
        verify(&twice, &body, "sécret"),
        Err(CarrierSignatureError::DuplicateHeader { .. })
    ));
    assert_eq!(
        verify(&headers(good), &body, ""),
        Err(CarrierSignatureError::EmptySecret)
    );
}

#[test]
fn malformed_payloads_name_where_they_fail() {
    let e = map(&sample("malformed_bad_datetime.json"), received_at()).unwrap_err();
    assert_eq!(e.code(), "easypost.bad_time");
    assert_eq!(e.path(), Some("result.tracking_details[3].datetime"));
    let e = map(&sample("malformed_wrong_type.json"), received_at()).unwrap_err();
    assert_eq!(e.code(), "easypost.bad_shape");
    assert_eq!(e.path(), Some("result.tracking_details[1].status"));
    let e = map(&sample("malformed_truncated.json"), received_at()).unwrap_err();
    assert_eq!(e.code(), "easypost.bad_json");
    let e = map(
        &sample("malformed_missing_tracking_code.json"),
        received_at(),
    )
    .unwrap_err();
    assert_eq!(
        (e.code(), e.path()),
        ("easypost.missing_field", Some("result.tracking_code"))
    );
}

#[test]
fn the_event_id_is_the_payload_key_and_keys_are_stable() {
    let body = sample("delivered.json");
    let a = map(&body, received_at()).unwrap();
    let b = map(&body, received_at() + time::Duration::hours(1)).unwrap();
    assert_eq!(a.payload_key, "evt_0a1b2c3d4e5f40718293a4b5c6d7e8f9");
    let keys = |m: &Mapped| m.drafts.iter().map(|d| d.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&b));
    let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v.as_object_mut().unwrap().remove("id");
    let no_id = serde_json::to_vec(&v).unwrap();
    let c = map(&no_id, received_at()).unwrap();
    assert!(c.payload_key.starts_with("sha256:"), "{}", c.payload_key);
    assert_eq!(
        c.payload_key,
        map(&no_id, received_at()).unwrap().payload_key
    );
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

/// The first `in_transit` scan is the dispatch. When the carrier back-fills an earlier
/// `in_transit` scan, that one becomes the dispatch and the former one a plain transit
/// scan — still the same scan: nothing recorded earlier comes back under a new id.
#[test]
fn a_backfilled_scan_does_not_make_the_former_dispatch_a_second_event() {
    use crate::carrier::test_support::assert_valid_events;
    let full: serde_json::Value = serde_json::from_slice(&sample("delivered.json")).unwrap();
    let details = full["result"]["tracking_details"]
        .as_array()
        .unwrap()
        .clone();
    let cut = |keep: &[usize]| {
        let mut v = full.clone();
        let kept: Vec<_> = keep.iter().map(|i| details[*i].clone()).collect();
        let newest = kept.last().unwrap().clone();
        v["result"]["tracking_details"] = serde_json::Value::Array(kept);
        v["result"]["status"] = newest["status"].clone();
        v["result"]["status_detail"] = newest["status_detail"].clone();
        v["result"]["signed_by"] = serde_json::Value::Null;
        serde_json::to_vec(&v).unwrap()
    };
    let ids = |body: &[u8]| {
        let m = map(body, received_at()).unwrap();
        assert_valid_events(&m);
        let origin = waybill_model::draft::Origin {
            source: "easypost",
            payload_key: &m.payload_key,
            received_at: received_at(),
            traceparent: None,
        };
        m.drafts
            .into_iter()
            .enumerate()
            .map(|(i, d)| (d.ty.clone(), d.into_event(i, &origin).unwrap().id.0))
            .collect::<Vec<_>>()
    };
    // Before the back-fill: label, then the second in_transit scan (the dispatch then).
    let before = ids(&cut(&[0, 2]));
    assert_eq!(before[1].0, "shipment.dispatched");
    let after = ids(&cut(&[0, 1, 2]));
    assert_eq!(after[1].0, "shipment.dispatched");
    assert_eq!(after[2].0, "shipment.in_transit");
    for (ty, id) in &before {
        assert!(
            after.iter().any(|(_, a)| a == id),
            "{ty} {id} came back as a new event"
        );
    }
}
