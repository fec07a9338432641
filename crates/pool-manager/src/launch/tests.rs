use super::*;

/// The core names signals without `nix`; its table must say what `nix`
/// says on this platform.
#[test]
fn the_core_names_signals_as_nix_does() {
    for number in -1..=64 {
        let expected = Signal::try_from(number)
            .map(|signal| signal.as_str())
            .unwrap_or("unknown signal");
        assert_eq!(
            pool_manager_core::signal_name(number),
            expected,
            "signal {number}"
        );
    }
}

fn launch(dir: &Path, command: &str) -> Launch {
    Launch {
        task_id: TaskId::from_u128(1),
        command: command.into(),
        env: [("ONLY".to_string(), "this".to_string())]
            .into_iter()
            .collect(),
        cwd: dir.to_path_buf(),
        stdout: dir.join("out/t.stdout"),
        stderr: dir.join("out/t.stderr"),
        nodes: vec!["n1".into()],
        input: None,
        output: OutputFile {
            path: dir.join("out/t.output"),
            max_bytes: 1024,
        },
    }
}

/// A launch thread whose tasks are contained by their process group
/// only, as the tests here need no cgroup.
fn launcher(kill_grace: Duration) -> (Launcher, Events) {
    launcher_with(kill_grace, Fallbacks::default())
}

/// [`launcher`] with the `fallbacks` forced.
fn launcher_with(kill_grace: Duration, fallbacks: Fallbacks) -> (Launcher, Events) {
    let (sender, events) = mpsc::unbounded_channel();
    let launcher =
        Launcher::start_with(Containment::process_groups(), kill_grace, sender, fallbacks)
            .expect("launch thread");
    (launcher, Events::from(events))
}

/// The launch thread's events, one at a time.
struct Events {
    receiver: mpsc::UnboundedReceiver<Vec<Event>>,
    pending: std::collections::VecDeque<Event>,
}

impl From<mpsc::UnboundedReceiver<Vec<Event>>> for Events {
    fn from(receiver: mpsc::UnboundedReceiver<Vec<Event>>) -> Self {
        Self {
            receiver,
            pending: std::collections::VecDeque::new(),
        }
    }
}

async fn next_event(events: &mut Events) -> Event {
    loop {
        if let Some(event) = events.pending.pop_front() {
            return event;
        }
        let batch = tokio::time::timeout(Duration::from_secs(20), events.receiver.recv())
            .await
            .expect("the task ends within 20 s")
            .expect("channel open");
        events.pending.extend(batch);
    }
}

async fn next(events: &mut Events) -> Ended {
    match next_event(events).await {
        Event::Ended(ended) => ended,
        Event::Failed(failed) => panic!("the task failed to start: {}", failed.error),
    }
}

/// Starts `task` (1 s kill grace) and waits for its end.
async fn run_to_end(task: &Launch) -> Ended {
    let (launcher, mut events) = launcher(Duration::from_secs(1));
    launcher.launch(task.clone(), tracing::Span::none());
    next(&mut events).await
}

#[tokio::test]
async fn runs_with_exactly_the_given_environment() {
    let temp = tempfile::tempdir().expect("tempdir");
    let task = launch(temp.path(), "env | sort; pwd; echo oops >&2; exit 3");
    let end = run_to_end(&task).await;
    assert_eq!(end.exit.status, ExitStatus::Code(3));
    let stdout = String::from_utf8_lossy(&end.exit.stdout_tail).into_owned();
    assert!(stdout.contains("ONLY=this\n"), "{stdout}");
    assert!(
        !stdout.contains("HOME="),
        "environment is cleared: {stdout}"
    );
    assert!(
        stdout.contains(&temp.path().display().to_string()),
        "{stdout}"
    );
    assert_eq!(end.exit.stderr_tail, b"oops\n");
    assert!(end.exit.end_time >= end.exit.start_time);
}

#[tokio::test]
async fn tails_are_bounded() {
    let temp = tempfile::tempdir().expect("tempdir");
    let task = launch(temp.path(), "head -c 100000 /dev/zero; printf END");
    let end = run_to_end(&task).await;
    assert_eq!(end.exit.stdout_tail.len(), MAX_TAIL_BYTES);
    assert!(end.exit.stdout_tail.ends_with(b"END"));
}

#[tokio::test]
async fn input_is_written_before_and_output_read_after_then_both_removed() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut task = launch(temp.path(), "od -An -tx1 \"$IN\" > \"$OUT\"");
    let input_path = temp.path().join("tasks/t.input");
    task.input = Some(pool_manager_core::TaskInput {
        path: input_path.clone(),
        bytes: vec![0x80, 0xff, 0x00],
    });
    task.env
        .insert("IN".into(), input_path.display().to_string());
    task.env
        .insert("OUT".into(), task.output.path.display().to_string());
    let end = run_to_end(&task).await;
    let expected = b" 80 ff 00\n".to_vec();
    assert_eq!(
        end.exit.output,
        TaskOutput::Read {
            size: expected.len() as u64,
            bytes: expected,
        }
    );
    assert!(!input_path.exists(), "the input file is removed");
    assert!(!task.output.path.exists(), "the output file is removed");
}

#[test]
fn output_is_read_up_to_the_limit_plus_one_byte() {
    let temp = tempfile::tempdir().expect("tempdir");
    let output = OutputFile {
        path: temp.path().join("t.output"),
        max_bytes: 10,
    };
    assert_eq!(read_output(&output), TaskOutput::Absent);
    std::fs::write(&output.path, vec![7u8; 5000]).expect("write");
    assert_eq!(
        read_output(&output),
        TaskOutput::Read {
            bytes: vec![7u8; 11],
            size: 5000,
        }
    );
    std::fs::remove_file(&output.path).expect("remove");
    std::fs::create_dir(&output.path).expect("mkdir");
    assert!(matches!(read_output(&output), TaskOutput::Unreadable(_)));
}

#[tokio::test]
async fn launch_failures_name_the_path() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (launcher, mut events) = launcher(Duration::ZERO);
    let failure = |event: Event| match event {
        Event::Failed(failed) => failed.error,
        Event::Ended(ended) => panic!("the task ran: {ended:?}"),
    };
    let mut task = launch(temp.path(), "true");
    task.cwd = temp.path().join("missing");
    launcher.launch(task, tracing::Span::none());
    let error = failure(next_event(&mut events).await).to_string();
    assert!(error.contains("missing"), "{error}");
    assert!(error.contains("No such file or directory"), "{error}");
    std::fs::write(temp.path().join("file"), b"").expect("write");
    let mut task = launch(temp.path(), "true");
    task.cwd = temp.path().join("file");
    launcher.launch(task, tracing::Span::none());
    let error = failure(next_event(&mut events).await).to_string();
    assert!(error.contains("working directory"), "{error}");
    assert!(error.to_lowercase().contains("not a directory"), "{error}");
    let mut task = launch(temp.path(), "true");
    task.stdout = temp.path().join("file/under/a/file");
    launcher.launch(task, tracing::Span::none());
    let error = failure(next_event(&mut events).await);
    assert!(error.to_string().contains("file/under/a"), "{error}");
}

/// A missing directory of a stdout or stderr file is created.
#[tokio::test]
async fn missing_output_directories_are_created() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut task = launch(temp.path(), "echo out; echo err >&2");
    task.stdout = temp.path().join("a/b/t.stdout");
    task.stderr = temp.path().join("c/t.stderr");
    let end = run_to_end(&task).await;
    assert_eq!(end.exit.stdout_tail, b"out\n");
    assert_eq!(end.exit.stderr_tail, b"err\n");
    // One file for both: both tails are its tail.
    task.stderr = task.stdout.clone();
    let end = run_to_end(&task).await;
    assert_eq!(end.exit.stdout_tail, b"out\nerr\n");
    assert_eq!(end.exit.stderr_tail, end.exit.stdout_tail);
}

/// Where the launch thread cannot have a working directory of its own,
/// `std::process::Command` starts the task, with the same environment,
/// directory and files.
#[tokio::test]
async fn the_std_fallback_runs_tasks_the_same_way() {
    let temp = tempfile::tempdir().expect("tempdir");
    let task = launch(temp.path(), "env | sort; pwd; echo oops >&2; exit 3");
    let (launcher, mut events) = launcher_with(
        Duration::from_secs(1),
        Fallbacks {
            std_command: true,
            no_pidfd: false,
        },
    );
    launcher.launch(task, tracing::Span::none());
    let end = next(&mut events).await;
    assert_eq!(end.exit.status, ExitStatus::Code(3));
    let stdout = String::from_utf8_lossy(&end.exit.stdout_tail).into_owned();
    assert!(stdout.contains("ONLY=this\n"), "{stdout}");
    assert!(!stdout.contains("HOME="), "{stdout}");
    assert!(
        stdout.contains(&temp.path().display().to_string()),
        "{stdout}"
    );
    assert_eq!(end.exit.stderr_tail, b"oops\n");
}

/// Where the kernel has no pidfds, children are polled: their ends,
/// kills included, are seen all the same.
#[tokio::test]
async fn children_without_pidfds_are_polled() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (launcher, mut events) = launcher_with(
        Duration::from_secs(1),
        Fallbacks {
            std_command: false,
            no_pidfd: true,
        },
    );
    launcher.launch(launch(temp.path(), "exit 4"), tracing::Span::none());
    let end = next(&mut events).await;
    assert_eq!(end.exit.status, ExitStatus::Code(4));
    let mut handle = launcher.launch(launch(temp.path(), "sleep 1000"), tracing::Span::none());
    handle.kill(KillReason::Cancelled);
    let end = next(&mut events).await;
    assert_eq!(end.exit.status, ExitStatus::Signal(15));
}

#[tokio::test]
async fn kill_terminates_the_whole_group_then_escalates() {
    become_subreaper();
    let temp = tempfile::tempdir().expect("tempdir");
    let (launcher, mut ended) = launcher(Duration::from_millis(200));
    // The group ignores SIGTERM, so only the SIGKILL after the grace ends it.
    let task = launch(temp.path(), "trap '' TERM; sleep 1000 & echo started; wait");
    let mut handle = launcher.launch(task.clone(), tracing::Span::none());
    // Wait (bounded) until bash has started its background sleep.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while read_tail(&task.stdout).is_empty() {
        assert!(std::time::Instant::now() < deadline, "task did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.kill(KillReason::Cancelled);
    let end = next(&mut ended).await;
    let group = Pid::from_raw(i32::try_from(end.pid).expect("pid"));
    assert_eq!(end.exit.status, ExitStatus::Signal(9));
    assert_eq!(
        killpg(group, None),
        Err(nix::errno::Errno::ESRCH),
        "the group is gone"
    );
}
