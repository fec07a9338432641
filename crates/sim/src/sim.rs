//! The simulation: a workload run on the [`pair::Pair`] harness, that is
//! the real interchange core and one real pool-manager core per block, with
//! one client, in virtual time.
//!
//! The simulator's own events (a batch of submissions, a block joining, a
//! block's manager going silent) sit in a queue ordered by (time in
//! milliseconds, sequence number) beside the Pair's (messages, task exits,
//! both cores' deadlines); at the same millisecond the Pair's go first.
//! Messages cross as encoded frames with no delay. A block that joins is a
//! pool-manager core added to the Pair; one that leaves is killed there
//! (it goes silent, its tasks vanish), and the interchange finds it lost
//! after its heartbeat threshold. Each task's command is `sleep <its
//! duration>`, which the Pair's fake launcher runs; the manager core kills
//! a task at its walltime.
//!
//! What is checked, after every step: every manager core's `validate()`
//! and the interchange core's; no manager refuses a placement the
//! interchange made (a `launch_failed` from the pool-manager's allocator is
//! a violation); no task gets two results or is dispatched after its
//! result or while it still runs; no queued task waits while an entirely
//! idle manager could start it (and, with
//! [`SimConfig::check_unreserved_capacity`], while a manager with room for
//! it holds no reservation).

use crate::workload::{BlockSpec, TaskSpec, Workload};
use pair::{sleep_command, sleep_launcher, ManagerSpec, Pair, PairConfig, Seen, Step, Stranded};
use protocol::{
    Command, ManagerId, Reply, StatusReport, TaskDispatch, TaskId, TaskResult, TaskStatusInfo,
    TaskSubmission, ToClient, ToManager,
};
use seam::Time;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub use crate::records::{
    to_millis, to_seconds, BusySpan, Dispatch, Millis, SimConfig, SimError, TaskRecord,
};

/// Where a task runs now.
#[derive(Debug)]
struct Running {
    block: usize,
    start: Millis,
    nodes_equivalent: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    /// The client submits tasks `first..end` (indices into the sorted task list).
    Submit {
        first: usize,
        end: usize,
    },
    Join {
        block: usize,
    },
    Leave {
        block: usize,
    },
}

/// One run of a workload through the interchange core and the
/// pool-manager cores.
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    pair: Pair,
    client: usize,
    blocks: Vec<BlockSpec>,
    /// The Pair's manager of each block that joined.
    manager_of_block: Vec<Option<usize>>,
    /// The block of each of the Pair's managers.
    block_of_manager: Vec<usize>,
    left: Vec<bool>,
    now: Millis,
    sequence: u64,
    events: BTreeMap<(Millis, u64), Event>,
    last_activity: Millis,
    tasks: Vec<TaskRecord>,
    index_of: HashMap<TaskId, usize>,
    running: HashMap<usize, Running>,
    n_results_total: u64,
    n_unfinished: usize,
    busy: Vec<BusySpan>,
    violations: Vec<String>,
    n_violations: u64,
    n_events: u64,
    stalled: bool,
}

impl Simulation {
    /// Sets up the Pair, the client's `hello` and every scheduled event.
    pub fn new(workload: &Workload, config: SimConfig) -> Result<Self, SimError> {
        workload.validate()?;
        if config.core.heartbeat_period.is_zero() {
            return Err(SimError::ZeroHeartbeat);
        }
        if config.batch_size == 0 {
            return Err(SimError::ZeroBatch);
        }
        let mut specs = workload.tasks.clone();
        // Stable: tasks submitted at the same time keep their order.
        specs.sort_by(|a, b| a.submit.total_cmp(&b.submit));
        let tasks: Vec<TaskRecord> = specs
            .into_iter()
            .enumerate()
            .map(|(index, spec)| TaskRecord {
                task_id: TaskId::from_u128(index as u128 + 1),
                resources: spec.resources(),
                spec,
                submitted: false,
                dispatches: Vec::new(),
                result: None,
                n_results: 0,
            })
            .collect();
        let index_of = tasks
            .iter()
            .enumerate()
            .map(|(index, task)| (task.task_id, index))
            .collect();
        let mut pair = Pair::new(PairConfig {
            interchange: config.core.clone(),
            delay: Duration::ZERO,
            validate_every_step: config.validate_every_step,
            record: true,
            reattach_timeout: Duration::ZERO,
        });
        pair.set_launcher(sleep_launcher());
        let client = pair.add_client();
        let n_blocks = workload.blocks.len();
        let mut simulation = Self {
            config,
            pair,
            client,
            blocks: workload.blocks.clone(),
            manager_of_block: vec![None; n_blocks],
            block_of_manager: Vec::new(),
            left: vec![false; n_blocks],
            now: 0,
            sequence: 0,
            events: BTreeMap::new(),
            last_activity: 0,
            n_unfinished: tasks.len(),
            tasks,
            index_of,
            running: HashMap::new(),
            n_results_total: 0,
            busy: Vec::new(),
            violations: Vec::new(),
            n_violations: 0,
            n_events: 0,
            stalled: false,
        };
        for (block, spec) in workload.blocks.iter().enumerate() {
            simulation.schedule(to_millis(spec.join), Event::Join { block });
            if let Some(leave) = spec.leave {
                simulation.schedule(to_millis(leave), Event::Leave { block });
            }
        }
        let mut first = 0;
        while first < simulation.tasks.len() {
            let at = to_millis(simulation.tasks[first].spec.submit);
            let mut end = first + 1;
            while end < simulation.tasks.len()
                && end - first < simulation.config.batch_size
                && to_millis(simulation.tasks[end].spec.submit) == at
            {
                end += 1;
            }
            simulation.schedule(at, Event::Submit { first, end });
            first = end;
        }
        simulation.absorb();
        Ok(simulation)
    }

    fn schedule(&mut self, at: Millis, event: Event) {
        self.events.insert((at, self.sequence), event);
        self.sequence += 1;
    }

    fn violation(&mut self, message: String) {
        self.n_violations += 1;
        if self.violations.len() < self.config.max_violation_messages {
            self.violations.push(message);
        }
    }

    // -----------------------------------------------------------------
    // Running
    // -----------------------------------------------------------------

    /// Runs until every task has its result, or nothing more can happen
    /// (no pending submission, join, leave, message or running task, and
    /// the cores' deadlines past a heartbeat threshold after the last of
    /// them).
    pub fn run(&mut self) {
        self.run_until_millis(Millis::MAX);
    }

    /// Runs every event up to and including `seconds`; returns early when
    /// the run is over (see [`Simulation::run`]).
    pub fn run_until(&mut self, seconds: f64) {
        self.run_until_millis(to_millis(seconds));
    }

    fn quiet_limit(&self) -> Millis {
        let threshold = self.config.core.heartbeat_threshold;
        let period = self.config.core.heartbeat_period;
        let limit = threshold + period * 2 + Duration::from_secs(1);
        u64::try_from(limit.as_millis()).unwrap_or(Millis::MAX)
    }

    fn run_until_millis(&mut self, limit: Millis) {
        loop {
            if self.is_over() {
                return;
            }
            let next_event = self.events.first_key_value().map(|(key, _)| key.0);
            let next_in_pair = self.pair.next_time().map(Time::as_millis);
            let pair_first = match (next_in_pair, next_event) {
                (Some(in_pair), Some(event)) => in_pair <= event,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => {
                    self.stalled = true;
                    return;
                }
            };
            let next = if pair_first { next_in_pair } else { next_event }.unwrap_or(self.now);
            let activity_pending = !self.events.is_empty() || self.pair.has_pending_events();
            if !activity_pending && next > self.last_activity.saturating_add(self.quiet_limit()) {
                self.stalled = true;
                return;
            }
            if next > limit {
                self.now = self.now.max(limit);
                self.pair.run_until(Time::from_millis(self.now));
                return;
            }
            self.now = self.now.max(next);
            self.n_events += 1;
            if pair_first {
                if self.pair.step() == Some(Step::Event) {
                    self.last_activity = self.now;
                }
            } else if let Some((_, event)) = self.events.pop_first() {
                self.pair.run_until(Time::from_millis(self.now));
                self.last_activity = self.now;
                self.handle_event(event);
            }
            self.absorb();
            self.check_after_event();
        }
    }

    /// Adds a task while the simulation runs: it is submitted at
    /// `spec.submit` (or now, if that is earlier), after every event already
    /// scheduled for that millisecond. Returns its index in
    /// [`Simulation::tasks`].
    pub fn add_task(&mut self, mut spec: TaskSpec) -> usize {
        spec.submit = spec.submit.max(self.now());
        let index = self.tasks.len();
        let task_id = TaskId::from_u128(index as u128 + 1);
        self.tasks.push(TaskRecord {
            task_id,
            resources: spec.resources(),
            submitted: false,
            dispatches: Vec::new(),
            result: None,
            n_results: 0,
            spec,
        });
        self.index_of.insert(task_id, index);
        self.n_unfinished += 1;
        self.stalled = false;
        let at = to_millis(self.tasks[index].spec.submit);
        self.schedule(
            at,
            Event::Submit {
                first: index,
                end: index + 1,
            },
        );
        index
    }

    /// True once every task has a result, or the run stalled.
    pub fn is_over(&self) -> bool {
        self.n_unfinished == 0 || self.stalled
    }

    /// True when the run ended with tasks that can never get a result.
    pub fn stalled(&self) -> bool {
        self.stalled && self.n_unfinished > 0
    }

    /// Virtual time now, in seconds.
    pub fn now(&self) -> f64 {
        to_seconds(self.now)
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Submit { first, end } => self.submit(first, end),
            Event::Join { block } => {
                if self.left[block] || self.manager_of_block[block].is_some() {
                    return;
                }
                let spec = &self.blocks[block];
                let manager = self.pair.add_manager(&ManagerSpec {
                    manager_id: ManagerId::from_u128(0x1000_0000 + block as u128),
                    block_id: format!("b{block}"),
                    n_nodes: spec.nodes,
                    slots_per_node: spec.slots_per_node,
                });
                self.manager_of_block[block] = Some(manager);
                self.block_of_manager.push(block);
            }
            Event::Leave { block } => {
                tracing::debug!(block, "manager goes silent");
                self.left[block] = true;
                if let Some(manager) = self.manager_of_block[block] {
                    self.pair.kill_manager(manager);
                }
            }
        }
    }

    fn submit(&mut self, first: usize, end: usize) {
        let submissions: Vec<TaskSubmission> = self.tasks[first..end]
            .iter()
            .map(|task| TaskSubmission {
                resources: task.spec.request(),
                ..TaskSubmission::new(
                    task.task_id,
                    sleep_command(Duration::from_millis(to_millis(task.spec.duration))),
                )
            })
            .collect();
        for task in &mut self.tasks[first..end] {
            task.submitted = true;
        }
        self.pair.submit(self.client, submissions);
    }

    // -----------------------------------------------------------------
    // What the Pair saw
    // -----------------------------------------------------------------

    /// Takes in what happened in the Pair: what managers got and ran, what
    /// the client got, and any problem the Pair found.
    fn absorb(&mut self) {
        while let Some(seen) = self.pair.poll_seen() {
            match seen {
                Seen::ToManager { manager, message } => {
                    let block = self.block_of_manager[manager];
                    self.manager_got(block, message);
                }
                Seen::Launched { manager, task_id } => {
                    let block = self.block_of_manager[manager];
                    self.launched(block, task_id);
                }
                Seen::Exited { task_id, .. } | Seen::Vanished { task_id, .. } => {
                    self.ended(task_id);
                }
                Seen::ManagerExited { manager, reason } => {
                    let block = self.block_of_manager[manager];
                    self.violation(format!("block {block}'s manager exited: {reason:?}"));
                }
                Seen::InterchangeExited => {
                    self.violation("the core exited".to_owned());
                    self.stalled = true;
                }
            }
        }
        while let Some(message) = self.pair.poll_client(self.client) {
            self.deliver_to_client(message);
        }
        for problem in self.pair.take_problems() {
            let message = format!("at {} s: {problem}", to_seconds(self.now));
            self.violation(message);
        }
    }

    fn manager_got(&mut self, block: usize, message: ToManager) {
        match message {
            ToManager::Registered { .. } | ToManager::Heartbeat => {}
            ToManager::Refused { reason, .. } | ToManager::NotRegistered { reason } => {
                self.violation(format!("block {block} was refused: {reason}"));
            }
            ToManager::Shutdown { reason } => {
                self.violation(format!("block {block} was told to shut down: {reason}"));
            }
            ToManager::CancelTask { task_id } => {
                self.violation(format!(
                    "block {block} was told to cancel {task_id}, which nobody asked for"
                ));
            }
            ToManager::RunTasks { tasks } => {
                for dispatch in tasks {
                    self.dispatched(block, dispatch);
                }
            }
        }
    }

    /// A dispatch reached a block's manager: record it (its placement is
    /// the manager core's to check).
    fn dispatched(&mut self, block: usize, dispatch: TaskDispatch) {
        let Some(&index) = self.index_of.get(&dispatch.task_id) else {
            self.violation(format!(
                "block {block} got unknown task {}",
                dispatch.task_id
            ));
            return;
        };
        let problem = if self.tasks[index].n_results > 0 {
            Some("sent after its result".to_owned())
        } else {
            match self.running.get(&index) {
                Some(running) if running.block == block => {
                    Some("sent to a manager that already runs it".to_owned())
                }
                Some(running) => Some(format!("sent while block {} still runs it", running.block)),
                None => None,
            }
        };
        if let Some(problem) = problem {
            self.violation(format!(
                "task {index} on block {block} at {} s: {problem}",
                to_seconds(self.now)
            ));
            return;
        }
        self.tasks[index].dispatches.push(Dispatch {
            block,
            at: self.now,
            placement: dispatch.placement,
            resources: dispatch.resources,
        });
    }

    fn launched(&mut self, block: usize, task_id: TaskId) {
        let Some(&index) = self.index_of.get(&task_id) else {
            return;
        };
        let Some(dispatch) = self.tasks[index].dispatches.last() else {
            return;
        };
        let resources = &dispatch.resources;
        let slots_per_node = self.blocks[block].slots_per_node;
        let nodes_equivalent = if resources.exclusive {
            f64::from(resources.num_nodes)
        } else {
            f64::from(resources.num_nodes) * f64::from(resources.ranks_per_node.min(slots_per_node))
                / f64::from(slots_per_node)
        };
        self.running.insert(
            index,
            Running {
                block,
                start: self.now,
                nodes_equivalent,
            },
        );
    }

    fn ended(&mut self, task_id: TaskId) {
        let Some(running) = self
            .index_of
            .get(&task_id)
            .and_then(|index| self.running.remove(index))
        else {
            return;
        };
        self.busy.push(BusySpan {
            start: running.start,
            end: self.now,
            nodes: running.nodes_equivalent,
        });
    }

    fn deliver_to_client(&mut self, message: ToClient) {
        match message {
            ToClient::Welcome { .. } | ToClient::Submitted { .. } | ToClient::Watching { .. } => {}
            ToClient::Results { results } => {
                for result in results {
                    self.client_result(result);
                }
            }
            ToClient::Reply { .. } => {}
            ToClient::Refused { reason, .. } => {
                self.violation(format!("the client was refused: {reason}"));
            }
            ToClient::Error { message, .. } => {
                self.violation(format!("the client got an error: {message}"));
            }
        }
    }

    fn client_result(&mut self, result: TaskResult) {
        self.n_results_total += 1;
        let Some(&index) = self.index_of.get(&result.task_id) else {
            self.violation(format!("result for unknown task {}", result.task_id));
            return;
        };
        let now = self.now;
        let task = &mut self.tasks[index];
        task.n_results += 1;
        if task.n_results == 1 {
            task.result = Some((now, result));
            self.n_unfinished -= 1;
        } else {
            let message = format!(
                "task {index} got result number {} at {} s",
                task.n_results,
                to_seconds(now)
            );
            self.violation(message);
        }
    }

    // -----------------------------------------------------------------
    // Checks after every step
    // -----------------------------------------------------------------

    fn index_of_task(&self, task_id: TaskId) -> String {
        self.index_of
            .get(&task_id)
            .map_or_else(|| task_id.to_string(), usize::to_string)
    }

    fn check_after_event(&mut self) {
        if self.pair.n_waiting() == 0 {
            return;
        }
        if let Some(stranded) = self.pair.idle_manager_fitting() {
            self.stranded(stranded, "idle, could start it");
        }
        if self.config.check_unreserved_capacity {
            let Some(status) = self.status() else {
                self.violation("no answer to status".to_owned());
                return;
            };
            if let Some(stranded) = self.pair.unreserved_manager_fitting(&status) {
                self.stranded(stranded, "not reserved, has room for it");
            }
        }
    }

    /// Records a task that waits while a block could start it.
    fn stranded(&mut self, stranded: Stranded, why: &str) {
        let message = format!(
            "at {} s task {} waits while block {}, {why}",
            to_seconds(self.now),
            self.index_of_task(stranded.task_id),
            self.block_of_manager[stranded.manager]
        );
        self.violation(message);
    }

    // -----------------------------------------------------------------
    // Questions to the core, as a client asks them
    // -----------------------------------------------------------------

    /// Asks the core for `status` now, as `rhtex status` does.
    pub fn status(&mut self) -> Option<StatusReport> {
        let report = self.pair.status(self.client);
        self.absorb();
        report
    }

    /// Asks the core for the state of one task of the workload (by index
    /// into [`Simulation::tasks`]).
    pub fn task_status(&mut self, index: usize) -> Option<TaskStatusInfo> {
        let task_id = self.tasks.get(index)?.task_id;
        let reply = self.pair.ask(
            self.client,
            Command::TaskStatus {
                task_ids: vec![task_id],
            },
        );
        self.absorb();
        match reply? {
            Reply::TaskStatus { mut tasks } => tasks.pop(),
            _ => None,
        }
    }

    // -----------------------------------------------------------------
    // Results
    // -----------------------------------------------------------------

    /// Every task: the workload's, sorted by submit time, then any added
    /// with [`Simulation::add_task`]. Task `i` has id `TaskId::from_u128(i + 1)`.
    pub fn tasks(&self) -> &[TaskRecord] {
        &self.tasks
    }

    /// The block specifications, in workload order.
    pub fn blocks(&self) -> Vec<BlockSpec> {
        self.blocks.clone()
    }

    /// The harness the run is on (the cores, their checks).
    pub fn pair(&self) -> &Pair {
        &self.pair
    }

    /// Busy spans so far (tasks still running are not included).
    pub fn busy_spans(&self) -> &[BusySpan] {
        &self.busy
    }

    /// Violation messages (at most `max_violation_messages`) and how many
    /// there were in all.
    pub fn violations(&self) -> (&[String], u64) {
        (&self.violations, self.n_violations)
    }

    /// Events handled (the Pair's steps, including the cores' deadlines,
    /// and the simulator's own) and frames sent to the interchange core.
    pub fn counters(&self) -> (u64, u64) {
        (self.n_events, self.pair.counters().1)
    }

    /// Results the client received in all (duplicates included).
    pub fn n_results_total(&self) -> u64 {
        self.n_results_total
    }
}

#[cfg(test)]
mod tests {
    //! The checks must be able to fail: forged dispatches (as a faulty core
    //! would send them) are refused by the real pool-manager core, and each
    //! refusal is a violation.

    use super::*;
    use protocol::{ErrorKind, NodeShare, TaskResources};

    fn one_block_simulation(n_tasks: usize) -> Simulation {
        let workload = Workload {
            name: "refusals".to_owned(),
            description: String::new(),
            // Long tasks submitted late, so that the block is idle at 1 s.
            tasks: (0..n_tasks)
                .map(|_| TaskSpec::new(100.0, 10.0, 2))
                .collect(),
            blocks: vec![BlockSpec::new(4, 8, 0.0)],
        };
        let mut simulation = match Simulation::new(&workload, SimConfig::default()) {
            Ok(simulation) => simulation,
            Err(error) => panic!("{error}"),
        };
        simulation.run_until(1.0);
        simulation
    }

    fn forged(index: usize, nodes: &[u32], slots: u32, exclusive: bool) -> TaskDispatch {
        let mut resources = TaskResources::serial();
        resources.num_nodes = nodes.len() as u32;
        resources.exclusive = exclusive;
        TaskDispatch::new(
            TaskId::from_u128(index as u128 + 1),
            "true".to_owned(),
            resources,
            nodes
                .iter()
                .map(|&node| NodeShare { node, slots })
                .collect(),
        )
    }

    fn violations_after(dispatches: Vec<TaskDispatch>) -> Vec<String> {
        let mut simulation = one_block_simulation(3);
        simulation
            .pair
            .inject_to_manager(0, &ToManager::RunTasks { tasks: dispatches });
        simulation.absorb();
        simulation.violations().0.to_vec()
    }

    #[test]
    fn a_valid_placement_is_accepted() {
        let found = violations_after(vec![
            forged(0, &[0, 1], 8, true),
            forged(1, &[2, 3], 8, true),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn forged_placements_are_refused_by_the_manager_core() {
        let cases: Vec<(Vec<TaskDispatch>, &str)> = vec![
            (
                vec![forged(0, &[0, 1], 8, true), forged(1, &[1, 2], 8, true)],
                "node 1 is not wholly free",
            ),
            (vec![forged(0, &[0, 0], 8, true)], "more than once"),
            (vec![forged(0, &[7], 8, true)], "names node 7"),
            (
                vec![forged(0, &[0], 4, false), forged(1, &[0], 8, true)],
                "node 0 is not wholly free",
            ),
            (vec![forged(0, &[0], 4, true)], "must take all 8 slots"),
            (
                vec![forged(0, &[0, 1], 8, true), forged(0, &[2, 3], 8, true)],
                "duplicate task id",
            ),
        ];
        for (dispatches, expected) in cases {
            let found = violations_after(dispatches);
            assert!(
                found.iter().any(|message| message.contains(expected)),
                "expected a violation containing {expected:?}, got {found:?}"
            );
        }
        let mut wrong_count = forged(0, &[0, 1], 8, true);
        wrong_count.resources.num_nodes = 3;
        let found = violations_after(vec![wrong_count]);
        assert!(
            found.iter().any(|message| message.contains("refused")
                && message.contains("lists 2 node(s) but the task asks for num_nodes = 3")),
            "{found:?}"
        );
    }

    #[test]
    fn a_second_result_is_a_violation() {
        let mut simulation = one_block_simulation(1);
        let result = TaskResult::failed_before_start(
            TaskId::from_u128(1),
            ErrorKind::Cancelled,
            "forged".to_owned(),
        );
        simulation.deliver_to_client(ToClient::Results {
            results: vec![result.clone(), result],
        });
        let (messages, n_violations) = simulation.violations();
        assert_eq!(n_violations, 1, "{messages:?}");
        assert!(messages[0].contains("result number 2"), "{messages:?}");
    }

    #[test]
    fn every_core_stays_consistent_through_a_run() {
        let mut simulation = one_block_simulation(5);
        simulation.run();
        assert_eq!(
            simulation.violations().1,
            0,
            "{:?}",
            simulation.violations()
        );
        assert!(simulation.pair().validate().is_ok());
        assert_eq!(simulation.n_results_total(), 5);
    }
}
