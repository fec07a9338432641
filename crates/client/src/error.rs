//! The library's errors, typed so that callers can branch on what went wrong.

use protocol::{LimitError, SpecError, TaskId};
use std::path::PathBuf;
use std::time::Duration;

/// Everything a [`crate::Client`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The ZeroMQ socket could not be set up (bad URL, no CURVE...).
    #[error("cannot set up the connection to {url}: {source}")]
    Transport {
        url: String,
        source: transport::TransportError,
    },
    /// The CURVE key directory could not be used.
    #[error("cannot load the CURVE keys: {0}")]
    Keys(#[from] transport::TransportError),
    /// The interchange answered `hello` with `refused` (the reason names
    /// both protocol versions).
    #[error("the interchange at {url} refused the connection: {reason}")]
    Refused { url: String, reason: String },
    /// The security handshake failed (refused CURVE key, one side insecure).
    #[error("cannot connect to {url}: {reason}")]
    HandshakeFailed { url: String, reason: String },
    /// The connection was refused: no interchange listens at that address
    /// (it is not running, or the URL is wrong). Seen at once, not after
    /// the timeout.
    #[error("nothing listens at {url}: is the interchange running, and is the URL right?")]
    NothingListens { url: String },
    /// Nothing came back in time.
    #[error("timed out after {:.1} s waiting for {what}", .after.as_secs_f64())]
    Timeout { what: String, after: Duration },
    /// The interchange answered a request with `error`.
    #[error("the interchange could not handle the request: {message}")]
    Interchange {
        request_id: Option<u64>,
        message: String,
    },
    /// The interchange answered with a message that does not fit the request.
    #[error("unexpected answer from the interchange: {0}")]
    Unexpected(String),
    /// The connection went away (the interchange stopped or the link failed).
    #[error("lost the connection to {url}: {reason}")]
    ConnectionLost { url: String, reason: String },
    /// The interchange does not know these tasks (a `watch`, or a watch
    /// sent again after it restarted): never submitted to it, forgotten
    /// past its result retention, or lost in a restart that did not
    /// restore them.
    #[error(
        "the interchange does not know task(s) {}: not submitted to it, forgotten past its \
         result retention, or lost when it restarted",
        join_ids(.task_ids)
    )]
    UnknownTasks { task_ids: Vec<TaskId> },
    /// A task's resource specification is invalid; nothing was sent.
    #[error("task {index} (id {task_id}) has an invalid resource specification: {source}")]
    InvalidSpec {
        /// Position of the task in the submitted batch, from 0.
        index: usize,
        task_id: TaskId,
        source: SpecError,
    },
    /// A task is past one of the protocol's per-task bounds; nothing was sent.
    #[error("task {index} (id {task_id}) is too large: {source}")]
    TooLarge {
        /// Position of the task in the submitted batch, from 0.
        index: usize,
        task_id: TaskId,
        source: LimitError,
    },
    /// A task's input is larger than the interchange takes; nothing was sent.
    #[error(
        "task {index} (id {task_id}) has {n_bytes} bytes of input; the interchange takes at most \
         {limit} bytes per task (its max_task_input_bytes)"
    )]
    InputTooLarge {
        /// Position of the task in the submitted batch, from 0.
        index: usize,
        task_id: TaskId,
        n_bytes: u64,
        limit: u64,
    },
    #[error(transparent)]
    TaskFile(#[from] TaskFileError),
    #[error(transparent)]
    Local(#[from] LocalError),
}

fn join_ids(task_ids: &[TaskId]) -> String {
    let ids: Vec<String> = task_ids.iter().map(TaskId::to_string).collect();
    ids.join(", ")
}

/// A problem in an `rhtex run` task file.
#[derive(Debug, thiserror::Error)]
pub enum TaskFileError {
    #[error("cannot read task file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A problem at a known line (1-based).
    #[error("{}:{line}: {problem}", .path.display())]
    AtLine {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    /// A problem in the file as a whole.
    #[error("{}: {problem}", .path.display())]
    Whole { path: PathBuf, problem: String },
}

/// Failures to start or stop the daemons of the embedded mode.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "cannot find the `{name}` program: it is neither next to this program (in {}) nor on PATH; \
         build it (`cargo build -p {name}`) or install it next to rhtex",
        .next_to.display()
    )]
    NotFound { name: String, next_to: PathBuf },
    #[error("cannot start {}: {source}", .program.display())]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {}: {source}", .path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the log file {}: {source}", .path.display())]
    LogFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create a key directory: {0}")]
    Keygen(#[from] transport::KeyError),
    #[error(
        "{name} did not print its ready line within {:.1} s; see its log in {}",
        .after.as_secs_f64(), .log.display()
    )]
    ReadyTimeout {
        name: String,
        after: Duration,
        log: PathBuf,
    },
    #[error("{name} exited ({status}) before it was ready; see its log in {}{tail}", .log.display())]
    ExitedEarly {
        name: String,
        status: String,
        log: PathBuf,
        /// The last lines of the log, with a leading newline, or empty.
        tail: String,
    },
    #[error("{name} printed a ready line that is not valid: {line:?} ({problem})")]
    BadReadyLine {
        name: String,
        line: String,
        problem: String,
    },
    #[error("cannot wait for {name}: {source}")]
    Wait {
        name: String,
        source: std::io::Error,
    },
}
