//! The idle-timeout rule.
//!
//! A session's idle time is the time since the user last did something:
//! typed or pasted (any input), or resized the terminal. Output from the
//! program never counts: a `tail -f` nobody watches is exactly the kind of
//! forgotten session the timeout exists to end. Each session checks every
//! `--idle-check-interval`, so it ends between `timeout` and
//! `timeout + interval` after the last input (in practice on time: it also
//! wakes at its next threshold), and logs
//! `Terminal idle timeout reached (<duration> idle), stopping session`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When the user was last active. Shared by the input pump (which touches
/// it) and the idle watch (which reads it), so it is lock-free.
#[derive(Debug)]
pub struct IdleClock {
    origin: Instant,
    /// Milliseconds after `origin` of the last user activity.
    last_ms: AtomicU64,
    /// Notified on every touch, so a watcher that has sent a warning learns
    /// at once that the user is back (and can warn again before the end).
    touched: event_listener::Event,
}

impl Default for IdleClock {
    fn default() -> Self {
        IdleClock {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            touched: event_listener::Event::new(),
        }
    }
}

impl IdleClock {
    /// Records user activity now.
    pub fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
        // Cheap when nobody listens, which is whenever no warning is out.
        self.touched.notify(usize::MAX);
    }

    /// Completes at the next `touch`.
    pub fn touched(&self) -> event_listener::EventListener {
        self.touched.listen()
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

/// Where a session stands against its idle timeout.
#[derive(Debug, PartialEq, Eq)]
pub enum Status {
    Active,
    /// Within the warning period: this much time is left.
    Warn(Duration),
    /// Idle for this long, at or past the timeout: end it.
    Expired(Duration),
}

/// The rule, with the optional warning period before the end.
pub fn check(clock: &IdleClock, timeout: Duration, warning: Option<Duration>) -> Status {
    if let Some(idle) = expired(clock, timeout) {
        return Status::Expired(idle);
    }
    let idle = clock.idle_for();
    match warning {
        Some(w) if idle + w >= timeout => Status::Warn(timeout - idle),
        _ => Status::Active,
    }
}

/// When to look again: at the next threshold (warning or end) if that comes
/// sooner than the check interval, so warnings and ends are on time; never
/// later than the interval, so cleared warnings are noticed.
pub fn next_check(
    clock: &IdleClock,
    timeout: Duration,
    warning: Option<Duration>,
    warned: bool,
    interval: Duration,
) -> Duration {
    let idle = clock.idle_for();
    let threshold = match warning {
        Some(w) if !warned => timeout.saturating_sub(w),
        _ => timeout,
    };
    let until = threshold.saturating_sub(idle);
    until.min(interval).max(Duration::from_millis(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock last touched `ago`, so a test need not sleep to age one. The
    /// bands below are seconds wide, so no descheduling of the test thread
    /// between two lines can move a clock out of the one it is checked in.
    fn idle_since(ago: Duration) -> IdleClock {
        IdleClock {
            origin: Instant::now()
                .checked_sub(ago)
                .expect("the monotonic clock is older than the test's ages"),
            last_ms: AtomicU64::new(0),
            touched: event_listener::Event::new(),
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn touch_resets_idle_time() {
        let c = idle_since(30 * S);
        assert!(expired(&c, 10 * S).is_some());
        c.touch();
        assert!(expired(&c, 10 * S).is_none());
        assert!(c.idle_for() < 10 * S);
    }

    #[test]
    fn warning_then_expiry() {
        let t = 20 * S;
        let w = Some(10 * S);
        let c = IdleClock::default();
        assert_eq!(check(&c, t, w), Status::Active);
        assert!(next_check(&c, t, w, false, 60 * S) <= 10 * S);
        let c = idle_since(15 * S);
        assert!(matches!(check(&c, t, w), Status::Warn(left) if left <= 5 * S));
        let c = idle_since(30 * S);
        assert!(matches!(check(&c, t, w), Status::Expired(_)));
        c.touch();
        assert_eq!(check(&c, t, w), Status::Active);
    }
}
