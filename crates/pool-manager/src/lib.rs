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
//! ([`transport`]), the child processes ([`launch`]), signals and timers.
//! [`daemon::run`] is the single entry point for `main` and for tests.

pub mod config;
pub mod daemon;
pub mod launch;
pub mod nodes;
pub mod transport;

pub use pool_manager_core::exit_code;
