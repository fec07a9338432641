//! `rhtex submit` and `rhtex wait`: one task built from flags, results
//! waited for and printed.

use crate::{seconds, Cli, SubmitArgs};
use anyhow::{bail, Context, Result};
use client::render;
use client::waiting::WaitingReasons;
use client::{Client, TaskBuilder, TaskId, TaskSubmission};
use protocol::{SpecValue, TaskResult};
use std::collections::HashSet;
use std::path::Path;

/// An absolute form of a path the user gave, so that it means the same
/// thing to the pool-manager, whose working directory differs.
fn absolute(path: &Path) -> Result<String> {
    let absolute = std::path::absolute(path)
        .with_context(|| format!("cannot make {} absolute", path.display()))?;
    Ok(absolute.to_string_lossy().into_owned())
}

/// The task `rhtex submit` sends, built with the library's [`TaskBuilder`]
/// and checked by it (so a bad spec fails before connecting).
pub(crate) fn submission(args: &SubmitArgs) -> Result<TaskSubmission> {
    let mut task = TaskBuilder::new(args.command.join(" "));
    for (key, value) in [
        ("num_nodes", args.num_nodes),
        ("ranks_per_node", args.ranks_per_node),
        ("num_ranks", args.num_ranks),
        ("priority", args.priority),
        ("retries", args.retries),
    ] {
        if let Some(value) = value {
            task = task.resource(key, value);
        }
    }
    if let Some(options) = &args.launcher_options {
        task = task.launcher_options(options.as_str());
    }
    if let Some(walltime) = args.walltime {
        // As given, so that a bad value reaches the specification's check.
        task = task.resource("walltime", SpecValue::Float(walltime));
    }
    if args.no_exclusive {
        task = task.exclusive(false);
    }
    for (key, value) in &args.env {
        task = task.env(key, value);
    }
    if let Some(cwd) = &args.cwd {
        task = task.cwd(absolute(cwd)?);
    }
    if let Some(stdout) = &args.stdout {
        task = task.stdout(absolute(stdout)?);
    }
    if let Some(stderr) = &args.stderr {
        task = task.stderr(absolute(stderr)?);
    }
    if let Some(path) = &args.input_file {
        let input = std::fs::read(path)
            .with_context(|| format!("cannot read the input file {}", path.display()))?;
        task = task.input(input);
    }
    task.build().context("not submitted")
}

/// Submits one task; with `wait` (`Some(output file)`), waits for its
/// result.
pub(crate) async fn submit(
    cli: &Cli,
    client: &mut Client,
    task: TaskSubmission,
    wait: Option<Option<&Path>>,
) -> Result<i32> {
    let ids = client.submit(vec![task]).await.context("submit failed")?;
    let Some(task_id) = ids.first().copied() else {
        bail!("the interchange accepted no task");
    };
    let Some(output_file) = wait else {
        if cli.json {
            println!("{}", serde_json::json!({ "task_id": task_id.to_string() }));
        } else {
            println!("{task_id}");
        }
        return Ok(0);
    };
    let result = WaitingReasons::new()
        .next_result(client, &HashSet::from([task_id]))
        .await
        .context("waiting for the result failed")?;
    print_result(cli, &result);
    if let Some(path) = output_file {
        write_output(&result, path)?;
    }
    Ok(render::exit_code_for(&result))
}

/// Writes a task's output to `path`; a task without output leaves it
/// alone (and says so on stderr).
pub(crate) fn write_output(result: &TaskResult, path: &Path) -> Result<()> {
    match &result.output {
        Some(output) => std::fs::write(path, output)
            .with_context(|| format!("cannot write the task's output to {}", path.display())),
        None => {
            eprintln!(
                "rhtex: task {} returned no output; {} not written",
                result.task_id,
                path.display()
            );
            Ok(())
        }
    }
}

pub(crate) fn print_result(cli: &Cli, result: &TaskResult) {
    if cli.json {
        println!("{}", render::result_json(result));
    } else {
        print!("{}", render::result_human(result));
    }
}

pub(crate) async fn wait(
    cli: &Cli,
    client: &mut Client,
    task_ids: &[TaskId],
    wait_timeout: Option<f64>,
    output_file: Option<&Path>,
) -> Result<i32> {
    client.watch(task_ids).await.context("watch failed")?;
    let deadline = match wait_timeout {
        Some(secs) => Some(tokio::time::Instant::now() + seconds(secs, "--wait-timeout")?),
        None => None,
    };
    let mut pending: HashSet<TaskId> = task_ids.iter().copied().collect();
    let mut all_completed = true;
    let mut reasons = WaitingReasons::new();
    while !pending.is_empty() {
        let next = reasons.next_result(client, &pending);
        let result = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, next).await.map_err(|_| {
                anyhow::anyhow!(
                    "{} task(s) still without a result at the --wait-timeout",
                    pending.len()
                )
            })?,
            None => next.await,
        }
        .context("waiting for results failed")?;
        if !pending.remove(&result.task_id) {
            continue;
        }
        all_completed &= result.state == protocol::TaskState::Completed;
        print_result(cli, &result);
        if let Some(path) = output_file {
            write_output(&result, path)?;
        }
    }
    Ok(if all_completed { 0 } else { 1 })
}
