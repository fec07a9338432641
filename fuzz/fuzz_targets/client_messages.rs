//! Client messages: whatever arrives on the interchange's client socket
//! (`FromClient`, with the handshake peek the interchange does for a
//! refused version) and whatever a client reads (`ToClient`). Decoding
//! never panics, and what decodes encodes and decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{FromClient, ToClient};

fuzz_target!(|frame: &[u8]| {
    if let Ok(message) = interchange_core::decode_client_frame(frame) {
        let again: Result<FromClient, _> = protocol::decode(&protocol::encode(&message));
        assert!(
            again.is_ok(),
            "a decoded FromClient must survive a round trip"
        );
    }
    if let Ok(message) = protocol::decode::<ToClient>(frame) {
        let again: Result<ToClient, _> = protocol::decode(&protocol::encode(&message));
        assert!(
            again.is_ok(),
            "a decoded ToClient must survive a round trip"
        );
    }
});
