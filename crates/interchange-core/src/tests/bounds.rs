//! Bounds on every input: per-task bounds at submit, per-message bounds,
//! node names at registration, tails of results.

use super::*;
use protocol::limits::{
    MAX_COMMAND_BYTES, MAX_ENV_VARS, MAX_RESULTS_PER_MESSAGE, MAX_TASKS_PER_SUBMIT,
    MAX_TASK_IDS_PER_WATCH,
};
use protocol::MAX_TAIL_BYTES;

#[test]
fn a_task_past_a_per_task_bound_fails_at_once_naming_the_limit() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    let mut long_command = submission(1, nodes(1));
    long_command.command = "x".repeat(MAX_COMMAND_BYTES + 1);
    let mut many_vars = submission(2, nodes(1));
    many_vars.env = (0..=MAX_ENV_VARS)
        .map(|index| (format!("V{index}"), String::new()))
        .collect();
    let mut long_cwd = submission(3, nodes(1));
    long_cwd.cwd = Some("/".repeat(5000));
    let messages: Vec<String> = [&long_command, &many_vars, &long_cwd]
        .iter()
        .map(|task| {
            protocol::limits::check_submission(task)
                .expect_err("past a bound")
                .to_string()
        })
        .collect();
    sim.submit(
        "c",
        1,
        vec![long_command, many_vars, long_cwd, submission(4, nodes(1))],
    );
    sim.check(vec![
        submitted("c", 1, 1),
        run_tasks("m1", vec![dispatch(4, nodes(1))]),
        results(
            "c",
            vec![
                failed(1, ErrorKind::InvalidSpec, &messages[0]),
                failed(2, ErrorKind::InvalidSpec, &messages[1]),
                failed(3, ErrorKind::InvalidSpec, &messages[2]),
            ],
        ),
    ]);
    assert!(messages[0].contains("max_command_bytes"), "{}", messages[0]);
    assert!(messages[1].contains("4096"), "{}", messages[1]);
    assert!(
        messages[2].starts_with("cwd has 5000 bytes"),
        "{}",
        messages[2]
    );
}

#[test]
fn a_submit_with_too_many_tasks_is_refused_as_a_whole() {
    let mut sim = Sim::new().with_client("c");
    let tasks: Vec<TaskSubmission> = (0..=MAX_TASKS_PER_SUBMIT as u128)
        .map(|id| submission(id + 1, nodes(1)))
        .collect();
    sim.submit("c", 7, tasks);
    let outputs = sim.drain();
    match outputs.as_slice() {
        [Output::ToClient(
            _,
            ToClient::Error {
                request_id: Some(7),
                message,
            },
        )] => {
            assert!(message.contains("100001 tasks"), "{message}");
            assert!(
                message.contains("at most 100000 (max_tasks_per_submit)"),
                "{message}"
            );
        }
        other => panic!("expected one error, got {other:?}"),
    }
    let report = sim.status("c");
    assert_eq!(report.n_queued, 0);
    assert_eq!(report.n_bad_messages, 1);
}

#[test]
fn a_watch_with_too_many_ids_is_refused_as_a_whole() {
    let mut sim = Sim::new().with_client("c");
    let task_ids = (0..=MAX_TASK_IDS_PER_WATCH as u128).map(task_id).collect();
    sim.client(
        "c",
        FromClient::Watch {
            request_id: 3,
            task_ids,
        },
    );
    let outputs = sim.drain();
    match outputs.as_slice() {
        [Output::ToClient(
            _,
            ToClient::Error {
                request_id: Some(3),
                message,
            },
        )] => assert!(message.contains("(max_task_ids_per_watch)"), "{message}"),
        other => panic!("expected one error, got {other:?}"),
    }
}

fn refusal(reason: &str) -> Output {
    to_manager(
        "m1",
        ToManager::Refused {
            reason: reason.to_owned(),
            protocol_version: PROTOCOL_VERSION,
        },
    )
}

#[test]
fn registrations_with_bad_node_lists_are_refused_naming_the_problem() {
    let mut sim = Sim::with_config(CoreConfig {
        max_manager_nodes: 3,
        ..test_config()
    });
    let with_nodes = |names: &[&str]| Registration {
        nodes: names.iter().map(|name| (*name).to_owned()).collect(),
        ..registration(1, 1)
    };
    sim.manager("m1", FromManager::Register(with_nodes(&["d1", "d1", "d1"])));
    sim.check(vec![refusal(
        "bad node list: node name \"d1\" is listed more than once; node names must be distinct",
    )]);
    sim.manager("m1", FromManager::Register(with_nodes(&["g1 --evil-flag"])));
    sim.check(vec![refusal(
        "bad node list: node name \"g1 --evil-flag\" is not a host name: \
         only letters, digits, hyphens and dots are allowed",
    )]);
    sim.manager("m1", FromManager::Register(with_nodes(&["-x"])));
    sim.check(vec![refusal(
        "bad node list: node name \"-x\" is not a host name: a label starts or ends with a hyphen",
    )]);
    sim.manager(
        "m1",
        FromManager::Register(with_nodes(&["a", "b", "c", "d"])),
    );
    sim.check(vec![refusal(
        "bad node list: 4 nodes; a manager may have at most 3 (max_manager_nodes)",
    )]);
    // Within the rules it registers.
    sim.manager("m1", FromManager::Register(with_nodes(&["a", "b", "c"])));
    sim.check(vec![to_manager("m1", registered())]);
}

#[test]
fn a_longer_tail_is_cut_to_its_last_64_kib_before_it_is_kept_or_forwarded() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    sim.submit_and_start("c", 1, 1, nodes(1), "m1");
    let mut result = completed(1);
    result.stdout_tail = (0..MAX_TAIL_BYTES + 100)
        .map(|index| (index % 256) as u8)
        .collect();
    result.stderr_tail = vec![b'e'; 3 * MAX_TAIL_BYTES];
    let mut expected = result.clone();
    expected.stdout_tail = result.stdout_tail[100..].to_vec();
    expected.stderr_tail = vec![b'e'; MAX_TAIL_BYTES];
    sim.manager_results("m1", vec![result]);
    sim.check(vec![results("c", vec![forwarded(expected.clone(), 1)])]);
    // What is kept for a late watch is the cut one too.
    sim.watch("c", 2, &[1]);
    sim.check(vec![
        watching("c", 2, 1),
        results("c", vec![forwarded(expected, 1)]),
    ]);
}

#[test]
fn a_results_message_with_too_many_results_is_dropped_and_counted() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    sim.submit_and_start("c", 1, 1, nodes(1), "m1");
    let flood = (0..=MAX_RESULTS_PER_MESSAGE)
        .map(|_| completed(1))
        .collect();
    sim.manager_results("m1", flood);
    sim.check(vec![]);
    assert_eq!(sim.status("c").n_bad_messages, 1);
    // The manager is still registered and its real result goes through.
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![results("c", vec![forwarded(completed(1), 1)])]);
}

#[test]
fn the_data_of_unfinished_tasks_has_a_budget_past_which_a_submit_is_busy() {
    let task = |id: u128, n_bytes: usize| TaskSubmission {
        env: BTreeMap::from([("K".to_owned(), "v".repeat(n_bytes - 1))]),
        command: String::new(),
        ..submission(id, nodes(1))
    };
    let big = protocol::limits::task_data_bytes(&task(1, 600));
    let small = protocol::limits::task_data_bytes(&task(2, 60));
    let mut sim = Sim::with_config(CoreConfig {
        max_queued_task_bytes: big + small,
        ..test_config()
    })
    .with_client("c");
    sim.submit("c", 1, vec![task(1, 600)]);
    sim.check(vec![submitted("c", 1, 1)]);
    sim.submit("c", 2, vec![task(2, 60), task(3, 60)]);
    let outputs = sim.drain();
    let [Output::ToClient(_, ToClient::Error { message, .. })] = outputs.as_slice() else {
        panic!("expected one error, got {outputs:?}");
    };
    assert!(message.starts_with("busy: "), "{message}");
    assert!(
        message.contains(&format!(
            "{} bytes of commands, environments and paths",
            2 * small
        )),
        "{message}"
    );
    assert!(message.contains("--max-queued-task-mib"), "{message}");
    assert_eq!(sim.task_status("c", 2).state, TaskState::Unknown);
    // A finished task gives its bytes back.
    sim.cancel("c", 3, 1);
    assert_eq!(sim.drain().len(), 2, "reply and the cancelled result");
    sim.submit("c", 4, vec![task(2, 60), task(3, 60)]);
    sim.check(vec![submitted("c", 4, 2)]);
}
