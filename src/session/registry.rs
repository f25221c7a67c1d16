//! The set of running sessions as a whole: how many may run, the table the
//! operator sees (`/api/sessions`, `webterm sessions`), and the server-wide
//! shutdown every session listens for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use event_listener::Event;

use super::Session;
use crate::latch::{wait_until, Latch};
use crate::metrics::Metrics;

#[derive(Debug)]
pub struct Registry {
    max: usize,
    /// Sessions holding a slot: listed ones, and ones starting or ending.
    active: AtomicUsize,
    table: Mutex<HashMap<String, Arc<Session>>>,
    metrics: Metrics,
    shutdown: Latch,
    /// Notified whenever a slot is freed, so shutdown can wait for the last.
    freed: Event,
}

/// A reserved place for one session; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    registry: Arc<Registry>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.active.fetch_sub(1, Ordering::AcqRel);
        self.registry.freed.notify(usize::MAX);
    }
}

impl Registry {
    pub fn new(max: usize) -> Arc<Registry> {
        Arc::new(Registry {
            max,
            active: AtomicUsize::new(0),
            table: Mutex::new(HashMap::new()),
            metrics: Metrics::new(),
            shutdown: Latch::default(),
            freed: Event::new(),
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        // Every update is a single insert or remove: a poisoned table is intact.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists a running session; `unlist` removes it when its teardown ends.
    pub(super) fn list(&self, session: Arc<Session>) {
        self.table().insert(session.id.clone(), session);
    }

    pub(super) fn unlist(&self, id: &str) {
        self.table().remove(id);
    }

    /// Every listed session, oldest first.
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        let mut all: Vec<_> = self.table().values().cloned().collect();
        all.sort_by_key(|s| s.started_at);
        all
    }

    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.table().get(id).cloned()
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
        self.shutdown.set();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_set()
    }

    /// Completes when shutdown begins.
    pub async fn shutdown_requested(&self) {
        self.shutdown.wait().await
    }

    /// Completes when no session is running.
    pub async fn all_ended(&self) {
        wait_until(&self.freed, || self.active() == 0).await
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
