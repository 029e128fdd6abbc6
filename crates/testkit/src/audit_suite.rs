//! The audit trail's part of the store behaviour suite: appends chain, listings filter,
//! and tampering with the rows through a raw connection (as someone with the database
//! file or credentials would) is named by `audit_verify` with the right `seq` and kind.

use waybill_store::audit::{
    audit_hash, AuditEntry, AuditQuery, AuditRecord, AuditVerdict, TamperKind, GENESIS_HASH,
};
use waybill_store::Store;

fn entry(i: usize) -> AuditEntry {
    AuditEntry {
        actor: if i.is_multiple_of(2) { "ana" } else { "bob" }.into(),
        action: if i.is_multiple_of(3) {
            "sink.pause"
        } else {
            "subscription.put"
        }
        .into(),
        target: format!("t{}", i % 4),
        detail: serde_json::json!({"i": i, "note": "it's"}),
        origin: "127.0.0.1".into(),
    }
}

/// Appends `n` entries, most of them concurrently (they share group commits).
async fn append_n(store: &Store, n: usize) -> Vec<AuditRecord> {
    let first = store.audit_append(entry(0)).await.unwrap();
    let tasks: Vec<_> = (1..n)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move { s.audit_append(entry(i)).await.unwrap() })
        })
        .collect();
    let mut out = vec![first];
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out.sort_by_key(|r| r.seq);
    out
}

async fn all(store: &Store) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    loop {
        let after = out.last().map_or(0, |r: &AuditRecord| r.seq);
        let page = store
            .audit(AuditQuery {
                after_seq: after,
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Appended records chain from `GENESIS_HASH` with dense `seq`s, even when appended
/// concurrently; listings page and filter; the chain verifies, with its head.
pub async fn audit_chain_verifies_after_appends(store: Store) {
    assert_eq!(
        store.audit_verify().await.unwrap(),
        AuditVerdict::Ok {
            records: 0,
            head_seq: 0,
            head_hash: GENESIS_HASH.into()
        }
    );
    let n = 40;
    let appended = append_n(&store, n).await;
    let listed = all(&store).await;
    assert_eq!(listed, appended, "what was appended is what is listed");
    for (i, r) in listed.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1, "dense from 1");
        let prev = if i == 0 {
            GENESIS_HASH
        } else {
            &listed[i - 1].hash
        };
        assert_eq!(r.prev_hash, prev, "record {} chains", r.seq);
        assert_eq!(r.hash.len(), 64);
        assert_eq!(r.detail["note"], "it's");
    }
    let pauses = store
        .audit(AuditQuery {
            action: Some("sink.pause".into()),
            target: Some("t0".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!pauses.is_empty());
    assert!(pauses
        .iter()
        .all(|r| r.action == "sink.pause" && r.target == "t0"));
    let head = listed.last().unwrap();
    assert_eq!(
        store.audit_verify().await.unwrap(),
        AuditVerdict::Ok {
            records: n as u64,
            head_seq: n as i64,
            head_hash: head.hash.clone()
        }
    );
}

/// A SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The INSERT of a row with these values.
#[allow(clippy::too_many_arguments)]
fn insert_sql(
    seq: i64,
    at_us: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
    origin: &str,
    prev_hash: &str,
    hash: &str,
) -> String {
    format!(
        "INSERT INTO audit_log (seq, at, actor, action, target, detail, origin, prev_hash, hash)
         VALUES ({seq}, {at_us}, {}, {}, {}, {}, {}, {}, {})",
        lit(actor),
        lit(action),
        lit(target),
        lit(detail),
        lit(origin),
        lit(prev_hash),
        lit(hash)
    )
}

fn us(r: &AuditRecord) -> i64 {
    (r.at.unix_timestamp_nanos() / 1000) as i64
}

fn broken(v: AuditVerdict) -> (i64, TamperKind, String) {
    match v {
        AuditVerdict::Broken {
            first_bad_seq,
            kind,
            detail,
        } => (first_bad_seq, kind, detail),
        ok => panic!("tampering not detected: {ok:?}"),
    }
}

/// Tampering through a raw connection to the same database (`raw` runs SQL there):
/// the table refuses changes until its triggers are dropped (`unlock`); then an edited
/// record is `Altered`, a deleted one `Removed` and a forged one slipped in with a
/// correct-looking hash (the records after it renumbered) `Inserted`, each at its `seq`.
/// Each tampering is undone before the next, and the chain verifies again.
pub async fn audit_tampering_is_detected<F>(store: Store, raw: F, unlock: &str)
where
    F: Fn(String) -> Result<(), String>,
{
    let rows = append_n(&store, 8).await;
    let st = &store;
    let ok = |n: u64| async move {
        match st.audit_verify().await.unwrap() {
            AuditVerdict::Ok { records, .. } => assert_eq!(records, n),
            b => panic!("expected an intact chain: {b:?}"),
        }
    };
    ok(8).await;
    let r3 = &rows[2];
    let edit = format!(
        "UPDATE audit_log SET detail = {} WHERE seq = 3",
        lit(r#"{"i":2,"note":"nothing to see"}"#)
    );
    assert!(
        raw(edit.clone()).is_err(),
        "the table is append-only for SQL too"
    );
    raw(unlock.to_owned()).unwrap();

    // Edited.
    raw(edit).unwrap();
    let (seq, kind, detail) = broken(store.audit_verify().await.unwrap());
    assert_eq!((seq, kind), (3, TamperKind::Altered), "{detail}");
    raw(format!(
        "UPDATE audit_log SET detail = {} WHERE seq = 3",
        lit(&r3.detail.to_string())
    ))
    .unwrap();
    ok(8).await;

    // Deleted.
    raw("DELETE FROM audit_log WHERE seq = 5".into()).unwrap();
    let (seq, kind, detail) = broken(store.audit_verify().await.unwrap());
    assert_eq!((seq, kind), (5, TamperKind::Removed), "{detail}");
    let r5 = &rows[4];
    raw(insert_sql(
        5,
        us(r5),
        &r5.actor,
        &r5.action,
        &r5.target,
        &r5.detail.to_string(),
        &r5.origin,
        &r5.prev_hash,
        &r5.hash,
    ))
    .unwrap();
    ok(8).await;

    // Inserted: the records from 4 on move up by one, a forged record takes seq 4,
    // chained to record 3 and with its hash computed as the hub would.
    raw("UPDATE audit_log SET seq = -seq WHERE seq >= 4".into()).unwrap();
    raw("UPDATE audit_log SET seq = 1 - seq WHERE seq < 0".into()).unwrap();
    let at = us(&rows[2]) + 1;
    let detail = r#"{"sink":"ops"}"#;
    let prev = &rows[2].hash;
    let hash = audit_hash(
        4,
        at,
        "ana",
        "sink.resume",
        "sink:ops",
        detail,
        "10.9.9.9",
        prev,
    );
    raw(insert_sql(
        4,
        at,
        "ana",
        "sink.resume",
        "sink:ops",
        detail,
        "10.9.9.9",
        prev,
        &hash,
    ))
    .unwrap();
    let (seq, kind, detail) = broken(store.audit_verify().await.unwrap());
    assert_eq!((seq, kind), (4, TamperKind::Inserted), "{detail}");
}
