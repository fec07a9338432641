//! Runs the real `interchange` binary: ready line, garbage survived, a
//! handshake and a `status` answered, `shutdown` ends it with exit code 0.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use protocol::{Command, FromClient, Reply, ToClient, PROTOCOL_VERSION};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command as Process, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use transport::sockets::{connect_dealer, ClientSecurity};
use transport::zmq;

const WAIT: Duration = Duration::from_secs(20);

/// The interchange process, in its own process group, killed on drop.
struct Daemon {
    pgid: Pid,
    exited: mpsc::Receiver<std::io::Result<ExitStatus>>,
    ready_line: mpsc::Receiver<std::io::Result<String>>,
}

impl Daemon {
    fn start(run_dir: &std::path::Path, security_args: &[&std::ffi::OsStr]) -> Self {
        let log = std::fs::File::create(run_dir.join("interchange.log")).expect("create the log");
        let mut child = Process::new(env!("CARGO_BIN_EXE_interchange"))
            .args(security_args)
            .args(["--log-level", "debug", "--run-dir"])
            .arg(run_dir.join("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start the interchange");
        let pgid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (line_sender, ready_line) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let outcome = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = line_sender.send(outcome);
        });
        let (exit_sender, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exit_sender.send(child.wait());
        });
        Self {
            pgid,
            exited,
            ready_line,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Gone already if it exited; the error is then expected.
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let _ = self.exited.recv_timeout(WAIT);
    }
}

fn receive(socket: &zmq::Socket) -> ToClient {
    let n_ready = socket
        .poll(zmq::POLLIN, WAIT.as_millis() as i64)
        .expect("poll the DEALER");
    assert_eq!(n_ready, 1, "no answer from the interchange within {WAIT:?}");
    let frame = socket.recv_bytes(0).expect("receive");
    protocol::decode(&frame).expect("the interchange sends valid messages")
}

fn send(socket: &zmq::Socket, message: &FromClient) {
    socket
        .send(protocol::encode(message), 0)
        .expect("send to the interchange");
}

impl Daemon {
    /// The ready line, as text and as JSON, read within the timeout.
    fn ready(&self) -> (String, serde_json::Value) {
        let line = self
            .ready_line
            .recv_timeout(WAIT)
            .expect("a ready line within the timeout")
            .expect("read stdout");
        let ready = serde_json::from_str(&line).expect("the ready line is JSON");
        (line, ready)
    }
}

#[test]
fn survives_garbage_answers_status_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(dir.path(), &["--insecure".as_ref()]);
    let (line, ready) = daemon.ready();
    let client_url = ready["client_url"]
        .as_str()
        .expect("client_url is a string");
    assert!(client_url.starts_with("tcp://127.0.0.1:"), "{line}");
    assert!(ready["manager_url"].as_str().is_some(), "{line}");
    assert_eq!(ready["pid"].as_i64(), Some(i64::from(daemon.pgid.as_raw())));

    let context = zmq::Context::new();
    let socket = connect_dealer(&context, client_url, &ClientSecurity::Insecure, None)
        .expect("connect a DEALER");

    socket
        .send(&b"\xc1\x00 this is not msgpack"[..], 0)
        .expect("send garbage");
    match receive(&socket) {
        ToClient::Error {
            request_id,
            message,
        } => {
            assert_eq!(request_id, None);
            assert!(message.contains("cannot decode"), "{message}");
        }
        other => panic!("expected an error for garbage, got {other:?}"),
    }

    send(
        &socket,
        &FromClient::Hello {
            protocol_version: PROTOCOL_VERSION,
            client_version: "test".to_owned(),
        },
    );
    assert!(matches!(receive(&socket), ToClient::Welcome { .. }));

    send(
        &socket,
        &FromClient::Command {
            request_id: 7,
            command: Command::Status,
        },
    );
    match receive(&socket) {
        ToClient::Reply {
            request_id: 7,
            reply: Reply::Status(report),
        } => {
            assert_eq!(report.n_bad_messages, 1);
            assert!(report.managers.is_empty());
        }
        other => panic!("expected a status reply, got {other:?}"),
    }

    send(
        &socket,
        &FromClient::Command {
            request_id: 8,
            command: Command::Shutdown,
        },
    );
    assert!(matches!(
        receive(&socket),
        ToClient::Reply {
            request_id: 8,
            reply: Reply::Done { .. }
        }
    ));
    let status = daemon
        .exited
        .recv_timeout(WAIT)
        .expect("the interchange exits within the timeout")
        .expect("wait for the interchange");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
}

#[test]
fn with_curve_a_client_holding_the_keys_gets_a_welcome() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys_dir = dir.path().join("keys");
    transport::keygen(&keys_dir).expect("generate keys");
    let daemon = Daemon::start(dir.path(), &["--keys-dir".as_ref(), keys_dir.as_os_str()]);
    let (_, ready) = daemon.ready();
    let client_url = ready["client_url"]
        .as_str()
        .expect("client_url is a string");
    let keys = transport::keys::load_client_keys(&keys_dir).expect("load the client keys");
    let context = zmq::Context::new();
    let socket = connect_dealer(&context, client_url, &ClientSecurity::Curve(keys), None)
        .expect("connect a DEALER");
    send(
        &socket,
        &FromClient::Hello {
            protocol_version: PROTOCOL_VERSION,
            client_version: "test".to_owned(),
        },
    );
    assert!(matches!(receive(&socket), ToClient::Welcome { .. }));
}
