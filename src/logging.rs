//! Logging that can never take the server down.
//!
//! A log line is not worth a session. Writers that unwrap their writes (femme,
//! `println!`) panic when stdout is a closed pipe (`webterm | head -c1`, a
//! restarted collector) or a full disk, and a pipe nobody drains blocks the
//! writer forever. So every line goes through a bounded queue to one thread
//! that owns stdout: the server only ever formats a line and pushes it (or
//! drops it when the queue is full); only that thread can block, and a
//! failed write costs the line, counted in `webterm_log_write_errors_total`.
//!
//! We chose a thread over making stdout non-blocking: `O_NONBLOCK` belongs to
//! the open file, which a terminal or an inherited pipe shares with other
//! processes (a shell left with a non-blocking terminal misbehaves after we
//! exit), and a non-blocking pipe can take half a line, which a collector
//! then sees as garbage.
//!
//! The format follows where the output goes: on a terminal, a short coloured
//! line for people; anywhere else one JSON object per line with femme's
//! fields (`level` as a number, 10 trace to 50 error; `time` in Unix
//! milliseconds; `msg`), so collectors that parsed femme's output still do.

use std::collections::VecDeque;
use std::io::{IsTerminal as _, Write as _};
use std::os::fd::AsFd as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

/// Lines that could not be written (the write failed, or the queue was full
/// because stdout is not keeping up). Read by `/metrics` at scrape time.
pub static WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Lines waiting for the writer; beyond this a burst is dropped rather than
/// held, so a stuck pipe costs at most this much memory.
const QUEUE_LINES: usize = 4096;

/// How long [`flush`] waits at exit for the last lines (such as
/// "shutdown complete") to reach a slow reader.
pub const EXIT_FLUSH: Duration = Duration::from_secs(1);

#[derive(Clone, Copy)]
enum Format {
    Pretty,
    Json,
}

struct Queue {
    lines: VecDeque<String>,
    /// The writer holds lines it took from the queue and has not written yet.
    busy: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a line is queued.
    work: Condvar,
    /// Signalled when the writer has nothing left.
    idle: Condvar,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// Installs the logger. Call once, before anything logs.
pub fn init(level: LevelFilter) {
    let format = if std::io::stdout().is_terminal() {
        Format::Pretty
    } else {
        Format::Json
    };
    let shared = SHARED.get_or_init(|| Shared {
        queue: Mutex::new(Queue {
            lines: VecDeque::new(),
            busy: false,
        }),
        work: Condvar::new(),
        idle: Condvar::new(),
    });
    let started = std::thread::Builder::new()
        .name("webterm-log".into())
        .spawn(move || write_forever(shared));
    if started.is_err() {
        // Without the thread nobody would write: better no logs than a queue
        // that fills and drops everything while looking fine.
        return;
    }
    if log::set_boxed_logger(Box::new(Logger { format, shared })).is_ok() {
        log::set_max_level(level);
    }
}

/// Waits up to `timeout` for queued lines to be written, so the last words
/// of a process that is about to exit are not lost.
pub fn flush(timeout: Duration) {
    let Some(shared) = SHARED.get() else { return };
    let deadline = Instant::now() + timeout;
    let mut q = lock(&shared.queue);
    while !q.lines.is_empty() || q.busy {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        q = match shared.idle.wait_timeout(q, left) {
            Ok((q, _)) => q,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}

fn lock(m: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    // The queue holds plain data that no panic can leave half-changed.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn write_forever(shared: &Shared) {
    // Unbuffered writes on our own descriptor: std's `Stdout` keeps what a
    // failed write left in its buffer and prepends it to the next line.
    let mut out = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => std::fs::File::from(fd),
        Err(_) => return,
    };
    let mut batch = VecDeque::new();
    loop {
        {
            let mut q = lock(&shared.queue);
            q.busy = false;
            if q.lines.is_empty() {
                shared.idle.notify_all();
            }
            while q.lines.is_empty() {
                q = shared.work.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            std::mem::swap(&mut batch, &mut q.lines);
            q.busy = true;
        }
        for line in batch.drain(..) {
            if out.write_all(line.as_bytes()).is_err() {
                WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

struct Logger {
    format: Format,
    shared: &'static Shared,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = match self.format {
            Format::Pretty => pretty(record),
            Format::Json => json(record),
        };
        let mut q = lock(&self.shared.queue);
        if q.lines.len() >= QUEUE_LINES {
            WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.lines.push_back(line);
        drop(q);
        self.shared.work.notify_one();
    }

    fn flush(&self) {}
}

fn pretty(record: &Record<'_>) -> String {
    let color = match record.level() {
        log::Level::Error => "\x1b[31m",
        log::Level::Warn => "\x1b[33m",
        log::Level::Info => "\x1b[32m",
        _ => "\x1b[2m",
    };
    format!("{color}{:<5}\x1b[0m {}\n", record.level(), record.args())
}

/// One JSON object and a newline; serde_json does the escaping, so a
/// message holding quotes, newlines or control characters stays one line.
fn json(record: &Record<'_>) -> String {
    let level = match record.level() {
        log::Level::Trace => 10,
        log::Level::Debug => 20,
        log::Level::Info => 30,
        log::Level::Warn => 40,
        log::Level::Error => 50,
    };
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let msg = serde_json::Value::String(record.args().to_string());
    format!("{{\"level\":{level},\"time\":{time},\"msg\":{msg}}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_escape_and_keep_femmes_fields() {
        let line = json(
            &Record::builder()
                .level(log::Level::Warn)
                .args(format_args!("a \"quoted\"\nline\u{7}"))
                .build(),
        );
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], 40);
        assert_eq!(v["msg"], "a \"quoted\"\nline\u{7}");
        assert!(v["time"].as_u64().unwrap() > 1_600_000_000_000);
    }
}
