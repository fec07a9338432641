//! rhtex benchmarks: measured, never asserted.
//!
//! - [`scenarios::interchange`]: the interchange alone under K simulated
//!   managers (throughput, latency, CPU, memory), and latency at light load;
//! - [`scenarios::scale`]: one million queued tasks, then 2,000 managers
//!   draining them;
//! - [`scenarios::memory`]: a pool-manager running 64 `sleep` tasks.
//!
//! The end-to-end and memory comparisons with Parsl are driven by
//! `bench/compare_parsl.sh` and `bench/memory.sh` with `bench/parsl_driver.py`.
//! Building blocks: [`net`] (the only ZeroMQ code), [`loadgen`]
//! (simulated managers), [`client`] (batched submission with per-task
//! latency), [`daemons`] (the real binaries as child processes),
//! [`procfs`] (CPU and memory from `/proc`), [`report`] (tables and JSON).

pub mod client;
pub mod daemons;
pub mod loadgen;
pub mod net;
pub mod procfs;
pub mod report;
pub mod scenarios;
