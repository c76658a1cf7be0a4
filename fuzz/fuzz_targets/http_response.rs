//! An HTTP response from an update server (head and body framing): the
//! device parses it before any signature or hash can be checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, body, fits)) = delta_updater::fetch::http::parse_response(data, 4096) {
        assert!(body.len() <= 4097);
        assert!(fits || body.len() == 4097);
    }
});
