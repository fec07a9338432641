//! Core scenarios with simulated time and no sockets. After every step,
//! [`Sim::check`] drains the outputs and asserts they are exactly the ones
//! expected, so nothing unexpected can slip through.

use super::*;
use protocol::{
    Command, ErrorKind, FromClient, FromManager, Launcher, ManagerId, NodeShare, Registration,
    Reply, ResourceRequest, StatusReport, TaskDispatch, TaskError, TaskId, TaskResult, TaskState,
    TaskStatusInfo, TaskSubmission, ToClient, ToManager, UnixTime, WaitingGroup, PROTOCOL_VERSION,
    RHTEX_VERSION,
};
use seam::Time;
use std::collections::BTreeMap;
use std::time::Duration;

mod bounds;
mod events;
mod journal;
mod listing;
mod metrics;
mod ownership;
mod reattach;
mod unreachable;

const PERIOD: Duration = Duration::from_secs(30);
const THRESHOLD: Duration = Duration::from_secs(120);
const WALL_CLOCK: UnixTime = 1_700_000_000.0;

struct Sim {
    core: Core,
    now: Time,
    /// The limits the core announces.
    max_task_input_bytes: u64,
    max_task_output_bytes: u64,
}

/// The peer a test names: `c` is unauthenticated (`--insecure`), `c@alice`
/// authenticated as identity `alice`.
fn peer(name: &str) -> PeerId {
    let routing_id = name.as_bytes().to_vec();
    match name.split_once('@') {
        Some((_, identity)) => PeerId::new(routing_id, Identity::Key(identity.to_owned())),
        None => PeerId::unauthenticated(routing_id),
    }
}

fn task_id(n: u128) -> TaskId {
    TaskId::from_u128(n)
}

fn manager_id(n: u128) -> ManagerId {
    ManagerId::from_u128(0xAA00 + n)
}

fn submission(id: u128, request: ResourceRequest) -> TaskSubmission {
    TaskSubmission {
        resources: request,
        ..TaskSubmission::new(task_id(id), format!("echo {id}"))
    }
}

/// Tasks `(id, request)` as [`submission`] builds each, in that order.
fn submissions<const N: usize>(tasks: [(u128, ResourceRequest); N]) -> Vec<TaskSubmission> {
    tasks
        .into_iter()
        .map(|(id, request)| submission(id, request))
        .collect()
}

/// A serial task carrying `n_bytes` bytes of input.
fn with_input(id: u128, n_bytes: usize) -> TaskSubmission {
    TaskSubmission {
        input: Some(vec![0xff; n_bytes]),
        ..submission(id, nodes(1))
    }
}

fn nodes(n: u32) -> ResourceRequest {
    ResourceRequest::new().with("num_nodes", n)
}

fn nodes_priority(n: u32, priority: i64) -> ResourceRequest {
    nodes(n).with("priority", priority)
}

/// A non-exclusive task: `ranks_per_node` slots on each of `n` nodes.
fn packed(n: u32, ranks_per_node: u32) -> ResourceRequest {
    nodes(n)
        .with("ranks_per_node", ranks_per_node)
        .with("exclusive", false)
}

fn with_walltime(request: ResourceRequest, seconds: i64) -> ResourceRequest {
    request.with("walltime", seconds)
}

/// Slots per node of the test managers (their `cpu_count`).
const SLOTS: u32 = 4;

/// The task as a manager gets it, placed on nodes `0..num_nodes`.
fn dispatch(id: u128, request: ResourceRequest) -> TaskDispatch {
    let resources = protocol::validate(&request).expect("test requests are valid");
    let nodes: Vec<u32> = (0..resources.num_nodes).collect();
    dispatch_on(id, request, &nodes)
}

/// The task as a manager gets it, placed on `nodes` (whole nodes of
/// [`SLOTS`] slots if exclusive, else `ranks_per_node` slots on each).
fn dispatch_on(id: u128, request: ResourceRequest, nodes: &[u32]) -> TaskDispatch {
    let resources = protocol::validate(&request).expect("test requests are valid");
    let slots = if resources.exclusive {
        SLOTS
    } else {
        resources.ranks_per_node
    };
    TaskDispatch::new(
        task_id(id),
        format!("echo {id}"),
        resources,
        nodes
            .iter()
            .map(|node| NodeShare { node: *node, slots })
            .collect(),
    )
}

/// Tasks `(id, request, node)` as a manager gets them, each on one node
/// (as [`dispatch_on`] places them).
fn each_on_one_node<const N: usize>(tasks: [(u128, ResourceRequest, u32); N]) -> Vec<TaskDispatch> {
    tasks
        .into_iter()
        .map(|(id, request, node)| dispatch_on(id, request, &[node]))
        .collect()
}

fn registration(id: u128, n_nodes: usize) -> Registration {
    Registration {
        protocol_version: PROTOCOL_VERSION,
        manager_id: manager_id(id),
        block_id: format!("block-{id}"),
        hostname: format!("host-{id}"),
        nodes: (0..n_nodes).map(|i| format!("m{id}n{i}")).collect(),
        launcher: Launcher::Mpiexec,
        rhtex_version: RHTEX_VERSION.to_owned(),
        cpu_count: 4,
        slots_per_node: None,
        versions: BTreeMap::new(),
        attempt: 0,
        running_tasks: Vec::new(),
        held_results: Vec::new(),
    }
}

fn completed(id: u128) -> TaskResult {
    TaskResult {
        state: TaskState::Completed,
        exit_code: Some(0),
        error: None,
        ..TaskResult::failed_before_start(task_id(id), ErrorKind::ExitCode, String::new())
    }
}

/// What the interchange forwards for a manager's result: filled with the
/// manager's id and block.
fn forwarded(mut result: TaskResult, manager: u128) -> TaskResult {
    result.manager_id = Some(manager_id(manager));
    result.block_id = Some(format!("block-{manager}"));
    result
}

fn failed(id: u128, kind: ErrorKind, message: &str) -> TaskResult {
    TaskResult::failed_before_start(task_id(id), kind, message.to_owned())
}

fn to_client(name: &str, message: ToClient) -> Output {
    Output::ToClient(peer(name), message)
}

fn to_manager(name: &str, message: ToManager) -> Output {
    Output::ToManager(peer(name), message)
}

fn results(name: &str, results: Vec<TaskResult>) -> Output {
    to_client(name, ToClient::Results { results })
}

fn run_tasks(name: &str, tasks: Vec<TaskDispatch>) -> Output {
    to_manager(name, ToManager::RunTasks { tasks })
}

fn submitted(name: &str, request_id: u64, n_tasks: u32) -> Output {
    to_client(
        name,
        ToClient::Submitted {
            request_id,
            n_tasks,
        },
    )
}

/// Drains the outputs: exactly one refusal of manager `name`'s
/// registration, whose reason contains `reason`.
fn expect_refused(sim: &mut Sim, name: &str, reason: &str) {
    let outputs = sim.drain();
    assert!(
        matches!(outputs.as_slice(),
            [Output::ToManager(to, ToManager::Refused { reason: refused, .. })]
                if *to == peer(name) && refused.contains(reason)),
        "{outputs:?}"
    );
}

/// The answer to a `watch` of `n_tasks` known tasks.
fn watching(name: &str, request_id: u64, n_tasks: u32) -> Output {
    to_client(
        name,
        ToClient::Watching {
            request_id,
            n_tasks,
            unknown: Vec::new(),
        },
    )
}

fn unknown_manager_refused(name: &str) -> Output {
    to_manager(
        name,
        ToManager::NotRegistered {
            reason: super::UNKNOWN_MANAGER_REASON.to_owned(),
        },
    )
}

fn reply(name: &str, request_id: u64, reply: Reply) -> Output {
    to_client(name, ToClient::Reply { request_id, reply })
}

fn done(message: &str) -> Reply {
    Reply::Done {
        message: message.to_owned(),
    }
}

fn registered() -> ToManager {
    registered_with(protocol::DEFAULT_MAX_TASK_OUTPUT_BYTES)
}

fn registered_with(max_task_output_bytes: u64) -> ToManager {
    ToManager::Registered {
        interchange_version: RHTEX_VERSION.to_owned(),
        heartbeat_period: 30.0,
        max_task_output_bytes,
        drop_tasks: Vec::new(),
    }
}

fn test_config() -> CoreConfig {
    CoreConfig {
        heartbeat_period: PERIOD,
        heartbeat_threshold: THRESHOLD,
        max_block_nodes: None,
        max_finished_results: 100_000,
        max_finished_bytes: 512 * 1024 * 1024,
        shutdown_grace: SHUTDOWN_GRACE,
        wall_clock_at_zero: WALL_CLOCK,
        ..CoreConfig::default()
    }
}

impl Sim {
    fn new() -> Self {
        Self::with_limit(None)
    }

    fn with_limit(max_block_nodes: Option<u32>) -> Self {
        Self::with_config(CoreConfig {
            max_block_nodes,
            ..test_config()
        })
    }

    fn with_placement(placement: Placement) -> Self {
        Self::with_config(CoreConfig {
            placement,
            ..test_config()
        })
    }

    fn with_config(config: CoreConfig) -> Self {
        Self {
            max_task_input_bytes: config.max_task_input_bytes,
            max_task_output_bytes: config.max_task_output_bytes,
            core: Core::new(config, Time::from_millis(0)),
            now: Time::from_millis(0),
        }
    }

    /// A client that said hello; its welcome is checked.
    fn with_client(mut self, name: &str) -> Self {
        self.client(
            name,
            FromClient::Hello {
                protocol_version: PROTOCOL_VERSION,
                client_version: "test".to_owned(),
            },
        );
        self.check(vec![to_client(
            name,
            ToClient::Welcome {
                protocol_version: PROTOCOL_VERSION,
                interchange_version: RHTEX_VERSION.to_owned(),
                max_task_input_bytes: self.max_task_input_bytes,
                max_task_output_bytes: self.max_task_output_bytes,
            },
        )]);
        self
    }

    /// A registered manager `m<id>` with `n_nodes` nodes.
    fn with_manager(mut self, id: u128, n_nodes: usize) -> Self {
        let name = format!("m{id}");
        self.manager(&name, FromManager::Register(registration(id, n_nodes)));
        self.check(vec![to_manager(
            &name,
            registered_with(self.max_task_output_bytes),
        )]);
        self
    }

    /// Clients that said hello and registered managers (`(id, n_nodes)`),
    /// in order.
    fn with_peers(clients: &[&str], managers: &[(u128, usize)]) -> Self {
        Self::new().with_clients(clients).with_managers(managers)
    }

    /// Clients that said hello, in order.
    fn with_clients(self, names: &[&str]) -> Self {
        names.iter().fold(self, |sim, name| sim.with_client(name))
    }

    /// Registered managers `m<id>` with `n_nodes` nodes each, in order.
    fn with_managers(self, managers: &[(u128, usize)]) -> Self {
        managers
            .iter()
            .fold(self, |sim, (id, n_nodes)| sim.with_manager(*id, *n_nodes))
    }

    /// A message from a client, through the codec as the shell reads it.
    fn client(&mut self, name: &str, message: FromClient) {
        self.client_bytes(name, &protocol::encode(&message));
    }

    /// A frame on the client socket, decoded as the shell decodes it.
    fn client_bytes(&mut self, name: &str, bytes: &[u8]) {
        match decode_client_frame(bytes) {
            Ok(message) => self
                .core
                .handle_client_message(self.now, peer(name), message),
            Err(undecodable) => {
                self.core
                    .handle_undecodable(self.now, Socket::Client, peer(name), undecodable)
            }
        }
    }

    /// A message from a manager, through the codec as the shell reads it.
    fn manager(&mut self, name: &str, message: FromManager) {
        self.manager_bytes(name, &protocol::encode(&message));
    }

    /// A frame on the manager socket, decoded as the shell decodes it.
    fn manager_bytes(&mut self, name: &str, bytes: &[u8]) {
        match decode_manager_frame(bytes) {
            Ok(message) => self
                .core
                .handle_manager_message(self.now, peer(name), message),
            Err(undecodable) => {
                self.core
                    .handle_undecodable(self.now, Socket::Manager, peer(name), undecodable)
            }
        }
    }

    fn submit(&mut self, name: &str, request_id: u64, tasks: Vec<TaskSubmission>) {
        self.client(name, FromClient::Submit { request_id, tasks });
    }

    fn command(&mut self, name: &str, request_id: u64, command: Command) {
        self.client(
            name,
            FromClient::Command {
                request_id,
                command,
            },
        );
    }

    /// `name` submits task `id` alone; checks that it is accepted and sent
    /// to `manager` on nodes `0..num_nodes`.
    fn submit_and_start(
        &mut self,
        name: &str,
        request_id: u64,
        id: u128,
        request: ResourceRequest,
        manager: &str,
    ) {
        self.submit(name, request_id, vec![submission(id, request.clone())]);
        self.check(vec![
            submitted(name, request_id, 1),
            run_tasks(manager, vec![dispatch(id, request)]),
        ]);
    }

    /// `name` asks to cancel task `id`.
    fn cancel(&mut self, name: &str, request_id: u64, id: u128) {
        self.command(
            name,
            request_id,
            Command::Cancel {
                task_id: task_id(id),
            },
        );
    }

    /// `name` asks to watch the tasks `ids`.
    fn watch(&mut self, name: &str, request_id: u64, ids: &[u128]) {
        self.client(
            name,
            FromClient::Watch {
                request_id,
                task_ids: ids.iter().map(|id| task_id(*id)).collect(),
            },
        );
    }

    /// A send of `message` to manager `name` failed.
    fn unreachable(&mut self, name: &str, message: ToManager) {
        self.core
            .handle_manager_unreachable(self.now, &peer(name), message);
    }

    fn manager_results(&mut self, name: &str, results: Vec<TaskResult>) {
        self.manager(name, FromManager::Results { results });
    }

    /// Moves the clock forward by `seconds`, through every deadline on the way.
    fn advance(&mut self, seconds: u64) {
        let target = self.now.plus(Duration::from_secs(seconds));
        while let Some(deadline) = self.core.poll_timeout() {
            if deadline > target {
                break;
            }
            self.now = deadline.max(self.now);
            self.core.handle_timeout(self.now);
        }
        self.now = target;
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.core.poll_output()).collect()
    }

    /// Drains every output and asserts it is exactly `expected`.
    fn check(&mut self, expected: Vec<Output>) {
        let actual = self.drain();
        assert_eq!(actual, expected, "outputs differ at t = {:?}", self.now);
    }

    /// Asks for `status` and returns the report (the only output expected).
    fn status(&mut self, name: &str) -> StatusReport {
        self.command(name, 999, Command::Status);
        let outputs = self.drain();
        match outputs.as_slice() {
            [Output::ToClient(
                to,
                ToClient::Reply {
                    request_id: 999,
                    reply: Reply::Status(report),
                },
            )] if *to == peer(name) => report.clone(),
            other => panic!("expected one status reply, got {other:?}"),
        }
    }

    fn task_status(&mut self, name: &str, id: u128) -> TaskStatusInfo {
        self.command(
            name,
            998,
            Command::TaskStatus {
                task_ids: vec![task_id(id)],
            },
        );
        let outputs = self.drain();
        match outputs.as_slice() {
            [Output::ToClient(
                _,
                ToClient::Reply {
                    reply: Reply::TaskStatus { tasks },
                    ..
                },
            )] if tasks.len() == 1 => tasks[0].clone(),
            other => panic!("expected one task_status reply, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------

#[test]
fn a_task_goes_only_to_a_manager_with_enough_free_nodes() {
    let mut sim = Sim::new().with_client("c").with_managers(&[(1, 4), (2, 2)]);
    sim.submit_and_start("c", 1, 10, nodes(4), "m1");
    // A 3-node task cannot go to m2 (2 nodes) and m1 is full: it waits.
    sim.submit("c", 2, vec![submission(11, nodes(3))]);
    sim.check(vec![submitted("c", 2, 1)]);
    let report = sim.status("c");
    assert_eq!(report.n_queued, 1);
    assert_eq!(report.n_running, 1);
    assert_eq!(
        report.waiting,
        vec![WaitingGroup {
            num_nodes: 3,
            n_tasks: 1,
            reason: "waiting for 3 free nodes".to_owned()
        }]
    );
    // When m1 frees its nodes, the 3-node task goes there, never to m2.
    sim.manager_results("m1", vec![completed(10)]);
    sim.check(vec![
        run_tasks("m1", vec![dispatch(11, nodes(3))]),
        results("c", vec![forwarded(completed(10), 1)]),
    ]);
}

#[test]
fn best_fit_picks_the_smallest_free_count_that_suffices() {
    let mut sim = Sim::with_peers(&["c"], &[(1, 8), (2, 2), (3, 3)]);
    sim.submit_and_start("c", 1, 10, nodes(2), "m2");
    sim.submit_and_start("c", 2, 11, nodes(2), "m3");
    // m3 has 1 free, m1 has 8: a 1-node task fills m3.
    sim.submit("c", 3, vec![submission(12, nodes(1))]);
    sim.check(vec![
        submitted("c", 3, 1),
        run_tasks("m3", vec![dispatch_on(12, nodes(1), &[2])]),
    ]);
}

#[test]
fn one_batch_per_manager_per_event() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 4);
    sim.submit("c", 1, (1..=5).map(|i| submission(i, nodes(1))).collect());
    sim.check(vec![
        submitted("c", 1, 5),
        run_tasks(
            "m1",
            (1..=4)
                .map(|i| dispatch_on(i, nodes(1), &[i as u32 - 1]))
                .collect(),
        ),
    ]);
}

#[test]
fn a_large_task_that_fits_nowhere_does_not_block_smaller_ones() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 4);
    sim.submit(
        "c",
        1,
        submissions([(1, nodes_priority(8, 0)), (2, nodes(1)), (3, nodes(2))]),
    );
    sim.check(vec![
        submitted("c", 1, 3),
        run_tasks(
            "m1",
            vec![dispatch(2, nodes(1)), dispatch_on(3, nodes(2), &[1, 2])],
        ),
    ]);
    let report = sim.status("c");
    assert_eq!(
        report.waiting,
        vec![WaitingGroup {
            num_nodes: 8,
            n_tasks: 1,
            reason: "needs 8 nodes; the largest connected manager has 4".to_owned()
        }]
    );
    let info = sim.task_status("c", 1);
    assert_eq!(info.state, TaskState::Queued);
    assert_eq!(
        info.waiting_reason.as_deref(),
        Some("needs 8 nodes; the largest connected manager has 4")
    );
    // A large enough manager arrives: the big task goes there.
    sim.manager("m2", FromManager::Register(registration(2, 8)));
    sim.check(vec![
        to_manager("m2", registered()),
        run_tasks("m2", vec![dispatch(1, nodes_priority(8, 0))]),
    ]);
}

#[test]
fn priority_order_then_fifo_then_tasks_without_priority() {
    let mut sim = Sim::new().with_client("c");
    sim.submit(
        "c",
        1,
        submissions([
            (1, nodes(1)),
            (2, nodes_priority(1, 5)),
            (3, nodes_priority(1, 1)),
            (4, nodes_priority(1, 5)),
            (5, nodes(1)),
            (6, nodes_priority(1, -3)),
        ]),
    );
    sim.check(vec![submitted("c", 1, 6)]);
    assert_eq!(sim.status("c").waiting[0].reason, "no manager connected");
    sim.manager("m1", FromManager::Register(registration(1, 6)));
    sim.check(vec![
        to_manager("m1", registered()),
        run_tasks(
            "m1",
            each_on_one_node([
                (6, nodes_priority(1, -3), 0),
                (3, nodes_priority(1, 1), 1),
                (2, nodes_priority(1, 5), 2),
                (4, nodes_priority(1, 5), 3),
                (1, nodes(1), 4),
                (5, nodes(1), 5),
            ]),
        ),
    ]);
}

#[test]
fn priority_decides_which_task_takes_freed_nodes() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    sim.submit_and_start("c", 1, 1, nodes(1), "m1");
    sim.submit(
        "c",
        2,
        submissions([(2, nodes(1)), (3, nodes_priority(1, 0))]),
    );
    sim.check(vec![submitted("c", 2, 2)]);
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![
        run_tasks("m1", vec![dispatch(3, nodes_priority(1, 0))]),
        results("c", vec![forwarded(completed(1), 1)]),
    ]);
}

// ---------------------------------------------------------------------
// Submission checks
// ---------------------------------------------------------------------

#[test]
fn tasks_above_max_block_nodes_are_unschedulable_at_once() {
    let mut sim = Sim::with_limit(Some(4)).with_client("c");
    sim.submit("c", 1, submissions([(1, nodes(5)), (2, nodes(4))]));
    sim.check(vec![
        submitted("c", 1, 1),
        results(
            "c",
            vec![failed(
                1,
                ErrorKind::Unschedulable,
                "the task needs num_nodes = 5 but blocks have at most 4 nodes \
                 (--max-block-nodes 4), so it can never run",
            )],
        ),
    ]);
    let report = sim.status("c");
    assert_eq!((report.n_queued, report.n_failed), (1, 1));
    assert_eq!(sim.task_status("c", 1).state, TaskState::Failed);
}

#[test]
fn invalid_specs_fail_at_once_with_the_validation_message() {
    let mut sim = Sim::new().with_client("c");
    let bad = ResourceRequest::new().with("num_nodes", 0);
    let message = protocol::validate(&bad)
        .expect_err("num_nodes = 0 is invalid")
        .to_string();
    sim.submit("c", 1, vec![submission(1, bad)]);
    sim.check(vec![
        submitted("c", 1, 0),
        results("c", vec![failed(1, ErrorKind::InvalidSpec, &message)]),
    ]);
    assert!(message.contains("num_nodes"), "{message}");
}

fn retention(max_finished_results: usize, max_finished_bytes: usize) -> CoreConfig {
    CoreConfig {
        heartbeat_period: PERIOD,
        heartbeat_threshold: THRESHOLD,
        max_block_nodes: None,
        max_finished_results,
        max_finished_bytes,
        shutdown_grace: SHUTDOWN_GRACE,
        wall_clock_at_zero: WALL_CLOCK,
        ..CoreConfig::default()
    }
}

/// Submits tasks with an invalid spec: each finishes at once.
fn submit_failing(sim: &mut Sim, ids: std::ops::RangeInclusive<u128>) {
    for id in ids {
        sim.submit(
            "c",
            1,
            vec![submission(id, ResourceRequest::new().with("num_nodes", 0))],
        );
        assert_eq!(sim.drain().len(), 2, "submitted + the failed result");
    }
}

#[test]
fn finished_results_are_kept_up_to_a_count_oldest_forgotten_first() {
    let mut sim = Sim::with_config(retention(2, usize::MAX)).with_client("c");
    submit_failing(&mut sim, 1..=3);
    assert_eq!(sim.task_status("c", 1).state, TaskState::Unknown);
    assert_eq!(sim.task_status("c", 2).state, TaskState::Failed);
    assert_eq!(sim.task_status("c", 3).state, TaskState::Failed);
    // Counts are not forgotten.
    assert_eq!(sim.status("c").n_failed, 3);
}

#[test]
fn finished_results_are_kept_up_to_a_memory_bound() {
    // Room for one such result (512 bytes of overhead plus its message),
    // not two.
    let mut sim = Sim::with_config(retention(100, 700)).with_client("c");
    submit_failing(&mut sim, 1..=2);
    assert_eq!(sim.task_status("c", 1).state, TaskState::Unknown);
    assert_eq!(sim.task_status("c", 2).state, TaskState::Failed);
}

// ---------------------------------------------------------------------
// Task input and output
// ---------------------------------------------------------------------

fn payload_limits(max_task_input_bytes: u64, max_queued_input_bytes: u64) -> CoreConfig {
    CoreConfig {
        max_task_input_bytes,
        max_task_output_bytes: 64,
        max_queued_input_bytes,
        ..test_config()
    }
}

#[test]
fn limits_are_announced_in_welcome_and_registered() {
    let mut sim = Sim::with_config(payload_limits(100, 1000));
    sim.client(
        "c",
        FromClient::Hello {
            protocol_version: PROTOCOL_VERSION,
            client_version: "test".to_owned(),
        },
    );
    sim.manager("m1", FromManager::Register(registration(1, 1)));
    sim.check(vec![
        to_client(
            "c",
            ToClient::Welcome {
                protocol_version: PROTOCOL_VERSION,
                interchange_version: RHTEX_VERSION.to_owned(),
                max_task_input_bytes: 100,
                max_task_output_bytes: 64,
            },
        ),
        to_manager(
            "m1",
            ToManager::Registered {
                interchange_version: RHTEX_VERSION.to_owned(),
                heartbeat_period: 30.0,
                max_task_output_bytes: 64,
                drop_tasks: Vec::new(),
            },
        ),
    ]);
}

#[test]
fn input_goes_to_the_manager_with_the_task() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    let task = TaskSubmission {
        input: Some(b"\x80\x04\x95 not utf-8 \xff".to_vec()),
        ..submission(1, nodes(1))
    };
    sim.submit("c", 1, vec![task.clone()]);
    let dispatched = TaskDispatch {
        input: task.input,
        ..dispatch(1, nodes(1))
    };
    sim.check(vec![
        submitted("c", 1, 1),
        run_tasks("m1", vec![dispatched]),
    ]);
}

#[test]
fn an_input_over_the_limit_fails_that_task_naming_the_limit() {
    let mut sim = Sim::with_config(payload_limits(100, 1000))
        .with_client("c")
        .with_manager(1, 2);
    sim.submit("c", 1, vec![with_input(1, 101), with_input(2, 100)]);
    let message = "the task's input has 101 bytes; the interchange takes at most 100 bytes \
                   per task (max_task_input_bytes, --max-task-input-bytes)";
    let accepted = TaskDispatch {
        input: Some(vec![0xff; 100]),
        ..dispatch(2, nodes(1))
    };
    sim.check(vec![
        submitted("c", 1, 1),
        run_tasks("m1", vec![accepted]),
        results("c", vec![failed(1, ErrorKind::InputTooLarge, message)]),
    ]);
    assert_eq!(sim.task_status("c", 1).state, TaskState::Failed);
}

#[test]
fn queued_input_has_a_budget_past_which_a_submit_is_refused_as_busy() {
    // No manager: everything stays queued.
    let mut sim = Sim::with_config(payload_limits(100, 250)).with_client("c");
    sim.submit("c", 1, vec![with_input(1, 100), with_input(2, 100)]);
    sim.check(vec![submitted("c", 1, 2)]);
    // 200 held; 100 more would pass 250: the whole submit is refused,
    // even its task without input.
    sim.submit("c", 2, vec![submission(3, nodes(1)), with_input(4, 100)]);
    let outputs = sim.drain();
    let [Output::ToClient(
        to,
        ToClient::Error {
            request_id,
            message,
        },
    )] = outputs.as_slice()
    else {
        panic!("expected one error, got {outputs:?}");
    };
    assert_eq!((to, *request_id), (&peer("c"), Some(2)));
    assert!(message.starts_with("busy: "), "{message}");
    assert!(message.contains("100 bytes of input"), "{message}");
    assert!(message.contains("already hold 200"), "{message}");
    assert!(message.contains("limit of 250 bytes"), "{message}");
    assert!(message.contains("--max-queued-input-mib"), "{message}");
    assert_eq!(sim.core.metrics().n_busy_submits, 1);
    assert_eq!(sim.core.metrics().n_tasks_submitted, 2);
    assert_eq!(sim.task_status("c", 3).state, TaskState::Unknown);
    assert_eq!(sim.task_status("c", 4).state, TaskState::Unknown);
    // A task over the per-task limit does not count against the budget:
    // it fails on its own.
    sim.submit("c", 3, vec![with_input(5, 101), with_input(6, 50)]);
    let outputs = sim.drain();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert_eq!(outputs[0], submitted("c", 3, 1));
    // Finishing tasks gives the budget back: cancel one queued task.
    sim.cancel("c", 4, 1);
    assert_eq!(sim.drain().len(), 2, "reply and the cancelled result");
    sim.submit("c", 5, vec![with_input(7, 100)]);
    sim.check(vec![submitted("c", 5, 1)]);
}

#[test]
fn a_running_task_keeps_its_input_for_a_retry_until_it_finishes() {
    let mut sim = Sim::with_config(CoreConfig {
        default_retries: 1,
        ..payload_limits(100, 150)
    })
    .with_client("c")
    .with_manager(1, 1);
    sim.submit("c", 1, vec![with_input(1, 100)]);
    let dispatched = TaskDispatch {
        input: Some(vec![0xff; 100]),
        ..dispatch(1, nodes(1))
    };
    sim.check(vec![
        submitted("c", 1, 1),
        run_tasks("m1", vec![dispatched.clone()]),
    ]);
    // Running, it still holds its input: no room for another 100.
    sim.submit("c", 2, vec![with_input(2, 100)]);
    assert!(matches!(
        sim.drain().as_slice(),
        [Output::ToClient(_, ToClient::Error { .. })]
    ));
    // Its manager goes; the retry on the next manager gets the input again.
    sim.manager(
        "m1",
        FromManager::Goodbye {
            reason: "test".to_owned(),
        },
    );
    sim.check(vec![]);
    sim.manager("m2", FromManager::Register(registration(2, 1)));
    sim.check(vec![
        to_manager("m2", registered_with(64)),
        run_tasks("m2", vec![dispatched]),
    ]);
    // Its result frees the budget.
    sim.manager_results("m2", vec![completed(1)]);
    sim.check(vec![results("c", vec![forwarded(completed(1), 2)])]);
    sim.submit("c", 3, vec![with_input(3, 100)]);
    let dispatched = TaskDispatch {
        input: Some(vec![0xff; 100]),
        ..dispatch(3, nodes(1))
    };
    sim.check(vec![
        submitted("c", 3, 1),
        run_tasks("m2", vec![dispatched]),
    ]);
}

#[test]
fn outputs_reach_the_client_and_count_in_the_memory_bound_of_kept_results() {
    // Room for one result of 512 bytes of overhead plus 300 of output, not two.
    let mut sim = Sim::with_config(retention(100, 1200))
        .with_client("c")
        .with_manager(1, 2);
    sim.submit("c", 1, submissions([(1, nodes(1)), (2, nodes(1))]));
    sim.check(vec![
        submitted("c", 1, 2),
        run_tasks(
            "m1",
            vec![dispatch(1, nodes(1)), dispatch_on(2, nodes(1), &[1])],
        ),
    ]);
    let with_output = |id| TaskResult {
        output: Some(vec![0x80; 300]),
        ..completed(id)
    };
    sim.manager_results("m1", vec![with_output(1)]);
    sim.check(vec![results("c", vec![forwarded(with_output(1), 1)])]);
    assert_eq!(
        sim.task_status("c", 1)
            .result
            .and_then(|result| result.output),
        Some(vec![0x80; 300])
    );
    sim.manager_results("m1", vec![with_output(2)]);
    sim.check(vec![results("c", vec![forwarded(with_output(2), 1)])]);
    assert_eq!(sim.task_status("c", 1).state, TaskState::Unknown);
    assert_eq!(sim.task_status("c", 2).state, TaskState::Completed);
}

#[test]
fn duplicate_task_ids_fail_and_leave_the_first_task_alone() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    sim.submit("c", 1, submissions([(1, nodes(1)), (1, nodes(1))]));
    sim.check(vec![
        submitted("c", 1, 1),
        run_tasks("m1", vec![dispatch(1, nodes(1))]),
        results(
            "c",
            vec![failed(
                1,
                ErrorKind::DuplicateTaskId,
                &format!(
                    "task id {} was already submitted; each task needs a fresh id",
                    task_id(1)
                ),
            )],
        ),
    ]);
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![results("c", vec![forwarded(completed(1), 1)])]);
}

// ---------------------------------------------------------------------
// Heartbeats
// ---------------------------------------------------------------------

#[test]
fn heartbeats_go_to_every_manager_every_period() {
    let mut sim = Sim::new().with_managers(&[(1, 1), (2, 1)]);
    sim.advance(29);
    sim.check(vec![]);
    sim.advance(1);
    sim.check(vec![
        to_manager("m1", ToManager::Heartbeat),
        to_manager("m2", ToManager::Heartbeat),
    ]);
}

#[test]
fn a_silent_manager_is_dropped_and_its_tasks_fail_as_manager_lost() {
    let mut sim = Sim::new().with_client("c").with_managers(&[(1, 2), (2, 2)]);
    sim.submit("c", 1, submissions([(1, nodes(2)), (2, nodes(2))]));
    sim.check(vec![
        submitted("c", 1, 2),
        run_tasks("m1", vec![dispatch(1, nodes(2))]),
        run_tasks("m2", vec![dispatch(2, nodes(2))]),
    ]);
    let heartbeats = || {
        vec![
            to_manager("m1", ToManager::Heartbeat),
            to_manager("m2", ToManager::Heartbeat),
        ]
    };
    // m2 keeps talking, m1 falls silent.
    for _ in 0..3 {
        sim.advance(30);
        sim.check(heartbeats());
        sim.manager("m2", FromManager::Heartbeat);
        sim.check(vec![]);
    }
    sim.advance(30);
    let lost = failed(
        1,
        ErrorKind::ManagerLost,
        &format!(
            "task lost: manager {} on host host-1 (block block-1) sent nothing for 120 s (1 attempt made)",
            manager_id(1)
        ),
    );
    sim.check(
        [
            heartbeats(),
            vec![results("c", vec![forwarded(lost.clone(), 1)])],
        ]
        .concat(),
    );
    let report = sim.status("c");
    assert_eq!(report.managers.len(), 1);
    assert_eq!(report.managers[0].manager_id, manager_id(2));
    assert_eq!(report.n_failed, 1);
    // Anything more from m1 is from an unknown manager: counted, dropped,
    // and m1 is told to stop (it may still be alive after a network cut).
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![unknown_manager_refused("m1")]);
    assert_eq!(sim.status("c").n_bad_messages, 1);
    assert_eq!(sim.task_status("c", 1).result, Some(forwarded(lost, 1)));
}

// ---------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------

#[test]
fn hold_release_and_drain() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 2);
    sim.command(
        "c",
        1,
        Command::Hold {
            manager_id: manager_id(1),
        },
    );
    sim.check(vec![reply(
        "c",
        1,
        done(&format!("manager {} held", manager_id(1))),
    )]);
    sim.submit("c", 2, vec![submission(1, nodes(1))]);
    sim.check(vec![submitted("c", 2, 1)]);
    assert_eq!(
        sim.status("c").waiting[0].reason,
        "needs 1 node; every manager that large is held or draining"
    );
    assert!(sim.status("c").managers[0].held);
    sim.command(
        "c",
        3,
        Command::Release {
            manager_id: manager_id(1),
        },
    );
    sim.check(vec![
        reply("c", 3, done(&format!("manager {} released", manager_id(1)))),
        run_tasks("m1", vec![dispatch(1, nodes(1))]),
    ]);
    // Drain while busy: no new tasks, shutdown once idle.
    sim.command(
        "c",
        4,
        Command::Drain {
            manager_id: manager_id(1),
        },
    );
    sim.check(vec![reply(
        "c",
        4,
        done(&format!(
            "manager {} gets no new tasks and will be told to exit once idle",
            manager_id(1)
        )),
    )]);
    sim.submit("c", 5, vec![submission(2, nodes(1))]);
    sim.check(vec![submitted("c", 5, 1)]);
    assert!(sim.status("c").managers[0].draining);
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![
        to_manager(
            "m1",
            ToManager::Shutdown {
                reason: "drained".to_owned(),
            },
        ),
        results("c", vec![forwarded(completed(1), 1)]),
    ]);
    sim.manager(
        "m1",
        FromManager::Goodbye {
            reason: "drained".to_owned(),
        },
    );
    sim.check(vec![]);
    assert_eq!(sim.status("c").waiting[0].reason, "no manager connected");
}

#[test]
fn commands_on_unknown_managers_fail_naming_them() {
    let mut sim = Sim::new().with_client("c");
    let unknown = manager_id(9);
    let expected = Reply::Failed {
        message: format!("unknown manager {unknown}: no registered manager has this id"),
    };
    for (request_id, command) in [
        (
            1,
            Command::Hold {
                manager_id: unknown,
            },
        ),
        (
            2,
            Command::Release {
                manager_id: unknown,
            },
        ),
        (
            3,
            Command::Drain {
                manager_id: unknown,
            },
        ),
    ] {
        sim.command("c", request_id, command);
        sim.check(vec![reply("c", request_id, expected.clone())]);
    }
}

#[test]
fn a_manager_drain_request_stops_it_once_idle() {
    let mut sim = Sim::new().with_manager(1, 1);
    sim.manager("m1", FromManager::DrainRequest);
    sim.check(vec![to_manager(
        "m1",
        ToManager::Shutdown {
            reason: "drained".to_owned(),
        },
    )]);
}

#[test]
fn cancel_queued_running_finished_and_unknown() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    sim.submit("c", 1, submissions([(1, nodes(1)), (2, nodes(1))]));
    sim.check(vec![
        submitted("c", 1, 2),
        run_tasks("m1", vec![dispatch(1, nodes(1))]),
    ]);
    // Queued: removed, cancelled result at once.
    sim.cancel("c", 2, 2);
    sim.check(vec![
        reply("c", 2, done(&format!("task {} cancelled", task_id(2)))),
        results(
            "c",
            vec![failed(
                2,
                ErrorKind::Cancelled,
                "cancelled by a client while queued",
            )],
        ),
    ]);
    // Running: the manager is told, and reports the cancelled result.
    sim.cancel("c", 3, 1);
    sim.check(vec![
        to_manager(
            "m1",
            ToManager::CancelTask {
                task_id: task_id(1),
            },
        ),
        reply(
            "c",
            3,
            done(&format!(
                "task {} is running on manager {}: told it to cancel",
                task_id(1),
                manager_id(1)
            )),
        ),
    ]);
    let cancelled = TaskResult {
        state: TaskState::Cancelled,
        error: Some(TaskError {
            kind: ErrorKind::Cancelled,
            message: "cancelled".to_owned(),
        }),
        ..completed(1)
    };
    sim.manager_results("m1", vec![cancelled.clone()]);
    sim.check(vec![results("c", vec![forwarded(cancelled, 1)])]);
    // Finished and unknown: Failed replies.
    sim.cancel("c", 4, 1);
    sim.check(vec![reply(
        "c",
        4,
        Reply::Failed {
            message: format!("task {} already finished (cancelled)", task_id(1)),
        },
    )]);
    sim.cancel("c", 5, 7);
    sim.check(vec![reply(
        "c",
        5,
        Reply::Failed {
            message: format!("unknown task {}", task_id(7)),
        },
    )]);
    let report = sim.status("c");
    assert_eq!(
        (report.n_cancelled, report.n_queued, report.n_running),
        (2, 0, 0)
    );
}

// ---------------------------------------------------------------------
// Handshakes and bad input
// ---------------------------------------------------------------------

#[test]
fn a_client_of_another_version_is_refused_and_others_keep_working() {
    let mut sim = Sim::new().with_client("good");
    sim.client(
        "old",
        FromClient::Hello {
            protocol_version: PROTOCOL_VERSION + 1,
            client_version: "future".to_owned(),
        },
    );
    let refused = to_client(
        "old",
        ToClient::Refused {
            reason: format!(
                "protocol version mismatch: the client speaks version {}, \
                 this interchange speaks version {PROTOCOL_VERSION}",
                PROTOCOL_VERSION + 1
            ),
            protocol_version: PROTOCOL_VERSION,
        },
    );
    sim.check(vec![refused]);
    // The refused client's requests are not handled.
    sim.command("old", 1, Command::Status);
    sim.check(vec![to_client(
        "old",
        ToClient::Error {
            request_id: Some(1),
            message: "send hello first: no request is handled before the handshake".to_owned(),
        },
    )]);
    assert_eq!(sim.status("good").n_bad_messages, 1);
}

#[test]
fn a_hello_that_does_not_decode_is_refused_by_its_version() {
    // A future hello with a field of another type: only type and version
    // can be read.
    #[derive(serde::Serialize)]
    struct FutureHello {
        r#type: &'static str,
        protocol_version: u32,
        client_version: Vec<u32>,
    }
    let mut sim = Sim::new();
    sim.client_bytes(
        "future",
        &protocol::encode(&FutureHello {
            r#type: "hello",
            protocol_version: 7,
            client_version: vec![1, 2],
        }),
    );
    let outputs = sim.drain();
    match outputs.as_slice() {
        [Output::ToClient(_, ToClient::Refused { reason, .. })] => {
            assert!(reason.contains("version 7"), "{reason}");
            assert!(
                reason.contains(&format!("version {PROTOCOL_VERSION}")),
                "{reason}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_manager_of_another_version_is_refused_and_others_keep_working() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    let mut other = registration(2, 4);
    other.protocol_version = PROTOCOL_VERSION + 1;
    sim.manager("m2", FromManager::Register(other));
    sim.check(vec![to_manager(
        "m2",
        ToManager::Refused {
            reason: format!(
                "protocol version mismatch: the manager speaks version {}, \
                 this interchange speaks version {PROTOCOL_VERSION}",
                PROTOCOL_VERSION + 1
            ),
            protocol_version: PROTOCOL_VERSION,
        },
    )]);
    sim.submit_and_start("c", 1, 1, nodes(1), "m1");
    assert_eq!(sim.status("c").managers.len(), 1);
}

/// Version 3 peers know nothing of re-attach (a version 3 manager cannot
/// list the tasks it runs when it registers again): they are refused at
/// the handshake.
#[test]
fn version_3_clients_and_managers_are_refused_at_the_handshake() {
    assert_eq!(PROTOCOL_VERSION, 4);
    let mut sim = Sim::new();
    sim.client(
        "old",
        FromClient::Hello {
            protocol_version: 3,
            client_version: "0.1.0".to_owned(),
        },
    );
    let mut old = registration(1, 1);
    old.protocol_version = 3;
    sim.manager("m1", FromManager::Register(old));
    sim.check(vec![
        to_client(
            "old",
            ToClient::Refused {
                reason: "protocol version mismatch: the client speaks version 3, \
                         this interchange speaks version 4"
                    .to_owned(),
                protocol_version: 4,
            },
        ),
        to_manager(
            "m1",
            ToManager::Refused {
                reason: "protocol version mismatch: the manager speaks version 3, \
                         this interchange speaks version 4"
                    .to_owned(),
                protocol_version: 4,
            },
        ),
    ]);
}

#[test]
fn an_undecodable_register_of_another_version_is_refused_naming_both() {
    #[derive(serde::Serialize)]
    struct FutureRegister {
        r#type: &'static str,
        protocol_version: u32,
        nodes: u32,
    }
    let mut sim = Sim::new();
    sim.manager_bytes(
        "m9",
        &protocol::encode(&FutureRegister {
            r#type: "register",
            protocol_version: PROTOCOL_VERSION + 1,
            nodes: 5,
        }),
    );
    sim.check(vec![to_manager(
        "m9",
        ToManager::Refused {
            reason: format!(
                "protocol version mismatch: the manager speaks version {}, \
                 this interchange speaks version {PROTOCOL_VERSION}",
                PROTOCOL_VERSION + 1
            ),
            protocol_version: PROTOCOL_VERSION,
        },
    )]);
}

#[test]
fn empty_node_lists_and_taken_manager_ids_are_refused() {
    let mut sim = Sim::new().with_manager(1, 2);
    sim.manager("empty", FromManager::Register(registration(5, 0)));
    sim.check(vec![to_manager(
        "empty",
        ToManager::Refused {
            reason: "the registration lists no nodes; a manager needs at least one node".to_owned(),
            protocol_version: PROTOCOL_VERSION,
        },
    )]);
    // Another connection claiming a live manager's id is refused (the
    // manager itself registers again from its own connection).
    sim.manager("imposter", FromManager::Register(registration(1, 2)));
    sim.check(vec![to_manager(
        "imposter",
        ToManager::Refused {
            reason: format!(
                "manager id {} is already registered from another connection",
                manager_id(1)
            ),
            protocol_version: PROTOCOL_VERSION,
        },
    )]);
    sim.manager("m1", FromManager::Heartbeat);
    sim.check(Vec::new());
    // A connection registered as one manager cannot register as another.
    sim.manager("m1", FromManager::Register(registration(2, 2)));
    sim.check(vec![to_manager(
        "m1",
        ToManager::Refused {
            reason: format!(
                "this connection is registered as manager {}, not {}",
                manager_id(1),
                manager_id(2)
            ),
            protocol_version: PROTOCOL_VERSION,
        },
    )]);
}

#[test]
fn garbage_and_unexpected_messages_are_counted_and_survived() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    // Garbage from a client: an error reply, no crash.
    sim.client_bytes("c", b"\xc1\xff garbage");
    let outputs = sim.drain();
    assert!(
        matches!(
            outputs.as_slice(),
            [Output::ToClient(
                _,
                ToClient::Error {
                    request_id: None,
                    ..
                }
            )]
        ),
        "{outputs:?}"
    );
    sim.client_bytes("c", &[]);
    assert_eq!(sim.drain().len(), 1);
    // Garbage and messages from unknown managers: dropped.
    sim.manager_bytes("stranger", b"not msgpack at all");
    sim.manager("stranger", FromManager::Heartbeat);
    sim.manager_results("stranger", vec![completed(1)]);
    sim.manager(
        "stranger",
        FromManager::Goodbye {
            reason: "bye".into(),
        },
    );
    sim.check(vec![
        unknown_manager_refused("stranger"),
        unknown_manager_refused("stranger"),
    ]);
    // Garbage from a registered manager, and a result for a task it does
    // not hold: dropped.
    sim.manager_bytes("m1", &[0x92, 0x01]);
    sim.manager_results("m1", vec![completed(42)]);
    sim.check(vec![]);
    // Every kind of short or odd input survives.
    for length in 0..64u8 {
        let bytes: Vec<u8> = (0..length)
            .map(|i| i.wrapping_mul(37).wrapping_add(length))
            .collect();
        sim.manager_bytes("m1", &bytes);
        sim.manager_bytes("stranger", &bytes);
        sim.drain();
    }
    let report = sim.status("c");
    assert!(report.n_bad_messages >= 7, "{}", report.n_bad_messages);
    assert_eq!(report.managers.len(), 1);
    // And the interchange still works.
    sim.submit_and_start("c", 1, 1, nodes(1), "m1");
}

// ---------------------------------------------------------------------
// Watchers
// ---------------------------------------------------------------------

#[test]
fn a_client_that_says_goodbye_is_forgotten_and_its_tasks_carry_on() {
    let mut sim = Sim::with_peers(&["leaving", "other"], &[(1, 1)]);
    sim.submit_and_start("leaving", 1, 1, nodes(1), "m1");
    sim.client("leaving", FromClient::Goodbye);
    sim.check(vec![]);
    // Forgotten: its next request needs a new hello.
    sim.command("leaving", 2, Command::Status);
    let outputs = sim.drain();
    assert!(
        matches!(
            outputs.as_slice(),
            [Output::ToClient(_, ToClient::Error { request_id: Some(2), message })]
                if message.starts_with("send hello first")
        ),
        "{outputs:?}"
    );
    // The task carries on; its result goes to nobody but is kept.
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![]);
    assert_eq!(
        sim.task_status("other", 1).result,
        Some(forwarded(completed(1), 1))
    );
}

#[test]
fn results_go_to_every_watcher_including_late_ones() {
    let mut sim = Sim::with_peers(&["a", "b", "late"], &[(1, 1)]);
    sim.submit_and_start("a", 1, 1, nodes(1), "m1");
    sim.watch("b", 2, &[1, 99]);
    sim.check(vec![to_client(
        "b",
        ToClient::Watching {
            request_id: 2,
            n_tasks: 1,
            unknown: vec![task_id(99)],
        },
    )]);
    sim.manager_results("m1", vec![completed(1)]);
    let result = forwarded(completed(1), 1);
    sim.check(vec![
        results("a", vec![result.clone()]),
        results("b", vec![result.clone()]),
    ]);
    // A late watcher gets the kept result at once.
    sim.watch("late", 3, &[1]);
    sim.check(vec![
        watching("late", 3, 1),
        results("late", vec![result.clone()]),
    ]);
    let info = sim.task_status("late", 1);
    assert_eq!(info.state, TaskState::Completed);
    assert_eq!(info.result, Some(result));
}

#[test]
fn an_unreachable_client_gets_no_more_results() {
    let mut sim = Sim::new().with_clients(&["a", "b"]).with_manager(1, 1);
    sim.submit_and_start("a", 1, 1, nodes(1), "m1");
    sim.watch("b", 2, &[1]);
    sim.check(vec![watching("b", 2, 1)]);
    sim.core.handle_client_unreachable(&peer("a"));
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![results("b", vec![forwarded(completed(1), 1)])]);
}

// ---------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------

fn shutdown_reason() -> ToManager {
    ToManager::Shutdown {
        reason: "the interchange is shutting down".to_owned(),
    }
}

#[test]
fn shutdown_stops_managers_cancels_queued_and_exits_after_goodbyes() {
    let mut sim = Sim::new().with_client("c").with_managers(&[(1, 1), (2, 1)]);
    sim.submit(
        "c",
        1,
        submissions([(1, nodes(1)), (2, nodes(1)), (3, nodes(1))]),
    );
    sim.check(vec![
        submitted("c", 1, 3),
        run_tasks("m1", vec![dispatch(1, nodes(1))]),
        run_tasks("m2", vec![dispatch(2, nodes(1))]),
    ]);
    sim.command("c", 2, Command::Shutdown);
    sim.check(vec![
        reply(
            "c",
            2,
            done("shutting down: managers told to stop, queued tasks cancelled"),
        ),
        to_manager("m1", shutdown_reason()),
        to_manager("m2", shutdown_reason()),
        results(
            "c",
            vec![failed(
                3,
                ErrorKind::Cancelled,
                "cancelled: the interchange shut down before the task started",
            )],
        ),
    ]);
    // New work is refused while shutting down.
    sim.submit("c", 3, vec![submission(4, nodes(1))]);
    sim.check(vec![
        submitted("c", 3, 0),
        results(
            "c",
            vec![failed(
                4,
                ErrorKind::Cancelled,
                "the interchange is shutting down and takes no new tasks",
            )],
        ),
    ]);
    let killed = TaskResult {
        state: TaskState::Failed,
        error: Some(TaskError {
            kind: ErrorKind::Killed,
            message: "killed at shutdown".to_owned(),
        }),
        ..completed(1)
    };
    sim.manager_results("m1", vec![killed.clone()]);
    sim.check(vec![results("c", vec![forwarded(killed, 1)])]);
    sim.manager(
        "m1",
        FromManager::Goodbye {
            reason: "shutdown".to_owned(),
        },
    );
    sim.check(vec![]);
    sim.manager_results("m2", vec![completed(2)]);
    sim.check(vec![results("c", vec![forwarded(completed(2), 2)])]);
    sim.manager(
        "m2",
        FromManager::Goodbye {
            reason: "shutdown".to_owned(),
        },
    );
    sim.check(vec![Output::Exit]);
    assert!(sim.core.has_exited());
    assert_eq!(sim.core.poll_timeout(), None);
}

#[test]
fn shutdown_without_goodbye_ends_at_the_grace_deadline() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    sim.submit_and_start("c", 1, 1, nodes(1), "m1");
    sim.command("c", 2, Command::Shutdown);
    sim.check(vec![
        reply(
            "c",
            2,
            done("shutting down: managers told to stop, queued tasks cancelled"),
        ),
        to_manager("m1", shutdown_reason()),
    ]);
    sim.advance(9);
    sim.check(vec![]);
    sim.advance(1);
    let lost = forwarded(
        failed(
            1,
            ErrorKind::ManagerLost,
            &format!(
                "task lost: manager {} on host host-1 (block block-1) did not say goodbye within 10 s of shutdown \
                 (1 attempt made)",
                manager_id(1)
            ),
        ),
        1,
    );
    sim.check(vec![results("c", vec![lost]), Output::Exit]);
}

#[test]
fn shutdown_with_no_manager_exits_at_once_and_refuses_registration_before() {
    let mut sim = Sim::new().with_client("c");
    sim.command("c", 1, Command::Shutdown);
    sim.check(vec![
        reply(
            "c",
            1,
            done("shutting down: managers told to stop, queued tasks cancelled"),
        ),
        Output::Exit,
    ]);
    // After exit, inputs are ignored.
    sim.manager("m1", FromManager::Register(registration(1, 1)));
    sim.check(vec![]);
}

#[test]
fn terminate_stops_the_daemon_and_keeps_the_work() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    sim.submit_and_start("c", 1, 1, nodes(1), "m1");
    // Managers are told nothing and no task gets a result: the managers
    // keep running them and register again with the next interchange.
    sim.core.handle_terminate(sim.now);
    sim.check(vec![Output::Exit]);
}

#[test]
fn a_manager_goodbye_fails_the_tasks_it_still_held() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    sim.submit_and_start("c", 1, 1, nodes(1), "m1");
    sim.manager(
        "m1",
        FromManager::Goodbye {
            reason: "SIGTERM".to_owned(),
        },
    );
    sim.check(vec![results(
        "c",
        vec![forwarded(
            failed(
                1,
                ErrorKind::ManagerLost,
                &format!(
                    "task lost: manager {} on host host-1 (block block-1) said goodbye (SIGTERM) without reporting it \
                     (1 attempt made)",
                    manager_id(1)
                ),
            ),
            1,
        )],
    )]);
}

#[test]
fn status_shows_managers_with_free_nodes_and_heartbeat_times() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 4);
    sim.submit_and_start("c", 1, 1, nodes(3), "m1");
    sim.advance(5);
    sim.manager("m1", FromManager::Heartbeat);
    sim.check(vec![]);
    let report = sim.status("c");
    let info = &report.managers[0];
    assert_eq!(
        (info.n_nodes, info.n_free_nodes, info.n_running_tasks),
        (4, 1, 1)
    );
    assert_eq!(info.registered_at, WALL_CLOCK);
    assert_eq!(info.last_heartbeat, WALL_CLOCK + 5.0);
    assert_eq!(info.hostname, "host-1");
    assert_eq!((report.n_running, report.n_queued), (1, 0));
}

// ---------------------------------------------------------------------
// Placement: best fit, newest block, packing
// ---------------------------------------------------------------------

#[test]
fn newest_block_picks_the_newest_manager_that_fits() {
    let mut sim = Sim::with_placement(Placement::NewestBlock)
        .with_client("c")
        .with_managers(&[(1, 4), (2, 2), (3, 4)]);
    // Best fit would choose m2 (2 free nodes); the newest is m3.
    sim.submit_and_start("c", 1, 1, nodes(1), "m3");
    sim.submit("c", 2, vec![submission(2, nodes(3))]);
    sim.check(vec![
        submitted("c", 2, 1),
        run_tasks("m3", vec![dispatch_on(2, nodes(3), &[1, 2, 3])]),
    ]);
    // m3 is full: the next newest that fits is m2, then m1.
    sim.submit("c", 3, submissions([(3, nodes(2)), (4, nodes(3))]));
    sim.check(vec![
        submitted("c", 3, 2),
        run_tasks("m1", vec![dispatch(4, nodes(3))]),
        run_tasks("m2", vec![dispatch(3, nodes(2))]),
    ]);
    // Non-exclusive tasks also go to the newest manager with room.
    sim.manager_results("m3", vec![completed(1)]);
    sim.check(vec![results("c", vec![forwarded(completed(1), 3)])]);
    sim.submit_and_start("c", 4, 5, packed(1, 2), "m3");
}

#[test]
fn best_fit_packs_slots_into_the_tightest_node_of_any_manager() {
    let mut sim = Sim::new().with_client("c").with_managers(&[(1, 2), (2, 2)]);
    sim.submit(
        "c",
        1,
        submissions([
            (1, packed(1, 3)),
            (2, packed(1, 2)),
            (3, packed(1, 1)),
            (4, packed(1, 2)),
            (5, nodes(2)),
        ]),
    );
    // m1 node 0 takes 3 then 1 slot, m1 node 1 takes 2 and 2: the tightest
    // nodes that suffice, so m2 stays whole for the exclusive task.
    sim.check(vec![
        submitted("c", 1, 5),
        run_tasks(
            "m1",
            each_on_one_node([
                (1, packed(1, 3), 0),
                (2, packed(1, 2), 1),
                (3, packed(1, 1), 0),
                (4, packed(1, 2), 1),
            ]),
        ),
        run_tasks("m2", vec![dispatch(5, nodes(2))]),
    ]);
    let report = sim.status("c");
    assert_eq!(report.managers[0].slots_per_node, SLOTS);
    assert_eq!(
        (
            report.managers[0].n_free_nodes,
            report.managers[0].n_running_tasks
        ),
        (0, 4)
    );
}

#[test]
fn packed_tasks_share_a_node_and_exclusive_tasks_never_do() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 2);
    sim.submit(
        "c",
        1,
        submissions([
            (1, nodes(1)),
            (2, packed(1, 2)),
            (3, packed(1, 2)),
            (4, packed(1, 1)),
        ]),
    );
    // The exclusive task has node 0 to itself; the two packed tasks share
    // node 1; no slot is left for the third.
    sim.check(vec![
        submitted("c", 1, 4),
        run_tasks(
            "m1",
            each_on_one_node([(1, nodes(1), 0), (2, packed(1, 2), 1), (3, packed(1, 2), 1)]),
        ),
    ]);
    assert_eq!(
        sim.status("c").waiting,
        vec![WaitingGroup {
            num_nodes: 1,
            n_tasks: 1,
            reason: "waiting for 1 node with 1 free slot".to_owned()
        }]
    );
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![
        run_tasks("m1", vec![dispatch_on(4, packed(1, 1), &[0])]),
        results("c", vec![forwarded(completed(1), 1)]),
    ]);
    // An exclusive task never joins a node that packed tasks use.
    sim.submit("c", 2, vec![submission(5, nodes(1))]);
    sim.check(vec![submitted("c", 2, 1)]);
    sim.manager_results("m1", vec![completed(2)]);
    sim.check(vec![results("c", vec![forwarded(completed(2), 1)])]);
    sim.manager_results("m1", vec![completed(3)]);
    sim.check(vec![
        run_tasks("m1", vec![dispatch_on(5, nodes(1), &[1])]),
        results("c", vec![forwarded(completed(3), 1)]),
    ]);
}

#[test]
fn a_task_needing_more_slots_than_a_manager_has_never_goes_there() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 2);
    sim.submit("c", 1, submissions([(1, packed(1, 8)), (2, nodes(1))]));
    // The 8-slot task can never fit m1 (4 slots per node), so it reserves
    // nothing there and the task behind it runs.
    sim.check(vec![
        submitted("c", 1, 2),
        run_tasks("m1", vec![dispatch(2, nodes(1))]),
    ]);
    let report = sim.status("c");
    assert_eq!(report.managers[0].reserved_for, None);
    assert_eq!(
        report.waiting[0].reason,
        "needs 8 slots per node; the most slots per node of a connected manager is 4"
    );
    sim.manager(
        "m2",
        FromManager::Register(Registration {
            slots_per_node: Some(8),
            ..registration(2, 1)
        }),
    );
    sim.check(vec![
        to_manager("m2", registered()),
        run_tasks("m2", vec![dispatch_on(1, packed(1, 8), &[0])]),
    ]);
    sim.submit("c", 2, vec![submission(3, packed(2, 8))]);
    sim.check(vec![submitted("c", 2, 1)]);
    assert_eq!(
        sim.status("c").waiting[0].reason,
        "needs 2 nodes with 8 free slots each; the largest connected manager with 8 slots per node has 1 node"
    );
}

// ---------------------------------------------------------------------
// No starvation: the reservation and EASY backfill
// ---------------------------------------------------------------------

#[test]
fn a_whole_block_task_is_not_starved_by_a_stream_of_small_ones() {
    let mut sim = Sim::new().with_client("c").with_managers(&[(1, 4), (2, 2)]);
    sim.submit("c", 1, (1..=6).map(|i| submission(i, nodes(1))).collect());
    sim.check(vec![
        submitted("c", 1, 6),
        run_tasks(
            "m1",
            (3..=6)
                .map(|i| dispatch_on(i, nodes(1), &[i as u32 - 3]))
                .collect(),
        ),
        run_tasks("m2", each_on_one_node([(1, nodes(1), 0), (2, nodes(1), 1)])),
    ]);
    // Nothing can start anywhere: no reservation is needed yet.
    let mut stream = vec![submission(7, nodes(4))];
    stream.extend((8..=11).map(|i| submission(i, nodes(1))));
    sim.submit("c", 2, stream);
    sim.check(vec![submitted("c", 2, 5)]);
    assert!(sim
        .status("c")
        .managers
        .iter()
        .all(|info| info.reserved_for.is_none()));
    // A node frees on m2: the 1-node task behind the 4-node one could
    // start, so the 4-node task reserves m1, the only manager it fits, and
    // m2 keeps serving small tasks...
    sim.manager_results("m2", vec![completed(1)]);
    sim.check(vec![
        run_tasks("m2", vec![dispatch_on(8, nodes(1), &[0])]),
        results("c", vec![forwarded(completed(1), 2)]),
    ]);
    let report = sim.status("c");
    assert_eq!(report.managers[0].reserved_for, Some(task_id(7)));
    assert_eq!(report.managers[1].reserved_for, None);
    let reason = format!(
        "waiting for 4 free nodes; manager {} is reserved for it, its start time is unknown: \
         a task running there has no walltime",
        manager_id(1)
    );
    assert_eq!(sim.task_status("c", 7).waiting_reason, Some(reason.clone()));
    assert_eq!(
        report.waiting,
        vec![
            WaitingGroup {
                num_nodes: 1,
                n_tasks: 3,
                reason: "waiting for 1 free node".to_owned()
            },
            WaitingGroup {
                num_nodes: 4,
                n_tasks: 1,
                reason
            },
        ]
    );
    // ...while nothing new starts on m1 as its tasks end.
    for id in 3..=5 {
        sim.manager_results("m1", vec![completed(id)]);
        sim.check(vec![results("c", vec![forwarded(completed(id), 1)])]);
    }
    assert!(sim
        .task_status("c", 9)
        .waiting_reason
        .is_some_and(|reason| reason.contains("is reserved for task")));
    sim.manager_results("m2", vec![completed(2)]);
    sim.check(vec![
        run_tasks("m2", vec![dispatch_on(9, nodes(1), &[1])]),
        results("c", vec![forwarded(completed(2), 2)]),
    ]);
    // The last one ends: the large task starts at once, and the
    // reservation ends.
    sim.manager_results("m1", vec![completed(6)]);
    sim.check(vec![
        run_tasks("m1", vec![dispatch(7, nodes(4))]),
        results("c", vec![forwarded(completed(6), 1)]),
    ]);
    let report = sim.status("c");
    assert!(report
        .managers
        .iter()
        .all(|info| info.reserved_for.is_none()));
    assert_eq!(report.n_queued, 2);
}

#[test]
fn easy_backfill_lets_a_short_task_run_ahead_but_not_a_long_one() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 4);
    sim.submit_and_start("c", 1, 1, with_walltime(nodes(2), 100), "m1");
    // The 4-node task expects to start when task 1 ends, at t = 100 s.
    sim.submit(
        "c",
        2,
        submissions([
            (2, nodes(4)),
            (3, with_walltime(nodes(1), 200)),
            (4, nodes(1)),
            (5, with_walltime(nodes(1), 50)),
        ]),
    );
    // Only the task sure to end by then runs on the reserved manager.
    sim.check(vec![
        submitted("c", 2, 4),
        run_tasks(
            "m1",
            vec![dispatch_on(5, with_walltime(nodes(1), 50), &[2])],
        ),
    ]);
    let report = sim.status("c");
    assert_eq!(report.managers[0].reserved_for, Some(task_id(2)));
    assert_eq!(
        sim.task_status("c", 2).waiting_reason,
        Some(format!(
            "waiting for 4 free nodes; manager {} is reserved for it, expected to start in about 100 s",
            manager_id(1)
        ))
    );
    // At t = 40 s a 60 s task still ends in time; a 70 s one would not.
    sim.advance(40);
    sim.check(vec![to_manager("m1", ToManager::Heartbeat)]);
    sim.submit(
        "c",
        3,
        submissions([
            (6, with_walltime(nodes(1), 70)),
            (7, with_walltime(nodes(1), 60)),
        ]),
    );
    sim.check(vec![
        submitted("c", 3, 2),
        run_tasks(
            "m1",
            vec![dispatch_on(7, with_walltime(nodes(1), 60), &[3])],
        ),
    ]);
    // Everything ahead of it ends: the large task starts.
    sim.manager_results("m1", vec![completed(5), completed(7)]);
    sim.check(vec![results(
        "c",
        vec![forwarded(completed(5), 1), forwarded(completed(7), 1)],
    )]);
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![
        run_tasks("m1", vec![dispatch(2, nodes(4))]),
        results("c", vec![forwarded(completed(1), 1)]),
    ]);
}

#[test]
fn easy_backfill_lets_any_task_use_nodes_the_waiting_task_will_not_need() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 4);
    sim.submit_and_start("c", 1, 1, with_walltime(nodes(2), 100), "m1");
    // The 3-node task will use nodes 0 and 1 (freed at t = 100 s) and node
    // 2: node 3 is spare, so a task without walltime may take it, and only
    // that one.
    sim.submit(
        "c",
        2,
        submissions([(2, nodes(3)), (3, nodes(1)), (4, nodes(1))]),
    );
    sim.check(vec![
        submitted("c", 2, 3),
        run_tasks("m1", vec![dispatch_on(3, nodes(1), &[3])]),
    ]);
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![
        run_tasks("m1", vec![dispatch_on(2, nodes(3), &[0, 1, 2])]),
        results("c", vec![forwarded(completed(1), 1)]),
    ]);
}

#[test]
fn a_higher_priority_task_that_fits_still_runs_on_the_reserved_manager() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 2);
    sim.submit_and_start("c", 1, 1, nodes(1), "m1");
    // Task 3 could start on node 1, but the 2-node task ahead of it
    // reserves the manager.
    sim.submit("c", 2, submissions([(2, nodes(2)), (3, nodes(1))]));
    sim.check(vec![submitted("c", 2, 2)]);
    assert_eq!(sim.status("c").managers[0].reserved_for, Some(task_id(2)));
    // Ahead of the holder in the queue: it is not held back.
    sim.submit("c", 3, vec![submission(4, nodes_priority(1, 0))]);
    sim.check(vec![
        submitted("c", 3, 1),
        run_tasks("m1", vec![dispatch_on(4, nodes_priority(1, 0), &[1])]),
    ]);
    // A new manager that fits the holder starts it; task 3 is then first in
    // line with nothing behind it, so nothing is reserved.
    sim.manager("m2", FromManager::Register(registration(2, 2)));
    sim.check(vec![
        to_manager("m2", registered()),
        run_tasks("m2", vec![dispatch(2, nodes(2))]),
    ]);
    assert!(sim
        .status("c")
        .managers
        .iter()
        .all(|info| info.reserved_for.is_none()));
}

// ---------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------

/// Moves time on by 30 s periods, `m2` answering each heartbeat and `m1`
/// silent, until `m1` is dropped (at t = 120 s); returns the outputs of the
/// last step, heartbeats removed.
fn silence_m1(sim: &mut Sim) -> Vec<Output> {
    let heartbeats = vec![
        to_manager("m1", ToManager::Heartbeat),
        to_manager("m2", ToManager::Heartbeat),
    ];
    for _ in 0..3 {
        sim.advance(30);
        sim.check(heartbeats.clone());
        sim.manager("m2", FromManager::Heartbeat);
        sim.check(vec![]);
    }
    sim.advance(30);
    let outputs = sim.drain();
    assert_eq!(outputs[..2], heartbeats[..]);
    outputs[2..].to_vec()
}

#[test]
fn a_task_whose_manager_is_lost_runs_again_in_its_old_place_and_reports_once() {
    let mut sim = Sim::new().with_client("c").with_managers(&[(1, 1), (2, 1)]);
    let retried = nodes(1).with("retries", 1);
    sim.submit(
        "c",
        1,
        submissions([(1, retried.clone()), (2, nodes(1)), (3, nodes(1))]),
    );
    sim.check(vec![
        submitted("c", 1, 3),
        run_tasks("m1", vec![dispatch(1, retried.clone())]),
        run_tasks("m2", vec![dispatch(2, nodes(1))]),
    ]);
    // m1 is lost: task 1 goes back to the queue, no result yet.
    assert_eq!(silence_m1(&mut sim), vec![]);
    assert_eq!(sim.task_status("c", 1).state, TaskState::Queued);
    // It kept its place ahead of task 3.
    sim.manager_results("m2", vec![completed(2)]);
    sim.check(vec![
        run_tasks("m2", vec![dispatch(1, retried)]),
        results("c", vec![forwarded(completed(2), 2)]),
    ]);
    // A late result from the lost manager reaches nobody.
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![unknown_manager_refused("m1")]);
    sim.manager_results("m2", vec![completed(1)]);
    sim.check(vec![
        run_tasks("m2", vec![dispatch(3, nodes(1))]),
        results("c", vec![forwarded(completed(1), 2)]),
    ]);
    let report = sim.status("c");
    assert_eq!((report.n_completed, report.n_failed), (2, 0));
}

#[test]
fn retries_run_out_and_the_message_counts_the_attempts() {
    let mut sim = Sim::with_config(CoreConfig {
        default_retries: 1,
        ..test_config()
    })
    .with_client("c")
    .with_managers(&[(1, 1), (2, 1)]);
    // Task 1 has the default of one retry; task 2 says none.
    let no_retry = nodes(1).with("retries", 0);
    sim.submit("c", 1, submissions([(1, nodes(1)), (2, no_retry.clone())]));
    sim.check(vec![
        submitted("c", 1, 2),
        run_tasks("m1", vec![dispatch(1, nodes(1))]),
        run_tasks("m2", vec![dispatch(2, no_retry)]),
    ]);
    let lost = |id: u128, manager: u128, attempts: &str| {
        forwarded(
            failed(
                id,
                ErrorKind::ManagerLost,
                &format!(
                    "task lost: manager {} on host host-{manager} (block block-{manager}) \
                     sent nothing for 120 s ({attempts} made)",
                    manager_id(manager)
                ),
            ),
            manager,
        )
    };
    assert_eq!(silence_m1(&mut sim), vec![]);
    // Task 1 is queued again; a new manager takes it.
    sim.manager("m3", FromManager::Register(registration(3, 1)));
    sim.check(vec![
        to_manager("m3", registered()),
        run_tasks("m3", vec![dispatch(1, nodes(1))]),
    ]);
    // Both remaining managers fall silent: no retries are left.
    sim.advance(120);
    let outputs = sim.drain();
    let results_sent: Vec<&Output> = outputs
        .iter()
        .filter(|output| matches!(output, Output::ToClient(..)))
        .collect();
    assert_eq!(
        results_sent,
        vec![
            &results("c", vec![lost(2, 2, "1 attempt")]),
            &results("c", vec![lost(1, 3, "2 attempts")])
        ]
    );
}

#[test]
fn lost_tasks_are_retried_after_a_goodbye_but_not_when_cancelled_or_at_shutdown() {
    let mut sim = Sim::with_config(CoreConfig {
        default_retries: 1,
        ..test_config()
    })
    .with_client("c")
    .with_managers(&[(1, 1), (2, 1), (3, 1)]);
    sim.submit("c", 1, (1..=3).map(|i| submission(i, nodes(1))).collect());
    sim.check(vec![
        submitted("c", 1, 3),
        run_tasks("m1", vec![dispatch(1, nodes(1))]),
        run_tasks("m2", vec![dispatch(2, nodes(1))]),
        run_tasks("m3", vec![dispatch(3, nodes(1))]),
    ]);
    sim.cancel("c", 2, 2);
    assert_eq!(sim.drain().len(), 2, "cancel_task and the reply");
    let goodbye = || FromManager::Goodbye {
        reason: "SIGTERM".to_owned(),
    };
    // m3 leaves without reporting task 3: not the task's fault, so it is
    // queued again.
    sim.manager("m3", goodbye());
    sim.check(vec![]);
    assert_eq!(sim.task_status("c", 3).state, TaskState::Queued);
    // m2 leaves without reporting task 2, which a client asked to cancel:
    // not retried.
    sim.manager("m2", goodbye());
    sim.check(vec![results(
        "c",
        vec![forwarded(
            failed(
                2,
                ErrorKind::ManagerLost,
                &format!(
                    "task lost: manager {} on host host-2 (block block-2) said goodbye (SIGTERM) \
                     without reporting it (1 attempt made)",
                    manager_id(2)
                ),
            ),
            2,
        )],
    )]);
    // At shutdown nothing is retried: queued tasks are cancelled, and a
    // task whose manager does not say goodbye is lost.
    sim.command("c", 3, Command::Shutdown);
    sim.check(vec![
        reply(
            "c",
            3,
            done("shutting down: managers told to stop, queued tasks cancelled"),
        ),
        to_manager("m1", shutdown_reason()),
        results(
            "c",
            vec![failed(
                3,
                ErrorKind::Cancelled,
                "cancelled: the interchange shut down before the task started",
            )],
        ),
    ]);
    sim.advance(10);
    sim.check(vec![
        results(
            "c",
            vec![forwarded(
                failed(
                    1,
                    ErrorKind::ManagerLost,
                    &format!(
                        "task lost: manager {} on host host-1 (block block-1) did not say goodbye \
                         within 10 s of shutdown (1 attempt made)",
                        manager_id(1)
                    ),
                ),
                1,
            )],
        ),
        Output::Exit,
    ]);
}

// ---------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------

/// The properties that need managers run on the `pair` harness, with real
/// pool-manager cores (`crates/pair/tests/properties.rs`).
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever bytes arrive, on either socket, the core neither panics
        /// nor loses track: the status still answers.
        #[test]
        fn arbitrary_bytes_never_break_the_core(frames in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..40)
        ) {
            let mut sim = Sim::new().with_client("c").with_manager(1, 2);
            for (to_manager_socket, bytes) in &frames {
                if *to_manager_socket {
                    sim.manager_bytes("m1", bytes);
                    sim.manager_bytes("stranger", bytes);
                } else {
                    sim.client_bytes("x", bytes);
                }
                sim.drain();
            }
            prop_assert_eq!(sim.status("c").managers.len(), 1);
        }
    }
}
