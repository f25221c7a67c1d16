//! The idle-timeout rule, whole: what counts as activity, when a session
//! has been idle too long, when to warn, and how far a user may move their
//! own timeout.
//!
//! A session's idle time is the time since its last *activity*. What counts
//! is the operator's `--idle-policy`:
//!
//! - `input` (the default): the user typed, pasted or resized the terminal.
//!   Program output never counts: a `tail -f` nobody watches is exactly the
//!   kind of forgotten session the timeout exists to end.
//! - `activity`: input, and output too, so an unattended dashboard (socktop)
//!   stays up while it draws, and ends once it goes quiet.
//!
//! Each session checks at its next threshold (warning or end) and at least
//! every `--idle-check-interval`, so it ends on time, and between `timeout`
//! and `timeout + interval` after the last activity at the latest. It logs
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

/// What counts as activity (`--idle-policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// Keys, paste and resizes only.
    #[default]
    Input,
    /// Output from the program too.
    Activity,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "input" => Some(Policy::Input),
            "activity" => Some(Policy::Activity),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::Input => "input",
            Policy::Activity => "activity",
        }
    }

    /// What an idle session lacked, for the message that ends it.
    pub fn nothing(self) -> &'static str {
        match self {
            Policy::Input => "no input",
            Policy::Activity => "no input or output",
        }
    }
}

/// One session's clocks: the last input (for the operator's table) and the
/// last activity under the policy (for the rule).
#[derive(Debug, Default)]
pub struct Activity {
    policy: Policy,
    last_input: IdleClock,
    last_activity: IdleClock,
}

impl Activity {
    pub fn new(policy: Policy) -> Activity {
        Activity {
            policy,
            ..Activity::default()
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The user typed, pasted or resized.
    pub fn input(&self) {
        self.last_input.touch();
        self.last_activity.touch();
    }

    /// The program wrote output: activity only under `Policy::Activity`.
    pub fn output(&self) {
        if self.policy == Policy::Activity {
            self.last_activity.touch();
        }
    }

    /// Time since the user's last input.
    pub fn since_input(&self) -> Duration {
        self.last_input.idle_for()
    }

    /// The clock the rule reads.
    pub fn clock(&self) -> &IdleClock {
        &self.last_activity
    }
}

/// A user's own idle timeout (`?idle_timeout=`) within what the operator
/// allows: a request above `max` (by default the operator's timeout), or for
/// none at all (zero), gets the maximum. No request: the operator's timeout.
pub fn clamp(
    requested: Option<Duration>,
    default: Option<Duration>,
    max: Option<Duration>,
) -> Option<Duration> {
    let Some(asked) = requested else {
        return default;
    };
    match (asked.is_zero(), max.or(default)) {
        (_, None) => (!asked.is_zero()).then_some(asked),
        (true, Some(max)) => Some(max),
        (false, Some(max)) if asked > max => Some(max),
        (false, Some(_)) => Some(asked),
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
    fn per_user_idle_timeouts_are_clamped() {
        let secs = |n| Some(Duration::from_secs(n));
        let (default, max) = (secs(300), secs(3600));
        assert_eq!(clamp(None, default, max), secs(300));
        assert_eq!(clamp(secs(60), default, max), secs(60));
        assert_eq!(clamp(secs(7200), default, max), secs(3600));
        assert_eq!(clamp(Some(Duration::ZERO), default, max), secs(3600));
        // Without --max-idle-timeout, the default is the ceiling.
        assert_eq!(clamp(secs(900), secs(300), None), secs(300));
        // With no timeout at all, a client may still ask for one.
        assert_eq!(clamp(secs(60), None, None), secs(60));
        assert_eq!(clamp(Some(Duration::ZERO), None, None), None);
    }

    #[test]
    fn output_counts_only_under_the_activity_policy() {
        let input = Activity::new(Policy::Input);
        let activity = Activity::new(Policy::Activity);
        std::thread::sleep(Duration::from_millis(30));
        input.output();
        activity.output();
        assert!(input.clock().idle_for() >= Duration::from_millis(30));
        assert!(activity.clock().idle_for() < input.clock().idle_for());
        assert!(activity.since_input() >= Duration::from_millis(30));
    }

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
