//! Manager messages: whatever arrives on the interchange's manager socket
//! (`FromManager`, with the handshake peek) and whatever a pool-manager
//! reads (`ToManager`). Decoding never panics, and what decodes encodes
//! and decodes again.
#![no_main]

mod round_trip;

use interchange_core::decode_manager_frame;
use libfuzzer_sys::fuzz_target;
use protocol::{FromManager, ToManager};
use round_trip::check_frame;

fuzz_target!(|frame: &[u8]| check_frame::<FromManager, ToManager, _>(frame, decode_manager_frame));
