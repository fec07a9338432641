//! The interchange's Prometheus endpoint, end to end: the real
//! `interchange` with `--metrics-listen` and a real `pool-manager` run a
//! few tasks; `/metrics` is scraped over HTTP, its values checked, and its
//! text checked by `promtool check metrics` (Debian package `prometheus`).
//! Build the binaries first: `cargo build --workspace --bins`.

use e2e::client::raw_dealer;
use e2e::daemon::{Launch, Stdout};
use e2e::{binary, task, wait_for, ManagerOptions, RawClient, Scenario, Security, WAIT};
use protocol::{ResourceRequest, TaskState};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An HTTP response: status code, headers (names lowercase) and body.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// One HTTP/1.1 request to `address`, read to its end.
fn http(address: SocketAddr, method: &str, path: &str, accept: Option<&str>) -> Response {
    let mut stream = TcpStream::connect_timeout(&address, WAIT)
        .unwrap_or_else(|error| panic!("cannot connect to the metrics at {address}: {error}"));
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let accept = accept.map_or_else(String::new, |accept| format!("Accept: {accept}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{accept}Connection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .unwrap_or_else(|error| panic!("cannot read the answer to {method} {path}: {error}"));
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {raw:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The value of the sample `series` (name with labels, as written) in
/// Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The metrics address the interchange logged (`metrics served url=...`).
fn metrics_address(log: &str) -> SocketAddr {
    log.lines()
        .find_map(|line| {
            let url = line.split("url=http://").nth(1)?;
            url.split('/').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no 'metrics served url=' line in the interchange's log:\n{log}"))
}

/// `promtool` on `PATH`, or a failure naming the package that has it.
fn promtool() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("promtool"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "promtool not found on PATH: install the Debian package prometheus \
                 (apt-get install --no-install-recommends prometheus, or sudo ./scripts/deps.sh --tests)"
            )
        })
}

/// Runs `promtool check metrics` on `file`; fails the test with its output
/// unless it accepts the text.
fn promtool_check(file: &Path) {
    let output = testkit::run_bounded(
        "promtool check metrics",
        Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" check metrics < \"$1\"")
            .arg(promtool())
            .arg(file),
        WAIT,
    );
    assert!(
        output.status.success(),
        "promtool check metrics refused {}:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn metrics_count_tasks_and_pass_promtool() {
    let promtool = promtool();
    let scenario = Scenario::new("metrics");
    let interchange = scenario.start_secure_interchange(&["--metrics-listen", "127.0.0.1:0"]);
    let address = metrics_address(&interchange.daemon.log());
    assert!(address.ip().is_loopback(), "{address}");
    let _manager = scenario.start_manager(&interchange, ManagerOptions::new("m1", &["n1", "n2"]));
    let mut client = RawClient::connect(&interchange);
    client.wait_n_managers(1);

    // Three tasks complete, one fails, one is refused at once; and a frame
    // that is not a message.
    let mut ids = Vec::new();
    for command in ["true", "echo two", "true", "exit 3"] {
        ids.push(client.submit_one(task(command)));
    }
    let mut invalid = task("true");
    invalid.resources = ResourceRequest::new().with("num_nodes", 0);
    let invalid_id = invalid.task_id;
    assert_eq!(client.submit(vec![invalid]), 0);
    let mut states = Vec::new();
    for task_id in ids.iter().chain([&invalid_id]) {
        states.push(client.wait_result(*task_id, WAIT).state);
    }
    assert_eq!(
        states,
        [
            TaskState::Completed,
            TaskState::Completed,
            TaskState::Completed,
            TaskState::Failed,
            TaskState::Failed
        ]
    );
    let garbage = raw_dealer(&interchange.client_url, &interchange.security);
    garbage
        .send(&b"\xc1 not msgpack"[..], 0)
        .expect("send garbage");

    // The snapshot is published after each turn of the poll loop: wait
    // for the last event to show.
    let text = wait_for("the metrics to count the bad message", WAIT, || {
        let response = http(address, "GET", "/metrics", None);
        (response.status == 200 && sample(&response.body, "rhtex_bad_messages_total") == Some(1.0))
            .then_some(response)
    });
    assert_eq!(
        text.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = text.body;
    for (series, expected) in [
        ("rhtex_tasks_submitted_total", 5.0),
        ("rhtex_tasks_dispatched_total", 4.0),
        ("rhtex_tasks_requeued_total", 0.0),
        ("rhtex_submits_busy_total", 0.0),
        ("rhtex_requests_denied_total", 0.0),
        (
            "rhtex_tasks_finished_total{state=\"completed\",error_kind=\"none\"}",
            3.0,
        ),
        (
            "rhtex_tasks_finished_total{state=\"failed\",error_kind=\"exit_code\"}",
            1.0,
        ),
        (
            "rhtex_tasks_finished_total{state=\"failed\",error_kind=\"invalid_spec\"}",
            1.0,
        ),
        ("rhtex_tasks_queued", 0.0),
        ("rhtex_tasks_running", 0.0),
        ("rhtex_managers{state=\"active\"}", 1.0),
        ("rhtex_managers{state=\"held\"}", 0.0),
        ("rhtex_managers{state=\"draining\"}", 0.0),
        ("rhtex_nodes{state=\"busy\"}", 0.0),
        ("rhtex_nodes{state=\"idle\"}", 2.0),
        ("rhtex_task_queue_wait_seconds_count", 4.0),
        ("rhtex_task_queue_wait_seconds_bucket{le=\"+Inf\"}", 4.0),
        ("rhtex_task_dispatch_latency_seconds_count", 4.0),
        ("rhtex_task_run_seconds_count", 4.0),
        ("rhtex_task_turnaround_seconds_count", 4.0),
    ] {
        assert_eq!(sample(&body, series), Some(expected), "{series} in\n{body}");
    }
    // The tasks took well under a minute each, start to result.
    for series in [
        "rhtex_task_run_seconds_bucket{le=\"60.0\"}",
        "rhtex_task_turnaround_seconds_bucket{le=\"60.0\"}",
    ] {
        assert_eq!(sample(&body, series), Some(4.0), "{series} in\n{body}");
    }
    let started = sample(&body, "process_start_time_seconds").expect("a start time");
    assert!(started > 1.6e9, "process_start_time_seconds {started}");
    assert!(
        !body.contains("rhtex_blocks"),
        "no provider, no blocks:\n{body}"
    );

    let file = scenario.file("metrics.txt");
    std::fs::write(&file, &body).expect("write the metrics");
    assert!(promtool.is_file());
    promtool_check(&file);

    // Prometheus asks for OpenMetrics and gets it, counters by family name.
    let openmetrics = http(
        address,
        "GET",
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert_eq!(openmetrics.status, 200);
    assert_eq!(
        openmetrics.headers.get("content-type").map(String::as_str),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(openmetrics
        .body
        .contains("# TYPE rhtex_tasks_submitted counter\n"));
    assert!(
        openmetrics.body.ends_with("# EOF\n"),
        "{}",
        openmetrics.body
    );

    // Read-only, one path.
    let head = http(address, "HEAD", "/metrics", None);
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(http(address, "GET", "/", None).status, 404);
    assert_eq!(http(address, "GET", "/metrics/x", None).status, 404);
    let post = http(address, "POST", "/metrics", None);
    assert_eq!(post.status, 405);
    assert_eq!(
        post.headers.get("allow").map(String::as_str),
        Some("GET, HEAD")
    );
}

#[test]
fn an_address_in_use_is_a_setup_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let address = taken.local_addr().expect("its address").to_string();
    let scenario = Scenario::new("metrics-in-use");
    let launch = Launch::new("interchange", binary("interchange"))
        .args(["--insecure", "--run-dir"])
        .args([scenario.file("run")])
        .args(["--metrics-listen", address.as_str()])
        .stdout(Stdout::File);
    let mut daemon = scenario.spawn(launch);
    let status = daemon.wait_exit(WAIT);
    assert_eq!(status.code(), Some(2), "{}", daemon.log());
    let log = daemon.log();
    assert!(
        log.contains(&format!("cannot serve metrics at {address}")),
        "{log}"
    );
    assert!(daemon.stdout_text().is_empty(), "no ready line expected");
    drop(taken);
}

#[test]
fn an_address_other_than_loopback_is_served_with_a_warning() {
    let scenario = Scenario::new("metrics-wildcard");
    let interchange = scenario.start_interchange(
        "interchange",
        &Security::Insecure,
        &["--metrics-listen", "0.0.0.0:0"],
    );
    let log = interchange.daemon.log();
    assert!(
        log.lines()
            .any(|line| line.contains("WARN") && line.contains("other than loopback")),
        "{log}"
    );
    let bound = metrics_address(&log);
    assert!(bound.ip().is_unspecified(), "{bound}");
    let loopback = SocketAddr::from(([127, 0, 0, 1], bound.port()));
    let response = http(loopback, "GET", "/metrics", None);
    assert_eq!(response.status, 200);
    assert_eq!(
        sample(&response.body, "rhtex_tasks_submitted_total"),
        Some(0.0)
    );
}

#[test]
fn with_a_provider_blocks_are_counted_by_state() {
    let scenario = Scenario::new("metrics-blocks");
    let config = scenario.file("interchange.toml");
    std::fs::write(
        &config,
        format!(
            "run_dir = \"{run}\"\ninsecure = true\nmetrics_listen = \"127.0.0.1:0\"\n\
             journal = false\nheartbeat_period = 0.2\nheartbeat_threshold = 5\n\
             [provider]\nkind = \"local\"\nnodes_per_block = 1\nmin_blocks = 1\nmax_blocks = 1\n\
             poll_period = 0.2\npool_manager = \"{pool_manager}\"\n",
            run = scenario.file("run").display(),
            pool_manager = binary("pool-manager").display(),
        ),
    )
    .expect("write the config file");
    let launch = Launch::new("interchange", binary("interchange"))
        .args(["--config".as_ref(), config.as_os_str()])
        .args(["--log-level", "debug"])
        .stdout(Stdout::Piped);
    let mut daemon = scenario.spawn(launch);
    testkit::read_interchange_ready(&mut daemon, WAIT);
    let address = metrics_address(&daemon.log());
    let body = wait_for("the block's manager to show as connected", WAIT, || {
        let response = http(address, "GET", "/metrics", None);
        (sample(&response.body, "rhtex_blocks{state=\"connected\"}") == Some(1.0))
            .then_some(response.body)
    });
    for (series, expected) in [
        ("rhtex_blocks{state=\"pending\"}", 0.0),
        ("rhtex_blocks{state=\"failed\"}", 0.0),
        ("rhtex_managers{state=\"active\"}", 1.0),
        ("rhtex_nodes{state=\"idle\"}", 1.0),
    ] {
        assert_eq!(sample(&body, series), Some(expected), "{series} in\n{body}");
    }
    // SIGTERM: without a journal (nothing could adopt it after a restart)
    // the interchange stops its block (a pool-manager in a process group
    // of its own) before it exits.
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let status = daemon.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
}
