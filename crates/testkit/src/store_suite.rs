//! The store behaviour suite: written once, run against every backend with
//! [`store_tests!`](crate::store_tests). Each function gets a fresh, empty store.

use time::OffsetDateTime;
use waybill_model::draft::Origin;
use waybill_model::{CloudEvent, EventDraft, Milestone, ShipmentKey};
use waybill_store::*;

pub use crate::audit_suite::audit_chain_verifies_after_appends;
pub use crate::identity_suite::{
    a_non_owners_value_is_a_conflict_not_applied, contradicting_identifiers_are_flagged_not_merged,
    linking_appends_and_routes_shipment_linked, one_shipment_across_systems_in_any_order,
    shipments_ingested_together_settle_as_each_alone,
};
pub use crate::retention_suite::{
    audit_prefix_purge_keeps_the_chain_verifiable,
    erasure_masks_personal_data_and_keeps_the_shipment, old_payloads_are_purged_in_batches,
    retention_never_purges_open_dead_letters,
};

/// A canonical event built the way ingest builds them.
pub fn event(
    source: &str,
    payload_key: &str,
    ty: &str,
    subject: &str,
    minute: i64,
    refs: &[(&str, &str)],
) -> CloudEvent {
    let draft = EventDraft {
        ty: ty.into(),
        subject: subject.into(),
        time: Some(
            (OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(minute))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        ),
        key: None,
        reason: None,
        code: None,
        text: None,
        location: None,
        refs: refs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        data: None,
        correlationid: None,
        causationid: None,
        tenant: None,
        dataclassification: None,
        key_scope: waybill_model::KeyScope::Source,
    };
    draft
        .into_event(
            0,
            &Origin {
                source,
                payload_key,
                received_at: OffsetDateTime::now_utc(),
                traceparent: None,
            },
        )
        .unwrap()
}

/// An event with the partner's own `key`, as a mapping that sets `key` builds it.
pub fn keyed_event(source: &str, key: &str, ty: &str, subject: &str, minute: i64) -> CloudEvent {
    let mut draft: EventDraft = serde_json::from_value(serde_json::json!({
        "type": ty, "subject": subject, "key": key,
    }))
    .unwrap();
    draft.time = Some(
        (OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(minute))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    );
    draft
        .into_event(
            0,
            &Origin {
                source,
                payload_key: "unused with a key",
                received_at: OffsetDateTime::now_utc(),
                traceparent: None,
            },
        )
        .unwrap()
}

/// An accepted ingest record for these events.
pub fn accepted(source: &str, key: &str, events: Vec<CloudEvent>) -> IngestRecord {
    IngestRecord {
        source: source.into(),
        idempotency_key: key.into(),
        received_at: OffsetDateTime::now_utc(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: format!("{{\"key\":\"{key}\"}}").into_bytes(),
        verdict: Verdict::Accepted(events),
    }
}

/// Unix ms of the attempts recorded by the suite's delivery helpers.
pub const ATTEMPT_AT_MS: i64 = 1_700_000_000_000;

/// A delivered result: answered 200 after 1.5 ms.
pub fn delivered(id: i64, attempts: u32) -> DeliveryUpdate {
    DeliveryUpdate::Delivered {
        id,
        attempts,
        at_ms: ATTEMPT_AT_MS + i64::from(attempts),
        status: Some(200),
        duration_us: 1_500,
    }
}

/// A failed attempt to retry at `next_ms`, made at `ATTEMPT_AT_MS + attempts` and
/// answered after 2.5 ms.
pub fn retry(
    id: i64,
    attempts: u32,
    next_ms: i64,
    status: Option<u16>,
    error: &str,
) -> DeliveryUpdate {
    DeliveryUpdate::Retry {
        id,
        attempts,
        next_attempt_at_ms: next_ms,
        error: error.into(),
        at_ms: ATTEMPT_AT_MS + i64::from(attempts),
        status,
        duration_us: 2_500,
    }
}

/// A last failed attempt (`http.status`, permanent), made like [`retry`]'s.
pub fn dead(id: i64, attempts: u32, status: Option<u16>, error: &str) -> DeliveryUpdate {
    DeliveryUpdate::Dead {
        id,
        attempts,
        error: error.into(),
        code: "http.status".into(),
        kind: "permanent".into(),
        at_ms: ATTEMPT_AT_MS + i64::from(attempts),
        status,
        duration_us: 2_500,
    }
}

fn sub(name: &str, sink: &str, types: &[&str], sources: &[&str]) -> Subscription {
    Subscription {
        name: name.into(),
        sink: sink.into(),
        types: types.iter().map(|s| (*s).into()).collect(),
        sources: sources.iter().map(|s| (*s).into()).collect(),
        personal_data: None,
    }
}

/// A duplicate payload answers with the original ids and appends nothing.
pub async fn duplicate_payload_returns_original_ids(store: Store) {
    let e = event("carrier", "p1", "shipment.in_transit", "S1", 1, &[]);
    let first = store
        .ingest(accepted("carrier", "p1", vec![e.clone()]))
        .await
        .unwrap();
    let IngestOutcome::Accepted { event_ids, .. } = first else {
        panic!("{first:?}")
    };
    assert_eq!(event_ids, vec![e.id.clone()]);
    let again = store
        .ingest(accepted("carrier", "p1", vec![e.clone()]))
        .await
        .unwrap();
    assert!(
        matches!(again, IngestOutcome::Duplicate { ref event_ids, .. } if event_ids == &vec![e.id.clone()]),
        "{again:?}"
    );
    let view = store
        .shipment(&ShipmentKey("S1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.timeline.len(), 1);
}

/// A partner event repeated inside another payload (a tracking history re-sent whole) is
/// appended, applied and routed once; the same partner key naming another shipment is an
/// event of that shipment.
pub async fn an_event_in_two_payloads_is_appended_once(store: Store) {
    store
        .sync_subscriptions(vec![sub("all", "ops", &[], &[])])
        .await
        .unwrap();
    let scan = keyed_event("carrier", "scan-1", "shipment.in_transit", "S1", 1);
    let later = keyed_event("carrier", "scan-2", "shipment.delivered", "S1", 2);
    let first = store
        .ingest(accepted("carrier", "w1", vec![scan.clone()]))
        .await
        .unwrap();
    assert!(matches!(first, IngestOutcome::Accepted { .. }), "{first:?}");
    // A second webhook (another idempotency key) carrying the history again.
    let second = store
        .ingest(accepted("carrier", "w2", vec![scan.clone(), later.clone()]))
        .await
        .unwrap();
    let IngestOutcome::Accepted { event_ids, .. } = second else {
        panic!("{second:?}")
    };
    assert_eq!(event_ids, vec![scan.id.clone(), later.id.clone()]);
    let s1 = ShipmentKey("S1".into());
    let view = store.shipment(&s1).await.unwrap().unwrap();
    assert_eq!(
        view.timeline.len(),
        2,
        "the repeated scan is not appended again"
    );
    assert_eq!(view.state.milestone, Milestone::Delivered);
    let routed = store.deliveries_of(&s1, scan.id.as_str()).await.unwrap();
    assert_eq!(routed.len(), 1, "routed once: {routed:?}");
    // The partner re-sends the scan for a corrected shipment: a new event there.
    let moved = keyed_event("carrier", "scan-1", "shipment.in_transit", "S2", 1);
    assert_ne!(moved.id, scan.id);
    store
        .ingest(accepted("carrier", "w3", vec![moved.clone()]))
        .await
        .unwrap();
    let s2 = ShipmentKey("S2".into());
    assert_eq!(
        store.shipment(&s2).await.unwrap().unwrap().timeline.len(),
        1
    );
    assert_eq!(
        store.shipment(&s1).await.unwrap().unwrap().timeline.len(),
        2
    );
}

/// A rejected payload is kept, byte for byte, with its reason.
pub async fn rejected_payloads_are_kept(store: Store) {
    let out = store
        .ingest(IngestRecord {
            source: "carrier".into(),
            idempotency_key: "h1".into(),
            received_at: OffsetDateTime::now_utc(),
            headers: vec![],
            body: b"{not json".to_vec(),
            verdict: Verdict::Rejected {
                code: "ingest.bad_json".into(),
                reason: "line 1".into(),
            },
        })
        .await
        .unwrap();
    assert!(matches!(out, IngestOutcome::Rejected { .. }));
    let rows = store
        .inbox(InboxQuery {
            status: Some("rejected".into()),
            source: None,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].body, "{not json");
    assert_eq!(rows[0].reason_code.as_deref(), Some("ingest.bad_json"));
}

/// Payloads of unauthenticated senders are kept as bounded samples: each cut to
/// `SAMPLE_BYTES` of body and of headers, and only the newest `SAMPLES_KEPT` per reason
/// code and source (per code alone for unknown sources, whatever name they were sent
/// to); other rejections and other sources' samples are untouched.
pub async fn unauthenticated_payloads_are_bounded_samples(store: Store) {
    let sample =
        |source: &str, key: &str, code: &str, any_source: bool, body: Vec<u8>| IngestRecord {
            source: source.into(),
            idempotency_key: key.into(),
            received_at: OffsetDateTime::now_utc(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-padding".into(), "p".repeat(10_000)),
                ("x-after".into(), "left out".into()),
            ],
            body,
            verdict: Verdict::Sample {
                code: code.into(),
                reason: "refused".into(),
                any_source,
            },
        };
    let kept = store
        .ingest(IngestRecord {
            source: "carrier".into(),
            idempotency_key: "mapping".into(),
            received_at: OffsetDateTime::now_utc(),
            headers: vec![],
            body: vec![b'm'; 10_000],
            verdict: Verdict::Rejected {
                code: "mapping.runtime".into(),
                reason: "kept whole".into(),
            },
        })
        .await
        .unwrap();
    let big = vec![b'x'; 10_000];
    let mut newest_unknown = Vec::new();
    for i in 0..SAMPLES_KEPT + 30 {
        // Every request names another unknown source: they share one cap.
        let out = store
            .ingest(sample(
                &format!("nope-{i}"),
                &format!("u{i}"),
                "ingest.unknown_source",
                true,
                big.clone(),
            ))
            .await
            .unwrap();
        let IngestOutcome::Rejected { inbox_id } = out else {
            panic!("{out:?}")
        };
        newest_unknown.push(inbox_id);
    }
    for i in 0..SAMPLES_KEPT + 20 {
        store
            .ingest(sample(
                "carrier",
                &format!("c{i}"),
                "ingest.bad_signature",
                false,
                b"{}".to_vec(),
            ))
            .await
            .unwrap();
    }
    for i in 0..5 {
        store
            .ingest(sample(
                "wms",
                &format!("w{i}"),
                "ingest.bad_signature",
                false,
                b"{}".to_vec(),
            ))
            .await
            .unwrap();
    }
    let rows = store
        .inbox(InboxQuery {
            status: Some("rejected".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let of = |code: &str, source: Option<&str>| -> Vec<&InboxRecord> {
        rows.iter()
            .filter(|r| r.reason_code.as_deref() == Some(code))
            .filter(|r| source.is_none_or(|s| r.source == s))
            .collect()
    };
    let unknown = of("ingest.unknown_source", None);
    assert_eq!(unknown.len() as i64, SAMPLES_KEPT);
    let mut ids: Vec<i64> = unknown.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, newest_unknown[30..], "the newest are kept");
    for r in &unknown {
        assert_eq!(r.body.len(), SAMPLE_BYTES);
        assert!(
            r.reason
                .as_deref()
                .unwrap_or_default()
                .contains("4096 of 10000 bytes"),
            "{:?}",
            r.reason
        );
        let header_bytes: usize = r.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(header_bytes <= SAMPLE_BYTES, "{header_bytes}");
        assert!(r.headers.iter().all(|(k, _)| k != "x-after"));
        assert_eq!(r.headers[0].1, "application/json");
    }
    assert_eq!(
        of("ingest.bad_signature", Some("carrier")).len() as i64,
        SAMPLES_KEPT
    );
    assert_eq!(of("ingest.bad_signature", Some("wms")).len(), 5);
    let mapping = of("mapping.runtime", None);
    assert_eq!(mapping.len(), 1);
    assert!(matches!(kept, IngestOutcome::Rejected { inbox_id } if inbox_id == mapping[0].id));
    assert_eq!(
        mapping[0].body.len(),
        10_000,
        "other rejections are kept whole"
    );
}

/// Sequence numbers are dense per shipment; an event already in the log (another payload
/// carrying it) is not appended twice; late events are kept without regressing.
pub async fn sequence_is_dense_and_late_events_do_not_regress(store: Store) {
    let delivered = event("carrier", "p2", "shipment.delivered", "S2", 10, &[]);
    let transit = event("carrier", "p1", "shipment.in_transit", "S2", 5, &[]);
    store
        .ingest(accepted("carrier", "p2", vec![delivered.clone()]))
        .await
        .unwrap();
    store
        .ingest(accepted("carrier", "p1", vec![transit.clone()]))
        .await
        .unwrap();
    // a different payload repeating an event already stored
    store
        .ingest(accepted("carrier", "p3", vec![transit.clone()]))
        .await
        .unwrap();
    let view = store
        .shipment(&ShipmentKey("S2".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.state.milestone, Milestone::Delivered);
    let mut seqs: Vec<i64> = view.timeline.iter().map(|t| t.sequence).collect();
    seqs.sort();
    assert_eq!(seqs, vec![1, 2]);
    // timeline is in occurrence order, the late event first, marked as recorded only
    assert_eq!(view.timeline[0].event.id, transit.id);
    assert_eq!(view.timeline[0].effect, "recorded");
    assert_eq!(
        view.timeline[0].event.sequence.as_deref(),
        Some("00000000000000000002")
    );
}

/// Outbox rows are created per matching subscription, in the same transaction.
pub async fn events_are_routed_to_matching_subscriptions(store: Store) {
    store
        .sync_subscriptions(vec![
            sub("all", "ops", &[], &[]),
            sub("delivered-only", "erp", &["shipment.delivered"], &[]),
            sub("wms-only", "erp", &["warehouse.*"], &["wms"]),
        ])
        .await
        .unwrap();
    let a = event("carrier", "p1", "shipment.delivered", "S3", 1, &[]);
    let b = event("carrier", "p2", "warehouse.packed", "S3", 0, &[]);
    let c = event("wms", "p3", "warehouse.picked", "S3", 0, &[]);
    for (k, e) in [("p1", &a), ("p2", &b), ("p3", &c)] {
        store
            .ingest(accepted(e.source_name(), k, vec![e.clone()]))
            .await
            .unwrap();
    }
    let subs_of =
        |v: Vec<OutboxItemState>| v.into_iter().map(|s| s.subscription).collect::<Vec<_>>();
    assert_eq!(
        subs_of(
            store
                .deliveries_of(&a.subject, a.id.as_str())
                .await
                .unwrap()
        ),
        vec!["all", "delivered-only"]
    );
    assert_eq!(
        subs_of(
            store
                .deliveries_of(&b.subject, b.id.as_str())
                .await
                .unwrap()
        ),
        vec!["all"]
    );
    assert_eq!(
        subs_of(
            store
                .deliveries_of(&c.subject, c.id.as_str())
                .await
                .unwrap()
        ),
        vec!["all", "wms-only"]
    );
    let ops = store.pending_outbox("ops", 0, 100).await.unwrap();
    assert_eq!(ops.len(), 3);
    assert!(ops.windows(2).all(|w| w[0].id < w[1].id));
    let body: serde_json::Value = serde_json::from_str(&ops[0].body).unwrap();
    assert_eq!(body["id"], a.id.as_str());
    assert_eq!(body["sequence"], "00000000000000000001");
    assert_eq!(
        store
            .pending_outbox("ops", ops[1].id, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Events that repeat a large payload (order lines) are delivered and shown exactly as
/// made, with their sequence numbers, however the store keeps them.
pub async fn events_repeating_their_payload_read_back_exactly(store: Store) {
    store
        .sync_subscriptions(vec![sub("all", "ops", &[], &[])])
        .await
        .unwrap();
    let lines: Vec<serde_json::Value> = (0..40)
        .map(|l| {
            serde_json::json!({"line": l, "sku": format!("SKU-{l:05}"),
                "description": "Stainless steel shelf bracket, 300 mm, pack of 4", "ordered": 4 + l % 5})
        })
        .collect();
    let payload = serde_json::to_vec(&serde_json::json!({"asn": "A-1", "lines": lines})).unwrap();
    let events: Vec<CloudEvent> = [
        "warehouse.packed",
        "shipment.dispatched",
        "shipment.delivered",
    ]
    .iter()
    .enumerate()
    .map(|(i, ty)| {
        let mut e = event(
            "wms",
            "asn-1",
            ty,
            "S-BIG",
            i as i64,
            &[("tracking", "1ZBIG")],
        );
        e.data = serde_json::json!({"lines": lines, "note": format!("event {i}")});
        e
    })
    .collect();
    let mut rec = accepted("wms", "asn-1", events.clone());
    rec.body = payload;
    store.ingest(rec).await.unwrap();
    let expected = |i: usize| {
        let mut e = events[i].clone();
        e.sequence = Some(CloudEvent::format_sequence(i as i64 + 1));
        serde_json::to_value(&e).unwrap()
    };
    let pending = store.pending_outbox("ops", 0, 100).await.unwrap();
    assert_eq!(pending.len(), 3);
    for (i, item) in pending.iter().enumerate() {
        let got: serde_json::Value = serde_json::from_str(&item.body).unwrap();
        assert_eq!(got, expected(i), "outbox body {i}");
    }
    let view = store
        .shipment(&ShipmentKey("S-BIG".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.timeline.len(), 3);
    for (i, t) in view.timeline.iter().enumerate() {
        assert_eq!(
            serde_json::to_value(&t.event).unwrap(),
            expected(i),
            "timeline {i}"
        );
    }
}

/// Delivered rows leave the pending set; dead ones become dead letters; replay re-enqueues
/// each dead letter once, as a new row.
pub async fn dead_letters_are_replayed_once(store: Store) {
    store
        .sync_subscriptions(vec![sub("all", "ops", &[], &[])])
        .await
        .unwrap();
    let a = event("carrier", "p1", "shipment.in_transit", "S4", 1, &[]);
    let b = event("carrier", "p2", "shipment.delivered", "S4", 2, &[]);
    store
        .ingest(accepted("carrier", "p1", vec![a.clone()]))
        .await
        .unwrap();
    store
        .ingest(accepted("carrier", "p2", vec![b.clone()]))
        .await
        .unwrap();
    let rows = store.pending_outbox("ops", 0, 10).await.unwrap();
    store
        .record_deliveries(vec![
            delivered(rows[0].id, 1),
            retry(rows[1].id, 1, 5, Some(503), "HTTP 503"),
        ])
        .await
        .unwrap();
    let pending = store.pending_outbox("ops", 0, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].attempts, pending[0].next_attempt_at_ms), (1, 5));
    store
        .record_deliveries(vec![dead(rows[1].id, 2, Some(400), "HTTP 400")])
        .await
        .unwrap();
    assert!(store.pending_outbox("ops", 0, 10).await.unwrap().is_empty());
    let dl = store
        .dead_letters(DeadLetterQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(
        (dl[0].code.as_deref(), dl[0].kind.as_deref()),
        (Some("http.status"), Some("permanent"))
    );
    assert_eq!(
        (
            dl[0].event_id.as_str(),
            dl[0].error.as_str(),
            dl[0].attempts
        ),
        (b.id.as_str(), "HTTP 400", 2)
    );
    let depths = store.depths().await.unwrap();
    assert_eq!(depths.dead_letters, vec![("ops".to_string(), 1)]);
    let replayed = store
        .replay_dead_letters(ReplaySelector::Ids(vec![dl[0].id]))
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1);
    assert!(replayed[0].1 > rows[1].id);
    let again = store
        .replay_dead_letters(ReplaySelector::All {
            sink: None,
            tenant: None,
        })
        .await
        .unwrap();
    assert!(again.is_empty(), "a dead letter is replayed once");
    let pending = store.pending_outbox("ops", 0, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].event_id, b.id.as_str());
    assert_eq!(pending[0].attempts, 0);
    assert!(store
        .dead_letters(DeadLetterQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
}

/// Cross-references are stored and shown; listing filters by state.
pub async fn xrefs_and_state_listing(store: Store) {
    let a = event(
        "odoo",
        "p1",
        "order.released",
        "S5",
        1,
        &[("odoo.picking", "WH/OUT/00015"), ("odoo.order", "S00025")],
    );
    let b = event(
        "carrier",
        "p2",
        "shipment.delivered",
        "S6",
        1,
        &[("tracking", "1Z999")],
    );
    store.ingest(accepted("odoo", "p1", vec![a])).await.unwrap();
    store
        .ingest(accepted("carrier", "p2", vec![b]))
        .await
        .unwrap();
    let v = store
        .shipment(&ShipmentKey("S5".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        v.xrefs
            .iter()
            .map(|x| (x.kind.as_str(), x.value.as_str()))
            .collect::<Vec<_>>(),
        vec![("odoo.order", "S00025"), ("odoo.picking", "WH/OUT/00015")]
    );
    let delivered = store
        .shipments(ShipmentQuery {
            state: Some(Milestone::Delivered),
            after: None,
            reference: None,
            limit: 10,
            tenant: None,
        })
        .await
        .unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].state.key.as_str(), "S6");
    assert!(store
        .shipment(&ShipmentKey("nope".into()))
        .await
        .unwrap()
        .is_none());
}

/// Many concurrent writers: every acknowledged payload is there afterwards.
pub async fn concurrent_ingests_are_all_durable(store: Store) {
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let e = event(
                "carrier",
                &format!("p{i}"),
                "shipment.in_transit",
                &format!("C{}", i % 17),
                i,
                &[],
            );
            s.ingest(accepted("carrier", &format!("p{i}"), vec![e]))
                .await
        }));
    }
    for t in tasks {
        assert!(matches!(
            t.await.unwrap().unwrap(),
            IngestOutcome::Accepted { .. }
        ));
    }
    assert_eq!(events_in_dense_lanes(&store, "C", 17).await, 200);
}

/// The events of shipments `{prefix}0` … `{prefix}{n-1}`, after checking that each one's
/// sequence numbers are 1, 2, 3… without a gap.
async fn events_in_dense_lanes(store: &Store, prefix: &str, n: usize) -> usize {
    let mut total = 0;
    for k in 0..n {
        let v = store
            .shipment(&ShipmentKey(format!("{prefix}{k}")))
            .await
            .unwrap()
            .unwrap();
        let mut seqs: Vec<i64> = v.timeline.iter().map(|t| t.sequence).collect();
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "{prefix}{k}"
        );
        total += seqs.len();
    }
    total
}

/// A payload whose rows the database refuses — a NUL character in a reference, which
/// PostgreSQL's text cannot hold — fails alone: the payloads sent at the same moment,
/// sharing its batch, are accepted and stored once each.
pub async fn a_write_the_database_refuses_fails_only_its_payload(store: Store) {
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let reference = if i == 20 { "A\u{0}B" } else { "AB" };
            let e = event(
                "carrier",
                &format!("q{i}"),
                "shipment.in_transit",
                &format!("Q{}", i % 7),
                i,
                &[("customer_ref", reference)],
            );
            let r = s
                .ingest(accepted("carrier", &format!("q{i}"), vec![e]))
                .await;
            (i, r)
        }));
    }
    let mut stored = 0;
    for t in tasks {
        let (i, r) = t.await.unwrap();
        match (i, r) {
            // SQLite keeps the NUL; PostgreSQL refuses the row.
            (20, Ok(IngestOutcome::Accepted { .. })) => stored += 1,
            (20, Err(_)) => {}
            (_, Ok(IngestOutcome::Accepted { .. })) => stored += 1,
            (i, other) => panic!("payload {i}: {other:?}"),
        }
    }
    assert_eq!(events_in_dense_lanes(&store, "Q", 7).await, stored);
}

/// Poller cursors persist and update.
pub async fn cursors_persist(store: Store) {
    assert_eq!(store.cursor("odoo:stock.picking").await.unwrap(), None);
    store
        .set_cursor("odoo:stock.picking", "2026-11-23 07:00:00")
        .await
        .unwrap();
    store
        .set_cursor("odoo:stock.picking", "2026-11-23 08:00:00")
        .await
        .unwrap();
    assert_eq!(
        store.cursor("odoo:stock.picking").await.unwrap().as_deref(),
        Some("2026-11-23 08:00:00")
    );
}

fn wf_input(wf: &str, key: &str, body: serde_json::Value) -> waybill_store::flow::NewInput {
    waybill_store::flow::NewInput {
        workflow: wf.into(),
        wf_kind: "order_to_ship".into(),
        entity: "S1".into(),
        kind: "event".into(),
        key: key.into(),
        body: body.to_string(),
    }
}

/// Tenants: a lane takes the tenant of its first tenant-bearing event; a lane without one
/// that joins a shipment belongs to that shipment's tenant; lists and lookups filtered by
/// tenant hold only that tenant's shipments, conflicts, workflows and tasks, and inbox
/// listings only the chosen sources' records.
pub async fn tenants_follow_their_shipments(store: Store) {
    use waybill_store::flow::{NewInput, NewTask, TaskQuery, WfQuery, WfSave};
    let with_tenant = |mut e: CloudEvent, t: &str| {
        e.tenant = Some(t.into());
        e
    };
    let a = with_tenant(
        event(
            "wms",
            "p1",
            "shipment.dispatched",
            "A1",
            1,
            &[("tracking", "TA")],
        ),
        "acme",
    );
    let b = with_tenant(
        event(
            "odoo",
            "p2",
            "shipment.dispatched",
            "B1",
            1,
            &[("tracking", "TB")],
        ),
        "beta",
    );
    // A carrier lane with no tenant naming beta's tracking number.
    let c = event(
        "carrier",
        "p3",
        "shipment.in_transit",
        "C1",
        2,
        &[("tracking", "TB")],
    );
    // An event naming another tenant later does not move a shipment.
    let a2 = with_tenant(
        event("wms", "p4", "shipment.in_transit", "A1", 3, &[]),
        "beta",
    );
    for (k, e) in [("p1", a), ("p2", b), ("p3", c), ("p4", a2)] {
        store.ingest(accepted("src", k, vec![e])).await.unwrap();
    }
    store
        .ingest(accepted(
            "x",
            "p5",
            vec![event("x", "p5", "shipment.in_transit", "N1", 1, &[])],
        ))
        .await
        .unwrap();
    assert_eq!(
        store.tenant_of("A1").await.unwrap().as_deref(),
        Some("acme")
    );
    assert_eq!(
        store.tenant_of("B1").await.unwrap().as_deref(),
        Some("beta")
    );
    assert_eq!(
        store.tenant_of("C1").await.unwrap().as_deref(),
        Some("beta")
    );
    assert_eq!(store.tenant_of("N1").await.unwrap(), None);
    assert_eq!(store.tenant_of("nope").await.unwrap(), None);
    let list = |tenant: Option<&str>| ShipmentQuery {
        state: None,
        after: None,
        reference: None,
        limit: 100,
        tenant: tenant.map(str::to_owned),
    };
    let keys =
        |v: Vec<ShipmentSummary>| -> Vec<String> { v.into_iter().map(|s| s.state.key.0).collect() };
    assert_eq!(
        keys(store.shipments(list(Some("acme"))).await.unwrap()),
        ["A1"]
    );
    let beta = keys(store.shipments(list(Some("beta"))).await.unwrap());
    assert_eq!(beta.len(), 1, "{beta:?}");
    assert!(["B1", "C1"].contains(&beta[0].as_str()), "{beta:?}");
    assert!(store
        .shipments(list(Some("gamma")))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.shipments(list(None)).await.unwrap().len(), 3);
    // Inbox listings by source set.
    let inbox = |sources: Option<Vec<String>>| InboxQuery {
        limit: 100,
        sources,
        ..InboxQuery::default()
    };
    assert_eq!(store.inbox(inbox(None)).await.unwrap().len(), 5);
    let only_x = store.inbox(inbox(Some(vec!["x".into()]))).await.unwrap();
    assert_eq!(only_x.len(), 1);
    assert_eq!(only_x[0].source, "x");
    assert!(store.inbox(inbox(Some(vec![]))).await.unwrap().is_empty());
    // Workflows and tasks of each tenant's shipment.
    for (wf, entity) in [
        ("order_to_ship:A1", "A1"),
        ("order_to_ship:B1", beta[0].as_str()),
    ] {
        store
            .wf_offer(vec![NewInput {
                workflow: wf.into(),
                wf_kind: "order_to_ship".into(),
                entity: entity.into(),
                kind: "event".into(),
                key: "k".into(),
                body: "{}".into(),
            }])
            .await
            .unwrap();
        let (_, input) = store.wf_load(wf).await.unwrap().unwrap();
        store
            .wf_save(WfSave {
                id: wf.into(),
                expect_version: 0,
                status: "waiting".into(),
                stage: "s".into(),
                state: "null".into(),
                pending: "[]".into(),
                input_done: input.map(|i| i.id),
                open_tasks: vec![NewTask {
                    kind: "choose_carrier".into(),
                    title: "Choose".into(),
                    detail: "{}".into(),
                }],
                ..WfSave::default()
            })
            .await
            .unwrap();
    }
    let wfs = |tenant: &str| WfQuery {
        limit: 100,
        tenant: Some(tenant.into()),
        ..WfQuery::default()
    };
    let acme_wf = store.workflows(wfs("acme")).await.unwrap();
    assert_eq!(
        acme_wf.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["order_to_ship:A1"]
    );
    let beta_wf = store.workflows(wfs("beta")).await.unwrap();
    assert_eq!(
        beta_wf.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["order_to_ship:B1"]
    );
    let tasks = |tenant: Option<&str>| TaskQuery {
        limit: 100,
        tenant: tenant.map(str::to_owned),
        ..TaskQuery::default()
    };
    let acme_tasks = store.tasks(tasks(Some("acme"))).await.unwrap();
    assert_eq!(acme_tasks.len(), 1);
    assert_eq!(acme_tasks[0].workflow, "order_to_ship:A1");
    assert_eq!(store.tasks(tasks(None)).await.unwrap().len(), 2);
}

/// The event log sealed into the audit chain: a checkpoint covers the rows written since
/// the last one, none is written when nothing was, and every checkpoint verifies.
pub async fn event_log_checkpoints_seal_new_rows(store: Store) {
    use waybill_store::audit::EventsVerdict;
    let ev = |k: &str, m| event("carrier", k, "shipment.in_transit", "SEAL-1", m, &[]);
    for (k, m) in [("s1", 1), ("s2", 2), ("s3", 3)] {
        store
            .ingest(accepted("carrier", k, vec![ev(k, m)]))
            .await
            .unwrap();
    }
    assert_eq!(store.last_checkpoint().await.unwrap(), 0);
    let first = store.checkpoint_events(0, "test").await.unwrap().unwrap();
    assert_eq!(store.last_checkpoint().await.unwrap(), first);
    assert_eq!(store.checkpoint_events(first, "test").await.unwrap(), None);
    store
        .ingest(accepted("carrier", "s4", vec![ev("s4", 4)]))
        .await
        .unwrap();
    let second = store
        .checkpoint_events(first, "test")
        .await
        .unwrap()
        .unwrap();
    assert!(second > first);
    assert_eq!(
        store.verify_events().await.unwrap(),
        EventsVerdict::Ok {
            checkpoints: 2,
            events: 4
        }
    );
    let (n, digest) = store.events_digest(0, second).await.unwrap();
    assert_eq!(n, 4);
    assert_ne!(digest, store.events_digest(0, first).await.unwrap().1);
    assert!(matches!(
        store.audit_verify().await.unwrap(),
        waybill_store::audit::AuditVerdict::Ok { records: 2, .. }
    ));
}

/// Workflows: inputs are offered once per key and consumed in order; a save applies
/// only at the version it was loaded at (a second runner's save changes nothing);
/// history, tasks and documents are kept with it.
pub async fn workflow_steps_save_once_per_version(store: Store) {
    use waybill_store::flow::{NewDocument, NewTask, WfSave, WfStep};
    let wf = "order_to_ship:S1";
    let added = store
        .wf_offer(vec![
            wf_input(wf, "event:a", serde_json::json!({"n": 1})),
            wf_input(wf, "event:b", serde_json::json!({"n": 2})),
            wf_input(wf, "event:a", serde_json::json!({"n": 1})),
        ])
        .await
        .unwrap();
    assert_eq!(added, 2, "a key is offered once");
    assert_eq!(store.wf_runnable(0, 10).await.unwrap(), vec![wf.to_owned()]);
    let (rec, input) = store.wf_load(wf).await.unwrap().unwrap();
    assert_eq!((rec.status.as_str(), rec.version), ("running", 0));
    let input = input.unwrap();
    assert_eq!(input.key, "event:a");
    let save = WfSave {
        id: wf.into(),
        expect_version: 0,
        status: "waiting".into(),
        stage: "quoting".into(),
        state: r#"{"x":1}"#.into(),
        pending: "[]".into(),
        input_done: Some(input.id),
        steps: vec![WfStep {
            n: 0,
            step: "quote".into(),
            input: "{}".into(),
            answer: r#"{"ok":true}"#.into(),
            outcome: "ok".into(),
            attempts: 1,
            started_at: 1,
            ended_at: 2,
        }],
        open_tasks: vec![NewTask {
            kind: "choose_carrier".into(),
            title: "Choose".into(),
            detail: "{}".into(),
        }],
        documents: vec![NewDocument {
            name: "label:shp_1".into(),
            mime: "application/pdf".into(),
            bytes: b"%PDF-1.4 label".to_vec(),
        }],
        ..WfSave::default()
    };
    let tasks = store.wf_save(save.clone()).await.unwrap();
    assert_eq!(tasks.len(), 1);
    // The same save again (a second runner that loaded version 0) is refused whole.
    assert!(matches!(
        store.wf_save(save).await,
        Err(waybill_store::StoreError::Stale(_))
    ));
    let (rec, next) = store.wf_load(wf).await.unwrap().unwrap();
    assert_eq!((rec.stage.as_str(), rec.version), ("quoting", 1));
    assert_eq!(next.unwrap().key, "event:b", "the consumed input is gone");
    let (_, steps, _) = store.workflow(wf).await.unwrap().unwrap();
    assert_eq!(steps.len(), 1, "the refused save added no history");
    assert_eq!(steps[0].n, 1);
    let open = store
        .tasks(waybill_store::flow::TaskQuery {
            status: Some("open".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].entity, "S1");
    let doc = store.document(wf, "label:shp_1").await.unwrap().unwrap();
    assert_eq!(doc.1, b"%PDF-1.4 label");
    let listed = store
        .workflows(waybill_store::flow::WfQuery {
            entity: Some("S1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

/// Timers are durable and fire once: a due timer becomes one input, moving a timer
/// replaces it, a cancelled one never fires.
pub async fn timers_fire_once(store: Store) {
    use waybill_store::flow::WfSave;
    let wf = "order_to_ship:S1";
    store
        .wf_offer(vec![wf_input(wf, "event:a", serde_json::json!({}))])
        .await
        .unwrap();
    let save = |v: i64, set: Vec<(String, i64)>, cancel: Vec<String>| WfSave {
        id: wf.into(),
        expect_version: v,
        status: "waiting".into(),
        stage: "awaiting_pack".into(),
        state: "null".into(),
        pending: "[]".into(),
        set_timers: set,
        cancel_timers: cancel,
        ..WfSave::default()
    };
    store
        .wf_save(save(
            0,
            vec![("packing".into(), 1_000), ("other".into(), 500)],
            vec![],
        ))
        .await
        .unwrap();
    store
        .wf_save(save(
            1,
            vec![("packing".into(), 2_000)],
            vec!["other".into()],
        ))
        .await
        .unwrap();
    assert_eq!(store.timer_count().await.unwrap(), 1);
    assert_eq!(store.wf_next_due().await.unwrap(), Some(2_000));
    assert_eq!(
        store.wf_fire_timers(1_999, 100).await.unwrap(),
        0,
        "moved, not due"
    );
    let (a, b) = tokio::join!(
        store.wf_fire_timers(2_000, 100),
        store.wf_fire_timers(2_000, 100)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1, "fired once");
    assert_eq!(store.timer_count().await.unwrap(), 0);
    assert_eq!(store.wf_next_due().await.unwrap(), None);
    let (_, input) = store.wf_load(wf).await.unwrap().unwrap();
    assert_eq!(input.unwrap().key, "event:a");
    let mut keys = Vec::new();
    let (rec, mut input) = store.wf_load(wf).await.unwrap().unwrap();
    let mut v = rec.version;
    while let Some(i) = input {
        keys.push(i.key.clone());
        let mut s = save(v, vec![], vec![]);
        s.input_done = Some(i.id);
        store.wf_save(s).await.unwrap();
        v += 1;
        input = store.wf_load(wf).await.unwrap().unwrap().1;
    }
    assert_eq!(
        keys,
        vec!["event:a".to_owned(), "timer:packing:2000".to_owned()]
    );
}

/// A task is claimed by one person and resolved once; the resolution is handed to its
/// workflow as an input in the same transaction.
pub async fn tasks_resolve_into_workflow_inputs(store: Store) {
    use waybill_store::flow::{NewTask, TaskAction, TaskRefusal, WfSave};
    let wf = "order_to_ship:S1";
    store
        .wf_offer(vec![wf_input(wf, "event:a", serde_json::json!({}))])
        .await
        .unwrap();
    let (_, input) = store.wf_load(wf).await.unwrap().unwrap();
    let ids = store
        .wf_save(WfSave {
            id: wf.into(),
            expect_version: 0,
            status: "waiting".into(),
            stage: "needs_decision".into(),
            state: "null".into(),
            pending: "[]".into(),
            input_done: input.map(|i| i.id),
            open_tasks: vec![NewTask {
                kind: "choose_carrier".into(),
                title: "Choose".into(),
                detail: "{}".into(),
            }],
            ..WfSave::default()
        })
        .await
        .unwrap();
    let id = ids[0];
    let counts = store.wf_counts().await.unwrap();
    assert_eq!(counts.tasks_open, 1);
    assert_eq!(
        counts.by_status,
        vec![("order_to_ship".to_owned(), "waiting".to_owned(), 1)]
    );
    let claimed = store
        .task_act(id, TaskAction::Claim { by: "ana".into() })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.status, "claimed");
    let other = store
        .task_act(
            id,
            TaskAction::Resolve {
                by: "bob".into(),
                decision: "{}".into(),
                reason: None,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(other, Err(TaskRefusal::NotOpen(_))),
        "claimed by ana"
    );
    let done = store
        .task_act(
            id,
            TaskAction::Resolve {
                by: "ana".into(),
                decision: r#"{"carrier":"acme"}"#.into(),
                reason: Some("cheapest that takes it".into()),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, "resolved");
    assert_eq!(done.resolved_by.as_deref(), Some("ana"));
    let again = store
        .task_act(
            id,
            TaskAction::Resolve {
                by: "ana".into(),
                decision: "{}".into(),
                reason: None,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(again, Err(TaskRefusal::NotOpen(_))),
        "resolved once"
    );
    assert!(matches!(
        store
            .task_act(9_999_999, TaskAction::Claim { by: "x".into() })
            .await
            .unwrap(),
        Err(TaskRefusal::NotFound)
    ));
    let (_, input) = store.wf_load(wf).await.unwrap().unwrap();
    let input = input.unwrap();
    assert_eq!(
        (input.kind.as_str(), input.key.clone()),
        ("task", format!("task:{id}"))
    );
    let body: serde_json::Value = serde_json::from_str(&input.body).unwrap();
    assert_eq!(body["decision"]["carrier"], "acme");
    assert_eq!(body["by"], "ana");
}

/// The time of unix ms `ms`.
fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
}

/// One event per shipment `S<n>` routed to `ops`; returns their pending rows.
async fn staged(store: &Store, n: usize) -> (Vec<CloudEvent>, Vec<OutboxItem>) {
    store
        .sync_subscriptions(vec![sub("all", "ops", &[], &[])])
        .await
        .unwrap();
    let mut events = Vec::new();
    for i in 0..n {
        let key = format!("p{i}");
        let e = event(
            "carrier",
            &key,
            "shipment.in_transit",
            &format!("S{i}"),
            1,
            &[],
        );
        store
            .ingest(accepted("carrier", &key, vec![e.clone()]))
            .await
            .unwrap();
        events.push(e);
    }
    let rows = store.pending_outbox("ops", 0, 100).await.unwrap();
    assert_eq!(rows.len(), n);
    (events, rows)
}

/// Every attempt is recorded: a delivery on the outbox row itself (when, status, time
/// taken), each failed attempt as a history row, oldest first.
pub async fn delivery_attempts_are_kept(store: Store) {
    let (events, rows) = staged(&store, 2).await;
    store
        .record_deliveries(vec![
            retry(rows[0].id, 1, 5, Some(503), "HTTP 503"),
            retry(rows[1].id, 1, 5, None, "connection refused"),
        ])
        .await
        .unwrap();
    store
        .record_deliveries(vec![
            delivered(rows[0].id, 2),
            retry(rows[1].id, 2, 6, Some(429), "HTTP 429"),
        ])
        .await
        .unwrap();
    store
        .record_deliveries(vec![dead(rows[1].id, 3, Some(400), "HTTP 400")])
        .await
        .unwrap();
    let ok = store
        .deliveries_of(&events[0].subject, events[0].id.as_str())
        .await
        .unwrap();
    assert_eq!(ok.len(), 1);
    let ok = &ok[0];
    assert_eq!(
        (ok.sink.as_str(), ok.state.as_str(), ok.attempts),
        ("ops", "delivered", 2)
    );
    // Answered 1.5 ms after the attempt was sent.
    assert_eq!(
        ok.delivered_at,
        Some(at_ms(ATTEMPT_AT_MS + 2) + time::Duration::microseconds(1_500))
    );
    assert_eq!(
        (ok.last_status, ok.last_duration_ms),
        (Some(200), Some(1.5))
    );
    assert_eq!(ok.last_error, None);
    assert_eq!(
        ok.history,
        vec![AttemptRecord {
            attempt: 1,
            at: at_ms(ATTEMPT_AT_MS + 1),
            status: Some(503),
            duration_ms: 2.5,
            error: "HTTP 503".into(),
        }],
        "the delivery adds no history row"
    );
    let failed = store
        .deliveries_of(&events[1].subject, events[1].id.as_str())
        .await
        .unwrap();
    let failed = &failed[0];
    assert_eq!((failed.state.as_str(), failed.attempts), ("dead", 3));
    assert_eq!(failed.delivered_at, None);
    assert_eq!(
        (failed.last_status, failed.last_error.as_deref()),
        (Some(400), Some("HTTP 400"))
    );
    let seen: Vec<(u32, Option<u16>, &str)> = failed
        .history
        .iter()
        .map(|a| (a.attempt, a.status, a.error.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, None, "connection refused"),
            (2, Some(429), "HTTP 429"),
            (3, Some(400), "HTTP 400")
        ]
    );
    // A result recorded twice (a batch retried after a lost answer) adds nothing.
    store
        .record_deliveries(vec![retry(rows[0].id, 3, 7, Some(500), "HTTP 500")])
        .await
        .unwrap();
    let again = store
        .deliveries_of(&events[0].subject, events[0].id.as_str())
        .await
        .unwrap();
    assert_eq!(again[0].history.len(), 1);
    assert_eq!(again[0].state, "delivered");
    let json = serde_json::to_value(&again[0]).unwrap();
    assert_eq!(json["history"][0]["status"], 503);
    assert!(json["delivered_at"].is_string(), "{json}");
}

/// Dead letters can be inspected (event, attempts) and discarded: kept, never replayed,
/// not counted as open; a replayed one cannot be discarded. Listings filter by state and
/// page by id.
pub async fn dead_letters_are_discarded_not_replayed(store: Store) {
    let (events, rows) = staged(&store, 3).await;
    for r in &rows {
        store
            .record_deliveries(vec![retry(r.id, 1, 5, Some(503), "HTTP 503")])
            .await
            .unwrap();
        store
            .record_deliveries(vec![dead(r.id, 2, Some(422), "HTTP 422")])
            .await
            .unwrap();
    }
    let list = |state: DeadLetterState, before: Option<i64>, limit: usize| {
        let store = store.clone();
        async move {
            store
                .dead_letters(DeadLetterQuery {
                    state,
                    before,
                    limit,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|d| (d.id, d.state))
                .collect::<Vec<_>>()
        }
    };
    let open = list(DeadLetterState::Open, None, 10).await;
    assert_eq!(open.len(), 3);
    let (c, b, a) = (open[0].0, open[1].0, open[2].0);
    assert!(c > b && b > a, "newest first: {open:?}");

    let detail = store.dead_letter(a).await.unwrap().unwrap();
    assert_eq!(detail.dead_letter.state, "open");
    assert_eq!(detail.dead_letter.event_id, events[0].id.as_str());
    assert_eq!(detail.event["id"], events[0].id.as_str());
    assert_eq!(detail.event["sequence"], "00000000000000000001");
    assert_eq!(
        detail
            .history
            .iter()
            .map(|h| (h.attempt, h.status))
            .collect::<Vec<_>>(),
        vec![(1, Some(503)), (2, Some(422))]
    );
    assert!(store.dead_letter(a + 1_000).await.unwrap().is_none());

    let gone = store.discard_dead_letter(a, "ana").await.unwrap().unwrap();
    assert_eq!(gone.dead_letter.state, "discarded");
    assert_eq!(gone.dead_letter.discarded_by.as_deref(), Some("ana"));
    assert!(gone.dead_letter.discarded_at.is_some());
    assert_eq!(gone.event["id"], events[0].id.as_str(), "kept for audit");
    assert_eq!(
        store
            .discard_dead_letter(a, "bob")
            .await
            .unwrap()
            .unwrap_err(),
        DeadLetterRefusal::Discarded
    );
    assert_eq!(
        store.replay_dead_letter(a).await.unwrap(),
        Err(DeadLetterRefusal::Discarded)
    );
    assert!(store
        .replay_dead_letters(ReplaySelector::Ids(vec![a]))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.replay_dead_letter(a + 1_000).await.unwrap(),
        Err(DeadLetterRefusal::NotFound)
    );
    assert_eq!(
        store
            .discard_dead_letter(a + 1_000, "ana")
            .await
            .unwrap()
            .unwrap_err(),
        DeadLetterRefusal::NotFound
    );
    let depths = store.depths().await.unwrap();
    assert_eq!(depths.dead_letters, vec![("ops".to_string(), 2)]);

    let new_row = store.replay_dead_letter(b).await.unwrap().unwrap();
    assert!(new_row > rows[2].id);
    assert_eq!(
        store.replay_dead_letter(b).await.unwrap(),
        Err(DeadLetterRefusal::Replayed)
    );
    assert_eq!(
        store
            .discard_dead_letter(b, "ana")
            .await
            .unwrap()
            .unwrap_err(),
        DeadLetterRefusal::Replayed
    );
    let replayed = store.dead_letter(b).await.unwrap().unwrap();
    assert_eq!(
        (
            replayed.dead_letter.state.as_str(),
            replayed.replay_outbox_id
        ),
        ("replayed", Some(new_row))
    );

    assert_eq!(
        list(DeadLetterState::Open, None, 10).await,
        vec![(c, "open".to_string())]
    );
    assert_eq!(
        list(DeadLetterState::Discarded, None, 10).await,
        vec![(a, "discarded".to_string())]
    );
    assert_eq!(
        list(DeadLetterState::Replayed, None, 10).await,
        vec![(b, "replayed".to_string())]
    );
    assert_eq!(
        list(DeadLetterState::All, None, 2).await,
        vec![(c, "open".to_string()), (b, "replayed".to_string())]
    );
    assert_eq!(
        list(DeadLetterState::All, Some(b), 10).await,
        vec![(a, "discarded".to_string())],
        "the page after b"
    );
    let not_discarded = store
        .dead_letters(DeadLetterQuery {
            include_replayed: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        not_discarded.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![c, b]
    );
    // Bulk replay takes the open one only.
    let bulk = store
        .replay_dead_letters(ReplaySelector::All {
            sink: None,
            tenant: None,
        })
        .await
        .unwrap();
    assert_eq!(bulk.iter().map(|r| r.0).collect::<Vec<_>>(), vec![c]);
    assert!(store.depths().await.unwrap().dead_letters.is_empty());
    let json = serde_json::to_value(&gone).unwrap();
    assert_eq!(json["state"], "discarded");
    assert_eq!(json["event"]["id"], events[0].id.as_str());
}

/// A rejected payload is read whole (a large one is stored compressed) with its
/// headers, and marked once as reprocessed into a new inbox row.
pub async fn rejected_payloads_are_marked_reprocessed(store: Store) {
    let lines: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"line":{i},"sku":"SKU-{i:05}","qty":4}}"#))
        .collect();
    let big = format!(r#"{{"lines":[{}]}}"#, lines.join(","));
    let rejected = |key: &str| IngestRecord {
        source: "carrier".into(),
        idempotency_key: key.into(),
        received_at: OffsetDateTime::now_utc(),
        headers: vec![("x-partner".into(), "acme".into())],
        body: big.clone().into_bytes(),
        verdict: Verdict::Rejected {
            code: "mapping.runtime".into(),
            reason: "no subject".into(),
        },
    };
    let IngestOutcome::Rejected { inbox_id: first } = store.ingest(rejected("r1")).await.unwrap()
    else {
        panic!("not rejected")
    };
    let IngestOutcome::Rejected { inbox_id: second } = store.ingest(rejected("r2")).await.unwrap()
    else {
        panic!("not rejected")
    };
    let rec = store.inbox_record(first).await.unwrap().unwrap();
    assert_eq!(rec.body, big);
    assert_eq!(
        rec.headers,
        vec![("x-partner".to_string(), "acme".to_string())]
    );
    assert_eq!((rec.reprocessed_at, rec.reprocessed_into), (None, None));
    assert!(store.inbox_record(second + 1_000).await.unwrap().is_none());

    let e = event("carrier", "r1-again", "shipment.in_transit", "S1", 1, &[]);
    let IngestOutcome::Accepted { inbox_id: into, .. } = store
        .ingest(accepted("carrier", "r1-again", vec![e]))
        .await
        .unwrap()
    else {
        panic!("not accepted")
    };
    assert!(store.mark_reprocessed(first, into).await.unwrap());
    assert!(
        !store.mark_reprocessed(first, into).await.unwrap(),
        "marked once"
    );
    assert!(
        !store.mark_reprocessed(into, into).await.unwrap(),
        "not a rejected record"
    );
    assert!(!store.mark_reprocessed(second + 1_000, into).await.unwrap());
    let rec = store.inbox_record(first).await.unwrap().unwrap();
    assert_eq!(rec.reprocessed_into, Some(into));
    assert!(rec.reprocessed_at.is_some());

    let ids = |open_only: bool, before: Option<i64>| {
        let store = store.clone();
        async move {
            store
                .inbox(InboxQuery {
                    status: Some("rejected".into()),
                    open_only,
                    before,
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(false, None).await, vec![second, first]);
    assert_eq!(ids(true, None).await, vec![second], "reprocessed hidden");
    assert_eq!(ids(false, Some(second)).await, vec![first], "the next page");
    let json = serde_json::to_value(&rec).unwrap();
    assert_eq!(json["reprocessed_into"], into);
}

/// Pausing a sink is kept (who, when) and announced; resuming replaces it.
pub async fn sink_pauses_are_kept(store: Store) {
    assert!(store.sink_controls().await.unwrap().is_empty());
    let mut signal = store.config_signal();
    signal.borrow_and_update();
    let paused = store.set_sink_paused("ops", true, "ana").await.unwrap();
    assert_eq!(
        (
            paused.sink.as_str(),
            paused.paused,
            paused.changed_by.as_str()
        ),
        ("ops", true, "ana")
    );
    assert!(signal.has_changed().unwrap(), "announced");
    let erp = store.set_sink_paused("erp", true, "ana").await.unwrap();
    assert_eq!(
        store.sink_controls().await.unwrap(),
        vec![erp, paused.clone()],
        "by name"
    );
    let resumed = store.set_sink_paused("ops", false, "bob").await.unwrap();
    let all = store.sink_controls().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].sink, "erp");
    assert_eq!(all[1], resumed);
    assert!(!all[1].paused);
    assert_eq!(all[1].changed_by, "bob");
    assert!(all[1].changed_at >= paused.changed_at);
}

/// Subscriptions change at run time: an event ingested after a change returns is
/// routed by the new set; a later start with the configuration file keeps what the API
/// changed or deleted, and configured ones leave with the file.
pub async fn subscriptions_change_at_run_time(store: Store) {
    let config = vec![
        sub("cfg-all", "ops", &[], &[]),
        sub("cfg-erp", "erp", &["shipment.delivered"], &[]),
    ];
    store.sync_subscriptions(config.clone()).await.unwrap();
    let listed = store.subscriptions().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| (s.name.as_str(), s.origin))
            .collect::<Vec<_>>(),
        vec![
            ("cfg-all", SubscriptionOrigin::Config),
            ("cfg-erp", SubscriptionOrigin::Config)
        ]
    );
    let mut n = 0;
    let mut routed = |ty: &'static str| {
        n += 1;
        let store = store.clone();
        let key = format!("k{n}");
        async move {
            let e = event("carrier", &key, ty, "S1", n, &[]);
            store
                .ingest(accepted("carrier", &key, vec![e.clone()]))
                .await
                .unwrap();
            store
                .deliveries_of(&e.subject, e.id.as_str())
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.subscription)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        routed("shipment.delivered").await,
        vec!["cfg-all", "cfg-erp"]
    );

    // Added through the API: the very next event goes there too.
    assert!(store
        .put_subscription(sub("api-audit", "audit", &["shipment.*"], &[]))
        .await
        .unwrap());
    assert_eq!(
        routed("shipment.delivered").await,
        vec!["api-audit", "cfg-all", "cfg-erp"]
    );
    // A configured one changed through the API becomes the API's.
    assert!(!store
        .put_subscription(sub("cfg-erp", "erp", &["warehouse.*"], &[]))
        .await
        .unwrap());
    // A configured one deleted through the API.
    assert!(store.delete_subscription("cfg-all").await.unwrap());
    assert!(!store.delete_subscription("cfg-all").await.unwrap());
    assert!(!store.delete_subscription("nope").await.unwrap());
    assert_eq!(routed("shipment.delivered").await, vec!["api-audit"]);
    assert_eq!(routed("warehouse.packed").await, vec!["cfg-erp"]);
    let listed = store.subscriptions().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| (s.name.as_str(), s.origin, s.types.clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                "api-audit",
                SubscriptionOrigin::Api,
                vec!["shipment.*".to_string()]
            ),
            (
                "cfg-erp",
                SubscriptionOrigin::Api,
                vec!["warehouse.*".to_string()]
            ),
        ]
    );

    // A start with the configuration file (plus a new entry) keeps the API's changes.
    let mut file = config.clone();
    file.push(sub("cfg-new", "ops", &["shipment.delivered"], &[]));
    store.sync_subscriptions(file).await.unwrap();
    let names =
        |l: Vec<SubscriptionRecord>| l.into_iter().map(|s| (s.name, s.types)).collect::<Vec<_>>();
    assert_eq!(
        names(store.subscriptions().await.unwrap()),
        vec![
            ("api-audit".to_string(), vec!["shipment.*".to_string()]),
            ("cfg-erp".to_string(), vec!["warehouse.*".to_string()]),
            (
                "cfg-new".to_string(),
                vec!["shipment.delivered".to_string()]
            ),
        ]
    );
    assert_eq!(
        routed("shipment.delivered").await,
        vec!["api-audit", "cfg-new"]
    );
    // A configured one that left the file goes; the API's stay.
    store
        .sync_subscriptions(vec![sub("cfg-erp", "erp", &[], &[])])
        .await
        .unwrap();
    assert_eq!(
        names(store.subscriptions().await.unwrap()),
        vec![
            ("api-audit".to_string(), vec!["shipment.*".to_string()]),
            ("cfg-erp".to_string(), vec!["warehouse.*".to_string()]),
        ]
    );
    assert_eq!(routed("shipment.delivered").await, vec!["api-audit"]);
    // The deleted one left the file, so its tombstone went: back in the file, it is back.
    store.sync_subscriptions(config).await.unwrap();
    assert_eq!(
        routed("shipment.delivered").await,
        vec!["api-audit", "cfg-all"]
    );
    // Put over a deleted one creates it.
    assert!(store.delete_subscription("api-audit").await.unwrap());
    assert!(store
        .put_subscription(sub("api-audit", "audit", &[], &[]))
        .await
        .unwrap());
}

/// A subscription's personal data setting (in clear, masked, or its sink's default) is
/// kept through the configuration file's sync and the API's put, listed, and in force for
/// routing and delivery as soon as the change returns.
pub async fn subscriptions_keep_their_personal_data_setting(store: Store) {
    let with = |name: &str, sink: &str, personal_data: Option<bool>| Subscription {
        personal_data,
        ..sub(name, sink, &[], &[])
    };
    let settings = |l: Vec<SubscriptionRecord>| {
        l.into_iter()
            .map(|s| (s.name, s.personal_data))
            .collect::<Vec<_>>()
    };
    let in_force = |store: &Store| {
        store
            .subscriptions_in_force()
            .into_iter()
            .map(|s| (s.name, s.personal_data))
            .collect::<Vec<_>>()
    };
    let want = |v: &[(&str, Option<bool>)]| {
        v.iter()
            .map(|(n, p)| ((*n).to_owned(), *p))
            .collect::<Vec<_>>()
    };
    let file = vec![
        with("cfg-clear", "crm", Some(true)),
        with("cfg-default", "ops", None),
        with("cfg-masked", "ops", Some(false)),
    ];
    store.sync_subscriptions(file).await.unwrap();
    let first = want(&[
        ("cfg-clear", Some(true)),
        ("cfg-default", None),
        ("cfg-masked", Some(false)),
    ]);
    assert_eq!(settings(store.subscriptions().await.unwrap()), first);
    assert_eq!(in_force(&store), first);
    let record = store.subscriptions().await.unwrap().remove(0);
    assert_eq!(record.subscription(), with("cfg-clear", "crm", Some(true)));

    // Only the setting changed in the file: the next start writes it.
    let file = vec![
        with("cfg-clear", "crm", None),
        with("cfg-default", "ops", Some(false)),
        with("cfg-masked", "ops", Some(false)),
    ];
    store.sync_subscriptions(file.clone()).await.unwrap();
    let second = want(&[
        ("cfg-clear", None),
        ("cfg-default", Some(false)),
        ("cfg-masked", Some(false)),
    ]);
    assert_eq!(settings(store.subscriptions().await.unwrap()), second);
    assert_eq!(in_force(&store), second);

    // Through the API: in force (and announced) when the put returns.
    let mut signal = store.config_signal();
    signal.borrow_and_update();
    assert!(!store
        .put_subscription(with("cfg-masked", "ops", Some(true)))
        .await
        .unwrap());
    assert!(signal.has_changed().unwrap(), "announced");
    assert!(store
        .put_subscription(with("api-clear", "audit", Some(true)))
        .await
        .unwrap());
    let third = want(&[
        ("api-clear", Some(true)),
        ("cfg-clear", None),
        ("cfg-default", Some(false)),
        ("cfg-masked", Some(true)),
    ]);
    assert_eq!(settings(store.subscriptions().await.unwrap()), third);
    assert_eq!(in_force(&store), third);
    // Put without a setting: back to the sink's default.
    store
        .put_subscription(with("cfg-masked", "ops", None))
        .await
        .unwrap();
    let listed = store.subscriptions().await.unwrap();
    assert_eq!(listed[3].name, "cfg-masked");
    assert_eq!(listed[3].personal_data, None);
    assert_eq!(listed[3].origin, SubscriptionOrigin::Api);
    // The file again does not undo the API's settings.
    store.sync_subscriptions(file).await.unwrap();
    assert_eq!(
        settings(store.subscriptions().await.unwrap()),
        want(&[
            ("api-clear", Some(true)),
            ("cfg-clear", None),
            ("cfg-default", Some(false)),
            ("cfg-masked", None),
        ])
    );
}

/// Sink health: waiting rows and the oldest one's time, the last delivery, open dead
/// letters; sinks of subscriptions and controls are listed even when idle.
pub async fn sink_stats_per_sink(store: Store) {
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let (_, rows) = staged(&store, 3).await;
    store.set_sink_paused("quiet", true, "ana").await.unwrap();
    let stats = store.sink_stats().await.unwrap();
    assert_eq!(
        stats.iter().map(|s| s.sink.as_str()).collect::<Vec<_>>(),
        vec!["ops", "quiet"]
    );
    let ops = &stats[0];
    assert_eq!(
        (ops.pending, ops.dead_open, ops.last_delivered_at),
        (3, 0, None)
    );
    let oldest = ops.oldest_pending_at.unwrap();
    assert!(
        oldest >= before && oldest <= OffsetDateTime::now_utc(),
        "{oldest}"
    );
    assert_eq!(
        (
            stats[1].pending,
            stats[1].oldest_pending_at,
            stats[1].dead_open
        ),
        (0, None, 0)
    );
    store
        .record_deliveries(vec![
            delivered(rows[0].id, 1),
            dead(rows[1].id, 1, Some(400), "HTTP 400"),
        ])
        .await
        .unwrap();
    store
        .record_deliveries(vec![delivered(rows[2].id, 3)])
        .await
        .unwrap();
    let ops = store.sink_stats().await.unwrap().remove(0);
    assert_eq!(ops.sink, "ops");
    assert_eq!(
        (ops.pending, ops.oldest_pending_at, ops.dead_open),
        (0, None, 1)
    );
    assert_eq!(
        ops.last_delivered_at,
        Some(at_ms(ATTEMPT_AT_MS + 3) + time::Duration::microseconds(1_500)),
        "the latest delivery"
    );
    // An older result recorded late does not move it back.
    let e = event("carrier", "late", "shipment.in_transit", "S9", 1, &[]);
    store
        .ingest(accepted("carrier", "late", vec![e]))
        .await
        .unwrap();
    let more = store.pending_outbox("ops", 0, 10).await.unwrap();
    assert_eq!(more.len(), 1);
    store
        .record_deliveries(vec![delivered(more[0].id, 1)])
        .await
        .unwrap();
    let ops = store.sink_stats().await.unwrap().remove(0);
    assert_eq!(
        ops.last_delivered_at,
        Some(at_ms(ATTEMPT_AT_MS + 3) + time::Duration::microseconds(1_500))
    );
    let dl = store
        .dead_letters(DeadLetterQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .discard_dead_letter(dl[0].id, "ana")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.sink_stats().await.unwrap()[0].dead_open, 0);
}

/// What the control tower changed is still there after a restart: `reopen` closes
/// nothing and opens the same store again (a second process on the same database).
pub async fn controls_survive_a_restart<F, Fut>(store: Store, reopen: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Store>,
{
    let file = vec![
        sub("cfg-all", "ops", &[], &[]),
        sub("cfg-erp", "erp", &[], &[]),
    ];
    store.sync_subscriptions(file.clone()).await.unwrap();
    store
        .put_subscription(Subscription {
            personal_data: Some(true),
            ..sub("api-audit", "audit", &[], &[])
        })
        .await
        .unwrap();
    store.delete_subscription("cfg-erp").await.unwrap();
    store.set_sink_paused("erp", true, "ana").await.unwrap();
    store.close().await;
    let again = reopen().await;
    // Routed by what is stored, even before the start syncs the file.
    let e = event("carrier", "r1", "shipment.delivered", "S1", 1, &[]);
    again
        .ingest(accepted("carrier", "r1", vec![e.clone()]))
        .await
        .unwrap();
    let subs = |v: Vec<OutboxItemState>| v.into_iter().map(|d| d.subscription).collect::<Vec<_>>();
    assert_eq!(
        subs(
            again
                .deliveries_of(&e.subject, e.id.as_str())
                .await
                .unwrap()
        ),
        vec!["api-audit", "cfg-all"]
    );
    again.sync_subscriptions(file).await.unwrap();
    let e = event("carrier", "r2", "shipment.delivered", "S1", 2, &[]);
    again
        .ingest(accepted("carrier", "r2", vec![e.clone()]))
        .await
        .unwrap();
    assert_eq!(
        subs(
            again
                .deliveries_of(&e.subject, e.id.as_str())
                .await
                .unwrap()
        ),
        vec!["api-audit", "cfg-all"],
        "the deleted one stays deleted"
    );
    // The personal data setting too, listed and in force.
    let audit = |l: Vec<Subscription>| l.into_iter().find(|s| s.name == "api-audit");
    assert_eq!(
        audit(again.subscriptions_in_force()).map(|s| s.personal_data),
        Some(Some(true))
    );
    let listed = again.subscriptions().await.unwrap();
    assert_eq!(
        audit(
            listed
                .iter()
                .map(SubscriptionRecord::subscription)
                .collect()
        )
        .map(|s| s.personal_data),
        Some(Some(true))
    );
    let controls = again.sink_controls().await.unwrap();
    assert_eq!(controls.len(), 1);
    assert!(controls[0].paused && controls[0].sink == "erp");
    again.close().await;
}

/// API keys: created once per id, read back with their hash (never the key), revoked
/// and touched; a revoked key stays listed.
pub async fn api_keys_are_kept_by_hash_and_revoked(store: Store) {
    use waybill_store::keys::NewKey;
    let hash = "ab".repeat(32);
    let new = NewKey {
        id: "0123abcd".into(),
        name: "erp".into(),
        hash: hash.clone(),
        scopes: vec!["read".into(), "operate".into()],
        tenant: Some("acme".into()),
        expires_at: None,
        created_by: "test".into(),
    };
    let rec = store.key_create(new.clone()).await.unwrap().unwrap();
    assert_eq!(rec.scopes, vec!["read", "operate"]);
    assert_eq!(rec.tenant.as_deref(), Some("acme"));
    assert!(rec.live(OffsetDateTime::now_utc()));
    assert!(
        store.key_create(new).await.unwrap().is_none(),
        "an id is created once"
    );
    let (found, stored) = store.key_lookup("0123abcd").await.unwrap().unwrap();
    assert_eq!(stored, hash);
    assert_eq!(found, rec);
    assert!(store.key_lookup("nope").await.unwrap().is_none());
    let at = OffsetDateTime::now_utc();
    store.key_touch("0123abcd", at).await.unwrap();
    let (found, _) = store.key_lookup("0123abcd").await.unwrap().unwrap();
    assert!(found.last_used_at.is_some());
    let revoked = store.key_revoke("0123abcd").await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(!revoked.live(OffsetDateTime::now_utc()));
    assert!(store.key_revoke("nope").await.unwrap().is_none());
    let all = store.keys().await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].revoked_at.is_some());
}

/// Generates one `#[tokio::test]` per suite function for a backend. `$open` is an async
/// expression giving a fresh `(Store, guard)`; the guard lives until the test ends.
#[macro_export]
macro_rules! store_tests {
    ($open:expr) => {
        $crate::store_tests!(@each $open;
            duplicate_payload_returns_original_ids,
            an_event_in_two_payloads_is_appended_once,
            rejected_payloads_are_kept,
            unauthenticated_payloads_are_bounded_samples,
            sequence_is_dense_and_late_events_do_not_regress,
            events_are_routed_to_matching_subscriptions,
            events_repeating_their_payload_read_back_exactly,
            dead_letters_are_replayed_once,
            xrefs_and_state_listing,
            concurrent_ingests_are_all_durable,
            a_write_the_database_refuses_fails_only_its_payload,
            cursors_persist,
            one_shipment_across_systems_in_any_order,
            shipments_ingested_together_settle_as_each_alone,
            contradicting_identifiers_are_flagged_not_merged,
            a_non_owners_value_is_a_conflict_not_applied,
            linking_appends_and_routes_shipment_linked,
            workflow_steps_save_once_per_version,
            timers_fire_once,
            tasks_resolve_into_workflow_inputs,
            tenants_follow_their_shipments,
            event_log_checkpoints_seal_new_rows,
            delivery_attempts_are_kept,
            dead_letters_are_discarded_not_replayed,
            rejected_payloads_are_marked_reprocessed,
            sink_pauses_are_kept,
            subscriptions_change_at_run_time,
            subscriptions_keep_their_personal_data_setting,
            sink_stats_per_sink,
            audit_chain_verifies_after_appends,
            api_keys_are_kept_by_hash_and_revoked,
            old_payloads_are_purged_in_batches,
            retention_never_purges_open_dead_letters,
            audit_prefix_purge_keeps_the_chain_verifiable,
            erasure_masks_personal_data_and_keeps_the_shipment
        );
    };
    (@each $open:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((store, _guard)) = $open.await else { return };
                $crate::store_suite::$name(store.clone()).await;
                store.close().await;
            }
        )*
    };
}
