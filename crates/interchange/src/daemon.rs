//! The shell: one thread, one `poll` over the client ROUTER, the manager
//! ROUTER, the ZAP socket, a signal pipe and (with a `[provider]`) the
//! provider's wake-up socket, feeding the core and performing its outputs.
//! With a provider, [`Provider::step`] runs after every turn (it looks at
//! the queue and the managers, and drains idle ones through the core).
//! When the loop ends the blocks are cancelled if the work is over (a
//! `shutdown` command) or if no next interchange could adopt them
//! (`--no-journal`, `--exit-with-parent`); otherwise (SIGTERM, SIGINT, a
//! failure) they are left running, recorded in the journal, for the next
//! interchange on the run directory to adopt.
//! With `--metrics-listen`, the core's [`interchange_core::Metrics`] are
//! published to the metrics thread after every turn (`crate::metrics`);
//! the loop never waits for HTTP.
//! With the journal on (the default), the core is rebuilt from the run
//! directory's journal at start, and every turn's journal records are
//! written and synced ([`crate::store`]) before any output of that turn is
//! sent.
//!
//! [`run`] is the one entry point, for `main` and for tests.

use crate::config::{Config, Security};
use crate::durable::Durable;
use crate::event_log::EventLog;
use crate::metrics::{MetricsError, MetricsServer, ProcessInfo};
use crate::provider::{Provider, ProviderContext, ProviderError};
use crate::run_dir::{LockError, RunDirLock};
use crate::sockets::{SendOutcome, Sockets};
use crate::store::StoreError;
use interchange_core::{
    decode_client_frame, decode_manager_frame, Core, CoreConfig, Output, PeerId, Socket,
};
use protocol::ReadyLine;
use seam::Time;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use transport::sockets::ServerSecurity;
use transport::{KeyError, TransportError};

/// Messages read from one socket before the loop looks at the others.
const RECV_BUDGET: usize = 4096;

/// How long the last messages get to leave when the interchange exits.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Why the interchange could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Binding the sockets failed (a bad or busy address).
    #[error(transparent)]
    Bind(TransportError),
    #[error("cannot create the run directory {path}: {source}")]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another interchange holds the run directory.
    #[error(transparent)]
    RunDirLocked(#[from] LockError),
    #[error("cannot set up the signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot write the ready line: {0}")]
    Ready(std::io::Error),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The journal cannot be read at start (another version, not a
    /// journal, unreadable): a setup error.
    #[error("{0}")]
    JournalSetup(StoreError),
    /// The journal cannot be written while running: the interchange
    /// cannot keep its promise that accepted tasks survive, so it stops.
    #[error("{0}")]
    Journal(StoreError),
}

/// The exit code when the journal cannot be written or read (a full disk,
/// an I/O error): `EX_IOERR` of sysexits.h. Nothing the journal does not
/// hold was confirmed to anyone; started again once the disk has room, the
/// interchange resumes from the journal.
pub const EXIT_JOURNAL_IO: u8 = 74;

impl DaemonError {
    /// The process's exit code: [`EXIT_JOURNAL_IO`] when the journal
    /// cannot be written or read, 2 for a setup error, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Journal(error) | DaemonError::JournalSetup(error)
                if error.io_failure().is_some() =>
            {
                EXIT_JOURNAL_IO
            }
            error if error.is_setup_error() => 2,
            _ => 1,
        }
    }

    /// True for problems with how the interchange was set up (keys, CURVE,
    /// addresses, the run directory), which `main` reports with exit code 2.
    pub fn is_setup_error(&self) -> bool {
        matches!(
            self,
            DaemonError::Keys(_)
                | DaemonError::Transport(TransportError::NoCurve)
                | DaemonError::Bind(_)
                | DaemonError::RunDir { .. }
                | DaemonError::RunDirLocked(_)
                | DaemonError::Signals(_)
                | DaemonError::Provider(_)
                | DaemonError::Metrics(_)
                | DaemonError::JournalSetup(_)
        )
    }
}

/// The shell's clock: monotonic milliseconds since start.
struct Clock {
    start: Instant,
}

impl Clock {
    fn now(&self) -> Time {
        Time::from_millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

/// Unregisters the signal handlers when dropped.
struct SignalPipe {
    read_end: UnixStream,
    ids: Vec<signal_hook::SigId>,
}

impl SignalPipe {
    fn new(signals: &[i32]) -> Result<Self, std::io::Error> {
        let (read_end, write_end) = UnixStream::pair()?;
        read_end.set_nonblocking(true)?;
        write_end.set_nonblocking(true)?;
        let mut ids = Vec::new();
        for &signal in signals {
            ids.push(signal_hook::low_level::pipe::register(
                signal,
                write_end.try_clone()?,
            )?);
        }
        Ok(Self { read_end, ids })
    }

    /// Empties the pipe; true if a signal arrived.
    fn take(&mut self) -> bool {
        let mut buffer = [0u8; 64];
        let mut signaled = false;
        loop {
            match self.read_end.read(&mut buffer) {
                Ok(0) => return signaled,
                Ok(_) => signaled = true,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return signaled,
            }
        }
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Runs the interchange until a `shutdown` command completes or SIGTERM or
/// SIGINT arrives. Writes the ready line to `ready` once both sockets are
/// bound.
pub fn run(config: &Config, ready: &mut dyn Write) -> Result<(), DaemonError> {
    let security = match &config.security {
        Security::Insecure => {
            tracing::warn!(
                "running with --insecure: no encryption and no authentication; \
                 anyone who can reach the ports can submit tasks"
            );
            ServerSecurity::Insecure
        }
        Security::Curve(keys_dir) => {
            transport::sockets::check_curve()?;
            let keys = load_keys(keys_dir)?;
            tracing::info!(keys_dir = %keys_dir.display(), "CURVE on");
            ServerSecurity::Curve(keys)
        }
    };
    std::fs::create_dir_all(&config.run_dir).map_err(|source| DaemonError::RunDir {
        path: config.run_dir.clone(),
        source,
    })?;
    // Held until `run` returns: no other interchange reads or writes this
    // run directory meanwhile.
    let _run_dir_lock = RunDirLock::take(&config.run_dir)?;
    let mut signals = SignalPipe::new(&[signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
        .map_err(DaemonError::Signals)?;
    let mut hangups =
        SignalPipe::new(&[signal_hook::consts::SIGHUP]).map_err(DaemonError::Signals)?;
    if config.exit_with_parent {
        parent_watch::exit_with_parent().map_err(DaemonError::Signals)?;
    }
    let mut sockets = Sockets::bind(
        &config.client_listen,
        &config.manager_listen,
        &security,
        config.max_message_bytes,
        config.core.heartbeat_threshold,
    )
    .map_err(DaemonError::Bind)?;
    let wall_clock_at_start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    let metrics = match config.metrics_listen {
        None => None,
        Some(address) => {
            let server = MetricsServer::start(
                address,
                ProcessInfo {
                    start_time: wall_clock_at_start,
                    with_provider: config.provider.is_some(),
                },
            )?;
            if !server.address.ip().is_loopback() {
                tracing::warn!(
                    address = %server.address,
                    "metrics served on an address other than loopback: anyone who can reach it \
                     can read them (there is no authentication)"
                );
            }
            tracing::info!(url = %format!("http://{}/metrics", server.address), "metrics served");
            Some(server)
        }
    };

    let mut event_log = match &config.events {
        None => None,
        Some(events) => match EventLog::open(events) {
            Ok(log) => {
                tracing::info!(path = %events.path.display(), "event log");
                Some(log)
            }
            Err(error) => {
                tracing::warn!(path = %events.path.display(), %error, "cannot open the event log; none is written");
                None
            }
        },
    };
    let clock = Clock {
        start: Instant::now(),
    };
    let wall_clock_at_zero = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    let (mut core, mut durable) = Durable::start(
        config,
        CoreConfig {
            max_block_nodes: crate::provider::max_block_nodes(
                config.core.max_block_nodes,
                config.provider.as_ref(),
            ),
            wall_clock_at_zero,
            ..config.core.clone()
        },
        clock.now(),
    )?;
    // The first snapshot is there before anyone learns the interchange is
    // ready.
    if let Some(metrics) = &metrics {
        metrics.publish(core.metrics());
    }

    let line = ReadyLine {
        client_url: sockets.client_url.clone(),
        manager_url: sockets.manager_url.clone(),
        pid: std::process::id(),
    }
    .to_line();
    let ready_file = config.run_dir.join("interchange.json");
    if let Err(error) = std::fs::write(&ready_file, format!("{line}\n")) {
        tracing::warn!(path = %ready_file.display(), %error, "cannot write the ready file");
    }
    writeln!(ready, "{line}").map_err(DaemonError::Ready)?;
    ready.flush().map_err(DaemonError::Ready)?;
    tracing::info!(
        client_url = %sockets.client_url,
        manager_url = %sockets.manager_url,
        "interchange ready"
    );

    let mut provider = match &config.provider {
        None => None,
        Some(provider_config) => {
            let context = ProviderContext {
                manager_url: sockets.manager_url.clone(),
                run_dir: absolute(&config.run_dir),
                keys_dir: config.security.keys_dir().map(absolute),
                heartbeat_period: config.core.heartbeat_period,
                heartbeat_threshold: config.core.heartbeat_threshold,
                wall_clock_at_zero,
                adopt: core.blocks().to_vec(),
            };
            Some(Provider::start(provider_config, &context, clock.now())?)
        }
    };

    let outcome = event_loop(
        &mut core,
        &mut sockets,
        Signals {
            stop: &mut signals,
            hangup: &mut hangups,
            keys_dir: config.security.keys_dir(),
        },
        provider.as_mut(),
        Observers {
            metrics: metrics.as_ref(),
            event_log: event_log.as_mut(),
        },
        &clock,
        &mut durable,
    );
    if let Err(DaemonError::Journal(error)) = &outcome {
        log_journal_failure(error);
    }
    if let Some(provider) = provider {
        match blocks_at_exit(config, outcome.as_ref().ok()) {
            BlocksAtExit::Cancel(why) => {
                tracing::info!("cancelling every block: {why}");
                provider.shutdown(clock.now(), &mut core);
            }
            BlocksAtExit::Keep => provider.keep_blocks(clock.now(), &mut core),
        }
        // The blocks' last states to the journal; after a failure the
        // failure is what is reported.
        let performed = perform(&mut core, &sockets, &clock, &mut durable, Until::Idle);
        if outcome.is_ok() {
            performed?;
        }
    }
    if let Some(log) = event_log.as_mut() {
        log.write_from(&mut core);
    }
    sockets.close(CLOSE_LINGER);
    outcome.map(|_| ())
}

/// Says why the interchange stops when its journal cannot be written, and
/// what becomes of the work.
fn log_journal_failure(error: &StoreError) {
    let (path, errno) = match error.io_failure() {
        Some((path, errno)) => (path.display().to_string(), errno),
        None => (String::new(), None),
    };
    tracing::error!(
        journal = %path,
        errno,
        %error,
        exit_code = EXIT_JOURNAL_IO,
        "the journal cannot be written: exiting, as nothing more can be made durable; \
         no client was told of a task or result the journal does not hold; managers keep \
         their tasks and blocks keep running; once the disk has room, start the interchange \
         again on this run directory (it resumes from the journal)"
    );
}

/// How the poll loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// A `shutdown` command completed: the work is over.
    Shutdown,
    /// SIGTERM or SIGINT (systemd's stop or restart): the work goes on
    /// without the interchange and resumes with the next one.
    Signal,
}

/// What becomes of the provider's blocks when the interchange exits.
#[derive(Debug, PartialEq, Eq)]
enum BlocksAtExit {
    /// Cancelled (scancel, qdel, SIGTERM to local pool-managers), for the
    /// reason given.
    Cancel(&'static str),
    /// Left running for the next interchange on this run directory, which
    /// adopts them from the journal.
    Keep,
}

/// Blocks are kept whenever a next interchange can adopt them: the
/// journal records them, the work was not ended by `shutdown`, and no
/// parent owns the interchange (`--exit-with-parent`: its parent is gone,
/// nothing starts it again). `ending` is `None` when the loop failed (a
/// crash, a journal that cannot be written), which keeps them as a kill -9
/// would.
fn blocks_at_exit(config: &Config, ending: Option<&Ending>) -> BlocksAtExit {
    if ending == Some(&Ending::Shutdown) {
        BlocksAtExit::Cancel("the shutdown command ends the work")
    } else if !config.journal {
        BlocksAtExit::Cancel(
            "without a journal (--no-journal) no next interchange could adopt them",
        )
    } else if config.exit_with_parent {
        BlocksAtExit::Cancel("the interchange runs for its parent (--exit-with-parent)")
    } else {
        BlocksAtExit::Keep
    }
}

/// `path` made absolute (blocks run elsewhere); as given if that fails.
fn absolute(path: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Feeds the core what arrived on `socket`, at most [`RECV_BUDGET`]
/// messages, so that the other sockets get their turn.
fn receive(
    core: &mut Core,
    sockets: &mut Sockets,
    clock: &Clock,
    socket: Socket,
) -> Result<(), DaemonError> {
    for _ in 0..RECV_BUDGET {
        let received = match socket {
            Socket::Client => sockets.recv_client()?,
            Socket::Manager => sockets.recv_manager()?,
        };
        let Some((peer, frame)) = received else {
            break;
        };
        tracing::trace!(peer = %peer, n_bytes = frame.len(), ?socket, "message");
        let now = clock.now();
        match socket {
            Socket::Client => match decode_client_frame(&frame) {
                Ok(message) => core.handle_client_message(now, peer, message),
                Err(undecodable) => core.handle_undecodable(now, socket, peer, undecodable),
            },
            Socket::Manager => match decode_manager_frame(&frame) {
                Ok(message) => core.handle_manager_message(now, peer, message),
                Err(undecodable) => core.handle_undecodable(now, socket, peer, undecodable),
            },
        }
    }
    Ok(())
}

/// Loads the interchange's keys and logs what they admit.
fn load_keys(keys_dir: &std::path::Path) -> Result<transport::ServerKeys, KeyError> {
    let keys = transport::keys::load_server_keys(keys_dir)?;
    for path in &keys.ignored {
        tracing::warn!(
            path = %path.display(),
            "key file ignored: it is no identity (server.key, manager.key, client.key or \
             client-NAME.key); rename it client-NAME.key to admit it as client identity NAME"
        );
    }
    let mut clients: Vec<&str> = keys.clients.values().map(String::as_str).collect();
    clients.sort_unstable();
    tracing::info!(
        keys_dir = %keys_dir.display(),
        client_identities = %clients.join(","),
        n_manager_keys = keys.managers.len(),
        "keys loaded"
    );
    Ok(keys)
}

/// The signal pipes: SIGTERM/SIGINT stop the interchange; SIGHUP reloads
/// the identities of the key directory.
struct Signals<'a> {
    stop: &'a mut SignalPipe,
    hangup: &'a mut SignalPipe,
    keys_dir: Option<&'a std::path::Path>,
}

impl Signals<'_> {
    /// SIGHUP: admit the identities the key directory holds now (added or
    /// removed ones); on an error the keys admitted so far stay.
    fn reload(&mut self, sockets: &mut Sockets) {
        if !self.hangup.take() {
            return;
        }
        let Some(keys_dir) = self.keys_dir else {
            tracing::info!("SIGHUP: no keys to reload (--insecure)");
            return;
        };
        match load_keys(keys_dir) {
            Ok(keys) => {
                sockets.set_admitted(transport::Admitted::from(&keys));
                tracing::info!("SIGHUP: identities reloaded; new connections use them");
            }
            Err(error) => {
                tracing::warn!(%error, "SIGHUP: cannot reload the keys; the ones loaded before stay");
            }
        }
    }
}

/// What watches the loop from outside: the metrics endpoint, and the
/// event log written after every turn.
struct Observers<'a> {
    metrics: Option<&'a MetricsServer>,
    event_log: Option<&'a mut EventLog>,
}

fn event_loop(
    core: &mut Core,
    sockets: &mut Sockets,
    mut signals: Signals<'_>,
    mut provider: Option<&mut Provider>,
    observers: Observers<'_>,
    clock: &Clock,
    durable: &mut Durable,
) -> Result<Ending, DaemonError> {
    let Observers {
        metrics,
        mut event_log,
    } = observers;
    let mut extra_fds = vec![
        signals.stop.read_end.as_raw_fd(),
        signals.hangup.read_end.as_raw_fd(),
    ];
    if let Some(provider) = &provider {
        extra_fds.push(provider.wake_fd());
    }
    // Last: the journal writer's wake-up (held outputs may go).
    let journal_fd = durable.wake_fd();
    extra_fds.extend(journal_fd);
    loop {
        if let Some(provider) = provider.as_deref_mut() {
            provider.step(clock.now(), core);
        }
        let exits = perform(core, sockets, clock, durable, Until::Written)?;
        if let Some(log) = event_log.as_deref_mut() {
            log.write_from(core);
        }
        if exits {
            tracing::info!("interchange exits");
            return Ok(Ending::Shutdown);
        }
        if let Some(metrics) = metrics {
            metrics.publish(core.metrics());
        }
        let now = clock.now();
        let deadline = [
            core.poll_timeout(),
            provider
                .as_ref()
                .and_then(|provider| provider.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        let timeout_ms = match deadline {
            None => -1,
            Some(deadline) => i64::try_from(now.until(deadline).as_millis()).unwrap_or(i64::MAX),
        };
        let readiness = sockets.wait(timeout_ms, &extra_fds)?;
        if readiness.extra_fds.first() == Some(&true) && signals.stop.take() {
            tracing::info!("signal received: exiting; pool-managers keep their tasks and register again with the next interchange");
            core.handle_terminate(clock.now());
            perform(core, sockets, clock, durable, Until::Idle)?;
            if let Some(log) = event_log.as_deref_mut() {
                log.write_from(core);
            }
            return Ok(Ending::Signal);
        }
        if readiness.extra_fds.get(1) == Some(&true) {
            signals.reload(sockets);
        }
        if journal_fd.is_some() && readiness.extra_fds.last() == Some(&true) {
            durable.take_wake();
        }
        if readiness.zap {
            if let Err(error) = sockets.handle_zap() {
                tracing::warn!(%error, "ZAP handler failed");
            }
        }
        for (socket, ready) in [
            (Socket::Client, readiness.client),
            (Socket::Manager, readiness.manager),
        ] {
            if ready {
                receive(core, sockets, clock, socket)?;
            }
        }
        let now = clock.now();
        if core.poll_timeout().is_some_and(|deadline| now >= deadline) {
            core.handle_timeout(now);
        }
    }
}

/// How far [`perform`] goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Every output whose records are on disk; the others wait for a later
    /// call.
    Written,
    /// No output is held: waits for the journal (at exit).
    Idle,
}

/// Hands the core's journal records to the writer and performs every
/// output whose records are on disk, `until` said how far; true once the
/// core said exit.
fn perform(
    core: &mut Core,
    sockets: &Sockets,
    clock: &Clock,
    durable: &mut Durable,
    until: Until,
) -> Result<bool, DaemonError> {
    loop {
        loop {
            // Group commit: the records of the whole turn as one batch;
            // again if handling an unreachable peer below changed state.
            durable.collect(core).map_err(DaemonError::Journal)?;
            let Some(output) = durable.next_output().map_err(DaemonError::Journal)? else {
                break;
            };
            match output {
                Output::Exit => return Ok(true),
                Output::ToClient(peer, message) => {
                    let outcome = sockets.send_client(&peer, &protocol::encode(&message))?;
                    if outcome == SendOutcome::Unreachable {
                        core.handle_client_unreachable(&peer);
                    } else {
                        log_dropped(&peer, &outcome, "client");
                    }
                }
                Output::ToManager(peer, message) => {
                    let outcome = sockets.send_manager(&peer, &protocol::encode(&message))?;
                    if outcome == SendOutcome::Unreachable {
                        // Its connection is gone: the core takes back what
                        // was not delivered and sends it no new task until
                        // it is heard from (the heartbeat threshold decides
                        // when it is lost).
                        tracing::debug!(peer = %peer, "manager unreachable; message dropped");
                        core.handle_manager_unreachable(clock.now(), &peer, message);
                    } else {
                        log_dropped(&peer, &outcome, "manager");
                    }
                }
            }
        }
        durable
            .compact_if_grown(core)
            .map_err(DaemonError::Journal)?;
        if until == Until::Written || durable.is_idle() {
            return Ok(false);
        }
        durable.flush().map_err(DaemonError::Journal)?;
    }
}

fn log_dropped(peer: &PeerId, outcome: &SendOutcome, side: &str) {
    if *outcome == SendOutcome::QueueFull {
        tracing::warn!(peer = %peer, "{side} queue full; message dropped");
    }
}
