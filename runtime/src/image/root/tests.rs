//! Choosing between overlay and copy, and the copy of layers without
//! whiteouts (those need root: `runtime/tests/image.rs` covers them).

use std::os::unix::fs::symlink;

use super::*;
use crate::testutil::TempDir;

const WITH_OVERLAY: &str = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n";
const WITHOUT: &str = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlayish\n";

#[test]
fn the_environment_chooses_the_policy() {
    let policy = |v: Option<&str>| Policy::from_env(v.map(OsStr::new));
    assert_eq!(policy(None).unwrap(), Policy::Auto);
    assert_eq!(policy(Some("")).unwrap(), Policy::Auto);
    assert_eq!(policy(Some("auto")).unwrap(), Policy::Auto);
    assert_eq!(policy(Some("copy")).unwrap(), Policy::Copy);
    assert_eq!(policy(Some("overlay")).unwrap(), Policy::Overlay);
    assert_eq!(
        policy(Some("bind")).unwrap_err().to_string(),
        "HUSK_IMAGE_ROOT is overlay, copy or auto, not \"bind\""
    );
}

#[test]
fn overlayfs_is_found_in_proc_filesystems() {
    assert!(has_overlayfs(WITH_OVERLAY));
    assert!(!has_overlayfs(WITHOUT));
    assert!(!has_overlayfs(""));
}

#[test]
fn the_copy_is_chosen_only_where_overlay_cannot_work() {
    use Policy::*;
    assert_eq!(Auto.before_mount(Some(WITH_OVERLAY)), None);
    assert_eq!(Auto.before_mount(None), None, "unreadable: try the mount");
    assert_eq!(
        Auto.before_mount(Some(WITHOUT)),
        Some(Fallback::NoOverlayFs)
    );
    assert_eq!(Overlay.before_mount(Some(WITHOUT)), None);
    assert_eq!(
        Copy.before_mount(Some(WITH_OVERLAY)),
        Some(Fallback::Forced)
    );
    for errno in [Errno::EINVAL, Errno::ENODEV, Errno::EOPNOTSUPP] {
        assert_eq!(Auto.after_mount(errno), Some(Fallback::MountRefused(errno)));
        assert_eq!(Overlay.after_mount(errno), None);
    }
    // Not a filesystem that cannot be an upper layer: an error, not a copy.
    for errno in [Errno::EPERM, Errno::ENOENT, Errno::ENOSPC] {
        assert_eq!(Auto.after_mount(errno), None);
    }
    assert_eq!(
        Fallback::MountRefused(Errno::EINVAL).to_string(),
        "the overlay mount was refused (Invalid argument): the data directory's \
         filesystem cannot be its upper layer"
    );
}

#[test]
fn layers_are_copied_lowest_first_as_an_overlay_shows_them() {
    let tmp = TempDir::new("copy-layers");
    let (low, high, root) = (
        tmp.path().join("low"),
        tmp.path().join("high"),
        tmp.path().join("root"),
    );
    let outside = tmp.path().join("outside");
    for dir in [&low, &high, &root, &outside] {
        fs::create_dir(dir).unwrap();
    }
    fs::create_dir_all(low.join("etc")).unwrap();
    fs::write(low.join("etc/motd"), "low").unwrap();
    fs::write(low.join("etc/kept"), "kept").unwrap();
    fs::write(low.join("file-then-dir"), "x").unwrap();
    fs::create_dir_all(low.join("dir-then-file/sub")).unwrap();
    // A link to outside the root, which the next layer makes a directory:
    // its entry must land inside the root, not through the link.
    symlink(&outside, low.join("link-then-dir")).unwrap();
    fs::write(low.join("tool"), "bin").unwrap();
    fs::set_permissions(low.join("tool"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::hard_link(low.join("tool"), low.join("tool-alias")).unwrap();

    fs::create_dir_all(high.join("etc")).unwrap();
    fs::write(high.join("etc/motd"), "high").unwrap();
    fs::create_dir_all(high.join("file-then-dir")).unwrap();
    fs::write(high.join("file-then-dir/in"), "in").unwrap();
    fs::write(high.join("dir-then-file"), "now a file").unwrap();
    fs::create_dir_all(high.join("link-then-dir")).unwrap();
    fs::write(high.join("link-then-dir/escaped"), "no").unwrap();
    symlink("tool", high.join("run")).unwrap();

    let bytes = copy_layers(&[low.clone(), high.clone()], &root).unwrap();
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("etc/motd"), "high");
    assert_eq!(read("etc/kept"), "kept");
    assert_eq!(read("file-then-dir/in"), "in");
    assert_eq!(read("dir-then-file"), "now a file");
    assert!(root
        .join("link-then-dir")
        .symlink_metadata()
        .unwrap()
        .is_dir());
    assert_eq!(read("link-then-dir/escaped"), "no");
    assert!(!outside.join("escaped").exists(), "written through a link");
    assert_eq!(fs::read_link(root.join("run")).unwrap(), Path::new("tool"));
    let tool = root.join("tool").metadata().unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o751);
    assert_eq!(tool.nlink(), 2, "a hard link stays one");
    assert_eq!(
        tool.ino(),
        root.join("tool-alias").metadata().unwrap().ino()
    );
    assert_eq!(
        tool.modified().unwrap(),
        low.join("tool").metadata().unwrap().modified().unwrap()
    );
    // low: low + kept + x + bin (once); high: high + in + now a file + no.
    assert_eq!(bytes, 3 + 4 + 1 + 3 + 4 + 2 + 10 + 2);
    // The layers themselves are untouched.
    assert_eq!(fs::read_to_string(low.join("etc/motd")).unwrap(), "low");
    assert!(low
        .join("link-then-dir")
        .symlink_metadata()
        .unwrap()
        .is_symlink());
}
