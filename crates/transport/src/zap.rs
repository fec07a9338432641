//! The ZAP handler: admits a CURVE peer only if its public key is known.
//!
//! libzmq asks the handler (a REP socket bound to `inproc://zeromq.zap.01`
//! in the same context) about every CURVE handshake on a server socket. The
//! handler does not run a thread of its own: the owner polls
//! [`ZapHandler::socket`] with its other sockets and calls
//! [`ZapHandler::handle_pending`] when it is readable.

use crate::keys::z85;
use crate::sockets::{bind, zmq_error, TransportError};
use std::collections::HashSet;

const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";

/// Answers ZAP requests from a set of admitted public keys.
pub struct ZapHandler {
    socket: zmq::Socket,
    allowed: HashSet<[u8; 32]>,
    n_refused: u64,
}

impl std::fmt::Debug for ZapHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZapHandler")
            .field("n_allowed", &self.allowed.len())
            .field("n_refused", &self.n_refused)
            .finish()
    }
}

impl ZapHandler {
    /// Binds the handler in `context`. Do this before binding any CURVE
    /// server socket in the same context.
    pub fn bind(
        context: &zmq::Context,
        allowed: HashSet<[u8; 32]>,
    ) -> Result<Self, TransportError> {
        let socket = context
            .socket(zmq::REP)
            .map_err(zmq_error("create the ZAP socket"))?;
        socket.set_linger(0).map_err(zmq_error("set LINGER"))?;
        bind(&socket, ZAP_ENDPOINT)?;
        Ok(Self {
            socket,
            allowed,
            n_refused: 0,
        })
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
        let address = frames
            .get(3)
            .map(|raw| String::from_utf8_lossy(raw).into_owned())
            .unwrap_or_default();
        let mechanism = frames.get(5).map(Vec::as_slice).unwrap_or_default();
        let (status, text, user) = if version != b"1.0" {
            ("400", "unsupported ZAP version".to_owned(), String::new())
        } else if mechanism != b"CURVE" {
            (
                "400",
                format!("mechanism {} refused", String::from_utf8_lossy(mechanism)),
                String::new(),
            )
        } else {
            match frames
                .get(6)
                .and_then(|key| <[u8; 32]>::try_from(key.as_slice()).ok())
            {
                Some(key) if self.allowed.contains(&key) => ("200", "OK".to_owned(), z85(&key)),
                Some(key) => {
                    self.n_refused += 1;
                    tracing::warn!(
                        peer_address = %address,
                        public_key = %z85(&key),
                        "refused a CURVE handshake: public key not in the key directory"
                    );
                    ("400", "unknown public key".to_owned(), String::new())
                }
                None => ("400", "malformed credentials".to_owned(), String::new()),
            }
        };
        vec![
            b"1.0".to_vec(),
            request_id,
            status.as_bytes().to_vec(),
            text.into_bytes(),
            user.into_bytes(),
            Vec::new(),
        ]
    }
}
