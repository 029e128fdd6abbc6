//! Secrets by reference: `env:NAME`, `file:PATH`, or `plain:VALUE` for local demos.
//! The value never appears in `Debug` output or logs.

use serde::Deserialize;
use std::fmt;

/// A secret reference as written in the configuration.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(pub String);

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once(':') {
            Some(("plain", _)) => f.write_str("plain:***"),
            _ => write!(f, "{}", self.0),
        }
    }
}

/// A resolved secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Secret {
    /// The secret's value; use only where it is needed (signing, comparing).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret from a value (tests, generated keys).
    pub fn new(v: impl Into<String>) -> Self {
        Secret(v.into())
    }
}

impl SecretRef {
    /// Resolves the reference; the error never contains the value.
    pub fn resolve(&self) -> Result<Secret, String> {
        let (scheme, rest) = self.0.split_once(':').ok_or_else(|| {
            "a secret must be `env:NAME`, `file:PATH` or `plain:VALUE`".to_string()
        })?;
        let v = match scheme {
            "env" => std::env::var(rest)
                .map_err(|_| format!("environment variable {rest} is not set"))?,
            "file" => std::fs::read_to_string(rest)
                .map_err(|e| format!("cannot read secret file {rest}: {e}"))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
            "plain" => rest.to_owned(),
            other => {
                return Err(format!(
                    "unknown secret scheme `{other}` (use env:, file: or plain:)"
                ))
            }
        };
        if v.is_empty() {
            return Err("secret is empty".into());
        }
        Ok(Secret(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        assert_eq!(
            format!("{:?}", SecretRef("plain:hunter2".into())),
            "plain:***"
        );
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }

    #[test]
    fn unknown_scheme_is_an_error() {
        assert!(SecretRef("hunter2".into()).resolve().is_err());
        assert!(SecretRef("vault:x".into()).resolve().is_err());
        assert_eq!(
            SecretRef("plain:x".into())
                .resolve()
                .map(|s| s.expose().to_owned()),
            Ok("x".into())
        );
    }
}
