//! `[workflows]`: which workflows run, their rules, and the connections they call (a
//! Karrio server for carrier booking, an Odoo sink's connection as the ERP).

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use waybill_connectors::karrio::booking::{KarrioBooking, KarrioBookingConfig};
use waybill_connectors::odoo::workflow::{OdooErp, OdooErpConfig};
use waybill_connectors::SinkConfig;
use waybill_engine::config::ConfigError;
use waybill_engine::duration;
use waybill_engine::secret::SecretRef;
use waybill_engine::workflow::delivery_to_invoice::{DeliveryToInvoice, Gates};
use waybill_engine::workflow::exception_to_case::{CaseRules, ExceptionToCase};
use waybill_engine::workflow::order_to_ship::{minor, OrderToShip, Rules};
use waybill_engine::workflow::ports::{Carriers, Erp};
use waybill_engine::workflow::runtime::StepPolicy;
use waybill_engine::workflow::sink::SINK;
use waybill_engine::workflow::Erased;
use waybill_store::Subscription;

/// `[workflows]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowsConfig {
    /// `[workflows.karrio]`: the Karrio server that rates, books and voids.
    #[serde(default)]
    pub karrio: Option<KarrioSection>,
    /// `[workflows.odoo]`: the ERP (an Odoo sink's connection).
    #[serde(default)]
    pub odoo: Option<OdooSection>,
    /// `[workflows.order_to_ship]`: its rules; absent = not run.
    #[serde(default)]
    pub order_to_ship: Option<Rules>,
    /// `[workflows.delivery_to_invoice]`: its gates; absent = not run.
    #[serde(default)]
    pub delivery_to_invoice: Option<Gates>,
    /// `[workflows.exception_to_case]`: its SLA; absent = not run.
    #[serde(default)]
    pub exception_to_case: Option<CaseRules>,
    /// Workflows advanced at once (default 16).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Longest one step's call may take (default 60s).
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub step_timeout: Option<Duration>,
    /// Delays between a failed step's retries (default 1s, 5s, 30s, 2m, 10m, 30m, 1h, 1h).
    #[serde(default, deserialize_with = "duration::de_vec_opt")]
    pub retry_schedule: Option<Vec<Duration>>,
}

/// `[workflows.karrio]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KarrioSection {
    /// Base URL of the Karrio server.
    pub url: String,
    /// Its API key (`key_…`, sent as `Authorization: Token …`), by reference
    /// (`env:KARRIO_API_KEY`).
    pub api_key: SecretRef,
    /// Per-request timeout (default 30s).
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub timeout: Option<Duration>,
    /// Label format: `PDF` (default), `ZPL` or `PNG`.
    #[serde(default)]
    pub label_type: Option<String>,
}

/// `[workflows.odoo]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdooSection {
    /// The Odoo sink whose connection the workflows use.
    pub sink: String,
    /// Carrier (connection id or name) → `delivery.carrier` id.
    #[serde(default)]
    pub carriers: std::collections::BTreeMap<String, i64>,
    /// User who gets the to-dos (default: the API user).
    #[serde(default)]
    pub activity_user_id: Option<i64>,
    /// Post the booking to the customer (default true).
    #[serde(default)]
    pub notify_customer: Option<bool>,
}

/// The validated parts.
pub struct Workflows {
    /// The machines to run (order-to-ship is added by [`Workflows::machines`]).
    machines: Vec<Arc<dyn Erased>>,
    /// order-to-ship's rules, when it runs.
    order_to_ship: Option<Rules>,
    /// Carrier booking.
    pub carriers: Option<Arc<dyn Carriers>>,
    /// The ERP.
    pub erp: Option<Arc<dyn Erp>>,
    /// Retries, timeouts, concurrency.
    pub policy: StepPolicy,
    /// The internal subscription.
    pub subscription: Subscription,
}

impl WorkflowsConfig {
    /// Validates `[workflows]`; `None` when no workflow is configured.
    pub fn validate(
        &self,
        sinks: &std::collections::BTreeMap<String, SinkConfig>,
        errs: &mut Vec<ConfigError>,
    ) -> Option<Workflows> {
        if sinks.contains_key(SINK) {
            errs.push(ConfigError::new(
                format!("sinks.{SINK}"),
                "`workflows` is reserved for the workflows' own subscription",
            ));
        }
        let mut machines: Vec<Arc<dyn Erased>> = Vec::new();
        let mut order_to_ship = None;
        if let Some(rules) = &self.order_to_ship {
            if rules.enabled {
                if rules.carriers.is_empty() {
                    errs.push(ConfigError::new(
                        "workflows.order_to_ship.carriers",
                        "list at least one carrier (the Karrio connection's carrier_id)",
                    ));
                }
                if let Some(p) = &rules.max_price {
                    if minor(p).is_none() {
                        errs.push(ConfigError::new(
                            "workflows.order_to_ship.max_price",
                            format!("`{p}` is not a decimal amount like \"45.00\""),
                        ));
                    }
                }
                if self.karrio.is_none() {
                    errs.push(ConfigError::new(
                        "workflows.karrio",
                        "order_to_ship books through Karrio: set url and api_key",
                    ));
                }
                if self.odoo.is_none() {
                    errs.push(ConfigError::new(
                        "workflows.odoo",
                        "order_to_ship reads and updates Odoo pickings: name an Odoo sink (sink = \"…\")",
                    ));
                }
                order_to_ship = Some(rules.clone());
            }
        }
        if let Some(g) = self.delivery_to_invoice.as_ref().filter(|g| g.enabled) {
            if let Some(a) = &g.approval_above {
                if minor(a).is_none() {
                    errs.push(ConfigError::new(
                        "workflows.delivery_to_invoice.approval_above",
                        format!("`{a}` is not a decimal amount like \"1000.00\""),
                    ));
                }
            }
            for (key, pct) in [
                ("weight_tolerance_pct", g.weight_tolerance_pct),
                ("charge_tolerance_pct", g.charge_tolerance_pct),
            ] {
                if !(0.0..=1000.0).contains(&pct) {
                    errs.push(ConfigError::new(
                        format!("workflows.delivery_to_invoice.{key}"),
                        "a percentage from 0 to 1000",
                    ));
                }
            }
            if self.odoo.is_none() {
                errs.push(ConfigError::new(
                    "workflows.odoo",
                    "delivery_to_invoice invoices in Odoo: name an Odoo sink (sink = \"…\")",
                ));
            }
            machines.push(Arc::new(DeliveryToInvoice::new(g.clone())));
        }
        if let Some(c) = self.exception_to_case.as_ref().filter(|c| c.enabled) {
            machines.push(Arc::new(ExceptionToCase::new(c.clone())));
        }
        let carriers: Option<Arc<dyn Carriers>> = self.karrio.as_ref().and_then(|k| {
            let key = k
                .api_key
                .resolve()
                .map_err(|e| errs.push(ConfigError::new("workflows.karrio.api_key", e)))
                .ok()?;
            let cfg = KarrioBookingConfig {
                url: k.url.clone(),
                api_key: key.expose().to_owned(),
                timeout: k.timeout.unwrap_or(Duration::from_secs(30)),
                label_type: k.label_type.clone().unwrap_or_else(|| "PDF".into()),
            };
            KarrioBooking::build(&cfg)
                .map_err(|es| errs.extend(ConfigError::all_under(es, "workflows.karrio")))
                .ok()
                .map(|b| Arc::new(b) as Arc<dyn Carriers>)
        });
        let erp: Option<Arc<dyn Erp>> = self.odoo.as_ref().and_then(|o| {
            let Some(SinkConfig::Odoo(sink)) = sinks.get(&o.sink) else {
                errs.push(ConfigError::new(
                    "workflows.odoo.sink",
                    format!("no Odoo sink named `{}`", o.sink),
                ));
                return None;
            };
            let cfg = OdooErpConfig {
                carriers: o.carriers.clone(),
                activity_user_id: o.activity_user_id,
                notify_customer: o.notify_customer.unwrap_or(true),
            };
            OdooErp::build(&sink.connection, &cfg)
                .map_err(|es| errs.extend(ConfigError::all_under(es, "workflows.odoo")))
                .ok()
                .map(|e| Arc::new(e) as Arc<dyn Erp>)
        });
        if machines.is_empty() && order_to_ship.is_none() {
            return None;
        }
        let mut policy = StepPolicy::default();
        if let Some(c) = self.concurrency {
            policy.concurrency = c.max(1);
        }
        if let Some(t) = self.step_timeout {
            policy.timeout = t;
        }
        if let Some(s) = &self.retry_schedule {
            policy.retry.schedule = s.clone();
        }
        let probe = order_to_ship
            .clone()
            .map(|r| Arc::new(OrderToShip::new(r)) as Arc<dyn Erased>);
        let mut types: Vec<String> = machines
            .iter()
            .chain(probe.iter())
            .flat_map(|m| m.event_types().iter().map(|t| (*t).to_owned()))
            .collect();
        types.sort();
        types.dedup();
        Some(Workflows {
            machines,
            order_to_ship,
            carriers,
            erp,
            policy,
            subscription: Subscription {
                name: SINK.into(),
                sink: SINK.into(),
                types,
                sources: Vec::new(),
                // The workflows are the hub itself: they see events whole.
                personal_data: Some(true),
            },
        })
    }
}

/// The store cursor holding when order-to-ship first ran on this store.
const SINCE_CURSOR: &str = "workflows:order_to_ship:since";

impl Workflows {
    /// The machines to run. order-to-ship books only orders released after
    /// `released_after`, by default the time it first ran on this store (kept as a cursor),
    /// so that a first start does not book the backlog of ready pickings the Odoo poller
    /// reads.
    pub async fn machines(
        &self,
        store: &waybill_store::Store,
    ) -> anyhow::Result<Vec<Arc<dyn Erased>>> {
        let mut out = self.machines.clone();
        if let Some(rules) = &self.order_to_ship {
            let mut rules = rules.clone();
            if rules.released_after.is_none() {
                let since = match store.cursor(SINCE_CURSOR).await? {
                    Some(s) => s,
                    None => {
                        let now = time::OffsetDateTime::now_utc()
                            .format(&time::format_description::well_known::Rfc3339)?;
                        store.set_cursor(SINCE_CURSOR, &now).await?;
                        now
                    }
                };
                rules.released_after = Some(since);
            }
            out.push(Arc::new(OrderToShip::new(rules)));
        }
        Ok(out)
    }
}
