//! A raw client of the interchange: a DEALER speaking the wire protocol
//! directly, so the tests see exactly what the interchange sends.
//!
//! Results can arrive between any two replies; they are kept until a test
//! asks for them.

use crate::scenario::{Interchange, Security};
use crate::{wait_for, POLL_INTERVAL};
use protocol::{
    Command, ErrorKind, FromClient, ManagerId, Reply, ResourceRequest, StatusReport, TaskId,
    TaskResult, TaskState, TaskStatusInfo, TaskSubmission, ToClient, PROTOCOL_VERSION,
    RHTEX_VERSION,
};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use transport::zmq;
use transport::ClientSecurity;

/// A task with a fresh id, running `command`, as a serial task.
pub fn task(command: &str) -> TaskSubmission {
    TaskSubmission::new(TaskId::new_random(), command)
}

/// A command that writes its shell's pid (its process group) to `path`,
/// then becomes `sleep 60`.
pub fn pid_then_sleep(path: &Path) -> String {
    format!(
        "echo $$ > '{}.part' && mv '{0}.part' '{0}' && exec sleep 60",
        path.display()
    )
}

/// A command that waits (polling, bounded) until `release` exists, then
/// appends its task id to `runs`: one line per run to its end.
pub fn run_once_released(release: &Path, runs: &Path) -> String {
    format!(
        "for attempt in $(seq 1500); do [ -e '{}' ] && break; sleep 0.02; done; \
         [ -e '{0}' ] && echo \"$RHTEX_TASK_ID\" >> '{}'",
        release.display(),
        runs.display()
    )
}

/// Waits for the pid file written by [`pid_then_sleep`].
pub fn wait_pid_file(path: &Path) -> i32 {
    wait_for(&format!("pid file {}", path.display()), crate::WAIT, || {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
    })
}

/// Whether `pid` runs: it exists and is not a zombie (PID 1 may not reap
/// what is re-parented to it).
pub fn process_runs(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// The task's stdout tail as text.
pub fn stdout_of(result: &TaskResult) -> String {
    String::from_utf8_lossy(&result.stdout_tail).into_owned()
}

/// Fails unless the task completed with exit code 0, showing its output.
pub fn assert_completed(result: &TaskResult) {
    assert_eq!(
        result.state,
        TaskState::Completed,
        "task {} did not complete: {result:#?}\nstdout: {}\nstderr: {}",
        result.task_id,
        stdout_of(result),
        String::from_utf8_lossy(&result.stderr_tail)
    );
    assert_eq!(result.exit_code, Some(0), "{result:#?}");
}

/// Fails unless the task ended with an error of this kind.
pub fn assert_error_kind(result: &TaskResult, kind: ErrorKind) {
    assert_eq!(
        result.error.as_ref().map(|error| error.kind),
        Some(kind),
        "{result:#?}"
    );
}

/// A task running `command` with these resources.
pub fn task_with(command: &str, resources: ResourceRequest) -> TaskSubmission {
    let mut submission = task(command);
    submission.resources = resources;
    submission
}

/// A DEALER connected to the interchange's client socket, after `hello`.
pub struct RawClient {
    socket: zmq::Socket,
    next_request_id: u64,
    results: HashMap<TaskId, TaskResult>,
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient")
            .field("n_results", &self.results.len())
            .finish()
    }
}

/// A DEALER connected to `url` (a client socket) as the default client
/// identity of `security`'s key directory, nothing sent yet.
pub fn raw_dealer(url: &str, security: &Security) -> zmq::Socket {
    let security = match security.keys_dir() {
        None => ClientSecurity::Insecure,
        Some(keys_dir) => ClientSecurity::from_keys_dir(keys_dir)
            .unwrap_or_else(|error| panic!("cannot load client keys: {error}")),
    };
    dealer_with(url, &security, None)
}

/// A DEALER connected to `url` (a manager socket) as the manager identity
/// of `security`'s key directory, nothing sent yet.
pub fn raw_manager_dealer(url: &str, security: &Security) -> zmq::Socket {
    let security = security
        .manager_security()
        .unwrap_or_else(|error| panic!("cannot load manager keys: {error}"));
    dealer_with(url, &security, None)
}

/// A DEALER connected to `url` with these keys and routing id, nothing
/// sent yet.
pub fn dealer_with(url: &str, security: &ClientSecurity, routing_id: Option<&[u8]>) -> zmq::Socket {
    let context = zmq::Context::new();
    transport::sockets::connect_dealer(&context, url, security, routing_id)
        .unwrap_or_else(|error| panic!("cannot connect a DEALER to {url}: {error}"))
}

/// Receives one frame within `timeout`, or `None`.
pub fn receive_frame(socket: &zmq::Socket, timeout: Duration) -> Option<Vec<u8>> {
    let millis = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    let ready = socket
        .poll(zmq::POLLIN, millis)
        .unwrap_or_else(|error| panic!("zmq poll failed: {error}"));
    if ready == 0 {
        return None;
    }
    Some(
        socket
            .recv_bytes(0)
            .unwrap_or_else(|error| panic!("zmq recv failed: {error}")),
    )
}

impl RawClient {
    /// Connects to the interchange's client socket and says hello.
    pub fn connect(interchange: &Interchange) -> RawClient {
        Self::connect_to(&interchange.client_url, &interchange.security)
    }

    pub fn connect_to(url: &str, security: &Security) -> RawClient {
        Self::hello(raw_dealer(url, security))
    }

    /// Connects with these keys (a client identity of the interchange's
    /// key directory) and says hello.
    pub fn connect_as(url: &str, keys: &ClientSecurity) -> RawClient {
        Self::hello(dealer_with(url, keys, None))
    }

    fn hello(socket: zmq::Socket) -> RawClient {
        let mut client = RawClient {
            socket,
            next_request_id: 1,
            results: HashMap::new(),
        };
        client.send(&FromClient::Hello {
            protocol_version: PROTOCOL_VERSION,
            client_version: format!("e2e-{RHTEX_VERSION}"),
        });
        match client.receive_other(crate::WAIT, "welcome") {
            ToClient::Welcome {
                protocol_version, ..
            } => assert_eq!(protocol_version, PROTOCOL_VERSION),
            other => panic!("expected welcome after hello, got {other:?}"),
        }
        client
    }

    fn send(&self, message: &FromClient) {
        self.socket
            .send(protocol::encode(message), 0)
            .unwrap_or_else(|error| panic!("cannot send to the interchange: {error}"));
    }

    fn request_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        id
    }

    /// Receives messages until one that is not `results` arrives; results
    /// are stored on the way.
    fn receive_other(&mut self, timeout: Duration, what: &str) -> ToClient {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(frame) = receive_frame(&self.socket, left) else {
                panic!("no {what} from the interchange within {timeout:?}");
            };
            let message: ToClient = protocol::decode(&frame).unwrap_or_else(|error| {
                panic!("undecodable message from the interchange: {error}")
            });
            match message {
                ToClient::Results { results } => self.store(results),
                other => return other,
            }
        }
    }

    fn store(&mut self, results: Vec<TaskResult>) {
        for result in results {
            let task_id = result.task_id;
            let previous = self.results.insert(task_id, result);
            assert!(
                previous.is_none(),
                "task {task_id} got a second result (every task gets exactly one)"
            );
        }
    }

    /// Takes in whatever arrived within `timeout` (results only).
    fn pump(&mut self, timeout: Duration) {
        if let Some(frame) = receive_frame(&self.socket, timeout) {
            match protocol::decode::<ToClient>(&frame) {
                Ok(ToClient::Results { results }) => self.store(results),
                Ok(other) => panic!("unexpected message from the interchange: {other:?}"),
                Err(error) => panic!("undecodable message from the interchange: {error}"),
            }
        }
    }

    /// Sends the request `make(request_id)` and waits for its answer
    /// (`what`); `take` takes the answer apart into the request id it
    /// answers and its content, or gives back any other message.
    fn request<T>(
        &mut self,
        what: &str,
        make: impl FnOnce(u64) -> FromClient,
        take: impl FnOnce(ToClient) -> Result<(u64, T), Box<ToClient>>,
    ) -> T {
        let request_id = self.request_id();
        self.send(&make(request_id));
        match take(self.receive_other(crate::WAIT, what)) {
            Ok((answered, content)) => {
                assert_eq!(answered, request_id);
                content
            }
            Err(other) => panic!("expected {what}, got {other:?}"),
        }
    }

    /// Submits tasks; returns how many the interchange accepted.
    pub fn submit(&mut self, tasks: Vec<TaskSubmission>) -> u32 {
        let make = |request_id| FromClient::Submit { request_id, tasks };
        self.request("submitted", make, |answer| match answer {
            ToClient::Submitted {
                request_id,
                n_tasks,
            } => Ok((request_id, n_tasks)),
            other => Err(Box::new(other)),
        })
    }

    /// Submits one task, which must be accepted; returns its id.
    pub fn submit_one(&mut self, task: TaskSubmission) -> TaskId {
        let task_id = task.task_id;
        assert_eq!(
            self.submit(vec![task]),
            1,
            "task {task_id} was not accepted"
        );
        task_id
    }

    /// Submits one task, which must be accepted, and waits for its result
    /// (at most [`crate::WAIT`]).
    pub fn run_one(&mut self, task: TaskSubmission) -> TaskResult {
        let task_id = self.submit_one(task);
        self.wait_result(task_id, crate::WAIT)
    }

    /// Asks for the results of tasks submitted by another connection.
    pub fn watch(&mut self, task_ids: Vec<TaskId>) {
        let request_id = self.request_id();
        self.send(&FromClient::Watch {
            request_id,
            task_ids,
        });
        match self.receive_other(crate::WAIT, "watching") {
            ToClient::Watching { .. } => {}
            other => panic!("expected watching, got {other:?}"),
        }
    }

    /// The result of `task_id`, waiting at most `timeout` for it.
    pub fn wait_result(&mut self, task_id: TaskId, timeout: Duration) -> TaskResult {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(result) = self.results.remove(&task_id) {
                return result;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no result for task {task_id} within {timeout:?}"
            );
            self.pump(left.min(Duration::from_millis(200)));
        }
    }

    /// Whether a result for `task_id` has arrived (without waiting).
    pub fn has_result(&mut self, task_id: TaskId) -> bool {
        self.pump(Duration::ZERO);
        self.results.contains_key(&task_id)
    }

    /// Sends the request `make(request_id)` and returns the first answer
    /// that is not `results`, whatever it is, with the request id used.
    pub fn ask(&mut self, make: impl FnOnce(u64) -> FromClient) -> (u64, ToClient) {
        let request_id = self.request_id();
        self.send(&make(request_id));
        (request_id, self.receive_other(crate::WAIT, "an answer"))
    }

    /// Gives a command and returns the reply.
    pub fn command(&mut self, command: Command) -> Reply {
        let make = |request_id| FromClient::Command {
            request_id,
            command,
        };
        self.request("reply", make, |answer| match answer {
            ToClient::Reply { request_id, reply } => Ok((request_id, reply)),
            other => Err(Box::new(other)),
        })
    }

    pub fn status(&mut self) -> StatusReport {
        match self.command(Command::Status) {
            Reply::Status(report) => report,
            other => panic!("expected a status report, got {other:?}"),
        }
    }

    pub fn task_status(&mut self, task_id: TaskId) -> TaskStatusInfo {
        match self.command(Command::TaskStatus {
            task_ids: vec![task_id],
        }) {
            Reply::TaskStatus { mut tasks } => {
                assert_eq!(tasks.len(), 1, "task_status of one task: {tasks:?}");
                tasks.remove(0)
            }
            other => panic!("expected task status, got {other:?}"),
        }
    }

    /// Polls `status` until `accept` gives `Some`, at most `timeout`.
    pub fn wait_status<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut accept: impl FnMut(&StatusReport) -> Option<T>,
    ) -> T {
        let mut last = None;
        let deadline = Instant::now() + timeout;
        loop {
            let report = self.status();
            if let Some(value) = accept(&report) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; last status: {last:#?}"
            );
            last = Some(report);
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until every one of `managers` is registered.
    pub fn wait_managers(&mut self, managers: &[ManagerId]) -> StatusReport {
        self.wait_status(
            &format!("managers {managers:?} to register"),
            crate::WAIT,
            |report| {
                let all = managers.iter().all(|wanted| {
                    report
                        .managers
                        .iter()
                        .any(|info| info.manager_id == *wanted)
                });
                all.then(|| report.clone())
            },
        )
    }

    /// Waits until `manager_id` is registered and runs no task (`what` names
    /// the wait in a timeout).
    pub fn wait_manager_idle(
        &mut self,
        what: &str,
        manager_id: ManagerId,
        timeout: Duration,
    ) -> StatusReport {
        self.wait_status(what, timeout, |report| {
            report
                .managers
                .iter()
                .any(|info| info.manager_id == manager_id && info.n_running_tasks == 0)
                .then(|| report.clone())
        })
    }

    /// Waits until at least `n_managers` managers are registered.
    pub fn wait_n_managers(&mut self, n_managers: usize) -> StatusReport {
        self.wait_status(
            &format!("{n_managers} managers to register"),
            crate::WAIT,
            |report| (report.managers.len() >= n_managers).then(|| report.clone()),
        )
    }

    /// Waits until the interchange says `task_id` is running.
    pub fn wait_running(&mut self, task_id: TaskId) -> TaskStatusInfo {
        wait_for(&format!("task {task_id} to run"), crate::WAIT, || {
            let info = self.task_status(task_id);
            assert!(
                !info.state.is_final(),
                "task {task_id} ended before the test saw it run: {info:?}"
            );
            (info.state == protocol::TaskState::Running).then_some(info)
        })
    }
}
