//! What the Pair's scenario tests share.

use pair::Pair;
use protocol::{TaskResult, ToClient};

/// Every result the client got, with nothing else but acknowledgements.
pub fn results(pair: &mut Pair, client: usize) -> Vec<TaskResult> {
    let mut found = Vec::new();
    while let Some(message) = pair.poll_client(client) {
        match message {
            ToClient::Results { results } => found.extend(results),
            ToClient::Welcome { .. } | ToClient::Submitted { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    found
}
