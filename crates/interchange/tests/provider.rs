//! The block providers with the real `interchange` binary: PBS against
//! recording fake `qsub`/`qstat`/`qdel` (tests/fakes/pbs) put first on
//! PATH, the batch templates run by bash with a recording fake
//! pool-manager, and the local provider end to end with real pool-managers
//! on this host (`cargo build --workspace --bins` first; the test says so).
//!
//! Every wait is bounded; every process is started in its own process group
//! and killed by it.

mod common;

use common::RawClient;
use nix::sys::signal::Signal;
use protocol::{
    BlockInfo, BlockState, Command, ErrorKind, ReadyLine, Reply, ResourceRequest, StatusReport,
    TaskId, TaskResult, TaskState, TaskSubmission, ToClient,
};
use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use testkit::{read_interchange_ready, wait_for, Daemon, Launch, Stdout};
use transport::sockets::ClientSecurity;

const WAIT: Duration = Duration::from_secs(60);

/// The interchange process, in its own process group, killed on drop; its
/// log is printed if the test fails.
struct Interchange {
    daemon: Daemon,
    client_url: String,
    /// As bound (a restart listens on it again, for the blocks to find it).
    manager_url: String,
}

impl Interchange {
    /// Writes `config` to `<dir>/interchange.toml` and starts the
    /// interchange with it, with `path_first` first on PATH and `env` set.
    fn start(dir: &Path, config: &str, path_first: Option<&Path>, env: &[(&str, &Path)]) -> Self {
        let config_path = dir.join("interchange.toml");
        std::fs::write(&config_path, config).expect("write the config");
        let mut launch = Launch::new("interchange", env!("CARGO_BIN_EXE_interchange"))
            .args(["--config".as_ref(), config_path.as_os_str()])
            .args(["--log-level", "debug"])
            .cwd(dir)
            .stdout(Stdout::Piped);
        for (key, value) in env {
            launch = launch.env(key, value);
        }
        if let Some(first) = path_first {
            launch = launch.path_first(first);
        }
        let mut daemon = Daemon::spawn(dir, launch);
        let ready = read_interchange_ready(&mut daemon, WAIT);
        Self {
            daemon,
            client_url: ready.client_url,
            manager_url: ready.manager_url,
        }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        self.daemon.wait_exit(WAIT)
    }

    /// The `shutdown` command through `client`, answered `done`; then the
    /// interchange must exit 0.
    fn shut_down(&mut self, client: &mut Client) {
        match client.command(Command::Shutdown) {
            Reply::Done { .. } => {}
            other => panic!("expected done, got {other:?}"),
        }
        let status = self.wait_exit();
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}

impl Drop for Interchange {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.daemon.log();
            eprintln!("---- interchange log ----\n{log}---- end of interchange log ----");
        }
    }
}

/// A raw protocol client that keeps the results it receives.
struct Client {
    raw: RawClient,
    results: HashMap<TaskId, TaskResult>,
}

impl Client {
    fn connect(url: &str, keys_dir: &Path) -> Self {
        let keys = transport::keys::load_client_keys(keys_dir).expect("load the client keys");
        let raw = RawClient::connect(url, &ClientSecurity::Curve(keys), "provider-test", WAIT);
        Self {
            raw,
            results: HashMap::new(),
        }
    }

    fn receive(&mut self) -> ToClient {
        let Some(message) = self.raw.receive(WAIT) else {
            panic!("no message from the interchange within {WAIT:?}");
        };
        if let ToClient::Results { results } = &message {
            for result in results {
                self.results.insert(result.task_id, result.clone());
            }
        }
        message
    }

    /// Submits `command` on `num_nodes` nodes; its result is kept when it
    /// comes.
    fn submit(&mut self, command: &str, num_nodes: u32) -> TaskId {
        self.submit_all(&[(command, num_nodes)])[0]
    }

    /// Submits several tasks in one message.
    fn submit_all(&mut self, tasks: &[(&str, u32)]) -> Vec<TaskId> {
        let submissions: Vec<TaskSubmission> = tasks
            .iter()
            .map(|(command, num_nodes)| TaskSubmission {
                resources: ResourceRequest::new().with("num_nodes", i64::from(*num_nodes)),
                ..TaskSubmission::new(TaskId::new_random(), *command)
            })
            .collect();
        let task_ids = submissions.iter().map(|task| task.task_id).collect();
        let request_id = self.raw.send_submit(submissions);
        loop {
            if let ToClient::Submitted {
                request_id: answered,
                ..
            } = self.receive()
            {
                if answered == request_id {
                    return task_ids;
                }
            }
        }
    }

    fn result(&mut self, task_id: TaskId) -> TaskResult {
        let deadline = Instant::now() + WAIT;
        while !self.results.contains_key(&task_id) {
            assert!(
                Instant::now() < deadline,
                "no result for {task_id} within {WAIT:?}"
            );
            self.receive();
        }
        self.results[&task_id].clone()
    }

    fn command(&mut self, command: Command) -> Reply {
        let request_id = self.raw.send_command(command);
        loop {
            if let ToClient::Reply {
                request_id: answered,
                reply,
            } = self.receive()
            {
                if answered == request_id {
                    return reply;
                }
            }
        }
    }

    fn status(&mut self) -> StatusReport {
        match self.command(Command::Status) {
            Reply::Status(report) => report,
            other => panic!("expected a status report, got {other:?}"),
        }
    }

    /// Polls `status` until `probe` accepts it.
    fn wait_status<T>(
        &mut self,
        what: &str,
        mut probe: impl FnMut(&StatusReport) -> Option<T>,
    ) -> T {
        wait_for(what, WAIT, || probe(&self.status()))
    }
}

/// A temporary directory holding a fresh key directory `keys`.
fn temp_dir_with_keys() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let keys = temp.path().join("keys");
    transport::keygen(&keys).expect("generate keys");
    (temp, keys)
}

/// A temporary directory with a fresh key directory `keys` and the state
/// directory `<dir>/<kind>` of the fake batch system `kind` (`pbs`,
/// `slurm`), created empty.
struct FakeBatch {
    temp: tempfile::TempDir,
    keys: PathBuf,
    state: PathBuf,
    kind: &'static str,
}

impl FakeBatch {
    fn new(kind: &'static str) -> Self {
        let (temp, keys) = temp_dir_with_keys();
        let state = temp.path().join(kind);
        std::fs::create_dir(&state).expect("create the fake batch system's directory");
        Self {
            temp,
            keys,
            state,
            kind,
        }
    }

    fn dir(&self) -> &Path {
        self.temp.path()
    }

    /// The interchange's config: run directory `run`, these keys, the
    /// top-level `settings` lines, then a `[provider]` section of this
    /// kind with the `provider` lines.
    fn config(&self, settings: &str, provider: &str) -> String {
        format!(
            "run_dir = \"run\"\nkeys_dir = \"{keys}\"\n{settings}[provider]\nkind = \"{kind}\"\n{provider}",
            keys = self.keys.display(),
            kind = self.kind,
        )
    }

    /// Starts the interchange with `config` and this fake batch system
    /// first on PATH, and connects a client.
    fn start(&self, config: &str) -> (Interchange, Client) {
        let variable = format!("RHTEX_FAKE_{}", self.kind.to_uppercase());
        let interchange = Interchange::start(
            self.dir(),
            config,
            Some(&fakes_dir(self.kind)),
            &[(variable.as_str(), &self.state)],
        );
        let client = Client::connect(&interchange.client_url, &self.keys);
        (interchange, client)
    }
}

fn fakes_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fakes")
        .join(name)
}

/// The recorded calls of the fake batch system: one argv per call.
fn calls(state: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(state.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

fn calls_of(state: &Path, program: &str) -> Vec<Vec<String>> {
    calls(state)
        .into_iter()
        .filter(|call| call[0] == program)
        .collect()
}

/// A recording fake pool-manager: writes its arguments, one a line, and
/// some of its environment to `<dir>/pool-manager-args`.
fn fake_pool_manager(dir: &Path) -> PathBuf {
    let path = dir.join("fake-pool-manager");
    std::fs::write(
        &path,
        "#!/bin/bash\nprintf '%s\\n' \"$@\" > \"$(dirname \"$0\")/pool-manager-args\"\n\
         echo \"cwd=$PWD\" > \"$(dirname \"$0\")/pool-manager-env\"\n\
         echo \"FROM_WORKER_INIT=${FROM_WORKER_INIT:-}\" >> \"$(dirname \"$0\")/pool-manager-env\"\n",
    )
    .expect("write the fake pool-manager");
    let mut permissions = std::fs::metadata(&path).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&path, permissions).expect("chmod");
    path
}

/// Runs a rendered batch script with bash and `env`, bounded.
fn run_script(script: &Path, env: &[(&str, &str)]) {
    let mut child = Process::new("/bin/bash")
        .arg(script)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("run the script");
    let status = wait_for("the batch script to end", WAIT, || {
        child.try_wait().expect("wait for the script")
    });
    assert!(status.success(), "{} failed: {status:?}", script.display());
}

/// Fails unless every one of `lines` is a whole line of `script`.
fn assert_has_lines(script: &str, lines: &[String]) {
    for line in lines {
        assert!(
            script.lines().any(|script_line| script_line == line),
            "no line {line:?} in the script:\n{script}"
        );
    }
}

/// The batch job ids of the blocks `status` lists, in its order.
fn job_ids(report: &StatusReport) -> Vec<String> {
    report
        .blocks
        .iter()
        .map(|block| block.job_id.clone())
        .collect()
}

fn block(report: &StatusReport, block_id: &str) -> Option<BlockInfo> {
    report
        .blocks
        .iter()
        .find(|block| block.block_id == block_id)
        .cloned()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn pbs_blocks_are_submitted_watched_reported_and_deleted_through_qsub_qstat_qdel() {
    let batch = FakeBatch::new("pbs");
    let (dir, keys, state) = (batch.dir(), &batch.keys, &batch.state);
    let pool_manager = fake_pool_manager(dir);
    let config = batch.config(
        "manager_listen = \"tcp://0.0.0.0:0\"\n",
        &format!(
            "queue = \"workq\"\naccount = \"proj42\"\n\
             walltime = \"00:10:00\"\nnodes_per_block = 2\nmax_blocks = 2\n\
             manager_address = \"gateway.test\"\npoll_period = 0.2\n\
             scheduler_options = \"#PBS -l mem=1gb\"\n\
             worker_init = \"export FROM_WORKER_INIT='module load mpich'\"\n\
             pool_manager = \"{pool_manager}\"\n",
            pool_manager = pool_manager.display(),
        ),
    );
    let (mut interchange, mut client) = batch.start(&config);

    // Larger than a block: refused at once.
    let too_big = client.submit("true", 3);
    let result = client.result(too_big);
    assert_eq!(result.state, TaskState::Failed);
    assert_eq!(
        result.error.map(|error| error.kind),
        Some(ErrorKind::Unschedulable)
    );

    // Two 2-node tasks: two blocks.
    client.submit("true", 2);
    client.submit("true", 2);
    let blocks = client.wait_status("two blocks queued in PBS", |report| {
        let queued: Vec<BlockInfo> = report
            .blocks
            .iter()
            .filter(|block| block.state == BlockState::Pending && !block.job_id.is_empty())
            .cloned()
            .collect();
        (queued.len() == 2).then_some(queued)
    });
    assert_eq!(calls_of(state, "qsub").len(), 2, "{:?}", calls(state));
    let first = &blocks[0];
    assert_eq!(first.job_id, "1.fakepbs");
    assert_eq!(first.provider, "pbs");
    assert_eq!(first.n_nodes, 2);
    assert_eq!(first.manager_id, None);
    let run_dir = std::fs::canonicalize(dir.join("run")).expect("the run directory");
    let script_path = run_dir.join(format!("blocks/{}.sh", first.block_id));
    let output_path = run_dir.join(format!("blocks/{}.out", first.block_id));
    assert_eq!(
        first.output_path.as_deref(),
        Some(output_path.to_str().expect("UTF-8 path"))
    );
    assert!(blocks[1].block_id != first.block_id);

    // qsub got the script, which is the template filled in.
    assert_eq!(
        calls_of(state, "qsub")[0],
        vec!["qsub".to_owned(), script_path.display().to_string()]
    );
    let script = std::fs::read_to_string(state.join("scripts/1.sh")).expect("the submitted script");
    let manager_port = {
        let text = std::fs::read_to_string(run_dir.join("interchange.json")).expect("ready file");
        let ready = ReadyLine::parse(&text).expect("a ready line");
        let port = ready.manager_url.rsplit(':').next().expect("a port");
        port.to_owned()
    };
    assert_has_lines(
        &script,
        &[
            format!("#PBS -N {}", first.block_id),
            "#PBS -l select=2".to_owned(),
            "#PBS -l walltime=00:10:00".to_owned(),
            "#PBS -q workq".to_owned(),
            "#PBS -A proj42".to_owned(),
            format!("#PBS -o {}", output_path.display()),
            "#PBS -l mem=1gb".to_owned(),
            "export FROM_WORKER_INIT='module load mpich'".to_owned(),
            format!("RHTEX_BLOCK_ID='{}'", first.block_id),
            format!("RHTEX_INTERCHANGE='tcp://gateway.test:{manager_port}'"),
            format!(
                "RHTEX_KEYS_DIR='{}'",
                std::fs::canonicalize(keys).expect("keys").display()
            ),
            format!("RHTEX_POOL_MANAGER='{}'", pool_manager.display()),
            "RHTEX_LAUNCHER='mpiexec'".to_owned(),
        ],
    );
    assert!(!script.contains("{{"), "{script}");

    // The script, run as PBS would on the lead node, starts the
    // pool-manager with the block's settings and node file.
    let nodefile = dir.join("nodefile");
    std::fs::write(&nodefile, "n1\nn1\nn2\nn2\n").expect("write the node file");
    run_script(
        &state.join("scripts/1.sh"),
        &[
            ("PBS_JOBID", "1.fakepbs"),
            ("PBS_NODEFILE", nodefile.to_str().expect("UTF-8")),
        ],
    );
    let block_run_dir = run_dir.join("blocks").join(&first.block_id);
    assert_eq!(
        lines(&dir.join("pool-manager-args")),
        vec![
            "--interchange".to_owned(),
            format!("tcp://gateway.test:{manager_port}"),
            "--block-id".to_owned(),
            first.block_id.clone(),
            "--launcher".to_owned(),
            "mpiexec".to_owned(),
            "--nodefile".to_owned(),
            nodefile.display().to_string(),
            "--run-dir".to_owned(),
            block_run_dir.display().to_string(),
            "--heartbeat-period".to_owned(),
            "30".to_owned(),
            "--heartbeat-threshold".to_owned(),
            "120".to_owned(),
            "--keys-dir".to_owned(),
            std::fs::canonicalize(keys)
                .expect("keys")
                .display()
                .to_string(),
        ]
    );
    assert_eq!(
        lines(&dir.join("pool-manager-env")),
        vec![
            format!("cwd={}", block_run_dir.display()),
            "FROM_WORKER_INIT=module load mpich".to_owned(),
        ]
    );

    // qstat is asked about both jobs.
    wait_for("qstat about both jobs", WAIT, || {
        calls_of(state, "qstat")
            .iter()
            .any(|call| call[1..] == ["1.fakepbs".to_owned(), "2.fakepbs".to_owned()])
            .then_some(())
    });

    // Job 1 ends without its manager registering: reported, with its output.
    std::fs::remove_file(state.join("jobs/1")).expect("end job 1");
    let failed = client.wait_status("block 1 reported failed", |report| {
        block(report, &first.block_id).filter(|block| block.state == BlockState::Failed)
    });
    let message = failed.message.expect("a message");
    assert!(message.contains("job 1.fakepbs ended"), "{message}");
    assert!(
        message.contains("without its manager registering"),
        "{message}"
    );
    assert!(
        message.contains(&output_path.display().to_string()),
        "{message}"
    );
    let log = std::fs::read_to_string(dir.join("interchange.log")).expect("the log");
    assert!(
        log.contains("block's job ended without its manager registering"),
        "{log}"
    );

    // Shutdown deletes the block left (job 2) and the interchange exits.
    interchange.shut_down(&mut client);
    assert_eq!(
        calls_of(state, "qdel"),
        vec![vec!["qdel".to_owned(), "2.fakepbs".to_owned()]],
        "{:?}",
        calls(state)
    );
    assert_eq!(
        calls_of(state, "qsub").len(),
        2,
        "no block resubmitted at once"
    );
}

#[test]
fn a_refused_pbs_submission_is_reported_with_the_stderr_of_qsub() {
    let batch = FakeBatch::new("pbs");
    let state = &batch.state;
    std::fs::write(batch.state.join("qsub-fails"), "").expect("make qsub fail");
    let (interchange, mut client) = batch.start(&batch.config(
        "manager_listen = \"tcp://127.0.0.1:0\"\n",
        "poll_period = 0.2\n",
    ));
    client.submit("true", 1);
    let failed = client.wait_status("the failed submission in status", |report| {
        report
            .blocks
            .iter()
            .find(|block| block.state == BlockState::Failed)
            .cloned()
    });
    assert_eq!(failed.job_id, "");
    let message = failed.message.expect("a message");
    assert!(message.contains("submission failed"), "{message}");
    assert!(message.contains("qsub: Unknown queue"), "{message}");
    assert!(message.contains("exit status 1"), "{message}");
    // Backing off: the task still waits, and no second qsub comes while
    // the interchange answers a few more status requests.
    for _ in 0..5 {
        let report = client.status();
        assert_eq!(report.n_queued, 1);
    }
    assert_eq!(calls_of(state, "qsub").len(), 1, "{:?}", calls(state));
    drop(interchange);
}

#[test]
fn slurm_blocks_go_through_sbatch_squeue_and_scancel() {
    let batch = FakeBatch::new("slurm");
    let (dir, state) = (batch.dir(), &batch.state);
    let (mut interchange, mut client) = batch.start(&batch.config(
        "manager_listen = \"tcp://0.0.0.0:0\"\n",
        "partition = \"debug\"\nnodes_per_block = 2\n\
         max_blocks = 2\nmanager_address = \"10.77.0.1\"\npoll_period = 0.2\n",
    ));
    client.submit("true", 2);
    client.submit("true", 2);
    let pending = client.wait_status("two blocks submitted with sbatch", |report| {
        let job_ids: Vec<&str> = report
            .blocks
            .iter()
            .map(|block| block.job_id.as_str())
            .collect();
        (job_ids == ["1", "2"]).then(|| report.blocks[0].clone())
    });
    assert_eq!(pending.provider, "slurm");
    let run_dir = std::fs::canonicalize(dir.join("run")).expect("the run directory");
    let script_path = run_dir.join(format!("blocks/{}.sh", pending.block_id));
    assert_eq!(
        calls_of(state, "sbatch")[0],
        vec![
            "sbatch".to_owned(),
            "--parsable".to_owned(),
            script_path.display().to_string()
        ]
    );
    let script = std::fs::read_to_string(state.join("scripts/1.sh")).expect("the script");
    assert_has_lines(
        &script,
        &[
            format!("#SBATCH --job-name={}", pending.block_id),
            "#SBATCH --nodes=2".to_owned(),
            "#SBATCH --partition=debug".to_owned(),
            "#SBATCH --exclusive".to_owned(),
            "RHTEX_LAUNCHER='srun'".to_owned(),
        ],
    );
    assert!(
        script.contains("RHTEX_INTERCHANGE='tcp://10.77.0.1:"),
        "{script}"
    );
    assert!(
        !script.contains("#SBATCH --time") && !script.contains("#SBATCH --account"),
        "unset settings leave their lines out:\n{script}"
    );

    // squeue is asked about the job; its word for the state shows.
    set_job_state(state, 1, "RUNNING");
    client.wait_status("the block running", |report| {
        block(report, &pending.block_id).filter(|block| block.state == BlockState::Running)
    });
    let expected = [
        "--noheader".to_owned(),
        "--states=all".to_owned(),
        "--format=%i %T".to_owned(),
        "--jobs=1,2".to_owned(),
    ];
    wait_for("squeue asked about both jobs", WAIT, || {
        calls_of(state, "squeue")
            .iter()
            .any(|call| call[1..] == expected)
            .then_some(())
    });
    // It fails before its manager registers: reported with Slurm's word.
    set_job_state(state, 1, "FAILED");
    let failed = client.wait_status("the block failed", |report| {
        block(report, &pending.block_id).filter(|block| block.state == BlockState::Failed)
    });
    let message = failed.message.expect("a message");
    assert!(
        message.contains("job 1 ended (FAILED) without its manager registering"),
        "{message}"
    );

    // SIGTERM stops the interchange and keeps the work: the block left
    // (job 2) is not cancelled (the next interchange on the run directory
    // adopts it), and the interchange exits 0. (The backoff held a
    // replacement for job 1 back.)
    interchange.daemon.signal(Signal::SIGTERM);
    let status = interchange.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(calls_of(state, "scancel"), Vec::<Vec<String>>::new());
    assert!(interchange.daemon.log().contains("blocks kept running"));
    assert_eq!(calls_of(state, "sbatch").len(), 2, "{:?}", calls(state));
}

#[test]
fn without_a_journal_sigterm_cancels_the_blocks() {
    let batch = FakeBatch::new("slurm");
    let state = &batch.state;
    let (mut interchange, mut client) = batch.start(&batch.config(
        "journal = false\nmanager_listen = \"tcp://127.0.0.1:0\"\n",
        "nodes_per_block = 1\nmax_blocks = 1\npoll_period = 0.2\n",
    ));
    client.submit("true", 1);
    client.wait_status("a block submitted", |report| {
        (job_ids(report) == ["1"]).then_some(())
    });
    // Nothing could adopt the block after a restart: SIGTERM cancels it.
    interchange.daemon.signal(Signal::SIGTERM);
    let status = interchange.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(
        calls_of(state, "scancel"),
        vec![vec!["scancel".to_owned(), "1".to_owned()]]
    );
    assert!(interchange
        .daemon
        .log()
        .contains("without a journal (--no-journal) no next interchange could adopt them"));
}

#[test]
fn after_sigterm_a_restarted_interchange_adopts_the_slurm_blocks_and_shutdown_cancels_them() {
    let (batch, config, mut first, client, blocks) = two_slurm_blocks_one_running();
    let state = &batch.state;
    first.daemon.signal(Signal::SIGTERM);
    let status = first.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");
    drop(client);
    assert_eq!(calls_of(state, "scancel"), Vec::<Vec<String>>::new());

    let (mut second, mut client) = batch.start(&config);
    let adopted = wait_two_blocks_adopted(&mut client);
    let block_ids = |blocks: &[BlockInfo]| -> Vec<String> {
        blocks.iter().map(|block| block.block_id.clone()).collect()
    };
    assert_eq!(block_ids(&adopted.blocks), block_ids(&blocks));
    assert_eq!(adopted.n_queued, 2);
    assert_eq!(
        calls_of(state, "sbatch").len(),
        2,
        "no block submitted anew: {:?}",
        calls(state)
    );
    // `shutdown` ends the work: both jobs are cancelled.
    second.shut_down(&mut client);
    let mut cancelled: Vec<String> = calls_of(state, "scancel")
        .into_iter()
        .flat_map(|call| call.into_iter().skip(1))
        .collect();
    cancelled.sort();
    assert_eq!(cancelled, ["1", "2"]);
}

/// The config of the adoption tests: Slurm blocks of 2 nodes, 2 at most.
fn two_block_slurm_config(batch: &FakeBatch) -> String {
    batch.config(
        "manager_listen = \"tcp://127.0.0.1:0\"\n",
        "nodes_per_block = 2\nmax_blocks = 2\npoll_period = 0.2\n",
    )
}

/// A fake Slurm, [`two_block_slurm_config`], and the interchange with it:
/// two 2-node tasks queued, their two blocks submitted (jobs 1 and 2) and
/// job 1 running; gives the config and the blocks too.
fn two_slurm_blocks_one_running() -> (FakeBatch, String, Interchange, Client, Vec<BlockInfo>) {
    let batch = FakeBatch::new("slurm");
    let config = two_block_slurm_config(&batch);
    let (interchange, mut client) = batch.start(&config);
    client.submit("true", 2);
    client.submit("true", 2);
    let blocks = client.wait_status("two blocks submitted", |report| {
        (job_ids(report) == ["1", "2"]).then(|| report.blocks.clone())
    });
    set_job_state(&batch.state, 1, "RUNNING");
    client.wait_status("block 1 running", |report| {
        (report.blocks.first()?.state == BlockState::Running).then_some(())
    });
    (batch, config, interchange, client, blocks)
}

/// Waits until a restarted interchange lists jobs 1 and 2 again, asked
/// about: running and pending.
fn wait_two_blocks_adopted(client: &mut Client) -> StatusReport {
    client.wait_status("the two blocks adopted and asked about", |report| {
        let states: Vec<BlockState> = report.blocks.iter().map(|block| block.state).collect();
        (job_ids(report) == ["1", "2"] && states == [BlockState::Running, BlockState::Pending])
            .then(|| report.clone())
    })
}

#[test]
fn the_slurm_template_starts_the_pool_manager_with_the_block_settings() {
    use interchange::provider::script::{render, ScriptValues};
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let pool_manager = fake_pool_manager(dir);
    let run_dir = dir.join("blocks/rhtex-t-1");
    let values = ScriptValues {
        block_id: "rhtex-t-1".to_owned(),
        nodes: 4,
        walltime: Some("01:00:00".to_owned()),
        partition: Some("debug".to_owned()),
        account: None,
        output: dir.join("blocks/rhtex-t-1.out").display().to_string(),
        scheduler_options: vec!["#SBATCH --signal=B:TERM@120".to_owned()],
        worker_init: "FROM_WORKER_INIT=yes; export FROM_WORKER_INIT".to_owned(),
        interchange: "tcp://10.77.0.1:5000".to_owned(),
        keys_dir: None,
        run_dir: run_dir.display().to_string(),
        pool_manager: pool_manager.display().to_string(),
        launcher: "srun".to_owned(),
        heartbeat_period: "2".to_owned(),
        heartbeat_threshold: "10.5".to_owned(),
    };
    let script = render(interchange::provider::SLURM_TEMPLATE, &values).expect("renders");
    let header: Vec<&str> = script
        .lines()
        .filter(|line| line.starts_with("#SBATCH"))
        .collect();
    assert_eq!(
        header,
        vec![
            "#SBATCH --job-name=rhtex-t-1",
            "#SBATCH --nodes=4",
            "#SBATCH --time=01:00:00",
            "#SBATCH --partition=debug",
            "#SBATCH --exclusive",
            &format!("#SBATCH --output={}", values.output),
            "#SBATCH --signal=B:TERM@120",
        ]
    );
    let path = dir.join("block.sh");
    std::fs::write(&path, &script).expect("write the script");
    run_script(
        &path,
        &[("SLURM_JOB_ID", "77"), ("SLURM_JOB_NODELIST", "node[1-4]")],
    );
    assert_eq!(
        lines(&dir.join("pool-manager-args")),
        vec![
            "--interchange",
            "tcp://10.77.0.1:5000",
            "--block-id",
            "rhtex-t-1",
            "--launcher",
            "srun",
            "--run-dir",
            run_dir.to_str().expect("UTF-8"),
            "--heartbeat-period",
            "2",
            "--heartbeat-threshold",
            "10.5",
            "--insecure",
        ]
    );
    assert_eq!(
        lines(&dir.join("pool-manager-env")),
        vec![
            format!("cwd={}", run_dir.display()),
            "FROM_WORKER_INIT=yes".to_owned()
        ]
    );
}

// ---------------------------------------------------------------------
// The local provider
// ---------------------------------------------------------------------

/// The pool-manager binary: from RHTEX_BIN_DIR, else next to the
/// interchange; the test fails with the command to run if it is not built.
fn pool_manager_binary() -> PathBuf {
    testkit::binary_next_to(Path::new(env!("CARGO_BIN_EXE_interchange")), "pool-manager")
}

/// Processes whose command line mentions `text` or whose working
/// directory is under it.
fn processes_mentioning(text: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&bytes).replace('\0', " ");
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        if cmdline.contains(text) || cwd.starts_with(text) {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            found.push((pid, format!("{cmdline} [{stat}]")));
        }
    }
    found
}

fn pid_exists(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

fn local_config(dir: &Path, keys: &Path, pool_manager: &Path, max_blocks: u32) -> String {
    format!(
        "run_dir = \"{run}\"\nkeys_dir = \"{keys}\"\nmanager_listen = \"tcp://0.0.0.0:0\"\n\
         heartbeat_period = 0.5\nheartbeat_threshold = 20\n\
         [provider]\nkind = \"local\"\nnodes_per_block = 1\nmax_blocks = {max_blocks}\n\
         max_idle = 1\npoll_period = 0.2\npool_manager = \"{pool_manager}\"\n",
        run = dir.join("run").display(),
        keys = keys.display(),
        pool_manager = pool_manager.display(),
    )
}

/// The interchange with local blocks of real pool-managers (at most
/// `max_blocks`) and a connected client, in a fresh temporary directory.
fn start_local(max_blocks: u32) -> (tempfile::TempDir, Interchange, Client) {
    let pool_manager = pool_manager_binary();
    let (temp, keys) = temp_dir_with_keys();
    let dir = temp.path();
    let config = local_config(dir, &keys, &pool_manager, max_blocks);
    let interchange = Interchange::start(dir, &config, None, &[]);
    let client = Client::connect(&interchange.client_url, &keys);
    (temp, interchange, client)
}

#[test]
fn local_blocks_start_run_tasks_idle_out_and_none_is_left_after_shutdown() {
    let (temp, mut interchange, mut client) = start_local(2);
    let dir = temp.path();

    let too_big = client.submit("true", 2);
    assert_eq!(
        client.result(too_big).error.map(|error| error.kind),
        Some(ErrorKind::Unschedulable)
    );

    // Two tasks at once: two blocks, each a real pool-manager.
    let tasks = client.submit_all(&[("echo first from $PARSL_MPI_PREFIX", 1), ("echo second", 1)]);
    for task_id in tasks {
        let result = client.result(task_id);
        assert_eq!(result.state, TaskState::Completed, "{result:?}");
        assert!(
            result
                .block_id
                .as_deref()
                .is_some_and(|block_id| block_id.starts_with("rhtex-")),
            "{result:?}"
        );
    }
    let report = client.status();
    assert_eq!(report.blocks.len(), 2, "{:?}", report.blocks);
    let job_ids = job_ids(&report);
    for block in &report.blocks {
        assert_eq!(block.provider, "local");
        assert!(
            pid_exists(&block.job_id) || block.state == BlockState::Ended,
            "{block:?}"
        );
    }

    // Idle for max_idle: both drained, their pool-managers exit and are reaped.
    client.wait_status("both blocks ended after idling", |report| {
        (report.blocks.len() == 2
            && report
                .blocks
                .iter()
                .all(|block| block.state == BlockState::Ended)
            && report.managers.is_empty())
        .then_some(())
    });
    wait_for("the idle pool-managers to be gone", WAIT, || {
        job_ids.iter().all(|pid| !pid_exists(pid)).then_some(())
    });
    let log = std::fs::read_to_string(dir.join("interchange.log")).expect("the log");
    assert!(log.contains("draining idle block"), "{log}");

    // New work: a new block.
    let third = client.submit("echo third", 1);
    let result = client.result(third);
    assert_eq!(result.state, TaskState::Completed, "{result:?}");
    let report = client.status();
    let third_block = report
        .blocks
        .iter()
        .find(|block| Some(&block.block_id) == result.block_id.as_ref())
        .cloned()
        .unwrap_or_else(|| panic!("no block {:?} in {:?}", result.block_id, report.blocks));
    assert!(!job_ids.contains(&third_block.job_id), "{third_block:?}");

    // Shutdown: the interchange exits 0 and no process of this test's
    // blocks is left, zombie or not.
    interchange.shut_down(&mut client);
    assert!(
        !pid_exists(&third_block.job_id),
        "pool-manager {} left",
        third_block.job_id
    );
    let left = processes_mentioning(&dir.display().to_string());
    assert!(left.is_empty(), "processes left: {left:?}");
}

/// Whether process `pid` runs (exists and is no zombie: an orphan whose
/// reaper has not reaped it yet has ended).
fn pid_alive(pid: &str) -> bool {
    std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Kills the process group of a local pool-manager when dropped (it was
/// started in a group of its own, and outlives the interchange that
/// started it).
struct KillGroupOnDrop(String);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Ok(pgid) = self.0.parse::<i32>() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

#[test]
fn sigterm_keeps_the_local_blocks_and_a_restart_adopts_them_without_starting_new_ones() {
    let pool_manager = pool_manager_binary();
    let (temp, keys) = temp_dir_with_keys();
    let dir = temp.path();
    let config = local_config(dir, &keys, &pool_manager, 1);
    let mut first = Interchange::start(dir, &config, None, &[]);
    let mut client = Client::connect(&first.client_url, &keys);
    // A task that runs until the block is stopped.
    client.submit("sleep 600", 1);
    let block = client.wait_status("the block's manager runs the task", |report| {
        (report.n_running == 1)
            .then(|| report.blocks.first().cloned())
            .flatten()
    });
    let _kill_block = KillGroupOnDrop(block.job_id.clone());
    assert_eq!(block.state, BlockState::Connected);
    assert!(pid_alive(&block.job_id));

    // SIGTERM stops the interchange and keeps the work: the pool-manager
    // and its task run on.
    first.daemon.signal(Signal::SIGTERM);
    let status = first.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");
    drop(client);
    assert!(
        pid_alive(&block.job_id),
        "pool-manager {} stopped",
        block.job_id
    );
    assert!(first.daemon.log().contains("blocks kept running"));

    // Restarted on the same run directory and manager address: the same
    // block is adopted, its manager registers again with its task, and no
    // pool-manager is started anew.
    let config = config.replace(
        "manager_listen = \"tcp://0.0.0.0:0\"",
        &format!("manager_listen = \"{}\"", first.manager_url),
    );
    let mut second = Interchange::start(dir, &config, None, &[]);
    let mut client = Client::connect(&second.client_url, &keys);
    let adopted = client.wait_status(
        "the block adopted, its manager back with its task",
        |report| {
            (report.n_running == 1
                && report.blocks.len() == 1
                && report.blocks[0].state == BlockState::Connected)
                .then(|| report.blocks[0].clone())
        },
    );
    assert_eq!(
        (adopted.block_id.as_str(), adopted.job_id.as_str()),
        (block.block_id.as_str(), block.job_id.as_str())
    );
    let log = second.daemon.log();
    assert!(log.contains("adopted a block"), "{log}");
    assert!(!log.contains("pool-manager started on this host"), "{log}");

    // `shutdown` ends the work: the adopted pool-manager is stopped, its
    // task killed, and nothing of this test's blocks is left.
    second.shut_down(&mut client);
    assert!(
        !pid_alive(&block.job_id),
        "pool-manager {} left",
        block.job_id
    );
    wait_for("the task's processes to be gone", WAIT, || {
        processes_mentioning(&dir.display().to_string())
            .is_empty()
            .then_some(())
    });
}

#[test]
fn a_restarted_interchange_adopts_its_slurm_blocks_instead_of_submitting_new_ones() {
    let (batch, config, mut first, client, _) = two_slurm_blocks_one_running();
    let state = &batch.state;
    first.daemon.signal(Signal::SIGKILL);
    first.wait_exit();
    drop(client);
    let n_squeue_before = calls_of(state, "squeue").len();

    let (second, mut client) = batch.start(&config);
    let report = wait_two_blocks_adopted(&mut client);
    assert_eq!(report.n_queued, 2, "{report:?}");
    assert!(calls_of(state, "squeue").len() > n_squeue_before);
    assert_eq!(
        calls_of(state, "sbatch").len(),
        2,
        "no block submitted anew: {:?}",
        calls(state)
    );
    assert!(second.daemon.log().contains("adopted a block"));
}

/// Sets the state word of a job of the fake Slurm, atomically (a new file
/// renamed over the old one), so a concurrent fake `squeue` never reads a
/// half-written state.
fn set_job_state(state: &Path, job: u32, word: &str) {
    let fresh = state.join(format!("jobs/.{job}.new"));
    std::fs::write(&fresh, format!("{word}\n")).expect("write a job state");
    std::fs::rename(&fresh, state.join(format!("jobs/{job}"))).expect("set a job state");
}
