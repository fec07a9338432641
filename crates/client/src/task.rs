//! [`TaskBuilder`]: a task to submit, built field by field and validated
//! once at the end.
//!
//! ```
//! use client::TaskBuilder;
//! use std::time::Duration;
//!
//! let task = TaskBuilder::new("$PARSL_MPI_PREFIX ./simulate")
//!     .num_nodes(2)
//!     .ranks_per_node(4)
//!     .walltime(Duration::from_secs(3600))
//!     .retries(2)
//!     .exclusive(false)
//!     .env("OMP_NUM_THREADS", "4")
//!     .build()
//!     .expect("a valid specification");
//! assert_eq!(task.command, "$PARSL_MPI_PREFIX ./simulate");
//! ```
//!
//! The builder only writes keys into the task's resource request (as the
//! wire carries it, see `proto/PROTOCOL.md` section 8); [`TaskBuilder::build`]
//! runs [`protocol::validate`] and [`protocol::limits::check_submission`]
//! on it, so every rule and error message is the interchange's own.

use protocol::{LimitError, SpecError, SpecValue, TaskId, TaskSubmission};
use std::time::Duration;

/// A task under construction. Every setter replaces an earlier value of the
/// same key.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskBuilder {
    submission: TaskSubmission,
}

impl TaskBuilder {
    /// A serial task (one node, one rank) running `command` with
    /// `/bin/bash -c`, with a fresh random id.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            submission: TaskSubmission::new(TaskId::new_random(), command),
        }
    }

    /// Uses `task_id` instead of a fresh one.
    pub fn task_id(mut self, task_id: TaskId) -> Self {
        self.submission.task_id = task_id;
        self
    }

    /// Sets any resource key to any value, as sent (checked by
    /// [`TaskBuilder::build`]).
    pub fn resource(mut self, key: &str, value: impl Into<SpecValue>) -> Self {
        self.submission.resources.insert(key, value);
        self
    }

    /// Nodes the task needs (default 1).
    pub fn num_nodes(self, num_nodes: u32) -> Self {
        self.resource("num_nodes", num_nodes)
    }

    /// MPI ranks per node.
    pub fn ranks_per_node(self, ranks_per_node: u32) -> Self {
        self.resource("ranks_per_node", ranks_per_node)
    }

    /// MPI ranks in all.
    pub fn num_ranks(self, num_ranks: u32) -> Self {
        self.resource("num_ranks", num_ranks)
    }

    /// Extra arguments for the MPI launcher.
    pub fn launcher_options(self, options: impl Into<String>) -> Self {
        self.resource("launcher_options", options.into())
    }

    /// Smaller runs first; tasks without a priority come last.
    pub fn priority(self, priority: i64) -> Self {
        self.resource("priority", priority)
    }

    /// How long the task may run; the pool-manager kills it past that and it
    /// fails with `walltime_exceeded`. Must be more than zero and at most
    /// [`protocol::spec::MAX_WALLTIME`] seconds.
    pub fn walltime(self, walltime: Duration) -> Self {
        self.resource("walltime", SpecValue::Float(walltime.as_secs_f64()))
    }

    /// How many times the task is queued again if its pool-manager is lost
    /// (at most [`protocol::spec::MAX_RETRIES`]); without it the
    /// interchange's default applies.
    pub fn retries(self, retries: u32) -> Self {
        self.resource("retries", retries)
    }

    /// True (the default): whole nodes. False: `ranks_per_node` slots on each
    /// node, sharing nodes with other non-exclusive tasks.
    pub fn exclusive(self, exclusive: bool) -> Self {
        self.resource("exclusive", exclusive)
    }

    /// An environment variable for this task only.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.submission.env.insert(key.into(), value.into());
        self
    }

    /// Working directory, on the pool-manager's lead node.
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.submission.cwd = Some(cwd.into());
        self
    }

    /// File for stdout, on the pool-manager's lead node.
    pub fn stdout(mut self, path: impl Into<String>) -> Self {
        self.submission.stdout = Some(path.into());
        self
    }

    /// File for stderr, on the pool-manager's lead node.
    pub fn stderr(mut self, path: impl Into<String>) -> Self {
        self.submission.stderr = Some(path.into());
        self
    }

    /// Bytes for the task: on its lead node the pool-manager writes them to
    /// the file named by `RHTEX_TASK_INPUT` before the command starts. At
    /// most the interchange's `max_task_input_bytes` ([`crate::Client::submit`]
    /// checks). The task may return bytes by writing the file named by
    /// `RHTEX_TASK_OUTPUT`; they come back as the result's `output`.
    pub fn input(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.submission.input = Some(bytes.into());
        self
    }

    /// The task, if its resource specification is valid and it is within
    /// the protocol's per-task bounds (command, environment,
    /// `launcher_options`, paths).
    pub fn build(self) -> Result<TaskSubmission, BuildError> {
        protocol::validate(&self.submission.resources)?;
        protocol::limits::check_submission(&self.submission)?;
        Ok(self.submission)
    }
}

/// Why [`TaskBuilder::build`] gave no task.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Limit(#[from] LimitError),
}
