//! Benchmark 4: scale. A fresh interchange with no managers takes
//! 1,000,000 tasks in batches (time, CPU and resident memory to hold them),
//! then a load generator registers 2,000 simulated managers, which drain
//! the queue (the dispatch rate). With no managers (`--managers 0`) it
//! stops after the first phase: the memory of a queue alone, as
//! `bench/peers.py` uses it.

use super::{Common, Workspace};
use crate::client::BenchClient;
use crate::daemons::{self, Interchange, LoadgenSpec};
use crate::net::client_security;
use crate::procfs::{self, mib, Memory};
use crate::report::{round, Table};
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The settings of benchmark 4.
#[derive(Clone, Debug)]
pub struct Settings {
    pub queued: usize,
    pub batch: usize,
    /// Submits sent and not yet acknowledged, at most.
    pub unacked: u64,
    /// Simulated managers that drain the queue; 0 skips the drain.
    pub managers: usize,
    pub nodes_per_manager: u32,
    pub loadgen_threads: usize,
}

const TARGET_MIB: f64 = 1024.0;
const STALL: Duration = Duration::from_secs(120);

/// Submits `queued` `true` tasks in batches of `batch`, at most `unacked`
/// submits unacknowledged, and waits until every one is acknowledged.
pub fn queue_all(
    client: &mut BenchClient,
    queued: usize,
    batch: usize,
    unacked: u64,
) -> Result<()> {
    let n_batches = client.n_batches_acked + queued.div_ceil(batch) as u64;
    let mut left = queued;
    let mut last_progress = (Instant::now(), client.n_batches_acked);
    while client.n_batches_acked < n_batches {
        while left > 0 && client.unacked_batches() < unacked {
            let size = left.min(batch);
            let frame = client.encode_batch(size, "true");
            client.send_batch(&frame, size)?;
            left -= size;
        }
        client.pump(Duration::from_millis(50))?;
        if client.n_batches_acked != last_progress.1 {
            last_progress = (Instant::now(), client.n_batches_acked);
        } else if last_progress.0.elapsed() > STALL {
            bail!("no submit acknowledged for {STALL:?}");
        }
    }
    Ok(())
}

pub fn run(common: &Common, settings: &Settings) -> Result<Value> {
    let workspace = Workspace::new("scale", common)?;
    let keys = workspace.keys.as_deref();
    let ticks = procfs::clock_ticks();
    let mut interchange = common.start_interchange(&workspace, "interchange")?;
    let pid = interchange.process.pid();
    let security = client_security(keys)?;
    let mut client =
        BenchClient::connect(&interchange.client_url, &security, Duration::from_secs(30))?;
    let before = Memory::of(pid)?;

    // Phase 1: queue every task.
    eprintln!("rhtex-bench: queueing {} tasks", settings.queued);
    let cpu0 = procfs::cpu_seconds(pid, ticks)?;
    let t0 = Instant::now();
    queue_all(
        &mut client,
        settings.queued,
        settings.batch,
        settings.unacked,
    )?;
    let queue_s = t0.elapsed().as_secs_f64();
    let queue_cpu = procfs::cpu_seconds(pid, ticks)? - cpu0;
    let held = Memory::of(pid)?;
    client.expect_queued(settings.queued, "the interchange reports")?;
    let per_task_bytes =
        (held.rss_kib.saturating_sub(before.rss_kib) * 1024) as f64 / settings.queued as f64;
    let mut table = Table::new(&[
        "phase",
        "tasks",
        "seconds",
        "tasks/s",
        "ic CPU s",
        "ic RSS MiB",
        "ic peak MiB",
    ]);
    table.row(vec![
        "queue (no managers)".into(),
        settings.queued.to_string(),
        format!("{queue_s:.2}"),
        format!("{:.0}", settings.queued as f64 / queue_s),
        format!("{queue_cpu:.2}"),
        format!("{:.1}", mib(held.rss_kib)),
        format!("{:.1}", mib(held.hwm_kib)),
    ]);
    let queue = json!({
        "seconds": round(queue_s, 3),
        "tasks_per_s": round(settings.queued as f64 / queue_s, 0),
        "interchange_cpu_s": round(queue_cpu, 2),
        "rss_before_mib": round(mib(before.rss_kib), 1),
        "rss_mib": round(mib(held.rss_kib), 1),
        "peak_rss_mib": round(mib(held.hwm_kib), 1),
        "bytes_per_task": round(per_task_bytes, 0),
        "target_mib": TARGET_MIB,
    });
    let holding = format!(
        "holding {} tasks: {:.1} MiB resident ({per_task_bytes:.0} bytes per task), {:.0}% of the {TARGET_MIB:.0} MiB target",
        settings.queued,
        mib(held.rss_kib),
        100.0 * mib(held.hwm_kib) / TARGET_MIB,
    );
    let drain = if settings.managers == 0 {
        stop_interchange(&mut client, &mut interchange)?;
        println!(
            "Benchmark 4: {} queued tasks (CURVE {}), no managers",
            settings.queued,
            super::interchange::on_off(common.curve),
        );
        print!("{}", table.render());
        println!("{holding}");
        Value::Null
    } else {
        drain(
            settings,
            &workspace,
            &mut interchange,
            &mut client,
            &mut table,
            &holding,
            common.curve,
        )?
    };
    let fields = json!({
        "queued": settings.queued,
        "batch": settings.batch,
        "queue": queue,
        "drain": drain,
    });
    common.finish(workspace, "scale", "scale.json", fields)
}

/// Phase 2: a load generator with `settings.managers` simulated managers
/// drains the queue; adds its row to `table`, prints it, stops the
/// interchange and returns the phase's report.
fn drain(
    settings: &Settings,
    workspace: &Workspace,
    interchange: &mut Interchange,
    client: &mut BenchClient,
    table: &mut Table,
    holding: &str,
    curve: bool,
) -> Result<Value> {
    let keys = workspace.keys.as_deref();
    let ticks = procfs::clock_ticks();
    let pid = interchange.process.pid();
    eprintln!(
        "rhtex-bench: {} managers x {} nodes drain the queue",
        settings.managers, settings.nodes_per_manager
    );
    let spec = LoadgenSpec {
        n_managers: settings.managers,
        nodes_per_manager: settings.nodes_per_manager,
        threads: settings
            .loadgen_threads
            .max(settings.managers.div_ceil(1000)),
    };
    let cpu1 = procfs::cpu_seconds(pid, ticks)?;
    let t1 = Instant::now();
    let mut loadgen = daemons::start_loadgen(interchange, workspace.path(), keys, &spec)?;
    let mut registered_s = None;
    let total = settings.queued as u64;
    let (mut at_10, mut at_90) = (None, None);
    let mut last_progress = (Instant::now(), 0);
    while client.n_results < total {
        client.pump(Duration::from_millis(50))?;
        if registered_s.is_none() && loadgen.try_line().is_some() {
            registered_s = Some(t1.elapsed().as_secs_f64());
        }
        if at_10.is_none() && client.n_results >= total / 10 {
            at_10 = Some((Instant::now(), client.n_results));
        }
        if at_90.is_none() && client.n_results >= total * 9 / 10 {
            at_90 = Some((Instant::now(), client.n_results));
        }
        if client.n_results != last_progress.1 {
            last_progress = (Instant::now(), client.n_results);
        } else if last_progress.0.elapsed() > STALL {
            bail!(
                "no result for {STALL:?} ({} of {total}); see the logs in {}",
                client.n_results,
                workspace.path().display()
            );
        }
    }
    let drain_s = t1.elapsed().as_secs_f64();
    let drain_cpu = procfs::cpu_seconds(pid, ticks)? - cpu1;
    let loadgen_cpu = procfs::cpu_seconds(loadgen.pid(), ticks)?;
    // Registration can end after the queue is drained: wait for it (bounded).
    if registered_s.is_none() && loadgen.next_line(Duration::from_secs(60)).is_ok() {
        registered_s = Some(t1.elapsed().as_secs_f64());
    }
    let first_result_s = client
        .first_result_at
        .map_or(0.0, |at| at.duration_since(t1).as_secs_f64());
    let steady = match (at_10, at_90) {
        (Some((t_a, n_a)), Some((t_b, n_b))) if t_b > t_a => {
            (n_b - n_a) as f64 / t_b.duration_since(t_a).as_secs_f64()
        }
        _ => 0.0,
    };
    let after = Memory::of(pid)?;
    let failed = client.n_failed;
    stop_interchange(client, interchange)?;
    if loadgen.wait_exit(Duration::from_secs(30)).is_none() {
        loadgen.kill();
    }

    let overall = total as f64 / drain_s;
    table.row(vec![
        format!("drain ({} managers)", settings.managers),
        settings.queued.to_string(),
        format!("{drain_s:.2}"),
        format!("{overall:.0} (steady {steady:.0})"),
        format!("{drain_cpu:.2}"),
        format!("{:.1}", mib(after.rss_kib)),
        format!("{:.1}", mib(after.hwm_kib)),
    ]);
    println!(
        "Benchmark 4: {} queued tasks (CURVE {}), then {} managers x {} nodes",
        settings.queued,
        super::interchange::on_off(curve),
        settings.managers,
        settings.nodes_per_manager
    );
    print!("{}", table.render());
    println!(
        "{holding}; managers registered after {:.2} s, first result after {first_result_s:.2} s; \
         load generator CPU {loadgen_cpu:.2} s; {failed} failed",
        registered_s.unwrap_or(f64::NAN),
    );
    Ok(json!({
        "managers": settings.managers,
        "nodes_per_manager": settings.nodes_per_manager,
        "seconds": round(drain_s, 3),
        "registered_after_s": registered_s.map(|s| round(s, 3)),
        "first_result_after_s": round(first_result_s, 3),
        "tasks_per_s": round(overall, 0),
        "steady_tasks_per_s": round(steady, 0),
        "interchange_cpu_s": round(drain_cpu, 2),
        "loadgen_cpu_s": round(loadgen_cpu, 2),
        "peak_rss_mib": round(mib(after.hwm_kib), 1),
        "failed": failed,
    }))
}

/// Asks the interchange to shut down and waits for it (bounded), then
/// kills its process group if it is still there.
fn stop_interchange(client: &mut BenchClient, interchange: &mut Interchange) -> Result<()> {
    client.shutdown_interchange()?;
    client.goodbye()?;
    if interchange
        .process
        .wait_exit(Duration::from_secs(30))
        .is_none()
    {
        interchange.process.kill();
    }
    Ok(())
}
