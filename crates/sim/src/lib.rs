//! Deterministic scheduling simulator: runs a workload on the [`pair`]
//! harness (the real interchange core and one real pool-manager core per
//! block, a fake launcher, virtual time) and measures how well it
//! schedules. It models no daemon of its own.
//!
//! - [`workload`]: what to simulate (tasks with submit time, resource
//!   specification and true duration; blocks with nodes, slots per node,
//!   join and leave times), generated from a seed or read from a file.
//! - [`sim`]: the workload's events (submissions, blocks joining and
//!   leaving) on the Pair, and the checks after every step.
//! - [`records`]: the settings and what is recorded of each task.
//! - [`report`]: utilization, makespan against its lower bound, waits,
//!   counts and checks.
//! - [`rng`]: the seeded generator the workloads draw from.
//!
//! The seams are the cores' own: frames encoded and decoded with
//! `protocol`'s codec as the daemons do, fed through `handle_*`, outputs
//! drained with `poll_output`, deadlines from `poll_timeout` (see `pair`).
//! The simulator does no I/O and reads no clock, so a seed gives the same
//! report every time. The binary `rhtex-sim` runs one workload and prints
//! its report.

pub mod records;
pub mod report;
pub mod rng;
pub mod sim;
pub mod workload;

pub use report::Report;
pub use sim::{SimConfig, SimError, Simulation};
pub use workload::{BlockSpec, TaskSpec, Workload, WorkloadError};

/// Runs a workload to the end and measures it.
pub fn simulate(
    workload: &Workload,
    config: SimConfig,
    seed: Option<u64>,
) -> Result<Report, SimError> {
    let mut simulation = Simulation::new(workload, config)?;
    simulation.run();
    Ok(Report::of(
        &simulation,
        &workload.name,
        &workload.description,
        seed,
    ))
}
