//! The ZAP handler: admits a CURVE peer only if its public key is known
//! in the role of the socket it connects to, and names the identity.
//!
//! libzmq asks the handler (a REP socket bound to `inproc://zeromq.zap.01`
//! in the same context) about every CURVE handshake on a server socket,
//! with the socket's ZAP domain: [`SocketRole::Clients`] admits client
//! identities only, [`SocketRole::Managers`] the manager identity only.
//! An admitted peer's identity name is its ZAP user id, which libzmq puts
//! on every message from it (the `User-Id` message property), so that the
//! receiver knows who sent each message. The handler does not run a thread
//! of its own: the owner polls [`ZapHandler::socket`] with its other
//! sockets and calls [`ZapHandler::handle_pending`] when it is readable.

use crate::keys::{z85, ServerKeys};
use crate::sockets::{bind, zmq_error, TransportError};
use std::collections::HashMap;

const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";

/// Which peers a server socket is for; its ZAP domain says it to the
/// handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketRole {
    /// The client socket: client identities.
    Clients,
    /// The manager socket: the manager identity.
    Managers,
}

impl SocketRole {
    pub fn zap_domain(self) -> &'static str {
        match self {
            SocketRole::Clients => "rhtex-clients",
            SocketRole::Managers => "rhtex-managers",
        }
    }

    fn of_domain(domain: &[u8]) -> Option<Self> {
        [SocketRole::Clients, SocketRole::Managers]
            .into_iter()
            .find(|role| role.zap_domain().as_bytes() == domain)
    }

    fn describe(self) -> &'static str {
        match self {
            SocketRole::Clients => "client socket",
            SocketRole::Managers => "manager socket",
        }
    }
}

/// The public keys admitted in each role, with their identity names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    pub clients: HashMap<[u8; 32], String>,
    pub managers: HashMap<[u8; 32], String>,
}

impl From<&ServerKeys> for Admitted {
    fn from(keys: &ServerKeys) -> Self {
        Self {
            clients: keys.clients.clone(),
            managers: keys.managers.clone(),
        }
    }
}

impl Admitted {
    fn of_role(&self, role: SocketRole) -> &HashMap<[u8; 32], String> {
        match role {
            SocketRole::Clients => &self.clients,
            SocketRole::Managers => &self.managers,
        }
    }
}

/// Answers ZAP requests from the admitted keys.
pub struct ZapHandler {
    socket: zmq::Socket,
    admitted: Admitted,
    n_refused: u64,
}

impl std::fmt::Debug for ZapHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZapHandler")
            .field("n_clients", &self.admitted.clients.len())
            .field("n_managers", &self.admitted.managers.len())
            .field("n_refused", &self.n_refused)
            .finish()
    }
}

impl ZapHandler {
    /// Binds the handler in `context`. Do this before binding any CURVE
    /// server socket in the same context.
    pub fn bind(context: &zmq::Context, admitted: Admitted) -> Result<Self, TransportError> {
        let socket = context
            .socket(zmq::REP)
            .map_err(zmq_error("create the ZAP socket"))?;
        socket.set_linger(0).map_err(zmq_error("set LINGER"))?;
        bind(&socket, ZAP_ENDPOINT)?;
        Ok(Self {
            socket,
            admitted,
            n_refused: 0,
        })
    }

    /// From now on, admits these keys (handshakes already done stand).
    pub fn set_admitted(&mut self, admitted: Admitted) {
        self.admitted = admitted;
    }

    /// The socket to poll for readability.
    pub fn socket(&self) -> &zmq::Socket {
        &self.socket
    }

    /// Handshakes refused so far.
    pub fn n_refused(&self) -> u64 {
        self.n_refused
    }

    /// Answers every request waiting on the socket, without blocking.
    pub fn handle_pending(&mut self) -> Result<(), TransportError> {
        loop {
            let frames = match self.socket.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) => return Ok(()),
                Err(source) => {
                    return Err(TransportError::Zmq {
                        what: "receive a ZAP request",
                        source,
                    })
                }
            };
            let reply = self.answer(&frames);
            self.socket
                .send_multipart(reply, 0)
                .map_err(zmq_error("send a ZAP reply"))?;
        }
    }

    fn answer(&mut self, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        // Request: version, request id, domain, address, routing id,
        // mechanism, credentials...
        let version = frames.first().cloned().unwrap_or_default();
        let request_id = frames.get(1).cloned().unwrap_or_default();
        let (status, text, user) = match self.decide(frames) {
            Ok(user) => ("200", "OK".to_owned(), user),
            Err(text) => {
                self.n_refused += 1;
                ("400", text, String::new())
            }
        };
        let version = if version == b"1.0" {
            version
        } else {
            b"1.0".to_vec()
        };
        vec![
            version,
            request_id,
            status.as_bytes().to_vec(),
            text.into_bytes(),
            user.into_bytes(),
            Vec::new(),
        ]
    }

    /// The identity name to admit the peer as, or why it is refused.
    fn decide(&self, frames: &[Vec<u8>]) -> Result<String, String> {
        if frames.first().map(Vec::as_slice) != Some(b"1.0") {
            return Err("unsupported ZAP version".to_owned());
        }
        let address = frames
            .get(3)
            .map(|raw| String::from_utf8_lossy(raw).into_owned())
            .unwrap_or_default();
        let Some(role) = frames
            .get(2)
            .and_then(|domain| SocketRole::of_domain(domain))
        else {
            return Err("unknown ZAP domain".to_owned());
        };
        let mechanism = frames.get(5).map(Vec::as_slice).unwrap_or_default();
        if mechanism != b"CURVE" {
            return Err(format!(
                "mechanism {} refused",
                String::from_utf8_lossy(mechanism)
            ));
        }
        let Some(key) = frames
            .get(6)
            .and_then(|key| <[u8; 32]>::try_from(key.as_slice()).ok())
        else {
            return Err("malformed credentials".to_owned());
        };
        if let Some(name) = self.admitted.of_role(role).get(&key) {
            return Ok(name.clone());
        }
        let other = match role {
            SocketRole::Clients => SocketRole::Managers,
            SocketRole::Managers => SocketRole::Clients,
        };
        let why = match self.admitted.of_role(other).get(&key) {
            Some(name) => format!(
                "the key of identity {name:?} belongs on the {}",
                other.describe()
            ),
            None => "public key not in the key directory".to_owned(),
        };
        tracing::warn!(
            peer_address = %address,
            public_key = %z85(&key),
            socket = role.describe(),
            "refused a CURVE handshake: {why}"
        );
        Err(format!("refused on the {}: {why}", role.describe()))
    }
}
