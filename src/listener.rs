//! The listening sockets: TCP, bound with a bounded send buffer, and Unix
//! socket files.
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
//! What the send buffer holds that has not even been sent yet is bounded
//! much lower (`TCP_NOTSENT_LOWAT`, also inherited): the socket reports
//! itself writable only while less than `UNSENT_LIMIT` waits for the
//! client's receive window. Bytes already in flight do not count, so a
//! client far away still gets a full window per round trip; a client that
//! stops reading (and does not acknowledge output) has at most its own
//! receive buffer plus this much waiting for it after Ctrl-C.
//!
//! Nagle's algorithm is off (`TCP_NODELAY`, also inherited by accepted
//! sockets): a keystroke's echo is a few bytes, and holding it back until
//! the previous segment is acknowledged costs a delayed-ACK timeout (40 ms)
//! per key. Measured with webterm-bench: echo p50 went from 44 ms to well
//! under a millisecond.
//!
//! Under TLS the same accepted TCP socket carries the encrypted stream, so
//! both settings still apply.

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rustix::net::{sockopt, AddressFamily, SocketType};

/// Requested `SO_SNDBUF` for every connection.
pub const SEND_BUFFER: usize = 256 * 1024;

/// `TCP_NOTSENT_LOWAT` for every connection: unsent bytes at most.
pub const UNSENT_LIMIT: u32 = 16 * 1024;

/// rustix has no `TCP_NOTSENT_LOWAT` (Linux 3.12).
fn set_unsent_limit(fd: &impl std::os::fd::AsRawFd, bytes: u32) -> std::io::Result<()> {
    let value = bytes as libc::c_int;
    // Safety: setsockopt reads `size_of::<c_int>()` bytes from `value`,
    // which lives across the call; the fd is open (borrowed from its owner).
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

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
    set_unsent_limit(&fd, UNSENT_LIMIT)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 1024)?;
    let std_listener = std::net::TcpListener::from(fd);
    std_listener.set_nonblocking(true)?;
    Ok(async_std::net::TcpListener::from(std_listener))
}

/// A bound Unix socket's file, removed when this is dropped (the server's
/// clean exit), unless something else has taken the path since.
pub struct SocketFile {
    path: PathBuf,
    /// The file we made, so that Drop does not remove a successor's.
    id: (u64, u64),
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                log::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Binds a Unix socket at `path` with permissions `mode`.
///
/// A socket file already there is left alone if a server answers on it
/// (the error says so), and replaced if nothing does: a server that was
/// killed leaves its file behind. Anything else at the path is an error,
/// never deleted.
pub fn bind_unix(
    path: &Path,
    mode: u32,
) -> std::io::Result<(async_std::os::unix::net::UnixListener, SocketFile)> {
    use std::io::{Error, ErrorKind};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::AddrInUse,
                    "a server is already listening on it",
                ))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                log::info!("replacing the stale socket file {}", path.display());
                std::fs::remove_file(path)?;
            }
            Err(e) => return Err(e),
        },
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "something other than a socket is there",
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // The file is made with the umask applied, so narrow the umask around
    // bind: a chmod afterwards would leave a moment in which others could
    // connect. This runs at start-up, before any session can make files.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(!mode & 0o777));
    let bound = std::os::unix::net::UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound?;
    // Bits the umask cannot grant (none today: bind asks for 0777) and a
    // record of intent: the mode is exactly what was asked.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    let m = std::fs::symlink_metadata(path)?;
    listener.set_nonblocking(true)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        id: (m.dev(), m.ino()),
    };
    Ok((async_std::os::unix::net::UnixListener::from(listener), file))
}
