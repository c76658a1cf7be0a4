"""Prepares a guest for one architecture and boots it until every selected
scenario has an outcome.

One boot runs the scenarios in order. When a scenario hangs, panics the kernel or
kills the guest, that scenario fails and the guest is booted again for the ones
that had not begun, so one broken scenario cannot hide the others.
"""

import os
import queue
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

from . import board as board_mod, debian, initramfs, updates
from .session import Outcome, Session

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUEST_DIR = os.path.join(HERE, "guest")
# Kernel modules the scenarios need, loaded at boot (built-ins are skipped):
# the last ones are the powercut scenario's virtio disks and their ext4
# (crc32c is asked for at mount time, by name, so it is named here).
MODULES = ("overlay", "squashfs", "loop", "veth", "bridge",
           "virtio_mmio", "virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
# Applets linked in the container test root filesystem.
ROOTFS_APPLETS = (
    "sh", "cat", "echo", "hostname", "ls", "mkdir", "mount", "readlink", "sleep",
    "touch", "true", "false", "id", "ps", "grep", "env", "test", "rm", "uname",
    "seq", "head", "tr", "wc", "kill", "unshare",
)


@dataclass
class Guest:
    """Everything needed to boot one architecture."""

    board: object
    kernel: dict
    busybox_version: str
    initrd: str
    busybox: str  # the static busybox (host path) the guest and its test images use


@dataclass
class ArchResult:
    arch: str
    kernel: str | None = None
    kernel_package: str | None = None
    outcomes: list = field(default_factory=list)
    error: str | None = None  # the lab itself failed before any scenario could run
    boots: int = 0


def host_tool_files(names):
    """{guest path: host file} for host programs and their shared libraries.

    Only for a guest of the host's own architecture: the side-by-side peers of
    the benchmarks (crun, runc) come from the host's Debian packages, with the
    libraries `ldd` names, at the same paths.
    """
    files = {}
    for name in names:
        path = shutil.which(name)
        if not path:
            raise RuntimeError(f"host tool {name} not found (apt-get install {name})")
        files[path] = os.path.realpath(path)
        out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        for line in out.splitlines():
            lib = line.split("=>")[-1].split("(")[0].strip()
            if lib.startswith("/"):
                files[lib] = os.path.realpath(lib)
    return files


def prepare(board, cache, husk_dir, scenarios, out_dir, log, host_tools=(), publisher=None):
    """Fetches the kernel and busybox and writes the initramfs. With
    `publisher` (husk-publish) and the `update` scenario selected, the update
    repository that scenario serves is published for this architecture."""
    arch_cache = os.path.join(cache, "lab", board.arch)
    os.makedirs(arch_cache, exist_ok=True)
    apt = debian.AptTree(cache, board.debian_suite, board.debian_arch, log)
    kernel = debian.prepare_kernel(apt, board.kernel_package, board.kernel_image, MODULES, arch_cache)
    busybox, bb_version = debian.prepare_busybox(apt, arch_cache)

    cpio = initramfs.Cpio()
    cpio.char_device("dev/console", 5, 1)
    cpio.char_device("dev/null", 1, 3, 0o666)
    for d in ("proc", "sys", "tmp", "run", "newroot", "var/lib/husk"):
        cpio.dir(d)
    cpio.host_file("bin/busybox", busybox, 0o755)
    cpio.host_file("init", os.path.join(GUEST_DIR, "init"), 0o755)
    cpio.host_file("lab/stage2", os.path.join(GUEST_DIR, "stage2"), 0o755)
    cpio.host_file("lab/lib.sh", os.path.join(GUEST_DIR, "lib.sh"), 0o644)
    for name in sorted(os.listdir(husk_dir)):
        cpio.host_file(f"usr/bin/{name}", os.path.join(husk_dir, name), 0o755)
    for name, path in sorted(scenarios.items()):
        cpio.host_file(f"lab/scenarios/{name}.sh", path, 0o755)
    order = []
    for mod in kernel["modules"]:
        cpio.host_file(f"lab/modules/{os.path.basename(mod)}", mod, 0o644)
        order.append(os.path.basename(mod))
    cpio.file("lab/modules/order", ("\n".join(order) + "\n").encode())
    # Where Debian installs it: husk check reads the kernel's config there.
    cpio.host_file(f"boot/config-{kernel['release']}", kernel["config"], 0o644)
    # The board files (kernel fragments, init scripts) and which board this is,
    # for the check and initscript scenarios.
    cpio.host_tree("lab/board-configs", board_mod.BOARD_DIR)
    cpio.file("lab/board", f"qemu-{board.arch}\n".encode())
    for guest_path, host_path in sorted(host_tool_files(host_tools).items()):
        cpio.host_file(guest_path, host_path)
    # The container test root filesystem: the same static busybox.
    cpio.host_file("lab/rootfs/bin/busybox", busybox, 0o755)
    for applet in ROOTFS_APPLETS:
        cpio.symlink(f"lab/rootfs/bin/{applet}", "busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        cpio.dir(f"lab/rootfs/{d}")
    cpio.file("lab/rootfs/etc/passwd", b"root:x:0:0:root:/:/bin/sh\n")
    cpio.file("lab/rootfs/etc/group", b"root:x:0:\n")
    if publisher and "update" in scenarios:
        published = updates.publish(publisher, board.arch, busybox,
                                    os.path.join(out_dir, "update-repo"), log)
        for guest_path, host_path in sorted(published.items()):
            if os.path.isdir(host_path):
                cpio.host_tree(guest_path, host_path)
            else:
                cpio.host_file(guest_path, host_path, 0o644)

    os.makedirs(out_dir, exist_ok=True)
    initrd = os.path.join(out_dir, "initrd.gz")
    with open(initrd + ".tmp", "wb") as f:
        f.write(cpio.gzip_bytes())
    os.rename(initrd + ".tmp", initrd)
    return Guest(board, kernel, bb_version, initrd, busybox)


def _reader(stream, lines, console_log, echo):
    with open(console_log, "ab") as log:
        for raw in iter(stream.readline, b""):
            log.write(raw)
            log.flush()
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if echo:
                echo(line)
            lines.put(line)
    lines.put(None)


def boot_once(guest, scenarios, timeouts, boot_timeout, console_log, echo=None):
    """Boots the guest once for the given scenarios and returns the session."""
    token = secrets.token_hex(6)
    append = f"quiet panic=-1 husk.token={token} husk.scenarios={','.join(scenarios)}"
    cmd = guest.board.qemu_command(guest.kernel["kernel"], guest.initrd, append)
    if not shutil.which(cmd[0]):
        raise RuntimeError(f"{cmd[0]} not found: run qemu-tests/deps.sh")
    with open(console_log, "ab") as log:
        log.write(f"\n=== {' '.join(cmd)}\n".encode())
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = queue.Queue()
    reader = threading.Thread(target=_reader, args=(proc.stdout, lines, console_log, echo), daemon=True)
    reader.start()
    session = Session(token, list(scenarios), timeouts, boot_timeout, time.monotonic())
    over = False
    try:
        while not over:
            deadline = session.deadline()
            wait = max(0.0, deadline - time.monotonic()) if deadline else 1.0
            try:
                line = lines.get(timeout=min(wait, 1.0))
            except queue.Empty:
                over = session.tick(time.monotonic())
                continue
            if line is None:
                session.guest_exited(proc.wait(), time.monotonic())
                break
            over = session.feed(line, time.monotonic()) or session.tick(time.monotonic())
        if session.finished:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
    return session


def run_arch(guest, scenarios, timeouts, boot_timeout, console_log, echo=None):
    """Boots as often as needed for every scenario to get an outcome."""
    result = ArchResult(guest.board.arch, kernel_package=f"{guest.kernel['package']} {guest.kernel['version']}")
    pending = list(scenarios)
    while pending:
        result.boots += 1
        session = boot_once(guest, pending, timeouts, boot_timeout, console_log, echo)
        result.kernel = result.kernel or session.kernel
        result.outcomes += session.outcomes
        left = session.pending()
        if not session.outcomes and left:
            # Nothing ran in this boot: booting again would fail the same way.
            why = session.broken or "guest ended before running any scenario"
            if not session.booted:
                why = f"boot failed: {why}"
            result.outcomes += [Outcome(s, "fail", why, 0.0) for s in left]
            break
        if session.finished and left:
            result.outcomes += [Outcome(s, "fail", "guest finished without running it", 0.0) for s in left]
            break
        pending = left
    return result
