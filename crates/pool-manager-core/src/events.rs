//! The seam's vocabulary: what the shell tells the core besides decoded
//! messages ([`LinkStatus`], [`TaskExit`]) and what the core asks of the
//! shell ([`Output`]: send, launch, kill, exit).
//!
//! Plain data, no behaviour beyond naming: the core never performs an
//! output, and the shell never decides one. The core ends with
//! [`Output::Exit`] and a typed [`ExitReason`]; the shell maps the reason
//! to the process exit code.

use crate::environment::Environment;
use protocol::{FromManager, TaskId, UnixTime};
use std::path::PathBuf;
use std::time::Duration;

/// The link to the interchange changed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkStatus {
    Connected,
    Disconnected,
    /// The interchange refused our security handshake; retrying won't help.
    HandshakeFailed(String),
    /// The link thread stopped.
    Failed(String),
}

/// How a task's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

/// A task's process ended.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskExit {
    pub status: ExitStatus,
    pub stdout_tail: Vec<u8>,
    pub stderr_tail: Vec<u8>,
    pub start_time: UnixTime,
    pub end_time: UnixTime,
    /// What the shell found in the task's output file
    /// ([`Launch::output`]).
    pub output: TaskOutput,
}

/// What the shell found in a task's output file once the task ended. The
/// core decides what it means (the limit check).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TaskOutput {
    /// The task wrote no output file.
    #[default]
    Absent,
    /// The file's first bytes (the shell reads at most
    /// [`OutputFile::max_bytes`] + 1 of them) and the file's size.
    Read { bytes: Vec<u8>, size: u64 },
    /// The file is there but could not be read.
    Unreadable(String),
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Send(FromManager),
    Launch(Launch),
    /// Kill the task's process group (SIGTERM, then SIGKILL after the grace
    /// period). Its exit is then reported with `handle_task_exited`.
    Kill {
        task_id: TaskId,
        reason: KillReason,
    },
    /// Exit the process. Every task has ended before this comes out, and
    /// nothing comes out after it. `message` says why, for the log.
    Exit {
        reason: ExitReason,
        message: String,
    },
}

/// A task to start.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    pub task_id: TaskId,
    pub command: String,
    /// The complete environment (the child's is cleared first).
    pub env: Environment,
    pub cwd: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The task's nodes, for logs.
    pub nodes: Vec<String>,
    /// Bytes to write to a file before the command starts
    /// (`RHTEX_TASK_INPUT` in `env` names it); removed when the task ends.
    pub input: Option<TaskInput>,
    /// The file the task may write its output to (`RHTEX_TASK_OUTPUT` in
    /// `env`): read back after the task ends, then removed.
    pub output: OutputFile,
}

/// A task's input and the file it goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInput {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Where a task may leave its output, and the largest output it may
/// return: the shell never reads more than `max_bytes` + 1 bytes of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    pub path: PathBuf,
    pub max_bytes: u64,
}

/// Why the manager killed a task's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillReason {
    /// `cancel_task` from the interchange.
    Cancelled,
    /// `shutdown` from the interchange, or SIGTERM/SIGINT.
    Shutdown,
    /// The interchange went silent or the link failed.
    InterchangeLost,
    /// The interchange refused this manager.
    Refused,
    /// The task ran longer than its `walltime`.
    WalltimeExceeded,
    /// The interchange, to which the manager registered again, does not
    /// have the task running here (`drop_tasks` of `registered`): killed
    /// and not reported.
    Dropped,
}

impl KillReason {
    pub fn as_str(self) -> &'static str {
        match self {
            KillReason::Cancelled => "cancelled",
            KillReason::Shutdown => "shutdown",
            KillReason::InterchangeLost => "interchange lost",
            KillReason::Refused => "refused",
            KillReason::WalltimeExceeded => "walltime exceeded",
            KillReason::Dropped => "dropped by the interchange",
        }
    }
}

/// Why the pool-manager stops. The first reason wins; the manager exits
/// with it once every task has ended. The shell maps it to the documented
/// exit code: 0 for [`Shutdown`](ExitReason::Shutdown) and
/// [`Terminated`](ExitReason::Terminated), 3 for
/// [`Refused`](ExitReason::Refused) and
/// [`HandshakeFailed`](ExitReason::HandshakeFailed), 4 for
/// [`InterchangeSilent`](ExitReason::InterchangeSilent),
/// [`ReattachTimedOut`](ExitReason::ReattachTimedOut) and
/// [`LinkFailed`](ExitReason::LinkFailed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The interchange sent `shutdown` (which is also how a drain ends).
    Shutdown { reason: String },
    /// A termination signal, or the shell's own shutdown request.
    Terminated { signal: String },
    /// The interchange sent `refused` (its protocol version).
    Refused {
        reason: String,
        protocol_version: u32,
    },
    /// The interchange refused our security handshake.
    HandshakeFailed { message: String },
    /// The interchange sent nothing for `threshold` (`registered`: after it
    /// had answered the registration).
    InterchangeSilent {
        registered: bool,
        threshold: Duration,
    },
    /// The interchange was lost (silent past the heartbeat threshold, or
    /// its connection dropped) and the manager could not register again
    /// within `window` (`--reattach-timeout`).
    ReattachTimedOut { window: Duration },
    /// The link to the interchange failed for good.
    LinkFailed { message: String },
}

impl ExitReason {
    /// Whether the interchange is still there to hear the last results and
    /// `goodbye`.
    pub fn interchange_listens(&self) -> bool {
        matches!(
            self,
            ExitReason::Shutdown { .. } | ExitReason::Terminated { .. }
        )
    }

    /// Why the tasks still running are killed.
    pub fn kill_reason(&self) -> KillReason {
        match self {
            ExitReason::Shutdown { .. } | ExitReason::Terminated { .. } => KillReason::Shutdown,
            ExitReason::Refused { .. } | ExitReason::HandshakeFailed { .. } => KillReason::Refused,
            ExitReason::InterchangeSilent { .. }
            | ExitReason::ReattachTimedOut { .. }
            | ExitReason::LinkFailed { .. } => KillReason::InterchangeLost,
        }
    }
}

/// The names of the Linux signals 1 to 31 (x86-64, AArch64, PowerPC), as
/// `nix` gives them.
const SIGNAL_NAMES: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// `SIGSEGV` for 11, and so on; `unknown signal` for numbers outside 1 to
/// 31 (the real-time signals have no names).
pub fn signal_name(signal: i32) -> &'static str {
    usize::try_from(signal)
        .ok()
        .and_then(|number| number.checked_sub(1))
        .and_then(|index| SIGNAL_NAMES.get(index))
        .copied()
        .unwrap_or("unknown signal")
}
