//! The canonical model of Waybill: what a shipment event is, once every partner format
//! has been mapped into it.
//!
//! Place in the flow: everything after MAP speaks these types (see ARCHITECTURE.md).
//! Never does: I/O, async, clocks (callers pass the time in), or anything partner-specific
//! beyond the shared status vocabulary.
//! Invariants: an event's `id` is a pure function of its shipment and the identity of
//! the fact it reports ([`draft::fact_key`] for a scan, a partner's event id), or of its
//! source, payload and position when it has neither; folding events into a [`ShipmentState`] is commutative and idempotent,
//! so the final state never depends on arrival order or duplicates.

pub mod draft;
pub mod event;
pub mod failure;
pub mod identity;
pub mod ids;
pub mod lifecycle;
pub mod ownership;
pub mod privacy;
pub mod taxonomy;

pub use draft::{
    fact_key, partner_fact_key, untyped_fact_key, utc_text, DraftError, EventDraft, Identity,
    KeyScope,
};
pub use event::CloudEvent;
pub use failure::{Code, CodeClass, FailureKind};
pub use ids::{EventId, ShipmentKey};
pub use lifecycle::{Applied, Milestone, ShipmentState};
pub use taxonomy::{EventKind, EventType, Flag};
