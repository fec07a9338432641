//! The commands that talk to a running interchange and print its reply.

use crate::submit::wait;
use crate::{Cli, Commands};
use anyhow::{bail, Context, Result};
use client::render;
use client::{Client, Command, Reply};

/// The commands that talk to a running interchange.
pub(crate) async fn run_remote(cli: &Cli, client: &mut Client) -> Result<i32> {
    let request = match &cli.command {
        Commands::Wait {
            task_ids,
            wait_timeout,
            output_file,
        } => {
            return wait(cli, client, task_ids, *wait_timeout, output_file.as_deref()).await;
        }
        Commands::Status => {
            let report = client.status().await.context("status failed")?;
            let now = unix_now();
            if cli.json {
                println!("{}", render::status_json(&report, now));
            } else {
                print!("{}", render::status_human(&report, now));
            }
            return Ok(0);
        }
        Commands::Tasks { state } => {
            let reply = client
                .command(Command::Tasks { state: *state })
                .await
                .context("tasks failed")?;
            let Reply::Tasks { tasks } = reply else {
                bail!("the interchange answered tasks with {reply:?}");
            };
            if cli.json {
                let tasks: Vec<serde_json::Value> =
                    tasks.iter().map(client::listing::task_json).collect();
                println!("{}", serde_json::json!({ "tasks": tasks }));
            } else {
                print!("{}", client::listing::tasks_human(&tasks));
            }
            return Ok(0);
        }
        Commands::Cancel { task_id } => Command::Cancel { task_id: *task_id },
        Commands::Hold { manager_id } => Command::Hold {
            manager_id: *manager_id,
        },
        Commands::Release { manager_id } => Command::Release {
            manager_id: *manager_id,
        },
        Commands::Drain { manager_id } => Command::Drain {
            manager_id: *manager_id,
        },
        Commands::Shutdown => Command::Shutdown,
        Commands::Submit(_) | Commands::Keygen { .. } | Commands::Run(_) | Commands::Report(_) => {
            bail!("internal: handled elsewhere")
        }
    };
    command(cli, client, request).await
}

pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or(0.0)
}

async fn command(cli: &Cli, client: &mut Client, command: Command) -> Result<i32> {
    let name = format!("{command:?}");
    let reply = client
        .command(command)
        .await
        .with_context(|| format!("command {name} failed"))?;
    let (ok, kind, message) = match &reply {
        Reply::Done { message } => (true, "done", message.clone()),
        Reply::Failed { message } => (false, "failed", message.clone()),
        other => (true, "other", format!("{other:?}")),
    };
    if cli.json {
        println!(
            "{}",
            serde_json::json!({ "reply": kind, "message": message })
        );
    } else if ok {
        println!("{message}");
    } else {
        eprintln!("rhtex: refused: {message}");
    }
    Ok(if ok { 0 } else { 1 })
}
