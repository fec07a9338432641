//! Starting a task's process: `/bin/bash -c COMMAND` with exactly the
//! task's environment, in its working directory, stdin from `/dev/null`,
//! stdout and stderr to its files, in a process group of its own, with an
//! empty signal mask and SIGPIPE at its default (as `std::process` does).
//!
//! [`Spawner`] calls `posix_spawn` itself (nix's safe wrapper): the
//! environment array is built in one pass from the base environment,
//! encoded once per manager, and the task's own variables; the stdout and
//! stderr files are created by the spawn's file actions, in the child, so
//! their creation costs the task, not the manager. `posix_spawn` has no
//! safe way to change the child's directory, so the launch thread has a
//! working directory of its own (`unshare(CLONE_FS)`) and moves to the
//! task's before each spawn; the child inherits it. Where `unshare` is
//! refused (some container sandboxes), tasks are started with
//! `std::process::Command` instead, as before.
//!
//! A task with a cgroup of its own is started directly in it, on x86-64,
//! by [`clone_into`](super::clone_into) (`clone3` with
//! `CLONE_INTO_CGROUP`, which also changes to the working directory in the
//! child); where the kernel, a seccomp filter or the architecture does not
//! allow it, the task's shell enters its cgroup as its first act (the
//! command [`TaskCell::command`] gives), which waits for an RCU grace
//! period when no other task started just before.
//!
//! A spawn that fails is diagnosed by doing in the manager what the child
//! would have done (creating the output files and their directories), so
//! that the error names the path, and a missing directory is created; the
//! spawn is then tried once more.

use super::{create_parent, LaunchError};
use crate::containment::TaskCell;
use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use pool_manager_core::{BaseEnv, EnvSource, Environment, Launch};
use std::ffi::{CStr, CString};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Arc;

/// The shell every task runs in.
const BASH: &CStr = c"/bin/bash";

/// Set (to anything) in the manager's environment, tasks are never
/// started directly in their cgroups: their shells move themselves there,
/// as where `clone3` is refused. For the tests of that path, and to tell a
/// kernel's problem from the clone's.
const NO_CLONE3_ENV: &str = "RHTEX_NO_CLONE3";

/// Starts task processes; lives on the launch thread.
pub(super) struct Spawner {
    /// `/dev/null`, opened once: each task's stdin is a copy of it.
    dev_null: Option<File>,
    how: How,
    /// The base environment encoded as `KEY=VALUE`, in key order, and the
    /// base it was encoded from.
    base: EncodedBase,
    /// Starts tasks directly in their cgroups; `None` where that cannot
    /// work (found at the first try) or on other architectures.
    #[cfg(target_arch = "x86_64")]
    cloner: Option<super::clone_into::Cloner>,
}

/// A `Vec<CString>` (`KEY=VALUE`) for the base environment, kept with the
/// base it encodes.
type EncodedBase = Option<(BaseEnv, Vec<CString>)>;

enum How {
    /// `posix_spawn` from this thread, whose working directory is its own.
    PosixSpawn(Box<nix::spawn::PosixSpawnAttr>),
    /// `std::process::Command` (this thread could not have a working
    /// directory of its own).
    Command,
}

impl Spawner {
    /// A spawner for the calling thread: gives the thread a working
    /// directory of its own, unless `std_only`.
    pub(super) fn for_this_thread(std_only: bool) -> Self {
        let dev_null = File::open("/dev/null").ok();
        let how = if std_only {
            How::Command
        } else {
            match own_directory().and_then(|()| attributes().map_err(std::io::Error::from)) {
                Ok(attr) => How::PosixSpawn(Box::new(attr)),
                Err(error) => {
                    tracing::info!(%error, "the launch thread cannot have a working directory of its own; tasks are started with std::process::Command");
                    How::Command
                }
            }
        };
        Self {
            dev_null,
            #[cfg(target_arch = "x86_64")]
            cloner: (!std_only && std::env::var_os(NO_CLONE3_ENV).is_none())
                .then(super::clone_into::Cloner::new),
            how,
            base: None,
        }
    }

    /// Starts the task's process in its working directory and its cell's
    /// cgroup. Returns its pid.
    pub(super) fn spawn(&mut self, launch: &Launch, cell: &TaskCell) -> Result<i32, LaunchError> {
        #[cfg(target_arch = "x86_64")]
        if let Some(cgroup) = cell.cgroup_fd() {
            if let Some(pid) = self.clone_spawn(launch, cgroup)? {
                return Ok(pid);
            }
        }
        let command = cell.command(&launch.command);
        let command = command.as_ref();
        match &self.how {
            How::PosixSpawn(_) => {
                // The directory for this thread, so for the child.
                std::env::set_current_dir(&launch.cwd).map_err(|error| LaunchError::NoCwd {
                    path: launch.cwd.clone(),
                    error,
                })?;
                match self.posix_spawn(launch, command) {
                    Ok(pid) => Ok(pid),
                    Err(error) if error.kind() == std::io::ErrorKind::InvalidInput => {
                        Err(LaunchError::Spawn(error))
                    }
                    Err(_) => {
                        // Say which file, and create a missing directory.
                        check_outputs(launch)?;
                        self.posix_spawn(launch, command)
                            .map_err(LaunchError::Spawn)
                    }
                }
            }
            How::Command => self.command_spawn(launch, command),
        }
    }

    fn posix_spawn(&mut self, launch: &Launch, command: &str) -> std::io::Result<i32> {
        use nix::spawn::{posix_spawn, PosixSpawnFileActions};
        let How::PosixSpawn(attr) = &self.how else {
            return Err(std::io::Error::other("not spawning with posix_spawn"));
        };
        let command = CString::new(command).map_err(|_| nul_byte("command"))?;
        let args: [&CStr; 3] = [BASH, c"-c", &command];
        let overlay = encode_overlay(&launch.env).ok_or_else(|| nul_byte("environment"))?;
        let envp = environment(&mut self.base, &launch.env, &overlay)?;
        let mut actions = PosixSpawnFileActions::init()?;
        if let Some(dev_null) = &self.dev_null {
            actions.add_dup2(dev_null.as_raw_fd(), 0)?;
        } else {
            actions.add_open(0, c"/dev/null", OFlag::O_RDONLY, Mode::empty())?;
        }
        let output_flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_TRUNC;
        let output_mode = Mode::from_bits_truncate(0o666);
        actions.add_open(1, launch.stdout.as_path(), output_flags, output_mode)?;
        if launch.stderr == launch.stdout {
            actions.add_dup2(1, 2)?;
        } else {
            actions.add_open(2, launch.stderr.as_path(), output_flags, output_mode)?;
        }
        Ok(posix_spawn(BASH, &actions, attr, &args, &envp)?.as_raw())
    }

    /// Starts the task directly in `cgroup` ([`super::clone_into`]).
    /// `Ok(None)`: that cannot be done here; start it the other way.
    #[cfg(target_arch = "x86_64")]
    fn clone_spawn(
        &mut self,
        launch: &Launch,
        cgroup: std::os::fd::BorrowedFd<'_>,
    ) -> Result<Option<i32>, LaunchError> {
        use super::clone_into::{CloneError, Program, Stage};
        use std::os::fd::AsFd;
        use std::os::unix::ffi::OsStrExt;
        let (Some(cloner), Some(dev_null)) = (&mut self.cloner, &self.dev_null) else {
            return Ok(None);
        };
        let invalid = |what: &str| LaunchError::Spawn(nul_byte(what));
        let command = CString::new(launch.command.as_str()).map_err(|_| invalid("command"))?;
        let path = |path: &Path, what: &str| {
            CString::new(path.as_os_str().as_bytes()).map_err(|_| invalid(what))
        };
        let cwd = path(&launch.cwd, "working directory")?;
        let stdout = path(&launch.stdout, "stdout path")?;
        let stderr = if launch.stderr == launch.stdout {
            None
        } else {
            Some(path(&launch.stderr, "stderr path")?)
        };
        let overlay = encode_overlay(&launch.env).ok_or_else(|| invalid("environment"))?;
        let envp =
            environment(&mut self.base, &launch.env, &overlay).map_err(LaunchError::Spawn)?;
        let envp: Vec<*const std::ffi::c_char> = envp
            .iter()
            .map(|var| var.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let argv = [
            BASH.as_ptr(),
            c"-c".as_ptr(),
            command.as_ptr(),
            std::ptr::null(),
        ];
        let program = Program {
            path: BASH,
            argv: &argv,
            envp: &envp,
            cwd: &cwd,
            stdin: dev_null.as_fd(),
            stdout: &stdout,
            stderr: stderr.as_deref(),
            cgroup,
        };
        let mut tried_outputs = false;
        loop {
            let error = match cloner.spawn(&program) {
                Ok(pid) => return Ok(Some(pid)),
                Err(error) => error,
            };
            match error {
                CloneError::Clone(errno) if error.unsupported() => {
                    tracing::info!(
                        error = %std::io::Error::from_raw_os_error(errno),
                        "tasks cannot be started in their cgroups (clone3 with CLONE_INTO_CGROUP); each task's shell enters its cgroup instead"
                    );
                    self.cloner = None;
                    return Ok(None);
                }
                CloneError::Clone(errno) => {
                    // This once (out of processes or memory, say): the
                    // other way reports what it runs into.
                    tracing::debug!(
                        error = %std::io::Error::from_raw_os_error(errno),
                        "clone3 failed; starting the task the other way"
                    );
                    return Ok(None);
                }
                CloneError::Child { stage, errno } => {
                    let error = std::io::Error::from_raw_os_error(errno);
                    match stage {
                        Stage::WorkingDirectory => {
                            return Err(LaunchError::NoCwd {
                                path: launch.cwd.clone(),
                                error,
                            })
                        }
                        Stage::Stdout | Stage::Stderr if !tried_outputs => {
                            // Say which file, and create a missing directory.
                            check_outputs(launch)?;
                            tried_outputs = true;
                        }
                        _ => return Err(LaunchError::Spawn(error)),
                    }
                }
            }
        }
    }

    fn command_spawn(&self, launch: &Launch, command: &str) -> Result<i32, LaunchError> {
        match std::fs::metadata(&launch.cwd) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(LaunchError::NoCwd {
                    path: launch.cwd.clone(),
                    error: std::io::Error::other("not a directory"),
                })
            }
            Err(error) => {
                return Err(LaunchError::NoCwd {
                    path: launch.cwd.clone(),
                    error,
                })
            }
        }
        let stdout = open_output(&launch.stdout)?;
        let stderr = if launch.stderr == launch.stdout {
            stdout
                .try_clone()
                .map_err(|error| LaunchError::OutputFile {
                    path: launch.stderr.clone(),
                    error,
                })?
        } else {
            open_output(&launch.stderr)?
        };
        let stdin = self
            .dev_null
            .as_ref()
            .and_then(|file| file.try_clone().ok())
            .map_or_else(std::process::Stdio::null, std::process::Stdio::from);
        let child = std::process::Command::new("/bin/bash")
            .arg("-c")
            .arg(command)
            .env_clear()
            .envs(launch.env.iter())
            .current_dir(&launch.cwd)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(LaunchError::Spawn)?;
        // Dropping a `Child` neither waits nor kills: the launch thread
        // reaps it.
        i32::try_from(child.id()).map_err(|_| {
            LaunchError::Spawn(std::io::Error::other("pid out of range from the spawn"))
        })
    }
}

/// The task's environment as `KEY=VALUE` strings, in the order
/// [`Environment::sources`] gives them: the base's encoded once per base
/// (kept in `base`), the overlay's from `overlay`.
fn environment<'a>(
    base: &'a mut EncodedBase,
    env: &Environment,
    overlay: &'a [CString],
) -> std::io::Result<Vec<&'a CStr>> {
    if !base
        .as_ref()
        .is_some_and(|(kept, _)| Arc::ptr_eq(kept, env.base()))
    {
        let encoded = encode_base(env.base()).ok_or_else(|| nul_byte("environment"))?;
        *base = Some((Arc::clone(env.base()), encoded));
    }
    let encoded: &[CString] = base.as_ref().map_or(&[], |(_, encoded)| encoded);
    let mut overlay_values = overlay.iter();
    Ok(env
        .sources()
        .filter_map(|source| match source {
            EnvSource::Base(index) => encoded.get(index).map(CString::as_c_str),
            EnvSource::Overlay(..) => overlay_values.next().map(CString::as_c_str),
        })
        .collect())
}

/// The error for a task whose `what` (command, environment, a path) holds
/// a nul byte, which no C string can carry.
fn nul_byte(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("nul byte found in the task's {what}"),
    )
}

/// Gives the calling thread a working directory of its own.
fn own_directory() -> std::io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).map_err(std::io::Error::from)
}

/// The spawn attributes every task gets: a process group of its own, an
/// empty signal mask, SIGPIPE at its default (the manager ignores it).
fn attributes() -> nix::Result<nix::spawn::PosixSpawnAttr> {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFlags};
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_pgroup(Pid::from_raw(0))?;
    attr.set_sigmask(&SigSet::empty())?;
    let mut defaults = SigSet::empty();
    defaults.add(Signal::SIGPIPE);
    attr.set_sigdefault(&defaults)?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETPGROUP
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )?;
    Ok(attr)
}

/// `KEY=VALUE` for every variable of the base, in key order; `None` if one
/// holds a NUL byte.
fn encode_base(base: &BaseEnv) -> Option<Vec<CString>> {
    base.iter().map(|(key, value)| encode(key, value)).collect()
}

/// `KEY=VALUE` for every variable the task sets on top of the base, in the
/// order [`Environment::sources`] gives them.
fn encode_overlay(env: &Environment) -> Option<Vec<CString>> {
    env.sources()
        .filter_map(|source| match source {
            EnvSource::Base(_) => None,
            EnvSource::Overlay(key, value) => Some(encode(key, value)),
        })
        .collect()
}

fn encode(key: &str, value: &str) -> Option<CString> {
    let mut bytes = Vec::with_capacity(key.len() + value.len() + 2);
    bytes.extend_from_slice(key.as_bytes());
    bytes.push(b'=');
    bytes.extend_from_slice(value.as_bytes());
    CString::new(bytes).ok()
}

/// Creates (truncates) a task's stdout or stderr file, and its directory
/// if that is missing.
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

/// After a failed spawn: creates the task's output files as the child
/// would have, to name the one that cannot be created.
fn check_outputs(launch: &Launch) -> Result<(), LaunchError> {
    open_output(&launch.stdout)?;
    if launch.stderr != launch.stdout {
        open_output(&launch.stderr)?;
    }
    Ok(())
}
