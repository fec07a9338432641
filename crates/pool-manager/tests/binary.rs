//! The real `pool-manager` binary against a scripted interchange: a ROUTER
//! socket this test binds on 127.0.0.1 (`--insecure`). Every manager runs
//! in its own process group, killed on drop; every wait is bounded.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use protocol::{
    ErrorKind, FromManager, ManagerId, ResourceRequest, TaskDispatch, TaskId, TaskResult,
    TaskState, ToManager,
};
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::{Daemon, Launch};
use transport::zmq;
use transport::ServerSecurity;

const WAIT: Duration = Duration::from_secs(20);

/// The scripted interchange: one ROUTER.
struct Interchange {
    _context: zmq::Context,
    router: zmq::Socket,
    endpoint: String,
    peer: Option<Vec<u8>>,
}

impl Interchange {
    fn bind() -> Self {
        let context = zmq::Context::new();
        let (router, endpoint) = transport::sockets::bind_router(
            &context,
            "tcp://127.0.0.1:0",
            &ServerSecurity::Insecure,
            transport::sockets::RouterOptions {
                role: transport::SocketRole::Managers,
                max_message_bytes: transport::sockets::DEALER_MAX_MESSAGE_BYTES,
                heartbeat: None,
            },
        )
        .expect("bind the ROUTER");
        Self {
            _context: context,
            router,
            endpoint,
            peer: None,
        }
    }

    /// The next message from the manager, within [`WAIT`].
    fn recv(&mut self) -> FromManager {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no message from the manager within {WAIT:?}"
            );
            let mut items = [self.router.as_poll_item(zmq::POLLIN)];
            zmq::poll(&mut items, i64::try_from(left.as_millis()).unwrap_or(1000)).expect("poll");
            if items[0].is_readable() {
                let frames = self.router.recv_multipart(0).expect("recv");
                assert_eq!(frames.len(), 2, "identity and one message frame");
                self.peer = Some(frames[0].clone());
                return protocol::decode(&frames[1]).expect("a FromManager message");
            }
        }
    }

    /// The next message that is not a heartbeat.
    fn recv_skipping_heartbeats(&mut self) -> FromManager {
        loop {
            match self.recv() {
                FromManager::Heartbeat => continue,
                other => return other,
            }
        }
    }

    fn send(&self, message: &ToManager) {
        let peer = self.peer.as_ref().expect("the manager has spoken first");
        self.router
            .send_multipart([peer.as_slice(), &protocol::encode(message)], 0)
            .expect("send");
    }

    fn expect_register(&mut self) -> protocol::Registration {
        match self.recv() {
            FromManager::Register(registration) => registration,
            other => panic!("expected register, got {other:?}"),
        }
    }

    fn accept(&mut self) -> protocol::Registration {
        self.accept_with_output_limit(protocol::DEFAULT_MAX_TASK_OUTPUT_BYTES)
    }

    /// Registers the manager, giving it this `max_task_output_bytes`.
    fn accept_with_output_limit(&mut self, max_task_output_bytes: u64) -> protocol::Registration {
        let registration = self.expect_register();
        self.send(&ToManager::Registered {
            interchange_version: protocol::RHTEX_VERSION.into(),
            heartbeat_period: 30.0,
            max_task_output_bytes,
            drop_tasks: Vec::new(),
        });
        registration
    }

    /// Sends one task and waits for its result.
    fn run(&mut self, task: TaskDispatch) -> TaskResult {
        self.send(&ToManager::RunTasks { tasks: vec![task] });
        self.expect_result()
    }

    /// Tells the manager to shut down and waits for its goodbye.
    fn shut_down(&mut self) -> String {
        self.send(&ToManager::Shutdown {
            reason: "test over".into(),
        });
        match self.recv_skipping_heartbeats() {
            FromManager::Goodbye { reason } => reason,
            other => panic!("expected goodbye, got {other:?}"),
        }
    }

    fn expect_result(&mut self) -> TaskResult {
        match self.recv_skipping_heartbeats() {
            FromManager::Results { mut results } if results.len() == 1 => results.remove(0),
            other => panic!("expected one result, got {other:?}"),
        }
    }
}

/// A `pool-manager` process in its own process group, killed on drop; its
/// log is printed if the test fails.
struct ManagerProcess {
    daemon: Daemon,
}

impl ManagerProcess {
    fn start(dir: &Path, interchange: &str, extra: &[&str]) -> Self {
        let launch = Launch::new("pool-manager", env!("CARGO_BIN_EXE_pool-manager"))
            .args(["--interchange", interchange, "--insecure", "--run-dir"])
            .args([dir.join("run")])
            .args(extra)
            .env("RUST_LOG", "debug");
        Self {
            daemon: Daemon::spawn(dir, launch),
        }
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    fn wait(&mut self) -> i32 {
        let status = self.daemon.wait_exit(WAIT);
        status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {status:?}"))
    }

    fn log_text(&self) -> String {
        self.daemon.log()
    }

    /// Waits (bounded) for the process to exit with `code`, then checks
    /// that its log says each of `fragments`.
    fn assert_exit(&mut self, code: i32, fragments: &[&str]) {
        assert_eq!(self.wait(), code, "log:\n{}", self.log_text());
        let log = self.log_text();
        for fragment in fragments {
            assert!(
                log.contains(fragment),
                "{fragment:?} is not in the log:\n{log}"
            );
        }
    }
}

impl Drop for ManagerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- pool-manager log ----\n{}---- end ----",
                self.log_text()
            );
        }
    }
}

/// A scripted interchange and a manager connected to it with `extra`
/// flags, in a fresh temporary directory.
fn start_with_interchange(extra: &[&str]) -> (tempfile::TempDir, Interchange, ManagerProcess) {
    let temp = tempfile::tempdir().expect("tempdir");
    let interchange = Interchange::bind();
    let manager = ManagerProcess::start(temp.path(), &interchange.endpoint, extra);
    (temp, interchange, manager)
}

/// Fails unless `result` has the error `kind` with exactly `message`.
fn assert_error(result: &TaskResult, kind: ErrorKind, message: &str) {
    let error = result.error.as_ref().expect("error");
    assert_eq!((error.kind, error.message.as_str()), (kind, message));
}

/// A task placed on `placement` (node index, slots), in that order.
fn dispatch(
    task_id: TaskId,
    command: &str,
    request: ResourceRequest,
    placement: &[(u32, u32)],
) -> TaskDispatch {
    TaskDispatch::new(
        task_id,
        command,
        protocol::validate(&request).expect("valid spec"),
        placement
            .iter()
            .map(|&(node, slots)| protocol::NodeShare { node, slots })
            .collect(),
    )
}

#[test]
fn runs_a_two_node_task_with_the_parsl_environment() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut interchange = Interchange::bind();
    let manager_id = ManagerId::from_u128(0x1234);
    let mut manager = ManagerProcess::start(
        temp.path(),
        &interchange.endpoint,
        &[
            "--nodes",
            "n1,n2,n3",
            "--block-id",
            "blk-9",
            "--manager-id",
            &manager_id.to_string(),
            "--launcher",
            "srun",
            "--heartbeat-period",
            "0.2",
            "--slots-per-node",
            "3",
        ],
    );
    let registration = interchange.accept();
    assert_eq!(registration.nodes, vec!["n1", "n2", "n3"]);
    assert_eq!(registration.slots_per_node, Some(3));
    assert_eq!(registration.manager_id, manager_id);
    assert_eq!(registration.block_id, "blk-9");
    assert_eq!(registration.launcher, protocol::Launcher::Srun);
    assert_eq!(registration.protocol_version, protocol::PROTOCOL_VERSION);
    assert!(registration.versions.contains_key("libzmq"));

    let task_id = TaskId::from_u128(0xabcd);
    let mut task = dispatch(
        task_id,
        "env | grep -E '^(PARSL_|RHTEX_TASK_ID=|EXTRA=)' | sort; exit 0",
        ResourceRequest::new()
            .with("num_nodes", 2)
            .with("ranks_per_node", 3)
            .with("launcher_options", "--exclusive"),
        &[(0, 3), (1, 3)],
    );
    task.env.insert("EXTRA".into(), "yes".into());
    interchange.send(&ToManager::RunTasks { tasks: vec![task] });
    let result = interchange.expect_result();
    assert_eq!(result.task_id, task_id);
    assert_eq!(result.state, TaskState::Completed, "{result:?}");
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(result.nodes, vec!["n1", "n2"]);
    assert_eq!(result.manager_id, Some(manager_id));
    assert_eq!(result.block_id.as_deref(), Some("blk-9"));
    let expected = [
        "EXTRA=yes".to_string(),
        "PARSL_APRUN_PREFIX=aprun -n 6 -N 3 -node-list n1,n2 --exclusive".into(),
        "PARSL_LAUNCHER_OPTIONS=--exclusive".into(),
        "PARSL_MPIEXEC_PREFIX=mpiexec -n 6 -ppn 3 -hosts n1,n2 --exclusive".into(),
        "PARSL_MPI_NODELIST=n1,n2".into(),
        "PARSL_MPI_PREFIX=srun --ntasks 6 --ntasks-per-node 3 --nodelist n1,n2 --nodes 2 --exclusive"
            .into(),
        "PARSL_NUM_NODES=2".into(),
        "PARSL_NUM_RANKS=6".into(),
        "PARSL_RANKS_PER_NODE=3".into(),
        "PARSL_SRUN_PREFIX=srun --ntasks 6 --ntasks-per-node 3 --nodelist n1,n2 --nodes 2 --exclusive"
            .into(),
        "PARSL_WORKER_BLOCK_ID=blk-9".into(),
        format!("PARSL_WORKER_POOL_ID={manager_id}"),
        format!("RHTEX_TASK_ID={task_id}"),
    ];
    let stdout = String::from_utf8_lossy(&result.stdout_tail).into_owned();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "stdout tail");
    let stdout_path = result.stdout_path.expect("stdout path");
    assert!(
        stdout_path.ends_with(&format!("run/tasks/{task_id}.stdout")),
        "{stdout_path}"
    );
    assert_eq!(
        std::fs::read_to_string(&stdout_path).expect("stdout file"),
        stdout
    );

    // A failing task, then a clean shutdown.
    let failing = TaskId::from_u128(0xabce);
    let result = interchange.run(dispatch(
        failing,
        "echo bad >&2; exit 7",
        ResourceRequest::new().with("num_nodes", 3),
        &[(0, 3), (1, 3), (2, 3)],
    ));
    assert_eq!(
        (result.task_id, result.state, result.exit_code),
        (failing, TaskState::Failed, Some(7))
    );
    assert_eq!(
        result.nodes,
        vec!["n1", "n2", "n3"],
        "nodes were returned after the first task"
    );
    assert_eq!(result.stderr_tail, b"bad\n");
    assert_error(&result, ErrorKind::ExitCode, "exited with code 7");

    let reason = interchange.shut_down();
    assert!(reason.contains("test over"), "{reason}");
    manager.assert_exit(0, &["block nodes", "n1,n2,n3"]);
}

#[test]
fn task_input_and_output_travel_as_bytes_through_files_that_are_removed() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut interchange = Interchange::bind();
    let _manager = ManagerProcess::start(
        temp.path(),
        &interchange.endpoint,
        &[
            "--nodes",
            "n1",
            "--slots-per-node",
            "1",
            "--heartbeat-period",
            "0.2",
        ],
    );
    interchange.accept_with_output_limit(1000);
    let tasks_dir = temp.path().join("run/tasks");

    // Every byte value, so nothing may be read as text on the way.
    let input: Vec<u8> = (0..=255u8).collect();
    let round_trip = TaskId::from_u128(0x1);
    let mut task = dispatch(
        round_trip,
        "test -r \"$RHTEX_TASK_INPUT\" && cat \"$RHTEX_TASK_INPUT\" \"$RHTEX_TASK_INPUT\" > \"$RHTEX_TASK_OUTPUT\"; \
         echo \"$RHTEX_TASK_INPUT\"; echo \"$RHTEX_TASK_OUTPUT\"",
        ResourceRequest::new(),
        &[(0, 1)],
    );
    task.input = Some(input.clone());
    interchange.send(&ToManager::RunTasks { tasks: vec![task] });
    let result = interchange.expect_result();
    assert_eq!(result.state, TaskState::Completed, "{result:?}");
    assert_eq!(result.output, Some([input.clone(), input].concat()));
    let input_path = tasks_dir.join(format!("{round_trip}.input"));
    let output_path = tasks_dir.join(format!("{round_trip}.output"));
    assert_eq!(
        String::from_utf8_lossy(&result.stdout_tail),
        format!("{}\n{}\n", input_path.display(), output_path.display()),
        "the variables name the files under the run directory"
    );
    assert!(!input_path.exists(), "the input file is removed");
    assert!(!output_path.exists(), "the output file is removed");

    // No input: no RHTEX_TASK_INPUT, and no output file means no output.
    let serial = |number: u128, command: &str| {
        let task_id = TaskId::from_u128(number);
        (
            task_id,
            dispatch(task_id, command, ResourceRequest::new(), &[(0, 1)]),
        )
    };
    let (_, task) = serial(0x2, "echo \"[${RHTEX_TASK_INPUT-unset}]\"");
    interchange.send(&ToManager::RunTasks { tasks: vec![task] });
    let result = interchange.expect_result();
    assert_eq!(result.state, TaskState::Completed, "{result:?}");
    assert_eq!(result.stdout_tail, b"[unset]\n");
    assert_eq!(result.output, None);

    // An output past the limit from `registered` fails the task.
    let (too_large, task) = serial(0x3, "head -c 5000 /dev/zero > \"$RHTEX_TASK_OUTPUT\"");
    interchange.send(&ToManager::RunTasks { tasks: vec![task] });
    let result = interchange.expect_result();
    assert_eq!(
        (result.state, result.exit_code, result.output),
        (TaskState::Failed, Some(0), None)
    );
    let error = result.error.expect("error");
    assert_eq!(
        (error.kind, error.message.as_str()),
        (
            ErrorKind::OutputTooLarge,
            "the task's output file has 5000 bytes; max_task_output_bytes is 1000"
        )
    );
    assert!(!tasks_dir.join(format!("{too_large}.output")).exists());
}

#[test]
fn sigterm_kills_the_running_task_group_and_reports_it() {
    let (temp, mut interchange, mut manager) =
        start_with_interchange(&["--nodes", "n1", "--kill-grace", "2"]);
    let slots = interchange.accept().slots_per_node.expect("slots per node");
    let pid_file = temp.path().join("task.pid");
    let task_id = TaskId::from_u128(7);
    let command = format!(
        "echo $$ > {}.tmp && mv {0}.tmp {0}; sleep 1000",
        pid_file.display()
    );
    interchange.send(&ToManager::RunTasks {
        tasks: vec![dispatch(
            task_id,
            &command,
            ResourceRequest::new(),
            &[(0, slots)],
        )],
    });
    // Wait (bounded) until the task has written its pid (= its process group).
    let deadline = Instant::now() + WAIT;
    let group = loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            break Pid::from_raw(text.trim().parse().expect("a pid"));
        }
        assert!(
            Instant::now() < deadline,
            "task did not start; log:\n{}",
            manager.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(killpg(group, None), Ok(()), "the task's group is alive");

    manager.daemon.signal(Signal::SIGTERM);
    let result = interchange.expect_result();
    assert_eq!(result.task_id, task_id);
    assert_eq!(result.state, TaskState::Failed);
    assert_eq!(
        result.error.map(|error| error.kind),
        Some(ErrorKind::Killed)
    );
    assert!(matches!(
        interchange.recv_skipping_heartbeats(),
        FromManager::Goodbye { .. }
    ));
    assert_eq!(manager.wait(), 0, "log:\n{}", manager.log_text());
    assert_eq!(
        killpg(group, None),
        Err(nix::errno::Errno::ESRCH),
        "the task's process group is gone"
    );
}

#[test]
fn bad_placements_fail_their_task_and_walltime_kills_the_group() {
    let (_temp, mut interchange, mut manager) = start_with_interchange(&[
        "--nodes",
        "n1,n2",
        "--slots-per-node",
        "4",
        "--kill-grace",
        "5",
    ]);
    assert_eq!(interchange.accept().slots_per_node, Some(4));
    // A placement on a node the manager does not have fails that task only.
    let bad = TaskId::from_u128(1);
    let result = interchange.run(dispatch(bad, "true", ResourceRequest::new(), &[(5, 4)]));
    assert_eq!((result.task_id, result.state), (bad, TaskState::Failed));
    let error = result.error.expect("error");
    assert_eq!(error.kind, ErrorKind::LaunchFailed);
    assert!(
        error
            .message
            .contains("names node 5, but this manager has only 2 node(s)"),
        "{}",
        error.message
    );
    // A task that outlives its walltime is terminated (SIGTERM, well
    // before the kill grace would escalate) and reported as such; its node
    // is then free for the next task.
    let slow = TaskId::from_u128(2);
    let result = interchange.run(dispatch(
        slow,
        "sleep 30",
        ResourceRequest::new().with("walltime", protocol::SpecValue::Float(0.5)),
        &[(1, 4)],
    ));
    assert_eq!((result.task_id, result.state), (slow, TaskState::Failed));
    assert_eq!((result.exit_code, result.signal), (None, Some(15)));
    assert_eq!(result.nodes, vec!["n2"]);
    assert_error(
        &result,
        ErrorKind::WalltimeExceeded,
        "killed after running longer than its walltime of 0.5 s",
    );
    let next = TaskId::from_u128(3);
    let result = interchange.run(dispatch(
        next,
        "echo again",
        ResourceRequest::new(),
        &[(1, 4)],
    ));
    assert_eq!((result.task_id, result.state), (next, TaskState::Completed));
    assert_eq!(result.stdout_tail, b"again\n");
    interchange.shut_down();
    assert_eq!(manager.wait(), 0, "log:\n{}", manager.log_text());
}

#[test]
fn refused_registration_exits_3() {
    let (_temp, mut interchange, mut manager) = start_with_interchange(&["--nodes", "n1"]);
    interchange.expect_register();
    interchange.send(&ToManager::Refused {
        reason: "protocol version 1 is not 2".into(),
        protocol_version: 2,
    });
    manager.assert_exit(3, &["refused this manager"]);
}

#[test]
fn silent_interchange_exits_4() {
    let (_temp, mut interchange, mut manager) = start_with_interchange(&[
        "--nodes",
        "n1",
        "--heartbeat-period",
        "0.1",
        "--heartbeat-threshold",
        "1",
    ]);
    interchange.expect_register();
    manager.assert_exit(4, &[&interchange.endpoint, "--heartbeat-threshold"]);
}

#[test]
fn node_discovery_failure_exits_2() {
    let temp = tempfile::tempdir().expect("tempdir");
    let missing = temp.path().join("no-such-nodefile");
    let mut manager = ManagerProcess::start(
        temp.path(),
        "tcp://127.0.0.1:9",
        &["--nodefile", missing.to_str().expect("utf-8 path")],
    );
    manager.assert_exit(2, &["cannot read node file", "no-such-nodefile"]);
}

#[test]
fn a_node_file_line_that_is_not_a_host_name_exits_2_naming_file_and_line() {
    let temp = tempfile::tempdir().expect("tempdir");
    let nodefile = temp.path().join("nodes");
    std::fs::write(&nodefile, "g0\ng1 --evil-flag\n").expect("write the node file");
    let mut manager = ManagerProcess::start(
        temp.path(),
        "tcp://127.0.0.1:9",
        &["--nodefile", nodefile.to_str().expect("utf-8 path")],
    );
    let expected = format!(
        "node file {}, line 2: node name \"g1 --evil-flag\" is not a host name",
        nodefile.display()
    );
    manager.assert_exit(2, &[&expected]);
}

#[test]
fn duplicate_nodes_exit_2_naming_the_duplicate() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut manager =
        ManagerProcess::start(temp.path(), "tcp://127.0.0.1:9", &["--nodes", "d1,d1,d1"]);
    manager.assert_exit(2, &["--nodes: node name \"d1\" is listed more than once"]);
}
