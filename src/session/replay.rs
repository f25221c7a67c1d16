//! The replay buffer: the last output of a session, so a client that comes
//! back (page refresh, network blip, laptop sleep) gets its screen back.
//!
//! Output is numbered by absolute offset since the session began. A client
//! that reattaches says how much it already has; if the rest is still here
//! it gets exactly the missing bytes (no duplicates on a blip). A fresh page
//! has nothing, and gets what is kept, starting at a line boundary so it does
//! not begin inside a character or an escape sequence.

use std::collections::VecDeque;

/// How much output each session keeps for replay.
pub const REPLAY_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct Replay {
    buf: VecDeque<u8>,
    /// Absolute offset just past the last byte in `buf`.
    end: u64,
}

/// What to send a client that reattaches.
#[derive(Debug, PartialEq, Eq)]
pub struct Resumption {
    /// Absolute offset of the first byte of `bytes`.
    pub offset: u64,
    pub bytes: Vec<u8>,
    /// True when the client missed nothing: `bytes` continues its stream
    /// exactly, so no redraw is needed.
    pub seamless: bool,
}

impl Replay {
    pub fn push(&mut self, data: &[u8]) {
        self.end += data.len() as u64;
        if data.len() >= REPLAY_BYTES {
            self.buf.clear();
            self.buf.extend(&data[data.len() - REPLAY_BYTES..]);
            return;
        }
        let overflow = (self.buf.len() + data.len()).saturating_sub(REPLAY_BYTES);
        self.buf.drain(..overflow);
        self.buf.extend(data);
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    fn start(&self) -> u64 {
        self.end - self.buf.len() as u64
    }

    /// What a client that has processed output up to `have` should get.
    pub fn resume_from(&self, have: u64) -> Resumption {
        let start = self.start();
        if have >= start && have <= self.end && have > 0 {
            let skip = (have - start) as usize;
            return Resumption {
                offset: have,
                bytes: self.buf.iter().skip(skip).copied().collect(),
                seamless: true,
            };
        }
        // Start at a line boundary unless we hold the stream from its start.
        let from = if start == 0 {
            0
        } else {
            self.buf
                .iter()
                .position(|&b| b == b'\n')
                .map(|p| p + 1)
                .unwrap_or(self.buf.len())
        };
        Resumption {
            offset: start + from as u64,
            bytes: self.buf.iter().skip(from).copied().collect(),
            seamless: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_tail() {
        let mut r = Replay::default();
        for _ in 0..100 {
            r.push(&[b'x'; 1000]);
        }
        assert_eq!(r.end(), 100_000);
        assert_eq!(r.buf.len(), REPLAY_BYTES);
        r.push(&vec![b'y'; REPLAY_BYTES * 2]);
        assert_eq!(r.buf.len(), REPLAY_BYTES);
        assert!(r.buf.iter().all(|&b| b == b'y'));
    }

    #[test]
    fn a_blip_gets_exactly_the_missing_bytes() {
        let mut r = Replay::default();
        r.push(b"hello ");
        r.push(b"world\n");
        let res = r.resume_from(6);
        assert_eq!(
            res,
            Resumption {
                offset: 6,
                bytes: b"world\n".to_vec(),
                seamless: true
            }
        );
        let res = r.resume_from(12);
        assert!(res.seamless && res.bytes.is_empty());
    }

    #[test]
    fn a_fresh_page_gets_everything_from_a_line_boundary() {
        let mut r = Replay::default();
        r.push(b"first\nsecond\n");
        assert_eq!(
            r.resume_from(0),
            Resumption {
                offset: 0,
                bytes: b"first\nsecond\n".to_vec(),
                seamless: false
            }
        );
        let mut r = Replay::default();
        r.push(&vec![b'a'; REPLAY_BYTES]);
        r.push(b"\xe2\x94\x80 cut\nwhole line\n");
        let res = r.resume_from(0);
        assert_eq!(res.bytes, b"whole line\n");
        assert_eq!(res.offset, r.end() - 11);
        assert!(!res.seamless);
        // A claim beyond what was sent is treated as a fresh page.
        assert!(!r.resume_from(r.end() + 5).seamless);
    }
}
