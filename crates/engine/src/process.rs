//! The process's own CPU time, resident memory and open file descriptors, read from
//! Linux's `/proc/self` — the standard Prometheus `process_*` metrics. Where `/proc` is
//! not there (other systems), every reading is `None` and the metrics are left out.

/// Clock ticks per second of the times in `/proc` (`USER_HZ`). Linux fixes it at 100 for
/// user space on x86, ARM and its other common architectures (alpha, with 1024, is the
/// exception); the Prometheus client libraries read `/proc/self/stat` with the same
/// constant (prometheus/procfs, `userHZ`).
pub const USER_HZ: f64 = 100.0;

/// Readings of this process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time of all its threads, living and ended, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub resident_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
}

/// Reads this process's stats; `None` where `/proc/self/stat` cannot be read or parsed.
pub fn read() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let cpu_seconds = cpu_seconds_from_stat(&stat)?;
    let resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| resident_bytes_from_status(&s));
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    Some(ProcessStats {
        cpu_seconds,
        resident_bytes,
        open_fds,
    })
}

/// `utime + stime` of a `/proc/<pid>/stat` line, in seconds. The command name (field 2)
/// is in parentheses and may itself hold spaces and parentheses, so fields are counted
/// from the last `)`: after it come field 3 (state) onwards, utime and stime being fields
/// 14 and 15 (proc(5)).
pub fn cpu_seconds_from_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The `VmRSS:` line of `/proc/<pid>/status` (kB), in bytes.
pub fn resident_bytes_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_ascii_whitespace();
    let kib: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => Some(kib * 1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A real line's shape, with a command name holding a space and a `)`: utime 1234
    /// and stime 56 ticks are 12.9 s.
    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1500 0 3 0 1234 56 0 0 20 0 9 0 100 2000000 500 18446744073709551615 1 1 0 0 0 0 0 4096 17103 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(cpu_seconds_from_stat(line), Some(12.9));
        assert_eq!(cpu_seconds_from_stat("4242 (x) S 1 2"), None, "too short");
        assert_eq!(cpu_seconds_from_stat("no parenthesis at all"), None);
        let bad = line.replace(" 1234 ", " x ");
        assert_eq!(cpu_seconds_from_stat(&bad), None, "not a number");
    }

    #[test]
    fn resident_memory_is_read_in_kib() {
        let status = "Name:\twaybill\nVmPeak:\t  999 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n";
        assert_eq!(resident_bytes_from_status(status), Some(20480 * 1024));
        assert_eq!(resident_bytes_from_status("Name:\tx\n"), None);
        assert_eq!(resident_bytes_from_status("VmRSS:\t12 pages\n"), None);
    }

    /// On Linux the readings are there and CPU time only grows: spinning until it moves
    /// (at most 10 s) must see it move by at least one tick.
    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_measured() {
        let first = read().unwrap();
        assert!(first.resident_bytes.unwrap() > 0);
        assert!(
            first.open_fds.unwrap() >= 3,
            "stdin, stdout, stderr at least"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        let later = loop {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let now = read().unwrap();
            if now.cpu_seconds > first.cpu_seconds || std::time::Instant::now() > deadline {
                break now;
            }
        };
        // Whole ticks: (a + 1) / 100 can come out below a / 100 + 0.01 in floating point.
        let ticks = |s: f64| (s * USER_HZ).round() as u64;
        assert!(
            ticks(later.cpu_seconds) > ticks(first.cpu_seconds),
            "{} then {}",
            first.cpu_seconds,
            later.cpu_seconds
        );
    }
}
