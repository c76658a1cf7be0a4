//! The three import formats, read into the store:
//!
//! - an **OCI image layout** directory (`oci-layout`, `index.json`,
//!   `blobs/sha256/…`), as `umoci` and `skopeo copy … oci:DIR` write it;
//! - an **OCI archive**, the same as a tar;
//! - a **`docker save`** archive (`manifest.json`, `<id>.json` configs,
//!   `<id>/layer.tar`; since Docker 25 also an OCI layout), tar or directory.
//!
//! An archive is never extracted to disk: it is read once to index its
//! members (offsets of regular files, targets of symbolic links, which
//! `docker save` uses for repeated layers), then each member is read in place.
//!
//! Every JSON document is parsed into bounded wire structs (serde-json-core,
//! every capacity a `MAX_*`) after its sha256 was checked against the digest
//! that names it; only the entry points (`index.json`, `manifest.json`) have
//! none. A layer blob is hashed while it is extracted, and kept only if both
//! its blob digest (for OCI, compressed) and its diff_id (uncompressed, from
//! the config's `rootfs.diff_ids`) are right. A multi-architecture index
//! gives the manifest for the running architecture (or `--arch`); a config
//! for another architecture is refused naming both.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use delta_updater::archive::{self, Archive, ArchiveError, Limits};
use delta_updater::Digest;
use serde::Deserialize;
use serde_json_core::str::EscapedStr;

use super::extract::Options;
use super::store::{hex, Lock, Store, MAX_CREATED_BYTES, MAX_LAYERS, MAX_PLATFORM_BYTES};
use super::{ImageError, ImageName, ImageRecord, Imported, MAX_NAME_BYTES};
use crate::wire::{self, CappedMap, Field, HeapCapped, WireError};

/// Largest JSON document read (index, manifest, config, `manifest.json`).
pub const MAX_JSON_BYTES: usize = 4 << 20;
/// Most manifests an index may list.
pub const MAX_MANIFESTS: usize = 64;
/// Most annotations a descriptor may have.
pub const MAX_ANNOTATIONS: usize = 32;
/// Most images a `docker save` `manifest.json` may list.
pub const MAX_DOCKER_IMAGES: usize = 16;
/// Most tags one `docker save` image may have.
pub const MAX_REPO_TAGS: usize = 16;
/// Most members an archive may have.
pub const MAX_ARCHIVE_MEMBERS: usize = 10_000;
/// Longest media type, annotation or member name read.
pub const MAX_STRING_BYTES: usize = 1024;
/// Deepest nesting of arrays and objects in a JSON document read.
pub const MAX_JSON_DEPTH: usize = 32;
/// Most nested indexes followed from `index.json`.
pub const MAX_INDEX_DEPTH: usize = 2;
/// Most symbolic links followed to find an archive member.
pub const MAX_MEMBER_LINKS: usize = 8;
/// What an image archive may hold on the device.
const ARCHIVE_LIMITS: Limits = Limits {
    members: MAX_ARCHIVE_MEMBERS,
    name_bytes: MAX_STRING_BYTES,
    links: MAX_MEMBER_LINKS,
};

/// How `husk image import` reads an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The name to record (`--name`); else the source's own.
    pub name: Option<ImageName>,
    /// The architecture wanted (`--arch`); else the running one.
    pub arch: Option<String>,
    /// How layers are extracted.
    pub extract: Options,
}

/// Reads the image at `path` into the store and returns its record (not yet
/// in `images.json`: the caller saves it).
pub(crate) fn import(
    store: &Store,
    lock: &Lock,
    path: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Imported, ImageError> {
    // `PATH:TAG`, as skopeo's `oci:PATH:TAG`, when PATH exists and PATH:TAG does not.
    let (path, tag) = match path.to_str().and_then(|p| p.rsplit_once(':')) {
        Some((dir, tag)) if !path.exists() && Path::new(dir).exists() && !tag.contains('/') => {
            (Path::new(dir), Some(tag))
        }
        _ => (path, None),
    };
    let source = Source::open(path)?;
    let arch = options
        .arch
        .clone()
        .unwrap_or_else(|| super::native_arch().to_owned());
    let image = if source.exists("oci-layout") {
        oci_image(&source, &arch, tag)?
    } else if let Some(tag) = tag {
        return Err(ImageError::Format {
            file: path.display().to_string(),
            reason: format!("is not an OCI layout, so :{tag} names nothing in it"),
        });
    } else if source.exists("manifest.json") {
        docker_image(&source, options.name.as_ref())?
    } else {
        return Err(ImageError::Format {
            file: path.display().to_string(),
            reason: "neither an OCI layout (no oci-layout) nor a docker save archive \
                     (no manifest.json)"
                .into(),
        });
    };
    let config = parse_config(&image.config_bytes, &image.config_file)?;
    if config.arch != arch || config.os != "linux" {
        return Err(ImageError::WrongArch {
            wanted: format!("linux/{arch}"),
            found: format!("{}/{}", config.os, config.arch),
        });
    }
    if config.diff_ids.len() != image.layers.len() {
        return Err(ImageError::Format {
            file: image.config_file.clone(),
            reason: format!(
                "rootfs.diff_ids has {} layers, the manifest {}",
                config.diff_ids.len(),
                image.layers.len()
            ),
        });
    }
    let name = match (&options.name, &image.name) {
        (Some(name), _) | (None, Some(name)) => name.clone(),
        (None, None) => return Err(ImageError::NoName),
    };
    let mut imported = Imported {
        record: ImageRecord {
            name,
            id: image.config,
            manifest: image.manifest,
            arch: config.arch,
            os: config.os,
            created: config.created,
            size: 0,
            layers: config.diff_ids.clone(),
        },
        extracted: 0,
        reused: 0,
        setid_cleared: 0,
        xattrs_dropped: 0,
        replaced: None,
    };
    let count = image.layers.len();
    for (i, (layer, diff_id)) in image.layers.iter().zip(&config.diff_ids).enumerate() {
        if store.has_layer(diff_id) {
            imported.record.size += store.layer(diff_id)?.size;
            imported.reused += 1;
            continue;
        }
        let label = format!("layer {}/{count} {}", i + 1, super::short_id(diff_id));
        progress(&label);
        let reader = Counting {
            inner: source.reader(&layer.file)?,
            read: 0,
            progress: &mut |read| progress(&format!("{label}: {read} bytes read")),
        };
        let reader: Box<dyn Read + '_> = Box::new(reader);
        let info = store.add_layer(
            lock,
            reader,
            &layer.file,
            Some(diff_id),
            layer.blob.as_ref(),
            &options.extract,
        )?;
        imported.record.size += info.size;
        imported.setid_cleared += info.setid_cleared;
        imported.xattrs_dropped += info.xattrs_dropped;
        imported.extracted += 1;
    }
    store.put_blob(lock, &image.config, &image.config_bytes)?;
    if let Some(manifest) = &image.manifest_bytes {
        store.put_blob(lock, &image.manifest, manifest)?;
    }
    Ok(imported)
}

/// An image found in a source, its JSON documents checked.
struct Found {
    name: Option<ImageName>,
    manifest: Digest,
    /// The manifest, to keep in the store (OCI only).
    manifest_bytes: Option<Vec<u8>>,
    config: Digest,
    config_file: String,
    config_bytes: Vec<u8>,
    layers: Vec<LayerRef>,
}

/// A layer as a manifest names it.
struct LayerRef {
    /// The member holding it.
    file: String,
    /// The digest of its bytes as stored, when the source says it.
    blob: Option<Digest>,
}

/// A reader that says how many bytes it has read.
struct Counting<'a, R> {
    inner: R,
    read: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.progress)(self.read);
        Ok(n)
    }
}

// The OCI layout.

#[derive(Deserialize)]
struct IndexWire<'a> {
    #[serde(rename = "mediaType", borrow)]
    media_type: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    manifests: Option<HeapCapped<DescriptorWire<'a>, MAX_MANIFESTS>>,
    #[serde(borrow)]
    config: Option<DescriptorWire<'a>>,
    #[serde(borrow)]
    layers: Option<HeapCapped<DescriptorWire<'a>, MAX_LAYERS>>,
}

#[derive(Deserialize)]
struct DescriptorWire<'a> {
    #[serde(rename = "mediaType", borrow)]
    media_type: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    digest: EscapedStr<'a>,
    size: i64,
    #[serde(borrow)]
    platform: Option<PlatformWire<'a>>,
    #[serde(borrow)]
    annotations: Option<CappedMap<'a, MAX_ANNOTATIONS>>,
}

#[derive(Deserialize)]
struct PlatformWire<'a> {
    #[serde(borrow)]
    architecture: EscapedStr<'a>,
    #[serde(borrow)]
    os: EscapedStr<'a>,
    #[serde(borrow)]
    variant: Option<EscapedStr<'a>>,
}

/// A descriptor, validated.
struct Descriptor {
    media_type: String,
    digest: Digest,
    size: u64,
    platform: Option<(String, String, String)>,
    ref_name: Option<String>,
    image_name: Option<String>,
}

const MANIFESTS: Field = Field::new("manifests");
const LAYERS: Field = Field::new("layers");
const CONFIG: Field = Field::new("config");

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

fn oci_image(source: &Source, arch: &str, tag: Option<&str>) -> Result<Found, ImageError> {
    let mut file = "index.json".to_owned();
    let mut bytes = source.read("index.json", MAX_JSON_BYTES)?;
    let mut default_name = None;
    let mut digest = None;
    for _ in 0..=MAX_INDEX_DEPTH {
        let Some(descriptors) = index_entries(&bytes, &file)? else {
            let manifest = digest.ok_or_else(|| ImageError::Format {
                file: file.clone(),
                reason: "is a manifest, not an index".into(),
            })?;
            let wire = parse_json::<IndexWire<'_>>(&bytes, &file)?;
            return oci_manifest(source, wire, &file, manifest, bytes.clone(), default_name);
        };
        // Only index.json names its images.
        let tag = if digest.is_none() { tag } else { None };
        let chosen = choose(&descriptors, arch, tag, &file)?;
        if default_name.is_none() {
            default_name = name_of(chosen, source.stem());
        }
        file = blob_file(&chosen.digest);
        bytes = source.read_verified(&file, &chosen.digest, chosen.size)?;
        digest = Some(chosen.digest);
    }
    Err(ImageError::Format {
        file,
        reason: format!("indexes nest deeper than {MAX_INDEX_DEPTH}"),
    })
}

/// The entries of the index `bytes`, or `None` if it is a manifest.
fn index_entries(bytes: &[u8], file: &str) -> Result<Option<Vec<Descriptor>>, ImageError> {
    let wire = parse_json::<IndexWire<'_>>(bytes, file)?;
    let media_type = text(file, Field::new("mediaType"), wire.media_type)?;
    let Some(manifests) = wire.manifests else {
        if INDEX_TYPES.contains(&media_type.as_str()) {
            return Ok(Some(Vec::new()));
        }
        return Ok(None);
    };
    let manifests = manifests
        .into_items(MANIFESTS)
        .map_err(|e| wire_error(file, e))?;
    let mut descriptors = Vec::new();
    for (i, m) in manifests.into_iter().enumerate() {
        descriptors.push(descriptor(file, MANIFESTS.at(i), m)?);
    }
    Ok(Some(descriptors))
}

/// The manifest `wire` (parsed from `bytes`, the blob `digest`).
fn oci_manifest(
    source: &Source,
    wire: IndexWire<'_>,
    file: &str,
    digest: Digest,
    bytes: Vec<u8>,
    name: Option<ImageName>,
) -> Result<Found, ImageError> {
    let config = wire.config.ok_or_else(|| ImageError::Format {
        file: file.to_owned(),
        reason: "the manifest has no config".into(),
    })?;
    let config = descriptor(file, CONFIG, config)?;
    let layers = wire.layers.map_or(Ok(Vec::new()), |l| {
        l.into_items(LAYERS).map_err(|e| wire_error(file, e))
    })?;
    let mut refs = Vec::new();
    for (i, layer) in layers.into_iter().enumerate() {
        let layer = descriptor(file, LAYERS.at(i), layer)?;
        // tar, tar+gzip, tar+zstd, and Docker's rootfs.diff.tar(.gzip);
        // the bytes themselves say which (extract.rs).
        if !layer.media_type.contains("tar") || layer.media_type.contains("encrypted") {
            return Err(ImageError::Format {
                file: file.to_owned(),
                reason: format!("layer {} has media type {:?}", i, layer.media_type),
            });
        }
        let blob = blob_file(&layer.digest);
        source.check_size(&blob, layer.size)?;
        refs.push(LayerRef {
            file: blob,
            blob: Some(layer.digest),
        });
    }
    let config_file = blob_file(&config.digest);
    let config_bytes = source.read_verified(&config_file, &config.digest, config.size)?;
    Ok(Found {
        name,
        manifest: digest,
        manifest_bytes: Some(bytes),
        config: config.digest,
        config_file,
        config_bytes,
        layers: refs,
    })
}

fn descriptor(
    file: &str,
    field: Field,
    wire: DescriptorWire<'_>,
) -> Result<Descriptor, ImageError> {
    let digest_text = text(file, field.member("digest"), Some(wire.digest))?;
    let digest = Digest::parse(&digest_text).map_err(|e| ImageError::Format {
        file: file.to_owned(),
        reason: format!("{}: {e}", field.member("digest")),
    })?;
    let size = u64::try_from(wire.size).map_err(|_| ImageError::Format {
        file: file.to_owned(),
        reason: format!("{} is negative", field.member("size")),
    })?;
    let platform = match wire.platform {
        Some(p) => Some((
            text(file, field.member("platform"), Some(p.os))?,
            text(file, field.member("platform"), Some(p.architecture))?,
            text(file, field.member("platform"), p.variant)?,
        )),
        None => None,
    };
    let mut ref_name = None;
    let mut image_name = None;
    if let Some(annotations) = wire.annotations {
        let entries = annotations
            .into_entries(field.member("annotations"))
            .map_err(|e| wire_error(file, e))?;
        for (key, value) in entries {
            let key = text(file, field.member("annotations"), Some(key))?;
            let slot = match key.as_str() {
                "org.opencontainers.image.ref.name" => &mut ref_name,
                "io.containerd.image.name" => &mut image_name,
                _ => continue,
            };
            *slot = Some(text(file, field.member("annotations"), Some(value))?);
        }
    }
    Ok(Descriptor {
        media_type: text(file, field.member("mediaType"), wire.media_type)?,
        digest,
        size,
        platform,
        ref_name,
        image_name,
    })
}

/// The manifest of an index for `arch`: the one whose platform matches, or,
/// if no entry has a platform, the first (its config's architecture is
/// checked later).
fn choose<'d>(
    descriptors: &'d [Descriptor],
    arch: &str,
    tag: Option<&str>,
    file: &str,
) -> Result<&'d Descriptor, ImageError> {
    let images: Vec<&Descriptor> = descriptors
        .iter()
        .filter(|d| {
            d.media_type.is_empty()
                || INDEX_TYPES.contains(&d.media_type.as_str())
                || MANIFEST_TYPES.contains(&d.media_type.as_str())
        })
        .collect();
    let mut tags: Vec<&str> = images
        .iter()
        .filter_map(|d| d.ref_name.as_deref())
        .collect();
    tags.dedup();
    let images: Vec<&Descriptor> = match tag {
        Some(tag) => images
            .into_iter()
            .filter(|d| d.ref_name.as_deref() == Some(tag))
            .collect(),
        None => images,
    };
    let format = |reason: String| ImageError::Format {
        file: file.to_owned(),
        reason,
    };
    if images.is_empty() {
        return Err(format(match tag {
            Some(tag) => format!("has no image tagged {tag:?} (tags: {})", tags.join(", ")),
            None => "lists no image manifest".into(),
        }));
    }
    if images.iter().all(|d| d.platform.is_none()) {
        if tag.is_none() && tags.len() > 1 {
            return Err(format(format!(
                "lists {} images ({}): import PATH:TAG to choose",
                tags.len(),
                tags.join(", ")
            )));
        }
        return Ok(images[0]);
    }
    let matching = images.iter().copied().filter(|d| {
        d.platform
            .as_ref()
            .is_some_and(|(os, a, _)| os == "linux" && a == arch)
    });
    // An arm device runs v7 best; v6 and unspecified variants run too.
    let mut best: Option<&Descriptor> = None;
    for d in matching {
        let variant = d.platform.as_ref().map_or("", |(_, _, v)| v.as_str());
        if best.is_none() || variant == "v7" {
            best = Some(d);
        }
    }
    best.ok_or_else(|| {
        let found: Vec<String> = images
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .map(|(os, a, v)| {
                if v.is_empty() {
                    format!("{os}/{a}")
                } else {
                    format!("{os}/{a}/{v}")
                }
            })
            .collect();
        ImageError::WrongArch {
            wanted: format!("linux/{arch}"),
            found: found.join(", "),
        }
    })
}

/// The name an OCI descriptor gives its image: containerd's full name, or
/// the ref name (a bare tag is taken as a tag of the source's file name).
fn name_of(d: &Descriptor, stem: &str) -> Option<ImageName> {
    if let Some(name) = &d.image_name {
        return ImageName::parse(name).ok();
    }
    match &d.ref_name {
        Some(r) if r.contains(':') || r.contains('/') => ImageName::parse(r).ok(),
        Some(tag) => ImageName::parse(&format!("{stem}:{tag}")).ok(),
        None => ImageName::parse(stem).ok(),
    }
}

fn blob_file(digest: &Digest) -> String {
    format!("blobs/sha256/{}", hex(digest))
}

// docker save.

#[derive(Deserialize)]
struct DockerImageWire<'a> {
    #[serde(rename = "Config", borrow)]
    config: EscapedStr<'a>,
    #[serde(rename = "RepoTags", borrow)]
    repo_tags: Option<HeapCapped<EscapedStr<'a>, MAX_REPO_TAGS>>,
    #[serde(rename = "Layers", borrow)]
    layers: HeapCapped<EscapedStr<'a>, MAX_LAYERS>,
}

const DOCKER_IMAGES: Field = Field::new("manifest.json");

fn docker_image(source: &Source, wanted: Option<&ImageName>) -> Result<Found, ImageError> {
    let file = "manifest.json";
    let bytes = source.read(file, MAX_JSON_BYTES)?;
    let wire = parse_json::<HeapCapped<DockerImageWire<'_>, MAX_DOCKER_IMAGES>>(&bytes, file)?;
    let images = wire
        .into_items(DOCKER_IMAGES)
        .map_err(|e| wire_error(file, e))?;
    let mut found = Vec::new();
    for (i, image) in images.into_iter().enumerate() {
        let at = DOCKER_IMAGES.at(i);
        let mut tags = Vec::new();
        for (j, tag) in image
            .repo_tags
            .map_or(Ok(Vec::new()), |t| t.into_items(at.member("RepoTags")))
            .map_err(|e| wire_error(file, e))?
            .into_iter()
            .enumerate()
        {
            let tag = text(file, at.member("RepoTags").at(j), Some(tag))?;
            let tag = ImageName::parse(&tag).map_err(|reason| ImageError::Format {
                file: file.into(),
                reason: format!("{}: {reason}", at.member("RepoTags").at(j)),
            })?;
            tags.push(tag);
        }
        let config = text(file, at.member("Config"), Some(image.config))?;
        let mut layers = Vec::new();
        for (j, layer) in image
            .layers
            .into_items(at.member("Layers"))
            .map_err(|e| wire_error(file, e))?
            .into_iter()
            .enumerate()
        {
            layers.push(text(file, at.member("Layers").at(j), Some(layer))?);
        }
        found.push((tags, config, layers));
    }
    // The image carrying the wanted name, else the first.
    let at = wanted
        .and_then(|w| found.iter().position(|(tags, _, _)| tags.contains(w)))
        .unwrap_or(0);
    let Some((tags, config_file, layers)) = found.into_iter().nth(at) else {
        return Err(ImageError::Format {
            file: file.into(),
            reason: "lists no image".into(),
        });
    };
    let config = digest_in_name(&config_file).ok_or_else(|| ImageError::Format {
        file: file.into(),
        reason: format!("config {config_file:?} is not named by its digest"),
    })?;
    let config_bytes = source.read_verified(&config_file, &config, u64::MAX)?;
    let layers = layers
        .into_iter()
        .map(|file| LayerRef {
            blob: digest_in_name(&file),
            file,
        })
        .collect();
    Ok(Found {
        name: tags.into_iter().next(),
        manifest: Digest::of(&bytes),
        manifest_bytes: None,
        config,
        config_file,
        config_bytes,
        layers,
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

// The image config.

#[derive(Deserialize)]
struct ConfigWire<'a> {
    #[serde(borrow)]
    architecture: EscapedStr<'a>,
    #[serde(borrow)]
    os: EscapedStr<'a>,
    #[serde(borrow)]
    created: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    rootfs: RootfsWire<'a>,
}

#[derive(Deserialize)]
struct RootfsWire<'a> {
    #[serde(rename = "type", borrow)]
    kind: EscapedStr<'a>,
    #[serde(borrow)]
    diff_ids: HeapCapped<EscapedStr<'a>, MAX_LAYERS>,
}

/// What husk takes from an image config today.
pub(crate) struct Config {
    /// Its OCI architecture.
    pub arch: String,
    /// Its OS.
    pub os: String,
    /// When it was built (RFC 3339), or empty.
    pub created: String,
    /// Its layers' diff_ids, lowest first.
    pub diff_ids: Vec<Digest>,
}

const DIFF_IDS: Field = Field::new("rootfs.diff_ids");

pub(crate) fn parse_config(bytes: &[u8], file: &str) -> Result<Config, ImageError> {
    let wire = parse_json::<ConfigWire<'_>>(bytes, file)?;
    let kind = text(file, Field::new("rootfs.type"), Some(wire.rootfs.kind))?;
    if kind != "layers" {
        return Err(ImageError::Format {
            file: file.into(),
            reason: format!("rootfs.type is {kind:?}, not \"layers\""),
        });
    }
    let mut diff_ids = Vec::new();
    let items = wire
        .rootfs
        .diff_ids
        .into_items(DIFF_IDS)
        .map_err(|e| wire_error(file, e))?;
    for (i, id) in items.into_iter().enumerate() {
        let id = text(file, DIFF_IDS.at(i), Some(id))?;
        diff_ids.push(Digest::parse(&id).map_err(|e| ImageError::Format {
            file: file.into(),
            reason: format!("{}: {e}", DIFF_IDS.at(i)),
        })?);
    }
    let capped =
        |field, value, max| wire::unescape(field, value, max).map_err(|e| wire_error(file, e));
    Ok(Config {
        arch: capped(
            Field::new("architecture"),
            wire.architecture,
            MAX_PLATFORM_BYTES,
        )?,
        os: capped(Field::new("os"), wire.os, MAX_PLATFORM_BYTES)?,
        created: match wire.created {
            Some(created) => capped(Field::new("created"), created, MAX_CREATED_BYTES)?,
            None => String::new(),
        },
        diff_ids,
    })
}

// Helpers.

fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], file: &str) -> Result<T, ImageError> {
    check_depth(bytes).map_err(|reason| ImageError::Format {
        file: file.to_owned(),
        reason,
    })?;
    serde_json_core::from_slice::<T>(bytes)
        .map(|(value, _)| value)
        .map_err(|e| ImageError::Format {
            file: file.to_owned(),
            reason: format!("not the JSON expected: {e}"),
        })
}

/// Fails if arrays and objects of `json` nest deeper than [`MAX_JSON_DEPTH`]:
/// the parser recurses into every level, even of members it ignores
/// (`history`, `Labels`), and a few megabytes of `[` would exhaust the stack.
pub(crate) fn check_depth(json: &[u8]) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(format!("nests deeper than {MAX_JSON_DEPTH} levels"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn wire_error(file: &str, source: WireError) -> ImageError {
    ImageError::Wire {
        file: file.to_owned(),
        source,
    }
}

/// A string of a document, unescaped, at most [`MAX_STRING_BYTES`]; absent is empty.
fn text(file: &str, field: Field, value: Option<EscapedStr<'_>>) -> Result<String, ImageError> {
    match value {
        Some(value) => {
            wire::unescape(field, value, MAX_STRING_BYTES).map_err(|e| wire_error(file, e))
        }
        None => Ok(String::new()),
    }
}

// Sources: a directory or an archive.

/// Where an image is read from.
enum Source {
    Dir(PathBuf),
    Archive { path: PathBuf, archive: Archive },
}

impl Source {
    fn open(path: &Path) -> Result<Self, ImageError> {
        let source_error = |source| ImageError::Source {
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(source_error)?;
        if meta.is_dir() {
            return Ok(Self::Dir(path.to_owned()));
        }
        let file = File::open(path).map_err(source_error)?;
        let archive = Archive::index(file, ARCHIVE_LIMITS).map_err(|e| ImageError::Format {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self::Archive {
            path: path.to_owned(),
            archive,
        })
    }

    /// The source's file name without extension, for a default image name.
    fn stem(&self) -> &str {
        let path = match self {
            Self::Dir(path) | Self::Archive { path, .. } => path,
        };
        path.file_stem().and_then(|s| s.to_str()).unwrap_or("image")
    }

    fn shown(&self, name: &str) -> String {
        match self {
            Self::Dir(dir) => dir.join(name).display().to_string(),
            Self::Archive { path, .. } => format!("{}:{name}", path.display()),
        }
    }

    fn exists(&self, name: &str) -> bool {
        match self {
            Self::Dir(dir) => dir.join(name).exists(),
            Self::Archive { archive, .. } => archive.contains(name),
        }
    }

    /// The member `name`'s bytes and their count.
    fn open_member(&self, name: &str) -> Result<(Box<dyn Read + '_>, u64), ImageError> {
        let format = |e: ArchiveError| ImageError::Format {
            file: self.shown(name),
            reason: e.to_string(),
        };
        match self {
            Self::Dir(dir) => {
                let clean = archive::member_name(name, MAX_STRING_BYTES)
                    .ok_or_else(|| format(ArchiveError::Name))?;
                let path = dir.join(&clean);
                let source_error = |source| ImageError::Source {
                    path: path.display().to_string(),
                    source,
                };
                let file = File::open(&path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => format(ArchiveError::Missing),
                    _ => source_error(e),
                })?;
                let len = file.metadata().map_err(source_error)?.len();
                Ok((Box::new(file), len))
            }
            Self::Archive { archive, .. } => {
                let (reader, len) = archive.open(name).map_err(format)?;
                Ok((Box::new(reader), len))
            }
        }
    }

    /// A reader of the member `name`.
    fn reader(&self, name: &str) -> Result<Box<dyn Read + '_>, ImageError> {
        Ok(self.open_member(name)?.0)
    }

    /// Fails unless the member `name` has `size` bytes.
    fn check_size(&self, name: &str, size: u64) -> Result<(), ImageError> {
        let (_, len) = self.open_member(name)?;
        if len != size {
            return Err(ImageError::Format {
                file: self.shown(name),
                reason: format!("has {len} bytes, its descriptor says {size}"),
            });
        }
        Ok(())
    }

    /// The member `name`, at most `max` bytes.
    fn read(&self, name: &str, max: usize) -> Result<Vec<u8>, ImageError> {
        let (reader, len) = self.open_member(name)?;
        if len > max as u64 {
            return Err(ImageError::Format {
                file: self.shown(name),
                reason: format!("is larger than {max} bytes"),
            });
        }
        let mut data = Vec::with_capacity(len as usize);
        reader
            .take(max as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|source| ImageError::Source {
                path: self.shown(name),
                source,
            })?;
        Ok(data)
    }

    /// The member `name`, which must have `digest` (and `size` bytes, unless
    /// `size` is `u64::MAX`): checked before anything parses it.
    fn read_verified(&self, name: &str, digest: &Digest, size: u64) -> Result<Vec<u8>, ImageError> {
        let data = self.read(name, MAX_JSON_BYTES)?;
        let found = Digest::of(&data);
        if found != *digest {
            return Err(ImageError::Format {
                file: self.shown(name),
                reason: format!("has digest {found}, not {digest}"),
            });
        }
        if size != u64::MAX && data.len() as u64 != size {
            return Err(ImageError::Format {
                file: self.shown(name),
                reason: format!("has {} bytes, its descriptor says {size}", data.len()),
            });
        }
        Ok(data)
    }
}

// An image name read from a source (RepoTags, annotations) fits a string read.
const _: () = assert!(MAX_NAME_BYTES <= MAX_STRING_BYTES);

#[cfg(test)]
pub(crate) mod tests;
