//! Manager messages: whatever arrives on the interchange's manager socket
//! (`FromManager`, with the handshake peek) and whatever a pool-manager
//! reads (`ToManager`). Decoding never panics, and what decodes encodes
//! and decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{FromManager, ToManager};

fuzz_target!(|frame: &[u8]| {
    if let Ok(message) = interchange_core::decode_manager_frame(frame) {
        let again: Result<FromManager, _> = protocol::decode(&protocol::encode(&message));
        assert!(
            again.is_ok(),
            "a decoded FromManager must survive a round trip"
        );
    }
    if let Ok(message) = protocol::decode::<ToManager>(frame) {
        let again: Result<ToManager, _> = protocol::decode(&protocol::encode(&message));
        assert!(
            again.is_ok(),
            "a decoded ToManager must survive a round trip"
        );
    }
});
