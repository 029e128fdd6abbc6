//! The audit trail end to end: operator actions through the API are listed by
//! `GET /v1/audit` in order with who and from where; the real binary's `waybill audit
//! verify` passes the chain, and names the record when the SQLite file is tampered with
//! (an edited, a deleted and an inserted record, each on a fresh copy), and with an
//! anchor file catches a record rewritten with a correct hash.

use crate::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use waybill_store::audit::audit_hash;
use waybill_testkit::FakePartner;

/// An operator's call: bearer key and `X-Waybill-Operator: ana`.
async fn op(hub: &TestHub, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", hub.base);
    let req = match method {
        "post" => hub.client.post(url),
        "put" => hub.client.put(url),
        "delete" => hub.client.delete(url),
        m => panic!("method {m}"),
    }
    .bearer_auth(API_KEY)
    .header("x-waybill-operator", "ana");
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `waybill audit verify --config <config>` (and `extra`), run as a process: exit code
/// and stdout.
fn verify(config: &Path, extra: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .args(extra)
        .env("WAYBILL_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code().is_some(), "killed: {stdout} {stderr}");
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

/// A fresh copy of the hub's database in a directory of its own, with a configuration
/// pointing at it; `tamper` runs SQL on the copy (its append-only triggers dropped).
fn tampered_copy(db: &Path, sink_url: &str, tamper: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("hub.db");
    std::fs::copy(db, &copy).unwrap();
    let c = rusqlite::Connection::open(&copy).unwrap();
    c.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    c.execute_batch(tamper).unwrap();
    drop(c);
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, config_toml(&copy, sink_url, FAST_RETRIES)).unwrap();
    (dir, config)
}

#[tokio::test]
async fn operator_actions_are_audited_and_waybill_audit_verify_finds_tampering() {
    let sink = FakePartner::start().await;
    sink.set_default(400); // refused for good: dead letters at once
    let sink_url = sink.url("/hook");
    // Operator actions only: the event log is not sealed here (the test below seals it).
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}\n[audit]\nseal_events_every = \"0s\"\n",
        config_toml(&dir.path().join("hub.db"), &sink_url, FAST_RETRIES)
    );
    let hub = TestHub::from_parts(
        waybill::Config::parse(&toml, std::iter::empty()).unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        dir,
    );
    for (id, s) in [("a-1", "S-AU1"), ("a-2", "S-AU2")] {
        hub.send(&carrier_event(id, s, "shipment.in_transit", 1), id)
            .await;
    }
    let end = std::time::Instant::now() + WAIT;
    let letters = loop {
        let l = hub.get("/v1/dead-letters").await;
        let l = l["dead_letters"].as_array().unwrap().clone();
        if l.len() == 2 || std::time::Instant::now() > end {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(letters.len(), 2);
    let (d1, d2) = (
        letters[0]["id"].as_i64().unwrap(),
        letters[1]["id"].as_i64().unwrap(),
    );
    // A payload its mapping refuses (not an event type): kept, re-processable.
    let r = hub
        .send(&carrier_event("a-3", "S-AU3", "in-transit", 3), "a-3")
        .await;
    assert_eq!(r.status().as_u16() / 100, 4);
    let inbox_id = r.json::<Value>().await.unwrap()["inbox_id"]
        .as_i64()
        .unwrap();

    let actions: Vec<(&str, String, Option<Value>, u16)> = vec![
        ("post", "/v1/sinks/ops/pause".into(), None, 200),
        ("post", "/v1/sinks/ops/resume".into(), None, 200),
        (
            "put",
            "/v1/subscriptions/x".into(),
            Some(json!({"sink": "ops"})),
            201,
        ),
        ("delete", "/v1/subscriptions/x".into(), None, 204),
        ("post", format!("/v1/dead-letters/{d1}/discard"), None, 200),
        ("post", format!("/v1/dead-letters/{d2}/replay"), None, 202),
        ("post", format!("/v1/inbox/{inbox_id}/reprocess"), None, 422),
        // Refused: changes nothing, recorded nowhere.
        ("post", format!("/v1/dead-letters/{d1}/discard"), None, 409),
        ("delete", "/v1/subscriptions/x".into(), None, 404),
    ];
    for (m, path, body, want) in actions {
        let (status, b) = op(&hub, m, &path, body).await;
        assert_eq!(status, want, "{m} {path}: {b}");
    }

    let page = hub.get("/v1/audit?limit=100").await;
    let records = page["records"].as_array().unwrap().clone();
    assert_eq!(page["next_after"], Value::Null);
    assert_eq!(records[0]["action"], "hub.start", "{page}");
    assert_eq!(records[0]["actor"], "system");
    let ops: Vec<(String, String)> = records[1..]
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("sink.pause", "sink:ops".to_owned()),
        ("sink.resume", "sink:ops".to_owned()),
        ("subscription.put", "subscription:x".to_owned()),
        ("subscription.delete", "subscription:x".to_owned()),
        ("dead_letter.discard", format!("dead_letter:{d1}")),
        ("dead_letter.replay", format!("dead_letter:{d2}")),
        ("inbox.reprocess", format!("inbox:{inbox_id}")),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, t)| ((*a).to_owned(), t.clone()))
        .collect();
    assert_eq!(ops, want, "{page}");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i as i64 + 1);
        if i > 0 {
            assert_eq!(r["prev_hash"], records[i - 1]["hash"], "chained");
            assert_eq!(
                r["actor"], "config/ana",
                "who: the key's name and the operator"
            );
            let origin = r["origin"].as_str().unwrap();
            assert!(
                origin.starts_with("peer=127.0.0.1 instance="),
                "from where: {origin}"
            );
        }
    }
    assert_eq!(records[3]["detail"]["sink"], "ops");
    assert_eq!(records[3]["detail"]["created"], true);
    assert_eq!(records[7]["detail"]["outcome"], "rejected");
    // Filters and paging.
    let pauses = hub.get("/v1/audit?action=sink.pause").await;
    assert_eq!(pauses["records"].as_array().unwrap().len(), 1);
    let on_ops = hub.get("/v1/audit?target=sink:ops").await;
    assert_eq!(on_ops["records"].as_array().unwrap().len(), 2);
    let first = hub.get("/v1/audit?limit=3").await;
    assert_eq!(first["next_after"], 3);
    let rest = hub.get("/v1/audit?after=3&limit=100").await;
    assert_eq!(rest["records"][0]["seq"], 4);
    let (status, b) = {
        let r = hub
            .client
            .get(format!("{}/v1/audit?limit=0", hub.base))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!((status, b["code"].as_str()), (400, Some("api.bad_request")));
    let head = records.last().unwrap()["hash"].as_str().unwrap().to_owned();
    let n = records.len();

    let dir = hub.stop().await;
    let db = dir.path().join("hub.db");
    // Everything in the main file (the copies below take that file only).
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, config_toml(&db, &sink_url, FAST_RETRIES)).unwrap();
    let (code, out) = verify(&config, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("audit chain ok: {n} records, head {head}")),
        "{out}"
    );

    // Edited: record 3's detail.
    let (_d, cfg) = tampered_copy(
        &db,
        &sink_url,
        r#"UPDATE audit_log SET detail = '{"sink":"elsewhere"}' WHERE seq = 3"#,
    );
    let (code, out) = verify(&cfg, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken at seq 3: altered"), "{out}");

    // Deleted: record 4.
    let (_d, cfg) = tampered_copy(&db, &sink_url, "DELETE FROM audit_log WHERE seq = 4");
    let (code, out) = verify(&cfg, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken at seq 4: removed"), "{out}");

    // Inserted: a forged record at 5, chained to record 4 with a hash computed as the hub
    // computes it, the records from 5 on renumbered.
    let prev = records[3]["hash"].as_str().unwrap();
    let at = 1_800_000_000_000_000i64;
    let detail = r#"{"ids":[1]}"#;
    let hash = audit_hash(
        5,
        at,
        "config/ana",
        "dead_letter.replay_bulk",
        "dead_letters",
        detail,
        "peer=127.0.0.1",
        prev,
    );
    let (_d, cfg) = tampered_copy(
        &db,
        &sink_url,
        &format!(
            "UPDATE audit_log SET seq = -seq WHERE seq >= 5;
             UPDATE audit_log SET seq = 1 - seq WHERE seq < 0;
             INSERT INTO audit_log (seq, at, actor, action, target, detail, origin, prev_hash, hash)
             VALUES (5, {at}, 'config/ana', 'dead_letter.replay_bulk', 'dead_letters', '{detail}',
                     'peer=127.0.0.1', '{prev}', '{hash}');"
        ),
    );
    let (code, out) = verify(&cfg, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken at seq 5: inserted"), "{out}");

    // The last record rewritten with a correct hash: the chain alone cannot tell; the
    // anchor of the head taken before does.
    let anchors = dir.path().join("anchors.jsonl");
    std::fs::write(
        &anchors,
        format!("{{\"seq\":{n},\"hash\":\"{head}\",\"at\":\"2026-01-01T00:00:00Z\"}}\n"),
    )
    .unwrap();
    let last = records.last().unwrap();
    let forged_detail = r#"{"into":0,"outcome":"accepted"}"#;
    let at_us = {
        let t = time::OffsetDateTime::parse(
            last["at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        (t.unix_timestamp_nanos() / 1000) as i64
    };
    let rehash = audit_hash(
        n as i64,
        at_us,
        last["actor"].as_str().unwrap(),
        last["action"].as_str().unwrap(),
        last["target"].as_str().unwrap(),
        forged_detail,
        last["origin"].as_str().unwrap(),
        last["prev_hash"].as_str().unwrap(),
    );
    let (_d, cfg) = tampered_copy(
        &db,
        &sink_url,
        &format!(
            "UPDATE audit_log SET detail = '{forged_detail}', hash = '{rehash}' WHERE seq = {n}"
        ),
    );
    let (code, out) = verify(&cfg, &[]);
    assert_eq!(code, 0, "consistent on its own: {out}");
    let (code, out) = verify(&cfg, &["--anchor", anchors.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken at seq 1: altered"), "{out}");
    // The untouched database matches its anchor.
    let (code, out) = verify(&config, &["--anchor", anchors.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 anchors"), "{out}");
}

/// `[audit] anchor_file`: serve anchors the head at start and at a graceful stop; `waybill
/// audit verify` uses it by default.
#[tokio::test]
async fn serve_anchors_the_head_to_the_configured_file() {
    let sink = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let anchors = dir.path().join("anchors.jsonl");
    let toml = format!(
        "{}\n[audit]\nanchor_file = \"{}\"\nanchor_every = \"1h\"\n",
        config_toml(&db, &sink.url("/hook"), FAST_RETRIES),
        anchors.display().to_string().replace('\\', "/")
    );
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    let (status, _) = op(&hub, "post", "/v1/sinks/ops/pause", None).await;
    assert_eq!(status, 200);
    let dir = hub.stop().await;
    let lines = waybill::audit::read_anchors(&anchors).unwrap();
    assert!(!lines.is_empty());
    let last = lines.last().unwrap();
    assert_eq!(last.seq, 2, "hub.start and the pause: {lines:?}");
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, &toml).unwrap();
    let (code, out) = verify(&config, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("head {}", last.hash)), "{out}");
    assert!(out.contains("anchors of"), "{out}");
}

/// The event log is sealed into the chain (`[audit] seal_events_every`): `waybill audit
/// verify` checks every checkpoint against the rows it seals and names the one whose
/// events were changed or removed behind the hub's back.
#[tokio::test]
async fn the_event_log_is_sealed_and_verify_finds_changed_events() {
    let sink = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let toml = format!(
        "{}\n[audit]\nseal_events_every = \"200ms\"\n",
        config_toml(&db, &sink.url("/hook"), FAST_RETRIES)
    );
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    for i in 1..=5u32 {
        let id = format!("seal-{i}");
        let r = hub
            .send(&carrier_event(&id, "S-SEAL", "shipment.in_transit", i), &id)
            .await;
        assert_eq!(r.status(), 202);
    }
    // A checkpoint covering the five comes within a few periods, while serving.
    let end = std::time::Instant::now() + WAIT;
    let sealed = loop {
        let a = hub.get("/v1/audit?action=events.checkpoint").await;
        let n: u64 = a["records"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| x["detail"]["events"].as_u64())
                    .sum()
            })
            .unwrap_or(0);
        if n >= 5 || std::time::Instant::now() > end {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sealed, 5);
    let dir = hub.stop().await;
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, &toml).unwrap();
    let (code, out) = verify(&config, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("event log ok: 5 events sealed by"), "{out}");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    // An event's type changed, an event removed: each named by its checkpoint.
    for tamper in [
        "UPDATE events SET type = 'shipment.delivered' WHERE shipment = 'S-SEAL' AND shipment_seq = 3",
        "PRAGMA foreign_keys = OFF; DELETE FROM events WHERE shipment = 'S-SEAL' AND shipment_seq = 2",
        "UPDATE events SET shipment_seq = 9 WHERE shipment = 'S-SEAL' AND shipment_seq = 5",
    ] {
        let (_keep, cfg) = tampered_copy(&db, &sink.url("/hook"), tamper);
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, format!("{text}\n[audit]\nseal_events_every = \"200ms\"\n")).unwrap();
        let (code, out) = verify(&cfg, &[]);
        assert_eq!(code, 1, "{tamper}: {out}");
        assert!(
            out.contains("audit chain ok") && out.contains("event log changed: the checkpoint at seq"),
            "{tamper}: {out}"
        );
    }
}
