//! The store behaviour suite against each backend.
#![allow(clippy::unwrap_used, missing_docs)]

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
}
