//! Provider core scenarios with simulated time: every action the core
//! queues is checked (a scenario fails on anything unexpected).

use super::*;

const NODES_PER_BLOCK: u32 = 2;

fn settings() -> ProviderSettings {
    ProviderSettings {
        provider: "slurm".to_owned(),
        nodes_per_block: NODES_PER_BLOCK,
        min_blocks: 0,
        max_blocks: 3,
        max_idle: Duration::from_secs(60),
        poll_period: Duration::from_secs(10),
        drain_grace: Duration::from_secs(30),
        backoff_base: Duration::from_secs(10),
        backoff_max: Duration::from_secs(40),
        block_prefix: "b-".to_owned(),
        max_kept_ended: 4,
        wall_clock_at_zero: 1000.0,
    }
}

/// The provider core, the queue and managers it sees, and a clock.
struct Sim {
    core: ProviderCore,
    now: Time,
    demand: QueueDemand,
    managers: Vec<ManagerView>,
}

fn submit(block_id: &str) -> Action {
    Action::Submit {
        block_id: block_id.to_owned(),
        n_nodes: NODES_PER_BLOCK,
    }
}

fn query(job_ids: &[&str]) -> Action {
    Action::QueryJobs {
        job_ids: job_ids.iter().map(|id| (*id).to_owned()).collect(),
    }
}

fn cancel(jobs: &[(&str, &str)]) -> Action {
    Action::Cancel {
        jobs: jobs
            .iter()
            .map(|(block, job)| ((*block).to_owned(), (*job).to_owned()))
            .collect(),
    }
}

fn manager_id(n: u128) -> ManagerId {
    ManagerId::from_u128(n)
}

fn drain(manager: u128, block_id: &str, reason: &str) -> Action {
    Action::Drain {
        manager_id: manager_id(manager),
        block_id: block_id.to_owned(),
        reason: reason.to_owned(),
    }
}

fn is_submit(action: &Action) -> bool {
    matches!(action, Action::Submit { .. })
}

fn is_drain(action: &Action) -> bool {
    matches!(action, Action::Drain { .. })
}

impl Sim {
    fn new(settings: ProviderSettings) -> Self {
        Self {
            core: ProviderCore::new(settings, Time::from_millis(0)),
            now: Time::from_millis(0),
            demand: QueueDemand::default(),
            managers: Vec::new(),
        }
    }

    /// Queued tasks of these node counts.
    fn queue(&mut self, task_nodes: &[u32]) {
        self.demand = QueueDemand {
            n_queued_tasks: task_nodes.len() as u64,
            n_queued_nodes: task_nodes.iter().map(|n| u64::from(*n)).sum(),
            max_task_nodes: task_nodes.iter().copied().max().unwrap_or(0),
        };
    }

    /// A provider with `settings` asked for three blocks of two nodes;
    /// checks it submits b-1, b-2 and b-3.
    fn with_three_blocks(settings: ProviderSettings) -> Self {
        let mut sim = Self::new(settings);
        sim.queue(&[2, 2, 2]);
        assert_eq!(
            sim.tick(),
            vec![submit("b-1"), submit("b-2"), submit("b-3")]
        );
        sim
    }

    /// A provider with `settings` whose one block b-1 got job 11; checks it
    /// asks after that job.
    fn with_one_job(settings: ProviderSettings) -> Self {
        let mut sim = Self::new(settings);
        sim.queue(&[1]);
        sim.tick();
        sim.submitted("b-1", "11");
        assert_eq!(sim.tick(), vec![query(&["11"])]);
        sim
    }

    /// Checks the next deadline is in `seconds`, nothing happens before
    /// it, and `then` happens at it.
    fn expect_at(&mut self, seconds: u64, then: Vec<Action>) {
        assert_eq!(
            self.core.poll_timeout(),
            Some(self.now.plus(Duration::from_secs(seconds)))
        );
        self.advance(seconds - 1);
        assert_eq!(self.tick(), vec![]);
        self.advance(1);
        assert_eq!(self.tick(), then);
    }

    fn advance(&mut self, seconds: u64) {
        self.now = self.now.plus(Duration::from_secs(seconds));
    }

    /// One tick; every action it queued.
    fn tick(&mut self) -> Vec<Action> {
        self.core
            .handle_tick(self.now, &self.demand, &self.managers);
        self.actions()
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.core.poll_action()).collect()
    }

    fn submitted(&mut self, block_id: &str, job_id: &str) {
        let submitted = Submitted {
            job_id: job_id.to_owned(),
            output_path: Some(format!("/run/blocks/{block_id}.out")),
        };
        self.core
            .handle_submitted(self.now, block_id, Ok(submitted));
        assert_eq!(self.actions(), vec![], "after submission of {block_id}");
    }

    fn register(&mut self, block_id: &str, id: u128) {
        self.managers.push(ManagerView {
            manager_id: manager_id(id),
            block_id: block_id.to_owned(),
            n_nodes: NODES_PER_BLOCK,
            n_running_tasks: 0,
            draining: false,
            held: false,
        });
    }

    fn set_running(&mut self, id: u128, n_running_tasks: u32) {
        for manager in &mut self.managers {
            if manager.manager_id == manager_id(id) {
                manager.n_running_tasks = n_running_tasks;
            }
        }
    }

    fn unregister(&mut self, id: u128) {
        self.managers
            .retain(|manager| manager.manager_id != manager_id(id));
    }

    fn jobs(&mut self, states: &[(&str, JobState)]) {
        let states = states
            .iter()
            .map(|(id, state)| ((*id).to_owned(), state.clone()))
            .collect();
        self.core.handle_jobs(self.now, Ok(states));
    }

    fn state_of(&self, block_id: &str) -> BlockInfo {
        self.core
            .blocks()
            .into_iter()
            .find(|block| block.block_id == block_id)
            .unwrap_or_else(|| panic!("no block {block_id}"))
    }

    /// Submits and connects `block_id` (job `job_id`, manager `id`).
    fn connect(&mut self, block_id: &str, job_id: &str, id: u128) {
        self.submitted(block_id, job_id);
        self.register(block_id, id);
    }
}

#[test]
fn scales_out_from_the_node_demand_of_waiting_tasks() {
    let mut sim = Sim::new(settings());
    assert_eq!(sim.tick(), vec![], "nothing queued, no block");

    // 1 + 2 nodes: two blocks of 2.
    sim.queue(&[1, 2]);
    assert_eq!(sim.tick(), vec![submit("b-1"), submit("b-2")]);
    assert_eq!(sim.tick(), vec![], "blocks on their way count");
    assert_eq!(sim.state_of("b-1").state, BlockState::Pending);
    assert!(sim.core.take_changed());
    assert!(!sim.core.take_changed());

    // 5 nodes: a third block.
    sim.queue(&[1, 2, 2]);
    assert_eq!(sim.tick(), vec![submit("b-3")]);

    // b-1 connects and takes a task: one block short of the demand left.
    sim.connect("b-1", "11", 1);
    sim.submitted("b-2", "12");
    sim.queue(&[2, 2]);
    assert_eq!(
        sim.tick(),
        vec![query(&["11", "12"])],
        "two blocks still on their way cover 4 nodes"
    );
    let block = sim.state_of("b-1");
    assert_eq!(block.state, BlockState::Connected);
    assert_eq!(block.job_id, "11");
    assert_eq!(block.manager_id, Some(manager_id(1)));
    assert_eq!(block.output_path.as_deref(), Some("/run/blocks/b-1.out"));
    assert_eq!(block.provider, "slurm");
    assert_eq!(block.n_nodes, NODES_PER_BLOCK);
    assert_eq!(block.submitted_at, 1000.0);
}

#[test]
fn never_more_than_max_blocks_even_while_some_drain() {
    let mut sim = Sim::new(settings());
    sim.queue(&[2; 10]);
    assert_eq!(
        sim.tick(),
        vec![submit("b-1"), submit("b-2"), submit("b-3")]
    );
    assert_eq!(sim.tick(), vec![]);
    sim.connect("b-1", "11", 1);
    sim.connect("b-2", "12", 2);
    sim.connect("b-3", "13", 3);
    assert_eq!(sim.tick(), vec![query(&["11", "12", "13"])]);

    // b-1 idles out while nothing is queued; b-1 drains, the others run.
    sim.queue(&[]);
    sim.set_running(2, 1);
    sim.set_running(3, 1);
    sim.tick();
    sim.advance(61);
    let actions = sim.tick();
    assert!(
        actions.contains(&drain(1, "b-1", "idle for 61 s")),
        "{actions:?}"
    );
    // New demand while b-1 drains: three blocks are alive, so none is added.
    sim.queue(&[2]);
    let actions = sim.tick();
    assert!(!actions.iter().any(is_submit), "{actions:?}");
    // b-1's manager left: its job is cancelled, and once that is done
    // there is room for one more.
    sim.unregister(1);
    assert_eq!(sim.tick(), vec![cancel(&[("b-1", "11")])]);
    assert_eq!(sim.tick(), vec![], "a block being cancelled still counts");
    sim.core
        .handle_cancelled(&[("b-1".to_owned(), "11".to_owned())], Ok(()));
    assert_eq!(sim.tick(), vec![submit("b-4")]);
}

#[test]
fn keeps_min_blocks_and_drains_only_the_spare_ones() {
    let mut sim = Sim::new(ProviderSettings {
        min_blocks: 1,
        ..settings()
    });
    assert_eq!(sim.tick(), vec![submit("b-1")], "min_blocks with no demand");
    sim.connect("b-1", "11", 1);
    sim.queue(&[2]);
    assert_eq!(sim.tick(), vec![submit("b-2"), query(&["11"])]);
    sim.jobs(&[("11", JobState::Running)]);
    sim.connect("b-2", "12", 2);
    sim.queue(&[]);
    assert_eq!(sim.tick(), vec![]);
    sim.advance(100);
    assert_eq!(
        sim.tick(),
        vec![drain(1, "b-1", "idle for 100 s"), query(&["11", "12"]),],
        "one of the two idle blocks goes (the one idle longest, the older on a tie)"
    );
    sim.advance(100);
    sim.jobs(&[("11", JobState::Running), ("12", JobState::Running)]);
    let actions = sim.tick();
    assert!(
        !actions.iter().any(is_drain),
        "min_blocks stays: {actions:?}"
    );
    assert_eq!(sim.state_of("b-2").state, BlockState::Connected);
}

#[test]
fn drains_then_cancels_an_idle_block_and_busy_time_resets_the_idle_clock() {
    let mut sim = Sim::new(ProviderSettings {
        max_blocks: 1,
        ..settings()
    });
    sim.queue(&[1]);
    assert_eq!(sim.tick(), vec![submit("b-1")]);
    sim.connect("b-1", "11", 1);
    sim.set_running(1, 1);
    sim.queue(&[]);
    assert_eq!(sim.tick(), vec![query(&["11"])]);
    sim.jobs(&[("11", JobState::Running)]);

    // Busy for a long time: never idle.
    sim.advance(500);
    assert_eq!(sim.tick(), vec![query(&["11"])]);
    sim.jobs(&[("11", JobState::Running)]);
    sim.set_running(1, 0);
    assert_eq!(sim.tick(), vec![]);
    assert_eq!(
        sim.core.poll_timeout(),
        Some(sim.now.plus(Duration::from_secs(10))),
        "the next job query comes before the idle deadline"
    );
    sim.advance(59);
    assert_eq!(sim.tick(), vec![query(&["11"])], "idle 59 s of 60");
    sim.jobs(&[("11", JobState::Running)]);
    // Tasks waiting (for a held manager, say): an idle block is not
    // drained, and max_blocks leaves no room for another.
    sim.queue(&[2]);
    sim.advance(1);
    assert_eq!(sim.tick(), vec![]);
    sim.queue(&[]);
    assert_eq!(sim.tick(), vec![drain(1, "b-1", "idle for 60 s")]);
    assert_eq!(sim.state_of("b-1").state, BlockState::Draining);
    assert_eq!(sim.tick(), vec![], "drained once");

    // Its manager exits once idle: the job is cancelled (it may linger).
    sim.unregister(1);
    assert_eq!(sim.tick(), vec![cancel(&[("b-1", "11")])]);
    sim.core
        .handle_cancelled(&[("b-1".to_owned(), "11".to_owned())], Ok(()));
    assert_eq!(sim.state_of("b-1").state, BlockState::Ended);
    assert!(sim.core.all_ended());
    sim.advance(100);
    assert_eq!(sim.tick(), vec![], "no query for an ended block");
    assert_eq!(sim.core.poll_timeout(), None);
}

#[test]
fn a_draining_manager_that_does_not_leave_is_cancelled_after_the_grace() {
    let mut sim = Sim::new(ProviderSettings {
        poll_period: Duration::from_secs(1000),
        ..settings()
    });
    sim.queue(&[1]);
    assert_eq!(sim.tick(), vec![submit("b-1")]);
    sim.connect("b-1", "11", 1);
    sim.queue(&[]);
    assert_eq!(sim.tick(), vec![query(&["11"])]);
    sim.jobs(&[("11", JobState::Running)]);
    sim.advance(60);
    assert_eq!(sim.tick(), vec![drain(1, "b-1", "idle for 60 s")]);
    sim.expect_at(30, vec![cancel(&[("b-1", "11")])]);
}

#[test]
fn a_job_that_ends_unregistered_is_reported_and_backs_off() {
    let mut sim = Sim::new(settings());
    sim.queue(&[2]);
    assert_eq!(sim.tick(), vec![submit("b-1")]);
    sim.submitted("b-1", "11");
    assert_eq!(sim.tick(), vec![query(&["11"])]);
    sim.jobs(&[("11", JobState::Running)]);
    assert_eq!(sim.state_of("b-1").state, BlockState::Running);
    sim.advance(10);
    assert_eq!(sim.tick(), vec![query(&["11"])]);
    sim.jobs(&[(
        "11",
        JobState::Ended {
            detail: Some("FAILED".to_owned()),
        },
    )]);
    let block = sim.state_of("b-1");
    assert_eq!(block.state, BlockState::Failed);
    let message = block.message.expect("a message");
    assert!(message.contains("job 11 ended (FAILED)"), "{message}");
    assert!(
        message.contains("without its manager registering"),
        "{message}"
    );
    assert!(message.contains("/run/blocks/b-1.out"), "{message}");

    // The task still waits, but the next block only after the backoff.
    assert_eq!(sim.tick(), vec![]);
    sim.expect_at(10, vec![submit("b-2")]);

    // A failed submission doubles the delay; it is bounded.
    sim.core.handle_submitted(
        sim.now,
        "b-2",
        Err("sbatch: error: invalid partition".to_owned()),
    );
    let block = sim.state_of("b-2");
    assert_eq!(block.state, BlockState::Failed);
    assert_eq!(block.job_id, "");
    assert!(block
        .message
        .is_some_and(|message| message.contains("invalid partition")));
    sim.advance(19);
    assert_eq!(sim.tick(), vec![]);
    sim.advance(1);
    assert_eq!(sim.tick(), vec![submit("b-3")]);
    for (block_id, delay) in [("b-3", 40), ("b-4", 40)] {
        sim.core
            .handle_submitted(sim.now, block_id, Err("down".to_owned()));
        sim.advance(delay - 1);
        assert_eq!(sim.tick(), vec![], "{block_id}: within {delay} s");
        sim.advance(1);
        let next = format!("b-{}", block_id[2..].parse::<u32>().expect("number") + 1);
        assert_eq!(
            sim.tick(),
            vec![submit(&next)],
            "{block_id}: after {delay} s"
        );
    }

    // A manager that registers resets the backoff.
    sim.connect("b-5", "15", 5);
    sim.queue(&[2]);
    assert_eq!(sim.tick(), vec![submit("b-6"), query(&["15"])]);
    sim.core
        .handle_submitted(sim.now, "b-6", Err("down".to_owned()));
    sim.advance(10);
    sim.jobs(&[("15", JobState::Running)]);
    assert_eq!(
        sim.tick(),
        vec![submit("b-7"), query(&["15"])],
        "10 s again"
    );

    // Ended and failed blocks are kept for status, the oldest forgotten.
    let ended = sim
        .core
        .blocks()
        .iter()
        .filter(|block| block.state == BlockState::Failed)
        .count();
    assert_eq!(ended, 4, "max_kept_ended");
    assert!(sim
        .core
        .blocks()
        .iter()
        .all(|block| block.block_id != "b-1"));
}

#[test]
fn a_job_that_leaves_the_queue_before_running_fails_too() {
    let mut sim = Sim::with_one_job(settings());
    // squeue no longer knows it.
    sim.jobs(&[]);
    assert_eq!(sim.state_of("b-1").state, BlockState::Failed);
    assert!(sim
        .state_of("b-1")
        .message
        .is_some_and(|message| message.contains("job 11 ended without")));
}

#[test]
fn a_failed_query_changes_nothing_and_is_asked_again() {
    let mut sim = Sim::with_one_job(settings());
    assert_eq!(sim.tick(), vec![], "one query at a time");
    sim.core.handle_jobs(
        sim.now,
        Err("squeue: error: slurm_load_jobs: connection refused".to_owned()),
    );
    assert_eq!(sim.state_of("b-1").state, BlockState::Pending);
    sim.advance(10);
    assert_eq!(sim.tick(), vec![query(&["11"])]);
}

#[test]
fn shutdown_cancels_every_block_including_those_being_submitted() {
    let mut sim = Sim::with_three_blocks(settings());
    sim.connect("b-1", "11", 1);
    sim.submitted("b-2", "12");
    sim.core.handle_shutdown();
    assert_eq!(sim.actions(), vec![cancel(&[("b-1", "11"), ("b-2", "12")])]);
    assert_eq!(sim.tick(), vec![], "nothing new after shutdown");

    // b-3's job id arrives after shutdown: cancelled at once.
    sim.core.handle_submitted(
        sim.now,
        "b-3",
        Ok(Submitted {
            job_id: "13".to_owned(),
            output_path: None,
        }),
    );
    assert_eq!(sim.actions(), vec![cancel(&[("b-3", "13")])]);
    sim.core.handle_cancelled(
        &[
            ("b-1".to_owned(), "11".to_owned()),
            ("b-2".to_owned(), "12".to_owned()),
        ],
        Ok(()),
    );
    assert!(!sim.core.all_ended());
    sim.core.handle_cancelled(
        &[("b-3".to_owned(), "13".to_owned())],
        Err("scancel: timeout".to_owned()),
    );
    assert_eq!(sim.state_of("b-3").state, BlockState::Draining);
    // A failed cancel is retried once the job shows it is still there.
    sim.advance(10);
    assert_eq!(sim.tick(), vec![query(&["13"])]);
    sim.jobs(&[("13", JobState::Running)]);
    assert_eq!(sim.actions(), vec![cancel(&[("b-3", "13")])]);
    sim.core
        .handle_cancelled(&[("b-3".to_owned(), "13".to_owned())], Ok(()));
    assert!(sim.core.all_ended());
}

#[test]
fn managers_of_other_blocks_are_ignored_and_a_lost_manager_ends_its_block() {
    let mut sim = Sim::new(settings());
    sim.register("someone-elses-block", 9);
    sim.queue(&[1]);
    assert_eq!(sim.tick(), vec![submit("b-1")]);
    sim.connect("b-1", "11", 1);
    sim.queue(&[]);
    sim.set_running(1, 1);
    assert_eq!(sim.tick(), vec![query(&["11"])]);
    sim.jobs(&[("11", JobState::Running)]);
    // Lost (heartbeat threshold) while busy: its job is cancelled.
    sim.unregister(1);
    assert_eq!(sim.tick(), vec![cancel(&[("b-1", "11")])]);
    // A manager drained by someone else (`rhtex drain`, --drain-period)
    // shows as draining, finishes its tasks however long they take, and
    // its job is cancelled only once it is idle past the grace.
    let mut sim = Sim::new(ProviderSettings {
        poll_period: Duration::from_secs(10_000),
        ..settings()
    });
    sim.queue(&[1]);
    sim.tick();
    sim.connect("b-1", "11", 1);
    sim.set_running(1, 1);
    sim.managers[0].draining = true;
    sim.queue(&[]);
    assert_eq!(sim.tick(), vec![query(&["11"])]);
    sim.jobs(&[("11", JobState::Running)]);
    assert_eq!(sim.state_of("b-1").state, BlockState::Draining);
    sim.advance(1000);
    assert_eq!(sim.tick(), vec![], "busy: no cancel");
    sim.set_running(1, 0);
    assert_eq!(sim.tick(), vec![]);
    sim.advance(30);
    assert_eq!(sim.tick(), vec![cancel(&[("b-1", "11")])]);
}

#[test]
fn deadlines_that_passed_do_not_make_the_daemon_spin() {
    // An idle block kept for min_blocks, and a backoff that ran out with
    // nothing to submit: no deadline at or before the last tick.
    let mut sim = Sim::new(ProviderSettings {
        min_blocks: 1,
        poll_period: Duration::from_secs(1000),
        ..settings()
    });
    assert_eq!(sim.tick(), vec![submit("b-1")]);
    sim.connect("b-1", "11", 1);
    assert_eq!(sim.tick(), vec![query(&["11"])]);
    sim.jobs(&[("11", JobState::Running)]);
    sim.core
        .handle_submitted(sim.now, "b-x", Err("unknown block".to_owned()));
    assert_eq!(
        sim.core.poll_timeout(),
        Some(sim.now.plus(Duration::from_secs(60)))
    );
    sim.advance(100);
    assert_eq!(sim.tick(), vec![], "min_blocks keeps the idle block");
    assert_eq!(
        sim.core.poll_timeout(),
        Some(Time::from_millis(1_000_000)),
        "only the next job query is ahead"
    );

    let mut sim = Sim::new(settings());
    sim.queue(&[1]);
    assert_eq!(sim.tick(), vec![submit("b-1")]);
    sim.core
        .handle_submitted(sim.now, "b-1", Err("down".to_owned()));
    sim.queue(&[]);
    assert_eq!(
        sim.core.poll_timeout(),
        Some(sim.now.plus(Duration::from_secs(10)))
    );
    sim.advance(10);
    assert_eq!(sim.tick(), vec![]);
    assert_eq!(sim.core.poll_timeout(), None);
}

#[test]
fn blocks_of_the_previous_run_are_adopted_and_asked_about_not_submitted_anew() {
    let mut first = Sim::with_three_blocks(settings());
    first.connect("b-1", "11", 1);
    first.submitted("b-2", "12");
    first.submitted("b-3", "13");
    first.jobs(&[]);
    first.tick();
    first.jobs(&[("11", JobState::Running), ("12", JobState::Pending)]);
    let recorded = first.core.blocks();
    assert_eq!(
        recorded.iter().map(|block| block.state).collect::<Vec<_>>(),
        vec![
            BlockState::Connected,
            BlockState::Pending,
            BlockState::Failed
        ]
    );

    // The restart: the live blocks come back, the failed one does not.
    let mut sim = Sim::new(settings());
    assert_eq!(sim.core.adopt(sim.now, &recorded), 2);
    assert!(sim.core.take_changed());
    sim.queue(&[2, 2]);
    assert_eq!(
        sim.tick(),
        vec![query(&["11", "12"])],
        "adopted blocks are asked about, and cover the demand: nothing submitted"
    );
    sim.jobs(&[("11", JobState::Running), ("12", JobState::Pending)]);
    assert_eq!(sim.state_of("b-1").state, BlockState::Running);
    sim.register("b-1", 1);
    sim.queue(&[2]); // one task started on b-1
    assert_eq!(sim.tick(), vec![]);
    assert_eq!(sim.state_of("b-1").state, BlockState::Connected);
    assert_eq!(sim.state_of("b-2").state, BlockState::Pending);
    // A new block gets a new name.
    sim.queue(&[2, 2, 2]);
    assert_eq!(sim.tick(), vec![submit("b-3")]);
}
