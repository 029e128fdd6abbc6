//! The connection settings a `nats` sink and a `nats` source share.

use super::config::Access;
use std::path::PathBuf;
use std::time::Duration;
use waybill_engine::config::ConfigError;
use waybill_engine::secret::SecretRef;

/// Where and how to connect.
pub(crate) struct Connection {
    url: String,
    timeout: Duration,
    auth: Auth,
    tls: Tls,
}

enum Auth {
    None,
    Token(String),
    UserPassword(String, String),
    NKey(String),
    Credentials(String),
}

#[derive(Default)]
struct Tls {
    ca: Option<PathBuf>,
    client: Option<(PathBuf, PathBuf)>,
}

impl Connection {
    /// Validates the settings (no network; the TLS files must exist); problems are added
    /// to `errs`.
    pub(crate) fn build(a: &Access<'_>, errs: &mut Vec<ConfigError>) -> Connection {
        let url = a.url;
        if url.trim().is_empty()
            || !url
                .split(',')
                .all(|u| u.trim().starts_with("nats://") || u.trim().starts_with("tls://"))
        {
            errs.push(ConfigError::new(
                "url",
                "must be nats:// or tls:// server URLs, separated by commas",
            ));
        }
        let mut resolve = |field: &str, s: &Option<SecretRef>| {
            s.as_ref().and_then(|r| {
                r.resolve()
                    .map(|v| v.expose().to_owned())
                    .map_err(|e| errs.push(ConfigError::new(field, e)))
                    .ok()
            })
        };
        let token = resolve("token", a.token);
        let password = resolve("password", a.password);
        let nkey = resolve("nkey", a.nkey);
        let creds = resolve("credentials", a.credentials);
        let auth = match (token, a.user, password, nkey, creds) {
            (None, None, None, None, None) => Auth::None,
            (Some(t), None, None, None, None) => Auth::Token(t),
            (None, Some(u), Some(p), None, None) => Auth::UserPassword(u.clone(), p),
            (None, None, None, Some(k), None) => {
                if nkeys::KeyPair::from_seed(k.trim()).is_err() {
                    errs.push(ConfigError::new("nkey", "not an NKey seed (`SU…`)"));
                }
                Auth::NKey(k.trim().to_owned())
            }
            (None, None, None, None, Some(c)) => {
                if async_nats::ConnectOptions::new().credentials(&c).is_err() {
                    errs.push(ConfigError::new(
                        "credentials",
                        "not a NATS credentials file (a JWT and an NKey seed)",
                    ));
                }
                Auth::Credentials(c)
            }
            _ => {
                errs.push(ConfigError::new(
                    "",
                    "give one of `token`, `user` with `password`, `nkey` or `credentials`",
                ));
                Auth::None
            }
        };
        let mut tls = Tls::default();
        let exists = |field: &str, p: &PathBuf, errs: &mut Vec<ConfigError>| {
            if !p.is_file() {
                errs.push(ConfigError::new(
                    field,
                    format!("{}: no such file", p.display()),
                ));
            }
        };
        if let Some(ca) = a.tls_ca {
            exists("tls_ca", ca, errs);
            tls.ca = Some(ca.clone());
        }
        match (a.tls_cert, a.tls_key) {
            (None, None) => {}
            (Some(c), Some(k)) => {
                exists("tls_cert", c, errs);
                exists("tls_key", k, errs);
                tls.client = Some((c.clone(), k.clone()));
            }
            _ => errs.push(ConfigError::new(
                "tls_cert",
                "give `tls_cert` and `tls_key` together",
            )),
        }
        if a.timeout.is_zero() {
            errs.push(ConfigError::new("timeout", "must be more than zero"));
        }
        Connection {
            url: url.to_owned(),
            timeout: a.timeout,
            auth,
            tls,
        }
    }

    /// The limit for connecting and for each acknowledgement.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Connects (once; the client reconnects by itself afterwards).
    pub(crate) async fn connect(&self) -> Result<async_nats::Client, async_nats::ConnectError> {
        let mut opts = async_nats::ConnectOptions::new()
            .connection_timeout(self.timeout)
            .name("waybill");
        match &self.auth {
            Auth::None => {}
            Auth::Token(t) => opts = opts.token(t.clone()),
            Auth::UserPassword(u, p) => opts = opts.user_and_password(u.clone(), p.clone()),
            Auth::NKey(seed) => opts = opts.nkey(seed.clone()),
            Auth::Credentials(c) => {
                // Checked when the configuration was read.
                opts = opts.credentials(c).map_err(|_| {
                    async_nats::ConnectError::from(async_nats::ConnectErrorKind::Authentication)
                })?
            }
        }
        if let Some(ca) = &self.tls.ca {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.tls.client {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        let addrs: Vec<&str> = self.url.split(',').map(str::trim).collect();
        opts.connect(addrs.as_slice()).await
    }
}
