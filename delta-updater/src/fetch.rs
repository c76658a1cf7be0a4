//! (device) Where update files come from. PLACEHOLDER until the transport
//! branch lands: the trait and the directory source only, for the agent's
//! tests. Replaced wholesale by the transport branch's module.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// Where update files come from.
pub trait Source {
    /// The whole file at `path`, at most `max` bytes.
    fn get(&mut self, path: &str, max: u64, etag: Option<&str>) -> Result<Fetched, FetchError>;
    /// Appends bytes `from..size` of `path` to `out`.
    fn fetch_range(
        &mut self,
        path: &str,
        from: u64,
        size: u64,
        out: &mut File,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), FetchError>;
}

/// A file fetched whole.
pub enum Fetched {
    /// Its bytes.
    Body {
        /// The bytes.
        bytes: Vec<u8>,
        /// The server's entity tag.
        etag: Option<String>,
    },
    /// Unchanged since the entity tag given.
    NotModified,
}

/// Why a fetch failed.
#[derive(Debug)]
pub enum FetchError {
    /// Not there.
    NotFound(String),
    /// Longer than allowed.
    TooLong(String),
    /// I/O.
    Io(String, io::Error),
    /// Hash mismatch.
    Hash(Digest),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(p) => write!(f, "{p}: not found"),
            Self::TooLong(p) => write!(f, "{p}: too long"),
            Self::Io(p, e) => write!(f, "{p}: {e}"),
            Self::Hash(d) => write!(f, "blob {d}: wrong hash"),
        }
    }
}

impl std::error::Error for FetchError {}

/// A repository in a directory.
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// The repository at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }
}

impl Source for DirSource {
    fn get(&mut self, path: &str, max: u64, _etag: Option<&str>) -> Result<Fetched, FetchError> {
        let full = self.root.join(path);
        let file = File::open(&full).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => FetchError::NotFound(path.to_owned()),
            _ => FetchError::Io(path.to_owned(), e),
        })?;
        let mut bytes = Vec::new();
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| FetchError::Io(path.to_owned(), e))?;
        if bytes.len() as u64 > max {
            return Err(FetchError::TooLong(path.to_owned()));
        }
        Ok(Fetched::Body { bytes, etag: None })
    }

    fn fetch_range(
        &mut self,
        path: &str,
        from: u64,
        size: u64,
        out: &mut File,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), FetchError> {
        let io = |e| FetchError::Io(path.to_owned(), e);
        let mut file = File::open(self.root.join(path)).map_err(io)?;
        io::copy(&mut (&mut file).take(from), &mut io::sink()).map_err(io)?;
        let n = io::copy(&mut file.take(size - from), out).map_err(io)?;
        progress(n);
        Ok(())
    }
}

/// Downloads blob `digest` into `dir/<hex>`.
pub fn download_blob(
    source: &mut dyn Source,
    digest: &Digest,
    size: u64,
    dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<PathBuf, FetchError> {
    let hex = digest.to_string();
    let hex = hex.trim_start_matches("sha256:");
    let dest = dir.join(hex);
    if dest.exists() {
        return Ok(dest);
    }
    let part = dir.join(format!("{hex}.part"));
    let io = |e| FetchError::Io(part.display().to_string(), e);
    let mut out = File::options()
        .create(true)
        .append(true)
        .open(&part)
        .map_err(io)?;
    let from = out.metadata().map_err(io)?.len();
    source.fetch_range(
        &format!("blobs/sha256/{hex}"),
        from,
        size,
        &mut out,
        progress,
    )?;
    out.flush().map_err(io)?;
    let found = Digest::of_reader(File::open(&part).map_err(io)?).map_err(io)?;
    if found != *digest {
        let _ = fs::remove_file(&part);
        return Err(FetchError::Hash(*digest));
    }
    fs::rename(&part, &dest).map_err(io)?;
    Ok(dest)
}

/// How long a connection may take to open, and to stay silent.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting.
    pub connect: std::time::Duration,
    /// Without a byte.
    pub stall: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: std::time::Duration::from_secs(10),
            stall: std::time::Duration::from_secs(30),
        }
    }
}

/// PLACEHOLDER: the transport branch brings the HTTP client.
pub struct HttpSource;

impl HttpSource {
    /// PLACEHOLDER: always fails.
    pub fn new(url: &str, _timeouts: Timeouts) -> Result<Self, FetchError> {
        Err(FetchError::NotFound(url.to_owned()))
    }
}

impl Source for HttpSource {
    fn get(&mut self, path: &str, _: u64, _: Option<&str>) -> Result<Fetched, FetchError> {
        Err(FetchError::NotFound(path.to_owned()))
    }

    fn fetch_range(
        &mut self,
        path: &str,
        _: u64,
        _: u64,
        _: &mut File,
        _: &mut dyn FnMut(u64),
    ) -> Result<(), FetchError> {
        Err(FetchError::NotFound(path.to_owned()))
    }
}
