//! Benchmark 3: the memory of a pool-manager running 64 `sleep` tasks at
//! once on 64 synthetic nodes (the real `interchange` and `pool-manager`
//! binaries, CURVE on). The manager process alone is the figure; the task
//! processes (its children) are reported beside it, not in it.

use super::{Common, Workspace};
use crate::client::BenchClient;
use crate::daemons::{binary, Process};
use crate::net::{client_security, security};
use crate::procfs::{self, mib, Memory};
use crate::report::{round, Table};
use crate::scenarios::interchange::wait_until;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// The settings of benchmark 3.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Nodes of the manager and `sleep` tasks run at once (one per node).
    pub tasks: u32,
    /// How long each task sleeps, in seconds.
    pub sleep: u32,
}

/// The target for the manager's resident memory.
const TARGET_MIB: f64 = 20.0;

/// Memory of a set of processes, summed.
fn sum(pids: &[u32]) -> Memory {
    pids.iter()
        .filter_map(|pid| Memory::of(*pid).ok())
        .fold(Memory::default(), Memory::plus)
}

fn memory_json(memory: Memory, n_processes: usize) -> Value {
    json!({
        "n_processes": n_processes,
        "rss_mib": round(mib(memory.rss_kib), 1),
        "pss_mib": round(mib(memory.pss_kib), 1),
        "peak_rss_mib": round(mib(memory.hwm_kib), 1),
    })
}

pub fn run(common: &Common, settings: &Settings) -> Result<Value> {
    let workspace = Workspace::new("memory", common)?;
    let keys = workspace.keys.as_deref();
    let mut interchange = common.start_interchange(&workspace, "interchange")?;
    let nodes: Vec<String> = (0..settings.tasks)
        .map(|node| format!("node{node}"))
        .collect();
    let mut command = Command::new(binary(&common.bin_dir, "pool-manager")?);
    command
        .args(["--interchange", &interchange.manager_url])
        .args(["--block-id", "bench-memory"])
        .args(["--nodes", &nodes.join(",")])
        .arg("--run-dir")
        .arg(workspace.path().join("manager-run"))
        .args(security(keys).flags());
    let mut manager = Process::spawn(
        "pool-manager",
        command,
        &workspace.path().join("pool-manager.log"),
    )?;
    let security = client_security(keys)?;
    let mut client =
        BenchClient::connect(&interchange.client_url, &security, Duration::from_secs(30))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.status()?.managers.is_empty() {
        if Instant::now() > deadline {
            bail!(
                "the pool-manager did not register within 60 s; see {}",
                manager.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let idle = Memory::of(manager.pid())?;

    let n_tasks = settings.tasks as usize;
    let frame = client.encode_batch(n_tasks, &format!("sleep {}", settings.sleep));
    client.send_batch(&frame, n_tasks)?;
    wait_until(&mut client, |client| client.n_batches_acked == 1)?;
    let sleeping = wait_for_sleeps(&manager, n_tasks)?;
    // Let the manager settle (output readers, buffers) before reading.
    std::thread::sleep(Duration::from_secs(2));
    let running = Memory::of(manager.pid())?;
    let children = procfs::descendants(manager.pid())?;
    let children_memory = sum(&children);

    client.shutdown_interchange()?;
    client.goodbye()?;
    stop(&mut manager);
    stop(&mut interchange.process);

    let rss = mib(running.rss_kib);
    let mut table = Table::new(&[
        "pool-manager",
        "running tasks",
        "RSS MiB",
        "PSS MiB",
        "peak RSS MiB",
        "target MiB",
        "of target",
        "task processes (not counted)",
    ]);
    table.row(vec![
        "idle".into(),
        "0".into(),
        format!("{:.1}", mib(idle.rss_kib)),
        format!("{:.1}", mib(idle.pss_kib)),
        format!("{:.1}", mib(idle.hwm_kib)),
        String::new(),
        String::new(),
        String::new(),
    ]);
    table.row(vec![
        "running".into(),
        sleeping.to_string(),
        format!("{rss:.1}"),
        format!("{:.1}", mib(running.pss_kib)),
        format!("{:.1}", mib(running.hwm_kib)),
        format!("{TARGET_MIB:.0}"),
        format!("{:.0}%", 100.0 * rss / TARGET_MIB),
        format!(
            "{} processes, RSS {:.1} MiB",
            children.len(),
            mib(children_memory.rss_kib)
        ),
    ]);
    println!(
        "Benchmark 3: pool-manager memory with {} `sleep` tasks on {} nodes (CURVE {})",
        settings.tasks,
        settings.tasks,
        super::interchange::on_off(common.curve)
    );
    print!("{}", table.render());
    let fields = json!({
        "tasks": settings.tasks,
        "running_tasks": sleeping,
        "target_mib": TARGET_MIB,
        "manager_idle": memory_json(idle, 1),
        "manager": memory_json(running, 1),
        "task_processes": memory_json(children_memory, children.len()),
        "note": "manager = the pool-manager process alone (all its threads); \
                 task_processes = its descendants (bash, sleep), not counted in manager",
    });
    common.finish(workspace, "memory", "memory-rhtex.json", fields)
}

/// Waits until `n` `sleep` processes descend from the manager; returns how
/// many there are.
fn wait_for_sleeps(manager: &Process, n: usize) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sleeping = procfs::descendants(manager.pid())?
            .into_iter()
            .filter(|pid| procfs::comm(*pid).is_ok_and(|comm| comm == "sleep"))
            .count();
        if sleeping >= n {
            return Ok(sleeping);
        }
        if Instant::now() > deadline {
            bail!(
                "only {sleeping} of {n} sleep tasks running after 120 s; see {}",
                manager.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(process: &mut Process) {
    if process.wait_exit(Duration::from_secs(30)).is_none() {
        eprintln!("rhtex-bench: {} did not exit; killing it", process.name);
        process.kill();
    }
}
