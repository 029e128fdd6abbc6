//! The shipment key of a parcel known only by its carrier tracking number:
//! `trk:<carrier>:<tracking number>`.
//!
//! Why the carrier is in the key: carriers recycle tracking numbers (EasyPost: "tracking
//! codes are not globally unique … carriers do eventually recycle them"; it only dedupes
//! trackers on carrier + code for three months), and two carriers can issue the same
//! string. ARCHITECTURE.md asks keys built from tracking numbers to include the carrier
//! and a time window.
//!
//! Where the time window is applied: not in this key. A window in the key (e.g. the
//! month of the first scan) would split one parcel in two whenever its events straddle a
//! boundary, and a webhook does not always carry the first scan. The hub's cross-reference
//! lookup applies the window instead: when a `trk:` key is resolved to an order/shipment,
//! only links created within the recycling window (90 days by default) are followed, so a
//! recycled number starts a fresh shipment rather than reopening an old one.
//!
//! Normalization, so that every partner spells one parcel the same way:
//! - carrier: trimmed, lowercased; whitespace runs become `_`; `/`, `:`, `%` and control
//!   characters become `_`. Partners name carriers differently (EasyPost `FedEx`, AfterShip
//!   `fedex`, Karrio `fedex`; but EasyPost `DHLExpress` vs Karrio `dhl_express` vs AfterShip
//!   `dhl`): a cross-partner alias table is not part of this function (see the report).
//! - tracking number: every whitespace character removed (carriers print `1Z 999 AA1 …`),
//!   ASCII letters uppercased (carriers issue them case-insensitively; Odoo users type them
//!   in any case), `/` and `%` percent-encoded (`/` is forbidden in shipment keys).

use std::fmt;

/// Prefix of every tracking-number shipment key.
pub const PREFIX: &str = "trk:";

/// Longest key accepted (same limit as `waybill_model::ShipmentKey::MAX_LEN`).
pub const MAX_LEN: usize = 200;

/// Why no key can be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackingKeyError {
    /// The carrier code is empty after normalization.
    #[error("carrier is empty")]
    EmptyCarrier,
    /// The tracking number is empty after normalization.
    #[error("tracking number is empty")]
    EmptyTracking,
    /// The key would exceed [`MAX_LEN`] bytes.
    #[error("tracking key is longer than {MAX_LEN} bytes")]
    TooLong,
}

/// Builds `trk:<carrier>:<tracking>` (see the module docs for the normalization).
pub fn tracking_key(carrier: &str, tracking: &str) -> Result<String, TrackingKeyError> {
    let carrier = normalize_carrier(carrier);
    if carrier.is_empty() {
        return Err(TrackingKeyError::EmptyCarrier);
    }
    let tracking = normalize_tracking(tracking);
    if tracking.is_empty() {
        return Err(TrackingKeyError::EmptyTracking);
    }
    let key = format!("{PREFIX}{carrier}:{tracking}");
    if key.len() > MAX_LEN {
        return Err(TrackingKeyError::TooLong);
    }
    Ok(key)
}

/// The carrier part of a key: lowercased, separators and forbidden characters as `_`.
pub fn normalize_carrier(carrier: &str) -> String {
    let mut out = String::with_capacity(carrier.len());
    let mut pending_sep = false;
    for c in carrier.trim().chars() {
        if c.is_whitespace() || c.is_control() || matches!(c, '/' | ':' | '%') {
            pending_sep = true;
            continue;
        }
        if pending_sep && !out.is_empty() {
            out.push('_');
        }
        pending_sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// The tracking part of a key: no whitespace, ASCII uppercase, `/` and `%` escaped.
pub fn normalize_tracking(tracking: &str) -> String {
    let mut out = String::with_capacity(tracking.len());
    for c in tracking.chars() {
        match c {
            c if c.is_whitespace() => {}
            '/' => out.push_str("%2F"),
            '%' => out.push_str("%25"),
            c if c.is_control() => out.push_str(&Escaped(c).to_string()),
            c => out.push(c.to_ascii_uppercase()),
        }
    }
    out
}

/// Percent-encoding of one (control) character, byte by byte.
struct Escaped(char);

impl fmt::Display for Escaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 4];
        for b in self.0.encode_utf8(&mut buf).bytes() {
            write!(f, "%{b:02X}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waybill_model::ShipmentKey;

    #[test]
    fn the_key_names_the_carrier_and_the_number() {
        assert_eq!(
            tracking_key("FedEx", "7712 3456 7890").as_deref(),
            Ok("trk:fedex:771234567890")
        );
        assert_eq!(
            tracking_key(" ups ", "1z999aa10123456784").as_deref(),
            Ok("trk:ups:1Z999AA10123456784")
        );
        assert_eq!(
            tracking_key("DHL Express", "JD0/14%").as_deref(),
            Ok("trk:dhl_express:JD0%2F14%25")
        );
    }

    #[test]
    fn the_same_number_at_two_carriers_gives_two_keys() {
        assert_ne!(tracking_key("usps", "123"), tracking_key("ups", "123"));
    }

    #[test]
    fn empty_or_oversized_parts_are_refused() {
        assert_eq!(tracking_key(" ", "1"), Err(TrackingKeyError::EmptyCarrier));
        assert_eq!(
            tracking_key("ups", " \t"),
            Err(TrackingKeyError::EmptyTracking)
        );
        let long = "9".repeat(MAX_LEN);
        assert_eq!(tracking_key("ups", &long), Err(TrackingKeyError::TooLong));
    }

    #[test]
    fn every_key_is_a_valid_shipment_key() {
        for (c, t) in [("a/b", "x\u{7}y"), ("Post:NL", "3S\u{0}ABC"), ("ä", "ß")] {
            let k = tracking_key(c, t).expect("non-empty parts");
            assert!(ShipmentKey::parse(&k).is_ok(), "{k:?}");
        }
    }
}
