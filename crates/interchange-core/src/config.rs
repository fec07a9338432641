//! The core's settings, and how a task chooses among the managers that
//! can start it.

use protocol::{UnixTime, DEFAULT_MAX_TASK_INPUT_BYTES, DEFAULT_MAX_TASK_OUTPUT_BYTES};
use std::collections::BTreeSet;
use std::time::Duration;

/// The settings the core needs.
#[derive(Clone, Debug, PartialEq)]
pub struct CoreConfig {
    /// How often `heartbeat` goes to every manager.
    pub heartbeat_period: Duration,
    /// A manager silent this long is dropped and its tasks fail.
    pub heartbeat_threshold: Duration,
    /// Tasks needing more nodes than this fail at once as unschedulable.
    pub max_block_nodes: Option<u32>,
    /// Finished results kept for late `watch` and `task_status`: at most
    /// this many...
    pub max_finished_results: usize,
    /// ...taking at most about this many bytes (task outputs included).
    /// The oldest go first.
    pub max_finished_bytes: usize,
    /// The largest `input` a task may carry (announced in `welcome`); a
    /// larger one fails at once with `input_too_large`.
    pub max_task_input_bytes: u64,
    /// The largest `output` a task may return (announced in `welcome`,
    /// given to managers in `registered`).
    pub max_task_output_bytes: u64,
    /// The input bytes of all unfinished tasks (queued or running; kept
    /// for retries) may not pass this: a `submit` that would is refused
    /// as a whole, as busy.
    pub max_queued_input_bytes: u64,
    /// The rest of the data of all unfinished tasks (commands,
    /// environments, paths, launcher options) may not pass this: a
    /// `submit` that would is refused as a whole, as busy.
    pub max_queued_task_bytes: u64,
    /// The most nodes one manager may register; a larger registration is
    /// refused.
    pub max_manager_nodes: usize,
    /// After `shutdown`, how long to wait for every manager's `goodbye`.
    pub shutdown_grace: Duration,
    /// The wall-clock time (seconds since the epoch) at `Time(0)`.
    pub wall_clock_at_zero: UnixTime,
    /// How to choose among the managers that can start a task now.
    pub placement: Placement,
    /// How many times a task without `retries` in its specification is
    /// queued again after its manager was lost.
    pub default_retries: u32,
    /// Client identities that are admins besides `default` (the config's
    /// `admins`): they may watch, cancel and see every task, hold, release
    /// and drain managers and shut the interchange down.
    pub admins: BTreeSet<String>,
    /// Whether to queue events for the event log ([`crate::Core::poll_event`]);
    /// off, none are kept.
    pub record_events: bool,
}

impl Default for CoreConfig {
    /// The daemon's defaults, with `Time(0)` at the epoch.
    fn default() -> Self {
        Self {
            heartbeat_period: Duration::from_secs(30),
            heartbeat_threshold: Duration::from_secs(120),
            max_block_nodes: None,
            max_finished_results: 100_000,
            max_finished_bytes: 512 * 1024 * 1024,
            max_task_input_bytes: DEFAULT_MAX_TASK_INPUT_BYTES,
            max_task_output_bytes: DEFAULT_MAX_TASK_OUTPUT_BYTES,
            max_queued_input_bytes: DEFAULT_MAX_QUEUED_INPUT_BYTES,
            max_queued_task_bytes: DEFAULT_MAX_QUEUED_TASK_BYTES,
            max_manager_nodes: protocol::limits::DEFAULT_MAX_MANAGER_NODES,
            shutdown_grace: SHUTDOWN_GRACE,
            wall_clock_at_zero: 0.0,
            placement: Placement::BestFit,
            default_retries: 0,
            admins: BTreeSet::new(),
            record_events: false,
        }
    }
}

/// How a task chooses among the managers that can start it now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// The manager whose free capacity fits the task most tightly, keeping
    /// large holes for large tasks.
    #[default]
    BestFit,
    /// The manager that registered last, so that older blocks go idle and
    /// can be released.
    NewestBlock,
}

impl Placement {
    /// Every placement, in the order the error message names them.
    pub const ALL: [Placement; 2] = [Placement::BestFit, Placement::NewestBlock];

    pub fn as_str(self) -> &'static str {
        match self {
            Placement::BestFit => "best-fit",
            Placement::NewestBlock => "newest-block",
        }
    }
}

impl std::str::FromStr for Placement {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|placement| placement.as_str() == text)
            .ok_or_else(|| {
                let valid: Vec<&str> = Self::ALL
                    .iter()
                    .map(|placement| placement.as_str())
                    .collect();
                format!(
                    "unknown placement {text:?}; valid placements are {}",
                    valid.join(", ")
                )
            })
    }
}

/// Default of [`CoreConfig::max_queued_input_bytes`]: 1 GiB.
pub const DEFAULT_MAX_QUEUED_INPUT_BYTES: u64 = 1024 * 1024 * 1024;

/// The default bound on the other data of unfinished tasks: 1 GiB.
pub const DEFAULT_MAX_QUEUED_TASK_BYTES: u64 = 1024 * 1024 * 1024;

/// Default bound on the wait for managers' `goodbye` after `shutdown`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_parse_by_name_and_an_unknown_one_names_the_valid_ones() {
        for placement in Placement::ALL {
            assert_eq!(placement.as_str().parse(), Ok(placement));
        }
        assert_eq!(
            "wide".parse::<Placement>(),
            Err(
                "unknown placement \"wide\"; valid placements are best-fit, newest-block"
                    .to_owned()
            )
        );
    }
}
