//! TLS on the listener (`[server.tls]`): the certificate chain and its key by reference
//! (PEM), served through a resolver whose pair a background task swaps when the
//! references' content changes, so a rotated certificate needs no restart.
//!
//! - **Loading**: at validation, both references are resolved and parsed; a missing,
//!   unparsable or mismatched pair is a configuration error naming its field.
//! - **Reloading**: every `reload_interval` the references are resolved again; when their
//!   content differs from what was last seen, the new pair is parsed and, if it is valid
//!   (certificates, a key the ring provider can sign with, the key matching the leaf),
//!   served to every handshake from then on. A pair that fails is logged at warn, counted
//!   (`waybill_tls_reloads_total{outcome="rejected"}`) and ignored: the old one stays.
//! - **Resumption**: sessions are kept in memory (256) and dropped whenever a new pair is
//!   served, so no client resumes, without checking the new certificate, a session it
//!   began under the old one.
//! - **Crypto**: rustls with its `ring` provider, TLS 1.2 and 1.3, ALPN `http/1.1` (the
//!   listener serves HTTP/1 only).
//!
//! Place in the flow: the listener's handshake, before hyper. Never does: client
//! certificates, HTTP/2.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use waybill_engine::config::ConfigError;
use waybill_engine::secret::{Secret, SecretRef};
use waybill_engine::Metrics;

/// `[server.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, leaf first (`file:/etc/waybill/tls/cert.pem`).
    pub cert: SecretRef,
    /// The leaf's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: SecretRef,
    /// How often the references are read again to pick up a new pair.
    #[serde(
        default = "default_reload_interval",
        deserialize_with = "waybill_engine::duration::de"
    )]
    pub reload_interval: Duration,
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(30)
}

/// The shortest `reload_interval` accepted.
const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// A parsed pair: what handshakes are served with, and when its leaf expires.
struct Pair {
    key: Arc<CertifiedKey>,
    /// The leaf's `notAfter`, in seconds since the Unix epoch (`None`: not found).
    not_after: Option<i64>,
}

/// The references' content: what the reloader compares.
type Texts = (Secret, Secret);

/// The served pair, read at every handshake and swapped whole by the reloader.
#[derive(Debug)]
pub struct CertResolver(RwLock<Arc<CertifiedKey>>);

impl CertResolver {
    fn current(&self) -> Arc<CertifiedKey> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn swap(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = key;
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Sessions to resume, in memory, emptied whenever a new pair is served.
#[derive(Debug)]
struct Sessions(RwLock<Arc<ServerSessionMemoryCache>>);

/// Sessions kept for resumption.
const SESSIONS: usize = 256;

impl Sessions {
    fn new() -> Self {
        Sessions(RwLock::new(ServerSessionMemoryCache::new(SESSIONS)))
    }

    fn current(&self) -> Arc<ServerSessionMemoryCache> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn clear(&self) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) =
            ServerSessionMemoryCache::new(SESSIONS);
    }
}

impl StoresServerSessions for Sessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.current().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current().take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// TLS as validated: the first pair loaded and the acceptor that serves it.
pub struct Tls {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    sessions: Arc<Sessions>,
    acceptor: TlsAcceptor,
    /// The content of the pair served now.
    served: Texts,
    not_after: Option<i64>,
}

impl TlsConfig {
    /// Resolves and parses the pair and builds the acceptor; errors are under
    /// `server.tls`.
    pub fn load(&self) -> Result<Tls, Vec<ConfigError>> {
        let mut errs = Vec::new();
        if self.reload_interval < MIN_RELOAD_INTERVAL {
            errs.push(ConfigError::new("reload_interval", "must be at least 1s"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = self
            .read()
            .and_then(|texts| parse(&provider, &texts).map(|pair| (texts, pair)));
        let (served, pair) = match loaded {
            Ok(l) if errs.is_empty() => l,
            Ok(_) => return Err(ConfigError::all_under(errs, "server.tls")),
            Err(mut more) => {
                errs.append(&mut more);
                return Err(ConfigError::all_under(errs, "server.tls"));
            }
        };
        let resolver = Arc::new(CertResolver(RwLock::new(pair.key)));
        let sessions = Arc::new(Sessions::new());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| vec![ConfigError::new("server.tls", e)])?;
        let mut server = server
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        server.session_storage = sessions.clone();
        Ok(Tls {
            config: self.clone(),
            provider,
            resolver,
            sessions,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            served,
            not_after: pair.not_after,
        })
    }

    /// Both references' content; errors name `cert` and `key`.
    fn read(&self) -> Result<Texts, Vec<ConfigError>> {
        match (self.cert.resolve(), self.key.resolve()) {
            (Ok(c), Ok(k)) => Ok((c, k)),
            (c, k) => Err([("cert", c.err()), ("key", k.err())]
                .into_iter()
                .filter_map(|(field, e)| e.map(|e| ConfigError::new(field, e)))
                .collect()),
        }
    }
}

/// Parses a pair of PEM texts with `provider`; errors name `cert` and `key`.
fn parse(provider: &CryptoProvider, (cert, key): &Texts) -> Result<Pair, Vec<ConfigError>> {
    let mut errs = Vec::new();
    let chain: Vec<_> = match CertificateDer::pem_slice_iter(cert.expose().as_bytes()).collect() {
        Ok(c) => c,
        Err(e) => {
            errs.push(ConfigError::new("cert", format!("not valid PEM: {e}")));
            Vec::new()
        }
    };
    if errs.is_empty() && chain.is_empty() {
        errs.push(ConfigError::new(
            "cert",
            "no certificate in it (a PEM `CERTIFICATE` block, the leaf first)",
        ));
    }
    let signer = match PrivateKeyDer::from_pem_slice(key.expose().as_bytes()) {
        Ok(der) => match provider.key_provider.load_private_key(der) {
            Ok(s) => Some(s),
            Err(e) => {
                errs.push(ConfigError::new(
                    "key",
                    format!("not a usable key (RSA, ECDSA P-256 or P-384, Ed25519): {e}"),
                ));
                None
            }
        },
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            errs.push(ConfigError::new(
                "key",
                "no private key in it (a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block)",
            ));
            None
        }
        Err(e) => {
            errs.push(ConfigError::new("key", format!("not valid PEM: {e}")));
            None
        }
    };
    let (Some(signer), true) = (signer, errs.is_empty()) else {
        return Err(errs);
    };
    let not_after = chain.first().and_then(|leaf| not_after(leaf.as_ref()));
    let key = CertifiedKey::new(chain, signer);
    match key.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(vec![ConfigError::new(
                "key",
                "does not match the certificate (the first in `cert` must be the key's own)",
            )])
        }
        Err(e) => {
            return Err(vec![ConfigError::new(
                "cert",
                format!("the first certificate cannot be read: {e}"),
            )])
        }
    }
    Ok(Pair {
        key: Arc::new(key),
        not_after,
    })
}

impl Tls {
    /// The acceptor for the listener.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// When the served certificate expires (seconds since the Unix epoch).
    pub fn not_after(&self) -> Option<i64> {
        self.not_after
    }

    /// Re-reads the references every `reload_interval` until `stop` and serves a new pair
    /// once it parses; a pair that does not is logged and the old one kept. Counts into
    /// `stats.http` (`tls_reloads`, `tls_not_after`).
    pub async fn run_reload(mut self, stats: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
        publish(&stats, self.not_after);
        log_loaded(self.not_after, "TLS certificate loaded");
        // The last content (or error) seen: each change is acted on, and logged, once.
        let mut last: Result<Texts, String> = Ok(self.served.clone());
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.config.reload_interval) => {}
                _ = stop.changed() => return,
            }
            let (config, provider, before) =
                (self.config.clone(), self.provider.clone(), last.clone());
            let checked = tokio::task::spawn_blocking(move || {
                let now = config.read().map_err(|es| describe(&es));
                if now == before {
                    return (now, None);
                }
                let parsed = match &now {
                    Ok(texts) => Some(parse(&provider, texts).map_err(|es| describe(&es))),
                    Err(_) => None,
                };
                (now, parsed)
            })
            .await;
            let Ok((now, parsed)) = checked else {
                continue;
            };
            if now == last {
                continue;
            }
            last = now.clone();
            match (now, parsed) {
                (Ok(texts), _) if texts == self.served => {}
                (Ok(texts), Some(Ok(pair))) => {
                    self.resolver.swap(pair.key);
                    self.sessions.clear();
                    self.served = texts;
                    self.not_after = pair.not_after;
                    stats.http.tls_reloads.inc(&["loaded"]);
                    publish(&stats, self.not_after);
                    log_loaded(self.not_after, "TLS certificate reloaded");
                }
                (Ok(_), Some(Err(e))) => {
                    stats.http.tls_reloads.inc(&["rejected"]);
                    tracing::warn!(error = %e, "the new TLS certificate or key is not valid: serving the previous one");
                }
                (Err(e), _) => {
                    stats.http.tls_reloads.inc(&["rejected"]);
                    tracing::warn!(error = %e, "cannot read the TLS certificate or key: serving the previous one");
                }
                (Ok(_), None) => {}
            }
        }
    }
}

/// Errors as one line, each under `server.tls`.
fn describe(errs: &[ConfigError]) -> String {
    errs.iter()
        .map(|e| e.clone().under("server.tls").to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn publish(stats: &Metrics, not_after: Option<i64>) {
    stats
        .http
        .tls_not_after
        .store(not_after.unwrap_or(0), Ordering::Relaxed);
}

fn log_loaded(not_after: Option<i64>, what: &str) {
    let expires = not_after.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok());
    let now = time::OffsetDateTime::now_utc();
    match expires {
        Some(t) if t <= now => {
            tracing::warn!(not_after = %t, "{what}, but it has expired");
        }
        Some(t) => tracing::info!(not_after = %t, "{what}"),
        None => tracing::info!("{what} (its expiry could not be read)"),
    }
}

/// The `notAfter` of a DER X.509 certificate, in seconds since the Unix epoch:
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
/// serialNumber, signature, issuer, validity SEQUENCE { notBefore, notAfter }, … } … }`.
fn not_after(der: &[u8]) -> Option<i64> {
    let (cert, _) = tlv(der, 0x30)?;
    let (tbs, _) = tlv(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xA0) {
        rest = tlv(rest, 0xA0)?.1;
    }
    let (_serial, rest) = tlv(rest, 0x02)?;
    let (_signature, rest) = tlv(rest, 0x30)?;
    let (_issuer, rest) = tlv(rest, 0x30)?;
    let (validity, _) = tlv(rest, 0x30)?;
    let (_not_before, rest) = any_tlv(validity)?;
    let tag = *rest.first()?;
    let (t, _) = any_tlv(rest)?;
    der_time(tag, t)
}

/// One DER element of tag `tag`: its content and what follows it.
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    any_tlv(input)
}

/// One DER element, whatever its tag: its content and what follows it.
fn any_tlv(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let len = input
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((input.get(header..end)?, input.get(end..)?))
}

/// A DER `UTCTime` (tag 0x17, `YYMMDDHHMMSSZ`) or `GeneralizedTime` (0x18,
/// `YYYYMMDDHHMMSSZ`) in seconds since the Unix epoch.
fn der_time(tag: u8, t: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(t).ok()?.strip_suffix('Z')?;
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, s.len()) {
        (0x17, 12) => {
            let yy: i32 = s[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        (0x18, 14) => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let n = |i: usize| rest[i..i + 2].parse::<u8>().ok();
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(n(0)?).ok()?, n(2)?).ok()?;
    let at = date.with_hms(n(4)?, n(6)?, n(8)?).ok()?.assume_utc();
    Some(at.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_times_read_as_unix_seconds() {
        assert_eq!(der_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(der_time(0x18, b"99991231235959Z"), Some(253_402_300_799));
        assert_eq!(der_time(0x17, b"701301000000Z"), None, "month 13");
        assert_eq!(der_time(0x17, b"7001010000Z"), None, "too short");
        assert_eq!(
            der_time(0x18, b"700101000000Z"),
            None,
            "UTCTime under the wrong tag"
        );
    }

    #[test]
    fn truncated_der_is_not_read() {
        assert_eq!(not_after(&[]), None);
        assert_eq!(not_after(&[0x30, 0x82, 0xFF]), None);
        assert_eq!(not_after(&[0x30, 0x03, 0x30, 0x01]), None);
    }

    #[test]
    fn bad_pairs_name_their_field() {
        let provider = rustls::crypto::ring::default_provider();
        let errs = parse(
            &provider,
            &(Secret::new("not pem"), Secret::new("not pem either")),
        )
        .err()
        .unwrap_or_default();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["cert", "key"], "{errs:?}");
    }
}
