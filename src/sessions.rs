//! The set of running sessions as a whole: how many may run, the table the
//! operator sees (`/api/sessions`, `webterm sessions`), and the server-wide
//! shutdown every session listens for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use event_listener::Event;

use async_tungstenite::tungstenite::Bytes;

use crate::idle::IdleClock;
use crate::metrics::Metrics;
use crate::replay::Replay;
use crate::session::Attachment;

/// Read-only viewers a session accepts at once.
pub const MAX_VIEWERS: usize = 8;
/// Frames queued for a viewer before it is judged too slow and dropped.
const VIEWER_QUEUE: usize = 32;

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// A client is connected.
    Attached,
    /// Its client went away; it waits for a reconnect.
    Detached,
    /// Teardown has begun.
    Ending,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Attached => "attached",
            State::Detached => "detached",
            State::Ending => "ending",
        }
    }
}

/// One running session, as the rest of the server sees it.
#[derive(Debug)]
pub struct Handle {
    pub id: String,
    pub pid: u32,
    pub command: String,
    pub peer: Mutex<String>,
    pub protocol: &'static str,
    pub started: SystemTime,
    pub started_at: Instant,
    /// Last user input, for the sessions table.
    pub input: IdleClock,
    /// What the idle rule measures: input, and output too under
    /// `--idle-policy activity`.
    pub activity: IdleClock,
    /// Proves a reattaching client owns this session; never leaves the
    /// server except in the owner's `setup` message.
    pub resume_token: String,
    /// Lets a viewer watch read-only; the owner hands it out.
    pub view_token: String,
    /// Where a reattaching socket is handed to the running session.
    pub attach: async_channel::Sender<Attachment>,
    viewers: Mutex<Vec<async_channel::Sender<Bytes>>>,
    replay: Mutex<Replay>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    state: AtomicU8,
    kill: AtomicBool,
    kill_event: Event,
}

impl Handle {
    pub fn new(
        id: String,
        pid: u32,
        command: String,
        peer: String,
        protocol: &'static str,
        attach: async_channel::Sender<Attachment>,
    ) -> Handle {
        Handle {
            id,
            pid,
            command,
            peer: Mutex::new(peer),
            protocol,
            started: SystemTime::now(),
            started_at: Instant::now(),
            input: IdleClock::default(),
            activity: IdleClock::default(),
            resume_token: crate::session::random_hex(32),
            view_token: crate::session::random_hex(32),
            attach,
            viewers: Mutex::new(Vec::new()),
            replay: Mutex::new(Replay::default()),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            state: AtomicU8::new(0),
            kill: AtomicBool::new(false),
            kill_event: Event::new(),
        }
    }

    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            0 => State::Attached,
            1 => State::Detached,
            _ => State::Ending,
        }
    }

    pub fn set_state(&self, state: State) {
        let v = match state {
            State::Attached => 0,
            State::Detached => 1,
            State::Ending => 2,
        };
        self.state.store(v, Ordering::Release);
    }

    /// The session's recent output. Held briefly: the output pump takes it
    /// for every chunk.
    pub fn replay(&self) -> std::sync::MutexGuard<'_, Replay> {
        // Pushing to a ring cannot leave it inconsistent: poisoning is ignored.
        self.replay.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_peer(&self, peer: String) {
        if let Ok(mut p) = self.peer.lock() {
            *p = peer;
        }
    }

    /// Adds a read-only viewer; None when `MAX_VIEWERS` already watch.
    pub fn add_viewer(&self) -> Option<async_channel::Receiver<Bytes>> {
        let mut viewers = self.viewers.lock().ok()?;
        viewers.retain(|v| !v.is_closed());
        if viewers.len() >= MAX_VIEWERS {
            return None;
        }
        let (tx, rx) = async_channel::bounded(VIEWER_QUEUE);
        viewers.push(tx);
        Some(rx)
    }

    /// Gives output to every viewer without ever waiting: a viewer whose
    /// queue is full is dropped (its socket is closed) rather than allowed
    /// to slow the owner down.
    pub fn feed_viewers(&self, data: &Bytes) {
        let Ok(mut viewers) = self.viewers.lock() else {
            return;
        };
        if viewers.is_empty() {
            return;
        }
        viewers.retain(|v| v.try_send(data.clone()).is_ok());
    }

    /// Disconnects every viewer (the session is ending).
    pub fn drop_viewers(&self) {
        if let Ok(mut viewers) = self.viewers.lock() {
            viewers.clear();
        }
    }

    pub fn viewer_count(&self) -> usize {
        self.viewers
            .lock()
            .map(|v| v.iter().filter(|v| !v.is_closed()).count())
            .unwrap_or(0)
    }

    pub fn peer(&self) -> String {
        self.peer.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Asks the session to end through its normal teardown.
    pub fn request_kill(&self) {
        self.kill.store(true, Ordering::Release);
        self.kill_event.notify(usize::MAX);
    }

    /// Completes when an operator asked this session to end.
    pub async fn kill_requested(&self) {
        loop {
            if self.kill.load(Ordering::Acquire) {
                return;
            }
            let listener = self.kill_event.listen();
            if self.kill.load(Ordering::Acquire) {
                return;
            }
            listener.await;
        }
    }
}

#[derive(Debug)]
pub struct Registry {
    max: usize,
    active: AtomicUsize,
    table: Mutex<HashMap<String, Arc<Handle>>>,
    metrics: Metrics,
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
            table: Mutex::new(HashMap::new()),
            metrics: Metrics::new(),
            shutting_down: AtomicBool::new(false),
            shutdown: Event::new(),
            ended: Event::new(),
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Handle>>> {
        // Every update is a single insert or remove: a poisoned table is intact.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists a running session; `unlist` removes it when its teardown ends.
    pub fn list_session(&self, handle: Arc<Handle>) {
        self.table().insert(handle.id.clone(), handle);
    }

    pub fn unlist_session(&self, id: &str) {
        self.table().remove(id);
    }

    pub fn sessions(&self) -> Vec<Arc<Handle>> {
        let mut all: Vec<_> = self.table().values().cloned().collect();
        all.sort_by_key(|h| h.started_at);
        all
    }

    pub fn session(&self, id: &str) -> Option<Arc<Handle>> {
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
