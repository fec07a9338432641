//! One test's world: a temporary directory holding every process's log,
//! key directories and run directories, and the daemons started in it.
//!
//! When a test fails (the thread is panicking as the scenario is dropped),
//! the tail of every log is printed and the directory is kept, so that CI
//! output explains the failure.

use crate::client::RawClient;
use crate::{binary, fakes_dir, HEARTBEAT_PERIOD, HEARTBEAT_THRESHOLD, WAIT};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use protocol::{Launcher, ManagerId, ReadyLine};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tempfile::TempDir;
use testkit::{read_interchange_ready, Daemon, Launch, Stdout};
pub use transport::Security;

/// Any free port on the loopback address.
const LOOPBACK: &str = "tcp://127.0.0.1:0";

/// How many bytes of each log to print when a test fails.
const LOG_TAIL_BYTES: usize = 6000;

/// A temporary directory per test, plus cleanup of stray process groups.
#[derive(Debug)]
pub struct Scenario {
    name: String,
    dir: Option<TempDir>,
    path: PathBuf,
    stray_groups: Mutex<Vec<i32>>,
}

impl Scenario {
    pub fn new(name: &str) -> Scenario {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rhtex-e2e-{name}-"))
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a temporary directory: {error}"));
        let path = dir.path().to_path_buf();
        Scenario {
            name: name.to_owned(),
            dir: Some(dir),
            path,
            stray_groups: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the scenario directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A fresh key directory (mode 0700) made by `transport::keygen`.
    pub fn keygen(&self, name: &str) -> PathBuf {
        let dir = self.file(name);
        transport::keygen(&dir).unwrap_or_else(|error| panic!("keygen {name}: {error}"));
        dir
    }

    /// A key directory with the right `server.key` (copied from
    /// `known_keys`) but a client key pair the interchange does not know.
    pub fn unknown_client_keys(&self, known_keys: &Path, name: &str) -> PathBuf {
        let dir = self.keygen(name);
        let server_public = transport::keys::SERVER_PUBLIC;
        std::fs::copy(known_keys.join(server_public), dir.join(server_public))
            .unwrap_or_else(|error| panic!("cannot copy server.key: {error}"));
        // keygen wrote a fresh pair; make sure it differs from the known one.
        let known = transport::keys::load_client_keys(known_keys).expect("known keys load");
        let fresh = transport::keys::load_client_keys(&dir).expect("fresh keys load");
        assert_ne!(known.client, fresh.client);
        assert_eq!(known.server_public, fresh.server_public);
        dir
    }

    /// A process group to SIGKILL when the scenario ends (a task that
    /// outlives the manager that started it).
    pub fn adopt_process_group(&self, pgid: i32) {
        if let Ok(mut groups) = self.stray_groups.lock() {
            groups.push(pgid);
        }
    }

    /// Starts any process of the test with its own log.
    pub fn spawn(&self, launch: Launch) -> Daemon {
        Daemon::spawn(&self.path, launch)
    }

    /// How to start `program` as `name` in the scenario directory, stdout
    /// to `<name>.stdout`.
    pub fn launch(&self, name: &str, program: impl Into<PathBuf>) -> Launch {
        Launch::new(name, program).cwd(&self.path)
    }

    /// Starts the interchange binary with exactly `args` (no defaults), its
    /// stdout to a file: for an interchange that is to refuse to start.
    pub fn spawn_interchange(&self, name: &str, args: &[String]) -> Daemon {
        self.spawn(self.launch(name, binary("interchange")).args(args))
    }

    /// The setup most tests share: a CURVE interchange (see
    /// [`Scenario::start_secure_interchange`]), one manager started with
    /// `options` and a client that has seen it register.
    pub fn start_pool(&self, options: ManagerOptions) -> Pool {
        self.start_pool_with(&[], options)
    }

    /// [`Scenario::start_pool`] with the interchange flags `extra`.
    pub fn start_pool_with(&self, extra: &[&str], options: ManagerOptions) -> Pool {
        let interchange = self.start_secure_interchange(extra);
        let (manager, client) = self.start_manager_with_client(&interchange, options);
        (interchange, manager, client)
    }

    /// Starts a manager on `interchange` and connects a client that waits
    /// until the manager has registered.
    pub fn start_manager_with_client(
        &self,
        interchange: &Interchange,
        options: ManagerOptions,
    ) -> (ManagerProcess, RawClient) {
        let manager = self.start_manager(interchange, options);
        let mut client = RawClient::connect(interchange);
        client.wait_managers(&[manager.manager_id]);
        (manager, client)
    }

    /// Starts a manager on `interchange` and waits until `client` sees it
    /// registered.
    pub fn start_registered_manager(
        &self,
        interchange: &Interchange,
        client: &mut RawClient,
        options: ManagerOptions,
    ) -> ManagerProcess {
        let manager = self.start_manager(interchange, options);
        client.wait_managers(&[manager.manager_id]);
        manager
    }

    /// An interchange named `interchange` with CURVE on, a fresh key
    /// directory `keys` and `extra` flags.
    pub fn start_secure_interchange(&self, extra: &[&str]) -> Interchange {
        let keys = self.keygen("keys");
        self.start_interchange("interchange", &Security::Curve(keys), extra)
    }

    /// Starts an interchange on 127.0.0.1 with short heartbeats and waits
    /// for its ready line.
    pub fn start_interchange(
        &self,
        name: &str,
        security: &Security,
        extra: &[&str],
    ) -> Interchange {
        let listen = (LOOPBACK, LOOPBACK);
        self.start_interchange_at(name, None, security, listen, extra)
    }

    /// Starts an interchange again on the addresses `previous` was bound
    /// to (the same keys), as a service restarted in place, on a run
    /// directory of its own (`<name>-run`: nothing of `previous` is kept).
    pub fn restart_interchange(
        &self,
        name: &str,
        previous: &Interchange,
        extra: &[&str],
    ) -> Interchange {
        let listen = (previous.client_url.as_str(), previous.manager_url.as_str());
        self.start_interchange_at(name, None, &previous.security, listen, extra)
    }

    /// Starts an interchange named `name` (its log `<name>.log`) with
    /// clients on 127.0.0.1 and managers on `manager_listen`, on the run
    /// directory `run_dir` (as a restart of an earlier one would).
    pub fn start_interchange_in(
        &self,
        name: &str,
        run_dir: &Path,
        security: &Security,
        manager_listen: &str,
        extra: &[&str],
    ) -> Interchange {
        let listen = (LOOPBACK, manager_listen);
        self.start_interchange_at(name, Some(run_dir), security, listen, extra)
    }

    /// Starts an interchange on `run_dir` (default `<name>-run`), bound to
    /// `listen`: the client and the manager addresses.
    fn start_interchange_at(
        &self,
        name: &str,
        run_dir: Option<&Path>,
        security: &Security,
        (client_listen, manager_listen): (&str, &str),
        extra: &[&str],
    ) -> Interchange {
        let run_dir = run_dir.map_or_else(|| self.file(&format!("{name}-run")), Path::to_path_buf);
        let mut args = vec![
            "--run-dir".to_owned(),
            run_dir.display().to_string(),
            "--client-listen".to_owned(),
            client_listen.to_owned(),
            "--manager-listen".to_owned(),
            manager_listen.to_owned(),
            "--log-level".to_owned(),
            "debug".to_owned(),
        ];
        push_short_heartbeats(&mut args, extra);
        args.extend(security.flags());
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let launch = self.launch(name, binary("interchange")).args(args);
        let mut daemon = self.spawn(launch.stdout(Stdout::Piped));
        let ReadyLine {
            client_url,
            manager_url,
            pid,
        } = read_interchange_ready(&mut daemon, WAIT);
        Interchange {
            manager_connect_url: transport::connectable_url(&manager_url),
            client_url,
            manager_url,
            pid,
            security: security.clone(),
            daemon,
        }
    }

    /// Starts a pool-manager connected to `interchange` with short heartbeats.
    /// The fake launchers' directory comes first on its `PATH`.
    pub fn start_manager(
        &self,
        interchange: &Interchange,
        options: ManagerOptions,
    ) -> ManagerProcess {
        let security = options
            .security
            .clone()
            .unwrap_or_else(|| interchange.security.clone());
        let manager_id = options.manager_id.unwrap_or_else(ManagerId::new_random);
        let mut args = vec![
            "--interchange".to_owned(),
            interchange.manager_connect_url.clone(),
            "--manager-id".to_owned(),
            manager_id.to_string(),
            "--block-id".to_owned(),
            options.block_id.clone(),
            "--launcher".to_owned(),
            options.launcher.as_str().to_owned(),
            "--run-dir".to_owned(),
            self.file(&format!("{}-run", options.name))
                .display()
                .to_string(),
            "--log-level".to_owned(),
            "debug".to_owned(),
        ];
        push_short_heartbeats(&mut args, &options.extra_args);
        if !options.nodes.is_empty() {
            args.push("--nodes".to_owned());
            args.push(options.nodes.join(","));
        }
        args.extend(security.flags());
        args.extend(options.extra_args.iter().cloned());
        let mut env = options.env.clone();
        if options.fakes_on_path {
            let path = std::env::var("PATH").unwrap_or_default();
            env.push((
                "PATH".to_owned(),
                format!("{}:{path}", fakes_dir().display()),
            ));
            env.push((
                "RHTEX_FAKE_LAUNCHER_LOG".to_owned(),
                self.file(&format!("{}-launcher.log", options.name))
                    .display()
                    .to_string(),
            ));
            env.push((
                "RHTEX_FAKE_LAUNCHER_ENV_LOG".to_owned(),
                self.file(&format!("{}-launcher-env.log", options.name))
                    .display()
                    .to_string(),
            ));
        }
        let daemon = self.spawn(Launch {
            args,
            env,
            ..self.launch(&options.name, binary("pool-manager"))
        });
        ManagerProcess {
            manager_id,
            block_id: options.block_id,
            nodes: options.nodes,
            launcher_log: self.file(&format!("{}-launcher.log", options.name)),
            launcher_env_log: self.file(&format!("{}-launcher-env.log", options.name)),
            daemon,
        }
    }

    fn print_logs(&self) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&self.path)
            .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
            .unwrap_or_default();
        entries.sort();
        eprintln!(
            "==== scenario {} failed; its directory is kept: {}",
            self.name,
            self.path.display()
        );
        for path in entries {
            let is_output = matches!(
                path.extension().and_then(|ext| ext.to_str()),
                Some("log") | Some("stdout")
            );
            if !is_output {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap_or_default();
            let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
            eprintln!(
                "---- {} (last {} of {} bytes) ----\n{}",
                path.display(),
                bytes.len() - start,
                bytes.len(),
                String::from_utf8_lossy(&bytes[start..])
            );
        }
        eprintln!("==== end of logs of {}", self.name);
    }
}

/// Short heartbeat flags pushed on `args`, but for those that the test's
/// own flags `given` set.
fn push_short_heartbeats(args: &mut Vec<String>, given: &[impl AsRef<str>]) {
    for (flag, value) in [
        ("--heartbeat-period", HEARTBEAT_PERIOD),
        ("--heartbeat-threshold", HEARTBEAT_THRESHOLD),
    ] {
        if !given.iter().any(|arg| arg.as_ref() == flag) {
            args.push(flag.to_owned());
            args.push(value.to_owned());
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if let Ok(groups) = self.stray_groups.lock() {
            for pgid in groups.iter() {
                let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
            }
        }
        if std::thread::panicking() {
            self.print_logs();
            if let Some(dir) = self.dir.take() {
                let _kept = dir.keep();
            }
        }
    }
}

/// A CURVE interchange, one manager and a client that has seen it
/// register ([`Scenario::start_pool`]), in that order.
pub type Pool = (Interchange, ManagerProcess, RawClient);

/// A running interchange.
#[derive(Debug)]
pub struct Interchange {
    pub client_url: String,
    /// As printed on the ready line.
    pub manager_url: String,
    /// `manager_url` with a wildcard address replaced by the loopback one.
    pub manager_connect_url: String,
    pub pid: u32,
    pub security: Security,
    pub daemon: Daemon,
}

/// How to start a pool-manager.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// Log name (`<name>.log`), run directory `<name>-run`.
    pub name: String,
    pub block_id: String,
    pub manager_id: Option<ManagerId>,
    pub nodes: Vec<String>,
    pub launcher: Launcher,
    /// Put `tests/fakes` first on `PATH` and set `RHTEX_FAKE_LAUNCHER_LOG`.
    pub fakes_on_path: bool,
    /// Defaults to the interchange's.
    pub security: Option<Security>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl ManagerOptions {
    /// A manager named `name` with these nodes, launcher srun and the fakes on `PATH`.
    pub fn new(name: &str, nodes: &[&str]) -> ManagerOptions {
        ManagerOptions {
            name: name.to_owned(),
            block_id: format!("block-{name}"),
            manager_id: None,
            nodes: nodes.iter().map(|node| (*node).to_owned()).collect(),
            launcher: Launcher::Srun,
            fakes_on_path: true,
            security: None,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn launcher(mut self, launcher: Launcher) -> Self {
        self.launcher = launcher;
        self
    }

    pub fn security(mut self, security: Security) -> Self {
        self.security = Some(security);
        self
    }

    pub fn without_fakes(mut self) -> Self {
        self.fakes_on_path = false;
        self
    }

    /// `--slots-per-node N`.
    pub fn slots_per_node(mut self, slots: u32) -> Self {
        self.extra_args.push("--slots-per-node".to_owned());
        self.extra_args.push(slots.to_string());
        self
    }

    /// An environment variable of the manager's own (as a batch job would
    /// give it).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A running pool-manager process.
#[derive(Debug)]
pub struct ManagerProcess {
    pub manager_id: ManagerId,
    pub block_id: String,
    pub nodes: Vec<String>,
    /// Where the fake launchers record their argv.
    pub launcher_log: PathBuf,
    /// Where the fake `srun` records the Slurm variables it was given.
    pub launcher_env_log: PathBuf,
    pub daemon: Daemon,
}

impl ManagerProcess {
    /// The lines the fake launchers recorded, each split on tabs.
    pub fn launcher_calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.launcher_log)
            .unwrap_or_default()
            .lines()
            .map(|line| line.split('\t').map(str::to_owned).collect())
            .collect()
    }

    /// For each call of the fake `srun`, the `SLURM_*`, `SRUN_*` and
    /// `HYDRA_*` variables it was given.
    pub fn launcher_environments(&self) -> Vec<BTreeMap<String, String>> {
        std::fs::read_to_string(&self.launcher_env_log)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                line.split('\t')
                    .skip(1)
                    .filter_map(|entry| entry.split_once('='))
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
                    .collect()
            })
            .collect()
    }
}
