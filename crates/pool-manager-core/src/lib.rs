//! The pure core of the rhtex pool-manager.
//!
//! Temporary root while the core moves out of the daemon crate.

pub mod allocator;
pub mod hostlist;
pub mod pool_manager;
pub mod prefix;
pub mod slurm;

pub use pool_manager::{
    signal_name, ExitStatus, KillReason, Launch, LinkStatus, Output, PoolManager, Settings,
    TaskExit,
};

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
