//! Helpers shared by the client's integration tests.

use client::local::{InterchangeOptions, LocalInterchange};
use std::path::Path;

/// Starts a real interchange with fresh CURVE keys under `dir/keys`.
pub async fn start_interchange(dir: &Path) -> LocalInterchange {
    let keys = dir.join("keys");
    transport::keygen(&keys).expect("keygen");
    let options = match InterchangeOptions::local(&dir.join("run"), Some(&keys)) {
        Ok(options) => options,
        Err(error) => {
            panic!("{error}\n(build the daemons first: cargo build -p interchange -p pool-manager)")
        }
    };
    LocalInterchange::start(&options)
        .await
        .unwrap_or_else(|error| panic!("cannot start the interchange: {error}"))
}
