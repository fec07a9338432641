//! Cluster tests: rhtex on a real multi-node Slurm cluster
//! (`tests/cluster/cluster.sh`, 4 nodes, each a network namespace with its
//! own slurmd and host name). Blocks are real `sbatch` jobs of the block
//! template in `deploy/slurm/`, whose pool-manager registers with an
//! interchange on the bridge address; tasks run with real `srun` and
//! MPICH `mpiexec` on the nodes the interchange placed them on.
//!
//! The first test brings the cluster up (idempotent, needs root); every test
//! takes the whole cluster ([`e2e::cluster::acquire`]), so they run one at a
//! time. Build the binaries first: `cargo build --workspace --bins`.

use e2e::client::{assert_completed, assert_error_kind, run_once_released, stdout_of};
use e2e::cluster::{self, Block, Cluster, ClusterGuard, BLOCK_START_TIMEOUT};
use e2e::{task, wait_for, Interchange, RawClient, Scenario, Security, WAIT};
use interchange::provider::script::ScriptValues;
use protocol::{
    ErrorKind, ManagerInfo, ResourceRequest, TaskId, TaskResult, TaskState, TaskSubmission,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// One test's world on the cluster: the cluster (held), a scenario
/// directory, a CURVE interchange on the bridge address and a client.
struct World {
    scenario: Scenario,
    interchange: Interchange,
    client: RawClient,
    // Dropped last: cancels every job and heals every node.
    cluster: ClusterGuard,
}

fn world(name: &str, interchange_flags: &[&str]) -> World {
    let cluster = cluster::acquire();
    let scenario = Scenario::new(&format!("cluster-{name}"));
    let keys = scenario.keygen("keys");
    let interchange = cluster::start_bridge_interchange(
        &scenario,
        &cluster,
        "interchange",
        &Security::Curve(keys),
        interchange_flags,
    );
    let client = RawClient::connect(&interchange);
    World {
        scenario,
        interchange,
        client,
        cluster,
    }
}

impl World {
    /// [`run_meeting_pair`] in this world, waiting at most [`WAIT`].
    fn run_meeting_pair(
        &mut self,
        prefix: &str,
        shape: (u32, u32, Sharing),
    ) -> (TaskResult, TaskResult) {
        run_meeting_pair(&self.scenario, &mut self.client, prefix, shape, WAIT)
    }

    fn block_values(&self, block_id: &str, nodes: u32, launcher: &str) -> ScriptValues {
        cluster::block_values(&self.scenario, &self.interchange, block_id, nodes, launcher)
    }

    fn submit_block(&self, values: &ScriptValues) -> Block {
        Block::submit(&self.scenario, &self.cluster, values)
    }

    /// Submits a block and waits until its pool-manager has registered.
    fn start_block(&mut self, values: &ScriptValues) -> (Block, ManagerInfo) {
        let block = self.submit_block(values);
        let manager = self.wait_block_manager(&block);
        assert_eq!(manager.n_nodes, values.nodes, "{manager:#?}");
        (block, manager)
    }

    /// Waits until a manager with the block's id is registered; fails at
    /// once if the block's job ends first.
    fn wait_block_manager(&mut self, block: &Block) -> ManagerInfo {
        let block_id = block.block_id.clone();
        let cluster: &Cluster = &self.cluster;
        self.client.wait_status(
            &format!(
                "the pool-manager of block {block_id} (job {}) to register",
                block.job_id
            ),
            BLOCK_START_TIMEOUT,
            |report| {
                let manager = report
                    .managers
                    .iter()
                    .find(|manager| manager.block_id == block_id)
                    .cloned();
                if manager.is_none() && cluster.job_gone(&block.job_id) {
                    panic!(
                        "block {block_id} (job {}) ended before its pool-manager registered; \
                         its output:\n{}",
                        block.job_id,
                        block.output_text()
                    );
                }
                manager
            },
        )
    }

    fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

/// An MPI task: `num_nodes` nodes, `ranks_per_node` ranks on each.
fn mpi_task(command: &str, num_nodes: u32, ranks_per_node: u32) -> TaskSubmission {
    let mut submission = task(command);
    submission.resources = ResourceRequest::new()
        .with("num_nodes", num_nodes)
        .with("ranks_per_node", ranks_per_node);
    submission
}

/// The same task, sharing its nodes with other such tasks.
fn packed(mut submission: TaskSubmission) -> TaskSubmission {
    submission.resources.insert("exclusive", false);
    submission
}

/// A command that every rank runs: prints its host name and the Slurm
/// step it runs in (`none` outside a step).
const REPORT_HOST: &str = "bash -c 'echo \"$(hostname) step=${SLURM_STEP_ID:-none}\"'";

/// Ranks per host from lines `HOST step=STEP` (what [`REPORT_HOST`] and
/// meet.sh print); every rank must have run inside a Slurm step, that is,
/// started by srun (itself, or as MPICH's proxy launcher), never by ssh
/// or a local fork.
fn ranks_per_host(result: &TaskResult) -> BTreeMap<String, u32> {
    let stdout = stdout_of(result);
    let mut counts = BTreeMap::new();
    for line in stdout
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        let Some((host, step)) = line.split_once(" step=") else {
            panic!(
                "unexpected line {line:?} in the output of {}:\n{stdout}",
                result.task_id
            );
        };
        assert!(
            !step.is_empty() && step.chars().all(|c| c.is_ascii_digit()),
            "a rank on {host} ran outside a Slurm step (step={step}): not started by srun\n{stdout}"
        );
        *counts.entry(host.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Asserts that the ranks landed exactly on the task's nodes, with
/// `ranks_per_node` on each.
fn assert_ranks_on_task_nodes(
    result: &TaskResult,
    ranks_per_host: &BTreeMap<String, u32>,
    n_nodes: usize,
    ranks_per_node: u32,
) {
    let task_nodes: BTreeSet<&str> = result.nodes.iter().map(String::as_str).collect();
    assert_eq!(task_nodes.len(), n_nodes, "the task's nodes: {result:#?}");
    let rank_hosts: BTreeSet<&str> = ranks_per_host.keys().map(String::as_str).collect();
    assert_eq!(
        rank_hosts,
        task_nodes,
        "ranks ran on {ranks_per_host:?}, the task was given {:?}; stdout:\n{}",
        result.nodes,
        stdout_of(result)
    );
    for (host, count) in ranks_per_host {
        assert_eq!(
            *count, ranks_per_node,
            "host {host} ran {count} ranks, not {ranks_per_node}: {ranks_per_host:?}"
        );
    }
}

/// Parses the lines `rhtex-rank R of N on HOST` of tests/cluster/mpi_ranks.c:
/// ranks per host, and checks that the ranks are 0..N-1 of one world of N
/// and that the reduction was right.
fn mpi_ranks_per_host(result: &TaskResult, n_ranks: u32) -> BTreeMap<String, u32> {
    let stdout = stdout_of(result);
    let mut per_host = BTreeMap::new();
    let mut ranks = BTreeSet::new();
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["rhtex-rank", rank, "of", size, "on", host, "step", step] = words[..] {
            assert_eq!(size, n_ranks.to_string(), "world size in {line:?}");
            assert!(
                step.chars().all(|c| c.is_ascii_digit()),
                "rank {rank} ran outside a Slurm step: {line:?}"
            );
            assert!(
                ranks.insert(rank.to_owned()),
                "rank {rank} twice:\n{stdout}"
            );
            *per_host.entry(host.to_owned()).or_insert(0) += 1;
        }
    }
    let expected: BTreeSet<String> = (0..n_ranks).map(|rank| rank.to_string()).collect();
    assert_eq!(ranks, expected, "ranks of the MPI hello:\n{stdout}");
    let sum: u32 = (0..n_ranks).sum();
    assert!(
        stdout.contains(&format!("rhtex-allreduce ok size {n_ranks} sum {sum}")),
        "the MPI reduction did not check out:\n{stdout}"
    );
    per_host
}

/// A script that two tasks run to prove they overlap: each rank leaves a
/// mark `<dir>/<self>.<host>.<n>`, prints its host name and Slurm step
/// (as [`REPORT_HOST`]), then waits
/// (bounded) until a mark of `<other>` exists. Run as
/// `meet.sh SELF OTHER DIR`.
fn write_meet_script(scenario: &Scenario) -> PathBuf {
    let path = scenario.file("meet.sh");
    std::fs::write(
        &path,
        "#!/bin/bash\n\
         self=$1 other=$2 dir=$3\n\
         mkdir -p \"$dir\"\n\
         touch \"$dir/$self.$(hostname).$$\"\n\
         echo \"$(hostname) step=${SLURM_STEP_ID:-none}\"\n\
         for attempt in $(seq 600); do\n\
         \x20   if compgen -G \"$dir/$other.*\" >/dev/null; then exit 0; fi\n\
         \x20   sleep 0.05\n\
         done\n\
         echo \"$self: $other never started (its ranks would have left marks in $dir)\" >&2\n\
         exit 1\n",
    )
    .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    make_executable(&path);
    path
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|error| panic!("cannot chmod {}: {error}", path.display()));
}

/// Two tasks that can only both complete if they run at the same time.
fn meeting_pair(
    scenario: &Scenario,
    prefix: &str,
    make: impl Fn(String) -> TaskSubmission,
) -> (TaskSubmission, TaskSubmission) {
    let script = write_meet_script(scenario);
    let dir = scenario.file(&format!("marks-{}", TaskId::new_random()));
    let command = |me: &str, other: &str| {
        format!(
            "{prefix} '{}' {me} {other} '{}'",
            script.display(),
            dir.display()
        )
    };
    (
        make(command("first", "second")),
        make(command("second", "first")),
    )
}

/// Whether the tasks of a pair take whole nodes or share them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sharing {
    Exclusive,
    Packed,
}

/// Submits a meeting pair (see [`meeting_pair`]) of MPI tasks of
/// `num_nodes` nodes and `ranks_per_node` ranks each, waits at most
/// `timeout` for both results and checks that each completed with its
/// ranks on its own nodes.
fn run_meeting_pair(
    scenario: &Scenario,
    client: &mut RawClient,
    prefix: &str,
    (num_nodes, ranks_per_node, sharing): (u32, u32, Sharing),
    timeout: Duration,
) -> (TaskResult, TaskResult) {
    let (first, second) = meeting_pair(scenario, prefix, |command| {
        let task = mpi_task(&command, num_nodes, ranks_per_node);
        match sharing {
            Sharing::Exclusive => task,
            Sharing::Packed => packed(task),
        }
    });
    let first = client.submit_one(first);
    let second = client.submit_one(second);
    let first = client.wait_result(first, timeout);
    let second = client.wait_result(second, timeout);
    for result in [&first, &second] {
        assert_completed(result);
        let n_nodes = usize::try_from(num_nodes).unwrap_or(usize::MAX);
        assert_ranks_on_task_nodes(result, &ranks_per_host(result), n_nodes, ranks_per_node);
    }
    (first, second)
}

fn disjoint(first: &[String], second: &[String]) -> bool {
    first.iter().all(|node| !second.contains(node))
}

// ---------------------------------------------------------------------------
// Blocks and rank placement
// ---------------------------------------------------------------------------

/// Runs [`REPORT_HOST`] under `$PARSL_MPI_PREFIX` and the MPI reduction program on a
/// 4-node block started with `launcher`, and checks where the ranks ran.
fn ranks_land_on_task_nodes(name: &str, launcher: &str) {
    let mut world = world(name, &[]);
    let program = cluster::compile_mpi_ranks(&world.scenario);
    let values = world.block_values(&format!("{name}-block"), 4, launcher);
    let (block, manager) = world.start_block(&values);
    assert_eq!(manager.launcher.as_str(), launcher, "{manager:#?}");
    assert!(
        world.cluster().nodes.contains(&manager.hostname),
        "the manager runs on {}, not on a cluster node {:?}",
        manager.hostname,
        world.cluster().nodes
    );

    // Every rank reports its host: 2 nodes with 3 ranks each.
    let hostnames =
        world
            .client
            .submit_one(mpi_task(&format!("$PARSL_MPI_PREFIX {REPORT_HOST}"), 2, 3));
    let result = world.client.wait_result(hostnames, WAIT);
    assert_completed(&result);
    assert_eq!(result.block_id.as_deref(), Some(block.block_id.as_str()));
    assert_ranks_on_task_nodes(&result, &ranks_per_host(&result), 2, 3);

    // An MPI program with a reduction: 3 nodes with 2 ranks each, one world.
    let hello = world.client.submit_one(mpi_task(
        &format!("$PARSL_MPI_PREFIX '{}'", program.display()),
        3,
        2,
    ));
    let result = world.client.wait_result(hello, WAIT);
    assert_completed(&result);
    assert_ranks_on_task_nodes(&result, &mpi_ranks_per_host(&result, 6), 3, 2);

    // All four nodes, one rank each.
    let whole = world.client.submit_one(mpi_task(
        &format!("$PARSL_MPI_PREFIX '{}'", program.display()),
        4,
        1,
    ));
    let result = world.client.wait_result(whole, WAIT);
    assert_completed(&result);
    assert_ranks_on_task_nodes(&result, &mpi_ranks_per_host(&result, 4), 4, 1);
    let all: BTreeSet<&String> = world.cluster().nodes.iter().collect();
    assert_eq!(result.nodes.iter().collect::<BTreeSet<_>>(), all);
}

#[test]
fn srun_block_registers_and_ranks_land_on_the_task_nodes() {
    ranks_land_on_task_nodes("srun", "srun");
}

#[test]
fn mpiexec_block_registers_and_ranks_land_on_the_task_nodes() {
    ranks_land_on_task_nodes("mpiexec", "mpiexec");
}

// ---------------------------------------------------------------------------
// Concurrent tasks
// ---------------------------------------------------------------------------

#[test]
fn two_two_node_tasks_at_once_in_one_block_never_share_a_node() {
    let mut world = world("share", &[]);
    let values = world.block_values("share-block", 4, "srun");
    let (block, _) = world.start_block(&values);
    let (first, second) = world.run_meeting_pair("$PARSL_MPI_PREFIX", (2, 2, Sharing::Exclusive));
    for result in [&first, &second] {
        assert_eq!(result.block_id.as_deref(), Some(block.block_id.as_str()));
    }
    assert!(
        disjoint(&first.nodes, &second.nodes),
        "two exclusive tasks shared a node: {:?} and {:?}",
        first.nodes,
        second.nodes
    );
}

#[test]
fn tasks_spread_over_two_blocks() {
    let mut world = world("two-blocks", &[]);
    let (block_a, _) = world.start_block(&world.block_values("two-a", 2, "srun"));
    let (block_b, _) = world.start_block(&world.block_values("two-b", 2, "srun"));
    let (first, second) = world.run_meeting_pair("$PARSL_MPI_PREFIX", (2, 1, Sharing::Exclusive));
    let blocks: BTreeSet<Option<&str>> = [&first, &second]
        .iter()
        .map(|result| result.block_id.as_deref())
        .collect();
    let expected: BTreeSet<Option<&str>> = [
        Some(block_a.block_id.as_str()),
        Some(block_b.block_id.as_str()),
    ]
    .into_iter()
    .collect();
    assert_eq!(blocks, expected, "one task in each block");
    assert!(disjoint(&first.nodes, &second.nodes));
}

/// Two packed (non-exclusive) one-node tasks on a one-node block share its
/// node; each waits for the other, so both steps must run at once. The
/// block asks for memory (`--mem`), so the job's `SLURM_MEM_PER_NODE`
/// would make each step claim all of it if it leaked into the tasks.
fn packed_tasks_start_together(name: &str, prefix: &str) {
    let mut world = world(name, &[]);
    let mut values = world.block_values(&format!("{name}-block"), 1, "srun");
    values.scheduler_options = vec!["#SBATCH --mem=1000".to_owned()];
    let (block, manager) = world.start_block(&values);
    assert!(
        manager.slots_per_node >= 2,
        "two one-rank tasks must fit on one node: {manager:#?}"
    );
    let (first, second) = world.run_meeting_pair(prefix, (1, 1, Sharing::Packed));
    for result in [&first, &second] {
        assert_eq!(result.block_id.as_deref(), Some(block.block_id.as_str()));
    }
    assert_eq!(
        first.nodes, second.nodes,
        "both tasks on the block's one node"
    );
}

#[test]
fn two_packed_srun_tasks_in_one_allocation_start_together() {
    packed_tasks_start_together("packed-srun", "$PARSL_SRUN_PREFIX");
}

#[test]
fn two_packed_mpiexec_tasks_in_one_allocation_start_together() {
    packed_tasks_start_together("packed-mpiexec", "$PARSL_MPIEXEC_PREFIX");
}

// ---------------------------------------------------------------------------
// Network partition of a block's lead node
// ---------------------------------------------------------------------------

/// The interchange's heartbeat threshold in this test, in seconds.
const CUT_THRESHOLD: u64 = 3;

#[test]
fn cutting_a_lead_node_loses_its_tasks_and_retries_run_on_the_other_block() {
    let threshold = CUT_THRESHOLD.to_string();
    let mut world = world(
        "cut",
        &[
            "--heartbeat-period",
            "0.2",
            "--heartbeat-threshold",
            &threshold,
        ],
    );
    // Block A's manager tolerates a long silence, so that it is still there
    // after the cut heals and hears that the interchange dropped it.
    let mut values_a = world.block_values("cut-a", 2, "srun");
    values_a.heartbeat_threshold = "120".to_owned();
    let (block_a, manager_a) = world.start_block(&values_a);

    // Two tasks run on A: one without retries, one with a retry that
    // succeeds only on block B.
    let mut lost = task("exec sleep 300");
    lost.resources = ResourceRequest::new()
        .with("num_nodes", 1)
        .with("retries", 0);
    let mut retried = task(&format!(
        "if [ \"$PARSL_WORKER_BLOCK_ID\" = cut-b ]; then $PARSL_MPI_PREFIX {REPORT_HOST}; \
         else exec sleep 300; fi"
    ));
    retried.resources = ResourceRequest::new()
        .with("num_nodes", 1)
        .with("retries", 1);
    let lost = world.client.submit_one(lost);
    let retried = world.client.submit_one(retried);
    for task_id in [lost, retried] {
        let info = world.client.wait_running(task_id);
        assert_eq!(info.manager_id, Some(manager_a.manager_id), "{info:#?}");
    }

    let (block_b, manager_b) = world.start_block(&world.block_values("cut-b", 2, "srun"));
    let lead_a = manager_a.hostname.clone();
    world.cluster().cut(&lead_a);

    // Lost within the threshold (plus slack for polling), not hanging.
    let bound = Duration::from_secs(CUT_THRESHOLD + 20);
    let lost_result = world.client.wait_result(lost, bound);
    assert_eq!(lost_result.state, TaskState::Failed, "{lost_result:#?}");
    assert_error_kind(&lost_result, ErrorKind::ManagerLost);
    let retried_result = world.client.wait_result(retried, WAIT);
    assert_completed(&retried_result);
    assert_eq!(retried_result.block_id.as_deref(), Some("cut-b"));
    assert_eq!(retried_result.manager_id, Some(manager_b.manager_id));
    assert_ranks_on_task_nodes(&retried_result, &ranks_per_host(&retried_result), 1, 1);
    assert!(!retried_result.nodes.contains(&lead_a));

    // Heal: A's manager speaks again, is told it is not registered, and
    // registers again listing its two tasks, which the interchange no
    // longer has running there: they are dropped (killed, not reported)
    // and A stays, running nothing. No task is reported a second time
    // (RawClient panics on a second result for a task).
    world
        .cluster()
        .heal(&lead_a)
        .unwrap_or_else(|message| panic!("{message}"));
    let report = world.client.wait_manager_idle(
        "the dropped manager to register again, running nothing",
        manager_a.manager_id,
        Duration::from_secs(90),
    );
    wait_for("block A's manager to kill both dropped tasks", WAIT, || {
        let output = block_a.output_text();
        (output.matches("dropped task ended; not reported").count() == 2).then_some(())
    });
    for (task_id, state) in [(lost, TaskState::Failed), (retried, TaskState::Completed)] {
        let info = world.client.task_status(task_id);
        assert_eq!(info.state, state, "{info:#?}");
        assert!(
            !world.client.has_result(task_id),
            "a second result for {task_id}"
        );
    }
    assert_eq!(report.n_completed, 1, "{report:#?}");
    assert_eq!(report.n_failed, 1, "{report:#?}");
    drop(block_b);
}

// ---------------------------------------------------------------------------
// The interchange's Slurm provider
// ---------------------------------------------------------------------------

/// An interchange config file with a Slurm `[provider]`: blocks of
/// `nodes_per_block` nodes, at most `max_blocks`, the pool-manager of this
/// build; the manager socket is the bridge address given as a flag.
fn write_slurm_provider_config(
    scenario: &Scenario,
    nodes_per_block: u32,
    max_blocks: u32,
) -> PathBuf {
    let path = scenario.file("interchange.toml");
    let config = format!(
        "[provider]\n\
         kind = \"slurm\"\n\
         nodes_per_block = {nodes_per_block}\n\
         min_blocks = 0\n\
         max_blocks = {max_blocks}\n\
         max_idle = 300\n\
         walltime = \"00:30:00\"\n\
         launcher = \"srun\"\n\
         poll_period = 0.5\n\
         pool_manager = \"{}\"\n",
        e2e::binary("pool-manager").display()
    );
    std::fs::write(&path, config)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    path
}

#[test]
fn the_slurm_provider_submits_blocks_from_demand_and_cancels_them_at_shutdown() {
    let cluster_guard = cluster::acquire();
    let scenario = Scenario::new("cluster-provider");
    let config = write_slurm_provider_config(&scenario, 2, 2);
    let keys = scenario.keygen("keys");
    let mut interchange = cluster::start_bridge_interchange(
        &scenario,
        &cluster_guard,
        "interchange",
        &Security::Curve(keys),
        &["--config", &config.display().to_string()],
    );
    let mut client = RawClient::connect(&interchange);
    assert!(cluster_guard.job_ids().is_empty(), "no block before demand");

    // More nodes than a block has: unschedulable at once, no block for it.
    let too_big = mpi_task("true", 3, 1);
    let too_big_id = too_big.task_id;
    assert_eq!(client.submit(vec![too_big]), 0, "a 3-node task is refused");
    let result = client.wait_result(too_big_id, WAIT);
    assert_error_kind(&result, ErrorKind::Unschedulable);

    // Two 2-node tasks that must overlap: two blocks, one task in each.
    let (first, second) = run_meeting_pair(
        &scenario,
        &mut client,
        "$PARSL_MPI_PREFIX",
        (2, 2, Sharing::Exclusive),
        BLOCK_START_TIMEOUT,
    );
    assert_ne!(first.block_id, second.block_id, "one task per block");
    assert!(disjoint(&first.nodes, &second.nodes));

    // The blocks are real jobs, listed by status with their job ids.
    let report = client.status();
    assert_eq!(report.blocks.len(), 2, "{:#?}", report.blocks);
    let job_ids: Vec<String> = report
        .blocks
        .iter()
        .map(|block| block.job_id.clone())
        .collect();
    let queued = cluster_guard.job_ids();
    for block in &report.blocks {
        assert_eq!(block.provider, "slurm", "{block:#?}");
        assert_eq!(block.n_nodes, 2, "{block:#?}");
        assert!(
            queued.contains(&block.job_id),
            "{block:#?} not in squeue {queued:?}"
        );
        assert!(
            [&first, &second]
                .iter()
                .any(|result| result.block_id.as_ref() == Some(&block.block_id)),
            "{block:#?}"
        );
    }
    assert!(report.blocks.len() <= 2, "max_blocks");

    // Shutdown: the interchange exits 0 and no block is left in Slurm.
    match client.command(protocol::Command::Shutdown) {
        protocol::Reply::Done { .. } => {}
        other => panic!("expected done, got {other:?}"),
    }
    let status = interchange.daemon.wait_exit(WAIT);
    assert_eq!(
        status.code(),
        Some(0),
        "interchange: {status:?}\n{}",
        interchange.daemon.log()
    );
    for job_id in &job_ids {
        cluster_guard.wait_job_gone(job_id, WAIT);
    }
    assert!(
        cluster_guard.job_ids().is_empty(),
        "jobs left after shutdown: {:?}",
        cluster_guard.job_ids()
    );
}

/// The job ids of the blocks a status lists, and the ids of its managers.
fn blocks_and_managers(report: &protocol::StatusReport) -> (BTreeSet<String>, BTreeSet<String>) {
    let jobs = report.blocks.iter().map(|block| block.job_id.clone());
    let managers = report
        .managers
        .iter()
        .map(|info| info.manager_id.to_string());
    (jobs.collect(), managers.collect())
}

#[test]
fn an_interchange_killed_while_its_slurm_blocks_run_adopts_them_when_restarted() {
    restarted_interchange_adopts_running_slurm_blocks(
        "cluster-adopt",
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[test]
fn an_interchange_stopped_by_sigterm_keeps_its_slurm_blocks_and_adopts_them_when_restarted() {
    restarted_interchange_adopts_running_slurm_blocks(
        "cluster-adopt-sigterm",
        nix::sys::signal::Signal::SIGTERM,
    );
}

/// Two blocks running a task each; the interchange stopped by `signal`
/// (SIGKILL: nothing cancels its blocks; SIGTERM: it keeps them) and
/// restarted on the same run directory and manager address adopts them:
/// the same jobs, their managers re-attached, no sbatch, each task run to
/// its end once.
fn restarted_interchange_adopts_running_slurm_blocks(name: &str, signal: nix::sys::signal::Signal) {
    let cluster_guard = cluster::acquire();
    let scenario = Scenario::new(name);
    let config = write_slurm_provider_config(&scenario, 2, 2);
    let security = Security::Curve(scenario.keygen("keys"));
    let run_dir = scenario.file("interchange-run");
    let flags = ["--config", &config.display().to_string()];
    let bridge = format!("tcp://{}:0", cluster_guard.head_address);
    let mut first =
        scenario.start_interchange_in("interchange-1", &run_dir, &security, &bridge, &flags);
    let mut client = RawClient::connect(&first);
    let (release, runs) = (scenario.file("release"), scenario.file("runs.log"));
    // Four 2-node tasks: demand for four blocks, two at most.
    let tasks: Vec<TaskSubmission> = (0..4)
        .map(|_| mpi_task(&run_once_released(&release, &runs), 2, 1))
        .collect();
    let task_ids: Vec<TaskId> = tasks.iter().map(|task| task.task_id).collect();
    assert_eq!(client.submit(tasks), 4);
    let before = client.wait_status(
        "two blocks' managers to run a task each",
        BLOCK_START_TIMEOUT,
        |report| {
            (report.managers.len() == 2 && report.n_running == 2)
                .then(|| blocks_and_managers(report))
        },
    );
    let queued: BTreeSet<String> = cluster_guard.job_ids().into_iter().collect();
    assert_eq!(
        (queued.len(), &queued),
        (2, &before.0),
        "squeue lists the blocks' jobs"
    );

    // Killed outright, nothing cancels its blocks; stopped by SIGTERM, it
    // keeps them. Restarted on the same run directory and manager address,
    // it adopts them.
    first.daemon.signal(signal);
    first.daemon.wait_exit(WAIT);
    let left = cluster_guard.job_ids();
    assert_eq!(
        left.len(),
        2,
        "the blocks' jobs are left in Slurm: {left:?}"
    );
    let second = scenario.start_interchange_in(
        "interchange-2",
        &run_dir,
        &security,
        &first.manager_url,
        &flags,
    );
    let mut client = RawClient::connect(&second);
    client.watch(task_ids.clone());
    let adopted = client.wait_status("the blocks' managers back", WAIT, |report| {
        (report.managers.len() == 2 && report.n_running == 2).then(|| blocks_and_managers(report))
    });
    assert_eq!(
        adopted, before,
        "the blocks adopted, their managers re-attached"
    );
    let log = second.daemon.log();
    assert_eq!(
        log.matches("adopted a block of the previous run").count(),
        2,
        "{log}"
    );
    std::fs::write(&release, "").expect("release the tasks");
    for task_id in &task_ids {
        assert_completed(&client.wait_result(*task_id, BLOCK_START_TIMEOUT));
    }
    // No sbatch since: the same jobs in Slurm, each task run to its end once.
    let after: BTreeSet<String> = cluster_guard.job_ids().into_iter().collect();
    assert_eq!(after, before.0, "squeue after the restart");
    assert_eq!(blocks_and_managers(&client.status()), before);
    let mut ran = e2e::file_lines(&runs);
    ran.sort();
    let mut expected: Vec<String> = task_ids.iter().map(TaskId::to_string).collect();
    expected.sort();
    assert_eq!(ran, expected, "each task ran to its end once");
}
