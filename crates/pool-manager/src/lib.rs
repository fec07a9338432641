//! rhtex pool-manager: one process per batch-job block, on the block's lead
//! node.
//!
//! It finds the block's nodes ([`nodes`]), registers with the interchange,
//! heartbeats, receives tasks, checks and records the nodes and slots the
//! interchange placed each task on ([`core::allocator`]), composes the MPI
//! launcher prefixes and the `PARSL_*` environment ([`prefix`]) without the
//! block job's own Slurm step settings ([`slurm`]), runs each task with
//! `/bin/bash -c` in its own process group ([`launch`]), kills it when it
//! runs past its walltime, and reports its result.
//!
//! The seam: [`core`] is a pure state machine (inputs `handle_*(now, ...)`,
//! outputs drained with `poll_output`, deadlines from `poll_timeout`);
//! [`daemon`] is the tokio shell that owns the link to the interchange
//! (a `transport::MessageLink`), the child processes ([`launch`]), signals
//! and timers.
//! [`daemon::run`] is the single entry point for `main` and for tests.

pub mod config;
pub mod core;
pub mod daemon;
pub mod launch;
pub mod nodes;
pub mod prefix;
pub mod slurm;

/// Exit codes of the `pool-manager` binary (the contract in
/// `docs/ARCHITECTURE.md`).
pub mod exit_code {
    /// A clean shutdown or drain.
    pub const CLEAN: i32 = 0;
    /// Bad flags, or node discovery failed.
    pub const USAGE: i32 = 2;
    /// Refused by the interchange (protocol version, CURVE key).
    pub const REFUSED: i32 = 3;
    /// The interchange was silent past the heartbeat threshold.
    pub const INTERCHANGE_LOST: i32 = 4;
}
