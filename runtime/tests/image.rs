//! Privileged host tests of `husk image`: the built binary imports images as
//! root, so owners, device nodes and overlay whiteouts are real; the layers
//! are then stacked with overlayfs in a mount namespace of their own
//! (`unshare -m`), as a container's rootfs will be.
//!
//! A test that cannot run here (not root, no overlayfs, no umoci or skopeo)
//! prints `SKIP <test>: <why>` on stderr and passes.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest as _, Sha256};

#[allow(dead_code, reason = "each test binary uses part of it")]
mod common;

const HUSK: &str = env!("CARGO_BIN_EXE_husk");
use common::BUSYBOX;

/// A scratch directory for `test`, or `None` after printing why it is skipped.
fn scratch(test: &str, tools: &[&str]) -> Option<PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        common::skip(test, "needs root");
        return None;
    }
    for tool in tools {
        if !on_path(tool) {
            common::skip(test, &format!("needs {tool} (Debian package {tool})"));
            return None;
        }
    }
    let dir = std::env::temp_dir().join(format!("husk-image-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    Some(dir)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

fn husk(data: &Path, args: &[&str]) -> Output {
    Command::new(HUSK)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn digest(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// A tar entry: path, type, mode, owner, device, contents.
struct Entry<'a> {
    path: &'a str,
    kind: tar::EntryType,
    mode: u32,
    owner: (u64, u64),
    link: &'a str,
    device: (u32, u32),
    data: &'a [u8],
}

const FILE: Entry<'static> = Entry {
    path: "",
    kind: tar::EntryType::Regular,
    mode: 0o644,
    owner: (0, 0),
    link: "",
    device: (0, 0),
    data: b"",
};

fn layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut header = tar::Header::new_gnu();
        header.set_path(e.path).unwrap();
        header.set_entry_type(e.kind);
        header.set_mode(e.mode);
        header.set_uid(e.owner.0);
        header.set_gid(e.owner.1);
        header.set_mtime(1_600_000_000);
        header.set_size(e.data.len() as u64);
        header.set_device_major(e.device.0).unwrap();
        header.set_device_minor(e.device.1).unwrap();
        if !e.link.is_empty() {
            header.set_link_name(e.link).unwrap();
        }
        header.set_cksum();
        builder.append(&header, e.data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Writes an OCI layout of one amd64/… image (this machine's arch) with
/// these uncompressed layers.
fn layout(dir: &Path, layers: &[Vec<u8>]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = digest(data);
        fs::write(blobs.join(&d[7..]), data).unwrap();
        (d, data.len())
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("\"{}\"", digest(l)))
        .collect();
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let (config, config_size) = put(config.as_bytes());
    let descriptors: Vec<String> = layers
        .iter()
        .map(|l| {
            let (d, size) = put(l);
            format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{size}}}"#)
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{}]}}"#,
        descriptors.join(",")
    );
    let (manifest, size) = put(manifest.as_bytes());
    fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest}","size":{size},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#
        ),
    )
    .unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// The stored layer directories of `image`, lowest first.
fn layer_roots(data: &Path, image: &str) -> Vec<PathBuf> {
    let json = ok(husk(data, &["image", "ls", "--json"]));
    assert!(json.contains(image), "{json}");
    let records = fs::read_to_string(data.join("images.json")).unwrap();
    let at = records.find(&format!("\"name\":\"{image}\"")).unwrap();
    let layers = &records[at..];
    let layers = &layers[layers.find("\"layers\":[").unwrap() + 10..];
    let layers = &layers[..layers.find(']').unwrap()];
    layers
        .split(',')
        .filter(|l| !l.is_empty())
        .map(|l| {
            data.join("layers/sha256")
                .join(&l.trim_matches('"')[7..])
                .join("root")
        })
        .collect()
}

/// Runs `script` with the layers stacked read-only by overlayfs at `$M`, in a
/// mount namespace of its own; `None` if overlayfs cannot be mounted here.
fn in_overlay(work: &Path, layers: &[PathBuf], script: &str) -> Option<String> {
    let merged = work.join("merged");
    fs::create_dir_all(&merged).unwrap();
    // overlayfs lists the upper-most lower dir first.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    let mount = format!(
        "mount -t overlay overlay -o ro,lowerdir={} {} || exit 77\nM={}\n{script}",
        lower.join(":"),
        merged.display(),
        merged.display()
    );
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-ec", &mount])
        .output()
        .unwrap();
    if output.status.code() == Some(77) {
        return None;
    }
    Some(ok(output))
}

#[test]
fn owners_devices_setid_and_whiteouts_are_made_as_root() {
    const TEST: &str = "owners_devices_setid_and_whiteouts_are_made_as_root";
    let Some(work) = scratch(TEST, &["unshare"]) else {
        return;
    };
    let data = work.join("data");
    let base = layer(&[
        Entry {
            path: "etc/",
            kind: tar::EntryType::Directory,
            mode: 0o755,
            ..FILE
        },
        Entry {
            path: "etc/gone",
            data: b"old",
            ..FILE
        },
        Entry {
            path: "etc/kept",
            data: b"kept",
            ..FILE
        },
        Entry {
            path: "opaque/",
            kind: tar::EntryType::Directory,
            mode: 0o755,
            ..FILE
        },
        Entry {
            path: "opaque/hidden",
            data: b"lower",
            ..FILE
        },
    ]);
    let top = layer(&[
        Entry {
            path: "home/",
            kind: tar::EntryType::Directory,
            mode: 0o750,
            owner: (1002, 1003),
            ..FILE
        },
        Entry {
            path: "home/user",
            mode: 0o640,
            owner: (1000, 1001),
            data: b"mine",
            ..FILE
        },
        Entry {
            path: "home/link",
            kind: tar::EntryType::Symlink,
            link: "user",
            owner: (1004, 1005),
            ..FILE
        },
        Entry {
            path: "bin/su",
            mode: 0o4755,
            data: b"su",
            ..FILE
        },
        Entry {
            path: "dev/null",
            kind: tar::EntryType::Char,
            mode: 0o666,
            device: (1, 3),
            ..FILE
        },
        Entry {
            path: "etc/.wh.gone",
            ..FILE
        },
        Entry {
            path: "opaque/.wh..wh..opq",
            ..FILE
        },
        Entry {
            path: "opaque/new",
            data: b"upper",
            ..FILE
        },
    ]);
    let src = work.join("img");
    layout(&src, &[base, top]);
    let src = src.to_str().unwrap();

    let refused = husk(&data, &["image", "import", src]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("\"dev/null\": character device 1:3 refused (allow with --allow-devices)"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_dir(data.join("layers/sha256")).unwrap().count(),
        0,
        "no layer kept"
    );
    assert_eq!(fs::read_dir(data.join("tmp")).unwrap().count(), 0);

    let out = ok(husk(&data, &["image", "import", "--allow-devices", src]));
    assert!(
        out.contains("setuid/setgid bits cleared on 1 files"),
        "{out}"
    );
    let roots = layer_roots(&data, "img:latest");
    let top = &roots[1];
    let meta = |p: &str| fs::symlink_metadata(top.join(p)).unwrap();
    assert_eq!(
        (meta("home/user").uid(), meta("home/user").gid()),
        (1000, 1001)
    );
    assert_eq!(meta("home/user").permissions().mode() & 0o7777, 0o640);
    assert_eq!((meta("home").uid(), meta("home").gid()), (1002, 1003));
    assert_eq!(meta("home").permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        (meta("home/link").uid(), meta("home/link").gid()),
        (1004, 1005)
    );
    assert_eq!(meta("bin/su").permissions().mode() & 0o7777, 0o755);
    let null = meta("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o7777, 0o666);
    let whiteout = meta("etc/gone");
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);

    // With setid allowed, a new name for the same image keeps the bit (the
    // layer is extracted again only because the first is removed).
    ok(husk(&data, &["image", "rm", "img"]));
    assert!(ok(husk(&data, &["image", "prune"])).contains("freed"));
    ok(husk(
        &data,
        &["image", "import", "--allow-devices", "--allow-setid", src],
    ));
    let roots = layer_roots(&data, "img:latest");
    let su = fs::metadata(roots[1].join("bin/su")).unwrap();
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755);

    let Some(listing) = in_overlay(
        &work,
        &roots,
        "ls $M/etc; echo --; ls $M/opaque; echo --; cat $M/etc/kept",
    ) else {
        common::skip(
            TEST,
            "overlayfs cannot be mounted here: whiteouts not checked through it",
        );
        fs::remove_dir_all(&work).unwrap();
        return;
    };
    assert_eq!(listing, "kept\n--\nnew\n--\nkept");
    fs::remove_dir_all(&work).unwrap();
}

#[test]
fn images_made_by_umoci_and_skopeo_import_and_their_layers_stack() {
    const TEST: &str = "images_made_by_umoci_and_skopeo_import_and_their_layers_stack";
    let Some(work) = scratch(TEST, &["umoci", "skopeo", "unshare"]) else {
        return;
    };
    if !Path::new(BUSYBOX).exists() {
        common::skip(TEST, "needs a static /bin/busybox (Debian: busybox-static)");
        return;
    }
    let run = |cmd: &str| {
        let output = Command::new("sh")
            .args(["-ec", cmd])
            .current_dir(&work)
            .output()
            .unwrap();
        ok(output)
    };
    // Two layers: busybox and /etc/motd, then one that removes the motd.
    run("umoci init --layout bb
         umoci new --image bb:base
         umoci unpack --image bb:base b1 >/dev/null
         mkdir -p b1/rootfs/bin b1/rootfs/etc
         cp /bin/busybox b1/rootfs/bin/
         ln -s busybox b1/rootfs/bin/sh
         echo hello > b1/rootfs/etc/motd
         umoci repack --image bb:one b1
         umoci unpack --image bb:one b2 >/dev/null
         rm b2/rootfs/etc/motd
         echo new > b2/rootfs/etc/issue
         umoci repack --image bb:two b2
         umoci config --image bb:two --config.cmd /bin/sh
         skopeo copy -q oci:bb:two docker-archive:bb-docker.tar:busybox:two
         skopeo copy -q oci:bb:two oci-archive:bb-oci.tar:two
         skopeo copy -q --dest-compress-format zstd oci:bb:two oci:bbz:two");
    let data = work.join("data");
    let p = |name: &str| work.join(name).display().to_string();
    let first = ok(husk(
        &data,
        &["image", "import", &format!("{}:two", p("bb"))],
    ));
    assert!(first.starts_with("imported bb:two ("), "{first}");
    assert!(first.contains(" 2 extracted, 0 already stored"), "{first}");
    let docker = ok(husk(&data, &["image", "import", &p("bb-docker.tar")]));
    assert!(
        docker.starts_with("imported docker.io/library/busybox:two"),
        "{docker}"
    );
    assert!(
        docker.contains(" 0 extracted, 2 already stored"),
        "{docker}"
    );
    let oci = ok(husk(&data, &["image", "import", &p("bb-oci.tar")]));
    assert!(oci.contains(" 0 extracted, 2 already stored"), "{oci}");
    // zstd layers have other blobs but the same diff_ids.
    let zstd = ok(husk(
        &data,
        &["image", "import", "--name", "bbz", &p("bbz")],
    ));
    assert!(zstd.contains(" 0 extracted, 2 already stored"), "{zstd}");
    let wrong = husk(
        &data,
        &["image", "import", "--arch", "riscv64", &p("bb-docker.tar")],
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not for this device's linux/riscv64"));

    let ls = ok(husk(&data, &["image", "ls"]));
    assert_eq!(ls.lines().count(), 5, "{ls}");
    let df = ok(husk(&data, &["image", "df"]));
    assert!(df.contains("(2 stored once each)"), "{df}");

    let roots = layer_roots(&data, "bb:two");
    assert_eq!(roots.len(), 2);
    let Some(out) = in_overlay(
        &work,
        &roots,
        "test ! -e $M/etc/motd; cat $M/etc/issue; chroot $M /bin/sh -c 'echo from busybox'",
    ) else {
        common::skip(TEST, "overlayfs cannot be mounted here: layers not stacked");
        fs::remove_dir_all(&work).unwrap();
        return;
    };
    assert_eq!(out, "new\nfrom busybox\n");

    // husk run --image: the same stack, plus a writable layer gone at exit.
    let state = work.join("state");
    let id = format!("husk-image-{}", std::process::id());
    let run = |command: &[&str]| {
        let mut args = vec![
            "--root",
            state.to_str().unwrap(),
            "run",
            "--image",
            "bb:two",
        ];
        args.extend(["-e", "GREETING=hi", &id]);
        args.extend(command);
        husk(&data, &args)
    };
    let out = run(&[
        "sh",
        "-c",
        "set -e; test ! -e /etc/motd; cat /etc/issue; echo $GREETING; echo x > /written; cat /written; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "new\nhi\nx\n");
    let again = run(&["sh", "-c", "test ! -e /written && echo clean"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), "clean\n");
    // The same in docker's order: --name, then the image.
    let named = husk(
        &data,
        &[
            "--root",
            state.to_str().unwrap(),
            "run",
            "--name",
            &id,
            "-e",
            "GREETING=named",
            "bb:two",
            "sh",
            "-c",
            "echo $GREETING",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&named.stdout),
        "named\n",
        "{}",
        String::from_utf8_lossy(&named.stderr)
    );
    assert_eq!(fs::read_dir(data.join("containers")).unwrap().count(), 0);
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(data.to_str().unwrap()),
        "an overlay is left: {mounts}"
    );
    // The image's own Cmd (/bin/sh) reads an empty stdin and exits 0.
    assert_eq!(run(&[]).status.code(), Some(0));
    fs::remove_dir_all(&work).unwrap();
}

#[test]
fn a_full_disk_fails_the_import_and_keeps_the_images_there_were() {
    const TEST: &str = "a_full_disk_fails_the_import_and_keeps_the_images_there_were";
    let Some(work) = scratch(TEST, &["unshare"]) else {
        return;
    };
    let small = work.join("small");
    layout(
        &small,
        &[layer(&[Entry {
            path: "etc/hostname",
            data: b"small",
            ..FILE
        }])],
    );
    let big_data = vec![7u8; 2 << 20];
    let big = work.join("big");
    layout(
        &big,
        &[layer(&[Entry {
            path: "big",
            data: &big_data,
            ..FILE
        }])],
    );
    let data = work.join("data");
    fs::create_dir(&data).unwrap();
    // A 1 MiB tmpfs as the data directory, in a mount namespace of its own.
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs {data} || exit 77
         {husk} --data-dir {data} image import {small} >/dev/null
         if {husk} --data-dir {data} image import {big} 2>{work}/err; then exit 1; fi
         {husk} --data-dir {data} image ls
         cat {data}/layers/sha256/*/root/etc/hostname; echo
         ls {data}/tmp | wc -l",
        data = data.display(),
        husk = HUSK,
        small = small.display(),
        big = big.display(),
        work = work.display(),
    );
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-ec", &script])
        .output()
        .unwrap();
    if output.status.code() == Some(77) {
        common::skip(TEST, "cannot mount a tmpfs here");
        return;
    }
    let out = ok(output);
    let err = fs::read_to_string(work.join("err")).unwrap();
    assert!(err.starts_with("husk: layer blobs/sha256/"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[1].starts_with("small:latest"), "{out}");
    assert_eq!(lines[2], "small", "the small image's layer is intact");
    assert_eq!(lines[3], "0", "nothing is left in tmp/");
    fs::remove_dir_all(&work).unwrap();
}

/// A layer with busybox as `/bin/sh` (and `sleep`, `cat`, `ls`), then `extra`.
fn busybox_layer(busybox: &[u8], extra: &[Entry<'_>]) -> Vec<u8> {
    let mut entries = vec![
        Entry {
            path: "bin/",
            kind: tar::EntryType::Directory,
            mode: 0o755,
            ..FILE
        },
        Entry {
            path: "bin/busybox",
            mode: 0o755,
            data: busybox,
            ..FILE
        },
    ];
    for applet in ["bin/sh", "bin/sleep", "bin/cat", "bin/ls"] {
        entries.push(Entry {
            path: applet,
            kind: tar::EntryType::Symlink,
            link: "busybox",
            mode: 0o777,
            ..FILE
        });
    }
    for e in extra {
        entries.push(Entry { ..*e });
    }
    layer(&entries)
}

/// What a `husk` run left: exit code, stdout, stderr. Output goes through
/// files, never pipes: a detached container keeps husk's descriptors.
struct Ran {
    code: Option<i32>,
    out: String,
    err: String,
}

fn husk_at(work: &Path, env: &[(&str, &str)], args: &[&str]) -> Ran {
    let (out, err) = (work.join("husk.out"), work.join("husk.err"));
    let status = Command::new(HUSK)
        .arg("--data-dir")
        .arg(work.join("data"))
        .arg("--root")
        .arg(work.join("state"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    Ran {
        code: status.code(),
        out: fs::read_to_string(&out).unwrap(),
        err: fs::read_to_string(&err).unwrap(),
    }
}

fn ok_at(work: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let ran = husk_at(work, env, args);
    assert_eq!(ran.code, Some(0), "husk {args:?}: {}{}", ran.out, ran.err);
    ran.out
}

/// The status `husk state` gives container `id`.
fn status_of(work: &Path, id: &str) -> String {
    let json = ok_at(work, &[], &["state", id]);
    let at = json.find("\"status\":\"").unwrap() + 10;
    json[at..at + json[at..].find('"').unwrap()].to_owned()
}

/// A container id no other test process uses (cgroups are the host's).
fn unique(name: &str) -> String {
    format!("husk-{name}-{}", std::process::id())
}

/// Waits up to 15 s for `done`.
fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1500 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("not within 15 s: {what}");
}

fn mounted(path: &Path) -> bool {
    fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .contains(path.to_str().unwrap())
}

/// A scratch dir with the image `img:latest` (busybox and `/etc/motd`)
/// imported, or `None` after printing why the test is skipped.
fn with_busybox_image(test: &str) -> Option<PathBuf> {
    if !Path::new(BUSYBOX).exists() {
        common::skip(test, "needs a static /bin/busybox (Debian: busybox-static)");
        return None;
    }
    let work = scratch(test, &[])?;
    let busybox = fs::read(BUSYBOX).unwrap();
    let base = busybox_layer(
        &busybox,
        &[Entry {
            path: "etc/motd",
            data: b"hello",
            ..FILE
        }],
    );
    layout(&work.join("img"), &[base]);
    ok_at(
        &work,
        &[],
        &["image", "import", work.join("img").to_str().unwrap()],
    );
    Some(work)
}

#[test]
fn run_image_detached_runs_until_delete_removes_its_root() {
    const TEST: &str = "run_image_detached_runs_until_delete_removes_its_root";
    let Some(work) = with_busybox_image(TEST) else {
        return;
    };
    let [d1, d2, d3] = ["d1", "d2", "d3"].map(unique);
    let data = work.join("data");
    let overlay = fs::read_to_string("/proc/filesystems")
        .unwrap()
        .contains("\toverlay\n");
    let dir = data.join(format!("containers/{d1}"));
    ok_at(
        &work,
        &[],
        &[
            "run",
            "--image",
            "img",
            "-d",
            &d1,
            "sh",
            "-c",
            "echo hi > /written; exec sleep 1000",
        ],
    );
    assert_eq!(status_of(&work, &d1), "running");
    let written = dir.join(if overlay {
        "upper/written"
    } else {
        "rootfs/written"
    });
    eventually("the container writes to its root", || written.exists());
    assert_eq!(mounted(&dir.join("rootfs")), overlay);

    // The image is in use: not removed, its layers not pruned.
    let rm = husk_at(&work, &[], &["image", "rm", "img"]);
    assert_eq!(rm.code, Some(1));
    assert_eq!(
        rm.err,
        format!("husk: image img:latest is in use by container {d1} ('husk delete {d1}' first)\n")
    );
    let layers = fs::read_dir(data.join("layers/sha256")).unwrap().count();
    ok_at(&work, &[], &["image", "prune"]);
    assert_eq!(
        fs::read_dir(data.join("layers/sha256")).unwrap().count(),
        layers
    );

    let refused = husk_at(&work, &[], &["delete", &d1]);
    assert!(refused.err.contains("it is running"), "{}", refused.err);
    ok_at(&work, &[], &["delete", "--force", &d1]);
    assert!(!dir.exists(), "the writable layer is left");
    assert!(!mounted(&dir), "the overlay is left");
    assert!(!work.join(format!("state/{d1}")).exists());

    // One that exits is left stopped with its changes until `delete`.
    ok_at(
        &work,
        &[],
        &[
            "run",
            "--image",
            "img",
            "-d",
            &d2,
            "sh",
            "-c",
            "echo x > /x",
        ],
    );
    eventually("d2 stops", || status_of(&work, &d2) == "stopped");
    assert!(data.join(format!("containers/{d2}")).exists());
    ok_at(&work, &[], &["delete", &d2]);
    assert!(!data.join(format!("containers/{d2}")).exists());
    assert!(!mounted(&data.join(format!("containers/{d2}"))));

    // After a reboot (the state directory, the mount and the cgroup gone),
    // `delete --force` removes what is left under the data directory.
    ok_at(
        &work,
        &[],
        &["run", "--image", "img", "-d", &d3, "sleep", "1000"],
    );
    let record = fs::read_to_string(work.join(format!("state/{d3}/state.json"))).unwrap();
    assert!(
        record.contains(&format!(
            "\"image_root\":\"{}\"",
            data.join(format!("containers/{d3}")).display()
        )),
        "{record}"
    );
    ok_at(&work, &[], &["kill", &d3, "KILL"]);
    eventually("d3 stops", || status_of(&work, &d3) == "stopped");
    if let Some(at) = record.find("\"cgroup\":\"") {
        let cgroup = &record[at + 10..];
        let cgroup = &cgroup[..cgroup.find('"').unwrap()];
        // Where husk looks for cgroup v2: pure, then a hybrid's unified part.
        let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .find(|r| Path::new(r).join("cgroup.controllers").exists())
            .unwrap();
        fs::remove_dir(Path::new(root).join(cgroup)).unwrap();
    }
    let rootfs = data.join(format!("containers/{d3}/rootfs"));
    if mounted(&rootfs) {
        nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    fs::remove_dir_all(work.join(format!("state/{d3}"))).unwrap();
    let gone = husk_at(&work, &[], &["delete", &d3]);
    assert_eq!(gone.code, Some(1), "{}", gone.err);
    ok_at(&work, &[], &["image", "prune"]);
    assert_eq!(
        fs::read_dir(data.join("layers/sha256")).unwrap().count(),
        layers
    );
    ok_at(&work, &[], &["delete", "--force", &d3]);
    assert!(!data.join(format!("containers/{d3}")).exists());
    ok_at(&work, &[], &["image", "rm", "img"]);
    fs::remove_dir_all(&work).unwrap();
}

#[test]
fn run_image_detached_with_rm_is_removed_by_its_reaper_when_it_exits() {
    const TEST: &str = "run_image_detached_with_rm_is_removed_by_its_reaper_when_it_exits";
    let Some(work) = with_busybox_image(TEST) else {
        return;
    };
    let [r1, r2, r3] = ["r1", "r2", "r3"].map(unique);
    let data = work.join("data");
    let dir = data.join(format!("containers/{r1}"));
    let started = std::time::Instant::now();
    ok_at(
        &work,
        &[],
        &["run", "--image", "img", "-d", "--rm", &r1, "sleep", "2"],
    );
    assert!(
        started.elapsed().as_secs() < 2,
        "run -d waited for the container"
    );
    assert_eq!(status_of(&work, &r1), "running");
    // The reaper is the init's parent, in a session of its own, its output
    // on /dev/null: closing the caller's terminal does not end it.
    let record = fs::read_to_string(work.join(format!("state/{r1}/state.json"))).unwrap();
    let pid = &record[record.find("\"pid\":").unwrap() + 6..];
    let pid = &pid[..pid.find(',').unwrap()];
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let reaper = fields[1];
    let reaper_stat = fs::read_to_string(format!("/proc/{reaper}/stat")).unwrap();
    let reaper_fields: Vec<&str> = reaper_stat[reaper_stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .collect();
    assert_eq!(reaper_fields[3], reaper, "the reaper leads its session");
    eventually("the reaper's output goes to /dev/null", || {
        fs::read_link(format!("/proc/{reaper}/fd/1")).unwrap() == Path::new("/dev/null")
    });
    eventually("the reaper removes r1", || {
        !dir.exists() && !work.join(format!("state/{r1}")).exists()
    });
    assert!(!mounted(&dir));
    assert_eq!(ok_at(&work, &[], &["list", "-q"]), "");

    // A relative --data-dir: the reaper, in /, still finds the root to remove.
    let r4 = unique("r4");
    let status = Command::new(HUSK)
        .current_dir(&work)
        .args([
            "--data-dir",
            "data",
            "--root",
            "state",
            "run",
            "--image",
            "img",
        ])
        .args(["-d", "--rm", &r4, "sleep", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let record = fs::read_to_string(work.join(format!("state/{r4}/state.json"))).unwrap();
    assert!(
        record.contains(&format!(
            "\"image_root\":\"{}\"",
            data.join(format!("containers/{r4}")).display()
        )),
        "{record}"
    );
    eventually("the reaper removes r4", || {
        !data.join(format!("containers/{r4}")).exists()
            && !work.join(format!("state/{r4}")).exists()
    });

    // A container that cannot start: the reaper's error is husk's, nothing left.
    let failed = husk_at(
        &work,
        &[],
        &["run", "--image", "img", "-d", "--rm", &r2, "/nope"],
    );
    assert_eq!(failed.code, Some(1));
    assert!(
        failed.err.starts_with("husk: ") && failed.err.contains("/nope"),
        "{}",
        failed.err
    );
    assert_eq!(failed.err.lines().count(), 1, "{}", failed.err);
    assert!(!data.join(format!("containers/{r2}")).exists());
    assert!(!work.join(format!("state/{r2}")).exists());

    // Foreground runs are removed at exit, --rm or not.
    for rm in [&["--rm"][..], &[]] {
        let mut args = vec!["run", "--image", "img"];
        args.extend(rm);
        args.extend([&r3, "sh", "-c", "cat /etc/motd; exit 4"]);
        let ran = husk_at(&work, &[], &args);
        assert_eq!(
            (ran.code, ran.out.as_str()),
            (Some(4), "hello"),
            "{}",
            ran.err
        );
        assert!(!data.join(format!("containers/{r3}")).exists());
        assert!(!work.join(format!("state/{r3}")).exists());
    }
    fs::remove_dir_all(&work).unwrap();
}

#[test]
fn the_copy_fallback_runs_a_layered_image_with_whiteouts() {
    const TEST: &str = "the_copy_fallback_runs_a_layered_image_with_whiteouts";
    if !Path::new(BUSYBOX).exists() {
        common::skip(TEST, "needs a static /bin/busybox (Debian: busybox-static)");
        return;
    }
    let Some(work) = scratch(TEST, &[]) else {
        return;
    };
    let busybox = fs::read(BUSYBOX).unwrap();
    let base = busybox_layer(
        &busybox,
        &[
            Entry {
                path: "etc/motd",
                data: b"gone",
                ..FILE
            },
            Entry {
                path: "etc/kept",
                data: b"kept",
                ..FILE
            },
            Entry {
                path: "d/hidden",
                data: b"lower",
                ..FILE
            },
            Entry {
                path: "home/",
                kind: tar::EntryType::Directory,
                mode: 0o750,
                owner: (1002, 1003),
                ..FILE
            },
            Entry {
                path: "home/user",
                mode: 0o640,
                owner: (1000, 1001),
                data: b"mine",
                ..FILE
            },
        ],
    );
    let top = layer(&[
        Entry {
            path: "etc/.wh.motd",
            ..FILE
        },
        Entry {
            path: "etc/issue",
            data: b"new",
            ..FILE
        },
        Entry {
            path: "d/.wh..wh..opq",
            ..FILE
        },
        Entry {
            path: "d/new",
            data: b"upper",
            ..FILE
        },
        Entry {
            path: "bin/.wh.ls",
            ..FILE
        },
    ]);
    layout(&work.join("layered"), &[base, top]);
    ok_at(
        &work,
        &[],
        &["image", "import", work.join("layered").to_str().unwrap()],
    );
    let [f1, f2, f3] = ["f1", "f2", "f3"].map(unique);
    let data = work.join("data");
    let copy = [("HUSK_IMAGE_ROOT", "copy")];
    let script =
        "set -e; test ! -e /etc/motd; test ! -e /bin/ls; cd /d; echo *; cat /etc/kept /etc/issue; \
                  echo; stat -c '%u:%g %a' /home /home/user 2>/dev/null || \
                  busybox stat -c '%u:%g %a' /home /home/user; echo w > /w; cat /w";
    let ran = husk_at(
        &work,
        &copy,
        &["run", "--image", "layered", &f1, "sh", "-c", script],
    );
    assert_eq!(ran.code, Some(0), "{}{}", ran.out, ran.err);
    assert_eq!(ran.out, "new\nkeptnew\n1002:1003 750\n1000:1001 640\nw\n");
    assert!(
        ran.err.starts_with(&format!(
            "husk: warning: HUSK_IMAGE_ROOT=copy: the root of {f1} is a copy of its 2 layers ("
        )),
        "{}",
        ran.err
    );
    assert_eq!(ran.err.lines().count(), 1, "{}", ran.err);
    assert_eq!(fs::read_dir(data.join("containers")).unwrap().count(), 0);
    // The layers are as they were: the copy took the writes.
    for root in layer_roots(&data, "layered:latest") {
        assert!(!root.join("w").exists());
    }
    assert_eq!(
        fs::read_to_string(layer_roots(&data, "layered:latest")[0].join("etc/motd")).unwrap(),
        "gone"
    );

    // Detached: a plain directory, no mount; delete removes it.
    ok_at(
        &work,
        &copy,
        &["run", "--image", "layered", "-d", &f2, "sleep", "1000"],
    );
    assert!(data
        .join(format!("containers/{f2}/rootfs/bin/busybox"))
        .exists());
    assert!(!mounted(&data.join(format!("containers/{f2}"))));
    ok_at(&work, &[], &["delete", "--force", &f2]);
    assert!(!data.join(format!("containers/{f2}")).exists());

    // An unknown setting is refused, leaving nothing.
    let bad = husk_at(
        &work,
        &[("HUSK_IMAGE_ROOT", "bind")],
        &["run", "--image", "layered", &f3, "true"],
    );
    assert_eq!(
        bad.err,
        "husk: HUSK_IMAGE_ROOT is overlay, copy or auto, not \"bind\"\n"
    );
    assert_eq!(fs::read_dir(data.join("containers")).unwrap().count(), 0);
    fs::remove_dir_all(&work).unwrap();
}
