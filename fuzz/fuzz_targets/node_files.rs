//! PBS node files and node lists as registered: parsing a node file never
//! panics, and the node-name rule (what the interchange checks at
//! `register`) never panics on any list of names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pool_manager_core::hostlist::parse_nodefile;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(nodes) = parse_nodefile(&text) {
        let _ = protocol::limits::check_node_names(&nodes, 16_384);
    }
    let names: Vec<&str> = text.split(',').collect();
    let _ = protocol::limits::check_node_names(&names, 64);
});
