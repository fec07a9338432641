//! End-to-end test harness for rhtex: starts the real `interchange`,
//! `pool-manager` and `rhtex` binaries on 127.0.0.1 and talks to them.
//!
//! - [`scenario`]: one temporary directory per test with every process's log,
//!   keys and run directories; on failure it prints the tail of every log.
//! - [`daemon`]: a spawned process in its own process group, killed (the
//!   whole group) and reaped when dropped (`testkit`'s, shared with the
//!   daemons' own binary tests).
//! - [`client`]: a raw DEALER that speaks the wire protocol (`hello`,
//!   `submit`, results, commands), used to watch what the daemons do.
//! - [`cli`]: runs the `rhtex` command line with a timeout.
//!
//! Every wait is bounded by a timeout; nothing sleeps for synchronisation
//! (waits poll a condition with a short interval until a deadline).

pub mod cli;
pub mod client;
pub mod cluster;
pub mod scenario;

pub use cli::CliOutput;
pub use client::{task, RawClient};
pub use scenario::{Interchange, ManagerOptions, ManagerProcess, Pool, Scenario, Security};
pub use testkit::process as daemon;
pub use testkit::{bin_dir, binary, require_root, wait_for, workspace_dir, Daemon, POLL_INTERVAL};

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The bound on every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(30);

/// Heartbeat flags given to every daemon, so that loss is detected quickly.
pub const HEARTBEAT_PERIOD: &str = "0.2";
pub const HEARTBEAT_THRESHOLD: &str = "3";

/// The directory holding the recording fake launchers (`srun`, `aprun`).
pub fn fakes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fakes")
}

/// The lines of a file that tasks append to (none if it does not exist).
pub fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The directory holding the MPI sources used by the tests.
pub fn mpi_sources_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mpi")
}
