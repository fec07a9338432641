//! Bounds on what a peer may send, and the rules for node names: one place
//! for each rule, used by the client library before it sends, by the
//! interchange on arrival and by the pool-manager on its own node list.
//!
//! Per-task bounds ([`check_submission`]) are protocol limits, the same for
//! every interchange: a task past one fails at once as `invalid_spec`, with
//! a message naming the limit and its value. Per-message bounds
//! ([`MAX_TASKS_PER_SUBMIT`], [`MAX_TASK_IDS_PER_WATCH`],
//! [`MAX_RESULTS_PER_MESSAGE`]) refuse or drop the message as a whole.
//! Node names ([`check_node_names`]) must be host names, distinct, and at
//! most a configured number per manager.

use crate::messages::{TaskResult, TaskSubmission, MAX_TAIL_BYTES};

/// Longest `command`, in bytes (1 MiB).
pub const MAX_COMMAND_BYTES: usize = 1024 * 1024;
/// Most environment variables one task may set.
pub const MAX_ENV_VARS: usize = 4096;
/// Most bytes of a task's environment (every name and value) (1 MiB).
pub const MAX_ENV_BYTES: usize = 1024 * 1024;
/// Longest `launcher_options`, in bytes.
pub const MAX_LAUNCHER_OPTIONS_BYTES: usize = 64 * 1024;
/// Longest `cwd`, `stdout` or `stderr` path, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Most tasks in one `submit`.
pub const MAX_TASKS_PER_SUBMIT: usize = 100_000;
/// Most task ids in one `watch`.
pub const MAX_TASK_IDS_PER_WATCH: usize = 100_000;
/// Most results in one `results` message from a manager.
pub const MAX_RESULTS_PER_MESSAGE: usize = 10_000;
/// Default of the most nodes one manager may register.
pub const DEFAULT_MAX_MANAGER_NODES: usize = 16_384;
/// Default of the largest message the interchange takes on either socket
/// (ZMQ_MAXMSGSIZE): 64 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 64 * 1024 * 1024;
/// Room in a message beside one task's input or output: its command,
/// environment, paths and launcher options (about 2.1 MiB at most by the
/// bounds above), tails (128 KiB), a result's node names (about 4.2 MiB
/// for 16384 nodes of the longest names) and the framing.
pub const MESSAGE_OVERHEAD_BYTES: u64 = 8 * 1024 * 1024;
/// The client library splits a `submit` into messages of about this many
/// bytes of task data (a single larger task goes alone).
pub const SUBMIT_CHUNK_BYTES: u64 = 16 * 1024 * 1024;

/// The smallest message size limit the interchange can run with: one
/// submit chunk, or one task with the largest input or output, plus
/// [`MESSAGE_OVERHEAD_BYTES`].
pub fn min_max_message_bytes(max_task_input_bytes: u64, max_task_output_bytes: u64) -> u64 {
    max_task_input_bytes
        .max(max_task_output_bytes)
        .max(SUBMIT_CHUNK_BYTES)
        .saturating_add(MESSAGE_OVERHEAD_BYTES)
}

/// About how many bytes a submission takes in a `submit` message (its
/// strings and input, plus a little for the framing); for splitting.
pub fn submission_bytes(submission: &TaskSubmission) -> u64 {
    let strings = submission.command.len()
        + submission
            .env
            .iter()
            .map(|(name, value)| name.len() + value.len() + 10)
            .sum::<usize>()
        + [&submission.cwd, &submission.stdout, &submission.stderr]
            .iter()
            .map(|path| path.as_ref().map_or(0, String::len))
            .sum::<usize>()
        + submission
            .resources
            .0
            .iter()
            .map(|(key, value)| key.len() + value.to_string().len() + 10)
            .sum::<usize>();
    let input = submission.input.as_ref().map_or(0, Vec::len);
    (strings + input) as u64 + 200
}

/// Splits submissions into consecutive groups, each of at most
/// [`MAX_TASKS_PER_SUBMIT`] tasks and about [`SUBMIT_CHUNK_BYTES`] bytes
/// (a task larger than that alone), order kept.
pub fn submit_chunks(submissions: Vec<TaskSubmission>) -> Vec<Vec<TaskSubmission>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut current_bytes = 0u64;
    for submission in submissions {
        let n_bytes = submission_bytes(&submission);
        let full = current.len() >= MAX_TASKS_PER_SUBMIT
            || current_bytes.saturating_add(n_bytes) > SUBMIT_CHUNK_BYTES;
        if full && !current.is_empty() {
            chunks.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes = current_bytes.saturating_add(n_bytes);
        current.push(submission);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Longest host name (RFC 1123: 253 characters, labels of at most 63).
pub const MAX_HOST_NAME_BYTES: usize = 253;
const MAX_LABEL_BYTES: usize = 63;

/// Why a task submission is past a per-task bound.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("command has {got} bytes; at most {MAX_COMMAND_BYTES} bytes are allowed (max_command_bytes)")]
    Command { got: usize },
    #[error("env has {got} variables; at most {MAX_ENV_VARS} are allowed (max_env_vars)")]
    EnvVars { got: usize },
    #[error("env has {got} bytes of names and values; at most {MAX_ENV_BYTES} bytes are allowed (max_env_bytes)")]
    EnvBytes { got: usize },
    #[error("launcher_options has {got} bytes; at most {MAX_LAUNCHER_OPTIONS_BYTES} bytes are allowed (max_launcher_options_bytes)")]
    LauncherOptions { got: usize },
    #[error(
        "{field} has {got} bytes; a path may have at most {MAX_PATH_BYTES} bytes (max_path_bytes)"
    )]
    Path { field: &'static str, got: usize },
}

/// About how many bytes a task's data takes besides its input: command,
/// environment, resources and paths, and a little per task
/// ([`submission_bytes`] without the input). What the interchange counts
/// against `max_queued_task_bytes` for every unfinished task.
pub fn task_data_bytes(submission: &TaskSubmission) -> u64 {
    let input = submission.input.as_ref().map_or(0, Vec::len) as u64;
    submission_bytes(submission).saturating_sub(input)
}

/// Checks one submission against the per-task bounds (command,
/// environment, `launcher_options`, paths). Its input is bounded by the
/// interchange's `max_task_input_bytes`, checked apart.
pub fn check_submission(submission: &TaskSubmission) -> Result<(), LimitError> {
    if submission.command.len() > MAX_COMMAND_BYTES {
        return Err(LimitError::Command {
            got: submission.command.len(),
        });
    }
    if submission.env.len() > MAX_ENV_VARS {
        return Err(LimitError::EnvVars {
            got: submission.env.len(),
        });
    }
    let env_bytes: usize = submission
        .env
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    if env_bytes > MAX_ENV_BYTES {
        return Err(LimitError::EnvBytes { got: env_bytes });
    }
    if let Some(crate::SpecValue::Text(options)) = submission.resources.0.get("launcher_options") {
        if options.len() > MAX_LAUNCHER_OPTIONS_BYTES {
            return Err(LimitError::LauncherOptions { got: options.len() });
        }
    }
    for (field, path) in [
        ("cwd", &submission.cwd),
        ("stdout", &submission.stdout),
        ("stderr", &submission.stderr),
    ] {
        if let Some(path) = path {
            if path.len() > MAX_PATH_BYTES {
                return Err(LimitError::Path {
                    field,
                    got: path.len(),
                });
            }
        }
    }
    Ok(())
}

/// Why a manager's node list is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeNameError {
    #[error("node name {name:?} is not a host name: {why}")]
    NotAHostName { name: String, why: &'static str },
    #[error("node name {name:?} is listed more than once; node names must be distinct")]
    Duplicate { name: String },
    #[error("{got} nodes; a manager may have at most {limit} (max_manager_nodes)")]
    TooMany { got: usize, limit: usize },
}

/// Checks that `name` is a host name (RFC 1123): dot-separated labels of
/// 1 to 63 letters, digits and hyphens, none starting or ending with a
/// hyphen, at most 253 bytes in all.
pub fn check_host_name(name: &str) -> Result<(), NodeNameError> {
    let fail = |why| {
        Err(NodeNameError::NotAHostName {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > MAX_HOST_NAME_BYTES {
        return fail("it is longer than 253 bytes");
    }
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.')
    {
        return fail("only letters, digits, hyphens and dots are allowed");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return fail("it has an empty label (a leading, trailing or doubled dot)");
        }
        if label.len() > MAX_LABEL_BYTES {
            return fail("a label is longer than 63 bytes");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return fail("a label starts or ends with a hyphen");
        }
    }
    Ok(())
}

/// Checks a manager's node list: at most `max_nodes` nodes, each a host
/// name, no name twice.
pub fn check_node_names<S: AsRef<str>>(nodes: &[S], max_nodes: usize) -> Result<(), NodeNameError> {
    if nodes.len() > max_nodes {
        return Err(NodeNameError::TooMany {
            got: nodes.len(),
            limit: max_nodes,
        });
    }
    let mut seen = std::collections::HashSet::with_capacity(nodes.len());
    for node in nodes {
        let name = node.as_ref();
        check_host_name(name)?;
        if !seen.insert(name) {
            return Err(NodeNameError::Duplicate {
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

/// Cuts a stdout or stderr tail to its last [`MAX_TAIL_BYTES`] bytes;
/// returns how many bytes it had if it was longer.
pub fn truncate_tail(tail: &mut Vec<u8>) -> Option<usize> {
    let n_bytes = tail.len();
    if n_bytes <= MAX_TAIL_BYTES {
        return None;
    }
    tail.drain(..n_bytes - MAX_TAIL_BYTES);
    tail.shrink_to_fit();
    Some(n_bytes)
}

/// Cuts both tails of a result to [`MAX_TAIL_BYTES`]; returns the original
/// lengths of the tails that were longer (stdout, stderr).
pub fn truncate_tails(result: &mut TaskResult) -> (Option<usize>, Option<usize>) {
    (
        truncate_tail(&mut result.stdout_tail),
        truncate_tail(&mut result.stderr_tail),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ResourceRequest, TaskId, TaskState};

    fn submission() -> TaskSubmission {
        TaskSubmission::new(TaskId::new_random(), "true")
    }

    /// The error for a plain task that `change` takes past a bound.
    fn refused(change: impl FnOnce(&mut TaskSubmission)) -> LimitError {
        let mut task = submission();
        change(&mut task);
        check_submission(&task).expect_err("past a bound")
    }

    /// Asserts that `change` makes a task past a bound, refused as
    /// `expected` with a message that says `says`.
    fn refused_as(
        change: impl FnOnce(&mut TaskSubmission),
        expected: LimitError,
        says: &str,
    ) -> LimitError {
        let error = refused(change);
        assert_eq!(error, expected);
        assert!(error.to_string().contains(says), "{error}");
        error
    }

    #[test]
    fn a_plain_task_is_within_every_bound() {
        assert_eq!(check_submission(&submission()), Ok(()));
    }

    #[test]
    fn each_per_task_bound_names_itself_and_its_value() {
        let error = refused_as(
            |task| task.command = "x".repeat(MAX_COMMAND_BYTES + 1),
            LimitError::Command {
                got: MAX_COMMAND_BYTES + 1,
            },
            "max_command_bytes",
        );
        assert!(error.to_string().contains(&MAX_COMMAND_BYTES.to_string()));

        let mut exact_command = submission();
        exact_command.command = "x".repeat(MAX_COMMAND_BYTES);
        assert_eq!(check_submission(&exact_command), Ok(()));

        refused_as(
            |task| {
                for index in 0..=MAX_ENV_VARS {
                    task.env.insert(format!("V{index}"), String::new());
                }
            },
            LimitError::EnvVars {
                got: MAX_ENV_VARS + 1,
            },
            "4096",
        );
        refused_as(
            |task| {
                task.env.insert("BIG".to_owned(), "y".repeat(MAX_ENV_BYTES));
            },
            LimitError::EnvBytes {
                got: MAX_ENV_BYTES + 3,
            },
            "max_env_bytes",
        );

        let error = refused(|task| {
            task.resources = ResourceRequest::new().with(
                "launcher_options",
                "o".repeat(MAX_LAUNCHER_OPTIONS_BYTES + 1),
            );
        });
        assert!(error
            .to_string()
            .contains("launcher_options has 65537 bytes"));

        for field in ["cwd", "stdout", "stderr"] {
            let error = refused(|task| {
                let long = Some("/".repeat(MAX_PATH_BYTES + 1));
                match field {
                    "cwd" => task.cwd = long,
                    "stdout" => task.stdout = long,
                    _ => task.stderr = long,
                }
            });
            assert_eq!(
                error,
                LimitError::Path {
                    field,
                    got: MAX_PATH_BYTES + 1
                }
            );
            assert!(error.to_string().starts_with(field));
        }
    }

    #[test]
    fn host_names_follow_rfc_1123() {
        for good in ["g1", "node-01", "c1.cluster.example.org", "1n", "A-b"] {
            assert_eq!(check_host_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "g1 --evil-flag",
            "--evil",
            "-g1",
            "g1-",
            "a..b",
            ".a",
            "a.",
            "a_b",
            "a;b",
            "n\u{e9}",
            "a\nb",
        ] {
            assert!(
                matches!(
                    check_host_name(bad),
                    Err(NodeNameError::NotAHostName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(check_host_name(&"a".repeat(63)).is_ok());
        assert!(check_host_name(&"a".repeat(64)).is_err());
        let long = vec!["a".repeat(63); 4].join(".");
        assert!(long.len() > MAX_HOST_NAME_BYTES);
        assert!(check_host_name(&long).is_err());
    }

    #[test]
    fn node_lists_are_distinct_host_names_within_the_limit() {
        assert_eq!(check_node_names(&["d1", "d2"], 2), Ok(()));
        let error = check_node_names(&["d1", "d1", "d1"], 16).expect_err("past a bound");
        assert_eq!(
            error,
            NodeNameError::Duplicate {
                name: "d1".to_owned()
            }
        );
        assert!(error.to_string().contains("\"d1\""));
        let error = check_node_names(&["a", "b", "c"], 2).expect_err("past a bound");
        assert_eq!(error, NodeNameError::TooMany { got: 3, limit: 2 });
        assert!(error.to_string().contains("at most 2 (max_manager_nodes)"));
        assert!(check_node_names(&["g1 --evil-flag"], 2)
            .expect_err("past a bound")
            .to_string()
            .contains("\"g1 --evil-flag\" is not a host name"));
    }

    #[test]
    fn submits_are_split_by_count_and_bytes_in_order() {
        let small: Vec<TaskSubmission> = (0..10).map(|_| submission()).collect();
        let ids: Vec<TaskId> = small.iter().map(|task| task.task_id).collect();
        let chunks = submit_chunks(small);
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0]
                .iter()
                .map(|task| task.task_id)
                .collect::<Vec<_>>(),
            ids
        );

        let big = |n_bytes: usize| TaskSubmission {
            input: Some(vec![0; n_bytes]),
            ..submission()
        };
        let half = SUBMIT_CHUNK_BYTES as usize / 2;
        let tasks = vec![big(half), big(half), big(3 * half), submission()];
        let sizes: Vec<usize> = submit_chunks(tasks).iter().map(Vec::len).collect();
        // Two halves plus framing pass the chunk: each goes alone, the
        // large one alone, the small one after it.
        assert_eq!(sizes, vec![1, 1, 1, 1]);
        for chunk in submit_chunks((0..3).map(|_| big(half / 2)).collect()) {
            let n_bytes: u64 = chunk.iter().map(submission_bytes).sum();
            assert!(n_bytes <= SUBMIT_CHUNK_BYTES);
        }

        let many = (0..MAX_TASKS_PER_SUBMIT + 1)
            .map(|_| submission())
            .collect();
        let sizes: Vec<usize> = submit_chunks(many).iter().map(Vec::len).collect();
        assert!(sizes.len() >= 2, "{sizes:?}");
        assert!(
            sizes.iter().all(|&n| n <= MAX_TASKS_PER_SUBMIT),
            "{sizes:?}"
        );
        assert_eq!(sizes.iter().sum::<usize>(), MAX_TASKS_PER_SUBMIT + 1);
        assert!(submit_chunks(Vec::new()).is_empty());
    }

    #[test]
    fn the_message_limit_leaves_room_for_the_largest_task() {
        assert_eq!(
            min_max_message_bytes(1, 1),
            SUBMIT_CHUNK_BYTES + MESSAGE_OVERHEAD_BYTES
        );
        assert_eq!(
            min_max_message_bytes(100 << 20, 1),
            (100 << 20) + MESSAGE_OVERHEAD_BYTES
        );
        assert!(DEFAULT_MAX_MESSAGE_BYTES >= min_max_message_bytes(16 << 20, 16 << 20));
    }

    #[test]
    fn tails_keep_their_last_bytes() {
        let mut result = TaskResult::new(TaskId::new_random(), TaskState::Completed);
        result.stdout_tail = (0..MAX_TAIL_BYTES + 10).map(|i| (i % 251) as u8).collect();
        result.stderr_tail = b"short".to_vec();
        let expected_end = result.stdout_tail[10..].to_vec();
        assert_eq!(
            truncate_tails(&mut result),
            (Some(MAX_TAIL_BYTES + 10), None)
        );
        assert_eq!(result.stdout_tail, expected_end);
        assert_eq!(result.stderr_tail, b"short");
    }
}
