//! A layer (tar, gzip or zstd) extracted into an empty directory: whatever it
//! holds, nothing may appear beside that directory.
#![no_main]

use husk::image::extract::{extract, Options};
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

fuzz_target!(|data: &[u8]| {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let work = std::env::temp_dir().join(format!("husk-fuzz-layer-{}-{n}", std::process::id()));
    let dest = work.join("layer");
    fs::create_dir_all(&dest).unwrap();
    let options = Options {
        max_bytes: 1 << 20,
        max_entries: 1000,
        ..Options::default()
    };
    let _ = extract(data, &dest, &options);
    let beside: Vec<_> = fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["layer"], "an entry escaped the layer directory");
    fs::remove_dir_all(&work).unwrap();
});
