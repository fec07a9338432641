//! The client library against a real `interchange` started with
//! `client::local` (CURVE on, fresh keys), with no pool-manager: validation
//! before sending, queueing, cancel, wait, a refused key, and stopping.
//!
//! The `interchange` binary is found next to the test binary's directory
//! (`target/debug/`). `cargo test -p client` does not build other packages'
//! binaries, so build them first: `cargo build --workspace --bins`.
//! Without it the tests fail with a message that says so (`testkit`).

mod common;

use common::start_interchange;

use client::{
    Client, ClientError, ClientSecurity, Command, Reply, ResourceRequest, TaskSubmission,
};
use protocol::{ErrorKind, TaskId, TaskState};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

fn task(command: &str, resources: ResourceRequest) -> TaskSubmission {
    TaskSubmission {
        resources,
        ..TaskSubmission::new(TaskId::new_random(), command)
    }
}

#[tokio::test]
async fn submit_validate_cancel_wait_and_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut interchange = start_interchange(dir.path()).await;
    let security = ClientSecurity::from_keys_dir(&dir.path().join("keys")).expect("client keys");
    let mut client = Client::connect(&interchange.client_url(), &security, TIMEOUT)
        .await
        .expect("connect");

    // An invalid spec anywhere in the batch: nothing is sent.
    let batch = vec![
        task("true", ResourceRequest::new()),
        task("true", ResourceRequest::new().with("num_nodes", 0)),
    ];
    match client.submit(batch).await {
        Err(ClientError::InvalidSpec {
            index: 1, source, ..
        }) => {
            assert!(source.to_string().contains("num_nodes"), "{source}");
        }
        other => panic!("expected InvalidSpec at index 1, got {other:?}"),
    }
    let report = client.status().await.expect("status");
    assert_eq!(report.n_queued, 0, "nothing was sent: {report:#?}");

    // No manager: a valid task waits in the queue.
    let ids = client
        .submit(vec![task(
            "echo queued",
            ResourceRequest::new().with("num_nodes", 2),
        )])
        .await
        .expect("submit");
    let report = client.status().await.expect("status");
    assert_eq!(report.n_queued, 1, "{report:#?}");
    assert!(report.managers.is_empty(), "{report:#?}");

    // Cancel it; its result comes through wait (possibly buffered while
    // the cancel waited for its reply).
    let reply = client
        .command(Command::Cancel { task_id: ids[0] })
        .await
        .expect("cancel");
    assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
    let results = client.wait(&ids, TIMEOUT).await.expect("wait");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].task_id, ids[0]);
    assert_eq!(results[0].state, TaskState::Cancelled, "{:#?}", results[0]);
    assert_eq!(
        results[0].error.as_ref().map(|error| error.kind),
        Some(ErrorKind::Cancelled)
    );

    // A second connection can watch the finished task and get its result.
    let mut watcher = Client::connect(&interchange.client_url(), &security, TIMEOUT)
        .await
        .expect("connect a watcher");
    let watched = watcher.wait(&ids, TIMEOUT).await.expect("watch and wait");
    assert_eq!(watched[0].state, TaskState::Cancelled);
    watcher.close();

    // Cancelling an unknown task is refused, not an error of the call.
    let reply = client
        .command(Command::Cancel {
            task_id: TaskId::new_random(),
        })
        .await
        .expect("cancel unknown");
    assert!(matches!(reply, Reply::Failed { .. }), "{reply:?}");

    let status = interchange
        .stop(Some(&mut client), Duration::from_secs(10))
        .await
        .expect("stop");
    assert!(
        status.success(),
        "the interchange exits 0 after shutdown: {status}"
    );
    client.close();
}

#[tokio::test]
async fn a_key_the_interchange_does_not_know_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut interchange = start_interchange(dir.path()).await;
    let other_keys = dir.path().join("other-keys");
    transport::keygen(&other_keys).expect("keygen");
    // The right server key, but a client key pair the interchange never saw.
    let mut keys = transport::keys::load_client_keys(&other_keys).expect("other keys");
    keys.server_public = transport::keys::load_client_keys(&dir.path().join("keys"))
        .expect("keys")
        .server_public;
    let error = Client::connect(
        &interchange.client_url(),
        &ClientSecurity::Curve(keys),
        TIMEOUT,
    )
    .await
    .expect_err("an unknown key must be refused");
    assert!(
        matches!(error, ClientError::HandshakeFailed { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("CURVE key"), "{error}");
    let status = interchange
        .stop(None, Duration::from_secs(10))
        .await
        .expect("stop");
    assert!(
        status.success(),
        "the interchange exits 0 on SIGTERM: {status}"
    );
}

#[tokio::test]
async fn silence_is_a_timeout() {
    // A port that takes connections and never answers (the kernel accepts
    // them into the listener's backlog): connect times out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let error = Client::connect(
        &format!("tcp://127.0.0.1:{port}"),
        &ClientSecurity::Insecure,
        Duration::from_millis(300),
    )
    .await
    .expect_err("nobody answers");
    assert!(matches!(error, ClientError::Timeout { .. }), "{error:?}");
    assert!(error.to_string().contains("is it running"), "{error}");
    drop(listener);
}

#[tokio::test]
async fn a_refused_connection_fails_at_once() {
    // A port nothing listens on: the first refused attempt ends the wait,
    // long before the timeout.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let url = format!("tcp://127.0.0.1:{port}");
    let began = std::time::Instant::now();
    let error = Client::connect(&url, &ClientSecurity::Insecure, Duration::from_secs(60))
        .await
        .expect_err("nothing listens");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    assert!(
        matches!(&error, ClientError::NothingListens { url: at } if *at == url),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("is the interchange running"),
        "{error}"
    );
}
