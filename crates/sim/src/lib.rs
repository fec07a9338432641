//! Deterministic scheduling simulator: drives the real interchange core
//! ([`interchange_core::Core`]) with a simulated client and simulated
//! pool-managers in virtual time, and measures how well it schedules.
//!
//! - [`workload`]: what to simulate (tasks with submit time, resource
//!   specification and true duration; blocks with nodes, slots per node,
//!   join and leave times), generated from a seed or read from a file.
//! - [`sim`]: the event loop, the simulated peers and their ledger of every
//!   node's slots, which checks each placement the core makes.
//! - [`report`]: utilization, makespan against its lower bound, waits,
//!   counts and checks.
//! - [`rng`]: the seeded generator the workloads draw from.
//!
//! The seam is the core's own: frames encoded and decoded with `protocol`'s
//! codec as the daemon does, fed through `handle_*`, outputs drained with `poll_output`, deadlines from `poll_timeout`. The
//! simulator does no I/O and reads no clock, so a seed gives the same
//! report every time. The binary `rhtex-sim` runs one workload and prints
//! its report.

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
