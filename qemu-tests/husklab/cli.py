"""`qemu-tests/lab`: boots each architecture's guest and runs scenarios in it.

    qemu-tests/lab                                  # every scenario on all four archs
    qemu-tests/lab --arch aarch64 --scenario smoke  # the fast edit-test loop
    qemu-tests/lab --arch riscv64 --console         # stream the guest console too

Prints one line per scenario as it ends, then TAP and a closing
"lab: N passed, N failed, N skipped" line; writes results.json and each guest's
console log under --out. Exits 1 when any scenario fails or times out.
"""

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import threading
import time

from . import board as boards
from . import powercut, runner, updates

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(HERE)
DEFAULT_SCENARIOS = os.path.join(HERE, "scenarios")
DEFAULT_TIMEOUT_S = 300
CONSOLE_TAIL = 30
_print_lock = threading.Lock()


def say(msg):
    with _print_lock:
        print(msg, flush=True)


def discover(dirs):
    found = {}
    for d in dirs:
        for name in sorted(os.listdir(d)):
            if name.endswith(".sh"):
                found.setdefault(name[:-3], os.path.join(d, name))
    return found


def declared_timeout(path, default):
    with open(path) as f:
        for line in f.readlines()[:5]:
            m = re.match(r"#\s*timeout:\s*(\d+)", line)
            if m:
                return int(m.group(1))
    return default


def parse_args(argv):
    p = argparse.ArgumentParser(prog="qemu-tests/lab", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", action="append", choices=boards.ARCHS,
                   help="architecture to boot (repeatable; default: all four)")
    p.add_argument("--scenario", action="append", help="scenario to run (repeatable; default: all)")
    p.add_argument("--scenario-dir", action="append", default=[],
                   help="another directory of scenario scripts (NAME.sh)")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S,
                   help="seconds a scenario may take when its script declares no '# timeout: N'")
    p.add_argument("--boot-timeout", type=int, default=240,
                   help="seconds the guest may take to boot, and to go silent between scenarios")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="architectures booted at once (one core each)")
    p.add_argument("--console", action="store_true", help="also stream each guest console here")
    p.add_argument("--host-tool", action="append", default=[],
                   help="a host program to put in the guest with its libraries, at the same path "
                        "(only for a guest of the host's architecture; e.g. crun, runc)")
    p.add_argument("--powercuts", type=int,
                   help="power cuts of the powercut scenario per architecture "
                        "(default: its '# powercut: N' line)")
    p.add_argument("--powercut-mib", type=int, default=powercut.DEFAULT_LAYER_MIB,
                   help="size of the layer the powercut scenario's updates rebuild")
    p.add_argument("--no-build", action="store_true",
                   help="use target/cross/ as it is (cross/build ran), and husk-publish "
                        "(target/release/) as it is when it was built")
    p.add_argument("--cache", default=os.environ.get("HUSK_CACHE", os.path.expanduser("~/.cache/husk")),
                   help="where kernels, busybox and apt state are kept between runs")
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="logs, initramfs and results.json")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    archs = args.arch or list(boards.ARCHS)
    available = discover([DEFAULT_SCENARIOS, *args.scenario_dir])
    names = args.scenario or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        say(f"lab: unknown scenario {', '.join(unknown)} (have: {', '.join(available)})")
        return 2
    selected = {n: available[n] for n in names}
    timeouts = {n: declared_timeout(p, args.timeout) for n, p in selected.items()}
    try:
        chosen = [boards.load(a) for a in archs]
    except boards.BoardError as e:
        say(f"lab: {e}")
        return 2

    if not args.no_build:
        say(f"lab: building husk for {' '.join(archs)} (cross/build)")
        if subprocess.run([os.path.join(ROOT, "cross", "build"), *archs]).returncode != 0:
            say("lab: cross/build failed")
            return 1

    publisher = None
    if "update" in selected or any(powercut.declared_cuts(p) is not None
                                   for p in selected.values()):
        try:
            publisher = updates.publisher(ROOT, say, build=not args.no_build)
        except (OSError, subprocess.CalledProcessError) as e:
            say(f"lab: cannot build husk-publish for the update scenario: {e}")
            return 1

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, b, selected, timeouts, args, publisher) for b in chosen]
        results = [f.result() for f in futures]
    return report(results, args.out, time.monotonic() - started)



def run_one(board, selected, timeouts, args, publisher=None):
    arch = board.arch
    out_dir = os.path.join(args.out, arch)
    os.makedirs(out_dir, exist_ok=True)
    console_log = os.path.join(out_dir, "console.log")
    open(console_log, "w").close()
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    husk_dir = os.path.join(target, "cross", arch)
    result = runner.ArchResult(arch)
    try:
        if not os.path.exists(os.path.join(husk_dir, "husk")):
            raise RuntimeError(f"{husk_dir}/husk missing: run cross/build {arch}")
        tools = args.host_tool if arch == os.uname().machine else []
        guest = runner.prepare(board, args.cache, husk_dir, selected, out_dir,
                               lambda m: say(f"{arch}: {m}"), tools, publisher)
        say(f"{arch}: booting {board.name} with {guest.kernel['package']} {guest.kernel['version']}")
        echo = (lambda line: say(f"{arch}| {line}")) if args.console else None
        # Scenarios that declare '# powercut: N' boot many times on disks of
        # their own (husklab/powercut.py); the others share one-boot sessions.
        cuts = {n: powercut.declared_cuts(p) for n, p in selected.items()}
        plain = [n for n in selected if cuts[n] is None]
        if plain:
            result = runner.run_arch(guest, plain, timeouts, args.boot_timeout, console_log, echo)
        else:
            result.kernel_package = f"{guest.kernel['package']} {guest.kernel['version']}"
        for name in selected:
            if cuts[name] is not None:
                n = cuts[name] if args.powercuts is None else args.powercuts
                outcome, kernel, boots = powercut.run(
                    guest, publisher, n, args.powercut_mib, timeouts[name], args.boot_timeout,
                    out_dir, console_log, lambda m: say(f"{arch}: {m}"), echo)
                result.outcomes.append(outcome)
                result.kernel = result.kernel or kernel
                result.boots += boots
    except Exception as e:  # the lab itself failed: every scenario fails with the reason
        result.error = f"{type(e).__name__}: {e}"
        result.outcomes = [runner.Outcome(s, "fail", f"lab error: {result.error}", 0.0) for s in selected]
    for o in result.outcomes:
        line = f"{arch}: {o.scenario}: {o.status} ({o.seconds:.1f} s)"
        say(line + (f": {o.reason}" if o.reason else ""))
    if any(o.status == "fail" for o in result.outcomes):
        tail = open(console_log, errors="replace").read().splitlines()[-CONSOLE_TAIL:]
        say(f"{arch}: last {len(tail)} console lines ({console_log}):\n"
            + "\n".join(f"{arch}| {line}" for line in tail))
    return result


def report(results, out, seconds):
    """TAP, the closing counts line and results.json; returns the exit status."""
    rows = [(r, o) for r in results for o in r.outcomes]
    lines = ["TAP version 13", f"1..{len(rows)}"]
    for i, (r, o) in enumerate(rows, 1):
        desc = f"{r.arch} {o.scenario} (kernel {r.kernel or '?'}, {o.seconds:.1f} s)"
        if o.status == "pass":
            lines.append(f"ok {i} - {desc}")
        elif o.status == "skip":
            lines.append(f"ok {i} - {desc} # SKIP {o.reason}")
        else:
            lines.append(f"not ok {i} - {desc}: {o.reason}")
    counts = {s: sum(o.status == s for _, o in rows) for s in ("pass", "fail", "skip")}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({
            "seconds": round(seconds, 1),
            "archs": [{
                "arch": r.arch, "kernel": r.kernel, "kernel_package": r.kernel_package,
                "boots": r.boots, "error": r.error,
                "scenarios": [o.__dict__ for o in r.outcomes],
            } for r in results],
        }, f, indent=1)
    say("\n".join(lines))
    for r in results:
        say(f"lab: {r.arch}: kernel {r.kernel or '?'} ({r.kernel_package or 'not fetched'}), {r.boots} boot(s)")
    say(f"lab: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
        f" in {seconds:.0f} s")
    return 1 if counts["fail"] or not rows else 0
