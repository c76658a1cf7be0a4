//! What the privileged host tests share: the skip rule and the busybox root
//! filesystem their containers run.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::symlink;
use std::path::Path;

/// The static busybox the containers' root filesystems hold (Debian:
/// busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

/// Prints `SKIP <test>: <why>` where the harness shows it.
pub fn skip(test: &str, why: &str) {
    #[expect(
        clippy::explicit_write,
        reason = "the harness hides eprintln! of passing tests"
    )]
    writeln!(std::io::stderr(), "SKIP {test}: {why}").unwrap();
}

/// Whether `test` can run here (as root, with [`BUSYBOX`]); prints why not.
pub fn root_with_busybox(test: &str) -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        "needs root".to_owned()
    } else if !Path::new(BUSYBOX).exists() {
        format!("needs a static {BUSYBOX} (Debian: busybox-static)")
    } else {
        return true;
    };
    skip(test, &why);
    false
}

/// Makes `rootfs/bin` with [`BUSYBOX`] and a link to it for each of `applets`.
pub fn busybox_rootfs(rootfs: &Path, applets: &[&str]) {
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    for applet in applets {
        symlink("busybox", bin.join(applet)).unwrap();
    }
}
