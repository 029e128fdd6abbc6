//! The store behaviour suite against each backend.
#![allow(clippy::unwrap_used, missing_docs)]

mod postgres {
    use waybill_store::Store;
    use waybill_testkit::pg::{fresh, SchemaGuard};

    async fn open() -> Option<(Store, SchemaGuard)> {
        let (opts, guard) = fresh("suite");
        let store = Store::open_postgres(opts).await.unwrap();
        Some((store, guard))
    }

    waybill_testkit::store_tests!(open());

    /// Pauses and subscription changes are kept in the schema: another store opened on
    /// it (a restart, or a second instance) sees them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn controls_survive_a_restart() {
        let (opts, _guard) = fresh("restart");
        let store = Store::open_postgres(opts.clone()).await.unwrap();
        waybill_testkit::store_suite::controls_survive_a_restart(store, || async move {
            Store::open_postgres(opts).await.unwrap()
        })
        .await;
    }

    /// Two instances on one schema: a subscription put or deleted through one routes
    /// the events the other ingests within about a second, and the other's
    /// configuration signal fires.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscription_changes_reach_other_instances() {
        use waybill_store::{OutboxItemState, Subscription};
        use waybill_testkit::store_suite::{accepted, event};
        let (opts, _guard) = fresh("instances");
        let a = Store::open_postgres(opts.clone()).await.unwrap();
        let b = Store::open_postgres(opts).await.unwrap();
        let file = vec![Subscription {
            name: "cfg-all".into(),
            sink: "ops".into(),
            types: vec![],
            sources: vec![],
            personal_data: None,
        }];
        a.sync_subscriptions(file.clone()).await.unwrap();
        b.sync_subscriptions(file).await.unwrap();
        let mut n = 0;
        // Ingests through `b` until its event is routed as `want` (or 3 s pass).
        let mut routed_on_b = |want: Vec<&'static str>| {
            let b = b.clone();
            n += 10;
            let first = n;
            async move {
                let start = std::time::Instant::now();
                for i in first.. {
                    let key = format!("k{i}");
                    let e = event("carrier", &key, "shipment.delivered", "S1", i, &[]);
                    b.ingest(accepted("carrier", &key, vec![e.clone()]))
                        .await
                        .unwrap();
                    let got: Vec<String> = b
                        .deliveries_of(&e.subject, e.id.as_str())
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|d: OutboxItemState| d.subscription)
                        .collect();
                    if got == want {
                        return start.elapsed();
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(3),
                        "still routed to {got:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                unreachable!()
            }
        };
        routed_on_b(vec!["cfg-all"]).await;
        let mut signal = b.config_signal();
        signal.borrow_and_update();
        a.put_subscription(Subscription {
            name: "api-audit".into(),
            sink: "audit".into(),
            types: vec![],
            sources: vec![],
            personal_data: None,
        })
        .await
        .unwrap();
        let took = routed_on_b(vec!["api-audit", "cfg-all"]).await;
        assert!(took < Duration::from_millis(1_500), "{took:?}");
        assert!(signal.has_changed().unwrap());
        a.delete_subscription("cfg-all").await.unwrap();
        let took = routed_on_b(vec!["api-audit"]).await;
        assert!(took < Duration::from_millis(1_500), "{took:?}");
        // A personal data setting put through `a` is in force on `b` (whose dispatchers
        // minimise by it) within about a second.
        a.put_subscription(Subscription {
            name: "api-audit".into(),
            sink: "audit".into(),
            types: vec![],
            sources: vec![],
            personal_data: Some(true),
        })
        .await
        .unwrap();
        let start = std::time::Instant::now();
        loop {
            let on_b = b.subscriptions_in_force();
            if on_b
                .iter()
                .any(|s| s.name == "api-audit" && s.personal_data == Some(true))
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_millis(1_500), "{on_b:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A pause set through `a` is what `b` reads.
        a.set_sink_paused("ops", true, "ana").await.unwrap();
        assert!(b.sink_controls().await.unwrap()[0].paused);
        a.close().await;
        b.close().await;
    }

    use std::collections::BTreeSet;
    use std::time::Duration;
    use waybill_store::lease::{delivery_lease, singleton_lease, LeaseClaim};

    /// The store works again after the server cut its connections (a database restart
    /// or failover): the writer, the readers and the listener connect again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_cut_by_the_server_are_opened_again() {
        use waybill_testkit::store_suite::{accepted, event};
        let (opts, _guard) = fresh("revive");
        let store = Store::open_postgres(opts.clone()).await.unwrap();
        let ev = |k: &str, m| event("wms", k, "shipment.in_transit", "S1", m, &[]);
        store
            .ingest(accepted("wms", "k1", vec![ev("k1", 0)]))
            .await
            .unwrap();
        let mut signal = store.outbox_signal();
        signal.borrow_and_update();
        let cut = waybill_testkit::pg::cut_connections(&opts.schema);
        assert!(cut >= 3, "writer, readers and listener: {cut}");
        // A write in flight when the connection went fails (not acknowledged); the next
        // ones succeed.
        let mut stored = false;
        for _ in 0..50 {
            if store
                .ingest(accepted("wms", "k2", vec![ev("k2", 1)]))
                .await
                .is_ok()
            {
                stored = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(stored, "no write succeeded after the cut");
        let mut events = 0;
        for _ in 0..50 {
            if let Ok(Some(v)) = store
                .shipment(&waybill_model::ShipmentKey("S1".into()))
                .await
            {
                events = v.timeline.len();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(events, 2, "both events read back");
        // The listener is back too: it wakes the dispatchers when it reconnects.
        tokio::time::timeout(Duration::from_secs(5), signal.changed())
            .await
            .expect("the listener did not come back")
            .unwrap();
        store.close().await;
    }

    /// Instances share the leases fairly and never hold one twice; what an instance that
    /// stopped claiming held is taken over once it expires; released leases at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_are_shared_fairly_and_taken_over_after_expiry() {
        let (opts, _guard) = fresh("leases");
        let store = Store::open_postgres(opts).await.unwrap();
        let names: Vec<String> = (0..16)
            .map(|b| delivery_lease("ops", b))
            .chain([singleton_lease("poller:odoo")])
            .collect();
        let all: BTreeSet<String> = names.iter().cloned().collect();
        let claim = |h: &str| LeaseClaim {
            holder: h.into(),
            names: names.clone(),
            ttl_ms: 600,
        };
        let held = |g: &waybill_store::lease::LeaseGrant| -> BTreeSet<String> {
            g.held.iter().cloned().collect()
        };
        let a = store.claim_leases(claim("a")).await.unwrap();
        assert_eq!(held(&a), all, "alone: everything");
        let b = store.claim_leases(claim("b")).await.unwrap();
        assert!(b.held.is_empty(), "all taken and valid: {b:?}");
        assert_eq!(b.instances, 2);
        let a = store.claim_leases(claim("a")).await.unwrap();
        assert_eq!(a.held.len(), 9, "its share of 17 among 2");
        // Both claim every 150 ms (as their keepers would, every quarter of the lease):
        // b gets what a let expire.
        let (mut a, mut b) = (a, b);
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            a = store.claim_leases(claim("a")).await.unwrap();
            b = store.claim_leases(claim("b")).await.unwrap();
            assert!(held(&a).is_disjoint(&held(&b)));
        }
        assert_eq!(a.held.len(), 9);
        assert_eq!(b.held.len(), 8, "the leases a let expire: {b:?}");
        assert!(held(&a).is_disjoint(&held(&b)));
        assert_eq!(&held(&a) | &held(&b), all);
        // a stops claiming: b has everything within the lease time and one claim.
        let start = std::time::Instant::now();
        while b.held.len() < names.len() {
            assert!(
                start.elapsed() < Duration::from_millis(600 + 400),
                "not taken over: {b:?}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
            b = store.claim_leases(claim("b")).await.unwrap();
        }
        assert_eq!(b.instances, 1);
        // b stops gracefully: c takes everything at once.
        store.release_leases("b").await.unwrap();
        let c = store.claim_leases(claim("c")).await.unwrap();
        assert_eq!(held(&c), all);
        store.close().await;
    }

    /// Two instances appending to the audit trail at once make one chain: each reads the
    /// head under the writers' advisory lock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn audit_appends_of_two_instances_form_one_chain() {
        use waybill_store::audit::{AuditEntry, AuditVerdict};
        let (opts, _guard) = fresh("audit_two");
        let a = Store::open_postgres(opts.clone()).await.unwrap();
        let b = Store::open_postgres(opts).await.unwrap();
        let tasks: Vec<_> = (0..60u32)
            .map(|i| {
                let s = if i.is_multiple_of(2) {
                    a.clone()
                } else {
                    b.clone()
                };
                tokio::spawn(async move {
                    s.audit_append(AuditEntry {
                        actor: "ana".into(),
                        action: "sink.pause".into(),
                        target: format!("sink:s{i}"),
                        detail: serde_json::json!({"i": i}),
                        origin: format!("instance={}", i % 2),
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        match b.audit_verify().await.unwrap() {
            AuditVerdict::Ok { records, .. } => assert_eq!(records, 60),
            broken => panic!("{broken:?}"),
        }
        a.close().await;
        b.close().await;
    }

    /// Tampering with the audit rows through another connection to the schema is named
    /// with the right seq and kind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn audit_tampering_is_detected() {
        let (opts, _guard) = fresh("audit_tamper");
        let store = Store::open_postgres(opts.clone()).await.unwrap();
        let raw = move |sql: String| {
            let (url, schema) = (opts.url.clone(), opts.schema.clone());
            std::thread::spawn(move || {
                let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls)
                    .map_err(|e| e.to_string())?;
                c.batch_execute(&format!("SET search_path TO {schema}; {sql}"))
                    .map_err(|e| e.to_string())
            })
            .join()
            .unwrap()
        };
        waybill_testkit::audit_suite::audit_tampering_is_detected(
            store.clone(),
            raw,
            "DROP TRIGGER audit_log_no_change ON audit_log",
        )
        .await;
        store.close().await;
    }
}

mod sqlite {
    use waybill_store::{SqliteOptions, Store};

    async fn open() -> Option<(Store, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(SqliteOptions::new(dir.path().join("t.db")))
            .await
            .unwrap();
        Some((store, dir))
    }

    waybill_testkit::store_tests!(open());

    use waybill_testkit::store_suite::{accepted, event};

    /// Pauses and subscription changes are kept in the file: the store opened again
    /// sees them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn controls_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open_sqlite(SqliteOptions::new(&path)).await.unwrap();
        waybill_testkit::store_suite::controls_survive_a_restart(store, || async move {
            Store::open_sqlite(SqliteOptions::new(&path)).await.unwrap()
        })
        .await;
    }

    /// An event repeating its payload's order lines is stored as a fraction of its JSON
    /// (packed against the payload), not as a second copy; a small one stays JSON.
    #[tokio::test]
    async fn an_event_repeating_its_payload_is_not_stored_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(SqliteOptions::new(dir.path().join("a.db")))
            .await
            .unwrap();
        let lines: Vec<serde_json::Value> = (0..20)
            .map(|l| serde_json::json!({"line": l, "sku": format!("SKU-{l:05}"), "description": "Shelf bracket, 300 mm", "qty": 4}))
            .collect();
        let mut big = event("wms", "p1", "warehouse.packed", "S1", 0, &[]);
        big.data = serde_json::json!({ "lines": lines });
        // A fixed recording time: "now" varies the JSON's length and how well it packs.
        big.recordedtime =
            time::OffsetDateTime::UNIX_EPOCH + time::Duration::new(1_764_547_200, 123_456_789);
        let small = event("wms", "p1", "shipment.dispatched", "S1", 1, &[]);
        let json_len = serde_json::to_string(&big).unwrap().len();
        let mut rec = accepted("wms", "p1", vec![big, small]);
        rec.body = serde_json::to_vec(&serde_json::json!({ "asn": "A1", "lines": lines })).unwrap();
        store.ingest(rec).await.unwrap();
        store.close().await;
        let c = rusqlite::Connection::open(dir.path().join("a.db")).unwrap();
        let mut st = c
            .prepare("SELECT encoding, length(body) FROM events ORDER BY seq_id")
            .unwrap();
        let rows: Vec<(Option<String>, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows[0].0.as_deref(), Some(waybill_store::body::LZ4_PAYLOAD));
        assert!(
            rows[0].1 * 5 < json_len as i64,
            "{rows:?} for {json_len} bytes of JSON"
        );
        assert_eq!(rows[1].0, None, "small: JSON as is");
    }

    /// Tampering with the audit rows through another connection to the file is named
    /// with the right seq and kind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn audit_tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open_sqlite(SqliteOptions::new(&path)).await.unwrap();
        let raw = move |sql: String| {
            rusqlite::Connection::open(&path)
                .and_then(|c| c.execute_batch(&sql))
                .map_err(|e| e.to_string())
        };
        waybill_testkit::audit_suite::audit_tampering_is_detected(
            store.clone(),
            raw,
            "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
        )
        .await;
        store.close().await;
    }
}
