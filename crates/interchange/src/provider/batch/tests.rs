use super::*;

/// A job that ended, as the batch system described it.
fn ended(job_id: &str, detail: &str) -> (String, JobState) {
    let detail = Some(detail.to_owned());
    (job_id.to_owned(), JobState::Ended { detail })
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|id| (*id).to_owned()).collect()
}

#[test]
fn job_ids_from_sbatch_and_qsub() {
    assert_eq!(parse_job_id("1234\n"), Some("1234".to_owned()));
    assert_eq!(parse_job_id("1234;cluster\n"), Some("1234".to_owned()));
    assert_eq!(
        parse_job_id("\n 77.pbs-server \n"),
        Some("77.pbs-server".to_owned())
    );
    assert_eq!(parse_job_id(""), None);
    assert_eq!(parse_job_id("Submitted batch job 5\n"), None);
}

#[test]
fn squeue_states() {
    let stdout =
        "11 PENDING\n12 RUNNING\n13 COMPLETED\n14 CANCELLED\n99 RUNNING\n15 SOMETHING_NEW\n";
    assert_eq!(
        parse_squeue(stdout, &ids(&["11", "12", "13", "14", "15", "16"])),
        vec![
            ("11".to_owned(), JobState::Pending),
            ("12".to_owned(), JobState::Running),
            ended("13", "COMPLETED"),
            ended("14", "CANCELLED"),
            ("15".to_owned(), JobState::Running),
        ]
    );
}

#[test]
fn qstat_states_match_shortened_ids() {
    let stdout = "Job id            Name             User              Time Use S Queue\n\
                      ----------------  ---------------- ----------------  -------- - -----\n\
                      101.pbs-server-l* rhtex-a-1        alice             00:00:01 R workq\n\
                      102.pbs-server    rhtex-a-2        alice                    0 Q workq\n\
                      103.pbs-server    rhtex-a-3        alice             00:01:00 F workq\n";
    assert_eq!(
        parse_qstat(
            stdout,
            &ids(&[
                "101.pbs-server-long-name",
                "102.pbs-server",
                "103.pbs-server"
            ])
        ),
        vec![
            ("101.pbs-server-long-name".to_owned(), JobState::Running),
            ("102.pbs-server".to_owned(), JobState::Pending),
            ended("103.pbs-server", "state F"),
        ]
    );
}

#[test]
fn commands_are_bounded_and_their_stderr_is_quoted() {
    let error = run_command(
        "/bin/sh",
        &ids(&["-c", "echo 'no such partition' >&2; exit 3"]),
        Duration::from_secs(20),
    )
    .expect_err("exit 3 is a failure");
    let message = error.to_string();
    assert!(message.contains("exit status 3"), "{message}");
    assert!(message.contains("no such partition"), "{message}");

    let error = run_command(
        "/bin/sh",
        &ids(&["-c", "sleep 30"]),
        Duration::from_millis(200),
    )
    .expect_err("must time out");
    assert!(matches!(error, CommandError::TimedOut { .. }), "{error}");

    let error =
        run_command("/nonexistent/sbatch", &[], Duration::from_secs(5)).expect_err("no program");
    assert!(error.to_string().contains("/nonexistent/sbatch"), "{error}");
}

#[test]
fn local_arguments_name_the_block_and_security() {
    let values = ScriptValues {
        block_id: "rhtex-a-1".to_owned(),
        nodes: 2,
        interchange: "tcp://127.0.0.1:5".to_owned(),
        keys_dir: None,
        run_dir: "/r".to_owned(),
        launcher: "mpiexec".to_owned(),
        heartbeat_period: "1".to_owned(),
        heartbeat_threshold: "5".to_owned(),
        ..ScriptValues::default()
    };
    assert_eq!(
        local_arguments(&values),
        ids(&[
            "--interchange",
            "tcp://127.0.0.1:5",
            "--block-id",
            "rhtex-a-1",
            "--launcher",
            "mpiexec",
            "--run-dir",
            "/r",
            "--heartbeat-period",
            "1",
            "--heartbeat-threshold",
            "5",
            "--insecure",
            "--nodes",
            &local_node_names(
                2,
                nix::unistd::gethostname()
                    .ok()
                    .and_then(|name| name.into_string().ok())
                    .as_deref()
            )
            .join(","),
        ])
    );
}

#[test]
fn local_blocks_name_their_nodes_distinctly() {
    assert_eq!(local_node_names(1, Some("vm")), ["localhost"]);
    assert_eq!(local_node_names(2, Some("vm")), ["localhost", "vm"]);
    assert_eq!(
        local_node_names(4, Some("vm")),
        ["localhost", "vm", "local-3", "local-4"]
    );
    assert_eq!(
        local_node_names(3, Some("localhost")),
        ["localhost", "local-2", "local-3"]
    );
    assert_eq!(local_node_names(2, None), ["localhost", "local-2"]);
}
