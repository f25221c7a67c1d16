//! permessage-deflate against the real server, spoken byte by byte: the
//! handshake answer, compressed input (whole and fragmented) reaching the
//! shell, compressed output that inflates to what the shell wrote, and
//! hostile compressed input (a bomb, garbage) ending only its own socket.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;
use miniz_oxide::deflate::core::{create_comp_flags_from_zip_params, CompressorOxide};
use miniz_oxide::inflate::stream::InflateState;
use miniz_oxide::{DataFormat, MZFlush};

const OFFER: &str = "permessage-deflate; client_max_window_bits";
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

struct Raw {
    s: TcpStream,
    /// The server's `Sec-WebSocket-Extensions` answer, if any.
    extensions: Option<String>,
}

/// A terminado socket, opened by hand with `offer` as the extension offer.
fn open(addr: &str, offer: Option<&str>) -> Raw {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let offer = offer
        .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n{offer}\r\n"
    )
    .unwrap();
    let head = common::read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let extensions = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| value.trim().to_string())
    });
    Raw { s, extensions }
}

struct Frame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Raw {
    /// Sends one frame, masked as a client must.
    fn send(&mut self, fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) {
        let mut frame = vec![(fin as u8) << 7 | (rsv1 as u8) << 6 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.write_all(&frame).unwrap();
    }

    /// The next frame; None when the connection ends.
    fn frame(&mut self) -> Option<Frame> {
        let mut h = [0u8; 2];
        self.s.read_exact(&mut h).ok()?;
        assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                self.s.read_exact(&mut l).ok()?;
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                self.s.read_exact(&mut l).ok()?;
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        self.s.read_exact(&mut payload).ok()?;
        Some(Frame {
            fin: h[0] & 0x80 != 0,
            rsv1: h[0] & 0x40 != 0,
            opcode: h[0] & 0x0f,
            payload,
        })
    }

    /// Reads terminado messages until the shell's output contains `needle`;
    /// returns the output and how many of its messages came compressed.
    fn read_until(&mut self, needle: &str) -> (String, usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut out, mut compressed) = (String::new(), 0);
        while !out.contains(needle) {
            assert!(Instant::now() < deadline, "no {needle:?} in {out:?}");
            let f = self.frame().expect("the connection ended");
            assert!(f.fin, "the server does not fragment");
            if f.opcode != 1 {
                continue;
            }
            let text = if f.rsv1 {
                compressed += 1;
                inflate(&f.payload)
            } else {
                f.payload
            };
            let msg: serde_json::Value = serde_json::from_slice(&text).unwrap();
            if msg[0] == "stdout" {
                out.push_str(msg[1].as_str().unwrap());
            }
        }
        (out, compressed)
    }

    /// Reads until the close frame; its code, or None if the connection
    /// just ended.
    fn close_code(&mut self) -> Option<u16> {
        while let Some(f) = self.frame() {
            if f.opcode == 8 {
                return Some(u16::from_be_bytes([f.payload[0], f.payload[1]]));
            }
        }
        None
    }
}

/// Raw deflate with the sync-flush tail removed, as RFC 7692 sends it.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = CompressorOxide::new(create_comp_flags_from_zip_params(6, -15, 0));
    let mut out = vec![0u8; data.len() + 1024];
    let r = miniz_oxide::deflate::stream::deflate(&mut c, data, &mut out, MZFlush::Sync);
    assert!(r.status.is_ok() && r.bytes_consumed == data.len());
    out.truncate(r.bytes_written);
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - 4);
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut state = InflateState::new_boxed(DataFormat::Raw);
    let mut input = data.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = vec![0u8; 1 << 20];
    let r = miniz_oxide::inflate::stream::inflate(&mut state, &input, &mut out, MZFlush::Sync);
    assert!(r.status.is_ok(), "{:?}", r.status);
    assert_eq!(r.bytes_consumed, input.len());
    out.truncate(r.bytes_written);
    out
}

fn stdin(text: &str) -> Vec<u8> {
    serde_json::json!(["stdin", text]).to_string().into_bytes()
}

#[test]
fn compressed_both_ways_when_the_client_offers() {
    let server = Server::start(&["--", "sh"]);
    let mut ws = open(&server.addr, Some(OFFER));
    assert_eq!(
        ws.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    // A compressed command; its output, 14 kB of numbers, comes back
    // compressed and inflates to exactly what seq wrote.
    ws.send(true, true, 1, &deflate(&stdin("seq 1 3000; echo do''ne\r")));
    let (out, compressed) = ws.read_until("done\r\n");
    assert!(out.contains("\r\n2999\r\n3000\r\n"), "{out:?}");
    assert!(compressed > 0, "no output message came compressed");
    let sent = server.metric("webterm_compressed_message_bytes_total", &[]);
    let wire = server.metric("webterm_compressed_wire_bytes_total", &[]);
    assert!(wire > 0.0 && wire * 2.0 < sent, "{wire} of {sent}");
    assert_eq!(server.metric("webterm_compressed_sockets_total", &[]), 1.0);

    // A compressed message in two fragments, with a ping between them.
    let command = deflate(&stdin("echo frag''mented\r"));
    let (first, rest) = command.split_at(command.len() / 2);
    ws.send(false, true, 1, first);
    ws.send(true, false, 9, b"between");
    ws.send(true, false, 0, rest);
    let (out, _) = ws.read_until("fragmented\r\n");
    assert!(out.contains("fragmented"), "{out:?}");

    // Small messages may go uncompressed on the same socket.
    ws.send(true, false, 1, &stdin("echo pl''ain\r"));
    ws.read_until("plain\r\n");
}

#[test]
fn no_compression_unless_offered_allowed_and_possible() {
    let server = Server::start(&["--", "sh"]);
    assert_eq!(open(&server.addr, None).extensions, None);
    // A window smaller than 32 KiB cannot be honoured: declined.
    let mut declined = open(
        &server.addr,
        Some("permessage-deflate; server_max_window_bits=9"),
    );
    assert_eq!(declined.extensions, None);
    declined.send(true, false, 1, &stdin("seq 1 3000; echo do''ne\r"));
    let (_, compressed) = declined.read_until("done\r\n");
    assert_eq!(compressed, 0);

    let off = Server::start(&["--no-compression", "--", "sh"]);
    let mut ws = open(&off.addr, Some(OFFER));
    assert_eq!(ws.extensions, None);
    ws.send(true, false, 1, &stdin("seq 1 3000; echo do''ne\r"));
    let (out, compressed) = ws.read_until("done\r\n");
    assert!(out.contains("3000"));
    assert_eq!(compressed, 0);
    assert_eq!(off.metric("webterm_compressed_sockets_total", &[]), 0.0);
}

#[test]
fn hostile_compressed_input_ends_only_its_own_socket() {
    let server = Server::start(&["--", "sh"]);
    let mut bystander = open(&server.addr, Some(OFFER));
    bystander.send(true, true, 1, &deflate(&stdin("echo st''ill here\r")));
    bystander.read_until("still here\r\n");

    // 1 MiB of zeros in about a kilobyte: over the 256 KiB message limit
    // once inflated, refused like any message that is too big.
    let mut bomb = open(&server.addr, Some(OFFER));
    let zeros = vec![b'0'; 1 << 20];
    bomb.send(true, true, 1, &deflate(&zeros));
    assert_eq!(bomb.close_code(), Some(1009));

    // Not deflate at all: refused as an invalid payload.
    let mut garbage = open(&server.addr, Some(OFFER));
    garbage.send(true, true, 1, b"\xff\xff\xff\xff");
    assert_eq!(garbage.close_code(), Some(1007));

    // A new message inside a compressed fragmented one: a protocol error,
    // as tungstenite would call it for frames it sees itself.
    let mut interleaved = open(&server.addr, Some(OFFER));
    let command = deflate(&stdin("echo never''run\r"));
    interleaved.send(false, true, 1, &command[..command.len() / 2]);
    interleaved.send(true, false, 1, &stdin("echo nor''this\r"));
    assert_eq!(interleaved.close_code(), Some(1002));

    // The other session never noticed.
    bystander.send(true, true, 1, &deflate(&stdin("echo st''ill fine\r")));
    bystander.read_until("still fine\r\n");
}
