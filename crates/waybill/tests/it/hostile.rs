//! Availability under hostile or broken conditions, with the real binary: thousands of
//! idle and half-sent connections under a low open-file limit, a full disk (and a kill -9
//! on it), and anonymous posts to an unknown source.

use crate::crash::{free_port, Hubs};
use crate::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// The tests' configuration with short listener limits.
fn hostile_config(dir: &Path, store: &str, server: &str) -> PathBuf {
    let text = config_toml_with_store(store, "http://127.0.0.1:9/none", FAST_RETRIES).replacen(
        "[server]\n",
        &format!("[server]\n{server}\n"),
        1,
    );
    let path = dir.join("waybill.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn sqlite_store(path: &Path) -> String {
    format!("path = \"{}\"", path.display())
}

/// `waybill serve`, optionally under an open-file limit (soft = hard = `nofile`).
fn spawn(config: &Path, port: u16, nofile: Option<u32>) -> Child {
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}"))
                .arg(env!("CARGO_BIN_EXE_waybill"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_waybill")),
    };
    cmd.args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("WAYBILL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits until `path` answers `status`.
pub(crate) async fn wait_for(client: &reqwest::Client, url: &str, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status() == status {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} never answered {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn metrics(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A sample's value in Prometheus text (`name{labels}` exactly as written).
pub(crate) fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Sends SIGTERM to a child process.
fn terminate(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
}

/// Waits for a child to exit; its status, or None after `within`.
fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Each acknowledged (shipment, event id) is in its shipment's timeline exactly once.
async fn assert_each_stored_once(client: &reqwest::Client, base: &str, acked: &[(String, String)]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let shipments: std::collections::BTreeSet<&String> = acked.iter().map(|(s, _)| s).collect();
    for s in shipments {
        let v: serde_json::Value = client
            .get(format!("{base}/v1/shipments/{s}"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for t in v["timeline"].as_array().unwrap() {
            *seen
                .entry(t["event"]["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    for (s, e) in acked {
        assert_eq!(
            seen.get(e),
            Some(&1),
            "event {e} of {s}: stored {:?} times",
            seen.get(e)
        );
    }
}

/// (a) Thousands of idle sockets, half-sent heads and half-sent bodies under a limit of 512
/// open files: the hub caps its connections, closes the idle and half-sent ones at their
/// timeouts, answers a normal client meanwhile, and a SIGTERM with a request still half
/// sent ends it within the grace period; nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_cannot_hold_the_hub() {
    // This process holds thousands of sockets too.
    waybill::server::raise_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let cfg = hostile_config(
        dir.path(),
        &sqlite_store(&dir.path().join("hub.db")),
        "header_timeout = \"2s\"\nbody_timeout = \"5s\"\nidle_timeout = \"3s\"\nshutdown_grace = \"2s\"",
    );
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut hub = Hubs(vec![spawn(&cfg, port, Some(512))]);
    wait_for(&client, &format!("{base}/readyz"), 200, WAIT).await;
    let url = format!("{base}/v1/ingest/carrier");
    let mut acked: Vec<(String, String)> = Vec::new();
    for i in 0..5 {
        let (id, shipment) = (format!("before-{i}"), format!("H-{}", i % 3));
        let eid = send_acked(&client, &url, &id, &shipment, i).await;
        acked.push((
            shipment,
            eid.unwrap_or_else(|| panic!("{id} not acknowledged")),
        ));
    }

    // 3,000 connections: idle ones, half-sent heads, half-sent bodies.
    let addr = format!("127.0.0.1:{port}");
    let mut held = Vec::new();
    let mut refused_at_once = 0;
    for i in 0..3000 {
        let Ok(mut s) = TcpStream::connect(&addr) else {
            continue;
        };
        let _ = match i % 3 {
            0 => Ok(()),
            1 => s.write_all(b"POST /v1/ingest/carrier HTTP/1.1\r\nhost: x\r\ncontent-le"),
            _ => s.write_all(
                b"POST /v1/ingest/carrier HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{\"id\":",
            ),
        };
        held.push(s);
    }
    // Over the cap, connections are answered 503 and closed at once.
    for s in held.iter_mut().rev().take(200) {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 64];
        if let Ok(n) = s.read(&mut buf) {
            if buf[..n].starts_with(b"HTTP/1.1 503") {
                refused_at_once += 1;
            }
        }
    }
    assert!(
        refused_at_once > 0,
        "no connection over the cap was refused at once"
    );

    // A normal client gets answers once the idle and half-sent ones timed out (2–3 s).
    let started = Instant::now();
    wait_for(
        &client,
        &format!("{base}/healthz"),
        200,
        Duration::from_secs(15),
    )
    .await;
    for i in 0..5 {
        let (id, shipment) = (format!("during-{i}"), format!("H-{}", i % 3));
        let eid = send_acked(&client, &url, &id, &shipment, 10 + i).await;
        acked.push((
            shipment,
            eid.unwrap_or_else(|| panic!("{id} not acknowledged")),
        ));
    }
    eprintln!("answered {:?} after the flood", started.elapsed());
    // Every idle and half-sent connection is closed at its timeout (the kernel's backlog
    // held more of them, accepted as places freed up).
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = metrics(&client, &base).await;
        if sample(&text, "waybill_http_connections") < 5.0 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let http: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("waybill_http"))
        .collect();
    eprintln!("{}", http.join("\n"));
    assert!(sample(&text, "waybill_http_connections") < 5.0, "{http:?}");
    assert!(
        sample(&text, "waybill_http_connections_refused_total") > 0.0,
        "{http:?}"
    );
    assert!(
        sample(&text, "waybill_http_timeouts_total{kind=\"header\"}") > 0.0,
        "{http:?}"
    );
    assert!(
        sample(&text, "waybill_http_timeouts_total{kind=\"body\"}") > 0.0,
        "{http:?}"
    );
    drop(held);

    // A request whose body trickles in keeps its connection until the body timeout (5 s);
    // the SIGTERM does not wait for it past the grace period (2 s).
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(
        b"POST /v1/ingest/carrier HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n",
    )
    .unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..600 {
            if slow.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    terminate(&hub.0[0]);
    let status = wait_exit(&mut hub.0[0], Duration::from_secs(8))
        .expect("the hub did not stop within the grace period and its shutdown");
    let took = signalled.elapsed();
    eprintln!("stopped {took:?} after SIGTERM, {status}");
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_millis(1500),
        "the grace period was not given: {took:?}"
    );
    assert!(
        took < Duration::from_millis(4500),
        "ended by the body timeout, not the grace: {took:?}"
    );
    trickle.join().unwrap();

    // Nothing acknowledged is lost.
    hub.0[0] = spawn(&cfg, port, None);
    wait_for(&client, &format!("{base}/readyz"), 200, WAIT).await;
    assert_each_stored_once(&client, &base, &acked).await;
}

/// A tmpfs of 8 MiB mounted for a test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run mount (this test needs root to mount a tmpfs): {e}")
            });
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {} (this test needs root, or CAP_SYS_ADMIN): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `dir/filler` until no byte more fits.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    for size in [4096usize, 512, 1] {
        while f.write_all(&chunk[..size]).is_ok() {}
    }
    let _ = f.sync_all();
    path
}

/// A signed carrier event padded with incompressible text to about 3.5 KB; its status.
async fn send_padded(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    shipment: &str,
    minute: u32,
) -> (u16, Option<String>) {
    let mut ev = carrier_event(id, shipment, "shipment.in_transit", minute % 60);
    let mut x = 0x2545_F491_4F6C_DD1Du64 ^ id.len() as u64 ^ u64::from(minute) << 20;
    let pad: String = (0..200)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{x:016x}")
        })
        .collect();
    ev["pad"] = serde_json::Value::String(pad);
    let Ok(r) = try_send_signed(client, url, &ev, id).await else {
        return (0, None);
    };
    let status = r.status().as_u16();
    let j: serde_json::Value = r.json().await.unwrap_or_default();
    (status, j["event_ids"][0].as_str().map(str::to_owned))
}

/// (b) A full disk: the hub keeps serving reads, refuses ingest with 507 and says it is
/// not ready for writes; after a kill -9 it starts again on the still-full disk and
/// serves reads; once space is freed, writes succeed again without a restart; every
/// acknowledged event is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(dir.path().join("data"));
    let cfg = hostile_config(dir.path(), &sqlite_store(&disk.0.join("hub.db")), "");
    // No deliveries: their small writes (attempts recorded) would commit in between and
    // make the outcome of each write depend on timing.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replace(
        "[[subscriptions]]\nname = \"ops-all\"\nsink = \"ops\"\n",
        "",
    );
    assert!(!text.contains("[[subscriptions]]"));
    std::fs::write(&cfg, text).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/ingest/carrier");
    let mut hub = Hubs(vec![spawn(&cfg, port, None)]);
    wait_for(&client, &format!("{base}/readyz"), 200, WAIT).await;

    let mut acked: Vec<(String, String)> = Vec::new();
    let mut n = 0u32;
    let mut send = |client: reqwest::Client, url: String| {
        n += 1;
        let (id, shipment) = (format!("d-{n}"), format!("D-{}", n % 4));
        async move {
            let (status, eid) = send_padded(&client, &url, &id, &shipment, n).await;
            (status, shipment, eid)
        }
    };
    for _ in 0..20 {
        let (status, s, eid) = send(client.clone(), url.clone()).await;
        assert_eq!(status, 202);
        acked.push((s, eid.unwrap()));
    }
    let filler = fill(&disk.0);
    // Writes go on while SQLite finds room in its files, then stop with 507.
    let mut refused = 0;
    for _ in 0..3000 {
        let (status, s, eid) = send(client.clone(), url.clone()).await;
        match status {
            202 => acked.push((s, eid.unwrap())),
            507 => {
                refused += 1;
                if refused == 5 {
                    break;
                }
            }
            other => panic!("ingest on a full disk answered {other}"),
        }
    }
    assert_eq!(refused, 5, "ingest never answered 507 on a full disk");
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("not ready for writes") && body.contains("full"),
        "{body}"
    );
    let r = client
        .get(format!("{base}/v1/shipments/D-1"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "reads are served on a full disk");
    assert_eq!(
        sample(&metrics(&client, &base).await, "waybill_store_full"),
        1.0
    );

    // kill -9 on the full disk, and start again on it.
    hub.0[0].kill().unwrap();
    hub.0[0].wait().unwrap();
    hub.0[0] = spawn(&cfg, port, None);
    wait_for(&client, &format!("{base}/healthz"), 200, WAIT).await;
    assert_each_stored_once(&client, &base, &acked).await;
    let (status, _, _) = send(client.clone(), url.clone()).await;
    assert_eq!(status, 507, "still full after the restart");
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);

    // Space returns: writes succeed again, and /readyz says so, without a restart.
    std::fs::remove_file(&filler).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    wait_for(
        &client,
        &format!("{base}/readyz"),
        200,
        Duration::from_secs(10),
    )
    .await;
    for _ in 0..10 {
        let (status, s, eid) = send(client.clone(), url.clone()).await;
        assert_eq!(status, 202, "a write after space returned");
        acked.push((s, eid.unwrap()));
    }
    assert_eq!(
        sample(&metrics(&client, &base).await, "waybill_store_full"),
        0.0
    );
    assert_each_stored_once(&client, &base, &acked).await;
    eprintln!("{} acknowledged, {refused} refused with 507", acked.len());
    drop(hub);
}

/// (c) 200 anonymous posts of 100 KB to an unknown source: only bounded samples are
/// stored (at most 100, of at most 4 KiB each), and the metrics count all 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_posts_to_an_unknown_source_are_bounded_samples() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let cfg = hostile_config(dir.path(), &sqlite_store(&db), "");
    // Past the rate limit of unknown sources (which answers 429 and stores nothing): here
    // every post reaches the store.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[limits]\nunknown_sources = { per_second = 100000.0, burst = 1000 }\n");
    std::fs::write(&cfg, text).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut hub = Hubs(vec![spawn(&cfg, port, None)]);
    wait_for(&client, &format!("{base}/readyz"), 200, WAIT).await;
    let body: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for i in 0..200 {
        let r = client
            .post(format!("{base}/v1/ingest/nobody-{i}"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let v: serde_json::Value = client
        .get(format!("{base}/v1/inbox?status=rejected&limit=500"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = v["inbox"].as_array().unwrap();
    let stored: usize = rows
        .iter()
        .map(|r| r["body"].as_str().unwrap_or_default().len())
        .sum();
    eprintln!(
        "{} samples, {stored} bytes of bodies kept of {} sent",
        rows.len(),
        200 * body.len()
    );
    assert!(rows.len() <= 100, "{} samples kept", rows.len());
    assert!(rows
        .iter()
        .all(|r| r["reason_code"] == "ingest.unknown_source"));
    assert!(stored <= 100 * 4096 * 3, "{stored}");
    let text = metrics(&client, &base).await;
    assert_eq!(
        sample(
            &text,
            "waybill_ingest_unauthenticated_total{reason=\"ingest.unknown_source\"}"
        ),
        200.0,
        "{text}"
    );
    // The database holds the samples, not the 20 MB sent (measured after a checkpoint: the
    // WAL's size is the store's own, up to `checkpoint_pages`).
    terminate(&hub.0[0]);
    wait_exit(&mut hub.0[0], Duration::from_secs(10)).unwrap();
    let store = waybill_store::Store::open_sqlite(waybill_store::SqliteOptions::new(&db))
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let size = std::fs::metadata(&db).unwrap().len()
        + std::fs::metadata(dir.path().join("hub.db-wal")).map_or(0, |m| m.len());
    eprintln!("database: {size} bytes");
    assert!(size < 2 * 1024 * 1024, "{size} bytes stored");
}
