//! The scan for a repeated key on the JSON error path: it must not panic on
//! any text, and a key it reports must occur twice in the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(duplicate) = husk::wire::duplicate_key(data) {
        let needle = format!("\"{}\"", duplicate.key);
        let text = String::from_utf8_lossy(data);
        assert!(text.matches(&needle).count() >= 2, "{duplicate:?}");
    }
});
