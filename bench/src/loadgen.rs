//! The load generator: K simulated pool-managers, each a real DEALER with
//! CURVE, that register, heartbeat, and answer every `run_tasks` at once
//! with one `results` message saying each task completed with exit code 0.
//!
//! Managers are spread over threads; each thread owns a group of sockets
//! (at most 1,000, libzmq's limit per context) and polls them.

use crate::net::{manager_security, ManagerSockets};
use anyhow::{bail, Context, Result};
use protocol::{
    FromManager, Launcher, ManagerId, Registration, TaskResult, TaskState, ToManager,
    PROTOCOL_VERSION, RHTEX_VERSION,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the load generator does.
#[derive(Clone, Debug)]
pub struct LoadgenConfig {
    pub url: String,
    pub keys_dir: Option<PathBuf>,
    pub n_managers: usize,
    pub nodes_per_manager: u32,
    pub threads: usize,
    /// How often each manager sends `heartbeat`.
    pub heartbeat_period: Duration,
}

/// What the load generator did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadgenCounts {
    pub n_registered: usize,
    pub n_tasks_answered: u64,
    pub n_run_tasks_messages: u64,
}

/// The manager ids: fixed prefix, so that runs are reproducible.
fn manager_id(index: usize) -> ManagerId {
    ManagerId::from_u128(0xbe0c_0000_0000_0000_0000_0000_0000_0000 | index as u128)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// One simulated manager's state.
struct SimManager {
    manager_id: ManagerId,
    block_id: String,
    nodes: Vec<String>,
    registered: bool,
    stopped: bool,
}

/// Runs the managers until every one is told to shut down (or `stop` is
/// set). `registered` counts registrations across threads.
pub fn run(
    config: &LoadgenConfig,
    registered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Result<LoadgenCounts> {
    if config.n_managers == 0 || config.threads == 0 || config.nodes_per_manager == 0 {
        bail!("the load generator needs at least one manager, thread and node per manager");
    }
    let threads = config.threads.min(config.n_managers);
    let per_thread = config.n_managers.div_ceil(threads);
    if per_thread > 1000 {
        bail!(
            "{} managers on {threads} threads is {per_thread} per thread; at most 1000: add threads",
            config.n_managers
        );
    }
    let mut handles = Vec::new();
    for thread in 0..threads {
        let first = thread * per_thread;
        let last = ((thread + 1) * per_thread).min(config.n_managers);
        if first >= last {
            break;
        }
        let config = config.clone();
        let registered = Arc::clone(&registered);
        let stop = Arc::clone(&stop);
        handles.push(
            std::thread::Builder::new()
                .name(format!("managers-{thread}"))
                .spawn(move || run_group(&config, first..last, &registered, &stop))
                .context("cannot start a load generator thread")?,
        );
    }
    let mut total = LoadgenCounts::default();
    for handle in handles {
        let counts = match handle.join() {
            Ok(outcome) => outcome?,
            Err(_) => bail!("a load generator thread panicked"),
        };
        total.n_registered += counts.n_registered;
        total.n_tasks_answered += counts.n_tasks_answered;
        total.n_run_tasks_messages += counts.n_run_tasks_messages;
    }
    Ok(total)
}

fn run_group(
    config: &LoadgenConfig,
    indices: std::ops::Range<usize>,
    registered: &AtomicUsize,
    stop: &AtomicBool,
) -> Result<LoadgenCounts> {
    let security = manager_security(config.keys_dir.as_deref())?;
    let mut managers: Vec<SimManager> = indices
        .clone()
        .map(|index| SimManager {
            manager_id: manager_id(index),
            block_id: format!("bench-{index}"),
            nodes: (0..config.nodes_per_manager)
                .map(|node| format!("m{index}-n{node}"))
                .collect(),
            registered: false,
            stopped: false,
        })
        .collect();
    let ids: Vec<ManagerId> = managers.iter().map(|manager| manager.manager_id).collect();
    let sockets = ManagerSockets::connect(&config.url, &security, &ids)?;
    for (slot, manager) in managers.iter().enumerate() {
        sockets.send(
            slot,
            &FromManager::Register(Registration {
                protocol_version: PROTOCOL_VERSION,
                manager_id: manager.manager_id,
                block_id: manager.block_id.clone(),
                hostname: manager.nodes[0].clone(),
                nodes: manager.nodes.clone(),
                launcher: Launcher::Mpiexec,
                rhtex_version: RHTEX_VERSION.to_owned(),
                cpu_count: 1,
                slots_per_node: None,
                versions: BTreeMap::new(),
                attempt: 0,
                running_tasks: Vec::new(),
                held_results: Vec::new(),
            }),
        )?;
    }
    let mut counts = LoadgenCounts::default();
    let mut next_heartbeat = Instant::now() + config.heartbeat_period;
    let mut n_stopped = 0;
    while n_stopped < managers.len() && !stop.load(Ordering::Relaxed) {
        for slot in sockets.poll(Duration::from_millis(100))? {
            while let Some(message) = sockets.try_recv(slot)? {
                let manager = &mut managers[slot];
                match message {
                    ToManager::Registered { .. } => {
                        if !manager.registered {
                            manager.registered = true;
                            counts.n_registered += 1;
                            registered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    ToManager::Refused { reason, .. } | ToManager::NotRegistered { reason } => {
                        bail!("manager {} refused: {reason}", manager.manager_id)
                    }
                    ToManager::RunTasks { tasks } => {
                        counts.n_run_tasks_messages += 1;
                        counts.n_tasks_answered += tasks.len() as u64;
                        let now = unix_now();
                        let results = tasks
                            .into_iter()
                            .map(|task| TaskResult {
                                exit_code: Some(0),
                                manager_id: Some(manager.manager_id),
                                block_id: Some(manager.block_id.clone()),
                                nodes: task
                                    .placement
                                    .iter()
                                    .filter_map(|share| manager.nodes.get(share.node as usize))
                                    .cloned()
                                    .collect(),
                                start_time: Some(now),
                                end_time: Some(now),
                                ..TaskResult::new(task.task_id, TaskState::Completed)
                            })
                            .collect();
                        sockets.send(slot, &FromManager::Results { results })?;
                    }
                    ToManager::CancelTask { .. } | ToManager::Heartbeat => {}
                    ToManager::Shutdown { .. } => {
                        if !manager.stopped {
                            manager.stopped = true;
                            n_stopped += 1;
                            sockets.send(
                                slot,
                                &FromManager::Goodbye {
                                    reason: "shutdown".to_owned(),
                                },
                            )?;
                        }
                    }
                }
            }
        }
        if Instant::now() >= next_heartbeat {
            for (slot, manager) in managers.iter().enumerate() {
                if manager.registered && !manager.stopped {
                    sockets.send(slot, &FromManager::Heartbeat)?;
                }
            }
            next_heartbeat = Instant::now() + config.heartbeat_period;
        }
    }
    sockets.close(Duration::from_secs(1));
    Ok(counts)
}
