//! End-to-end tests of re-attach, stop versus end, and clients that
//! resume: the real binaries on 127.0.0.1, CURVE on. Build the binaries
//! first: `cargo build --workspace --bins`.
//!
//! Every wait is bounded by [`WAIT`]; tasks are released by files the test
//! creates, never by sleeping; every process is killed by process group.

use e2e::cli::{connect_flags, strings};
use e2e::client::{pid_then_sleep, run_once_released, wait_pid_file};
use e2e::{
    binary, file_lines, task, wait_for, Daemon, Interchange, ManagerOptions, ManagerProcess,
    RawClient, Scenario, WAIT,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use protocol::{TaskId, TaskState};

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

fn wait_log(daemon: &Daemon, what: &str) {
    wait_for(&format!("{} to log {what:?}", daemon.name()), WAIT, || {
        daemon.log().contains(what).then_some(())
    });
}

/// A manager that gives up hearing the interchange after 1 s and tries to
/// register again for 60 s.
fn reattaching_options() -> ManagerOptions {
    let mut options = ManagerOptions::new("m1", &["n1", "n2"]);
    options.extra_args = strings(&["--heartbeat-threshold", "1", "--reattach-timeout", "60"]);
    options
}

/// A re-attaching manager running one task (`sleep 60`): the manager, the
/// task and its pid.
fn one_running_task(
    scenario: &Scenario,
    interchange: &Interchange,
) -> (ManagerProcess, TaskId, i32) {
    let (manager, mut client) =
        scenario.start_manager_with_client(interchange, reattaching_options());
    let pid_file = scenario.file("task.pid");
    let running = client.submit_one(task(&pid_then_sleep(&pid_file)));
    client.wait_running(running);
    (manager, running, wait_pid_file(&pid_file))
}

#[test]
fn a_manager_outlives_a_stopped_interchange_holds_a_result_and_re_attaches() {
    let scenario = Scenario::new("reattach-sigstop");
    // The interchange would drop the manager only after 60 s of silence.
    let (interchange, manager, mut client) =
        scenario.start_pool_with(&["--heartbeat-threshold", "60"], reattaching_options());
    let runs = scenario.file("runs.log");
    let (first_release, second_release) = (scenario.file("release-1"), scenario.file("release-2"));
    let first = client.submit_one(task(&run_once_released(&first_release, &runs)));
    let second = client.submit_one(task(&run_once_released(&second_release, &runs)));
    client.wait_running(first);
    client.wait_running(second);

    // Stopped past the manager's threshold: it keeps its tasks.
    interchange.daemon.signal(Signal::SIGSTOP);
    wait_log(&manager.daemon, "lost the interchange");
    // The first task ends meanwhile: its result is held.
    std::fs::write(&first_release, "").expect("release the first task");
    wait_log(&manager.daemon, "its result is held");
    assert_eq!(file_lines(&runs), vec![first.to_string()]);
    interchange.daemon.signal(Signal::SIGCONT);

    // Re-attached: the held result arrives, the second task ran on.
    let result = client.wait_result(first, WAIT);
    assert_eq!(result.state, TaskState::Completed, "{result:?}");
    wait_log(&manager.daemon, "registered again with the interchange");
    assert_eq!(client.task_status(second).state, TaskState::Running);
    std::fs::write(&second_release, "").expect("release the second task");
    let result = client.wait_result(second, WAIT);
    assert_eq!(result.state, TaskState::Completed, "{result:?}");
    // Each task ran to its end once, and the manager is still there.
    assert_eq!(
        file_lines(&runs),
        vec![first.to_string(), second.to_string()]
    );
    let report = client.status();
    assert_eq!(report.managers.len(), 1);
    assert_eq!(report.managers[0].manager_id, manager.manager_id);
    assert_eq!((report.n_completed, report.n_failed), (2, 0));
}

#[test]
fn sigterm_keeps_the_work_and_an_interchange_restarted_without_it_has_it_killed() {
    let scenario = Scenario::new("reattach-sigterm");
    let mut interchange = scenario.start_secure_interchange(&[]);
    let (mut manager, running, pid) = one_running_task(&scenario, &interchange);

    // SIGTERM stops the interchange and keeps the work.
    interchange.daemon.signal(Signal::SIGTERM);
    let status = interchange.daemon.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{status:?}");
    wait_log(&manager.daemon, "lost the interchange");
    assert!(alive(pid), "the task was killed with the interchange");
    assert!(manager.daemon.try_exit().is_none(), "the manager exited");

    // Restarted on the same addresses, without a journal: it does not know
    // the task, so the manager kills it, and stays registered.
    let restarted = scenario.restart_interchange("interchange-2", &interchange, &[]);
    wait_log(&manager.daemon, "registered again with the interchange");
    wait_for("the unknown task to be killed", WAIT, || {
        (!alive(pid)).then_some(())
    });
    let mut client = RawClient::connect(&restarted);
    let report = client.wait_managers(&[manager.manager_id]);
    assert_eq!(report.n_running, 0);
    assert!(manager.daemon.try_exit().is_none(), "the manager exited");
    // It takes new work.
    let fresh = client.submit_one(task("echo again"));
    let result = client.wait_result(fresh, WAIT);
    assert_eq!(result.state, TaskState::Completed, "{result:?}");
    assert_eq!(client.task_status(running).state, TaskState::Unknown);
}

#[test]
fn waiting_for_a_task_the_interchange_does_not_know_fails_at_once_naming_it() {
    let scenario = Scenario::new("wait-unknown");
    let interchange = scenario.start_secure_interchange(&[]);
    let unknown = TaskId::new_random();
    let output = e2e::cli::run_connected(
        &scenario,
        &interchange,
        "wait",
        &["wait", &unknown.to_string(), "--wait-timeout", "600"],
    );
    assert_eq!(output.code(), 1, "{output:?}");
    assert!(
        output.stderr.contains(&unknown.to_string()) && output.stderr.contains("does not know"),
        "{}",
        output.stderr
    );
}

#[test]
fn rhtex_wait_keeps_waiting_across_a_restart_and_ends_with_a_clear_outcome() {
    let scenario = Scenario::new("wait-restart");
    let mut interchange = scenario.start_secure_interchange(&[]);
    let (_manager, running, pid) = one_running_task(&scenario, &interchange);

    let mut args = connect_flags(&interchange);
    args.extend(strings(&[
        "wait",
        &running.to_string(),
        "--wait-timeout",
        "600",
    ]));
    let launch = scenario.launch("rhtex-wait", binary("rhtex")).args(args);
    let mut waiting = scenario.spawn(
        launch
            .env("RUST_LOG", "info")
            .env_remove("RHTEX_INTERCHANGE"),
    );
    wait_log(&waiting, "connected");

    interchange.daemon.signal(Signal::SIGTERM);
    assert_eq!(interchange.daemon.wait_exit(WAIT).code(), Some(0));
    // The waiting client notices, and keeps waiting.
    wait_log(&waiting, "lost the connection to the interchange");
    assert!(waiting.try_exit().is_none(), "rhtex wait gave up at once");
    let _restarted = scenario.restart_interchange("interchange-2", &interchange, &[]);
    // It watches again; the restarted interchange (no journal) does not
    // know the task: a failure naming it. The manager kills the task.
    let status = waiting.wait_exit(WAIT);
    assert_eq!(status.code(), Some(1), "{status:?}");
    let log = waiting.log();
    assert!(log.contains("watching the tasks again"), "{log}");
    assert!(
        log.contains(&running.to_string()) && log.contains("does not know"),
        "{log}"
    );
    wait_for("the task to be killed", WAIT, || {
        (!alive(pid)).then_some(())
    });
}
