//! `config.json` from a bundle: parsed, validated, its seccomp profile compiled.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = husk::spec::parse(data, Path::new("/bundle"));
});
