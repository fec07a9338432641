//! Launcher prefixes and the task environment: pure functions.
//!
//! The shapes follow Parsl's MPI mode (integers only, no trailing space,
//! never `None`):
//! - `mpiexec -n {num_ranks} -ppn {ranks_per_node} -hosts {h1,h2} {launcher_options}`
//! - `srun --ntasks {num_ranks} --ntasks-per-node {ranks_per_node} --nodelist {h1,h2} --nodes {n} {launcher_options}`
//! - `aprun -n {num_ranks} -N {ranks_per_node} -node-list {h1,h2} {launcher_options}`
//!
//! The hosts are the task's placement, in placement order. A packed
//! (non-exclusive) task shares its nodes, so its srun step must claim only
//! its share: `srun ... --nodes {n} --exact --mem=0 {launcher_options}`
//! (see [`crate::slurm`] for why). `launcher_options` is appended verbatim,
//! as one argument, when given and not blank, so it can override what
//! comes before it.
//!
//! Every task gets a fresh environment built by [`task_environment`], so
//! nothing leaks from one task to the next, and nothing of the block job's
//! own Slurm step settings ([`crate::slurm::STEP_SETTINGS`]) reaches it.

use crate::environment::{Environment, ToBase};
use crate::slurm;
use protocol::{Launcher, ManagerId, TaskId, TaskResources};
use std::collections::BTreeMap;

/// The prefix for `launcher` as an argument vector.
pub fn prefix_argv(launcher: Launcher, resources: &TaskResources, hosts: &[String]) -> Vec<String> {
    let host_list = hosts.join(",");
    let ranks = resources.num_ranks.to_string();
    let per_node = resources.ranks_per_node.to_string();
    let mut argv: Vec<String> = match launcher {
        Launcher::Mpiexec => vec![
            "mpiexec".into(),
            "-n".into(),
            ranks,
            "-ppn".into(),
            per_node,
            "-hosts".into(),
            host_list,
        ],
        Launcher::Srun => vec![
            "srun".into(),
            "--ntasks".into(),
            ranks,
            "--ntasks-per-node".into(),
            per_node,
            "--nodelist".into(),
            host_list,
            "--nodes".into(),
            hosts.len().to_string(),
        ]
        .into_iter()
        .chain(
            slurm::PACKED_STEP_OPTIONS
                .iter()
                .filter(|_| !resources.exclusive)
                .map(|option| (*option).to_owned()),
        )
        .collect(),
        Launcher::Aprun => vec![
            "aprun".into(),
            "-n".into(),
            ranks,
            "-N".into(),
            per_node,
            "-node-list".into(),
            host_list,
        ],
    };
    if let Some(options) = launcher_options(resources) {
        argv.push(options.to_owned());
    }
    argv
}

/// The prefix for `launcher` as one string: the argv joined by single spaces.
pub fn prefix_string(launcher: Launcher, resources: &TaskResources, hosts: &[String]) -> String {
    prefix_argv(launcher, resources, hosts).join(" ")
}

fn launcher_options(resources: &TaskResources) -> Option<&str> {
    resources
        .launcher_options
        .as_deref()
        .map(str::trim)
        .filter(|options| !options.is_empty())
}

/// The options MPICH's `mpiexec` (Hydra) adds to the `srun` that starts
/// its proxies inside a Slurm job.
const HYDRA_ARGS: &str = "HYDRA_LAUNCHER_EXTRA_ARGS";

/// Everything [`task_environment`] needs besides the base environment.
#[derive(Clone, Copy, Debug)]
pub struct TaskContext<'a> {
    pub task_id: TaskId,
    pub manager_id: ManagerId,
    pub block_id: &'a str,
    pub launcher: Launcher,
    pub resources: &'a TaskResources,
    /// The task's hosts, in placement order.
    pub hosts: &'a [String],
    /// The fewest slots the task holds on any of its nodes.
    pub slots: u32,
}

/// A fresh environment for one task: `base` (the manager's own environment
/// captured at start) without the block's Slurm step settings (`base`:
/// [`PoolManager::new`](crate::PoolManager::new) strips them once, with
/// [`slurm::strip_step_settings`]), then the `PARSL_*` variables and
/// `RHTEX_TASK_ID`, then, for a packed task inside a Slurm job,
/// `HYDRA_LAUNCHER_EXTRA_ARGS` ([`slurm::hydra_launcher_args`]), and the
/// task's own `task_env` on top.
pub fn task_environment(
    base: &impl ToBase,
    context: &TaskContext<'_>,
    task_env: &BTreeMap<String, String>,
) -> Environment {
    let base = base.to_base();
    // A value the manager inherited comes after ours, so it can override.
    let hydra_args = (!context.resources.exclusive && slurm::in_slurm_job(&base)).then(|| {
        let ours = slurm::hydra_launcher_args(context.slots);
        match base
            .get(HYDRA_ARGS)
            .filter(|given| !given.trim().is_empty())
        {
            Some(given) => format!("{ours} {}", given.trim()),
            None => ours,
        }
    });
    // The base is shared, not copied: the task's variables go on top.
    let mut env = Environment::on(base);
    let resources = context.resources;
    let mut set = |key: &str, value: String| {
        env.insert(key.to_owned(), value);
    };
    set("PARSL_NUM_NODES", resources.num_nodes.to_string());
    set("PARSL_RANKS_PER_NODE", resources.ranks_per_node.to_string());
    set("PARSL_NUM_RANKS", resources.num_ranks.to_string());
    if let Some(options) = &resources.launcher_options {
        set("PARSL_LAUNCHER_OPTIONS", options.clone());
    }
    set("PARSL_MPI_NODELIST", context.hosts.join(","));
    set("PARSL_WORKER_POOL_ID", context.manager_id.to_string());
    set("PARSL_WORKER_BLOCK_ID", context.block_id.to_owned());
    for (key, launcher) in [
        ("PARSL_MPIEXEC_PREFIX", Launcher::Mpiexec),
        ("PARSL_SRUN_PREFIX", Launcher::Srun),
        ("PARSL_APRUN_PREFIX", Launcher::Aprun),
    ] {
        set(key, prefix_string(launcher, resources, context.hosts));
    }
    set(
        "PARSL_MPI_PREFIX",
        prefix_string(context.launcher, resources, context.hosts),
    );
    set("RHTEX_TASK_ID", context.task_id.to_string());
    if let Some(hydra_args) = hydra_args {
        set(HYDRA_ARGS, hydra_args);
    }
    for (key, value) in task_env {
        env.insert(key.clone(), value.clone());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::string_map;

    fn resources(nodes: u32, per_node: u32, ranks: u32, options: Option<&str>) -> TaskResources {
        TaskResources {
            walltime: None,
            retries: None,
            exclusive: true,
            num_nodes: nodes,
            ranks_per_node: per_node,
            num_ranks: ranks,
            launcher_options: options.map(str::to_owned),
            priority: None,
        }
    }

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    /// An argv written as one line: words split at spaces, and `~` in a
    /// word stands for a space inside that argument.
    fn argv(line: &str) -> Vec<String> {
        line.split_whitespace()
            .map(|word| word.replace('~', " "))
            .collect()
    }

    #[test]
    fn argv_for_every_launcher() {
        let two = hosts(&["n1", "n2"]);
        let plain = resources(2, 4, 7, None);
        let with_options = resources(2, 4, 8, Some("--cpu-bind=cores -l"));
        let cases: &[(Launcher, &TaskResources, &str)] = &[
            (Launcher::Mpiexec, &plain, "mpiexec -n 7 -ppn 4 -hosts n1,n2"),
            (
                Launcher::Mpiexec,
                &with_options,
                "mpiexec -n 8 -ppn 4 -hosts n1,n2 --cpu-bind=cores~-l",
            ),
            (
                Launcher::Srun,
                &plain,
                "srun --ntasks 7 --ntasks-per-node 4 --nodelist n1,n2 --nodes 2",
            ),
            (
                Launcher::Srun,
                &with_options,
                "srun --ntasks 8 --ntasks-per-node 4 --nodelist n1,n2 --nodes 2 --cpu-bind=cores~-l",
            ),
            (Launcher::Aprun, &plain, "aprun -n 7 -N 4 -node-list n1,n2"),
            (
                Launcher::Aprun,
                &with_options,
                "aprun -n 8 -N 4 -node-list n1,n2 --cpu-bind=cores~-l",
            ),
        ];
        check_argv(&two, cases);
    }

    fn check_argv(hosts: &[String], cases: &[(Launcher, &TaskResources, &str)]) {
        for (launcher, resources, expected) in cases {
            assert_eq!(
                prefix_argv(*launcher, resources, hosts),
                argv(expected),
                "{launcher} {resources:?}"
            );
        }
    }

    #[test]
    fn strings_are_joined_by_single_spaces() {
        let one = hosts(&["lead"]);
        assert_eq!(
            prefix_string(Launcher::Mpiexec, &resources(1, 1, 1, None), &one),
            "mpiexec -n 1 -ppn 1 -hosts lead"
        );
        assert_eq!(
            prefix_string(Launcher::Srun, &resources(1, 2, 2, Some("-x")), &one),
            "srun --ntasks 2 --ntasks-per-node 2 --nodelist lead --nodes 1 -x"
        );
        assert_eq!(
            prefix_string(Launcher::Aprun, &resources(1, 3, 3, Some("  ")), &one),
            "aprun -n 3 -N 3 -node-list lead"
        );
        for launcher in Launcher::ALL {
            let text = prefix_string(launcher, &resources(1, 1, 1, Some("")), &one);
            assert!(!text.ends_with(' ') && !text.contains("  ") && !text.contains("None"));
        }
    }

    fn context<'a>(
        task_id: u128,
        resources: &'a TaskResources,
        hosts: &'a [String],
    ) -> TaskContext<'a> {
        TaskContext {
            task_id: TaskId::from_u128(task_id),
            manager_id: ManagerId::from_u128(0xabc),
            block_id: "block-7",
            launcher: Launcher::Srun,
            resources,
            hosts,
            slots: resources.ranks_per_node,
        }
    }

    #[test]
    fn environment_has_every_parsl_variable() {
        let base = string_map(&[("PATH", "/bin"), ("PARSL_NUM_NODES", "stale")]);
        let nodes = hosts(&["n2", "n3"]);
        let spec = resources(2, 2, 4, Some("--exclusive"));
        let task_env: BTreeMap<String, String> = [("MY_VAR".to_string(), "1".to_string())]
            .into_iter()
            .collect();
        let env = task_environment(&base, &context(5, &spec, &nodes), &task_env);
        let expected: BTreeMap<String, String> = [
            ("PATH", "/bin".to_string()),
            ("MY_VAR", "1".to_string()),
            ("PARSL_NUM_NODES", "2".to_string()),
            ("PARSL_RANKS_PER_NODE", "2".to_string()),
            ("PARSL_NUM_RANKS", "4".to_string()),
            ("PARSL_LAUNCHER_OPTIONS", "--exclusive".to_string()),
            ("PARSL_MPI_NODELIST", "n2,n3".to_string()),
            (
                "PARSL_WORKER_POOL_ID",
                ManagerId::from_u128(0xabc).to_string(),
            ),
            ("PARSL_WORKER_BLOCK_ID", "block-7".to_string()),
            (
                "PARSL_MPIEXEC_PREFIX",
                "mpiexec -n 4 -ppn 2 -hosts n2,n3 --exclusive".to_string(),
            ),
            (
                "PARSL_SRUN_PREFIX",
                "srun --ntasks 4 --ntasks-per-node 2 --nodelist n2,n3 --nodes 2 --exclusive"
                    .to_string(),
            ),
            (
                "PARSL_APRUN_PREFIX",
                "aprun -n 4 -N 2 -node-list n2,n3 --exclusive".to_string(),
            ),
            (
                "PARSL_MPI_PREFIX",
                "srun --ntasks 4 --ntasks-per-node 2 --nodelist n2,n3 --nodes 2 --exclusive"
                    .to_string(),
            ),
            ("RHTEX_TASK_ID", TaskId::from_u128(5).to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn task_env_wins_and_nothing_leaks_between_tasks() {
        let base: BTreeMap<String, String> = [("HOME".to_string(), "/root".to_string())]
            .into_iter()
            .collect();
        let nodes = hosts(&["n1"]);
        let first_spec = resources(1, 1, 1, Some("-v"));
        let first_env: BTreeMap<String, String> = [
            ("ONLY_FIRST".to_string(), "yes".to_string()),
            ("PARSL_NUM_RANKS".to_string(), "override".to_string()),
        ]
        .into_iter()
        .collect();
        let first = task_environment(&base, &context(1, &first_spec, &nodes), &first_env);
        assert_eq!(first["PARSL_NUM_RANKS"], "override");
        assert_eq!(first["ONLY_FIRST"], "yes");
        assert_eq!(first["PARSL_LAUNCHER_OPTIONS"], "-v");

        let second_spec = resources(1, 1, 1, None);
        let second = task_environment(&base, &context(2, &second_spec, &nodes), &BTreeMap::new());
        assert!(!second.contains_key("ONLY_FIRST"));
        assert!(!second.contains_key("PARSL_LAUNCHER_OPTIONS"));
        assert_eq!(second["PARSL_NUM_RANKS"], "1");
        assert_eq!(second["RHTEX_TASK_ID"], TaskId::from_u128(2).to_string());
        assert_eq!(base.len(), 1, "the base environment is never changed");
    }

    fn packed(nodes: u32, per_node: u32, ranks: u32, options: Option<&str>) -> TaskResources {
        TaskResources {
            exclusive: false,
            ..resources(nodes, per_node, ranks, options)
        }
    }

    /// A packed task's srun step claims only its share; the other launchers
    /// keep their shape, with the hosts of the placement in its order.
    #[test]
    fn packed_tasks_do_not_claim_whole_nodes() {
        let four = packed(2, 2, 4, None);
        let three = packed(2, 2, 3, Some("--mem=2G -l"));
        let cases: &[(Launcher, &TaskResources, &str)] = &[
            (
                Launcher::Srun,
                &four,
                "srun --ntasks 4 --ntasks-per-node 2 --nodelist n3,n1 --nodes 2 --exact --mem=0",
            ),
            (
                Launcher::Srun,
                &three,
                "srun --ntasks 3 --ntasks-per-node 2 --nodelist n3,n1 --nodes 2 --exact --mem=0 --mem=2G~-l",
            ),
            (Launcher::Mpiexec, &four, "mpiexec -n 4 -ppn 2 -hosts n3,n1"),
            (Launcher::Aprun, &four, "aprun -n 4 -N 2 -node-list n3,n1"),
        ];
        let hosts = hosts(&["n3", "n1"]);
        check_argv(&hosts, cases);
        // The exclusive form of the same request is Parsl's, unchanged.
        assert_eq!(
            prefix_string(Launcher::Srun, &resources(2, 2, 4, None), &hosts),
            "srun --ntasks 4 --ntasks-per-node 2 --nodelist n3,n1 --nodes 2"
        );
    }

    fn slurm_base() -> BTreeMap<String, String> {
        string_map(&[
            ("PATH", "/bin"),
            ("SLURM_JOB_ID", "4242"),
            ("SLURM_JOB_NODELIST", "n[1-3]"),
            ("SLURM_CPUS_PER_TASK", "8"),
            ("SLURM_NTASKS", "12"),
            ("SLURM_MEM_PER_NODE", "8000"),
        ])
    }

    #[test]
    fn the_block_job_step_settings_never_reach_a_task() {
        let nodes = hosts(&["n1"]);
        for spec in [resources(1, 2, 2, None), packed(1, 2, 2, None)] {
            let base = slurm::strip_step_settings(&slurm_base());
            let env = task_environment(&base, &context(1, &spec, &nodes), &BTreeMap::new());
            for key in ["SLURM_CPUS_PER_TASK", "SLURM_NTASKS", "SLURM_MEM_PER_NODE"] {
                assert!(!env.contains_key(key), "{key} leaked: {env:?}");
            }
            assert_eq!(env["SLURM_JOB_ID"], "4242");
            assert_eq!(env["SLURM_JOB_NODELIST"], "n[1-3]");
        }
        // A task may still set any of them itself.
        let spec = resources(1, 1, 1, None);
        let own: BTreeMap<String, String> = [("SLURM_CPUS_PER_TASK".to_string(), "3".to_string())]
            .into_iter()
            .collect();
        let env = task_environment(&slurm_base(), &context(2, &spec, &nodes), &own);
        assert_eq!(env["SLURM_CPUS_PER_TASK"], "3");
    }

    #[test]
    fn packed_mpiexec_proxies_claim_the_share_inside_slurm_only() {
        let nodes = hosts(&["n2", "n3"]);
        let spec = packed(2, 3, 6, None);
        let mut env = task_environment(&slurm_base(), &context(1, &spec, &nodes), &BTreeMap::new());
        assert_eq!(
            env.remove("HYDRA_LAUNCHER_EXTRA_ARGS").as_deref(),
            Some("--exact --cpus-per-task=3 --mem=0")
        );
        assert_eq!(
            env["PARSL_MPIEXEC_PREFIX"],
            "mpiexec -n 6 -ppn 3 -hosts n2,n3"
        );
        assert_eq!(
            env["PARSL_SRUN_PREFIX"],
            "srun --ntasks 6 --ntasks-per-node 3 --nodelist n2,n3 --nodes 2 --exact --mem=0"
        );
        // Options the manager inherited come after ours.
        let mut base = slurm_base();
        base.insert("HYDRA_LAUNCHER_EXTRA_ARGS".into(), " --verbose ".into());
        let env = task_environment(&base, &context(1, &spec, &nodes), &BTreeMap::new());
        assert_eq!(
            env["HYDRA_LAUNCHER_EXTRA_ARGS"],
            "--exact --cpus-per-task=3 --mem=0 --verbose"
        );
        // Exclusive tasks, and packed tasks outside Slurm, get none.
        let exclusive = resources(2, 3, 6, None);
        let env = task_environment(
            &slurm_base(),
            &context(1, &exclusive, &nodes),
            &BTreeMap::new(),
        );
        assert!(!env.contains_key("HYDRA_LAUNCHER_EXTRA_ARGS"));
        let plain: BTreeMap<String, String> = [("PATH".to_string(), "/bin".to_string())]
            .into_iter()
            .collect();
        let env = task_environment(&plain, &context(1, &spec, &nodes), &BTreeMap::new());
        assert!(!env.contains_key("HYDRA_LAUNCHER_EXTRA_ARGS"));
    }
}
