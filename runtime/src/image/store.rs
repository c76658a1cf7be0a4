//! The image store under the data directory: layers extracted once, keyed by
//! their diff_id, the configs of imported images, and the image records.
//!
//! ```text
//! <data>/                          0700, default /var/lib/husk (--data-dir)
//! <data>/lock                      flock(2)ed by every command that reads or changes the store
//! <data>/tmp/<random>/             a layer being extracted: root/ and layer.json
//! <data>/layers/sha256/<hex>/      a layer, renamed here whole once extracted and synced:
//!   root/                          its tree, never written again (overlay lower dir)
//!   layer.json                     {"size": file bytes, "entries": n}
//! <data>/blobs/sha256/<hex>        image configs and manifests, digest checked
//! <data>/images.json               the image records, replaced atomically
//! ```
//!
//! A layer directory exists only complete: extraction happens in `tmp/`,
//! then `syncfs` and one `rename`. A failed extraction removes its temporary
//! directory; one interrupted by a crash is removed at the next [`Store::lock`].
//! Blobs are written to a temporary file, synced and renamed too, and are
//! checked against their digest again whenever they are read.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use delta_updater::Digest;
use serde::{Deserialize, Serialize};
use serde_json_core::str::EscapedStr;
use sha2::{Digest as _, Sha256};

use super::extract::{self, ExtractError, Extracted, Options};
use super::{ImageName, ImageRecord};
use crate::sys::{self, SysError};
use crate::wire::{self, Field, HeapCapped, WireError};

/// Where the store lives unless `--data-dir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/husk";
/// Most images the store records.
pub const MAX_IMAGES: usize = 256;
/// Most layers one image may have (overlayfs stacks at most 500 lower dirs).
pub const MAX_LAYERS: usize = 128;
/// Largest `images.json`, in bytes.
pub const MAX_IMAGES_BYTES: usize = 4 << 20;
/// Largest `layer.json`, in bytes.
pub const MAX_LAYER_JSON_BYTES: usize = 512;
/// Longest architecture or OS name recorded.
pub const MAX_PLATFORM_BYTES: usize = 32;
/// Longest `created` time recorded.
pub const MAX_CREATED_BYTES: usize = 64;
/// The version of the `images.json` layout this husk writes.
pub const IMAGES_VERSION: u32 = 1;

const IMAGES_FILE: &str = "images.json";
const LAYER_FILE: &str = "layer.json";
const LAYER_ROOT: &str = "root";

/// The store at a data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The exclusive lock on a store, held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: sys::FileLock,
}

/// A layer in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// Its diff_id.
    pub diff_id: Digest,
    /// Bytes of its regular files.
    pub size: u64,
    /// Its entries.
    pub entries: u64,
    /// Files whose setuid or setgid bits extraction cleared.
    pub setid_cleared: u64,
    /// xattrs extraction did not set.
    pub xattrs_dropped: u64,
}

/// Why the store could not be used.
#[derive(Debug)]
pub enum StoreError {
    /// An I/O operation on a store path failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A system call on a store path failed.
    Sys(SysError),
    /// A layer could not be extracted.
    Extract {
        /// The layer, as the image names it.
        layer: String,
        /// Why.
        source: ExtractError,
    },
    /// Data did not have the digest it was expected to have.
    DigestMismatch {
        /// What was read.
        what: String,
        /// The digest expected.
        expected: Digest,
        /// The digest found.
        found: Digest,
    },
    /// A file of the store is not what this husk writes.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob or layer the store should hold is missing.
    Missing {
        /// What.
        what: String,
    },
    /// The store holds as many images as it may.
    Full,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { op, path, .. } => write!(f, "{op} {}", path.display()),
            Self::Sys(e) => e.fmt(f),
            Self::Extract { layer, .. } => write!(f, "layer {layer}"),
            Self::DigestMismatch {
                what,
                expected,
                found,
            } => write!(f, "{what} has digest {found}, not {expected}"),
            Self::Corrupt { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::Missing { what } => write!(f, "{what} is missing from the store"),
            Self::Full => write!(f, "the store holds {MAX_IMAGES} images already"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Sys(e) => e.source(),
            Self::Extract { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<SysError> for StoreError {
    fn from(e: SysError) -> Self {
        Self::Sys(e)
    }
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The 64 hex digits of `digest`.
pub fn hex(digest: &Digest) -> String {
    digest.to_string()["sha256:".len()..].to_owned()
}

impl Store {
    /// The store at `root` (made on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes the store's directories if missing, takes the store's lock, and
    /// removes what an interrupted extraction left in `tmp/`.
    pub fn lock(&self) -> Result<Lock, StoreError> {
        let mut builder = fs::DirBuilder::new();
        builder.mode(0o700).recursive(true);
        for dir in [
            self.root.clone(),
            self.tmp_dir(),
            self.root.join("layers/sha256"),
            self.root.join("blobs/sha256"),
        ] {
            builder.create(&dir).map_err(io_error("create", &dir))?;
        }
        let path = self.root.join("lock");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_error("open", &path))?;
        let file = sys::lock_exclusive(file, &path)?;
        let tmp = self.tmp_dir();
        for entry in fs::read_dir(&tmp).map_err(io_error("list", &tmp))? {
            let entry = entry.map_err(io_error("list", &tmp))?;
            let path = entry.path();
            remove_tree(&path)?;
        }
        Ok(Lock { _file: file })
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(hex(diff_id))
    }

    /// The extracted tree of layer `diff_id` (an overlay lower dir).
    pub fn layer_root(&self, diff_id: &Digest) -> PathBuf {
        self.layer_path(diff_id).join(LAYER_ROOT)
    }

    /// Whether layer `diff_id` is in the store.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_path(diff_id).join(LAYER_FILE).is_file()
    }

    /// Extracts the layer `input` into the store. With `expected`, its diff_id
    /// must be that (else nothing is kept); `blob`, if given, is the digest the
    /// bytes of `input` as read must have (a compressed blob's). `name` names
    /// the layer in errors.
    pub fn add_layer(
        &self,
        _lock: &Lock,
        input: impl Read,
        name: &str,
        expected: Option<&Digest>,
        blob: Option<&Digest>,
        options: &Options,
    ) -> Result<LayerInfo, StoreError> {
        let tmp = self.make_tmp()?;
        let result = self.extract_into(&tmp, input, name, expected, blob, options);
        let info = match result {
            Ok(info) => info,
            Err(e) => {
                remove_tree(&tmp)?;
                return Err(e);
            }
        };
        let dest = self.layer_path(&info.diff_id);
        if self.has_layer(&info.diff_id) {
            remove_tree(&tmp)?;
            return Ok(info);
        }
        fs::rename(&tmp, &dest).map_err(io_error("rename", &dest))?;
        sync_dir(dest.parent().unwrap_or(&self.root))?;
        Ok(info)
    }

    fn extract_into(
        &self,
        tmp: &Path,
        input: impl Read,
        name: &str,
        expected: Option<&Digest>,
        blob: Option<&Digest>,
        options: &Options,
    ) -> Result<LayerInfo, StoreError> {
        let layer_root = tmp.join(LAYER_ROOT);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&layer_root)
            .map_err(io_error("create", &layer_root))?;
        let mut hashed = Hashed {
            inner: input,
            hasher: Sha256::new(),
        };
        let extracted = extract::extract(&mut hashed, &layer_root, options).map_err(|source| {
            StoreError::Extract {
                layer: name.to_owned(),
                source,
            }
        })?;
        if let Some(blob) = blob {
            // The rest of the blob (a compressed stream's trailer) counts too.
            io::copy(&mut hashed, &mut io::sink()).map_err(|source| StoreError::Extract {
                layer: name.to_owned(),
                source: ExtractError::Read(source),
            })?;
            let found = extract::digest(hashed.hasher);
            if found != *blob {
                return Err(StoreError::DigestMismatch {
                    what: format!("layer blob {name}"),
                    expected: *blob,
                    found,
                });
            }
        }
        let Extracted {
            diff_id,
            file_bytes,
            entries,
            setid_cleared,
            xattrs_dropped,
            ..
        } = extracted;
        if let Some(expected) = expected {
            if diff_id != *expected {
                return Err(StoreError::DigestMismatch {
                    what: format!("layer {name} (uncompressed)"),
                    expected: *expected,
                    found: diff_id,
                });
            }
        }
        let info = LayerInfo {
            diff_id,
            size: file_bytes,
            entries,
            setid_cleared,
            xattrs_dropped,
        };
        let json = format!(
            "{{\"size\": {file_bytes}, \"entries\": {entries}, \"setid_cleared\": {setid_cleared}, \"xattrs_dropped\": {xattrs_dropped}}}\n"
        );
        write_synced(&tmp.join(LAYER_FILE), json.as_bytes())?;
        let dir = sys::open_dir(tmp)?;
        sys::syncfs(std::os::fd::AsFd::as_fd(&dir), tmp)?;
        Ok(info)
    }

    fn make_tmp(&self) -> Result<PathBuf, StoreError> {
        let tmp = self.tmp_dir();
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        loop {
            let dir = tmp.join(format!("{seed:016x}"));
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => seed = seed.wrapping_add(1),
                Err(e) => return Err(io_error("create", &dir)(e)),
            }
        }
    }

    /// Layer `diff_id`'s record.
    pub fn layer(&self, diff_id: &Digest) -> Result<LayerInfo, StoreError> {
        let path = self.layer_path(diff_id).join(LAYER_FILE);
        let text = match read_capped(&path, MAX_LAYER_JSON_BYTES) {
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    what: format!("layer {diff_id}"),
                })
            }
            other => other?,
        };
        #[derive(Deserialize)]
        struct LayerWire {
            size: u64,
            entries: u64,
            setid_cleared: Option<u64>,
            xattrs_dropped: Option<u64>,
        }
        let (wire, _) = serde_json_core::from_slice::<LayerWire>(&text)
            .map_err(|e| corrupt(&path, format!("not a layer record: {e}")))?;
        Ok(LayerInfo {
            diff_id: *diff_id,
            size: wire.size,
            entries: wire.entries,
            setid_cleared: wire.setid_cleared.unwrap_or(0),
            xattrs_dropped: wire.xattrs_dropped.unwrap_or(0),
        })
    }

    /// Every layer in the store.
    pub fn layers(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.root.join("layers/sha256");
        let entries = match fs::read_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.map_err(io_error("list", &dir))?,
        };
        let mut layers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("list", &dir))?;
            let name = entry.file_name();
            let digest = name
                .to_str()
                .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok());
            if let Some(digest) = digest {
                layers.push(digest);
            }
        }
        layers.sort();
        Ok(layers)
    }

    /// Removes layer `diff_id`: renamed into `tmp/` first, so a crash midway
    /// leaves no half layer in `layers/`.
    pub fn remove_layer(&self, _lock: &Lock, diff_id: &Digest) -> Result<(), StoreError> {
        let path = self.layer_path(diff_id);
        let doomed = self.make_tmp()?;
        fs::remove_dir(&doomed).map_err(io_error("remove", &doomed))?;
        fs::rename(&path, &doomed).map_err(io_error("rename", &path))?;
        remove_tree(&doomed)
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(hex(digest))
    }

    /// Stores `data`, whose digest the caller has checked is `digest`.
    pub fn put_blob(&self, _lock: &Lock, digest: &Digest, data: &[u8]) -> Result<(), StoreError> {
        let found = Digest::of(data);
        if found != *digest {
            return Err(StoreError::DigestMismatch {
                what: "blob".into(),
                expected: *digest,
                found,
            });
        }
        write_synced(&self.blob_path(digest), data)
    }

    /// Blob `digest`, at most `max` bytes, checked against its digest.
    pub fn blob(&self, digest: &Digest, max: usize) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let data = match read_capped(&path, max) {
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    what: format!("blob {digest}"),
                })
            }
            other => other?,
        };
        let found = Digest::of(&data);
        if found != *digest {
            return Err(StoreError::DigestMismatch {
                what: path.display().to_string(),
                expected: *digest,
                found,
            });
        }
        Ok(data)
    }

    /// Every blob in the store.
    pub fn blobs(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.root.join("blobs/sha256");
        let entries = match fs::read_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.map_err(io_error("list", &dir))?,
        };
        let mut blobs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("list", &dir))?;
            let name = entry.file_name();
            if let Some(digest) = name
                .to_str()
                .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
            {
                blobs.push(digest);
            }
        }
        Ok(blobs)
    }

    /// Removes blob `digest`.
    pub fn remove_blob(&self, _lock: &Lock, digest: &Digest) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        fs::remove_file(&path).map_err(io_error("remove", &path))
    }

    /// The image records, sorted by name.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let path = self.root.join(IMAGES_FILE);
        let text = match read_capped(&path, MAX_IMAGES_BYTES) {
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(Vec::new())
            }
            other => other?,
        };
        decode_images(&text).map_err(|reason| corrupt(&path, reason))
    }

    /// Replaces the image records atomically.
    pub fn save_images(&self, _lock: &Lock, images: &[ImageRecord]) -> Result<(), StoreError> {
        if images.len() > MAX_IMAGES {
            return Err(StoreError::Full);
        }
        let path = self.root.join(IMAGES_FILE);
        let text = encode_images(images).map_err(|reason| corrupt(&path, reason))?;
        write_synced(&path, &text)
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Removes `path` and everything under it; nothing there is not an error.
/// std's `remove_dir_all` does not follow symbolic links.
fn remove_tree(path: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Writes `data` to `path` through a synced temporary file and a rename,
/// itself synced.
fn write_synced(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    crate::file::replace(path, &tmp, data, crate::file::Durability::Rename)
        .map_err(io_error("write", path))
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync", dir))
}

/// The contents of `path`, refused if longer than `max` bytes.
pub(crate) fn read_capped(path: &Path, max: usize) -> Result<Vec<u8>, StoreError> {
    File::open(path)
        .and_then(|f| crate::file::read_capped(f, max))
        .map_err(io_error("read", path))?
        .ok_or_else(|| corrupt(path, format!("larger than {max} bytes")))
}

/// A reader that hashes what passes through it.
struct Hashed<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

// images.json

#[derive(Serialize)]
struct ImagesOut<'a> {
    version: u32,
    images: &'a [ImageOut<'a>],
}

#[derive(Serialize)]
struct ImageOut<'a> {
    name: &'a str,
    id: &'a str,
    manifest: &'a str,
    arch: &'a str,
    os: &'a str,
    created: &'a str,
    size: u64,
    layers: &'a [&'a str],
}

#[derive(Deserialize)]
struct ImagesIn<'a> {
    version: u32,
    #[serde(borrow)]
    images: HeapCapped<ImageIn<'a>, MAX_IMAGES>,
}

#[derive(Deserialize)]
struct ImageIn<'a> {
    #[serde(borrow)]
    name: EscapedStr<'a>,
    #[serde(borrow)]
    id: EscapedStr<'a>,
    #[serde(borrow)]
    manifest: EscapedStr<'a>,
    #[serde(borrow)]
    arch: EscapedStr<'a>,
    #[serde(borrow)]
    os: EscapedStr<'a>,
    #[serde(borrow)]
    created: EscapedStr<'a>,
    size: u64,
    #[serde(borrow)]
    layers: HeapCapped<EscapedStr<'a>, MAX_LAYERS>,
}

fn encode_images(images: &[ImageRecord]) -> Result<Vec<u8>, String> {
    // serde without alloc serializes borrowed text and slices only.
    let ids: Vec<[String; 2]> = images
        .iter()
        .map(|i| [i.id.to_string(), i.manifest.to_string()])
        .collect();
    let layers: Vec<Vec<String>> = images
        .iter()
        .map(|i| i.layers.iter().map(Digest::to_string).collect())
        .collect();
    let layer_refs: Vec<Vec<&str>> = layers
        .iter()
        .map(|l| l.iter().map(String::as_str).collect())
        .collect();
    let out: Vec<ImageOut<'_>> = images
        .iter()
        .enumerate()
        .map(|(n, image)| ImageOut {
            name: image.name.as_str(),
            id: &ids[n][0],
            manifest: &ids[n][1],
            arch: &image.arch,
            os: &image.os,
            created: &image.created,
            size: image.size,
            layers: &layer_refs[n],
        })
        .collect();
    let wire = ImagesOut {
        version: IMAGES_VERSION,
        images: &out,
    };
    let mut buf = vec![0; MAX_IMAGES_BYTES];
    let len = serde_json_core::to_slice(&wire, &mut buf)
        .map_err(|_| format!("the records need more than {MAX_IMAGES_BYTES} bytes"))?;
    buf.truncate(len);
    buf.push(b'\n');
    Ok(buf)
}

const IMAGES: Field = Field::new("images");

fn decode_images(text: &[u8]) -> Result<Vec<ImageRecord>, String> {
    let (wire, _) = serde_json_core::from_slice::<ImagesIn<'_>>(text)
        .map_err(|e| format!("not an image list: {e}"))?;
    if wire.version != IMAGES_VERSION {
        return Err(format!(
            "layout version {} is not {IMAGES_VERSION}",
            wire.version
        ));
    }
    let text =
        |field: Field, s, max| wire::unescape(field, s, max).map_err(|e: WireError| e.to_string());
    let digest = |field: Field, s| {
        let s = text(field, s, 80)?;
        Digest::parse(&s).map_err(|e| format!("{field}: {e}"))
    };
    let mut images = Vec::new();
    let items = wire.images.into_items(IMAGES).map_err(|e| e.to_string())?;
    for (i, image) in items.into_iter().enumerate() {
        let at = IMAGES.at(i);
        let name = text(at.member("name"), image.name, super::MAX_NAME_BYTES)?;
        let name = ImageName::parse(&name).map_err(|e| format!("{}: {e}", at.member("name")))?;
        let mut layers = Vec::new();
        let layer_items = image
            .layers
            .into_items(at.member("layers"))
            .map_err(|e| e.to_string())?;
        for (j, layer) in layer_items.into_iter().enumerate() {
            layers.push(digest(at.member("layers").at(j), layer)?);
        }
        images.push(ImageRecord {
            name,
            id: digest(at.member("id"), image.id)?,
            manifest: digest(at.member("manifest"), image.manifest)?,
            arch: text(at.member("arch"), image.arch, MAX_PLATFORM_BYTES)?,
            os: text(at.member("os"), image.os, MAX_PLATFORM_BYTES)?,
            created: text(at.member("created"), image.created, MAX_CREATED_BYTES)?,
            size: image.size,
            layers,
        });
    }
    Ok(images)
}

#[cfg(test)]
mod tests;
