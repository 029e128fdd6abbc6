//! CPU per event during a bench run: the hub's (its `process_cpu_seconds_total` on
//! `/metrics`), the load generator's (this process, `/proc/self/stat`) and the machine's
//! (`/proc/stat`: busy, idle and waiting for I/O). Read before and after the timed phase;
//! what cannot be read (another system, a hub without the metric) is left out.

use super::CpuWatch;
use std::time::Duration;
use waybill_engine::metrics::metric_value;
use waybill_engine::process::{self, USER_HZ};

/// The machine's CPU time, all cores together, in `/proc/stat` ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineTicks {
    /// user + nice + system + irq + softirq + steal.
    pub busy: u64,
    /// idle.
    pub idle: u64,
    /// iowait: idle with I/O outstanding.
    pub iowait: u64,
}

/// The first line of `/proc/stat`: `cpu  user nice system idle iowait irq softirq steal
/// guest guest_nice` (guest time is already inside user). `None` for anything else.
pub fn parse_proc_stat(text: &str) -> Option<MachineTicks> {
    let line = text.lines().next()?;
    let mut fields = line.split_ascii_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 5 {
        return None;
    }
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(MachineTicks {
        busy: at(0) + at(1) + at(2) + at(5) + at(6) + at(7),
        idle: at(3),
        iowait: at(4),
    })
}

/// CPU readings at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// This process's CPU seconds.
    pub own: Option<f64>,
    /// The hub's CPU seconds, from its `/metrics`.
    pub hub: Option<f64>,
    /// The machine's ticks.
    pub machine: Option<MachineTicks>,
}

/// CPU read at the start of a timed phase, to be read again at its end.
pub(crate) struct Stopwatch {
    client: reqwest::Client,
    metrics_url: Option<String>,
    before: Sample,
}

impl Stopwatch {
    /// Reads CPU now, as `watch` says; `None` for [`CpuWatch::Off`].
    pub(crate) async fn start(watch: &CpuWatch) -> anyhow::Result<Option<Stopwatch>> {
        let metrics_url = match watch {
            CpuWatch::Off => return Ok(None),
            CpuWatch::InProcess => None,
            CpuWatch::Hub(url) => Some(url.clone()),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let before = sample(&client, metrics_url.as_deref()).await;
        Ok(Some(Stopwatch {
            client,
            metrics_url,
            before,
        }))
    }

    /// Reads CPU again; what the phase cost per accepted event (`events` of them).
    pub(crate) async fn stop(self, events: usize) -> PerEvent {
        let after = sample(&self.client, self.metrics_url.as_deref()).await;
        per_event(&self.before, &after, events)
    }
}

/// Reads the three; `metrics_url` is the hub's `/metrics` (None: the hub is this process).
pub async fn sample(client: &reqwest::Client, metrics_url: Option<&str>) -> Sample {
    let hub = match metrics_url {
        Some(url) => match client.get(url).send().await {
            Ok(r) if r.status().is_success() => r
                .text()
                .await
                .ok()
                .and_then(|t| metric_value(&t, "process_cpu_seconds_total")),
            _ => None,
        },
        None => None,
    };
    Sample {
        own: process::read().map(|p| p.cpu_seconds),
        hub,
        machine: std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| parse_proc_stat(&t)),
    }
}

/// Microseconds of CPU per accepted event between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerEvent {
    /// The hub's, when it was read both times.
    pub hub_us: Option<f64>,
    /// This process's.
    pub own_us: Option<f64>,
    /// The machine's busy, idle and iowait time, all cores together.
    pub machine_us: Option<(f64, f64, f64)>,
}

/// What the run between `before` and `after` cost per accepted event (`events`: how many
/// were accepted).
pub fn per_event(before: &Sample, after: &Sample, events: usize) -> PerEvent {
    let n = events.max(1) as f64;
    let us = |a: Option<f64>, b: Option<f64>| Some((b? - a?).max(0.0) * 1e6 / n);
    let ticks = |a: u64, b: u64| b.saturating_sub(a) as f64 / USER_HZ * 1e6 / n;
    PerEvent {
        hub_us: us(before.hub, after.hub),
        own_us: us(before.own, after.own),
        machine_us: match (before.machine, after.machine) {
            (Some(a), Some(b)) => Some((
                ticks(a.busy, b.busy),
                ticks(a.idle, b.idle),
                ticks(a.iowait, b.iowait),
            )),
            _ => None,
        },
    }
}

impl PerEvent {
    /// One line for the bench's report; `None` when nothing was measured. `self_hosted`:
    /// the hub runs in this process, so its time is inside this process's. "This machine"
    /// is the load generator's, which is the hub's too when the hub is on loopback.
    pub fn line(&self, self_hosted: bool) -> Option<String> {
        let mut parts = Vec::new();
        match (self_hosted, self.hub_us, self.own_us) {
            (true, _, Some(o)) => parts.push(format!(
                "this process (hub, sink, load generator) {o:.1} µs"
            )),
            (false, Some(h), Some(o)) => {
                parts.push(format!("hub {h:.1} µs, load generator {o:.1} µs"))
            }
            (false, Some(h), None) => parts.push(format!("hub {h:.1} µs")),
            (false, None, Some(o)) => parts.push(format!(
                "load generator {o:.1} µs (hub not read: no process_cpu_seconds_total from its /metrics)"
            )),
            _ => {}
        }
        if let Some((busy, idle, iowait)) = self.machine_us {
            parts.push(format!(
                "this machine {:.1} µs: busy {busy:.1}, idle {idle:.1}, iowait {iowait:.1}",
                busy + idle + iowait
            ));
        }
        (!parts.is_empty()).then(|| format!("cpu        per event: {}", parts.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_machine_line_is_read() {
        let text = "cpu  100 5 40 1000 20 3 2 1 7 0\ncpu0 50 2 20 500 10 1 1 0 0 0\nintr 1\n";
        assert_eq!(
            parse_proc_stat(text),
            Some(MachineTicks {
                busy: 100 + 5 + 40 + 3 + 2 + 1,
                idle: 1000,
                iowait: 20
            })
        );
        // An old kernel's five columns: no irq, softirq, steal.
        assert_eq!(
            parse_proc_stat("cpu 1 2 3 4 5\n"),
            Some(MachineTicks {
                busy: 6,
                idle: 4,
                iowait: 5
            })
        );
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4 5\n"), None);
        assert_eq!(parse_proc_stat("cpu 1 2 x 4 5\n"), None);
        assert_eq!(parse_proc_stat("cpu 1 2 3\n"), None);
        assert_eq!(parse_proc_stat(""), None);
    }

    #[test]
    fn costs_are_divided_by_the_events() {
        let before = Sample {
            own: Some(1.0),
            hub: Some(10.0),
            machine: Some(MachineTicks {
                busy: 1000,
                idle: 500,
                iowait: 100,
            }),
        };
        let after = Sample {
            own: Some(1.5),
            hub: Some(13.0),
            machine: Some(MachineTicks {
                busy: 1400,
                idle: 600,
                iowait: 150,
            }),
        };
        let p = per_event(&before, &after, 100_000);
        assert_eq!(p.hub_us, Some(30.0));
        assert_eq!(p.own_us, Some(5.0));
        assert_eq!(p.machine_us, Some((40.0, 10.0, 5.0)));
        let line = p.line(false).unwrap();
        assert_eq!(
            line,
            "cpu        per event: hub 30.0 µs, load generator 5.0 µs; this machine 55.0 µs: busy 40.0, idle 10.0, iowait 5.0"
        );
        assert!(p
            .line(true)
            .unwrap()
            .starts_with("cpu        per event: this process (hub, sink, load generator) 5.0 µs;"));
        let none = per_event(&Sample::default(), &Sample::default(), 10);
        assert_eq!(none.line(false), None);
        let no_hub = per_event(
            &Sample {
                hub: None,
                ..before
            },
            &after,
            100_000,
        );
        assert!(no_hub.line(false).unwrap().contains("hub not read"));
        let no_own = per_event(
            &Sample {
                own: None,
                ..before
            },
            &after,
            100_000,
        );
        assert!(no_own
            .line(false)
            .unwrap()
            .starts_with("cpu        per event: hub 30.0 µs; this machine"));
    }
}
