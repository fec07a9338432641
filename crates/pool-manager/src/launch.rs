//! The only module that starts or signals task processes.
//!
//! A task runs as `/bin/bash -c COMMAND` with a cleared environment plus the
//! one the core composed, in its working directory, stdin from /dev/null,
//! stdout and stderr to files, in a process group of its own
//! ([`spawn`]). One thread, the launch thread, owns every task process
//! from its spawn until it is reaped, so a pid or process group id cannot
//! be reused while it may still be signalled: the shell hands it what to
//! start and what to kill ([`Launcher`], [`TaskHandle`]) and gets each
//! task's end (or failure to start) back on a channel ([`Event`]). The
//! thread waits on one epoll set holding a pidfd per child (or, on a kernel
//! without pidfds, polls its children every 10 ms); for each ended child
//! it reaps it, clears its process group and cgroup, reads the output tails
//! and the payload file, and sends the end. It kills on request (SIGTERM to
//! the group, then SIGKILL to the group after the grace period if the
//! leader is still alive).
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
//! A task that left processes behind (in its group or its cgroup) is cleared
//! on a thread of its own, so that waiting for them never holds up the ends
//! of other tasks.

#[cfg(target_arch = "x86_64")]
mod clone_into;
mod spawn;

use crate::containment::{Containment, TaskCell};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use pool_manager_core::{ExitStatus, KillReason, Launch, OutputFile, TaskExit, TaskOutput};
use protocol::{TaskId, UnixTime, MAX_TAIL_BYTES};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// A task could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot enter the working directory {}: {error}", path.display())]
    NoCwd {
        path: PathBuf,
        error: std::io::Error,
    },
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
    /// Its pid, which was also its process group's id.
    pub pid: u32,
    pub exit: TaskExit,
}

/// A task could not be started.
#[derive(Debug)]
pub struct Failed {
    pub task_id: TaskId,
    pub error: LaunchError,
}

/// What the launch thread reports (in batches: the ends seen in one turn).
#[derive(Debug)]
pub enum Event {
    Ended(Ended),
    Failed(Failed),
}

/// What the shell asks of the launch thread.
enum Request {
    Start(Box<Launch>, tracing::Span),
    Kill(TaskId, KillReason),
    Stop,
}

/// The requests not yet taken by the launch thread, and the eventfd that
/// wakes it.
struct Requests {
    queue: Mutex<Vec<Request>>,
    wake: EventFd,
}

impl Requests {
    /// Queues a request; wakes the thread when the queue was empty (the
    /// thread takes all of it each time it is woken).
    fn push(&self, request: Request) {
        let Ok(mut queue) = self.queue.lock() else {
            return;
        };
        let was_empty = queue.is_empty();
        queue.push(request);
        drop(queue);
        if was_empty {
            if let Err(error) = self.wake.write(1) {
                tracing::error!(%error, "cannot wake the launch thread");
            }
        }
    }

    fn take(&self) -> Vec<Request> {
        // Reset the eventfd before taking: a request queued after this
        // wakes the thread again.
        let _ = self.wake.read();
        self.queue
            .lock()
            .map(|mut queue| std::mem::take(&mut *queue))
            .unwrap_or_default()
    }
}

/// The launch thread, seen from the shell.
pub struct Launcher {
    requests: Arc<Requests>,
    thread: Option<std::thread::JoinHandle<Containment>>,
}

/// The handle the shell keeps for a running task.
pub struct TaskHandle {
    task_id: TaskId,
    requests: Arc<Requests>,
    killed: bool,
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Launcher")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl std::fmt::Debug for TaskHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TaskHandle")
            .field("task_id", &self.task_id)
            .field("killed", &self.killed)
            .finish()
    }
}

impl TaskHandle {
    /// Asks the launch thread to kill the task's process group. A second
    /// call does nothing.
    pub fn kill(&mut self, reason: KillReason) {
        if !self.killed {
            self.killed = true;
            self.requests.push(Request::Kill(self.task_id, reason));
        }
    }
}

impl Launcher {
    /// Starts the launch thread; tasks get `containment`, and a killed task
    /// `kill_grace` between SIGTERM and SIGKILL. Ends and failures go to
    /// `events`.
    pub fn start(
        containment: Containment,
        kill_grace: Duration,
        events: mpsc::UnboundedSender<Vec<Event>>,
    ) -> std::io::Result<Self> {
        Self::start_with(containment, kill_grace, events, Fallbacks::default())
    }

    /// [`Launcher::start`], with the `fallbacks` forced (for tests).
    fn start_with(
        containment: Containment,
        kill_grace: Duration,
        events: mpsc::UnboundedSender<Vec<Event>>,
        fallbacks: Fallbacks,
    ) -> std::io::Result<Self> {
        let requests = Arc::new(Requests {
            queue: Mutex::new(Vec::new()),
            wake: EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?,
        });
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(&requests.wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        let thread_requests = Arc::clone(&requests);
        let thread = std::thread::Builder::new()
            .name("task-launch".to_owned())
            .spawn(move || {
                LaunchThread {
                    epoll,
                    requests: thread_requests,
                    spawner: spawn::Spawner::for_this_thread(fallbacks.std_command),
                    no_pidfd: fallbacks.no_pidfd,
                    containment,
                    kill_grace,
                    events,
                    children: HashMap::new(),
                    pids: HashMap::new(),
                    polled: Vec::new(),
                    kills: Vec::new(),
                    outbox: Vec::new(),
                }
                .run()
            })?;
        Ok(Self {
            requests,
            thread: Some(thread),
        })
    }

    /// Starts a task (on the launch thread): its end, or its failure to
    /// start, comes as an [`Event`].
    pub fn launch(&self, launch: Launch, span: tracing::Span) -> TaskHandle {
        let task_id = launch.task_id;
        self.requests.push(Request::Start(Box::new(launch), span));
        TaskHandle {
            task_id,
            requests: Arc::clone(&self.requests),
            killed: false,
        }
    }

    /// Stops the launch thread (once every task has ended) and gives back
    /// the containment. Blocking.
    pub fn finish(mut self) -> Option<Containment> {
        self.stop()
    }

    fn stop(&mut self) -> Option<Containment> {
        let thread = self.thread.take()?;
        self.requests.push(Request::Stop);
        thread.join().ok()
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// What the launch thread does where the system lacks something, forced.
#[derive(Clone, Copy, Debug, Default)]
struct Fallbacks {
    /// Start tasks with `std::process::Command`, as where the thread
    /// cannot have a working directory of its own.
    std_command: bool,
    /// Poll children, as where the kernel has no pidfds.
    no_pidfd: bool,
}

/// The epoll data of the requests' eventfd (children: their pid).
const WAKE: u64 = u64::MAX;

/// How often children without a pidfd are polled.
const POLL_PERIOD: Duration = Duration::from_millis(10);

/// A running task's process, owned by the launch thread.
struct Child {
    task_id: TaskId,
    /// Readable once the child has ended; `None` where the kernel has no
    /// pidfds (the child is polled).
    pidfd: Option<OwnedFd>,
    cell: TaskCell,
    span: tracing::Span,
    start_time: UnixTime,
    files: FinishedFiles,
}

struct LaunchThread {
    epoll: Epoll,
    requests: Arc<Requests>,
    spawner: spawn::Spawner,
    containment: Containment,
    kill_grace: Duration,
    events: mpsc::UnboundedSender<Vec<Event>>,
    /// By pid.
    children: HashMap<i32, Child>,
    pids: HashMap<TaskId, i32>,
    /// Children without a pidfd.
    polled: Vec<i32>,
    /// Never use pidfds (for tests).
    no_pidfd: bool,
    /// When to SIGKILL the group of a child sent SIGTERM.
    kills: Vec<(Instant, i32)>,
    /// What this turn has to report: sent as one batch at its end, so that
    /// the shell takes the tasks that end together in one turn.
    outbox: Vec<Event>,
}

impl LaunchThread {
    fn run(mut self) -> Containment {
        let mut ready = [EpollEvent::empty(); 64];
        loop {
            let n_ready = match self.epoll.wait(&mut ready, self.timeout()) {
                Ok(n_ready) => n_ready,
                Err(Errno::EINTR) => 0,
                Err(error) => {
                    tracing::error!(%error, "the launch thread cannot wait for its children");
                    std::thread::sleep(POLL_PERIOD);
                    0
                }
            };
            let mut stop = false;
            for event in &ready[..n_ready] {
                if event.data() == WAKE {
                    for request in self.requests.take() {
                        match request {
                            Request::Start(launch, span) => self.start(*launch, span),
                            Request::Kill(task_id, reason) => self.kill(task_id, reason),
                            Request::Stop => stop = true,
                        }
                    }
                } else if let Ok(pid) = i32::try_from(event.data()) {
                    self.reap(pid);
                }
            }
            if !self.polled.is_empty() {
                for pid in self.polled.clone() {
                    self.reap(pid);
                }
            }
            self.escalate_kills();
            // The turn's "+PID" and "-PID" lines, in one write.
            self.containment.tell_guardian();
            if !self.outbox.is_empty() {
                let _ = self.events.send(std::mem::take(&mut self.outbox));
            }
            if stop {
                return self.containment;
            }
        }
    }

    /// Until the next SIGKILL is due, or the next poll.
    fn timeout(&self) -> EpollTimeout {
        let now = Instant::now();
        let mut wait = self
            .kills
            .iter()
            .map(|(at, _)| at.saturating_duration_since(now))
            .min();
        if !self.polled.is_empty() {
            wait = Some(wait.map_or(POLL_PERIOD, |wait| wait.min(POLL_PERIOD)));
        }
        wait.map_or(EpollTimeout::NONE, |wait| {
            // Rounded up, so that the deadline has passed on waking.
            let millis = wait.as_micros().div_ceil(1000);
            EpollTimeout::try_from(i32::try_from(millis).unwrap_or(i32::MAX))
                .unwrap_or(EpollTimeout::MAX)
        })
    }

    fn start(&mut self, launch: Launch, span: tracing::Span) {
        let task_id = launch.task_id;
        match self.spawn(launch, &span) {
            Ok(()) => {}
            Err(error) => {
                self.outbox.push(Event::Failed(Failed { task_id, error }));
            }
        }
    }

    fn spawn(&mut self, launch: Launch, span: &tracing::Span) -> Result<(), LaunchError> {
        let mut cell = self.containment.cell();
        prepare_payload_files(&launch)?;
        let input = launch.input.as_ref().map(|input| input.path.clone());
        let start_time = unix_now();
        let pid = match self.spawner.spawn(&launch, &cell) {
            Ok(pid) => pid,
            Err(error) => {
                if let Some(path) = &input {
                    remove_if_present(path);
                }
                return Err(error);
            }
        };
        cell.announce(pid.unsigned_abs());
        span.in_scope(|| tracing::debug!(pid, nodes = ?launch.nodes, command = %launch.command, "task launched"));
        let watched = if self.no_pidfd {
            Err(std::io::Error::other("pidfds are not used"))
        } else {
            watch(&self.epoll, pid)
        };
        let pidfd = match watched {
            Ok(pidfd) => Some(pidfd),
            Err(error) => {
                if self.polled.is_empty() {
                    tracing::debug!(%error, "no pidfd for a task process; polling it");
                }
                self.polled.push(pid);
                None
            }
        };
        let same_file = launch.stderr == launch.stdout;
        let files = FinishedFiles {
            output: launch.output,
            input,
            stdout: launch.stdout,
            stderr: (!same_file).then_some(launch.stderr),
        };
        self.pids.insert(launch.task_id, pid);
        self.children.insert(
            pid,
            Child {
                task_id: launch.task_id,
                pidfd,
                cell,
                span: span.clone(),
                start_time,
                files,
            },
        );
        Ok(())
    }

    fn kill(&mut self, task_id: TaskId, reason: KillReason) {
        // Not running: it failed to start, or has been reaped already.
        let Some(&pid) = self.pids.get(&task_id) else {
            return;
        };
        if let Some(child) = self.children.get(&pid) {
            child.span.in_scope(|| {
                tracing::info!(
                    reason = reason.as_str(),
                    pid,
                    "killing the task's process group"
                )
            });
        }
        signal_group(pid, Signal::SIGTERM);
        self.kills.push((Instant::now() + self.kill_grace, pid));
    }

    /// SIGKILLs the groups whose grace period has passed (their leader is
    /// not reaped yet, so the group id is still ours).
    fn escalate_kills(&mut self) {
        if self.kills.is_empty() {
            return;
        }
        let now = Instant::now();
        let children = &self.children;
        let grace = self.kill_grace;
        self.kills.retain(|&(at, pid)| {
            let Some(child) = children.get(&pid) else {
                return false;
            };
            if at > now {
                return true;
            }
            child.span.in_scope(|| {
                tracing::warn!(
                    pid,
                    grace_s = grace.as_secs_f64(),
                    "task still alive after SIGTERM; sending SIGKILL to its process group"
                )
            });
            signal_group(pid, Signal::SIGKILL);
            false
        });
    }

    /// Reaps `pid` if it has ended, then clears after it and reports it.
    fn reap(&mut self, pid: i32) {
        // An event can still come for a child reaped earlier in the same
        // turn: its pid is no longer ours to wait for.
        if !self.children.contains_key(&pid) {
            return;
        }
        let status = match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => ExitStatus::Code(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => ExitStatus::Signal(signal as i32),
            Ok(_) | Err(Errno::EINTR) => return,
            Err(error) => {
                tracing::warn!(%error, pid, "cannot wait for the task's process");
                ExitStatus::Code(-1)
            }
        };
        let end_time = unix_now();
        let Some(child) = self.children.remove(&pid) else {
            return;
        };
        self.pids.remove(&child.task_id);
        self.polled.retain(|polled| *polled != pid);
        self.kills.retain(|(_, killed)| *killed != pid);
        // Out of the epoll set before it is closed: a child being spawned
        // holds every descriptor until its exec closes them, and while it
        // does, a closed pidfd would stay in the set.
        if let Some(pidfd) = child.pidfd {
            let _ = self.epoll.delete(&pidfd);
        }
        let ending = Ending {
            task_id: child.task_id,
            pid,
            status,
            start_time: child.start_time,
            end_time,
            files: child.files,
            span: child.span,
        };
        // Most tasks leave nothing behind: then nothing here blocks.
        let cell = if group_is_gone(pid) {
            match child.cell.clear_if_empty() {
                Ok(()) => return self.outbox.push(ending.report(0, 0)),
                Err(cell) => cell,
            }
        } else {
            child.cell
        };
        // The slow path: on a thread of its own (here if none can start).
        let work = Arc::new(Mutex::new(Some((cell, ending, self.events.clone()))));
        type Work = (TaskCell, Ending, mpsc::UnboundedSender<Vec<Event>>);
        let clear = move |work: &Mutex<Option<Work>>| {
            let taken = work.lock().ok().and_then(|mut work| work.take());
            if let Some((cell, ending, events)) = taken {
                let in_group = clear_group(pid);
                let in_cgroup = cell.clear();
                let _ = events.send(vec![ending.report(in_group, in_cgroup)]);
            }
        };
        let on_thread = Arc::clone(&work);
        if let Err(error) = std::thread::Builder::new()
            .name("task-clear".to_owned())
            .spawn(move || clear(&on_thread))
        {
            tracing::warn!(%error, "cannot start a thread to clear a task's processes; clearing here");
            clear(&work);
        }
    }
}

/// A reaped task, to be reported once cleared after.
struct Ending {
    task_id: TaskId,
    pid: i32,
    status: ExitStatus,
    start_time: UnixTime,
    end_time: UnixTime,
    files: FinishedFiles,
    span: tracing::Span,
}

impl Ending {
    /// Reads the task's files; gives its end. `in_group` and `in_cgroup`
    /// processes it left were killed.
    fn report(self, in_group: usize, in_cgroup: usize) -> Event {
        let _entered = self.span.enter();
        if in_group + in_cgroup > 0 {
            tracing::info!(
                n_left_in_group = in_group,
                n_left_in_cgroup = in_cgroup,
                "killed and reaped processes the task left behind"
            );
        }
        let (stdout_tail, stderr_tail, output) = self.files.read();
        tracing::debug!(status = ?self.status, "task process ended");
        let exit = TaskExit {
            status: self.status,
            stdout_tail,
            stderr_tail,
            start_time: self.start_time,
            end_time: self.end_time,
            output,
        };
        Event::Ended(Ended {
            task_id: self.task_id,
            pid: self.pid.unsigned_abs(),
            exit,
        })
    }
}

/// A pidfd for the child `pid`, in the epoll set (its data: the pid).
fn watch(epoll: &Epoll, pid: i32) -> std::io::Result<OwnedFd> {
    let id = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| std::io::Error::other("pid 0 from the spawn"))?;
    let pidfd = rustix::process::pidfd_open(id, rustix::process::PidfdFlags::empty())?;
    let data = u64::try_from(pid).map_err(std::io::Error::other)?;
    epoll.add(&pidfd, EpollEvent::new(EpollFlags::EPOLLIN, data))?;
    Ok(pidfd)
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

/// The files of an ended task, read and removed once it has ended.
struct FinishedFiles {
    output: OutputFile,
    input: Option<PathBuf>,
    stdout: PathBuf,
    /// `None`: stderr went to the stdout file.
    stderr: Option<PathBuf>,
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
        let stdout_tail = read_tail(&self.stdout);
        let stderr_tail = self
            .stderr
            .as_deref()
            .map_or_else(|| stdout_tail.clone(), read_tail);
        (stdout_tail, stderr_tail, output)
    }
}

fn signal_group(group: i32, signal: Signal) {
    if group <= 1 {
        return;
    }
    if let Err(error) = killpg(Pid::from_raw(group), signal) {
        if error != Errno::ESRCH {
            tracing::warn!(%error, group, ?signal, "cannot signal the task's process group");
        }
    }
}

/// After the leader of `group` was reaped: whether no process is left in
/// its group (else those left have been sent SIGKILL).
fn group_is_gone(group: i32) -> bool {
    group <= 1 || killpg(Pid::from_raw(group), Signal::SIGKILL) == Err(Errno::ESRCH)
}

/// After the leader of `group` was reaped: SIGKILL whatever is left of the
/// group and reap those of them that are our children. Returns how many
/// were reaped.
fn clear_group(group: i32) -> usize {
    if group <= 1 {
        return 0;
    }
    signal_group(group, Signal::SIGKILL);
    let mut n_reaped = 0;
    loop {
        match waitpid(Pid::from_raw(-group), None) {
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => n_reaped += 1,
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(_) => return n_reaped,
        }
    }
}

/// The last [`MAX_TAIL_BYTES`] of a file; empty if it cannot be read.
pub fn read_tail(path: &Path) -> Vec<u8> {
    // Most tasks write nothing: one stat says so, without an open and a
    // close (the task's processes are gone; nothing writes it any more).
    if std::fs::metadata(path).is_ok_and(|meta| meta.len() == 0) {
        return Vec::new();
    }
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
mod tests;
