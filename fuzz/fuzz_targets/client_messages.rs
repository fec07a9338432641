//! Client messages: whatever arrives on the interchange's client socket
//! (`FromClient`, with the handshake peek the interchange does for a
//! refused version) and whatever a client reads (`ToClient`). Decoding
//! never panics, and what decodes encodes and decodes again.
#![no_main]

mod round_trip;

use interchange_core::decode_client_frame;
use libfuzzer_sys::fuzz_target;
use protocol::{FromClient, ToClient};
use round_trip::check_frame;

fuzz_target!(|frame: &[u8]| check_frame::<FromClient, ToClient, _>(frame, decode_client_frame));
