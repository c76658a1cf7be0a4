//! An image's config blob (entrypoint, cmd, env, workdir, user), turned into
//! the process of a container's `config.json`, which husk must then accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(process) = husk::image::run::image_process(data, &[], &[]) {
        let options = husk::image::run::RunOptions::default();
        let config = husk::image::run::bundle_config(&process, &options);
        if let Err(e) = husk::spec::parse(config.as_bytes(), Path::new("/bundle")) {
            // Only what an image cannot be trusted to get right may fail.
            let message = e.to_string();
            assert!(!message.contains("invalid JSON"), "{message}: {config}");
        }
    }
});
