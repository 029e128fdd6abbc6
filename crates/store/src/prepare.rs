//! An ingest record made ready for a backend's writer, and what the writer answers.

use crate::body::{self, EventBody};
use crate::{IngestOutcome, IngestRecord, StoreError, Verdict, SAMPLE_BYTES};
use waybill_model::{CloudEvent, EventId};

/// An ingest record with its events already serialized, so that the single writer thread
/// does as little as possible.
pub(crate) struct Prepared {
    /// The record (its payload moved into `body` when stored as received).
    pub(crate) rec: IngestRecord,
    /// The record's headers as stored (JSON).
    pub(crate) headers: String,
    /// The events with their bodies packed (see [`crate::body`]).
    pub(crate) events: Vec<(CloudEvent, EventBody)>,
    /// The events' ids as stored in the inbox row (JSON array).
    pub(crate) event_ids_json: String,
    /// The raw payload as stored and its encoding (see [`crate::body`]).
    pub(crate) body: Vec<u8>,
    /// The payload's encoding; None when stored as received.
    pub(crate) encoding: Option<&'static str>,
}

/// What the writer decided; the caller turns it into an [`IngestOutcome`] with the ids
/// it already has, so the writer allocates nothing for the answer in the common case.
pub(crate) enum Stored {
    /// Recorded with its events.
    Accepted {
        /// The new inbox row.
        inbox_id: i64,
    },
    /// Already recorded under the same idempotency key.
    Duplicate {
        /// The earlier inbox row.
        inbox_id: i64,
        /// The events recorded then.
        event_ids: Vec<EventId>,
    },
    /// Recorded as rejected.
    Rejected {
        /// The new inbox row.
        inbox_id: i64,
    },
}

impl Stored {
    /// The caller's answer, with the event ids of `p`.
    pub(crate) fn outcome(self, p: &Prepared) -> IngestOutcome {
        match self {
            Stored::Accepted { inbox_id } => IngestOutcome::Accepted {
                inbox_id,
                event_ids: p.events.iter().map(|(e, _)| e.id.clone()).collect(),
            },
            Stored::Duplicate {
                inbox_id,
                event_ids,
            } => IngestOutcome::Duplicate {
                inbox_id,
                event_ids,
            },
            Stored::Rejected { inbox_id } => IngestOutcome::Rejected { inbox_id },
        }
    }
}

/// Cuts a sample to [`SAMPLE_BYTES`] of body and of headers (whole headers first, the one
/// that crosses the limit cut short, the rest left out), noting a cut body in `reason`.
fn cut_sample(reason: &mut String, body: &mut Vec<u8>, headers: &mut Vec<(String, String)>) {
    if body.len() > SAMPLE_BYTES {
        reason.push_str(&format!(
            " (sample: the first {SAMPLE_BYTES} of {} bytes kept)",
            body.len()
        ));
        body.truncate(SAMPLE_BYTES);
        body.shrink_to_fit();
    }
    let mut room = SAMPLE_BYTES;
    let mut keep = 0;
    for (name, value) in headers.iter_mut() {
        if room <= name.len() {
            break;
        }
        room -= name.len();
        if value.len() > room {
            let mut cut = room;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            keep += 1;
            break;
        }
        room -= value.len();
        keep += 1;
    }
    headers.truncate(keep);
}

/// Serializes on the caller's thread what the writer will store.
pub(crate) fn prepare(mut rec: IngestRecord) -> Result<Prepared, StoreError> {
    if let Verdict::Sample { reason, .. } = &mut rec.verdict {
        cut_sample(reason, &mut rec.body, &mut rec.headers);
    }
    let headers = serde_json::to_string(&rec.headers).unwrap_or_else(|_| "[]".into());
    let events = match &mut rec.verdict {
        Verdict::Accepted(evs) => std::mem::take(evs)
            .into_iter()
            .map(|mut e| {
                e.sequence = None;
                let json = serde_json::to_string(&e).map_err(|err| {
                    StoreError::Corrupt(format!("event {} not serializable: {err}", e.id))
                })?;
                // The event's body is packed with the raw payload as the dictionary.
                Ok((e, body::pack_event(json, &rec.body)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?,
        Verdict::Rejected { .. } | Verdict::Sample { .. } => Vec::new(),
    };
    let ids: Vec<&EventId> = events.iter().map(|(e, _)| &e.id).collect();
    let event_ids_json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    let (packed, encoding) = body::pack_payload(&rec.body);
    let body = match packed {
        Some(p) => p,
        None => std::mem::take(&mut rec.body),
    };
    Ok(Prepared {
        rec,
        headers,
        events,
        event_ids_json,
        body,
        encoding,
    })
}
