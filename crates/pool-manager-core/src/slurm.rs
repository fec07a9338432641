//! Slurm inside a block: what a task's environment must not inherit from the
//! block job, and the step options of packed tasks. Pure functions.
//!
//! The pool-manager runs in the batch script of the block job, so its
//! environment holds the job's `SLURM_*` settings: those `sbatch` exports
//! (`SLURM_NTASKS`, `SLURM_CPUS_PER_TASK`, `SLURM_MEM_PER_NODE`...), those
//! the user had when submitting (sbatch propagates the whole submission
//! environment by default), and, if the manager itself was started by
//! `srun`, those of its own step (`SLURM_STEP_ID`, `SLURM_CPU_BIND`...).
//! `srun` reads many of these as defaults for its options (the "INPUT
//! ENVIRONMENT VARIABLES" of `srun(1)`, Slurm 22.05), and MPICH's `mpiexec`
//! (Hydra) launches its proxies with `srun` inside an allocation, so every
//! task step would inherit the block's shape: `SLURM_CPUS_PER_TASK=8` makes
//! each rank of every step ask for 8 CPUs (Parsl #3006),
//! `SLURM_MEM_PER_NODE` makes every step reserve the job's whole memory on
//! its nodes, `SLURM_EXPORT_ENV=NONE` drops the task's environment from its
//! ranks, `SLURM_OVERLAP` or `SLURM_EXCLUSIVE` change how steps share
//! nodes. [`strip_step_settings`] removes exactly the variables listed in
//! [`STEP_SETTINGS`] and keeps everything that identifies the allocation
//! (`SLURM_JOB_ID`, `SLURM_JOB_NODELIST`, `SLURM_CONF`, `SLURM_MPI_TYPE`...),
//! which `srun` and `mpiexec` need to create steps inside it. A task's own
//! `env` is applied afterwards, so a task can still set any of them.
//!
//! Step options (Slurm 22.05, `srun(1)`):
//! - A step without `--exact` "will be allocated all CPUs available to the
//!   job on all nodes allocated to the step", and steps do not share CPUs.
//!   Steps on disjoint nodes therefore run at once without any option (the
//!   man page's own example runs two such steps in parallel), and a
//!   whole-node task keeps every CPU of its nodes for its threads. The
//!   prefixes of exclusive tasks are Parsl's, unchanged.
//! - Packed (non-exclusive) tasks share nodes, so their steps must claim
//!   only their share: `--exact` gives the step only the CPUs it asks for
//!   (one per rank), and `--mem=0` gives it access to the job's memory
//!   "but not remove any of the job's memory allocation from being
//!   available to other job steps". Without them the second step on a node
//!   waits ("Step creation temporarily disabled, retrying (Requested nodes
//!   are busy)") until the first ends. `--overlap` is not used: overlapping
//!   steps are not counted against each other, so two `--exact` steps
//!   could be given the same cores while others stay idle.
//! - For `mpiexec` inside an allocation, Hydra's `srun` takes extra options
//!   from `HYDRA_LAUNCHER_EXTRA_ARGS`; a packed task gets
//!   [`hydra_launcher_args`] there (one proxy per node, with the task's
//!   slots as its CPUs), so its proxies do not claim whole nodes either.
//!   MPICH 4.0.2 (Debian 12) runs `srun --nodelist H -N n -n n --input none
//!   {HYDRA_LAUNCHER_EXTRA_ARGS} hydra_pmi_proxy ...`. Only inside a Slurm
//!   job: a task that forces another Hydra launcher there (`-launcher ssh`
//!   in its `launcher_options`) must clear the variable in its own `env`.
//! - The pool-manager must not itself run in a step that holds the lead
//!   node (HyperQueue #443): the batch template runs it in the batch script
//!   (started with `srun`, it would need `srun --overlap`).

use std::collections::BTreeMap;

/// The `SLURM_*` (and `SRUN_*`) variables removed from every task's
/// environment, sorted. Each would make task steps take the block job's
/// shape instead of their own:
/// - task count and layout: `SLURM_NTASKS`, `SLURM_NPROCS`,
///   `SLURM_NTASKS_PER_{NODE,CORE,SOCKET,GPU}`,
///   `SLURM_DISTRIBUTION`, `SLURM_DIST_PLANESIZE`, `SLURM_SPREAD_JOB`,
///   `SLURM_USE_MIN_NODES`;
/// - CPUs per task: `SLURM_CPUS_PER_TASK` (read by srun up to 21.08),
///   `SRUN_CPUS_PER_TASK` (22.05), `SLURM_TRES_PER_TASK` (`cpu=N`, 23.11),
///   `SLURM_CPUS_PER_GPU`, `SLURM_THREADS_PER_CORE`, `SLURM_HINT`, and
///   per-task GPUs `SLURM_GPUS_PER_TASK` (they multiply with the task's
///   own rank count);
/// - memory per step: `SLURM_MEM_PER_{NODE,CPU,GPU}`;
/// - how steps share nodes: `SLURM_EXACT`, `SLURM_EXCLUSIVE`,
///   `SLURM_OVERLAP`, `SLURM_OVERCOMMIT`;
/// - binding: `SLURM_CPU_BIND*`, `SLURM_MEM_BIND*`;
/// - which environment reaches the ranks: `SLURM_EXPORT_ENV`,
///   `SRUN_EXPORT_ENV`;
/// - the manager's own step and process, if `srun` started it:
///   `SLURM_STEP_ID`, `SLURM_STEPID`, `SLURM_STEP_{NODELIST,NUM_NODES,
///   NUM_TASKS,TASKS_PER_NODE,LAUNCHER_PORT}`, `SLURM_SRUN_COMM_{HOST,PORT}`,
///   `SLURM_PROCID`, `SLURM_LOCALID`, `SLURM_NODEID`, `SLURM_TASK_PID`.
///
/// `SLURM_TASKS_PER_NODE` is kept on purpose: srun does not read it, and
/// MPICH's Hydra (4.0.2) detects a Slurm job only when `SLURM_NODELIST`,
/// `SLURM_NNODES` and `SLURM_TASKS_PER_NODE` are all set; without it,
/// `mpiexec` falls back to ssh and hangs on a second host (found on the
/// 4-node test cluster, `tests/cluster`). Placement still comes from
/// `-hosts`/`-ppn`.
pub const STEP_SETTINGS: &[&str] = &[
    "SLURM_CPUS_PER_GPU",
    "SLURM_CPUS_PER_TASK",
    "SLURM_CPU_BIND",
    "SLURM_CPU_BIND_LIST",
    "SLURM_CPU_BIND_TYPE",
    "SLURM_CPU_BIND_VERBOSE",
    "SLURM_DISTRIBUTION",
    "SLURM_DIST_PLANESIZE",
    "SLURM_EXACT",
    "SLURM_EXCLUSIVE",
    "SLURM_EXPORT_ENV",
    "SLURM_GPUS_PER_TASK",
    "SLURM_HINT",
    "SLURM_LOCALID",
    "SLURM_MEM_BIND",
    "SLURM_MEM_BIND_LIST",
    "SLURM_MEM_BIND_PREFER",
    "SLURM_MEM_BIND_SORT",
    "SLURM_MEM_BIND_TYPE",
    "SLURM_MEM_BIND_VERBOSE",
    "SLURM_MEM_PER_CPU",
    "SLURM_MEM_PER_GPU",
    "SLURM_MEM_PER_NODE",
    "SLURM_NODEID",
    "SLURM_NPROCS",
    "SLURM_NTASKS",
    "SLURM_NTASKS_PER_CORE",
    "SLURM_NTASKS_PER_GPU",
    "SLURM_NTASKS_PER_NODE",
    "SLURM_NTASKS_PER_SOCKET",
    "SLURM_OVERCOMMIT",
    "SLURM_OVERLAP",
    "SLURM_PROCID",
    "SLURM_SPREAD_JOB",
    "SLURM_SRUN_COMM_HOST",
    "SLURM_SRUN_COMM_PORT",
    "SLURM_STEPID",
    "SLURM_STEP_ID",
    "SLURM_STEP_LAUNCHER_PORT",
    "SLURM_STEP_NODELIST",
    "SLURM_STEP_NUM_NODES",
    "SLURM_STEP_NUM_TASKS",
    "SLURM_STEP_TASKS_PER_NODE",
    "SLURM_TASK_PID",
    "SLURM_THREADS_PER_CORE",
    "SLURM_TRES_PER_TASK",
    "SLURM_USE_MIN_NODES",
    "SRUN_CPUS_PER_TASK",
    "SRUN_EXPORT_ENV",
];

/// Whether `key` is one of [`STEP_SETTINGS`].
pub fn is_step_setting(key: &str) -> bool {
    STEP_SETTINGS.binary_search(&key).is_ok()
}

/// `base` without the [`STEP_SETTINGS`].
pub fn strip_step_settings(base: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    base.iter()
        .filter(|(key, _)| !is_step_setting(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The [`STEP_SETTINGS`] present in `base`, sorted (for the start-up log).
pub fn step_settings_in(base: &BTreeMap<String, String>) -> Vec<&str> {
    base.keys()
        .map(String::as_str)
        .filter(|key| is_step_setting(key))
        .collect()
}

/// Whether the environment belongs to a Slurm job (so that `mpiexec`
/// launches its proxies with `srun`).
pub fn in_slurm_job(env: &BTreeMap<String, String>) -> bool {
    ["SLURM_JOB_ID", "SLURM_JOBID"]
        .iter()
        .any(|key| env.get(*key).is_some_and(|value| !value.is_empty()))
}

/// The `srun` options of a packed task's step (added to its srun prefix).
pub const PACKED_STEP_OPTIONS: &[&str] = &["--exact", "--mem=0"];

/// `HYDRA_LAUNCHER_EXTRA_ARGS` for a packed task whose share is `slots`
/// slots on each of its nodes: Hydra starts one proxy per node, which then
/// forks the node's ranks, so the proxy asks for the task's slots as its
/// CPUs (`--cpus-per-task` implies `--exact`).
pub fn hydra_launcher_args(slots: u32) -> String {
    format!("--exact --cpus-per-task={} --mem=0", slots.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::string_map as env;

    #[test]
    fn the_list_is_sorted_and_unique_so_lookups_work() {
        let mut sorted = STEP_SETTINGS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, STEP_SETTINGS);
        for key in STEP_SETTINGS {
            assert!(is_step_setting(key), "{key}");
        }
    }

    /// What a batch script of `sbatch -N4 -n16 -c2 --mem=8G --export=NONE`
    /// whose manager was started with srun would see; what tasks keep.
    #[test]
    fn strips_step_shape_and_keeps_the_allocation() {
        let base = env(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            // The allocation: kept.
            ("SLURM_JOB_ID", "4242"),
            ("SLURM_JOBID", "4242"),
            ("SLURM_JOB_NODELIST", "node[1-4]"),
            ("SLURM_NODELIST", "node[1-4]"),
            ("SLURM_JOB_NUM_NODES", "4"),
            ("SLURM_NNODES", "4"),
            ("SLURM_CONF", "/etc/slurm/slurm.conf"),
            ("SLURM_CLUSTER_NAME", "testbed"),
            ("SLURM_JOB_PARTITION", "debug"),
            ("SLURM_MPI_TYPE", "pmi2"),
            ("SLURM_SUBMIT_DIR", "/home/u"),
            ("SLURMD_NODENAME", "node1"),
            ("SLURM_JOB_CPUS_PER_NODE", "4(x4)"),
            ("SLURM_CPUS_ON_NODE", "4"),
            // The job's shape and the manager's own step: removed.
            ("SLURM_CPUS_PER_TASK", "2"),
            ("SRUN_CPUS_PER_TASK", "2"),
            ("SLURM_TRES_PER_TASK", "cpu=2"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_NPROCS", "16"),
            ("SLURM_NTASKS_PER_NODE", "4"),
            ("SLURM_TASKS_PER_NODE", "4(x4)"),
            ("SLURM_MEM_PER_NODE", "8192"),
            ("SLURM_MEM_PER_CPU", "1024"),
            ("SLURM_DISTRIBUTION", "cyclic"),
            ("SLURM_EXPORT_ENV", "NONE"),
            ("SLURM_OVERLAP", "1"),
            ("SLURM_EXACT", "1"),
            ("SLURM_STEP_ID", "0"),
            ("SLURM_STEPID", "0"),
            ("SLURM_PROCID", "0"),
            ("SLURM_CPU_BIND", "quiet,mask_cpu:0x1"),
        ]);
        let stripped = strip_step_settings(&base);
        let kept: Vec<&str> = stripped.keys().map(String::as_str).collect();
        assert_eq!(
            kept,
            vec![
                "HOME",
                "PATH",
                "SLURMD_NODENAME",
                "SLURM_CLUSTER_NAME",
                "SLURM_CONF",
                "SLURM_CPUS_ON_NODE",
                "SLURM_JOBID",
                "SLURM_JOB_CPUS_PER_NODE",
                "SLURM_JOB_ID",
                "SLURM_JOB_NODELIST",
                "SLURM_JOB_NUM_NODES",
                "SLURM_JOB_PARTITION",
                "SLURM_MPI_TYPE",
                "SLURM_NNODES",
                "SLURM_NODELIST",
                "SLURM_SUBMIT_DIR",
                "SLURM_TASKS_PER_NODE",
            ]
        );
        assert_eq!(stripped["SLURM_JOB_ID"], "4242");
        assert_eq!(step_settings_in(&base).len(), base.len() - kept.len());
        assert!(step_settings_in(&base).contains(&"SLURM_CPUS_PER_TASK"));
        assert!(in_slurm_job(&stripped));
        assert!(!in_slurm_job(&env(&[
            ("PATH", "/bin"),
            ("SLURM_JOB_ID", "")
        ])));
        assert!(in_slurm_job(&env(&[("SLURM_JOBID", "7")])));
    }

    #[test]
    fn nothing_changes_outside_slurm() {
        let base = env(&[("PATH", "/bin"), ("PBS_NODEFILE", "/var/pbs/nodes")]);
        assert_eq!(strip_step_settings(&base), base);
        assert!(step_settings_in(&base).is_empty());
        assert!(!in_slurm_job(&base));
    }

    #[test]
    fn hydra_arguments_claim_the_share() {
        assert_eq!(hydra_launcher_args(3), "--exact --cpus-per-task=3 --mem=0");
        assert_eq!(hydra_launcher_args(0), "--exact --cpus-per-task=1 --mem=0");
    }
}
