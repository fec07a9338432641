//! What a [`Pair`](crate::Pair) is set up with ([`PairConfig`],
//! [`ManagerSpec`]) and what it shows of a run ([`ManagerLife`], the trace
//! entries [`Seen`], and what each [`Step`] handled).

use interchange_core::CoreConfig;
use pool_manager_core::{ExitReason, ExitStatus, Settings};
use protocol::{
    Launcher, ManagerId, Registration, TaskId, ToManager, PROTOCOL_VERSION, RHTEX_VERSION,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How the harness runs.
#[derive(Clone, Debug)]
pub struct PairConfig {
    /// The interchange core's settings; managers added with a
    /// [`ManagerSpec`] take its heartbeat period and threshold.
    pub interchange: CoreConfig,
    /// How long every message takes to cross, each way. Zero: it arrives
    /// in the step that sent it.
    pub delay: Duration,
    /// After every step, run every live manager core's `validate()` and the
    /// interchange core's, and record a failure as a [`Problem`].
    pub validate_every_step: bool,
    /// Keep a trace of what managers got and ran ([`Pair::poll_seen`]).
    pub record: bool,
    /// The managers' `reattach_timeout`: zero (the default) stops a
    /// manager that loses the interchange at once, as `--reattach-timeout
    /// 0` does.
    pub reattach_timeout: Duration,
}

impl Default for PairConfig {
    fn default() -> Self {
        Self {
            interchange: CoreConfig::default(),
            delay: Duration::ZERO,
            validate_every_step: true,
            record: false,
            reattach_timeout: Duration::ZERO,
        }
    }
}

/// A pool-manager to add: its registration's essentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerSpec {
    pub manager_id: ManagerId,
    pub block_id: String,
    pub n_nodes: u32,
    pub slots_per_node: u32,
}

impl ManagerSpec {
    /// The manager's settings: nodes `<block_id>-n<i>`, the `mpiexec`
    /// launcher, the interchange's heartbeat period and threshold.
    pub fn settings(&self, interchange: &CoreConfig) -> Settings {
        Settings {
            registration: Registration {
                protocol_version: PROTOCOL_VERSION,
                manager_id: self.manager_id,
                block_id: self.block_id.clone(),
                hostname: format!("{}-n0", self.block_id),
                nodes: (0..self.n_nodes)
                    .map(|node| format!("{}-n{node}", self.block_id))
                    .collect(),
                launcher: Launcher::Mpiexec,
                rhtex_version: RHTEX_VERSION.to_owned(),
                cpu_count: self.slots_per_node,
                slots_per_node: Some(self.slots_per_node),
                versions: BTreeMap::new(),
                attempt: 0,
                running_tasks: Vec::new(),
                held_results: Vec::new(),
            },
            interchange_url: "tcp://pair:0".to_owned(),
            run_dir: PathBuf::from(format!("/pair/{}", self.block_id)),
            heartbeat_period: interchange.heartbeat_period,
            heartbeat_threshold: interchange.heartbeat_threshold,
            reattach_timeout: Duration::ZERO,
            drain_period: None,
            base_env: BTreeMap::new(),
        }
    }
}

/// Where a manager is in its life, as the harness runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagerLife {
    Alive,
    /// Killed by the test: its messages stopped and its tasks vanished.
    Killed,
    /// Its core exited.
    Exited(ExitReason),
}

/// What the trace shows (with [`PairConfig::record`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    /// A manager core was given this message.
    ToManager {
        manager: usize,
        message: ToManager,
    },
    /// The fake launcher started a task.
    Launched {
        manager: usize,
        task_id: TaskId,
    },
    /// A fake task exited, and the manager core was told.
    Exited {
        manager: usize,
        task_id: TaskId,
        status: ExitStatus,
    },
    /// A task vanished with its killed manager.
    Vanished {
        manager: usize,
        task_id: TaskId,
    },
    ManagerExited {
        manager: usize,
        reason: ExitReason,
    },
    InterchangeExited,
}

/// What a step handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A core's deadline (heartbeats, silence, walltimes, shutdown grace).
    Timeout,
    /// A message arriving or a task exiting.
    Event,
}
