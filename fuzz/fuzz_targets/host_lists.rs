//! Slurm host lists (`SLURM_JOB_NODELIST`): expanding never panics, stays
//! bounded, and whatever it gives is checked by the node-name rule without
//! panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pool_manager_core::hostlist::expand_hostlist;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(hosts) = expand_hostlist(text) {
        let _ = protocol::limits::check_node_names(&hosts, usize::MAX);
    }
});
