//! Flags and the TOML config file, validated into a [`Config`] that cannot
//! be invalid.
//!
//! Precedence: a flag on the command line, then the config file, then the
//! environment (`RHTEX_KEYS_DIR`), then the default.

use clap::Parser;
use interchange_core::Placement;
use protocol::Launcher;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use transport::address::binds_every_interface;
pub use transport::Security;

/// The interchange's command line.
#[derive(Debug, Default, Parser)]
#[command(
    name = "interchange",
    version,
    about = "The rhtex interchange: queues clients' MPI tasks and hands each to a pool-manager \
             with enough free nodes to start it at once.",
    after_help = "Once both sockets are bound, one JSON line goes to stdout: \
                  {\"client_url\": ..., \"manager_url\": ..., \"pid\": ...}. Logs go to stderr.\n\n\
                  Stop versus end: SIGTERM or SIGINT stops the daemon and keeps the work: the \
                  pool-managers are told nothing, keep running their tasks and hold their results, \
                  and register again (for up to their --reattach-timeout) with the interchange \
                  started next on the same addresses, which keeps the tasks it knows and has them \
                  kill the others; clients waiting for results watch again. (With a [provider], \
                  the blocks it submitted are still cancelled on SIGTERM.) `rhtex shutdown` ends the \
                  work: queued tasks are cancelled, pool-managers kill their tasks and exit."
)]
pub struct Flags {
    /// TOML file with the same settings (keys with underscores: run_dir,
    /// client_listen, manager_listen, keys_dir, insecure, heartbeat_period,
    /// heartbeat_threshold, max_block_nodes, max_finished_results,
    /// max_finished_mib, max_task_input_bytes, max_task_output_bytes,
    /// max_queued_input_mib, max_queued_task_mib, max_message_mib, max_manager_nodes, placement,
    /// default_retries, log_level,
    /// metrics_listen, admins, events, events_file, events_max_mib, journal, fresh); flags
    /// override it. Its `[provider]` section (no flags) makes the
    /// interchange start and stop blocks itself: see deploy/README.md.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the interchange's files (created if missing)
    /// [default: rhtex-run].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Where clients connect (tcp://HOST:PORT or ipc://PATH; port 0 picks a
    /// free port) [default: tcp://127.0.0.1:0].
    #[arg(long, value_name = "URL")]
    pub client_listen: Option<String>,
    /// Where pool-managers connect [default: tcp://0.0.0.0:0].
    #[arg(long, value_name = "URL")]
    pub manager_listen: Option<String>,
    /// CURVE key directory (mode 0700, made by `rhtex keygen`): manager.key
    /// is admitted on the manager socket, client.key and client-NAME.key on
    /// the client socket; read again on SIGHUP [default: $RHTEX_KEYS_DIR,
    /// else ~/.rhtex/keys].
    #[arg(long, value_name = "DIR", conflicts_with = "insecure")]
    pub keys_dir: Option<PathBuf>,
    /// Turn encryption and authentication off (trusted networks only).
    #[arg(long)]
    pub insecure: bool,
    /// Seconds between heartbeats to every manager; fractions allowed
    /// [default: 30].
    #[arg(long, value_name = "SECS")]
    pub heartbeat_period: Option<f64>,
    /// Seconds of silence after which a manager is dropped and its tasks
    /// fail as manager_lost [default: 120].
    #[arg(long, value_name = "SECS")]
    pub heartbeat_threshold: Option<f64>,
    /// The most nodes any block may have: larger tasks fail at once as
    /// unschedulable instead of waiting [default: no limit].
    #[arg(long, value_name = "N")]
    pub max_block_nodes: Option<u32>,
    /// How many finished tasks' results are kept for late `rhtex wait` and
    /// `task_status` (oldest forgotten first; a forgotten task reads as
    /// unknown) [default: 100000].
    #[arg(long, value_name = "N")]
    pub max_finished_results: Option<usize>,
    /// Memory, in MiB, that kept results (mostly their output tails) may
    /// take; the oldest are forgotten first [default: 512].
    #[arg(long, value_name = "MIB")]
    pub max_finished_mib: Option<usize>,
    /// The largest input (bytes) a task may carry; a larger one fails at
    /// once as input_too_large. Announced to clients [default: 16777216,
    /// 16 MiB].
    #[arg(long, value_name = "BYTES")]
    pub max_task_input_bytes: Option<u64>,
    /// The largest output (bytes) a task may return; a larger output file
    /// fails its task as output_too_large. Given to pool-managers and
    /// announced to clients [default: 16777216, 16 MiB].
    #[arg(long, value_name = "BYTES")]
    pub max_task_output_bytes: Option<u64>,
    /// Memory, in MiB, that the input of unfinished tasks (queued or
    /// running, kept for retries) may take; a submit that would pass it is
    /// refused as busy [default: 1024].
    #[arg(long, value_name = "MIB")]
    pub max_queued_input_mib: Option<u64>,
    /// Memory, in MiB, that the rest of the data of unfinished tasks
    /// (commands, environments, paths, launcher options) may take; a
    /// submit that would pass it is refused as busy [default: 1024].
    #[arg(long, value_name = "MIB")]
    pub max_queued_task_mib: Option<u64>,
    /// The largest message, in MiB, taken on the client and the manager
    /// socket (ZMQ_MAXMSGSIZE); a larger one drops its connection. At
    /// least the largest task input or output plus 8 MiB, and at least
    /// 24 MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    pub max_message_mib: Option<u64>,
    /// The most nodes one pool-manager may register; a larger registration
    /// is refused [default: 16384].
    #[arg(long, value_name = "N")]
    pub max_manager_nodes: Option<usize>,
    /// Which manager a task goes to when several can start it: best-fit
    /// (the tightest free capacity, keeping large holes for large tasks) or
    /// newest-block (the last to register, so old blocks go idle and can be
    /// released) [default: best-fit].
    #[arg(long, value_name = "POLICY")]
    pub placement: Option<String>,
    /// How many times a task is queued again after its manager was lost,
    /// when its specification has no `retries` [default: 0].
    #[arg(long, value_name = "N")]
    pub default_retries: Option<u32>,
    /// Log level (error, warn, info, debug, trace) for stderr; RUST_LOG
    /// applies when this is not given [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Serve Prometheus metrics over HTTP at http://ADDR/metrics: PORT
    /// (on 127.0.0.1), localhost:PORT, IP:PORT or [IPV6]:PORT; an address
    /// other than loopback is allowed but logged as a warning (the
    /// metrics are read-only, without authentication) [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// The event log: one JSON line per task, manager and block event
    /// (proto/EVENTS.md) [default: RUN_DIR/events.jsonl].
    #[arg(long, value_name = "FILE", conflicts_with = "no_events")]
    pub events_file: Option<PathBuf>,
    /// Write no event log.
    #[arg(long)]
    pub no_events: bool,
    /// Rotate the event log past this size: FILE becomes FILE.1 (FILE.1
    /// FILE.2, up to FILE.3) [default: 100].
    #[arg(long, value_name = "MIB")]
    pub events_max_mib: Option<u64>,
    /// Stop (as on SIGTERM) when the process that started the interchange
    /// is gone, even if it was killed with SIGKILL; checked every 0.2 s.
    #[arg(long)]
    pub exit_with_parent: bool,
    /// A client identity that is an admin besides `default` (may be
    /// repeated; replaces the config file's `admins`).
    #[arg(long = "admin", value_name = "NAME")]
    pub admins: Vec<String>,
    /// Start empty: discard the journal in the run directory (its queued
    /// tasks and kept results) instead of resuming from it. Needed when
    /// the journal is of another format version.
    #[arg(long)]
    pub fresh: bool,
    /// Keep no journal: nothing survives a restart, and replies do not
    /// wait for the disk. By default every accepted task and every change
    /// of a task's state is written to journal/ in the run directory and
    /// synced before the client is told, and a restart with the same run
    /// directory resumes from it (`journal = false` in the config file).
    #[arg(long)]
    pub no_journal: bool,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub run_dir: Option<PathBuf>,
    pub client_listen: Option<String>,
    pub manager_listen: Option<String>,
    pub keys_dir: Option<PathBuf>,
    pub insecure: Option<bool>,
    pub heartbeat_period: Option<f64>,
    pub heartbeat_threshold: Option<f64>,
    pub max_block_nodes: Option<u32>,
    pub max_finished_results: Option<usize>,
    pub max_finished_mib: Option<usize>,
    pub max_task_input_bytes: Option<u64>,
    pub max_task_output_bytes: Option<u64>,
    pub max_queued_input_mib: Option<u64>,
    pub max_queued_task_mib: Option<u64>,
    pub max_message_mib: Option<u64>,
    pub max_manager_nodes: Option<usize>,
    pub placement: Option<String>,
    pub default_retries: Option<u32>,
    pub log_level: Option<String>,
    pub metrics_listen: Option<String>,
    /// Client identities that are admins besides `default`.
    pub admins: Option<Vec<String>>,
    pub events: Option<bool>,
    pub events_file: Option<PathBuf>,
    pub events_max_mib: Option<u64>,
    pub journal: Option<bool>,
    pub fresh: Option<bool>,
    pub provider: Option<ProviderFile>,
}

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

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub run_dir: PathBuf,
    pub client_listen: String,
    pub manager_listen: String,
    pub security: Security,
    pub heartbeat_period: Duration,
    pub heartbeat_threshold: Duration,
    pub max_block_nodes: Option<u32>,
    /// Finished results kept for late `watch`/`task_status`: at most this
    /// many, taking at most `max_finished_bytes`.
    pub max_finished_results: usize,
    pub max_finished_bytes: usize,
    /// Task payload limits: per task, and for the input all unfinished
    /// tasks hold.
    pub max_task_input_bytes: u64,
    pub max_task_output_bytes: u64,
    pub max_queued_input_bytes: u64,
    /// The bound on the rest of the unfinished tasks' data.
    pub max_queued_task_bytes: u64,
    /// The largest frame taken on either socket (ZMQ_MAXMSGSIZE).
    pub max_message_bytes: u64,
    /// The most nodes one manager may register.
    pub max_manager_nodes: usize,
    pub placement: Placement,
    pub default_retries: u32,
    /// A level name; `None` means "RUST_LOG, else info".
    pub log_level: Option<String>,
    /// Blocks the interchange starts and stops itself; `None`: managers are
    /// started by someone else.
    pub provider: Option<ProviderConfig>,
    /// Where the Prometheus metrics are served; `None`: not served.
    pub metrics_listen: Option<SocketAddr>,
    /// The event log; `None`: none written.
    pub events: Option<EventsConfig>,
    /// Stop when the parent process is gone (`--exit-with-parent`).
    pub exit_with_parent: bool,
    /// Client identities that are admins besides `default`.
    pub admins: BTreeSet<String>,
    /// Keep the journal under `<run_dir>/journal/` and resume from it.
    pub journal: bool,
    /// Discard the journal at start (`--fresh`).
    pub fresh: bool,
}

/// Where the event log goes, and when it is rotated.
#[derive(Clone, Debug, PartialEq)]
pub struct EventsConfig {
    pub path: PathBuf,
    pub max_bytes: u64,
}

/// The event log's default rotation size, in MiB.
pub const DEFAULT_EVENTS_MAX_MIB: u64 = 100;

/// What can be wrong with the settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}{}: {message}", location.map_or_else(String::new, |(line, column)| format!(", line {line}, column {column}")))]
    ParseFile {
        path: PathBuf,
        /// Line and column (from 1) where the problem is, when known.
        location: Option<(usize, usize)>,
        message: String,
    },
    #[error("{setting} must be a URL starting with {allowed}, got {got:?}")]
    BadUrl {
        setting: &'static str,
        allowed: &'static str,
        got: String,
    },
    #[error("{setting} must be a number of seconds above 0 and at most {max}, got {got}")]
    BadSeconds {
        setting: &'static str,
        max: f64,
        got: f64,
    },
    #[error(
        "heartbeat_threshold ({threshold} s) must be larger than heartbeat_period ({period} s), \
         or every manager would be dropped between two heartbeats"
    )]
    ThresholdNotAbovePeriod { period: f64, threshold: f64 },
    #[error("max_finished_mib = {0} is too large for this machine's address space")]
    TooManyMib(usize),
    #[error("events_max_mib must be between 1 and 1048576, got {0}")]
    BadEventsMaxMib(u64),
    #[error("max_queued_input_mib = {0} is too large")]
    TooManyQueuedMib(u64),
    #[error(
        "max_queued_task_mib = {0} must be from 16 (a task's command, environment and paths \
         may take about 2 MiB) to {max}",
        max = u64::MAX >> 20
    )]
    BadQueuedTaskMib(u64),
    #[error(
        "max_task_input_bytes ({per_task}) is larger than max_queued_input_mib \
         ({queued} bytes): no task with such an input could ever be accepted"
    )]
    InputLimitAboveBudget { per_task: u64, queued: u64 },
    #[error(
        "max_message_mib = {mib} ({bytes} bytes) is too small: messages must hold the largest task \
         input or output and the rest of the task (max_task_input_bytes = {input}, \
         max_task_output_bytes = {output}), so give at least {} MiB",
        needed.div_ceil(1024 * 1024)
    )]
    MessageLimitTooSmall {
        mib: u64,
        bytes: u64,
        input: u64,
        output: u64,
        needed: u64,
    },
    #[error("max_manager_nodes must be at least 1, got 0")]
    ZeroMaxManagerNodes,
    #[error("admins: {0}")]
    BadAdmin(transport::KeyError),
    #[error("placement: {0}")]
    BadPlacement(String),
    #[error("default_retries must be at most {max}, got {0}", max = protocol::spec::MAX_RETRIES)]
    TooManyRetries(u32),
    #[error("max_block_nodes must be at least 1, got 0")]
    ZeroMaxBlockNodes,
    #[error("unknown log level {0:?}; valid levels are error, warn, info, debug, trace, off")]
    BadLogLevel(String),
    #[error(
        "no key directory: give --keys-dir, set RHTEX_KEYS_DIR or HOME, or run with --insecure"
    )]
    NoKeysDir,
    #[error("provider.{key}: {problem}")]
    BadProvider { key: &'static str, problem: String },
    #[error("metrics_listen: {0}")]
    BadMetricsListen(String),
}

fn bad_provider(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::BadProvider {
        key,
        problem: problem.into(),
    }
}

/// The most seconds accepted for a period or threshold (one week).
const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];

fn seconds(setting: &'static str, value: f64) -> Result<Duration, ConfigError> {
    if value.is_finite() && value > 0.0 && value <= MAX_SECONDS {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(ConfigError::BadSeconds {
            setting,
            max: MAX_SECONDS,
            got: value,
        })
    }
}

fn listen_url(setting: &'static str, url: String) -> Result<String, ConfigError> {
    let valid = ["tcp://", "ipc://"]
        .iter()
        .any(|scheme| url.len() > scheme.len() && url.starts_with(scheme));
    if valid {
        Ok(url)
    } else {
        Err(ConfigError::BadUrl {
            setting,
            allowed: "tcp:// or ipc://",
            got: url,
        })
    }
}

/// Reads and parses a config file.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(path, &text)
}

/// Parses config file text; unknown keys are errors that name them.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|error| ConfigError::ParseFile {
        path: path.to_path_buf(),
        location: error.span().map(|span| line_and_column(text, span.start)),
        message: error.message().to_owned(),
    })
}

/// The line and column (from 1, the column in characters) of byte
/// `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// What the configuration may take from the process environment.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `RHTEX_KEYS_DIR`.
    pub keys_dir: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// The directory holding the running `interchange` program (where the
    /// provider looks for `pool-manager` by default).
    pub program_dir: Option<PathBuf>,
}

impl Environment {
    /// Reads the process environment.
    pub fn current() -> Self {
        let non_empty = |name: &str| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        Self {
            keys_dir: non_empty("RHTEX_KEYS_DIR"),
            home: non_empty("HOME"),
            program_dir: std::env::current_exe()
                .ok()
                .and_then(|program| program.parent().map(Path::to_path_buf)),
        }
    }
}

impl Config {
    /// Reads the config file named by the flags (if any) and resolves.
    pub fn load(flags: Flags, environment: &Environment) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(flags, file, environment)
    }

    /// Combines flags, file and environment, and validates.
    pub fn resolve(
        flags: Flags,
        file: FileConfig,
        environment: &Environment,
    ) -> Result<Self, ConfigError> {
        let security = if flags.insecure {
            Security::Insecure
        } else if let Some(keys_dir) = flags.keys_dir {
            Security::Curve(keys_dir)
        } else if file.insecure == Some(true) {
            Security::Insecure
        } else if let Some(keys_dir) = file.keys_dir.or_else(|| environment.keys_dir.clone()) {
            Security::Curve(keys_dir)
        } else {
            match &environment.home {
                Some(home) => Security::Curve(home.join(".rhtex").join("keys")),
                None => return Err(ConfigError::NoKeysDir),
            }
        };
        let heartbeat_period = seconds(
            "heartbeat_period",
            flags
                .heartbeat_period
                .or(file.heartbeat_period)
                .unwrap_or(30.0),
        )?;
        let heartbeat_threshold = seconds(
            "heartbeat_threshold",
            flags
                .heartbeat_threshold
                .or(file.heartbeat_threshold)
                .unwrap_or(120.0),
        )?;
        if heartbeat_threshold <= heartbeat_period {
            return Err(ConfigError::ThresholdNotAbovePeriod {
                period: heartbeat_period.as_secs_f64(),
                threshold: heartbeat_threshold.as_secs_f64(),
            });
        }
        let max_block_nodes = flags.max_block_nodes.or(file.max_block_nodes);
        if max_block_nodes == Some(0) {
            return Err(ConfigError::ZeroMaxBlockNodes);
        }
        let max_finished_results = flags
            .max_finished_results
            .or(file.max_finished_results)
            .unwrap_or(100_000);
        let max_finished_mib = flags
            .max_finished_mib
            .or(file.max_finished_mib)
            .unwrap_or(512);
        let max_finished_bytes = max_finished_mib
            .checked_mul(1024 * 1024)
            .ok_or(ConfigError::TooManyMib(max_finished_mib))?;
        let max_task_input_bytes = flags
            .max_task_input_bytes
            .or(file.max_task_input_bytes)
            .unwrap_or(protocol::DEFAULT_MAX_TASK_INPUT_BYTES);
        let max_task_output_bytes = flags
            .max_task_output_bytes
            .or(file.max_task_output_bytes)
            .unwrap_or(protocol::DEFAULT_MAX_TASK_OUTPUT_BYTES);
        let max_queued_input_mib = flags
            .max_queued_input_mib
            .or(file.max_queued_input_mib)
            .unwrap_or(interchange_core::DEFAULT_MAX_QUEUED_INPUT_BYTES / (1024 * 1024));
        let max_queued_input_bytes = max_queued_input_mib
            .checked_mul(1024 * 1024)
            .ok_or(ConfigError::TooManyQueuedMib(max_queued_input_mib))?;
        if max_task_input_bytes > max_queued_input_bytes {
            return Err(ConfigError::InputLimitAboveBudget {
                per_task: max_task_input_bytes,
                queued: max_queued_input_bytes,
            });
        }
        let max_queued_task_mib = flags
            .max_queued_task_mib
            .or(file.max_queued_task_mib)
            .unwrap_or(interchange_core::DEFAULT_MAX_QUEUED_TASK_BYTES / (1024 * 1024));
        let max_queued_task_bytes = max_queued_task_mib
            .checked_mul(1024 * 1024)
            .filter(|_| max_queued_task_mib >= 16)
            .ok_or(ConfigError::BadQueuedTaskMib(max_queued_task_mib))?;
        let max_message_mib = flags
            .max_message_mib
            .or(file.max_message_mib)
            .unwrap_or(protocol::limits::DEFAULT_MAX_MESSAGE_BYTES / (1024 * 1024));
        let max_message_bytes = max_message_mib.saturating_mul(1024 * 1024);
        let needed =
            protocol::limits::min_max_message_bytes(max_task_input_bytes, max_task_output_bytes);
        if max_message_bytes < needed {
            return Err(ConfigError::MessageLimitTooSmall {
                mib: max_message_mib,
                bytes: max_message_bytes,
                input: max_task_input_bytes,
                output: max_task_output_bytes,
                needed,
            });
        }
        let max_manager_nodes = flags
            .max_manager_nodes
            .or(file.max_manager_nodes)
            .unwrap_or(protocol::limits::DEFAULT_MAX_MANAGER_NODES);
        if max_manager_nodes == 0 {
            return Err(ConfigError::ZeroMaxManagerNodes);
        }
        let placement = match flags.placement.or(file.placement) {
            None => Placement::BestFit,
            Some(text) => text.parse().map_err(ConfigError::BadPlacement)?,
        };
        let default_retries = flags.default_retries.or(file.default_retries).unwrap_or(0);
        if i64::from(default_retries) > protocol::spec::MAX_RETRIES {
            return Err(ConfigError::TooManyRetries(default_retries));
        }
        let manager_listen = listen_url(
            "manager_listen",
            flags
                .manager_listen
                .or(file.manager_listen)
                .unwrap_or_else(|| "tcp://0.0.0.0:0".to_owned()),
        )?;
        let provider = match file.provider {
            None => None,
            Some(section) => Some(resolve_provider(section, &manager_listen, environment)?),
        };
        let metrics_listen = match flags.metrics_listen.or(file.metrics_listen) {
            None => None,
            Some(text) => {
                Some(crate::metrics::parse_listen(&text).map_err(ConfigError::BadMetricsListen)?)
            }
        };
        let admins = if flags.admins.is_empty() {
            file.admins.unwrap_or_default()
        } else {
            flags.admins
        };
        let admins = admins
            .iter()
            .map(|name| {
                name.parse::<transport::ClientName>()
                    .map(|name| name.to_string())
                    .map_err(ConfigError::BadAdmin)
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let log_level = flags.log_level.or(file.log_level);
        let run_dir = flags
            .run_dir
            .or(file.run_dir)
            .unwrap_or_else(|| PathBuf::from("rhtex-run"));
        let events_max_mib = flags
            .events_max_mib
            .or(file.events_max_mib)
            .unwrap_or(DEFAULT_EVENTS_MAX_MIB);
        if !(1..=1 << 20).contains(&events_max_mib) {
            return Err(ConfigError::BadEventsMaxMib(events_max_mib));
        }
        let events_on =
            !flags.no_events && (flags.events_file.is_some() || file.events != Some(false));
        let events = events_on.then(|| EventsConfig {
            path: flags
                .events_file
                .or(file.events_file)
                .unwrap_or_else(|| run_dir.join("events.jsonl")),
            max_bytes: events_max_mib * 1024 * 1024,
        });
        if let Some(level) = &log_level {
            if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::BadLogLevel(level.clone()));
            }
        }
        Ok(Self {
            run_dir,
            client_listen: listen_url(
                "client_listen",
                flags
                    .client_listen
                    .or(file.client_listen)
                    .unwrap_or_else(|| "tcp://127.0.0.1:0".to_owned()),
            )?,
            manager_listen,
            security,
            heartbeat_period,
            heartbeat_threshold,
            max_block_nodes,
            max_finished_results,
            max_finished_bytes,
            max_task_input_bytes,
            max_task_output_bytes,
            max_queued_input_bytes,
            max_queued_task_bytes,
            max_message_bytes,
            max_manager_nodes,
            placement,
            default_retries,
            log_level,
            provider,
            metrics_listen,
            events,
            exit_with_parent: flags.exit_with_parent,
            admins,
            journal: !flags.no_journal && file.journal.unwrap_or(true),
            fresh: flags.fresh || file.fresh.unwrap_or(false),
        })
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

fn resolve_provider(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        let mut argv = vec!["interchange"];
        argv.extend_from_slice(args);
        match Flags::try_parse_from(argv) {
            Ok(flags) => flags,
            Err(error) => panic!("flags {args:?} do not parse: {error}"),
        }
    }

    fn home() -> Environment {
        Environment {
            keys_dir: None,
            home: Some(PathBuf::from("/home/user")),
            program_dir: Some(PathBuf::from("/opt/rhtex/bin")),
        }
    }

    fn file(text: &str) -> Result<FileConfig, ConfigError> {
        parse_file(Path::new("test.toml"), text)
    }

    #[test]
    fn defaults() {
        let config = Config::resolve(flags(&[]), FileConfig::default(), &home())
            .expect("defaults are valid");
        assert_eq!(
            config,
            Config {
                run_dir: PathBuf::from("rhtex-run"),
                client_listen: "tcp://127.0.0.1:0".to_owned(),
                manager_listen: "tcp://0.0.0.0:0".to_owned(),
                security: Security::Curve(PathBuf::from("/home/user/.rhtex/keys")),
                heartbeat_period: Duration::from_secs(30),
                heartbeat_threshold: Duration::from_secs(120),
                max_block_nodes: None,
                max_finished_results: 100_000,
                max_finished_bytes: 512 * 1024 * 1024,
                max_task_input_bytes: 16 * 1024 * 1024,
                max_task_output_bytes: 16 * 1024 * 1024,
                max_queued_input_bytes: 1024 * 1024 * 1024,
                max_queued_task_bytes: 1024 * 1024 * 1024,
                max_message_bytes: 64 * 1024 * 1024,
                max_manager_nodes: 16_384,
                placement: Placement::BestFit,
                default_retries: 0,
                log_level: None,
                provider: None,
                metrics_listen: None,
                events: Some(EventsConfig {
                    path: PathBuf::from("rhtex-run/events.jsonl"),
                    max_bytes: 100 * 1024 * 1024,
                }),
                exit_with_parent: false,
                admins: BTreeSet::new(),
                journal: true,
                fresh: false,
            }
        );
    }

    #[test]
    fn the_event_log_from_the_file_or_flags() {
        let config = Config::resolve(flags(&["--no-events"]), FileConfig::default(), &home())
            .expect("valid");
        assert_eq!(config.events, None);
        let config = Config::resolve(
            flags(&[]),
            file("events = false\n").expect("valid"),
            &home(),
        )
        .expect("valid");
        assert_eq!(config.events, None);
        let config = Config::resolve(
            flags(&["--events-file", "/log/e.jsonl"]),
            file("events = false\nevents_max_mib = 2\n").expect("valid"),
            &home(),
        )
        .expect("valid");
        assert_eq!(
            config.events,
            Some(EventsConfig {
                path: PathBuf::from("/log/e.jsonl"),
                max_bytes: 2 * 1024 * 1024,
            })
        );
        let error = Config::resolve(
            flags(&["--events-max-mib", "0"]),
            FileConfig::default(),
            &home(),
        )
        .expect_err("0 MiB is refused");
        assert_eq!(
            error.to_string(),
            "events_max_mib must be between 1 and 1048576, got 0"
        );
    }

    #[test]
    fn the_journal_is_on_unless_turned_off_and_fresh_comes_from_either() {
        let resolve = |args: &[&str], text: &str| {
            Config::resolve(flags(args), file(text).expect("file parses"), &home()).expect("valid")
        };
        let config = resolve(&[], "");
        assert_eq!((config.journal, config.fresh), (true, false));
        let config = resolve(&["--no-journal", "--fresh"], "");
        assert_eq!((config.journal, config.fresh), (false, true));
        let config = resolve(&[], "journal = false\nfresh = true\n");
        assert_eq!((config.journal, config.fresh), (false, true));
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_the_environment() {
        let file = file(
            "run_dir = \"from-file\"\nheartbeat_period = 2.5\nkeys_dir = \"/file/keys\"\n\
             client_listen = \"ipc:///tmp/c.sock\"\nmax_block_nodes = 8\n",
        )
        .expect("valid file");
        let environment = Environment {
            keys_dir: Some(PathBuf::from("/env/keys")),
            ..home()
        };
        let config = Config::resolve(
            flags(&["--run-dir", "from-flag", "--max-block-nodes", "4"]),
            file,
            &environment,
        )
        .expect("valid");
        assert_eq!(config.run_dir, PathBuf::from("from-flag"));
        assert_eq!(config.max_block_nodes, Some(4));
        assert_eq!(config.heartbeat_period, Duration::from_millis(2500));
        assert_eq!(config.client_listen, "ipc:///tmp/c.sock");
        assert_eq!(
            config.security,
            Security::Curve(PathBuf::from("/file/keys"))
        );
        let config = Config::resolve(flags(&["--insecure"]), FileConfig::default(), &environment)
            .expect("valid");
        assert_eq!(config.security, Security::Insecure);
        let config =
            Config::resolve(flags(&[]), FileConfig::default(), &environment).expect("valid");
        assert_eq!(config.security, Security::Curve(PathBuf::from("/env/keys")));
    }

    #[test]
    fn payload_limits_come_from_flags_or_the_file() {
        let file = file(
            "max_task_input_bytes = 1000\nmax_task_output_bytes = 2000\nmax_queued_input_mib = 3\n",
        )
        .expect("valid file");
        let config = Config::resolve(flags(&["--max-task-output-bytes", "5"]), file, &home())
            .expect("valid");
        assert_eq!(config.max_task_input_bytes, 1000);
        assert_eq!(config.max_task_output_bytes, 5);
        assert_eq!(config.max_queued_input_bytes, 3 * 1024 * 1024);
        let error = Config::resolve(
            flags(&[
                "--max-task-input-bytes",
                "2097153",
                "--max-queued-input-mib",
                "2",
            ]),
            FileConfig::default(),
            &home(),
        )
        .expect_err("a task input limit above the budget is refused");
        assert_eq!(
            error.to_string(),
            "max_task_input_bytes (2097153) is larger than max_queued_input_mib (2097152 bytes): \
             no task with such an input could ever be accepted"
        );
    }

    #[test]
    fn message_and_node_limits_come_from_flags_or_the_file() {
        let file = file("max_message_mib = 100\nmax_manager_nodes = 8\n").expect("valid file");
        let config = Config::resolve(flags(&[]), file, &home()).expect("valid");
        assert_eq!(config.max_message_bytes, 100 * 1024 * 1024);
        assert_eq!(config.max_manager_nodes, 8);
        let config = Config::resolve(
            flags(&["--max-message-mib", "30", "--max-manager-nodes", "2"]),
            FileConfig::default(),
            &home(),
        )
        .expect("valid");
        assert_eq!(config.max_message_bytes, 30 * 1024 * 1024);
        assert_eq!(config.max_manager_nodes, 2);
        // The message limit must hold the largest task input.
        let error = Config::resolve(
            flags(&[
                "--max-message-mib",
                "64",
                "--max-task-input-bytes",
                "67108864",
            ]),
            FileConfig::default(),
            &home(),
        )
        .expect_err("a message limit below the input limit is refused");
        assert_eq!(
            error.to_string(),
            "max_message_mib = 64 (67108864 bytes) is too small: messages must hold the largest \
             task input or output and the rest of the task (max_task_input_bytes = 67108864, \
             max_task_output_bytes = 16777216), so give at least 72 MiB"
        );
        let error = Config::resolve(
            flags(&["--max-message-mib", "8"]),
            FileConfig::default(),
            &home(),
        )
        .expect_err("too small for a submit chunk");
        assert!(
            error.to_string().contains("give at least 24 MiB"),
            "{error}"
        );
        let error = Config::resolve(
            flags(&["--max-manager-nodes", "0"]),
            FileConfig::default(),
            &home(),
        )
        .expect_err("zero nodes");
        assert_eq!(
            error.to_string(),
            "max_manager_nodes must be at least 1, got 0"
        );
    }

    #[test]
    fn file_errors_name_the_line_and_column() {
        let error =
            file("heartbeat_period = 3\nplacement = \"best-fit\"\nmax_block_nodes = \"many\"\n")
                .expect_err("a string for a number");
        assert!(
            error
                .to_string()
                .starts_with("config file test.toml, line 3, column 19: "),
            "{error}"
        );
        let error = file("a = [\n").expect_err("syntax");
        assert!(error.to_string().contains(", line "), "{error}");
        assert_eq!(super::line_and_column("ab\ncd\u{e9}f", 7), (2, 4));
        assert_eq!(super::line_and_column("ab", 0), (1, 1));
    }

    #[test]
    fn unknown_file_keys_are_named() {
        let error = file("heartbeat_period = 3\nheartbeat_perod = 4\n")
            .expect_err("unknown key must be refused");
        assert!(error.to_string().contains("heartbeat_perod"), "{error}");
    }

    #[test]
    fn bad_values_are_refused_with_clear_messages() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--heartbeat-period", "0"],
                "heartbeat_period must be a number of seconds above 0",
            ),
            (
                &["--heartbeat-period", "200"],
                "must be larger than heartbeat_period",
            ),
            (
                &["--client-listen", "http://x"],
                "client_listen must be a URL starting with tcp:// or ipc://",
            ),
            (
                &["--max-block-nodes", "0"],
                "max_block_nodes must be at least 1",
            ),
            (&["--log-level", "loud"], "unknown log level \"loud\""),
        ];
        for (args, fragment) in cases {
            match Config::resolve(flags(args), FileConfig::default(), &home()) {
                Ok(config) => panic!("{args:?} accepted: {config:?}"),
                Err(error) => assert!(error.to_string().contains(fragment), "{args:?}: {error}"),
            }
        }
        let no_home = Environment::default();
        assert!(matches!(
            Config::resolve(flags(&[]), FileConfig::default(), &no_home),
            Err(ConfigError::NoKeysDir)
        ));
    }

    #[test]
    fn metrics_listen_from_the_file_or_a_flag() {
        let from_file = file("metrics_listen = \"9464\"\n").expect("valid file");
        let config = Config::resolve(flags(&[]), from_file, &home()).expect("valid");
        assert_eq!(
            config.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        let from_file = file("metrics_listen = \"9464\"\n").expect("valid file");
        let config = Config::resolve(
            flags(&["--metrics-listen", "0.0.0.0:9100"]),
            from_file,
            &home(),
        )
        .expect("valid");
        assert_eq!(
            config.metrics_listen,
            Some(SocketAddr::from(([0, 0, 0, 0], 9100)))
        );
        match Config::resolve(
            flags(&["--metrics-listen", "http://host:1"]),
            FileConfig::default(),
            &home(),
        ) {
            Ok(config) => panic!("accepted: {config:?}"),
            Err(error) => assert!(
                error
                    .to_string()
                    .starts_with("metrics_listen: \"http://host:1\" is not PORT"),
                "{error}"
            ),
        }
    }

    #[test]
    fn the_example_config_file_is_valid() {
        let text = include_str!("../../../deploy/interchange.toml.example");
        let example = parse_file(Path::new("interchange.toml.example"), text).expect("parses");
        let config = Config::resolve(flags(&[]), example, &home()).expect("is valid");
        assert_eq!(
            config.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
    }

    #[test]
    fn keys_dir_and_insecure_conflict_on_the_command_line() {
        assert!(Flags::try_parse_from(["interchange", "--insecure", "--keys-dir", "/k"]).is_err());
    }

    fn with_provider(manager_listen: Option<&str>, section: &str) -> Result<Config, ConfigError> {
        let listen = manager_listen
            .map(|url| format!("manager_listen = \"{url}\"\n"))
            .unwrap_or_default();
        let file = file(&format!("{listen}[provider]\n{section}"))?;
        Config::resolve(flags(&[]), file, &home())
    }

    #[test]
    fn a_provider_section_with_defaults() {
        let config = with_provider(None, "kind = \"local\"\n").expect("valid");
        assert_eq!(
            config.provider,
            Some(ProviderConfig {
                kind: ProviderKind::Local,
                partition: None,
                account: None,
                walltime: None,
                nodes_per_block: 1,
                min_blocks: 0,
                max_blocks: 1,
                max_idle: Duration::from_secs(120),
                scheduler_options: Vec::new(),
                worker_init: String::new(),
                launcher: Launcher::Mpiexec,
                manager_address: None,
                poll_period: Duration::from_secs(1),
                pool_manager: PathBuf::from("/opt/rhtex/bin/pool-manager"),
            })
        );
    }

    #[test]
    fn a_full_slurm_and_a_pbs_provider_section() {
        let config = with_provider(
            None,
            "kind = \"slurm\"\npartition = \"debug\"\naccount = \"proj\"\nwalltime = \"100:30:00\"\n\
             nodes_per_block = 4\nmin_blocks = 1\nmax_blocks = 3\nmax_idle = 30\n\
             scheduler_options = \"\"\"\n#SBATCH --mem=0\n\n  #SBATCH --constraint=cpu\n\"\"\"\n\
             worker_init = \"module load mpich\"\nmanager_address = \"gateway.example.org\"\n\
             poll_period = 5\npool_manager = \"/opt/rhtex/pool-manager\"\n",
        )
        .expect("valid");
        let provider = config.provider.expect("a provider");
        assert_eq!(provider.kind, ProviderKind::Slurm);
        assert_eq!(provider.partition.as_deref(), Some("debug"));
        assert_eq!(provider.walltime.as_deref(), Some("100:30:00"));
        assert_eq!(provider.launcher, Launcher::Srun);
        assert_eq!(
            provider.scheduler_options,
            vec![
                "#SBATCH --mem=0".to_owned(),
                "#SBATCH --constraint=cpu".to_owned()
            ]
        );
        assert_eq!(
            provider.manager_address.as_deref(),
            Some("gateway.example.org")
        );
        assert_eq!(provider.poll_period, Duration::from_secs(5));
        assert_eq!(
            provider.pool_manager,
            PathBuf::from("/opt/rhtex/pool-manager")
        );

        let config = with_provider(
            Some("tcp://10.0.0.1:5000"),
            "kind = \"pbs\"\nqueue = \"workq\"\nlauncher = \"aprun\"\n",
        )
        .expect("valid");
        let provider = config.provider.expect("a provider");
        assert_eq!(provider.partition.as_deref(), Some("workq"));
        assert_eq!(provider.launcher, Launcher::Aprun);
        assert_eq!(provider.manager_address, None);
    }

    #[test]
    fn bad_provider_settings_name_the_key() {
        let slurm = "kind = \"slurm\"\nmanager_address = \"gw\"\n";
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "provider.kind: missing"),
            (
                "kind = \"sge\"\n".to_owned(),
                "provider.kind: unknown kind \"sge\"",
            ),
            (
                format!("{slurm}walltime = \"1:60:00\"\n"),
                "provider.walltime",
            ),
            (format!("{slurm}walltime = \"90\"\n"), "provider.walltime"),
            (
                format!("{slurm}walltime = \"0:00:00\"\n"),
                "provider.walltime",
            ),
            (
                format!("{slurm}nodes_per_block = 0\n"),
                "provider.nodes_per_block",
            ),
            (format!("{slurm}max_blocks = 0\n"), "provider.max_blocks"),
            (
                format!("{slurm}min_blocks = 3\nmax_blocks = 2\n"),
                "provider.min_blocks",
            ),
            (format!("{slurm}max_idle = -1\n"), "provider.max_idle"),
            (format!("{slurm}poll_period = 0\n"), "provider.poll_period"),
            (
                format!("{slurm}partition = \"a b\"\n"),
                "provider.partition",
            ),
            (format!("{slurm}account = \"\"\n"), "provider.account"),
            (
                format!("{slurm}scheduler_options = \"--mem=0\"\n"),
                "provider.scheduler_options",
            ),
            (
                format!("{slurm}launcher = \"mpirun\"\n"),
                "provider.launcher",
            ),
            (
                "kind = \"slurm\"\nmanager_address = \"tcp://gw:5\"\n".to_owned(),
                "provider.manager_address",
            ),
            (
                "kind = \"slurm\"\n".to_owned(),
                "provider.manager_address: missing",
            ),
            (format!("{slurm}partiton = \"x\"\n"), "partiton"),
            (
                format!("{slurm}partition = \"x\"\nqueue = \"y\"\n"),
                "partition",
            ),
        ];
        for (section, fragment) in cases {
            match with_provider(None, &section) {
                Ok(config) => panic!("{section:?} accepted: {:?}", config.provider),
                Err(error) => assert!(error.to_string().contains(fragment), "{section:?}: {error}"),
            }
        }
    }

    #[test]
    fn admins_and_the_queued_task_budget_come_from_file_or_flags() {
        let file =
            file("admins = [\"alice\", \"bob\"]\nmax_queued_task_mib = 32\n").expect("valid file");
        let config = Config::resolve(flags(&[]), file, &home()).expect("valid");
        assert_eq!(
            config.admins.iter().map(String::as_str).collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        assert_eq!(config.max_queued_task_bytes, 32 * 1024 * 1024);
        let config = Config::resolve(
            flags(&["--admin", "carol", "--max-queued-task-mib", "16"]),
            FileConfig::default(),
            &home(),
        )
        .expect("valid");
        assert_eq!(config.admins.iter().collect::<Vec<_>>(), ["carol"]);
        for (arguments, needle) in [
            (
                &["--admin", "no spaces"][..],
                "not a valid client identity name",
            ),
            (&["--max-queued-task-mib", "15"][..], "must be from 16"),
        ] {
            let error = Config::resolve(flags(arguments), FileConfig::default(), &home())
                .expect_err("refused");
            assert!(error.to_string().contains(needle), "{error}");
        }
    }
}
