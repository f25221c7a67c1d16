//! permessage-deflate (RFC 7692) on the browser's sockets.
//!
//! Terminal output compresses several times over (a `top` redraw, `ls -lR`,
//! a build log), which matters on a Pi's Wi-Fi and on metered links, and
//! every browser offers the extension. tungstenite does not implement it and
//! fails any frame with RSV1 set (tungstenite-rs#426); the crates that do
//! (soketto, yawc, ratchet) need tokio or C zlib. So it is done here,
//! beneath tungstenite, as a stream between the connection and the
//! WebSocket: a compressed message from the client is inflated into a plain
//! frame before tungstenite reads it, and a message tungstenite writes is
//! deflated on its way out. Every other byte passes through untouched, so
//! tungstenite still enforces the protocol and its limits.
//!
//! Both directions run without context takeover (every answer says
//! `server_no_context_takeover; client_no_context_takeover`): each message
//! is compressed on its own, so no socket keeps a compressor (about 300 KB)
//! or a decompressor (about 40 KB) between messages. One of each per thread
//! is reused instead: compression memory is a constant of the process, not
//! a cost per session. What that gives up is matching against the previous
//! message; an output frame carries up to 32 KiB, plenty to match within.
//!
//! Messages under `MIN_SIZE` bytes (keystroke echoes) and messages that do
//! not shrink go out as they are: the extension lets each message choose.

use std::cell::RefCell;
use std::io::{self, Cursor};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};

use async_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use async_tungstenite::tungstenite::protocol::frame::FrameHeader;
use futures_lite::{AsyncRead, AsyncWrite};
use miniz_oxide::deflate::core::{create_comp_flags_from_zip_params, CompressorOxide};
use miniz_oxide::inflate::stream::InflateState;
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use crate::protocol::close;

/// Sockets on which the extension was negotiated.
pub static SOCKETS: AtomicU64 = AtomicU64::new(0);
/// Payload bytes of the outgoing messages that were sent compressed...
pub static MESSAGE_BYTES: AtomicU64 = AtomicU64::new(0);
/// ...and what they took on the wire (payload only, frame headers aside).
pub static WIRE_BYTES: AtomicU64 = AtomicU64::new(0);

/// Our answer whenever we take an offer.
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Smaller outgoing messages are not worth compressing.
const MIN_SIZE: usize = 128;

/// Larger outgoing frames pass uncompressed (ours are at most 32 KiB; this
/// only bounds what one frame could make us buffer).
const MAX_OUTGOING: usize = 1024 * 1024;

/// The empty stored block a sender strips from each message (RFC 7692 7.2.1).
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// The `Sec-WebSocket-Extensions` answer to a client's offers, if one of
/// them is a permessage-deflate we can honour. An offer we cannot honour
/// (a server window under 32 KiB, an unknown or repeated parameter) is
/// declined, and the socket works uncompressed.
pub fn negotiate(offers: Option<&str>) -> Option<&'static str> {
    offers?.split(',').find_map(|offer| {
        let mut parts = offer.split(';').map(str::trim);
        if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
            return None;
        }
        let mut seen: Vec<&str> = Vec::new();
        for param in parts {
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (param, None),
            };
            if seen.contains(&name) {
                return None;
            }
            seen.push(name);
            let acceptable = match name {
                "server_no_context_takeover" | "client_no_context_takeover" => value.is_none(),
                // Whatever window the client uses, we inflate with 32 KiB.
                "client_max_window_bits" => value.is_none_or(|v| window_bits(v).is_some()),
                // miniz_oxide always compresses with a 32 KiB window.
                "server_max_window_bits" => value.and_then(window_bits) == Some(15),
                _ => false,
            };
            if !acceptable {
                return None;
            }
        }
        Some(ANSWER)
    })
}

fn window_bits(value: &str) -> Option<u8> {
    value.parse().ok().filter(|b| (8..=15).contains(b))
}

/// A connection with permessage-deflate applied, for tungstenite to run a
/// server-side WebSocket over.
pub struct Deflated<S> {
    inner: S,
    /// The largest message a client may send, inflated (tungstenite's own
    /// limit, enforced here too so that inflating cannot exceed it).
    limit: usize,
    /// Read from the client, not yet handled.
    raw: Vec<u8>,
    /// Ready for tungstenite to read, from `ready_at`.
    ready: Vec<u8>,
    ready_at: usize,
    /// Payload bytes of a plain incoming frame still to pass through.
    pass_in: u64,
    /// A compressed message whose frames are still arriving.
    message: Option<Incoming>,
    /// The limit was exceeded: tungstenite has been handed a frame header it
    /// refuses (and closes with 1009); nothing more is read.
    refused: bool,
    /// What tungstenite is writing now.
    out: Outgoing,
    /// Header bytes of the next outgoing frame, until they parse.
    head: Vec<u8>,
    /// Written by us, not yet by the connection, from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
}

struct Incoming {
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    data: Vec<u8>,
}

enum Outgoing {
    /// Between frames.
    Header,
    /// Passing a frame's payload through; this many bytes are left.
    Pass(u64),
    /// Collecting a frame to compress.
    Collect {
        header: FrameHeader,
        len: usize,
        data: Vec<u8>,
    },
}

impl<S> Deflated<S> {
    /// `limit`: the largest message a client may send (inflated).
    pub fn new(inner: S, limit: usize) -> Deflated<S> {
        SOCKETS.fetch_add(1, Ordering::Relaxed);
        Deflated {
            inner,
            limit,
            raw: Vec::new(),
            ready: Vec::new(),
            ready_at: 0,
            pass_in: 0,
            message: None,
            refused: false,
            out: Outgoing::Header,
            head: Vec::new(),
            pending: Vec::new(),
            pending_at: 0,
        }
    }

    /// Handles the frame at the start of `raw`, if enough of it is there.
    /// False: more bytes are needed.
    fn next_frame(&mut self) -> io::Result<bool> {
        let mut cursor = Cursor::new(&self.raw[..]);
        let Some((header, len)) = FrameHeader::parse(&mut cursor).map_err(invalid)? else {
            return Ok(false);
        };
        let head_len = cursor.position() as usize;
        let first = matches!(header.opcode, OpCode::Data(Data::Text | Data::Binary));
        let starts = header.rsv1 && self.message.is_none() && first;
        let continues = self.message.is_some() && header.opcode == OpCode::Data(Data::Continue);
        // tungstenite never sees a compressed message's fragments, so the
        // rules it would apply to them are ours (RFC 6455 5.4, RFC 7692 6):
        // no new message before the last one ends, RSV1 on its first frame only.
        if self.message.is_some() && first {
            return Err(bad_framing("a new message began inside a fragmented one"));
        }
        if continues && header.rsv1 {
            return Err(bad_framing("RSV1 set on a continuation frame"));
        }
        if !starts && !continues {
            // Plain (or a control frame between fragments): pass it on,
            // payload as it comes. Anything wrong with it (RSV1 where it
            // cannot be) is tungstenite's to refuse.
            self.ready.extend(self.raw.drain(..head_len));
            self.pass_in = len;
            return Ok(true);
        }
        let so_far = self.message.as_ref().map_or(0, |m| m.data.len());
        if len.saturating_add(so_far as u64) > self.limit as u64 {
            self.refuse(header.opcode);
            return Ok(true);
        }
        let end = head_len + len as usize;
        if self.raw.len() < end {
            return Ok(false);
        }
        let mut payload: Vec<u8> = self.raw.drain(..end).skip(head_len).collect();
        apply_mask(&mut payload, header.mask);
        let message = self.message.get_or_insert_with(|| Incoming {
            opcode: header.opcode,
            mask: header.mask,
            data: Vec::new(),
        });
        message.data.append(&mut payload);
        if header.is_final {
            let message = self.message.take().expect("just inserted");
            match inflate(&message.data, self.limit) {
                Ok(mut plain) => {
                    let header = FrameHeader {
                        is_final: true,
                        rsv1: false,
                        rsv2: false,
                        rsv3: false,
                        opcode: message.opcode,
                        mask: message.mask,
                    };
                    header
                        .format(plain.len() as u64, &mut self.ready)
                        .map_err(invalid)?;
                    apply_mask(&mut plain, message.mask);
                    self.ready.extend_from_slice(&plain);
                }
                Err(Inflate::TooBig) => self.refuse(message.opcode),
                Err(Inflate::Corrupt) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, NotDeflate))
                }
            }
        }
        Ok(true)
    }

    /// Hands tungstenite the header of a frame over its size limit, which it
    /// refuses with close code 1009, as it would an uncompressed one.
    fn refuse(&mut self, opcode: OpCode) {
        let header = FrameHeader {
            opcode,
            mask: Some([0; 4]),
            ..FrameHeader::default()
        };
        let _ = header.format(self.limit as u64 + 1, &mut self.ready);
        self.refused = true;
        self.raw = Vec::new();
        self.message = None;
    }

    /// Takes bytes of an outgoing frame into `head`, and decides what to do
    /// with the frame once its header is complete. Returns how many bytes of
    /// `buf` it took.
    fn take_header(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A header is at most 14 bytes; never take payload beyond that.
        let take = buf.len().min(14 - self.head.len());
        self.head.extend_from_slice(&buf[..take]);
        let mut cursor = Cursor::new(&self.head[..]);
        let Some((header, len)) = FrameHeader::parse(&mut cursor).map_err(invalid)? else {
            return Ok(take);
        };
        let head_len = cursor.position() as usize;
        // Bytes past this frame's end belong to the next one: give them
        // back (they were taken before the header's length was known).
        let available = self.head.len() - head_len;
        let excess = available - available.min(usize::try_from(len).unwrap_or(usize::MAX));
        self.head.truncate(self.head.len() - excess);
        let payload = self.head.split_off(head_len);
        let compress = header.is_final
            && !header.rsv1
            && matches!(header.opcode, OpCode::Data(Data::Text | Data::Binary))
            && (MIN_SIZE as u64..=MAX_OUTGOING as u64).contains(&len);
        if compress {
            let mut data = Vec::with_capacity(len as usize);
            data.extend_from_slice(&payload);
            self.out = Outgoing::Collect {
                header,
                len: len as usize,
                data,
            };
            self.head.clear();
            self.finish_if_complete()?;
        } else {
            self.pending.append(&mut self.head);
            self.pending.extend_from_slice(&payload);
            self.out = Outgoing::Pass(len - payload.len() as u64);
        }
        Ok(take - excess)
    }

    /// Compresses a collected frame into `pending` once all of it is there.
    fn finish_if_complete(&mut self) -> io::Result<()> {
        let Outgoing::Collect { header, len, data } = &mut self.out else {
            return Ok(());
        };
        if data.len() < *len {
            return Ok(());
        }
        let mut header = header.clone();
        let data = std::mem::take(data);
        match deflate(&data) {
            Some(compressed) => {
                MESSAGE_BYTES.fetch_add(data.len() as u64, Ordering::Relaxed);
                WIRE_BYTES.fetch_add(compressed.len() as u64, Ordering::Relaxed);
                header.rsv1 = true;
                header
                    .format(compressed.len() as u64, &mut self.pending)
                    .map_err(invalid)?;
                self.pending.extend_from_slice(&compressed);
            }
            None => {
                header
                    .format(data.len() as u64, &mut self.pending)
                    .map_err(invalid)?;
                self.pending.extend_from_slice(&data);
            }
        }
        self.out = Outgoing::Header;
        Ok(())
    }
}

impl<S: AsyncWrite + Unpin> Deflated<S> {
    /// Writes out what we hold for the connection.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending_at < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.pending_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_at += n;
        }
        // Frames come and go; an idle socket keeps no buffer.
        self.pending = Vec::new();
        self.pending_at = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deflated<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if this.ready_at < this.ready.len() {
                let n = buf.len().min(this.ready.len() - this.ready_at);
                buf[..n].copy_from_slice(&this.ready[this.ready_at..this.ready_at + n]);
                this.ready_at += n;
                if this.ready_at == this.ready.len() {
                    this.ready = Vec::new();
                    this.ready_at = 0;
                }
                return Poll::Ready(Ok(n));
            }
            if this.refused {
                return Poll::Ready(Ok(0));
            }
            if this.pass_in > 0 {
                let room = buf
                    .len()
                    .min(usize::try_from(this.pass_in).unwrap_or(usize::MAX));
                let n = if this.raw.is_empty() {
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf[..room]))?
                } else {
                    let n = room.min(this.raw.len());
                    buf[..n].copy_from_slice(&this.raw[..n]);
                    this.raw.drain(..n);
                    n
                };
                this.pass_in -= n as u64;
                return Poll::Ready(Ok(n));
            }
            if this.next_frame()? {
                continue;
            }
            let mut chunk = [0u8; 4096];
            let n = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if n == 0 {
                // The client is gone. What is left of a frame goes to
                // tungstenite, which reports the connection reset.
                this.ready = std::mem::take(&mut this.raw);
                this.ready_at = 0;
                if this.ready.is_empty() {
                    return Poll::Ready(Ok(0));
                }
                this.refused = true;
                continue;
            }
            this.raw.extend_from_slice(&chunk[..n]);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deflated<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match &mut this.out {
            Outgoing::Pass(left) if *left > 0 => {
                let room = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..room]))?;
                *left -= n as u64;
                Poll::Ready(Ok(n))
            }
            Outgoing::Collect { len, data, .. } => {
                let n = buf.len().min(*len - data.len());
                data.extend_from_slice(&buf[..n]);
                this.finish_if_complete()?;
                Poll::Ready(Ok(n))
            }
            Outgoing::Pass(_) | Outgoing::Header => Poll::Ready(this.take_header(buf)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// The read error for a compressed client message that does not inflate:
/// bad input from the client (close 1007; see `close_code`), not a
/// connection that broke.
#[derive(Debug)]
pub struct NotDeflate;

impl std::fmt::Display for NotDeflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a compressed message from the client is not valid deflate data")
    }
}

impl std::error::Error for NotDeflate {}

/// The read error for a compressed message's frames in an order or with
/// bits RFC 6455 forbids: a protocol error (close 1002), as tungstenite's
/// own for the frames it sees.
#[derive(Debug)]
pub struct BadFraming(pub &'static str);

impl std::fmt::Display for BadFraming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BadFraming {}

/// The close code a read error of a compressed stream calls for, when the
/// client caused it: 1007 for data that does not inflate, 1002 for frames
/// out of order. None for any other I/O error: the connection broke (a TLS
/// error included), which is no fault of what the client sent.
pub fn close_code(e: &io::Error) -> Option<u16> {
    let inner = e.get_ref()?;
    if inner.is::<NotDeflate>() {
        Some(close::INVALID_PAYLOAD)
    } else if inner.is::<BadFraming>() {
        Some(close::PROTOCOL_ERROR)
    } else {
        None
    }
}

fn bad_framing(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, BadFraming(what))
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn apply_mask(data: &mut [u8], mask: Option<[u8; 4]>) {
    if let Some(mask) = mask {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= mask[i & 3];
        }
    }
}

thread_local! {
    static COMPRESSOR: RefCell<Option<Box<CompressorOxide>>> = const { RefCell::new(None) };
    static INFLATER: RefCell<Option<Box<InflateState>>> = const { RefCell::new(None) };
}

/// One message, compressed on its own (RFC 7692 7.2.1: a sync flush with
/// its empty block removed); None if that would not make it smaller.
fn deflate(data: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = cell.get_or_insert_with(|| {
            // Level 1: the fastest, for a Pi's CPU; -15: raw deflate, 32 KiB window.
            Box::new(CompressorOxide::new(create_comp_flags_from_zip_params(
                1, -15, 0,
            )))
        });
        compressor.reset();
        // Only worth it if smaller: an output buffer the input's size
        // bounds the attempt.
        let mut out = vec![0u8; data.len()];
        let result =
            miniz_oxide::deflate::stream::deflate(compressor, data, &mut out, MZFlush::Sync);
        let written = result.bytes_written;
        let done = result.status.is_ok()
            && result.bytes_consumed == data.len()
            && written < out.len()
            && out[..written].ends_with(&TAIL);
        done.then(|| {
            out.truncate(written - TAIL.len());
            out
        })
    })
}

enum Inflate {
    TooBig,
    Corrupt,
}

/// One message from the client, inflated; at most `limit` bytes.
fn inflate(compressed: &[u8], limit: usize) -> Result<Vec<u8>, Inflate> {
    INFLATER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let state = cell.get_or_insert_with(|| InflateState::new_boxed(DataFormat::Raw));
        state.reset(DataFormat::Raw);
        let mut input = Vec::with_capacity(compressed.len() + TAIL.len());
        input.extend_from_slice(compressed);
        input.extend_from_slice(&TAIL);
        let mut out = vec![0u8; (compressed.len() * 4).clamp(1024, limit + 1)];
        let (mut consumed, mut written) = (0, 0);
        loop {
            let result = miniz_oxide::inflate::stream::inflate(
                state,
                &input[consumed..],
                &mut out[written..],
                MZFlush::Sync,
            );
            consumed += result.bytes_consumed;
            written += result.bytes_written;
            match result.status {
                Ok(MZStatus::StreamEnd) => break,
                Ok(_) | Err(MZError::Buf) => {}
                Err(_) => return Err(Inflate::Corrupt),
            }
            if written > limit {
                return Err(Inflate::TooBig);
            }
            if written == out.len() {
                out.resize((out.len() * 2).min(limit + 1), 0);
            } else if consumed == input.len() {
                break;
            } else if result.bytes_consumed == 0 && result.bytes_written == 0 {
                return Err(Inflate::Corrupt);
            }
        }
        if written > limit {
            return Err(Inflate::TooBig);
        }
        out.truncate(written);
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_tungstenite::tungstenite::protocol::frame::coding::Control;

    #[test]
    fn takes_the_offers_browsers_make() {
        // Chromium and Firefox.
        assert_eq!(
            negotiate(Some("permessage-deflate; client_max_window_bits")),
            Some(ANSWER)
        );
        assert_eq!(negotiate(Some("permessage-deflate")), Some(ANSWER));
        assert_eq!(
            negotiate(Some(
                "permessage-deflate; server_max_window_bits=10, permessage-deflate"
            )),
            Some(ANSWER),
            "the second offer is one we can take"
        );
    }

    #[test]
    fn declines_what_it_cannot_honour() {
        assert_eq!(negotiate(None), None);
        assert_eq!(negotiate(Some("x-webkit-deflate-frame")), None);
        assert_eq!(
            negotiate(Some("permessage-deflate; server_max_window_bits=10")),
            None
        );
        assert_eq!(
            negotiate(Some("permessage-deflate; client_max_window_bits=99")),
            None
        );
        assert_eq!(
            negotiate(Some(
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
            )),
            None
        );
        assert_eq!(negotiate(Some("permessage-deflate; mystery=1")), None);
    }

    #[test]
    fn a_message_survives_the_round_trip() {
        let text: Vec<u8> = (0..2000)
            .flat_map(|i| format!("line {i}: the quick brown fox\r\n").into_bytes())
            .collect();
        let compressed = deflate(&text).expect("text compresses");
        assert!(compressed.len() * 5 < text.len(), "{}", compressed.len());
        assert!(matches!(inflate(&compressed, 1 << 20), Ok(plain) if plain == text));
        // Compressing again starts afresh (no context carried over).
        assert_eq!(deflate(&text), Some(compressed));
    }

    #[test]
    fn what_does_not_shrink_is_not_compressed() {
        // xorshift: bytes with no repetition to find.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert_eq!(deflate(&noise), None);
    }

    /// A frame as it is on the wire: masked, as a client's, when its
    /// header has a mask.
    fn frame(header: FrameHeader, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        header.format(payload.len() as u64, &mut out).unwrap();
        let mut payload = payload.to_vec();
        apply_mask(&mut payload, header.mask);
        out.extend(payload);
        out
    }

    /// The header of an unmasked, unfragmented frame.
    fn whole(opcode: OpCode) -> FrameHeader {
        FrameHeader {
            is_final: true,
            opcode,
            ..FrameHeader::default()
        }
    }

    #[test]
    fn frames_written_together_come_out_whole_and_in_order() {
        use futures_lite::AsyncWriteExt as _;
        let big: Vec<u8> = b"all work and no play\r\n".repeat(200);
        // Two short frames and a long one in one write, as tungstenite
        // hands over what queued up behind a slow socket.
        let mut written = frame(whole(OpCode::Data(Data::Binary)), b"a");
        written.extend(frame(whole(OpCode::Control(Control::Pong)), b"pong"));
        written.extend(frame(whole(OpCode::Data(Data::Text)), &big));
        let mut d = Deflated::new(futures_lite::io::Cursor::new(Vec::new()), 1 << 20);
        futures_lite::future::block_on(async {
            d.write_all(&written).await.unwrap();
            d.flush().await.unwrap();
        });
        let out = d.inner.into_inner();
        let mut cursor = Cursor::new(&out[..]);
        let mut frames = Vec::new();
        while let Some((header, len)) = FrameHeader::parse(&mut cursor).unwrap() {
            let at = cursor.position() as usize;
            frames.push((header, out[at..at + len as usize].to_vec()));
            cursor.set_position((at + len as usize) as u64);
        }
        assert_eq!(cursor.position() as usize, out.len(), "trailing bytes");
        assert_eq!(frames.len(), 3);
        assert_eq!((frames[0].0.rsv1, &frames[0].1[..]), (false, &b"a"[..]));
        assert_eq!((frames[1].0.rsv1, &frames[1].1[..]), (false, &b"pong"[..]));
        assert!(frames[2].0.rsv1, "the long frame goes compressed");
        assert!(frames[2].1.len() < big.len() / 4);
        assert!(matches!(inflate(&frames[2].1, 1 << 20), Ok(plain) if plain == big));
    }

    #[test]
    fn a_compressed_message_s_fragments_follow_the_rules_tungstenite_cannot_see() {
        use futures_lite::AsyncReadExt as _;
        let masked = |is_final: bool, rsv1: bool, opcode: OpCode, payload: &[u8]| {
            let header = FrameHeader {
                is_final,
                rsv1,
                opcode,
                mask: Some([1, 2, 3, 4]),
                ..FrameHeader::default()
            };
            frame(header, payload)
        };
        let text = b"echo hello, compressed world\r".repeat(10);
        let packed = deflate(&text).unwrap();
        let (first, rest) = packed.split_at(packed.len() / 2);
        let start = masked(false, true, OpCode::Data(Data::Text), first);
        let read = |input: Vec<u8>| {
            let mut d = Deflated::new(futures_lite::io::Cursor::new(input), 1 << 20);
            let mut out = Vec::new();
            futures_lite::future::block_on(d.read_to_end(&mut out)).map(|_| out)
        };
        let framing = |e: io::Error| {
            assert_eq!(close_code(&e), Some(close::PROTOCOL_ERROR));
            e.get_ref()
                .and_then(|e| e.downcast_ref::<BadFraming>())
                .map(|b| b.0)
        };
        // By the rules: the message comes out whole, as one plain frame.
        let mut good = start.clone();
        good.extend(masked(true, false, OpCode::Data(Data::Continue), rest));
        assert!(read(good).unwrap().len() > text.len());
        // A new message before the last fragment.
        let mut interleaved = start.clone();
        interleaved.extend(masked(true, false, OpCode::Data(Data::Binary), b"x"));
        let e = read(interleaved).unwrap_err();
        assert_eq!(
            framing(e),
            Some("a new message began inside a fragmented one")
        );
        // RSV1 again on the continuation.
        let mut rsv1 = start;
        rsv1.extend(masked(true, true, OpCode::Data(Data::Continue), rest));
        let e = read(rsv1).unwrap_err();
        assert_eq!(framing(e), Some("RSV1 set on a continuation frame"));
    }

    #[test]
    fn only_the_client_s_faults_get_a_close_code() {
        let not_deflate = io::Error::new(io::ErrorKind::InvalidData, NotDeflate);
        assert_eq!(close_code(&not_deflate), Some(close::INVALID_PAYLOAD));
        assert_eq!(
            close_code(&bad_framing("out of order")),
            Some(close::PROTOCOL_ERROR)
        );
        // A broken connection, or a TLS error, is nobody's bad input.
        assert_eq!(close_code(&io::ErrorKind::ConnectionReset.into()), None);
        assert_eq!(close_code(&invalid("bad record mac")), None);
    }

    #[test]
    fn inflating_stops_at_the_limit() {
        let zeros = vec![0u8; 1 << 20];
        let bomb = deflate(&zeros).unwrap();
        // Small enough to be let in, too large once inflated.
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        assert!(matches!(inflate(&bomb, 256 * 1024), Err(Inflate::TooBig)));
        assert!(matches!(
            inflate(b"\xff\xff\xff", 1024),
            Err(Inflate::Corrupt)
        ));
    }
}
