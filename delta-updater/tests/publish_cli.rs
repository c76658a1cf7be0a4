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
fn release_tries_only_the_delta_algorithms_asked_for() {
    let dir = Dir::new("algorithms");
    let repo = dir.path("r");
    ok(publish(&["init", &repo]));
    let state = dir.path("state.json");
    fs::write(&state, r#"{"containers": []}"#).unwrap();
    // Incompressible data, so that every algorithm's delta pays.
    let mut x: u64 = 1;
    let random: Vec<u8> = (0..300_000)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 56) as u8
        })
        .collect();
    let files = vec![
        ("a", random[..200_000].to_vec()),
        ("b", random[200_000..].to_vec()),
    ];
    layer(&dir.path("l1.tar"), &files);
    let release = |layer: &str, delta: &[&str]| {
        let mut args = release_args(&repo, "aarch64", &state);
        args.extend(["--layer", layer]);
        for d in delta {
            args.extend(["--delta", d]);
        }
        publish(&args)
    };
    ok(release(&dir.path("l1.tar"), &[]));
    let (code, _, stderr) = release(&dir.path("l1.tar"), &["bsdiff", "zstd"]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "husk-publish: release: unknown delta algorithm \"zstd\" \
         (tar-files, bsdiff, zstd-patch, zstd-ref)\n"
    );
    let releases = format!("{repo}/repo/releases/gateway/aarch64");
    assert!(!Path::new(&format!("{releases}/2.json")).exists());
    // Each release a new layer (one change more), its deltas only of the
    // algorithm asked for.
    let mut changed = files.clone();
    for (i, algorithm) in ["zstd-patch", "bsdiff", "tar-files", "zstd-ref"]
        .iter()
        .enumerate()
    {
        changed[0].1[1000 * i..1000 * i + 20].copy_from_slice(b"0123456789abcdefghij");
        let path = dir.path(&format!("l{}.tar", i + 2));
        layer(&path, &changed);
        let out = ok(release(&path, &[algorithm]));
        let deltas: Vec<&str> = out.lines().filter(|l| l.contains("delta from")).collect();
        assert!(!deltas.is_empty(), "{algorithm}: {out}");
        for line in deltas {
            assert!(
                line.contains(&format!(": {algorithm} ")),
                "{algorithm}: {out}"
            );
        }
    }
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

/// The blob files of a repository.
fn blob_count(repo: &str) -> usize {
    fs::read_dir(format!("{repo}/repo/blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
fn a_layer_published_before_keeps_its_blob_and_deltas() {
    let dir = Dir::new("reuse");
    let repo = two_releases(&dir);
    let state = dir.path("state.json");
    let release = |layer: &str| {
        let base = dir.path("base.tar");
        let mut args = release_args(&repo, "aarch64", &state);
        args.extend(["--layer", &base, "--layer", layer]);
        ok(publish(&args))
    };
    let load = |v: u32| desired_state(&repo, v).0;
    let (r1, r2) = (load(1), load(2));
    let before = blob_count(&repo);

    // Release 3 goes back to l1: the unchanged base and l1 keep release 1's
    // blobs; the one new blob is l1's delta from l2.
    let out = release(&dir.path("l1.tar"));
    assert!(out.starts_with("release 3\n"), "{out}");
    let r3 = load(3);
    assert_eq!(r3.layers[0].blob, r1.layers[0].blob);
    assert_eq!(r3.layers[1].blob, r1.layers[1].blob);
    assert_eq!(r3.layers[1].deltas.len(), 1);
    assert_eq!(r3.layers[1].deltas[0].from, r2.layers[1].diff_id);
    assert_eq!(blob_count(&repo), before + 1);

    // Release 4 is l2 again: its blob and its delta from l1 are release 2's,
    // and nothing is compressed or diffed: no new blob at all.
    let out = release(&dir.path("l2.tar"));
    assert!(out.starts_with("release 4\n"), "{out}");
    let r4 = load(4);
    assert_eq!(r4.layers[1].blob, r2.layers[1].blob);
    assert_eq!(r4.layers[1].deltas, r2.layers[1].deltas);
    assert_eq!(blob_count(&repo), before + 1);
    let out = ok(publish(&["verify", &repo]));
    assert!(out.starts_with("ok: root version 1, 4 release(s)"), "{out}");

    // A reused delta whose blob is gone is not referenced: it is made again.
    let gone = r2.layers[1].deltas[0].blob.digest.to_string();
    let gone_path = format!("{repo}/repo/blobs/sha256/{}", &gone[7..]);
    fs::remove_file(&gone_path).unwrap();
    let out = release(&dir.path("l2.tar"));
    assert!(out.starts_with("release 5\n"), "{out}");
    assert_eq!(load(5).layers[1].deltas, r2.layers[1].deltas);
    assert!(Path::new(&gone_path).is_file());
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

// Images: OCI layouts, OCI archives and docker save tarballs made here.

/// sha256 of `bytes`, as `sha256:<hex>`.
fn sha(bytes: &[u8]) -> String {
    delta_updater::Digest::of(bytes).to_string()
}

/// Writes `bytes` as a blob of the layout `dir`: its descriptor's digest and size.
fn put(dir: &str, bytes: &[u8]) -> (String, usize) {
    let digest = sha(bytes);
    let path = format!("{dir}/blobs/sha256/{}", &digest[7..]);
    fs::create_dir_all(format!("{dir}/blobs/sha256")).unwrap();
    fs::write(path, bytes).unwrap();
    (digest, bytes.len())
}

#[derive(Clone, Copy)]
enum Compress {
    Plain,
    Gzip,
    Zstd,
}

fn compress(data: &[u8], how: Compress) -> Vec<u8> {
    use std::io::Write;
    match how {
        Compress::Plain => data.to_vec(),
        Compress::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compress::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

/// An image config for `arch` with `diff_ids`, padded to at least `pad` bytes.
fn config(arch: &str, diff_ids: &[String], pad: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["X=".to_owned() + &"x".repeat(pad)]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// A manifest in the layout `dir` for `arch` with `layers` (uncompressed
/// tars, stored compressed as `how` says): its descriptor.
fn manifest(dir: &str, arch: &str, layers: &[&Vec<u8>], how: Compress) -> serde_json::Value {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let (config_digest, config_size) = put(dir, &config(arch, &diff_ids, 0));
    let layer_descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let (digest, size) = put(dir, &compress(l, how));
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest, "size": size})
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": layer_descriptors,
    }))
    .unwrap();
    let (digest, size) = put(dir, &manifest);
    serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest, "size": size,
        "platform": {"architecture": arch, "os": "linux"},
    })
}

/// An OCI layout at `dir` whose index.json points to a multi-arch index
/// (amd64 and arm64, the same layers) tagged `tag`.
fn multi_arch_layout(dir: &str, layers: &[&Vec<u8>], tag: &str) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    fs::write(
        format!("{dir}/oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let amd64 = manifest(dir, "amd64", layers, Compress::Gzip);
    let arm64 = manifest(dir, "arm64", layers, Compress::Zstd);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [amd64, arm64],
    }))
    .unwrap();
    let (digest, size) = put(dir, &index);
    fs::write(
        format!("{dir}/index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                           "digest": digest, "size": size,
                           "annotations": {"org.opencontainers.image.ref.name": tag}}],
        }))
        .unwrap(),
    )
    .unwrap();
}

/// A single-arch OCI layout at `dir` (its config padded by `pad` bytes).
fn layout(dir: &str, arch: &str, layers: &[&Vec<u8>], pad: usize) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    fs::write(
        format!("{dir}/oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let (config_digest, config_size) = put(dir, &config(arch, &diff_ids, pad));
    let descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let (digest, size) = put(dir, &compress(l, Compress::Plain));
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                               "digest": digest, "size": size})
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": descriptors,
    }))
    .unwrap();
    let (digest, size) = put(dir, &manifest);
    fs::write(
        format!("{dir}/index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": digest, "size": size}],
        }))
        .unwrap(),
    )
    .unwrap();
}

/// A `docker save` tarball (before Docker 25) at `path` of one image for `arch`.
fn docker_save(path: &str, arch: &str, layers: &[&Vec<u8>], tag: &str) {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let config = config(arch, &diff_ids, 0);
    let config_name = format!("{}.json", &sha(&config)[7..]);
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, name, data).unwrap();
    };
    let mut names = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let name = format!("{i:064x}/layer.tar");
        add(&name, layer);
        names.push(name);
    }
    add(&config_name, &config);
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": [tag], "Layers": names}
    ]))
    .unwrap();
    add("manifest.json", &manifest);
    fs::write(path, builder.into_inner().unwrap()).unwrap();
}

/// A layer tar of `files` in memory.
fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, name, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

fn release_args<'a>(repo: &'a str, arch: &'a str, state: &'a str) -> Vec<&'a str> {
    vec![
        "release",
        repo,
        "--class",
        "gateway",
        "--arch",
        arch,
        "--hardware",
        "rpi4",
        "--desired-state",
        state,
    ]
}

/// The desired state of release `v` of gateway/aarch64, as JSON.
fn desired_state(repo: &str, v: u32) -> (metadata::Release, serde_json::Value) {
    let bytes = fs::read(format!("{repo}/repo/releases/gateway/aarch64/{v}.json")).unwrap();
    let envelope = metadata::open(metadata::Role::Release, &bytes).unwrap();
    let release = metadata::Release::parse(envelope.signed_bytes()).unwrap();
    let state = serde_json::from_str(&release.desired_state).unwrap();
    (release, state)
}

const STATE: &str = r#"{"containers": [
    {"name": "web", "image": "web", "restart": "always"},
    {"name": "db", "image": "db"}]}"#;

struct Images {
    base: Vec<u8>,
    app1: Vec<u8>,
    app2: Vec<u8>,
    db: Vec<u8>,
}

fn images() -> Images {
    let files = |seed: u32| -> Vec<(&'static str, Vec<u8>)> {
        ["app/a", "app/b", "app/c", "app/d", "app/e", "app/f"]
            .iter()
            .enumerate()
            .map(|(i, name)| (*name, content(30_000, seed + i as u32)))
            .collect()
    };
    let app = files(1);
    let mut changed = app.clone();
    changed[2].1[500..510].copy_from_slice(b"0123456789");
    Images {
        base: tar_of(&[("etc/os-release", b"ID=test\n".to_vec())]),
        app1: tar_of(&app),
        app2: tar_of(&changed),
        db: tar_of(&files(40)),
    }
}

#[test]
fn a_release_of_images_has_their_configs_layers_and_deltas_of_the_changed_layer_only() {
    let dir = Dir::new("images");
    let repo = dir.path("r");
    ok(publish(&["init", &repo]));
    let state = dir.path("state.json");
    fs::write(&state, STATE).unwrap();
    let i = images();
    let web = dir.path("web");
    multi_arch_layout(&web, &[&i.base, &i.app1], "1.0");
    let db = dir.path("db.tar");
    docker_save(&db, "arm64", &[&i.base, &i.db], "db:7");
    let release = |web: &str| {
        let web = format!("web={web}");
        let db = format!("db={db}");
        let mut args = release_args(&repo, "aarch64", &state);
        args.extend(["--image", &web, "--image", &db]);
        ok(publish(&args))
    };
    let out = release(&format!("{web}:1.0"));
    assert!(out.starts_with("release 1\n"), "{out}");
    assert!(out.contains("  image web: config sha256:"), "{out}");
    assert!(out.contains("  image db: config sha256:"), "{out}");
    assert_eq!(out.matches("  layer sha256:").count(), 3, "{out}");

    let (r1, s1) = desired_state(&repo, 1);
    let diff = |l: &Vec<u8>| sha(l);
    // The base layer is in both images and once in the release.
    assert_eq!(
        r1.layers
            .iter()
            .map(|l| l.diff_id.to_string())
            .collect::<Vec<_>>(),
        [diff(&i.base), diff(&i.app1), diff(&i.db)]
    );
    assert_eq!(s1["containers"][0]["name"], "web");
    let images = s1["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["name"], "web");
    assert_eq!(
        images[0]["layers"],
        serde_json::json!([diff(&i.base), diff(&i.app1)])
    );
    assert_eq!(images[1]["name"], "db");
    assert_eq!(
        images[1]["layers"],
        serde_json::json!([diff(&i.base), diff(&i.db)])
    );
    // The configs are blobs, the arm64 one for web, exactly as in the image.
    for (image, arch) in [(&images[0], "arm64"), (&images[1], "arm64")] {
        let digest = image["config"]["digest"].as_str().unwrap();
        let bytes = fs::read(format!("{repo}/repo/blobs/sha256/{}", &digest[7..])).unwrap();
        assert_eq!(sha(&bytes), digest);
        assert_eq!(image["config"]["size"], bytes.len());
        let config: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(config["architecture"], arch);
    }

    // Release 2: web's app layer changed; only that layer gets a delta.
    // ... from an OCI archive (a tar of the layout) this time.
    multi_arch_layout(&web, &[&i.base, &i.app2], "1.1");
    let archive = dir.path("web.tar");
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_dir_all(".", &web).unwrap();
    fs::write(&archive, builder.into_inner().unwrap()).unwrap();
    let out = release(&archive);
    assert!(out.starts_with("release 2\n"), "{out}");
    let (r2, s2) = desired_state(&repo, 2);
    assert_eq!(r2.layers[1].diff_id.to_string(), diff(&i.app2));
    let with_deltas: Vec<String> = r2
        .layers
        .iter()
        .filter(|l| !l.deltas.is_empty())
        .map(|l| l.diff_id.to_string())
        .collect();
    assert_eq!(with_deltas, [diff(&i.app2)]);
    assert_eq!(r2.layers[1].deltas[0].from.to_string(), diff(&i.app1));
    assert!(out.contains("    delta from sha256:"), "{out}");
    assert_eq!(s2["images"][1], s1["images"][1], "db is unchanged");

    let out = ok(publish(&["verify", &repo]));
    assert!(out.starts_with("ok: root version 1, 2 release(s)"), "{out}");
    // The device walks root, timestamp and release 2.
    let out = ok(device(&[
        "verify",
        &format!("{repo}/repo/root.json"),
        &format!("{repo}/repo"),
        "gateway",
        "aarch64",
        "rpi4",
        &now(),
    ]));
    assert!(out.starts_with("release 2 (3 layers)\n"), "{out}");
    // What the device's Verifier accepts has the images in its desired state.
    let root = fs::read(format!("{repo}/repo/root.json")).unwrap();
    let mut verifier = delta_updater::Verifier::new(
        &root,
        delta_updater::verify::Device {
            class: "gateway".into(),
            arch: "aarch64".into(),
            hardware: "rpi4".into(),
        },
        delta_updater::verify::Seen::default(),
    )
    .unwrap();
    let ts = fs::read(format!("{repo}/repo/timestamp.json")).unwrap();
    let now: u64 = now().parse().unwrap();
    verifier.timestamp(&ts, now).unwrap();
    let bytes = fs::read(format!("{repo}/repo/releases/gateway/aarch64/2.json")).unwrap();
    let accepted = verifier.release(&bytes, now).unwrap();
    let state: serde_json::Value = serde_json::from_str(&accepted.desired_state).unwrap();
    assert_eq!(state, s2);

    // verify checks the config blobs too.
    let config = s2["images"][1]["config"]["digest"].as_str().unwrap();
    fs::remove_file(format!("{repo}/repo/blobs/sha256/{}", &config[7..])).unwrap();
    let (code, _, stderr) = publish(&["verify", &repo]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("blob {config}: is missing")),
        "{stderr}"
    );
}

/// Runs a release that must fail: one line naming `message`, and the
/// repository as it was (no new release file, the timestamp unchanged).
fn refused(repo: &str, args: &[&str], message: &str) {
    let ts = fs::read(format!("{repo}/repo/timestamp.json")).unwrap();
    let releases = fs::read_dir(format!("{repo}/repo/releases/gateway/aarch64"))
        .unwrap()
        .count();
    let (code, _, stderr) = publish(args);
    assert_ne!(code, 0, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(message), "{message:?} not in {stderr}");
    assert_eq!(fs::read(format!("{repo}/repo/timestamp.json")).unwrap(), ts);
    assert_eq!(
        fs::read_dir(format!("{repo}/repo/releases/gateway/aarch64"))
            .unwrap()
            .count(),
        releases
    );
    assert!(
        fs::read_dir(format!("{repo}/tmp")).map_or(0, Iterator::count) == 0,
        "the staging directory is removed"
    );
}

#[test]
fn bad_images_are_refused_naming_them_and_the_repository_is_unchanged() {
    let dir = Dir::new("bad-images");
    let repo = dir.path("r");
    ok(publish(&["init", &repo]));
    let state = dir.path("state.json");
    fs::write(&state, STATE).unwrap();
    let i = images();
    let web = dir.path("web");
    multi_arch_layout(&web, &[&i.base, &i.app1], "1.0");
    let db = dir.path("db.tar");
    docker_save(&db, "arm64", &[&i.base, &i.db], "db:7");
    let web_arg = format!("web={web}");
    let db_arg = format!("db={db}");
    let mut good = release_args(&repo, "aarch64", &state);
    good.extend(["--image", &web_arg, "--image", &db_arg]);
    ok(publish(&good));

    // Wrong architecture: the docker image is arm64 only.
    let mut args = release_args(&repo, "riscv64", &state);
    args.extend(["--image", &db_arg]);
    let state_db = dir.path("state-db.json");
    fs::write(
        &state_db,
        r#"{"containers": [{"name": "db", "image": "db"}]}"#,
    )
    .unwrap();
    args[9] = &state_db;
    let (code, _, stderr) = publish(&args);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "husk-publish: release: image db: is for linux/arm64, the release is for \
         linux/riscv64 (riscv64)\n"
    );
    // ... and a multi-arch index without the release's.
    let mut args = release_args(&repo, "riscv64", &state);
    let web_only = dir.path("state-web.json");
    fs::write(
        &web_only,
        r#"{"containers": [{"name": "web", "image": "web"}]}"#,
    )
    .unwrap();
    args[9] = &web_only;
    args.extend(["--image", &web_arg]);
    let (code, _, stderr) = publish(&args);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "image web: is for linux/amd64, linux/arm64, the release is for linux/riscv64"
        ),
        "{stderr}"
    );

    // A container naming an image no --image gives.
    let mut args = release_args(&repo, "aarch64", &state);
    args.extend(["--image", &web_arg]);
    refused(
        &repo,
        &args,
        "container db: names image \"db\", which no --image gives",
    );

    // A desired state that already has images.
    let with_images = dir.path("with-images.json");
    fs::write(&with_images, r#"{"containers": [], "images": []}"#).unwrap();
    let mut args = release_args(&repo, "aarch64", &with_images);
    args.extend(["--image", &web_arg]);
    refused(&repo, &args, "has an \"images\" member");

    // A layer blob that does not hash to its name (same size).
    let bad = dir.path("bad-blob");
    layout(&bad, "arm64", &[&i.base, &i.app2], 0);
    let victim = format!("{bad}/blobs/sha256/{}", &sha(&i.app2)[7..]);
    let mut bytes = fs::read(&victim).unwrap();
    bytes[600] ^= 1;
    fs::write(&victim, &bytes).unwrap();
    let arg = format!("web={bad}");
    let mut args = release_args(&repo, "aarch64", &web_only);
    args.extend(["--image", &arg]);
    refused(
        &repo,
        &args,
        &format!(
            "image web: {victim}: has digest {}, not {}",
            sha(&bytes),
            sha(&i.app2)
        ),
    );

    // A layer that does not decompress to its diff_id: the docker save
    // archive names layers by position, so a changed layer keeps its name.
    let swapped = dir.path("swapped.tar");
    docker_save(&swapped, "arm64", &[&i.base, &i.db], "db:7");
    let original = fs::read(&swapped).unwrap();
    let at = original
        .windows(10)
        .position(|w| w == &i.db[600..610])
        .unwrap();
    let mut changed = original.clone();
    changed[at] ^= 1;
    fs::write(&swapped, &changed).unwrap();
    let arg = format!("db={swapped}");
    let mut args = release_args(&repo, "aarch64", &state_db);
    args.extend(["--image", &arg]);
    refused(&repo, &args, "image db: layer 1 decompresses to sha256:");
    refused(&repo, &args, &format!("its diff_id is {}", sha(&i.db)));

    // A config over 64 KiB.
    let big = dir.path("big");
    layout(&big, "arm64", &[&i.base], 70_000);
    let arg = format!("web={big}");
    let mut args = release_args(&repo, "aarch64", &web_only);
    args.extend(["--image", &arg]);
    refused(&repo, &args, "image web: its config has 70");
    refused(&repo, &args, "bytes, more than 65536");

    // A bad NAME.
    let mut args = release_args(&repo, "aarch64", &web_only);
    let arg = format!("../web={web}");
    args.extend(["--image", &arg]);
    refused(&repo, &args, "is not a name");
    ok(publish(&["verify", &repo]));
}

fn key_ids(list: &str, role: &str) -> Vec<String> {
    let mut lines = list
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{role}:")));
    lines.next();
    lines
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[test]
fn keys_add_revoke_and_threshold_make_roots_a_device_follows() {
    let dir = Dir::new("keys");
    let repo = two_releases(&dir);
    let served = format!("{repo}/repo");
    let list = ok(publish(&["keys", &repo, "list"]));
    assert!(
        list.starts_with("root 1\nroot: threshold 1 of 1\n"),
        "{list}"
    );
    let old_ts = key_ids(&list, "timestamp");

    // A second timestamp key: root 2, a new timestamp signed by both.
    let list = ok(publish(&["keys", &repo, "add", "timestamp"]));
    assert!(list.starts_with("root 2\n"), "{list}");
    assert!(list.contains("timestamp: threshold 1 of 2\n"), "{list}");
    // A second root key: root 3, signed by the old root key and the new one.
    let list = ok(publish(&["keys", &repo, "add", "root"]));
    assert!(list.contains("root: threshold 1 of 2\n"), "{list}");
    let list = ok(publish(&["keys", &repo, "threshold", "root", "2"]));
    assert!(
        list.starts_with("root 4\nroot: threshold 2 of 2\n"),
        "{list}"
    );
    // Below the threshold: refused, naming it; nothing written.
    let root_ids = key_ids(&list, "root");
    let (code, _, stderr) = publish(&["keys", &repo, "revoke", "root", &root_ids[0][..12]]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "husk-publish: keys: root role: its threshold is 2, revoking a key leaves 1\n"
    );
    assert!(!Path::new(&format!("{served}/root/5.json")).exists());

    // A device at root 1 walks to root 4 and takes the new timestamp.
    let root = |n: u32| fs::read(format!("{served}/root/{n}.json")).unwrap();
    let device_id = || delta_updater::verify::Device {
        class: "gateway".into(),
        arch: "aarch64".into(),
        hardware: "rpi4".into(),
    };
    let now: u64 = now().parse().unwrap();
    let mut v = delta_updater::Verifier::new(
        &root(1),
        device_id(),
        delta_updater::verify::Seen::default(),
    )
    .unwrap();
    for n in 2..=4 {
        v.rotate_root(&root(n)).unwrap();
    }
    let ts = fs::read(format!("{served}/timestamp.json")).unwrap();
    v.timestamp(&ts, now).unwrap();

    // Revoke the first timestamp key: root 5; a timestamp signed by it alone
    // no longer counts.
    let old_key_file = fs::read_dir(format!("{repo}/keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap() == "timestamp.key")
        .unwrap();
    let old_seed = fs::read_to_string(&old_key_file).unwrap();
    let list = ok(publish(&["keys", &repo, "revoke", "timestamp", &old_ts[0]]));
    assert!(list.contains("timestamp: threshold 1 of 1\n"), "{list}");
    assert!(!key_ids(&list, "timestamp").contains(&old_ts[0]), "{list}");
    assert!(!old_key_file.exists(), "the revoked private key is removed");
    v.rotate_root(&root(5)).unwrap();
    let ts = fs::read(format!("{served}/timestamp.json")).unwrap();
    let envelope = metadata::open(metadata::Role::Timestamp, &ts).unwrap();
    let signed = envelope.signed_bytes().to_vec();
    let seed = metadata::hex::<32>(old_seed.trim()).unwrap();
    let old_key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let value = delta_updater::sign::from_json(std::str::from_utf8(&signed).unwrap()).unwrap();
    let forged = delta_updater::sign::envelope(&value, &[&old_key]);
    assert!(
        forged[..forged.len() - 1].ends_with(&signed),
        "the same signed bytes"
    );
    let err = v.timestamp(&forged, now).unwrap_err().to_string();
    assert!(err.contains("signed by 0 valid"), "{err}");
    v.timestamp(&ts, now).unwrap();
    let release = fs::read(format!("{served}/releases/gateway/aarch64/2.json")).unwrap();
    v.release(&release, now).unwrap();

    // Revoking the only release key is refused; adding one and revoking
    // the old one re-publishes release 2 as release 3.
    let list = ok(publish(&["keys", &repo, "list"]));
    let release_ids = key_ids(&list, "release");
    let (code, _, stderr) = publish(&["keys", &repo, "revoke", "release", &release_ids[0]]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("its threshold is 1, revoking a key leaves 0"),
        "{stderr}"
    );
    ok(publish(&["keys", &repo, "add", "release"]));
    ok(publish(&[
        "keys",
        &repo,
        "revoke",
        "release",
        &release_ids[0],
    ]));
    assert!(Path::new(&format!("{served}/releases/gateway/aarch64/3.json")).exists());
    let out = ok(publish(&["verify", &repo]));
    assert!(out.starts_with("ok: root version 7, 3 release(s)"), "{out}");
    let out = ok(device(&[
        "verify",
        &format!("{served}/root/1.json"),
        &served,
        "gateway",
        "aarch64",
        "rpi4",
        &now.to_string(),
    ]));
    assert!(out.starts_with("release 3 (2 layers)"), "{out}");
}
