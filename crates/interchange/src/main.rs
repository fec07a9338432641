//! `interchange`: the rhtex daemon on the submit host. Thin: flags, logging,
//! then [`interchange::daemon::run`].

use clap::Parser;
use interchange::config::{Config, Environment, Flags};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let flags = Flags::parse();
    let config = match Config::load(flags, &Environment::current()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("interchange: {error}");
            return ExitCode::from(2);
        }
    };
    let filter = match &config.log_level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut stdout = std::io::stdout();
    match interchange::daemon::run(&config, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("interchange: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
