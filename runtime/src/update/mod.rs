//! The device's update agent: `husk update check|apply|status|history|
//! rollback`, and what `husk daemon` does with it (polls, judges a new
//! release's health, commits it or rolls it back).
//!
//! ```text
//! <data-dir>/update/config.json        server, device class, hardware, interval, grace
//!                                      (else /etc/husk/update.json, as the image installed it)
//! <data-dir>/update/root.json          the trusted root, once a newer root was accepted
//!                                      (else /etc/husk/root.json: the fleet's root/1.json)
//! <data-dir>/update/state.json         what was accepted, what runs, history (state.rs)
//! <data-dir>/update/lock               flock: one agent at a time
//! <data-dir>/update/releases/<N>/      release.json (the signed file), desired.json
//!                                      (its desired state); 0/ is the device's own
//! <data-dir>/update/tars/<hex>         the uncompressed tar of every layer of the kept
//!                                      releases: the old side of the next delta
//! <data-dir>/update/downloads/         blobs being downloaded (<hex>.part resumes)
//! <data-dir>/desired.json ─symlink─▶   update/releases/<N>/desired.json: the one pointer
//! ```
//!
//! **Install** (`apply`): check (timestamp with `If-None-Match`, then roots
//! N+1…, then the release, all through the [`Verifier`]); for each layer
//! of the release not in the store, a delta from a layer whose tar is kept
//! (the smallest that fits the memory budget), else the full blob; every
//! result is hashed to its signed diff_id, then extracted into the store;
//! the image configs are fetched by their signed digest and size. Only then
//! are `releases/<N>/` written and synced, and the symlink switched with one
//! `rename`. A power cut before the rename leaves the old release; after it
//! the new one, on probation. Nothing the old release needs is touched.
//!
//! **Probation**: the daemon starts the new desired state and calls
//! [`judge`]: all containers running (and healthy, those with a health
//! check) commits; a container unhealthy, given up, or not there when the
//! grace period ends rolls back (the symlink to the previous release, which
//! is never installed again). After either, releases other than the
//! current, the previous and 0 are removed with their tars and image records.
//!
//! Releases run their images pinned by content (`images` in the desired
//! state; see `daemon::desired`), and the agent also records each as
//! `<name>:r<N>` in `images.json`, for `husk image ls` and so that `husk
//! image prune` keeps their layers.

pub mod config;
pub mod state;
pub mod tarball;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use delta_updater::delta::{self, DeltaError, Target};
use delta_updater::fetch::{self, FetchError, Fetched, Source};
use delta_updater::metadata::{Release, MAX_RELEASE_LEN, MAX_ROOT_LEN, MAX_TIMESTAMP_LEN};
use delta_updater::verify::{Device, VerifyError};
use delta_updater::{Digest, Verifier};

use crate::daemon::desired::{self, DesiredState};
use crate::daemon::status::ContainerStatus;
use crate::image::store::{self, Store, StoreError};
use crate::image::{self, ImageError, ImageName, ImageRecord};

pub use config::Config;
pub use state::UpdateState;

/// How much memory applying one delta may take (the release says what each
/// needs; one that needs more is skipped for the full layer).
pub const APPLY_MEMORY_BUDGET: u64 = 8 << 20;
/// The release number of the device's own desired state (before any update).
pub const FACTORY: u64 = 0;

/// Where the agent keeps its files, under the data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    data_dir: PathBuf,
    etc: PathBuf,
}

/// Where the device's image puts the update settings and the trusted root.
pub const ETC_DIR: &str = "/etc/husk";

impl Layout {
    /// The agent's files under `data_dir`, with the image's in [`ETC_DIR`].
    pub fn new(data_dir: &Path) -> Self {
        Self::with_etc(data_dir, Path::new(ETC_DIR))
    }

    /// The agent's files under `data_dir`, with the image's in `etc`.
    pub fn with_etc(data_dir: &Path, etc: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            etc: etc.to_owned(),
        }
    }

    /// `<data-dir>/update`.
    pub fn dir(&self) -> PathBuf {
        self.data_dir.join("update")
    }

    /// The settings: the data directory's, else the image's.
    pub fn config(&self) -> PathBuf {
        let own = self.dir().join("config.json");
        let image = self.etc.join("update.json");
        if !own.exists() && image.exists() {
            return image;
        }
        own
    }

    /// Where a newer trusted root is kept once accepted.
    pub fn root(&self) -> PathBuf {
        self.dir().join("root.json")
    }

    /// The trusted root: the newest accepted, else the image's.
    pub fn trusted_root(&self) -> PathBuf {
        let image = self.etc.join("root.json");
        if !self.root().exists() && image.exists() {
            return image;
        }
        self.root()
    }

    /// The agent's memory.
    pub fn state(&self) -> PathBuf {
        self.dir().join("state.json")
    }

    /// Release `version`'s directory.
    pub fn release(&self, version: u64) -> PathBuf {
        self.dir().join("releases").join(version.to_string())
    }

    /// The kept layer tars.
    pub fn tars(&self) -> PathBuf {
        self.dir().join("tars")
    }

    /// Where blobs are downloaded.
    pub fn downloads(&self) -> PathBuf {
        self.dir().join("downloads")
    }

    /// The daemon's desired-state file: the symlink the agent switches.
    pub fn desired(&self) -> PathBuf {
        self.data_dir.join(crate::daemon::DESIRED_FILE)
    }

    fn tar(&self, diff_id: &Digest) -> PathBuf {
        self.tars().join(store::hex(diff_id))
    }
}

/// Why an update command failed. Whatever it is, the running release is
/// untouched.
#[derive(Debug)]
pub enum UpdateError {
    /// A file of the agent could not be read or written.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file of the agent is larger than it may be.
    TooBig {
        /// The file.
        path: PathBuf,
        /// Its limit.
        max: usize,
    },
    /// The settings were refused.
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file of the agent is not what it wrote.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No server configured and no `--from`.
    NoServer(PathBuf),
    /// Fetching from the repository failed.
    Fetch(FetchError),
    /// Metadata was refused.
    Verify {
        /// Which file.
        file: String,
        /// Why.
        source: Box<VerifyError>,
    },
    /// The release's desired state was refused.
    Desired(desired::DesiredError),
    /// The release is inconsistent (an image's layer not in it, a config
    /// that does not match).
    Release {
        /// The release.
        version: u64,
        /// What is wrong.
        reason: String,
    },
    /// A layer could not be made from its delta or blob.
    Layer {
        /// The layer.
        diff_id: Digest,
        /// Why.
        source: DeltaError,
    },
    /// The image store refused.
    Store(StoreError),
    /// Recording an image failed.
    Image(ImageError),
    /// Another update runs.
    Busy(PathBuf),
    /// `rollback` with nothing to go back to.
    NothingToRollBack,
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Self::TooBig { path, max } => {
                write!(f, "{}: larger than {max} bytes", path.display())
            }
            Self::Config { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::Corrupt { path, reason } => write!(f, "{}: corrupt: {reason}", path.display()),
            Self::NoServer(path) => write!(
                f,
                "no update server: {} sets no \"server\" (or give --from DIR)",
                path.display()
            ),
            Self::Fetch(e) => e.fmt(f),
            Self::Verify { file, source } => write!(f, "{file}: {source}"),
            Self::Desired(e) => write!(f, "the release's {e}"),
            Self::Release { version, reason } => write!(f, "release {version}: {reason}"),
            Self::Layer { diff_id, source } => write!(f, "layer {diff_id}: {source}"),
            Self::Store(e) => e.fmt(f),
            Self::Image(e) => e.fmt(f),
            Self::Busy(path) => write!(
                f,
                "another update is under way (it holds {})",
                path.display()
            ),
            Self::NothingToRollBack => f.write_str("no previous release to roll back to"),
        }
    }
}

impl std::error::Error for UpdateError {}

impl From<FetchError> for UpdateError {
    fn from(e: FetchError) -> Self {
        Self::Fetch(e)
    }
}

impl From<StoreError> for UpdateError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UpdateError + 'a {
    move |source| UpdateError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn read_file(path: &Path, max: usize) -> Result<Vec<u8>, UpdateError> {
    let file = File::open(path).map_err(io_error("read", path))?;
    crate::file::read_capped(file, max)
        .map_err(io_error("read", path))?
        .ok_or_else(|| UpdateError::TooBig {
            path: path.to_owned(),
            max,
        })
}

/// The device as releases name it.
pub fn device(config: &Config) -> Device {
    Device {
        class: config.class.clone(),
        arch: std::env::consts::ARCH.to_owned(),
        hardware: config.hardware.clone(),
    }
}

/// What a check found.
#[derive(Debug)]
pub enum Found {
    /// The server says the timestamp did not change.
    NotModified,
    /// The release named is the one installed.
    UpToDate(u64),
    /// The release named was rolled back here before.
    Rejected(u64),
    /// A new release, verified: the release and the file's bytes.
    New(Box<Release>, Vec<u8>),
}

/// Checks the repository: the timestamp (with the entity tag of the last
/// check), the roots after the trusted one, and the release it names.
/// `state` takes what was accepted (not the release: that is accepted when
/// installed). The verifier is returned for [`install`].
pub fn check(
    layout: &Layout,
    config: &Config,
    state: &mut UpdateState,
    source: &mut dyn Source,
    now: u64,
) -> Result<(Found, Verifier), UpdateError> {
    let root_path = layout.root();
    let trusted = layout.trusted_root();
    let root = read_file(&trusted, MAX_ROOT_LEN)?;
    let mut verifier =
        Verifier::new(&root, device(config), state.seen).map_err(|source| UpdateError::Verify {
            file: root_path.display().to_string(),
            source: Box::new(source),
        })?;
    let (timestamp, etag) = match source.get(
        "timestamp.json",
        MAX_TIMESTAMP_LEN as u64,
        state.etag.as_deref(),
    )? {
        Fetched::NotModified => return Ok((Found::NotModified, verifier)),
        Fetched::Body { bytes, etag } => (bytes, etag),
    };
    // Newer roots first: the timestamp may be signed by rotated keys.
    loop {
        let path = format!("root/{}.json", verifier.root().version + 1);
        let bytes = match source.get(&path, MAX_ROOT_LEN as u64, None) {
            Ok(Fetched::Body { bytes, .. }) => bytes,
            Err(e) if e.is_not_found() => break,
            Ok(Fetched::NotModified) => break,
            Err(e) => return Err(e.into()),
        };
        verifier
            .rotate_root(&bytes)
            .map_err(|source| UpdateError::Verify {
                file: path,
                source: Box::new(source),
            })?;
        let tmp = root_path.with_extension("json.tmp");
        crate::file::replace(&root_path, &tmp, &bytes, crate::file::Durability::Rename)
            .map_err(io_error("write", &root_path))?;
    }
    let named = verifier
        .timestamp(&timestamp, now)
        .map_err(|source| UpdateError::Verify {
            file: "timestamp.json".into(),
            source: Box::new(source),
        })?;
    state.seen.timestamp_version = verifier.seen().timestamp_version;
    state.seen.time_floor = verifier.seen().time_floor;
    state.etag = etag;
    if named.version <= state.rejected {
        return Ok((Found::Rejected(named.version), verifier));
    }
    if named.version == state.seen.release_version
        && state.seen.release_sha256 == Some(named.sha256)
    {
        return Ok((Found::UpToDate(named.version), verifier));
    }
    let path = format!(
        "releases/{}/{}/{}.json",
        config.class,
        std::env::consts::ARCH,
        named.version
    );
    let bytes = match source.get(&path, named.length.min(MAX_RELEASE_LEN as u64), None)? {
        Fetched::Body { bytes, .. } => bytes,
        Fetched::NotModified => {
            return Err(UpdateError::Corrupt {
                path: PathBuf::from(path),
                reason: "the server answered \"not modified\" to a plain GET".into(),
            })
        }
    };
    let release = verifier
        .release(&bytes, now)
        .map_err(|source| UpdateError::Verify {
            file: path,
            source: Box::new(source),
        })?;
    Ok((Found::New(Box::new(release), bytes), verifier))
}

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Installed {
    /// The release.
    pub version: u64,
    /// Bytes downloaded (deltas, full layers, configs).
    pub downloaded: u64,
    /// What the layers fetched would have cost as full blobs (and the configs).
    pub full: u64,
    /// Layers made from a delta.
    pub deltas: u32,
    /// Layers downloaded whole.
    pub whole: u32,
    /// Layers already on the device.
    pub kept: u32,
    /// Deltas that did not give their layer, which then came whole (also
    /// counted in `whole`).
    pub failed: u32,
}

impl Installed {
    /// "N delta, M whole, K kept", and the deltas that failed if any: how
    /// the layers came, for the summary line and the history.
    pub fn counts(&self) -> String {
        let mut text = format!(
            "{} delta, {} whole, {} kept",
            self.deltas, self.whole, self.kept
        );
        if self.failed > 0 {
            text.push_str(&format!("; {} delta failed, fetched whole", self.failed));
        }
        text
    }
}

/// Stages release `release` (file bytes `bytes`): every layer into the
/// store (and its tar kept), every image config, the image records, and
/// `releases/<N>/`. The running release is not touched.
pub fn install(
    layout: &Layout,
    store: &Store,
    source: &mut dyn Source,
    release: &Release,
    bytes: &[u8],
    progress: &mut dyn FnMut(&str),
) -> Result<Installed, UpdateError> {
    let version = release.version;
    let inconsistent = |reason: String| UpdateError::Release { version, reason };
    let desired = desired::parse(release.desired_state.as_bytes()).map_err(UpdateError::Desired)?;
    // Mix-and-match: every layer an image names is one this release lists.
    for pinned in &desired.images {
        if let Some(layer) = pinned
            .image
            .layers
            .iter()
            .find(|l| !release.layers.iter().any(|r| r.diff_id == **l))
        {
            return Err(inconsistent(format!(
                "image {} names layer {layer}, which the release does not list",
                pinned.image.name
            )));
        }
        if pinned.config_size > image::run::MAX_CONFIG_BYTES as u64 {
            return Err(inconsistent(format!(
                "image {}'s config is {} bytes, more than {}",
                pinned.image.name,
                pinned.config_size,
                image::run::MAX_CONFIG_BYTES
            )));
        }
    }
    for dir in [layout.tars(), layout.downloads(), store.root().to_owned()] {
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
    }
    let lock = store.lock()?;
    let mut done = Installed {
        version,
        ..Installed::default()
    };
    for layer in &release.layers {
        let tar = layout.tar(&layer.diff_id);
        if !tar.exists() {
            fetch_layer(layout, source, layer, &tar, &mut done, progress)?;
        } else {
            done.kept += 1;
        }
        if !store.has_layer(&layer.diff_id) {
            let file = File::open(&tar).map_err(io_error("open", &tar))?;
            // As `husk image import` reads: one instance of the extractor
            // in the binary, not a second one for this reader type.
            let input: Box<dyn io::Read> = Box::new(BufReader::new(file));
            store.add_layer(
                &lock,
                input,
                &layer.diff_id.to_string(),
                Some(&layer.diff_id),
                None,
                &image::extract::Options::default(),
            )?;
        }
    }
    let mut records = Vec::new();
    for pinned in &desired.images {
        let image = &pinned.image;
        let path = fetch::download_blob(
            source,
            &image.config,
            pinned.config_size,
            &layout.downloads(),
            &mut |_| {},
        )?;
        done.downloaded += pinned.config_size;
        done.full += pinned.config_size;
        let config = read_file(&path, image::run::MAX_CONFIG_BYTES)?;
        let parsed = image::oci::parse_config(&config, &image.config.to_string())
            .map_err(UpdateError::Image)?;
        if parsed.diff_ids != image.layers {
            return Err(inconsistent(format!(
                "image {}: its config's rootfs.diff_ids are not its layers",
                image.name
            )));
        }
        if parsed.arch != image::native_arch() {
            return Err(inconsistent(format!(
                "image {} is for {}, this device is {}",
                image.name,
                parsed.arch,
                image::native_arch()
            )));
        }
        store.put_blob(&lock, &image.config, &config)?;
        let _ = fs::remove_file(&path);
        let size = image
            .layers
            .iter()
            .map(|l| store.layer(l).map(|info| info.size))
            .sum::<Result<u64, _>>()?;
        records.push(ImageRecord {
            name: record_name(&image.name, version)?,
            id: image.config,
            manifest: Digest::of(bytes),
            arch: parsed.arch,
            os: parsed.os,
            created: parsed.created,
            size,
            layers: image.layers.clone(),
        });
    }
    let mut images = store.images()?;
    images.retain(|i| !records.iter().any(|r| r.name == i.name));
    images.extend(records);
    store.save_images(&lock, &images)?;
    drop(lock);
    let dir = layout.release(version);
    fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
    for (name, data) in [
        ("release.json", bytes),
        ("desired.json", release.desired_state.as_bytes()),
    ] {
        let path = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        crate::file::replace(&path, &tmp, data, crate::file::Durability::Rename)
            .map_err(io_error("write", &path))?;
    }
    Ok(done)
}

/// The name release `version`'s image `name` is recorded as: `name:rN`.
fn record_name(name: &str, version: u64) -> Result<ImageName, UpdateError> {
    ImageName::parse(&format!("{name}:r{version}")).map_err(|reason| UpdateError::Release {
        version,
        reason: format!("image {name}: {reason}"),
    })
}

/// `LABEL: N of M bytes (P%)`, a download's progress line.
fn downloaded(label: &str, done: u64, size: u64) -> String {
    let percent = (done.saturating_mul(100)).checked_div(size).unwrap_or(100);
    format!("{label}: {done} of {size} bytes ({percent}%)")
}

/// Makes the tar of `layer` at `tar`: from the smallest delta whose old
/// layer is kept and whose memory fits, else (or if that delta does not
/// give the layer) from the full blob.
fn fetch_layer(
    layout: &Layout,
    source: &mut dyn Source,
    layer: &delta_updater::metadata::Layer,
    tar: &Path,
    done: &mut Installed,
    progress: &mut dyn FnMut(&str),
) -> Result<(), UpdateError> {
    let target = Target {
        diff_id: layer.diff_id,
        size: layer.size,
    };
    let layer_error = |source| UpdateError::Layer {
        diff_id: layer.diff_id,
        source,
    };
    let usable = layer
        .deltas
        .iter()
        .filter(|d| d.memory <= APPLY_MEMORY_BUDGET && layout.tar(&d.from).exists())
        .min_by_key(|d| d.blob.size);
    let downloads = layout.downloads();
    done.full += layer.blob.size;
    if let Some(d) = usable {
        let label = format!(
            "layer {}: delta {} from {}",
            image::short_id(&layer.diff_id),
            d.algorithm.name(),
            image::short_id(&d.from),
        );
        progress(&label);
        let blob =
            fetch::download_blob(source, &d.blob.digest, d.blob.size, &downloads, &mut |n| {
                progress(&downloaded(&label, n, d.blob.size))
            })?;
        let file = File::open(&blob).map_err(io_error("open", &blob))?;
        let result = delta::apply(&layout.tar(&d.from), BufReader::new(file), target, tar);
        let _ = fs::remove_file(&blob);
        done.downloaded += d.blob.size;
        match result {
            Ok(()) => {
                done.deltas += 1;
                return Ok(());
            }
            // The old layer on this disk is not what it was (the result is
            // not the signed layer), or the delta uses an operation this
            // build does not have: the layer costs a download, not the
            // update.
            Err(e) => {
                done.failed += 1;
                progress(&format!(
                    "layer {}: the delta did not apply ({e}); fetching it whole",
                    image::short_id(&layer.diff_id)
                ));
            }
        }
    }
    {
        let label = format!("layer {}: whole", image::short_id(&layer.diff_id));
        progress(&label);
        let blob = fetch::download_blob(
            source,
            &layer.blob.digest,
            layer.blob.size,
            &downloads,
            &mut |n| progress(&downloaded(&label, n, layer.blob.size)),
        )?;
        let file = File::open(&blob).map_err(io_error("open", &blob))?;
        let result = delta::decompress(BufReader::new(file), target, tar);
        let _ = fs::remove_file(&blob);
        result.map_err(layer_error)?;
        done.downloaded += layer.blob.size;
        done.whole += 1;
    }
    Ok(())
}

/// Points the daemon's desired state at release `version` with one rename.
pub fn switch(layout: &Layout, version: u64) -> Result<(), UpdateError> {
    let link = layout.desired();
    let target = format!("update/releases/{version}/desired.json");
    let tmp = link.with_extension("json.switch");
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp).map_err(io_error("create", &tmp))?;
    fs::rename(&tmp, &link).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error("rename", &link)(e)
    })?;
    let dir = link.parent().unwrap_or(Path::new("/"));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync", dir))
}

/// The release the symlink points at, if it is one of the agent's.
pub fn linked(layout: &Layout) -> Option<u64> {
    let target = fs::read_link(layout.desired()).ok()?;
    let text = target.to_str()?;
    text.strip_prefix("update/releases/")?
        .strip_suffix("/desired.json")?
        .parse()
        .ok()
}

/// Before the first switch: the device's own desired state (a file, or
/// nothing) becomes release 0, so that rolling back release 1 has a place
/// to go.
fn keep_factory(layout: &Layout) -> Result<(), UpdateError> {
    let dir = layout.release(FACTORY);
    let path = dir.join("desired.json");
    if path.exists() || linked(layout).is_some() {
        return Ok(());
    }
    fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
    let desired = layout.desired();
    let data = match fs::read(&desired) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => br#"{"containers": []}"#.to_vec(),
        Err(e) => return Err(io_error("read", &desired)(e)),
    };
    let tmp = dir.join("desired.json.tmp");
    crate::file::replace(&path, &tmp, &data, crate::file::Durability::Rename)
        .map_err(io_error("write", &path))
}

/// The agent's lock: held while anything of the update directory changes.
pub struct AgentLock {
    _file: crate::sys::FileLock,
}

/// Takes the agent's lock, or says another update is under way.
pub fn lock(layout: &Layout) -> Result<AgentLock, UpdateError> {
    let dir = layout.dir();
    fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
    let path = dir.join("lock");
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error("open", &path))?;
    match crate::sys::try_lock(file, &path) {
        Ok(Some(file)) => Ok(AgentLock { _file: file }),
        Ok(None) => Err(UpdateError::Busy(path)),
        Err(e) => Err(UpdateError::Io {
            op: "lock",
            path,
            source: io::Error::other(e.to_string()),
        }),
    }
}

/// Reads the state and makes it agree with the symlink, which is the
/// truth of what runs: a power cut between the switch and the state's
/// write leaves the new release linked and the state behind; that release
/// then starts its probation.
pub fn load_state(layout: &Layout, now: u64) -> Result<UpdateState, UpdateError> {
    let mut state = UpdateState::load(&layout.state())?;
    if let Some(version) = linked(layout) {
        if version != state.current {
            state.previous = state.current;
            state.current = version;
            state.probation_since = Some(now);
            state.record(
                now,
                version,
                "found switched",
                "after a restart; on probation",
            );
            state.save(&layout.state())?;
        }
    }
    Ok(state)
}

/// What `apply` did.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing new (the check's finding).
    Nothing(Found),
    /// A release was installed and switched to, on probation.
    Switched(Installed),
}

/// `husk update apply`: check, install, switch. The state records the
/// check, and the switch (the new release on probation). Only a `poll` (the
/// daemon's) sends the last entity tag: by hand, the server always answers
/// with the timestamp (an ETag made of mtime and size, as nginx and busybox
/// httpd make them, can match a changed file).
pub fn apply(
    layout: &Layout,
    config: &Config,
    source: &mut dyn Source,
    now: u64,
    poll: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, UpdateError> {
    let _lock = lock(layout)?;
    let mut state = load_state(layout, now)?;
    if !poll {
        state.etag = None;
    }
    let checked = check(layout, config, &mut state, source, now);
    let (found, verifier) = match checked {
        Ok(found) => found,
        Err(e) => {
            record_check(layout, &mut state, now, Err(&e))?;
            return Err(e);
        }
    };
    let (release, bytes) = match found {
        Found::New(release, bytes) => (release, bytes),
        other => {
            record_check(layout, &mut state, now, Ok(&found_text(&other)))?;
            return Ok(Outcome::Nothing(other));
        }
    };
    let store = Store::new(&layout.data_dir);
    let installed = match install(layout, &store, source, &release, &bytes, progress) {
        Ok(installed) => installed,
        Err(e) => {
            record_check(layout, &mut state, now, Err(&e))?;
            return Err(e);
        }
    };
    keep_factory(layout)?;
    switch(layout, release.version)?;
    state.seen = *verifier.seen();
    state.previous = state.current;
    state.current = release.version;
    state.probation_since = Some(now);
    state.last_ok = now;
    state.last_check = Some(state::LastCheck {
        at: now,
        ok: true,
        message: format!("installed release {}", release.version),
    });
    state.record(
        now,
        release.version,
        "installed",
        &format!(
            "downloaded {} of {} bytes ({})",
            installed.downloaded,
            installed.full,
            installed.counts()
        ),
    );
    state.save(&layout.state())?;
    Ok(Outcome::Switched(installed))
}

fn found_text(found: &Found) -> String {
    match found {
        Found::NotModified => "not modified".into(),
        Found::UpToDate(v) => format!("up to date (release {v})"),
        Found::Rejected(v) => format!("release {v} was rolled back; waiting for a newer one"),
        Found::New(release, _) => format!("release {} available", release.version),
    }
}

fn record_check(
    layout: &Layout,
    state: &mut UpdateState,
    now: u64,
    result: Result<&str, &UpdateError>,
) -> Result<(), UpdateError> {
    if result.is_ok() {
        state.last_ok = now;
    }
    state.last_check = Some(state::LastCheck {
        at: now,
        ok: result.is_ok(),
        message: match result {
            Ok(text) => text.to_owned(),
            Err(e) => crate::error_chain(e),
        },
    });
    state.save(&layout.state())
}

/// `husk update check`: what the repository offers, without installing.
pub fn check_only(
    layout: &Layout,
    config: &Config,
    source: &mut dyn Source,
    now: u64,
) -> Result<String, UpdateError> {
    let _lock = lock(layout)?;
    let mut state = load_state(layout, now)?;
    // A check by hand wants the answer, not "not modified".
    state.etag = None;
    match check(layout, config, &mut state, source, now) {
        Ok((found, _)) => {
            let text = found_text(&found);
            record_check(layout, &mut state, now, Ok(&text))?;
            Ok(text)
        }
        Err(e) => {
            record_check(layout, &mut state, now, Err(&e))?;
            Err(e)
        }
    }
}

/// What the daemon does with a release on probation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not decided yet.
    Wait,
    /// Every container is up (and healthy, where checked).
    Commit,
    /// Roll back, for this reason.
    RollBack(String),
}

/// Judges release health from the daemon's view of `desired`'s containers,
/// `elapsed` into a probation of `grace`.
pub fn judge(
    desired: &DesiredState,
    containers: &[ContainerStatus],
    elapsed: std::time::Duration,
    grace: std::time::Duration,
) -> Verdict {
    let mut waiting = None;
    for entry in &desired.containers {
        let name = entry.name.as_str();
        let Some(c) = containers.iter().find(|c| c.name == name) else {
            waiting = waiting.or_else(|| Some(format!("container {name} is not started")));
            continue;
        };
        match (c.state.as_str(), c.health.as_deref()) {
            (_, Some("unhealthy")) => {
                return Verdict::RollBack(format!("container {name} is unhealthy"))
            }
            ("given-up", _) => {
                return Verdict::RollBack(format!("container {name} gave up restarting"))
            }
            ("running", None | Some("healthy")) => {}
            (state, health) => {
                waiting = waiting.or_else(|| {
                    Some(match health {
                        Some(h) => format!("container {name} is {state}, health {h}"),
                        None => format!("container {name} is {state}"),
                    })
                });
            }
        }
    }
    match waiting {
        None => Verdict::Commit,
        Some(reason) if elapsed >= grace => Verdict::RollBack(format!(
            "{reason} after the grace period of {} s",
            grace.as_secs()
        )),
        Some(_) => Verdict::Wait,
    }
}

/// Ends the current release's probation: it stays.
pub fn commit(layout: &Layout, now: u64) -> Result<UpdateState, UpdateError> {
    let _lock = lock(layout)?;
    let mut state = load_state(layout, now)?;
    if state.probation_since.take().is_some() {
        state.record(now, state.current, "committed", "every container up");
        state.save(&layout.state())?;
        collect(layout, &state);
    }
    Ok(state)
}

/// Switches back to the previous release, which runs again; the current
/// one is never installed again (`by_hand`: `husk update rollback`, which
/// does not reject it).
pub fn roll_back(
    layout: &Layout,
    now: u64,
    reason: &str,
    by_hand: bool,
) -> Result<UpdateState, UpdateError> {
    let _lock = lock(layout)?;
    let mut state = load_state(layout, now)?;
    let failed = state.current;
    if failed == FACTORY || !layout.release(state.previous).join("desired.json").exists() {
        return Err(UpdateError::NothingToRollBack);
    }
    switch(layout, state.previous)?;
    if !by_hand {
        state.rejected = state.rejected.max(failed);
    }
    state.current = state.previous;
    state.previous = FACTORY;
    state.probation_since = None;
    let event = if by_hand {
        "rollback by hand"
    } else {
        "rolled back"
    };
    state.record(now, failed, event, reason);
    state.save(&layout.state())?;
    collect(layout, &state);
    Ok(state)
}

/// Removes what no kept release (current, previous, 0) needs: release
/// directories, layer tars, image records `*:rN`, then unreferenced layers
/// and blobs (`husk image prune`). Failures only leave files behind.
fn collect(layout: &Layout, state: &UpdateState) {
    let keep = [state.current, state.previous, FACTORY];
    let mut needed: Vec<Digest> = Vec::new();
    if let Ok(entries) = fs::read_dir(layout.dir().join("releases")) {
        for entry in entries.flatten() {
            let Some(version) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if keep.contains(&version) {
                if let Ok(d) = desired::load(&entry.path().join("desired.json")) {
                    needed.extend(d.images.into_iter().flat_map(|p| p.image.layers));
                }
            } else {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    if let Ok(entries) = fs::read_dir(layout.tars()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let keep = name.to_str().is_some_and(|hex| {
                needed
                    .iter()
                    .any(|d| store::hex(d) == hex.trim_end_matches(".tmp"))
            });
            if !keep {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    let store = Store::new(&layout.data_dir);
    if let Ok(lock) = store.lock() {
        if let Ok(mut images) = store.images() {
            let before = images.len();
            images.retain(|i| match release_of(&i.name) {
                Some(version) => keep.contains(&version),
                None => true,
            });
            if images.len() != before {
                let _ = store.save_images(&lock, &images);
            }
        }
    }
    let _ = image::prune(&store);
}

/// The release an image record `name:rN` belongs to.
fn release_of(name: &ImageName) -> Option<u64> {
    name.as_str().rsplit_once(":r")?.1.parse().ok()
}

/// `husk update status` as text lines.
pub fn status_text(state: &UpdateState, now: u64) -> String {
    let mut out = String::new();
    let release = match state.current {
        FACTORY => "none (the device's own desired state)".to_owned(),
        v => v.to_string(),
    };
    let phase = match state.probation_since {
        Some(since) => format!("on probation for {} s", now.saturating_sub(since)),
        None => "committed".to_owned(),
    };
    out.push_str(&format!("release:   {release}, {phase}\n"));
    if state.previous != FACTORY {
        out.push_str(&format!("previous:  {}\n", state.previous));
    }
    if state.rejected != 0 {
        out.push_str(&format!("rejected:  up to release {}\n", state.rejected));
    }
    match &state.last_check {
        Some(c) => {
            // The whole message is in `--json`; the screen gets a line.
            let line = format!(
                "checked:   {} ago, {}: {}",
                ago(now, c.at),
                if c.ok { "ok" } else { "failed" },
                c.message
            );
            out.push_str(state::truncate(&line, 80));
            out.push('\n');
        }
        None => out.push_str("checked:   never\n"),
    }
    if state.last_check.as_ref().is_some_and(|c| !c.ok) {
        match state.last_ok {
            0 => out.push_str("last ok:   never\n"),
            at => out.push_str(&format!("last ok:   {} ago\n", ago(now, at))),
        }
    }
    out.push_str(&format!(
        "accepted:  timestamp {}, release {}\n",
        state.seen.timestamp_version, state.seen.release_version
    ));
    out
}

/// `husk update history` as text lines, newest first.
pub fn history_text(state: &UpdateState, now: u64) -> String {
    let mut out = String::from("AGO       RELEASE  EVENT              DETAIL\n");
    for h in state.history.iter().rev() {
        let line = format!(
            "{:<9} {:<8} {:<18} {}",
            ago(now, h.at),
            h.release,
            h.event,
            h.detail
        );
        out.push_str(state::truncate(&line, 79));
        out.push('\n');
    }
    out
}

fn ago(now: u64, at: u64) -> String {
    let s = now.saturating_sub(at);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The repository a command reads: `--from DIR`, else the configured server.
fn source(
    layout: &Layout,
    config: &Config,
    from: Option<&Path>,
) -> Result<Box<dyn Source>, UpdateError> {
    if let Some(from) = from {
        if from.is_dir() {
            return Ok(Box::new(fetch::DirSource::new(from)));
        }
        return Ok(Box::new(tarball::TarSource::open(from)?));
    }
    let url = config
        .server
        .as_deref()
        .ok_or_else(|| UpdateError::NoServer(layout.config()))?;
    let http = fetch::HttpSource::new(url, fetch::Timeouts::default())?;
    #[cfg(feature = "tls")]
    let http = match &config.ca_file {
        Some(ca) => http.ca_file(ca),
        None => http,
    };
    Ok(Box::new(http))
}

/// The exit status of `husk update apply` when there was nothing to install.
pub const EXIT_NOTHING_NEW: u8 = 4;

/// Runs `husk update check|apply|status|history|rollback`; returns the exit status.
pub fn run(data_dir: &Path, command: &crate::cli::AgentCommand) -> Result<u8, crate::Error> {
    use crate::cli::AgentCommand;
    let layout = Layout::new(data_dir);
    let now = wall_now();
    match command {
        AgentCommand::Status { json } | AgentCommand::History { json } => {
            let state = UpdateState::load(&layout.state())?;
            if *json {
                println!("{}", state.to_json());
            } else if matches!(command, AgentCommand::Status { .. }) {
                print!("{}", status_text(&state, now));
            } else {
                print!("{}", history_text(&state, now));
            }
            Ok(0)
        }
        AgentCommand::Check { from } => {
            let config = Config::load(&layout.config())?;
            let mut source = source(&layout, &config, from.as_deref())?;
            println!("{}", check_only(&layout, &config, source.as_mut(), now)?);
            Ok(0)
        }
        AgentCommand::Apply { from, poll } => {
            let config = Config::load(&layout.config())?;
            let mut source = source(&layout, &config, from.as_deref())?;
            let mut bar = crate::progress::Progress::stderr();
            let applied = apply(&layout, &config, source.as_mut(), now, *poll, &mut |line| {
                bar.show(line)
            });
            bar.finish();
            match applied? {
                Outcome::Nothing(found) => {
                    println!("{}", found_text(&found));
                    Ok(EXIT_NOTHING_NEW)
                }
                Outcome::Switched(done) => {
                    println!(
                        "release {} installed, on probation: downloaded {} of {} bytes ({})",
                        done.version,
                        done.downloaded,
                        done.full,
                        done.counts()
                    );
                    crate::daemon::reload_running(data_dir);
                    Ok(0)
                }
            }
        }
        AgentCommand::Rollback => {
            let state = roll_back(&layout, now, "by hand", true)?;
            println!("switched back to release {}", state.current);
            crate::daemon::reload_running(data_dir);
            Ok(0)
        }
    }
}

/// Seconds since the epoch.
pub fn wall_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
