//! The `[provider]` section of the config file: read as written, then
//! validated into a [`ProviderConfig`].

use super::{seconds, ConfigError, Environment, MAX_SECONDS};
use protocol::Launcher;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use transport::address::binds_every_interface;

/// The `[provider]` section of the config file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub kind: Option<String>,
    #[serde(alias = "queue")]
    pub partition: Option<String>,
    pub account: Option<String>,
    pub walltime: Option<String>,
    pub nodes_per_block: Option<u32>,
    pub min_blocks: Option<u32>,
    pub max_blocks: Option<u32>,
    pub max_idle: Option<f64>,
    pub scheduler_options: Option<String>,
    pub worker_init: Option<String>,
    pub launcher: Option<String>,
    pub manager_address: Option<String>,
    pub poll_period: Option<f64>,
    pub pool_manager: Option<PathBuf>,
}

/// Which batch system blocks are jobs of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// `sbatch`, `squeue`, `scancel`.
    Slurm,
    /// `qsub`, `qstat`, `qdel` (PBS Pro, OpenPBS, Torque).
    Pbs,
    /// Pool-managers started as child processes on this host.
    Local,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Slurm => "slurm",
            ProviderKind::Pbs => "pbs",
            ProviderKind::Local => "local",
        }
    }
}

/// A validated `[provider]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Slurm partition or PBS queue; `None`: the batch system's default.
    pub partition: Option<String>,
    pub account: Option<String>,
    /// `HH:MM:SS` as written (hours may have more digits).
    pub walltime: Option<String>,
    pub nodes_per_block: u32,
    pub min_blocks: u32,
    pub max_blocks: u32,
    /// A block whose manager has run nothing this long is drained and
    /// cancelled (down to `min_blocks`).
    pub max_idle: Duration,
    /// Extra batch-script header lines, each starting with `#`.
    pub scheduler_options: Vec<String>,
    /// Shell lines run in the batch script before the pool-manager starts.
    pub worker_init: String,
    pub launcher: Launcher,
    /// The host blocks connect to when `manager_listen` binds every
    /// interface; `None`: the bound address.
    pub manager_address: Option<String>,
    /// How often the batch system is asked about the blocks' jobs.
    pub poll_period: Duration,
    /// The pool-manager program blocks run.
    pub pool_manager: PathBuf,
}

fn bad_provider(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::BadProvider {
        key,
        problem: problem.into(),
    }
}

/// `H:MM:SS` above zero, with any number of hour digits and two-digit
/// minutes and seconds below 60.
fn valid_walltime(text: &str) -> bool {
    fn number(part: &str, max: u64) -> Option<u64> {
        if part.is_empty() || part.len() > 9 || !part.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        part.parse().ok().filter(|value| *value <= max)
    }
    let parts: Vec<&str> = text.split(':').collect();
    let [hours, minutes, seconds] = parts.as_slice() else {
        return false;
    };
    if minutes.len() != 2 || seconds.len() != 2 {
        return false;
    }
    match (
        number(hours, u64::MAX),
        number(minutes, 59),
        number(seconds, 59),
    ) {
        (Some(hours), Some(minutes), Some(seconds)) => hours * 3600 + minutes * 60 + seconds > 0,
        _ => false,
    }
}

/// A value that goes into a batch-script header line as is: one word.
fn header_word(key: &'static str, value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value {
        None => Ok(None),
        Some(text) if text.is_empty() => Err(bad_provider(
            key,
            "must not be empty (leave it out instead)",
        )),
        Some(text) if text.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(bad_provider(
                key,
                format!("{text:?} must be one word (no spaces or line breaks)"),
            ))
        }
        Some(text) => Ok(Some(text)),
    }
}

pub(super) fn resolve_provider(
    section: ProviderFile,
    manager_listen: &str,
    environment: &Environment,
) -> Result<ProviderConfig, ConfigError> {
    let kind = match section.kind.as_deref() {
        Some("slurm") => ProviderKind::Slurm,
        Some("pbs") => ProviderKind::Pbs,
        Some("local") => ProviderKind::Local,
        Some(other) => {
            return Err(bad_provider(
                "kind",
                format!("unknown kind {other:?}; valid kinds are slurm, pbs, local"),
            ))
        }
        None => return Err(bad_provider("kind", "missing; give slurm, pbs or local")),
    };
    let partition = header_word("partition", section.partition)?;
    let account = header_word("account", section.account)?;
    let walltime = match section.walltime {
        None => None,
        Some(text) if valid_walltime(&text) => Some(text),
        Some(text) => {
            return Err(bad_provider(
                "walltime",
                format!(
                    "{text:?} is not a duration HH:MM:SS above zero (for example \"01:30:00\")"
                ),
            ))
        }
    };
    let nodes_per_block = section.nodes_per_block.unwrap_or(1);
    if nodes_per_block == 0 {
        return Err(bad_provider("nodes_per_block", "must be at least 1, got 0"));
    }
    let min_blocks = section.min_blocks.unwrap_or(0);
    let max_blocks = section.max_blocks.unwrap_or(1);
    if max_blocks == 0 {
        return Err(bad_provider("max_blocks", "must be at least 1, got 0"));
    }
    if min_blocks > max_blocks {
        return Err(bad_provider(
            "min_blocks",
            format!("({min_blocks}) must not be larger than max_blocks ({max_blocks})"),
        ));
    }
    let max_idle = provider_seconds("max_idle", section.max_idle.unwrap_or(120.0))?;
    let default_poll = if kind == ProviderKind::Local {
        1.0
    } else {
        10.0
    };
    let poll_period = provider_seconds("poll_period", section.poll_period.unwrap_or(default_poll))?;
    let mut scheduler_options = Vec::new();
    for line in section.scheduler_options.as_deref().unwrap_or("").lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            return Err(bad_provider(
                "scheduler_options",
                format!(
                    "line {line:?} must be a batch-script directive starting with # \
                     (for example \"#SBATCH --mem=0\" or \"#PBS -l mem=10gb\")"
                ),
            ));
        }
        scheduler_options.push(line.to_owned());
    }
    let worker_init = section.worker_init.unwrap_or_default();
    let launcher = match section.launcher {
        Some(text) => text
            .parse()
            .map_err(|problem: String| bad_provider("launcher", problem))?,
        None if kind == ProviderKind::Slurm => Launcher::Srun,
        None => Launcher::Mpiexec,
    };
    let manager_address = match section.manager_address {
        None => None,
        Some(address)
            if address.is_empty()
                || address.contains("://")
                || address.chars().any(|c| c.is_whitespace() || c == '/') =>
        {
            return Err(bad_provider(
                "manager_address",
                format!("{address:?} must be a host name or IP address (no scheme, no port)"),
            ))
        }
        Some(address) => Some(address),
    };
    if manager_address.is_none()
        && kind != ProviderKind::Local
        && binds_every_interface(manager_listen)
    {
        return Err(bad_provider(
            "manager_address",
            format!(
                "missing: manager_listen ({manager_listen}) binds every interface, so give the \
                 host name or address the compute nodes reach this host at"
            ),
        ));
    }
    let pool_manager = match section.pool_manager {
        Some(path) if path.as_os_str().is_empty() => {
            return Err(bad_provider("pool_manager", "must not be empty"))
        }
        Some(path) => path,
        None => match &environment.program_dir {
            Some(directory) => directory.join("pool-manager"),
            None => PathBuf::from("pool-manager"),
        },
    };
    Ok(ProviderConfig {
        kind,
        partition,
        account,
        walltime,
        nodes_per_block,
        min_blocks,
        max_blocks,
        max_idle,
        scheduler_options,
        worker_init,
        launcher,
        manager_address,
        poll_period,
        pool_manager,
    })
}

fn provider_seconds(key: &'static str, value: f64) -> Result<Duration, ConfigError> {
    seconds(key, value).map_err(|_| {
        bad_provider(
            key,
            format!("must be a number of seconds above 0 and at most {MAX_SECONDS}, got {value}"),
        )
    })
}
