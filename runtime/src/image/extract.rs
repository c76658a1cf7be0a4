//! One image layer (a tar, plain, gzip or zstd) written into an empty
//! directory, safely whatever the archive says.
//!
//! The `tar` crate parses the headers (raw: husk reads PAX records and GNU long
//! names itself, with a size cap, instead of letting the crate buffer them
//! whole); husk writes every entry itself through `sys`, relative to an opened
//! directory descriptor, never following a symbolic link:
//!
//! - **Paths.** Leading `/` are stripped (as Docker and containerd do: a
//!   layer's paths are relative to the image's root), `.` and empty
//!   components dropped; a `..` component, a NUL, a component over
//!   [`MAX_NAME_BYTES`] or a path over [`MAX_PATH_BYTES`] is an error. The
//!   parent directory is opened with `openat2(RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS)`, or, where the kernel has no `openat2`, one
//!   `O_NOFOLLOW` component at a time; a symbolic link or a file on the way
//!   (one made earlier in the same archive, say) is an error. Missing parents
//!   are made, mode 0755, as Docker does.
//! - **Final component.** Files are created with `O_CREAT | O_EXCL |
//!   O_NOFOLLOW` after whatever was there is unlinked (an earlier entry of the
//!   same name, a symbolic link, a hard link to another file: never written
//!   through); an entry replacing a non-empty directory is an error.
//! - **Symbolic links** may point anywhere absolute (the target is resolved in
//!   the container's root, never by husk); a relative target whose `..` climb
//!   above the layer's root is an error. **Hard links** name a path in the
//!   layer, checked like any entry's and resolved beneath the root.
//! - **Device nodes** (character, block) are refused unless
//!   [`Options::allow_devices`]; fifos are always made. **setuid and setgid**
//!   bits of non-directories are cleared unless [`Options::allow_setid`] (the
//!   file stays usable; [`Extracted::setid_cleared`] counts them).
//! - **xattrs** from PAX `SCHILY.xattr.*` records, on files and directories:
//!   `user.*` kept; `security.capability` (file capabilities, privilege like
//!   setuid) only with `allow_setid`; every other namespace (`trusted.*`, which
//!   overlayfs reads, `security.selinux`, ACLs) dropped, and counted.
//! - **OCI whiteouts.** `.wh.NAME` becomes the overlay whiteout NAME, a
//!   character device 0:0 (needs `CAP_MKNOD`; allowed whatever
//!   `allow_devices` says); `.wh..wh..opq` marks its directory opaque with the
//!   xattr `trusted.overlay.opaque=y`; other `.wh..wh.` names (aufs metadata)
//!   are skipped, as containerd does.
//! - **Caps** against tar bombs: uncompressed bytes, entries, path lengths,
//!   PAX and long-name blocks ([`MAX_EXTENSION_BYTES`]).
//! - A file shorter than its header says, and an archive without its
//!   end-of-archive block, are truncated: an error.
//!
//! Directory modes, owners, xattrs and times are applied after every entry
//! (a 0555 directory must still take its children), again through
//! `O_NOFOLLOW` opens. The diff_id, the sha256 of the uncompressed tar, is
//! computed while streaming, trailing blocks included. Making the layer appear
//! atomically (temp dir, sync, rename) is the store's job.

use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use delta_updater::Digest;
use nix::errno::Errno;
use nix::sys::stat::SFlag;
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::spec::NodeKind;
use crate::sys::{self, SysError};

/// Most bytes of uncompressed tar a layer may have, unless options say otherwise.
pub const MAX_LAYER_BYTES: u64 = 4 << 30;
/// Most entries (files, directories, links, nodes) a layer may have.
pub const MAX_LAYER_ENTRIES: u64 = 500_000;
/// Longest path of an entry or a link target, in bytes (`PATH_MAX` less its NUL).
pub const MAX_PATH_BYTES: usize = 4095;
/// Longest component of a path, in bytes (`NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
/// Largest PAX extended header or GNU long name or long link block.
pub const MAX_EXTENSION_BYTES: u64 = 64 * 1024;
/// Most entries whose metadata waits for the end of the layer (directories).
pub const MAX_DIRECTORIES: usize = 100_000;

/// What an extraction may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Most uncompressed tar bytes.
    pub max_bytes: u64,
    /// Most entries.
    pub max_entries: u64,
    /// Make character and block devices the layer holds.
    pub allow_devices: bool,
    /// Keep setuid and setgid bits and `security.capability` xattrs.
    pub allow_setid: bool,
    /// Give entries the owners the archive says (needs `CAP_CHOWN`); else
    /// they belong to the extracting user.
    pub chown: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_bytes: MAX_LAYER_BYTES,
            max_entries: MAX_LAYER_ENTRIES,
            allow_devices: false,
            allow_setid: false,
            chown: true,
        }
    }
}

/// What an extraction made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The sha256 of the uncompressed tar (the OCI diff_id).
    pub diff_id: Digest,
    /// Uncompressed tar bytes.
    pub tar_bytes: u64,
    /// Entries made (directories, files, links, nodes, whiteouts).
    pub entries: u64,
    /// Bytes of regular files written.
    pub file_bytes: u64,
    /// Files whose setuid or setgid bits were cleared.
    pub setid_cleared: u64,
    /// xattrs not set (a namespace husk does not set, or on an entry that takes none).
    pub xattrs_dropped: u64,
}

/// Why a layer could not be extracted.
#[derive(Debug)]
pub enum ExtractError {
    /// The layer could not be read or decompressed.
    Read(io::Error),
    /// The layer is not a well-formed tar.
    Corrupt(String),
    /// The layer's uncompressed tar is larger than allowed.
    TooBig(u64),
    /// The layer has more entries than allowed.
    TooManyEntries(u64),
    /// The layer has more directories than [`MAX_DIRECTORIES`].
    TooManyDirectories,
    /// An entry's path is not acceptable.
    BadPath {
        /// The path as the archive has it.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// A link's target is not acceptable.
    BadLink {
        /// The link.
        path: String,
        /// The target as the archive has it.
        target: String,
        /// Why.
        reason: &'static str,
    },
    /// An entry would be reached through a symbolic link or a non-directory.
    Traverses {
        /// The entry's path.
        path: String,
    },
    /// An entry of a kind husk refuses.
    Refused {
        /// The entry's path.
        path: String,
        /// What it is, and how to allow it if it can be.
        what: String,
    },
    /// A system call on the layer failed.
    Sys(SysError),
    /// Writing a file's contents failed.
    Write {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(_) => f.write_str("reading the layer"),
            Self::Corrupt(why) => write!(f, "layer is not a valid tar: {why}"),
            Self::TooBig(max) => write!(f, "layer is larger than {max} bytes uncompressed"),
            Self::TooManyEntries(max) => write!(f, "layer has more than {max} entries"),
            Self::TooManyDirectories => {
                write!(f, "layer has more than {MAX_DIRECTORIES} directories")
            }
            Self::BadPath { path, reason } => write!(f, "layer entry {path:?} {reason}"),
            Self::BadLink {
                path,
                target,
                reason,
            } => write!(f, "layer entry {path:?}: link target {target:?} {reason}"),
            Self::Traverses { path } => write!(
                f,
                "layer entry {path:?} lies under a symbolic link or a non-directory"
            ),
            Self::Refused { path, what } => write!(f, "layer entry {path:?}: {what}"),
            Self::Sys(e) => write!(f, "extracting the layer: {e}"),
            Self::Write { path, .. } => write!(f, "writing layer file {path:?}"),
        }
    }
}

impl std::error::Error for ExtractError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read(e) | Self::Write { source: e, .. } => Some(e),
            Self::Sys(e) => e.source(),
            _ => None,
        }
    }
}

impl From<SysError> for ExtractError {
    fn from(e: SysError) -> Self {
        Self::Sys(e)
    }
}

/// Extracts the layer `input` (tar, gzip or zstd, told by its first bytes)
/// into the empty directory `dest`.
///
/// On error `dest` holds whatever was made before it; the caller removes it.
pub fn extract(
    input: impl Read,
    dest: &Path,
    options: &Options,
) -> Result<Extracted, ExtractError> {
    extract_resolving(input, dest, options, true)
}

/// [`extract`], trying `openat2` (`beneath`) or walking paths one component
/// at a time from the start, as on kernels without `openat2`.
fn extract_resolving(
    input: impl Read,
    dest: &Path,
    options: &Options,
    beneath: bool,
) -> Result<Extracted, ExtractError> {
    let root = sys::open_dir(dest)?;
    let counted = Counted {
        inner: Decoder::new(input).map_err(ExtractError::Read)?,
        hasher: Sha256::new(),
        bytes: 0,
        max: options.max_bytes,
    };
    let mut archive = tar::Archive::new(counted);
    let mut writer = Writer {
        root,
        options,
        beneath,
        directories: Vec::new(),
        summary: Summary::default(),
    };
    let mut tar_end = 0;
    let entries = archive.entries().map_err(|e| read_error(e, options))?;
    let mut pending = Pending::default();
    for entry in entries.raw(true) {
        let mut entry = entry.map_err(|e| read_error(e, options))?;
        let size = entry.header().entry_size().map_err(corrupt)?;
        tar_end = entry.raw_file_position() + size.div_ceil(512) * 512;
        if pending.take_extension(&mut entry, options)? {
            continue;
        }
        writer.summary.entries += 1;
        if writer.summary.entries > options.max_entries {
            return Err(ExtractError::TooManyEntries(options.max_entries));
        }
        let extensions = std::mem::take(&mut pending);
        writer.entry(&mut entry, extensions, size, options)?;
    }
    if pending.any() {
        return Err(ExtractError::Corrupt(
            "a PAX header or long name describes no entry".into(),
        ));
    }
    let mut counted = archive.into_inner();
    // The reader stops after the first of the two zero blocks that end an
    // archive; at the end of the last entry means there was none.
    if counted.bytes < tar_end + 512 {
        return Err(ExtractError::Corrupt(
            "truncated: no end-of-archive block".into(),
        ));
    }
    io::copy(&mut counted, &mut io::sink()).map_err(|e| read_error(e, options))?;
    writer.finish_directories()?;
    Ok(Extracted {
        diff_id: digest(counted.hasher),
        tar_bytes: counted.bytes,
        entries: writer.summary.entries,
        file_bytes: writer.summary.file_bytes,
        setid_cleared: writer.summary.setid_cleared,
        xattrs_dropped: writer.summary.xattrs_dropped,
    })
}

/// The [`Digest`] a finished hasher holds.
pub(crate) fn digest(hasher: Sha256) -> Digest {
    Digest::from_bytes(hasher.finalize().into())
}

/// The marker error [`Counted`] returns past its limit, found again in
/// whatever `io::Error` the tar crate wraps it in.
#[derive(Debug)]
struct OverLimit;

impl fmt::Display for OverLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("over the size limit")
    }
}

impl std::error::Error for OverLimit {}

fn read_error(e: io::Error, options: &Options) -> ExtractError {
    if e.get_ref().is_some_and(|inner| inner.is::<OverLimit>()) {
        return ExtractError::TooBig(options.max_bytes);
    }
    match e.kind() {
        io::ErrorKind::Other | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
            if e.get_ref().is_some() =>
        {
            ExtractError::Corrupt(e.to_string())
        }
        _ => ExtractError::Read(e),
    }
}

fn corrupt(e: io::Error) -> ExtractError {
    ExtractError::Corrupt(e.to_string())
}

/// The uncompressed tar: counted, capped and hashed as it is read.
struct Counted<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    max: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.bytes > self.max {
            return Err(io::Error::other(OverLimit));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The first bytes of a gzip stream.
const GZIP_MAGIC: &[u8] = &crate::gzip::MAGIC;
/// The first bytes of a zstd frame.
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// A layer's bytes, decompressed as their first bytes say.
enum Decoder<R: Read> {
    Plain(Buffered<R>),
    Gzip(Box<crate::gzip::Decoder<Buffered<R>>>),
    Zstd(Box<ZstdFrames<Buffered<R>>>),
}

/// The input with its first bytes, read to tell the format, put back.
type Buffered<R> = BufReader<io::Chain<io::Cursor<Vec<u8>>, R>>;

impl<R: Read> Decoder<R> {
    fn new(mut input: R) -> io::Result<Self> {
        let mut head = Vec::with_capacity(ZSTD_MAGIC.len());
        (&mut input)
            .take(ZSTD_MAGIC.len() as u64)
            .read_to_end(&mut head)?;
        let format = if head.starts_with(GZIP_MAGIC) {
            Format::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Format::Zstd
        } else {
            Format::Plain
        };
        let input = BufReader::with_capacity(64 * 1024, io::Cursor::new(head).chain(input));
        Ok(match format {
            Format::Gzip => Self::Gzip(Box::new(crate::gzip::Decoder::new(input))),
            Format::Zstd => Self::Zstd(Box::new(ZstdFrames {
                source: Some(input),
                frame: None,
            })),
            Format::Plain => Self::Plain(input),
        })
    }
}

enum Format {
    Plain,
    Gzip,
    Zstd,
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(r) => r.read(buf),
            Self::Gzip(r) => r.read(buf),
            Self::Zstd(r) => r.read(buf),
        }
    }
}

/// A zstd stream of one or more frames (`zstd -T` and `pzstd` write several).
struct ZstdFrames<R: BufRead> {
    source: Option<R>,
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(frame) = &mut self.frame {
                let n = frame.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.source = self.frame.take().map(|frame| frame.into_inner());
            }
            let Some(mut source) = self.source.take() else {
                return Ok(0);
            };
            if source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            let frame = ruzstd::decoding::StreamingDecoder::new(source)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            self.frame = Some(frame);
        }
    }
}

/// What PAX headers and GNU long names said of the next entry.
#[derive(Default)]
struct Pending {
    pax: Option<Vec<u8>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Pending {
    fn any(&self) -> bool {
        self.pax.is_some() || self.long_name.is_some() || self.long_link.is_some()
    }

    /// Takes `entry` if it is an extension header (true), else leaves it.
    fn take_extension<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        options: &Options,
    ) -> Result<bool, ExtractError> {
        let kind = entry.header().entry_type();
        let slot = match kind {
            EntryType::XHeader => &mut self.pax,
            EntryType::GNULongName => &mut self.long_name,
            EntryType::GNULongLink => &mut self.long_link,
            // Global PAX records (git archive's comment) describe no entry
            // husk honours; skipped as containerd does.
            EntryType::XGlobalHeader => return Ok(true),
            _ => return Ok(false),
        };
        if slot.is_some() {
            return Err(ExtractError::Corrupt(
                "two extension headers of one kind describe one entry".into(),
            ));
        }
        let size = entry.header().entry_size().map_err(corrupt)?;
        if size > MAX_EXTENSION_BYTES {
            return Err(ExtractError::Corrupt(format!(
                "an extension header is larger than {MAX_EXTENSION_BYTES} bytes"
            )));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry
            .read_to_end(&mut data)
            .map_err(|e| read_error(e, options))?;
        if data.len() as u64 != size {
            return Err(ExtractError::Corrupt("truncated extension header".into()));
        }
        if kind != EntryType::XHeader {
            // GNU long names end with NUL.
            while data.last() == Some(&0) {
                data.pop();
            }
        }
        *slot = Some(data);
        Ok(true)
    }
}

/// A layer path: relative, without `.` or `..`, each component a file name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LayerPath {
    components: Vec<Vec<u8>>,
}

impl LayerPath {
    fn parse(bytes: &[u8]) -> Result<Self, &'static str> {
        if bytes.len() > MAX_PATH_BYTES {
            return Err("has a path longer than 4095 bytes");
        }
        if bytes.contains(&0) {
            return Err("has a NUL byte in its path");
        }
        let mut components = Vec::new();
        for part in bytes.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err("has a '..' component"),
                _ if part.len() > MAX_NAME_BYTES => {
                    return Err("has a path component longer than 255 bytes")
                }
                _ => components.push(part.to_vec()),
            }
        }
        Ok(Self { components })
    }

    fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The last component; the root has none.
    fn name(&self) -> &OsStr {
        OsStr::from_bytes(self.components.last().map_or(&b"."[..], Vec::as_slice))
    }

    fn parent(&self) -> &[Vec<u8>] {
        &self.components[..self.components.len().saturating_sub(1)]
    }

    fn shown(&self) -> PathBuf {
        let mut path = PathBuf::from("/");
        for component in &self.components {
            path.push(OsStr::from_bytes(component));
        }
        path
    }
}

/// Metadata applied once every entry is written.
struct Deferred {
    path: LayerPath,
    mode: u32,
    owner: (u32, u32),
    mtime: i64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

#[derive(Default)]
struct Summary {
    entries: u64,
    file_bytes: u64,
    setid_cleared: u64,
    xattrs_dropped: u64,
}

/// The header fields of one entry, PAX records applied.
struct Meta {
    path_text: String,
    mode: u32,
    owner: (u32, u32),
    mtime: i64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

struct Writer<'a> {
    root: OwnedFd,
    options: &'a Options,
    /// Whether `openat2` may be tried (false once the kernel said it has none).
    beneath: bool,
    directories: Vec<Deferred>,
    summary: Summary,
}

/// The prefix of OCI whiteout files.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The prefix of whiteout metadata (aufs).
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The opaque-directory marker.
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to make a directory opaque.
const OVERLAY_OPAQUE: &CStr = c"trusted.overlay.opaque";

impl Writer<'_> {
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        pending: Pending,
        size: u64,
        options: &Options,
    ) -> Result<(), ExtractError> {
        let header = entry.header();
        let kind = header.entry_type();
        let pax = pending.pax.as_deref().map(pax_records).transpose()?;
        let pax_value = |key: &str| {
            pax.as_ref()
                .and_then(|records| records.iter().rev().find(|(k, _)| k == key))
                .map(|(_, v)| v.as_slice())
        };
        let path_bytes = match (pax_value("path"), &pending.long_name) {
            (Some(path), _) => path.to_vec(),
            (None, Some(long)) => long.clone(),
            (None, None) => header.path_bytes().into_owned(),
        };
        let path_text = String::from_utf8_lossy(&path_bytes).into_owned();
        let bad_path = |reason| ExtractError::BadPath {
            path: path_text.clone(),
            reason,
        };
        let path = LayerPath::parse(&path_bytes).map_err(bad_path)?;
        if let Some(pax_size) = pax_value("size") {
            if pax_number(pax_size) != Some(size) {
                return Err(bad_path("has a PAX size that differs from its header's"));
            }
        }
        let number = |field: &str, value: Option<&[u8]>, header: io::Result<u64>| {
            let value = match value {
                Some(value) => pax_number(value).ok_or(()),
                None => header.map_err(drop),
            };
            value
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| {
                    ExtractError::Corrupt(format!("entry {path_text:?} has a bad {field}"))
                })
        };
        let uid = number("uid", pax_value("uid"), header.uid())?;
        let gid = number("gid", pax_value("gid"), header.gid())?;
        let mode = header.mode().map_err(corrupt)? & 0o7777;
        let mtime = match pax_value("mtime") {
            Some(value) => {
                let whole = value.split(|&b| b == b'.').next().unwrap_or_default();
                pax_number(whole).ok_or_else(|| bad_path("has a bad PAX mtime"))?
            }
            None => header.mtime().map_err(corrupt)?,
        };
        let mut meta = Meta {
            path_text: path_text.clone(),
            mode,
            owner: (uid, gid),
            mtime: i64::try_from(mtime).unwrap_or(i64::MAX),
            xattrs: Vec::new(),
        };
        for (key, value) in pax.iter().flatten() {
            let Some(name) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            let keep =
                name.starts_with("user.") || (name == "security.capability" && options.allow_setid);
            match CString::new(name) {
                Ok(name) if keep => meta.xattrs.push((name, value.clone())),
                _ => self.summary.xattrs_dropped += 1,
            }
        }

        let name = path.name().as_bytes();
        if name.starts_with(WHITEOUT_PREFIX) && !path.is_root() {
            return self.whiteout(&path, &meta);
        }
        let link_target = || -> Vec<u8> {
            match (pax_value("linkpath"), &pending.long_link) {
                (Some(target), _) => target.to_vec(),
                (None, Some(long)) => long.clone(),
                (None, None) => header
                    .link_name_bytes()
                    .map(|name| name.into_owned())
                    .unwrap_or_default(),
            }
        };
        let device = || -> Result<(u32, u32), ExtractError> {
            let major = header.device_major().map_err(corrupt)?.unwrap_or(0);
            let minor = header.device_minor().map_err(corrupt)?.unwrap_or(0);
            Ok((major, minor))
        };
        match kind {
            EntryType::Directory => self.directory(path, meta),
            _ if path.is_root() => Err(bad_path("is the layer's root but not a directory")),
            EntryType::Regular | EntryType::Continuous => self.file(&path, meta, entry, size),
            EntryType::Symlink => {
                let target = link_target();
                self.symlink(&path, &target, &meta)
            }
            EntryType::Link => {
                let target = link_target();
                self.hardlink(&path, &target, &meta)
            }
            EntryType::Fifo => self.node(&path, &meta, NodeKind::Fifo, (0, 0)),
            EntryType::Char | EntryType::Block if !options.allow_devices => {
                let (major, minor) = device()?;
                let kind = if kind == EntryType::Char {
                    "character"
                } else {
                    "block"
                };
                Err(ExtractError::Refused {
                    path: path_text,
                    what: format!(
                        "{kind} device {major}:{minor} refused (allow with --allow-devices)"
                    ),
                })
            }
            EntryType::Char => self.node(&path, &meta, NodeKind::Char, device()?),
            EntryType::Block => self.node(&path, &meta, NodeKind::Block, device()?),
            EntryType::GNUSparse => Err(ExtractError::Refused {
                path: path_text,
                what: "sparse files are not supported".into(),
            }),
            other => Err(ExtractError::Refused {
                path: path_text,
                what: format!("entry type {:?} is not supported", other.as_byte() as char),
            }),
        }
    }

    /// Opens the parent directory of `path`, making missing directories.
    fn parent(&mut self, path: &LayerPath, text: &str) -> Result<OwnedFd, ExtractError> {
        self.open_beneath(path.parent(), text, true)
    }

    /// Opens the directory `components` beneath the root without following
    /// a symbolic link; with `make`, makes those missing.
    fn open_beneath(
        &mut self,
        components: &[Vec<u8>],
        text: &str,
        make: bool,
    ) -> Result<OwnedFd, ExtractError> {
        let traverses = || ExtractError::Traverses {
            path: text.to_owned(),
        };
        if components.is_empty() {
            return Ok(sys::dup(self.root.as_fd())?);
        }
        if self.beneath {
            let relative = PathBuf::from(OsStr::from_bytes(&components.join(&b'/')));
            match sys::open_dir_beneath(self.root.as_fd(), &relative) {
                Ok(Some(fd)) => return Ok(fd),
                Ok(None) => self.beneath = false,
                Err(e) if e.errno() == Errno::ENOENT => {}
                Err(e) if matches!(e.errno(), Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV) => {
                    return Err(traverses())
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut dir = sys::dup(self.root.as_fd())?;
        let mut shown = PathBuf::from("/");
        for component in components {
            let name = OsStr::from_bytes(component);
            shown.push(name);
            let next = match sys::open_dir_at(dir.as_fd(), name, &shown) {
                Err(e) if e.errno() == Errno::ENOENT && make => {
                    sys::mkdir_at(dir.as_fd(), name, 0o755, &shown)?;
                    sys::open_dir_at(dir.as_fd(), name, &shown)
                }
                other => other,
            };
            dir = match next {
                Ok(fd) => fd,
                Err(e) if matches!(e.errno(), Errno::ELOOP | Errno::ENOTDIR) => {
                    return Err(traverses())
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(dir)
    }

    /// Removes whatever is at `name` in `dir`, unless it is a directory and
    /// `keep_directory`; true if a directory was kept.
    fn clear(
        &mut self,
        dir: BorrowedFd<'_>,
        path: &LayerPath,
        keep_directory: bool,
        meta: &Meta,
    ) -> Result<bool, ExtractError> {
        let name = path.name();
        let shown = &path.shown();
        match sys::kind_at(dir, name, shown)? {
            None => Ok(false),
            Some(SFlag::S_IFDIR) if keep_directory => Ok(true),
            Some(SFlag::S_IFDIR) => match sys::unlink_at(dir, name, true, shown) {
                Ok(()) => {
                    // An empty directory: its metadata has nothing left to apply to.
                    self.directories.retain(|d| d.path != *path);
                    Ok(false)
                }
                Err(e) if matches!(e.errno(), Errno::ENOTEMPTY | Errno::EEXIST) => {
                    Err(ExtractError::BadPath {
                        path: meta.path_text.clone(),
                        reason: "would replace a non-empty directory",
                    })
                }
                Err(e) => Err(e.into()),
            },
            Some(_) => {
                sys::unlink_at(dir, name, false, shown)?;
                Ok(false)
            }
        }
    }

    fn directory(&mut self, path: LayerPath, meta: Meta) -> Result<(), ExtractError> {
        if !path.is_root() {
            let parent = self.parent(&path, &meta.path_text)?;
            let shown = path.shown();
            if !self.clear(parent.as_fd(), &path, true, &meta)? {
                sys::mkdir_at(parent.as_fd(), path.name(), 0o700, &shown)?;
            }
        }
        if self.directories.len() >= MAX_DIRECTORIES {
            return Err(ExtractError::TooManyDirectories);
        }
        self.directories.push(Deferred {
            path,
            mode: meta.mode,
            owner: meta.owner,
            mtime: meta.mtime,
            xattrs: meta.xattrs,
        });
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        path: &LayerPath,
        meta: Meta,
        entry: &mut tar::Entry<'_, R>,
        size: u64,
    ) -> Result<(), ExtractError> {
        let parent = self.parent(path, &meta.path_text)?;
        let shown = path.shown();
        self.clear(parent.as_fd(), path, false, &meta)?;
        let mut file = sys::create_at(parent.as_fd(), path.name(), &shown)?;
        let written = io::copy(entry, &mut file).map_err(|e| {
            if e.get_ref().is_some_and(|inner| inner.is::<OverLimit>()) {
                ExtractError::TooBig(self.options.max_bytes)
            } else {
                ExtractError::Write {
                    path: meta.path_text.clone(),
                    source: e,
                }
            }
        })?;
        if written != size {
            return Err(ExtractError::Corrupt(format!(
                "truncated: {:?} has {written} of its {size} bytes",
                meta.path_text
            )));
        }
        file.flush().map_err(|source| ExtractError::Write {
            path: meta.path_text.clone(),
            source,
        })?;
        self.summary.file_bytes += written;
        self.owner(parent.as_fd(), path, &meta)?;
        sys::fchmod(file.as_fd(), self.mode(meta.mode), &shown)?;
        for (name, value) in &meta.xattrs {
            sys::set_xattr(file.as_fd(), name, value, &shown)?;
        }
        drop(file);
        sys::set_mtime_at(parent.as_fd(), path.name(), meta.mtime, &shown)?;
        Ok(())
    }

    fn symlink(
        &mut self,
        path: &LayerPath,
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        let bad = |reason| ExtractError::BadLink {
            path: meta.path_text.clone(),
            target: String::from_utf8_lossy(target).into_owned(),
            reason,
        };
        if target.is_empty() {
            return Err(bad("is empty"));
        }
        if target.len() > MAX_PATH_BYTES || target.contains(&0) {
            return Err(bad("is longer than 4095 bytes or has a NUL byte"));
        }
        if target[0] != b'/' {
            let mut depth = path.parent().len();
            for part in target.split(|&b| b == b'/') {
                match part {
                    b"" | b"." => {}
                    b".." if depth == 0 => return Err(bad("climbs out of the layer")),
                    b".." => depth -= 1,
                    _ => depth += 1,
                }
            }
        }
        self.drop_xattrs(meta);
        let parent = self.parent(path, &meta.path_text)?;
        let shown = path.shown();
        self.clear(parent.as_fd(), path, false, meta)?;
        sys::symlink_at(
            OsStr::from_bytes(target),
            parent.as_fd(),
            path.name(),
            &shown,
        )?;
        self.owner(parent.as_fd(), path, meta)?;
        sys::set_mtime_at(parent.as_fd(), path.name(), meta.mtime, &shown)?;
        Ok(())
    }

    fn hardlink(
        &mut self,
        path: &LayerPath,
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        let target_text = String::from_utf8_lossy(target).into_owned();
        let bad = |reason| ExtractError::BadLink {
            path: meta.path_text.clone(),
            target: target_text.clone(),
            reason,
        };
        let source = LayerPath::parse(target).map_err(bad)?;
        if source.is_root() {
            return Err(bad("is the layer's root"));
        }
        self.drop_xattrs(meta);
        let source_dir = match self.open_beneath(source.parent(), &target_text, false) {
            Err(ExtractError::Sys(e)) if e.errno() == Errno::ENOENT => {
                return Err(bad("is not in the layer (yet)"))
            }
            other => other?,
        };
        let shown = path.shown();
        if sys::kind_at(source_dir.as_fd(), source.name(), &source.shown())?.is_none() {
            return Err(bad("is not in the layer (yet)"));
        }
        let parent = self.parent(path, &meta.path_text)?;
        if source == *path {
            return Err(bad("is the link itself"));
        }
        self.clear(parent.as_fd(), path, false, meta)?;
        match sys::hardlink_at(
            source_dir.as_fd(),
            source.name(),
            parent.as_fd(),
            path.name(),
            &shown,
        ) {
            Err(e) if e.errno() == Errno::EPERM => Err(bad("is a directory")),
            other => Ok(other?),
        }
    }

    fn node(
        &mut self,
        path: &LayerPath,
        meta: &Meta,
        kind: NodeKind,
        device: (u32, u32),
    ) -> Result<(), ExtractError> {
        self.drop_xattrs(meta);
        let parent = self.parent(path, &meta.path_text)?;
        let shown = path.shown();
        self.clear(parent.as_fd(), path, false, meta)?;
        let mode = self.mode(meta.mode);
        sys::mknod_at(parent.as_fd(), path.name(), kind, device, &shown)?;
        self.owner(parent.as_fd(), path, meta)?;
        // After chown, which clears setuid and setgid.
        sys::chmod_new_node_at(parent.as_fd(), path.name(), mode, &shown)?;
        sys::set_mtime_at(parent.as_fd(), path.name(), meta.mtime, &shown)?;
        Ok(())
    }

    fn whiteout(&mut self, path: &LayerPath, meta: &Meta) -> Result<(), ExtractError> {
        let name = path.name().as_bytes();
        let parent = self.parent(path, &meta.path_text)?;
        if name == WHITEOUT_OPAQUE {
            let dir_shown = LayerPath {
                components: path.parent().to_vec(),
            }
            .shown();
            sys::set_xattr(parent.as_fd(), OVERLAY_OPAQUE, b"y", &dir_shown)?;
            return Ok(());
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(());
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(ExtractError::BadPath {
                path: meta.path_text.clone(),
                reason: "is a whiteout of no file",
            });
        }
        let mut hidden_path = path.clone();
        if let Some(last) = hidden_path.components.last_mut() {
            *last = hidden.to_vec();
        }
        let shown = hidden_path.shown();
        let hidden = OsStr::from_bytes(hidden);
        self.clear(parent.as_fd(), &hidden_path, false, meta)?;
        sys::mknod_at(parent.as_fd(), hidden, NodeKind::Char, (0, 0), &shown)?;
        if self.options.chown {
            sys::chown_at(parent.as_fd(), hidden, 0, 0, &shown)?;
        }
        sys::set_mtime_at(parent.as_fd(), hidden, meta.mtime, &shown)?;
        Ok(())
    }

    /// Applies directory metadata, deepest paths first.
    fn finish_directories(&mut self) -> Result<(), ExtractError> {
        let mut directories = std::mem::take(&mut self.directories);
        directories.sort_by_key(|d| std::cmp::Reverse(d.path.components.len()));
        for dir in directories {
            let text =
                String::from_utf8_lossy(&dir.path.shown().as_os_str().as_bytes()[1..]).into_owned();
            let fd = self.open_beneath(&dir.path.components, &text, false)?;
            let shown = dir.path.shown();
            if self.options.chown {
                sys::fchown(fd.as_fd(), dir.owner.0, dir.owner.1, &shown)?;
            }
            sys::fchmod(fd.as_fd(), dir.mode, &shown)?;
            for (name, value) in &dir.xattrs {
                sys::set_xattr(fd.as_fd(), name, value, &shown)?;
            }
            sys::futimens(fd.as_fd(), dir.mtime, &shown)?;
        }
        Ok(())
    }

    fn owner(
        &self,
        parent: BorrowedFd<'_>,
        path: &LayerPath,
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        if self.options.chown {
            sys::chown_at(
                parent,
                path.name(),
                meta.owner.0,
                meta.owner.1,
                &path.shown(),
            )?;
        }
        Ok(())
    }

    /// The mode of a non-directory, setuid and setgid cleared unless allowed.
    fn mode(&mut self, mode: u32) -> u32 {
        if mode & 0o6000 != 0 && !self.options.allow_setid {
            self.summary.setid_cleared += 1;
            return mode & !0o6000;
        }
        mode
    }

    fn drop_xattrs(&mut self, meta: &Meta) {
        self.summary.xattrs_dropped += meta.xattrs.len() as u64;
    }
}

/// The records `<len> <key>=<value>\n` of a PAX extended header.
fn pax_records(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, ExtractError> {
    let mut records = Vec::new();
    for extension in tar::PaxExtensions::new(data) {
        let extension =
            extension.map_err(|_| ExtractError::Corrupt("malformed PAX record".into()))?;
        let key = extension
            .key()
            .map_err(|_| ExtractError::Corrupt("PAX key is not UTF-8".into()))?;
        records.push((key.to_owned(), extension.value_bytes().to_vec()));
    }
    Ok(records)
}

/// A decimal number of a PAX record.
fn pax_number(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
pub(crate) mod tests;
