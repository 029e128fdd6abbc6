//! Retention and erasure's part of the store behaviour suite: purges go in batches, take
//! only what is old enough, never touch events, shipments or open dead letters, keep the
//! audit chain verifiable; an erasure masks personal data and keeps the shipment.

use crate::store_suite::{accepted, dead, delivered, event, retry};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};
use waybill_model::privacy::Personal;
use waybill_model::{CloudEvent, ShipmentKey};
use waybill_store::audit::{AuditAnchor, AuditEntry, AuditQuery, AuditVerdict};
use waybill_store::retention::{Erase, PayloadCutoffs, PurgeKind, PurgePlan, PurgeReport};
use waybill_store::*;

fn plan(now: OffsetDateTime, batch: u32) -> PurgePlan {
    PurgePlan {
        now,
        payloads: PayloadCutoffs::default(),
        sources: BTreeMap::new(),
        delivered: None,
        dead_letters: None,
        audit: None,
        batch,
        dry_run: false,
    }
}

/// Runs the plan until a call purges fewer rows of every kind than the batch; the total
/// and the number of calls.
async fn purge_all(store: &Store, p: &PurgePlan) -> (PurgeReport, usize) {
    let mut total = PurgeReport::default();
    for calls in 1..1000 {
        let r = store.purge(p.clone()).await.unwrap();
        total.merge(&r);
        if r.counts.values().all(|c| c.rows < u64::from(p.batch)) {
            return (total, calls);
        }
    }
    panic!("the purge does not end");
}

/// A payload large enough that its events are stored packed against it.
fn big_payload(key: &str) -> (Vec<u8>, serde_json::Value) {
    let lines: Vec<serde_json::Value> = (0..30)
        .map(|l| {
            serde_json::json!({"line": l, "sku": format!("SKU-{l:05}"),
                "description": "Stainless steel shelf bracket, 300 mm, pack of 4"})
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({"key": key, "lines": lines})).unwrap();
    (body, serde_json::json!(lines))
}

/// Sets a key of an event's data (an object, made one when it is not), keeping the rest
/// (its references).
fn set(data: &mut serde_json::Value, key: &str, v: serde_json::Value) {
    if !data.is_object() {
        *data = serde_json::json!({});
    }
    if let Some(o) = data.as_object_mut() {
        o.insert(key.into(), v);
    }
}

fn record(source: &str, key: &str, at: OffsetDateTime, events: Vec<CloudEvent>) -> IngestRecord {
    let (body, _) = big_payload(key);
    let mut rec = accepted(source, key, events);
    rec.body = body;
    rec.received_at = at;
    rec
}

/// Old accepted payloads lose their bodies and old rejected ones go, a batch per call;
/// recent ones and sources kept longer stay; a dry run counts the same and changes
/// nothing; shipments and timelines (events packed against a purged payload included)
/// read the same afterwards, and a payload sent again is still a duplicate.
pub async fn old_payloads_are_purged_in_batches(store: Store) {
    let now = OffsetDateTime::now_utc();
    let old = now - Duration::days(100);
    let mut keys = Vec::new();
    for i in 0..5 {
        let key = format!("old-{i}");
        let (_, lines) = big_payload(&key);
        let mut e = event(
            "wms",
            &key,
            "shipment.dispatched",
            &format!("S{}", i % 2),
            i,
            &[("tracking", "1ZOLD")],
        );
        set(&mut e.data, "lines", lines);
        store
            .ingest(record("wms", &key, old, vec![e]))
            .await
            .unwrap();
        keys.push(key);
    }
    let recent = event("wms", "new-1", "shipment.delivered", "S0", 50, &[]);
    store
        .ingest(record(
            "wms",
            "new-1",
            now - Duration::days(1),
            vec![recent],
        ))
        .await
        .unwrap();
    // A source kept for 7 days: its 10-day-old payload goes, the same age of `wms` stays.
    let short = event("short", "s-1", "shipment.in_transit", "S1", 40, &[]);
    store
        .ingest(record(
            "short",
            "s-1",
            now - Duration::days(10),
            vec![short],
        ))
        .await
        .unwrap();
    let ten = event("wms", "ten-1", "shipment.in_transit", "S1", 41, &[]);
    store
        .ingest(record("wms", "ten-1", now - Duration::days(10), vec![ten]))
        .await
        .unwrap();
    for (i, at) in [(0, old), (1, old), (2, old), (3, now)] {
        let mut rec = accepted("wms", &format!("bad-{i}"), vec![]);
        rec.received_at = at;
        rec.verdict = Verdict::Rejected {
            code: "mapping.runtime".into(),
            reason: "no".into(),
        };
        store.ingest(rec).await.unwrap();
    }
    let views = |store: Store| async move {
        let mut out = Vec::new();
        for k in ["S0", "S1"] {
            let v = store
                .shipment(&ShipmentKey(k.into()))
                .await
                .unwrap()
                .unwrap();
            out.push((
                serde_json::to_value(&v.state).unwrap(),
                serde_json::to_value(&v.timeline).unwrap(),
            ));
        }
        out
    };
    let before = views(store.clone()).await;
    let inbox = |store: Store| async move {
        store
            .inbox(InboxQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.idempotency_key, r.body.len()))
            .collect::<BTreeMap<_, _>>()
    };
    let inbox_before = inbox(store.clone()).await;
    assert_eq!(inbox_before.len(), 12);

    let mut p = plan(now, 2);
    p.payloads = PayloadCutoffs {
        raw_payloads: Some(now - Duration::days(90)),
        rejected_payloads: Some(now - Duration::days(30)),
    };
    p.sources.insert(
        "short".into(),
        PayloadCutoffs {
            raw_payloads: Some(now - Duration::days(7)),
            rejected_payloads: None,
        },
    );
    let dry = store
        .purge(PurgePlan {
            dry_run: true,
            ..p.clone()
        })
        .await
        .unwrap();
    assert_eq!(dry.get(PurgeKind::RawPayloads).rows, 6, "{dry:?}");
    assert_eq!(dry.get(PurgeKind::RejectedPayloads).rows, 3, "{dry:?}");
    assert!(dry.get(PurgeKind::RawPayloads).bytes > 6 * 100);
    assert_eq!(
        inbox(store.clone()).await,
        inbox_before,
        "a dry run changes nothing"
    );

    let first = store.purge(p.clone()).await.unwrap();
    assert_eq!(
        first.get(PurgeKind::RawPayloads).rows,
        2,
        "one batch: {first:?}"
    );
    assert_eq!(first.get(PurgeKind::RejectedPayloads).rows, 2);
    let (rest, calls) = purge_all(&store, &p).await;
    let mut total = first.clone();
    total.merge(&rest);
    assert_eq!(total, dry, "the purge took what the dry run counted");
    assert!(calls >= 2, "in batches: {calls} calls");
    assert_eq!(store.purge(p.clone()).await.unwrap().rows(), 0);

    let after = inbox(store.clone()).await;
    for k in &keys {
        assert_eq!(after[k], 0, "{k}'s body is purged");
    }
    assert_eq!(after["s-1"], 0, "`short` keeps payloads 7 days");
    assert!(after["ten-1"] > 0, "`wms` keeps them 90 days");
    assert!(after["new-1"] > 0);
    assert!(!after.contains_key("bad-0") && after.contains_key("bad-3"));
    assert_eq!(after.len(), 9);
    assert_eq!(
        views(store.clone()).await,
        before,
        "shipments and timelines unchanged"
    );

    let again = store
        .ingest(record(
            "wms",
            "old-0",
            now,
            vec![event("wms", "old-0", "shipment.dispatched", "S0", 0, &[])],
        ))
        .await
        .unwrap();
    assert!(
        matches!(again, IngestOutcome::Duplicate { .. }),
        "{again:?}"
    );
}

/// Delivered outbox rows and closed dead letters older than their cutoff go (with their
/// attempts); pending rows and open dead letters stay.
pub async fn retention_never_purges_open_dead_letters(store: Store) {
    store
        .sync_subscriptions(vec![Subscription {
            name: "all".into(),
            sink: "ops".into(),
            types: vec![],
            sources: vec![],
            personal_data: None,
        }])
        .await
        .unwrap();
    for i in 0..5 {
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
            .ingest(accepted("carrier", &key, vec![e]))
            .await
            .unwrap();
    }
    let rows = store.pending_outbox("ops", 0, 100).await.unwrap();
    assert_eq!(rows.len(), 5);
    store
        .record_deliveries(vec![delivered(rows[0].id, 1), delivered(rows[1].id, 1)])
        .await
        .unwrap();
    for r in &rows[2..4] {
        store
            .record_deliveries(vec![retry(r.id, 1, 5, Some(503), "HTTP 503")])
            .await
            .unwrap();
        store
            .record_deliveries(vec![dead(r.id, 2, Some(422), "HTTP 422")])
            .await
            .unwrap();
    }
    let open = store
        .dead_letters(DeadLetterQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 2);
    store
        .discard_dead_letter(open[0].id, "ana")
        .await
        .unwrap()
        .unwrap();
    let later = OffsetDateTime::now_utc() + Duration::days(1);
    let mut p = plan(later, 10);
    p.delivered = Some(later);
    p.dead_letters = Some(later);
    let dry = store
        .purge(PurgePlan {
            dry_run: true,
            ..p.clone()
        })
        .await
        .unwrap();
    let done = store.purge(p.clone()).await.unwrap();
    assert_eq!(done, dry);
    assert_eq!(done.get(PurgeKind::Delivered).rows, 2, "{done:?}");
    assert_eq!(done.get(PurgeKind::DeadLetters).rows, 1, "{done:?}");
    assert!(store.dead_letter(open[0].id).await.unwrap().is_none());
    let kept = store.dead_letter(open[1].id).await.unwrap().unwrap();
    assert_eq!(
        kept.dead_letter.state, "open",
        "open dead letters are never purged"
    );
    assert_eq!(kept.history.len(), 2);
    assert_eq!(store.purge(p).await.unwrap().rows(), 0);
    let pending = store.pending_outbox("ops", 0, 100).await.unwrap();
    assert_eq!(pending.len(), 1, "pending rows stay");
    let d = store.depths().await.unwrap();
    assert_eq!(d.dead_letters, vec![("ops".to_string(), 1)]);
}

/// Purging a prefix of the audit chain keeps it verifiable from its new base: the last
/// record is never purged, an anchor at the base still matches, the purge is itself
/// recorded, and a record after the base removed by hand is still found.
pub async fn audit_prefix_purge_keeps_the_chain_verifiable(store: Store) {
    for i in 0..7 {
        store
            .audit_append(AuditEntry {
                actor: "ana".into(),
                action: "sink.pause".into(),
                target: format!("sink:s{i}"),
                detail: serde_json::json!({"i": i}),
                origin: "127.0.0.1".into(),
            })
            .await
            .unwrap();
    }
    let records = store.audit(AuditQuery::default()).await.unwrap();
    let later = OffsetDateTime::now_utc() + Duration::days(1);
    let mut p = plan(later, 3);
    p.audit = Some(later);
    let dry = store
        .purge(PurgePlan {
            dry_run: true,
            ..p.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        dry.get(PurgeKind::Audit).rows,
        6,
        "all but the last: {dry:?}"
    );
    let first = store.purge(p.clone()).await.unwrap();
    assert_eq!(first.get(PurgeKind::Audit).rows, 3);
    let (base_seq, base_hash) = store.audit_base().await.unwrap().unwrap();
    assert_eq!(
        (base_seq, base_hash.as_str()),
        (3, records[2].hash.as_str())
    );
    let anchors = vec![
        AuditAnchor {
            seq: 2,
            hash: records[1].hash.clone(),
            at: later,
        },
        AuditAnchor {
            seq: 3,
            hash: records[2].hash.clone(),
            at: later,
        },
        AuditAnchor {
            seq: 6,
            hash: records[5].hash.clone(),
            at: later,
        },
    ];
    assert!(matches!(
        store.audit_verify_anchored(anchors.clone()).await.unwrap(),
        AuditVerdict::Ok { .. }
    ));
    purge_all(&store, &p).await;
    let left = store.audit(AuditQuery::default()).await.unwrap();
    assert!(!left.is_empty());
    let purges: Vec<_> = left.iter().filter(|r| r.action == "audit.purge").collect();
    assert!(!purges.is_empty(), "{left:?}");
    let (base, _) = store.audit_base().await.unwrap().unwrap();
    assert_eq!(left[0].seq, base + 1);
    match store.audit_verify().await.unwrap() {
        AuditVerdict::Ok {
            records, head_seq, ..
        } => {
            assert_eq!(records as usize, left.len());
            assert_eq!(head_seq, left.last().unwrap().seq);
        }
        v => panic!("{v:?}"),
    }
    let wrong = vec![AuditAnchor {
        seq: base,
        hash: "ab".repeat(32),
        at: later,
    }];
    assert!(matches!(
        store.audit_verify_anchored(wrong).await.unwrap(),
        AuditVerdict::Broken { .. }
    ));
}

/// An erasure masks the personal values of a shipment's events and drops their
/// payloads, keeping event ids, types, times, sequence numbers and the state; by
/// reference it reaches the shipment the reference names; an unknown one is `None`.
pub async fn erasure_masks_personal_data_and_keeps_the_shipment(store: Store) {
    let (_, lines) = big_payload("pod-1");
    let mut dispatched = event(
        "carrier",
        "pod-0",
        "shipment.dispatched",
        "S-ERASE",
        1,
        &[("tracking", "1Z999AA10123456784")],
    );
    dispatched.data =
        serde_json::json!({"lines": lines, "recipient": {"name": "Ana Lima", "street": "Rua 1"}});
    let mut delivered_ev = event(
        "carrier",
        "pod-1",
        "shipment.delivered",
        "S-ERASE",
        2,
        &[("tracking", "1Z999AA10123456784")],
    );
    set(&mut delivered_ev.data, "signed_by", "Ana Lima".into());
    set(&mut delivered_ev.data, "weight", 3.into());
    let other = event("carrier", "other", "shipment.dispatched", "S-OTHER", 1, &[]);
    let now = OffsetDateTime::now_utc();
    store
        .ingest(record("carrier", "pod-0", now, vec![dispatched]))
        .await
        .unwrap();
    store
        .ingest(record("carrier", "pod-1", now, vec![delivered_ev]))
        .await
        .unwrap();
    store
        .ingest(record("carrier", "other", now, vec![other]))
        .await
        .unwrap();
    let key = ShipmentKey("S-ERASE".into());
    let before = store.shipment(&key).await.unwrap().unwrap();
    let report = store
        .erase(Erase::Shipment("S-ERASE".into()), Personal::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.shipments, vec!["S-ERASE".to_string()]);
    assert_eq!(
        (report.events, report.values, report.payloads),
        (2, 2, 2),
        "{report:?}"
    );
    let after = store.shipment(&key).await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(&after.state).unwrap(),
        serde_json::to_value(&before.state).unwrap()
    );
    assert_eq!(after.timeline.len(), 2);
    for (a, b) in after.timeline.iter().zip(&before.timeline) {
        assert_eq!(
            (
                &a.event.id,
                &a.event.ty,
                &a.event.time,
                &a.event.sequence,
                a.sequence
            ),
            (
                &b.event.id,
                &b.event.ty,
                &b.event.time,
                &b.event.sequence,
                b.sequence
            )
        );
    }
    let text = serde_json::to_string(&after.timeline).unwrap();
    assert!(
        !text.contains("Ana Lima") && !text.contains("Rua 1"),
        "{text}"
    );
    assert!(text.contains("SKU-00029"), "the rest of the data stays");
    let facts = serde_json::to_string(&after.facts).unwrap();
    assert!(!facts.contains("Ana Lima"), "{facts}");
    let inbox = store
        .inbox(InboxQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    for r in &inbox {
        let dropped = r.idempotency_key.starts_with("pod-");
        assert_eq!(r.body.is_empty(), dropped, "{}", r.idempotency_key);
    }
    let by_ref = store
        .erase(
            Erase::Reference {
                kind: "tracking".into(),
                value: "1z999aa10123456784".into(),
            },
            Personal::default(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_ref.shipments, vec!["S-ERASE".to_string()]);
    assert_eq!(
        (by_ref.events, by_ref.payloads),
        (0, 0),
        "nothing left: {by_ref:?}"
    );
    assert!(store
        .erase(Erase::Shipment("S-NONE".into()), Personal::default())
        .await
        .unwrap()
        .is_none());
}
