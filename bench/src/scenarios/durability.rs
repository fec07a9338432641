//! Benchmark 6: what the journal costs. (a) Benchmark 1's run (K managers,
//! batched client) with the journal on and off, alternating within one
//! invocation so that both see the same machine load; the figure is the
//! ratio of the throughputs. (b) Recovery: an interchange queues 1,000,000
//! tasks, is killed with SIGKILL, and a new one on the same run directory
//! resumes them; the figures are the recovery time the interchange logs
//! (`seconds=`: read, replay, reopen) and the time from its start to its ready
//! line.

use super::{interchange, scale, Common, Workspace};
use crate::client::BenchClient;
use crate::daemons::{self, LoadgenSpec};
use crate::net::client_security;
use crate::report::{round, Table};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The settings of benchmark 6.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Pairs of runs (one with the journal, one without).
    pub rounds: usize,
    pub managers: usize,
    pub tasks: usize,
    pub batch: usize,
    pub window: usize,
    pub capacity: u32,
    pub loadgen_threads: usize,
    /// Tasks queued before the kill; 0 skips the recovery part.
    pub queued: usize,
    pub queue_batch: usize,
}

const TARGET_RATIO: f64 = 0.8;
const TARGET_RECOVERY_S: f64 = 10.0;

pub fn run(common: &Common, settings: &Settings) -> Result<Value> {
    let workspace = Workspace::new("durability", common)?;
    let spec = LoadgenSpec {
        n_managers: settings.managers,
        nodes_per_manager: settings
            .capacity
            .div_ceil(u32::try_from(settings.managers.max(1)).unwrap_or(u32::MAX))
            .max(1),
        threads: settings
            .loadgen_threads
            .max(settings.managers.div_ceil(1000)),
    };
    let mut table = Table::new(&["round", "journal", "tasks/s", "p50 ms", "ic us/task"]);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    let mut runs = Vec::new();
    for round_number in 0..settings.rounds {
        // Alternate which goes first, so neither always gets the warmer machine.
        let order = if round_number % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for journal in order {
            let mut run_common = common.clone();
            run_common
                .interchange_args
                .retain(|arg| arg != "--no-journal");
            if !journal {
                run_common.interchange_args.push("--no-journal".to_owned());
            }
            let label = if journal { "on" } else { "off" };
            eprintln!("rhtex-bench: round {round_number}, journal {label}");
            let outcome = interchange::run_once(
                &run_common,
                &workspace,
                &format!("interchange-{round_number}-{label}"),
                &spec,
                settings.tasks,
                settings.batch,
                settings.window,
            )?;
            let figure = |key: &str| outcome.json[key].as_f64().unwrap_or(f64::NAN);
            let rate = figure("tasks_per_s");
            table.row(vec![
                round_number.to_string(),
                label.to_owned(),
                format!("{rate:.0}"),
                format!(
                    "{:.1}",
                    outcome.json["latency"]["p50_ms"]
                        .as_f64()
                        .unwrap_or(f64::NAN)
                ),
                format!("{:.2}", figure("interchange_cpu_us_per_task")),
            ]);
            if journal { &mut on } else { &mut off }.push(rate);
            let mut json = outcome.json;
            json["journal"] = json!(journal);
            json["round"] = json!(round_number);
            runs.push(json);
        }
    }
    let mean = |rates: &[f64]| rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    let ratio = mean(&on) / mean(&off);
    println!(
        "Benchmark 6a: the interchange alone, journal on and off, {} managers, {} tasks per run",
        settings.managers, settings.tasks
    );
    print!("{}", table.render());
    println!(
        "journal on / off throughput: {ratio:.3} (mean {:.0} / {:.0} tasks/s; target >= {TARGET_RATIO})",
        mean(&on),
        mean(&off)
    );

    let recovery = if settings.queued > 0 {
        Some(recover(common, &workspace, settings)?)
    } else {
        None
    };
    let fields = json!({
        "managers": settings.managers,
        "tasks": settings.tasks,
        "runs": runs,
        "throughput_ratio_on_off": round(ratio, 3),
        "recovery": recovery,
    });
    common.finish(workspace, "durability", "durability.json", fields)
}

/// Queues `settings.queued` tasks, kills the interchange, starts a new one
/// on the same run directory and times its recovery.
fn recover(common: &Common, workspace: &Workspace, settings: &Settings) -> Result<Value> {
    let keys = workspace.keys.as_deref();
    let mut args = common.interchange_args.clone();
    args.retain(|arg| arg != "--no-journal");
    let run_dir = workspace.path().join("recovery-run");
    let start = |name: &str| {
        daemons::start_interchange(
            &common.bin_dir,
            workspace.path(),
            name,
            &run_dir,
            keys,
            &args,
        )
    };
    let mut first = start("recovery-1")?;
    let security = client_security(keys)?;
    let mut client = BenchClient::connect(&first.client_url, &security, Duration::from_secs(30))?;
    eprintln!(
        "rhtex-bench: queueing {} tasks (journal on)",
        settings.queued
    );
    let t0 = Instant::now();
    scale::queue_all(&mut client, settings.queued, settings.queue_batch, 4)?;
    let queue_s = t0.elapsed().as_secs_f64();
    let journal_bytes = dir_bytes(&run_dir.join("journal"))?;
    first.process.kill();
    drop(client);

    let t1 = Instant::now();
    let mut second = start("recovery-2")?;
    let ready_s = t1.elapsed().as_secs_f64();
    let log_path = workspace.path().join("recovery-2.log");
    let log = std::fs::read_to_string(&log_path)
        .with_context(|| format!("cannot read {}", log_path.display()))?;
    let logged_s = log
        .lines()
        .find(|line| line.contains("resumed from the journal"))
        .and_then(|line| line.split(" seconds=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<f64>().ok())
        .with_context(|| format!("no recovery line in {}", log_path.display()))?;
    let mut client = BenchClient::connect(&second.client_url, &security, Duration::from_secs(30))?;
    client.expect_queued(settings.queued, "the restarted interchange has")?;
    second.process.kill();
    println!(
        "Benchmark 6b: {} queued tasks queued in {queue_s:.1} s with the journal on \
         (journal {:.0} MiB); after kill -9, recovered in {logged_s:.2} s (logged), \
         ready line after {ready_s:.2} s (target <= {TARGET_RECOVERY_S} s)",
        settings.queued,
        journal_bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(json!({
        "queued": settings.queued,
        "queue_s": round(queue_s, 2),
        "journal_bytes": journal_bytes,
        "recovery_logged_s": round(logged_s, 3),
        "ready_after_s": round(ready_s, 3),
    }))
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}
