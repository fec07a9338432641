//! `rhtex-sim`: runs one workload through the real interchange core and
//! real pool-manager cores (the `pair` harness) in virtual time and prints
//! the report (text, or JSON with `--json`).
//! Exits 0 when every task got exactly one result and no check found a
//! violation, 1 otherwise, 2 on bad arguments or an unreadable workload.

use anyhow::Context;
use interchange_core::{CoreConfig, Placement};
use sim::{simulate, workload, SimConfig, Workload};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
Deterministic simulation of rhtex scheduling

Usage: rhtex-sim [OPTIONS]

Options:
      --workload <NAME>          parsl-mixed (the default), starvation, heavy-tailed,
                                 packing, or file (with --file)
      --seed <SEED>              Seed of the generated workloads [default: 1]
      --file <PATH>              A JSON or TOML workload file (implies --workload file)
      --placement <RULE>         How the interchange chooses among managers: best-fit
                                 or newest-block [default: best-fit]
      --max-block-nodes <N>      Tasks needing more nodes fail at once as unschedulable
      --default-retries <N>      Retries after a lost manager for tasks that do not say
                                 [default: 0]
      --batch-size <N>           Most tasks in one submit message [default: 1000]
      --check-reservations       Also check after every event that no queued task could
                                 start on a manager that is not reserved (asks the core
                                 for status each time)
      --json                     Print the report as JSON
      --log-level <LEVEL>        Log level of the interchange core (off, error, warn,
                                 info, debug) [default: off]
  -h, --help                     Print help
  -V, --version                  Print version
";

/// The command line. Parsed by hand: the simulator is a pure program and
/// its dependency list carries no argument parser.
#[derive(Debug)]
struct Args {
    workload: Option<String>,
    seed: u64,
    file: Option<PathBuf>,
    placement: String,
    max_block_nodes: Option<u32>,
    default_retries: u32,
    batch_size: usize,
    check_reservations: bool,
    json: bool,
    log_level: String,
}

/// What the command line asks for.
#[derive(Debug)]
enum Request {
    Run(Args),
    Help,
    Version,
}

fn parse_args(mut words: impl Iterator<Item = String>) -> anyhow::Result<Request> {
    let mut args = Args {
        workload: None,
        seed: 1,
        file: None,
        placement: "best-fit".to_owned(),
        max_block_nodes: None,
        default_retries: 0,
        batch_size: 1000,
        check_reservations: false,
        json: false,
        log_level: "off".to_owned(),
    };
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (word, None),
        };
        let mut value = || -> anyhow::Result<String> {
            inline
                .clone()
                .or_else(|| words.next())
                .with_context(|| format!("{flag} needs a value"))
        };
        let number = |text: String| -> anyhow::Result<u64> {
            text.parse()
                .with_context(|| format!("bad {flag} {text:?}: not a whole number"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Request::Help),
            "-V" | "--version" => return Ok(Request::Version),
            "--workload" => args.workload = Some(value()?),
            "--seed" => args.seed = number(value()?)?,
            "--file" => args.file = Some(PathBuf::from(value()?)),
            "--placement" => args.placement = value()?,
            "--max-block-nodes" => {
                args.max_block_nodes = Some(u32::try_from(number(value()?)?)?);
            }
            "--default-retries" => args.default_retries = u32::try_from(number(value()?)?)?,
            "--batch-size" => args.batch_size = usize::try_from(number(value()?)?)?,
            "--check-reservations" => args.check_reservations = true,
            "--json" => args.json = true,
            "--log-level" => args.log_level = value()?,
            other => anyhow::bail!("unexpected argument {other:?}\n\n{USAGE}"),
        }
    }
    Ok(Request::Run(args))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Request::Run(args)) => args,
        Ok(Request::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Request::Version) => {
            println!("rhtex-sim {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("rhtex-sim: {error:#}");
            return ExitCode::from(2);
        }
    };
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
