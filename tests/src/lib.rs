//! End-to-end test harness for rhtex: starts the real `interchange`,
//! `pool-manager` and `rhtex` binaries on 127.0.0.1 and talks to them.
//!
//! - [`scenario`]: one temporary directory per test with every process's log,
//!   keys and run directories; on failure it prints the tail of every log.
//! - [`daemon`]: a spawned process in its own process group, killed (the
//!   whole group) and reaped when dropped.
//! - [`client`]: a raw DEALER that speaks the wire protocol (`hello`,
//!   `submit`, results, commands), used to watch what the daemons do.
//! - [`cli`]: runs the `rhtex` command line with a timeout.
//!
//! Every wait is bounded by a timeout; nothing sleeps for synchronisation
//! (waits poll a condition with a short interval until a deadline).

pub mod cli;
pub mod client;
pub mod cluster;
pub mod daemon;
pub mod scenario;

pub use cli::CliOutput;
pub use client::{task, RawClient};
pub use daemon::Daemon;
pub use scenario::{Interchange, ManagerOptions, ManagerProcess, Scenario, Security};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The bound on every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(30);

/// How often a polling wait looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Heartbeat flags given to every daemon, so that loss is detected quickly.
pub const HEARTBEAT_PERIOD: &str = "0.2";
pub const HEARTBEAT_THRESHOLD: &str = "3";

/// The repository root (the workspace).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The directory holding the recording fake launchers (`srun`, `aprun`).
pub fn fakes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fakes")
}

/// The directory holding the MPI sources used by the tests.
pub fn mpi_sources_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mpi")
}

/// Where the workspace binaries are: `RHTEX_BIN_DIR` if set, else
/// `$CARGO_TARGET_DIR/debug`, else `<workspace>/target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RHTEX_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_dir().join(dir)
            }
        }
        None => workspace_dir().join("target"),
    };
    target.join("debug")
}

/// The path of one workspace binary; panics with what to do if it is missing.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "binary {name} not found at {}: run `cargo build --workspace --bins` first \
         (or set RHTEX_BIN_DIR to the directory holding interchange, pool-manager and rhtex)",
        path.display()
    );
    path
}

/// Polls `probe` until it gives `Some`, at most until `timeout` has passed;
/// panics naming `what` if it never does.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}
