//! CURVE with ZAP over real sockets: a known key gets through, an unknown
//! key is refused and the client is told why; a key is admitted only on the
//! socket of its role, and the identity it proved arrives with every
//! message (User-Id).

use std::path::PathBuf;
use std::time::Duration;
use transport::keys::{keygen, load_client_keys, load_manager_keys, load_server_keys, KeyPair};
use transport::sockets::{bind_router, check_curve, RouterOptions};
use transport::{
    Admitted, ClientKeys, ClientSecurity, Link, LinkEvent, ServerSecurity, SocketRole, ZapHandler,
};

const WAIT: Duration = Duration::from_secs(10);

/// Serves one ROUTER with ZAP on a thread: echoes every frame back (but
/// answers `who` with the sender's User-Id), until the test drops the
/// returned stop sender.
fn start_echo_server(
    dir: &std::path::Path,
    role: SocketRole,
) -> (
    String,
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<u64>,
) {
    let keys = load_server_keys(dir).expect("server keys");
    let context = zmq::Context::new();
    let mut zap = ZapHandler::bind(&context, Admitted::from(&keys)).expect("zap");
    let (router, endpoint) = bind_router(
        &context,
        "tcp://127.0.0.1:0",
        &ServerSecurity::Curve(keys),
        RouterOptions {
            role,
            max_message_bytes: 1 << 20,
            heartbeat: None,
        },
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
            let routing_id = router.recv_msg(0).expect("recv").to_vec();
            let mut body = router.recv_msg(0).expect("recv");
            let reply = if &body[..] == b"who" {
                body.gets("User-Id").unwrap_or("").as_bytes().to_vec()
            } else {
                body.to_vec()
            };
            router.send_multipart([routing_id, reply], 0).expect("send");
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

/// Checks that libzmq has CURVE and makes a fresh key directory (in a
/// temporary directory that lives as long as the returned guard).
fn fresh_keys() -> (tempfile::TempDir, PathBuf) {
    check_curve().expect("libzmq must have CURVE");
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("keys");
    keygen(&dir).expect("keygen");
    (temp, dir)
}

#[tokio::test]
async fn known_key_is_admitted_and_unknown_key_is_refused_and_stops() {
    let (_temp, dir) = fresh_keys();
    let (endpoint, stop, server) = start_echo_server(&dir, SocketRole::Clients);

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

/// The first message a link with `security` gets back for `body`, or the
/// reason its handshake failed.
async fn ask(endpoint: &str, security: &ClientSecurity, body: &[u8]) -> Result<Vec<u8>, String> {
    let (sender, mut events) = Link::start(endpoint, security, None).expect("link");
    sender.send(body).expect("send");
    let outcome = loop {
        match next_event(&mut events).await {
            LinkEvent::Message(frame) => break Ok(frame),
            LinkEvent::HandshakeFailed(reason) | LinkEvent::Failed(reason) => break Err(reason),
            LinkEvent::Connected | LinkEvent::Disconnected | LinkEvent::ConnectRetried => {}
        }
    };
    sender.close(0);
    outcome
}

#[tokio::test]
async fn each_key_is_admitted_only_in_its_role_and_named_by_user_id() {
    let (_temp, dir) = fresh_keys();
    let alice: transport::ClientName = "alice".parse().expect("name");
    transport::keygen_client(&dir, &alice).expect("add alice");
    let client = ClientSecurity::Curve(load_client_keys(&dir).expect("client keys"));
    let named = ClientSecurity::from_keys_dir_as(&dir, &alice).expect("alice's keys");
    let manager = ClientSecurity::Curve(load_manager_keys(&dir).expect("manager keys"));

    let (clients_url, stop_clients, clients_server) = start_echo_server(&dir, SocketRole::Clients);
    let (managers_url, stop_managers, managers_server) =
        start_echo_server(&dir, SocketRole::Managers);
    assert_eq!(
        ask(&clients_url, &client, b"who").await,
        Ok(b"default".to_vec())
    );
    assert_eq!(
        ask(&clients_url, &named, b"who").await,
        Ok(b"alice".to_vec())
    );
    assert_eq!(
        ask(&managers_url, &manager, b"who").await,
        Ok(b"manager".to_vec())
    );
    for (url, security) in [(&clients_url, &manager), (&managers_url, &client)] {
        let refused = ask(url, security, b"who").await;
        assert!(
            matches!(&refused, Err(reason) if reason.contains("refused our CURVE key")),
            "{refused:?}"
        );
    }
    drop((stop_clients, stop_managers));
    assert_eq!(clients_server.join().expect("server thread"), 1);
    assert_eq!(managers_server.join().expect("server thread"), 1);
}
