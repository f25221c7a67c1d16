//! The set of running sessions as a whole: how many may run, and the
//! server-wide shutdown every session listens for.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use event_listener::Event;

#[derive(Debug)]
pub struct Registry {
    max: usize,
    active: AtomicUsize,
    shutting_down: AtomicBool,
    /// Notified once, when shutdown begins.
    shutdown: Event,
    /// Notified whenever a session ends, so shutdown can wait for the last.
    ended: Event,
}

/// A reserved place for one session; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    registry: Arc<Registry>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.active.fetch_sub(1, Ordering::AcqRel);
        self.registry.ended.notify(usize::MAX);
    }
}

impl Registry {
    pub fn new(max: usize) -> Arc<Registry> {
        Arc::new(Registry {
            max,
            active: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            shutdown: Event::new(),
            ended: Event::new(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Reserves a place, unless `max` sessions are running or we are shutting down.
    pub fn try_reserve(self: &Arc<Self>) -> Option<Slot> {
        if self.is_shutting_down() {
            return None;
        }
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot {
                registry: Arc::clone(self),
            })
    }

    pub fn begin_shutdown(&self) {
        if !self.shutting_down.swap(true, Ordering::AcqRel) {
            self.shutdown.notify(usize::MAX);
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Completes when shutdown begins.
    pub async fn shutdown_requested(&self) {
        loop {
            if self.is_shutting_down() {
                return;
            }
            let listener = self.shutdown.listen();
            if self.is_shutting_down() {
                return;
            }
            listener.await;
        }
    }

    /// Completes when no session is running.
    pub async fn all_ended(&self) {
        loop {
            if self.active() == 0 {
                return;
            }
            let listener = self.ended.listen();
            if self.active() == 0 {
                return;
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_and_released() {
        let r = Registry::new(2);
        let a = r.try_reserve().unwrap();
        let _b = r.try_reserve().unwrap();
        assert!(r.try_reserve().is_none());
        drop(a);
        assert!(r.try_reserve().is_some());
        r.begin_shutdown();
        assert!(r.try_reserve().is_none());
    }
}
