//! Block providers: the interchange starts and stops its own blocks (batch
//! jobs that each run one pool-manager) from the demand in its queue.
//!
//! - `interchange_core::provider`: the pure decisions (how many blocks,
//!   which to drain, which to cancel, backoff after failures),
//!   `handle_*`/`poll_*` like the interchange core.
//! - [`script`]: batch scripts rendered from the templates in
//!   `deploy/slurm/` and `deploy/pbs/` (embedded here with `include_str!`, so
//!   the files in `deploy/` are exactly what the providers submit).
//! - [`batch`]: the shell, a worker thread that runs the batch commands or
//!   starts local pool-managers; the only module that spawns processes.
//!
//! - [`local`]: the local provider's pool-managers of a previous
//!   interchange, adopted (found and stopped by pid).
//!
//! [`Provider`] ties them to the interchange core for the daemon: one
//! [`Provider::step`] per turn of the poll loop, and at the end
//! [`Provider::shutdown`] (every block cancelled: the work is over) or
//! [`Provider::keep_blocks`] (every block left running for the next
//! interchange, which adopts them from the journal).

pub mod batch;
mod command;
pub mod local;
pub mod script;

use self::batch::{Answer, BatchShell, ShellSettings};
use self::script::ScriptValues;
use crate::config::{ProviderConfig, ProviderKind};
use interchange_core::provider::{Action, ProviderCore, ProviderSettings};
use interchange_core::Core;
use protocol::{BlockInfo, BlockState, UnixTime};
use seam::Time;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Slurm batch-script template (`deploy/slurm/pool-manager.sbatch`).
pub const SLURM_TEMPLATE: &str = include_str!("../../../../deploy/slurm/pool-manager.sbatch");
/// The PBS batch-script template (`deploy/pbs/pool-manager.pbs`).
pub const PBS_TEMPLATE: &str = include_str!("../../../../deploy/pbs/pool-manager.pbs");

/// Each batch command is killed after this long.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the provider gets at exit to cancel its blocks.
pub const STOP_BOUND: Duration = Duration::from_secs(45);
/// Local pool-managers get this long after SIGTERM before SIGKILL.
pub const LOCAL_KILL_GRACE: Duration = Duration::from_secs(10);
/// A draining manager gets this long to leave before its job is cancelled.
pub const DRAIN_GRACE: Duration = Duration::from_secs(60);
/// The delay after the first failed block; doubled per further failure...
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// ...up to this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(600);
/// Ended and failed blocks shown by `status`.
pub const MAX_KEPT_ENDED: usize = 32;

/// Why the provider cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider: cannot create {path}: {source}")]
    BlocksDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("provider: the {kind} batch template cannot be used: {source}")]
    Template {
        kind: &'static str,
        source: script::ScriptError,
    },
    #[error(
        "provider: pool-manager program {path} not found (set provider.pool_manager, or install \
         pool-manager next to interchange)"
    )]
    NoPoolManager { path: PathBuf },
    #[error("provider: cannot start its worker thread: {0}")]
    Worker(std::io::Error),
}

/// What the daemon knows once its sockets are bound.
#[derive(Clone, Debug)]
pub struct ProviderContext {
    /// The manager socket's URL as bound (`tcp://0.0.0.0:41235`).
    pub manager_url: String,
    /// Absolute.
    pub run_dir: PathBuf,
    /// Absolute; `None` with `--insecure`.
    pub keys_dir: Option<PathBuf>,
    pub heartbeat_period: Duration,
    pub heartbeat_threshold: Duration,
    pub wall_clock_at_zero: UnixTime,
    /// The blocks of the run before a restart (from the journal): the live
    /// ones are adopted, their jobs asked about, not submitted anew.
    pub adopt: Vec<BlockInfo>,
}

/// The URL blocks connect to: the bound URL with its host replaced by
/// `manager_address` when one is given, or by 127.0.0.1 when the socket
/// binds every interface and the blocks run on this host.
pub fn block_url(manager_url: &str, manager_address: Option<&str>, kind: ProviderKind) -> String {
    let host = match manager_address {
        Some(address) if address.contains(':') && !address.starts_with('[') => {
            format!("[{address}]")
        }
        Some(address) => address.to_owned(),
        None if kind == ProviderKind::Local => return transport::connectable_url(manager_url),
        None => return manager_url.to_owned(),
    };
    match (manager_url.strip_prefix("tcp://"), manager_url.rfind(':')) {
        (Some(_), Some(colon)) if colon > "tcp://".len() => {
            format!("tcp://{host}{}", &manager_url[colon..])
        }
        _ => manager_url.to_owned(),
    }
}

/// The largest task blocks can run, given `--max-block-nodes` too.
pub fn max_block_nodes(configured: Option<u32>, provider: Option<&ProviderConfig>) -> Option<u32> {
    match (
        configured,
        provider.map(|provider| provider.nodes_per_block),
    ) {
        (Some(configured), Some(per_block)) => Some(configured.min(per_block)),
        (configured, per_block) => configured.or(per_block),
    }
}

/// A short tag that keeps block ids of successive interchanges apart.
fn run_tag(wall_clock: UnixTime) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut value = (wall_clock.max(0.0) as u64) % 36u64.pow(5);
    let mut tag = Vec::new();
    for _ in 0..5 {
        tag.push(DIGITS[(value % 36) as usize]);
        value /= 36;
    }
    tag.reverse();
    String::from_utf8_lossy(&tag).into_owned()
}

/// The provider core and its shell.
#[derive(Debug)]
pub struct Provider {
    core: ProviderCore,
    shell: BatchShell,
}

impl Provider {
    /// Checks the template, creates `<run dir>/blocks`, starts the worker.
    pub fn start(
        config: &ProviderConfig,
        context: &ProviderContext,
        now: Time,
    ) -> Result<Self, ProviderError> {
        let blocks_dir = context.run_dir.join("blocks");
        std::fs::create_dir_all(&blocks_dir).map_err(|source| ProviderError::BlocksDir {
            path: blocks_dir.clone(),
            source,
        })?;
        let template = match config.kind {
            ProviderKind::Slurm => SLURM_TEMPLATE,
            ProviderKind::Pbs => PBS_TEMPLATE,
            ProviderKind::Local => "",
        };
        // A bare name is looked up on PATH when it is started.
        let is_bare_name = config.pool_manager.components().count() == 1
            && !config.pool_manager.is_absolute()
            && !config.pool_manager.starts_with(".");
        if config.kind == ProviderKind::Local
            && !is_bare_name
            && !Path::new(&config.pool_manager).is_file()
        {
            return Err(ProviderError::NoPoolManager {
                path: config.pool_manager.clone(),
            });
        }
        let block_prefix = format!("rhtex-{}-", run_tag(context.wall_clock_at_zero));
        let settings = ShellSettings {
            kind: config.kind,
            template: template.to_owned(),
            blocks_dir,
            values: ScriptValues {
                walltime: config.walltime.clone(),
                partition: config.partition.clone(),
                account: config.account.clone(),
                scheduler_options: config.scheduler_options.clone(),
                worker_init: config.worker_init.clone(),
                interchange: block_url(
                    &context.manager_url,
                    config.manager_address.as_deref(),
                    config.kind,
                ),
                keys_dir: context
                    .keys_dir
                    .as_ref()
                    .map(|path| path.display().to_string()),
                pool_manager: config.pool_manager.display().to_string(),
                launcher: config.launcher.as_str().to_owned(),
                heartbeat_period: seam::seconds_text(context.heartbeat_period),
                heartbeat_threshold: seam::seconds_text(context.heartbeat_threshold),
                ..ScriptValues::default()
            },
            command_timeout: COMMAND_TIMEOUT,
            kill_grace: LOCAL_KILL_GRACE,
        };
        if config.kind != ProviderKind::Local {
            // A path with spaces or a bad template shows now, not at the
            // first submission.
            let values = settings.block_values(&format!("{block_prefix}0"), config.nodes_per_block);
            script::render(template, &values).map_err(|source| ProviderError::Template {
                kind: config.kind.as_str(),
                source,
            })?;
        }
        tracing::info!(
            kind = config.kind.as_str(),
            interchange = %settings.values.interchange,
            nodes_per_block = config.nodes_per_block,
            min_blocks = config.min_blocks,
            max_blocks = config.max_blocks,
            max_idle_s = config.max_idle.as_secs_f64(),
            blocks_dir = %settings.blocks_dir.display(),
            "block provider on"
        );
        let mut core = ProviderCore::new(
            ProviderSettings {
                provider: config.kind.as_str().to_owned(),
                nodes_per_block: config.nodes_per_block,
                min_blocks: config.min_blocks,
                max_blocks: config.max_blocks,
                max_idle: config.max_idle,
                poll_period: config.poll_period,
                drain_grace: DRAIN_GRACE,
                backoff_base: BACKOFF_BASE,
                backoff_max: BACKOFF_MAX,
                block_prefix,
                max_kept_ended: MAX_KEPT_ENDED,
                wall_clock_at_zero: context.wall_clock_at_zero,
            },
            now,
        );
        // Local pool-managers left running by the previous interchange are
        // adopted as batch jobs are (found by pid, see `local`).
        core.adopt(now, &context.adopt);
        let shell = BatchShell::start(settings).map_err(ProviderError::Worker)?;
        Ok(Self { core, shell })
    }

    /// Readable when the worker has answers.
    pub fn wake_fd(&self) -> RawFd {
        self.shell.wake_fd()
    }

    /// When [`Provider::step`] must run at the latest.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.core.poll_timeout()
    }

    /// Feeds the worker's answers and the queue's state to the provider
    /// core, performs its actions (drains on `core`, the rest on the
    /// worker) and shows the blocks in `status`.
    pub fn step(&mut self, now: Time, core: &mut Core) {
        while let Some(answer) = self.shell.poll_answer() {
            self.handle_answer(now, answer);
        }
        self.core
            .handle_tick(now, &core.demand(), &core.managers_view());
        self.perform(now, core);
    }

    /// Leaves every block running for the next interchange on this run
    /// directory, which adopts them from the journal (the blocks' last
    /// states are in it already); waits (bounded) for the worker to finish
    /// what it was doing.
    /// A submission still under way finishes first, and its job id goes to
    /// `core` (so into the journal) like the others.
    pub fn keep_blocks(mut self, now: Time, core: &mut Core) {
        self.shell.keep(STOP_BOUND);
        while let Some(answer) = self.shell.poll_answer() {
            self.handle_answer(now, answer);
        }
        if self.core.take_changed() {
            core.set_blocks(now, self.core.blocks());
        }
        let kept: Vec<String> = self
            .core
            .blocks()
            .into_iter()
            .filter(|block| {
                matches!(
                    block.state,
                    BlockState::Pending | BlockState::Running | BlockState::Connected
                ) && !block.job_id.is_empty()
            })
            .map(|block| block.job_id)
            .collect();
        tracing::info!(
            n_blocks = kept.len(),
            jobs = ?kept,
            "blocks kept running: their pool-managers keep their tasks, and the next interchange \
             on this run directory adopts them (`rhtex shutdown` ends them)"
        );
    }

    /// Cancels every block and waits (bounded) for the worker to finish.
    pub fn shutdown(mut self, now: Time, core: &mut Core) {
        while let Some(answer) = self.shell.poll_answer() {
            self.handle_answer(now, answer);
        }
        self.core.handle_shutdown();
        self.perform(now, core);
        self.shell.stop(STOP_BOUND);
    }

    fn handle_answer(&mut self, now: Time, answer: Answer) {
        match answer {
            Answer::Submitted { block_id, outcome } => {
                self.core.handle_submitted(now, &block_id, outcome)
            }
            Answer::Jobs(outcome) => self.core.handle_jobs(now, outcome),
            Answer::Cancelled { jobs, outcome } => self.core.handle_cancelled(&jobs, outcome),
        }
    }

    fn perform(&mut self, now: Time, core: &mut Core) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Drain {
                    manager_id,
                    block_id,
                    reason,
                } => {
                    if !core.drain_manager(manager_id, &reason) {
                        tracing::debug!(%block_id, %manager_id, "manager to drain is gone already");
                    }
                }
                other => self.shell.perform(other),
            }
        }
        if self.core.take_changed() {
            core.set_blocks(now, self.core.blocks());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_reach_the_bound_address_or_manager_address() {
        let cases: &[(&str, Option<&str>, ProviderKind, &str)] = &[
            (
                "tcp://0.0.0.0:5000",
                Some("gateway"),
                ProviderKind::Slurm,
                "tcp://gateway:5000",
            ),
            (
                "tcp://10.0.0.1:5000",
                None,
                ProviderKind::Slurm,
                "tcp://10.0.0.1:5000",
            ),
            (
                "tcp://0.0.0.0:5000",
                None,
                ProviderKind::Local,
                "tcp://127.0.0.1:5000",
            ),
            (
                "tcp://0.0.0.0:5000",
                Some("fd00::1"),
                ProviderKind::Pbs,
                "tcp://[fd00::1]:5000",
            ),
            (
                "ipc:///run/m.sock",
                Some("gateway"),
                ProviderKind::Slurm,
                "ipc:///run/m.sock",
            ),
        ];
        for (bound, address, kind, expected) in cases {
            assert_eq!(
                block_url(bound, *address, *kind),
                *expected,
                "{bound} {address:?}"
            );
        }
    }

    #[test]
    fn tasks_larger_than_a_block_are_unschedulable() {
        let provider = ProviderConfig {
            kind: ProviderKind::Local,
            partition: None,
            account: None,
            walltime: None,
            nodes_per_block: 4,
            min_blocks: 0,
            max_blocks: 1,
            max_idle: Duration::from_secs(1),
            scheduler_options: Vec::new(),
            worker_init: String::new(),
            launcher: protocol::Launcher::Mpiexec,
            manager_address: None,
            poll_period: Duration::from_secs(1),
            pool_manager: PathBuf::from("pool-manager"),
        };
        assert_eq!(max_block_nodes(None, Some(&provider)), Some(4));
        assert_eq!(max_block_nodes(Some(2), Some(&provider)), Some(2));
        assert_eq!(max_block_nodes(Some(8), Some(&provider)), Some(4));
        assert_eq!(max_block_nodes(Some(8), None), Some(8));
        assert_eq!(max_block_nodes(None, None), None);
    }

    #[test]
    fn run_tags_are_short_and_plain() {
        let tag = run_tag(1_700_000_000.5);
        assert_eq!(tag.len(), 5);
        assert!(
            tag.bytes().all(|byte| byte.is_ascii_alphanumeric()),
            "{tag}"
        );
    }
}
