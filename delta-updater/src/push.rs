//! `husk-publish push` (feature `publish`): copies a repository's served
//! files to where devices fetch them, a directory or an HTTP server that
//! accepts `PUT` (nginx with WebDAV, `create_full_put_path on`).
//!
//! Order is what keeps devices safe while a push is half done: blobs (and
//! any other file) first, then release metadata, then `root/<N>.json`, then
//! `root.json`, and `timestamp.json` last, so a device never sees metadata
//! that names a file not there yet. Blobs already at the destination with
//! their size are skipped (they are named by content); metadata is copied
//! when it differs (directory) or always (HTTP). Files whose name starts
//! with `.` (temporary files of the publisher) are never pushed.

use core::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::fetch::{FetchError, HttpSource, Timeouts};

/// Why a push failed.
#[derive(Debug)]
pub enum PushError {
    /// A local file operation failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// A file name in the repository is not a repository path.
    Name(PathBuf),
    /// An HTTP request to the destination failed.
    Http(FetchError),
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { op, path, error } => write!(f, "{op} {}: {error}", path.display()),
            Self::Name(path) => write!(f, "{}: not a repository file name", path.display()),
            Self::Http(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PushError {}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PushError + 'a {
    move |error| PushError::Io {
        op,
        path: path.to_owned(),
        error,
    }
}

/// What a push did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Files copied or sent, in the order they were.
    pub sent: Vec<String>,
    /// Files already there.
    pub skipped: usize,
}

/// The files under `served` (relative paths), in push order.
pub fn files_in_order(served: &Path) -> Result<Vec<String>, PushError> {
    let mut files = Vec::new();
    walk(served, "", &mut files)?;
    files.sort_by_key(|f| (rank(f), f.clone()));
    Ok(files)
}

fn rank(path: &str) -> u8 {
    match path {
        "timestamp.json" => 4,
        "root.json" => 3,
        p if p.starts_with("root/") => 2,
        p if p.starts_with("releases/") => 1,
        _ => 0,
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), PushError> {
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(PushError::Name(path));
        };
        if name.starts_with('.') {
            continue;
        }
        let rel = format!("{prefix}{name}");
        let kind = entry.file_type().map_err(io_err("stat", &path))?;
        if kind.is_dir() {
            walk(&path, &format!("{rel}/"), out)?;
        } else if kind.is_file() {
            crate::fetch::check_path(&rel).map_err(|_| PushError::Name(path))?;
            out.push(rel);
        }
    }
    Ok(())
}

/// Pushes the served directory `served` (a repository's `repo/`) to `dest`:
/// `http://...`, `https://...` (the server's certificate checked against
/// the PEM file `ca`, else the system's CA bundle) or a directory.
pub fn push(served: &Path, dest: &str, ca: Option<&Path>) -> Result<Pushed, PushError> {
    let files = files_in_order(served)?;
    let mut pushed = Pushed::default();
    if dest.starts_with("http://") || dest.starts_with("https://") {
        let mut http = HttpSource::new(dest, Timeouts::default()).map_err(PushError::Http)?;
        if let Some(ca) = ca {
            http = http.ca_file(ca);
        }
        for rel in files {
            let path = served.join(&rel);
            let mut file = File::open(&path).map_err(io_err("open", &path))?;
            let len = file.metadata().map_err(io_err("stat", &path))?.len();
            if rank(&rel) == 0 {
                let (status, length) = http.head(&rel).map_err(PushError::Http)?;
                if status == 200 && length == Some(len) {
                    pushed.skipped += 1;
                    continue;
                }
            }
            http.put(&rel, &mut file, len).map_err(PushError::Http)?;
            pushed.sent.push(rel);
        }
    } else {
        let dest = Path::new(dest);
        for rel in files {
            if copy_if_new(&served.join(&rel), &dest.join(&rel), rank(&rel) == 0)? {
                pushed.sent.push(rel);
            } else {
                pushed.skipped += 1;
            }
        }
    }
    Ok(pushed)
}

/// Copies `from` to `to` through a synced temporary file and a rename,
/// unless `to` has the same content (the same size, for a blob); returns
/// whether it copied.
fn copy_if_new(from: &Path, to: &Path, blob: bool) -> Result<bool, PushError> {
    let len = fs::metadata(from).map_err(io_err("stat", from))?.len();
    if let Ok(meta) = fs::metadata(to) {
        if meta.len() == len && (blob || same_content(from, to)?) {
            return Ok(false);
        }
    }
    let dir = to.parent().expect("a file in the destination has a parent");
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let name = to.file_name().expect("a file name").to_string_lossy();
    let temp = dir.join(format!(".{name}.push-{}", std::process::id()));
    let result = (|| {
        let mut source = File::open(from).map_err(io_err("open", from))?;
        let mut out = File::create(&temp).map_err(io_err("create", &temp))?;
        io::copy(&mut source, &mut out).map_err(io_err("copy to", &temp))?;
        out.flush().map_err(io_err("write", &temp))?;
        out.sync_all().map_err(io_err("sync", &temp))?;
        fs::rename(&temp, to).map_err(io_err("rename", to))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))?;
    Ok(true)
}

fn same_content(a: &Path, b: &Path) -> Result<bool, PushError> {
    let read = |p: &Path| -> Result<Vec<u8>, PushError> {
        let mut v = Vec::new();
        File::open(p)
            .and_then(|mut f| f.read_to_end(&mut v))
            .map_err(io_err("read", p))?;
        Ok(v)
    };
    Ok(read(a)? == read(b)?)
}
