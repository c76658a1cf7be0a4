//! The update repository on the publisher's disk (feature `publish`).
//!
//! ```text
//! DIR/keys/{root,timestamp,release}.key   ed25519 seeds in hex, mode 0600: never served
//! DIR/repo/                               what is served, as static files:
//!   root.json                             the current root (a copy of the highest below)
//!   root/<N>.json                         every root; a device walks N+1, N+2, ...
//!   timestamp.json                        the current release of each class and architecture
//!   releases/<class>/<arch>/<V>.json      release V of a device class and architecture
//!   blobs/sha256/<hex>                    zstd layers and deltas, by content
//! ```
//!
//! Every file is written to a temporary name, synced and renamed; blobs
//! first, then release metadata, then the timestamp, so a device never sees
//! metadata that names a blob not yet there.
//!
//! The CLI keeps one key per role (threshold 1); the metadata and the
//! device's verifier take any k of n.

use core::fmt;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use crate::delta::{self, make, Algorithm, Target};
use crate::digest::Digest;
use crate::metadata::{self, Blob, Delta, Layer, MetadataError, Release, Role, Root, Timestamp};
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
            Self::NoLayers => f.write_str("a release needs at least one --layer"),
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
}

/// One layer of a published release.
#[derive(Debug)]
pub struct PublishedLayer {
    /// Its diff_id.
    pub diff_id: Digest,
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
    /// The layer tar files, in order.
    pub layers: &'a [PathBuf],
    /// Seconds until the release expires.
    pub expires_in: u64,
    /// Against how many previous releases' layers to compute deltas.
    pub history: usize,
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

    fn key_path(&self, role: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{role}.key"))
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
        if self.served().exists() || self.dir.join("keys").exists() {
            return Err(RepoError::Exists(self.dir.clone()));
        }
        let keys_dir = self.dir.join("keys");
        fs::create_dir_all(&keys_dir).map_err(io_err("create", &keys_dir))?;
        let mut keys = Vec::new();
        for role in ROLES {
            let key = generate_key()?;
            write_key(&self.key_path(role), &key)?;
            keys.push(key);
        }
        self.write_root(1, now, &keys[0], &keys[1], &keys[2], &[&keys[0]])
    }

    fn write_root(
        &self,
        version: u64,
        now: u64,
        root: &SigningKey,
        timestamp: &SigningKey,
        release: &SigningKey,
        signers: &[&SigningKey],
    ) -> Result<(), RepoError> {
        let one = |k: &SigningKey| RoleSpec {
            keys: vec![k.verifying_key()],
            threshold: 1,
        };
        let value = sign::root(
            version,
            now + ROOT_EXPIRY,
            &one(root),
            &one(timestamp),
            &one(release),
        );
        let bytes = sign::envelope(&value, signers);
        write_atomic(&self.served().join(format!("root/{version}.json")), &bytes)?;
        write_atomic(&self.served().join("root.json"), &bytes)
    }

    /// Replaces `role`'s key with a new one and publishes root N+1, signed by
    /// the old root key and, if the root key is the one replaced, the new one.
    pub fn rotate_key(&self, role: &str, now: u64) -> Result<u64, RepoError> {
        let current = self.roots()?.last().map_or(0, |r| r.version);
        let mut keys = Vec::new();
        for r in ROLES {
            keys.push(read_key(&self.key_path(r))?);
        }
        let index = ROLES
            .iter()
            .position(|r| *r == role)
            .ok_or_else(|| RepoError::Name(role.to_owned()))?;
        let old_root = keys[0].clone();
        let new = generate_key()?;
        keys[index] = new;
        let version = current + 1;
        let signers: Vec<&SigningKey> = if index == 0 {
            vec![&old_root, &keys[0]]
        } else {
            vec![&old_root]
        };
        self.write_root(version, now, &keys[0], &keys[1], &keys[2], &signers)?;
        // The new key replaces the old one only once root N+1 is out.
        write_key_replacing(&self.key_path(role), &keys[index])?;
        Ok(version)
    }

    /// Every root, from version 1, each checked against its own keys (the
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

    /// Publishes a new release from layer tars and a desired state, with
    /// deltas from the layers of the previous releases, and re-signs the timestamp.
    pub fn release(&self, input: &ReleaseInput<'_>, now: u64) -> Result<Published, RepoError> {
        let names = [input.class, input.arch]
            .into_iter()
            .chain(input.hardware.iter().map(String::as_str));
        for name in names {
            if !metadata::is_name(name) {
                return Err(RepoError::Name(name.to_owned()));
            }
        }
        if input.layers.is_empty() {
            return Err(RepoError::NoLayers);
        }
        let key = read_key(&self.key_path("release"))?;
        let state_text =
            fs::read_to_string(input.desired_state).map_err(io_err("read", input.desired_state))?;
        // Refuse a bad desired state before writing any blob.
        sign::desired_state(&state_text)
            .map_err(|e| RepoError::DesiredState(input.desired_state.to_owned(), e))?;
        let previous = self.releases(input.class, input.arch)?;
        let version = previous.first().map_or(1, |(r, _)| r.version + 1);
        let mut published = Published {
            version,
            layers: Vec::new(),
        };
        let mut layers = Vec::new();
        for (index, path) in input.layers.iter().enumerate() {
            let new = fs::read(path).map_err(io_err("read", path))?;
            let diff_id = Digest::of(&new);
            let full = make::compress(&new).map_err(|e| RepoError::Delta(path.clone(), e))?;
            let blob = self.put_blob(&full)?;
            // Deltas from the layer at the same place in the previous releases.
            let mut deltas: Vec<Delta> = Vec::new();
            for (old_release, _) in previous.iter().take(input.history) {
                let Some(old_layer) = old_release.layers.get(index) else {
                    continue;
                };
                if old_layer.diff_id == diff_id
                    || deltas.iter().any(|d| d.from == old_layer.diff_id)
                    || deltas.len() == metadata::MAX_DELTAS
                {
                    continue;
                }
                let old = self.layer(old_layer)?;
                let Some((algorithm, bytes)) = make::best(&old, &new, blob.size)
                    .map_err(|e| RepoError::Delta(path.clone(), e))?
                else {
                    continue;
                };
                let delta_blob = self.put_blob(&bytes)?;
                deltas.push(Delta {
                    from: old_layer.diff_id,
                    algorithm,
                    blob: delta_blob,
                    memory: algorithm.memory(),
                });
            }
            published.layers.push(PublishedLayer {
                diff_id,
                full: blob.size,
                deltas: deltas
                    .iter()
                    .map(|d| (d.algorithm, d.from, d.blob.size))
                    .collect(),
            });
            layers.push(Layer {
                diff_id,
                size: new.len() as u64,
                blob,
                deltas,
            });
        }
        let release = Release {
            version,
            expires: now + input.expires_in,
            device_class: input.class.to_owned(),
            arch: input.arch.to_owned(),
            hardware: input.hardware.to_vec(),
            desired_state: state_text,
            layers,
        };
        let value = sign::release(&release)
            .map_err(|e| RepoError::DesiredState(input.desired_state.to_owned(), e))?;
        let bytes = sign::envelope(&value, &[&key]);
        let path = self
            .release_dir(input.class, input.arch)
            .join(format!("{version}.json"));
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
        let key = read_key(&self.key_path("timestamp"))?;
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
        write_atomic(&path, &sign::envelope(&value, &[&key]))?;
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
        .map_err(io_err("write", path))
}

fn write_key_replacing(path: &Path, key: &SigningKey) -> Result<(), RepoError> {
    let temp = path.with_extension("key.new");
    let _ = fs::remove_file(&temp);
    write_key(&temp, key)?;
    fs::rename(&temp, path).map_err(io_err("rename", path))
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

/// Counts, for `husk-publish release`'s report.
pub fn describe(published: &Published) -> String {
    let mut out = format!("release {}\n", published.version);
    for layer in &published.layers {
        out.push_str(&format!(
            "  layer {}: full {} bytes\n",
            layer.diff_id, layer.full
        ));
        let by_from: BTreeMap<String, _> = layer
            .deltas
            .iter()
            .map(|(a, from, size)| (from.to_string(), (a.name(), size)))
            .collect();
        for (from, (algorithm, size)) in by_from {
            out.push_str(&format!(
                "    delta from {from}: {algorithm} {size} bytes\n"
            ));
        }
    }
    out
}
