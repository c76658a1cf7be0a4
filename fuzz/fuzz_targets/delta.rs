//! A delta blob and a full layer blob as the device applies them: whatever
//! the bytes, the result is an error or exactly the target layer, and no
//! output file is left behind on error.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use delta_updater::delta::{self, Target};
use delta_updater::Digest;
use libfuzzer_sys::fuzz_target;

/// An old layer on disk, and where outputs go.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("husk-fuzz-delta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut old: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
        // Then a deflate stream (gzip -9n's) for GZIP ops to inflate:
        // seeds/delta has one at offset 65536, and a PATCH op whose frame
        // (zstd --patch-from) reads the whole of this old layer.
        let changelog: Vec<u8> = (0..120)
            .flat_map(|i| {
                format!("pkg (1.{i}) stable; urgency=medium\n\n  * A change.\n\n").into_bytes()
            })
            .collect();
        delta::deflate::deflate(&changelog, 9, &mut old).unwrap();
        std::fs::write(dir.join("old"), old).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    let out = dir.join("new");
    // The target: the fuzzer cannot find the sha256, so only errors are
    // expected, and no file may remain.
    let target = Target {
        diff_id: Digest::of(b"never"),
        size: 4096,
    };
    assert!(delta::apply(&dir.join("old"), data, target, &out).is_err());
    assert!(!out.exists());
    assert!(delta::decompress(data, target, &out).is_err());
    assert!(!out.exists());
});
