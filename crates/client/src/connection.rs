//! The client's link to the interchange: a [`transport::MessageLink`]
//! sending [`FromClient`] and receiving [`ToClient`], with its errors in the
//! client's terms. The only module of this crate that touches ZeroMQ.

use crate::error::ClientError;
use protocol::{FromClient, ToClient};
use transport::{ClientSecurity, MessageLink, TransportError};

/// What arrives on a connection.
pub type Incoming = transport::Incoming<ToClient>;

/// A DEALER connected to the interchange's client socket.
#[derive(Debug)]
pub struct Connection {
    link: MessageLink<FromClient, ToClient>,
}

impl Connection {
    /// Starts connecting to `url`; the connection completes in the background.
    pub fn open(url: &str, security: &ClientSecurity) -> Result<Self, ClientError> {
        let link = MessageLink::connect(url, security, None).map_err(transport_error(url))?;
        Ok(Self { link })
    }

    pub fn url(&self) -> &str {
        self.link.url()
    }

    /// Queues one message for the interchange.
    pub fn send(&self, message: &FromClient) -> Result<(), ClientError> {
        self.link
            .send(message)
            .map_err(transport_error(self.link.url()))
    }

    /// The next event; `Failed` once the link thread is gone.
    pub async fn recv(&mut self) -> Incoming {
        self.link
            .recv()
            .await
            .unwrap_or_else(|| Incoming::Failed("the link thread stopped".to_owned()))
    }

    /// Closes the link, giving queued messages `flush_ms` to leave.
    pub fn close(self, flush_ms: u32) {
        self.link.close(flush_ms);
    }
}

fn transport_error(url: &str) -> impl FnOnce(TransportError) -> ClientError + '_ {
    move |source| ClientError::Transport {
        url: url.to_owned(),
        source,
    }
}
