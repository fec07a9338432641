//! Task payloads from the command line and the library: `rhtex submit
//! --input-file F --wait --output-file G` and `rhtex wait ID --output-file
//! G` against a real interchange and pool-manager on this host (the
//! embedded pool of `client::local`, CURVE on), with bytes that are not
//! UTF-8 both ways; and the library's check of input sizes before sending.
//!
//! The daemons must sit next to `rhtex` in `target/debug/`
//! (`cargo build -p interchange -p pool-manager` first).

use client::local::{EmbeddedOptions, EmbeddedPool};
use client::{check_inputs, Client, ClientError, TaskBuilder};
use protocol::TaskId;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// What one `rhtex` run printed and how it exited.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `rhtex --interchange URL --keys-dir KEYS ARGS`.
async fn rhtex_at(url: &str, keys: &str, args: &[&str]) -> Run {
    let mut all = vec!["--interchange", url, "--keys-dir", keys];
    all.extend_from_slice(args);
    rhtex(&all).await
}

/// Runs `rhtex ARGS` with no interchange from the environment, killed if it
/// takes longer than [`TIMEOUT`].
async fn rhtex(args: &[&str]) -> Run {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rhtex"))
        .args(args)
        .env_remove("RHTEX_INTERCHANGE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start rhtex");
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("rhtex {args:?} did not finish within {TIMEOUT:?}"))
        .expect("wait for rhtex");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn json(run: &Run) -> serde_json::Value {
    assert_eq!(
        run.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|error| panic!("not JSON: {:?}: {error}", run.stdout))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

#[tokio::test]
async fn submit_and_wait_carry_input_and_output_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pool = EmbeddedPool::start(&EmbeddedOptions {
        run_root: dir.path().join("rhtex-run"),
        nodes: Some(vec!["localhost".to_owned()]),
        launcher: None,
        log_level: None,
        ready_timeout: TIMEOUT,
    })
    .await
    .unwrap_or_else(|error| {
        panic!("{error}\n(build the daemons first: cargo build -p interchange -p pool-manager)")
    });
    let url = pool.interchange.client_url();
    let keys = pool.keys_dir.display().to_string();

    // Every byte value: nothing on the way may treat it as text.
    let input: Vec<u8> = (0..=255u8).rev().collect();
    let input_file = dir.path().join("in.bin");
    std::fs::write(&input_file, &input).expect("write the input");
    let output_file = dir.path().join("out.bin");
    let command = "{ cat \"$RHTEX_TASK_INPUT\"; printf '\\377\\000end'; } > \"$RHTEX_TASK_OUTPUT\"";
    let run = rhtex_at(
        &url,
        &keys,
        &[
            "--json",
            "submit",
            "--input-file",
            &input_file.display().to_string(),
            "--wait",
            "--output-file",
            &output_file.display().to_string(),
            "--",
            command,
        ],
    )
    .await;
    let result = json(&run);
    let expected = [input.as_slice(), b"\xff\x00end"].concat();
    assert_eq!(result["state"], "completed", "{result}");
    assert_eq!(result["output_bytes"], expected.len(), "{result}");
    assert_eq!(read(&output_file), expected);
    let task_id: TaskId = result["task_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no task id in {result}"));

    // The interchange keeps the result: `wait` writes the output again,
    // and says its size in text too.
    let again = dir.path().join("again.bin");
    let run = rhtex_at(
        &url,
        &keys,
        &[
            "wait",
            &task_id.to_string(),
            "--output-file",
            &again.display().to_string(),
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("output: {} bytes", expected.len())),
        "{}",
        run.stdout
    );
    assert_eq!(read(&again), expected);

    // A task that writes no output: the file is left alone, and rhtex says so.
    let untouched = dir.path().join("untouched.bin");
    let run = rhtex_at(
        &url,
        &keys,
        &[
            "--json",
            "submit",
            "--wait",
            "--output-file",
            &untouched.display().to_string(),
            "--",
            "true",
        ],
    )
    .await;
    let result = json(&run);
    assert_eq!(result["output_bytes"], serde_json::Value::Null, "{result}");
    assert!(!untouched.exists());
    assert!(run.stderr.contains("returned no output"), "{}", run.stderr);

    // The library announces the interchange's limits.
    let security = pool.security().expect("client keys");
    let mut client = Client::connect(&url, &security, TIMEOUT)
        .await
        .expect("connect");
    assert_eq!(
        client.max_task_input_bytes(),
        protocol::DEFAULT_MAX_TASK_INPUT_BYTES
    );
    assert_eq!(
        client.max_task_output_bytes(),
        protocol::DEFAULT_MAX_TASK_OUTPUT_BYTES
    );
    pool.stop(Some(&mut client), Duration::from_secs(10))
        .await
        .expect("stop the daemons");
    client.close();
}

#[tokio::test]
async fn output_file_flags_are_checked_before_connecting() {
    // --output-file needs --wait: clap's own error names both.
    let run = rhtex(&["--insecure", "submit", "--output-file", "x", "--", "true"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--wait"), "{}", run.stderr);
    // An input file that cannot be read is named.
    let run = rhtex(&[
        "--insecure",
        "submit",
        "--input-file",
        "/nonexistent/in.bin",
        "--",
        "true",
    ])
    .await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot read the input file /nonexistent/in.bin"),
        "{}",
        run.stderr
    );
    // `wait --output-file` takes one task.
    let run = rhtex(&[
        "--insecure",
        "--interchange",
        "tcp://127.0.0.1:1",
        "wait",
        &TaskId::from_u128(1).to_string(),
        &TaskId::from_u128(2).to_string(),
        "--output-file",
        "x",
    ])
    .await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("give exactly one task id"),
        "{}",
        run.stderr
    );
}

#[test]
fn inputs_over_the_limit_are_refused_before_sending_naming_both_sizes() {
    let small = TaskBuilder::new("true")
        .input(vec![1; 10])
        .build()
        .expect("valid");
    let large = TaskBuilder::new("true")
        .input(vec![2; 11])
        .build()
        .expect("valid");
    assert!(check_inputs(std::slice::from_ref(&small), 10).is_ok());
    let error = check_inputs(&[small, large.clone()], 10).expect_err("too large");
    assert!(
        matches!(
            error,
            ClientError::InputTooLarge {
                index: 1,
                n_bytes: 11,
                limit: 10,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "task 1 (id {}) has 11 bytes of input; the interchange takes at most 10 bytes per \
             task (its max_task_input_bytes)",
            large.task_id
        )
    );
}
