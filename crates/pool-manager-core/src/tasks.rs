//! The running tasks: the only owner of the task table, the slot
//! allocator's books and the walltime deadlines, and of every change to
//! them (start, kill, end).
//!
//! [`Tasks::start`] checks a dispatched task (duplicate id, placement
//! against the free slots) and, if it may run, records it and composes the
//! [`Launch`] (environment, resolved paths, walltime deadline); a task that
//! may not run comes back as the message of its `launch_failed` result.
//! [`Tasks::mark_killed`] records why a task is being killed (its walltime
//! no longer matters), and [`Tasks::end`] removes a task and frees its
//! slots. The functions at the end build the wire [`TaskResult`] of a task
//! from what is recorded here: the wire message is made when it is sent,
//! never kept as state. Pure: time comes in as [`Time`].

use crate::allocator::{Allocator, SlotRequest};
use crate::environment::BaseEnv;
use crate::events::{
    signal_name, ExitStatus, KillReason, Launch, OutputFile, TaskExit, TaskInput, TaskOutput,
};
use crate::pool_manager::Settings;
use crate::prefix::{task_environment, TaskContext};
use protocol::{ErrorKind, Registration, TaskDispatch, TaskError, TaskId, TaskResult, TaskState};
use seam::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A task that has been launched and has not yet been reported.
#[derive(Debug)]
pub(crate) struct Running {
    nodes: Vec<String>,
    stdout: PathBuf,
    stderr: PathBuf,
    kill: Option<KillReason>,
    /// The task's `walltime` in seconds and when it runs out.
    walltime: Option<(f64, Time)>,
    /// The largest output it may return.
    max_output_bytes: u64,
}

/// Environment variables naming a task's input and output files.
pub const INPUT_VARIABLE: &str = "RHTEX_TASK_INPUT";
pub const OUTPUT_VARIABLE: &str = "RHTEX_TASK_OUTPUT";

/// The task table, the allocator and the walltime deadlines.
#[derive(Debug)]
pub(crate) struct Tasks {
    allocator: Allocator,
    running: BTreeMap<TaskId, Running>,
    /// Walltime deadlines of running tasks not yet being killed.
    deadlines: BTreeSet<(Time, TaskId)>,
    /// The environment every task starts from, shared by their launches.
    base_env: BaseEnv,
}

impl Tasks {
    /// No task yet, on the registration's nodes and slots per node
    /// (absent: `cpu_count`, at least 1); every task's environment starts
    /// from `base_env`.
    pub(crate) fn new(registration: &Registration, base_env: BaseEnv) -> Self {
        let slots_per_node = registration
            .slots_per_node
            .unwrap_or(registration.cpu_count)
            .max(1);
        Self {
            allocator: Allocator::new(registration.nodes.len(), slots_per_node),
            running: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            base_env,
        }
    }

    pub(crate) fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    pub(crate) fn n_running(&self) -> usize {
        self.running.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// The earliest walltime deadline of a task not yet being killed.
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// A task whose walltime ran out by `now` and that is not yet being
    /// killed, with its walltime in seconds.
    pub(crate) fn overdue(&self, now: Time) -> Option<(TaskId, f64)> {
        let &(deadline, task_id) = self.deadlines.first()?;
        if deadline > now {
            return None;
        }
        let walltime = self
            .running
            .get(&task_id)
            .and_then(|running| running.walltime)
            .map_or(0.0, |(seconds, _)| seconds);
        Some((task_id, walltime))
    }

    /// `Some(true)` if the task is running and being killed, `Some(false)`
    /// if it runs, `None` if it is not running here.
    pub(crate) fn is_being_killed(&self, task_id: TaskId) -> Option<bool> {
        self.running
            .get(&task_id)
            .map(|running| running.kill.is_some())
    }

    /// The running tasks not yet being killed.
    pub(crate) fn not_being_killed(&self) -> Vec<TaskId> {
        self.running
            .iter()
            .filter(|(_, running)| running.kill.is_none())
            .map(|(task_id, _)| *task_id)
            .collect()
    }

    /// Every running task with the placement it runs on, for a
    /// registration again.
    pub(crate) fn holdings(&self) -> Vec<protocol::HeldTask> {
        self.running
            .keys()
            .map(|task_id| protocol::HeldTask {
                task_id: *task_id,
                placement: self
                    .allocator
                    .shares_of(*task_id)
                    .map(<[_]>::to_vec)
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Records that the task is being killed for `reason` (its walltime no
    /// longer matters). False if it is not running.
    pub(crate) fn mark_killed(&mut self, task_id: TaskId, reason: KillReason) -> bool {
        let Some(running) = self.running.get_mut(&task_id) else {
            return false;
        };
        running.kill = Some(reason);
        if let Some((_, deadline)) = running.walltime {
            self.deadlines.remove(&(deadline, task_id));
        }
        true
    }

    /// Removes a task and frees its slots.
    pub(crate) fn end(&mut self, task_id: TaskId) -> Option<Running> {
        let running = self.running.remove(&task_id)?;
        self.allocator.release(task_id);
        if let Some((_, deadline)) = running.walltime {
            self.deadlines.remove(&(deadline, task_id));
        }
        Some(running)
    }

    /// Checks a dispatched task and records it; returns what to launch, or
    /// the message of its `launch_failed` result. Its output may have at
    /// most `max_output_bytes`.
    pub(crate) fn start(
        &mut self,
        now: Time,
        task: TaskDispatch,
        settings: &Settings,
        max_output_bytes: u64,
    ) -> Result<Launch, String> {
        let task_id = task.task_id;
        if self.running.contains_key(&task_id) {
            return Err(format!("duplicate task id {task_id}: a task with this id is already running on this manager (protocol violation by the interchange)"));
        }
        let request = SlotRequest {
            num_nodes: task.resources.num_nodes,
            exclusive: task.resources.exclusive,
        };
        if let Err(error) = self.allocator.claim(task_id, request, &task.placement) {
            return Err(format!(
                "invalid placement {} from the interchange (protocol violation): {error}",
                describe_placement(&task.placement)
            ));
        }
        // The allocator has checked every index against the node list.
        let registration = &settings.registration;
        let hosts: Vec<String> = task
            .placement
            .iter()
            .map(|share| registration.nodes[share.node as usize].clone())
            .collect();
        let slots = task
            .placement
            .iter()
            .map(|share| share.slots)
            .min()
            .unwrap_or(1);
        let mut env = task_environment(
            &self.base_env,
            &TaskContext {
                task_id,
                manager_id: registration.manager_id,
                block_id: &registration.block_id,
                launcher: registration.launcher,
                resources: &task.resources,
                hosts: &hosts,
                slots,
            },
            &task.env,
        );
        let run_dir = &settings.run_dir;
        let resolve = |given: &Option<String>, default: PathBuf| match given {
            Some(path) if !path.is_empty() => run_dir.join(Path::new(path)),
            _ => default,
        };
        let cwd = resolve(&task.cwd, run_dir.clone());
        let tasks_dir = run_dir.join("tasks");
        let stdout = resolve(&task.stdout, tasks_dir.join(format!("{task_id}.stdout")));
        let stderr = resolve(&task.stderr, tasks_dir.join(format!("{task_id}.stderr")));
        // The files are the manager's: they override the task's own env.
        let input = task.input.map(|bytes| TaskInput {
            path: tasks_dir.join(format!("{task_id}.input")),
            bytes,
        });
        if let Some(input) = &input {
            env.insert(INPUT_VARIABLE.to_owned(), input.path.display().to_string());
        } else {
            env.remove(INPUT_VARIABLE);
        }
        let output = OutputFile {
            path: tasks_dir.join(format!("{task_id}.output")),
            max_bytes: max_output_bytes,
        };
        env.insert(
            OUTPUT_VARIABLE.to_owned(),
            output.path.display().to_string(),
        );
        let walltime = task.resources.walltime.and_then(|seconds| {
            let deadline = Duration::try_from_secs_f64(seconds)
                .ok()
                .and_then(|walltime| deadline_after(now, walltime));
            if deadline.is_none() {
                tracing::warn!(%task_id, walltime_s = seconds, "walltime out of range; the task runs without one");
            }
            deadline.map(|deadline| (seconds, deadline))
        });
        if let Some((_, deadline)) = walltime {
            self.deadlines.insert((deadline, task_id));
        }
        self.running.insert(
            task_id,
            Running {
                nodes: hosts.clone(),
                stdout: stdout.clone(),
                stderr: stderr.clone(),
                kill: None,
                walltime,
                max_output_bytes,
            },
        );
        Ok(Launch {
            task_id,
            command: task.command,
            env,
            cwd,
            stdout,
            stderr,
            nodes: hosts,
            input,
            output,
        })
    }

    /// Checks the allocator and that it agrees with the task table and the
    /// deadlines.
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.allocator.validate()?;
        let n_held: u64 = self
            .running
            .keys()
            .map(|task_id| {
                self.allocator.shares_of(*task_id).map_or(0, |shares| {
                    shares.iter().map(|share| u64::from(share.slots)).sum()
                })
            })
            .sum();
        if n_held + self.allocator.n_free_slots() != self.allocator.n_total_slots() {
            return Err(format!(
                "running tasks hold {n_held} slots, {} free of {}",
                self.allocator.n_free_slots(),
                self.allocator.n_total_slots()
            ));
        }
        for (deadline, task_id) in &self.deadlines {
            let listed = self
                .running
                .get(task_id)
                .and_then(|running| running.walltime)
                .is_some_and(|(_, at)| at == *deadline);
            if !listed {
                return Err(format!("deadline of task {task_id} that is not running"));
            }
        }
        Ok(())
    }
}

/// `now` plus `duration` rounded up to the next millisecond (a task never
/// runs out of time early), or `None` past the end of [`Time`].
fn deadline_after(now: Time, duration: Duration) -> Option<Time> {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    let millis = u64::try_from(millis).ok()?;
    now.as_millis().checked_add(millis).map(Time::from_millis)
}

/// The result of a task whose process ended. `stop_message` says why the
/// manager is stopping, for tasks it killed on the way out.
pub(crate) fn exit_result(
    registration: &Registration,
    task_id: TaskId,
    running: Running,
    exit: TaskExit,
    stop_message: &str,
) -> TaskResult {
    let mut result = base_result(registration, task_id, &running);
    result.nodes = running.nodes;
    result.stdout_tail = tail(exit.stdout_tail);
    result.stderr_tail = tail(exit.stderr_tail);
    result.start_time = Some(exit.start_time);
    result.end_time = Some(exit.end_time);
    let (state, error) = match (running.kill, exit.status) {
        (Some(KillReason::Cancelled), _) => (
            TaskState::Cancelled,
            Some((ErrorKind::Cancelled, "cancelled by a client".to_owned())),
        ),
        (Some(KillReason::WalltimeExceeded), _) => (
            TaskState::Failed,
            Some((
                ErrorKind::WalltimeExceeded,
                format!(
                    "killed after running longer than its walltime of {} s",
                    running.walltime.map_or(0.0, |(seconds, _)| seconds)
                ),
            )),
        ),
        (Some(reason), _) => (
            TaskState::Failed,
            Some((
                ErrorKind::Killed,
                format!(
                    "killed by the pool-manager ({}): {stop_message}",
                    reason.as_str(),
                ),
            )),
        ),
        (None, ExitStatus::Code(0)) => (TaskState::Completed, None),
        (None, ExitStatus::Code(code)) => (
            TaskState::Failed,
            Some((ErrorKind::ExitCode, format!("exited with code {code}"))),
        ),
        (None, ExitStatus::Signal(signal)) => (
            TaskState::Failed,
            Some((
                ErrorKind::Signaled,
                format!("killed by signal {signal} ({})", signal_name(signal)),
            )),
        ),
    };
    match exit.status {
        ExitStatus::Code(code) => result.exit_code = Some(code),
        ExitStatus::Signal(signal) => result.signal = Some(signal),
    }
    result.state = state;
    result.error = error.map(|(kind, message)| TaskError { kind, message });
    take_output(&mut result, exit.output, running.max_output_bytes);
    result
}

/// Puts the task's output into its result if it is within `max_bytes`. An
/// output too large, or unreadable, fails a task that completed (a task
/// that failed otherwise keeps its own error, without output).
fn take_output(result: &mut TaskResult, output: TaskOutput, max_bytes: u64) {
    let problem = match output {
        TaskOutput::Absent => return,
        TaskOutput::Read { bytes, size } => {
            let n_bytes = size.max(bytes.len() as u64);
            if n_bytes <= max_bytes {
                result.output = Some(bytes);
                return;
            }
            TaskError {
                kind: ErrorKind::OutputTooLarge,
                message: format!(
                    "the task's output file has {n_bytes} bytes; max_task_output_bytes is {max_bytes}"
                ),
            }
        }
        TaskOutput::Unreadable(reason) => TaskError {
            kind: ErrorKind::LaunchFailed,
            message: format!("cannot read the task's output file: {reason}"),
        },
    };
    tracing::warn!(task_id = %result.task_id, kind = %problem.kind, message = %problem.message, "task output dropped");
    if result.state == TaskState::Completed {
        result.state = TaskState::Failed;
        result.error = Some(problem);
    }
}

/// The result of a launched task whose process could not be started.
pub(crate) fn launch_failed_result(
    registration: &Registration,
    task_id: TaskId,
    running: &Running,
    message: String,
) -> TaskResult {
    let mut result = base_result(registration, task_id, running);
    result.error = Some(TaskError {
        kind: ErrorKind::LaunchFailed,
        message,
    });
    result
}

/// The result of a task that was never launched.
pub(crate) fn rejected_result(
    registration: &Registration,
    task_id: TaskId,
    message: String,
) -> TaskResult {
    let mut result = TaskResult::failed_before_start(task_id, ErrorKind::LaunchFailed, message);
    result.manager_id = Some(registration.manager_id);
    result.block_id = Some(registration.block_id.clone());
    result
}

fn base_result(registration: &Registration, task_id: TaskId, running: &Running) -> TaskResult {
    let mut result = rejected_result(registration, task_id, String::new());
    result.stdout_path = Some(running.stdout.display().to_string());
    result.stderr_path = Some(running.stderr.display().to_string());
    result
}

/// `[node 0: 4 slots, node 2: 4 slots]`, for messages.
fn describe_placement(placement: &[protocol::NodeShare]) -> String {
    let shares: Vec<String> = placement
        .iter()
        .map(|share| format!("node {}: {} slots", share.node, share.slots))
        .collect();
    format!("[{}]", shares.join(", "))
}

/// The last [`protocol::MAX_TAIL_BYTES`] bytes.
fn tail(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() > protocol::MAX_TAIL_BYTES {
        bytes.drain(..bytes.len() - protocol::MAX_TAIL_BYTES);
    }
    bytes
}
