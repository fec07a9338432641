//! Client messages: whatever arrives on the interchange's client socket
//! (`FromClient`, with the handshake peek the interchange does for a
//! refused version) and whatever a client reads (`ToClient`). Decoding
//! never panics, and what decodes encodes and decodes again.
#![no_main]

mod round_trip;

use libfuzzer_sys::fuzz_target;
use protocol::{FromClient, ToClient};

fuzz_target!(|frame: &[u8]| {
    round_trip::check_frame::<FromClient, ToClient, _>(
        frame,
        interchange_core::decode_client_frame,
        ["FromClient", "ToClient"],
    );
});
