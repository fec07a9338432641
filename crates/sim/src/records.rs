//! What a simulation is set up with and what it records: [`SimConfig`],
//! the record of each task ([`TaskRecord`], its [`Dispatch`]es) and the
//! spans during which tasks held nodes ([`BusySpan`]); times in
//! milliseconds of virtual time ([`Millis`]).

use crate::workload::{TaskSpec, WorkloadError};
use interchange_core::CoreConfig;
use protocol::{ErrorKind, NodeShare, TaskId, TaskResources, TaskResult};

/// How to run a simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The interchange core's settings (placement, retries, block limit,
    /// heartbeats). The pool-manager cores take its heartbeat period and
    /// threshold.
    pub core: CoreConfig,
    /// Most tasks in one `submit` message (tasks with the same submit time
    /// go together).
    pub batch_size: usize,
    /// After every event, also ask the core for `status` and record as a
    /// violation any queued task that a manager with room for it, and no
    /// reservation, did not start. Costs one status per event: for small
    /// workloads.
    pub check_unreserved_capacity: bool,
    /// At most this many violation messages are kept (all are counted).
    pub max_violation_messages: usize,
    /// After every step, run every manager core's `validate()` and the
    /// interchange core's (a failure is a violation).
    pub validate_every_step: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            core: CoreConfig::default(),
            batch_size: 1000,
            check_unreserved_capacity: false,
            max_violation_messages: 50,
            validate_every_step: true,
        }
    }
}

/// Why a simulation cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("the heartbeat period must be more than zero")]
    ZeroHeartbeat,
    #[error("the batch size must be at least 1")]
    ZeroBatch,
}

/// Milliseconds of virtual time.
pub type Millis = u64;

/// Seconds to milliseconds (workloads are validated to fit).
pub fn to_millis(seconds: f64) -> Millis {
    (seconds.max(0.0) * 1000.0).round() as Millis
}

/// Milliseconds to seconds.
pub fn to_seconds(millis: Millis) -> f64 {
    millis as f64 / 1000.0
}

/// One time the core sent a task to a manager.
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    /// Index of the block whose manager got it.
    pub block: usize,
    pub at: Millis,
    pub placement: Vec<NodeShare>,
    pub resources: TaskResources,
}

/// What happened to one task of the workload.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    pub spec: TaskSpec,
    pub task_id: TaskId,
    /// The specification as validated (`None`: invalid, the core refuses it).
    pub resources: Option<TaskResources>,
    pub submitted: bool,
    /// Every dispatch, in order (more than one only after a retry).
    pub dispatches: Vec<Dispatch>,
    /// The first result the client got, and when.
    pub result: Option<(Millis, TaskResult)>,
    /// How many results the client got (exactly one is right).
    pub n_results: u32,
}

impl TaskRecord {
    /// Time from submission to the first dispatch.
    pub fn wait(&self) -> Option<Millis> {
        let first = self.dispatches.first()?;
        Some(first.at.saturating_sub(to_millis(self.spec.submit)))
    }

    pub fn error_kind(&self) -> Option<ErrorKind> {
        self.result
            .as_ref()
            .and_then(|(_, result)| result.error.as_ref().map(|error| error.kind))
    }
}

/// A span of time a task held part of a manager's nodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BusySpan {
    pub start: Millis,
    pub end: Millis,
    /// Node equivalents held: whole nodes for an exclusive task; for a
    /// shared one, `ranks_per_node / slots_per_node` of each node.
    pub nodes: f64,
}
