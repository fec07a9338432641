//! rhtex transport: everything that touches ZeroMQ.
//!
//! - [`keys`]: CURVE key pairs in files (`rhtex keygen`), loading them, and
//!   the permission check on the key directory.
//! - [`sockets`]: sockets configured the rhtex way (LINGER 0, IPv6, CURVE
//!   roles, ROUTER_MANDATORY), and the check that libzmq has CURVE.
//! - [`zap`]: the ZAP handler that admits only known client keys.
//! - [`link`]: a DEALER on its own thread, bridged to tokio by channels, for
//!   daemons whose shell is async (the pool-manager).
//!
//! The daemons' cores never see this crate: their shells turn frames into
//! decoded messages and back.

pub mod keys;
pub mod link;
pub mod sockets;
pub mod zap;

pub use keys::{keygen, ClientKeys, KeyError, KeyPair, ServerKeys};
pub use link::{Link, LinkEvent, LinkSender};
pub use sockets::{ClientSecurity, ServerSecurity, TransportError};
pub use zap::ZapHandler;

/// Re-exported so that daemon transport modules name one ZeroMQ crate.
pub use zmq;
