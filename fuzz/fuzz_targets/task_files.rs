//! `rhtex run` task files: any text, read as JSON lines and as TOML.
//! Parsing never panics.
#![no_main]

use client::taskfile::{parse, Format};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [Format::JsonLines, Format::Toml] {
        let _ = parse(text, Path::new("fuzz.tasks"), Path::new("/base"), format);
    }
});
