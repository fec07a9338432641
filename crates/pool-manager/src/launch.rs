//! The only module that starts or signals task processes.
//!
//! A task runs as `/bin/bash -c COMMAND` with a cleared environment plus the
//! map the core composed, in its working directory, stdin from /dev/null,
//! stdout and stderr to files, in a process group of its own. A watcher (one
//! tokio task per child) owns the child until it is reaped, so its pid and
//! process group id cannot be reused while we may still signal them; it
//! kills on request (SIGTERM to the group, then SIGKILL to the group after
//! the grace period if the leader is still alive), records the start and
//! end times, reads the output tails and reports the end on a channel.
//!
//! Task payloads: a task's input is written to its input file before the
//! command starts; once the task is reaped its output file is read (at most
//! the limit + 1 bytes: the core decides what a larger file means) and both
//! files are removed.
//!
//! When the leader has been reaped, whatever is left of its process group
//! (background processes of the command) is killed with SIGKILL and reaped
//! too: the manager is a child subreaper ([`become_subreaper`]), so orphaned
//! grandchildren become its children instead of PID 1's, which may not reap.

use crate::containment::Containment;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use pool_manager_core::{ExitStatus, KillReason, Launch, OutputFile, TaskExit, TaskOutput};
use protocol::{TaskId, UnixTime, MAX_TAIL_BYTES};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// A task could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("working directory {} does not exist or is not a directory", path.display())]
    NoCwd { path: PathBuf },
    #[error("cannot create the directory {} for task output: {error}", path.display())]
    OutputDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot open task output file {}: {error}", path.display())]
    OutputFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write the task's input file {}: {error}", path.display())]
    InputFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot start /bin/bash: {0}")]
    Spawn(std::io::Error),
}

/// A child ended (reaped).
#[derive(Debug)]
pub struct Ended {
    pub task_id: TaskId,
    pub exit: TaskExit,
}

/// The handle the shell keeps for a running task.
#[derive(Debug)]
pub struct TaskHandle {
    pub pid: u32,
    kill: Option<oneshot::Sender<KillReason>>,
}

impl TaskHandle {
    /// Asks the watcher to kill the task's process group. A second call does
    /// nothing.
    pub fn kill(&mut self, reason: KillReason) {
        if let Some(sender) = self.kill.take() {
            let _ = sender.send(reason);
        }
    }
}

/// Makes this process the reaper of its orphaned descendants (Linux
/// `PR_SET_CHILD_SUBREAPER`), so that the rest of a task's process group
/// can be reaped here.
pub fn become_subreaper() {
    if let Err(error) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(%error, "cannot become a child subreaper; orphaned task processes are left to PID 1");
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// Creates the directory a task file goes in, if it is missing.
fn create_parent(path: &Path) -> Result<(), LaunchError> {
    match path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty() && !parent.is_dir())
    {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|error| LaunchError::OutputDir {
            path: parent.to_path_buf(),
            error,
        }),
        None => Ok(()),
    }
}

/// Creates (truncates) a task's stdout or stderr file, and its directory
/// if that is missing. Opened for reading too: the manager reads the tail
/// through its own copy of the descriptor once the task has ended.
fn open_output(path: &Path) -> Result<File, LaunchError> {
    let open = || {
        OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(path)
    };
    let opened = match open() {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            create_parent(path)?;
            open()
        }
        opened => opened,
    };
    opened.map_err(|error| LaunchError::OutputFile {
        path: path.to_path_buf(),
        error,
    })
}

/// A second descriptor of a task's stdout or stderr file, kept by the
/// manager to read the tail.
fn keep_copy(file: &File, path: &Path) -> Result<File, LaunchError> {
    file.try_clone().map_err(|error| LaunchError::OutputFile {
        path: path.to_path_buf(),
        error,
    })
}

/// Writes the task's input file, and makes sure the directory of its
/// output file exists and no stale output file is left there.
fn prepare_payload_files(launch: &Launch) -> Result<(), LaunchError> {
    let output = &launch.output.path;
    create_parent(output)?;
    remove_if_present(output);
    if let Some(input) = &launch.input {
        create_parent(&input.path)?;
        std::fs::write(&input.path, &input.bytes).map_err(|error| LaunchError::InputFile {
            path: input.path.clone(),
            error,
        })?;
    }
    Ok(())
}

/// Removes a task's payload file; a missing file is fine.
fn remove_if_present(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(%error, path = %path.display(), "cannot remove a task payload file");
        }
    }
}

/// Reads a task's output file: at most `max_bytes` + 1 bytes, and its size.
pub fn read_output(output: &OutputFile) -> TaskOutput {
    let read = || -> std::io::Result<TaskOutput> {
        let file = match File::open(&output.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TaskOutput::Absent)
            }
            Err(error) => return Err(error),
        };
        let size = file.metadata()?.len();
        let mut bytes = Vec::new();
        file.take(output.max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)?;
        Ok(TaskOutput::Read { bytes, size })
    };
    read().unwrap_or_else(|error| TaskOutput::Unreadable(error.to_string()))
}

/// The task's stdin: a copy of one descriptor of `/dev/null` opened once
/// (`Stdio::null` would open it again for every task).
fn dev_null() -> Stdio {
    static DEV_NULL: std::sync::OnceLock<Option<File>> = std::sync::OnceLock::new();
    DEV_NULL
        .get_or_init(|| File::open("/dev/null").ok())
        .as_ref()
        .and_then(|file| file.try_clone().ok())
        .map_or_else(Stdio::null, Stdio::from)
}

/// Starts a task. Its end is sent on `ended` once it is reaped.
pub fn spawn(
    launch: &Launch,
    kill_grace: Duration,
    ended: mpsc::UnboundedSender<Ended>,
    span: tracing::Span,
    containment: &Containment,
) -> Result<TaskHandle, LaunchError> {
    if !launch.cwd.is_dir() {
        return Err(LaunchError::NoCwd {
            path: launch.cwd.clone(),
        });
    }
    let stdout = open_output(&launch.stdout)?;
    let stdout_copy = keep_copy(&stdout, &launch.stdout)?;
    let (stderr, stderr_copy) = if launch.stderr == launch.stdout {
        (keep_copy(&stdout, &launch.stderr)?, None)
    } else {
        let stderr = open_output(&launch.stderr)?;
        let copy = keep_copy(&stderr, &launch.stderr)?;
        (stderr, Some(copy))
    };
    let mut cell = containment.cell();
    let mut command = tokio::process::Command::new("/bin/bash");
    // Nothing runs in the child before exec (no `pre_exec`), so the
    // standard library spawns with `posix_spawn`: the manager's memory is
    // never copied.
    command
        .arg("-c")
        .arg(cell.command(&launch.command).as_ref())
        .env_clear()
        .envs(&launch.env)
        .current_dir(&launch.cwd)
        .stdin(dev_null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    prepare_payload_files(launch)?;
    let input_path = launch.input.as_ref().map(|input| input.path.clone());
    let start_time = unix_now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            if let Some(path) = &input_path {
                remove_if_present(path);
            }
            return Err(LaunchError::Spawn(error));
        }
    };
    let output_file = launch.output.clone();
    let pid = child.id().unwrap_or(0);
    cell.announce(pid);
    let (kill_tx, kill_rx) = oneshot::channel();
    let task_id = launch.task_id;
    tracing::debug!(parent: &span, pid, "task started");
    let watcher = async move {
        let status = watch(&mut child, pid, kill_rx, kill_grace).await;
        let end_time = unix_now();
        let status = match status {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => ExitStatus::Code(code),
                (None, Some(signal)) => ExitStatus::Signal(signal),
                (None, None) => ExitStatus::Code(-1),
            },
            Err(error) => {
                tracing::warn!(%error, "cannot wait for the task's process");
                ExitStatus::Code(-1)
            }
        };
        // Clearing the group and the cgroup, and reading the files (which
        // may sit on a slow shared filesystem), block: one call off the
        // event loop does all of it.
        let finished = FinishedFiles {
            output: output_file,
            input: input_path,
            stdout: stdout_copy,
            stderr: stderr_copy,
        };
        let group = i32::try_from(pid).unwrap_or(0);
        let cleared = tokio::task::spawn_blocking(move || {
            let in_group = if group > 1 { clear_group(group) } else { 0 };
            let in_cgroup = cell.clear();
            (in_group, in_cgroup, finished.read())
        })
        .await;
        let (stdout_tail, stderr_tail, output) = match cleared {
            Ok((in_group, in_cgroup, read)) => {
                if in_group + in_cgroup > 0 {
                    tracing::info!(
                        n_left_in_group = in_group,
                        n_left_in_cgroup = in_cgroup,
                        "killed and reaped processes the task left behind"
                    );
                }
                read
            }
            Err(error) => {
                tracing::warn!(%error, "cannot clear the task's processes or read its files");
                (
                    Vec::new(),
                    Vec::new(),
                    TaskOutput::Unreadable(error.to_string()),
                )
            }
        };
        let exit = TaskExit {
            status,
            stdout_tail,
            stderr_tail,
            start_time,
            end_time,
            output,
        };
        tracing::debug!(?status, "task process ended");
        let _ = ended.send(Ended { task_id, exit });
    };
    tokio::spawn(watcher.instrument(span));
    Ok(TaskHandle {
        pid,
        kill: Some(kill_tx),
    })
}

/// The files of an ended task, read and removed in one blocking call.
struct FinishedFiles {
    output: OutputFile,
    input: Option<PathBuf>,
    /// The manager's own descriptors of the stdout and stderr files
    /// (`None`: stderr went to the stdout file).
    stdout: File,
    stderr: Option<File>,
}

impl FinishedFiles {
    /// The stdout and stderr tails and the output file; removes the input
    /// and output files.
    fn read(self) -> (Vec<u8>, Vec<u8>, TaskOutput) {
        let output = read_output(&self.output);
        // An absent output file needs no removal.
        if output != TaskOutput::Absent {
            remove_if_present(&self.output.path);
        }
        if let Some(path) = &self.input {
            remove_if_present(path);
        }
        let stdout_tail = tail_of(&self.stdout);
        let stderr_tail = self
            .stderr
            .as_ref()
            .map_or_else(|| stdout_tail.clone(), tail_of);
        (stdout_tail, stderr_tail, output)
    }
}

async fn watch(
    child: &mut tokio::process::Child,
    pid: u32,
    kill_rx: oneshot::Receiver<KillReason>,
    kill_grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    let group = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
    tokio::select! {
        biased;
        status = child.wait() => return status,
        reason = kill_rx => {
            if let Ok(reason) = reason {
                tracing::info!(reason = reason.as_str(), pid, "killing the task's process group");
                signal_group(group, Signal::SIGTERM);
            } else {
                // The shell dropped the handle: just wait.
                return child.wait().await;
            }
        }
    }
    tokio::select! {
        biased;
        status = child.wait() => status,
        () = tokio::time::sleep(kill_grace) => {
            // Not reaped yet, so the group id is still ours.
            tracing::warn!(pid, grace_s = kill_grace.as_secs_f64(), "task still alive after SIGTERM; sending SIGKILL to its process group");
            signal_group(group, Signal::SIGKILL);
            child.wait().await
        }
    }
}

fn signal_group(group: Pid, signal: Signal) {
    if group.as_raw() <= 1 {
        return;
    }
    if let Err(error) = killpg(group, signal) {
        if error != nix::errno::Errno::ESRCH {
            tracing::warn!(%error, group = group.as_raw(), ?signal, "cannot signal the task's process group");
        }
    }
}

/// After the leader of `group` was reaped: SIGKILL whatever is left of the
/// group and reap those of them that are our children. Returns how many
/// were reaped.
fn clear_group(group: i32) -> usize {
    use nix::sys::wait::{waitpid, WaitStatus};
    signal_group(Pid::from_raw(group), Signal::SIGKILL);
    let mut n_reaped = 0;
    loop {
        match waitpid(Pid::from_raw(-group), None) {
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => n_reaped += 1,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return n_reaped,
        }
    }
}

/// The last [`MAX_TAIL_BYTES`] of a file; empty if it cannot be read.
pub fn read_tail(path: &Path) -> Vec<u8> {
    File::open(path)
        .map(|file| tail_of(&file))
        .unwrap_or_default()
}

/// The last [`MAX_TAIL_BYTES`] of an open file (read at offsets: the
/// descriptor's own position is left alone); empty if it cannot be read.
fn tail_of(file: &File) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let read = || -> std::io::Result<Vec<u8>> {
        let length = file.metadata()?.len();
        let limit = MAX_TAIL_BYTES as u64;
        let start = length.saturating_sub(limit);
        let mut bytes = vec![0; usize::try_from(length - start).unwrap_or(0)];
        let mut filled = 0;
        while filled < bytes.len() {
            match file.read_at(&mut bytes[filled..], start + filled as u64)? {
                0 => break,
                n => filled += n,
            }
        }
        bytes.truncate(filled);
        Ok(bytes)
    };
    read().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The core names signals without `nix`; its table must say what `nix`
    /// says on this platform.
    #[test]
    fn the_core_names_signals_as_nix_does() {
        for number in -1..=64 {
            let expected = Signal::try_from(number)
                .map(|signal| signal.as_str())
                .unwrap_or("unknown signal");
            assert_eq!(
                pool_manager_core::signal_name(number),
                expected,
                "signal {number}"
            );
        }
    }

    fn launch(dir: &Path, command: &str) -> Launch {
        Launch {
            task_id: TaskId::from_u128(1),
            command: command.into(),
            env: [("ONLY".to_string(), "this".to_string())]
                .into_iter()
                .collect(),
            cwd: dir.to_path_buf(),
            stdout: dir.join("out/t.stdout"),
            stderr: dir.join("out/t.stderr"),
            nodes: vec!["n1".into()],
            input: None,
            output: OutputFile {
                path: dir.join("out/t.output"),
                max_bytes: 1024,
            },
        }
    }

    /// Starts a task contained by its process group only, as the tests
    /// here need no cgroup.
    fn start(
        task: &Launch,
        kill_grace: Duration,
        ended: mpsc::UnboundedSender<Ended>,
    ) -> Result<TaskHandle, LaunchError> {
        spawn(
            task,
            kill_grace,
            ended,
            tracing::Span::none(),
            &Containment::process_groups(),
        )
    }

    async fn next(ended: &mut mpsc::UnboundedReceiver<Ended>) -> Ended {
        tokio::time::timeout(Duration::from_secs(20), ended.recv())
            .await
            .expect("the task ends within 20 s")
            .expect("channel open")
    }

    /// Starts `task` (1 s kill grace) and waits for its end.
    async fn run_to_end(task: &Launch) -> Ended {
        let (sender, mut ended) = mpsc::unbounded_channel();
        start(task, Duration::from_secs(1), sender).expect("spawn");
        next(&mut ended).await
    }

    #[tokio::test]
    async fn runs_with_exactly_the_given_environment() {
        let temp = tempfile::tempdir().expect("tempdir");
        let task = launch(temp.path(), "env | sort; pwd; echo oops >&2; exit 3");
        let end = run_to_end(&task).await;
        assert_eq!(end.exit.status, ExitStatus::Code(3));
        let stdout = String::from_utf8_lossy(&end.exit.stdout_tail).into_owned();
        assert!(stdout.contains("ONLY=this\n"), "{stdout}");
        assert!(
            !stdout.contains("HOME="),
            "environment is cleared: {stdout}"
        );
        assert!(
            stdout.contains(&temp.path().display().to_string()),
            "{stdout}"
        );
        assert_eq!(end.exit.stderr_tail, b"oops\n");
        assert!(end.exit.end_time >= end.exit.start_time);
    }

    #[tokio::test]
    async fn tails_are_bounded() {
        let temp = tempfile::tempdir().expect("tempdir");
        let task = launch(temp.path(), "head -c 100000 /dev/zero; printf END");
        let end = run_to_end(&task).await;
        assert_eq!(end.exit.stdout_tail.len(), MAX_TAIL_BYTES);
        assert!(end.exit.stdout_tail.ends_with(b"END"));
    }

    #[tokio::test]
    async fn input_is_written_before_and_output_read_after_then_both_removed() {
        let temp = tempfile::tempdir().expect("tempdir");
        let mut task = launch(temp.path(), "od -An -tx1 \"$IN\" > \"$OUT\"");
        let input_path = temp.path().join("tasks/t.input");
        task.input = Some(pool_manager_core::TaskInput {
            path: input_path.clone(),
            bytes: vec![0x80, 0xff, 0x00],
        });
        task.env
            .insert("IN".into(), input_path.display().to_string());
        task.env
            .insert("OUT".into(), task.output.path.display().to_string());
        let end = run_to_end(&task).await;
        let expected = b" 80 ff 00\n".to_vec();
        assert_eq!(
            end.exit.output,
            TaskOutput::Read {
                size: expected.len() as u64,
                bytes: expected,
            }
        );
        assert!(!input_path.exists(), "the input file is removed");
        assert!(!task.output.path.exists(), "the output file is removed");
    }

    #[test]
    fn output_is_read_up_to_the_limit_plus_one_byte() {
        let temp = tempfile::tempdir().expect("tempdir");
        let output = OutputFile {
            path: temp.path().join("t.output"),
            max_bytes: 10,
        };
        assert_eq!(read_output(&output), TaskOutput::Absent);
        std::fs::write(&output.path, vec![7u8; 5000]).expect("write");
        assert_eq!(
            read_output(&output),
            TaskOutput::Read {
                bytes: vec![7u8; 11],
                size: 5000,
            }
        );
        std::fs::remove_file(&output.path).expect("remove");
        std::fs::create_dir(&output.path).expect("mkdir");
        assert!(matches!(read_output(&output), TaskOutput::Unreadable(_)));
    }

    #[test]
    fn launch_failures_name_the_path() {
        let temp = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = runtime.enter();
        let (sender, _ended) = mpsc::unbounded_channel();
        let mut task = launch(temp.path(), "true");
        task.cwd = temp.path().join("missing");
        let error = start(&task, Duration::ZERO, sender.clone()).expect_err("no cwd");
        assert!(error.to_string().contains("missing"), "{error}");
        std::fs::write(temp.path().join("file"), b"").expect("write");
        let mut task = launch(temp.path(), "true");
        task.stdout = temp.path().join("file/under/a/file");
        let error = start(&task, Duration::ZERO, sender).expect_err("no dir");
        assert!(error.to_string().contains("file/under/a"), "{error}");
        let _ = BTreeMap::<String, String>::new();
    }

    #[tokio::test]
    async fn kill_terminates_the_whole_group_then_escalates() {
        become_subreaper();
        let temp = tempfile::tempdir().expect("tempdir");
        let (sender, mut ended) = mpsc::unbounded_channel();
        // The group ignores SIGTERM, so only the SIGKILL after the grace ends it.
        let task = launch(temp.path(), "trap '' TERM; sleep 1000 & echo started; wait");
        let mut handle = start(&task, Duration::from_millis(200), sender).expect("spawn");
        let group = Pid::from_raw(i32::try_from(handle.pid).expect("pid"));
        // Wait (bounded) until bash has started its background sleep.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while read_tail(&task.stdout).is_empty() {
            assert!(std::time::Instant::now() < deadline, "task did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        handle.kill(KillReason::Cancelled);
        let end = next(&mut ended).await;
        assert_eq!(end.exit.status, ExitStatus::Signal(9));
        assert_eq!(
            killpg(group, None),
            Err(nix::errno::Errno::ESRCH),
            "the group is gone"
        );
    }
}
