//! The time the dispatcher schedules deliveries by, injected so that retries, circuit
//! breakers and due times can be tested under tokio's paused time.
//!
//! Two clocks are read: the wall clock, for the times kept in the store (when a retry is
//! due), and the monotonic clock, for the timers the dispatcher sleeps on. Production uses
//! [`SystemClock`]; a test pauses tokio's time and uses [`VirtualClock`], whose wall time
//! moves with the paused clock, so `tokio::time::advance` moves both together.

use time::OffsetDateTime;
use tokio::time::Instant;

/// A source of wall and monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// The wall-clock time (UTC).
    fn now_utc(&self) -> OffsetDateTime;

    /// The monotonic time. The dispatcher sleeps on tokio timers, so this must be tokio's
    /// clock (paused with it in tests).
    fn instant(&self) -> Instant;

    /// The wall-clock time in unix milliseconds, as the store keeps due times.
    fn now_ms(&self) -> i64 {
        i64::try_from(self.now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// The machine's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_utc(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that follows tokio's: its wall time is a fixed start plus the time tokio says
/// has passed since the clock was made. Under `tokio::time::pause()` both stand still
/// until tokio's time is advanced (by `tokio::time::advance` or by auto-advance).
#[derive(Debug, Clone, Copy)]
pub struct VirtualClock {
    wall: OffsetDateTime,
    start: Instant,
}

impl VirtualClock {
    /// A clock whose wall time is `wall` now.
    pub fn starting_at(wall: OffsetDateTime) -> Self {
        VirtualClock {
            wall,
            start: Instant::now(),
        }
    }
}

impl Clock for VirtualClock {
    fn now_utc(&self) -> OffsetDateTime {
        self.wall + Instant::now().duration_since(self.start)
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// A clock whose wall time moves only when told ([`ManualClock::advance`]): for tests
/// of durable timers that run the real runner on real tokio time. Its monotonic time is
/// tokio's.
#[derive(Debug, Clone)]
pub struct ManualClock {
    wall_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl ManualClock {
    /// A clock whose wall time is `wall` now.
    pub fn starting_at(wall: OffsetDateTime) -> Self {
        let ms = i64::try_from(wall.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        ManualClock {
            wall_ms: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(ms)),
        }
    }

    /// Moves the wall time forward.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.wall_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_utc(&self) -> OffsetDateTime {
        let ms = self.wall_ms.load(std::sync::atomic::Ordering::SeqCst);
        OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms)
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn now_ms(&self) -> i64 {
        self.wall_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn virtual_wall_time_moves_only_with_tokio_time() {
        let start = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = VirtualClock::starting_at(start);
        let t0 = clock.instant();
        assert_eq!(clock.now_ms(), 1_800_000_000_000);
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(clock.now_utc(), start + Duration::from_secs(300));
        assert_eq!(clock.instant() - t0, Duration::from_secs(300));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(clock.now_ms(), 1_800_000_301_500);
    }
}
