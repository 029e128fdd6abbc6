//! The internal sink that hands events to workflows: subscribed like any sink (to the
//! event types the configured workflows want), so events reach workflows durably, in
//! order per shipment, with the dispatcher's retries — and on several instances each
//! lane by one instance at a time.

use super::runtime::Runtime;
use crate::partner::{DeliverFuture, Delivery, DeliveryError, Outbound};
use std::sync::Arc;
use waybill_model::FailureKind;

/// Name of the internal sink and its subscription (reserved).
pub const SINK: &str = "workflows";

/// The sink.
pub struct WorkflowSink {
    rt: Arc<Runtime>,
}

impl WorkflowSink {
    /// Over a runtime.
    pub fn new(rt: Arc<Runtime>) -> Self {
        WorkflowSink { rt }
    }
}

impl Outbound for WorkflowSink {
    fn deliver<'a>(&'a self, item: &'a Delivery) -> DeliverFuture<'a> {
        Box::pin(async move {
            let event: serde_json::Value = serde_json::from_str(item.body()).map_err(|e| {
                DeliveryError::new(
                    crate::codes::WORKFLOW_BAD_EVENT,
                    FailureKind::InvalidInput,
                    format!("stored event is not JSON: {e}"),
                )
            })?;
            self.rt.offer_event(&event).await.map_err(|e| {
                DeliveryError::new(
                    crate::codes::WORKFLOW_STORE,
                    FailureKind::Retryable,
                    format!("cannot hand the event to workflows: {e}"),
                )
            })?;
            Ok(())
        })
    }
}
