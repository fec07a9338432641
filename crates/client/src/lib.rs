//! The rhtex client library: connect to an interchange (or start one with a
//! pool-manager on this host), submit tasks, wait for their results, give
//! commands. The `rhtex` binary is a thin command line over it.
//!
//! - [`Client`] ([`client`]): async, one request at a time; results that
//!   arrive while a request waits are buffered.
//! - [`connection`]: the link to the interchange, the only module that
//!   touches ZeroMQ.
//! - [`local`]: the daemons as child processes (embedded mode).
//! - [`task`]: [`TaskBuilder`], a task built field by field (resources
//!   such as `walltime`, `retries`, `exclusive`) and validated once.
//! - [`taskfile`]: `rhtex run` task files (JSON lines or TOML).
//! - [`render`]: results and status as text or JSON.
//! - [`report`]: `rhtex report`, an HTML page of charts from an event log.
//! - [`listing`]: `rhtex tasks` (the interchange's task list) and
//!   `rhtex run --json`'s per-task lines.
//! - [`waiting`]: while waiting for results, why the tasks still wait
//!   (on stderr).
//! - [`error`]: typed errors ([`ClientError`] and the ones it wraps).
//!
//! A client connects as one client identity of a key directory:
//! `ClientSecurity::from_keys_dir_as(dir, &name)`, with `name` the default
//! identity (`ClientName::default()`), the one `RHTEX_CLIENT_KEY` names
//! (`ClientName::from_env()`), or any other (`"alice".parse()`).

pub mod client;
pub mod connection;
pub mod error;
pub mod listing;
pub mod local;
pub mod render;
pub mod report;
pub mod task;
pub mod taskfile;
pub mod waiting;

pub use client::{check_inputs, check_submissions, Client};
pub use error::{ClientError, LocalError, TaskFileError};
pub use task::{BuildError, TaskBuilder};
pub use transport::{ClientName, ClientSecurity};

pub use protocol::{
    Command, Reply, ResourceRequest, StatusReport, TaskId, TaskResult, TaskState, TaskSubmission,
};
