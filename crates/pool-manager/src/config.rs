//! Command-line flags ([`Flags`]) and their validation into a [`Config`]
//! that cannot be invalid.

use crate::nodes::NodeChoice;
use clap::Parser;
use protocol::{Launcher, ManagerId};
use std::path::PathBuf;
use std::time::Duration;
pub use transport::Security;

const NODE_HELP: &str = "\
Node discovery, first that applies:
  1. --nodes LIST (a Slurm host list such as nid[001-004],login1) or --nodefile FILE
     (one host per line);
  2. SLURM_JOB_NODELIST, else SLURM_NODELIST (Slurm host lists);
  3. PBS_NODEFILE (one host per line; duplicates removed, order kept);
  4. this host alone.
The node list and where it came from are logged at start.

Tasks run where the interchange places them: whole nodes by default, or (exclusive: false)
ranks_per_node of a node's --slots-per-node slots, sharing the node with other such tasks.
A task with a walltime is killed when it runs longer (SIGTERM to its process group, SIGKILL
after --kill-grace) and reported as walltime_exceeded.
Each task gets a cgroup v2 of its own below the manager's where one can be created (else,
or with --no-cgroups, its process group only): what a task started, setsid processes included,
is killed when it ends, at cancel, at walltime and when the manager ends (logged at start).
Inside a Slurm job, a task's environment does not carry the block job's own step settings
(SLURM_NTASKS, SLURM_CPUS_PER_TASK, SRUN_CPUS_PER_TASK, SLURM_MEM_PER_NODE, SLURM_EXPORT_ENV,
the manager's own SLURM_STEP_ID... those found are logged at start), so task steps take their
own shape; the srun prefix of a task that shares nodes adds --exact --mem=0.

When the manager loses the interchange (silent past --heartbeat-threshold, its connection
dropped, or it restarted), its tasks keep running and their results are held; it registers
again under the same manager id, listing its running tasks and held results, each time it
gets a connection, for up to --reattach-timeout seconds. The interchange keeps the tasks it
has running here, takes the held results, and has the manager kill the tasks it does not
know (after a restart that did not restore them). Past the window the manager kills its
tasks and exits with code 4. An interchange stopped by SIGTERM keeps the work this way;
`rhtex shutdown` ends it (the manager kills its tasks and exits 0).

Exit codes: 0 after a clean shutdown or drain; 2 on bad flags or node discovery failure;
3 when refused by the interchange (protocol version, CURVE key); 4 when the interchange does
not answer the first registration within the heartbeat threshold, or is lost and does not
take the manager back within --reattach-timeout.";

/// The flags as given.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "pool-manager",
    version,
    about = "rhtex pool-manager: runs MPI tasks from an interchange on the nodes of one batch-job block",
    after_help = NODE_HELP
)]
pub struct Flags {
    /// The interchange's manager socket, e.g. tcp://gateway:54321.
    #[arg(long, value_name = "URL")]
    pub interchange: String,

    /// Directory holding the CURVE keys (server.key and client.key_secret); must be
    /// readable by its owner only. Default: $RHTEX_KEYS_DIR, else ~/.rhtex/keys.
    #[arg(long, value_name = "DIR", conflicts_with = "insecure")]
    pub keys_dir: Option<PathBuf>,

    /// Turn encryption off (trusted networks only; a warning is logged).
    #[arg(long)]
    pub insecure: bool,

    /// This block's id. Default: $SLURM_JOB_ID, else $PBS_JOBID, else "local".
    #[arg(long, value_name = "ID")]
    pub block_id: Option<String>,

    /// This manager's id (a UUID). Default: a fresh random one.
    #[arg(long, value_name = "UUID")]
    pub manager_id: Option<String>,

    /// The MPI launcher PARSL_MPI_PREFIX is composed for (all three prefixes are
    /// always exported).
    #[arg(long, value_name = "mpiexec|srun|aprun", default_value = "mpiexec")]
    pub launcher: String,

    /// The block's nodes as a Slurm host list (a,b,c or nid[001-004]).
    #[arg(long, value_name = "LIST", conflicts_with = "nodefile")]
    pub nodes: Option<String>,

    /// A file listing the block's nodes, one per line.
    #[arg(long, value_name = "FILE")]
    pub nodefile: Option<PathBuf>,

    /// Directory for task output (tasks/<task_id>.stdout, .stderr) and the default
    /// task working directory. Default: `rhtex-run/manager-<manager id>`.
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,

    /// Seconds between heartbeats to the interchange (fractions allowed).
    #[arg(
        long,
        value_name = "SECS",
        allow_negative_numbers = true,
        default_value_t = 30.0
    )]
    pub heartbeat_period: f64,

    /// Seconds of silence from the interchange after which the manager takes it as
    /// lost (and registers again, see --reattach-timeout). Must exceed
    /// --heartbeat-period.
    #[arg(
        long,
        value_name = "SECS",
        allow_negative_numbers = true,
        default_value_t = 120.0
    )]
    pub heartbeat_threshold: f64,

    /// Seconds a manager that lost the interchange keeps its tasks and tries to
    /// register again; then it kills them and exits with code 4. 0: no re-attach
    /// (lost means kill and exit at once).
    #[arg(
        long,
        value_name = "SECS",
        allow_negative_numbers = true,
        default_value_t = 600.0
    )]
    pub reattach_timeout: f64,

    /// Seconds after start at which the manager asks the interchange to drain it
    /// (no new tasks; exit once idle). Default: never.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub drain_period: Option<f64>,

    /// Slots (ranks) each node offers to tasks that share nodes (exclusive: false);
    /// exclusive tasks take all of a node's slots. Default: the number of CPUs
    /// this process may use on the lead node (at least 1).
    #[arg(long, value_name = "N")]
    pub slots_per_node: Option<u32>,

    /// Seconds between SIGTERM and SIGKILL when killing a task's process group.
    #[arg(
        long,
        value_name = "SECS",
        allow_negative_numbers = true,
        default_value_t = 5.0
    )]
    pub kill_grace: f64,

    /// Contain tasks by process groups only, even where a cgroup v2 per task could be
    /// created (then a task's `setsid` processes are killed only at the manager's exit).
    #[arg(long)]
    pub no_cgroups: bool,

    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,

    /// Stop (as on SIGTERM: tasks killed and reported) when the process that
    /// started the manager is gone, even if it was killed with SIGKILL;
    /// checked every 0.2 s.
    #[arg(long)]
    pub exit_with_parent: bool,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub interchange: String,
    pub security: Security,
    pub block_id: String,
    pub manager_id: ManagerId,
    pub launcher: Launcher,
    pub node_choice: NodeChoice,
    pub run_dir: PathBuf,
    pub heartbeat_period: Duration,
    pub heartbeat_threshold: Duration,
    /// How long to keep the tasks and try to register again once the
    /// interchange is lost; zero: no re-attach.
    pub reattach_timeout: Duration,
    pub drain_period: Option<Duration>,
    pub kill_grace: Duration,
    /// Whether to try a cgroup v2 per task (`--no-cgroups` turns it off).
    pub cgroups: bool,
    /// `None`: the lead node's CPU count, found at start.
    pub slots_per_node: Option<u32>,
    pub log_level: String,
    /// Stop when the parent process is gone (`--exit-with-parent`).
    pub exit_with_parent: bool,
}

/// A flag value that is not acceptable.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("--interchange {0:?} is not a ZeroMQ endpoint such as tcp://host:port")]
    BadUrl(String),
    #[error("--manager-id {given:?} is not a UUID: {reason}")]
    BadManagerId { given: String, reason: String },
    #[error("--launcher: {0}")]
    BadLauncher(String),
    #[error("{flag} must be a positive number of seconds, got {value}")]
    BadSeconds { flag: &'static str, value: String },
    #[error(
        "--heartbeat-threshold ({threshold} s) must be larger than --heartbeat-period ({period} s)"
    )]
    ThresholdNotAbovePeriod { threshold: f64, period: f64 },
    #[error("--block-id must not be empty")]
    EmptyBlockId,
    #[error("no --keys-dir, RHTEX_KEYS_DIR or HOME to find the key directory; give --keys-dir or --insecure")]
    NoKeysDir,
    #[error("--slots-per-node must be at least 1, got {0}")]
    BadSlotsPerNode(u32),
    #[error("--log-level {0:?} is not one of error, warn, info, debug, trace")]
    BadLogLevel(String),
}

fn seconds(flag: &'static str, value: f64, allow_zero: bool) -> Result<Duration, ConfigError> {
    let ok = value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0)) && value < 1e9;
    if !ok {
        return Err(ConfigError::BadSeconds {
            flag,
            value: value.to_string(),
        });
    }
    Ok(Duration::from_secs_f64(value))
}

impl Config {
    /// Validates the flags; `env` looks up environment variables (for the
    /// block id and the home directory).
    pub fn from_flags(
        flags: Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let interchange = flags.interchange.trim().to_owned();
        let has_endpoint = ["tcp://", "ipc://", "inproc://"]
            .iter()
            .any(|scheme| interchange.len() > scheme.len() && interchange.starts_with(scheme));
        if !has_endpoint {
            return Err(ConfigError::BadUrl(flags.interchange));
        }
        let security = if flags.insecure {
            Security::Insecure
        } else {
            // RHTEX_KEYS_DIR is read here rather than by clap, so that it
            // does not conflict with an explicit --insecure.
            let keys_dir = match flags.keys_dir.or_else(|| {
                env("RHTEX_KEYS_DIR")
                    .filter(|dir| !dir.is_empty())
                    .map(PathBuf::from)
            }) {
                Some(dir) => dir,
                None => PathBuf::from(env("HOME").ok_or(ConfigError::NoKeysDir)?)
                    .join(".rhtex")
                    .join("keys"),
            };
            Security::Curve(keys_dir)
        };
        let block_id = match flags.block_id {
            Some(id) => id,
            None => env("SLURM_JOB_ID")
                .filter(|id| !id.is_empty())
                .or_else(|| env("PBS_JOBID").filter(|id| !id.is_empty()))
                .unwrap_or_else(|| "local".to_owned()),
        };
        if block_id.trim().is_empty() {
            return Err(ConfigError::EmptyBlockId);
        }
        let manager_id = match flags.manager_id {
            Some(given) => {
                given
                    .parse()
                    .map_err(|error: uuid::Error| ConfigError::BadManagerId {
                        given: given.clone(),
                        reason: error.to_string(),
                    })?
            }
            None => ManagerId::new_random(),
        };
        let launcher: Launcher = flags.launcher.parse().map_err(ConfigError::BadLauncher)?;
        let node_choice = match (flags.nodes, flags.nodefile) {
            (Some(list), _) => NodeChoice::List(list),
            (None, Some(path)) => NodeChoice::File(path),
            (None, None) => NodeChoice::Discover,
        };
        let run_dir = flags
            .run_dir
            .unwrap_or_else(|| PathBuf::from("rhtex-run").join(format!("manager-{manager_id}")));
        let heartbeat_period = seconds("--heartbeat-period", flags.heartbeat_period, false)?;
        let heartbeat_threshold =
            seconds("--heartbeat-threshold", flags.heartbeat_threshold, false)?;
        if heartbeat_threshold <= heartbeat_period {
            return Err(ConfigError::ThresholdNotAbovePeriod {
                threshold: flags.heartbeat_threshold,
                period: flags.heartbeat_period,
            });
        }
        let reattach_timeout = seconds("--reattach-timeout", flags.reattach_timeout, true)?;
        let drain_period = flags
            .drain_period
            .map(|value| seconds("--drain-period", value, false))
            .transpose()?;
        let kill_grace = seconds("--kill-grace", flags.kill_grace, true)?;
        if let Some(0) = flags.slots_per_node {
            return Err(ConfigError::BadSlotsPerNode(0));
        }
        let log_level = flags.log_level.to_ascii_lowercase();
        if !["error", "warn", "info", "debug", "trace"].contains(&log_level.as_str()) {
            return Err(ConfigError::BadLogLevel(flags.log_level));
        }
        Ok(Self {
            interchange,
            security,
            block_id,
            manager_id,
            launcher,
            node_choice,
            run_dir,
            heartbeat_period,
            heartbeat_threshold,
            reattach_timeout,
            drain_period,
            kill_grace,
            cgroups: !flags.no_cgroups,
            slots_per_node: flags.slots_per_node,
            log_level,
            exit_with_parent: flags.exit_with_parent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let mut argv = vec!["pool-manager"];
        argv.extend_from_slice(args);
        let flags = Flags::try_parse_from(argv).map_err(|error| error.to_string())?;
        Config::from_flags(flags, &|name| env.get(name).cloned()).map_err(|error| error.to_string())
    }

    #[test]
    fn defaults() {
        let config = parse(&["--interchange", "tcp://ix:1", "--insecure"], &[]).expect("valid");
        assert_eq!(config.security, Security::Insecure);
        assert_eq!(config.block_id, "local");
        assert_eq!(config.launcher, Launcher::Mpiexec);
        assert_eq!(config.node_choice, NodeChoice::Discover);
        assert_eq!(config.heartbeat_period, Duration::from_secs(30));
        assert_eq!(config.heartbeat_threshold, Duration::from_secs(120));
        assert_eq!(config.drain_period, None);
        assert_eq!(config.kill_grace, Duration::from_secs(5));
        assert_eq!(config.slots_per_node, None);
        assert_eq!(
            config.run_dir,
            PathBuf::from(format!("rhtex-run/manager-{}", config.manager_id))
        );
        let config =
            parse(&["--interchange", "tcp://ix:1"], &[("HOME", "/home/u")]).expect("valid");
        assert_eq!(
            config.security,
            Security::Curve("/home/u/.rhtex/keys".into())
        );
        let from_env = parse(
            &["--interchange", "tcp://ix:1"],
            &[("HOME", "/home/u"), ("RHTEX_KEYS_DIR", "/shared/keys")],
        )
        .expect("valid");
        assert_eq!(from_env.security, Security::Curve("/shared/keys".into()));
        let insecure = parse(
            &["--interchange", "tcp://ix:1", "--insecure"],
            &[("RHTEX_KEYS_DIR", "/shared/keys")],
        )
        .expect("RHTEX_KEYS_DIR does not conflict with --insecure");
        assert_eq!(insecure.security, Security::Insecure);
    }

    #[test]
    fn block_id_from_the_batch_system() {
        let slurm = parse(
            &["--interchange", "tcp://ix:1", "--insecure"],
            &[("SLURM_JOB_ID", "42"), ("PBS_JOBID", "7.pbs")],
        )
        .expect("valid");
        assert_eq!(slurm.block_id, "42");
        let pbs = parse(
            &["--interchange", "tcp://ix:1", "--insecure"],
            &[("PBS_JOBID", "7.pbs")],
        )
        .expect("valid");
        assert_eq!(pbs.block_id, "7.pbs");
    }

    #[test]
    fn every_flag() {
        let config = parse(
            &[
                "--interchange",
                "tcp://ix:1",
                "--keys-dir",
                "/k",
                "--block-id",
                "b",
                "--manager-id",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "--launcher",
                "srun",
                "--nodefile",
                "/nodes",
                "--run-dir",
                "/r",
                "--heartbeat-period",
                "0.5",
                "--heartbeat-threshold",
                "2",
                "--drain-period",
                "60",
                "--kill-grace",
                "0",
                "--slots-per-node",
                "16",
                "--log-level",
                "DEBUG",
            ],
            &[],
        )
        .expect("valid");
        assert_eq!(config.security, Security::Curve("/k".into()));
        assert_eq!(
            config.manager_id.to_string(),
            "67e55044-10b1-426f-9247-bb680e5fe0c8"
        );
        assert_eq!(config.launcher, Launcher::Srun);
        assert_eq!(config.node_choice, NodeChoice::File("/nodes".into()));
        assert_eq!(config.heartbeat_period, Duration::from_millis(500));
        assert_eq!(config.drain_period, Some(Duration::from_secs(60)));
        assert_eq!(config.kill_grace, Duration::ZERO);
        assert_eq!(config.slots_per_node, Some(16));
        assert_eq!(config.log_level, "debug");
    }

    #[test]
    fn bad_flags_are_named() {
        let base = ["--interchange", "tcp://ix:1", "--insecure"];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            parse(&args, &[]).expect_err("must fail")
        };
        assert!(with(&["--nodes", "a", "--nodefile", "f"]).contains("cannot be used with"));
        assert!(parse(
            &[
                "--interchange",
                "tcp://ix:1",
                "--insecure",
                "--keys-dir",
                "/k"
            ],
            &[]
        )
        .expect_err("conflict")
        .contains("cannot be used with"));
        assert!(with(&["--launcher", "mpirun"]).contains("unknown launcher \"mpirun\""));
        assert!(with(&["--manager-id", "xyz"]).contains("--manager-id \"xyz\" is not a UUID"));
        assert!(
            with(&["--heartbeat-period", "0"]).contains("--heartbeat-period must be a positive")
        );
        assert!(with(&["--heartbeat-period", "NaN"]).contains("--heartbeat-period"));
        assert!(
            with(&["--heartbeat-period", "200"]).contains("must be larger than --heartbeat-period")
        );
        assert!(with(&["--kill-grace", "-1"]).contains("--kill-grace"));
        assert!(with(&["--drain-period", "0"]).contains("--drain-period"));
        assert!(with(&["--log-level", "loud"]).contains("--log-level \"loud\""));
        assert!(with(&["--slots-per-node", "0"]).contains("--slots-per-node must be at least 1"));
        assert!(with(&["--slots-per-node", "many"]).contains("--slots-per-node"));
        assert!(with(&["--block-id", " "]).contains("--block-id"));
        assert!(parse(&["--interchange", "ix:1", "--insecure"], &[])
            .expect_err("url")
            .contains("not a ZeroMQ endpoint"));
        assert!(parse(&["--insecure"], &[])
            .expect_err("required")
            .contains("--interchange"));
        assert!(parse(&["--interchange", "tcp://ix:1"], &[])
            .expect_err("no home")
            .contains("--keys-dir"));
    }
}
