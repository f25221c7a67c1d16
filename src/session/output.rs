//! A session's output as everyone but the attached client sees it: the
//! replay buffer, the read-only viewers, and the count of bytes so far, all
//! under one lock. Recording a chunk and subscribing a viewer are each one
//! step under it, so a viewer gets every byte exactly once: from its
//! snapshot or from its queue, never both, never neither.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_tungstenite::tungstenite::Bytes;

use super::replay::{Replay, Resumption};

/// Read-only viewers a session accepts at once.
pub const MAX_VIEWERS: usize = 8;
/// Frames queued for a viewer before it is judged too slow and dropped.
const VIEWER_QUEUE: usize = 32;

#[derive(Debug, Default)]
pub struct Output {
    shared: Mutex<Shared>,
    /// `Replay::end`, readable without the lock (flow control reads it per chunk).
    total: AtomicU64,
}

#[derive(Debug, Default)]
struct Shared {
    replay: Replay,
    viewers: Vec<async_channel::Sender<Bytes>>,
}

/// A viewer's start: what it missed, and its queue of what comes next.
pub struct Subscription {
    pub history: Resumption,
    pub live: async_channel::Receiver<Bytes>,
}

impl Output {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        // Every update leaves the buffer and the list whole: poisoning is ignored.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a chunk read from the PTY: numbered, kept for replay, given to
    /// viewers. Never waits: a viewer whose queue is full is dropped (its
    /// socket is closed) rather than allowed to slow the owner down.
    pub fn record(&self, bytes: &Bytes) {
        let mut shared = self.shared();
        shared.replay.push(bytes);
        self.total.store(shared.replay.end(), Ordering::Release);
        if !shared.viewers.is_empty() {
            shared.viewers.retain(|v| v.try_send(bytes.clone()).is_ok());
        }
    }

    /// Bytes of output since the session began.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Acquire)
    }

    /// What a client that has output up to `have` should get to catch up.
    pub fn resume_from(&self, have: u64) -> Resumption {
        self.shared().replay.resume_from(have)
    }

    /// Adds a read-only viewer; None when `MAX_VIEWERS` already watch.
    pub fn subscribe(&self) -> Option<Subscription> {
        let mut shared = self.shared();
        shared.viewers.retain(|v| !v.is_closed());
        if shared.viewers.len() >= MAX_VIEWERS {
            return None;
        }
        let (tx, live) = async_channel::bounded(VIEWER_QUEUE);
        shared.viewers.push(tx);
        Some(Subscription {
            history: shared.replay.resume_from(0),
            live,
        })
    }

    pub fn viewer_count(&self) -> usize {
        self.shared()
            .viewers
            .iter()
            .filter(|v| !v.is_closed())
            .count()
    }

    /// Disconnects every viewer (the session is ending).
    pub fn drop_viewers(&self) {
        self.shared().viewers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_gets_each_byte_once() {
        let out = Output::default();
        out.record(&Bytes::from_static(b"before\n"));
        let sub = out.subscribe().unwrap();
        out.record(&Bytes::from_static(b"after\n"));
        assert_eq!(sub.history.bytes, b"before\n");
        assert_eq!(sub.live.try_recv().unwrap(), Bytes::from_static(b"after\n"));
        assert!(sub.live.try_recv().is_err());
        assert_eq!(out.total(), 13);
        out.drop_viewers();
        assert!(sub.live.recv_blocking().is_err());
    }

    #[test]
    fn viewers_are_limited_and_slow_ones_dropped() {
        let out = Output::default();
        let subs: Vec<_> = (0..MAX_VIEWERS).map(|_| out.subscribe().unwrap()).collect();
        assert!(out.subscribe().is_none());
        for _ in 0..=VIEWER_QUEUE {
            out.record(&Bytes::from_static(b"x"));
        }
        assert_eq!(out.viewer_count(), 0);
        drop(subs);
        assert!(out.subscribe().is_some());
    }
}
