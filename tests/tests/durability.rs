//! Durable state, end to end: the real `interchange` killed with SIGKILL
//! and started again on the same run directory resumes its queue and its
//! kept results; `--fresh` starts empty; a journal of another version is
//! refused (exit 2); and a crash harness kills the interchange at seeded
//! random moments, after which every task has exactly one result.
//!
//! The same harness (`RHTEX_CRASH_SEED`) also kills pool-managers during a
//! mixed run on several managers (each replaced by a new one with a fresh
//! id, as a batch system starts a new block), and the interchange and a
//! manager at once (the interchange restarted on its run directory and
//! manager address, the other managers re-attaching). Tasks record each
//! start (their shell's pid) and each run to its end in files: afterwards
//! every task has exactly one result, completed or failed `manager_lost`
//! by a killed manager, no task ran to its end twice but on a killed
//! manager, and no task shell of a killed manager is left.
//!
//! A manager frozen with SIGSTOP (a connection open but silent) is dropped
//! at the heartbeat threshold, gets no new task, its task is retried on
//! another manager, and once thawed it registers again and its stale copy
//! of the task is killed: one result per task.
//!
//! Until managers re-attach after a restart, a manager of a killed
//! interchange is killed here too, so a task running at the kill is run
//! again (lost past the heartbeat threshold, then retried): the harness
//! asserts one result per task, not one run.

use e2e::cli::{self, strings};
use e2e::client::{assert_completed, process_runs, stdout_of};
use e2e::daemon::describe;
use e2e::{
    task, wait_for, Interchange, ManagerOptions, ManagerProcess, RawClient, Scenario, Security,
    WAIT,
};
use nix::sys::signal::Signal;
use protocol::{
    ErrorKind, ManagerId, ResourceRequest, TaskId, TaskResult, TaskState, TaskSubmission,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LOOPBACK: &str = "tcp://127.0.0.1:0";

struct Run<'a> {
    scenario: &'a Scenario,
    security: Security,
    run_dir: PathBuf,
}

impl<'a> Run<'a> {
    fn new(scenario: &'a Scenario) -> Self {
        Run {
            scenario,
            security: Security::Curve(scenario.keygen("keys")),
            run_dir: scenario.file("interchange-run"),
        }
    }

    /// An interchange on the shared run directory, logging to `<name>.log`.
    fn start(&self, name: &str, extra: &[&str]) -> Interchange {
        self.scenario
            .start_interchange_in(name, &self.run_dir, &self.security, LOOPBACK, extra)
    }

    /// An interchange on the shared run directory and on the manager
    /// address `previous` was bound to, so that its managers find it again.
    fn restart(&self, name: &str, previous: &Interchange, extra: &[&str]) -> Interchange {
        let manager_listen = previous.manager_url.as_str();
        self.scenario.start_interchange_in(
            name,
            &self.run_dir,
            &self.security,
            manager_listen,
            extra,
        )
    }
}

fn kill_9(interchange: &mut Interchange) {
    interchange.daemon.signal(Signal::SIGKILL);
    interchange.daemon.wait_exit(WAIT);
}

fn on_nodes(mut submission: TaskSubmission, n_nodes: u32) -> TaskSubmission {
    submission.resources = ResourceRequest::new().with("num_nodes", n_nodes);
    submission
}

fn journal_segment(run_dir: &Path) -> PathBuf {
    let dir = run_dir.join("journal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    segments.sort();
    segments.pop().expect("a journal segment")
}

#[test]
fn a_killed_interchange_resumes_its_queue_and_its_results() {
    let scenario = Scenario::new("journal-resume");
    let run = Run::new(&scenario);
    let mut first = run.start("interchange-1", &[]);
    let manager = scenario.start_manager(&first, ManagerOptions::new("m1", &["n1"]));
    let mut client = RawClient::connect(&first);
    client.wait_managers(&[manager.manager_id]);
    let finished: Vec<TaskId> = (0..3)
        .map(|i| client.submit_one(task(&format!("echo finished-{i}"))))
        .collect();
    for task_id in &finished {
        assert_completed(&client.wait_result(*task_id, WAIT));
    }
    // Two-node tasks wait: the only manager has one node.
    let queued: Vec<TaskId> = (0..5)
        .map(|i| client.submit_one(on_nodes(task(&format!("echo queued-{i}")), 2)))
        .collect();
    assert_eq!(client.status().n_queued, 5);

    kill_9(&mut first);
    drop(manager);
    let second = run.start("interchange-2", &[]);
    let log = second.daemon.log();
    assert!(
        log.contains("resumed from the journal")
            && log.contains("n_queued=5")
            && log.contains("n_finished=3"),
        "{log}"
    );
    let mut client = RawClient::connect(&second);
    assert_eq!(client.status().n_queued, 5);
    // The kept results can still be fetched, by a raw watch and by `rhtex wait`.
    client.watch(finished.clone());
    for (i, task_id) in finished.iter().enumerate() {
        let result = client.wait_result(*task_id, WAIT);
        assert_completed(&result);
        assert_eq!(stdout_of(&result), format!("finished-{i}\n"));
    }
    let waited = cli::run_connected(
        &scenario,
        &second,
        "rhtex-wait",
        &["wait", &finished[0].to_string()],
    );
    assert_eq!(waited.code(), 0, "{}", waited.stderr);
    // A manager large enough runs every queued task.
    let manager = scenario.start_manager(&second, ManagerOptions::new("m2", &["n1", "n2"]));
    client.watch(queued.clone());
    for (i, task_id) in queued.iter().enumerate() {
        let result = client.wait_result(*task_id, WAIT);
        assert_completed(&result);
        assert_eq!(stdout_of(&result), format!("queued-{i}\n"));
    }
    drop(manager);
}

#[test]
fn fresh_starts_empty_and_another_journal_version_is_refused() {
    let scenario = Scenario::new("journal-fresh");
    let run = Run::new(&scenario);
    let mut first = run.start("interchange-1", &[]);
    let mut client = RawClient::connect(&first);
    client.submit_one(task("echo never"));
    kill_9(&mut first);

    let mut fresh = run.start("interchange-2", &["--fresh"]);
    assert!(fresh.daemon.log().contains("starting fresh"));
    let mut client = RawClient::connect(&fresh);
    assert_eq!(client.status().n_queued, 0);
    kill_9(&mut fresh);

    // A journal of another format version: exit 2, naming --fresh.
    let segment = journal_segment(&run.run_dir);
    let mut bytes = std::fs::read(&segment).expect("read the segment");
    let version = protocol::JOURNAL_MAGIC.len();
    bytes[version..version + 4].copy_from_slice(&(protocol::JOURNAL_VERSION + 1).to_le_bytes());
    std::fs::write(&segment, &bytes).expect("write the segment");
    let mut args = strings(&[
        "--run-dir",
        &run.run_dir.display().to_string(),
        "--client-listen",
        LOOPBACK,
        "--manager-listen",
        LOOPBACK,
    ]);
    args.extend(run.security.flags());
    let mut refused = scenario.spawn_interchange("interchange-3", &args);
    let status = refused.wait_exit(WAIT);
    let log = refused.log();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("format version") && log.contains("--fresh"),
        "{log}"
    );
}

/// A small seeded generator (xorshift), so that a failing run can be
/// repeated with `RHTEX_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// The harness's generator, seeded by `RHTEX_CRASH_SEED` (printed).
fn crash_rng() -> Rng {
    let seed = std::env::var("RHTEX_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0x5eed_cafe);
    eprintln!("crash harness seed {seed} (set RHTEX_CRASH_SEED to repeat)");
    Rng(seed | 1)
}

#[test]
fn seeded_kill_9s_of_the_interchange_leave_every_task_exactly_one_result() {
    const N_KILLS: usize = 20;
    const N_TASKS: usize = 40;
    let mut rng = crash_rng();
    let scenario = Scenario::new("journal-crash");
    let run = Run::new(&scenario);
    let mut tasks: Vec<TaskId> = Vec::new();
    for kill in 0..N_KILLS {
        let mut interchange = run.start(&format!("interchange-{kill}"), &[]);
        let manager = scenario.start_manager(
            &interchange,
            ManagerOptions::new(&format!("m{kill}"), &["n1", "n2"]),
        );
        if kill == 0 {
            let mut client = RawClient::connect(&interchange);
            let submissions: Vec<TaskSubmission> = (0..N_TASKS)
                .map(|i| {
                    let mut submission = task(&format!("sleep 0.0{}; echo t-{i}", i % 10));
                    submission.resources = ResourceRequest::new().with("retries", 1000);
                    submission
                })
                .collect();
            tasks = submissions.iter().map(|task| task.task_id).collect();
            assert_eq!(client.submit(submissions), N_TASKS as u32);
        }
        // The moment of the kill is what the seed chooses (not a wait for
        // anything): somewhere in the first 0.6 s of this interchange.
        std::thread::sleep(Duration::from_millis(rng.below(600)));
        kill_9(&mut interchange);
        drop(manager);
    }
    let last = run.start("interchange-last", &[]);
    let manager = scenario.start_manager(&last, ManagerOptions::new("m-last", &["n1", "n2"]));
    let mut client = RawClient::connect(&last);
    // The watch connection asserts that no task gets a second result.
    client.watch(tasks.clone());
    for (i, task_id) in tasks.iter().enumerate() {
        let result = client.wait_result(*task_id, WAIT);
        assert_completed(&result);
        assert_eq!(stdout_of(&result), format!("t-{i}\n"));
    }
    let report = client.status();
    assert_eq!(
        (report.n_queued, report.n_completed, report.n_failed),
        (0, N_TASKS as u64, 0),
        "{report:?}"
    );
    drop(manager);
}

/// Short thresholds for the harness's daemons: a killed peer is noticed
/// within 2 s.
const THRESHOLD: [&str; 2] = ["--heartbeat-threshold", "2"];
/// Managers in a mixed run.
const N_MANAGERS: usize = 3;

/// What each run of a task leaves behind: its shell's pid in
/// `starts/<task>.<block>.<pid>` once it starts, and a line `<task>
/// <block>` appended to `ends.log` when it runs to its end.
struct Evidence {
    starts: PathBuf,
    ends: PathBuf,
}

/// One run of a task that started.
struct Start {
    task: String,
    block: String,
    pid: i32,
}

impl Evidence {
    fn new(scenario: &Scenario) -> Self {
        let starts = scenario.file("starts");
        std::fs::create_dir(&starts).expect("create the starts directory");
        Evidence {
            starts,
            ends: scenario.file("ends.log"),
        }
    }

    /// A command that records its start, sleeps `millis`, and records its end.
    fn command(&self, millis: u64) -> String {
        format!(
            "start='{starts}/'\"$RHTEX_TASK_ID.$PARSL_WORKER_BLOCK_ID.$$\"; \
             echo $$ > \"$start.part\" && mv \"$start.part\" \"$start\" && \
             sleep {seconds}.{fraction:03} && \
             echo \"$RHTEX_TASK_ID $PARSL_WORKER_BLOCK_ID\" >> '{ends}'",
            starts = self.starts.display(),
            seconds = millis / 1000,
            fraction = millis % 1000,
            ends = self.ends.display(),
        )
    }

    fn starts(&self) -> Vec<Start> {
        std::fs::read_dir(&self.starts)
            .expect("list the starts directory")
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let mut parts = name.splitn(3, '.');
                let (task, block, pid) = (parts.next()?, parts.next()?, parts.next()?);
                Some(Start {
                    task: task.to_owned(),
                    block: block.to_owned(),
                    pid: pid.parse().ok()?,
                })
            })
            .collect()
    }

    /// The shells of `block`'s tasks that still run.
    fn running_on(&self, block: &str) -> Vec<i32> {
        self.starts()
            .into_iter()
            .filter(|start| start.block == block && process_runs(start.pid))
            .map(|start| start.pid)
            .collect()
    }

    /// Each run to its end: task and block.
    fn ends(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.ends)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(task, block)| (task.to_owned(), block.to_owned()))
            .collect()
    }
}

/// A mixed run of `n_tasks`: 0.2 to 1 s each, one node or two (one in
/// five), three priorities, one in four without retries (the others 3).
fn mixed_run(evidence: &Evidence, rng: &mut Rng, n_tasks: usize) -> Vec<TaskSubmission> {
    (0..n_tasks)
        .map(|i| {
            let submission = task(&evidence.command(200 + 100 * rng.below(9)));
            let mut submission = on_nodes(submission, if i % 5 == 0 { 2 } else { 1 });
            let retries = if i % 4 == 0 { 0 } else { 3 };
            let priority = i64::try_from(rng.below(3)).expect("a small priority");
            submission.resources.insert("retries", retries);
            submission.resources.insert("priority", priority);
            submission
        })
        .collect()
}

/// Manager number `number` of a mixed run (a fresh manager id, block
/// `block-m<number>`): two nodes of two slots, short thresholds, `extra`.
fn crash_manager(
    scenario: &Scenario,
    interchange: &Interchange,
    number: usize,
    extra: &[&str],
) -> ManagerProcess {
    let name = format!("m{number}");
    let nodes = [format!("{name}-n1"), format!("{name}-n2")];
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut options = ManagerOptions::new(&name, &nodes).slots_per_node(2);
    options.extra_args.extend(strings(&THRESHOLD));
    options.extra_args.extend(strings(extra));
    scenario.start_manager(interchange, options)
}

/// A mixed run under way: an interchange (`interchange-0`) on the run
/// directory, [`N_MANAGERS`] managers registered, its tasks submitted.
struct Mixed {
    interchange: Interchange,
    managers: Vec<ManagerProcess>,
    client: RawClient,
    tasks: Vec<TaskId>,
}

impl Mixed {
    const N_TASKS: usize = 80;

    /// Starts it, each manager with `manager_extra` flags.
    fn start(run: &Run, evidence: &Evidence, rng: &mut Rng, manager_extra: &[&str]) -> Mixed {
        let interchange = run.start("interchange-0", &THRESHOLD);
        let managers: Vec<ManagerProcess> = (0..N_MANAGERS)
            .map(|number| crash_manager(run.scenario, &interchange, number, manager_extra))
            .collect();
        let mut client = RawClient::connect(&interchange);
        let ids: Vec<ManagerId> = managers.iter().map(|manager| manager.manager_id).collect();
        client.wait_managers(&ids);
        let submissions = mixed_run(evidence, rng, Self::N_TASKS);
        let tasks: Vec<TaskId> = submissions.iter().map(|task| task.task_id).collect();
        assert_eq!(client.submit(submissions), Self::N_TASKS as u32);
        Mixed {
            interchange,
            managers,
            client,
            tasks,
        }
    }
}

/// The moment of a kill: once `block` runs a task (observed by its start
/// file), then a seeded 0 to 0.5 s later.
fn kill_moment(evidence: &Evidence, block: &str, rng: &mut Rng) {
    wait_for(&format!("{block} to run a task"), WAIT, || {
        (!evidence.running_on(block).is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(rng.below(500)));
}

/// Waits until no shell of a task of the killed manager `block` runs (its
/// guardian kills them); one still running is adopted by the scenario, so
/// a failure leaves nothing behind.
fn assert_tasks_gone(scenario: &Scenario, evidence: &Evidence, block: &str) {
    for start in evidence.starts() {
        if start.block != block {
            continue;
        }
        if process_runs(start.pid) {
            scenario.adopt_process_group(start.pid);
        }
        wait_for(
            &format!("task {} of the killed {block} to be gone", start.task),
            WAIT,
            || (!process_runs(start.pid)).then_some(()),
        );
    }
}

/// Every task has its one result (the client fails on a second): completed
/// with exit code 0, or failed `manager_lost` by a manager that was killed;
/// and no task ran to its end twice unless on a killed manager.
fn check_outcomes(evidence: &Evidence, results: &[TaskResult], killed: &[ManagerProcess]) {
    let killed_blocks: HashSet<&str> = killed.iter().map(|dead| dead.block_id.as_str()).collect();
    let killed_ids: HashSet<ManagerId> = killed.iter().map(|dead| dead.manager_id).collect();
    let ends = evidence.ends();
    let mut n_failed = 0;
    for result in results {
        let task_id = result.task_id.to_string();
        let ended_on: Vec<&str> = ends
            .iter()
            .filter(|(task, _)| *task == task_id)
            .map(|(_, block)| block.as_str())
            .collect();
        let on_survivors = ended_on
            .iter()
            .filter(|block| !killed_blocks.contains(*block))
            .count();
        assert!(
            on_survivors <= 1,
            "task {task_id} ran to its end more than once on managers never killed: {ended_on:?}"
        );
        match result.state {
            TaskState::Completed => {
                assert_completed(result);
                assert!(!ended_on.is_empty(), "task {task_id} completed unrun");
            }
            TaskState::Failed => {
                n_failed += 1;
                let kind = result.error.as_ref().map(|error| error.kind);
                assert_eq!(kind, Some(ErrorKind::ManagerLost), "{result:#?}");
                if let Some(manager_id) = result.manager_id {
                    assert!(killed_ids.contains(&manager_id), "{result:#?}");
                }
                assert_eq!(on_survivors, 0, "task {task_id} ended, yet failed");
            }
            other => panic!("task {task_id} ended {other:?}: {result:#?}"),
        }
    }
    let on_killed = ends
        .iter()
        .filter(|(_, block)| killed_blocks.contains(block.as_str()))
        .count();
    eprintln!(
        "{} tasks: {} completed, {n_failed} failed manager_lost; {} runs started, \
         {} ended ({on_killed} on the {} killed managers)",
        results.len(),
        results.len() - n_failed,
        evidence.starts().len(),
        ends.len(),
        killed.len(),
    );
}

#[test]
fn seeded_kill_9s_of_managers_leave_every_task_one_result_and_no_task_process() {
    const N_KILLS: usize = 5;
    let mut rng = crash_rng();
    let scenario = Scenario::new("crash-managers");
    let run = Run::new(&scenario);
    let evidence = Evidence::new(&scenario);
    let Mixed {
        interchange,
        mut managers,
        mut client,
        tasks,
    } = Mixed::start(&run, &evidence, &mut rng, &[]);

    let mut killed = Vec::new();
    for kill in 0..N_KILLS {
        let victim = usize::try_from(rng.below(N_MANAGERS as u64)).expect("an index");
        kill_moment(&evidence, &managers[victim].block_id, &mut rng);
        // As a batch system would: the block is gone, a new one starts.
        let fresh = crash_manager(&scenario, &interchange, N_MANAGERS + kill, &[]);
        let mut dead = std::mem::replace(&mut managers[victim], fresh);
        assert_eq!(describe(dead.daemon.kill_group()), "signal 9");
        assert_tasks_gone(&scenario, &evidence, &dead.block_id);
        killed.push(dead);
    }
    let results: Vec<TaskResult> = tasks
        .iter()
        .map(|task_id| client.wait_result(*task_id, WAIT))
        .collect();
    check_outcomes(&evidence, &results, &killed);
}

#[test]
fn seeded_kill_9s_of_the_interchange_and_a_manager_at_once_leave_every_task_one_result() {
    const N_ROUNDS: usize = 4;
    // Managers that outlive the interchange register again with the next.
    const REATTACH: [&str; 2] = ["--reattach-timeout", "60"];
    let mut rng = crash_rng();
    let scenario = Scenario::new("crash-both");
    let run = Run::new(&scenario);
    let evidence = Evidence::new(&scenario);
    let Mixed {
        mut interchange,
        mut managers,
        tasks,
        ..
    } = Mixed::start(&run, &evidence, &mut rng, &REATTACH);

    let mut killed = Vec::new();
    // The managers alive through a restart: each must register again.
    let mut survivors = HashSet::new();
    for round in 0..N_ROUNDS {
        let victim = usize::try_from(rng.below(N_MANAGERS as u64)).expect("an index");
        kill_moment(&evidence, &managers[victim].block_id, &mut rng);
        // Both signals before either is waited for.
        interchange.daemon.signal(Signal::SIGKILL);
        managers[victim].daemon.signal(Signal::SIGKILL);
        interchange.daemon.wait_exit(WAIT);
        let restarted = run.restart(
            &format!("interchange-{}", round + 1),
            &interchange,
            &THRESHOLD,
        );
        interchange = restarted;
        let fresh = crash_manager(&scenario, &interchange, N_MANAGERS + round, &REATTACH);
        let mut dead = std::mem::replace(&mut managers[victim], fresh);
        assert_eq!(describe(dead.daemon.wait_exit(WAIT)), "signal 9");
        assert_tasks_gone(&scenario, &evidence, &dead.block_id);
        survivors.retain(|block: &String| *block != dead.block_id);
        killed.push(dead);
        survivors.extend(
            managers
                .iter()
                .enumerate()
                .filter(|(index, _)| *index != victim)
                .map(|(_, manager)| manager.block_id.clone()),
        );
    }
    let mut client = RawClient::connect(&interchange);
    client.watch(tasks.clone());
    let results: Vec<TaskResult> = tasks
        .iter()
        .map(|task_id| client.wait_result(*task_id, WAIT))
        .collect();
    check_outcomes(&evidence, &results, &killed);
    for manager in managers
        .iter_mut()
        .filter(|manager| survivors.contains(&manager.block_id))
    {
        let exit = manager.daemon.try_exit().map(describe);
        assert_eq!(
            exit, None,
            "{} outlived a restart, then exited",
            manager.block_id
        );
        let what = format!("{} to register again after a restart", manager.block_id);
        wait_for(&what, WAIT, || {
            let log = manager.daemon.log();
            log.contains("registered again with the interchange")
                .then_some(())
        });
    }
}

/// A manager whose process freezes (SIGSTOP: its connection stays open but
/// says nothing, as a half-open one) gets no new task once the interchange
/// drops it at the heartbeat threshold; its task is retried elsewhere per
/// `retries` and has exactly one result; thawed (SIGCONT), it registers
/// again, its stale copy of the task is killed, and it takes new work.
#[test]
fn a_frozen_manager_is_dropped_its_task_retried_elsewhere_and_reconciled_when_it_resumes() {
    let scenario = Scenario::new("frozen-manager");
    let run = Run::new(&scenario);
    let interchange = run.start("interchange", &[]);
    // It would wait 10 minutes before giving up on the interchange itself.
    let mut options = ManagerOptions::new("frozen", &["f1"]);
    options.extra_args = strings(&["--heartbeat-threshold", "600"]);
    let frozen = scenario.start_manager(&interchange, options);
    let mut client = RawClient::connect(&interchange);
    client.wait_managers(&[frozen.manager_id]);

    // First attempt: writes its pid and sleeps; a later one ends at once.
    let (pid_file, marker) = (scenario.file("first.pid"), scenario.file("attempted"));
    let command = format!(
        "if [ -e '{marker}' ]; then echo retried; else touch '{marker}'; {sleep}; fi",
        marker = marker.display(),
        sleep = e2e::client::pid_then_sleep(&pid_file),
    );
    let mut submission = task(&command);
    submission.resources = ResourceRequest::new().with("retries", 1);
    let task_id = client.submit_one(submission);
    let running = client.wait_running(task_id);
    assert_eq!(running.manager_id, Some(frozen.manager_id));
    let stale_group = e2e::client::wait_pid_file(&pid_file);
    scenario.adopt_process_group(stale_group);
    let spare = scenario.start_manager(&interchange, ManagerOptions::new("spare", &["s1"]));
    client.wait_managers(&[spare.manager_id]);

    frozen.daemon.signal(Signal::SIGSTOP);
    // Dropped at the threshold (3 s here): the task runs again on the spare.
    let result = client.wait_result(task_id, WAIT);
    assert_completed(&result);
    assert_eq!(result.manager_id, Some(spare.manager_id), "{result:#?}");
    assert_eq!(stdout_of(&result), "retried\n");
    let report = client.status();
    assert!(
        report
            .managers
            .iter()
            .all(|info| info.manager_id != frozen.manager_id),
        "the frozen manager is dropped: {report:#?}"
    );
    // New work goes to the spare only, the frozen one still frozen.
    let meanwhile = client.submit_one(task("echo meanwhile"));
    let meanwhile_result = client.wait_result(meanwhile, WAIT);
    assert_completed(&meanwhile_result);
    assert_eq!(meanwhile_result.manager_id, Some(spare.manager_id));
    assert!(process_runs(stale_group), "the stale copy runs on, frozen");

    // Thawed: it registers again; its copy of the task, which the
    // interchange no longer has running there, is killed; the task keeps
    // its one result; the manager takes new work.
    frozen.daemon.signal(Signal::SIGCONT);
    wait_for("the stale copy of the task to be killed", WAIT, || {
        (!process_runs(stale_group)).then_some(())
    });
    client.wait_manager_idle("the thawed manager back, idle", frozen.manager_id, WAIT);
    assert_eq!(client.task_status(task_id).result, Some(result));
    assert!(!client.has_result(task_id), "a second result");
    let log = frozen.daemon.log();
    assert!(
        log.contains("the interchange does not know this manager; registering again"),
        "{log}"
    );
    // Two one-node tasks at once: one on each manager.
    let pair_tasks: Vec<TaskSubmission> = (0..2)
        .map(|i| task(&format!("sleep 1; echo pair-{i}")))
        .collect();
    let pair: Vec<TaskId> = pair_tasks.iter().map(|task| task.task_id).collect();
    assert_eq!(client.submit(pair_tasks), 2);
    let mut managers: Vec<Option<ManagerId>> = pair
        .iter()
        .map(|task_id| client.wait_result(*task_id, WAIT).manager_id)
        .collect();
    managers.sort();
    let mut expected = vec![Some(frozen.manager_id), Some(spare.manager_id)];
    expected.sort();
    assert_eq!(managers, expected);
}
