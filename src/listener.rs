//! The listening socket, bound with a bounded send buffer.
//!
//! Backpressure from a slow browser reaches the PTY only through the kernel's
//! TCP buffers, and everything in them must still be drawn after the user
//! presses Ctrl-C. Linux autotunes a socket's send buffer up to
//! `tcp_wmem[2]` (4 MiB by default), which on a slow client means seconds of
//! stale output before the prompt returns. A fixed send buffer bounds that
//! backlog; accepted sockets inherit it from the listener. 256 KiB (the
//! kernel doubles it for bookkeeping) still sustains about 5 MB/s at 100 ms
//! round-trip time, far beyond what a terminal can draw.
//!
//! Nagle's algorithm is off (`TCP_NODELAY`, also inherited by accepted
//! sockets): a keystroke's echo is a few bytes, and holding it back until
//! the previous segment is acknowledged costs a delayed-ACK timeout (40 ms)
//! per key. Measured with webterm-bench: echo p50 went from 44 ms to well
//! under a millisecond.

use std::net::SocketAddr;

use rustix::net::{sockopt, AddressFamily, SocketType};

/// Requested `SO_SNDBUF` for every connection.
pub const SEND_BUFFER: usize = 256 * 1024;

pub fn bind(addr: SocketAddr) -> std::io::Result<async_std::net::TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    // Restarting webterm must not wait out TIME_WAIT on its own port.
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_send_buffer_size(&fd, SEND_BUFFER)?;
    sockopt::set_tcp_nodelay(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 1024)?;
    let std_listener = std::net::TcpListener::from(fd);
    std_listener.set_nonblocking(true)?;
    Ok(async_std::net::TcpListener::from(std_listener))
}
