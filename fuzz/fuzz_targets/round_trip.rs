//! The check both message targets make on a frame: decoding never panics,
//! and what decodes encodes and decodes again.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Reads `frame` as the interchange does (`decode_incoming`, giving an
/// `Incoming` message) and as its peer does (an `Outgoing` message);
/// whichever decodes must survive a round trip.
pub fn check_frame<Incoming, Outgoing, Error>(
    frame: &[u8],
    decode_incoming: impl Fn(&[u8]) -> Result<Incoming, Error>,
) where
    Incoming: Serialize + DeserializeOwned,
    Outgoing: Serialize + DeserializeOwned,
{
    if let Ok(message) = decode_incoming(frame) {
        assert_round_trip(&message);
    }
    if let Ok(message) = protocol::decode::<Outgoing>(frame) {
        assert_round_trip(&message);
    }
}

fn assert_round_trip<T: Serialize + DeserializeOwned>(message: &T) {
    let again: Result<T, _> = protocol::decode(&protocol::encode(message));
    assert!(
        again.is_ok(),
        "a decoded {} must survive a round trip",
        std::any::type_name::<T>()
    );
}
