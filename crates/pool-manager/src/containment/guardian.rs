//! The guardian: a process that outlives the manager and kills what is
//! left of its tasks when it ends (see [`super`]).

use super::{kill_cgroup, CLEAR_WAIT, GUARDIAN_FLAG};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(super) struct Guardian {
    pub(super) child: Child,
    /// The write end of the guardian's input, shared with the tasks' cells:
    /// closed when the manager ends.
    pub(super) input: Arc<GuardianInput>,
}

/// Where tasks are announced to the guardian. The launch thread queues
/// the lines of one turn and writes them at its end in one write
/// ([`GuardianInput::queue`], [`GuardianInput::flush`]); a thread clearing
/// a task that left processes behind says its line at once
/// ([`GuardianInput::say`]). Neither ever blocks: the pipe is
/// non-blocking, and what does not fit in it (a guardian slow to read)
/// waits in `pending`, in order, for a flusher thread that writes it with
/// blocking writes. No line is dropped while
/// the guardian reads.
#[derive(Debug)]
pub(super) struct GuardianInput {
    state: Mutex<GuardianPipe>,
}

#[derive(Debug, Default)]
struct GuardianPipe {
    /// `None` once the manager ends or the guardian is gone.
    pipe: Option<File>,
    /// Lines not yet written, oldest first.
    pending: Vec<u8>,
    /// The flusher thread, while it runs: then only it writes to the pipe
    /// (in blocking mode), and [`GuardianInput::say`] only appends to
    /// `pending`.
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl GuardianInput {
    pub(super) fn new(pipe: ChildStdin) -> Self {
        let pipe = File::from(std::os::fd::OwnedFd::from(pipe));
        if let Err(error) = set_nonblocking(&pipe, true) {
            tracing::warn!(%error, "cannot make the guardian's pipe non-blocking; announcing a task may wait for the guardian");
        }
        Self {
            state: Mutex::new(GuardianPipe {
                pipe: Some(pipe),
                ..GuardianPipe::default()
            }),
        }
    }

    /// Queues "+PID" or "-PID" and writes what the pipe takes now.
    pub(super) fn say(self: &Arc<Self>, sign: char, pid: u32) {
        self.queue(sign, pid);
        self.flush();
    }

    /// Queues "+PID" or "-PID" for the next [`GuardianInput::flush`] (or
    /// [`GuardianInput::say`]): the launch thread queues the lines of a
    /// turn and writes them in one write at its end.
    pub(super) fn queue(&self, sign: char, pid: u32) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.pipe.is_some() {
            // `write!` to a Vec cannot fail.
            let _ = writeln!(state.pending, "{sign}{pid}");
        }
    }

    /// Writes what is queued, as much as the pipe takes now; the rest
    /// waits for a flusher thread.
    pub(super) fn flush(self: &Arc<Self>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.pending.is_empty() || state.flusher.is_some() {
            return;
        }
        match state.write_pending() {
            Ok(()) if state.pending.is_empty() => {}
            Ok(()) => {
                // The pipe is full: a thread waits for the guardian.
                let input = Arc::clone(self);
                let spawned = std::thread::Builder::new()
                    .name("guardian-pipe".to_owned())
                    .spawn(move || input.flush_blocking());
                match spawned {
                    Ok(handle) => state.flusher = Some(handle),
                    Err(error) => {
                        tracing::warn!(%error, "cannot start a thread to write to the task guardian; writing on this one");
                        state.write_all_blocking();
                    }
                }
            }
            Err(error) => state.gone(&error),
        }
    }

    /// The flusher thread: writes `pending` with blocking writes, outside
    /// the lock, until nothing is left; then the pipe is non-blocking again.
    pub(super) fn flush_blocking(&self) {
        loop {
            let (bytes, mut copy) = {
                let Ok(mut state) = self.state.lock() else {
                    return;
                };
                let copy = state.pipe.as_ref().map(File::try_clone);
                match copy {
                    Some(Ok(copy)) if !state.pending.is_empty() => {
                        (std::mem::take(&mut state.pending), copy)
                    }
                    Some(Ok(copy)) => {
                        if let Err(error) = set_nonblocking(&copy, true) {
                            tracing::warn!(%error, "cannot make the guardian's pipe non-blocking again");
                        }
                        state.flusher = None;
                        return;
                    }
                    Some(Err(error)) => {
                        state.gone(&error);
                        state.flusher = None;
                        return;
                    }
                    None => {
                        state.flusher = None;
                        return;
                    }
                }
            };
            let written = set_nonblocking(&copy, false).and_then(|()| copy.write_all(&bytes));
            drop(copy);
            if let Err(error) = written {
                if let Ok(mut state) = self.state.lock() {
                    state.gone(&error);
                    state.flusher = None;
                }
                return;
            }
        }
    }

    /// At the manager's exit: writes what is pending, then closes the pipe
    /// (the guardian then kills what is still listed).
    pub(super) fn close(&self) {
        let flusher = self
            .state
            .lock()
            .ok()
            .and_then(|mut state| state.flusher.take());
        if let Some(flusher) = flusher {
            let _ = flusher.join();
        }
        if let Ok(mut state) = self.state.lock() {
            state.write_all_blocking();
            drop(state.pipe.take());
        }
    }
}

impl GuardianPipe {
    /// Writes as much of `pending` as the non-blocking pipe takes now.
    fn write_pending(&mut self) -> std::io::Result<()> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(());
        };
        while !self.pending.is_empty() {
            match pipe.write(&self.pending) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Writes all of `pending`, waiting for the guardian if need be.
    fn write_all_blocking(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(pipe) = self.pipe.as_mut() else {
            return;
        };
        let written = set_nonblocking(pipe, false).and_then(|()| pipe.write_all(&self.pending));
        match written {
            Ok(()) => {
                self.pending.clear();
                if let Some(pipe) = &self.pipe {
                    let _ = set_nonblocking(pipe, true);
                }
            }
            Err(error) => self.gone(&error),
        }
    }

    /// The guardian cannot be written to: no more announcements.
    fn gone(&mut self, error: &std::io::Error) {
        tracing::warn!(%error, "the task guardian is gone; a manager killed outright may leave task processes behind");
        self.pipe = None;
        self.pending.clear();
    }
}

/// Sets or clears `O_NONBLOCK` on a descriptor (shared by its copies).
fn set_nonblocking(file: &File, nonblocking: bool) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL)?);
    let flags = if nonblocking {
        flags | OFlag::O_NONBLOCK
    } else {
        flags & !OFlag::O_NONBLOCK
    };
    fcntl(file, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// The guardian's whole life (`pool-manager --rhtex-guardian [CGROUP]`):
/// reads "+PID" and "-PID" lines until its input closes (the manager
/// ended), then SIGKILLs every task leader still listed and its process
/// group, then the cgroup subtree `CGROUP` if given, and removes it.
/// Returns the process's exit code: 0 once all is removed.
pub fn guardian_main(cgroup: Option<&Path>) -> i32 {
    let mut leaders = HashSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (sign, pid) = line.split_at(line.len().min(1));
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        match sign {
            "+" if pid > 1 => {
                leaders.insert(pid);
            }
            "-" => {
                leaders.remove(&pid);
            }
            _ => {}
        }
    }
    for pid in leaders {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let Some(base) = cgroup else { return 0 };
    kill_cgroup(base);
    let deadline = Instant::now() + CLEAR_WAIT;
    loop {
        if let Ok(entries) = std::fs::read_dir(base) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        match std::fs::remove_dir(base) {
            Ok(()) => return 0,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return 0,
            Err(_) if Instant::now() >= deadline => return 1,
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

pub(super) fn start_guardian(cgroup: Option<&PathBuf>) -> std::io::Result<Guardian> {
    use std::os::unix::process::CommandExt;
    let program = std::env::current_exe()?;
    let mut command = Command::new(program);
    command
        .arg(GUARDIAN_FLAG)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some(base) = cgroup {
        command.arg(base);
    }
    let mut child = command.spawn()?;
    let input = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
    Ok(Guardian {
        child,
        input: Arc::new(GuardianInput::new(input)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cat` standing for the guardian: it, its output, and its input as
    /// the manager holds it.
    fn cat_as_guardian() -> (Child, std::process::ChildStdout, Arc<GuardianInput>) {
        let mut cat = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cat");
        let stdin = cat.stdin.take().expect("stdin");
        let stdout = cat.stdout.take().expect("stdout");
        (cat, stdout, Arc::new(GuardianInput::new(stdin)))
    }

    /// Queued lines wait for the flush, then go in one write, in order.
    #[test]
    fn queued_lines_go_at_the_flush_in_order() {
        let (mut cat, mut stdout, input) = cat_as_guardian();
        input.queue('+', 10);
        input.queue('+', 11);
        input.queue('-', 10);
        let pending = input.state.lock().expect("lock").pending.clone();
        assert_eq!(
            pending, b"+10\n+11\n-10\n",
            "nothing written before the flush"
        );
        input.flush();
        assert!(
            input.state.lock().expect("lock").pending.is_empty(),
            "the flush wrote every queued line"
        );
        input.say('-', 11);
        input.close();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).expect("read");
        assert_eq!(text, "+10\n+11\n-10\n-11\n");
        assert!(cat.wait().expect("wait").success());
    }

    /// A guardian that does not read does not block the manager, and
    /// every line reaches it, in order, once it reads.
    #[test]
    fn announcements_never_block_and_none_is_lost() {
        // `cat` stands for the guardian: until its output is read it stops
        // reading its input, and the pipe to it fills up.
        let (mut cat, mut stdout, input) = cat_as_guardian();
        let n_lines: u32 = 100_000;
        for pid in 0..n_lines {
            input.say(if pid % 2 == 0 { '+' } else { '-' }, pid);
        }
        let pending = input.state.lock().expect("lock").pending.len();
        assert!(pending > 0, "the pipe filled up, so some lines wait");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut text).expect("read");
            text
        });
        input.close();
        let text = reader.join().expect("reader");
        let expected: String = (0..n_lines)
            .map(|pid| format!("{}{pid}\n", if pid % 2 == 0 { '+' } else { '-' }))
            .collect();
        assert!(
            text == expected,
            "{} of {} bytes",
            text.len(),
            expected.len()
        );
        assert!(cat.wait().expect("wait").success());
    }
}
