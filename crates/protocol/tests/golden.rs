//! Golden messages: `proto/golden/*.msgpack`, written by
//! `proto/golden/make_golden.py` with Python's `msgpack` package.
//!
//! Each canonical file must decode to the value built here and re-encode to
//! the very same bytes, which shows that a Python peer can write exactly what
//! rhtex reads and writes. The `lenient.*` files (optional fields left out,
//! unknown fields, keys in another order, ids as 16 raw bytes, an integer
//! where a float is expected) must decode to the value built here. Every `.msgpack` file in the folder must be covered by one case.

use protocol::{
    decode, encode, BlockInfo, BlockState, Command, ErrorKind, FromClient, FromManager, Launcher,
    ManagerId, ManagerInfo, NodeShare, Registration, Reply, ResourceRequest, SpecValue,
    StatusReport, TaskDispatch, TaskError, TaskId, TaskResources, TaskResult, TaskState,
    TaskStatusInfo, TaskSubmission, TaskSummary, ToClient, ToManager, UserCounts, WaitingGroup,
    PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

const RHTEX_VERSION: &str = "0.1.0";
const TASK_1: TaskId = TaskId::from_u128(0x6f1c2f5e_0c2a_4b8e_9d3a_1a2b3c4d5e01);
const TASK_2: TaskId = TaskId::from_u128(0x6f1c2f5e_0c2a_4b8e_9d3a_1a2b3c4d5e02);
const TASK_3: TaskId = TaskId::from_u128(0x6f1c2f5e_0c2a_4b8e_9d3a_1a2b3c4d5e03);
const TASK_4: TaskId = TaskId::from_u128(0x6f1c2f5e_0c2a_4b8e_9d3a_1a2b3c4d5e04);
const MANAGER: ManagerId = ManagerId::from_u128(0x0b1d5c3a_7e4f_4a21_8c6d_9e0f1a2b3c4d);
const REGISTERED_AT: f64 = 1_700_000_000.25;
const LAST_HEARTBEAT: f64 = 1_700_000_090.5;
const START_TIME: f64 = 1_700_000_100.125;
const END_TIME: f64 = 1_700_000_163.75;
const SUBMITTED_AT: f64 = 1_699_999_940.5;
/// Task payloads: bytes that are not UTF-8, as a pickled Parsl app would be.
const INPUT: &[u8] = b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x08simulate\x94.";
const OUTPUT: &[u8] = b"\x80\x04K*.";
const MIB_16: u64 = 16 * 1024 * 1024;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/golden")
}

fn read_golden(name: &str) -> Vec<u8> {
    let path = golden_dir().join(format!("{name}.msgpack"));
    match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) => panic!(
            "cannot read {}: {error}; run `python3 proto/golden/make_golden.py`",
            path.display()
        ),
    }
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// The expected values, mirroring make_golden.py
// ---------------------------------------------------------------------------

fn submission_mpi() -> TaskSubmission {
    TaskSubmission {
        task_id: TASK_1,
        command: "$PARSL_MPI_PREFIX ./simulate --steps 100".into(),
        resources: ResourceRequest::new()
            .with("num_nodes", 2)
            .with("num_ranks", 7)
            .with("launcher_options", "--bind-to core")
            .with("priority", -3)
            .with("walltime", 3600)
            .with("retries", 2)
            .with("exclusive", false),
        env: strings(&[("OMP_NUM_THREADS", "4"), ("CASE", "a")]),
        cwd: Some("/scratch/run-1".into()),
        stdout: Some("/scratch/run-1/sim.out".into()),
        stderr: None,
        input: Some(INPUT.to_vec()),
    }
}

fn submission_serial() -> TaskSubmission {
    TaskSubmission::new(TASK_2, "hostname")
}

fn result_full() -> TaskResult {
    TaskResult {
        task_id: TASK_1,
        state: TaskState::Failed,
        exit_code: Some(3),
        signal: None,
        error: Some(TaskError {
            kind: ErrorKind::ExitCode,
            message: "command exited with code 3".into(),
        }),
        manager_id: Some(MANAGER),
        block_id: Some("48213".into()),
        nodes: vec!["nid001".into(), "nid002".into()],
        stdout_path: Some("/scratch/run-1/sim.out".into()),
        stderr_path: Some(format!("/scratch/run-1/rhtex-run/tasks/{TASK_1}.stderr")),
        stdout_tail: b"step 99\nstep 100\n".to_vec(),
        stderr_tail: b"\x00\x9f\x92\x96 rank 3: abort\n".to_vec(),
        start_time: Some(START_TIME),
        end_time: Some(END_TIME),
        output: None,
    }
}

/// A result of a task that ran `seconds` from [`START_TIME`] on `node` of
/// block 48213, its output in the run directory; nothing else said.
fn ran_on_one_node(
    task_id: TaskId,
    state: TaskState,
    node: &str,
    stdout_tail: &[u8],
    seconds: f64,
) -> TaskResult {
    TaskResult {
        manager_id: Some(MANAGER),
        block_id: Some("48213".into()),
        nodes: vec![node.into()],
        stdout_path: Some(format!("rhtex-run/tasks/{task_id}.stdout")),
        stderr_path: Some(format!("rhtex-run/tasks/{task_id}.stderr")),
        stdout_tail: stdout_tail.to_vec(),
        start_time: Some(START_TIME),
        end_time: Some(START_TIME + seconds),
        ..TaskResult::new(task_id, state)
    }
}

fn result_completed() -> TaskResult {
    TaskResult {
        exit_code: Some(0),
        output: Some(OUTPUT.to_vec()),
        ..ran_on_one_node(TASK_2, TaskState::Completed, "nid001", b"nid001\n", 0.5)
    }
}

fn result_walltime() -> TaskResult {
    TaskResult {
        signal: Some(15),
        error: Some(TaskError {
            kind: ErrorKind::WalltimeExceeded,
            message: "killed after running longer than its walltime of 60 s".into(),
        }),
        ..ran_on_one_node(
            TASK_4,
            TaskState::Failed,
            "nid003",
            b"iteration 5812\n",
            60.25,
        )
    }
}

fn result_output_too_large() -> TaskResult {
    TaskResult {
        exit_code: Some(0),
        error: Some(TaskError {
            kind: ErrorKind::OutputTooLarge,
            message: "the task's output file has 20000000 bytes; max_task_output_bytes is 16777216"
                .into(),
        }),
        ..ran_on_one_node(TASK_3, TaskState::Failed, "nid004", b"", 2.0)
    }
}

fn command(request_id: u64, command: Command) -> FromClient {
    FromClient::Command {
        request_id,
        command,
    }
}

fn from_client_cases() -> Vec<(&'static str, FromClient)> {
    vec![
        (
            "from_client.hello",
            FromClient::Hello {
                protocol_version: PROTOCOL_VERSION,
                client_version: RHTEX_VERSION.into(),
            },
        ),
        (
            "from_client.submit",
            FromClient::Submit {
                request_id: 1,
                tasks: vec![submission_mpi(), submission_serial()],
            },
        ),
        (
            "from_client.watch",
            FromClient::Watch {
                request_id: 2,
                task_ids: vec![TASK_1, TASK_2],
            },
        ),
        ("from_client.command.status", command(3, Command::Status)),
        (
            "from_client.command.task_status",
            command(
                4,
                Command::TaskStatus {
                    task_ids: vec![TASK_1, TASK_2],
                },
            ),
        ),
        (
            "from_client.command.tasks",
            command(
                10,
                Command::Tasks {
                    state: Some(TaskState::Running),
                },
            ),
        ),
        (
            "from_client.command.hold",
            command(
                5,
                Command::Hold {
                    manager_id: MANAGER,
                },
            ),
        ),
        (
            "from_client.command.release",
            command(
                6,
                Command::Release {
                    manager_id: MANAGER,
                },
            ),
        ),
        (
            "from_client.command.drain",
            command(
                7,
                Command::Drain {
                    manager_id: MANAGER,
                },
            ),
        ),
        (
            "from_client.command.cancel",
            command(8, Command::Cancel { task_id: TASK_1 }),
        ),
        (
            "from_client.command.shutdown",
            command(9, Command::Shutdown),
        ),
        ("from_client.goodbye", FromClient::Goodbye),
    ]
}

fn to_client_cases() -> Vec<(&'static str, ToClient)> {
    let status = StatusReport {
        interchange_version: RHTEX_VERSION.into(),
        protocol_version: PROTOCOL_VERSION,
        n_queued: 5,
        n_running: 1,
        n_completed: 120,
        n_failed: 2,
        n_cancelled: 0,
        n_bad_messages: 0,
        managers: vec![ManagerInfo {
            manager_id: MANAGER,
            block_id: "48213".into(),
            hostname: "nid001".into(),
            launcher: Launcher::Srun,
            n_nodes: 4,
            n_free_nodes: 2,
            n_running_tasks: 1,
            held: false,
            draining: false,
            registered_at: REGISTERED_AT,
            last_heartbeat: LAST_HEARTBEAT,
            rhtex_version: RHTEX_VERSION.into(),
            slots_per_node: 64,
            reserved_for: Some(TASK_3),
        }],
        waiting: vec![WaitingGroup {
            num_nodes: 3,
            n_tasks: 5,
            reason: "needs 3 nodes; the largest free count is 2".into(),
        }],
        blocks: vec![BlockInfo {
            block_id: "48213".into(),
            job_id: "48213".into(),
            provider: "slurm".into(),
            state: BlockState::Connected,
            n_nodes: 4,
            manager_id: Some(MANAGER),
            submitted_at: SUBMITTED_AT,
            output_path: Some("/scratch/rhtex-run/blocks/48213.out".into()),
            message: None,
        }],
        users: vec![
            UserCounts {
                identity: "alice".into(),
                n_queued: 3,
                n_running: 1,
            },
            UserCounts {
                identity: "default".into(),
                n_queued: 2,
                n_running: 0,
            },
        ],
    };
    vec![
        (
            "to_client.welcome",
            ToClient::Welcome {
                protocol_version: PROTOCOL_VERSION,
                interchange_version: RHTEX_VERSION.into(),
                max_task_input_bytes: MIB_16,
                max_task_output_bytes: MIB_16,
            },
        ),
        (
            "to_client.refused",
            ToClient::Refused {
                reason: "protocol version mismatch: the client speaks version 3, \
                         this interchange speaks version 4"
                    .into(),
                protocol_version: PROTOCOL_VERSION,
            },
        ),
        (
            "to_client.submitted",
            ToClient::Submitted {
                request_id: 1,
                n_tasks: 2,
            },
        ),
        (
            "to_client.watching",
            ToClient::Watching {
                request_id: 2,
                n_tasks: 2,
                unknown: vec![TASK_3],
            },
        ),
        (
            "to_client.results",
            ToClient::Results {
                results: vec![result_full(), result_completed()],
            },
        ),
        (
            "to_client.reply.status",
            ToClient::Reply {
                request_id: 3,
                reply: Reply::Status(status),
            },
        ),
        (
            "to_client.reply.task_status",
            ToClient::Reply {
                request_id: 4,
                reply: Reply::TaskStatus {
                    tasks: vec![
                        TaskStatusInfo {
                            task_id: TASK_1,
                            state: TaskState::Failed,
                            manager_id: Some(MANAGER),
                            nodes: vec!["nid001".into(), "nid002".into()],
                            waiting_reason: None,
                            result: Some(result_full()),
                        },
                        TaskStatusInfo {
                            task_id: TASK_2,
                            state: TaskState::Queued,
                            manager_id: None,
                            nodes: Vec::new(),
                            waiting_reason: Some("no pool-manager is connected".into()),
                            result: None,
                        },
                    ],
                },
            },
        ),
        (
            "to_client.reply.tasks",
            ToClient::Reply {
                request_id: 10,
                reply: Reply::Tasks {
                    tasks: vec![
                        TaskSummary {
                            task_id: TASK_1,
                            state: TaskState::Failed,
                            num_nodes: 2,
                            manager_id: Some(MANAGER),
                            nodes: vec!["nid001".into(), "nid002".into()],
                            submitted_at: SUBMITTED_AT,
                            start_time: Some(START_TIME),
                            end_time: Some(END_TIME),
                            exit_code: Some(3),
                            error_kind: Some(ErrorKind::ExitCode),
                        },
                        TaskSummary {
                            task_id: TASK_2,
                            state: TaskState::Queued,
                            num_nodes: 3,
                            manager_id: None,
                            nodes: Vec::new(),
                            submitted_at: SUBMITTED_AT,
                            start_time: None,
                            end_time: None,
                            exit_code: None,
                            error_kind: None,
                        },
                    ],
                },
            },
        ),
        (
            "to_client.reply.done",
            ToClient::Reply {
                request_id: 5,
                reply: Reply::Done {
                    message: format!("manager {MANAGER} is held"),
                },
            },
        ),
        (
            "to_client.reply.failed",
            ToClient::Reply {
                request_id: 8,
                reply: Reply::Failed {
                    message: format!("no task {TASK_1}"),
                },
            },
        ),
        (
            "to_client.error",
            ToClient::Error {
                request_id: None,
                message: "send hello first".into(),
            },
        ),
        (
            "to_client.error.denied",
            ToClient::Error {
                request_id: Some(9),
                message: format!(
                    "denied: task {TASK_1} was submitted by another client identity; only its \
                     submitter or an admin may cancel it (this connection is client identity bob); \
                     nothing of this request was done"
                ),
            },
        ),
    ]
}

fn from_manager_cases() -> Vec<(&'static str, FromManager)> {
    let register = Registration {
        protocol_version: PROTOCOL_VERSION,
        manager_id: MANAGER,
        block_id: "48213".into(),
        hostname: "nid001".into(),
        nodes: ["nid001", "nid002", "nid003", "nid004"]
            .map(String::from)
            .to_vec(),
        launcher: Launcher::Srun,
        rhtex_version: RHTEX_VERSION.into(),
        cpu_count: 128,
        slots_per_node: Some(64),
        versions: strings(&[
            ("os", "Debian GNU/Linux 12"),
            ("libzmq", "4.3.4"),
            ("mpi", "MPICH 4.0.2"),
        ]),
        attempt: 0,
        running_tasks: Vec::new(),
        held_results: Vec::new(),
    };
    let register_again = Registration {
        versions: BTreeMap::new(),
        attempt: 1,
        running_tasks: vec![protocol::HeldTask {
            task_id: TASK_1,
            placement: vec![
                NodeShare { node: 0, slots: 4 },
                NodeShare { node: 1, slots: 4 },
            ],
        }],
        held_results: vec![TASK_2],
        ..register.clone()
    };
    vec![
        ("from_manager.register", FromManager::Register(register)),
        (
            "from_manager.register_again",
            FromManager::Register(register_again),
        ),
        ("from_manager.heartbeat", FromManager::Heartbeat),
        (
            "from_manager.results",
            FromManager::Results {
                results: vec![result_full(), result_walltime(), result_output_too_large()],
            },
        ),
        ("from_manager.drain_request", FromManager::DrainRequest),
        (
            "from_manager.goodbye",
            FromManager::Goodbye {
                reason: "drained: idle after the drain period".into(),
            },
        ),
    ]
}

fn to_manager_cases() -> Vec<(&'static str, ToManager)> {
    let submission = submission_mpi();
    let resources = match protocol::validate(&submission.resources) {
        Ok(resources) => resources,
        Err(error) => panic!("the golden submission's resources must be valid: {error}"),
    };
    // The golden file spells the derived counts out; check that they are
    // what validation derives.
    assert_eq!(
        resources,
        TaskResources {
            num_nodes: 2,
            ranks_per_node: 4,
            num_ranks: 7,
            launcher_options: Some("--bind-to core".into()),
            priority: Some(-3),
            walltime: Some(3600.0),
            retries: Some(2),
            exclusive: false,
        }
    );
    // The walltime is sent as an integer; validation makes it a float.
    assert_eq!(
        submission.resources.0.get("walltime"),
        Some(&SpecValue::Int(3600))
    );
    // A non-exclusive task takes `ranks_per_node` slots on each of
    // `num_nodes` distinct nodes.
    let placement = vec![
        NodeShare { node: 0, slots: 4 },
        NodeShare { node: 1, slots: 4 },
    ];
    assert_eq!(placement.len(), resources.num_nodes as usize);
    assert!(placement
        .iter()
        .all(|share| share.slots == resources.ranks_per_node));
    vec![
        (
            "to_manager.registered",
            ToManager::Registered {
                interchange_version: RHTEX_VERSION.into(),
                heartbeat_period: 30.0,
                max_task_output_bytes: MIB_16,
                drop_tasks: vec![TASK_4],
            },
        ),
        (
            "to_manager.not_registered",
            ToManager::NotRegistered {
                reason: "this connection is not registered with the interchange".into(),
            },
        ),
        (
            "to_manager.refused",
            ToManager::Refused {
                reason: "protocol version mismatch: the pool-manager speaks version 3, \
                         this interchange speaks version 4"
                    .into(),
                protocol_version: PROTOCOL_VERSION,
            },
        ),
        (
            "to_manager.run_tasks",
            ToManager::RunTasks {
                tasks: vec![TaskDispatch {
                    task_id: submission.task_id,
                    command: submission.command,
                    resources,
                    placement,
                    env: submission.env,
                    cwd: submission.cwd,
                    stdout: submission.stdout,
                    stderr: submission.stderr,
                    input: submission.input,
                }],
            },
        ),
        (
            "to_manager.cancel_task",
            ToManager::CancelTask { task_id: TASK_1 },
        ),
        ("to_manager.heartbeat", ToManager::Heartbeat),
        (
            "to_manager.shutdown",
            ToManager::Shutdown {
                reason: "the interchange is shutting down".into(),
            },
        ),
    ]
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// Decodes the file, compares it with `expected` and re-encodes it to the
/// same bytes. Returns the name, for the coverage check.
fn check_canonical<T>(name: &'static str, expected: &T) -> &'static str
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = read_golden(name);
    let decoded: T = match decode(&bytes) {
        Ok(decoded) => decoded,
        Err(error) => panic!("{name}: {error}"),
    };
    assert_eq!(&decoded, expected, "{name}: decoded value differs");
    let encoded = encode(&decoded);
    assert!(
        encoded == bytes,
        "{name}: re-encoding differs from the golden file\n golden:  {}\n encoded: {}",
        hex(&bytes),
        hex(&encoded)
    );
    name
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn check_all<T>(cases: Vec<(&'static str, T)>) -> Vec<&'static str>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    cases
        .iter()
        .map(|(name, expected)| check_canonical(name, expected))
        .collect()
}

#[test]
fn from_client_golden() {
    check_all(from_client_cases());
}

#[test]
fn to_client_golden() {
    check_all(to_client_cases());
}

#[test]
fn from_manager_golden() {
    check_all(from_manager_cases());
}

#[test]
fn to_manager_golden() {
    check_all(to_manager_cases());
}

/// Checks that the lenient golden file `name` decodes to `expected`.
fn check_lenient<T: DeserializeOwned + PartialEq + Debug>(
    name: &'static str,
    expected: T,
) -> &'static str {
    assert_eq!(decode::<T>(&read_golden(name)), Ok(expected), "{name}");
    name
}

fn lenient_cases() -> Vec<&'static str> {
    let hello = check_lenient::<FromClient>(
        "lenient.from_client.hello",
        FromClient::Hello {
            protocol_version: PROTOCOL_VERSION,
            client_version: String::new(),
        },
    );

    let submit = check_lenient::<FromClient>(
        "lenient.from_client.submit",
        FromClient::Submit {
            request_id: 10,
            tasks: vec![TaskSubmission::new(TASK_2, "echo hi")],
        },
    );

    let watch = check_lenient::<FromClient>(
        "lenient.from_client.watch",
        FromClient::Watch {
            request_id: 11,
            task_ids: vec![TASK_1, TASK_2],
        },
    );

    let registered = check_lenient::<ToManager>(
        "lenient.to_manager.registered",
        ToManager::Registered {
            interchange_version: RHTEX_VERSION.into(),
            heartbeat_period: 30.0,
            max_task_output_bytes: MIB_16,
            drop_tasks: Vec::new(),
        },
    );

    let register = check_lenient::<FromManager>(
        "lenient.from_manager.register",
        FromManager::Register(Registration {
            protocol_version: PROTOCOL_VERSION,
            manager_id: MANAGER,
            block_id: "local".into(),
            hostname: "laptop".into(),
            nodes: vec!["laptop".into()],
            launcher: Launcher::Mpiexec,
            rhtex_version: "python-0.1".into(),
            cpu_count: 0,
            slots_per_node: None,
            versions: BTreeMap::new(),
            attempt: 0,
            running_tasks: Vec::new(),
            held_results: Vec::new(),
        }),
    );

    let run_tasks = check_lenient::<ToManager>(
        "lenient.to_manager.run_tasks",
        ToManager::RunTasks {
            tasks: vec![TaskDispatch {
                task_id: TASK_2,
                command: "hostname".into(),
                resources: TaskResources::serial(),
                placement: vec![NodeShare { node: 0, slots: 64 }],
                env: BTreeMap::new(),
                cwd: None,
                stdout: None,
                stderr: None,
                input: None,
            }],
        },
    );

    let results = check_lenient::<FromManager>(
        "lenient.from_manager.results",
        FromManager::Results {
            results: vec![TaskResult {
                exit_code: Some(0),
                ..TaskResult::new(TASK_2, TaskState::Completed)
            }],
        },
    );
    vec![
        hello, submit, watch, registered, register, run_tasks, results,
    ]
}

#[test]
fn lenient_golden() {
    lenient_cases();
}

/// A file added to `proto/golden/` without a case here fails this test, and
/// so does a case whose file is missing.
#[test]
fn every_golden_file_is_covered() {
    let mut covered: Vec<&str> = Vec::new();
    covered.extend(from_client_cases().iter().map(|(name, _)| *name));
    covered.extend(to_client_cases().iter().map(|(name, _)| *name));
    covered.extend(from_manager_cases().iter().map(|(name, _)| *name));
    covered.extend(to_manager_cases().iter().map(|(name, _)| *name));
    covered.extend(lenient_cases());
    let covered: BTreeSet<String> = covered
        .into_iter()
        .map(|name| format!("{name}.msgpack"))
        .collect();

    let dir = golden_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) => panic!("cannot list {}: {error}", dir.display()),
    };
    let on_disk: BTreeSet<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".msgpack"))
        .collect();

    let not_covered: Vec<&String> = on_disk.difference(&covered).collect();
    let missing: Vec<&String> = covered.difference(&on_disk).collect();
    assert!(
        not_covered.is_empty(),
        "golden files without a case in crates/protocol/tests/golden.rs: {not_covered:?}"
    );
    assert!(
        missing.is_empty(),
        "cases whose golden file is missing (run python3 proto/golden/make_golden.py): {missing:?}"
    );
}

/// Every variant of the four enums has at least one canonical golden file:
/// the tags in the files cover the tags the Rust types can produce.
#[test]
fn every_variant_has_a_golden_file() {
    fn tags<T: Serialize>(cases: &[(&str, T)]) -> BTreeSet<String> {
        cases
            .iter()
            .map(|(_, message)| {
                let bytes = encode(message);
                match protocol::peek_handshake(&bytes) {
                    Some(handshake) => handshake.message_type,
                    None => panic!("every message is a map with a type"),
                }
            })
            .collect()
    }
    let expect = |names: &[&str]| -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    };
    assert_eq!(
        tags(&from_client_cases()),
        expect(&["hello", "submit", "watch", "command", "goodbye"])
    );
    assert_eq!(
        tags(&to_client_cases()),
        expect(&[
            "welcome",
            "refused",
            "submitted",
            "watching",
            "results",
            "reply",
            "error"
        ])
    );
    assert_eq!(
        tags(&from_manager_cases()),
        expect(&[
            "register",
            "heartbeat",
            "results",
            "drain_request",
            "goodbye"
        ])
    );
    assert_eq!(
        tags(&to_manager_cases()),
        expect(&[
            "registered",
            "not_registered",
            "refused",
            "run_tasks",
            "cancel_task",
            "heartbeat",
            "shutdown"
        ])
    );
    let commands: BTreeSet<&str> = from_client_cases()
        .iter()
        .filter_map(|(_, message)| match message {
            FromClient::Command { command, .. } => Some(match command {
                Command::Status => "status",
                Command::TaskStatus { .. } => "task_status",
                Command::Tasks { .. } => "tasks",
                Command::Hold { .. } => "hold",
                Command::Release { .. } => "release",
                Command::Drain { .. } => "drain",
                Command::Cancel { .. } => "cancel",
                Command::Shutdown => "shutdown",
            }),
            _ => None,
        })
        .collect();
    assert_eq!(
        commands.len(),
        8,
        "one golden file per command: {commands:?}"
    );
    let replies: BTreeSet<&str> = to_client_cases()
        .iter()
        .filter_map(|(_, message)| match message {
            ToClient::Reply { reply, .. } => Some(match reply {
                Reply::Status(_) => "status",
                Reply::TaskStatus { .. } => "task_status",
                Reply::Tasks { .. } => "tasks",
                Reply::Done { .. } => "done",
                Reply::Failed { .. } => "failed",
            }),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 5, "one golden file per reply: {replies:?}");
}
