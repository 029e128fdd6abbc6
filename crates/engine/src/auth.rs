//! How a source authenticates its requests: Standard Webhooks signatures, bearer API
//! keys, or a token in the URL for partners that can do neither.

use crate::codes;
use crate::config::ConfigError;
use crate::ingest::Received;
use crate::partner::Rejection;
use crate::secret::{Secret, SecretRef};
use crate::signature::{self, SigningKey};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use waybill_model::Code;

fn reject(code: Code, detail: impl Into<String>) -> Rejection {
    Rejection::new(code, detail)
}

/// How a source authenticates its requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// Standard Webhooks HMAC-SHA256 (`webhook-id`, `webhook-timestamp`, `webhook-signature`);
    /// several secrets allow rotation.
    StandardWebhooks {
        /// `whsec_…` secrets, by reference.
        secrets: Vec<SecretRef>,
    },
    /// `Authorization: Bearer <key>` with one of these keys.
    ApiKey {
        /// Accepted keys, by reference.
        keys: Vec<SecretRef>,
    },
    /// A secret token in the URL path: `/v1/ingest/<source>/<token>`, for partners that
    /// can neither sign nor add headers. Weaker: URLs end up in logs; use HTTPS.
    UrlToken {
        /// Accepted tokens, by reference.
        tokens: Vec<SecretRef>,
    },
    /// `Authorization: Bearer wbk_…`: a key issued by the hub (`waybill keys create`)
    /// holding the scope `ingest:<this source>` (or `admin`). The API checks the key
    /// against the store and tells the source through [`HUB_KEY_HEADER`].
    HubKeys {},
}

/// Set by the API (never taken from the client: it removes any such header first) to the
/// name of the source whose `ingest:` scope the request's hub key holds.
pub const HUB_KEY_HEADER: &str = "x-waybill-hub-key-scope";

/// Resolved authentication of a source.
pub enum Auth {
    /// Hub-issued keys with the source's `ingest:` scope.
    HubKeys,
    /// Standard Webhooks with these keys (any may match: rotation).
    StandardWebhooks(Vec<SigningKey>),
    /// Bearer API keys.
    ApiKey(Vec<Secret>),
    /// Tokens in the URL path.
    UrlToken(Vec<Secret>),
}

impl Auth {
    /// Resolves the configured secrets; errors are `auth.…: message`.
    pub fn build(cfg: &AuthConfig) -> Result<Auth, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let auth = match cfg {
            AuthConfig::HubKeys {} => Auth::HubKeys,
            AuthConfig::StandardWebhooks { secrets } => {
                let keys: Vec<SigningKey> = secrets
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        s.resolve()
                            .and_then(|v| SigningKey::parse(v.expose()))
                            .map_err(|e| {
                                errs.push(ConfigError::new(format!("auth.secrets[{i}]"), e))
                            })
                            .ok()
                    })
                    .collect();
                if secrets.is_empty() {
                    errs.push(ConfigError::new(
                        "auth.secrets",
                        "at least one secret is required",
                    ));
                }
                Auth::StandardWebhooks(keys)
            }
            AuthConfig::UrlToken { tokens } => {
                let ts: Vec<Secret> = tokens
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        s.resolve()
                            .map_err(|e| {
                                errs.push(ConfigError::new(format!("auth.tokens[{i}]"), e))
                            })
                            .ok()
                    })
                    .collect();
                if tokens.is_empty() {
                    errs.push(ConfigError::new(
                        "auth.tokens",
                        "at least one token is required",
                    ));
                }
                if ts.iter().any(|t| t.expose().len() < 16) {
                    errs.push(ConfigError::new(
                        "auth.tokens",
                        "a URL token must be at least 16 characters",
                    ));
                }
                Auth::UrlToken(ts)
            }
            AuthConfig::ApiKey { keys } => {
                let ks: Vec<Secret> = keys
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        s.resolve()
                            .map_err(|e| errs.push(ConfigError::new(format!("auth.keys[{i}]"), e)))
                            .ok()
                    })
                    .collect();
                if keys.is_empty() {
                    errs.push(ConfigError::new(
                        "auth.keys",
                        "at least one key is required",
                    ));
                }
                Auth::ApiKey(ks)
            }
        };
        if errs.is_empty() {
            Ok(auth)
        } else {
            Err(errs)
        }
    }

    /// Checks a request.
    pub fn check(&self, r: &Received) -> Result<(), Rejection> {
        match self {
            Auth::HubKeys => match r.header(HUB_KEY_HEADER) {
                Some(s) if s == r.source => Ok(()),
                _ => Err(reject(
                    codes::UNAUTHORIZED,
                    format!(
                        "a hub API key with scope `ingest:{}` is required (Authorization: Bearer wbk_…)",
                        r.source
                    ),
                )),
            },
            Auth::StandardWebhooks(keys) => signature::verify(
                keys,
                r.header("webhook-id"),
                r.header("webhook-timestamp"),
                r.header("webhook-signature"),
                &r.body,
                r.received_at.unix_timestamp(),
            )
            .map_err(|e| reject(codes::BAD_SIGNATURE, e.to_string())),
            Auth::ApiKey(keys) => {
                let given = r
                    .header("authorization")
                    .and_then(|h| {
                        h.strip_prefix("Bearer ")
                            .or_else(|| h.strip_prefix("bearer "))
                    })
                    .ok_or_else(|| reject(codes::UNAUTHORIZED, "missing bearer API key"))?;
                if keys
                    .iter()
                    .any(|k| bool::from(k.expose().as_bytes().ct_eq(given.as_bytes())))
                {
                    Ok(())
                } else {
                    Err(reject(codes::UNAUTHORIZED, "unknown API key"))
                }
            }
            Auth::UrlToken(tokens) => {
                let given = r
                    .url_token
                    .as_deref()
                    .ok_or_else(|| reject(codes::UNAUTHORIZED, "missing URL token"))?;
                if tokens
                    .iter()
                    .any(|t| bool::from(t.expose().as_bytes().ct_eq(given.as_bytes())))
                {
                    Ok(())
                } else {
                    Err(reject(codes::UNAUTHORIZED, "unknown URL token"))
                }
            }
        }
    }
}
