//! `config.json`: the subset of the OCI runtime spec that husk honours.
//!
//! Two layers, converted once ("parse, don't validate"):
//! - `Wire*` structs mirror the JSON. Every array has a fixed capacity (a `MAX_*`
//!   constant, held by the containers of [`crate::wire`]) and strings are
//!   borrowed, still escaped, from the input buffer, so the wire layer is a few
//!   tens of KiB whatever the input (owned `heapless::String<4096>` fields would
//!   need megabytes of stack).
//! - [`ContainerSpec`] and its parts are the validated internal types the rest
//!   of husk uses.
//!
//! Unknown properties are ignored at every level, as the spec requires. A property
//! the spec defines but husk does not implement yet is an error naming it
//! ("`linux.intelRdt` is not supported yet"), never silently dropped: such
//! properties are declared as presence markers (`Option<IgnoredAny>`), which
//! serde-json-core 0.6 skips over with `deserialize_ignored_any`.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::resource::Resource;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json_core::str::EscapedStr;

use crate::cgroup::{Access, CgroupError, DeviceRule, DeviceType, Resources, WireResources};
use crate::seccomp::{self, Arch, Profile, SeccompError, WireSeccomp};
use crate::wire::{self, unescape, CappedMap, Field, HeapCapped, WireError};

/// Largest `config.json` read, in bytes.
pub const MAX_CONFIG_BYTES: usize = 4 << 20;
/// Most entries in `process.args`.
pub const MAX_ARGS: usize = 256;
/// Most entries in `process.env`.
pub const MAX_ENV: usize = 256;
/// Longest argument or environment entry, in bytes.
pub const MAX_STRING: usize = 4096;
/// Longest path, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// Most entries in `mounts`.
pub const MAX_MOUNTS: usize = 64;
/// Most entries in one mount's `options`.
pub const MAX_MOUNT_OPTIONS: usize = 32;
/// Most entries in `linux.namespaces`.
pub const MAX_NAMESPACES: usize = 8;
/// Most entries in `process.user.additionalGids`.
pub const MAX_GROUPS: usize = 32;
/// Longest hostname, in bytes (Linux `HOST_NAME_MAX`).
pub const MAX_HOSTNAME: usize = 64;
/// Most hooks of one kind in `hooks`.
pub const MAX_HOOKS: usize = 16;
/// Most arguments or environment entries of one hook.
pub const MAX_HOOK_STRINGS: usize = 64;

/// Most entries in `process.rlimits` (Linux has 16 resource limits).
pub const MAX_RLIMITS: usize = 16;
/// Most entries in one set of `process.capabilities` (Linux has 41 capabilities).
pub const MAX_CAPABILITIES: usize = 64;
/// Most entries in `linux.sysctl`.
pub const MAX_SYSCTLS: usize = 32;
/// Longest key of `linux.sysctl`, in bytes.
pub const MAX_SYSCTL_NAME: usize = 256;
/// Most entries in `linux.devices`.
pub const MAX_DEVICES: usize = 64;
/// Most entries in `linux.maskedPaths` (Docker's default has 15).
pub const MAX_MASKED_PATHS: usize = 64;
/// Most entries in `linux.readonlyPaths` (Docker's default has 5).
pub const MAX_READONLY_PATHS: usize = 64;
/// Most lines in `linux.uidMappings` or `linux.gidMappings`: the kernel's own
/// limit for `uid_map` and `gid_map` (since Linux 4.15).
pub const MAX_ID_MAPPINGS: usize = 340;

/// A validated container configuration.
#[derive(Debug)]
pub struct ContainerSpec {
    /// `process`: what the container runs.
    pub process: Process,
    /// `root.path`, resolved against the bundle directory.
    pub root: PathBuf,
    /// `root.readonly`.
    pub root_readonly: bool,
    /// `hostname`; only set when the container has a UTS namespace.
    pub hostname: Option<String>,
    /// `linux.namespaces`; always includes a new mount namespace.
    pub namespaces: NamespaceSet,
    /// `linux.uidMappings` and `linux.gidMappings`: present exactly when the
    /// container has a new user namespace.
    pub id_mappings: Option<IdMappings>,
    /// `mounts`, in order.
    pub mounts: Vec<Mount>,
    /// `linux.rootfsPropagation`: what the container's mount namespace makes
    /// of `/` before anything else (default `rprivate`: nothing propagates
    /// either way).
    pub rootfs_propagation: MsFlags,
    /// `linux.cgroupsPath`, resolved later against the runtime's defaults.
    pub cgroups_path: Option<String>,
    /// `linux.resources`: the container cgroup's limits.
    pub resources: Resources,
    /// `linux.seccomp`, compiled for the architecture husk runs on.
    pub seccomp: Option<seccomp::Filter>,
    /// `linux.sysctl`: only keys of the container's IPC namespace or of a new
    /// network namespace.
    pub sysctl: Vec<Sysctl>,
    /// `linux.maskedPaths`.
    pub masked_paths: Vec<ContainerPath>,
    /// `linux.readonlyPaths`.
    pub readonly_paths: Vec<ContainerPath>,
    /// `linux.devices`: nodes made in the container's `/dev`.
    pub devices: Vec<DeviceNode>,
    /// `hooks` run in husk's namespaces.
    pub hooks: Hooks,
    /// Not from `config.json`: `--init` asks for a small PID 1 that reaps
    /// and forwards signals, for programs that cannot.
    pub reaper: bool,
}

/// The `hooks` of `config.json`: `createRuntime`, `poststart` and `poststop`
/// run by husk in its own (the runtime's) namespaces, `createContainer` and
/// `startContainer` by the container's init in the container's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// `prestart` (deprecated) then `createRuntime`: after the container is
    /// set up, before its process starts.
    pub create_runtime: Vec<Hook>,
    /// `createContainer`: in the container's namespaces after its mounts,
    /// before `pivot_root` (so `path` is the host's), run by its init.
    pub create_container: Vec<Hook>,
    /// `startContainer`: in the container, as its process's user, after
    /// `start` and just before the process (so `path` is the container's).
    pub start_container: Vec<Hook>,
    /// `poststart`: after the process has started.
    pub poststart: Vec<Hook>,
    /// `poststop`: after the container is deleted.
    pub poststop: Vec<Hook>,
}

/// One hook: a program run with the container's state on its standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// `path`: the absolute path of the program, in husk's namespaces.
    pub path: PathBuf,
    /// `args`, `args[0]` included (empty: the path alone).
    pub args: Vec<String>,
    /// `env`, each `NAME=VALUE`: the hook's whole environment.
    pub env: Vec<String>,
    /// `timeout`: how long it may run before it is killed.
    pub timeout: Option<std::time::Duration>,
}

/// A validated `process` object: `config.json`'s, or the file of `husk exec
/// --process`, which has the same shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// `args`, never empty.
    pub args: Vec<CString>,
    /// `env`, each entry `NAME=VALUE`.
    pub env: Vec<CString>,
    /// `cwd`.
    pub cwd: ContainerPath,
    /// `user`; root when absent.
    pub user: User,
    /// `rlimits`, each type at most once.
    pub rlimits: Vec<Rlimit>,
    /// `oomScoreAdj`, -1000 to 1000.
    pub oom_score_adj: Option<i32>,
    /// `noNewPrivileges`.
    pub no_new_privileges: bool,
    /// `capabilities`; when absent the process keeps the capabilities its
    /// user gets from the kernel (all of them for root, as with runc).
    pub capabilities: Option<Capabilities>,
    /// `terminal`: the process gets a new pseudo-terminal as its controlling
    /// terminal and standard streams, whose master goes to `--console-socket`.
    pub terminal: bool,
    /// `consoleSize`: the terminal's size, set when it is made.
    pub console_size: Option<ConsoleSize>,
}

/// `process.consoleSize`, in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSize {
    /// `height`: rows.
    pub height: u16,
    /// `width`: columns.
    pub width: u16,
}

/// What `husk exec`'s flags change in a [`Process`]; what they leave out stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessOverrides {
    /// The command and its arguments, unless empty.
    pub args: Vec<CString>,
    /// `NAME=VALUE` entries: each replaces the variable of its name, or is appended.
    pub env: Vec<CString>,
    /// The working directory.
    pub cwd: Option<ContainerPath>,
    /// The user id.
    pub uid: Option<u32>,
    /// The group id.
    pub gid: Option<u32>,
}

/// One entry of `process.rlimits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// The name in `config.json`, such as `RLIMIT_NOFILE`.
    pub name: &'static str,
    /// The resource.
    pub resource: Resource,
    /// The soft limit, at most `hard`.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// A Linux capability, numbered as in `<linux/capability.h>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability(u8);

/// A set of capabilities, a bit mask as the kernel has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(u64);

/// `process.capabilities`: the five sets. An absent set is empty, as in runc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The bounding set: every other capability is dropped from it.
    pub bounding: CapSet,
    /// The effective set.
    pub effective: CapSet,
    /// The inheritable set.
    pub inheritable: CapSet,
    /// The permitted set.
    pub permitted: CapSet,
    /// The ambient set, within permitted and inheritable.
    pub ambient: CapSet,
}

/// One entry of `linux.sysctl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// The key, as in `config.json`.
    pub name: String,
    /// The file under `/proc/sys` inside the container.
    pub path: PathBuf,
    /// The value written.
    pub value: String,
}

/// One entry of `linux.devices`: a device node (or fifo) made in the
/// container's `/dev`. Making it grants no access: `linux.resources.devices`
/// decides that, as with runc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// `path`: below `/dev`.
    pub path: ContainerPath,
    /// `type`.
    pub kind: NodeKind,
    /// `major` (0 for a fifo).
    pub major: u32,
    /// `minor` (0 for a fifo).
    pub minor: u32,
    /// `fileMode`'s permission bits; `0o666` when absent, as in runc.
    pub mode: u32,
    /// `uid` of the owner; 0 when absent.
    pub uid: u32,
    /// `gid` of the owner; 0 when absent.
    pub gid: u32,
}

impl DeviceNode {
    /// The device rule that lets the container's init make this node (`m`),
    /// which husk adds after `linux.resources.devices`; `None` for a fifo,
    /// which the device rules do not cover.
    fn mknod_rule(&self) -> Option<DeviceRule> {
        let kind = match self.kind {
            NodeKind::Char => DeviceType::Char,
            NodeKind::Block => DeviceType::Block,
            NodeKind::Fifo => return None,
        };
        Some(DeviceRule {
            allow: true,
            kind,
            major: Some(self.major),
            minor: Some(self.minor),
            access: Access::MKNOD,
        })
    }
}

/// The file type of a [`DeviceNode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// `c` or `u`: a character device.
    Char,
    /// `b`: a block device.
    Block,
    /// `p`: a fifo.
    Fifo,
}

/// An absolute, normalised path inside the container, without `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPath(PathBuf);

/// The identity the container process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// File mode creation mask; inherited when absent.
    pub umask: Option<u32>,
}

/// The kinds of namespace husk can create or join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceKind {
    /// Mount namespace (`mount`).
    Mount,
    /// PID namespace (`pid`).
    Pid,
    /// UTS namespace: hostname (`uts`).
    Uts,
    /// System V IPC and POSIX message queues (`ipc`).
    Ipc,
    /// Network namespace (`network`).
    Net,
    /// User namespace (`user`).
    User,
    /// Cgroup namespace (`cgroup`).
    Cgroup,
}

/// One namespace: created new, or joined through `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Which namespace.
    pub kind: NamespaceKind,
    /// A namespace file such as `/proc/1234/ns/net` to join instead of creating one.
    pub path: Option<PathBuf>,
}

/// One line of a user namespace's `uid_map` or `gid_map`: `size` ids from
/// `container_id` in the namespace are `host_id`... on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    /// The first id inside the container.
    pub container_id: u32,
    /// The id it is on the host (in husk's user namespace).
    pub host_id: u32,
    /// How many consecutive ids; at least 1.
    pub size: u32,
}

/// The uid and gid maps of a new user namespace; neither is empty, and the
/// ranges of each overlap neither inside nor outside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMappings {
    /// `linux.uidMappings`.
    pub uids: Vec<IdMapping>,
    /// `linux.gidMappings`.
    pub gids: Vec<IdMapping>,
}

impl IdMappings {
    /// The host uid that container uid `id` is, if it is mapped.
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        IdMapping::host_id_of(&self.uids, id)
    }

    /// The host gid that container gid `id` is, if it is mapped.
    pub fn host_gid(&self, id: u32) -> Option<u32> {
        IdMapping::host_id_of(&self.gids, id)
    }
}

impl IdMapping {
    fn host_id_of(map: &[IdMapping], id: u32) -> Option<u32> {
        map.iter().find_map(|m| {
            let offset = id.checked_sub(m.container_id)?;
            (offset < m.size).then(|| m.host_id + offset)
        })
    }

    /// The map in the kernel's format: one `container host size` line each.
    pub fn kernel_format(map: &[IdMapping]) -> String {
        map.iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
            .collect()
    }
}

/// The namespaces of a container, at most one of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceSet(Vec<Namespace>);

/// One entry of `mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where in the container.
    pub destination: ContainerPath,
    /// What is mounted.
    pub kind: MountKind,
    /// Flags from `options`.
    pub flags: MsFlags,
    /// Options that are not flags, comma-separated, passed to the filesystem.
    pub data: String,
    /// A propagation option (`rprivate`, `slave`, ...), applied by a second
    /// `mount(2)` once the mount is made; empty for none.
    pub propagation: MsFlags,
}

/// What a [`Mount`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A bind mount of a host path (resolved against the bundle).
    Bind {
        /// The host path.
        source: PathBuf,
        /// `rbind`: include the mounts below `source`.
        recursive: bool,
    },
    /// A new filesystem instance.
    Fs {
        /// The filesystem type.
        fstype: FsType,
        /// The source shown in the mount table, e.g. `proc`.
        source: String,
    },
}

/// The filesystem types husk mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    /// `proc`
    Proc,
    /// `tmpfs`
    Tmpfs,
    /// `sysfs`
    Sysfs,
    /// `devpts`
    Devpts,
    /// `mqueue`
    Mqueue,
    /// `cgroup2` (also for the type `cgroup`: husk knows cgroup v2 only),
    /// only in a new cgroup namespace, where it shows the container's own
    /// cgroup as the root.
    Cgroup2,
}

/// Why `config.json` was rejected.
#[derive(Debug)]
pub enum SpecError {
    /// Reading the file failed.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    TooBig {
        /// The file.
        path: PathBuf,
    },
    /// The file is not JSON of the expected shape.
    Json(serde_json_core::de::Error),
    /// An object of the document has a key twice.
    DuplicateKey(wire::DuplicateKey),
    /// A required property is absent.
    Missing(Field),
    /// A property husk does not implement yet is present.
    Unsupported(Field),
    /// A property has a value husk does not implement yet.
    UnsupportedValue {
        /// The property.
        field: Field,
        /// The value.
        value: String,
    },
    /// An array or string is over its capacity, or a string is malformed.
    Wire(WireError),
    /// A property has an invalid value.
    Invalid {
        /// The property.
        field: Field,
        /// What is wrong, as a predicate: "must be an absolute path".
        reason: &'static str,
    },
    /// A value of a property, such as a name in a list, is refused.
    Value {
        /// The property.
        field: Field,
        /// The value.
        value: String,
        /// What is wrong, as a predicate: "is not a capability".
        reason: &'static str,
    },
    /// `linux.resources` or `linux.cgroupsPath` was rejected.
    Cgroup(CgroupError),
    /// `linux.seccomp` was rejected or could not be compiled.
    Seccomp(SeccompError),
    /// A process file (`husk exec --process`) was rejected; its properties are
    /// named relative to the process object (`args`, not `process.args`).
    ProcessFile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: Box<SpecError>,
    },
}

/// Reads and validates `<bundle>/config.json`; `bundle` should be absolute.
pub fn load(bundle: &Path) -> Result<ContainerSpec, SpecError> {
    let json = read_bounded(&bundle.join("config.json"))?;
    parse(&json, bundle)
}

/// Validates the JSON text of a `config.json` from the bundle directory `bundle`.
pub fn parse(json: &[u8], bundle: &Path) -> Result<ContainerSpec, SpecError> {
    let (wire, _) =
        serde_json_core::from_slice::<WireConfig<'_>>(json).map_err(|e| json_error(json, e))?;
    reject_unsupported(&wire)?;
    convert(wire, bundle)
}

/// Reads and validates a process file (`husk exec --process`): a `process`
/// object as `config.json` has it, at most [`MAX_CONFIG_BYTES`] long.
pub fn load_process(path: &Path) -> Result<Process, SpecError> {
    let json = read_bounded(path)?;
    parse_process(&json, path)
}

/// Validates the JSON text of a process file, with the wire structs and
/// checks of `config.json`'s `process`; `path` only names it in errors.
pub fn parse_process(json: &[u8], path: &Path) -> Result<Process, SpecError> {
    let in_file = |error: SpecError| SpecError::ProcessFile {
        path: path.to_owned(),
        error: Box::new(error.relative_to("process")),
    };
    let (wire, _) = serde_json_core::from_slice::<WireProcess<'_>>(json)
        .map_err(|e| in_file(json_error(json, e)))?;
    if let Some(name) = wire.unsupported() {
        return Err(in_file(SpecError::Unsupported(Field::new(name))));
    }
    convert_process(wire).map_err(in_file)
}

/// A parse error of serde-json-core, which names no property: where it is a
/// key given twice (its generic "does not match" error), the key and object.
fn json_error(json: &[u8], error: serde_json_core::de::Error) -> SpecError {
    match wire::duplicate_key(json) {
        Some(duplicate) => SpecError::DuplicateKey(duplicate),
        None => SpecError::Json(error),
    }
}

/// The contents of `path`, refused if larger than [`MAX_CONFIG_BYTES`].
fn read_bounded(path: &Path) -> Result<Vec<u8>, SpecError> {
    let read_error = |source| SpecError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    crate::file::read_capped(file, MAX_CONFIG_BYTES)
        .map_err(read_error)?
        .ok_or_else(|| SpecError::TooBig {
            path: path.to_owned(),
        })
}

impl Process {
    /// The process with `overrides` applied, as `husk exec`'s flags apply to
    /// the process it starts from.
    pub fn overridden(mut self, overrides: &ProcessOverrides) -> Self {
        if !overrides.args.is_empty() {
            self.args.clone_from(&overrides.args);
        }
        for entry in &overrides.env {
            let name = env_name(entry);
            match self.env.iter_mut().find(|e| env_name(e) == name) {
                Some(existing) => existing.clone_from(entry),
                None => self.env.push(entry.clone()),
            }
        }
        if let Some(cwd) = &overrides.cwd {
            self.cwd = cwd.clone();
        }
        if let Some(uid) = overrides.uid {
            self.user.uid = uid;
        }
        if let Some(gid) = overrides.gid {
            self.user.gid = gid;
        }
        self
    }
}

/// The name of an environment entry: what comes before its first `=`.
fn env_name(entry: &CString) -> &[u8] {
    let bytes = entry.as_bytes();
    bytes.split(|&b| b == b'=').next().unwrap_or(bytes)
}

impl ContainerPath {
    /// The path, starting with `/`.
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// `path` normalised, or why it is not a container path ("must be an
    /// absolute path").
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, &'static str> {
        let path = path.into();
        if !path.is_absolute() {
            return Err("must be an absolute path");
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err("must not contain '..'");
        }
        Ok(Self(path.components().collect()))
    }

    fn parse(field: Field, path: String) -> Result<Self, SpecError> {
        Self::new(path).map_err(|reason| invalid(field, reason))
    }
}

impl NamespaceKind {
    /// The name used in `linux.namespaces[].type`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mount => "mount",
            Self::Pid => "pid",
            Self::Uts => "uts",
            Self::Ipc => "ipc",
            Self::Net => "network",
            Self::User => "user",
            Self::Cgroup => "cgroup",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [
            Self::Mount,
            Self::Pid,
            Self::Uts,
            Self::Ipc,
            Self::Net,
            Self::User,
            Self::Cgroup,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

impl NamespaceSet {
    /// Whether the set has a namespace of `kind`, new or joined.
    pub fn contains(&self, kind: NamespaceKind) -> bool {
        self.get(kind).is_some()
    }

    /// The namespace of `kind`, if any.
    pub fn get(&self, kind: NamespaceKind) -> Option<&Namespace> {
        self.0.iter().find(|ns| ns.kind == kind)
    }

    /// All namespaces, in `config.json` order.
    pub fn iter(&self) -> impl Iterator<Item = &Namespace> {
        self.0.iter()
    }
}

impl ContainerSpec {
    /// `/dev`, if the last entry of `mounts` there is a tmpfs: husk then fills
    /// it with a minimal set of device nodes. Without such a mount the
    /// rootfs's own `/dev` is left alone.
    pub fn dev_tmpfs(&self) -> Option<&ContainerPath> {
        self.mounts
            .iter()
            .rev()
            .find(|m| m.destination.as_path() == Path::new("/dev"))
            .filter(|m| {
                matches!(
                    m.kind,
                    MountKind::Fs {
                        fstype: FsType::Tmpfs,
                        ..
                    }
                )
            })
            .map(|m| &m.destination)
    }
}

/// The capabilities by number, as `<linux/capability.h>` of Linux 5.9 has them.
pub const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

impl Capability {
    /// The number the kernel knows it by.
    pub fn number(self) -> u8 {
        self.0
    }

    /// The name, such as `CAP_CHOWN`.
    pub fn name(self) -> &'static str {
        CAPABILITY_NAMES[usize::from(self.0)]
    }

    /// The capability numbered `number`, if husk knows it.
    pub fn from_number(number: u8) -> Option<Self> {
        (usize::from(number) < CAPABILITY_NAMES.len()).then_some(Self(number))
    }

    fn from_name(name: &str) -> Option<Self> {
        let number = CAPABILITY_NAMES.iter().position(|&n| n == name)?;
        Some(Self(number as u8))
    }
}

impl CapSet {
    /// The set as the kernel's bit mask: bit n is capability n.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// Whether the set has capability number `number`.
    pub fn contains(self, number: u8) -> bool {
        number < 64 && self.0 & (1 << number) != 0
    }

    /// The capabilities in the set, by number.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        (0..CAPABILITY_NAMES.len() as u8)
            .filter(move |&n| self.contains(n))
            .map(Capability)
    }

    /// The set without the capabilities above `last_cap`.
    fn limited_to(self, last_cap: u8) -> Self {
        match 1u64.checked_shl(u32::from(last_cap) + 1) {
            Some(limit) => Self(self.0 & (limit - 1)),
            None => self,
        }
    }
}

impl Capabilities {
    /// The sets without the capabilities above `last_cap`, the kernel's
    /// `CAP_LAST_CAP` (`/proc/sys/kernel/cap_last_cap`): as runc does, a
    /// capability this kernel does not know is dropped, not an error.
    pub fn limited_to(self, last_cap: u8) -> Self {
        Self {
            bounding: self.bounding.limited_to(last_cap),
            effective: self.effective.limited_to(last_cap),
            inheritable: self.inheritable.limited_to(last_cap),
            permitted: self.permitted.limited_to(last_cap),
            ambient: self.ambient.limited_to(last_cap),
        }
    }
}

impl fmt::Display for CapSet {
    /// The names joined by `|`, or `-` for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("-");
        }
        for (i, cap) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            f.write_str(cap.name())?;
        }
        Ok(())
    }
}

impl FsType {
    /// The name the kernel knows the filesystem by.
    pub fn name(self) -> &'static str {
        match self {
            Self::Proc => "proc",
            Self::Tmpfs => "tmpfs",
            Self::Sysfs => "sysfs",
            Self::Devpts => "devpts",
            Self::Mqueue => "mqueue",
            Self::Cgroup2 => "cgroup2",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        if name == "cgroup" {
            return Some(Self::Cgroup2);
        }
        [
            Self::Proc,
            Self::Tmpfs,
            Self::Sysfs,
            Self::Devpts,
            Self::Mqueue,
            Self::Cgroup2,
        ]
        .into_iter()
        .find(|fs| fs.name() == name)
    }
}

impl SpecError {
    /// The error with its properties named relative to `parent`: `args`
    /// rather than `process.args`.
    fn relative_to(self, parent: &str) -> Self {
        let field = |field: Field| field.relative_to(parent);
        match self {
            Self::Missing(f) => Self::Missing(field(f)),
            Self::Unsupported(f) => Self::Unsupported(field(f)),
            Self::UnsupportedValue { field: f, value } => Self::UnsupportedValue {
                field: field(f),
                value,
            },
            Self::Wire(e) => Self::Wire(e.relative_to(parent)),
            Self::Invalid { field: f, reason } => Self::Invalid {
                field: field(f),
                reason,
            },
            Self::Value {
                field: f,
                value,
                reason,
            } => Self::Value {
                field: field(f),
                value,
                reason,
            },
            other => other,
        }
    }

    /// What is wrong inside the document, without naming the document.
    fn fmt_inside(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "invalid JSON: {e}"),
            Self::DuplicateKey(d) => write!(f, "invalid JSON: {d}"),
            Self::Missing(field) => write!(f, "{field} is required"),
            Self::Unsupported(field) => write!(f, "{field} is not supported yet"),
            Self::UnsupportedValue { field, value } => {
                write!(f, "{field}: {value} is not supported yet")
            }
            Self::Wire(e) => write!(f, "{e}"),
            Self::Invalid { field, reason } => write!(f, "{field} {reason}"),
            Self::Value {
                field,
                value,
                reason,
            } => write!(f, "{field}: {value} {reason}"),
            Self::Cgroup(e) => write!(f, "{e}"),
            Self::Seccomp(e) => write!(f, "{e}"),
            Self::Read { .. } | Self::TooBig { .. } | Self::ProcessFile { .. } => {
                write!(f, "{self}")
            }
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, .. } => write!(f, "reading {}", path.display()),
            Self::TooBig { path } => write!(
                f,
                "{} is larger than {MAX_CONFIG_BYTES} bytes",
                path.display()
            ),
            Self::ProcessFile { path, error } => {
                write!(f, "{}: ", path.display())?;
                error.fmt_inside(f)
            }
            inside => {
                f.write_str("config.json: ")?;
                inside.fmt_inside(f)
            }
        }
    }
}

impl std::error::Error for SpecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Cgroup(e) => e.source(),
            Self::Seccomp(e) => e.source(),
            Self::ProcessFile { error, .. } => error.source(),
            _ => None,
        }
    }
}

impl From<WireError> for SpecError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

// The wire layer. Field names follow the spec (camelCase); `Option<IgnoredAny>`
// fields are properties husk rejects, see `reject_unsupported`.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireConfig<'a> {
    #[serde(borrow)]
    oci_version: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    process: Option<WireProcess<'a>>,
    #[serde(borrow)]
    root: Option<WireRoot<'a>>,
    #[serde(borrow)]
    hostname: Option<EscapedStr<'a>>,
    domainname: Option<IgnoredAny>,
    #[serde(borrow)]
    mounts: Option<HeapCapped<WireMount<'a>, MAX_MOUNTS>>,
    #[serde(borrow)]
    hooks: Option<WireHooks<'a>>,
    #[serde(borrow)]
    linux: Option<WireLinux<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHooks<'a> {
    #[serde(borrow)]
    prestart: Option<HeapCapped<WireHook<'a>, MAX_HOOKS>>,
    #[serde(borrow)]
    create_runtime: Option<HeapCapped<WireHook<'a>, MAX_HOOKS>>,
    #[serde(borrow)]
    create_container: Option<HeapCapped<WireHook<'a>, MAX_HOOKS>>,
    #[serde(borrow)]
    start_container: Option<HeapCapped<WireHook<'a>, MAX_HOOKS>>,
    #[serde(borrow)]
    poststart: Option<HeapCapped<WireHook<'a>, MAX_HOOKS>>,
    #[serde(borrow)]
    poststop: Option<HeapCapped<WireHook<'a>, MAX_HOOKS>>,
}

#[derive(Deserialize)]
struct WireHook<'a> {
    #[serde(borrow)]
    path: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    args: Option<HeapCapped<EscapedStr<'a>, MAX_HOOK_STRINGS>>,
    #[serde(borrow)]
    env: Option<HeapCapped<EscapedStr<'a>, MAX_HOOK_STRINGS>>,
    timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireProcess<'a> {
    terminal: Option<bool>,
    console_size: Option<WireConsoleSize>,
    user: Option<WireUser>,
    #[serde(borrow)]
    args: Option<HeapCapped<EscapedStr<'a>, MAX_ARGS>>,
    #[serde(borrow)]
    env: Option<HeapCapped<EscapedStr<'a>, MAX_ENV>>,
    #[serde(borrow)]
    cwd: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    capabilities: Option<WireCapabilities<'a>>,
    #[serde(borrow)]
    rlimits: Option<HeapCapped<WireRlimit<'a>, MAX_RLIMITS>>,
    no_new_privileges: Option<bool>,
    apparmor_profile: Option<IgnoredAny>,
    oom_score_adj: Option<i32>,
    selinux_label: Option<IgnoredAny>,
    io_priority: Option<IgnoredAny>,
    scheduler: Option<IgnoredAny>,
    #[serde(rename = "execCPUAffinity")]
    exec_cpu_affinity: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct WireConsoleSize {
    height: Option<u32>,
    width: Option<u32>,
}

#[derive(Deserialize)]
struct WireCapabilities<'a> {
    #[serde(borrow)]
    bounding: Option<HeapCapped<EscapedStr<'a>, MAX_CAPABILITIES>>,
    #[serde(borrow)]
    effective: Option<HeapCapped<EscapedStr<'a>, MAX_CAPABILITIES>>,
    #[serde(borrow)]
    inheritable: Option<HeapCapped<EscapedStr<'a>, MAX_CAPABILITIES>>,
    #[serde(borrow)]
    permitted: Option<HeapCapped<EscapedStr<'a>, MAX_CAPABILITIES>>,
    #[serde(borrow)]
    ambient: Option<HeapCapped<EscapedStr<'a>, MAX_CAPABILITIES>>,
}

#[derive(Deserialize)]
struct WireRlimit<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<EscapedStr<'a>>,
    hard: Option<u64>,
    soft: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUser {
    uid: Option<u32>,
    gid: Option<u32>,
    umask: Option<u32>,
    additional_gids: Option<HeapCapped<u32, MAX_GROUPS>>,
}

#[derive(Deserialize)]
struct WireRoot<'a> {
    #[serde(borrow)]
    path: Option<EscapedStr<'a>>,
    readonly: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMount<'a> {
    #[serde(borrow)]
    destination: Option<EscapedStr<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    source: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    options: Option<HeapCapped<EscapedStr<'a>, MAX_MOUNT_OPTIONS>>,
    uid_mappings: Option<IgnoredAny>,
    gid_mappings: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireLinux<'a> {
    #[serde(borrow)]
    namespaces: Option<HeapCapped<WireNamespace<'a>, MAX_NAMESPACES>>,
    uid_mappings: Option<HeapCapped<WireIdMapping, MAX_ID_MAPPINGS>>,
    gid_mappings: Option<HeapCapped<WireIdMapping, MAX_ID_MAPPINGS>>,
    time_offsets: Option<IgnoredAny>,
    #[serde(borrow)]
    devices: Option<HeapCapped<WireDevice<'a>, MAX_DEVICES>>,
    #[serde(borrow)]
    cgroups_path: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    resources: Option<WireResources<'a>>,
    intel_rdt: Option<IgnoredAny>,
    #[serde(borrow)]
    sysctl: Option<CappedMap<'a, MAX_SYSCTLS>>,
    #[serde(borrow)]
    seccomp: Option<WireSeccomp<'a>>,
    #[serde(borrow)]
    rootfs_propagation: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    masked_paths: Option<HeapCapped<EscapedStr<'a>, MAX_MASKED_PATHS>>,
    #[serde(borrow)]
    readonly_paths: Option<HeapCapped<EscapedStr<'a>, MAX_READONLY_PATHS>>,
    mount_label: Option<IgnoredAny>,
    personality: Option<IgnoredAny>,
    memory_policy: Option<IgnoredAny>,
    net_devices: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct WireIdMapping {
    #[serde(rename = "containerID")]
    container_id: Option<u32>,
    #[serde(rename = "hostID")]
    host_id: Option<u32>,
    size: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDevice<'a> {
    #[serde(borrow)]
    path: Option<EscapedStr<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<EscapedStr<'a>>,
    major: Option<i64>,
    minor: Option<i64>,
    file_mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Deserialize)]
struct WireNamespace<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    path: Option<EscapedStr<'a>>,
}

/// Fails on the first property, in the spec's order, that husk does not implement yet.
fn reject_unsupported(wire: &WireConfig<'_>) -> Result<(), SpecError> {
    let unsupported = wire
        .process
        .as_ref()
        .and_then(WireProcess::unsupported)
        .or_else(|| first_present(&[("domainname", wire.domainname.is_some())]))
        .or_else(|| wire.linux.as_ref().and_then(WireLinux::unsupported));
    match unsupported {
        Some(name) => Err(SpecError::Unsupported(Field::new(name))),
        None => Ok(()),
    }
}

impl WireProcess<'_> {
    fn unsupported(&self) -> Option<&'static str> {
        first_present(&[
            ("process.apparmorProfile", self.apparmor_profile.is_some()),
            ("process.selinuxLabel", self.selinux_label.is_some()),
            ("process.ioPriority", self.io_priority.is_some()),
            ("process.scheduler", self.scheduler.is_some()),
            ("process.execCPUAffinity", self.exec_cpu_affinity.is_some()),
        ])
    }
}

impl WireLinux<'_> {
    fn unsupported(&self) -> Option<&'static str> {
        first_present(&[
            ("linux.timeOffsets", self.time_offsets.is_some()),
            ("linux.intelRdt", self.intel_rdt.is_some()),
            ("linux.mountLabel", self.mount_label.is_some()),
            ("linux.personality", self.personality.is_some()),
            ("linux.memoryPolicy", self.memory_policy.is_some()),
            ("linux.netDevices", self.net_devices.is_some()),
        ])
    }
}

fn first_present(properties: &[(&'static str, bool)]) -> Option<&'static str> {
    properties
        .iter()
        .find(|&&(_, present)| present)
        .map(|&(name, _)| name)
}

fn convert(wire: WireConfig<'_>, bundle: &Path) -> Result<ContainerSpec, SpecError> {
    const OCI_VERSION: Field = Field::new("ociVersion");
    let version = required(OCI_VERSION, wire.oci_version)?;
    if !unescape(OCI_VERSION, version, MAX_STRING)?.starts_with("1.") {
        return Err(invalid(OCI_VERSION, "must be 1.x"));
    }

    let process = wire
        .process
        .ok_or(SpecError::Missing(Field::new("process")))
        .and_then(convert_process)?;
    let hooks = wire
        .hooks
        .map(convert_hooks)
        .transpose()?
        .unwrap_or_default();

    let root = wire.root.ok_or(SpecError::Missing(Field::new("root")))?;
    const ROOT_PATH: Field = Field::new("root.path");
    let root_path = unescape(ROOT_PATH, required(ROOT_PATH, root.path)?, MAX_PATH)?;

    let linux = wire.linux.unwrap_or_default();
    let namespaces = convert_namespaces(linux.namespaces)?;
    let id_mappings = convert_id_mappings(&namespaces, linux.uid_mappings, linux.gid_mappings)?;
    const CGROUPS_PATH: Field = Field::new("linux.cgroupsPath");
    let cgroups_path = linux
        .cgroups_path
        .map(|p| unescape(CGROUPS_PATH, p, MAX_PATH))
        .transpose()?;
    let mut resources = linux
        .resources
        .map(Resources::from_wire)
        .transpose()
        .map_err(SpecError::Cgroup)?
        .unwrap_or_default();
    let seccomp = linux.seccomp.map(convert_seccomp).transpose()?;
    let devices = linux
        .devices
        .map(convert_devices)
        .transpose()?
        .unwrap_or_default();
    resources.implied_devices = devices.iter().filter_map(DeviceNode::mknod_rule).collect();
    let masked_paths = convert_paths(Field::new("linux.maskedPaths"), linux.masked_paths)?;
    let readonly_paths = convert_paths(Field::new("linux.readonlyPaths"), linux.readonly_paths)?;

    const HOSTNAME: Field = Field::new("hostname");
    let hostname = wire
        .hostname
        .map(|h| unescape(HOSTNAME, h, MAX_HOSTNAME))
        .transpose()?;
    if hostname.is_some() && !namespaces.contains(NamespaceKind::Uts) {
        return Err(invalid(HOSTNAME, "requires a uts namespace"));
    }

    let mounts = wire
        .mounts
        .unwrap_or_default()
        .into_items(Field::new("mounts"))?
        .into_iter()
        .enumerate()
        .map(|(i, m)| convert_mount(Field::new("mounts").at(i), m, bundle))
        .collect::<Result<Vec<_>, _>>()?;
    let new_cgroupns = matches!(
        namespaces.get(NamespaceKind::Cgroup),
        Some(Namespace { path: None, .. })
    );
    const ROOTFS_PROPAGATION: Field = Field::new("linux.rootfsPropagation");
    let rootfs_propagation = match linux.rootfs_propagation {
        None => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        Some(name) => {
            let name = unescape(ROOTFS_PROPAGATION, name, MAX_STRING)?;
            match propagation(&name) {
                // pivot_root refuses a root under a shared mount; runc makes
                // the rootfs's parent private for it, husk does not yet.
                Some(flags) if !flags.contains(MsFlags::MS_SHARED) => flags,
                Some(_) => {
                    return Err(SpecError::UnsupportedValue {
                        field: ROOTFS_PROPAGATION,
                        value: name,
                    })
                }
                None => return Err(invalid(ROOTFS_PROPAGATION, "is not a propagation option")),
            }
        }
    };
    let cgroup_mount = mounts.iter().position(|m| {
        matches!(
            m.kind,
            MountKind::Fs {
                fstype: FsType::Cgroup2,
                ..
            }
        )
    });
    if let (Some(i), false) = (cgroup_mount, new_cgroupns) {
        return Err(invalid(
            Field::new("mounts").at(i).member("type"),
            "needs a new cgroup namespace (without one, cgroup2 shows the host's whole hierarchy)",
        ));
    }
    let sysctl = match linux.sysctl {
        Some(sysctl) => convert_sysctl(sysctl, &namespaces, &mounts)?,
        None => Vec::new(),
    };

    Ok(ContainerSpec {
        process,
        root: bundle.join(root_path),
        root_readonly: root.readonly.unwrap_or(false),
        hostname,
        namespaces,
        id_mappings,
        mounts,
        rootfs_propagation,
        cgroups_path,
        resources,
        seccomp,
        sysctl,
        masked_paths,
        readonly_paths,
        devices,
        hooks,
        reaper: false,
    })
}

/// Validates `linux.devices` as runc reads it: `c` and `u` are character
/// devices, `b` block devices, `p` fifos (whose numbers are ignored); the path
/// must be below `/dev` and is resolved like a mount destination later; file
/// type bits in `fileMode` are dropped.
fn convert_devices(
    devices: HeapCapped<WireDevice<'_>, MAX_DEVICES>,
) -> Result<Vec<DeviceNode>, SpecError> {
    const DEVICES: Field = Field::new("linux.devices");
    const S_IFMT: u32 = 0o170_000;
    let devices = devices.into_items(DEVICES)?;
    let mut nodes: Vec<DeviceNode> = Vec::with_capacity(devices.len());
    for (i, device) in devices.into_iter().enumerate() {
        let field = DEVICES.at(i);
        let path_field = field.member("path");
        let path = unescape(path_field, required(path_field, device.path)?, MAX_PATH)?;
        let path = ContainerPath::parse(path_field, path)?;
        let mut components = path.as_path().components().skip(1);
        if components.next() != Some(Component::Normal("dev".as_ref()))
            || components.next().is_none()
        {
            return Err(invalid(path_field, "must be below /dev"));
        }
        if nodes.iter().any(|n| n.path == path) {
            return Err(invalid(path_field, "is listed twice"));
        }
        let type_field = field.member("type");
        let kind = unescape(type_field, required(type_field, device.kind)?, MAX_STRING)?;
        let kind = match kind.as_str() {
            "c" | "u" => NodeKind::Char,
            "b" => NodeKind::Block,
            "p" => NodeKind::Fifo,
            _ => return Err(invalid(type_field, "must be c, u, b or p")),
        };
        let number = |member: &'static str, value: Option<i64>, max: u32| {
            if kind == NodeKind::Fifo {
                return Ok(0);
            }
            let field = field.member(member);
            u32::try_from(required(field, value)?)
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| invalid(field, "must be a device number"))
        };
        let major = number("major", device.major, crate::cgroup::MAX_MAJOR)?;
        let minor = number("minor", device.minor, crate::cgroup::MAX_MINOR)?;
        let mode = match device.file_mode.map(|m| m & !S_IFMT) {
            None => 0o666,
            Some(mode) if mode <= 0o7777 => mode,
            Some(_) => return Err(invalid(field.member("fileMode"), "must be a file mode")),
        };
        nodes.push(DeviceNode {
            path,
            kind,
            major,
            minor,
            mode,
            uid: device.uid.unwrap_or(0),
            gid: device.gid.unwrap_or(0),
        });
    }
    Ok(nodes)
}

fn convert_hooks(wire: WireHooks<'_>) -> Result<Hooks, SpecError> {
    let kind = |field: Field, list: Option<HeapCapped<WireHook<'_>, MAX_HOOKS>>| {
        list.unwrap_or_default()
            .into_items(field)?
            .into_iter()
            .enumerate()
            .map(|(i, hook)| convert_hook(field.at(i), hook))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut create_runtime = kind(Field::new("hooks.prestart"), wire.prestart)?;
    create_runtime.extend(kind(
        Field::new("hooks.createRuntime"),
        wire.create_runtime,
    )?);
    Ok(Hooks {
        create_runtime,
        create_container: kind(Field::new("hooks.createContainer"), wire.create_container)?,
        start_container: kind(Field::new("hooks.startContainer"), wire.start_container)?,
        poststart: kind(Field::new("hooks.poststart"), wire.poststart)?,
        poststop: kind(Field::new("hooks.poststop"), wire.poststop)?,
    })
}

fn convert_hook(field: Field, wire: WireHook<'_>) -> Result<Hook, SpecError> {
    let path_field = field.member("path");
    let path = unescape(path_field, required(path_field, wire.path)?, MAX_PATH)?;
    if !path.starts_with('/') {
        return Err(invalid(path_field, "must be an absolute path"));
    }
    let strings = |member: &'static str,
                   list: Option<HeapCapped<EscapedStr<'_>, MAX_HOOK_STRINGS>>| {
        let list_field = field.member(member);
        list.unwrap_or_default()
            .into_items(list_field)?
            .into_iter()
            .enumerate()
            .map(|(i, s)| c_string(list_field.at(i), s).map(|c| c.to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, SpecError>>()
    };
    let env = strings("env", wire.env)?;
    if let Some(i) = env
        .iter()
        .position(|e| e.find('=').is_none_or(|at| at == 0))
    {
        return Err(invalid(
            field.member("env").at(i),
            "must have the form NAME=VALUE",
        ));
    }
    let timeout = match wire.timeout {
        None => None,
        Some(secs @ 1..) => Some(std::time::Duration::from_secs(secs as u64)),
        Some(_) => {
            return Err(invalid(
                field.member("timeout"),
                "must be greater than zero",
            ))
        }
    };
    Ok(Hook {
        path: PathBuf::from(path),
        args: strings("args", wire.args)?,
        env,
        timeout,
    })
}

fn convert_process(process: WireProcess<'_>) -> Result<Process, SpecError> {
    let args = convert_args(process.args)?;
    let env = convert_env(process.env)?;
    const CWD: Field = Field::new("process.cwd");
    let cwd = ContainerPath::parse(CWD, unescape(CWD, required(CWD, process.cwd)?, MAX_PATH)?)?;
    let user = process
        .user
        .map(convert_user)
        .transpose()?
        .unwrap_or_default();
    let rlimits = convert_rlimits(process.rlimits)?;
    let capabilities = process.capabilities.map(convert_capabilities).transpose()?;
    const OOM_SCORE_ADJ: Field = Field::new("process.oomScoreAdj");
    let oom_score_adj = process
        .oom_score_adj
        .map(|adj| match adj {
            -1000..=1000 => Ok(adj),
            _ => Err(invalid(OOM_SCORE_ADJ, "must be between -1000 and 1000")),
        })
        .transpose()?;
    let console_size = process.console_size.map(convert_console_size).transpose()?;
    Ok(Process {
        args,
        env,
        cwd,
        user,
        rlimits,
        oom_score_adj,
        no_new_privileges: process.no_new_privileges.unwrap_or(false),
        capabilities,
        terminal: process.terminal.unwrap_or(false),
        console_size,
    })
}

fn convert_console_size(size: WireConsoleSize) -> Result<ConsoleSize, SpecError> {
    let cells = |field: Field, value: Option<u32>| {
        u16::try_from(required(field, value)?).map_err(|_| invalid(field, "must be at most 65535"))
    };
    Ok(ConsoleSize {
        height: cells(Field::new("process.consoleSize.height"), size.height)?,
        width: cells(Field::new("process.consoleSize.width"), size.width)?,
    })
}

/// The resource limits by name, as `getrlimit(2)` lists them.
const RLIMITS: [(&str, Resource); 16] = [
    ("RLIMIT_AS", Resource::RLIMIT_AS),
    ("RLIMIT_CORE", Resource::RLIMIT_CORE),
    ("RLIMIT_CPU", Resource::RLIMIT_CPU),
    ("RLIMIT_DATA", Resource::RLIMIT_DATA),
    ("RLIMIT_FSIZE", Resource::RLIMIT_FSIZE),
    ("RLIMIT_LOCKS", Resource::RLIMIT_LOCKS),
    ("RLIMIT_MEMLOCK", Resource::RLIMIT_MEMLOCK),
    ("RLIMIT_MSGQUEUE", Resource::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", Resource::RLIMIT_NICE),
    ("RLIMIT_NOFILE", Resource::RLIMIT_NOFILE),
    ("RLIMIT_NPROC", Resource::RLIMIT_NPROC),
    ("RLIMIT_RSS", Resource::RLIMIT_RSS),
    ("RLIMIT_RTPRIO", Resource::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", Resource::RLIMIT_RTTIME),
    ("RLIMIT_SIGPENDING", Resource::RLIMIT_SIGPENDING),
    ("RLIMIT_STACK", Resource::RLIMIT_STACK),
];

fn convert_rlimits(
    rlimits: Option<HeapCapped<WireRlimit<'_>, MAX_RLIMITS>>,
) -> Result<Vec<Rlimit>, SpecError> {
    const RLIMITS_FIELD: Field = Field::new("process.rlimits");
    let Some(rlimits) = rlimits else {
        return Ok(Vec::new());
    };
    let mut converted: Vec<Rlimit> = Vec::new();
    for (i, wire) in rlimits.into_items(RLIMITS_FIELD)?.into_iter().enumerate() {
        let field = RLIMITS_FIELD.at(i);
        let kind = required(field.member("type"), wire.kind)?;
        let kind = unescape(field.member("type"), kind, MAX_STRING)?;
        let Some(&(name, resource)) = RLIMITS.iter().find(|(name, _)| *name == kind) else {
            return Err(SpecError::Value {
                field: field.member("type"),
                value: kind,
                reason: "is not a resource limit",
            });
        };
        if converted.iter().any(|r| r.resource == resource) {
            return Err(invalid(field, "repeats an earlier type"));
        }
        let hard = required(field.member("hard"), wire.hard)?;
        let soft = required(field.member("soft"), wire.soft)?;
        if soft > hard {
            return Err(invalid(
                field.member("soft"),
                "must not be greater than hard",
            ));
        }
        converted.push(Rlimit {
            name,
            resource,
            soft,
            hard,
        });
    }
    Ok(converted)
}

fn convert_capabilities(wire: WireCapabilities<'_>) -> Result<Capabilities, SpecError> {
    let any = CapSet(u64::MAX);
    let bounding = convert_cap_set("process.capabilities.bounding", wire.bounding, any)?;
    let effective = convert_cap_set("process.capabilities.effective", wire.effective, any)?;
    let inheritable = convert_cap_set("process.capabilities.inheritable", wire.inheritable, any)?;
    let permitted = convert_cap_set("process.capabilities.permitted", wire.permitted, any)?;
    // The kernel refuses to raise an ambient capability that is not both
    // permitted and inheritable; runc only warns, husk says so at create.
    let raisable = CapSet(permitted.0 & inheritable.0);
    let ambient = convert_cap_set("process.capabilities.ambient", wire.ambient, raisable)?;
    Ok(Capabilities {
        bounding,
        effective,
        inheritable,
        permitted,
        ambient,
    })
}

/// One set of `process.capabilities`, each entry a capability in `allowed`.
fn convert_cap_set(
    name: &'static str,
    list: Option<HeapCapped<EscapedStr<'_>, MAX_CAPABILITIES>>,
    allowed: CapSet,
) -> Result<CapSet, SpecError> {
    let field = Field::new(name);
    let mut set = CapSet::default();
    let Some(list) = list else {
        return Ok(set);
    };
    for (i, name) in list.into_items(field)?.into_iter().enumerate() {
        let name = unescape(field.at(i), name, MAX_STRING)?;
        let refuse = |reason| SpecError::Value {
            field: field.at(i),
            value: name.clone(),
            reason,
        };
        let cap = Capability::from_name(&name).ok_or_else(|| refuse("is not a capability"))?;
        if !allowed.contains(cap.0) {
            return Err(refuse("must also be in permitted and inheritable"));
        }
        set.0 |= 1 << cap.0;
    }
    Ok(set)
}

fn convert_seccomp(wire: WireSeccomp<'_>) -> Result<seccomp::Filter, SpecError> {
    let profile = Profile::try_from(wire).map_err(SpecError::Seccomp)?;
    let native = Arch::native().ok_or(invalid(
        Field::new("linux.seccomp"),
        "is not supported on this architecture",
    ))?;
    profile.compile(native).map_err(SpecError::Seccomp)
}

fn convert_paths<const N: usize>(
    field: Field,
    paths: Option<HeapCapped<EscapedStr<'_>, N>>,
) -> Result<Vec<ContainerPath>, SpecError> {
    let Some(paths) = paths else {
        return Ok(Vec::new());
    };
    paths
        .into_items(field)?
        .into_iter()
        .enumerate()
        .map(|(i, path)| ContainerPath::parse(field.at(i), unescape(field.at(i), path, MAX_PATH)?))
        .collect()
}

/// Accepts the keys runc accepts: those of the container's own IPC namespace
/// (`kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`) and, with a new
/// network namespace, `net.*`. A key is dotted (`net.ipv4.ip_forward`) or, if
/// it has a `/`, slashed (`net/ipv4/conf/eth0.1/forwarding`), as sysctl(8)
/// accepts it.
fn convert_sysctl(
    wire: CappedMap<'_, MAX_SYSCTLS>,
    namespaces: &NamespaceSet,
    mounts: &[Mount],
) -> Result<Vec<Sysctl>, SpecError> {
    const SYSCTL: Field = Field::new("linux.sysctl");
    let entries = wire.into_entries(SYSCTL)?;
    let proc_mounted = mounts.iter().any(|m| {
        m.destination.as_path() == Path::new("/proc")
            && matches!(
                m.kind,
                MountKind::Fs {
                    fstype: FsType::Proc,
                    ..
                }
            )
    });
    if !entries.is_empty() && !proc_mounted {
        return Err(invalid(SYSCTL, "requires a proc mount at /proc"));
    }
    let new_net = matches!(
        namespaces.get(NamespaceKind::Net),
        Some(Namespace { path: None, .. })
    );
    let ipc = namespaces.contains(NamespaceKind::Ipc);
    let mut sysctl = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let name = unescape(SYSCTL, key, MAX_SYSCTL_NAME)?;
        let value = unescape(SYSCTL, value, MAX_STRING)?;
        let refuse = |reason| SpecError::Value {
            field: SYSCTL,
            value: name.clone(),
            reason,
        };
        let separator = if name.contains('/') { '/' } else { '.' };
        let parts: Vec<&str> = name.split(separator).collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(refuse("is not a sysctl name"));
        }
        let ipc_key = "requires an ipc namespace";
        let namespace = match parts[..] {
            ["net", _, ..] => Some((new_net, "requires a new network namespace")),
            ["fs", "mqueue", _] | ["kernel", "sem"] => Some((ipc, ipc_key)),
            ["kernel", key] if key.starts_with("msg") || key.starts_with("shm") => {
                Some((ipc, ipc_key))
            }
            _ => None,
        };
        match namespace {
            None => return Err(refuse("is not in a separate kernel namespace")),
            Some((false, reason)) => return Err(refuse(reason)),
            Some((true, _)) => {}
        }
        let path = parts
            .iter()
            .fold(PathBuf::from("/proc/sys"), |path, part| path.join(part));
        sysctl.push(Sysctl { name, path, value });
    }
    Ok(sysctl)
}

fn convert_args(
    args: Option<HeapCapped<EscapedStr<'_>, MAX_ARGS>>,
) -> Result<Vec<CString>, SpecError> {
    const ARGS: Field = Field::new("process.args");
    let args = required(ARGS, args)?.into_items(ARGS)?;
    if args.is_empty() {
        return Err(invalid(ARGS, "must not be empty"));
    }
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| c_string(ARGS.at(i), arg))
        .collect()
}

fn convert_env(
    env: Option<HeapCapped<EscapedStr<'_>, MAX_ENV>>,
) -> Result<Vec<CString>, SpecError> {
    const ENV: Field = Field::new("process.env");
    let Some(env) = env else {
        return Ok(Vec::new());
    };
    env.into_items(ENV)?
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let entry = c_string(ENV.at(i), entry)?;
            match entry.as_bytes().iter().position(|&b| b == b'=') {
                Some(1..) => Ok(entry),
                _ => Err(invalid(ENV.at(i), "must have the form NAME=VALUE")),
            }
        })
        .collect()
}

fn convert_user(user: WireUser) -> Result<User, SpecError> {
    const USER: Field = Field::new("process.user");
    let additional_gids = user
        .additional_gids
        .unwrap_or_default()
        .into_items(USER.member("additionalGids"))?
        .to_vec();
    Ok(User {
        uid: user.uid.ok_or(SpecError::Missing(USER.member("uid")))?,
        gid: user.gid.ok_or(SpecError::Missing(USER.member("gid")))?,
        additional_gids,
        umask: user.umask,
    })
}

fn convert_namespaces(
    namespaces: Option<HeapCapped<WireNamespace<'_>, MAX_NAMESPACES>>,
) -> Result<NamespaceSet, SpecError> {
    const NAMESPACES: Field = Field::new("linux.namespaces");
    let mut set = NamespaceSet::default();
    let wire = namespaces.unwrap_or_default().into_items(NAMESPACES)?;
    for (i, ns) in wire.into_iter().enumerate() {
        let field = NAMESPACES.at(i);
        let name = unescape(
            field.member("type"),
            required(field.member("type"), ns.kind)?,
            MAX_STRING,
        )?;
        let kind = NamespaceKind::from_name(&name).ok_or(SpecError::UnsupportedValue {
            field: field.member("type"),
            value: name,
        })?;
        if set.contains(kind) {
            return Err(invalid(field, "repeats an earlier namespace type"));
        }
        let path = ns
            .path
            .map(|p| unescape(field.member("path"), p, MAX_PATH).map(PathBuf::from))
            .transpose()?;
        if path.as_ref().is_some_and(|p| !p.is_absolute()) {
            return Err(invalid(field.member("path"), "must be an absolute path"));
        }
        set.0.push(Namespace { kind, path });
    }
    match set.get(NamespaceKind::Mount) {
        Some(Namespace { path: None, .. }) => {}
        _ => return Err(invalid(NAMESPACES, "must include a new mount namespace")),
    }
    Ok(set)
}

/// `linux.uidMappings` and `linux.gidMappings`: both required with a new user
/// namespace, refused without one (a joined namespace has its maps already).
fn convert_id_mappings(
    namespaces: &NamespaceSet,
    uids: Option<HeapCapped<WireIdMapping, MAX_ID_MAPPINGS>>,
    gids: Option<HeapCapped<WireIdMapping, MAX_ID_MAPPINGS>>,
) -> Result<Option<IdMappings>, SpecError> {
    const UIDS: Field = Field::new("linux.uidMappings");
    const GIDS: Field = Field::new("linux.gidMappings");
    let uids = uids.map(|m| convert_id_map(UIDS, m)).transpose()?;
    let gids = gids.map(|m| convert_id_map(GIDS, m)).transpose()?;
    let new_user = matches!(
        namespaces.get(NamespaceKind::User),
        Some(Namespace { path: None, .. })
    );
    match (new_user, uids, gids) {
        (true, Some(uids), Some(gids)) => Ok(Some(IdMappings { uids, gids })),
        (true, None, _) => Err(invalid(UIDS, "is required with a new user namespace")),
        (true, _, None) => Err(invalid(GIDS, "is required with a new user namespace")),
        (false, Some(_), _) => Err(invalid(UIDS, "needs a new user namespace")),
        (false, _, Some(_)) => Err(invalid(GIDS, "needs a new user namespace")),
        (false, None, None) => Ok(None),
    }
}

fn convert_id_map(
    field: Field,
    wire: HeapCapped<WireIdMapping, MAX_ID_MAPPINGS>,
) -> Result<Vec<IdMapping>, SpecError> {
    let wire = wire.into_items(field)?;
    if wire.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    let mut map: Vec<IdMapping> = Vec::with_capacity(wire.len());
    for (i, line) in wire.into_iter().enumerate() {
        let at = field.at(i);
        let mapping = IdMapping {
            container_id: required(at.member("containerID"), line.container_id)?,
            host_id: required(at.member("hostID"), line.host_id)?,
            size: required(at.member("size"), line.size)?,
        };
        let end = |start: u32| u64::from(start) + u64::from(mapping.size);
        if mapping.size == 0 {
            return Err(invalid(at.member("size"), "must be at least 1"));
        }
        if end(mapping.container_id) > 1 << 32 || end(mapping.host_id) > 1 << 32 {
            return Err(invalid(at, "goes past the last 32-bit id"));
        }
        let overlaps = |a: u32, b: u32, b_size: u32| {
            u64::from(a) < u64::from(b) + u64::from(b_size) && u64::from(b) < end(a)
        };
        if map
            .iter()
            .any(|m| overlaps(mapping.container_id, m.container_id, m.size))
        {
            return Err(invalid(at, "overlaps an earlier line inside the container"));
        }
        if map
            .iter()
            .any(|m| overlaps(mapping.host_id, m.host_id, m.size))
        {
            return Err(invalid(at, "overlaps an earlier line on the host"));
        }
        map.push(mapping);
    }
    Ok(map)
}

fn convert_mount(field: Field, wire: WireMount<'_>, bundle: &Path) -> Result<Mount, SpecError> {
    if wire.uid_mappings.is_some() {
        return Err(SpecError::Unsupported(field.member("uidMappings")));
    }
    if wire.gid_mappings.is_some() {
        return Err(SpecError::Unsupported(field.member("gidMappings")));
    }
    let destination_field = field.member("destination");
    let destination = required(destination_field, wire.destination)?;
    let destination = ContainerPath::parse(
        destination_field,
        unescape(destination_field, destination, MAX_PATH)?,
    )?;

    let options_field = field.member("options");
    let options = wire
        .options
        .unwrap_or_default()
        .into_items(options_field)?
        .into_iter()
        .map(|option| unescape(options_field, option, MAX_STRING))
        .collect::<Result<Vec<_>, _>>()?;
    let options = parse_mount_options(options.iter().map(String::as_str));

    let fstype = wire
        .kind
        .map(|kind| unescape(field.member("type"), kind, MAX_STRING))
        .transpose()?;
    let source = wire
        .source
        .map(|source| unescape(field.member("source"), source, MAX_PATH))
        .transpose()?;
    let kind = match (options.bind, fstype) {
        (Some(recursive), _) => MountKind::Bind {
            source: bundle.join(source.ok_or(SpecError::Missing(field.member("source")))?),
            recursive,
        },
        (None, Some(fstype)) if fstype == "bind" => MountKind::Bind {
            source: bundle.join(source.ok_or(SpecError::Missing(field.member("source")))?),
            recursive: false,
        },
        (None, Some(fstype)) => match FsType::from_name(&fstype) {
            Some(fs) => MountKind::Fs {
                fstype: fs,
                source: source.unwrap_or(fstype),
            },
            None => {
                return Err(SpecError::UnsupportedValue {
                    field: field.member("type"),
                    value: fstype,
                })
            }
        },
        (None, None) => return Err(SpecError::Missing(field.member("type"))),
    };
    Ok(Mount {
        destination,
        kind,
        flags: options.flags,
        data: options.data,
        propagation: options.propagation,
    })
}

/// Mount options split the way `mount(2)` wants them.
#[derive(Debug, PartialEq, Eq)]
struct MountOptions {
    flags: MsFlags,
    /// `Some(recursive)` for `bind` or `rbind`.
    bind: Option<bool>,
    data: String,
    /// The last propagation option.
    propagation: MsFlags,
}

/// Options that are mount flags: (name, flag, whether the option sets or clears it).
const FLAG_OPTIONS: &[(&str, MsFlags, bool)] = &[
    ("ro", MsFlags::MS_RDONLY, true),
    ("rw", MsFlags::MS_RDONLY, false),
    ("nosuid", MsFlags::MS_NOSUID, true),
    ("suid", MsFlags::MS_NOSUID, false),
    ("nodev", MsFlags::MS_NODEV, true),
    ("dev", MsFlags::MS_NODEV, false),
    ("noexec", MsFlags::MS_NOEXEC, true),
    ("exec", MsFlags::MS_NOEXEC, false),
    ("sync", MsFlags::MS_SYNCHRONOUS, true),
    ("async", MsFlags::MS_SYNCHRONOUS, false),
    ("dirsync", MsFlags::MS_DIRSYNC, true),
    ("noatime", MsFlags::MS_NOATIME, true),
    ("atime", MsFlags::MS_NOATIME, false),
    ("nodiratime", MsFlags::MS_NODIRATIME, true),
    ("diratime", MsFlags::MS_NODIRATIME, false),
    ("relatime", MsFlags::MS_RELATIME, true),
    ("norelatime", MsFlags::MS_RELATIME, false),
    ("strictatime", MsFlags::MS_STRICTATIME, true),
    ("nostrictatime", MsFlags::MS_STRICTATIME, false),
];

/// Propagation options, and the flags of the `mount(2)` call that sets them
/// (the `r` ones for the whole subtree).
const PROPAGATION_OPTIONS: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// The flags of a propagation option, if `name` is one.
fn propagation(name: &str) -> Option<MsFlags> {
    PROPAGATION_OPTIONS
        .iter()
        .find(|(option, _)| *option == name)
        .map(|&(_, flags)| flags)
}

/// Splits options into flags and filesystem data (`mode=755`, `size=64k`,
/// `newinstance`, anything unknown), which the kernel validates.
/// The mount options husk gives a meaning to (others go to the filesystem).
pub fn mount_option_names() -> impl Iterator<Item = &'static str> {
    FLAG_OPTIONS
        .iter()
        .map(|&(name, ..)| name)
        .chain(["bind", "rbind"])
        .chain(PROPAGATION_OPTIONS.iter().map(|&(name, _)| name))
}

fn parse_mount_options<'s>(options: impl IntoIterator<Item = &'s str>) -> MountOptions {
    let mut parsed = MountOptions {
        flags: MsFlags::empty(),
        bind: None,
        data: String::new(),
        propagation: MsFlags::empty(),
    };
    for option in options {
        if let Some(&(_, flag, set)) = FLAG_OPTIONS.iter().find(|(name, ..)| *name == option) {
            parsed.flags.set(flag, set);
        } else if option == "bind" || option == "rbind" {
            parsed.bind = Some(option == "rbind" || parsed.bind == Some(true));
        } else if let Some(flags) = propagation(option) {
            parsed.propagation = flags;
        } else {
            if !parsed.data.is_empty() {
                parsed.data.push(',');
            }
            parsed.data.push_str(option);
        }
    }
    parsed
}

fn required<T>(field: Field, value: Option<T>) -> Result<T, SpecError> {
    value.ok_or(SpecError::Missing(field))
}

fn invalid(field: Field, reason: &'static str) -> SpecError {
    SpecError::Invalid { field, reason }
}

fn c_string(field: Field, escaped: EscapedStr<'_>) -> Result<CString, SpecError> {
    CString::new(unescape(field, escaped, MAX_STRING)?).map_err(|_| invalid(field, wire::HAS_NUL))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str = "/bundles/b1";

    fn parse_str(json: &str) -> Result<ContainerSpec, SpecError> {
        parse(json.as_bytes(), Path::new(BUNDLE))
    }

    fn error(json: &str) -> String {
        parse_str(json)
            .expect_err("config should be rejected")
            .to_string()
    }

    /// A minimal valid config with `extra` spliced in at the top level.
    fn config(process: &str, extra: &str) -> String {
        format!(
            r#"{{"ociVersion": "1.0.2", "process": {{{process}}}, "root": {{"path": "rootfs"}},
                "linux": {{"namespaces": [{{"type": "mount"}}, {{"type": "uts"}}]}}{extra}}}"#
        )
    }

    const PROCESS: &str = r#""args": ["sh", "-c", "echo \"hi\""], "cwd": "/""#;

    #[test]
    fn terminal_and_console_size() {
        let spec = parse_str(&config(PROCESS, "")).unwrap();
        assert!(!spec.process.terminal);
        assert_eq!(spec.process.console_size, None);
        let process =
            format!(r#""terminal": true, "consoleSize": {{"height": 24, "width": 80}}, {PROCESS}"#);
        let spec = parse_str(&config(&process, "")).unwrap();
        assert!(spec.process.terminal);
        assert_eq!(
            spec.process.console_size,
            Some(ConsoleSize {
                height: 24,
                width: 80
            })
        );
        for (size, expected) in [
            (
                r#"{"width": 80}"#,
                "config.json: process.consoleSize.height is required",
            ),
            (
                r#"{"height": 70000, "width": 80}"#,
                "config.json: process.consoleSize.height must be at most 65535",
            ),
        ] {
            let process = format!(r#""consoleSize": {size}, {PROCESS}"#);
            assert_eq!(error(&config(&process, "")), expected);
        }
    }

    #[test]
    fn minimal_config() {
        let spec = parse_str(&config(PROCESS, "")).unwrap();
        assert_eq!(spec.process.args, [c"sh", c"-c", c"echo \"hi\""]);
        assert!(spec.process.env.is_empty());
        assert_eq!(spec.process.cwd.as_path(), Path::new("/"));
        assert_eq!(spec.process.user, User::default());
        assert_eq!(spec.root, Path::new("/bundles/b1/rootfs"));
        assert!(!spec.root_readonly);
        assert_eq!(spec.hostname, None);
        let kinds: Vec<_> = spec.namespaces.iter().map(|ns| ns.kind).collect();
        assert_eq!(kinds, [NamespaceKind::Mount, NamespaceKind::Uts]);
        assert!(spec.mounts.is_empty());
    }

    #[test]
    fn full_supported_config() {
        let json = r#"{
            "ociVersion": "1.2.0",
            "process": {
                "terminal": false,
                "user": {"uid": 1000, "gid": 100, "umask": 18, "additionalGids": [5, 6]},
                "args": ["/bin/app"],
                "env": ["PATH=/usr/bin:/bin", "EMPTY="],
                "cwd": "/srv/./app/",
                "noNewPrivileges": false
            },
            "root": {"path": "/abs/rootfs", "readonly": true},
            "hostname": "box",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/data", "source": "data", "options": ["rbind", "ro"]}
            ],
            "annotations": {"org.example": "x"},
            "somethingNew": [1, {"a": null}],
            "linux": {"namespaces": [
                {"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"},
                {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ], "futureField": true}
        }"#;
        let spec = parse_str(json).unwrap();
        assert_eq!(
            spec.process.user,
            User {
                uid: 1000,
                gid: 100,
                additional_gids: vec![5, 6],
                umask: Some(18)
            }
        );
        assert_eq!(spec.process.env, [c"PATH=/usr/bin:/bin", c"EMPTY="]);
        assert_eq!(spec.process.cwd.as_path(), Path::new("/srv/app"));
        assert_eq!(spec.root, Path::new("/abs/rootfs"));
        assert!(spec.root_readonly);
        assert_eq!(spec.hostname.as_deref(), Some("box"));
        let net = spec.namespaces.get(NamespaceKind::Net).unwrap();
        assert_eq!(net.path.as_deref(), Some(Path::new("/proc/1/ns/net")));
        assert_eq!(
            spec.mounts[1],
            Mount {
                destination: ContainerPath(PathBuf::from("/dev")),
                kind: MountKind::Fs {
                    fstype: FsType::Tmpfs,
                    source: "tmpfs".into()
                },
                flags: MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
                data: "mode=755,size=65536k".into(),
                propagation: MsFlags::empty(),
            }
        );
        assert_eq!(
            spec.mounts[2].kind,
            MountKind::Bind {
                source: PathBuf::from("/bundles/b1/data"),
                recursive: true
            }
        );
        assert_eq!(spec.mounts[2].flags, MsFlags::MS_RDONLY);
    }

    #[test]
    fn missing_args() {
        let process = r#""cwd": "/""#;
        assert_eq!(
            error(&config(process, "")),
            "config.json: process.args is required"
        );
        let process = r#""args": [], "cwd": "/""#;
        assert_eq!(
            error(&config(process, "")),
            "config.json: process.args must not be empty"
        );
    }

    #[test]
    fn relative_cwd() {
        let process = r#""args": ["sh"], "cwd": "srv""#;
        assert_eq!(
            error(&config(process, "")),
            "config.json: process.cwd must be an absolute path"
        );
    }

    #[test]
    fn hostname_needs_uts_namespace() {
        let json = r#"{"ociVersion": "1.0.0", "process": {"args": ["sh"], "cwd": "/"},
            "root": {"path": "rootfs"}, "hostname": "box",
            "linux": {"namespaces": [{"type": "mount"}]}}"#;
        assert_eq!(
            error(json),
            "config.json: hostname requires a uts namespace"
        );
    }

    #[test]
    fn linux_devices() {
        let with_devices = |devices: &str| {
            config(PROCESS, "").replace(
                r#""linux": {"#,
                &format!(r#""linux": {{"devices": [{devices}], "#),
            )
        };
        let spec = parse_str(&with_devices(
            r#"{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
               {"path": "/dev/./disks/sda", "type": "b", "major": 8, "minor": 0,
                "fileMode": 8608, "uid": 1000, "gid": 6},
               {"path": "/dev/ttyX", "type": "u", "major": 4, "minor": 1048575},
               {"path": "/dev/pipe", "type": "p"}"#,
        ))
        .unwrap();
        let node = |path: &str, kind, major, minor, mode, uid, gid| DeviceNode {
            path: ContainerPath::new(path).unwrap(),
            kind,
            major,
            minor,
            mode,
            uid,
            gid,
        };
        assert_eq!(
            spec.devices,
            [
                node("/dev/fuse", NodeKind::Char, 10, 229, 0o666, 0, 0),
                // 8608 is S_IFBLK | 0o640: the file type bits are dropped.
                node("/dev/disks/sda", NodeKind::Block, 8, 0, 0o640, 1000, 6),
                node("/dev/ttyX", NodeKind::Char, 4, 1_048_575, 0o666, 0, 0),
                node("/dev/pipe", NodeKind::Fifo, 0, 0, 0o666, 0, 0),
            ]
        );
        // The init may make them (`m`), fifos aside; no rules were asked for.
        let mknod = |kind, major, minor| DeviceRule {
            allow: true,
            kind,
            major: Some(major),
            minor: Some(minor),
            access: Access::MKNOD,
        };
        assert_eq!(
            spec.resources.implied_devices,
            [
                mknod(DeviceType::Char, 10, 229),
                mknod(DeviceType::Block, 8, 0),
                mknod(DeviceType::Char, 4, 1_048_575),
            ]
        );
        assert_eq!(spec.resources.devices, None);
        assert!(parse_str(&with_devices("")).unwrap().devices.is_empty());
        for (device, message) in [
            (
                r#"{"type": "c", "major": 1, "minor": 3}"#,
                "[0].path is required",
            ),
            (
                r#"{"path": "/etc/x", "type": "c", "major": 1, "minor": 3}"#,
                "[0].path must be below /dev",
            ),
            (
                r#"{"path": "/dev", "type": "c", "major": 1, "minor": 3}"#,
                "[0].path must be below /dev",
            ),
            (
                r#"{"path": "/dev/../etc/x", "type": "c", "major": 1, "minor": 3}"#,
                "[0].path must not contain '..'",
            ),
            (
                r#"{"path": "dev/x", "type": "c", "major": 1, "minor": 3}"#,
                "[0].path must be an absolute path",
            ),
            (
                r#"{"path": "/dev/x", "major": 1, "minor": 3}"#,
                "[0].type is required",
            ),
            (
                r#"{"path": "/dev/x", "type": "s", "major": 1, "minor": 3}"#,
                "[0].type must be c, u, b or p",
            ),
            (
                r#"{"path": "/dev/x", "type": "c", "minor": 3}"#,
                "[0].major is required",
            ),
            (
                r#"{"path": "/dev/x", "type": "c", "major": 4096, "minor": 3}"#,
                "[0].major must be a device number",
            ),
            (
                r#"{"path": "/dev/x", "type": "b", "major": 8, "minor": -1}"#,
                "[0].minor must be a device number",
            ),
            (
                r#"{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "fileMode": 1048576}"#,
                "[0].fileMode must be a file mode",
            ),
            (
                r#"{"path": "/dev/x", "type": "p"}, {"path": "/dev//x", "type": "p"}"#,
                "[1].path is listed twice",
            ),
        ] {
            assert_eq!(
                error(&with_devices(device)),
                format!("config.json: linux.devices{message}"),
                "{device}"
            );
        }
        let many = vec![r#"{"path": "/dev/p", "type": "p"}"#; MAX_DEVICES + 1].join(",");
        assert_eq!(
            error(&with_devices(&many)),
            "config.json: linux.devices has more than 64 entries"
        );
    }

    #[test]
    fn unsupported_fields_are_named() {
        let cases = [
            (r#""apparmorProfile": "x","#, "", "process.apparmorProfile"),
            (r#""scheduler": {},"#, "", "process.scheduler"),
        ];
        for (process, extra, field) in cases {
            let json = config(&format!("{process}{PROCESS}"), extra);
            assert_eq!(
                error(&json),
                format!("config.json: {field} is not supported yet")
            );
        }
        let json = config(PROCESS, "").replace(r#""linux": {"#, r#""linux": {"intelRdt": {}, "#);
        assert_eq!(
            error(&json),
            "config.json: linux.intelRdt is not supported yet"
        );
        let json = config(PROCESS, r#", "annotations": {"a": "b"}, "x-vendor": 1"#);
        assert!(
            parse_str(&json).is_ok(),
            "annotations and unknown fields are accepted"
        );
        let mount = r#", "mounts": [{"destination": "/c", "type": "cgroup"}]"#;
        assert_eq!(
            error(&config(PROCESS, mount)),
            "config.json: mounts[0].type needs a new cgroup namespace \
             (without one, cgroup2 shows the host's whole hierarchy)"
        );
        let json = config(PROCESS, mount).replace(r#"{"type": "uts"}"#, r#"{"type": "cgroup"}"#);
        let spec = parse_str(&json).unwrap();
        assert!(matches!(
            &spec.mounts[0].kind,
            MountKind::Fs {
                fstype: FsType::Cgroup2,
                source
            } if source == "cgroup"
        ));
        let mount =
            r#", "mounts": [{"destination": "/d", "source": "d", "options": ["rbind", "rslave"]}]"#;
        let spec = parse_str(&config(PROCESS, mount)).unwrap();
        assert_eq!(
            spec.mounts[0].propagation,
            MsFlags::MS_SLAVE | MsFlags::MS_REC
        );
        assert_eq!(
            spec.rootfs_propagation,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC
        );
        let root = |value: &str| {
            config(PROCESS, "").replace(
                r#""linux": {"#,
                &format!(r#""linux": {{"rootfsPropagation": "{value}", "#),
            )
        };
        assert_eq!(
            parse_str(&root("slave")).unwrap().rootfs_propagation,
            MsFlags::MS_SLAVE
        );
        assert_eq!(
            error(&root("rshared")),
            "config.json: linux.rootfsPropagation: rshared is not supported yet"
        );
        assert_eq!(
            error(&root("sideways")),
            "config.json: linux.rootfsPropagation is not a propagation option"
        );
    }

    #[test]
    fn too_many_args_names_capacity() {
        let args = vec!["\"a\""; MAX_ARGS + 1].join(",");
        let process = format!(r#""args": [{args}], "cwd": "/""#);
        assert_eq!(
            error(&config(&process, "")),
            "config.json: process.args has more than 256 entries"
        );
        let args = vec!["\"a\""; MAX_ARGS].join(",");
        let process = format!(r#""args": [{args}], "cwd": "/""#);
        assert_eq!(
            parse_str(&config(&process, "")).unwrap().process.args.len(),
            MAX_ARGS
        );
    }

    #[test]
    fn too_long_string_names_capacity() {
        let process = format!(r#""args": ["{}"], "cwd": "/""#, "x".repeat(MAX_STRING + 1));
        assert_eq!(
            error(&config(&process, "")),
            "config.json: process.args[0] is longer than 4096 bytes"
        );
    }

    #[test]
    fn a_key_given_twice_is_named() {
        let json = config(PROCESS, "").replace(r#""cwd": "/""#, r#""cwd": "/", "cwd": "/tmp""#);
        assert_eq!(
            error(&json),
            r#"config.json: invalid JSON: process has the key "cwd" twice"#
        );
        let json = config(PROCESS, r#", "hostname": "a", "hostname": "b""#);
        assert_eq!(
            error(&json),
            r#"config.json: invalid JSON: the key "hostname" appears twice"#
        );
    }

    #[test]
    fn invalid_json() {
        assert!(error("{\"ociVersion\": ").starts_with("config.json: invalid JSON: "));
        assert!(error("[]").starts_with("config.json: invalid JSON: "));
        let process = r#""args": "sh", "cwd": "/""#;
        assert!(error(&config(process, "")).starts_with("config.json: invalid JSON: "));
    }

    #[test]
    fn other_rejections() {
        let cases = [
            (
                config(PROCESS, "").replace("1.0.2", "2.0"),
                "ociVersion must be 1.x",
            ),
            (
                config(r#""args": ["sh"], "env": ["NOEQUALS"], "cwd": "/""#, ""),
                "process.env[0] must have the form NAME=VALUE",
            ),
            (
                config(r#""args": ["a\u0000b"], "cwd": "/""#, ""),
                "process.args[0] contains a NUL byte",
            ),
            (
                config(r#""args": ["sh"], "cwd": "/a/../b""#, ""),
                "process.cwd must not contain '..'",
            ),
            (
                config(PROCESS, "").replace(r#"{"type": "mount"}, "#, ""),
                "linux.namespaces must include a new mount namespace",
            ),
            (
                config(PROCESS, "").replace(r#"{"type": "uts"}"#, r#"{"type": "mount"}"#),
                "linux.namespaces[1] repeats an earlier namespace type",
            ),
            (
                config(PROCESS, "").replace(r#"{"type": "uts"}"#, r#"{"type": "user"}"#),
                "linux.uidMappings is required with a new user namespace",
            ),
            (
                config(PROCESS, "").replace(r#"{"type": "uts"}"#, r#"{"type": "time"}"#),
                "linux.namespaces[1].type: time is not supported yet",
            ),
            (
                config(
                    PROCESS,
                    r#", "mounts": [{"destination": "/x", "type": "bind"}]"#,
                ),
                "mounts[0].source is required",
            ),
        ];
        for (json, message) in cases {
            assert_eq!(error(&json), format!("config.json: {message}"));
        }
    }

    #[test]
    fn user_namespace_maps() {
        let with = |namespace: &str, maps: &str| {
            config(PROCESS, "").replace(
                r#"{"type": "uts"}]"#,
                &format!(r#"{{"type": "uts"}}, {namespace}]{maps}"#),
            )
        };
        const USER: &str = r#"{"type": "user"}"#;
        let maps = r#", "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 1000},
                            {"containerID": 1000, "hostID": 5, "size": 1}]"#;
        let spec = parse_str(&with(USER, maps)).unwrap();
        let ids = spec.id_mappings.unwrap();
        assert_eq!(ids.host_uid(0), Some(100000));
        assert_eq!(ids.host_uid(65535), Some(165535));
        assert_eq!(ids.host_uid(65536), None);
        assert_eq!(ids.host_gid(1000), Some(5));
        assert_eq!(
            IdMapping::kernel_format(&ids.gids),
            "0 100000 1000\n1000 5 1\n"
        );

        let uids_only = r#", "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]"#;
        let line = |l: &str| format!(r#", "uidMappings": [{l}], "gidMappings": [{l}]"#);
        let ok = r#"{"containerID": 0, "hostID": 1000, "size": 1}"#;
        let cases = [
            (
                with(USER, uids_only),
                "linux.gidMappings is required with a new user namespace",
            ),
            (
                with(r#"{"type": "network"}"#, maps),
                "linux.uidMappings needs a new user namespace",
            ),
            (
                with(r#"{"type": "user", "path": "/proc/1/ns/user"}"#, maps),
                "linux.uidMappings needs a new user namespace",
            ),
            (with(USER, &line("")), "linux.uidMappings must not be empty"),
            (
                with(USER, &line(r#"{"containerID": 0, "hostID": 1000}"#)),
                "linux.uidMappings[0].size is required",
            ),
            (
                with(
                    USER,
                    &line(r#"{"containerID": 0, "hostID": 1000, "size": 0}"#),
                ),
                "linux.uidMappings[0].size must be at least 1",
            ),
            (
                with(
                    USER,
                    &line(r#"{"containerID": 4294967295, "hostID": 1, "size": 2}"#),
                ),
                "linux.uidMappings[0] goes past the last 32-bit id",
            ),
            (
                with(
                    USER,
                    &line(&format!(
                        r#"{ok}, {{"containerID": 0, "hostID": 5, "size": 1}}"#
                    )),
                ),
                "linux.uidMappings[1] overlaps an earlier line inside the container",
            ),
            (
                with(
                    USER,
                    &line(&format!(
                        r#"{ok}, {{"containerID": 1, "hostID": 999, "size": 2}}"#
                    )),
                ),
                "linux.uidMappings[1] overlaps an earlier line on the host",
            ),
            (
                with(
                    USER,
                    &line(r#"{"containerID": -1, "hostID": 1, "size": 1}"#),
                ),
                "invalid JSON",
            ),
        ];
        for (json, message) in cases {
            let error = error(&json);
            assert!(
                error.starts_with(&format!("config.json: {message}")),
                "{error}"
            );
        }
        let many = vec![ok; MAX_ID_MAPPINGS + 1].join(",");
        assert_eq!(
            error(&with(USER, &line(&many))),
            format!("config.json: linux.uidMappings has more than {MAX_ID_MAPPINGS} entries")
        );
    }

    #[test]
    fn mount_options() {
        let parse = |options: &[&str]| parse_mount_options(options.iter().copied());
        assert_eq!(
            parse(&["nosuid", "noexec", "nodev", "ro", "relatime"]).flags,
            MsFlags::MS_NOSUID
                | MsFlags::MS_NOEXEC
                | MsFlags::MS_NODEV
                | MsFlags::MS_RDONLY
                | MsFlags::MS_RELATIME
        );
        assert_eq!(parse(&["ro", "rw"]).flags, MsFlags::empty());
        let devpts = parse(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]);
        assert_eq!(devpts.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        assert_eq!(devpts.bind, None);
        assert_eq!(parse(&["bind"]).bind, Some(false));
        assert_eq!(parse(&["rbind", "bind"]).bind, Some(true));
        assert_eq!(
            parse(&["size=1m", "nr_inodes=9"]).data,
            "size=1m,nr_inodes=9"
        );
    }

    /// The shape of `runc spec` (runc 1.1) output.
    const RUNC_DEFAULT: &str = r#"{
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/sys", "/proc/sysrq-trigger"]
        }
    }"#;

    #[test]
    fn runc_default_names_first_unsupported_field() {
        // runc warns and goes on when it cannot raise an ambient capability.
        assert_eq!(
            error(RUNC_DEFAULT),
            "config.json: process.capabilities.ambient[0]: CAP_AUDIT_WRITE \
             must also be in permitted and inheritable"
        );
        let without_ambient = RUNC_DEFAULT.replace(r#""ambient""#, r#""inheritable""#);
        // Its device rules are enforced and its cgroup mount is a cgroup2 one.
        let spec = parse_str(&without_ambient).unwrap();
        assert!(matches!(
            spec.mounts[6].kind,
            MountKind::Fs {
                fstype: FsType::Cgroup2,
                ..
            }
        ));
        assert_eq!(
            spec.resources.devices,
            Some(vec![crate::cgroup::DeviceRule {
                allow: false,
                kind: crate::cgroup::DeviceType::All,
                major: None,
                minor: None,
                access: crate::cgroup::Access::ALL,
            }])
        );
        assert_eq!(spec.process.rlimits.len(), 1);
        assert_eq!(spec.masked_paths.len(), 3);
        assert_eq!(spec.readonly_paths.len(), 3);
        assert!(spec.process.no_new_privileges);
        assert_eq!(
            spec.process.capabilities.unwrap().inheritable.to_string(),
            "CAP_KILL|CAP_NET_BIND_SERVICE|CAP_AUDIT_WRITE"
        );
    }

    /// `config` with `process` members and `linux` members added.
    fn with(process: &str, linux: &str) -> String {
        let process = format!("{PROCESS}{process}");
        config(&process, "").replace(
            r#"[{"type": "mount"}, {"type": "uts"}]"#,
            &format!(r#"[{{"type": "mount"}}, {{"type": "uts"}}, {{"type": "ipc"}}, {{"type": "network"}}]{linux}"#),
        )
    }

    #[test]
    fn rlimits() {
        let json = with(
            r#", "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024},
                {"type": "RLIMIT_CORE", "hard": 18446744073709551615, "soft": 0}]"#,
            "",
        );
        let spec = parse_str(&json).unwrap();
        assert_eq!(
            spec.process.rlimits,
            [
                Rlimit {
                    name: "RLIMIT_NOFILE",
                    resource: Resource::RLIMIT_NOFILE,
                    soft: 1024,
                    hard: 2048
                },
                Rlimit {
                    name: "RLIMIT_CORE",
                    resource: Resource::RLIMIT_CORE,
                    soft: 0,
                    hard: u64::MAX
                }
            ]
        );
        let cases = [
            (
                r#"[{"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}]"#,
                "process.rlimits[0].type: RLIMIT_NOPE is not a resource limit",
            ),
            (
                r#"[{"type": "RLIMIT_AS", "hard": 1, "soft": 2}]"#,
                "process.rlimits[0].soft must not be greater than hard",
            ),
            (
                r#"[{"type": "RLIMIT_AS", "hard": 1, "soft": 1}, {"type": "RLIMIT_AS", "hard": 1, "soft": 1}]"#,
                "process.rlimits[1] repeats an earlier type",
            ),
            (
                r#"[{"type": "RLIMIT_AS", "soft": 1}]"#,
                "process.rlimits[0].hard is required",
            ),
            (
                r#"[{"hard": 1, "soft": 1}]"#,
                "process.rlimits[0].type is required",
            ),
        ];
        for (rlimits, message) in cases {
            let json = with(&format!(r#", "rlimits": {rlimits}"#), "");
            assert_eq!(error(&json), format!("config.json: {message}"));
        }
    }

    #[test]
    fn oom_score_adj_and_no_new_privileges() {
        let spec = parse_str(&with(
            r#", "oomScoreAdj": -1000, "noNewPrivileges": true"#,
            "",
        ))
        .unwrap();
        assert_eq!(spec.process.oom_score_adj, Some(-1000));
        assert!(spec.process.no_new_privileges);
        let spec = parse_str(&with("", "")).unwrap();
        assert_eq!(spec.process.oom_score_adj, None);
        assert!(!spec.process.no_new_privileges);
        assert_eq!(
            error(&with(r#", "oomScoreAdj": 1001"#, "")),
            "config.json: process.oomScoreAdj must be between -1000 and 1000"
        );
    }

    #[test]
    fn capabilities() {
        let json = with(
            r#", "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_CHECKPOINT_RESTORE"],
                "effective": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
                "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}"#,
            "",
        );
        let caps = parse_str(&json).unwrap().process.capabilities.unwrap();
        assert_eq!(caps.bounding.bits(), 1 | 1 << 5 | 1 << 40);
        assert_eq!(
            caps.bounding.to_string(),
            "CAP_CHOWN|CAP_KILL|CAP_CHECKPOINT_RESTORE"
        );
        assert_eq!(caps.effective.bits(), 1 << 5);
        assert_eq!(caps.permitted.bits(), 1 | 1 << 5);
        assert_eq!(caps.inheritable.bits(), 1 << 5);
        assert_eq!(caps.ambient.bits(), 1 << 5);
        assert_eq!(
            caps.limited_to(38).bounding.to_string(),
            "CAP_CHOWN|CAP_KILL"
        );

        let spec = parse_str(&with(r#", "capabilities": {}"#, "")).unwrap();
        assert_eq!(
            spec.process.capabilities,
            Some(Capabilities::default()),
            "absent sets are empty"
        );
        assert_eq!(Capabilities::default().ambient.to_string(), "-");

        assert_eq!(
            error(&with(
                r#", "capabilities": {"effective": ["CAP_KILL", "CAP_NOPE"]}"#,
                ""
            )),
            "config.json: process.capabilities.effective[1]: CAP_NOPE is not a capability"
        );
        assert_eq!(
            error(&with(r#", "capabilities": {"permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"]}"#, "")),
            "config.json: process.capabilities.ambient[0]: CAP_KILL must also be in permitted and inheritable"
        );
        let many = vec![r#""CAP_KILL""#; MAX_CAPABILITIES + 1].join(", ");
        assert_eq!(
            error(&with(
                &format!(r#", "capabilities": {{"bounding": [{many}]}}"#),
                ""
            )),
            "config.json: process.capabilities.bounding has more than 64 entries"
        );
    }

    #[test]
    fn seccomp_is_compiled_at_load() {
        let profile = r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#;
        let spec = parse_str(&with("", &format!(r#", "seccomp": {profile}"#))).unwrap();
        let filter = spec.seccomp.unwrap();
        assert_eq!(
            filter,
            seccomp::parse(profile.as_bytes())
                .unwrap()
                .compile(Arch::native().unwrap())
                .unwrap()
        );
        let cases = [
            (
                r#"{"defaultAction": "SCMP_ACT_NOPE"}"#,
                "linux.seccomp.defaultAction: SCMP_ACT_NOPE is not supported",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_ERRNO"}]}"#,
                r#"linux.seccomp.syscalls[0].names[0]: no architecture has a system call "mkdri""#,
            ),
            (r#"{}"#, "linux.seccomp.defaultAction is required"),
        ];
        for (profile, message) in cases {
            let json = with("", &format!(r#", "seccomp": {profile}"#));
            assert_eq!(error(&json), format!("config.json: {message}"));
        }
    }

    #[test]
    fn sysctl() {
        let proc = r#", "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]"#;
        let json = |sysctl: &str| with("", &format!(r#", "sysctl": {{{sysctl}}}"#));
        let with_proc = |sysctl: &str| {
            let json = json(sysctl);
            let end = json.rfind('}').unwrap();
            format!("{}{proc}}}", &json[..end])
        };
        let spec = parse_str(&with_proc(
            r#""kernel.shmmax": "65536", "fs.mqueue.msg_max": "20", "kernel.msgmnb": "1",
               "kernel.sem": "250 32000 32 128", "net.ipv4.ip_forward": "1",
               "net/ipv4/conf/eth0.1/forwarding": "0""#,
        ))
        .unwrap();
        let written: Vec<(&str, &Path, &str)> = spec
            .sysctl
            .iter()
            .map(|s| (s.name.as_str(), s.path.as_path(), s.value.as_str()))
            .collect();
        assert_eq!(
            written,
            [
                (
                    "kernel.shmmax",
                    Path::new("/proc/sys/kernel/shmmax"),
                    "65536"
                ),
                (
                    "fs.mqueue.msg_max",
                    Path::new("/proc/sys/fs/mqueue/msg_max"),
                    "20"
                ),
                ("kernel.msgmnb", Path::new("/proc/sys/kernel/msgmnb"), "1"),
                (
                    "kernel.sem",
                    Path::new("/proc/sys/kernel/sem"),
                    "250 32000 32 128"
                ),
                (
                    "net.ipv4.ip_forward",
                    Path::new("/proc/sys/net/ipv4/ip_forward"),
                    "1"
                ),
                (
                    "net/ipv4/conf/eth0.1/forwarding",
                    Path::new("/proc/sys/net/ipv4/conf/eth0.1/forwarding"),
                    "0"
                ),
            ]
        );
        let cases = [
            (
                r#""kernel.hostname": "x""#,
                "kernel.hostname is not in a separate kernel namespace",
            ),
            (
                r#""vm.swappiness": "1""#,
                "vm.swappiness is not in a separate kernel namespace",
            ),
            (
                r#""kernel.shmmax.x": "1""#,
                "kernel.shmmax.x is not in a separate kernel namespace",
            ),
            (r#""net..x": "1""#, "net..x is not a sysctl name"),
            (
                r#""net/../kernel/x": "1""#,
                "net/../kernel/x is not a sysctl name",
            ),
        ];
        for (sysctl, message) in cases {
            assert_eq!(
                error(&with_proc(sysctl)),
                format!("config.json: linux.sysctl: {message}")
            );
        }
        assert_eq!(
            error(&json(r#""kernel.shmmax": "1""#)),
            "config.json: linux.sysctl requires a proc mount at /proc"
        );
        let host_net = with_proc(r#""net.ipv4.ip_forward": "1""#).replace(
            r#"{"type": "network"}"#,
            r#"{"type": "network", "path": "/proc/1/ns/net"}"#,
        );
        assert_eq!(
            error(&host_net),
            "config.json: linux.sysctl: net.ipv4.ip_forward requires a new network namespace"
        );
        let host_ipc = with_proc(r#""kernel.shmmax": "1""#).replace(r#", {"type": "ipc"}"#, "");
        assert_eq!(
            error(&host_ipc),
            "config.json: linux.sysctl: kernel.shmmax requires an ipc namespace"
        );
    }

    #[test]
    fn masked_and_readonly_paths() {
        let spec = parse_str(&with(
            "",
            r#", "maskedPaths": ["/proc/kcore", "/proc/acpi/"], "readonlyPaths": ["/proc/sys"]"#,
        ))
        .unwrap();
        let paths = |paths: &[ContainerPath]| {
            paths
                .iter()
                .map(|p| p.as_path().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths(&spec.masked_paths),
            [Path::new("/proc/kcore"), Path::new("/proc/acpi")]
        );
        assert_eq!(paths(&spec.readonly_paths), [Path::new("/proc/sys")]);
        assert_eq!(
            error(&with("", r#", "maskedPaths": ["proc/kcore"]"#)),
            "config.json: linux.maskedPaths[0] must be an absolute path"
        );
        assert_eq!(
            error(&with("", r#", "readonlyPaths": ["/proc", "/proc/../etc"]"#)),
            "config.json: linux.readonlyPaths[1] must not contain '..'"
        );
    }

    #[test]
    fn dev_tmpfs_is_the_last_mount_at_dev() {
        let mounts = |mounts: &str| {
            let json = config(PROCESS, &format!(r#", "mounts": [{mounts}]"#));
            parse_str(&json)
                .unwrap()
                .dev_tmpfs()
                .map(|p| p.as_path().to_owned())
        };
        let tmpfs = r#"{"destination": "/dev", "type": "tmpfs"}"#;
        let bind = r#"{"destination": "/dev/", "source": "/dev", "options": ["rbind"]}"#;
        assert_eq!(mounts(tmpfs), Some(PathBuf::from("/dev")));
        assert_eq!(mounts(&format!("{tmpfs}, {bind}")), None);
        assert_eq!(
            mounts(&format!("{bind}, {tmpfs}")),
            Some(PathBuf::from("/dev"))
        );
        assert_eq!(
            mounts(r#"{"destination": "/dev/shm", "type": "tmpfs"}"#),
            None
        );
    }

    fn process_file(json: &str) -> Result<Process, String> {
        parse_process(json.as_bytes(), Path::new("/p.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_process_file_is_checked_as_config_jsons_process() {
        let process = process_file(
            r#"{"args": ["sh", "-c", "id"], "env": ["A=1"], "cwd": "/tmp",
                "user": {"uid": 1000, "gid": 100}, "noNewPrivileges": true,
                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}],
                "capabilities": {"bounding": ["CAP_KILL"]}, "oomScoreAdj": 3,
                "futureField": 1}"#,
        )
        .unwrap();
        let in_config = parse_str(&config(
            r#""args": ["sh", "-c", "id"], "env": ["A=1"], "cwd": "/tmp",
                "user": {"uid": 1000, "gid": 100}, "noNewPrivileges": true,
                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}],
                "capabilities": {"bounding": ["CAP_KILL"]}, "oomScoreAdj": 3"#,
            "",
        ))
        .unwrap()
        .process;
        assert_eq!(process, in_config);
    }

    #[test]
    fn process_file_errors_name_the_file_and_the_field() {
        for (json, expected) in [
            (r#"{"cwd": "/"}"#, "/p.json: args is required"),
            (
                r#"{"args": [], "cwd": "/"}"#,
                "/p.json: args must not be empty",
            ),
            (
                r#"{"args": ["a"], "cwd": "tmp"}"#,
                "/p.json: cwd must be an absolute path",
            ),
            (
                r#"{"args": ["a"], "cwd": "/", "env": ["A"]}"#,
                "/p.json: env[0] must have the form NAME=VALUE",
            ),
            (
                r#"{"args": ["a"], "cwd": "/", "user": {"uid": 1}}"#,
                "/p.json: user.gid is required",
            ),
            (
                r#"{"args": ["a"], "cwd": "/", "consoleSize": {"height": 24}}"#,
                "/p.json: consoleSize.width is required",
            ),
            (
                r#"{"args": ["a"], "cwd": "/", "apparmorProfile": "x"}"#,
                "/p.json: apparmorProfile is not supported yet",
            ),
            (
                r#"{"args": ["a"], "cwd": "/", "capabilities": {"effective": ["CAP_NOPE"]}}"#,
                "/p.json: capabilities.effective[0]: CAP_NOPE is not a capability",
            ),
            (
                r#"{"args": ["a"], "cwd": "/", "oomScoreAdj": 1001}"#,
                "/p.json: oomScoreAdj must be between -1000 and 1000",
            ),
            (
                r#"{"args": ["a\u0000"], "cwd": "/"}"#,
                "/p.json: args[0] contains a NUL byte",
            ),
            (
                r#"{"args": ["a"]"#,
                "/p.json: invalid JSON: EOF while parsing an object.",
            ),
        ] {
            assert_eq!(process_file(json).unwrap_err(), expected, "{json}");
        }
        let many = format!(
            r#"{{"args": [{}], "cwd": "/"}}"#,
            vec![r#""a""#; MAX_ARGS + 1].join(",")
        );
        assert_eq!(
            process_file(&many).unwrap_err(),
            format!("/p.json: args has more than {MAX_ARGS} entries")
        );
    }

    #[test]
    fn overrides_replace_what_they_set() {
        let base = parse_str(&config(
            r#""args": ["sleep", "1"], "env": ["PATH=/bin", "A=1", "A2=x"], "cwd": "/",
                "user": {"uid": 5, "gid": 6, "additionalGids": [7]}, "noNewPrivileges": true"#,
            "",
        ))
        .unwrap()
        .process;
        assert_eq!(base.clone().overridden(&ProcessOverrides::default()), base);

        let overridden = base.clone().overridden(&ProcessOverrides {
            args: vec![c"sh".into(), c"-c".into(), c"true".into()],
            env: vec![c"A=2".into(), c"B=3=4".into(), c"A=5".into()],
            cwd: Some(ContainerPath::new("/tmp/").unwrap()),
            uid: Some(1000),
            gid: None,
        });
        assert_eq!(overridden.args, [c"sh", c"-c", c"true"]);
        assert_eq!(overridden.env, [c"PATH=/bin", c"A=5", c"A2=x", c"B=3=4"]);
        assert_eq!(overridden.cwd.as_path(), Path::new("/tmp"));
        assert_eq!(
            overridden.user,
            User {
                uid: 1000,
                gid: 6,
                additional_gids: vec![7],
                umask: None
            }
        );
        assert!(overridden.no_new_privileges, "flags leave the rest alone");
        let regrouped = base.overridden(&ProcessOverrides {
            gid: Some(0),
            ..ProcessOverrides::default()
        });
        assert_eq!((regrouped.user.uid, regrouped.user.gid), (5, 0));
        assert_eq!(regrouped.args, [c"sleep", c"1"]);
    }

    #[test]
    fn container_paths() {
        assert_eq!(
            ContainerPath::new("/a/./b/").unwrap().as_path(),
            Path::new("/a/b")
        );
        assert_eq!(ContainerPath::new("a"), Err("must be an absolute path"));
        assert_eq!(ContainerPath::new("/a/../b"), Err("must not contain '..'"));
    }

    #[test]
    fn hooks_are_parsed_and_checked() {
        let hooks = r#", "hooks": {
            "prestart": [{"path": "/bin/a"}],
            "createRuntime": [{"path": "/bin/b", "args": ["b", "-x"], "env": ["K=V"], "timeout": 5}],
            "createContainer": [{"path": "/bin/e"}],
            "startContainer": [{"path": "/bin/f"}, {"path": "/bin/g"}],
            "poststart": [{"path": "/bin/c"}],
            "poststop": [{"path": "/bin/d"}]}"#;
        let spec = parse_str(&config(r#""args": ["sh"], "cwd": "/""#, hooks)).unwrap();
        let paths = |hooks: &[Hook]| hooks.iter().map(|h| h.path.clone()).collect::<Vec<_>>();
        assert_eq!(
            paths(&spec.hooks.create_runtime),
            ["/bin/a", "/bin/b"].map(PathBuf::from)
        );
        assert_eq!(spec.hooks.create_runtime[1].args, ["b", "-x"]);
        assert_eq!(spec.hooks.create_runtime[1].env, ["K=V"]);
        assert_eq!(
            spec.hooks.create_runtime[1].timeout,
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(
            paths(&spec.hooks.create_container),
            [PathBuf::from("/bin/e")]
        );
        assert_eq!(
            paths(&spec.hooks.start_container),
            ["/bin/f", "/bin/g"].map(PathBuf::from)
        );
        assert_eq!(paths(&spec.hooks.poststart), [PathBuf::from("/bin/c")]);
        assert_eq!(paths(&spec.hooks.poststop), [PathBuf::from("/bin/d")]);
        for (hook, message) in [
            (
                r#"{"args": []}"#,
                "config.json: hooks.poststart[0].path is required",
            ),
            (
                r#"{"path": "bin/x"}"#,
                "config.json: hooks.poststart[0].path must be an absolute path",
            ),
            (
                r#"{"path": "/x", "timeout": 0}"#,
                "config.json: hooks.poststart[0].timeout must be greater than zero",
            ),
            (
                r#"{"path": "/x", "env": ["NOEQUALS"]}"#,
                "config.json: hooks.poststart[0].env[0] must have the form NAME=VALUE",
            ),
        ] {
            let extra = format!(r#", "hooks": {{"poststart": [{hook}]}}"#);
            assert_eq!(
                error(&config(r#""args": ["sh"], "cwd": "/""#, &extra)),
                message,
                "{hook}"
            );
        }
    }
}
