//! `[telemetry]`: where trace spans go. Without `otlp_endpoint` tracing is off and costs
//! nothing; with it, a background task exports the spans over OTLP/HTTP (JSON encoding)
//! in batches (`waybill_engine::telemetry::otlp`).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use waybill_engine::config::ConfigError;
use waybill_engine::duration;
use waybill_engine::secret::SecretRef;
use waybill_engine::telemetry::otlp::{run_exporter, ExportSettings};
use waybill_engine::telemetry::Tracer;

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP endpoint, e.g. `http://127.0.0.1:4318`: spans are POSTed to
    /// `<endpoint>/v1/traces` (a URL already ending in `/v1/traces` is used as it is).
    /// Absent: tracing is off.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The resource's `service.name` (default `waybill`).
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Headers sent with every export (an API key of a hosted backend); a value that
    /// starts with `env:`, `file:` or `plain:` is a secret reference, any other is used
    /// as written.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Most spans in one export request (default 512).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest a finished span waits for its export (default 5s).
    #[serde(default = "default_export_interval", deserialize_with = "duration::de")]
    pub export_interval: Duration,
    /// Finished spans waiting for export; beyond it spans are dropped and counted, never
    /// waited for (default 8192).
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Timeout of one export request (default 10s).
    #[serde(default = "default_timeout", deserialize_with = "duration::de")]
    pub timeout: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: default_service_name(),
            headers: BTreeMap::new(),
            batch_size: default_batch_size(),
            export_interval: default_export_interval(),
            queue_size: default_queue_size(),
            timeout: default_timeout(),
        }
    }
}

fn default_service_name() -> String {
    "waybill".into()
}
fn default_batch_size() -> usize {
    512
}
fn default_export_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_queue_size() -> usize {
    8192
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Most spans in one export request.
pub const MAX_BATCH: usize = 10_000;

/// A validated `[telemetry]` with an endpoint: what [`start`] needs.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// The full URL spans are POSTed to (`…/v1/traces`).
    pub url: String,
    /// Export headers, values resolved.
    pub headers: reqwest::header::HeaderMap,
    /// Batching and the service name.
    pub export: ExportSettings,
    /// Queue of finished spans.
    pub queue_size: usize,
    /// Timeout of one export request.
    pub timeout: Duration,
}

impl TelemetryConfig {
    /// Checks the section (no network); `None` when tracing is off. Errors are pushed
    /// to `errs` with their `telemetry.<key>` path.
    pub fn validate(&self, errs: &mut Vec<ConfigError>) -> Option<TelemetrySettings> {
        let endpoint = self.otlp_endpoint.as_deref()?.trim();
        let mut mine = Vec::new();
        let mut bad = |key: &str, msg: String| {
            mine.push(ConfigError::new(format!("telemetry.{key}"), msg));
        };
        let url_ok = ["http://", "https://"]
            .iter()
            .any(|p| endpoint.len() > p.len() && endpoint.starts_with(p))
            && reqwest::Url::parse(endpoint).is_ok();
        if !url_ok {
            bad(
                "otlp_endpoint",
                format!("`{endpoint}` is not an http:// or https:// URL"),
            );
        }
        if self.service_name.trim().is_empty() {
            bad("service_name", "must not be empty".into());
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            bad("batch_size", format!("must be 1 to {MAX_BATCH}"));
        }
        if self.export_interval < Duration::from_millis(10) {
            bad("export_interval", "must be at least 10ms".into());
        }
        if self.queue_size < self.batch_size {
            bad("queue_size", "must be at least batch_size".into());
        }
        if self.timeout.is_zero() {
            bad("timeout", "must be more than zero".into());
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &self.headers {
            let key = format!("headers.{name}");
            let Ok(hname) = reqwest::header::HeaderName::from_bytes(name.as_bytes()) else {
                bad(&key, "not a valid header name".into());
                continue;
            };
            let is_ref = ["env:", "file:", "plain:"]
                .iter()
                .any(|p| value.starts_with(p));
            let resolved = if is_ref {
                match SecretRef(value.clone()).resolve() {
                    Ok(s) => s.expose().to_owned(),
                    Err(e) => {
                        bad(&key, e);
                        continue;
                    }
                }
            } else {
                value.clone()
            };
            match reqwest::header::HeaderValue::from_str(&resolved) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    headers.insert(hname, v);
                }
                // Never repeat the value: it may be a secret.
                Err(_) => bad(&key, "the value is not a valid header value".into()),
            }
        }
        if !mine.is_empty() {
            errs.extend(mine);
            return None;
        }
        let base = endpoint.trim_end_matches('/');
        let url = if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        };
        Some(TelemetrySettings {
            url,
            headers,
            export: ExportSettings {
                service_name: self.service_name.trim().to_owned(),
                batch_size: self.batch_size,
                interval: self.export_interval,
            },
            queue_size: self.queue_size,
            timeout: self.timeout,
        })
    }
}

/// The running exporter (or nothing, when tracing is off).
pub struct Telemetry {
    tracer: Tracer,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

/// Starts exporting when `settings` is given; off otherwise.
pub fn start(settings: Option<TelemetrySettings>) -> anyhow::Result<Telemetry> {
    let Some(s) = settings else {
        return Ok(Telemetry {
            tracer: Tracer::off(),
            running: None,
        });
    };
    let client = reqwest::Client::builder()
        .timeout(s.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| anyhow::anyhow!("telemetry: http client: {e}"))?;
    let (tracer, queue) = Tracer::new(s.queue_size);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (url, headers) = (s.url.clone(), s.headers.clone());
    tracing::info!(url = %url, service = %s.export.service_name, "exporting traces over OTLP/HTTP");
    let task = tokio::spawn(run_exporter(
        queue,
        s.export,
        async {
            let _ = stop_rx.await;
        },
        move |body: Vec<u8>| {
            let req = client
                .post(url.as_str())
                .headers(headers.clone())
                .header("content-type", "application/json")
                .body(body);
            async move {
                let resp = req.send().await.map_err(|e| {
                    let mut m = e.to_string();
                    if let Some(u) = e.url() {
                        m = m.replace(u.as_str(), "<endpoint>");
                    }
                    m
                })?;
                match resp.status().as_u16() {
                    200..=299 => Ok(()),
                    s => Err(format!("the collector answered HTTP {s}")),
                }
            }
        },
    ));
    Ok(Telemetry {
        tracer,
        running: Some((stop_tx, task)),
    })
}

impl Telemetry {
    /// The tracer spans are recorded with (off when tracing is off).
    pub fn tracer(&self) -> Tracer {
        self.tracer.clone()
    }

    /// Exports what is queued and stops (waits at most `timeout` plus a second).
    pub async fn shutdown(self, timeout: Duration) {
        if let Some((stop, task)) = self.running {
            let _ = stop.send(());
            if tokio::time::timeout(timeout + Duration::from_secs(1), task)
                .await
                .is_err()
            {
                tracing::warn!("trace export did not finish in time; the last spans are lost");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(toml_text: &str) -> TelemetryConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn off_without_an_endpoint() {
        let mut errs = Vec::new();
        assert!(TelemetryConfig::default().validate(&mut errs).is_none());
        assert!(errs.is_empty());
    }

    #[test]
    fn the_endpoint_gets_the_traces_path_and_headers_resolve() {
        let mut errs = Vec::new();
        let s = cfg(r#"otlp_endpoint = "http://127.0.0.1:4318/"
            headers = { "x-scope-orgid" = "tenant-1", authorization = "plain:Bearer t0k" }"#)
        .validate(&mut errs)
        .unwrap();
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(s.url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(s.headers["authorization"], "Bearer t0k");
        assert_eq!(s.headers["x-scope-orgid"], "tenant-1");
        assert_eq!(s.export.service_name, "waybill");
        assert_eq!(s.export.batch_size, 512);
        let full = cfg(r#"otlp_endpoint = "https://otlp.example/v1/traces""#)
            .validate(&mut errs)
            .unwrap();
        assert_eq!(full.url, "https://otlp.example/v1/traces");
    }

    #[test]
    fn every_mistake_is_reported_with_its_key() {
        let mut errs = Vec::new();
        let got = cfg(r#"otlp_endpoint = "grpc://collector:4317"
            service_name = " "
            batch_size = 0
            export_interval = "1ms"
            headers = { "bad name" = "x", authorization = "env:WAYBILL_TEST_NO_SUCH_VAR_42" }"#)
        .validate(&mut errs);
        assert!(got.is_none());
        let keys: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for k in [
            "telemetry.otlp_endpoint",
            "telemetry.service_name",
            "telemetry.batch_size",
            "telemetry.export_interval",
            "telemetry.headers.bad name",
            "telemetry.headers.authorization",
        ] {
            assert!(
                keys.iter().any(|e| e.contains(k)),
                "{k} missing in {keys:?}"
            );
        }
    }
}
