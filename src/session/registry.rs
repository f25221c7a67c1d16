//! The set of running sessions as a whole: how many may run, the table the
//! operator sees (`/api/sessions`, `webterm sessions`), and the server-wide
//! drain and shutdown every session listens for.
//!
//! A drain (SIGTERM with `--drain-timeout`) comes before the shutdown: no
//! new session starts, but running ones go on, and their clients may still
//! reattach, until the drain's deadline. The shutdown then ends them all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use event_listener::Event;

use super::Session;
use crate::latch::{wait_until, Latch};
use crate::metrics::Metrics;

#[derive(Debug)]
pub struct Registry {
    max: usize,
    max_per_client: usize,
    /// Slots held by each client (a user, or an address), so that one
    /// client cannot take every place (`--max-sessions-per-client`).
    per_client: Mutex<HashMap<String, usize>>,
    /// Sessions holding a slot: listed ones, and ones starting or ending.
    active: AtomicUsize,
    table: Mutex<HashMap<String, Arc<Session>>>,
    metrics: Metrics,
    shutdown: Latch,
    /// Set when a drain begins; `drain_until` holds its deadline from then on.
    draining: Latch,
    drain_until: Mutex<Option<Instant>>,
    /// Notified whenever a slot is freed, so shutdown can wait for the last;
    /// `freed_count` counts them.
    freed: Event,
    freed_count: std::sync::atomic::AtomicU64,
    /// Sessions ever started, and the exit code of the last one to end
    /// (for `--once` and `--exit-when-empty`).
    started: std::sync::atomic::AtomicU64,
    last_exit: Mutex<Option<i32>>,
}

/// A reserved place for one session; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    registry: Arc<Registry>,
    client: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut per_client = self.registry.per_client();
            if let Some(n) = per_client.get_mut(&self.client) {
                *n -= 1;
                if *n == 0 {
                    per_client.remove(&self.client);
                }
            }
        }
        self.registry.active.fetch_sub(1, Ordering::AcqRel);
        self.registry.freed_count.fetch_add(1, Ordering::AcqRel);
        self.registry.freed.notify(usize::MAX);
    }
}

/// Why no place could be reserved.
#[derive(Debug, PartialEq, Eq)]
pub enum Full {
    ShuttingDown,
    /// `--max-sessions` are running.
    Server,
    /// This client holds `--max-sessions-per-client` of them.
    Client,
}

impl Registry {
    pub fn new(max: usize, max_per_client: usize) -> Arc<Registry> {
        Arc::new(Registry {
            max,
            max_per_client,
            per_client: Mutex::new(HashMap::new()),
            active: AtomicUsize::new(0),
            table: Mutex::new(HashMap::new()),
            metrics: Metrics::new(),
            shutdown: Latch::default(),
            draining: Latch::default(),
            drain_until: Mutex::new(None),
            freed: Event::new(),
            freed_count: std::sync::atomic::AtomicU64::new(0),
            started: std::sync::atomic::AtomicU64::new(0),
            last_exit: Mutex::new(None),
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
        self.started.fetch_add(1, Ordering::AcqRel);
        self.table().insert(session.id.clone(), session);
    }

    /// A session's child ended with this code (as a shell reports it).
    pub(super) fn record_exit(&self, code: i32) {
        *self.last_exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(code);
    }

    /// Sessions started since the server began.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Acquire)
    }

    /// The exit code of the last session that ended, if any has.
    pub fn last_exit(&self) -> Option<i32> {
        *self.last_exit.lock().unwrap_or_else(|p| p.into_inner())
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

    pub fn max_per_client(&self) -> usize {
        self.max_per_client
    }

    fn per_client(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Each update is one increment or decrement: a poisoned map is intact.
        self.per_client.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Reserves a place for `client`, unless we are draining or shutting
    /// down, `max` sessions are running, or this client holds its share already.
    pub fn try_reserve(self: &Arc<Self>, client: &str) -> Result<Slot, Full> {
        if !self.takes_new_sessions() {
            return Err(Full::ShuttingDown);
        }
        let mut per_client = self.per_client();
        let held = per_client.get(client).copied().unwrap_or(0);
        // A full server is the reason to give even when the client is at
        // its share too: no other client could start one either.
        if self.active() >= self.max {
            return Err(Full::Server);
        }
        if held >= self.max_per_client {
            return Err(Full::Client);
        }
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map_err(|_| Full::Server)?;
        per_client.insert(client.to_string(), held + 1);
        Ok(Slot {
            registry: Arc::clone(self),
            client: client.to_string(),
        })
    }

    pub fn begin_shutdown(&self) {
        self.shutdown.set();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_set()
    }

    /// Stops new sessions; running ones are told `until` and may go on
    /// (and be reattached) until the shutdown. A second call changes nothing.
    pub fn begin_drain(&self, until: Instant) {
        {
            let mut slot = self.drain_until.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_some() {
                return;
            }
            *slot = Some(until);
        }
        self.draining.set();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.is_set()
    }

    /// Neither draining nor shutting down: a new session may start.
    pub fn takes_new_sessions(&self) -> bool {
        !self.is_draining() && !self.is_shutting_down()
    }

    /// Completes when a drain begins, with its deadline.
    pub async fn drain_begun(&self) -> Instant {
        self.draining.wait().await;
        let until = *self.drain_until.lock().unwrap_or_else(|p| p.into_inner());
        // Set before the latch, never cleared.
        until.unwrap_or_else(Instant::now)
    }

    /// Completes when shutdown begins.
    pub async fn shutdown_requested(&self) {
        self.shutdown.wait().await
    }

    /// Slots freed since the server began (sessions ended, and sessions
    /// that failed to start).
    pub fn freed_count(&self) -> u64 {
        self.freed_count.load(Ordering::Acquire)
    }

    /// Completes once more than `count` slots have been freed.
    pub async fn freed_since(&self, count: u64) {
        wait_until(&self.freed, || self.freed_count() > count).await
    }

    /// Completes when no session is running.
    pub async fn all_ended(&self) {
        wait_until(&self.freed, || self.active() == 0).await
    }

    /// Completes once a session has run and none is running.
    pub async fn ran_and_emptied(&self) {
        wait_until(&self.freed, || self.started() > 0 && self.active() == 0).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_and_released() {
        let r = Registry::new(2, 2);
        let a = r.try_reserve("a").unwrap();
        let _b = r.try_reserve("a").unwrap();
        assert_eq!(r.try_reserve("b").unwrap_err(), Full::Server);
        drop(a);
        assert!(r.try_reserve("b").is_ok());
        r.begin_shutdown();
        assert_eq!(r.try_reserve("c").unwrap_err(), Full::ShuttingDown);
    }

    #[test]
    fn a_drain_refuses_new_sessions_and_keeps_its_first_deadline() {
        let r = Registry::new(4, 4);
        let held = r.try_reserve("a").unwrap();
        assert!(r.takes_new_sessions());
        let until = Instant::now() + std::time::Duration::from_secs(60);
        r.begin_drain(until);
        r.begin_drain(Instant::now());
        assert!(!r.takes_new_sessions() && !r.is_shutting_down());
        assert_eq!(r.try_reserve("b").unwrap_err(), Full::ShuttingDown);
        assert_eq!(futures_lite::future::block_on(r.drain_begun()), until);
        drop(held);
        assert_eq!(r.active(), 0);
    }

    #[test]
    fn one_client_cannot_take_every_place() {
        let r = Registry::new(4, 1);
        let a = r.try_reserve("user ann").unwrap();
        assert_eq!(r.try_reserve("user ann").unwrap_err(), Full::Client);
        let _b = r.try_reserve("user bob").unwrap();
        drop(a);
        assert!(r.try_reserve("user ann").is_ok());
    }
}
