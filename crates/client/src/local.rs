//! Starting the daemons as child processes: the embedded mode of `rhtex run`
//! and library users who want a private interchange.
//!
//! The programs are looked up next to the current executable first, then on
//! `PATH`. Each daemon runs in its own process group (so a Ctrl-C at the
//! terminal reaches only us, and we decide how they stop) with its stderr in
//! a log file of the run directory. The interchange's ready line (JSON
//! `{"client_url", "manager_url", "pid"}` on stdout) is read with a timeout.
//!
//! [`Daemon::stop`] asks nicely (SIGTERM), waits a bounded time, then
//! SIGKILLs the whole process group; dropping a [`Daemon`] that is still
//! running kills its group at once.

use crate::client::Client;
use crate::error::{ClientError, LocalError};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use protocol::{Command, ReadyLine};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout};
use transport::{connectable_url, ClientSecurity, Security};

/// Name of the interchange program.
pub const INTERCHANGE_PROGRAM: &str = "interchange";
/// Name of the pool-manager program.
pub const POOL_MANAGER_PROGRAM: &str = "pool-manager";

/// How long a killed process group gets to disappear before we give up.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Finds a daemon program: next to the current executable (or one level up
/// when that is a `deps` directory, as for test binaries), then on `PATH`.
pub fn find_program(name: &str) -> Result<PathBuf, LocalError> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut candidates = vec![exe_dir.join(name)];
    if exe_dir.file_name().and_then(|dir| dir.to_str()) == Some("deps") {
        if let Some(parent) = exe_dir.parent() {
            candidates.push(parent.join(name));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join(name)));
    }
    candidates
        .into_iter()
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| LocalError::NotFound {
            name: name.to_owned(),
            next_to: exe_dir,
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A daemon running as our child, leader of its own process group.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    pid: i32,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `program args...` in its own process group, stderr (and
    /// stdout unless `pipe_stdout`) appended to `log`.
    fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        pipe_stdout: bool,
    ) -> Result<Self, LocalError> {
        let log_error = |source| LocalError::LogFile {
            path: log.to_path_buf(),
            source,
        };
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(log_error)?;
        let stdout = if pipe_stdout {
            Stdio::piped()
        } else {
            Stdio::from(log_file.try_clone().map_err(log_error)?)
        };
        tracing::info!(name, program = %program.display(), ?args, log = %log.display(), "starting");
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::from(log_file))
            .process_group(0)
            .spawn()
            .map_err(|source| LocalError::Spawn {
                program: program.to_path_buf(),
                source,
            })?;
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .ok_or_else(|| LocalError::Spawn {
                program: program.to_path_buf(),
                source: std::io::Error::other("the child has no pid"),
            })?;
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
            log: log.to_path_buf(),
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// The daemon's log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Waits until the daemon exits, for at most `timeout`; `None` if it
    /// is still running then.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, LocalError> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => {
                self.status = Some(status);
                Ok(Some(status))
            }
            Ok(Err(source)) => Err(LocalError::Wait {
                name: self.name.clone(),
                source,
            }),
            Err(_) => Ok(None),
        }
    }

    /// Waits for the daemon to exit, however long it takes (for `select!`
    /// against other work).
    pub async fn exited(&mut self) -> Result<ExitStatus, LocalError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.child.wait().await.map_err(|source| LocalError::Wait {
            name: self.name.clone(),
            source,
        })?;
        self.status = Some(status);
        Ok(status)
    }

    /// Stops the daemon: SIGTERM, up to `grace` to exit, then SIGKILL to
    /// its whole process group. Returns how it ended.
    pub async fn stop(&mut self, grace: Duration) -> Result<ExitStatus, LocalError> {
        if let Some(status) = self.wait_exit(Duration::ZERO).await? {
            return Ok(status);
        }
        tracing::info!(name = %self.name, pid = self.pid, "stopping (SIGTERM)");
        let _ = signal::kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        if let Some(status) = self.wait_exit(grace).await? {
            return Ok(status);
        }
        tracing::warn!(name = %self.name, pid = self.pid, "did not stop in time; killing its process group");
        self.kill_group();
        match self.wait_exit(REAP_TIMEOUT).await? {
            Some(status) => Ok(status),
            None => Err(LocalError::Wait {
                name: self.name.clone(),
                source: std::io::Error::other("still running after SIGKILL"),
            }),
        }
    }

    /// SIGKILL to the process group, while the leader is not reaped (so the
    /// group id cannot belong to anyone else).
    fn kill_group(&mut self) {
        if self.status.is_none() {
            let _ = signal::killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }

    /// The last `n_lines` lines of the log, each on its own line after a
    /// newline, or empty.
    fn log_tail(&self, n_lines: usize) -> String {
        let text = std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(n_lines);
        lines[start..]
            .iter()
            .map(|line| format!("\n  {line}"))
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            tracing::warn!(name = %self.name, pid = self.pid, "killing its process group on drop");
            self.kill_group();
        }
    }
}

/// How to start an interchange.
#[derive(Clone, Debug)]
pub struct InterchangeOptions {
    pub program: PathBuf,
    pub run_dir: PathBuf,
    /// The key directory; `None` runs it with `--insecure`.
    pub keys_dir: Option<PathBuf>,
    pub client_listen: String,
    pub manager_listen: String,
    pub log_level: Option<String>,
    /// How long to wait for the ready line.
    pub ready_timeout: Duration,
}

impl InterchangeOptions {
    /// Loopback-only sockets on free ports, the program found by
    /// [`find_program`].
    pub fn local(run_dir: &Path, keys_dir: Option<&Path>) -> Result<Self, LocalError> {
        Ok(Self {
            program: find_program(INTERCHANGE_PROGRAM)?,
            run_dir: run_dir.to_path_buf(),
            keys_dir: keys_dir.map(Path::to_path_buf),
            client_listen: "tcp://127.0.0.1:0".to_owned(),
            manager_listen: "tcp://127.0.0.1:0".to_owned(),
            log_level: None,
            ready_timeout: Duration::from_secs(30),
        })
    }
}

/// An interchange running as our child.
#[derive(Debug)]
pub struct LocalInterchange {
    pub daemon: Daemon,
    pub ready: ReadyLine,
}

impl LocalInterchange {
    /// Starts the interchange and waits for its ready line.
    pub async fn start(options: &InterchangeOptions) -> Result<Self, LocalError> {
        create_dir(&options.run_dir)?;
        let mut args = vec![
            "--run-dir".to_owned(),
            options.run_dir.to_string_lossy().into_owned(),
            "--client-listen".to_owned(),
            options.client_listen.clone(),
            "--manager-listen".to_owned(),
            options.manager_listen.clone(),
        ];
        args.extend(security_flags(options.keys_dir.as_deref()));
        if let Some(level) = &options.log_level {
            args.extend(["--log-level".to_owned(), level.clone()]);
        }
        let log = options.run_dir.join("interchange.log");
        let mut daemon = Daemon::spawn(INTERCHANGE_PROGRAM, &options.program, &args, &log, true)?;
        let stdout = daemon.child.stdout.take();
        let ready = match stdout {
            Some(stdout) => read_ready_line(&mut daemon, stdout, options.ready_timeout).await?,
            None => {
                return Err(LocalError::Spawn {
                    program: options.program.clone(),
                    source: std::io::Error::other("no stdout pipe"),
                })
            }
        };
        tracing::info!(client_url = %ready.client_url, manager_url = %ready.manager_url, pid = ready.pid, "interchange ready");
        Ok(Self { daemon, ready })
    }

    /// The URL clients connect to.
    pub fn client_url(&self) -> String {
        connectable_url(&self.ready.client_url)
    }

    /// The URL pool-managers on this host connect to.
    pub fn manager_url(&self) -> String {
        connectable_url(&self.ready.manager_url)
    }

    /// Stops the interchange: the `shutdown` command through `client` when
    /// given, else SIGTERM; then a bounded wait and SIGKILL of its group.
    pub async fn stop(
        &mut self,
        client: Option<&mut Client>,
        grace: Duration,
    ) -> Result<ExitStatus, LocalError> {
        if let Some(client) = client {
            match client.command(Command::Shutdown).await {
                Ok(reply) => tracing::info!(?reply, "interchange shutdown requested"),
                Err(error) => tracing::warn!(%error, "shutdown command failed"),
            }
            if let Some(status) = self.daemon.wait_exit(grace).await? {
                return Ok(status);
            }
        }
        self.daemon.stop(grace).await
    }
}

async fn read_ready_line(
    daemon: &mut Daemon,
    stdout: ChildStdout,
    timeout: Duration,
) -> Result<ReadyLine, LocalError> {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let outcome = tokio::time::timeout(timeout, reader.read_line(&mut line)).await;
    match outcome {
        Err(_) => {
            daemon.stop(Duration::from_secs(2)).await?;
            Err(LocalError::ReadyTimeout {
                name: daemon.name.clone(),
                after: timeout,
                log: daemon.log.clone(),
            })
        }
        Ok(Ok(0)) | Ok(Err(_)) => {
            // End of output: the daemon is exiting or gone.
            let status = daemon.stop(Duration::from_secs(2)).await?;
            Err(LocalError::ExitedEarly {
                name: daemon.name.clone(),
                status: status.to_string(),
                log: daemon.log.clone(),
                tail: daemon.log_tail(15),
            })
        }
        Ok(Ok(_)) => match ReadyLine::parse(&line) {
            Ok(ready) => {
                let name = daemon.name.clone();
                // Keep reading stdout so that the daemon never writes into
                // a closed pipe.
                tokio::spawn(async move {
                    let mut lines = reader.lines();
                    while let Ok(Some(extra)) = lines.next_line().await {
                        tracing::debug!(name, line = extra, "daemon stdout");
                    }
                });
                Ok(ready)
            }
            Err(problem) => {
                daemon.stop(Duration::from_secs(2)).await?;
                Err(LocalError::BadReadyLine {
                    name: daemon.name.clone(),
                    line: line.trim_end().to_owned(),
                    problem: problem.reason,
                })
            }
        },
    }
}

/// `--keys-dir DIR`, or `--insecure` without a key directory.
fn security_flags(keys_dir: Option<&Path>) -> Vec<String> {
    keys_dir
        .map_or(Security::Insecure, |dir| Security::Curve(dir.to_path_buf()))
        .flags()
}

/// How to start a pool-manager.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    pub program: PathBuf,
    /// The interchange's manager URL (connectable, not a wildcard).
    pub interchange_url: String,
    /// The key directory; `None` runs it with `--insecure`.
    pub keys_dir: Option<PathBuf>,
    pub run_dir: PathBuf,
    /// The manager's nodes; `None` lets it discover them.
    pub nodes: Option<Vec<String>>,
    pub launcher: Option<String>,
    pub block_id: String,
    pub log_level: Option<String>,
    /// Where its stderr and stdout go.
    pub log: PathBuf,
}

/// A pool-manager running as our child.
#[derive(Debug)]
pub struct LocalManager {
    pub daemon: Daemon,
}

impl LocalManager {
    /// Starts the pool-manager. It registers in the background; tasks wait
    /// in the interchange until it has.
    pub fn start(options: &ManagerOptions) -> Result<Self, LocalError> {
        create_dir(&options.run_dir)?;
        let mut args = vec![
            "--interchange".to_owned(),
            connectable_url(&options.interchange_url),
            "--run-dir".to_owned(),
            options.run_dir.to_string_lossy().into_owned(),
            "--block-id".to_owned(),
            options.block_id.clone(),
        ];
        args.extend(security_flags(options.keys_dir.as_deref()));
        if let Some(nodes) = &options.nodes {
            args.extend(["--nodes".to_owned(), nodes.join(",")]);
        }
        if let Some(launcher) = &options.launcher {
            args.extend(["--launcher".to_owned(), launcher.clone()]);
        }
        if let Some(level) = &options.log_level {
            args.extend(["--log-level".to_owned(), level.clone()]);
        }
        let daemon = Daemon::spawn(
            POOL_MANAGER_PROGRAM,
            &options.program,
            &args,
            &options.log,
            false,
        )?;
        Ok(Self { daemon })
    }

    /// Stops the pool-manager: waits up to `grace` for it to leave by
    /// itself (after an interchange shutdown), then SIGTERM, then SIGKILL.
    pub async fn stop(&mut self, grace: Duration) -> Result<ExitStatus, LocalError> {
        if let Some(status) = self.daemon.wait_exit(grace).await? {
            return Ok(status);
        }
        self.daemon.stop(grace).await
    }
}

/// What [`EmbeddedPool::start`] needs.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Where run directories are created (`rhtex-run`).
    pub run_root: PathBuf,
    pub nodes: Option<Vec<String>>,
    pub launcher: Option<String>,
    pub log_level: Option<String>,
    pub ready_timeout: Duration,
}

/// An interchange and one pool-manager on this host, with a fresh CURVE
/// key directory: the embedded default of `rhtex run`.
#[derive(Debug)]
pub struct EmbeddedPool {
    pub run_dir: PathBuf,
    pub keys_dir: PathBuf,
    pub interchange: LocalInterchange,
    pub manager: LocalManager,
}

impl EmbeddedPool {
    /// Creates `<run_root>/run-<timestamp>`, a key directory inside it, and
    /// starts both daemons.
    pub async fn start(options: &EmbeddedOptions) -> Result<Self, LocalError> {
        let interchange_program = find_program(INTERCHANGE_PROGRAM)?;
        let manager_program = find_program(POOL_MANAGER_PROGRAM)?;
        let run_dir = new_run_directory(&options.run_root)?;
        let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
        let keys_dir = run_dir.join("keys");
        transport::keygen(&keys_dir)?;
        let interchange = LocalInterchange::start(&InterchangeOptions {
            program: interchange_program,
            run_dir: run_dir.clone(),
            keys_dir: Some(keys_dir.clone()),
            client_listen: "tcp://127.0.0.1:0".to_owned(),
            manager_listen: "tcp://127.0.0.1:0".to_owned(),
            log_level: options.log_level.clone(),
            ready_timeout: options.ready_timeout,
        })
        .await?;
        let manager = LocalManager::start(&ManagerOptions {
            program: manager_program,
            interchange_url: interchange.manager_url(),
            keys_dir: Some(keys_dir.clone()),
            run_dir: run_dir.join("manager"),
            nodes: options.nodes.clone(),
            launcher: options.launcher.clone(),
            block_id: "local".to_owned(),
            log_level: options.log_level.clone(),
            log: run_dir.join("pool-manager.log"),
        })?;
        Ok(Self {
            run_dir,
            keys_dir,
            interchange,
            manager,
        })
    }

    /// The security to connect to the embedded interchange with.
    pub fn security(&self) -> Result<ClientSecurity, ClientError> {
        Ok(ClientSecurity::from_keys_dir(&self.keys_dir)?)
    }

    /// Stops both daemons: the `shutdown` command through `client` (which
    /// also tells the manager to stop), bounded waits, then SIGTERM and
    /// SIGKILL of their process groups. Both are stopped even if one fails.
    pub async fn stop(
        &mut self,
        client: Option<&mut Client>,
        grace: Duration,
    ) -> Result<(), LocalError> {
        let interchange = self.interchange.stop(client, grace).await;
        let manager = self.manager.stop(grace).await;
        tracing::info!(?interchange, ?manager, "embedded daemons stopped");
        interchange?;
        manager?;
        Ok(())
    }
}

fn create_dir(path: &Path) -> Result<(), LocalError> {
    std::fs::create_dir_all(path).map_err(|source| LocalError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates `<root>/run-YYYYMMDD-HHMMSS` (UTC), with `-2`, `-3`... when it
/// exists already.
pub fn new_run_directory(root: &Path) -> Result<PathBuf, LocalError> {
    create_dir(root)?;
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let stamp = timestamp(seconds);
    let mut attempt = 1;
    loop {
        let name = if attempt == 1 {
            format!("run-{stamp}")
        } else {
            format!("run-{stamp}-{attempt}")
        };
        let path = root.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => {
                attempt += 1;
            }
            Err(source) => return Err(LocalError::CreateDir { path, source }),
        }
    }
}

/// `YYYYMMDD-HHMMSS` in UTC for seconds since the epoch.
pub fn timestamp(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    let (year, month, day) = protocol::events::civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        of_day / 3600,
        (of_day / 60) % 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(951_782_400), "20000229-000000");
        assert_eq!(timestamp(1_700_000_000), "20231114-221320");
    }

    #[test]
    fn run_directories_do_not_collide() {
        let root = tempfile::tempdir().expect("tempdir");
        let first = new_run_directory(root.path()).expect("first");
        let second = new_run_directory(root.path()).expect("second");
        assert_ne!(first, second);
        assert!(first.is_dir() && second.is_dir());
    }

    #[test]
    fn missing_program_names_both_places() {
        let error = find_program("rhtex-no-such-daemon").expect_err("missing");
        let text = error.to_string();
        assert!(text.contains("rhtex-no-such-daemon"), "{text}");
        assert!(text.contains("next to this program"), "{text}");
        assert!(text.contains("PATH"), "{text}");
    }
}
