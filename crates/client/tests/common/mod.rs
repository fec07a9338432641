//! Helpers shared by the client's integration tests.

use client::local::{InterchangeOptions, LocalInterchange};
use std::path::Path;

/// Starts a real interchange with fresh CURVE keys under `dir/keys`.
pub async fn start_interchange(dir: &Path) -> LocalInterchange {
    // The interchange is looked up next to the test's binaries.
    testkit::with_binaries_next_to(
        env!("CARGO_BIN_EXE_rhtex").into(),
        &[client::local::INTERCHANGE_PROGRAM],
    );
    let keys = dir.join("keys");
    transport::keygen(&keys).expect("keygen");
    let options = InterchangeOptions::local(&dir.join("run"), Some(&keys))
        .unwrap_or_else(|error| panic!("{error}"));
    LocalInterchange::start(&options)
        .await
        .unwrap_or_else(|error| panic!("cannot start the interchange: {error}"))
}
