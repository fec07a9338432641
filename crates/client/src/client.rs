//! [`Client`]: an async connection to an interchange's client socket.
//!
//! One request at a time: each call sends one message and waits for the
//! answer with the same request id. Results that arrive meanwhile are kept
//! in a buffer and handed out by [`Client::next_result`] and
//! [`Client::wait`], so none is lost.
//!
//! Waiting survives a restart of the interchange: when the connection
//! drops, ZeroMQ reconnects by itself, and on the new connection the client
//! says `hello` again and watches again every task it submitted or watched
//! that has no result yet. The interchange that comes back sends the
//! results it has (it may have restored the tasks); a task it does not know
//! fails the wait at once, naming the task ([`ClientError::UnknownTasks`]).
//! The interchange may stay away at most the reconnect timeout (by default
//! the timeout given to [`Client::connect`]); a request made while it is
//! away fails at once.

use crate::connection::{Connection, Incoming};
use crate::error::ClientError;
use protocol::{
    Command, FromClient, Reply, StatusReport, TaskId, TaskResult, TaskSubmission, ToClient,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use tokio::time::Instant;
use transport::ClientSecurity;

/// A connection to an interchange.
#[derive(Debug)]
pub struct Client {
    connection: Connection,
    interchange_version: String,
    /// Task payload limits, from `welcome`.
    max_task_input_bytes: u64,
    max_task_output_bytes: u64,
    next_request_id: u64,
    /// How long a request waits for its answer.
    request_timeout: Duration,
    /// Results received but not handed out yet, in arrival order.
    buffered: VecDeque<TaskResult>,
    /// Tasks whose results come to this connection without a `watch`.
    followed: HashSet<TaskId>,
    /// Followed tasks without a result yet: watched again on a new
    /// connection.
    outstanding: HashSet<TaskId>,
    /// Since when the connection is lost (until `welcome` on the next).
    lost_since: Option<Instant>,
    /// How long the interchange may stay away while results are awaited.
    reconnect_timeout: Duration,
    /// Request ids of the watches sent again on a new connection.
    resume_watches: HashSet<u64>,
}

/// What a request waits for.
enum Expect {
    Submitted,
    Watching,
    Reply,
}

/// The answer to a request.
enum Answer {
    Count(u32),
    /// `watching`: the ids the interchange does not know.
    Watching(Vec<TaskId>),
    Reply(Reply),
}

impl Client {
    /// Connects to `url`, sends `hello` and waits up to `timeout` for
    /// `welcome`. The same `timeout` bounds every later request.
    pub async fn connect(
        url: &str,
        security: &ClientSecurity,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let mut connection = Connection::open(url, security)?;
        connection.send(&FromClient::Hello {
            protocol_version: protocol::PROTOCOL_VERSION,
            client_version: protocol::RHTEX_VERSION.to_owned(),
        })?;
        let deadline = Instant::now() + timeout;
        let mut connected = false;
        loop {
            let incoming = match tokio::time::timeout_at(deadline, connection.recv()).await {
                Ok(incoming) => incoming,
                Err(_) => {
                    return Err(ClientError::Timeout {
                        what: format!(
                            "the interchange at {url} to answer hello (is it running, and is the URL right?)"
                        ),
                        after: timeout,
                    })
                }
            };
            match incoming {
                Incoming::Message(ToClient::Welcome {
                    interchange_version,
                    max_task_input_bytes,
                    max_task_output_bytes,
                    ..
                }) => {
                    tracing::info!(
                        url,
                        interchange_version,
                        max_task_input_bytes,
                        max_task_output_bytes,
                        "connected"
                    );
                    return Ok(Self {
                        connection,
                        interchange_version,
                        max_task_input_bytes,
                        max_task_output_bytes,
                        next_request_id: 1,
                        request_timeout: timeout,
                        buffered: VecDeque::new(),
                        followed: HashSet::new(),
                        outstanding: HashSet::new(),
                        lost_since: None,
                        reconnect_timeout: timeout,
                        resume_watches: HashSet::new(),
                    });
                }
                Incoming::Message(ToClient::Refused { reason, .. }) => {
                    return Err(ClientError::Refused {
                        url: url.to_owned(),
                        reason,
                    })
                }
                Incoming::Message(ToClient::Error {
                    message,
                    request_id,
                }) => {
                    return Err(ClientError::Interchange {
                        request_id,
                        message,
                    })
                }
                Incoming::Message(other) => {
                    tracing::warn!(url, message = ?other, "unexpected message before welcome");
                }
                Incoming::Undecodable(reason) => {
                    tracing::warn!(url, reason, "undecodable message before welcome");
                }
                Incoming::Connected => connected = true,
                Incoming::Disconnected => {}
                Incoming::ConnectRetried if !connected => {
                    return Err(ClientError::NothingListens {
                        url: url.to_owned(),
                    })
                }
                Incoming::ConnectRetried => {}
                Incoming::HandshakeFailed(reason) => {
                    return Err(ClientError::HandshakeFailed {
                        url: url.to_owned(),
                        reason,
                    })
                }
                Incoming::Failed(reason) => {
                    return Err(ClientError::ConnectionLost {
                        url: url.to_owned(),
                        reason,
                    })
                }
            }
        }
    }

    /// The interchange's software version, from its `welcome`.
    pub fn interchange_version(&self) -> &str {
        &self.interchange_version
    }

    /// The largest `input` a task may carry, from the interchange's
    /// `welcome`.
    pub fn max_task_input_bytes(&self) -> u64 {
        self.max_task_input_bytes
    }

    /// The largest `output` a task may return, from the interchange's
    /// `welcome`.
    pub fn max_task_output_bytes(&self) -> u64 {
        self.max_task_output_bytes
    }

    pub fn url(&self) -> &str {
        self.connection.url()
    }

    /// Changes how long requests wait for their answer.
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    /// Changes how long the interchange may stay away (its connection
    /// dropped, for a restart) while results are awaited.
    pub fn set_reconnect_timeout(&mut self, timeout: Duration) {
        self.reconnect_timeout = timeout;
    }

    /// Validates every task's resources and input size, then submits them
    /// all in one message and waits for `submitted`. Nothing is sent if any
    /// task is invalid; the error names the first invalid task's position.
    /// A submit whose input would take the interchange past its memory
    /// budget is refused as a whole ([`ClientError::Interchange`], its
    /// message starting with `busy:`).
    pub async fn submit(&mut self, tasks: Vec<TaskSubmission>) -> Result<Vec<TaskId>, ClientError> {
        check_submissions(&tasks)?;
        check_inputs(&tasks, self.max_task_input_bytes)?;
        let ids: Vec<TaskId> = tasks.iter().map(|task| task.task_id).collect();
        self.followed.extend(ids.iter().copied());
        self.outstanding.extend(ids.iter().copied());
        // Messages stay far below the interchange's size limit: a large
        // batch goes as several submits, in order.
        for chunk in protocol::limits::submit_chunks(tasks) {
            let n_sent = chunk.len();
            let request_id = self.next_request_id();
            let answer = self
                .request(
                    FromClient::Submit {
                        request_id,
                        tasks: chunk,
                    },
                    request_id,
                    Expect::Submitted,
                )
                .await?;
            if let Answer::Count(n_tasks) = answer {
                if n_tasks as usize != n_sent {
                    // The others get a failed result at once (duplicate id...).
                    tracing::debug!(n_sent, n_accepted = n_tasks, "not every task was accepted");
                }
            }
        }
        Ok(ids)
    }

    /// Asks for the results of tasks submitted elsewhere. Results of tasks
    /// that already ended follow at once. Fails, naming them, if the
    /// interchange does not know some of the tasks (the others are
    /// watched).
    pub async fn watch(&mut self, task_ids: &[TaskId]) -> Result<(), ClientError> {
        let request_id = self.next_request_id();
        self.followed.extend(task_ids.iter().copied());
        self.outstanding.extend(task_ids.iter().copied());
        let answer = self
            .request(
                FromClient::Watch {
                    request_id,
                    task_ids: task_ids.to_vec(),
                },
                request_id,
                Expect::Watching,
            )
            .await?;
        match answer {
            Answer::Watching(unknown) if !unknown.is_empty() => Err(self.unknown(unknown)),
            _ => Ok(()),
        }
    }

    /// Forgets tasks the interchange does not know; the error naming them.
    fn unknown(&mut self, task_ids: Vec<TaskId>) -> ClientError {
        for task_id in &task_ids {
            self.followed.remove(task_id);
            self.outstanding.remove(task_id);
        }
        ClientError::UnknownTasks { task_ids }
    }

    /// Gives a command and returns the interchange's reply.
    pub async fn command(&mut self, command: Command) -> Result<Reply, ClientError> {
        let request_id = self.next_request_id();
        match self
            .request(
                FromClient::Command {
                    request_id,
                    command,
                },
                request_id,
                Expect::Reply,
            )
            .await?
        {
            Answer::Reply(reply) => Ok(reply),
            Answer::Count(_) | Answer::Watching(_) => Err(ClientError::Unexpected(
                "a count where a reply was expected".to_owned(),
            )),
        }
    }

    /// The interchange's status report.
    pub async fn status(&mut self) -> Result<StatusReport, ClientError> {
        match self.command(Command::Status).await? {
            Reply::Status(report) => Ok(report),
            Reply::Failed { message } => Err(ClientError::Interchange {
                request_id: None,
                message,
            }),
            other => Err(ClientError::Unexpected(format!(
                "status answered with {other:?}"
            ))),
        }
    }

    /// The next result for this connection (submitted or watched tasks),
    /// waiting as long as it takes, across a restart of the interchange
    /// (see the module documentation); wrap it in `tokio::time::timeout`
    /// to bound it.
    pub async fn next_result(&mut self) -> Result<TaskResult, ClientError> {
        loop {
            if let Some(result) = self.buffered.pop_front() {
                return Ok(result);
            }
            if let Some(incoming) = self.next_incoming(None).await? {
                self.handle_unsolicited(incoming)?;
            }
        }
    }

    /// The next event, waiting at most until `deadline` (`None` when it
    /// passed) and, while the connection is lost, until the reconnect
    /// timeout (then an error).
    async fn next_incoming(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Incoming>, ClientError> {
        let reconnect_by = self.lost_since.map(|since| since + self.reconnect_timeout);
        let bound = match (deadline, reconnect_by) {
            (Some(deadline), Some(by)) => Some(deadline.min(by)),
            (deadline, by) => deadline.or(by),
        };
        let Some(bound) = bound else {
            return Ok(Some(self.connection.recv().await));
        };
        match tokio::time::timeout_at(bound, self.connection.recv()).await {
            Ok(incoming) => Ok(Some(incoming)),
            Err(_) if reconnect_by.is_some_and(|by| Instant::now() >= by) => {
                Err(ClientError::ConnectionLost {
                    url: self.connection.url().to_owned(),
                    reason: format!(
                        "the interchange did not come back within {:.1} s",
                        self.reconnect_timeout.as_secs_f64()
                    ),
                })
            }
            Err(_) => Ok(None),
        }
    }

    /// Waits until every task of `task_ids` has its result, for at most
    /// `timeout`, and returns them in the order of `task_ids`. Tasks not
    /// submitted or watched on this connection are watched first. Results
    /// of other tasks that arrive meanwhile stay buffered.
    pub async fn wait(
        &mut self,
        task_ids: &[TaskId],
        timeout: Duration,
    ) -> Result<Vec<TaskResult>, ClientError> {
        let deadline = Instant::now() + timeout;
        let unwatched: Vec<TaskId> = task_ids
            .iter()
            .filter(|id| !self.followed.contains(id))
            .copied()
            .collect();
        if !unwatched.is_empty() {
            self.watch(&unwatched).await?;
        }
        let wanted: HashSet<TaskId> = task_ids.iter().copied().collect();
        let mut found: HashMap<TaskId, TaskResult> = HashMap::new();
        self.take_buffered(&wanted, &mut found);
        while found.len() < wanted.len() {
            let Some(incoming) = self.next_incoming(Some(deadline)).await? else {
                return Err(ClientError::Timeout {
                    what: format!("{} of {} results", wanted.len() - found.len(), wanted.len()),
                    after: timeout,
                });
            };
            self.handle_unsolicited(incoming)?;
            self.take_buffered(&wanted, &mut found);
        }
        Ok(task_ids
            .iter()
            .filter_map(|id| found.get(id).cloned())
            .collect())
    }

    /// Says goodbye (so the interchange forgets this connection; tasks
    /// carry on) and closes, giving queued messages a moment to leave.
    pub fn close(self) {
        if let Err(error) = self.connection.send(&FromClient::Goodbye) {
            tracing::debug!(%error, "cannot say goodbye to the interchange");
        }
        self.connection.close(200);
    }

    /// Moves the buffered results of `wanted` tasks into `found` (the first
    /// result per task); the others stay buffered, in order.
    fn take_buffered(&mut self, wanted: &HashSet<TaskId>, found: &mut HashMap<TaskId, TaskResult>) {
        let mut kept = VecDeque::new();
        for result in self.buffered.drain(..) {
            if wanted.contains(&result.task_id) && !found.contains_key(&result.task_id) {
                found.insert(result.task_id, result);
            } else {
                kept.push_back(result);
            }
        }
        self.buffered = kept;
    }

    fn next_request_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        id
    }

    /// Sends `message` and waits for the answer to `request_id`, buffering
    /// results that arrive first.
    async fn request(
        &mut self,
        message: FromClient,
        request_id: u64,
        expect: Expect,
    ) -> Result<Answer, ClientError> {
        if self.lost_since.is_some() {
            return Err(self.connection_lost(request_id));
        }
        self.connection.send(&message)?;
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let incoming = match tokio::time::timeout_at(deadline, self.connection.recv()).await {
                Ok(incoming) => incoming,
                Err(_) => {
                    return Err(ClientError::Timeout {
                        what: format!("the answer to request {request_id}"),
                        after: self.request_timeout,
                    })
                }
            };
            let answer = match (&expect, incoming) {
                (
                    Expect::Submitted,
                    Incoming::Message(ToClient::Submitted {
                        request_id: id,
                        n_tasks,
                    }),
                ) if id == request_id => Answer::Count(n_tasks),
                (
                    Expect::Watching,
                    Incoming::Message(ToClient::Watching {
                        request_id: id,
                        unknown,
                        ..
                    }),
                ) if id == request_id => Answer::Watching(unknown),
                (
                    Expect::Reply,
                    Incoming::Message(ToClient::Reply {
                        request_id: id,
                        reply,
                    }),
                ) if id == request_id => Answer::Reply(reply),
                (
                    _,
                    Incoming::Message(ToClient::Error {
                        request_id: id,
                        message,
                    }),
                ) if id.is_none() || id == Some(request_id) => {
                    return Err(ClientError::Interchange {
                        request_id: id,
                        message,
                    })
                }
                (_, other) => {
                    self.handle_unsolicited(other)?;
                    if self.lost_since.is_some() {
                        return Err(self.connection_lost(request_id));
                    }
                    continue;
                }
            };
            return Ok(answer);
        }
    }

    fn connection_lost(&self, request_id: u64) -> ClientError {
        ClientError::ConnectionLost {
            url: self.connection.url().to_owned(),
            reason: format!(
                "the interchange went away (did it stop?); request {request_id} got no answer"
            ),
        }
    }

    /// On a new connection after a lost one: `hello` again, and watch
    /// again every task still without a result.
    fn resume(&mut self) -> Result<(), ClientError> {
        self.connection.send(&FromClient::Hello {
            protocol_version: protocol::PROTOCOL_VERSION,
            client_version: protocol::RHTEX_VERSION.to_owned(),
        })?;
        let mut task_ids: Vec<TaskId> = self.outstanding.iter().copied().collect();
        task_ids.sort();
        tracing::info!(
            url = self.connection.url(),
            n_tasks = task_ids.len(),
            "reconnected to the interchange; watching the tasks again"
        );
        for chunk in task_ids.chunks(protocol::limits::MAX_TASK_IDS_PER_WATCH) {
            let request_id = self.next_request_id();
            self.resume_watches.insert(request_id);
            self.connection.send(&FromClient::Watch {
                request_id,
                task_ids: chunk.to_vec(),
            })?;
        }
        Ok(())
    }

    /// Handles anything that is not the answer being waited for: results are
    /// buffered, the rest logged, fatal events turned into errors.
    fn handle_unsolicited(&mut self, incoming: Incoming) -> Result<(), ClientError> {
        match incoming {
            Incoming::Message(ToClient::Results { results }) => {
                tracing::debug!(n_results = results.len(), "results");
                for result in &results {
                    self.outstanding.remove(&result.task_id);
                }
                self.buffered.extend(results);
            }
            Incoming::Message(ToClient::Welcome { .. }) if self.lost_since.is_some() => {
                self.lost_since = None;
            }
            Incoming::Message(ToClient::Refused { reason, .. }) => {
                return Err(ClientError::Refused {
                    url: self.connection.url().to_owned(),
                    reason,
                })
            }
            Incoming::Message(ToClient::Watching {
                request_id,
                unknown,
                ..
            }) if self.resume_watches.remove(&request_id) => {
                if !unknown.is_empty() {
                    return Err(self.unknown(unknown));
                }
            }
            Incoming::Message(ToClient::Error {
                request_id,
                message,
            }) => {
                tracing::warn!(?request_id, message, "error from the interchange");
            }
            Incoming::Message(other) => {
                tracing::warn!(message = ?other, "unexpected message from the interchange");
            }
            Incoming::Undecodable(reason) => {
                tracing::warn!(reason, "undecodable message from the interchange");
            }
            Incoming::Connected => {
                if self.lost_since.is_some() {
                    self.resume()?;
                }
            }
            // While the connection is lost, attempts fail until the
            // interchange is back.
            Incoming::ConnectRetried => {}
            Incoming::Disconnected => {
                if self.lost_since.is_none() {
                    tracing::warn!(
                        url = self.connection.url(),
                        reconnect_timeout_s = self.reconnect_timeout.as_secs_f64(),
                        "lost the connection to the interchange; waiting for it to come back"
                    );
                    self.lost_since = Some(Instant::now());
                }
            }
            Incoming::HandshakeFailed(reason) => {
                return Err(ClientError::HandshakeFailed {
                    url: self.connection.url().to_owned(),
                    reason,
                })
            }
            Incoming::Failed(reason) => {
                return Err(ClientError::ConnectionLost {
                    url: self.connection.url().to_owned(),
                    reason,
                })
            }
        }
        Ok(())
    }
}

/// Checks every submission's input against `limit` bytes; the error names
/// the first task over it, with its position and size.
pub fn check_inputs(tasks: &[TaskSubmission], limit: u64) -> Result<(), ClientError> {
    for (index, task) in tasks.iter().enumerate() {
        let n_bytes = task.input.as_ref().map_or(0, |input| input.len() as u64);
        if n_bytes > limit {
            return Err(ClientError::InputTooLarge {
                index,
                task_id: task.task_id,
                n_bytes,
                limit,
            });
        }
    }
    Ok(())
}

/// Validates every submission's resources and checks it against the
/// protocol's per-task bounds; the error names the first bad task's
/// position and id.
pub fn check_submissions(tasks: &[TaskSubmission]) -> Result<(), ClientError> {
    for (index, task) in tasks.iter().enumerate() {
        protocol::validate(&task.resources).map_err(|source| ClientError::InvalidSpec {
            index,
            task_id: task.task_id,
            source,
        })?;
        protocol::limits::check_submission(task).map_err(|source| ClientError::TooLarge {
            index,
            task_id: task.task_id,
            source,
        })?;
    }
    Ok(())
}
