//! INGEST: authenticate, parse, map; then hand the payload to the store, which makes it
//! durable before anything is acknowledged. Every rejection is stored too.

pub use crate::auth::{Auth, AuthConfig};
use crate::codes;
use crate::partner::{Ack, Inbound, Mapped, Rejection};
use crate::telemetry::context::valid_tracestate;
use crate::telemetry::{Span, SpanKind, TraceContext};
use crate::Hub;
use std::collections::HashMap;
use time::OffsetDateTime;
use waybill_model::draft::Origin;
use waybill_model::ids::content_hash;
use waybill_model::{CloudEvent, Code, EventDraft, EventId};
use waybill_store::{IngestOutcome, IngestRecord, StoreError, Verdict};

/// Default body limit of a source: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// A payload as received over HTTP (or read from a file).
#[derive(Debug, Clone)]
pub struct Received {
    /// Source name from the URL.
    pub source: String,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Raw body (empty when `too_large`: nothing past the limit is read).
    pub body: Vec<u8>,
    /// The body exceeded the source's limit.
    pub too_large: bool,
    /// Arrival time.
    pub received_at: OffsetDateTime,
    /// Secret token from the URL (`/v1/ingest/<source>/<token>`), for partners that
    /// cannot sign or send headers (Odoo automation-rule webhooks).
    pub url_token: Option<String>,
}

impl Received {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What ingest answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestReply {
    /// Durable; these events were created (202).
    Accepted(Vec<EventId>),
    /// Seen before; the original events (200).
    Duplicate(Vec<EventId>),
    /// Rejected and kept in the inbox (4xx).
    Rejected {
        /// Stable code; its class decides the HTTP status.
        code: Code,
        /// What is wrong (never internals).
        detail: String,
        /// Inbox record id.
        inbox_id: i64,
    },
}

fn reject(code: Code, detail: impl Into<String>) -> Rejection {
    Rejection::new(code, detail)
}

/// Headers that carry credentials in any protocol: never stored nor shown to mappings.
/// Partner formats add their own (a source's [`Inbound::secret_headers`]); the hub hides
/// the headers of every configured source from every source.
pub const CREDENTIAL_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "x-api-key",
    "proxy-authorization",
];

impl Hub {
    /// Ingests one payload for a configured source.
    pub async fn ingest(&self, mut r: Received) -> Result<(IngestReply, Option<Ack>), StoreError> {
        let span = self.ingest_span(&r, SpanKind::Server);
        let src = self.sources.get(&r.source).cloned();
        let verdict = match &src {
            None => Err(reject(
                codes::UNKNOWN_SOURCE,
                format!("no source named `{}`", r.source),
            )),
            Some(src) => self.evaluate(src.as_ref(), &mut r, &span),
        };
        let ack = src
            .as_ref()
            .and_then(|s| s.acknowledgement(&r, verdict.as_ref().map(|_| ())));
        let reply = self.store_verdict(r, verdict, span).await?;
        Ok((reply, ack))
    }

    /// Stores a payload that a local reader (the file drop) already mapped.
    pub async fn ingest_mapped(
        &self,
        r: Received,
        mapped: Mapped,
    ) -> Result<IngestReply, StoreError> {
        let span = self.ingest_span(&r, SpanKind::Internal);
        let trace = event_trace(&span, &r);
        // Like an HTTP partner payload, a file with nothing to record is accepted as such.
        let verdict = {
            let _mapping = span.child("mapping", SpanKind::Internal);
            to_events_traced(
                mapped.drafts,
                &[],
                &r.source,
                &mapped.payload_key,
                r.received_at,
                trace.as_deref(),
            )
            .map(|e| (mapped.payload_key, e))
        };
        self.store_verdict(r, verdict, span).await
    }

    /// Stores a rejected payload (or part of one, such as a bad line of a file) with its reason.
    pub async fn ingest_rejected(
        &self,
        r: Received,
        rejection: Rejection,
    ) -> Result<IngestReply, StoreError> {
        let span = self.ingest_span(&r, SpanKind::Internal);
        self.store_verdict(r, Err(rejection), span).await
    }

    /// Ingests canonical events posted to `/v1/events` (already authenticated by API key):
    /// event drafts or CloudEvents, one object or an array.
    pub async fn ingest_canonical(&self, r: Received) -> Result<IngestReply, StoreError> {
        self.ingest_canonical_in(r, None).await
    }

    /// As [`Hub::ingest_canonical`], for a caller bound to `tenant`: every event is that
    /// tenant's, whatever it says.
    pub async fn ingest_canonical_in(
        &self,
        r: Received,
        tenant: Option<&str>,
    ) -> Result<IngestReply, StoreError> {
        let span = self.ingest_span(&r, SpanKind::Server);
        let mut verdict = if r.too_large {
            Err(reject(codes::TOO_LARGE, "body exceeds the limit"))
        } else {
            canonical_traced(&r, "api", &span)
        };
        if let (Some(t), Ok((_, events))) = (tenant, &mut verdict) {
            for e in events.iter_mut() {
                e.tenant = Some(t.to_owned());
            }
        }
        self.store_verdict(r, verdict, span).await
    }

    /// Ingests canonical events (drafts or CloudEvents, one object or an array) that a
    /// reader of a trusted transport received for source `r.source` (a NATS stream):
    /// like `/v1/events`, but the events are that source's. The payload key is the
    /// `idempotency-key` header when present, else the body's hash.
    pub async fn ingest_canonical_for_source(
        &self,
        r: Received,
    ) -> Result<IngestReply, StoreError> {
        let span = self.ingest_span(&r, SpanKind::Internal);
        let verdict = canonical_traced(&r, &r.source, &span);
        self.store_verdict(r, verdict, span).await
    }

    /// The `ingest` span of a payload: a child of the request's valid `traceparent` (with
    /// its `tracestate`), else the root of a new trace. Nothing when tracing is off.
    fn ingest_span(&self, r: &Received, kind: SpanKind) -> Span {
        if !self.tracer.enabled() {
            return Span::off();
        }
        let parent = r
            .header("traceparent")
            .and_then(|h| TraceContext::parse(h).ok());
        let mut span = self.tracer.start("ingest", kind, parent.as_ref());
        if parent.is_some() {
            if let Some(ts) = r.header("tracestate").and_then(valid_tracestate) {
                span.set_trace_state(ts);
            }
        }
        span.attr("waybill.source", r.source.as_str());
        span
    }

    /// Stores a verdict under the payload's `ingest` span (the store commit is its
    /// `append` child) and logs what became of it.
    async fn store_verdict(
        &self,
        r: Received,
        verdict: Result<(String, Vec<CloudEvent>), Rejection>,
        mut span: Span,
    ) -> Result<IngestReply, StoreError> {
        // What the logs say (built only when they are written).
        let debug = tracing::enabled!(tracing::Level::DEBUG);
        let source = (debug || verdict.is_err()).then(|| r.source.clone());
        let logged: Vec<(String, String, Option<String>, Option<String>)> = match &verdict {
            Ok((_, events)) if debug => events
                .iter()
                .map(|e| {
                    (
                        e.id.to_string(),
                        e.subject.0.clone(),
                        e.correlationid.clone(),
                        e.traceparent.clone(),
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut append = span.child("append", SpanKind::Internal);
        if let (true, Ok((_, events))) = (append.is_recording(), &verdict) {
            append.attr("waybill.event_count", events.len());
        }
        let reply = match self.store_verdict_outcome(r, verdict).await {
            Ok((reply, _)) => reply,
            Err(e) => {
                append.fail(e.to_string());
                span.attr("waybill.outcome", "unavailable");
                span.fail("the store did not commit");
                tracing::warn!(source = source.as_deref(), error = %e, trace_id = span.context().map(|c| c.trace_id_hex()), "payload not stored");
                return Err(e);
            }
        };
        append.end();
        let source = source.as_deref().unwrap_or_default();
        match &reply {
            IngestReply::Accepted(ids) => {
                span.attr("waybill.outcome", "accepted");
                span.attr("waybill.event_count", ids.len());
                for (event_id, shipment, correlationid, traceparent) in &logged {
                    tracing::debug!(source, event_id = %event_id, shipment = %shipment, correlationid = correlationid.as_deref(), traceparent = traceparent.as_deref(), "event accepted");
                }
            }
            IngestReply::Duplicate(ids) => {
                span.attr("waybill.outcome", "duplicate");
                span.attr("waybill.event_count", ids.len());
                tracing::debug!(source, event_ids = ?ids, trace_id = span.context().map(|c| c.trace_id_hex()), "payload is a duplicate");
            }
            IngestReply::Rejected {
                code,
                detail,
                inbox_id,
            } => {
                span.attr("waybill.outcome", code.as_str());
                span.fail(code.as_str());
                tracing::info!(source, code = %code, detail = %detail, inbox_id, trace_id = span.context().map(|c| c.trace_id_hex()), "payload rejected");
            }
        }
        Ok(reply)
    }

    /// Stores a verdict; the reply and what the store did (with the inbox row).
    pub(crate) async fn store_verdict_outcome(
        &self,
        r: Received,
        mut verdict: Result<(String, Vec<CloudEvent>), Rejection>,
    ) -> Result<(IngestReply, IngestOutcome), StoreError> {
        // Every event says whether it carries personal data, unless its producer said;
        // a source bound to a tenant writes only that tenant's events.
        if let Ok((_, events)) = &mut verdict {
            let tenant = self.tenants.get(&r.source);
            for e in events.iter_mut() {
                if let Some(t) = tenant {
                    if e.tenant.as_ref() != Some(t) {
                        e.tenant = Some(t.clone());
                    }
                }
                if e.dataclassification.is_none() {
                    e.dataclassification = Some(self.privacy.classify(Some(&e.data)).to_owned());
                }
            }
        }
        let headers: Vec<(String, String)> = r
            .headers
            .into_iter()
            .filter(|(k, _)| !self.is_hidden(k))
            .collect();
        let (key, v, rejection) = match verdict {
            Ok((key, events)) => (key, Verdict::Accepted(events), None),
            Err(rej) if unauthenticated(rej.code) => {
                self.metrics.unauthenticated.inc(&[rej.code.as_str()]);
                (
                    content_hash(&r.body),
                    Verdict::Sample {
                        code: rej.code.as_str().to_owned(),
                        reason: rej.detail.clone(),
                        // Unknown sources' names are the sender's choice: one cap for all.
                        any_source: rej.code == codes::UNKNOWN_SOURCE,
                    },
                    Some(rej),
                )
            }
            Err(rej) => (
                content_hash(&r.body),
                Verdict::Rejected {
                    code: rej.code.as_str().to_owned(),
                    reason: rej.detail.clone(),
                },
                Some(rej),
            ),
        };
        let outcome = self
            .store
            .ingest(IngestRecord {
                source: r.source.clone(),
                idempotency_key: key,
                received_at: r.received_at,
                headers,
                body: r.body,
                verdict: v,
            })
            .await?;
        let reply = match (&outcome, rejection) {
            (IngestOutcome::Accepted { event_ids, .. }, _) => {
                IngestReply::Accepted(event_ids.clone())
            }
            (IngestOutcome::Duplicate { event_ids, .. }, _) => {
                IngestReply::Duplicate(event_ids.clone())
            }
            (IngestOutcome::Rejected { inbox_id }, rej) => {
                let rej = rej.unwrap_or_else(|| reject(codes::REJECTED, "rejected"));
                IngestReply::Rejected {
                    code: rej.code,
                    detail: rej.detail,
                    inbox_id: *inbox_id,
                }
            }
        };
        let word = match &reply {
            IngestReply::Accepted(_) => "accepted",
            IngestReply::Duplicate(_) => "duplicate",
            IngestReply::Rejected { code, .. } => code.as_str(),
        };
        // Unknown sources share one label, so that arbitrary URLs cannot grow the metrics.
        let label = if word == codes::UNKNOWN_SOURCE.as_str() {
            "(unknown)"
        } else {
            r.source.as_str()
        };
        self.metrics.ingests.inc(&[label, word]);
        if label != "(unknown)" {
            let accepted = !matches!(reply, IngestReply::Rejected { .. });
            self.metrics.controls.ingested(label, accepted);
        }
        Ok((reply, outcome))
    }
}

/// Whether a rejection came before its sender was authenticated — an unknown source, a
/// body over the limit, a failed signature, key or token — so that anyone could have sent
/// it: such payloads are kept as bounded samples only ([`Verdict::Sample`]) and never
/// re-processed.
pub(crate) fn unauthenticated(code: Code) -> bool {
    code == codes::UNKNOWN_SOURCE
        || code == codes::TOO_LARGE
        || code.class() == waybill_model::CodeClass::Unauthenticated
}

impl Hub {
    /// Whether a header carries credentials (any case): never stored nor mapped.
    fn is_hidden(&self, name: &str) -> bool {
        self.hidden_headers
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
    }

    /// Size, authentication, mapping: the verdict on one payload, before storage. The
    /// source authenticates with every header; it maps without the credential ones.
    fn evaluate(
        &self,
        src: &dyn Inbound,
        r: &mut Received,
        span: &Span,
    ) -> Result<(String, Vec<CloudEvent>), Rejection> {
        if r.too_large {
            return Err(reject(
                codes::TOO_LARGE,
                format!("body exceeds {} bytes", src.max_body_bytes()),
            ));
        }
        src.authenticate(r)?;
        r.headers.retain(|(k, _)| !self.is_hidden(k));
        let trace = event_trace(span, r);
        let mut mapping = span.child("mapping", SpanKind::Internal);
        // A partner payload may carry nothing to record (a non-tracking notification): it
        // is accepted with no events, so the partner does not retry it.
        let mapped = src.map(r).and_then(|mapped| {
            let events = to_events_traced(
                mapped.drafts,
                &[],
                &r.source,
                &mapped.payload_key,
                r.received_at,
                trace.as_deref(),
            )?;
            Ok((mapped.payload_key, events))
        });
        if let Err(rej) = &mapped {
            mapping.fail(rej.code.as_str());
        }
        mapped
    }
}

/// The `traceparent` a payload's events carry: the `ingest` span's when tracing is on,
/// else the request's own when it is valid (the trace still crosses Waybill).
fn event_trace(span: &Span, r: &Received) -> Option<String> {
    match span.context() {
        Some(c) => Some(c.to_string()),
        None => r
            .header("traceparent")
            .map(str::trim)
            .filter(|h| TraceContext::parse(h).is_ok())
            .map(str::to_owned),
    }
}

/// The drafts' events, carrying the request's `traceparent` when it is valid.
pub(crate) fn to_events(
    drafts: Vec<EventDraft>,
    source: &str,
    key: &str,
    r: &Received,
) -> Result<Vec<CloudEvent>, Rejection> {
    let trace = event_trace(&Span::off(), r);
    to_events_traced(drafts, &[], source, key, r.received_at, trace.as_deref())
}

/// The drafts' events. `own[i]`, when given, is the valid `traceparent` draft `i` came
/// with (a posted CloudEvent's): it is kept; the others carry `trace`.
fn to_events_traced(
    drafts: Vec<EventDraft>,
    own: &[Option<String>],
    source: &str,
    key: &str,
    received_at: OffsetDateTime,
    trace: Option<&str>,
) -> Result<Vec<CloudEvent>, Rejection> {
    let origin = Origin {
        source,
        payload_key: key,
        received_at,
        traceparent: trace,
    };
    let bad = |e: waybill_model::DraftError| reject(waybill_mapping::BAD_OUTPUT, e.to_string());
    // Two drafts of one payload can name the same fact (one CSV row per carton of a
    // shipment, two 214 loops with the same status): an exact repeat is dropped, a
    // different one is kept as the fact's `~2`, `~3` (stable for a re-sent payload).
    let mut out: Vec<CloudEvent> = Vec::with_capacity(drafts.len());
    let mut seen: HashMap<EventId, Vec<usize>> = HashMap::new();
    for (i, d) in drafts.into_iter().enumerate() {
        let (mut e, identity) = d.into_event_and_identity(i, &origin).map_err(bad)?;
        if let Some(Some(theirs)) = own.get(i) {
            e.traceparent = Some(theirs.clone());
        }
        let Some(earlier) = seen.get(&e.id) else {
            seen.insert(e.id.clone(), vec![out.len()]);
            out.push(e);
            continue;
        };
        let same = |j: &usize| {
            let o = &out[*j];
            o.ty == e.ty && o.time == e.time && o.data == e.data
        };
        if earlier.iter().any(same) {
            continue;
        }
        // Ids without an identity are by position, so they never repeat in one payload.
        let Some(identity) = identity else { continue };
        let first = e.id.clone();
        e.id = identity.repeated(&e.subject, earlier.len() + 1);
        seen.entry(first).or_default().push(out.len());
        out.push(e);
    }
    Ok(out)
}

/// `/v1/events`: drafts as they are, CloudEvents reduced to drafts (their `id` becomes the
/// draft key, so a re-posted CloudEvent keeps its identity).
pub(crate) fn canonical(
    r: &Received,
    source: &str,
) -> Result<(String, Vec<CloudEvent>), Rejection> {
    canonical_traced(r, source, &Span::off())
}

/// [`canonical`] under an `ingest` span (its `mapping` child). A posted CloudEvent with a
/// valid `traceparent` keeps it (the trace it was made in); the other events carry the
/// ingest span's ([`event_trace`]).
fn canonical_traced(
    r: &Received,
    source: &str,
    span: &Span,
) -> Result<(String, Vec<CloudEvent>), Rejection> {
    let trace = event_trace(span, r);
    let mut mapping = span.child("mapping", SpanKind::Internal);
    let result = canonical_items(&r.body).and_then(|items| {
        let (drafts, own): (Vec<EventDraft>, Vec<Option<String>>) = items.into_iter().unzip();
        let key = r
            .header("idempotency-key")
            .map(str::to_owned)
            .unwrap_or_else(|| content_hash(&r.body));
        let events = to_events_traced(drafts, &own, source, &key, r.received_at, trace.as_deref())?;
        Ok((key, events))
    });
    if let Err(rej) = &result {
        mapping.fail(rej.code.as_str());
    }
    result
}

/// The drafts of a canonical body (`POST /v1/events`, a `nats` source without mapping):
/// event drafts or CloudEvents in structured mode, one object or an array.
pub fn canonical_drafts(body: &[u8]) -> Result<Vec<EventDraft>, Rejection> {
    Ok(canonical_items(body)?.into_iter().map(|(d, _)| d).collect())
}

/// [`canonical_drafts`], each with the valid `traceparent` of a CloudEvent that had one.
fn canonical_items(body: &[u8]) -> Result<Vec<(EventDraft, Option<String>)>, Rejection> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| reject(codes::BAD_JSON, format!("payload is not valid JSON: {e}")))?;
    let items = match v {
        serde_json::Value::Array(a) => a,
        other => vec![other],
    };
    if items.is_empty() {
        return Err(reject(waybill_mapping::EMPTY, "no event in the body"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let (item, trace) = if item.get("specversion").is_some() {
                let trace = item
                    .get("traceparent")
                    .and_then(|t| t.as_str())
                    .map(str::trim)
                    .filter(|t| TraceContext::parse(t).is_ok())
                    .map(str::to_owned);
                (from_cloudevent(item), trace)
            } else {
                (item, None)
            };
            serde_json::from_value::<EventDraft>(item)
                .map(|d| (d, trace))
                .map_err(|e| reject(waybill_mapping::BAD_OUTPUT, format!("event {i}: {e}")))
        })
        .collect()
}

fn from_cloudevent(mut ce: serde_json::Value) -> serde_json::Value {
    let mut d = serde_json::Map::new();
    if let Some(o) = ce.as_object_mut() {
        for f in [
            "type",
            "subject",
            "time",
            "correlationid",
            "causationid",
            "tenant",
            "dataclassification",
            "data",
        ] {
            if let Some(v) = o.remove(f) {
                d.insert(f.into(), v);
            }
        }
        if let Some(id) = o.remove("id") {
            d.insert("key".into(), id);
        }
    }
    serde_json::Value::Object(d)
}
