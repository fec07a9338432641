//! The pool-manager state machine: its lifecycle with the interchange
//! (registration, heartbeats, silence, drain, stopping) and the routing of
//! every input to the module that owns what it changes.
//!
//! Inputs are `handle_*(now, ...)`: a decoded [`ToManager`] message, a link
//! event ([`LinkStatus`]), "task X exited" ([`TaskExit`]), "task X failed to
//! launch", a termination signal, a timeout. Outputs are drained with
//! [`PoolManager::poll_output`] in the order they were produced ([`Output`]:
//! send a message, launch a task, kill a task's process group, exit), and
//! [`PoolManager::poll_timeout`] gives the next deadline. Time is an
//! argument ([`Time`], milliseconds on the shell's monotonic clock);
//! nothing here reads a clock, touches a socket or a file, or spawns.
//!
//! Lifecycle: `register` is queued at creation; `registered` starts the
//! heartbeats; `refused` or a failed security handshake exits with
//! [`ExitReason::Refused`] or [`ExitReason::HandshakeFailed`]; no answer to
//! the first `register` within `heartbeat_threshold` exits with
//! [`ExitReason::InterchangeSilent`]. Once registered, losing the
//! interchange (silent for `heartbeat_threshold`, its connection dropped,
//! or `not_registered` from it) detaches the manager: it keeps running its
//! tasks, holds their results, and registers again under the same manager
//! id, listing both (`reattach.rs`), on the connection it has or on the
//! next one; not registered again within `reattach_timeout`, it kills its
//! tasks and exits with [`ExitReason::ReattachTimedOut`]. `shutdown` or SIGTERM kills
//! the running tasks, reports them, says `goodbye` and exits with
//! [`ExitReason::Shutdown`] or [`ExitReason::Terminated`]. The manager
//! keeps no backlog and follows the interchange's placement of each task
//! (which nodes, how many slots on each): a placement that does not fit the
//! free slots ([`crate::allocator::PlacementError`]), or a duplicate task
//! id, is a protocol violation and fails that task at once with
//! `launch_failed`. The running tasks themselves, their slots and walltime
//! deadlines belong to the `tasks` module.
//!
//! Walltime: a task with a `walltime` gets a deadline when it is launched;
//! [`PoolManager::poll_timeout`] includes the earliest one, and at that time
//! [`PoolManager::handle_timeout`] asks the shell to kill the task's process
//! group; its result is `failed` with kind `walltime_exceeded`.

use crate::events::{ExitReason, KillReason, LinkStatus, Output, TaskExit};
use crate::reattach::Reattach;
use crate::tasks::{self, Tasks};
use protocol::{FromManager, Registration, TaskDispatch, TaskId, TaskResult, ToManager};
use seam::Time;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

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
    /// How long a manager that lost the interchange keeps its tasks and
    /// tries to register again before it kills them and exits.
    pub reattach_timeout: Duration,
    pub drain_period: Option<Duration>,
    /// The manager's own environment, captured at start.
    pub base_env: BTreeMap<String, String>,
}

/// Why and how the manager stops: the first reason wins.
#[derive(Debug)]
struct Stop {
    reason: ExitReason,
    /// For the log, `goodbye` and the results of killed tasks.
    message: String,
}

#[derive(Debug)]
enum Phase {
    Registering,
    Registered,
    /// Lost the interchange at `since`; a registration again is on its way
    /// when `register_sent`, else it goes on the next connection.
    Detached {
        since: Time,
        register_sent: bool,
    },
    Stopping(Stop),
    Exited,
}

/// The pool-manager's state.
#[derive(Debug)]
pub struct PoolManager {
    settings: Settings,
    tasks: Tasks,
    phase: Phase,
    outputs: VecDeque<Output>,
    last_heard: Time,
    next_heartbeat: Option<Time>,
    /// How often heartbeats go out: `--heartbeat-period`, or the
    /// interchange's period when that is shorter (so that an interchange
    /// with a short threshold does not drop us).
    heartbeat_period: Duration,
    drain_at: Option<Time>,
    drain_sent: bool,
    connected_once: bool,
    n_bad_messages: u64,
    /// The largest output a task may return, from `registered`.
    max_task_output_bytes: u64,
    /// Held results, dropped tasks, registrations again.
    reattach: Reattach,
}

impl PoolManager {
    /// A manager that starts now; `register` is the first output.
    pub fn new(mut settings: Settings, now: Time) -> Self {
        let stripped = crate::slurm::step_settings_in(&settings.base_env);
        if !stripped.is_empty() {
            tracing::info!(
                variables = %stripped.join(","),
                "the block job's Slurm step settings are removed from every task's environment"
            );
            // Once here, not for every task.
            settings.base_env = crate::slurm::strip_step_settings(&settings.base_env);
        }
        let drain_at = settings.drain_period.map(|period| now.plus(period));
        let mut manager = Self {
            tasks: Tasks::new(
                &settings.registration,
                std::sync::Arc::new(settings.base_env.clone()),
            ),
            phase: Phase::Registering,
            outputs: VecDeque::new(),
            last_heard: now,
            next_heartbeat: None,
            heartbeat_period: settings.heartbeat_period,
            drain_at,
            drain_sent: false,
            connected_once: false,
            n_bad_messages: 0,
            max_task_output_bytes: protocol::DEFAULT_MAX_TASK_OUTPUT_BYTES,
            reattach: Reattach::default(),
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
    pub fn poll_timeout(&self) -> Option<Time> {
        match self.phase {
            Phase::Stopping(_) | Phase::Exited => None,
            Phase::Registering => Some(self.silence_deadline()),
            Phase::Detached { since, .. } => {
                let give_up = since.plus(self.settings.reattach_timeout);
                Some(
                    self.tasks
                        .next_deadline()
                        .map_or(give_up, |walltime| walltime.min(give_up)),
                )
            }
            Phase::Registered => {
                let mut deadline = self.silence_deadline();
                if let Some(heartbeat) = self.next_heartbeat {
                    deadline = deadline.min(heartbeat);
                }
                if let (Some(drain), false) = (self.drain_at, self.drain_sent) {
                    deadline = deadline.min(drain);
                }
                if let Some(walltime) = self.tasks.next_deadline() {
                    deadline = deadline.min(walltime);
                }
                Some(deadline)
            }
        }
    }

    pub fn n_running(&self) -> usize {
        self.tasks.n_running()
    }

    /// Nodes with every slot free.
    pub fn n_free_nodes(&self) -> usize {
        self.tasks.allocator().n_free_nodes()
    }

    /// Free slots over all nodes.
    pub fn n_free_slots(&self) -> u64 {
        self.tasks.allocator().n_free_slots()
    }

    /// The slot allocator, read only: what every node has free.
    pub fn allocator(&self) -> &crate::allocator::Allocator {
        self.tasks.allocator()
    }

    pub fn n_bad_messages(&self) -> u64 {
        self.n_bad_messages
    }

    pub fn is_registered(&self) -> bool {
        matches!(self.phase, Phase::Registered)
    }

    /// Whether it lost the interchange and waits to register again.
    pub fn is_detached(&self) -> bool {
        matches!(self.phase, Phase::Detached { .. })
    }

    /// Results held while detached, not yet sent.
    pub fn n_held_results(&self) -> usize {
        self.reattach.n_held()
    }

    /// Checks the allocator and that it agrees with the task table.
    pub fn validate(&self) -> Result<(), String> {
        self.tasks.validate()
    }

    fn silence_deadline(&self) -> Time {
        self.last_heard.plus(self.settings.heartbeat_threshold)
    }

    fn send(&mut self, message: FromManager) {
        self.outputs.push_back(Output::Send(message));
    }

    fn exited(&self) -> bool {
        matches!(self.phase, Phase::Exited)
    }

    /// A decoded message from the interchange.
    pub fn handle_message(&mut self, now: Time, message: ToManager) {
        if self.exited() {
            return;
        }
        self.last_heard = now;
        self.reattach.heard();
        match message {
            ToManager::Registered {
                interchange_version,
                heartbeat_period,
                max_task_output_bytes,
                drop_tasks,
            } => {
                if matches!(self.phase, Phase::Detached { .. }) {
                    tracing::info!(
                        interchange = %self.settings.interchange_url,
                        %interchange_version,
                        n_running = self.tasks.n_running(),
                        n_held_results = self.reattach.n_held(),
                        n_dropped = drop_tasks.len(),
                        "registered again with the interchange"
                    );
                    self.become_registered(
                        now,
                        heartbeat_period,
                        max_task_output_bytes,
                        &drop_tasks,
                    );
                } else if matches!(self.phase, Phase::Registering) {
                    tracing::info!(
                        interchange = %self.settings.interchange_url,
                        %interchange_version,
                        interchange_heartbeat_period = heartbeat_period,
                        n_nodes = self.tasks.allocator().n_nodes(),
                        slots_per_node = self.tasks.allocator().slots_per_node(),
                        max_task_output_bytes,
                        "registered with the interchange"
                    );
                    self.become_registered(
                        now,
                        heartbeat_period,
                        max_task_output_bytes,
                        &drop_tasks,
                    );
                } else if !drop_tasks.is_empty() && self.is_registered() {
                    // The answer to a registration sent twice: its drops
                    // still hold.
                    tracing::info!(
                        n_dropped = drop_tasks.len(),
                        "`registered` again from the interchange"
                    );
                    self.registered_again(&drop_tasks);
                } else {
                    tracing::warn!("unexpected `registered` from the interchange; ignored");
                }
            }
            ToManager::NotRegistered { reason } => match self.phase {
                Phase::Registered => {
                    tracing::warn!(%reason, "the interchange does not know this manager; registering again");
                    self.detach(now, true);
                }
                Phase::Detached {
                    register_sent: false,
                    ..
                } => self.register_again(),
                _ => {
                    tracing::debug!(%reason, "`not_registered` while a registration is on its way")
                }
            },
            ToManager::Refused {
                reason,
                protocol_version,
            } => {
                let message = format!(
                    "the interchange at {} refused this manager (its protocol version {protocol_version}, ours {}): {reason}",
                    self.settings.interchange_url,
                    protocol::PROTOCOL_VERSION
                );
                self.stop(
                    ExitReason::Refused {
                        reason,
                        protocol_version,
                    },
                    message,
                );
            }
            ToManager::RunTasks { tasks } => {
                for task in tasks {
                    self.start_task(now, task);
                }
            }
            ToManager::CancelTask { task_id } => match self.tasks.is_being_killed(task_id) {
                Some(false) => {
                    tracing::info!(%task_id, "cancelling task");
                    self.kill(task_id, KillReason::Cancelled);
                }
                Some(true) => tracing::debug!(%task_id, "task is already being killed"),
                None => {
                    tracing::warn!(%task_id, "cancel for a task this manager is not running; ignored")
                }
            },
            ToManager::Heartbeat => tracing::trace!("heartbeat from the interchange"),
            ToManager::Shutdown { reason } => {
                tracing::info!(%reason, "shutdown requested by the interchange");
                let message = format!("shutdown requested by the interchange: {reason}");
                self.stop(ExitReason::Shutdown { reason }, message);
            }
        }
    }

    /// A frame from the interchange that did not decode. It still shows the
    /// interchange is alive.
    pub fn handle_undecodable(&mut self, now: Time) {
        if !self.exited() {
            self.last_heard = now;
            self.reattach.heard();
            self.n_bad_messages += 1;
        }
    }

    /// The link changed state.
    pub fn handle_link(&mut self, now: Time, status: LinkStatus) {
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
                // A new connection: a registration sent on the old one may
                // be lost, so it goes again.
                if matches!(self.phase, Phase::Detached { .. }) {
                    self.register_again();
                }
            }
            LinkStatus::Disconnected => {
                tracing::warn!(
                    interchange = %self.settings.interchange_url,
                    "lost the connection to the interchange; reconnecting"
                );
                if self.is_registered() && self.may_reattach() {
                    self.detach(now, false);
                }
            }
            // Registering again, the keys were taken before: a failed
            // handshake (a connection reaching an interchange that was
            // killed or is starting again) is retried, within the window.
            LinkStatus::HandshakeFailed(message) if self.is_detached() => {
                tracing::warn!(
                    interchange = %self.settings.interchange_url,
                    "{message}; registering again: retrying within the re-attach window"
                );
            }
            LinkStatus::HandshakeFailed(message) => {
                let text = format!("cannot register with the interchange: {message}");
                self.stop(ExitReason::HandshakeFailed { message }, text);
            }
            LinkStatus::Failed(message) => {
                let text = format!(
                    "the link to the interchange at {} failed: {message}",
                    self.settings.interchange_url
                );
                self.stop(ExitReason::LinkFailed { message }, text);
            }
        }
    }

    /// SIGTERM or SIGINT arrived (or the shell was asked to shut down).
    pub fn handle_terminate(&mut self, _now: Time, signal_name: &str) {
        if self.exited() {
            return;
        }
        tracing::info!(
            signal = signal_name,
            "termination signal received; stopping"
        );
        self.stop(
            ExitReason::Terminated {
                signal: signal_name.to_owned(),
            },
            format!("received {signal_name}"),
        );
    }

    /// Time passed: heartbeats, drain, silence, walltimes.
    pub fn handle_timeout(&mut self, now: Time) {
        if let Phase::Detached { since, .. } = self.phase {
            let window = self.settings.reattach_timeout;
            if now >= since.plus(window) {
                let message = format!(
                    "the interchange at {} did not take this manager back within {} s (--reattach-timeout); \
                     giving up ({} held result(s) lost)",
                    self.settings.interchange_url,
                    window.as_secs_f64(),
                    self.reattach.give_up()
                );
                self.stop(ExitReason::ReattachTimedOut { window }, message);
                return;
            }
            self.kill_overdue(now);
            return;
        }
        if !matches!(self.phase, Phase::Registering | Phase::Registered) {
            return;
        }
        if self.is_registered() && self.may_reattach() && now >= self.silence_deadline() {
            tracing::warn!(
                interchange = %self.settings.interchange_url,
                threshold_s = self.settings.heartbeat_threshold.as_secs_f64(),
                "the interchange sent nothing for the heartbeat threshold; keeping the tasks and registering again"
            );
            self.detach(now, true);
            return;
        }
        if now >= self.silence_deadline() {
            let threshold = self.settings.heartbeat_threshold;
            let registered = self.is_registered();
            let what = if registered {
                "sent nothing"
            } else {
                "did not answer the registration"
            };
            let message = format!(
                "the interchange at {} {what} for {} s (--heartbeat-threshold); giving up",
                self.settings.interchange_url,
                threshold.as_secs_f64()
            );
            self.stop(
                ExitReason::InterchangeSilent {
                    registered,
                    threshold,
                },
                message,
            );
            return;
        }
        if !self.is_registered() {
            return;
        }
        self.kill_overdue(now);
        if self.next_heartbeat.is_some_and(|at| now >= at) {
            // After a registration again, the first heartbeat waits for
            // the dropped tasks to end.
            if !self.reattach.confirm_waits() {
                self.send(FromManager::Heartbeat);
            }
            self.next_heartbeat = Some(now.plus(self.heartbeat_period));
        }
        if !self.drain_sent && self.drain_at.is_some_and(|at| now >= at) {
            tracing::info!("drain period over; asking the interchange to drain this manager");
            self.drain_sent = true;
            self.send(FromManager::DrainRequest);
        }
    }

    /// A zero `reattach_timeout` turns re-attach off: silence then stops
    /// the manager at once.
    fn may_reattach(&self) -> bool {
        !self.settings.reattach_timeout.is_zero()
    }

    fn kill_overdue(&mut self, now: Time) {
        while let Some((task_id, walltime)) = self.tasks.overdue(now) {
            tracing::warn!(%task_id, walltime_s = walltime, "task ran past its walltime; killing it");
            self.kill(task_id, KillReason::WalltimeExceeded);
        }
    }

    /// Lost the interchange: keep the tasks, hold their results, and
    /// register again now (`send_now`: the connection is there) or on the
    /// next connection.
    fn detach(&mut self, now: Time, send_now: bool) {
        self.phase = Phase::Detached {
            since: now,
            register_sent: false,
        };
        self.next_heartbeat = None;
        let n_unconfirmed = self.reattach.detach();
        tracing::warn!(
            n_running = self.tasks.n_running(),
            n_unconfirmed_results = n_unconfirmed,
            reattach_timeout_s = self.settings.reattach_timeout.as_secs_f64(),
            "lost the interchange: tasks keep running and their results are held while registering again"
        );
        if send_now {
            self.register_again();
        }
    }

    /// Sends a registration again listing what the manager holds.
    fn register_again(&mut self) {
        if let Phase::Detached { register_sent, .. } = &mut self.phase {
            *register_sent = true;
        }
        let registration = self
            .reattach
            .registration(&self.settings.registration, self.tasks.holdings());
        tracing::info!(
            attempt = registration.attempt,
            n_running = registration.running_tasks.len(),
            n_held_results = registration.held_results.len(),
            "registering again"
        );
        self.send(FromManager::Register(registration));
    }

    /// `registered` answered a registration: heartbeats start, the
    /// interchange's output limit holds, and its drops are carried out.
    fn become_registered(
        &mut self,
        now: Time,
        heartbeat_period: f64,
        max_task_output_bytes: u64,
        drop_tasks: &[protocol::TaskId],
    ) {
        self.phase = Phase::Registered;
        self.max_task_output_bytes = max_task_output_bytes;
        self.adopt_heartbeat_period(heartbeat_period);
        self.next_heartbeat = Some(now.plus(self.heartbeat_period));
        self.registered_again(drop_tasks);
    }

    /// Carries out `registered`'s drops, sends the held results, and
    /// confirms with a heartbeat once no dropped task is left.
    fn registered_again(&mut self, drop_tasks: &[protocol::TaskId]) {
        let tasks = &self.tasks;
        let registered = self.reattach.registered(drop_tasks, |task_id| {
            tasks.is_being_killed(task_id).is_some()
        });
        for task_id in registered.kill {
            tracing::info!(%task_id, "the interchange does not have this task running here; killing it");
            self.kill(task_id, KillReason::Dropped);
        }
        for result in registered.send {
            self.send_result(result);
        }
        self.confirm_if_due();
    }

    fn confirm_if_due(&mut self) {
        if self.is_registered() && self.reattach.confirm_due() {
            self.send(FromManager::Heartbeat);
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
    pub fn handle_task_exited(&mut self, _now: Time, task_id: TaskId, exit: TaskExit) {
        let Some(running) = self.tasks.end(task_id) else {
            tracing::warn!(%task_id, "exit of a task this manager does not know; ignored");
            return;
        };
        let result = tasks::exit_result(
            &self.settings.registration,
            task_id,
            running,
            exit,
            self.stop_message(),
        );
        tracing::debug!(%task_id, state = %result.state, "task ended");
        self.report(result);
        self.finish_if_idle();
    }

    /// A task could not be started (bad cwd, unwritable output file...).
    pub fn handle_launch_failed(&mut self, _now: Time, task_id: TaskId, message: String) {
        let Some(running) = self.tasks.end(task_id) else {
            tracing::warn!(%task_id, "launch failure of a task this manager does not know; ignored");
            return;
        };
        tracing::warn!(%task_id, %message, "task failed to launch");
        let result =
            tasks::launch_failed_result(&self.settings.registration, task_id, &running, message);
        self.report(result);
        self.finish_if_idle();
    }

    fn stop_message(&self) -> &str {
        match &self.phase {
            Phase::Stopping(stop) => &stop.message,
            _ => "",
        }
    }

    /// Sends a result, unless the interchange is gone or refused us; holds
    /// it while detached; drops it if the interchange dropped the task.
    fn report(&mut self, result: TaskResult) {
        if self.reattach.ended(result.task_id) {
            tracing::info!(task_id = %result.task_id, "dropped task ended; not reported");
            self.confirm_if_due();
            return;
        }
        if matches!(self.phase, Phase::Detached { .. }) {
            tracing::info!(task_id = %result.task_id, state = %result.state, "task ended; its result is held until the manager is registered again");
            self.reattach.hold(result);
            return;
        }
        let send = match &self.phase {
            Phase::Stopping(stop) => stop.reason.interchange_listens(),
            _ => true,
        };
        if send {
            self.send_result(result);
        } else {
            tracing::info!(task_id = %result.task_id, state = %result.state, "task ended; the interchange is gone, so it is not reported");
        }
    }

    /// Sends one result; with re-attach on, it stays unconfirmed until the
    /// interchange is heard from.
    fn send_result(&mut self, result: TaskResult) {
        if self.may_reattach() && self.is_registered() {
            self.reattach.sent(&result);
        }
        self.send(FromManager::Results {
            results: vec![result],
        });
    }

    fn reject(&mut self, task_id: TaskId, message: String) {
        tracing::warn!(%task_id, %message, "task rejected");
        let result = tasks::rejected_result(&self.settings.registration, task_id, message);
        self.report(result);
    }

    fn start_task(&mut self, now: Time, task: TaskDispatch) {
        let task_id = task.task_id;
        if let Phase::Stopping(stop) = &self.phase {
            let message = format!(
                "the pool-manager is stopping ({}); task not started",
                stop.message
            );
            self.reject(task_id, message);
            return;
        }
        match self
            .tasks
            .start(now, task, &self.settings, self.max_task_output_bytes)
        {
            Ok(launch) => self.outputs.push_back(Output::Launch(launch)),
            Err(message) => self.reject(task_id, message),
        }
    }

    /// Starts stopping: kills every running task; exits once none is left.
    /// The first reason to stop wins. When the interchange is gone or
    /// refused us, logs why (error) and never talks to it again.
    fn stop(&mut self, reason: ExitReason, message: String) {
        if !reason.interchange_listens() {
            tracing::error!("{message}");
        }
        if matches!(self.phase, Phase::Stopping(_) | Phase::Exited) {
            return;
        }
        let kill = reason.kill_reason();
        self.phase = Phase::Stopping(Stop { reason, message });
        for task_id in self.tasks.not_being_killed() {
            self.kill(task_id, kill);
        }
        self.finish_if_idle();
    }

    /// Marks a running task as being killed for `reason` and asks the shell
    /// to kill its process group.
    fn kill(&mut self, task_id: TaskId, reason: KillReason) {
        if self.tasks.mark_killed(task_id, reason) {
            self.outputs.push_back(Output::Kill { task_id, reason });
        }
    }

    fn finish_if_idle(&mut self) {
        if !self.tasks.is_empty() || !matches!(self.phase, Phase::Stopping(_)) {
            return;
        }
        let Phase::Stopping(stop) = std::mem::replace(&mut self.phase, Phase::Exited) else {
            return;
        };
        if stop.reason.interchange_listens() {
            self.send(FromManager::Goodbye {
                reason: stop.message.clone(),
            });
        }
        self.outputs.push_back(Output::Exit {
            reason: stop.reason,
            message: stop.message,
        });
    }
}

#[cfg(test)]
mod tests;
