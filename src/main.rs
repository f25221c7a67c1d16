use std::io::Write as _;
use std::process::ExitCode;

use webterm::config::{self, Invocation};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    match args.next() {
        Some(a) if a == "sessions" => {
            return ExitCode::from(webterm::monitor::main(args.collect()) as u8)
        }
        Some(a) if a == "keeper" => {
            return ExitCode::from(webterm::keeper::main(args.collect()) as u8)
        }
        Some(a) if a == "health" => {
            return ExitCode::from(webterm::health::main(args.collect()) as u8)
        }
        _ => {}
    }
    // print!/eprintln! panic when the stream is a closed pipe
    // (`webterm --help | head -1`); what cannot be written is dropped.
    let config = match config::from_env() {
        Ok(Invocation::Serve(c)) => c,
        Ok(Invocation::Help) => {
            let _ = std::io::stdout().write_all(config::help().as_bytes());
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            let _ = writeln!(std::io::stdout(), "webterm {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "webterm: {e}");
            return ExitCode::from(2);
        }
    };
    one_executor_thread();
    few_blocking_threads();
    webterm::logging::init(config.log_level.unwrap_or(log::LevelFilter::Info));
    raise_fd_limit();
    let result = async_std::task::block_on(webterm::run(*config));
    let code = match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            log::error!("{e}");
            let _ = writeln!(std::io::stderr(), "webterm: {e}");
            ExitCode::FAILURE
        }
    };
    webterm::logging::flush(webterm::logging::EXIT_FLUSH);
    code
}

/// Runs every session's tasks on one executor thread (besides the main
/// thread, which runs the accept loop), as ttyd runs one event loop. With
/// async-std's default of one thread per core, a keystroke went from the
/// thread that saw the socket readable to another that wrote the PTY, and
/// the echo back again: 5,200 context switches per 1,000 keys against
/// 2,000 with one thread, echo p50 102 µs against 75 (ttyd 85), and output
/// throughput 60 against 69 MB/s at 0.79x the CPU per byte (webterm-bench,
/// docs/performance.md). Nothing on these threads blocks: a spawn runs on
/// the spawner thread and teardown's blocking steps on the blocking pool.
/// Set before anything of async-std runs, which would otherwise size the
/// pool itself.
fn one_executor_thread() {
    async_global_executor::init_with_config(
        async_global_executor::GlobalExecutorConfig::default()
            .with_min_threads(1)
            .with_max_threads(1)
            .with_thread_name_fn(|| "webterm-async".into()),
    );
}

/// Caps the blocking pool (teardown's steps, the orphan reaper, heap trims,
/// name lookups) at four threads, as many as teardown runs steps at once.
///
/// The pool (the `blocking` crate) adds a thread whenever work queues up
/// and, below its limit of 500, never lets one go: after 500 sessions
/// ended at once, seven to ten threads stayed for the life of the server,
/// each keeping its stack (and under glibc an arena), about 150 KB of the
/// memory that should have been given back. The crate reads its limit from
/// the environment once, when first used; it is set for that moment only,
/// so that the commands webterm runs inherit the environment it was given.
/// No other thread reads the environment meanwhile.
fn few_blocking_threads() {
    const VAR: &str = "BLOCKING_MAX_THREADS";
    let given = std::env::var_os(VAR);
    std::env::set_var(VAR, "4");
    async_std::task::block_on(async_std::task::spawn_blocking(|| ()));
    match given {
        Some(v) => std::env::set_var(VAR, v),
        None => std::env::remove_var(VAR),
    }
}

/// Each terminal holds a socket, a PTY and a few pipes, and each connection
/// in progress a socket; the usual soft limit of 1,024 descriptors would run
/// out long before memory does, while the hard limit (often 512Ki or more)
/// is ours to take without privileges.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    webterm::terminal::keep_child_fd_limit(limit.current);
    let show = |v: Option<u64>| v.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    // An unlimited hard limit cannot be the soft limit for descriptors: the
    // kernel caps it at fs.nr_open.
    let target = limit.maximum.or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    match target {
        Some(t) if limit.current.is_some_and(|c| c < t) => {
            let raised = Rlimit {
                current: Some(t),
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => log::info!(
                    "open files limit: soft {} raised to {t} (hard {})",
                    show(limit.current),
                    show(limit.maximum)
                ),
                Err(e) => log::warn!(
                    "open files limit: soft {}, hard {}; could not raise the soft limit: {e}",
                    show(limit.current),
                    show(limit.maximum)
                ),
            }
        }
        _ => log::info!(
            "open files limit: soft {}, hard {}",
            show(limit.current),
            show(limit.maximum)
        ),
    }
}
