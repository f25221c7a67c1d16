//! The idle-timeout rule.
//!
//! A session's idle time is the time since the user last did something:
//! typed or pasted (any input), or resized the terminal. Output from the
//! program never counts: a `tail -f` nobody watches is exactly the kind of
//! forgotten session the timeout exists to end. Each session checks every
//! `--idle-check-interval`, so it ends between `timeout` and
//! `timeout + interval` after the last input, and logs
//! `Terminal idle timeout reached (<duration> idle), stopping session`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_timer::Delay;

/// When the user was last active. Shared by the input pump (which touches
/// it) and the idle watch (which reads it), so it is lock-free.
#[derive(Debug)]
pub struct IdleClock {
    origin: Instant,
    /// Milliseconds after `origin` of the last user activity.
    last_ms: AtomicU64,
}

impl Default for IdleClock {
    fn default() -> Self {
        IdleClock {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl IdleClock {
    /// Records user activity now.
    pub fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Time since the last user activity (or since the session started).
    pub fn idle_for(&self) -> Duration {
        let now = self.origin.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The rule itself: has a session with this clock been idle for `timeout`?
pub fn expired(clock: &IdleClock, timeout: Duration) -> Option<Duration> {
    let idle = clock.idle_for();
    (idle >= timeout).then_some(idle)
}

/// Completes, returning the idle time, once the session has been idle for
/// `timeout`, checking every `interval`. Never completes with no timeout.
pub async fn watch(clock: &IdleClock, timeout: Option<Duration>, interval: Duration) -> Duration {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    loop {
        Delay::new(interval).await;
        if let Some(idle) = expired(clock, timeout) {
            return idle;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_resets_idle_time() {
        let c = IdleClock::default();
        std::thread::sleep(Duration::from_millis(30));
        assert!(expired(&c, Duration::from_millis(20)).is_some());
        c.touch();
        assert!(expired(&c, Duration::from_millis(20)).is_none());
        assert!(c.idle_for() < Duration::from_millis(20));
    }
}
