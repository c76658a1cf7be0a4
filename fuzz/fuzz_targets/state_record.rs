//! A container's `state.json`, which survives husk versions and disk faults.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = husk::state::decode(data);
});
