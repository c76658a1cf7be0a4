//! Images: OCI image layouts, OCI archives and `docker save` archives
//! imported into a content-addressed store of safely extracted layers.
//!
//! [`extract`] writes one layer tar into a directory whatever it says;
//! [`store`] keeps layers by diff_id, configs by digest and the image records;
//! [`oci`] reads the three import formats (bounded wire structs, every blob's
//! digest checked before it is parsed or extracted). The functions here are the
//! `husk image` commands.

pub mod extract;
pub mod oci;
pub mod root;
pub mod run;
pub mod store;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use delta_updater::Digest;
use serde::Serialize;

pub use self::oci::ImportOptions;
use self::store::{Store, StoreError};
use crate::wire::WireError;

/// Longest image name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// The tag a name without one gets.
pub const DEFAULT_TAG: &str = "latest";

/// An image's name and tag, such as `busybox:latest` or
/// `registry.example/app/web:1.2`: 1 to 255 of `A-Z a-z 0-9 . _ - / : @`,
/// starting with a letter or digit; `:latest` is added when there is no tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageName(String);

impl ImageName {
    /// Checks `text` and adds the default tag if it has none.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let valid = |c: char| c.is_ascii_alphanumeric() || "._-/:@".contains(c);
        if text.is_empty() || !text.chars().all(valid) {
            return Err("an image name is 1 to 255 of A-Z a-z 0-9 . _ - / : @");
        }
        if !text.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err("an image name starts with a letter or a digit");
        }
        let last = text.rsplit('/').next().unwrap_or(text);
        let name = if last.contains(':') || last.contains('@') {
            text.to_owned()
        } else {
            format!("{text}:{DEFAULT_TAG}")
        };
        if name.len() > MAX_NAME_BYTES {
            return Err("an image name is at most 255 bytes");
        }
        Ok(Self(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ImageName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s).map_err(|reason| format!("{reason}, not {s:?}"))
    }
}

/// An image named by its content alone, its config and its layers (all in
/// the store): what a release's desired state runs, whatever `images.json`
/// says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// What errors and listings call it.
    pub name: String,
    /// The digest of its config blob.
    pub config: Digest,
    /// Its layers' diff_ids, lowest first.
    pub layers: Vec<Digest>,
}

/// An imported image, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// Its name and tag.
    pub name: ImageName,
    /// The digest of its config (the image id).
    pub id: Digest,
    /// The digest of its manifest (for a `docker save` archive, which has
    /// none, of its `manifest.json`).
    pub manifest: Digest,
    /// Its OCI architecture (`amd64`, `arm64`, `arm`, `riscv64`).
    pub arch: String,
    /// Its OS (`linux`).
    pub os: String,
    /// When it was built, as its config says (RFC 3339), or empty.
    pub created: String,
    /// Bytes of the regular files of its layers.
    pub size: u64,
    /// Its layers' diff_ids, lowest first.
    pub layers: Vec<Digest>,
}

/// Why an image command failed.
#[derive(Debug)]
pub enum ImageError {
    /// The store could not be used.
    Store(StoreError),
    /// The import source could not be read.
    Source {
        /// The file or directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The import source is not an image this husk reads.
    Format {
        /// The file, in the source.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A JSON document of the source was refused.
    Wire {
        /// The file, in the source.
        file: String,
        /// Why.
        source: WireError,
    },
    /// The image is for another architecture.
    WrongArch {
        /// The architecture wanted.
        wanted: String,
        /// The architectures the source has.
        found: String,
    },
    /// The source names no image and no `--name` was given.
    NoName,
    /// No image has this name.
    NotFound(ImageName),
    /// A container runs on the image (or was left by one): `husk image rm` refuses.
    InUse {
        /// The image.
        name: ImageName,
        /// The container.
        container: String,
    },
    /// `HUSK_IMAGE_ROOT` has a value husk does not know.
    RootPolicy(String),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => e.fmt(f),
            Self::Source { path, .. } => write!(f, "reading {path}"),
            Self::Format { file, reason } => write!(f, "{file}: {reason}"),
            Self::Wire { file, source } => write!(f, "{file}: {source}"),
            Self::WrongArch { wanted, found } => write!(
                f,
                "the image is for {found}, not for this device's {wanted} (--arch to choose)"
            ),
            Self::NoName => f.write_str("the image has no name: give --name NAME[:TAG]"),
            Self::NotFound(name) => write!(f, "no image {name}"),
            Self::InUse { name, container } => write!(
                f,
                "image {name} is in use by container {container} ('husk delete {container}' first)"
            ),
            Self::RootPolicy(value) => write!(
                f,
                "{} is overlay, copy or auto, not {value:?}",
                root::ROOT_ENV
            ),
        }
    }
}

impl std::error::Error for ImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store(e) => e.source(),
            Self::Source { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<StoreError> for ImageError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// What `husk image import` did.
#[derive(Debug)]
pub struct Imported {
    /// The record now in the store.
    pub record: ImageRecord,
    /// Layers extracted by this import.
    pub extracted: usize,
    /// Layers the store had already.
    pub reused: usize,
    /// Files whose setuid or setgid bits were cleared.
    pub setid_cleared: u64,
    /// xattrs not set.
    pub xattrs_dropped: u64,
    /// The image this name pointed at before, if another.
    pub replaced: Option<Digest>,
}

impl fmt::Display for Imported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.record;
        write!(
            f,
            "imported {} ({}, {}/{}): {} layers, {} extracted, {} already stored, {}",
            r.name,
            short_id(&r.id),
            r.os,
            r.arch,
            r.layers.len(),
            self.extracted,
            self.reused,
            human_size(r.size)
        )?;
        if self.setid_cleared > 0 {
            write!(
                f,
                "\nsetuid/setgid bits cleared on {} files (--allow-setid keeps them)",
                self.setid_cleared
            )?;
        }
        if self.xattrs_dropped > 0 {
            write!(f, "\n{} extended attributes not set", self.xattrs_dropped)?;
        }
        if let Some(old) = &self.replaced {
            write!(
                f,
                "\n{} pointed at {} before ('husk image prune' frees what is unused)",
                r.name,
                short_id(old)
            )?;
        }
        Ok(())
    }
}

/// `husk image import`: reads the image at `path` into the store and records it.
pub fn import(
    store: &Store,
    path: &Path,
    options: &oci::ImportOptions,
) -> Result<Imported, ImageError> {
    import_with(store, path, options, &mut |_| {})
}

/// [`import`], telling `progress` which layer it extracts and how far it is.
pub fn import_with(
    store: &Store,
    path: &Path,
    options: &oci::ImportOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Imported, ImageError> {
    let lock = store.lock()?;
    let mut options = options.clone();
    // Only root can give files to other users (and make whiteouts).
    options.extract.chown &= crate::sys::is_root();
    let mut images = store.images()?;
    let before: BTreeSet<Digest> = store.layers()?.into_iter().collect();
    let mut imported = match oci::import(store, &lock, path, &options, progress) {
        Ok(imported) => imported,
        Err(e) => {
            // Layers this import extracted before it failed serve no image:
            // the store goes back to what it was.
            for layer in store.layers()? {
                if !before.contains(&layer) {
                    store.remove_layer(&lock, &layer)?;
                }
            }
            return Err(e);
        }
    };
    match images.iter_mut().find(|i| i.name == imported.record.name) {
        Some(old) => {
            if old.id != imported.record.id {
                imported.replaced = Some(old.id);
            }
            *old = imported.record.clone();
        }
        None => images.push(imported.record.clone()),
    }
    images.sort_by(|a, b| a.name.cmp(&b.name));
    store.save_images(&lock, &images)?;
    Ok(imported)
}

/// `husk image ls`: the image records, sorted by name.
pub fn list(store: &Store) -> Result<Vec<ImageRecord>, ImageError> {
    let _lock = store.lock()?;
    Ok(store.images()?)
}

/// `husk image rm`: forgets the image `name`; its layers stay until `prune`.
/// Refused while a container of it exists (and no other name has it).
pub fn remove(store: &Store, name: &ImageName) -> Result<ImageRecord, ImageError> {
    let lock = store.lock()?;
    let mut images = store.images()?;
    let Some(at) = images.iter().position(|i| i.name == *name) else {
        return Err(ImageError::NotFound(name.clone()));
    };
    let removed = images.remove(at);
    // Another name of the same image keeps what a container needs.
    if !images.iter().any(|i| i.id == removed.id) {
        if let Some(user) = run::container_refs(store)?
            .into_iter()
            .find(|c| c.config == Some(removed.id))
        {
            return Err(ImageError::InUse {
                name: name.clone(),
                container: user.id,
            });
        }
    }
    store.save_images(&lock, &images)?;
    Ok(removed)
}

/// What `husk image prune` removed.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Layers removed, with their sizes.
    pub layers: Vec<(Digest, u64)>,
    /// Blobs (configs, manifests) removed.
    pub blobs: usize,
}

impl Pruned {
    /// Bytes of layer files freed.
    pub fn freed(&self) -> u64 {
        self.layers.iter().map(|(_, size)| size).sum()
    }
}

impl fmt::Display for Pruned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (layer, size) in &self.layers {
            writeln!(f, "removed layer {layer} ({})", human_size(*size))?;
        }
        write!(
            f,
            "freed {} in {} layers and {} blobs",
            human_size(self.freed()),
            self.layers.len(),
            self.blobs
        )
    }
}

/// `husk image prune`: removes layers no image or container references, and
/// blobs no image references.
pub fn prune(store: &Store) -> Result<Pruned, ImageError> {
    let lock = store.lock()?;
    let images = store.images()?;
    let mut layers: BTreeSet<Digest> = images.iter().flat_map(|i| i.layers.clone()).collect();
    let mut blobs: BTreeSet<Digest> = images.iter().flat_map(|i| [i.id, i.manifest]).collect();
    for container in run::container_refs(store)? {
        layers.extend(container.layers);
        blobs.extend(container.config);
    }
    let mut pruned = Pruned::default();
    for layer in store.layers()? {
        if !layers.contains(&layer) {
            // A layer without its record is half-removed: size unknown.
            let size = store.layer(&layer).map_or(0, |info| info.size);
            store.remove_layer(&lock, &layer)?;
            pruned.layers.push((layer, size));
        }
    }
    for blob in store.blobs()? {
        if !blobs.contains(&blob) {
            store.remove_blob(&lock, &blob)?;
            pruned.blobs += 1;
        }
    }
    Ok(pruned)
}

/// What the store holds, for `husk image df`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Images recorded.
    pub images: usize,
    /// Layers stored.
    pub layers: usize,
    /// Bytes of regular files of every stored layer, each counted once.
    pub stored: u64,
    /// The sum of the images' sizes: what the layers would take unshared.
    pub images_total: u64,
    /// Bytes of stored layers no image references (what `prune` would free).
    pub unused: u64,
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "images  {:>9}  ({} recorded)",
            human_size(self.images_total),
            self.images
        )?;
        writeln!(
            f,
            "layers  {:>9}  ({} stored once each)",
            human_size(self.stored),
            self.layers
        )?;
        write!(
            f,
            "unused  {:>9}  ('husk image prune' frees it)",
            human_size(self.unused)
        )
    }
}

/// `husk image df`: sizes of what the store holds.
pub fn usage(store: &Store) -> Result<Usage, ImageError> {
    let _lock = store.lock()?;
    let images = store.images()?;
    let used: BTreeSet<Digest> = images.iter().flat_map(|i| i.layers.clone()).collect();
    let mut usage = Usage {
        images: images.len(),
        images_total: images.iter().map(|i| i.size).sum(),
        ..Usage::default()
    };
    for layer in store.layers()? {
        let size = store.layer(&layer)?.size;
        usage.layers += 1;
        usage.stored += size;
        if !used.contains(&layer) {
            usage.unused += size;
        }
    }
    Ok(usage)
}

/// The first 12 hex digits of a digest, as Docker shows image ids.
pub fn short_id(digest: &Digest) -> String {
    store::hex(digest)[..12].to_owned()
}

/// `1.5 MiB`-style sizes (integer arithmetic: float formatting costs ~10 KiB).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut scale = 1u64;
    while bytes / scale >= 1024 && unit < UNITS.len() - 1 {
        scale *= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    let tenths = (u128::from(bytes) * 10 + u128::from(scale) / 2) / u128::from(scale);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// `husk image ls`'s table: at most 80 columns.
pub fn list_table(images: &[ImageRecord]) -> String {
    const NAME: usize = 32;
    let mut out = format!(
        "{:<NAME$} {:<12} {:<7} {:>9}  {}\n",
        "NAME", "ID", "ARCH", "SIZE", "CREATED"
    );
    for image in images {
        let name = image.name.as_str();
        let name = if name.len() > NAME {
            format!("{}...", &name[..NAME - 3])
        } else {
            name.to_owned()
        };
        let created = image.created.get(..10).unwrap_or(&image.created);
        out.push_str(&format!(
            "{name:<NAME$} {:<12} {:<7} {:>9}  {created}\n",
            short_id(&image.id),
            image.arch,
            human_size(image.size),
        ));
    }
    out
}

#[derive(Serialize)]
struct ListEntry<'a> {
    name: &'a str,
    id: &'a str,
    manifest: &'a str,
    arch: &'a str,
    os: &'a str,
    created: &'a str,
    size: u64,
    layers: usize,
}

/// `husk image ls --json`: one array of objects.
pub fn list_json(images: &[ImageRecord]) -> String {
    let ids: Vec<[String; 2]> = images
        .iter()
        .map(|i| [i.id.to_string(), i.manifest.to_string()])
        .collect();
    let entries: Vec<ListEntry<'_>> = images
        .iter()
        .zip(&ids)
        .map(|(i, [id, manifest])| ListEntry {
            name: i.name.as_str(),
            id,
            manifest,
            arch: &i.arch,
            os: &i.os,
            created: &i.created,
            size: i.size,
            layers: i.layers.len(),
        })
        .collect();
    // Each entry is at most ~700 bytes; names and times have no escapes
    // beyond what their caps allow.
    let mut buf = vec![0; 1024 * (entries.len() + 1)];
    let len = serde_json_core::to_slice(&entries[..], &mut buf).unwrap_or(0);
    buf.truncate(len);
    String::from_utf8(buf).unwrap_or_default()
}

/// The OCI name of the architecture husk was built for.
pub fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests;
