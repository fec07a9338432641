//! End-to-end tests of the scheduling rules of protocol version 2 against
//! the real `interchange`, `pool-manager` and `rhtex` binaries: placement
//! (`best-fit`, `newest-block`), the reservation that keeps a large task
//! from starving, EASY backfill with walltimes, retries of tasks lost with
//! their manager, and the command-line flags for walltime and packing.
//!
//! Build the binaries first: `cargo build --workspace --bins`. Tasks that must wait block (bounded) on a release
//! file the test creates; the order in which tasks really ran is read from
//! a log file they append to, so no assertion depends on timing.

use e2e::cli::{self, json_objects, strings};
use e2e::client::assert_completed;
use e2e::{file_lines, task, wait_for, ManagerOptions, RawClient, Scenario, WAIT};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use protocol::{
    ErrorKind, ManagerId, ResourceRequest, SpecValue, TaskId, TaskResult, TaskState, TaskSubmission,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A task running `command` on `num_nodes` whole nodes, with a walltime in
/// seconds if given.
fn sized(command: &str, num_nodes: u32, walltime: Option<f64>) -> TaskSubmission {
    let mut submission = task(command);
    let mut resources = ResourceRequest::new().with("num_nodes", num_nodes);
    if let Some(seconds) = walltime {
        resources.insert("walltime", SpecValue::Float(seconds));
    }
    submission.resources = resources;
    submission
}

/// Shell words that append `name` to the order log `log` (one line each).
fn append(log: &Path, name: &str) -> String {
    format!("echo {name} >> '{}'", log.display())
}

/// A command that waits (polling, bounded to about 25 s) until `release`
/// exists, then appends `name` to `log`; fails if never released.
fn hold_then_append(release: &Path, log: &Path, name: &str) -> String {
    format!(
        "for attempt in $(seq 250); do if [ -e '{}' ]; then {}; exit 0; fi; sleep 0.1; done; \
         echo 'never released' >&2; exit 1",
        release.display(),
        append(log, name)
    )
}

/// Waits until the manager `manager_id` is reserved for `holder` and
/// returns how many of its nodes are free then.
fn wait_reserved(client: &mut RawClient, manager_id: ManagerId, holder: TaskId) -> u32 {
    client.wait_status(
        &format!("manager {manager_id} to be reserved for task {holder}"),
        WAIT,
        |report| {
            report
                .managers
                .iter()
                .find(|info| info.manager_id == manager_id)
                .filter(|info| info.reserved_for == Some(holder))
                .map(|info| info.n_free_nodes)
        },
    )
}

/// Asserts that `task_id` is queued, has no result, and says it waits
/// behind the reservation for `holder`.
fn assert_held_back(client: &mut RawClient, task_id: TaskId, holder: TaskId) {
    let info = client.task_status(task_id);
    assert_eq!(info.state, TaskState::Queued, "{info:#?}");
    assert!(!client.has_result(task_id), "{info:#?}");
    let reason = info.waiting_reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!("reserved for task {holder}")),
        "the waiting reason names the reservation: {info:#?}"
    );
}

// ---------------------------------------------------------------------------
// Placement
// ---------------------------------------------------------------------------

#[test]
fn newest_block_placement_sends_tasks_to_the_last_registered_manager() {
    let scenario = Scenario::new("newest-block");
    let interchange = scenario.start_secure_interchange(&["--placement", "newest-block"]);
    let mut client = RawClient::connect(&interchange);
    // Registered one after the other. The oldest has a single node, so
    // best fit would choose it for a 1-node task.
    let mut managers = Vec::new();
    for (name, nodes) in [
        ("tight", &["t1"][..]),
        ("older", &["o1", "o2"][..]),
        ("newer", &["n1", "n2"][..]),
    ] {
        let manager = scenario.start_manager(&interchange, ManagerOptions::new(name, nodes));
        client.wait_managers(&[manager.manager_id]);
        managers.push(manager);
    }
    let newer = &managers[2];
    let report = client.status();
    let registered_at = |manager_id: ManagerId| {
        report
            .managers
            .iter()
            .find(|info| info.manager_id == manager_id)
            .map(|info| info.registered_at)
            .expect("every manager in status")
    };
    assert!(
        registered_at(managers[1].manager_id) <= registered_at(newer.manager_id),
        "the managers registered in order: {report:#?}"
    );

    let one = client.submit_one(sized("echo one", 1, None));
    let result = client.wait_result(one, WAIT);
    assert_completed(&result);
    assert_eq!(result.manager_id, Some(newer.manager_id), "{result:#?}");
    assert_eq!(result.nodes.len(), 1, "{result:#?}");
    assert!(newer.nodes.contains(&result.nodes[0]), "{result:#?}");

    // A 2-node task goes there too.
    let two = client.submit_one(sized("echo two", 2, None));
    let result = client.wait_result(two, WAIT);
    assert_completed(&result);
    assert_eq!(result.manager_id, Some(newer.manager_id), "{result:#?}");
}

#[test]
fn best_fit_placement_sends_a_task_to_the_tightest_manager() {
    let scenario = Scenario::new("best-fit");
    let interchange = scenario.start_secure_interchange(&[]);
    let mut client = RawClient::connect(&interchange);
    // The 2-node manager registers first, so neither newest-block nor a
    // first-come rule would choose it: only best fit does.
    let small = scenario.start_manager(&interchange, ManagerOptions::new("small", &["s1", "s2"]));
    client.wait_managers(&[small.manager_id]);
    let big = scenario.start_manager(
        &interchange,
        ManagerOptions::new("big", &["b1", "b2", "b3", "b4"]),
    );
    client.wait_managers(&[big.manager_id]);

    for name in ["first", "second"] {
        let two = client.submit_one(sized(&format!("echo {name}"), 2, None));
        let result = client.wait_result(two, WAIT);
        assert_completed(&result);
        assert_eq!(result.manager_id, Some(small.manager_id), "{result:#?}");
        let mut nodes = result.nodes.clone();
        nodes.sort();
        assert_eq!(nodes, strings(&["s1", "s2"]), "{result:#?}");
    }
}

// ---------------------------------------------------------------------------
// Reservation and backfill
// ---------------------------------------------------------------------------

/// A pool of two nodes ("pair"), with the file that releases task A and
/// the log the tasks append their names to.
fn start_pair(scenario: &Scenario) -> (e2e::Pool, PathBuf, PathBuf) {
    let pool = scenario.start_pool(ManagerOptions::new("pair", &["p1", "p2"]));
    (pool, scenario.file("a.go"), scenario.file("order.log"))
}

/// Lets task A end (writes its release file) and waits for `task_ids`,
/// asserting each completed; their results in that order.
fn release_and_wait_completed(
    client: &mut RawClient,
    release: &Path,
    task_ids: [TaskId; 3],
) -> Vec<TaskResult> {
    std::fs::write(release, b"go").expect("write the release file");
    let results: Vec<TaskResult> = task_ids
        .into_iter()
        .map(|task_id| client.wait_result(task_id, WAIT))
        .collect();
    results.iter().for_each(assert_completed);
    results
}

#[test]
fn a_large_task_is_not_starved_by_small_ones_without_walltimes() {
    let scenario = Scenario::new("no-starvation");
    let ((_interchange, manager, mut client), release, log) = start_pair(&scenario);

    let a = client.submit_one(sized(&hold_then_append(&release, &log, "A"), 1, None));
    client.wait_running(a);
    let h = client.submit_one(sized(&append(&log, "H"), 2, None));
    let b = client.submit_one(sized(&append(&log, "B"), 1, None));

    // The 2-node task reserves the manager; the 1-node task behind it may
    // not take the free node, since A has no walltime and nobody knows when
    // H could start.
    let n_free = wait_reserved(&mut client, manager.manager_id, h);
    assert_eq!(n_free, 1, "one node is free while B waits");
    assert_held_back(&mut client, b, h);
    assert_eq!(client.task_status(h).state, TaskState::Queued);
    assert!(
        file_lines(&log).is_empty(),
        "nothing ran yet: {:?}",
        file_lines(&log)
    );

    let results = release_and_wait_completed(&mut client, &release, [a, h, b]);
    assert_eq!(file_lines(&log), strings(&["A", "H", "B"]));
    let (h_result, b_result) = (&results[1], &results[2]);
    let (h_start, b_start) = (
        h_result.start_time.expect("H has a start time"),
        b_result.start_time.expect("B has a start time"),
    );
    assert!(
        h_start <= b_start,
        "H started at {h_start}, after B at {b_start}"
    );
}

#[test]
fn short_tasks_backfill_ahead_of_a_reserved_task_only_if_they_end_in_time() {
    let scenario = Scenario::new("easy-backfill");
    let ((_interchange, manager, mut client), release, log) = start_pair(&scenario);

    // A holds one node and says it ends within 30 s: H (2 nodes) can start
    // at the latest then.
    let a = client.submit_one(sized(&hold_then_append(&release, &log, "A"), 1, Some(30.0)));
    client.wait_running(a);
    let h = client.submit_one(sized(&append(&log, "H"), 2, None));
    // C would still run long after H could start; B, behind it in the
    // queue, ends well before.
    let c = client.submit_one(sized(&append(&log, "C"), 1, Some(120.0)));
    let b = client.submit_one(sized(&append(&log, "B"), 1, Some(2.0)));

    let b_result = client.wait_result(b, WAIT);
    assert_completed(&b_result);
    assert_eq!(b_result.manager_id, Some(manager.manager_id));
    assert_eq!(file_lines(&log), strings(&["B"]), "only B ran");
    // H still waits for A, and C behind the reservation.
    wait_reserved(&mut client, manager.manager_id, h);
    assert_eq!(client.task_status(h).state, TaskState::Queued);
    assert!(!client.has_result(h));
    assert_held_back(&mut client, c, h);

    let results = release_and_wait_completed(&mut client, &release, [a, h, c]);
    assert_eq!(file_lines(&log), strings(&["B", "A", "H", "C"]));
    let (h_start, c_start) = (
        results[1].start_time.expect("H has a start time"),
        results[2].start_time.expect("C has a start time"),
    );
    assert!(
        h_start <= c_start,
        "H started at {h_start}, after C at {c_start}"
    );
}

// ---------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------

/// A command that, on its first attempt only (whoever makes the directory
/// `attempt_dir`), writes its process group to `pid_file` and waits
/// (bounded) for `release`; a later attempt prints `retried` at once.
fn first_attempt_blocks(attempt_dir: &Path, pid_file: &Path, release: &Path) -> String {
    format!(
        "if mkdir '{dir}' 2>/dev/null; then \
           echo $$ > '{pid}.part' && mv '{pid}.part' '{pid}'; \
           for attempt in $(seq 300); do [ -e '{release}' ] && exit 0; sleep 0.1; done; exit 1; \
         else echo retried; fi",
        dir = attempt_dir.display(),
        pid = pid_file.display(),
        release = release.display()
    )
}

/// Runs a task with `retries` whose first attempt blocks, waits until it
/// runs, SIGKILLs the process group of the manager running it (and the
/// orphaned task), and returns the task id and the killed manager's id.
fn run_then_kill_its_manager(
    scenario: &Scenario,
    client: &mut RawClient,
    managers: &mut [e2e::ManagerProcess],
    name: &str,
    retries: u32,
) -> (TaskId, ManagerId) {
    let pid_file = scenario.file(&format!("{name}.pid"));
    let command = first_attempt_blocks(
        &scenario.file(&format!("{name}.attempted")),
        &pid_file,
        &scenario.file(&format!("{name}.never")),
    );
    let mut submission = task(&command);
    submission.resources = ResourceRequest::new().with("retries", retries);
    let task_id = client.submit_one(submission);
    let info = client.wait_running(task_id);
    let task_group = wait_for(&format!("pid file of {name}"), WAIT, || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
    });
    scenario.adopt_process_group(task_group);
    let victim_id = info.manager_id.expect("a running task has a manager");
    let victim = managers
        .iter_mut()
        .find(|manager| manager.manager_id == victim_id)
        .expect("the task runs on one of the test's managers");
    victim.daemon.kill_group();
    // The task's own process group outlives its manager: end it too.
    let _ = killpg(Pid::from_raw(task_group), Signal::SIGKILL);
    (task_id, victim_id)
}

/// Asserts that no (second) result for `task_id` arrives within `window`.
fn assert_no_result_within(client: &mut RawClient, task_id: TaskId, window: Duration) {
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        assert!(
            !client.has_result(task_id),
            "task {task_id} got a second result"
        );
        std::thread::sleep(e2e::POLL_INTERVAL);
    }
}

#[test]
fn a_task_lost_with_its_manager_is_retried_elsewhere_once() {
    let scenario = Scenario::new("retries");
    let interchange = scenario.start_secure_interchange(&[]);
    let mut managers = vec![
        scenario.start_manager(&interchange, ManagerOptions::new("first", &["f1"])),
        scenario.start_manager(&interchange, ManagerOptions::new("second", &["s1"])),
    ];
    let mut client = RawClient::connect(&interchange);
    let ids: Vec<ManagerId> = managers.iter().map(|manager| manager.manager_id).collect();
    client.wait_managers(&ids);

    // With one retry, the task runs again on the surviving manager.
    let (retried, killed) =
        run_then_kill_its_manager(&scenario, &mut client, &mut managers, "retried", 1);
    let survivor = *ids.iter().find(|id| **id != killed).expect("two managers");
    let result = client.wait_result(retried, WAIT);
    assert_completed(&result);
    assert_eq!(result.manager_id, Some(survivor), "{result:#?}");
    assert_eq!(String::from_utf8_lossy(&result.stdout_tail), "retried\n");
    let info = client.task_status(retried);
    assert_eq!(info.result.as_ref(), Some(&result), "{info:#?}");
    client.wait_status("the killed manager to leave status", WAIT, |report| {
        (!report.managers.iter().any(|info| info.manager_id == killed)).then_some(())
    });
    // Exactly one result: nothing more comes, e.g. from the lost attempt.
    assert_no_result_within(&mut client, retried, Duration::from_secs(2));

    // Without retries the task fails with its manager, although another
    // manager could run it.
    let spare = scenario.start_manager(&interchange, ManagerOptions::new("spare", &["x1"]));
    client.wait_managers(&[survivor, spare.manager_id]);
    managers.push(spare);
    let (lost, killed) =
        run_then_kill_its_manager(&scenario, &mut client, &mut managers, "lost", 0);
    let result = client.wait_result(lost, WAIT);
    assert_eq!(result.state, TaskState::Failed, "{result:#?}");
    let error = result.error.clone().expect("a failed result has an error");
    assert_eq!(error.kind, ErrorKind::ManagerLost, "{result:#?}");
    assert!(
        error.message.contains(&killed.to_string()),
        "the message names the lost manager: {error:?}"
    );
    assert!(
        error.message.ends_with("(1 attempt made)"),
        "the message says how many attempts were made: {error:?}"
    );
    assert_no_result_within(&mut client, lost, Duration::from_secs(2));
    assert_eq!(client.task_status(lost).result, Some(result));
}

// ---------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------

#[test]
fn rhtex_submit_walltime_and_packing_flags() {
    let scenario = Scenario::new("cli-scheduling");
    let (interchange, manager, _client) =
        scenario.start_pool(ManagerOptions::new("packer", &["k1"]).slots_per_node(4));

    let output = submit_and_wait(
        &scenario,
        &interchange,
        "rhtex-walltime",
        &["--walltime", "1"],
        "sleep 30",
    );
    assert_ne!(output.code(), 0, "{output:#?}");
    let kinds = output.strings_at("kind");
    assert_eq!(kinds, ["walltime_exceeded"], "{output:#?}");

    let output = submit_and_wait(
        &scenario,
        &interchange,
        "rhtex-packed",
        &["--no-exclusive", "--ranks-per-node", "2"],
        "echo ranks=$PARSL_RANKS_PER_NODE",
    );
    assert_eq!(output.code(), 0, "{output:#?}");
    let tails = output.strings_at("stdout_tail");
    assert_eq!(tails, ["ranks=2\n"], "{output:#?}");

    let output = cli::json_status(&scenario, &interchange);
    let json = output.json();
    let manager_id = manager.manager_id.to_string();
    let slots: Vec<u64> = json_objects(&json)
        .into_iter()
        .filter(|object| {
            object.get("manager_id").and_then(|id| id.as_str()) == Some(manager_id.as_str())
        })
        .filter_map(|object| object.get("slots_per_node")?.as_u64())
        .collect();
    assert_eq!(slots, [4], "{output:#?}");
}

/// `rhtex --json submit OPTIONS --wait -- COMMAND`, run as `name`.
fn submit_and_wait(
    scenario: &Scenario,
    interchange: &e2e::Interchange,
    name: &str,
    options: &[&str],
    command: &str,
) -> cli::CliOutput {
    let mut args = vec!["--json", "submit"];
    args.extend_from_slice(options);
    args.extend(["--wait", "--", command]);
    cli::run_connected(scenario, interchange, name, &args)
}
