//! rhtex transport: everything that touches ZeroMQ.
//!
//! - [`keys`]: CURVE key pairs in files (`rhtex keygen`), loading them, and
//!   the permission check on the key directory.
//! - [`sockets`]: sockets configured the rhtex way (LINGER 0, IPv6, CURVE
//!   roles, ROUTER_MANDATORY), and the check that libzmq has CURVE.
//! - [`zap`]: the ZAP handler that admits only known keys, each on the
//!   socket of its role (clients, managers), and names their identity.
//! - [`security`]: [`Security`], whether a connection is encrypted and with
//!   what (a key directory in a configuration, loaded keys on a socket).
//! - [`link`]: a DEALER on its own thread, bridged to tokio by channels, for
//!   async shells (the pool-manager, the client).
//! - [`message_link`]: [`MessageLink`], a link that sends and receives
//!   `protocol` messages of one direction.
//! - [`address`]: bound URLs made connectable.
//!
//! The daemons' cores never see this crate: their shells turn frames into
//! decoded messages and back.

pub mod address;
pub mod keys;
pub mod link;
pub mod message_link;
pub mod security;
pub mod sockets;
pub mod zap;

pub use address::connectable_url;
pub use keys::{keygen, keygen_client, ClientKeys, ClientName, KeyError, KeyPair, ServerKeys};
pub use link::{Link, LinkEvent, LinkSender};
pub use message_link::{Incoming, MessageLink};
pub use security::{ClientSecurity, Security, ServerSecurity};
pub use sockets::TransportError;
pub use zap::{Admitted, SocketRole, ZapHandler};

/// Re-exported so that daemon transport modules name one ZeroMQ crate.
pub use zmq;
