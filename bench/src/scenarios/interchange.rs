//! Benchmark 1: the interchange alone. The real `interchange` binary, K
//! simulated managers in a load generator process, and a client that
//! submits batches while keeping a bounded number of tasks in flight.

use super::{Common, Workspace};
use crate::client::BenchClient;
use crate::daemons::{self, Interchange, LoadgenSpec};
use crate::net::client_security;
use crate::procfs::{self, mib};
use crate::report::{round, Latency, Table};
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The settings of benchmark 1.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Manager counts to measure, one run (and one fresh interchange) each.
    pub managers: Vec<usize>,
    /// Tasks measured per run, after a warm-up batch.
    pub tasks: usize,
    /// Tasks per `submit`.
    pub batch: usize,
    /// Most tasks submitted and not finished at once.
    pub window: usize,
    /// Total nodes over all managers (each gets capacity / K, at least 1).
    pub capacity: u32,
    pub loadgen_threads: usize,
    /// Tasks of the light-load latency run (one at a time, one manager).
    pub light_tasks: usize,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub json: Value,
    pub row: Vec<String>,
}

/// How long a run may go without a single result before it is abandoned.
const STALL: Duration = Duration::from_secs(120);

/// An interchange that is waited for when dropped (it shuts down at the
/// end of a run), and killed if it does not exit within 15 s.
struct AwaitExit(Interchange);

impl Drop for AwaitExit {
    fn drop(&mut self) {
        if self.0.process.wait_exit(Duration::from_secs(15)).is_none() {
            eprintln!("rhtex-bench: the interchange did not exit after shutdown; killing it");
            self.0.process.kill();
        }
    }
}

/// Runs K simulated managers against a fresh interchange and pushes
/// `tasks` tasks through it.
pub fn run_once(
    common: &Common,
    workspace: &Workspace,
    name: &str,
    spec: &LoadgenSpec,
    tasks: usize,
    batch: usize,
    window: usize,
) -> Result<RunOutcome> {
    let keys = workspace.keys.as_deref();
    let started_interchange = AwaitExit(common.start_interchange(workspace, name)?);
    let interchange = &started_interchange.0;
    let ticks = procfs::clock_ticks();
    let ic_pid = interchange.process.pid();
    let started = Instant::now();
    let mut loadgen = daemons::start_loadgen(interchange, workspace.path(), keys, spec)?;
    daemons::wait_loadgen_ready(&mut loadgen, Duration::from_secs(300))?;
    let registration_s = started.elapsed().as_secs_f64();
    let security = client_security(keys)?;
    let mut client =
        BenchClient::connect(&interchange.client_url, &security, Duration::from_secs(30))?;

    // Warm-up: one batch through, not measured.
    let warm = batch.min(tasks).max(1);
    let frame = client.encode_batch(warm, "true");
    client.send_batch(&frame, warm)?;
    wait_until(&mut client, |client| client.in_flight() == 0)?;
    client.reset_measurements();
    let base_sent = client.n_sent;
    let base_results = client.n_results;

    // Encoded before the clock starts, so that encoding is not measured.
    let mut frames = Vec::new();
    let mut left = tasks;
    while left > 0 {
        let size = left.min(batch);
        frames.push((client.encode_batch(size, "true"), size));
        left -= size;
    }
    let ic_cpu0 = procfs::cpu_seconds(ic_pid, ticks)?;
    let lg_cpu0 = procfs::cpu_seconds(loadgen.pid(), ticks)?;
    let me_cpu0 = procfs::cpu_seconds(std::process::id(), ticks)?;
    let t0 = Instant::now();
    let mut next = 0;
    let mut last_progress = (Instant::now(), client.n_results);
    while client.n_results - base_results < tasks as u64 {
        while next < frames.len()
            && client.in_flight() + frames[next].1 as u64 <= window.max(batch) as u64
        {
            let (frame, size) = &frames[next];
            client.send_batch(frame, *size)?;
            next += 1;
        }
        client.pump(Duration::from_millis(50))?;
        if client.n_results != last_progress.1 {
            last_progress = (Instant::now(), client.n_results);
        } else if last_progress.0.elapsed() > STALL {
            bail!(
                "no result for {STALL:?} ({} of {tasks} done); see the logs in {}",
                client.n_results - base_results,
                workspace.path().display()
            );
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let ic_cpu = procfs::cpu_seconds(ic_pid, ticks)? - ic_cpu0;
    let lg_cpu = procfs::cpu_seconds(loadgen.pid(), ticks)? - lg_cpu0;
    let me_cpu = procfs::cpu_seconds(std::process::id(), ticks)? - me_cpu0;
    let memory = procfs::Memory::of(ic_pid)?;
    debug_assert_eq!(client.n_sent - base_sent, tasks as u64);
    let latency = Latency::of(std::mem::take(&mut client.latencies_us));
    let failed = client.n_failed;

    client.shutdown_interchange()?;
    client.goodbye()?;
    if loadgen.wait_exit(Duration::from_secs(30)).is_none() {
        eprintln!("rhtex-bench: the load generator did not exit; killing it");
        loadgen.kill();
    }

    let rate = tasks as f64 / elapsed;
    let json = json!({
        "managers": spec.n_managers,
        "nodes_per_manager": spec.nodes_per_manager,
        "loadgen_threads": spec.threads,
        "tasks": tasks,
        "batch": batch,
        "window": window,
        "failed": failed,
        "registration_s": round(registration_s, 3),
        "elapsed_s": round(elapsed, 3),
        "tasks_per_s": round(rate, 0),
        "latency": latency.to_json(),
        "interchange_cpu_s": round(ic_cpu, 2),
        "interchange_cpu_fraction": round(ic_cpu / elapsed, 3),
        "interchange_cpu_us_per_task": round(ic_cpu * 1e6 / tasks as f64, 2),
        "interchange_rss_mib": round(mib(memory.rss_kib), 1),
        "interchange_peak_rss_mib": round(mib(memory.hwm_kib), 1),
        "loadgen_cpu_s": round(lg_cpu, 2),
        "client_cpu_s": round(me_cpu, 2),
    });
    let row = vec![
        spec.n_managers.to_string(),
        spec.nodes_per_manager.to_string(),
        tasks.to_string(),
        format!("{rate:.0}"),
        format!("{:.3}", latency.p50_ms),
        format!("{:.3}", latency.p99_ms),
        format!("{ic_cpu:.2}"),
        format!("{:.0}%", 100.0 * ic_cpu / elapsed),
        format!("{:.2}", ic_cpu * 1e6 / tasks as f64),
        format!("{:.1}", mib(memory.hwm_kib)),
        format!("{lg_cpu:.2}"),
        format!("{me_cpu:.2}"),
        failed.to_string(),
    ];
    Ok(RunOutcome { json, row })
}

/// Pumps messages until `done` holds, or fails after a stall.
pub fn wait_until(client: &mut BenchClient, done: impl Fn(&BenchClient) -> bool) -> Result<()> {
    let deadline = Instant::now() + STALL;
    while !done(client) {
        if Instant::now() > deadline {
            bail!("the interchange did not answer within {STALL:?}");
        }
        client.pump(Duration::from_millis(50))?;
    }
    Ok(())
}

/// Benchmark 1: every K, then light load.
pub fn run(common: &Common, settings: &Settings) -> Result<Value> {
    let workspace = Workspace::new("interchange", common)?;
    let mut table = Table::new(&[
        "managers",
        "nodes/mgr",
        "tasks",
        "tasks/s",
        "p50 ms",
        "p99 ms",
        "ic CPU s",
        "ic CPU",
        "ic us/task",
        "ic peak MiB",
        "loadgen CPU s",
        "client CPU s",
        "failed",
    ]);
    let mut runs = Vec::new();
    for &k in &settings.managers {
        let nodes = settings
            .capacity
            .div_ceil(u32::try_from(k.max(1)).unwrap_or(u32::MAX));
        let spec = LoadgenSpec {
            n_managers: k,
            nodes_per_manager: nodes.max(1),
            threads: settings.loadgen_threads.max(k.div_ceil(1000)),
        };
        eprintln!(
            "rhtex-bench: {k} managers x {} nodes, {} tasks",
            spec.nodes_per_manager, settings.tasks
        );
        let outcome = run_once(
            common,
            &workspace,
            &format!("interchange-k{k}"),
            &spec,
            settings.tasks,
            settings.batch,
            settings.window,
        )?;
        table.row(outcome.row);
        runs.push(outcome.json);
    }
    println!(
        "Benchmark 1: the interchange alone (CURVE {}), batches of {}, at most {} in flight",
        on_off(common.curve),
        settings.batch,
        settings.window
    );
    print!("{}", table.render());

    let light = if settings.light_tasks > 0 {
        let spec = LoadgenSpec {
            n_managers: 1,
            nodes_per_manager: 1,
            threads: 1,
        };
        let outcome = run_once(
            common,
            &workspace,
            "interchange-light",
            &spec,
            settings.light_tasks,
            1,
            1,
        )?;
        let mut light_table = Table::new(&[
            "tasks",
            "one at a time: tasks/s",
            "p50 ms",
            "p99 ms",
            "max ms",
        ]);
        let latency = &outcome.json["latency"];
        light_table.row(vec![
            settings.light_tasks.to_string(),
            outcome.json["tasks_per_s"].to_string(),
            latency["p50_ms"].to_string(),
            latency["p99_ms"].to_string(),
            latency["max_ms"].to_string(),
        ]);
        println!("\nLight load: one manager, one task at a time");
        print!("{}", light_table.render());
        outcome.json
    } else {
        Value::Null
    };

    let fields = json!({
        "settings": {
            "tasks": settings.tasks,
            "batch": settings.batch,
            "window": settings.window,
            "capacity": settings.capacity,
            "light_tasks": settings.light_tasks,
        },
        "runs": runs,
        "light_load": light,
    });
    common.finish(workspace, "interchange", "interchange.json", fields)
}

pub fn on_off(flag: bool) -> &'static str {
    if flag {
        "on"
    } else {
        "off"
    }
}
