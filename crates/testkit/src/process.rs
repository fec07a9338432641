//! A process started by a test, in a process group of its own.
//!
//! Dropping a [`Daemon`] sends SIGKILL to its whole process group and reaps
//! the child (PID 1 on the test machines does not reap orphans), so a failed
//! test leaves nothing running. Processes are never killed by name.
//!
//! [`read_interchange_ready`] reads an interchange's ready line from its
//! stdout pipe, bounded by a timeout.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use protocol::ReadyLine;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where a daemon's stdout goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdout {
    /// A pipe the test reads (the interchange's ready line).
    Piped,
    /// The file `<name>.stdout` in the scenario directory.
    File,
}

/// How to start a process.
#[derive(Clone, Debug)]
pub struct Launch {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Variables removed from the inherited environment.
    pub env_remove: Vec<String>,
    pub stdout: Stdout,
    pub cwd: Option<PathBuf>,
}

impl Launch {
    /// `program` with no arguments, the inherited environment, stdout to a
    /// file and the test's working directory.
    pub fn new(name: &str, program: impl Into<PathBuf>) -> Launch {
        Launch {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            stdout: Stdout::File,
            cwd: None,
        }
    }

    /// More arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Self {
        self.args.extend(
            args.into_iter()
                .map(|arg| arg.as_ref().to_string_lossy().into_owned()),
        );
        self
    }

    /// One more environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.env.push((
            key.to_owned(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        self
    }

    /// One variable removed from the inherited environment.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env_remove.push(key.to_owned());
        self
    }

    /// `dir` put first on the `PATH` the process inherits.
    pub fn path_first(self, dir: &Path) -> Self {
        let inherited = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![dir.to_path_buf()];
        paths.extend(std::env::split_paths(&inherited));
        let path = std::env::join_paths(paths)
            .unwrap_or_else(|error| panic!("cannot put {} on PATH: {error}", dir.display()));
        self.env("PATH", path)
    }

    pub fn stdout(mut self, stdout: Stdout) -> Self {
        self.stdout = stdout;
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }
}

/// A running (or exited) process and its process group.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    exit: Option<ExitStatus>,
    log_path: PathBuf,
    stdout_path: Option<PathBuf>,
}

impl Daemon {
    /// Starts `launch` in a new process group, stderr to `<dir>/<name>.log`.
    pub fn spawn(dir: &Path, launch: Launch) -> Daemon {
        let log_path = dir.join(format!("{}.log", launch.name));
        let log = File::create(&log_path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_path.display()));
        let mut command = Command::new(&launch.program);
        for key in &launch.env_remove {
            command.env_remove(key);
        }
        command
            .args(&launch.args)
            .envs(launch.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stderr(log)
            .process_group(0);
        if let Some(cwd) = &launch.cwd {
            command.current_dir(cwd);
        }
        let stdout_path = match launch.stdout {
            Stdout::Piped => {
                command.stdout(Stdio::piped());
                None
            }
            Stdout::File => {
                let path = dir.join(format!("{}.stdout", launch.name));
                let file = File::create(&path)
                    .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
                command.stdout(file);
                Some(path)
            }
        };
        let child = command.spawn().unwrap_or_else(|error| {
            panic!(
                "cannot start {} ({}): {error}",
                launch.name,
                launch.program.display()
            )
        });
        Daemon {
            name: launch.name,
            child,
            exit: None,
            log_path,
            stdout_path,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn nix_pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits in i32"))
    }

    /// The log file (the process's stderr).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// What the process wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// What the process wrote on stdout so far (with [`Stdout::File`]).
    pub fn stdout_text(&self) -> String {
        self.stdout_path
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    /// The read end of the stdout pipe (with [`Stdout::Piped`]), once.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.exit = Some(status),
                Ok(None) => {}
                Err(error) => panic!("cannot wait for {}: {error}", self.name),
            }
        }
        self.exit
    }

    /// Waits at most `timeout` for the process to exit; panics if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}",
                self.name
            );
            std::thread::sleep(crate::POLL_INTERVAL);
        }
    }

    /// Sends `signal` to the process itself.
    pub fn signal(&self, signal: Signal) {
        if self.exit.is_none() {
            kill(self.nix_pid(), signal)
                .unwrap_or_else(|error| panic!("cannot signal {}: {error}", self.name));
        }
    }

    /// SIGKILL to the whole process group, then reaps the process.
    pub fn kill_group(&mut self) -> ExitStatus {
        // The group may already be gone (ESRCH): that is fine.
        let _ = killpg(self.nix_pid(), Signal::SIGKILL);
        if let Some(status) = self.exit {
            return status;
        }
        let status = self
            .child
            .wait()
            .unwrap_or_else(|error| panic!("cannot reap {}: {error}", self.name));
        self.exit = Some(status);
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = killpg(self.nix_pid(), Signal::SIGKILL);
        if self.exit.is_none() {
            let _ = self.child.wait();
        }
    }
}

/// A readable description of an exit status ("exit code 3", "signal 9").
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => format!("{status:?}"),
    }
}

/// Reads and parses an interchange's ready line (checking that its pid is
/// the daemon's), within `timeout`.
pub fn read_interchange_ready(daemon: &mut Daemon, timeout: Duration) -> ReadyLine {
    let line = read_ready_line(daemon, timeout);
    let ready =
        ReadyLine::parse(&line).unwrap_or_else(|error| panic!("bad ready line {line:?}: {error}"));
    assert_eq!(
        ready.pid,
        daemon.pid(),
        "the ready line's pid is the interchange's"
    );
    ready
}

/// The first line `daemon` prints on stdout, within `timeout`; the rest of
/// its stdout is read and dropped so that it never blocks.
fn read_ready_line(daemon: &mut Daemon, timeout: Duration) -> String {
    let stdout = daemon
        .take_stdout()
        .unwrap_or_else(|| panic!("{} has no stdout pipe", daemon.name()));
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let outcome = reader.read_line(&mut line).map(|_| line);
        let _ = sender.send(outcome);
        // Keep reading (and dropping) so the daemon never blocks on stdout.
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut reader, &mut sink);
    });
    match receiver.recv_timeout(timeout) {
        Ok(Ok(line)) if !line.is_empty() => line,
        Ok(Ok(_)) => {
            let state = daemon
                .try_exit()
                .map(describe)
                .unwrap_or_else(|| "still running".into());
            panic!(
                "{} closed stdout without a ready line ({state}); log:\n{}",
                daemon.name(),
                daemon.log()
            )
        }
        Ok(Err(error)) => panic!("cannot read the ready line of {}: {error}", daemon.name()),
        Err(_) => panic!(
            "{} printed no ready line within {timeout:?}; log:\n{}",
            daemon.name(),
            daemon.log()
        ),
    }
}
