//! The benchmark client: submits tasks in batches over one connection and
//! times each task from the send of its batch to the arrival of its result.
//!
//! Task ids carry a sequence number in their low 64 bits, so that a result
//! finds its send time without a map look-up.

use crate::net::ClientSocket;
use anyhow::{bail, Context, Result};
use protocol::{
    Command, FromClient, Reply, StatusReport, TaskId, TaskState, TaskSubmission, ToClient,
    PROTOCOL_VERSION, RHTEX_VERSION,
};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use transport::ClientSecurity;

/// A connected client and what it has seen.
#[derive(Debug)]
pub struct BenchClient {
    socket: ClientSocket,
    /// High 64 bits of every task id of this client.
    nonce: u64,
    next_request_id: u64,
    next_seq: u64,
    /// The batch of each task, by sequence number.
    batch_of: Vec<u32>,
    n_encoded_batches: u32,
    /// When each batch was sent.
    sent_at: Vec<Instant>,
    pub n_sent: u64,
    pub n_batches_acked: u64,
    pub n_accepted: u64,
    pub n_results: u64,
    pub n_failed: u64,
    /// Submit-to-result time of every result, in microseconds.
    pub latencies_us: Vec<u32>,
    pub first_result_at: Option<Instant>,
    pub last_result_at: Option<Instant>,
    replies: Vec<(u64, Reply)>,
}

impl BenchClient {
    /// Connects and completes the handshake within `timeout`.
    pub fn connect(url: &str, security: &ClientSecurity, timeout: Duration) -> Result<Self> {
        let socket = ClientSocket::connect(url, security)?;
        socket.send(&FromClient::Hello {
            protocol_version: PROTOCOL_VERSION,
            client_version: format!("rhtex-bench {RHTEX_VERSION}"),
        })?;
        match socket.recv(timeout)? {
            Some(ToClient::Welcome { .. }) => {}
            Some(other) => bail!("expected welcome from the interchange, got {other:?}"),
            None => bail!("no welcome from the interchange at {url} within {timeout:?}"),
        }
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos() as u64);
        Ok(Self {
            socket,
            nonce,
            next_request_id: 1,
            next_seq: 0,
            batch_of: Vec::new(),
            n_encoded_batches: 0,
            sent_at: Vec::new(),
            n_sent: 0,
            n_batches_acked: 0,
            n_accepted: 0,
            n_results: 0,
            n_failed: 0,
            latencies_us: Vec::new(),
            first_result_at: None,
            last_result_at: None,
            replies: Vec::new(),
        })
    }

    /// Tasks sent whose result has not arrived.
    pub fn in_flight(&self) -> u64 {
        self.n_sent - self.n_results
    }

    /// Batches sent whose `submitted` has not arrived.
    pub fn unacked_batches(&self) -> u64 {
        self.sent_at.len() as u64 - self.n_batches_acked
    }

    /// Encodes the next batch of `n_tasks` tasks running `command`; send it
    /// with [`BenchClient::send_batch`], in the order encoded.
    pub fn encode_batch(&mut self, n_tasks: usize, command: &str) -> Vec<u8> {
        let batch = self.n_encoded_batches;
        self.n_encoded_batches += 1;
        let tasks: Vec<TaskSubmission> = (0..n_tasks)
            .map(|_| {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.batch_of.push(batch);
                TaskSubmission::new(
                    TaskId::from_u128((u128::from(self.nonce) << 64) | u128::from(seq)),
                    command,
                )
            })
            .collect();
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        protocol::encode(&FromClient::Submit { request_id, tasks })
    }

    /// Sends an encoded batch of `n_tasks` tasks.
    pub fn send_batch(&mut self, frame: &[u8], n_tasks: usize) -> Result<()> {
        self.sent_at.push(Instant::now());
        self.socket.send_frame(frame)?;
        self.n_sent += n_tasks as u64;
        Ok(())
    }

    /// Handles every message that arrives within `timeout` of the call (at
    /// least one wait, then whatever is already there). True if any came.
    pub fn pump(&mut self, timeout: Duration) -> Result<bool> {
        let Some(first) = self.socket.recv(timeout)? else {
            return Ok(false);
        };
        self.handle(first)?;
        for _ in 0..10_000 {
            match self.socket.try_recv()? {
                Some(message) => self.handle(message)?,
                None => break,
            }
        }
        Ok(true)
    }

    fn handle(&mut self, message: ToClient) -> Result<()> {
        match message {
            ToClient::Submitted { n_tasks, .. } => {
                self.n_batches_acked += 1;
                self.n_accepted += u64::from(n_tasks);
            }
            ToClient::Results { results } => {
                let now = Instant::now();
                self.first_result_at.get_or_insert(now);
                self.last_result_at = Some(now);
                for result in results {
                    self.n_results += 1;
                    if result.state != TaskState::Completed {
                        self.n_failed += 1;
                    }
                    let seq = (result.task_id.as_uuid().as_u128() & u128::from(u64::MAX)) as usize;
                    let sent = self
                        .batch_of
                        .get(seq)
                        .and_then(|batch| self.sent_at.get(*batch as usize));
                    if let Some(sent) = sent {
                        let micros = now.duration_since(*sent).as_micros();
                        self.latencies_us
                            .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    }
                }
            }
            ToClient::Reply { request_id, reply } => self.replies.push((request_id, reply)),
            ToClient::Error { message, .. } => bail!("the interchange reports an error: {message}"),
            other => bail!("unexpected message from the interchange: {other:?}"),
        }
        Ok(())
    }

    /// Sends a command and waits at most `timeout` for its reply (results
    /// that arrive meanwhile are handled as usual).
    pub fn command(&mut self, command: Command, timeout: Duration) -> Result<Reply> {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.socket.send(&FromClient::Command {
            request_id,
            command,
        })?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(position) = self.replies.iter().position(|(id, _)| *id == request_id) {
                return Ok(self.replies.swap_remove(position).1);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no reply to request {request_id} within {timeout:?}");
            }
            self.pump(left.min(Duration::from_millis(100)))?;
        }
    }

    pub fn status(&mut self) -> Result<StatusReport> {
        match self.command(Command::Status, Duration::from_secs(60))? {
            Reply::Status(report) => Ok(report),
            other => bail!("unexpected reply to status: {other:?}"),
        }
    }

    /// Fails unless the interchange reports `n_queued` queued tasks; the
    /// message starts with `who` ("the interchange reports").
    pub fn expect_queued(&mut self, n_queued: usize, who: &str) -> Result<()> {
        let status = self.status()?;
        if status.n_queued != n_queued as u64 {
            bail!(
                "{who} {} queued tasks, expected {n_queued}",
                status.n_queued
            );
        }
        Ok(())
    }

    /// Asks the interchange to stop; it tells its managers to stop too.
    pub fn shutdown_interchange(&mut self) -> Result<()> {
        self.command(Command::Shutdown, Duration::from_secs(30))
            .context("the interchange did not answer shutdown")?;
        Ok(())
    }

    /// Forgets the latencies and result times measured so far (after a
    /// warm-up); the counters go on.
    pub fn reset_measurements(&mut self) {
        self.latencies_us.clear();
        self.first_result_at = None;
        self.last_result_at = None;
    }

    /// Says goodbye (no answer).
    pub fn goodbye(&self) -> Result<()> {
        self.socket.send(&FromClient::Goodbye)
    }
}
