//! `pool-manager`: the binary. Parses the flags, sets up logging and hands
//! over to `pool_manager::daemon::run`. See `pool-manager --help` and
//! `docs/ARCHITECTURE.md` for the flags and exit codes.

use anyhow::Context;
use clap::Parser;
use pool_manager::config::{Config, Flags};
use pool_manager::exit_code;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(pool_manager::containment::GUARDIAN_FLAG.as_ref()) {
        // The manager's task guardian (see `containment`), not a manager.
        let cgroup = args.next().map(std::path::PathBuf::from);
        let code = pool_manager::containment::guardian_main(cgroup.as_deref());
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let flags = match Flags::try_parse() {
        Ok(flags) => flags,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                exit_code::USAGE as u8
            } else {
                0
            });
        }
    };
    let config = match Config::from_flags(flags, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("pool-manager: {error}");
            return ExitCode::from(exit_code::USAGE as u8);
        }
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .init();
    match run(config) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::from(exit_code::USAGE as u8)
        }
    }
}

fn run(config: Config) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    Ok(runtime.block_on(pool_manager::daemon::run(config, std::future::pending())))
}
