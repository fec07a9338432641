//! The protocol's bounds on the client side: `rhtex --insecure` warns, a
//! task past a per-task bound is refused before anything is sent, and a
//! batch larger than one message goes as several submits that a real
//! interchange (with its message size limit) accepts.
//!
//! The `interchange` binary must sit next to `rhtex` in `target/debug/`:
//! `cargo build --workspace --bins` first.

mod common;

use common::{rhtex, TIMEOUT};

use client::{BuildError, Client, ClientError, ClientSecurity, TaskBuilder};
use protocol::limits::{MAX_COMMAND_BYTES, MAX_ENV_VARS, SUBMIT_CHUNK_BYTES};
use protocol::LimitError;

#[test]
fn insecure_warns_on_stderr() {
    // Nothing listens on port 9 (discard): the command fails after its
    // timeout, having warned first.
    let output = rhtex(&[
        "--insecure",
        "--interchange",
        "tcp://127.0.0.1:9",
        "--timeout",
        "0.5",
        "status",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("rhtex: warning: --insecure: no encryption and no authentication"),
        "{stderr}"
    );
}

#[test]
fn a_command_past_the_bound_is_refused_before_connecting() {
    // Words are joined with spaces: nine of 120000 bytes pass 1 MiB.
    let word = "x".repeat(120_000);
    let mut args = vec!["--insecure", "submit", "--"];
    args.extend(std::iter::repeat_n(word.as_str(), 9));
    let output = rhtex(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not submitted"), "{stderr}");
    assert!(
        stderr.contains(
            "command has 1080008 bytes; at most 1048576 bytes are allowed (max_command_bytes)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("no interchange given"), "{stderr}");
}

#[test]
fn the_builder_checks_the_per_task_bounds() {
    let error = TaskBuilder::new("x".repeat(MAX_COMMAND_BYTES + 1))
        .build()
        .expect_err("command too long");
    assert_eq!(
        error,
        BuildError::Limit(LimitError::Command {
            got: MAX_COMMAND_BYTES + 1
        })
    );
    let mut builder = TaskBuilder::new("true");
    for index in 0..=MAX_ENV_VARS {
        builder = builder.env(format!("V{index}"), "1");
    }
    let error = builder.build().expect_err("too many variables");
    assert!(error.to_string().contains("(max_env_vars)"), "{error}");
    let error = TaskBuilder::new("true")
        .cwd("/".repeat(4097))
        .build()
        .expect_err("path too long");
    assert!(
        error.to_string().starts_with("cwd has 4097 bytes"),
        "{error}"
    );
}

#[tokio::test]
async fn a_batch_past_one_message_goes_as_several_submits_and_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut interchange = common::start_interchange(dir.path()).await;
    let url = interchange.client_url();
    let security = ClientSecurity::from_keys_dir(&dir.path().join("keys")).expect("client keys");
    let mut client = Client::connect(&url, &security, TIMEOUT)
        .await
        .expect("connect");

    // A task submission built without the builder is checked by submit.
    let mut too_long = client::TaskSubmission::new(protocol::TaskId::new_random(), "true");
    too_long.stdout = Some("/".repeat(5000));
    match client.submit(vec![too_long]).await {
        Err(ClientError::TooLarge {
            index: 0, source, ..
        }) => {
            assert_eq!(
                source,
                LimitError::Path {
                    field: "stdout",
                    got: 5000
                }
            );
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }

    // Ten tasks of 12 MiB input: 120 MiB in all, past the interchange's
    // 64 MiB message limit as one submit; split, every one is queued.
    let input = vec![7u8; 12 * 1024 * 1024];
    assert!(input.len() as u64 <= SUBMIT_CHUNK_BYTES);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            TaskBuilder::new("true")
                .input(input.clone())
                .build()
                .expect("valid")
        })
        .collect();
    let task_ids = client.submit(tasks).await.expect("submit");
    common::expect_queued_then_stop(&mut interchange, client, &task_ids, 10).await;
}
