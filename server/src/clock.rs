//! The server's clock. Session rules work in Unix milliseconds; timers sleep on tokio's
//! clock. [`Clock`] ties the two together at start-up, so that a test that pauses and
//! advances tokio's time moves session time with it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Converts between tokio instants and Unix milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_ms: u64,
}

impl Clock {
    /// A clock reading the system time now.
    pub fn start() -> Self {
        let start_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64);
        Self { start: Instant::now(), start_ms }
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.start_ms + self.start.elapsed().as_millis() as u64
    }

    /// The tokio instant of a Unix-milliseconds time.
    pub fn instant_at(&self, unix_ms: u64) -> Instant {
        self.start + Duration::from_millis(unix_ms.saturating_sub(self.start_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn session_time_follows_tokio_time() {
        let clock = Clock::start();
        let before = clock.now_ms();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now_ms() - before, 90_000);
        assert!(clock.instant_at(before + 1_000) <= Instant::now());
    }
}
