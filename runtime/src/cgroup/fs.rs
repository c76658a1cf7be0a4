//! The file operations cgroup code makes, behind a narrow trait.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use super::devices::Insn;
use crate::sys::{self, SysError};

/// The cgroup filesystem as [`super::Cgroup`] uses it. [`HostFs`] is the
/// kernel's; tests pass a fake that simulates the kernel's rules.
///
/// Paths are absolute: the cgroup root joined with the cgroup and file names.
pub trait CgroupFs {
    /// Reads a whole interface file.
    fn read_to_string(&self, file: &Path) -> io::Result<String>;
    /// Writes `value` to an existing interface file in one write; a missing
    /// file is an error (`NotFound`), never created.
    fn write(&self, file: &Path, value: &str) -> io::Result<()>;
    /// Creates a cgroup directory (its parent must exist).
    fn mkdir(&self, dir: &Path) -> io::Result<()>;
    /// Removes a cgroup directory; `ResourceBusy` while processes or child
    /// cgroups remain in it.
    fn rmdir(&self, dir: &Path) -> io::Result<()>;
    /// Whether a file or directory exists.
    fn exists(&self, path: &Path) -> bool;
    /// Waits `interval` before checking the kernel again.
    fn pause(&self, interval: Duration);
    /// Makes `program`, a `BPF_PROG_TYPE_CGROUP_DEVICE` program, the device
    /// filter of the cgroup directory `dir`; with `replace`, in place of the
    /// ones attached there before (a new cgroup has none: no need to look);
    /// `None` detaches them and leaves no filter.
    fn set_device_program(
        &self,
        dir: &Path,
        program: Option<&[Insn]>,
        replace: bool,
    ) -> Result<(), SysError>;
}

/// The running kernel's cgroup filesystem, through `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostFs;

impl CgroupFs for HostFs {
    fn read_to_string(&self, file: &Path) -> io::Result<String> {
        fs::read_to_string(file)
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        // No `create`: cgroupfs refuses to create files, and a missing
        // interface file means a missing controller or kernel feature.
        let mut file = fs::OpenOptions::new().write(true).open(file)?;
        // The kernel takes a cgroup file's value from a single write(2);
        // write_all makes exactly one unless the kernel takes less.
        file.write_all(value.as_bytes())
    }

    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok()
    }

    fn pause(&self, interval: Duration) {
        std::thread::sleep(interval);
    }

    fn set_device_program(
        &self,
        dir: &Path,
        program: Option<&[Insn]>,
        replace: bool,
    ) -> Result<(), SysError> {
        sys::set_device_program(dir, program, replace)
    }
}

impl<T: CgroupFs + ?Sized> CgroupFs for &T {
    fn read_to_string(&self, file: &Path) -> io::Result<String> {
        (**self).read_to_string(file)
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        (**self).write(file, value)
    }

    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        (**self).mkdir(dir)
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        (**self).rmdir(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        (**self).exists(path)
    }

    fn pause(&self, interval: Duration) {
        (**self).pause(interval);
    }

    fn set_device_program(
        &self,
        dir: &Path,
        program: Option<&[Insn]>,
        replace: bool,
    ) -> Result<(), SysError> {
        (**self).set_device_program(dir, program, replace)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("husk-cgroup-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn host_fs_writes_only_existing_files() {
        let tmp = TempDir::new("host-write");
        let file = tmp.0.join("memory.max");
        let error = HostFs.write(&file, "100").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(
            !HostFs.exists(&file),
            "a missing interface file is not created"
        );

        fs::write(&file, "max\n").unwrap();
        HostFs.write(&file, "100").unwrap();
        // Like cgroupfs, the write replaces the value (a regular file keeps a
        // longer old tail, which the fixture avoids by being shorter).
        assert_eq!(HostFs.read_to_string(&file).unwrap(), "100\n");
    }

    #[test]
    fn host_fs_directories() {
        let tmp = TempDir::new("host-dirs");
        let dir = tmp.0.join("c1");
        HostFs.mkdir(&dir).unwrap();
        assert!(HostFs.exists(&dir));
        let again = HostFs.mkdir(&dir).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        HostFs.rmdir(&dir).unwrap();
        let gone = HostFs.rmdir(&dir).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        let missing_parent = HostFs.mkdir(&tmp.0.join("a/b")).unwrap_err();
        assert_eq!(missing_parent.kind(), io::ErrorKind::NotFound);
    }
}
