"""The committed man page and bash completion are what gen.py makes from the
built husk's --help: regenerated here, and any difference fails, so they
cannot rot. Run by ./dev test (after cargo test has built husk); builds husk
itself if it is not there."""

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gen  # noqa: E402


class GeneratedDocsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.husk = gen.default_husk()
        if not os.access(cls.husk, os.X_OK):
            subprocess.run(["cargo", "build", "-p", "husk", "--locked"],
                           cwd=gen.REPO, check=True)
        cls.out = tempfile.TemporaryDirectory()
        subprocess.run([sys.executable, str(HERE / "gen.py"), "--husk", cls.husk,
                        "--out", cls.out.name], check=True)

    @classmethod
    def tearDownClass(cls):
        cls.out.cleanup()

    def assert_same(self, name):
        committed = (HERE / name).read_text()
        fresh = (Path(self.out.name) / name).read_text()
        self.assertEqual(committed, fresh,
                         f"runtime/doc/{name} is stale: run runtime/doc/gen.py and commit it")

    def test_man_page_is_current(self):
        self.assert_same("husk.1")

    def test_completion_is_current(self):
        self.assert_same("husk.bash")

    def test_man_page_has_every_section_and_command(self):
        page = (HERE / "husk.1").read_text()
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS",
                        "FILES", "ENVIRONMENT", "JSON OUTPUT"):
            self.assertIn(f".SH {section}\n", page)
        top = gen.parse_help(gen.run_help(self.husk, []))
        for name, _ in top["sections"]["Commands"]:
            self.assertIn(f'.SS "husk {name}"', page)
        for code in range(8):
            self.assertIn(f".B {code}\n", page)

    def test_completion_is_valid_bash(self):
        subprocess.run(["bash", "-n", str(HERE / "husk.bash")], check=True)

    def test_completion_completes(self):
        script = f"""
source {HERE / 'husk.bash'}
husk() {{ [ "$1 $2" = "list -q" ] && printf 'web\\n'; }}
t() {{ COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); _husk; echo "${{COMPREPLY[*]}}"; }}
t husk --root /x sto
t husk image r
t husk stop ""
"""
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                             check=True).stdout.split("\n")
        self.assertEqual(out[0], "stop")
        self.assertEqual(out[1], "rm")
        self.assertEqual(out[2], "--help web")

    def test_image_integrations_install_them(self):
        board = gen.REPO / "board-configs"
        mk = (board / "buildroot/package/husk/husk.mk").read_text()
        recipe = (board / "yocto/meta-husk/recipes-containers/husk/husk_0.1.0.bb").read_text()
        for name in ("husk.1", "husk.bash"):
            self.assertIn(f"$(@D)/runtime/doc/{name}", mk)
            self.assertIn(f"${{S}}/runtime/doc/{name}", recipe)
        self.assertIn("HUSK_POST_INSTALL_TARGET_HOOKS += HUSK_INSTALL_DOCS", mk)
        self.assertIn("/usr/share/man/man1/husk.1", mk)
        self.assertIn("${mandir}/man1/husk.1", recipe)

    def test_parse_help_reads_argh_sections(self):
        parsed = gen.parse_help(
            "Usage: husk x [--a <a>]\n       [--b]\n\nDo x.\n\nOptions:\n"
            "  --a               the a,\n                    continued\n"
            "  --help, help      display usage information\n\nNotes:\n  A note.\n\n"
            "Error codes:\n  5 five\n")
        self.assertEqual(parsed["usage"], "husk x [--a <a>] [--b]")
        self.assertEqual(parsed["description"], "Do x.")
        self.assertEqual(parsed["sections"]["Options"][0], ["--a", "the a, continued"])
        self.assertEqual(parsed["sections"]["Notes"], ["A note."])
        self.assertEqual(parsed["sections"]["Error codes"], [["5", "five"]])


if __name__ == "__main__":
    unittest.main()
