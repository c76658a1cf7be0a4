"""Debian kernels and busybox-static for a guest architecture.

Packages are resolved and downloaded with apt through a private configuration per
(suite, architecture) under the cache, so the host's dpkg architecture list and
apt state are never changed. apt verifies the repository signatures with the
system keyring as usual. Everything is cached between runs: the package lists for
a day, the .deb files and what is extracted from them until the version changes.
"""

import glob
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import time

LISTS_MAX_AGE_S = 24 * 3600
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class FetchError(Exception):
    pass


def mirror_uri():
    """The machine's own Debian mirror (never a hard-coded host)."""
    sources = "/etc/apt/sources.list.d/debian.sources"
    if os.path.exists(sources):
        for line in open(sources):
            m = re.match(r"URIs:\s*(\S+)", line)
            if m and "security" not in m.group(1):
                return m.group(1)
    if os.path.exists("/etc/apt/sources.list"):
        for line in open("/etc/apt/sources.list"):
            m = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if m and "security" not in m.group(1):
                return m.group(1)
    raise FetchError("cannot find the machine's Debian mirror in /etc/apt")


def security_uri():
    """The machine's Debian security mirror (bookworm-security's), or None."""
    sources = "/etc/apt/sources.list.d/debian.sources"
    if os.path.exists(sources):
        for line in open(sources):
            m = re.match(r"URIs:\s*(\S+)", line)
            if m and "security" in m.group(1):
                return m.group(1)
    if os.path.exists("/etc/apt/sources.list"):
        for line in open("/etc/apt/sources.list"):
            m = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if m and "security" in m.group(1):
                return m.group(1)
    return None


class AptTree:
    """A private apt state for one suite and architecture (from the machine's
    mirror, or `uri`: its security mirror for a -security suite)."""

    def __init__(self, cache, suite, arch, log, uri=None):
        self.suite, self.arch, self.log = suite, arch, log
        self.dir = os.path.join(cache, "apt", f"{suite}-{arch}")
        os.makedirs(os.path.join(self.dir, "lists", "partial"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "cache", "archives", "partial"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "debs"), exist_ok=True)
        with open(os.path.join(self.dir, "sources.list"), "w") as f:
            f.write(f"deb [signed-by={KEYRING}] {uri or mirror_uri()} {suite} main\n")
        # An empty dpkg status: else the host's installed version of a package
        # (say liblzma5 from bookworm-security) becomes the candidate, and the
        # mirror of this tree has no such version to download.
        open(os.path.join(self.dir, "status"), "a").close()

    def _opts(self):
        d = self.dir
        return [
            "-o", f"Dir::Etc::SourceList={d}/sources.list",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", "Dir::Etc::Preferences=/dev/null",
            "-o", "Dir::Etc::PreferencesParts=/dev/null",
            "-o", f"Dir::State::Lists={d}/lists",
            "-o", f"Dir::State::status={d}/status",
            "-o", f"Dir::Cache={d}/cache",
            "-o", f"APT::Architecture={self.arch}",
            "-o", f"APT::Architectures={self.arch}",
        ]

    def _run(self, tool, *args, cwd=None):
        cmd = [tool, *self._opts(), *args]
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise FetchError(f"{tool} {' '.join(args)} ({self.suite}/{self.arch}): {last}")
        return r.stdout

    def update(self):
        stamp = os.path.join(self.dir, "updated")
        if os.path.exists(stamp) and time.time() - os.path.getmtime(stamp) < LISTS_MAX_AGE_S:
            return
        self.log(f"apt-get update for {self.suite}/{self.arch}")
        self._run("apt-get", "-qq", "update")
        open(stamp, "w").close()

    def resolve(self, package):
        """Follows a metapackage such as linux-image-arm64 to the versioned kernel package."""
        out = self._run("apt-cache", "depends", package)
        for line in out.splitlines():
            m = re.match(r"\s*\|?Depends:\s*(linux-image-\S+)", line)
            if m:
                return m.group(1)
        return package

    def packages_of_priority(self, priority):
        """The names of the suite's packages of `priority` (e.g. required)."""
        names, name = set(), None
        for line in self._run("apt-cache", "dumpavail").splitlines():
            if line.startswith("Package: "):
                name = line.split()[1]
            elif line.startswith("Priority: ") and line.split()[1] == priority and name:
                names.add(name)
        return sorted(names)

    def closure(self, packages):
        """`packages` and everything they depend on (not recommends), as
        apt-get would install them on an empty system: the names."""
        out = self._run("apt-get", "-s", "-qq", "-o", "APT::Install-Recommends=false",
                        "install", *packages)
        return sorted({m.group(1) for m in re.finditer(r"^Inst (\S+)", out, re.M)})

    def version(self, package):
        out = self._run("apt-cache", "show", "--no-all-versions", package)
        m = re.search(r"^Version:\s*(\S+)", out, re.M)
        if not m:
            raise FetchError(f"apt-cache show {package}: no version ({self.suite}/{self.arch})")
        return m.group(1)

    def download(self, package):
        """Returns (path to the .deb, version), downloading only if not cached."""
        version = self.version(package)
        debs = os.path.join(self.dir, "debs")
        name = f"{package}_{version.replace(':', '%3a')}_{self.arch}.deb"
        path = os.path.join(debs, name)
        if not os.path.exists(path):
            self.log(f"downloading {package} {version} ({self.arch})")
            with tempfile.TemporaryDirectory(dir=debs) as tmp:
                self._run("apt-get", "-qq", "download", f"{package}={version}", cwd=tmp)
                got = glob.glob(os.path.join(tmp, "*.deb"))
                if len(got) != 1:
                    raise FetchError(f"apt-get download {package}: expected one .deb, found {len(got)}")
                os.rename(got[0], path)
            for old in glob.glob(os.path.join(debs, f"{package}_*.deb")):
                if old != path:
                    os.remove(old)
        return path, version


def _extract(deb, dest):
    r = subprocess.run(["dpkg-deb", "-x", deb, dest], capture_output=True, text=True)
    if r.returncode != 0:
        raise FetchError(f"dpkg-deb -x {os.path.basename(deb)}: {r.stderr.strip()}")


def _module_name(path):
    base = os.path.basename(path)
    base = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base)
    return base.replace("-", "_")


def _depends(data):
    """The `depends=` list of a module's .modinfo strings."""
    m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", data)
    return [d for d in m.group(1).decode().split(",") if d] if m else []


def _read_module(path):
    if path.endswith(".xz"):
        with lzma.open(path) as f:
            return f.read()
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-q", "-d", "-c", path], check=True, capture_output=True).stdout
    if path.endswith(".gz"):
        import gzip

        with gzip.open(path) as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def _load_order(moddir, wanted):
    """[(name, uncompressed bytes)] of the modules to load, dependencies first.

    modules.dep is made by depmod at install time and is not in the package, so
    dependencies come from each module's own .modinfo `depends=`. Built-ins
    (modules.builtin, shipped in the package) are skipped.
    """
    by_name = {}
    for top, _dirs, files in os.walk(moddir):
        for f in files:
            if re.search(r"\.ko(\.(xz|zst|gz))?$", f):
                by_name[_module_name(f)] = os.path.join(top, f)
    builtin = set()
    bpath = os.path.join(moddir, "modules.builtin")
    if os.path.exists(bpath):
        builtin = {_module_name(line.strip()) for line in open(bpath) if line.strip()}
    order, seen = [], set()

    def visit(name):
        key = name.replace("-", "_")
        if key in seen:
            return
        seen.add(key)
        if key not in by_name:
            if key in builtin:
                return
            raise FetchError(f"kernel module {name} is neither a module nor built in")
        data = _read_module(by_name[key])
        for dep in _depends(data):
            visit(dep)
        order.append((key, data))

    for name in wanted:
        visit(name)
    return order


def prepare_kernel(apt, meta_package, image_glob, modules, out_root):
    """Resolves, downloads and unpacks a kernel: returns a dict with the image path,
    the kernel release, its build config (/boot/config-<release>) and the module
    files to load in order."""
    apt.update()
    package = apt.resolve(meta_package)
    deb, version = apt.download(package)
    out = os.path.join(out_root, f"{package}_{version.replace(':', '%3a')}")
    ready = os.path.join(out, "kernel.json")
    if os.path.exists(ready):
        with open(ready) as f:
            info = json.load(f)
        if info.get("modules_wanted") == list(modules) and "config" in info:
            return info
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "modules"))
    with tempfile.TemporaryDirectory(dir=out_root) as tmp:
        _extract(deb, tmp)
        images = sorted(glob.glob(tmp + image_glob))
        if not images:
            raise FetchError(f"{package}: no kernel image matching {image_glob}")
        shutil.copyfile(images[0], os.path.join(out, "kernel"))
        moddirs = sorted(glob.glob(f"{tmp}/lib/modules/*") + glob.glob(f"{tmp}/usr/lib/modules/*"))
        if len(moddirs) != 1:
            raise FetchError(f"{package}: expected one /lib/modules/<release>, found {len(moddirs)}")
        release = os.path.basename(moddirs[0])
        config = f"{tmp}/boot/config-{release}"
        if not os.path.exists(config):
            raise FetchError(f"{package}: no /boot/config-{release} in the package")
        shutil.copyfile(config, os.path.join(out, "config"))
        loaded = []
        for name, data in _load_order(moddirs[0], modules):
            with open(os.path.join(out, "modules", name + ".ko"), "wb") as f:
                f.write(data)
            loaded.append(name + ".ko")
    info = {
        "package": package,
        "version": version,
        "release": release,
        "kernel": os.path.join(out, "kernel"),
        "config": os.path.join(out, "config"),
        "modules": [os.path.join(out, "modules", m) for m in loaded],
        "modules_wanted": list(modules),
    }
    with open(ready + ".tmp", "w") as f:
        json.dump(info, f, indent=1)
    os.rename(ready + ".tmp", ready)
    for old in glob.glob(os.path.join(out_root, "linux-image-*")):
        if old != out:
            shutil.rmtree(old, ignore_errors=True)
    return info


def prepare_busybox(apt, out_root):
    """Downloads busybox-static and returns the path of its static busybox binary."""
    apt.update()
    deb, version = apt.download("busybox-static")
    out = os.path.join(out_root, f"busybox_{version.replace(':', '%3a')}")
    binary = os.path.join(out, "busybox")
    if not os.path.exists(binary):
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_root) as tmp:
            _extract(deb, tmp)
            found = [p for p in (f"{tmp}/bin/busybox", f"{tmp}/usr/bin/busybox") if os.path.exists(p)]
            if not found:
                raise FetchError("busybox-static: no bin/busybox in the package")
            shutil.copyfile(found[0], binary + ".tmp")
            os.chmod(binary + ".tmp", 0o755)
            os.rename(binary + ".tmp", binary)
    return binary, version
