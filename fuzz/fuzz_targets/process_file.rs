//! The process file of `husk exec --process`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = husk::spec::parse_process(data, Path::new("/process.json"));
});
