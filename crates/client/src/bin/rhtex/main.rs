//! `rhtex`: the command line over the client library. Parses flags, sets
//! up logging, and turns library calls into printed output and exit codes.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use client::listing;
use client::{Client, ClientSecurity, TaskId};
use protocol::ManagerId;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod remote;
mod run_file;
mod submit;

use remote::run_remote;
use run_file::{run_embedded, run_tasks};
use submit::{submission, submit};

/// Run and manage MPI task ensembles on rhtex pilot blocks.
///
/// rhtex talks to an interchange (`--interchange URL`, or RHTEX_INTERCHANGE),
/// which hands tasks to pool-managers running inside batch allocations.
/// `rhtex run FILE` without an interchange starts a private interchange and
/// one pool-manager on this host, runs the file and stops them.
#[derive(Debug, Parser)]
#[command(name = "rhtex", version, propagate_version = true)]
struct Cli {
    /// The interchange's client URL, e.g. tcp://127.0.0.1:41234 (as printed
    /// in its ready line).
    #[arg(long, global = true, env = "RHTEX_INTERCHANGE", value_name = "URL")]
    interchange: Option<String>,

    /// Directory with the CURVE keys (server.key, client.key_secret...);
    /// default ~/.rhtex/keys.
    #[arg(long, global = true, env = "RHTEX_KEYS_DIR", value_name = "DIR")]
    keys_dir: Option<PathBuf>,

    /// Connect without encryption (the interchange must run with --insecure).
    #[arg(long, global = true)]
    insecure: bool,

    /// The client identity to connect as: `default` (client.key_secret,
    /// an admin) or NAME (client-NAME.key_secret, made by
    /// `rhtex keygen --client NAME DIR`).
    #[arg(
        long,
        global = true,
        env = "RHTEX_CLIENT_KEY",
        value_name = "NAME",
        default_value = "default"
    )]
    client_key: transport::ClientName,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    /// Seconds to wait for the interchange to answer (connecting and each
    /// request), and, while waiting for results, for an interchange that
    /// went away (a restart) to come back.
    #[arg(long, global = true, default_value_t = 30.0, value_name = "SECS")]
    timeout: f64,

    /// Log level for rhtex's own messages on stderr (error, warn, info,
    /// debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    log_level: String,

    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Submit one task and print its id (or, with --wait, its result).
    ///
    /// The words after `--` are joined with single spaces and run with
    /// `/bin/bash -c` on the lead node of the nodes the task gets, so both
    /// `-- echo hi` and `-- 'echo $PARSL_NUM_RANKS'` work. MPI programs are
    /// started through the launcher prefix, e.g.
    /// `-- '$PARSL_MPI_PREFIX ./a.out'`.
    ///
    /// With --input-file, the file's bytes travel with the task: the command
    /// finds them in the file named by $RHTEX_TASK_INPUT. Whatever the
    /// command writes to the file named by $RHTEX_TASK_OUTPUT comes back
    /// with the result (with --wait --output-file F, into F).
    Submit(Box<SubmitArgs>),
    /// Wait for tasks and print each result as it arrives.
    ///
    /// Exits 0 if every task completed, 1 otherwise. A task the interchange
    /// does not know fails the wait at once, naming it. Waiting survives a
    /// restart of the interchange: rhtex reconnects and watches the tasks
    /// again (the interchange may be away up to --timeout).
    Wait {
        /// Task ids, as printed by `submit`.
        #[arg(required = true, value_name = "ID")]
        task_ids: Vec<TaskId>,
        /// Give up after this many seconds (default: wait as long as it takes).
        #[arg(long, value_name = "SECS")]
        wait_timeout: Option<f64>,
        /// Write the task's output (what it wrote to $RHTEX_TASK_OUTPUT) to
        /// this file; one task id only. Not written if the task returned
        /// no output.
        #[arg(long, value_name = "F")]
        output_file: Option<PathBuf>,
    },
    /// Show the connected pool-managers, the queue and why tasks wait.
    Status,
    /// List the tasks the interchange knows (queued, running, and the
    /// finished ones whose results it keeps), oldest first: id, state,
    /// nodes, submit/start/end times (UTC), exit code.
    Tasks {
        /// Only tasks in this state: queued, running, completed, failed,
        /// cancelled.
        #[arg(long, value_name = "S", value_parser = listing::parse_state)]
        state: Option<protocol::TaskState>,
    },
    /// Write an HTML report (one self-contained page with SVG charts) of
    /// an event log: node utilization over time, queued and running tasks,
    /// wait and run times, and a summary.
    Report(client::report::ReportArgs),
    /// Cancel a task: removed if queued, killed if running.
    Cancel {
        #[arg(value_name = "ID")]
        task_id: TaskId,
    },
    /// Send no new tasks to a pool-manager until `release`.
    Hold {
        #[arg(value_name = "MANAGER")]
        manager_id: ManagerId,
    },
    /// Let a held pool-manager receive tasks again.
    Release {
        #[arg(value_name = "MANAGER")]
        manager_id: ManagerId,
    },
    /// Send no new tasks to a pool-manager and tell it to exit once idle.
    Drain {
        #[arg(value_name = "MANAGER")]
        manager_id: ManagerId,
    },
    /// Create a CURVE key directory (mode 0700): the interchange's pair,
    /// the manager identity (for pool-managers) and the default client
    /// identity (an admin). Pairs already there are kept (a directory of
    /// an older rhtex gets its manager identity).
    ///
    /// With --client NAME, add client identity NAME to an existing key
    /// directory instead: client-NAME.key (admitted by the interchange
    /// from its next start or SIGHUP) and client-NAME.key_secret (hand it
    /// to the user, with server.key).
    Keygen {
        /// Add this client identity instead.
        #[arg(long, value_name = "NAME")]
        client: Option<transport::ClientName>,
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// End the work: the interchange cancels its queued tasks, tells its
    /// pool-managers to end theirs and stop, and exits. (SIGTERM to the
    /// interchange stops it and keeps the work.)
    Shutdown,
    /// Run every task of a task file and wait for all of them.
    ///
    /// The file is JSON lines (one object per line) or TOML ([[task]]
    /// tables), with keys command, resources (num_nodes, ranks_per_node,
    /// num_ranks, launcher_options, priority, walltime, retries,
    /// exclusive), env, cwd, stdout, stderr.
    /// Without --interchange, rhtex starts its own interchange and one
    /// pool-manager on this host (run directory rhtex-run/run-<timestamp>,
    /// with fresh CURVE keys) and stops them at the end. Exits non-zero if
    /// any task did not complete.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct SubmitArgs {
    /// Nodes the task needs (default 1).
    #[arg(long, value_name = "N")]
    num_nodes: Option<i64>,
    /// MPI ranks per node.
    #[arg(long, value_name = "P")]
    ranks_per_node: Option<i64>,
    /// Total MPI ranks.
    #[arg(long, value_name = "R")]
    num_ranks: Option<i64>,
    /// Extra arguments for the MPI launcher.
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    launcher_options: Option<String>,
    /// Priority: smaller runs first; tasks without one come last.
    #[arg(long, value_name = "K", allow_hyphen_values = true)]
    priority: Option<i64>,
    /// Seconds the task may run (more than 0, fractions allowed); the
    /// pool-manager kills it past that and it fails with walltime_exceeded.
    /// Short walltimes also let the task start ahead of a waiting large one.
    #[arg(long, value_name = "SECS", allow_hyphen_values = true)]
    walltime: Option<f64>,
    /// How many times the task is queued again if its pool-manager is lost
    /// (0 to 1000; default: the interchange's --default-retries).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    retries: Option<i64>,
    /// Share nodes with other non-exclusive tasks: take --ranks-per-node
    /// slots on each node instead of whole nodes.
    #[arg(long)]
    no_exclusive: bool,
    /// An environment variable for the task (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env_pair)]
    env: Vec<(String, String)>,
    /// Working directory of the task (relative to this directory).
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// File for the task's stdout (relative to this directory).
    #[arg(long, value_name = "F")]
    stdout: Option<PathBuf>,
    /// File for the task's stderr (relative to this directory).
    #[arg(long, value_name = "F")]
    stderr: Option<PathBuf>,
    /// A file whose bytes are the task's input: the pool-manager writes
    /// them to a file on the lead node and names it in $RHTEX_TASK_INPUT
    /// (at most the interchange's max_task_input_bytes, 16 MiB by default).
    #[arg(long, value_name = "F")]
    input_file: Option<PathBuf>,
    /// With --wait: write the task's output (what it wrote to
    /// $RHTEX_TASK_OUTPUT) to this file. Not written if the task returned
    /// no output.
    #[arg(long, value_name = "F", requires = "wait")]
    output_file: Option<PathBuf>,
    /// Wait for the result, print it and exit with the task's exit code
    /// (128+N if killed by signal N).
    #[arg(long)]
    wait: bool,
    /// The command, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The task file (.jsonl/.json or .toml).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Embedded mode only: the pool-manager's nodes, comma separated
    /// (default: discovered from Slurm/PBS, else this host).
    #[arg(long, value_name = "a,b,c", value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    /// Embedded mode only: the MPI launcher (mpiexec, srun, aprun).
    #[arg(long, value_name = "L")]
    launcher: Option<String>,
}

fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected K=V, got {text:?}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    // One thread: the command waits on one interchange (the ZeroMQ link
    // has its own thread), and needs no cross-thread wake-ups.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rhtex: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)),
        Err(error) => {
            eprintln!("rhtex: error: {}", describe_error(&error));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes joined with `: `, skipping a cause whose text
/// an earlier message already includes (library errors often quote their
/// source).
fn describe_error(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs one command; returns the process exit code.
async fn run(cli: Cli) -> Result<i32> {
    let timeout = seconds(cli.timeout, "--timeout")?;
    match &cli.command {
        Commands::Keygen { dir, client } => {
            let wrote = match client {
                None => {
                    transport::keygen(dir)
                        .with_context(|| format!("cannot create keys in {}", dir.display()))?;
                    "the server's pair, the manager identity and the default client identity \
                     (server.key, manager.key, client.key and their *_secret files)"
                        .to_owned()
                }
                Some(name) => {
                    transport::keygen_client(dir, name).with_context(|| {
                        format!("cannot add client identity {name} to {}", dir.display())
                    })?;
                    format!(
                        "client identity {name} (client-{name}.key, admitted by the interchange \
                         from its next start or SIGHUP, and client-{name}.key_secret for the user)"
                    )
                }
            };
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "keys_dir": dir.display().to_string(),
                        "client": client.as_ref().map(ToString::to_string),
                    })
                );
            } else {
                println!("wrote {wrote} to {} (mode 0700)", dir.display());
            }
            Ok(0)
        }
        Commands::Report(args) => client::report::write(args).map(|()| 0),
        Commands::Run(args) => match &cli.interchange {
            Some(url) => {
                if args.nodes.is_some() || args.launcher.is_some() {
                    bail!("--nodes and --launcher apply only to the embedded interchange (rhtex run without --interchange)");
                }
                let tasks = client::taskfile::read(&args.file)?;
                let mut client = connect(&cli, url, timeout).await?;
                let code = tokio::select! {
                    code = run_tasks(&cli, &mut client, &args.file, tasks) => code,
                    _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
                };
                client.close();
                code
            }
            None => run_embedded(&cli, args, timeout).await,
        },
        Commands::Submit(args) => {
            // Built (and checked) before connecting: a bad spec fails at once.
            let task = submission(args)?;
            let mut client = connect_given(&cli, timeout).await?;
            let wait = args.wait.then_some(args.output_file.as_deref());
            let code = submit(&cli, &mut client, task, wait).await;
            client.close();
            code
        }
        Commands::Wait {
            task_ids,
            output_file: Some(_),
            ..
        } if task_ids.len() != 1 => {
            bail!("--output-file takes the output of one task: give exactly one task id");
        }
        _ => {
            let mut client = connect_given(&cli, timeout).await?;
            let code = run_remote(&cli, &mut client).await;
            client.close();
            code
        }
    }
}

/// Connects to the interchange given by `--interchange` or RHTEX_INTERCHANGE.
async fn connect_given(cli: &Cli, timeout: Duration) -> Result<Client> {
    let Some(url) = &cli.interchange else {
        bail!("no interchange given: use --interchange URL or set RHTEX_INTERCHANGE");
    };
    connect(cli, url, timeout).await
}

fn seconds(value: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{flag} must be a non-negative number of seconds, got {value}"))
}

fn security(cli: &Cli) -> Result<ClientSecurity> {
    if cli.insecure {
        eprintln!(
            "rhtex: warning: --insecure: no encryption and no authentication; \
             anyone on the network path can read and change what is sent"
        );
        return Ok(ClientSecurity::Insecure);
    }
    let dir = match &cli.keys_dir {
        Some(dir) => dir.clone(),
        None => default_keys_dir()?,
    };
    ClientSecurity::from_keys_dir_as(&dir, &cli.client_key).with_context(|| {
        format!(
            "cannot use client identity {} of the key directory {} (or pass --insecure)",
            cli.client_key,
            dir.display()
        )
    })
}

fn default_keys_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .context("HOME is not set, so there is no default key directory; pass --keys-dir")?;
    Ok(PathBuf::from(home).join(".rhtex").join("keys"))
}

async fn connect(cli: &Cli, url: &str, timeout: Duration) -> Result<Client> {
    let security = security(cli)?;
    Client::connect(url, &security, timeout)
        .await
        .with_context(|| format!("cannot connect to the interchange at {url}"))
}
