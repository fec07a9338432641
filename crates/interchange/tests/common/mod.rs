//! What the interchange's tests of the real binary share: a raw protocol
//! client on a DEALER socket.

use protocol::{Command, FromClient, TaskSubmission, ToClient, PROTOCOL_VERSION};
use std::time::Duration;
use transport::sockets::{connect_dealer, ClientSecurity};
use transport::zmq;

/// A raw protocol client on a DEALER socket, welcomed by the interchange.
pub struct RawClient {
    socket: zmq::Socket,
    _context: zmq::Context,
    next_request: u64,
}

impl RawClient {
    /// Connects to `url` and says hello as `client_version`; panics unless
    /// the interchange welcomes it within `timeout`.
    pub fn connect(
        url: &str,
        security: &ClientSecurity,
        client_version: &str,
        timeout: Duration,
    ) -> Self {
        let context = zmq::Context::new();
        let socket = connect_dealer(&context, url, security, None).expect("connect a DEALER");
        let client = Self {
            socket,
            _context: context,
            next_request: 1,
        };
        client.send(&FromClient::Hello {
            protocol_version: PROTOCOL_VERSION,
            client_version: client_version.to_owned(),
        });
        match client.receive(timeout) {
            Some(ToClient::Welcome { .. }) => {}
            other => panic!("expected welcome, got {other:?}"),
        }
        client
    }

    /// Sends a `submit` of `tasks`; gives its request id.
    pub fn send_submit(&mut self, tasks: Vec<TaskSubmission>) -> u64 {
        let request_id = self.next_request_id();
        self.send(&FromClient::Submit { request_id, tasks });
        request_id
    }

    /// Sends `command`; gives its request id.
    pub fn send_command(&mut self, command: Command) -> u64 {
        let request_id = self.next_request_id();
        self.send(&FromClient::Command {
            request_id,
            command,
        });
        request_id
    }

    /// A request id not used before on this client.
    fn next_request_id(&mut self) -> u64 {
        let request_id = self.next_request;
        self.next_request += 1;
        request_id
    }

    fn send(&self, message: &FromClient) {
        self.socket
            .send(protocol::encode(message), 0)
            .expect("send to the interchange");
    }

    /// The next message, if one comes within `timeout`.
    pub fn receive(&self, timeout: Duration) -> Option<ToClient> {
        let n_ready = self
            .socket
            .poll(zmq::POLLIN, timeout.as_millis() as i64)
            .expect("poll the DEALER");
        (n_ready == 1).then(|| {
            let frame = self.socket.recv_bytes(0).expect("receive");
            protocol::decode(&frame).expect("a valid message")
        })
    }
}
