//! The benchmarks' only ZeroMQ code: a client DEALER and a group of
//! simulated managers' DEALERs, all speaking the real wire protocol (msgpack
//! frames from `protocol`) over real sockets, with CURVE unless insecure.

use anyhow::{bail, Context, Result};
use protocol::{FromClient, FromManager, ManagerId, ToClient, ToManager};
use std::path::Path;
use std::time::Duration;
use transport::sockets::connect_dealer;
use transport::{zmq, ClientSecurity, Security};

/// CURVE with a key directory made by `rhtex keygen`, or none.
pub fn security(keys_dir: Option<&Path>) -> Security {
    keys_dir.map_or(Security::Insecure, |dir| Security::Curve(dir.to_path_buf()))
}

/// The default client identity's keys of [`security`].
pub fn client_security(keys_dir: Option<&Path>) -> Result<ClientSecurity> {
    let loaded = match keys_dir {
        None => Ok(ClientSecurity::Insecure),
        Some(dir) => ClientSecurity::from_keys_dir(dir),
    };
    loaded.with_context(|| keys_context("client", keys_dir))
}

/// The manager identity's keys of [`security`], for simulated managers.
pub fn manager_security(keys_dir: Option<&Path>) -> Result<ClientSecurity> {
    security(keys_dir)
        .manager_security()
        .with_context(|| keys_context("manager", keys_dir))
}

fn keys_context(role: &str, keys_dir: Option<&Path>) -> String {
    match keys_dir {
        Some(dir) => format!("cannot load {role} keys from {}", dir.display()),
        None => "cannot set up an insecure connection".to_owned(),
    }
}

/// The next message on `socket` if one is waiting, decoded with `decode`;
/// `receiver` names the socket's owner in errors.
fn try_recv<M>(
    socket: &zmq::Socket,
    decode: fn(&[u8]) -> Result<M, protocol::DecodeError>,
    receiver: &str,
) -> Result<Option<M>> {
    match socket.recv_bytes(zmq::DONTWAIT) {
        Ok(frame) => decode(&frame)
            .map(Some)
            .with_context(|| format!("undecodable message to {receiver}")),
        Err(zmq::Error::EAGAIN) => Ok(None),
        Err(error) => Err(error).with_context(|| format!("{receiver} cannot receive")),
    }
}

fn millis(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
}

/// A client connection to the interchange's client socket.
pub struct ClientSocket {
    socket: zmq::Socket,
    // Declared last: the socket closes before its context.
    _context: zmq::Context,
}

impl std::fmt::Debug for ClientSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSocket").finish_non_exhaustive()
    }
}

impl ClientSocket {
    pub fn connect(url: &str, security: &ClientSecurity) -> Result<Self> {
        let context = zmq::Context::new();
        let socket = connect_dealer(&context, url, security, None)
            .with_context(|| format!("cannot connect a client to {url}"))?;
        Ok(Self {
            socket,
            _context: context,
        })
    }

    /// Sends an already encoded `FromClient` frame (blocking while the
    /// send queue is full).
    pub fn send_frame(&self, frame: &[u8]) -> Result<()> {
        self.socket
            .send(frame, 0)
            .context("cannot send to the interchange")
    }

    pub fn send(&self, message: &FromClient) -> Result<()> {
        self.send_frame(&protocol::encode(message))
    }

    /// The next message, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Result<Option<ToClient>> {
        if self
            .socket
            .poll(zmq::POLLIN, millis(timeout))
            .context("cannot poll the client socket")?
            == 0
        {
            return Ok(None);
        }
        self.try_recv()
    }

    /// The next message if one is waiting.
    pub fn try_recv(&self) -> Result<Option<ToClient>> {
        try_recv(&self.socket, protocol::decode::<ToClient>, "the client")
    }
}

/// The DEALERs of a group of simulated managers, one per manager, each with
/// the manager id as routing id (as the real pool-manager does).
pub struct ManagerSockets {
    sockets: Vec<zmq::Socket>,
    // Declared last: the sockets close before their context.
    _context: zmq::Context,
}

impl std::fmt::Debug for ManagerSockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerSockets")
            .field("n_sockets", &self.sockets.len())
            .finish()
    }
}

impl ManagerSockets {
    /// One context per group: libzmq allows about 1,000 sockets per context.
    pub fn connect(url: &str, security: &ClientSecurity, ids: &[ManagerId]) -> Result<Self> {
        if ids.len() > 1000 {
            bail!(
                "a group holds at most 1000 managers (libzmq's socket limit per context), got {}",
                ids.len()
            );
        }
        let context = zmq::Context::new();
        let mut sockets = Vec::with_capacity(ids.len());
        for id in ids {
            let identity = id.to_string();
            let socket = connect_dealer(&context, url, security, Some(identity.as_bytes()))
                .with_context(|| format!("cannot connect manager {id} to {url}"))?;
            sockets.push(socket);
        }
        Ok(Self {
            sockets,
            _context: context,
        })
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    pub fn send(&self, index: usize, message: &FromManager) -> Result<()> {
        let Some(socket) = self.sockets.get(index) else {
            bail!("no manager socket {index}");
        };
        socket
            .send(protocol::encode(message), 0)
            .context("a simulated manager cannot send")
    }

    /// Indices of the sockets with a message waiting, after waiting at most
    /// `timeout` for one.
    pub fn poll(&self, timeout: Duration) -> Result<Vec<usize>> {
        let mut items: Vec<zmq::PollItem> = self
            .sockets
            .iter()
            .map(|socket| socket.as_poll_item(zmq::POLLIN))
            .collect();
        match zmq::poll(&mut items, millis(timeout)) {
            Ok(_) | Err(zmq::Error::EINTR) => {}
            Err(error) => return Err(error).context("cannot poll the manager sockets"),
        }
        Ok(items
            .iter()
            .enumerate()
            .filter(|(_, item)| item.is_readable())
            .map(|(index, _)| index)
            .collect())
    }

    /// Gives messages still queued (goodbyes) up to `linger` to leave when
    /// the sockets close; they are created with LINGER 0.
    pub fn close(self, linger: Duration) {
        let millis = i32::try_from(linger.as_millis()).unwrap_or(i32::MAX);
        for socket in &self.sockets {
            let _ = socket.set_linger(millis);
        }
    }

    /// The next message on socket `index` if one is waiting.
    pub fn try_recv(&self, index: usize) -> Result<Option<ToManager>> {
        let Some(socket) = self.sockets.get(index) else {
            bail!("no manager socket {index}");
        };
        try_recv(socket, protocol::decode::<ToManager>, "a simulated manager")
    }
}
