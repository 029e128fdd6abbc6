//! A PostgreSQL schema of its own for each test: tests run in parallel on the machine's
//! server (`WAYBILL_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`)
//! without seeing each other's rows, and the schema is dropped when the guard goes.

use std::sync::atomic::{AtomicU32, Ordering};
use waybill_store::PgOptions;

/// The test server's URL.
pub fn url() -> String {
    std::env::var("WAYBILL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Drops its schema when dropped.
pub struct SchemaGuard {
    url: String,
    /// The schema's name.
    pub schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // On a thread of its own: the blocking client may not run inside a runtime.
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        })
        .join();
    }
}

/// Options for a store in a new, empty schema (`wbt_<pid>_<n>_<tag>`), and its guard.
/// Panics when the server cannot be reached: a test never skips silently.
pub fn fresh(tag: &str) -> (PgOptions, SchemaGuard) {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let schema = format!("wbt_{}_{n}_{tag}", std::process::id());
    let url = url();
    let probe = {
        let url = url.clone();
        std::thread::spawn(move || postgres::Client::connect(&url, postgres::NoTls).map(|_| ()))
            .join()
    };
    match probe {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!(
            "PostgreSQL at {url} is not reachable ({e}); start it (see .ci/run) or set WAYBILL_TEST_PG_URL"
        ),
        Err(_) => panic!("PostgreSQL probe panicked"),
    }
    let mut opts = PgOptions::new(url.clone());
    opts.schema.clone_from(&schema);
    opts.readers = 2;
    (opts, SchemaGuard { url, schema })
}

/// Cuts every connection of the store in `schema` from the server's side (as a database
/// restart or a failover would); returns how many were cut.
pub fn cut_connections(schema: &str) -> i64 {
    let (url, name) = (url(), waybill_store::pg_application_name(schema));
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let rows = c
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .unwrap();
        rows.len() as i64
    })
    .join()
    .unwrap()
}
