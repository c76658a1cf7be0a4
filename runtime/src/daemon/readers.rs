//! `husk daemon --read-group G`: group G may read the device's state, so a
//! field engineer's account in G can run `husk status`, `ps`, `inspect`,
//! `logs`, `update status|history` and `config show` without root; what
//! changes state (`stop`, `start`, `restart`) stays with root and the
//! control socket's `--group`.
//!
//! At start the daemon gives G the data directory, its top-level files,
//! and the `logs/` and `update/` trees (not the update's kept tars and
//! downloads, nor layers, blobs and container roots, which no read-only
//! command reads): each directory group G, `g+rxs`, each file group G,
//! `g+r`. The setgid bit makes every file made there later (each status,
//! state and log file is written anew) belong to G; husk writes its files
//! `0640`, so nothing is readable by others.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::sys::{self, SysError};

/// The top-level directories whose whole tree read-only commands read.
const TREES: [&str; 2] = ["logs", "update"];

/// Subtrees of those that no read-only command reads (and that can be
/// large): left alone.
const SKIPPED: [&str; 2] = ["update/tars", "update/downloads"];

/// Why group read access could not be given.
#[derive(Debug)]
pub enum GrantError {
    /// A directory could not be listed.
    List {
        /// The directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file's group or mode could not be set.
    Share(SysError),
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::List { dir, .. } => write!(f, "listing {}", dir.display()),
            Self::Share(_) => f.write_str("giving the read group access"),
        }
    }
}

impl std::error::Error for GrantError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::List { source, .. } => Some(source),
            Self::Share(e) => Some(e),
        }
    }
}

/// Gives group `gid` read access to what read-only commands read under
/// `data_dir` (see the module docs). Symbolic links are not followed.
pub fn grant(data_dir: &Path, gid: u32) -> Result<(), GrantError> {
    for tree in TREES {
        fs::create_dir_all(data_dir.join(tree)).map_err(|source| GrantError::List {
            dir: data_dir.join(tree),
            source,
        })?;
    }
    sys::share_with_group(data_dir, gid).map_err(GrantError::Share)?;
    let skipped: Vec<PathBuf> = SKIPPED.iter().map(|s| data_dir.join(s)).collect();
    for (path, kind) in list(data_dir)? {
        if kind.is_file() {
            sys::share_with_group(&path, gid).map_err(GrantError::Share)?;
        } else if kind.is_dir() && TREES.iter().any(|t| path.ends_with(t)) {
            tree(&path, gid, &skipped)?;
        }
    }
    Ok(())
}

fn tree(dir: &Path, gid: u32, skipped: &[PathBuf]) -> Result<(), GrantError> {
    if skipped.iter().any(|s| s == dir) {
        return Ok(());
    }
    sys::share_with_group(dir, gid).map_err(GrantError::Share)?;
    for (path, kind) in list(dir)? {
        if kind.is_dir() {
            tree(&path, gid, skipped)?;
        } else if kind.is_file() {
            sys::share_with_group(&path, gid).map_err(GrantError::Share)?;
        }
    }
    Ok(())
}

/// The entries of `dir` with their type (not following symbolic links).
fn list(dir: &Path) -> Result<Vec<(PathBuf, fs::FileType)>, GrantError> {
    let error = |source| GrantError::List {
        dir: dir.to_owned(),
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(error)? {
        let entry = entry.map_err(error)?;
        out.push((entry.path(), entry.file_type().map_err(error)?));
    }
    Ok(out)
}
