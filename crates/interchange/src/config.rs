//! Flags and the TOML config file, validated into a [`Config`] that cannot
//! be invalid.
//!
//! Precedence: a flag on the command line, then the config file, then the
//! environment (`RHTEX_KEYS_DIR`), then the default.

use crate::core::Placement;
use clap::Parser;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The interchange's command line.
#[derive(Debug, Default, Parser)]
#[command(
    name = "interchange",
    version,
    about = "The rhtex interchange: queues clients' MPI tasks and hands each to a pool-manager \
             with enough free nodes to start it at once.",
    after_help = "Once both sockets are bound, one JSON line goes to stdout: \
                  {\"client_url\": ..., \"manager_url\": ..., \"pid\": ...}. Logs go to stderr."
)]
pub struct Flags {
    /// TOML file with the same settings (keys with underscores: run_dir,
    /// client_listen, manager_listen, keys_dir, insecure, heartbeat_period,
    /// heartbeat_threshold, max_block_nodes, max_finished_results,
    /// max_finished_mib, placement, default_retries, log_level); flags
    /// override it.
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
    /// CURVE key directory (mode 0700, made by `rhtex keygen`); only client
    /// keys found there are admitted [default: $RHTEX_KEYS_DIR, else
    /// ~/.rhtex/keys].
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
    pub placement: Option<String>,
    pub default_retries: Option<u32>,
    pub log_level: Option<String>,
}

/// Encryption of both sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    Insecure,
    /// CURVE with the keys in this directory.
    Curve {
        keys_dir: PathBuf,
    },
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
    pub placement: Placement,
    pub default_retries: u32,
    /// A level name; `None` means "RUST_LOG, else info".
    pub log_level: Option<String>,
}

/// What can be wrong with the settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
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
        message: error.message().to_owned(),
    })
}

/// What the configuration may take from the process environment.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `RHTEX_KEYS_DIR`.
    pub keys_dir: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
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
            Security::Curve { keys_dir }
        } else if file.insecure == Some(true) {
            Security::Insecure
        } else if let Some(keys_dir) = file.keys_dir.or_else(|| environment.keys_dir.clone()) {
            Security::Curve { keys_dir }
        } else {
            match &environment.home {
                Some(home) => Security::Curve {
                    keys_dir: home.join(".rhtex").join("keys"),
                },
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
        let placement = match flags.placement.or(file.placement) {
            None => Placement::BestFit,
            Some(text) => text.parse().map_err(ConfigError::BadPlacement)?,
        };
        let default_retries = flags.default_retries.or(file.default_retries).unwrap_or(0);
        if i64::from(default_retries) > protocol::spec::MAX_RETRIES {
            return Err(ConfigError::TooManyRetries(default_retries));
        }
        let log_level = flags.log_level.or(file.log_level);
        if let Some(level) = &log_level {
            if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::BadLogLevel(level.clone()));
            }
        }
        Ok(Self {
            run_dir: flags
                .run_dir
                .or(file.run_dir)
                .unwrap_or_else(|| PathBuf::from("rhtex-run")),
            client_listen: listen_url(
                "client_listen",
                flags
                    .client_listen
                    .or(file.client_listen)
                    .unwrap_or_else(|| "tcp://127.0.0.1:0".to_owned()),
            )?,
            manager_listen: listen_url(
                "manager_listen",
                flags
                    .manager_listen
                    .or(file.manager_listen)
                    .unwrap_or_else(|| "tcp://0.0.0.0:0".to_owned()),
            )?,
            security,
            heartbeat_period,
            heartbeat_threshold,
            max_block_nodes,
            max_finished_results,
            max_finished_bytes,
            placement,
            default_retries,
            log_level,
        })
    }
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
                security: Security::Curve {
                    keys_dir: PathBuf::from("/home/user/.rhtex/keys")
                },
                heartbeat_period: Duration::from_secs(30),
                heartbeat_threshold: Duration::from_secs(120),
                max_block_nodes: None,
                max_finished_results: 100_000,
                max_finished_bytes: 512 * 1024 * 1024,
                placement: Placement::BestFit,
                default_retries: 0,
                log_level: None,
            }
        );
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
            Security::Curve {
                keys_dir: PathBuf::from("/file/keys")
            }
        );
        let config = Config::resolve(flags(&["--insecure"]), FileConfig::default(), &environment)
            .expect("valid");
        assert_eq!(config.security, Security::Insecure);
        let config =
            Config::resolve(flags(&[]), FileConfig::default(), &environment).expect("valid");
        assert_eq!(
            config.security,
            Security::Curve {
                keys_dir: PathBuf::from("/env/keys")
            }
        );
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
    fn keys_dir_and_insecure_conflict_on_the_command_line() {
        assert!(Flags::try_parse_from(["interchange", "--insecure", "--keys-dir", "/k"]).is_err());
    }
}
