//! The update transport (feature `device`): where update files come from.
//!
//! A [`Source`] is a repository served over plain HTTP/1.1 ([`HttpSource`],
//! hand-written over `std::net::TcpStream` for size: see [`http`]; HTTPS with
//! the `tls` feature, see [`tls`]) or a
//! directory such as a USB stick ([`DirSource`]). Plain HTTP is safe for
//! integrity: metadata is signed and blobs are hash-checked
//! ([`download_blob`] checks the sha256 of the whole file before it is renamed
//! into place); the transport's job is that no server, however it misbehaves,
//! makes the device read more than asked, wait forever or keep bad bytes.
//!
//! Every read is capped: metadata at the caller's `max`, blobs at their signed
//! size. A server that stops sending for [`Timeouts::stall`] is dropped, and
//! so is one that trickles: each request has an overall deadline of twice the
//! stall time plus the bytes asked for at [`MIN_RATE`].
//!
//! Host names in repository URLs need the `dns` feature (the C library's
//! `getaddrinfo`, ~25 KB on armv7 musl); without it only IP literals are
//! accepted, and [`HttpSource::new`] says so.

use core::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::digest::Digest;

pub mod http;
#[cfg(feature = "tls")]
pub mod tls;

pub use http::HttpSource;

/// The slowest average rate a download may have, in bytes per second, before
/// it is dropped (the defence against slow retrieval; see [`HttpSource::min_rate`]).
pub const MIN_RATE: u64 = 1024;

/// The size of the buffer a download is copied through.
const COPY_BUF: usize = 16 * 1024;

/// Where update files come from: a repository served over HTTP, or a directory (USB stick).
pub trait Source {
    /// The whole file at `path` (relative to the repository root, e.g. "timestamp.json",
    /// "releases/CLASS/ARCH/7.json", "root/2.json"), at most `max` bytes (more is an error,
    /// never read past max+1). With `etag`, the server may answer "not modified".
    fn get(&mut self, path: &str, max: u64, etag: Option<&str>) -> Result<Fetched, FetchError>;

    /// Appends bytes `from..size` of `path` to `out` (the caller opened it in append mode at
    /// length `from`), never writing past `size` bytes in total; a body longer than asked is an
    /// error after `size` bytes are written.
    ///
    /// When the source cannot resume (an HTTP server answering a range request with the whole
    /// file, `200`), the source truncates `out` to 0 itself and writes the file from its start:
    /// the caller's file is always a prefix of the remote file. `progress` is called with the
    /// number of bytes of the file `out` holds so far (0 again after such a restart).
    fn fetch_range(
        &mut self,
        path: &str,
        from: u64,
        size: u64,
        out: &mut File,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), FetchError>;
}

/// What [`Source::get`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The file's content, and the entity tag to send next time (HTTP only).
    Body {
        /// The whole file.
        bytes: Vec<u8>,
        /// The server's `ETag`, if it sent one (at most [`http::MAX_ETAG_LEN`] bytes).
        etag: Option<String>,
    },
    /// The file has not changed since the `etag` passed in.
    NotModified,
}

/// How long a network source waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For the TCP connection to be established (per address tried).
    pub connect: Duration,
    /// For the next byte of a response, once connected.
    pub stall: Duration,
}

impl Default for Timeouts {
    /// 10 s to connect, 30 s without a byte.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            stall: Duration::from_secs(30),
        }
    }
}

/// Why a file could not be fetched. Each variant names the URL (or local path)
/// and Display is one line.
#[derive(Debug)]
pub enum FetchError {
    /// The repository URL given to [`HttpSource::new`] is not `http://host[:port][/prefix]`.
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A repository path is not a plain relative path (`..`, absolute, odd characters).
    Path(String),
    /// No TCP connection could be made (refused, unreachable, timed out, no address).
    Connect {
        /// The URL asked for.
        url: String,
        /// The last error.
        error: io::Error,
    },
    /// The TLS handshake failed (the server's certificate does not verify
    /// against the CA file, names another host, or the server speaks no TLS).
    Tls {
        /// The URL asked for.
        url: String,
        /// Why, as rustls says it.
        error: io::Error,
    },
    /// The CA file for `https://` cannot be used.
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The request could not be sent (the connection broke or stalled).
    Send {
        /// The URL asked for.
        url: String,
        /// The error.
        error: io::Error,
    },
    /// The connection failed while the response was read (reset by the server).
    Receive {
        /// The URL asked for.
        url: String,
        /// The error.
        error: io::Error,
    },
    /// The server sent nothing for the stall timeout.
    Stall {
        /// The URL asked for.
        url: String,
        /// The stall timeout.
        after: Duration,
    },
    /// The response took longer than its overall deadline (a trickling server).
    Deadline {
        /// The URL asked for.
        url: String,
        /// The deadline.
        after: Duration,
    },
    /// The server answered with a status other than the ones asked for.
    Status {
        /// The URL asked for.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The server answered with a redirect, which husk does not follow.
    Redirect {
        /// The URL asked for.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The file is longer than the most the caller accepts.
    TooLong {
        /// The URL or path.
        url: String,
        /// The most accepted, in bytes.
        max: u64,
    },
    /// The connection closed (or the file ended) before the length announced or asked for.
    Truncated {
        /// The URL or path.
        url: String,
    },
    /// The response could not be parsed.
    BadResponse {
        /// The URL asked for.
        url: String,
        /// What is wrong.
        error: http::ResponseError,
    },
    /// A `206` whose `Content-Range` does not start where asked.
    WrongRange {
        /// The URL asked for.
        url: String,
        /// The first byte asked for.
        from: u64,
        /// The first byte the server sent.
        start: u64,
    },
    /// The remote file's length is not the size expected.
    WrongLength {
        /// The URL or path.
        url: String,
        /// The size expected.
        expected: u64,
        /// The length the server announced or the file has.
        found: u64,
    },
    /// A downloaded blob is not the blob asked for (the partial file is deleted).
    HashMismatch {
        /// The digest asked for.
        digest: Digest,
        /// The digest of what was downloaded.
        found: Digest,
    },
    /// A local file operation failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
}

impl FetchError {
    /// Whether the file asked for does not exist (HTTP 404 or 410, or no
    /// such file in a directory source): for probing, as the device does
    /// for the root after its own.
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Status { status, .. } => matches!(status, 404 | 410),
            Self::Io { error, .. } => error.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url { url, reason } => write!(f, "repository URL {url:?}: {reason}"),
            Self::Path(path) => write!(f, "{path:?} is not a relative repository path"),
            Self::Connect { url, error } => write!(f, "{url}: cannot connect: {error}"),
            Self::Tls { url, error } => write!(f, "{url}: TLS handshake failed: {error}"),
            Self::CaFile { path, reason } => write!(f, "CA file {}: {reason}", path.display()),
            Self::Send { url, error } => write!(f, "{url}: cannot send the request: {error}"),
            Self::Receive { url, error } => write!(f, "{url}: connection lost: {error}"),
            Self::Stall { url, after } => {
                write!(f, "{url}: no data for {} s (stalled)", after.as_secs())
            }
            Self::Deadline { url, after } => write!(
                f,
                "{url}: too slow (not done after {} s, under {MIN_RATE} bytes/s)",
                after.as_secs()
            ),
            Self::Status { url, status } => write!(f, "{url}: HTTP status {status}"),
            Self::Redirect { url, status } => {
                write!(f, "{url}: HTTP status {status} redirect (not followed)")
            }
            Self::TooLong { url, max } => write!(f, "{url}: longer than {max} bytes"),
            Self::Truncated { url } => write!(f, "{url}: ended before the length expected"),
            Self::BadResponse { url, error } => write!(f, "{url}: bad HTTP response: {error}"),
            Self::WrongRange { url, from, start } => write!(
                f,
                "{url}: asked for bytes from {from}, the server sent from {start}"
            ),
            Self::WrongLength {
                url,
                expected,
                found,
            } => write!(f, "{url}: is {found} bytes, expected {expected}"),
            Self::HashMismatch { digest, found } => {
                write!(f, "blob {digest}: downloaded data is {found} (deleted)")
            }
            Self::Io { op, path, error } => write!(f, "{op} {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for FetchError {}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FetchError + 'a {
    move |error| FetchError::Io {
        op,
        path: path.to_owned(),
        error,
    }
}

/// Checks that `path` is a repository path: relative, `/`-separated plain
/// names of `A-Z a-z 0-9 . _ + -`, none of them `.` or `..`. Nothing else is
/// ever put in a URL or joined to a directory.
pub fn check_path(path: &str) -> Result<(), FetchError> {
    let ok = !path.is_empty()
        && path.split('/').all(|name| {
            !name.is_empty()
                && name != "."
                && name != ".."
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(FetchError::Path(path.to_owned()))
    }
}

/// A repository in a local directory (a USB stick, an unpacked tarball).
#[derive(Debug, Clone)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// The repository whose root (the directory holding `timestamp.json`) is `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    fn open(&self, path: &str) -> Result<(PathBuf, File), FetchError> {
        check_path(path)?;
        let full = self.root.join(path);
        debug_assert!(full.components().all(|c| c != Component::ParentDir));
        let file = File::open(&full).map_err(io_err("open", &full))?;
        Ok((full, file))
    }
}

impl Source for DirSource {
    /// Reads the file; `etag` is ignored (a directory always answers with the body).
    fn get(&mut self, path: &str, max: u64, _etag: Option<&str>) -> Result<Fetched, FetchError> {
        let (full, file) = self.open(path)?;
        let mut bytes = Vec::new();
        file.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &full))?;
        if bytes.len() as u64 > max {
            return Err(FetchError::TooLong {
                url: full.display().to_string(),
                max,
            });
        }
        Ok(Fetched::Body { bytes, etag: None })
    }

    /// Copies the bytes; the file must be exactly `size` bytes long.
    fn fetch_range(
        &mut self,
        path: &str,
        from: u64,
        size: u64,
        out: &mut File,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), FetchError> {
        let (full, mut file) = self.open(path)?;
        let url = || full.display().to_string();
        let len = file.metadata().map_err(io_err("stat", &full))?.len();
        if len != size {
            return Err(FetchError::WrongLength {
                url: url(),
                expected: size,
                found: len,
            });
        }
        file.seek(SeekFrom::Start(from))
            .map_err(io_err("seek", &full))?;
        copy_range(&mut file, &full, url(), path, from, size, out, progress)
    }
}

/// Copies bytes `from..size` of a local file from `reader` (positioned at
/// `from`) to `out`: for sources that read files in place ([`DirSource`],
/// husk's tarball source). `shown` is the file read, `url` what a short
/// file is reported as, `path` the repository path being written.
#[allow(clippy::too_many_arguments, reason = "one call per local source")]
pub fn copy_range(
    reader: &mut impl Read,
    shown: &Path,
    url: String,
    path: &str,
    from: u64,
    size: u64,
    out: &mut File,
    progress: &mut dyn FnMut(u64),
) -> Result<(), FetchError> {
    let mut done = from;
    let mut buf = vec![0u8; COPY_BUF];
    while done < size {
        let want = (size - done).min(COPY_BUF as u64) as usize;
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => return Err(FetchError::Truncated { url }),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", shown)(e)),
        };
        out.write_all(&buf[..n])
            .map_err(io_err("write", Path::new(path)))?;
        done += n as u64;
        progress(done);
    }
    Ok(())
}

/// Downloads blob `digest` of `size` bytes (path `blobs/sha256/<hex>`) into
/// `dir/<hex>`, resuming from `dir/<hex>.part` if one exists; the sha256 of the whole file is
/// checked before the rename into place; on mismatch the partial is deleted and an error names
/// the digest. Returns the final path. Already present and correct: no request at all.
///
/// A mismatch after resuming from an old partial (which may have been corrupted on disk, or
/// came from a server that changed the file) deletes it and downloads once more from the
/// start; a mismatch of a download from the start is the error. `progress` gets the bytes
/// of the blob on disk so far. The final file and the directory are synced before returning.
pub fn download_blob(
    source: &mut dyn Source,
    digest: &Digest,
    size: u64,
    dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<PathBuf, FetchError> {
    let name = digest.to_string();
    let hex = &name["sha256:".len()..];
    let path = format!("blobs/sha256/{hex}");
    let done = dir.join(hex);
    let part = dir.join(format!("{hex}.part"));
    match File::open(&done) {
        Ok(file) => {
            let len = file.metadata().map_err(io_err("stat", &done))?.len();
            if len == size && Digest::of_reader(file).map_err(io_err("read", &done))? == *digest {
                progress(size);
                return Ok(done);
            }
            // Not the blob (a torn write from before husk synced, or tampering): fetch it.
            fs::remove_file(&done).map_err(io_err("remove", &done))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("open", &done)(e)),
    }
    loop {
        let mut out = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&part)
            .map_err(io_err("open", &part))?;
        let mut from = out.metadata().map_err(io_err("stat", &part))?.len();
        if from > size {
            out.set_len(0).map_err(io_err("truncate", &part))?;
            from = 0;
        }
        let resumed = from > 0;
        if from < size {
            source.fetch_range(&path, from, size, &mut out, progress)?;
        }
        out.sync_all().map_err(io_err("sync", &part))?;
        drop(out);
        let file = File::open(&part).map_err(io_err("open", &part))?;
        let len = file.metadata().map_err(io_err("stat", &part))?.len();
        let found = Digest::of_reader(file).map_err(io_err("read", &part))?;
        if len == size && found == *digest {
            fs::rename(&part, &done).map_err(io_err("rename", &part))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("sync", dir))?;
            return Ok(done);
        }
        fs::remove_file(&part).map_err(io_err("remove", &part))?;
        if !resumed {
            return Err(FetchError::HashMismatch {
                digest: *digest,
                found,
            });
        }
        progress(0);
    }
}

#[cfg(test)]
mod tests;
