//! Privileged host tests of `husk daemon`: the built binary supervises
//! containers of a temporary busybox bundle, as root, with its own state and
//! data directories per test; the tests read what it publishes
//! (`status.json`, the log files) and what is left in the state directory.
//!
//! A test that cannot run here (not root, no busybox) prints
//! `SKIP <test>: <why>` on stderr and passes.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

#[allow(dead_code, reason = "each test binary uses part of it")]
mod common;

use husk::daemon::logs::parse_rfc3339;
use husk::daemon::status::{ContainerStatus, DaemonStatus};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const HUSK: &str = env!("CARGO_BIN_EXE_husk");
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sleep", "rm", "touch", "head", "yes", "true",
];
/// Longest a test waits for the daemon to get somewhere.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A daemon's world: a bundle, a state directory and a data directory, all
/// under one temporary directory named after the test; removed on drop.
struct World {
    test: &'static str,
    dir: PathBuf,
    daemon: Option<Child>,
    runs: u32,
}

impl World {
    /// The world for `test`, or `None` after printing why the test is skipped.
    fn new(test: &'static str) -> Option<Self> {
        if !common::root_with_busybox(test) {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("husk-daemon-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        common::busybox_rootfs(&dir.join("bundle/rootfs"), APPLETS);
        let config = r#"{"ociVersion": "1.0.2",
            "process": {"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}]}}"#;
        fs::write(dir.join("bundle/config.json"), config).unwrap();
        fs::create_dir_all(dir.join("data")).unwrap();
        Some(Self {
            test,
            dir,
            daemon: None,
            runs: 0,
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn root(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn bundle(&self) -> String {
        self.dir.join("bundle").to_str().unwrap().to_owned()
    }

    /// Writes `desired.json` with these entries (JSON objects, without the
    /// bundle, which is added).
    fn desire(&self, entries: &[&str]) {
        let entries: Vec<String> = entries
            .iter()
            .map(|e| format!(r#"{{"bundle": "{}", {}"#, self.bundle(), &e[1..]))
            .collect();
        let json = format!(r#"{{"containers": [{}]}}"#, entries.join(", "));
        fs::write(self.data().join("desired.json"), json).unwrap();
    }

    /// Starts `husk daemon` with `args`, its stderr in `daemon.<n>.log`.
    fn start(&mut self, args: &[&str]) {
        self.runs += 1;
        let log = fs::File::create(self.dir.join(format!("daemon.{}.log", self.runs))).unwrap();
        let child = Command::new(HUSK)
            .arg("--root")
            .arg(self.root())
            .arg("daemon")
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    /// What the daemon of run `n` said.
    fn said(&self, n: u32) -> String {
        fs::read_to_string(self.dir.join(format!("daemon.{n}.log"))).unwrap_or_default()
    }

    fn status(&self) -> Option<DaemonStatus> {
        DaemonStatus::read(&self.data().join("status.json")).ok()
    }

    /// Waits until the container `name` satisfies `done`, and returns it.
    fn wait_for(&mut self, name: &str, done: impl Fn(&ContainerStatus) -> bool) -> ContainerStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let exited = self.daemon.as_mut().and_then(|d| d.try_wait().unwrap());
            assert!(
                exited.is_none(),
                "the daemon exited ({exited:?}):\n{}",
                self.said(self.runs)
            );
            let container = self
                .status()
                .and_then(|s| s.containers.into_iter().find(|c| c.name == name));
            if let Some(container) = container.filter(&done) {
                return container;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never got there; last status {:?}; daemon said:\n{}",
                self.status(),
                self.said(self.runs)
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the daemon and waits for its exit status.
    fn stop(&mut self, signal: Signal) -> Option<i32> {
        let mut child = self.daemon.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit on {signal}"
            );
            sleep(Duration::from_millis(10));
        }
    }

    /// The containers in the state directory.
    fn containers(&self) -> Vec<String> {
        let out = Command::new(HUSK)
            .arg("--root")
            .arg(self.root())
            .args(["list", "-q"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `husk logs ARGS`' standard output.
    fn logs(&self, args: &[&str]) -> String {
        let out = Command::new(HUSK)
            .arg("logs")
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // A test that failed half-way may leave a daemon and containers behind.
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for id in self.containers() {
            let _ = Command::new(HUSK)
                .arg("--root")
                .arg(self.root())
                .args(["delete", "--force", &id])
                .status();
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("{}: left {} for a look", self.test, self.dir.display());
        }
    }
}

fn alive(pid: i32) -> bool {
    // A zombie is not alive: its state letter is Z.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn a_crashing_container_backs_off_and_is_given_up() {
    let Some(mut world) = World::new("crash") else {
        return;
    };
    // Each run logs the host's uptime (in centiseconds), then fails.
    world.desire(&[r#"{"name": "crash",
        "args": ["sh", "-c", "cat /proc/uptime; exit 3"],
        "restart": "on-failure:3",
        "backoff": {"initial": "300ms", "max": "5s"}}"#]);
    world.start(&[]);
    let crash = world.wait_for("crash", |c| c.state == "given-up");
    assert_eq!(crash.restarts, 3);
    assert_eq!(crash.exit_code, Some(3));
    assert_eq!(crash.pid, None);
    let starts: Vec<f64> = world
        .logs(&["crash"])
        .lines()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(starts.len(), 4, "{starts:?}");
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // 300 ms, 600 ms, 1200 ms, plus the time a start takes.
    for (gap, delay) in gaps.iter().zip([0.3, 0.6, 1.2]) {
        assert!(*gap >= delay - 0.011, "{gaps:?}");
        assert!(*gap < delay + 1.0, "{gaps:?}");
    }
    assert!(gaps[1] > gaps[0] && gaps[2] > gaps[1], "{gaps:?}");
    // Nothing is left of it; the daemon stays up for the others.
    assert_eq!(world.containers(), Vec::<String>::new());
    assert_eq!(world.stop(Signal::SIGTERM), Some(0));
}

#[test]
fn always_restarts_after_exit_0_and_no_does_not() {
    let Some(mut world) = World::new("always") else {
        return;
    };
    world.desire(&[
        r#"{"name": "always", "args": ["sh", "-c", "echo run; exit 0"],
            "restart": "always", "backoff": {"initial": "100ms"}}"#,
        r#"{"name": "once", "args": ["sh", "-c", "echo run; exit 1"], "restart": "no"}"#,
    ]);
    world.start(&[]);
    let always = world.wait_for("always", |c| c.restarts >= 2);
    assert_eq!(always.exit_code, Some(0));
    let once = world.wait_for("once", |c| c.state == "exited");
    assert_eq!((once.restarts, once.exit_code), (0, Some(1)));
    assert_eq!(world.stop(Signal::SIGTERM), Some(0));
    assert!(world.logs(&["always"]).lines().count() >= 3);
    assert_eq!(world.logs(&["once"]), "run\n");
}

#[test]
fn logs_are_captured_and_rotated() {
    let Some(mut world) = World::new("logs") else {
        return;
    };
    // 600 numbered lines of 8 bytes on stdout, then one on stderr.
    let script = "i=100000; while [ $i -lt 100600 ]; do echo $i' '; i=$((i+1)); done; \
                  echo stderr-too >&2; exec sleep 1000";
    world.desire(&[&format!(
        r#"{{"name": "chatty", "args": ["sh", "-c", "{script}"], "stopTimeout": "1s"}}"#
    )]);
    world.start(&["--log-max-bytes", "1024", "--log-files", "2"]);
    world.wait_for("chatty", |c| c.pid.is_some());
    let dir = world.data().join("logs/chatty");
    let deadline = Instant::now() + TIMEOUT;
    while !world.logs(&["chatty"]).ends_with("stderr-too\n") {
        assert!(Instant::now() < deadline, "no stderr line in the log");
        sleep(Duration::from_millis(20));
    }
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["current", "current.1", "current.2"]);
    for name in &names {
        let len = fs::metadata(dir.join(name)).unwrap().len();
        assert!(len <= 1024, "{name}: {len} bytes");
    }
    // What is kept is the end of what was written, in order, and no more
    // than three files' worth.
    let all: String = (100_000..100_600)
        .map(|i| format!("{i} \n"))
        .collect::<String>()
        + "stderr-too\n";
    // The files hold each line with its stamp (as -t prints them).
    let stamped = world.logs(&["-t", "chatty"]);
    assert!(
        stamped.len() > 2048 && stamped.len() <= 3 * 1024,
        "{}",
        stamped.len()
    );
    for line in stamped.lines() {
        let stamp = line.get(..20).unwrap_or_default();
        assert!(parse_rfc3339(stamp).is_some(), "{line:?}");
    }
    let kept = world.logs(&["chatty"]);
    assert_eq!(kept.lines().count(), stamped.lines().count());
    assert!(all.ends_with(&kept));
    assert_eq!(
        world.logs(&["--tail", "2", "chatty"]),
        "100599 \nstderr-too\n"
    );
    assert_eq!(world.stop(Signal::SIGTERM), Some(0));
}

#[test]
fn logs_follow_across_rotation() {
    let Some(mut world) = World::new("follow") else {
        return;
    };
    // 400 lines of 8 bytes (29 stamped), 10 ms apart: a rotation every 128
    // lines.
    let script = "i=100000; while [ $i -lt 100400 ]; do echo $i' '; i=$((i+1)); sleep 0.01; done; \
                  echo done; exec sleep 1000";
    world.desire(&[&format!(
        r#"{{"name": "slow", "args": ["sh", "-c", "{script}"], "stopTimeout": "200ms"}}"#
    )]);
    world.start(&["--log-max-bytes", "3712", "--log-files", "1"]);
    world.wait_for("slow", |c| c.pid.is_some());
    let out_path = world.dir.join("follow.out");
    let mut follow = Command::new(HUSK)
        .args(["logs", "-f", "--data-dir"])
        .arg(world.data())
        .arg("slow")
        .stdout(fs::File::create(&out_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while !fs::read_to_string(&out_path).unwrap().ends_with("done\n") {
        assert!(
            Instant::now() < deadline,
            "husk logs -f did not follow to the end"
        );
        assert!(follow.try_wait().unwrap().is_none(), "husk logs -f exited");
        sleep(Duration::from_millis(50));
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
    let out = fs::read_to_string(&out_path).unwrap();
    let numbers: Vec<u32> = out
        .lines()
        .filter(|l| *l != "done")
        .map(|l| l.trim_end().parse().unwrap())
        .collect();
    // Everything from where it began, in order, across at least two rotations.
    assert_eq!(numbers.last(), Some(&100_399));
    assert!(numbers[0] <= 100_400 - 2 * 128, "began at {}", numbers[0]);
    for pair in numbers.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "a gap or a repeat");
    }
    assert_eq!(world.stop(Signal::SIGTERM), Some(0));
}

#[test]
fn sigterm_stops_every_container_and_leaves_none() {
    let Some(mut world) = World::new("sigterm") else {
        return;
    };
    world.desire(&[
        // sleep as PID 1 ignores SIGTERM: killed after stopTimeout.
        r#"{"name": "stubborn", "args": ["sleep", "1000"], "stopTimeout": "500ms"}"#,
        r#"{"name": "polite", "args": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}"#,
    ]);
    world.start(&[]);
    let stubborn = world.wait_for("stubborn", |c| c.pid.is_some()).pid.unwrap();
    let polite = world.wait_for("polite", |c| c.pid.is_some()).pid.unwrap();
    assert_eq!(world.containers(), ["polite", "stubborn"]);
    let stopping = Instant::now();
    assert_eq!(world.stop(Signal::SIGTERM), Some(0));
    assert!(stopping.elapsed() < Duration::from_secs(5));
    assert!(!alive(stubborn) && !alive(polite));
    assert_eq!(world.containers(), Vec::<String>::new());
    let status = world.status().unwrap();
    let states: Vec<&str> = status.containers.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(states, ["stopped", "stopped"]);
    assert_eq!(status.containers[0].exit_signal, Some(9));
    assert!(world.said(1).contains("stubborn: sending SIGKILL"));
}

#[test]
fn a_daemon_killed_and_started_again_cleans_up_and_restores() {
    let Some(mut world) = World::new("sigkill") else {
        return;
    };
    world.desire(&[
        r#"{"name": "svc", "args": ["sleep", "1000"], "stopTimeout": "200ms"}"#,
        r#"{"name": "flaky", "args": ["sh", "-c", "exit 7"], "backoff": {"initial": "100ms"}}"#,
    ]);
    world.start(&[]);
    let old = world.wait_for("svc", |c| c.pid.is_some()).pid.unwrap();
    let restarts = world.wait_for("flaky", |c| c.restarts >= 2).restarts;
    assert_eq!(world.stop(Signal::SIGKILL), None);
    // The container outlives its supervisor.
    assert!(alive(old));
    assert!(world.containers().contains(&"svc".to_owned()));
    world.start(&[]);
    let new = world
        .wait_for("svc", |c| c.pid.is_some_and(|p| p != old))
        .pid
        .unwrap();
    assert!(!alive(old), "the old container still runs");
    assert!(alive(new));
    assert!(world
        .said(2)
        .contains("svc: removed what a previous run left"));
    // What the first daemon counted is not lost with it.
    let flaky = world.wait_for("flaky", |c| c.restarts > restarts);
    assert_eq!(flaky.exit_code, Some(7));
    assert_eq!(world.stop(Signal::SIGTERM), Some(0));
    assert_eq!(world.containers(), Vec::<String>::new());
}

#[test]
fn bad_desired_state_refuses_start_and_keeps_the_old_on_sighup() {
    let Some(mut world) = World::new("baddesired") else {
        return;
    };
    world.desire(&[r#"{"name": "a", "args": ["sleep", "1000"], "restart": "sometimes"}"#]);
    let out = Command::new(HUSK)
        .arg("--root")
        .arg(world.root())
        .args(["daemon", "--data-dir"])
        .arg(world.data())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "husk: not starting: desired state: containers[0].restart must be \"no\", \
         \"on-failure\", \"on-failure:MAX\" or \"always\"\n"
    );
    world.desire(&[r#"{"name": "a", "args": ["sleep", "1000"], "stopTimeout": "200ms"}"#]);
    world.start(&[]);
    let pid = world.wait_for("a", |c| c.pid.is_some()).pid.unwrap();
    // A second daemon on the same data directory would fight the first.
    let out = Command::new(HUSK)
        .arg("--root")
        .arg(world.root())
        .args(["daemon", "--data-dir"])
        .arg(world.data())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "husk: another husk daemon runs with this data directory (it holds {})\n",
            world.data().join("daemon.lock").display()
        )
    );
    // A broken file: reported, and nothing changes.
    fs::write(world.data().join("desired.json"), "{\"containers\": [").unwrap();
    let daemon = Pid::from_raw(world.daemon.as_ref().unwrap().id() as i32);
    kill(daemon, Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while world.status().unwrap().desired_error.is_none() {
        assert!(
            Instant::now() < deadline,
            "no desired-state error published"
        );
        sleep(Duration::from_millis(20));
    }
    let status = world.status().unwrap();
    assert!(status
        .desired_error
        .unwrap()
        .starts_with("desired state: invalid JSON"));
    assert_eq!(status.containers[0].pid, Some(pid));
    // A good one: a is removed, b is started.
    world.desire(&[r#"{"name": "b", "args": ["sleep", "1000"], "stopTimeout": "200ms"}"#]);
    kill(daemon, Signal::SIGHUP).unwrap();
    world.wait_for("b", |c| c.pid.is_some());
    let deadline = Instant::now() + TIMEOUT;
    while world.containers() != ["b"] || world.status().unwrap().containers.len() != 1 {
        assert!(Instant::now() < deadline, "a was not removed");
        sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid));
    assert_eq!(world.stop(Signal::SIGTERM), Some(0));
}

#[test]
fn an_exec_health_check_flips_to_unhealthy() {
    let Some(mut world) = World::new("health") else {
        return;
    };
    world.desire(&[
        r#"{"name": "h",
        "args": ["sh", "-c", "touch /ok; exec sleep 1000"], "stopTimeout": "200ms",
        "health": {"exec": ["cat", "/ok"], "interval": "200ms", "timeout": "2s", "retries": 2}}"#,
        r#"{"name": "nocheck", "args": ["sleep", "1000"], "stopTimeout": "200ms",
        "health": {"exec": ["no-such-program"], "interval": "100ms", "retries": 1}}"#,
    ]);
    world.start(&[]);
    world.wait_for("h", |c| c.health.as_deref() == Some("healthy"));
    let out = Command::new(HUSK)
        .arg("--root")
        .arg(world.root())
        .args(["exec", "h", "rm", "/ok"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = world.wait_for("h", |c| c.health.as_deref() == Some("unhealthy"));
    assert_eq!(h.restarts, 0, "unhealthy is reported, not restarted");
    // The daemon says each change, once.
    let said = world.said(1);
    assert_eq!(said.matches("h: healthy\n").count(), 1, "{said}");
    assert_eq!(said.matches("h: unhealthy\n").count(), 1, "{said}");
    // A probe that cannot even start fails, and is said once.
    let nocheck = world.wait_for("nocheck", |c| c.health.as_deref() == Some("unhealthy"));
    assert_eq!(nocheck.restarts, 0);
    sleep(Duration::from_millis(500));
    let said = world.said(1);
    assert_eq!(
        said.matches("nocheck: health probe not started").count(),
        1,
        "{said}"
    );
    // The table shows it.
    let out = Command::new(HUSK)
        .args(["daemon", "status", "--data-dir"])
        .arg(world.data())
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("h        running      unhealthy"),
        "{table}"
    );
    assert_eq!(world.stop(Signal::SIGTERM), Some(0));
}

#[test]
fn a_full_data_partition_drops_output_but_never_blocks_a_container() {
    let Some(mut world) = World::new("fulldisk") else {
        return;
    };
    if !Path::new("/usr/bin/unshare").exists() {
        writeln!(std::io::stderr(), "SKIP fulldisk: needs /usr/bin/unshare").unwrap();
        return;
    }
    // The container writes 256 KiB, then leaves a mark in its rootfs: a
    // daemon that stopped reading its pipe would block it before the mark.
    world.desire(&[r#"{"name": "flood", "stopTimeout": "200ms",
        "args": ["sh", "-c", "yes 0123456789abcdef | head -c 262144; touch /done; exec sleep 1000"]}"#]);
    let seed = world.data().join("desired.json");
    let data = world.dir.join("small");
    fs::create_dir_all(&data).unwrap();
    // The data directory is a 64 KiB tmpfs in the daemon's own mount
    // namespace; the host sees it through /proc/<daemon>/root.
    let log = fs::File::create(world.dir.join("daemon.1.log")).unwrap();
    world.runs = 1;
    let child = Command::new("/usr/bin/unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs -o size=64k tmpfs \"$1\" && cp \"$2\" \"$1/desired.json\" && \
             exec \"$3\" --root \"$4\" daemon --data-dir \"$1\" --log-max-bytes 16384 --log-files 3",
        )
        .arg("sh")
        .arg(&data)
        .arg(&seed)
        .arg(HUSK)
        .arg(world.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let daemon = child.id();
    world.daemon = Some(child);
    let done = world.dir.join("bundle/rootfs/done");
    let deadline = Instant::now() + TIMEOUT;
    while !done.exists() {
        assert!(
            Instant::now() < deadline,
            "the container was blocked:\n{}",
            world.said(1)
        );
        sleep(Duration::from_millis(20));
    }
    let said = world.said(1);
    let complaints = said
        .matches("flood: writing its log (output dropped")
        .count();
    assert_eq!(complaints, 1, "{said}");
    // What fitted is there, in whole files no bigger than the cap.
    let logs = PathBuf::from(format!("/proc/{daemon}/root")).join(data.strip_prefix("/").unwrap());
    let current = logs.join("logs/flood/current.1");
    let kept = fs::read_to_string(&current).unwrap();
    assert!(!kept.is_empty() && kept.len() <= 16384, "{}", kept.len());
    // Whole stamped lines, but for a first cut by a rotation and a last
    // cut by the full disk.
    let like = |line: &str| {
        let template = "2026-11-28T03:00:00Z 0123456789abcdef\n";
        let same = |(a, b): (char, char)| a == b || a.is_ascii_digit() && b.is_ascii_digit();
        let whole = line.len() == template.len() && template.chars().zip(line.chars()).all(same);
        let suffix = template.chars().rev().zip(line.chars().rev()).all(same);
        let prefix = template.chars().zip(line.chars()).all(same);
        (whole, suffix && line.len() <= template.len(), prefix)
    };
    let lines: Vec<&str> = kept.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let (whole, suffix, prefix) = like(line);
        let ok = whole || (i == 0 && suffix) || (i == lines.len() - 1 && prefix);
        assert!(ok, "line {i}: {line:?}");
    }
    assert!(said.contains("No space left on device"), "{said}");
    assert_eq!(world.stop(Signal::SIGTERM), Some(0));
    assert_eq!(world.containers(), Vec::<String>::new());
    // The status could not be written either at times: said once at most.
    let said = world.said(1);
    assert!(
        said.matches("status.json: No space left").count() <= 1,
        "{said}"
    );
}
