//! `rhtex-bench`: the benchmark programs. Each subcommand prints a table
//! and writes its results as JSON (see `bench/README.md`).

use anyhow::{Context, Result};
use bench::daemons;
use bench::loadgen::{self, LoadgenConfig};
use bench::scenarios::{self, Common};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "rhtex-bench",
    about = "rhtex benchmarks (measurements, not tests)"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// Directory of the interchange and pool-manager binaries [default:
    /// this executable's directory].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Turn CURVE off (it is on by default, as in production).
    #[arg(long)]
    insecure: bool,
    /// Where the JSON results go.
    #[arg(long, value_name = "DIR", default_value = "bench/results")]
    out: PathBuf,
    /// Keep the temporary directory with every process's log.
    #[arg(long)]
    keep: bool,
    /// Run the interchange without its journal (`interchange
    /// --no-journal`); it is on by default, as in production.
    #[arg(long)]
    no_journal: bool,
}

impl CommonArgs {
    fn common(&self) -> Result<Common> {
        Ok(Common {
            bin_dir: match &self.bin_dir {
                Some(dir) => dir.clone(),
                None => daemons::default_bin_dir()?,
            },
            curve: !self.insecure,
            out_dir: self.out.clone(),
            keep: self.keep,
            interchange_args: if self.no_journal {
                vec!["--no-journal".to_owned()]
            } else {
                Vec::new()
            },
        })
    }
}

/// How benchmark 1's runs push tasks through the interchange (also
/// benchmark 6's).
#[derive(Debug, Args)]
struct RunArgs {
    /// Tasks measured per run.
    #[arg(long, default_value_t = 200_000)]
    tasks: usize,
    /// Tasks per submit.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Most tasks in flight (submitted, no result yet).
    #[arg(long, default_value_t = 20_000)]
    window: usize,
    /// Nodes over all managers (each manager gets CAPACITY/K).
    #[arg(long, default_value_t = 16_384)]
    capacity: u32,
    /// Load generator threads (at least one per 1,000 managers).
    #[arg(long, default_value_t = 2)]
    loadgen_threads: usize,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Benchmark 1: the interchange alone with K simulated managers, then
    /// latency at light load.
    Interchange {
        #[command(flatten)]
        common: CommonArgs,
        /// Manager counts, one run each.
        #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
        managers: Vec<usize>,
        #[command(flatten)]
        run: RunArgs,
        /// Tasks of the light-load run (one at a time); 0 skips it.
        #[arg(long, default_value_t = 2000)]
        light_tasks: usize,
    },
    /// Benchmark 4: hold a million queued tasks, then drain them with
    /// 2,000 simulated managers.
    Scale {
        #[command(flatten)]
        common: CommonArgs,
        /// Tasks queued before any manager registers.
        #[arg(long, default_value_t = 1_000_000)]
        queued: usize,
        /// Tasks per submit.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Submits sent and not yet acknowledged, at most.
        #[arg(long, default_value_t = 4)]
        unacked: u64,
        /// Simulated managers that drain the queue (0: only queue, then
        /// stop).
        #[arg(long, default_value_t = 2000)]
        managers: usize,
        /// Nodes of each simulated manager.
        #[arg(long, default_value_t = 8)]
        nodes_per_manager: u32,
        /// Load generator threads (at least one per 1,000 managers).
        #[arg(long, default_value_t = 2)]
        loadgen_threads: usize,
    },
    /// Benchmark 6: the journal's cost. Benchmark 1's run with the journal
    /// on and off, alternating; then recovery of queued tasks after kill -9.
    Durability {
        #[command(flatten)]
        common: CommonArgs,
        /// Pairs of runs (journal on, journal off).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 100)]
        managers: usize,
        #[command(flatten)]
        run: RunArgs,
        /// Tasks queued before the kill -9; 0 skips the recovery part.
        #[arg(long, default_value_t = 1_000_000)]
        queued: usize,
        /// Tasks per submit while queueing them.
        #[arg(long, default_value_t = 10_000)]
        queue_batch: usize,
    },
    /// Benchmark 3: a pool-manager's memory while it runs `sleep` tasks,
    /// one per node.
    Memory {
        #[command(flatten)]
        common: CommonArgs,
        /// Nodes, and tasks running at once.
        #[arg(long, default_value_t = 64)]
        tasks: u32,
        /// Seconds each task sleeps (they are stopped once measured).
        #[arg(long, default_value_t = 300)]
        sleep: u32,
    },
    /// Decoding cost of tagged messages against plain structs (no sockets).
    Codec {
        /// Where the JSON results go.
        #[arg(long, value_name = "DIR", default_value = "bench/results")]
        out: PathBuf,
        /// Results per `results` message (1,000 managers in benchmark 1
        /// send about 17).
        #[arg(long, default_value_t = 17)]
        results: usize,
        /// Tasks per `submit`.
        #[arg(long, default_value_t = 1000)]
        submissions: usize,
        #[arg(long, default_value_t = 20_000)]
        rounds: usize,
    },
    /// (internal) The load generator: K simulated managers. Prints
    /// `{"ready": K}` once all registered, and its counts at exit.
    Managers {
        #[arg(long)]
        url: String,
        #[arg(long)]
        keys_dir: Option<PathBuf>,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 16)]
        nodes_per_manager: u32,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Seconds between heartbeats of each manager.
        #[arg(long, default_value_t = 10.0)]
        heartbeat: f64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rhtex-bench: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Commands::Interchange {
            common,
            managers,
            run,
            light_tasks,
        } => {
            let settings = scenarios::interchange::Settings {
                managers,
                tasks: run.tasks,
                batch: run.batch.max(1),
                window: run.window,
                capacity: run.capacity.max(1),
                loadgen_threads: run.loadgen_threads.max(1),
                light_tasks,
            };
            scenarios::interchange::run(&common.common()?, &settings)?;
            Ok(())
        }
        Commands::Scale {
            common,
            queued,
            batch,
            unacked,
            managers,
            nodes_per_manager,
            loadgen_threads,
        } => {
            let settings = scenarios::scale::Settings {
                queued: queued.max(1),
                batch: batch.max(1),
                unacked: unacked.max(1),
                managers,
                nodes_per_manager: nodes_per_manager.max(1),
                loadgen_threads: loadgen_threads.max(1),
            };
            scenarios::scale::run(&common.common()?, &settings)?;
            Ok(())
        }
        Commands::Durability {
            common,
            rounds,
            managers,
            run,
            queued,
            queue_batch,
        } => {
            let settings = scenarios::durability::Settings {
                rounds: rounds.max(1),
                managers: managers.max(1),
                tasks: run.tasks.max(1),
                batch: run.batch.max(1),
                window: run.window,
                capacity: run.capacity.max(1),
                loadgen_threads: run.loadgen_threads.max(1),
                queued,
                queue_batch: queue_batch.max(1),
            };
            scenarios::durability::run(&common.common()?, &settings)?;
            Ok(())
        }
        Commands::Memory {
            common,
            tasks,
            sleep,
        } => {
            let settings = scenarios::memory::Settings {
                tasks: tasks.max(1),
                sleep,
            };
            scenarios::memory::run(&common.common()?, &settings)?;
            Ok(())
        }
        Commands::Codec {
            out,
            results,
            submissions,
            rounds,
        } => {
            scenarios::codec::run(&out, results.max(1), submissions.max(1), rounds.max(1))?;
            Ok(())
        }
        Commands::Managers {
            url,
            keys_dir,
            count,
            nodes_per_manager,
            threads,
            heartbeat,
        } => run_managers(LoadgenConfig {
            url,
            keys_dir,
            n_managers: count,
            nodes_per_manager,
            threads,
            heartbeat_period: Duration::try_from_secs_f64(heartbeat)
                .context("--heartbeat must be a positive number of seconds")?,
        }),
    }
}

/// The load generator process: runs the managers on threads and prints
/// `{"ready": K}` on stdout once every one has registered.
fn run_managers(config: LoadgenConfig) -> Result<()> {
    let registered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let n_managers = config.n_managers;
    let worker = {
        let registered = Arc::clone(&registered);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || loadgen::run(&config, registered, stop))
    };
    let mut announced = false;
    while !worker.is_finished() {
        if !announced && registered.load(Ordering::Relaxed) >= n_managers {
            println!("{{\"ready\": {n_managers}}}");
            std::io::stdout()
                .flush()
                .context("cannot write to stdout")?;
            announced = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let counts = match worker.join() {
        Ok(outcome) => outcome?,
        Err(_) => anyhow::bail!("the load generator panicked"),
    };
    stop.store(true, Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "registered": counts.n_registered,
            "tasks_answered": counts.n_tasks_answered,
            "run_tasks_messages": counts.n_run_tasks_messages,
        })
    );
    Ok(())
}
