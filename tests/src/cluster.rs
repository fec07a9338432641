//! The real multi-node Slurm cluster of the cluster tests
//! (`tests/cluster/cluster.sh`): one slurmd per network namespace, slurmctld
//! and the interchange in the root namespace, on the bridge address.
//!
//! - [`acquire`] brings the cluster up once per test binary (idempotent
//!   `cluster.sh up 4`, which also recovers a half-up cluster), then gives
//!   the calling test the whole cluster: tests serialise on one lock, and
//!   each starts with every node healed and idle and no job left.
//! - [`Cluster`] runs Slurm's commands (sbatch, squeue, scancel) and cuts or
//!   heals a node's network, every command under a timeout.
//! - [`Block`] fills the block template of `deploy/slurm/` with the
//!   interchange's own renderer (the provider's code, so the tests submit
//!   exactly what the provider would) and submits it; the job is cancelled
//!   when the `Block` is dropped.
//! - [`start_bridge_interchange`] starts an interchange whose manager socket
//!   is on the bridge address, where the nodes reach it.

use crate::scenario::{Interchange, Scenario, Security};
use crate::{binary, workspace_dir, POLL_INTERVAL, WAIT};
use interchange::provider::batch::run_command_any_status;
use interchange::provider::script::{render, ScriptValues};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Nodes of the test cluster.
pub const N_NODES: usize = 4;

/// The bound on `cluster.sh install` plus `cluster.sh up` (apt-get may run).
pub const CLUSTER_UP_TIMEOUT: Duration = Duration::from_secs(900);

/// The bound on one Slurm command (sbatch, squeue, scancel, sinfo).
pub const SLURM_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The bound on a block going from `sbatch` to a registered manager.
pub const BLOCK_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The cluster script.
pub fn cluster_script() -> PathBuf {
    workspace_dir().join("tests/cluster/cluster.sh")
}

/// The block template the Slurm provider uses.
pub fn slurm_template() -> PathBuf {
    workspace_dir().join("deploy/slurm/pool-manager.sbatch")
}

/// What a finished command said.
#[derive(Clone, Debug)]
pub struct CommandOutput {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    fn describe(&self, what: &str) -> String {
        format!(
            "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `program args` in its own process group, with no stdin; kills the
/// whole group if it runs longer than `timeout` (the provider's own bounded
/// runner). Errors name the command.
pub fn run_command(
    program: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<CommandOutput, String> {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let output = run_command_any_status(&program.to_string_lossy(), &args, timeout)
        .map_err(|error| error.to_string())?;
    Ok(CommandOutput {
        success: output.status.success(),
        status: crate::daemon::describe(output.status),
        stdout: output.stdout,
        stderr: output.stderr,
    })
}

/// Runs a command that must succeed; panics with its output if it does not.
fn must_run(program: &str, args: &[&str], timeout: Duration) -> CommandOutput {
    let output = run_command(Path::new(program), args, timeout)
        .unwrap_or_else(|message| panic!("{message}"));
    assert!(
        output.success,
        "{}",
        output.describe(&format!("{program} {}", args.join(" ")))
    );
    output
}

/// The cluster as `cluster.sh env` describes it.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Node names, `rhnode1`... (also each node's host name).
    pub nodes: Vec<String>,
    /// The bridge address of the root namespace, where the nodes reach the
    /// interchange.
    pub head_address: String,
    pub cpus_per_node: u32,
    /// The daemons' logs (slurmctld.log, slurmd-NODE.log).
    pub log_dir: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static WHOLE_CLUSTER: Mutex<()> = Mutex::new(());

/// The whole cluster for one test: holds the lock until dropped.
#[derive(Debug)]
pub struct ClusterGuard {
    _lock: MutexGuard<'static, ()>,
    pub cluster: &'static Cluster,
}

impl std::ops::Deref for ClusterGuard {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        self.cluster
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        // Leave no job and no cut behind, even when the test failed.
        for node in &self.cluster.nodes {
            let _ = self.cluster.heal(node);
        }
        self.cluster.cancel_all_jobs();
    }
}

/// Brings the cluster up (once per test binary) and takes the whole
/// cluster for the calling test: every node healed and idle, no job.
/// Fails at once, saying so, when not run as root; panics with the
/// script's output when the cluster cannot come up (see
/// tests/cluster/README.md).
pub fn acquire() -> ClusterGuard {
    testkit::require_root(
        "it brings up a Slurm cluster of network namespaces and a bridge with \
         tests/cluster/cluster.sh; see tests/cluster/README.md",
    );
    let lock = WHOLE_CLUSTER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let cluster = match CLUSTER.get_or_init(bring_up) {
        Ok(cluster) => cluster,
        Err(message) => panic!("the test cluster is not available:\n{message}"),
    };
    for node in &cluster.nodes {
        let _ = cluster.heal(node);
    }
    cluster.cancel_all_jobs();
    // Idempotent: a no-op on a healthy cluster, a fresh one after a crash.
    if let Err(message) = cluster_command(&["up", &N_NODES.to_string()]) {
        panic!("cluster.sh up {N_NODES} failed:\n{message}");
    }
    cluster.wait_all_idle();
    ClusterGuard {
        _lock: lock,
        cluster,
    }
}

fn cluster_command(args: &[&str]) -> Result<CommandOutput, String> {
    let output = run_command(&cluster_script(), args, CLUSTER_UP_TIMEOUT)?;
    if output.success {
        Ok(output)
    } else {
        Err(output.describe(&format!("cluster.sh {}", args.join(" "))))
    }
}

fn bring_up() -> Result<Cluster, String> {
    cluster_command(&["install"])?;
    cluster_command(&["up", &N_NODES.to_string()])?;
    let facts: BTreeMap<String, String> = cluster_command(&["env"])?
        .stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    let fact = |key: &str| {
        facts
            .get(key)
            .cloned()
            .ok_or_else(|| format!("cluster.sh env printed no {key}: {facts:?}"))
    };
    let nodes: Vec<String> = fact("RHTEX_CLUSTER_NODES")?
        .split(',')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    if nodes.len() != N_NODES {
        return Err(format!(
            "expected {N_NODES} nodes, cluster.sh env says {nodes:?}"
        ));
    }
    let cpus_per_node = fact("RHTEX_CLUSTER_CPUS")?
        .parse()
        .map_err(|error| format!("RHTEX_CLUSTER_CPUS: {error}"))?;
    Ok(Cluster {
        nodes,
        head_address: fact("RHTEX_CLUSTER_HEAD_ADDRESS")?,
        cpus_per_node,
        log_dir: PathBuf::from(fact("RHTEX_CLUSTER_LOG_DIR")?),
    })
}

impl Cluster {
    /// Cuts the network of `node`: its packets are dropped silently.
    pub fn cut(&self, node: &str) {
        cluster_command(&["cut", node]).unwrap_or_else(|message| panic!("{message}"));
    }

    /// Undoes [`Cluster::cut`].
    pub fn heal(&self, node: &str) -> Result<(), String> {
        cluster_command(&["heal", node]).map(|_| ())
    }

    /// Submits `script` with `sbatch --parsable` from `cwd`; returns the job id.
    pub fn sbatch(&self, script: &Path, cwd: &Path) -> String {
        let output = run_command(
            Path::new("sbatch"),
            &[
                "--parsable",
                "--chdir",
                &cwd.display().to_string(),
                &script.display().to_string(),
            ],
            SLURM_COMMAND_TIMEOUT,
        )
        .unwrap_or_else(|message| panic!("{message}"));
        assert!(output.success, "{}", output.describe("sbatch"));
        let job_id = output
            .stdout
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(
            !job_id.is_empty() && job_id.chars().all(|c| c.is_ascii_digit()),
            "sbatch --parsable printed {:?}, not a job id",
            output.stdout
        );
        job_id
    }

    /// The ids of every job Slurm knows (pending, running, completing).
    pub fn job_ids(&self) -> Vec<String> {
        must_run("squeue", &["-h", "-o", "%i"], SLURM_COMMAND_TIMEOUT)
            .stdout
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// The state of job `job_id` (`PENDING`, `RUNNING`...), or `None` if
    /// squeue does not list it (ended, or squeue failed).
    pub fn job_state(&self, job_id: &str) -> Option<String> {
        let output = run_command(
            Path::new("squeue"),
            &["-h", "-j", job_id, "-o", "%T"],
            SLURM_COMMAND_TIMEOUT,
        )
        .ok()?;
        let state = output.stdout.trim();
        (output.success && !state.is_empty()).then(|| state.to_owned())
    }

    /// Whether job `job_id` has left the queue: squeue answers and does not
    /// list it, or no longer knows the id. A failing squeue is not "gone".
    pub fn job_gone(&self, job_id: &str) -> bool {
        match run_command(
            Path::new("squeue"),
            &["-h", "-j", job_id, "-o", "%T"],
            SLURM_COMMAND_TIMEOUT,
        ) {
            Ok(output) if output.success => output.stdout.trim().is_empty(),
            Ok(output) => output.stderr.contains("Invalid job id"),
            Err(_) => false,
        }
    }

    /// Waits (bounded) until job `job_id` has left the queue.
    pub fn wait_job_gone(&self, job_id: &str, timeout: Duration) {
        crate::wait_for(&format!("job {job_id} to end"), timeout, || {
            self.job_gone(job_id).then_some(())
        });
    }

    /// The exit code of a finished job's batch script, from `scontrol show
    /// job` (which remembers a job for `MinJobAge`, 30 s, after it ends).
    pub fn job_exit_code(&self, job_id: &str) -> Option<i32> {
        let output = run_command(
            Path::new("scontrol"),
            &["-o", "show", "job", job_id],
            SLURM_COMMAND_TIMEOUT,
        )
        .ok()?;
        output
            .stdout
            .split_whitespace()
            .find_map(|word| word.strip_prefix("ExitCode="))
            .and_then(|code| code.split(':').next())
            .and_then(|code| code.parse().ok())
    }

    /// `scancel JOB`; errors are ignored (the job may be gone).
    pub fn scancel(&self, job_id: &str) {
        let _ = run_command(Path::new("scancel"), &[job_id], SLURM_COMMAND_TIMEOUT);
    }

    /// Cancels every job and waits (bounded) until the queue is empty.
    pub fn cancel_all_jobs(&self) {
        let Ok(output) = run_command(
            Path::new("squeue"),
            &["-h", "-o", "%i"],
            SLURM_COMMAND_TIMEOUT,
        ) else {
            return;
        };
        let job_ids: Vec<&str> = output.stdout.split_whitespace().collect();
        if job_ids.is_empty() {
            return;
        }
        let _ = run_command(Path::new("scancel"), &job_ids, SLURM_COMMAND_TIMEOUT);
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match run_command(
                Path::new("squeue"),
                &["-h", "-o", "%i"],
                SLURM_COMMAND_TIMEOUT,
            ) {
                Ok(output) if output.stdout.trim().is_empty() => return,
                _ => std::thread::sleep(POLL_INTERVAL * 5),
            }
        }
    }

    /// Waits (bounded) until every node is idle (no job, not completing).
    pub fn wait_all_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let output = must_run("sinfo", &["-h", "-N", "-o", "%N %t"], SLURM_COMMAND_TIMEOUT);
            let idle = output
                .stdout
                .lines()
                .filter(|line| line.split_whitespace().nth(1) == Some("idle"))
                .count();
            if idle >= self.nodes.len() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster's nodes did not all become idle; sinfo says:\n{}\n{}",
                output.stdout,
                self.log_tails()
            );
            std::thread::sleep(POLL_INTERVAL * 5);
        }
    }

    /// The last lines of slurmctld's and every slurmd's log, for failures.
    pub fn log_tails(&self) -> String {
        let mut text = String::new();
        let mut names = vec!["slurmctld.log".to_owned()];
        names.extend(self.nodes.iter().map(|node| format!("slurmd-{node}.log")));
        for name in names {
            let path = self.log_dir.join(&name);
            let content = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = content.lines().collect();
            let start = lines.len().saturating_sub(15);
            text.push_str(&format!(
                "---- {} ----\n{}\n",
                path.display(),
                lines[start..].join("\n")
            ));
        }
        text
    }
}

/// Starts an interchange for the cluster: clients on 127.0.0.1, managers on
/// the bridge address (where the nodes reach it), short heartbeats unless
/// `extra` sets them, and waits for its ready line.
pub fn start_bridge_interchange(
    scenario: &Scenario,
    cluster: &Cluster,
    name: &str,
    security: &Security,
    extra: &[&str],
) -> Interchange {
    let interchange = scenario.start_interchange_in(
        name,
        &scenario.file(&format!("{name}-run")),
        security,
        &format!("tcp://{}:0", cluster.head_address),
        extra,
    );
    assert!(
        interchange.manager_url.contains(&cluster.head_address),
        "the interchange's manager socket {} is not on the bridge address {}",
        interchange.manager_url,
        cluster.head_address
    );
    interchange
}

/// The values of the block script for a block of `nodes` nodes for
/// `interchange`, as the Slurm provider fills its template: output and run
/// directory in the scenario directory, the interchange's heartbeats, a
/// walltime of 30 minutes.
pub fn block_values(
    scenario: &Scenario,
    interchange: &Interchange,
    block_id: &str,
    nodes: u32,
    launcher: &str,
) -> ScriptValues {
    let path = |path: PathBuf| path.display().to_string();
    ScriptValues {
        block_id: block_id.to_owned(),
        nodes,
        walltime: Some("00:30:00".to_owned()),
        partition: None,
        account: None,
        output: path(scenario.file(&format!("{block_id}.out"))),
        scheduler_options: Vec::new(),
        worker_init: String::new(),
        interchange: interchange.manager_url.clone(),
        keys_dir: interchange
            .security
            .keys_dir()
            .map(|dir| path(dir.to_path_buf())),
        run_dir: path(scenario.file(&format!("{block_id}-run"))),
        pool_manager: path(binary("pool-manager")),
        launcher: launcher.to_owned(),
        heartbeat_period: crate::HEARTBEAT_PERIOD.to_owned(),
        heartbeat_threshold: crate::HEARTBEAT_THRESHOLD.to_owned(),
    }
}

/// A block: a submitted batch job of the block template. Dropping it
/// cancels the job.
#[derive(Debug)]
pub struct Block {
    pub job_id: String,
    pub block_id: String,
    pub script: PathBuf,
    pub output: PathBuf,
    cluster: Cluster,
}

impl Block {
    /// Renders the template with `values`, writes it to the scenario
    /// directory and submits it with sbatch.
    pub fn submit(scenario: &Scenario, cluster: &Cluster, values: &ScriptValues) -> Block {
        let template = std::fs::read_to_string(slurm_template())
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", slurm_template().display()));
        let text = render(&template, values).unwrap_or_else(|error| {
            panic!("cannot render {}: {error}", slurm_template().display())
        });
        assert!(
            !text.contains("{{"),
            "a placeholder of {} is left in the rendered script:\n{text}",
            slurm_template().display()
        );
        let script = scenario.file(&format!("{}.sbatch", values.block_id));
        std::fs::write(&script, text)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", script.display()));
        let job_id = cluster.sbatch(&script, scenario.path());
        Block {
            job_id,
            block_id: values.block_id.clone(),
            script,
            output: PathBuf::from(&values.output),
            cluster: cluster.clone(),
        }
    }

    /// What the job wrote to its output file so far.
    pub fn output_text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- block {} (job {}) output {} ----\n{}",
                self.block_id,
                self.job_id,
                self.output.display(),
                self.output_text()
            );
            eprintln!("{}", self.cluster.log_tails());
        }
        self.cluster.scancel(&self.job_id);
    }
}

/// Compiles `tests/cluster/mpi_ranks.c` with mpicc into the scenario
/// directory; returns the program's path.
pub fn compile_mpi_ranks(scenario: &Scenario) -> PathBuf {
    let program = scenario.file("mpi_ranks");
    let source = workspace_dir().join("tests/cluster/mpi_ranks.c");
    must_run(
        "mpicc",
        &[
            "-O1",
            "-o",
            &program.display().to_string(),
            &source.display().to_string(),
        ],
        Duration::from_secs(120),
    );
    program
}
