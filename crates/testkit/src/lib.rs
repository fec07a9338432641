//! What rhtex's tests that run real processes share.
//!
//! - [`process`]: a process started by a test in a process group of its
//!   own ([`Daemon`]), killed (the whole group) and reaped when dropped;
//!   reading the interchange's ready line from it with a timeout.
//! - [`run_bounded`]: a command run to its end, in its own process group,
//!   bounded by a timeout.
//! - [`wait_for`]: a polling wait bounded by a timeout (nothing sleeps for
//!   synchronisation).
//! - [`binary`] and [`require_root`]: the one check each for what a test
//!   needs from its surroundings. A test that needs the built workspace
//!   binaries, or root, fails at once with one clear message that names the
//!   command to run, instead of panicking somewhere inside.

pub mod process;

pub use process::{describe, read_interchange_ready, Daemon, Launch, Stdout};

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How often a polling wait looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The command that builds every binary the tests run.
pub const BUILD_COMMAND: &str = "cargo build --workspace --bins";

/// The repository root (the workspace).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Where the workspace binaries are: `RHTEX_BIN_DIR` if set, else
/// `$CARGO_TARGET_DIR/debug`, else `<workspace>/target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RHTEX_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_dir().join(dir)
            }
        }
        None => workspace_dir().join("target"),
    };
    target.join("debug")
}

/// The path of one workspace binary in [`bin_dir`]; fails the test with
/// the command to run if it has not been built.
pub fn binary(name: &str) -> PathBuf {
    binary_in(&bin_dir(), name)
}

/// The path of workspace binary `name` in `dir` (where another binary of
/// the workspace is); fails the test with the command to run if it has not
/// been built.
pub fn binary_in(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "this test runs the `{name}` binary, which is not built ({} is missing): \
         run `{BUILD_COMMAND}` first, or the whole suite with `./scripts/test.sh` \
         (or set RHTEX_BIN_DIR to the directory holding interchange, pool-manager and rhtex)",
        path.display()
    );
    path
}

/// The workspace binary `name` next to `program` (another binary of the
/// workspace, as `env!("CARGO_BIN_EXE_...")` gives it), or in
/// `RHTEX_BIN_DIR` if set; fails the test with the command to run if it has
/// not been built.
pub fn binary_next_to(program: &Path, name: &str) -> PathBuf {
    match std::env::var_os("RHTEX_BIN_DIR") {
        Some(dir) => binary_in(Path::new(&dir), name),
        None => binary_in(program.parent().unwrap_or(Path::new(".")), name),
    }
}

/// `program`, after checking that the workspace binaries `names` are built
/// next to it (where it looks for them); fails the test with the command to
/// run if one is not.
pub fn with_binaries_next_to(program: PathBuf, names: &[&str]) -> PathBuf {
    let dir = program.parent().unwrap_or(Path::new("."));
    for name in names {
        binary_in(dir, name);
    }
    program
}

/// Fails the test at once, saying what it needs and how to run it, unless
/// it runs as root. `why` says what the test does that needs root.
pub fn require_root(why: &str) {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test needs root ({why}): run the whole suite as root with `sudo ./scripts/test.sh`"
    );
}

/// Polls `probe` until it gives `Some`, at most until `timeout` has passed;
/// fails naming `what` if it never does.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Runs `command` to its end in its own process group, stdin empty and
/// stdout and stderr captured; past `timeout` the group is killed and the
/// test fails naming `what`.
pub fn run_bounded(what: &str, command: &mut Command, timeout: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = finished.recv_timeout(timeout);
    if output.is_err() {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = waiter.join();
    match output {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => panic!("cannot wait for {what}: {error}"),
        Err(_) => panic!("{what} did not finish within {timeout:?}; its process group was killed"),
    }
}
