//! The provider's shell: the only module in the interchange that starts or
//! signals processes (through `super::local` for the pool-managers a
//! previous interchange started).
//!
//! A worker thread performs the provider core's [`Action`]s one at a time
//! (`sbatch`/`squeue`/`scancel`, `qsub`/`qstat`/`qdel`, or pool-managers
//! started on this host) and sends back an [`Answer`] for each, writing a
//! byte to a wake-up socket that the daemon's poll loop watches. So a slow
//! batch system never stalls the interchange. Every command runs in its own
//! process group with a timeout (the group is killed when it passes), and
//! its stderr is quoted in errors.
//!
//! The worker remembers every job it submitted and has not seen end; when it
//! stops it cancels those that are left (the jobs of blocks whose
//! submission was still under way at shutdown, for one), and a local
//! provider's pool-managers are terminated and reaped before it returns;
//! when it is told to keep them ([`BatchShell::keep`]) it leaves every job
//! and pool-manager running for the next interchange to adopt
//! (`super::local`).

use super::command::{command_line, describe};
pub use super::command::{run_command, run_command_any_status, CommandOutput};
use super::script::{render, ScriptValues};
use crate::config::ProviderKind;
use interchange_core::provider::{Action, JobState, Submitted};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use transport::Security;

/// How often a wait for a child process looks at it.
pub(super) const CHILD_POLL: Duration = Duration::from_millis(10);

/// What the worker needs to know.
#[derive(Clone, Debug)]
pub struct ShellSettings {
    pub kind: ProviderKind,
    /// The batch-script template (Slurm and PBS).
    pub template: String,
    /// Absolute: `<run dir>/blocks`. Scripts, job output and each block's
    /// run directory go here.
    pub blocks_dir: PathBuf,
    /// The values every block's script shares; the block id, node count,
    /// output and run directory are filled in per block.
    pub values: ScriptValues,
    /// Every batch command is killed after this long.
    pub command_timeout: Duration,
    /// Local pool-managers get this long after SIGTERM before SIGKILL.
    pub kill_grace: Duration,
}

impl ShellSettings {
    /// The job output file of a block.
    pub fn output_path(&self, block_id: &str) -> PathBuf {
        self.blocks_dir.join(format!("{block_id}.out"))
    }

    /// The script values of one block.
    pub fn block_values(&self, block_id: &str, n_nodes: u32) -> ScriptValues {
        ScriptValues {
            block_id: block_id.to_owned(),
            nodes: n_nodes,
            output: self.output_path(block_id).display().to_string(),
            run_dir: self.blocks_dir.join(block_id).display().to_string(),
            ..self.values.clone()
        }
    }
}

/// The outcome of one [`Action`], for the provider core.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Submitted {
        block_id: String,
        outcome: Result<Submitted, String>,
    },
    Jobs(Result<Vec<(String, JobState)>, String>),
    Cancelled {
        jobs: Vec<(String, String)>,
        outcome: Result<(), String>,
    },
}

enum Request {
    Perform(Action),
    /// Finish, cancel the jobs left, stop.
    Stop,
    /// Finish and stop, leaving every job running (for the next
    /// interchange to adopt).
    Keep,
}

/// A command that did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {timeout_s} s and was killed; stderr: {stderr:?}")]
    TimedOut {
        command: String,
        timeout_s: f64,
        stderr: String,
    },
    #[error("`{command}` failed ({status}); stderr: {stderr:?}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed {stdout:?}, which is not a job id")]
    NoJobId { command: String, stdout: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot render the batch script: {0}")]
    Script(#[from] super::script::ScriptError),
}

/// The daemon's handle on the worker thread.
#[derive(Debug)]
pub struct BatchShell {
    requests: mpsc::Sender<Request>,
    answers: mpsc::Receiver<Answer>,
    wake: UnixStream,
    finished: mpsc::Receiver<()>,
    worker: Option<JoinHandle<()>>,
    stopped: bool,
}

impl BatchShell {
    /// Starts the worker thread.
    pub fn start(settings: ShellSettings) -> std::io::Result<Self> {
        let (wake, wake_write) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_write.set_nonblocking(true)?;
        let (request_sender, requests) = mpsc::channel();
        let (answer_sender, answers) = mpsc::channel();
        let (finished_sender, finished) = mpsc::channel();
        let worker = Worker {
            settings,
            live: BTreeMap::new(),
            children: HashMap::new(),
            answers: answer_sender,
            wake: wake_write,
        };
        let handle = std::thread::Builder::new()
            .name("rhtex-provider".to_owned())
            .spawn(move || {
                worker.run(requests);
                let _ = finished_sender.send(());
            })?;
        Ok(Self {
            requests: request_sender,
            answers,
            wake,
            finished,
            worker: Some(handle),
            stopped: false,
        })
    }

    /// Readable when answers are waiting.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Hands an action to the worker (a drain is not the shell's).
    pub fn perform(&self, action: Action) {
        if self.requests.send(Request::Perform(action)).is_err() {
            tracing::error!("the provider's worker thread is gone; action dropped");
        }
    }

    /// The next answer, if one is waiting (empties the wake-up socket).
    pub fn poll_answer(&mut self) -> Option<Answer> {
        let mut buffer = [0u8; 64];
        while matches!(self.wake.read(&mut buffer), Ok(n) if n > 0) {}
        self.answers.try_recv().ok()
    }

    /// Lets the worker finish what it was given, cancel what is left and
    /// stop; waits at most `bound`. False if it did not finish in time.
    pub fn stop(&mut self, bound: Duration) -> bool {
        self.finish(Request::Stop, bound)
    }

    /// Lets the worker finish what it was given and stop, leaving every
    /// job (and local pool-manager) running; waits at most `bound`.
    pub fn keep(&mut self, bound: Duration) -> bool {
        self.finish(Request::Keep, bound)
    }

    fn finish(&mut self, request: Request, bound: Duration) -> bool {
        if self.stopped {
            return true;
        }
        self.stopped = true;
        let _ = self.requests.send(request);
        match self.finished.recv_timeout(bound) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(handle) = self.worker.take() {
                    let _ = handle.join();
                }
                true
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::error!(
                    bound_s = bound.as_secs_f64(),
                    "the provider did not finish cancelling its blocks in time"
                );
                false
            }
        }
    }
}

impl Drop for BatchShell {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(60));
    }
}

/// A pool-manager started on this host.
struct LocalJob {
    child: Child,
    pgid: Pid,
}

struct Worker {
    settings: ShellSettings,
    /// Submitted jobs not seen to end: job id to block id.
    live: BTreeMap<String, String>,
    /// The local provider's pool-managers, by job id (their pid).
    children: HashMap<String, LocalJob>,
    answers: mpsc::Sender<Answer>,
    wake: UnixStream,
}

impl Worker {
    fn run(mut self, requests: mpsc::Receiver<Request>) {
        let cancel_left = loop {
            let action = match requests.recv() {
                Ok(Request::Perform(action)) => action,
                Ok(Request::Keep) => break false,
                Ok(Request::Stop) | Err(_) => break true,
            };
            let answer = match action {
                Action::Submit { block_id, n_nodes } => {
                    let outcome = self
                        .submit(&block_id, n_nodes)
                        .map_err(|error| error.to_string());
                    Answer::Submitted { block_id, outcome }
                }
                Action::QueryJobs { job_ids } => {
                    Answer::Jobs(self.query(&job_ids).map_err(|error| error.to_string()))
                }
                Action::Cancel { jobs } => {
                    let job_ids: Vec<String> =
                        jobs.iter().map(|(_, job_id)| job_id.clone()).collect();
                    let outcome = self.cancel(&job_ids).map_err(|error| error.to_string());
                    Answer::Cancelled { jobs, outcome }
                }
                Action::Drain { block_id, .. } => {
                    tracing::warn!(%block_id, "a drain reached the provider's worker; ignored");
                    continue;
                }
            };
            if self.answers.send(answer).is_err() {
                break true;
            }
            // A full socket already wakes the daemon.
            let _ = self.wake.write(&[1]);
        };
        if cancel_left {
            self.sweep();
        }
    }

    /// Cancels every job still alive (at stop).
    fn sweep(&mut self) {
        let job_ids: Vec<String> = self.live.keys().cloned().collect();
        if job_ids.is_empty() {
            return;
        }
        tracing::info!(n_jobs = job_ids.len(), jobs = ?job_ids, "cancelling the blocks left at stop");
        if let Err(error) = self.cancel(&job_ids) {
            tracing::error!(%error, "cannot cancel the blocks left at stop");
        }
    }

    fn submit(&mut self, block_id: &str, n_nodes: u32) -> Result<Submitted, CommandError> {
        let settings = &self.settings;
        let values = settings.block_values(block_id, n_nodes);
        let run_dir = PathBuf::from(&values.run_dir);
        std::fs::create_dir_all(&run_dir).map_err(|source| CommandError::Write {
            path: run_dir.clone(),
            source,
        })?;
        let output_path = settings.output_path(block_id);
        let job_id = match settings.kind {
            ProviderKind::Local => self.start_local(&values, &output_path)?,
            ProviderKind::Slurm | ProviderKind::Pbs => {
                let script = render(&settings.template, &values)?;
                let script_path = settings.blocks_dir.join(format!("{block_id}.sh"));
                write_script(&script_path, &script)?;
                let script_arg = script_path.display().to_string();
                let (program, args) = match settings.kind {
                    ProviderKind::Slurm => ("sbatch", vec!["--parsable".to_owned(), script_arg]),
                    _ => ("qsub", vec![script_arg]),
                };
                let output = run_command(program, &args, settings.command_timeout)?;
                parse_job_id(&output.stdout).ok_or_else(|| CommandError::NoJobId {
                    command: command_line(program, &args),
                    stdout: output.stdout.clone(),
                })?
            }
        };
        self.live.insert(job_id.clone(), block_id.to_owned());
        Ok(Submitted {
            job_id,
            output_path: Some(output_path.display().to_string()),
        })
    }

    fn start_local(
        &mut self,
        values: &ScriptValues,
        output_path: &Path,
    ) -> Result<String, CommandError> {
        let arguments = local_arguments(values);
        let program = values.pool_manager.clone();
        let mut command = if values.worker_init.trim().is_empty() {
            let mut command = Command::new(&program);
            command.args(&arguments);
            command
        } else {
            // worker_init runs in a shell that then becomes the pool-manager.
            let mut command = Command::new("/bin/bash");
            command
                .arg("-c")
                .arg(format!("{}\nexec \"$0\" \"$@\"", values.worker_init))
                .arg(&program)
                .args(&arguments);
            command
        };
        let write_error = |source| CommandError::Write {
            path: output_path.to_path_buf(),
            source,
        };
        let log = std::fs::File::create(output_path).map_err(write_error)?;
        let log_copy = log.try_clone().map_err(write_error)?;
        let child = command
            .current_dir(&values.run_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_copy)
            .process_group(0)
            .spawn()
            .map_err(|source| CommandError::Spawn {
                command: command_line(&program, &arguments),
                source,
            })?;
        let pid = child.id();
        let pgid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        tracing::info!(block_id = %values.block_id, pid, "pool-manager started on this host");
        let job_id = pid.to_string();
        self.children
            .insert(job_id.clone(), LocalJob { child, pgid });
        Ok(job_id)
    }

    fn query(&mut self, job_ids: &[String]) -> Result<Vec<(String, JobState)>, CommandError> {
        let timeout = self.settings.command_timeout;
        let states = match self.settings.kind {
            ProviderKind::Local => self.query_local(job_ids),
            ProviderKind::Slurm => {
                let args = vec![
                    "--noheader".to_owned(),
                    "--states=all".to_owned(),
                    "--format=%i %T".to_owned(),
                    format!("--jobs={}", job_ids.join(",")),
                ];
                match run_command("squeue", &args, timeout) {
                    Ok(output) => parse_squeue(&output.stdout, job_ids),
                    // squeue -j with only jobs that left the controller.
                    Err(CommandError::Failed { stderr, .. })
                        if stderr.contains("Invalid job id specified") =>
                    {
                        Vec::new()
                    }
                    Err(error) => return Err(error),
                }
            }
            ProviderKind::Pbs => {
                let output = run_pbs("qstat", job_ids, timeout)?;
                parse_qstat(&output.stdout, job_ids)
            }
        };
        for (job_id, state) in &states {
            if matches!(state, JobState::Ended { .. }) {
                self.live.remove(job_id);
            }
        }
        for job_id in job_ids {
            if !states.iter().any(|(known, _)| known == job_id) {
                self.live.remove(job_id);
            }
        }
        Ok(states)
    }

    fn query_local(&mut self, job_ids: &[String]) -> Vec<(String, JobState)> {
        let mut states = Vec::new();
        for job_id in job_ids {
            let Some(job) = self.children.get_mut(job_id) else {
                // A pool-manager of the previous interchange, adopted.
                if super::local::is_block_alive(job_id, &self.settings.blocks_dir) {
                    states.push((job_id.clone(), JobState::Running));
                }
                continue;
            };
            match job.child.try_wait() {
                Ok(None) => states.push((job_id.clone(), JobState::Running)),
                Ok(Some(status)) => {
                    tracing::info!(job_id, status = %describe(status), "local pool-manager exited");
                    self.children.remove(job_id);
                    states.push((
                        job_id.clone(),
                        JobState::Ended {
                            detail: Some(describe(status)),
                        },
                    ));
                }
                Err(error) => {
                    tracing::warn!(job_id, %error, "cannot look at a local pool-manager");
                    states.push((job_id.clone(), JobState::Running));
                }
            }
        }
        states
    }

    fn cancel(&mut self, job_ids: &[String]) -> Result<(), CommandError> {
        let timeout = self.settings.command_timeout;
        match self.settings.kind {
            ProviderKind::Local => self.stop_local(job_ids),
            ProviderKind::Slurm => match run_command("scancel", job_ids, timeout) {
                Ok(_) => {}
                Err(CommandError::Failed { stderr, .. })
                    if stderr.contains("Invalid job id")
                        || stderr.contains("already completing or completed") => {}
                Err(error) => return Err(error),
            },
            ProviderKind::Pbs => {
                run_pbs("qdel", job_ids, timeout)?;
            }
        }
        for job_id in job_ids {
            self.live.remove(job_id);
        }
        Ok(())
    }

    /// SIGTERM to each pool-manager's process group (it kills and reports
    /// its tasks, then exits), SIGKILL to the groups left after the grace;
    /// every one reaped.
    fn stop_local(&mut self, job_ids: &[String]) {
        let adopted: Vec<&String> = job_ids
            .iter()
            .filter(|job_id| !self.children.contains_key(*job_id))
            .collect();
        super::local::stop_adopted(
            &adopted,
            &self.settings.blocks_dir,
            self.settings.kill_grace,
        );
        let mut stopping: Vec<(String, LocalJob)> = job_ids
            .iter()
            .filter_map(|job_id| {
                self.children
                    .remove(job_id)
                    .map(|job| (job_id.clone(), job))
            })
            .collect();
        for (job_id, job) in &stopping {
            if let Err(error) = killpg(job.pgid, Signal::SIGTERM) {
                tracing::debug!(job_id, %error, "SIGTERM to a local pool-manager");
            }
        }
        let deadline = Instant::now() + self.settings.kill_grace;
        loop {
            stopping.retain_mut(|(job_id, job)| match job.child.try_wait() {
                Ok(Some(status)) => {
                    tracing::info!(job_id = %job_id, status = %describe(status), "local pool-manager stopped");
                    false
                }
                Ok(None) => true,
                Err(error) => {
                    tracing::warn!(job_id = %job_id, %error, "cannot wait for a local pool-manager");
                    true
                }
            });
            if stopping.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(CHILD_POLL);
        }
        for (job_id, mut job) in stopping {
            tracing::warn!(job_id = %job_id, "local pool-manager ignored SIGTERM; killing its process group");
            let _ = killpg(job.pgid, Signal::SIGKILL);
            if let Err(error) = job.child.wait() {
                tracing::warn!(job_id = %job_id, %error, "cannot reap a local pool-manager");
            }
        }
    }
}

/// The pool-manager's arguments for a local block (the batch templates
/// compose the same from their variables).
pub fn local_arguments(values: &ScriptValues) -> Vec<String> {
    let mut arguments: Vec<String> = [
        ("--interchange", &values.interchange),
        ("--block-id", &values.block_id),
        ("--launcher", &values.launcher),
        ("--run-dir", &values.run_dir),
        ("--heartbeat-period", &values.heartbeat_period),
        ("--heartbeat-threshold", &values.heartbeat_threshold),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value.clone()])
    .collect();
    let security = match &values.keys_dir {
        Some(keys_dir) => Security::Curve(PathBuf::from(keys_dir)),
        None => Security::Insecure,
    };
    arguments.extend(security.flags());
    if values.nodes > 1 {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|name| name.into_string().ok());
        let hosts = local_node_names(values.nodes, host.as_deref()).join(",");
        arguments.extend(["--nodes".to_owned(), hosts]);
    }
    arguments
}

/// The node names of a local block of `n_nodes` nodes, all of them this
/// host: node names must be distinct, so `localhost`, then this host's own
/// name (both resolve here, so MPI runs ranks on "both"), then `local-3`,
/// `local-4`, ..., which do not resolve (an MPI task over more than two
/// nodes of a local block cannot launch; a local block is for trying rhtex
/// out on one machine).
fn local_node_names(n_nodes: u32, host: Option<&str>) -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if let Some(host) = host.filter(|host| !host.is_empty() && *host != "localhost") {
        names.push(host.to_owned());
    }
    let mut number = names.len() as u32;
    while names.len() < n_nodes as usize {
        number += 1;
        names.push(format!("local-{number}"));
    }
    names.truncate(n_nodes as usize);
    names
}

fn write_script(path: &Path, script: &str) -> Result<(), CommandError> {
    let write_error = |source| CommandError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, script).map_err(write_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(write_error)
}

/// The first word of the first line, before any `;cluster` (sbatch
/// `--parsable`) ; `None` if there is none.
pub fn parse_job_id(stdout: &str) -> Option<String> {
    let line = stdout
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())?;
    let id = line.split(';').next()?.trim();
    if id.is_empty() || id.chars().any(char::is_whitespace) {
        None
    } else {
        Some(id.to_owned())
    }
}

/// `squeue --noheader --format='%i %T'` lines, for the jobs asked about.
pub fn parse_squeue(stdout: &str, job_ids: &[String]) -> Vec<(String, JobState)> {
    let mut states = Vec::new();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        let (Some(id), Some(state)) = (words.next(), words.next()) else {
            continue;
        };
        if !job_ids.iter().any(|asked| asked == id) {
            continue;
        }
        let state = match state {
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
            | "RESV_DEL_HOLD" => JobState::Pending,
            "COMPLETED" | "CANCELLED" | "FAILED" | "TIMEOUT" | "NODE_FAIL" | "PREEMPTED"
            | "BOOT_FAIL" | "DEADLINE" | "OUT_OF_MEMORY" | "SPECIAL_EXIT" | "REVOKED" => {
                JobState::Ended {
                    detail: Some(state.to_owned()),
                }
            }
            // RUNNING, COMPLETING, SUSPENDED, and words this code does not
            // know: still there; it ends when squeue says so or forgets it.
            _ => JobState::Running,
        };
        states.push((id.to_owned(), state));
    }
    states
}

/// The part of a PBS job id before the server name (`qstat` may shorten
/// the rest).
fn pbs_sequence(job_id: &str) -> &str {
    job_id.split('.').next().unwrap_or(job_id)
}

/// `qstat` table lines (`Job id  Name  User  Time Use  S  Queue`), for the
/// jobs asked about.
pub fn parse_qstat(stdout: &str, job_ids: &[String]) -> Vec<(String, JobState)> {
    let mut states = Vec::new();
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 6 || words[0] == "Job" || words[0].starts_with('-') {
            continue;
        }
        let shown = words[0];
        let Some(asked) = job_ids
            .iter()
            .find(|asked| asked.as_str() == shown || pbs_sequence(asked) == pbs_sequence(shown))
        else {
            continue;
        };
        let state = match words[4] {
            "Q" | "H" | "W" | "T" | "M" => JobState::Pending,
            "C" | "F" | "X" => JobState::Ended {
                detail: Some(format!("state {}", words[4])),
            },
            // R, E (exiting), B, S, U and anything else: still there.
            _ => JobState::Running,
        };
        states.push((asked.clone(), state));
    }
    states
}

/// Runs the PBS command `program` about `job_ids`; fails unless it
/// succeeds or PBS says the jobs are gone.
fn run_pbs(
    program: &str,
    job_ids: &[String],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let output = run_command_any_status(program, job_ids, timeout)?;
    if !output.status.success() && !pbs_says_gone(&output.stderr) {
        return Err(CommandError::Failed {
            command: command_line(program, job_ids),
            status: describe(output.status),
            stderr: output.stderr,
        });
    }
    Ok(output)
}

/// PBS's ways of saying a job is gone.
fn pbs_says_gone(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    lower.contains("unknown job id") || lower.contains("has finished")
}

#[cfg(test)]
mod tests;
