//! Every message on the wire, named by direction.
//!
//! Each message is one ZeroMQ frame holding a msgpack map with a `type` key
//! (internally tagged, snake_case) and named fields. Optional fields may be
//! absent or nil; list and map fields may be absent (empty). Unknown fields
//! are ignored, so a newer peer may add fields without a version change.
//!
//! Two conversations:
//! - client <-> interchange: [`FromClient`], [`ToClient`] (client DEALER,
//!   interchange ROUTER on the client socket);
//! - pool-manager <-> interchange: [`FromManager`], [`ToManager`] (manager
//!   DEALER, interchange ROUTER on the manager socket).

use crate::ids::{ManagerId, TaskId};
use crate::spec::{ResourceRequest, TaskResources};
use crate::tagged::tagged_enum;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Seconds since the Unix epoch, as a float (what Python's `time.time()` gives).
pub type UnixTime = f64;

// ---------------------------------------------------------------------------
// Shared types
// ---------------------------------------------------------------------------

/// The MPI launcher a pool-manager composes `PARSL_MPI_PREFIX` for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Launcher {
    Mpiexec,
    Srun,
    Aprun,
}

impl Launcher {
    pub const ALL: [Launcher; 3] = [Launcher::Mpiexec, Launcher::Srun, Launcher::Aprun];

    pub fn as_str(self) -> &'static str {
        match self {
            Launcher::Mpiexec => "mpiexec",
            Launcher::Srun => "srun",
            Launcher::Aprun => "aprun",
        }
    }
}

impl fmt::Display for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Launcher {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "mpiexec" => Ok(Launcher::Mpiexec),
            "srun" => Ok(Launcher::Srun),
            "aprun" => Ok(Launcher::Aprun),
            other => Err(format!(
                "unknown launcher {other:?}; valid launchers are mpiexec, srun, aprun"
            )),
        }
    }
}

/// A task as a client submits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSubmission {
    /// Chosen by the client (a fresh UUID). A duplicate id is refused.
    pub task_id: TaskId,
    /// Run as `/bin/bash -c COMMAND` on the manager's lead node.
    pub command: String,
    /// The resource specification, validated by the interchange on arrival.
    #[serde(default)]
    pub resources: ResourceRequest,
    /// Extra environment variables for this task only.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory; the manager's run directory when absent.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Path of the stdout file; under the manager's run directory when absent.
    #[serde(default)]
    pub stdout: Option<String>,
    /// Path of the stderr file; under the manager's run directory when absent.
    #[serde(default)]
    pub stderr: Option<String>,
    /// Bytes handed to the task on its lead node: the pool-manager writes
    /// them to a file named by `RHTEX_TASK_INPUT` before the command starts.
    /// At most the `max_task_input_bytes` announced in `welcome`.
    #[serde(default, with = "serde_bytes")]
    pub input: Option<Vec<u8>>,
}

/// Default of `max_task_input_bytes` (16 MiB): the largest task input the
/// interchange accepts, unless configured otherwise.
pub const DEFAULT_MAX_TASK_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Default of `max_task_output_bytes` (16 MiB): the largest task output a
/// pool-manager returns, unless configured otherwise.
pub const DEFAULT_MAX_TASK_OUTPUT_BYTES: u64 = 16 * 1024 * 1024;

fn default_max_task_input_bytes() -> u64 {
    DEFAULT_MAX_TASK_INPUT_BYTES
}

fn default_max_task_output_bytes() -> u64 {
    DEFAULT_MAX_TASK_OUTPUT_BYTES
}

impl TaskSubmission {
    /// A serial task (one node, one rank) running `command`, with no extra
    /// environment, working directory or output files.
    pub fn new(task_id: TaskId, command: impl Into<String>) -> Self {
        Self {
            task_id,
            command: command.into(),
            resources: ResourceRequest::new(),
            env: BTreeMap::new(),
            cwd: None,
            stdout: None,
            stderr: None,
            input: None,
        }
    }
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting in the interchange for a manager with enough free nodes.
    Queued,
    /// Sent to a manager, which started it or is starting it.
    Running,
    /// Ended with exit code 0.
    Completed,
    /// Ended any other way: see the result's `error`.
    Failed,
    /// Cancelled by a client before it ended.
    Cancelled,
    /// The interchange knows no task with this id.
    Unknown,
}

impl TaskState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The command exited with a non-zero code.
    ExitCode,
    /// The command was killed by a signal it did not get from rhtex.
    Signaled,
    /// The command could not be started (bad cwd, unwritable output file,
    /// input file not written...), or its output file could not be read.
    LaunchFailed,
    /// The resource specification is invalid.
    InvalidSpec,
    /// The task can never run: it needs more nodes than any block may have.
    Unschedulable,
    /// The manager running the task stopped answering or went away.
    ManagerLost,
    /// A client cancelled the task.
    Cancelled,
    /// The manager was shut down (SIGTERM or interchange shutdown) while the task ran.
    Killed,
    /// Another task with the same id was already submitted.
    DuplicateTaskId,
    /// The task ran longer than its `walltime` and was killed.
    WalltimeExceeded,
    /// The task's `input` is larger than the interchange's
    /// `max_task_input_bytes`; it was not queued.
    InputTooLarge,
    /// The task's output file is larger than `max_task_output_bytes`; the
    /// command ran, its output was dropped.
    OutputTooLarge,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ExitCode => "exit_code",
            ErrorKind::Signaled => "signaled",
            ErrorKind::LaunchFailed => "launch_failed",
            ErrorKind::InvalidSpec => "invalid_spec",
            ErrorKind::Unschedulable => "unschedulable",
            ErrorKind::ManagerLost => "manager_lost",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Killed => "killed",
            ErrorKind::DuplicateTaskId => "duplicate_task_id",
            ErrorKind::WalltimeExceeded => "walltime_exceeded",
            ErrorKind::InputTooLarge => "input_too_large",
            ErrorKind::OutputTooLarge => "output_too_large",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong, as a kind to branch on and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    pub kind: ErrorKind,
    pub message: String,
}

/// The outcome of one task. Every accepted task gets exactly one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task_id: TaskId,
    /// `completed`, `failed` or `cancelled`.
    pub state: TaskState,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that ended the command, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    #[serde(default)]
    pub error: Option<TaskError>,
    #[serde(default)]
    pub manager_id: Option<ManagerId>,
    #[serde(default)]
    pub block_id: Option<String>,
    /// The nodes the task ran on (empty if it never started).
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub stdout_path: Option<String>,
    #[serde(default)]
    pub stderr_path: Option<String>,
    /// The last bytes (at most 64 KiB) of stdout.
    #[serde(default, with = "serde_bytes")]
    pub stdout_tail: Vec<u8>,
    /// The last bytes (at most 64 KiB) of stderr.
    #[serde(default, with = "serde_bytes")]
    pub stderr_tail: Vec<u8>,
    #[serde(default)]
    pub start_time: Option<UnixTime>,
    #[serde(default)]
    pub end_time: Option<UnixTime>,
    /// What the task wrote to the file named by `RHTEX_TASK_OUTPUT`, if it
    /// wrote one (at most `max_task_output_bytes`).
    #[serde(default, with = "serde_bytes")]
    pub output: Option<Vec<u8>>,
}

/// Largest tail of stdout or stderr carried in a [`TaskResult`].
pub const MAX_TAIL_BYTES: usize = 64 * 1024;

impl TaskResult {
    /// A result in `state` that says nothing else: no exit status, error,
    /// manager, nodes, files, output or times.
    pub fn new(task_id: TaskId, state: TaskState) -> Self {
        Self {
            task_id,
            state,
            exit_code: None,
            signal: None,
            error: None,
            manager_id: None,
            block_id: None,
            nodes: Vec::new(),
            stdout_path: None,
            stderr_path: None,
            stdout_tail: Vec::new(),
            stderr_tail: Vec::new(),
            start_time: None,
            end_time: None,
            output: None,
        }
    }

    /// A result for a task that never ran, failed with `kind`.
    pub fn failed_before_start(task_id: TaskId, kind: ErrorKind, message: String) -> Self {
        let state = if kind == ErrorKind::Cancelled {
            TaskState::Cancelled
        } else {
            TaskState::Failed
        };
        Self {
            error: Some(TaskError { kind, message }),
            ..Self::new(task_id, state)
        }
    }
}

// ---------------------------------------------------------------------------
// Client <-> interchange
// ---------------------------------------------------------------------------

tagged_enum! {
    /// Messages from a client to the interchange.
    #[derive(Clone, Debug, PartialEq)]
    pub enum FromClient = "FromClient" {
        /// First message on a connection. A client with another protocol
        /// version gets `refused`; otherwise `welcome`.
        Hello {
            protocol_version: u32,
            #[serde(default)]
            client_version: String,
        },
        /// Submit tasks. Answered by `submitted`; each accepted task later gets
        /// one result on `results` (to this connection).
        Submit {
            request_id: u64,
            tasks: Vec<TaskSubmission>,
        },
        /// Ask for the results of tasks submitted earlier (perhaps by another
        /// connection). Answered by `watching`; results of finished tasks follow
        /// at once, the others when they finish.
        Watch {
            request_id: u64,
            task_ids: Vec<TaskId>,
        },
        /// A command; answered by `reply` with the same `request_id`.
        Command { request_id: u64, command: Command },
        /// The client is closing this connection: the interchange forgets it.
        /// Its tasks carry on; their results stay available to `watch` and
        /// `task_status` from another connection. No answer.
        Goodbye,
    }
}

/// Commands a client can give.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Command {
    /// Managers, queue counts and why queued tasks wait.
    Status,
    /// The state of some tasks.
    TaskStatus { task_ids: Vec<TaskId> },
    /// Every task the interchange knows (queued, running, and the finished
    /// ones whose results it keeps), or only those in `state`. Answered by
    /// `tasks`, in submission order.
    Tasks {
        #[serde(default)]
        state: Option<TaskState>,
    },
    /// Send no new tasks to this manager until `release`.
    Hold { manager_id: ManagerId },
    /// Undo `hold`.
    Release { manager_id: ManagerId },
    /// Send no new tasks to this manager; tell it to exit once idle.
    Drain { manager_id: ManagerId },
    /// Cancel a task: removed if queued, killed if running.
    Cancel { task_id: TaskId },
    /// Stop the interchange: managers are told to stop, queued tasks are cancelled.
    Shutdown,
}

tagged_enum! {
    /// Messages from the interchange to a client.
    #[derive(Clone, Debug, PartialEq)]
    pub enum ToClient = "ToClient" {
        Welcome {
            protocol_version: u32,
            interchange_version: String,
            /// The largest `input` a task may carry; a larger one fails with
            /// `input_too_large`. Absent means the default (16 MiB).
            #[serde(default = "default_max_task_input_bytes")]
            max_task_input_bytes: u64,
            /// The largest `output` a task may return; a larger one fails with
            /// `output_too_large`. Absent means the default (16 MiB).
            #[serde(default = "default_max_task_output_bytes")]
            max_task_output_bytes: u64,
        },
        /// The handshake failed; the reason names both protocol versions.
        Refused {
            reason: String,
            protocol_version: u32,
        },
        /// Answer to `submit`: how many tasks were accepted. Tasks that were not
        /// accepted (invalid spec, duplicate id, unschedulable) get a failed
        /// result at once, so every submitted task gets exactly one result.
        Submitted { request_id: u64, n_tasks: u32 },
        /// Answer to `watch`: how many of the ids are known and watched, and
        /// the ids the interchange does not know (not watched).
        Watching {
            request_id: u64,
            n_tasks: u32,
            #[serde(default)]
            unknown: Vec<TaskId>,
        },
        /// Results of finished tasks, in the order they finished.
        Results { results: Vec<TaskResult> },
        /// Answer to `command`.
        Reply { request_id: u64, reply: Reply },
        /// A request that could not be handled at all (not decodable, no hello yet).
        Error {
            #[serde(default)]
            request_id: Option<u64>,
            message: String,
        },
    }
}

/// Answers to commands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Status(StatusReport),
    TaskStatus {
        tasks: Vec<TaskStatusInfo>,
    },
    Tasks {
        tasks: Vec<TaskSummary>,
    },
    /// The command was carried out.
    Done {
        message: String,
    },
    /// The command could not be carried out (unknown manager or task...).
    Failed {
        message: String,
    },
}

/// What `status` returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub interchange_version: String,
    pub protocol_version: u32,
    pub n_queued: u64,
    pub n_running: u64,
    pub n_completed: u64,
    pub n_failed: u64,
    pub n_cancelled: u64,
    /// Messages that could not be decoded or were not expected, since start.
    pub n_bad_messages: u64,
    pub managers: Vec<ManagerInfo>,
    /// Queued tasks grouped by why they wait.
    pub waiting: Vec<WaitingGroup>,
    /// Blocks the interchange's provider submitted (empty without a provider).
    #[serde(default)]
    pub blocks: Vec<BlockInfo>,
    /// Unfinished tasks by the client identity that submitted them, by
    /// name (everyone sees these counts; task ids only of their own).
    #[serde(default)]
    pub users: Vec<UserCounts>,
}

/// One client identity's unfinished tasks, in `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCounts {
    /// The identity's name (`default`, a `--client-key` NAME), or
    /// `(unauthenticated)` without CURVE.
    pub identity: String,
    pub n_queued: u64,
    pub n_running: u64,
}

/// Where a block (a batch job holding nodes) is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockState {
    /// Submitted; waiting in the batch system's queue.
    Pending,
    /// The batch system runs it; its manager has not registered yet.
    Running,
    /// Its manager registered.
    Connected,
    /// Idle too long or no longer needed: its manager drains, then the job is cancelled.
    Draining,
    /// The job ended.
    Ended,
    /// Submission failed, or the job ended without its manager registering.
    Failed,
}

impl BlockState {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockState::Pending => "pending",
            BlockState::Running => "running",
            BlockState::Connected => "connected",
            BlockState::Draining => "draining",
            BlockState::Ended => "ended",
            BlockState::Failed => "failed",
        }
    }
}

impl fmt::Display for BlockState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One block the provider submitted, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// The id its manager registers with (`block_id` in [`Registration`]).
    pub block_id: String,
    /// The batch system's job id (empty if submission failed).
    pub job_id: String,
    /// `slurm`, `pbs` or `local`.
    pub provider: String,
    pub state: BlockState,
    pub n_nodes: u32,
    /// Its manager, once registered.
    #[serde(default)]
    pub manager_id: Option<ManagerId>,
    pub submitted_at: UnixTime,
    /// The file the job's output goes to.
    #[serde(default)]
    pub output_path: Option<String>,
    /// What went wrong, for a failed block.
    #[serde(default)]
    pub message: Option<String>,
}

/// One connected pool-manager, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManagerInfo {
    pub manager_id: ManagerId,
    pub block_id: String,
    pub hostname: String,
    pub launcher: Launcher,
    pub n_nodes: u32,
    pub n_free_nodes: u32,
    pub n_running_tasks: u32,
    pub held: bool,
    pub draining: bool,
    pub registered_at: UnixTime,
    pub last_heartbeat: UnixTime,
    pub rhtex_version: String,
    /// Slots (ranks) each node offers to non-exclusive tasks.
    #[serde(default)]
    pub slots_per_node: u32,
    /// The queued task this manager is reserved for (it cannot start
    /// anywhere yet; smaller tasks may not delay it here).
    #[serde(default)]
    pub reserved_for: Option<TaskId>,
}

/// Queued tasks that wait for the same reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaitingGroup {
    pub num_nodes: u32,
    pub n_tasks: u64,
    pub reason: String,
}

/// One task, as `task_status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskStatusInfo {
    pub task_id: TaskId,
    pub state: TaskState,
    #[serde(default)]
    pub manager_id: Option<ManagerId>,
    #[serde(default)]
    pub nodes: Vec<String>,
    /// For a queued task: why it waits.
    #[serde(default)]
    pub waiting_reason: Option<String>,
    /// For a finished task: its result.
    #[serde(default)]
    pub result: Option<TaskResult>,
}

/// One task, as `tasks` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub task_id: TaskId,
    pub state: TaskState,
    /// The nodes it asked for (0 if its specification was invalid).
    pub num_nodes: u32,
    /// Where it runs or ran.
    #[serde(default)]
    pub manager_id: Option<ManagerId>,
    #[serde(default)]
    pub nodes: Vec<String>,
    /// When the interchange received it (its clock).
    pub submitted_at: UnixTime,
    /// When it started: its manager's start time, else when the
    /// interchange sent it.
    #[serde(default)]
    pub start_time: Option<UnixTime>,
    /// When it ended (its manager's clock, else the interchange's).
    #[serde(default)]
    pub end_time: Option<UnixTime>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub error_kind: Option<ErrorKind>,
}

// ---------------------------------------------------------------------------
// Pool-manager <-> interchange
// ---------------------------------------------------------------------------

tagged_enum! {
    /// Messages from a pool-manager to the interchange.
    #[derive(Clone, Debug, PartialEq)]
    pub enum FromManager = "FromManager" {
        /// First message on a connection. Answered by `registered` or `refused`.
        Register(Registration),
        /// Sent every heartbeat period.
        Heartbeat,
        /// Tasks that ended (in any way).
        Results { results: Vec<TaskResult> },
        /// The drain period has passed: send no more tasks; answer with
        /// `shutdown` once the manager is idle.
        DrainRequest,
        /// The manager is exiting; every task it held has been reported.
        Goodbye { reason: String },
    }
}

/// What a pool-manager tells about itself when it registers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub protocol_version: u32,
    pub manager_id: ManagerId,
    pub block_id: String,
    pub hostname: String,
    /// The block's nodes, lead node first. Tasks get subsets of these.
    pub nodes: Vec<String>,
    pub launcher: Launcher,
    pub rhtex_version: String,
    /// CPUs on the lead node.
    #[serde(default)]
    pub cpu_count: u32,
    /// Slots (ranks) each node offers to non-exclusive tasks; absent means
    /// `cpu_count` (at least 1).
    #[serde(default)]
    pub slots_per_node: Option<u32>,
    /// Free-form versions of things that matter for debugging (OS, MPI...).
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    /// 0 the first time this manager process registers; 1, 2... each time
    /// it registers again after losing the interchange (re-attach).
    #[serde(default)]
    pub attempt: u32,
    /// The tasks it runs, each with the placement it runs on (empty the
    /// first time).
    #[serde(default)]
    pub running_tasks: Vec<HeldTask>,
    /// Tasks that ended while it could not report them: their results are
    /// sent after `registered`, unless the interchange drops them.
    #[serde(default)]
    pub held_results: Vec<TaskId>,
}

/// A task a manager runs when it registers again, and where it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldTask {
    pub task_id: TaskId,
    pub placement: Vec<NodeShare>,
}

tagged_enum! {
    /// Messages from the interchange to a pool-manager.
    #[derive(Clone, Debug, PartialEq)]
    pub enum ToManager = "ToManager" {
        Registered {
            interchange_version: String,
            /// How often the interchange sends `heartbeat`, in seconds.
            heartbeat_period: f64,
            /// The largest task output the manager may return: a larger output
            /// file fails its task with `output_too_large`. Absent means the
            /// default (16 MiB).
            #[serde(default = "default_max_task_output_bytes")]
            max_task_output_bytes: u64,
            /// Tasks of the registration the interchange does not have running
            /// on this manager (and tasks it had here that the registration
            /// does not list): the manager kills each one it runs and drops
            /// each held result, and reports none of them.
            #[serde(default)]
            drop_tasks: Vec<TaskId>,
        },
        /// Answer to a message from a connection that is not registered (a
        /// manager the interchange dropped, or one from before a restart): the
        /// manager keeps its tasks and registers again.
        NotRegistered {
            reason: String,
        },
        /// Registration refused; the manager must exit. The reason names both
        /// protocol versions when they differ.
        Refused {
            reason: String,
            protocol_version: u32,
        },
        /// Start these tasks now, each on the nodes and slots its `placement`
        /// names. The interchange only sends what fits in the manager's free
        /// nodes and slots.
        RunTasks {
            tasks: Vec<TaskDispatch>,
        },
        /// Kill this task's process group and report it as cancelled.
        CancelTask {
            task_id: TaskId,
        },
        Heartbeat,
        /// Kill every running task, report them, say goodbye and exit.
        Shutdown {
            reason: String,
        },
    }
}

/// A share of one node given to a task: `slots` slots on the node at index
/// `node` of the manager's registered `nodes` list. An exclusive task gets
/// every slot of its nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeShare {
    pub node: u32,
    pub slots: u32,
}

/// A task as the interchange hands it to a pool-manager: validated, and
/// placed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskDispatch {
    pub task_id: TaskId,
    pub command: String,
    pub resources: TaskResources,
    /// The nodes the task runs on, one entry per node (`num_nodes` entries,
    /// distinct nodes), chosen by the interchange.
    pub placement: Vec<NodeShare>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub stdout: Option<String>,
    #[serde(default)]
    pub stderr: Option<String>,
    /// The submission's `input`, for the file named by `RHTEX_TASK_INPUT`.
    #[serde(default, with = "serde_bytes")]
    pub input: Option<Vec<u8>>,
}

impl TaskDispatch {
    /// `command` placed on `placement`, with no extra environment, working
    /// directory, output files or input.
    pub fn new(
        task_id: TaskId,
        command: impl Into<String>,
        resources: TaskResources,
        placement: Vec<NodeShare>,
    ) -> Self {
        Self {
            task_id,
            command: command.into(),
            resources,
            placement,
            env: BTreeMap::new(),
            cwd: None,
            stdout: None,
            stderr: None,
            input: None,
        }
    }
}
