//! What the partners' own (non-Standard-Webhooks) signature schemes share: finding one
//! header case-insensitively, HMAC-SHA256, and comparing in constant time.
//!
//! Every comparison goes through [`subtle::ConstantTimeEq`] on fixed-size digests, so the
//! time taken does not depend on how many leading bytes of a forged signature are right,
//! nor (for shared-secret headers) on the secret's length.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use waybill_model::{Code, CodeClass};

/// Why a request's signature was not accepted. Every variant means "reject with 401".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarrierSignatureError {
    /// The configured secret is empty: nothing could ever be verified with it.
    #[error("the configured webhook secret is empty")]
    EmptySecret,
    /// The signature header is absent.
    #[error("header `{header}` is missing")]
    MissingHeader {
        /// The header that was expected.
        header: &'static str,
    },
    /// The signature header occurs more than once; we do not guess which one counts.
    #[error("header `{header}` occurs more than once")]
    DuplicateHeader {
        /// The repeated header.
        header: &'static str,
    },
    /// The header is there but is not of the partner's form (prefix, encoding, length).
    #[error("header `{header}` is malformed: {reason}")]
    Malformed {
        /// The malformed header.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Well-formed, but it does not match: wrong secret, or a body altered in transit.
    #[error("signature does not match")]
    Mismatch,
}

/// `signature.empty_secret`.
pub const EMPTY_SECRET: Code = Code::new("signature.empty_secret", CodeClass::Unauthenticated);
/// `signature.missing_header`.
pub const MISSING_HEADER: Code = Code::new("signature.missing_header", CodeClass::Unauthenticated);
/// `signature.duplicate_header`.
pub const DUPLICATE_HEADER: Code =
    Code::new("signature.duplicate_header", CodeClass::Unauthenticated);
/// `signature.malformed`.
pub const MALFORMED: Code = Code::new("signature.malformed", CodeClass::Unauthenticated);
/// `signature.mismatch`.
pub const MISMATCH: Code = Code::new("signature.mismatch", CodeClass::Unauthenticated);
/// Every signature code.
pub const CODES: &[Code] = &[
    EMPTY_SECRET,
    MISSING_HEADER,
    DUPLICATE_HEADER,
    MALFORMED,
    MISMATCH,
];

impl CarrierSignatureError {
    /// The failure code (all of them are answered 401).
    pub fn failure(&self) -> Code {
        match self {
            CarrierSignatureError::EmptySecret => EMPTY_SECRET,
            CarrierSignatureError::MissingHeader { .. } => MISSING_HEADER,
            CarrierSignatureError::DuplicateHeader { .. } => DUPLICATE_HEADER,
            CarrierSignatureError::Malformed { .. } => MALFORMED,
            CarrierSignatureError::Mismatch => MISMATCH,
        }
    }

    /// The failure code as written in answers, logs and metrics.
    pub fn code(&self) -> &'static str {
        self.failure().as_str()
    }
}

/// The value of the one header named `name` (ASCII case-insensitive), trimmed of optional
/// whitespace.
pub fn single_header<'a>(
    headers: &'a [(String, String)],
    name: &'static str,
) -> Result<&'a str, CarrierSignatureError> {
    let mut found = headers
        .iter()
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name));
    let first = found
        .next()
        .ok_or(CarrierSignatureError::MissingHeader { header: name })?;
    if found.next().is_some() {
        return Err(CarrierSignatureError::DuplicateHeader { header: name });
    }
    Ok(first.1.trim())
}

/// HMAC-SHA256 of `body` under `key`.
pub fn hmac_sha256(key: &[u8], body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of a received digest with the expected one. A received value of
/// the wrong length is a mismatch (its length is public anyway).
pub fn digest_matches(received: &[u8], expected: &[u8; 32]) -> bool {
    received.len() == expected.len() && bool::from(received.ct_eq(expected))
}

/// Constant-time equality of two shared secrets of any lengths: both sides are hashed
/// first, so neither the time nor an early exit reveals the configured secret's length.
pub fn secrets_match(received: &str, configured: &str) -> bool {
    let a: [u8; 32] = Sha256::digest(received.as_bytes()).into();
    let b: [u8; 32] = Sha256::digest(configured.as_bytes()).into();
    bool::from(a.ct_eq(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn header_names_are_case_insensitive_and_values_trimmed() {
        let hs = h(&[("X-HMAC-Signature", "  abc ")]);
        assert_eq!(single_header(&hs, "x-hmac-signature"), Ok("abc"));
    }

    #[test]
    fn a_missing_or_repeated_header_is_refused() {
        let none = h(&[("content-type", "application/json")]);
        assert_eq!(
            single_header(&none, "x-a"),
            Err(CarrierSignatureError::MissingHeader { header: "x-a" })
        );
        let twice = h(&[("x-a", "1"), ("X-A", "2")]);
        assert_eq!(
            single_header(&twice, "x-a"),
            Err(CarrierSignatureError::DuplicateHeader { header: "x-a" })
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let d = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(d),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn digests_of_other_lengths_never_match() {
        let d = hmac_sha256(b"k", b"b");
        assert!(digest_matches(&d, &d));
        assert!(!digest_matches(&d[..31], &d));
        assert!(secrets_match("s3cret", "s3cret"));
        assert!(!secrets_match("s3cre", "s3cret"));
    }
}
