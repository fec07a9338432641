//! Sockets configured the rhtex way.
//!
//! Every socket: LINGER 0 (a dropped socket never blocks the context), IPv6
//! on, high-water marks large enough for batches. The interchange is the
//! CURVE server on all its sockets; pool-managers and clients are CURVE
//! clients that hold the server's public key.

pub use crate::security::{ClientSecurity, ServerSecurity};
pub use crate::zap::SocketRole;

/// High-water mark (messages) on every socket. Large, because a full queue
/// would drop (DEALER) or refuse (ROUTER_MANDATORY) messages; memory is
/// bounded by what peers actually send.
const HIGH_WATER_MARK: i32 = 1_000_000;

/// The largest message a DEALER (a pool-manager's or a client's) takes
/// from the interchange: 2 GiB. What the interchange sends is bounded by
/// its own limits (a batch of tasks by the queued input budget, results by
/// the finished-results memory bound and the manager socket's message
/// size), well below this with the defaults; a larger message makes
/// libzmq drop the connection.
pub const DEALER_MAX_MESSAGE_BYTES: i64 = 2 * 1024 * 1024 * 1024;

/// Failures to set up ZeroMQ sockets.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "this libzmq has no CURVE support, so encryption cannot be turned on; \
         link rhtex against a libzmq built with libsodium (Debian: apt-get install libzmq3-dev) \
         or run with --insecure on a trusted network"
    )]
    NoCurve,
    /// Binding (`bind`) or connecting (`connect to`) failed.
    #[error("cannot {action} {endpoint}: {source}")]
    Endpoint {
        action: &'static str,
        endpoint: String,
        source: zmq::Error,
    },
    #[error("cannot {what}: {source}")]
    Zmq {
        what: &'static str,
        source: zmq::Error,
    },
    /// The CURVE keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
}

pub(crate) fn zmq_error(what: &'static str) -> impl FnOnce(zmq::Error) -> TransportError {
    move |source| TransportError::Zmq { what, source }
}

/// Binds `socket` to `endpoint`.
pub(crate) fn bind(socket: &zmq::Socket, endpoint: &str) -> Result<(), TransportError> {
    socket
        .bind(endpoint)
        .map_err(endpoint_error("bind", endpoint))
}

/// Connects `socket` to `endpoint`.
pub(crate) fn connect(socket: &zmq::Socket, endpoint: &str) -> Result<(), TransportError> {
    socket
        .connect(endpoint)
        .map_err(endpoint_error("connect to", endpoint))
}

fn endpoint_error(
    action: &'static str,
    endpoint: &str,
) -> impl FnOnce(zmq::Error) -> TransportError {
    let endpoint = endpoint.to_owned();
    move |source| TransportError::Endpoint {
        action,
        endpoint,
        source,
    }
}

/// Fails with a clear message when libzmq was built without CURVE.
pub fn check_curve() -> Result<(), TransportError> {
    if zmq::has("curve") == Some(true) {
        Ok(())
    } else {
        Err(TransportError::NoCurve)
    }
}

/// The libzmq version, as "4.3.4".
pub fn libzmq_version() -> String {
    let (major, minor, patch) = zmq::version();
    format!("{major}.{minor}.{patch}")
}

/// A new socket of `kind` with the options every rhtex socket has.
fn new_socket(
    context: &zmq::Context,
    kind: zmq::SocketType,
    what: &'static str,
) -> Result<zmq::Socket, TransportError> {
    let socket = context.socket(kind).map_err(zmq_error(what))?;
    socket.set_linger(0).map_err(zmq_error("set LINGER"))?;
    socket.set_ipv6(true).map_err(zmq_error("set IPV6"))?;
    socket
        .set_sndhwm(HIGH_WATER_MARK)
        .map_err(zmq_error("set SNDHWM"))?;
    socket
        .set_rcvhwm(HIGH_WATER_MARK)
        .map_err(zmq_error("set RCVHWM"))?;
    Ok(socket)
}

/// How the interchange's ROUTER for one kind of peer is set up.
#[derive(Clone, Copy, Debug)]
pub struct RouterOptions {
    /// Which peers it is for: with CURVE, the ZAP handler admits only the
    /// keys of this role.
    pub role: SocketRole,
    /// The largest frame delivered (ZMQ_MAXMSGSIZE); a larger one drops
    /// the connection that sent it.
    pub max_message_bytes: i64,
    /// ZMTP heartbeats: a PING this often, and a connection that answers
    /// nothing for the timeout is closed (its routing id is free again).
    pub heartbeat: Option<(std::time::Duration, std::time::Duration)>,
}

/// A ROUTER bound to `endpoint`, as CURVE server unless insecure. Returns
/// the socket and the endpoint actually bound (with the real port when the
/// requested port was 0, and IPv4 addresses in their plain form).
///
/// No ROUTER_HANDOVER: a connection that claims the routing id of a
/// connected peer is refused by libzmq, and the connected peer is not
/// disturbed (a pool-manager's routing id is its manager id, which
/// `status` shows).
///
/// With CURVE, peers are admitted only if a [`crate::ZapHandler`] in the
/// same context says so (for the ZAP domain of `options.role`): bind the
/// handler before this socket.
pub fn bind_router(
    context: &zmq::Context,
    endpoint: &str,
    security: &ServerSecurity,
    options: RouterOptions,
) -> Result<(zmq::Socket, String), TransportError> {
    let socket = new_socket(context, zmq::ROUTER, "create a ROUTER socket")?;
    socket
        .set_maxmsgsize(options.max_message_bytes)
        .map_err(zmq_error("set MAXMSGSIZE"))?;
    socket
        .set_router_mandatory(true)
        .map_err(zmq_error("set ROUTER_MANDATORY"))?;
    if let Some((interval, timeout)) = options.heartbeat {
        let millis = |duration: std::time::Duration| {
            i32::try_from(duration.as_millis())
                .unwrap_or(i32::MAX)
                .max(1)
        };
        socket
            .set_heartbeat_ivl(millis(interval))
            .map_err(zmq_error("set HEARTBEAT_IVL"))?;
        socket
            .set_heartbeat_timeout(millis(timeout))
            .map_err(zmq_error("set HEARTBEAT_TIMEOUT"))?;
    }
    if let ServerSecurity::Curve(keys) = security {
        socket
            .set_curve_server(true)
            .map_err(zmq_error("enable CURVE server"))?;
        socket
            .set_curve_secretkey(&keys.server.secret)
            .map_err(zmq_error("set the CURVE secret key"))?;
        socket
            .set_zap_domain(options.role.zap_domain())
            .map_err(zmq_error("set the ZAP domain"))?;
    }
    bind(&socket, endpoint)?;
    let bound = socket
        .get_last_endpoint()
        .map_err(zmq_error("read the bound endpoint"))?
        .unwrap_or_else(|raw| String::from_utf8_lossy(&raw).into_owned());
    Ok((socket, plain_ipv4(bound)))
}

/// With IPv6 on, libzmq reports an IPv4 bind as `tcp://[::ffff:1.2.3.4]:5`;
/// peers without IPv6 need the plain `tcp://1.2.3.4:5`.
fn plain_ipv4(endpoint: String) -> String {
    let Some(rest) = endpoint.strip_prefix("tcp://[::ffff:") else {
        return endpoint;
    };
    match rest.split_once(']') {
        Some((address, port)) if address.parse::<std::net::Ipv4Addr>().is_ok() => {
            format!("tcp://{address}{port}")
        }
        _ => endpoint,
    }
}

/// A DEALER connected to `endpoint`, as CURVE client unless insecure.
pub fn connect_dealer(
    context: &zmq::Context,
    endpoint: &str,
    security: &ClientSecurity,
    identity: Option<&[u8]>,
) -> Result<zmq::Socket, TransportError> {
    let socket = new_socket(context, zmq::DEALER, "create a DEALER socket")?;
    socket
        .set_maxmsgsize(DEALER_MAX_MESSAGE_BYTES)
        .map_err(zmq_error("set MAXMSGSIZE"))?;
    if let Some(identity) = identity {
        socket
            .set_identity(identity)
            .map_err(zmq_error("set the routing id"))?;
    }
    if let ClientSecurity::Curve(keys) = security {
        socket
            .set_curve_serverkey(&keys.server_public)
            .map_err(zmq_error("set the CURVE server key"))?;
        socket
            .set_curve_publickey(&keys.client.public)
            .map_err(zmq_error("set the CURVE public key"))?;
        socket
            .set_curve_secretkey(&keys.client.secret)
            .map_err(zmq_error("set the CURVE secret key"))?;
    }
    connect(&socket, endpoint)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::plain_ipv4;

    #[test]
    fn ipv4_mapped_endpoints_are_shown_plain() {
        let plain = |text: &str| plain_ipv4(text.to_owned());
        assert_eq!(
            plain("tcp://[::ffff:127.0.0.1]:4000"),
            "tcp://127.0.0.1:4000"
        );
        assert_eq!(plain("tcp://[::ffff:0.0.0.0]:1"), "tcp://0.0.0.0:1");
        assert_eq!(plain("tcp://[::1]:4000"), "tcp://[::1]:4000");
        assert_eq!(plain("ipc:///tmp/x"), "ipc:///tmp/x");
    }
}
