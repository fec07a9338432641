//! Submits a few small MPI tasks that share nodes (`exclusive(false)`), each
//! bounded by a walltime, to a running interchange, and prints their results.
//!
//! ```text
//! RHTEX_INTERCHANGE=tcp://127.0.0.1:41234 cargo run -p client --example packed
//! ```
//!
//! The keys come from `RHTEX_KEYS_DIR` (default `~/.rhtex/keys`); set
//! `RHTEX_INSECURE=1` for an interchange started with `--insecure`. The
//! same tasks as a task file: `crates/client/examples/packed.toml`.

use anyhow::{Context, Result};
use client::{Client, ClientSecurity, TaskBuilder};
use std::path::PathBuf;
use std::time::Duration;

const N_TASKS: u32 = 4;

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::var("RHTEX_INTERCHANGE")
        .context("set RHTEX_INTERCHANGE to the interchange's client URL")?;
    let security = if std::env::var_os("RHTEX_INSECURE").is_some() {
        ClientSecurity::Insecure
    } else {
        let dir = match std::env::var_os("RHTEX_KEYS_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                .join(".rhtex/keys"),
        };
        ClientSecurity::from_keys_dir(&dir)
            .with_context(|| format!("cannot load the keys in {}", dir.display()))?
    };
    let mut client = Client::connect(&url, &security, Duration::from_secs(30))
        .await
        .with_context(|| format!("cannot connect to {url}"))?;

    let tasks = (0..N_TASKS)
        .map(|index| {
            TaskBuilder::new(format!(
                "$PARSL_MPI_PREFIX hostname && echo task {index} on $PARSL_MPI_NODELIST"
            ))
            .num_nodes(1)
            .ranks_per_node(1)
            .exclusive(false)
            .walltime(Duration::from_secs(60))
            .retries(1)
            .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .context("a task is invalid")?;
    let task_ids = client.submit(tasks).await.context("submit failed")?;
    let results = client
        .wait(&task_ids, Duration::from_secs(600))
        .await
        .context("waiting for the results failed")?;
    for result in &results {
        print!("{}", client::render::result_human(result));
    }
    client.close();
    let n_failed = results
        .iter()
        .filter(|result| result.state != client::TaskState::Completed)
        .count();
    anyhow::ensure!(
        n_failed == 0,
        "{n_failed} of {N_TASKS} task(s) did not complete"
    );
    Ok(())
}
