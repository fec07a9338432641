//! The pure core of the rhtex pool-manager: everything the manager decides,
//! with no I/O.
//!
//! The seam, shared with the interchange core: inputs are `handle_*(now,
//! ...)` calls on [`PoolManager`] with decoded messages and events, where
//! `now` is a [`seam::Time`] (milliseconds on the shell's monotonic clock,
//! or virtual time in tests); outputs are drained with
//! [`PoolManager::poll_output`] ([`Output`]: send, launch, kill, exit) and
//! the next deadline comes from [`PoolManager::poll_timeout`]. The last
//! output is [`Output::Exit`] with a typed [`ExitReason`]; the shell maps it
//! to the process exit code. This crate reads no clock, touches no socket
//! or file, and spawns nothing: its dependencies are `protocol`, `seam`,
//! `thiserror` and `tracing` (`cargo tree -p pool-manager-core -e normal`).
//!
//! One module owns each kind of state:
//! - [`pool_manager`]: the lifecycle with the interchange (registration,
//!   heartbeats, silence, drain, stopping) and the routing of inputs;
//! - `tasks`: the running tasks, their slots and walltime deadlines, and
//!   the results built from them, including the task payloads: the input
//!   and the input and output files in each [`Launch`], and what the shell
//!   read back ([`TaskOutput`] in [`TaskExit`]) checked against the
//!   interchange's `max_task_output_bytes`;
//! - [`allocator`]: the free slots of every node, checking each placement;
//! - [`events`]: the seam's input and output types.
//!
//! And pure functions the shell and the state machine share:
//! [`prefix`] (launcher prefixes and the task environment), [`slurm`] (the
//! block job's settings kept from tasks, Hydra's arguments) and
//! [`hostlist`] (Slurm host lists and PBS node files).

pub mod allocator;
pub mod environment;
pub mod events;
pub mod hostlist;
pub mod pool_manager;
pub mod prefix;
mod reattach;
pub mod slurm;
mod tasks;
#[cfg(test)]
mod test_support;

pub use tasks::{INPUT_VARIABLE, OUTPUT_VARIABLE};

pub use environment::{BaseEnv, EnvSource, Environment};
pub use events::{
    signal_name, ExitReason, ExitStatus, KillReason, Launch, LinkStatus, Output, OutputFile,
    TaskExit, TaskInput, TaskOutput,
};
pub use pool_manager::{PoolManager, Settings};
