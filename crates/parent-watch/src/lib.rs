//! `--exit-with-parent` for both daemons: stop when the process that started
//! the daemon is gone, even if it was killed with SIGKILL and could not stop
//! it itself (the Python package starts private daemons this way).
//!
//! A thread of its own polls the parent pid every [`POLL_PERIOD`]. When the
//! parent has changed (we were re-parented to init or a subreaper), or was
//! already gone when the watch started (parent pid 1), it sends SIGTERM to
//! this process, which then shuts down as on any SIGTERM. Nothing else in
//! the daemon knows about it.

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, getppid, Pid};
use std::time::Duration;

/// How often the parent pid is checked: the bound on how long the daemon
/// outlives its parent, before its own shutdown.
pub const POLL_PERIOD: Duration = Duration::from_millis(200);

/// True when a process whose parent was `original` at the start of the
/// watch and is `current` now has lost its parent.
pub fn parent_gone(original: Pid, current: Pid) -> bool {
    current != original || current == Pid::from_raw(1)
}

/// Starts watching the parent process; see the module documentation.
pub fn exit_with_parent() -> std::io::Result<()> {
    let original = getppid();
    tracing::info!(
        parent_pid = original.as_raw(),
        "exiting with the parent process"
    );
    std::thread::Builder::new()
        .name("parent-watch".to_owned())
        .spawn(move || loop {
            let current = getppid();
            if parent_gone(original, current) {
                tracing::warn!(
                    parent_pid = original.as_raw(),
                    "the parent process is gone: stopping as on SIGTERM"
                );
                if let Err(error) = kill(getpid(), Signal::SIGTERM) {
                    tracing::error!(%error, "cannot send SIGTERM to this process");
                }
                return;
            }
            std::thread::sleep(POLL_PERIOD);
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_or_init_parent_is_gone() {
        let parent = Pid::from_raw(4242);
        assert!(!parent_gone(parent, parent));
        assert!(parent_gone(parent, Pid::from_raw(1)));
        assert!(parent_gone(parent, Pid::from_raw(77)));
        assert!(parent_gone(Pid::from_raw(1), Pid::from_raw(1)));
    }
}
