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
    let config = match config::from_env() {
        Ok(Invocation::Serve(c)) => c,
        Ok(Invocation::Help) => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("webterm {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("webterm: {e}");
            return ExitCode::from(2);
        }
    };
    webterm::logging::init(config.log_level.unwrap_or(log::LevelFilter::Info));
    match async_std::task::block_on(webterm::run(*config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("webterm: {e}");
            ExitCode::FAILURE
        }
    }
}
