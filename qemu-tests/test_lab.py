"""The lab's own test suite: `python3 -m unittest discover -s qemu-tests`.

Unit tests drive the console follower with scripted lines and a fake clock. The
QEMU test boots a real aarch64 guest with scenarios that break it on purpose (one
exits 1, one hangs, one panics the kernel) and checks that each fails with a
clear reason within its timeout, and that a scenario after them still runs.
"""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from husklab import board, debian, initramfs, powercut  # noqa: E402
from husklab.session import Session  # noqa: E402

TOKEN = "t0k3n"


def marker(kind, rest=""):
    return f"HUSK-LAB:{TOKEN}:{kind}" + (f" {rest}" if rest else "")


def session(scenarios=("a", "b"), timeouts=None, boot_timeout=60.0):
    return Session(TOKEN, list(scenarios), timeouts or {s: 10.0 for s in scenarios}, boot_timeout, 0.0)


class SessionTest(unittest.TestCase):
    def test_all_scenarios_end_and_the_guest_says_done(self):
        s = session()
        for i, line in enumerate([
            marker("READY", "arch=aarch64 kernel=6.1.0-50-arm64"),
            marker("BEGIN", "a"), "output", marker("END", "a rc=0"),
            marker("BEGIN", "b"), "SKIP: no overlayfs", marker("END", "b rc=77"),
        ]):
            self.assertFalse(s.feed(line, float(i)))
        self.assertTrue(s.feed(marker("DONE"), 9.0))
        self.assertEqual(s.kernel, "6.1.0-50-arm64")
        self.assertEqual([(o.scenario, o.status, o.reason) for o in s.outcomes],
                         [("a", "pass", ""), ("b", "skip", "no overlayfs")])
        self.assertEqual(s.pending(), [])

    def test_a_failing_scenario_fails_with_its_status(self):
        s = session()
        s.feed(marker("READY", "arch=x kernel=k"), 0)
        s.feed(marker("BEGIN", "a"), 1)
        s.feed(marker("END", "a rc=3"), 2)
        self.assertEqual(s.outcomes[0].status, "fail")
        self.assertIn("status 3", s.outcomes[0].reason)

    def test_markers_with_another_token_are_ignored(self):
        s = session()
        s.feed(marker("READY", "arch=x kernel=k"), 0)
        s.feed(marker("BEGIN", "a"), 1)
        s.feed("HUSK-LAB:other:END a rc=0", 2)
        self.assertEqual(s.outcomes, [])

    def test_a_hung_scenario_times_out_at_its_own_limit(self):
        s = session(timeouts={"a": 5.0, "b": 10.0})
        s.feed(marker("READY", "arch=x kernel=k"), 0)
        s.feed(marker("BEGIN", "a"), 1)
        self.assertFalse(s.tick(5.9))
        self.assertTrue(s.tick(6.0))
        self.assertEqual(s.outcomes[0].status, "fail")
        self.assertIn("timed out after 5 s", s.outcomes[0].reason)
        self.assertEqual(s.pending(), ["b"])

    def test_a_kernel_panic_fails_the_running_scenario(self):
        s = session()
        s.feed(marker("READY", "arch=x kernel=k"), 0)
        s.feed(marker("BEGIN", "a"), 1)
        self.assertTrue(s.feed("[    1.78] Kernel panic - not syncing: sysrq triggered crash", 2))
        self.assertIn("kernel panic: Kernel panic - not syncing: sysrq", s.outcomes[0].reason)
        s.guest_exited(0, 3)
        self.assertEqual(len(s.outcomes), 1)

    def test_a_guest_that_dies_mid_scenario_fails_it(self):
        s = session()
        s.feed(marker("READY", "arch=x kernel=k"), 0)
        s.feed(marker("BEGIN", "a"), 1)
        s.guest_exited(1, 2)
        self.assertIn("guest stopped (qemu exit status 1)", s.outcomes[0].reason)

    def test_a_guest_that_never_boots_is_broken_without_outcomes(self):
        s = session(boot_timeout=30)
        self.assertTrue(s.tick(30))
        self.assertFalse(s.booted)
        self.assertIn("did not boot within 30 s", s.broken)
        self.assertEqual(s.outcomes, [])


def read_newc(data):
    """Parses a cpio newc archive into {path: (mode, rdevmajor, rdevminor, data)}."""
    out, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701", f"bad magic at {pos}"
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        body = data[pos: pos + filesize]
        pos = (pos + filesize + 3) & ~3
        if name == initramfs.TRAILER:
            return out
        out[name] = (f[1], f[9], f[10], body)


class InitramfsTest(unittest.TestCase):
    def test_entries_round_trip_with_parents_first(self):
        c = initramfs.Cpio()
        c.file("lab/scenarios/x.sh", b"echo hi\n", 0o755)
        c.symlink("bin/sh", "busybox")
        c.char_device("dev/console", 5, 1)
        entries = read_newc(gzip.decompress(c.gzip_bytes()))
        names = list(entries)
        self.assertLess(names.index("lab"), names.index("lab/scenarios"))
        self.assertLess(names.index("lab/scenarios"), names.index("lab/scenarios/x.sh"))
        self.assertEqual(entries["lab/scenarios/x.sh"][3], b"echo hi\n")
        self.assertEqual(entries["lab/scenarios/x.sh"][0], 0o100755)
        self.assertEqual(entries["bin/sh"][3], b"busybox")
        self.assertEqual(entries["dev/console"][:3], (0o020600, 5, 1))

    def test_a_path_added_twice_is_refused(self):
        c = initramfs.Cpio()
        c.file("a", b"")
        with self.assertRaises(ValueError):
            c.file("a", b"")


class BoardTest(unittest.TestCase):
    def test_every_arch_has_a_qemu_board(self):
        for arch in board.ARCHS:
            b = board.load(arch)
            cmd = b.qemu_command("K", "I", "quiet")
            self.assertEqual(cmd[0], b.qemu_binary)
            self.assertIn(f"console={b.console} quiet", cmd)

    def test_disks_are_attached_as_the_boards_virtio_device(self):
        for arch in board.ARCHS:
            b = board.load(arch)
            cmd = b.qemu_command("K", "I", "quiet", [("data.img", False), ("repo.img", True)])
            self.assertIn("file=data.img,format=raw,if=none,id=disk0", cmd)
            self.assertIn("file=repo.img,format=raw,if=none,id=disk1,readonly=on", cmd)
            self.assertIn(f"{b.block_device},drive=disk1", cmd)

    def test_a_broken_board_file_names_the_file_and_the_key(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "qemu-aarch64.toml"), "w") as f:
                f.write('[board]\narch = "aarch64"\n')
            with self.assertRaisesRegex(board.BoardError, r"qemu-aarch64.toml: board.name must be a string"):
                board.load("aarch64", d)


def boot(found, target=None, opened=0.0, closed=None, rc=None, cut_at=None):
    return powercut.Boot(found=found, target=target, opened=opened, closed=closed, rc=rc,
                         cut_at=cut_at)


class PowercutTallyTest(unittest.TestCase):
    def test_cuts_end_on_the_old_or_the_new_release(self):
        t = powercut.Tally()
        self.assertTrue(t.boot(1, boot(0, 1, 0.0, 50.0, 0)))
        self.assertTrue(t.boot(2, boot(1, 2, 10.0, 40.0, 0)))
        self.assertEqual(t.window, 30.0)
        self.assertTrue(t.boot(3, boot(2, 3, cut_at=5.0)))
        self.assertTrue(t.boot(4, boot(2, 3, cut_at=25.0)))  # old: still 2
        self.assertTrue(t.boot(5, boot(3, 4, 0.0, 30.0, 0)))  # new: 3
        self.assertEqual((t.cuts, t.old, t.new, t.problems), (2, 1, 1, []))
        self.assertIn("2 power cut(s): 1 on the old release, 1 on the new, 0 broken", t.summary())
        self.assertIn("cut 5.0 to 25.0 s into a 30.0 s update", t.summary())

    def test_a_release_that_is_neither_old_nor_new_is_broken(self):
        t = powercut.Tally()
        t.boot(1, boot(0, 1, 0.0, 50.0, 0))
        t.boot(2, boot(1, 2, 0.0, 30.0, 0))
        t.boot(3, boot(2, 3, cut_at=5.0))
        self.assertFalse(t.boot(4, boot(1, 2, cut_at=1.0)))
        self.assertEqual(t.problems, ["boot 4: found release 1, expected 2 or 3"])

    def test_a_boot_that_cannot_report_or_finish_is_broken(self):
        t = powercut.Tally()
        self.assertFalse(t.boot(1, powercut.Boot(broken="kernel panic: x")))
        self.assertEqual(t.problems, ["boot 1: did not report its release (kernel panic: x)"])
        t = powercut.Tally()
        self.assertFalse(t.boot(1, boot(0, 1, 0.0, None, 1)))
        self.assertEqual(t.problems, ["boot 1: scenario exited with status 1"])

    def test_only_scripts_that_declare_cuts_are_driven(self):
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
        self.assertEqual(powercut.declared_cuts(os.path.join(here, "powercut.sh")), 2)
        self.assertIsNone(powercut.declared_cuts(os.path.join(here, "smoke.sh")))


class PowercutMeasureTest(unittest.TestCase):
    """The measured update: the driver's sizes and parsing, and the
    scenario's wrapper and report run by the host's sh on fakes."""

    SCRIPT = os.path.join(HERE, "scenarios", "powercut.sh")
    LINE = ('BENCH-JSON {"apply_rss_kib":5408,"layer_mib":12,"release":2, "deltas":3,"whole":0,'
            '"kept":0,"seconds":12.34, "daemon_rss_before_kib":1284,"daemon_hwm_kib":1284}')

    def test_disks_and_timeout_grow_with_the_layer_only_past_the_default(self):
        self.assertEqual(powercut.data_disk_mib(powercut.DEFAULT_LAYER_MIB), powercut.DATA_DISK_MIB)
        self.assertEqual(powercut.data_disk_mib(12), powercut.DATA_DISK_MIB)
        # Three versions of the layer, each a tar and extracted, and room.
        self.assertGreaterEqual(powercut.data_disk_mib(200), 6 * 200 + 128)
        self.assertEqual(powercut.scaled_timeout(900, powercut.DEFAULT_LAYER_MIB), 900)
        self.assertEqual(powercut.scaled_timeout(900, 12), 900)
        self.assertEqual(powercut.scaled_timeout(900, 200), 5000)

    def test_apply_figures_from_console_lines(self):
        figures = powercut.apply_figures(self.LINE)
        self.assertEqual((figures["apply_rss_kib"], figures["deltas"], figures["seconds"]), (5408, 3, 12.34))
        self.assertEqual(powercut.apply_text(figures), "apply peak RSS 5,408 KiB (12 MiB layer by delta, 12.34 s)")
        whole = dict(figures, deltas=0, apply_rss_kib=None)
        self.assertEqual(powercut.apply_text(whole), "apply peak RSS not measured (12 MiB layer whole, 12.34 s)")
        for other in ('BENCH-JSON {"rss_kib":1436,"success":false}', "BENCH-JSON {not json",
                      "RESULT apply of a 12 MiB layer", self.LINE[1:]):
            self.assertIsNone(powercut.apply_figures(other), other)

    def script_parts(self):
        with open(self.SCRIPT) as f:
            text = f.read()
        wrapper = re.search(r"<<'SH'.*?\n(.*?\n)SH\n", text, re.S).group(1)
        functions = re.search(r"\n(# centi T:.*?\nreport_apply\(\) \{.*?\n\}\n)", text, re.S).group(1)
        return wrapper, functions

    def test_the_wrapper_measures_only_apply_and_keeps_its_status(self):
        # husk-bench's own output lines (bench/src/main.rs), as the wrapper reads them.
        with open(os.path.join(os.path.dirname(HERE), "bench", "src", "main.rs")) as f:
            bench_src = f.read()
        self.assertIn('"peak RSS of `{}`: {kib} KiB ({status})"', bench_src)
        self.assertIn('"BENCH-JSON {{\\"rss_kib\\":{kib},\\"success\\":{}}}"', bench_src)
        wrapper, functions = self.script_parts()
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "polls"))
            fakes = {
                "husk": "#!/bin/sh\n"
                        "case \"$*\" in *'update apply'*) ;; *) echo \"husk $*\"; exit 0 ;; esac\n"
                        "[ -e \"$(dirname \"$0\")/new\" ] || { echo 'not modified'; exit 4; }\n"
                        "echo 'release 2 installed, on probation: downloaded 75081 of 15533943 bytes"
                        " (3 delta, 0 whole, 1 kept)'\n",
                "husk-bench": "#!/bin/sh\n[ \"$1\" = rss ] || exit 2\nshift\n\"$@\"\nrc=$?\n"
                              "echo \"peak RSS of \\`$*\\`: 6789 KiB (exit status: $rc)\"\n"
                              "ok=false; [ $rc = 0 ] && ok=true\n"
                              "echo \"BENCH-JSON {\\\"rss_kib\\\":6789,\\\"success\\\":$ok}\"\n"
                              "exit $((rc != 0))\n",
                "wrapper": wrapper.replace("/usr/bin/", d + "/").replace("/tmp/measure", d),
            }
            for name, text in fakes.items():
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
                os.chmod(os.path.join(d, name), 0o755)
            run = lambda *args: subprocess.run([os.path.join(d, "wrapper"), *args],
                                               capture_output=True, text=True)
            self.assertEqual(run("--version").stdout, "husk --version\n")  # not measured
            self.assertEqual(run("--data-dir", "/x", "update", "apply", "--poll").returncode, 4)
            open(os.path.join(d, "new"), "w").close()
            got = run("--data-dir", "/x", "update", "apply", "--poll")
            self.assertEqual(got.returncode, 0, got.stderr)
            self.assertIn("release 2 installed", got.stdout)  # still in the daemon's log
            self.assertEqual(len(os.listdir(os.path.join(d, "polls"))), 2)
            report = subprocess.run(
                ["sh", "-c", f"m={d}; mib=12; next=2; daemon_pid=$$\n{functions}\n"
                             "report_apply 2; report_apply 3"],
                capture_output=True, text=True)
        lines = report.stdout.splitlines()
        self.assertEqual(report.stderr, "")
        self.assertRegex(lines[0], r"^RESULT apply of a 12 MiB layer \(3 delta, 0 whole, 1 kept\) "
                                   r"in \d+\.\d\d s$")
        self.assertEqual(lines[1], "RESULT peak RSS of the apply (husk update apply, the daemon's "
                                   "child): 6789 KiB")
        self.assertRegex(lines[2], r"^RESULT daemon: RSS \d+ KiB as the poll began, VmHWM \d+ KiB "
                                   r"\(whole life\)$")
        self.assertTrue(all(len(line) <= 80 for line in lines if line.startswith("RESULT")), lines)
        figures = powercut.apply_figures(lines[3])
        self.assertEqual({k: figures[k] for k in ("apply_rss_kib", "layer_mib", "release", "deltas",
                                                  "whole", "kept")},
                         {"apply_rss_kib": 6789, "layer_mib": 12, "release": 2, "deltas": 3,
                          "whole": 0, "kept": 1})
        self.assertIsInstance(figures["daemon_rss_before_kib"], int)
        self.assertIsInstance(figures["daemon_hwm_kib"], int)
        self.assertEqual(lines[4], "RESULT apply of release 3: peak RSS not measured "
                                   "(no measured poll installed it)")
        self.assertEqual(len(lines), 5)


class AptTreeTest(unittest.TestCase):
    """The parsing of apt's answers (the bench's rootfs pair), on recorded text."""

    def tree(self, answers):
        with tempfile.TemporaryDirectory() as cache:
            t = debian.AptTree(cache, "bookworm", "amd64", lambda _: None, uri="http://mirror.invalid/debian")
        calls = []

        def run(tool, *args, cwd=None):
            calls.append((tool, args))
            return answers[tool]
        t._run = run
        return t, calls

    def test_packages_of_a_priority(self):
        t, _ = self.tree({"apt-cache": "Package: dash\nPriority: required\nVersion: 1\n\n"
                                      "Package: vim\nPriority: optional\n\n"
                                      "Package: bash\nVersion: 5\nPriority: required\n"})
        self.assertEqual(t.packages_of_priority("required"), ["bash", "dash"])

    def test_closure_is_what_apt_would_install(self):
        t, calls = self.tree({"apt-get": "Inst libc6 (2.36-9+deb12u14 Debian:12.13/stable [amd64])\n"
                                         "Inst dash (0.5.12-2 Debian:12.13/stable [amd64])\n"
                                         "Conf libc6 (2.36-9+deb12u14 Debian:12.13/stable [amd64])\n"})
        self.assertEqual(t.closure(["dash"]), ["dash", "libc6"])
        self.assertIn("APT::Install-Recommends=false", calls[0][1])


@unittest.skipUnless(os.environ.get("HUSK_LAB_QEMU") == "1",
                     "set HUSK_LAB_QEMU=1 (./dev test does) to boot a real guest")
class BrokenGuestTest(unittest.TestCase):
    """Boots aarch64 with scenarios that break the guest on purpose."""

    def test_each_breakage_fails_clearly_within_its_timeout(self):
        if not shutil.which("qemu-system-aarch64"):
            self.fail("qemu-system-aarch64 missing: run qemu-tests/deps.sh")
        with tempfile.TemporaryDirectory() as out:
            started = time.monotonic()
            cmd = [os.path.join(HERE, "lab"), "--no-build", "--arch", "aarch64",
                   "--scenario-dir", os.path.join(HERE, "selftest", "scenarios"), "--out", out]
            for s in ("fail", "hang", "panic", "skip", "pass"):
                cmd += ["--scenario", s]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            elapsed = time.monotonic() - started
            self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
            with open(os.path.join(out, "results.json")) as f:
                got = {o["scenario"]: o for o in json.load(f)["archs"][0]["scenarios"]}
        self.assertEqual(got["fail"]["status"], "fail")
        self.assertEqual(got["fail"]["reason"], "scenario exited with status 1")
        self.assertEqual(got["hang"]["status"], "fail")
        self.assertIn("timed out after 10 s", got["hang"]["reason"])
        self.assertLess(got["hang"]["seconds"], 12)
        self.assertEqual(got["panic"]["status"], "fail")
        self.assertIn("kernel panic", got["panic"]["reason"])
        self.assertEqual(got["skip"]["status"], "skip")
        self.assertEqual(got["skip"]["reason"], "skipping on purpose")
        self.assertEqual(got["pass"]["status"], "pass")  # the lab recovers after a broken guest
        self.assertIn("not ok", proc.stdout)
        self.assertIn("lab: 1 passed, 3 failed, 1 skipped", proc.stdout)
        self.assertLess(elapsed, 300)


if __name__ == "__main__":
    unittest.main()
