//! Helpers shared by the simulator tests: build small workloads, run them
//! through the real interchange core, and check what every run must show.

#![allow(dead_code)]

use sim::{BlockSpec, Report, SimConfig, Simulation, TaskSpec, Workload};

pub fn workload(name: &str, blocks: Vec<BlockSpec>, tasks: Vec<TaskSpec>) -> Workload {
    Workload {
        name: name.to_owned(),
        description: format!("test scenario {name}"),
        tasks,
        blocks,
    }
}

/// A block of `nodes` nodes with 8 slots each, joined at `join` seconds.
pub fn block(nodes: u32, join: f64) -> BlockSpec {
    BlockSpec::new(nodes, 8, join)
}

/// Sets up a simulation with the default core settings.
pub fn start(workload: &Workload) -> Simulation {
    start_with(workload, SimConfig::default())
}

pub fn start_with(workload: &Workload, config: SimConfig) -> Simulation {
    match Simulation::new(workload, config) {
        Ok(simulation) => simulation,
        Err(error) => panic!("cannot set up {}: {error}", workload.name),
    }
}

/// Runs to the end and measures.
pub fn run_with(workload: &Workload, config: SimConfig) -> (Simulation, Report) {
    let mut simulation = start_with(workload, config);
    simulation.run();
    let report = Report::of(&simulation, &workload.name, &workload.description, None);
    (simulation, report)
}

pub fn run(workload: &Workload) -> (Simulation, Report) {
    run_with(workload, SimConfig::default())
}

/// [`run_with`], and checks the run is clean ([`assert_clean`]).
pub fn run_clean_with(workload: &Workload, config: SimConfig) -> (Simulation, Report) {
    let (simulation, report) = run_with(workload, config);
    assert_clean(&report);
    (simulation, report)
}

/// [`run`], and checks the run is clean ([`assert_clean`]).
pub fn run_clean(workload: &Workload) -> (Simulation, Report) {
    run_clean_with(workload, SimConfig::default())
}

/// Tasks `(submit, duration, num_nodes)`, as [`TaskSpec::new`] makes each.
pub fn task_specs(specs: &[(f64, f64, u32)]) -> Vec<TaskSpec> {
    specs
        .iter()
        .map(|(submit, duration, num_nodes)| TaskSpec::new(*submit, *duration, *num_nodes))
        .collect()
}

/// Every task got exactly one result, no placement or idle-block violation,
/// and the run did not stall.
pub fn assert_clean(report: &Report) {
    assert!(
        report.exactly_once && report.n_violations == 0 && !report.stalled,
        "run is not clean:\n{report}"
    );
}

/// The time (seconds) at which the client got task `index`'s result.
pub fn result_time(simulation: &Simulation, index: usize) -> Option<f64> {
    simulation.tasks()[index]
        .result
        .as_ref()
        .map(|(at, _)| *at as f64 / 1000.0)
}

/// The time (seconds) of task `index`'s first dispatch.
pub fn start_time(simulation: &Simulation, index: usize) -> Option<f64> {
    simulation.tasks()[index]
        .dispatches
        .first()
        .map(|dispatch| dispatch.at as f64 / 1000.0)
}
