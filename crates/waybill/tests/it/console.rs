//! The web console at `/ui`, driven in a real headless Chromium (chromedriver) against a
//! real hub: sign-in and the key prompt on 401, the overview's live charts, finding a
//! shipment by its tracking number, pausing and resuming a sink, replaying and discarding
//! dead letters, re-processing a rejected payload after the mapping is fixed, and the
//! subscription form. Screenshots of the main pages go to
//! `<target>/console-screenshots/` (docs/console.md shows them).

use crate::delivery::LIFECYCLE;
use crate::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use waybill_testkit::webdriver::Browser;
use waybill_testkit::FakePartner;

/// One browser at a time: the machine may have two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const T: Duration = Duration::from_secs(15);

fn shots_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        Some(p) => workspace.join(p),
        None => workspace.join("target"),
    };
    target.join("console-screenshots")
}

async fn shot(b: &Browser, name: &str) {
    // let charts and fonts settle; toasts of earlier steps would cover the page
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.execute(
        "document.getElementById('toasts').replaceChildren();",
        vec![],
    )
    .await
    .unwrap();
    b.save_screenshot(&shots_dir().join(format!("{name}.png")))
        .await
        .unwrap();
}

fn tid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

/// Opens the console and enters the key at the prompt.
async fn sign_in(b: &Browser, base: &str) {
    b.goto(&format!("{base}/ui")).await.unwrap();
    enter_key(b, API_KEY).await;
    b.wait_count(&tid("key-dialog"), |n| n == 0, T)
        .await
        .unwrap();
}

async fn enter_key(b: &Browser, key: &str) {
    b.wait_count(&tid("key-dialog"), |n| n == 1, T)
        .await
        .unwrap();
    b.type_into(&tid("api-key-input"), key).await.unwrap();
    b.click(&tid("api-key-submit")).await.unwrap();
}

async fn go(b: &Browser, hash: &str) {
    b.execute("location.hash = arguments[0];", vec![json!(hash)])
        .await
        .unwrap();
}

async fn wait_url(b: &Browser, part: &str) {
    let end = std::time::Instant::now() + T;
    loop {
        let url = b.url().await.unwrap();
        if url.contains(part) {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "url {url} never had {part}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls an API path until `pred` holds.
async fn api_until(hub: &TestHub, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = hub.get(path).await;
        if pred(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn seqs(got: &[waybill_testkit::Recorded], subject: &str) -> Vec<i64> {
    got.iter()
        .map(|r| r.json())
        .filter(|j| j["subject"] == subject)
        .map(|j| j["sequence"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_a_strict_policy_and_finds_a_shipment_by_tracking_number() {
    let _one = ONE_BROWSER.lock().await;
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("hook"), FAST_RETRIES).await;

    // The page and its assets: types, policy, caching.
    let r = hub
        .client
        .get(format!("{}/ui", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let header = |r: &reqwest::Response, n: &str| {
        r.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(header(&r, "content-type").starts_with("text/html"));
    let csp = header(&r, "content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&r, "cache-control"), "no-cache");
    let etag = header(&r, "etag");
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    let js = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert!(js.starts_with("/ui/app.js?v="), "{js}");
    let r = hub
        .client
        .get(format!("{}{js}", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("text/javascript"));
    assert!(header(&r, "cache-control").contains("immutable"));
    let r = hub
        .client
        .get(format!("{}/ui/app.css", hub.base))
        .send()
        .await
        .unwrap();
    assert!(header(&r, "content-type").starts_with("text/css"));
    assert_eq!(
        header(&r, "cache-control"),
        "no-cache",
        "unversioned: revalidate"
    );
    let r = hub
        .client
        .get(format!("{}/ui", hub.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // Three shipments; CON-1 reaches `labelled` in four events.
    for (i, status) in LIFECYCLE.iter().take(4).enumerate() {
        let id = format!("con1-{i}");
        let r = hub
            .send(&carrier_event(&id, "CON-1", status, i as u32), &id)
            .await;
        assert_eq!(r.status(), 202);
    }
    for s in ["CON-2", "CON-3"] {
        let r = hub
            .send(&carrier_event(s, s, "shipment.in_transit", 9), s)
            .await;
        assert_eq!(r.status(), 202);
    }
    sink.wait_until(WAIT, "6 deliveries", |got| got.len() >= 6)
        .await;

    let b = Browser::start().await.unwrap();
    // A wrong key is refused at the prompt, with the API's detail.
    b.goto(&format!("{}/ui", hub.base)).await.unwrap();
    enter_key(&b, "not-a-key").await;
    b.wait_for(&tid("key-error"), |t| t.contains("unknown API key"), T)
        .await
        .unwrap();
    enter_key(&b, API_KEY).await;
    b.wait_count(&tid("key-dialog"), |n| n == 0, T)
        .await
        .unwrap();

    // Overview: figures, a chart of the series, live updates over the stream.
    b.wait_for(&tid("stat-outbox"), |t| t == "0", T)
        .await
        .unwrap();
    b.wait_for(&tid("stat-dead-letters"), |t| t == "0", T)
        .await
        .unwrap();
    b.wait_count(
        "[data-testid=\"chart-throughput\"] path.line",
        |n| n == 3,
        T,
    )
    .await
    .unwrap();
    b.wait_for(&tid("circuit-ops"), |t| t == "closed", T)
        .await
        .unwrap();
    let at = b.text(&tid("overview-at")).await.unwrap();
    b.wait_for(&tid("overview-at"), |t| !t.is_empty() && t != at, T)
        .await
        .unwrap();
    b.wait_for(&tid("live-indicator"), |t| t.contains("live"), T)
        .await
        .unwrap();

    // Find the shipment by its tracking number alone.
    b.click(&tid("nav-shipments")).await.unwrap();
    b.type_into(&tid("shipment-search"), "1Z-CON-1")
        .await
        .unwrap();
    b.click(&tid("shipment-search-submit")).await.unwrap();
    b.wait_for(&tid("shipment-key"), |t| t == "CON-1", T)
        .await
        .unwrap();
    b.wait_for(&tid("shipment-state"), |t| t == "labelled", T)
        .await
        .unwrap();
    assert!(b.url().await.unwrap().ends_with("#/shipments/CON-1"));
    let types = b
        .wait_texts(&tid("timeline-type"), |t| t.len() == 4, T)
        .await
        .unwrap();
    assert_eq!(
        types,
        vec![
            "shipment.label_created",
            "warehouse.packed",
            "warehouse.picked",
            "order.released"
        ],
        "newest first"
    );
    let sources = b.texts(&tid("timeline-source")).await.unwrap();
    assert!(sources.iter().all(|s| s == "carrier"), "{sources:?}");
    let times = b.texts(&tid("timeline-time")).await.unwrap();
    assert_eq!(times[0], "2026-11-23 10:03:00Z");
    assert!(b
        .text(&tid("shipment-aliases"))
        .await
        .unwrap()
        .contains("tracking:"));
    // each event's delivery to the `ops` sink
    b.wait_texts(
        "[data-testid=\"delivery\"]",
        |t| {
            t.len() == 4
                && t.iter()
                    .all(|d| d.contains("ops") && d.contains("delivered"))
        },
        T,
    )
    .await
    .unwrap();
    b.click(&tid("delivery")).await.unwrap();
    b.wait_for(&tid("delivery-detail"), |t| t.contains("HTTP 200"), T)
        .await
        .unwrap();
    shot(&b, "shipment").await;
    b.execute(
        "document.querySelector('[data-testid=\"timeline\"]').scrollIntoView();",
        vec![],
    )
    .await
    .unwrap();
    shot(&b, "shipment-timeline").await;

    // An identifier nobody gave: an empty state, not an error page.
    b.click(&tid("nav-shipments")).await.unwrap();
    b.type_into(&tid("shipment-search"), "NOPE-404")
        .await
        .unwrap();
    b.click(&tid("shipment-search-submit")).await.unwrap();
    b.wait_for(&tid("search-empty"), |t| t.contains("NOPE-404"), T)
        .await
        .unwrap();

    // The list pages with `after` cursors.
    go(&b, "#/shipments?limit=2").await;
    let keys = b
        .wait_texts(
            "[data-testid=\"shipment-row\"] td:first-child",
            |t| t.len() == 2,
            T,
        )
        .await
        .unwrap();
    assert_eq!(keys, vec!["CON-1", "CON-2"]);
    b.click(&tid("page-next")).await.unwrap();
    let keys = b
        .wait_texts(
            "[data-testid=\"shipment-row\"] td:first-child",
            |t| t.len() == 1,
            T,
        )
        .await
        .unwrap();
    assert_eq!(keys, vec!["CON-3"]);
    assert!(b.url().await.unwrap().contains("after=CON-2"));

    // Sources: counts of accepted payloads.
    b.click(&tid("nav-sources")).await.unwrap();
    b.wait_for(&tid("source-accepted-carrier"), |t| t == "6", T)
        .await
        .unwrap();
    shot(&b, "sources").await;

    // A key that stops working brings the prompt back; the page loads after it.
    b.execute(
        "sessionStorage.setItem('waybill.apiKey', 'revoked'); location.hash = '#/sinks';",
        vec![],
    )
    .await
    .unwrap();
    b.wait_for(&tid("key-error"), |t| t.contains("api.unauthorized"), T)
        .await
        .unwrap();
    enter_key(&b, API_KEY).await;
    b.wait_for(&tid("sink-state-ops"), |t| t == "active", T)
        .await
        .unwrap();
    drop(b);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_paused_in_the_console_holds_events_until_resumed_and_subscriptions_are_edited() {
    let _one = ONE_BROWSER.lock().await;
    let sink = FakePartner::start().await;
    let hub = TestHub::start(&sink.url("hook"), FAST_RETRIES).await;
    let b = Browser::start().await.unwrap();
    sign_in(&b, &hub.base).await;

    b.click(&tid("nav-sinks")).await.unwrap();
    b.wait_for(&tid("sink-state-ops"), |t| t == "active", T)
        .await
        .unwrap();
    b.wait_for(&tid("sink-circuit-ops"), |t| t == "closed", T)
        .await
        .unwrap();
    b.click(&tid("sink-pause-ops")).await.unwrap();
    b.wait_for(&tid("sink-state-ops"), |t| t == "paused", T)
        .await
        .unwrap();

    for (i, status) in LIFECYCLE.iter().take(4).enumerate() {
        let id = format!("p-{i}");
        let r = hub
            .send(&carrier_event(&id, "PAUSE-1", status, i as u32), &id)
            .await;
        assert_eq!(r.status(), 202);
    }
    // They wait: the sink hears nothing, the console shows them pending.
    b.wait_for(&tid("sink-pending-ops"), |t| t == "4", T)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(sink.requests().is_empty(), "a paused sink gets nothing");
    b.wait_for(
        &tid("sink-lag-ops"),
        |t| t.ends_with(" s") || t.contains("min"),
        T,
    )
    .await
    .unwrap();
    shot(&b, "sinks").await;

    b.click(&tid("sink-resume-ops")).await.unwrap();
    b.wait_for(&tid("sink-state-ops"), |t| t == "active", T)
        .await
        .unwrap();
    sink.wait_until(WAIT, "4 deliveries after resume", |got| got.len() >= 4)
        .await;
    assert_eq!(
        seqs(&sink.accepted(), "PAUSE-1"),
        vec![1, 2, 3, 4],
        "in log order"
    );
    b.wait_for(&tid("sink-pending-ops"), |t| t == "0", T)
        .await
        .unwrap();

    // Test delivery answers with the receiver's status.
    b.click(&tid("sink-test-ops")).await.unwrap();
    b.wait_texts(
        &tid("toast-title"),
        |t| {
            t.iter()
                .any(|x| x.contains("Test delivery to ops succeeded"))
        },
        T,
    )
    .await
    .unwrap();

    // Subscriptions: create, edit, delete through the form.
    b.click(&tid("nav-subscriptions")).await.unwrap();
    b.wait_for(&tid("subscription-row-ops-all"), |t| t.contains("ops"), T)
        .await
        .unwrap();
    b.click(&tid("sub-new")).await.unwrap();
    b.type_into(&tid("sub-name"), "console-made").await.unwrap();
    b.type_into(&tid("sub-types"), "shipment.delivered")
        .await
        .unwrap();
    b.click(&tid("sub-save")).await.unwrap();
    b.wait_for(
        &tid("subscription-row-console-made"),
        |t| t.contains("shipment.delivered"),
        T,
    )
    .await
    .unwrap();
    let subs = hub.get("/v1/subscriptions").await;
    let made = subs["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "console-made")
        .cloned()
        .unwrap();
    assert_eq!(made["sink"], "ops");
    assert_eq!(made["types"], json!(["shipment.delivered"]));
    assert_eq!(made["personal_data"], Value::Null, "as its sink: {made}");
    b.click(&tid("sub-edit-console-made")).await.unwrap();
    b.type_into(&tid("sub-types"), "shipment.*, order.released")
        .await
        .unwrap();
    // Its consumer gets personal data masked.
    b.execute(
        "document.querySelector('[data-testid=\"sub-personal-data\"]').value = 'false';",
        vec![],
    )
    .await
    .unwrap();
    b.click(&tid("sub-save")).await.unwrap();
    b.wait_for(
        &tid("subscription-row-console-made"),
        |t| t.contains("shipment.*") && t.contains("order.released") && t.contains("masked"),
        T,
    )
    .await
    .unwrap();
    let one = hub.get("/v1/subscriptions/console-made").await;
    assert_eq!(one["personal_data"], json!(false), "{one}");
    shot(&b, "subscriptions").await;
    b.click(&tid("sub-delete-console-made")).await.unwrap();
    b.click(&tid("confirm-ok")).await.unwrap();
    b.wait_count(&tid("subscription-row-console-made"), |n| n == 0, T)
        .await
        .unwrap();
    let subs = hub.get("/v1/subscriptions").await;
    assert!(!subs["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "console-made"));
    drop(b);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_replayed_and_discarded_from_the_console() {
    let _one = ONE_BROWSER.lock().await;
    let sink = FakePartner::start().await;
    sink.set_default(500);
    let hub = TestHub::start(&sink.url("hook"), FAST_RETRIES).await;
    for (id, shipment, status, minute) in [
        ("dl-1", "DL-1", "shipment.in_transit", 1),
        ("dl-2", "DL-1", "shipment.delivered", 2),
        ("dl-3", "DL-2", "shipment.out_for_delivery", 1),
    ] {
        let r = hub
            .send(&carrier_event(id, shipment, status, minute), id)
            .await;
        assert_eq!(r.status(), 202);
    }
    api_until(&hub, "/v1/dead-letters", "3 dead letters", |v| {
        v["dead_letters"].as_array().is_some_and(|a| a.len() == 3)
    })
    .await;
    assert!(sink.accepted().is_empty());
    // The receiver is fixed.
    sink.set_default(200);

    let b = Browser::start().await.unwrap();
    sign_in(&b, &hub.base).await;
    b.click(&tid("nav-dead-letters")).await.unwrap();
    b.wait_count(&tid("dead-letter-row"), |n| n == 3, T)
        .await
        .unwrap();
    shot(&b, "dead-letters").await;

    // Discard DL-2's.
    b.click_containing(&tid("dead-letter-row"), "DL-2", T)
        .await
        .unwrap();
    b.wait_for(&tid("dl-state"), |t| t == "open", T)
        .await
        .unwrap();
    let answers = b
        .wait_texts(&tid("attempt-row"), |t| !t.is_empty(), T)
        .await
        .unwrap();
    assert!(
        answers.iter().all(|a| a.contains("HTTP 500")),
        "{answers:?}"
    );
    b.click(&tid("dl-discard")).await.unwrap();
    b.click(&tid("confirm-ok")).await.unwrap();
    b.wait_for(&tid("dl-state"), |t| t == "discarded", T)
        .await
        .unwrap();

    // Replay the in_transit one alone.
    b.click(&tid("nav-dead-letters")).await.unwrap();
    b.wait_count(&tid("dead-letter-row"), |n| n == 2, T)
        .await
        .unwrap();
    b.click_containing(&tid("dead-letter-row"), "shipment.in_transit", T)
        .await
        .unwrap();
    b.wait_for(&tid("dl-state"), |t| t == "open", T)
        .await
        .unwrap();
    b.wait_for(&tid("dl-event"), |t| t.contains("\"DL-1\""), T)
        .await
        .unwrap();
    shot(&b, "dead-letter").await;
    b.click(&tid("dl-replay")).await.unwrap();
    b.wait_for(&tid("dl-state"), |t| t == "replayed", T)
        .await
        .unwrap();
    sink.wait_until(WAIT, "the replayed event", |got| got.len() == 1)
        .await;
    assert_eq!(sink.accepted()[0].json()["type"], "shipment.in_transit");

    // Replay every open one of sink `ops`: the delivered event.
    b.click(&tid("nav-dead-letters")).await.unwrap();
    b.click("[data-testid=\"dl-filter-sink\"] option[value=\"ops\"]")
        .await
        .unwrap();
    wait_url(&b, "sink=ops").await;
    let rows = b
        .wait_texts(&tid("dead-letter-row"), |t| t.len() == 1, T)
        .await
        .unwrap();
    assert!(rows[0].contains("shipment.delivered"), "{rows:?}");
    b.click(&tid("dl-replay-all")).await.unwrap();
    b.click(&tid("confirm-ok")).await.unwrap();
    b.wait_for(
        &tid("dead-letters-empty"),
        |t| t.contains("No open dead letters"),
        T,
    )
    .await
    .unwrap();
    sink.wait_until(WAIT, "both DL-1 events", |got| got.len() == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = sink.accepted();
    assert_eq!(got.len(), 2, "the discarded one is never delivered");
    assert_eq!(seqs(&got, "DL-1"), vec![1, 2]);

    // The discarded one is listed as such.
    go(&b, "#/dead-letters?state=discarded").await;
    let rows = b
        .wait_texts(&tid("dead-letter-row"), |t| t.len() == 1, T)
        .await
        .unwrap();
    assert!(
        rows[0].contains("DL-2") && rows[0].contains("discarded"),
        "{rows:?}"
    );

    // Every dead letter, two a page: newest first, then the next page by its cursor.
    go(&b, "#/dead-letters?state=all&limit=2").await;
    let mut rows = b
        .wait_texts(&tid("dead-letter-row"), |t| t.len() == 2, T)
        .await
        .unwrap();
    assert!(
        rows[0].contains("shipment.delivered"),
        "newest first: {rows:?}"
    );
    b.click(&tid("page-next")).await.unwrap();
    wait_url(&b, "before=").await;
    rows.extend(
        b.wait_texts(&tid("dead-letter-row"), |t| t.len() == 1, T)
            .await
            .unwrap(),
    );
    let has = |a: &str, b: &str| rows.iter().any(|r| r.contains(a) && r.contains(b));
    assert!(has("shipment.delivered", "replayed"), "{rows:?}");
    assert!(has("shipment.in_transit", "replayed"), "{rows:?}");
    assert!(has("shipment.out_for_delivery", "discarded"), "{rows:?}");

    // The overview after all that: failures, dead letters and deliveries on the chart.
    b.click(&tid("nav-overview")).await.unwrap();
    b.wait_for(&tid("stat-dead-letters"), |t| t == "0", T)
        .await
        .unwrap();
    b.wait_count(
        "[data-testid=\"chart-throughput\"] path.line",
        |n| n == 3,
        T,
    )
    .await
    .unwrap();
    shot(&b, "overview").await;
    drop(b);
    hub.stop().await;
}

/// The tests' configuration plus a source `late` with the given mapping.
fn config_with_late(dir: &Path, sink_url: &str, mapping: &str) -> waybill::Config {
    let toml = format!(
        "{}\n[sources.late]\ntype = \"jq\"\nauth = {{ type = \"standard_webhooks\", secrets = [\"plain:{SECRET}\"] }}\nmapping = '{mapping}'\n",
        config_toml(&dir.join("hub.db"), sink_url, FAST_RETRIES)
    );
    waybill::Config::parse(&toml, std::iter::empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_payload_is_reprocessed_from_the_console_once_the_mapping_is_fixed() {
    let _one = ONE_BROWSER.lock().await;
    let sink = FakePartner::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The mapping reads the type from a field the partner does not send.
    let broken =
        r#"{type: .kind, subject: .shipment, time: .at, key: .id, refs: {tracking: .tracking}}"#;
    let cfg = config_with_late(dir.path(), &sink.url("hook"), broken);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    let r = send_signed(
        &hub.client,
        &format!("{}/v1/ingest/late", hub.base),
        &carrier_event("rp-1", "RP-1", "shipment.in_transit", 5),
        "rp-1",
    )
    .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let p: Value = r.json().await.unwrap();
    let inbox_id = p["inbox_id"].as_i64().unwrap();

    // Restart on the same store with the mapping fixed.
    let dir = hub.stop().await;
    let cfg = config_with_late(dir.path(), &sink.url("hook"), MAPPING);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);

    let b = Browser::start().await.unwrap();
    sign_in(&b, &hub.base).await;
    b.click(&tid("nav-inbox")).await.unwrap();
    b.click_containing(&tid("inbox-row"), "late", T)
        .await
        .unwrap();
    b.wait_for(&tid("inbox-status"), |t| t == "rejected", T)
        .await
        .unwrap();
    assert!(b
        .url()
        .await
        .unwrap()
        .ends_with(&format!("#/inbox/{inbox_id}")));
    b.wait_for(
        &tid("inbox-headers"),
        |t| t.contains("webhook-id") && t.contains("rp-1"),
        T,
    )
    .await
    .unwrap();
    b.wait_for(&tid("inbox-body"), |t| t.contains("\"RP-1\""), T)
        .await
        .unwrap();
    assert!(!b.text(&tid("inbox-reason-code")).await.unwrap().is_empty());
    shot(&b, "inbox-detail").await;

    b.click(&tid("inbox-reprocess")).await.unwrap();
    b.wait_for(&tid("reprocess-status"), |t| t == "accepted", T)
        .await
        .unwrap();
    let events = b.text(&tid("reprocess-events")).await.unwrap();
    sink.wait_until(WAIT, "the re-processed event", |got| got.len() == 1)
        .await;
    let ev = sink.accepted()[0].json();
    assert_eq!(ev["subject"], "RP-1");
    assert_eq!(ev["source"], "/sources/late");
    assert!(events.contains(ev["id"].as_str().unwrap()), "{events}");

    // Its events are on the shipment's timeline, found by tracking number.
    b.click(&tid("nav-shipments")).await.unwrap();
    b.type_into(&tid("shipment-search"), "1Z-RP-1")
        .await
        .unwrap();
    b.click(&tid("shipment-search-submit")).await.unwrap();
    b.wait_for(&tid("shipment-state"), |t| t == "in_transit", T)
        .await
        .unwrap();
    let sources = b
        .wait_texts(&tid("timeline-source"), |t| t.len() == 1, T)
        .await
        .unwrap();
    assert_eq!(sources, vec!["late"]);
    drop(b);
    hub.stop().await;
}
