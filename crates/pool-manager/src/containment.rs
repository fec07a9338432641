//! Task containment: that no process of a task outlives its task or its
//! manager, `setsid` descendants and double-fork daemons included. Owned
//! by [`crate::launch`]; with it, the only code that signals processes.
//!
//! Tasks are started with `posix_spawn` (no code runs in the child before
//! exec, so the manager's address space is never copied: a fork of the
//! manager cost more CPU than all the rest of a task's handling).
//! Everything that must happen in the child is done otherwise:
//!
//! - **cgroup v2**, when the manager can create a cgroup below its own (the
//!   cgroup2 mount is writable here, or delegated, as inside a Slurm job's
//!   cgroup): a directory `rhtex-<pid>` below the manager's cgroup, and in
//!   it one cgroup per running task. The task's shell enters it as its
//!   first act (`echo $$ > …/cgroup.procs || exit 125`, before any of the
//!   task's command runs). When the leader has been reaped, a cgroup with
//!   no process left (`cgroup.procs` empty) goes back to a pool for the next
//!   task (creating and removing a cgroup per task cost more than the rest
//!   of its clearing); otherwise everything left in it is killed
//!   (`cgroup.kill`, or SIGKILL to each pid of `cgroup.procs` where the
//!   kernel lacks it), reaped, and the cgroup removed.
//! - **process groups** otherwise: each task in a process group of its
//!   own, killed as a whole when the leader ends (in `launch`), and at the
//!   manager's exit a sweep that kills and reaps every process re-parented
//!   to the manager (it is a child subreaper). A task's `setsid`
//!   descendants are only swept at the manager's exit there, and survive a
//!   manager killed outright.
//!
//! In both, a **guardian** process (this binary again, started with
//! [`GUARDIAN_FLAG`], in a process group of its own) outlives the manager:
//! it reads "+PID" when a task starts and "-PID" once it has ended and
//! been cleared, on a pipe whose write end only the manager holds (the
//! launch thread writes the lines of one turn, its spawns and its ends, in
//! one write at the end of the turn, before it waits again). When the
//! manager ends, however it ends (SIGKILL included), the pipe closes and
//! the guardian SIGKILLs each task still listed (its leader and its
//! process group), then the whole `rhtex-<pid>` cgroup subtree, and removes
//! it. (A manager killed between a task's spawn and the end of that turn,
//! a few milliseconds at most, leaves that task's leader running in the
//! process-group mode.)

mod guardian;

pub use guardian::guardian_main;
use guardian::{start_guardian, Guardian, GuardianInput};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first argument that makes the `pool-manager` binary a guardian
/// (`pool-manager --rhtex-guardian [CGROUP]`); not a user flag.
pub const GUARDIAN_FLAG: &str = "--rhtex-guardian";

/// How long the processes of a killed cgroup get to be gone and reaped.
const CLEAR_WAIT: Duration = Duration::from_secs(10);

/// The exit code of a task whose shell could not enter its cgroup.
pub const NO_CGROUP_EXIT: i32 = 125;

/// The containment this manager gives its tasks.
#[derive(Debug)]
pub struct Containment {
    /// The task cgroups in `rhtex-<pid>` below the manager's own cgroup,
    /// when tasks get one.
    cgroups: Option<Arc<CellPool>>,
    guardian: Option<Guardian>,
}

/// The task cgroups: `base` (`rhtex-<pid>`) and, in it, the empty
/// cgroups no task is in, for the next tasks.
#[derive(Debug)]
struct CellPool {
    base: PathBuf,
    free: Mutex<Vec<Cgroup>>,
    n_made: std::sync::atomic::AtomicU64,
}

/// One task cgroup, made once and reused: its directory, the start of the
/// command that enters it (composed once), and its `cgroup.procs` kept
/// open once read (read again from offset 0 for each task: one `pread`
/// instead of an open, a read and a close).
#[derive(Debug)]
struct Cgroup {
    dir: PathBuf,
    /// `echo $$ > '…/cgroup.procs' || exit 125; `
    enter: String,
    procs: Option<File>,
    /// The directory opened with `O_PATH`, for starting a task in it
    /// (`launch/clone_into.rs`); `None` if it could not be opened.
    fd: Option<OwnedFd>,
}

impl Cgroup {
    fn new(dir: PathBuf) -> Self {
        let procs = dir.join("cgroup.procs");
        let quoted = procs.to_string_lossy().replace('\'', r"'\''");
        let fd = nix::fcntl::open(
            &dir,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok();
        Self {
            enter: format!("echo $$ > '{quoted}' || exit {NO_CGROUP_EXIT}; "),
            dir,
            procs: None,
            fd,
        }
    }

    /// Whether no process is in the cgroup (an unreadable one counts as
    /// not empty).
    fn holds_no_process(&mut self) -> bool {
        use std::os::unix::fs::FileExt;
        if self.procs.is_none() {
            self.procs = File::open(self.dir.join("cgroup.procs")).ok();
        }
        let Some(procs) = &self.procs else {
            return false;
        };
        let mut buffer = [0u8; 16];
        loop {
            match procs.read_at(&mut buffer, 0) {
                Ok(n) => return n == 0,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.procs = None;
                    return false;
                }
            }
        }
    }
}

impl CellPool {
    fn new(base: PathBuf) -> Self {
        Self {
            base,
            free: Mutex::new(Vec::new()),
            n_made: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// An empty cgroup: one from the pool, or a new one.
    fn take(&self) -> std::io::Result<Cgroup> {
        if let Some(dir) = self.free.lock().ok().and_then(|mut free| free.pop()) {
            return Ok(dir);
        }
        let number = self
            .n_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.base.join(format!("cell-{number}"));
        std::fs::create_dir(&dir).map(|()| Cgroup::new(dir))
    }

    /// Gives back a cgroup with no process in it.
    fn put_back(&self, cgroup: Cgroup) {
        match self.free.lock() {
            Ok(mut free) => free.push(cgroup),
            Err(_) => {
                let _ = std::fs::remove_dir(&cgroup.dir);
            }
        }
    }
}

/// What one task is contained in: its cgroup, when there is one, and the
/// guardian that knows it.
#[derive(Debug)]
pub struct TaskCell {
    cgroup: Option<Cgroup>,
    /// Where the cgroup goes back when the task leaves it empty.
    pool: Option<Arc<CellPool>>,
    guardian: Option<Arc<GuardianInput>>,
    /// The leader, once announced to the guardian.
    leader: Option<u32>,
}

impl Containment {
    /// Process groups only (no cgroups, no guardian): for tests, and where
    /// no cgroup can be created.
    pub fn process_groups() -> Self {
        Self {
            cgroups: None,
            guardian: None,
        }
    }

    /// A cgroup per task if `cgroups` and this manager can create cgroups
    /// below its own, else process groups; a guardian in both. Logs which.
    pub fn detect(cgroups: bool) -> Self {
        let base = if cgroups {
            create_base()
        } else {
            Err("--no-cgroups".to_owned())
        };
        let guardian = match start_guardian(base.as_ref().ok()) {
            Ok(guardian) => Some(guardian),
            Err(error) => {
                tracing::warn!(%error, "cannot start the task guardian; a manager killed outright may leave task processes behind");
                None
            }
        };
        match base {
            Ok(base) => {
                tracing::info!(
                    containment = "cgroup",
                    cgroup = %base.display(),
                    guardian = guardian.is_some(),
                    "task containment: a cgroup v2 per task (killed as a whole); a guardian kills what is left if the manager dies"
                );
                Self {
                    cgroups: Some(Arc::new(CellPool::new(base))),
                    guardian,
                }
            }
            Err(why) => {
                tracing::info!(
                    containment = "process-group",
                    reason = %why,
                    guardian = guardian.is_some(),
                    "task containment: a process group per task, orphans swept at exit; a guardian kills task leaders and groups if the manager dies"
                );
                Self {
                    cgroups: None,
                    guardian,
                }
            }
        }
    }

    /// Whether tasks get a cgroup each.
    pub fn uses_cgroups(&self) -> bool {
        self.cgroups.is_some()
    }

    /// The cell of a task about to start: an empty cgroup, from the pool
    /// or created now (a task whose cgroup cannot be created runs in its
    /// process group only).
    pub fn cell(&self) -> TaskCell {
        let guardian = self
            .guardian
            .as_ref()
            .map(|guardian| Arc::clone(&guardian.input));
        let cgroup = self.cgroups.as_ref().and_then(|pool| match pool.take() {
            Ok(cgroup) => Some(cgroup),
            Err(error) => {
                tracing::warn!(%error, cgroup = %pool.base.display(), "cannot create a cgroup for the task; it runs in its process group only");
                None
            }
        });
        TaskCell {
            pool: cgroup.as_ref().and(self.cgroups.clone()),
            cgroup,
            guardian,
            leader: None,
        }
    }

    /// Writes to the guardian, in one write, what the cells queued since
    /// the last call ([`TaskCell::announce`], [`TaskCell::clear_if_empty`]):
    /// the launch thread calls it at the end of each turn. Never blocks.
    pub fn tell_guardian(&self) {
        if let Some(guardian) = &self.guardian {
            guardian.input.flush();
        }
    }

    /// At the manager's exit, once its tasks have ended: kills and reaps
    /// whatever is left of them, then lets the guardian remove the cgroups.
    /// Returns how many processes were killed.
    pub fn finish(mut self) -> usize {
        let guardian_pid = self.guardian.as_ref().map(|guardian| guardian.child.id());
        if let Some(pool) = &self.cgroups {
            kill_cgroup(&pool.base);
        }
        let n_killed = sweep_orphans(guardian_pid);
        if let Some(mut guardian) = self.guardian.take() {
            guardian.input.close();
            match guardian.child.wait() {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    tracing::warn!(%status, "the task guardian could not remove every task cgroup");
                }
                Err(error) => tracing::warn!(%error, "cannot wait for the task guardian"),
            }
        }
        n_killed
    }
}

impl TaskCell {
    /// The task's cgroup directory, opened with `O_PATH`, where it has one.
    pub fn cgroup_fd(&self) -> Option<BorrowedFd<'_>> {
        self.cgroup
            .as_ref()
            .and_then(|cgroup| cgroup.fd.as_ref())
            .map(AsFd::as_fd)
    }

    /// The command the task's shell runs: in a cgroup, it first moves
    /// itself into it (exit [`NO_CGROUP_EXIT`] if it cannot), on the same
    /// line, so the command's line numbers are unchanged.
    pub fn command<'a>(&self, command: &'a str) -> Cow<'a, str> {
        match &self.cgroup {
            None => Cow::Borrowed(command),
            Some(cgroup) => {
                let mut text = String::with_capacity(cgroup.enter.len() + command.len());
                text.push_str(&cgroup.enter);
                text.push_str(command);
                Cow::Owned(text)
            }
        }
    }

    /// Queues for the guardian that the task's leader runs (its pid is its
    /// process group's id); [`Containment::tell_guardian`] writes it.
    pub fn announce(&mut self, leader: u32) {
        if let Some(guardian) = &self.guardian {
            guardian.queue('+', leader);
        }
        self.leader = Some(leader);
    }

    /// After the task's leader was reaped and its process group found
    /// empty: when the task left its cgroup empty too (or has none), gives
    /// the cgroup back to the pool and queues for the guardian that the task
    /// is gone ([`Containment::tell_guardian`] writes it), without
    /// blocking; else gives the cell back for [`TaskCell::clear`].
    pub fn clear_if_empty(mut self) -> Result<(), Self> {
        if self
            .cgroup
            .as_mut()
            .is_some_and(|cgroup| !cgroup.holds_no_process())
        {
            return Err(self);
        }
        if let (Some(cgroup), Some(pool)) = (self.cgroup.take(), &self.pool) {
            pool.put_back(cgroup);
        }
        if let (Some(guardian), Some(leader)) = (&self.guardian, self.leader.take()) {
            guardian.queue('-', leader);
        }
        Ok(())
    }

    /// After the task's leader was reaped and its process group cleared:
    /// gives an empty cgroup back to the pool; else kills whatever is left
    /// in it, reaps those that became the manager's children and removes
    /// the cgroup. Then tells the guardian the task is gone. Blocking (call
    /// off the event loop). Returns how many processes were killed.
    pub fn clear(mut self) -> usize {
        let n_killed = self.cgroup.take().map_or(0, |mut cgroup| {
            // Most tasks leave nothing behind.
            if cgroup.holds_no_process() {
                if let Some(pool) = &self.pool {
                    pool.put_back(cgroup);
                }
                return 0;
            }
            // Closed before the cgroup is removed.
            let Cgroup { dir, .. } = cgroup;
            let pids = kill_cgroup(&dir);
            if !pids.is_empty() {
                reap_when_gone(&pids, &dir);
            }
            if let Err(error) = remove_cgroup(&dir) {
                tracing::warn!(%error, cgroup = %dir.display(), "cannot remove the task's cgroup");
            }
            pids.len()
        });
        if let (Some(guardian), Some(leader)) = (&self.guardian, self.leader.take()) {
            guardian.say('-', leader);
        }
        n_killed
    }
}

impl Drop for TaskCell {
    /// A cell that was never cleared (the spawn failed): remove its cgroup
    /// (empty then).
    fn drop(&mut self) {
        if let Some(cgroup) = self.cgroup.take() {
            let _ = std::fs::remove_dir(&cgroup.dir);
        }
    }
}

/// The manager's own cgroup v2 directory and a new `rhtex-<pid>` in it.
fn create_base() -> Result<PathBuf, String> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|error| format!("cannot read /proc/self/cgroup: {error}"))?;
    let relative = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("no cgroup v2 hierarchy in /proc/self/cgroup")?
        .to_owned();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|error| format!("cannot read /proc/self/mountinfo: {error}"))?;
    let mount = cgroup2_mount(&mountinfo).ok_or("no cgroup2 filesystem is mounted")?;
    let own_dir = mount.join(relative.trim_start_matches('/'));
    remove_stale_bases(&own_dir);
    let base = own_dir.join(format!("rhtex-{}", std::process::id()));
    std::fs::create_dir(&base)
        .map_err(|error| format!("cannot create {}: {error}", base.display()))?;
    // Moving a process in must work too (delegation).
    let probe = base.join("probe");
    let moved = std::fs::create_dir(&probe)
        .and_then(|()| File::options().write(true).open(probe.join("cgroup.procs")))
        .map(drop);
    let _ = std::fs::remove_dir(&probe);
    if let Err(error) = moved {
        let _ = std::fs::remove_dir(&base);
        return Err(format!(
            "cannot use the cgroups below {}: {error}",
            own_dir.display()
        ));
    }
    Ok(base)
}

/// Removes the empty `rhtex-<pid>` cgroups of managers that are gone (a
/// manager killed with its guardian, as a batch system may do, leaves
/// them). A cgroup that still holds a process is never removed: the
/// kernel refuses.
fn remove_stale_bases(own_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(own_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix("rhtex-"))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        if let Ok(tasks) = std::fs::read_dir(&dir) {
            for task in tasks.flatten() {
                if task.file_type().is_ok_and(|kind| kind.is_dir()) {
                    let _ = std::fs::remove_dir(task.path());
                }
            }
        }
        if std::fs::remove_dir(&dir).is_ok() {
            tracing::info!(cgroup = %dir.display(), "removed the empty cgroup of a manager that is gone");
        }
    }
}

/// Where the cgroup2 filesystem is mounted, from `/proc/self/mountinfo`
/// (the mount point is field 5; the filesystem type follows the ` - `).
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        if rest.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mount_point = fields.split_whitespace().nth(4)?;
        Some(PathBuf::from(mount_point.replace("\\040", " ")))
    })
}

/// The pids in a cgroup and its descendants.
fn pids_in(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                pids.extend(pids_in(&entry.path()));
            }
        }
    }
    pids
}

/// SIGKILLs every process of a cgroup subtree; gives the pids it held.
fn kill_cgroup(dir: &Path) -> Vec<i32> {
    let pids = pids_in(dir);
    if pids.is_empty() {
        return pids;
    }
    let killed = File::options()
        .write(true)
        .open(dir.join("cgroup.kill"))
        .and_then(|mut file| file.write_all(b"1"));
    if killed.is_err() {
        // Older kernels: signal each pid, until none is left (a process
        // may fork while we read).
        let deadline = Instant::now() + CLEAR_WAIT;
        loop {
            let left = pids_in(dir);
            if left.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    pids
}

/// Waits (bounded) until the killed `pids` are gone, reaping those that
/// were re-parented to the manager.
fn reap_when_gone(pids: &[i32], dir: &Path) {
    let me = std::process::id();
    let deadline = Instant::now() + CLEAR_WAIT;
    let mut left: Vec<i32> = pids.to_vec();
    while !left.is_empty() {
        left.retain(|pid| match parent_of(*pid) {
            None => false,
            Some(parent) if parent == me => {
                let _ = waitpid(Pid::from_raw(*pid), None);
                false
            }
            // Still exiting, or a zombie whose parent (also killed) has
            // not been reaped yet: its parent's end re-parents it to us.
            Some(_) => true,
        });
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(n_left = left.len(), cgroup = %dir.display(), "killed task processes not gone in time");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Removes a task's cgroup, retrying (bounded) while its last processes
/// leave it.
fn remove_cgroup(dir: &Path) -> std::io::Result<()> {
    let deadline = Instant::now() + CLEAR_WAIT;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) if Instant::now() >= deadline => return Err(error),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// The parent pid of `pid` from `/proc/PID/stat`; `None` if it is gone.
fn parent_of(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The manager's children, from `/proc`.
fn children_of_manager() -> Vec<i32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid) == Some(me))
        .collect()
}

/// At the manager's exit: SIGKILLs and reaps every child of the manager
/// (with no task running, those are task processes re-parented to it)
/// but `spare`, until none is left (bounded). Returns how many.
pub fn sweep_orphans(spare: Option<u32>) -> usize {
    let deadline = Instant::now() + CLEAR_WAIT;
    let mut n_killed = 0;
    loop {
        let children: Vec<i32> = children_of_manager()
            .into_iter()
            .filter(|pid| spare.and_then(|spare| i32::try_from(spare).ok()) != Some(*pid))
            .collect();
        if children.is_empty() || Instant::now() >= deadline {
            return n_killed;
        }
        for pid in children {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
            n_killed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_cgroup2_mount_is_read_from_mountinfo() {
        let mountinfo = "\
24 30 0:22 / /sys type sysfs rw,nosuid - sysfs sysfs rw
35 24 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
36 24 0:31 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("24 30 0:22 / /sys rw - sysfs sysfs rw"), None);
    }

    #[test]
    fn a_task_in_a_cgroup_enters_it_first_on_the_same_line() {
        let plain = TaskCell {
            cgroup: None,
            pool: None,
            guardian: None,
            leader: None,
        };
        assert_eq!(plain.command("echo hi"), "echo hi");
        let dir = tempfile::tempdir().expect("temp dir");
        let cgroup = dir.path().join("it's here");
        std::fs::create_dir(&cgroup).expect("dir");
        let cell = TaskCell {
            cgroup: Some(Cgroup::new(cgroup.clone())),
            pool: None,
            guardian: None,
            leader: None,
        };
        // The shell writes its own pid to the (here: ordinary) file, then
        // runs the command, whose line numbers are unchanged.
        let output = Command::new("/bin/bash")
            .arg("-c")
            .arg(cell.command("echo $LINENO; exit 7").as_ref())
            .output()
            .expect("bash");
        assert_eq!(output.status.code(), Some(7));
        assert_eq!(String::from_utf8_lossy(&output.stdout), "1\n");
        let written = std::fs::read_to_string(cgroup.join("cgroup.procs")).expect("procs");
        assert!(written.trim().parse::<u32>().is_ok(), "{written:?}");
        // It cannot enter: the command does not run.
        std::fs::remove_file(cgroup.join("cgroup.procs")).expect("rm");
        std::fs::remove_dir(&cgroup).expect("rmdir");
        let output = Command::new("/bin/bash")
            .arg("-c")
            .arg(cell.command("echo ran").as_ref())
            .output()
            .expect("bash");
        assert_eq!(output.status.code(), Some(NO_CGROUP_EXIT));
        assert!(output.stdout.is_empty());
    }

    /// A cgroup left empty is given to the next task; one is created only
    /// when none is free. (An ordinary directory stands for the cgroups.)
    #[test]
    fn empty_task_cgroups_are_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = CellPool::new(dir.path().to_path_buf());
        let mut first_cgroup = pool.take().expect("create");
        let (first, second) = (first_cgroup.dir.clone(), pool.take().expect("create").dir);
        assert_ne!(first, second);
        assert!(first.is_dir() && second.is_dir());
        // `cgroup.procs` lists the processes still in it (read again, at
        // offset 0, through the descriptor kept open).
        assert!(
            !first_cgroup.holds_no_process(),
            "unreadable counts as not empty"
        );
        std::fs::write(first.join("cgroup.procs"), "4242\n").expect("write");
        assert!(!first_cgroup.holds_no_process());
        std::fs::write(first.join("cgroup.procs"), "").expect("write");
        assert!(first_cgroup.holds_no_process());
        pool.put_back(first_cgroup);
        assert_eq!(pool.take().expect("reuse").dir, first);
        let third = pool.take().expect("create").dir;
        assert!(third != first && third != second);
    }

    #[test]
    fn parent_of_reads_the_stat_file() {
        assert_eq!(
            parent_of(i32::try_from(std::process::id()).expect("pid")),
            Some(nix::unistd::getppid().as_raw().unsigned_abs())
        );
        assert_eq!(parent_of(i32::MAX), None);
    }
}
