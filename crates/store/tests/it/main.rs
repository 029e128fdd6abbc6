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
}
