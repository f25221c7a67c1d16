//! Debian's nginx as a reverse proxy in front of the test server, started
//! by the test as its own user: its own prefix directory (config, pid file,
//! logs, temporary files) in a fresh temporary directory, listening on a
//! free loopback port, in the foreground as one process, and stopped (and
//! its directory removed) when the value is dropped, even when a test fails.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::T;

pub struct Nginx {
    child: Child,
    dir: PathBuf,
    /// Where it listens: `127.0.0.1:PORT`.
    pub addr: String,
}

/// The nginx binary: `$NGINX`, else Debian's.
fn binary() -> String {
    std::env::var("NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".to_string())
}

impl Nginx {
    /// Starts nginx with `http` as the inside of its `http {}` block; every
    /// `{listen}` in it becomes the address it listens on. The process and
    /// file settings around it are the harness's.
    pub fn start(http: &str) -> Nginx {
        let nginx = binary();
        assert!(
            std::path::Path::new(&nginx).exists(),
            "{nginx} not found: install Debian's nginx (scripts/test.sh does: apt-get install nginx), or set NGINX"
        );
        // A free port is only free until someone takes it: if nginx cannot
        // bind it, start again on another.
        let mut last_error = String::new();
        for attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let dir = std::env::temp_dir().join(format!(
                "webterm-nginx-{}-{}-{attempt}",
                std::process::id(),
                unique()
            ));
            std::fs::create_dir_all(&dir).expect("nginx prefix directory");
            let d = dir.display();
            let conf = format!(
                "\
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{}
}}
",
                http.replace("{listen}", &addr)
            );
            std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
            let child = Command::new(&nginx)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-e")
                .arg(dir.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {nginx}: {e}"));
            let mut n = Nginx { child, dir, addr };
            match n.wait_listening() {
                Ok(()) => return n,
                Err(e) => last_error = e,
            }
            // Dropping `n` stops it and removes its directory.
        }
        panic!("nginx did not start: {last_error}");
    }

    /// Waits until nginx accepts connections, or fails with its log.
    ///
    /// A connection alone does not prove it is nginx: if the port was taken
    /// between our probe and nginx's bind (another test's server, say),
    /// something else answers while nginx fails. nginx writes its pid file
    /// only after it has bound its sockets, so the file naming our child
    /// says the port is nginx's.
    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + T;
        let pid_file = self.dir.join("nginx.pid");
        let ours = self.child.id().to_string();
        loop {
            let bound = std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == ours);
            if bound && TcpStream::connect(&self.addr).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("nginx exited ({status}): {}", self.error_log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nginx not listening after {T:?}: {}",
                    self.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// nginx's error log so far, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM: nginx's fast stop (a graceful one waits for open
            // WebSockets); SIGKILL if even that does not come.
            super::unsafe_kill(self.child.id() as i32, super::libc_sig::TERM);
            let deadline = Instant::now() + T;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A number no other call in this process returns.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
