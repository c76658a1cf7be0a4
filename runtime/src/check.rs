//! `husk check`: what the running kernel offers husk, as `lxc-checkconfig`
//! reports it for LXC, and how it compares with a board's kernel config
//! fragment (`--board`).
//!
//! Two sources, both read under roots given as parameters ([`Roots`]), so the
//! unit tests run on fixture directories:
//!
//! - the kernel's build configuration, from `<proc>/config.gz` (gzip; needs
//!   `CONFIG_IKCONFIG_PROC`) or else `<boot>/config-<release>` (where Debian,
//!   Yocto and Buildroot images install it), parsed by [`KernelConfig::parse`];
//! - live probes, which win over the configuration because they show what the
//!   kernel does now (a controller compiled in but disabled on the command
//!   line, a module not loaded): `<proc>/self/ns/*`, `<proc>/filesystems`,
//!   `<sys>/fs/cgroup/cgroup.controllers`, the `Seccomp` fields of
//!   `<proc>/self/status`, `<proc>/sys/user/max_user_namespaces`.
//!
//! A feature is *required* when the container `husk spec` writes cannot run
//! without it (its namespaces, cgroup v2 with the `pids` controller for its
//! `pids.limit`, its seccomp filter); everything else is *optional*, with what
//! degrades without it.
//!
//! Exit status ([`Report::exit_code`]): 0 every required feature is there (and
//! the board fragment, if given, is met); 2 a required feature is missing; 3
//! the required features are there but the running kernel differs from the
//! board fragment. husk's own errors (a file that cannot be read, a malformed
//! fragment) exit 1, as every command's do.
//!
//! `--json` prints one object ([`Report::json`]), schema version 1:
//!
//! ```text
//! {"schemaVersion": 1,
//!  "kernel": "6.1.0-28-arm64",          release, from <proc>/sys/kernel/osrelease
//!  "arch": "aarch64",                   the architecture husk was built for
//!  "config": "/boot/config-6.1.0-28-arm64" | null,   where the config was read
//!  "ok": true,                          every required feature present
//!  "exitCode": 0,
//!  "features": [{"id": "ns.pid", "name": "pid namespace", "group": "namespaces",
//!                "required": true,
//!                "status": "yes" | "module" | "missing" | "unknown",
//!                "note": "module, not loaded" | null,
//!                "symbols": ["CONFIG_PID_NS"], "degrades": "..."}],
//!  "board": null | {"fragment": "board-configs/rpi4.config", "ok": false,
//!                   "symbols": [{"symbol": "CONFIG_MEMCG", "wanted": "y",
//!                                "running": "n" | "y" | "m" | "<value>" | null,
//!                                "ok": false}]}}
//! ```
//!
//! "module" counts as present (husk or the init system loads it); "unknown"
//! (no probe and no kernel config) does not fail the check but is reported.
//! In a fragment comparison a wanted `y` is met by `m` and a wanted `m` by `y`;
//! "n" is a `# CONFIG_X is not set` line; `running` is null when the symbol is
//! not in the running kernel's config at all (kconfig reads that as not set).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The largest kernel configuration or fragment read, decompressed (Debian's
/// configs are about 300 KB).
pub const MAX_CONFIG_BYTES: usize = 4 << 20;
/// The largest board TOML read.
pub const MAX_BOARD_BYTES: usize = 256 << 10;
/// The largest probe file read (`/proc/self/status`, `/proc/filesystems`).
pub const MAX_PROBE_BYTES: usize = 64 << 10;
/// The largest `--json` document written.
const MAX_JSON_BYTES: usize = 16 << 20;

/// What `husk check` reads the kernel from.
#[derive(Debug, Clone)]
pub struct Roots {
    /// procfs, `/proc` on a device.
    pub proc: PathBuf,
    /// sysfs, `/sys` on a device.
    pub sys: PathBuf,
    /// Where kernels and their configs are installed, `/boot` on a device.
    pub boot: PathBuf,
}

impl Roots {
    /// The running system's.
    pub fn host() -> Self {
        Self {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
            boot: PathBuf::from("/boot"),
        }
    }
}

/// Why `husk check` failed (as opposed to reporting a missing feature).
#[derive(Debug)]
pub enum CheckError {
    /// A file cannot be read (or, for `config.gz`, decompressed).
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is larger than husk reads.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A kernel config or fragment line is not kconfig.
    Parse {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A board TOML has no usable `kernel_fragment = "..."` line.
    BoardFragment {
        /// The board TOML.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// `--board` was given but the running kernel's config cannot be found.
    NoKernelConfig {
        /// The places looked at.
        tried: String,
    },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, .. } => write!(f, "check: reading {}", path.display()),
            Self::TooLarge { path, limit } => {
                write!(f, "check: {} is larger than {limit} bytes", path.display())
            }
            Self::Parse { path, line, reason } => {
                write!(f, "check: {} line {line}: {reason}", path.display())
            }
            Self::BoardFragment { path, reason } => {
                write!(f, "check: board {}: {reason}", path.display())
            }
            Self::NoKernelConfig { tried } => write!(
                f,
                "check: --board needs the running kernel's config, found none at {tried} \
                 (enable CONFIG_IKCONFIG_PROC or install the config)"
            ),
        }
    }
}

impl std::error::Error for CheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One symbol's setting in a kernel configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// `CONFIG_X=y`: built in.
    Yes,
    /// `CONFIG_X=m`: a module.
    Module,
    /// `# CONFIG_X is not set` (or `CONFIG_X=n`).
    NotSet,
    /// `CONFIG_X=<value>`: a number, hex or string value, as written.
    Value(String),
}

impl Setting {
    /// As a config file writes it after the `=`; "n" for not set.
    fn as_str(&self) -> &str {
        match self {
            Self::Yes => "y",
            Self::Module => "m",
            Self::NotSet => "n",
            Self::Value(v) => v,
        }
    }

    /// Whether `running` satisfies this setting, wanted by a fragment.
    fn met_by(&self, running: Option<&Setting>) -> bool {
        match (self, running) {
            (Self::Yes | Self::Module, Some(Self::Yes | Self::Module)) => true,
            (Self::NotSet, None | Some(Self::NotSet)) => true,
            (Self::Value(want), Some(Self::Value(have))) => want == have,
            _ => false,
        }
    }
}

/// A kernel configuration (`.config`, `/proc/config.gz`) or fragment: each
/// `CONFIG_` symbol's setting, the last one written winning, as kconfig merges.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KernelConfig {
    symbols: BTreeMap<String, Setting>,
}

/// Why a line is not kconfig ([`KernelConfig::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl KernelConfig {
    /// Parses kconfig text: `CONFIG_X=y`, `=m`, `=n`, `=<value>`,
    /// `# CONFIG_X is not set`, blank lines and other comments. Anything else
    /// is an error naming the line.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut symbols = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            let bad = |reason| ParseError {
                line: index + 1,
                reason,
            };
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let not_set = comment
                    .trim_start()
                    .strip_suffix(" is not set")
                    .filter(|name| name.starts_with("CONFIG_") && valid_symbol(name));
                if let Some(name) = not_set {
                    symbols.insert(name.to_owned(), Setting::NotSet);
                }
                continue;
            }
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| bad("expected CONFIG_NAME=value or a # comment"))?;
            if !name.starts_with("CONFIG_") || !valid_symbol(name) {
                return Err(bad("a symbol is CONFIG_ and then A-Z a-z 0-9 _"));
            }
            let setting = match value {
                "y" => Setting::Yes,
                "m" => Setting::Module,
                "n" => Setting::NotSet,
                "" => return Err(bad("no value after '='")),
                other => Setting::Value(other.to_owned()),
            };
            symbols.insert(name.to_owned(), setting);
        }
        Ok(Self { symbols })
    }

    /// A symbol's setting (`CONFIG_` included); `None` when the config does
    /// not mention it.
    pub fn get(&self, symbol: &str) -> Option<&Setting> {
        self.symbols.get(symbol)
    }

    /// How many symbols the config mentions.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether it mentions none.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }
}

fn valid_symbol(name: &str) -> bool {
    name.len() > "CONFIG_".len() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Where a feature belongs in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Linux namespaces.
    Namespaces,
    /// cgroup v2 and its controllers.
    Cgroups,
    /// Filesystems and block devices for images.
    Filesystems,
    /// System call filtering.
    Security,
    /// Container networking.
    Network,
}

impl Group {
    fn id(self) -> &'static str {
        match self {
            Self::Namespaces => "namespaces",
            Self::Cgroups => "cgroups",
            Self::Filesystems => "filesystems",
            Self::Security => "security",
            Self::Network => "network",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Namespaces => "Namespaces",
            Self::Cgroups => "cgroup v2",
            Self::Filesystems => "Filesystems",
            Self::Security => "Security",
            Self::Network => "Network",
        }
    }
}

/// How a feature is seen in the running kernel, beside its config symbols.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// Only the config tells.
    None,
    /// `<proc>/self/ns/<name>` exists.
    Namespace(&'static str),
    /// The user namespace file, and `max_user_namespaces` above 0.
    UserNamespaces,
    /// `<proc>/filesystems` lists it.
    Filesystem(&'static str),
    /// `<sys>/fs/cgroup/cgroup.controllers` exists (cgroup2 mounted there).
    Cgroup2,
    /// `<sys>/fs/cgroup/cgroup.controllers` lists it.
    Controller(&'static str),
    /// The `Seccomp` fields of `<proc>/self/status`.
    SeccompFilter,
    /// `<sys>/<path>` exists; its absence proves nothing (a built-in driver
    /// without parameters has no `/sys/module` entry).
    SysHint(&'static str),
}

/// A kernel feature husk needs or can use.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    /// Stable id for `--json`, e.g. `ns.pid`.
    pub id: &'static str,
    /// Short name for the report.
    pub name: &'static str,
    /// Its section.
    pub group: Group,
    /// Whether `husk spec`'s default container needs it.
    pub required: bool,
    /// The config symbols that must all be `y` (or `m`).
    pub symbols: &'static [&'static str],
    /// What does not work without it.
    pub degrades: &'static str,
    probe: Probe,
}

/// Every feature `husk check` reports, in report order.
pub const FEATURES: &[Feature] = &[
    Feature {
        id: "ns.mount",
        name: "mount namespace",
        group: Group::Namespaces,
        required: true,
        symbols: &[],
        degrades: "no container can have mounts of its own: husk cannot run any",
        probe: Probe::Namespace("mnt"),
    },
    Feature {
        id: "ns.pid",
        name: "pid namespace",
        group: Group::Namespaces,
        required: true,
        symbols: &["CONFIG_PID_NS"],
        degrades: "containers see and signal every host process; \
                   configs with a pid namespace fail",
        probe: Probe::Namespace("pid"),
    },
    Feature {
        id: "ns.uts",
        name: "uts namespace",
        group: Group::Namespaces,
        required: true,
        symbols: &["CONFIG_UTS_NS"],
        degrades: "no hostname of their own; configs with a uts namespace fail",
        probe: Probe::Namespace("uts"),
    },
    Feature {
        id: "ns.ipc",
        name: "ipc namespace",
        group: Group::Namespaces,
        required: true,
        symbols: &["CONFIG_IPC_NS"],
        degrades: "containers share the host's System V IPC and message queues; \
                   configs with an ipc namespace fail",
        probe: Probe::Namespace("ipc"),
    },
    Feature {
        id: "ns.net",
        name: "network namespace",
        group: Group::Namespaces,
        required: true,
        symbols: &["CONFIG_NET_NS"],
        degrades: "containers share the host's network; \
                   configs with a network namespace fail",
        probe: Probe::Namespace("net"),
    },
    Feature {
        id: "ns.cgroup",
        name: "cgroup namespace",
        group: Group::Namespaces,
        required: true,
        // No symbol of its own: every kernel with cgroups has it (4.6 on).
        symbols: &["CONFIG_CGROUPS"],
        degrades: "containers see the host's cgroup tree; \
                   configs with a cgroup namespace fail",
        probe: Probe::Namespace("cgroup"),
    },
    Feature {
        id: "ns.user",
        name: "user namespace",
        group: Group::Namespaces,
        required: false,
        symbols: &["CONFIG_USER_NS"],
        degrades: "no rootless containers and no linux.uidMappings: \
                   container root is host root",
        probe: Probe::UserNamespaces,
    },
    Feature {
        id: "cgroup2",
        name: "cgroup2 at /sys/fs/cgroup",
        group: Group::Cgroups,
        required: true,
        symbols: &["CONFIG_CGROUPS"],
        degrades: "no cgroup per container: no limits, pause or ps \
                   (mount -t cgroup2 none /sys/fs/cgroup)",
        probe: Probe::Cgroup2,
    },
    Feature {
        id: "cgroup.pids",
        name: "pids controller",
        group: Group::Cgroups,
        required: true,
        symbols: &["CONFIG_CGROUP_PIDS"],
        degrades: "process counts cannot be limited (fork bombs); \
                   linux.resources.pids, which husk spec sets, fails",
        probe: Probe::Controller("pids"),
    },
    Feature {
        id: "cgroup.memory",
        name: "memory controller",
        group: Group::Cgroups,
        required: false,
        symbols: &["CONFIG_MEMCG"],
        degrades: "memory limits cannot be enforced and OOM kills are not \
                   counted; linux.resources.memory fails \
                   (Raspberry Pi kernels: add cgroup_enable=memory)",
        probe: Probe::Controller("memory"),
    },
    Feature {
        id: "cgroup.cpu",
        name: "cpu controller",
        group: Group::Cgroups,
        required: false,
        symbols: &["CONFIG_CGROUP_SCHED", "CONFIG_FAIR_GROUP_SCHED"],
        degrades: "CPU weights cannot be set; linux.resources.cpu fails",
        probe: Probe::Controller("cpu"),
    },
    Feature {
        id: "cgroup.cpu.bandwidth",
        name: "CPU bandwidth (quota)",
        group: Group::Cgroups,
        required: false,
        symbols: &["CONFIG_CFS_BANDWIDTH"],
        degrades: "cpu quota and period (cpu.max) cannot be set",
        probe: Probe::None,
    },
    Feature {
        id: "cgroup.cpuset",
        name: "cpuset controller",
        group: Group::Cgroups,
        required: false,
        symbols: &["CONFIG_CPUSETS"],
        degrades: "containers cannot be pinned to CPUs or memory nodes",
        probe: Probe::Controller("cpuset"),
    },
    Feature {
        id: "cgroup.io",
        name: "io controller",
        group: Group::Cgroups,
        required: false,
        symbols: &["CONFIG_BLK_CGROUP"],
        degrades: "block I/O weights and limits cannot be set",
        probe: Probe::Controller("io"),
    },
    Feature {
        id: "cgroup.bpf",
        name: "cgroup BPF (device filter)",
        group: Group::Cgroups,
        required: false,
        symbols: &["CONFIG_CGROUP_BPF", "CONFIG_BPF_SYSCALL"],
        degrades: "no device cgroup for cgroup v2: device access cannot be \
                   filtered (husk does not filter yet; it will need this)",
        probe: Probe::None,
    },
    Feature {
        id: "fs.overlay",
        name: "overlayfs",
        group: Group::Filesystems,
        required: false,
        symbols: &["CONFIG_OVERLAY_FS"],
        degrades: "no writable layer over a read-only image; \
                   plain OCI bundles still run",
        probe: Probe::Filesystem("overlay"),
    },
    Feature {
        id: "fs.squashfs",
        name: "squashfs",
        group: Group::Filesystems,
        required: false,
        symbols: &["CONFIG_SQUASHFS"],
        degrades: "compressed read-only image files cannot be mounted",
        probe: Probe::Filesystem("squashfs"),
    },
    Feature {
        id: "fs.loop",
        name: "loop devices",
        group: Group::Filesystems,
        required: false,
        symbols: &["CONFIG_BLK_DEV_LOOP"],
        degrades: "image files cannot be mounted as filesystems",
        probe: Probe::SysHint("devices/virtual/misc/loop-control"),
    },
    Feature {
        id: "seccomp",
        name: "seccomp filter",
        group: Group::Security,
        required: true,
        symbols: &["CONFIG_SECCOMP", "CONFIG_SECCOMP_FILTER"],
        degrades: "no system call filtering: linux.seccomp, which husk spec \
                   sets, fails",
        probe: Probe::SeccompFilter,
    },
    Feature {
        id: "net.veth",
        name: "veth pairs",
        group: Group::Network,
        required: false,
        symbols: &["CONFIG_VETH"],
        degrades: "a container's network namespace can have loopback only: \
                   no link to the host",
        probe: Probe::SysHint("module/veth"),
    },
    Feature {
        id: "net.bridge",
        name: "bridge",
        group: Group::Network,
        required: false,
        symbols: &["CONFIG_BRIDGE"],
        degrades: "containers cannot share a network segment with each other \
                   or the host",
        probe: Probe::SysHint("module/bridge"),
    },
];

/// What the kernel offers of one feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// There (seen live, or built in).
    Yes,
    /// Built as a module, not seen live: load it at boot.
    Module,
    /// Not there.
    Missing,
    /// No probe and no kernel config to tell.
    Unknown,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::Module => "module",
            Self::Missing => "missing",
            Self::Unknown => "unknown",
        }
    }

    fn present(self) -> bool {
        matches!(self, Self::Yes | Self::Module)
    }
}

/// One feature's line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The feature.
    pub id: &'static str,
    /// What the kernel offers.
    pub status: Status,
    /// Why, when the status alone would mislead.
    pub note: Option<&'static str>,
}

/// One fragment symbol compared with the running kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolCheck {
    /// `CONFIG_...`.
    pub symbol: String,
    /// What the fragment sets.
    pub wanted: Setting,
    /// What the running kernel has; `None` when its config lacks the symbol.
    pub running: Option<Setting>,
}

impl SymbolCheck {
    /// Whether the running kernel meets the fragment here.
    pub fn ok(&self) -> bool {
        self.wanted.met_by(self.running.as_ref())
    }
}

/// The comparison with a board fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardCheck {
    /// The fragment file.
    pub fragment: PathBuf,
    /// Every symbol of the fragment, in name order.
    pub symbols: Vec<SymbolCheck>,
}

impl BoardCheck {
    /// Whether every symbol is met.
    pub fn ok(&self) -> bool {
        self.symbols.iter().all(SymbolCheck::ok)
    }
}

/// Everything `husk check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The kernel release (`uname -r`), if readable.
    pub kernel: Option<String>,
    /// Where the kernel config came from, if found.
    pub config: Option<PathBuf>,
    /// One per [`FEATURES`] entry, in the same order.
    pub findings: Vec<Finding>,
    /// The `--board` comparison.
    pub board: Option<BoardCheck>,
}

/// Runs the check against the kernel under `roots`, comparing it with the
/// fragment `board` leads to (a kconfig fragment, or a board TOML naming one).
pub fn run(roots: &Roots, board: Option<&Path>) -> Result<Report, CheckError> {
    let kernel = read_probe(&roots.proc.join("sys/kernel/osrelease"))
        .map(|release| release.trim().to_owned())
        .filter(|release| !release.is_empty());
    let found = read_kernel_config(roots, kernel.as_deref())?;
    let board = match board {
        None => None,
        Some(path) => {
            let fragment_path = fragment_of(path)?;
            let fragment = read_config_file(&fragment_path)?;
            let Some((_, running)) = &found else {
                return Err(CheckError::NoKernelConfig {
                    tried: config_candidates(roots, kernel.as_deref())
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" and "),
                });
            };
            Some(compare(fragment_path, &fragment, running))
        }
    };
    let config = found.as_ref().map(|(_, config)| config);
    let findings = FEATURES
        .iter()
        .map(|feature| evaluate(feature, roots, config))
        .collect();
    Ok(Report {
        kernel,
        config: found.map(|(path, _)| path),
        findings,
        board,
    })
}

/// The symbols of `fragment` compared with `running`.
pub fn compare(
    fragment_path: PathBuf,
    fragment: &KernelConfig,
    running: &KernelConfig,
) -> BoardCheck {
    BoardCheck {
        fragment: fragment_path,
        symbols: fragment
            .symbols
            .iter()
            .map(|(symbol, wanted)| SymbolCheck {
                symbol: symbol.clone(),
                wanted: wanted.clone(),
                running: running.get(symbol).cloned(),
            })
            .collect(),
    }
}

fn config_candidates(roots: &Roots, release: Option<&str>) -> Vec<PathBuf> {
    let mut paths = vec![roots.proc.join("config.gz")];
    if let Some(release) = release {
        paths.push(roots.boot.join(format!("config-{release}")));
    }
    paths
}

/// The running kernel's config and where it was read: `<proc>/config.gz`,
/// else `<boot>/config-<release>`; `None` if neither exists.
fn read_kernel_config(
    roots: &Roots,
    release: Option<&str>,
) -> Result<Option<(PathBuf, KernelConfig)>, CheckError> {
    for path in config_candidates(roots, release) {
        if path.exists() {
            let config = read_config_file(&path)?;
            return Ok(Some((path, config)));
        }
    }
    Ok(None)
}

/// Reads and parses a kconfig file, decompressing it if its name ends `.gz`.
fn read_config_file(path: &Path) -> Result<KernelConfig, CheckError> {
    let read_error = |source| CheckError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let limit = MAX_CONFIG_BYTES;
    let reader: Box<dyn Read> = if path.extension() == Some("gz".as_ref()) {
        Box::new(crate::gzip::Decoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(file)
    };
    let too_large = || CheckError::TooLarge {
        path: path.to_owned(),
        limit,
    };
    let bytes = crate::file::read_capped(reader, limit)
        .map_err(read_error)?
        .ok_or_else(too_large)?;
    let text = String::from_utf8_lossy(&bytes);
    KernelConfig::parse(&text).map_err(|e| CheckError::Parse {
        path: path.to_owned(),
        line: e.line,
        reason: e.reason,
    })
}

/// The fragment `--board PATH` names: PATH itself, or, for a `.toml` board
/// file, the file its `kernel_fragment = "..."` line names, relative to the
/// TOML's directory. husk reads only that one line ([`kernel_fragment_line`]);
/// it has no TOML parser (binary size).
pub fn fragment_of(path: &Path) -> Result<PathBuf, CheckError> {
    if path.extension() != Some("toml".as_ref()) {
        return Ok(path.to_owned());
    }
    let bytes = read_limited(path, MAX_BOARD_BYTES)?;
    let text = String::from_utf8_lossy(&bytes);
    let name = kernel_fragment_line(&text).map_err(|reason| CheckError::BoardFragment {
        path: path.to_owned(),
        reason,
    })?;
    Ok(path.parent().unwrap_or(Path::new(".")).join(name))
}

/// The value of the first `kernel_fragment = "..."` line of a board TOML:
/// a basic string without escapes, optionally followed by a `#` comment.
pub fn kernel_fragment_line(toml: &str) -> Result<&str, &'static str> {
    match string_line(toml, "kernel_fragment") {
        Ok(Some(name)) => Ok(name),
        Ok(None) => Err("no kernel_fragment = \"...\" line"),
        Err(_) => Err("kernel_fragment must be a \"quoted\" file name without escapes"),
    }
}

/// The value of the first `key = "..."` line of a board TOML (`None`: no
/// such line), a basic string without escapes, optionally followed by a `#`
/// comment; an error saying so if that line's value is not one. The one
/// way husk reads board files: it has no TOML parser (binary size).
pub fn string_line<'a>(toml: &'a str, key: &str) -> Result<Option<&'a str>, String> {
    let malformed = || format!("{key} must be a \"quoted\" string without escapes");
    for line in toml.lines() {
        let Some(rest) = line.trim().strip_prefix(key) else {
            continue;
        };
        let Some(value) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.trim().strip_prefix('"').ok_or_else(malformed)?;
        let (name, after) = value.split_once('"').ok_or_else(malformed)?;
        let after = after.trim();
        if name.is_empty() || name.contains('\\') || !(after.is_empty() || after.starts_with('#')) {
            return Err(malformed());
        }
        return Ok(Some(name));
    }
    Ok(None)
}

fn read_limited(path: &Path, limit: usize) -> Result<Vec<u8>, CheckError> {
    std::fs::File::open(path)
        .and_then(|f| crate::file::read_capped(f, limit))
        .map_err(|source| CheckError::Read {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| CheckError::TooLarge {
            path: path.to_owned(),
            limit,
        })
}

/// A small kernel file as text, or `None` if it cannot be read.
fn read_probe(path: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PROBE_BYTES as u64).read_to_end(&mut bytes))
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// What a probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Present,
    Absent(Option<&'static str>),
    Inconclusive,
}

fn probe(probe: Probe, roots: &Roots) -> Seen {
    let present = |yes: bool| {
        if yes {
            Seen::Present
        } else {
            Seen::Absent(None)
        }
    };
    let cgroup_root = roots.sys.join("fs/cgroup");
    match probe {
        Probe::None => Seen::Inconclusive,
        Probe::Namespace(name) => present(roots.proc.join("self/ns").join(name).exists()),
        Probe::UserNamespaces => {
            if !roots.proc.join("self/ns/user").exists() {
                return Seen::Absent(None);
            }
            match read_probe(&roots.proc.join("sys/user/max_user_namespaces")) {
                Some(max) if max.trim() == "0" => Seen::Absent(Some("max_user_namespaces is 0")),
                _ => Seen::Present,
            }
        }
        Probe::Filesystem(name) => match read_probe(&roots.proc.join("filesystems")) {
            Some(list) => present(
                list.lines()
                    .any(|line| line.split_whitespace().last() == Some(name)),
            ),
            None => Seen::Inconclusive,
        },
        Probe::Cgroup2 => {
            if cgroup_root.join("cgroup.controllers").exists() {
                return Seen::Present;
            }
            let supported = read_probe(&roots.proc.join("filesystems")).is_some_and(|list| {
                list.lines()
                    .any(|l| l.split_whitespace().last() == Some("cgroup2"))
            });
            Seen::Absent(supported.then_some("supported, not mounted there"))
        }
        Probe::Controller(name) => match read_probe(&cgroup_root.join("cgroup.controllers")) {
            Some(list) => match list.split_whitespace().any(|c| c == name) {
                true => Seen::Present,
                false => Seen::Absent(Some("not in cgroup.controllers")),
            },
            None => Seen::Inconclusive,
        },
        Probe::SeccompFilter => match read_probe(&roots.proc.join("self/status")) {
            Some(status) => {
                let has = |field: &str| status.lines().any(|l| l.starts_with(field));
                if has("Seccomp_filters:") {
                    Seen::Present
                } else if has("Seccomp:") {
                    // Before Linux 5.9 only the config tells filters apart.
                    Seen::Inconclusive
                } else {
                    Seen::Absent(None)
                }
            }
            None => Seen::Inconclusive,
        },
        Probe::SysHint(path) => match roots.sys.join(path).exists() {
            true => Seen::Present,
            false => Seen::Inconclusive,
        },
    }
}

/// What the config says of all of `symbols`: `None` without a config or
/// symbols.
fn from_config(symbols: &[&str], config: Option<&KernelConfig>) -> Option<Status> {
    let config = config?;
    if symbols.is_empty() {
        return None;
    }
    let mut status = Status::Yes;
    for symbol in symbols {
        match config.get(symbol) {
            Some(Setting::Yes) => {}
            Some(Setting::Module) => status = Status::Module,
            _ => return Some(Status::Missing),
        }
    }
    Some(status)
}

/// One feature: a live probe wins; the config fills in what it cannot see.
fn evaluate(feature: &Feature, roots: &Roots, config: Option<&KernelConfig>) -> Finding {
    let configured = from_config(feature.symbols, config);
    let (status, note) = match (probe(feature.probe, roots), configured) {
        (Seen::Present, _) => (Status::Yes, None),
        (Seen::Absent(_), Some(Status::Module)) => (Status::Module, Some("module, not loaded")),
        (Seen::Absent(note), Some(Status::Yes)) => (
            Status::Missing,
            note.or(Some("configured, but not in the running kernel")),
        ),
        (Seen::Absent(note), _) => (Status::Missing, note),
        (Seen::Inconclusive, Some(Status::Module)) => (Status::Module, None),
        (Seen::Inconclusive, Some(status)) => (status, None),
        (Seen::Inconclusive, None) => (Status::Unknown, None),
    };
    Finding {
        id: feature.id,
        status,
        note,
    }
}

fn feature(id: &str) -> &'static Feature {
    FEATURES
        .iter()
        .find(|f| f.id == id)
        .expect("findings come from FEATURES")
}

impl Report {
    /// Required features that are not present.
    pub fn missing_required(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| {
            feature(f.id).required && !f.status.present() && f.status != Status::Unknown
        })
    }

    /// 0 ready, 2 a required feature missing, 3 the board fragment not met.
    pub fn exit_code(&self) -> u8 {
        if self.missing_required().next().is_some() {
            2
        } else if self.board.as_ref().is_some_and(|b| !b.ok()) {
            3
        } else {
            0
        }
    }

    /// The plain-text report, each line at most 80 columns; with `colour`,
    /// statuses in ANSI colours.
    pub fn text(&self, colour: bool) -> String {
        const WIDTH: usize = 80;
        let paint = |text: &str, code: &str| {
            if colour {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_owned()
            }
        };
        let mut out = String::new();
        out.push_str(&format!(
            "husk check: kernel {} ({})\n",
            self.kernel.as_deref().unwrap_or("unknown"),
            std::env::consts::ARCH
        ));
        match &self.config {
            Some(path) => out.push_str(&format!("kernel config: {}\n", path.display())),
            None => out.push_str(
                "kernel config: not found (no /proc/config.gz or /boot/config-*): \
                 live probes only\n",
            ),
        }
        let mut group = None;
        for finding in &self.findings {
            let feature = feature(finding.id);
            if group != Some(feature.group) {
                group = Some(feature.group);
                out.push_str(&format!("\n{}\n", feature.group.title()));
            }
            let (word, code) = match (finding.status, feature.required) {
                (Status::Yes, _) => ("yes", "32"),
                (Status::Module, _) => ("module", "32"),
                (Status::Missing, true) => ("MISSING", "1;31"),
                (Status::Missing, false) => ("missing", "33"),
                (Status::Unknown, _) => ("unknown", "33"),
            };
            let need = if feature.required {
                "required"
            } else {
                "optional"
            };
            out.push_str(&format!(
                "  {:<30} {need:<9} {}\n",
                feature.name,
                paint(word, code)
            ));
            let detail = match (finding.note, finding.status.present()) {
                (Some(note), true) => note.to_owned(),
                (Some(note), false) => format!("{note}: {}", feature.degrades),
                (None, false) => feature.degrades.to_owned(),
                (None, true) => continue,
            };
            out.push_str(&wrap(&detail, "      ", WIDTH));
        }
        let missing: Vec<&str> = self
            .missing_required()
            .map(|f| feature(f.id).name)
            .collect();
        let optional = self
            .findings
            .iter()
            .filter(|f| !feature(f.id).required && f.status == Status::Missing)
            .count();
        let unknown = self
            .findings
            .iter()
            .filter(|f| f.status == Status::Unknown)
            .count();
        out.push('\n');
        let summary = if missing.is_empty() {
            format!(
                "Ready: every required feature is present; {optional} optional \
                 missing, {unknown} unknown."
            )
        } else {
            format!("NOT READY: missing required {}.", missing.join(", "))
        };
        out.push_str(&wrap(&summary, "", WIDTH));
        if let Some(board) = &self.board {
            let differ: Vec<&SymbolCheck> = board.symbols.iter().filter(|s| !s.ok()).collect();
            out.push_str(&format!("\nBoard fragment {}\n", board.fragment.display()));
            for symbol in &differ {
                let running = symbol.running.as_ref().map_or("absent", Setting::as_str);
                let line = format!(
                    "{}: wanted {}, running {running}",
                    symbol.symbol,
                    symbol.wanted.as_str()
                );
                out.push_str(&wrap(&line, "  ", WIDTH));
            }
            out.push_str(&format!(
                "{} of {} symbols as the fragment sets them{}\n",
                board.symbols.len() - differ.len(),
                board.symbols.len(),
                if differ.is_empty() {
                    "."
                } else {
                    "; differing above."
                }
            ));
        }
        out
    }

    /// The `--json` document (schema in the module docs).
    pub fn json(&self) -> String {
        let symbols: Vec<WireSymbol> = self
            .board
            .iter()
            .flat_map(|b| &b.symbols)
            .map(|s| WireSymbol {
                symbol: &s.symbol,
                wanted: s.wanted.as_str(),
                running: s.running.as_ref().map(Setting::as_str),
                ok: s.ok(),
            })
            .collect();
        let fragment = self
            .board
            .as_ref()
            .map(|b| b.fragment.to_string_lossy().into_owned());
        let features: Vec<WireFeature> = self
            .findings
            .iter()
            .map(|f| {
                let feature = feature(f.id);
                WireFeature {
                    id: feature.id,
                    name: feature.name,
                    group: feature.group.id(),
                    required: feature.required,
                    status: f.status.as_str(),
                    note: f.note,
                    symbols: feature.symbols,
                    degrades: feature.degrades,
                }
            })
            .collect();
        let config = self.config.as_ref().map(|p| p.to_string_lossy());
        let wire = WireReport {
            schema_version: 1,
            kernel: self.kernel.as_deref(),
            arch: std::env::consts::ARCH,
            config: config.as_deref(),
            ok: self.missing_required().next().is_none(),
            exit_code: self.exit_code(),
            features: &features,
            board: fragment.as_deref().map(|fragment| WireBoard {
                fragment,
                ok: self.board.as_ref().is_some_and(BoardCheck::ok),
                symbols: &symbols,
            }),
        };
        let mut size = 64 << 10;
        loop {
            let mut buf = vec![0; size];
            match serde_json_core::to_slice(&wire, &mut buf) {
                Ok(len) => {
                    buf.truncate(len);
                    return String::from_utf8_lossy(&buf).into_owned();
                }
                // Escaping at most sextuples the bounded inputs, so this ends.
                Err(_) if size < MAX_JSON_BYTES => size *= 2,
                Err(_) => return String::from("{}"),
            }
        }
    }
}

/// `text` wrapped at `width` columns, each line starting with `indent`.
fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from(indent);
    for word in text.split_whitespace() {
        if line.len() > indent.len() && line.len() + 1 + word.len() > width {
            out.push_str(&line);
            out.push('\n');
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireReport<'a> {
    schema_version: u8,
    kernel: Option<&'a str>,
    arch: &'a str,
    config: Option<&'a str>,
    ok: bool,
    exit_code: u8,
    features: &'a [WireFeature<'a>],
    board: Option<WireBoard<'a>>,
}

#[derive(Serialize)]
struct WireFeature<'a> {
    id: &'a str,
    name: &'a str,
    group: &'a str,
    required: bool,
    status: &'a str,
    note: Option<&'a str>,
    symbols: &'a [&'a str],
    degrades: &'a str,
}

#[derive(Serialize)]
struct WireBoard<'a> {
    fragment: &'a str,
    ok: bool,
    symbols: &'a [WireSymbol<'a>],
}

#[derive(Serialize)]
struct WireSymbol<'a> {
    symbol: &'a str,
    wanted: &'a str,
    running: Option<&'a str>,
    ok: bool,
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

    use super::*;
    use crate::testutil::TempDir;

    const RELEASE: &str = "6.1.0-test";

    /// A kernel config with every symbol husk checks built in, overlayfs and
    /// squashfs as modules.
    const FULL_CONFIG: &str = "\
# Linux/arm64 6.1.0 Kernel Configuration
CONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0-14) 12.2.0\"
CONFIG_NAMESPACES=y
CONFIG_UTS_NS=y
CONFIG_IPC_NS=y
CONFIG_PID_NS=y
CONFIG_NET_NS=y
CONFIG_USER_NS=y
CONFIG_CGROUPS=y
CONFIG_CGROUP_PIDS=y
CONFIG_MEMCG=y
CONFIG_CGROUP_SCHED=y
CONFIG_FAIR_GROUP_SCHED=y
CONFIG_CFS_BANDWIDTH=y
CONFIG_CPUSETS=y
CONFIG_BLK_CGROUP=y
CONFIG_CGROUP_BPF=y
CONFIG_BPF_SYSCALL=y
CONFIG_OVERLAY_FS=m
CONFIG_SQUASHFS=m
CONFIG_BLK_DEV_LOOP=y
CONFIG_SECCOMP=y
CONFIG_SECCOMP_FILTER=y
CONFIG_VETH=m
CONFIG_BRIDGE=m
# CONFIG_IKCONFIG is not set
CONFIG_LOG_BUF_SHIFT=17
";

    /// A device tree under a temp dir: `proc`, `sys` and `boot`.
    struct Device {
        dir: TempDir,
    }

    impl Device {
        /// A kernel with every namespace, cgroup2 mounted with `controllers`,
        /// `filesystems` registered, a seccomp status with filters.
        fn new(controllers: &str, filesystems: &[&str]) -> Self {
            let device = Self {
                dir: TempDir::new("check"),
            };
            for ns in ["mnt", "pid", "uts", "ipc", "net", "cgroup", "user"] {
                device.write(&format!("proc/self/ns/{ns}"), "");
            }
            device.write("proc/sys/kernel/osrelease", &format!("{RELEASE}\n"));
            device.write("proc/sys/user/max_user_namespaces", "15000\n");
            device.write(
                "proc/self/status",
                "Name:\thusk\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n",
            );
            let mut list = String::from("nodev\tsysfs\nnodev\tproc\nnodev\tcgroup2\n");
            for fs in filesystems {
                list.push_str(&format!("nodev\t{fs}\n"));
            }
            device.write("proc/filesystems", &list);
            device.write(
                "sys/fs/cgroup/cgroup.controllers",
                &format!("{controllers}\n"),
            );
            fs::create_dir_all(device.path("boot")).unwrap();
            device
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        fn write(&self, rel: &str, text: &str) {
            let path = self.path(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        fn roots(&self) -> Roots {
            Roots {
                proc: self.path("proc"),
                sys: self.path("sys"),
                boot: self.path("boot"),
            }
        }

        fn boot_config(&self, text: &str) {
            self.write(&format!("boot/config-{RELEASE}"), text);
        }

        fn check(&self, board: Option<&Path>) -> Report {
            run(&self.roots(), board).expect("check should run")
        }
    }

    fn complete() -> Device {
        Device::new("cpuset cpu io memory pids", &["overlay", "squashfs"])
    }

    fn status(report: &Report, id: &str) -> (Status, Option<&'static str>) {
        let finding = report.findings.iter().find(|f| f.id == id).unwrap();
        (finding.status, finding.note)
    }

    #[test]
    fn parses_kconfig_settings() {
        let config = KernelConfig::parse(FULL_CONFIG).unwrap();
        assert_eq!(config.get("CONFIG_PID_NS"), Some(&Setting::Yes));
        assert_eq!(config.get("CONFIG_OVERLAY_FS"), Some(&Setting::Module));
        assert_eq!(config.get("CONFIG_IKCONFIG"), Some(&Setting::NotSet));
        assert_eq!(
            config.get("CONFIG_LOG_BUF_SHIFT"),
            Some(&Setting::Value("17".into()))
        );
        assert_eq!(
            config.get("CONFIG_CC_VERSION_TEXT"),
            Some(&Setting::Value("\"gcc (Debian 12.2.0-14) 12.2.0\"".into()))
        );
        assert_eq!(config.get("CONFIG_MISSING"), None);
        // The heading comment is not a symbol.
        assert_eq!(config.len(), 26);
        let merged =
            KernelConfig::parse("CONFIG_A=y\n  \n# CONFIG_A is not set\nCONFIG_B=n\n").unwrap();
        assert_eq!(
            merged.get("CONFIG_A"),
            Some(&Setting::NotSet),
            "the last line wins"
        );
        assert_eq!(merged.get("CONFIG_B"), Some(&Setting::NotSet));
        assert!(KernelConfig::parse("\n# only a comment\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn rejects_lines_that_are_not_kconfig() {
        for (text, line, reason) in [
            (
                "CONFIG_A=y\nnonsense\n",
                2,
                "expected CONFIG_NAME=value or a # comment",
            ),
            ("FOO=y\n", 1, "a symbol is CONFIG_ and then A-Z a-z 0-9 _"),
            (
                "CONFIG_=y\n",
                1,
                "a symbol is CONFIG_ and then A-Z a-z 0-9 _",
            ),
            (
                "CONFIG_A-B=y\n",
                1,
                "a symbol is CONFIG_ and then A-Z a-z 0-9 _",
            ),
            ("\n\nCONFIG_A=\n", 3, "no value after '='"),
        ] {
            assert_eq!(
                KernelConfig::parse(text),
                Err(ParseError { line, reason }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn fragment_settings_are_met_as_kconfig_means_them() {
        use Setting::*;
        let value = |v: &str| Value(v.to_owned());
        for (wanted, running, ok) in [
            (Yes, Some(Yes), true),
            (Yes, Some(Module), true),
            (Module, Some(Yes), true),
            (Yes, Some(NotSet), false),
            (Yes, None, false),
            (NotSet, None, true),
            (NotSet, Some(NotSet), true),
            (NotSet, Some(Module), false),
            (value("17"), Some(value("17")), true),
            (value("17"), Some(value("18")), false),
            (value("17"), None, false),
        ] {
            assert_eq!(
                wanted.met_by(running.as_ref()),
                ok,
                "{wanted:?} {running:?}"
            );
        }
    }

    #[test]
    fn reads_the_kernel_fragment_line_of_a_board_toml() {
        let toml = "[board]\nname = \"x\"\n# kernel_fragment = \"commented.config\"\n\
                    kernel_fragment_notes = \"no\"\n  kernel_fragment=\"rpi4.config\"  # the fragment\n";
        assert_eq!(kernel_fragment_line(toml), Ok("rpi4.config"));
        assert_eq!(
            kernel_fragment_line("kernel_fragment = \"a.config\"\nkernel_fragment = \"b\"\n"),
            Ok("a.config")
        );
        let malformed = Err("kernel_fragment must be a \"quoted\" file name without escapes");
        for bad in [
            "kernel_fragment = a.config",
            "kernel_fragment = 'a.config'",
            "kernel_fragment = \"a\\\\b.config\"",
            "kernel_fragment = \"a.config",
            "kernel_fragment = \"\"",
            "kernel_fragment = \"a.config\" trailing",
        ] {
            assert_eq!(kernel_fragment_line(bad), malformed, "{bad:?}");
        }
        assert_eq!(
            kernel_fragment_line("[board]\nname = \"x\"\n"),
            Err("no kernel_fragment = \"...\" line")
        );
    }

    #[test]
    fn a_complete_kernel_is_ready() {
        let device = complete();
        device.boot_config(FULL_CONFIG);
        let report = device.check(None);
        assert_eq!(report.kernel.as_deref(), Some(RELEASE));
        assert_eq!(
            report.config,
            Some(device.path(&format!("boot/config-{RELEASE}")))
        );
        for finding in &report.findings {
            let expected = match finding.id {
                // Modules not seen live: no /sys/module entry in the fixture.
                "net.veth" | "net.bridge" => Status::Module,
                _ => Status::Yes,
            };
            assert_eq!(finding.status, expected, "{}", finding.id);
        }
        assert_eq!(report.findings.len(), FEATURES.len());
        assert_eq!(report.exit_code(), 0);
        assert!(report
            .text(false)
            .contains("\nReady: every required feature is present"));
    }

    #[test]
    fn proc_config_gz_comes_first() {
        let device = complete();
        device.boot_config("CONFIG_CFS_BANDWIDTH=y\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"# CONFIG_CFS_BANDWIDTH is not set\n")
            .unwrap();
        device.write_bytes("proc/config.gz", &gz.finish().unwrap());
        let report = device.check(None);
        assert_eq!(report.config, Some(device.path("proc/config.gz")));
        assert_eq!(status(&report, "cgroup.cpu.bandwidth").0, Status::Missing);
        // Not gzip at all: an error naming the file, not a guess.
        device.write("proc/config.gz", "CONFIG_A=y\n");
        let error = run(&device.roots(), None).unwrap_err();
        assert!(
            matches!(&error, CheckError::Read { path, .. } if path.ends_with("proc/config.gz"))
        );
        assert_eq!(
            error.to_string(),
            format!("check: reading {}", device.path("proc/config.gz").display())
        );
    }

    impl Device {
        fn write_bytes(&self, rel: &str, bytes: &[u8]) {
            let path = self.path(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
    }

    #[test]
    fn live_probes_win_over_the_config() {
        // Memory compiled in but not offered (cgroup_disable=memory on the
        // command line, as Raspberry Pi kernels ship); overlay a module not
        // loaded; squashfs built in yet not registered.
        let device = Device::new("cpuset cpu io pids", &[]);
        device.boot_config(&FULL_CONFIG.replace("CONFIG_SQUASHFS=m", "CONFIG_SQUASHFS=y"));
        device.write("sys/module/veth/refcnt", "0\n");
        let report = device.check(None);
        assert_eq!(
            status(&report, "cgroup.memory"),
            (Status::Missing, Some("not in cgroup.controllers"))
        );
        assert_eq!(
            status(&report, "fs.overlay"),
            (Status::Module, Some("module, not loaded"))
        );
        assert_eq!(
            status(&report, "fs.squashfs"),
            (
                Status::Missing,
                Some("configured, but not in the running kernel")
            )
        );
        assert_eq!(status(&report, "net.veth"), (Status::Yes, None));
        // Only optional features are missing: still ready.
        assert_eq!(report.exit_code(), 0);
        let text = report.text(false);
        assert!(
            text.contains("  memory controller              optional  missing\n"),
            "{text}"
        );
        assert!(
            text.contains("      not in cgroup.controllers: memory limits cannot be"),
            "{text}"
        );
        assert!(
            text.contains(
                "Ready: every required feature is present; 2 optional missing, 0 unknown."
            ),
            "{text}"
        );
    }

    #[test]
    fn a_missing_required_feature_fails_the_check() {
        let device = complete();
        device.boot_config(&FULL_CONFIG.replace(
            "CONFIG_SECCOMP_FILTER=y",
            "# CONFIG_SECCOMP_FILTER is not set",
        ));
        // A kernel without Seccomp_filters (before 5.9): the config decides.
        device.write("proc/self/status", "Name:\thusk\nSeccomp:\t0\n");
        fs::remove_file(device.path("proc/self/ns/pid")).unwrap();
        let report = device.check(None);
        assert_eq!(status(&report, "seccomp").0, Status::Missing);
        assert_eq!(status(&report, "ns.pid").0, Status::Missing);
        assert_eq!(report.exit_code(), 2);
        let text = report.text(false);
        assert!(
            text.contains("  seccomp filter                 required  MISSING\n"),
            "{text}"
        );
        assert!(
            text.contains("NOT READY: missing required pid namespace, seccomp filter."),
            "{text}"
        );
    }

    #[test]
    fn cgroup2_not_mounted_and_user_namespaces_off() {
        let device = complete();
        fs::remove_dir_all(device.path("sys/fs/cgroup")).unwrap();
        device.write("proc/sys/user/max_user_namespaces", "0\n");
        let report = device.check(None);
        assert_eq!(
            status(&report, "cgroup2"),
            (Status::Missing, Some("supported, not mounted there"))
        );
        assert_eq!(
            status(&report, "ns.user"),
            (Status::Missing, Some("max_user_namespaces is 0"))
        );
        // Controllers cannot be seen, and there is no config: unknown.
        assert_eq!(status(&report, "cgroup.pids").0, Status::Unknown);
        assert_eq!(report.exit_code(), 2);
    }

    #[test]
    fn without_a_kernel_config_probes_decide_and_the_rest_is_unknown() {
        let device = complete();
        let report = device.check(None);
        assert_eq!(report.config, None);
        assert_eq!(status(&report, "ns.pid").0, Status::Yes);
        assert_eq!(status(&report, "cgroup.cpu.bandwidth").0, Status::Unknown);
        assert_eq!(status(&report, "cgroup.bpf").0, Status::Unknown);
        // Unknown optional features do not fail the check.
        assert_eq!(report.exit_code(), 0);
        let text = report.text(false);
        assert!(text.contains("kernel config: not found"), "{text}");
        assert!(text.contains("0 optional missing, 5 unknown."), "{text}");
        // A board comparison needs the config.
        device.write("board.config", "CONFIG_PID_NS=y\n");
        let error = run(&device.roots(), Some(&device.path("board.config"))).unwrap_err();
        assert!(
            matches!(error, CheckError::NoKernelConfig { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("config.gz and "), "{error}");
    }

    #[test]
    fn compares_with_a_board_fragment_or_its_toml() {
        let device = complete();
        device.boot_config(FULL_CONFIG);
        device.write(
            "boards/pi.config",
            "# Raspberry Pi\nCONFIG_PID_NS=y\nCONFIG_OVERLAY_FS=y\n# CONFIG_IKCONFIG is not set\n",
        );
        device.write(
            "boards/pi.toml",
            "[board]\nname = \"Pi\"\nkernel_fragment = \"pi.config\"\n",
        );
        for board in ["boards/pi.config", "boards/pi.toml"] {
            let report = device.check(Some(&device.path(board)));
            let check = report.board.as_ref().unwrap();
            assert_eq!(check.fragment, device.path("boards/pi.config"));
            assert_eq!(check.symbols.len(), 3);
            assert!(check.ok(), "{check:?}");
            assert_eq!(report.exit_code(), 0);
            assert!(report
                .text(false)
                .ends_with("3 of 3 symbols as the fragment sets them.\n"));
        }
        device.write(
            "boards/pi.config",
            "CONFIG_PID_NS=y\nCONFIG_F2FS_FS=y\nCONFIG_LOG_BUF_SHIFT=14\n",
        );
        let report = device.check(Some(&device.path("boards/pi.toml")));
        assert_eq!(report.exit_code(), 3);
        let text = report.text(false);
        assert!(
            text.contains("\n  CONFIG_F2FS_FS: wanted y, running absent\n"),
            "{text}"
        );
        assert!(
            text.contains("\n  CONFIG_LOG_BUF_SHIFT: wanted 14, running 17\n"),
            "{text}"
        );
        assert!(text.ends_with("1 of 3 symbols as the fragment sets them; differing above.\n"));
        // A missing required feature outranks the board.
        fs::remove_file(device.path("proc/self/ns/uts")).unwrap();
        assert_eq!(
            device
                .check(Some(&device.path("boards/pi.toml")))
                .exit_code(),
            2
        );
    }

    #[test]
    fn bad_board_files_are_one_line_errors() {
        let device = complete();
        device.boot_config(FULL_CONFIG);
        device.write("bad.config", "CONFIG_A=y\nrubbish\n");
        device.write("none.toml", "[board]\nname = \"x\"\n");
        device.write("gone.toml", "kernel_fragment = \"gone.config\"\n");
        for (board, expected) in [
            (
                "bad.config",
                format!(
                    "check: {} line 2: expected CONFIG_NAME=value or a # comment",
                    device.path("bad.config").display()
                ),
            ),
            (
                "none.toml",
                format!(
                    "check: board {}: no kernel_fragment = \"...\" line",
                    device.path("none.toml").display()
                ),
            ),
            (
                "gone.toml",
                format!("check: reading {}", device.path("gone.config").display()),
            ),
            (
                "absent.config",
                format!("check: reading {}", device.path("absent.config").display()),
            ),
        ] {
            let error = run(&device.roots(), Some(&device.path(board))).unwrap_err();
            assert_eq!(error.to_string(), expected);
            assert!(!crate::error_chain(&error).contains('\n'));
        }
    }

    #[test]
    fn text_fits_80_columns_and_is_plain_unless_coloured() {
        // The worst case: everything missing, with notes, and long values.
        let device = Device::new("", &[]);
        device.boot_config("# nothing\n");
        device.write("proc/sys/user/max_user_namespaces", "0\n");
        device.write(
            "board.config",
            "CONFIG_CMDLINE=\"console=ttyS0,115200 root=/dev/mmcblk0p2 rootwait cgroup_enable=memory\"\n\
             CONFIG_A_RATHER_LONG_SYMBOL_NAME_FOR_A_DRIVER_OPTION=y\n",
        );
        let report = device.check(Some(&device.path("board.config")));
        let plain = report.text(false);
        for line in plain.lines() {
            assert!(line.chars().count() <= 80, "too wide: {line:?}");
        }
        assert!(!plain.contains('\x1b'));
        let coloured = report.text(true);
        assert!(coloured.contains("\x1b[1;31mMISSING\x1b[0m"), "{coloured}");
        assert!(coloured.contains("\x1b[33mmissing\x1b[0m"), "{coloured}");
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct JsonReport<'a> {
        schema_version: u8,
        kernel: Option<&'a str>,
        config: Option<&'a str>,
        ok: bool,
        exit_code: u8,
        #[serde(borrow)]
        features: heapless::Vec<JsonFeature<'a>, 32>,
        board: Option<JsonBoard<'a>>,
    }

    #[derive(serde::Deserialize)]
    struct JsonFeature<'a> {
        id: &'a str,
        required: bool,
        status: &'a str,
        note: Option<&'a str>,
    }

    #[derive(serde::Deserialize)]
    struct JsonBoard<'a> {
        ok: bool,
        #[serde(borrow)]
        symbols: heapless::Vec<JsonSymbol<'a>, 8>,
    }

    #[derive(serde::Deserialize)]
    struct JsonSymbol<'a> {
        symbol: &'a str,
        wanted: &'a str,
        running: Option<&'a str>,
        ok: bool,
    }

    #[test]
    fn json_follows_the_documented_schema() {
        let device = Device::new("cpuset cpu io pids", &["overlay"]);
        device.boot_config(FULL_CONFIG);
        device.write(
            "b.config",
            "CONFIG_MEMCG=y\nCONFIG_F2FS_FS=y\n# CONFIG_IKCONFIG is not set\n",
        );
        let report = device.check(Some(&device.path("b.config")));
        let json = report.json();
        let (doc, _): (JsonReport, _) = serde_json_core::from_str(&json).expect(&json);
        assert_eq!(doc.schema_version, 1);
        assert_eq!(doc.kernel, Some(RELEASE));
        assert!(doc
            .config
            .unwrap()
            .ends_with(&format!("boot/config-{RELEASE}")));
        assert!(doc.ok);
        assert_eq!(doc.exit_code, 3);
        assert_eq!(doc.features.len(), FEATURES.len());
        let memory = doc
            .features
            .iter()
            .find(|f| f.id == "cgroup.memory")
            .unwrap();
        assert!(!memory.required);
        assert_eq!(
            (memory.status, memory.note),
            ("missing", Some("not in cgroup.controllers"))
        );
        let squashfs = doc.features.iter().find(|f| f.id == "fs.squashfs").unwrap();
        assert_eq!(
            (squashfs.status, squashfs.note),
            ("module", Some("module, not loaded"))
        );
        assert!(
            doc.features
                .iter()
                .find(|f| f.id == "ns.pid")
                .unwrap()
                .required
        );
        let board = doc.board.unwrap();
        assert!(!board.ok);
        let symbols: Vec<_> = board
            .symbols
            .iter()
            .map(|s| (s.symbol, s.wanted, s.running, s.ok))
            .collect();
        assert_eq!(
            symbols,
            [
                ("CONFIG_F2FS_FS", "y", None, false),
                ("CONFIG_IKCONFIG", "n", Some("n"), true),
                ("CONFIG_MEMCG", "y", Some("y"), true),
            ]
        );
        // Without --board, "board" is null.
        let json = device.check(None).json();
        assert!(json.ends_with(",\"board\":null}"), "{json}");
    }
}
