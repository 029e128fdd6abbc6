//! The connection settings a `nats` sink and a `nats` source share.

use std::time::Duration;
use waybill_engine::config::ConfigError;
use waybill_engine::secret::SecretRef;

/// Where and how to connect.
pub(crate) struct Connection {
    url: String,
    timeout: Duration,
    auth: Auth,
}

enum Auth {
    None,
    Token(String),
    UserPassword(String, String),
}

impl Connection {
    /// Validates the settings (no network); problems are added to `errs`.
    pub(crate) fn build(
        url: &str,
        token: &Option<SecretRef>,
        user: &Option<String>,
        password: &Option<SecretRef>,
        timeout: Duration,
        errs: &mut Vec<ConfigError>,
    ) -> Connection {
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
        let token = resolve("token", token);
        let password = resolve("password", password);
        let auth = match (token, user, password) {
            (None, None, None) => Auth::None,
            (Some(t), None, None) => Auth::Token(t),
            (None, Some(u), Some(p)) => Auth::UserPassword(u.clone(), p),
            _ => {
                errs.push(ConfigError::new(
                    "",
                    "give either `token`, or `user` and `password`",
                ));
                Auth::None
            }
        };
        if timeout.is_zero() {
            errs.push(ConfigError::new("timeout", "must be more than zero"));
        }
        Connection {
            url: url.to_owned(),
            timeout,
            auth,
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
        }
        let addrs: Vec<&str> = self.url.split(',').map(str::trim).collect();
        opts.connect(addrs.as_slice()).await
    }
}
