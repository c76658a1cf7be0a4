//! `linux.seccomp`: parsed, then compiled to BPF for every architecture husk
//! knows; a compiled program must fit the kernel's limit.
#![no_main]

use husk::seccomp::{self, Arch, MAX_INSTRUCTIONS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(profile) = seccomp::parse(data) {
        for arch in Arch::ALL {
            if let Ok(filter) = profile.compile(arch) {
                assert!(filter.program().len() <= MAX_INSTRUCTIONS);
            }
        }
    }
});
