//! A whole session of hostile peers against the interchange core: the
//! input is frames separated by the byte 0xC1 (never used by msgpack);
//! each frame's first byte chooses the socket, one of four peers (and
//! whether it is an admin) and how far the clock moves, the rest is the
//! frame. The core never panics, and its books stay consistent
//! (`Core::validate`) after every input.
#![no_main]

use interchange_core::{
    decode_client_frame, decode_manager_frame, Core, CoreConfig, Identity, PeerId, Socket,
};
use libfuzzer_sys::fuzz_target;
use seam::Time;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let config = CoreConfig {
        max_queued_input_bytes: 1 << 16,
        max_queued_task_bytes: 1 << 16,
        max_manager_nodes: 64,
        ..CoreConfig::default()
    };
    let mut now = Time::ZERO;
    let mut core = Core::new(config, now);
    for chunk in data.split(|byte| *byte == 0xC1) {
        let Some((&header, frame)) = chunk.split_first() else {
            continue;
        };
        let peer_index = (header >> 1) & 3;
        let identity = if header & 8 == 0 {
            Identity::Key(format!("user{peer_index}"))
        } else {
            Identity::Key("default".to_owned())
        };
        let peer = PeerId::new(vec![b'p', peer_index], identity);
        now = now.plus(Duration::from_secs(u64::from(header >> 4) * 10));
        if header & 1 == 0 {
            match decode_client_frame(frame) {
                Ok(message) => core.handle_client_message(now, peer, message),
                Err(undecodable) => core.handle_undecodable(now, Socket::Client, peer, undecodable),
            }
        } else {
            match decode_manager_frame(frame) {
                Ok(message) => core.handle_manager_message(now, peer, message),
                Err(undecodable) => {
                    core.handle_undecodable(now, Socket::Manager, peer, undecodable)
                }
            }
        }
        if core.poll_timeout().is_some_and(|deadline| deadline <= now) {
            core.handle_timeout(now);
        }
        while core.poll_output().is_some() {}
        if let Err(problem) = core.validate() {
            panic!("the core's books are inconsistent: {problem}");
        }
    }
});
