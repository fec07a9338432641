//! A DEALER on a thread of its own, bridged to tokio.
//!
//! `zmq` sockets are blocking and not `Sync`, so an async daemon keeps its
//! DEALER on a dedicated thread that polls three sockets: the DEALER itself,
//! an `inproc` PULL that carries frames to send (fed by [`LinkSender`]), and
//! a socket monitor that reports connections and handshake failures (a CURVE
//! key the interchange refused, a security mismatch). Everything that
//! arrives is delivered as a [`LinkEvent`] on a tokio channel.

use crate::sockets::{bind, connect, connect_dealer, zmq_error, ClientSecurity, TransportError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use tokio::sync::mpsc;

static NEXT_LINK: AtomicU64 = AtomicU64::new(0);

const TAG_SEND: &[u8] = b"send";
const TAG_STOP: &[u8] = b"stop";

/// What the link thread reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// One frame from the peer.
    Message(Vec<u8>),
    /// The TCP (or IPC) connection is up and the security handshake passed.
    Connected,
    /// The connection dropped; ZeroMQ reconnects by itself.
    Disconnected,
    /// A connection attempt failed (nothing listens there, or the host is
    /// unreachable); ZeroMQ tries again by itself.
    ConnectRetried,
    /// The peer refused our handshake (unknown CURVE key, or one side
    /// encrypted and the other not). Retrying will not help.
    HandshakeFailed(String),
    /// The link thread hit an error it cannot recover from and stopped.
    Failed(String),
}

/// Starts links.
#[derive(Debug)]
pub struct Link;

/// The sending half of a link. Owned by one task (not `Sync`).
pub struct LinkSender {
    control: zmq::Socket,
    thread: Option<JoinHandle<()>>,
    endpoint: String,
}

impl std::fmt::Debug for LinkSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSender")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Link {
    /// Connects a DEALER to `endpoint` on a new thread. Frames from the peer
    /// and connection events arrive on the returned receiver.
    pub fn start(
        endpoint: &str,
        security: &ClientSecurity,
        identity: Option<&[u8]>,
    ) -> Result<(LinkSender, mpsc::UnboundedReceiver<LinkEvent>), TransportError> {
        let context = zmq::Context::new();
        let number = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
        let control_endpoint = format!("inproc://rhtex-link-control-{number}");
        let monitor_endpoint = format!("inproc://rhtex-link-monitor-{number}");

        let pull = context
            .socket(zmq::PULL)
            .map_err(zmq_error("create the link's control socket"))?;
        pull.set_linger(0).map_err(zmq_error("set LINGER"))?;
        bind(&pull, &control_endpoint)?;
        let control = context
            .socket(zmq::PUSH)
            .map_err(zmq_error("create the link's control socket"))?;
        control.set_linger(0).map_err(zmq_error("set LINGER"))?;
        control.set_sndhwm(0).map_err(zmq_error("set SNDHWM"))?;
        connect(&control, &control_endpoint)?;

        let dealer = connect_dealer(&context, endpoint, security, identity)?;
        let events = zmq::SocketEvent::CONNECTED as i32
            | zmq::SocketEvent::DISCONNECTED as i32
            | zmq::SocketEvent::CONNECT_RETRIED as i32
            | zmq::SocketEvent::HANDSHAKE_SUCCEEDED as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32;
        dealer
            .monitor(&monitor_endpoint, events)
            .map_err(zmq_error("monitor the DEALER socket"))?;
        let monitor = context
            .socket(zmq::PAIR)
            .map_err(zmq_error("create the monitor socket"))?;
        monitor.set_linger(0).map_err(zmq_error("set LINGER"))?;
        connect(&monitor, &monitor_endpoint)?;

        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let peer = endpoint.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("zmq-link-{number}"))
            .spawn(move || {
                let secure = !matches!(dealer.get_mechanism(), Ok(zmq::Mechanism::ZMQ_NULL));
                if let Err(error) = run(&dealer, &pull, &monitor, &events_tx, secure, &peer) {
                    let _ = events_tx.send(LinkEvent::Failed(error.to_string()));
                }
                // Keep the context alive until every socket of this thread is gone.
                drop((dealer, pull, monitor));
                drop(context);
            })
            .map_err(|_| TransportError::Zmq {
                what: "start the link thread",
                source: zmq::Error::EMFILE,
            })?;

        Ok((
            LinkSender {
                control,
                thread: Some(thread),
                endpoint: endpoint.to_owned(),
            },
            events_rx,
        ))
    }
}

impl LinkSender {
    /// Queues one frame for the peer. Never blocks: the queue to the link
    /// thread has no high-water mark, so it refuses a frame (EAGAIN) only
    /// when the link thread has ended (its events receiver was dropped), where
    /// a blocking send would wait for ever.
    pub fn send(&self, frame: &[u8]) -> Result<(), TransportError> {
        self.control
            .send_multipart([TAG_SEND, frame], zmq::DONTWAIT)
            .map_err(zmq_error("queue a frame on the link"))
    }

    /// Stops the link, giving queued frames up to `flush_ms` milliseconds
    /// to leave, and waits for the thread to end.
    pub fn close(mut self, flush_ms: u32) {
        let _ = self
            .control
            .send_multipart([TAG_STOP, &flush_ms.to_le_bytes()], zmq::DONTWAIT);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for LinkSender {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self
                .control
                .send_multipart([TAG_STOP, &0u32.to_le_bytes()], zmq::DONTWAIT);
            let _ = thread.join();
        }
    }
}

fn run(
    dealer: &zmq::Socket,
    control: &zmq::Socket,
    monitor: &zmq::Socket,
    events: &mpsc::UnboundedSender<LinkEvent>,
    secure: bool,
    peer: &str,
) -> Result<(), TransportError> {
    // Frames handed over by the sender that the DEALER has not taken yet.
    // A DEALER with no attached peer (say, after the interchange refused
    // our key) would block a plain send for ever, and with it this thread
    // and everyone waiting to stop it; so frames are sent without waiting,
    // and kept here while the DEALER cannot take them.
    let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
    loop {
        let dealer_interest = if pending.is_empty() {
            zmq::POLLIN
        } else {
            zmq::POLLIN | zmq::POLLOUT
        };
        let mut items = [
            dealer.as_poll_item(dealer_interest),
            control.as_poll_item(zmq::POLLIN),
            monitor.as_poll_item(zmq::POLLIN),
        ];
        zmq::poll(&mut items, -1).map_err(zmq_error("poll the link sockets"))?;
        let (dealer_ready, dealer_writable, control_ready, monitor_ready) = (
            items[0].is_readable(),
            items[0].is_writable(),
            items[1].is_readable(),
            items[2].is_readable(),
        );
        if dealer_writable {
            flush(dealer, &mut pending)?;
        }

        if dealer_ready {
            loop {
                match dealer.recv_bytes(zmq::DONTWAIT) {
                    Ok(frame) => {
                        if events.send(LinkEvent::Message(frame)).is_err() {
                            return Ok(());
                        }
                    }
                    Err(zmq::Error::EAGAIN) => break,
                    Err(source) => {
                        return Err(TransportError::Zmq {
                            what: "receive from the peer",
                            source,
                        })
                    }
                }
            }
        }

        if control_ready {
            loop {
                let frames = match control.recv_multipart(zmq::DONTWAIT) {
                    Ok(frames) => frames,
                    Err(zmq::Error::EAGAIN) => break,
                    Err(source) => {
                        return Err(TransportError::Zmq {
                            what: "receive from the link's control socket",
                            source,
                        })
                    }
                };
                match frames.first().map(Vec::as_slice) {
                    Some(TAG_SEND) => {
                        if let Some(frame) = frames.into_iter().nth(1) {
                            pending.push_back(frame);
                            flush(dealer, &mut pending)?;
                        }
                    }
                    Some(TAG_STOP) => {
                        // What the DEALER can still take leaves within the
                        // flush time; the rest is dropped.
                        flush(dealer, &mut pending)?;
                        let flush_ms = frames
                            .get(1)
                            .and_then(|raw| <[u8; 4]>::try_from(raw.as_slice()).ok())
                            .map(u32::from_le_bytes)
                            .unwrap_or(0);
                        let linger = i32::try_from(flush_ms).unwrap_or(i32::MAX);
                        dealer.set_linger(linger).map_err(zmq_error("set LINGER"))?;
                        return Ok(());
                    }
                    _ => {}
                }
            }
        }

        if monitor_ready {
            while let Ok(frames) = monitor.recv_multipart(zmq::DONTWAIT) {
                let Some(header) = frames.first().filter(|header| header.len() >= 6) else {
                    continue;
                };
                let event = u16::from_ne_bytes([header[0], header[1]]);
                let event = zmq::SocketEvent::from_raw(event);
                let report = match event {
                    zmq::SocketEvent::CONNECTED if !secure => Some(LinkEvent::Connected),
                    zmq::SocketEvent::HANDSHAKE_SUCCEEDED => Some(LinkEvent::Connected),
                    zmq::SocketEvent::DISCONNECTED => Some(LinkEvent::Disconnected),
                    zmq::SocketEvent::CONNECT_RETRIED => Some(LinkEvent::ConnectRetried),
                    zmq::SocketEvent::HANDSHAKE_FAILED_AUTH => Some(LinkEvent::HandshakeFailed(
                        format!(
                            "{peer} refused our CURVE key: the interchange does not admit it on \
                             this socket (not among its identities, or a key of the other role: \
                             pool-managers use manager.key_secret, clients client.key_secret or \
                             client-NAME.key_secret; an identity added with `rhtex keygen --client` \
                             is admitted after the interchange's SIGHUP or restart)"
                        ),
                    )),
                    zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL
                    | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL => {
                        Some(LinkEvent::HandshakeFailed(format!(
                            "security handshake with {peer} failed: check that both sides use the same \
                             key directory, or both run with --insecure"
                        )))
                    }
                    _ => None,
                };
                if let Some(report) = report {
                    if events.send(report).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Hands queued frames to the DEALER, in order, as long as it takes them
/// without blocking.
fn flush(dealer: &zmq::Socket, pending: &mut VecDeque<Vec<u8>>) -> Result<(), TransportError> {
    while let Some(frame) = pending.front() {
        match dealer.send(frame.as_slice(), zmq::DONTWAIT) {
            Ok(()) => {
                pending.pop_front();
            }
            Err(zmq::Error::EAGAIN) => break,
            Err(source) => {
                return Err(TransportError::Zmq {
                    what: "send to the peer",
                    source,
                })
            }
        }
    }
    Ok(())
}
