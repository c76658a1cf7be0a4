//! Privileged host tests of the field views: the built binary's `husk
//! status`, `ps`, `inspect` and `stats` against a real `husk daemon`
//! supervising busybox containers, as root, each test with its own state
//! and data directories.
//!
//! A test that cannot run here (not root, no busybox) prints
//! `SKIP <test>: <why>` on stderr and passes.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

#[allow(dead_code, reason = "each test binary uses part of it")]
mod common;

use husk::daemon::status::DaemonStatus;

const HUSK: &str = env!("CARGO_BIN_EXE_husk");
const TIMEOUT: Duration = Duration::from_secs(30);

/// A daemon supervising `desired` (entries without their bundle) in a
/// temporary directory, stopped and removed on drop.
struct World {
    dir: PathBuf,
    daemon: Option<Child>,
}

impl World {
    fn new(test: &str, entries: &[&str]) -> Option<Self> {
        Self::with_daemon_args(test, entries, &[])
    }

    /// As `new`, with more options for `husk daemon`.
    fn with_daemon_args(test: &str, entries: &[&str], extra: &[&str]) -> Option<Self> {
        if !common::root_with_busybox(test) {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("husk-field-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        common::busybox_rootfs(&dir.join("bundle/rootfs"), &["sh", "sleep", "yes", "true"]);
        let resources = match controllers().contains(&"memory".to_owned()) {
            true => r#", "resources": {"memory": {"limit": 67108864}}"#,
            false => "",
        };
        let config = format!(
            r#"{{"ociVersion": "1.0.2",
            "process": {{"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/"}},
            "root": {{"path": "rootfs"}},
            "mounts": [{{"destination": "/proc", "type": "proc", "source": "proc"}}],
            "linux": {{"namespaces": [{{"type": "pid"}}, {{"type": "mount"}}]{resources}}}}}"#
        );
        fs::write(dir.join("bundle/config.json"), config).unwrap();
        fs::create_dir_all(dir.join("data")).unwrap();
        let bundle = dir.join("bundle");
        let entries: Vec<String> = entries
            .iter()
            .map(|e| format!(r#"{{"bundle": "{}", {}"#, bundle.display(), &e[1..]))
            .collect();
        fs::write(
            dir.join("data/desired.json"),
            format!(r#"{{"containers": [{}]}}"#, entries.join(", ")),
        )
        .unwrap();
        let daemon = Command::new(HUSK)
            .arg("--root")
            .arg(dir.join("state"))
            .arg("daemon")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(Self {
            dir,
            daemon: Some(daemon),
        })
    }

    /// `husk --root STATE CMD --data-dir DATA ARGS`.
    fn husk(&self, command: &str, args: &[&str]) -> Output {
        Command::new(HUSK)
            .arg("--root")
            .arg(self.dir.join("state"))
            .arg(command)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Waits until every container the daemon publishes runs.
    fn wait_running(&self, count: usize) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let status = DaemonStatus::read(&self.dir.join("data/status.json")).ok();
            if status.is_some_and(|s| {
                s.containers.len() == count && s.containers.iter().all(|c| c.state == "running")
            }) {
                return;
            }
            assert!(Instant::now() < deadline, "the containers never ran");
            sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The controllers of the cgroup v2 root husk uses (none on a v1 host; a
/// hybrid host's v2 part may have none of memory, cpu and pids).
fn controllers() -> Vec<String> {
    husk::lifecycle::CGROUP_ROOTS
        .iter()
        .find_map(|root| fs::read_to_string(format!("{root}/cgroup.controllers")).ok())
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_ps_inspect_and_stats_of_a_running_device() {
    let Some(mut world) = World::new(
        "status",
        &[
            r#"{"name": "busy", "args": ["sh", "-c", "while :; do :; done"], "stopTimeout": "1s"}"#,
            r#"{"name": "idle", "args": ["sleep", "1000"], "stopTimeout": "1s"}"#,
        ],
    ) else {
        return;
    };
    world.wait_running(2);

    let out = world.husk("status", &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("daemon    running, pid"), "{shown}");
    assert!(shown.ends_with("health    ok\n"), "{shown}");
    let busy = shown.lines().find(|l| l.starts_with("busy ")).unwrap();
    assert!(busy.contains(" running "), "{busy}");
    for line in shown.lines() {
        assert!(line.len() <= 80, "too wide: {line:?}");
    }
    let controllers = controllers();
    let has = |name: &str| controllers.iter().any(|c| c == name);
    if !has("memory") || !has("cpu") {
        common::skip(
            "status_ps_inspect_and_stats_of_a_running_device (memory and CPU figures)",
            &format!("the cgroup v2 root has only {controllers:?}"),
        );
    }
    let out = world.husk("status", &["--json"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["daemon"]["running"], true);
    assert_eq!(value["containers"][1]["name"], "idle");
    assert!(value["containers"][1]["pid"].as_i64().unwrap() > 0);
    if has("memory") {
        // Its memory against the 64 MiB limit of its config.
        assert!(busy.contains("/64M"), "{busy}");
        assert_eq!(value["containers"][0]["memoryLimitBytes"], 64 << 20);
        assert!(value["containers"][0]["memoryBytes"].as_u64().unwrap() > 0);
    }
    if has("pids") {
        assert!(value["containers"][0]["pids"].as_u64().unwrap() >= 1);
    }

    let out = world.husk("ps", &[]);
    let shown = text(&out);
    assert!(out.status.success());
    assert!(shown.starts_with("NAME  IMAGE"), "{shown}");
    assert!(shown.contains("idle  /tmp/"), "{shown}");
    let value: serde_json::Value =
        serde_json::from_slice(&world.husk("ps", &["--json"]).stdout).unwrap();
    assert_eq!(value[1]["name"], "idle");
    assert_eq!(value[1]["state"], "running");

    // runc's ps of one container still lists its pids.
    let out = Command::new(HUSK)
        .arg("--root")
        .arg(world.dir.join("state"))
        .args(["ps", "--format", "json", "idle"])
        .output()
        .unwrap();
    let pids: Vec<i32> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pids.len(), 1);

    let out = world.husk("inspect", &["--json", "idle"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["status"]["state"], "running");
    assert_eq!(value["oci"]["status"], "running");
    if has("memory") {
        assert_eq!(value["cgroup"]["memoryLimitBytes"], 64 << 20);
    }
    assert_eq!(value["desired"]["restart"], "always");
    assert!(text(&world.husk("inspect", &["idle"])).contains("state        running\n"));
    assert_eq!(world.husk("inspect", &["nope"]).status.code(), Some(1));

    // The loop keeps a CPU busy; `sleep` does not.
    let out = world.husk("stats", &["--json"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value[1]["name"], "idle");
    if has("cpu") {
        assert!(value[0]["cpuPercent"].as_u64().unwrap() > 2_000, "{value}");
        assert!(value[1]["cpuPercent"].as_u64().unwrap() < 500, "{value}");
    }
    assert!(text(&world.husk("stats", &[])).starts_with("NAME "));

    world.stop();
    let out = world.husk("status", &[]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("the daemon is not running"));
}

#[test]
fn status_exits_6_when_a_container_keeps_failing() {
    let Some(world) = World::new(
        "failing",
        &[
            r#"{"name": "crash", "args": ["sh", "-c", "exit 3"], "restart": "on-failure:1", "backoff": {"initial": "50ms"}}"#,
        ],
    ) else {
        return;
    };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let out = world.husk("status", &[]);
        if out.status.code() == Some(6) {
            assert!(text(&out).contains("  - crash "), "{}", text(&out));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "status never said 6: {}",
            text(&out)
        );
        sleep(Duration::from_millis(50));
    }
}

impl World {
    /// The published state and pid of container `name`.
    fn container(&self, name: &str) -> (String, Option<i32>, u32) {
        let status = DaemonStatus::read(&self.dir.join("data/status.json")).unwrap();
        let c = status
            .containers
            .into_iter()
            .find(|c| c.name == name)
            .unwrap();
        (c.state, c.pid, c.restarts)
    }

    /// Waits until container `name` is in `state`; returns its pid.
    fn wait_state(&self, name: &str, state: &str) -> Option<i32> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let published = DaemonStatus::read(&self.dir.join("data/status.json"))
                .ok()
                .and_then(|s| s.containers.into_iter().find(|c| c.name == name));
            if let Some(c) = published.filter(|c| c.state == state) {
                return c.pid;
            }
            assert!(Instant::now() < deadline, "{name} never got {state}");
            sleep(Duration::from_millis(20));
        }
    }

    /// `husk --root STATE ARGS` (the control commands need no data directory).
    fn control(&self, args: &[&str]) -> Output {
        Command::new(HUSK)
            .arg("--root")
            .arg(self.dir.join("state"))
            .args(args)
            .output()
            .unwrap()
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("state/daemon.sock")
    }
}

#[test]
fn stop_start_and_restart_through_the_control_socket() {
    let Some(world) = World::new(
        "control",
        &[r#"{"name": "idle", "args": ["sleep", "1000"], "stopTimeout": "1s"}"#],
    ) else {
        return;
    };
    world.wait_running(1);
    let meta = fs::metadata(world.socket()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    let out = world.control(&["stop", "idle"]);
    assert!(out.status.success(), "{:?}", out);
    assert_eq!(text(&out), "idle: stopping\n");
    assert_eq!(world.wait_state("idle", "stopped"), None);
    // Held stopped: its restart policy (always) does not apply.
    sleep(Duration::from_millis(1500));
    assert_eq!(world.container("idle").0, "stopped");

    let out = world.control(&["start", "idle"]);
    assert_eq!(text(&out), "idle: starting\n", "{out:?}");
    let first = world.wait_state("idle", "running").unwrap();
    // A running container is one of --root: runc's answer.
    let again = world.control(&["start", "idle"]);
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "husk: cannot start container idle: it is running\n"
    );

    let out = world.control(&["restart", "idle"]);
    assert_eq!(text(&out), "idle: restarting\n", "{out:?}");
    let deadline = Instant::now() + TIMEOUT;
    while world.container("idle").1.is_none_or(|pid| pid == first) {
        assert!(Instant::now() < deadline, "never restarted");
        sleep(Duration::from_millis(20));
    }

    let out = world.control(&["stop", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "husk: no container nope is supervised\n"
    );

    // Another user: the socket's permissions refuse, and say why.
    let out = Command::new(HUSK)
        .arg("--root")
        .arg(world.dir.join("state"))
        .args(["stop", "idle"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.starts_with("husk: stop idle needs root or group "),
        "{said}"
    );

    // No daemon: said so.
    let mut world = world;
    world.stop();
    let out = world.control(&["restart", "idle"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no husk daemon is listening"),
        "{out:?}"
    );
}

#[test]
fn malformed_control_requests_never_stall_supervision() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let Some(world) = World::new(
        "malformed",
        &[
            r#"{"name": "idle", "args": ["sleep", "1000"], "stopTimeout": "1s"}"#,
            // Exits every 0.2 s: its restarts show the loop turning.
            r#"{"name": "flaky", "args": ["sh", "-c", "sleep 0.2; exit 1"], "backoff": {"initial": "50ms", "max": "50ms"}}"#,
        ],
    ) else {
        return;
    };
    world.wait_state("idle", "running");
    let pid = world.container("idle").1;
    let restarts = world.container("flaky").2;
    let connect = || UnixStream::connect(world.socket()).unwrap();

    let garbage = || {
        let mut s = connect();
        // Refused (closed) while the daemon serves its most connections.
        let _ = s.write_all(b"\x00\x01garbage\xff\n");
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
    };
    // Garbage, answered one by one.
    for _ in 0..20 {
        let reply = garbage();
        assert!(
            reply.starts_with("{\"ok\":false,\"error\":\"bad request"),
            "{reply}"
        );
    }
    // A 1 MiB line: the daemon stops reading after its cap, so the write
    // fails or is cut.
    let mut s = connect();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(&vec![b'x'; 1 << 20]);
    drop(s);
    // Half a line, then silence, on more connections than it serves, and
    // garbage meanwhile.
    let mut silent: Vec<UnixStream> = (0..50)
        .map(|_| {
            let mut s = connect();
            let _ = s.write_all(b"{\"op\":\"st");
            s
        })
        .collect();
    for _ in 0..20 {
        garbage();
    }

    // Beyond the client timeout, the silent ones are dropped, and the
    // daemon has kept supervising throughout.
    sleep(Duration::from_secs(3));
    for s in &mut silent {
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
    }
    drop(silent);
    assert_eq!(world.container("idle").1, pid, "idle was restarted");
    let (_, _, now) = world.container("flaky");
    assert!(
        now >= restarts + 5,
        "status no longer published: {restarts} -> {now}"
    );
    // And it still answers.
    let out = world.control(&["stop", "idle"]);
    assert_eq!(text(&out), "idle: stopping\n", "{out:?}");
}

#[test]
fn logs_since_keeps_the_lines_stamped_from_then_on() {
    let Some(world) = World::new(
        "since",
        &[
            r#"{"name": "talk", "args": ["sh", "-c", "echo early; sleep 2; echo late; exec sleep 1000"], "stopTimeout": "200ms"}"#,
        ],
    ) else {
        return;
    };
    world.wait_running(1);
    let deadline = Instant::now() + TIMEOUT;
    let stamped = loop {
        let out = world.husk("logs", &["-t", "talk"]);
        if text(&out).contains("late\n") {
            break text(&out);
        }
        assert!(Instant::now() < deadline, "no late line: {out:?}");
        sleep(Duration::from_millis(50));
    };
    // As the daemon stamped them: `<UTC time> <line>`, a second or more apart.
    let times: Vec<u64> = stamped
        .lines()
        .map(|line| {
            let (stamp, rest) = line.split_once(' ').unwrap();
            assert!(["early", "late"].contains(&rest), "{stamped}");
            husk::daemon::logs::parse_rfc3339(stamp).unwrap()
        })
        .collect();
    assert_eq!(times.len(), 2, "{stamped}");
    assert!(times[1] > times[0], "{stamped}");
    let since = |args: &[&str]| {
        let out = world.husk("logs", args);
        assert!(out.status.success(), "{out:?}");
        text(&out)
    };
    let between = husk::lifecycle::rfc3339(times[0] + 1);
    assert_eq!(since(&["--since", &between, "talk"]), "late\n");
    assert_eq!(since(&["--since", "1d", "talk"]), "early\nlate\n");
    assert_eq!(since(&["--since", "1d", "--tail", "1", "talk"]), "late\n");
    let future = husk::lifecycle::rfc3339(times[1] + 3600);
    assert_eq!(since(&["--since", &future, "talk"]), "");
    assert_eq!(since(&["talk"]), "early\nlate\n");
    // A bad T: one line on stderr, nothing on stdout, exit status 1.
    let out = world.husk("logs", &["--since", "yesterday", "talk"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--since takes a duration"), "{stderr}");
}

#[test]
fn exec_by_name_runs_in_the_supervised_container() {
    let Some(world) = World::new(
        "exec",
        &[r#"{"name": "idle", "args": ["sleep", "1000"], "stopTimeout": "200ms"}"#],
    ) else {
        return;
    };
    world.wait_running(1);
    // A --root that does not hold it: the daemon's status says where it is.
    let elsewhere = world.dir.join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    let exec = |data: &str, args: &[&str]| {
        Command::new(HUSK)
            .arg("--root")
            .arg(&elsewhere)
            .arg("exec")
            .arg("--data-dir")
            .arg(world.dir.join(data))
            .args(args)
            .output()
            .unwrap()
    };
    let out = exec(
        "data",
        &[
            "-e",
            "X=1",
            "--cwd",
            "/bin",
            "idle",
            "sh",
            "-c",
            "echo $X $PWD; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(text(&out), "1 /bin\n");
    // In the container: its pid namespace, where sleep is PID 1.
    let out = exec(
        "data",
        &["idle", "sh", "-c", "read c < /proc/1/comm; echo $c"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out), "sleep\n");
    // The daemon's own --root works as runc's exec always did.
    let out = world.control(&["exec", "idle", "true"]);
    assert!(out.status.success(), "{out:?}");

    let one_line_error = |out: &Output, expected: &str| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    };
    one_line_error(
        &exec("data", &["nosuch", "true"]),
        &format!(
            "container nosuch does not exist in {}, nor in the desired state of {}",
            elsewhere.display(),
            world.dir.join("data").display()
        ),
    );
    // No daemon ever ran with that data directory: runc's exec, runc's error.
    one_line_error(
        &exec("nodata", &["idle", "true"]),
        "husk: container idle does not exist\n",
    );
    assert!(world.control(&["stop", "idle"]).status.success());
    world.wait_state("idle", "stopped");
    one_line_error(
        &exec("data", &["idle", "true"]),
        "container idle is not running (stopped)",
    );
}

#[test]
fn config_check_exits_2_on_a_bad_file_and_show_still_shows() {
    // No root needed: it only reads.
    let dir = std::env::temp_dir().join(format!("husk-field-{}-config", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("desired.json"),
        r#"{"containers": [{"name": "a"}]}"#,
    )
    .unwrap();
    let husk = |args: &[&str]| {
        Command::new(HUSK)
            .args(["--root", "/nonexistent-husk-root", "config"])
            .args(args)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .unwrap()
    };
    let out = husk(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let expected = format!("bad {}/desired.json: containers[0]", dir.display());
    assert!(text(&out).starts_with(&expected), "{}", text(&out));
    let out = husk(&["show"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).contains("state root    /nonexistent-husk-root\n"));
    assert!(text(&out).contains("desired.json: BAD: containers[0]"));
    let out = husk(&["show", "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).ends_with(",\"ok\":false}\n"), "{}", text(&out));
    fs::write(dir.join("desired.json"), r#"{"containers": []}"#).unwrap();
    let out = husk(&["check"]);
    // Good, unless this host's /etc/husk holds a bad file.
    let etc_bad = text(&out).lines().any(|l| l.starts_with("bad /etc/husk/"));
    assert_eq!(
        out.status.code(),
        Some(if etc_bad { 2 } else { 0 }),
        "{out:?}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// `husk daemon --read-group users`: an account in that group reads the
/// device's state (status, ps, logs, update status) without root; one
/// outside it is told who may; neither may change anything.
#[test]
fn a_read_group_reads_the_state_and_others_are_told_who_may() {
    use std::os::unix::fs::MetadataExt;
    let Some(users) = nix::unistd::Group::from_name("users").ok().flatten() else {
        eprintln!("SKIP a_read_group_reads_the_state: no group named users");
        return;
    };
    let nobody = 65534;
    let users = users.gid.as_raw();
    let probe = Command::new(HUSK)
        .arg("--version")
        .uid(nobody)
        .gid(users)
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP a_read_group_reads_the_state: uid {nobody} cannot run {HUSK}");
        return;
    }
    let Some(world) = World::with_daemon_args(
        "readgroup",
        &[
            r#"{"name": "rg", "args": ["sh", "-c", "echo hello; exec sleep 1000"], "stopTimeout": "1s"}"#,
        ],
        &["--read-group", "users"],
    ) else {
        return;
    };
    world.wait_running(1);
    let data = world.dir.join("data");
    let status = fs::metadata(data.join("status.json")).unwrap();
    assert_eq!((status.mode() & 0o777, status.gid()), (0o640, users));
    let as_user = |gid: u32, args: &[&str]| {
        Command::new(HUSK)
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .uid(nobody)
            .gid(gid)
            .output()
            .unwrap()
    };
    // In the group: the read-only views work, with the daemon's state root.
    let out = as_user(users, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("rg "), "{}", text(&out));
    let out = as_user(users, &["ps", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("\"name\":\"rg\""), "{}", text(&out));
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let out = as_user(users, &["logs", "rg"]);
        if out.status.success() && text(&out) == "hello\n" {
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&out));
        sleep(Duration::from_millis(50));
    }
    // Outside it: one line saying who may.
    let out = as_user(nobody, &["ps"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("--read-group"), "{said}");
    assert_eq!(said.trim_end().lines().count(), 1, "{said}");
    // Reading is not changing: stop is still root's (and --group's).
    let out = Command::new(HUSK)
        .arg("--root")
        .arg(world.dir.join("state"))
        .args(["stop", "rg"])
        .uid(nobody)
        .gid(users)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("needs root"), "{said}");
}

/// `husk status` asks whether a daemon runs by taking its lock for a
/// moment; a daemon starting in that moment waits for it instead of giving
/// up as if another daemon ran (a power-cut run met exactly that).
#[test]
fn a_daemon_starting_while_its_lock_is_probed_still_starts() {
    if !common::root_with_busybox("lockprobe") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("husk-field-{}-lockprobe", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("data")).unwrap();
    fs::write(dir.join("data/desired.json"), r#"{"containers": []}"#).unwrap();
    // A prober holding the lock for 300 ms.
    let lock = fs::File::create(dir.join("data/daemon.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let mut daemon = Command::new(HUSK)
        .arg("--root")
        .arg(dir.join("state"))
        .args(["daemon", "--data-dir"])
        .arg(dir.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(300));
    drop(held);
    let deadline = Instant::now() + TIMEOUT;
    while !dir.join("data/status.json").exists() {
        if let Some(status) = daemon.try_wait().unwrap() {
            let mut said = String::new();
            std::io::Read::read_to_string(daemon.stderr.as_mut().unwrap(), &mut said).unwrap();
            panic!("the daemon gave up ({status}): {said}");
        }
        assert!(Instant::now() < deadline, "the daemon never published");
        sleep(Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(daemon.wait().unwrap().success());
    let _ = fs::remove_dir_all(&dir);
}
