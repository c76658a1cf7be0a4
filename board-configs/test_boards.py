"""Static checks of board-configs/: the board files, their kernel fragments, the
Yocto layer and the Buildroot external tree, against each other and against the
workspace (version, license, Cargo.lock, the symbols `husk check` reads).

    python3 -m unittest discover -s board-configs -p 'test_*.py'

Needs nothing but Python 3.11 (tomllib) and sh; shellcheck when installed
(qemu-tests/host-deps.sh installs it), skipped with the reason otherwise.
"""

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LAYER = os.path.join(HERE, "yocto", "meta-husk")
RECIPES = os.path.join(LAYER, "recipes-containers", "husk")
EXTERNAL = os.path.join(HERE, "buildroot")
PACKAGE = os.path.join(EXTERNAL, "package", "husk")

sys.path.insert(0, os.path.join(ROOT, "qemu-tests"))
from husklab import board as lab_board  # noqa: E402

RUST_TARGETS = {
    "aarch64": "aarch64-unknown-linux-musl",
    "armv7": "armv7-unknown-linux-musleabihf",
    "riscv64": "riscv64gc-unknown-linux-musl",
    "x86_64": "x86_64-unknown-linux-musl",
}
# The boards issue 6 asks for, besides the QEMU ones.
REAL_BOARDS = ("rpi4", "rpi5", "rpi3-armv7", "rpi-zero-2w-armv7", "beaglebone-black",
               "visionfive2", "hifive-unmatched")
# What husk's init integration and the board files agree on.
DATA_DIR = "/var/lib/husk"
STATE_DIR = "/run/husk"
DAEMON_COMMAND = f"/usr/bin/husk --root {STATE_DIR} daemon --data-dir {DATA_DIR}"


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def workspace():
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)["workspace"]["package"]


def boards():
    return sorted(glob.glob(os.path.join(HERE, "*.toml")))


def load_toml(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def kconfig(path):
    """{symbol: value} of a kconfig file ('n' for 'is not set'); fails on any
    line that is not kconfig, as husk check does."""
    symbols = {}
    for number, line in enumerate(read(path).splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        m = re.fullmatch(r"# (CONFIG_[A-Za-z0-9_]+) is not set", line)
        if m:
            symbols[m[1]] = "n"
            continue
        if line.startswith("#"):
            continue
        m = re.fullmatch(r"(CONFIG_[A-Za-z0-9_]+)=(.+)", line)
        if not m:
            raise AssertionError(f"{path}:{number}: not kconfig: {line!r}")
        symbols[m[1]] = m[2]
    return symbols


def check_symbols():
    """Every symbol `husk check` reads (FEATURES in runtime/src/check.rs)."""
    source = read(os.path.join(ROOT, "runtime", "src", "check.rs"))
    found = set()
    for group in re.findall(r"symbols: &\[([^\]]*)\]", source):
        found.update(re.findall(r'"(CONFIG_[A-Z0-9_]+)"', group))
    return found


def bitbake_var(text, name):
    m = re.search(rf'^{re.escape(name)}\s*\??=\s*"([^"]*)"', text, re.M)
    return m[1] if m else None


def make_var(text, name):
    m = re.search(rf"^{re.escape(name)}\s*=\s*(.*)$", text, re.M)
    return m[1].strip() if m else None


class BoardFiles(unittest.TestCase):
    def test_every_issue_board_is_there(self):
        names = {os.path.basename(p)[:-5] for p in boards()}
        for name in REAL_BOARDS + tuple(f"qemu-{a}" for a in lab_board.ARCHS):
            self.assertIn(name, names)

    def test_required_keys(self):
        for path in boards():
            with self.subTest(board=os.path.basename(path)):
                doc = load_toml(path)

                def get(key, kind):
                    table, name = key.split(".")
                    value = doc.get(table, {}).get(name)
                    self.assertIsInstance(value, kind, f"{key} must be {kind.__name__}")
                    return value

                get("board.name", str)
                arch = get("board.arch", str)
                self.assertIn(arch, RUST_TARGETS)
                self.assertEqual(get("board.rust_target", str), RUST_TARGETS[arch])
                fragment = get("board.kernel_fragment", str)
                self.assertTrue(os.path.isfile(os.path.join(HERE, fragment)), fragment)
                for key in ("data_dir", "state_dir", "board_file", "update_root", "update_config"):
                    self.assertTrue(get(f"paths.{key}", str).startswith("/"), key)
                self.assertEqual(doc["paths"]["data_dir"], DATA_DIR)
                self.assertEqual(doc["paths"]["state_dir"], STATE_DIR)
                self.assertGreater(get("limits.memory_max_mib", int), 0)
                self.assertGreater(get("limits.pids_max", int), 0)
                self.assertIn(get("limits.cpu_weight", int), range(1, 10001))
                # husk's agent speaks plain HTTP (no TLS yet): integrity is the signatures'.
                self.assertTrue(get("update.server", str).startswith("http://"))
                self.assertEqual(get("paths.update_root", str), "/etc/husk/root.json")
                self.assertEqual(get("paths.update_config", str), "/etc/husk/update.json")
                self.assertGreater(get("update.poll_interval_s", int), 0)
                get("storage.medium", str)
                self.assertTrue(get("storage.notes", str).strip())

    def test_husk_reads_the_kernel_fragment_line(self):
        # husk check --board reads only this line, with its tiny parser
        # (kernel_fragment_line in runtime/src/check.rs): a basic string
        # without escapes, first match wins.
        for path in boards():
            with self.subTest(board=os.path.basename(path)):
                lines = [line for line in read(path).splitlines()
                         if re.match(r"\s*kernel_fragment\s*=", line)]
                self.assertEqual(len(lines), 1)
                m = re.fullmatch(r'\s*kernel_fragment\s*=\s*"([^"\\]+)"\s*(#.*)?', lines[0])
                self.assertTrue(m, lines[0])
                self.assertEqual(m[1], load_toml(path)["board"]["kernel_fragment"])

    def test_the_lab_still_reads_the_qemu_boards(self):
        for arch in lab_board.ARCHS:
            with self.subTest(arch=arch):
                board = lab_board.load(arch)
                self.assertEqual(board.rust_target, RUST_TARGETS[arch])

    def test_fragments_enable_everything_husk_check_reads(self):
        symbols = check_symbols()
        self.assertIn("CONFIG_SECCOMP_FILTER", symbols)
        fragments = sorted(glob.glob(os.path.join(HERE, "*.config")))
        referenced = {load_toml(p)["board"]["kernel_fragment"] for p in boards()}
        self.assertEqual({os.path.basename(f) for f in fragments}, referenced,
                         "a fragment no board names, or the other way round")
        for path in fragments:
            with self.subTest(fragment=os.path.basename(path)):
                config = kconfig(path)
                for symbol in sorted(symbols):
                    self.assertEqual(config.get(symbol), "y", symbol)


class YoctoLayer(unittest.TestCase):
    def test_layer_conf(self):
        conf = read(os.path.join(LAYER, "conf", "layer.conf"))
        self.assertIn('BBFILE_COLLECTIONS += "husk"', conf)
        compat = bitbake_var(conf, "LAYERSERIES_COMPAT_husk")
        self.assertTrue(compat and "scarthgap" in compat.split(), compat)
        self.assertEqual(bitbake_var(conf, "LAYERDEPENDS_husk"), "core")

    def test_recipe_version_license_and_checksum_follow_the_workspace(self):
        package = workspace()
        recipes = glob.glob(os.path.join(RECIPES, "husk_*.bb"))
        self.assertEqual([os.path.basename(r) for r in recipes], [f"husk_{package['version']}.bb"])
        config = glob.glob(os.path.join(RECIPES, "husk-config_*.bb"))
        self.assertEqual([os.path.basename(r) for r in config],
                         [f"husk-config_{package['version']}.bb"])
        source = read(os.path.join(RECIPES, "husk-source.inc"))
        self.assertEqual(bitbake_var(source, "LICENSE"), package["license"])
        chksum = bitbake_var(source, "LIC_FILES_CHKSUM")
        m = re.fullmatch(r"file://Cargo\.toml;beginline=(\d+);endline=(\d+);md5=([0-9a-f]{32})", chksum)
        self.assertTrue(m, chksum)
        begin, end, md5 = int(m[1]), int(m[2]), m[3]
        # As bitbake's license check hashes them: the raw lines, newlines kept.
        with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
            lines = f.readlines()[begin - 1:end]
        self.assertEqual(hashlib.md5(b"".join(lines)).hexdigest(), md5)
        self.assertIn(package["license"].encode(), b"".join(lines))
        self.assertTrue(bitbake_var(source, "SRC_URI").startswith("git://"))

    def test_recipe_uses_yoctos_cargo_support(self):
        recipe = read(os.path.join(RECIPES, f"husk_{workspace()['version']}.bb"))
        self.assertRegex(recipe, r"(?m)^inherit cargo cargo-update-recipe-crates systemd update-rc\.d$")
        self.assertIn("require husk-source.inc", recipe)
        self.assertIn("require ${BPN}-crates.inc", recipe)
        self.assertEqual(bitbake_var(recipe, "CARGO_SRC_DIR"), "runtime")
        self.assertTrue(os.path.isfile(os.path.join(ROOT, "runtime", "Cargo.toml")))
        self.assertEqual(bitbake_var(recipe, "SYSTEMD_SERVICE:${PN}"), "husk.service")
        self.assertEqual(bitbake_var(recipe, "INITSCRIPT_NAME"), "husk")
        for name in re.findall(r"file://([^\s;\"]+)", recipe):
            self.assertTrue(os.path.isfile(os.path.join(RECIPES, "files", name)), name)

    def test_crates_inc_is_cargo_lock(self):
        with open(os.path.join(ROOT, "Cargo.lock"), "rb") as f:
            lock = tomllib.load(f)
        want = {(p["name"], p["version"], p["checksum"]) for p in lock["package"]
                if p.get("source", "").startswith("registry+")}
        inc = read(os.path.join(RECIPES, "husk-crates.inc"))
        uris = set(re.findall(r"crate://crates\.io/([^/\s]+)/([^\s\\]+)", inc))
        sums = set(re.findall(r'SRC_URI\[([^\]]+)\.sha256sum\] = "([0-9a-f]{64})"', inc))
        stale = "husk-crates.inc differs from Cargo.lock: run board-configs/yocto/update-crates.py"
        self.assertEqual(uris, {(n, v) for n, v, _ in want}, stale)
        self.assertEqual(sums, {(f"{n}-{v}", c) for n, v, c in want}, stale)

    def test_packagegroup_and_image_feature(self):
        group = read(os.path.join(LAYER, "recipes-core", "packagegroups", "packagegroup-husk.bb"))
        self.assertIn("inherit packagegroup", group)
        rdepends = bitbake_var(group, "RDEPENDS:${PN}").replace("\\", " ").split()
        self.assertEqual(rdepends, ["husk", "husk-config"])
        for name in rdepends:
            self.assertTrue(glob.glob(os.path.join(LAYER, "recipes-*", "*", f"{name}_*.bb")), name)
        feature = read(os.path.join(LAYER, "classes", "husk-image.bbclass"))
        self.assertEqual(bitbake_var(feature, "FEATURE_PACKAGES_husk"), "packagegroup-husk")
        self.assertIn('IMAGE_FEATURES[validitems] += "husk"', feature)

    def test_config_recipe_installs_board_fragment_and_key(self):
        recipe = read(os.path.join(RECIPES, f"husk-config_{workspace()['version']}.bb"))
        for target in ("${sysconfdir}/husk/board.toml", "${sysconfdir}/husk/$fragment",
                       "${sysconfdir}/husk/root.json", "${sysconfdir}/husk/update.json"):
            self.assertIn(target, recipe)
        for variable in ("HUSK_BOARD", "HUSK_UPDATE_ROOT", "HUSK_UPDATE_CONFIG"):
            self.assertIn(f"raise bb.parse.SkipRecipe(\"set {variable}", recipe)


class BuildrootExternal(unittest.TestCase):
    def test_external_tree(self):
        self.assertRegex(read(os.path.join(EXTERNAL, "external.desc")), r"(?m)^name: HUSK$")
        config = read(os.path.join(EXTERNAL, "Config.in"))
        for path in re.findall(r'source "\$BR2_EXTERNAL_HUSK_PATH/([^"]+)"', config):
            self.assertTrue(os.path.isfile(os.path.join(EXTERNAL, path)), path)
        self.assertIn("$(BR2_EXTERNAL_HUSK_PATH)/package/*/*.mk", read(os.path.join(EXTERNAL, "external.mk")))

    def test_package_follows_the_workspace(self):
        package = workspace()
        mk = read(os.path.join(PACKAGE, "husk.mk"))
        self.assertEqual(make_var(mk, "HUSK_VERSION"), package["version"])
        self.assertEqual(make_var(mk, "HUSK_LICENSE"), package["license"])
        self.assertTrue(os.path.isfile(os.path.join(ROOT, make_var(mk, "HUSK_LICENSE_FILES"))))
        self.assertEqual(make_var(mk, "HUSK_SUBDIR"), "runtime")
        self.assertRegex(mk, r"(?m)^\$\(eval \$\(cargo-package\)\)$")
        for path in re.findall(r"\$\(BR2_EXTERNAL_HUSK_PATH\)/([\w./-]+)", mk):
            if "$" not in path and not path.endswith("/.."):
                self.assertTrue(os.path.exists(os.path.join(EXTERNAL, path)), path)
        kconfig_in = read(os.path.join(PACKAGE, "Config.in"))
        self.assertIn("select BR2_PACKAGE_HOST_RUSTC", kconfig_in)
        self.assertIn("depends on BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS", kconfig_in)
        for symbol in ("BR2_PACKAGE_HUSK_BOARD", "BR2_PACKAGE_HUSK_UPDATE_ROOT",
                       "BR2_PACKAGE_HUSK_UPDATE_CONFIG"):
            self.assertIn(f"config {symbol}\n", kconfig_in)
            self.assertIn(f"$(BR2_PACKAGE_{symbol[len('BR2_PACKAGE_'):]})", mk)

    def test_a_defconfig_fragment_per_qemu_board(self):
        for arch in lab_board.ARCHS:
            with self.subTest(arch=arch):
                text = read(os.path.join(EXTERNAL, "configs", f"husk_qemu_{arch}.fragment"))
                values = dict(re.findall(r"(?m)^(BR2_\w+)=(.*)$", text))
                self.assertEqual(values["BR2_PACKAGE_HUSK"], "y")
                self.assertEqual(values["BR2_PACKAGE_HUSK_BOARD"], f'"qemu-{arch}"')
                fragment = values["BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES"].strip('"')
                self.assertEqual(fragment, f"$(BR2_EXTERNAL_HUSK_PATH)/../qemu-{arch}.config")
                self.assertTrue(os.path.isfile(os.path.join(HERE, f"qemu-{arch}.config")))
                self.assertEqual(values["BR2_INIT_BUSYBOX"], "y")


class InitScripts(unittest.TestCase):
    SCRIPTS = (os.path.join(PACKAGE, "S95husk"), os.path.join(RECIPES, "files", "husk.init"))
    UNITS = (os.path.join(PACKAGE, "husk.service"), os.path.join(RECIPES, "files", "husk.service"))

    def test_scripts_parse_and_are_executable(self):
        for script in self.SCRIPTS:
            with self.subTest(script=os.path.relpath(script, HERE)):
                self.assertTrue(os.access(script, os.X_OK))
                self.assertTrue(read(script).startswith("#!/bin/sh\n"))
                result = subprocess.run(["sh", "-n", script], capture_output=True, text=True)
                self.assertEqual(result.returncode, 0, result.stderr)

    def test_scripts_pass_shellcheck(self):
        if not shutil.which("shellcheck"):
            self.skipTest("shellcheck not installed (apt-get install shellcheck; "
                          "qemu-tests/host-deps.sh installs it)")
        for script in self.SCRIPTS:
            with self.subTest(script=os.path.relpath(script, HERE)):
                result = subprocess.run(["shellcheck", "--shell=sh", script],
                                        capture_output=True, text=True)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_yocto_script_is_the_buildroot_one_with_an_lsb_header(self):
        def body(path):
            text = read(path)
            return text[text.index("\nDAEMON="):]

        sysv, busybox = self.SCRIPTS[1], self.SCRIPTS[0]
        self.assertEqual(body(sysv), body(busybox))
        self.assertIn("### BEGIN INIT INFO\n# Provides:          husk\n", read(sysv))

    def test_start_status_stop_with_a_stand_in_daemon(self):
        # `husk daemon` is not built yet (qemu-tests/scenarios/initscript.sh
        # skips until it is): drive S95husk's own logic with a stand-in that,
        # like the daemon, runs until SIGTERM; then with one that ignores it.
        if not shutil.which("start-stop-daemon"):
            self.skipTest("start-stop-daemon not installed")
        import tempfile
        import time

        with tempfile.TemporaryDirectory() as tmp:
            daemon = os.path.join(tmp, "husk")
            with open(daemon, "w") as f:
                f.write('#!/bin/sh\necho "$@" > "${0%/*}/args"\n'
                        "trap 'exit 0' TERM\n${IGNORE_TERM:+trap '' TERM}\n"
                        "while :; do sleep 0.1; done\n")
            os.chmod(daemon, 0o755)
            defaults = os.path.join(tmp, "default")
            with open(defaults, "w") as f:
                f.write(f"DAEMON={daemon}\nPIDFILE={tmp}/run/husk.pid\n"
                        f"HUSK_DATA_DIR={tmp}/data\nHUSK_ROOT={tmp}/root\nHUSK_STOP_TIMEOUT=2\n")
            script = os.path.join(tmp, "S95husk")
            with open(script, "w") as f:
                f.write(read(self.SCRIPTS[0]).replace("/etc/default/husk", defaults))

            def alive(pid):
                # A zombie (ended, not reaped yet by this host's PID 1) is not.
                try:
                    stat = read(f"/proc/{pid}/stat")
                except FileNotFoundError:
                    return False
                return stat.rsplit(") ", 1)[1][0] != "Z"

            def run(action, **env):
                return subprocess.run(["sh", script, action], capture_output=True, text=True,
                                      env={**os.environ, **env}, timeout=30)

            for round_ in (1, 2):
                with self.subTest(round=round_):
                    self.assertEqual(run("start").stdout, "Starting husk: OK\n")
                    pid = int(read(f"{tmp}/run/husk.pid"))
                    for _ in range(50):
                        if os.path.exists(f"{tmp}/args"):
                            break
                        time.sleep(0.1)
                    self.assertEqual(read(f"{tmp}/args"),
                                     f"--root {tmp}/root daemon --data-dir {tmp}/data\n")
                    self.assertTrue(os.path.isdir(f"{tmp}/data") and os.path.isdir(f"{tmp}/root"))
                    status = run("status")
                    self.assertEqual((status.returncode, status.stdout),
                                     (0, f"husk is running (pid {pid})\n"))
                    self.assertEqual(run("start").stdout, "Starting husk: already running\n")
                    stop = run("stop")
                    self.assertEqual((stop.returncode, stop.stdout), (0, "Stopping husk: OK\n"))
                    self.assertFalse(alive(pid), "still running after stop")
                    self.assertFalse(os.path.exists(f"{tmp}/run/husk.pid"))
                    self.assertEqual(run("status").returncode, 3)
                    self.assertEqual(run("stop").stdout, "Stopping husk: not running\n")
                    os.unlink(f"{tmp}/args")
            # A stale pid file (the daemon died) does not stop a start.
            with open(f"{tmp}/run/husk.pid", "w") as f:
                f.write("999999999\n")
            self.assertEqual(run("start").stdout, "Starting husk: OK\n")
            self.assertEqual(run("stop").returncode, 0)
            # A daemon that ignores SIGTERM is killed after the timeout, and
            # stop says so and fails.
            self.assertEqual(run("start", IGNORE_TERM="1").stdout, "Starting husk: OK\n")
            pid = int(read(f"{tmp}/run/husk.pid"))
            time.sleep(0.5)
            stop = run("stop")
            self.assertEqual((stop.returncode, stop.stdout),
                             (1, "Stopping husk: FAIL (killed after 2s)\n"))
            time.sleep(0.2)
            self.assertFalse(alive(pid), "SIGKILL did not end it")

    def test_scripts_and_units_start_the_daemon_as_the_boards_say(self):
        script = read(self.SCRIPTS[0])
        self.assertIn(f"HUSK_DATA_DIR={DATA_DIR}\n", script)
        self.assertIn(f"HUSK_ROOT={STATE_DIR}\n", script)
        self.assertIn('--root "$HUSK_ROOT" daemon --data-dir "$HUSK_DATA_DIR"', script)
        self.assertEqual(read(self.UNITS[0]), read(self.UNITS[1]))
        unit = read(self.UNITS[0])
        self.assertIn(f"\nExecStart={DAEMON_COMMAND}\n", unit)
        self.assertIn("\nKillSignal=SIGTERM\n", unit)
        self.assertIn("\nWantedBy=multi-user.target\n", unit)


if __name__ == "__main__":
    unittest.main()
