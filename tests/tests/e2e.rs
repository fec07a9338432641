//! End-to-end tests of rhtex: the real `interchange`, `pool-manager` and
//! `rhtex` binaries on 127.0.0.1, CURVE on unless a test is about something
//! else. Build the binaries first: `cargo build --workspace --bins`.
//!
//! Every test has its own scenario directory (logs, keys, run directories),
//! bounds every wait by [`WAIT`] and kills what it started by process group.

use e2e::cli::{self, connect_flags, json_objects, json_strings, strings};
use e2e::client::{
    assert_completed, assert_error_kind, pid_then_sleep, raw_dealer, raw_manager_dealer,
    receive_frame, stdout_of, task_with, wait_pid_file,
};
use e2e::daemon::describe;
use e2e::{
    mpi_sources_dir, task, wait_for, ManagerOptions, Pool, RawClient, Scenario, Security, WAIT,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use protocol::{
    ErrorKind, Launcher, ManagerId, ResourceRequest, TaskId, TaskResult, TaskState, ToManager,
    PROTOCOL_VERSION,
};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn with_nodes(mut submission: protocol::TaskSubmission, n_nodes: u32) -> protocol::TaskSubmission {
    submission.resources = ResourceRequest::new().with("num_nodes", n_nodes);
    submission
}

/// A command that waits (polling, bounded) until `path` exists.
fn hold_until(path: &Path) -> String {
    format!(
        "for attempt in $(seq 1500); do [ -e '{}' ] && exit 0; sleep 0.02; done; \
         echo 'never released' >&2; exit 1",
        path.display()
    )
}

/// Starts a pool whose manager is started with `options`, runs a `sleep 60`
/// task on it and waits until the task's process is up: the pool, the task
/// and its process group (adopted by the scenario for clean-up).
fn start_sleeping_task(scenario: &Scenario, options: ManagerOptions) -> (Pool, TaskId, i32) {
    let (interchange, manager, mut client) = scenario.start_pool(options);
    let pid_file = scenario.file("sleep.pid");
    let task_id = client.submit_one(task(&pid_then_sleep(&pid_file)));
    client.wait_running(task_id);
    let sleep_group = wait_pid_file(&pid_file);
    scenario.adopt_process_group(sleep_group);
    ((interchange, manager, client), task_id, sleep_group)
}

/// Whether a process with this pid still exists (zombies count: the
/// manager must reap what it kills).
fn process_exists(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

/// The white-space separated words of `text`.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

/// The numbers written in a text, as strings ("versions 999 and 1" -> ["999", "1"]).
fn numbers_in(text: &str) -> Vec<String> {
    text.split(|character: char| !character.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------
// Scheduling
// ---------------------------------------------------------------------------

#[test]
fn tasks_only_go_to_managers_with_enough_nodes() {
    let scenario = Scenario::new("placement");
    let interchange = scenario.start_secure_interchange(&[]);
    let big = scenario.start_manager(
        &interchange,
        ManagerOptions::new("big", &["a1", "a2", "a3", "a4"]),
    );
    let small = scenario.start_manager(&interchange, ManagerOptions::new("small", &["b1", "b2"]));
    let mut client = RawClient::connect(&interchange);
    let report = client.wait_managers(&[big.manager_id, small.manager_id]);
    for (manager, n_nodes) in [(&big, 4), (&small, 2)] {
        let info = report
            .managers
            .iter()
            .find(|info| info.manager_id == manager.manager_id)
            .expect("registered manager in status");
        assert_eq!(info.n_nodes, n_nodes, "{info:#?}");
        assert_eq!(info.block_id, manager.block_id, "{info:#?}");
    }

    // A 4-node task can only run on the 4-node manager.
    let four = client.submit_one(with_nodes(task("echo $PARSL_MPI_NODELIST"), 4));
    let result = client.wait_result(four, WAIT);
    assert_completed(&result);
    assert_eq!(result.manager_id, Some(big.manager_id), "{result:#?}");
    assert_eq!(
        sorted(result.nodes.clone()),
        strings(&["a1", "a2", "a3", "a4"])
    );
    assert_eq!(
        sorted(
            stdout_of(&result)
                .trim()
                .split(',')
                .map(str::to_owned)
                .collect()
        ),
        strings(&["a1", "a2", "a3", "a4"])
    );

    // Keep the big manager busy; a 3-node task must then wait, even though
    // the small manager is idle, and run on the big one once it is free.
    let release = scenario.file("release-busy");
    let busy = client.submit_one(with_nodes(task(&hold_until(&release)), 4));
    let busy_info = client.wait_running(busy);
    assert_eq!(busy_info.manager_id, Some(big.manager_id), "{busy_info:#?}");
    let three = client.submit_one(with_nodes(task("echo three"), 3));
    let three_info = client.task_status(three);
    assert_eq!(three_info.state, TaskState::Queued, "{three_info:#?}");

    // A 2-node task submitted after it runs on the small manager at once...
    let two = client.submit_one(with_nodes(task("echo two"), 2));
    let two_result = client.wait_result(two, WAIT);
    assert_completed(&two_result);
    assert_eq!(
        two_result.manager_id,
        Some(small.manager_id),
        "{two_result:#?}"
    );
    assert_eq!(sorted(two_result.nodes.clone()), strings(&["b1", "b2"]));
    // ...while the 3-node task still waits, with a reason.
    let three_info = client.task_status(three);
    assert_eq!(three_info.state, TaskState::Queued, "{three_info:#?}");
    assert!(
        three_info.waiting_reason.is_some(),
        "a queued task says why it waits: {three_info:#?}"
    );
    let report = client.status();
    assert!(
        report
            .waiting
            .iter()
            .any(|group| group.num_nodes == 3 && group.n_tasks == 1),
        "status groups the waiting 3-node task: {:#?}",
        report.waiting
    );
    assert!(
        !client.has_result(three),
        "the 3-node task must not have run"
    );

    std::fs::write(&release, b"go").expect("write the release file");
    let busy_result = client.wait_result(busy, WAIT);
    assert_completed(&busy_result);
    let three_result = client.wait_result(three, WAIT);
    assert_completed(&three_result);
    assert_eq!(
        three_result.manager_id,
        Some(big.manager_id),
        "{three_result:#?}"
    );
    assert_eq!(three_result.nodes.len(), 3, "{three_result:#?}");
    for node in &three_result.nodes {
        assert!(
            big.nodes.contains(node),
            "{node} is not a node of the big manager"
        );
    }
}

// ---------------------------------------------------------------------------
// The task environment and launchers
// ---------------------------------------------------------------------------

#[test]
fn tasks_see_exact_parsl_environment_and_nothing_from_earlier_tasks() {
    let scenario = Scenario::new("environment");
    let mut options = ManagerOptions::new("env", &["n1", "n2", "n3"]).launcher(Launcher::Srun);
    options.block_id = "block-7".to_owned();
    let (_interchange, manager, mut client) = scenario.start_pool(options);

    let mut first = task("env | grep ^PARSL_ | sort; echo \"OWN=${RHTEX_E2E_OWN-unset}\"");
    first.resources = ResourceRequest::new()
        .with("num_nodes", 2)
        .with("ranks_per_node", 3)
        .with("launcher_options", "-x Y");
    first.env = BTreeMap::from([("RHTEX_E2E_OWN".to_owned(), "first".to_owned())]);
    let first_id = client.submit_one(first);
    let result = client.wait_result(first_id, WAIT);
    assert_completed(&result);
    assert_eq!(result.nodes.len(), 2, "{result:#?}");
    for node in &result.nodes {
        assert!(
            manager.nodes.contains(node),
            "{node} is not a node of the block"
        );
    }
    let hosts = result.nodes.join(",");
    let pool_id = manager.manager_id.to_string();
    let expected: BTreeMap<&str, String> = BTreeMap::from([
        ("PARSL_NUM_NODES", "2".to_owned()),
        ("PARSL_RANKS_PER_NODE", "3".to_owned()),
        ("PARSL_NUM_RANKS", "6".to_owned()),
        ("PARSL_LAUNCHER_OPTIONS", "-x Y".to_owned()),
        ("PARSL_MPI_NODELIST", hosts.clone()),
        ("PARSL_WORKER_POOL_ID", pool_id),
        ("PARSL_WORKER_BLOCK_ID", "block-7".to_owned()),
        (
            "PARSL_MPIEXEC_PREFIX",
            format!("mpiexec -n 6 -ppn 3 -hosts {hosts} -x Y"),
        ),
        (
            "PARSL_SRUN_PREFIX",
            format!("srun --ntasks 6 --ntasks-per-node 3 --nodelist {hosts} --nodes 2 -x Y"),
        ),
        (
            "PARSL_APRUN_PREFIX",
            format!("aprun -n 6 -N 3 -node-list {hosts} -x Y"),
        ),
        (
            "PARSL_MPI_PREFIX",
            format!("srun --ntasks 6 --ntasks-per-node 3 --nodelist {hosts} --nodes 2 -x Y"),
        ),
    ]);
    // Parsl also documents these two; anything else is unexpected.
    let also_allowed = ["PARSL_WORKER_RANK", "PARSL_WORKER_COUNT"];
    let output = stdout_of(&result);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for line in output.lines().filter(|line| line.starts_with("PARSL_")) {
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("env line without '=': {line:?}"));
        seen.insert(key.to_owned(), value.to_owned());
    }
    for (key, value) in &expected {
        assert_eq!(
            seen.get(*key),
            Some(value),
            "{key} (exact, no trailing space); the task printed:\n{output}"
        );
    }
    for key in seen.keys() {
        assert!(
            expected.contains_key(key.as_str()) || also_allowed.contains(&key.as_str()),
            "unexpected variable {key}; the task printed:\n{output}"
        );
    }
    assert!(
        output.contains("OWN=first\n"),
        "the task's own env: {output}"
    );

    // A later task gets a fresh environment: nothing of the first task's.
    let second = task("env | grep -E '^(PARSL_|RHTEX_E2E_OWN)' | sort; echo end");
    let second_id = client.submit_one(second);
    let second_result = client.wait_result(second_id, WAIT);
    assert_completed(&second_result);
    let second_output = stdout_of(&second_result);
    assert!(
        !second_output.contains("RHTEX_E2E_OWN"),
        "the first task's env leaked into the second:\n{second_output}"
    );
    assert!(
        !second_output.contains("-x Y"),
        "the first task's launcher options leaked into the second:\n{second_output}"
    );
    assert!(
        second_output
            .lines()
            .any(|line| line == "PARSL_NUM_NODES=1"),
        "the second task's own spec:\n{second_output}"
    );
    for line in second_output.lines() {
        assert_eq!(line, line.trim_end(), "no trailing space in {line:?}");
    }
}

#[test]
fn real_mpiexec_runs_two_ranks_on_localhost() {
    let scenario = Scenario::new("mpiexec");
    let program = scenario.file("mpi-hello");
    let source = mpi_sources_dir().join("hello.c");
    let compile_args = [source.as_os_str(), "-o".as_ref(), program.as_os_str()];
    let mut compile = scenario.spawn(scenario.launch("mpicc", "mpicc").args(compile_args));
    let compiled = compile.wait_exit(WAIT);
    assert!(
        compiled.success(),
        "mpicc: {}\n{}",
        describe(compiled),
        compile.log()
    );

    let (_interchange, _manager, mut client) = scenario.start_pool(
        ManagerOptions::new("mpi", &["localhost"])
            .launcher(Launcher::Mpiexec)
            .without_fakes(),
    );
    let hello = format!("$PARSL_MPI_PREFIX '{}'", program.display());
    let hello_id = client.submit_one(task_with(&hello, request(1, 2, true)));
    let result = client.wait_result(hello_id, WAIT);
    assert_completed(&result);
    assert_eq!(result.nodes, strings(&["localhost"]));
    let output = stdout_of(&result);
    let mut lines: Vec<&str> = output
        .lines()
        .filter(|line| line.starts_with("rhtex-mpi-hello"))
        .collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["rhtex-mpi-hello rank 0 of 2", "rhtex-mpi-hello rank 1 of 2"],
        "output:\n{output}"
    );
}

#[test]
fn fake_srun_and_aprun_receive_the_exact_prefix() {
    let scenario = Scenario::new("launchers");
    let keys = scenario.keygen("keys");
    for launcher in [Launcher::Srun, Launcher::Aprun] {
        let interchange = scenario.start_interchange(
            &format!("interchange-{launcher}"),
            &Security::Curve(keys.clone()),
            &[],
        );
        let options = ManagerOptions::new(&format!("manager-{launcher}"), &["x1", "x2", "x3"]);
        let (manager, mut client) =
            scenario.start_manager_with_client(&interchange, options.launcher(launcher));
        let marker = format!("launched-by-{launcher}");
        let echo = format!("$PARSL_MPI_PREFIX /bin/echo {marker}");
        let result = client.run_one(task_with(&echo, request(3, 2, true)));
        assert_completed(&result);
        assert_eq!(sorted(result.nodes.clone()), strings(&["x1", "x2", "x3"]));
        assert!(stdout_of(&result).contains(&marker), "{result:#?}");
        let hosts = result.nodes.join(",");
        let mut expected: Vec<String> = match launcher {
            Launcher::Srun => strings(&[
                "srun",
                "--ntasks",
                "6",
                "--ntasks-per-node",
                "2",
                "--nodelist",
                &hosts,
                "--nodes",
                "3",
            ]),
            Launcher::Aprun => strings(&["aprun", "-n", "6", "-N", "2", "-node-list", &hosts]),
            Launcher::Mpiexec => unreachable!("not in this loop"),
        };
        expected.extend(strings(&["/bin/echo", &marker]));
        assert_eq!(manager.launcher_calls(), vec![expected], "{launcher}");
    }
}

// ---------------------------------------------------------------------------
// Failures of peers
// ---------------------------------------------------------------------------

#[test]
fn sigkill_of_a_manager_fails_its_task_as_manager_lost() {
    let scenario = Scenario::new("manager-lost");
    let ((_interchange, mut manager, mut client), task_id, _) =
        start_sleeping_task(&scenario, ManagerOptions::new("doomed", &["k1"]));

    let killed = manager.daemon.kill_group();
    assert_eq!(describe(killed), "signal 9");
    let result = client.wait_result(task_id, WAIT);
    assert_eq!(result.state, TaskState::Failed, "{result:#?}");
    let error = result.error.clone().expect("a failed result has an error");
    assert_eq!(error.kind, ErrorKind::ManagerLost, "{result:#?}");
    assert!(
        error.message.contains(&manager.manager_id.to_string()),
        "the message names the lost manager: {error:?}"
    );
    client.wait_status("the lost manager to leave status", WAIT, |report| {
        (!report
            .managers
            .iter()
            .any(|info| info.manager_id == manager.manager_id))
        .then_some(())
    });
}

/// A dispatch to a manager that died (kill -9) cannot be delivered: the
/// task goes back to the queue at once and runs on the other manager, long
/// before the heartbeat threshold (10 minutes here) would notice.
#[test]
fn a_task_sent_to_a_dead_manager_runs_on_another_at_once() {
    let scenario = Scenario::new("black-hole");
    let interchange = scenario.start_secure_interchange(&[
        "--heartbeat-period",
        "300",
        "--heartbeat-threshold",
        "600",
    ]);
    // A one-node task goes to the best fit: the one-node manager.
    let mut dead = scenario.start_manager(&interchange, ManagerOptions::new("dead", &["d1"]));
    // The interchange heartbeats rarely here: the live manager must not
    // give up on it meanwhile.
    let mut options = ManagerOptions::new("alive", &["a1", "a2"]);
    options.extra_args = strings(&["--heartbeat-threshold", "600"]);
    let alive = scenario.start_manager(&interchange, options);
    let mut client = RawClient::connect(&interchange);
    client.wait_managers(&[dead.manager_id, alive.manager_id]);
    let killed = dead.daemon.kill_group();
    assert_eq!(describe(killed), "signal 9");

    let started = std::time::Instant::now();
    let result = client.run_one(task("echo ran"));
    assert_completed(&result);
    assert_eq!(result.manager_id, Some(alive.manager_id), "{result:#?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "far below the heartbeat threshold: {:?}",
        started.elapsed()
    );
    let log = interchange.daemon.log();
    assert!(
        log.contains("its dispatch could not be delivered"),
        "the interchange took the task back:\n{log}"
    );
}

#[test]
fn a_manager_dropped_for_silence_registers_again_and_its_task_is_killed() {
    let scenario = Scenario::new("dropped-manager");
    // The manager itself would wait 10 minutes before giving up on the
    // interchange: what makes it act below is the interchange's answer.
    let mut options = ManagerOptions::new("frozen", &["f1"]);
    options.extra_args = strings(&["--heartbeat-threshold", "600"]);
    let ((_interchange, mut manager, mut client), task_id, sleep_group) =
        start_sleeping_task(&scenario, options);

    // Freeze the manager process (not its task) until the interchange
    // drops it and fails its task.
    manager.daemon.signal(Signal::SIGSTOP);
    let result = client.wait_result(task_id, WAIT);
    assert_error_kind(&result, ErrorKind::ManagerLost);
    // Thawed, it heartbeats again; the interchange tells it that it is not
    // registered; it registers again listing its task, which the
    // interchange no longer has running there: the task is killed, and the
    // manager stays, with its node free, instead of idling on its
    // allocation with a task nobody waits for.
    manager.daemon.signal(Signal::SIGCONT);
    wait_for("the dropped manager's task to be killed", WAIT, || {
        (!process_exists(sleep_group)).then_some(())
    });
    let log = manager.daemon.log();
    assert!(
        log.contains("the interchange does not know this manager; registering again"),
        "the manager says why it registers again:\n{log}"
    );
    client.wait_manager_idle(
        "the manager back, running nothing",
        manager.manager_id,
        WAIT,
    );
    assert!(manager.daemon.try_exit().is_none(), "the manager exited");
    // Nothing is reported twice: the task keeps its manager_lost result.
    assert_eq!(client.task_status(task_id).result, Some(result));
}

#[test]
fn garbage_bytes_do_not_stop_the_interchange() {
    let scenario = Scenario::new("garbage");
    let mut interchange = scenario.start_interchange("interchange", &Security::Insecure, &[]);
    let garbage: Vec<Vec<u8>> = vec![
        b"\xff\xfe\xfd not msgpack at all".to_vec(),
        Vec::new(),
        protocol::encode(&serde_json::json!({"type": "launch_missiles", "protocol_version": 1})),
        protocol::encode(&serde_json::json!([1, 2, 3])),
        vec![0x81, 0xa4, b't', b'y', b'p', b'e'],
    ];
    let client_garbage = raw_dealer(&interchange.client_url, &Security::Insecure);
    let manager_garbage = raw_dealer(&interchange.manager_connect_url, &Security::Insecure);
    for socket in [&client_garbage, &manager_garbage] {
        for frame in &garbage {
            socket.send(frame.as_slice(), 0).expect("send garbage");
        }
        socket
            .send_multipart([b"two".to_vec(), b"frames".to_vec()], 0)
            .expect("send a two-frame message");
    }
    // A results message from a manager that never registered.
    manager_garbage
        .send(
            protocol::encode(&protocol::FromManager::Results {
                results: vec![TaskResult::failed_before_start(
                    TaskId::new_random(),
                    ErrorKind::ExitCode,
                    "never submitted".into(),
                )],
            }),
            0,
        )
        .expect("send unexpected results");

    let manager = scenario.start_manager(
        &interchange,
        ManagerOptions::new("survivor", &["g1"]).security(Security::Insecure),
    );
    let mut client = RawClient::connect(&interchange);
    client.wait_managers(&[manager.manager_id]);
    let result = client.run_one(task("echo still-alive"));
    assert_completed(&result);
    assert_eq!(stdout_of(&result), "still-alive\n");
    let n_bad = client.wait_status("bad messages to be counted", WAIT, |report| {
        (report.n_bad_messages > 0).then_some(report.n_bad_messages)
    });
    assert!(n_bad > 0);
    assert!(
        interchange.daemon.try_exit().is_none(),
        "the interchange is still running"
    );
}

#[test]
fn manager_of_another_protocol_version_is_refused_and_others_keep_working() {
    let scenario = Scenario::new("version");
    let (interchange, manager, mut client) =
        scenario.start_pool(ManagerOptions::new("current", &["v1"]));

    let future_id = ManagerId::new_random();
    let future = raw_manager_dealer(&interchange.manager_connect_url, &interchange.security);
    let register = serde_json::json!({
        "type": "register",
        "protocol_version": 999,
        "manager_id": future_id.to_string(),
        "block_id": "block-future",
        "hostname": "future-host",
        "nodes": ["f1", "f2"],
        "launcher": "srun",
        "rhtex_version": "99.0.0",
        "something_new": {"shape": "unknown to version 1"},
    });
    future
        .send(protocol::encode(&register), 0)
        .expect("send register");
    let frame = receive_frame(&future, WAIT).expect("an answer to register within the timeout");
    let answer: ToManager = protocol::decode(&frame).expect("the answer decodes");
    match answer {
        ToManager::Refused {
            reason,
            protocol_version,
        } => {
            assert_eq!(protocol_version, PROTOCOL_VERSION);
            let numbers = numbers_in(&reason);
            assert!(
                numbers.contains(&"999".to_owned())
                    && numbers.contains(&PROTOCOL_VERSION.to_string()),
                "the reason names both versions: {reason:?}"
            );
        }
        other => panic!("expected refused, got {other:?}"),
    }
    let report = client.status();
    assert!(
        !report
            .managers
            .iter()
            .any(|info| info.manager_id == future_id),
        "the refused manager is not registered: {report:#?}"
    );
    let result = client.run_one(task("echo after-refusal"));
    assert_completed(&result);
    assert_eq!(result.manager_id, Some(manager.manager_id));
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

#[test]
fn manager_with_an_unknown_key_cannot_register() {
    let scenario = Scenario::new("unknown-key");
    let interchange = scenario.start_secure_interchange(&[]);
    let Security::Curve(known) = interchange.security.clone() else {
        panic!("secure interchange expected");
    };
    let unknown = scenario.unknown_client_keys(&known, "unknown-keys");
    let mode = std::fs::metadata(&unknown)
        .expect("stat the key dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let mut stranger = scenario.start_manager(
        &interchange,
        ManagerOptions::new("stranger", &["u1"]).security(Security::Curve(unknown)),
    );
    let status = stranger.daemon.wait_exit(WAIT);
    let log = stranger.daemon.log();
    assert_eq!(
        status.code(),
        Some(3),
        "a refused manager exits 3, got {}; log:\n{log}",
        describe(status)
    );
    let lowered = log.to_lowercase();
    assert!(
        lowered.contains("key")
            && ["refus", "reject", "denied", "unknown", "not admitted"]
                .iter()
                .any(|word| lowered.contains(word)),
        "the manager says its key was refused; log:\n{log}"
    );
    let mut client = RawClient::connect(&interchange);
    let report = client.status();
    assert!(
        !report
            .managers
            .iter()
            .any(|info| info.manager_id == stranger.manager_id),
        "{report:#?}"
    );
}

#[test]
fn interchange_refuses_a_key_directory_others_can_read() {
    let scenario = Scenario::new("open-keys");
    let keys = scenario.keygen("keys");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    let mut interchange = scenario.spawn_interchange(
        "interchange",
        &strings(&[
            "--keys-dir",
            &keys.display().to_string(),
            "--run-dir",
            &scenario.file("interchange-run").display().to_string(),
            "--client-listen",
            "tcp://127.0.0.1:0",
            "--manager-listen",
            "tcp://127.0.0.1:0",
        ]),
    );
    let status = interchange.wait_exit(WAIT);
    let log = interchange.log();
    assert!(
        !status.success() && status.code().is_some(),
        "the interchange must exit with an error, got {}; log:\n{log}",
        describe(status)
    );
    assert!(
        log.contains("chmod 700"),
        "the message says what to do:\n{log}"
    );
    assert_eq!(
        interchange.stdout_text(),
        "",
        "no ready line when it refuses to start"
    );
}

// ---------------------------------------------------------------------------
// The rhtex command line
// ---------------------------------------------------------------------------

/// A task file: three tasks, one of which exits 3.
fn write_task_file(scenario: &Scenario) -> std::path::PathBuf {
    let path = scenario.file("tasks.jsonl");
    let lines = [
        serde_json::json!({"command": "echo task-one", "resources": {"num_nodes": 1}}),
        serde_json::json!({"command": "echo task-two"}),
        serde_json::json!({"command": "echo task-three; exit 3", "resources": {"num_nodes": 1}}),
    ];
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(&path, text).expect("write the task file");
    path
}

/// Checks a `rhtex --json run` summary: three tasks, one failed with exit code 3.
fn check_run_summary(output: &cli::CliOutput) {
    assert_ne!(
        output.code(),
        0,
        "one task failed, so rhtex run fails: {output:#?}"
    );
    // The summary is the last line, after one line per task when it was
    // submitted and one when it finished.
    let summary = match output.json() {
        serde_json::Value::Array(mut lines) => lines.pop().unwrap_or_default(),
        single => single,
    };
    let task_ids: std::collections::BTreeSet<TaskId> = json_objects(&summary)
        .into_iter()
        .filter_map(|object| object.get("task_id")?.as_str()?.parse().ok())
        .collect();
    assert_eq!(
        task_ids.len(),
        3,
        "the summary lists every task: {output:#?}"
    );
    let texts = json_strings(&summary);
    for command in ["echo task-one", "echo task-two", "echo task-three; exit 3"] {
        assert!(
            texts.iter().any(|text| text == command),
            "the summary names the task {command:?}: {output:#?}"
        );
    }
    let failed_with_3 = json_objects(&summary)
        .into_iter()
        .filter(|object| object.get("exit_code").and_then(|code| code.as_i64()) == Some(3))
        .count();
    assert_eq!(failed_with_3, 1, "one task exited 3: {output:#?}");
}

#[test]
fn rhtex_run_against_a_running_interchange() {
    let scenario = Scenario::new("run-connected");
    let (interchange, _manager, mut client) =
        scenario.start_pool(ManagerOptions::new("runner", &["r1"]));
    let file = write_task_file(&scenario);
    let mut args = connect_flags(&interchange);
    args.extend([
        "--json".to_owned(),
        "run".to_owned(),
        file.display().to_string(),
    ]);
    let output = cli::run(&scenario, "rhtex-run", &args);
    check_run_summary(&output);
    let report = client.status();
    assert_eq!(
        (report.n_completed, report.n_failed),
        (2, 1),
        "the tasks ran through this interchange: {report:#?}"
    );
}

#[test]
fn rhtex_run_embedded() {
    let scenario = Scenario::new("run-embedded");
    let file = write_task_file(&scenario);
    let args = vec![
        "--json".to_owned(),
        "run".to_owned(),
        file.display().to_string(),
    ];
    let output = cli::run(&scenario, "rhtex-run-embedded", &args);
    check_run_summary(&output);
}

#[test]
fn rhtex_submit_wait_exits_with_the_task_exit_code() {
    let scenario = Scenario::new("submit-wait");
    let (interchange, manager, _client) =
        scenario.start_pool(ManagerOptions::new("waiter", &["w1"]));

    let output = cli::json_status(&scenario, &interchange);
    assert!(
        json_strings(&output.json()).contains(&manager.manager_id.to_string()),
        "rhtex --json status lists the manager: {output:#?}"
    );

    let output = cli::run_connected(
        &scenario,
        &interchange,
        "rhtex-submit-7",
        &["--json", "submit", "--wait", "--", "echo from-cli; exit 7"],
    );
    assert_eq!(output.code(), 7, "{output:#?}");
    let json = output.json();
    assert!(
        json_objects(&json)
            .iter()
            .any(|object| object.get("exit_code").and_then(|code| code.as_i64()) == Some(7)),
        "the JSON result carries the exit code: {output:#?}"
    );

    let output = cli::run_connected(
        &scenario,
        &interchange,
        "rhtex-submit-0",
        &["submit", "--wait", "--", "true"],
    );
    assert_eq!(output.code(), 0, "{output:#?}");
}

#[test]
fn rhtex_cancel_kills_a_running_task() {
    let scenario = Scenario::new("cancel");
    let (interchange, _manager, mut client) =
        scenario.start_pool(ManagerOptions::new("canceller", &["c1"]));

    let pid_file = scenario.file("sleep.pid");
    let output = cli::run_connected(
        &scenario,
        &interchange,
        "rhtex-submit",
        &["--json", "submit", "--", &pid_then_sleep(&pid_file)],
    );
    assert_eq!(output.code(), 0, "{output:#?}");
    let task_ids: Vec<TaskId> = json_strings(&output.json())
        .iter()
        .filter_map(|text| text.parse().ok())
        .collect();
    let task_id = *task_ids
        .first()
        .unwrap_or_else(|| panic!("rhtex --json submit prints the task id: {output:#?}"));
    client.watch(vec![task_id]);
    client.wait_running(task_id);
    let sleep_group = wait_pid_file(&pid_file);
    scenario.adopt_process_group(sleep_group);

    let mut args = connect_flags(&interchange);
    args.extend(["cancel".to_owned(), task_id.to_string()]);
    let output = cli::run(&scenario, "rhtex-cancel", &args);
    assert_eq!(output.code(), 0, "{output:#?}");
    let result = client.wait_result(task_id, WAIT);
    assert_eq!(result.state, TaskState::Cancelled, "{result:#?}");
    assert_error_kind(&result, ErrorKind::Cancelled);
    wait_for("the cancelled task's process to be gone", WAIT, || {
        (!process_exists(sleep_group)).then_some(())
    });
}

#[test]
fn sigterm_to_a_manager_kills_its_task_and_exits_zero() {
    let scenario = Scenario::new("sigterm");
    let ((_interchange, mut manager, mut client), task_id, sleep_group) =
        start_sleeping_task(&scenario, ManagerOptions::new("stopping", &["s1"]));

    manager.daemon.signal(Signal::SIGTERM);
    let result = client.wait_result(task_id, WAIT);
    assert_eq!(result.state, TaskState::Failed, "{result:#?}");
    assert_error_kind(&result, ErrorKind::Killed);
    let status = manager.daemon.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", describe(status));
    wait_for("the killed task's process to be gone", WAIT, || {
        (!process_exists(sleep_group)).then_some(())
    });
}

// ---------------------------------------------------------------------------
// Walltime, packing, and srun steps inside a Slurm block
// ---------------------------------------------------------------------------

/// A resource request of `num_nodes` nodes and `ranks_per_node` ranks,
/// sharing nodes when `exclusive` is false.
fn request(num_nodes: u32, ranks_per_node: u32, exclusive: bool) -> ResourceRequest {
    let mut request = ResourceRequest::new()
        .with("num_nodes", num_nodes)
        .with("ranks_per_node", ranks_per_node);
    if !exclusive {
        request.insert("exclusive", false);
    }
    request
}

/// A command that creates `mine`, then waits (polling, bounded) until
/// `other` exists: it can only succeed if the other task runs at the same
/// time.
fn meet(mine: &Path, other: &Path) -> String {
    format!(
        "touch '{}'; for attempt in $(seq 1500); do [ -e '{}' ] && exit 0; sleep 0.02; done; \
         echo 'the other task never ran at the same time' >&2; exit 1",
        mine.display(),
        other.display()
    )
}

#[test]
fn a_task_past_its_walltime_is_killed_and_its_node_reused() {
    let scenario = Scenario::new("walltime");
    let (_interchange, _manager, mut client) =
        scenario.start_pool(ManagerOptions::new("timed", &["w1"]));

    let walltime = ResourceRequest::new().with("walltime", protocol::SpecValue::Float(1.0));
    let slow_id = client.submit_one(task_with("sleep 30", walltime));
    let result = client.wait_result(slow_id, WAIT);
    assert_eq!(result.state, TaskState::Failed, "{result:#?}");
    let error = result.error.clone().expect("an error");
    assert_eq!(error.kind, ErrorKind::WalltimeExceeded, "{result:#?}");
    assert_eq!(
        error.message, "killed after running longer than its walltime of 1 s",
        "{result:#?}"
    );
    // The result says how the process really ended: SIGTERM from the kill.
    assert_eq!(
        (result.exit_code, result.signal),
        (None, Some(15)),
        "{result:#?}"
    );
    assert_eq!(result.nodes, strings(&["w1"]));

    // The node is free again.
    let next = client.submit_one(task("echo reused"));
    let result = client.wait_result(next, WAIT);
    assert_completed(&result);
    assert_eq!(result.nodes, strings(&["w1"]));
    assert_eq!(stdout_of(&result), "reused\n");
}

#[test]
fn packed_tasks_share_a_node_and_exclusive_ones_never_do() {
    let scenario = Scenario::new("packing");
    let (_interchange, manager, mut client) =
        scenario.start_pool(ManagerOptions::new("packer", &["p1"]).slots_per_node(4));
    let report = client.status();
    let info = report
        .managers
        .iter()
        .find(|info| info.manager_id == manager.manager_id)
        .expect("the manager in status");
    assert_eq!(info.slots_per_node, 4, "{info:#?}");

    // Two 1-node tasks of 2 ranks each that share nodes: both fit on the
    // single 4-slot node at once, and each only completes if the other runs
    // alongside it.
    let (first_file, second_file) = (scenario.file("first-ran"), scenario.file("second-ran"));
    let first = task_with(&meet(&first_file, &second_file), request(1, 2, false));
    let second = task_with(&meet(&second_file, &first_file), request(1, 2, false));
    let (first_id, second_id) = (first.task_id, second.task_id);
    assert_eq!(client.submit(vec![first, second]), 2);
    for task_id in [first_id, second_id] {
        let result = client.wait_result(task_id, WAIT);
        assert_completed(&result);
        assert_eq!(result.nodes, strings(&["p1"]), "{result:#?}");
    }

    // The exclusive default never shares: while an exclusive task holds the
    // node, neither another exclusive task nor a packed one starts there.
    let release = scenario.file("release-exclusive");
    let holder = client.submit_one(task(&hold_until(&release)));
    client.wait_running(holder);
    let whole = client.submit_one(task("echo whole"));
    let small = client.submit_one(task_with("echo small", request(1, 1, false)));
    for waiting in [whole, small] {
        let info = client.task_status(waiting);
        assert_eq!(info.state, TaskState::Queued, "{info:#?}");
        assert!(!client.has_result(waiting), "{info:#?}");
    }
    std::fs::write(&release, b"go").expect("write the release file");
    for task_id in [holder, whole, small] {
        assert_completed(&client.wait_result(task_id, WAIT));
    }
}

#[test]
fn srun_steps_take_their_own_shape_inside_a_slurm_block() {
    let scenario = Scenario::new("slurm-steps");
    // The manager's own environment is a Slurm batch job's, submitted with
    // options that must not reach the task steps.
    let (_interchange, manager, mut client) = scenario.start_pool(
        ManagerOptions::new("block", &["s1", "s2"])
            .launcher(Launcher::Srun)
            .slots_per_node(4)
            .env("SLURM_JOB_ID", "4242")
            .env("SLURM_JOB_NODELIST", "s[1-2]")
            .env("SLURM_JOB_NUM_NODES", "2")
            .env("SLURM_CPUS_PER_TASK", "4")
            .env("SRUN_CPUS_PER_TASK", "4")
            .env("SLURM_NTASKS", "2")
            .env("SLURM_NTASKS_PER_NODE", "1")
            .env("SLURM_MEM_PER_NODE", "1000")
            .env("SLURM_EXPORT_ENV", "NONE"),
    );

    // A whole-node task keeps Parsl's prefix; a packed one claims only its
    // share of its node.
    let whole = task_with("$PARSL_MPI_PREFIX /bin/echo whole", request(2, 2, true));
    let whole_id = client.submit_one(whole);
    let whole_result = client.wait_result(whole_id, WAIT);
    assert_completed(&whole_result);
    let packed = task_with("$PARSL_MPI_PREFIX /bin/echo packed", request(1, 2, false));
    let packed_id = client.submit_one(packed);
    let packed_result = client.wait_result(packed_id, WAIT);
    assert_completed(&packed_result);
    assert_eq!(packed_result.nodes.len(), 1, "{packed_result:#?}");

    let whole_hosts = whole_result.nodes.join(",");
    let packed_host = packed_result.nodes.join(",");
    let expected_whole = words(&format!(
        "srun --ntasks 4 --ntasks-per-node 2 --nodelist {whole_hosts} --nodes 2 /bin/echo whole"
    ));
    let expected_packed = words(&format!(
        "srun --ntasks 2 --ntasks-per-node 2 --nodelist {packed_host} --nodes 1 --exact --mem=0 \
         /bin/echo packed"
    ));
    assert_eq!(
        manager.launcher_calls(),
        vec![expected_whole, expected_packed]
    );

    // What srun was given: the allocation, none of the job's step shape.
    let environments = manager.launcher_environments();
    assert_eq!(environments.len(), 2, "{environments:#?}");
    for (index, environment) in environments.iter().enumerate() {
        for (key, value) in [
            ("SLURM_JOB_ID", "4242"),
            ("SLURM_JOB_NODELIST", "s[1-2]"),
            ("SLURM_JOB_NUM_NODES", "2"),
        ] {
            assert_eq!(
                environment.get(key).map(String::as_str),
                Some(value),
                "call {index}: {environment:#?}"
            );
        }
        for key in [
            "SLURM_CPUS_PER_TASK",
            "SRUN_CPUS_PER_TASK",
            "SLURM_NTASKS",
            "SLURM_NTASKS_PER_NODE",
            "SLURM_MEM_PER_NODE",
            "SLURM_EXPORT_ENV",
        ] {
            assert!(
                !environment.contains_key(key),
                "call {index}: {key} leaked into the task step: {environment:#?}"
            );
        }
    }
    // mpiexec (Hydra) starts its proxies with srun: for a packed task they
    // ask for the task's slots, not whole nodes; a whole-node task adds nothing.
    assert_eq!(environments[0].get("HYDRA_LAUNCHER_EXTRA_ARGS"), None);
    assert_eq!(
        environments[1]
            .get("HYDRA_LAUNCHER_EXTRA_ARGS")
            .map(String::as_str),
        Some("--exact --cpus-per-task=2 --mem=0"),
        "{:#?}",
        environments[1]
    );
}
