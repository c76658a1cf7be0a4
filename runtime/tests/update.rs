//! Privileged host tests of updates: a repository published with
//! delta-updater's publisher (busybox images), `husk update apply --from`
//! by hand while `husk daemon` supervises; the daemon commits a healthy
//! release and rolls an unhealthy one back by itself.
//!
//! A test that cannot run here (not root, no busybox) prints
//! `SKIP <test>: <why>` on stderr and passes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

#[allow(dead_code, reason = "each test binary uses part of it")]
mod common;
#[path = "../../delta-updater/tests/pki/mod.rs"]
mod pki;

use delta_updater::delta::Algorithm;
use delta_updater::repo::{ReleaseInput, Repo};
use delta_updater::Digest;
use husk::daemon::status::DaemonStatus;
use husk::update::{Layout, UpdateState};

const HUSK: &str = env!("CARGO_BIN_EXE_husk");
const TIMEOUT: Duration = Duration::from_secs(60);

struct World {
    dir: PathBuf,
    /// The container's name: its cgroup is the host's, shared by every
    /// test run and every test of this binary running at the same time.
    app: String,
    repo: Repo,
    daemon: Option<Child>,
}

impl World {
    fn new(test: &str) -> Option<Self> {
        if !common::root_with_busybox(test) {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("husk-update-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("work")).unwrap();
        let repo = Repo::new(&dir.join("publisher"));
        repo.init(now()).unwrap();
        let layout = Layout::new(&dir.join("data"));
        fs::create_dir_all(layout.dir()).unwrap();
        fs::copy(dir.join("publisher/repo/root.json"), layout.root()).unwrap();
        fs::write(
            layout.config(),
            r#"{"deviceClass": "gw", "hardware": "host", "grace": "20s"}"#,
        )
        .unwrap();
        Some(Self {
            dir,
            app: format!("app{}-{test}", std::process::id()),
            repo,
            daemon: None,
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn husk(&self, args: &[&str]) -> Output {
        Command::new(HUSK)
            .arg("--root")
            .arg(self.dir.join("state"))
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .output()
            .unwrap()
    }

    fn apply(&self) -> Output {
        let from = self.dir.join("publisher/repo");
        self.husk(&["update", "apply", "--from", from.to_str().unwrap()])
    }

    /// Publishes release `version`: one busybox image `app` (the base layer
    /// plus a layer holding `/etc/version`), run as container `app` with
    /// `health` as its exec health check.
    fn publish(&self, version: u64, applets: &[&str], health: &str) {
        let work = self.dir.join("work");
        let rootfs = work.join(format!("rootfs{version}"));
        common::busybox_rootfs(&rootfs, applets);
        let base = work.join(format!("base{version}.tar"));
        fs::write(&base, tar_dir(&rootfs)).unwrap();
        let top_dir = work.join(format!("top{version}"));
        fs::create_dir_all(top_dir.join("etc")).unwrap();
        fs::write(top_dir.join("etc/version"), format!("{version}\n")).unwrap();
        let top = work.join(format!("top{version}.tar"));
        fs::write(&top, tar_dir(&top_dir)).unwrap();
        let ids: Vec<String> = [&base, &top]
            .iter()
            .map(|p| format!("\"{}\"", Digest::of(&fs::read(p).unwrap())))
            .collect();
        let config = format!(
            r#"{{"architecture":"{}","os":"linux","config":{{"Env":["PATH=/bin"],"Cmd":["sh","-c","cat /etc/version; exec sleep 1000"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            husk::image::native_arch(),
            ids.join(",")
        );
        let digest = Digest::of(config.as_bytes());
        let hex = digest.to_string();
        let blob = self
            .dir
            .join("publisher/repo/blobs/sha256")
            .join(hex.trim_start_matches("sha256:"));
        fs::create_dir_all(blob.parent().unwrap()).unwrap();
        fs::write(&blob, &config).unwrap();
        let desired = format!(
            r#"{{"containers":[{{"name":"{}","image":"app","health":{{"exec":{health},"interval":"1s","retries":1}}}}],"images":[{{"name":"app","config":{{"digest":"{digest}","size":{}}},"layers":[{}]}}]}}"#,
            self.app,
            config.len(),
            ids.join(",")
        );
        let desired_path = work.join(format!("desired{version}.json"));
        fs::write(&desired_path, desired).unwrap();
        self.repo
            .release(
                &ReleaseInput {
                    class: "gw",
                    arch: std::env::consts::ARCH,
                    hardware: &["host".to_owned()],
                    desired_state: &desired_path,
                    layers: &[base, top],
                    images: &[],
                    expires_in: 86_400,
                    history: 3,
                    algorithms: &Algorithm::ALL,
                },
                now(),
            )
            .unwrap();
    }

    fn start_daemon(&mut self) {
        let log = fs::File::create(self.dir.join("daemon.log")).unwrap();
        self.daemon = Some(
            Command::new(HUSK)
                .arg("--root")
                .arg(self.dir.join("state"))
                .arg("daemon")
                .arg("--data-dir")
                .arg(self.data())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    fn said(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    fn state(&self) -> UpdateState {
        UpdateState::load(&Layout::new(&self.data()).state()).unwrap()
    }

    /// Waits until the update state satisfies `done`.
    fn wait_for(&self, what: &str, done: impl Fn(&UpdateState, &DaemonStatus) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let status = DaemonStatus::read(&self.data().join("status.json")).unwrap_or_default();
            if done(&self.state(), &status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never {what}: state {:?}\nstatus {status:?}\ndaemon said:\n{}",
                self.state(),
                self.said()
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// What container `app` printed: its release's version.
    fn app_version(&self) -> String {
        let out = self.husk(&["logs", "--tail", "1", &self.app]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("left {} for a look", self.dir.display());
        }
    }
}

fn now() -> u64 {
    husk::update::wall_now()
}

/// A tar of `dir`'s tree, owned by root, as a layer.
fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_healthy_release_is_committed_and_an_unhealthy_one_rolled_back() {
    let Some(mut world) = World::new("rollback") else {
        return;
    };
    let applets = ["sh", "cat", "sleep", "true", "false"];
    world.publish(1, &applets, r#"["true"]"#);
    world.start_daemon();
    let out = world.apply();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("release 1 installed"), "{}", text(&out));
    world.wait_for("committed release 1", |s, _| {
        s.current == 1 && s.probation_since.is_none()
    });
    assert_eq!(world.app_version(), "1");

    // Release 2: one more applet in the base layer and another version:
    // both layers come as deltas.
    world.publish(2, &[&applets[..], &["echo"]].concat(), r#"["true"]"#);
    let out = world.apply();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("(2 delta, 0 whole"), "{}", text(&out));
    world.wait_for("committed release 2", |s, st| {
        s.current == 2
            && s.probation_since.is_none()
            && st
                .containers
                .iter()
                .any(|c| c.health.as_deref() == Some("healthy"))
    });
    assert_eq!(world.app_version(), "2");

    // Release 3 never becomes healthy: the daemon rolls it back to 2.
    world.publish(3, &applets, r#"["false"]"#);
    let out = world.apply();
    assert!(out.status.success(), "{}", text(&out));
    world.wait_for("rolled back to release 2", |s, st| {
        s.current == 2
            && s.rejected == 3
            && st
                .containers
                .iter()
                .any(|c| c.health.as_deref() == Some("healthy"))
    });
    assert_eq!(world.app_version(), "2");
    let history = text(&world.husk(&["update", "history"]));
    assert!(history.contains("rolled back"), "{history}");
    let reason = format!("container {} is unhealthy", world.app);
    assert!(history.contains(&reason), "{history}");
    // And it is not installed again.
    let out = world.apply();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("release 3 was rolled back"));
}

#[test]
fn a_bad_release_leaves_the_device_as_it_was() {
    let Some(world) = World::new("badrelease") else {
        return;
    };
    world.publish(1, &["sh", "cat", "sleep", "true"], r#"["true"]"#);
    // The timestamp's signature is broken: nothing is installed.
    let ts = world.dir.join("publisher/repo/timestamp.json");
    let broken = fs::read_to_string(&ts)
        .unwrap()
        .replacen("\"sig\":\"", "\"sig\":\"00", 1);
    fs::write(&ts, broken).unwrap();
    let out = world.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let message = text(&out);
    assert!(message.starts_with("husk: timestamp.json:"), "{message}");
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(!world.data().join("desired.json").exists());
    assert_eq!(world.state().current, 0);
    let status = text(&world.husk(&["update", "status"]));
    assert!(status.contains("failed: timestamp.json"), "{status}");
}

/// `husk update apply` killed (SIGKILL) at 24 moments spread over an
/// install: after each, the device is on release 1 or release 2, whole
/// (the symlink names a release whose files and layers are all there, and
/// the state agrees once read), and the next apply finishes the job.
#[test]
fn an_apply_killed_at_any_moment_leaves_a_whole_release() {
    let Some(world) = World::new("killed") else {
        return;
    };
    let applets = ["sh", "cat", "sleep", "true"];
    world.publish(1, &applets, r#"["true"]"#);
    let out = world.apply();
    assert!(out.status.success(), "{}", text(&out));
    world.publish(2, &[&applets[..], &["echo"]].concat(), r#"["true"]"#);
    // The device after release 1, kept to start each try from.
    let pristine = world.dir.join("pristine");
    copy_tree(&world.data(), &pristine);
    // How long a whole install of release 2 takes here.
    let started = Instant::now();
    let out = world.apply();
    assert!(out.status.success(), "{}", text(&out));
    let whole = started.elapsed();
    let from = world.dir.join("publisher/repo");
    let (mut old, mut new) = (0, 0);
    for i in 0..24u32 {
        let _ = fs::remove_dir_all(world.data());
        copy_tree(&pristine, &world.data());
        let mut child = Command::new(HUSK)
            .arg("--data-dir")
            .arg(world.data())
            .args(["update", "apply", "--from", from.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        sleep(whole * i / 20);
        let _ = child.kill();
        let _ = child.wait();
        let layout = Layout::new(&world.data());
        let linked = husk::update::linked(&layout);
        let state = husk::update::load_state(&layout, now()).unwrap();
        match linked {
            Some(1) => old += 1,
            Some(2) => new += 1,
            other => panic!("try {i}: the symlink names {other:?}"),
        }
        assert_eq!(Some(state.current), linked, "try {i}: {state:?}");
        let desired = husk::daemon::desired::load(&layout.desired()).unwrap();
        let store = husk::image::store::Store::new(world.data());
        for image in &desired.images {
            for layer in &image.image.layers {
                assert!(store.has_layer(layer), "try {i}: layer {layer} missing");
            }
            assert!(store.blob(&image.image.config, 1 << 16).is_ok(), "try {i}");
        }
        // The next apply finishes (or finds it done).
        let out = world.apply();
        assert!(
            matches!(out.status.code(), Some(0 | 4)),
            "try {i}: {}",
            text(&out)
        );
        assert_eq!(husk::update::linked(&layout), Some(2), "try {i}");
    }
    eprintln!("killed 24 installs: {old} left on release 1, {new} on release 2, none broken");
    assert!(
        old > 0 && new > 0,
        "the kills should land on both sides: {old} / {new}"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// How the test's update server answers every request it gets.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Reads the request and never answers.
    Silent,
    /// Promises 1000 bytes, sends 5 and closes.
    Truncated,
    /// Says 5 bytes, sends 400.
    WrongLength,
    /// A body with no length that never ends.
    Endless,
    /// An HTML error page with 200 and a content type of text/html.
    WrongType,
}

/// A server on 127.0.0.1 that misbehaves as told; returns its port. It
/// lives as long as the test process.
fn misbehaving_server(how: Misbehaviour) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = match how {
                    Misbehaviour::Silent => {
                        sleep(Duration::from_secs(120));
                        Ok(())
                    }
                    Misbehaviour::Truncated => {
                        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"sig")
                    }
                    Misbehaviour::WrongLength => {
                        let mut out = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec();
                        out.extend([b'x'; 400]);
                        stream.write_all(&out)
                    }
                    Misbehaviour::Endless => {
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
                        let chunk = [b'{'; 16 << 10];
                        while stream.write_all(&chunk).is_ok() {}
                        Ok(())
                    }
                    Misbehaviour::WrongType => {
                        let page = b"<html><body>Service unavailable</body></html>";
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                            page.len()
                        );
                        stream
                            .write_all(head.as_bytes())
                            .and_then(|()| stream.write_all(page))
                    }
                };
            });
        }
    });
    port
}

/// The pids of live `husk update apply` processes of this world.
fn update_children(world: &World) -> Vec<i32> {
    let data = world.data();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let mentions = |s: &[u8]| args.contains(&s);
        if mentions(data.to_str().unwrap().as_bytes()) && mentions(b"apply") {
            pids.push(pid);
        }
    }
    pids
}

/// Issue 7: the daemon under a misbehaving update server keeps serving its
/// containers. For each way of misbehaving, a daemon polls it (its first
/// poll comes 5 s after it starts): the poll fails with a one-line reason
/// recorded in the update state, the device stays on release 1, and app
/// keeps its pid and its health throughout. A poll that hangs is ended
/// when the daemon stops, not left behind.
#[test]
fn the_daemon_keeps_its_containers_while_the_update_server_misbehaves() {
    let Some(mut world) = World::new("misbehaving") else {
        return;
    };
    world.publish(1, &["sh", "cat", "sleep", "true"], r#"["true"]"#);
    let out = world.apply();
    assert!(out.status.success(), "{}", text(&out));
    let layout = Layout::new(&world.data());
    for how in [
        Misbehaviour::Truncated,
        Misbehaviour::WrongLength,
        Misbehaviour::Endless,
        Misbehaviour::WrongType,
        Misbehaviour::Silent,
    ] {
        let port = misbehaving_server(how);
        fs::write(
            layout.config(),
            format!(
                r#"{{"server": "http://127.0.0.1:{port}", "deviceClass": "gw", "hardware": "host", "grace": "20s"}}"#
            ),
        )
        .unwrap();
        let before = world.state().last_check.map(|c| c.at);
        world.start_daemon();
        world.wait_for(&format!("app healthy ({how:?})"), |_, st| {
            st.containers
                .iter()
                .any(|c| c.health.as_deref() == Some("healthy"))
        });
        let status = || DaemonStatus::read(&world.data().join("status.json")).unwrap();
        let pid = status().containers[0].pid;
        assert!(pid.is_some(), "{how:?}: {:?}", status());
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let done = match how {
                Misbehaviour::Silent => !update_children(&world).is_empty(),
                _ => world.state().last_check.map(|c| c.at) != before,
            };
            if done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{how:?}: no poll; daemon said:\n{}",
                world.said()
            );
            sleep(Duration::from_millis(100));
        }
        if let Misbehaviour::Silent = how {
            // The poll hangs; the daemon answers and supervises meanwhile.
            sleep(Duration::from_secs(3));
            let out = world.husk(&["ps", "--json"]);
            assert!(out.status.success(), "{how:?}: {}", text(&out));
            assert!(!update_children(&world).is_empty(), "the poll ended early");
        } else {
            let check = world.state().last_check.unwrap();
            assert!(!check.ok, "{how:?}: {check:?}");
            assert!(!check.message.contains('\n'), "{how:?}: {check:?}");
            eprintln!("{how:?}: {}", check.message);
        }
        let st = status();
        assert_eq!(
            st.containers[0].pid, pid,
            "{how:?}: app was restarted: {st:?}"
        );
        assert_eq!(
            st.containers[0].health.as_deref(),
            Some("healthy"),
            "{how:?}"
        );
        assert_eq!(world.state().current, 1, "{how:?}");
        // Stopping the daemon ends a poll still running.
        let mut daemon = world.daemon.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert!(
            daemon.wait().unwrap().success(),
            "{how:?}: {}",
            world.said()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !update_children(&world).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{how:?}: a poll outlived the daemon"
            );
            sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(world.app_version(), "1");
}

/// Offline updates from a tarball (a USB stick): `--from repo.tar` installs
/// as `--from DIR` does; a tampered blob in it is refused like a download.
#[test]
fn an_update_from_a_tarball_is_verified_like_a_download() {
    let Some(world) = World::new("tarball") else {
        return;
    };
    world.publish(1, &["sh", "cat", "sleep", "true"], r#"["true"]"#);
    let repo = world.dir.join("publisher/repo");
    let tarball = |name: &str, dir: &Path| {
        let mut builder = tar::Builder::new(Vec::new());
        builder.follow_symlinks(false);
        builder.append_dir_all("repo", dir).unwrap();
        let path = world.dir.join(name);
        fs::write(&path, builder.into_inner().unwrap()).unwrap();
        path
    };
    // A copy whose largest blob (the first layer) has one byte flipped.
    let tampered = world.dir.join("tampered");
    copy_tree(&repo, &tampered);
    let largest = fs::read_dir(tampered.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&largest).unwrap();
    bytes[1000] ^= 0xff;
    fs::write(&largest, bytes).unwrap();
    let bad = tarball("bad.tar", &tampered);
    let out = world.husk(&["update", "apply", "--from", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(text(&out).trim_end().lines().count(), 1, "{}", text(&out));
    assert_eq!(world.state().current, 0);
    let good = tarball("good.tar", &repo);
    let out = world.husk(&["update", "apply", "--from", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("release 1 installed"), "{}", text(&out));
    assert_eq!(world.state().current, 1);
}

/// Issue 5: an `https://` server, its certificate checked against the
/// config's `caFile`: another CA's file is refused in one line with nothing
/// installed, the right one installs. Needs husk built with TLS: `./dev
/// test` runs this test again with `--features tls`.
#[test]
fn an_update_over_https_checks_the_servers_certificate() {
    if !cfg!(feature = "tls") {
        eprintln!(
            "SKIP an_update_over_https_checks_the_servers_certificate: husk built without \
             the tls feature (./dev test runs it again with --features tls)"
        );
        return;
    }
    let Some(world) = World::new("https") else {
        return;
    };
    world.publish(1, &["sh", "cat", "sleep", "true"], r#"["true"]"#);
    let ca = pki::Pki::new("husk update test CA");
    let id = ca.server(&["127.0.0.1"]);
    let file = |name: &str, text: String| {
        let path = world.dir.join(name);
        fs::write(&path, text).unwrap();
        path
    };
    let (cert, key) = (file("cert.pem", id.cert_pem), file("key.pem", id.key_pem));
    let right = file("ca.pem", ca.ca_pem());
    let wrong = file("other-ca.pem", pki::Pki::new("another CA").ca_pem());
    let tls = delta_updater::serve::tls_config(&cert, &key).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let repo = world.dir.join("publisher/repo");
    // The thread ends with the test process.
    std::thread::spawn(move || delta_updater::serve::serve(listener, &repo, Some(tls)));
    let configure = |ca: &Path| {
        let config = format!(
            r#"{{"server": "https://127.0.0.1:{port}", "caFile": "{}", "deviceClass": "gw", "hardware": "host", "grace": "20s"}}"#,
            ca.display()
        );
        fs::write(Layout::new(&world.data()).config(), config).unwrap();
    };

    configure(&wrong);
    let out = world.husk(&["update", "apply"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let message = text(&out);
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(message.contains("TLS handshake failed"), "{message}");
    assert_eq!(world.state().current, 0);

    configure(&right);
    let out = world.husk(&["update", "apply"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("release 1 installed"), "{}", text(&out));
    assert_eq!(world.state().current, 1);
}
