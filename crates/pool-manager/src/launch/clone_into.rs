//! Starting a task's process directly in its cgroup: `clone3` with
//! `CLONE_INTO_CGROUP`, sharing the manager's memory until the child execs
//! (`CLONE_VM | CLONE_VFORK`, as `posix_spawn` does), on a stack of its own.
//!
//! Why: a process that writes itself into `cgroup.procs` takes the write
//! side of the kernel's cgroup threadgroup lock, which waits for an RCU
//! grace period when no other migration ran just before: 10 to 20 ms on a
//! VM, so a task that starts alone (`rhtex submit --wait`) waited that
//! long before its command ran. A process born in its cgroup takes only
//! the read side. glibc has this as `posix_spawnattr_setcgroup_np` from
//! version 2.41; the distributions HPC centres run have older ones, so the
//! system call is made here.
//!
//! This is the only module of the workspace with `unsafe` code, and the
//! only one with inline assembly (x86-64 only; other architectures use
//! `posix_spawn` and let the shell enter its cgroup). What makes it sound:
//! - The child runs on a stack of its own ([`Stack`], owned by the spawner
//!   and used by one spawn at a time: `CLONE_VFORK` suspends the calling
//!   thread until the child has called `execve` or `_exit`).
//! - The child shares the manager's memory, so it calls only
//!   async-signal-safe C functions (`sigaction`, `setpgid`, `open`, `dup2`,
//!   `close`, `chdir`, `sigprocmask`, `execve`, `_exit`) on data prepared
//!   before the call ([`ChildArgs`]: C strings and pointer arrays that
//!   outlive the call), allocates nothing, takes no lock and cannot
//!   panic; it writes only its error slot and its stage.
//! - Every signal is blocked in the calling thread around the call, so no
//!   handler of the manager runs in the child; the child sets every
//!   signal with a handler back to its default (and SIGPIPE, which the
//!   manager ignores), then unblocks them just before `execve`.
//! - Without `CLONE_FILES` and `CLONE_FS`, the child's descriptor table
//!   and working directory are its own copies: its `dup2`, `close` and
//!   `chdir` do not touch the manager's.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CStr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// `CLONE_INTO_CGROUP` (Linux 5.7): the child starts in the cgroup whose
/// directory descriptor is `clone_args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The child's stack: enough for the C functions it calls, which use a
/// few hundred bytes each.
const STACK_BYTES: usize = 64 * 1024;

/// The kernel's `struct clone_args` (`CLONE_ARGS_SIZE_VER2`, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Where the child failed, so that the error names the right thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    ProcessGroup = 1,
    Stdin = 2,
    Stdout = 3,
    Stderr = 4,
    WorkingDirectory = 5,
    Exec = 6,
}

impl Stage {
    fn from_i32(value: i32) -> Self {
        match value {
            1 => Stage::ProcessGroup,
            2 => Stage::Stdin,
            3 => Stage::Stdout,
            4 => Stage::Stderr,
            5 => Stage::WorkingDirectory,
            _ => Stage::Exec,
        }
    }
}

/// What the child needs, prepared by the caller; every pointer stays
/// valid until [`Cloner::spawn`] returns.
pub(super) struct Program<'a> {
    pub(super) path: &'a CStr,
    /// NULL-terminated.
    pub(super) argv: &'a [*const c_char],
    /// NULL-terminated.
    pub(super) envp: &'a [*const c_char],
    pub(super) cwd: &'a CStr,
    pub(super) stdin: BorrowedFd<'a>,
    pub(super) stdout: &'a CStr,
    /// `None`: stderr goes to the stdout file.
    pub(super) stderr: Option<&'a CStr>,
    pub(super) cgroup: BorrowedFd<'a>,
}

/// What the child reads (through the shared memory) and where it writes
/// its failure.
#[repr(C)]
struct ChildArgs {
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    stdout: *const c_char,
    stderr: *const c_char,
    stdin: c_int,
    errno: AtomicI32,
    stage: AtomicI32,
}

/// How a spawn failed.
#[derive(Debug)]
pub(super) enum CloneError {
    /// `clone3` itself failed: the errno. `ENOSYS`, `EPERM` (a seccomp
    /// filter), `E2BIG` and `EINVAL` (a kernel without `CLONE_INTO_CGROUP`)
    /// mean it will not work here at all.
    Clone(i32),
    /// The child started but could not get to its program.
    Child { stage: Stage, errno: i32 },
}

impl CloneError {
    /// `clone3` cannot be used on this system (as opposed to this once).
    pub(super) fn unsupported(&self) -> bool {
        matches!(self, CloneError::Clone(errno) if matches!(*errno, libc::ENOSYS | libc::EPERM | libc::E2BIG | libc::EINVAL))
    }
}

/// The child's stack: a heap block, 16-byte aligned at its top.
struct Stack {
    memory: Vec<u128>,
}

/// Spawns into cgroups; lives on the launch thread.
pub(super) struct Cloner {
    stack: Stack,
}

impl Cloner {
    pub(super) fn new() -> Self {
        Self {
            stack: Stack {
                memory: vec![0u128; STACK_BYTES / std::mem::size_of::<u128>()],
            },
        }
    }

    /// Starts `program` in the cgroup, in a process group of its own, with
    /// an empty signal mask and every signal at its default disposition;
    /// returns its pid once it has called `execve`.
    pub(super) fn spawn(&mut self, program: &Program<'_>) -> Result<i32, CloneError> {
        debug_assert!(program.argv.last().is_some_and(|arg| arg.is_null()));
        debug_assert!(program.envp.last().is_some_and(|var| var.is_null()));
        let child_args = ChildArgs {
            path: program.path.as_ptr(),
            argv: program.argv.as_ptr(),
            envp: program.envp.as_ptr(),
            cwd: program.cwd.as_ptr(),
            stdout: program.stdout.as_ptr(),
            stderr: program.stderr.map_or(std::ptr::null(), CStr::as_ptr),
            stdin: program.stdin.as_raw_fd(),
            errno: AtomicI32::new(0),
            stage: AtomicI32::new(0),
        };
        let stack = self.stack.memory.as_mut_ptr();
        let clone_args = CloneArgs {
            flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            stack: stack as u64,
            stack_size: (self.stack.memory.len() * std::mem::size_of::<u128>()) as u64,
            cgroup: program.cgroup.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        // SAFETY: the signal sets are initialized by sigfillset/sigprocmask
        // before use; see the module's documentation for the clone.
        let pid = unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let pid = clone3(&clone_args, &child_args);
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            pid
        };
        if pid < 0 {
            return Err(CloneError::Clone(
                i32::try_from(-pid).unwrap_or(libc::EINVAL),
            ));
        }
        let pid = i32::try_from(pid).unwrap_or(i32::MAX);
        let errno = child_args.errno.load(Ordering::Acquire);
        if errno != 0 {
            // The child has exited: reap it here, it was never a task.
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            return Err(CloneError::Child {
                stage: Stage::from_i32(child_args.stage.load(Ordering::Acquire)),
                errno,
            });
        }
        Ok(pid)
    }
}

/// `clone3(args)`; in the child, runs [`child_main`] on the new stack and
/// never returns there. Returns the child's pid, or `-errno`.
///
/// SAFETY: the caller keeps `args`, its stack and `child_args` valid until
/// this returns (with `CLONE_VFORK`, until the child has exec'd or exited).
#[cfg(target_arch = "x86_64")]
unsafe fn clone3(args: &CloneArgs, child_args: &ChildArgs) -> i64 {
    let ret: i64;
    // The kernel returns 0 in the child, with its stack pointer at the top
    // of the new stack and every other register as the parent had it
    // (`syscall` clobbers only rax, rcx and r11): the child calls
    // `child_main(r12)` from there, which never returns.
    std::arch::asm!(
        "syscall",
        "test rax, rax",
        "jnz 2f",
        "mov rdi, r12",
        "call r13",
        "ud2",
        "2:",
        inlateout("rax") libc::SYS_clone3 => ret,
        in("rdi") std::ptr::from_ref(args),
        in("rsi") std::mem::size_of::<CloneArgs>(),
        in("r12") std::ptr::from_ref(child_args),
        in("r13") child_main as extern "C" fn(*const ChildArgs) -> !,
        lateout("rcx") _,
        lateout("r11") _,
        options(nostack),
    );
    ret
}

/// The child, between `clone3` and `execve`. See the module's
/// documentation for what it may do.
extern "C" fn child_main(args: *const ChildArgs) -> ! {
    // SAFETY: `args` points to the caller's `ChildArgs`, valid until the
    // caller resumes, which is after this process execs or exits.
    unsafe {
        let args = &*args;
        // Linux has signals 1 to 64.
        for signal in 1..65 {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            // glibc refuses its own internal signals (EINVAL): skip them.
            if libc::sigaction(signal, std::ptr::null(), &mut action) != 0 {
                continue;
            }
            let handled =
                action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN;
            if handled || signal == libc::SIGPIPE {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            fail(args, Stage::ProcessGroup);
        }
        if libc::dup2(args.stdin, 0) < 0 {
            fail(args, Stage::Stdin);
        }
        output(args, args.stdout, 1, Stage::Stdout);
        if args.stderr.is_null() {
            if libc::dup2(1, 2) < 0 {
                fail(args, Stage::Stderr);
            }
        } else {
            output(args, args.stderr, 2, Stage::Stderr);
        }
        if libc::chdir(args.cwd) != 0 {
            fail(args, Stage::WorkingDirectory);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(args.path, args.argv, args.envp);
        fail(args, Stage::Exec)
    }
}

/// Creates (truncates) an output file as descriptor `target`.
///
/// SAFETY: only in [`child_main`].
unsafe fn output(args: &ChildArgs, path: *const c_char, target: c_int, stage: Stage) {
    let fd = libc::open(path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC, 0o666);
    if fd < 0 {
        fail(args, stage);
    }
    if fd != target {
        if libc::dup2(fd, target) < 0 {
            fail(args, stage);
        }
        libc::close(fd);
    }
}

/// Records the failure (errno and stage) for the parent and exits.
///
/// SAFETY: only in [`child_main`].
unsafe fn fail(args: &ChildArgs, stage: Stage) -> ! {
    let errno = *libc::__errno_location();
    args.stage.store(stage as i32, Ordering::Release);
    args.errno.store(errno.max(1), Ordering::Release);
    libc::_exit(127)
}
