//! The check both message targets make on a frame: decoding never panics,
//! and what decodes encodes and decodes again.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Reads `frame` as the interchange does (`decode_incoming`, giving an
/// `Incoming` message) and as its peer does (an `Outgoing` message);
/// whichever decodes must survive a round trip. `names` are the two
/// types' names, for the failure message.
pub fn check_frame<Incoming, Outgoing, Error>(
    frame: &[u8],
    decode_incoming: impl Fn(&[u8]) -> Result<Incoming, Error>,
    names: [&str; 2],
) where
    Incoming: Serialize + DeserializeOwned,
    Outgoing: Serialize + DeserializeOwned,
{
    if let Ok(message) = decode_incoming(frame) {
        assert_round_trip(&message, names[0]);
    }
    if let Ok(message) = protocol::decode::<Outgoing>(frame) {
        assert_round_trip(&message, names[1]);
    }
}

fn assert_round_trip<T: Serialize + DeserializeOwned>(message: &T, name: &str) {
    let again: Result<T, _> = protocol::decode(&protocol::encode(message));
    assert!(again.is_ok(), "a decoded {name} must survive a round trip");
}
