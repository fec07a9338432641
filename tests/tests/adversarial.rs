//! Attacks on a running interchange, with the real binaries: a second
//! connection that claims a live manager's id, keys used in the wrong role,
//! one client identity reaching for another's tasks, non-admins giving
//! admin commands, and a client identity added while the interchange runs
//! (admitted after SIGHUP).

use e2e::cli::{self, CliOutput};
use e2e::client::{assert_completed, dealer_with, receive_frame, stdout_of};
use e2e::{task, wait_for, Interchange, ManagerOptions, RawClient, Scenario, Security, WAIT};
use nix::sys::signal::Signal;
use protocol::{
    Command, FromClient, FromManager, Launcher, ManagerId, Registration, Reply, TaskId, TaskResult,
    TaskState, ToClient, ToManager, DENIED_PREFIX, PROTOCOL_VERSION,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use transport::{ClientName, ClientSecurity};

/// How long a connection that must get nothing is listened to.
const QUIET: Duration = Duration::from_millis(500);

fn keys_dir(interchange: &Interchange) -> PathBuf {
    interchange
        .security
        .keys_dir()
        .expect("a secure interchange")
        .to_path_buf()
}

fn name(text: &str) -> ClientName {
    text.parse().expect("a client identity name")
}

/// Client identity `identity`'s keys in the interchange's key directory.
fn keys_of(interchange: &Interchange, identity: &str) -> ClientSecurity {
    ClientSecurity::from_keys_dir_as(&keys_dir(interchange), &name(identity))
        .expect("the identity's keys")
}

/// `rhtex ARGS` as client identity `identity`, with a short timeout.
fn rhtex_as(
    scenario: &Scenario,
    interchange: &Interchange,
    identity: &str,
    log: &str,
    args: &[&str],
) -> CliOutput {
    let mut all = vec!["--client-key", identity, "--timeout", "5"];
    all.extend_from_slice(args);
    cli::run_connected(scenario, interchange, log, &all)
}

/// A key directory with the interchange's `server.key` and the pair
/// `pair` of `keys` copied as `as_secret`: a key used in another role.
fn wrong_role_dir(scenario: &Scenario, keys: &Path, pair: &str, as_secret: &str) -> PathBuf {
    let dir = scenario.file(&format!("{pair}-as-{as_secret}"));
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    for (from, to) in [("server.key", "server.key"), (pair, as_secret)] {
        std::fs::copy(keys.join(from), dir.join(to)).expect("copy a key file");
    }
    dir
}

fn assert_denied(answer: &(u64, ToClient), needle: &str) {
    match answer {
        (
            id,
            ToClient::Error {
                request_id: Some(answered),
                message,
            },
        ) if answered == id => {
            assert!(message.starts_with(DENIED_PREFIX), "{message}");
            assert!(message.contains(needle), "{message}");
        }
        other => panic!("expected a denied error, got {other:?}"),
    }
}

fn forged_result(task_id: TaskId) -> TaskResult {
    TaskResult {
        stdout_tail: b"FORGED OUTPUT\n".to_vec(),
        exit_code: Some(0),
        ..TaskResult::new(task_id, TaskState::Completed)
    }
}

#[test]
fn a_connection_claiming_a_live_managers_id_gets_nothing_and_the_manager_carries_on() {
    let scenario = Scenario::new("takeover");
    let (interchange, mut manager, mut client) =
        scenario.start_pool(ManagerOptions::new("victim", &["n1"]));
    let task_id = client.submit_one(task("sleep 1; echo genuine"));
    client.wait_running(task_id);

    // The worst case: the attacker holds the manager key itself. With the
    // victim's id as routing id its connection is refused by the ROUTER
    // (no ROUTER_HANDOVER): its register and forged result never arrive.
    let manager_keys = Security::Curve(keys_dir(&interchange))
        .manager_security()
        .expect("manager keys");
    let routing_id = manager.manager_id.to_string();
    let hijacker = dealer_with(
        &interchange.manager_connect_url,
        &manager_keys,
        Some(routing_id.as_bytes()),
    );
    let register = FromManager::Register(Registration {
        protocol_version: PROTOCOL_VERSION,
        manager_id: manager.manager_id,
        block_id: "stolen".to_owned(),
        hostname: "attacker".to_owned(),
        nodes: vec!["evil1".to_owned()],
        launcher: Launcher::Mpiexec,
        rhtex_version: "0".to_owned(),
        cpu_count: 1,
        slots_per_node: None,
        versions: Default::default(),
        attempt: 0,
        running_tasks: Vec::new(),
        held_results: Vec::new(),
    });
    let forged = FromManager::Results {
        results: vec![forged_result(task_id)],
    };
    for message in [&register, &forged] {
        hijacker
            .send(protocol::encode(message), 0)
            .expect("queue a frame");
    }
    // Under another routing id, the claim of a registered manager id is
    // refused with a reason.
    let claimant = dealer_with(&interchange.manager_connect_url, &manager_keys, None);
    claimant
        .send(protocol::encode(&register), 0)
        .expect("send register");
    let frame = receive_frame(&claimant, WAIT).expect("an answer to the claimant");
    match protocol::decode::<ToManager>(&frame).expect("decodes") {
        ToManager::Refused { reason, .. } => {
            assert!(reason.contains("already registered"), "{reason}")
        }
        other => panic!("expected refused, got {other:?}"),
    }

    let result = client.wait_result(task_id, WAIT);
    assert_completed(&result);
    assert_eq!(stdout_of(&result), "genuine\n");
    assert!(
        receive_frame(&hijacker, QUIET).is_none(),
        "the hijacker got a message"
    );
    // The victim still serves.
    let next = client.submit_one(task("echo still-here"));
    assert_eq!(stdout_of(&client.wait_result(next, WAIT)), "still-here\n");
    assert!(manager.daemon.try_exit().is_none(), "the victim exited");
    let managers: Vec<ManagerId> = client
        .status()
        .managers
        .iter()
        .map(|info| info.manager_id)
        .collect();
    assert_eq!(managers, vec![manager.manager_id]);
}

#[test]
fn a_client_key_cannot_serve_as_a_manager_key_nor_the_other_way_round() {
    let scenario = Scenario::new("roles");
    let interchange = scenario.start_secure_interchange(&[]);
    let keys = keys_dir(&interchange);

    // A pool-manager holding the default client pair as its manager pair
    // is refused at the handshake and exits 3.
    let client_as_manager =
        wrong_role_dir(&scenario, &keys, "client.key_secret", "manager.key_secret");
    let mut impostor = scenario.start_manager(
        &interchange,
        ManagerOptions::new("impostor", &["x1"]).security(Security::Curve(client_as_manager)),
    );
    let status = impostor.daemon.wait_exit(WAIT);
    assert_eq!(status.code(), Some(3), "{}", impostor.daemon.log());

    // rhtex holding the manager pair as its client pair is refused too.
    let manager_as_client =
        wrong_role_dir(&scenario, &keys, "manager.key_secret", "client.key_secret");
    let output = cli::run(
        &scenario,
        "manager-as-client",
        &cli::strings(&[
            "--interchange",
            &interchange.client_url,
            "--keys-dir",
            &manager_as_client.display().to_string(),
            "--timeout",
            "5",
            "status",
        ]),
    );
    assert_eq!(output.code(), 1, "{output:?}");
    assert!(output.stderr.contains("refused"), "{output:?}");

    let mut client = RawClient::connect(&interchange);
    assert!(client.status().managers.is_empty());
}

#[test]
fn client_identities_added_at_run_time_reach_only_their_own_tasks() {
    let scenario = Scenario::new("ownership");
    let mut interchange = scenario.start_secure_interchange(&[]);
    let keys = keys_dir(&interchange);
    let manager = scenario.start_manager(&interchange, ManagerOptions::new("m", &["n1"]));
    let mut admin = RawClient::connect(&interchange);
    admin.wait_managers(&[manager.manager_id]);

    // Added with the command line while the interchange runs: refused
    // until SIGHUP, admitted after.
    for identity in ["alice", "bob"] {
        let output = cli::run(
            &scenario,
            &format!("keygen-{identity}"),
            &cli::strings(&["keygen", "--client", identity, &keys.display().to_string()]),
        );
        assert_eq!(output.code(), 0, "{output:?}");
    }
    let before = rhtex_as(
        &scenario,
        &interchange,
        "alice",
        "alice-before",
        &["status"],
    );
    assert_eq!(before.code(), 1, "{before:?}");
    assert!(before.stderr.contains("refused"), "{before:?}");
    interchange.daemon.signal(Signal::SIGHUP);
    let mut attempt = 0;
    wait_for("alice admitted after SIGHUP", WAIT, || {
        attempt += 1;
        let log = format!("alice-after-{attempt}");
        (rhtex_as(&scenario, &interchange, "alice", &log, &["status"]).code() == 0).then_some(())
    });
    assert!(interchange.daemon.try_exit().is_none(), "SIGHUP stopped it");

    let mut alice = RawClient::connect_as(&interchange.client_url, &keys_of(&interchange, "alice"));
    let mut bob = RawClient::connect_as(&interchange.client_url, &keys_of(&interchange, "bob"));
    let running = alice.submit_one(task("sleep 60"));
    alice.wait_running(running);
    let queued = alice.submit_one(task("echo later"));

    // Bob may not watch, see or cancel alice's tasks.
    let watch = bob.ask(|request_id| FromClient::Watch {
        request_id,
        task_ids: vec![running],
    });
    assert_denied(&watch, "only its submitter or an admin may watch it");
    let status = bob.ask(|request_id| FromClient::Command {
        request_id,
        command: Command::TaskStatus {
            task_ids: vec![queued],
        },
    });
    assert_denied(&status, "client identity bob");
    let cancel = bob.ask(|request_id| FromClient::Command {
        request_id,
        command: Command::Cancel { task_id: running },
    });
    assert_denied(&cancel, "may cancel it");
    let output = rhtex_as(
        &scenario,
        &interchange,
        "bob",
        "bob-cancel",
        &["cancel", &running.to_string()],
    );
    assert_eq!(output.code(), 1, "{output:?}");
    assert!(output.stderr.contains(DENIED_PREFIX), "{output:?}");
    // Bob's status counts alice's tasks but does not name them.
    let report = bob.status();
    assert_eq!((report.n_running, report.n_queued), (1, 1));
    assert!(report
        .managers
        .iter()
        .all(|info| info.reserved_for.is_none()));
    assert!(!format!("{report:?}").contains(&queued.to_string()));
    assert_eq!(alice.task_status(queued).state, TaskState::Queued);

    // The default identity is an admin: it may cancel alice's task; the
    // result goes to alice, never to bob.
    match admin.command(Command::Cancel { task_id: running }) {
        Reply::Done { .. } => {}
        other => panic!("the admin's cancel failed: {other:?}"),
    }
    assert_eq!(alice.wait_result(running, WAIT).state, TaskState::Cancelled);
    assert_eq!(stdout_of(&alice.wait_result(queued, WAIT)), "later\n");
    assert!(!bob.has_result(running) && !bob.has_result(queued));
}

#[test]
fn only_admins_hold_release_drain_or_shut_down() {
    let scenario = Scenario::new("admins");
    let keys = scenario.keygen("keys");
    for identity in ["bob", "carol"] {
        transport::keygen_client(&keys, &name(identity)).expect("add a client identity");
    }
    let mut interchange = scenario.start_interchange(
        "interchange",
        &Security::Curve(keys.clone()),
        &["--admin", "carol"],
    );
    let manager = scenario.start_manager(&interchange, ManagerOptions::new("m", &["n1"]));
    let mut admin = RawClient::connect(&interchange);
    admin.wait_managers(&[manager.manager_id]);
    let manager_id = manager.manager_id.to_string();

    for command in ["hold", "release", "drain"] {
        let output = rhtex_as(
            &scenario,
            &interchange,
            "bob",
            &format!("bob-{command}"),
            &[command, &manager_id],
        );
        assert_eq!(output.code(), 1, "{output:?}");
        assert!(
            output.stderr.contains(&format!("{command} needs an admin")),
            "{output:?}"
        );
    }
    let output = rhtex_as(
        &scenario,
        &interchange,
        "bob",
        "bob-shutdown",
        &["shutdown"],
    );
    assert_eq!(output.code(), 1, "{output:?}");
    assert!(output.stderr.contains(DENIED_PREFIX), "{output:?}");
    let report = admin.status();
    assert!(!report.managers[0].held && !report.managers[0].draining);
    assert!(interchange.daemon.try_exit().is_none(), "bob shut it down");

    // An admin the config names may.
    let output = rhtex_as(
        &scenario,
        &interchange,
        "carol",
        "carol-hold",
        &["hold", &manager_id],
    );
    assert_eq!(output.code(), 0, "{output:?}");
    assert!(admin.status().managers[0].held);
    let output = rhtex_as(
        &scenario,
        &interchange,
        "carol",
        "carol-shutdown",
        &["shutdown"],
    );
    assert_eq!(output.code(), 0, "{output:?}");
    assert_eq!(interchange.daemon.wait_exit(WAIT).code(), Some(0));
}
