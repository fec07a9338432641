//! ZMQ_MAXMSGSIZE on the interchange's ROUTERs: a frame past the limit never
//! reaches the reader, and the socket goes on serving other peers.

use std::time::Duration;
use transport::sockets::{
    bind_router, connect_dealer, ClientSecurity, RouterOptions, ServerSecurity, SocketRole,
};
use transport::zmq;

const LIMIT: i64 = 4096;
const WAIT: Duration = Duration::from_secs(10);

fn receive(router: &zmq::Socket, timeout: Duration) -> Option<Vec<Vec<u8>>> {
    let mut items = [router.as_poll_item(zmq::POLLIN)];
    let n_ready = zmq::poll(&mut items, timeout.as_millis() as i64).expect("poll");
    (n_ready > 0).then(|| router.recv_multipart(0).expect("receive"))
}

#[test]
fn an_oversized_frame_is_dropped_and_other_peers_still_get_through() {
    let context = zmq::Context::new();
    let (router, endpoint) = bind_router(
        &context,
        "tcp://127.0.0.1:0",
        &ServerSecurity::Insecure,
        RouterOptions {
            role: SocketRole::Clients,
            max_message_bytes: LIMIT,
            heartbeat: None,
        },
    )
    .expect("bind");
    let big = connect_dealer(&context, &endpoint, &ClientSecurity::Insecure, None)
        .expect("connect the big sender");
    big.send(vec![0x55; LIMIT as usize + 1], 0).expect("send");
    let small = connect_dealer(&context, &endpoint, &ClientSecurity::Insecure, None)
        .expect("connect the small sender");
    small.send(&b"hello"[..], 0).expect("send");
    let exact = connect_dealer(&context, &endpoint, &ClientSecurity::Insecure, None)
        .expect("connect the sender at the limit");
    exact.send(vec![0x66; LIMIT as usize], 0).expect("send");
    // The small frame and the one exactly at the limit arrive; the big
    // one, sent first, never does.
    let (mut got_small, mut got_exact) = (false, false);
    while !(got_small && got_exact) {
        let frames = receive(&router, WAIT).expect("the frames within the limit arrive");
        let body = frames.last().expect("a routing id and a body");
        assert!(
            body.len() <= LIMIT as usize,
            "a frame of {} bytes got through",
            body.len()
        );
        got_small |= body.as_slice() == b"hello";
        got_exact |= body.len() == LIMIT as usize;
    }
}
