//! `linux.resources` as `husk update --resources` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = husk::cgroup::parse_resources(data);
});
