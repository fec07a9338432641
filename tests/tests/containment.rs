//! Tasks die with their manager: a task that starts a `setsid` process and
//! a double-fork daemon leaves nothing behind after its cancel, its
//! walltime, its manager's shutdown, or its manager killed outright. Each
//! process is checked by the pid it wrote, with a bounded wait; a zombie
//! counts as gone (PID 1 may not reap what is re-parented to it).
//! Build the binaries first: `cargo build --workspace --bins`.

use e2e::client::{assert_error_kind, process_runs, wait_pid_file};
use e2e::daemon::describe;
use e2e::{task, wait_for, Interchange, ManagerOptions, ManagerProcess, RawClient, Scenario, WAIT};
use nix::sys::signal::Signal;
use protocol::{Command, ErrorKind, ResourceRequest, TaskId, TaskSubmission};
use std::path::{Path, PathBuf};

/// The pid files a [`spawning_task`] writes.
struct PidFiles {
    leader: PathBuf,
    setsid: PathBuf,
    daemon: PathBuf,
}

impl PidFiles {
    fn in_dir(dir: &Path) -> Self {
        Self {
            leader: dir.join("leader.pid"),
            setsid: dir.join("setsid.pid"),
            daemon: dir.join("daemon.pid"),
        }
    }
}

/// A task that starts `setsid sleep 1000` (a session of its own) and a
/// double-fork daemon (`sleep 1000` whose parent shell exits at once, so
/// it is re-parented), writes their pids, then writes its own and becomes
/// `sleep 60`.
fn spawning_task(files: &PidFiles) -> TaskSubmission {
    let write = |path: &Path| format!("> '{0}.part' && mv '{0}.part' '{0}'", path.display());
    task(&format!(
        "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! {setsid}; \
         sh -c \"sleep 1000 </dev/null >/dev/null 2>&1 & echo \\$! {daemon}\"; \
         echo $$ {leader} && exec sleep 60",
        setsid = write(&files.setsid),
        daemon = write(&files.daemon),
        leader = write(&files.leader),
    ))
}

/// The task's three processes, once all run; each is adopted by the
/// scenario, so that a failing test leaves nothing behind.
fn started(scenario: &Scenario, files: &PidFiles) -> Vec<(&'static str, i32)> {
    let pids = vec![
        ("leader", wait_pid_file(&files.leader)),
        ("setsid sleep", wait_pid_file(&files.setsid)),
        ("daemon", wait_pid_file(&files.daemon)),
    ];
    for (name, pid) in &pids {
        assert!(process_runs(*pid), "the {name} ({pid}) runs");
        scenario.adopt_process_group(*pid);
    }
    pids
}

fn assert_all_gone(pids: &[(&str, i32)], after: &str) {
    for (name, pid) in pids {
        wait_for(
            &format!("the {name} ({pid}) to be gone {after}"),
            WAIT,
            || (!process_runs(*pid)).then_some(()),
        );
    }
}

/// How the manager contains its tasks.
#[derive(Clone, Copy)]
enum Containment {
    /// A cgroup per task where the machine allows it (the default).
    Cgroups,
    /// Process groups only (`--no-cgroups`).
    ProcessGroups,
}

/// A manager with one node running a [`spawning_task`], once the task's
/// three processes run, and a client that sees it. The fields drop in the
/// order the test's locals did.
struct Contained {
    pids: Vec<(&'static str, i32)>,
    task_id: TaskId,
    client: RawClient,
    manager: ManagerProcess,
    _interchange: Interchange,
    _scenario: Scenario,
}

impl Contained {
    /// The scenario `contain-NAME`, with a task past its walltime after
    /// `walltime` seconds if given.
    fn start(name: &str, containment: Containment, walltime: Option<f64>) -> Self {
        let scenario = Scenario::new(&format!("contain-{name}"));
        let mut options = ManagerOptions::new(name, &["c1"]);
        if let Containment::ProcessGroups = containment {
            options.extra_args = vec!["--no-cgroups".to_owned()];
        }
        let (interchange, manager, mut client) = scenario.start_pool(options);
        let files = PidFiles::in_dir(scenario.path());
        let mut submission = spawning_task(&files);
        if let Some(seconds) = walltime {
            submission.resources =
                ResourceRequest::new().with("walltime", protocol::SpecValue::Float(seconds));
        }
        let task_id = client.submit_one(submission);
        let pids = started(&scenario, &files);
        Self {
            pids,
            task_id,
            client,
            manager,
            _interchange: interchange,
            _scenario: scenario,
        }
    }
}

#[test]
fn a_cancelled_task_leaves_no_process() {
    let mut run = Contained::start("cancel", Containment::Cgroups, None);
    let task_id = run.task_id;
    run.client.command(Command::Cancel { task_id });
    let result = run.client.wait_result(task_id, WAIT);
    assert_error_kind(&result, ErrorKind::Cancelled);
    assert_all_gone(&run.pids, "after the cancel");
    assert!(
        run.manager.daemon.log().contains("task containment"),
        "the manager logs its containment at start"
    );
}

#[test]
fn a_task_past_its_walltime_leaves_no_process() {
    let mut run = Contained::start("walltime", Containment::Cgroups, Some(2.0));
    let result = run.client.wait_result(run.task_id, WAIT);
    assert_error_kind(&result, ErrorKind::WalltimeExceeded);
    assert_all_gone(&run.pids, "after the walltime");
}

#[test]
fn a_manager_that_shuts_down_leaves_no_process() {
    Contained::start("shutdown", Containment::Cgroups, None).stop_and_check_gone();
}

#[test]
fn a_manager_killed_outright_leaves_no_process() {
    let mut run = Contained::start("sigkill", Containment::Cgroups, None);
    run.kill_outright();
    let log = run.manager.daemon.log();
    if log.contains("containment=\"cgroup\"") || log.contains("containment=cgroup") {
        assert_all_gone(&run.pids, "after the manager was killed");
    } else {
        // Without cgroups only the leader's parent-death signal acts.
        assert_all_gone(&run.pids[..1], "after the manager was killed");
    }
}

#[test]
fn without_cgroups_a_manager_sweeps_its_tasks_processes_at_exit() {
    let mut run = Contained::start("sweep", Containment::ProcessGroups, None);
    run.stop_and_check_gone();
    let log = run.manager.daemon.log();
    assert!(
        log.contains("containment=\"process-group\"") || log.contains("containment=process-group"),
        "the manager logs its containment at start:\n{log}"
    );
}

#[test]
fn without_cgroups_a_manager_killed_outright_takes_its_task_leader() {
    let mut run = Contained::start("pdeathsig", Containment::ProcessGroups, None);
    run.kill_outright();
    assert_all_gone(&run.pids[..1], "after the manager was killed");
}

impl Contained {
    /// Kills the manager's process group with SIGKILL.
    fn kill_outright(&mut self) {
        let killed = self.manager.daemon.kill_group();
        assert_eq!(describe(killed), "signal 9");
    }

    /// Stops the manager with SIGTERM, expects a clean exit, and checks
    /// that none of the task's processes outlived it.
    fn stop_and_check_gone(&mut self) {
        self.manager.daemon.signal(Signal::SIGTERM);
        let status = self.manager.daemon.wait_exit(WAIT);
        assert_eq!(status.code(), Some(0), "{}", describe(status));
        assert_all_gone(&self.pids, "after the manager's exit");
    }
}
