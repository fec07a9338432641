//! The tokio shell around the manager core.
//!
//! [`run`] is the single entry point for `main` and for tests. It discovers
//! the nodes, loads the keys, prepares the run directory, connects the link,
//! then runs one loop that `select!`s over link events, child exits,
//! SIGTERM/SIGINT, the caller's shutdown future and a sleep until the
//! core's next deadline; it feeds each event to the core and performs the
//! core's outputs (send, launch, kill, exit). The core's time is this
//! process's monotonic clock in milliseconds since the core was created
//! (`Clock`); its exit reason becomes the exit code ([`exit_code::of`]).

use crate::config::{Config, Security};
use crate::containment::Containment;
use crate::exit_code;
use crate::launch::{self, Event, Launcher, TaskHandle};
use crate::nodes::{self, Nodes};
use pool_manager_core::{LinkStatus, Output, PoolManager, Settings};
use protocol::{FromManager, Registration, TaskId, ToManager};
use seam::Time;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::Instrument;
use transport::{Incoming, MessageLink};

/// The link to the interchange.
type InterchangeLink = MessageLink<FromManager, ToManager>;

/// How long queued messages (results, goodbye) may take to leave at exit.
const FLUSH_MS: u32 = 2000;

/// Runs the manager until it exits; returns the process exit code. The
/// `shutdown` future acts like SIGTERM when it completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> i32 {
    let span = tracing::info_span!("manager", manager_id = %config.manager_id, block_id = %config.block_id);
    async move {
        if config.exit_with_parent {
            if let Err(error) = parent_watch::exit_with_parent() {
                tracing::error!(%error, "cannot watch the parent process");
                return exit_code::USAGE;
            }
        }
        match prepare(&config) {
            Ok((link, settings)) => serve(config, link, settings, shutdown).await,
            Err(message) => {
                tracing::error!("{message}");
                exit_code::USAGE
            }
        }
    }
    .instrument(span)
    .await
}

fn prepare(config: &Config) -> Result<(InterchangeLink, Settings), String> {
    if config.security == Security::Insecure {
        tracing::warn!(
            "encryption is off (--insecure): anyone who can reach the interchange can read and send tasks"
        );
    }
    let security = config
        .security
        .manager_security()
        .map_err(|error| error.to_string())?;
    let Nodes { nodes, source } =
        nodes::discover_from_system(&config.node_choice).map_err(|error| error.to_string())?;
    tracing::info!(n_nodes = nodes.len(), nodes = %nodes.join(","), source = %source, "block nodes");

    let tasks_dir = config.run_dir.join("tasks");
    std::fs::create_dir_all(&tasks_dir).map_err(|error| {
        format!(
            "cannot create the run directory {}: {error}",
            tasks_dir.display()
        )
    })?;
    let run_dir = std::fs::canonicalize(&config.run_dir).map_err(|error| {
        format!(
            "cannot resolve the run directory {}: {error}",
            config.run_dir.display()
        )
    })?;

    let base_env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .collect();
    let hostname = nodes::this_hostname().unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot read this host's name");
        "unknown".to_owned()
    });
    let cpu_count = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let versions: BTreeMap<String, String> = [
        ("libzmq".to_owned(), transport::sockets::libzmq_version()),
        ("rhtex".to_owned(), protocol::RHTEX_VERSION.to_owned()),
        (
            "os".to_owned(),
            format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        ),
    ]
    .into_iter()
    .collect();
    let registration = Registration {
        protocol_version: protocol::PROTOCOL_VERSION,
        manager_id: config.manager_id,
        block_id: config.block_id.clone(),
        hostname,
        nodes,
        launcher: config.launcher,
        rhtex_version: protocol::RHTEX_VERSION.to_owned(),
        cpu_count,
        slots_per_node: Some(config.slots_per_node.unwrap_or(cpu_count).max(1)),
        versions,
        attempt: 0,
        running_tasks: Vec::new(),
        held_results: Vec::new(),
    };
    let identity = config.manager_id.to_string();
    let link = InterchangeLink::connect(&config.interchange, &security, Some(identity.as_bytes()))
        .map_err(|error| error.to_string())?;
    tracing::info!(
        interchange = %config.interchange,
        run_dir = %run_dir.display(),
        launcher = %config.launcher,
        slots_per_node = registration.slots_per_node.unwrap_or(1),
        "pool-manager started"
    );
    Ok((
        link,
        Settings {
            registration,
            interchange_url: config.interchange.clone(),
            run_dir,
            heartbeat_period: config.heartbeat_period,
            heartbeat_threshold: config.heartbeat_threshold,
            reattach_timeout: config.reattach_timeout,
            drain_period: config.drain_period,
            base_env,
        },
    ))
}

struct Running {
    handle: TaskHandle,
    span: tracing::Span,
}

/// The monotonic clock as the core sees it: [`Time`] in milliseconds since
/// the core was created.
#[derive(Clone, Copy, Debug)]
struct Clock {
    start: Instant,
}

impl Clock {
    fn start() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    fn now(&self) -> Time {
        Time::from_millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// When the clock reads `time` (a year from now if that is past what
    /// an `Instant` can hold).
    fn instant(&self, time: Time) -> Instant {
        self.start
            .checked_add(Duration::from_millis(time.as_millis()))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600))
    }
}

async fn serve(
    config: Config,
    mut link: InterchangeLink,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> i32 {
    launch::become_subreaper();
    let containment = Containment::detect(config.cgroups);
    let (mut sigterm, mut sigint) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, "cannot install signal handlers");
            close(link, 0).await;
            return exit_code::USAGE;
        }
    };
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Vec<Event>>();
    let launcher = match Launcher::start(containment, config.kill_grace, events_tx) {
        Ok(launcher) => launcher,
        Err(error) => {
            tracing::error!(%error, "cannot start the task launch thread");
            close(link, 0).await;
            return exit_code::USAGE;
        }
    };
    let mut tasks: HashMap<TaskId, Running> = HashMap::new();
    let clock = Clock::start();
    let mut core = PoolManager::new(settings, clock.now());
    tokio::pin!(shutdown);
    let mut shutdown_seen = false;
    let mut link_open = true;

    let (reason, message) = loop {
        // Perform every output the core has queued.
        let mut exit = None;
        // Results that follow one another go out as one `results` message.
        let mut results = ResultBatch::default();
        while let Some(output) = core.poll_output() {
            if let Output::Send(FromManager::Results { results: more }) = output {
                for result in more {
                    results.add(&link, result);
                }
                continue;
            }
            results.send(&link);
            match output {
                Output::Send(message) => send(&link, &message),
                Output::Launch(request) => {
                    let span = tracing::info_span!("task", task_id = %request.task_id);
                    let task_id = request.task_id;
                    let handle = launcher.launch(request, span.clone());
                    tasks.insert(task_id, Running { handle, span });
                }
                Output::Kill { task_id, reason } => match tasks.get_mut(&task_id) {
                    Some(running) => {
                        running
                            .span
                            .in_scope(|| tracing::info!(reason = reason.as_str(), "killing task"));
                        running.handle.kill(reason);
                    }
                    None => tracing::warn!(%task_id, "kill for a task with no process; ignored"),
                },
                Output::Exit { reason, message } => exit = Some((reason, message)),
            }
        }
        results.send(&link);
        if let Some(exit) = exit {
            break exit;
        }

        let deadline = core.poll_timeout();
        let sleep_until = tokio::time::Instant::from_std(
            deadline.map_or_else(Instant::now, |deadline| clock.instant(deadline)),
        );
        tokio::select! {
            incoming = link.recv(), if link_open => {
                let now = clock.now();
                match incoming {
                    Some(Incoming::Message(message)) => core.handle_message(now, message),
                    Some(Incoming::Undecodable(error)) => {
                        tracing::warn!(%error, n_undecodable = link.n_undecodable(), "undecodable frame from the interchange; ignored");
                        core.handle_undecodable(now)
                    }
                    Some(Incoming::Connected) => core.handle_link(now, LinkStatus::Connected),
                    Some(Incoming::Disconnected) => core.handle_link(now, LinkStatus::Disconnected),
                    Some(Incoming::ConnectRetried) => {}
                    Some(Incoming::HandshakeFailed(message)) => core.handle_link(now, LinkStatus::HandshakeFailed(message)),
                    Some(Incoming::Failed(message)) => core.handle_link(now, LinkStatus::Failed(message)),
                    None => {
                        link_open = false;
                        core.handle_link(now, LinkStatus::Failed("the link thread ended".to_owned()));
                    }
                }
            }
            Some(batch) = events_rx.recv() => {
                // The tasks that have ended by now (a bounded number of
                // batches per turn), so that their results leave together.
                let now = clock.now();
                let mut next = Some(batch);
                let mut n_taken = 0;
                while let Some(batch) = next {
                    for event in batch {
                        match event {
                            Event::Ended(ended) => {
                                if let Some(running) = tasks.remove(&ended.task_id) {
                                    running.span.in_scope(|| tracing::debug!(status = ?ended.exit.status, "task ended"));
                                }
                                core.handle_task_exited(now, ended.task_id, ended.exit);
                            }
                            Event::Failed(failed) => {
                                tasks.remove(&failed.task_id);
                                core.handle_launch_failed(now, failed.task_id, failed.error.to_string());
                            }
                        }
                        n_taken += 1;
                    }
                    next = if n_taken < ResultBatch::MAX_RESULTS {
                        events_rx.try_recv().ok()
                    } else {
                        None
                    };
                }
            }
            _ = sigterm.recv() => core.handle_terminate(clock.now(), "SIGTERM"),
            _ = sigint.recv() => core.handle_terminate(clock.now(), "SIGINT"),
            () = &mut shutdown, if !shutdown_seen => {
                shutdown_seen = true;
                core.handle_terminate(clock.now(), "a shutdown request");
            }
            () = tokio::time::sleep_until(sleep_until), if deadline.is_some() => {
                core.handle_timeout(clock.now());
            }
        }
    };

    let code = exit_code::of(&reason);
    if code == exit_code::CLEAN {
        tracing::info!(code, reason = %message, "pool-manager exiting");
    } else {
        tracing::error!(code, reason = %message, "pool-manager exiting");
    }
    close(link, FLUSH_MS).await;
    // The core has seen every task end; anything of theirs still alive
    // (re-parented to this subreaper, or left in their cgroups) goes now.
    match tokio::task::spawn_blocking(move || launcher.finish().map_or(0, Containment::finish))
        .await
    {
        Ok(0) => {}
        Ok(n_killed) => tracing::info!(n_killed, "killed task processes left at exit"),
        Err(error) => tracing::warn!(%error, "cannot clear task processes at exit"),
    }
    code
}

/// Queues a message for the interchange.
fn send(link: &InterchangeLink, message: &FromManager) {
    if let Err(error) = link.send(message) {
        tracing::warn!(%error, "cannot queue a message for the interchange");
    }
}

/// Results gathered to leave as one `results` message, kept well inside
/// the smallest message size limit an interchange runs with
/// (`protocol::limits::min_max_message_bytes`: room for one submit chunk
/// beside the overhead of one task).
#[derive(Debug, Default)]
struct ResultBatch {
    results: Vec<protocol::TaskResult>,
    n_bytes: u64,
}

impl ResultBatch {
    /// At most this many results in one message.
    const MAX_RESULTS: usize = 256;

    /// Adds a result, first sending what is gathered if it would not fit.
    fn add(&mut self, link: &InterchangeLink, result: protocol::TaskResult) {
        let n_bytes = Self::size_of(&result);
        if !self.results.is_empty()
            && (self.results.len() >= Self::MAX_RESULTS
                || self.n_bytes + n_bytes > protocol::limits::SUBMIT_CHUNK_BYTES)
        {
            self.send(link);
        }
        self.n_bytes += n_bytes;
        self.results.push(result);
    }

    /// Sends the results gathered, if any, as one message.
    fn send(&mut self, link: &InterchangeLink) {
        if !self.results.is_empty() {
            let message = FromManager::Results {
                results: std::mem::take(&mut self.results),
            };
            self.n_bytes = 0;
            send(link, &message);
        }
    }

    /// More than a result's encoded size: its variable parts, plus room for
    /// the field names and the fixed-size fields.
    fn size_of(result: &protocol::TaskResult) -> u64 {
        let strings = result
            .nodes
            .iter()
            .map(|node| node.len() + 8)
            .sum::<usize>()
            + result.block_id.as_ref().map_or(0, String::len)
            + result.stdout_path.as_ref().map_or(0, String::len)
            + result.stderr_path.as_ref().map_or(0, String::len)
            + result.error.as_ref().map_or(0, |error| error.message.len())
            + result.stdout_tail.len()
            + result.stderr_tail.len()
            + result.output.as_ref().map_or(0, Vec::len);
        strings as u64 + 1024
    }
}

/// Closes the link, giving queued messages up to `flush_ms` to leave.
async fn close(link: InterchangeLink, flush_ms: u32) {
    let _ = tokio::task::spawn_blocking(move || link.close(flush_ms)).await;
}
