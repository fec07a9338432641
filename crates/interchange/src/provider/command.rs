//! Running a batch-system command: in its own process group, output
//! captured, killed after a timeout.

use super::batch::{CommandError, CHILD_POLL};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

pub(super) fn command_line(program: &str, args: &[String]) -> String {
    let mut line = program.to_owned();
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    line
}

pub(super) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "unknown status".to_owned(),
    }
}

/// Runs `program args` and fails unless it exits 0.
pub fn run_command(
    program: &str,
    args: &[String],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let output = run_command_any_status(program, args, timeout)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(CommandError::Failed {
            command: command_line(program, args),
            status: describe(output.status),
            stderr: output.stderr.trim().to_owned(),
        })
    }
}

/// Runs `program args` in its own process group, with stdin empty and the
/// output captured; kills the group after `timeout`.
pub fn run_command_any_status(
    program: &str,
    args: &[String],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let command = command_line(program, args);
    tracing::debug!(%command, "running");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| CommandError::Spawn {
            command: command.clone(),
            source,
        })?;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(CHILD_POLL),
            Err(source) => {
                let _ = killpg(pgid, Signal::SIGKILL);
                let _ = child.wait();
                return Err(CommandError::Spawn { command, source });
            }
        }
    };
    let Some(status) = status else {
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait();
        return Err(CommandError::TimedOut {
            command,
            timeout_s: timeout.as_secs_f64(),
            stderr: collect(stderr).trim().to_owned(),
        });
    };
    Ok(CommandOutput {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr).trim().to_owned(),
    })
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = sender.send(bytes);
        });
    }
    receiver
}

/// What a reader thread read; empty if the pipe stays open (a process the
/// command left behind holds it) for more than a second.
fn collect(receiver: mpsc::Receiver<Vec<u8>>) -> String {
    let bytes = receiver
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
