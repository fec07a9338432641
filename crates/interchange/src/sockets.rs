//! The interchange's sockets: the client ROUTER, the manager ROUTER and,
//! with CURVE, the ZAP handler. The only ZeroMQ code in this crate.
//!
//! With CURVE, the client socket admits client identities only and the
//! manager socket the manager identity only (each has its own ZAP domain),
//! and every message arrives with the identity its sender proved (its
//! `User-Id` property), which becomes part of its [`PeerId`].
//! [`Sockets::set_admitted`] changes the admitted keys (on SIGHUP).
//!
//! Frames go in and out as bytes with the peer; the daemon decodes them
//! with `protocol`'s codec before the core sees them. Sends use
//! ROUTER_MANDATORY, so a send to a peer that is gone comes back as
//! [`SendOutcome::Unreachable`] instead of vanishing.

use interchange_core::{Identity, PeerId};
use std::os::fd::RawFd;
use std::time::Duration;
use transport::sockets::{bind_router, RouterOptions, ServerSecurity};
use transport::zmq;
use transport::{Admitted, SocketRole, TransportError, ZapHandler};

/// Which sockets became readable in [`Sockets::wait`].
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    pub client: bool,
    pub manager: bool,
    pub zap: bool,
    /// Which of the extra file descriptors (the signal pipe, the
    /// provider's wake-up socket) are readable, in the order given.
    pub extra_fds: Vec<bool>,
}

/// What happened to one send.
#[derive(Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    /// The peer is not connected (EHOSTUNREACH).
    Unreachable,
    /// The peer's queue is full (EAGAIN); the message was dropped.
    QueueFull,
}

/// A received message's body, as libzmq holds it (not copied).
#[derive(Debug)]
pub struct Frame(zmq::Message);

impl std::ops::Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// The bound sockets.
pub struct Sockets {
    client: zmq::Socket,
    manager: zmq::Socket,
    zap: Option<ZapHandler>,
    /// Whether peers authenticate (CURVE): then a message without a
    /// `User-Id` is dropped.
    authenticated: bool,
    pub client_url: String,
    pub manager_url: String,
    // Declared last: sockets must close before the context.
    _context: zmq::Context,
}

impl std::fmt::Debug for Sockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sockets")
            .field("client_url", &self.client_url)
            .field("manager_url", &self.manager_url)
            .field("zap", &self.zap)
            .finish()
    }
}

fn zmq_error(what: &'static str) -> impl FnOnce(zmq::Error) -> TransportError {
    move |source| TransportError::Zmq { what, source }
}

impl Sockets {
    /// Binds the ZAP handler (with CURVE), then both ROUTERs, each taking
    /// frames of at most `max_message_bytes` (a larger one drops its
    /// connection and never reaches the core). The manager socket has ZMTP
    /// heartbeats: a connection silent for `manager_timeout` is closed, so
    /// that a manager whose old connection died unseen can connect again
    /// under its id (there is no ROUTER_HANDOVER).
    pub fn bind(
        client_listen: &str,
        manager_listen: &str,
        security: &ServerSecurity,
        max_message_bytes: u64,
        manager_timeout: Duration,
    ) -> Result<Self, TransportError> {
        let max_message_bytes = i64::try_from(max_message_bytes).unwrap_or(i64::MAX);
        let context = zmq::Context::new();
        let zap = match security {
            ServerSecurity::Curve(keys) => Some(ZapHandler::bind(&context, Admitted::from(keys))?),
            ServerSecurity::Insecure => None,
        };
        let (client, client_url) = bind_router(
            &context,
            client_listen,
            security,
            RouterOptions {
                role: SocketRole::Clients,
                max_message_bytes,
                heartbeat: None,
            },
        )?;
        let (manager, manager_url) = bind_router(
            &context,
            manager_listen,
            security,
            RouterOptions {
                role: SocketRole::Managers,
                max_message_bytes,
                heartbeat: Some((manager_timeout / 4, manager_timeout)),
            },
        )?;
        Ok(Self {
            client,
            manager,
            zap,
            authenticated: matches!(security, ServerSecurity::Curve(_)),
            client_url,
            manager_url,
            _context: context,
        })
    }

    /// From now on, admits these keys; connections already admitted stay.
    pub fn set_admitted(&mut self, admitted: Admitted) {
        if let Some(zap) = &mut self.zap {
            zap.set_admitted(admitted);
        }
    }

    /// Waits until a socket or one of `extra_fds` is readable or
    /// `timeout_ms` passes (-1: no timeout).
    pub fn wait(&self, timeout_ms: i64, extra_fds: &[RawFd]) -> Result<Readiness, TransportError> {
        let mut items = vec![
            self.client.as_poll_item(zmq::POLLIN),
            self.manager.as_poll_item(zmq::POLLIN),
        ];
        if let Some(zap) = &self.zap {
            items.push(zap.socket().as_poll_item(zmq::POLLIN));
        }
        let first_extra = items.len();
        items.extend(
            extra_fds
                .iter()
                .map(|fd| zmq::PollItem::from_fd(*fd, zmq::POLLIN)),
        );
        match zmq::poll(&mut items, timeout_ms) {
            Ok(_) => {}
            // A signal interrupted the wait: the caller looks at the pipes.
            Err(zmq::Error::EINTR) => {
                return Ok(Readiness {
                    extra_fds: vec![true; extra_fds.len()],
                    ..Readiness::default()
                })
            }
            Err(source) => return Err(zmq_error("poll the sockets")(source)),
        }
        Ok(Readiness {
            client: items[0].is_readable(),
            manager: items[1].is_readable(),
            zap: self.zap.is_some() && items[2].is_readable(),
            extra_fds: items[first_extra..]
                .iter()
                .map(|item| item.is_readable())
                .collect(),
        })
    }

    /// Answers pending ZAP requests.
    pub fn handle_zap(&mut self) -> Result<(), TransportError> {
        match &mut self.zap {
            Some(zap) => zap.handle_pending(),
            None => Ok(()),
        }
    }

    /// One message from a client, if one is waiting.
    pub fn recv_client(&self) -> Result<Option<(PeerId, Frame)>, TransportError> {
        recv(&self.client, self.authenticated)
    }

    /// One message from a manager, if one is waiting.
    pub fn recv_manager(&self) -> Result<Option<(PeerId, Frame)>, TransportError> {
        recv(&self.manager, self.authenticated)
    }

    /// Gives queued messages up to `linger` to leave when the sockets
    /// close (they are created with LINGER 0), so that the last replies of a
    /// shutdown reach their peers.
    pub fn close(self, linger: std::time::Duration) {
        let millis = i32::try_from(linger.as_millis()).unwrap_or(i32::MAX);
        for socket in [&self.client, &self.manager] {
            if let Err(error) = socket.set_linger(millis) {
                tracing::debug!(%error, "cannot set LINGER before closing");
            }
        }
    }

    pub fn send_client(&self, peer: &PeerId, frame: &[u8]) -> Result<SendOutcome, TransportError> {
        send(&self.client, peer, frame)
    }

    pub fn send_manager(&self, peer: &PeerId, frame: &[u8]) -> Result<SendOutcome, TransportError> {
        send(&self.manager, peer, frame)
    }
}

/// One message: its routing id, then its frames. The identity is the
/// `User-Id` of the last frame (libzmq sets it from the ZAP handler's
/// answer); with authentication on, a message without one is dropped.
fn recv(
    socket: &zmq::Socket,
    authenticated: bool,
) -> Result<Option<(PeerId, Frame)>, TransportError> {
    loop {
        let routing_id = match socket.recv_msg(zmq::DONTWAIT) {
            Ok(message) => message,
            Err(zmq::Error::EAGAIN) => return Ok(None),
            Err(source) => return Err(zmq_error("receive a message")(source)),
        };
        let mut more = routing_id.get_more();
        let mut parts = Vec::new();
        while more {
            let part = socket.recv_msg(0).map_err(zmq_error("receive a message"))?;
            more = part.get_more();
            parts.push(part);
        }
        let identity = match parts.last_mut().and_then(|part| part.gets("User-Id")) {
            Some(name) if authenticated && !name.is_empty() => Identity::Key(name.to_owned()),
            _ if authenticated => {
                tracing::warn!("message without an authenticated identity; dropped");
                continue;
            }
            _ => Identity::Unauthenticated,
        };
        let peer = PeerId::new(routing_id.to_vec(), identity);
        // One frame per message; anything else is handed on as an empty
        // frame, which the core counts as undecodable. The frame is handed
        // on as libzmq's message, not copied (a submit can be megabytes).
        let payload = match (parts.pop(), parts.is_empty()) {
            (Some(body), true) => body,
            _ => zmq::Message::new(),
        };
        return Ok(Some((peer, Frame(payload))));
    }
}

fn send(socket: &zmq::Socket, peer: &PeerId, frame: &[u8]) -> Result<SendOutcome, TransportError> {
    let parts: [&[u8]; 2] = [&peer.routing_id, frame];
    match socket.send_multipart(parts, zmq::DONTWAIT) {
        Ok(()) => Ok(SendOutcome::Sent),
        Err(zmq::Error::EHOSTUNREACH) => Ok(SendOutcome::Unreachable),
        Err(zmq::Error::EAGAIN) => Ok(SendOutcome::QueueFull),
        Err(source) => Err(zmq_error("send a message")(source)),
    }
}
