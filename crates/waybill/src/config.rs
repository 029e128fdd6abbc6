//! Configuration: defaults → the TOML file → `WAYBILL_<SECTION>__<KEY>` environment
//! variables, loaded once and validated purely (no network) into the runtime parts.

use anyhow::Context;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use waybill_connectors::file_drop::FileDrop;
use waybill_connectors::{BuiltSource, SinkConfig, SourceConfig};
use waybill_engine::config::{ConfigError, DeliveryConfig, SubscriptionConfig};
use waybill_engine::dispatcher::SinkRuntime;
use waybill_engine::limit::{IngestLimits, LimitsConfig};
use waybill_engine::partner::Inbound;
use waybill_engine::secret::{Secret, SecretRef};
use waybill_model::ownership::{Fact, Ownership};
use waybill_store::{Subscription, Synchronous};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[store]`.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[cluster]`: several instances on one PostgreSQL store.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// `[delivery]`: defaults for every sink.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// `[limits]`: ingest rate limits and the cap on requests in flight.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[sources.<name>]`.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// `[sinks.<name>]`.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// `[[subscriptions]]`.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionConfig>,
    /// `[log]`.
    #[serde(default)]
    pub log: LogConfig,
    /// `[ownership]`: fact name → the source names that own it (replacing the default
    /// owners of that fact; `[]`: nobody owns it).
    #[serde(default)]
    pub ownership: BTreeMap<String, Vec<String>>,
    /// `[workflows]`: orchestrated workflows (docs/workflows.md).
    #[serde(default)]
    pub workflows: crate::workflows::WorkflowsConfig,
    /// `[telemetry]`: trace export over OTLP (off without an endpoint).
    #[serde(default)]
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// `[audit]`: anchoring the audit chain's head to a file.
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
    /// `[privacy]`: which keys hold personal data.
    #[serde(default)]
    pub privacy: PrivacyConfig,
    /// `[retention]`: how long payloads, deliveries, dead letters and audit records are
    /// kept.
    #[serde(default)]
    pub retention: crate::retention::RetentionConfig,
    /// `[tenants.<name>]`: the sources whose events (and the shipments they start) belong
    /// to each tenant; a key bound to a tenant sees only those.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
}

/// `[tenants.<name>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Sources bound to the tenant (each source to one tenant at most).
    #[serde(default)]
    pub sources: Vec<String>,
}

/// `[privacy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Keys (at any depth of an event's data or a JSON payload, any case) that hold
    /// personal data besides the built-in ones (`recipient`, `address`, `phone`, `email`,
    /// `signed_by`, … see docs/security.md).
    #[serde(default)]
    pub personal_keys: Vec<String>,
    /// The sinks whose subscriptions receive personal data unless a subscription says
    /// otherwise (its `personal_data`): the subscriptions of every other sink get a
    /// `confidential` event with its personal values masked, unless they say
    /// `personal_data = true` (data minimisation per consumer).
    #[serde(default)]
    pub personal_data_sinks: Vec<String>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer keys for the `/v1` API, by reference.
    #[serde(default)]
    pub api_keys: Vec<SecretRef>,
    /// Largest body on `/v1/events`.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Longest a request's head may take to arrive (from its first byte; from the accept
    /// for a connection's first request).
    #[serde(
        default = "default_header_timeout",
        deserialize_with = "waybill_engine::duration::de"
    )]
    pub header_timeout: std::time::Duration,
    /// Longest a request's body may take to arrive, from its head.
    #[serde(
        default = "default_body_timeout",
        deserialize_with = "waybill_engine::duration::de"
    )]
    pub body_timeout: std::time::Duration,
    /// Longest a connection stays open without a request.
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "waybill_engine::duration::de"
    )]
    pub idle_timeout: std::time::Duration,
    /// Most connections served at once (lowered to what the open-file limit allows).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Longest a shutdown waits for requests in flight before dropping their connections.
    #[serde(
        default = "default_shutdown_grace",
        deserialize_with = "waybill_engine::duration::de"
    )]
    pub shutdown_grace: std::time::Duration,
    /// `[server.tls]`: TLS on the listener (absent: plain HTTP).
    #[serde(default)]
    pub tls: Option<crate::tls::TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            api_keys: Vec::new(),
            max_body_bytes: default_max_body(),
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            shutdown_grace: default_shutdown_grace(),
            tls: None,
        }
    }
}

fn default_header_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}
fn default_body_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}
fn default_idle_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}
fn default_max_connections() -> usize {
    4096
}
fn default_shutdown_grace() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

impl ServerConfig {
    /// The listener's limits.
    pub fn limits(&self) -> crate::server::Limits {
        crate::server::Limits {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            shutdown_grace: self.shutdown_grace,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> usize {
    waybill_engine::ingest::DEFAULT_MAX_BODY
}

/// Which store backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Embedded SQLite (one instance).
    #[default]
    Sqlite,
    /// PostgreSQL (one or several instances).
    Postgres,
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This instance's id among those sharing the store (default: host name, process id
    /// and a random suffix, new at every start).
    #[serde(default)]
    pub instance: Option<String>,
    /// How long a lease (a sink's delivery bucket, a poller) lasts without renewal: how
    /// long the work of an instance that died waits before another takes it over.
    #[serde(
        default = "default_lease_ttl",
        deserialize_with = "waybill_engine::duration::de"
    )]
    pub lease_ttl: std::time::Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            instance: None,
            lease_ttl: default_lease_ttl(),
        }
    }
}

fn default_lease_ttl() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (default) or `postgres`.
    #[serde(rename = "type", default)]
    pub kind: StoreKind,
    /// PostgreSQL: the connection URL, by reference (`env:WAYBILL_PG_URL`,
    /// `plain:postgres://waybill@db:5432/waybill`).
    #[serde(default)]
    pub url: Option<SecretRef>,
    /// PostgreSQL: the schema holding the tables (created when missing).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// PostgreSQL: reader connections.
    #[serde(default = "default_readers")]
    pub readers: usize,
    /// SQLite database file (relative paths are relative to the working directory).
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// `full` (default: fsync per commit) or `normal`.
    #[serde(default = "default_sync")]
    pub synchronous: Synchronous,
    /// Most writes committed together in one transaction.
    #[serde(default = "default_batch")]
    pub max_batch: usize,
    /// MiB of the database file read through a memory map (0: off).
    #[serde(default = "default_mmap_mib")]
    pub mmap_size_mib: u64,
    /// WAL pages (4 KiB each) after which the writer checkpoints the WAL into the
    /// database itself; at least 1.
    #[serde(default = "default_checkpoint_pages")]
    pub checkpoint_pages: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::default(),
            url: None,
            schema: default_schema(),
            readers: default_readers(),
            path: default_path(),
            synchronous: default_sync(),
            max_batch: default_batch(),
            mmap_size_mib: default_mmap_mib(),
            checkpoint_pages: default_checkpoint_pages(),
        }
    }
}

fn default_schema() -> String {
    "public".into()
}
fn default_readers() -> usize {
    4
}
fn default_path() -> PathBuf {
    PathBuf::from("data/waybill.db")
}
fn default_sync() -> Synchronous {
    Synchronous::Full
}
fn default_batch() -> usize {
    1024
}
fn default_mmap_mib() -> u64 {
    2048
}
fn default_checkpoint_pages() -> u32 {
    waybill_store::SqliteOptions::DEFAULT_CHECKPOINT_PAGES
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` or `json`.
    #[serde(default = "default_format")]
    pub format: String,
    /// A tracing filter, e.g. `info` or `waybill_engine=debug,info`.
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_format(),
            level: default_level(),
        }
    }
}

fn default_format() -> String {
    "pretty".into()
}
fn default_level() -> String {
    "info".into()
}

const SECTIONS: [&str; 10] = [
    "server",
    "store",
    "cluster",
    "delivery",
    "limits",
    "sources",
    "sinks",
    "subscriptions",
    "log",
    "telemetry",
];

impl Config {
    /// Reads the file, applies environment overrides, deserializes. Errors name the file
    /// and the line.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text, std::env::vars()).with_context(|| format!("in {}", path.display()))
    }

    /// Parses TOML text with overrides from `WAYBILL_<SECTION>__<KEY>[__<KEY>…]` variables.
    pub fn parse(
        text: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{e}"))?;
        let mut overridden = false;
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("WAYBILL_") else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            if path.len() < 2 || !SECTIONS.contains(&path[0].as_str()) {
                continue;
            }
            let value = format!("v = {v}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(v));
            set_path(&mut table, &path, value)
                .with_context(|| format!("environment variable {k}"))?;
            overridden = true;
        }
        // Without overrides, deserialize the text itself so errors can carry positions.
        let cfg: Result<Config, toml::de::Error> = if overridden {
            table.try_into()
        } else {
            toml::from_str(text)
        };
        cfg.map_err(|e| anyhow::anyhow!("{}", with_line(text, &e.to_string())))
    }
}

/// Adds `line N: ` when the parser's message has no position but names a key that
/// appears in the text (e.g. an unknown field).
fn with_line(text: &str, msg: &str) -> String {
    if msg.contains("line ") {
        return msg.to_owned();
    }
    let key = msg.split('`').nth(1).unwrap_or("");
    let line = text.lines().position(|l| {
        let l = l.trim_start();
        !key.is_empty()
            && l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('=') || rest.starts_with('.'))
    });
    match line {
        Some(n) => format!("line {}: {}", n + 1, msg.trim_end()),
        None => msg.to_owned(),
    }
}

fn set_path(t: &mut toml::Table, path: &[String], v: toml::Value) -> anyhow::Result<()> {
    match path {
        [] => Ok(()),
        [last] => {
            t.insert(last.clone(), v);
            Ok(())
        }
        [head, rest @ ..] => {
            let e = t
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match e {
                toml::Value::Table(inner) => set_path(inner, rest, v),
                _ => anyhow::bail!("`{head}` is not a table"),
            }
        }
    }
}

/// Everything `serve` needs, validated.
pub struct Runtime {
    /// HTTP sources by name.
    pub sources: HashMap<String, Arc<dyn Inbound>>,
    /// Directory sources.
    pub drops: Vec<Arc<FileDrop>>,
    /// Odoo pollers.
    pub pollers: Vec<Arc<waybill_connectors::odoo::OdooPoller>>,
    /// NATS stream readers.
    pub nats: Vec<Arc<waybill_connectors::nats::NatsSource>>,
    /// Sinks ready to dispatch.
    pub sinks: Vec<SinkRuntime>,
    /// Subscriptions for routing.
    pub subscriptions: Vec<Subscription>,
    /// API keys.
    pub api_keys: Vec<Secret>,
    /// Who owns which shipment fact.
    pub ownership: Ownership,
    /// The configured workflows, if any.
    pub workflows: Option<crate::workflows::Workflows>,
    /// Trace export, when `[telemetry]` names an endpoint.
    pub telemetry: Option<crate::telemetry::TelemetrySettings>,
    /// Ingest limits: `[limits]` and each source's `rate_limit`.
    pub limits: IngestLimits,
    /// Source name → the tenant it is bound to.
    pub tenants: HashMap<String, String>,
    /// TLS on the listener, when `[server.tls]` is set: its first certificate loaded.
    pub tls: Option<crate::tls::Tls>,
}

/// The default owners of each fact, by the type of the source (see
/// docs/configuration.md, `[ownership]`): carriers own tracking, carrier and service,
/// the ETA and the proof of delivery; the warehouse (X12 856, CSV drops) owns weights,
/// dimensions, packages and shipped quantities; freight invoices (X12 210) own the
/// freight charge. Odoo owns none of these by default, so the Odoo sink writes them.
pub fn default_owner(fact: Fact, source: &SourceConfig) -> bool {
    let carrier = source.carrier().is_some();
    let warehouse = matches!(source, SourceConfig::X12(_) | SourceConfig::FileDrop(_));
    match fact {
        Fact::Tracking | Fact::Carrier | Fact::Service | Fact::Eta | Fact::Pod => carrier,
        Fact::Weight | Fact::Dimensions | Fact::Packages | Fact::ShippedQuantity => warehouse,
        Fact::FreightCharge => matches!(source, SourceConfig::X12(_)),
    }
}

impl Config {
    /// Validates everything at once (no network); every error names its key's path.
    pub fn validate(&self) -> Result<Runtime, Vec<ConfigError>> {
        let mut errs = Vec::new();
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            errs.push(ConfigError::new(
                "server.listen",
                format!(
                    "`{}` is not an address like 127.0.0.1:8080",
                    self.server.listen
                ),
            ));
        }
        for (key, d) in [
            ("server.header_timeout", self.server.header_timeout),
            ("server.body_timeout", self.server.body_timeout),
            ("server.idle_timeout", self.server.idle_timeout),
        ] {
            if d.is_zero() {
                errs.push(ConfigError::new(key, "must be longer than 0"));
            }
        }
        for (key, problem) in self.retention.problems() {
            errs.push(ConfigError::new(key, problem));
        }
        if self.server.max_connections == 0 {
            errs.push(ConfigError::new(
                "server.max_connections",
                "must be at least 1",
            ));
        }
        let tls = self
            .server
            .tls
            .as_ref()
            .and_then(|t| t.load().map_err(|es| errs.extend(es)).ok());
        let api_keys: Vec<Secret> = self
            .server
            .api_keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| {
                k.resolve()
                    .map_err(|e| errs.push(ConfigError::new(format!("server.api_keys[{i}]"), e)))
                    .ok()
            })
            .collect();
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            errs.push(ConfigError::new("log.format", "must be `pretty` or `json`"));
        }
        if self.store.kind == StoreKind::Postgres {
            match &self.store.url {
                None => errs.push(ConfigError::new(
                    "store.url",
                    "required with type = \"postgres\" (e.g. \"env:WAYBILL_PG_URL\")",
                )),
                Some(u) => {
                    if let Err(e) = u.resolve() {
                        errs.push(ConfigError::new("store.url", e));
                    }
                }
            }
            let schema_ok = !self.store.schema.is_empty()
                && self.store.schema.len() <= 63
                && self
                    .store
                    .schema
                    .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && self
                    .store
                    .schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !schema_ok {
                errs.push(ConfigError::new(
                    "store.schema",
                    "lower-case letters, digits and `_`, starting with a letter (at most 63)",
                ));
            }
        }
        if self.cluster.lease_ttl < std::time::Duration::from_secs(1) {
            errs.push(ConfigError::new(
                "cluster.lease_ttl",
                "must be at least 1s (leases are renewed every quarter of it)",
            ));
        }
        if self.store.checkpoint_pages == 0 {
            errs.push(ConfigError::new(
                "store.checkpoint_pages",
                "must be at least 1 (without the writer's checkpoints the WAL grows without bound)",
            ));
        }
        if self.delivery.retry_schedule.is_empty() {
            errs.push(ConfigError::new(
                "delivery.retry_schedule",
                "must list at least one delay",
            ));
        }
        errs.extend(ConfigError::all_under(self.limits.check(), "limits"));
        for (name, cfg) in &self.sources {
            if let Some(Err(e)) = cfg.rate_limit().map(|r| r.check()) {
                errs.push(e.under(&format!("sources.{name}.rate_limit")));
            }
        }
        let limits = IngestLimits::new(
            &self.limits,
            self.sources
                .iter()
                .map(|(name, cfg)| (name.as_str(), cfg.rate_limit())),
        );
        let mut sources = HashMap::new();
        let mut drops = Vec::new();
        let mut pollers = Vec::new();
        let mut nats = Vec::new();
        for (name, cfg) in &self.sources {
            if name == "api" {
                errs.push(ConfigError::new(
                    "sources.api",
                    "`api` is reserved for /v1/events",
                ));
            }
            match cfg.build(name) {
                Ok(BuiltSource::Http(s)) => {
                    sources.insert(name.clone(), s);
                }
                Ok(BuiltSource::FileDrop(d)) => drops.push(d),
                Ok(BuiltSource::Nats(n)) => nats.push(n),
                Ok(BuiltSource::Odoo { poller, webhook }) => {
                    pollers.push(poller);
                    if let Some(w) = webhook {
                        sources.insert(name.clone(), w);
                    }
                }
                Err(es) => errs.extend(ConfigError::all_under(es, &format!("sources.{name}"))),
            }
        }
        let ownership = self.ownership(&mut errs);
        let personal = Arc::new(waybill_model::privacy::Personal::with(
            &self.privacy.personal_keys,
        ));
        for (i, s) in self.privacy.personal_data_sinks.iter().enumerate() {
            if !self.sinks.contains_key(s) {
                errs.push(ConfigError::new(
                    format!("privacy.personal_data_sinks[{i}]"),
                    format!("no sink named `{s}`"),
                ));
            }
        }
        let mut sinks = Vec::new();
        for (name, cfg) in &self.sinks {
            let cfg = &self.with_ownership(cfg, &ownership);
            match cfg.build() {
                Ok(outbound) => sinks.push(SinkRuntime {
                    name: name.clone(),
                    outbound: Arc::clone(&outbound),
                    retry: self.delivery.retry_policy(),
                    circuit: self.delivery.circuit(),
                    concurrency: cfg
                        .concurrency()
                        .unwrap_or(self.delivery.concurrency)
                        .max(1),
                    pause_on_gone: self.delivery.pause_on_gone,
                    minimise: Some(personal.clone()),
                    personal_data: self.privacy.personal_data_sinks.contains(name),
                }),
                Err(es) => errs.extend(ConfigError::all_under(es, &format!("sinks.{name}"))),
            }
        }
        let mut names = std::collections::HashSet::new();
        let subscriptions = self
            .subscriptions
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if !names.insert(s.name.clone()) {
                    errs.push(ConfigError::new(
                        format!("subscriptions[{i}].name"),
                        format!("`{}` is used twice", s.name),
                    ));
                }
                if !self.sinks.contains_key(&s.sink) {
                    errs.push(ConfigError::new(
                        format!("subscriptions[{i}].sink"),
                        format!("no sink named `{}`", s.sink),
                    ));
                }
                for src in &s.sources {
                    if src != "api" && !self.sources.contains_key(src) {
                        errs.push(ConfigError::new(
                            format!("subscriptions[{i}].sources"),
                            format!("no source named `{src}`"),
                        ));
                    }
                }
                for t in &s.types {
                    let all = waybill_model::EventType::ALL;
                    let known = match t.strip_suffix(".*") {
                        _ if t == "*" => true,
                        Some(prefix) => all
                            .iter()
                            .any(|et| et.as_str().starts_with(&format!("{prefix}."))),
                        None => all.iter().any(|et| et.as_str() == t),
                    };
                    if !known {
                        errs.push(ConfigError::new(
                            format!("subscriptions[{i}].types"),
                            format!("`{t}` matches no event type"),
                        ));
                    }
                }
                Subscription {
                    name: s.name.clone(),
                    sink: s.sink.clone(),
                    types: s.types.clone(),
                    sources: s.sources.clone(),
                    personal_data: s.personal_data,
                }
            })
            .collect::<Vec<_>>();
        let workflows = self.workflows.validate(&self.sinks, &mut errs);
        let telemetry = self.telemetry.validate(&mut errs);
        let mut subscriptions = subscriptions;
        if let Some(w) = &workflows {
            if subscriptions.iter().any(|s| s.name == w.subscription.name) {
                errs.push(ConfigError::new(
                    "subscriptions",
                    "the name `workflows` is reserved for the workflows' own subscription",
                ));
            }
            subscriptions.push(w.subscription.clone());
        }
        let tenants = self.tenant_sources(&mut errs);
        if errs.is_empty() {
            Ok(Runtime {
                sources,
                drops,
                pollers,
                nats,
                sinks,
                subscriptions,
                api_keys,
                ownership,
                workflows,
                telemetry,
                limits,
                tenants,
                tls,
            })
        } else {
            Err(errs)
        }
    }

    /// `[tenants]` as source → tenant, checked: names of letters, digits, `.`, `_`, `-`;
    /// every source configured; no source in two tenants.
    fn tenant_sources(&self, errs: &mut Vec<ConfigError>) -> HashMap<String, String> {
        let mut out: HashMap<String, String> = HashMap::new();
        for (tenant, t) in &self.tenants {
            let ok = !tenant.is_empty()
                && tenant.len() <= 64
                && tenant
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                errs.push(ConfigError::new(
                    format!("tenants.{tenant}"),
                    "a tenant name is 1 to 64 letters, digits, `.`, `_` or `-`",
                ));
            }
            for (i, src) in t.sources.iter().enumerate() {
                let at = format!("tenants.{tenant}.sources[{i}]");
                if !self.sources.contains_key(src) {
                    errs.push(ConfigError::new(
                        at,
                        format!("no source `{src}` is configured"),
                    ));
                } else if let Some(other) = out.get(src).filter(|o| *o != tenant) {
                    errs.push(ConfigError::new(
                        at,
                        format!("source `{src}` is bound to tenant `{other}` already"),
                    ));
                } else {
                    out.insert(src.clone(), tenant.clone());
                }
            }
        }
        out
    }
}

impl Config {
    /// An Odoo sink with the facts Odoo owns: those owned by an `odoo` source reading the
    /// same database (same URL and database name).
    fn with_ownership(&self, sink: &SinkConfig, ownership: &Ownership) -> SinkConfig {
        let mut sink = sink.clone();
        if let SinkConfig::Odoo(o) = &mut sink {
            let same_db: Vec<&String> = self
                .sources
                .iter()
                .filter(|(_, src)| match src {
                    SourceConfig::Odoo(s) => {
                        s.connection.url.trim_end_matches('/')
                            == o.connection.url.trim_end_matches('/')
                            && s.connection.database == o.connection.database
                    }
                    _ => false,
                })
                .map(|(name, _)| name)
                .collect();
            o.odoo_owns = same_db
                .iter()
                .flat_map(|name| ownership.owned_by(name))
                .collect();
        }
        sink
    }

    /// The ownership rules: `[ownership]` over the defaults of [`default_owner`].
    fn ownership(&self, errs: &mut Vec<ConfigError>) -> Ownership {
        let mut out = Ownership::default();
        for fact in Fact::ALL {
            let owners: std::collections::BTreeSet<String> = self
                .sources
                .iter()
                .filter(|(_, src)| default_owner(*fact, src))
                .map(|(name, _)| name.clone())
                .collect();
            out.owners.insert(*fact, owners);
        }
        for (name, owners) in &self.ownership {
            let fact = match name.parse::<Fact>() {
                Ok(f) => f,
                Err(e) => {
                    errs.push(ConfigError::new(format!("ownership.{name}"), e));
                    continue;
                }
            };
            for o in owners {
                if o != "api" && !self.sources.contains_key(o) {
                    errs.push(ConfigError::new(
                        format!("ownership.{name}"),
                        format!("no source named `{o}`"),
                    ));
                }
            }
            out.owners.insert(fact, owners.iter().cloned().collect());
        }
        out
    }
}
