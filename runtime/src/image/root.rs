//! A container's root made of its image's layers: an overlay where the kernel
//! can mount one, else a private copy.
//!
//! The overlay's lower directories are the stored layers (never written), its
//! upper and work directories the container's own. Where overlayfs cannot be
//! used the layers are copied instead, lowest first, into the container's
//! `rootfs` directory, each whiteout removing what lower layers put at its
//! name and each opaque directory emptied before its own entries are copied:
//! the tree overlayfs would show. The copy costs the disk the image's files
//! take (each container its own copy; hard links inside one layer stay links)
//! and the time to write them; owners, modes, device nodes, fifos, symbolic
//! links and file modification times are kept, extended attributes (file
//! capabilities among them) are not.
//!
//! The copy is chosen, with one warning line naming why, when:
//! - `HUSK_IMAGE_ROOT=copy` is set (tests, or a kernel whose overlay misbehaves);
//! - `/proc/filesystems` has no `overlay` (a kernel without `CONFIG_OVERLAY_FS`);
//! - the overlay mount fails with `EINVAL`, `ENODEV` or `EOPNOTSUPP`: the
//!   data directory's filesystem cannot be an upper layer (vfat, NFS, an
//!   overlay itself on older kernels).
//!
//! `HUSK_IMAGE_ROOT=overlay` never copies: a failed mount is an error.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::store::StoreError;
use super::ImageError;
use crate::spec::NodeKind;
use crate::sys;

/// The environment variable that chooses how roots are made: `overlay`,
/// `copy`, or unset (overlay, else a copy).
pub const ROOT_ENV: &str = "HUSK_IMAGE_ROOT";
/// The list of the kernel's filesystems.
pub const FILESYSTEMS: &str = "/proc/filesystems";
/// The buffer a file is copied through.
const COPY_BUFFER: usize = 64 * 1024;
/// The xattr that marks an opaque directory in a stored layer.
const OVERLAY_OPAQUE: &std::ffi::CStr = c"trusted.overlay.opaque";

/// How roots are made, from [`ROOT_ENV`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// An overlay where the kernel can mount one, else a copy.
    Auto,
    /// Always an overlay.
    Overlay,
    /// Always a copy.
    Copy,
}

/// Why a container's root is a copy rather than an overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// `HUSK_IMAGE_ROOT=copy`.
    Forced,
    /// The kernel lists no overlayfs.
    NoOverlayFs,
    /// The overlay mount failed with this errno.
    MountRefused(Errno),
}

impl Policy {
    /// The policy the value of [`ROOT_ENV`] asks for.
    pub fn from_env(value: Option<&OsStr>) -> Result<Self, ImageError> {
        match value.map(OsStr::to_str) {
            None => Ok(Self::Auto),
            Some(Some("" | "auto")) => Ok(Self::Auto),
            Some(Some("overlay")) => Ok(Self::Overlay),
            Some(Some("copy")) => Ok(Self::Copy),
            Some(_) => Err(ImageError::RootPolicy(
                value.unwrap_or_default().to_string_lossy().into_owned(),
            )),
        }
    }

    /// Whether to copy without trying to mount, given the text of
    /// [`FILESYSTEMS`] (`None` if it could not be read: then try).
    pub fn before_mount(self, filesystems: Option<&str>) -> Option<Fallback> {
        match (self, filesystems) {
            (Self::Copy, _) => Some(Fallback::Forced),
            (Self::Auto, Some(text)) if !has_overlayfs(text) => Some(Fallback::NoOverlayFs),
            _ => None,
        }
    }

    /// Whether to copy after the overlay mount failed with `errno`.
    pub fn after_mount(self, errno: Errno) -> Option<Fallback> {
        let refused = matches!(errno, Errno::EINVAL | Errno::ENODEV | Errno::EOPNOTSUPP);
        (self == Self::Auto && refused).then_some(Fallback::MountRefused(errno))
    }
}

/// Whether the text of `/proc/filesystems` lists overlayfs (`nodev\toverlay`).
pub fn has_overlayfs(filesystems: &str) -> bool {
    filesystems
        .lines()
        .any(|line| line.split('\t').next_back() == Some("overlay"))
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Forced => write!(f, "{ROOT_ENV}=copy"),
            Self::NoOverlayFs => {
                f.write_str("the kernel has no overlayfs (not in /proc/filesystems)")
            }
            Self::MountRefused(errno) => write!(
                f,
                "the overlay mount was refused ({}): the data directory's filesystem \
                 cannot be its upper layer",
                errno.desc()
            ),
        }
    }
}

/// Copies `layers` (stored layer roots, lowest first) into the empty
/// directory `root` as overlayfs would stack them; returns the bytes of
/// regular files written.
pub fn copy_layers(layers: &[PathBuf], root: &Path) -> Result<u64, ImageError> {
    let mut bytes = 0;
    for layer in layers {
        let mut links = BTreeMap::new();
        copy_dir(layer, root, &mut links, &mut bytes)?;
        let meta = fs::symlink_metadata(layer).map_err(io_error("stat", layer))?;
        set_owner_and_mode(root, &meta)?;
    }
    Ok(bytes)
}

/// Copies the entries of layer directory `from` into `to`, a real directory
/// (never a symbolic link: every parent of a path written here was made a
/// directory first, so no write follows a link the layers made).
fn copy_dir(
    from: &Path,
    to: &Path,
    links: &mut BTreeMap<(u64, u64), PathBuf>,
    bytes: &mut u64,
) -> Result<(), ImageError> {
    if sys::get_xattr(from, OVERLAY_OPAQUE)
        .map_err(StoreError::Sys)?
        .is_some_and(|v| v == b"y")
    {
        for entry in fs::read_dir(to).map_err(io_error("list", to))? {
            let path = entry.map_err(io_error("list", to))?.path();
            remove(&path)?;
        }
    }
    for entry in fs::read_dir(from).map_err(io_error("list", from))? {
        let entry = entry.map_err(io_error("list", from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).map_err(io_error("stat", &src))?;
        let kind = meta.file_type();
        if kind.is_char_device() && meta.rdev() == 0 {
            // An overlay whiteout: the name is gone from here up.
            remove(&dst)?;
            continue;
        }
        if kind.is_dir() {
            match fs::symlink_metadata(&dst) {
                Ok(there) if there.is_dir() => {}
                Ok(_) => {
                    remove(&dst)?;
                    fs::create_dir(&dst).map_err(io_error("create", &dst))?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&dst).map_err(io_error("create", &dst))?;
                }
                Err(e) => return Err(io_error("stat", &dst)(e)),
            }
            copy_dir(&src, &dst, links, bytes)?;
            set_owner_and_mode(&dst, &meta)?;
            continue;
        }
        remove(&dst)?;
        if kind.is_file() {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&key).filter(|_| meta.nlink() > 1) {
                fs::hard_link(first, &dst).map_err(io_error("link", &dst))?;
                continue;
            }
            *bytes += copy_file(&src, &dst, &meta)?;
            if meta.nlink() > 1 {
                links.insert(key, dst.clone());
            }
        } else if kind.is_symlink() {
            let target = fs::read_link(&src).map_err(io_error("read link", &src))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(io_error("link", &dst))?;
        } else {
            let node = if kind.is_char_device() {
                NodeKind::Char
            } else if kind.is_block_device() {
                NodeKind::Block
            } else if kind.is_fifo() {
                NodeKind::Fifo
            } else {
                // A socket: nothing a layer can carry.
                continue;
            };
            sys::mknod(&dst, node, meta.rdev(), meta.mode()).map_err(StoreError::Sys)?;
        }
        set_owner_and_mode(&dst, &meta)?;
    }
    Ok(())
}

/// Copies the regular file `src` to the new file `dst` (never through a
/// link); returns its size.
fn copy_file(src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<u64, ImageError> {
    let mut from = File::open(src).map_err(io_error("open", src))?;
    let mut to = File::options()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(dst)
        .map_err(io_error("create", dst))?;
    // A plain loop: io::copy's kernel-copy paths cost 1.2 KB of x86_64 binary.
    let mut buf = vec![0; COPY_BUFFER];
    let mut copied = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("read", src)(e)),
        };
        to.write_all(&buf[..n]).map_err(io_error("write", dst))?;
        copied += n as u64;
    }
    if let Ok(modified) = meta.modified() {
        to.set_modified(modified)
            .map_err(io_error("set the time of", dst))?;
    }
    Ok(copied)
}

/// Gives `path` (not a symbolic link's target) the owner and, unless it is a
/// link, the mode of `meta`. The mode goes second: `chown` clears setid bits.
fn set_owner_and_mode(path: &Path, meta: &fs::Metadata) -> Result<(), ImageError> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))
        .map_err(io_error("chown", path))?;
    if !meta.file_type().is_symlink() {
        let mode = fs::Permissions::from_mode(meta.mode() & 0o7777);
        fs::set_permissions(path, mode).map_err(io_error("chmod", path))?;
    }
    Ok(())
}

/// Removes whatever is at `path` (a directory with its contents); nothing
/// there is not an error.
fn remove(path: &Path) -> Result<(), ImageError> {
    let removed = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    removed.map_err(io_error("remove", path))
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| {
        ImageError::Store(StoreError::Io {
            op,
            path: path.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests;
