//! `rhtex-sim`: runs one workload through the real interchange core in
//! virtual time and prints the report (text, or JSON with `--json`).
//! Exits 0 when every task got exactly one result and no check found a
//! violation, 1 otherwise, 2 on bad arguments or an unreadable workload.

use anyhow::Context;
use clap::Parser;
use interchange_core::{CoreConfig, Placement};
use sim::{simulate, workload, SimConfig, Workload};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "rhtex-sim",
    version,
    about = "Deterministic simulation of rhtex scheduling"
)]
struct Args {
    /// parsl-mixed (the default), starvation, heavy-tailed, packing, or file
    /// (with --file).
    #[arg(long)]
    workload: Option<String>,
    /// Seed of the generated workloads.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A JSON or TOML workload file (implies --workload file).
    #[arg(long)]
    file: Option<PathBuf>,
    /// How the interchange chooses among managers: best-fit or newest-block.
    #[arg(long, default_value = "best-fit")]
    placement: String,
    /// Tasks needing more nodes fail at once as unschedulable.
    #[arg(long)]
    max_block_nodes: Option<u32>,
    /// Retries after a lost manager for tasks that do not say.
    #[arg(long, default_value_t = 0)]
    default_retries: u32,
    /// Most tasks in one submit message.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Also check after every event that no queued task could start on a
    /// manager that is not reserved (asks the core for status each time).
    #[arg(long)]
    check_reservations: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Log level of the interchange core (off, error, warn, info, debug).
    #[arg(long, default_value = "off")]
    log_level: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("rhtex-sim: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<bool> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .with_context(|| format!("bad --log-level {:?}", args.log_level))?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let placement: Placement = args
        .placement
        .parse()
        .map_err(|message: String| anyhow::anyhow!(message))
        .context("bad --placement")?;
    let name = args.workload.as_deref();
    let (workload, seed): (Workload, Option<u64>) = match (&args.file, name) {
        (Some(path), None | Some("file")) => (
            Workload::from_file(path)
                .with_context(|| format!("cannot use workload file {}", path.display()))?,
            None,
        ),
        (Some(_), Some(other)) => {
            anyhow::bail!("--file goes with --workload file, not --workload {other}")
        }
        (None, Some("file")) => anyhow::bail!("--workload file needs --file PATH"),
        (None, name) => {
            let name = name.unwrap_or("parsl-mixed");
            (workload::by_name(name, args.seed)?, Some(args.seed))
        }
    };
    let config = SimConfig {
        core: CoreConfig {
            placement,
            max_block_nodes: args.max_block_nodes,
            default_retries: args.default_retries,
            ..CoreConfig::default()
        },
        batch_size: args.batch_size,
        check_unreserved_capacity: args.check_reservations,
        ..SimConfig::default()
    };
    let report = simulate(&workload, config, seed).context("cannot simulate")?;
    if args.json {
        let text = serde_json::to_string_pretty(&report.to_json()).context("cannot write JSON")?;
        println!("{text}");
    } else {
        println!("{report}");
    }
    Ok(report.ok())
}
