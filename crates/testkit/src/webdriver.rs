//! A minimal W3C WebDriver client for browser tests: it starts `chromedriver` on a free
//! port, opens a headless Chromium session with a fresh profile, and drives it over HTTP
//! (navigate, find by CSS, click, type, read text, run a script, wait, screenshot).
//!
//! The browser and driver are the Debian packages `chromium` and `chromium-driver`
//! (`/usr/bin/chromium`, `/usr/bin/chromedriver`; `WAYBILL_CHROMIUM` and
//! `WAYBILL_CHROMEDRIVER` name others). [`ensure_installed`] installs them with `apt-get`
//! when they are missing, and fails with the reason when it cannot: a browser test never
//! skips. Dropping the [`Browser`] ends the session and kills the driver.

use base64::Engine as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The W3C name of an element reference in the wire protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// What went wrong talking to the browser.
#[derive(Debug, Clone)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The result of a WebDriver call.
pub type Result<T> = std::result::Result<T, Error>;

fn err(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

/// The Chromium binary.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("WAYBILL_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The chromedriver binary.
pub fn chromedriver_path() -> PathBuf {
    std::env::var_os("WAYBILL_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

/// Makes sure Chromium and chromedriver are there, installing the Debian packages
/// `chromium` and `chromium-driver` with `apt-get` when they are not (as root, or through
/// `sudo -n`). Runs once per process; an error says what was tried.
pub fn ensure_installed() -> Result<()> {
    static DONE: std::sync::Mutex<Option<Result<()>>> = std::sync::Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = done.as_ref() {
        return r.clone();
    }
    let r = install();
    *done = Some(r.clone());
    r
}

fn install() -> Result<()> {
    let (browser, driver) = (chromium_path(), chromedriver_path());
    if browser.exists() && driver.exists() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let run = |args: &[&str]| -> Result<()> {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        let out = cmd
            .output()
            .map_err(|e| err(format!("cannot run apt-get {args:?}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(err(format!(
                "apt-get {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .rev()
                    .take(8)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )))
        }
    };
    let packages = [
        "install",
        "-y",
        "--no-install-recommends",
        "chromium",
        "chromium-driver",
    ];
    if run(&packages).is_err() {
        run(&["update"])?;
        run(&packages)?;
    }
    if browser.exists() && driver.exists() {
        Ok(())
    } else {
        Err(err(format!(
            "installed chromium and chromium-driver, but {} or {} is still missing",
            browser.display(),
            driver.display()
        )))
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| err(format!("no free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| err(format!("no free port: {e}")))
}

/// An element found on the page (a WebDriver element reference).
#[derive(Debug, Clone)]
pub struct Element(pub String);

/// A headless Chromium session driven through chromedriver.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    driver: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Installs the browser if needed, starts chromedriver on a free port and opens a
    /// headless session (1400×900, a fresh profile, no background networking).
    pub async fn start() -> Result<Browser> {
        tokio::task::spawn_blocking(ensure_installed)
            .await
            .map_err(|e| err(format!("installer panicked: {e}")))??;
        let profile = tempfile::tempdir().map_err(|e| err(format!("temp dir: {e}")))?;
        let port = free_port()?;
        let log = std::fs::File::create(profile.path().join("chromedriver.log"))
            .map_err(|e| err(format!("driver log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| err(format!("driver log: {e}")))?;
        let driver = Command::new(chromedriver_path())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| {
                err(format!(
                    "cannot start {}: {e}",
                    chromedriver_path().display()
                ))
            })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .map_err(|e| err(format!("http client: {e}")))?;
        let mut b = Browser {
            http,
            session: String::new(),
            driver,
            profile,
        };
        let base = format!("http://127.0.0.1:{port}");
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match b.http.get(format!("{base}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .map(|v| v["value"]["ready"] == true)
                    .unwrap_or(false),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if Instant::now() > end {
                return Err(err(format!(
                    "chromedriver did not become ready on port {port}: {}",
                    b.driver_log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let data_dir = b.profile.path().join("profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_path().display().to_string(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", data_dir.display()),
                    "--window-size=1400,900",
                ],
            },
        }}});
        let r = b
            .http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .map_err(|e| err(format!("new session: {e}")))?;
        let v: Value = r
            .json()
            .await
            .map_err(|e| err(format!("new session: {e}")))?;
        let Some(id) = v["value"]["sessionId"].as_str() else {
            return Err(err(format!(
                "new session refused: {v}; driver log: {}",
                b.driver_log()
            )));
        };
        b.session = format!("{base}/session/{id}");
        Ok(b)
    }

    fn driver_log(&self) -> String {
        let text = std::fs::read_to_string(self.profile.path().join("chromedriver.log"))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(20).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// One WebDriver command; the `value` of its answer, or the driver's error.
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.session);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .map_err(|e| err(format!("{method} {path}: {e}")))?;
        let status = r.status();
        let v: Value = r
            .json()
            .await
            .map_err(|e| err(format!("{method} {path}: answer is not JSON: {e}")))?;
        if status.is_success() {
            Ok(v["value"].clone())
        } else {
            Err(err(format!(
                "{method} {path}: {} — {}",
                v["value"]["error"].as_str().unwrap_or("error"),
                v["value"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            )))
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.cmd(reqwest::Method::GET, path, None).await
    }

    /// Opens a URL and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.post("/url", json!({ "url": url })).await.map(|_| ())
    }

    /// The current URL.
    pub async fn url(&self) -> Result<String> {
        Ok(self.get("/url").await?.as_str().unwrap_or("").to_owned())
    }

    /// The first element matching a CSS selector, or an error when there is none.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await?;
        element_of(&v).ok_or_else(|| err(format!("no element id for {css}: {v}")))
    }

    /// Every element matching a CSS selector (maybe none).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let v = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(element_of).collect())
            .unwrap_or_default())
    }

    /// Clicks an element.
    pub async fn click_element(&self, e: &Element) -> Result<()> {
        self.post(&format!("/element/{}/click", e.0), json!({}))
            .await
            .map(|_| ())
    }

    /// Types text into an element (`"\u{E007}"` is Enter).
    pub async fn send_keys_to(&self, e: &Element, text: &str) -> Result<()> {
        self.post(&format!("/element/{}/value", e.0), json!({ "text": text }))
            .await
            .map(|_| ())
    }

    /// Clears an input.
    pub async fn clear_element(&self, e: &Element) -> Result<()> {
        self.post(&format!("/element/{}/clear", e.0), json!({}))
            .await
            .map(|_| ())
    }

    /// An element's visible text.
    pub async fn text_of(&self, e: &Element) -> Result<String> {
        Ok(self
            .get(&format!("/element/{}/text", e.0))
            .await?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String> {
        let e = self.find(css).await?;
        self.text_of(&e).await
    }

    /// The text content of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> Result<Vec<String>> {
        let v = self
            .execute(
                "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent);",
                vec![json!(css)],
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|t| t.as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Polls until the texts of the elements matching `css` satisfy `pred`; those texts.
    pub async fn wait_texts(
        &self,
        css: &str,
        pred: impl Fn(&[String]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let end = Instant::now() + timeout;
        loop {
            let t = self.texts(css).await?;
            if pred(&t) {
                return Ok(t);
            }
            if Instant::now() > end {
                return Err(err(format!(
                    "waited {timeout:?} for the texts of {css}; they are {t:?} (page {})",
                    self.where_am_i().await
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a script in the page (`arguments[0]`… are `args`); its return value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// Clicks the first element matching `css`, retrying for up to 10 s while it is
    /// missing, replaced (stale) or covered.
    pub async fn click(&self, css: &str) -> Result<()> {
        self.retry(css, |e| async move { self.click_element(&e).await })
            .await
    }

    /// Replaces the text of the input matching `css` (retrying like [`Browser::click`]).
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.retry(css, |e| async move {
            self.clear_element(&e).await?;
            self.send_keys_to(&e, text).await
        })
        .await
    }

    async fn retry<F, Fut>(&self, css: &str, f: F) -> Result<()>
    where
        F: Fn(Element) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let last = match self.find(css).await {
                Ok(e) => match f(e).await {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if Instant::now() > end {
                return Err(err(format!(
                    "{css}: {last} (page {})",
                    self.where_am_i().await
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element matching `css` whose text contains `text`, waiting up to
    /// `timeout` for one to appear.
    pub async fn click_containing(&self, css: &str, text: &str, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        loop {
            let found = self
                .execute(
                    "const e = [...document.querySelectorAll(arguments[0])]\
                     .find((x) => x.textContent.includes(arguments[1]));\
                     if (!e) return false; e.scrollIntoView({block: 'center'}); e.click(); return true;",
                    vec![json!(css), json!(text)],
                )
                .await?;
            if found == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(err(format!(
                    "no {css} containing {text:?} within {timeout:?} (page {})",
                    self.where_am_i().await
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until the first element matching `css` exists and its text satisfies
    /// `pred`; that text, or an error with the last text seen after `timeout`.
    pub async fn wait_for(
        &self,
        css: &str,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String> {
        let end = Instant::now() + timeout;
        let mut last = String::from("(no such element)");
        loop {
            if let Ok(e) = self.find(css).await {
                if let Ok(t) = self.text_of(&e).await {
                    if pred(&t) {
                        return Ok(t);
                    }
                    last = t;
                }
            }
            if Instant::now() > end {
                return Err(err(format!(
                    "waited {timeout:?} for {css}; last text {last:?} (page {})",
                    self.where_am_i().await
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until `count(elements matching css)` satisfies `pred`; the count.
    pub async fn wait_count(
        &self,
        css: &str,
        pred: impl Fn(usize) -> bool,
        timeout: Duration,
    ) -> Result<usize> {
        let end = Instant::now() + timeout;
        loop {
            let n = self.find_all(css).await?.len();
            if pred(n) {
                return Ok(n);
            }
            if Instant::now() > end {
                return Err(err(format!(
                    "waited {timeout:?} for the count of {css}; it is {n} (page {})",
                    self.where_am_i().await
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The URL and the start of the page's text, for error messages.
    async fn where_am_i(&self) -> String {
        let url = self.url().await.unwrap_or_default();
        let text = self
            .execute(
                "return document.body ? document.body.innerText : ''",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(|s| s.chars().take(600).collect::<String>()))
            .unwrap_or_default();
        format!("{url}: {text:?}")
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.get("/screenshot").await?;
        let b64 = v.as_str().ok_or_else(|| err("screenshot: no data"))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| err(format!("screenshot: {e}")))
    }

    /// Saves a PNG of the viewport to `path` (creating its directory).
    pub async fn save_screenshot(&self, path: &Path) -> Result<()> {
        let png = self.screenshot().await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        }
        std::fs::write(path, png).map_err(|e| err(format!("{}: {e}", path.display())))
    }
}

fn element_of(v: &Value) -> Option<Element> {
    v.get(ELEMENT)
        .and_then(Value::as_str)
        .map(|s| Element(s.to_owned()))
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session (chromedriver then closes Chromium) with a plain blocking
        // request, since drop cannot await; then stop the driver.
        if let Some(rest) = self.session.strip_prefix("http://") {
            if let Some((host, path)) = rest.split_once('/') {
                use std::io::{Read, Write};
                if let Ok(addr) = host.parse::<std::net::SocketAddr>() {
                    if let Ok(mut s) =
                        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                        let _ = write!(
                            s,
                            "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let mut sink = Vec::new();
                        let _ = s.read_to_end(&mut sink);
                    }
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
