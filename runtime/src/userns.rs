//! Writing the uid and gid maps of a container's new user namespace.
//!
//! The intermediate creates the user namespace; husk, still in its own user
//! namespace, writes the maps into `/proc/<intermediate>/` (a process cannot
//! give itself ids it does not hold). Which way depends on what husk may do:
//!
//! - **privileged** (husk's effective uid is 0): any maps, written directly;
//!   `setgroups` stays `allow`, so the container may set its own groups.
//! - **own ids** (rootless, and the maps are one line each, mapping husk's
//!   own effective uid and gid): written directly, after `deny` to
//!   `setgroups`, which the kernel requires of an unprivileged writer.
//! - **helpers** (rootless, any other maps): the setuid `newuidmap` and
//!   `newgidmap` from shadow's `uidmap` package, which check the ranges
//!   against `/etc/subuid` and `/etc/subgid`.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::Pid;

use crate::spec::{IdMapping, IdMappings};

/// The setuid helpers an unprivileged husk asks to write wider maps.
pub const NEWUIDMAP: &str = "newuidmap";
/// See [`NEWUIDMAP`].
pub const NEWGIDMAP: &str = "newgidmap";

/// How the maps get written; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// husk writes any maps itself.
    Privileged,
    /// husk writes its own uid and gid, after denying `setgroups`.
    OwnIds,
    /// `newuidmap` and `newgidmap` write them.
    Helpers,
}

/// Why the maps could not be written.
#[derive(Debug)]
pub enum MapError {
    /// Writing a file under `/proc/<pid>/` failed.
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A helper could not be run.
    Spawn {
        /// `newuidmap` or `newgidmap`.
        tool: &'static str,
        /// The I/O error.
        source: io::Error,
    },
    /// A helper refused.
    Helper {
        /// `newuidmap` or `newgidmap`.
        tool: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
}

impl Writer {
    /// The way a husk with effective ids `euid` and `egid` writes `maps`.
    pub fn choose(maps: &IdMappings, euid: u32, egid: u32) -> Self {
        let own = |map: &[IdMapping], id: u32| matches!(map, [m] if m.host_id == id && m.size == 1);
        if euid == 0 {
            Self::Privileged
        } else if own(&maps.uids, euid) && own(&maps.gids, egid) {
            Self::OwnIds
        } else {
            Self::Helpers
        }
    }
}

/// Writes `maps` for the user namespace of process `pid`, under `proc_root`
/// (normally `/proc`), the way `writer` says.
pub fn write(
    proc_root: &Path,
    pid: Pid,
    maps: &IdMappings,
    writer: Writer,
) -> Result<(), MapError> {
    let dir = proc_root.join(pid.as_raw().to_string());
    let write = |name: &str, contents: &str| {
        let path = dir.join(name);
        fs::write(&path, contents).map_err(|source| MapError::Write { path, source })
    };
    match writer {
        Writer::Privileged => {
            write("uid_map", &IdMapping::kernel_format(&maps.uids))?;
            write("gid_map", &IdMapping::kernel_format(&maps.gids))
        }
        Writer::OwnIds => {
            write("setgroups", "deny")?;
            write("uid_map", &IdMapping::kernel_format(&maps.uids))?;
            write("gid_map", &IdMapping::kernel_format(&maps.gids))
        }
        Writer::Helpers => {
            helper(NEWUIDMAP, pid, &maps.uids)?;
            helper(NEWGIDMAP, pid, &maps.gids)
        }
    }
}

/// `newuidmap PID CONTAINER HOST SIZE...`, as shadow's helpers take them.
pub fn helper_args(pid: Pid, map: &[IdMapping]) -> Vec<String> {
    let mut args = vec![pid.as_raw().to_string()];
    for m in map {
        args.extend([m.container_id, m.host_id, m.size].map(|n| n.to_string()));
    }
    args
}

fn helper(tool: &'static str, pid: Pid, map: &[IdMapping]) -> Result<(), MapError> {
    let mut command = Command::new(tool);
    crate::sys::unblock_signals_in(&mut command);
    let status = command
        .args(helper_args(pid, map))
        .status()
        .map_err(|source| MapError::Spawn { tool, source })?;
    if status.success() {
        Ok(())
    } else {
        Err(MapError::Helper { tool, status })
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Write { path, .. } => write!(f, "writing {}", path.display()),
            Self::Spawn { tool, .. } => write!(
                f,
                "running {tool} (an unprivileged husk needs it for maps other than \
                 its own uid and gid; Debian package uidmap)"
            ),
            Self::Helper { tool, status } => write!(
                f,
                "{tool} refused the map ({status}): check /etc/subuid and /etc/subgid"
            ),
        }
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Write { source, .. } | Self::Spawn { source, .. } => Some(source),
            Self::Helper { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(container_id: u32, host_id: u32, size: u32) -> IdMapping {
        IdMapping {
            container_id,
            host_id,
            size,
        }
    }

    fn maps(uids: &[IdMapping], gids: &[IdMapping]) -> IdMappings {
        IdMappings {
            uids: uids.to_vec(),
            gids: gids.to_vec(),
        }
    }

    #[test]
    fn the_writer_follows_what_husk_may_do() {
        let own = maps(&[line(0, 1000, 1)], &[line(0, 100, 1)]);
        assert_eq!(Writer::choose(&own, 0, 0), Writer::Privileged);
        assert_eq!(Writer::choose(&own, 1000, 100), Writer::OwnIds);
        // Another gid, a wider range, or a second line need the helpers.
        assert_eq!(Writer::choose(&own, 1000, 101), Writer::Helpers);
        let wide = maps(&[line(0, 1000, 2)], &[line(0, 100, 1)]);
        assert_eq!(Writer::choose(&wide, 1000, 100), Writer::Helpers);
        let two = maps(
            &[line(0, 1000, 1), line(1, 100000, 65536)],
            &[line(0, 100, 1)],
        );
        assert_eq!(Writer::choose(&two, 1000, 100), Writer::Helpers);
    }

    #[test]
    fn maps_are_written_as_the_kernel_reads_them() {
        let dir = crate::testutil::TempDir::new("userns");
        let pid_dir = dir.path().join("42");
        fs::create_dir(&pid_dir).unwrap();
        let m = maps(
            &[line(0, 100000, 65536)],
            &[line(0, 100000, 65536), line(70000, 5, 1)],
        );
        write(dir.path(), Pid::from_raw(42), &m, Writer::Privileged).unwrap();
        let read = |name| fs::read_to_string(pid_dir.join(name)).unwrap();
        assert_eq!(read("uid_map"), "0 100000 65536\n");
        assert_eq!(read("gid_map"), "0 100000 65536\n70000 5 1\n");
        assert!(!pid_dir.join("setgroups").exists());

        let own = maps(&[line(0, 1000, 1)], &[line(0, 100, 1)]);
        write(dir.path(), Pid::from_raw(42), &own, Writer::OwnIds).unwrap();
        assert_eq!(read("setgroups"), "deny");
        assert_eq!(read("uid_map"), "0 1000 1\n");
    }

    #[test]
    fn a_missing_process_is_named() {
        let dir = crate::testutil::TempDir::new("userns-gone");
        let own = maps(&[line(0, 1000, 1)], &[line(0, 100, 1)]);
        let error = write(dir.path(), Pid::from_raw(7), &own, Writer::OwnIds).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("writing {}/7/setgroups", dir.path().display())
        );
    }

    #[test]
    fn helpers_get_the_lines_flat() {
        let args = helper_args(
            Pid::from_raw(9),
            &[line(0, 1000, 1), line(1, 100000, 65536)],
        );
        assert_eq!(args, ["9", "0", "1000", "1", "1", "100000", "65536"]);
    }
}
