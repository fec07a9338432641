//! [`Client`]: an async connection to an interchange's client socket.
//!
//! One request at a time: each call sends one message and waits for the
//! answer with the same request id. Results that arrive meanwhile are kept
//! in a buffer and handed out by [`Client::next_result`] and
//! [`Client::wait`], so none is lost.

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
    /// that already ended follow at once.
    pub async fn watch(&mut self, task_ids: &[TaskId]) -> Result<(), ClientError> {
        let request_id = self.next_request_id();
        self.followed.extend(task_ids.iter().copied());
        self.request(
            FromClient::Watch {
                request_id,
                task_ids: task_ids.to_vec(),
            },
            request_id,
            Expect::Watching,
        )
        .await?;
        Ok(())
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
            Answer::Count(_) => Err(ClientError::Unexpected(
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
    /// waiting as long as it takes; wrap it in `tokio::time::timeout` to
    /// bound it.
    pub async fn next_result(&mut self) -> Result<TaskResult, ClientError> {
        loop {
            if let Some(result) = self.buffered.pop_front() {
                return Ok(result);
            }
            let incoming = self.connection.recv().await;
            self.handle_unsolicited(incoming)?;
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
            let incoming = match tokio::time::timeout_at(deadline, self.connection.recv()).await {
                Ok(incoming) => incoming,
                Err(_) => {
                    return Err(ClientError::Timeout {
                        what: format!("{} of {} results", wanted.len() - found.len(), wanted.len()),
                        after: timeout,
                    })
                }
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
                )
                | (
                    Expect::Watching,
                    Incoming::Message(ToClient::Watching {
                        request_id: id,
                        n_tasks,
                    }),
                ) if id == request_id => Answer::Count(n_tasks),
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
                    continue;
                }
            };
            return Ok(answer);
        }
    }

    /// Handles anything that is not the answer being waited for: results are
    /// buffered, the rest logged, fatal events turned into errors.
    fn handle_unsolicited(&mut self, incoming: Incoming) -> Result<(), ClientError> {
        match incoming {
            Incoming::Message(ToClient::Results { results }) => {
                tracing::debug!(n_results = results.len(), "results");
                self.buffered.extend(results);
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
            Incoming::Connected | Incoming::ConnectRetried => {}
            Incoming::Disconnected => {
                return Err(ClientError::ConnectionLost {
                    url: self.connection.url().to_owned(),
                    reason: "the interchange closed the connection (did it stop?)".to_owned(),
                })
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
