//! The metrics endpoint (`--metrics-listen`): Prometheus metrics over HTTP
//! at `GET /metrics`, read-only.
//!
//! The poll loop never waits on HTTP: after every turn it hands the core's
//! [`interchange_core::Metrics`] snapshot to [`MetricsServer::publish`]
//! (a copy of a few hundred numbers into a mutex), and a thread of its own
//! answers requests from the last snapshot, so a request never touches
//! the core. The text is encoded by `prometheus-client` (OpenMetrics);
//! a scraper that asks for OpenMetrics (`Accept:
//! application/openmetrics-text`, as Prometheus does) gets it as is, any
//! other gets the Prometheus text format 0.0.4, which differs only in
//! naming a counter's family with its `_total` suffix and having no
//! `# EOF` line ([`prometheus_text`]). Other paths get 404, methods other
//! than GET and HEAD 405. README.md, "Metrics", lists every metric.

use interchange_core::{Histogram, Metrics};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use protocol::BlockState;
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// The port Prometheus exporters of this kind use by convention (shown in
/// the docs' examples; `--metrics-listen` has no default: off unless set).
pub const EXAMPLE_PORT: u16 = 9464;

/// Every block state, so that each has a series (zero included).
const BLOCK_STATES: [BlockState; 6] = [
    BlockState::Pending,
    BlockState::Running,
    BlockState::Connected,
    BlockState::Draining,
    BlockState::Ended,
    BlockState::Failed,
];

const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Parses a `--metrics-listen` address: `PORT` (on 127.0.0.1),
/// `localhost:PORT`, `IPV4:PORT` or `[IPV6]:PORT`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        }
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!(
            "{text:?} is not PORT, localhost:PORT, IPV4:PORT or [IPV6]:PORT \
             (for example {EXAMPLE_PORT} or 127.0.0.1:{EXAMPLE_PORT})"
        )
    })
}

/// What the endpoint shows besides the core's snapshot.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    /// When the interchange started, in seconds since the Unix epoch.
    pub start_time: f64,
    /// Whether a `[provider]` runs blocks (then `rhtex_blocks` is shown).
    pub with_provider: bool,
}

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics at {address} (--metrics-listen): {message}")]
pub struct MetricsError {
    pub address: SocketAddr,
    pub message: String,
}

/// The HTTP thread and the last published snapshot. Dropping it stops the
/// thread.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    snapshot: Arc<Mutex<Option<Metrics>>>,
    thread: Option<JoinHandle<()>>,
    /// The address bound (with the port chosen, if 0 was given).
    pub address: SocketAddr,
}

impl MetricsServer {
    /// Binds `address` and starts the thread that answers requests.
    pub fn start(address: SocketAddr, info: ProcessInfo) -> Result<Self, MetricsError> {
        let server = tiny_http::Server::http(address).map_err(|error| MetricsError {
            address,
            message: error.to_string(),
        })?;
        let bound = server.server_addr().to_ip().unwrap_or(address);
        let server = Arc::new(server);
        let snapshot: Arc<Mutex<Option<Metrics>>> = Arc::new(Mutex::new(None));
        let thread = std::thread::Builder::new()
            .name("metrics".to_owned())
            .spawn({
                let server = Arc::clone(&server);
                let snapshot = Arc::clone(&snapshot);
                move || serve(&server, &snapshot, &info)
            })
            .map_err(|error| MetricsError {
                address,
                message: format!("cannot start its thread: {error}"),
            })?;
        Ok(Self {
            server,
            snapshot,
            thread: Some(thread),
            address: bound,
        })
    }

    /// Makes `metrics` what requests see from now on.
    pub fn publish(&self, metrics: Metrics) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = Some(metrics);
    }
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers requests until the server is unblocked.
fn serve(server: &tiny_http::Server, snapshot: &Mutex<Option<Metrics>>, info: &ProcessInfo) {
    for request in server.incoming_requests() {
        let response = respond(&request, snapshot, info);
        if let Err(error) = request.respond(response) {
            tracing::debug!(%error, "metrics response not sent");
        }
    }
}

fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn text_response(status: u16, text: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut response = tiny_http::Response::from_string(text).with_status_code(status);
    if let Some(content_type) = header("Content-Type", "text/plain; charset=utf-8") {
        response.add_header(content_type);
    }
    response
}

fn respond(
    request: &tiny_http::Request,
    snapshot: &Mutex<Option<Metrics>>,
    info: &ProcessInfo,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let path = request.url().split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return text_response(404, "not found: the metrics are at /metrics\n");
    }
    if !matches!(
        request.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    ) {
        let mut response = text_response(405, "method not allowed: use GET\n");
        if let Some(allow) = header("Allow", "GET, HEAD") {
            response.add_header(allow);
        }
        return response;
    }
    let openmetrics = request.headers().iter().any(|header| {
        header.field.equiv("Accept")
            && header
                .value
                .as_str()
                .contains("application/openmetrics-text")
    });
    let metrics = snapshot
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let Some(metrics) = metrics else {
        return text_response(503, "the interchange is starting\n");
    };
    let text = match encode(&metrics, info) {
        Ok(text) => text,
        Err(error) => {
            tracing::warn!(%error, "cannot encode the metrics");
            return text_response(500, "cannot encode the metrics\n");
        }
    };
    let (body, content_type) = if openmetrics {
        (text, OPENMETRICS_TYPE)
    } else {
        (prometheus_text(&text), PROMETHEUS_TYPE)
    };
    let mut response = tiny_http::Response::from_string(body);
    if let Some(content_type) = header("Content-Type", content_type) {
        response.add_header(content_type);
    }
    response
}

/// A duration histogram of the core, encoded as a Prometheus histogram.
#[derive(Debug)]
struct Durations(Histogram);

impl EncodeMetric for Durations {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self.0.buckets().collect();
        encoder.encode_histogram::<NoLabelSet>(self.0.sum(), self.0.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

type Labels = Vec<(&'static str, String)>;

fn counter(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

fn by_state<'a>(values: impl IntoIterator<Item = (&'a str, u64)>) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    for (state, value) in values {
        family
            .get_or_create(&vec![("state", state.to_owned())])
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }
    family
}

/// The metrics as OpenMetrics text, as `prometheus-client` encodes them.
pub fn encode(metrics: &Metrics, info: &ProcessInfo) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register(
        "rhtex_tasks_submitted",
        "Task submissions received, accepted or refused",
        counter(metrics.n_tasks_submitted),
    );
    registry.register(
        "rhtex_tasks_dispatched",
        "Times a task was sent to a manager (a retried task counts again)",
        counter(metrics.n_tasks_dispatched),
    );
    registry.register(
        "rhtex_tasks_requeued",
        "Times a task went back to the queue after its manager was lost",
        counter(metrics.n_tasks_requeued),
    );
    let finished = Family::<Labels, Counter>::default();
    let mut by_labels: BTreeMap<(&str, &str), u64> = BTreeMap::from([(("completed", "none"), 0)]);
    for (labels, n_tasks) in &metrics.n_tasks_finished {
        *by_labels
            .entry((labels.state, labels.error_kind))
            .or_default() += n_tasks;
    }
    for ((state, error_kind), n_tasks) in by_labels {
        finished
            .get_or_create(&vec![
                ("state", state.to_owned()),
                ("error_kind", error_kind.to_owned()),
            ])
            .inc_by(n_tasks);
    }
    registry.register(
        "rhtex_tasks_finished",
        "Tasks with a final result, by state (completed, failed, cancelled) and error kind \
         (none for completed tasks)",
        finished,
    );
    registry.register(
        "rhtex_tasks_queued",
        "Tasks waiting in the queue",
        gauge(metrics.n_tasks_queued),
    );
    registry.register(
        "rhtex_tasks_running",
        "Tasks running on a manager",
        gauge(metrics.n_tasks_running),
    );
    let managers_and_nodes = [
        (
            "rhtex_managers",
            "Registered pool-managers by state: active (takes tasks), held, draining",
            vec![
                ("active", metrics.n_managers_active),
                ("held", metrics.n_managers_held),
                ("draining", metrics.n_managers_draining),
            ],
        ),
        (
            "rhtex_nodes",
            "Nodes of registered pool-managers: busy (running a task) or idle",
            vec![
                ("busy", metrics.n_nodes_busy),
                ("idle", metrics.n_nodes_idle),
            ],
        ),
    ];
    for (name, help, states) in managers_and_nodes {
        registry.register(name, help, by_state(states));
    }
    if info.with_provider {
        let mut blocks: BTreeMap<&str, u64> = BLOCK_STATES
            .iter()
            .map(|state| (state.as_str(), 0))
            .collect();
        for (state, n_blocks) in &metrics.n_blocks {
            *blocks.entry(state).or_default() += n_blocks;
        }
        registry.register(
            "rhtex_blocks",
            "The provider's blocks by state",
            by_state(blocks),
        );
    }
    registry.register(
        "rhtex_bad_messages",
        "Frames that did not decode and messages that made no sense, from clients and managers",
        counter(metrics.n_bad_messages),
    );
    registry.register(
        "rhtex_submits_busy",
        "Submits refused as a whole as busy: their input would take the input held for \
         unfinished tasks past max_queued_input_bytes",
        counter(metrics.n_busy_submits),
    );
    registry.register(
        "rhtex_requests_denied",
        "Client requests refused because the client identity may not make them (another \
         identity's task, or an admin command from a non-admin)",
        counter(metrics.n_denied_requests),
    );
    registry.register(
        "rhtex_task_queue_wait_seconds",
        "From a task entering the queue (submitted, or queued again) to its dispatch",
        Durations(metrics.queue_wait.clone()),
    );
    registry.register(
        "rhtex_task_dispatch_latency_seconds",
        "From a task's dispatch (interchange's wall clock) to its start on the manager \
         (manager's wall clock)",
        Durations(metrics.dispatch_latency.clone()),
    );
    registry.register(
        "rhtex_task_run_seconds",
        "A task's run time as its manager measured it (start to end)",
        Durations(metrics.run_time.clone()),
    );
    registry.register(
        "rhtex_task_turnaround_seconds",
        "From a task's submission to its final result, for tasks that were queued",
        Durations(metrics.turnaround.clone()),
    );
    let build_info = Family::<Labels, Gauge>::default();
    build_info
        .get_or_create(&vec![
            ("version", protocol::RHTEX_VERSION.to_owned()),
            ("protocol_version", protocol::PROTOCOL_VERSION.to_string()),
        ])
        .set(1);
    registry.register(
        "rhtex_build_info",
        "Always 1; its labels name the interchange's version and protocol version",
        build_info,
    );
    let start_time = Gauge::<f64, AtomicU64>::default();
    start_time.set(info.start_time);
    registry.register(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds",
        start_time,
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// OpenMetrics text (as [`encode`] writes it) in the Prometheus text
/// format 0.0.4: a counter's `# HELP` and `# TYPE` name its family with
/// the `_total` suffix its samples have, and there is no `# EOF`.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match comment.and_then(|(prefix, rest)| Some((prefix, rest.split_once(' ')?))) {
            Some((prefix, (name, rest))) if counters.contains(name) => {
                text.push_str(&format!("{prefix}{name}_total {rest}\n"));
            }
            _ => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use interchange_core::FinishedAs;

    #[test]
    fn listen_addresses() {
        let loopback = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        assert_eq!(parse_listen("9464"), Ok(loopback(9464)));
        assert_eq!(parse_listen("localhost:9464"), Ok(loopback(9464)));
        assert_eq!(
            parse_listen("0.0.0.0:9000").map(|address| address.to_string()),
            Ok("0.0.0.0:9000".to_owned())
        );
        assert_eq!(
            parse_listen("[::1]:9000").map(|address| address.to_string()),
            Ok("[::1]:9000".to_owned())
        );
        for bad in ["", "http://x:1", "host:9464", "70000", "1.2.3.4"] {
            assert!(parse_listen(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn sample() -> Metrics {
        let mut metrics = Metrics {
            n_tasks_submitted: 5,
            n_tasks_dispatched: 3,
            n_tasks_requeued: 0,
            n_tasks_finished: BTreeMap::from([(
                FinishedAs {
                    state: "failed",
                    error_kind: "exit_code",
                },
                2,
            )]),
            n_tasks_queued: 1,
            n_tasks_running: 1,
            n_managers_active: 1,
            n_managers_held: 0,
            n_managers_draining: 0,
            n_nodes_busy: 1,
            n_nodes_idle: 3,
            n_blocks: BTreeMap::from([("connected", 1)]),
            n_bad_messages: 4,
            n_busy_submits: 0,
            n_denied_requests: 0,
            queue_wait: Histogram::default(),
            dispatch_latency: Histogram::default(),
            run_time: Histogram::default(),
            turnaround: Histogram::default(),
        };
        metrics.run_time.observe(3.0);
        metrics.run_time.observe(100_000.0);
        metrics
    }

    #[test]
    fn the_text_has_every_metric_and_the_prometheus_format_names_counters_by_total() {
        let info = ProcessInfo {
            start_time: 1_700_000_000.5,
            with_provider: true,
        };
        let text = encode(&sample(), &info).expect("encodes");
        for line in [
            "# TYPE rhtex_tasks_submitted counter",
            "rhtex_tasks_submitted_total 5",
            "rhtex_tasks_finished_total{state=\"completed\",error_kind=\"none\"} 0",
            "rhtex_tasks_finished_total{state=\"failed\",error_kind=\"exit_code\"} 2",
            "rhtex_nodes{state=\"idle\"} 3",
            "rhtex_blocks{state=\"connected\"} 1",
            "rhtex_blocks{state=\"pending\"} 0",
            "rhtex_task_run_seconds_bucket{le=\"5.0\"} 1",
            "rhtex_task_run_seconds_bucket{le=\"86400.0\"} 1",
            "rhtex_task_run_seconds_bucket{le=\"+Inf\"} 2",
            "rhtex_task_run_seconds_count 2",
            "process_start_time_seconds 1700000000.5",
            "# EOF",
        ] {
            assert!(text.lines().any(|got| got == line), "{line:?} in\n{text}");
        }
        let prometheus = prometheus_text(&text);
        assert!(prometheus.contains("# TYPE rhtex_tasks_submitted_total counter\n"));
        assert!(prometheus.contains("# HELP rhtex_bad_messages_total Frames"));
        assert!(prometheus.contains("# TYPE rhtex_tasks_queued gauge\n"));
        assert!(!prometheus.contains("# EOF"));
        assert_eq!(
            prometheus.lines().count(),
            text.lines().count() - 1,
            "only the EOF line goes"
        );
        let without = encode(
            &sample(),
            &ProcessInfo {
                with_provider: false,
                ..info
            },
        )
        .expect("encodes");
        assert!(!without.contains("rhtex_blocks"), "{without}");
    }
}
