//! cgroups v2 for one cgroup: create it with limits, add processes, freeze,
//! kill, measure and remove it. This module knows nothing of containers (like
//! youki's `libcgroups`): callers pass the cgroup root, a [`CgroupPath`] and the
//! [`Resources`] to apply.
//!
//! - [`Resources`] is the validated form of the OCI `linux.resources` object; its
//!   wire form, [`WireResources`], is a bounded serde-json-core struct that
//!   `config.json`'s wire struct can embed. [`Resources::settings`] lists the exact
//!   interface files and values it stands for.
//! - [`CgroupPath`] is where a cgroup lives below the root: `<parent>/<name>`,
//!   resolved from `linux.cgroupsPath` by [`resolve_path`].
//! - Every file operation goes through [`CgroupFs`]: [`HostFs`] is the kernel's
//!   cgroupfs, unit tests use a fake that behaves like it (interface files appear
//!   with the controllers enabled in the parent, writes to missing files fail,
//!   `rmdir` is refused while processes remain).
//!
//! - `linux.resources.devices` becomes an eBPF program ([`compile`], in
//!   `devices.rs`) that [`CgroupFs::set_device_program`] attaches to the cgroup.
//!
//! There are no system calls here: signals are sent by a callback the caller
//! passes to [`Cgroup::kill_all`], waiting is [`CgroupFs::pause`], and the
//! device program is loaded by [`CgroupFs::set_device_program`].
//!
//! Invariants: a controller is enabled in an ancestor's `cgroup.subtree_control`
//! only if the resources need it, so a cgroup without limits can be created on a
//! host whose cgroup v2 hierarchy has no controllers (a v1/v2 hybrid); a parent
//! cgroup is never removed.

mod devices;
mod fs;
mod path;
mod resources;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::unistd::Pid;

pub use self::devices::{
    compile, with_defaults, Access, DeviceRule, DeviceType, Insn, DEFAULT_RULES, MAX_MAJOR,
    MAX_MINOR,
};
pub use self::fs::{CgroupFs, HostFs};
pub use self::path::{
    resolve_path, CgroupName, CgroupPath, RelativeCgroupPath, MAX_NAME, MAX_PARENT_DEPTH,
};
pub use self::resources::{
    parse_resources, Cpu, CpuList, CpuMax, DeviceNumber, DeviceWeight, HugepageLimit, Io, Limit,
    Memory, PageSize, Resources, Setting, Throttle, ThrottleKind, UnifiedKey, WireResources,
    MAX_BLOCK_DEVICES, MAX_CPU_LIST, MAX_DEVICE_RULES, MAX_HUGEPAGE_LIMITS, MAX_TOKEN, MAX_UNIFIED,
    MAX_UNIFIED_KEY, MAX_UNIFIED_VALUE,
};
use crate::sys::SysError;
use crate::wire::{Field, WireError};

/// How long to wait for the kernel: at most `attempts` checks, `interval` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    /// Checks before giving up; at least one check is always made.
    pub attempts: u32,
    /// Pause between two checks.
    pub interval: Duration,
}

/// Waiting for `cgroup.events` to show a freeze or thaw: up to one second.
pub const FREEZE_POLL: Poll = Poll {
    attempts: 100,
    interval: Duration::from_millis(10),
};

/// Retrying `rmdir` while killed processes are still exiting: up to one second.
pub const REMOVE_POLL: Poll = Poll {
    attempts: 100,
    interval: Duration::from_millis(10),
};

/// One cgroup v2 directory, `<root>/<parent>/<name>`.
#[derive(Debug)]
pub struct Cgroup<F: CgroupFs> {
    fs: F,
    dir: PathBuf,
}

/// What a cgroup has used, from its interface files. A field is `None` when
/// the file (or the key in it) does not exist, e.g. because the controller is
/// not enabled for the cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `memory.current`, in bytes.
    pub memory_current: Option<u64>,
    /// `memory.max`.
    pub memory_max: Option<Limit>,
    /// `oom` of `memory.events`: times the memory limit was hit and reclaim failed.
    pub oom: Option<u64>,
    /// `oom_kill` of `memory.events`: processes killed by the OOM killer.
    pub oom_kill: Option<u64>,
    /// `pids.current`.
    pub pids_current: Option<u64>,
    /// `usage_usec` of `cpu.stat`: CPU time used, in microseconds.
    pub cpu_usage_usec: Option<u64>,
}

/// Why a cgroup or its resources were rejected, or a cgroup operation failed.
#[derive(Debug)]
pub enum CgroupError {
    /// `linux.resources` is not JSON of the expected shape.
    Json(serde_json_core::de::Error),
    /// An object of `linux.resources` has a key twice.
    DuplicateKey(crate::wire::DuplicateKey),
    /// A required property is absent.
    Missing(Field),
    /// A property set to a value that cgroup v2 has no equivalent for.
    NotOnV2(Field),
    /// A property husk does not implement yet is present.
    Unsupported(Field),
    /// The device rules could not be made the cgroup's eBPF device filter.
    DeviceProgram {
        /// The cgroup.
        dir: PathBuf,
        /// The `bpf` call that failed.
        source: SysError,
    },
    /// An array, map or string is over its capacity, or a string is malformed.
    Wire(WireError),
    /// A property has an invalid value.
    Invalid {
        /// The property.
        field: Field,
        /// What is wrong, as a predicate: "must be 0 or 1".
        reason: &'static str,
    },
    /// A key of `linux.resources.unified` is refused.
    Unified {
        /// The key.
        key: String,
        /// What is wrong, as a predicate.
        reason: &'static str,
    },
    /// A key or value of `linux.resources.unified` is longer than its capacity.
    UnifiedTooLong {
        /// The key (cut short if it is the long one).
        key: String,
        /// "key" or "value".
        what: &'static str,
        /// The capacity in bytes.
        max: usize,
    },
    /// A cgroup path, name or parent is invalid.
    InvalidPath {
        /// What the path is: "linux.cgroupsPath", "cgroup parent", "cgroup name".
        what: &'static str,
        /// The path as given.
        path: String,
        /// What is wrong, as a predicate.
        reason: &'static str,
    },
    /// `linux.cgroupsPath` is in systemd's `slice:prefix:name` form.
    SystemdPath {
        /// The path as given.
        path: String,
    },
    /// The cgroup root is not a cgroup v2 mount.
    NotCgroup2 {
        /// The root.
        root: PathBuf,
    },
    /// The resources need a controller the hierarchy does not offer.
    ControllerUnavailable {
        /// The controller, e.g. `memory`.
        controller: String,
        /// The cgroup whose `cgroup.controllers` lacks it.
        dir: PathBuf,
        /// What its `cgroup.controllers` lists.
        available: String,
    },
    /// [`Cgroup::create`] found the cgroup already there.
    Exists {
        /// The cgroup.
        dir: PathBuf,
    },
    /// [`Cgroup::open`] found no cgroup.
    NotFound {
        /// The cgroup.
        dir: PathBuf,
    },
    /// Creating a cgroup directory failed.
    Mkdir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Removing a cgroup directory failed.
    Rmdir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Reading an interface file failed.
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Writing an interface file failed.
    Write {
        /// The file.
        file: PathBuf,
        /// The value.
        value: String,
        /// The I/O error.
        source: io::Error,
    },
    /// An interface file has content husk cannot read.
    Parse {
        /// The file.
        file: PathBuf,
        /// What is wrong, as a predicate.
        reason: &'static str,
    },
    /// `cgroup.events` did not show the requested freezer state in time.
    FreezeTimeout {
        /// `cgroup.events`.
        file: PathBuf,
        /// The state waited for.
        frozen: bool,
        /// Checks made.
        polls: u32,
    },
    /// The kill callback failed for a process of the cgroup.
    Kill {
        /// The process.
        pid: Pid,
        /// The callback's error.
        source: SysError,
    },
}

impl<F: CgroupFs> Cgroup<F> {
    /// Creates the cgroup `path` below the cgroup v2 mount `root` (such as
    /// `/sys/fs/cgroup`) and applies `resources`.
    ///
    /// Missing parent directories are created. In `root` and in every parent,
    /// the controllers `resources` need are enabled in `cgroup.subtree_control`
    /// (only those, and only if not enabled yet); freezing and killing use core
    /// files and need none. If a resource cannot be applied, the new cgroup is
    /// removed again; parents stay.
    pub fn create(
        fs: F,
        root: &Path,
        path: &CgroupPath,
        resources: &Resources,
    ) -> Result<Self, CgroupError> {
        check_cgroup2(&fs, root)?;
        let settings = resources.settings();
        let controllers = resources::controllers(&settings);
        let mut dir = root.to_path_buf();
        for component in path.parent().components() {
            enable_controllers(&fs, &dir, &controllers)?;
            dir.push(component.as_str());
            match fs.mkdir(&dir) {
                // Parents are shared: another container may have made it.
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(CgroupError::Mkdir { dir, source: e });
                }
                _ => {}
            }
        }
        enable_controllers(&fs, &dir, &controllers)?;
        dir.push(path.name().as_str());
        match fs.mkdir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(CgroupError::Exists { dir });
            }
            Err(source) => return Err(CgroupError::Mkdir { dir, source }),
        }
        let cgroup = Self { fs, dir };
        let applied = settings
            .iter()
            .try_for_each(|setting| cgroup.write(&setting.file, &setting.value))
            .and_then(|()| cgroup.set_devices(resources, true));
        if let Err(error) = applied {
            // The first error is the one to report; the cgroup is new and
            // empty, so removing it can only fail if it is gone already.
            let _ = cgroup.fs.rmdir(&cgroup.dir);
            return Err(error);
        }
        Ok(cgroup)
    }

    /// Applies `resources` to this cgroup, which lives at `path` below the
    /// cgroup v2 mount `root`: the controllers they need are enabled in `root`
    /// and every parent first. Limits that `resources` leaves out keep their
    /// values (`husk update`); device rules, if given, replace the cgroup's
    /// device filter (with the defaults after them, as at creation).
    pub fn update(
        &self,
        root: &Path,
        path: &CgroupPath,
        resources: &Resources,
    ) -> Result<(), CgroupError> {
        let settings = resources.settings();
        let controllers = resources::controllers(&settings);
        let mut dir = root.to_path_buf();
        enable_controllers(&self.fs, &dir, &controllers)?;
        for component in path.parent().components() {
            dir.push(component.as_str());
            enable_controllers(&self.fs, &dir, &controllers)?;
        }
        settings
            .iter()
            .try_for_each(|setting| self.write(&setting.file, &setting.value))?;
        match &resources.devices {
            Some(_) => self.set_devices(resources, false),
            None => Ok(()),
        }
    }

    /// Makes `resources.devices`, then `resources.implied_devices`, then
    /// [`DEFAULT_RULES`], the cgroup's device filter; no `devices` means no
    /// rules asked for. Rules that allow every device need no filter: a new
    /// cgroup gets none, an existing one loses the one it had (`fresh` says
    /// which). When the kernel cannot run the filter
    /// (no `bpf` system call, `ENOSYS`, or no `CONFIG_CGROUP_BPF`, `EINVAL`),
    /// or will not let husk load it (`EPERM`: an unprivileged, rootless husk,
    /// whose containers are in a user namespace, where the kernel makes no
    /// device nodes anyway), given rules are an error, but the defaults alone
    /// are skipped: device access stays as it was before husk had device
    /// rules, and only a config that asks for rules relies on them.
    fn set_devices(&self, resources: &Resources, fresh: bool) -> Result<(), CgroupError> {
        let rules = resources.devices.as_deref();
        let given = [rules.unwrap_or_default(), &resources.implied_devices].concat();
        let program = compile(&with_defaults(&given));
        if program.is_none() && fresh {
            return Ok(());
        }
        match self
            .fs
            .set_device_program(&self.dir, program.as_deref(), !fresh)
        {
            Err(e)
                if rules.is_none()
                    && matches!(e.errno(), Errno::ENOSYS | Errno::EINVAL | Errno::EPERM) =>
            {
                Ok(())
            }
            result => result.map_err(|source| CgroupError::DeviceProgram {
                dir: self.dir.clone(),
                source,
            }),
        }
    }

    /// The existing cgroup `path` below the cgroup v2 mount `root`.
    pub fn open(fs: F, root: &Path, path: &CgroupPath) -> Result<Self, CgroupError> {
        check_cgroup2(&fs, root)?;
        let dir = root.join(path.relative());
        if !fs.exists(&dir) {
            return Err(CgroupError::NotFound { dir });
        }
        Ok(Self { fs, dir })
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves the process `pid` (and its threads) into the cgroup.
    pub fn add_process(&self, pid: Pid) -> Result<(), CgroupError> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// The processes in the cgroup (not in its descendants), from `cgroup.procs`.
    pub fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        let file = self.dir.join("cgroup.procs");
        let text = self.read(&file)?;
        text.lines()
            .filter(|line| !line.is_empty())
            .map(|line| match line.parse::<i32>() {
                Ok(pid) if pid > 0 => Ok(Pid::from_raw(pid)),
                _ => Err(CgroupError::Parse {
                    file: file.clone(),
                    reason: "has a line that is not a process id",
                }),
            })
            .collect()
    }

    /// Freezes every process in the cgroup and waits until `cgroup.events`
    /// says `frozen 1`.
    pub fn freeze(&self, poll: Poll) -> Result<(), CgroupError> {
        self.set_frozen(true, poll)
    }

    /// Thaws the cgroup and waits until `cgroup.events` says `frozen 0`.
    pub fn thaw(&self, poll: Poll) -> Result<(), CgroupError> {
        self.set_frozen(false, poll)
    }

    /// Sends SIGKILL to every process in the cgroup and its descendants with
    /// `cgroup.kill` (Linux 5.14). Without it, calls `kill` for each process in
    /// `cgroup.procs` once; processes forked meanwhile escape, so callers that
    /// must not miss any freeze the cgroup first (SIGKILL ends frozen processes).
    /// `kill` sends the signal and should ignore processes that have ended.
    pub fn kill_all(
        &self,
        mut kill: impl FnMut(Pid) -> Result<(), SysError>,
    ) -> Result<(), CgroupError> {
        if self.fs.exists(&self.dir.join("cgroup.kill")) {
            return self.write("cgroup.kill", "1");
        }
        for pid in self.pids()? {
            kill(pid).map_err(|source| CgroupError::Kill { pid, source })?;
        }
        Ok(())
    }

    /// Reads the cgroup's usage counters.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let memory_events = self.read_keyed("memory.events")?;
        Ok(Stats {
            memory_current: self.read_number("memory.current")?,
            memory_max: self.read_limit("memory.max")?,
            oom: memory_events
                .as_ref()
                .and_then(|e| e.get("oom"))
                .transpose()?,
            oom_kill: memory_events
                .as_ref()
                .and_then(|e| e.get("oom_kill"))
                .transpose()?,
            pids_current: self.read_number("pids.current")?,
            cpu_usage_usec: self
                .read_keyed("cpu.stat")?
                .as_ref()
                .and_then(|s| s.get("usage_usec"))
                .transpose()?,
        })
    }

    /// Removes the cgroup. The kernel refuses while processes are still in it,
    /// so this retries as `poll` says; a cgroup that does not exist counts as
    /// removed. Its parent is never removed.
    pub fn remove(&self, poll: Poll) -> Result<(), CgroupError> {
        let mut attempt = 1;
        loop {
            match self.fs.rmdir(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::ResourceBusy && attempt < poll.attempts => {
                    self.fs.pause(poll.interval);
                    attempt += 1;
                }
                Err(source) => {
                    return Err(CgroupError::Rmdir {
                        dir: self.dir.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// Whether `cgroup.events` says the cgroup is frozen.
    pub fn frozen(&self) -> Result<bool, CgroupError> {
        let file = self.dir.join("cgroup.events");
        let events = Keyed::new(&file, self.read(&file)?);
        let state = events.get("frozen").ok_or_else(|| CgroupError::Parse {
            file: file.clone(),
            reason: "has no \"frozen\" line",
        })?;
        Ok(state? == 1)
    }

    fn set_frozen(&self, frozen: bool, poll: Poll) -> Result<(), CgroupError> {
        self.write("cgroup.freeze", if frozen { "1" } else { "0" })?;
        let file = self.dir.join("cgroup.events");
        let mut polls = 0;
        loop {
            polls += 1;
            if self.frozen()? == frozen {
                return Ok(());
            }
            if polls >= poll.attempts {
                return Err(CgroupError::FreezeTimeout {
                    file,
                    frozen,
                    polls,
                });
            }
            self.fs.pause(poll.interval);
        }
    }

    fn write(&self, name: &str, value: &str) -> Result<(), CgroupError> {
        write(&self.fs, &self.dir.join(name), value)
    }

    fn read(&self, file: &Path) -> Result<String, CgroupError> {
        read(&self.fs, file)
    }

    /// The content of `name`, or `None` if the file does not exist.
    fn read_optional(&self, name: &str) -> Result<Option<(PathBuf, String)>, CgroupError> {
        let file = self.dir.join(name);
        match self.fs.read_to_string(&file) {
            Ok(text) => Ok(Some((file, text))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CgroupError::Read { file, source }),
        }
    }

    fn read_number(&self, name: &str) -> Result<Option<u64>, CgroupError> {
        let Some((file, text)) = self.read_optional(name)? else {
            return Ok(None);
        };
        parse_number(&file, text.trim()).map(Some)
    }

    fn read_limit(&self, name: &str) -> Result<Option<Limit>, CgroupError> {
        let Some((file, text)) = self.read_optional(name)? else {
            return Ok(None);
        };
        match text.trim() {
            "max" => Ok(Some(Limit::Max)),
            number => parse_number(&file, number).map(|n| Some(Limit::Value(n))),
        }
    }

    fn read_keyed(&self, name: &str) -> Result<Option<Keyed>, CgroupError> {
        Ok(self
            .read_optional(name)?
            .map(|(file, text)| Keyed::new(&file, text)))
    }
}

impl fmt::Display for CgroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "linux.resources: invalid JSON: {e}"),
            Self::DuplicateKey(d) => write!(f, "linux.resources: invalid JSON: {d}"),
            Self::Missing(field) => write!(f, "{field} is required"),
            Self::NotOnV2(field) => write!(f, "{field} is not supported on cgroup v2"),
            Self::Unsupported(field) => write!(f, "{field} is not supported yet"),
            Self::DeviceProgram { dir, source } => {
                write!(
                    f,
                    "attaching the device rules (eBPF) to cgroup {}",
                    dir.display()
                )?;
                if matches!(source.errno(), Errno::ENOSYS | Errno::EINVAL) {
                    f.write_str(
                        " (does the kernel have CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF?)",
                    )?;
                }
                Ok(())
            }
            Self::Wire(e) => e.fmt(f),
            Self::Invalid { field, reason } => write!(f, "{field} {reason}"),
            Self::Unified { key, reason } => write!(f, "linux.resources.unified[{key:?}] {reason}"),
            Self::UnifiedTooLong { key, what, max } => write!(
                f,
                "linux.resources.unified[{key:?}]: the {what} is longer than {max} bytes"
            ),
            Self::InvalidPath { what, path, reason } => write!(f, "{what} {path:?} {reason}"),
            Self::SystemdPath { path } => write!(
                f,
                "linux.cgroupsPath {path:?}: systemd cgroup paths are not supported"
            ),
            Self::NotCgroup2 { root } => write!(
                f,
                "{} is not a cgroup v2 mount: it has no cgroup.controllers",
                root.display()
            ),
            Self::ControllerUnavailable {
                controller,
                dir,
                available,
            } => {
                let available = if available.is_empty() {
                    "nothing"
                } else {
                    available
                };
                write!(
                    f,
                    "cgroup v2 controller {controller} is not available \
                     (cgroup.controllers at {} lists: {available})",
                    dir.display()
                )
            }
            Self::Exists { dir } => write!(f, "cgroup {} already exists", dir.display()),
            Self::NotFound { dir } => write!(f, "cgroup {} does not exist", dir.display()),
            Self::Mkdir { dir, .. } => write!(f, "creating cgroup {}", dir.display()),
            Self::Rmdir { dir, .. } => write!(f, "removing cgroup {}", dir.display()),
            Self::Read { file, .. } => write!(f, "reading {}", file.display()),
            Self::Write { file, value, .. } => {
                write!(f, "writing {value:?} to {}", file.display())
            }
            Self::Parse { file, reason } => write!(f, "{} {reason}", file.display()),
            Self::FreezeTimeout {
                file,
                frozen,
                polls,
            } => write!(
                f,
                "{} did not show \"frozen {}\" after {polls} checks",
                file.display(),
                u8::from(*frozen)
            ),
            Self::Kill { pid, .. } => write!(f, "killing process {pid} of the cgroup"),
        }
    }
}

impl std::error::Error for CgroupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Mkdir { source, .. }
            | Self::Rmdir { source, .. }
            | Self::Read { source, .. }
            | Self::Write { source, .. } => Some(source),
            Self::Kill { source, .. } | Self::DeviceProgram { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<WireError> for CgroupError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

/// Fails unless `root` is a cgroup v2 mount (only those have `cgroup.controllers`).
fn check_cgroup2(fs: &impl CgroupFs, root: &Path) -> Result<(), CgroupError> {
    if fs.exists(&root.join("cgroup.controllers")) {
        Ok(())
    } else {
        Err(CgroupError::NotCgroup2 {
            root: root.to_path_buf(),
        })
    }
}

/// Makes `controllers` available to the children of `dir`: each must be in
/// `dir`'s `cgroup.controllers`; those not yet in its `cgroup.subtree_control`
/// are enabled there with one write. Reads nothing if `controllers` is empty.
fn enable_controllers(
    fs: &impl CgroupFs,
    dir: &Path,
    controllers: &[&str],
) -> Result<(), CgroupError> {
    if controllers.is_empty() {
        return Ok(());
    }
    let available = read(fs, &dir.join("cgroup.controllers"))?;
    if let Some(missing) = controllers
        .iter()
        .find(|c| !available.split_whitespace().any(|a| a == **c))
    {
        return Err(CgroupError::ControllerUnavailable {
            controller: (*missing).to_owned(),
            dir: dir.to_path_buf(),
            available: available.split_whitespace().collect::<Vec<_>>().join(" "),
        });
    }
    let subtree_control = dir.join("cgroup.subtree_control");
    let enabled = read(fs, &subtree_control)?;
    let enable: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if enable.is_empty() {
        return Ok(());
    }
    write(fs, &subtree_control, &enable.join(" "))
}

fn read(fs: &impl CgroupFs, file: &Path) -> Result<String, CgroupError> {
    fs.read_to_string(file).map_err(|source| CgroupError::Read {
        file: file.to_path_buf(),
        source,
    })
}

fn write(fs: &impl CgroupFs, file: &Path, value: &str) -> Result<(), CgroupError> {
    fs.write(file, value).map_err(|source| CgroupError::Write {
        file: file.to_path_buf(),
        value: value.to_owned(),
        source,
    })
}

fn parse_number(file: &Path, text: &str) -> Result<u64, CgroupError> {
    text.parse().map_err(|_| CgroupError::Parse {
        file: file.to_path_buf(),
        reason: "does not hold a number",
    })
}

/// A flat-keyed interface file such as `memory.events`: `key value` lines.
struct Keyed {
    file: PathBuf,
    text: String,
}

impl Keyed {
    fn new(file: &Path, text: String) -> Self {
        Self {
            file: file.to_path_buf(),
            text,
        }
    }

    /// The value of `key`, if the file has it.
    fn get(&self, key: &str) -> Option<Result<u64, CgroupError>> {
        self.text.lines().find_map(|line| {
            let (k, value) = line.split_once(' ')?;
            (k == key).then(|| parse_number(&self.file, value.trim()))
        })
    }
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
