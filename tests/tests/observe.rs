//! Seeing what happens, end to end with the real binaries: the
//! interchange's event log (`events.jsonl`), `rhtex tasks`, the waiting
//! reason a waiting `rhtex` prints, a client failing at once when nothing
//! listens, and `rhtex report` rendered by headless Chromium
//! (`/usr/bin/chromium`, Debian package `chromium`). Build the binaries
//! first: `cargo build --workspace --bins`.

use e2e::cli::{self, connect_flags, strings};
use e2e::client::task_with;
use e2e::{task, wait_for, ManagerOptions, Scenario, WAIT};
use protocol::{Event, EventRecord, ResourceRequest, TaskId, TaskState};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The colours `rhtex report` gives tasks (its `svg::TASK_COLOURS`).
const TASK_COLOURS: [[u8; 3]; 10] = [
    [0x1f, 0x77, 0xb4],
    [0xff, 0x7f, 0x0e],
    [0x2c, 0xa0, 0x2c],
    [0xd6, 0x27, 0x28],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x17, 0xbe, 0xcf],
    [0xbc, 0xbd, 0x22],
    [0x39, 0x3b, 0x79],
];

fn nodes(n: i64) -> ResourceRequest {
    ResourceRequest::new().with("num_nodes", n)
}

/// The records of an event log.
fn records(path: &Path) -> Vec<EventRecord> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            EventRecord::from_json_line(line)
                .unwrap_or_else(|error| panic!("{error}: not an event record: {line}"))
        })
        .collect()
}

#[test]
fn the_event_log_and_rhtex_tasks_follow_every_task() {
    let scenario = Scenario::new("observe-log");
    let (interchange, manager, mut client) =
        scenario.start_pool(ManagerOptions::new("m1", &["n1", "n2"]));

    let (two_nodes, invalid) = (task_with("true", nodes(2)), task_with("true", nodes(0)));
    let ids: Vec<TaskId> = [task("true"), two_nodes, task("exit 3"), invalid]
        .into_iter()
        .map(|task| {
            let task_id = task.task_id;
            client.submit(vec![task]);
            task_id
        })
        .collect();
    let states: Vec<TaskState> = ids
        .iter()
        .map(|task_id| client.wait_result(*task_id, WAIT).state)
        .collect();
    assert_eq!(
        states,
        [
            TaskState::Completed,
            TaskState::Completed,
            TaskState::Failed,
            TaskState::Failed
        ]
    );

    // The log is written after each turn of the interchange's loop.
    let log = scenario.file("interchange-run").join("events.jsonl");
    let records = wait_for("every task_finished in the event log", WAIT, || {
        let records = records(&log);
        let n_finished = records
            .iter()
            .filter(|record| matches!(record.event, Event::TaskFinished { .. }))
            .count();
        (n_finished == ids.len()).then_some(records)
    });
    assert!(
        matches!(&records[0].event, Event::ManagerRegistered { manager_id, nodes, .. }
            if *manager_id == manager.manager_id && nodes == &["n1", "n2"]),
        "{records:#?}"
    );
    for record in &records {
        assert_eq!(
            record.time.len(),
            "2026-12-05T21:03:04.123Z".len(),
            "{record:?}"
        );
        assert!(
            record.time.ends_with('Z') && record.unix().is_some(),
            "{record:?}"
        );
    }
    let started_on: Vec<(TaskId, Vec<String>)> = records
        .iter()
        .filter_map(|record| match &record.event {
            Event::TaskStarted { task_id, nodes, .. } => Some((*task_id, nodes.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        started_on.len(),
        3,
        "the invalid task never started: {records:#?}"
    );
    assert_eq!(started_on[1], (ids[1], strings(&["n1", "n2"])));
    let exit_3 = records.iter().find_map(|record| match &record.event {
        Event::TaskFinished {
            task_id, exit_code, ..
        } if *task_id == ids[2] => *exit_code,
        _ => None,
    });
    assert_eq!(exit_3, Some(3));

    // rhtex tasks lists them all, oldest first, or by state.
    let listed = cli::run_connected(&scenario, &interchange, "tasks", &["--json", "tasks"]);
    assert_eq!(listed.code(), 0, "{listed:#?}");
    let json = listed.json();
    let tasks = json["tasks"].as_array().expect("a tasks array");
    let listed_ids: Vec<&str> = tasks
        .iter()
        .filter_map(|task| task["task_id"].as_str())
        .collect();
    let expected_ids: Vec<String> = ids.iter().map(TaskId::to_string).collect();
    assert_eq!(listed_ids, expected_ids, "{listed:#?}");
    assert_eq!(tasks[1]["nodes"], serde_json::json!(["n1", "n2"]));
    assert_eq!(tasks[2]["exit_code"], 3);
    assert_eq!(tasks[3]["error_kind"], "invalid_spec");
    assert!(tasks[0]["end_time"]
        .as_str()
        .is_some_and(|time| time.ends_with('Z')));

    let failed = cli::run_connected(
        &scenario,
        &interchange,
        "tasks-failed",
        &["tasks", "--state", "failed"],
    );
    assert_eq!(failed.code(), 0, "{failed:#?}");
    let lines: Vec<&str> = failed.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "header, 2 tasks, count: {failed:#?}");
    assert!(
        lines[1].contains(&ids[2].to_string()) && lines[1].ends_with('3'),
        "{failed:#?}"
    );
    assert!(lines[2].contains("invalid_spec"), "{failed:#?}");
    assert_eq!(lines[3], "2 tasks");
}

#[test]
fn a_waiting_command_says_why_on_stderr_only() {
    let scenario = Scenario::new("observe-waiting");
    let (interchange, _manager, mut client) =
        scenario.start_pool(ManagerOptions::new("small", &["s1"]));
    let task_id = client.submit_one(task_with("true", nodes(2)));

    let waited = cli::run_connected(
        &scenario,
        &interchange,
        "wait",
        &[
            "--json",
            "wait",
            "--wait-timeout",
            "6",
            &task_id.to_string(),
        ],
    );
    assert_eq!(
        waited.code(),
        1,
        "it gives up at --wait-timeout: {waited:#?}"
    );
    assert!(
        waited.stdout.trim().is_empty(),
        "nothing on stdout: {waited:#?}"
    );
    let said = "rhtex: 1 task queued: needs 2 nodes; the largest connected manager has 1\n";
    assert_eq!(
        waited.stderr.matches(said).count(),
        1,
        "said once (it does not change): {waited:#?}"
    );
}

/// A local TCP port where nothing listens (bound, then closed).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn a_client_fails_at_once_when_nothing_listens() {
    let scenario = Scenario::new("observe-nothing");
    let url = format!("tcp://127.0.0.1:{}", closed_port());
    for command in [&["status"][..], &["tasks"], &["submit", "--", "true"]] {
        let mut args = strings(&["--insecure", "--interchange", &url]);
        args.extend(strings(command));
        let began = Instant::now();
        let output = cli::run(&scenario, "nothing", &args);
        let took = began.elapsed();
        assert_eq!(output.code(), 1, "{output:#?}");
        assert!(
            output.stderr.contains(&format!("nothing listens at {url}")),
            "{output:#?}"
        );
        assert!(
            took < Duration::from_secs(10),
            "took {took:?}, not the 30 s timeout: {output:#?}"
        );
    }
}

/// Chromium, or a failure naming the package that has it.
fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(
        path.is_file(),
        "/usr/bin/chromium not found: install the Debian package chromium \
         (apt-get install --no-install-recommends chromium, or sudo ./scripts/deps.sh --tests)"
    );
    path
}

/// Renders `page` in headless Chromium at 1060 x 900 and returns the
/// screenshot's RGB pixels, row by row.
fn screenshot(scenario: &Scenario, page: &Path, name: &str) -> (u32, u32, Vec<[u8; 3]>) {
    let shot = scenario.file(&format!("{name}.png"));
    let profile = scenario.file(&format!("{name}-chromium-profile"));
    let output = testkit::run_bounded(
        "chromium --screenshot",
        Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--window-size=1060,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("file://{}", page.display())),
        Duration::from_secs(120),
    );
    assert!(
        shot.is_file(),
        "chromium wrote no screenshot ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let file = std::fs::File::open(&shot).expect("open the screenshot");
    let mut reader = png::Decoder::new(file).read_info().expect("a PNG");
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).expect("its pixels");
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let pixels = buffer[..info.buffer_size()]
        .chunks(channels)
        .map(|pixel| [pixel[0], pixel[1], pixel[2]])
        .collect();
    (info.width, info.height, pixels)
}

/// Where pixels of the task colours are: their count and bounding box
/// (x0, y0, x1, y1).
fn task_colour_pixels(width: u32, pixels: &[[u8; 3]]) -> (usize, (u32, u32, u32, u32)) {
    let mut count = 0;
    let mut bounds = (u32::MAX, u32::MAX, 0, 0);
    for (index, pixel) in pixels.iter().enumerate() {
        if TASK_COLOURS.contains(pixel) {
            let (x, y) = (index as u32 % width, index as u32 / width);
            count += 1;
            bounds = (
                bounds.0.min(x),
                bounds.1.min(y),
                bounds.2.max(x),
                bounds.3.max(y),
            );
        }
    }
    (count, bounds)
}

#[test]
fn the_report_of_a_run_shows_its_tasks_on_the_node_chart_in_chromium() {
    chromium();
    let scenario = Scenario::new("observe-report");
    let (interchange, _manager, mut client) =
        scenario.start_pool(ManagerOptions::new("m1", &["n1", "n2", "n3", "n4"]));
    let mut ids = Vec::new();
    for (command, n_nodes) in [
        ("sleep 0.6", 2),
        ("sleep 0.3", 1),
        ("sleep 0.4", 4),
        ("sleep 0.2", 1),
    ] {
        ids.push(client.submit_one(task_with(command, nodes(n_nodes))));
    }
    for task_id in &ids {
        assert_eq!(
            client.wait_result(*task_id, WAIT).state,
            TaskState::Completed
        );
    }
    let log = scenario.file("interchange-run").join("events.jsonl");
    wait_for("the last result in the event log", WAIT, || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.matches("\"task_finished\"").count() == ids.len()).then_some(())
    });

    let mut args = connect_flags(&interchange);
    args.extend(strings(&[
        "report",
        &log.display().to_string(),
        "-o",
        "report.html",
    ]));
    let report = cli::run(&scenario, "report", &args);
    assert_eq!(report.code(), 0, "{report:#?}");
    let page = scenario.file("report.html");
    let (width, height, pixels) = screenshot(&scenario, &page, "report");
    let (count, (x0, y0, x1, y1)) = task_colour_pixels(width, &pixels);
    // Four tasks on 4 nodes of 18 px rows, spread over the plot's width.
    assert!(
        count > 2_000,
        "only {count} pixels of task colours in the {width}x{height} screenshot"
    );
    assert!(
        x0 >= 150 && x1 <= 1010 && x1 - x0 > 400,
        "task bars from x {x0} to {x1}: not across the node chart's plot"
    );
    assert!(
        y0 >= 80 && y1 <= 260 && y1 - y0 >= 50,
        "task bars from y {y0} to {y1}: not in the node chart below the title"
    );

    // The same page of an empty log has no task bars: the check can fail.
    std::fs::write(scenario.file("empty.jsonl"), "").expect("an empty log");
    let empty = cli::run(
        &scenario,
        "report-empty",
        &strings(&["report", "empty.jsonl", "-o", "empty.html"]),
    );
    assert_eq!(empty.code(), 0, "{empty:#?}");
    let (width, _, pixels) = screenshot(&scenario, &scenario.file("empty.html"), "empty");
    assert_eq!(task_colour_pixels(width, &pixels).0, 0);
}
