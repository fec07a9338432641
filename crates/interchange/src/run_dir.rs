//! One interchange per run directory: an advisory lock (`flock`) on
//! `<run-dir>/interchange.lock`, taken before anything in the directory is
//! read or written and held for the daemon's life. The holder writes its
//! pid in the file, so a second interchange can name it. The kernel drops
//! the lock when its holder exits, however it exits (a kill -9 too), so a
//! lock file left behind never blocks a restart.

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name in the run directory.
pub const LOCK_FILE: &str = "interchange.lock";

/// Why the run directory cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the run directory {run_dir} is in use by another interchange{holder} (it holds {lock}); \
         stop that one first, or give this one another run directory",
        holder = holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        lock = lock_path.display(),
    )]
    Held {
        run_dir: PathBuf,
        lock_path: PathBuf,
        holder: Option<u32>,
    },
    #[error("cannot lock the run directory with {lock_path}: {source}")]
    Io {
        lock_path: PathBuf,
        source: std::io::Error,
    },
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct RunDirLock {
    _file: Flock<File>,
}

impl RunDirLock {
    /// Takes the lock of `run_dir` (which must exist) without waiting, and
    /// writes this process's pid in it.
    pub fn take(run_dir: &Path) -> Result<RunDirLock, LockError> {
        let lock_path = run_dir.join(LOCK_FILE);
        let io_error = |source| LockError::Io {
            lock_path: lock_path.clone(),
            source,
        };
        // Opened close-on-exec (as std opens every file), so no child
        // inherits the lock.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_error)?;
        let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse::<u32>().ok());
                return Err(LockError::Held {
                    run_dir: run_dir.to_path_buf(),
                    lock_path,
                    holder,
                });
            }
            Err((_, errno)) => return Err(io_error(std::io::Error::from(errno))),
        };
        locked
            .set_len(0)
            .and_then(|()| locked.rewind())
            .and_then(|()| writeln!(*locked, "{}", std::process::id()))
            .map_err(io_error)?;
        Ok(RunDirLock { _file: locked })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_a_released_lock_can_be_taken_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = RunDirLock::take(dir.path()).expect("the first lock");
        let written = std::fs::read_to_string(dir.path().join(LOCK_FILE)).expect("the lock file");
        assert_eq!(written, format!("{}\n", std::process::id()));
        match RunDirLock::take(dir.path()) {
            Err(LockError::Held {
                run_dir, holder, ..
            }) => {
                assert_eq!(run_dir, dir.path());
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("expected the lock held, got {other:?}"),
        }
        drop(first);
        RunDirLock::take(dir.path()).expect("the lock once released");
    }
}
