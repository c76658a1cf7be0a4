//! `config.json`: the subset of the OCI runtime spec that husk honours.
//!
//! Two layers, converted once ("parse, don't validate"):
//! - `Wire*` structs mirror the JSON. Every array has a fixed capacity (a `MAX_*`
//!   constant) and strings are borrowed, still escaped, from the input buffer, so
//!   the wire layer is a few tens of KiB whatever the input (owned
//!   `heapless::String<4096>` fields would need megabytes of stack).
//! - [`ContainerSpec`] and its parts are the validated internal types the rest
//!   of husk uses.
//!
//! Unknown properties are ignored at every level, as the spec requires. A property
//! the spec defines but husk does not implement yet is an error naming it
//! ("`linux.seccomp` is not supported yet"), never silently dropped: such
//! properties are declared as presence markers (`Option<IgnoredAny>`), which
//! serde-json-core 0.6 skips over with `deserialize_ignored_any`.

use std::ffi::CString;
use std::fmt;
use std::io::{self, Read};
use std::marker::PhantomData;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json_core::str::{EscapedStr, EscapedStringFragment};

use crate::cgroup::{CgroupError, Resources, WireResources};

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

/// A validated container configuration.
#[derive(Debug)]
pub struct ContainerSpec {
    /// `process.args`, never empty.
    pub args: Vec<CString>,
    /// `process.env`, each entry `NAME=VALUE`.
    pub env: Vec<CString>,
    /// `process.cwd`.
    pub cwd: ContainerPath,
    /// `process.user`; root when absent.
    pub user: User,
    /// `root.path`, resolved against the bundle directory.
    pub root: PathBuf,
    /// `root.readonly`.
    pub root_readonly: bool,
    /// `hostname`; only set when the container has a UTS namespace.
    pub hostname: Option<String>,
    /// `linux.namespaces`; always includes a new mount namespace.
    pub namespaces: NamespaceSet,
    /// `mounts`, in order.
    pub mounts: Vec<Mount>,
    /// `linux.cgroupsPath`, resolved later against the runtime's defaults.
    pub cgroups_path: Option<String>,
    /// `linux.resources`: the container cgroup's limits.
    pub resources: Resources,
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
}

/// A property of `config.json`, such as `mounts[2].options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    name: &'static str,
    index: Option<usize>,
    member: Option<&'static str>,
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
    /// An array has more entries than its capacity.
    TooMany {
        /// The array.
        field: Field,
        /// Its capacity.
        max: usize,
    },
    /// A string is longer than its capacity.
    TooLong {
        /// The string.
        field: Field,
        /// Its capacity in bytes.
        max: usize,
    },
    /// A property has an invalid value.
    Invalid {
        /// The property.
        field: Field,
        /// What is wrong, as a predicate: "must be an absolute path".
        reason: &'static str,
    },
    /// `linux.resources` or `linux.cgroupsPath` was rejected.
    Cgroup(CgroupError),
}

/// Reads and validates `<bundle>/config.json`; `bundle` should be absolute.
pub fn load(bundle: &Path) -> Result<ContainerSpec, SpecError> {
    let path = bundle.join("config.json");
    let read_error = |source| SpecError::Read {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::open(&path).map_err(read_error)?;
    let mut json = Vec::new();
    let limit = MAX_CONFIG_BYTES as u64 + 1;
    file.take(limit)
        .read_to_end(&mut json)
        .map_err(read_error)?;
    if json.len() > MAX_CONFIG_BYTES {
        return Err(SpecError::TooBig { path });
    }
    parse(&json, bundle)
}

/// Validates the JSON text of a `config.json` from the bundle directory `bundle`.
pub fn parse(json: &[u8], bundle: &Path) -> Result<ContainerSpec, SpecError> {
    let (wire, _) = serde_json_core::from_slice::<WireConfig<'_>>(json).map_err(SpecError::Json)?;
    reject_unsupported(&wire)?;
    convert(wire, bundle)
}

impl ContainerPath {
    /// The path, starting with `/`.
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    fn parse(field: Field, path: String) -> Result<Self, SpecError> {
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(invalid(field, "must be an absolute path"));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(invalid(field, "must not contain '..'"));
        }
        Ok(Self(path.components().collect()))
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

impl FsType {
    /// The name the kernel knows the filesystem by.
    pub fn name(self) -> &'static str {
        match self {
            Self::Proc => "proc",
            Self::Tmpfs => "tmpfs",
            Self::Sysfs => "sysfs",
            Self::Devpts => "devpts",
            Self::Mqueue => "mqueue",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [
            Self::Proc,
            Self::Tmpfs,
            Self::Sysfs,
            Self::Devpts,
            Self::Mqueue,
        ]
        .into_iter()
        .find(|fs| fs.name() == name)
    }
}

impl Field {
    const fn new(name: &'static str) -> Self {
        Self {
            name,
            index: None,
            member: None,
        }
    }

    const fn at(self, index: usize) -> Self {
        Self {
            index: Some(index),
            ..self
        }
    }

    const fn member(self, member: &'static str) -> Self {
        Self {
            member: Some(member),
            ..self
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if let Some(index) = self.index {
            write!(f, "[{index}]")?;
        }
        if let Some(member) = self.member {
            write!(f, ".{member}")?;
        }
        Ok(())
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
            Self::Json(e) => write!(f, "config.json: invalid JSON: {e}"),
            Self::Missing(field) => write!(f, "config.json: {field} is required"),
            Self::Unsupported(field) => write!(f, "config.json: {field} is not supported yet"),
            Self::UnsupportedValue { field, value } => {
                write!(f, "config.json: {field}: {value} is not supported yet")
            }
            Self::TooMany { field, max } => {
                write!(f, "config.json: {field} has more than {max} entries")
            }
            Self::TooLong { field, max } => {
                write!(f, "config.json: {field} is longer than {max} bytes")
            }
            Self::Invalid { field, reason } => write!(f, "config.json: {field} {reason}"),
            Self::Cgroup(e) => write!(f, "config.json: {e}"),
        }
    }
}

impl std::error::Error for SpecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Cgroup(e) => e.source(),
            _ => None,
        }
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
    mounts: Option<Capped<WireMount<'a>, MAX_MOUNTS>>,
    hooks: Option<IgnoredAny>,
    #[serde(borrow)]
    linux: Option<WireLinux<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireProcess<'a> {
    terminal: Option<bool>,
    console_size: Option<IgnoredAny>,
    user: Option<WireUser>,
    #[serde(borrow)]
    args: Option<Capped<EscapedStr<'a>, MAX_ARGS>>,
    #[serde(borrow)]
    env: Option<Capped<EscapedStr<'a>, MAX_ENV>>,
    #[serde(borrow)]
    cwd: Option<EscapedStr<'a>>,
    capabilities: Option<IgnoredAny>,
    rlimits: Option<IgnoredAny>,
    no_new_privileges: Option<bool>,
    apparmor_profile: Option<IgnoredAny>,
    oom_score_adj: Option<IgnoredAny>,
    selinux_label: Option<IgnoredAny>,
    io_priority: Option<IgnoredAny>,
    scheduler: Option<IgnoredAny>,
    #[serde(rename = "execCPUAffinity")]
    exec_cpu_affinity: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUser {
    uid: Option<u32>,
    gid: Option<u32>,
    umask: Option<u32>,
    additional_gids: Option<Capped<u32, MAX_GROUPS>>,
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
    options: Option<Capped<EscapedStr<'a>, MAX_MOUNT_OPTIONS>>,
    uid_mappings: Option<IgnoredAny>,
    gid_mappings: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLinux<'a> {
    #[serde(borrow)]
    namespaces: Option<Capped<WireNamespace<'a>, MAX_NAMESPACES>>,
    uid_mappings: Option<IgnoredAny>,
    gid_mappings: Option<IgnoredAny>,
    time_offsets: Option<IgnoredAny>,
    devices: Option<IgnoredAny>,
    #[serde(borrow)]
    cgroups_path: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    resources: Option<WireResources<'a>>,
    intel_rdt: Option<IgnoredAny>,
    sysctl: Option<IgnoredAny>,
    seccomp: Option<IgnoredAny>,
    rootfs_propagation: Option<IgnoredAny>,
    masked_paths: Option<IgnoredAny>,
    readonly_paths: Option<IgnoredAny>,
    mount_label: Option<IgnoredAny>,
    personality: Option<IgnoredAny>,
    memory_policy: Option<IgnoredAny>,
    net_devices: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct WireNamespace<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    path: Option<EscapedStr<'a>>,
}

/// A JSON array of at most `N` entries. Extra entries are counted instead of
/// failing the parse (serde-json-core would drop the message), so the error
/// can name the property and its capacity.
struct Capped<T, const N: usize> {
    items: heapless::Vec<T, N>,
    overflow: bool,
}

impl<T, const N: usize> Capped<T, N> {
    fn into_items(self, field: Field) -> Result<heapless::Vec<T, N>, SpecError> {
        if self.overflow {
            return Err(SpecError::TooMany { field, max: N });
        }
        Ok(self.items)
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Capped<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CappedVisitor<T, const N: usize>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for CappedVisitor<T, N> {
            type Value = Capped<T, N>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut capped = Capped {
                    items: heapless::Vec::new(),
                    overflow: false,
                };
                while let Some(item) = seq.next_element()? {
                    capped.overflow |= capped.items.push(item).is_err();
                }
                Ok(capped)
            }
        }

        deserializer.deserialize_seq(CappedVisitor(PhantomData))
    }
}

/// Fails on the first property, in the spec's order, that husk does not implement yet.
fn reject_unsupported(wire: &WireConfig<'_>) -> Result<(), SpecError> {
    let unsupported = wire
        .process
        .as_ref()
        .and_then(WireProcess::unsupported)
        .or_else(|| {
            first_present(&[
                ("domainname", wire.domainname.is_some()),
                ("hooks", wire.hooks.is_some()),
            ])
        })
        .or_else(|| wire.linux.as_ref().and_then(WireLinux::unsupported));
    match unsupported {
        Some(name) => Err(SpecError::Unsupported(Field::new(name))),
        None => Ok(()),
    }
}

impl WireProcess<'_> {
    fn unsupported(&self) -> Option<&'static str> {
        first_present(&[
            ("process.terminal", self.terminal == Some(true)),
            ("process.consoleSize", self.console_size.is_some()),
            ("process.capabilities", self.capabilities.is_some()),
            ("process.rlimits", self.rlimits.is_some()),
            (
                "process.noNewPrivileges",
                self.no_new_privileges == Some(true),
            ),
            ("process.apparmorProfile", self.apparmor_profile.is_some()),
            ("process.oomScoreAdj", self.oom_score_adj.is_some()),
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
            ("linux.uidMappings", self.uid_mappings.is_some()),
            ("linux.gidMappings", self.gid_mappings.is_some()),
            ("linux.timeOffsets", self.time_offsets.is_some()),
            ("linux.devices", self.devices.is_some()),
            ("linux.intelRdt", self.intel_rdt.is_some()),
            ("linux.sysctl", self.sysctl.is_some()),
            ("linux.seccomp", self.seccomp.is_some()),
            ("linux.rootfsPropagation", self.rootfs_propagation.is_some()),
            ("linux.maskedPaths", self.masked_paths.is_some()),
            ("linux.readonlyPaths", self.readonly_paths.is_some()),
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
        .ok_or(SpecError::Missing(Field::new("process")))?;
    let args = convert_args(process.args)?;
    let env = convert_env(process.env)?;
    const CWD: Field = Field::new("process.cwd");
    let cwd = ContainerPath::parse(CWD, unescape(CWD, required(CWD, process.cwd)?, MAX_PATH)?)?;
    let user = process
        .user
        .map(convert_user)
        .transpose()?
        .unwrap_or_default();

    let root = wire.root.ok_or(SpecError::Missing(Field::new("root")))?;
    const ROOT_PATH: Field = Field::new("root.path");
    let root_path = unescape(ROOT_PATH, required(ROOT_PATH, root.path)?, MAX_PATH)?;

    let (namespaces, cgroups_path, resources) = match wire.linux {
        Some(linux) => (linux.namespaces, linux.cgroups_path, linux.resources),
        None => (None, None, None),
    };
    let namespaces = convert_namespaces(namespaces)?;
    const CGROUPS_PATH: Field = Field::new("linux.cgroupsPath");
    let cgroups_path = cgroups_path
        .map(|p| unescape(CGROUPS_PATH, p, MAX_PATH))
        .transpose()?;
    let resources = resources
        .map(Resources::from_wire)
        .transpose()
        .map_err(SpecError::Cgroup)?
        .unwrap_or_default();

    const HOSTNAME: Field = Field::new("hostname");
    let hostname = wire
        .hostname
        .map(|h| unescape(HOSTNAME, h, MAX_HOSTNAME))
        .transpose()?;
    if hostname.is_some() && !namespaces.contains(NamespaceKind::Uts) {
        return Err(invalid(HOSTNAME, "requires a uts namespace"));
    }

    let mounts = match wire.mounts {
        Some(mounts) => mounts.into_items(Field::new("mounts"))?,
        None => heapless::Vec::new(),
    };
    let mounts = mounts
        .into_iter()
        .enumerate()
        .map(|(i, m)| convert_mount(Field::new("mounts").at(i), m, bundle))
        .collect::<Result<_, _>>()?;

    Ok(ContainerSpec {
        args,
        env,
        cwd,
        user,
        root: bundle.join(root_path),
        root_readonly: root.readonly.unwrap_or(false),
        hostname,
        namespaces,
        mounts,
        cgroups_path,
        resources,
    })
}

fn convert_args(args: Option<Capped<EscapedStr<'_>, MAX_ARGS>>) -> Result<Vec<CString>, SpecError> {
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

fn convert_env(env: Option<Capped<EscapedStr<'_>, MAX_ENV>>) -> Result<Vec<CString>, SpecError> {
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
    let additional_gids = match user.additional_gids {
        Some(gids) => gids.into_items(USER.member("additionalGids"))?.to_vec(),
        None => Vec::new(),
    };
    Ok(User {
        uid: user.uid.ok_or(SpecError::Missing(USER.member("uid")))?,
        gid: user.gid.ok_or(SpecError::Missing(USER.member("gid")))?,
        additional_gids,
        umask: user.umask,
    })
}

fn convert_namespaces(
    namespaces: Option<Capped<WireNamespace<'_>, MAX_NAMESPACES>>,
) -> Result<NamespaceSet, SpecError> {
    const NAMESPACES: Field = Field::new("linux.namespaces");
    let mut set = NamespaceSet::default();
    let wire = match namespaces {
        Some(namespaces) => namespaces.into_items(NAMESPACES)?,
        None => heapless::Vec::new(),
    };
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
    if let Some(Namespace { path: None, .. }) = set.get(NamespaceKind::User) {
        return Err(SpecError::UnsupportedValue {
            field: NAMESPACES,
            value: "a new user namespace".into(),
        });
    }
    Ok(set)
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
    let options = match wire.options {
        Some(options) => options.into_items(options_field)?,
        None => heapless::Vec::new(),
    };
    let options = options
        .into_iter()
        .map(|option| unescape(options_field, option, MAX_STRING))
        .collect::<Result<Vec<_>, _>>()?;
    let options = parse_mount_options(options_field, options.iter().map(String::as_str))?;

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
    })
}

/// Mount options split the way `mount(2)` wants them.
#[derive(Debug, PartialEq, Eq)]
struct MountOptions {
    flags: MsFlags,
    /// `Some(recursive)` for `bind` or `rbind`.
    bind: Option<bool>,
    data: String,
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

/// Propagation options need a separate `mount(2)` call that husk does not make yet.
const PROPAGATION_OPTIONS: &[&str] = &[
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// Splits options into flags and filesystem data (`mode=755`, `size=64k`,
/// `newinstance`, anything unknown), which the kernel validates.
fn parse_mount_options<'s>(
    field: Field,
    options: impl IntoIterator<Item = &'s str>,
) -> Result<MountOptions, SpecError> {
    let mut parsed = MountOptions {
        flags: MsFlags::empty(),
        bind: None,
        data: String::new(),
    };
    for option in options {
        if let Some(&(_, flag, set)) = FLAG_OPTIONS.iter().find(|(name, ..)| *name == option) {
            parsed.flags.set(flag, set);
        } else if option == "bind" || option == "rbind" {
            parsed.bind = Some(option == "rbind" || parsed.bind == Some(true));
        } else if PROPAGATION_OPTIONS.contains(&option) {
            return Err(SpecError::UnsupportedValue {
                field,
                value: option.into(),
            });
        } else {
            if !parsed.data.is_empty() {
                parsed.data.push(',');
            }
            parsed.data.push_str(option);
        }
    }
    Ok(parsed)
}

fn required<T>(field: Field, value: Option<T>) -> Result<T, SpecError> {
    value.ok_or(SpecError::Missing(field))
}

fn invalid(field: Field, reason: &'static str) -> SpecError {
    SpecError::Invalid { field, reason }
}

/// Decodes a JSON string of at most `max` bytes that must not contain NUL.
fn unescape(field: Field, escaped: EscapedStr<'_>, max: usize) -> Result<String, SpecError> {
    let mut text = String::with_capacity(escaped.0.len().min(max));
    for fragment in escaped.fragments() {
        match fragment.map_err(|_| invalid(field, "has an invalid escape sequence"))? {
            EscapedStringFragment::NotEscaped(s) => text.push_str(s),
            EscapedStringFragment::Escaped(c) => text.push(c),
        }
        if text.len() > max {
            return Err(SpecError::TooLong { field, max });
        }
    }
    if text.contains('\0') {
        return Err(invalid(field, "contains a NUL byte"));
    }
    Ok(text)
}

fn c_string(field: Field, escaped: EscapedStr<'_>) -> Result<CString, SpecError> {
    CString::new(unescape(field, escaped, MAX_STRING)?)
        .map_err(|_| invalid(field, "contains a NUL byte"))
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
    fn minimal_config() {
        let spec = parse_str(&config(PROCESS, "")).unwrap();
        assert_eq!(spec.args, [c"sh", c"-c", c"echo \"hi\""]);
        assert!(spec.env.is_empty());
        assert_eq!(spec.cwd.as_path(), Path::new("/"));
        assert_eq!(spec.user, User::default());
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
            spec.user,
            User {
                uid: 1000,
                gid: 100,
                additional_gids: vec![5, 6],
                umask: Some(18)
            }
        );
        assert_eq!(spec.env, [c"PATH=/usr/bin:/bin", c"EMPTY="]);
        assert_eq!(spec.cwd.as_path(), Path::new("/srv/app"));
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
    fn unsupported_fields_are_named() {
        let cases = [
            (r#""terminal": true,"#, "", "process.terminal"),
            (
                r#""rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}],"#,
                "",
                "process.rlimits",
            ),
            ("", r#", "hooks": {"prestart": []}"#, "hooks"),
        ];
        for (process, extra, field) in cases {
            let json = config(&format!("{process}{PROCESS}"), extra);
            assert_eq!(
                error(&json),
                format!("config.json: {field} is not supported yet")
            );
        }
        let seccomp = r#""linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}, "#;
        let json = config(PROCESS, "").replace(r#""linux": {"#, seccomp);
        assert_eq!(
            error(&json),
            "config.json: linux.seccomp is not supported yet"
        );
        let json = config(PROCESS, r#", "annotations": {"a": "b"}, "x-vendor": 1"#);
        assert!(
            parse_str(&json).is_ok(),
            "annotations and unknown fields are accepted"
        );
        let mount = r#", "mounts": [{"destination": "/c", "type": "cgroup"}]"#;
        assert_eq!(
            error(&config(PROCESS, mount)),
            "config.json: mounts[0].type: cgroup is not supported yet"
        );
        let mount = r#", "mounts": [{"destination": "/d", "source": "d", "options": ["rbind", "rprivate"]}]"#;
        assert_eq!(
            error(&config(PROCESS, mount)),
            "config.json: mounts[0].options: rprivate is not supported yet"
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
            parse_str(&config(&process, "")).unwrap().args.len(),
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
                "linux.namespaces: a new user namespace is not supported yet",
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
    fn mount_options() {
        let field = Field::new("mounts").at(0).member("options");
        let parse = |options: &[&str]| parse_mount_options(field, options.iter().copied()).unwrap();
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
        assert_eq!(
            error(RUNC_DEFAULT),
            "config.json: process.terminal is not supported yet"
        );
        let without_terminal = RUNC_DEFAULT.replace(r#""terminal": true"#, r#""terminal": false"#);
        assert_eq!(
            error(&without_terminal),
            "config.json: process.capabilities is not supported yet"
        );
    }
}
