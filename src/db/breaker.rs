//! Knowing the database is down: after a failed connection or a lost one,
//! callers are answered at once instead of each waiting for the pool's
//! timeout, while one probe at a time finds out whether it is back.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// How often a caller may probe a database that is down.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// How long a probe waits for a connection.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Shared by the pool's connection manager (which sees connections fail
/// and succeed) and every caller.
#[derive(Debug)]
pub struct Breaker {
    epoch: Instant,
    /// Milliseconds since `epoch` when the database was found down; 0 while up.
    down_since: AtomicU64,
    /// Milliseconds since `epoch` before which no new probe starts.
    next_probe: AtomicU64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            down_since: AtomicU64::new(0),
            next_probe: AtomicU64::new(0),
        }
    }
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// A connection could not be made, or one in use was lost.
    pub fn record_failure(&self) {
        let now = self.now_ms();
        if self
            .down_since
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            log::warn!("the database is not answering; answering 503 until a probe reaches it");
            self.next_probe
                .store(now + PROBE_INTERVAL.as_millis() as u64, Ordering::Release);
        }
    }

    /// A connection was made.
    pub fn record_success(&self) {
        if self.down_since.swap(0, Ordering::AcqRel) != 0 {
            log::info!("the database answers again");
        }
    }

    /// Whether the database is known to be down.
    pub fn is_down(&self) -> bool {
        self.down_since.load(Ordering::Acquire) != 0
    }

    /// Whether a caller may use the database now: always while it is up;
    /// while it is down, once per [`PROBE_INTERVAL`], to start a probe.
    pub fn admit(&self) -> bool {
        if !self.is_down() {
            return true;
        }
        let now = self.now_ms();
        let next = self.next_probe.load(Ordering::Acquire);
        now >= next
            && self
                .next_probe
                .compare_exchange(
                    next,
                    now + PROBE_INTERVAL.as_millis() as u64,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn while_down_one_caller_per_interval_probes() {
        let breaker = Breaker::default();
        assert!(breaker.admit() && breaker.admit(), "up: everyone goes");
        breaker.record_failure();
        assert!(!breaker.admit(), "just found down: nobody goes");
        std::thread::sleep(PROBE_INTERVAL + Duration::from_millis(20));
        assert!(breaker.admit(), "one probe after the interval");
        assert!(!breaker.admit(), "and only one");
        breaker.record_success();
        assert!(breaker.admit() && breaker.admit(), "back up: everyone goes");
    }
}
