//! `husk-publish` as an operator runs it, and `husk-apply` (the device side)
//! on what it publishes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use delta_updater::metadata;

fn publish(args: &[&str]) -> (i32, String, String) {
    run(env!("CARGO_BIN_EXE_husk-publish"), args)
}

fn device(args: &[&str]) -> (i32, String, String) {
    run(env!("CARGO_BIN_EXE_husk-apply"), args)
}

fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("run husk-publish");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn digest_prints_the_content_address_of_each_file() {
    let dir = std::env::temp_dir().join(format!("husk-publish-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("blob");
    std::fs::write(&file, b"abc").unwrap();
    let path = file.to_str().unwrap();
    let (code, stdout, _) = publish(&["digest", path]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        format!(
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  {path}\n"
        )
    );
}

#[test]
fn a_missing_file_is_one_line_naming_it() {
    let (code, stdout, stderr) = publish(&["digest", "/nonexistent/blob"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("husk-publish: digest: /nonexistent/blob: "),
        "{stderr}"
    );
}

#[test]
fn no_command_is_a_usage_error() {
    let (code, _, stderr) = publish(&[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no command given"), "{stderr}");
}

#[test]
fn version_names_the_tool_and_arch() {
    let (code, stdout, _) = publish(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim(),
        format!("husk-publish 0.1.0 ({})", std::env::consts::ARCH)
    );
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("husk-publish-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, rel: &str) -> String {
        self.0.join(rel).to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A tar of `files` (path, content), as a layer.
fn layer(path: &str, files: &[(&str, Vec<u8>)]) {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, name, &data[..]).unwrap();
    }
    fs::write(path, builder.into_inner().unwrap()).unwrap();
}

/// Text-like content that differs by `seed`.
fn content(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| b"abcdefgh ijklmnop\n"[((i * 7 + i / 1000 * seed) % 18) as usize])
        .collect()
}

fn ok(result: (i32, String, String)) -> String {
    assert_eq!(result.0, 0, "stdout: {}\nstderr: {}", result.1, result.2);
    result.1
}

fn now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

/// A repository with two releases of gateway/aarch64: release 2 changes
/// one file of the first layer, so that layer gets a delta.
fn two_releases(dir: &Dir) -> String {
    let repo = dir.path("r");
    ok(publish(&["init", &repo]));
    let state = dir.path("state.json");
    fs::write(
        &state,
        r#"{"containers": [{"name": "app", "image": "app:1"}]}"#,
    )
    .unwrap();
    let files: Vec<(&str, Vec<u8>)> = (0..20)
        .map(|i| {
            (
                [
                    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p",
                    "q", "r", "s", "t",
                ][i],
                content(30_000, i as u32),
            )
        })
        .collect();
    layer(&dir.path("l1.tar"), &files);
    layer(
        &dir.path("base.tar"),
        &[("etc/os-release", b"ID=test\n".to_vec())],
    );
    let release = |layer: &str| {
        ok(publish(&[
            "release",
            &repo,
            "--class",
            "gateway",
            "--arch",
            "aarch64",
            "--hardware",
            "rpi4",
            "--desired-state",
            &state,
            "--layer",
            &dir.path("base.tar"),
            "--layer",
            layer,
        ]))
    };
    let out = release(&dir.path("l1.tar"));
    assert!(out.starts_with("release 1\n"), "{out}");
    let mut changed = files.clone();
    changed[3].1[100..110].copy_from_slice(b"0123456789");
    layer(&dir.path("l2.tar"), &changed);
    let out = release(&dir.path("l2.tar"));
    assert!(out.starts_with("release 2\n"), "{out}");
    repo
}

#[test]
fn init_makes_private_keys_and_a_self_signed_root() {
    let dir = Dir::new("init");
    let repo = dir.path("r");
    ok(publish(&["init", &repo]));
    for role in ["root", "timestamp", "release"] {
        let mode = fs::metadata(format!("{repo}/keys/{role}.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{role}");
    }
    assert_eq!(
        fs::read(format!("{repo}/repo/root.json")).unwrap(),
        fs::read(format!("{repo}/repo/root/1.json")).unwrap()
    );
    // A second init refuses and leaves the keys alone.
    let key = fs::read(format!("{repo}/keys/root.key")).unwrap();
    let (code, _, stderr) = publish(&["init", &repo]);
    assert_eq!(code, 1);
    assert!(
        stderr.ends_with("a repository is already there\n"),
        "{stderr}"
    );
    assert_eq!(fs::read(format!("{repo}/keys/root.key")).unwrap(), key);
}

#[test]
fn a_second_release_gets_a_delta_that_the_device_applies_bit_for_bit() {
    let dir = Dir::new("release");
    let repo = two_releases(&dir);
    let out = ok(publish(&["verify", &repo]));
    assert_eq!(
        out,
        "ok: root version 1, 2 release(s), 5 blob reference(s)\n"
    );
    // The device side walks root, timestamp and release 2.
    let root = format!("{repo}/repo/root.json");
    let served = format!("{repo}/repo");
    let out = ok(device(&[
        "verify",
        &root,
        &served,
        "gateway",
        "aarch64",
        "rpi4",
        &now(),
    ]));
    assert!(out.starts_with("release 2 (2 layers)\n"), "{out}");
    assert!(out.contains(", 1 delta(s)"), "{out}");
    // Another device class or hardware is refused.
    let (code, _, stderr) = device(&[
        "verify",
        &root,
        &served,
        "gateway",
        "aarch64",
        "cm4",
        &now(),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("hardware does not match this device's cm4"),
        "{stderr}"
    );

    // Apply the delta: the release's metadata names it.
    let bytes = fs::read(format!("{served}/releases/gateway/aarch64/2.json")).unwrap();
    let envelope = metadata::open(metadata::Role::Release, &bytes).unwrap();
    let release = metadata::Release::parse(envelope.signed_bytes()).unwrap();
    let delta_digest = release.layers[1].deltas[0].blob.digest.to_string();
    let l2 = fs::read(dir.path("l2.tar")).unwrap();
    let diff_id = delta_updater::Digest::of(&l2).to_string();
    let delta = format!(
        "{served}/blobs/sha256/{}",
        delta_digest.trim_start_matches("sha256:")
    );
    let out = dir.path("applied.tar");
    ok(device(&[
        "apply",
        &dir.path("l1.tar"),
        &delta,
        &delta_digest,
        &diff_id,
        &l2.len().to_string(),
        &out,
    ]));
    assert_eq!(fs::read(&out).unwrap(), l2);
    assert!(
        fs::metadata(&delta).unwrap().len() < 2000,
        "the delta is small"
    );
    // A tampered delta is refused before it is read as a delta.
    let mut bad = fs::read(&delta).unwrap();
    bad[20] ^= 1;
    let tampered = dir.path("tampered");
    fs::write(&tampered, &bad).unwrap();
    let out2 = dir.path("applied2.tar");
    let (code, _, stderr) = device(&[
        "apply",
        &dir.path("l1.tar"),
        &tampered,
        &delta_digest,
        &diff_id,
        &l2.len().to_string(),
        &out2,
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("not {delta_digest}")), "{stderr}");
    assert!(!Path::new(&out2).exists());
}

#[test]
fn verify_names_a_tampered_or_missing_blob() {
    let dir = Dir::new("tamper");
    let repo = two_releases(&dir);
    let blobs = format!("{repo}/repo/blobs/sha256");
    let mut names: Vec<_> = fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let victim = &names[0];
    let mut bytes = fs::read(victim).unwrap();
    bytes[0] ^= 1;
    fs::write(victim, &bytes).unwrap();
    fs::remove_file(&names[1]).unwrap();
    let (code, _, stderr) = publish(&["verify", &repo]);
    assert_eq!(code, 1);
    let hex = |p: &PathBuf| p.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        stderr.contains(&format!(
            "blob sha256:{}: does not hash to its name",
            hex(victim)
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("blob sha256:{}: is missing", hex(&names[1]))),
        "{stderr}"
    );
}

#[test]
fn timestamp_and_key_rotation_keep_the_repository_valid() {
    let dir = Dir::new("rotate");
    let repo = two_releases(&dir);
    let out = ok(publish(&["timestamp", &repo]));
    assert_eq!(out, "timestamp 3\n");
    for role in ["timestamp", "release", "root"] {
        ok(publish(&["keys", &repo, "--rotate", role]));
    }
    // The old release key no longer counts: release 2 came out again as
    // release 3, same content, signed by the new key; the timestamp too.
    let out = ok(publish(&["verify", &repo]));
    assert_eq!(
        out,
        "ok: root version 4, 3 release(s), 8 blob reference(s)\n"
    );
    let served = format!("{repo}/repo/releases/gateway/aarch64");
    let desired = |v: u32| {
        let bytes = fs::read(format!("{served}/{v}.json")).unwrap();
        let envelope = metadata::open(metadata::Role::Release, &bytes).unwrap();
        metadata::Release::parse(envelope.signed_bytes()).unwrap()
    };
    assert_eq!(desired(2).layers, desired(3).layers);
    assert_eq!(desired(2).desired_state, desired(3).desired_state);
    let state = dir.path("state.json");
    ok(publish(&[
        "release",
        &repo,
        "--class",
        "gateway",
        "--arch",
        "aarch64",
        "--hardware",
        "rpi4",
        "--desired-state",
        &state,
        "--layer",
        &dir.path("l2.tar"),
    ]));
    // The device still trusts root 1 and walks to root 4.
    let root1 = format!("{repo}/repo/root/1.json");
    let out = ok(device(&[
        "verify",
        &root1,
        &format!("{repo}/repo"),
        "gateway",
        "aarch64",
        "rpi4",
        &now(),
    ]));
    assert!(out.starts_with("release 4 (1 layers)"), "{out}");
}

#[test]
fn a_bad_desired_state_or_name_writes_nothing() {
    let dir = Dir::new("bad");
    let repo = dir.path("r");
    ok(publish(&["init", &repo]));
    layer(&dir.path("l.tar"), &[("a", b"x".to_vec())]);
    let cases = [
        (r#"{"replicas": 1.5}"#, "gateway", "1.5 is not an integer"),
        ("[1]", "gateway", "not a JSON object"),
        ("{", "gateway", "not JSON"),
        ("{}", "../x", "is not a name"),
    ];
    for (state_text, class, message) in cases {
        let state = dir.path("state.json");
        fs::write(&state, state_text).unwrap();
        let (code, _, stderr) = publish(&[
            "release",
            &repo,
            "--class",
            class,
            "--arch",
            "x86_64",
            "--hardware",
            "pc",
            "--desired-state",
            &state,
            "--layer",
            &dir.path("l.tar"),
        ]);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
        assert!(!Path::new(&format!("{repo}/repo/releases")).exists());
        assert!(!Path::new(&format!("{repo}/repo/blobs")).exists());
    }
}
