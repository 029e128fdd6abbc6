//! Adapters from the partner modules' pure functions (`verify`, `map`, `parse`) to the
//! engine's [`Inbound`] contract.

use crate::carrier::CarrierFormat;
use serde::Deserialize;
use std::sync::Arc;
use time::{OffsetDateTime, UtcOffset};
use waybill_engine::config::ConfigError;
use waybill_engine::ingest::{Auth, AuthConfig, DEFAULT_MAX_BODY};
use waybill_engine::partner::{Ack, Inbound, Mapped, Rejection};
use waybill_engine::secret::{Secret, SecretRef};
use waybill_engine::Received;

/// `[sources.<name>]` of a carrier aggregator (`type = "easypost" | "aftership" | "karrio"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierConfig {
    /// The webhook secret the partner signs with (or sends, for Karrio), by reference.
    pub secret: SecretRef,
    /// Largest accepted body in bytes (default 1 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Inbound rate limit, `{ per_second = 100, burst = 200 }` (default: `[limits].rate_limit`).
    #[serde(default)]
    pub rate_limit: Option<waybill_engine::limit::RateLimit>,
}

/// `[sources.<name>]` with `type = "x12"`: EDI interchanges over HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X12Config {
    /// How the EDI gateway authenticates (Standard Webhooks or an API key).
    pub auth: AuthConfig,
    /// Largest accepted interchange in bytes (default 1 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Inbound rate limit, `{ per_second = 100, burst = 200 }` (default: `[limits].rate_limit`).
    #[serde(default)]
    pub rate_limit: Option<waybill_engine::limit::RateLimit>,
    /// The fixed UTC offset (`"-06:00"`) of the times the partner sends without a zone
    /// (AT7 without a time code or with `LT`, DTM without one, BSN, the 210's dates).
    /// Without it, such times are kept as `data.local_time` and the event is dated when
    /// received.
    #[serde(default)]
    pub local_time_offset: Option<String>,
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY
}

struct Carrier {
    secret: Secret,
    max_body: usize,
    format: &'static dyn CarrierFormat,
}

pub(crate) fn carrier(
    cfg: &CarrierConfig,
    format: &'static dyn CarrierFormat,
) -> Result<Arc<dyn Inbound>, Vec<ConfigError>> {
    let secret = cfg
        .secret
        .resolve()
        .map_err(|e| vec![ConfigError::new("secret", e)])?;
    Ok(Arc::new(Carrier {
        secret,
        max_body: cfg.max_body_bytes,
        format,
    }))
}

impl Inbound for Carrier {
    fn max_body_bytes(&self) -> usize {
        self.max_body
    }

    fn secret_headers(&self) -> Vec<&'static str> {
        if self.format.header_is_secret() {
            vec![self.format.signature_header()]
        } else {
            Vec::new()
        }
    }

    fn authenticate(&self, r: &Received) -> Result<(), Rejection> {
        self.format
            .verify(&r.headers, &r.body, self.secret.expose())
            .map_err(|e| Rejection::new(e.failure(), e.to_string()))
    }

    fn map(&self, r: &Received) -> Result<Mapped, Rejection> {
        let m = self
            .format
            .map(&r.body, r.received_at)
            .map_err(|e| Rejection::new(e.failure(), e.to_string()))?;
        Ok(m)
    }
}

struct X12 {
    auth: Auth,
    max_body: usize,
    local_offset: Option<UtcOffset>,
}

/// Validates a `local_time_offset` setting (the error names its key).
pub(crate) fn local_time_offset(raw: Option<&str>) -> Result<Option<UtcOffset>, ConfigError> {
    raw.map(crate::x12::parse_offset)
        .transpose()
        .map_err(|e| ConfigError::new("local_time_offset", e))
}

pub(crate) fn x12(cfg: &X12Config) -> Result<Arc<dyn Inbound>, Vec<ConfigError>> {
    let offset = local_time_offset(cfg.local_time_offset.as_deref());
    let auth = Auth::build(&cfg.auth);
    match (auth, offset) {
        (Ok(auth), Ok(local_offset)) => Ok(Arc::new(X12 {
            auth,
            max_body: cfg.max_body_bytes,
            local_offset,
        })),
        (auth, offset) => {
            let mut errs = auth.err().unwrap_or_default();
            errs.extend(offset.err());
            Err(errs)
        }
    }
}

/// A 997 control number derived from the interchange, so a re-sent interchange gets the
/// same acknowledgement.
fn control_number(payload_key: &str) -> u32 {
    let h = waybill_model::ids::content_hash(payload_key.as_bytes());
    u32::from_str_radix(&h[..8], 16).unwrap_or(1) % 999_999_999
}

/// Parses and maps an interchange. Draft keys identify the facts (see `x12::map`), never
/// the interchange, the source or the channel: the same document re-sent, or received
/// once over HTTP and once as a dropped file, gives the same event ids.
pub(crate) fn x12_mapped(
    body: &[u8],
    received_at: OffsetDateTime,
    local_offset: Option<UtcOffset>,
) -> Result<Mapped, Rejection> {
    let ic = crate::x12::parse(body).map_err(|e| Rejection::new(e.failure(), e.to_string()))?;
    let payload_key = ic.payload_key();
    let drafts = crate::x12::map(&ic, received_at, local_offset)
        .map_err(|e| Rejection::new(e.failure(), e.to_string()))?;
    Ok(Mapped {
        payload_key,
        drafts,
    })
}

/// An acknowledgment interchange and what it holds.
pub(crate) struct X12Ack {
    /// The interchange.
    pub doc: String,
    /// `997` (a 997, with a TA1 when the sender asked for one) or `ta1` (a TA1 alone).
    pub kind: &'static str,
}

/// The acknowledgment for an interchange: a 997 accepting it, or rejecting it with the
/// reason when the failure was in the EDI itself; a TA1 alone when its envelope failed
/// and the sender asked for a TA1 (ISA14 = 1). `None` for authentication and size
/// failures (the sender is not trusted), when not even the ISA could be read, and for an
/// envelope failure without a TA1 asked for.
pub(crate) fn x12_ack(
    body: &[u8],
    outcome: Result<(), &Rejection>,
    now: OffsetDateTime,
) -> Option<X12Ack> {
    match outcome {
        Ok(()) => {
            let ic = crate::x12::parse(body).ok()?;
            // No functional group (only TA1s, say): nothing for a 997; a TA1 alone when
            // one is asked for, else no document.
            let alone = ic.groups.is_empty();
            if alone && !crate::x12::ta1_requested(&ic.header) {
                return None;
            }
            let result = crate::x12::AckResult::check(&ic);
            let doc = crate::x12::ack_997(&ic, &result, control_number(&ic.payload_key()), now);
            Some(X12Ack {
                doc,
                kind: if alone { "ta1" } else { "997" },
            })
        }
        Err(rej) if crate::x12::CODES.contains(&rej.code) => {
            let err = match crate::x12::parse(body) {
                Err(e) => e,
                // Whether a set maps does not depend on the local time offset.
                Ok(ic) => crate::x12::map(&ic, now, None).err()?,
            };
            // Derived from the content: the same broken interchange re-sent gets the same
            // answer, two different ones get different control numbers.
            let control = control_number(&waybill_model::ids::content_hash(body));
            crate::x12::reject_997(body, &err, control, now)
                .map(|doc| X12Ack { doc, kind: "997" })
                .or_else(|| {
                    crate::x12::reject_ta1(body, &err, control, now)
                        .map(|doc| X12Ack { doc, kind: "ta1" })
                })
        }
        Err(_) => None,
    }
}

impl Inbound for X12 {
    fn max_body_bytes(&self) -> usize {
        self.max_body
    }

    fn authenticate(&self, r: &Received) -> Result<(), Rejection> {
        self.auth.check(r)
    }

    fn map(&self, r: &Received) -> Result<Mapped, Rejection> {
        x12_mapped(&r.body, r.received_at, self.local_offset)
    }

    fn acknowledgement(&self, r: &Received, outcome: Result<(), &Rejection>) -> Option<Ack> {
        let ack = x12_ack(&r.body, outcome, r.received_at)?;
        Some(Ack {
            content_type: "application/edi-x12",
            body: ack.doc.into_bytes(),
        })
    }
}
