//! The carrier kit: what every carrier-aggregator webhook format shares, and the one list
//! of those formats.
//!
//! A format is one folder (`easypost/`, `aftership/`, `karrio/`) that implements
//! [`CarrierFormat`]; it is listed once in [`CARRIERS`], which `waybill send`, the partner
//! tests, the status-table test and the fuzz target iterate. Adding a format is: its
//! folder, one variant in `SourceConfig` with one arm in `SourceConfig::carrier`, one entry
//! here, and its docs (connectors.md, carrier-status-table.md).
//!
//! What the kit holds:
//! - [`signature`]: the partners' own header signatures (one header, HMAC, constant time);
//! - [`timestamps`]: reading the partners' date-time spellings, zone or no zone;
//! - [`updates`]: one tracking update in a partner-neutral shape, the rules over a whole
//!   history (order, the current status, the return leg) and how updates become drafts;
//! - [`tracking_key`]: the shipment key of a parcel, `trk:<carrier>:<tracking number>`;
//! - [`map_error`]: why a payload could not be mapped, where, with its code;
//! - [`json_path`], [`string_enum`]: the JSON path of a serde error, open string enums.

pub mod json_path;
pub mod map_error;
pub mod signature;
pub(crate) mod string_enum;
pub mod timestamps;
pub mod tracking_key;
pub mod updates;

#[cfg(test)]
mod status_table_tests;
#[cfg(test)]
pub(crate) mod test_support;

pub use map_error::{MapError, Partner};
pub use signature::CarrierSignatureError;

use time::OffsetDateTime;
use waybill_engine::partner::Mapped;

/// Makes a [`Partner`] with its five codes spelled `<name>.<kind>`.
macro_rules! partner {
    ($name:literal) => {
        $crate::carrier::Partner::new(
            $name,
            &[
                waybill_model::Code::new(
                    concat!($name, ".bad_json"),
                    waybill_model::CodeClass::BadRequest,
                ),
                waybill_model::Code::new(
                    concat!($name, ".bad_shape"),
                    waybill_model::CodeClass::Unprocessable,
                ),
                waybill_model::Code::new(
                    concat!($name, ".missing_field"),
                    waybill_model::CodeClass::Unprocessable,
                ),
                waybill_model::Code::new(
                    concat!($name, ".bad_time"),
                    waybill_model::CodeClass::Unprocessable,
                ),
                waybill_model::Code::new(
                    concat!($name, ".bad_value"),
                    waybill_model::CodeClass::Unprocessable,
                ),
            ],
        )
    };
}
pub(crate) use partner;

/// One carrier-aggregator webhook format: how its requests are signed and how its payloads
/// map. Pure: no I/O, no clock but the time the payload was received.
pub trait CarrierFormat: Send + Sync + 'static {
    /// The format's name and codes (`easypost`: the config `type`, the folder, the metrics
    /// label and the code prefix are this one string).
    fn partner(&self) -> Partner;

    /// Its name as its own documentation writes it (`EasyPost`); the heading of its
    /// section in docs/carrier-status-table.md.
    fn display_name(&self) -> &'static str;

    /// The header that carries the signature (or, for Karrio, the secret itself).
    fn signature_header(&self) -> &'static str;

    /// Whether that header carries the secret itself rather than a signature: then the
    /// hub never stores it nor shows it to a mapping.
    fn header_is_secret(&self) -> bool {
        false
    }

    /// Checks a request's signature with the configured secret.
    fn verify(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        secret: &str,
    ) -> Result<(), CarrierSignatureError>;

    /// Maps one webhook body to drafts; `received_at` is when the hub received it.
    fn map(&self, body: &[u8], received_at: OffsetDateTime) -> Result<Mapped, MapError>;

    /// The signature header's value the partner would send with this body and secret
    /// (`waybill send`, tests).
    fn sign(&self, body: &[u8], secret: &str) -> String;
}

/// Every carrier-aggregator format, in the order the docs list them.
pub static CARRIERS: &[&dyn CarrierFormat] = &[
    &crate::easypost::EasyPost,
    &crate::aftership::AfterShip,
    &crate::karrio::Karrio,
];

/// The headers in which some format carries its secret itself (Karrio's `x-event-id`): the
/// hub hides them on every source.
pub fn secret_headers() -> impl Iterator<Item = &'static str> {
    CARRIERS
        .iter()
        .filter(|c| c.header_is_secret())
        .map(|c| c.signature_header())
}

/// The format named `name` (its config `type`).
pub fn by_name(name: &str) -> Option<&'static dyn CarrierFormat> {
    CARRIERS
        .iter()
        .copied()
        .find(|c| c.partner().name() == name)
}
