//! `husk image import` of an archive (OCI or `docker save`): index, manifests,
//! configs and layers as an attacker may write them. A failed import leaves
//! the store as it was.
#![no_main]

use husk::image::{self, oci::ImportOptions, store::Store};
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

fuzz_target!(|data: &[u8]| {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let work = std::env::temp_dir().join(format!("husk-fuzz-import-{}-{n}", std::process::id()));
    fs::create_dir_all(&work).unwrap();
    let archive = work.join("image.tar");
    fs::write(&archive, data).unwrap();
    let store = Store::new(work.join("store"));
    let mut options = ImportOptions {
        name: None,
        arch: Some("amd64".into()),
        extract: Default::default(),
    };
    options.extract.max_bytes = 1 << 20;
    options.extract.max_entries = 1000;
    if image::import(&store, &archive, &options).is_err() {
        assert!(image::list(&store).unwrap().is_empty());
        assert!(
            store.layers().unwrap().is_empty(),
            "a failed import kept a layer"
        );
    }
    fs::remove_dir_all(&work).unwrap();
});
