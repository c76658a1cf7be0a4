"""The update repository the `update` scenario serves inside the guest.

Published here on the host with husk-publish, from images made of this
architecture's busybox (docker save archives), as a fleet operator would:

  r1        release 1: image `app` = a base layer (busybox, 2 MiB of data)
            and a top layer (/etc/version, /www); healthy (HTTP check)
  r2        release 2: 1 % of the data changed, one applet more: deltas, all
            zstd-patch (else bsdiff wins here, and the PATCH decoder would
            run in no guest)
  r3        release 3: its health check never passes (rolled back)
  expired   the timestamp re-signed with no time left
  tampered  release 4, whose new blobs the guest corrupts before serving

Each snapshot holds the metadata as served after that step; the blobs of
all of them are one shared tree (`blobs/`), which the guest links in.
"""

import io
import os
import random
import shutil
import subprocess
import tarfile
import json
import hashlib

RUST_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64", "armv7": "arm", "riscv64": "riscv64"}
OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7": "arm", "riscv64": "riscv64"}
APPLETS = ("sh", "cat", "echo", "sleep", "true", "false", "httpd", "ls", "wget")
DATA_SIZE = 2 << 20
CLASS = "lab"
HARDWARE = "qemu"


def publisher(root, log, build=True):
    """The husk-publish binary of this checkout, built (release, host); with
    `build` false, the one already built is used as it is (the lab's
    --no-build), and built only if missing."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target")
    path = os.path.join(target, "release", "husk-publish")
    if not build and os.path.exists(path):
        log(f"using {path} as it is (--no-build)")
        return path
    log("building husk-publish for the host (cargo build --release)")
    subprocess.run(["cargo", "build", "--quiet", "--release", "--locked", "-p", "delta-updater",
                    "--bin", "husk-publish"], cwd=root, check=True)
    return path


def _tar(entries):
    """A deterministic tar: entries are (name, bytes | None for a dir | str for a symlink)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 0
            info.mtime = 0
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def _data(changed):
    """2 MiB of incompressible bytes; `changed` rewrites 1 % of them."""
    rng = random.Random(7)
    data = bytearray(rng.randbytes(DATA_SIZE))
    if changed:
        for start in range(0, DATA_SIZE, DATA_SIZE // 16):
            data[start:start + DATA_SIZE // 1600] = rng.randbytes(DATA_SIZE // 1600)
    return bytes(data)


def _image(path, arch, busybox, version, extra_applets, health_ok, big=None):
    """Writes a docker save archive of `app` to `path`; returns the desired
    state that runs it. `big` is an optional layer tar between the base
    and the top layer (the powercut series' real-size layer)."""
    base = [("bin", None), ("bin/busybox", busybox)]
    base += [(f"bin/{a}", "busybox") for a in APPLETS + extra_applets]
    base += [(d, None) for d in ("proc", "sys", "dev", "tmp", "etc", "opt")]
    base += [("etc/passwd", b"root:x:0:0:root:/:/bin/sh\n"), ("opt/data.bin", _data(version > 1))]
    top = [("etc", None), ("etc/version", f"{version}\n".encode()),
           ("www", None), ("www/index.html", f"release {version}\n".encode())]
    layers = [_tar(base)] + ([big] if big is not None else []) + [_tar(top)]
    diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
    config = json.dumps({
        "architecture": OCI_ARCH[arch], "os": "linux",
        "config": {"Env": ["PATH=/bin"],
                   "Cmd": ["sh", "-c", "echo release $(cat /etc/version); "
                           "exec httpd -f -p 127.0.0.1:8081 -h /www"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}, separators=(",", ":")).encode()
    cfg = hashlib.sha256(config).hexdigest()
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    manifest = json.dumps([{"Config": f"{cfg}.json", "RepoTags": [f"app:{version}"],
                            "Layers": names}]).encode()
    entries = [("manifest.json", manifest), (f"{cfg}.json", config)]
    for name, layer in zip(names, layers):
        entries += [(os.path.dirname(name), None), (name, layer)]
    archive = _tar(entries)
    with open(path, "wb") as f:
        f.write(archive)
    health = ({"http": {"port": 8081, "path": "/index.html"}} if health_ok
              else {"exec": ["false"]})
    health.update({"interval": "1s", "timeout": "5s", "retries": 2, "startPeriod": "2s"})
    return {"containers": [{"name": "app", "image": "app", "restart": "always",
                            "backoff": {"initial": "500ms", "max": "2s"}, "health": health}]}


def _snapshot(served, dest):
    os.makedirs(dest)
    for name in ("root.json", "timestamp.json"):
        shutil.copy(os.path.join(served, name), dest)
    for name in ("root", "releases"):
        shutil.copytree(os.path.join(served, name), os.path.join(dest, name))


def publish(tool, arch, busybox_path, work, log):
    """Publishes the releases into `work`; returns {guest dir: host dir}."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    with open(busybox_path, "rb") as f:
        busybox = f.read()
    repo = os.path.join(work, "publisher")
    served = os.path.join(repo, "repo")
    run = lambda *args: subprocess.run([tool, *args], check=True, stdout=subprocess.DEVNULL)
    run("init", repo)
    snaps = os.path.join(work, "snapshots")
    steps = [("r1", 1, (), True), ("r2", 2, ("head",), True), ("r3", 3, ("head",), False),
             ("expired", None, None, None), ("tampered", 4, ("head", "tail"), True)]
    deltas = {2: ("--delta", "zstd-patch")}
    for name, version, extra, healthy in steps:
        if version is None:
            run("timestamp", repo, "--expires-hours", "0")
        else:
            image = os.path.join(work, f"app{version}.tar")
            desired = _image(image, arch, busybox, version, extra, healthy)
            desired_path = os.path.join(work, f"desired{version}.json")
            with open(desired_path, "w") as f:
                json.dump(desired, f)
            log(f"publishing release {version} for {arch}")
            run("release", repo, "--class", CLASS, "--arch", RUST_ARCH[arch], "--hardware",
                HARDWARE, "--desired-state", desired_path, "--image", f"app={image}",
                *deltas.get(version, ()))
        _snapshot(served, os.path.join(snaps, name))
    trusted = os.path.join(work, "root.json")
    shutil.copy(os.path.join(snaps, "r1", "root", "1.json"), trusted)
    return {"lab/update/snapshots": snaps, "lab/update/blobs": os.path.join(served, "blobs"),
            "lab/update/root.json": trusted}


# The powercut series: one file of the real-size layer per MiB.
SERIES_FILE = 1 << 20
SERIES_VARIANTS = 3


def _big_layer(files, variant):
    """The real-size layer: `files` incompressible 1 MiB files, in one of
    three variants that each rewrite 1 % of four files. Release k carries
    variant k % 3, so that its layer is neither the device's current one
    nor its previous one: every update rebuilds the whole layer from a
    per-file delta."""
    rng = random.Random(11)
    entries = [("opt", None), ("opt/big", None)]
    for i in range(files):
        data = bytearray(rng.randbytes(SERIES_FILE))
        if i // 4 == variant % (files // 4):
            vr = random.Random(100 + variant)
            for at in range(0, SERIES_FILE, SERIES_FILE // 8):
                data[at:at + SERIES_FILE // 800] = vr.randbytes(SERIES_FILE // 800)
        entries.append((f"opt/big/f{i:03}.bin", bytes(data)))
    return _tar(entries)


def publish_series(tool, arch, busybox_path, work, releases, layer_mib, log):
    """Publishes releases 1..`releases` of `app` with a `layer_mib` MiB layer
    into `work`, for the powercut scenario; returns the directory that
    becomes its repository disk:

      root.json          the trusted root the device is provisioned with
      served/            the repository as served, without timestamp.json
      timestamps/K.json  the timestamp that makes release K the newest
      layer-mib          the real-size layer's size in MiB (one line)

    Releases are immutable files, so one tree serves them all; which one is
    newest is only the timestamp the guest puts beside them.
    """
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    with open(busybox_path, "rb") as f:
        busybox = f.read()
    repo = os.path.join(work, "publisher")
    served = os.path.join(repo, "repo")
    run = lambda *args: subprocess.run([tool, *args], check=True, stdout=subprocess.DEVNULL)
    run("init", repo)
    disk = os.path.join(work, "disk")
    os.makedirs(os.path.join(disk, "timestamps"))
    files = max(4 * SERIES_VARIANTS, layer_mib)
    big = [_big_layer(files, v) for v in range(SERIES_VARIANTS)]
    log(f"publishing {releases} releases with a {files} MiB layer for {arch}")
    for version in range(1, releases + 1):
        image = os.path.join(work, "app.tar")
        desired = _image(image, arch, busybox, version, (), True,
                         big=big[version % SERIES_VARIANTS])
        desired_path = os.path.join(work, "desired.json")
        with open(desired_path, "w") as f:
            json.dump(desired, f)
        run("release", repo, "--class", CLASS, "--arch", RUST_ARCH[arch], "--hardware",
            HARDWARE, "--desired-state", desired_path, "--image", f"app={image}")
        shutil.copy(os.path.join(served, "timestamp.json"),
                    os.path.join(disk, "timestamps", f"{version}.json"))
    os.remove(os.path.join(work, "app.tar"))
    shutil.copy(os.path.join(served, "root", "1.json"), os.path.join(disk, "root.json"))
    with open(os.path.join(disk, "layer-mib"), "w") as f:
        f.write(f"{files}\n")
    shutil.copytree(served, os.path.join(disk, "served"), ignore=shutil.ignore_patterns("timestamp.json"))
    return disk
