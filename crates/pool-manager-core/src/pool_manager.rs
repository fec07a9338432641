//! The pure pool-manager state machine.
//!
//! Inputs are `handle_*(now, ...)`: a decoded [`ToManager`] message, a link
//! event ([`LinkStatus`]), "task X exited" ([`TaskExit`]), "task X failed to
//! launch", a termination signal, a timeout. Outputs are drained with
//! [`PoolManager::poll_output`] in the order they were produced ([`Output`]:
//! send a message, launch a task, kill a task's process group, exit), and
//! [`PoolManager::poll_timeout`] gives the next deadline. Time is an argument
//! (a monotonic [`Instant`] from the shell); nothing here reads a clock,
//! touches a socket or a file, or spawns.
//!
//! Lifecycle: `register` is queued at creation; `registered` starts the
//! heartbeats; `refused` or a failed security handshake exits with code 3;
//! silence from the interchange for `heartbeat_threshold` kills the running
//! tasks and exits with code 4; `shutdown` or SIGTERM kills the running
//! tasks, reports them, says `goodbye` and exits with code 0. The manager
//! keeps no backlog and follows the interchange's placement of each task
//! (which nodes, how many slots on each): a placement that does not fit the
//! free slots ([`allocator::PlacementError`]), or a duplicate task id, is a
//! protocol violation and fails that task at once with `launch_failed`.
//!
//! Walltime: a task with a `walltime` gets a deadline when it is launched;
//! [`PoolManager::poll_timeout`] includes the earliest one, and at that time
//! [`PoolManager::handle_timeout`] asks the shell to kill the task's process
//! group; its result is `failed` with kind `walltime_exceeded`.

use crate::allocator::{Allocator, SlotRequest};
use crate::exit_code;
use crate::prefix::{task_environment, TaskContext};
use protocol::{
    ErrorKind, FromManager, Registration, TaskDispatch, TaskError, TaskId, TaskResult, TaskState,
    ToManager, UnixTime,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the core needs to know, fixed for its whole life.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Sent as is in `register`; also gives the manager id, block id,
    /// launcher, node list and slots per node (absent: `cpu_count`, at
    /// least 1).
    pub registration: Registration,
    /// For messages only.
    pub interchange_url: String,
    /// Absolute; task cwd and output paths are resolved against it.
    pub run_dir: PathBuf,
    pub heartbeat_period: Duration,
    pub heartbeat_threshold: Duration,
    pub drain_period: Option<Duration>,
    /// The manager's own environment, captured at start.
    pub base_env: BTreeMap<String, String>,
}

/// Why the manager killed a task's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillReason {
    /// `cancel_task` from the interchange.
    Cancelled,
    /// `shutdown` from the interchange, or SIGTERM/SIGINT.
    Shutdown,
    /// The interchange went silent or the link failed.
    InterchangeLost,
    /// The interchange refused this manager.
    Refused,
    /// The task ran longer than its `walltime`.
    WalltimeExceeded,
}

impl KillReason {
    pub fn as_str(self) -> &'static str {
        match self {
            KillReason::Cancelled => "cancelled",
            KillReason::Shutdown => "shutdown",
            KillReason::InterchangeLost => "interchange lost",
            KillReason::Refused => "refused",
            KillReason::WalltimeExceeded => "walltime exceeded",
        }
    }
}

/// A task to start.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    pub task_id: TaskId,
    pub command: String,
    /// The complete environment (the child's is cleared first).
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The task's nodes, for logs.
    pub nodes: Vec<String>,
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Send(FromManager),
    Launch(Launch),
    /// Kill the task's process group (SIGTERM, then SIGKILL after the grace
    /// period). Its exit is then reported with `handle_task_exited`.
    Kill {
        task_id: TaskId,
        reason: KillReason,
    },
    /// Exit the process. Every task has ended before this comes out.
    Exit {
        code: i32,
        reason: String,
    },
}

/// The link to the interchange changed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkStatus {
    Connected,
    Disconnected,
    /// The interchange refused our security handshake; retrying won't help.
    HandshakeFailed(String),
    /// The link thread stopped.
    Failed(String),
}

/// How a task's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

/// A task's process ended.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskExit {
    pub status: ExitStatus,
    pub stdout_tail: Vec<u8>,
    pub stderr_tail: Vec<u8>,
    pub start_time: UnixTime,
    pub end_time: UnixTime,
}

#[derive(Debug)]
struct Running {
    nodes: Vec<String>,
    stdout: PathBuf,
    stderr: PathBuf,
    kill: Option<KillReason>,
    /// The task's `walltime` in seconds and when it runs out.
    walltime: Option<(f64, Instant)>,
}

#[derive(Debug)]
struct Stop {
    code: i32,
    reason: String,
    send_messages: bool,
}

#[derive(Debug)]
enum Phase {
    Registering,
    Registered,
    Stopping(Stop),
    Exited,
}

/// The manager's state.
#[derive(Debug)]
pub struct PoolManager {
    settings: Settings,
    allocator: Allocator,
    running: BTreeMap<TaskId, Running>,
    /// Walltime deadlines of running tasks not yet being killed.
    deadlines: BTreeSet<(Instant, TaskId)>,
    phase: Phase,
    outputs: VecDeque<Output>,
    last_heard: Instant,
    next_heartbeat: Option<Instant>,
    /// How often heartbeats go out: `--heartbeat-period`, or the
    /// interchange's period when that is shorter (so that an interchange
    /// with a short threshold does not drop us).
    heartbeat_period: Duration,
    drain_at: Option<Instant>,
    drain_sent: bool,
    connected_once: bool,
    n_bad_messages: u64,
}

impl PoolManager {
    /// A manager that starts now; `register` is the first output.
    pub fn new(settings: Settings, now: Instant) -> Self {
        let registration = &settings.registration;
        let slots_per_node = registration
            .slots_per_node
            .unwrap_or(registration.cpu_count)
            .max(1);
        let allocator = Allocator::new(registration.nodes.len(), slots_per_node);
        let stripped = crate::slurm::step_settings_in(&settings.base_env);
        if !stripped.is_empty() {
            tracing::info!(
                variables = %stripped.join(","),
                "the block job's Slurm step settings are removed from every task's environment"
            );
        }
        let drain_at = settings.drain_period.map(|period| now + period);
        let mut manager = Self {
            allocator,
            running: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            phase: Phase::Registering,
            outputs: VecDeque::new(),
            last_heard: now,
            next_heartbeat: None,
            heartbeat_period: settings.heartbeat_period,
            drain_at,
            drain_sent: false,
            connected_once: false,
            n_bad_messages: 0,
            settings,
        };
        manager.send(FromManager::Register(manager.settings.registration.clone()));
        manager
    }

    /// The next output, in the order produced.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`PoolManager::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Stopping(_) | Phase::Exited => None,
            Phase::Registering => Some(self.silence_deadline()),
            Phase::Registered => {
                let mut deadline = self.silence_deadline();
                if let Some(heartbeat) = self.next_heartbeat {
                    deadline = deadline.min(heartbeat);
                }
                if let (Some(drain), false) = (self.drain_at, self.drain_sent) {
                    deadline = deadline.min(drain);
                }
                if let Some(&(walltime, _)) = self.deadlines.first() {
                    deadline = deadline.min(walltime);
                }
                Some(deadline)
            }
        }
    }

    pub fn n_running(&self) -> usize {
        self.running.len()
    }

    /// Nodes with every slot free.
    pub fn n_free_nodes(&self) -> usize {
        self.allocator.n_free_nodes()
    }

    /// Free slots over all nodes.
    pub fn n_free_slots(&self) -> u64 {
        self.allocator.n_free_slots()
    }

    pub fn n_bad_messages(&self) -> u64 {
        self.n_bad_messages
    }

    pub fn is_registered(&self) -> bool {
        matches!(self.phase, Phase::Registered)
    }

    /// Checks the allocator and that it agrees with the task table.
    pub fn validate(&self) -> Result<(), String> {
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

    fn silence_deadline(&self) -> Instant {
        self.last_heard + self.settings.heartbeat_threshold
    }

    fn send(&mut self, message: FromManager) {
        self.outputs.push_back(Output::Send(message));
    }

    fn exited(&self) -> bool {
        matches!(self.phase, Phase::Exited)
    }

    /// A decoded message from the interchange.
    pub fn handle_message(&mut self, now: Instant, message: ToManager) {
        if self.exited() {
            return;
        }
        self.last_heard = now;
        match message {
            ToManager::Registered {
                interchange_version,
                heartbeat_period,
            } => {
                if matches!(self.phase, Phase::Registering) {
                    tracing::info!(
                        interchange = %self.settings.interchange_url,
                        %interchange_version,
                        interchange_heartbeat_period = heartbeat_period,
                        n_nodes = self.allocator.n_nodes(),
                        slots_per_node = self.allocator.slots_per_node(),
                        "registered with the interchange"
                    );
                    self.phase = Phase::Registered;
                    self.adopt_heartbeat_period(heartbeat_period);
                    self.next_heartbeat = Some(now + self.heartbeat_period);
                } else {
                    tracing::warn!("unexpected `registered` from the interchange; ignored");
                }
            }
            ToManager::Refused {
                reason,
                protocol_version,
            } => {
                let reason = format!(
                    "the interchange at {} refused this manager (its protocol version {protocol_version}, ours {}): {reason}",
                    self.settings.interchange_url,
                    protocol::PROTOCOL_VERSION
                );
                self.give_up(exit_code::REFUSED, reason, KillReason::Refused);
            }
            ToManager::RunTasks { tasks } => {
                for task in tasks {
                    self.start_task(now, task);
                }
            }
            ToManager::CancelTask { task_id } => match self.running.get_mut(&task_id) {
                Some(running) if running.kill.is_none() => {
                    tracing::info!(%task_id, "cancelling task");
                    self.kill(task_id, KillReason::Cancelled);
                }
                Some(_) => tracing::debug!(%task_id, "task is already being killed"),
                None => {
                    tracing::warn!(%task_id, "cancel for a task this manager is not running; ignored")
                }
            },
            ToManager::Heartbeat => tracing::trace!("heartbeat from the interchange"),
            ToManager::Shutdown { reason } => {
                tracing::info!(%reason, "shutdown requested by the interchange");
                self.stop(
                    exit_code::CLEAN,
                    format!("shutdown requested by the interchange: {reason}"),
                    KillReason::Shutdown,
                    true,
                );
            }
        }
    }

    /// A frame from the interchange that did not decode. It still shows the
    /// interchange is alive.
    pub fn handle_undecodable(&mut self, now: Instant) {
        if !self.exited() {
            self.last_heard = now;
            self.n_bad_messages += 1;
        }
    }

    /// The link changed state.
    pub fn handle_link(&mut self, _now: Instant, status: LinkStatus) {
        if self.exited() {
            return;
        }
        match status {
            LinkStatus::Connected => {
                if self.connected_once {
                    tracing::info!(interchange = %self.settings.interchange_url, "reconnected to the interchange");
                } else {
                    tracing::info!(interchange = %self.settings.interchange_url, "connected to the interchange");
                }
                self.connected_once = true;
            }
            LinkStatus::Disconnected => tracing::warn!(
                interchange = %self.settings.interchange_url,
                "lost the connection to the interchange; reconnecting"
            ),
            LinkStatus::HandshakeFailed(message) => {
                let reason = format!("cannot register with the interchange: {message}");
                self.give_up(exit_code::REFUSED, reason, KillReason::Refused);
            }
            LinkStatus::Failed(message) => {
                let reason = format!(
                    "the link to the interchange at {} failed: {message}",
                    self.settings.interchange_url
                );
                self.give_up(
                    exit_code::INTERCHANGE_LOST,
                    reason,
                    KillReason::InterchangeLost,
                );
            }
        }
    }

    /// SIGTERM or SIGINT arrived.
    pub fn handle_terminate(&mut self, _now: Instant, signal_name: &str) {
        if self.exited() {
            return;
        }
        tracing::info!(
            signal = signal_name,
            "termination signal received; stopping"
        );
        self.stop(
            exit_code::CLEAN,
            format!("received {signal_name}"),
            KillReason::Shutdown,
            true,
        );
    }

    /// Time passed: heartbeats, drain, silence.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Registering | Phase::Registered) {
            return;
        }
        if now >= self.silence_deadline() {
            let threshold = self.settings.heartbeat_threshold.as_secs_f64();
            let what = if self.is_registered() {
                "sent nothing"
            } else {
                "did not answer the registration"
            };
            let reason = format!(
                "the interchange at {} {what} for {threshold} s (--heartbeat-threshold); giving up",
                self.settings.interchange_url
            );
            self.give_up(
                exit_code::INTERCHANGE_LOST,
                reason,
                KillReason::InterchangeLost,
            );
            return;
        }
        if !self.is_registered() {
            return;
        }
        while let Some(&(deadline, task_id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            let walltime = self
                .running
                .get(&task_id)
                .and_then(|running| running.walltime)
                .map_or(0.0, |(seconds, _)| seconds);
            tracing::warn!(%task_id, walltime_s = walltime, "task ran past its walltime; killing it");
            self.kill(task_id, KillReason::WalltimeExceeded);
        }
        if self.next_heartbeat.is_some_and(|at| now >= at) {
            self.send(FromManager::Heartbeat);
            self.next_heartbeat = Some(now + self.heartbeat_period);
        }
        if !self.drain_sent && self.drain_at.is_some_and(|at| now >= at) {
            tracing::info!("drain period over; asking the interchange to drain this manager");
            self.drain_sent = true;
            self.send(FromManager::DrainRequest);
        }
    }

    /// Heartbeats go out at least as often as the interchange sends its
    /// own, and a warning says when the interchange's period is too long
    /// for this manager's threshold.
    fn adopt_heartbeat_period(&mut self, interchange_period_secs: f64) {
        let Ok(interchange_period) = Duration::try_from_secs_f64(interchange_period_secs) else {
            tracing::warn!(
                interchange_period_secs,
                "the interchange announced an invalid heartbeat period; keeping --heartbeat-period"
            );
            return;
        };
        if !interchange_period.is_zero() && interchange_period < self.heartbeat_period {
            tracing::info!(
                interchange_period_secs,
                own_period_secs = self.heartbeat_period.as_secs_f64(),
                "sending heartbeats as often as the interchange does (it may expect them sooner than --heartbeat-period)"
            );
            self.heartbeat_period = interchange_period;
        }
        if interchange_period >= self.settings.heartbeat_threshold {
            tracing::warn!(
                interchange_period_secs,
                threshold_secs = self.settings.heartbeat_threshold.as_secs_f64(),
                "the interchange sends heartbeats less often than --heartbeat-threshold allows; \
                 this manager will give up on it between two heartbeats: raise --heartbeat-threshold"
            );
        }
    }

    /// A task's process ended.
    pub fn handle_task_exited(&mut self, _now: Instant, task_id: TaskId, exit: TaskExit) {
        let Some(running) = self.take_running(task_id) else {
            tracing::warn!(%task_id, "exit of a task this manager does not know; ignored");
            return;
        };
        let mut result = self.base_result(task_id, &running);
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
                        "killed by the pool-manager ({}): {}",
                        reason.as_str(),
                        self.stop_reason()
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
        tracing::debug!(%task_id, state = %result.state, "task ended");
        self.report(result);
        self.finish_if_idle();
    }

    /// A task could not be started (bad cwd, unwritable output file...).
    pub fn handle_launch_failed(&mut self, _now: Instant, task_id: TaskId, message: String) {
        let Some(running) = self.take_running(task_id) else {
            tracing::warn!(%task_id, "launch failure of a task this manager does not know; ignored");
            return;
        };
        tracing::warn!(%task_id, %message, "task failed to launch");
        let mut result = self.base_result(task_id, &running);
        result.error = Some(TaskError {
            kind: ErrorKind::LaunchFailed,
            message,
        });
        self.report(result);
        self.finish_if_idle();
    }

    fn take_running(&mut self, task_id: TaskId) -> Option<Running> {
        let running = self.running.remove(&task_id)?;
        self.allocator.release(task_id);
        if let Some((_, deadline)) = running.walltime {
            self.deadlines.remove(&(deadline, task_id));
        }
        Some(running)
    }

    fn stop_reason(&self) -> &str {
        match &self.phase {
            Phase::Stopping(stop) => &stop.reason,
            _ => "",
        }
    }

    fn base_result(&self, task_id: TaskId, running: &Running) -> TaskResult {
        let registration = &self.settings.registration;
        let mut result =
            TaskResult::failed_before_start(task_id, ErrorKind::LaunchFailed, String::new());
        result.manager_id = Some(registration.manager_id);
        result.block_id = Some(registration.block_id.clone());
        result.stdout_path = Some(running.stdout.display().to_string());
        result.stderr_path = Some(running.stderr.display().to_string());
        result
    }

    /// Sends a result, unless the interchange is gone or refused us.
    fn report(&mut self, result: TaskResult) {
        let send = match &self.phase {
            Phase::Stopping(stop) => stop.send_messages,
            _ => true,
        };
        if send {
            self.send(FromManager::Results {
                results: vec![result],
            });
        } else {
            tracing::info!(task_id = %result.task_id, state = %result.state, "task ended; the interchange is gone, so it is not reported");
        }
    }

    fn reject(&mut self, task_id: TaskId, message: String) {
        tracing::warn!(%task_id, %message, "task rejected");
        let registration = &self.settings.registration;
        let mut result = TaskResult::failed_before_start(task_id, ErrorKind::LaunchFailed, message);
        result.manager_id = Some(registration.manager_id);
        result.block_id = Some(registration.block_id.clone());
        self.report(result);
    }

    fn start_task(&mut self, now: Instant, task: TaskDispatch) {
        let task_id = task.task_id;
        if let Phase::Stopping(stop) = &self.phase {
            let message = format!(
                "the pool-manager is stopping ({}); task not started",
                stop.reason
            );
            self.reject(task_id, message);
            return;
        }
        if self.running.contains_key(&task_id) {
            self.reject(
                task_id,
                format!("duplicate task id {task_id}: a task with this id is already running on this manager (protocol violation by the interchange)"),
            );
            return;
        }
        let request = SlotRequest {
            num_nodes: task.resources.num_nodes,
            exclusive: task.resources.exclusive,
        };
        if let Err(error) = self.allocator.claim(task_id, request, &task.placement) {
            let message = format!(
                "invalid placement {} from the interchange (protocol violation): {error}",
                describe_placement(&task.placement)
            );
            self.reject(task_id, message);
            return;
        }
        // The allocator has checked every index against the node list.
        let registration = &self.settings.registration;
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
        let env = task_environment(
            &self.settings.base_env,
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
        let run_dir = &self.settings.run_dir;
        let resolve = |given: &Option<String>, default: PathBuf| match given {
            Some(path) if !path.is_empty() => run_dir.join(Path::new(path)),
            _ => default,
        };
        let cwd = resolve(&task.cwd, run_dir.clone());
        let tasks_dir = run_dir.join("tasks");
        let stdout = resolve(&task.stdout, tasks_dir.join(format!("{task_id}.stdout")));
        let stderr = resolve(&task.stderr, tasks_dir.join(format!("{task_id}.stderr")));
        let walltime = task.resources.walltime.and_then(|seconds| {
            let deadline = Duration::try_from_secs_f64(seconds)
                .ok()
                .and_then(|walltime| now.checked_add(walltime));
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
            },
        );
        self.outputs.push_back(Output::Launch(Launch {
            task_id,
            command: task.command,
            env,
            cwd,
            stdout,
            stderr,
            nodes: hosts,
        }));
    }

    /// Starts stopping: kills every running task; exits once none is left.
    /// The first reason to stop wins.
    /// Stops because the interchange is gone or refused us: logs why, kills
    /// the tasks and exits without talking to the interchange again.
    fn give_up(&mut self, code: i32, reason: String, kill: KillReason) {
        tracing::error!("{reason}");
        self.stop(code, reason, kill, false);
    }

    fn stop(&mut self, code: i32, reason: String, kill: KillReason, send_messages: bool) {
        if matches!(self.phase, Phase::Stopping(_) | Phase::Exited) {
            return;
        }
        self.phase = Phase::Stopping(Stop {
            code,
            reason,
            send_messages,
        });
        let to_kill: Vec<TaskId> = self
            .running
            .iter()
            .filter(|(_, running)| running.kill.is_none())
            .map(|(task_id, _)| *task_id)
            .collect();
        for task_id in to_kill {
            self.kill(task_id, kill);
        }
        self.finish_if_idle();
    }

    /// Marks a running task as being killed for `reason` (its walltime no
    /// longer matters) and asks the shell to kill its process group.
    fn kill(&mut self, task_id: TaskId, reason: KillReason) {
        let Some(running) = self.running.get_mut(&task_id) else {
            return;
        };
        running.kill = Some(reason);
        if let Some((_, deadline)) = running.walltime {
            self.deadlines.remove(&(deadline, task_id));
        }
        self.outputs.push_back(Output::Kill { task_id, reason });
    }

    fn finish_if_idle(&mut self) {
        if !self.running.is_empty() || !matches!(self.phase, Phase::Stopping(_)) {
            return;
        }
        let Phase::Stopping(stop) = std::mem::replace(&mut self.phase, Phase::Exited) else {
            return;
        };
        if stop.send_messages {
            self.send(FromManager::Goodbye {
                reason: stop.reason.clone(),
            });
        }
        self.outputs.push_back(Output::Exit {
            code: stop.code,
            reason: stop.reason,
        });
    }
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

/// The names of the Linux signals 1 to 31 (x86-64, AArch64, PowerPC), as
/// `nix` gives them.
const SIGNAL_NAMES: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// `SIGSEGV` for 11, and so on; `unknown signal` for numbers outside 1 to
/// 31 (the real-time signals have no names).
pub fn signal_name(signal: i32) -> &'static str {
    usize::try_from(signal)
        .ok()
        .and_then(|number| number.checked_sub(1))
        .and_then(|index| SIGNAL_NAMES.get(index))
        .copied()
        .unwrap_or("unknown signal")
}

#[cfg(test)]
mod tests;
