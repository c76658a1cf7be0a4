//! Imports of OCI layouts, OCI archives and `docker save` archives built in
//! the tests, good and broken; after every failure the store is as it was.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use delta_updater::Digest;

use super::super::extract::tests::Tar;
use super::super::store::{hex, Store};
use super::super::{self as image, ImageError, ImageName, ImportOptions};
use crate::image::extract::Options;
use crate::testutil::TempDir;

pub(crate) fn options(arch: &str) -> ImportOptions {
    ImportOptions {
        name: None,
        arch: Some(arch.to_owned()),
        extract: Options {
            chown: false,
            ..Options::default()
        },
    }
}

/// A small layer tar holding `files`.
pub(crate) fn layer(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = Tar::default();
    for (path, contents) in files {
        tar.file(path, contents.as_bytes(), 0o644);
    }
    tar.finish()
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// An image config for `arch` with these diff_ids.
pub(crate) fn config(arch: &str, diff_ids: &[Digest]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        r#"{{"architecture":"{arch}","os":"linux","created":"2026-11-27T10:00:00Z",
        "config":{{"Env":["PATH=/bin"],"Cmd":["sh"]}},
        "rootfs":{{"type":"layers","diff_ids":[{}]}},
        "history":[{{"created_by":"test"}}]}}"#,
        ids.join(",")
    )
    .into_bytes()
}

/// A manifest's (digest, size), platform architecture and ref name.
pub(crate) type IndexEntry<'a> = ((Digest, usize), Option<&'a str>, Option<&'a str>);

/// An OCI layout being written.
pub(crate) struct Layout<'a> {
    pub(crate) dir: &'a Path,
}

impl Layout<'_> {
    pub(crate) fn new(dir: &Path) -> Layout<'_> {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout { dir }
    }

    /// Writes a blob; returns its descriptor's digest and size.
    pub(crate) fn blob(&self, data: &[u8]) -> (Digest, usize) {
        let digest = Digest::of(data);
        fs::write(self.dir.join("blobs/sha256").join(hex(&digest)), data).unwrap();
        (digest, data.len())
    }

    /// Writes a manifest for `arch` with these layer blobs (as stored) and
    /// tars; returns its digest and size.
    pub(crate) fn image(&self, arch: &str, blobs: &[Vec<u8>], tars: &[Vec<u8>]) -> (Digest, usize) {
        let diff_ids: Vec<Digest> = tars.iter().map(|t| Digest::of(t)).collect();
        let (config, config_size) = self.blob(&config(arch, &diff_ids));
        let layers: Vec<String> = blobs
            .iter()
            .map(|b| {
                let (digest, size) = self.blob(b);
                let kind = if b.starts_with(&[0x1f, 0x8b]) { "tar+gzip" } else { "tar" };
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.layer.v1.{kind}","digest":"{digest}","size":{size}}}"#
                )
            })
            .collect();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},
            "layers":[{}]}}"#,
            layers.join(",")
        );
        self.blob(manifest.as_bytes())
    }

    /// Writes `index.json` listing these manifests: (digest, size, platform
    /// architecture if any, ref name if any).
    pub(crate) fn index(&self, manifests: &[IndexEntry<'_>]) {
        let entries: Vec<String> = manifests
            .iter()
            .map(|((digest, size), arch, name)| {
                let platform = arch
                    .map(|a| format!(r#","platform":{{"architecture":"{a}","os":"linux"}}"#))
                    .unwrap_or_default();
                let annotations = name
                    .map(|n| format!(r#","annotations":{{"org.opencontainers.image.ref.name":"{n}"}}"#))
                    .unwrap_or_default();
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{size}{platform}{annotations}}}"#
                )
            })
            .collect();
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            entries.join(",")
        );
        fs::write(self.dir.join("index.json"), index).unwrap();
    }
}

/// A one-image layout at `dir` with a gzip layer and a plain one.
pub(crate) fn simple_layout(dir: &Path, arch: &str) -> Vec<Vec<u8>> {
    let tars = vec![
        layer(&[("etc/os-release", "ID=test\n"), ("bin/app", "#!/bin/sh\n")]),
        layer(&[("etc/hostname", "husk\n")]),
    ];
    let blobs = vec![gzip(&tars[0]), tars[1].clone()];
    let layout = Layout::new(dir);
    let manifest = layout.image(arch, &blobs, &tars);
    layout.index(&[(manifest, None, Some("1.0"))]);
    tars
}

/// `dir` as a tar archive at `archive`.
pub(crate) fn tar_dir(dir: &Path, archive: &Path) {
    let mut builder = tar::Builder::new(fs::File::create(archive).unwrap());
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap().sync_all().unwrap();
}

/// A `docker save` archive at `archive` of one image named `name`, whose
/// second and third layers are the same (Docker links the repeat).
pub(crate) fn docker_save(work: &Path, archive: &Path, name: &str, arch: &str) -> Vec<Vec<u8>> {
    let tars = vec![layer(&[("a", "1")]), layer(&[("b", "2")])];
    let diff_ids: Vec<Digest> = [&tars[0], &tars[1], &tars[1]]
        .iter()
        .map(|t| Digest::of(t))
        .collect();
    let config = config(arch, &diff_ids);
    let config_name = format!("{}.json", hex(&Digest::of(&config)));
    let dir = work.join("docker");
    fs::create_dir_all(dir.join("l0")).unwrap();
    fs::create_dir_all(dir.join("l1")).unwrap();
    fs::create_dir_all(dir.join("l2")).unwrap();
    fs::write(dir.join("l0/layer.tar"), &tars[0]).unwrap();
    fs::write(dir.join("l1/layer.tar"), &tars[1]).unwrap();
    std::os::unix::fs::symlink("../l1/layer.tar", dir.join("l2/layer.tar")).unwrap();
    fs::write(dir.join(&config_name), &config).unwrap();
    let manifest = format!(
        r#"[{{"Config":"{config_name}","RepoTags":["{name}"],"Layers":["l0/layer.tar","l1/layer.tar","l2/layer.tar"]}}]"#
    );
    fs::write(dir.join("manifest.json"), manifest).unwrap();
    fs::write(dir.join("repositories"), "{}").unwrap();
    let mut builder = tar::Builder::new(fs::File::create(archive).unwrap());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", &dir).unwrap();
    builder.into_inner().unwrap();
    tars
}

/// Every entry under `dir`, as sorted relative paths.
pub(crate) fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let path = e.path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_oci_layout_imports_and_a_second_import_reuses_its_layers() {
    let tmp = TempDir::new("oci-layout");
    let src = tmp.path().join("web");
    let tars = simple_layout(&src, "amd64");
    let store = Store::new(tmp.path().join("data"));
    let done = image::import(&store, &src, &options("amd64")).unwrap();
    let record = &done.record;
    assert_eq!(
        record.name.as_str(),
        "web:1.0",
        "a bare tag is a tag of the directory's name"
    );
    assert_eq!(record.arch, "amd64");
    assert_eq!(record.os, "linux");
    assert_eq!(record.created, "2026-11-27T10:00:00Z");
    assert_eq!(
        record.layers,
        vec![Digest::of(&tars[0]), Digest::of(&tars[1])]
    );
    assert_eq!(record.size, 8 + 10 + 5);
    assert_eq!((done.extracted, done.reused), (2, 0));
    let root = store.layer_root(&record.layers[0]);
    assert_eq!(fs::read(root.join("etc/os-release")).unwrap(), b"ID=test\n");
    assert_eq!(image::list(&store).unwrap(), vec![record.clone()]);
    assert_eq!(
        store.blob(&record.id, 1 << 20).unwrap(),
        fs::read(src.join("blobs/sha256").join(hex(&record.id))).unwrap()
    );

    let mut named = options("amd64");
    named.name = Some(ImageName::parse("registry.example/web").unwrap());
    let again = image::import(&store, &src, &named).unwrap();
    assert_eq!((again.extracted, again.reused), (0, 2));
    assert_eq!(again.record.name.as_str(), "registry.example/web:latest");
    assert_eq!(again.record.size, record.size);
    assert_eq!(image::list(&store).unwrap().len(), 2);
    assert_eq!(tree(&store.root().join("tmp")), Vec::<String>::new());
}

#[test]
fn an_oci_archive_imports() {
    let tmp = TempDir::new("oci-archive");
    let src = tmp.path().join("layout");
    simple_layout(&src, "arm64");
    let archive = tmp.path().join("app.tar");
    tar_dir(&src, &archive);
    let store = Store::new(tmp.path().join("data"));
    let done = image::import(&store, &archive, &options("arm64")).unwrap();
    assert_eq!(done.record.name.as_str(), "app:1.0");
    assert_eq!(done.extracted, 2);
    let root = store.layer_root(&done.record.layers[1]);
    assert_eq!(fs::read(root.join("etc/hostname")).unwrap(), b"husk\n");
}

#[test]
fn a_docker_save_archive_imports_with_its_repeated_layer() {
    let tmp = TempDir::new("docker-save");
    let archive = tmp.path().join("saved.tar");
    let tars = docker_save(tmp.path(), &archive, "busybox:1.36", "riscv64");
    let store = Store::new(tmp.path().join("data"));
    let done = image::import(&store, &archive, &options("riscv64")).unwrap();
    assert_eq!(done.record.name.as_str(), "busybox:1.36");
    assert_eq!(done.record.layers.len(), 3);
    assert_eq!((done.extracted, done.reused), (2, 1));
    assert_eq!(store.layers().unwrap().len(), 2);
    assert_eq!(
        fs::read(store.layer_root(&Digest::of(&tars[1])).join("b")).unwrap(),
        b"2"
    );
    // The extracted directory, as `docker save` output is sometimes kept.
    let done = image::import(&store, &tmp.path().join("docker"), &options("riscv64")).unwrap();
    assert_eq!((done.extracted, done.reused), (0, 3));
}

#[test]
fn a_multi_arch_index_gives_the_manifest_for_the_architecture() {
    let tmp = TempDir::new("multi-arch");
    let src = tmp.path().join("multi");
    let layout = Layout::new(&src);
    let arm = layer(&[("arch", "arm64")]);
    let amd = layer(&[("arch", "amd64")]);
    let arm_manifest = layout.image(
        "arm64",
        std::slice::from_ref(&arm),
        std::slice::from_ref(&arm),
    );
    let amd_manifest = layout.image(
        "amd64",
        std::slice::from_ref(&amd),
        std::slice::from_ref(&amd),
    );
    layout.index(&[
        (arm_manifest, Some("arm64"), Some("latest")),
        (amd_manifest, Some("amd64"), Some("latest")),
    ]);
    let store = Store::new(tmp.path().join("data"));
    for (arch, tar) in [("amd64", &amd), ("arm64", &arm)] {
        let done = image::import(&store, &src, &options(arch)).unwrap();
        assert_eq!(done.record.arch, arch);
        assert_eq!(done.record.layers, vec![Digest::of(tar)]);
        let root = store.layer_root(&done.record.layers[0]);
        assert_eq!(fs::read_to_string(root.join("arch")).unwrap(), arch);
    }
    let error = image::import(&store, &src, &options("riscv64")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the image is for linux/arm64, linux/amd64, not for this device's linux/riscv64 (--arch to choose)"
    );
}

#[test]
fn a_config_for_another_architecture_is_refused() {
    let tmp = TempDir::new("wrong-arch");
    let src = tmp.path().join("img");
    simple_layout(&src, "arm");
    let store = Store::new(tmp.path().join("data"));
    let error = image::import(&store, &src, &options("amd64")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the image is for linux/arm, not for this device's linux/amd64 (--arch to choose)"
    );
    assert!(store.layers().unwrap().is_empty());
}

/// The store after a good import of `good`, then a failed one of a broken
/// copy: the failure's message, and whether the store is as before.
fn import_broken(name: &str, arch: &str, breaks: impl FnOnce(&Path)) -> String {
    let tmp = TempDir::new(name);
    let good = tmp.path().join("good");
    simple_layout(&good, arch);
    let store = Store::new(tmp.path().join("data"));
    let first = image::import(&store, &good, &options(arch)).unwrap().record;
    let before = tree(store.root());
    let broken = tmp.path().join("broken");
    let tars = vec![layer(&[("x", "1")]), layer(&[("y", "2")])];
    let layout = Layout::new(&broken);
    let manifest = layout.image(arch, &[gzip(&tars[0]), tars[1].clone()], &tars);
    layout.index(&[(manifest, None, Some("2.0"))]);
    breaks(&broken);
    let error = image::import(&store, &broken, &options(arch)).unwrap_err();
    assert_eq!(tree(store.root()), before, "{name}: the store changed");
    assert_eq!(image::list(&store).unwrap(), vec![first], "{name}");
    let message = crate::error_chain(&error);
    assert!(!message.contains('\n'), "{message}");
    message
}

/// The blobs of the layout at `dir`, largest first (the config and manifest
/// are JSON; layers are the rest).
fn blob_paths(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut blobs: Vec<_> = fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    blobs.sort();
    blobs
}

fn layer_blobs(dir: &Path) -> Vec<std::path::PathBuf> {
    blob_paths(dir)
        .into_iter()
        .filter(|p| !fs::read(p).unwrap().starts_with(b"{"))
        .collect()
}

fn json_blob(dir: &Path, containing: &str) -> std::path::PathBuf {
    blob_paths(dir)
        .into_iter()
        .find(|p| String::from_utf8_lossy(&fs::read(p).unwrap()).contains(containing))
        .unwrap()
}

#[test]
fn a_corrupt_layer_blob_is_refused_and_nothing_is_kept() {
    let message = import_broken("corrupt-layer", "amd64", |dir| {
        let plain = layer_blobs(dir)
            .into_iter()
            .find(|p| !fs::read(p).unwrap().starts_with(&[0x1f, 0x8b]))
            .unwrap();
        let mut data = fs::read(&plain).unwrap();
        data[600] ^= 0xff;
        fs::write(plain, data).unwrap();
    });
    assert!(message.contains("has digest sha256:"), "{message}");
}

#[test]
fn a_truncated_layer_blob_is_refused() {
    let message = import_broken("truncated-layer", "amd64", |dir| {
        let gz = layer_blobs(dir)
            .into_iter()
            .find(|p| fs::read(p).unwrap().starts_with(&[0x1f, 0x8b]))
            .unwrap();
        let data = fs::read(&gz).unwrap();
        fs::write(gz, &data[..data.len() / 2]).unwrap();
    });
    assert!(message.contains("bytes, its descriptor says"), "{message}");
}

#[test]
fn a_wrong_diff_id_is_refused() {
    let message = import_broken("wrong-diff-id", "amd64", |dir| {
        // Rewrite the config with another diff_id, and the manifest and
        // index to match, so that only the diff_id is wrong.
        let config_path = json_blob(dir, "diff_ids");
        let text = fs::read_to_string(&config_path).unwrap();
        let first = text.find("sha256:").unwrap();
        let wrong = format!(
            "{}{}{}",
            &text[..first + 7],
            "0".repeat(64),
            &text[first + 71..]
        );
        let layout = Layout { dir };
        let (config, size) = layout.blob(wrong.as_bytes());
        let manifest_path = json_blob(dir, "\"layers\"");
        let manifest = fs::read_to_string(&manifest_path).unwrap();
        let old = Digest::of(text.as_bytes()).to_string();
        let manifest = manifest.replace(&old, &config.to_string()).replace(
            &format!("\"size\":{}", text.len()),
            &format!("\"size\":{size}"),
        );
        let manifest = layout.blob(manifest.as_bytes());
        layout.index(&[(manifest, None, Some("2.0"))]);
    });
    assert!(message.contains("(uncompressed) has digest"), "{message}");
    assert!(message.contains("not sha256:0000"), "{message}");
}

#[test]
fn a_corrupt_config_is_refused_before_it_is_parsed() {
    let message = import_broken("corrupt-config", "amd64", |dir| {
        let config = json_blob(dir, "diff_ids");
        let text = fs::read_to_string(&config)
            .unwrap()
            .replace("amd64", "AMD64");
        fs::write(config, text).unwrap();
    });
    assert!(message.contains("has digest"), "{message}");
}

#[test]
fn a_missing_layer_is_refused() {
    let message = import_broken("missing-layer", "amd64", |dir| {
        fs::remove_file(&layer_blobs(dir)[0]).unwrap();
    });
    assert!(message.ends_with("is missing"), "{message}");
}

#[test]
fn a_hostile_layer_leaves_nothing_behind() {
    let message = import_broken("hostile-layer", "amd64", |dir| {
        let mut tar = Tar::default();
        tar.file("ok", b"fine", 0o644)
            .file("../../escape", b"x", 0o644);
        let evil = tar.finish();
        let layout = Layout { dir };
        let manifest = layout.image(
            "amd64",
            std::slice::from_ref(&evil),
            std::slice::from_ref(&evil),
        );
        layout.index(&[(manifest, None, Some("2.0"))]);
    });
    assert!(message.contains("has a '..' component"), "{message}");
}

#[test]
fn garbage_is_not_an_image() {
    let tmp = TempDir::new("garbage");
    let store = Store::new(tmp.path().join("data"));
    let file = tmp.path().join("garbage.tar");
    fs::write(&file, [7u8; 3000]).unwrap();
    let error = image::import(&store, &file, &options("amd64")).unwrap_err();
    assert!(matches!(error, ImageError::Format { .. }), "{error}");
    let dir = tmp.path().join("empty");
    fs::create_dir(&dir).unwrap();
    let error = image::import(&store, &dir, &options("amd64")).unwrap_err();
    assert!(
        error.to_string().contains("neither an OCI layout"),
        "{error}"
    );
    let error = image::import(&store, &tmp.path().join("nope"), &options("amd64")).unwrap_err();
    assert!(error.to_string().starts_with("reading "), "{error}");
    let layout = Layout::new(&dir);
    fs::write(
        layout.dir.join("index.json"),
        r#"{"manifests": [{"digest": "sha256:1"}]}"#,
    )
    .unwrap();
    let error = image::import(&store, &dir, &options("amd64")).unwrap_err();
    assert!(
        error.to_string().contains("not the JSON expected"),
        "{error}"
    );
}

#[test]
fn path_colon_tag_chooses_among_the_images_of_a_layout() {
    let tmp = TempDir::new("tags");
    let src = tmp.path().join("app");
    let layout = Layout::new(&src);
    let one = layer(&[("v", "1")]);
    let two = layer(&[("v", "2")]);
    let first = layout.image(
        "amd64",
        std::slice::from_ref(&one),
        std::slice::from_ref(&one),
    );
    let second = layout.image(
        "amd64",
        std::slice::from_ref(&two),
        std::slice::from_ref(&two),
    );
    layout.index(&[(first, None, Some("1")), (second, None, Some("2"))]);
    let store = Store::new(tmp.path().join("data"));
    let error = image::import(&store, &src, &options("amd64")).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("index.json: lists 2 images (1, 2): import PATH:TAG to choose"),
        "{error}"
    );
    let tagged = tmp.path().join("app:2");
    let done = image::import(&store, &tagged, &options("amd64")).unwrap();
    assert_eq!(done.record.name.as_str(), "app:2");
    assert_eq!(done.record.layers, vec![Digest::of(&two)]);
    let error = image::import(&store, &tmp.path().join("app:3"), &options("amd64")).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("has no image tagged \"3\" (tags: 1, 2)"),
        "{error}"
    );
}

#[test]
fn deeply_nested_json_is_refused_before_it_is_parsed() {
    assert_eq!(
        super::check_depth(br#"{"a": [[{"b": "[[[[\"["}]]]}"#),
        Ok(())
    );
    let deep = format!(
        "{{\"history\": {}{}}}",
        "[".repeat(1_000_000),
        "]".repeat(1_000_000)
    );
    assert_eq!(
        super::check_depth(deep.as_bytes()),
        Err("nests deeper than 32 levels".into())
    );
    let tmp = TempDir::new("deep-json");
    let dir = tmp.path().join("deep");
    Layout::new(&dir);
    fs::write(dir.join("index.json"), &deep).unwrap();
    let store = Store::new(tmp.path().join("data"));
    let error = image::import(&store, &dir, &options("amd64")).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("index.json: nests deeper than 32 levels"),
        "{error}"
    );
}

#[test]
fn import_tells_its_progress_layer_by_layer() {
    let tmp = TempDir::new("oci-progress");
    let src = tmp.path().join("web");
    let tars = simple_layout(&src, "amd64");
    let store = Store::new(tmp.path().join("data"));
    let mut lines = Vec::new();
    image::import_with(&store, &src, &options("amd64"), &mut |l| {
        lines.push(l.to_owned())
    })
    .unwrap();
    let short = |i: usize| image::short_id(&Digest::of(&tars[i]));
    // Each layer's label, then the bytes read of it, growing.
    assert_eq!(lines.first(), Some(&format!("layer 1/2 {}", short(0))));
    let second = format!("layer 2/2 {}", short(1));
    let at = lines
        .iter()
        .position(|l| *l == second)
        .expect("no second label");
    let read = |l: &String| -> u64 {
        l.rsplit_once(": ")
            .unwrap()
            .1
            .strip_suffix(" bytes read")
            .unwrap()
            .parse()
            .unwrap()
    };
    for part in [&lines[1..at], &lines[at + 1..]] {
        assert!(!part.is_empty(), "{lines:?}");
        let counts: Vec<u64> = part.iter().map(read).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
        assert!(*counts.last().unwrap() > 0, "{lines:?}");
    }
    // Layers already in the store are not read again: nothing to tell.
    let mut again = Vec::new();
    image::import_with(&store, &src, &options("amd64"), &mut |l| {
        again.push(l.to_owned())
    })
    .unwrap();
    assert_eq!(again, Vec::<String>::new());
}
