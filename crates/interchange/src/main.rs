//! `interchange`: the rhtex daemon on the submit host. Thin: flags, logging,
//! then [`interchange::daemon::run`].

use clap::Parser;
use interchange::config::{Config, Environment, Flags};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// jemalloc, not glibc's malloc: the interchange allocates and frees a few
/// small objects per task on its event loop while libzmq's I/O thread
/// allocates the frames, and with jemalloc its CPU per task in benchmark 1
/// is about a fifth lower (docs/PERFORMANCE.md, section 1). Freed pages
/// go back to the system 100 ms after they fall idle
/// (`dirty_decay_ms:100`, built in by `.cargo/config.toml`), so a burst
/// of large submits leaves no more resident than glibc did.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
