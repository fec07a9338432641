//! The rhtex interchange's pure core: the task queue, the manager table,
//! matching, heartbeats, client commands, and the block provider's scaling
//! decisions ([`provider`]). This crate depends on `protocol`, `seam` and
//! pure crates only: no sockets, no clock, no processes (`cargo tree -p
//! interchange-core -e normal` shows it). The `interchange` daemon is the
//! shell around it; the simulator drives it in virtual time.
//!
//! The seam (the same shape as the pool-manager's core): the shell decodes
//! each frame with `protocol`'s codec and feeds the decoded message
//! ([`Core::handle_client_message`], [`Core::handle_manager_message`]), or
//! reports a frame that did not decode ([`Core::handle_undecodable`], with
//! an [`Undecodable`] from [`decode_client_frame`] or
//! [`decode_manager_frame`]); it also feeds [`Core::handle_timeout`],
//! [`Core::handle_terminate`] and [`Core::handle_client_unreachable`], each
//! with the current [`seam::Time`]. It drains outputs with
//! [`Core::poll_output`] (messages to send, in order, and finally
//! [`Output::Exit`]) and the next deadline with [`Core::poll_timeout`].
//! Peers are opaque routing ids ([`PeerId`]) on the client socket and on the
//! manager socket. Nothing here reads a clock, touches a socket or panics on
//! what a peer sends: bad input is logged, counted (`n_bad_messages`) and
//! dropped or refused.
//!
//! Inside, one module owns each kind of state and every change to it:
//! - `tasks/`: every task and every change of its state (submit,
//!   dispatch, result, retry, cancel, loss), the queue of waiting tasks
//!   (`queue.rs`) and the kept results. Tasks are internal records; the
//!   wire messages (`TaskDispatch`, results) are built when sent. It also
//!   counts the payload bytes the core holds: the `input` of every
//!   unfinished task (kept for retries, within
//!   `CoreConfig::max_queued_input_bytes`, past which a `submit` is refused
//!   whole as busy) and the `output` of kept results (within
//!   `max_finished_bytes`).
//!   With the journal on it queues a record of every change, and
//!   `tasks/replay.rs` rebuilds the table from records; `journal.rs` is the
//!   seam ([`Core::recover`], [`Core::take_journal`],
//!   [`Core::journal_snapshot`]).
//! - `clients.rs`: the clients that said `hello`, and what each watches.
//! - `managers/`: the registered managers (`ManagerEntry`),
//!   their slots per node, and the indexes matching asks.
//! - `matching.rs`: which task starts where, and the reservation; it
//!   returns decisions, which the core applies.
//! - `status.rs`: `status`, `task_status` and the provider's views.
//! - `authority.rs`: who may do what: a task belongs to the client identity
//!   that submitted it ([`PeerId::identity`]); admin commands need an admin.
//! - `events.rs`: the events for the event log ([`Core::poll_event`]),
//!   queued only when `CoreConfig::record_events` is set.
//! - `listing.rs`: the `tasks` command's list of tasks.
//! - `metrics.rs`: the counters and histograms `tasks/` keeps, and the
//!   [`Metrics`] snapshot ([`Core::metrics`]) the shell exports.
//! - `machine.rs` ([`Core`]), `from_clients.rs`, `from_managers.rs`: the
//!   inputs, each handled by asking the parts above.
//!
//! Matching sends a task only to a manager that can start it at once (a
//! registered manager, not held, not draining), and chooses its exact
//! placement: `TaskDispatch.placement` names the node indexes and slots.
//! Each manager has `slots_per_node` S (from its registration, else its
//! `cpu_count`, at least 1) and the core counts the free slots of every
//! node. An exclusive task (the default) takes `num_nodes` whole free nodes
//! (S slots each); a non-exclusive one takes `ranks_per_node` R slots on
//! each of `num_nodes` distinct nodes, the nodes with the fewest free slots
//! that suffice, sharing them with other non-exclusive tasks only. A task
//! with R > S never goes to that manager. A result frees exactly what its
//! task was given.
//!
//! Among the managers where a task fits, `Placement::BestFit` takes the
//! tightest (fewest whole free nodes for an exclusive task; for a
//! non-exclusive one, the node with the fewest free slots that suffice) and
//! `Placement::NewestBlock` the most recently registered. Tasks go in queue
//! order (smaller priority first, no priority last, FIFO within a priority).
//! The first task that cannot start anywhere but could on some manager once
//! its tasks end (the *holder*) reserves the manager where it can start
//! soonest, so that smaller tasks cannot starve it (EASY backfill; see
//! `matching.rs`); a task too large for every manager holds nothing back.
//! A task lost with its manager (silent past the threshold, or gone without
//! reporting it, outside shutdown) is queued again with its original
//! priority and age while it has retries left (`retries`, else
//! `CoreConfig::default_retries`); the dropped manager's late messages are
//! answered with `refused`, so no task is reported twice.
//!
//! Costs per event: a dispatch is O(B · log) for B queue buckets (task
//! shapes × walltime classes) plus O(log) per node given; a result frees in
//! O(log) per node; no input scans all tasks or all managers, except
//! choosing a reservation (a scan of the managers and their running tasks,
//! only when the holder changes and a task behind it could start, or its
//! manager leaves or stops accepting tasks), `status`, heartbeats and
//! expiry checks (per manager by nature), and hold/drain (O(nodes of that
//! manager)). See `queue.rs`, `managers/` and `matching.rs`.

mod authority;
mod clients;
mod config;
mod events;
mod from_clients;
mod from_managers;
mod interface;
mod journal;
mod listing;
mod machine;
mod managers;
mod matching;
pub mod metrics;
pub mod provider;
mod queue;
mod reattach;
mod status;
mod tasks;
#[cfg(test)]
mod tests;

pub use config::{
    CoreConfig, Placement, DEFAULT_MAX_QUEUED_INPUT_BYTES, DEFAULT_MAX_QUEUED_TASK_BYTES,
    SHUTDOWN_GRACE,
};
pub use from_managers::UNKNOWN_MANAGER_REASON;
pub use interface::{
    decode_client_frame, decode_manager_frame, Identity, Output, PeerId, Socket, Undecodable,
};
pub use journal::Recovery;
pub use machine::Core;
pub use metrics::{FinishedAs, Histogram, Metrics};
pub use status::{ManagerView, QueueDemand};
