"""Unit tests of bench/run's parsing, rows, table, budgets and JSON, on console
logs and husk-publish output recorded from real runs (bench/testdata/).

    python3 -m unittest discover -v -s bench -p 'test_*.py'
"""

import contextlib
import importlib.machinery
import io
import importlib.util
import json
import os
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "testdata")


def load_run():
    loader = importlib.machinery.SourceFileLoader("bench_run", os.path.join(HERE, "run"))
    spec = importlib.util.spec_from_loader("bench_run", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


run = load_run()


def data(name):
    with open(os.path.join(DATA, name), errors="replace") as f:
        return f.read()


class ConsoleTest(unittest.TestCase):
    def test_x86_64_start_latency_and_rss(self):
        sc = run.parse_console(data("console-x86_64.log"))
        start = sc["start"]
        self.assertEqual(start["rc"], 0)
        self.assertEqual(sorted(start["latency"]), ["baseline", "crun", "husk", "runc"])
        self.assertAlmostEqual(start["latency"]["husk"]["median_ms"], 52.104)
        self.assertAlmostEqual(start["latency"]["crun"]["median_ms"], 98.511)
        # Each rss line is attributed to the command named on the line before it.
        self.assertEqual(start["rss"], {"husk": 1460, "crun": 3360})
        rows, _ = run.lab_rows("x86_64", sc)
        by_what = {r["what"]: r for r in rows}
        self.assertAlmostEqual(by_what["x86_64 guest: vs crun"]["ratio"], 52.104 / 98.511)
        self.assertAlmostEqual(by_what["x86_64 guest: vs runc"]["ratio"], 52.104 / 707.028)
        self.assertAlmostEqual(by_what["x86_64 guest: x fork+exec (baseline)"]["husk"], 52.104 / 7.529)
        self.assertAlmostEqual(by_what["x86_64: husk run vs crun run"]["ratio"], 1460 / 3360)

    def test_emulated_guest_has_baseline_only(self):
        sc = run.parse_console(data("console-aarch64.log"))
        rows, _ = run.lab_rows("aarch64", sc)
        whats = [r["what"] for r in rows]
        self.assertNotIn("aarch64 guest: vs crun", whats)
        base = next(r for r in rows if "baseline" in r["what"])
        self.assertAlmostEqual(base["husk"], 412.5 / 61.25)
        rss = next(r for r in rows if "husk run" in r["what"])
        self.assertEqual((rss["husk"], rss["peer"], rss["ratio"]), (1392, None, None))

    def test_imagerun_daemon_rss_and_cold_start(self):
        sc = run.parse_console(data("console-x86_64.log"))
        self.assertEqual(run.daemon_rss(sc["imagerun"]["results"]), (1648, 1728))
        rows, _ = run.lab_rows("x86_64", sc)
        daemon = next(r for r in rows if "daemon" in r["what"])
        self.assertEqual((daemon["husk"], daemon["peer"]), (1648, run.DAEMON_GOAL_KIB))
        cold = next(r for r in rows if "--image" in r["what"])
        self.assertAlmostEqual(cold["ratio"], 81.538 / 99.78)

    def test_last_run_of_a_scenario_wins(self):
        log = data("console-x86_64.log")
        again = log.replace("median_ms\":52.104", "median_ms\":40.000")
        sc = run.parse_console(log + again)
        self.assertAlmostEqual(sc["start"]["latency"]["husk"]["median_ms"], 40.0)

    def test_no_start_scenario_is_an_error(self):
        with self.assertRaisesRegex(run.BenchError, "no `start` scenario"):
            run.lab_rows("x86_64", run.parse_console("HUSK-LAB:ab:BEGIN other\nHUSK-LAB:ab:END other rc=0\n"))

    def test_bad_bench_json_is_one_line_error(self):
        text = "HUSK-LAB:ab:BEGIN start\nBENCH-JSON {\"latency\": [\n"
        with self.assertRaisesRegex(run.BenchError, "not JSON"):
            run.parse_console(text)

    def test_lines_outside_a_scenario_are_ignored(self):
        sc = run.parse_console('BENCH-JSON {"rss_kib":1,"success":true}\n')
        self.assertEqual(sc, {})


class ApplyTest(unittest.TestCase):
    """Part 6: the powercut scenario's measured updates (0 cuts: release 1
    whole, releases 2 and 3 by delta), from a recorded armv7 console (a
    200 MiB layer, `qemu-tests/lab --arch armv7 --scenario powercut
    --powercuts 0 --powercut-mib 200`)."""

    LOG = "console-powercut-armv7.log"
    # (release, deltas, peak RSS KiB, seconds) of each boot's update, as recorded.
    BOOTS = [(1, 0, 5684, 63.23), (2, 3, 5196, 47.16), (3, 2, 2348, 46.82)]
    MIB = 200

    def test_every_boot_s_update_is_parsed(self):
        applies = run.parse_applies(data(self.LOG))
        self.assertEqual([(a["release"], a["deltas"], a["apply_rss_kib"], a["seconds"]) for a in applies],
                         self.BOOTS)
        self.assertTrue(all(a["layer_mib"] == self.MIB for a in applies))

    def test_rows_the_highest_of_each_kind_against_the_goal(self):
        rows = {r["what"]: r for r in run.apply_rows("armv7", run.parse_applies(data(self.LOG)))}
        delta = rows[f"armv7: {self.MIB} MiB by delta, peak RSS"]
        self.assertEqual((delta["husk"], delta["peer"], delta["unit"]),
                         (max(b[2] for b in self.BOOTS if b[1]), run.BUDGET_APPLY_RSS_KIB, "KiB"))
        self.assertAlmostEqual(delta["ratio"], delta["husk"] / 8192)
        whole = rows[f"armv7: {self.MIB} MiB whole, peak RSS"]
        self.assertEqual(whole["husk"], self.BOOTS[0][2])
        self.assertEqual(rows[f"armv7: {self.MIB} MiB by delta, seconds"]["husk"],
                         max(b[3] for b in self.BOOTS if b[1]))
        self.assertEqual(rows[f"armv7: {self.MIB} MiB whole, seconds"]["husk"], self.BOOTS[0][3])
        self.assertEqual(rows["armv7: daemon VmHWM, its whole life"]["husk"], 1108)
        self.assertEqual(len(rows), 5)

    def console(self, *objs, begin=True):
        lines = ["HUSK-LAB:ab:BEGIN powercut"] if begin else []
        lines += ["BENCH-JSON " + json.dumps(o) for o in objs]
        return "\n".join(lines + ["HUSK-LAB:ab:END powercut rc=0", ""])

    def test_only_measured_updates_in_a_scenario_count(self):
        text = self.console({"apply_rss_kib": 100, "deltas": 1, "layer_mib": 200}, begin=False)
        text += self.console({"rss_kib": 1436, "success": False}, {"apply_rss_kib": None, "deltas": 1})
        applies = run.parse_applies(text)
        self.assertEqual(applies, [{"apply_rss_kib": None, "deltas": 1}])
        with self.assertRaisesRegex(run.BenchError, "aarch64: the console log has no measured update"):
            run.apply_rows("aarch64", applies)
        with self.assertRaisesRegex(run.BenchError, "not JSON"):
            run.parse_applies("HUSK-LAB:ab:BEGIN powercut\nBENCH-JSON {\"apply_rss_kib\": \n")

    def test_budget_is_the_highest_of_any_guest_and_kind(self):
        applies = {"armv7": run.parse_applies(data(self.LOG)),
                   "aarch64": [{"apply_rss_kib": 7000, "deltas": 0, "layer_mib": self.MIB}]}
        self.assertEqual(run.guest_apply_budget(applies),
                         (f"guest apply, {self.MIB} MiB layer < 8 MiB", "7,000 KiB (aarch64)", "PASS"))
        del applies["aarch64"]
        self.assertEqual(run.guest_apply_budget(applies)[1], "5,684 KiB (armv7)")
        applies["armv7"][1]["apply_rss_kib"] = 8192
        self.assertEqual(run.guest_apply_budget(applies)[2], "MISS")
        self.assertEqual(run.guest_apply_budget({}), ("guest apply, 200 MiB layer < 8 MiB", "not measured", "n/a"))


class PublishBenchTest(unittest.TestCase):
    def test_parse_rows(self):
        b = run.parse_publish_bench(data("publish-bench.txt"))
        self.assertGreater(b["new"], 0)
        self.assertGreater(b["old"], 0)
        m = b["methods"]
        for _, key in run.WIRE_METHODS:
            self.assertIn(key, m)
        chosen = run.husk_chosen(m)["bytes"]
        deltas = [v["bytes"] for k, v in m.items() if k.startswith("husk ") and not k.startswith("husk chosen")]
        self.assertEqual(chosen, min(d for d in deltas if d is not None))
        # The apply RSS is that of the delta husk chose, not the highest.
        chosen_method = next(k for k, v in m.items() if k.startswith("husk ") and v["bytes"] == chosen)
        self.assertEqual(run.apply_rss(m), m[chosen_method]["rss_kib"])

    def test_wire_rows_ratios_to_husk(self):
        b = run.parse_publish_bench(data("publish-bench.txt"))
        rows = run.wire_rows("pair", "pair 1 -> 2", b)
        chosen = run.husk_chosen(b["methods"])["bytes"]
        full = next(r for r in rows if r["peer_name"] == "full layer, zstd -19")
        self.assertEqual(full["husk"], chosen)
        self.assertAlmostEqual(full["ratio"], chosen / b["methods"]["full layer, zstd -19"]["bytes"])
        apply = next(r for r in rows if r["what"].startswith("apply"))
        self.assertAlmostEqual(apply["peer"], b["new"] / 1024)

    def test_missing_tool_is_dash_not_zero(self):
        text = data("publish-bench.txt").replace(
            next(l for l in data("publish-bench.txt").splitlines() if l.startswith("xdelta3")),
            "xdelta3 -9" + " " * 46 + "n/a        -          -     0.01              -")
        b = run.parse_publish_bench(text)
        self.assertIsNone(b["methods"]["xdelta3 -9"]["bytes"])
        row = next(r for r in run.wire_rows("p", "p 1 -> 2", b) if r["peer_name"] == "xdelta3 -9")
        self.assertIsNone(row["ratio"])

    def test_garbage_is_an_error(self):
        with self.assertRaisesRegex(run.BenchError, "husk-publish bench"):
            run.parse_publish_bench("husk-publish: bench: old.tar: No such file\n")


class ElfTest(unittest.TestCase):
    READELF_D = """
Dynamic section at offset 0x5d8 contains 27 entries:
  Tag        Type                         Name/Value
 0x0000000000000001 (NEEDED)             Shared library: [libsystemd.so.0]
 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]
 0x000000000000000e (SONAME)             Library soname: [libcrun.so.1]
"""

    def test_needed_and_interp(self):
        self.assertEqual(run.parse_needed(self.READELF_D), ["libsystemd.so.0", "libc.so.6"])
        self.assertEqual(run.parse_interp("      [Requesting program interpreter: /lib/ld-linux-armhf.so.3]"),
                         "/lib/ld-linux-armhf.so.3")
        self.assertIsNone(run.parse_interp("static binary"))

    def test_closure_sums_each_library_once(self):
        with tempfile.TemporaryDirectory() as root:
            files = {"usr/bin/crun": 100, "lib/x/libsystemd.so.0.35.0": 30, "lib/x/libc.so.6": 20,
                     "lib/x/liblzma.so.5.4.1": 7, "lib/x/ld-linux.so.2": 5, "usr/share/doc/x": 999}
            for path, size in files.items():
                os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
                with open(os.path.join(root, path), "wb") as f:
                    f.write(b"x" * size)
            os.symlink("libsystemd.so.0.35.0", os.path.join(root, "lib/x/libsystemd.so.0"))
            os.symlink("liblzma.so.5.4.1", os.path.join(root, "lib/x/liblzma.so.5"))
            needed = {"crun": ["libsystemd.so.0", "libc.so.6"], "libsystemd.so.0.35.0": ["liblzma.so.5", "libc.so.6"],
                      "liblzma.so.5.4.1": ["libc.so.6"], "libc.so.6": []}
            sizes = run.so_closure(os.path.join(root, "usr/bin/crun"), root,
                                   needed=lambda p: needed[os.path.basename(p)],
                                   interp=lambda p: "/lib/ld-linux.so.2")
            self.assertEqual(sum(sizes.values()), 100 + 30 + 20 + 7 + 5)
            needed["libc.so.6"] = ["libmissing.so.1"]
            with self.assertRaisesRegex(run.BenchError, "libmissing.so.1 is needed"):
                run.so_closure(os.path.join(root, "usr/bin/crun"), root,
                               needed=lambda p: needed[os.path.basename(p)], interp=lambda p: None)

    def test_apt_depends_first_alternative_only(self):
        text = """crun
  Depends: libc6
 |Depends: libsystemd0
  Depends: libelogind0
  Depends: <libvirtual>
    libprovider
  PreDepends: libcap2
  Breaks: aide
  Recommends: criu
"""
        self.assertEqual(run.parse_depends(text), ["libc6", "libsystemd0", "libcap2"])
        graph = {"crun": ["libc6", "libcap2"], "libc6": ["libgcc-s1"], "libgcc-s1": ["libc6"], "libcap2": []}
        self.assertEqual(run.depends_closure(graph.__getitem__, "crun"),
                         ["crun", "libc6", "libcap2", "libgcc-s1"])


def results(armv7=900_000, husk_ms=40.0, crun_ms=94.0, apply_kib=6000, other_kib=7000, husk_bytes=5,
            xdelta3=8, guest_kib=5000):
    """husk chose its zstd-ref delta (apply_kib); its whole-layer bsdiff (10
    bytes) applies in other_kib; zstd --patch-from made 6 bytes; the aarch64
    guest applied a 200 MiB layer by delta in guest_kib."""
    lab = {"x86_64": {"start": {"latency": {"husk": {"median_ms": husk_ms}, "crun": {"median_ms": crun_ms}}}}}
    wire = {"p": {"methods": {"husk whole-layer bsdiff + zstd": {"bytes": 10, "rss_kib": other_kib},
                              "husk zstd-ref (windowed patch-from)": {"bytes": husk_bytes, "rss_kib": apply_kib},
                              "husk chosen (smallest, if <= 80 % of full)": {"bytes": husk_bytes, "rss_kib": None},
                              "xdelta3 -9": {"bytes": xdelta3, "rss_kib": None},
                              "zstd -19 --long --patch-from": {"bytes": 6, "rss_kib": None}}}}
    applies = {"aarch64": [{"apply_rss_kib": guest_kib, "deltas": 1, "layer_mib": 200}]}
    return {"sizes": {"armv7": {"husk": armv7}}, "lab": lab, "wire": wire, "apply": applies}


class BudgetTest(unittest.TestCase):
    def verdicts(self, r):
        return [v for _, _, v in run.budgets(r)]

    # armv7 size, start latency, apply RSS of the chosen delta, of every
    # algorithm's, delta vs whole-layer bsdiff, delta vs xdelta3 and zstd,
    # the update applied in a guest.
    def test_pass(self):
        self.assertEqual(self.verdicts(results()), ["PASS"] * 7)

    def test_each_miss(self):
        def miss(*at):
            return ["MISS" if i in at else "PASS" for i in range(7)]
        self.assertEqual(self.verdicts(results(armv7=run.MIB + 1)), miss(0))
        self.assertEqual(self.verdicts(results(armv7=run.MIB)), miss())
        self.assertEqual(self.verdicts(results(husk_ms=50.43, crun_ms=94.745)), miss(1))
        self.assertEqual(self.verdicts(results(apply_kib=8192)), miss(2, 3))
        # A delta husk did not choose still counts for every algorithm.
        self.assertEqual(self.verdicts(results(other_kib=8192)), miss(3))
        self.assertEqual(self.verdicts(results(husk_bytes=8)), miss(5))  # 0.8x bsdiff is the goal itself
        self.assertEqual(self.verdicts(results(husk_bytes=9, xdelta3=10)), miss(4, 5))
        self.assertEqual(self.verdicts(results(xdelta3=4)), miss(5))
        self.assertEqual(self.verdicts(results(guest_kib=8192)), miss(6))
        self.assertEqual(self.verdicts(results(guest_kib=8191)), miss())

    def test_figures(self):
        figures = [f for _, f, _ in run.budgets(results(husk_bytes=4))]
        self.assertEqual(figures[3], "7,000 KiB")
        self.assertEqual(figures[4:], ["0.40x", "0.67x", "5,000 KiB (aarch64)"])

    def test_not_measured(self):
        self.assertEqual(self.verdicts({"sizes": {}, "lab": {}, "wire": {}}), ["n/a"] * 7)
        self.assertEqual(self.verdicts({"sizes": {}, "lab": {}, "wire": {}, "apply": {}}), ["n/a"] * 7)


class CrossBuildTest(unittest.TestCase):
    def test_only_a_budget_miss_with_fresh_binaries_is_not_a_failure(self):
        over = "cross: error: /t/cross/armv7/husk: 1,151,108 bytes, over its budget of 1,048,576 bytes by 102,532\n"
        with tempfile.TemporaryDirectory() as tmp:
            for arch in run.ARCHS:
                os.makedirs(os.path.join(tmp, "cross", arch))
                open(os.path.join(tmp, "cross", arch, "husk"), "w").close()
            old = os.environ.get("CARGO_TARGET_DIR")
            os.environ["CARGO_TARGET_DIR"] = tmp
            try:
                now = os.path.getmtime(os.path.join(tmp, "cross", "armv7", "husk"))
                self.assertTrue(run.budget_only_failure(over, now))
                self.assertFalse(run.budget_only_failure(over + "cross: error: husk is dynamically linked\n", now))
                self.assertFalse(run.budget_only_failure("error[E0425]: cannot find value\n", now))
                self.assertFalse(run.budget_only_failure(over, now + 60))  # binaries from an older build
            finally:
                if old is None:
                    del os.environ["CARGO_TARGET_DIR"]
                else:
                    os.environ["CARGO_TARGET_DIR"] = old


class OutputTest(unittest.TestCase):
    def rows(self):
        sc = run.parse_console(data("console-x86_64.log"))
        rows, _ = run.lab_rows("x86_64", sc)
        rows += run.wire_rows("libc", "libc crate 0.2.186 -> 0.2.191", run.parse_publish_bench(data("publish-bench.txt")))
        rows += run.size_rows({"armv7": {"husk": 953_000, "husk_tls": 1_290_000, "peers": {
            "crun": {"closure": 3_000_000, "version": "1.8.1-1+deb12u1"},
            "runc": {"closure": 9_000_000, "version": "1.1.5+ds1-1+deb12u1"}}}})
        rows += run.release_rows("tzdata", {"seconds": 2.5, "rss_kib": 90000})
        rows += run.apply_rows("armv7", run.parse_applies(data(ApplyTest.LOG)))
        return run.sort_rows(rows)

    def test_table_fits_80_columns(self):
        notes = ["note: " + "a long note that goes on " * 8]
        lines = run.table(self.rows(), notes)
        self.assertTrue(all(len(l) <= run.TABLE_WIDTH for l in lines), [l for l in lines if len(l) > 80])
        lines += run.budget_lines(run.budgets(results()))
        self.assertTrue(all(len(l) <= run.TABLE_WIDTH for l in lines), [l for l in lines if len(l) > 80])
        text = "\n".join(lines)
        self.assertIn("armv7: husk vs crun 1.8.1-1+deb12u1", text)
        self.assertIn("0.32", text)  # 953000 / 3000000
        self.assertIn("armv7: husk+TLS vs runc  ", text)
        self.assertIn("0.14", text)  # 1290000 / 9000000
        self.assertIn("52.10 ms", text)
        self.assertIn("PASS", text)
        self.assertRegex(text, r"\narmv7: 200 MiB by delta, peak RSS +5,196 KiB +8,192 KiB +0\.63\n")

    def test_sections_in_order_guest_apply_after_peak_rss(self):
        sections = []
        for r in self.rows():
            if r["section"] not in sections:
                sections.append(r["section"])
        self.assertEqual([next(o for o in run.SECTION_ORDER if s.startswith(o)) for s in sections],
                         ["binary size", "start latency", "peak RSS", "update of a layer in the guest",
                          "bytes on the wire", "husk-publish release"])

    def test_json_round_trip(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "out", "results.json")
            run.write_json(path, {"rows": self.rows(), "timestamp": "t"})
            with open(path) as f:
                doc = json.load(f)
            self.assertFalse(os.path.exists(path + ".tmp"))
        self.assertEqual(len(doc["rows"]), len(self.rows()))
        self.assertTrue(all({"what", "husk", "peer", "ratio", "unit"} <= set(r) for r in doc["rows"]))

    def test_gnuplot_script_names_the_output(self):
        script = run.gnuplot_script("/tmp/d.dat", "/tmp/c.png")
        self.assertIn("set output '/tmp/c.png'", script)
        self.assertIn("plot '/tmp/d.dat'", script)

    def test_args(self):
        self.assertEqual(run.parse_args([]).archs, ["x86_64"])
        self.assertEqual(run.parse_args(["--all"]).archs, list(run.ARCHS))
        self.assertEqual(run.parse_args(["--arch", "armv7", "--arch", "riscv64"]).archs, ["armv7", "riscv64"])
        self.assertEqual(run.parse_args([]).parts, set(run.PARTS))
        self.assertEqual(run.parse_args(["--only", "deltas"]).parts, {"deltas"})
        self.assertEqual(run.parse_args(["--only", "sizes", "--only", "lab"]).parts, {"sizes", "lab"})
        self.assertEqual(run.parse_args(["--no-lab"]).parts, {"sizes", "deltas"})
        self.assertEqual(run.parse_args(["--only", "apply"]).parts, {"apply"})
        # The apply part: aarch64 and 200 MiB unless told.
        self.assertEqual((run.parse_args([]).apply_archs, run.parse_args([]).apply_mib), (["aarch64"], 200))
        self.assertEqual(run.parse_args(["--arch", "armv7"]).apply_archs, ["armv7"])
        self.assertEqual(run.parse_args(["--all"]).apply_archs, list(run.ARCHS))
        self.assertEqual(run.parse_args(["--apply-mib", "36"]).apply_mib, 36)
        for bad in (["--all", "--arch", "armv7"], ["--arch", "mips"], ["--no-lab", "--reuse-lab"],
                    ["--only", "wire"], ["--apply-mib", "0"]):
            with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:
                run.parse_args(bad)
            self.assertIn("bench/run: error:", err.getvalue())


if __name__ == "__main__":
    unittest.main()
