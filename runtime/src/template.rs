//! What `husk spec` writes and `husk features` prints.
//!
//! The default `config.json` is runc's default made safe for a device and
//! limited to what husk honours: a read-only root, Docker's default
//! capabilities, no new privileges, a file-descriptor limit, runc's device
//! rule (deny all, so only husk's default devices are allowed), the masked
//! and read-only `/proc` paths runc uses, and husk's default seccomp
//! deny-list (`seccomp/default.json`). A unit test checks that husk accepts it.

use crate::seccomp;

/// The capabilities the default process keeps: Docker's default set.
/// `CAP_MKNOD` is safe with the default device rule: a node the container
/// makes of a device it is not allowed cannot be opened (nor made: `m` is
/// denied too).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The paths of the container's `/proc` and `/sys` hidden from it.
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// The paths of the container's `/proc` it may read but not write.
pub const READONLY_PATHS: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/interrupts",
];

/// The user `husk spec --rootless` writes a config for: the container's
/// root is this uid and gid on the host, and nothing else is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rootless {
    /// The host uid of the container's root.
    pub uid: u32,
    /// The host gid of the container's root.
    pub gid: u32,
}

/// The default `config.json`, as pretty-printed JSON text. With `rootless`,
/// what runc's `spec --rootless` changes: a new user namespace mapping only
/// that user's ids to root, no network namespace (an unprivileged user could
/// not connect it), `/sys` bound from the host (sysfs cannot be mounted
/// without a network namespace of one's own), no `gid=` mount option (gid 5
/// is not mapped) and no `linux.resources` (the cgroup may not be delegated).
pub fn default_config(rootless: Option<Rootless>) -> String {
    config(rootless, None)
}

/// The process a generated `config.json` runs instead of `husk spec`'s `sh`
/// as root (`husk run --image` takes it from the image), on a writable root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessTemplate {
    /// The program and its arguments.
    pub args: Vec<String>,
    /// `NAME=VALUE` entries.
    pub env: Vec<String>,
    /// The working directory, absolute.
    pub cwd: String,
    /// The user and group ids.
    pub user: (u32, u32),
}

/// What `husk run --image` adds to a container's config: limits (each only
/// when asked: a host without that controller could not run the container
/// otherwise), bind mounts, and the host's network instead of a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `memory.max`, in bytes (`--memory`).
    pub memory: Option<u64>,
    /// CPU time per 100 ms period, in microseconds (`--cpus` × 100000).
    pub cpu_quota: Option<u64>,
    /// `pids.max` (`--pids-limit`).
    pub pids: Option<u64>,
    /// Host directories or files bound into the container (`-v`).
    pub volumes: Vec<Volume>,
    /// Stay in the host's network namespace (`--net host`).
    pub host_network: bool,
}

/// One `-v HOST:CONTAINER[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The host path, absolute.
    pub host: String,
    /// Where in the container, absolute.
    pub container: String,
    /// Bound read-only.
    pub readonly: bool,
}

/// [`default_config`] running `process`, if given, on a writable root with
/// `options`' limits, volumes and network (and the device rules kept, but
/// not husk spec's pids limit).
pub fn config(
    rootless: Option<Rootless>,
    process: Option<(&ProcessTemplate, &RunOptions)>,
) -> String {
    let caps = json_list(&DEFAULT_CAPABILITIES, 10);
    let masked = json_list(&MASKED_PATHS, 6);
    let readonly = json_list(&READONLY_PATHS, 6);
    let seccomp = seccomp::default_profile().trim().replace('\n', "\n    ");
    let (devpts_gid, sys, namespaces, ids) = match rootless {
        None => (
            r#", "gid=5""#.to_owned(),
            r#"{"destination": "/sys", "type": "sysfs", "source": "sysfs",
      "options": ["nosuid", "noexec", "nodev", "ro"]}"#,
            r#"{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
      {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}"#,
            match process {
                None => r#""resources": {
      "devices": [{"allow": false, "access": "rwm"}],
      "pids": {"limit": 1024}
    },"#
                .to_owned(),
                Some((_, options)) => run_resources(options),
            },
        ),
        Some(Rootless { uid, gid }) => (
            String::new(),
            r#"{"destination": "/sys", "type": "none", "source": "/sys",
      "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}"#,
            r#"{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
      {"type": "mount"}, {"type": "cgroup"}, {"type": "user"}"#,
            format!(
                r#""uidMappings": [{{"containerID": 0, "hostID": {uid}, "size": 1}}],
    "gidMappings": [{{"containerID": 0, "hostID": {gid}, "size": 1}}],"#
            ),
        ),
    };
    let (user, args, env, cwd, readonly_root) = match process {
        None => (
            (0, 0),
            r#"["sh"]"#.to_owned(),
            r#"[
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "TERM=xterm"
    ]"#
            .to_owned(),
            json_string(&"/"),
            true,
        ),
        Some((p, _)) => (
            p.user,
            json_strings(&p.args),
            json_strings(&p.env),
            json_string(&p.cwd.as_str()),
            false,
        ),
    };
    let (namespaces, volumes) = match process {
        Some((_, options)) => (
            if options.host_network {
                namespaces.replace(r#"{"type": "network"}, "#, "")
            } else {
                namespaces.to_owned()
            },
            options
                .volumes
                .iter()
                .map(|v| {
                    let ro = if v.readonly { r#", "ro""# } else { "" };
                    format!(
                        r#",
    {{"destination": {}, "type": "bind", "source": {},
      "options": ["rbind", "nosuid", "nodev"{ro}]}}"#,
                        json_string(&v.container.as_str()),
                        json_string(&v.host.as_str())
                    )
                })
                .collect::<String>(),
        ),
        None => (namespaces.to_owned(), String::new()),
    };
    format!(
        r#"{{
  "ociVersion": "1.2.0",
  "process": {{
    "terminal": false,
    "user": {{"uid": {uid}, "gid": {gid}}},
    "args": {args},
    "env": {env},
    "cwd": {cwd},
    "capabilities": {{
      "bounding": {caps},
      "effective": {caps},
      "permitted": {caps}
    }},
    "rlimits": [{{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}}],
    "noNewPrivileges": true
  }},
  "root": {{"path": "rootfs", "readonly": {readonly_root}}},
  "hostname": "husk",
  "mounts": [
    {{"destination": "/proc", "type": "proc", "source": "proc"}},
    {{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
      "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}},
    {{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
      "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"{devpts_gid}]}},
    {{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
      "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}},
    {{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
      "options": ["nosuid", "noexec", "nodev"]}},
    {sys},
    {{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
      "options": ["nosuid", "nodev", "mode=1777", "size=16m"]}}{volumes}
  ],
  "linux": {{
    "namespaces": [
      {namespaces}
    ],
    {ids}
    "maskedPaths": {masked},
    "readonlyPaths": {readonly},
    "seccomp": {seccomp}
  }}
}}
"#,
        uid = user.0,
        gid = user.1,
    )
}

/// The seccomp actions `linux.seccomp` may use (a test checks each parses).
pub const SECCOMP_ACTIONS: [&str; 8] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// The argument comparisons `linux.seccomp` may use.
pub const SECCOMP_OPERATORS: [&str; 7] = [
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// The seccomp filter flags husk accepts.
pub const SECCOMP_FLAGS: [&str; 2] = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"];

/// The hooks husk runs.
pub const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// The namespaces husk can create for a container.
pub const NAMESPACES: [&str; 7] = ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"];

/// What `husk features` prints: the OCI runtime features document.
pub fn features() -> String {
    let list = |items: &mut dyn Iterator<Item = &str>| {
        let quoted: Vec<String> = items.map(|i| format!("\"{i}\"")).collect();
        format!("[{}]", quoted.join(","))
    };
    format!(
        concat!(
            r#"{{"ociVersionMin":"1.0.0","ociVersionMax":"{max}","hooks":{hooks},"#,
            r#""mountOptions":{mounts},"linux":{{"namespaces":{namespaces},"#,
            r#""capabilities":{caps},"#,
            r#""cgroup":{{"v1":false,"v2":true,"systemd":false,"systemdUser":false,"rdma":false}},"#,
            r#""seccomp":{{"enabled":true,"actions":{actions},"operators":{operators},"#,
            r#""archs":{archs},"knownFlags":{flags},"supportedFlags":{flags}}},"#,
            r#""apparmor":{{"enabled":false}},"selinux":{{"enabled":false}},"#,
            r#""intelRdt":{{"enabled":false}}}},"#,
            r#""annotations":{{"io.github.husk.version":"{version}"}}}}"#
        ),
        max = crate::lifecycle::OCI_VERSION,
        hooks = list(&mut HOOKS.iter().copied()),
        mounts = list(&mut crate::spec::mount_option_names()),
        namespaces = list(&mut NAMESPACES.iter().copied()),
        caps = list(&mut crate::spec::CAPABILITY_NAMES.iter().copied()),
        actions = list(&mut SECCOMP_ACTIONS.iter().copied()),
        operators = list(&mut SECCOMP_OPERATORS.iter().copied()),
        archs = list(&mut seccomp::Arch::ALL.iter().map(|a| a.name())),
        flags = list(&mut SECCOMP_FLAGS.iter().copied()),
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// `value` as JSON text (a string, or an array of strings), escaped by
/// serde-json-core.
fn json_string<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // A character escapes to at most six bytes (`\u001f`).
    let mut size = 64;
    loop {
        let mut buf = vec![0; size];
        match serde_json_core::to_slice(value, &mut buf) {
            Ok(len) => return String::from_utf8_lossy(&buf[..len]).into_owned(),
            Err(_) => size *= 4,
        }
    }
}

/// The `linux.resources` of a `husk run --image` container.
fn run_resources(options: &RunOptions) -> String {
    let mut members = vec![r#""devices": [{"allow": false, "access": "rwm"}]"#.to_owned()];
    if let Some(bytes) = options.memory {
        members.push(format!(r#""memory": {{"limit": {bytes}}}"#));
    }
    if let Some(quota) = options.cpu_quota {
        members.push(format!(
            r#""cpu": {{"quota": {quota}, "period": {CPU_PERIOD}}}"#
        ));
    }
    if let Some(pids) = options.pids {
        members.push(format!(r#""pids": {{"limit": {pids}}}"#));
    }
    format!(r#""resources": {{{}}},"#, members.join(", "))
}

/// The CPU period `--cpus` is a share of, in microseconds (Docker's).
pub const CPU_PERIOD: u64 = 100_000;

/// `items` as a JSON array of strings.
fn json_strings(items: &[String]) -> String {
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    json_string(&refs[..])
}

/// `["a", "b", ...]`, wrapped after `per_line` entries and indented for the
/// places `default_config` puts lists.
fn json_list(items: &[&str], per_line: usize) -> String {
    let lines: Vec<String> = items
        .chunks(per_line)
        .map(|chunk| {
            chunk
                .iter()
                .map(|item| format!("\"{item}\""))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    format!("[\n        {}\n      ]", lines.join(",\n        "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{Limit, Resources};
    use crate::spec::{MountKind, NamespaceKind};
    use nix::mount::MsFlags;
    use std::path::{Path, PathBuf};

    #[test]
    fn the_default_config_is_valid_json_of_the_expected_shape() {
        let config = default_config(None);
        // The wire parser of config.json checks the JSON and every field husk knows.
        let spec = crate::spec::parse(config.as_bytes(), Path::new("/bundle"));
        let spec = spec.expect("husk must accept the config it writes");
        assert!(spec.root_readonly);
        assert_eq!(spec.hostname.as_deref(), Some("husk"));
        assert_eq!(spec.id_mappings, None);
        assert!(spec.namespaces.contains(NamespaceKind::Net));
        assert_ne!(spec.resources, Resources::default());
        let caps = spec.process.capabilities.expect("capabilities");
        assert!(caps.bounding.to_string().contains("CAP_MKNOD"));
        let deny_all = crate::cgroup::DeviceRule {
            allow: false,
            kind: crate::cgroup::DeviceType::All,
            major: None,
            minor: None,
            access: crate::cgroup::Access::ALL,
        };
        assert_eq!(spec.resources.devices, Some(vec![deny_all]));
    }

    #[test]
    fn the_rootless_config_maps_only_the_user() {
        let rootless = Rootless {
            uid: 1000,
            gid: 100,
        };
        let config = default_config(Some(rootless));
        let spec = crate::spec::parse(config.as_bytes(), Path::new("/bundle"));
        let spec = spec.expect("husk must accept the rootless config it writes");
        let ids = spec.id_mappings.expect("a new user namespace");
        assert_eq!((ids.host_uid(0), ids.host_uid(1)), (Some(1000), None));
        assert_eq!((ids.host_gid(0), ids.host_gid(1)), (Some(100), None));
        assert!(!spec.namespaces.contains(NamespaceKind::Net));
        assert_eq!(spec.resources, Resources::default());
        let sys = spec
            .mounts
            .iter()
            .find(|m| m.destination.as_path() == Path::new("/sys"));
        assert!(matches!(
            sys.map(|m| &m.kind),
            Some(MountKind::Bind {
                recursive: true,
                ..
            })
        ));
        assert!(!config.contains("gid="), "gid 5 is not mapped");
    }

    #[test]
    fn run_options_become_limits_mounts_and_namespaces() {
        let process = ProcessTemplate {
            args: vec!["/bin/app".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: (0, 0),
        };
        let options = RunOptions {
            memory: Some(64 << 20),
            cpu_quota: Some(50_000),
            pids: Some(20),
            volumes: vec![Volume {
                host: "/srv/a \"b\"".into(),
                container: "/data".into(),
                readonly: true,
            }],
            host_network: true,
        };
        let json = config(None, Some((&process, &options)));
        let spec = crate::spec::parse(json.as_bytes(), Path::new("/bundle")).expect(&json);
        assert!(!spec.namespaces.contains(NamespaceKind::Net));
        assert_eq!(spec.resources.memory.max, Some(Limit::Value(64 << 20)));
        assert_eq!(spec.resources.pids_max, Some(Limit::Value(20)));
        let cpu = spec.resources.cpu.max.unwrap();
        assert_eq!(
            (cpu.quota, cpu.period),
            (Limit::Value(50_000), Some(CPU_PERIOD))
        );
        let data = spec.mounts.last().unwrap();
        assert_eq!(data.destination.as_path(), Path::new("/data"));
        assert_eq!(
            data.kind,
            MountKind::Bind {
                source: PathBuf::from("/srv/a \"b\""),
                recursive: true
            }
        );
        assert!(data.flags.contains(MsFlags::MS_RDONLY));
        // Without options: a network namespace of its own, no limits but the
        // device rules.
        let plain = config(None, Some((&process, &RunOptions::default())));
        let spec = crate::spec::parse(plain.as_bytes(), Path::new("/bundle")).unwrap();
        assert!(spec.namespaces.contains(NamespaceKind::Net));
        assert_eq!(spec.resources.pids_max, None);
        assert!(spec.resources.devices.is_some());
    }

    #[test]
    fn features_lists_what_husk_accepts() {
        let features = features();
        assert!(features.starts_with(r#"{"ociVersionMin":"1.0.0","ociVersionMax":"1.2.0""#));
        assert!(features.contains(r#""CAP_CHOWN""#) && features.contains(r#""SCMP_ARCH_RISCV64""#));
        for action in SECCOMP_ACTIONS {
            let errno = if action == "SCMP_ACT_ERRNO" || action == "SCMP_ACT_TRACE" {
                r#", "errnoRet": 1"#
            } else {
                ""
            };
            let profile = format!(
                r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{{"names": ["getpid"], "action": "{action}"{errno}}}]}}"#
            );
            assert!(seccomp::parse(profile.as_bytes()).is_ok(), "{action}");
        }
        for op in SECCOMP_OPERATORS {
            let two = u8::from(op == "SCMP_CMP_MASKED_EQ");
            let profile = format!(
                r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{{"names": ["getpid"], "action": "SCMP_ACT_KILL", "args": [{{"index": 0, "value": 1, "valueTwo": {two}, "op": "{op}"}}]}}]}}"#
            );
            assert!(seccomp::parse(profile.as_bytes()).is_ok(), "{op}");
        }
        let flags = format!(r#"{{"defaultAction": "SCMP_ACT_ALLOW", "flags": {}}}"#, {
            let quoted: Vec<String> = SECCOMP_FLAGS.iter().map(|f| format!("\"{f}\"")).collect();
            format!("[{}]", quoted.join(","))
        });
        assert!(seccomp::parse(flags.as_bytes()).is_ok(), "{flags}");
        let hooks: Vec<String> = HOOKS
            .iter()
            .map(|kind| format!(r#""{kind}": [{{"path": "/bin/true"}}]"#))
            .collect();
        let config = format!(
            r#"{{"ociVersion": "1.0.0", "process": {{"args": ["sh"], "cwd": "/"}},
            "root": {{"path": "rootfs"}}, "hooks": {{{}}},
            "linux": {{"namespaces": [{{"type": "mount"}}]}}}}"#,
            hooks.join(", ")
        );
        let parsed = crate::spec::parse(config.as_bytes(), Path::new("/b"));
        assert!(parsed.is_ok(), "hooks: {:?}", parsed.err());
        for ns in NAMESPACES {
            let extra = if ns == "mount" {
                String::new()
            } else {
                format!(r#", {{"type": "{ns}"}}"#)
            };
            let maps = if ns == "user" {
                r#", "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]"#
            } else {
                ""
            };
            let config = format!(
                r#"{{"ociVersion": "1.0.0", "process": {{"args": ["sh"], "cwd": "/"}},
                "root": {{"path": "rootfs"}},
                "linux": {{"namespaces": [{{"type": "mount"}}{extra}]{maps}}}}}"#
            );
            let parsed = crate::spec::parse(config.as_bytes(), Path::new("/b"));
            assert!(parsed.is_ok(), "{ns}: {:?}", parsed.err());
        }
    }
}
