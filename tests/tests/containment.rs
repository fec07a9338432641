//! Tasks die with their manager: a task that starts a `setsid` process and
//! a double-fork daemon leaves nothing behind after its cancel, its
//! walltime, its manager's shutdown, or its manager killed outright. Each
//! process is checked by the pid it wrote, with a bounded wait; a zombie
//! counts as gone (PID 1 may not reap what is re-parented to it).
//! Build the binaries first: `cargo build --workspace --bins`. The cgroup
//! tests need root (they say so when run without it); the process-group
//! tests do not.

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
        if let Containment::Cgroups = containment {
            require_cgroups();
        }
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
    run.assert_in_cgroups();
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
    run.assert_in_cgroups();
    assert_all_gone(&run.pids, "after the manager was killed");
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
    /// The manager said at start that it gives each task a cgroup.
    fn assert_in_cgroups(&self) {
        let log = self.manager.daemon.log();
        assert!(
            log.contains("containment=\"cgroup\"") || log.contains("containment=cgroup"),
            "the manager logs cgroup containment at start:\n{log}"
        );
    }

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

/// On x86-64 a task is born in its own cgroup (`clone3` with
/// `CLONE_INTO_CGROUP`): its shell runs the command exactly as given, with
/// no first step that moves it there, already in a `cell-N` cgroup below
/// the manager's `rhtex-<pid>`; with no signal blocked and SIGPIPE at its
/// default disposition, as with `posix_spawn`.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_task_is_born_in_its_cgroup_and_runs_its_command_as_given() {
    require_cgroups();
    let (_scenario, (_interchange, manager, mut client)) = one_node_pool("born");
    let command = "tr '\\0' ' ' < /proc/$$/cmdline; echo; grep '^0::' /proc/$$/cgroup; \
                   grep -E '^Sig(Blk|Ign):' /proc/$$/status";
    let stdout = completed_stdout(&mut client, command);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first().map(|line| line.trim_end()),
        Some(format!("/bin/bash -c {command}").as_str()),
        "the shell runs the command as given (a command that starts with \
         `echo $$ > …/cgroup.procs` means the task entered its cgroup through \
         its shell: clone3 with CLONE_INTO_CGROUP was refused; see the \
         manager's log)\n{stdout}"
    );
    assert_in_a_task_cgroup(lines.get(1).copied(), &manager, &stdout);
    let mask = |name: &str| {
        lines
            .iter()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or_else(|| panic!("{name} in the task's status\n{stdout}"))
    };
    assert_eq!(mask("SigBlk:"), 0, "no signal blocked\n{stdout}");
    let sigpipe = 1 << (Signal::SIGPIPE as u32 - 1);
    assert_eq!(
        mask("SigIgn:") & sigpipe,
        0,
        "SIGPIPE at its default\n{stdout}"
    );
}

/// A task born in its cgroup gets what any task gets: its working
/// directory, its environment, stdin from /dev/null, its stdout and stderr
/// files (their missing directories created), its exit code.
#[test]
fn a_task_born_in_its_cgroup_gets_its_directory_environment_and_files() {
    require_cgroups();
    let (scenario, (_interchange, _manager, mut client)) = one_node_pool("born-files");
    let work = scenario.path().join("work");
    std::fs::create_dir(&work).expect("work directory");
    let stdout = scenario.path().join("out/a/task.stdout");
    let stderr = scenario.path().join("err/task.stderr");
    let mut submission = task("pwd; echo \"$ONLY\"; cat; echo oops >&2; exit 3");
    submission.cwd = Some(work.display().to_string());
    submission.env.insert("ONLY".to_owned(), "this".to_owned());
    submission.stdout = Some(stdout.display().to_string());
    submission.stderr = Some(stderr.display().to_string());
    let result = client.run_one(submission);
    assert_eq!(result.exit_code, Some(3), "{result:#?}");
    let written = std::fs::read_to_string(&stdout).expect("the stdout file");
    assert_eq!(written, format!("{}\nthis\n", work.display()));
    let written = std::fs::read_to_string(&stderr).expect("the stderr file");
    assert_eq!(written, "oops\n");
}

/// A task whose working directory does not exist fails to launch, and the
/// error names the directory and the reason (born in its cgroup, it is
/// the child that finds the directory missing).
#[test]
fn a_task_whose_directory_is_missing_fails_naming_it() {
    require_cgroups();
    let (scenario, (_interchange, _manager, mut client)) = one_node_pool("born-nocwd");
    let missing = scenario.path().join("no/such/dir");
    let mut submission = task("true");
    submission.cwd = Some(missing.display().to_string());
    let result = client.run_one(submission);
    assert_error_kind(&result, ErrorKind::LaunchFailed);
    let message = result
        .error
        .as_ref()
        .map_or("", |error| error.message.as_str());
    assert!(
        message.contains(&format!(
            "cannot enter the working directory {}",
            missing.display()
        )) && message.contains("No such file or directory"),
        "{message}"
    );
}

/// Where a task cannot be born in its cgroup (`clone3` refused by the
/// kernel or a seccomp filter, or another architecture; here forced with
/// `RHTEX_NO_CLONE3`), its shell moves itself into its cgroup first: the
/// task still runs in a `cell-N` below the manager's `rhtex-<pid>`, and a
/// cancelled task still leaves no process behind.
#[test]
fn where_clone3_cannot_be_used_the_shell_enters_the_cgroup() {
    require_cgroups();
    let scenario = Scenario::new("contain-shell-enters");
    let mut options = ManagerOptions::new("shell-enters", &["c1"]);
    options.env = vec![("RHTEX_NO_CLONE3".to_owned(), "1".to_owned())];
    let (_interchange, manager, mut client) = scenario.start_pool(options);
    let command = "tr '\\0' ' ' < /proc/$$/cmdline; echo; grep '^0::' /proc/$$/cgroup";
    let stdout = completed_stdout(&mut client, command);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|line| line.contains("cgroup.procs") && line.contains(command)),
        "the shell enters its cgroup before the command\n{stdout}"
    );
    assert_in_a_task_cgroup(lines.get(1).copied(), &manager, &stdout);

    let files = PidFiles::in_dir(scenario.path());
    let task_id = client.submit_one(spawning_task(&files));
    let pids = started(&scenario, &files);
    client.command(Command::Cancel { task_id });
    let result = client.wait_result(task_id, WAIT);
    assert_error_kind(&result, ErrorKind::Cancelled);
    assert_all_gone(&pids, "after the cancel");
}

/// Fails the test at once unless it runs as root: only then can the
/// manager give each task a cgroup v2 cell (without root it falls back to
/// process groups, which these tests do not test).
fn require_cgroups() {
    e2e::require_root(
        "it checks tasks in their cgroup v2 cells, which the pool-manager creates only as root",
    );
}

/// A scenario `contain-NAME` with an interchange, a manager `NAME` of one
/// node and a client.
fn one_node_pool(name: &str) -> (Scenario, e2e::Pool) {
    let scenario = Scenario::new(&format!("contain-{name}"));
    let pool = scenario.start_pool(ManagerOptions::new(name, &["c1"]));
    (scenario, pool)
}

/// Runs `command` as a task to its successful end; its stdout.
fn completed_stdout(client: &mut RawClient, command: &str) -> String {
    let result = client.run_one(task(command));
    e2e::client::assert_completed(&result);
    e2e::client::stdout_of(&result)
}

/// `line` (a task's `0::` line of /proc/PID/cgroup) names a task cgroup
/// below `manager`'s `rhtex-<pid>`.
fn assert_in_a_task_cgroup(line: Option<&str>, manager: &ManagerProcess, stdout: &str) {
    let cgroup = format!("/rhtex-{}/cell-", manager.daemon.pid());
    assert!(
        line.is_some_and(|line| line.starts_with("0::") && line.contains(&cgroup)),
        "the task is in a cgroup below {cgroup} (this test needs root and cgroup v2)\n{stdout}"
    );
}
