//! Prometheus metrics, kept in plain atomics and maps: technical (ingest outcomes, ack
//! latency, delivery attempts) plus gauges read from the store at scrape time, and the
//! standard `process_*` metrics read from `/proc/self` at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS_MS: [f64; 14] = [
    0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0,
];

/// A latency histogram with fixed buckets.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_MS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, out: &mut String) {
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {}",
                b / 1000.0,
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {n}");
    }
}

/// A counter family keyed by label values.
#[derive(Default)]
pub struct Counter(Mutex<BTreeMap<Vec<String>, u64>>);

impl Counter {
    /// Adds one for these label values.
    pub fn inc(&self, labels: &[&str]) {
        if let Ok(mut m) = self.0.lock() {
            // Series are few (sources × outcomes): find an existing one without allocating
            // a key; allocate only for a new series.
            let found = m
                .iter_mut()
                .find(|(k, _)| k.iter().map(String::as_str).eq(labels.iter().copied()));
            match found {
                Some((_, n)) => *n += 1,
                None => {
                    m.insert(labels.iter().map(|s| (*s).to_owned()).collect(), 1);
                }
            }
        }
    }

    /// Adds `n` for these label values.
    pub fn add(&self, labels: &[&str], n: u64) {
        if n == 0 {
            return;
        }
        if let Ok(mut m) = self.0.lock() {
            let key: Vec<String> = labels.iter().map(|s| (*s).to_owned()).collect();
            *m.entry(key).or_insert(0) += n;
        }
    }

    /// The sum over the series whose label values satisfy `keep`.
    pub fn sum(&self, keep: impl Fn(&[String]) -> bool) -> u64 {
        self.0
            .lock()
            .map(|m| m.iter().filter(|(k, _)| keep(k)).map(|(_, n)| *n).sum())
            .unwrap_or(0)
    }

    /// Current value (tests).
    pub fn get(&self, labels: &[&str]) -> u64 {
        let key: Vec<String> = labels.iter().map(|s| (*s).to_owned()).collect();
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(&key).copied())
            .unwrap_or(0)
    }

    fn render(&self, name: &str, help: &str, label_names: &[&str], out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        if let Ok(m) = self.0.lock() {
            for (vals, n) in m.iter() {
                let _ = writeln!(out, "{name}{{{}}} {n}", labels(label_names, vals));
            }
        }
    }
}

fn labels(names: &[&str], vals: &[String]) -> String {
    names
        .iter()
        .zip(vals)
        .map(|(n, v)| format!("{n}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(",")
}

/// All of Waybill's own metrics.
#[derive(Default)]
pub struct Metrics {
    /// Ingest requests by source and outcome (accepted, duplicate, rejected code).
    pub ingests: Counter,
    /// Ingest requests refused before reading (429), by source and the limit that refused
    /// them (`rate`, `in_flight`).
    pub throttled: Counter,
    /// Time from request received to acknowledgement sent.
    pub ack_latency: Histogram,
    /// Delivery attempts by sink and outcome (delivered, retry, dead).
    pub deliveries: Counter,
    /// Circuit state per sink (0 closed, 1 open, 2 half-open).
    pub circuit: Mutex<BTreeMap<String, u8>>,
    /// Operator controls (paused sinks) and live health, shared with the API.
    pub controls: crate::control::Controls,
    /// Payloads rejected before their sender was authenticated (unknown source, too
    /// large, failed authentication), by reason code: kept as bounded samples only.
    pub unauthenticated: Counter,
    /// The HTTP listener's connections.
    pub http: HttpStats,
    /// Rows purged by retention, by kind (`raw_payloads`, `rejected_payloads`,
    /// `delivered`, `dead_letters`, `audit`).
    pub retention: Counter,
}

/// What the HTTP listener counts: connections open and refused, and connections closed
/// by a timeout.
#[derive(Default)]
pub struct HttpStats {
    /// Connections open now.
    pub open: AtomicI64,
    /// Connections accepted and closed at once because `[server].max_connections` were
    /// open.
    pub refused: AtomicU64,
    /// Connections (or request bodies) ended by a timeout, by kind (`header`, `body`,
    /// `idle`, `shutdown`).
    pub timeouts: Counter,
    /// TLS certificate reloads, by outcome (`loaded`, `rejected`).
    pub tls_reloads: Counter,
    /// The served TLS certificate's expiry, in seconds since the Unix epoch (0: no TLS,
    /// or unknown).
    pub tls_not_after: AtomicI64,
}

impl Metrics {
    /// Renders the Prometheus text format, with store gauges appended by the caller.
    pub fn render(&self, depths: &waybill_store::Depths) -> String {
        let mut out = String::new();
        self.ingests.render(
            "waybill_ingest_total",
            "Payloads received, by source and outcome.",
            &["source", "outcome"],
            &mut out,
        );
        self.throttled.render(
            "waybill_ingest_throttled_total",
            "Ingest requests refused with 429 before reading, by source and limit.",
            &["source", "limit"],
            &mut out,
        );
        self.ack_latency
            .render("waybill_ingest_ack_seconds", &mut out);
        self.unauthenticated.render(
            "waybill_ingest_unauthenticated_total",
            "Payloads rejected before their sender was authenticated (kept as bounded samples only), by reason.",
            &["reason"],
            &mut out,
        );
        let _ = writeln!(
            out,
            "# HELP waybill_http_connections HTTP connections open.\n# TYPE waybill_http_connections gauge\nwaybill_http_connections {}",
            self.http.open.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP waybill_http_connections_refused_total HTTP connections closed at once because max_connections were open.\n# TYPE waybill_http_connections_refused_total counter\nwaybill_http_connections_refused_total {}",
            self.http.refused.load(Ordering::Relaxed)
        );
        self.http.timeouts.render(
            "waybill_http_timeouts_total",
            "HTTP connections or request bodies ended by a timeout, by kind.",
            &["kind"],
            &mut out,
        );
        self.http.tls_reloads.render(
            "waybill_tls_reloads_total",
            "TLS certificate reloads, by outcome (a rejected pair leaves the previous one served).",
            &["outcome"],
            &mut out,
        );
        let not_after = self.http.tls_not_after.load(Ordering::Relaxed);
        if not_after != 0 {
            let _ = writeln!(
                out,
                "# HELP waybill_tls_certificate_expiry_timestamp_seconds When the served TLS certificate expires.\n# TYPE waybill_tls_certificate_expiry_timestamp_seconds gauge\nwaybill_tls_certificate_expiry_timestamp_seconds {not_after}"
            );
        }
        self.retention.render(
            "waybill_retention_purged_total",
            "Rows purged by retention, by kind.",
            &["kind"],
            &mut out,
        );
        self.deliveries.render(
            "waybill_delivery_attempts_total",
            "Delivery attempts, by sink and outcome.",
            &["sink", "outcome"],
            &mut out,
        );
        let gauge =
            |out: &mut String, name: &str, help: &str, label: &str, rows: &[(String, i64)]| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                for (k, v) in rows {
                    let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {v}");
                }
            };
        // Every running sink appears, with 0 when nothing waits (the store only reports
        // sinks that have pending rows).
        let mut outbox = depths.outbox.clone();
        if let Ok(c) = self.circuit.lock() {
            for sink in c.keys() {
                if !outbox.iter().any(|(s, _)| s == sink) {
                    outbox.push((sink.clone(), 0));
                }
            }
        }
        outbox.sort();
        gauge(
            &mut out,
            "waybill_outbox_depth",
            "Pending deliveries per sink.",
            "sink",
            &outbox,
        );
        gauge(
            &mut out,
            "waybill_dead_letters",
            "Unreplayed dead letters per sink.",
            "sink",
            &depths.dead_letters,
        );
        gauge(
            &mut out,
            "waybill_shipments",
            "Shipments per state.",
            "state",
            &depths.shipments,
        );
        if let Ok(c) = self.circuit.lock() {
            let rows: Vec<(String, i64)> = c.iter().map(|(k, v)| (k.clone(), *v as i64)).collect();
            gauge(
                &mut out,
                "waybill_circuit_state",
                "Circuit breaker per sink: 0 closed, 1 open, 2 half-open.",
                "sink",
                &rows,
            );
        }
        if let Some(p) = crate::process::read() {
            render_process(&p, &mut out);
        }
        out
    }
}

/// The value of an unlabelled sample `name` in Prometheus text, such as [`Metrics::render`]
/// writes (a timestamp after the value is ignored).
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(' ')?
            .split_ascii_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// The standard Prometheus process metrics (names and help texts as the official client
/// libraries write them), for what `/proc/self` gave.
fn render_process(p: &crate::process::ProcessStats, out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {:.2}",
        p.cpu_seconds
    );
    if let Some(b) = p.resident_bytes {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {b}"
        );
    }
    if let Some(n) = p.open_fds {
        let _ = writeln!(
            out,
            "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {n}"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_unlabelled_sample_is_found_by_its_exact_name() {
        let text =
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
                    # TYPE process_cpu_seconds_total counter\n\
                    process_cpu_seconds_total_other 9\n\
                    waybill_ingest_total{source=\"a\",outcome=\"accepted\"} 3\n\
                    process_cpu_seconds_total 12.34\n";
        assert_eq!(metric_value(text, "process_cpu_seconds_total"), Some(12.34));
        assert_eq!(metric_value(text, "process_open_fds"), None);
        assert_eq!(
            metric_value("process_cpu_seconds_total x\n", "process_cpu_seconds_total"),
            None
        );
        assert_eq!(
            metric_value(
                "process_cpu_seconds_total 7.5 1700000000000\n",
                "process_cpu_seconds_total"
            ),
            Some(7.5),
            "a timestamp after the value"
        );
    }

    /// The process metrics are written with their TYPE lines and the values `/proc/self`
    /// gives: the CPU counter lies between readings taken just before and just after.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_metrics_are_exported() {
        // Some CPU time first, so that a counter stuck at zero cannot pass.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        while crate::process::read().unwrap().cpu_seconds == 0.0
            && std::time::Instant::now() < deadline
        {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        let m = Metrics::default();
        let before = crate::process::read().unwrap().cpu_seconds;
        let text = m.render(&waybill_store::Depths::default());
        let after = crate::process::read().unwrap().cpu_seconds;
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
        assert!(text.contains("# TYPE process_resident_memory_bytes gauge\n"));
        assert!(text.contains("# TYPE process_open_fds gauge\n"));
        let cpu = metric_value(&text, "process_cpu_seconds_total").unwrap();
        assert!(
            cpu > 0.0 && before <= cpu && cpu <= after,
            "{before} <= {cpu} <= {after}"
        );
        assert!(metric_value(&text, "process_resident_memory_bytes").unwrap() > 0.0);
        assert!(metric_value(&text, "process_open_fds").unwrap() >= 3.0);
    }
}
