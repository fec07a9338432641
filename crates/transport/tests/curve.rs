//! CURVE with ZAP over real sockets: a known key gets through, an unknown
//! key is refused and the client is told why.

use std::time::Duration;
use transport::keys::{keygen, load_client_keys, load_server_keys, KeyPair};
use transport::sockets::{bind_router, check_curve};
use transport::{ClientKeys, ClientSecurity, Link, LinkEvent, ServerSecurity, ZapHandler};

const WAIT: Duration = Duration::from_secs(10);

/// Serves one ROUTER with ZAP on a thread: echoes every frame back, until
/// the test drops the returned stop sender.
fn start_echo_server(
    dir: &std::path::Path,
) -> (
    String,
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<u64>,
) {
    let keys = load_server_keys(dir).expect("server keys");
    let context = zmq::Context::new();
    let mut zap = ZapHandler::bind(&context, keys.allowed_clients.clone()).expect("zap");
    let (router, endpoint) = bind_router(
        &context,
        "tcp://127.0.0.1:0",
        &ServerSecurity::Curve(keys),
        1 << 20,
    )
    .expect("bind");
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || loop {
        if !matches!(
            stop_rx.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Empty)
        ) {
            return zap.n_refused();
        }
        let mut items = [
            router.as_poll_item(zmq::POLLIN),
            zap.socket().as_poll_item(zmq::POLLIN),
        ];
        zmq::poll(&mut items, 50).expect("poll");
        let (router_ready, zap_ready) = (items[0].is_readable(), items[1].is_readable());
        if zap_ready {
            zap.handle_pending().expect("zap");
        }
        if router_ready {
            let frames = router.recv_multipart(0).expect("recv");
            router.send_multipart(frames, 0).expect("send");
        }
    });
    (endpoint, stop_tx, thread)
}

async fn next_event(events: &mut tokio::sync::mpsc::UnboundedReceiver<LinkEvent>) -> LinkEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("event within timeout")
        .expect("link open")
}

/// A link with a key the server does not know, once the server has refused
/// it (and told the link why), with its events (a link whose events are
/// dropped ends its thread at its next event).
async fn refused_link(
    dir: &std::path::Path,
    endpoint: &str,
) -> (
    transport::LinkSender,
    tokio::sync::mpsc::UnboundedReceiver<LinkEvent>,
) {
    let stranger = ClientKeys {
        server_public: load_client_keys(dir).expect("keys").server_public,
        client: KeyPair::generate().expect("pair"),
    };
    let (sender, mut events) =
        Link::start(endpoint, &ClientSecurity::Curve(stranger), None).expect("link");
    sender.send(b"ping").expect("send");
    loop {
        match next_event(&mut events).await {
            LinkEvent::HandshakeFailed(reason) => {
                assert!(reason.contains("refused our CURVE key"), "{reason}");
                return (sender, events);
            }
            LinkEvent::Disconnected => {}
            other => panic!("a stranger must not get through, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn known_key_is_admitted_and_unknown_key_is_refused_and_stops() {
    check_curve().expect("libzmq must have CURVE");
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("keys");
    keygen(&dir).expect("keygen");
    let (endpoint, stop, server) = start_echo_server(&dir);

    let good = ClientSecurity::Curve(load_client_keys(&dir).expect("client keys"));
    let (sender, mut events) = Link::start(&endpoint, &good, None).expect("link");
    sender.send(b"ping").expect("send");
    let mut got_echo = false;
    while !got_echo {
        match next_event(&mut events).await {
            LinkEvent::Message(frame) => {
                assert_eq!(frame, b"ping");
                got_echo = true;
            }
            LinkEvent::Connected => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
    sender.close(0);

    // A refused client has no peer to give frames to: queuing far more than
    // the DEALER's high-water mark, then closing, must still end within a
    // bound (a blocking send in the link thread used to hang `close` for
    // ever).
    let (sender, _events) = refused_link(&dir, &endpoint).await;
    for index in 0..5_000u32 {
        sender.send(&index.to_le_bytes()).expect("queue a frame");
    }
    let closing = tokio::task::spawn_blocking(move || sender.close(0));
    tokio::time::timeout(Duration::from_secs(20), closing)
        .await
        .expect("the refused link did not stop within 20 s")
        .expect("the closing task panicked");
    drop(stop);
    let n_refused = server.join().expect("server thread");
    assert!(n_refused >= 1);
}
