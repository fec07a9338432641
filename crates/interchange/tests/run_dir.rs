//! The run directory with the real `interchange` binary: a second
//! interchange on a run directory in use exits 2 naming the directory and
//! the holder's pid, and a lock file left by a kill -9 does not block a
//! restart; a full disk (a small tmpfs as the run directory, filled) stops
//! the interchange with exit code 74 before it confirms a task its journal
//! does not hold, and once space is freed it starts again from its journal.
//!
//! Every process runs in its own process group and is killed by it; the
//! tmpfs is unmounted however the test ends.

mod common;

use common::RawClient;
use nix::sys::signal::Signal;
use protocol::{Command, ReadyLine, Reply, StatusReport, TaskId, TaskSubmission, ToClient};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;
use testkit::{read_interchange_ready, Daemon, Launch, Stdout};
use transport::sockets::ClientSecurity;

const WAIT: Duration = Duration::from_secs(30);

/// An interchange named `name` (its log `<dir>/<name>.log`) on `run_dir`,
/// without waiting for its ready line.
fn spawn(dir: &Path, name: &str, run_dir: &Path) -> Daemon {
    spawn_with(dir, name, run_dir, &[])
}

/// The same, with more flags.
fn spawn_with(dir: &Path, name: &str, run_dir: &Path, flags: &[&str]) -> Daemon {
    let launch = Launch::new(name, env!("CARGO_BIN_EXE_interchange"))
        .args(["--insecure", "--log-level", "debug", "--run-dir"])
        .args([run_dir])
        .args(flags)
        .stdout(Stdout::Piped);
    Daemon::spawn(dir, launch)
}

fn start(dir: &Path, name: &str, run_dir: &Path) -> (Daemon, ReadyLine) {
    let mut daemon = spawn(dir, name, run_dir);
    let ready = read_interchange_ready(&mut daemon, WAIT);
    (daemon, ready)
}

/// A raw protocol client.
struct Client {
    raw: RawClient,
}

impl Client {
    fn connect(ready: &ReadyLine) -> Self {
        let raw = RawClient::connect(
            &ready.client_url,
            &ClientSecurity::Insecure,
            "run-dir-test",
            WAIT,
        );
        Self { raw }
    }

    /// The next message, if one comes within `timeout`.
    fn receive(&self, timeout: Duration) -> Option<ToClient> {
        self.raw.receive(timeout)
    }

    /// Sends a `submit` of `task`; gives its request id.
    fn send_submit(&mut self, task: TaskSubmission) -> u64 {
        self.raw.send_submit(vec![task])
    }

    /// Submits `task` and waits for it to be accepted.
    fn submit(&mut self, task: TaskSubmission) {
        let request_id = self.send_submit(task);
        loop {
            match self.receive(WAIT) {
                Some(ToClient::Submitted {
                    request_id: answered,
                    ..
                }) if answered == request_id => return,
                Some(_) => {}
                None => panic!("no answer to submit within {WAIT:?}"),
            }
        }
    }

    fn command(&mut self, command: Command) -> Reply {
        let request_id = self.raw.send_command(command);
        loop {
            match self.receive(WAIT) {
                Some(ToClient::Reply {
                    request_id: answered,
                    reply,
                }) if answered == request_id => return reply,
                Some(_) => {}
                None => panic!("no reply within {WAIT:?}"),
            }
        }
    }

    fn status(&mut self) -> StatusReport {
        match self.command(Command::Status) {
            Reply::Status(report) => report,
            other => panic!("expected a status report, got {other:?}"),
        }
    }

    /// `shutdown`, answered `done`; then `daemon` must exit 0.
    fn shut_down(&mut self, daemon: &mut Daemon) {
        match self.command(Command::Shutdown) {
            Reply::Done { .. } => {}
            other => panic!("expected done, got {other:?}"),
        }
        let status = daemon.wait_exit(WAIT);
        assert_eq!(status.code(), Some(0), "{status:?}\n{}", daemon.log());
    }
}

/// The CPU clock ticks (utime + stime, all threads) process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command's closing parenthesis: utime and stime are
    // the 12th and 13th.
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// A task that waits in the queue (no manager runs it), with `n_bytes` of
/// input.
fn queued_task(n_bytes: usize) -> TaskSubmission {
    TaskSubmission {
        input: Some(vec![b'x'; n_bytes]),
        ..TaskSubmission::new(TaskId::new_random(), "true")
    }
}

#[test]
fn a_second_interchange_on_a_run_directory_in_use_exits_2_and_a_stale_lock_does_not_block() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let run_dir = dir.join("run");
    let (mut first, ready) = start(dir, "interchange-1", &run_dir);

    let mut second = spawn(dir, "interchange-2", &run_dir);
    let status = second.wait_exit(WAIT);
    assert_eq!(status.code(), Some(2), "{status:?}");
    let log = second.log();
    assert!(
        log.contains(&format!(
            "the run directory {} is in use by another interchange (pid {})",
            run_dir.display(),
            first.pid()
        )),
        "{log}"
    );
    assert!(second.stdout_text().is_empty(), "no ready line");
    // The first one did not notice.
    let mut client = Client::connect(&ready);
    client.status();

    // Killed with SIGKILL, it leaves its lock file; that does not block.
    first.signal(Signal::SIGKILL);
    first.wait_exit(WAIT);
    drop(client);
    let lock_file = run_dir.join(interchange::run_dir::LOCK_FILE);
    assert_eq!(
        std::fs::read_to_string(&lock_file).expect("the lock file is left"),
        format!("{}\n", first.pid())
    );
    let (mut third, ready) = start(dir, "interchange-3", &run_dir);
    assert_eq!(
        std::fs::read_to_string(&lock_file).expect("the lock file"),
        format!("{}\n", third.pid())
    );
    Client::connect(&ready).shut_down(&mut third);
}

/// A tmpfs of `size` mounted on a new directory; unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: PathBuf, size: &str) -> Tmpfs {
        testkit::require_root("it mounts a small tmpfs as a full disk");
        std::fs::create_dir_all(&path).expect("the mount point");
        let output = testkit::run_bounded(
            "mount a tmpfs",
            Process::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&path),
            WAIT,
        );
        assert!(
            output.status.success(),
            "cannot mount a tmpfs on {} (the test needs root and mount): {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs { path }
    }

    /// Writes a file until the file system is full; gives its path.
    fn fill(&self) -> PathBuf {
        let path = self.path.join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    assert_eq!(error.raw_os_error(), Some(nix::libc::ENOSPC), "{error}");
                    break;
                }
            }
        }
        // The last pages too (a short write leaves none).
        while matches!(file.write(&[0u8; 512]), Ok(n) if n > 0) {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Process::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            // Busy (a process of a failed test still in it): detach it.
            let _ = Process::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

#[test]
fn a_full_disk_exits_74_before_confirming_and_the_restart_resumes_from_the_journal() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    // Declared first, so dropped last: after the interchanges are killed.
    let disk = Tmpfs::mount(dir.join("disk"), "2m");
    let run_dir = disk.path.join("run");
    let (mut first, ready) = start(dir, "interchange-1", &run_dir);
    let mut client = Client::connect(&ready);
    client.submit(queued_task(1024));
    assert_eq!(client.status().n_queued, 1);

    let filler = disk.fill();
    // Its record needs pages the disk no longer has.
    let refused = client.send_submit(queued_task(256 * 1024));
    let status = first.wait_exit(WAIT);
    assert_eq!(status.code(), Some(74), "{status:?}\n{}", first.log());
    while let Some(message) = client.receive(Duration::from_millis(500)) {
        assert!(
            !matches!(message, ToClient::Submitted { request_id, .. } if request_id == refused),
            "a task the journal could not hold was confirmed"
        );
    }
    let log = first.log();
    let segment = run_dir.join("journal/segment-00000000000000000001.log");
    assert!(
        log.contains("the journal cannot be written")
            && log.contains(&format!("journal={}", segment.display()))
            && log.contains("errno=28")
            && log.contains("No space left on device"),
        "{log}"
    );
    drop(client);

    // Space freed: the restart resumes from the journal, which holds the
    // first task and not the refused one.
    std::fs::remove_file(&filler).expect("free the disk");
    let (mut second, ready) = start(dir, "interchange-2", &run_dir);
    let log = second.log();
    assert!(
        log.contains("resumed from the journal") && log.contains("n_queued=1"),
        "{log}"
    );
    let mut client = Client::connect(&ready);
    client.submit(queued_task(256 * 1024));
    assert_eq!(client.status().n_queued, 2);
    client.shut_down(&mut second);
}

/// A compaction starts a new journal writer; the event loop must then wait
/// on the new writer's wake-up, not on the old one's closed descriptor (a
/// number the new segment file may take, and a file always reads as ready:
/// the loop spun on it at a whole core, idle or not).
#[test]
fn after_a_compaction_the_idle_interchange_does_not_spin() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let config = dir.join("interchange.toml");
    std::fs::write(&config, "journal_compact_mib = 1\n").expect("write the config");
    let config = config.display().to_string();
    let mut daemon = spawn_with(dir, "interchange", &dir.join("run"), &["--config", &config]);
    let ready = read_interchange_ready(&mut daemon, WAIT);
    let mut client = Client::connect(&ready);
    // Each task's input goes into the journal, its cancel leaves nothing to
    // snapshot: the segment soon passes 1 MiB and four times its snapshot.
    let mut n_submitted = 0;
    while !daemon.log().contains("journal compacted") {
        assert!(
            n_submitted < 64,
            "no compaction after {n_submitted} tasks:\n{}",
            daemon.log()
        );
        let task = queued_task(256 * 1024);
        let task_id = task.task_id;
        client.submit(task);
        match client.command(Command::Cancel { task_id }) {
            Reply::Done { .. } => {}
            other => panic!("expected the cancel done, got {other:?}"),
        }
        n_submitted += 1;
    }
    // A round trip: the loop has turned since the compaction.
    assert_eq!(client.status().n_queued, 0);
    // Idle now: a spinning loop would use about a second of CPU in this
    // second; an idle one next to nothing.
    let before = cpu_ticks(daemon.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(daemon.pid()) - before;
    assert!(
        used < 30,
        "the idle interchange used {used} ticks in 1 s\n{}",
        daemon.log()
    );
    client.shut_down(&mut daemon);
}
