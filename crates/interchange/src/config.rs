//! Flags and the TOML config file, validated into a [`Config`] that cannot
//! be invalid.
//!
//! Precedence: a flag on the command line, then the config file, then the
//! environment (`RHTEX_KEYS_DIR`), then the default.

use clap::Parser;
use interchange_core::{CoreConfig, Placement};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use transport::Security;

mod provider;
pub use provider::{ProviderConfig, ProviderFile, ProviderKind};

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
    /// metrics_listen, admins, events, events_file, events_max_mib, journal,
    /// journal_compact_mib, fresh); flags
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
    /// Compact the journal once its segment is past this many MiB (and
    /// four times its snapshot); config file only.
    pub journal_compact_mib: Option<u64>,
    pub fresh: Option<bool>,
    pub provider: Option<ProviderFile>,
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub run_dir: PathBuf,
    pub client_listen: String,
    pub manager_listen: String,
    pub security: Security,
    /// The core's settings: heartbeats, limits, placement, retries and
    /// admins. The daemon sets `wall_clock_at_zero` when it starts and
    /// lowers `max_block_nodes` to what the provider can start.
    pub core: CoreConfig,
    /// The largest frame taken on either socket (ZMQ_MAXMSGSIZE).
    pub max_message_bytes: u64,
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
    /// Keep the journal under `<run_dir>/journal/` and resume from it.
    pub journal: bool,
    /// The journal's segment is compacted once past this size (and four
    /// times its snapshot).
    pub journal_compact_bytes: u64,
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
    #[error("journal_compact_mib must be between 1 and 1048576, got {0}")]
    BadJournalCompactMib(u64),
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
            Some(section) => Some(provider::resolve_provider(
                section,
                &manager_listen,
                environment,
            )?),
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
        let journal_compact_mib = file
            .journal_compact_mib
            .unwrap_or(crate::store::COMPACT_MIN_BYTES / (1024 * 1024));
        if !(1..=1 << 20).contains(&journal_compact_mib) {
            return Err(ConfigError::BadJournalCompactMib(journal_compact_mib));
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
            core: CoreConfig {
                heartbeat_period,
                heartbeat_threshold,
                max_block_nodes,
                max_finished_results,
                max_finished_bytes,
                max_task_input_bytes,
                max_task_output_bytes,
                max_queued_input_bytes,
                max_queued_task_bytes,
                max_manager_nodes,
                shutdown_grace: interchange_core::SHUTDOWN_GRACE,
                wall_clock_at_zero: 0.0,
                placement,
                default_retries,
                admins,
                record_events: events.is_some(),
            },
            max_message_bytes,
            log_level,
            provider,
            metrics_listen,
            events,
            exit_with_parent: flags.exit_with_parent,
            journal: !flags.no_journal && file.journal.unwrap_or(true),
            journal_compact_bytes: journal_compact_mib * 1024 * 1024,
            fresh: flags.fresh || file.fresh.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests;
