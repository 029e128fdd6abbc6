//! [`KarrioBooking`] against a real Karrio server (`waybill_testkit::karrio`: the pinned
//! release, with the `mockship` test carrier), and its parsing over answers recorded from
//! one (`testdata/booking`).
#![allow(clippy::unwrap_used)]

use super::*;
use waybill_testkit::karrio::{server, Carrier, Karrio, MockCarrier};

fn recorded(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/src/karrio/testdata/booking/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn config(url: &str, api_key: &str) -> KarrioBookingConfig {
    serde_json::from_value(json!({"url": url, "api_key": api_key})).unwrap()
}

fn client(k: &Karrio) -> KarrioBooking {
    KarrioBooking::build(&config(k.url(), k.api_key())).unwrap()
}

fn request(reference: &str, parcel_ref: &str, carriers: &[&Carrier]) -> BookingRequest {
    BookingRequest {
        reference: reference.into(),
        shipper: Address {
            company_name: Some("Waybill GmbH".into()),
            person_name: Some("Dock 1".into()),
            address_line1: Some("Hafenstr. 1".into()),
            city: Some("Hamburg".into()),
            postal_code: Some("20457".into()),
            country_code: "DE".into(),
            ..Default::default()
        },
        recipient: Address {
            person_name: Some("Jane Doe".into()),
            address_line1: Some("Rue de Rivoli 1".into()),
            city: Some("Paris".into()),
            postal_code: Some("75001".into()),
            country_code: "FR".into(),
            email: Some("jane@example.com".into()),
            ..Default::default()
        },
        parcels: vec![Parcel {
            weight_kg: 1.5,
            length_cm: Some(30.0),
            width_cm: Some(20.0),
            height_cm: Some(10.0),
            reference: Some(parcel_ref.into()),
        }],
        carriers: carriers.iter().map(|c| c.carrier_id.clone()).collect(),
    }
}

fn quote_of<'a>(draft: &'a Draft, carrier: &Carrier) -> &'a Quote {
    draft
        .quotes
        .iter()
        .find(|q| q.carrier == carrier.carrier_id)
        .unwrap_or_else(|| panic!("no quote of {}: {draft:?}", carrier.carrier_id))
}

fn assert_pdf(label: &Option<Label>) {
    let label = label.as_ref().expect("a label");
    assert_eq!(label.format, "PDF");
    assert!(label.bytes.starts_with(b"%PDF"), "not a PDF");
}

// Against the real Karrio.

#[tokio::test]
async fn quotes_every_carrier_and_buys_the_cheaper() {
    let k = server().await;
    let cheap = k
        .create_carrier(MockCarrier::new("cheap").rate("ground", 7.25))
        .await;
    let dear = k
        .create_carrier(MockCarrier::new("dear").rate("ground", 15.1))
        .await;
    let karrio = client(k);

    let draft = karrio
        .quote(&request("WB-CHEAP-1", "WB-CHEAP-1-P1", &[&cheap, &dear]))
        .await
        .unwrap();
    assert_eq!(draft.quotes.len(), 2, "{draft:?}");
    let q = quote_of(&draft, &cheap);
    assert_eq!(
        (q.amount.as_str(), q.currency.as_str(), q.service.as_str()),
        ("7.25", "EUR", "ground")
    );
    assert_eq!(q.carrier_name, "mockship");
    assert_eq!(q.transit_days, Some(2));
    assert_eq!(quote_of(&draft, &dear).amount, "15.1");

    let cheapest = draft
        .quotes
        .iter()
        .min_by(|a, b| {
            a.amount
                .parse::<f64>()
                .unwrap()
                .total_cmp(&b.amount.parse().unwrap())
        })
        .unwrap();
    let booked = karrio
        .buy(&draft.booking_id, &cheapest.quote_id)
        .await
        .unwrap();
    assert_eq!(booked.booking_id, draft.booking_id);
    assert_eq!(booked.carrier, cheap.carrier_id);
    assert_eq!(
        (booked.amount.as_str(), booked.currency.as_str()),
        ("7.25", "EUR")
    );
    assert_eq!(booked.tracking_number, "WB-CHEAP-1-P1");
    assert!(booked
        .tracker_id
        .as_deref()
        .is_some_and(|t| t.starts_with("trk_")));
    assert_pdf(&booked.label);

    // Booked exactly once, as Karrio sees it.
    let shipments = k.shipments("WB-CHEAP-1").await;
    assert_eq!(shipments.len(), 1);
    assert_eq!(shipments[0]["status"], "created");
    assert_eq!(shipments[0]["metadata"]["waybill_reference"], "WB-CHEAP-1");
}

#[tokio::test]
async fn a_refused_purchase_is_permanent_and_another_quote_of_the_draft_buys() {
    let k = server().await;
    let down = k
        .create_carrier(MockCarrier::new("down").rate("ground", 5.0).fail_purchase())
        .await;
    let up = k
        .create_carrier(MockCarrier::new("up").rate("ground", 6.0))
        .await;
    let karrio = client(k);
    let draft = karrio
        .quote(&request("WB-FALLBACK-1", "WB-FALLBACK-1-P1", &[&down, &up]))
        .await
        .unwrap();

    let refused = karrio
        .buy(&draft.booking_id, &quote_of(&draft, &down).quote_id)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, FailureKind::Permanent, "{refused}");
    assert_eq!(refused.code, "MOCK_PURCHASE_REJECTED");
    assert_eq!(refused.status, Some(424));
    assert!(refused.message.contains("rejected"), "{refused}");
    assert_eq!(k.count_shipments("WB-FALLBACK-1", "draft").await, 1);

    let booked = karrio
        .buy(&draft.booking_id, &quote_of(&draft, &up).quote_id)
        .await
        .unwrap();
    assert_eq!(
        (booked.carrier.as_str(), booked.amount.as_str()),
        (up.carrier_id.as_str(), "6.0")
    );
    assert_pdf(&booked.label);
    let shipments = k.shipments("WB-FALLBACK-1").await;
    assert_eq!(shipments.len(), 1);
    assert_eq!(shipments[0]["status"], "created");
}

#[tokio::test]
async fn find_sees_nothing_then_the_draft_then_the_booking_with_its_label() {
    let k = server().await;
    let carrier = k
        .create_carrier(MockCarrier::new("find").rate("ground", 8.0))
        .await;
    let karrio = client(k);
    assert_eq!(karrio.find("WB-FIND-1").await.unwrap(), Found::Nothing);

    // A longer reference that contains this one, bought: Karrio's filter returns it too.
    let other = karrio
        .quote(&request("WB-FIND-10", "WB-FIND-10-P1", &[&carrier]))
        .await
        .unwrap();
    karrio
        .buy(&other.booking_id, &other.quotes[0].quote_id)
        .await
        .unwrap();
    assert_eq!(karrio.find("WB-FIND-1").await.unwrap(), Found::Nothing);

    let draft = karrio
        .quote(&request("WB-FIND-1", "WB-FIND-1-P1", &[&carrier]))
        .await
        .unwrap();
    assert_eq!(
        karrio.find("WB-FIND-1").await.unwrap(),
        Found::Draft(draft.clone())
    );

    let bought = karrio
        .buy(&draft.booking_id, &draft.quotes[0].quote_id)
        .await
        .unwrap();
    match karrio.find("WB-FIND-1").await.unwrap() {
        Found::Booked(found) => {
            assert_pdf(&found.label);
            assert_eq!(found, bought, "found as bought, label bytes included");
        }
        other => panic!("expected the booking, found {other:?}"),
    }
}

/// One carrier's draft for `reference` (parcel reference `parcel_ref`), and its first
/// quote bought.
async fn bought_once(
    k: &'static Karrio,
    prefix: &str,
    reference: &str,
    parcel_ref: &str,
) -> (KarrioBooking, Draft, Booked) {
    let carrier = k
        .create_carrier(MockCarrier::new(prefix).rate("ground", 4.2))
        .await;
    let karrio = client(k);
    let draft = karrio
        .quote(&request(reference, parcel_ref, &[&carrier]))
        .await
        .unwrap();
    let booked = karrio
        .buy(&draft.booking_id, &draft.quotes[0].quote_id)
        .await
        .unwrap();
    (karrio, draft, booked)
}

#[tokio::test]
async fn buying_again_returns_the_booking_already_bought() {
    let (karrio, draft, first) =
        bought_once(server().await, "again", "WB-AGAIN-1", "WB-AGAIN-1-P1").await;
    let k = server().await;
    // A retry after a timeout: Karrio answers 409; the booking is read back.
    let second = karrio
        .buy(&draft.booking_id, &draft.quotes[0].quote_id)
        .await
        .unwrap();
    assert_eq!(second, first);
    assert_pdf(&second.label);
    assert_eq!(k.count_shipments("WB-AGAIN-1", "created").await, 1);
}

#[tokio::test]
async fn void_cancels_the_label_and_a_second_void_is_ok() {
    let k = server().await;
    let (karrio, _, booked) = bought_once(k, "void", "WB-VOID-1", "WB-VOID-1-P1").await;

    karrio.void(&booked.booking_id).await.unwrap();
    assert_eq!(k.shipment(&booked.booking_id).await["status"], "cancelled");
    karrio.void(&booked.booking_id).await.unwrap();
    assert_eq!(
        karrio.find("WB-VOID-1").await.unwrap(),
        Found::Cancelled(booked.booking_id.clone())
    );
}

#[tokio::test]
async fn a_refused_void_is_permanent_and_the_label_stays() {
    let k = server().await;
    // mockship refuses to void tracking numbers starting FAIL (the parcel's reference).
    let (karrio, _, booked) = bought_once(k, "scanned", "WB-SCANNED-1", "FAIL-VOID-WB-1").await;
    assert_eq!(booked.tracking_number, "FAIL-VOID-WB-1");

    let refused = karrio.void(&booked.booking_id).await.unwrap_err();
    assert_eq!(refused.kind, FailureKind::Permanent, "{refused}");
    assert_eq!(refused.code, "MOCK_VOID_REJECTED");
    assert_eq!(refused.status, Some(424));
    assert_eq!(k.shipment(&booked.booking_id).await["status"], "created");
}

#[tokio::test]
async fn a_wrong_api_key_is_auth_and_a_bad_request_invalid_input() {
    let k = server().await;
    let wrong = KarrioBooking::build(&config(k.url(), "key_0000")).unwrap();
    let e = wrong.find("WB-AUTH-1").await.unwrap_err();
    assert_eq!((e.kind, e.status), (FailureKind::Auth, Some(401)), "{e}");

    let carrier = k
        .create_carrier(MockCarrier::new("invalid").rate("ground", 1.0))
        .await;
    let mut req = request("WB-INVALID-1", "P", &[&carrier]);
    req.parcels.clear();
    let e = client(k).quote(&req).await.unwrap_err();
    assert_eq!(
        (e.kind, e.status),
        (FailureKind::InvalidInput, Some(400)),
        "{e}"
    );
    assert!(e.message.contains("parcels"), "{e}");
}

#[tokio::test]
async fn an_unreachable_karrio_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let karrio =
        KarrioBooking::build(&config(&format!("http://127.0.0.1:{port}"), "key_x")).unwrap();
    let e = karrio
        .quote(&request("WB-DOWN-1", "P", &[]))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (FailureKind::Retryable, "karrio.unreachable"),
        "{e}"
    );
    let e = karrio.buy("shp_x", "rat_x").await.unwrap_err();
    assert_eq!(e.kind, FailureKind::Retryable, "{e}");
}

#[tokio::test]
async fn a_karrio_that_does_not_answer_in_time_is_retryable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accepts and never answers.
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let cfg: KarrioBookingConfig =
        serde_json::from_value(json!({"url": url, "api_key": "key_x", "timeout": "300ms"}))
            .unwrap();
    let e = KarrioBooking::build(&cfg)
        .unwrap()
        .void("shp_x")
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (FailureKind::Retryable, "karrio.timeout"),
        "{e}"
    );
    hold.abort();
}

// Over recorded answers.

#[test]
fn config_has_defaults_refuses_unknown_fields_and_hides_the_key() {
    let cfg = config("https://karrio.example.com/", "key_secret");
    assert_eq!(cfg.timeout, Duration::from_secs(30));
    assert_eq!(cfg.label_type, "PDF");
    assert!(!format!("{cfg:?}").contains("key_secret"));
    let typo = serde_json::from_value::<KarrioBookingConfig>(
        json!({"url": "https://k", "api_key": "k", "timout": "5s"}),
    );
    assert!(typo.unwrap_err().to_string().contains("timout"));
    let errs = KarrioBooking::build(&KarrioBookingConfig {
        url: "karrio.example.com".into(),
        api_key: " ".into(),
        label_type: "gif".into(),
        ..cfg
    })
    .err()
    .unwrap();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["url", "api_key", "label_type"]);
}

#[test]
fn the_request_carries_the_reference_and_only_what_is_known() {
    let mut req = request("WB-REQ-1", "SSCC-1", &[]);
    req.parcels.push(Parcel {
        weight_kg: 2.0,
        length_cm: Some(10.0),
        ..Default::default()
    });
    req.recipient.company_name = Some("  ".into());
    let body = shipment_request(&req, "PDF");
    assert_eq!(body["reference"], "WB-REQ-1");
    assert_eq!(body["metadata"], json!({"waybill_reference": "WB-REQ-1"}));
    assert!(body.get("carrier_ids").is_none(), "empty = every carrier");
    assert!(body["recipient"].get("company_name").is_none());
    assert_eq!(
        body["parcels"][0],
        json!({"weight": 1.5, "weight_unit": "KG", "length": 30.0, "width": 20.0,
               "height": 10.0, "dimension_unit": "CM", "reference_number": "SSCC-1"})
    );
    assert_eq!(
        body["parcels"][1],
        json!({"weight": 2.0, "weight_unit": "KG"})
    );
    req.carriers = vec!["acme".into()];
    assert_eq!(
        shipment_request(&req, "ZPL")["carrier_ids"],
        json!(["acme"])
    );
}

#[test]
fn a_quote_answer_is_a_draft_with_every_rate() {
    let s: ShipmentWire = parse(201, &recorded("quote_201.json")).unwrap();
    let d = draft(s);
    assert!(d.booking_id.starts_with("shp_"));
    let quotes: Vec<(&str, &str, &str, Option<u32>)> = d
        .quotes
        .iter()
        .map(|q| {
            (
                q.carrier.as_str(),
                q.amount.as_str(),
                q.currency.as_str(),
                q.transit_days,
            )
        })
        .collect();
    assert_eq!(
        quotes,
        [
            ("rec-cheap", "7.25", "EUR", Some(2)),
            ("rec-dear", "15.1", "EUR", Some(2))
        ]
    );
    assert!(d.quotes.iter().all(|q| q.quote_id.starts_with("rat_")));
}

#[test]
fn a_purchase_answer_is_a_booking_with_its_label() {
    let s: ShipmentWire = parse(200, &recorded("purchase_200.json")).unwrap();
    let b = booked(&s).unwrap();
    assert_eq!(
        (
            b.carrier.as_str(),
            b.carrier_name.as_str(),
            b.service.as_str()
        ),
        ("rec-cheap", "mockship", "ground")
    );
    assert_eq!(b.tracking_number, "WB-REC-1-P1");
    assert_eq!((b.amount.as_str(), b.currency.as_str()), ("7.25", "EUR"));
    assert!(b.tracker_id.unwrap().starts_with("trk_"));
    assert_pdf(&b.label);

    // Read back, the shipment has no label bytes: they are fetched from its label_url.
    let s: ShipmentWire = parse(200, &recorded("shipment_get_bought.json")).unwrap();
    let again = booked(&s).unwrap();
    assert_eq!(again.label, None);
    assert_eq!(again.tracking_number, "WB-REC-1-P1");
    assert_eq!(
        path_of(s.label_url.as_deref().unwrap()),
        format!("/v1/shipments/{}/label.pdf", s.id)
    );
    assert_eq!(
        path_of("https://other.example/v1/x.pdf?a=1"),
        "/v1/x.pdf?a=1"
    );
}

#[test]
fn find_keeps_exact_references_and_prefers_a_bought_one() {
    let page: PageWire = parse(200, &recorded("list_200_reference.json")).unwrap();
    let statuses: Vec<Status> = page.results.iter().map(status_of).collect();
    assert_eq!(statuses, [Status::Bought, Status::Draft, Status::Cancelled]);
    // WB-REC-4 has a draft and a cancelled label; the bought one is WB-REC-40's.
    let mine = exact("WB-REC-4", page.results);
    assert_eq!(mine.len(), 2);
    assert!(matches!(choose(mine), Choice::Draft(d) if d.reference.as_deref() == Some("WB-REC-4")));

    let page: PageWire = parse(200, &recorded("list_200_reference.json")).unwrap();
    assert!(
        matches!(choose(page.results), Choice::Booked(_)),
        "bought before a draft"
    );
    let page: PageWire = parse(200, &recorded("list_200_reference.json")).unwrap();
    let cancelled: Vec<ShipmentWire> = page
        .results
        .into_iter()
        .filter(|s| status_of(s) == Status::Cancelled)
        .collect();
    assert!(matches!(choose(cancelled), Choice::Cancelled(id) if id.starts_with("shp_")));
    assert!(matches!(choose(Vec::new()), Choice::Nothing));
}

#[test]
fn failures_are_classified_with_karrios_own_codes() {
    let cases = [
        (
            "purchase_424_rejected.json",
            424,
            FailureKind::Permanent,
            "MOCK_PURCHASE_REJECTED",
        ),
        (
            "cancel_424_rejected.json",
            424,
            FailureKind::Permanent,
            "MOCK_VOID_REJECTED",
        ),
        (
            "purchase_409_already_bought.json",
            409,
            FailureKind::Permanent,
            "state_error",
        ),
        (
            "list_401_bad_key.json",
            401,
            FailureKind::Auth,
            "invalid_token",
        ),
        (
            "quote_400_invalid.json",
            400,
            FailureKind::InvalidInput,
            "validation",
        ),
        (
            "quote_404_no_carrier.json",
            404,
            FailureKind::Permanent,
            "not_found",
        ),
    ];
    for (file, status, kind, code) in cases {
        let e = classify(status, &recorded(file));
        assert_eq!(
            (e.kind, e.code.as_str(), e.status),
            (kind, code, Some(status)),
            "{file}"
        );
    }
    let e = classify(424, &recorded("purchase_424_rejected.json"));
    assert_eq!(
        e.message,
        "carrier rejected the shipment (simulated outage)"
    );
    let e = classify(400, &recorded("quote_400_invalid.json"));
    assert_eq!(
        e.message.matches("required").count(),
        3,
        "every message: {e}"
    );

    // No JSON: a proxy's page, or nothing.
    let e = classify(503, b"<html>503 Service Unavailable</html>");
    assert_eq!(
        (e.kind, e.code.as_str()),
        (FailureKind::Retryable, "karrio.unavailable")
    );
    assert_eq!(classify(429, b"").kind, FailureKind::Retryable);
    assert_eq!(classify(403, b"").kind, FailureKind::Auth);
    assert_eq!(classify(418, b"{}").code, "karrio.http_error");
    let e = parse::<ShipmentWire>(200, b"<html>").unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (FailureKind::Permanent, "karrio.bad_answer")
    );
}

#[test]
fn amounts_keep_their_decimal_form() {
    let amounts: Vec<Option<String>> = ["15.1", "7.25", "10", "10.0", "0.1", "\"12.30\"", "null"]
        .iter()
        .map(|s| decimal(&serde_json::from_str(s).unwrap()))
        .collect();
    let expected = ["15.1", "7.25", "10", "10.0", "0.1", "12.30"].map(|s| Some(s.to_owned()));
    assert_eq!(amounts[..6], expected);
    assert_eq!(amounts[6], None);
}
