//! The failure codes of the Odoo connector (docs/errors.md documents each; a test in the
//! binary compares the two). Delivery codes are kept on the attempt and the dead letter.

use waybill_model::{Code, CodeClass};

const fn delivery(name: &'static str) -> Code {
    Code::new(name, CodeClass::Delivery)
}

/// Odoo refused the API key or login.
pub const ACCESS_DENIED: Code = delivery("odoo.access_denied");
/// The API user may not do this (record rules, groups).
pub const ACCESS_ERROR: Code = delivery("odoo.access_error");
/// Odoo refused the values (a constraint).
pub const VALIDATION_ERROR: Code = delivery("odoo.validation_error");
/// Odoo refused the action with a message for the user.
pub const USER_ERROR: Code = delivery("odoo.user_error");
/// The record does not exist (any more).
pub const MISSING_RECORD: Code = delivery("odoo.missing_record");
/// A concurrent update, lock or deadlock; retried.
pub const SERIALIZATION_FAILURE: Code = delivery("odoo.serialization_failure");
/// Any other server-side exception.
pub const SERVER_ERROR: Code = delivery("odoo.server_error");
/// An HTTP status that is not a JSON-RPC answer.
pub const HTTP_ERROR: Code = delivery("odoo.http_error");
/// Odoo could not be reached.
pub const UNREACHABLE: Code = delivery("odoo.unreachable");
/// An answer that is not what the protocol says.
pub const PROTOCOL_ERROR: Code = delivery("odoo.protocol_error");
/// The login answered no user.
pub const LOGIN_REFUSED: Code = delivery("odoo.login_refused");
/// The only matching pickings belong to companies this sink does not act for.
pub const FOREIGN_COMPANY: Code = delivery("odoo.foreign_company");
/// No outgoing picking for the shipment yet (retried without opening the circuit).
pub const PICKING_NOT_FOUND: Code = delivery("odoo.picking_not_found");
/// The picking is not done after validation.
pub const NOT_VALIDATED: Code = delivery("odoo.not_validated");
/// Invoicing: the picking has no sale order.
pub const NO_SALE_ORDER: Code = delivery("odoo.no_sale_order");
/// The Note subtype (`mail.mt_note`) is missing in Odoo.
pub const NO_NOTE_SUBTYPE: Code = delivery("odoo.no_note_subtype");
/// A ship-notice line matches no open move of the picking.
pub const ASN_LINE_UNMATCHED: Code = delivery("odoo.asn_line_unmatched");
/// A ship-notice line has no shipped quantity.
pub const ASN_LINE_INVALID: Code = delivery("odoo.asn_line_invalid");
/// The ship notice ships nothing of the picking.
pub const ASN_NOTHING_SHIPPED: Code = delivery("odoo.asn_nothing_shipped");
/// The outbox body is not a canonical event (a bug, not expected).
pub const BAD_EVENT: Code = delivery("odoo.bad_event");
/// A `freight.charge_confirmed` event without a numeric `data.total`.
pub const FREIGHT_NO_TOTAL: Code = delivery("odoo.freight_no_total");
/// `odoo.unsupported_webhook`: the body does not name a picking or a sale order.
pub const UNSUPPORTED_WEBHOOK: Code =
    Code::new("odoo.unsupported_webhook", CodeClass::Unprocessable);

/// Every code of the Odoo connector.
pub const CODES: &[Code] = &[
    ACCESS_DENIED,
    ACCESS_ERROR,
    VALIDATION_ERROR,
    USER_ERROR,
    MISSING_RECORD,
    SERIALIZATION_FAILURE,
    SERVER_ERROR,
    HTTP_ERROR,
    UNREACHABLE,
    PROTOCOL_ERROR,
    LOGIN_REFUSED,
    FOREIGN_COMPANY,
    PICKING_NOT_FOUND,
    NOT_VALIDATED,
    NO_SALE_ORDER,
    NO_NOTE_SUBTYPE,
    ASN_LINE_UNMATCHED,
    ASN_LINE_INVALID,
    ASN_NOTHING_SHIPPED,
    BAD_EVENT,
    FREIGHT_NO_TOTAL,
    UNSUPPORTED_WEBHOOK,
];
