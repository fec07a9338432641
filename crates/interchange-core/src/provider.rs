//! The provider's pure state machine: how many blocks to run, which to
//! drain, which to cancel, and what to report about each.
//!
//! The seam, as in the interchange core: the shell feeds inputs with the
//! current [`Time`] and drains [`Action`]s with [`ProviderCore::poll_action`].
//! - [`ProviderCore::handle_tick`]: the queue's [`QueueDemand`] and the registered
//!   managers ([`ManagerView`]); called after every turn of the daemon loop
//!   and at [`ProviderCore::poll_timeout`].
//! - [`ProviderCore::handle_submitted`], [`ProviderCore::handle_jobs`],
//!   [`ProviderCore::handle_cancelled`]: what the batch system answered to
//!   an earlier [`Action`].
//! - [`ProviderCore::handle_shutdown`]: cancel every block.
//!
//! Nothing here reads a clock, runs a command or touches a file. Blocks are
//! matched to managers by block id: each block gets an id
//! (`<prefix><n>`) that its pool-manager registers with.
//!
//! Scaling rule: blocks wanted = ceil(queued node demand / nodes per block)
//! minus blocks submitted whose manager has not registered yet, at least
//! enough to keep `min_blocks` serving, never more than `max_blocks` alive
//! (draining and cancelling blocks count until they end). A serving block
//! whose manager has run nothing for `max_idle`, while nothing is queued,
//! is drained (its manager exits once idle, which ends the job) and then
//! cancelled, down to `min_blocks`. A block whose job ends before its
//! manager registers, and a failed submission, are reported (state
//! `failed` with a message) and delay the next submission by an
//! exponential backoff, reset when a manager registers.

use crate::{ManagerView, QueueDemand};
use protocol::{BlockInfo, BlockState, ManagerId, UnixTime};
use seam::Time;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The settings the provider core needs.
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    /// `slurm`, `pbs` or `local`, as `status` shows it.
    pub provider: String,
    pub nodes_per_block: u32,
    pub min_blocks: u32,
    pub max_blocks: u32,
    pub max_idle: Duration,
    /// How often the batch system is asked about live jobs.
    pub poll_period: Duration,
    /// How long a draining manager gets to leave before its job is
    /// cancelled anyway.
    pub drain_grace: Duration,
    /// The delay after the first failure; it doubles with each further
    /// failure in a row, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Block ids are this followed by a counter from 1.
    pub block_prefix: String,
    /// Ended and failed blocks kept for `status` (oldest forgotten first).
    pub max_kept_ended: usize,
    /// The wall-clock time (seconds since the epoch) at `Time(0)`.
    pub wall_clock_at_zero: UnixTime,
}

/// Something the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Submit one block of `n_nodes` nodes whose manager registers with
    /// `block_id`; answer with [`ProviderCore::handle_submitted`].
    Submit { block_id: String, n_nodes: u32 },
    /// Ask the batch system about these jobs; answer with
    /// [`ProviderCore::handle_jobs`].
    QueryJobs { job_ids: Vec<String> },
    /// Cancel these jobs (block id, job id); answer with
    /// [`ProviderCore::handle_cancelled`].
    Cancel { jobs: Vec<(String, String)> },
    /// Drain this manager (`Core::drain_manager`); no answer.
    Drain {
        manager_id: ManagerId,
        block_id: String,
        reason: String,
    },
}

/// A job as the batch system reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting in the batch queue (or held).
    Pending,
    /// Running (the batch script, hence the pool-manager, is up).
    Running,
    /// Gone or finished; `detail` is the batch system's word for how
    /// (`COMPLETED`, `exit status 3`...), if it said.
    Ended { detail: Option<String> },
}

/// What the batch system said about a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub job_id: String,
    /// The file the job's output goes to.
    pub output_path: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    /// Submit sent, no answer yet.
    Submitting,
    /// The job waits in the batch queue.
    Queued,
    /// The job runs; its manager has not registered.
    Started,
    /// Its manager registered and may take tasks; idle since then.
    Serving {
        manager_id: ManagerId,
        idle_since: Option<Time>,
    },
    /// Its manager was told to drain (or drains by itself); it exits once
    /// idle. Idle since then (a draining manager may finish tasks first).
    Draining {
        manager_id: ManagerId,
        idle_since: Option<Time>,
    },
    /// A cancel was sent (`in_flight`) or failed and waits for a retry.
    Cancelling {
        in_flight: bool,
    },
    Ended,
    Failed,
}

#[derive(Clone, Debug)]
struct Block {
    block_id: String,
    job_id: Option<String>,
    n_nodes: u32,
    submitted_at: Time,
    phase: Phase,
    manager_id: Option<ManagerId>,
    output_path: Option<String>,
    message: Option<String>,
}

impl Block {
    fn is_alive(&self) -> bool {
        !matches!(self.phase, Phase::Ended | Phase::Failed)
    }

    /// Submitted, not yet registered.
    fn is_unconnected(&self) -> bool {
        matches!(
            self.phase,
            Phase::Submitting | Phase::Queued | Phase::Started
        )
    }

    /// Takes (or will take) tasks.
    fn is_serving(&self) -> bool {
        self.is_unconnected() || matches!(self.phase, Phase::Serving { .. })
    }

    fn state(&self) -> BlockState {
        match self.phase {
            Phase::Submitting | Phase::Queued => BlockState::Pending,
            Phase::Started => BlockState::Running,
            Phase::Serving { .. } => BlockState::Connected,
            Phase::Draining { .. } | Phase::Cancelling { .. } => BlockState::Draining,
            Phase::Ended => BlockState::Ended,
            Phase::Failed => BlockState::Failed,
        }
    }
}

/// The provider state machine. See the module documentation.
#[derive(Debug)]
pub struct ProviderCore {
    settings: ProviderSettings,
    /// Every block still known, oldest first, by block id.
    blocks: BTreeMap<u64, Block>,
    /// Block id to its key in `blocks`.
    index: HashMap<String, u64>,
    next_block: u64,
    actions: Vec<Action>,
    /// Failures (submission, or a job ending unregistered) in a row.
    n_failures: u32,
    /// No submission before this time.
    backoff_until: Option<Time>,
    next_query: Time,
    query_in_flight: Option<Vec<String>>,
    shutting_down: bool,
    changed: bool,
    /// The time of the last tick: deadlines up to it were looked at.
    last_tick: Time,
}

impl ProviderCore {
    pub fn new(settings: ProviderSettings, now: Time) -> Self {
        Self {
            settings,
            blocks: BTreeMap::new(),
            index: HashMap::new(),
            next_block: 1,
            actions: Vec::new(),
            n_failures: 0,
            backoff_until: None,
            next_query: now,
            query_in_flight: None,
            shutting_down: false,
            changed: false,
            last_tick: now,
        }
    }

    /// The largest task the blocks can run: larger tasks are unschedulable.
    pub fn max_task_nodes(&self) -> u32 {
        self.settings.nodes_per_block
    }

    // -----------------------------------------------------------------
    // Inputs
    // -----------------------------------------------------------------

    /// Looks at the queue and the managers: matches managers to blocks,
    /// drains idle blocks, submits blocks for waiting tasks, asks about
    /// jobs when the poll period has passed.
    pub fn handle_tick(&mut self, now: Time, demand: &QueueDemand, managers: &[ManagerView]) {
        self.last_tick = now;
        self.match_managers(now, managers);
        if !self.shutting_down {
            self.drain_idle(now, demand);
            self.cancel_slow_drains(now);
            self.scale_out(now, demand);
        }
        self.query_jobs(now);
        self.forget_old_blocks();
    }

    /// The batch system's answer to [`Action::Submit`].
    pub fn handle_submitted(
        &mut self,
        now: Time,
        block_id: &str,
        outcome: Result<Submitted, String>,
    ) {
        let shutting_down = self.shutting_down;
        let Some(block) = self.block_mut(block_id) else {
            tracing::warn!(block_id, "submission answer for an unknown block");
            return;
        };
        if block.phase != Phase::Submitting {
            tracing::warn!(block_id, "second submission answer for a block; ignored");
            return;
        }
        match outcome {
            Ok(submitted) => {
                tracing::info!(
                    block_id,
                    job_id = %submitted.job_id,
                    output = submitted.output_path.as_deref().unwrap_or(""),
                    "block submitted"
                );
                block.job_id = Some(submitted.job_id.clone());
                block.output_path = submitted.output_path;
                if shutting_down {
                    block.phase = Phase::Cancelling { in_flight: true };
                    let jobs = vec![(block_id.to_owned(), submitted.job_id)];
                    self.actions.push(Action::Cancel { jobs });
                } else {
                    block.phase = Phase::Queued;
                }
            }
            Err(problem) => {
                tracing::warn!(block_id, %problem, "block submission failed");
                block.phase = Phase::Failed;
                block.message = Some(format!("submission failed: {problem}"));
                self.failed(now);
            }
        }
        self.changed = true;
    }

    /// The batch system's answer to [`Action::QueryJobs`]: the state of the
    /// jobs it knows; a job asked about and missing has ended.
    pub fn handle_jobs(&mut self, now: Time, outcome: Result<Vec<(String, JobState)>, String>) {
        let Some(asked) = self.query_in_flight.take() else {
            tracing::warn!("job states that nobody asked for; ignored");
            return;
        };
        let states = match outcome {
            Ok(states) => states,
            Err(problem) => {
                tracing::warn!(%problem, "cannot ask the batch system about the blocks' jobs");
                return;
            }
        };
        let states: HashMap<String, JobState> = states.into_iter().collect();
        for job_id in asked {
            let state = states
                .get(&job_id)
                .cloned()
                .unwrap_or(JobState::Ended { detail: None });
            self.handle_job_state(now, &job_id, state);
        }
    }

    /// The batch system's answer to [`Action::Cancel`].
    pub fn handle_cancelled(&mut self, jobs: &[(String, String)], outcome: Result<(), String>) {
        if let Err(problem) = &outcome {
            tracing::warn!(%problem, n_jobs = jobs.len(), "cannot cancel blocks; will ask again");
        }
        for (block_id, job_id) in jobs {
            let Some(block) = self.block_mut(block_id) else {
                continue;
            };
            if !matches!(block.phase, Phase::Cancelling { .. }) {
                continue;
            }
            match outcome {
                Ok(()) => {
                    tracing::info!(block_id, job_id, "block cancelled");
                    block.phase = Phase::Ended;
                }
                Err(_) => block.phase = Phase::Cancelling { in_flight: false },
            }
            self.changed = true;
        }
    }

    /// Cancels every block (the interchange is stopping); submits nothing
    /// from now on. Blocks still being submitted are cancelled once their
    /// job id is known.
    pub fn handle_shutdown(&mut self) {
        self.shutting_down = true;
        let mut jobs = Vec::new();
        for block in self.blocks.values_mut() {
            if !block.is_alive() || matches!(block.phase, Phase::Cancelling { in_flight: true }) {
                continue;
            }
            if let Some(job_id) = &block.job_id {
                jobs.push((block.block_id.clone(), job_id.clone()));
                block.phase = Phase::Cancelling { in_flight: true };
            }
        }
        if !jobs.is_empty() {
            tracing::info!(n_blocks = jobs.len(), "cancelling every block");
            self.actions.push(Action::Cancel { jobs });
            self.changed = true;
        }
    }

    // -----------------------------------------------------------------
    // Outputs
    // -----------------------------------------------------------------

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() {
            None
        } else {
            Some(self.actions.remove(0))
        }
    }

    /// When to call [`ProviderCore::handle_tick`] at the latest: the next
    /// deadline after the last tick (one that has passed was looked at
    /// then; what it waited for, such as an idle block kept for
    /// `min_blocks`, is looked at again on every tick).
    pub fn poll_timeout(&self) -> Option<Time> {
        let mut deadlines = Vec::new();
        if self.query_in_flight.is_none() && self.blocks.values().any(|block| self.queryable(block))
        {
            deadlines.push(self.next_query);
        }
        if let Some(until) = self.backoff_until {
            deadlines.push(until);
        }
        for block in self.blocks.values() {
            match block.phase {
                Phase::Serving {
                    idle_since: Some(since),
                    ..
                } => deadlines.push(since.plus(self.settings.max_idle)),
                Phase::Draining {
                    idle_since: Some(since),
                    ..
                } => deadlines.push(since.plus(self.settings.drain_grace)),
                _ => {}
            }
        }
        deadlines
            .into_iter()
            .filter(|deadline| *deadline > self.last_tick)
            .min()
    }

    /// True once, after any change to what [`ProviderCore::blocks`] shows.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Every block known, as `status` shows them, oldest first.
    pub fn blocks(&self) -> Vec<BlockInfo> {
        self.blocks
            .values()
            .map(|block| BlockInfo {
                block_id: block.block_id.clone(),
                job_id: block.job_id.clone().unwrap_or_default(),
                provider: self.settings.provider.clone(),
                state: block.state(),
                n_nodes: block.n_nodes,
                manager_id: block.manager_id,
                submitted_at: self.settings.wall_clock_at_zero
                    + block.submitted_at.as_millis() as f64 / 1000.0,
                output_path: block.output_path.clone(),
                message: block.message.clone(),
            })
            .collect()
    }

    /// True when no block is alive (after shutdown: everything cancelled).
    pub fn all_ended(&self) -> bool {
        !self.blocks.values().any(Block::is_alive)
    }

    // -----------------------------------------------------------------
    // Internals
    // -----------------------------------------------------------------

    fn block_mut(&mut self, block_id: &str) -> Option<&mut Block> {
        let key = self.index.get(block_id)?;
        self.blocks.get_mut(key)
    }

    fn queryable(&self, block: &Block) -> bool {
        block.job_id.is_some()
            && block.is_alive()
            && !matches!(block.phase, Phase::Cancelling { in_flight: true })
    }

    fn failed(&mut self, now: Time) {
        self.n_failures = self.n_failures.saturating_add(1);
        let factor = 2u32.saturating_pow(self.n_failures.saturating_sub(1).min(30));
        let delay = self
            .settings
            .backoff_base
            .saturating_mul(factor)
            .min(self.settings.backoff_max);
        tracing::warn!(
            n_failures = self.n_failures,
            delay_s = delay.as_secs_f64(),
            "next block submission delayed"
        );
        self.backoff_until = Some(now.plus(delay));
    }

    fn match_managers(&mut self, now: Time, managers: &[ManagerView]) {
        let mut present: HashMap<ManagerId, &ManagerView> = HashMap::new();
        for manager in managers {
            let Some(key) = self.index.get(&manager.block_id) else {
                continue;
            };
            let Some(block) = self.blocks.get_mut(key) else {
                continue;
            };
            present.insert(manager.manager_id, manager);
            if block.is_unconnected() {
                tracing::info!(
                    block_id = %block.block_id,
                    manager_id = %manager.manager_id,
                    n_nodes = manager.n_nodes,
                    "block's manager registered"
                );
                block.manager_id = Some(manager.manager_id);
                block.phase = Phase::Serving {
                    manager_id: manager.manager_id,
                    idle_since: None,
                };
                self.n_failures = 0;
                self.backoff_until = None;
                self.changed = true;
            } else if !block.is_alive() {
                tracing::debug!(
                    block_id = %block.block_id,
                    manager_id = %manager.manager_id,
                    "manager of an ended block still registered"
                );
            }
        }
        let mut cancels = Vec::new();
        for block in self.blocks.values_mut() {
            match &mut block.phase {
                Phase::Serving {
                    manager_id,
                    idle_since,
                } => match present.get(manager_id) {
                    Some(manager) if manager.draining => {
                        block.phase = Phase::Draining {
                            manager_id: *manager_id,
                            idle_since: (manager.n_running_tasks == 0).then_some(now),
                        };
                        self.changed = true;
                    }
                    Some(manager) => {
                        if manager.n_running_tasks == 0 && !manager.held {
                            idle_since.get_or_insert(now);
                        } else {
                            *idle_since = None;
                        }
                    }
                    None => {
                        tracing::info!(block_id = %block.block_id, "block's manager left");
                        cancels.push(block);
                    }
                },
                Phase::Draining {
                    manager_id,
                    idle_since,
                } => match present.get(manager_id) {
                    Some(manager) if manager.n_running_tasks == 0 => {
                        idle_since.get_or_insert(now);
                    }
                    Some(_) => *idle_since = None,
                    None => {
                        tracing::info!(block_id = %block.block_id, "drained block's manager left");
                        cancels.push(block);
                    }
                },
                _ => {}
            }
        }
        let jobs = start_cancels(cancels);
        if !jobs.is_empty() {
            self.changed = true;
            self.actions.push(Action::Cancel { jobs });
        }
    }

    fn drain_idle(&mut self, now: Time, demand: &QueueDemand) {
        if demand.n_queued_tasks > 0 {
            return;
        }
        let n_serving = self.n_blocks(Block::is_serving);
        let mut n_spare = n_serving.saturating_sub(self.settings.min_blocks as usize);
        if n_spare == 0 {
            return;
        }
        let max_idle = self.settings.max_idle;
        let mut idle: Vec<(Time, u64)> = self
            .blocks
            .iter()
            .filter_map(|(key, block)| match block.phase {
                Phase::Serving {
                    idle_since: Some(since),
                    ..
                } if since.plus(max_idle) <= now => Some((since, *key)),
                _ => None,
            })
            .collect();
        idle.sort();
        for (since, key) in idle {
            if n_spare == 0 {
                break;
            }
            let Some(block) = self.blocks.get_mut(&key) else {
                continue;
            };
            let Phase::Serving { manager_id, .. } = block.phase else {
                continue;
            };
            let idle_for = since.until(now);
            let reason = format!("idle for {} s", idle_for.as_secs());
            tracing::info!(block_id = %block.block_id, %manager_id, %reason, "draining idle block");
            self.actions.push(Action::Drain {
                manager_id,
                block_id: block.block_id.clone(),
                reason,
            });
            block.phase = Phase::Draining {
                manager_id,
                idle_since: Some(now),
            };
            self.changed = true;
            n_spare -= 1;
        }
    }

    fn cancel_slow_drains(&mut self, now: Time) {
        let grace = self.settings.drain_grace;
        let slow: Vec<&mut Block> = self
            .blocks
            .values_mut()
            .filter(|block| {
                matches!(
                    block.phase,
                    Phase::Draining { idle_since: Some(since), .. } if since.plus(grace) <= now
                )
            })
            .collect();
        for block in &slow {
            tracing::warn!(
                block_id = %block.block_id,
                grace_s = grace.as_secs_f64(),
                "draining manager idle but still there after the grace; cancelling its job"
            );
        }
        let jobs = start_cancels(slow);
        if !jobs.is_empty() {
            self.changed = true;
            self.actions.push(Action::Cancel { jobs });
        }
    }

    /// How many blocks are `which`.
    fn n_blocks(&self, which: fn(&Block) -> bool) -> usize {
        self.blocks.values().filter(|block| which(block)).count()
    }

    fn scale_out(&mut self, now: Time, demand: &QueueDemand) {
        if self.backoff_until.is_some_and(|until| now < until) {
            return;
        }
        let nodes_per_block = u64::from(self.settings.nodes_per_block);
        let n_unconnected = self.n_blocks(Block::is_unconnected) as u64;
        let n_serving = self.n_blocks(Block::is_serving) as u64;
        let n_alive = self.n_blocks(Block::is_alive) as u64;
        let for_demand = demand
            .n_queued_nodes
            .div_ceil(nodes_per_block)
            .saturating_sub(n_unconnected);
        let for_minimum = u64::from(self.settings.min_blocks).saturating_sub(n_serving);
        let room = u64::from(self.settings.max_blocks).saturating_sub(n_alive);
        let n_new = for_demand.max(for_minimum).min(room);
        for _ in 0..n_new {
            let key = self.next_block;
            self.next_block += 1;
            let block_id = format!("{}{key}", self.settings.block_prefix);
            tracing::info!(
                %block_id,
                n_nodes = self.settings.nodes_per_block,
                n_queued_tasks = demand.n_queued_tasks,
                n_queued_nodes = demand.n_queued_nodes,
                "submitting a block"
            );
            self.actions.push(Action::Submit {
                block_id: block_id.clone(),
                n_nodes: self.settings.nodes_per_block,
            });
            self.index.insert(block_id.clone(), key);
            self.blocks.insert(
                key,
                Block {
                    block_id,
                    job_id: None,
                    n_nodes: self.settings.nodes_per_block,
                    submitted_at: now,
                    phase: Phase::Submitting,
                    manager_id: None,
                    output_path: None,
                    message: None,
                },
            );
            self.changed = true;
        }
    }

    fn query_jobs(&mut self, now: Time) {
        if self.query_in_flight.is_some() || now < self.next_query {
            return;
        }
        let job_ids: Vec<String> = self
            .blocks
            .values()
            .filter(|block| self.queryable(block))
            .filter_map(|block| block.job_id.clone())
            .collect();
        if job_ids.is_empty() {
            return;
        }
        self.next_query = now.plus(self.settings.poll_period);
        self.query_in_flight = Some(job_ids.clone());
        self.actions.push(Action::QueryJobs { job_ids });
    }

    fn handle_job_state(&mut self, now: Time, job_id: &str, state: JobState) {
        let Some(block) = self
            .blocks
            .values_mut()
            .find(|block| block.job_id.as_deref() == Some(job_id) && block.is_alive())
        else {
            return;
        };
        match (&block.phase, state) {
            (Phase::Queued, JobState::Running) => {
                tracing::info!(block_id = %block.block_id, job_id, "block's job started");
                block.phase = Phase::Started;
                self.changed = true;
            }
            (Phase::Queued | Phase::Started, JobState::Ended { detail }) => {
                let output = block.output_path.as_deref().unwrap_or("(unknown)");
                let how = detail.map(|word| format!(" ({word})")).unwrap_or_default();
                let message = format!(
                    "job {job_id} ended{how} without its manager registering; see its output {output}"
                );
                tracing::warn!(
                    block_id = %block.block_id,
                    job_id,
                    output,
                    "block's job ended without its manager registering"
                );
                block.phase = Phase::Failed;
                block.message = Some(message);
                self.changed = true;
                self.failed(now);
            }
            (Phase::Cancelling { in_flight: false }, JobState::Pending | JobState::Running) => {
                block.phase = Phase::Cancelling { in_flight: true };
                let jobs = vec![(block.block_id.clone(), job_id.to_owned())];
                self.actions.push(Action::Cancel { jobs });
            }
            (_, JobState::Ended { detail }) => {
                tracing::info!(
                    block_id = %block.block_id,
                    job_id,
                    detail = detail.as_deref().unwrap_or(""),
                    "block's job ended"
                );
                block.phase = Phase::Ended;
                self.changed = true;
            }
            _ => {}
        }
    }

    /// Keeps at most `max_kept_ended` ended or failed blocks.
    fn forget_old_blocks(&mut self) {
        let n_ended = self
            .blocks
            .values()
            .filter(|block| !block.is_alive())
            .count();
        let mut n_extra = n_ended.saturating_sub(self.settings.max_kept_ended);
        if n_extra == 0 {
            return;
        }
        let old: Vec<u64> = self
            .blocks
            .iter()
            .filter(|(_, block)| !block.is_alive())
            .map(|(key, _)| *key)
            .collect();
        for key in old {
            if n_extra == 0 {
                break;
            }
            if let Some(block) = self.blocks.remove(&key) {
                self.index.remove(&block.block_id);
            }
            n_extra -= 1;
            self.changed = true;
        }
    }
}

/// Moves blocks to `Cancelling` and lists the jobs to cancel; a block
/// without a job id (cannot happen past `Submitting`) just ends.
fn start_cancels<'a>(blocks: impl IntoIterator<Item = &'a mut Block>) -> Vec<(String, String)> {
    let mut jobs = Vec::new();
    for block in blocks {
        match &block.job_id {
            Some(job_id) => {
                jobs.push((block.block_id.clone(), job_id.clone()));
                block.phase = Phase::Cancelling { in_flight: true };
            }
            None => block.phase = Phase::Ended,
        }
    }
    jobs
}

mod adopt;
#[cfg(test)]
mod tests;
