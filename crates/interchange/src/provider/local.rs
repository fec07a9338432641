//! The local provider's pool-managers of a previous interchange on the same
//! run directory, adopted: they are not this process's children, so they
//! are found by pid in `/proc` (a pid counts as the block's only while its
//! command line names a run directory under this run directory's
//! `blocks/`, so a reused pid is never taken for one), and stopped by
//! signalling their process group (each was started as a group leader)
//! and watching them go; whoever adopted them as orphans reaps them.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often a wait for an adopted pool-manager looks at it.
const POLL: Duration = Duration::from_millis(10);

/// Whether `job_id` (a pid) is a live pool-manager of a block under
/// `blocks_dir` (not a zombie).
pub fn is_block_alive(job_id: &str, blocks_dir: &Path) -> bool {
    let Ok(pid) = job_id.parse::<u32>() else {
        return false;
    };
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let mut arguments = cmdline.split(|byte| *byte == 0);
    let names_block = arguments.by_ref().any(|argument| argument == b"--run-dir")
        && arguments
            .next()
            .and_then(|run_dir| std::str::from_utf8(run_dir).ok())
            .is_some_and(|run_dir| Path::new(run_dir).starts_with(blocks_dir));
    names_block && !is_zombie(&proc_dir)
}

/// A process that has exited and waits to be reaped.
fn is_zombie(proc_dir: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return true;
    };
    // The state follows the command name, which may hold spaces and
    // parentheses.
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    !matches!(state, Some(state) if state != "Z" && state != "X")
}

/// SIGTERM to each adopted pool-manager's process group (it kills and
/// reports its tasks, then exits), SIGKILL to those left after `grace`.
pub fn stop_adopted(job_ids: &[&String], blocks_dir: &Path, grace: Duration) {
    let mut stopping: Vec<(&String, Pid)> = job_ids
        .iter()
        .filter(|job_id| is_block_alive(job_id, blocks_dir))
        .filter_map(|job_id| Some((*job_id, Pid::from_raw(job_id.parse::<i32>().ok()?))))
        .collect();
    for (job_id, pgid) in &stopping {
        if let Err(error) = killpg(*pgid, Signal::SIGTERM) {
            tracing::debug!(%job_id, %error, "SIGTERM to an adopted local pool-manager");
        }
    }
    let deadline = Instant::now() + grace;
    loop {
        stopping.retain(|(job_id, _)| {
            let alive = is_block_alive(job_id, blocks_dir);
            if !alive {
                tracing::info!(%job_id, "adopted local pool-manager stopped");
            }
            alive
        });
        if stopping.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL);
    }
    for (job_id, pgid) in stopping {
        tracing::warn!(%job_id, "adopted local pool-manager ignored SIGTERM; killing its process group");
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_processes_naming_a_block_run_directory_count() {
        let this = std::process::id().to_string();
        assert!(!is_block_alive(&this, Path::new("/nonexistent/blocks")));
        assert!(!is_block_alive("not-a-pid", Path::new("/")));
        assert!(!is_block_alive(&u32::MAX.to_string(), Path::new("/")));
    }

    #[test]
    fn a_live_pool_manager_under_the_blocks_directory_counts_until_it_is_stopped() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let blocks_dir = dir.path().join("blocks");
        // A shell named like a pool-manager of block rhtex-t-1 (its $0 and
        // $1 are the flag and the block's run directory).
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 600; :", "--run-dir"])
            .arg(blocks_dir.join("rhtex-t-1"))
            .process_group(0)
            .spawn()
            .expect("start a shell");
        let job_id = child.id().to_string();
        // Whatever an assertion below does, the shell's group does not
        // outlive the test.
        let mut group = GroupGuard(Some(Pid::from_raw(child.id() as i32)));
        // Its command line shows once the kernel has set it up, a little
        // after spawn returns.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !is_block_alive(&job_id, &blocks_dir) {
            assert!(std::time::Instant::now() < deadline, "never seen alive");
            std::thread::sleep(POLL);
        }
        assert!(!is_block_alive(&job_id, &dir.path().join("other")));
        // A child of this test, so it is a zombie (not alive) once stopped.
        stop_adopted(&[&job_id], &blocks_dir, Duration::from_secs(30));
        assert!(!is_block_alive(&job_id, &blocks_dir));
        let status = child.wait().expect("reap the shell");
        group.0 = None; // reaped: its group is gone
        assert!(!status.success(), "{status:?}");
    }

    /// Kills its process group when dropped, unless emptied first.
    struct GroupGuard(Option<Pid>);

    impl Drop for GroupGuard {
        fn drop(&mut self) {
            if let Some(group) = self.0 {
                let _ = killpg(group, Signal::SIGKILL);
            }
        }
    }
}
