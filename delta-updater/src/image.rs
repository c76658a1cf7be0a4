//! Container images read for a release (feature `publish`): an OCI image
//! layout directory, an OCI archive (a tar of one) or a `docker save`
//! tarball, optionally `PATH:TAG`.
//!
//! The publisher's counterpart of husk's `runtime/src/image/oci.rs` (which
//! depends on this crate, so nothing is shared): JSON is parsed with
//! serde_json into owned structs, only after its sha256 was checked against
//! the digest that names it (the entry points `index.json` and
//! `manifest.json` have none). A multi-architecture index gives the manifest
//! for the release's architecture, and the config's `architecture` must be
//! that one too.
//!
//! Layers are never held in memory: each is read twice from its source, once
//! to check its blob digest, then through the decompressor (plain, gzip or
//! zstd, by magic bytes) into a file of the staging directory while its
//! diff_id is computed; a layer whose diff_id is not the config's
//! `rootfs.diff_ids` entry is refused.

use core::fmt;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::archive::{self, Archive, ArchiveError, Limits};
use crate::digest::Digest;
use crate::metadata;

/// The largest image config stored in a release (it is a blob the device reads whole).
pub const MAX_CONFIG_LEN: usize = 64 * 1024;
/// The largest `index.json`, `manifest.json` or manifest read.
pub const MAX_JSON_LEN: usize = 4 << 20;
/// Most nested indexes followed from `index.json`.
pub const MAX_INDEX_DEPTH: usize = 2;
/// Most members an image archive may have.
pub const MAX_ARCHIVE_MEMBERS: usize = 100_000;
/// Most symbolic links followed to find an archive member.
pub const MAX_MEMBER_LINKS: usize = 8;
/// What an image archive may hold on the publisher.
const ARCHIVE_LIMITS: Limits = Limits {
    members: MAX_ARCHIVE_MEMBERS,
    name_bytes: usize::MAX,
    links: MAX_MEMBER_LINKS,
};

/// Why an image cannot go into a release. Every variant names the image.
#[derive(Debug)]
pub enum ImageError {
    /// `--image` is not `NAME=PATH[:TAG]` with a valid NAME.
    Spec(String),
    /// Reading the source failed.
    Read {
        /// The image's name in the release.
        image: String,
        /// The file (or `archive:member`).
        file: String,
        /// The error.
        error: io::Error,
    },
    /// The source is not a readable image.
    Format {
        /// The image's name in the release.
        image: String,
        /// The file (or `archive:member`).
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob does not hash to the digest that names it.
    Digest {
        /// The image's name in the release.
        image: String,
        /// The file.
        file: String,
        /// The digest naming it.
        expected: Digest,
        /// Its bytes' digest.
        found: Digest,
    },
    /// A layer does not decompress to its diff_id.
    DiffId {
        /// The image's name in the release.
        image: String,
        /// Its index, lowest first.
        layer: usize,
        /// The config's `rootfs.diff_ids` entry.
        expected: Digest,
        /// What it decompresses to.
        found: Digest,
    },
    /// The image is for another architecture than the release.
    WrongArch {
        /// The image's name in the release.
        image: String,
        /// The release's architecture (OCI name).
        wanted: String,
        /// What the image offers.
        found: String,
    },
    /// The release's architecture has no OCI name husk knows.
    UnknownArch {
        /// The image's name in the release.
        image: String,
        /// The release's architecture.
        arch: String,
    },
    /// The config is larger than [`MAX_CONFIG_LEN`].
    ConfigTooLarge {
        /// The image's name in the release.
        image: String,
        /// Its size.
        size: u64,
    },
    /// Writing the staged layer failed.
    Stage(PathBuf, io::Error),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spec(reason) => write!(f, "--image {reason}"),
            Self::Read { image, file, error } => write!(f, "image {image}: read {file}: {error}"),
            Self::Format {
                image,
                file,
                reason,
            } => write!(f, "image {image}: {file}: {reason}"),
            Self::Digest {
                image,
                file,
                expected,
                found,
            } => write!(
                f,
                "image {image}: {file}: has digest {found}, not {expected}"
            ),
            Self::DiffId {
                image,
                layer,
                expected,
                found,
            } => write!(
                f,
                "image {image}: layer {layer} decompresses to {found}, its diff_id is {expected}"
            ),
            Self::WrongArch {
                image,
                wanted,
                found,
            } => write!(
                f,
                "image {image}: is for {found}, the release is for {wanted}"
            ),
            Self::UnknownArch { image, arch } => write!(
                f,
                "image {image}: the release's arch {arch} is not one of x86_64, aarch64, arm, riscv64"
            ),
            Self::ConfigTooLarge { image, size } => write!(
                f,
                "image {image}: its config has {size} bytes, more than {MAX_CONFIG_LEN}"
            ),
            Self::Stage(path, e) => write!(f, "write {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for ImageError {}

/// `--image NAME=PATH[:TAG]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The image's name in the release (`metadata::is_name`).
    pub name: String,
    /// The layout directory or archive.
    pub path: PathBuf,
    /// The tag to pick, when the source has several images.
    pub tag: Option<String>,
}

impl ImageSpec {
    /// Parses `NAME=PATH[:TAG]`; `:TAG` is split off only when PATH with it
    /// does not exist and PATH without it does (as skopeo's `oci:PATH:TAG`).
    pub fn parse(text: &str) -> Result<Self, ImageError> {
        let (name, path) = text
            .split_once('=')
            .ok_or_else(|| ImageError::Spec(format!("{text:?}: not NAME=PATH[:TAG]")))?;
        if !metadata::is_name(name) {
            return Err(ImageError::Spec(format!(
                "{text:?}: {name:?} is not a name (1 to 64 of A-Z a-z 0-9 . _ + -, \
                 not starting with .)"
            )));
        }
        let whole = Path::new(path);
        let (path, tag) = match path.rsplit_once(':') {
            Some((p, tag)) if !whole.exists() && Path::new(p).exists() && !tag.contains('/') => {
                (PathBuf::from(p), Some(tag.to_owned()))
            }
            _ => (whole.to_owned(), None),
        };
        Ok(Self {
            name: name.to_owned(),
            path,
            tag,
        })
    }
}

/// The OCI platform of a release architecture (as Rust names it):
/// `(architecture, preferred variant)`, or `None` if husk has no such target.
pub fn oci_arch(arch: &str) -> Option<(&'static str, &'static str)> {
    Some(match arch {
        "x86_64" => ("amd64", ""),
        "aarch64" => ("arm64", ""),
        "arm" => ("arm", "v7"),
        "riscv64" => ("riscv64", ""),
        _ => return None,
    })
}

/// An image staged for a release: its config and its layers, uncompressed
/// in the staging directory.
#[derive(Debug)]
pub struct Image {
    /// Its name in the release.
    pub name: String,
    /// The config JSON, bytes exactly as in the image.
    pub config: Vec<u8>,
    /// The sha256 of `config`.
    pub config_digest: Digest,
    /// The layers, lowest first.
    pub layers: Vec<StagedLayer>,
}

/// One uncompressed layer on the publisher's disk.
#[derive(Debug, Clone)]
pub struct StagedLayer {
    /// The sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Its size.
    pub size: u64,
    /// Where it is.
    pub path: PathBuf,
}

/// Reads the image `spec` for the release architecture `arch` (Rust's name)
/// and decompresses its layers into `stage` (which exists), one file per
/// diff_id. Nothing but `stage` is written.
pub fn stage(spec: &ImageSpec, arch: &str, stage: &Path) -> Result<Image, ImageError> {
    let image = spec.name.as_str();
    let (oci, variant) = oci_arch(arch).ok_or_else(|| ImageError::UnknownArch {
        image: image.to_owned(),
        arch: arch.to_owned(),
    })?;
    let source = Source::open(image, &spec.path)?;
    let found = if source.exists("oci-layout") {
        oci_image(&source, (oci, variant), spec.tag.as_deref())?
    } else if source.exists("manifest.json") {
        docker_image(&source, spec.tag.as_deref())?
    } else {
        return Err(source.format(
            "",
            "neither an OCI layout (no oci-layout) nor a docker save archive (no manifest.json)",
        ));
    };
    let config: ConfigWire = serde_json::from_slice(&found.config)
        .map_err(|e| source.format(&found.config_file, &format!("not an image config: {e}")))?;
    if config.architecture != oci || config.os != "linux" {
        return Err(ImageError::WrongArch {
            image: image.to_owned(),
            wanted: format!("linux/{oci} ({arch})"),
            found: format!("{}/{}", config.os, config.architecture),
        });
    }
    if config.rootfs.kind != "layers" {
        return Err(source.format(
            &found.config_file,
            &format!("rootfs.type is {:?}, not \"layers\"", config.rootfs.kind),
        ));
    }
    if config.rootfs.diff_ids.len() != found.layers.len() {
        return Err(source.format(
            &found.config_file,
            &format!(
                "rootfs.diff_ids has {} layers, the manifest {}",
                config.rootfs.diff_ids.len(),
                found.layers.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (index, (layer, id)) in found.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
        let diff_id = Digest::parse(id).map_err(|e| {
            source.format(
                &found.config_file,
                &format!("rootfs.diff_ids[{index}]: {e}"),
            )
        })?;
        if let Some(blob) = &layer.blob {
            let (reader, _) = source.open_member(&layer.file)?;
            let got = Digest::of_reader(reader).map_err(|e| source.read_error(&layer.file, e))?;
            if got != *blob {
                return Err(ImageError::Digest {
                    image: image.to_owned(),
                    file: source.shown(&layer.file),
                    expected: *blob,
                    found: got,
                });
            }
        }
        let path = stage.join(format!("{}.tar", hex(&diff_id)));
        let (size, got) = decompress(&source, &layer.file, &path)?;
        if got != diff_id {
            let _ = fs::remove_file(&path);
            return Err(ImageError::DiffId {
                image: image.to_owned(),
                layer: index,
                expected: diff_id,
                found: got,
            });
        }
        layers.push(StagedLayer {
            diff_id,
            size,
            path,
        });
    }
    Ok(Image {
        name: image.to_owned(),
        config_digest: Digest::of(&found.config),
        config: found.config,
        layers,
    })
}

/// Decompresses the member `file` into `out`: its size and sha256.
fn decompress(source: &Source, file: &str, out: &Path) -> Result<(u64, Digest), ImageError> {
    let (reader, _) = source.open_member(file)?;
    let mut input = BufReader::with_capacity(64 * 1024, reader);
    let magic = input
        .fill_buf()
        .map_err(|e| source.read_error(file, e))?
        .to_vec();
    let mut decoded: Box<dyn Read + '_> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| source.read_error(file, e))?,
        )
    } else {
        Box::new(input)
    };
    let stage_err = |e| ImageError::Stage(out.to_owned(), e);
    let mut writer = HashWriter::new(io::BufWriter::new(File::create(out).map_err(stage_err)?));
    let mut buf = vec![0u8; 64 * 1024];
    let copied = loop {
        let n = match decoded.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(source.read_error(file, e)),
        };
        if let Err(e) = writer.write_all(&buf[..n]) {
            break Err(stage_err(e));
        }
    };
    let (inner, len, digest) = writer.finish();
    let flushed = copied.and_then(|()| inner.into_inner().map_err(|e| stage_err(e.into_error())));
    if let Err(e) = flushed {
        let _ = fs::remove_file(out);
        return Err(e);
    }
    Ok((len, digest))
}

/// A writer that counts and hashes what goes through it.
pub(crate) struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }

    /// The writer, the bytes written and their sha256.
    pub(crate) fn finish(self) -> (W, u64, Digest) {
        (
            self.inner,
            self.len,
            Digest::from_bytes(self.hash.finalize().into()),
        )
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(digest: &Digest) -> String {
    digest.to_string().trim_start_matches("sha256:").to_owned()
}

/// An image found in a source, its JSON checked.
struct Found {
    config_file: String,
    config: Vec<u8>,
    layers: Vec<LayerRef>,
}

/// A layer as a manifest names it.
struct LayerRef {
    /// The member holding it.
    file: String,
    /// The digest of its bytes as stored, when the source says it.
    blob: Option<Digest>,
}

#[derive(Deserialize)]
struct IndexWire {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    manifests: Option<Vec<DescriptorWire>>,
    config: Option<DescriptorWire>,
    #[serde(default)]
    layers: Vec<DescriptorWire>,
}

#[derive(Debug, Deserialize)]
struct DescriptorWire {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    platform: Option<PlatformWire>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct PlatformWire {
    architecture: String,
    os: String,
    #[serde(default)]
    variant: String,
}

#[derive(Deserialize)]
struct ConfigWire {
    architecture: String,
    os: String,
    rootfs: RootfsWire,
}

#[derive(Deserialize)]
struct RootfsWire {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn oci_image(
    source: &Source,
    platform: (&str, &str),
    tag: Option<&str>,
) -> Result<Found, ImageError> {
    let mut file = "index.json".to_owned();
    let mut bytes = source.read(&file, MAX_JSON_LEN)?;
    for depth in 0..=MAX_INDEX_DEPTH {
        let wire: IndexWire = serde_json::from_slice(&bytes)
            .map_err(|e| source.format(&file, &format!("not an OCI index or manifest: {e}")))?;
        let Some(manifests) = wire.manifests else {
            if depth == 0 || INDEX_TYPES.contains(&wire.media_type.as_str()) {
                return Err(source.format(&file, "lists no image manifest"));
            }
            return oci_manifest(source, wire, &file);
        };
        // Only index.json names its images.
        let tag = if depth == 0 { tag } else { None };
        let chosen = choose(source, &manifests, platform, tag, &file)?;
        let digest = source.digest(&file, &chosen.digest)?;
        file = blob_file(&digest);
        bytes = source.read_verified(&file, &digest, chosen.size, MAX_JSON_LEN)?;
    }
    Err(source.format(
        &file,
        &format!("indexes nest deeper than {MAX_INDEX_DEPTH}"),
    ))
}

fn oci_manifest(source: &Source, wire: IndexWire, file: &str) -> Result<Found, ImageError> {
    let config = wire
        .config
        .ok_or_else(|| source.format(file, "the manifest has no config"))?;
    let mut layers = Vec::new();
    for (i, layer) in wire.layers.iter().enumerate() {
        // tar, tar+gzip, tar+zstd, and Docker's rootfs.diff.tar(.gzip);
        // the bytes themselves say which.
        if !layer.media_type.contains("tar") || layer.media_type.contains("encrypted") {
            return Err(source.format(
                file,
                &format!("layers[{i}] has media type {:?}", layer.media_type),
            ));
        }
        let digest = source.digest(file, &layer.digest)?;
        let member = blob_file(&digest);
        let (_, len) = source.open_member(&member)?;
        if len != layer.size {
            return Err(source.format(
                &member,
                &format!("has {len} bytes, its descriptor says {}", layer.size),
            ));
        }
        layers.push(LayerRef {
            file: member,
            blob: Some(digest),
        });
    }
    let digest = source.digest(file, &config.digest)?;
    let config_file = blob_file(&digest);
    if config.size > MAX_CONFIG_LEN as u64 {
        return Err(ImageError::ConfigTooLarge {
            image: source.image.clone(),
            size: config.size,
        });
    }
    let config = source.read_verified(&config_file, &digest, config.size, MAX_CONFIG_LEN)?;
    Ok(Found {
        config_file,
        config,
        layers,
    })
}

/// The manifest of an index for `platform`: with `tag`, among those tagged
/// so; the one whose platform matches (an arm variant `v7` preferred), or,
/// if no entry has a platform, the only image.
fn choose<'d>(
    source: &Source,
    descriptors: &'d [DescriptorWire],
    (arch, variant): (&str, &str),
    tag: Option<&str>,
    file: &str,
) -> Result<&'d DescriptorWire, ImageError> {
    let images: Vec<&DescriptorWire> = descriptors
        .iter()
        .filter(|d| {
            d.media_type.is_empty()
                || INDEX_TYPES.contains(&d.media_type.as_str())
                || MANIFEST_TYPES.contains(&d.media_type.as_str())
        })
        .collect();
    let mut tags: Vec<&str> = images
        .iter()
        .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    let images: Vec<&DescriptorWire> = match tag {
        Some(tag) => images
            .into_iter()
            .filter(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
            .collect(),
        None => images,
    };
    if images.is_empty() {
        return Err(source.format(
            file,
            &match tag {
                Some(tag) => format!("has no image tagged {tag:?} (tags: {})", tags.join(", ")),
                None => "lists no image manifest".into(),
            },
        ));
    }
    if tag.is_none() && tags.len() > 1 {
        return Err(source.format(
            file,
            &format!(
                "lists {} tags ({}): give NAME=PATH:TAG to choose",
                tags.len(),
                tags.join(", ")
            ),
        ));
    }
    if images.iter().all(|d| d.platform.is_none()) {
        return Ok(images[0]);
    }
    let mut best: Option<&DescriptorWire> = None;
    for d in &images {
        let Some(p) = &d.platform else { continue };
        if p.os == "linux" && p.architecture == arch && (best.is_none() || p.variant == variant) {
            best = Some(d);
        }
    }
    best.ok_or_else(|| {
        let found: Vec<String> = images
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .map(|p| {
                if p.variant.is_empty() {
                    format!("{}/{}", p.os, p.architecture)
                } else {
                    format!("{}/{}/{}", p.os, p.architecture, p.variant)
                }
            })
            .collect();
        ImageError::WrongArch {
            image: source.image.clone(),
            wanted: format!("linux/{arch}"),
            found: found.join(", "),
        }
    })
}

fn blob_file(digest: &Digest) -> String {
    format!("blobs/sha256/{}", hex(digest))
}

#[derive(Deserialize)]
struct DockerImageWire {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn docker_image(source: &Source, tag: Option<&str>) -> Result<Found, ImageError> {
    let file = "manifest.json";
    let bytes = source.read(file, MAX_JSON_LEN)?;
    let images: Vec<DockerImageWire> = serde_json::from_slice(&bytes)
        .map_err(|e| source.format(file, &format!("not a docker save manifest: {e}")))?;
    let tags_of = |i: &DockerImageWire| i.repo_tags.clone().unwrap_or_default();
    let all: Vec<String> = images.iter().flat_map(tags_of).collect();
    let chosen = match tag {
        Some(tag) => images
            .iter()
            .find(|i| {
                tags_of(i)
                    .iter()
                    .any(|t| t == tag || t.rsplit_once(':').is_some_and(|(_, t)| t == tag))
            })
            .ok_or_else(|| {
                source.format(
                    file,
                    &format!("has no image tagged {tag:?} (tags: {})", all.join(", ")),
                )
            })?,
        None if images.len() > 1 => {
            return Err(source.format(
                file,
                &format!(
                    "lists {} images ({}): give NAME=PATH:TAG to choose",
                    images.len(),
                    all.join(", ")
                ),
            ))
        }
        None => images
            .first()
            .ok_or_else(|| source.format(file, "lists no image"))?,
    };
    let config = digest_in_name(&chosen.config).ok_or_else(|| {
        source.format(
            file,
            &format!("config {:?} is not named by its digest", chosen.config),
        )
    })?;
    let (_, len) = source.open_member(&chosen.config)?;
    if len > MAX_CONFIG_LEN as u64 {
        return Err(ImageError::ConfigTooLarge {
            image: source.image.clone(),
            size: len,
        });
    }
    let config_bytes = source.read_verified(&chosen.config, &config, len, MAX_CONFIG_LEN)?;
    Ok(Found {
        config_file: chosen.config.clone(),
        config: config_bytes,
        layers: chosen
            .layers
            .iter()
            .map(|file| LayerRef {
                blob: digest_in_name(file),
                file: file.clone(),
            })
            .collect(),
    })
}

/// The digest a `docker save` member is named by: `<hex>.json` (configs
/// before Docker 25) or `blobs/sha256/<hex>` (Docker 25 and later).
fn digest_in_name(name: &str) -> Option<Digest> {
    let hex = name
        .strip_suffix(".json")
        .or_else(|| name.strip_prefix("blobs/sha256/"))?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// Where an image's files are: a directory, or an archive indexed once and
/// read in place.
struct Source {
    image: String,
    path: PathBuf,
    archive: Option<Archive>,
}

impl Source {
    fn open(image: &str, path: &Path) -> Result<Self, ImageError> {
        let read_error = |error| ImageError::Read {
            image: image.to_owned(),
            file: path.display().to_string(),
            error,
        };
        let meta = fs::metadata(path).map_err(read_error)?;
        let mut source = Self {
            image: image.to_owned(),
            path: path.to_owned(),
            archive: None,
        };
        if !meta.is_dir() {
            let file = File::open(path).map_err(read_error)?;
            let archive = Archive::index(file, ARCHIVE_LIMITS)
                .map_err(|e| source.format("", &e.to_string()))?;
            source.archive = Some(archive);
        }
        Ok(source)
    }

    fn shown(&self, name: &str) -> String {
        match (&self.archive, name) {
            (_, "") => self.path.display().to_string(),
            (None, _) => self.path.join(name).display().to_string(),
            (Some(_), _) => format!("{}:{name}", self.path.display()),
        }
    }

    fn format(&self, name: &str, reason: &str) -> ImageError {
        ImageError::Format {
            image: self.image.clone(),
            file: self.shown(name),
            reason: reason.to_owned(),
        }
    }

    fn read_error(&self, name: &str, error: io::Error) -> ImageError {
        ImageError::Read {
            image: self.image.clone(),
            file: self.shown(name),
            error,
        }
    }

    fn digest(&self, file: &str, text: &str) -> Result<Digest, ImageError> {
        Digest::parse(text).map_err(|e| self.format(file, &format!("digest {text:?}: {e}")))
    }

    fn exists(&self, name: &str) -> bool {
        match &self.archive {
            None => self.path.join(name).exists(),
            Some(archive) => archive.contains(name),
        }
    }

    /// The member `name`'s bytes and their count.
    fn open_member(&self, name: &str) -> Result<(Box<dyn Read + '_>, u64), ImageError> {
        let Some(archive) = &self.archive else {
            let clean = archive::member_name(name, usize::MAX)
                .ok_or_else(|| self.format(name, &ArchiveError::Name.to_string()))?;
            let path = self.path.join(&clean);
            let file = File::open(&path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => self.format(name, &ArchiveError::Missing.to_string()),
                _ => self.read_error(name, e),
            })?;
            let len = file.metadata().map_err(|e| self.read_error(name, e))?.len();
            return Ok((Box::new(file), len));
        };
        let (reader, len) = archive
            .open(name)
            .map_err(|e| self.format(name, &e.to_string()))?;
        Ok((Box::new(reader), len))
    }

    /// The member `name`, at most `max` bytes.
    fn read(&self, name: &str, max: usize) -> Result<Vec<u8>, ImageError> {
        let (reader, len) = self.open_member(name)?;
        if len > max as u64 {
            return Err(self.format(name, &format!("is larger than {max} bytes")));
        }
        let mut data = Vec::new();
        reader
            .take(max as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|e| self.read_error(name, e))?;
        Ok(data)
    }

    /// The member `name`, which must have `digest` and `size` bytes.
    fn read_verified(
        &self,
        name: &str,
        digest: &Digest,
        size: u64,
        max: usize,
    ) -> Result<Vec<u8>, ImageError> {
        let data = self.read(name, max)?;
        let found = Digest::of(&data);
        if found != *digest {
            return Err(ImageError::Digest {
                image: self.image.clone(),
                file: self.shown(name),
                expected: *digest,
                found,
            });
        }
        if data.len() as u64 != size {
            return Err(self.format(
                name,
                &format!("has {} bytes, its descriptor says {size}", data.len()),
            ));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("husk-image-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_spec_is_name_path_and_a_tag_only_when_the_path_has_none() {
        let dir = temp("spec");
        let layout = dir.join("web");
        fs::create_dir(&layout).unwrap();
        let spec = ImageSpec::parse(&format!("web={}:1.0", layout.display())).unwrap();
        assert_eq!(spec.path, layout);
        assert_eq!(spec.tag.as_deref(), Some("1.0"));
        let spec = ImageSpec::parse(&format!("web={}", layout.display())).unwrap();
        assert_eq!((spec.name.as_str(), spec.tag), ("web", None));
        // A path that itself has a colon stays whole.
        let colon = dir.join("a:b");
        fs::create_dir(&colon).unwrap();
        let spec = ImageSpec::parse(&format!("x={}", colon.display())).unwrap();
        assert_eq!((spec.path, spec.tag), (colon, None));
        for bad in ["web", "=/x", ".web=/x", "a/b=/x"] {
            let e = ImageSpec::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("--image "), "{e}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn release_arches_map_to_oci_platforms() {
        assert_eq!(oci_arch("x86_64"), Some(("amd64", "")));
        assert_eq!(oci_arch("aarch64"), Some(("arm64", "")));
        assert_eq!(oci_arch("arm"), Some(("arm", "v7")));
        assert_eq!(oci_arch("riscv64"), Some(("riscv64", "")));
        assert_eq!(oci_arch("amd64"), None);
    }

    fn descriptor(arch: &str, variant: &str, tag: Option<&str>) -> DescriptorWire {
        DescriptorWire {
            media_type: MANIFEST_TYPES[0].into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 1,
            platform: Some(PlatformWire {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.into(),
            }),
            annotations: tag
                .map(|t| BTreeMap::from([(REF_NAME.to_owned(), t.to_owned())]))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn an_index_gives_the_manifest_of_the_platform_and_tag() {
        let dir = temp("choose");
        let source = Source::open("web", &dir).unwrap();
        let list = [
            descriptor("arm", "v6", None),
            descriptor("arm", "v7", None),
            descriptor("arm", "v8", None),
            descriptor("arm64", "", None),
        ];
        let chosen = choose(&source, &list, ("arm", "v7"), None, "index.json").unwrap();
        assert_eq!(chosen.platform.as_ref().unwrap().variant, "v7");
        let chosen = choose(&source, &list, ("arm64", ""), None, "index.json").unwrap();
        assert_eq!(chosen.platform.as_ref().unwrap().architecture, "arm64");
        let e = choose(&source, &list, ("riscv64", ""), None, "index.json")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "image web: is for linux/arm/v6, linux/arm/v7, linux/arm/v8, linux/arm64, \
             the release is for linux/riscv64"
        );
        let tagged = [
            descriptor("arm64", "", Some("1")),
            descriptor("arm64", "", Some("2")),
        ];
        let e = choose(&source, &tagged, ("arm64", ""), None, "index.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("lists 2 tags (1, 2): give NAME=PATH:TAG to choose"),
            "{e}"
        );
        let chosen = choose(&source, &tagged, ("arm64", ""), Some("2"), "index.json").unwrap();
        assert_eq!(chosen.annotations[REF_NAME], "2");
        let e = choose(&source, &tagged, ("arm64", ""), Some("3"), "index.json")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("has no image tagged \"3\" (tags: 1, 2)"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn layers_decompress_by_their_magic_bytes_to_their_diff_id() {
        let dir = temp("decompress");
        let layer: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&layer).unwrap();
        let members = [
            ("plain", layer.clone()),
            ("gzip", gzip.finish().unwrap()),
            ("zstd", zstd::encode_all(&layer[..], 3).unwrap()),
        ];
        let source = Source::open("web", &dir).unwrap();
        for (name, bytes) in members {
            fs::write(dir.join(name), &bytes).unwrap();
            let out = dir.join(format!("{name}.tar"));
            let (len, digest) = decompress(&source, name, &out).unwrap();
            assert_eq!(
                (len, digest),
                (layer.len() as u64, Digest::of(&layer)),
                "{name}"
            );
            assert_eq!(fs::read(&out).unwrap(), layer, "{name}");
        }
        // A truncated gzip stream is the source's error, and leaves no file.
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&layer).unwrap();
        let bytes = gzip.finish().unwrap();
        fs::write(dir.join("cut"), &bytes[..bytes.len() / 2]).unwrap();
        let out = dir.join("cut.tar");
        let e = decompress(&source, "cut", &out).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("image web: read {}", dir.join("cut").display())),
            "{e}"
        );
        assert!(!out.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
