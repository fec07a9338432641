use super::*;
use protocol::Launcher;

fn flags(args: &[&str]) -> Flags {
    let mut argv = vec!["interchange"];
    argv.extend_from_slice(args);
    match Flags::try_parse_from(argv) {
        Ok(flags) => flags,
        Err(error) => panic!("flags {args:?} do not parse: {error}"),
    }
}

fn home() -> Environment {
    Environment {
        keys_dir: None,
        home: Some(PathBuf::from("/home/user")),
        program_dir: Some(PathBuf::from("/opt/rhtex/bin")),
    }
}

/// The configuration from `args` alone, in [`home`].
fn resolve_flags(args: &[&str]) -> Result<Config, ConfigError> {
    Config::resolve(flags(args), FileConfig::default(), &home())
}

fn file(text: &str) -> Result<FileConfig, ConfigError> {
    parse_file(Path::new("test.toml"), text)
}

#[test]
fn defaults() {
    let config = resolve_flags(&[]).expect("defaults are valid");
    assert_eq!(
        config,
        Config {
            run_dir: PathBuf::from("rhtex-run"),
            client_listen: "tcp://127.0.0.1:0".to_owned(),
            manager_listen: "tcp://0.0.0.0:0".to_owned(),
            security: Security::Curve(PathBuf::from("/home/user/.rhtex/keys")),
            core: CoreConfig {
                heartbeat_period: Duration::from_secs(30),
                heartbeat_threshold: Duration::from_secs(120),
                max_block_nodes: None,
                max_finished_results: 100_000,
                max_finished_bytes: 512 * 1024 * 1024,
                max_task_input_bytes: 16 * 1024 * 1024,
                max_task_output_bytes: 16 * 1024 * 1024,
                max_queued_input_bytes: 1024 * 1024 * 1024,
                max_queued_task_bytes: 1024 * 1024 * 1024,
                max_manager_nodes: 16_384,
                shutdown_grace: Duration::from_secs(10),
                wall_clock_at_zero: 0.0,
                placement: Placement::BestFit,
                default_retries: 0,
                admins: BTreeSet::new(),
                record_events: true,
            },
            max_message_bytes: 64 * 1024 * 1024,
            log_level: None,
            provider: None,
            metrics_listen: None,
            events: Some(EventsConfig {
                path: PathBuf::from("rhtex-run/events.jsonl"),
                max_bytes: 100 * 1024 * 1024,
            }),
            exit_with_parent: false,
            journal: true,
            journal_compact_bytes: 64 * 1024 * 1024,
            fresh: false,
        }
    );
}

#[test]
fn the_event_log_from_the_file_or_flags() {
    let config = resolve_flags(&["--no-events"]).expect("valid");
    assert_eq!(config.events, None);
    let config = Config::resolve(
        flags(&[]),
        file("events = false\n").expect("valid"),
        &home(),
    )
    .expect("valid");
    assert_eq!(config.events, None);
    let config = Config::resolve(
        flags(&["--events-file", "/log/e.jsonl"]),
        file("events = false\nevents_max_mib = 2\n").expect("valid"),
        &home(),
    )
    .expect("valid");
    assert_eq!(
        config.events,
        Some(EventsConfig {
            path: PathBuf::from("/log/e.jsonl"),
            max_bytes: 2 * 1024 * 1024,
        })
    );
    let error = resolve_flags(&["--events-max-mib", "0"]).expect_err("0 MiB is refused");
    assert_eq!(
        error.to_string(),
        "events_max_mib must be between 1 and 1048576, got 0"
    );
}

#[test]
fn the_journal_is_on_unless_turned_off_and_fresh_comes_from_either() {
    let resolve = |args: &[&str], text: &str| {
        Config::resolve(flags(args), file(text).expect("file parses"), &home()).expect("valid")
    };
    let config = resolve(&[], "");
    assert_eq!((config.journal, config.fresh), (true, false));
    let config = resolve(&["--no-journal", "--fresh"], "");
    assert_eq!((config.journal, config.fresh), (false, true));
    let config = resolve(&[], "journal = false\nfresh = true\n");
    assert_eq!((config.journal, config.fresh), (false, true));
}

#[test]
fn the_journal_compacts_past_64_mib_unless_the_file_says_otherwise() {
    let resolve = |text: &str| Config::resolve(flags(&[]), file(text).expect("parses"), &home());
    let config = resolve("").expect("valid");
    assert_eq!(config.journal_compact_bytes, 64 * 1024 * 1024);
    let config = resolve("journal_compact_mib = 1\n").expect("valid");
    assert_eq!(config.journal_compact_bytes, 1024 * 1024);
    let error = resolve("journal_compact_mib = 0\n").expect_err("0 MiB is refused");
    assert_eq!(
        error.to_string(),
        "journal_compact_mib must be between 1 and 1048576, got 0"
    );
}

#[test]
fn flags_override_the_file_and_the_file_overrides_the_environment() {
    let file = file(
        "run_dir = \"from-file\"\nheartbeat_period = 2.5\nkeys_dir = \"/file/keys\"\n\
             client_listen = \"ipc:///tmp/c.sock\"\nmax_block_nodes = 8\n",
    )
    .expect("valid file");
    let environment = Environment {
        keys_dir: Some(PathBuf::from("/env/keys")),
        ..home()
    };
    let config = Config::resolve(
        flags(&["--run-dir", "from-flag", "--max-block-nodes", "4"]),
        file,
        &environment,
    )
    .expect("valid");
    assert_eq!(config.run_dir, PathBuf::from("from-flag"));
    assert_eq!(config.core.max_block_nodes, Some(4));
    assert_eq!(config.core.heartbeat_period, Duration::from_millis(2500));
    assert_eq!(config.client_listen, "ipc:///tmp/c.sock");
    assert_eq!(
        config.security,
        Security::Curve(PathBuf::from("/file/keys"))
    );
    let config = Config::resolve(flags(&["--insecure"]), FileConfig::default(), &environment)
        .expect("valid");
    assert_eq!(config.security, Security::Insecure);
    let config = Config::resolve(flags(&[]), FileConfig::default(), &environment).expect("valid");
    assert_eq!(config.security, Security::Curve(PathBuf::from("/env/keys")));
}

#[test]
fn payload_limits_come_from_flags_or_the_file() {
    let file = file(
        "max_task_input_bytes = 1000\nmax_task_output_bytes = 2000\nmax_queued_input_mib = 3\n",
    )
    .expect("valid file");
    let config =
        Config::resolve(flags(&["--max-task-output-bytes", "5"]), file, &home()).expect("valid");
    assert_eq!(config.core.max_task_input_bytes, 1000);
    assert_eq!(config.core.max_task_output_bytes, 5);
    assert_eq!(config.core.max_queued_input_bytes, 3 * 1024 * 1024);
    let error = resolve_flags(&[
        "--max-task-input-bytes",
        "2097153",
        "--max-queued-input-mib",
        "2",
    ])
    .expect_err("a task input limit above the budget is refused");
    assert_eq!(
        error.to_string(),
        "max_task_input_bytes (2097153) is larger than max_queued_input_mib (2097152 bytes): \
             no task with such an input could ever be accepted"
    );
}

#[test]
fn message_and_node_limits_come_from_flags_or_the_file() {
    let file = file("max_message_mib = 100\nmax_manager_nodes = 8\n").expect("valid file");
    let config = Config::resolve(flags(&[]), file, &home()).expect("valid");
    assert_eq!(config.max_message_bytes, 100 * 1024 * 1024);
    assert_eq!(config.core.max_manager_nodes, 8);
    let config =
        resolve_flags(&["--max-message-mib", "30", "--max-manager-nodes", "2"]).expect("valid");
    assert_eq!(config.max_message_bytes, 30 * 1024 * 1024);
    assert_eq!(config.core.max_manager_nodes, 2);
    // The message limit must hold the largest task input.
    let error = resolve_flags(&[
        "--max-message-mib",
        "64",
        "--max-task-input-bytes",
        "67108864",
    ])
    .expect_err("a message limit below the input limit is refused");
    assert_eq!(
        error.to_string(),
        "max_message_mib = 64 (67108864 bytes) is too small: messages must hold the largest \
             task input or output and the rest of the task (max_task_input_bytes = 67108864, \
             max_task_output_bytes = 16777216), so give at least 72 MiB"
    );
    let error =
        resolve_flags(&["--max-message-mib", "8"]).expect_err("too small for a submit chunk");
    assert!(
        error.to_string().contains("give at least 24 MiB"),
        "{error}"
    );
    let error = resolve_flags(&["--max-manager-nodes", "0"]).expect_err("zero nodes");
    assert_eq!(
        error.to_string(),
        "max_manager_nodes must be at least 1, got 0"
    );
}

#[test]
fn file_errors_name_the_line_and_column() {
    let error =
        file("heartbeat_period = 3\nplacement = \"best-fit\"\nmax_block_nodes = \"many\"\n")
            .expect_err("a string for a number");
    assert!(
        error
            .to_string()
            .starts_with("config file test.toml, line 3, column 19: "),
        "{error}"
    );
    let error = file("a = [\n").expect_err("syntax");
    assert!(error.to_string().contains(", line "), "{error}");
    assert_eq!(super::line_and_column("ab\ncd\u{e9}f", 7), (2, 4));
    assert_eq!(super::line_and_column("ab", 0), (1, 1));
}

#[test]
fn unknown_file_keys_are_named() {
    let error = file("heartbeat_period = 3\nheartbeat_perod = 4\n")
        .expect_err("unknown key must be refused");
    assert!(error.to_string().contains("heartbeat_perod"), "{error}");
}

#[test]
fn bad_values_are_refused_with_clear_messages() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--heartbeat-period", "0"],
            "heartbeat_period must be a number of seconds above 0",
        ),
        (
            &["--heartbeat-period", "200"],
            "must be larger than heartbeat_period",
        ),
        (
            &["--client-listen", "http://x"],
            "client_listen must be a URL starting with tcp:// or ipc://",
        ),
        (
            &["--max-block-nodes", "0"],
            "max_block_nodes must be at least 1",
        ),
        (&["--log-level", "loud"], "unknown log level \"loud\""),
    ];
    for (args, fragment) in cases {
        match resolve_flags(args) {
            Ok(config) => panic!("{args:?} accepted: {config:?}"),
            Err(error) => assert!(error.to_string().contains(fragment), "{args:?}: {error}"),
        }
    }
    let no_home = Environment::default();
    assert!(matches!(
        Config::resolve(flags(&[]), FileConfig::default(), &no_home),
        Err(ConfigError::NoKeysDir)
    ));
}

#[test]
fn metrics_listen_from_the_file_or_a_flag() {
    let from_file = file("metrics_listen = \"9464\"\n").expect("valid file");
    let config = Config::resolve(flags(&[]), from_file, &home()).expect("valid");
    assert_eq!(
        config.metrics_listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
    );
    let from_file = file("metrics_listen = \"9464\"\n").expect("valid file");
    let config = Config::resolve(
        flags(&["--metrics-listen", "0.0.0.0:9100"]),
        from_file,
        &home(),
    )
    .expect("valid");
    assert_eq!(
        config.metrics_listen,
        Some(SocketAddr::from(([0, 0, 0, 0], 9100)))
    );
    match resolve_flags(&["--metrics-listen", "http://host:1"]) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(error) => assert!(
            error
                .to_string()
                .starts_with("metrics_listen: \"http://host:1\" is not PORT"),
            "{error}"
        ),
    }
}

#[test]
fn the_example_config_file_is_valid() {
    let text = include_str!("../../../../deploy/interchange.toml.example");
    let example = parse_file(Path::new("interchange.toml.example"), text).expect("parses");
    let config = Config::resolve(flags(&[]), example, &home()).expect("is valid");
    assert_eq!(
        config.metrics_listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
    );
}

#[test]
fn keys_dir_and_insecure_conflict_on_the_command_line() {
    assert!(Flags::try_parse_from(["interchange", "--insecure", "--keys-dir", "/k"]).is_err());
}

fn with_provider(manager_listen: Option<&str>, section: &str) -> Result<Config, ConfigError> {
    let listen = manager_listen
        .map(|url| format!("manager_listen = \"{url}\"\n"))
        .unwrap_or_default();
    let file = file(&format!("{listen}[provider]\n{section}"))?;
    Config::resolve(flags(&[]), file, &home())
}

#[test]
fn a_provider_section_with_defaults() {
    let config = with_provider(None, "kind = \"local\"\n").expect("valid");
    assert_eq!(
        config.provider,
        Some(ProviderConfig {
            kind: ProviderKind::Local,
            partition: None,
            account: None,
            walltime: None,
            nodes_per_block: 1,
            min_blocks: 0,
            max_blocks: 1,
            max_idle: Duration::from_secs(120),
            scheduler_options: Vec::new(),
            worker_init: String::new(),
            launcher: Launcher::Mpiexec,
            manager_address: None,
            poll_period: Duration::from_secs(1),
            pool_manager: PathBuf::from("/opt/rhtex/bin/pool-manager"),
        })
    );
}

#[test]
fn a_full_slurm_and_a_pbs_provider_section() {
    let config = with_provider(
        None,
        "kind = \"slurm\"\npartition = \"debug\"\naccount = \"proj\"\nwalltime = \"100:30:00\"\n\
             nodes_per_block = 4\nmin_blocks = 1\nmax_blocks = 3\nmax_idle = 30\n\
             scheduler_options = \"\"\"\n#SBATCH --mem=0\n\n  #SBATCH --constraint=cpu\n\"\"\"\n\
             worker_init = \"module load mpich\"\nmanager_address = \"gateway.example.org\"\n\
             poll_period = 5\npool_manager = \"/opt/rhtex/pool-manager\"\n",
    )
    .expect("valid");
    let provider = config.provider.expect("a provider");
    assert_eq!(provider.kind, ProviderKind::Slurm);
    assert_eq!(provider.partition.as_deref(), Some("debug"));
    assert_eq!(provider.walltime.as_deref(), Some("100:30:00"));
    assert_eq!(provider.launcher, Launcher::Srun);
    assert_eq!(
        provider.scheduler_options,
        vec![
            "#SBATCH --mem=0".to_owned(),
            "#SBATCH --constraint=cpu".to_owned()
        ]
    );
    assert_eq!(
        provider.manager_address.as_deref(),
        Some("gateway.example.org")
    );
    assert_eq!(provider.poll_period, Duration::from_secs(5));
    assert_eq!(
        provider.pool_manager,
        PathBuf::from("/opt/rhtex/pool-manager")
    );

    let config = with_provider(
        Some("tcp://10.0.0.1:5000"),
        "kind = \"pbs\"\nqueue = \"workq\"\nlauncher = \"aprun\"\n",
    )
    .expect("valid");
    let provider = config.provider.expect("a provider");
    assert_eq!(provider.partition.as_deref(), Some("workq"));
    assert_eq!(provider.launcher, Launcher::Aprun);
    assert_eq!(provider.manager_address, None);
}

#[test]
fn bad_provider_settings_name_the_key() {
    let slurm = "kind = \"slurm\"\nmanager_address = \"gw\"\n";
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "provider.kind: missing"),
        (
            "kind = \"sge\"\n".to_owned(),
            "provider.kind: unknown kind \"sge\"",
        ),
        (
            format!("{slurm}walltime = \"1:60:00\"\n"),
            "provider.walltime",
        ),
        (format!("{slurm}walltime = \"90\"\n"), "provider.walltime"),
        (
            format!("{slurm}walltime = \"0:00:00\"\n"),
            "provider.walltime",
        ),
        (
            format!("{slurm}nodes_per_block = 0\n"),
            "provider.nodes_per_block",
        ),
        (format!("{slurm}max_blocks = 0\n"), "provider.max_blocks"),
        (
            format!("{slurm}min_blocks = 3\nmax_blocks = 2\n"),
            "provider.min_blocks",
        ),
        (format!("{slurm}max_idle = -1\n"), "provider.max_idle"),
        (format!("{slurm}poll_period = 0\n"), "provider.poll_period"),
        (
            format!("{slurm}partition = \"a b\"\n"),
            "provider.partition",
        ),
        (format!("{slurm}account = \"\"\n"), "provider.account"),
        (
            format!("{slurm}scheduler_options = \"--mem=0\"\n"),
            "provider.scheduler_options",
        ),
        (
            format!("{slurm}launcher = \"mpirun\"\n"),
            "provider.launcher",
        ),
        (
            "kind = \"slurm\"\nmanager_address = \"tcp://gw:5\"\n".to_owned(),
            "provider.manager_address",
        ),
        (
            "kind = \"slurm\"\n".to_owned(),
            "provider.manager_address: missing",
        ),
        (format!("{slurm}partiton = \"x\"\n"), "partiton"),
        (
            format!("{slurm}partition = \"x\"\nqueue = \"y\"\n"),
            "partition",
        ),
    ];
    for (section, fragment) in cases {
        match with_provider(None, &section) {
            Ok(config) => panic!("{section:?} accepted: {:?}", config.provider),
            Err(error) => assert!(error.to_string().contains(fragment), "{section:?}: {error}"),
        }
    }
}

#[test]
fn admins_and_the_queued_task_budget_come_from_file_or_flags() {
    let file =
        file("admins = [\"alice\", \"bob\"]\nmax_queued_task_mib = 32\n").expect("valid file");
    let config = Config::resolve(flags(&[]), file, &home()).expect("valid");
    assert_eq!(
        config
            .core
            .admins
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert_eq!(config.core.max_queued_task_bytes, 32 * 1024 * 1024);
    let config =
        resolve_flags(&["--admin", "carol", "--max-queued-task-mib", "16"]).expect("valid");
    assert_eq!(config.core.admins.iter().collect::<Vec<_>>(), ["carol"]);
    for (arguments, needle) in [
        (
            &["--admin", "no spaces"][..],
            "not a valid client identity name",
        ),
        (&["--max-queued-task-mib", "15"][..], "must be from 16"),
    ] {
        let error = resolve_flags(arguments).expect_err("refused");
        assert!(error.to_string().contains(needle), "{error}");
    }
}
