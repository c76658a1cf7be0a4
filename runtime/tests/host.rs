//! Privileged host tests: the built `husk` binary runs containers, as root,
//! from temporary bundles whose rootfs holds the host's static `/bin/busybox`.
//!
//! A test that cannot run here (not root, no busybox) prints
//! `SKIP <test>: <why>` on stderr and passes.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

#[allow(dead_code, reason = "each test binary uses part of it")]
mod common;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const HUSK: &str = env!("CARGO_BIN_EXE_husk");
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "hostname", "id", "ls", "mkdir", "mknod", "mount", "readlink", "sleep",
    "stty", "touch", "tty", "wc",
];
/// Longest a container of these tests may run.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The knobs of `config.json` these tests turn.
struct Config<'a> {
    args: &'a [&'a str],
    readonly: bool,
    /// `type`, or `type=path` to join a namespace.
    namespaces: &'a [&'a str],
    /// Extra members of `process`, as JSON text starting with a comma.
    process: &'a str,
    /// Entries of `mounts` after `/proc`, as JSON text starting with a comma.
    mounts: &'a str,
    /// Extra members of `linux`, as JSON text starting with a comma.
    linux: &'a str,
}

const DEFAULT: Config<'static> = Config {
    args: &["sh", "-c", "true"],
    readonly: false,
    namespaces: &["pid", "mount", "uts", "ipc", "network"],
    process: "",
    mounts: "",
    linux: "",
};

/// A temporary bundle named after its test; removed on drop.
struct Bundle {
    name: &'static str,
    dir: PathBuf,
}

/// What a finished `husk run` left.
struct Outcome {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Bundle {
    /// The bundle for `test`, or `None` after printing why the test is skipped.
    fn new(test: &'static str) -> Option<Self> {
        if !common::root_with_busybox(test) {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("husk-host-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        common::busybox_rootfs(&dir.join("rootfs"), APPLETS);
        fs::write(dir.join("rootfs/marker"), test).unwrap();
        Some(Self { name: test, dir })
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    fn write_config(&self, config: &Config<'_>) {
        let args = config
            .args
            .iter()
            .map(|a| json_string(a))
            .collect::<Vec<_>>();
        let mut namespaces = String::new();
        for ns in config.namespaces {
            let comma = if namespaces.is_empty() { "" } else { ", " };
            match ns.split_once('=') {
                Some((kind, path)) => write!(
                    namespaces,
                    r#"{comma}{{"type": "{kind}", "path": "{path}"}}"#
                ),
                None => write!(namespaces, r#"{comma}{{"type": "{ns}"}}"#),
            }
            .unwrap();
        }
        let hostname = if config.namespaces.iter().any(|ns| ns.starts_with("uts")) {
            r#""hostname": "box","#
        } else {
            ""
        };
        let json = format!(
            r#"{{
                "ociVersion": "1.0.2",
                "process": {{
                    "args": [{args}],
                    "env": ["PATH=/bin"],
                    "cwd": "/"{process}
                }},
                "root": {{"path": "rootfs", "readonly": {readonly}}},
                {hostname}
                "mounts": [{{"destination": "/proc", "type": "proc", "source": "proc"}}{mounts}],
                "linux": {{"namespaces": [{namespaces}]{linux}}}
            }}"#,
            args = args.join(", "),
            process = config.process,
            readonly = config.readonly,
            mounts = config.mounts,
            linux = config.linux,
        );
        fs::write(self.dir.join("config.json"), json).unwrap();
    }

    /// The state directory this test's husk uses (`--root`).
    fn state_root(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Runs `husk --root <state> ARGS...` to its end. Its output goes through
    /// files, not pipes: a container it leaves running inherits them, and would
    /// keep a pipe open.
    fn husk(&self, args: &[&str]) -> Outcome {
        let out_path = self.dir.join("husk.stdout");
        let err_path = self.dir.join("husk.stderr");
        let mut child = Command::new(HUSK)
            .arg("--root")
            .arg(self.state_root())
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_path).unwrap())
            .stderr(fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "husk {args:?} did not finish");
            sleep(Duration::from_millis(5));
        };
        Outcome {
            status: status.code().expect("husk itself should not be killed"),
            stdout: fs::read_to_string(out_path).unwrap(),
            stderr: fs::read_to_string(err_path).unwrap(),
        }
    }

    fn spawn(&self, config: &Config<'_>) -> Child {
        self.write_config(config);
        Command::new(HUSK)
            .arg("--root")
            .arg(self.state_root())
            .args(["run", "--bundle"])
            .arg(&self.dir)
            .arg(self.name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs the container of `config` to its end.
    fn run(&self, config: &Config<'_>) -> Outcome {
        finish(self.spawn(config))
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        // A test that failed half-way may leave a container behind: kill it.
        let _ = Command::new(HUSK)
            .arg("--root")
            .arg(self.state_root())
            .args(["delete", "--force", self.name])
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn finish(mut child: Child) -> Outcome {
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("husk did not finish within {TIMEOUT:?}");
        }
        sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = status.code().expect("husk itself should not be killed");
    Outcome {
        status,
        stdout,
        stderr,
    }
}

fn json_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn mount_count() -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// Asserts a successful run and returns its stdout.
fn success(outcome: Outcome) -> String {
    assert_eq!(outcome.status, 0, "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stderr, "");
    outcome.stdout
}

#[test]
fn container_is_pid_1() {
    let Some(bundle) = Bundle::new("container_is_pid_1") else {
        return;
    };
    let config = Config {
        args: &["sh", "-c", "echo $$"],
        ..DEFAULT
    };
    assert_eq!(success(bundle.run(&config)), "1\n");
}

#[test]
fn hostname_is_set() {
    let Some(bundle) = Bundle::new("hostname_is_set") else {
        return;
    };
    let config = Config {
        args: &["hostname"],
        ..DEFAULT
    };
    assert_eq!(success(bundle.run(&config)), "box\n");
}

#[test]
fn namespaces_differ_from_the_host() {
    let Some(bundle) = Bundle::new("namespaces_differ_from_the_host") else {
        return;
    };
    let kinds = ["mnt", "pid", "uts", "ipc", "net"];
    let script = format!(
        "for ns in {}; do readlink /proc/self/ns/$ns; done",
        kinds.join(" ")
    );
    let config = Config {
        args: &["sh", "-c", &script],
        ..DEFAULT
    };
    let inside = success(bundle.run(&config));
    let inside: Vec<&str> = inside.lines().collect();
    assert_eq!(inside.len(), kinds.len(), "{inside:?}");
    for (kind, inside) in kinds.iter().zip(inside) {
        let host = fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        let host = host.to_str().unwrap();
        assert!(inside.starts_with(&format!("{kind}:[")), "{inside}");
        assert_ne!(inside, host, "{kind} namespace is the host's");
    }
}

#[test]
fn joins_namespaces_by_path() {
    let Some(bundle) = Bundle::new("joins_namespaces_by_path") else {
        return;
    };
    let ours = format!("/proc/{}/ns/net", std::process::id());
    let join = format!("network={ours}");
    let config = Config {
        args: &["readlink", "/proc/self/ns/net"],
        namespaces: &["mount", "pid", &join],
        ..DEFAULT
    };
    let inside = success(bundle.run(&config));
    let host = fs::read_link(&ours).unwrap();
    assert_eq!(inside.trim_end(), host.to_str().unwrap());
}

#[test]
fn root_is_the_bundle_rootfs() {
    let Some(bundle) = Bundle::new("root_is_the_bundle_rootfs") else {
        return;
    };
    let config = Config {
        args: &["cat", "/marker"],
        ..DEFAULT
    };
    assert_eq!(success(bundle.run(&config)), "root_is_the_bundle_rootfs");
}

#[test]
fn readonly_root_refuses_writes() {
    let Some(bundle) = Bundle::new("readonly_root_refuses_writes") else {
        return;
    };
    let touch = Config {
        args: &["touch", "/x"],
        ..DEFAULT
    };
    success(bundle.run(&touch));
    assert!(
        bundle.rootfs().join("x").exists(),
        "a writable root keeps the file"
    );
    fs::remove_file(bundle.rootfs().join("x")).unwrap();

    let outcome = bundle.run(&Config {
        readonly: true,
        ..touch
    });
    assert_ne!(outcome.status, 0, "touch on a read-only root should fail");
    assert!(
        outcome.stderr.contains("Read-only file system"),
        "{}",
        outcome.stderr
    );
    assert!(!bundle.rootfs().join("x").exists());
}

#[test]
fn exit_status_propagates() {
    let Some(bundle) = Bundle::new("exit_status_propagates") else {
        return;
    };
    let config = Config {
        args: &["sh", "-c", "exit 7"],
        ..DEFAULT
    };
    assert_eq!(bundle.run(&config).status, 7);
}

#[test]
fn sigterm_is_forwarded_and_reported_as_128_plus_signal() {
    let Some(bundle) = Bundle::new("sigterm_is_forwarded_and_reported_as_128_plus_signal") else {
        return;
    };
    // Without a PID namespace, `sleep` is not an init that ignores SIGTERM.
    let config = Config {
        args: &["sleep", "30"],
        namespaces: &["mount"],
        ..DEFAULT
    };
    let husk = bundle.spawn(&config);
    let husk_pid = husk.id().to_string();
    let deadline = Instant::now() + TIMEOUT;
    // The container is running once a child of husk is `sleep`.
    while !fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let status = fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        status.starts_with("Name:\tsleep\n")
            && status
                .lines()
                .any(|l| l.strip_prefix("PPid:\t") == Some(&husk_pid))
    }) {
        assert!(Instant::now() < deadline, "the container never started");
        sleep(Duration::from_millis(10));
    }
    kill(Pid::from_raw(husk.id() as i32), Signal::SIGTERM).unwrap();
    let outcome = finish(husk);
    assert_eq!(outcome.status, 128 + 15, "stderr: {}", outcome.stderr);
}

#[test]
fn process_credentials_and_signal_state() {
    let Some(bundle) = Bundle::new("process_credentials_and_signal_state") else {
        return;
    };
    let config = Config {
        args: &["cat", "/proc/self/status"],
        process: r#", "user": {"uid": 1000, "gid": 1001, "additionalGids": [5]}"#,
        ..DEFAULT
    };
    let status = success(bundle.run(&config));
    for line in [
        "Uid:\t1000\t1000\t1000\t1000",
        "Gid:\t1001\t1001\t1001\t1001",
        "Groups:\t5 ",
        "SigBlk:\t0000000000000000",
    ] {
        assert!(
            status.lines().any(|l| l == line),
            "no {line:?} in\n{status}"
        );
    }
    // husk (a Rust program) ignores SIGPIPE; the container must not inherit
    // that, but does inherit what husk's caller ignored. Only the standard
    // signals are compared: glibc's posix_spawn, which spawned husk, sets its
    // internal real-time signals to ignored.
    let standard = (1 << 31) - 1;
    let sigpipe = 1 << (Signal::SIGPIPE as u32 - 1);
    let ours = fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        ignored_signals(&status) & standard,
        ignored_signals(&ours) & standard & !sigpipe
    );
}

/// The `SigIgn` mask of a `/proc/<pid>/status` text.
fn ignored_signals(status: &str) -> u64 {
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:\t"))
        .unwrap();
    u64::from_str_radix(mask, 16).unwrap()
}

#[test]
fn bind_mount_is_readonly() {
    let Some(bundle) = Bundle::new("bind_mount_is_readonly") else {
        return;
    };
    fs::create_dir(bundle.dir.join("data")).unwrap();
    fs::write(bundle.dir.join("data/hello"), "hello\n").unwrap();
    let config = Config {
        args: &["sh", "-c", "cat /data/hello && touch /data/new"],
        mounts: r#", {"destination": "/data", "source": "data", "options": ["bind", "ro"]}"#,
        ..DEFAULT
    };
    let outcome = bundle.run(&config);
    assert_eq!(outcome.stdout, "hello\n");
    assert_ne!(
        outcome.status, 0,
        "writing to a read-only bind mount should fail"
    );
    assert!(!bundle.dir.join("data/new").exists());
}

#[test]
fn bad_config_is_a_one_line_error() {
    let Some(bundle) = Bundle::new("bad_config_is_a_one_line_error") else {
        return;
    };
    let config = Config {
        linux: r#", "seccomp": {"defaultAction": "SCMP_ACT_NOPE"}"#,
        ..DEFAULT
    };
    let outcome = bundle.run(&config);
    assert_eq!(outcome.status, 1);
    assert_eq!(
        outcome.stderr,
        "husk: config.json: linux.seccomp.defaultAction: SCMP_ACT_NOPE is not supported\n"
    );
}

#[test]
fn missing_program_is_named() {
    let Some(bundle) = Bundle::new("missing_program_is_named") else {
        return;
    };
    let outcome = bundle.run(&Config {
        args: &["no-such-program"],
        ..DEFAULT
    });
    assert_eq!(outcome.status, 1);
    assert_eq!(
        outcome.stderr,
        "husk: exec: no-such-program: executable file not found in $PATH\n"
    );
    let outcome = bundle.run(&Config {
        args: &["/bin/nope"],
        ..DEFAULT
    });
    assert_eq!(outcome.status, 1);
    assert_eq!(
        outcome.stderr,
        "husk: exec: /bin/nope: ENOENT: No such file or directory\n"
    );
}

#[test]
fn mount_destination_may_not_escape_the_root() {
    let Some(bundle) = Bundle::new("mount_destination_may_not_escape_the_root") else {
        return;
    };
    symlink("../../../../../..", bundle.rootfs().join("up")).unwrap();
    let config = Config {
        mounts: r#", {"destination": "/up/tmp", "type": "tmpfs"}"#,
        ..DEFAULT
    };
    let outcome = bundle.run(&config);
    assert_eq!(outcome.status, 1);
    assert_eq!(
        outcome.stderr,
        "husk: mount destination /up/tmp leads out of the container root\n"
    );
}

#[test]
fn no_mount_leaks_to_the_host() {
    let Some(bundle) = Bundle::new("no_mount_leaks_to_the_host") else {
        return;
    };
    fs::create_dir(bundle.dir.join("data")).unwrap();
    let before = mount_count();
    let config = Config {
        args: &["mount"],
        readonly: true,
        mounts: r#", {"destination": "/tmp", "type": "tmpfs", "options": ["nosuid", "size=1m"]},
                    {"destination": "/dev", "type": "tmpfs", "options": ["mode=755"]},
                    {"destination": "/dev/pts", "type": "devpts",
                     "options": ["newinstance", "ptmxmode=0666", "mode=0620"]},
                    {"destination": "/sys", "type": "sysfs", "options": ["ro"]},
                    {"destination": "/dev/mqueue", "type": "mqueue"},
                    {"destination": "/data", "source": "data", "options": ["rbind"]}"#,
        ..DEFAULT
    };
    let inside = success(bundle.run(&config));
    let targets: Vec<&str> = inside.lines().filter_map(|l| l.split(' ').nth(2)).collect();
    let expected = [
        "/",
        "/proc",
        "/tmp",
        "/dev",
        "/dev/pts",
        "/sys",
        "/dev/mqueue",
        "/data",
    ];
    assert_eq!(targets, expected, "container mount table:\n{inside}");
    assert_eq!(mount_count(), before);
}

/// The `"status"` and `"pid"` of `husk state` output.
fn state_of(bundle: &Bundle) -> (String, i32) {
    let out = success(bundle.husk(&["state", bundle.name]));
    let field = |name: &str| {
        let start = out.find(&format!("\"{name}\":")).expect(name) + name.len() + 3;
        let rest = &out[start..];
        rest[..rest.find([',', '}']).unwrap()]
            .trim_matches('"')
            .to_owned()
    };
    (field("status"), field("pid").parse().unwrap())
}

fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// A container that, once started, marks a host directory and sleeps.
const MARK_AND_SLEEP: Config<'static> = Config {
    args: &["sh", "-c", "touch /out/started; exec sleep 1000"],
    mounts: r#", {"destination": "/out", "source": "out", "options": ["bind"]}"#,
    ..DEFAULT
};

#[test]
fn create_start_kill_delete_lifecycle() {
    let Some(bundle) = Bundle::new("lifecycle") else {
        return;
    };
    fs::create_dir(bundle.dir.join("out")).unwrap();
    bundle.write_config(&MARK_AND_SLEEP);
    let dir = bundle.dir.to_str().unwrap();
    let pid_file = bundle.dir.join("pid");
    let pid_arg = pid_file.to_str().unwrap();

    success(bundle.husk(&[
        "create",
        "--bundle",
        dir,
        "--pid-file",
        pid_arg,
        "lifecycle",
    ]));
    let (status, pid) = state_of(&bundle);
    assert_eq!(status, "created");
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(process_exists(pid));
    sleep(Duration::from_millis(200));
    assert!(
        !bundle.dir.join("out/started").exists(),
        "the process must not run before start"
    );

    success(bundle.husk(&["start", "lifecycle"]));
    let deadline = Instant::now() + TIMEOUT;
    while !bundle.dir.join("out/started").exists() {
        assert!(Instant::now() < deadline, "the process did not start");
        sleep(Duration::from_millis(10));
    }
    assert_eq!(state_of(&bundle), ("running".to_owned(), pid));
    let list = success(bundle.husk(&["list"]));
    assert!(list.starts_with("ID"), "{list}");
    assert!(
        list.contains(&format!("lifecycle  {pid:>7}  running")),
        "{list}"
    );
    let json = success(bundle.husk(&["list", "--format", "json"]));
    assert!(json.starts_with(r#"[{"ociVersion":"#) && json.contains(r#""status":"running""#));

    let again = bundle.husk(&["start", "lifecycle"]);
    assert_eq!(again.status, 1);
    assert_eq!(
        again.stderr,
        "husk: cannot start container lifecycle: it is running\n"
    );
    let refused = bundle.husk(&["delete", "lifecycle"]);
    assert_eq!(refused.status, 1);
    assert!(refused.stderr.contains("use --force"), "{}", refused.stderr);

    success(bundle.husk(&["kill", "lifecycle", "KILL"]));
    let deadline = Instant::now() + TIMEOUT;
    while state_of(&bundle).0 != "stopped" {
        assert!(Instant::now() < deadline, "the container did not stop");
        sleep(Duration::from_millis(10));
    }
    assert_eq!(state_of(&bundle).1, 0);
    let killed = bundle.husk(&["kill", "lifecycle"]);
    assert_eq!(
        killed.stderr,
        "husk: cannot kill container lifecycle: it is stopped\n"
    );
    success(bundle.husk(&["delete", "lifecycle"]));
    assert!(!bundle.state_root().join("lifecycle").exists());
    let gone = bundle.husk(&["state", "lifecycle"]);
    assert_eq!(gone.status, 1);
    assert_eq!(gone.stderr, "husk: container lifecycle does not exist\n");
}

#[test]
fn a_second_create_with_the_same_id_is_refused() {
    let Some(bundle) = Bundle::new("same_id") else {
        return;
    };
    fs::create_dir(bundle.dir.join("out")).unwrap();
    bundle.write_config(&MARK_AND_SLEEP);
    let dir = bundle.dir.to_str().unwrap();
    success(bundle.husk(&["create", "--bundle", dir, "same_id"]));
    let (_, pid) = state_of(&bundle);
    let second = bundle.husk(&["create", "--bundle", dir, "same_id"]);
    assert_eq!(second.status, 1);
    assert_eq!(second.stderr, "husk: container same_id exists already\n");
    // The first container is untouched.
    assert_eq!(state_of(&bundle), ("created".to_owned(), pid));
    success(bundle.husk(&["delete", "same_id"]));
    assert!(!process_exists(pid), "delete must kill a created container");
}

#[test]
fn delete_force_kills_a_running_container() {
    let Some(bundle) = Bundle::new("force") else {
        return;
    };
    fs::create_dir(bundle.dir.join("out")).unwrap();
    bundle.write_config(&MARK_AND_SLEEP);
    let dir = bundle.dir.to_str().unwrap();
    let mounts = mount_count();
    success(bundle.husk(&["run", "--detach", "--bundle", dir, "force"]));
    let (status, pid) = state_of(&bundle);
    assert_eq!(status, "running");
    success(bundle.husk(&["delete", "--force", "force"]));
    assert!(!process_exists(pid));
    assert!(!bundle.state_root().join("force").exists());
    assert_eq!(mount_count(), mounts, "no mount may be left on the host");
}

/// `/dev` as runc's default config has it: the minimal tmpfs and a devpts
/// instance of the container's own.
const DEV_AND_DEVPTS: &str = r#", {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                      "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}"#;

/// Accepts the connection husk made to `listener` and receives the
/// descriptor sent over it with `SCM_RIGHTS` (a raw descriptor: owning it
/// would take `unsafe`, which the tests do not use).
fn receive_fd(listener: &std::os::unix::net::UnixListener) -> RawFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    let (stream, _) = listener.accept().unwrap();
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(RawFd);
    let flags = MsgFlags::MSG_CMSG_CLOEXEC;
    let msg = recvmsg::<UnixAddr>(stream.as_raw_fd(), &mut iov, Some(&mut space), flags).unwrap();
    let fd = msg.cmsgs().unwrap().find_map(|cmsg| match cmsg {
        ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
        _ => None,
    });
    fd.expect("a descriptor sent with SCM_RIGHTS")
}

/// Everything read from the terminal master `master` until its peer is
/// closed by everyone (EIO) or [`TIMEOUT`]; then closes it.
fn read_terminal(master: RawFd) -> String {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    fcntl(master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0; 1024];
    loop {
        match nix::unistd::read(master, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN) => {
                assert!(
                    Instant::now() < deadline,
                    "the terminal stayed open: {out:?}"
                );
                sleep(Duration::from_millis(10));
            }
            // Linux: no peer is open any more.
            Err(nix::errno::Errno::EIO) => break,
            Err(e) => panic!("reading the terminal: {e}"),
        }
    }
    nix::unistd::close(master).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn terminal_is_sent_to_the_console_socket() {
    let Some(bundle) = Bundle::new("terminal") else {
        return;
    };
    bundle.write_config(&Config {
        args: &["sh", "-c", "tty; stty size; echo hello"],
        process: r#", "terminal": true, "consoleSize": {"height": 24, "width": 80}"#,
        mounts: DEV_AND_DEVPTS,
        ..DEFAULT
    });
    let socket = bundle.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let dir = bundle.dir.to_str().unwrap();

    success(bundle.husk(&[
        "create",
        "--bundle",
        dir,
        "--console-socket",
        socket.to_str().unwrap(),
        "terminal",
    ]));
    let master = receive_fd(&listener);
    success(bundle.husk(&["start", "terminal"]));
    let out = read_terminal(master);

    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(lines, ["/dev/pts/0", "24 80", "hello"], "{out:?}");
}

#[test]
fn a_terminal_without_a_console_socket_is_refused() {
    let Some(bundle) = Bundle::new("terminal_without_socket") else {
        return;
    };
    bundle.write_config(&Config {
        process: r#", "terminal": true"#,
        mounts: DEV_AND_DEVPTS,
        ..DEFAULT
    });
    let dir = bundle.dir.to_str().unwrap();
    let outcome = bundle.husk(&["run", "--bundle", dir, "terminal_without_socket"]);
    assert_eq!(outcome.status, 1);
    assert_eq!(
        outcome.stderr,
        "husk: process.terminal is true: give --console-socket to receive the terminal\n"
    );
    assert!(!bundle.state_root().join("terminal_without_socket").exists());
    bundle.write_config(&DEFAULT);
    let socket = bundle.dir.join("console.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let outcome = bundle.husk(&[
        "run",
        "--bundle",
        dir,
        "--console-socket",
        socket.to_str().unwrap(),
        "terminal_without_socket",
    ]);
    assert_eq!(
        outcome.stderr,
        "husk: --console-socket given, but process.terminal is false\n"
    );
    assert!(!bundle.state_root().join("terminal_without_socket").exists());
}

#[test]
fn a_failed_create_leaves_nothing_behind() {
    let Some(bundle) = Bundle::new("failed_create") else {
        return;
    };
    bundle.write_config(&Config {
        args: &["no-such-program"],
        ..DEFAULT
    });
    let dir = bundle.dir.to_str().unwrap();
    let outcome = bundle.husk(&["create", "--bundle", dir, "failed_create"]);
    assert_eq!(outcome.status, 1);
    assert_eq!(
        outcome.stderr,
        "husk: exec: no-such-program: executable file not found in $PATH\n"
    );
    assert!(!bundle.state_root().join("failed_create").exists());
    let list = success(bundle.husk(&["list", "-q"]));
    assert_eq!(list, "");
}

/// The cgroup v2 directory husk uses on this host, if any.
fn cgroup_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("cgroup.controllers").exists())
}

#[test]
fn pause_resume_ps_and_the_cgroup_lifecycle() {
    let Some(bundle) = Bundle::new("cgroup_life") else {
        return;
    };
    let Some(root) = cgroup_root() else {
        eprintln!("SKIP cgroup_life: no cgroup v2 hierarchy mounted");
        return;
    };
    fs::create_dir(bundle.dir.join("out")).unwrap();
    bundle.write_config(&MARK_AND_SLEEP);
    let dir = bundle.dir.to_str().unwrap();
    success(bundle.husk(&["run", "-d", "--bundle", dir, "cgroup_life"]));
    let (_, pid) = state_of(&bundle);
    let cgroup = root.join("husk/cgroup_life");
    let procs = fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|p| p == pid.to_string()),
        "the init {pid} should be in {cgroup:?}: {procs}"
    );
    let ps = success(bundle.husk(&["ps", "--format", "json", "cgroup_life"]));
    assert_eq!(ps, format!("[{pid}]\n"));

    success(bundle.husk(&["pause", "cgroup_life"]));
    assert_eq!(state_of(&bundle).0, "paused");
    let again = bundle.husk(&["pause", "cgroup_life"]);
    assert_eq!(
        again.stderr,
        "husk: cannot pause container cgroup_life: it is paused\n"
    );
    success(bundle.husk(&["resume", "cgroup_life"]));
    assert_eq!(state_of(&bundle).0, "running");

    success(bundle.husk(&["kill", "--all", "cgroup_life", "KILL"]));
    let deadline = Instant::now() + TIMEOUT;
    while state_of(&bundle).0 != "stopped" {
        assert!(Instant::now() < deadline, "kill --all did not stop it");
        sleep(Duration::from_millis(10));
    }
    success(bundle.husk(&["delete", "cgroup_life"]));
    assert!(
        !cgroup.exists(),
        "delete must remove the container's cgroup"
    );
}

#[test]
fn limits_without_controllers_are_a_clear_error() {
    let Some(bundle) = Bundle::new("no_controllers") else {
        return;
    };
    let Some(root) = cgroup_root() else {
        eprintln!("SKIP no_controllers: no cgroup v2 hierarchy mounted");
        return;
    };
    let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap();
    if controllers.split_whitespace().any(|c| c == "pids") {
        eprintln!(
            "SKIP no_controllers: this host has the pids controller (the QEMU lab tests limits)"
        );
        return;
    }
    bundle.write_config(&Config {
        linux: r#", "resources": {"pids": {"limit": 10}}"#,
        ..DEFAULT
    });
    let dir = bundle.dir.to_str().unwrap();
    let outcome = bundle.husk(&["create", "--bundle", dir, "no_controllers"]);
    assert_eq!(outcome.status, 1);
    assert!(
        outcome.stderr.starts_with("husk: ") && outcome.stderr.contains("pids"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stderr.lines().count(), 1);
    assert!(!bundle.state_root().join("no_controllers").exists());
    assert!(!root.join("husk/no_controllers").exists());
}

/// The value of the field `name` (such as `CapEff`) of a `/proc/<pid>/status` text.
fn status_field<'s>(status: &'s str, name: &str) -> &'s str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(":\t"))
        .unwrap_or_else(|| panic!("no {name} in\n{status}"))
}

#[test]
fn rlimits_are_set() {
    let Some(bundle) = Bundle::new("rlimits_are_set") else {
        return;
    };
    let config = Config {
        args: &["cat", "/proc/self/limits"],
        process: r#", "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
                                  {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]"#,
        ..DEFAULT
    };
    let limits = success(bundle.run(&config));
    let limit = |name: &str| -> Vec<String> {
        let line = limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{limits}"));
        line[name.len()..]
            .split_whitespace()
            .take(2)
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(limit("Max open files"), ["1000", "2000"]);
    assert_eq!(limit("Max core file size"), ["0", "0"]);
}

#[test]
fn capabilities_are_set() {
    let Some(bundle) = Bundle::new("capabilities_are_set") else {
        return;
    };
    let only_chown_and_kill = r#", "capabilities": {
        "bounding": ["CAP_CHOWN", "CAP_KILL"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"]}"#;
    let status = success(bundle.run(&Config {
        args: &["cat", "/proc/self/status"],
        process: only_chown_and_kill,
        ..DEFAULT
    }));
    for (field, value) in [
        ("CapBnd", "0000000000000021"),
        ("CapEff", "0000000000000021"),
        ("CapPrm", "0000000000000021"),
        ("CapInh", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
    ] {
        assert_eq!(status_field(&status, field), value, "{field}");
    }

    // A user other than root keeps across execve only its ambient set.
    let status = success(bundle.run(&Config {
        args: &["cat", "/proc/self/status"],
        process: r#", "user": {"uid": 1000, "gid": 1000}, "capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_CHOWN", "CAP_KILL"],
            "inheritable": ["CAP_KILL"],
            "ambient": ["CAP_KILL"]}"#,
        ..DEFAULT
    }));
    assert_eq!(status_field(&status, "Uid"), "1000\t1000\t1000\t1000");
    for (field, value) in [
        ("CapBnd", "0000000000000021"),
        ("CapEff", "0000000000000020"),
        ("CapPrm", "0000000000000020"),
        ("CapInh", "0000000000000020"),
        ("CapAmb", "0000000000000020"),
    ] {
        assert_eq!(status_field(&status, field), value, "{field}");
    }

    // Without process.capabilities, root keeps what husk had.
    let status = success(bundle.run(&Config {
        args: &["cat", "/proc/self/status"],
        ..DEFAULT
    }));
    let ours = fs::read_to_string("/proc/self/status").unwrap();
    for field in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(
            status_field(&status, field),
            status_field(&ours, field),
            "{field}"
        );
    }
}

#[test]
fn no_new_privileges_is_set() {
    let Some(bundle) = Bundle::new("no_new_privileges_is_set") else {
        return;
    };
    let config = Config {
        args: &["cat", "/proc/self/status"],
        process: r#", "noNewPrivileges": true"#,
        ..DEFAULT
    };
    let status = success(bundle.run(&config));
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    let status = success(bundle.run(&Config {
        process: "",
        ..config
    }));
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");
}

/// A profile that fails `mkdir` with the errno `errno`.
fn deny_mkdir(errno: u32) -> String {
    format!(
        r#", "seccomp": {{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": {errno}}}]}}"#
    )
}

#[test]
fn seccomp_filter_is_installed() {
    let Some(bundle) = Bundle::new("seccomp_filter_is_installed") else {
        return;
    };
    // With no_new_privs the filter is installed just before execve.
    let linux = deny_mkdir(13);
    let config = Config {
        args: &["sh", "-c", "mkdir /x; cat /proc/self/status"],
        process: r#", "noNewPrivileges": true"#,
        linux: &linux,
        ..DEFAULT
    };
    let outcome = bundle.run(&config);
    assert_eq!(outcome.status, 0, "stderr: {}", outcome.stderr);
    assert!(
        outcome.stderr.contains("Permission denied"),
        "{}",
        outcome.stderr
    );
    assert!(!bundle.rootfs().join("x").exists());
    assert_eq!(status_field(&outcome.stdout, "Seccomp"), "2");
    assert_eq!(status_field(&outcome.stdout, "NoNewPrivs"), "1");

    // Without, it is installed while the init is still root, before the
    // user changes; ENOSPC tells the filter from the rootfs's permissions.
    let linux = deny_mkdir(28);
    let outcome = bundle.run(&Config {
        process: r#", "user": {"uid": 1000, "gid": 1000}"#,
        linux: &linux,
        ..config
    });
    assert_eq!(outcome.status, 0, "stderr: {}", outcome.stderr);
    assert!(
        outcome.stderr.contains("No space left on device"),
        "{}",
        outcome.stderr
    );
    assert_eq!(status_field(&outcome.stdout, "Seccomp"), "2");
    assert_eq!(status_field(&outcome.stdout, "NoNewPrivs"), "0");
    assert_eq!(
        status_field(&outcome.stdout, "Uid"),
        "1000\t1000\t1000\t1000"
    );
}

#[test]
fn oom_score_adj_is_set() {
    let Some(bundle) = Bundle::new("oom_score_adj_is_set") else {
        return;
    };
    // Raising needs no privilege; lowering needs CAP_SYS_RESOURCE, which
    // some test hosts (containers themselves) lack.
    let config = Config {
        args: &["cat", "/proc/self/oom_score_adj"],
        process: r#", "oomScoreAdj": 500"#,
        ..DEFAULT
    };
    assert_eq!(success(bundle.run(&config)), "500\n");
}

#[test]
fn sysctls_are_written_in_the_containers_namespaces() {
    let Some(bundle) = Bundle::new("sysctls_are_written_in_the_containers_namespaces") else {
        return;
    };
    let host_shmmax = fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let host_forward = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let config = Config {
        args: &[
            "cat",
            "/proc/sys/kernel/shmmax",
            "/proc/sys/net/ipv4/ip_forward",
        ],
        linux: r#", "sysctl": {"kernel.shmmax": "65536", "net.ipv4.ip_forward": "1"}"#,
        ..DEFAULT
    };
    assert_eq!(success(bundle.run(&config)), "65536\n1\n");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward
    );

    let outcome = bundle.run(&Config {
        linux: r#", "sysctl": {"kernel.hostname": "x"}"#,
        ..config
    });
    assert_eq!(outcome.status, 1);
    assert_eq!(
        outcome.stderr,
        "husk: config.json: linux.sysctl: kernel.hostname is not in a separate kernel namespace\n"
    );
}

#[test]
fn masked_paths_are_hidden() {
    let Some(bundle) = Bundle::new("masked_paths_are_hidden") else {
        return;
    };
    fs::create_dir(bundle.rootfs().join("secret")).unwrap();
    fs::write(bundle.rootfs().join("secret/key"), "k").unwrap();
    fs::write(bundle.rootfs().join("token"), "t").unwrap();
    assert!(
        !fs::read_to_string("/proc/timer_list").unwrap().is_empty(),
        "the host's /proc/timer_list has text"
    );
    // /proc/kcore and /missing may not exist: they are skipped.
    let config = Config {
        args: &[
            "sh",
            "-c",
            "cat /proc/timer_list /token; echo ---; ls -A /secret; echo ---; touch /secret/new",
        ],
        linux: r#", "maskedPaths": ["/proc/kcore", "/proc/timer_list", "/secret", "/token", "/missing"]"#,
        ..DEFAULT
    };
    let outcome = bundle.run(&config);
    assert_eq!(outcome.stdout, "---\n---\n");
    assert_ne!(outcome.status, 0, "the masked directory is read-only");
    assert!(
        outcome.stderr.contains("Read-only file system"),
        "{}",
        outcome.stderr
    );
    assert_eq!(
        fs::read_to_string(bundle.rootfs().join("token")).unwrap(),
        "t"
    );
}

#[test]
fn readonly_paths_refuse_writes() {
    let Some(bundle) = Bundle::new("readonly_paths_refuse_writes") else {
        return;
    };
    fs::create_dir(bundle.rootfs().join("data")).unwrap();
    // The sysctl is written before /proc/sys becomes read-only.
    let config = Config {
        args: &[
            "sh",
            "-c",
            "echo 1 > /proc/sys/kernel/shmmax; touch /data/x; cat /proc/sys/kernel/shmmax",
        ],
        linux: r#", "sysctl": {"kernel.shmmax": "65536"},
                   "readonlyPaths": ["/proc/sys", "/data", "/missing"]"#,
        ..DEFAULT
    };
    let outcome = bundle.run(&config);
    assert_eq!(outcome.status, 0, "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stdout, "65536\n");
    assert_eq!(
        outcome.stderr.matches("Read-only file system").count(),
        2,
        "{}",
        outcome.stderr
    );
    assert!(!bundle.rootfs().join("data/x").exists());
}

#[test]
fn dev_tmpfs_gets_the_minimal_devices() {
    let Some(bundle) = Bundle::new("dev_tmpfs_gets_the_minimal_devices") else {
        return;
    };
    let script = "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; \
                  echo x > /dev/null && echo null-ok; \
                  for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; \
                  test -d /dev/shm && echo shm-ok";
    let config = Config {
        args: &["sh", "-c", script],
        mounts: r#", {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                      "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}"#,
        ..DEFAULT
    };
    let out = success(bundle.run(&config));
    // ls sorts its arguments.
    let (nodes, rest) = out.split_at(out.find("null-ok").expect(&out));
    let mut nodes: Vec<Vec<&str>> = nodes
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    nodes.sort_by_key(|fields| fields.last().copied());
    let nodes: Vec<(&str, &str, &str, &str)> = nodes
        .iter()
        .map(|f| (f[0], f[4], f[5], *f.last().unwrap()))
        .collect();
    let char_device = "crw-rw-rw-";
    assert_eq!(
        nodes,
        [
            (char_device, "1,", "7", "/dev/full"),
            (char_device, "1,", "3", "/dev/null"),
            (char_device, "1,", "8", "/dev/random"),
            (char_device, "5,", "0", "/dev/tty"),
            (char_device, "1,", "9", "/dev/urandom"),
            (char_device, "1,", "5", "/dev/zero"),
        ]
    );
    let rest: Vec<&str> = rest.lines().collect();
    assert_eq!(
        rest,
        [
            "null-ok",
            "/proc/self/fd",
            "/proc/self/fd/0",
            "/proc/self/fd/1",
            "/proc/self/fd/2",
            "pts/ptmx",
            "shm-ok"
        ]
    );

    // Without a /dev mount, the rootfs's /dev is left alone.
    fs::write(bundle.rootfs().join("dev/keep"), "").unwrap();
    success(bundle.run(&DEFAULT));
    let dev: Vec<_> = fs::read_dir(bundle.rootfs().join("dev"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(dev, ["keep"]);
}

/// A container that sleeps, for `exec` to run processes in.
const SLEEPER: Config<'static> = Config {
    args: &["sleep", "1000"],
    ..DEFAULT
};

/// Starts `bundle`'s container of `config` detached and returns its init's pid.
fn run_detached(bundle: &Bundle, config: &Config<'_>) -> i32 {
    bundle.write_config(config);
    let dir = bundle.dir.to_str().unwrap();
    success(bundle.husk(&["run", "-d", "--bundle", dir, bundle.name]));
    let (status, pid) = state_of(bundle);
    assert_eq!(status, "running");
    pid
}

/// The namespace `/proc/<pid>/ns/<kind>` names, such as `pid:[4026532184]`.
fn namespace_of(pid: &str, kind: &str) -> String {
    let link = fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    link.to_str().unwrap().to_owned()
}

#[test]
fn exec_runs_in_the_containers_namespaces() {
    let Some(bundle) = Bundle::new("exec_namespaces") else {
        return;
    };
    let init = run_detached(&bundle, &SLEEPER).to_string();
    let kinds = ["pid", "mnt", "uts", "ipc", "net", "user", "cgroup"];
    let script = format!(
        "echo $$; hostname; cat /marker; echo; echo $PATH; \
         for ns in {}; do readlink /proc/self/ns/$ns; done",
        kinds.join(" ")
    );
    let out = success(bundle.husk(&["exec", bundle.name, "sh", "-c", &script]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4 + kinds.len(), "{out}");
    let pid: i32 = lines[0].parse().unwrap();
    assert!(
        pid > 1,
        "the process should not be the container's init: {pid}"
    );
    assert_eq!(lines[1..4], ["box", "exec_namespaces", "/bin"]);
    // The container's new namespaces are joined; husk's own others are kept.
    for (kind, inside) in kinds.iter().zip(&lines[4..]) {
        assert_eq!(*inside, namespace_of(&init, kind), "{kind} namespace");
    }
    assert_ne!(namespace_of(&init, "pid"), namespace_of("self", "pid"));
}

#[test]
fn exec_exit_status_and_process_flags() {
    let Some(bundle) = Bundle::new("exec_flags") else {
        return;
    };
    fs::create_dir(bundle.rootfs().join("tmp")).unwrap();
    run_detached(&bundle, &SLEEPER);
    let id = bundle.name;
    assert_eq!(bundle.husk(&["exec", id, "sh", "-c", "exit 3"]).status, 3);
    assert_eq!(
        success(bundle.husk(&["exec", "--cwd", "/tmp", id, "sh", "-c", "pwd"])),
        "/tmp\n"
    );
    assert_eq!(
        success(bundle.husk(&["exec", "--env", "A=B", id, "sh", "-c", "echo $A $PATH"])),
        "B /bin\n"
    );
    assert_eq!(
        success(bundle.husk(&["exec", "--user", "1000", id, "id", "-u"])),
        "1000\n"
    );
    assert_eq!(
        success(bundle.husk(&["exec", "-u", "1000:5", id, "sh", "-c", "id -u; id -g"])),
        "1000\n5\n"
    );
    let missing = bundle.husk(&["exec", id, "no-such-program"]);
    assert_eq!(missing.status, 1);
    assert_eq!(
        missing.stderr,
        "husk: exec: no-such-program: executable file not found in $PATH\n"
    );
    let no_dir = bundle.husk(&["exec", "--cwd", "/nowhere", id, "true"]);
    assert_eq!(no_dir.status, 1);
    assert_eq!(
        no_dir.stderr,
        "husk: chdir: /nowhere: ENOENT: No such file or directory\n"
    );
}

#[test]
fn exec_process_file() {
    let Some(bundle) = Bundle::new("exec_process_file") else {
        return;
    };
    fs::create_dir(bundle.rootfs().join("tmp")).unwrap();
    run_detached(&bundle, &SLEEPER);
    let file = bundle.dir.join("process.json");
    let path = file.to_str().unwrap();
    fs::write(
        &file,
        r#"{"args": ["sh", "-c", "echo $X; pwd; id -u"], "env": ["PATH=/bin", "X=file"],
            "cwd": "/tmp", "user": {"uid": 1000, "gid": 1000}}"#,
    )
    .unwrap();
    assert_eq!(
        success(bundle.husk(&["exec", "--process", path, bundle.name])),
        "file\n/tmp\n1000\n"
    );
    // The flags change the process of the file.
    assert_eq!(
        success(bundle.husk(&[
            "exec",
            "-p",
            path,
            "--env",
            "X=flag",
            "-u",
            "0",
            bundle.name
        ])),
        "flag\n/tmp\n0\n"
    );

    fs::write(
        &file,
        r#"{"args": ["true"], "cwd": "/", "user": {"uid": 1}}"#,
    )
    .unwrap();
    let bad = bundle.husk(&["exec", "--process", path, bundle.name]);
    assert_eq!(bad.status, 1);
    assert_eq!(bad.stderr, format!("husk: {path}: user.gid is required\n"));
    fs::write(&file, r#"{"args": [], "cwd": "/"}"#).unwrap();
    let bad = bundle.husk(&["exec", "--process", path, bundle.name]);
    assert_eq!(
        bad.stderr,
        format!("husk: {path}: args must not be empty\n")
    );
}

#[test]
fn exec_detach_leaves_the_process_in_the_containers_cgroup() {
    let Some(bundle) = Bundle::new("exec_detach") else {
        return;
    };
    let init = run_detached(&bundle, &SLEEPER).to_string();
    let pid_file = bundle.dir.join("exec.pid");
    let out = success(bundle.husk(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        bundle.name,
        "sleep",
        "999",
    ]));
    assert_eq!(out, "", "exec --detach prints nothing");
    let pid = fs::read_to_string(&pid_file).unwrap();
    assert!(process_exists(pid.parse().unwrap()), "the process runs");
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap(),
        "sleep\0999\0"
    );
    assert_eq!(namespace_of(&pid, "pid"), namespace_of(&init, "pid"));
    // Its program is the container's, never the host's husk.
    let file = |path: &Path| {
        let meta = fs::metadata(path).unwrap();
        (meta.dev(), meta.ino())
    };
    let exe = file(Path::new(&format!("/proc/{pid}/exe")));
    assert_eq!(exe, file(&bundle.rootfs().join("bin/busybox")));
    assert_ne!(exe, file(Path::new(HUSK)));
    let Some(root) = cgroup_root() else {
        eprintln!("SKIP exec_detach (cgroup part): no cgroup v2 hierarchy mounted");
        return;
    };
    let cgroup = root.join("husk").join(bundle.name);
    let procs = fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|p| p == pid),
        "{pid} should be in {cgroup:?}: {procs}"
    );
    let inside = success(bundle.husk(&["exec", bundle.name, "cat", "/proc/self/cgroup"]));
    assert!(
        inside
            .lines()
            .any(|l| l == format!("0::/husk/{}", bundle.name)),
        "{inside}"
    );
}

#[test]
fn exec_is_refused_unless_the_container_runs() {
    let Some(bundle) = Bundle::new("exec_refused") else {
        return;
    };
    run_detached(&bundle, &SLEEPER);
    let id = bundle.name;
    if cgroup_root().is_some() {
        success(bundle.husk(&["pause", id]));
        let paused = bundle.husk(&["exec", id, "true"]);
        assert_eq!(paused.status, 1);
        assert_eq!(
            paused.stderr,
            "husk: cannot exec in container exec_refused: it is paused\n"
        );
        success(bundle.husk(&["resume", id]));
    } else {
        eprintln!("SKIP exec_refused (paused part): no cgroup v2 hierarchy mounted");
    }
    success(bundle.husk(&["kill", id, "KILL"]));
    let deadline = Instant::now() + TIMEOUT;
    while state_of(&bundle).0 != "stopped" {
        assert!(Instant::now() < deadline, "the container did not stop");
        sleep(Duration::from_millis(10));
    }
    let stopped = bundle.husk(&["exec", id, "true"]);
    assert_eq!(stopped.status, 1);
    assert_eq!(
        stopped.stderr,
        "husk: cannot exec in container exec_refused: it is stopped\n"
    );
    let unknown = bundle.husk(&["exec", "nonexistent", "true"]);
    assert_eq!(
        unknown.stderr,
        "husk: container nonexistent does not exist\n"
    );
}

#[test]
fn exec_forwards_sigterm_and_leaks_no_descriptor() {
    let Some(bundle) = Bundle::new("exec_signals") else {
        return;
    };
    run_detached(&bundle, &SLEEPER);
    let root = bundle.state_root();
    // A descriptor husk's caller leaked (7, not close-on-exec) stays outside.
    let leaky = format!(
        "exec 7</dev/null; exec {HUSK} --root {} exec {} ls /proc/self/fd",
        root.display(),
        bundle.name
    );
    let fds = finish(
        Command::new("/bin/sh")
            .args(["-c", &leaky])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // ls's own directory descriptor is 3.
    assert_eq!(success(fds), "0\n1\n2\n3\n");

    let pid_file = bundle.dir.join("fg.pid");
    let husk = Command::new(HUSK)
        .arg("--root")
        .arg(&root)
        .args(["exec", "--pid-file"])
        .arg(&pid_file)
        .args([bundle.name, "sleep", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    // The pid file is written once the process runs.
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "the process never started");
        sleep(Duration::from_millis(10));
    }
    kill(Pid::from_raw(husk.id() as i32), Signal::SIGTERM).unwrap();
    let outcome = finish(husk);
    assert_eq!(outcome.status, 128 + 15, "stderr: {}", outcome.stderr);
}

/// Adds `hooks` (a JSON object) to the bundle's config.json.
fn add_hooks(bundle: &Bundle, hooks: &str) {
    let path = bundle.dir.join("config.json");
    let config = fs::read_to_string(&path).unwrap();
    let config = config.replacen(
        "\"mounts\":",
        &format!("\"hooks\": {hooks}, \"mounts\":"),
        1,
    );
    fs::write(path, config).unwrap();
}

#[test]
fn hooks_run_in_order_with_the_state() {
    let Some(bundle) = Bundle::new("hooks") else {
        return;
    };
    bundle.write_config(&Config {
        args: &["sh", "-c", "echo container >> /log/order"],
        mounts: r#", {"destination": "/log", "source": "log", "options": ["bind"]}"#,
        ..DEFAULT
    });
    fs::create_dir(bundle.dir.join("log")).unwrap();
    let log = bundle.dir.join("log");
    let hook = |name: &str| {
        format!(
            r#"{{"path": "/bin/sh", "args": ["sh", "-c", "cat > {0}/{name}.json; echo {name} >> {0}/order"]}}"#,
            log.display()
        )
    };
    add_hooks(
        &bundle,
        &format!(
            r#"{{"createRuntime": [{}], "poststart": [{}], "poststop": [{}]}}"#,
            hook("createRuntime"),
            hook("poststart"),
            hook("poststop")
        ),
    );
    let dir = bundle.dir.to_str().unwrap();
    success(bundle.husk(&["run", "--bundle", dir, "hooks"]));
    let order = fs::read_to_string(log.join("order")).unwrap();
    // poststart may run before or after the short-lived process writes.
    let order: Vec<&str> = order.lines().filter(|l| *l != "container").collect();
    assert_eq!(order, ["createRuntime", "poststart", "poststop"]);
    let state = fs::read_to_string(log.join("createRuntime.json")).unwrap();
    assert!(
        state.contains(r#""id":"hooks","status":"creating""#),
        "{state}"
    );
    assert!(!state.contains(r#""pid":0"#), "{state}");
    let state = fs::read_to_string(log.join("poststop.json")).unwrap();
    assert!(state.contains(r#""status":"stopped""#), "{state}");
    assert!(fs::read_to_string(log.join("order"))
        .unwrap()
        .contains("container"));
}

#[test]
fn a_failing_create_runtime_hook_fails_the_create_and_leaves_nothing() {
    let Some(bundle) = Bundle::new("hook_fails") else {
        return;
    };
    fs::create_dir(bundle.dir.join("out")).unwrap();
    bundle.write_config(&MARK_AND_SLEEP);
    add_hooks(
        &bundle,
        r#"{"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}"#,
    );
    let dir = bundle.dir.to_str().unwrap();
    let outcome = bundle.husk(&["create", "--bundle", dir, "hook_fails"]);
    assert_eq!(outcome.status, 1);
    assert_eq!(
        outcome.stderr,
        "husk: createRuntime hook /bin/sh failed (exit status: 3)\n"
    );
    assert!(!bundle.state_root().join("hook_fails").exists());
    sleep(Duration::from_millis(200));
    assert!(!bundle.dir.join("out/started").exists());
}

/// How many zombie children the process `parent` has (zombies are in no
/// cgroup's `cgroup.procs`, so this scans /proc for their parent pid).
fn zombie_children(parent: i32) -> usize {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| fs::read_to_string(entry.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
            state == Some("Z") && ppid == Some(parent)
        })
        .count()
}

#[test]
fn init_reaps_orphans_and_forwards_signals() {
    let Some(bundle) = Bundle::new("reaper") else {
        return;
    };
    if cgroup_root().is_none() {
        eprintln!("SKIP reaper: no cgroup v2 hierarchy mounted");
        return;
    }
    // An orphan that ends soon, under a PID 1 that never reaps (sleep).
    bundle.write_config(&Config {
        args: &["sh", "-c", "(sleep 0.1 &); exec sleep 1000"],
        // busybox sh gives background jobs /dev/null as stdin.
        mounts: r#", {"destination": "/dev/null", "source": "/dev/null", "options": ["bind"]}"#,
        ..DEFAULT
    });
    let dir = bundle.dir.to_str().unwrap();
    success(bundle.husk(&["run", "-d", "--bundle", dir, "reaper"]));
    sleep(Duration::from_millis(600));
    let (_, init) = state_of(&bundle);
    assert_eq!(
        zombie_children(init),
        1,
        "without --init the orphan stays a zombie"
    );
    // SIGTERM to a PID 1 without a handler is dropped.
    success(bundle.husk(&["kill", "reaper", "TERM"]));
    sleep(Duration::from_millis(300));
    assert_eq!(state_of(&bundle).0, "running");
    success(bundle.husk(&["delete", "--force", "reaper"]));

    success(bundle.husk(&["run", "-d", "--init", "--bundle", dir, "reaper"]));
    sleep(Duration::from_millis(600));
    let (_, init) = state_of(&bundle);
    assert_eq!(zombie_children(init), 0, "with --init the orphan is reaped");
    success(bundle.husk(&["kill", "reaper", "TERM"]));
    let deadline = Instant::now() + TIMEOUT;
    while state_of(&bundle).0 != "stopped" {
        assert!(Instant::now() < deadline, "--init did not forward SIGTERM");
        sleep(Duration::from_millis(10));
    }
    success(bundle.husk(&["delete", "reaper"]));
}

#[test]
fn errors_are_also_logged_as_json_lines() {
    let dir = std::env::temp_dir().join(format!("husk-log-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log.json");
    let out = Command::new(HUSK)
        .arg("--root")
        .arg(dir.join("state"))
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "state", "no-such"])
        .output()
        .unwrap();
    let line = fs::read_to_string(&log).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "husk: container no-such does not exist\n"
    );
    assert!(
        line.starts_with(r#"{"level":"error","msg":"container no-such does not exist","time":""#)
            && line.ends_with("Z\"}\n"),
        "{line}"
    );
}

#[test]
fn start_and_delete_run_poststart_and_poststop_hooks() {
    let Some(bundle) = Bundle::new("hooks_split") else {
        return;
    };
    fs::create_dir(bundle.dir.join("out")).unwrap();
    bundle.write_config(&MARK_AND_SLEEP);
    let log = bundle.dir.join("order");
    let hook = |name: &str| {
        format!(
            r#"{{"path": "/bin/sh", "args": ["sh", "-c", "echo {name} >> {}"]}}"#,
            log.display()
        )
    };
    add_hooks(
        &bundle,
        &format!(
            r#"{{"poststart": [{}], "poststop": [{}]}}"#,
            hook("poststart"),
            hook("poststop")
        ),
    );
    let dir = bundle.dir.to_str().unwrap();
    success(bundle.husk(&["create", "--bundle", dir, "hooks_split"]));
    assert!(!log.exists());
    success(bundle.husk(&["start", "hooks_split"]));
    assert_eq!(fs::read_to_string(&log).unwrap(), "poststart\n");
    success(bundle.husk(&["delete", "--force", "hooks_split"]));
    assert_eq!(fs::read_to_string(&log).unwrap(), "poststart\npoststop\n");
}

/// `linux` members that map container ids 0..65535 to host ids from 100000.
const SUBORDINATE_MAPS: &str = r#", "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]"#;

/// The `Uid:` line's ids of `/proc/<pid>/status`, as the host sees them.
fn host_uids(pid: i32) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status_field(&status, "Uid").to_owned()
}

#[test]
fn user_namespace_maps_root_to_a_host_range() {
    let Some(bundle) = Bundle::new("userns") else {
        return;
    };
    // Container root cannot create mount points in a rootfs owned by the
    // host's root, which it does not map.
    fs::create_dir(bundle.rootfs().join("proc")).unwrap();
    let config = Config {
        args: &["sh", "-c", "exec sleep 1000"],
        namespaces: &["pid", "mount", "uts", "ipc", "network", "user"],
        linux: SUBORDINATE_MAPS,
        ..DEFAULT
    };
    bundle.write_config(&config);
    let dir = bundle.dir.to_str().unwrap();
    success(bundle.husk(&["run", "--detach", "--bundle", dir, "userns"]));
    let (_, pid) = state_of(&bundle);
    // Container root is host uid 100000, in every one of its four ids.
    assert_eq!(host_uids(pid), "100000\t100000\t100000\t100000");
    let inside = success(bundle.husk(&[
        "exec",
        "userns",
        "sh",
        "-c",
        "id; cat /proc/self/uid_map; ls -ln /marker",
    ]));
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(lines[0], "uid=0 gid=0", "{inside}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"]);
    // A file of the host's root is nobody's inside.
    assert!(lines[2].contains(" 65534 "), "{inside}");
    success(bundle.husk(&["delete", "--force", "userns"]));
    assert!(!process_exists(pid));
}

#[test]
fn maps_without_a_new_user_namespace_are_refused() {
    let Some(bundle) = Bundle::new("maps_no_userns") else {
        return;
    };
    let outcome = bundle.run(&Config {
        linux: SUBORDINATE_MAPS,
        ..DEFAULT
    });
    assert_eq!(outcome.status, 1);
    assert_eq!(
        outcome.stderr,
        "husk: config.json: linux.uidMappings needs a new user namespace\n"
    );
}

/// The uid and gid the rootless tests run husk as; no such user need exist.
const ROOTLESS_ID: u32 = 4321;

/// Runs `husk ARGS...` as [`ROOTLESS_ID`] (std drops the supplementary groups) and
/// `XDG_RUNTIME_DIR` at `runtime_dir`.
fn husk_rootless(runtime_dir: &Path, args: &[&str]) -> Outcome {
    use std::os::unix::process::CommandExt;
    let output = Command::new(HUSK)
        .args(args)
        .env_clear()
        .env("XDG_RUNTIME_DIR", runtime_dir)
        .uid(ROOTLESS_ID)
        .gid(ROOTLESS_ID)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Outcome {
        status: output
            .status
            .code()
            .expect("husk itself should not be killed"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[test]
fn rootless_runs_the_default_rootless_config() {
    let Some(bundle) = Bundle::new("rootless") else {
        return;
    };
    let max = fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        writeln!(
            std::io::stderr(),
            "SKIP rootless: user namespaces are disabled"
        )
        .unwrap();
        return;
    }
    let runtime_dir = bundle.dir.join("xdg");
    fs::create_dir(&runtime_dir).unwrap();
    let chown = |path: &Path| std::os::unix::fs::chown(path, Some(ROOTLESS_ID), Some(ROOTLESS_ID));
    chown(&runtime_dir).unwrap();
    chown(&bundle.dir).unwrap();
    for dir in ["dev", "sys", "tmp", "proc"] {
        fs::create_dir_all(bundle.rootfs().join(dir)).unwrap();
    }
    let dir = bundle.dir.to_str().unwrap();
    success(husk_rootless(
        &runtime_dir,
        &["spec", "--rootless", "--bundle", dir],
    ));
    let config = fs::read_to_string(bundle.dir.join("config.json")).unwrap();
    let script = "id; cat /proc/self/uid_map; echo x > /dev/null && ls /sys/class >/dev/null \
                  && echo dev-and-sys; touch /x";
    let config = config.replace(
        r#""args": ["sh"]"#,
        &format!(r#""args": ["sh", "-c", "{script}"]"#),
    );
    fs::write(bundle.dir.join("config.json"), &config).unwrap();

    let outcome = husk_rootless(&runtime_dir, &["run", "--bundle", dir, "rootless"]);
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"uid=0 gid=0"), "{}", outcome.stderr);
    let map: Vec<String> = lines[1].split_whitespace().map(str::to_owned).collect();
    assert_eq!(map, ["0", &ROOTLESS_ID.to_string(), "1"]);
    assert_eq!(lines[2], "dev-and-sys");
    // The default root is read-only, in a user namespace too.
    assert_eq!(outcome.stderr, "touch: /x: Read-only file system\n");
    assert_eq!(outcome.status, 1);
    assert!(
        !runtime_dir.join("husk/rootless").exists(),
        "run removes its state"
    );

    // Limits need a cgroup this user may create.
    if let Some(root) = cgroup_root() {
        let limited = config.replace(
            r#""uidMappings""#,
            r#""resources": {"pids": {"limit": 10}}, "uidMappings""#,
        );
        assert_ne!(limited, config);
        fs::write(bundle.dir.join("config.json"), limited).unwrap();
        let refused = husk_rootless(&runtime_dir, &["run", "--bundle", dir, "rootless"]);
        assert_eq!(refused.status, 1);
        // The directory named is the cgroup root, or the husk parent below
        // it if another test made that.
        let expected = format!(
            "husk: running as uid {ROOTLESS_ID}, not root: config.json sets linux.resources, \
             but {}",
            root.display()
        );
        assert!(refused.stderr.starts_with(&expected), "{}", refused.stderr);
        assert!(
            refused.stderr.ends_with(
                " is not writable; delegate it to this user (chown) or remove the limits\n"
            ),
            "{}",
            refused.stderr
        );
        assert!(!runtime_dir.join("husk/rootless").exists());
    }
}

/// Pids of the processes whose command line mentions `word`.
fn processes_mentioning(word: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).any(|arg| arg == word.as_bytes()))
        })
        .collect()
}

#[test]
fn killing_husk_mid_create_leaves_nothing_delete_force_cannot_clean() {
    let Some(bundle) = Bundle::new("killcreate") else {
        return;
    };
    let Some(root) = cgroup_root() else {
        eprintln!("SKIP killcreate: no cgroup v2 hierarchy mounted (a container init orphaned by a killed create is found through its cgroup)");
        return;
    };
    bundle.write_config(&Config {
        args: &["sleep", "1000"],
        ..DEFAULT
    });
    let dir = bundle.dir.to_str().unwrap();
    let mounts = mount_count();
    // SIGKILL after these many microseconds: from before husk has read the
    // config to after it has recorded the init (a create takes a few ms).
    let delays = [
        0, 100, 300, 600, 1000, 1500, 2000, 3000, 4000, 6000, 9000, 15000, 40000,
    ];
    let mut states = Vec::new();
    for (n, delay) in delays.iter().enumerate() {
        let id = format!("killcreate{n}");
        let mut husk = Command::new(HUSK)
            .arg("--root")
            .arg(bundle.state_root())
            .args(["create", "--bundle", dir, &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        sleep(Duration::from_micros(*delay));
        let _ = husk.kill();
        husk.wait().unwrap();
        states.push(bundle.state_root().join(&id).exists());

        let deleted = bundle.husk(&["delete", "--force", &id]);
        let gone = format!("husk: container {id} does not exist\n");
        assert!(
            deleted.status == 0 || deleted.stderr == gone,
            "delete --force after a kill at {delay} µs: {}",
            deleted.stderr
        );
        assert!(
            !bundle.state_root().join(&id).exists(),
            "state of {id} left"
        );
        assert!(!root.join("husk").join(&id).exists(), "cgroup of {id} left");
        // The init of a killed create runs husk's code until start: its
        // command line is the create's, with the id.
        let deadline = Instant::now() + TIMEOUT;
        while !processes_mentioning(&id).is_empty() {
            assert!(
                Instant::now() < deadline,
                "processes of {id} left: {:?}",
                processes_mentioning(&id)
            );
            sleep(Duration::from_millis(10));
        }
        assert_eq!(mount_count(), mounts, "no mount may be left on the host");
    }
    // The kills must have hit both before and after the state was recorded.
    assert!(
        states.contains(&true),
        "no kill came after the record: {states:?}"
    );
}

#[test]
fn in_container_hooks_run_in_the_containers_namespaces() {
    let Some(bundle) = Bundle::new("inhooks") else {
        return;
    };
    bundle.write_config(&Config {
        args: &["sh", "-c", "echo container >> /log/order"],
        mounts: r#", {"destination": "/log", "source": "log", "options": ["bind"]}"#,
        ..DEFAULT
    });
    let log = bundle.dir.join("log");
    fs::create_dir(&log).unwrap();
    // createContainer's path is the host's (/bin/sh, dash or whatever it is)
    // and it writes to the host's path of the log; startContainer's path is
    // the container's busybox, and it writes to the container's /log.
    let create = format!(
        r#"{{"path": "/bin/sh", "args": ["sh", "-c", "cat > {0}/create.json; readlink /proc/self/ns/mnt > {0}/create.mnt; echo createContainer >> {0}/order"]}}"#,
        log.display()
    );
    let start = r#"{"path": "/bin/sh", "args": ["sh", "-c", "cat > /log/start.json; echo startContainer >> /log/order"]}"#;
    add_hooks(
        &bundle,
        &format!(r#"{{"createContainer": [{create}], "startContainer": [{start}]}}"#),
    );
    let dir = bundle.dir.to_str().unwrap();
    success(bundle.husk(&["run", "--bundle", dir, "inhooks"]));
    let order = fs::read_to_string(log.join("order")).unwrap();
    assert_eq!(order, "createContainer\nstartContainer\ncontainer\n");
    let host_mnt = fs::read_link("/proc/self/ns/mnt").unwrap();
    let hook_mnt = fs::read_to_string(log.join("create.mnt")).unwrap();
    assert_ne!(
        hook_mnt.trim(),
        host_mnt.to_str().unwrap(),
        "createContainer ran in the host's mount namespace"
    );
    for (file, status) in [("create.json", "creating"), ("start.json", "created")] {
        let state = fs::read_to_string(log.join(file)).unwrap();
        assert!(
            state.contains(&format!(r#""id":"inhooks","status":"{status}","pid":1,"#)),
            "{state}"
        );
    }

    // A failing one fails the run and leaves nothing.
    bundle.write_config(&DEFAULT);
    add_hooks(
        &bundle,
        r#"{"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}]}"#,
    );
    let outcome = bundle.husk(&["run", "--bundle", dir, "inhooks"]);
    assert_eq!(outcome.status, 1);
    assert_eq!(
        outcome.stderr,
        "husk: startContainer hook /bin/sh failed (exit status: 4)\n"
    );
    assert!(!bundle.state_root().join("inhooks").exists());
}

#[test]
fn a_cgroup_mount_shows_the_containers_own_cgroup() {
    let Some(bundle) = Bundle::new("cgroupmount") else {
        return;
    };
    if cgroup_root().is_none() {
        eprintln!("SKIP cgroupmount: no cgroup v2 hierarchy mounted");
        return;
    }
    let outcome = bundle.run(&Config {
        args: &[
            "sh",
            "-c",
            "while read -r line; do case $line in 0::*) echo $line;; esac; done < /proc/self/cgroup; \
             cat /sys/fs/cgroup/cgroup.procs | wc -l; \
             mkdir /sys/fs/cgroup/x 2>&1 && echo writable || echo read-only",
        ],
        namespaces: &["pid", "mount", "uts", "ipc", "network", "cgroup"],
        mounts: r#", {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                      "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}"#,
        ..DEFAULT
    });
    // The container's cgroup (v2: the line 0::) is the root of what it
    // sees, and holds only the container's processes (sh, cat and wc at most).
    let out = success(outcome);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0::/", "{out}");
    let procs: usize = lines[1].trim().parse().unwrap();
    assert!((1..=3).contains(&procs), "{out}");
    assert_eq!(
        lines[2..],
        [
            "mkdir: can't create directory '/sys/fs/cgroup/x': Read-only file system",
            "read-only"
        ]
    );
}

#[test]
fn mount_propagation_options_reach_the_kernel() {
    let Some(bundle) = Bundle::new("propagation") else {
        return;
    };
    fs::create_dir(bundle.dir.join("data")).unwrap();
    let outcome = bundle.run(&Config {
        args: &["cat", "/proc/self/mountinfo"],
        mounts: r#", {"destination": "/data", "source": "data", "options": ["bind", "unbindable"]}"#,
        linux: r#", "rootfsPropagation": "rslave""#,
        ..DEFAULT
    });
    let mountinfo = success(outcome);
    // Field 5 is the mount point; the optional fields follow field 6.
    let data = mountinfo
        .lines()
        .find(|line| line.split(' ').nth(4) == Some("/data"))
        .unwrap_or_else(|| panic!("no /data in {mountinfo}"));
    assert!(data.contains(" unbindable "), "{data}");
}

#[test]
fn device_rules_decide_which_nodes_open_and_can_be_made() {
    let Some(bundle) = Bundle::new("device_rules") else {
        return;
    };
    if cgroup_root().is_none() {
        eprintln!("SKIP device_rules: no cgroup v2 hierarchy mounted");
        return;
    }
    let script = "(true < /dev/kmsg) && echo kmsg_read; (true > /dev/kmsg) && echo kmsg_write; \
                  echo x > /dev/null && echo null_ok; \
                  mknod /dev/sda b 8 0 && echo mknod_disk; \
                  mknod /dev/zero2 c 1 5 && echo mknod_zero; \
                  ls -ln /dev/kmsg /dev/null";
    let config = Config {
        args: &["sh", "-c", script],
        linux: r#", "devices": [
                {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 416, "gid": 4},
                {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}],
            "resources": {"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}]}"#,
        ..DEFAULT
    };
    let outcome = bundle.run(&config);
    if outcome.stderr.contains("CONFIG_CGROUP_BPF") {
        eprintln!(
            "SKIP device_rules: this kernel cannot attach device programs: {}",
            outcome.stderr.trim()
        );
        return;
    }
    assert_eq!(
        outcome.status, 0,
        "stdout: {}\nstderr: {}",
        outcome.stdout, outcome.stderr
    );
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(
        lines[..3],
        ["kmsg_read", "null_ok", "mknod_zero"],
        "stderr: {}",
        outcome.stderr
    );
    // ls -ln: mode, links, uid, gid, "major," minor, ...
    let fields = |line: &str| -> Vec<String> {
        let f: Vec<&str> = line.split_whitespace().collect();
        [f[0], f[2], f[3], f[4], f[5]].map(String::from).to_vec()
    };
    assert_eq!(fields(lines[3]), ["crw-r-----", "0", "4", "1,", "11"]);
    assert_eq!(fields(lines[4]), ["crw-rw-rw-", "0", "0", "1,", "3"]);
    let denied = outcome.stderr.matches("Operation not permitted").count();
    assert_eq!(
        denied, 2,
        "the write of kmsg and the disk mknod: {}",
        outcome.stderr
    );
}

/// `husk check` on this host, through the real binary: the exit status is the
/// one the `--json` document states (0 or 2 here: these hosts may lack cgroup2
/// at /sys/fs/cgroup), the text fits 80 columns with no colour into a file,
/// and a bad `--board` is one line on stderr and exit status 1.
#[test]
fn check_reports_this_host_through_the_binary() {
    let dir = std::env::temp_dir().join(format!("husk-host-check-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let husk = |args: &[&str]| {
        let output = Command::new(HUSK).args(args).output().unwrap();
        Outcome {
            status: output
                .status
                .code()
                .expect("husk check should not be killed"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    };
    let text = husk(&["check"]);
    assert!(text.stderr.is_empty(), "{}", text.stderr);
    assert!(
        matches!(text.status, 0 | 2),
        "status {}: {}",
        text.status,
        text.stdout
    );
    assert!(
        text.stdout.starts_with("husk check: kernel "),
        "{}",
        text.stdout
    );
    for line in text.stdout.lines() {
        assert!(line.chars().count() <= 80, "too wide: {line:?}");
    }
    assert!(!text.stdout.contains('\x1b'), "colour into a pipe");
    let ready = text
        .stdout
        .contains("\nReady: every required feature is present");
    assert_eq!(ready, text.status == 0, "{}", text.stdout);

    let json = husk(&["check", "--json"]);
    assert_eq!(json.status, text.status);
    let doc = json.stdout.trim_end();
    assert!(doc.starts_with("{\"schemaVersion\":1,"), "{doc}");
    assert!(
        doc.contains(&format!("\"exitCode\":{},", text.status)),
        "{doc}"
    );
    assert!(doc.ends_with(",\"board\":null}"), "{doc}");

    // A fragment that holds whatever this kernel has: met, unless a required
    // feature decides first.
    let fragment = dir.join("empty.config");
    fs::write(&fragment, "# nothing wanted\n").unwrap();
    let board = husk(&["check", "--board", fragment.to_str().unwrap()]);
    if doc.contains("\"config\":null") {
        assert_eq!(board.status, 1, "{}", board.stderr);
        assert!(board
            .stderr
            .contains("--board needs the running kernel's config"));
    } else {
        assert_eq!(
            board.status, text.status,
            "{}{}",
            board.stdout, board.stderr
        );
        assert!(board
            .stdout
            .ends_with("0 of 0 symbols as the fragment sets them.\n"));
    }

    let missing = dir.join("absent.toml");
    let bad = husk(&["check", "--board", missing.to_str().unwrap()]);
    assert_eq!(bad.status, 1);
    assert!(bad.stdout.is_empty());
    assert_eq!(
        bad.stderr,
        format!(
            "husk: check: reading {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_network_namespace_has_its_loopback_up() {
    let Some(bundle) = Bundle::new("loopback") else {
        return;
    };
    let outcome = bundle.run(&Config {
        args: &["cat", "/sys/class/net/lo/flags"],
        mounts: r#", {"destination": "/sys", "type": "sysfs", "source": "sysfs"}"#,
        ..DEFAULT
    });
    // IFF_UP (0x1) and IFF_LOOPBACK (0x8).
    assert_eq!(success(outcome).trim(), "0x9");
}

/// Two containers with the same device rules share one device program: the
/// first loads it and pins it under /sys/fs/bpf/husk, the second attaches
/// the pinned one (no second load, verification and JIT).
#[test]
fn containers_share_one_pinned_device_program() {
    let Some(bundle) = Bundle::new("pinned_program") else {
        return;
    };
    let Some(root) = cgroup_root() else {
        eprintln!("SKIP pinned_program: no cgroup v2 hierarchy mounted");
        return;
    };
    bundle.write_config(&Config {
        args: &["sleep", "100"],
        ..DEFAULT
    });
    let dir = bundle.dir.to_str().unwrap();
    let created = bundle.husk(&["create", "--bundle", dir, "pinned_a"]);
    if created.stderr.contains("CONFIG_CGROUP_BPF") {
        eprintln!(
            "SKIP pinned_program: no device programs: {}",
            created.stderr
        );
        return;
    }
    success(created);
    success(bundle.husk(&["create", "--bundle", dir, "pinned_b"]));
    let ids = |id: &str| husk::sys::device_program_ids(&root.join("husk").join(id)).unwrap();
    let (a, b) = (ids("pinned_a"), ids("pinned_b"));
    for id in ["pinned_a", "pinned_b"] {
        success(bundle.husk(&["delete", "--force", id]));
    }
    if !Path::new(husk::sys::BPF_PIN_DIR).exists() {
        eprintln!("SKIP pinned_program: no BPF filesystem to pin in");
        return;
    }
    assert_eq!(
        a.len(),
        1,
        "one device program on the first container: {a:?}"
    );
    assert_eq!(a, b, "the second container must attach the same program");
}
