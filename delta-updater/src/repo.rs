//! The update repository on the publisher's disk (feature `publish`).
//!
//! ```text
//! DIR/keys/<role>[-<keyid>].key          ed25519 seeds in hex, mode 0600: never served
//! DIR/tmp/                                image layers staged for a release: never served
//! DIR/repo/                               what is served, as static files:
//!   root.json                             the current root (a copy of the highest below)
//!   root/<N>.json                         every root; a device walks N+1, N+2, ...
//!   timestamp.json                        the current release of each class and architecture
//!   releases/<class>/<arch>/<V>.json      release V of a device class and architecture
//!   blobs/sha256/<hex>                    zstd layers, deltas, image configs, by content
//! ```
//!
//! Every file is written to a temporary name, synced and renamed; blobs
//! first, then release metadata, then the timestamp, so a device never sees
//! metadata that names a blob not yet there.
//!
//! Which keys a role has, and its threshold, is what the newest root says;
//! the private keys are found in `DIR/keys` by their id. `init` makes one
//! key per role (threshold 1); `keys` adds, revokes and rotates keys and
//! sets thresholds, each change a new root.
//!
//! A release made from images (`--image NAME=PATH`) has, in its desired
//! state, an `images` member beside the operator's `containers`:
//! `{"name", "config": {"digest", "size"}, "layers": [diff_id, ...]}` per
//! image, lowest layer first; every layer is also in the release's `layers`
//! (once), and every config is an uncompressed blob.

use core::fmt;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use ed25519_dalek::VerifyingKey;

use crate::delta::{self, make, Algorithm, Target};
use crate::digest::Digest;
use crate::image::{self, ImageError, ImageSpec};
use crate::metadata::{
    self, Blob, Delta, KeyId, Layer, MetadataError, Release, Role, Root, Timestamp,
};
use crate::sign::{self, JsonError, RoleSpec};
use crate::verify::{Device, Seen, Verifier, VerifyError};

/// How long a new root is trusted, in seconds (a year).
pub const ROOT_EXPIRY: u64 = 365 * 86_400;
/// How long a release is trusted by default, in seconds (90 days).
pub const RELEASE_EXPIRY: u64 = 90 * 86_400;
/// How long a timestamp is fresh by default, in seconds (one day).
pub const TIMESTAMP_EXPIRY: u64 = 86_400;
/// Against how many previous releases' layers deltas are computed by default.
pub const DELTA_HISTORY: usize = 3;

const ROLES: [&str; 3] = ["root", "timestamp", "release"];

/// Why a repository operation failed.
#[derive(Debug)]
pub enum RepoError {
    /// A file operation failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// `init` on a directory that already has a repository.
    Exists(PathBuf),
    /// A key file is not a 64-hex-digit seed.
    Key(PathBuf),
    /// A metadata file was refused.
    Metadata(PathBuf, Box<MetadataError>),
    /// A metadata file failed the device's checks.
    Verify(PathBuf, Box<VerifyError>),
    /// The desired state is not a JSON object of integers, strings, ...
    DesiredState(PathBuf, JsonError),
    /// A name (device class, architecture, hardware) is not valid.
    Name(String),
    /// A release without layers.
    NoLayers,
    /// An image could not be read.
    Image(Box<ImageError>),
    /// The desired state already has an `images` member.
    ImagesInState(PathBuf),
    /// Two `--image`s with one name.
    DuplicateImage(String),
    /// A container names an image the release does not have.
    UnknownImage {
        /// The container's name (or its index).
        container: String,
        /// The image it names.
        image: String,
    },
    /// A release's `images` member is not as `release` writes it.
    Images(PathBuf, String),
    /// A release with more layers than a device accepts.
    TooManyLayers(usize),
    /// The desired state with its images is longer than a device accepts.
    DesiredStateTooLong(usize),
    /// A role of the root is not one of root, timestamp, release.
    NoRole(String),
    /// Fewer private keys of a role are here than its threshold.
    MissingKeys {
        /// The role.
        role: &'static str,
        /// Its keys whose private half is in `DIR/keys`.
        have: usize,
        /// Its threshold.
        threshold: usize,
    },
    /// A `keys` change that the root cannot hold.
    Keys(String),
    /// A blob is missing or is not what metadata says.
    Blob {
        /// Its address.
        digest: Digest,
        /// What is wrong.
        reason: &'static str,
    },
    /// Computing a delta failed.
    Delta(PathBuf, io::Error),
    /// Applying a delta failed.
    Apply(PathBuf, delta::DeltaError),
    /// `root.json` is not a copy of the newest `root/<N>.json`.
    RootCopy(PathBuf, u64),
}

impl fmt::Display for RepoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { op, path, error } => write!(f, "{op} {}: {error}", path.display()),
            Self::Exists(path) => write!(f, "{}: a repository is already there", path.display()),
            Self::Key(path) => write!(f, "{}: not an ed25519 key (64 hex digits)", path.display()),
            Self::Metadata(path, e) => write!(f, "{}: {e}", path.display()),
            Self::Verify(path, e) => write!(f, "{}: {e}", path.display()),
            Self::DesiredState(path, e) => write!(f, "desired state {}: {e}", path.display()),
            Self::Name(name) => write!(
                f,
                "{name:?} is not a name (1 to 64 of A-Z a-z 0-9 . _ + -, not starting with .)"
            ),
            Self::NoLayers => f.write_str("a release needs at least one --layer or --image"),
            Self::Image(e) => e.fmt(f),
            Self::ImagesInState(path) => write!(
                f,
                "desired state {}: has an \"images\" member; --image writes it",
                path.display()
            ),
            Self::DuplicateImage(name) => write!(f, "image {name}: given twice"),
            Self::UnknownImage { container, image } => write!(
                f,
                "container {container}: names image {image:?}, which no --image gives"
            ),
            Self::Images(path, reason) => write!(f, "{}: {reason}", path.display()),
            Self::TooManyLayers(n) => write!(
                f,
                "the release has {n} layers, more than {} a device accepts",
                metadata::MAX_LAYERS
            ),
            Self::DesiredStateTooLong(n) => write!(
                f,
                "the desired state with its images is {n} bytes, more than {} a device accepts",
                metadata::MAX_DESIRED_STATE_LEN
            ),
            Self::NoRole(role) => {
                write!(f, "{role:?} is not a role (root, timestamp or release)")
            }
            Self::MissingKeys {
                role,
                have,
                threshold,
            } => write!(
                f,
                "{role} role: {have} of its private keys are in keys/, its threshold is {threshold}"
            ),
            Self::Keys(reason) => f.write_str(reason),
            Self::Blob { digest, reason } => write!(f, "blob {digest}: {reason}"),
            Self::Delta(path, e) => write!(f, "delta into {}: {e}", path.display()),
            Self::Apply(path, e) => write!(f, "{}: {e}", path.display()),
            Self::RootCopy(path, n) => {
                write!(f, "{}: is not a copy of root/{n}.json", path.display())
            }
        }
    }
}

impl std::error::Error for RepoError {}

impl From<ImageError> for RepoError {
    fn from(e: ImageError) -> Self {
        Self::Image(Box::new(e))
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RepoError + 'a {
    move |error| RepoError::Io {
        op,
        path: path.to_owned(),
        error,
    }
}

/// A repository directory.
pub struct Repo {
    dir: PathBuf,
}

/// What `release` published.
#[derive(Debug)]
pub struct Published {
    /// The new release's version.
    pub version: u64,
    /// Per layer, what was published.
    pub layers: Vec<PublishedLayer>,
    /// Per image, its config blob and how many layers it has.
    pub images: Vec<(String, Blob, usize)>,
}

/// One layer of a published release.
#[derive(Debug)]
pub struct PublishedLayer {
    /// Its diff_id.
    pub diff_id: Digest,
    /// Its uncompressed size.
    pub size: u64,
    /// The size of its full zstd blob.
    pub full: u64,
    /// The deltas kept: algorithm, the layer it applies to, its size.
    pub deltas: Vec<(Algorithm, Digest, u64)>,
}

/// What `release` publishes.
pub struct ReleaseInput<'a> {
    /// Device class.
    pub class: &'a str,
    /// Architecture.
    pub arch: &'a str,
    /// Hardware names it runs on.
    pub hardware: &'a [String],
    /// The desired-state JSON file.
    pub desired_state: &'a Path,
    /// Layer tar files, in order, before the images' layers.
    pub layers: &'a [PathBuf],
    /// The images; their layers follow `layers`, each diff_id once.
    pub images: &'a [ImageSpec],
    /// Seconds until the release expires.
    pub expires_in: u64,
    /// Against how many previous releases' layers to compute deltas.
    pub history: usize,
    /// The delta algorithms to try ([`Algorithm::ALL`]: every one).
    pub algorithms: &'a [Algorithm],
}

/// A change of the root's keys (`husk-publish keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// A new key for a role; its threshold is unchanged.
    Add(String),
    /// A role's key (by id, or a unique prefix of it) no longer counts.
    Revoke(String, String),
    /// A role's one key replaced by a new one.
    Rotate(String),
    /// How many of a role's keys must sign.
    Threshold(String, usize),
}

/// The keys and threshold of one role, as root N+1 will say.
#[derive(Clone)]
struct RoleSet {
    keys: Vec<VerifyingKey>,
    threshold: usize,
}

impl Repo {
    /// The repository at `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn served(&self) -> PathBuf {
        self.dir.join("repo")
    }

    fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }

    /// The blob path of `digest`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_string();
        self.served()
            .join("blobs/sha256")
            .join(hex.trim_start_matches("sha256:"))
    }

    fn release_dir(&self, class: &str, arch: &str) -> PathBuf {
        self.served().join("releases").join(class).join(arch)
    }

    /// Creates the keys (one per role) and root version 1.
    pub fn init(&self, now: u64) -> Result<(), RepoError> {
        let keys_dir = self.keys_dir();
        if self.served().exists() || keys_dir.exists() {
            return Err(RepoError::Exists(self.dir.clone()));
        }
        fs::create_dir_all(&keys_dir).map_err(io_err("create", &keys_dir))?;
        let mut sets = Vec::new();
        let mut root_key = None;
        for role in ROLES {
            let key = generate_key()?;
            write_key(&keys_dir.join(format!("{role}.key")), &key)?;
            sets.push(RoleSet {
                keys: vec![key.verifying_key()],
                threshold: 1,
            });
            root_key.get_or_insert(key);
        }
        let sets = [sets[0].clone(), sets[1].clone(), sets[2].clone()];
        let root_key = root_key.expect("three roles");
        self.write_root(1, now, &sets, &[&root_key])
    }

    fn write_root(
        &self,
        version: u64,
        now: u64,
        sets: &[RoleSet; 3],
        signers: &[&SigningKey],
    ) -> Result<(), RepoError> {
        let spec = |s: &RoleSet| RoleSpec {
            keys: s.keys.clone(),
            threshold: u32::try_from(s.threshold).unwrap_or(u32::MAX),
        };
        let value = sign::root(
            version,
            now + ROOT_EXPIRY,
            &spec(&sets[0]),
            &spec(&sets[1]),
            &spec(&sets[2]),
        );
        let bytes = sign::envelope(&value, signers);
        write_atomic(&self.served().join(format!("root/{version}.json")), &bytes)?;
        write_atomic(&self.served().join("root.json"), &bytes)
    }

    /// Every private key in `DIR/keys`, by id, with its file.
    fn private_keys(&self) -> Result<BTreeMap<KeyId, (SigningKey, PathBuf)>, RepoError> {
        let dir = self.keys_dir();
        let mut out = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(io_err("read", &dir))? {
            let path = entry.map_err(io_err("read", &dir))?.path();
            if path.extension().is_some_and(|e| e == "key") {
                let key = read_key(&path)?;
                out.insert(metadata::key_id(&key.verifying_key()), (key, path));
            }
        }
        Ok(out)
    }

    /// The newest root.
    fn root(&self) -> Result<Root, RepoError> {
        Ok(self.roots()?.pop().expect("roots() has root 1 at least"))
    }

    /// The private keys of `role` in `root`: all that are here, at least its threshold.
    fn signers(&self, root: &Root, role: &'static str) -> Result<Vec<SigningKey>, RepoError> {
        let spec = role_keys(root, role);
        let private = self.private_keys()?;
        let keys: Vec<SigningKey> = spec
            .keyids()
            .iter()
            .filter_map(|id| private.get(id).map(|(k, _)| k.clone()))
            .collect();
        if keys.len() < spec.threshold() {
            return Err(RepoError::MissingKeys {
                role,
                have: keys.len(),
                threshold: spec.threshold(),
            });
        }
        Ok(keys)
    }

    /// Each role's key ids and threshold in the newest root, and whether
    /// each private key is here: for `keys list`.
    pub fn list_keys(&self) -> Result<String, RepoError> {
        let root = self.root()?;
        let private = self.private_keys()?;
        let mut out = format!("root {}\n", root.version);
        for role in ROLES {
            let spec = role_keys(&root, role);
            out.push_str(&format!(
                "{role}: threshold {} of {}\n",
                spec.threshold(),
                spec.keyids().len()
            ));
            for id in spec.keyids() {
                let place = match private.get(id) {
                    Some((_, path)) => path.display().to_string(),
                    None => "no private key here".to_owned(),
                };
                out.push_str(&format!("  {}  {place}\n", sign::hex(id)));
            }
        }
        Ok(out)
    }

    /// Publishes root N+1 with `change` applied, signed by a threshold of
    /// root N's root keys and of its own; then re-publishes what the new
    /// keys no longer cover (the newest release of a class and architecture,
    /// as the next version with the same content, when its signers were
    /// revoked) and re-signs the timestamp. Returns root N+1's version.
    pub fn change_keys(&self, change: &KeyChange, now: u64) -> Result<u64, RepoError> {
        let old = self.root()?;
        let role_name = match change {
            KeyChange::Add(r)
            | KeyChange::Revoke(r, _)
            | KeyChange::Rotate(r)
            | KeyChange::Threshold(r, _) => r,
        };
        let role = ROLES
            .into_iter()
            .find(|r| r == role_name)
            .ok_or_else(|| RepoError::NoRole(role_name.clone()))?;
        let index = ROLES.iter().position(|r| *r == role).expect("found");
        let mut sets = ROLES.map(|r| {
            let spec = role_keys(&old, r);
            RoleSet {
                keys: spec
                    .keyids()
                    .iter()
                    .filter_map(|id| old.keys.get(id).copied())
                    .collect(),
                threshold: spec.threshold(),
            }
        });
        let set = &mut sets[index];
        let mut new_key = None;
        let mut removed: Vec<KeyId> = Vec::new();
        match change {
            KeyChange::Add(_) => {
                let key = generate_key()?;
                set.keys.push(key.verifying_key());
                new_key = Some(key);
            }
            KeyChange::Rotate(_) => {
                if set.keys.len() != 1 {
                    return Err(RepoError::Keys(format!(
                        "{role} role: has {} keys; rotate replaces the only one \
                         (use add and revoke)",
                        set.keys.len()
                    )));
                }
                removed.push(metadata::key_id(&set.keys[0]));
                let key = generate_key()?;
                set.keys = vec![key.verifying_key()];
                new_key = Some(key);
            }
            KeyChange::Revoke(_, id) => {
                let found: Vec<usize> = (0..set.keys.len())
                    .filter(|&i| {
                        id.len() >= 4
                            && sign::hex(&metadata::key_id(&set.keys[i]))
                                .starts_with(&id.to_ascii_lowercase())
                    })
                    .collect();
                let [at] = found[..] else {
                    return Err(RepoError::Keys(format!(
                        "{role} role: {} of its keys have an id starting with {id:?}",
                        found.len()
                    )));
                };
                if set.keys.len() - 1 < set.threshold {
                    return Err(RepoError::Keys(format!(
                        "{role} role: its threshold is {}, revoking a key leaves {}",
                        set.threshold,
                        set.keys.len() - 1
                    )));
                }
                removed.push(metadata::key_id(&set.keys.remove(at)));
            }
            KeyChange::Threshold(_, k) => {
                if *k == 0 || *k > set.keys.len() {
                    return Err(RepoError::Keys(format!(
                        "{role} role: threshold {k} is not between 1 and its {} keys",
                        set.keys.len()
                    )));
                }
                set.threshold = *k;
            }
        }
        if set.keys.len() > metadata::MAX_ROLE_KEYS {
            return Err(RepoError::Keys(format!(
                "{role} role: more than {} keys",
                metadata::MAX_ROLE_KEYS
            )));
        }
        let mut all: Vec<&VerifyingKey> = sets.iter().flat_map(|s| &s.keys).collect();
        all.sort_by_key(|k| k.as_bytes());
        all.dedup();
        if all.len() > metadata::MAX_KEYS {
            return Err(RepoError::Keys(format!(
                "a root holds at most {} keys",
                metadata::MAX_KEYS
            )));
        }
        // Root N+1 is signed by a threshold of the old root keys and of the new.
        let private = self.private_keys()?;
        let mut signers: Vec<SigningKey> = Vec::new();
        let new_root_ids: Vec<KeyId> = sets[0].keys.iter().map(metadata::key_id).collect();
        let mut count = |ids: &[KeyId], threshold: usize, which: &'static str| {
            let mut have = 0;
            for id in ids {
                let key = private.get(id).map(|(k, _)| k.clone()).or_else(|| {
                    new_key
                        .clone()
                        .filter(|k| metadata::key_id(&k.verifying_key()) == *id)
                });
                if let Some(key) = key {
                    have += 1;
                    if !signers.contains(&key) {
                        signers.push(key);
                    }
                }
            }
            if have < threshold {
                return Err(RepoError::MissingKeys {
                    role: which,
                    have,
                    threshold,
                });
            }
            Ok(())
        };
        count(old.root.keyids(), old.root.threshold(), "root")?;
        count(&new_root_ids, sets[0].threshold, "root")?;
        let version = old.version + 1;
        // The new private key is on disk before any root names it.
        if let Some(key) = &new_key {
            let id = sign::hex(&metadata::key_id(&key.verifying_key()));
            write_key(
                &self.keys_dir().join(format!("{role}-{}.key", &id[..16])),
                key,
            )?;
        }
        let refs: Vec<&SigningKey> = signers.iter().collect();
        self.write_root(version, now, &sets, &refs)?;
        // A key removed from its role is gone once root N+1 is out.
        for id in &removed {
            if let Some((_, path)) = private.get(id) {
                fs::remove_file(path).map_err(io_err("remove", path))?;
            }
        }
        let new_root = self.root()?;
        for (class, arch) in self.classes()? {
            let Some((newest, bytes)) = self.releases(&class, &arch)?.into_iter().next() else {
                continue;
            };
            if checked_release(&new_root, &bytes).is_err() {
                self.republish(&new_root, newest, now)?;
            }
        }
        self.timestamp(now, TIMESTAMP_EXPIRY)?;
        Ok(version)
    }

    /// `release` as the next version, the same content, signed by `root`'s release keys.
    fn republish(&self, root: &Root, mut release: Release, now: u64) -> Result<(), RepoError> {
        let keys = self.signers(root, "release")?;
        let refs: Vec<&SigningKey> = keys.iter().collect();
        release.version += 1;
        release.expires = release.expires.max(now + RELEASE_EXPIRY);
        let path = self
            .release_dir(&release.device_class, &release.arch)
            .join(format!("{}.json", release.version));
        let value =
            sign::release(&release).map_err(|e| RepoError::DesiredState(path.clone(), e))?;
        write_atomic(&path, &sign::envelope(&value, &refs))
    }
    /// publisher's own files: devices check the chain, `verify` does too).
    fn roots(&self) -> Result<Vec<Root>, RepoError> {
        let mut roots = Vec::new();
        loop {
            let path = self.served().join(format!("root/{}.json", roots.len() + 1));
            if !roots.is_empty() && !path.exists() {
                return Ok(roots);
            }
            let bytes = read(&path, metadata::MAX_ROOT_LEN)?;
            let envelope = metadata::open(Role::Root, &bytes)
                .map_err(|e| RepoError::Metadata(path.clone(), e.into()))?;
            let root = Root::parse(envelope.signed_bytes())
                .map_err(|e| RepoError::Metadata(path.clone(), e.into()))?;
            envelope
                .check(&root.keys, &root.root, "root")
                .map_err(|e| RepoError::Metadata(path.clone(), e.into()))?;
            roots.push(root);
        }
    }

    /// The releases of a class and architecture, highest version first,
    /// each with its metadata file's bytes. Each must be signed by the
    /// release keys of some root: releases signed before a key rotation
    /// still serve as the base of deltas.
    fn releases(&self, class: &str, arch: &str) -> Result<Vec<(Release, Vec<u8>)>, RepoError> {
        let roots = self.roots()?;
        let dir = self.release_dir(class, arch);
        let mut versions = Vec::new();
        match fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(io_err("read", &dir))?;
                    let name = entry.file_name();
                    let version = name
                        .to_str()
                        .and_then(|n| n.strip_suffix(".json"))
                        .and_then(|n| n.parse::<u64>().ok());
                    if let Some(v) = version {
                        versions.push(v);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read", &dir)(e)),
        }
        versions.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Vec::new();
        for v in versions {
            let path = dir.join(format!("{v}.json"));
            let bytes = read(&path, metadata::MAX_RELEASE_LEN)?;
            let mut result = Err(MetadataError::Envelope {
                role: Role::Release,
            });
            for root in roots.iter().rev() {
                result = checked_release(root, &bytes);
                if result.is_ok() {
                    break;
                }
            }
            let release = result.map_err(|e| RepoError::Metadata(path, e.into()))?;
            out.push((release, bytes));
        }
        Ok(out)
    }

    /// Every (class, arch) that has releases.
    fn classes(&self) -> Result<Vec<(String, String)>, RepoError> {
        let mut out = Vec::new();
        let dir = self.served().join("releases");
        let Ok(classes) = fs::read_dir(&dir) else {
            return Ok(out);
        };
        for class in classes {
            let class = class.map_err(io_err("read", &dir))?;
            let class_dir = class.path();
            for arch in fs::read_dir(&class_dir).map_err(io_err("read", &class_dir))? {
                let arch = arch.map_err(io_err("read", &class_dir))?;
                out.push((
                    class.file_name().to_string_lossy().into_owned(),
                    arch.file_name().to_string_lossy().into_owned(),
                ));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Publishes a new release from layer tars, images and a desired state,
    /// with deltas from the layers of the previous releases, and re-signs
    /// the timestamp. Everything is checked (images read, digests and
    /// diff_ids verified, names resolved) before the first blob is written.
    pub fn release(&self, input: &ReleaseInput<'_>, now: u64) -> Result<Published, RepoError> {
        let names = [input.class, input.arch]
            .into_iter()
            .chain(input.hardware.iter().map(String::as_str));
        for name in names {
            if !metadata::is_name(name) {
                return Err(RepoError::Name(name.to_owned()));
            }
        }
        if input.layers.is_empty() && input.images.is_empty() {
            return Err(RepoError::NoLayers);
        }
        let root = self.root()?;
        let keys = self.signers(&root, "release")?;
        let state_path = input.desired_state;
        let state_error = |e| RepoError::DesiredState(state_path.to_owned(), e);
        let state_text = fs::read_to_string(state_path).map_err(io_err("read", state_path))?;
        // Refuse a bad desired state before writing any blob.
        sign::desired_state(&state_text).map_err(state_error)?;
        let mut state: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&state_text)
                .map_err(|e| state_error(sign::JsonError::Parse(e)))?;
        if !input.images.is_empty() {
            if state.contains_key("images") {
                return Err(RepoError::ImagesInState(state_path.to_owned()));
            }
            check_images(&state, input.images)?;
        }
        // Every image read and its layers staged before anything is written.
        let stage = Stage::new(&self.dir.join("tmp"))?;
        let mut images = Vec::new();
        for spec in input.images {
            images.push(image::stage(spec, input.arch, &stage.0)?);
        }
        // The flat list: the --layer files, then each image's layers, each diff_id once.
        let mut flat: Vec<(Digest, u64, PathBuf)> = Vec::new();
        for path in input.layers {
            let file = File::open(path).map_err(io_err("open", path))?;
            let size = file.metadata().map_err(io_err("stat", path))?.len();
            let diff_id =
                Digest::of_reader(io::BufReader::new(file)).map_err(io_err("read", path))?;
            flat.push((diff_id, size, path.clone()));
        }
        for image in &images {
            for layer in &image.layers {
                if !flat.iter().any(|(d, _, _)| *d == layer.diff_id) {
                    flat.push((layer.diff_id, layer.size, layer.path.clone()));
                }
            }
        }
        if flat.len() > metadata::MAX_LAYERS {
            return Err(RepoError::TooManyLayers(flat.len()));
        }
        if !images.is_empty() {
            let member = images
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "name": i.name,
                        "config": {"digest": i.config_digest.to_string(), "size": i.config.len()},
                        "layers": i.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            state.insert("images".into(), serde_json::Value::Array(member));
        }
        let state_text = serde_json::Value::Object(state).to_string();
        let canonical = sign::desired_state(&state_text)
            .map_err(state_error)?
            .encode();
        if canonical.len() > metadata::MAX_DESIRED_STATE_LEN {
            return Err(RepoError::DesiredStateTooLong(canonical.len()));
        }
        let previous = self.releases(input.class, input.arch)?;
        let version = previous.first().map_or(1, |(r, _)| r.version + 1);
        let mut published = Published {
            version,
            layers: Vec::new(),
            images: Vec::new(),
        };
        // Where each flat layer sits in the new images: (image name, index).
        let places = |diff_id: &Digest| -> Vec<(&str, usize)> {
            images
                .iter()
                .flat_map(|i| {
                    i.layers
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| l.diff_id == *diff_id)
                        .map(|(at, _)| (i.name.as_str(), at))
                })
                .collect()
        };
        let mut layers = Vec::new();
        for (index, (diff_id, size, path)) in flat.iter().enumerate() {
            // A layer an earlier release already has keeps its blob and its
            // deltas: an unchanged base layer costs no compression or diffing
            // when it is published again.
            let known = previous
                .iter()
                .flat_map(|(r, _)| &r.layers)
                .find(|l| l.diff_id == *diff_id && self.blob_path(&l.blob.digest).is_file());
            let (blob, mut deltas) = match known {
                Some(layer) => {
                    let kept = layer
                        .deltas
                        .iter()
                        .filter(|d| self.blob_path(&d.blob.digest).is_file());
                    (layer.blob, kept.copied().collect::<Vec<Delta>>())
                }
                None => {
                    let file = File::open(path).map_err(io_err("open", path))?;
                    let blob = self.put_blob_from(|out| {
                        make::compress_stream(io::BufReader::new(file), out)
                    })?;
                    (blob, Vec::new())
                }
            };
            // Deltas from the layer at the same place of the same image in
            // the previous releases; for a new image, or a --layer, from the
            // layer at the same place of the flat list.
            let mut bases: Vec<(Digest, &Layer)> = Vec::new();
            for (old_release, _) in previous.iter().take(input.history) {
                let old_images = images_of(old_release).unwrap_or_default();
                let mut ids: Vec<Digest> = Vec::new();
                let mut flat_base = places(diff_id).is_empty();
                for (name, at) in places(diff_id) {
                    match old_images.get(name) {
                        Some(old) => ids.extend(old.layers.get(at)),
                        None => flat_base = true,
                    }
                }
                if flat_base {
                    ids.extend(old_release.layers.get(index).map(|l| l.diff_id));
                }
                for id in ids {
                    let Some(old_layer) = old_release.layers.iter().find(|l| l.diff_id == id)
                    else {
                        continue;
                    };
                    if id != *diff_id
                        && !bases.iter().any(|(b, _)| *b == id)
                        && !deltas.iter().any(|d| d.from == id)
                        && deltas.len() + bases.len() < metadata::MAX_DELTAS
                    {
                        bases.push((id, old_layer));
                    }
                }
            }
            // The new layer in memory only to diff it, with one old layer at a time.
            let new = if bases.is_empty() {
                Vec::new()
            } else {
                fs::read(path).map_err(io_err("read", path))?
            };
            for (base, old_layer) in bases {
                let old = self.layer(old_layer)?;
                let Some((algorithm, bytes)) = make::best(&old, &new, blob.size, input.algorithms)
                    .map_err(|e| RepoError::Delta(path.clone(), e))?
                else {
                    continue;
                };
                let delta_blob = self.put_blob(&bytes)?;
                deltas.push(Delta {
                    from: base,
                    algorithm,
                    blob: delta_blob,
                    memory: algorithm.memory(),
                });
            }
            drop(new);
            published.layers.push(PublishedLayer {
                diff_id: *diff_id,
                size: *size,
                full: blob.size,
                deltas: deltas
                    .iter()
                    .map(|d| (d.algorithm, d.from, d.blob.size))
                    .collect(),
            });
            layers.push(Layer {
                diff_id: *diff_id,
                size: *size,
                blob,
                deltas,
            });
        }
        for image in &images {
            let blob = self.put_blob(&image.config)?;
            published
                .images
                .push((image.name.clone(), blob, image.layers.len()));
        }
        drop(stage);
        let release = Release {
            version,
            expires: now + input.expires_in,
            device_class: input.class.to_owned(),
            arch: input.arch.to_owned(),
            hardware: input.hardware.to_vec(),
            desired_state: state_text,
            layers,
        };
        let value = sign::release(&release).map_err(state_error)?;
        let refs: Vec<&SigningKey> = keys.iter().collect();
        let bytes = sign::envelope(&value, &refs);
        let path = self
            .release_dir(input.class, input.arch)
            .join(format!("{version}.json"));
        // What a device will parse, parsed here first.
        checked_release(&root, &bytes).map_err(|e| RepoError::Metadata(path.clone(), e.into()))?;
        write_atomic(&path, &bytes)?;
        self.timestamp(now, TIMESTAMP_EXPIRY)?;
        Ok(published)
    }
    /// The uncompressed layer of `layer`, from its blob, checked against its diff_id.
    fn layer(&self, layer: &Layer) -> Result<Vec<u8>, RepoError> {
        let path = self.blob_path(&layer.blob.digest);
        let file = File::open(&path).map_err(io_err("open", &path))?;
        let mut decoder =
            zstd::stream::read::Decoder::new(file).map_err(io_err("decompress", &path))?;
        decoder
            .window_log_max(delta::WINDOW_LOG)
            .map_err(io_err("decompress", &path))?;
        let mut out = Vec::new();
        decoder
            .take(layer.size + 1)
            .read_to_end(&mut out)
            .map_err(io_err("decompress", &path))?;
        if out.len() as u64 != layer.size || Digest::of(&out) != layer.diff_id {
            return Err(RepoError::Blob {
                digest: layer.blob.digest,
                reason: "does not decompress to its layer's diff_id",
            });
        }
        Ok(out)
    }

    /// A blob written by `write` (to a temporary file of the blob
    /// directory, hashed on the way), then renamed to its digest.
    fn put_blob_from(
        &self,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<Blob, RepoError> {
        let dir = self.served().join("blobs/sha256");
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let temp = dir.join(format!(".incoming.tmp-{}", std::process::id()));
        let result = File::create(&temp)
            .and_then(|file| {
                let mut out = image::HashWriter::new(io::BufWriter::new(file));
                write(&mut out)?;
                let (buffered, size, digest) = out.finish();
                buffered.into_inner()?.sync_all()?;
                Ok(Blob { digest, size })
            })
            .map_err(io_err("write", &temp))
            .and_then(|blob| {
                let path = self.blob_path(&blob.digest);
                fs::rename(&temp, &path).map_err(io_err("rename", &path))?;
                Ok(blob)
            });
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        let blob = result?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync", &dir))?;
        Ok(blob)
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<Blob, RepoError> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(&digest);
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        Ok(Blob {
            digest,
            size: bytes.len() as u64,
        })
    }

    /// Signs a new timestamp naming the highest release of every class and
    /// architecture, fresh for `expires_in` seconds.
    pub fn timestamp(&self, now: u64, expires_in: u64) -> Result<u64, RepoError> {
        let keys = self.signers(&self.root()?, "timestamp")?;
        let path = self.served().join("timestamp.json");
        let version = match fs::read(&path) {
            Ok(bytes) => {
                let envelope = metadata::open(Role::Timestamp, &bytes)
                    .map_err(|e| RepoError::Metadata(path.clone(), e.into()))?;
                // Our own file, signed by our own key: parsed for its version only.
                Timestamp::parse(envelope.signed_bytes())
                    .map_err(|e| RepoError::Metadata(path.clone(), e.into()))?
                    .version
                    + 1
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let mut latest = Vec::new();
        for (class, arch) in self.classes()? {
            if let Some(newest) = self.releases(&class, &arch)?.into_iter().next() {
                latest.push(newest);
            }
        }
        let refs: Vec<(&Release, &[u8])> = latest.iter().map(|(r, b)| (r, &b[..])).collect();
        let value = sign::timestamp(version, now + expires_in, &refs);
        let signers: Vec<&SigningKey> = keys.iter().collect();
        write_atomic(&path, &sign::envelope(&value, &signers))?;
        Ok(version)
    }

    /// Checks the whole repository as a device would, at time `now`: the
    /// root chain, the timestamp, every release of every class and
    /// architecture, and every blob's size and digest. Returns every problem.
    pub fn verify(&self, now: u64) -> Result<Summary, Vec<RepoError>> {
        let mut problems = Vec::new();
        let mut summary = Summary::default();
        // The root chain, from version 1.
        let first = self.served().join("root/1.json");
        let bytes = match read(&first, metadata::MAX_ROOT_LEN) {
            Ok(b) => b,
            Err(e) => return Err(vec![e]),
        };
        let device = |class: &str, arch: &str, hardware: &str| Device {
            class: class.to_owned(),
            arch: arch.to_owned(),
            hardware: hardware.to_owned(),
        };
        let mut chain = match Verifier::new(&bytes, device("", "", ""), Seen::default()) {
            Ok(v) => v,
            Err(e) => return Err(vec![RepoError::Verify(first, e.into())]),
        };
        let mut root_files = vec![bytes];
        loop {
            let next = self
                .served()
                .join(format!("root/{}.json", chain.root().version + 1));
            let Ok(bytes) = read(&next, metadata::MAX_ROOT_LEN) else {
                break;
            };
            if let Err(e) = chain.rotate_root(&bytes) {
                return Err(vec![RepoError::Verify(next, e.into())]);
            }
            root_files.push(bytes);
        }
        summary.root_version = chain.root().version;
        let current = self.served().join("root.json");
        if fs::read(&current).ok().as_ref() != root_files.last() {
            problems.push(RepoError::RootCopy(current.clone(), chain.root().version));
        }
        let ts_path = self.served().join("timestamp.json");
        let ts_bytes = match read(&ts_path, metadata::MAX_TIMESTAMP_LEN) {
            Ok(b) => b,
            Err(e) => {
                problems.push(e);
                return Err(problems);
            }
        };
        let root_bytes = root_files.last().expect("root 1 at least");
        for (class, arch) in self.classes().map_err(|e| vec![e])? {
            let releases = match self.releases(&class, &arch) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            for (i, (release, bytes)) in releases.iter().enumerate() {
                let path = self
                    .release_dir(&class, &arch)
                    .join(format!("{}.json", release.version));
                if release.device_class != class || release.arch != arch {
                    problems.push(RepoError::Verify(
                        path.clone(),
                        VerifyError::WrongDevice {
                            what: "device_class or arch",
                            device: format!("{class}/{arch}"),
                        }
                        .into(),
                    ));
                }
                // The newest one goes through the whole device path.
                if i == 0 {
                    let hardware = release.hardware.first().map_or("", String::as_str);
                    let device = device(&class, &arch, hardware);
                    match Verifier::new(root_bytes, device, Seen::default()) {
                        Err(e) => problems.push(RepoError::Verify(current.clone(), e.into())),
                        Ok(mut v) => match v.timestamp(&ts_bytes, now) {
                            Err(e) => problems.push(RepoError::Verify(ts_path.clone(), e.into())),
                            Ok(_) => {
                                if let Err(e) = v.release(bytes, now) {
                                    problems.push(RepoError::Verify(path.clone(), e.into()));
                                }
                            }
                        },
                    }
                }
                match images_of(release) {
                    Err(reason) => problems.push(RepoError::Images(path.clone(), reason)),
                    Ok(images) => {
                        for (name, image) in images {
                            summary.blobs += 1;
                            if let Err(e) = self.check_blob(&image.config) {
                                problems.push(e);
                            }
                            let missing = image
                                .layers
                                .iter()
                                .find(|id| !release.layers.iter().any(|l| l.diff_id == **id));
                            if let Some(id) = missing {
                                problems.push(RepoError::Images(
                                    path.clone(),
                                    format!("image {name}: layer {id} is not in the release"),
                                ));
                            }
                        }
                    }
                }
                for layer in &release.layers {
                    let blobs =
                        std::iter::once(layer.blob).chain(layer.deltas.iter().map(|d| d.blob));
                    for blob in blobs {
                        summary.blobs += 1;
                        if let Err(e) = self.check_blob(&blob) {
                            problems.push(e);
                        }
                    }
                }
                summary.releases += 1;
            }
        }
        if problems.is_empty() {
            Ok(summary)
        } else {
            Err(problems)
        }
    }

    fn check_blob(&self, blob: &Blob) -> Result<(), RepoError> {
        let path = self.blob_path(&blob.digest);
        let file = File::open(&path).map_err(|_| RepoError::Blob {
            digest: blob.digest,
            reason: "is missing",
        })?;
        let len = file.metadata().map_err(io_err("stat", &path))?.len();
        if len != blob.size {
            return Err(RepoError::Blob {
                digest: blob.digest,
                reason: "has another size than metadata says",
            });
        }
        let found = Digest::of_reader(file.take(blob.size)).map_err(io_err("read", &path))?;
        if found != blob.digest {
            return Err(RepoError::Blob {
                digest: blob.digest,
                reason: "does not hash to its name",
            });
        }
        Ok(())
    }

    /// Applies the delta `delta` of `layer` to the uncompressed layer `old`,
    /// writing `out`: what a device does, for the publisher's checks and tests.
    pub fn apply_delta(
        &self,
        old: &Path,
        layer: &Layer,
        delta: &Delta,
        out: &Path,
    ) -> Result<(), RepoError> {
        let path = self.blob_path(&delta.blob.digest);
        let file = File::open(&path).map_err(io_err("open", &path))?;
        delta::apply(
            old,
            io::BufReader::new(file.take(delta.blob.size)),
            Target {
                diff_id: layer.diff_id,
                size: layer.size,
            },
            out,
        )
        .map_err(|e| RepoError::Apply(out.to_owned(), e))
    }

    /// The newest release of a class and architecture.
    pub fn latest(&self, class: &str, arch: &str) -> Result<Option<Release>, RepoError> {
        Ok(self
            .releases(class, arch)?
            .into_iter()
            .next()
            .map(|(r, _)| r))
    }
}

/// What `verify` checked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The last root's version.
    pub root_version: u64,
    /// Release metadata files checked.
    pub releases: usize,
    /// Blob references checked.
    pub blobs: usize,
}

fn checked_release(root: &Root, bytes: &[u8]) -> Result<Release, MetadataError> {
    let envelope = metadata::open(Role::Release, bytes)?;
    envelope.check(&root.keys, &root.release, "release")?;
    Release::parse(envelope.signed_bytes())
}

fn read(path: &Path, max: usize) -> Result<Vec<u8>, RepoError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut out = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(io_err("read", path))?;
    Ok(out)
}

fn role_keys<'r>(root: &'r Root, role: &str) -> &'r metadata::RoleKeys {
    match role {
        "root" => &root.root,
        "timestamp" => &root.timestamp,
        _ => &root.release,
    }
}

fn generate_key() -> Result<SigningKey, RepoError> {
    let path = Path::new("/dev/urandom");
    let mut seed = [0u8; 32];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(io_err("read", path))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn read_key(path: &Path) -> Result<SigningKey, RepoError> {
    let text = fs::read_to_string(path).map_err(io_err("read", path))?;
    let seed =
        metadata::hex::<32>(text.trim_end()).ok_or_else(|| RepoError::Key(path.to_owned()))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn write_key(path: &Path, key: &SigningKey) -> Result<(), RepoError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("create", path))?;
    file.write_all(format!("{}\n", sign::hex(key.as_bytes())).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err("write", path))?;
    let dir = path.parent().expect("keys/");
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    let dir = path
        .parent()
        .expect("paths in the repository have a parent");
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let name = path.file_name().expect("a file name").to_string_lossy();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = File::create(&temp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(io_err("write", &temp))
        .and_then(|()| fs::rename(&temp, path).map_err(io_err("rename", path)));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

/// An entry of a desired state's `images` member.
struct ReleaseImage {
    config: Blob,
    layers: Vec<Digest>,
}

/// The images of a release's desired state (its `images` member), by
/// name; a release without images has none. Fails naming what is not as
/// `release` writes it.
fn images_of(release: &Release) -> Result<BTreeMap<String, ReleaseImage>, String> {
    #[derive(serde::Deserialize)]
    struct State {
        #[serde(default)]
        images: Vec<ImageEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ImageEntry {
        name: String,
        config: BlobEntry,
        layers: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct BlobEntry {
        digest: String,
        size: u64,
    }
    let state = serde_json::from_str::<State>(&release.desired_state)
        .map_err(|e| format!("desired_state.images: {e}"))?;
    let mut out = BTreeMap::new();
    for image in state.images {
        let digest = |s: &str| {
            Digest::parse(s).map_err(|e| format!("desired_state.images {}: {e}", image.name))
        };
        let layers = image
            .layers
            .iter()
            .map(|l| digest(l))
            .collect::<Result<Vec<_>, _>>()?;
        let config = Blob {
            digest: digest(&image.config.digest)?,
            size: image.config.size,
        };
        if out
            .insert(image.name.clone(), ReleaseImage { config, layers })
            .is_some()
        {
            return Err(format!("desired_state.images: {} twice", image.name));
        }
    }
    Ok(out)
}

/// Image names unique, and every `containers[].image` one of them.
fn check_images(
    state: &serde_json::Map<String, serde_json::Value>,
    images: &[ImageSpec],
) -> Result<(), RepoError> {
    for (i, spec) in images.iter().enumerate() {
        if images[..i].iter().any(|s| s.name == spec.name) {
            return Err(RepoError::DuplicateImage(spec.name.clone()));
        }
    }
    let containers = state
        .get("containers")
        .and_then(serde_json::Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (i, container) in containers.iter().enumerate() {
        let Some(image) = container.get("image") else {
            continue;
        };
        let name = image.as_str().unwrap_or_default();
        if !images.iter().any(|s| s.name == name) {
            let container = container
                .get("name")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| format!("containers[{i}]"), str::to_owned);
            return Err(RepoError::UnknownImage {
                container,
                image: image.to_string().trim_matches('"').to_owned(),
            });
        }
    }
    Ok(())
}

/// A staging directory for one release's image layers, removed when dropped.
struct Stage(PathBuf);

impl Stage {
    fn new(tmp: &Path) -> Result<Self, RepoError> {
        let dir = tmp.join(format!("stage-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        Ok(Self(dir))
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Counts, for `husk-publish release`'s report: one line per image (its
/// config blob), one per layer (short diff_id, size, full blob) and one per
/// delta kept.
pub fn describe(published: &Published) -> String {
    let short = |d: &Digest| {
        let s = d.to_string();
        s[..s.len().min("sha256:".len() + 12)].to_owned()
    };
    let mut out = format!("release {}\n", published.version);
    for (name, config, layers) in &published.images {
        out.push_str(&format!(
            "  image {name}: config {} {} bytes, {layers} layer(s)\n",
            short(&config.digest),
            config.size
        ));
    }
    for layer in &published.layers {
        out.push_str(&format!(
            "  layer {}: {} bytes, full {} bytes\n",
            short(&layer.diff_id),
            layer.size,
            layer.full
        ));
        let by_from: BTreeMap<String, _> = layer
            .deltas
            .iter()
            .map(|(a, from, size)| (short(from), (a.name(), size)))
            .collect();
        for (from, (algorithm, size)) in by_from {
            out.push_str(&format!(
                "    delta from {from}: {algorithm} {size} bytes\n"
            ));
        }
    }
    out
}
