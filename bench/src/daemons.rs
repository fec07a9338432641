//! Starting and stopping the real binaries (`interchange`, `pool-manager`)
//! and the load generator, each in its own process group with its own log,
//! every wait bounded.

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use protocol::ReadyLine;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A child process in its own process group, killed (the whole group) when
/// dropped unless it has exited.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    lines: Option<Receiver<String>>,
}

impl Process {
    /// Starts `command` with stdout piped (read line by line on a thread)
    /// and stderr to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {name} ({command:?})"))?;
        let lines = child.stdout.take().map(|stdout| {
            let (sender, receiver) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
            receiver
        });
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_path_buf(),
            lines,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line of its stdout within `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> Result<String> {
        let Some(lines) = &self.lines else {
            bail!("{} has no stdout to read", self.name);
        };
        match lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => bail!(
                "{} printed nothing within {:?}; see {}",
                self.name,
                timeout,
                self.log.display()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait_exit(Duration::from_secs(5));
                bail!(
                    "{} closed its stdout (exit: {status:?}); see {}",
                    self.name,
                    self.log.display()
                )
            }
        }
    }

    /// A line of its stdout if one is ready now.
    pub fn try_line(&mut self) -> Option<String> {
        self.lines.as_ref()?.try_recv().ok()
    }

    /// Waits at most `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => return None,
            }
        }
    }

    /// SIGKILL to the process group, then reap.
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = i32::try_from(self.child.id()).unwrap_or(0);
        if pid > 0 {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The directory of this executable, where cargo puts the other binaries.
pub fn default_bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("this executable has no directory")
}

/// A binary of the workspace in `bin_dir`, which must exist.
pub fn binary(bin_dir: &Path, name: &str) -> Result<PathBuf> {
    let path = bin_dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found; build it first with `cargo build --release -p interchange -p pool-manager -p client`",
            path.display()
        );
    }
    Ok(path)
}

/// A running interchange and where to reach it.
#[derive(Debug)]
pub struct Interchange {
    pub process: Process,
    pub client_url: String,
    pub manager_url: String,
}

/// Starts the interchange on 127.0.0.1 with its log `<name>.log` in `work`
/// and its run directory `run_dir`, CURVE with `keys_dir` unless `None`,
/// and waits for its ready line.
pub fn start_interchange(
    bin_dir: &Path,
    work: &Path,
    name: &str,
    run_dir: &Path,
    keys_dir: Option<&Path>,
    extra: &[String],
) -> Result<Interchange> {
    let mut command = Command::new(binary(bin_dir, "interchange")?);
    command
        .arg("--run-dir")
        .arg(run_dir)
        .args(["--client-listen", "tcp://127.0.0.1:0"])
        .args(["--manager-listen", "tcp://127.0.0.1:0"])
        .args(["--log-level", "info"])
        .args(crate::net::security(keys_dir).flags())
        .args(extra);
    let mut process = Process::spawn(name, command, &work.join(format!("{name}.log")))?;
    let line = process.next_line(Duration::from_secs(30))?;
    let ready = ReadyLine::parse(&line)
        .with_context(|| format!("the interchange's ready line {line:?} is not valid"))?;
    Ok(Interchange {
        client_url: ready.client_url,
        manager_url: transport::connectable_url(&ready.manager_url),
        process,
    })
}

/// The settings of a load generator child (`rhtex-bench managers`).
#[derive(Clone, Debug)]
pub struct LoadgenSpec {
    pub n_managers: usize,
    pub nodes_per_manager: u32,
    pub threads: usize,
}

/// Starts the load generator as a child process (this executable with the
/// `managers` subcommand). Returns once it has started; call
/// [`wait_loadgen_ready`] to wait for every registration.
pub fn start_loadgen(
    interchange: &Interchange,
    work: &Path,
    keys_dir: Option<&Path>,
    spec: &LoadgenSpec,
) -> Result<Process> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut command = Command::new(exe);
    command
        .arg("managers")
        .args(["--url", &interchange.manager_url])
        .args(["--count", &spec.n_managers.to_string()])
        .args(["--nodes-per-manager", &spec.nodes_per_manager.to_string()])
        .args(["--threads", &spec.threads.to_string()]);
    if let Some(dir) = keys_dir {
        command.arg("--keys-dir").arg(dir);
    }
    Process::spawn(
        "load generator",
        command,
        &work.join(format!("loadgen-{}.log", spec.n_managers)),
    )
}

/// Waits for the load generator's `ready` line (every manager registered).
pub fn wait_loadgen_ready(loadgen: &mut Process, timeout: Duration) -> Result<()> {
    let line = loadgen.next_line(timeout)?;
    if !line.starts_with("{\"ready\"") {
        bail!("unexpected line from the load generator: {line}");
    }
    Ok(())
}
