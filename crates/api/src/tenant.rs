//! Tenant isolation: a key bound to a tenant (`waybill keys create --tenant acme`) sees
//! and acts on that tenant's shipments only — their events, deliveries, dead letters,
//! conflicts, workflows and tasks, and the payloads of the sources bound to the tenant
//! (`[tenants.<name>] sources`). A shipment's tenant is the one its first tenant-bearing
//! event named (see `waybill_store::sequence`). Something of another tenant answers as
//! if it did not exist (404), so a key cannot learn what other tenants hold; views that
//! span every tenant (overview, sinks, sources, subscriptions, keys, audit, erasure) are
//! refused with 403.

use crate::auth::Caller;
use crate::problem::Problem;
use crate::AppState;
use axum::http::Method;

/// The routes a tenant-bound key may call (each filters or checks by tenant).
pub(crate) const TENANT_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/events"),
    ("GET", "/v1/shipments"),
    ("GET", "/v1/shipments/{key}"),
    ("GET", "/v1/shipments/{key}/events/{event_id}/deliveries"),
    ("GET", "/v1/orders/{key}"),
    ("GET", "/v1/conflicts"),
    ("GET", "/v1/dead-letters"),
    ("GET", "/v1/dead-letters/{id}"),
    ("POST", "/v1/dead-letters/replay"),
    ("POST", "/v1/dead-letters/{id}/replay"),
    ("POST", "/v1/dead-letters/{id}/discard"),
    ("GET", "/v1/inbox"),
    ("GET", "/v1/inbox/{id}"),
    ("POST", "/v1/inbox/{id}/reprocess"),
    ("GET", "/v1/workflows"),
    ("GET", "/v1/workflows/{id}"),
    ("POST", "/v1/workflows/{id}/cancel"),
    ("POST", "/v1/workflows/{id}/retry"),
    ("GET", "/v1/workflows/{id}/documents/{name}"),
    ("GET", "/v1/tasks"),
    ("POST", "/v1/tasks/{id}/claim"),
    ("POST", "/v1/tasks/{id}/resolve"),
];

/// Whether a tenant-bound key may call this route.
pub(crate) fn allowed(method: &Method, path: &str) -> bool {
    TENANT_ROUTES
        .iter()
        .any(|(m, p)| *p == path && method.as_str() == *m)
}

/// The tenant the caller is bound to (None: every tenant).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tenant(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Tenant {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Tenant(
            parts
                .extensions
                .get::<Caller>()
                .and_then(|c| c.tenant.clone()),
        ))
    }
}

impl Tenant {
    /// Whether the caller may see the shipment `lane` belongs to.
    pub(crate) async fn sees(&self, st: &AppState, lane: &str) -> Result<bool, Problem> {
        let Some(t) = &self.0 else {
            return Ok(true);
        };
        let of = st
            .hub
            .store
            .tenant_of(lane)
            .await
            .map_err(|e| Problem::internal(&e))?;
        Ok(of.as_deref() == Some(t.as_str()))
    }

    /// Whether the caller may see payloads of `source`.
    pub(crate) fn sees_source(&self, st: &AppState, source: &str) -> bool {
        match &self.0 {
            None => true,
            Some(t) => st.hub.tenant_of_source(source) == Some(t.as_str()),
        }
    }

    /// The sources whose payloads the caller sees (None: all).
    pub(crate) fn sources(&self, st: &AppState) -> Option<Vec<String>> {
        self.0.as_deref().map(|t| st.hub.sources_of_tenant(t))
    }
}
