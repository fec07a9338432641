//! The rhtex interchange: the long-running daemon on the submit host that
//! queues clients' tasks and hands each to a pool-manager that can start it
//! at once.
//!
//! - [`config`]: flags and the TOML file, validated into a [`config::Config`].
//! - the pure state machine (no I/O, no clock, no ZeroMQ) is the
//!   `interchange-core` crate; this crate is its shell.
//! - [`provider`]: blocks the interchange starts and stops itself (Slurm,
//!   PBS, or pool-managers on this host), from the demand in its queue.
//! - [`sockets`]: the two ROUTER sockets and the ZAP handler.
//! - [`metrics`]: the Prometheus endpoint (`--metrics-listen`), an HTTP
//!   thread that serves the snapshot the poll loop publishes.
//! - [`event_log`]: the event log (`events.jsonl`), the core's events
//!   written as JSON lines after every turn of the poll loop.
//! - [`store`]: the journal under `<run-dir>/journal/` (durable state:
//!   framed records, group commit, compaction, torn tails dropped).
//! - [`run_dir`]: the run directory's lock (one interchange per run
//!   directory).
//! - [`durable`]: the journal as the poll loop uses it: recovery at
//!   start, each turn's records to the writer thread, outputs held until
//!   their records are on disk.
//! - [`daemon`]: the shell, a single-threaded poll loop; [`daemon::run`] is
//!   the one entry point for `main` and tests.

pub mod config;
pub mod daemon;
pub mod durable;
pub mod event_log;
pub mod metrics;
pub mod provider;
pub mod run_dir;
pub mod sockets;
pub mod store;
