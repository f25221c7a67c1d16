//! Logging: femme's ndjson for machines, a compact line for people.
//!
//! femme chooses its format by build profile (pretty in debug builds, ndjson
//! in release), not by where the output goes. Operators read a terminal and
//! log collectors read a pipe, so we decide by that instead: on a terminal a
//! short human line; otherwise femme, which writes ndjson in release builds.

use std::io::{IsTerminal as _, Write as _};

use log::{LevelFilter, Log, Metadata, Record};

pub fn init(level: LevelFilter) {
    if std::io::stdout().is_terminal() {
        if log::set_boxed_logger(Box::new(Pretty)).is_ok() {
            log::set_max_level(level);
        }
    } else {
        femme::with_level(level);
    }
}

struct Pretty;

impl Log for Pretty {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let color = match record.level() {
            log::Level::Error => "\x1b[31m",
            log::Level::Warn => "\x1b[33m",
            log::Level::Info => "\x1b[32m",
            _ => "\x1b[2m",
        };
        // A closed terminal must not take the server down: errors are dropped.
        let _ = writeln!(
            std::io::stdout().lock(),
            "{color}{:<5}\x1b[0m {}",
            record.level(),
            record.args()
        );
    }

    fn flush(&self) {}
}
