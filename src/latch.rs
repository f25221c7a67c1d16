//! Waiting for a condition that another task makes true, without a race.
//!
//! The pattern is always the same: check, register a listener, check again,
//! then sleep. Registering before the second check is what makes it correct:
//! a change between the two checks notifies the listener, so the wakeup
//! cannot be lost. It is written once here; everything that waits on a
//! flag, a counter or a window (shutdown, an operator's kill, the end of the
//! last session, the output pump's flow control) uses it.

use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

/// Completes once `cond` holds; `event` must be notified whenever `cond`
/// may have become true.
pub async fn wait_until(event: &Event, cond: impl Fn() -> bool) {
    loop {
        if cond() {
            return;
        }
        let listener = event.listen();
        if cond() {
            return;
        }
        listener.await;
    }
}

/// A one-way flag: set once, waited on by any number of tasks.
#[derive(Debug, Default)]
pub struct Latch {
    set: AtomicBool,
    event: Event,
}

impl Latch {
    /// Sets the flag and wakes every waiter. Returns false if it was set already.
    pub fn set(&self) -> bool {
        let first = !self.set.swap(true, Ordering::AcqRel);
        if first {
            self.event.notify(usize::MAX);
        }
        first
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Completes when the flag is set (at once if it already is).
    pub async fn wait(&self) {
        wait_until(&self.event, || self.is_set()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latch_wakes_waiters_set_before_or_after() {
        let latch = std::sync::Arc::new(Latch::default());
        let waiter = {
            let latch = std::sync::Arc::clone(&latch);
            std::thread::spawn(move || async_std::task::block_on(latch.wait()))
        };
        assert!(latch.set());
        assert!(!latch.set());
        waiter.join().unwrap();
        async_std::task::block_on(latch.wait());
    }
}
