"""The powercut scenario's driver: boots one guest many times on the same
disks and cuts its power at random moments of an update.

The guest side is qemu-tests/scenarios/powercut.sh; each boot it prints

    HUSK-LAB:<token>:POWERCUT release=N     the release it found and checked
    HUSK-LAB:<token>:CUT-OPEN release=T     the daemon starts updating to T
    HUSK-LAB:<token>:CUT-CLOSE release=T    T is committed, healthy

besides the lab's usual READY/BEGIN/END/DONE markers, and after CUT-CLOSE a
`BENCH-JSON {"apply_rss_kib": ...}` line: the peak RSS of the process that
applied the update (`apply_figures`). Boot 1 provisions a
fresh data disk and installs release 1 whole; boot 2 installs release 2 as
deltas and measures the window; each of the next `cuts` boots is killed
(SIGKILL to QEMU: the guest's page cache is lost, as in a power cut) at a
moment drawn uniformly from that window; a last boot is left to finish.
Each boot first checks what the one before left: a cut boot must leave
release T-1 (old) or T (new), running and healthy; anything else is broken.

`Tally` is pure logic, tested without booting anything.
"""

import json
import os
import queue
import random
import re
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

from . import runner, updates
from .session import PANIC, Outcome

DEFAULT_LAYER_MIB = 36
# The data disk of a run with the default layer; a bigger layer gets more.
DATA_DISK_MIB = 768


def data_disk_mib(layer_mib):
    """The data disk's size for a `layer_mib` MiB layer: during an update
    the device holds three versions of it (current, previous, new), each as
    a tar and extracted: 6 x the layer, plus room for ext4 and the rest."""
    return max(DATA_DISK_MIB, 7 * layer_mib + 128)


def scaled_timeout(seconds, layer_mib):
    """The scenario's timeout, declared for the default layer, grown in
    proportion for a bigger one (the guest's waits grow alike)."""
    return seconds * max(layer_mib, DEFAULT_LAYER_MIB) // DEFAULT_LAYER_MIB


def apply_figures(line):
    """The figures of one measured update from a console line (the
    scenario's `BENCH-JSON {"apply_rss_kib": ...}`), or None."""
    if not line.startswith("BENCH-JSON "):
        return None
    try:
        obj = json.loads(line[len("BENCH-JSON "):])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "apply_rss_kib" in obj else None


def apply_text(figures):
    """One short line of an update's measured figures."""
    rss = figures.get("apply_rss_kib")
    how = "by delta" if figures.get("deltas") else "whole"
    text = f"apply peak RSS {rss:,} KiB" if isinstance(rss, int) else "apply peak RSS not measured"
    return f"{text} ({figures.get('layer_mib', '?')} MiB layer {how}, {figures.get('seconds', '?')} s)"


@dataclass
class Boot:
    """What one boot printed."""

    found: int | None = None  # POWERCUT release=N
    target: int | None = None  # CUT-OPEN release=T
    opened: float | None = None
    closed: float | None = None
    rc: int | None = None  # END powercut rc=
    skip: str | None = None
    cut_at: float | None = None  # seconds after CUT-OPEN the power was cut
    kernel: str | None = None  # uname -r, from READY
    broken: str | None = None  # the boot went wrong without a cut
    apply: dict | None = None  # the measured update's figures (apply_figures)


@dataclass
class Tally:
    """Judges the boots in order; `problems` empty means every boot found
    one consistent, healthy release."""

    cuts: int = 0
    old: int = 0
    new: int = 0
    problems: list = field(default_factory=list)
    window: float | None = None
    cut_moments: list = field(default_factory=list)
    _expect: tuple = (0,)  # the releases the next boot may find
    _cut_target: int | None = None

    def boot(self, n, b):
        if b.found is None:
            self.problems.append(f"boot {n}: did not report its release"
                                 + (f" ({b.broken})" if b.broken else ""))
            return False
        if b.found not in self._expect:
            want = " or ".join(str(r) for r in self._expect)
            self.problems.append(f"boot {n}: found release {b.found}, expected {want}")
            return False
        if self._cut_target is not None:
            if b.found == self._cut_target:
                self.new += 1
            else:
                self.old += 1
        self._cut_target = None
        if b.cut_at is not None:
            if b.target is None:
                self.problems.append(f"boot {n}: cut before the update began")
                return False
            self.cuts += 1
            self.cut_moments.append(b.cut_at)
            self._cut_target = b.target
            self._expect = (b.target - 1, b.target)
            return True
        if b.rc != 0 or b.closed is None or b.target is None:
            why = b.broken or (f"scenario exited with status {b.rc}" if b.rc is not None
                               else "it never finished its update")
            self.problems.append(f"boot {n}: {why}")
            return False
        if b.target == 2 or self.window is None:
            self.window = b.closed - b.opened
        self._expect = (b.target,)
        return True

    def summary(self):
        text = f"{self.cuts} power cut(s): {self.old} on the old release, {self.new} on the new"
        text += f", {len(self.problems)} broken"
        if self.cut_moments:
            text += (f" (cut {min(self.cut_moments):.1f} to {max(self.cut_moments):.1f} s"
                     f" into a {self.window:.1f} s update)")
        return text


def declared_cuts(path):
    """The `# powercut: N` line of a scenario script, or None: such a
    scenario is run by this driver, not in the lab's one-boot sessions."""
    with open(path) as f:
        for line in f.readlines()[:5]:
            m = re.match(r"#\s*powercut:\s*(\d+)", line)
            if m:
                return int(m.group(1))
    return None


def make_disks(work, repo_dir, log, data_mib=DATA_DISK_MIB):
    """A fresh ext4 data disk of `data_mib` MiB and the repository disk, as
    raw images (sparse: only what is written takes room)."""
    for tool in ("mkfs.ext4",):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (apt-get install e2fsprogs)")
    data = os.path.join(work, "data.img")
    repo = os.path.join(work, "repo.img")
    for path in (data, repo):
        if os.path.exists(path):
            os.remove(path)
    with open(data, "wb") as f:
        f.truncate(data_mib << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "husk-data", data], check=True)
    used = sum(os.path.getsize(os.path.join(top, f)) for top, _, files in os.walk(repo_dir)
               for f in files)
    mib = used * 5 // 4 // (1 << 20) + 32
    with open(repo, "wb") as f:
        f.truncate(mib << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "husk-repo", "-d", repo_dir, repo], check=True)
    log(f"powercut: data disk {data_mib} MiB, repository disk {mib} MiB")
    return [(data, False), (repo, True)]


def boot(guest, disks, cut_after, script_timeout, boot_timeout, console_log, echo=None):
    """Boots once for the powercut scenario; with `cut_after`, kills QEMU
    that many seconds after CUT-OPEN (or at once if the window already
    closed). Returns the Boot."""
    token = secrets.token_hex(6)
    append = f"quiet panic=-1 husk.token={token} husk.scenarios=powercut"
    cmd = guest.board.qemu_command(guest.kernel["kernel"], guest.initrd, append, disks)
    with open(console_log, "ab") as log:
        log.write(f"\n=== {' '.join(cmd)}\n".encode())
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    lines = queue.Queue()
    reader = threading.Thread(target=runner._reader, args=(proc.stdout, lines, console_log, echo),
                              daemon=True)
    reader.start()
    marker = re.compile(rf"HUSK-LAB:{re.escape(token)}:(\S+)(?: (.*))?$")
    b = Boot()
    deadline = time.monotonic() + boot_timeout
    try:
        while True:
            now = time.monotonic()
            if b.opened is not None and cut_after is not None and now >= b.opened + cut_after:
                proc.kill()
                b.cut_at = now - b.opened
                break
            if now >= deadline:
                b.broken = "timed out (guest hung or the scenario never ended)"
                break
            wait = deadline - now
            if b.opened is not None and cut_after is not None:
                wait = min(wait, b.opened + cut_after - now)
            try:
                line = lines.get(timeout=max(0.0, min(wait, 1.0)))
            except queue.Empty:
                continue
            if line is None:
                b.broken = b.broken or f"guest stopped (qemu exit status {proc.wait()})"
                break
            if PANIC.search(line):
                b.broken = f"kernel panic: {PANIC.search(line).group(0).strip()}"
            if line.startswith("SKIP: "):
                b.skip = line[len("SKIP: "):].strip()
            figures = apply_figures(line)
            if figures is not None:
                b.apply = figures
            m = marker.search(line)
            if not m:
                continue
            kind, rest = m.group(1), m.group(2) or ""
            value = re.search(r"release=(\d+)", rest)
            if kind == "READY":
                k = re.search(r"kernel=(\S+)", rest)
                b.kernel = k.group(1) if k else "?"
            elif kind == "BEGIN":
                deadline = time.monotonic() + script_timeout
            elif kind == "POWERCUT" and value:
                b.found = int(value.group(1))
            elif kind == "CUT-OPEN" and value:
                b.target, b.opened = int(value.group(1)), time.monotonic()
            elif kind == "CUT-CLOSE":
                b.closed = time.monotonic()
            elif kind == "END":
                rc = re.search(r"rc=(-?\d+)", rest)
                b.rc = int(rc.group(1)) if rc else -1
                if cut_after is not None and b.rc == 0:
                    # The window closed before the cut: cut now, at its end.
                    proc.kill()
                    b.cut_at = time.monotonic() - (b.opened or time.monotonic())
                    break
            elif kind == "DONE":
                break
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
    return b


def run(guest, publisher, cuts, layer_mib, script_timeout, boot_timeout, out_dir, console_log,
        log, echo=None, rng=None):
    """Runs the powercut scenario on one architecture; returns its Outcome,
    the kernel release the guest reported and how many boots it made."""
    rng = rng or random.Random()
    started = time.monotonic()
    work = os.path.join(out_dir, "powercut")
    # Every boot's target is one above what it found: at most one per boot.
    releases = cuts + 3
    repo_dir = updates.publish_series(publisher, guest.board.arch, guest.busybox,
                                      os.path.join(work, "repo"), releases, layer_mib, log)
    disks = make_disks(work, repo_dir, log, data_disk_mib(layer_mib))
    script_timeout = scaled_timeout(script_timeout, layer_mib)
    tally = Tally()
    kernel = None
    for n in range(1, cuts + 4):
        cut_after = None
        if 3 <= n <= cuts + 2:
            cut_after = rng.uniform(0.0, tally.window)
        b = boot(guest, disks, cut_after, script_timeout, boot_timeout, console_log, echo)
        kernel = kernel or b.kernel
        if b.skip and b.found is None:
            return Outcome("powercut", "skip", b.skip, time.monotonic() - started), kernel, n
        ok = tally.boot(n, b)
        what = (f"cut {b.cut_at:.1f} s into the update to release {b.target}"
                if b.cut_at is not None else f"updated to release {b.target}")
        if b.apply is not None:
            what += f"; {apply_text(b.apply)}"
        log(f"powercut: boot {n}: found release {b.found}, {what}")
        if not ok:
            break
    status = "fail" if tally.problems or tally.cuts < cuts else "pass"
    reason = tally.summary()
    if tally.problems:
        reason += ": " + "; ".join(tally.problems)
    return Outcome("powercut", status, reason, time.monotonic() - started), kernel, n
