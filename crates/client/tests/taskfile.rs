//! Task file parsing: both formats, format sniffing, path resolution and
//! every error path with its message.

use client::taskfile::{self, Format};
use client::TaskFileError;
use protocol::SpecValue;
use std::path::Path;

const BASE: &str = "/data/ensemble";

fn parse(text: &str, format: Format) -> Result<Vec<taskfile::FileTask>, TaskFileError> {
    taskfile::parse(text, Path::new("tasks.in"), Path::new(BASE), format)
}

/// Parses `text`, expects an error, and checks that its message contains
/// every fragment of `expected`.
fn check_error(text: &str, format: Format, expected: &[&str]) {
    let error = match parse(text, format) {
        Ok(tasks) => panic!("expected an error, got {tasks:?}"),
        Err(error) => error.to_string(),
    };
    for fragment in expected {
        assert!(
            error.contains(fragment),
            "error {error:?} does not contain {fragment:?}"
        );
    }
}

#[test]
fn json_lines_with_every_key() {
    let text = r#"
# a comment
{"command": "echo one"}

{"command": "mpi", "resources": {"num_nodes": 2, "ranks_per_node": 3, "launcher_options": "-v", "priority": -1}, "env": {"A": "1"}, "cwd": "work", "stdout": "/abs/out", "stderr": "err"}
"#;
    let tasks = parse(text, Format::JsonLines).expect("valid");
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].index, 0);
    assert_eq!(tasks[0].line, 3);
    assert_eq!(tasks[0].submission.command, "echo one");
    assert!(tasks[0].submission.resources.is_empty());
    let mpi = &tasks[1];
    assert_eq!(mpi.line, 5);
    assert_eq!(
        mpi.submission.resources.0.get("num_nodes"),
        Some(&SpecValue::Int(2))
    );
    assert_eq!(
        mpi.submission.resources.0.get("launcher_options"),
        Some(&SpecValue::Text("-v".into()))
    );
    assert_eq!(mpi.submission.env.get("A").map(String::as_str), Some("1"));
    assert_eq!(mpi.submission.cwd.as_deref(), Some("/data/ensemble/work"));
    assert_eq!(mpi.submission.stdout.as_deref(), Some("/abs/out"));
    assert_eq!(mpi.submission.stderr.as_deref(), Some("/data/ensemble/err"));
    assert_ne!(tasks[0].submission.task_id, tasks[1].submission.task_id);
}

#[test]
fn toml_tables_with_lines() {
    let text = r#"# ensemble
[[task]]
command = "echo one"

[[task]]
command = "mpi"
resources = { num_nodes = 1, num_ranks = 2, priority = 3 }
env = { GREETING = "hi" }
cwd = "."
"#;
    let tasks = parse(text, Format::Toml).expect("valid");
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].line, 2);
    assert_eq!(tasks[1].line, 5);
    assert_eq!(
        tasks[1].submission.resources.0.get("num_ranks"),
        Some(&SpecValue::Int(2))
    );
    assert_eq!(tasks[1].submission.cwd.as_deref(), Some("/data/ensemble/."));
}

#[test]
fn examples_parse_to_the_same_tasks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let toml = taskfile::read(&root.join("ensemble.toml")).expect("ensemble.toml");
    let json = taskfile::read(&root.join("ensemble.jsonl")).expect("ensemble.jsonl");
    assert_eq!(toml.len(), json.len());
    for (a, b) in toml.iter().zip(&json) {
        assert_eq!(a.submission.command, b.submission.command);
        assert_eq!(a.submission.resources, b.submission.resources);
        assert_eq!(a.submission.env, b.submission.env);
        assert_eq!(a.submission.cwd, b.submission.cwd);
        assert_eq!(a.submission.stdout, b.submission.stdout);
    }
    let mpi: Vec<_> = toml
        .iter()
        .filter(|task| task.submission.command.contains("PARSL_MPI_PREFIX"))
        .collect();
    assert_eq!(mpi.len(), 2);
}

#[test]
fn format_follows_extension_then_content() {
    for (name, text, expected) in [
        ("a.jsonl", "[[task]]", Format::JsonLines),
        ("a.json", "", Format::JsonLines),
        ("a.toml", "{\"command\": \"x\"}", Format::Toml),
        ("tasks", "# hi\n\n {\"command\": \"x\"}", Format::JsonLines),
        ("tasks", "# hi\n[[task]]\ncommand = \"x\"", Format::Toml),
    ] {
        assert_eq!(
            taskfile::format_of(Path::new(name), text),
            expected,
            "{name}: {text:?}"
        );
    }
}

#[test]
fn json_errors_name_file_line_and_problem() {
    check_error(
        "{\"command\": \"a\"}\n{\"command\": \"b\", \"colour\": 1}\n",
        Format::JsonLines,
        &["tasks.in:2:", "unknown field `colour`", "command"],
    );
    check_error(
        "{\"resources\": {}}\n",
        Format::JsonLines,
        &["tasks.in:1:", "missing field `command`"],
    );
    check_error(
        "{\"command\": \"a\"\n",
        Format::JsonLines,
        &["tasks.in:1:", "not valid JSON"],
    );
    check_error(
        "\n\n{\"command\": \"a\", \"env\": {\"A\": 3}}\n",
        Format::JsonLines,
        &["tasks.in:3:", "invalid type: integer `3`", "string"],
    );
    check_error(
        "[1, 2]\n",
        Format::JsonLines,
        &["tasks.in:1:", "invalid type"],
    );
}

#[test]
fn spec_errors_name_line_task_and_rule() {
    check_error(
        "{\"command\": \"a\"}\n{\"command\": \"b\", \"resources\": {\"nodes\": 2}}\n",
        Format::JsonLines,
        &[
            "tasks.in:2:",
            "task 1",
            "unknown resource specification key(s): nodes",
        ],
    );
    check_error(
        "{\"command\": \"a\", \"resources\": {\"num_nodes\": 0}}\n",
        Format::JsonLines,
        &[
            "tasks.in:1:",
            "task 0",
            "num_nodes must be an integer from 1",
        ],
    );
    check_error(
        "{\"command\": \"a\", \"resources\": {\"num_nodes\": 2, \"num_ranks\": 1}}\n",
        Format::JsonLines,
        &["task 0", "num_ranks = 1 is fewer than num_nodes = 2"],
    );
    check_error(
        "[[task]]\ncommand = \"a\"\n\n[[task]]\ncommand = \"b\"\nresources = { priority = \"high\" }\n",
        Format::Toml,
        &["tasks.in:4:", "task 1", "priority must be an integer"],
    );
}

#[test]
fn other_task_errors() {
    check_error(
        "{\"command\": \"   \"}\n",
        Format::JsonLines,
        &["tasks.in:1:", "task 0: command is empty"],
    );
    check_error(
        "{\"command\": \"a\", \"env\": {\"1BAD\": \"x\"}}\n",
        Format::JsonLines,
        &[
            "tasks.in:1:",
            "env key \"1BAD\" is not a valid variable name",
        ],
    );
    check_error(
        "# only a comment\n\n",
        Format::JsonLines,
        &["tasks.in: no tasks"],
    );
    check_error("", Format::Toml, &["tasks.in: no tasks", "[[task]]"]);
}

#[test]
fn toml_errors_name_line_and_problem() {
    check_error(
        "[[task]]\ncommand = \"a\"\ncolour = \"red\"\n",
        Format::Toml,
        &["tasks.in:", "unknown field `colour`"],
    );
    check_error(
        "[[task]]\ncwd = \"x\"\n",
        Format::Toml,
        &["tasks.in:1:", "missing field `command`"],
    );
    check_error(
        "[[task]]\ncommand = \"a\"\n\n[[task]\n",
        Format::Toml,
        &["tasks.in:4:"],
    );
    check_error(
        "[[tasks]]\ncommand = \"a\"\n",
        Format::Toml,
        &["tasks.in:1:", "unknown field `tasks`", "task"],
    );
}

#[test]
fn unreadable_file_names_path() {
    let error = taskfile::read(Path::new("/nonexistent/tasks.toml")).expect_err("missing");
    assert!(matches!(error, TaskFileError::Read { .. }));
    assert!(
        error.to_string().contains("/nonexistent/tasks.toml"),
        "{error}"
    );
}

#[test]
fn relative_file_resolves_against_its_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.jsonl");
    std::fs::write(&path, "{\"command\": \"a\", \"stdout\": \"out/a.txt\"}\n").expect("write");
    let tasks = taskfile::read(&path).expect("valid");
    let expected = dir.path().join("out/a.txt");
    assert_eq!(
        tasks[0].submission.stdout.as_deref(),
        Some(expected.to_string_lossy().as_ref())
    );
}

#[test]
fn walltime_retries_exclusive_in_json_lines() {
    let text = concat!(
        "{\"command\": \"a\", \"resources\": {\"walltime\": 60, \"retries\": 2, \"exclusive\": false, \"num_nodes\": 2, \"ranks_per_node\": 4}}\n",
        "{\"command\": \"b\", \"resources\": {\"walltime\": 0.5, \"exclusive\": true}}\n",
        "{\"command\": \"c\"}\n",
    );
    let tasks = parse(text, Format::JsonLines).expect("valid");
    let packed = &tasks[0].submission.resources;
    assert_eq!(packed.0.get("walltime"), Some(&SpecValue::Int(60)));
    assert_eq!(packed.0.get("retries"), Some(&SpecValue::Int(2)));
    assert_eq!(packed.0.get("exclusive"), Some(&SpecValue::Bool(false)));
    let validated = protocol::validate(packed).expect("valid");
    assert_eq!(
        (validated.walltime, validated.retries, validated.exclusive),
        (Some(60.0), Some(2), false)
    );
    let short = protocol::validate(&tasks[1].submission.resources).expect("valid");
    assert_eq!((short.walltime, short.exclusive), (Some(0.5), true));
    let plain = protocol::validate(&tasks[2].submission.resources).expect("valid");
    assert_eq!(
        (plain.walltime, plain.retries, plain.exclusive),
        (None, None, true)
    );
}

#[test]
fn walltime_retries_exclusive_in_toml() {
    let text = r#"
[[task]]
command = "a"
resources = { num_nodes = 2, ranks_per_node = 4, walltime = 90.5, retries = 0, exclusive = false }

[[task]]
command = "b"

[task.resources]
walltime = 3600
exclusive = true
"#;
    let tasks = parse(text, Format::Toml).expect("valid");
    assert_eq!(tasks.len(), 2);
    let first = protocol::validate(&tasks[0].submission.resources).expect("valid");
    assert_eq!(
        (first.walltime, first.retries, first.exclusive),
        (Some(90.5), Some(0), false)
    );
    let second = protocol::validate(&tasks[1].submission.resources).expect("valid");
    assert_eq!(
        (second.walltime, second.retries, second.exclusive),
        (Some(3600.0), None, true)
    );
}

#[test]
fn bad_walltime_retries_exclusive_name_line_task_and_key() {
    check_error(
        "{\"command\": \"a\"}\n{\"command\": \"b\", \"resources\": {\"walltime\": 0}}\n",
        Format::JsonLines,
        &[
            "tasks.in:2:",
            "task 1",
            "walltime must be a number of seconds, more than 0 and at most 1000000000, got 0",
        ],
    );
    check_error(
        "{\"command\": \"a\", \"resources\": {\"walltime\": \"1h\"}}\n",
        Format::JsonLines,
        &["tasks.in:1:", "task 0", "walltime must be", "got \"1h\""],
    );
    check_error(
        "{\"command\": \"a\", \"resources\": {\"retries\": 1.5}}\n",
        Format::JsonLines,
        &[
            "tasks.in:1:",
            "task 0",
            "retries must be an integer from 0 to 1000, got 1.5",
        ],
    );
    check_error(
        "{\"command\": \"a\", \"resources\": {\"retries\": -1}}\n",
        Format::JsonLines,
        &[
            "task 0",
            "retries must be an integer from 0 to 1000, got -1",
        ],
    );
    check_error(
        "{\"command\": \"a\", \"resources\": {\"exclusive\": \"no\"}}\n",
        Format::JsonLines,
        &[
            "tasks.in:1:",
            "task 0",
            "exclusive must be true (whole nodes) or false (share nodes by slots), got \"no\"",
        ],
    );
    check_error(
        "{\"command\": \"a\", \"resources\": {\"exclusive\": null}}\n",
        Format::JsonLines,
        &["task 0", "exclusive must be true", "got null"],
    );
    check_error(
        "[[task]]\ncommand = \"a\"\n\n[[task]]\ncommand = \"b\"\nresources = { exclusive = 0 }\n",
        Format::Toml,
        &["tasks.in:4:", "task 1", "exclusive must be true", "got 0"],
    );
    check_error(
        "[[task]]\ncommand = \"a\"\nresources = { retries = 5000 }\n",
        Format::Toml,
        &[
            "tasks.in:1:",
            "task 0",
            "retries must be an integer from 0 to 1000, got 5000",
        ],
    );
}

#[test]
fn resource_values_of_the_wrong_shape_name_their_key() {
    check_error(
        "{\"command\": \"a\"}\n{\"command\": \"b\", \"resources\": {\"walltime\": [60]}}\n",
        Format::JsonLines,
        &[
            "tasks.in:2:",
            "task 1",
            "resources key walltime",
            "expected a boolean, a number or a string",
        ],
    );
    check_error(
        "[[task]]\ncommand = \"a\"\nresources = { exclusive = { yes = true } }\n",
        Format::Toml,
        &[
            "tasks.in:",
            "resources key exclusive",
            "expected a boolean, a number or a string",
        ],
    );
    // toml's multi-line messages are joined into one line.
    let error = parse(
        "[[task]]\ncommand = \"a\"\nresources = { walltime = 1979-05-27 }\n",
        Format::Toml,
    )
    .expect_err("a date is not a walltime")
    .to_string();
    assert!(error.contains("resources key walltime"), "{error}");
    assert!(!error.contains('\n'), "{error:?}");
    check_error(
        "{\"command\": \"a\", \"resources\": [1]}\n",
        Format::JsonLines,
        &["tasks.in:1:", "task 0", "a map of resource keys"],
    );
}

#[test]
fn resource_keys_beside_command_get_a_hint() {
    check_error(
        "{\"command\": \"a\", \"walltime\": 60}\n",
        Format::JsonLines,
        &[
            "tasks.in:1:",
            "task 0",
            "unknown field `walltime`",
            "walltime is a resource key: write it inside resources, as \"resources\": {\"walltime\": ...}",
        ],
    );
    check_error(
        "[[task]]\ncommand = \"a\"\nexclusive = false\n",
        Format::Toml,
        &[
            "tasks.in:",
            "unknown field `exclusive`",
            "exclusive is a resource key: write it inside resources, as resources = { exclusive = ... }",
        ],
    );
    // Other unknown keys get no hint.
    let error = parse("{\"command\": \"a\", \"colour\": 1}\n", Format::JsonLines)
        .expect_err("unknown key")
        .to_string();
    assert!(!error.contains("resource key"), "{error}");
}

#[test]
fn packed_example_shares_nodes_within_walltimes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/packed.toml");
    let tasks = taskfile::read(&path).expect("packed.toml");
    let validated: Vec<_> = tasks
        .iter()
        .map(|task| protocol::validate(&task.submission.resources).expect("valid"))
        .collect();
    assert_eq!(validated.len(), 5);
    assert_eq!(
        validated
            .iter()
            .filter(|resources| !resources.exclusive)
            .count(),
        4
    );
    assert!(validated
        .iter()
        .all(|resources| resources.walltime.is_some()));
    assert!(validated
        .iter()
        .any(|resources| resources.retries == Some(2)));
}
