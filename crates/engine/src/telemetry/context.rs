//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` header
//! and the CloudEvents `traceparent` extension, `version-traceid-parentid-flags`.

use std::fmt;

/// A parsed `traceparent`: which trace, which span in it is the parent, and the flags.
/// Displayed as the header value, always in version `00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace id (16 bytes, never zero).
    pub trace_id: u128,
    /// The span id (8 bytes, never zero).
    pub span_id: u64,
    /// Trace flags; bit 0 is `sampled`.
    pub flags: u8,
}

/// Why a `traceparent` value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    /// Not the shape `vv-<32 hex>-<16 hex>-ff` (lengths, separators, upper-case hex).
    #[error("not version-traceid-parentid-flags in lower-case hex")]
    Malformed,
    /// Version `ff`, which the specification forbids.
    #[error("version ff is invalid")]
    BadVersion,
    /// Version `00` with something after the flags.
    #[error("version 00 has nothing after the flags")]
    TrailingData,
    /// An all-zero trace id.
    #[error("the trace id is all zeros")]
    ZeroTraceId,
    /// An all-zero parent id.
    #[error("the parent id is all zeros")]
    ZeroSpanId,
}

/// The `sampled` trace flag.
pub const SAMPLED: u8 = 0x01;

/// Lower-case hex digits only (the specification forbids upper case).
fn hex(s: &str) -> Option<u128> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

impl TraceContext {
    /// Parses a `traceparent` value. Version `00` must be exactly 55 characters; a higher
    /// version is read by its first four fields, as the specification asks, if what
    /// follows them starts with `-`. Surrounding spaces are ignored.
    pub fn parse(s: &str) -> Result<TraceContext, TraceParentError> {
        let s = s.trim_matches([' ', '\t']);
        let b = s.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(TraceParentError::Malformed);
        }
        // Every separator was checked at a byte offset that is ASCII, so these slices
        // fall on character boundaries; `get` keeps that a checked fact.
        let field = |a: usize, z: usize| s.get(a..z).and_then(hex);
        let version = field(0, 2).ok_or(TraceParentError::Malformed)?;
        let trace_id = field(3, 35).ok_or(TraceParentError::Malformed)?;
        let span_id = field(36, 52).ok_or(TraceParentError::Malformed)?;
        let flags = field(53, 55).ok_or(TraceParentError::Malformed)?;
        if version == 0xff {
            return Err(TraceParentError::BadVersion);
        }
        if b.len() > 55 {
            if version == 0 {
                return Err(TraceParentError::TrailingData);
            }
            if b[55] != b'-' {
                return Err(TraceParentError::Malformed);
            }
        }
        if trace_id == 0 {
            return Err(TraceParentError::ZeroTraceId);
        }
        if span_id == 0 {
            return Err(TraceParentError::ZeroSpanId);
        }
        Ok(TraceContext {
            trace_id,
            // 16 hex digits always fit; the fallback is unreachable.
            span_id: u64::try_from(span_id).map_err(|_| TraceParentError::Malformed)?,
            flags: u8::try_from(flags).map_err(|_| TraceParentError::Malformed)?,
        })
    }

    /// A new trace: random non-zero trace and span ids, sampled.
    pub fn new_root() -> TraceContext {
        TraceContext {
            trace_id: new_trace_id(),
            span_id: new_span_id(),
            flags: SAMPLED,
        }
    }

    /// A new span of the same trace, child of this one; it is recorded, so sampled.
    pub fn new_child(&self) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            span_id: new_span_id(),
            flags: self.flags | SAMPLED,
        }
    }

    /// The trace id as 32 lower-case hex digits (as in logs and OTLP/JSON).
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

impl std::str::FromStr for TraceContext {
    type Err = TraceParentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceContext::parse(s)
    }
}

/// A random non-zero trace id.
pub fn new_trace_id() -> u128 {
    loop {
        let id = rand::random::<u128>();
        if id != 0 {
            return id;
        }
    }
}

/// A random non-zero span id.
pub fn new_span_id() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

/// A `tracestate` value worth carrying: at most 512 characters of printable ASCII (the
/// specification's limit), else `None` (an invalid `tracestate` is dropped, the
/// `traceparent` still honoured).
pub fn valid_tracestate(s: &str) -> Option<&str> {
    let s = s.trim_matches([' ', '\t']);
    (!s.is_empty() && s.len() <= 512 && s.bytes().all(|b| (0x20..0x7f).contains(&b))).then_some(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_parses_and_prints_back() {
        let c = TraceContext::parse(GOOD).unwrap();
        assert_eq!(c.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(c.span_id, 0x00f067aa0ba902b7);
        assert_eq!(c.flags, 1);
        assert_eq!(c.to_string(), GOOD);
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(TraceContext::parse(&format!("  {GOOD} ")).unwrap(), c);
        let unsampled = GOOD.replace("-01", "-00");
        assert_eq!(TraceContext::parse(&unsampled).unwrap().flags, 0);
    }

    #[test]
    fn versions_are_checked() {
        let ff = GOOD.replacen("00", "ff", 1);
        assert_eq!(TraceContext::parse(&ff), Err(TraceParentError::BadVersion));
        // a higher version is read by its known fields, extra fields after a dash
        let v1 = format!("{}-extra", GOOD.replacen("00", "01", 1));
        let c = TraceContext::parse(&v1).unwrap();
        assert_eq!(c.to_string(), GOOD, "propagated as version 00");
        let v1_glued = format!("{}x", GOOD.replacen("00", "01", 1));
        assert_eq!(
            TraceContext::parse(&v1_glued),
            Err(TraceParentError::Malformed)
        );
        assert_eq!(
            TraceContext::parse(&format!("{GOOD}-extra")),
            Err(TraceParentError::TrailingData)
        );
        assert_eq!(
            TraceContext::parse(&GOOD.replacen("00", "0g", 1)),
            Err(TraceParentError::Malformed)
        );
    }

    #[test]
    fn all_zero_ids_are_refused() {
        let zero_trace = format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32));
        assert_eq!(
            TraceContext::parse(&zero_trace),
            Err(TraceParentError::ZeroTraceId)
        );
        let zero_span = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", "0".repeat(16));
        assert_eq!(
            TraceContext::parse(&zero_span),
            Err(TraceParentError::ZeroSpanId)
        );
    }

    #[test]
    fn wrong_lengths_separators_and_case_are_refused() {
        for bad in [
            "",
            "00",
            &GOOD[..54],
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\u{e9}",
            "\u{e9}0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn new_ids_are_valid_and_children_keep_the_trace() {
        let root = TraceContext::new_root();
        let again = TraceContext::parse(&root.to_string()).unwrap();
        assert_eq!(again, root);
        let child = root.new_child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert_eq!(child.flags & SAMPLED, SAMPLED);
    }

    #[test]
    fn tracestate_is_kept_only_when_printable_and_short() {
        assert_eq!(
            valid_tracestate(" congo=t61rcWkgMzE "),
            Some("congo=t61rcWkgMzE")
        );
        assert_eq!(valid_tracestate(""), None);
        assert_eq!(valid_tracestate(&"a".repeat(513)), None);
        assert_eq!(valid_tracestate("a=\u{1}"), None);
    }
}
