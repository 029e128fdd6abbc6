//! A real Karrio server for tests (no mock): the pinned release from PyPI, run headless on
//! SQLite on 127.0.0.1, with `mockship`, a small offline carrier plugin of ours
//! (`crates/testkit/karrio/plugins`): rates from rate sheets, local PDF labels, trackers,
//! and failures on demand (see [`MockCarrier`]).
//!
//! [`server`] starts one server per test process, the first time a test asks. The install
//! is lazy and cached under `target/karrio/<version>/` (or `$WAYBILL_KARRIO_HOME`): a venv
//! (pip, 1–3 minutes once) and a freshly migrated template database (about 1–2 minutes
//! once); each server copies the template into a temporary directory of its own and is
//! ready in seconds. `karrio/server.sh` does the shell work: the install under `flock`, so
//! two test processes never install at once, and a watchdog that stops the server and
//! removes its directory once the test process is gone (statics are never dropped).
//!
//! A test never skips: without python3 (3.11+), venv or pip, [`server`] panics and says
//! what is missing. Tests share the server, so each makes its own carriers
//! ([`Karrio::create_carrier`] gives every connection a new `carrier_id`) and its own
//! references.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// The Karrio release every package is pinned to.
pub const VERSION: &str = "2026.1.32";
/// The superuser of the template database.
pub const ADMIN_EMAIL: &str = "admin@example.com";
/// Its password (test-only).
pub const ADMIN_PASSWORD: &str = "waybill-test-pass-123";

/// How long a server may take to answer `GET /` after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// A running Karrio server.
pub struct Karrio {
    url: String,
    api_key: String,
    work_dir: PathBuf,
    /// The `server.sh run` wrapper (the watchdog); kept so that it is not reaped early.
    _wrapper: Mutex<Child>,
}

/// The process's Karrio server, started (and installed, the first time on this machine)
/// on first use. Panics, with the reason, when it cannot be installed or started.
pub async fn server() -> &'static Karrio {
    static SERVER: OnceCell<Result<Karrio, String>> = OnceCell::const_new();
    let started = SERVER
        .get_or_init(|| async {
            tokio::task::spawn_blocking(start)
                .await
                .unwrap_or_else(|e| Err(format!("the start-up task failed: {e}")))
        })
        .await;
    match started {
        Ok(k) => k,
        Err(e) => panic!("Karrio test server: {e}"),
    }
}

/// Where the venv and the template live: `$WAYBILL_KARRIO_HOME`, else the workspace's
/// `target/karrio`.
pub fn home() -> PathBuf {
    match std::env::var_os("WAYBILL_KARRIO_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/karrio"),
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("karrio/server.sh")
}

fn plugins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("karrio/plugins")
}

/// A progress line the test harness does not capture (a slow first run should say why).
fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn sh(args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg(script())
        .args(args)
        .env("KARRIO_VERSION", VERSION)
        .env("KARRIO_PLUGINS", plugins())
        .env("KARRIO_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("KARRIO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdin(Stdio::null());
    c
}

/// Installs (once) and starts a server; blocking, run on a blocking thread.
fn start() -> Result<Karrio, String> {
    let home = home();
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    let home = home
        .canonicalize()
        .map_err(|e| format!("{}: {e}", home.display()))?;
    let home_arg = home.to_string_lossy().into_owned();
    let t0 = Instant::now();
    prepare(&home_arg)?;
    let prepared = t0.elapsed();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime: {e}"))?;
    let mut last = String::new();
    for _ in 0..3 {
        match launch(&home_arg, &runtime) {
            Ok(Launch::Ready(k)) => {
                progress(&format!(
                    "karrio: {VERSION} on {} (install check {:.1}s, start {:.1}s)",
                    k.url,
                    prepared.as_secs_f64(),
                    (t0.elapsed() - prepared).as_secs_f64()
                ));
                return Ok(k);
            }
            Ok(Launch::PortTaken(why)) => last = why,
            Err(e) => return Err(e),
        }
    }
    Err(format!("no free port after 3 tries: {last}"))
}

/// `server.sh prepare`: its progress lines are shown as they come and kept for an error.
fn prepare(home: &str) -> Result<(), String> {
    let mut child = sh(&["prepare", home])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run sh {}: {e}", script().display()))?;
    let mut lines = Vec::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            progress(&line);
            lines.push(line);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "install of Karrio {VERSION} under {home} failed ({status}):\n{}",
            lines.join("\n")
        ))
    }
}

enum Launch {
    Ready(Karrio),
    /// Another process took the port between our probe and the server's bind.
    PortTaken(String),
}

fn launch(home: &str, runtime: &tokio::runtime::Runtime) -> Result<Launch, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let work = tempfile::Builder::new()
        .prefix("waybill-karrio-")
        .tempdir()
        .map_err(|e| format!("no temporary directory: {e}"))?
        // Removed by server.sh when this process is gone.
        .keep();
    let work_arg = work.to_string_lossy().into_owned();
    let mut wrapper = sh(&[
        "run",
        home,
        &work_arg,
        &port.to_string(),
        &std::process::id().to_string(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::inherit())
    .spawn()
    .map_err(|e| format!("cannot run sh {}: {e}", script().display()))?;
    let url = format!("http://127.0.0.1:{port}");
    let log = work.join("server.log");
    let http = client(Duration::from_secs(5))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = wrapper.try_wait() {
            let tail = tail(&log, 40);
            if tail.contains("already in use") {
                return Ok(Launch::PortTaken(tail));
            }
            return Err(format!(
                "the server on {url} stopped ({status}) before it was ready; {}:\n{tail}",
                log.display()
            ));
        }
        let up = runtime.block_on(async {
            matches!(http.get(format!("{url}/")).send().await, Ok(r) if r.status().is_success())
        });
        if up {
            break;
        }
        if Instant::now() > deadline {
            let _ = wrapper.kill();
            return Err(format!(
                "the server on {url} did not answer within {READY_TIMEOUT:?}; {}:\n{}",
                log.display(),
                tail(&log, 40)
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let api_key = runtime.block_on(api_key(&http, &url))?;
    Ok(Launch::Ready(Karrio {
        url,
        api_key,
        work_dir: work,
        _wrapper: Mutex::new(wrapper),
    }))
}

/// A JWT for the superuser, then a long-lived API key (`Authorization: Token key_…`, the
/// scheme a production connector uses).
async fn api_key(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let token: Value = http
        .post(format!("{url}/api/token"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .map_err(|e| format!("POST /api/token: {e}"))?
        .json()
        .await
        .map_err(|e| format!("POST /api/token: {e}"))?;
    let access = token["access"]
        .as_str()
        .ok_or_else(|| format!("POST /api/token answered {token}"))?;
    let query = format!(
        r#"mutation {{ create_api_key(input: {{password: "{ADMIN_PASSWORD}", label: "waybill-tests"}}) {{ api_key {{ key }} errors {{ field messages }} }} }}"#
    );
    let answer: Value = http
        .post(format!("{url}/graphql"))
        .bearer_auth(access)
        .json(&json!({ "query": query }))
        .send()
        .await
        .map_err(|e| format!("create_api_key: {e}"))?
        .json()
        .await
        .map_err(|e| format!("create_api_key: {e}"))?;
    answer["data"]["create_api_key"]["api_key"]["key"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("create_api_key answered {answer}"))
}

fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|e| format!("no HTTP client: {e}"))
}

/// The last `n` lines of a file (empty when it cannot be read).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A `mockship` carrier connection to create: its prices (one rate sheet service per
/// entry) and how it fails.
#[derive(Debug, Clone)]
pub struct MockCarrier {
    prefix: String,
    currency: String,
    rates: Vec<(String, f64)>,
    metadata: serde_json::Map<String, Value>,
}

impl MockCarrier {
    /// A carrier whose `carrier_id` will be `<prefix>-<n>` (unique in the process).
    pub fn new(prefix: &str) -> Self {
        MockCarrier {
            prefix: prefix.to_owned(),
            currency: "EUR".into(),
            rates: Vec::new(),
            metadata: serde_json::Map::new(),
        }
    }

    /// A service (`ground`, `express`) at this price. Without any rate, the carrier
    /// quotes the plugin's default service, `standard_service`, at 0.
    pub fn rate(mut self, service: &str, amount: f64) -> Self {
        self.rates.push((service.to_owned(), amount));
        self
    }

    /// The rates' currency (default `EUR`).
    pub fn currency(mut self, currency: &str) -> Self {
        currency.clone_into(&mut self.currency);
        self
    }

    /// Quotes as usual, but every purchase is refused: 424 `MOCK_PURCHASE_REJECTED`
    /// (connection `metadata.fail_purchase`). A parcel reference starting `FAIL-BUY` does
    /// the same for one shipment; a tracking number (the parcel reference) starting `FAIL`
    /// makes its void answer 424 `MOCK_VOID_REJECTED`.
    pub fn fail_purchase(self) -> Self {
        self.metadata("fail_purchase", Value::Bool(true))
    }

    /// Any other connection metadata.
    pub fn metadata(mut self, key: &str, value: Value) -> Self {
        self.metadata.insert(key.to_owned(), value);
        self
    }
}

/// A carrier connection made by [`Karrio::create_carrier`].
#[derive(Debug, Clone, PartialEq)]
pub struct Carrier {
    /// Its `carrier_id` (what `carrier_ids` and rates name).
    pub carrier_id: String,
    /// Karrio's id of the connection (`car_…`).
    pub connection_id: String,
    /// Its rate sheet (`rsht_…`), when it has prices.
    pub rate_sheet_id: Option<String>,
}

impl Karrio {
    /// Base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An API key of the superuser (`key_…`).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The `Authorization` header value: `Token key_…`.
    pub fn authorization(&self) -> String {
        format!("Token {}", self.api_key)
    }

    /// The server's log (Django's output).
    pub fn log_path(&self) -> PathBuf {
        self.work_dir.join("server.log")
    }

    /// One request with the API key; the status and the JSON body (`null` when there is
    /// none). A fresh client each time: tests each run their own runtime.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let http = client(Duration::from_secs(60)).expect("an HTTP client");
        let mut req = http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("authorization", self.authorization());
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; log: {}", self.log_path().display()));
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// A GraphQL call; panics on any error.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let (status, answer) = self
            .post("/graphql", &json!({"query": query, "variables": variables}))
            .await;
        assert!(
            status == 200 && answer.get("errors").is_none_or(Value::is_null),
            "GraphQL answered {status}: {answer}"
        );
        answer["data"].clone()
    }

    /// Creates a `mockship` connection with a new `carrier_id` and, when it has rates, a
    /// rate sheet with one service per rate (every destination, any weight).
    pub async fn create_carrier(&self, carrier: MockCarrier) -> Carrier {
        static N: AtomicU32 = AtomicU32::new(0);
        let carrier_id = format!(
            "{}-{}",
            carrier.prefix,
            N.fetch_add(1, Ordering::Relaxed) + 1
        );
        let (status, conn) = self
            .post(
                "/v1/connections",
                &json!({
                    "carrier_name": "mockship",
                    "carrier_id": carrier_id,
                    "credentials": {"account_number": "M-1"},
                    "metadata": carrier.metadata,
                }),
            )
            .await;
        assert_eq!(
            status, 201,
            "POST /v1/connections answered {status}: {conn}"
        );
        let connection_id = conn["id"].as_str().expect("a connection id").to_owned();
        if carrier.rates.is_empty() {
            return Carrier {
                carrier_id,
                connection_id,
                rate_sheet_id: None,
            };
        }
        let services: Vec<Value> = carrier
            .rates
            .iter()
            .map(|(code, _)| {
                json!({
                    "service_name": code.to_uppercase(),
                    "service_code": code,
                    "currency": carrier.currency,
                    "transit_days": 2,
                    "zone_ids": ["zone_all"],
                })
            })
            .collect();
        let rates: Vec<Value> = carrier
            .rates
            .iter()
            .enumerate()
            .map(|(i, (_, amount))| {
                json!({"service_id": format!("temp-{i}"), "zone_id": "zone_all", "rate": amount})
            })
            .collect();
        let data = self
            .graphql(
                "mutation($d: CreateRateSheetMutationInput!) { create_rate_sheet(input: $d) { rate_sheet { id } errors { field messages } } }",
                json!({"d": {
                    "name": carrier_id,
                    "carrier_name": "mockship",
                    "carriers": [connection_id],
                    "zones": [{"id": "zone_all", "label": "All"}],
                    "services": services,
                    "service_rates": rates,
                }}),
            )
            .await;
        let sheet = &data["create_rate_sheet"];
        assert!(sheet["errors"].is_null(), "create_rate_sheet: {sheet}");
        Carrier {
            carrier_id,
            connection_id,
            rate_sheet_id: sheet["rate_sheet"]["id"].as_str().map(str::to_owned),
        }
    }

    /// Every shipment whose `reference` is exactly `reference`, any status (Karrio's
    /// `reference` filter matches substrings; this keeps exact matches).
    pub async fn shipments(&self, reference: &str) -> Vec<Value> {
        let mut found = Vec::new();
        let mut offset = 0;
        loop {
            let path = format!(
                "/v1/shipments?reference={}&limit=100&offset={offset}",
                encode(reference)
            );
            let (status, page) = self.get(&path).await;
            assert_eq!(status, 200, "GET {path} answered {status}: {page}");
            let results = page["results"].as_array().cloned().unwrap_or_default();
            offset += results.len();
            found.extend(
                results
                    .into_iter()
                    .filter(|s| s["reference"].as_str() == Some(reference)),
            );
            if page["next"].is_null() || offset == 0 {
                return found;
            }
        }
    }

    /// How many shipments under `reference` have `status`: `draft` (quoted), `created`
    /// (label bought), `cancelled` (voided), or a tracker's later `shipped`, `in_transit`,
    /// `out_for_delivery`, `delivered`, `needs_attention`, `delivery_failed`.
    pub async fn count_shipments(&self, reference: &str, status: &str) -> usize {
        self.shipments(reference)
            .await
            .iter()
            .filter(|s| s["status"].as_str() == Some(status))
            .count()
    }

    /// The shipment `shp_…` (panics when there is none).
    pub async fn shipment(&self, id: &str) -> Value {
        let (status, shipment) = self.get(&format!("/v1/shipments/{id}")).await;
        assert_eq!(
            status, 200,
            "GET /v1/shipments/{id} answered {status}: {shipment}"
        );
        shipment
    }

    /// Registers a `mockship` tracker for `tracking_number` (numbers starting `FAIL` are
    /// refused with 404 `MOCK_TRACKING_NOT_FOUND`); the status and Karrio's answer.
    pub async fn create_tracker(&self, tracking_number: &str) -> (u16, Value) {
        self.post(
            "/v1/trackers",
            &json!({"tracking_number": tracking_number, "carrier_name": "mockship"}),
        )
        .await
    }

    /// Sets a tracker's events and status (Karrio's test endpoint `inject-events`); fires
    /// `tracker_updated` and moves the linked shipment. `events`: a list of
    /// `{date, time, code, description, location, status}`.
    pub async fn inject_tracker_events(
        &self,
        tracker_id: &str,
        status: &str,
        delivered: bool,
        events: Value,
    ) {
        let path = format!("/v1/trackers/{tracker_id}/inject-events");
        let (code, answer) = self
            .post(
                &path,
                &json!({"status": status, "delivered": delivered, "events": events}),
            )
            .await;
        assert!(
            code == 200 && answer["success"] == Value::Bool(true),
            "POST {path} answered {code}: {answer}"
        );
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPMENT: &str = r#"{
        "shipper": {"person_name": "Dock 1", "address_line1": "Hafenstr. 1", "city": "Hamburg",
                    "postal_code": "20457", "country_code": "DE"},
        "recipient": {"person_name": "Jane Doe", "address_line1": "Rue de Rivoli 1", "city": "Paris",
                      "postal_code": "75001", "country_code": "FR"},
        "parcels": [{"weight": 1.5, "weight_unit": "KG", "reference_number": "PARCEL"}]
    }"#;

    fn shipment(reference: &str, parcel: &str, carriers: &[&Carrier]) -> Value {
        let mut s: Value = serde_json::from_str(SHIPMENT).unwrap();
        s["reference"] = json!(reference);
        s["parcels"][0]["reference_number"] = json!(parcel);
        s["carrier_ids"] = json!(carriers.iter().map(|c| &c.carrier_id).collect::<Vec<_>>());
        s
    }

    fn rate<'a>(draft: &'a Value, carrier: &Carrier, service: &str) -> &'a Value {
        draft["rates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["carrier_id"] == json!(carrier.carrier_id) && r["service"] == service)
            .unwrap_or_else(|| panic!("no {service} rate of {}: {draft}", carrier.carrier_id))
    }

    #[tokio::test]
    async fn mockship_prices_from_rate_sheets_and_refuses_on_demand() {
        let k = server().await;
        let cheap = k
            .create_carrier(MockCarrier::new("tk-cheap").rate("ground", 5.5))
            .await;
        let down = k
            .create_carrier(
                MockCarrier::new("tk-down")
                    .rate("ground", 4.0)
                    .fail_purchase(),
            )
            .await;
        let (status, draft) = k
            .post(
                "/v1/shipments",
                &shipment("TK-1", "TK-1-P", &[&cheap, &down]),
            )
            .await;
        assert_eq!(status, 201, "{draft}");
        assert_eq!(rate(&draft, &cheap, "ground")["total_charge"], json!(5.5));
        let id = draft["id"].as_str().unwrap();

        let refused = rate(&draft, &down, "ground")["id"].clone();
        let (status, answer) = k
            .post(
                &format!("/v1/shipments/{id}/purchase"),
                &json!({"selected_rate_id": refused}),
            )
            .await;
        assert_eq!(status, 424, "{answer}");
        assert_eq!(answer["messages"][0]["code"], "MOCK_PURCHASE_REJECTED");
        assert_eq!(k.count_shipments("TK-1", "draft").await, 1);

        let chosen = rate(&draft, &cheap, "ground")["id"].clone();
        let (status, bought) = k
            .post(
                &format!("/v1/shipments/{id}/purchase"),
                &json!({"selected_rate_id": chosen}),
            )
            .await;
        assert_eq!(status, 200, "{bought}");
        assert_eq!(bought["tracking_number"], "TK-1-P");
        assert_eq!(k.count_shipments("TK-1", "created").await, 1);

        // The tracker made at purchase moves the shipment when events are injected.
        let tracker = bought["tracker_id"].as_str().unwrap();
        k.inject_tracker_events(
            tracker,
            "in_transit",
            false,
            json!([{"date": "2026-01-02", "time": "10:00", "code": "IT",
                    "description": "In transit", "status": "in_transit"}]),
        )
        .await;
        assert_eq!(k.shipment(id).await["status"], "in_transit");
    }

    #[tokio::test]
    async fn mockship_refuses_voids_and_trackers_for_fail_numbers() {
        let k = server().await;
        let carrier = k
            .create_carrier(MockCarrier::new("tk-void").rate("express", 12.0))
            .await;
        let (_, draft) = k
            .post(
                "/v1/shipments",
                &shipment("TK-2", "FAIL-VOID-TK2", &[&carrier]),
            )
            .await;
        let id = draft["id"].as_str().unwrap();
        let chosen = rate(&draft, &carrier, "express")["id"].clone();
        let (status, _) = k
            .post(
                &format!("/v1/shipments/{id}/purchase"),
                &json!({"selected_rate_id": chosen}),
            )
            .await;
        assert_eq!(status, 200);
        let (status, answer) = k
            .post(&format!("/v1/shipments/{id}/cancel"), &json!({}))
            .await;
        assert_eq!(status, 424, "{answer}");
        assert_eq!(answer["messages"][0]["code"], "MOCK_VOID_REJECTED");

        let (status, answer) = k.create_tracker("FAIL-TRK-1").await;
        assert_eq!(status, 404, "{answer}");
        assert_eq!(answer["messages"][0]["code"], "MOCK_TRACKING_NOT_FOUND");
        let (status, tracker) = k.create_tracker("TK-TRK-1").await;
        assert_eq!(status, 202, "{tracker}");
        assert_eq!(tracker["status"], "pending");
    }
}
