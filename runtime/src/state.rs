//! The state directory: what husk knows about each container between commands.
//!
//! ```text
//! <root>/                   0700, default /run/husk (a tmpfs: gone at reboot)
//! <root>/<id>/              claimed with mkdir, so two creates of one id cannot race
//! <root>/<id>/state.json    the Record, replaced atomically (temp file, fsync, rename)
//! <root>/<id>/exec.fifo     exists from create until start (see lifecycle.rs)
//! ```
//!
//! A container of `husk run --image` also records its `image_root`, the
//! directory under the data directory whose root it runs on, so that `delete`
//! (of any husk, whatever its `--data-dir`) unmounts and removes it.
//!
//! A directory without `state.json` is a create that was interrupted before the
//! record was first written; `delete --force` removes it.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json_core::str::EscapedStr;

use crate::container::ContainerId;
use crate::file::Durability;
use crate::wire::{self, Field};

/// Where state lives unless `--root` says otherwise (for root; see [`default_root`]).
pub const DEFAULT_ROOT: &str = "/run/husk";
/// Largest `state.json` read, in bytes.
pub const MAX_STATE_BYTES: usize = 16 * 1024;
/// The version of the `state.json` layout written by this husk.
pub const STATE_VERSION: u32 = 1;

const STATE_FILE: &str = "state.json";
const EXEC_FIFO: &str = "exec.fifo";

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// What husk records about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The container id.
    pub id: ContainerId,
    /// The bundle directory, absolute.
    pub bundle: PathBuf,
    /// The root filesystem, absolute.
    pub rootfs: PathBuf,
    /// The container init's pid in husk's PID namespace, once it exists.
    pub pid: Option<i32>,
    /// The init's start time (clock ticks after boot, `/proc/<pid>/stat` field
    /// 22), so that a recycled pid is never mistaken for the container.
    pub start_time: u64,
    /// When the container was created, in seconds since the Unix epoch.
    pub created: u64,
    /// The container's cgroup below the cgroup v2 root, if it has one.
    pub cgroup: Option<String>,
    /// Whether its config has `poststart` or `poststop` hooks, so that `start`
    /// and `delete` read the config again only when they must.
    pub hooks: bool,
    /// The image container directory (`<data-dir>/containers/<id>`) the
    /// container owns, for `husk run --image`: its `rootfs` (an overlay mount
    /// or a copy) is unmounted and the directory removed with the container.
    pub image_root: Option<PathBuf>,
}

/// Why the state directory could not be used.
#[derive(Debug)]
pub enum StateError {
    /// A container with this id exists already.
    Exists(ContainerId),
    /// No container has this id.
    NotFound(ContainerId),
    /// The container's directory has no record: its create was interrupted.
    Incomplete(ContainerId),
    /// An I/O operation on a state path failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// husk runs as a user other than root, without `--root` or
    /// `XDG_RUNTIME_DIR` to say where that user's state goes.
    NoDefaultRoot {
        /// The effective uid.
        uid: u32,
    },
    /// `state.json` is not a record this husk can read.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The state directory when `--root` is not given: [`DEFAULT_ROOT`] for
/// root; `$XDG_RUNTIME_DIR/husk` for any other user (rootless containers,
/// as runc has them), with `runtime_dir` the value of that variable.
pub fn default_root(euid: u32, runtime_dir: Option<&OsStr>) -> Result<PathBuf, StateError> {
    match runtime_dir {
        _ if euid == 0 => Ok(PathBuf::from(DEFAULT_ROOT)),
        Some(dir) if Path::new(dir).is_absolute() => Ok(Path::new(dir).join("husk")),
        _ => Err(StateError::NoDefaultRoot { uid: euid }),
    }
}

impl StateDir {
    /// The state directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The state directory itself (`--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Container `id`'s directory.
    pub fn dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// The start fifo of container `id`.
    pub fn exec_fifo(&self, id: &ContainerId) -> PathBuf {
        self.dir(id).join(EXEC_FIFO)
    }

    /// Creates the directory of a new container; fails if `id` is taken.
    pub fn claim(&self, id: &ContainerId) -> Result<PathBuf, StateError> {
        let mut builder = fs::DirBuilder::new();
        builder.mode(0o700).recursive(true);
        builder
            .create(&self.root)
            .map_err(|e| io_error("create state directory", &self.root, e))?;
        let dir = self.dir(id);
        match builder.recursive(false).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StateError::Exists(id.clone()))
            }
            Err(e) => Err(io_error("create", &dir, e)),
        }
    }

    /// Writes `record`, replacing the previous one atomically.
    pub fn save(&self, record: &Record) -> Result<(), StateError> {
        let path = self.dir(&record.id).join(STATE_FILE);
        let tmp = path.with_extension("json.tmp");
        let text = encode(record).map_err(|()| StateError::Corrupt {
            path: path.clone(),
            reason: "record larger than the state file limit",
        })?;
        crate::file::replace(&path, &tmp, &text, Durability::Contents)
            .map_err(|e| io_error("write", &path, e))
    }

    /// Reads the record of container `id`.
    pub fn load(&self, id: &ContainerId) -> Result<Record, StateError> {
        let dir = self.dir(id);
        let path = dir.join(STATE_FILE);
        let text = match File::open(&path) {
            Ok(file) => crate::file::read_capped(file, MAX_STATE_BYTES)
                .map_err(|e| io_error("read", &path, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(if dir.is_dir() {
                    StateError::Incomplete(id.clone())
                } else {
                    StateError::NotFound(id.clone())
                });
            }
            Err(e) => return Err(io_error("read", &path, e)),
        };
        let corrupt = |reason| StateError::Corrupt {
            path: path.clone(),
            reason,
        };
        let text = text.ok_or_else(|| corrupt("larger than the state file limit"))?;
        let record = decode(&text).map_err(corrupt)?;
        if &record.id != id {
            return Err(corrupt("records another container id"));
        }
        Ok(record)
    }

    /// The ids of every container with a directory here, sorted.
    pub fn ids(&self) -> Result<Vec<ContainerId>, StateError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &self.root, e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list", &self.root, e))?;
            // Anything that is not a container's directory is not ours to list.
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    ids.push(id);
                }
            }
        }
        ids.sort_by(|a: &ContainerId, b| a.as_str().cmp(b.as_str()));
        Ok(ids)
    }

    /// Removes the directory of container `id` and everything in it.
    pub fn remove(&self, id: &ContainerId) -> Result<(), StateError> {
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", &dir, e)),
        }
    }
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> StateError {
    StateError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

// The file layout. Paths are stored as JSON strings, so only UTF-8 paths can be
// recorded: the CLI accepts nothing else.

#[derive(Serialize)]
struct WireRecordOut<'a> {
    version: u32,
    id: &'a str,
    bundle: &'a str,
    rootfs: &'a str,
    pid: i32,
    start_time: u64,
    created: u64,
    cgroup: Option<&'a str>,
    hooks: bool,
    image_root: Option<&'a str>,
}

#[derive(Deserialize)]
struct WireRecordIn<'a> {
    version: u32,
    #[serde(borrow)]
    id: EscapedStr<'a>,
    #[serde(borrow)]
    bundle: EscapedStr<'a>,
    #[serde(borrow)]
    rootfs: EscapedStr<'a>,
    pid: i32,
    start_time: u64,
    created: u64,
    #[serde(borrow)]
    cgroup: Option<EscapedStr<'a>>,
    hooks: Option<bool>,
    #[serde(borrow)]
    image_root: Option<EscapedStr<'a>>,
}

fn encode(record: &Record) -> Result<Vec<u8>, ()> {
    let wire = WireRecordOut {
        version: STATE_VERSION,
        id: record.id.as_str(),
        bundle: record.bundle.to_str().ok_or(())?,
        rootfs: record.rootfs.to_str().ok_or(())?,
        pid: record.pid.unwrap_or(0),
        start_time: record.start_time,
        created: record.created,
        cgroup: record.cgroup.as_deref(),
        hooks: record.hooks,
        image_root: match &record.image_root {
            Some(path) => Some(path.to_str().ok_or(())?),
            None => None,
        },
    };
    let mut buf = vec![0; MAX_STATE_BYTES];
    let len = serde_json_core::to_slice(&wire, &mut buf).map_err(drop)?;
    buf.truncate(len);
    buf.push(b'\n');
    Ok(buf)
}

/// Parses the text of a `state.json`: the record, or what is wrong with it.
/// Public for the fuzz targets.
pub fn decode(text: &[u8]) -> Result<Record, &'static str> {
    let (wire, _) = serde_json_core::from_slice::<WireRecordIn<'_>>(text)
        .map_err(|_| "not a husk state record")?;
    if wire.version != STATE_VERSION {
        return Err("written by an incompatible husk version");
    }
    let id = unescape(wire.id)?
        .parse()
        .map_err(|_| "records an invalid container id")?;
    Ok(Record {
        id,
        bundle: PathBuf::from(unescape(wire.bundle)?),
        rootfs: PathBuf::from(unescape(wire.rootfs)?),
        pid: Some(wire.pid).filter(|&pid| pid > 0),
        start_time: wire.start_time,
        created: wire.created,
        cgroup: wire.cgroup.map(unescape).transpose()?,
        hooks: wire.hooks.unwrap_or(false),
        image_root: wire
            .image_root
            .map(unescape)
            .transpose()?
            .map(PathBuf::from),
    })
}

/// Decodes a string of the record. The file is at most [`MAX_STATE_BYTES`] and
/// husk wrote it, so only a malformed escape is refused.
fn unescape(escaped: EscapedStr<'_>) -> Result<String, &'static str> {
    wire::unescape_with_nul(Field::new(STATE_FILE), escaped, MAX_STATE_BYTES)
        .map_err(|_| wire::INVALID_ESCAPE)
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exists(id) => write!(f, "container {} exists already", id.as_str()),
            Self::NotFound(id) => write!(f, "container {} does not exist", id.as_str()),
            Self::Incomplete(id) => write!(
                f,
                "container {} is incomplete (its create was interrupted): \
                 remove it with 'husk delete --force {}'",
                id.as_str(),
                id.as_str()
            ),
            Self::Io { op, path, .. } => write!(f, "{op} {}", path.display()),
            Self::Corrupt { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::NoDefaultRoot { uid } => write!(
                f,
                "running as uid {uid}, not root: give --root DIR or set XDG_RUNTIME_DIR \
                 for the state directory"
            ),
        }
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn record(id: &str) -> Record {
        Record {
            id: id.parse().unwrap(),
            bundle: PathBuf::from("/bundles/with \"quotes\" and \\ slash"),
            rootfs: PathBuf::from("/bundles/b/rootfs"),
            pid: Some(4242),
            start_time: 987_654,
            created: 1_800_000_000,
            cgroup: Some("husk/web-1".into()),
            hooks: true,
            image_root: Some(PathBuf::from("/var/lib/husk/containers/web-1")),
        }
    }

    #[test]
    fn the_default_root_follows_the_user() {
        assert_eq!(default_root(0, None).unwrap(), PathBuf::from(DEFAULT_ROOT));
        let xdg = Some(OsStr::new("/run/user/1000"));
        assert_eq!(default_root(0, xdg).unwrap(), PathBuf::from(DEFAULT_ROOT));
        assert_eq!(
            default_root(1000, xdg).unwrap(),
            PathBuf::from("/run/user/1000/husk")
        );
        for unusable in [None, Some(OsStr::new("")), Some(OsStr::new("run/user"))] {
            assert_eq!(
                default_root(1000, unusable).unwrap_err().to_string(),
                "running as uid 1000, not root: give --root DIR or set XDG_RUNTIME_DIR \
                 for the state directory"
            );
        }
    }

    #[test]
    fn a_record_round_trips() {
        let tmp = TempDir::new("state");
        let dir = StateDir::new(tmp.path().join("run"));
        let rec = record("web-1");
        dir.claim(&rec.id).unwrap();
        dir.save(&rec).unwrap();
        assert_eq!(dir.load(&rec.id).unwrap(), rec);
        let mut no_pid = rec.clone();
        no_pid.pid = None;
        no_pid.cgroup = None;
        no_pid.image_root = None;
        dir.save(&no_pid).unwrap();
        assert_eq!(dir.load(&rec.id).unwrap(), no_pid);
    }

    #[test]
    fn a_record_of_an_older_husk_has_no_image_root() {
        let tmp = TempDir::new("state");
        let dir = StateDir::new(tmp.path());
        let id: ContainerId = "a".parse().unwrap();
        dir.claim(&id).unwrap();
        fs::write(
            dir.dir(&id).join(STATE_FILE),
            r#"{"version":1,"id":"a","bundle":"/b","rootfs":"/r","pid":1,"start_time":1,"created":1,"cgroup":null,"hooks":false}"#,
        )
        .unwrap();
        assert_eq!(dir.load(&id).unwrap().image_root, None);
    }

    #[test]
    fn an_id_can_be_claimed_once() {
        let tmp = TempDir::new("state");
        let dir = StateDir::new(tmp.path());
        let id: ContainerId = "a".parse().unwrap();
        dir.claim(&id).unwrap();
        let err = dir.claim(&id).unwrap_err();
        assert_eq!(err.to_string(), "container a exists already");
    }

    #[test]
    fn missing_and_interrupted_containers_are_told_apart() {
        let tmp = TempDir::new("state");
        let dir = StateDir::new(tmp.path());
        let id: ContainerId = "a".parse().unwrap();
        assert!(matches!(dir.load(&id), Err(StateError::NotFound(_))));
        dir.claim(&id).unwrap();
        let err = dir.load(&id).unwrap_err();
        assert!(matches!(err, StateError::Incomplete(_)));
        assert!(err.to_string().contains("husk delete --force a"));
    }

    #[test]
    fn a_corrupt_or_foreign_record_is_refused() {
        let tmp = TempDir::new("state");
        let dir = StateDir::new(tmp.path());
        let id: ContainerId = "a".parse().unwrap();
        dir.claim(&id).unwrap();
        let path = dir.dir(&id).join(STATE_FILE);
        for (text, reason) in [
            ("{", "not a husk state record"),
            (
                r#"{"version":9,"id":"a","bundle":"/b","rootfs":"/r","pid":1,"start_time":1,"created":1}"#,
                "incompatible husk version",
            ),
            (
                r#"{"version":1,"id":"b","bundle":"/b","rootfs":"/r","pid":1,"start_time":1,"created":1}"#,
                "another container id",
            ),
        ] {
            fs::write(&path, text).unwrap();
            let err = dir.load(&id).unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
        fs::write(&path, vec![b' '; MAX_STATE_BYTES + 1]).unwrap();
        assert!(dir.load(&id).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn ids_lists_container_directories_only() {
        let tmp = TempDir::new("state");
        let dir = StateDir::new(tmp.path());
        assert!(StateDir::new(tmp.path().join("none"))
            .ids()
            .unwrap()
            .is_empty());
        for id in ["b", "a"] {
            dir.claim(&id.parse().unwrap()).unwrap();
        }
        fs::write(tmp.path().join("stray-file"), "").unwrap();
        fs::create_dir(tmp.path().join(".hidden")).unwrap();
        let ids: Vec<_> = dir.ids().unwrap();
        let ids: Vec<&str> = ids.iter().map(ContainerId::as_str).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn remove_is_idempotent() {
        let tmp = TempDir::new("state");
        let dir = StateDir::new(tmp.path());
        let id: ContainerId = "a".parse().unwrap();
        dir.claim(&id).unwrap();
        dir.remove(&id).unwrap();
        dir.remove(&id).unwrap();
        assert!(!dir.dir(&id).exists());
    }
}
