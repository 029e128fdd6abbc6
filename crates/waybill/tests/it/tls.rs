//! TLS on the listener, with the real binary and certificates made at test time by the
//! `openssl` command-line tool: health, ingest and the API over HTTPS; plain HTTP refused;
//! a rotated certificate served without a restart; a broken pair ignored (the old one
//! kept); a silent or stalled handshake closed by the header timeout; the connection cap.

use crate::crash::{free_port, Hubs};
use crate::hostile::{metrics, sample, wait_for};
use crate::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs `openssl` in `dir`; fails the test loudly if the tool is missing or fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the TLS tests make their certificates with the `openssl` command-line tool, \
                 which cannot be run ({e}): install it (Debian, Ubuntu: apt-get install openssl)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it.
struct Issued {
    /// The CA's certificate, PEM: what a client trusts.
    ca: Vec<u8>,
    /// The server's certificate, PEM.
    cert: Vec<u8>,
    /// The server's private key, PEM.
    key: Vec<u8>,
}

/// Makes a CA named `name` and a server pair under it, in `dir`; `newkey` is an openssl
/// `-newkey` value (`ec` with a P-256 curve, or `rsa:2048`).
fn issue(dir: &Path, name: &str, newkey: &str) -> Issued {
    let curve = if newkey == "ec" {
        vec!["-pkeyopt", "ec_paramgen_curve:prime256v1"]
    } else {
        vec![]
    };
    let (ca_key, ca_pem) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
    let (key, csr, pem, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    let subject = format!("/CN=Waybill test CA {name}");
    let mut args = vec!["req", "-x509", "-newkey", newkey];
    args.extend(&curve);
    args.extend([
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca_pem,
        "-days",
        "2",
        "-subj",
        &subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(dir, &args);
    let mut args = vec!["req", "-newkey", newkey];
    args.extend(&curve);
    args.extend([
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &args);
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    Issued {
        ca: read(&ca_pem),
        cert: read(&pem),
        key: read(&key),
    }
}

/// Replaces `path` at once (write, then rename over it), as a deployment tool would.
fn replace(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A client that trusts only `ca`, and opens a new connection for every request (so each
/// request sees the certificate served now).
fn trusting(ca: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A hub serving HTTPS with the pair in `tls/cert.pem` and `tls/key.pem` (re-read every
/// second), its log in `hub.log`.
struct TlsHub {
    hub: Hubs,
    dir: tempfile::TempDir,
    base: String,
    port: u16,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsHub {
    /// Starts the binary with `first` served and `server` added to `[server]`; returns
    /// once `/readyz` answers 200 over HTTPS.
    async fn start(first: &Issued, server: &str) -> TlsHub {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        std::fs::create_dir(&tls).unwrap();
        let (cert, key) = (tls.join("cert.pem"), tls.join("key.pem"));
        std::fs::write(&cert, &first.cert).unwrap();
        std::fs::write(&key, &first.key).unwrap();
        let store = format!("path = \"{}\"", dir.path().join("hub.db").display());
        let text = config_toml_with_store(&store, "http://127.0.0.1:9/none", FAST_RETRIES)
            .replacen("[server]\n", &format!("[server]\n{server}\n"), 1)
            .replacen(
                "\n[store]\n",
                &format!(
                    "\n[server.tls]\ncert = \"file:{}\"\nkey = \"file:{}\"\nreload_interval = \"1s\"\n[store]\n",
                    cert.display(),
                    key.display()
                ),
                1,
            );
        assert!(text.contains("[server.tls]"), "{text}");
        let config = dir.path().join("waybill.toml");
        std::fs::write(&config, text).unwrap();
        let port = free_port();
        let child = spawn(&config, port, &dir.path().join("hub.log"));
        let hub = TlsHub {
            hub: Hubs(vec![child]),
            dir,
            base: format!("https://127.0.0.1:{port}"),
            port,
            cert,
            key,
        };
        wait_for(
            &trusting(&first.ca),
            &format!("{}/readyz", hub.base),
            200,
            WAIT,
        )
        .await;
        hub
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hub.log")).unwrap_or_default()
    }

    /// The hub is still the process started (it did not exit or restart).
    fn assert_running(&mut self) {
        let exited = self.hub.0[0].try_wait().unwrap();
        assert!(
            exited.is_none(),
            "the hub exited: {exited:?}\n{}",
            self.log()
        );
    }

    /// Waits until the metrics (read with `client`, which may not connect yet) show
    /// `series` at `want` or more.
    async fn wait_metric(&self, client: &reqwest::Client, series: &str, want: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        let url = format!("{}/metrics", self.base);
        loop {
            let text = match client.get(&url).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let v = sample(&text, series);
            if v >= want {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{series} stayed at {v}, not {want}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn spawn(config: &Path, port: u16, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("WAYBILL_LOG", "warn,waybill::tls=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// The error of a request that must fail the handshake because the client does not trust
/// the certificate served.
async fn assert_untrusted(client: &reqwest::Client, url: &str) {
    match client.get(url).send().await {
        Ok(r) => panic!(
            "{url} answered {} to a client that should not trust it",
            r.status()
        ),
        Err(e) => {
            let msg = format!("{e:?}");
            assert!(
                msg.contains("UnknownIssuer"),
                "not a certificate error: {msg}"
            );
        }
    }
}

/// (1) Over HTTPS, with a client trusting only the test CA: `/healthz`, `/readyz`, an
/// event posted to an ingest source acknowledged and then read back through `/v1`, the
/// metrics with the certificate's expiry. Plain HTTP on the port gets a 400 that says to
/// use HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_health_ingest_and_the_api_and_refuses_plain_http() {
    let pki = tempfile::tempdir().unwrap();
    let first = issue(pki.path(), "one", "ec");
    let mut hub = TlsHub::start(&first, "").await;
    let client = trusting(&first.ca);
    let base = &hub.base;
    for path in ["/healthz", "/readyz"] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.version(), reqwest::Version::HTTP_11, "{path}");
    }
    let event_id = send_acked(
        &client,
        &format!("{base}/v1/ingest/carrier"),
        "tls-1",
        "T-1",
        5,
    )
    .await
    .expect("the event posted over HTTPS was not acknowledged");
    let v: serde_json::Value = client
        .get(format!("{base}/v1/shipments/T-1"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap_or_else(|| panic!("no timeline: {v}"))
        .iter()
        .filter_map(|t| t["event"]["id"].as_str())
        .collect();
    assert_eq!(ids, [event_id.as_str()], "{v}");
    let r = client
        .get(format!("{base}/v1/shipments/T-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the API still wants its key over HTTPS");

    let text = metrics(&client, base).await;
    let expiry = sample(&text, "waybill_tls_certificate_expiry_timestamp_seconds");
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(
        expiry > now + 86_400.0 && expiry < now + 3.0 * 86_400.0,
        "the certificate expires in 2 days, the metric says {expiry} (now {now})"
    );

    // Plain HTTP on the TLS port.
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", hub.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("speaks HTTPS"), "{body}");
    // A client that does not trust the CA is refused.
    assert_untrusted(&reqwest::Client::new(), &format!("{base}/healthz")).await;
    hub.assert_running();
}

/// (2) The certificate and key files overwritten with a pair from a second CA: within the
/// reload interval (1 s) a client trusting only the second CA connects, and one trusting
/// only the first no longer does; the same process serves throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let pki = tempfile::tempdir().unwrap();
    let first = issue(pki.path(), "one", "ec");
    let second = issue(pki.path(), "two", "rsa:2048");
    let mut hub = TlsHub::start(&first, "").await;
    let (old, new) = (trusting(&first.ca), trusting(&second.ca));
    let health = format!("{}/healthz", hub.base);
    assert_eq!(old.get(&health).send().await.unwrap().status(), 200);
    assert_untrusted(&new, &health).await;

    // Overwritten in place, as an operator copying files would.
    std::fs::write(&hub.cert, &second.cert).unwrap();
    std::fs::write(&hub.key, &second.key).unwrap();
    let written = Instant::now();
    loop {
        if let Ok(r) = new.get(&health).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(4),
            "the new certificate was not served within 4 s (reload interval 1 s)\n{}",
            hub.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let seen = written.elapsed();
    eprintln!("rotated certificate served {seen:?} after the files were written");
    assert_untrusted(&old, &health).await;
    hub.assert_running();
    let loaded = hub
        .wait_metric(&new, "waybill_tls_reloads_total{outcome=\"loaded\"}", 1.0)
        .await;
    assert_eq!(loaded, 1.0);
    let log = hub.log();
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    // Ingest works on the new certificate.
    send_acked(
        &new,
        &format!("{}/v1/ingest/carrier", hub.base),
        "tls-2",
        "T-2",
        6,
    )
    .await
    .expect("not acknowledged after the rotation");
}

/// (3) A broken pair written over the files — a certificate file with no certificate, then
/// a certificate that does not match the key — is logged and counted once each, and the
/// old pair stays served by the same process; a good pair afterwards is picked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_pair_leaves_the_old_one_served() {
    let pki = tempfile::tempdir().unwrap();
    let first = issue(pki.path(), "one", "ec");
    let second = issue(pki.path(), "two", "ec");
    let mut hub = TlsHub::start(&first, "").await;
    let (old, new) = (trusting(&first.ca), trusting(&second.ca));
    let health = format!("{}/healthz", hub.base);
    let rejected = "waybill_tls_reloads_total{outcome=\"rejected\"}";

    replace(
        &hub.cert,
        b"-----BEGIN NOTHING-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END NOTHING-----\n",
    );
    hub.wait_metric(&old, rejected, 1.0).await;
    assert_eq!(old.get(&health).send().await.unwrap().status(), 200);

    // The second CA's certificate with the first key: a mismatched pair.
    replace(&hub.cert, &second.cert);
    hub.wait_metric(&old, rejected, 2.0).await;
    assert_eq!(old.get(&health).send().await.unwrap().status(), 200);
    assert_untrusted(&new, &health).await;
    hub.assert_running();
    // Another interval with the same broken pair: not reported again.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let text = metrics(&old, &hub.base).await;
    assert_eq!(sample(&text, rejected), 2.0, "each broken pair counts once");
    assert_eq!(
        sample(&text, "waybill_tls_reloads_total{outcome=\"loaded\"}"),
        0.0
    );
    let log = hub.log();
    assert!(
        log.contains("server.tls.cert: no certificate in it"),
        "{log}"
    );
    assert!(log.contains("server.tls.key: does not match"), "{log}");
    assert!(log.contains("serving the previous one"), "{log}");

    // The matching key arrives: the pair is whole and served.
    replace(&hub.key, &second.key);
    hub.wait_metric(&new, "waybill_tls_reloads_total{outcome=\"loaded\"}", 1.0)
        .await;
    assert_eq!(new.get(&health).send().await.unwrap().status(), 200);
    assert_untrusted(&old, &health).await;
    hub.assert_running();
}

/// Reads from `s` until it is closed (or `within` passes); how long that took from
/// `since`, or None if it stayed open.
async fn closed_after(
    s: &mut tokio::net::TcpStream,
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// (4) A connection that sends nothing, and one that stops half way through its
/// ClientHello, are closed by the header timeout (2 s here); with `max_connections = 2`
/// held by them, a third connection is closed at once; HTTPS is served again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_stalled_handshakes_are_closed_and_the_cap_holds() {
    let pki = tempfile::tempdir().unwrap();
    let first = issue(pki.path(), "one", "ec");
    let hub = TlsHub::start(&first, "header_timeout = \"2s\"\nmax_connections = 2").await;
    let client = trusting(&first.ca);
    // The readiness probe's connection is closed by the client; let the hub notice.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = format!("127.0.0.1:{}", hub.port);

    let silent_at = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let stalled_at = Instant::now();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // A handshake record announcing 512 bytes, of which 6 arrive.
    stalled
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let over_at = Instant::now();
    let mut over = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let refused = closed_after(&mut over, over_at, Duration::from_millis(1500)).await;
    eprintln!("over the cap: closed after {refused:?}");
    let refused = refused.expect("a connection over the cap was not closed");
    assert!(
        refused < Duration::from_millis(1000),
        "over the cap, closed only after {refused:?}: not at once"
    );

    let silent_closed = closed_after(&mut silent, silent_at, Duration::from_secs(6)).await;
    let stalled_closed = closed_after(&mut stalled, stalled_at, Duration::from_secs(6)).await;
    eprintln!("silent: closed after {silent_closed:?}; stalled handshake: {stalled_closed:?}");
    for (what, took) in [("silent", silent_closed), ("stalled", stalled_closed)] {
        let took = took.unwrap_or_else(|| panic!("the {what} connection was never closed"));
        assert!(
            took >= Duration::from_millis(1800) && took < Duration::from_millis(4000),
            "the {what} connection was closed after {took:?}, not at the 2 s header timeout"
        );
    }

    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = metrics(&client, &hub.base).await;
    assert!(
        sample(&text, "waybill_http_timeouts_total{kind=\"header\"}") >= 2.0,
        "{text}"
    );
    assert!(
        sample(&text, "waybill_http_connections_refused_total") >= 1.0,
        "{text}"
    );
    let r = client
        .get(format!("{}/healthz", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
