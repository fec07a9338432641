//! rhtex pool-manager: one process per batch-job block, on the block's lead
//! node. This crate is the shell around `pool_manager_core`.
//!
//! The core decides everything (registration, heartbeats, the slot books,
//! launcher prefixes and task environments, walltimes, why to stop); this
//! crate performs what it decides. It finds the block's nodes ([`nodes`]:
//! the environment and node files, parsed by the core's `hostlist`),
//! reads the flags ([`config`]), owns the link to the interchange (a
//! `transport::MessageLink`), runs each task with `/bin/bash -c` in its own process
//! group ([`launch`], the only module that spawns, with [`containment`]: a cgroup
//! per task where possible) and maps the core's exit
//! reason to the process exit code ([`exit_code`]).
//!
//! The seam: [`daemon`] is the tokio shell. It turns link events, child
//! exits, signals and its monotonic clock (milliseconds since start, as
//! `seam::Time`) into the core's `handle_*` inputs, and performs the
//! outputs drained with `poll_output` until `Exit`. [`daemon::run`] is the
//! single entry point for `main` and for tests.

pub mod config;
pub mod containment;
pub mod daemon;
pub mod launch;
pub mod nodes;

/// Exit codes of the `pool-manager` binary (the contract in
/// `docs/ARCHITECTURE.md`).
pub mod exit_code {
    use pool_manager_core::ExitReason;

    /// A clean shutdown or drain.
    pub const CLEAN: i32 = 0;
    /// Bad flags, or node discovery failed.
    pub const USAGE: i32 = 2;
    /// Refused by the interchange (protocol version, CURVE key).
    pub const REFUSED: i32 = 3;
    /// The interchange was silent past the heartbeat threshold and did not
    /// take the manager back within the re-attach window (or the link to it
    /// failed).
    pub const INTERCHANGE_LOST: i32 = 4;

    /// The exit code for why the core stopped.
    pub fn of(reason: &ExitReason) -> i32 {
        match reason {
            ExitReason::Shutdown { .. } | ExitReason::Terminated { .. } => CLEAN,
            ExitReason::Refused { .. } | ExitReason::HandshakeFailed { .. } => REFUSED,
            ExitReason::InterchangeSilent { .. }
            | ExitReason::ReattachTimedOut { .. }
            | ExitReason::LinkFailed { .. } => INTERCHANGE_LOST,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::time::Duration;

        #[test]
        fn every_exit_reason_has_its_documented_code() {
            let text = || "x".to_owned();
            let cases = [
                (ExitReason::Shutdown { reason: text() }, 0),
                (ExitReason::Terminated { signal: text() }, 0),
                (
                    ExitReason::Refused {
                        reason: text(),
                        protocol_version: 7,
                    },
                    3,
                ),
                (ExitReason::HandshakeFailed { message: text() }, 3),
                (
                    ExitReason::InterchangeSilent {
                        registered: true,
                        threshold: Duration::from_secs(120),
                    },
                    4,
                ),
                (
                    ExitReason::ReattachTimedOut {
                        window: Duration::from_secs(600),
                    },
                    4,
                ),
                (ExitReason::LinkFailed { message: text() }, 4),
            ];
            for (reason, code) in cases {
                assert_eq!(of(&reason), code, "{reason:?}");
            }
        }
    }
}
