//! What an operator does to a running hub besides replay: re-process a rejected payload
//! after its mapping was fixed, and send a test delivery to a sink.
//!
//! Place in the flow: beside ingest. A re-processed payload goes through the source's
//! current mapping and the same store path as a new one (a new inbox row, events appended
//! once, routed by today's subscriptions); the rejected row is kept and points at it.
//! Never does: re-process a payload that was never authenticated (a bad signature, an
//! unknown source, a body over the limit): its credentials were never stored, so the hub
//! cannot tell it came from the partner.

use crate::ingest::{canonical, to_events};
use crate::partner::Delivery;
use crate::{codes, Hub, IngestReply, Received};
use std::sync::Arc;
use std::time::Instant;
use waybill_store::{IngestOutcome, StoreError};

/// Why a payload cannot be re-processed.
#[derive(Debug)]
pub enum ReprocessError {
    /// No inbox row with that id.
    NotFound,
    /// The row was accepted, not rejected.
    NotRejected,
    /// Re-processed before, into this inbox row.
    AlreadyReprocessed(i64),
    /// It cannot be (never authenticated, or its source is gone); the reason.
    Refused(String),
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for ReprocessError {
    fn from(e: StoreError) -> Self {
        ReprocessError::Store(e)
    }
}

/// What a re-process did.
#[derive(Debug, Clone)]
pub struct Reprocessed {
    /// The outcome, as an ingest would answer it.
    pub reply: IngestReply,
    /// The inbox row the payload was stored as this time.
    pub inbox_id: i64,
}

/// The answer of a test delivery.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestDelivery {
    /// Whether the sink took it.
    pub ok: bool,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// The sink's answer: its error, or `delivered`.
    pub detail: String,
    /// The failure's stable code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The test event's id.
    pub event_id: String,
}

impl Hub {
    /// Runs rejected inbox row `id` again through its source's current mapping (no
    /// authentication: it passed that when it arrived). When it is accepted now (or
    /// its events were already stored), the rejected row records the row it became.
    pub async fn reprocess(&self, id: i64) -> Result<Reprocessed, ReprocessError> {
        let rec = self
            .store
            .inbox_record(id)
            .await?
            .ok_or(ReprocessError::NotFound)?;
        if rec.status != "rejected" {
            return Err(ReprocessError::NotRejected);
        }
        if let Some(into) = rec.reprocessed_into {
            return Err(ReprocessError::AlreadyReprocessed(into));
        }
        let code = rec.reason_code.as_deref().unwrap_or_default();
        let never_authenticated = codes::CODES
            .iter()
            .any(|c| c.as_str() == code && crate::ingest::unauthenticated(*c));
        if never_authenticated {
            return Err(ReprocessError::Refused(format!(
                "a payload rejected with `{code}` was never authenticated; the partner must send it again"
            )));
        }
        let r = Received {
            source: rec.source.clone(),
            headers: rec.headers,
            body: rec.body.into_bytes(),
            too_large: false,
            received_at: rec.received_at,
            url_token: None,
        };
        let verdict = if r.source == "api" {
            canonical(&r, "api")
        } else {
            let Some(src) = self.sources.get(&r.source).cloned() else {
                return Err(ReprocessError::Refused(format!(
                    "source `{}` is not configured any more",
                    r.source
                )));
            };
            src.map(&r).and_then(|m| {
                to_events(m.drafts, &r.source, &m.payload_key, &r).map(|e| (m.payload_key, e))
            })
        };
        let (reply, outcome) = self.store_verdict_outcome(r, verdict).await?;
        let inbox_id = match outcome {
            IngestOutcome::Accepted { inbox_id, .. }
            | IngestOutcome::Duplicate { inbox_id, .. } => {
                self.store.mark_reprocessed(id, inbox_id).await?;
                inbox_id
            }
            IngestOutcome::Rejected { inbox_id } => inbox_id,
        };
        Ok(Reprocessed { reply, inbox_id })
    }

    /// Sends one test event to sink `sink` through its connector, outside the outbox
    /// (nothing is stored, retried or dead-lettered). `None` when no such sink runs here.
    pub async fn test_delivery(&self, sink: &str) -> Option<TestDelivery> {
        let out = self.metrics.controls.outbound(sink)?;
        let now = time::OffsetDateTime::now_utc();
        let id = format!("waybill-test-{}", now.unix_timestamp_nanos());
        let body = serde_json::json!({
            "specversion": "1.0",
            "id": id,
            "source": "waybill",
            "type": "io.waybill.test",
            "subject": "waybill-test",
            "time": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "datacontenttype": "application/json",
            "data": {"test": true, "detail": "a test delivery sent by an operator"}
        });
        let mut d = Delivery::new(id.clone(), "waybill-test", Arc::from(body.to_string()));
        d.event_type = "io.waybill.test".into();
        d.subscription = "(test)".into();
        d.sink = sink.to_owned();
        let started = Instant::now();
        let r = out.deliver(&d).await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        Some(match r {
            Ok(()) => TestDelivery {
                ok: true,
                duration_ms,
                detail: "delivered".into(),
                code: None,
                event_id: id,
            },
            Err(e) => TestDelivery {
                ok: false,
                duration_ms,
                detail: e.message,
                code: Some(e.code.as_str().to_owned()),
                event_id: id,
            },
        })
    }
}
