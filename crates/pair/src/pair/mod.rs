//! [`Pair`]: one interchange core, N pool-manager cores and in-memory
//! clients on one event queue in virtual time.
//!
//! A step handles the earliest thing due: an event (a message arriving
//! after its delay, a fake task exiting) or a core's deadline
//! (`poll_timeout`). Events go first when both fall at the same
//! millisecond (so a task that ends exactly at its walltime completes),
//! events in the order they were scheduled, deadlines the interchange's
//! first and then the managers' in the order they were added. After the
//! input every output is drained at once: a message becomes a delivery
//! (with no delay, within the same step, in the order sent), a `Launch` a
//! fake process whose exit is an event, a `Kill` an exit with `SIGTERM` at
//! once. Every message crosses as a frame: encoded, then decoded by the
//! receiver with `protocol`'s codec, as the daemons do.
//!
//! Here the state and the views; `peers.rs` the inputs (clients, managers
//! added, killed or stopped), `run.rs` stepping and the event queue,
//! `delivery.rs` frames delivered and outputs drained.

use crate::checks::{Problem, Waiting};
use crate::config::{ManagerLife, PairConfig, Seen};
use crate::launcher::{instant_launcher, LaunchPlan};
use interchange_core::{Core, PeerId};
use pool_manager_core::{ExitStatus, PoolManager};
use protocol::{ManagerId, TaskId, ToClient};
use seam::Time;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

mod delivery;
mod peers;
mod run;

/// A core's deadline, but never at or before the time its `handle_timeout`
/// last ran (which handled everything due then): a core whose deadline does
/// not move cannot hold the clock still.
pub(super) fn after_handled(at: Time, handled: Option<Time>) -> Time {
    match handled {
        Some(handled) if at <= handled => handled.plus(Duration::from_millis(1)),
        _ => at,
    }
}

/// `SIGTERM`: how a killed fake task ends.
pub(super) const SIGTERM: i32 = 15;

#[derive(Debug)]
pub(crate) enum Delivery {
    FromClient { client: usize, frame: Vec<u8> },
    FromManager { manager: usize, frame: Vec<u8> },
    ToManager { manager: usize, frame: Vec<u8> },
    ToClient { client: usize, frame: Vec<u8> },
}

#[derive(Debug)]
enum Event {
    Deliver(Delivery),
    TaskExit {
        manager: usize,
        task_id: TaskId,
        generation: u64,
        status: ExitStatus,
    },
}

/// A fake task's process.
#[derive(Debug)]
struct Process {
    /// Changes when it is killed, so that its planned exit is ignored.
    generation: u64,
    started: Time,
}

#[derive(Debug)]
pub(crate) struct ManagerSlot {
    pub(crate) core: PoolManager,
    pub(crate) peer: PeerId,
    pub(crate) manager_id: ManagerId,
    pub(crate) life: ManagerLife,
    processes: BTreeMap<TaskId, Process>,
    /// When its `handle_timeout` last ran.
    last_timeout: Option<Time>,
}

#[derive(Debug)]
pub(crate) struct ClientSlot {
    pub(crate) peer: PeerId,
    pub(crate) inbox: VecDeque<ToClient>,
    pub(crate) next_request: u64,
}

/// The real interchange core and real pool-manager cores, wired in memory.
/// See the crate documentation.
pub struct Pair {
    pub(crate) config: PairConfig,
    pub(crate) now: Time,
    pub(crate) interchange: Core,
    pub(crate) managers: Vec<ManagerSlot>,
    pub(crate) clients: Vec<ClientSlot>,
    pub(crate) manager_by_peer: HashMap<PeerId, usize>,
    pub(crate) client_by_peer: HashMap<PeerId, usize>,
    pub(crate) launcher: LaunchPlan,
    events: BTreeMap<(Time, u64), Event>,
    /// When the interchange's `handle_timeout` last ran.
    interchange_timeout: Option<Time>,
    pub(crate) sequence: u64,
    in_flight: VecDeque<Delivery>,
    pub(crate) n_generations: u64,
    pub(crate) waiting: Waiting,
    pub(crate) problems: Vec<Problem>,
    pub(crate) seen: VecDeque<Seen>,
    pub(crate) n_steps: u64,
    pub(crate) n_frames: u64,
    /// Managers whose link is paused (`links.rs`), and the messages held
    /// back meanwhile, in the order sent.
    pub(crate) paused: std::collections::BTreeSet<usize>,
    pub(crate) held_back: VecDeque<Delivery>,
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("now", &self.now)
            .field("n_managers", &self.managers.len())
            .field("n_clients", &self.clients.len())
            .field("n_events", &self.events.len())
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

impl Pair {
    /// An interchange core started at `Time::ZERO`, no manager, no client;
    /// every task exits 0 at once until [`Pair::set_launcher`].
    pub fn new(config: PairConfig) -> Self {
        Self {
            interchange: Core::new(config.interchange.clone(), Time::ZERO),
            config,
            now: Time::ZERO,
            managers: Vec::new(),
            clients: Vec::new(),
            manager_by_peer: HashMap::new(),
            client_by_peer: HashMap::new(),
            launcher: instant_launcher(),
            events: BTreeMap::new(),
            interchange_timeout: None,
            sequence: 0,
            in_flight: VecDeque::new(),
            n_generations: 0,
            waiting: Waiting::default(),
            problems: Vec::new(),
            seen: VecDeque::new(),
            n_steps: 0,
            n_frames: 0,
            paused: std::collections::BTreeSet::new(),
            held_back: VecDeque::new(),
        }
    }

    /// How the fake launcher runs each task from now on.
    pub fn set_launcher(&mut self, launcher: LaunchPlan) {
        self.launcher = launcher;
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn config(&self) -> &PairConfig {
        &self.config
    }

    // -----------------------------------------------------------------
    // Views
    // -----------------------------------------------------------------

    pub fn interchange(&self) -> &Core {
        &self.interchange
    }

    pub fn n_managers(&self) -> usize {
        self.managers.len()
    }

    /// A manager's core (its state, its `validate()`, its allocator).
    pub fn manager(&self, manager: usize) -> &PoolManager {
        &self.managers[manager].core
    }

    pub fn manager_life(&self, manager: usize) -> Option<&ManagerLife> {
        self.managers.get(manager).map(|slot| &slot.life)
    }

    pub fn manager_id(&self, manager: usize) -> Option<ManagerId> {
        self.managers.get(manager).map(|slot| slot.manager_id)
    }

    /// Fake tasks running over all managers.
    pub fn n_running_tasks(&self) -> usize {
        self.managers.iter().map(|slot| slot.processes.len()).sum()
    }

    /// True while a message is in flight or a fake task runs.
    pub fn has_pending_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Steps taken and frames the interchange core received.
    pub fn counters(&self) -> (u64, u64) {
        (self.n_steps, self.n_frames)
    }

    /// The next entry of the trace ([`PairConfig::record`]).
    pub fn poll_seen(&mut self) -> Option<Seen> {
        self.seen.pop_front()
    }

    /// Everything that went wrong so far.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Takes the problems recorded so far.
    pub fn take_problems(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.problems)
    }

    /// Tasks waiting, as seen on the wire (see [`crate::checks`]).
    pub fn n_waiting(&self) -> usize {
        self.waiting.len()
    }
}
