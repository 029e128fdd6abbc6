//! The engine: ingest → sequence → route → deliver, with retries, circuit breakers, the
//! dead-letter queue and replay.
//!
//! Place in the flow: everything between a partner's bytes arriving and a sink receiving
//! a canonical event, minus the storage (store crate) and the partner specifics
//! (connectors crate, through the traits in [`partner`]).
//! Never does: speak a particular partner's format or protocol; acknowledge a payload
//! before the store says it is durable; drop a rejected payload.

pub mod auth;
pub mod circuit;
pub mod clock;
pub mod codes;
pub mod config;
pub mod control;
pub mod dispatcher;
pub mod duration;
pub mod ingest;
pub mod lease;
pub mod limit;
pub mod metrics;
pub mod operate;
pub mod partner;
pub mod process;
pub mod retry;
pub mod secret;
pub mod signature;
pub mod telemetry;
pub mod workflow;

use partner::Inbound;
use std::collections::HashMap;
use std::sync::Arc;
use waybill_store::Store;

pub use ingest::{IngestReply, Received};
pub use metrics::Metrics;

/// The running hub: the store, the configured sources, the metrics.
pub struct Hub {
    /// Durable state.
    pub store: Store,
    /// Metrics shared with the API.
    pub metrics: Arc<Metrics>,
    sources: HashMap<String, Arc<dyn Inbound>>,
    /// Credential headers: the common ones and every source's own secret headers.
    hidden_headers: Vec<&'static str>,
    /// Records the ingest, mapping and append spans (off unless `[telemetry]`).
    tracer: telemetry::Tracer,
    /// Rate limits per source and the cap on ingest requests in flight.
    limits: limit::IngestLimits,
    /// Which keys hold personal data (classification at ingest, masking in the API).
    privacy: Arc<waybill_model::privacy::Personal>,
    /// The tenant of each source bound to one (`[tenants.<name>] sources`).
    tenants: HashMap<String, String>,
}

impl Hub {
    /// A hub over a store with these sources.
    pub fn new(
        store: Store,
        sources: HashMap<String, Arc<dyn Inbound>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut hidden_headers = ingest::CREDENTIAL_HEADERS.to_vec();
        for s in sources.values() {
            for h in s.secret_headers() {
                if !hidden_headers.iter().any(|x| x.eq_ignore_ascii_case(h)) {
                    hidden_headers.push(h);
                }
            }
        }
        Hub {
            store,
            metrics,
            sources,
            hidden_headers,
            tracer: telemetry::Tracer::off(),
            limits: limit::IngestLimits::unlimited(),
            privacy: Arc::default(),
            tenants: HashMap::new(),
        }
    }

    /// Treats these keys as personal besides the defaults (`[privacy] personal_keys`).
    pub fn with_privacy(mut self, p: waybill_model::privacy::Personal) -> Self {
        self.privacy = Arc::new(p);
        self
    }

    /// Binds sources to tenants (source name → tenant): their events, and the shipments
    /// those events start, belong to that tenant.
    pub fn with_tenants(mut self, tenants: HashMap<String, String>) -> Self {
        self.tenants = tenants;
        self
    }

    /// The tenant a source is bound to.
    pub fn tenant_of_source(&self, source: &str) -> Option<&str> {
        self.tenants.get(source).map(String::as_str)
    }

    /// The sources bound to a tenant.
    pub fn sources_of_tenant(&self, tenant: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .tenants
            .iter()
            .filter(|(_, t)| t.as_str() == tenant)
            .map(|(s, _)| s.clone())
            .collect();
        v.sort();
        v
    }

    /// Which keys hold personal data.
    pub fn privacy(&self) -> &waybill_model::privacy::Personal {
        &self.privacy
    }

    /// Admits ingest requests under these limits (default: none).
    pub fn limited(mut self, limits: limit::IngestLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Admits one ingest request for `source`, before anything of it is read or stored;
    /// hold the permit until it is answered. A refusal is counted in
    /// `waybill_ingest_throttled_total` and nothing else: no inbox record, no event.
    pub fn admit(&self, source: &str) -> Result<limit::Permit, limit::Throttled> {
        let known = if self.sources.contains_key(source) {
            limit::Known::Yes
        } else {
            limit::Known::No
        };
        let now = tokio::time::Instant::now();
        self.limits.admit_at(source, known, now).inspect_err(|t| {
            // Unknown names share one label, so that arbitrary URLs cannot grow the metrics.
            let label = match known {
                limit::Known::Yes => source,
                limit::Known::No => "(unknown)",
            };
            let limit = if t.code == codes::OVERLOADED {
                "in_flight"
            } else {
                "rate"
            };
            self.metrics.throttled.inc(&[label, limit]);
        })
    }

    /// Records spans with this tracer (ingest, mapping, append).
    pub fn traced(mut self, tracer: telemetry::Tracer) -> Self {
        self.tracer = tracer;
        self
    }

    /// The hub's tracer (off unless set with [`Hub::traced`]).
    pub fn tracer(&self) -> &telemetry::Tracer {
        &self.tracer
    }

    /// Also hides these headers (lower case) from storage and mappings: the secret
    /// headers of every partner format the build knows, configured or not, so that a
    /// partner posting to a wrong or removed source does not leave its secret in the inbox.
    pub fn hiding(mut self, headers: impl IntoIterator<Item = &'static str>) -> Self {
        for h in headers {
            if !self
                .hidden_headers
                .iter()
                .any(|x| x.eq_ignore_ascii_case(h))
            {
                self.hidden_headers.push(h);
            }
        }
        self
    }

    /// Largest body a source accepts (`None` for an unknown source).
    pub fn max_body(&self, source: &str) -> Option<usize> {
        self.sources.get(source).map(|s| s.max_body_bytes())
    }
}
