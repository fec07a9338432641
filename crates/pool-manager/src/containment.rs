//! Task containment: that no process of a task outlives its task or its
//! manager, `setsid` descendants and double-fork daemons included. Owned
//! by [`crate::launch`]; with it, the only code that signals processes.
//!
//! Two kinds, chosen once at start ([`Containment::detect`]) and logged:
//!
//! - **cgroup v2**, when the manager can create a cgroup below its own (the
//!   cgroup2 mount is writable here, or delegated, as inside a Slurm job's
//!   cgroup): a directory `rhtex-<pid>` below the manager's cgroup, and in
//!   it one cgroup per task that the task's leader enters before exec.
//!   When the leader has been reaped, everything left in the task's cgroup
//!   is killed (`cgroup.kill`, or SIGKILL to each pid of `cgroup.procs`
//!   where the kernel lacks it), reaped, and the cgroup removed. A small
//!   guardian process (`/bin/sh`, in a process group of its own) holds the
//!   read end of a pipe whose write end only the manager holds: when the
//!   manager ends, however it ends (SIGKILL included), the guardian kills
//!   the whole `rhtex-<pid>` subtree and removes it.
//! - **process groups** otherwise: each task in a process group of its
//!   own, killed as a whole when the leader ends (in `launch`), and at the
//!   manager's exit a sweep that kills and reaps every process re-parented
//!   to the manager (it is a child subreaper). A task's `setsid`
//!   descendants are only swept at the manager's exit there, and survive a
//!   manager killed outright.
//!
//! In both, each task's leader gets a parent-death signal (SIGKILL), so a
//! manager killed outright takes its tasks' leaders down.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the processes of a killed cgroup get to be gone and reaped.
const CLEAR_WAIT: Duration = Duration::from_secs(10);

/// What the guardian runs: wait for the manager's end (end of input), then
/// kill the subtree `$1` and remove its cgroups, deepest first (a cgroup
/// goes only once its processes are gone: bounded retries).
const GUARDIAN_SCRIPT: &str = r#"cat >/dev/null
if [ -e "$1/cgroup.kill" ]; then echo 1 > "$1/cgroup.kill"; else
  for f in "$1"/cgroup.procs "$1"/*/cgroup.procs; do
    [ -e "$f" ] && while read -r pid; do kill -9 "$pid"; done < "$f"
  done
fi 2>/dev/null
for attempt in $(seq 200); do
  rmdir "$1"/*/ 2>/dev/null; rmdir "$1" 2>/dev/null
  [ -d "$1" ] || exit 0
  sleep 0.05
done
exit 1"#;

/// The containment this manager gives its tasks.
#[derive(Debug)]
pub struct Containment {
    cgroups: Option<Cgroups>,
}

#[derive(Debug)]
struct Cgroups {
    /// `rhtex-<pid>` below the manager's own cgroup.
    base: PathBuf,
    guardian: Option<Child>,
    /// The write end of the guardian's input: closed when the manager ends.
    guardian_input: Option<ChildStdin>,
}

/// What one task is contained in: its cgroup, when there is one.
#[derive(Debug)]
pub struct TaskCell {
    cgroup: Option<PathBuf>,
    /// `cgroup.procs` of the task's cgroup, opened before the fork: the
    /// child writes "0" to it (itself) before exec.
    procs: Option<File>,
}

impl Containment {
    /// Process groups only (no cgroups): for tests, and where no cgroup
    /// can be created.
    pub fn process_groups() -> Self {
        Self { cgroups: None }
    }

    /// A cgroup per task if `cgroups` and this manager can create cgroups
    /// below its own, else process groups. Logs which.
    pub fn detect(cgroups: bool) -> Self {
        let base = if cgroups {
            create_base()
        } else {
            Err("--no-cgroups".to_owned())
        };
        match base {
            Ok(base) => {
                let (guardian, guardian_input) = match start_guardian(&base) {
                    Ok((child, input)) => (Some(child), Some(input)),
                    Err(error) => {
                        tracing::warn!(%error, "cannot start the cgroup guardian; a manager killed outright may leave task processes behind");
                        (None, None)
                    }
                };
                tracing::info!(
                    containment = "cgroup",
                    cgroup = %base.display(),
                    "task containment: a cgroup v2 per task (killed as a whole), parent-death signal SIGKILL on each leader"
                );
                Self {
                    cgroups: Some(Cgroups {
                        base,
                        guardian,
                        guardian_input,
                    }),
                }
            }
            Err(why) => {
                tracing::info!(
                    containment = "process-group",
                    reason = %why,
                    "task containment: a process group per task, parent-death signal SIGKILL on each leader, orphans swept at exit"
                );
                Self::process_groups()
            }
        }
    }

    /// Whether tasks get a cgroup each.
    pub fn uses_cgroups(&self) -> bool {
        self.cgroups.is_some()
    }

    /// The cell of a task about to start: its cgroup, created now (a task
    /// whose cgroup cannot be created runs in its process group only).
    pub fn cell(&self, name: &str) -> TaskCell {
        let Some(cgroups) = &self.cgroups else {
            return TaskCell {
                cgroup: None,
                procs: None,
            };
        };
        let dir = cgroups.base.join(name);
        let opened = std::fs::create_dir(&dir)
            .and_then(|()| File::options().write(true).open(dir.join("cgroup.procs")));
        match opened {
            Ok(procs) => TaskCell {
                cgroup: Some(dir),
                procs: Some(procs),
            },
            Err(error) => {
                tracing::warn!(%error, cgroup = %dir.display(), "cannot create the task's cgroup; it runs in its process group only");
                let _ = std::fs::remove_dir(&dir);
                TaskCell {
                    cgroup: None,
                    procs: None,
                }
            }
        }
    }

    /// At the manager's exit, once its tasks have ended: kills and reaps
    /// whatever is left of them, then lets the guardian remove the cgroups.
    /// Returns how many processes were killed.
    pub fn finish(mut self) -> usize {
        let guardian_pid = self
            .cgroups
            .as_ref()
            .and_then(|cgroups| cgroups.guardian.as_ref())
            .map(|child| child.id());
        if let Some(cgroups) = &self.cgroups {
            kill_cgroup(&cgroups.base);
        }
        let n_killed = sweep_orphans(guardian_pid);
        if let Some(mut cgroups) = self.cgroups.take() {
            drop(cgroups.guardian_input.take());
            if let Some(mut guardian) = cgroups.guardian.take() {
                match guardian.wait() {
                    Ok(status) if status.success() => {}
                    Ok(status) => {
                        tracing::warn!(%status, cgroup = %cgroups.base.display(), "the cgroup guardian could not remove every task cgroup")
                    }
                    Err(error) => tracing::warn!(%error, "cannot wait for the cgroup guardian"),
                }
            }
        }
        n_killed
    }
}

impl TaskCell {
    /// Sets up the child before exec: the parent-death signal, and its
    /// cgroup. Call on the task's command before spawning it.
    pub fn enter_in_child(&self, command: &mut tokio::process::Command) {
        let manager = nix::unistd::getpid();
        let procs: Option<RawFd> = self.procs.as_ref().map(AsRawFd::as_raw_fd);
        // SAFETY: the closure runs in the forked child before exec and calls
        // only async-signal-safe functions (prctl, getppid, write, _exit);
        // it allocates nothing and takes no lock. The file descriptor stays
        // open in the parent until the spawn has returned (the cell lives on).
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                if let Some(fd) = procs {
                    let written = nix::libc::write(fd, b"0".as_ptr().cast(), 1);
                    if written != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                // The manager died between the fork and the prctl.
                if nix::unistd::getppid() != manager {
                    nix::libc::_exit(137);
                }
                Ok(())
            });
        }
    }

    /// After the task's leader was reaped: kills whatever is left in the
    /// task's cgroup, reaps those that became the manager's children, and
    /// removes the cgroup. Blocking (call off the event loop). Returns how
    /// many processes were killed.
    pub fn clear(mut self) -> usize {
        drop(self.procs.take());
        let Some(dir) = self.cgroup.take() else {
            return 0;
        };
        let pids = kill_cgroup(&dir);
        if !pids.is_empty() {
            reap_when_gone(&pids, &dir);
        }
        if let Err(error) = remove_cgroup(&dir) {
            tracing::warn!(%error, cgroup = %dir.display(), "cannot remove the task's cgroup");
        }
        pids.len()
    }
}

impl Drop for TaskCell {
    /// A cell that was never cleared (the spawn failed): remove its cgroup
    /// (empty then).
    fn drop(&mut self) {
        if let Some(dir) = self.cgroup.take() {
            let _ = std::fs::remove_dir(&dir);
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

fn start_guardian(base: &Path) -> std::io::Result<(Child, ChildStdin)> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(GUARDIAN_SCRIPT)
        .arg("rhtex-cgroup-guardian")
        .arg(base)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let input = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
    Ok((child, input))
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
    fn parent_of_reads_the_stat_file() {
        assert_eq!(
            parent_of(i32::try_from(std::process::id()).expect("pid")),
            Some(nix::unistd::getppid().as_raw().unsigned_abs())
        );
        assert_eq!(parent_of(i32::MAX), None);
    }
}
