//! Scenario tests of the manager core with simulated time and no sockets.
//! Every scenario ends with [`Harness::check_idle`]: no output may be left
//! that the scenario did not expect.

use super::*;
use crate::events::{ExitStatus, OutputFile, TaskInput, TaskOutput};
use crate::{Launch, INPUT_VARIABLE, OUTPUT_VARIABLE};
use protocol::{ErrorKind, Launcher, ManagerId, TaskResources, TaskState};

const PERIOD: Duration = Duration::from_secs(30);
/// Slots per node of the test manager.
const SLOTS: u32 = 2;
const THRESHOLD: Duration = Duration::from_secs(120);

struct Harness {
    manager: PoolManager,
    start: Time,
    now: Time,
}

fn registration(n_nodes: usize) -> Registration {
    Registration {
        protocol_version: protocol::PROTOCOL_VERSION,
        manager_id: ManagerId::from_u128(0x11),
        block_id: "block-1".into(),
        hostname: "lead".into(),
        nodes: (1..=n_nodes).map(|n| format!("n{n}")).collect(),
        launcher: Launcher::Mpiexec,
        rhtex_version: protocol::RHTEX_VERSION.into(),
        cpu_count: 8,
        slots_per_node: Some(SLOTS),
        versions: BTreeMap::new(),
        attempt: 0,
        running_tasks: Vec::new(),
        held_results: Vec::new(),
    }
}

fn settings(n_nodes: usize, drain: Option<Duration>) -> Settings {
    Settings {
        registration: registration(n_nodes),
        interchange_url: "tcp://ix:5555".into(),
        run_dir: PathBuf::from("/run/m"),
        heartbeat_period: PERIOD,
        heartbeat_threshold: THRESHOLD,
        reattach_timeout: Duration::ZERO,
        drain_period: drain,
        base_env: [("PATH".to_string(), "/bin".to_string())]
            .into_iter()
            .collect(),
    }
}

/// The interchange's `registered`, with its heartbeat period (seconds),
/// output limit and the tasks to drop.
fn registered_message(
    heartbeat_period: f64,
    max_task_output_bytes: u64,
    drop_tasks: Vec<TaskId>,
) -> ToManager {
    ToManager::Registered {
        interchange_version: "0.1.0".into(),
        heartbeat_period,
        max_task_output_bytes,
        drop_tasks,
    }
}

/// The interchange's `registered` with the default output limit and no
/// task to drop.
fn registered_with_period(heartbeat_period: f64) -> ToManager {
    registered_message(
        heartbeat_period,
        protocol::DEFAULT_MAX_TASK_OUTPUT_BYTES,
        Vec::new(),
    )
}

/// The kind of the result's error, if it failed.
fn error_kind(result: &TaskResult) -> Option<ErrorKind> {
    result.error.as_ref().map(|error| error.kind)
}

fn task(number: u128) -> TaskId {
    TaskId::from_u128(number)
}

/// An exclusive task on the first `n_nodes` nodes.
fn dispatch(number: u128, n_nodes: u32) -> TaskDispatch {
    dispatch_on(number, &(0..n_nodes).collect::<Vec<_>>())
}

/// An exclusive task on these nodes (whole nodes), in this order.
fn dispatch_on(number: u128, nodes: &[u32]) -> TaskDispatch {
    let n_nodes = nodes.len() as u32;
    let resources = TaskResources {
        num_nodes: n_nodes,
        ranks_per_node: 1,
        num_ranks: n_nodes,
        launcher_options: None,
        priority: None,
        walltime: None,
        retries: None,
        exclusive: true,
    };
    let placement = nodes
        .iter()
        .map(|&node| protocol::NodeShare { node, slots: SLOTS })
        .collect();
    TaskDispatch::new(task(number), format!("echo {number}"), resources, placement)
}

fn exit(status: ExitStatus) -> TaskExit {
    TaskExit {
        status,
        stdout_tail: b"out".to_vec(),
        stderr_tail: Vec::new(),
        start_time: 100.0,
        end_time: 101.5,
        output: TaskOutput::Absent,
    }
}

impl Harness {
    /// A manager with `n_nodes` nodes; the `register` output is checked.
    fn new(n_nodes: usize, drain: Option<Duration>) -> Self {
        Self::unregistered(settings(n_nodes, drain))
    }

    fn unregistered(settings: Settings) -> Self {
        // Any moment will do; not zero, so that nothing relies on it.
        let start = Time::from_millis(1_000_000);
        let expected = settings.registration.clone();
        let mut harness = Self {
            manager: PoolManager::new(settings, start),
            start,
            now: start,
        };
        match harness.next() {
            Output::Send(FromManager::Register(registration)) => {
                assert_eq!(registration, expected)
            }
            other => panic!("expected register, got {other:?}"),
        }
        harness.check_idle();
        harness
    }

    /// A manager with these settings that is registered at time 0.
    fn with_settings(settings: Settings) -> Self {
        Self::with_output_limit(settings, protocol::DEFAULT_MAX_TASK_OUTPUT_BYTES)
    }

    /// A manager with these settings that is registered at time 0 by an
    /// interchange whose `max_task_output_bytes` is `max_output_bytes`.
    fn with_output_limit(settings: Settings, max_output_bytes: u64) -> Self {
        let mut harness = Self::unregistered(settings);
        harness.receive(registered_message(30.0, max_output_bytes, Vec::new()));
        harness.check_idle();
        harness
    }

    /// A manager that is registered at time 0.
    fn registered(n_nodes: usize) -> Self {
        Self::with_settings(settings(n_nodes, None))
    }

    fn at(&mut self, seconds: f64) {
        self.now = self.start.plus(Duration::from_secs_f64(seconds));
    }

    fn receive(&mut self, message: ToManager) {
        self.manager.handle_message(self.now, message);
    }

    /// Fires the timeout if it is due at the current time.
    fn tick(&mut self) {
        if self.manager.poll_timeout().is_some_and(|at| at <= self.now) {
            self.manager.handle_timeout(self.now);
        }
    }

    fn next(&mut self) -> Output {
        self.manager.poll_output().expect("an output")
    }

    fn expect_send(&mut self) -> FromManager {
        match self.next() {
            Output::Send(message) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn expect_result(&mut self) -> TaskResult {
        match self.expect_send() {
            FromManager::Results { mut results } if results.len() == 1 => results.remove(0),
            other => panic!("expected one result, got {other:?}"),
        }
    }

    fn expect_launch(&mut self) -> Launch {
        match self.next() {
            Output::Launch(launch) => launch,
            other => panic!("expected a launch, got {other:?}"),
        }
    }

    /// Hands these tasks to the manager (`run_tasks`).
    fn run_tasks(&mut self, tasks: Vec<TaskDispatch>) {
        self.receive(ToManager::RunTasks { tasks });
    }

    /// Hands these tasks to the manager and expects a launch for each, in order.
    fn launch<const N: usize>(&mut self, tasks: [TaskDispatch; N]) -> [Launch; N] {
        self.run_tasks(tasks.into());
        std::array::from_fn(|_| self.expect_launch())
    }

    fn expect_kill(&mut self, expected_task: TaskId, expected_reason: KillReason) {
        match self.next() {
            Output::Kill { task_id, reason } => {
                assert_eq!((task_id, reason), (expected_task, expected_reason))
            }
            other => panic!("expected a kill, got {other:?}"),
        }
    }

    fn expect_exit(&mut self, expected_reason: ExitReason) -> String {
        match self.next() {
            Output::Exit { reason, message } => {
                assert_eq!(reason, expected_reason, "{message}");
                message
            }
            other => panic!("expected exit, got {other:?}"),
        }
    }

    /// Expects `goodbye`, then the exit for `expected_reason`, then
    /// nothing; gives the goodbye's reason.
    fn expect_goodbye_and_exit(&mut self, expected_reason: ExitReason) -> String {
        let goodbye = match self.expect_send() {
            FromManager::Goodbye { reason } => reason,
            other => panic!("expected goodbye, got {other:?}"),
        };
        self.expect_exit(expected_reason);
        self.check_idle();
        goodbye
    }

    /// Expects the exit for `expected_reason` with a message that says
    /// each of `says`.
    fn expect_exit_saying(&mut self, expected_reason: ExitReason, says: &[&str]) {
        let message = self.expect_exit(expected_reason);
        for part in says {
            assert!(message.contains(part), "{message}");
        }
    }

    fn exited(&mut self, number: u128, status: ExitStatus) {
        self.manager
            .handle_task_exited(self.now, task(number), exit(status));
    }

    /// Task `number` is killed as the interchange is lost, nothing else is
    /// output, and the task ends by SIGTERM.
    fn killed_for_a_lost_interchange(&mut self, number: u128) {
        self.expect_kill(task(number), KillReason::InterchangeLost);
        self.check_idle();
        self.exited(number, ExitStatus::Signal(15));
    }

    /// No output is left, and the bookkeeping is consistent.
    fn check_idle(&mut self) {
        if let Some(output) = self.manager.poll_output() {
            panic!("unexpected output {output:?}");
        }
        self.manager.validate().expect("consistent state");
    }
}

#[test]
fn heartbeats_follow_the_period_after_registration() {
    let mut harness = Harness::new(2, None);
    harness.at(100.0);
    harness.tick();
    harness.check_idle();
    harness.receive(registered_with_period(30.0));
    assert!(harness.manager.is_registered());
    assert_eq!(
        harness.manager.poll_timeout(),
        Some(harness.start.plus(Duration::from_secs(130)))
    );
    for (second, expect_heartbeat) in [(129.0, false), (130.0, true), (150.0, false), (160.0, true)]
    {
        harness.at(second);
        harness.receive(ToManager::Heartbeat);
        harness.tick();
        if expect_heartbeat {
            assert_eq!(harness.expect_send(), FromManager::Heartbeat, "at {second}");
        }
        harness.check_idle();
    }
}

#[test]
fn heartbeats_go_out_as_often_as_the_interchange_sends_them() {
    // --heartbeat-period is 30 s, but the interchange heartbeats every 2 s
    // (so its threshold may be short): the manager follows the interchange.
    let mut harness = Harness::new(2, None);
    harness.receive(registered_with_period(2.0));
    for second in [2.0, 4.0, 6.0] {
        harness.at(second);
        harness.receive(ToManager::Heartbeat);
        harness.tick();
        assert_eq!(harness.expect_send(), FromManager::Heartbeat, "at {second}");
        harness.check_idle();
    }
    // An interchange that heartbeats less often does not slow us down.
    let mut harness = Harness::new(2, None);
    harness.receive(registered_with_period(60.0));
    assert_eq!(
        harness.manager.poll_timeout(),
        Some(harness.start.plus(Duration::from_secs(30)))
    );
}

#[test]
fn silence_kills_running_tasks_and_exits_4() {
    let mut harness = Harness::registered(3);
    harness.launch([dispatch(1, 2)]);
    harness.at(30.0);
    harness.tick();
    assert_eq!(harness.expect_send(), FromManager::Heartbeat);
    harness.at(119.9);
    harness.tick();
    assert_eq!(harness.expect_send(), FromManager::Heartbeat);
    harness.check_idle();
    harness.at(120.0);
    harness.tick();
    harness.expect_kill(task(1), KillReason::InterchangeLost);
    harness.check_idle();
    assert_eq!(harness.manager.poll_timeout(), None);
    harness.exited(1, ExitStatus::Signal(15));
    harness.expect_exit_saying(
        ExitReason::InterchangeSilent {
            registered: true,
            threshold: THRESHOLD,
        },
        &["tcp://ix:5555", "120 s"],
    );
    harness.check_idle();
    assert_eq!(harness.manager.n_free_nodes(), 3);
}

#[test]
fn no_answer_to_registration_exits_4() {
    let mut harness = Harness::new(1, None);
    harness.at(120.0);
    harness.tick();
    harness.expect_exit_saying(
        ExitReason::InterchangeSilent {
            registered: false,
            threshold: THRESHOLD,
        },
        &["did not answer the registration"],
    );
    harness.check_idle();
}

#[test]
fn refused_exits_3_with_both_versions() {
    let mut harness = Harness::new(1, None);
    harness.receive(ToManager::Refused {
        reason: "protocol version 7 is not 1".into(),
        protocol_version: 7,
    });
    harness.expect_exit_saying(
        ExitReason::Refused {
            reason: "protocol version 7 is not 1".into(),
            protocol_version: 7,
        },
        &[
            "protocol version 7",
            &format!("ours {}", protocol::PROTOCOL_VERSION),
        ],
    );
    harness.check_idle();
    harness.receive(ToManager::Heartbeat);
    harness.check_idle();
}

#[test]
fn handshake_failure_exits_3() {
    let mut harness = Harness::new(1, None);
    harness.manager.handle_link(
        harness.now,
        LinkStatus::HandshakeFailed("tcp://ix:5555 refused our CURVE key".into()),
    );
    harness.expect_exit_saying(
        ExitReason::HandshakeFailed {
            message: "tcp://ix:5555 refused our CURVE key".into(),
        },
        &["refused our CURVE key"],
    );
    harness.check_idle();
}

/// A failed link is like silence: the tasks are killed, nothing more is
/// said to the interchange, and the manager exits with its reason.
#[test]
fn link_failure_kills_without_reporting_and_exits_4() {
    let mut harness = Harness::registered(2);
    harness.launch([dispatch(1, 1)]);
    harness
        .manager
        .handle_link(harness.now, LinkStatus::Failed("socket gone".into()));
    harness.killed_for_a_lost_interchange(1);
    harness.expect_exit_saying(
        ExitReason::LinkFailed {
            message: "socket gone".into(),
        },
        &["tcp://ix:5555", "socket gone"],
    );
    harness.check_idle();
}

#[test]
fn run_and_complete() {
    let mut harness = Harness::registered(3);
    let mut task = dispatch(1, 2);
    task.resources.ranks_per_node = 2;
    task.resources.num_ranks = 4;
    task.env.insert("MINE".into(), "x".into());
    let [launch] = harness.launch([task]);
    assert_eq!(launch.nodes, vec!["n1", "n2"]);
    assert_eq!(launch.cwd, PathBuf::from("/run/m"));
    assert_eq!(
        launch.stdout,
        PathBuf::from(format!("/run/m/tasks/{}.stdout", task_id(1)))
    );
    assert_eq!(
        launch.stderr,
        PathBuf::from(format!("/run/m/tasks/{}.stderr", task_id(1)))
    );
    assert_eq!(
        launch.env["PARSL_MPI_PREFIX"],
        "mpiexec -n 4 -ppn 2 -hosts n1,n2"
    );
    assert_eq!(launch.env["MINE"], "x");
    assert_eq!(launch.env["PATH"], "/bin");
    assert_eq!(harness.manager.n_free_nodes(), 1);
    harness.check_idle();

    harness.exited(1, ExitStatus::Code(0));
    let result = harness.expect_result();
    assert_eq!(result.state, TaskState::Completed);
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(result.error, None);
    assert_eq!(result.nodes, vec!["n1", "n2"]);
    assert_eq!(result.manager_id, Some(ManagerId::from_u128(0x11)));
    assert_eq!(result.block_id.as_deref(), Some("block-1"));
    assert_eq!(result.stdout_tail, b"out");
    assert_eq!(
        (result.start_time, result.end_time),
        (Some(100.0), Some(101.5))
    );
    assert_eq!(harness.manager.n_free_nodes(), 3);
    harness.check_idle();
}

fn task_id(number: u128) -> TaskId {
    task(number)
}

#[test]
fn exit_codes_and_foreign_signals_fail() {
    let mut harness = Harness::registered(2);
    harness.launch([dispatch_on(1, &[0]), dispatch_on(2, &[1])]);
    harness.exited(1, ExitStatus::Code(3));
    let result = harness.expect_result();
    assert_eq!(result.state, TaskState::Failed);
    let error = result.error.expect("error");
    assert_eq!(
        (error.kind, error.message.as_str()),
        (ErrorKind::ExitCode, "exited with code 3")
    );
    harness.exited(2, ExitStatus::Signal(11));
    let result = harness.expect_result();
    assert_eq!(result.signal, Some(11));
    let error = result.error.expect("error");
    assert_eq!(
        (error.kind, error.message.as_str()),
        (ErrorKind::Signaled, "killed by signal 11 (SIGSEGV)")
    );
    harness.check_idle();
}

#[test]
fn explicit_paths_are_resolved_against_the_run_dir() {
    let mut harness = Harness::registered(1);
    let mut task = dispatch(1, 1);
    task.cwd = Some("work".into());
    task.stdout = Some("/abs/out".into());
    task.stderr = Some("err.txt".into());
    let [launch] = harness.launch([task]);
    assert_eq!(launch.cwd, PathBuf::from("/run/m/work"));
    assert_eq!(launch.stdout, PathBuf::from("/abs/out"));
    assert_eq!(launch.stderr, PathBuf::from("/run/m/err.txt"));
    harness.manager.handle_launch_failed(
        harness.now,
        task_id(1),
        "no such directory /run/m/work".into(),
    );
    let result = harness.expect_result();
    let error = result.error.expect("error");
    assert_eq!(error.kind, ErrorKind::LaunchFailed);
    assert!(error.message.contains("/run/m/work"));
    assert!(result.nodes.is_empty());
    assert_eq!(harness.manager.n_free_nodes(), 1);
    harness.check_idle();
}

#[test]
fn cancel_kills_and_reports_cancelled() {
    let mut harness = Harness::registered(2);
    harness.launch([dispatch(1, 2)]);
    harness.receive(ToManager::CancelTask { task_id: task(1) });
    harness.expect_kill(task(1), KillReason::Cancelled);
    harness.receive(ToManager::CancelTask { task_id: task(1) });
    harness.receive(ToManager::CancelTask { task_id: task(9) });
    harness.check_idle();
    harness.exited(1, ExitStatus::Signal(15));
    let result = harness.expect_result();
    assert_eq!(result.state, TaskState::Cancelled);
    assert_eq!(error_kind(&result), Some(ErrorKind::Cancelled));
    assert_eq!(harness.manager.n_free_nodes(), 2);
    harness.check_idle();
}

#[test]
fn shutdown_kills_reports_says_goodbye_and_exits_0() {
    let mut harness = Harness::registered(3);
    harness.launch([dispatch_on(1, &[0]), dispatch_on(2, &[1, 2])]);
    harness.receive(ToManager::Shutdown {
        reason: "interchange stopping".into(),
    });
    harness.expect_kill(task(1), KillReason::Shutdown);
    harness.expect_kill(task(2), KillReason::Shutdown);
    harness.check_idle();
    // A task that arrives while stopping is refused at once.
    harness.run_tasks(vec![dispatch(3, 1)]);
    let refused = harness.expect_result();
    assert_eq!(refused.task_id, task(3));
    assert_eq!(error_kind(&refused), Some(ErrorKind::LaunchFailed));
    harness.exited(2, ExitStatus::Signal(15));
    let result = harness.expect_result();
    assert_eq!(result.state, TaskState::Failed);
    assert_eq!(error_kind(&result), Some(ErrorKind::Killed));
    harness.check_idle();
    harness.exited(1, ExitStatus::Code(0));
    let result = harness.expect_result();
    assert_eq!(error_kind(&result), Some(ErrorKind::Killed));
    let goodbye = harness.expect_goodbye_and_exit(ExitReason::Shutdown {
        reason: "interchange stopping".into(),
    });
    assert!(goodbye.contains("interchange stopping"), "{goodbye}");
}

#[test]
fn sigterm_with_no_tasks_exits_at_once() {
    let mut harness = Harness::registered(1);
    harness.manager.handle_terminate(harness.now, "SIGTERM");
    harness.expect_goodbye_and_exit(ExitReason::Terminated {
        signal: "SIGTERM".into(),
    });
    harness.manager.handle_terminate(harness.now, "SIGTERM");
    harness.check_idle();
}

#[test]
fn drain_request_after_the_drain_period() {
    let mut harness = Harness::new(1, Some(Duration::from_secs(10)));
    harness.at(20.0);
    harness.tick();
    harness.check_idle();
    harness.receive(registered_with_period(30.0));
    harness.tick();
    assert_eq!(harness.expect_send(), FromManager::DrainRequest);
    harness.check_idle();
    harness.at(50.0);
    harness.tick();
    assert_eq!(harness.expect_send(), FromManager::Heartbeat);
    harness.check_idle();
    harness.receive(ToManager::Shutdown {
        reason: "drained".into(),
    });
    harness.expect_goodbye_and_exit(ExitReason::Shutdown {
        reason: "drained".into(),
    });
}

#[test]
fn a_task_that_does_not_fit_fails_at_once() {
    let mut harness = Harness::registered(3);
    harness.run_tasks(vec![
        dispatch(1, 2),
        dispatch_on(2, &[1, 2]),
        dispatch_on(1, &[2]),
    ]);
    harness.expect_launch();
    let too_big = harness.expect_result();
    assert_eq!(too_big.task_id, task(2));
    let error = too_big.error.expect("error");
    assert_eq!(error.kind, ErrorKind::LaunchFailed);
    assert!(
        error.message.contains(
            "invalid placement [node 1: 2 slots, node 2: 2 slots] from the interchange (protocol violation): \
             the task is exclusive but node 1 is not wholly free (0 of 2 slots free)"
        ),
        "{}",
        error.message
    );
    let duplicate = harness.expect_result();
    assert_eq!(duplicate.task_id, task(1));
    assert!(duplicate
        .error
        .expect("error")
        .message
        .contains("duplicate task id"));
    assert_eq!(harness.manager.n_running(), 1);
    harness.check_idle();
}

/// Every way a placement can be wrong fails just that task, naming the
/// problem; the manager keeps running and its books stay consistent.
#[test]
fn invalid_placements_fail_the_task_and_nothing_else() {
    let mut harness = Harness::registered(3);
    // Half of node 0 is taken by a packed task.
    let mut half = dispatch_on(1, &[0]);
    half.resources.exclusive = false;
    half.placement[0].slots = 1;
    harness.launch([half]);
    let share = |node, slots| protocol::NodeShare { node, slots };
    let cases: Vec<(u32, bool, Vec<protocol::NodeShare>, &str)> = vec![
        (
            2,
            true,
            vec![share(1, 2)],
            "lists 1 node(s) but the task asks for num_nodes = 2",
        ),
        (1, true, Vec::new(), "the placement lists no nodes"),
        (
            1,
            true,
            vec![share(7, 2)],
            "names node 7, but this manager has only 3 node(s)",
        ),
        (
            2,
            true,
            vec![share(1, 2), share(1, 2)],
            "names node 1 more than once",
        ),
        (1, false, vec![share(1, 0)], "0 slots on node 1"),
        (
            1,
            false,
            vec![share(0, 2)],
            "takes 2 slot(s) on node 0, but only 1 of its 2 are free",
        ),
        (
            1,
            true,
            vec![share(0, 2)],
            "exclusive but node 0 is not wholly free",
        ),
        (
            1,
            true,
            vec![share(1, 1)],
            "must take all 2 slots of node 1, but the placement gives it 1",
        ),
    ];
    for (index, (num_nodes, exclusive, placement, expected)) in cases.into_iter().enumerate() {
        let number = 100 + index as u128;
        let mut bad = dispatch(number, 1);
        bad.resources.num_nodes = num_nodes;
        bad.resources.num_ranks = num_nodes;
        bad.resources.exclusive = exclusive;
        bad.placement = placement;
        harness.run_tasks(vec![bad]);
        let result = harness.expect_result();
        assert_eq!(result.task_id, task(number));
        assert_eq!(result.state, TaskState::Failed);
        let error = result.error.expect("error");
        assert_eq!(error.kind, ErrorKind::LaunchFailed, "case {index}");
        assert!(
            error.message.contains(expected),
            "case {index}: {}",
            error.message
        );
        assert!(result.nodes.is_empty(), "case {index}");
        harness.check_idle();
    }
    assert_eq!(harness.manager.n_running(), 1);
    assert_eq!(harness.manager.n_free_slots(), 5);
    assert!(harness.manager.is_registered());
    // A good task still runs on what is free.
    harness.run_tasks(vec![dispatch_on(2, &[2, 1])]);
    assert_eq!(harness.expect_launch().nodes, vec!["n3", "n2"]);
    harness.check_idle();
}

#[test]
fn nodes_are_returned_after_each_end() {
    let mut harness = Harness::registered(4);
    harness.run_tasks(vec![
        dispatch_on(1, &[0, 1]),
        dispatch_on(2, &[3]),
        dispatch_on(3, &[2]),
    ]);
    let nodes: Vec<Vec<String>> = (0..3).map(|_| harness.expect_launch().nodes).collect();
    assert_eq!(nodes, vec![vec!["n1", "n2"], vec!["n4"], vec!["n3"]]);
    assert_eq!(harness.manager.n_free_nodes(), 0);
    harness.exited(2, ExitStatus::Code(0));
    harness.expect_result();
    assert_eq!(harness.manager.n_free_nodes(), 1);
    harness.receive(ToManager::CancelTask { task_id: task(1) });
    harness.expect_kill(task(1), KillReason::Cancelled);
    harness.exited(1, ExitStatus::Signal(9));
    harness.expect_result();
    assert_eq!(harness.manager.n_free_nodes(), 3);
    harness.run_tasks(vec![dispatch_on(4, &[3, 0, 1])]);
    assert_eq!(
        harness.expect_launch().nodes,
        vec!["n4", "n1", "n2"],
        "placement order"
    );
    harness
        .manager
        .handle_launch_failed(harness.now, task(4), "cannot open".into());
    harness.expect_result();
    harness.exited(3, ExitStatus::Code(1));
    harness.expect_result();
    assert_eq!(harness.manager.n_free_nodes(), 4);
    // Unknown exits are ignored.
    harness.exited(99, ExitStatus::Code(0));
    harness.check_idle();
}

/// A packed task (exclusive: false) on its slots of one node.
fn packed_on(number: u128, node: u32, ranks: u32) -> TaskDispatch {
    let mut task = dispatch_on(number, &[node]);
    task.resources.exclusive = false;
    task.resources.ranks_per_node = ranks;
    task.resources.num_ranks = ranks;
    task.placement[0].slots = ranks;
    task
}

#[test]
fn packed_tasks_share_a_node_and_their_prefixes_say_so() {
    let mut settings = settings(2, None);
    settings.registration.slots_per_node = Some(4);
    settings.registration.launcher = Launcher::Srun;
    let mut harness = Harness::with_settings(settings);
    harness.run_tasks(vec![packed_on(1, 1, 2), packed_on(2, 1, 2)]);
    for number in [1, 2] {
        let launch = harness.expect_launch();
        assert_eq!(launch.task_id, task(number));
        assert_eq!(launch.nodes, vec!["n2"]);
        assert_eq!(
            launch.env["PARSL_MPI_PREFIX"],
            "srun --ntasks 2 --ntasks-per-node 2 --nodelist n2 --nodes 1 --exact --mem=0"
        );
        assert_eq!(
            launch.env["PARSL_MPIEXEC_PREFIX"],
            "mpiexec -n 2 -ppn 2 -hosts n2"
        );
    }
    assert_eq!(
        (
            harness.manager.n_free_nodes(),
            harness.manager.n_free_slots()
        ),
        (1, 4)
    );
    // The node is full: a third packed task there is refused...
    harness.run_tasks(vec![packed_on(3, 1, 1)]);
    let refused = harness.expect_result();
    assert!(refused
        .error
        .expect("error")
        .message
        .contains("only 0 of its 4 are free"));
    // ...and an exclusive one may not share it even once slots are free.
    harness.exited(1, ExitStatus::Code(0));
    assert_eq!(harness.expect_result().state, TaskState::Completed);
    let mut whole = dispatch_on(4, &[1]);
    whole.placement[0].slots = 4;
    harness.run_tasks(vec![whole]);
    assert!(harness
        .expect_result()
        .error
        .expect("error")
        .message
        .contains("not wholly free (2 of 4 slots free)"));
    harness.exited(2, ExitStatus::Code(0));
    harness.expect_result();
    assert_eq!(
        (
            harness.manager.n_free_nodes(),
            harness.manager.n_free_slots()
        ),
        (2, 8)
    );
    harness.check_idle();
}

#[test]
fn slots_per_node_defaults_to_the_cpu_count() {
    let mut settings = settings(1, None);
    settings.registration.slots_per_node = None;
    settings.registration.cpu_count = 3;
    let mut harness = Harness::with_settings(settings);
    assert_eq!(harness.manager.n_free_slots(), 3);
    let mut whole = dispatch_on(1, &[0]);
    whole.placement[0].slots = 3;
    harness.launch([whole]);
    harness.check_idle();
}

fn with_walltime(mut task: TaskDispatch, seconds: f64) -> TaskDispatch {
    task.resources.walltime = Some(seconds);
    task
}

#[test]
fn a_task_past_its_walltime_is_killed_and_reported() {
    let mut harness = Harness::registered(2);
    harness.at(10.0);
    harness.run_tasks(vec![
        with_walltime(dispatch_on(1, &[0]), 2.5),
        with_walltime(dispatch_on(2, &[1]), 100.0),
    ]);
    harness.expect_launch();
    harness.expect_launch();
    // The earliest deadline comes before the next heartbeat.
    assert_eq!(
        harness.manager.poll_timeout(),
        Some(harness.start.plus(Duration::from_secs_f64(12.5)))
    );
    harness.at(12.0);
    harness.tick();
    harness.check_idle();
    harness.at(12.5);
    harness.tick();
    harness.expect_kill(task(1), KillReason::WalltimeExceeded);
    harness.check_idle();
    // The deadline is not fired twice while the kill is under way.
    assert_eq!(
        harness.manager.poll_timeout(),
        Some(harness.start.plus(Duration::from_secs(30)))
    );
    harness.exited(1, ExitStatus::Signal(15));
    let result = harness.expect_result();
    assert_eq!(result.state, TaskState::Failed);
    assert_eq!((result.signal, result.exit_code), (Some(15), None));
    assert_eq!(result.nodes, vec!["n1"]);
    let error = result.error.expect("error");
    assert_eq!(
        (error.kind, error.message.as_str()),
        (
            ErrorKind::WalltimeExceeded,
            "killed after running longer than its walltime of 2.5 s"
        )
    );
    assert_eq!(harness.manager.n_free_nodes(), 1, "the node is free again");
    // A task that ignores SIGTERM and is killed by the escalation keeps its
    // real signal; one that ends before its walltime completes.
    harness.launch([with_walltime(dispatch_on(3, &[0]), 1.0)]);
    harness.at(13.5);
    harness.tick();
    harness.expect_kill(task(3), KillReason::WalltimeExceeded);
    harness.exited(3, ExitStatus::Signal(9));
    let result = harness.expect_result();
    assert_eq!(result.signal, Some(9));
    assert_eq!(error_kind(&result), Some(ErrorKind::WalltimeExceeded));
    harness.exited(2, ExitStatus::Code(0));
    assert_eq!(harness.expect_result().state, TaskState::Completed);
    harness.at(200.0);
    harness.tick();
    // Only the silence timeout is left: no stale walltime deadline.
    assert!(matches!(harness.next(), Output::Exit { .. }));
}

#[test]
fn a_cancelled_task_has_no_walltime_left() {
    let mut harness = Harness::registered(1);
    harness.launch([with_walltime(dispatch(1, 1), 5.0)]);
    harness.receive(ToManager::CancelTask { task_id: task(1) });
    harness.expect_kill(task(1), KillReason::Cancelled);
    harness.at(6.0);
    harness.tick();
    harness.check_idle();
    harness.exited(1, ExitStatus::Signal(15));
    assert_eq!(harness.expect_result().state, TaskState::Cancelled);
    harness.check_idle();
}

#[test]
fn undecodable_frames_count_and_keep_the_link_alive() {
    let mut harness = Harness::registered(1);
    harness.at(100.0);
    harness.manager.handle_undecodable(harness.now);
    assert_eq!(harness.manager.n_bad_messages(), 1);
    harness.at(200.0);
    harness.tick();
    assert_eq!(harness.expect_send(), FromManager::Heartbeat);
    harness.check_idle();
}

// ---------------------------------------------------------------------
// Task input and output
// ---------------------------------------------------------------------

fn with_input(mut task: TaskDispatch, bytes: &[u8]) -> TaskDispatch {
    task.input = Some(bytes.to_vec());
    task
}

/// Runs task 1 (with `input`) on a manager whose output limit is
/// `max_output_bytes`; returns the harness and the launch.
fn launched(max_output_bytes: u64, input: Option<&[u8]>) -> (Harness, Launch) {
    let mut harness = Harness::with_output_limit(settings(1, None), max_output_bytes);
    let mut dispatch = dispatch(1, 1);
    // The task's own env cannot point the manager's variables elsewhere.
    dispatch
        .env
        .insert(INPUT_VARIABLE.to_owned(), "/elsewhere/in".to_owned());
    dispatch
        .env
        .insert(OUTPUT_VARIABLE.to_owned(), "/elsewhere/out".to_owned());
    if let Some(input) = input {
        dispatch = with_input(dispatch, input);
    }
    let [launch] = harness.launch([dispatch]);
    harness.check_idle();
    (harness, launch)
}

fn exited_with_output(harness: &mut Harness, status: ExitStatus, output: TaskOutput) -> TaskResult {
    let exit = TaskExit {
        output,
        ..exit(status)
    };
    harness
        .manager
        .handle_task_exited(harness.now, task(1), exit);
    let result = harness.expect_result();
    harness.check_idle();
    result
}

#[test]
fn input_is_in_the_launch_and_both_files_are_named_in_the_environment() {
    let bytes = b"\x80\x04\x95 pickled \xff\x00";
    let (_, launch) = launched(1000, Some(bytes));
    let input_path = PathBuf::from(format!("/run/m/tasks/{}.input", task(1)));
    let output_path = PathBuf::from(format!("/run/m/tasks/{}.output", task(1)));
    assert_eq!(
        launch.input,
        Some(TaskInput {
            path: input_path.clone(),
            bytes: bytes.to_vec(),
        })
    );
    assert_eq!(
        launch.output,
        OutputFile {
            path: output_path.clone(),
            max_bytes: 1000,
        }
    );
    assert_eq!(
        launch.env.get(INPUT_VARIABLE).map(String::as_str),
        Some(input_path.to_str().expect("utf-8"))
    );
    assert_eq!(
        launch.env.get(OUTPUT_VARIABLE).map(String::as_str),
        Some(output_path.to_str().expect("utf-8"))
    );
}

#[test]
fn a_task_without_input_gets_no_input_file_but_an_output_file() {
    let (_, launch) = launched(1000, None);
    assert_eq!(launch.input, None);
    assert!(!launch.env.contains_key(INPUT_VARIABLE), "{:?}", launch.env);
    assert_eq!(
        launch.env.get(OUTPUT_VARIABLE).map(String::as_str),
        Some(format!("/run/m/tasks/{}.output", task(1)).as_str())
    );
}

#[test]
fn output_within_the_limit_comes_back_with_the_result_whatever_the_exit() {
    for status in [ExitStatus::Code(0), ExitStatus::Code(1)] {
        let (mut harness, _) = launched(4, None);
        let output = TaskOutput::Read {
            bytes: vec![0x80, 0xff, 0, 7],
            size: 4,
        };
        let result = exited_with_output(&mut harness, status, output);
        assert_eq!(result.output, Some(vec![0x80, 0xff, 0, 7]), "{status:?}");
    }
    let (mut harness, _) = launched(4, None);
    let result = exited_with_output(&mut harness, ExitStatus::Code(0), TaskOutput::Absent);
    assert_eq!((result.state, result.output), (TaskState::Completed, None));
}

#[test]
fn output_over_the_limit_fails_a_completed_task_naming_both_sizes() {
    let (mut harness, _) = launched(10, None);
    // The shell read 11 bytes (the limit + 1) of a 5000-byte file.
    let output = TaskOutput::Read {
        bytes: vec![b'x'; 11],
        size: 5000,
    };
    let result = exited_with_output(&mut harness, ExitStatus::Code(0), output);
    assert_eq!(result.state, TaskState::Failed);
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(result.output, None);
    let error = result.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::OutputTooLarge);
    assert_eq!(
        error.message,
        "the task's output file has 5000 bytes; max_task_output_bytes is 10"
    );
    // A task that failed anyway keeps its own error.
    let (mut harness, _) = launched(10, None);
    let output = TaskOutput::Read {
        bytes: vec![b'x'; 11],
        size: 11,
    };
    let result = exited_with_output(&mut harness, ExitStatus::Code(2), output);
    assert_eq!(error_kind(&result), Some(ErrorKind::ExitCode));
    assert_eq!(result.output, None);
}

#[test]
fn an_unreadable_output_file_fails_a_completed_task() {
    let (mut harness, _) = launched(10, None);
    let output = TaskOutput::Unreadable("Is a directory (os error 21)".to_owned());
    let result = exited_with_output(&mut harness, ExitStatus::Code(0), output);
    assert_eq!(result.state, TaskState::Failed);
    let error = result.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::LaunchFailed);
    assert_eq!(
        error.message,
        "cannot read the task's output file: Is a directory (os error 21)"
    );
}

#[test]
fn the_block_jobs_step_settings_never_reach_a_task() {
    let mut settings = settings(2, None);
    for (key, value) in [
        ("SLURM_JOB_ID", "4242"),
        ("SLURM_CPUS_PER_TASK", "8"),
        ("SLURM_NTASKS", "12"),
    ] {
        settings.base_env.insert(key.into(), value.into());
    }
    let mut harness = Harness::with_settings(settings);
    harness.run_tasks(vec![dispatch(1, 1)]);
    let launch = harness.expect_launch();
    assert_eq!(launch.env["SLURM_JOB_ID"], "4242");
    assert_eq!(launch.env["PATH"], "/bin");
    for key in ["SLURM_CPUS_PER_TASK", "SLURM_NTASKS"] {
        assert!(
            !launch.env.contains_key(key),
            "{key} leaked: {:?}",
            launch.env
        );
    }
}

mod reattach;
