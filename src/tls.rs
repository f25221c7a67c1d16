//! Native TLS (`--tls-cert`, `--tls-key`): loading the PEM pair, serving
//! whichever pair is current, and taking a renewed pair without a restart.
//!
//! rustls with the `ring` provider, through futures-rustls (which speaks the
//! futures IO traits async-std uses): no OpenSSL to link or keep patched,
//! and a few hundred kilobytes of binary (see docs/performance.md).
//!
//! Renewal: cert-manager, certbot and friends replace the files (usually by
//! renaming a new file into place, or by swapping a Kubernetes secret
//! volume's symlink). A watcher compares both files' identity (device,
//! inode, size, modification time, through symlinks) every
//! [`RELOAD_INTERVAL`]; when either changed it loads the pair again and, if
//! the pair is good, swaps it in for the next handshake. Connections already
//! open keep the session keys they negotiated, so no live session notices.
//! A bad pair (half written, key and certificate from different renewals)
//! is logged and the old pair kept; the next change is tried again.

use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_rustls::rustls;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the files are checked for a renewal: two `stat`s, so cheap;
/// short enough that a renewal is served within seconds.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// How long a client may take over its handshake. A client that stalls
/// costs one task until then, never the accept loop (each handshake runs
/// in its own task).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Renewed pairs taken, and changes that held no good pair: what an
/// operator alerts on (`webterm_tls_reload_failures_total`), and what the
/// tests wait on.
pub static RELOADS: AtomicU64 = AtomicU64::new(0);
pub static RELOAD_FAILURES: AtomicU64 = AtomicU64::new(0);

/// A TLS server: the acceptor and the pair it serves.
pub struct Tls {
    acceptor: futures_rustls::TlsAcceptor,
    pair: Arc<Pair>,
}

/// The files, and the certified key loaded from them last.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// What the watcher last saw (see `Watch`).
    seen: Mutex<Watch>,
}

/// The files' identity when `current` was loaded (or last tried), and
/// whether that try failed once. A renewal replaces two files one after
/// the other, and a look between the two finds a key that does not match
/// its certificate: so a failed pair is tried again at the next look even
/// if nothing changed, and only a pair that fails twice in a row is
/// reported.
#[derive(Default)]
struct Watch {
    stamps: Option<(Stamp, Stamp)>,
    failed_once: bool,
}

/// What tells a replaced file from the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

impl Tls {
    /// Loads the pair at start-up. The error is one line naming the flag
    /// whose file is at fault; it never holds key material.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, String> {
        let provider = Arc::new(provider());
        let stamps = stamp(cert).zip(stamp(key));
        let certified = load_pair(cert, key, &provider)?;
        let pair = Arc::new(Pair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider: Arc::clone(&provider),
            current: RwLock::new(Arc::new(certified)),
            seen: Mutex::new(Watch {
                stamps,
                failed_once: false,
            }),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&pair) as Arc<dyn ResolvesServerCert>);
        // Only HTTP/1.1 is served (WebSockets need it), so say so: a client
        // that offers h2 falls back instead of failing.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: futures_rustls::TlsAcceptor::from(Arc::new(config)),
            pair,
        })
    }

    /// Runs the server side of a handshake on `io`, within
    /// [`HANDSHAKE_TIMEOUT`].
    pub async fn accept<IO>(&self, io: IO) -> std::io::Result<futures_rustls::server::TlsStream<IO>>
    where
        IO: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
    {
        use futures_lite::FutureExt as _;
        self.acceptor
            .accept(io)
            .or(async {
                futures_timer::Delay::new(HANDSHAKE_TIMEOUT).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the TLS handshake took too long",
                ))
            })
            .await
    }

    /// Watches the files for a renewal, forever (see the module's notes).
    pub async fn watch(self: Arc<Self>) {
        loop {
            futures_timer::Delay::new(RELOAD_INTERVAL).await;
            self.pair.reload_if_changed();
        }
    }
}

impl Pair {
    fn reload_if_changed(&self) {
        let now = stamp(&self.cert).zip(stamp(&self.key));
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // Missing files (mid-rename, a volume being swapped) are not a
        // change to act on: the old pair stays, and the files are looked
        // at again next time.
        if now.is_none() || (now == seen.stamps && !seen.failed_once) {
            return;
        }
        let retry = now == seen.stamps;
        seen.stamps = now;
        match load_pair(&self.cert, &self.key, &self.provider) {
            Ok(certified) => {
                seen.failed_once = false;
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
                RELOADS.fetch_add(1, Ordering::Relaxed);
                log::info!(
                    "TLS: loaded the renewed certificate {} and key {}; new connections get it",
                    self.cert.display(),
                    self.key.display()
                );
            }
            Err(e) if !retry => {
                seen.failed_once = true;
                log::debug!("TLS: the changed files do not load yet, trying again: {e}");
            }
            Err(e) => {
                seen.failed_once = false;
                RELOAD_FAILURES.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "TLS: the changed files were not taken, the old pair is still served: {e}"
                )
            }
        }
    }
}

impl ResolvesServerCert for Pair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// ring's provider, cut to what a server for today's browsers needs, which
/// keeps the binary small: TLS 1.3 only (every browser since 2018-2020
/// speaks it), its three cipher suites, X25519 and P-256 key exchange, and
/// no signature verification (clients present no certificates). Keys may
/// be RSA, ECDSA or Ed25519.
fn provider() -> CryptoProvider {
    use rustls::crypto::ring::{cipher_suite, kx_group};
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
        signature_verification_algorithms: rustls::crypto::WebPkiSupportedAlgorithms {
            all: &[],
            mapping: &[],
        },
        ..rustls::crypto::ring::default_provider()
    }
}

/// Reads and checks a certificate chain and its key.
fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert: '{}' {}", cert.display(), pem_error(e)))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert: '{}' holds no PEM certificate (BEGIN CERTIFICATE)",
            cert.display()
        ));
    }
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key: '{}' {}", key.display(), pem_error(e)))?;
    let signing = provider.key_provider.load_private_key(der).map_err(|e| {
        format!(
            "--tls-key: '{}' is not a usable private key: {e}",
            key.display()
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(_) => Err(format!(
            "--tls-key: '{}' is not the key of the certificate in --tls-cert '{}'",
            key.display(),
            cert.display()
        )),
    }
}

/// A PEM error in words; never the file's contents.
fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) => format!("cannot be read: {e}"),
        Error::NoItemsFound => "holds no PEM item of the expected kind".to_string(),
        _ => "is not valid PEM".to_string(),
    }
}
