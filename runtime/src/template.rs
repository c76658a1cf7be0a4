//! What `husk spec` writes and `husk features` prints.
//!
//! The default `config.json` is runc's default made safe for a device and
//! limited to what husk honours: a read-only root, Docker's default
//! capabilities, no new privileges, a file-descriptor limit, the masked and
//! read-only `/proc` paths runc uses, and husk's default seccomp deny-list
//! (`seccomp/default.json`). A unit test checks that husk accepts it.

use crate::seccomp;

/// The capabilities the default process keeps: Docker's default set without
/// CAP_MKNOD, since husk has no device cgroup yet (it needs eBPF) and a device
/// node made in the container could be opened.
pub const DEFAULT_CAPABILITIES: [&str; 13] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
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

/// The default `config.json`, as pretty-printed JSON text.
pub fn default_config() -> String {
    let caps = json_list(&DEFAULT_CAPABILITIES, 10);
    let masked = json_list(&MASKED_PATHS, 6);
    let readonly = json_list(&READONLY_PATHS, 6);
    let seccomp = seccomp::default_profile().trim().replace('\n', "\n    ");
    format!(
        r#"{{
  "ociVersion": "1.2.0",
  "process": {{
    "terminal": false,
    "user": {{"uid": 0, "gid": 0}},
    "args": ["sh"],
    "env": [
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "TERM=xterm"
    ],
    "cwd": "/",
    "capabilities": {{
      "bounding": {caps},
      "effective": {caps},
      "permitted": {caps}
    }},
    "rlimits": [{{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}}],
    "noNewPrivileges": true
  }},
  "root": {{"path": "rootfs", "readonly": true}},
  "hostname": "husk",
  "mounts": [
    {{"destination": "/proc", "type": "proc", "source": "proc"}},
    {{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
      "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}},
    {{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
      "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}},
    {{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
      "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}},
    {{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
      "options": ["nosuid", "noexec", "nodev"]}},
    {{"destination": "/sys", "type": "sysfs", "source": "sysfs",
      "options": ["nosuid", "noexec", "nodev", "ro"]}},
    {{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
      "options": ["nosuid", "nodev", "mode=1777", "size=16m"]}}
  ],
  "linux": {{
    "namespaces": [
      {{"type": "pid"}}, {{"type": "network"}}, {{"type": "ipc"}},
      {{"type": "uts"}}, {{"type": "mount"}}, {{"type": "cgroup"}}
    ],
    "resources": {{"pids": {{"limit": 1024}}}},
    "maskedPaths": {masked},
    "readonlyPaths": {readonly},
    "seccomp": {seccomp}
  }}
}}
"#
    )
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
    use std::path::Path;

    #[test]
    fn the_default_config_is_valid_json_of_the_expected_shape() {
        let config = default_config();
        // The wire parser of config.json checks the JSON and every field husk knows.
        let spec = crate::spec::parse(config.as_bytes(), Path::new("/bundle"));
        let spec = spec.expect("husk must accept the config it writes");
        assert!(spec.root_readonly);
        assert_eq!(spec.hostname.as_deref(), Some("husk"));
    }
}
