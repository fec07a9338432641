//! A quinn-style `Pair` harness: the real interchange core
//! ([`interchange_core::Core`]) and N real pool-manager cores
//! ([`pool_manager_core::PoolManager`]) wired in memory, with in-memory
//! clients, a fake launcher and virtual time ([`seam::Time`]). The
//! simulator runs on it, and so do the cores' property tests: nothing here
//! models a daemon, both daemons' decisions are their cores'.
//!
//! - [`Pair`] (`pair/`, set up with `config.rs`): the event queue, ordered by (time, sequence),
//!   so a run is deterministic; messages cross as frames through
//!   `protocol`'s codec, with an optional delay; both cores' deadlines
//!   (`poll_timeout`) are honoured. Managers can be added at any time (a
//!   block starting), killed (its messages stop, its tasks vanish) or
//!   stopped (SIGTERM: it reports its tasks and leaves cleanly).
//! - [`launcher`]: how long each launched task runs ([`FakeRun`]), decided
//!   by a function of the `Launch`; a killed task exits at once with
//!   SIGTERM. Every launch ends in exactly one `handle_task_exited`.
//! - [`checks`]: what must never happen ([`Problem`]: a placement a manager
//!   refuses, a core failing its `validate()`, a frame that does not
//!   decode), and the waiting tasks seen on the wire, for "nothing waits
//!   that an idle manager fits".
//!
//! Driving it: inputs (`add_client`, `submit`, `command`, `add_manager`,
//! `kill_manager`, ...) act at [`Pair::now`] and run everything they cause
//! with no delay; [`Pair::step`] handles the next event or deadline;
//! [`Pair::run_until`] and [`Pair::drive`] step on. After a scenario,
//! [`Pair::check_quiet`] says whether anything unexpected was left.
//!
//! Pure: its dependencies are the two cores, `protocol` and `seam`.

pub mod checks;
mod config;
pub mod launcher;
mod links;
mod pair;

pub use checks::{Need, Problem, Stranded};
pub use config::{ManagerLife, ManagerSpec, PairConfig, Seen, Step};
pub use launcher::{
    instant_launcher, sleep_command, sleep_duration, sleep_launcher, FakeRun, LaunchPlan,
};
pub use pair::Pair;
