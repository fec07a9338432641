//! `rhtex run FILE`: the tasks of a file submitted to a given interchange
//! or to an embedded one, waited for with progress, and summed up.

use crate::{Cli, RunArgs};
use anyhow::{Context, Result};
use client::listing;
use client::local::{EmbeddedOptions, EmbeddedPool};
use client::render::{self, SummaryRow};
use client::waiting::WaitingReasons;
use client::{Client, TaskId, TaskSubmission};
use protocol::TaskResult;
use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) async fn run_embedded(cli: &Cli, args: &RunArgs, timeout: Duration) -> Result<i32> {
    // Read the file first: a bad file should fail before any daemon starts.
    let tasks = client::taskfile::read(&args.file)?;
    let mut pool = EmbeddedPool::start(&EmbeddedOptions {
        run_root: PathBuf::from("rhtex-run"),
        nodes: args.nodes.clone(),
        launcher: args.launcher.clone(),
        log_level: None,
        ready_timeout: timeout,
    })
    .await
    .context("cannot start the embedded interchange and pool-manager")?;
    eprintln!(
        "rhtex: embedded interchange at {} (pid {}), pool-manager pid {}, run directory {}",
        pool.interchange.client_url(),
        pool.interchange.daemon.pid(),
        pool.manager.daemon.pid(),
        pool.run_dir.display()
    );
    let grace = Duration::from_secs(10);
    let security = match pool.security() {
        Ok(security) => security,
        Err(error) => {
            let _ = pool.stop(None, grace).await;
            return Err(error).context("cannot load the embedded key directory");
        }
    };
    let mut client = match Client::connect(&pool.interchange.client_url(), &security, timeout).await
    {
        Ok(client) => client,
        Err(error) => {
            let _ = pool.stop(None, grace).await;
            return Err(error).context("cannot connect to the embedded interchange");
        }
    };
    let outcome = tokio::select! {
        outcome = run_tasks(cli, &mut client, &args.file, tasks) => outcome,
        status = pool.manager.daemon.exited() => Err(anyhow::anyhow!(
            "the embedded pool-manager exited ({}) while tasks were running; see {}",
            status.map(|status| status.to_string()).unwrap_or_else(|error| error.to_string()),
            pool.manager.daemon.log().display()
        )),
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let stopped = pool.stop(Some(&mut client), grace).await;
    client.close();
    if let Err(error) = stopped {
        eprintln!("rhtex: warning: stopping the embedded daemons: {error}");
    }
    outcome
}

pub(crate) async fn run_tasks(
    cli: &Cli,
    client: &mut Client,
    file: &Path,
    tasks: Vec<client::taskfile::FileTask>,
) -> Result<i32> {
    let n_tasks = tasks.len();
    let mut rows: Vec<SummaryRow> = tasks
        .iter()
        .map(|task| SummaryRow {
            index: task.index,
            command: task.submission.command.clone(),
            result: None,
        })
        .collect();
    let position: HashMap<TaskId, usize> = tasks
        .iter()
        .enumerate()
        .map(|(position, task)| (task.submission.task_id, position))
        .collect();
    let mut pending: HashSet<TaskId> = position.keys().copied().collect();
    let submissions: Vec<TaskSubmission> = tasks.into_iter().map(|task| task.submission).collect();
    let lines: Vec<(TaskId, String)> = submissions
        .iter()
        .map(|task| (task.task_id, task.command.clone()))
        .collect();
    client
        .submit(submissions)
        .await
        .with_context(|| format!("cannot submit the tasks of {}", file.display()))?;
    let mut out = Stdout::new();
    if cli.json {
        for ((task_id, command), row) in lines.iter().zip(&rows) {
            out.line(|out| listing::write_submitted_line(out, row.index, *task_id, command))?;
        }
    }

    let mut progress = Progress::new(n_tasks);
    let mut reasons = WaitingReasons::new();
    let mut n_done = 0;
    while n_done < n_tasks {
        // Lines are written in blocks while results keep coming, and
        // flushed as soon as none has come for FLUSH_AFTER.
        let result = {
            let next = reasons.next_result(client, &pending);
            tokio::pin!(next);
            loop {
                if !out.dirty && !progress.is_dirty() {
                    break next.as_mut().await;
                }
                tokio::select! {
                    biased;
                    result = next.as_mut() => break result,
                    _ = tokio::time::sleep(FLUSH_AFTER) => {
                        out.flush()?;
                        progress.flush();
                    }
                }
            }
        };
        let result = result.context("waiting for results failed")?;
        pending.remove(&result.task_id);
        let Some(&slot) = position.get(&result.task_id) else {
            continue;
        };
        let Some(row) = rows.get_mut(slot) else {
            continue;
        };
        if row.result.is_some() {
            continue;
        }
        n_done += 1;
        progress.report(n_done, row.index, &result);
        if cli.json {
            out.line(|out| listing::write_finished_line(out, row.index, &result))?;
        }
        row.result = Some(result);
    }
    progress.finish();

    if cli.json {
        out.summary_json(&rows)?;
    } else {
        out.text(&render::summary_human(&rows))?;
    }
    out.flush()?;
    let all_completed = rows.iter().all(|row| {
        row.result
            .as_ref()
            .is_some_and(|result| result.state == protocol::TaskState::Completed)
    });
    Ok(if all_completed { 0 } else { 1 })
}

/// How long results may stop coming before the lines written so far are
/// flushed: short enough for a reader of the output, long enough that a
/// stream of results is written in blocks rather than a write per line.
const FLUSH_AFTER: Duration = Duration::from_millis(20);

/// Standard output, buffered: the `--json` lines and the summary.
struct Stdout {
    writer: BufWriter<std::io::Stdout>,
    dirty: bool,
}

impl Stdout {
    fn new() -> Self {
        Self {
            writer: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            dirty: false,
        }
    }

    /// One JSON value, written by `write`, on a line of its own.
    fn line(
        &mut self,
        write: impl FnOnce(&mut BufWriter<std::io::Stdout>) -> std::io::Result<()>,
    ) -> Result<()> {
        write(&mut self.writer).context("cannot write to standard output")?;
        self.text("\n")
    }

    /// The `--json` summary on a line of its own.
    fn summary_json(&mut self, rows: &[SummaryRow]) -> Result<()> {
        render::write_summary_json(rows, &mut self.writer)
            .context("cannot write to standard output")?;
        self.text("\n")
    }

    fn text(&mut self, text: &str) -> Result<()> {
        self.writer
            .write_all(text.as_bytes())
            .context("cannot write to standard output")?;
        self.dirty = true;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.dirty = false;
        self.writer
            .flush()
            .context("cannot write to standard output")
    }
}

/// Progress on stderr: a bar on a terminal, plain lines otherwise
/// (buffered like [`Stdout`]).
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines {
        n_tasks: usize,
        writer: BufWriter<std::io::Stderr>,
        dirty: bool,
    },
}

impl Progress {
    fn new(n_tasks: usize) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(n_tasks as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} tasks ({elapsed}) {msg}",
            ) {
                bar.set_style(style);
            }
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                n_tasks,
                writer: BufWriter::with_capacity(16 * 1024, std::io::stderr()),
                dirty: false,
            }
        }
    }

    fn report(&mut self, n_done: usize, index: usize, result: &TaskResult) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(n_done as u64);
                bar.set_message(format!("task {index} {}", result.state));
            }
            Progress::Lines {
                n_tasks,
                writer,
                dirty,
            } => {
                // Progress is advisory: a closed stderr does not stop the run.
                let _ = writeln!(writer, "[{n_done}/{n_tasks}] task {index} {}", result.state);
                *dirty = true;
            }
        }
    }

    fn is_dirty(&self) -> bool {
        matches!(self, Progress::Lines { dirty: true, .. })
    }

    fn flush(&mut self) {
        if let Progress::Lines { writer, dirty, .. } = self {
            let _ = writer.flush();
            *dirty = false;
        }
    }

    fn finish(&mut self) {
        match self {
            Progress::Bar(bar) => bar.finish_and_clear(),
            Progress::Lines { .. } => self.flush(),
        }
    }
}
