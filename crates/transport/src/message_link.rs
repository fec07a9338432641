//! A [`Link`] that speaks messages: frames are encoded and decoded here with
//! `protocol::encode`/`decode`, so a daemon or client sees only the message
//! types of its direction (`MessageLink<FromManager, ToManager>` for a
//! pool-manager, `MessageLink<FromClient, ToClient>` for a client).

use crate::link::{Link, LinkEvent, LinkSender};
use crate::security::ClientSecurity;
use crate::sockets::{check_curve, TransportError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::marker::PhantomData;
use tokio::sync::mpsc;

/// What arrives on a [`MessageLink`], decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming<M> {
    Message(M),
    /// A frame that did not decode as `M`, with the decoder's reason (the
    /// caller logs it and goes on).
    Undecodable(String),
    /// Connected, and the security handshake passed.
    Connected,
    /// The connection dropped; ZeroMQ reconnects by itself.
    Disconnected,
    /// A connection attempt failed (nothing listens there); ZeroMQ tries
    /// again by itself.
    ConnectRetried,
    /// The peer refused the security handshake; retrying will not help.
    HandshakeFailed(String),
    /// The link thread stopped on an error.
    Failed(String),
}

/// A DEALER on its own thread that sends `Out` messages and receives `In`
/// messages.
pub struct MessageLink<Out, In> {
    url: String,
    sender: LinkSender,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    n_undecodable: u64,
    directions: PhantomData<fn(&Out) -> In>,
}

impl<Out, In> Debug for MessageLink<Out, In> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageLink")
            .field("url", &self.url)
            .field("n_undecodable", &self.n_undecodable)
            .finish()
    }
}

impl<Out: Serialize + Debug, In: DeserializeOwned + Debug> MessageLink<Out, In> {
    /// Starts connecting to `url` (the connection completes in the
    /// background), with `identity` as routing id if given. Fails at once
    /// if CURVE is asked for and this libzmq lacks it.
    pub fn connect(
        url: &str,
        security: &ClientSecurity,
        identity: Option<&[u8]>,
    ) -> Result<Self, TransportError> {
        if matches!(security, ClientSecurity::Curve(_)) {
            check_curve()?;
        }
        let (sender, events) = Link::start(url, security, identity)?;
        Ok(Self {
            url: url.to_owned(),
            sender,
            events,
            n_undecodable: 0,
            directions: PhantomData,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Frames so far that did not decode.
    pub fn n_undecodable(&self) -> u64 {
        self.n_undecodable
    }

    /// Queues one message for the peer; never blocks on the network.
    pub fn send(&self, message: &Out) -> Result<(), TransportError> {
        tracing::trace!(url = %self.url, ?message, "send");
        self.sender.send(&protocol::encode(message))
    }

    /// The next event; `None` once the link thread is gone.
    pub async fn recv(&mut self) -> Option<Incoming<In>> {
        Some(match self.events.recv().await? {
            LinkEvent::Message(frame) => match protocol::decode::<In>(&frame) {
                Ok(message) => {
                    tracing::trace!(url = %self.url, ?message, "receive");
                    Incoming::Message(message)
                }
                Err(error) => {
                    self.n_undecodable += 1;
                    Incoming::Undecodable(error.to_string())
                }
            },
            LinkEvent::Connected => Incoming::Connected,
            LinkEvent::Disconnected => Incoming::Disconnected,
            LinkEvent::ConnectRetried => Incoming::ConnectRetried,
            LinkEvent::HandshakeFailed(reason) => Incoming::HandshakeFailed(reason),
            LinkEvent::Failed(reason) => Incoming::Failed(reason),
        })
    }

    /// Closes the link, giving queued messages up to `flush_ms` to leave,
    /// and waits for its thread (blocking).
    pub fn close(self, flush_ms: u32) {
        self.sender.close(flush_ms);
    }
}
