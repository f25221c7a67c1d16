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
    webterm::logging::init(config.log_level.unwrap_or(log::LevelFilter::Info));
    let result = async_std::task::block_on(webterm::run(*config));
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            let _ = writeln!(std::io::stderr(), "webterm: {e}");
            ExitCode::FAILURE
        }
    };
    webterm::logging::flush(webterm::logging::EXIT_FLUSH);
    code
}
